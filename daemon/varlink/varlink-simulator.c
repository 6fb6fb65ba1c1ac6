/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "assert-util.h"
#include "backend-sim.h"
#include "base64.h"
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

/* The most bytes one InjectDMA moves, and their base64 length. */
#define SIMULATOR_MAX_DMA (1024 * 1024)
#define SIMULATOR_MAX_DMA_BASE64 ((SIMULATOR_MAX_DMA + 2) / 3 * 4)

typedef struct InjectDmaParams {
        const char *device;
        uint32_t pasid;
        uint64_t iova;
        bool write;
        const char *data;
        uint64_t length;
} InjectDmaParams;

static const JsonDispatchField inject_dma_parameters[] = {
        { "device", JSON_DISPATCH_STRING, JSON_DISPATCH_REQUIRED,
          offsetof(InjectDmaParams, device) },
        { "pasid", JSON_DISPATCH_UINT32, JSON_DISPATCH_NULLABLE, offsetof(InjectDmaParams, pasid) },
        { "iova", JSON_DISPATCH_UINT64, JSON_DISPATCH_REQUIRED, offsetof(InjectDmaParams, iova) },
        { "write", JSON_DISPATCH_BOOL, JSON_DISPATCH_REQUIRED, offsetof(InjectDmaParams, write) },
        { "data", JSON_DISPATCH_STRING, JSON_DISPATCH_NULLABLE, offsetof(InjectDmaParams, data),
          .max = SIMULATOR_MAX_DMA_BASE64 },
        { "length", JSON_DISPATCH_UINT64, JSON_DISPATCH_NULLABLE,
          offsetof(InjectDmaParams, length), .min = 1, .max = SIMULATOR_MAX_DMA },
        {},
};

/* The buffer of the DMA: the bytes to write, decoded, or room for those to read. */
static int dma_buffer(VarlinkCall *call, const InjectDmaParams *p, void **ret, size_t *ret_n) {
        uint64_t last;
        int r;

        if (p->write) {
                if (!p->data)
                        return varlink_call_invalid_parameter(call, "data",
                                                              "a DMA write needs its data");
                r = base64_decode(p->data, strlen(p->data), ret, ret_n);
                if (r == -ENOMEM)
                        return r;
                if (r < 0 || *ret_n == 0 || *ret_n > SIMULATOR_MAX_DMA)
                        return varlink_call_invalid_parameter(
                                call, "data", "data is not base64 of 1 to %d bytes",
                                SIMULATOR_MAX_DMA);
                if (p->length != 0 && p->length != *ret_n)
                        return varlink_call_invalid_parameter(
                                call, "length", "length %" PRIu64 " is not the %zu bytes of data",
                                p->length, *ret_n);
        } else {
                if (p->data)
                        return varlink_call_invalid_parameter(call, "data",
                                                              "a DMA read takes no data");
                if (p->length == 0)
                        return varlink_call_invalid_parameter(call, "length",
                                                              "a DMA read needs a length");
                *ret_n = (size_t)p->length;
                *ret = malloc(*ret_n);
                if (!*ret)
                        return -ENOMEM;
        }
        if (ADD_OVERFLOW(p->iova, (uint64_t)*ret_n - 1, &last))
                return varlink_call_invalid_parameter(call, "length",
                                                      "0x%" PRIx64 " + %zu overflows 64 bits",
                                                      p->iova, *ret_n);
        return 0;
}

/* faulted, and what was read or where it faulted; or the error of a DMA that did not happen. */
static int reply_dma(VarlinkCall *call, const InjectDmaParams *p, const void *buf, size_t n,
                     int r, const BackendSimDmaFault *fault, const Error *e) {
        _cleanup_free_ char *coded = NULL;
        json_object *out;

        if (r == -ENODEV) {
                out = json_object_new_object();
                if (!out)
                        return -ENOMEM;
                (void)json_util_add(out, "device", json_object_new_string(p->device));
                return varlink_call_error(call, SIMULATOR_ERROR_NO_SUCH_DEVICE, out);
        }
        if (r < 0 && r != -EFAULT)
                return varlink_call_error_errno(call, -r, error_message(e));
        if (r == 0 && !p->write && base64_encode(buf, n, &coded) < 0)
                return -ENOMEM;
        out = json_object_new_object();
        if (!out)
                return -ENOMEM;
        (void)json_util_add(out, "faulted", json_object_new_boolean(r < 0));
        if (coded)
                (void)json_util_add(out, "data", json_object_new_string(coded));
        if (r < 0) {
                (void)json_util_add(out, "faultAddress", u64_node(fault->addr));
                (void)json_util_add(out, "faultReason", json_object_new_string(
                        backend_sim_dma_fault_reason_to_string(fault->reason)));
        }
        return varlink_call_reply(call, out);
}

static int method_inject_dma(VarlinkCall *call, json_object *params, VarlinkCallFlags flags,
                             void *userdata) {
        InjectDmaParams p = { .pasid = BACKEND_NO_PASID };
        BackendSimDmaFault fault = {};
        _cleanup_free_ void *buf = NULL;
        Error e = ERROR_INIT;
        size_t n = 0;
        int r;

        if (!caller_allowed(call))
                return varlink_call_error(call, SIMULATOR_ERROR_PERMISSION_DENIED, NULL);
        r = varlink_call_dispatch(call, params, inject_dma_parameters, &p);
        if (r < 0)
                return r;
        r = dma_buffer(call, &p, &buf, &n);
        if (r < 0)
                return r;
        r = backend_sim_dma(hooks->backend, p.device, p.pasid, p.iova, buf, n, p.write, &fault,
                            &e);
        return reply_dma(call, &p, buf, n, r, &fault, &e);
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
        (void)json_util_add(out, "mappings", u64_node(st.mappings));
        (void)json_util_add(out, "pinnedBytes", u64_node(st.pinned_bytes));
        (void)json_util_add(out, "lockedBytes", u64_node(st.locked_bytes));
        (void)json_util_add(out, "memoryFiles", u64_node(st.memory_files));
        (void)json_util_add(out, "dmaTransfers", u64_node(st.dma_transfers));
        (void)json_util_add(out, "dmaFaults", u64_node(st.dma_faults));
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
        { "InjectDMA", method_inject_dma, inject_dma_parameters },
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
