/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * org.iommud1.Session: IOVA windows and mappings (GetIOVARanges, AllowIOVAs, Map, Unmap,
 * MapBatch, UnmapBatch), with the semantics and errors of the Varlink methods.
 */

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>

#include <systemd/sd-bus.h>

#include "bus-errors.h"
#include "bus-internal.h"

/* The most fds one message carries (SCM_MAX_FD); the bus may allow fewer. */
#define BUS_MAP_BATCH_FDS_MAX 253

int bus_method_get_iova_ranges(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        SESSION_CALL(m, userdata, error);
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_free_ IovaRange *ranges = NULL;
        uint64_t alignment;
        uint32_t id;
        size_t n;
        int r;

        r = sd_bus_message_read(m, "u", &id);
        if (r < 0)
                return r;
        if (session_get_iova_ranges(bs->session, id, &ranges, &n, &alignment, &e) < 0)
                return bus_error_from_broker(error, &e);
        r = sd_bus_message_new_method_return(m, &reply);
        if (r >= 0)
                r = sd_bus_message_open_container(reply, 'a', "(tt)");
        for (size_t i = 0; r >= 0 && i < n; i++)
                r = sd_bus_message_append(reply, "(tt)", ranges[i].start, ranges[i].last);
        if (r >= 0)
                r = sd_bus_message_close_container(reply);
        if (r >= 0)
                r = sd_bus_message_append(reply, "t", alignment);
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}

/* An a(tt) of at most max ranges, for method's messages. */
static int read_ranges(sd_bus_message *m, size_t max, const char *method, IovaRange **ret,
                       size_t *ret_n, sd_bus_error *error) {
        _cleanup_free_ IovaRange *ranges = NULL;
        size_t n = 0, alloc = 0;
        uint64_t start, last;
        int r;

        r = sd_bus_message_enter_container(m, 'a', "(tt)");
        while (r >= 0) {
                r = sd_bus_message_read(m, "(tt)", &start, &last);
                if (r <= 0)
                        break;
                if (n >= max)
                        return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                                 "More than %zu ranges given to %s.", max,
                                                 method);
                if (n == alloc) {
                        IovaRange *a = realloc(ranges, (alloc = alloc ? alloc * 2 : 8) *
                                                                sizeof(*a));

                        if (!a)
                                return -ENOMEM;
                        ranges = a;
                }
                ranges[n++] = (IovaRange){ .start = start, .last = last };
        }
        if (r >= 0)
                r = sd_bus_message_exit_container(m);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(ranges);
        *ret_n = n;
        return 0;
}

int bus_method_allow_iovas(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        SESSION_CALL(m, userdata, error);
        _cleanup_free_ IovaRange *ranges = NULL;
        uint32_t id;
        size_t n = 0;
        int r;

        r = sd_bus_message_read(m, "u", &id);
        if (r >= 0)
                r = read_ranges(m, SESSION_ALLOW_IOVAS_MAX, "AllowIOVAs", &ranges, &n, error);
        if (r < 0)
                return r;
        if (session_allow_iovas(bs->session, id, ranges, n, &e) < 0)
                return bus_error_from_broker(error, &e);
        return sd_bus_reply_method_return(m, NULL);
}

int bus_method_map(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        SESSION_CALL(m, userdata, error);
        SessionMapArgs a = {};
        uint32_t flags;
        uint64_t iova;
        int r;

        r = sd_bus_message_read(m, "uhtttu", &a.ioas_id, &a.fd, &a.offset, &a.length, &a.iova,
                                &flags);
        if (r < 0)
                return r;
        if (flags & ~(BUS_MAP_FIXED_IOVA | BUS_MAP_READABLE | BUS_MAP_WRITEABLE))
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                         "Unknown Map flags 0x%" PRIx32 ".",
                                         flags & ~(BUS_MAP_FIXED_IOVA | BUS_MAP_READABLE |
                                                   BUS_MAP_WRITEABLE));
        a.fixed_iova = flags & BUS_MAP_FIXED_IOVA;
        a.readable = flags & BUS_MAP_READABLE;
        a.writeable = flags & BUS_MAP_WRITEABLE;
        if (session_map(bs->session, &a, &iova, &e) < 0)
                return bus_error_from_broker(error, &e);
        return sd_bus_reply_method_return(m, "t", iova);
}

int bus_method_unmap(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        SESSION_CALL(m, userdata, error);
        uint64_t iova, length, unmapped;
        uint32_t id;
        int r;

        r = sd_bus_message_read(m, "utt", &id, &iova, &length);
        if (r < 0)
                return r;
        if (session_unmap(bs->session, id, iova, length, &unmapped, &e) < 0)
                return bus_error_from_broker(error, &e);
        return sd_bus_reply_method_return(m, "t", unmapped);
}

