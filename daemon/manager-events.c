/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * What happened, to whoever listens: the session hook fanned out to the
 * org.iommud.Manager event stream and the D-Bus signals, the fault router's
 * notices, devices a session lost, and topology and policy changes as
 * Monitor() events.  Without a Monitor() subscriber nothing here allocates.
 */

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "json-util.h"
#include "log.h"
#include "manager-internal.h"

static bool manager_monitored(Manager *m) {
        return manager_varlink_n_subscribers(m->admin) > 0;
}

/* Adds a string member when value is not NULL; payload may be NULL (out of memory). */
static void payload_add_string(json_object *payload, const char *key, const char *value) {
        if (payload && value)
                (void)json_util_add(payload, key, json_object_new_string(value));
}

static void payload_add_u64(json_object *payload, const char *key, uint64_t value) {
        if (payload)
                (void)json_util_add(payload, key,
                                    value > INT64_MAX ? json_object_new_uint64(value) :
                                                        json_object_new_int64((int64_t)value));
}

/* The members every event about one session carries. */
static json_object *session_payload(Manager *m, Session *s) {
        json_object *payload = json_object_new_object();

        payload_add_u64(payload, "session", manager_varlink_session_id(m->admin, s));
        payload_add_u64(payload, "uid", session_creds(s)->uid);
        return payload;
}

/*
 * A session lost a device (hotplug or policy reload).  This is the one place
 * such events leave the session core: the holder's WatchEvents() streams and
 * the org.iommud.Manager event stream get it here (D-Bus sees the device
 * itself go away through bus_topology_changed()).
 */
void manager_on_device_lost(Session *s, const char *device, const char *reason, void *userdata) {
        Manager *m = userdata;
        const TopoDevice *td = topology_find_device(m->host.topology, device);

        manager_tell_device_lost(m, s, device,
                                 !td ? "removed" : !td->has_cdev ? "rebound" : "revoked", reason);
}

void manager_tell_device_lost(Manager *m, Session *s, const char *device, const char *kind,
                              const char *reason) {
        uint32_t id = UINT32_MAX;

        (void)session_device_id(s, device, &id);
        log_warning("%s loses device %s (%s): %s; detached it and tore down what only it used.",
                    session_describe(s), device, kind, reason);
        broker_session_event(s, kind, device, id, reason, 0);
        if (manager_monitored(m)) {
                json_object *payload = session_payload(m, s);
                char message[512];

                snprintf(message, sizeof(message),
                         "session %" PRIu64 " of %s lost device %s (%s): %s",
                         manager_varlink_session_id(m->admin, s), session_describe(s), device,
                         kind, reason);
                payload_add_string(payload, "device", device);
                payload_add_string(payload, "kind", kind);
                payload_add_string(payload, "reason", reason);
                manager_emit_event(m, "device-lost", message, payload);
        }
}

void manager_tell_release_requested(Manager *m, Session *s, const char *device,
                                    uint32_t device_id, uint64_t deadline_usec) {
        static const char reason[] = "the host wants the device back";

        broker_session_event(s, "release_requested", device, device_id, reason, deadline_usec);
        bus_device_release_requested(m->bus, device, deadline_usec);
        if (manager_monitored(m)) {
                json_object *payload = session_payload(m, s);
                char message[512];

                snprintf(message, sizeof(message),
                         "the host wants device %s back from session %" PRIu64 " of %s",
                         device, manager_varlink_session_id(m->admin, s), session_describe(s));
                payload_add_string(payload, "device", device);
                payload_add_u64(payload, "deadline", deadline_usec);
                manager_emit_event(m, "device-release-requested", message, payload);
        }
}

static bool same_driver(const char *a, const char *b) {
        return a && b ? streq(a, b) : a == b;
}

