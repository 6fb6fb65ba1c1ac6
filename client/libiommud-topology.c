/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* GetTopology and ExplainDevice: what the host has, and why a device may or may not be used. */

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "iommud/iommud.h"
#include "json-util.h"
#include "libiommud-internal.h"
#include "macros.h"

/* --------------------------------------------------------------- topology */

struct IommudTopology {
        json_object *reply;      /* owns every string */
        IommudGroup *groups;
        size_t n_groups;
        IommudDevice *devices;
        size_t n_devices;
};

_public_ IommudTopology *iommud_topology_free(IommudTopology *t) {
        if (!t)
                return NULL;
        for (size_t i = 0; i < t->n_groups; i++) {
                free((void *)t->groups[i].devices);
                free((void *)t->groups[i].reserved_regions);
        }
        free(t->groups);
        free(t->devices);
        json_object_put(t->reply);
        free(t);
        return NULL;
}
DEFINE_TRIVIAL_CLEANUP_FUNC(IommudTopology *, iommud_topology_free);

static int parse_group(json_object *o, IommudGroup *g, Error *e) {
        json_object *devices = NULL, *regions = NULL;
        IommudReservedRegion *rr = NULL;
        size_t n_rr;
        int r;

        if ((r = json_util_get_u32(o, "id", 0, &g->id, e)) < 0 ||
            (r = json_util_get_string(o, "type", JSON_UTIL_OPTIONAL, &g->type, e)) < 0 ||
            (r = json_util_get_bool(o, "viable", 0, &g->viable, e)) < 0 ||
            (r = json_util_get_string(o, "iommu", JSON_UTIL_OPTIONAL, &g->iommu, e)) < 0 ||
            (r = json_util_get_array(o, "devices", 0, &devices, e)) < 0 ||
            (r = json_util_get_array(o, "reservedRegions", JSON_UTIL_OPTIONAL, &regions, e)) < 0)
                return r;
        r = iommud_string_array(devices, (const char ***)&g->devices, &g->n_devices, "devices", e);
        if (r < 0)
                return r;
        n_rr = regions ? json_object_array_length(regions) : 0;
        if (n_rr > 0) {
                rr = calloc(n_rr, sizeof(*rr));
                if (!rr)
                        return -ENOMEM;
        }
        g->reserved_regions = rr;
        g->n_reserved_regions = n_rr;
        for (size_t i = 0; i < n_rr; i++) {
                json_object *ro;

                if ((r = iommud_object_at(regions, i, "reservedRegions", &ro, e)) < 0 ||
                    (r = json_util_get_u64(ro, "start", 0, &rr[i].start, e)) < 0 ||
                    (r = json_util_get_u64(ro, "last", 0, &rr[i].last, e)) < 0 ||
                    (r = json_util_get_string(ro, "type", 0, &rr[i].type, e)) < 0)
                        return r;
        }
        return 0;
}

static int parse_device(json_object *o, IommudDevice *d, Error *e) {
        uint32_t u;
        int r;

        if ((r = json_util_get_string(o, "name", 0, &d->name, e)) < 0 ||
            (r = json_util_get_u32(o, "vendor", 0, &d->vendor, e)) < 0 ||
            (r = json_util_get_u32(o, "device", 0, &d->device, e)) < 0 ||
            (r = json_util_get_u32(o, "class", 0, &d->class_code, e)) < 0 ||
            (r = json_util_get_string(o, "driver", JSON_UTIL_OPTIONAL, &d->driver, e)) < 0 ||
            (r = json_util_get_string(o, "cdev", JSON_UTIL_OPTIONAL, &d->cdev, e)) < 0 ||
            (r = json_util_get_bool(o, "eligible", 0, &d->eligible, e)) < 0 ||
            (r = json_util_get_string(o, "heldBy", JSON_UTIL_OPTIONAL, &d->held_by, e)) < 0)
                return r;
        d->has_group = iommud_present(o, "group");
        if (d->has_group && (r = json_util_get_u32(o, "group", 0, &d->group, e)) < 0)
                return r;
        d->has_numa_node = iommud_present(o, "numaNode");
        if (d->has_numa_node && (r = json_util_get_u32(o, "numaNode", 0, &u, e)) < 0)
                return r;
        d->numa_node = d->has_numa_node ? u : 0;
        return 0;
}

static int parse_topology(json_object *params, IommudTopology *t, Error *e) {
        json_object *groups, *devices;
        size_t n;
        int r;

        if ((r = json_util_get_array(params, "groups", 0, &groups, e)) < 0 ||
            (r = json_util_get_array(params, "devices", 0, &devices, e)) < 0)
                return r;

        n = json_object_array_length(groups);
        if (n > 0 && !(t->groups = calloc(n, sizeof(IommudGroup))))
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                json_object *o;

                if ((r = iommud_object_at(groups, i, "groups", &o, e)) < 0)
                        return r;
                t->n_groups++; /* counted before parsing so that free releases partial arrays */
                r = parse_group(o, &t->groups[i], e);
                if (r < 0)
                        return error_prefix(e, "groups[%zu]", i) ?: r;
        }

        n = json_object_array_length(devices);
        if (n > 0 && !(t->devices = calloc(n, sizeof(IommudDevice))))
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                json_object *o;

                if ((r = iommud_object_at(devices, i, "devices", &o, e)) < 0)
                        return r;
                t->n_devices++;
                r = parse_device(o, &t->devices[i], e);
                if (r < 0)
                        return error_prefix(e, "devices[%zu]", i) ?: r;
        }
        return 0;
}

