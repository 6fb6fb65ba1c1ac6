/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "broker-idl.h"
#include "broker.h"
#include "json-util.h"
#include "log.h"
#include "peer-creds.h"

struct Broker {
        SessionHost *host;
        const char *dev_root;
        const char *proc_root;
};

/* ---- replies --------------------------------------------------------------------------- */

static json_object *u64_node(uint64_t v) {
        return v > INT64_MAX ? json_object_new_uint64(v) : json_object_new_int64((int64_t)v);
}

static int reply_error(VarlinkCall *call, const BrokerError *e) {
        json_object *p = json_object_new_object();

        if (!p)
                return -ENOMEM;
        for (size_t i = 0; i < e->n_params; i++) {
                const BrokerErrorParam *bp = &e->params[i];
                json_object *v = NULL;

                switch (bp->type) {
                case BROKER_PARAM_STRING:
                        v = json_object_new_string(bp->str);
                        break;
                case BROKER_PARAM_U64:
                        v = u64_node(bp->u64);
                        break;
                case BROKER_PARAM_I64:
                        v = json_object_new_int64(bp->i64);
                        break;
                case BROKER_PARAM_BOOL:
                        v = json_object_new_boolean(bp->b);
                        break;
                }
                (void)json_util_add(p, bp->key, v);
        }
        (void)json_util_add(p, "message", json_object_new_string(error_message(&e->error)));
        log_debug("%s: %s: %s", varlink_call_get_method(call),
                  e->error.name ?: BROKER_ERROR_BACKEND_ERROR, error_message(&e->error));
        return varlink_call_error(call, e->error.name ?: BROKER_ERROR_BACKEND_ERROR, p);
}

static int reply_invalid_parameter(VarlinkCall *call, const char *parameter, const char *fmt, ...)
        _printf_(3, 4);
static int reply_invalid_parameter(VarlinkCall *call, const char *parameter, const char *fmt, ...) {
        char reason[ERROR_MESSAGE_MAX];
        json_object *p;
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(reason, sizeof(reason), fmt, ap);
        va_end(ap);

        p = json_object_new_object();
        if (!p)
                return -ENOMEM;
        (void)json_util_add(p, "parameter", json_object_new_string(parameter));
        (void)json_util_add(p, "reason", json_object_new_string(reason));
        (void)json_util_add(p, "message", json_object_new_string(reason));
        return varlink_call_error(call, BROKER_ERROR_INVALID_PARAMETER, p);
}

static Session *call_session(VarlinkCall *call) {
        return varlink_connection_get_userdata(varlink_call_get_connection(call));
}

/*
 * Rejects members a method does not know: a typo ("iova " for "iova") must not
 * silently turn a fixed mapping into an automatic one.
 */
static int check_known(VarlinkCall *call, json_object *params, const char *const *known) {
        json_object_object_foreach(params, key, val) {
                bool ok = false;

                (void)val;
                for (const char *const *k = known; *k; k++)
                        if (streq(*k, key)) {
                                ok = true;
                                break;
                        }
                if (!ok)
                        return reply_invalid_parameter(call, key,
                                                       "parameter '%s' is not known to %s", key,
                                                       varlink_call_get_method(call)) < 0
                                       ? -ENOMEM
                                       : 1;
        }
        return 0;
}

#define CHECK_KNOWN(call, params, ...)                                                             \
        do {                                                                                       \
                static const char *const _known[] = { __VA_ARGS__, NULL };                         \
                int _r = check_known((call), (params), _known);                                    \
                if (_r != 0)                                                                       \
                        return _r < 0 ? _r : 0;                                                    \
        } while (0)

#define CHECK_NO_PARAMS(call, params)                                                              \
        do {                                                                                       \
                static const char *const _known[] = { NULL };                                      \
                int _r = check_known((call), (params), _known);                                    \
                if (_r != 0)                                                                       \
                        return _r < 0 ? _r : 0;                                                    \
        } while (0)

/* Runs a json_util getter; on failure replies InvalidParameter naming the member. */
#define GET(call, getter, params, name, flags, ret)                                                \
        do {                                                                                       \
                Error _e = ERROR_INIT;                                                             \
                if (getter((params), (name), (flags), (ret), &_e) < 0)                             \
                        return reply_invalid_parameter((call), (name), "%s",                       \
                                                       error_message(&_e));                        \
        } while (0)

