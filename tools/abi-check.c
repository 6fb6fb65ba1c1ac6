/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * abi-check: iommud's own iommufd/VFIO definitions (daemon/backend/kernel/iommufd-abi.h)
 * against the kernel's uAPI headers, in one translation unit.  Every ioctl
 * number, flag, structure size and field offset/width is compared with
 * _Static_assert, so a mismatch fails the build of this test with the name
 * of the field; main() then reports how many facts were compared.
 *
 * The kernel headers come from a linux-headers-*-common tree (not installed
 * uAPI), so they are included by path (KERNEL_IOMMUFD_H, KERNEL_VFIO_H) and
 * their own includes resolve to the system's installed <linux/...>; the
 * un-sanitized "__user" and "__counted_by" annotations are defined away.
 *
 * Layouts newer than the tree being checked (MAP_FILE, vIOMMU, PASID attach,
 * bind token) are compared exactly when the tree has them; otherwise only
 * the common prefix is compared and ours must be a compatible extension.
 *
 * Whatever tree is given, and also without one (the "abi-pinned" build, which
 * defines no KERNEL_IOMMUFD_H), everything newer than 6.12 is compared with the
 * table of abi-pinned.h: the facts of a newer release, written down from its
 * headers.
 */

#include <stddef.h>
#include <stdio.h>

#ifdef KERNEL_IOMMUFD_H
#ifndef __user
#define __user
#endif
#ifndef __counted_by
#define __counted_by(member)
#endif
#include KERNEL_IOMMUFD_H
#include KERNEL_VFIO_H
#endif

#include "abi-pinned.h"
#include "iommufd-abi.h"

#include "abi-check.h"

/* Ours has "reserved" where the kernel has "__reserved". */
#define SAME_RSV(ours, theirs) SAME_FIELD(ours, reserved, theirs, __reserved)

