/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * org.iommud.Broker: devices in a session and in its address spaces (AttachDevice,
 * DetachDevice, GetDeviceFd, AttachToAddressSpace).
 */

#include <errno.h>
#include <stddef.h>
#include <unistd.h>

#include <json-c/json.h>

#include "backend-names.h"
#include "json-util.h"
#include "varlink-broker-internal.h"

static json_object *capabilities_json(uint64_t caps) {
        json_object *a = json_object_new_array();
        const char *names[16];
        int n;

        if (!a)
                return NULL;
        n = backend_hw_caps_to_strv(caps, names, ELEMENTSOF(names));
        for (int i = 0; i < n; i++)
                json_object_array_add(a, json_object_new_string(names[i]));
        return a;
}

typedef struct AttachDeviceParams {
        JsonDispatchFd fd;
        const char *device;
} AttachDeviceParams;

const JsonDispatchField broker_attach_device_parameters[] = {
        { "fd", JSON_DISPATCH_FD_INDEX, JSON_DISPATCH_NULLABLE, offsetof(AttachDeviceParams, fd) },
        { "device", JSON_DISPATCH_STRING, JSON_DISPATCH_NULLABLE,
          offsetof(AttachDeviceParams, device) },
        {},
};

int broker_method_attach_device(VarlinkCall *call, json_object *params, VarlinkCallFlags flags,
                                void *userdata) {
        BrokerError e = BROKER_ERROR_INIT;
        AttachDeviceParams p = {};
        SessionDeviceInfo info;
        _cleanup_close_ int fd = -EBADF;
        json_object *out;
        int r;

        REQUIRE_SESSION(call);
        r = varlink_call_dispatch(call, params, broker_attach_device_parameters, &p);
        if (r < 0)
                return r;
        fd = p.fd.fd;
        if ((fd >= 0) == !!p.device)
                return varlink_call_invalid_parameter(call, fd >= 0 ? "device" : "fd",
                                                      "exactly one of 'fd' (a VFIO device fd) "
                                                      "and 'device' (a device name) must be given");

        if (fd >= 0)
                r = session_attach_device_fd(broker_call_session(call), fd, &info, &e);
        else
                r = session_attach_device_name(broker_call_session(call), p.device, &info, &e);
        if (r < 0)
                return broker_reply_error_fd(call, &e, p.fd.index);

        out = json_object_new_object();
        if (!out)
                return -ENOMEM;
        (void)json_util_add(out, "deviceId", json_object_new_int64(info.device_id));
        (void)json_util_add(out, "bdf", json_object_new_string(info.bdf));
        if (info.group != UINT32_MAX)
                (void)json_util_add(out, "group", json_object_new_int64(info.group));
        (void)json_util_add(out, "pasidBits", json_object_new_int64(info.pasid_bits));
        (void)json_util_add(out, "capabilities", capabilities_json(info.capabilities));
        return broker_reply(call, out);
}

/* {deviceId}: DetachDevice and GetDeviceFd name one device. */
const JsonDispatchField broker_device_id_parameters[] = {
        { "deviceId", JSON_DISPATCH_UINT32, JSON_DISPATCH_REQUIRED, 0 },
        {},
};

int broker_method_detach_device(VarlinkCall *call, json_object *params, VarlinkCallFlags flags,
                                void *userdata) {
        BrokerError e = BROKER_ERROR_INIT;
        uint32_t id = 0;
        int r;

        REQUIRE_SESSION(call);
        r = varlink_call_dispatch(call, params, broker_device_id_parameters, &id);
        if (r < 0)
                return r;
        if (session_detach_device(broker_call_session(call), id, &e) < 0)
                return broker_reply_error(call, &e);
        return broker_reply(call, NULL);
}

int broker_method_get_device_fd(VarlinkCall *call, json_object *params, VarlinkCallFlags flags,
                                void *userdata) {
        BrokerError e = BROKER_ERROR_INIT;
        uint32_t id = 0;
        int fd, r;

        REQUIRE_SESSION(call);
        r = varlink_call_dispatch(call, params, broker_device_id_parameters, &id);
        if (r < 0)
                return r;
        if (session_device_fd(broker_call_session(call), id, &fd, &e) < 0)
                return broker_reply_error(call, &e);
        return broker_reply_fd(call, "deviceFd", fd);
}

typedef struct DeviceIoasParams {
        uint32_t device_id, ioas_id;
} DeviceIoasParams;

const JsonDispatchField broker_attach_to_address_space_parameters[] = {
        { "deviceId", JSON_DISPATCH_UINT32, JSON_DISPATCH_REQUIRED,
          offsetof(DeviceIoasParams, device_id) },
        { "ioasId", JSON_DISPATCH_UINT32, JSON_DISPATCH_REQUIRED,
          offsetof(DeviceIoasParams, ioas_id) },
        {},
};

int broker_method_attach_to_address_space(VarlinkCall *call, json_object *params,
                                          VarlinkCallFlags flags, void *userdata) {
        BrokerError e = BROKER_ERROR_INIT;
        DeviceIoasParams p = {};
        json_object *out;
        uint32_t hwpt;
        int r;

        REQUIRE_SESSION(call);
        r = varlink_call_dispatch(call, params, broker_attach_to_address_space_parameters, &p);
        if (r < 0)
                return r;
        if (session_attach_to_address_space(broker_call_session(call), p.device_id, p.ioas_id,
                                            &hwpt, &e) < 0)
                return broker_reply_error(call, &e);
        out = json_object_new_object();
        if (!out)
                return -ENOMEM;
        (void)json_util_add(out, "hwptId", json_object_new_int64(hwpt));
        return broker_reply(call, out);
}