static int take_fd_param(VarlinkCall *call, json_object *params, const char *name, int *ret_fd,
                         bool *ret_present) {
        uint32_t index = UINT32_MAX;
        Error e = ERROR_INIT;
        int r, fd;

        r = json_util_get_u32(params, name, JSON_UTIL_OPTIONAL, &index, &e);
        if (r < 0)
                return reply_invalid_parameter(call, name, "%s", error_message(&e)) < 0 ? -ENOMEM
                                                                                      : 1;
        if (index == UINT32_MAX) {
                *ret_present = false;
                return 0;
        }
        r = varlink_call_take_fd(call, index, &fd);
        if (r == -ENXIO)
                return reply_invalid_parameter(call, name,
                                               "parameter '%s': fd index %" PRIu32
                                               " does not exist, the call carried %zu fd(s)",
                                               name, index, varlink_call_get_n_fds(call)) < 0
                               ? -ENOMEM
                               : 1;
        if (r < 0)
                return reply_invalid_parameter(call, name,
                                               "parameter '%s': fd index %" PRIu32
                                               " was already used by another parameter",
                                               name, index) < 0
                               ? -ENOMEM
                               : 1;
        *ret_fd = fd;
        *ret_present = true;
        return 0;
}

#define TAKE_FD_PARAM(call, params, name, ret_fd, ret_present)                                     \
        do {                                                                                       \
                int _r = take_fd_param((call), (params), (name), (ret_fd), (ret_present));         \
                if (_r != 0)                                                                       \
                        return _r < 0 ? _r : 0;                                                    \
        } while (0)

static int reply(VarlinkCall *call, json_object *p) {
        return varlink_call_reply(call, p);
}

/* ---- methods --------------------------------------------------------------------------- */

static json_object *decision_steps_json(const PolicyDecision *d) {
        json_object *steps = json_object_new_array();

        if (!steps)
                return NULL;
        for (size_t i = 0; i < d->n_steps; i++) {
                json_object *s = json_object_new_object();

                if (!s)
                        break;
                (void)json_util_add(s, "step",
                                    json_object_new_string(policy_step_to_string(d->steps[i].step)));
                (void)json_util_add(
                        s, "verdict",
                        json_object_new_string(policy_verdict_to_string(d->steps[i].verdict)));
                (void)json_util_add(s, "reason",
                                    json_object_new_string(d->steps[i].reason ?: ""));
                json_object_array_add(steps, s);
        }
        return steps;
}

static int method_get_topology(VarlinkCall *call, json_object *params, VarlinkCallFlags flags,
                               void *userdata) {
        Broker *b = userdata;
        Session *s = call_session(call);
        const Topology *t = b->host->topology;
        json_object *topo = NULL, *groups = NULL, *devices;
        json_object *out;
        int r;

        CHECK_NO_PARAMS(call, params);

        r = topology_to_json(t, &topo);
        if (r < 0)
                return r;
        out = json_object_new_object();
        devices = json_object_new_array();
        if (!out || !devices) {
                json_object_put(topo);
                json_object_put(out);
                json_object_put(devices);
                return -ENOMEM;
        }
        if (json_object_object_get_ex(topo, "groups", &groups))
                (void)json_util_add(out, "groups", json_object_get(groups));

        for (size_t i = 0; i < t->n_devices; i++) {
                _cleanup_(policy_decision_clear) PolicyDecision dec = {};
                const TopoDevice *d = t->devices[i];
                json_object *dj = NULL;
                char node[4096];

                if (topo_device_to_json(d, &dj) < 0)
                        continue;
                if (d->cdev_name) {
                        snprintf(node, sizeof(node), "%s/vfio/devices/%s", b->dev_root,
                                 d->cdev_name);
                        (void)json_util_add(dj, "node", json_object_new_string(node));
                }
                if (session_explain_device(s, d->name, &dec, NULL) >= 0) {
                        (void)json_util_add(dj, "eligible", json_object_new_boolean(dec.allowed));
                        if (!dec.allowed) {
                                const char *reason = "";

                                for (size_t k = 0; k < dec.n_steps; k++)
                                        if (dec.steps[k].step == dec.failed_step)
                                                reason = dec.steps[k].reason ?: "";
                                (void)json_util_add(dj, "ineligibleStep",
                                                    json_object_new_string(policy_step_to_string(
                                                            dec.failed_step)));
                                (void)json_util_add(dj, "ineligibleReason",
                                                    json_object_new_string(reason));
                        }
                }
                json_object_array_add(devices, dj);
        }
        json_object_put(topo);
        (void)json_util_add(out, "devices", devices);
        return reply(call, out);
}

