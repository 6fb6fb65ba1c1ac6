/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* Address spaces, their IOVA windows and mappings, and the PASIDs bound into them. */

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "iommud/iommud.h"
#include "json-util.h"
#include "libiommud-internal.h"
#include "macros.h"

/* --------------------------------------------------------- address spaces */

/* Calls method and reads one unsigned member of its reply into *ret (if ret). */
static int call_get_u64(IommudClient *c, const char *method, json_object *p, const int *fds,
                        size_t n_fds, const char *key, uint64_t *ret, IommudError *err) {
        VarlinkReply reply = VARLINK_REPLY_INIT;
        Error e = ERROR_INIT;
        uint64_t v;
        int r;

        r = iommud_call_fds(c, method, p, fds, n_fds, &reply, err);
        if (r < 0)
                return r;
        r = json_util_get_u64(reply.parameters, key, 0, &v, &e);
        varlink_reply_clear(&reply);
        if (r < 0)
                return iommud_bad_reply(err, method, &e);
        if (ret)
                *ret = v;
        return 0;
}

static int call_get_u32(IommudClient *c, const char *method, json_object *p, const char *key,
                        uint32_t *ret, IommudError *err) {
        uint64_t v;
        int r;

        r = call_get_u64(c, method, p, NULL, 0, key, &v, err);
        if (r < 0)
                return r;
        if (v > UINT32_MAX)
                return iommud_error_setf(err, -EBADMSG,
                                         "iommud's reply to %s is malformed: %s %" PRIu64
                                         " does not fit 32 bits", method, key, v);
        if (ret)
                *ret = (uint32_t)v;
        return 0;
}

_public_ int iommud_create_address_space(IommudClient *c, uint32_t *ret_ioas_id,
                                         IommudError *err) {
        return call_get_u32(c, "CreateAddressSpace", NULL, "ioasId", ret_ioas_id, err);
}

_public_ int iommud_destroy_address_space(IommudClient *c, uint32_t ioas_id, IommudError *err) {
        _cleanup_json_ json_object *p = iommud_params_new();

        if (!p || iommud_add_u64(p, "ioasId", ioas_id) < 0)
                return iommud_nomem(err);
        return iommud_call_void(c, "DestroyAddressSpace", p, err);
}

_public_ int iommud_attach_to_address_space(IommudClient *c, uint32_t device_id, uint32_t ioas_id,
                                            uint32_t *ret_hwpt_id, IommudError *err) {
        _cleanup_json_ json_object *p = iommud_params_new();

        if (!p || iommud_add_u64(p, "deviceId", device_id) < 0 ||
            iommud_add_u64(p, "ioasId", ioas_id) < 0)
                return iommud_nomem(err);
        return call_get_u32(c, "AttachToAddressSpace", p, "hwptId", ret_hwpt_id, err);
}

_public_ int iommud_get_iova_ranges(IommudClient *c, uint32_t ioas_id,
                                    IommudIOVARange **ret_ranges, size_t *ret_n_ranges,
                                    uint64_t *ret_alignment, IommudError *err) {
        _cleanup_json_ json_object *p = iommud_params_new();
        _cleanup_free_ IommudIOVARange *v = NULL;
        VarlinkReply reply = VARLINK_REPLY_INIT;
        json_object *ranges;
        uint64_t alignment = 0;
        Error e = ERROR_INIT;
        size_t n = 0;
        int r;

        if (!ret_ranges || !ret_n_ranges)
                return iommud_error_setf(err, -EINVAL, "no place to return the ranges");
        if (!p || iommud_add_u64(p, "ioasId", ioas_id) < 0)
                return iommud_nomem(err);
        r = iommud_call(c, "GetIOVARanges", p, &reply, err);
        if (r < 0)
                return r;
        r = json_util_get_array(reply.parameters, "ranges", 0, &ranges, &e);
        if (r >= 0)
                r = json_util_get_u64(reply.parameters, "alignment", JSON_UTIL_OPTIONAL, &alignment,
                                      &e);
        if (r >= 0) {
                n = json_object_array_length(ranges);
                if (n > 0 && !(v = calloc(n, sizeof(*v))))
                        r = -ENOMEM;
        }
        for (size_t i = 0; r >= 0 && i < n; i++) {
                json_object *o;

                if ((r = iommud_object_at(ranges, i, "ranges", &o, &e)) >= 0 &&
                    (r = json_util_get_u64(o, "start", 0, &v[i].start, &e)) >= 0)
                        r = json_util_get_u64(o, "last", 0, &v[i].last, &e);
        }
        varlink_reply_clear(&reply);
        if (r == -ENOMEM)
                return iommud_nomem(err);
        if (r < 0)
                return iommud_bad_reply(err, "GetIOVARanges", &e);
        *ret_ranges = TAKE_PTR(v);
        *ret_n_ranges = n;
        if (ret_alignment)
                *ret_alignment = alignment;
        return 0;
}

