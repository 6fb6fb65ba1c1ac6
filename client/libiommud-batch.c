/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* MapBatch and UnmapBatch: many mappings of one address space in one call, all or none. */

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>

#include <json-c/json.h>

#include "iommud/iommud.h"
#include "json-util.h"
#include "libiommud-internal.h"
#include "macros.h"

/* The fds one call may carry by default (the policy's max-fds-per-message). */
#define BATCH_FDS_MAX 16

/* The index of fd among fds, added when new; -E2BIG past BATCH_FDS_MAX distinct fds. */
static int fd_index(int fd, int *fds, size_t *n_fds) {
        for (size_t i = 0; i < *n_fds; i++)
                if (fds[i] == fd)
                        return (int)i;
        if (*n_fds >= BATCH_FDS_MAX)
                return -E2BIG;
        fds[*n_fds] = fd;
        return (int)(*n_fds)++;
}

static json_object *area_json(const IommudMapArea *a, int index) {
        json_object *o = json_object_new_object();

        if (!o || iommud_add_u64(o, "memoryFd", (uint64_t)index) < 0 ||
            iommud_add_u64(o, "offset", a->offset) < 0 ||
            iommud_add_u64(o, "length", a->length) < 0 ||
            ((a->flags & IOMMUD_MAP_FIXED_IOVA) && iommud_add_u64(o, "iova", a->iova) < 0) ||
            json_util_add(o, "readable", json_object_new_boolean(a->flags & IOMMUD_MAP_READABLE)) <
                    0 ||
            json_util_add(o, "writeable",
                          json_object_new_boolean(a->flags & IOMMUD_MAP_WRITEABLE)) < 0) {
                json_object_put(o);
                return NULL;
        }
        return o;
}

/* Reads the n IOVAs of a MapBatch reply into ret (if ret). */
static int read_iovas(json_object *params, size_t n, uint64_t *ret, IommudError *err) {
        Error e = ERROR_INIT;
        json_object *a;

        if (!json_object_object_get_ex(params, "iovas", &a) ||
            !json_object_is_type(a, json_type_array) || json_object_array_length(a) != n) {
                error_set(&e, -EBADMSG, "iovas is not an array of %zu IOVAs", n);
                return iommud_bad_reply(err, "MapBatch", &e);
        }
        for (size_t i = 0; i < n; i++) {
                json_object *v = json_object_array_get_idx(a, i);

                if (!json_object_is_type(v, json_type_int) ||
                    (json_object_get_int64(v) < 0 && json_object_get_uint64(v) <= INT64_MAX)) {
                        error_set(&e, -EBADMSG, "iovas[%zu] is not an unsigned integer", i);
                        return iommud_bad_reply(err, "MapBatch", &e);
                }
                if (ret)
                        ret[i] = json_object_get_uint64(v);
        }
        return 0;
}

_public_ int iommud_map_batch(IommudClient *c, uint32_t ioas_id, const IommudMapArea *areas,
                              size_t n_areas, uint64_t *ret_iovas, IommudError *err) {
        _cleanup_json_ json_object *p = iommud_params_new();
        VarlinkReply reply = VARLINK_REPLY_INIT;
        int fds[BATCH_FDS_MAX];
        size_t n_fds = 0;
        json_object *a;
        int r;

        if (n_areas > 0 && !areas)
                return iommud_error_setf(err, -EINVAL, "no areas given");
        if (n_areas > IOMMUD_BATCH_MAX)
                return iommud_error_setf(err, -E2BIG, "%zu areas, at most %d are accepted",
                                         n_areas, IOMMUD_BATCH_MAX);
        a = json_object_new_array();
        if (!p || iommud_add_u64(p, "ioasId", ioas_id) < 0 || json_util_add(p, "areas", a) < 0)
                return iommud_nomem(err);
        for (size_t i = 0; i < n_areas; i++) {
                const IommudMapArea *m = &areas[i];
                int index;

                if (m->memory_fd < 0)
                        return iommud_error_setf(err, -EBADF, "area %zu: %d is not a file "
                                                 "descriptor", i, m->memory_fd);
                if (m->flags & ~(unsigned)(IOMMUD_MAP_READABLE | IOMMUD_MAP_WRITEABLE |
                                           IOMMUD_MAP_FIXED_IOVA))
                        return iommud_error_setf(err, -EINVAL, "area %zu: unknown map flags 0x%x",
                                                 i, m->flags);
                index = fd_index(m->memory_fd, fds, &n_fds);
                if (index < 0)
                        return iommud_error_setf(err, -E2BIG, "area %zu: more than %d distinct "
                                                 "memory fds", i, BATCH_FDS_MAX);
                if (json_object_array_add(a, area_json(m, index)) < 0)
                        return iommud_nomem(err);
        }
        r = iommud_call_fds(c, "MapBatch", p, fds, n_fds, &reply, err);
        if (r < 0)
                return r;
        r = read_iovas(reply.parameters, n_areas, ret_iovas, err);
        varlink_reply_clear(&reply);
        return r;
}

_public_ int iommud_unmap_batch(IommudClient *c, uint32_t ioas_id, const IommudIOVARange *ranges,
                                size_t n_ranges, uint64_t *ret_unmapped, IommudError *err) {
        _cleanup_json_ json_object *p = iommud_params_new();
        VarlinkReply reply = VARLINK_REPLY_INIT;
        Error e = ERROR_INIT;
        uint64_t v;
        int r;

        if (n_ranges > 0 && !ranges)
                return iommud_error_setf(err, -EINVAL, "no ranges given");
        if (n_ranges > IOMMUD_BATCH_MAX)
                return iommud_error_setf(err, -E2BIG, "%zu ranges, at most %d are accepted",
                                         n_ranges, IOMMUD_BATCH_MAX);
        if (!p || iommud_add_u64(p, "ioasId", ioas_id) < 0 ||
            iommud_add_ranges(p, "ranges", ranges, n_ranges) < 0)
                return iommud_nomem(err);
        r = iommud_call(c, "UnmapBatch", p, &reply, err);
        if (r < 0)
                return r;
        r = json_util_get_u64(reply.parameters, "unmapped", 0, &v, &e);
        varlink_reply_clear(&reply);
        if (r < 0)
                return iommud_bad_reply(err, "UnmapBatch", &e);
        if (ret_unmapped)
                *ret_unmapped = v;
        return 0;
}
