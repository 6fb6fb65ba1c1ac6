/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/magic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/vfs.h>

#include "assert-util.h"
#include "log.h"
#include "session-internal.h"

#ifndef F_GET_SEALS
#define F_GET_SEALS 1034
#endif
#ifndef F_SEAL_WRITE
#define F_SEAL_WRITE 0x0008
#endif
#ifndef F_SEAL_FUTURE_WRITE
#define F_SEAL_FUTURE_WRITE 0x0010
#endif

/* ---- mappings -------------------------------------------------------------------------- */

/*
 * A memfd sealed against writes promises its readers that its contents no longer change: a
 * device writing through a writeable mapping would break that promise behind the seal (the
 * kernel's own MAP_FILE takes no write mapping of the file, and pinned pages ignore seals).
 */
static int check_write_seals(int fd, BrokerError *err) {
        int seals = fcntl(fd, F_GET_SEALS);

        if (seals < 0 || !(seals & (F_SEAL_WRITE | F_SEAL_FUTURE_WRITE)))
                return 0;
        return broker_error_invalid_fd(err, -EPERM,
                                       "The memory fd is sealed against writes (%s): a device "
                                       "must not write to it, map it with writeable false.",
                                       (seals & F_SEAL_WRITE) ? "F_SEAL_WRITE"
                                                              : "F_SEAL_FUTURE_WRITE");
}

/*
 * The device number of the kernel's own shmem mount, which every plain memfd lives on and
 * which is never unmounted (so its number is never another file system's): a file there
 * needs no fstatfs() to say it may be pinned.  0 until found, or when memfd_create() fails.
 */
static dev_t shm_dev(void) {
        static dev_t dev;
        static bool probed;

        if (!probed) {
                int fd = memfd_create("iommud-shm-probe", MFD_CLOEXEC);
                struct stat st;

                probed = true;
                if (fd >= 0 && fstat(fd, &st) >= 0)
                        dev = st.st_dev;
                safe_close(fd);
        }
        return dev;
}

/* Whether the regular file fd (st) is memory iommud lets a client pin: shmem, hugetlbfs or a
 * file that takes seals. */
static int check_memory_fs(int fd, const struct stat *st, BrokerError *err) {
        struct statfs sfs;

        if (st->st_dev != 0 && st->st_dev == shm_dev())
                return 0;
        if (fstatfs(fd, &sfs) < 0)
                return broker_error_invalid_fd(err, -EBADF, "fstatfs on the memory fd failed: %s",
                                               strerror(errno));
        if ((unsigned long)sfs.f_type != TMPFS_MAGIC &&
            (unsigned long)sfs.f_type != HUGETLBFS_MAGIC && fcntl(fd, F_GET_SEALS) < 0)
                return broker_error_invalid_fd(err, -EBADF,
                                               "The memory fd is a regular file on a file system "
                                               "with magic 0x%lx; only memfd, shmem (tmpfs) and "
                                               "hugetlbfs files can be pinned for DMA.",
                                               (unsigned long)sfs.f_type);
        return 0;
}

