/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/magic.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>

#include "assert-util.h"
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

static int check_memory_fd(int fd, uint64_t offset, uint64_t length, bool writeable,
                           BrokerError *err) {
        struct statfs sfs;
        struct stat st;
        uint64_t end;
        int flags;

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
        if (fstat(fd, &st) < 0)
                return broker_error_invalid_fd(err, -EBADF, "fstat on the memory fd failed: %s",
                                               strerror(errno));
        if (!S_ISREG(st.st_mode))
                return broker_error_invalid_fd(err, -EBADF,
                                               "The memory fd is a %s, not a memfd, shmem or "
                                               "hugetlbfs file.",
                                               S_ISDIR(st.st_mode)    ? "directory"
                                               : S_ISCHR(st.st_mode)  ? "character device"
                                               : S_ISBLK(st.st_mode)  ? "block device"
                                               : S_ISFIFO(st.st_mode) ? "pipe"
                                               : S_ISSOCK(st.st_mode) ? "socket"
                                                                      : "special file");
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
        if ((flags & O_ACCMODE) == O_WRONLY)
                return broker_error_invalid_fd(err, -EBADF,
                                               "The memory fd is open write-only; it must be "
                                               "readable.");
        if (writeable && (flags & O_ACCMODE) == O_RDONLY)
                return broker_error_invalid_fd(err, -EBADF,
                                               "A writeable mapping needs a memory fd opened "
                                               "read-write, this one is read-only.");
        if (writeable) {
                int r = check_write_seals(fd, err);

                if (r < 0)
                        return r;
        }
        if (ADD_OVERFLOW(offset, length, &end) || end > (uint64_t)st.st_size)
                return broker_error_invalid_range(err, offset, length,
                        "Offset 0x%" PRIx64 " + length 0x%" PRIx64
                        " goes past the end of the memory fd (%" PRIu64 " bytes).",
                        offset, length, (uint64_t)st.st_size);
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
 * alike, session_charge_mapping(), so the refund on unmap never depends on how the mapping
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

static int map_memory(Session *s, const SessionMapArgs *a, uint64_t *ret_iova, BrokerError *err) {
        SessionIoas *ioas;
        Error be = ERROR_INIT;
        uint32_t flags = 0;
        uint64_t iova, last = 0;
        int r;

        REFUSE_IF_DELEGATED(s, err);

        ioas = LOOKUP_IOAS(s, a->ioas_id, err);
        iova = a->iova;
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
        r = check_memory_fd(a->fd, a->offset, a->length, a->writeable, err);
        if (r < 0)
                return r;
        {
                _cleanup_free_ char *dev = NULL;

                /* A simulated device node is a regular file: it must not pass for memory. */
                if (OPS(s)->device_fd_identify(s->host->backend, a->fd, &dev, NULL) >= 0)
                        return broker_error_invalid_fd(err, -EBADF,
                                                       "The memory fd is the VFIO device %s, "
                                                       "not memory.",
                                                       dev);
        }
        if (a->fixed_iova) {
                r = session_check_windows(s, ioas, a->iova, last, err);
                if (r < 0)
                        return r;
        }

        if (session_ioas_reserve_area(ioas) < 0)
                return broker_error_system(err, -ENOMEM, "Allocating memory");
        r = session_charge_mapping(s, a->length, err);
        if (r < 0)
                return r;

        if (a->readable)
                flags |= BACKEND_MAP_READABLE;
        if (a->writeable)
                flags |= BACKEND_MAP_WRITEABLE;
        r = OPS(s)->ioas_map_file(s->ctx, a->ioas_id,
                                  flags | (a->fixed_iova ? BACKEND_MAP_FIXED_IOVA : 0), a->fd,
                                  a->offset, a->length, &iova, &be);
        if (r < 0) {
                session_refund_mappings(s, 1, a->length);
                return map_error(err, &be, a->iova, a->fixed_iova, a->length);
        }

        r = session_commit_mapping(s, ioas, a->ioas_id, iova, a->length, flags, a->fixed_iova, err);
        if (r < 0)
                return r;
        *ret_iova = iova;
        return 0;
}

/* A map the policy refuses (a quota) is on the record; a granted one is not worth a line. */
int session_map(Session *s, const SessionMapArgs *a, uint64_t *ret_iova, BrokerError *err) {
        BrokerError local = BROKER_ERROR_INIT;

        assert_return(s, -EINVAL);
        assert_return(a, -EINVAL);
        assert_return(ret_iova, -EINVAL);

        err = err ?: &local;
        return session_audit_result(s, SESSION_AUDIT_MAP, NULL, map_memory(s, a, ret_iova, err),
                                    err);
}

int session_unmap(Session *s, uint32_t ioas_id, uint64_t iova, uint64_t length,
                  uint64_t *ret_unmapped, BrokerError *err) {
        SessionIoas *ioas;
        Error be = ERROR_INIT;
        uint64_t last, refund = 0, unmapped = 0;
        size_t first, end;
        int r;

        assert_return(s, -EINVAL);
        assert_return(ret_unmapped, -EINVAL);

        REFUSE_IF_DELEGATED(s, err);

        ioas = LOOKUP_IOAS(s, ioas_id, err);
        if (iova == 0 && length == UINT64_MAX)
                last = UINT64_MAX;
        else if (length == 0)
                return broker_error_invalid_range(err, iova, 0,
                                                  "An unmap of length 0 unmaps nothing.");
        else if (ADD_OVERFLOW(iova, length - 1, &last))
                return broker_error_invalid_range(err, iova, length,
                                                  "IOVA 0x%" PRIx64 " + length 0x%" PRIx64
                                                  " overflows 64 bits.",
                                                  iova, length);

        /*
         * Mappings are never split, and the kernel's unmap is not atomic when the range cuts
         * one: decide from our own record before touching anything, so a refused unmap
         * leaves every mapping (and the quota) as it was.
         */
        first = session_ioas_first_area_from(ioas, iova);
        for (end = first; end < ioas->n_areas && ioas->areas[end].iova <= last; end++) {
                const SessionArea *a = &ioas->areas[end];
                uint64_t a_last = a->iova + (a->length - 1);

                if (a->iova < iova || a_last > last)
                        return broker_error_invalid_range(err, iova, length,
                                "Range 0x%" PRIx64 "-0x%" PRIx64 " cuts the mapping at 0x%" PRIx64
                                "-0x%" PRIx64 "; mappings are only removed whole.",
                                iova, last, a->iova, a_last);
                refund += a->length;
        }
        if (first == end && !(iova == 0 && length == UINT64_MAX))
                return broker_error_invalid_range(err, iova, length,
                                                  "Nothing is mapped in 0x%" PRIx64 "-0x%" PRIx64
                                                  " of address space %" PRIu32 ".",
                                                  iova, last, ioas_id);
        if (first == end) {
                *ret_unmapped = 0;
                return 0;
        }

        r = OPS(s)->ioas_unmap(s->ctx, ioas_id, iova, length, &unmapped, &be);
        if (r < 0)
                return broker_error_from_backend_range(err, "unmap", &be, iova, length);

        memmove(&ioas->areas[first], &ioas->areas[end],
                (ioas->n_areas - end) * sizeof(SessionArea));
        ioas->n_areas -= end - first;
        session_refund_mappings(s, end - first, refund);
        *ret_unmapped = unmapped;
        return 0;
}

int session_copy(Session *s, const SessionCopyArgs *a, uint64_t *ret_iova, BrokerError *err) {
        SessionIoas *src, *dst;
        const SessionArea *area = NULL;
        Error be = ERROR_INIT;
        uint64_t src_last, dst_last = 0, iova;
        uint32_t flags;
        size_t i;
        int r;

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
        r = session_charge_mapping(s, a->length, err);
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