static int method_explain_device(VarlinkCall *call, json_object *params, VarlinkCallFlags flags,
                                 void *userdata) {
        _cleanup_(policy_decision_clear) PolicyDecision dec = {};
        BrokerError e = BROKER_ERROR_INIT;
        const char *device;
        json_object *out;

        CHECK_KNOWN(call, params, "device");
        GET(call, json_util_get_string, params, "device", 0, &device);

        if (session_explain_device(call_session(call), device, &dec, &e) < 0)
                return reply_error(call, &e);
        out = json_object_new_object();
        if (!out)
                return -ENOMEM;
        (void)json_util_add(out, "allowed", json_object_new_boolean(dec.allowed));
        (void)json_util_add(out, "steps", decision_steps_json(&dec));
        return reply(call, out);
}

static json_object *capabilities_json(uint64_t caps) {
        json_object *a = json_object_new_array();

        if (!a)
                return NULL;
        if (caps & BACKEND_HW_CAP_DIRTY_TRACKING)
                json_object_array_add(a, json_object_new_string("dirty-tracking"));
        if (caps & BACKEND_HW_CAP_PCI_PASID_EXEC)
                json_object_array_add(a, json_object_new_string("pasid-exec"));
        if (caps & BACKEND_HW_CAP_PCI_PASID_PRIV)
                json_object_array_add(a, json_object_new_string("pasid-priv"));
        return a;
}

static int method_attach_device(VarlinkCall *call, json_object *params, VarlinkCallFlags flags,
                                void *userdata) {
        BrokerError e = BROKER_ERROR_INIT;
        SessionDeviceInfo info;
        _cleanup_close_ int fd = -EBADF;
        const char *device = NULL;
        bool have_fd = false;
        json_object *out;
        int r;

        CHECK_KNOWN(call, params, "fd", "device");
        GET(call, json_util_get_string, params, "device", JSON_UTIL_OPTIONAL, &device);
        TAKE_FD_PARAM(call, params, "fd", &fd, &have_fd);
        if (have_fd == !!device)
                return reply_invalid_parameter(call, have_fd ? "device" : "fd",
                                               "exactly one of 'fd' (a VFIO device fd) and "
                                               "'device' (a device name) must be given");

        if (have_fd)
                r = session_attach_device_fd(call_session(call), fd, &info, &e);
        else
                r = session_attach_device_name(call_session(call), device, &info, &e);
        if (r < 0)
                return reply_error(call, &e);

        out = json_object_new_object();
        if (!out)
                return -ENOMEM;
        (void)json_util_add(out, "deviceId", json_object_new_int64(info.device_id));
        (void)json_util_add(out, "bdf", json_object_new_string(info.bdf));
        if (info.group != UINT32_MAX)
                (void)json_util_add(out, "group", json_object_new_int64(info.group));
        (void)json_util_add(out, "pasidBits", json_object_new_int64(info.pasid_bits));
        (void)json_util_add(out, "capabilities", capabilities_json(info.capabilities));
        return reply(call, out);
}

static int method_detach_device(VarlinkCall *call, json_object *params, VarlinkCallFlags flags,
                                void *userdata) {
        BrokerError e = BROKER_ERROR_INIT;
        uint32_t id;

        CHECK_KNOWN(call, params, "deviceId");
        GET(call, json_util_get_u32, params, "deviceId", 0, &id);
        if (session_detach_device(call_session(call), id, &e) < 0)
                return reply_error(call, &e);
        return reply(call, NULL);
}

