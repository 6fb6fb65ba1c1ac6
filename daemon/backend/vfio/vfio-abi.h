/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The legacy VFIO user ABI as iommud speaks it: the container (/dev/vfio/vfio),
 * group files (/dev/vfio/<group>) and the type1 IOMMU driver's ioctls.
 *
 * Written from the kernel's uAPI (include/uapi/linux/vfio.h).  Names carry an
 * IOMMUD_ / iommud_ prefix so this header and the kernel's compile in one
 * translation unit: tools/abi-check-vfio.c compares every number, size and
 * offset with the <linux/vfio.h> the system has.  The ioctl type and base are
 * the ones the VFIO device cdev ioctls of iommufd-abi.h use.
 *
 * Rules the kernel applies (and the test responder reproduces):
 *   - every argument starts with "u32 argsz"; below the end of the mandatory
 *     fields => EINVAL; bytes past them are ignored;
 *   - unknown flags => EINVAL (not EOPNOTSUPP as with iommufd);
 *   - container ioctls other than GET_API_VERSION, CHECK_EXTENSION and
 *     SET_IOMMU answer EINVAL until SET_IOMMU succeeded, which needs a group
 *     in the container; an unknown number on a set container => ENOTTY;
 *   - the group file opens once at a time (EBUSY for the second open).
 */

#include <stddef.h>
#include <stdint.h>
#include <linux/ioctl.h>

#include "iommufd-abi.h"

#define IOMMUD_VFIO_API_VERSION 0

/* VFIO_CHECK_EXTENSION / VFIO_SET_IOMMU arguments. */
enum {
        IOMMUD_VFIO_TYPE1_IOMMU = 1,
        IOMMUD_VFIO_TYPE1v2_IOMMU = 3,
        IOMMUD_VFIO_DMA_CC_IOMMU = 4,
        IOMMUD_VFIO_UNMAP_ALL = 9,
        IOMMUD_VFIO_UPDATE_VADDR = 10,
};

#define IOMMUD_VFIO_IO(n) _IO(IOMMUD_VFIO_TYPE, IOMMUD_VFIO_BASE + (n))

/* Container. */
#define IOMMUD_VFIO_GET_API_VERSION IOMMUD_VFIO_IO(0)
#define IOMMUD_VFIO_CHECK_EXTENSION IOMMUD_VFIO_IO(1)
#define IOMMUD_VFIO_SET_IOMMU IOMMUD_VFIO_IO(2)
/* Group: the argument of SET_CONTAINER points to an int (the container fd). */
#define IOMMUD_VFIO_GROUP_GET_STATUS IOMMUD_VFIO_IO(3)
#define IOMMUD_VFIO_GROUP_SET_CONTAINER IOMMUD_VFIO_IO(4)
#define IOMMUD_VFIO_GROUP_UNSET_CONTAINER IOMMUD_VFIO_IO(5)
/* The argument is the device's name, NUL-terminated; returns a new fd. */
#define IOMMUD_VFIO_GROUP_GET_DEVICE_FD IOMMUD_VFIO_IO(6)
/* Type1 IOMMU, on a container after SET_IOMMU. */
#define IOMMUD_VFIO_IOMMU_GET_INFO IOMMUD_VFIO_IO(12)
#define IOMMUD_VFIO_IOMMU_MAP_DMA IOMMUD_VFIO_IO(13)
#define IOMMUD_VFIO_IOMMU_UNMAP_DMA IOMMUD_VFIO_IO(14)
#define IOMMUD_VFIO_IOMMU_DIRTY_PAGES IOMMUD_VFIO_IO(17)

enum {
        IOMMUD_VFIO_GROUP_FLAGS_VIABLE = 1 << 0,
        IOMMUD_VFIO_GROUP_FLAGS_CONTAINER_SET = 1 << 1,
};

struct iommud_vfio_group_status {
        uint32_t argsz;
        uint32_t flags;
};

enum {
        IOMMUD_VFIO_IOMMU_INFO_PGSIZES = 1 << 0,
        IOMMUD_VFIO_IOMMU_INFO_CAPS = 1 << 1,
};

/*
 * GET_INFO: the fixed part, then (with INFO_CAPS and an argsz large enough) a
 * chain of capabilities at cap_offset.  Too small an argsz: the kernel sets
 * INFO_CAPS, leaves cap_offset 0 and writes the size it needs into argsz.
 */