/* The kind of file fd is and how it is open; st: filled with what fstat() says of it. */
static int check_memory_fd(int fd, bool writeable, struct stat *st, BrokerError *err) {
        int flags, r;

        if (fd < 0)
                return broker_error_invalid_fd(err, -EBADF, "No memory fd was passed.");
        flags = fcntl(fd, F_GETFL);
        if (flags < 0)
                return broker_error_invalid_fd(err, -EBADF, "The memory fd is not open: %s",
                                               strerror(errno));
        if (flags & O_PATH)
                return broker_error_invalid_fd(err, -EBADF,
                                               "The memory fd is an O_PATH fd, which holds no "
                                               "memory.");
        if (fstat(fd, st) < 0)
                return broker_error_invalid_fd(err, -EBADF, "fstat on the memory fd failed: %s",
                                               strerror(errno));
        if (!S_ISREG(st->st_mode))
                return broker_error_invalid_fd(err, -EBADF,
                                               "The memory fd is a %s, not a memfd, shmem or "
                                               "hugetlbfs file.",
                                               S_ISDIR(st->st_mode)    ? "directory"
                                               : S_ISCHR(st->st_mode)  ? "character device"
                                               : S_ISBLK(st->st_mode)  ? "block device"
                                               : S_ISFIFO(st->st_mode) ? "pipe"
                                               : S_ISSOCK(st->st_mode) ? "socket"
                                                                       : "special file");
        r = check_memory_fs(fd, st, err);
        if (r < 0)
                return r;
        if ((flags & O_ACCMODE) == O_WRONLY)
                return broker_error_invalid_fd(err, -EBADF,
                                               "The memory fd is open write-only; it must be "
                                               "readable.");
        if (writeable && (flags & O_ACCMODE) == O_RDONLY)
                return broker_error_invalid_fd(err, -EBADF,
                                               "A writeable mapping needs a memory fd opened "
                                               "read-write, this one is read-only.");
        if (writeable) {
                r = check_write_seals(fd, err);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int map_error(BrokerError *err, const Error *be, uint64_t iova, bool fixed,
                     uint64_t length) {
        switch (be->error) {
        case -EEXIST:
        case -EADDRINUSE:
                broker_error_set(err, be->error, BROKER_ERROR_IOVA_IN_USE,
                                 "IOVA range 0x%" PRIx64 "-0x%" PRIx64
                                 " overlaps an existing mapping or reserved region: %s",
                                 iova, iova + (length - 1), error_message(be));
                broker_error_add_u64(err, "start", iova);
                broker_error_add_u64(err, "length", length);
                return be->error;
        case -ENOSPC:
                return broker_error_invalid_range(err, iova, length,
                                                  "No free IOVA window of %" PRIu64
                                                  " bytes in the address space.",
                                                  length);
        case -EBADF:
        case -EFAULT:
                return broker_error_invalid_fd(err, -EBADF, "The memory fd cannot be mapped: %s",
                                               error_message(be));
        default:
                return broker_error_from_backend_range(err, fixed ? "map at a fixed IOVA" : "map",
                                                       be, iova, length);
        }
}

/*
 * Records a mapping the backend just made at iova; the caller charged it (Map and Copy
 * alike, session_charge_mappings(), so the refund on unmap never depends on how the mapping
 * was made).  The allowed list keeps automatic IOVAs inside the principal's windows, but
 * device windows may be narrower: an automatic IOVA outside them is given back with its
 * charge, so a refused map leaves nothing behind.  The caller has reserved room for the
 * area, so recording it cannot fail.
 */
static int session_commit_mapping(Session *s, SessionIoas *ioas, uint32_t ioas_id, uint64_t iova,
                                  uint64_t length, uint32_t flags, bool fixed_iova,
                                  BrokerError *err) {
        if (!fixed_iova && session_check_windows(s, ioas, iova, iova + (length - 1), NULL) < 0) {
                (void)OPS(s)->ioas_unmap(s->ctx, ioas_id, iova, length, NULL, NULL);
                session_refund_mappings(s, 1, length);
                return broker_error_invalid_range(err, iova, length,
                                                  "No free IOVA window of %" PRIu64
                                                  " bytes inside the IOVA windows the policy "
                                                  "grants.",
                                                  length);
        }

        session_ioas_insert_area(ioas, iova, length, flags);
        return 0;
}

/*
 * What a batch learnt of the last memory fd it checked: the areas of a batch mostly name
 * one fd, which is then checked once (again for the first writeable area, if the areas
 * before it were read-only).
 */
typedef struct MemoryFdSeen {
        int fd;
        bool writeable;
        uint64_t size;
} MemoryFdSeen;

static int map_check_fd(Session *s, const SessionMapArgs *a, MemoryFdSeen *seen,
                        uint64_t *ret_size, BrokerError *err) {
        const char *dev;
        struct stat st;
        int r;

        if (seen && a->fd >= 0 && seen->fd == a->fd && (seen->writeable || !a->writeable)) {
                *ret_size = seen->size;
                return 0;
        }
        r = check_memory_fd(a->fd, a->writeable, &st, err);
        if (r < 0)
                return r;
        /* A simulated device node is a regular file: it must not pass for memory. */
        dev = OPS(s)->device_node_of_file ? OPS(s)->device_node_of_file(s->host->backend, &st)
                                          : NULL;
        if (dev)
                return broker_error_invalid_fd(err, -EBADF,
                                               "The memory fd is the VFIO device %s, not memory.",
                                               dev);
        *ret_size = (uint64_t)st.st_size;
        if (seen)
                *seen = (MemoryFdSeen){ .fd = a->fd, .writeable = a->writeable,
                                        .size = *ret_size };
        return 0;
}

/*
 * What a map asks for, checked before anything is charged or mapped; windows: those of ioas
 * a batch looked up once, NULL to look them up.
 */
static int map_check(Session *s, SessionIoas *ioas, const SessionMapArgs *a, MemoryFdSeen *seen,
                     const SessionWindows *windows, BrokerError *err) {
        uint64_t last = 0, size = 0, end;
        int r;

        if (a->length == 0)
                return broker_error_invalid_range(err, a->iova, 0,
                                                  "A mapping of length 0 maps nothing.");
        if (!a->readable && !a->writeable) {
                broker_error_set(err, -EINVAL, BROKER_ERROR_INVALID_PARAMETER,
                                 "A mapping must be readable, writeable or both.");
                broker_error_add_string(err, "parameter", "readable");
                return -EINVAL;
        }
        if (a->fixed_iova && ADD_OVERFLOW(a->iova, a->length - 1, &last))
                return broker_error_invalid_range(err, a->iova, a->length,
                                                  "IOVA 0x%" PRIx64 " + length 0x%" PRIx64
                                                  " overflows 64 bits.",
                                                  a->iova, a->length);
        r = map_check_fd(s, a, seen, &size, err);
        if (r < 0)
                return r;
        if (ADD_OVERFLOW(a->offset, a->length, &end) || end > size)
                return broker_error_invalid_range(err, a->offset, a->length,
                        "Offset 0x%" PRIx64 " + length 0x%" PRIx64
                        " goes past the end of the memory fd (%" PRIu64 " bytes).",
                        a->offset, a->length, size);
        if (a->fixed_iova && windows)
                return session_windows_check(s, ioas, windows, a->iova, last, err);
        if (a->fixed_iova)
                return session_check_windows(s, ioas, a->iova, last, err);
        return 0;
}

/*
 * Maps one checked area whose charge the caller took; a failure refunds that charge and
 * leaves nothing mapped.
 */
static int map_charged(Session *s, SessionIoas *ioas, uint32_t ioas_id, const SessionMapArgs *a,
                       uint64_t *ret_iova, BrokerError *err) {
        Error be;
        uint32_t flags = 0;
        uint64_t iova = a->iova;
        int r;

        error_init(&be);
        if (session_ioas_reserve_area(ioas) < 0) {
                session_refund_mappings(s, 1, a->length);
                return broker_error_system(err, -ENOMEM, "Allocating memory");
        }
        if (a->readable)
                flags |= BACKEND_MAP_READABLE;
        if (a->writeable)
                flags |= BACKEND_MAP_WRITEABLE;
        r = OPS(s)->ioas_map_file(s->ctx, ioas_id,
                                  flags | (a->fixed_iova ? BACKEND_MAP_FIXED_IOVA : 0), a->fd,
                                  a->offset, a->length, &iova, &be);
        if (r < 0) {
                session_refund_mappings(s, 1, a->length);
                return map_error(err, &be, a->iova, a->fixed_iova, a->length);
        }

        r = session_commit_mapping(s, ioas, ioas_id, iova, a->length, flags, a->fixed_iova, err);
        if (r < 0)
                return r;
        *ret_iova = iova;
        return 0;
}

static int map_memory(Session *s, const SessionMapArgs *a, uint64_t *ret_iova, BrokerError *err) {
        SessionIoas *ioas;
        int r;

        REFUSE_IF_DELEGATED(s, err);

        ioas = LOOKUP_IOAS(s, a->ioas_id, err);
        r = map_check(s, ioas, a, NULL, NULL, err);
        if (r < 0)
                return r;
        r = session_charge_mappings(s, 1, a->length, err);
        if (r < 0)
                return r;
        return map_charged(s, ioas, a->ioas_id, a, ret_iova, err);
}

/* A map the policy refuses (a quota) is on the record; a granted one is not worth a line. */
int session_map(Session *s, const SessionMapArgs *a, uint64_t *ret_iova, BrokerError *err) {
        BrokerError local;

        broker_error_init(&local);
        assert_return(s, -EINVAL);
        assert_return(a, -EINVAL);
        assert_return(ret_iova, -EINVAL);

        err = err ?: &local;
        return session_audit_result(s, SESSION_AUDIT_MAP, NULL, map_memory(s, a, ret_iova, err),
                                    err);
}

/*
 * The areas [*ret_first, *ret_end) of ioas inside [iova, last]; refuses a range that cuts
 * one.  Mappings are never split, and the kernel's unmap is not atomic when the range cuts
 * one: deciding from our own record before touching anything leaves every mapping (and
 * the quota) as it was when an unmap is refused.
 */
static int unmap_find(const SessionIoas *ioas, uint64_t iova, uint64_t length, uint64_t last,
                      size_t *ret_first, size_t *ret_end, uint64_t *ret_bytes, BrokerError *err) {
        size_t first = session_ioas_first_area_from(ioas, iova), end;
        uint64_t bytes = 0;

        for (end = first; end < ioas->n_areas && ioas->areas[end].iova <= last; end++) {
                const SessionArea *a = &ioas->areas[end];
                uint64_t a_last = a->iova + (a->length - 1);

                if (a->iova < iova || a_last > last)
                        return broker_error_invalid_range(err, iova, length,
                                "Range 0x%" PRIx64 "-0x%" PRIx64 " cuts the mapping at 0x%" PRIx64
                                "-0x%" PRIx64 "; mappings are only removed whole.",
                                iova, last, a->iova, a_last);
                bytes += a->length;
        }
        *ret_first = first;
        *ret_end = end;
        *ret_bytes = bytes;
        return 0;
}

/* Unmaps the areas [first, end) that unmap_find() found for [iova, iova + length). */
static int unmap_found(Session *s, SessionIoas *ioas, uint32_t ioas_id, uint64_t iova,
                       uint64_t length, size_t first, size_t end, uint64_t bytes,
                       uint64_t *ret_unmapped, BrokerError *err) {
        Error be;
        uint64_t unmapped = 0;
        int r;

        error_init(&be);
        r = OPS(s)->ioas_unmap(s->ctx, ioas_id, iova, length, &unmapped, &be);
        if (r < 0)
                return broker_error_from_backend_range(err, "unmap", &be, iova, length);

        session_ioas_remove_areas(ioas, first, end);
        session_refund_mappings(s, end - first, bytes);
        *ret_unmapped = unmapped;
        return 0;
}

/* The inclusive end of an unmap's range; iova 0 + length UINT64_MAX is everything. */
static int unmap_last(uint64_t iova, uint64_t length, uint64_t *ret_last, BrokerError *err) {
        if (iova == 0 && length == UINT64_MAX)
                *ret_last = UINT64_MAX;
        else if (length == 0)
                return broker_error_invalid_range(err, iova, 0,
                                                  "An unmap of length 0 unmaps nothing.");
        else if (ADD_OVERFLOW(iova, length - 1, ret_last))
                return broker_error_invalid_range(err, iova, length,
                                                  "IOVA 0x%" PRIx64 " + length 0x%" PRIx64
                                                  " overflows 64 bits.",
                                                  iova, length);
        return 0;
}

static int unmap_nothing(BrokerError *err, uint32_t ioas_id, uint64_t iova, uint64_t length,
                         uint64_t last) {
        return broker_error_invalid_range(err, iova, length,
                                          "Nothing is mapped in 0x%" PRIx64 "-0x%" PRIx64
                                          " of address space %" PRIu32 ".",
                                          iova, last, ioas_id);
}

int session_unmap(Session *s, uint32_t ioas_id, uint64_t iova, uint64_t length,
                  uint64_t *ret_unmapped, BrokerError *err) {
        SessionIoas *ioas;
        uint64_t last = 0, bytes;
        size_t first, end;
        int r;

        assert_return(s, -EINVAL);
        assert_return(ret_unmapped, -EINVAL);

        REFUSE_IF_DELEGATED(s, err);

        ioas = LOOKUP_IOAS(s, ioas_id, err);
        r = unmap_last(iova, length, &last, err);
        if (r < 0)
                return r;
        r = unmap_find(ioas, iova, length, last, &first, &end, &bytes, err);
        if (r < 0)
                return r;
        if (first == end && !(iova == 0 && length == UINT64_MAX))
                return unmap_nothing(err, ioas_id, iova, length, last);
        if (first == end) {
                *ret_unmapped = 0;
                return 0;
        }
        return unmap_found(s, ioas, ioas_id, iova, length, first, end, bytes, ret_unmapped, err);
}

/* ---- batches ----------------------------------------------------------------------------- */

static int batch_area_error(BrokerError *err, size_t i, int r) {
        broker_error_add_u64(err, "area", i);
        return r;
}

/* Gives back the first n areas a batch mapped, newest first, with their charge. */
static void map_batch_undo(Session *s, uint32_t ioas_id, const SessionMapArgs *areas,
                           const uint64_t *iovas, size_t n) {
        while (n-- > 0) {
                uint64_t unmapped;

                if (session_unmap(s, ioas_id, iovas[n], areas[n].length, &unmapped, NULL) < 0)
                        log_warning("Undoing a refused batch: cannot unmap 0x%" PRIx64
                                    " in address space %" PRIu32 ".",
                                    iovas[n], ioas_id);
        }
}

static int map_batch(Session *s, uint32_t ioas_id, const SessionMapArgs *areas, size_t n,
                     uint64_t *ret_iovas, BrokerError *err) {
        MemoryFdSeen seen = { .fd = -EBADF };
        SessionWindows windows;
        SessionIoas *ioas;
        uint64_t total = 0, left;
        int r;

        REFUSE_IF_DELEGATED(s, err);

        ioas = LOOKUP_IOAS(s, ioas_id, err);
        session_windows_resolve(s, ioas, &windows);
        for (size_t i = 0; i < n; i++) {
                if (!areas[i].readable && !areas[i].writeable) {
                        char parameter[48];

                        /* org.varlink.service.InvalidParameter names the area in its path. */
                        snprintf(parameter, sizeof(parameter), "areas[%zu].readable", i);
                        broker_error_set(err, -EINVAL, BROKER_ERROR_INVALID_PARAMETER,
                                         "Area %zu is neither readable nor writeable.", i);
                        broker_error_add_string(err, "parameter", parameter);
                        return -EINVAL;
                }
                r = map_check(s, ioas, &areas[i], &seen, &windows, err);
                if (r < 0)
                        return batch_area_error(err, i, r);
                if (ADD_OVERFLOW(total, areas[i].length, &total))
                        return batch_area_error(err, i, broker_error_invalid_range(
                                err, areas[i].offset, areas[i].length,
                                "The areas up to %zu add up to more than 2^64 bytes.", i));
        }
        /* Once, for the total: a batch over quota is refused before anything is mapped. */
        r = session_charge_mappings(s, n, total, err);
        if (r < 0)
                return r;

        left = total;
        for (size_t i = 0; i < n; i++) {
                left -= areas[i].length;
                r = map_charged(s, ioas, ioas_id, &areas[i], &ret_iovas[i], err);
                if (r < 0) {
                        /* map_charged() refunded area i; the undo refunds 0..i-1. */
                        session_refund_mappings(s, n - i - 1, left);
                        map_batch_undo(s, ioas_id, areas, ret_iovas, i);
                        return batch_area_error(err, i, r);
                }
        }
        return 0;
}

int session_map_batch(Session *s, uint32_t ioas_id, const SessionMapArgs *areas, size_t n,
                      uint64_t *ret_iovas, BrokerError *err) {
        BrokerError local;

        broker_error_init(&local);
        assert_return(s, -EINVAL);
        assert_return(areas || n == 0, -EINVAL);
        assert_return(ret_iovas || n == 0, -EINVAL);
        assert_return(n <= SESSION_MAP_BATCH_MAX, -EINVAL);

        err = err ?: &local;
        return session_audit_result(s, SESSION_AUDIT_MAP, NULL,
                                    map_batch(s, ioas_id, areas, n, ret_iovas, err), err);
}

static int range_cmp(const void *a, const void *b) {
        const IovaRange *x = a, *y = b;

        return x->start < y->start ? -1 : x->start > y->start;
}

/* Refuses ranges that overlap: the second would find its mappings gone half-way. */
static int unmap_batch_disjoint(const IovaRange *ranges, size_t n, BrokerError *err) {
        _cleanup_free_ IovaRange *sorted = NULL;

        if (n < 2)
                return 0;
        sorted = malloc(n * sizeof(*ranges));
        if (!sorted)
                return broker_error_system(err, -ENOMEM, "Allocating memory");
        memcpy(sorted, ranges, n * sizeof(*ranges));
        qsort(sorted, n, sizeof(*sorted), range_cmp);
        for (size_t i = 1; i < n; i++)
                if (sorted[i].start <= sorted[i - 1].last)
                        return broker_error_invalid_range(err, sorted[i].start,
                                sorted[i].last - sorted[i].start + 1,
                                "Ranges 0x%" PRIx64 "-0x%" PRIx64 " and 0x%" PRIx64 "-0x%" PRIx64
                                " of the batch overlap.",
                                sorted[i - 1].start, sorted[i - 1].last, sorted[i].start,
                                sorted[i].last);
        return 0;
}

/* The length of [start, last] as session_unmap() takes it: everything is UINT64_MAX. */
static uint64_t range_length(const IovaRange *r) {
        return r->last - r->start == UINT64_MAX ? UINT64_MAX : r->last - r->start + 1;
}

static int unmap_batch(Session *s, uint32_t ioas_id, const IovaRange *ranges, size_t n,
                       uint64_t *ret_unmapped, BrokerError *err) {
        SessionIoas *ioas;
        uint64_t total = 0;
        int r;

        REFUSE_IF_DELEGATED(s, err);

        ioas = LOOKUP_IOAS(s, ioas_id, err);
        for (size_t i = 0; i < n; i++) {
                uint64_t start = ranges[i].start, last = ranges[i].last, bytes;
                size_t first, end;

                if (last < start)
                        return batch_area_error(err, i, broker_error_invalid_range(
                                err, start, 0, "Range 0x%" PRIx64 "-0x%" PRIx64 " ends before it "
                                "starts.", start, last));
                r = unmap_find(ioas, start, range_length(&ranges[i]), last, &first, &end, &bytes,
                               err);
                if (r < 0)
                        return batch_area_error(err, i, r);
                if (first == end)
                        return batch_area_error(err, i, unmap_nothing(err, ioas_id, start,
                                                                      range_length(&ranges[i]),
                                                                      last));
        }
        r = unmap_batch_disjoint(ranges, n, err);
        if (r < 0)
                return r;

        for (size_t i = 0; i < n; i++) {
                uint64_t start = ranges[i].start, last = ranges[i].last, bytes, unmapped;
                uint64_t length = range_length(&ranges[i]);
                size_t first, end;

                r = unmap_find(ioas, start, length, last, &first, &end, &bytes, err);
                if (r >= 0)
                        r = unmap_found(s, ioas, ioas_id, start, length, first, end, bytes,
                                        &unmapped, err);
                if (r < 0)
                        return batch_area_error(err, i, r);
                total += unmapped;
        }
        *ret_unmapped = total;
        return 0;
}

int session_unmap_batch(Session *s, uint32_t ioas_id, const IovaRange *ranges, size_t n,
                        uint64_t *ret_unmapped, BrokerError *err) {
        BrokerError local;

        broker_error_init(&local);
        assert_return(s, -EINVAL);
        assert_return(ranges || n == 0, -EINVAL);
        assert_return(ret_unmapped, -EINVAL);
        assert_return(n <= SESSION_MAP_BATCH_MAX, -EINVAL);

        return unmap_batch(s, ioas_id, ranges, n, ret_unmapped, err ?: &local);
}

int session_copy(Session *s, const SessionCopyArgs *a, uint64_t *ret_iova, BrokerError *err) {
        SessionIoas *src, *dst;
        const SessionArea *area = NULL;
        Error be;
        uint64_t src_last, dst_last = 0, iova;
        uint32_t flags;
        size_t i;
        int r;

        error_init(&be);
        assert_return(s, -EINVAL);
        assert_return(a, -EINVAL);
        assert_return(ret_iova, -EINVAL);

        REFUSE_IF_DELEGATED(s, err);

        src = LOOKUP_IOAS(s, a->src_ioas_id, err);
        dst = LOOKUP_IOAS(s, a->dst_ioas_id, err);
        iova = a->dst_iova;
        if (a->length == 0)
                return broker_error_invalid_range(err, a->src_iova, 0,
                                                  "A copy of length 0 copies nothing.");
        if (ADD_OVERFLOW(a->src_iova, a->length - 1, &src_last) ||
            (a->fixed_iova && ADD_OVERFLOW(a->dst_iova, a->length - 1, &dst_last)))
                return broker_error_invalid_range(err, a->src_iova, a->length,
                                                  "IOVA + length 0x%" PRIx64 " overflows 64 bits.",
                                                  a->length);
        i = session_ioas_first_area_from(src, a->src_iova);
        if (i < src->n_areas && src->areas[i].iova <= a->src_iova &&
            src->areas[i].iova + (src->areas[i].length - 1) >= src_last)
                area = &src->areas[i];
        if (!area)
                return broker_error_invalid_range(err, a->src_iova, a->length,
                                                  "Source range 0x%" PRIx64 "-0x%" PRIx64
                                                  " is not inside one mapping of address space "
                                                  "%" PRIu32 ".",
                                                  a->src_iova, src_last, a->src_ioas_id);
        if (a->fixed_iova) {
                r = session_check_windows(s, dst, a->dst_iova, dst_last, err);
                if (r < 0)
                        return r;
        }

        /* The copy inherits the source mapping's permissions; read them before the
         * reservation below may move the area array (src and dst can be the same). */
        flags = area->flags;
        area = NULL;
        if (session_ioas_reserve_area(dst) < 0)
                return broker_error_system(err, -ENOMEM, "Allocating memory");
        /* A copy pins nothing new in the kernel, but it is a mapping the client holds. */
        r = session_charge_mappings(s, 1, a->length, err);
        if (r < 0)
                return r;

        r = OPS(s)->ioas_copy(s->ctx, a->dst_ioas_id, a->src_ioas_id,
                              flags | (a->fixed_iova ? BACKEND_MAP_FIXED_IOVA : 0), a->src_iova,
                              a->length, &iova, &be);
        if (r < 0) {
                session_refund_mappings(s, 1, a->length);
                return map_error(err, &be, a->dst_iova, a->fixed_iova, a->length);
        }

        r = session_commit_mapping(s, dst, a->dst_ioas_id, iova, a->length, flags, a->fixed_iova,
                                   err);
        if (r < 0)
                return r;
        *ret_iova = iova;
        return 0;
}