static int method_create_address_space(VarlinkCall *call, json_object *params,
                                       VarlinkCallFlags flags, void *userdata) {
        BrokerError e = BROKER_ERROR_INIT;
        json_object *out;
        uint32_t id;

        CHECK_NO_PARAMS(call, params);
        if (session_create_address_space(call_session(call), &id, &e) < 0)
                return reply_error(call, &e);
        out = json_object_new_object();
        if (!out)
                return -ENOMEM;
        (void)json_util_add(out, "ioasId", json_object_new_int64(id));
        return reply(call, out);
}

static int method_destroy_address_space(VarlinkCall *call, json_object *params,
                                        VarlinkCallFlags flags, void *userdata) {
        BrokerError e = BROKER_ERROR_INIT;
        uint32_t id;

        CHECK_KNOWN(call, params, "ioasId");
        GET(call, json_util_get_u32, params, "ioasId", 0, &id);
        if (session_destroy_address_space(call_session(call), id, &e) < 0)
                return reply_error(call, &e);
        return reply(call, NULL);
}

static int method_attach_to_address_space(VarlinkCall *call, json_object *params,
                                          VarlinkCallFlags flags, void *userdata) {
        BrokerError e = BROKER_ERROR_INIT;
        uint32_t dev, ioas, hwpt;
        json_object *out;

        CHECK_KNOWN(call, params, "deviceId", "ioasId");
        GET(call, json_util_get_u32, params, "deviceId", 0, &dev);
        GET(call, json_util_get_u32, params, "ioasId", 0, &ioas);
        if (session_attach_to_address_space(call_session(call), dev, ioas, &hwpt, &e) < 0)
                return reply_error(call, &e);
        out = json_object_new_object();
        if (!out)
                return -ENOMEM;
        (void)json_util_add(out, "hwptId", json_object_new_int64(hwpt));
        return reply(call, out);
}

static json_object *range_json(uint64_t start, uint64_t last) {
        json_object *o = json_object_new_object();

        if (!o)
                return NULL;
        (void)json_util_add(o, "start", u64_node(start));
        (void)json_util_add(o, "last", u64_node(last));
        return o;
}

static int method_get_iova_ranges(VarlinkCall *call, json_object *params, VarlinkCallFlags flags,
                                  void *userdata) {
        BrokerError e = BROKER_ERROR_INIT;
        _cleanup_free_ IovaRange *ranges = NULL;
        json_object *out, *arr;
        uint64_t alignment;
        size_t n;
        uint32_t id;

        CHECK_KNOWN(call, params, "ioasId");
        GET(call, json_util_get_u32, params, "ioasId", 0, &id);
        if (session_get_iova_ranges(call_session(call), id, &ranges, &n, &alignment, &e) < 0)
                return reply_error(call, &e);
        out = json_object_new_object();
        arr = json_object_new_array();
        if (!out || !arr) {
                json_object_put(out);
                json_object_put(arr);
                return -ENOMEM;
        }
        for (size_t i = 0; i < n; i++)
                json_object_array_add(arr, range_json(ranges[i].start, ranges[i].last));
        (void)json_util_add(out, "ranges", arr);
        (void)json_util_add(out, "alignment", u64_node(alignment));
        return reply(call, out);
}

static int method_allow_iovas(VarlinkCall *call, json_object *params, VarlinkCallFlags flags,
                              void *userdata) {
        BrokerError e = BROKER_ERROR_INIT;
        _cleanup_free_ IovaRange *ranges = NULL;
        json_object *arr;
        uint32_t id;
        size_t n;

        CHECK_KNOWN(call, params, "ioasId", "ranges");
        GET(call, json_util_get_u32, params, "ioasId", 0, &id);
        GET(call, json_util_get_array, params, "ranges", 0, &arr);

        n = json_object_array_length(arr);
        if (n > 4096)
                return reply_invalid_parameter(call, "ranges",
                                               "parameter 'ranges': %zu ranges, at most 4096 are "
                                               "accepted",
                                               n);
        ranges = calloc(n + 1, sizeof(*ranges));
        if (!ranges)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                json_object *r = json_object_array_get_idx(arr, i);
                Error ge = ERROR_INIT;

                if (!json_object_is_type(r, json_type_object))
                        return reply_invalid_parameter(call, "ranges",
                                                       "parameter 'ranges[%zu]': expected an "
                                                       "object {start, last}, got %s",
                                                       i, json_util_type_phrase(r));
                if (json_util_get_u64(r, "start", 0, &ranges[i].start, &ge) < 0 ||
                    json_util_get_u64(r, "last", 0, &ranges[i].last, &ge) < 0)
                        return reply_invalid_parameter(call, "ranges", "ranges[%zu]: %s", i,
                                                       error_message(&ge));
        }
        if (session_allow_iovas(call_session(call), id, ranges, n, &e) < 0)
                return reply_error(call, &e);
        return reply(call, NULL);
}

