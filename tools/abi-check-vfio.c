/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * abi-check-vfio: iommud's legacy VFIO container, group and type1 definitions
 * (daemon/backend/vfio/vfio-abi.h) against the installed <linux/vfio.h> (on
 * Debian 12, linux-libc-dev 6.1), in one translation unit.  Every ioctl
 * number, flag, structure size and field offset/width is compared with
 * _Static_assert, so a mismatch fails the build with the field's name;
 * main() then reports how many facts were compared.
 */

#include <stddef.h>
#include <stdio.h>

#include <linux/vfio.h>

#include "abi-check.h"
#include "vfio-abi.h"

static unsigned check_numbers(void) {
        unsigned n_checks = 0;

        SAME_VALUE(IOMMUD_VFIO_TYPE, VFIO_TYPE);
        SAME_VALUE(IOMMUD_VFIO_BASE, VFIO_BASE);
        SAME_VALUE(IOMMUD_VFIO_API_VERSION, VFIO_API_VERSION);
        SAME_VALUE(IOMMUD_VFIO_GET_API_VERSION, VFIO_GET_API_VERSION);
        SAME_VALUE(IOMMUD_VFIO_CHECK_EXTENSION, VFIO_CHECK_EXTENSION);
        SAME_VALUE(IOMMUD_VFIO_SET_IOMMU, VFIO_SET_IOMMU);
        SAME_VALUE(IOMMUD_VFIO_GROUP_GET_STATUS, VFIO_GROUP_GET_STATUS);
        SAME_VALUE(IOMMUD_VFIO_GROUP_SET_CONTAINER, VFIO_GROUP_SET_CONTAINER);
        SAME_VALUE(IOMMUD_VFIO_GROUP_UNSET_CONTAINER, VFIO_GROUP_UNSET_CONTAINER);
        SAME_VALUE(IOMMUD_VFIO_GROUP_GET_DEVICE_FD, VFIO_GROUP_GET_DEVICE_FD);
        SAME_VALUE(IOMMUD_VFIO_IOMMU_GET_INFO, VFIO_IOMMU_GET_INFO);
        SAME_VALUE(IOMMUD_VFIO_IOMMU_MAP_DMA, VFIO_IOMMU_MAP_DMA);
        SAME_VALUE(IOMMUD_VFIO_IOMMU_UNMAP_DMA, VFIO_IOMMU_UNMAP_DMA);
        SAME_VALUE(IOMMUD_VFIO_IOMMU_DIRTY_PAGES, VFIO_IOMMU_DIRTY_PAGES);

        SAME_VALUE(IOMMUD_VFIO_TYPE1_IOMMU, VFIO_TYPE1_IOMMU);
        SAME_VALUE(IOMMUD_VFIO_TYPE1v2_IOMMU, VFIO_TYPE1v2_IOMMU);
        SAME_VALUE(IOMMUD_VFIO_DMA_CC_IOMMU, VFIO_DMA_CC_IOMMU);
        SAME_VALUE(IOMMUD_VFIO_UNMAP_ALL, VFIO_UNMAP_ALL);
        SAME_VALUE(IOMMUD_VFIO_UPDATE_VADDR, VFIO_UPDATE_VADDR);

        SAME_VALUE(IOMMUD_VFIO_GROUP_FLAGS_VIABLE, VFIO_GROUP_FLAGS_VIABLE);
        SAME_VALUE(IOMMUD_VFIO_GROUP_FLAGS_CONTAINER_SET, VFIO_GROUP_FLAGS_CONTAINER_SET);
        SAME_VALUE(IOMMUD_VFIO_IOMMU_INFO_PGSIZES, VFIO_IOMMU_INFO_PGSIZES);
        SAME_VALUE(IOMMUD_VFIO_IOMMU_INFO_CAPS, VFIO_IOMMU_INFO_CAPS);
        SAME_VALUE(IOMMUD_VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE,
                   VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE);
        SAME_VALUE(IOMMUD_VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION, VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION);
        SAME_VALUE(IOMMUD_VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL, VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL);
        SAME_VALUE(IOMMUD_VFIO_DMA_MAP_FLAG_READ, VFIO_DMA_MAP_FLAG_READ);
        SAME_VALUE(IOMMUD_VFIO_DMA_MAP_FLAG_WRITE, VFIO_DMA_MAP_FLAG_WRITE);
        SAME_VALUE(IOMMUD_VFIO_DMA_MAP_FLAG_VADDR, VFIO_DMA_MAP_FLAG_VADDR);
        SAME_VALUE(IOMMUD_VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP,
                   VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP);
        SAME_VALUE(IOMMUD_VFIO_DMA_UNMAP_FLAG_ALL, VFIO_DMA_UNMAP_FLAG_ALL);
        SAME_VALUE(IOMMUD_VFIO_DMA_UNMAP_FLAG_VADDR, VFIO_DMA_UNMAP_FLAG_VADDR);
        SAME_VALUE(IOMMUD_VFIO_IOMMU_DIRTY_PAGES_FLAG_START, VFIO_IOMMU_DIRTY_PAGES_FLAG_START);
        SAME_VALUE(IOMMUD_VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP, VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP);
        SAME_VALUE(IOMMUD_VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP,
                   VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP);
        return n_checks;
}

