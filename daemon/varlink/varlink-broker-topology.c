/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * org.iommud.Broker: what the host has and what the caller may use of it
 * (GetTopology, ExplainDevice).
 */

#include <errno.h>

#include <json-c/json.h>

#include "json-util.h"
#include "varlink-broker-internal.h"

/* The steps as the policy engine writes them, with the full device lists. */
static json_object *decision_steps_json(const PolicyDecision *d) {
        json_object *o = NULL, *steps = NULL;

        if (policy_decision_to_json(d, &o) < 0)
                return NULL;
        if (json_object_object_get_ex(o, "steps", &steps))
                steps = json_object_get(steps);
        json_object_put(o);
        return steps;
}

static json_object *group_json(const TopoGroup *g) {
        json_object *o = json_object_new_object(), *devs = json_object_new_array(),
                    *regions = json_object_new_array();
        const char *iommu = NULL;

        if (!o || !devs || !regions) {
                json_object_put(o);
                json_object_put(devs);
                json_object_put(regions);
                return NULL;
        }
        for (size_t i = 0; i < g->n_devices; i++) {
                json_object_array_add(devs, json_object_new_string(g->devices[i]->name));
                if (!iommu && g->devices[i]->iommu)
                        iommu = g->devices[i]->iommu->name;
        }
        for (size_t i = 0; i < g->n_regions; i++) {
                json_object *r = broker_range_json(g->regions[i].start, g->regions[i].last);

                (void)json_util_add(r, "type",
                                    json_object_new_string(region_type_to_string(g->regions[i].type)));
                json_object_array_add(regions, r);
        }
        (void)json_util_add(o, "id", json_object_new_int64(g->id));
        if (g->type)
                (void)json_util_add(o, "type", json_object_new_string(g->type));
        (void)json_util_add(o, "viable", json_object_new_boolean(session_group_viable(g)));
        (void)json_util_add(o, "devices", devs);
        (void)json_util_add(o, "reservedRegions", regions);
        if (iommu)
                (void)json_util_add(o, "iommu", json_object_new_string(iommu));
        return o;
}

static json_object *device_json(Broker *b, Session *s, const TopoDevice *d) {
        _cleanup_(policy_decision_clear) PolicyDecision dec = {};
        json_object *o = json_object_new_object();
        const char *held_by;

        if (!o)
                return NULL;
        (void)json_util_add(o, "name", json_object_new_string(d->name));
        (void)json_util_add(o, "vendor", json_object_new_int64(d->vendor));
        (void)json_util_add(o, "device", json_object_new_int64(d->device));
        (void)json_util_add(o, "class", json_object_new_int64(d->class));
        if (d->driver)
                (void)json_util_add(o, "driver", json_object_new_string(d->driver));
        if (d->group)
                (void)json_util_add(o, "group", json_object_new_int64(d->group->id));
        if (d->cdev_name)
                (void)json_util_add(o, "cdev", json_object_new_string(d->cdev_name));
        if (d->numa_node >= 0)
                (void)json_util_add(o, "numaNode", json_object_new_int64(d->numa_node));
        (void)json_util_add(o, "eligible",
                            json_object_new_boolean(session_explain_device(s, d->name, &dec,
                                                                           NULL) >= 0 &&
                                                    dec.allowed));
        /* A session's claim, or a client that kept the device's file after iommud let go. */
        held_by = session_host_device_held_by(b->host, d->name, s);
        if (held_by)
                (void)json_util_add(o, "heldBy", json_object_new_string(held_by));
        return o;
}

int broker_method_get_topology(VarlinkCall *call, json_object *params, VarlinkCallFlags flags,
                               void *userdata) {
        Broker *b = userdata;
        const Topology *t = b->host->topology;
        json_object *out, *groups, *devices;
        int r;

        REQUIRE_SESSION(call);
        r = varlink_call_dispatch(call, params, NULL, NULL);
        if (r < 0)
                return r;

        out = json_object_new_object();
        groups = json_object_new_array();
        devices = json_object_new_array();
        if (!out || !groups || !devices) {
                json_object_put(out);
                json_object_put(groups);
                json_object_put(devices);
                return -ENOMEM;
        }
        for (size_t i = 0; i < t->n_groups; i++)
                json_object_array_add(groups, group_json(t->groups[i]));
        for (size_t i = 0; i < t->n_devices; i++)
                json_object_array_add(devices,
                                      device_json(b, broker_call_session(call), t->devices[i]));
        (void)json_util_add(out, "groups", groups);
        (void)json_util_add(out, "devices", devices);
        return broker_reply(call, out);
}

const JsonDispatchField broker_explain_device_parameters[] = {
        { "device", JSON_DISPATCH_STRING, JSON_DISPATCH_REQUIRED, 0 },
        {},
};

int broker_method_explain_device(VarlinkCall *call, json_object *params, VarlinkCallFlags flags,
                                 void *userdata) {
        _cleanup_(policy_decision_clear) PolicyDecision dec = {};
        BrokerError e = BROKER_ERROR_INIT;
        const char *device = NULL;
        json_object *out;
        int r;

        REQUIRE_SESSION(call);
        r = varlink_call_dispatch(call, params, broker_explain_device_parameters, &device);
        if (r < 0)
                return r;

        if (session_explain_device(broker_call_session(call), device, &dec, &e) < 0)
                return broker_reply_error(call, &e);
        out = json_object_new_object();
        if (!out)
                return -ENOMEM;
        (void)json_util_add(out, "allowed", json_object_new_boolean(dec.allowed));
        (void)json_util_add(out, "steps", decision_steps_json(&dec));
        return broker_reply(call, out);
}
