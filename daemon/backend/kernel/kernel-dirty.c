/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Dirty tracking of paging HWPTs: IOMMU_HWPT_SET_DIRTY_TRACKING and
 * IOMMU_HWPT_GET_DIRTY_BITMAP, with the kernel's errnos turned into sentences.
 */

#include <inttypes.h>

#include "assert-util.h"
#include "iommufd-abi.h"
#include "kernel-private.h"

int kernel_hwpt_set_dirty_tracking(BackendContext *bc, uint32_t hwpt_id, bool enable,
                                   Error *err) {
        KernelContext *c = (KernelContext *)bc;
        struct iommud_hwpt_set_dirty_tracking d = {
                .size = sizeof(d),
                .flags = enable ? IOMMUD_IOMMU_HWPT_DIRTY_TRACKING_ENABLE : 0,
                .hwpt_id = hwpt_id,
        };
        int r;

        assert_return(bc, -EINVAL);

        r = sys_ioctl(c, c->iommufd, IOMMUD_IOMMU_HWPT_SET_DIRTY_TRACKING, &d);
        switch (r) {
        case 0:
                return 0;
        case -ENOENT:
                return error_set(err, r, "HWPT %" PRIu32 " is not a paging HWPT of this context",
                                 hwpt_id);
        case -EOPNOTSUPP:
                return error_set(err, r,
                                 "HWPT %" PRIu32 " was not allocated with dirty tracking",
                                 hwpt_id);
        default:
                return kernel_error(err, r, "IOMMU_HWPT_SET_DIRTY_TRACKING");
        }
}

int kernel_hwpt_get_dirty_bitmap(BackendContext *bc, const DirtyBitmapArgs *args, Error *err) {
        KernelContext *c = (KernelContext *)bc;
        struct iommud_hwpt_get_dirty_bitmap g;
        int r;

        assert_return(bc, -EINVAL);
        assert_return(args && args->data, -EINVAL);

        g = (struct iommud_hwpt_get_dirty_bitmap){
                .size = sizeof(g),
                .hwpt_id = args->hwpt_id,
                .flags = args->flags,
                .iova = args->iova,
                .length = args->length,
                .page_size = args->page_size,
                .data = (uint64_t)(uintptr_t)args->data,
        };
        r = sys_ioctl(c, c->iommufd, IOMMUD_IOMMU_HWPT_GET_DIRTY_BITMAP, &g);
        switch (r) {
        case 0:
                return 0;
        case -ENOENT:
                return error_set(err, r, "HWPT %" PRIu32 " is not a paging HWPT of this context",
                                 args->hwpt_id);
        case -EOPNOTSUPP:
                return error_set(err, r,
                                 "HWPT %" PRIu32 " was not allocated with dirty tracking, or "
                                 "flags 0x%" PRIx32 " are unknown",
                                 args->hwpt_id, args->flags);
        case -EINVAL:
                return error_set(err, r,
                                 "HWPT %" PRIu32 " refused 0x%" PRIx64 "+0x%" PRIx64
                                 " at page size 0x%" PRIx64 ": tracking is off, the range or "
                                 "page size is misaligned, or the range is not wholly mapped",
                                 args->hwpt_id, args->iova, args->length, args->page_size);
        default:
                return kernel_error(err, r, "IOMMU_HWPT_GET_DIRTY_BITMAP");
        }
}