_public_ int iommud_get_topology(IommudClient *c, IommudTopology **ret, IommudError *err) {
        _cleanup_(iommud_topology_freep) IommudTopology *t = NULL;
        VarlinkReply reply = VARLINK_REPLY_INIT;
        Error e = ERROR_INIT;
        int r;

        if (!ret)
                return iommud_error_setf(err, -EINVAL, "no place to return the topology");
        r = iommud_call(c, "GetTopology", NULL, &reply, err);
        if (r < 0)
                return r;
        t = calloc(1, sizeof(*t));
        if (!t) {
                varlink_reply_clear(&reply);
                return iommud_nomem(err);
        }
        t->reply = json_object_get(reply.parameters);
        varlink_reply_clear(&reply);
        r = parse_topology(t->reply, t, &e);
        if (r == -ENOMEM)
                return iommud_nomem(err);
        if (r < 0)
                return iommud_bad_reply(err, "GetTopology", &e);
        *ret = TAKE_PTR(t);
        return 0;
}

_public_ size_t iommud_topology_get_n_groups(const IommudTopology *t) {
        return t ? t->n_groups : 0;
}

_public_ const IommudGroup *iommud_topology_get_group(const IommudTopology *t, size_t i) {
        return t && i < t->n_groups ? &t->groups[i] : NULL;
}

_public_ size_t iommud_topology_get_n_devices(const IommudTopology *t) {
        return t ? t->n_devices : 0;
}

_public_ const IommudDevice *iommud_topology_get_device(const IommudTopology *t, size_t i) {
        return t && i < t->n_devices ? &t->devices[i] : NULL;
}

_public_ const IommudDevice *iommud_topology_find_device(const IommudTopology *t,
                                                         const char *name) {
        if (!t || !name)
                return NULL;
        for (size_t i = 0; i < t->n_devices; i++)
                if (streq(t->devices[i].name, name))
                        return &t->devices[i];
        return NULL;
}

_public_ const IommudGroup *iommud_topology_find_group(const IommudTopology *t, uint32_t id) {
        if (!t)
                return NULL;
        for (size_t i = 0; i < t->n_groups; i++)
                if (t->groups[i].id == id)
                        return &t->groups[i];
        return NULL;
}

/* ---------------------------------------------------------------- explain */

struct IommudExplanation {
        json_object *reply;
        bool allowed;
        IommudDecisionStep *steps;
        size_t n_steps;
};

_public_ IommudExplanation *iommud_explanation_free(IommudExplanation *x) {
        if (!x)
                return NULL;
        free(x->steps);
        json_object_put(x->reply);
        free(x);
        return NULL;
}
DEFINE_TRIVIAL_CLEANUP_FUNC(IommudExplanation *, iommud_explanation_free);

static int parse_explanation(IommudExplanation *x, Error *e) {
        json_object *steps;
        size_t n;
        int r;

        if ((r = json_util_get_bool(x->reply, "allowed", 0, &x->allowed, e)) < 0 ||
            (r = json_util_get_array(x->reply, "steps", 0, &steps, e)) < 0)
                return r;
        n = json_object_array_length(steps);
        if (n > 0 && !(x->steps = calloc(n, sizeof(IommudDecisionStep))))
                return -ENOMEM;
        x->n_steps = n;
        for (size_t i = 0; i < n; i++) {
                json_object *o;

                if ((r = iommud_object_at(steps, i, "steps", &o, e)) < 0 ||
                    (r = json_util_get_string(o, "step", 0, &x->steps[i].step, e)) < 0 ||
                    (r = json_util_get_string(o, "verdict", 0, &x->steps[i].verdict, e)) < 0 ||
                    (r = json_util_get_string(o, "reason", 0, &x->steps[i].reason, e)) < 0)
                        return r;
        }
        return 0;
}

_public_ int iommud_explain_device(IommudClient *c, const char *device, IommudExplanation **ret,
                                   IommudError *err) {
        _cleanup_(iommud_explanation_freep) IommudExplanation *x = NULL;
        _cleanup_json_ json_object *p = iommud_params_new();
        VarlinkReply reply = VARLINK_REPLY_INIT;
        Error e = ERROR_INIT;
        int r;

        if (!device || !ret)
                return iommud_error_setf(err, -EINVAL, "no device given to explain");
        if (!p || iommud_add_str(p, "device", device) < 0)
                return iommud_nomem(err);
        r = iommud_call(c, "ExplainDevice", p, &reply, err);
        if (r < 0)
                return r;
        x = calloc(1, sizeof(*x));
        if (!x) {
                varlink_reply_clear(&reply);
                return iommud_nomem(err);
        }
        x->reply = json_object_get(reply.parameters);
        varlink_reply_clear(&reply);
        r = parse_explanation(x, &e);
        if (r == -ENOMEM)
                return iommud_nomem(err);
        if (r < 0)
                return iommud_bad_reply(err, "ExplainDevice", &e);
        *ret = TAKE_PTR(x);
        return 0;
}

_public_ bool iommud_explanation_is_allowed(const IommudExplanation *x) {
        return x && x->allowed;
}

_public_ size_t iommud_explanation_get_n_steps(const IommudExplanation *x) {
        return x ? x->n_steps : 0;
}

_public_ const IommudDecisionStep *iommud_explanation_get_step(const IommudExplanation *x,
                                                              size_t i) {
        return x && i < x->n_steps ? &x->steps[i] : NULL;
}