static void emit_device_event(Manager *m, const char *type, const char *device,
                              const char *driver, const char *previous) {
        json_object *payload = json_object_new_object();
        char message[256];

        if (streq(type, "device-added"))
                snprintf(message, sizeof(message), "device %s added (driver %s)", device,
                         driver ?: "none");
        else if (streq(type, "device-removed"))
                snprintf(message, sizeof(message), "device %s removed (driver was %s)", device,
                         previous ?: "none");
        else
                snprintf(message, sizeof(message), "device %s %s%s (was %s)", device,
                         driver ? "bound to " : "unbound", driver ?: "", previous ?: "unbound");
        payload_add_string(payload, "device", device);
        payload_add_string(payload, "driver", driver);
        payload_add_string(payload, "previousDriver", previous);
        manager_emit_event(m, type, message, payload);
}

/*
 * Every fault group the router delivers or answers itself.  On the fault path:
 * without a subscriber this is one comparison, nothing is allocated.
 */
void manager_on_fault(FaultStream *fs, const FaultEvent *ev, bool delivered,
                      FaultClosedReason reason, void *userdata) {
        Manager *m = userdata;
        const char *outcome = delivered ? "delivered" : fault_closed_reason_to_string(reason);
        Session *s = fault_stream_get_userdata(fs);
        const char *device = s ? session_device_name(s, ev->device_id) : NULL;
        json_object *payload;
        char message[512], pasid[32] = "";

        if (!manager_monitored(m))
                return;
        payload = s ? session_payload(m, s) : json_object_new_object();
        payload_add_string(payload, "device", device);
        if (ev->pasid_valid) {
                payload_add_u64(payload, "pasid", ev->pasid);
                snprintf(pasid, sizeof(pasid), " pasid %" PRIu32, ev->pasid);
        }
        payload_add_u64(payload, "address", ev->address);
        payload_add_string(payload, "outcome", outcome);
        if (delivered)
                snprintf(message, sizeof(message),
                         "fault at 0x%" PRIx64 " of %s%s delivered to session %" PRIu64 " of %s",
                         ev->address, device ?: "a device", pasid,
                         s ? manager_varlink_session_id(m->admin, s) : 0,
                         s ? session_describe(s) : "?");
        else
                snprintf(message, sizeof(message),
                         "fault at 0x%" PRIx64 " of %s%s answered invalid by iommud (%s), "
                         "session %" PRIu64 " of %s",
                         ev->address, device ?: "a device", pasid, outcome,
                         s ? manager_varlink_session_id(m->admin, s) : 0,
                         s ? session_describe(s) : "?");
        manager_emit_event(m, "fault", message, payload);
}

void manager_emit_topology_events(Manager *m, const TopologyDiff *diff) {
        if (!manager_monitored(m))
                return;
        FOREACH_ARRAY(c, diff->changes, diff->n_changes) {
                const TopoDevice *d = c->device, *o = c->previous;

                switch (c->kind) {
                case TOPOLOGY_DEVICE_REMOVED:
                        emit_device_event(m, "device-removed", o->name, NULL, o->driver);
                        break;
                case TOPOLOGY_DEVICE_ADDED:
                        emit_device_event(m, "device-added", d->name, d->driver, NULL);
                        break;
                case TOPOLOGY_DEVICE_CHANGED:
                        if (!same_driver(o->driver, d->driver) || o->has_cdev != d->has_cdev)
                                emit_device_event(m, "device-changed", d->name, d->driver,
                                                  o->driver);
                        break;
                }
        }
}

/*
 * The one session hook of the host, fanned out to whoever listens: the
 * org.iommud.Manager event stream and the D-Bus signals.  Either may be absent
 * (not started yet, or already gone while the daemon exits).
 */
void manager_on_session(Session *s, SessionEvent event, void *userdata) {
        Manager *m = userdata;

        manager_varlink_session_event(m->admin, s, event);
        bus_session_event(m->bus, s, event);
}

void manager_emit_event(Manager *m, const char *type, const char *message, json_object *payload) {
        manager_varlink_emit(m->admin, type, message, payload);
}