struct iommud_vfio_iommu_type1_info {
        uint32_t argsz;
        uint32_t flags;
        iommud_aligned_u64 iova_pgsizes;
        uint32_t cap_offset;
};

struct iommud_vfio_info_cap_header {
        uint16_t id;
        uint16_t version;
        uint32_t next; /* offset from the start of the info buffer; 0 ends the chain */
};

enum {
        IOMMUD_VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE = 1,
        IOMMUD_VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION = 2,
        IOMMUD_VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL = 3,
};

struct iommud_vfio_iova_range {
        iommud_aligned_u64 start;
        iommud_aligned_u64 end; /* inclusive */
};

struct iommud_vfio_iommu_type1_info_cap_iova_range {
        struct iommud_vfio_info_cap_header header;
        uint32_t nr_iovas;
        uint32_t reserved;
        struct iommud_vfio_iova_range iova_ranges[];
};

/* Its presence says the container can log dirty pages (VFIO_IOMMU_DIRTY_PAGES). */
struct iommud_vfio_iommu_type1_info_cap_migration {
        struct iommud_vfio_info_cap_header header;
        uint32_t flags;
        iommud_aligned_u64 pgsize_bitmap;
        iommud_aligned_u64 max_dirty_bitmap_size;
};

struct iommud_vfio_iommu_type1_info_dma_avail {
        struct iommud_vfio_info_cap_header header;
        uint32_t avail;
};

enum {
        IOMMUD_VFIO_DMA_MAP_FLAG_READ = 1 << 0,
        IOMMUD_VFIO_DMA_MAP_FLAG_WRITE = 1 << 1,
        IOMMUD_VFIO_DMA_MAP_FLAG_VADDR = 1 << 2,
};

/* vaddr, iova and size aligned to the smallest IOMMU page size; no automatic IOVA. */
struct iommud_vfio_iommu_type1_dma_map {
        uint32_t argsz;
        uint32_t flags;
        iommud_aligned_u64 vaddr;
        iommud_aligned_u64 iova;
        iommud_aligned_u64 size;
};

enum {
        IOMMUD_VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP = 1 << 0,
        IOMMUD_VFIO_DMA_UNMAP_FLAG_ALL = 1 << 1,
        IOMMUD_VFIO_DMA_UNMAP_FLAG_VADDR = 1 << 2,
};

/*
 * size is in/out: the bytes unmapped.  v2 refuses (EINVAL) a range that cuts a
 * mapping, before it removes anything; a range with nothing in it succeeds with
 * 0.  FLAG_ALL (with iova = size = 0) removes everything.
 */
struct iommud_vfio_iommu_type1_dma_unmap {
        uint32_t argsz;
        uint32_t flags;
        iommud_aligned_u64 iova;
        iommud_aligned_u64 size;
};

struct iommud_vfio_bitmap {
        iommud_aligned_u64 pgsize; /* the smallest IOMMU page size */
        iommud_aligned_u64 size;   /* bytes at data */
        iommud_aligned_u64 data;   /* a user pointer: one bit per page, zeroed by the caller */
};

enum {
        IOMMUD_VFIO_IOMMU_DIRTY_PAGES_FLAG_START = 1 << 0,
        IOMMUD_VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP = 1 << 1,
        IOMMUD_VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP = 1 << 2,
};

/* One flag at a time; GET_BITMAP is followed by a dirty_bitmap_get within argsz. */
struct iommud_vfio_iommu_type1_dirty_bitmap {
        uint32_t argsz;
        uint32_t flags;
};

struct iommud_vfio_iommu_type1_dirty_bitmap_get {
        iommud_aligned_u64 iova;
        iommud_aligned_u64 size;
        struct iommud_vfio_bitmap bitmap;
};

#define IOMMUD_VFIO_GROUP_STATUS_MINSZ                                                             \
        IOMMUD_ABI_OFFSETOFEND(struct iommud_vfio_group_status, flags)
#define IOMMUD_VFIO_INFO_MINSZ                                                                     \
        IOMMUD_ABI_OFFSETOFEND(struct iommud_vfio_iommu_type1_info, iova_pgsizes)
