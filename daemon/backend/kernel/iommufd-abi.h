/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The iommufd and VFIO-cdev user ABI, as iommud speaks it.
 *
 * Debian 12's linux-libc-dev (6.1) predates <linux/iommufd.h>, so iommud
 * carries its own definitions, written from the kernel's documented uAPI.
 * Every name has an IOMMUD_ / iommud_ prefix so that this header and the
 * kernel's can be compiled in one translation unit: tools/abi-check.c does
 * exactly that and asserts that numbers, sizes and offsets agree.
 *
 * Rules the kernel applies to every iommufd ioctl (and that the test
 * responder reproduces):
 *   - the argument starts with "u32 size"; shorter than the last mandatory
 *     field => EINVAL; longer with any non-zero byte past what the kernel
 *     knows => E2BIG; longer with only zero bytes => as if exact;
 *   - non-zero reserved fields, unknown flags or enum values => EOPNOTSUPP;
 *   - an unknown ioctl number => ENOTTY.
 * VFIO cdev ioctls use "argsz" with a fixed minimum and ignore bytes past
 * what the flags ask for; unknown flags there are EINVAL.
 *
 * Structures grow at the end.  Where the newest kernel added a field to a
 * structure (vfio bind token, PASID in attach/detach), the structure here
 * has the newest layout; older kernels read only their prefix of it.
 */

#include <stddef.h>
#include <stdint.h>
#include <linux/ioctl.h>

/* 64-bit fields are 8-byte aligned on every architecture, as __aligned_u64 is. */
typedef uint64_t iommud_aligned_u64 __attribute__((aligned(8)));

/* ---- iommufd ioctl numbers: _IO(';', nr), no size or direction bits ---- */

#define IOMMUD_IOMMUFD_TYPE ';'

enum {
        IOMMUD_IOMMUFD_CMD_BASE = 0x80,
        IOMMUD_IOMMUFD_CMD_DESTROY = 0x80,
        IOMMUD_IOMMUFD_CMD_IOAS_ALLOC = 0x81,
        IOMMUD_IOMMUFD_CMD_IOAS_ALLOW_IOVAS = 0x82,
        IOMMUD_IOMMUFD_CMD_IOAS_COPY = 0x83,
        IOMMUD_IOMMUFD_CMD_IOAS_IOVA_RANGES = 0x84,
        IOMMUD_IOMMUFD_CMD_IOAS_MAP = 0x85,
        IOMMUD_IOMMUFD_CMD_IOAS_UNMAP = 0x86,
        IOMMUD_IOMMUFD_CMD_OPTION = 0x87,
        IOMMUD_IOMMUFD_CMD_VFIO_IOAS = 0x88,
        IOMMUD_IOMMUFD_CMD_HWPT_ALLOC = 0x89,
        IOMMUD_IOMMUFD_CMD_GET_HW_INFO = 0x8a,
        IOMMUD_IOMMUFD_CMD_HWPT_SET_DIRTY_TRACKING = 0x8b,
        IOMMUD_IOMMUFD_CMD_HWPT_GET_DIRTY_BITMAP = 0x8c,
        IOMMUD_IOMMUFD_CMD_HWPT_INVALIDATE = 0x8d,
        IOMMUD_IOMMUFD_CMD_FAULT_QUEUE_ALLOC = 0x8e,
        IOMMUD_IOMMUFD_CMD_IOAS_MAP_FILE = 0x8f,
        IOMMUD_IOMMUFD_CMD_VIOMMU_ALLOC = 0x90,
        IOMMUD_IOMMUFD_CMD_VDEVICE_ALLOC = 0x91,
        IOMMUD_IOMMUFD_CMD_IOAS_CHANGE_PROCESS = 0x92,
        IOMMUD_IOMMUFD_CMD_VEVENTQ_ALLOC = 0x93,
};

#define IOMMUD_IOMMUFD_IO(cmd) _IO(IOMMUD_IOMMUFD_TYPE, (cmd))