static int method_map(VarlinkCall *call, json_object *params, VarlinkCallFlags flags,
                      void *userdata) {
        BrokerError e = BROKER_ERROR_INIT;
        _cleanup_close_ int fd = -EBADF;
        SessionMapArgs a = { .readable = true, .writeable = true };
        bool have_fd = false;
        json_object *out, *iova_node = NULL;
        uint64_t iova;

        CHECK_KNOWN(call, params, "ioasId", "memoryFd", "offset", "length", "iova", "readable",
                    "writeable");
        GET(call, json_util_get_u32, params, "ioasId", 0, &a.ioas_id);
        GET(call, json_util_get_u64, params, "offset", JSON_UTIL_OPTIONAL, &a.offset);
        GET(call, json_util_get_u64, params, "length", 0, &a.length);
        GET(call, json_util_get_bool, params, "readable", JSON_UTIL_OPTIONAL, &a.readable);
        GET(call, json_util_get_bool, params, "writeable", JSON_UTIL_OPTIONAL, &a.writeable);
        GET(call, json_util_get_u64, params, "iova", JSON_UTIL_OPTIONAL, &a.iova);
        if (json_object_object_get_ex(params, "iova", &iova_node) && iova_node)
                a.fixed_iova = true;
        TAKE_FD_PARAM(call, params, "memoryFd", &fd, &have_fd);
        if (!have_fd)
                return reply_invalid_parameter(call, "memoryFd",
                                               "parameter 'memoryFd' is missing: the index of "
                                               "the memfd sent with the call");
        a.fd = fd;

        if (session_map(call_session(call), &a, &iova, &e) < 0)
                return reply_error(call, &e);
        out = json_object_new_object();
        if (!out)
                return -ENOMEM;
        (void)json_util_add(out, "iova", u64_node(iova));
        return reply(call, out);
}

static int method_unmap(VarlinkCall *call, json_object *params, VarlinkCallFlags flags,
                        void *userdata) {
        BrokerError e = BROKER_ERROR_INIT;
        uint64_t iova, length, unmapped;
        json_object *out;
        uint32_t id;

        CHECK_KNOWN(call, params, "ioasId", "iova", "length");
        GET(call, json_util_get_u32, params, "ioasId", 0, &id);
        GET(call, json_util_get_u64, params, "iova", 0, &iova);
        GET(call, json_util_get_u64, params, "length", 0, &length);
        if (session_unmap(call_session(call), id, iova, length, &unmapped, &e) < 0)
                return reply_error(call, &e);
        out = json_object_new_object();
        if (!out)
                return -ENOMEM;
        (void)json_util_add(out, "unmapped", u64_node(unmapped));
        return reply(call, out);
}

static int method_copy(VarlinkCall *call, json_object *params, VarlinkCallFlags flags,
                       void *userdata) {
        BrokerError e = BROKER_ERROR_INIT;
        SessionCopyArgs a = {};
        json_object *out, *node = NULL;
        uint64_t iova;

        CHECK_KNOWN(call, params, "srcIoasId", "srcIova", "dstIoasId", "dstIova", "length");
        GET(call, json_util_get_u32, params, "srcIoasId", 0, &a.src_ioas_id);
        GET(call, json_util_get_u64, params, "srcIova", 0, &a.src_iova);
        GET(call, json_util_get_u32, params, "dstIoasId", 0, &a.dst_ioas_id);
        GET(call, json_util_get_u64, params, "dstIova", JSON_UTIL_OPTIONAL, &a.dst_iova);
        GET(call, json_util_get_u64, params, "length", 0, &a.length);
        if (json_object_object_get_ex(params, "dstIova", &node) && node)
                a.fixed_iova = true;
        if (session_copy(call_session(call), &a, &iova, &e) < 0)
                return reply_error(call, &e);
        out = json_object_new_object();
        if (!out)
                return -ENOMEM;
        (void)json_util_add(out, "iova", u64_node(iova));
        return reply(call, out);
}

