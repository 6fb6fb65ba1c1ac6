/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* IOAS operations, IOMMU_DESTROY and IOMMU_OPTION: one ioctl each on the context's iommufd. */

#include <fcntl.h>
#include <inttypes.h>

#include "assert-util.h"
#include "iommufd-abi.h"
#include "kernel-private.h"

int kernel_option(BackendContext *bc, uint32_t option_id, uint16_t op, uint32_t object_id,
                  uint64_t *val64, Error *err) {
        KernelContext *c = (KernelContext *)bc;
        struct iommud_option o = {
                .size = sizeof(o),
                .option_id = option_id,
                .op = op,
                .object_id = object_id,
        };
        int r;

        assert_return(bc, -EINVAL);
        assert_return(val64, -EINVAL);

        if (op == IOMMUD_IOMMU_OPTION_OP_SET)
                o.val64 = *val64;
        r = sys_ioctl(c, c->iommufd, IOMMUD_IOMMU_OPTION, &o);
        switch (r) {
        case 0:
                if (op == IOMMUD_IOMMU_OPTION_OP_GET)
                        *val64 = o.val64;
                return 0;
        case -EOPNOTSUPP:
                return error_set(err, r, "option %" PRIu32 " with op %u is not supported",
                                 option_id, op);
        case -ENOENT:
                return error_set(err, r, "object %" PRIu32 " does not exist", object_id);
        case -EPERM:
                return error_set(err, r, "setting option %" PRIu32 " needs CAP_SYS_RESOURCE",
                                 option_id);
        case -EBUSY:
                return error_set(err, r,
                                 "option %" PRIu32 " can only change while the context holds "
                                 "no mappings",
                                 option_id);
        case -EINVAL:
                return error_set(err, r, "value %" PRIu64 " or object %" PRIu32
                                 " is not valid for option %" PRIu32,
                                 o.val64, object_id, option_id);
        default:
                return kernel_error(err, r, "IOMMU_OPTION");
        }
}

int kernel_ioas_alloc(BackendContext *bc, uint32_t *ret_id, Error *err) {
        KernelContext *c = (KernelContext *)bc;
        struct iommud_ioas_alloc a = { .size = sizeof(a) };
        int r;

        assert_return(bc, -EINVAL);
        assert_return(ret_id, -EINVAL);

        r = sys_ioctl(c, c->iommufd, IOMMUD_IOMMU_IOAS_ALLOC, &a);
        if (r < 0)
                return kernel_error(err, r, "IOMMU_IOAS_ALLOC");
        *ret_id = a.out_ioas_id;
        return 0;
}

int kernel_destroy(BackendContext *bc, uint32_t id, Error *err) {
        KernelContext *c = (KernelContext *)bc;
        struct iommud_destroy d = { .size = sizeof(d), .id = id };
        KernelFd *f;
        int r;

        assert_return(bc, -EINVAL);

        f = kernel_fd_find(c->faults, c->n_faults, id);
        if (f && !c->adopted)
                return kernel_fault_destroy(c, f, err);
        r = sys_ioctl(c, c->iommufd, IOMMUD_IOMMU_DESTROY, &d);
        switch (r) {
        case 0:
                break;
        case -ENOENT:
                return error_set(err, r, "object %" PRIu32 " does not exist", id);
        case -EBUSY:
                return error_set(err, r,
                                 "object %" PRIu32 " is in use: a device is attached to it or "
                                 "another object depends on it",
                                 id);
        default:
                return kernel_error(err, r, "IOMMU_DESTROY");
        }

        /* The kernel dropped the IOAS's areas, or the fault object: release our side. */
        kernel_fallback_drop(c, id);
        kernel_fault_use_drop(c, id);
        if (f) {
                sys_close(kernel_of(bc), f->fd);
                kernel_fd_remove(c->faults, &c->n_faults, f);
        }
        return 0;
}