#define IOMMUD_IOMMU_DESTROY IOMMUD_IOMMUFD_IO(IOMMUD_IOMMUFD_CMD_DESTROY)
#define IOMMUD_IOMMU_IOAS_ALLOC IOMMUD_IOMMUFD_IO(IOMMUD_IOMMUFD_CMD_IOAS_ALLOC)
#define IOMMUD_IOMMU_IOAS_ALLOW_IOVAS IOMMUD_IOMMUFD_IO(IOMMUD_IOMMUFD_CMD_IOAS_ALLOW_IOVAS)
#define IOMMUD_IOMMU_IOAS_COPY IOMMUD_IOMMUFD_IO(IOMMUD_IOMMUFD_CMD_IOAS_COPY)
#define IOMMUD_IOMMU_IOAS_IOVA_RANGES IOMMUD_IOMMUFD_IO(IOMMUD_IOMMUFD_CMD_IOAS_IOVA_RANGES)
#define IOMMUD_IOMMU_IOAS_MAP IOMMUD_IOMMUFD_IO(IOMMUD_IOMMUFD_CMD_IOAS_MAP)
#define IOMMUD_IOMMU_IOAS_UNMAP IOMMUD_IOMMUFD_IO(IOMMUD_IOMMUFD_CMD_IOAS_UNMAP)
#define IOMMUD_IOMMU_OPTION IOMMUD_IOMMUFD_IO(IOMMUD_IOMMUFD_CMD_OPTION)
#define IOMMUD_IOMMU_VFIO_IOAS IOMMUD_IOMMUFD_IO(IOMMUD_IOMMUFD_CMD_VFIO_IOAS)
#define IOMMUD_IOMMU_HWPT_ALLOC IOMMUD_IOMMUFD_IO(IOMMUD_IOMMUFD_CMD_HWPT_ALLOC)
#define IOMMUD_IOMMU_GET_HW_INFO IOMMUD_IOMMUFD_IO(IOMMUD_IOMMUFD_CMD_GET_HW_INFO)
#define IOMMUD_IOMMU_HWPT_SET_DIRTY_TRACKING                                                       \
        IOMMUD_IOMMUFD_IO(IOMMUD_IOMMUFD_CMD_HWPT_SET_DIRTY_TRACKING)
#define IOMMUD_IOMMU_HWPT_GET_DIRTY_BITMAP                                                         \
        IOMMUD_IOMMUFD_IO(IOMMUD_IOMMUFD_CMD_HWPT_GET_DIRTY_BITMAP)
#define IOMMUD_IOMMU_HWPT_INVALIDATE IOMMUD_IOMMUFD_IO(IOMMUD_IOMMUFD_CMD_HWPT_INVALIDATE)
#define IOMMUD_IOMMU_FAULT_QUEUE_ALLOC IOMMUD_IOMMUFD_IO(IOMMUD_IOMMUFD_CMD_FAULT_QUEUE_ALLOC)
#define IOMMUD_IOMMU_IOAS_MAP_FILE IOMMUD_IOMMUFD_IO(IOMMUD_IOMMUFD_CMD_IOAS_MAP_FILE)
#define IOMMUD_IOMMU_VIOMMU_ALLOC IOMMUD_IOMMUFD_IO(IOMMUD_IOMMUFD_CMD_VIOMMU_ALLOC)
#define IOMMUD_IOMMU_VDEVICE_ALLOC IOMMUD_IOMMUFD_IO(IOMMUD_IOMMUFD_CMD_VDEVICE_ALLOC)
#define IOMMUD_IOMMU_IOAS_CHANGE_PROCESS                                                           \
        IOMMUD_IOMMUFD_IO(IOMMUD_IOMMUFD_CMD_IOAS_CHANGE_PROCESS)
#define IOMMUD_IOMMU_VEVENTQ_ALLOC IOMMUD_IOMMUFD_IO(IOMMUD_IOMMUFD_CMD_VEVENTQ_ALLOC)

/* ---- flags and enums ---- */

/* IOAS_MAP, IOAS_MAP_FILE and IOAS_COPY flags. */
enum {
        IOMMUD_IOMMU_IOAS_MAP_FIXED_IOVA = 1 << 0,
        IOMMUD_IOMMU_IOAS_MAP_WRITEABLE = 1 << 1,
        IOMMUD_IOMMU_IOAS_MAP_READABLE = 1 << 2,
};

enum {
        IOMMUD_IOMMU_OPTION_RLIMIT_MODE = 0,
        IOMMUD_IOMMU_OPTION_HUGE_PAGES = 1,
};

enum {
        IOMMUD_IOMMU_OPTION_OP_SET = 0,
        IOMMUD_IOMMU_OPTION_OP_GET = 1,
};

enum {
        IOMMUD_IOMMU_VFIO_IOAS_GET = 0,
        IOMMUD_IOMMU_VFIO_IOAS_SET = 1,
        IOMMUD_IOMMU_VFIO_IOAS_CLEAR = 2,
};

