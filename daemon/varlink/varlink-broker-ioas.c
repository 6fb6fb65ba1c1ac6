/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * org.iommud.Broker: address spaces and the mappings in them (CreateAddressSpace,
 * DestroyAddressSpace, GetIOVARanges, AllowIOVAs, Map, Unmap, Copy).
 */

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <unistd.h>

#include <json-c/json.h>

#include "json-util.h"
#include "varlink-broker-internal.h"

/* {ioasId}: the methods that name one address space. */
const JsonDispatchField broker_ioas_id_parameters[] = {
        { "ioasId", JSON_DISPATCH_UINT32, JSON_DISPATCH_REQUIRED, 0 },
        {},
};

const JsonDispatchField broker_create_address_space_parameters[] = {
        { "dirtyTracking", JSON_DISPATCH_BOOL, JSON_DISPATCH_NULLABLE, 0 },
        {},
};

int broker_method_create_address_space(VarlinkCall *call, json_object *params,
                                       VarlinkCallFlags flags, void *userdata) {
        BrokerError e = BROKER_ERROR_INIT;
        bool dirty = false;
        json_object *out;
        uint32_t id;
        int r;

        REQUIRE_SESSION(call);
        r = varlink_call_dispatch(call, params, broker_create_address_space_parameters, &dirty);
        if (r < 0)
                return r;
        if (session_create_address_space_full(broker_call_session(call), dirty, &id, &e) < 0)
                return broker_reply_error(call, &e);
        out = json_object_new_object();
        if (!out)
                return -ENOMEM;
        (void)json_util_add(out, "ioasId", json_object_new_int64(id));
        return broker_reply(call, out);
}

int broker_method_destroy_address_space(VarlinkCall *call, json_object *params,
                                        VarlinkCallFlags flags, void *userdata) {
        BrokerError e = BROKER_ERROR_INIT;
        uint32_t id = 0;
        int r;

        REQUIRE_SESSION(call);
        r = varlink_call_dispatch(call, params, broker_ioas_id_parameters, &id);
        if (r < 0)
                return r;
        if (session_destroy_address_space(broker_call_session(call), id, &e) < 0)
                return broker_reply_error(call, &e);
        return broker_reply(call, NULL);
}

int broker_method_get_iova_ranges(VarlinkCall *call, json_object *params, VarlinkCallFlags flags,
                                  void *userdata) {
        BrokerError e = BROKER_ERROR_INIT;
        _cleanup_free_ IovaRange *ranges = NULL;
        json_object *out, *arr;
        uint64_t alignment;
        uint32_t id = 0;
        size_t n;
        int r;

        REQUIRE_SESSION(call);
        r = varlink_call_dispatch(call, params, broker_ioas_id_parameters, &id);
        if (r < 0)
                return r;
        if (session_get_iova_ranges(broker_call_session(call), id, &ranges, &n, &alignment, &e) < 0)
                return broker_reply_error(call, &e);
        out = json_object_new_object();
        arr = json_object_new_array();
        if (!out || !arr) {
                json_object_put(out);
                json_object_put(arr);
                return -ENOMEM;
        }
        for (size_t i = 0; i < n; i++)
                json_object_array_add(arr, broker_range_json(ranges[i].start, ranges[i].last));
        (void)json_util_add(out, "ranges", arr);
        (void)json_util_add(out, "alignment", broker_u64_node(alignment));
        return broker_reply(call, out);
}

typedef struct AllowIovasParams {
        uint32_t ioas_id;
        IovaRange *ranges;
        size_t n_ranges;
} AllowIovasParams;

static const JsonDispatchField iova_range_fields[] = {
        { "start", JSON_DISPATCH_UINT64, JSON_DISPATCH_REQUIRED, offsetof(IovaRange, start) },
        { "last", JSON_DISPATCH_UINT64, JSON_DISPATCH_REQUIRED, offsetof(IovaRange, last) },
        {},
};

static const JsonDispatchField iova_range_element = {
        .type = JSON_DISPATCH_OBJECT,
        .fields = iova_range_fields,
};

const JsonDispatchField broker_allow_iovas_parameters[] = {
        { "ioasId", JSON_DISPATCH_UINT32, JSON_DISPATCH_REQUIRED,
          offsetof(AllowIovasParams, ioas_id) },
        { "ranges", JSON_DISPATCH_ARRAY, JSON_DISPATCH_REQUIRED, offsetof(AllowIovasParams, ranges),
          .max = SESSION_ALLOW_IOVAS_MAX, .element = &iova_range_element,
          .element_size = sizeof(IovaRange),
          .count_offset = offsetof(AllowIovasParams, n_ranges) },
        {},
};

static void allow_iovas_params_clear(AllowIovasParams *p) {
        json_dispatch_clear(broker_allow_iovas_parameters, p);
}

int broker_method_allow_iovas(VarlinkCall *call, json_object *params, VarlinkCallFlags flags,
                              void *userdata) {
        _cleanup_(allow_iovas_params_clear) AllowIovasParams p = {};
        BrokerError e = BROKER_ERROR_INIT;
        int r;

        REQUIRE_SESSION(call);
        r = varlink_call_dispatch(call, params, broker_allow_iovas_parameters, &p);
        if (r < 0)
                return r;
        if (session_allow_iovas(broker_call_session(call), p.ioas_id, p.ranges, p.n_ranges, &e) < 0)
                return broker_reply_error(call, &e);
        return broker_reply(call, NULL);
}

typedef struct MapParams {
        SessionMapArgs args;
        JsonDispatchFd memory;
} MapParams;

