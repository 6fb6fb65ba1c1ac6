/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <inttypes.h>

#include <json-c/json.h>

#include "backend-sim.h"
#include "json-util.h"
#include "log.h"
#include "varlink-simulator.h"

#define SIMULATOR_ERROR_NO_SUCH_DEVICE SIMULATOR_INTERFACE ".NoSuchDevice"
#define SIMULATOR_ERROR_NOT_ATTACHED SIMULATOR_INTERFACE ".NotAttached"
#define SIMULATOR_ERROR_PERMISSION_DENIED SIMULATOR_INTERFACE ".PermissionDenied"
#define SIMULATOR_ERROR_DEVICE_PRESENT SIMULATOR_INTERFACE ".DevicePresent"

/* Most faults one InjectFault raises, so one call cannot stall the loop for long. */
#define SIMULATOR_MAX_COUNT 65536

extern const char simulator_idl[];

/*
 * The server's userdata is the broker's, so the hooks live here: one
 * simulated host per daemon, the one the interface was attached for.
 */
static const SimulatorHooks *hooks;

static json_object *u64_node(uint64_t v) {
        return v > INT64_MAX ? json_object_new_uint64(v) : json_object_new_int64((int64_t)v);
}

static bool caller_allowed(VarlinkCall *call) {
        const struct ucred *u = varlink_connection_get_ucred(varlink_call_get_connection(call));

        return hooks && u && (u->uid == 0 || u->uid == hooks->owner_uid);
}

#define GET(call, getter, params, name, flags, ret)                                                \
        do {                                                                                       \
                Error _pe = ERROR_INIT;                                                            \
                if (getter((params), (name), (flags), (ret), &_pe) < 0) {                          \
                        log_debug("%s: %s", varlink_call_get_method(call), error_message(&_pe));   \
                        return varlink_call_error_invalid_parameter((call), (name));               \
                }                                                                                  \
        } while (0)

static int method_inject_fault(VarlinkCall *call, json_object *params, VarlinkCallFlags flags,
                               void *userdata) {
        const char *device = NULL;
        uint64_t address = 0;
        uint32_t pasid = BACKEND_NO_PASID, group = 0, count = 1, perm = 0, n = 0;
        bool r_ = false, w_ = false, x_ = false, p_ = false, last = true;
        json_object *out, *ep;
        Error e = ERROR_INIT;
        int r = 0;

        if (!caller_allowed(call))
                return varlink_call_error(call, SIMULATOR_ERROR_PERMISSION_DENIED, NULL);
        GET(call, json_util_get_string, params, "device", 0, &device);
        GET(call, json_util_get_u32, params, "pasid", JSON_UTIL_OPTIONAL, &pasid);
        GET(call, json_util_get_u64, params, "address", 0, &address);
        GET(call, json_util_get_bool, params, "read", JSON_UTIL_OPTIONAL, &r_);
        GET(call, json_util_get_bool, params, "write", JSON_UTIL_OPTIONAL, &w_);
        GET(call, json_util_get_bool, params, "exec", JSON_UTIL_OPTIONAL, &x_);
        GET(call, json_util_get_bool, params, "privileged", JSON_UTIL_OPTIONAL, &p_);
        GET(call, json_util_get_bool, params, "lastPage", JSON_UTIL_OPTIONAL, &last);
        GET(call, json_util_get_u32, params, "groupId", JSON_UTIL_OPTIONAL, &group);
        GET(call, json_util_get_u32, params, "count", JSON_UTIL_OPTIONAL, &count);
        if (count == 0 || count > SIMULATOR_MAX_COUNT)
                return varlink_call_error_invalid_parameter(call, "count");
        perm = (r_ ? FAULT_PERM_READ : 0) | (w_ ? FAULT_PERM_WRITE : 0) |
               (x_ ? FAULT_PERM_EXEC : 0) | (p_ ? FAULT_PERM_PRIV : 0);

        for (n = 0; n < count; n++) {
                r = backend_sim_inject_fault(hooks->backend, device, pasid,
                                             address + (uint64_t)n * 4096, perm,
                                             count > 1 ? true : last, group + n, &e);
                if (r < 0)
                        break;
        }
        if (r < 0 && n == 0) {
                ep = json_object_new_object();
                if (!ep)
                        return -ENOMEM;
                (void)json_util_add(ep, "device", json_object_new_string(device));
                if (r == -ENODEV)
                        return varlink_call_error(call, SIMULATOR_ERROR_NO_SUCH_DEVICE, ep);
                if (r == -ENOENT) {
                        if (pasid != BACKEND_NO_PASID)
                                (void)json_util_add(ep, "pasid", u64_node(pasid));
                        return varlink_call_error(call, SIMULATOR_ERROR_NOT_ATTACHED, ep);
                }
                json_object_put(ep);
                return varlink_call_error_errno(call, -r, error_message(&e));
        }
        out = json_object_new_object();
        if (!out)
                return -ENOMEM;
        (void)json_util_add(out, "injected", u64_node(n));
        return varlink_call_reply(call, out);
}

