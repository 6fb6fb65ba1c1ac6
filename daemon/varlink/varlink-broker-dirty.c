/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * org.iommud.Broker: what the host offers (GetFeatures) and dirty tracking for live migration
 * (SetDirtyTracking, ReadDirtyBitmap; CreateAddressSpace and Unmap take their dirty-tracking
 * parameters in varlink-broker-ioas.c).
 */

#include <errno.h>
#include <stddef.h>
#include <unistd.h>

#include <json-c/json.h>

#include "backend-names.h"
#include "json-util.h"
#include "varlink-broker-internal.h"

typedef struct SetDirtyParams {
        uint32_t ioas_id;
        bool enabled;
} SetDirtyParams;

const JsonDispatchField broker_set_dirty_tracking_parameters[] = {
        { "ioasId", JSON_DISPATCH_UINT32, JSON_DISPATCH_REQUIRED,
          offsetof(SetDirtyParams, ioas_id) },
        { "enabled", JSON_DISPATCH_BOOL, JSON_DISPATCH_REQUIRED, offsetof(SetDirtyParams, enabled) },
        {},
};

int broker_method_set_dirty_tracking(VarlinkCall *call, json_object *params,
                                     VarlinkCallFlags flags, void *userdata) {
        BrokerError e = BROKER_ERROR_INIT;
        SetDirtyParams p = {};
        int r;

        REQUIRE_SESSION(call);
        r = varlink_call_dispatch(call, params, broker_set_dirty_tracking_parameters, &p);
        if (r < 0)
                return r;
        if (session_set_dirty_tracking(broker_call_session(call), p.ioas_id, p.enabled, &e) < 0)
                return broker_reply_error(call, &e);
        return broker_reply(call, NULL);
}

typedef struct ReadDirtyParams {
        SessionDirtyArgs args;
        JsonDispatchFd bitmap;
} ReadDirtyParams;

const JsonDispatchField broker_read_dirty_bitmap_parameters[] = {
        { "ioasId", JSON_DISPATCH_UINT32, JSON_DISPATCH_REQUIRED,
          offsetof(ReadDirtyParams, args.ioas_id) },
        { "iova", JSON_DISPATCH_UINT64, JSON_DISPATCH_REQUIRED,
          offsetof(ReadDirtyParams, args.iova) },
        { "length", JSON_DISPATCH_UINT64, JSON_DISPATCH_REQUIRED,
          offsetof(ReadDirtyParams, args.length) },
        { "pageSize", JSON_DISPATCH_UINT64, JSON_DISPATCH_REQUIRED,
          offsetof(ReadDirtyParams, args.page_size) },
        { "clear", JSON_DISPATCH_BOOL, JSON_DISPATCH_REQUIRED,
          offsetof(ReadDirtyParams, args.clear) },
        { "bitmapFd", JSON_DISPATCH_FD_INDEX, JSON_DISPATCH_REQUIRED,
          offsetof(ReadDirtyParams, bitmap) },
        {},
};

int broker_method_read_dirty_bitmap(VarlinkCall *call, json_object *params,
                                    VarlinkCallFlags flags, void *userdata) {
        BrokerError e = BROKER_ERROR_INIT;
        _cleanup_close_ int fd = -EBADF;
        ReadDirtyParams p = {};
        int r;

        REQUIRE_SESSION(call);
        r = varlink_call_dispatch(call, params, broker_read_dirty_bitmap_parameters, &p);
        if (r < 0)
                return r;
        p.args.bitmap_fd = fd = p.bitmap.fd;
        if (session_read_dirty_bitmap(broker_call_session(call), &p.args, &e) < 0)
                return broker_reply_error_fd(call, &e, p.bitmap.index);
        return broker_reply(call, NULL);
}

typedef struct GetFeaturesParams {
        uint32_t device_id;
        bool has_device;
} GetFeaturesParams;

const JsonDispatchField broker_get_features_parameters[] = {
        { "deviceId", JSON_DISPATCH_UINT32, JSON_DISPATCH_NULLABLE,
          offsetof(GetFeaturesParams, device_id),
          .presence = JSON_DISPATCH_PRESENCE(GetFeaturesParams, has_device) },
        {},
};

static json_object *strv_json(const char *const *names, int n) {
        json_object *a = json_object_new_array();

        for (int i = 0; a && i < n; i++)
                json_object_array_add(a, json_object_new_string(names[i]));
        return a;
}

static const char *iommu_type_name(uint32_t type) {
        switch (type) {
        case BACKEND_HW_INFO_TYPE_INTEL_VTD: return "intel-vtd";
        case BACKEND_HW_INFO_TYPE_ARM_SMMUV3: return "arm-smmuv3";
        default: return "none";
        }
}

static json_object *device_features_json(const SessionFeatures *f) {
        json_object *o = json_object_new_object();
        const char *names[16];
        int n;

        if (!o)
                return NULL;
        n = backend_hw_caps_to_strv(f->hw.capabilities, names, ELEMENTSOF(names));
        (void)json_util_add(o, "deviceId", json_object_new_int64(f->device_id));
        (void)json_util_add(o, "iommuType", json_object_new_string(iommu_type_name(f->hw.type)));
        (void)json_util_add(o, "pasidBits", json_object_new_int64(f->hw.max_pasid_log2));
        (void)json_util_add(o, "capabilities", strv_json(names, n < 0 ? 0 : n));
        return o;
}

static json_object *feature_state_json(const char *feature, bool offered, bool granted) {
        json_object *o = json_object_new_object();

        if (!o)
                return NULL;
        (void)json_util_add(o, "feature", json_object_new_string(feature));
        (void)json_util_add(o, "offered", json_object_new_boolean(offered));
        (void)json_util_add(o, "granted", json_object_new_boolean(granted));
        return o;
}

int broker_method_get_features(VarlinkCall *call, json_object *params, VarlinkCallFlags flags,
                               void *userdata) {
        BrokerError e = BROKER_ERROR_INIT;
        GetFeaturesParams p = {};
        SessionFeatures f;
        const char *names[32];
        json_object *out, *policy;
        int n, r;

        REQUIRE_SESSION(call);
        r = varlink_call_dispatch(call, params, broker_get_features_parameters, &p);
        if (r < 0)
                return r;
        if (session_get_features(broker_call_session(call), p.has_device, p.device_id, &f, &e) < 0)
                return broker_reply_error(call, &e);
        out = json_object_new_object();
        policy = json_object_new_array();
        if (!out || !policy) {
                json_object_put(out);
                json_object_put(policy);
                return -ENOMEM;
        }
        n = backend_features_to_strv(f.kernel, names, ELEMENTSOF(names));
        (void)json_util_add(out, "backend", json_object_new_string(f.backend));
        (void)json_util_add(out, "kernel", strv_json(names, n < 0 ? 0 : n));
        if (f.has_device)
                (void)json_util_add(out, "device", device_features_json(&f));
        json_object_array_add(policy, feature_state_json("dirty-tracking", f.dirty_tracking_offered,
                                                         f.dirty_tracking_granted));
        json_object_array_add(policy, feature_state_json("delegation",
                                                         f.delegation_offered,
                                                         f.delegation_granted));
        (void)json_util_add(out, "policy", policy);
        return broker_reply(call, out);
}