static int method_not_supported(VarlinkCall *call, const char *feature) {
        BrokerError e = BROKER_ERROR_INIT;

        broker_error_not_supported(&e, feature,
                                   "%s is not implemented by this iommud yet; PASID binds and "
                                   "I/O page-fault streams come with the fault router.",
                                   varlink_call_get_method(call));
        return reply_error(call, &e);
}

static int method_bind_pasid(VarlinkCall *call, json_object *params, VarlinkCallFlags flags,
                             void *userdata) {
        return method_not_supported(call, "pasid");
}

static int method_unbind_pasid(VarlinkCall *call, json_object *params, VarlinkCallFlags flags,
                               void *userdata) {
        return method_not_supported(call, "pasid");
}

static int method_watch_faults(VarlinkCall *call, json_object *params, VarlinkCallFlags flags,
                               void *userdata) {
        return method_not_supported(call, "fault-queue");
}

static int method_respond_fault(VarlinkCall *call, json_object *params, VarlinkCallFlags flags,
                                void *userdata) {
        return method_not_supported(call, "fault-queue");
}

static int method_delegate(VarlinkCall *call, json_object *params, VarlinkCallFlags flags,
                           void *userdata) {
        BrokerError e = BROKER_ERROR_INIT;
        json_object *out;
        int fd;

        CHECK_NO_PARAMS(call, params);
        if (session_delegate(call_session(call), &fd, &e) < 0)
                return reply_error(call, &e);
        out = json_object_new_object();
        if (!out) {
                safe_close(fd);
                return -ENOMEM;
        }
        (void)json_util_add(out, "fd", json_object_new_int(0));
        return varlink_call_reply_with_fds(call, out, &fd, 1);
}

static json_object *quotas_json(const PolicyQuotas *q) {
        json_object *o = json_object_new_object();

        if (!o)
                return NULL;
        (void)json_util_add(o, BROKER_RESOURCE_PINNED_BYTES, u64_node(q->pinned_bytes));
        (void)json_util_add(o, BROKER_RESOURCE_ADDRESS_SPACES, u64_node(q->address_spaces));
        (void)json_util_add(o, BROKER_RESOURCE_MAPPINGS, u64_node(q->mappings));
        (void)json_util_add(o, BROKER_RESOURCE_DEVICES, u64_node(q->devices));
        return o;
}

static int method_get_session(VarlinkCall *call, json_object *params, VarlinkCallFlags flags,
                              void *userdata) {
        SessionInfo info;
        json_object *out, *pr, *groups;

        CHECK_NO_PARAMS(call, params);
        session_get_info(call_session(call), &info);

        out = json_object_new_object();
        pr = json_object_new_object();
        groups = json_object_new_array();
        if (!out || !pr || !groups) {
                json_object_put(out);
                json_object_put(pr);
                json_object_put(groups);
                return -ENOMEM;
        }
        (void)json_util_add(pr, "uid", json_object_new_int64(info.creds->uid));
        (void)json_util_add(pr, "gid", json_object_new_int64(info.creds->gid));
        (void)json_util_add(pr, "pid", json_object_new_int64(info.creds->pid));
        for (size_t i = 0; i < info.creds->n_groups; i++)
                json_object_array_add(groups, json_object_new_int64(info.creds->groups[i]));
        (void)json_util_add(pr, "groups", groups);
        if (info.creds->unit)
                (void)json_util_add(pr, "unit", json_object_new_string(info.creds->unit));
        (void)json_util_add(out, "principal", pr);
        (void)json_util_add(out, "usage", quotas_json(&info.usage));
        (void)json_util_add(out, "quotas", quotas_json(&info.quotas));
        return reply(call, out);
}