enum {
        IOMMUD_IOMMU_HWPT_ALLOC_NEST_PARENT = 1 << 0,
        IOMMUD_IOMMU_HWPT_ALLOC_DIRTY_TRACKING = 1 << 1,
        IOMMUD_IOMMU_HWPT_FAULT_ID_VALID = 1 << 2,
        IOMMUD_IOMMU_HWPT_ALLOC_PASID = 1 << 3,
};

enum {
        IOMMUD_IOMMU_HWPT_DATA_NONE = 0,
        IOMMUD_IOMMU_HWPT_DATA_VTD_S1 = 1,
        IOMMUD_IOMMU_HWPT_DATA_ARM_SMMUV3 = 2,
};

enum {
        IOMMUD_IOMMU_HW_INFO_TYPE_NONE = 0,
        IOMMUD_IOMMU_HW_INFO_TYPE_INTEL_VTD = 1,
        IOMMUD_IOMMU_HW_INFO_TYPE_ARM_SMMUV3 = 2,
};

enum {
        IOMMUD_IOMMU_HW_CAP_DIRTY_TRACKING = 1 << 0,
        IOMMUD_IOMMU_HW_CAP_PCI_PASID_EXEC = 1 << 1,
        IOMMUD_IOMMU_HW_CAP_PCI_PASID_PRIV = 1 << 2,
};

enum {
        IOMMUD_IOMMU_HWPT_DIRTY_TRACKING_ENABLE = 1,
        IOMMUD_IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR = 1,
};

enum {
        IOMMUD_IOMMU_HWPT_INVALIDATE_DATA_VTD_S1 = 0,
        IOMMUD_IOMMU_VIOMMU_INVALIDATE_DATA_ARM_SMMUV3 = 1,
};

enum {
        IOMMUD_IOMMU_VIOMMU_TYPE_DEFAULT = 0,
        IOMMUD_IOMMU_VIOMMU_TYPE_ARM_SMMUV3 = 1,
};

enum {
        IOMMUD_IOMMU_PGFAULT_FLAGS_PASID_VALID = 1 << 0,
        IOMMUD_IOMMU_PGFAULT_FLAGS_LAST_PAGE = 1 << 1,
};

enum {
        IOMMUD_IOMMU_PGFAULT_PERM_READ = 1 << 0,
        IOMMUD_IOMMU_PGFAULT_PERM_WRITE = 1 << 1,
        IOMMUD_IOMMU_PGFAULT_PERM_EXEC = 1 << 2,
        IOMMUD_IOMMU_PGFAULT_PERM_PRIV = 1 << 3,
};

enum {
        IOMMUD_IOMMUFD_PAGE_RESP_SUCCESS = 0,
        IOMMUD_IOMMUFD_PAGE_RESP_INVALID = 1,
};

/* ---- iommufd argument structures ---- */

struct iommud_destroy {
        uint32_t size;
        uint32_t id;
};

struct iommud_ioas_alloc {
        uint32_t size;
        uint32_t flags; /* must be 0 */
        uint32_t out_ioas_id;
};

struct iommud_iova_range {
        iommud_aligned_u64 start;
        iommud_aligned_u64 last; /* inclusive */
};

struct iommud_ioas_iova_ranges {
        uint32_t size;
        uint32_t ioas_id;
        uint32_t num_iovas; /* in: capacity; out: number the IOAS has */
        uint32_t reserved;
        iommud_aligned_u64 allowed_iovas; /* pointer to struct iommud_iova_range[] */
        iommud_aligned_u64 out_iova_alignment;
};

struct iommud_ioas_allow_iovas {
        uint32_t size;
        uint32_t ioas_id;
        uint32_t num_iovas;
        uint32_t reserved;
        iommud_aligned_u64 allowed_iovas; /* pointer to struct iommud_iova_range[] */
};

struct iommud_ioas_map {
        uint32_t size;
        uint32_t flags;
        uint32_t ioas_id;
        uint32_t reserved;
        iommud_aligned_u64 user_va;
        iommud_aligned_u64 length;
        iommud_aligned_u64 iova; /* in with FIXED_IOVA, else out */
};

struct iommud_ioas_map_file {
        uint32_t size;
        uint32_t flags;
        uint32_t ioas_id;
        int32_t fd;
        iommud_aligned_u64 start;
        iommud_aligned_u64 length;
        iommud_aligned_u64 iova;
};

struct iommud_ioas_copy {
        uint32_t size;
        uint32_t flags;
        uint32_t dst_ioas_id;
        uint32_t src_ioas_id;
        iommud_aligned_u64 length;
        iommud_aligned_u64 dst_iova;
        iommud_aligned_u64 src_iova;
};

