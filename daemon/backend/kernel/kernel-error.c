/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* Sentences for errnos that several operations share. */

#include <inttypes.h>
#include <string.h>

#include "iommufd-abi.h"
#include "kernel-private.h"

/* The generic sentence for an errno the per-operation mapping did not name. */
int kernel_error(Error *err, int r, const char *ioctl_name) {
        switch (r) {
        case -ENOTTY:
                return error_set(err, r, "the kernel does not know %s", ioctl_name);
        case -E2BIG:
                return error_set(err, r, "the kernel rejected unknown non-zero fields in %s",
                                 ioctl_name);
        case -EOPNOTSUPP:
                return error_set(err, r, "%s: a flag or value is not supported by this kernel",
                                 ioctl_name);
        case -EOVERFLOW:
                return error_set(err, r, "%s: an address or length overflows", ioctl_name);
        case -ENOMEM:
                return error_set(err, r, "%s: out of memory", ioctl_name);
        case -EFAULT:
                return error_set(err, r, "%s: the kernel could not access the memory given",
                                 ioctl_name);
        default:
                return error_set(err, r, "%s failed: %s", ioctl_name, strerror(-r));
        }
}

int kernel_map_error(Error *err, int r, const char *ioctl_name, uint32_t ioas_id,
                     uint32_t flags, uint64_t length, uint64_t iova) {
        bool fixed = flags & IOMMUD_IOMMU_IOAS_MAP_FIXED_IOVA;

        switch (r) {
        case -ENOENT:
                return error_set(err, r, "IOAS %" PRIu32 " does not exist", ioas_id);
        case -EEXIST:
                return error_set(err, r,
                                 "IOVA range 0x%" PRIx64 "+0x%" PRIx64
                                 " overlaps an existing mapping in IOAS %" PRIu32,
                                 iova, length, ioas_id);
        case -ENOSPC:
                return error_set(err, r,
                                 "no free IOVA range of 0x%" PRIx64 " bytes in IOAS %" PRIu32,
                                 length, ioas_id);
        case -EINVAL:
                if (!(flags & (IOMMUD_IOMMU_IOAS_MAP_READABLE | IOMMUD_IOMMU_IOAS_MAP_WRITEABLE)))
                        return error_set(err, r, "a mapping must be readable, writeable or both");
                if (length == 0)
                        return error_set(err, r, "cannot map 0 bytes");
                if (fixed)
                        return error_set(err, r,
                                         "IOVA 0x%" PRIx64 "+0x%" PRIx64
                                         " is misaligned or outside the usable ranges of IOAS "
                                         "%" PRIu32,
                                         iova, length, ioas_id);
                return error_set(err, r, "length 0x%" PRIx64 " is not valid for IOAS %" PRIu32,
                                 length, ioas_id);
        case -EFAULT:
                return error_set(err, r,
                                 "the memory cannot be pinned for DMA (not ordinary memory, "
                                 "e.g. a device BAR)");
        case -ENOMEM:
                return error_set(err, r,
                                 "pinning 0x%" PRIx64 " bytes failed: out of memory or over "
                                 "the locked-memory limit",
                                 length);
        case -EBADF:
                return error_set(err, r, "the memory fd is not open");
        default:
                return kernel_error(err, r, ioctl_name);
        }
}