int kernel_ioas_map_file(BackendContext *bc, uint32_t ioas_id, uint32_t flags, int fd,
                         uint64_t start, uint64_t length, uint64_t *iova, Error *err) {
        KernelContext *c = (KernelContext *)bc;
        int r;

        assert_return(bc, -EINVAL);
        assert_return(iova, -EINVAL);

        if (!backend_has_feature(bc->backend, BACKEND_FEATURE_MAP_FILE))
                return kernel_fallback_map_file(c, ioas_id, flags, fd, start, length, iova, err);

        struct iommud_ioas_map_file m = {
                .size = sizeof(m),
                .flags = flags,
                .ioas_id = ioas_id,
                .fd = fd,
                .start = start,
                .length = length,
                .iova = (flags & IOMMUD_IOMMU_IOAS_MAP_FIXED_IOVA) ? *iova : 0,
        };
        r = sys_ioctl(c, c->iommufd, IOMMUD_IOMMU_IOAS_MAP_FILE, &m);
        if (r == -EBADF || r == -EINVAL) {
                if (fd < 0 || fcntl(fd, F_GETFD) < 0)
                        return error_set(err, -EBADF, "memory fd %d is not open", fd);
        }
        if (r < 0)
                return kernel_map_error(err, r, "IOMMU_IOAS_MAP_FILE", ioas_id, flags, length,
                                        m.iova);
        *iova = m.iova;
        return 0;
}

int kernel_ioas_map_va(BackendContext *bc, uint32_t ioas_id, uint32_t flags,
                       uint64_t user_va, uint64_t length, uint64_t *iova, Error *err) {
        KernelContext *c = (KernelContext *)bc;
        struct iommud_ioas_map m = {
                .size = sizeof(m),
                .flags = flags,
                .ioas_id = ioas_id,
                .user_va = user_va,
                .length = length,
        };
        int r;

        assert_return(bc, -EINVAL);
        assert_return(iova, -EINVAL);

        if (flags & IOMMUD_IOMMU_IOAS_MAP_FIXED_IOVA)
                m.iova = *iova;
        r = sys_ioctl(c, c->iommufd, IOMMUD_IOMMU_IOAS_MAP, &m);
        if (r < 0)
                return kernel_map_error(err, r, "IOMMU_IOAS_MAP", ioas_id, flags, length,
                                        m.iova);
        *iova = m.iova;
        return 0;
}

int kernel_ioas_unmap(BackendContext *bc, uint32_t ioas_id, uint64_t iova, uint64_t length,
                      uint64_t *ret_unmapped, Error *err) {
        KernelContext *c = (KernelContext *)bc;
        struct iommud_ioas_unmap u = {
                .size = sizeof(u),
                .ioas_id = ioas_id,
                .iova = iova,
                .length = length,
        };
        uint64_t last;
        int r;

        assert_return(bc, -EINVAL);

        r = sys_ioctl(c, c->iommufd, IOMMUD_IOMMU_IOAS_UNMAP, &u);
        switch (r) {
        case 0:
                break;
        case -ENOENT:
                /*
                 * Either no such IOAS, or the range cuts an area or maps nothing.  Areas
                 * wholly inside the range before the cut may already be gone; their
                 * fallback mappings are kept (the kernel might still reference them) and
                 * are released when a new mapping takes their place or the IOAS goes.
                 */
                return error_set(err, r,
                                 "IOVA range 0x%" PRIx64 "+0x%" PRIx64
                                 " does not cover whole mappings of IOAS %" PRIu32
                                 " (or the IOAS does not exist)",
                                 iova, length, ioas_id);
        case -EINVAL:
                return error_set(err, r,
                                 "IOVA range 0x%" PRIx64 "+0x%" PRIx64
                                 " is empty or misaligned for IOAS %" PRIu32,
                                 iova, length, ioas_id);
        case -EBUSY:
                return error_set(err, r,
                                 "IOVA range 0x%" PRIx64 "+0x%" PRIx64
                                 " is in use by a device access in IOAS %" PRIu32,
                                 iova, length, ioas_id);
        default:
                return kernel_error(err, r, "IOMMU_IOAS_UNMAP");
        }

        if (length == 0 || ADD_OVERFLOW(iova, length - 1, &last))
                last = UINT64_MAX;
        kernel_fallback_release_inside(c, ioas_id, iova, last);
        if (ret_unmapped)
                *ret_unmapped = u.length;
        return 0;
}