/* Adds ranges as the array key of p: AllowIOVAs and UnmapBatch take them alike. */
int iommud_add_ranges(json_object *p, const char *key, const IommudIOVARange *ranges, size_t n) {
        json_object *a = json_object_new_array();

        if (json_util_add(p, key, a) < 0)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                json_object *o = json_object_new_object();

                if (!o || iommud_add_u64(o, "start", ranges[i].start) < 0 ||
                    iommud_add_u64(o, "last", ranges[i].last) < 0 ||
                    json_object_array_add(a, o) < 0) {
                        json_object_put(o);
                        return -ENOMEM;
                }
        }
        return 0;
}

_public_ int iommud_allow_iovas(IommudClient *c, uint32_t ioas_id, const IommudIOVARange *ranges,
                                size_t n_ranges, IommudError *err) {
        _cleanup_json_ json_object *p = iommud_params_new();

        if (n_ranges > 0 && !ranges)
                return iommud_error_setf(err, -EINVAL, "no ranges given");
        if (!p || iommud_add_u64(p, "ioasId", ioas_id) < 0 ||
            iommud_add_ranges(p, "ranges", ranges, n_ranges) < 0)
                return iommud_nomem(err);
        return iommud_call_void(c, "AllowIOVAs", p, err);
}

_public_ int iommud_map(IommudClient *c, uint32_t ioas_id, int memory_fd, uint64_t offset,
                        uint64_t length, const uint64_t *iova, unsigned flags, uint64_t *ret_iova,
                        IommudError *err) {
        _cleanup_json_ json_object *p = iommud_params_new();

        if (memory_fd < 0)
                return iommud_error_setf(err, -EBADF, "%d is not a file descriptor", memory_fd);
        if (flags & ~(unsigned)(IOMMUD_MAP_READABLE | IOMMUD_MAP_WRITEABLE))
                return iommud_error_setf(err, -EINVAL, "unknown map flags 0x%x", flags);
        if (!p || iommud_add_u64(p, "ioasId", ioas_id) < 0 ||
            iommud_add_u64(p, "memoryFd", 0) < 0 || iommud_add_u64(p, "offset", offset) < 0 ||
            iommud_add_u64(p, "length", length) < 0 ||
            (iova && iommud_add_u64(p, "iova", *iova) < 0) ||
            json_util_add(p, "readable", json_object_new_boolean(flags & IOMMUD_MAP_READABLE)) <
                    0 ||
            json_util_add(p, "writeable", json_object_new_boolean(flags & IOMMUD_MAP_WRITEABLE)) <
                    0)
                return iommud_nomem(err);
        return call_get_u64(c, "Map", p, &memory_fd, 1, "iova", ret_iova, err);
}

_public_ int iommud_unmap(IommudClient *c, uint32_t ioas_id, uint64_t iova, uint64_t length,
                          uint64_t *ret_unmapped, IommudError *err) {
        _cleanup_json_ json_object *p = iommud_params_new();

        if (!p || iommud_add_u64(p, "ioasId", ioas_id) < 0 || iommud_add_u64(p, "iova", iova) < 0 ||
            iommud_add_u64(p, "length", length) < 0)
                return iommud_nomem(err);
        return call_get_u64(c, "Unmap", p, NULL, 0, "unmapped", ret_unmapped, err);
}

