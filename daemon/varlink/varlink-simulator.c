/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <inttypes.h>

#include <json-c/json.h>

#include "assert-util.h"
#include "backend-sim.h"
#include "json-util.h"
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

typedef struct InjectFaultParams {
        const char *device;
        uint32_t pasid;
        uint64_t address;
        bool read, write, exec, privileged, last_page;
        uint32_t group, count;
} InjectFaultParams;

static const JsonDispatchField inject_fault_parameters[] = {
        { "device", JSON_DISPATCH_STRING, JSON_DISPATCH_REQUIRED,
          offsetof(InjectFaultParams, device) },
        { "pasid", JSON_DISPATCH_UINT32, JSON_DISPATCH_NULLABLE,
          offsetof(InjectFaultParams, pasid) },
        { "address", JSON_DISPATCH_UINT64, JSON_DISPATCH_REQUIRED,
          offsetof(InjectFaultParams, address) },
        { "read", JSON_DISPATCH_BOOL, JSON_DISPATCH_NULLABLE, offsetof(InjectFaultParams, read) },
        { "write", JSON_DISPATCH_BOOL, JSON_DISPATCH_NULLABLE, offsetof(InjectFaultParams, write) },
        { "exec", JSON_DISPATCH_BOOL, JSON_DISPATCH_NULLABLE, offsetof(InjectFaultParams, exec) },
        { "privileged", JSON_DISPATCH_BOOL, JSON_DISPATCH_NULLABLE,
          offsetof(InjectFaultParams, privileged) },
        { "lastPage", JSON_DISPATCH_BOOL, JSON_DISPATCH_NULLABLE,
          offsetof(InjectFaultParams, last_page) },
        { "groupId", JSON_DISPATCH_UINT32, JSON_DISPATCH_NULLABLE,
          offsetof(InjectFaultParams, group) },
        { "count", JSON_DISPATCH_UINT32, JSON_DISPATCH_NULLABLE, offsetof(InjectFaultParams, count),
          .min = 1, .max = SIMULATOR_MAX_COUNT },
        {},
};

/* The fault counters of the model, or the error of the first fault that could not be raised. */
static int reply_injected(VarlinkCall *call, const InjectFaultParams *p, uint32_t n, int r,
                          const Error *e) {
        json_object *out, *ep;

        if (r < 0 && n == 0) {
                ep = json_object_new_object();
                if (!ep)
                        return -ENOMEM;
                (void)json_util_add(ep, "device", json_object_new_string(p->device));
                if (r == -ENODEV)
                        return varlink_call_error(call, SIMULATOR_ERROR_NO_SUCH_DEVICE, ep);
                if (r == -ENOENT) {
                        if (p->pasid != BACKEND_NO_PASID)
                                (void)json_util_add(ep, "pasid", u64_node(p->pasid));
                        return varlink_call_error(call, SIMULATOR_ERROR_NOT_ATTACHED, ep);
                }
                json_object_put(ep);
                return varlink_call_error_errno(call, -r, error_message(e));
        }
        out = json_object_new_object();
        if (!out)
                return -ENOMEM;
        (void)json_util_add(out, "injected", u64_node(n));
        return varlink_call_reply(call, out);
}

static int method_inject_fault(VarlinkCall *call, json_object *params, VarlinkCallFlags flags,
                               void *userdata) {
        InjectFaultParams p = { .pasid = BACKEND_NO_PASID, .last_page = true, .count = 1 };
        Error e = ERROR_INIT;
        uint32_t perm, n;
        int r = 0;

        if (!caller_allowed(call))
                return varlink_call_error(call, SIMULATOR_ERROR_PERMISSION_DENIED, NULL);
        r = varlink_call_dispatch(call, params, inject_fault_parameters, &p);
        if (r < 0)
                return r;
        perm = (p.read ? FAULT_PERM_READ : 0) | (p.write ? FAULT_PERM_WRITE : 0) |
               (p.exec ? FAULT_PERM_EXEC : 0) | (p.privileged ? FAULT_PERM_PRIV : 0);

        for (n = 0; n < p.count; n++) {
                r = backend_sim_inject_fault(hooks->backend, p.device, p.pasid,
                                             p.address + (uint64_t)n * 4096, perm,
                                             p.count > 1 ? true : p.last_page, p.group + n, &e);
                if (r < 0)
                        break;
        }
        return reply_injected(call, &p, n, r, &e);
}

static int method_get_stats(VarlinkCall *call, json_object *params, VarlinkCallFlags flags,
                            void *userdata) {
        BackendSimStats st;
        json_object *out;
        int r;

        if (!caller_allowed(call))
                return varlink_call_error(call, SIMULATOR_ERROR_PERMISSION_DENIED, NULL);
        r = varlink_call_dispatch(call, params, NULL, NULL);
        if (r < 0)
                return r;
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
        (void)json_util_add(out, "deviceRequests", u64_node(st.device_requests));
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

typedef struct SetDriverParams {
        const char *device;
        const char *driver;
} SetDriverParams;

static const JsonDispatchField set_driver_parameters[] = {
        { "device", JSON_DISPATCH_STRING, JSON_DISPATCH_REQUIRED,
          offsetof(SetDriverParams, device) },
        { "driver", JSON_DISPATCH_STRING, JSON_DISPATCH_NULLABLE,
          offsetof(SetDriverParams, driver) },
        {},
};

/* {device}: the parameters of RemoveDevice and AddDevice. */
static const JsonDispatchField device_parameters[] = {
        { "device", JSON_DISPATCH_STRING, JSON_DISPATCH_REQUIRED, 0 },
        {},
};

static int method_set_driver(VarlinkCall *call, json_object *params, VarlinkCallFlags flags,
                             void *userdata) {
        SetDriverParams p = {};
        Error e = ERROR_INIT;
        int r;

        if (!caller_allowed(call))
                return varlink_call_error(call, SIMULATOR_ERROR_PERMISSION_DENIED, NULL);
        r = varlink_call_dispatch(call, params, set_driver_parameters, &p);
        if (r < 0)
                return r;
        r = hooks->set_driver(hooks->userdata, p.device, p.driver, &e);
        return reply_hotplug(call, p.device, r, &e);
}

static int method_remove_device(VarlinkCall *call, json_object *params, VarlinkCallFlags flags,
                                void *userdata) {
        const char *device = NULL;
        Error e = ERROR_INIT;
        int r;

        if (!caller_allowed(call))
                return varlink_call_error(call, SIMULATOR_ERROR_PERMISSION_DENIED, NULL);
        r = varlink_call_dispatch(call, params, device_parameters, &device);
        if (r < 0)
                return r;
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
        r = varlink_call_dispatch(call, params, device_parameters, &device);
        if (r < 0)
                return r;
        r = hooks->add_device(hooks->userdata, device, &e);
        return reply_hotplug(call, device, r, &e);
}

static const VarlinkMethod simulator_methods[] = {
        { "InjectFault", method_inject_fault, inject_fault_parameters },
        { "GetStats", method_get_stats },
        { "SetDriver", method_set_driver, set_driver_parameters },
        { "RemoveDevice", method_remove_device, device_parameters },
        { "AddDevice", method_add_device, device_parameters },
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
        assert_return(s && h && h->backend && backend_is_sim(h->backend), -EINVAL);
        assert_return(h->set_driver && h->remove_device && h->add_device, -EINVAL);
        hooks = h;
        return varlink_server_add_interface(s, &simulator_interface);
}