/* The memory fds of a MapBatch, borrowed from the message. */
static int read_fds(sd_bus_message *m, int *fds, size_t *ret_n, sd_bus_error *error) {
        size_t n = 0;
        int r, fd;

        r = sd_bus_message_enter_container(m, 'a', "h");
        while (r >= 0) {
                r = sd_bus_message_read(m, "h", &fd);
                if (r <= 0)
                        break;
                if (n >= BUS_MAP_BATCH_FDS_MAX)
                        return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                                 "More than %d memory fds given to MapBatch.",
                                                 BUS_MAP_BATCH_FDS_MAX);
                fds[n++] = fd;
        }
        if (r >= 0)
                r = sd_bus_message_exit_container(m);
        *ret_n = n;
        return r < 0 ? r : 0;
}

/* One area (u fd index, t offset, t length, t iova, u flags) into a. */
static int read_area(sd_bus_message *m, const int *fds, size_t n_fds, size_t i,
                     SessionMapArgs *a, sd_bus_error *error) {
        uint32_t index, flags;
        int r;

        r = sd_bus_message_read(m, "(utttu)", &index, &a->offset, &a->length, &a->iova, &flags);
        if (r <= 0)
                return r < 0 ? r : -EBADMSG;
        if (index >= n_fds)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                         "Area %zu names memory fd %" PRIu32 ", the call carried "
                                         "%zu.", i, index, n_fds);
        if (flags & ~(BUS_MAP_FIXED_IOVA | BUS_MAP_READABLE | BUS_MAP_WRITEABLE))
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                         "Area %zu: unknown Map flags 0x%" PRIx32 ".", i,
                                         flags & ~(BUS_MAP_FIXED_IOVA | BUS_MAP_READABLE |
                                                   BUS_MAP_WRITEABLE));
        a->fd = fds[index];
        a->fixed_iova = flags & BUS_MAP_FIXED_IOVA;
        a->readable = flags & BUS_MAP_READABLE;
        a->writeable = flags & BUS_MAP_WRITEABLE;
        return 0;
}

static int read_areas(sd_bus_message *m, const int *fds, size_t n_fds, SessionMapArgs **ret,
                      size_t *ret_n, sd_bus_error *error) {
        _cleanup_free_ SessionMapArgs *areas = NULL;
        size_t n = 0, alloc = 0;
        int r;

        r = sd_bus_message_enter_container(m, 'a', "(utttu)");
        while (r >= 0 && sd_bus_message_at_end(m, false) == 0) {
                if (n >= SESSION_MAP_BATCH_MAX)
                        return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                                 "More than %d areas given to MapBatch.",
                                                 SESSION_MAP_BATCH_MAX);
                if (n == alloc) {
                        SessionMapArgs *a = realloc(areas, (alloc = alloc ? alloc * 2 : 16) *
                                                                   sizeof(*a));

                        if (!a)
                                return -ENOMEM;
                        areas = a;
                }
                areas[n] = (SessionMapArgs){};
                r = read_area(m, fds, n_fds, n, &areas[n], error);
                n++;
        }
        if (r >= 0)
                r = sd_bus_message_exit_container(m);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(areas);
        *ret_n = n;
        return 0;
}

int bus_method_map_batch(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        SESSION_CALL(m, userdata, error);
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_free_ SessionMapArgs *areas = NULL;
        _cleanup_free_ uint64_t *iovas = NULL;
        int fds[BUS_MAP_BATCH_FDS_MAX];
        size_t n_fds = 0, n = 0;
        uint32_t id;
        int r;

        r = sd_bus_message_read(m, "u", &id);
        if (r >= 0)
                r = read_fds(m, fds, &n_fds, error);
        if (r >= 0)
                r = read_areas(m, fds, n_fds, &areas, &n, error);
        if (r < 0)
                return r;
        iovas = calloc(n ?: 1, sizeof(*iovas));
        if (!iovas)
                return -ENOMEM;
        if (session_map_batch(bs->session, id, areas, n, iovas, &e) < 0)
                return bus_error_from_broker(error, &e);
        r = sd_bus_message_new_method_return(m, &reply);
        if (r >= 0)
                r = sd_bus_message_append_array(reply, 't', iovas, n * sizeof(*iovas));
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}

int bus_method_unmap_batch(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        SESSION_CALL(m, userdata, error);
        _cleanup_free_ IovaRange *ranges = NULL;
        uint64_t unmapped;
        uint32_t id;
        size_t n = 0;
        int r;

        r = sd_bus_message_read(m, "u", &id);
        if (r >= 0)
                r = read_ranges(m, SESSION_MAP_BATCH_MAX, "UnmapBatch", &ranges, &n, error);
        if (r < 0)
                return r;
        if (session_unmap_batch(bs->session, id, ranges, n, &unmapped, &e) < 0)
                return bus_error_from_broker(error, &e);
        return sd_bus_reply_method_return(m, "t", unmapped);
}
