/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* What the host offers (GetFeatures), and dirty tracking of address spaces for live migration. */

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "iommud/iommud.h"
#include "json-util.h"
#include "libiommud-internal.h"
#include "macros.h"

struct IommudFeatures {
        json_object *reply; /* GetFeatures' parameters, as the IDL declares them */
};

_public_ int iommud_get_features(IommudClient *c, const uint32_t *device_id,
                                 IommudFeatures **ret, IommudError *err) {
        _cleanup_json_ json_object *p = iommud_params_new();
        VarlinkReply reply = VARLINK_REPLY_INIT;
        IommudFeatures *f;
        json_object *v;
        int r;

        if (!c || !ret)
                return iommud_error_setf(err, -EINVAL, "iommud_get_features: NULL argument");
        if (!p || (device_id && iommud_add_u64(p, "deviceId", *device_id) < 0))
                return iommud_nomem(err);
        r = iommud_call_fds(c, "GetFeatures", p, NULL, 0, &reply, err);
        if (r < 0)
                return r;
        if (!json_object_object_get_ex(reply.parameters, "backend", &v) ||
            !json_object_is_type(v, json_type_string)) {
                varlink_reply_clear(&reply);
                return iommud_error_setf(err, -EBADMSG,
                                         "iommud's reply to GetFeatures is malformed: no backend");
        }
        f = calloc(1, sizeof(*f));
        if (!f) {
                varlink_reply_clear(&reply);
                return iommud_nomem(err);
        }
        f->reply = json_object_get(reply.parameters);
        varlink_reply_clear(&reply);
        *ret = f;
        return 0;
}

_public_ IommudFeatures *iommud_features_free(IommudFeatures *f) {
        if (f) {
                json_object_put(f->reply);
                free(f);
        }
        return NULL;
}

_public_ const char *iommud_features_get_backend(const IommudFeatures *f) {
        json_object *v;

        if (!f || !json_object_object_get_ex(f->reply, "backend", &v))
                return NULL;
        return json_object_get_string(v);
}

static bool array_has(json_object *a, const char *name) {
        for (size_t i = 0; json_object_is_type(a, json_type_array) &&
                           i < json_object_array_length(a); i++)
                if (streq(json_object_get_string(json_object_array_get_idx(a, i)) ?: "", name))
                        return true;
        return false;
}

_public_ bool iommud_features_kernel_has(const IommudFeatures *f, const char *feature) {
        return f && feature && array_has(json_object_object_get(f->reply, "kernel"), feature);
}

_public_ bool iommud_features_device_has(const IommudFeatures *f, const char *capability) {
        json_object *d;

        if (!f || !capability || !json_object_object_get_ex(f->reply, "device", &d))
                return false;
        return array_has(json_object_object_get(d, "capabilities"), capability);
}

_public_ int iommud_features_get_policy(const IommudFeatures *f, const char *feature,
                                        bool *ret_offered, bool *ret_granted) {
        json_object *a;

        if (!f || !feature)
                return -EINVAL;
        a = json_object_object_get(f->reply, "policy");
        for (size_t i = 0; json_object_is_type(a, json_type_array) &&
                           i < json_object_array_length(a); i++) {
                json_object *e = json_object_array_get_idx(a, i);

                if (!streq(json_object_get_string(json_object_object_get(e, "feature")) ?: "",
                           feature))
                        continue;
                if (ret_offered)
                        *ret_offered = json_object_get_boolean(json_object_object_get(e, "offered"));
                if (ret_granted)
                        *ret_granted = json_object_get_boolean(json_object_object_get(e, "granted"));
                return 0;
        }
        return -ENOENT;
}

_public_ int iommud_create_dirty_address_space(IommudClient *c, uint32_t *ret_ioas_id,
                                               IommudError *err) {
        _cleanup_json_ json_object *p = iommud_params_new();
        VarlinkReply reply = VARLINK_REPLY_INIT;
        Error e = ERROR_INIT;
        uint32_t id;
        int r;

        if (!p || json_util_add(p, "dirtyTracking", json_object_new_boolean(true)) < 0)
                return iommud_nomem(err);
        r = iommud_call_fds(c, "CreateAddressSpace", p, NULL, 0, &reply, err);
        if (r < 0)
                return r;
        r = json_util_get_u32(reply.parameters, "ioasId", 0, &id, &e);
        varlink_reply_clear(&reply);
        if (r < 0)
                return iommud_bad_reply(err, "CreateAddressSpace", &e);
        if (ret_ioas_id)
                *ret_ioas_id = id;
        return 0;
}

_public_ int iommud_set_dirty_tracking(IommudClient *c, uint32_t ioas_id, bool enabled,
                                       IommudError *err) {
        _cleanup_json_ json_object *p = iommud_params_new();

        if (!p || iommud_add_u64(p, "ioasId", ioas_id) < 0 ||
            json_util_add(p, "enabled", json_object_new_boolean(enabled)) < 0)
                return iommud_nomem(err);
        return iommud_call_void(c, "SetDirtyTracking", p, err);
}

_public_ int iommud_read_dirty_bitmap(IommudClient *c, uint32_t ioas_id, uint64_t iova,
                                      uint64_t length, uint64_t page_size, bool clear,
                                      int bitmap_fd, IommudError *err) {
        _cleanup_json_ json_object *p = iommud_params_new();
        VarlinkReply reply = VARLINK_REPLY_INIT;
        int r;

        if (!p || iommud_add_u64(p, "ioasId", ioas_id) < 0 || iommud_add_u64(p, "iova", iova) < 0 ||
            iommud_add_u64(p, "length", length) < 0 ||
            iommud_add_u64(p, "pageSize", page_size) < 0 ||
            json_util_add(p, "clear", json_object_new_boolean(clear)) < 0 ||
            iommud_add_u64(p, "bitmapFd", 0) < 0)
                return iommud_nomem(err);
        r = iommud_call_fds(c, "ReadDirtyBitmap", p, &bitmap_fd, 1, &reply, err);
        varlink_reply_clear(&reply);
        return r;
}

_public_ int iommud_unmap_dirty(IommudClient *c, uint32_t ioas_id, uint64_t iova,
                                uint64_t length, uint64_t page_size, int bitmap_fd,
                                uint64_t *ret_unmapped, IommudError *err) {
        _cleanup_json_ json_object *p = iommud_params_new();
        VarlinkReply reply = VARLINK_REPLY_INIT;
        Error e = ERROR_INIT;
        uint64_t v;
        int r;

        if (!p || iommud_add_u64(p, "ioasId", ioas_id) < 0 || iommud_add_u64(p, "iova", iova) < 0 ||
            iommud_add_u64(p, "length", length) < 0 ||
            iommud_add_u64(p, "dirtyBitmapFd", 0) < 0 ||
            iommud_add_u64(p, "pageSize", page_size) < 0)
                return iommud_nomem(err);
        r = iommud_call_fds(c, "Unmap", p, &bitmap_fd, 1, &reply, err);
        if (r < 0)
                return r;
        r = json_util_get_u64(reply.parameters, "unmapped", 0, &v, &e);
        varlink_reply_clear(&reply);
        if (r < 0)
                return iommud_bad_reply(err, "Unmap", &e);
        if (ret_unmapped)
                *ret_unmapped = v;
        return 0;
}