struct iommud_ioas_unmap {
        uint32_t size;
        uint32_t ioas_id;
        iommud_aligned_u64 iova;
        iommud_aligned_u64 length; /* in: bytes to unmap; out: bytes unmapped */
};

struct iommud_option {
        uint32_t size;
        uint32_t option_id;
        uint16_t op;
        uint16_t reserved;
        uint32_t object_id;
        iommud_aligned_u64 val64;
};

struct iommud_vfio_ioas {
        uint32_t size;
        uint32_t ioas_id;
        uint16_t op;
        uint16_t reserved;
};

struct iommud_hwpt_alloc {
        uint32_t size;
        uint32_t flags;
        uint32_t dev_id;
        uint32_t pt_id;
        uint32_t out_hwpt_id;
        uint32_t reserved;
        uint32_t data_type;
        uint32_t data_len;
        iommud_aligned_u64 data_uptr;
        uint32_t fault_id;  /* with IOMMUD_IOMMU_HWPT_FAULT_ID_VALID */
        uint32_t reserved2;
};

struct iommud_hw_info {
        uint32_t size;
        uint32_t flags;
        uint32_t dev_id;
        uint32_t data_len;
        iommud_aligned_u64 data_uptr;
        uint32_t out_data_type; /* newer kernels: also in_data_type with a flag */
        uint8_t out_max_pasid_log2;
        uint8_t reserved[3];
        iommud_aligned_u64 out_capabilities;
};

struct iommud_hwpt_set_dirty_tracking {
        uint32_t size;
        uint32_t flags;
        uint32_t hwpt_id;
        uint32_t reserved;
};

struct iommud_hwpt_get_dirty_bitmap {
        uint32_t size;
        uint32_t hwpt_id;
        uint32_t flags;
        uint32_t reserved;
        iommud_aligned_u64 iova;
        iommud_aligned_u64 length;
        iommud_aligned_u64 page_size;
        iommud_aligned_u64 data;
};

struct iommud_hwpt_invalidate {
        uint32_t size;
        uint32_t hwpt_id;
        iommud_aligned_u64 data_uptr;
        uint32_t data_type;
        uint32_t entry_len;
        uint32_t entry_num;
        uint32_t reserved;
};

/* One record read() from a fault fd. */
struct iommud_hwpt_pgfault {
        uint32_t flags;
        uint32_t dev_id;
        uint32_t pasid;
        uint32_t grpid;
        uint32_t perm;
        uint32_t reserved;
        iommud_aligned_u64 addr;
        uint32_t length;
        uint32_t cookie;
};

/* One response write() to a fault fd. */
struct iommud_hwpt_page_response {
        uint32_t cookie;
        uint32_t code;
};

struct iommud_fault_alloc {
        uint32_t size;
        uint32_t flags; /* must be 0 */
        uint32_t out_fault_id;
        uint32_t out_fault_fd;
};

struct iommud_viommu_alloc {
        uint32_t size;
        uint32_t flags;
        uint32_t type;
        uint32_t dev_id;
        uint32_t hwpt_id;
        uint32_t out_viommu_id;
        uint32_t data_len;
        uint32_t reserved;
        iommud_aligned_u64 data_uptr;
};

struct iommud_vdevice_alloc {
        uint32_t size;
        uint32_t viommu_id;
        uint32_t dev_id;
        uint32_t out_vdevice_id;
        iommud_aligned_u64 virt_id;
};

struct iommud_ioas_change_process {
        uint32_t size;
        uint32_t reserved;
};

/* ---- VFIO device cdev: _IO(';', 100 + n) ---- */

#define IOMMUD_VFIO_TYPE ';'
#define IOMMUD_VFIO_BASE 100

#define IOMMUD_VFIO_DEVICE_BIND_IOMMUFD _IO(IOMMUD_VFIO_TYPE, IOMMUD_VFIO_BASE + 18)
#define IOMMUD_VFIO_DEVICE_ATTACH_IOMMUFD_PT _IO(IOMMUD_VFIO_TYPE, IOMMUD_VFIO_BASE + 19)
#define IOMMUD_VFIO_DEVICE_DETACH_IOMMUFD_PT _IO(IOMMUD_VFIO_TYPE, IOMMUD_VFIO_BASE + 20)
/* Also on a legacy group's device fd. */
#define IOMMUD_VFIO_DEVICE_SET_IRQS _IO(IOMMUD_VFIO_TYPE, IOMMUD_VFIO_BASE + 10)