#define IOMMUD_VFIO_MAP_MINSZ IOMMUD_ABI_OFFSETOFEND(struct iommud_vfio_iommu_type1_dma_map, size)
#define IOMMUD_VFIO_UNMAP_MINSZ                                                                    \
        IOMMUD_ABI_OFFSETOFEND(struct iommud_vfio_iommu_type1_dma_unmap, size)
#define IOMMUD_VFIO_DIRTY_MINSZ                                                                    \
        IOMMUD_ABI_OFFSETOFEND(struct iommud_vfio_iommu_type1_dirty_bitmap, flags)

/* ---- layout pins ---- */

IOMMUD_ABI_SIZE(iommud_vfio_group_status, 8);
IOMMUD_ABI_OFF(iommud_vfio_group_status, flags, 4);

IOMMUD_ABI_SIZE(iommud_vfio_iommu_type1_info, 24);
IOMMUD_ABI_OFF(iommud_vfio_iommu_type1_info, flags, 4);
IOMMUD_ABI_OFF(iommud_vfio_iommu_type1_info, iova_pgsizes, 8);
IOMMUD_ABI_OFF(iommud_vfio_iommu_type1_info, cap_offset, 16);

IOMMUD_ABI_SIZE(iommud_vfio_info_cap_header, 8);
IOMMUD_ABI_OFF(iommud_vfio_info_cap_header, version, 2);
IOMMUD_ABI_OFF(iommud_vfio_info_cap_header, next, 4);

IOMMUD_ABI_SIZE(iommud_vfio_iova_range, 16);
IOMMUD_ABI_OFF(iommud_vfio_iova_range, end, 8);

IOMMUD_ABI_SIZE(iommud_vfio_iommu_type1_info_cap_iova_range, 16);
IOMMUD_ABI_OFF(iommud_vfio_iommu_type1_info_cap_iova_range, nr_iovas, 8);
IOMMUD_ABI_OFF(iommud_vfio_iommu_type1_info_cap_iova_range, iova_ranges, 16);

IOMMUD_ABI_SIZE(iommud_vfio_iommu_type1_info_cap_migration, 32);
IOMMUD_ABI_OFF(iommud_vfio_iommu_type1_info_cap_migration, flags, 8);
IOMMUD_ABI_OFF(iommud_vfio_iommu_type1_info_cap_migration, pgsize_bitmap, 16);
IOMMUD_ABI_OFF(iommud_vfio_iommu_type1_info_cap_migration, max_dirty_bitmap_size, 24);

IOMMUD_ABI_SIZE(iommud_vfio_iommu_type1_info_dma_avail, 12);
IOMMUD_ABI_OFF(iommud_vfio_iommu_type1_info_dma_avail, avail, 8);

IOMMUD_ABI_SIZE(iommud_vfio_iommu_type1_dma_map, 32);
IOMMUD_ABI_OFF(iommud_vfio_iommu_type1_dma_map, vaddr, 8);
IOMMUD_ABI_OFF(iommud_vfio_iommu_type1_dma_map, iova, 16);
IOMMUD_ABI_OFF(iommud_vfio_iommu_type1_dma_map, size, 24);

IOMMUD_ABI_SIZE(iommud_vfio_iommu_type1_dma_unmap, 24);
IOMMUD_ABI_OFF(iommud_vfio_iommu_type1_dma_unmap, iova, 8);
IOMMUD_ABI_OFF(iommud_vfio_iommu_type1_dma_unmap, size, 16);

IOMMUD_ABI_SIZE(iommud_vfio_bitmap, 24);
IOMMUD_ABI_OFF(iommud_vfio_bitmap, size, 8);
IOMMUD_ABI_OFF(iommud_vfio_bitmap, data, 16);

IOMMUD_ABI_SIZE(iommud_vfio_iommu_type1_dirty_bitmap, 8);
IOMMUD_ABI_SIZE(iommud_vfio_iommu_type1_dirty_bitmap_get, 40);
IOMMUD_ABI_OFF(iommud_vfio_iommu_type1_dirty_bitmap_get, size, 8);
IOMMUD_ABI_OFF(iommud_vfio_iommu_type1_dirty_bitmap_get, bitmap, 16);

_Static_assert(IOMMUD_VFIO_IOMMU_MAP_DMA == 0x3B71, "type1 ioctls are _IO(';', 113)");