#define PIN_VALUE(ours, value)                                                                     \
        _Static_assert((unsigned long)(ours) == (unsigned long)(value),                            \
                       #ours " != " #value " in " ABI_PINNED_RELEASE);
#define PIN_SIZE(ours, size)                                                                       \
        _Static_assert(sizeof(struct ours) == (size),                                              \
                       "sizeof " #ours " != " #size " in " ABI_PINNED_RELEASE);
#define PIN_FIELD(ours, f, offset, width)                                                          \
        _Static_assert(offsetof(struct ours, f) == (offset),                                       \
                       "offset of " #ours "." #f " != " #offset " in " ABI_PINNED_RELEASE);        \
        _Static_assert(FIELD_SIZE(struct ours, f) == (width),                                      \
                       "width of " #ours "." #f " != " #width " in " ABI_PINNED_RELEASE);
ABI_PINNED_VALUES(PIN_VALUE)
ABI_PINNED_SIZES(PIN_SIZE)
ABI_PINNED_FIELDS(PIN_FIELD)

#define COUNT_ONE(...) +1
static const unsigned n_pinned =
        0 ABI_PINNED_VALUES(COUNT_ONE) ABI_PINNED_SIZES(COUNT_ONE) ABI_PINNED_FIELDS(COUNT_ONE);

#ifdef KERNEL_IOMMUFD_H
static unsigned check_headers(void) {
        unsigned n_checks = 0;

        /* ioctl numbers */
        SAME_VALUE(IOMMUD_IOMMUFD_TYPE, IOMMUFD_TYPE);
        SAME_VALUE(IOMMUD_IOMMU_DESTROY, IOMMU_DESTROY);
        SAME_VALUE(IOMMUD_IOMMU_IOAS_ALLOC, IOMMU_IOAS_ALLOC);
        SAME_VALUE(IOMMUD_IOMMU_IOAS_ALLOW_IOVAS, IOMMU_IOAS_ALLOW_IOVAS);
        SAME_VALUE(IOMMUD_IOMMU_IOAS_COPY, IOMMU_IOAS_COPY);
        SAME_VALUE(IOMMUD_IOMMU_IOAS_IOVA_RANGES, IOMMU_IOAS_IOVA_RANGES);
        SAME_VALUE(IOMMUD_IOMMU_IOAS_MAP, IOMMU_IOAS_MAP);
        SAME_VALUE(IOMMUD_IOMMU_IOAS_UNMAP, IOMMU_IOAS_UNMAP);
        SAME_VALUE(IOMMUD_IOMMU_OPTION, IOMMU_OPTION);
        SAME_VALUE(IOMMUD_IOMMU_VFIO_IOAS, IOMMU_VFIO_IOAS);
        SAME_VALUE(IOMMUD_IOMMU_HWPT_ALLOC, IOMMU_HWPT_ALLOC);
        SAME_VALUE(IOMMUD_IOMMU_GET_HW_INFO, IOMMU_GET_HW_INFO);
        SAME_VALUE(IOMMUD_IOMMU_HWPT_SET_DIRTY_TRACKING, IOMMU_HWPT_SET_DIRTY_TRACKING);
        SAME_VALUE(IOMMUD_IOMMU_HWPT_GET_DIRTY_BITMAP, IOMMU_HWPT_GET_DIRTY_BITMAP);
        SAME_VALUE(IOMMUD_IOMMU_HWPT_INVALIDATE, IOMMU_HWPT_INVALIDATE);
        SAME_VALUE(IOMMUD_IOMMU_FAULT_QUEUE_ALLOC, IOMMU_FAULT_QUEUE_ALLOC);
#ifdef IOMMU_IOAS_MAP_FILE
        SAME_VALUE(IOMMUD_IOMMU_IOAS_MAP_FILE, IOMMU_IOAS_MAP_FILE);
#endif
#ifdef IOMMU_VIOMMU_ALLOC
        SAME_VALUE(IOMMUD_IOMMU_VIOMMU_ALLOC, IOMMU_VIOMMU_ALLOC);
#endif
#ifdef IOMMU_VDEVICE_ALLOC
        SAME_VALUE(IOMMUD_IOMMU_VDEVICE_ALLOC, IOMMU_VDEVICE_ALLOC);
#endif
#ifdef IOMMU_IOAS_CHANGE_PROCESS
        SAME_VALUE(IOMMUD_IOMMU_IOAS_CHANGE_PROCESS, IOMMU_IOAS_CHANGE_PROCESS);
#endif
#ifdef IOMMU_VEVENTQ_ALLOC
        SAME_VALUE(IOMMUD_IOMMU_VEVENTQ_ALLOC, IOMMU_VEVENTQ_ALLOC);
#endif
        SAME_VALUE(IOMMUD_VFIO_TYPE, VFIO_TYPE);
        SAME_VALUE(IOMMUD_VFIO_BASE, VFIO_BASE);
        SAME_VALUE(IOMMUD_VFIO_DEVICE_BIND_IOMMUFD, VFIO_DEVICE_BIND_IOMMUFD);
        SAME_VALUE(IOMMUD_VFIO_DEVICE_ATTACH_IOMMUFD_PT, VFIO_DEVICE_ATTACH_IOMMUFD_PT);
        SAME_VALUE(IOMMUD_VFIO_DEVICE_DETACH_IOMMUFD_PT, VFIO_DEVICE_DETACH_IOMMUFD_PT);

        /* flags and enum values */
        SAME_VALUE(IOMMUD_IOMMU_IOAS_MAP_FIXED_IOVA, IOMMU_IOAS_MAP_FIXED_IOVA);
        SAME_VALUE(IOMMUD_IOMMU_IOAS_MAP_WRITEABLE, IOMMU_IOAS_MAP_WRITEABLE);
        SAME_VALUE(IOMMUD_IOMMU_IOAS_MAP_READABLE, IOMMU_IOAS_MAP_READABLE);
        SAME_VALUE(IOMMUD_IOMMU_OPTION_RLIMIT_MODE, IOMMU_OPTION_RLIMIT_MODE);
        SAME_VALUE(IOMMUD_IOMMU_OPTION_HUGE_PAGES, IOMMU_OPTION_HUGE_PAGES);
        SAME_VALUE(IOMMUD_IOMMU_OPTION_OP_SET, IOMMU_OPTION_OP_SET);
        SAME_VALUE(IOMMUD_IOMMU_OPTION_OP_GET, IOMMU_OPTION_OP_GET);
        SAME_VALUE(IOMMUD_IOMMU_VFIO_IOAS_GET, IOMMU_VFIO_IOAS_GET);
        SAME_VALUE(IOMMUD_IOMMU_VFIO_IOAS_SET, IOMMU_VFIO_IOAS_SET);
        SAME_VALUE(IOMMUD_IOMMU_VFIO_IOAS_CLEAR, IOMMU_VFIO_IOAS_CLEAR);
        SAME_VALUE(IOMMUD_IOMMU_HWPT_ALLOC_NEST_PARENT, IOMMU_HWPT_ALLOC_NEST_PARENT);
        SAME_VALUE(IOMMUD_IOMMU_HWPT_ALLOC_DIRTY_TRACKING, IOMMU_HWPT_ALLOC_DIRTY_TRACKING);
        SAME_VALUE(IOMMUD_IOMMU_HWPT_FAULT_ID_VALID, IOMMU_HWPT_FAULT_ID_VALID);
        SAME_VALUE(IOMMUD_IOMMU_HWPT_DATA_NONE, IOMMU_HWPT_DATA_NONE);
        SAME_VALUE(IOMMUD_IOMMU_HWPT_DATA_VTD_S1, IOMMU_HWPT_DATA_VTD_S1);
        SAME_VALUE(IOMMUD_IOMMU_HW_INFO_TYPE_NONE, IOMMU_HW_INFO_TYPE_NONE);
        SAME_VALUE(IOMMUD_IOMMU_HW_INFO_TYPE_INTEL_VTD, IOMMU_HW_INFO_TYPE_INTEL_VTD);
#ifdef IOMMU_VEVENTQ_ALLOC
        /* Enumerators cannot be tested with #ifdef; these arrived before vEVENTQ. */
        SAME_VALUE(IOMMUD_IOMMU_HWPT_ALLOC_PASID, IOMMU_HWPT_ALLOC_PASID);
        SAME_VALUE(IOMMUD_IOMMU_HWPT_DATA_ARM_SMMUV3, IOMMU_HWPT_DATA_ARM_SMMUV3);
        SAME_VALUE(IOMMUD_IOMMU_HW_INFO_TYPE_ARM_SMMUV3, IOMMU_HW_INFO_TYPE_ARM_SMMUV3);
        SAME_VALUE(IOMMUD_IOMMU_VIOMMU_TYPE_DEFAULT, IOMMU_VIOMMU_TYPE_DEFAULT);
        SAME_VALUE(IOMMUD_IOMMU_VIOMMU_TYPE_ARM_SMMUV3, IOMMU_VIOMMU_TYPE_ARM_SMMUV3);
        SAME_VALUE(IOMMUD_IOMMU_VIOMMU_INVALIDATE_DATA_ARM_SMMUV3,
                   IOMMU_VIOMMU_INVALIDATE_DATA_ARM_SMMUV3);
#endif
        SAME_VALUE(IOMMUD_IOMMU_HW_CAP_DIRTY_TRACKING, IOMMU_HW_CAP_DIRTY_TRACKING);
        SAME_VALUE(IOMMUD_IOMMU_HW_CAP_PCI_PASID_EXEC, IOMMU_HW_CAP_PCI_PASID_EXEC);
        SAME_VALUE(IOMMUD_IOMMU_HW_CAP_PCI_PASID_PRIV, IOMMU_HW_CAP_PCI_PASID_PRIV);
        SAME_VALUE(IOMMUD_IOMMU_HWPT_DIRTY_TRACKING_ENABLE, IOMMU_HWPT_DIRTY_TRACKING_ENABLE);
        SAME_VALUE(IOMMUD_IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR,
                   IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR);
        SAME_VALUE(IOMMUD_IOMMU_HWPT_INVALIDATE_DATA_VTD_S1, IOMMU_HWPT_INVALIDATE_DATA_VTD_S1);
        SAME_VALUE(IOMMUD_IOMMU_PGFAULT_FLAGS_PASID_VALID, IOMMU_PGFAULT_FLAGS_PASID_VALID);
        SAME_VALUE(IOMMUD_IOMMU_PGFAULT_FLAGS_LAST_PAGE, IOMMU_PGFAULT_FLAGS_LAST_PAGE);
        SAME_VALUE(IOMMUD_IOMMU_PGFAULT_PERM_READ, IOMMU_PGFAULT_PERM_READ);
        SAME_VALUE(IOMMUD_IOMMU_PGFAULT_PERM_WRITE, IOMMU_PGFAULT_PERM_WRITE);
        SAME_VALUE(IOMMUD_IOMMU_PGFAULT_PERM_EXEC, IOMMU_PGFAULT_PERM_EXEC);
        SAME_VALUE(IOMMUD_IOMMU_PGFAULT_PERM_PRIV, IOMMU_PGFAULT_PERM_PRIV);
        SAME_VALUE(IOMMUD_IOMMUFD_PAGE_RESP_SUCCESS, IOMMUFD_PAGE_RESP_SUCCESS);
        SAME_VALUE(IOMMUD_IOMMUFD_PAGE_RESP_INVALID, IOMMUFD_PAGE_RESP_INVALID);
#ifdef VFIO_DEVICE_BIND_FLAG_TOKEN
        SAME_VALUE(IOMMUD_VFIO_DEVICE_BIND_FLAG_TOKEN, VFIO_DEVICE_BIND_FLAG_TOKEN);
#endif
#ifdef VFIO_DEVICE_ATTACH_PASID
        SAME_VALUE(IOMMUD_VFIO_DEVICE_ATTACH_PASID, VFIO_DEVICE_ATTACH_PASID);
        SAME_VALUE(IOMMUD_VFIO_DEVICE_DETACH_PASID, VFIO_DEVICE_DETACH_PASID);
#endif

        /* structures */
        SAME_SIZE(iommud_destroy, iommu_destroy);
        SAME(iommud_destroy, iommu_destroy, size);
        SAME(iommud_destroy, iommu_destroy, id);

        SAME_SIZE(iommud_ioas_alloc, iommu_ioas_alloc);
        SAME(iommud_ioas_alloc, iommu_ioas_alloc, size);
        SAME(iommud_ioas_alloc, iommu_ioas_alloc, flags);
        SAME(iommud_ioas_alloc, iommu_ioas_alloc, out_ioas_id);

        SAME_SIZE(iommud_iova_range, iommu_iova_range);
        SAME(iommud_iova_range, iommu_iova_range, start);
        SAME(iommud_iova_range, iommu_iova_range, last);

        SAME_SIZE(iommud_ioas_iova_ranges, iommu_ioas_iova_ranges);
        SAME(iommud_ioas_iova_ranges, iommu_ioas_iova_ranges, size);
        SAME(iommud_ioas_iova_ranges, iommu_ioas_iova_ranges, ioas_id);
        SAME(iommud_ioas_iova_ranges, iommu_ioas_iova_ranges, num_iovas);
        SAME_RSV(iommud_ioas_iova_ranges, iommu_ioas_iova_ranges);
        SAME(iommud_ioas_iova_ranges, iommu_ioas_iova_ranges, allowed_iovas);
        SAME(iommud_ioas_iova_ranges, iommu_ioas_iova_ranges, out_iova_alignment);

        SAME_SIZE(iommud_ioas_allow_iovas, iommu_ioas_allow_iovas);
        SAME(iommud_ioas_allow_iovas, iommu_ioas_allow_iovas, size);
        SAME(iommud_ioas_allow_iovas, iommu_ioas_allow_iovas, ioas_id);
        SAME(iommud_ioas_allow_iovas, iommu_ioas_allow_iovas, num_iovas);
        SAME_RSV(iommud_ioas_allow_iovas, iommu_ioas_allow_iovas);
        SAME(iommud_ioas_allow_iovas, iommu_ioas_allow_iovas, allowed_iovas);

        SAME_SIZE(iommud_ioas_map, iommu_ioas_map);
        SAME(iommud_ioas_map, iommu_ioas_map, size);
        SAME(iommud_ioas_map, iommu_ioas_map, flags);
        SAME(iommud_ioas_map, iommu_ioas_map, ioas_id);
        SAME_RSV(iommud_ioas_map, iommu_ioas_map);
        SAME(iommud_ioas_map, iommu_ioas_map, user_va);
        SAME(iommud_ioas_map, iommu_ioas_map, length);
        SAME(iommud_ioas_map, iommu_ioas_map, iova);

#ifdef IOMMU_IOAS_MAP_FILE
        SAME_SIZE(iommud_ioas_map_file, iommu_ioas_map_file);
        SAME(iommud_ioas_map_file, iommu_ioas_map_file, size);
        SAME(iommud_ioas_map_file, iommu_ioas_map_file, flags);
        SAME(iommud_ioas_map_file, iommu_ioas_map_file, ioas_id);
        SAME(iommud_ioas_map_file, iommu_ioas_map_file, fd);
        SAME(iommud_ioas_map_file, iommu_ioas_map_file, start);
        SAME(iommud_ioas_map_file, iommu_ioas_map_file, length);
        SAME(iommud_ioas_map_file, iommu_ioas_map_file, iova);
#endif

        SAME_SIZE(iommud_ioas_copy, iommu_ioas_copy);
        SAME(iommud_ioas_copy, iommu_ioas_copy, size);
        SAME(iommud_ioas_copy, iommu_ioas_copy, flags);
        SAME(iommud_ioas_copy, iommu_ioas_copy, dst_ioas_id);
        SAME(iommud_ioas_copy, iommu_ioas_copy, src_ioas_id);
        SAME(iommud_ioas_copy, iommu_ioas_copy, length);
        SAME(iommud_ioas_copy, iommu_ioas_copy, dst_iova);
        SAME(iommud_ioas_copy, iommu_ioas_copy, src_iova);

        SAME_SIZE(iommud_ioas_unmap, iommu_ioas_unmap);
        SAME(iommud_ioas_unmap, iommu_ioas_unmap, size);
        SAME(iommud_ioas_unmap, iommu_ioas_unmap, ioas_id);
        SAME(iommud_ioas_unmap, iommu_ioas_unmap, iova);
        SAME(iommud_ioas_unmap, iommu_ioas_unmap, length);

        SAME_SIZE(iommud_option, iommu_option);
        SAME(iommud_option, iommu_option, size);
        SAME(iommud_option, iommu_option, option_id);
        SAME(iommud_option, iommu_option, op);
        SAME_RSV(iommud_option, iommu_option);
        SAME(iommud_option, iommu_option, object_id);
        SAME(iommud_option, iommu_option, val64);

        SAME_SIZE(iommud_vfio_ioas, iommu_vfio_ioas);
        SAME(iommud_vfio_ioas, iommu_vfio_ioas, size);
        SAME(iommud_vfio_ioas, iommu_vfio_ioas, ioas_id);
        SAME(iommud_vfio_ioas, iommu_vfio_ioas, op);
        SAME_RSV(iommud_vfio_ioas, iommu_vfio_ioas);

        SAME_SIZE(iommud_hwpt_alloc, iommu_hwpt_alloc);
        SAME(iommud_hwpt_alloc, iommu_hwpt_alloc, size);
        SAME(iommud_hwpt_alloc, iommu_hwpt_alloc, flags);
        SAME(iommud_hwpt_alloc, iommu_hwpt_alloc, dev_id);
        SAME(iommud_hwpt_alloc, iommu_hwpt_alloc, pt_id);
        SAME(iommud_hwpt_alloc, iommu_hwpt_alloc, out_hwpt_id);
        SAME_RSV(iommud_hwpt_alloc, iommu_hwpt_alloc);
        SAME(iommud_hwpt_alloc, iommu_hwpt_alloc, data_type);
        SAME(iommud_hwpt_alloc, iommu_hwpt_alloc, data_len);
        SAME(iommud_hwpt_alloc, iommu_hwpt_alloc, data_uptr);
        SAME(iommud_hwpt_alloc, iommu_hwpt_alloc, fault_id);
        SAME_FIELD(iommud_hwpt_alloc, reserved2, iommu_hwpt_alloc, __reserved2);

        SAME_SIZE(iommud_hw_info, iommu_hw_info);
        SAME(iommud_hw_info, iommu_hw_info, size);
        SAME(iommud_hw_info, iommu_hw_info, flags);
        SAME(iommud_hw_info, iommu_hw_info, dev_id);
        SAME(iommud_hw_info, iommu_hw_info, data_len);
        SAME(iommud_hw_info, iommu_hw_info, data_uptr);
        SAME(iommud_hw_info, iommu_hw_info, out_data_type);
        SAME(iommud_hw_info, iommu_hw_info, out_max_pasid_log2);
        SAME_RSV(iommud_hw_info, iommu_hw_info);
        SAME(iommud_hw_info, iommu_hw_info, out_capabilities);

        SAME_SIZE(iommud_hwpt_set_dirty_tracking, iommu_hwpt_set_dirty_tracking);
        SAME(iommud_hwpt_set_dirty_tracking, iommu_hwpt_set_dirty_tracking, size);
        SAME(iommud_hwpt_set_dirty_tracking, iommu_hwpt_set_dirty_tracking, flags);
        SAME(iommud_hwpt_set_dirty_tracking, iommu_hwpt_set_dirty_tracking, hwpt_id);
        SAME_RSV(iommud_hwpt_set_dirty_tracking, iommu_hwpt_set_dirty_tracking);

        SAME_SIZE(iommud_hwpt_get_dirty_bitmap, iommu_hwpt_get_dirty_bitmap);
        SAME(iommud_hwpt_get_dirty_bitmap, iommu_hwpt_get_dirty_bitmap, size);
        SAME(iommud_hwpt_get_dirty_bitmap, iommu_hwpt_get_dirty_bitmap, hwpt_id);
        SAME(iommud_hwpt_get_dirty_bitmap, iommu_hwpt_get_dirty_bitmap, flags);
        SAME_RSV(iommud_hwpt_get_dirty_bitmap, iommu_hwpt_get_dirty_bitmap);
        SAME(iommud_hwpt_get_dirty_bitmap, iommu_hwpt_get_dirty_bitmap, iova);
        SAME(iommud_hwpt_get_dirty_bitmap, iommu_hwpt_get_dirty_bitmap, length);
        SAME(iommud_hwpt_get_dirty_bitmap, iommu_hwpt_get_dirty_bitmap, page_size);
        SAME(iommud_hwpt_get_dirty_bitmap, iommu_hwpt_get_dirty_bitmap, data);

        SAME_SIZE(iommud_hwpt_invalidate, iommu_hwpt_invalidate);
        SAME(iommud_hwpt_invalidate, iommu_hwpt_invalidate, size);
        SAME(iommud_hwpt_invalidate, iommu_hwpt_invalidate, hwpt_id);
        SAME(iommud_hwpt_invalidate, iommu_hwpt_invalidate, data_uptr);
        SAME(iommud_hwpt_invalidate, iommu_hwpt_invalidate, data_type);
        SAME(iommud_hwpt_invalidate, iommu_hwpt_invalidate, entry_len);
        SAME(iommud_hwpt_invalidate, iommu_hwpt_invalidate, entry_num);
        SAME_RSV(iommud_hwpt_invalidate, iommu_hwpt_invalidate);

        SAME_SIZE(iommud_hwpt_pgfault, iommu_hwpt_pgfault);
        SAME(iommud_hwpt_pgfault, iommu_hwpt_pgfault, flags);
        SAME(iommud_hwpt_pgfault, iommu_hwpt_pgfault, dev_id);
        SAME(iommud_hwpt_pgfault, iommu_hwpt_pgfault, pasid);
        SAME(iommud_hwpt_pgfault, iommu_hwpt_pgfault, grpid);
        SAME(iommud_hwpt_pgfault, iommu_hwpt_pgfault, perm);
        SAME_RSV(iommud_hwpt_pgfault, iommu_hwpt_pgfault);
        SAME(iommud_hwpt_pgfault, iommu_hwpt_pgfault, addr);
        SAME(iommud_hwpt_pgfault, iommu_hwpt_pgfault, length);
        SAME(iommud_hwpt_pgfault, iommu_hwpt_pgfault, cookie);

        SAME_SIZE(iommud_hwpt_page_response, iommu_hwpt_page_response);
        SAME(iommud_hwpt_page_response, iommu_hwpt_page_response, cookie);
        SAME(iommud_hwpt_page_response, iommu_hwpt_page_response, code);

        SAME_SIZE(iommud_fault_alloc, iommu_fault_alloc);
        SAME(iommud_fault_alloc, iommu_fault_alloc, size);
        SAME(iommud_fault_alloc, iommu_fault_alloc, flags);
        SAME(iommud_fault_alloc, iommu_fault_alloc, out_fault_id);
        SAME(iommud_fault_alloc, iommu_fault_alloc, out_fault_fd);

#ifdef IOMMU_VIOMMU_ALLOC
        SAME_SIZE(iommud_viommu_alloc, iommu_viommu_alloc);
        SAME(iommud_viommu_alloc, iommu_viommu_alloc, size);
        SAME(iommud_viommu_alloc, iommu_viommu_alloc, flags);
        SAME(iommud_viommu_alloc, iommu_viommu_alloc, type);
        SAME(iommud_viommu_alloc, iommu_viommu_alloc, dev_id);
        SAME(iommud_viommu_alloc, iommu_viommu_alloc, hwpt_id);
        SAME(iommud_viommu_alloc, iommu_viommu_alloc, out_viommu_id);
        SAME(iommud_viommu_alloc, iommu_viommu_alloc, data_len);
        SAME_RSV(iommud_viommu_alloc, iommu_viommu_alloc);
        SAME(iommud_viommu_alloc, iommu_viommu_alloc, data_uptr);
#endif
#ifdef IOMMU_VDEVICE_ALLOC
        SAME_SIZE(iommud_vdevice_alloc, iommu_vdevice_alloc);
        SAME(iommud_vdevice_alloc, iommu_vdevice_alloc, size);
        SAME(iommud_vdevice_alloc, iommu_vdevice_alloc, viommu_id);
        SAME(iommud_vdevice_alloc, iommu_vdevice_alloc, dev_id);
        SAME(iommud_vdevice_alloc, iommu_vdevice_alloc, out_vdevice_id);
        SAME(iommud_vdevice_alloc, iommu_vdevice_alloc, virt_id);
#endif
#ifdef IOMMU_IOAS_CHANGE_PROCESS
        SAME_SIZE(iommud_ioas_change_process, iommu_ioas_change_process);
        SAME(iommud_ioas_change_process, iommu_ioas_change_process, size);
        SAME_RSV(iommud_ioas_change_process, iommu_ioas_change_process);
#endif

        /* VFIO cdev */
#ifdef VFIO_DEVICE_BIND_FLAG_TOKEN
        SAME_SIZE(iommud_vfio_device_bind_iommufd, vfio_device_bind_iommufd);
        SAME(iommud_vfio_device_bind_iommufd, vfio_device_bind_iommufd, token_uuid_ptr);
#else
        EXTENDS_SIZE(iommud_vfio_device_bind_iommufd, vfio_device_bind_iommufd);
#endif
        SAME(iommud_vfio_device_bind_iommufd, vfio_device_bind_iommufd, argsz);
        SAME(iommud_vfio_device_bind_iommufd, vfio_device_bind_iommufd, flags);
        SAME(iommud_vfio_device_bind_iommufd, vfio_device_bind_iommufd, iommufd);
        SAME(iommud_vfio_device_bind_iommufd, vfio_device_bind_iommufd, out_devid);

#ifdef VFIO_DEVICE_ATTACH_PASID
        SAME(iommud_vfio_irq_set_eventfd, vfio_irq_set, argsz);
        SAME(iommud_vfio_irq_set_eventfd, vfio_irq_set, index);
        SAME(iommud_vfio_irq_set_eventfd, vfio_irq_set, count);
        SAME(iommud_vfio_irq_set_eventfd, vfio_irq_set, start);
        /* The eventfd is the flexible data[] that follows the header. */
        SAME_VALUE(offsetof(struct iommud_vfio_irq_set_eventfd, fd),
                   offsetof(struct vfio_irq_set, data));
        SAME_VALUE(IOMMUD_VFIO_DEVICE_SET_IRQS, VFIO_DEVICE_SET_IRQS);
        SAME_VALUE(IOMMUD_VFIO_IRQ_SET_DATA_EVENTFD, VFIO_IRQ_SET_DATA_EVENTFD);
        SAME_VALUE(IOMMUD_VFIO_IRQ_SET_ACTION_TRIGGER, VFIO_IRQ_SET_ACTION_TRIGGER);
        SAME_VALUE(IOMMUD_VFIO_PCI_REQ_IRQ_INDEX, VFIO_PCI_REQ_IRQ_INDEX);
        SAME_SIZE(iommud_vfio_device_attach_iommufd_pt, vfio_device_attach_iommufd_pt);
        SAME(iommud_vfio_device_attach_iommufd_pt, vfio_device_attach_iommufd_pt, pasid);
        SAME_SIZE(iommud_vfio_device_detach_iommufd_pt, vfio_device_detach_iommufd_pt);
        SAME(iommud_vfio_device_detach_iommufd_pt, vfio_device_detach_iommufd_pt, pasid);
#else
        EXTENDS_SIZE(iommud_vfio_device_attach_iommufd_pt, vfio_device_attach_iommufd_pt);
        EXTENDS_SIZE(iommud_vfio_device_detach_iommufd_pt, vfio_device_detach_iommufd_pt);
        /* Without PASID the kernel's structures end exactly at our minimum sizes. */
        SAME_VALUE(IOMMUD_VFIO_ATTACH_MINSZ, sizeof(struct vfio_device_attach_iommufd_pt));
        SAME_VALUE(IOMMUD_VFIO_DETACH_MINSZ, sizeof(struct vfio_device_detach_iommufd_pt));
#endif
        SAME(iommud_vfio_device_attach_iommufd_pt, vfio_device_attach_iommufd_pt, argsz);
        SAME(iommud_vfio_device_attach_iommufd_pt, vfio_device_attach_iommufd_pt, flags);
        SAME(iommud_vfio_device_attach_iommufd_pt, vfio_device_attach_iommufd_pt, pt_id);
        SAME(iommud_vfio_device_detach_iommufd_pt, vfio_device_detach_iommufd_pt, argsz);
        SAME(iommud_vfio_device_detach_iommufd_pt, vfio_device_detach_iommufd_pt, flags);
        SAME_VALUE(IOMMUD_VFIO_BIND_MINSZ, 16);
        return n_checks;
}
#endif

int main(void) {
#ifdef KERNEL_IOMMUFD_H
        printf("1..2\n");
        printf("ok 1 - %u ioctl numbers, values, sizes and field offsets agree with %s and %s\n",
               check_headers(), KERNEL_IOMMUFD_H, KERNEL_VFIO_H);
        printf("ok 2 - %u facts newer than 6.12 agree with %s\n", n_pinned, ABI_PINNED_RELEASE);
#else
        printf("1..1\n");
        printf("ok 1 - %u facts newer than 6.12 agree with %s\n", n_pinned, ABI_PINNED_RELEASE);
#endif
        return 0;
}