static int method_get_stats(VarlinkCall *call, json_object *params, VarlinkCallFlags flags,
                            void *userdata) {
        BackendSimStats st;
        json_object *out;

        if (!caller_allowed(call))
                return varlink_call_error(call, SIMULATOR_ERROR_PERMISSION_DENIED, NULL);
        backend_sim_get_stats(hooks->backend, &st);
        out = json_object_new_object();
        if (!out)
                return -ENOMEM;
        (void)json_util_add(out, "injected", u64_node(st.faults_injected));
        (void)json_util_add(out, "delivered", u64_node(st.groups_delivered));
        (void)json_util_add(out, "responsesSuccess", u64_node(st.responses_success));
        (void)json_util_add(out, "responsesInvalid", u64_node(st.responses_invalid));
        (void)json_util_add(out, "autoInvalid", u64_node(st.auto_invalid));
        (void)json_util_add(out, "contexts", u64_node(st.contexts));
        (void)json_util_add(out, "objects", u64_node(st.objects));
        return varlink_call_reply(call, out);
}

static int reply_hotplug(VarlinkCall *call, const char *device, int r, const Error *e) {
        json_object *p;

        if (r >= 0)
                return varlink_call_reply(call, NULL);
        if (r == -EEXIST) {
                p = json_object_new_object();
                if (!p)
                        return -ENOMEM;
                (void)json_util_add(p, "device", json_object_new_string(device));
                return varlink_call_error(call, SIMULATOR_ERROR_DEVICE_PRESENT, p);
        }
        if (r != -ENODEV)
                return varlink_call_error_errno(call, -r, error_message(e));
        p = json_object_new_object();
        if (!p)
                return -ENOMEM;
        (void)json_util_add(p, "device", json_object_new_string(device));
        return varlink_call_error(call, SIMULATOR_ERROR_NO_SUCH_DEVICE, p);
}

static int method_set_driver(VarlinkCall *call, json_object *params, VarlinkCallFlags flags,
                             void *userdata) {
        const char *device = NULL, *driver = NULL;
        Error e = ERROR_INIT;
        int r;

        if (!caller_allowed(call))
                return varlink_call_error(call, SIMULATOR_ERROR_PERMISSION_DENIED, NULL);
        GET(call, json_util_get_string, params, "device", 0, &device);
        GET(call, json_util_get_string, params, "driver", JSON_UTIL_OPTIONAL, &driver);
        r = hooks->set_driver(hooks->userdata, device, driver, &e);
        return reply_hotplug(call, device, r, &e);
}

static int method_remove_device(VarlinkCall *call, json_object *params, VarlinkCallFlags flags,
                                void *userdata) {
        const char *device = NULL;
        Error e = ERROR_INIT;
        int r;

        if (!caller_allowed(call))
                return varlink_call_error(call, SIMULATOR_ERROR_PERMISSION_DENIED, NULL);
        GET(call, json_util_get_string, params, "device", 0, &device);
        r = hooks->remove_device(hooks->userdata, device, &e);
        return reply_hotplug(call, device, r, &e);
}

static int method_add_device(VarlinkCall *call, json_object *params, VarlinkCallFlags flags,
                             void *userdata) {
        const char *device = NULL;
        Error e = ERROR_INIT;
        int r;

        if (!caller_allowed(call))
                return varlink_call_error(call, SIMULATOR_ERROR_PERMISSION_DENIED, NULL);
        GET(call, json_util_get_string, params, "device", 0, &device);
        r = hooks->add_device(hooks->userdata, device, &e);
        return reply_hotplug(call, device, r, &e);
}

static const VarlinkMethod simulator_methods[] = {
        { "InjectFault", method_inject_fault },
        { "GetStats", method_get_stats },
        { "SetDriver", method_set_driver },
        { "RemoveDevice", method_remove_device },
        { "AddDevice", method_add_device },
        {},
};

static const VarlinkInterface simulator_interface = {
        .name = SIMULATOR_INTERFACE,
        .description = simulator_idl,
        .methods = simulator_methods,
        .errno_error = NULL,
};

const VarlinkInterface *simulator_interface_get(void) {
        return &simulator_interface;
}

int simulator_attach(VarlinkServer *s, const SimulatorHooks *h) {
        if (!h || !h->backend || !backend_is_sim(h->backend) || !h->set_driver ||
            !h->remove_device || !h->add_device)
                return -EINVAL;
        hooks = h;
        return varlink_server_add_interface(s, &simulator_interface);
}