_public_ int iommud_copy(IommudClient *c, uint32_t src_ioas_id, uint64_t src_iova,
                         uint32_t dst_ioas_id, const uint64_t *dst_iova, uint64_t length,
                         uint64_t *ret_iova, IommudError *err) {
        _cleanup_json_ json_object *p = iommud_params_new();

        if (!p || iommud_add_u64(p, "srcIoasId", src_ioas_id) < 0 ||
            iommud_add_u64(p, "srcIova", src_iova) < 0 ||
            iommud_add_u64(p, "dstIoasId", dst_ioas_id) < 0 ||
            (dst_iova && iommud_add_u64(p, "dstIova", *dst_iova) < 0) ||
            iommud_add_u64(p, "length", length) < 0)
                return iommud_nomem(err);
        return call_get_u64(c, "Copy", p, NULL, 0, "iova", ret_iova, err);
}

/* ----------------------------------------------------------------- PASIDs */

/* The stage-1 table as the IDL's Stage1: {type, data as lowercase hex}. */
static json_object *stage1_json(const IommudStage1 *s1) {
        static const char hex[] = "0123456789abcdef";
        _cleanup_free_ char *text = malloc(s1->size * 2 + 1);
        json_object *o;

        if (!text)
                return NULL;
        for (size_t i = 0; i < s1->size; i++) {
                text[2 * i] = hex[((const uint8_t *)s1->data)[i] >> 4];
                text[2 * i + 1] = hex[((const uint8_t *)s1->data)[i] & 0xf];
        }
        text[s1->size * 2] = 0;
        o = json_object_new_object();
        if (!o || iommud_add_str(o, "type", s1->type) < 0 || iommud_add_str(o, "data", text) < 0) {
                json_object_put(o);
                return NULL;
        }
        return o;
}

_public_ int iommud_bind_pasid(IommudClient *c, uint32_t device_id, uint32_t ioas_id,
                               const uint32_t *pasid, unsigned flags, const IommudStage1 *stage1,
                               uint32_t *ret_pasid, uint32_t *ret_hwpt_id, IommudError *err) {
        _cleanup_json_ json_object *p = iommud_params_new();
        VarlinkReply reply = VARLINK_REPLY_INIT;
        Error e = ERROR_INIT;
        uint32_t got_pasid, hwpt;
        int r;

        if (flags & ~(unsigned)IOMMUD_BIND_FAULTS)
                return iommud_error_setf(err, -EINVAL, "unknown bind flags 0x%x", flags);
        if (stage1 && (!stage1->type || (!stage1->data && stage1->size > 0)))
                return iommud_error_setf(err, -EINVAL, "the stage-1 table has no type or data");
        if (!p || iommud_add_u64(p, "deviceId", device_id) < 0 ||
            iommud_add_u64(p, "ioasId", ioas_id) < 0 ||
            (pasid && iommud_add_u64(p, "pasid", *pasid) < 0) ||
            ((flags & IOMMUD_BIND_FAULTS) &&
             json_util_add(p, "faults", json_object_new_boolean(true)) < 0) ||
            (stage1 && json_util_add(p, "stage1", stage1_json(stage1)) < 0))
                return iommud_nomem(err);
        r = iommud_call(c, "BindPASID", p, &reply, err);
        if (r < 0)
                return r;
        if ((r = json_util_get_u32(reply.parameters, "pasid", 0, &got_pasid, &e)) >= 0)
                r = json_util_get_u32(reply.parameters, "hwptId", 0, &hwpt, &e);
        varlink_reply_clear(&reply);
        if (r < 0)
                return iommud_bad_reply(err, "BindPASID", &e);
        if (ret_pasid)
                *ret_pasid = got_pasid;
        if (ret_hwpt_id)
                *ret_hwpt_id = hwpt;
        return 0;
}

_public_ int iommud_unbind_pasid(IommudClient *c, uint32_t device_id, uint32_t pasid,
                                 IommudError *err) {
        _cleanup_json_ json_object *p = iommud_params_new();

        if (!p || iommud_add_u64(p, "deviceId", device_id) < 0 ||
            iommud_add_u64(p, "pasid", pasid) < 0)
                return iommud_nomem(err);
        return iommud_call_void(c, "UnbindPASID", p, err);
}