static unsigned check_layouts(void) {
        unsigned n_checks = 0;

        SAME_SIZE(iommud_vfio_group_status, vfio_group_status);
        SAME(iommud_vfio_group_status, vfio_group_status, argsz);
        SAME(iommud_vfio_group_status, vfio_group_status, flags);

        SAME_SIZE(iommud_vfio_iommu_type1_info, vfio_iommu_type1_info);
        SAME(iommud_vfio_iommu_type1_info, vfio_iommu_type1_info, argsz);
        SAME(iommud_vfio_iommu_type1_info, vfio_iommu_type1_info, flags);
        SAME(iommud_vfio_iommu_type1_info, vfio_iommu_type1_info, iova_pgsizes);
        SAME(iommud_vfio_iommu_type1_info, vfio_iommu_type1_info, cap_offset);

        SAME_SIZE(iommud_vfio_info_cap_header, vfio_info_cap_header);
        SAME(iommud_vfio_info_cap_header, vfio_info_cap_header, id);
        SAME(iommud_vfio_info_cap_header, vfio_info_cap_header, version);
        SAME(iommud_vfio_info_cap_header, vfio_info_cap_header, next);

        SAME_SIZE(iommud_vfio_iova_range, vfio_iova_range);
        SAME(iommud_vfio_iova_range, vfio_iova_range, start);
        SAME(iommud_vfio_iova_range, vfio_iova_range, end);

        SAME_SIZE(iommud_vfio_iommu_type1_info_cap_iova_range,
                  vfio_iommu_type1_info_cap_iova_range);
        SAME(iommud_vfio_iommu_type1_info_cap_iova_range, vfio_iommu_type1_info_cap_iova_range,
             header);
        SAME(iommud_vfio_iommu_type1_info_cap_iova_range, vfio_iommu_type1_info_cap_iova_range,
             nr_iovas);
        SAME(iommud_vfio_iommu_type1_info_cap_iova_range, vfio_iommu_type1_info_cap_iova_range,
             reserved);
        SAME_VALUE(offsetof(struct iommud_vfio_iommu_type1_info_cap_iova_range, iova_ranges),
                   offsetof(struct vfio_iommu_type1_info_cap_iova_range, iova_ranges));

        SAME_SIZE(iommud_vfio_iommu_type1_info_cap_migration, vfio_iommu_type1_info_cap_migration);
        SAME(iommud_vfio_iommu_type1_info_cap_migration, vfio_iommu_type1_info_cap_migration,
             flags);
        SAME(iommud_vfio_iommu_type1_info_cap_migration, vfio_iommu_type1_info_cap_migration,
             pgsize_bitmap);
        SAME(iommud_vfio_iommu_type1_info_cap_migration, vfio_iommu_type1_info_cap_migration,
             max_dirty_bitmap_size);

        SAME_SIZE(iommud_vfio_iommu_type1_info_dma_avail, vfio_iommu_type1_info_dma_avail);
        SAME(iommud_vfio_iommu_type1_info_dma_avail, vfio_iommu_type1_info_dma_avail, avail);
        return n_checks;
}

static unsigned check_dma(void) {
        unsigned n_checks = 0;

        SAME_SIZE(iommud_vfio_iommu_type1_dma_map, vfio_iommu_type1_dma_map);
        SAME(iommud_vfio_iommu_type1_dma_map, vfio_iommu_type1_dma_map, argsz);
        SAME(iommud_vfio_iommu_type1_dma_map, vfio_iommu_type1_dma_map, flags);
        SAME(iommud_vfio_iommu_type1_dma_map, vfio_iommu_type1_dma_map, vaddr);
        SAME(iommud_vfio_iommu_type1_dma_map, vfio_iommu_type1_dma_map, iova);
        SAME(iommud_vfio_iommu_type1_dma_map, vfio_iommu_type1_dma_map, size);

        SAME_SIZE(iommud_vfio_iommu_type1_dma_unmap, vfio_iommu_type1_dma_unmap);
        SAME(iommud_vfio_iommu_type1_dma_unmap, vfio_iommu_type1_dma_unmap, argsz);
        SAME(iommud_vfio_iommu_type1_dma_unmap, vfio_iommu_type1_dma_unmap, flags);
        SAME(iommud_vfio_iommu_type1_dma_unmap, vfio_iommu_type1_dma_unmap, iova);
        SAME(iommud_vfio_iommu_type1_dma_unmap, vfio_iommu_type1_dma_unmap, size);

        SAME_SIZE(iommud_vfio_bitmap, vfio_bitmap);
        SAME(iommud_vfio_bitmap, vfio_bitmap, pgsize);
        SAME(iommud_vfio_bitmap, vfio_bitmap, size);
        SAME(iommud_vfio_bitmap, vfio_bitmap, data);

        SAME_SIZE(iommud_vfio_iommu_type1_dirty_bitmap, vfio_iommu_type1_dirty_bitmap);
        SAME(iommud_vfio_iommu_type1_dirty_bitmap, vfio_iommu_type1_dirty_bitmap, argsz);
        SAME(iommud_vfio_iommu_type1_dirty_bitmap, vfio_iommu_type1_dirty_bitmap, flags);
        SAME_SIZE(iommud_vfio_iommu_type1_dirty_bitmap_get, vfio_iommu_type1_dirty_bitmap_get);
        SAME(iommud_vfio_iommu_type1_dirty_bitmap_get, vfio_iommu_type1_dirty_bitmap_get, iova);
        SAME(iommud_vfio_iommu_type1_dirty_bitmap_get, vfio_iommu_type1_dirty_bitmap_get, size);
        SAME(iommud_vfio_iommu_type1_dirty_bitmap_get, vfio_iommu_type1_dirty_bitmap_get, bitmap);
        return n_checks;
}

int main(void) {
        unsigned n = check_numbers() + check_layouts() + check_dma();

        printf("1..1\n");
        printf("ok 1 - %u VFIO type1 ioctl numbers, values, sizes and field offsets agree with "
               "<linux/vfio.h>\n",
               n);
        return 0;
}
