/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * org.iommud.Broker: devices handed over as fds (OpenDevices, ReleaseDevices).
 */

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <json-c/json.h>

#include "json-util.h"
#include "session-handoff.h"
#include "varlink-broker-internal.h"

typedef struct DeviceNamesParams {
        const char **devices;
        size_t n_devices;
} DeviceNamesParams;

static const JsonDispatchField device_name_element = {
        .type = JSON_DISPATCH_STRING,
};

const JsonDispatchField broker_open_devices_parameters[] = {
        { "devices", JSON_DISPATCH_ARRAY, JSON_DISPATCH_REQUIRED,
          offsetof(DeviceNamesParams, devices), .max = SESSION_OPEN_DEVICES_MAX,
          .element = &device_name_element, .element_size = sizeof(const char *),
          .count_offset = offsetof(DeviceNamesParams, n_devices) },
        {},
};

const JsonDispatchField broker_release_devices_parameters[] = {
        { "devices", JSON_DISPATCH_ARRAY, JSON_DISPATCH_NULLABLE,
          offsetof(DeviceNamesParams, devices), .max = SESSION_OPEN_DEVICES_MAX,
          .element = &device_name_element, .element_size = sizeof(const char *),
          .count_offset = offsetof(DeviceNamesParams, n_devices) },
        {},
};

static void open_devices_params_clear(DeviceNamesParams *p) {
        json_dispatch_clear(broker_open_devices_parameters, p);
}

/* {device, fd, cdev?, group?} with fd the index among the reply's fds. */
static json_object *opened_device_json(const SessionHandoffDevice *d, size_t index) {
        json_object *o = json_object_new_object();

        if (!o)
                return NULL;
        (void)json_util_add(o, "device", json_object_new_string(d->name));
        (void)json_util_add(o, "fd", json_object_new_int64((int64_t)index));
        if (d->cdev)
                (void)json_util_add(o, "cdev", json_object_new_string(d->cdev));
        if (d->group != UINT32_MAX)
                (void)json_util_add(o, "group", json_object_new_int64(d->group));
        return o;
}

/* The reply: the iommufd as fd 0, device i as fd i + 1.  Takes the fds of h. */
static int reply_handoff(VarlinkCall *call, SessionHandoff *h) {
        _cleanup_free_ int *fds = NULL;
        json_object *out, *devs;
        size_t n = 0;

        fds = calloc(h->n_devices + 1, sizeof(int));
        out = json_object_new_object();
        devs = json_object_new_array();
        if (!fds || !out || !devs) {
                json_object_put(out);
                json_object_put(devs);
                return -ENOMEM;
        }
        (void)json_util_add(out, "iommufd", json_object_new_int(0));
        (void)json_util_add(out, "devices", devs);
        fds[n++] = TAKE_FD(h->iommufd);
        for (size_t i = 0; i < h->n_devices; i++) {
                json_object_array_add(devs, opened_device_json(&h->devices[i], n));
                fds[n++] = TAKE_FD(h->devices[i].fd);
        }
        /* Recorded first, as broker_reply() does: a crash after the reply loses no claim. */
        broker_changed(broker_call_broker_session(call)->broker);
        return varlink_call_reply_with_fds(call, out, fds, n);
}

int broker_method_open_devices(VarlinkCall *call, json_object *params, VarlinkCallFlags flags,
                               void *userdata) {
        _cleanup_(open_devices_params_clear) DeviceNamesParams p = {};
        _cleanup_(session_handoff_done) SessionHandoff h = SESSION_HANDOFF_INIT;
        BrokerError e = BROKER_ERROR_INIT;
        int r;

        REQUIRE_SESSION(call);
        r = varlink_call_dispatch(call, params, broker_open_devices_parameters, &p);
        if (r < 0)
                return r;
        if (session_open_devices(broker_call_session(call), p.devices, p.n_devices, &h, &e) < 0)
                return broker_reply_error(call, &e);
        return reply_handoff(call, &h);
}

int broker_method_release_devices(VarlinkCall *call, json_object *params,
                                  VarlinkCallFlags flags, void *userdata) {
        _cleanup_(open_devices_params_clear) DeviceNamesParams p = {};
        BrokerError e = BROKER_ERROR_INIT;
        int r;

        REQUIRE_SESSION(call);
        r = varlink_call_dispatch(call, params, broker_release_devices_parameters, &p);
        if (r < 0)
                return r;
        if (session_release_devices(broker_call_session(call), p.devices, p.n_devices, &e) < 0)
                return broker_reply_error(call, &e);
        return broker_reply(call, NULL);
}