int kernel_ioas_copy(BackendContext *bc, uint32_t dst_ioas_id, uint32_t src_ioas_id,
                     uint32_t flags, uint64_t src_iova, uint64_t length,
                     uint64_t *dst_iova, Error *err) {
        KernelContext *c = (KernelContext *)bc;
        struct iommud_ioas_copy cp = {
                .size = sizeof(cp),
                .flags = flags,
                .dst_ioas_id = dst_ioas_id,
                .src_ioas_id = src_ioas_id,
                .length = length,
                .src_iova = src_iova,
        };
        int r;

        assert_return(bc, -EINVAL);
        assert_return(dst_iova, -EINVAL);

        if (flags & IOMMUD_IOMMU_IOAS_MAP_FIXED_IOVA)
                cp.dst_iova = *dst_iova;
        r = sys_ioctl(c, c->iommufd, IOMMUD_IOMMU_IOAS_COPY, &cp);
        switch (r) {
        case 0:
                break;
        case -ENOENT:
                return error_set(err, r,
                                 "source range 0x%" PRIx64 "+0x%" PRIx64
                                 " is not inside one mapping of IOAS %" PRIu32
                                 ", or IOAS %" PRIu32 " or %" PRIu32 " does not exist",
                                 src_iova, length, src_ioas_id, src_ioas_id, dst_ioas_id);
        default:
                return kernel_map_error(err, r, "IOMMU_IOAS_COPY", dst_ioas_id, flags, length,
                                        cp.dst_iova);
        }

        /* A copy of a fallback area references the same pages: keep the mmap for it too. */
        r = kernel_fallback_copied(c, src_ioas_id, src_iova, dst_ioas_id, cp.dst_iova, length);
        if (r < 0) {
                kernel_fallback_unmap_unrecorded(c, dst_ioas_id, cp.dst_iova, length);
                return error_set(err, r, "out of memory");
        }
        *dst_iova = cp.dst_iova;
        return 0;
}

int kernel_ioas_iova_ranges(BackendContext *bc, uint32_t ioas_id, IovaRange *ranges,
                            size_t *n_ranges, uint64_t *ret_alignment, Error *err) {
        KernelContext *c = (KernelContext *)bc;
        struct iommud_ioas_iova_ranges q = {
                .size = sizeof(q),
                .ioas_id = ioas_id,
                .allowed_iovas = (uint64_t)(uintptr_t)ranges,
        };
        int r;

        assert_return(bc, -EINVAL);
        assert_return(n_ranges, -EINVAL);
        assert_return(ranges || *n_ranges == 0, -EINVAL);

        q.num_iovas = (uint32_t)MIN(*n_ranges, (size_t)UINT32_MAX);
        r = sys_ioctl(c, c->iommufd, IOMMUD_IOMMU_IOAS_IOVA_RANGES, &q);
        switch (r) {
        case 0:
                break;
        case -EMSGSIZE:
                *n_ranges = q.num_iovas;
                return error_set(err, r,
                                 "IOAS %" PRIu32 " has %" PRIu32 " IOVA ranges, room was given "
                                 "for fewer",
                                 ioas_id, q.num_iovas);
        case -ENOENT:
                return error_set(err, r, "IOAS %" PRIu32 " does not exist", ioas_id);
        default:
                return kernel_error(err, r, "IOMMU_IOAS_IOVA_RANGES");
        }
        *n_ranges = q.num_iovas;
        if (ret_alignment)
                *ret_alignment = q.out_iova_alignment;
        return 0;
}

int kernel_ioas_allow_iovas(BackendContext *bc, uint32_t ioas_id, const IovaRange *ranges,
                            size_t n, Error *err) {
        KernelContext *c = (KernelContext *)bc;
        struct iommud_ioas_allow_iovas a = {
                .size = sizeof(a),
                .ioas_id = ioas_id,
                .num_iovas = (uint32_t)n,
                .allowed_iovas = (uint64_t)(uintptr_t)ranges,
        };
        int r;

        assert_return(bc, -EINVAL);
        assert_return(ranges || n == 0, -EINVAL);

        if (n > UINT32_MAX)
                return error_set(err, -EINVAL, "%zu IOVA ranges are too many", n);
        r = sys_ioctl(c, c->iommufd, IOMMUD_IOMMU_IOAS_ALLOW_IOVAS, &a);
        switch (r) {
        case 0:
                return 0;
        case -ENOENT:
                return error_set(err, r, "IOAS %" PRIu32 " does not exist", ioas_id);
        case -EINVAL:
                return error_set(err, r,
                                 "the allowed IOVA ranges for IOAS %" PRIu32
                                 " are invalid: a range ends before it starts or two overlap",
                                 ioas_id);
        case -EADDRINUSE:
                return error_set(err, r,
                                 "an allowed IOVA range of IOAS %" PRIu32
                                 " intersects a reserved region",
                                 ioas_id);
        default:
                return kernel_error(err, r, "IOMMU_IOAS_ALLOW_IOVAS");
        }
}