static const VarlinkMethod broker_methods[] = {
        { "GetTopology", method_get_topology },
        { "ExplainDevice", method_explain_device },
        { "AttachDevice", method_attach_device },
        { "DetachDevice", method_detach_device },
        { "CreateAddressSpace", method_create_address_space },
        { "DestroyAddressSpace", method_destroy_address_space },
        { "AttachToAddressSpace", method_attach_to_address_space },
        { "GetIOVARanges", method_get_iova_ranges },
        { "AllowIOVAs", method_allow_iovas },
        { "Map", method_map },
        { "Unmap", method_unmap },
        { "Copy", method_copy },
        { "BindPASID", method_bind_pasid },
        { "UnbindPASID", method_unbind_pasid },
        { "WatchFaults", method_watch_faults },
        { "RespondFault", method_respond_fault },
        { "Delegate", method_delegate },
        { "GetSession", method_get_session },
        {},
};

static const VarlinkInterface broker_interface = {
        .name = BROKER_INTERFACE,
        .description = broker_idl_text,
        .methods = broker_methods,
        .errno_error = BROKER_ERROR_BACKEND_ERROR,
};

/* ---- connections ----------------------------------------------------------------------- */

static int on_connect(VarlinkServer *server, VarlinkConnection *c, const struct ucred *cred,
                      int pidfd, void *userdata) {
        Broker *b = userdata;
        _cleanup_(peer_creds_freep) PeerCreds *creds = NULL;
        BrokerError e = BROKER_ERROR_INIT;
        PolicyQuotas q;
        Principal p;
        Session *s;
        int r;

        r = peer_creds_new(&creds, b->proc_root, cred->pid, cred->uid, cred->gid, &e.error);
        if (r < 0)
                return log_warning_errno(r, "Refusing client pid %d: %s", (int)cred->pid,
                                         error_message(&e.error));

        p = (Principal){ .uid = creds->uid, .gid = creds->gid, .groups = creds->groups,
                         .n_groups = creds->n_groups, .unit = creds->unit };
        policy_quotas(b->host->policy, &p, &q);
        if (session_host_count_uid(b->host, creds->uid) >= q.connections)
                return log_warning_errno(EDQUOT,
                                         "Refusing client pid %d: uid %u already has %" PRIu64
                                         " connection(s), its limit.",
                                         (int)cred->pid, (unsigned)creds->uid, q.connections);

        r = session_new(&s, b->host, creds, &e);
        if (r < 0)
                return log_warning_errno(r, "Refusing client pid %d: %s", (int)cred->pid,
                                         error_message(&e.error));
        TAKE_PTR(creds);
        session_set_userdata(s, c);
        varlink_connection_set_userdata(c, s);
        log_debug("Session for %s (pid %d) opened.", session_describe(s), (int)cred->pid);
        return 0;
}

static void on_disconnect(VarlinkServer *server, VarlinkConnection *c, void *userdata) {
        Session *s = varlink_connection_get_userdata(c);

        if (!s)
                return;
        log_debug("Session for %s closed.", session_describe(s));
        varlink_connection_set_userdata(c, NULL);
        session_free(s);
}

int broker_new(Broker **ret, SessionHost *host, const char *dev_root, const char *proc_root) {
        Broker *b = calloc(1, sizeof(*b));

        if (!b)
                return -ENOMEM;
        b->host = host;
        b->dev_root = dev_root;
        b->proc_root = proc_root;
        *ret = b;
        return 0;
}

Broker *broker_free(Broker *b) {
        free(b);
        return NULL;
}

int broker_attach(Broker *b, VarlinkServer *s) {
        int r;

        r = varlink_server_add_interface(s, &broker_interface);
        if (r < 0)
                return r;
        varlink_server_set_userdata(s, b);
        varlink_server_set_hooks(s, on_connect, on_disconnect);
        varlink_server_set_info(s, "iommud project", "iommud", PACKAGE_VERSION,
                                "https://github.com/iommud/iommud");
        return 0;
}
