/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * org.iommud.Broker: address spaces and the mappings in them (CreateAddressSpace,
 * DestroyAddressSpace, GetIOVARanges, AllowIOVAs, Map, Unmap, Copy, MapBatch, UnmapBatch).
 */

#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
        BrokerError e;
        bool dirty = false;
        json_object *out;
        uint32_t id;
        int r;

        broker_error_init(&e);
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
        BrokerError e;
        uint32_t id = 0;
        int r;

        broker_error_init(&e);
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
        BrokerError e;
        _cleanup_free_ IovaRange *ranges = NULL;
        json_object *out, *arr;
        uint64_t alignment;
        uint32_t id = 0;
        size_t n;
        int r;

        broker_error_init(&e);
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
        BrokerError e;
        int r;

        broker_error_init(&e);
        REQUIRE_SESSION(call);
        r = varlink_call_dispatch(call, params, broker_allow_iovas_parameters, &p);
        if (r < 0)
                return r;
        if (session_allow_iovas(broker_call_session(call), p.ioas_id, p.ranges, p.n_ranges, &e) < 0)
                return broker_reply_error(call, &e);
        return broker_reply(call, NULL);
}

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
        BrokerError e;
        _cleanup_close_ int fd = -EBADF;
        MapParams p = {};
        uint64_t iova;
        int r;

        broker_error_init(&e);
        REQUIRE_SESSION(call);
        r = varlink_call_dispatch(call, params, broker_map_parameters, &p);
        if (r < 0)
                return r;
        p.args.fd = fd = p.memory.fd;

        if (session_map(broker_call_session(call), &p.args, &iova, &e) < 0)
                return broker_reply_error_fd(call, &e, p.memory.index);
        return broker_reply_u64(call, "iova", iova);
}

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
        BrokerError e;
        _cleanup_close_ int fd = -EBADF;
        UnmapParams p = {};
        uint64_t unmapped;
        int r;

        broker_error_init(&e);
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
        BrokerError e;
        SessionCopyArgs a = {};
        uint64_t iova;
        int r;

        broker_error_init(&e);
        REQUIRE_SESSION(call);
        r = varlink_call_dispatch(call, params, broker_copy_parameters, &a);
        if (r < 0)
                return r;
        if (session_copy(broker_call_session(call), &a, &iova, &e) < 0)
                return broker_reply_error(call, &e);
        return broker_reply_u64(call, "iova", iova);
}

/* ---- batches ----------------------------------------------------------------------------- */

static const JsonDispatchField map_area_fields[] = {
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

static const JsonDispatchField map_area_element = {
        .type = JSON_DISPATCH_OBJECT,
        .fields = map_area_fields,
};

const JsonDispatchField broker_map_batch_parameters[] = {
        { "ioasId", JSON_DISPATCH_UINT32, JSON_DISPATCH_REQUIRED,
          offsetof(MapBatchParams, ioas_id) },
        { "areas", JSON_DISPATCH_ARRAY, JSON_DISPATCH_REQUIRED, offsetof(MapBatchParams, areas),
          .max = SESSION_MAP_BATCH_MAX, .element = &map_area_element,
          .element_size = sizeof(MapParams),
          .count_offset = offsetof(MapBatchParams, n_areas) },
        {},
};

static void map_batch_params_clear(MapBatchParams *p) {
        json_dispatch_clear(broker_map_batch_parameters, p);
}

/*
 * The areas name their memory fds by index, several areas maybe the same one: the fds stay
 * the call's, borrowed here.  Returns -ENXIO with the index of an area whose fd is missing.
 */
static int map_batch_args(VarlinkCall *call, const MapBatchParams *p, SessionMapArgs *ret,
                          size_t *ret_bad) {
        for (size_t i = 0; i < p->n_areas; i++) {
                int fd = varlink_call_get_fd(call, p->areas[i].memory.index);

                if (fd < 0) {
                        *ret_bad = i;
                        return -ENXIO;
                }
                ret[i] = p->areas[i].args;
                ret[i].ioas_id = p->ioas_id;
                ret[i].fd = fd;
        }
        return 0;
}

/* {"iovas":[...]}, formatted directly into one buffer. */
static int reply_iovas(VarlinkCall *call, const uint64_t *iovas, size_t n) {
        static const char head[] = "{\"iovas\":[";
        _cleanup_free_ char *text = malloc(sizeof(head) + n * (BROKER_U64_DIGITS + 1) + 2);
        size_t len = sizeof(head) - 1;

        if (!text)
                return -ENOMEM;
        memcpy(text, head, len);
        for (size_t i = 0; i < n; i++) {
                if (i > 0)
                        text[len++] = ',';
                len += broker_format_u64(text + len, iovas[i]);
        }
        text[len++] = ']';
        text[len++] = '}';
        return broker_reply_text(call, text, len);
}

int broker_method_map_batch(VarlinkCall *call, json_object *params, VarlinkCallFlags flags,
                            void *userdata) {
        _cleanup_(map_batch_params_clear) MapBatchParams p = {};
        _cleanup_free_ SessionMapArgs *args = NULL;
        _cleanup_free_ uint64_t *iovas = NULL;
        BrokerError e;
        const BrokerErrorParam *area;
        size_t bad = 0;
        int r;

        broker_error_init(&e);
        REQUIRE_SESSION(call);
        r = varlink_call_dispatch(call, params, broker_map_batch_parameters, &p);
        if (r < 0)
                return r;
        args = calloc(p.n_areas ?: 1, sizeof(*args));
        iovas = calloc(p.n_areas ?: 1, sizeof(*iovas));
        if (!args || !iovas)
                return -ENOMEM;
        if (map_batch_args(call, &p, args, &bad) < 0) {
                char parameter[48];

                snprintf(parameter, sizeof(parameter), "areas[%zu].memoryFd", bad);
                return varlink_call_invalid_parameter(call, parameter,
                                                      "fd index %" PRIu32 " does not exist, the "
                                                      "call carried %zu fd(s)",
                                                      p.areas[bad].memory.index,
                                                      varlink_call_get_n_fds(call));
        }

        if (session_map_batch(broker_call_session(call), p.ioas_id, args, p.n_areas, iovas,
                              &e) >= 0)
                return reply_iovas(call, iovas, p.n_areas);
        area = broker_error_get(&e, "area");
        if (area && area->u64 < p.n_areas)
                return broker_reply_error_fd(call, &e, p.areas[area->u64].memory.index);
        return broker_reply_error(call, &e);
}

int broker_method_unmap_batch(VarlinkCall *call, json_object *params, VarlinkCallFlags flags,
                              void *userdata) {
        /* UnmapBatch takes what AllowIOVAs takes: {ioasId, ranges}, as many. */
        _Static_assert(SESSION_MAP_BATCH_MAX == SESSION_ALLOW_IOVAS_MAX, "one table, one cap");
        _cleanup_(allow_iovas_params_clear) AllowIovasParams p = {};
        BrokerError e;
        uint64_t unmapped;
        int r;

        broker_error_init(&e);
        REQUIRE_SESSION(call);
        r = varlink_call_dispatch(call, params, broker_allow_iovas_parameters, &p);
        if (r < 0)
                return r;
        if (session_unmap_batch(broker_call_session(call), p.ioas_id, p.ranges, p.n_ranges,
                                &unmapped, &e) < 0)
                return broker_reply_error(call, &e);
        return broker_reply_u64(call, "unmapped", unmapped);
}