enum {
        IOMMUD_VFIO_DEVICE_BIND_FLAG_TOKEN = 1 << 0,
        IOMMUD_VFIO_DEVICE_ATTACH_PASID = 1 << 0,
        IOMMUD_VFIO_DEVICE_DETACH_PASID = 1 << 0,
};

/* VFIO_DEVICE_SET_IRQS: the flags and the vfio-pci index iommud uses. */
enum {
        IOMMUD_VFIO_IRQ_SET_DATA_EVENTFD = 1 << 2,
        IOMMUD_VFIO_IRQ_SET_ACTION_TRIGGER = 1 << 5,
        IOMMUD_VFIO_PCI_REQ_IRQ_INDEX = 4, /* the host asks for the device back */
};

/* struct vfio_irq_set with one eventfd as its data; fd -1 disarms. */
struct iommud_vfio_irq_set_eventfd {
        uint32_t argsz;
        uint32_t flags;
        uint32_t index;
        uint32_t start;
        uint32_t count;
        int32_t fd;
};

struct iommud_vfio_device_bind_iommufd {
        uint32_t argsz;
        uint32_t flags;
        int32_t iommufd;
        uint32_t out_devid;
        iommud_aligned_u64 token_uuid_ptr; /* with BIND_FLAG_TOKEN (newer kernels) */
};

struct iommud_vfio_device_attach_iommufd_pt {
        uint32_t argsz;
        uint32_t flags;
        uint32_t pt_id; /* in: IOAS or HWPT; out: the HWPT attached */
        uint32_t pasid; /* with ATTACH_PASID (newer kernels) */
};

struct iommud_vfio_device_detach_iommufd_pt {
        uint32_t argsz;
        uint32_t flags;
        uint32_t pasid; /* with DETACH_PASID (newer kernels) */
};

/*
 * The smallest argument each ioctl accepts: everything up to and including
 * the last mandatory field.  The kernel answers EINVAL below this.
 */
#define IOMMUD_ABI_OFFSETOFEND(type, field) (offsetof(type, field) + sizeof(((type *)0)->field))

#define IOMMUD_VFIO_BIND_MINSZ                                                                     \
        IOMMUD_ABI_OFFSETOFEND(struct iommud_vfio_device_bind_iommufd, out_devid)
#define IOMMUD_VFIO_ATTACH_MINSZ                                                                   \
        IOMMUD_ABI_OFFSETOFEND(struct iommud_vfio_device_attach_iommufd_pt, pt_id)
#define IOMMUD_VFIO_DETACH_MINSZ                                                                   \
        IOMMUD_ABI_OFFSETOFEND(struct iommud_vfio_device_detach_iommufd_pt, flags)

/* ---- layout pins: every size and every field offset ---- */