const JsonDispatchField broker_map_parameters[] = {
        { "ioasId", JSON_DISPATCH_UINT32, JSON_DISPATCH_REQUIRED,
          offsetof(MapParams, args.ioas_id) },
        { "memoryFd", JSON_DISPATCH_FD_INDEX, JSON_DISPATCH_REQUIRED, offsetof(MapParams, memory) },
        { "offset", JSON_DISPATCH_UINT64, JSON_DISPATCH_REQUIRED,
          offsetof(MapParams, args.offset) },
        { "length", JSON_DISPATCH_UINT64, JSON_DISPATCH_REQUIRED,
          offsetof(MapParams, args.length) },
        { "iova", JSON_DISPATCH_UINT64, JSON_DISPATCH_NULLABLE, offsetof(MapParams, args.iova),
          .presence = JSON_DISPATCH_PRESENCE(MapParams, args.fixed_iova) },
        { "readable", JSON_DISPATCH_BOOL, JSON_DISPATCH_REQUIRED,
          offsetof(MapParams, args.readable) },
        { "writeable", JSON_DISPATCH_BOOL, JSON_DISPATCH_REQUIRED,
          offsetof(MapParams, args.writeable) },
        {},
};

int broker_method_map(VarlinkCall *call, json_object *params, VarlinkCallFlags flags,
                      void *userdata) {
        BrokerError e = BROKER_ERROR_INIT;
        _cleanup_close_ int fd = -EBADF;
        MapParams p = {};
        uint64_t iova;
        int r;

        REQUIRE_SESSION(call);
        r = varlink_call_dispatch(call, params, broker_map_parameters, &p);
        if (r < 0)
                return r;
        p.args.fd = fd = p.memory.fd;

        if (session_map(broker_call_session(call), &p.args, &iova, &e) < 0)
                return broker_reply_error_fd(call, &e, p.memory.index);
        return broker_reply_u64(call, "iova", iova);
}

typedef struct UnmapParams {
        SessionDirtyArgs args;
        JsonDispatchFd bitmap;
        bool has_page_size;
} UnmapParams;

const JsonDispatchField broker_unmap_parameters[] = {
        { "ioasId", JSON_DISPATCH_UINT32, JSON_DISPATCH_REQUIRED,
          offsetof(UnmapParams, args.ioas_id) },
        { "iova", JSON_DISPATCH_UINT64, JSON_DISPATCH_REQUIRED, offsetof(UnmapParams, args.iova) },
        { "length", JSON_DISPATCH_UINT64, JSON_DISPATCH_REQUIRED,
          offsetof(UnmapParams, args.length) },
        { "dirtyBitmapFd", JSON_DISPATCH_FD_INDEX, JSON_DISPATCH_NULLABLE,
          offsetof(UnmapParams, bitmap) },
        { "pageSize", JSON_DISPATCH_UINT64, JSON_DISPATCH_NULLABLE,
          offsetof(UnmapParams, args.page_size),
          .presence = JSON_DISPATCH_PRESENCE(UnmapParams, has_page_size) },
        {},
};

int broker_method_unmap(VarlinkCall *call, json_object *params, VarlinkCallFlags flags,
                        void *userdata) {
        BrokerError e = BROKER_ERROR_INIT;
        _cleanup_close_ int fd = -EBADF;
        UnmapParams p = {};
        uint64_t unmapped;
        int r;

        REQUIRE_SESSION(call);
        r = varlink_call_dispatch(call, params, broker_unmap_parameters, &p);
        if (r < 0)
                return r;
        p.args.bitmap_fd = fd = p.bitmap.fd;
        if ((fd >= 0) != p.has_page_size)
                return varlink_call_invalid_parameter(call, fd >= 0 ? "pageSize" : "dirtyBitmapFd",
                                                      "dirtyBitmapFd and pageSize go together");
        if (fd >= 0)
                r = session_unmap_dirty(broker_call_session(call), &p.args, &unmapped, &e);
        else
                r = session_unmap(broker_call_session(call), p.args.ioas_id, p.args.iova,
                                  p.args.length, &unmapped, &e);
        if (r < 0)
                return broker_reply_error_fd(call, &e, p.bitmap.index);
        return broker_reply_u64(call, "unmapped", unmapped);
}

const JsonDispatchField broker_copy_parameters[] = {
        { "srcIoasId", JSON_DISPATCH_UINT32, JSON_DISPATCH_REQUIRED,
          offsetof(SessionCopyArgs, src_ioas_id) },
        { "srcIova", JSON_DISPATCH_UINT64, JSON_DISPATCH_REQUIRED,
          offsetof(SessionCopyArgs, src_iova) },
        { "dstIoasId", JSON_DISPATCH_UINT32, JSON_DISPATCH_REQUIRED,
          offsetof(SessionCopyArgs, dst_ioas_id) },
        { "dstIova", JSON_DISPATCH_UINT64, JSON_DISPATCH_NULLABLE,
          offsetof(SessionCopyArgs, dst_iova),
          .presence = JSON_DISPATCH_PRESENCE(SessionCopyArgs, fixed_iova) },
        { "length", JSON_DISPATCH_UINT64, JSON_DISPATCH_REQUIRED,
          offsetof(SessionCopyArgs, length) },
        {},
};

int broker_method_copy(VarlinkCall *call, json_object *params, VarlinkCallFlags flags,
                       void *userdata) {
        BrokerError e = BROKER_ERROR_INIT;
        SessionCopyArgs a = {};
        uint64_t iova;
        int r;

        REQUIRE_SESSION(call);
        r = varlink_call_dispatch(call, params, broker_copy_parameters, &a);
        if (r < 0)
                return r;
        if (session_copy(broker_call_session(call), &a, &iova, &e) < 0)
                return broker_reply_error(call, &e);
        return broker_reply_u64(call, "iova", iova);
}