#define IOMMUD_ABI_SIZE(type, n) _Static_assert(sizeof(struct type) == (n), "sizeof " #type)
#define IOMMUD_ABI_OFF(type, field, n)                                                             \
        _Static_assert(offsetof(struct type, field) == (n), #type "." #field)

IOMMUD_ABI_SIZE(iommud_destroy, 8);
IOMMUD_ABI_OFF(iommud_destroy, size, 0);
IOMMUD_ABI_OFF(iommud_destroy, id, 4);

IOMMUD_ABI_SIZE(iommud_ioas_alloc, 12);
IOMMUD_ABI_OFF(iommud_ioas_alloc, size, 0);
IOMMUD_ABI_OFF(iommud_ioas_alloc, flags, 4);
IOMMUD_ABI_OFF(iommud_ioas_alloc, out_ioas_id, 8);

IOMMUD_ABI_SIZE(iommud_iova_range, 16);
IOMMUD_ABI_OFF(iommud_iova_range, start, 0);
IOMMUD_ABI_OFF(iommud_iova_range, last, 8);

IOMMUD_ABI_SIZE(iommud_ioas_iova_ranges, 32);
IOMMUD_ABI_OFF(iommud_ioas_iova_ranges, size, 0);
IOMMUD_ABI_OFF(iommud_ioas_iova_ranges, ioas_id, 4);
IOMMUD_ABI_OFF(iommud_ioas_iova_ranges, num_iovas, 8);
IOMMUD_ABI_OFF(iommud_ioas_iova_ranges, reserved, 12);
IOMMUD_ABI_OFF(iommud_ioas_iova_ranges, allowed_iovas, 16);
IOMMUD_ABI_OFF(iommud_ioas_iova_ranges, out_iova_alignment, 24);

IOMMUD_ABI_SIZE(iommud_ioas_allow_iovas, 24);
IOMMUD_ABI_OFF(iommud_ioas_allow_iovas, size, 0);
IOMMUD_ABI_OFF(iommud_ioas_allow_iovas, ioas_id, 4);
IOMMUD_ABI_OFF(iommud_ioas_allow_iovas, num_iovas, 8);
IOMMUD_ABI_OFF(iommud_ioas_allow_iovas, reserved, 12);
IOMMUD_ABI_OFF(iommud_ioas_allow_iovas, allowed_iovas, 16);

IOMMUD_ABI_SIZE(iommud_ioas_map, 40);
IOMMUD_ABI_OFF(iommud_ioas_map, size, 0);
IOMMUD_ABI_OFF(iommud_ioas_map, flags, 4);
IOMMUD_ABI_OFF(iommud_ioas_map, ioas_id, 8);
IOMMUD_ABI_OFF(iommud_ioas_map, reserved, 12);
IOMMUD_ABI_OFF(iommud_ioas_map, user_va, 16);
IOMMUD_ABI_OFF(iommud_ioas_map, length, 24);
IOMMUD_ABI_OFF(iommud_ioas_map, iova, 32);

IOMMUD_ABI_SIZE(iommud_ioas_map_file, 40);
IOMMUD_ABI_OFF(iommud_ioas_map_file, size, 0);
IOMMUD_ABI_OFF(iommud_ioas_map_file, flags, 4);
IOMMUD_ABI_OFF(iommud_ioas_map_file, ioas_id, 8);
IOMMUD_ABI_OFF(iommud_ioas_map_file, fd, 12);
IOMMUD_ABI_OFF(iommud_ioas_map_file, start, 16);
IOMMUD_ABI_OFF(iommud_ioas_map_file, length, 24);
IOMMUD_ABI_OFF(iommud_ioas_map_file, iova, 32);

IOMMUD_ABI_SIZE(iommud_ioas_copy, 40);
IOMMUD_ABI_OFF(iommud_ioas_copy, size, 0);
IOMMUD_ABI_OFF(iommud_ioas_copy, flags, 4);
IOMMUD_ABI_OFF(iommud_ioas_copy, dst_ioas_id, 8);
IOMMUD_ABI_OFF(iommud_ioas_copy, src_ioas_id, 12);
IOMMUD_ABI_OFF(iommud_ioas_copy, length, 16);
IOMMUD_ABI_OFF(iommud_ioas_copy, dst_iova, 24);
IOMMUD_ABI_OFF(iommud_ioas_copy, src_iova, 32);

IOMMUD_ABI_SIZE(iommud_ioas_unmap, 24);
IOMMUD_ABI_OFF(iommud_ioas_unmap, size, 0);
IOMMUD_ABI_OFF(iommud_ioas_unmap, ioas_id, 4);
IOMMUD_ABI_OFF(iommud_ioas_unmap, iova, 8);
IOMMUD_ABI_OFF(iommud_ioas_unmap, length, 16);

IOMMUD_ABI_SIZE(iommud_option, 24);
IOMMUD_ABI_OFF(iommud_option, size, 0);
IOMMUD_ABI_OFF(iommud_option, option_id, 4);
IOMMUD_ABI_OFF(iommud_option, op, 8);
IOMMUD_ABI_OFF(iommud_option, reserved, 10);
IOMMUD_ABI_OFF(iommud_option, object_id, 12);
IOMMUD_ABI_OFF(iommud_option, val64, 16);

IOMMUD_ABI_SIZE(iommud_vfio_ioas, 12);
IOMMUD_ABI_OFF(iommud_vfio_ioas, size, 0);
IOMMUD_ABI_OFF(iommud_vfio_ioas, ioas_id, 4);
IOMMUD_ABI_OFF(iommud_vfio_ioas, op, 8);
IOMMUD_ABI_OFF(iommud_vfio_ioas, reserved, 10);

IOMMUD_ABI_SIZE(iommud_hwpt_alloc, 48);
IOMMUD_ABI_OFF(iommud_hwpt_alloc, size, 0);
IOMMUD_ABI_OFF(iommud_hwpt_alloc, flags, 4);
IOMMUD_ABI_OFF(iommud_hwpt_alloc, dev_id, 8);
IOMMUD_ABI_OFF(iommud_hwpt_alloc, pt_id, 12);
IOMMUD_ABI_OFF(iommud_hwpt_alloc, out_hwpt_id, 16);
IOMMUD_ABI_OFF(iommud_hwpt_alloc, reserved, 20);
IOMMUD_ABI_OFF(iommud_hwpt_alloc, data_type, 24);
IOMMUD_ABI_OFF(iommud_hwpt_alloc, data_len, 28);
IOMMUD_ABI_OFF(iommud_hwpt_alloc, data_uptr, 32);
IOMMUD_ABI_OFF(iommud_hwpt_alloc, fault_id, 40);
IOMMUD_ABI_OFF(iommud_hwpt_alloc, reserved2, 44);

IOMMUD_ABI_SIZE(iommud_hw_info, 40);
IOMMUD_ABI_OFF(iommud_hw_info, size, 0);
IOMMUD_ABI_OFF(iommud_hw_info, flags, 4);
IOMMUD_ABI_OFF(iommud_hw_info, dev_id, 8);
IOMMUD_ABI_OFF(iommud_hw_info, data_len, 12);
IOMMUD_ABI_OFF(iommud_hw_info, data_uptr, 16);
IOMMUD_ABI_OFF(iommud_hw_info, out_data_type, 24);
IOMMUD_ABI_OFF(iommud_hw_info, out_max_pasid_log2, 28);
IOMMUD_ABI_OFF(iommud_hw_info, reserved, 29);
IOMMUD_ABI_OFF(iommud_hw_info, out_capabilities, 32);

IOMMUD_ABI_SIZE(iommud_hwpt_set_dirty_tracking, 16);
IOMMUD_ABI_OFF(iommud_hwpt_set_dirty_tracking, size, 0);
IOMMUD_ABI_OFF(iommud_hwpt_set_dirty_tracking, flags, 4);
IOMMUD_ABI_OFF(iommud_hwpt_set_dirty_tracking, hwpt_id, 8);
IOMMUD_ABI_OFF(iommud_hwpt_set_dirty_tracking, reserved, 12);

IOMMUD_ABI_SIZE(iommud_hwpt_get_dirty_bitmap, 48);
IOMMUD_ABI_OFF(iommud_hwpt_get_dirty_bitmap, size, 0);
IOMMUD_ABI_OFF(iommud_hwpt_get_dirty_bitmap, hwpt_id, 4);
IOMMUD_ABI_OFF(iommud_hwpt_get_dirty_bitmap, flags, 8);
IOMMUD_ABI_OFF(iommud_hwpt_get_dirty_bitmap, reserved, 12);
IOMMUD_ABI_OFF(iommud_hwpt_get_dirty_bitmap, iova, 16);
IOMMUD_ABI_OFF(iommud_hwpt_get_dirty_bitmap, length, 24);
IOMMUD_ABI_OFF(iommud_hwpt_get_dirty_bitmap, page_size, 32);
IOMMUD_ABI_OFF(iommud_hwpt_get_dirty_bitmap, data, 40);

IOMMUD_ABI_SIZE(iommud_hwpt_invalidate, 32);
IOMMUD_ABI_OFF(iommud_hwpt_invalidate, size, 0);
IOMMUD_ABI_OFF(iommud_hwpt_invalidate, hwpt_id, 4);
IOMMUD_ABI_OFF(iommud_hwpt_invalidate, data_uptr, 8);
IOMMUD_ABI_OFF(iommud_hwpt_invalidate, data_type, 16);
IOMMUD_ABI_OFF(iommud_hwpt_invalidate, entry_len, 20);
IOMMUD_ABI_OFF(iommud_hwpt_invalidate, entry_num, 24);
IOMMUD_ABI_OFF(iommud_hwpt_invalidate, reserved, 28);

IOMMUD_ABI_SIZE(iommud_hwpt_pgfault, 40);
IOMMUD_ABI_OFF(iommud_hwpt_pgfault, flags, 0);
IOMMUD_ABI_OFF(iommud_hwpt_pgfault, dev_id, 4);
IOMMUD_ABI_OFF(iommud_hwpt_pgfault, pasid, 8);
IOMMUD_ABI_OFF(iommud_hwpt_pgfault, grpid, 12);
IOMMUD_ABI_OFF(iommud_hwpt_pgfault, perm, 16);
IOMMUD_ABI_OFF(iommud_hwpt_pgfault, reserved, 20);
IOMMUD_ABI_OFF(iommud_hwpt_pgfault, addr, 24);
IOMMUD_ABI_OFF(iommud_hwpt_pgfault, length, 32);
IOMMUD_ABI_OFF(iommud_hwpt_pgfault, cookie, 36);

IOMMUD_ABI_SIZE(iommud_hwpt_page_response, 8);
IOMMUD_ABI_OFF(iommud_hwpt_page_response, cookie, 0);
IOMMUD_ABI_OFF(iommud_hwpt_page_response, code, 4);

IOMMUD_ABI_SIZE(iommud_fault_alloc, 16);
IOMMUD_ABI_OFF(iommud_fault_alloc, size, 0);
IOMMUD_ABI_OFF(iommud_fault_alloc, flags, 4);
IOMMUD_ABI_OFF(iommud_fault_alloc, out_fault_id, 8);
IOMMUD_ABI_OFF(iommud_fault_alloc, out_fault_fd, 12);

IOMMUD_ABI_SIZE(iommud_viommu_alloc, 40);
IOMMUD_ABI_OFF(iommud_viommu_alloc, size, 0);
IOMMUD_ABI_OFF(iommud_viommu_alloc, flags, 4);
IOMMUD_ABI_OFF(iommud_viommu_alloc, type, 8);
IOMMUD_ABI_OFF(iommud_viommu_alloc, dev_id, 12);
IOMMUD_ABI_OFF(iommud_viommu_alloc, hwpt_id, 16);
IOMMUD_ABI_OFF(iommud_viommu_alloc, out_viommu_id, 20);
IOMMUD_ABI_OFF(iommud_viommu_alloc, data_len, 24);
IOMMUD_ABI_OFF(iommud_viommu_alloc, reserved, 28);
IOMMUD_ABI_OFF(iommud_viommu_alloc, data_uptr, 32);

IOMMUD_ABI_SIZE(iommud_vdevice_alloc, 24);
IOMMUD_ABI_OFF(iommud_vdevice_alloc, size, 0);
IOMMUD_ABI_OFF(iommud_vdevice_alloc, viommu_id, 4);
IOMMUD_ABI_OFF(iommud_vdevice_alloc, dev_id, 8);
IOMMUD_ABI_OFF(iommud_vdevice_alloc, out_vdevice_id, 12);
IOMMUD_ABI_OFF(iommud_vdevice_alloc, virt_id, 16);

IOMMUD_ABI_SIZE(iommud_ioas_change_process, 8);
IOMMUD_ABI_OFF(iommud_ioas_change_process, size, 0);
IOMMUD_ABI_OFF(iommud_ioas_change_process, reserved, 4);

IOMMUD_ABI_SIZE(iommud_vfio_device_bind_iommufd, 24);
IOMMUD_ABI_OFF(iommud_vfio_device_bind_iommufd, argsz, 0);
IOMMUD_ABI_OFF(iommud_vfio_device_bind_iommufd, flags, 4);
IOMMUD_ABI_OFF(iommud_vfio_device_bind_iommufd, iommufd, 8);
IOMMUD_ABI_OFF(iommud_vfio_device_bind_iommufd, out_devid, 12);
IOMMUD_ABI_OFF(iommud_vfio_device_bind_iommufd, token_uuid_ptr, 16);

IOMMUD_ABI_SIZE(iommud_vfio_irq_set_eventfd, 24);
IOMMUD_ABI_OFF(iommud_vfio_irq_set_eventfd, index, 8);
IOMMUD_ABI_OFF(iommud_vfio_irq_set_eventfd, count, 16);
IOMMUD_ABI_OFF(iommud_vfio_irq_set_eventfd, fd, 20);
IOMMUD_ABI_SIZE(iommud_vfio_device_attach_iommufd_pt, 16);
IOMMUD_ABI_OFF(iommud_vfio_device_attach_iommufd_pt, argsz, 0);
IOMMUD_ABI_OFF(iommud_vfio_device_attach_iommufd_pt, flags, 4);
IOMMUD_ABI_OFF(iommud_vfio_device_attach_iommufd_pt, pt_id, 8);
IOMMUD_ABI_OFF(iommud_vfio_device_attach_iommufd_pt, pasid, 12);

IOMMUD_ABI_SIZE(iommud_vfio_device_detach_iommufd_pt, 12);
IOMMUD_ABI_OFF(iommud_vfio_device_detach_iommufd_pt, argsz, 0);
IOMMUD_ABI_OFF(iommud_vfio_device_detach_iommufd_pt, flags, 4);
IOMMUD_ABI_OFF(iommud_vfio_device_detach_iommufd_pt, pasid, 8);

_Static_assert(IOMMUD_IOMMU_DESTROY == 0x3B80, "ioctl numbers are _IO(';', nr)");
_Static_assert(IOMMUD_IOMMU_IOAS_MAP_FILE == 0x3B8F, "ioctl numbers are _IO(';', nr)");
_Static_assert(IOMMUD_VFIO_DEVICE_BIND_IOMMUFD == 0x3B76, "VFIO cdev ioctls are _IO(';', 118)");
