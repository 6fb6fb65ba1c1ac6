/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * ABI facts newer than the 6.12 uAPI headers CI compiles abi-check against: the numbers, sizes
 * and offsets iommud uses for kernels after 6.12, as read from the uAPI headers of the release
 * named below (include/uapi/linux/iommufd.h and vfio.h, installed by Debian's linux-libc-dev
 * of that release).  abi-check compares daemon/backend/kernel/iommufd-abi.h with this table
 * whatever headers it is built against, so a typo in a definition no installed header has yet
 * still fails.  A later release may add fields at the end of these structures; it may not move
 * what is here.
 */

#define ABI_PINNED_RELEASE "Linux 7.3.4 (linux-libc-dev 7.3.4-1~bpo13+1)"

/* Constants: ours, and the value in that release. */
#define ABI_PINNED_VALUES(X)                                                                       \
        X(IOMMUD_IOMMU_IOAS_MAP_FILE, 0x3b8f)           /* IOMMU_IOAS_MAP_FILE */                  \
        X(IOMMUD_IOMMU_VIOMMU_ALLOC, 0x3b90)            /* IOMMU_VIOMMU_ALLOC */                   \
        X(IOMMUD_IOMMU_VDEVICE_ALLOC, 0x3b91)           /* IOMMU_VDEVICE_ALLOC */                  \
        X(IOMMUD_IOMMU_IOAS_CHANGE_PROCESS, 0x3b92)     /* IOMMU_IOAS_CHANGE_PROCESS */            \
        X(IOMMUD_IOMMU_VEVENTQ_ALLOC, 0x3b93)           /* IOMMU_VEVENTQ_ALLOC */                  \
        X(IOMMUD_IOMMU_HWPT_ALLOC_PASID, 0x8)           /* IOMMU_HWPT_ALLOC_PASID */               \
        X(IOMMUD_IOMMU_HWPT_DATA_ARM_SMMUV3, 2)         /* IOMMU_HWPT_DATA_ARM_SMMUV3 */           \
        X(IOMMUD_IOMMU_HW_INFO_TYPE_ARM_SMMUV3, 2)      /* IOMMU_HW_INFO_TYPE_ARM_SMMUV3 */        \
        X(IOMMUD_IOMMU_VIOMMU_TYPE_DEFAULT, 0)          /* IOMMU_VIOMMU_TYPE_DEFAULT */            \
        X(IOMMUD_IOMMU_VIOMMU_TYPE_ARM_SMMUV3, 1)       /* IOMMU_VIOMMU_TYPE_ARM_SMMUV3 */         \
        X(IOMMUD_IOMMU_VIOMMU_INVALIDATE_DATA_ARM_SMMUV3, 1)                                       \
        X(IOMMUD_VFIO_DEVICE_BIND_FLAG_TOKEN, 0x1)      /* VFIO_DEVICE_BIND_FLAG_TOKEN */          \
        X(IOMMUD_VFIO_DEVICE_ATTACH_PASID, 0x1)         /* VFIO_DEVICE_ATTACH_PASID */             \
        X(IOMMUD_VFIO_DEVICE_DETACH_PASID, 0x1)         /* VFIO_DEVICE_DETACH_PASID */

/* Structure sizes: ours, the size in that release. */
#define ABI_PINNED_SIZES(X)                                                                        \
        X(iommud_ioas_map_file, 40)                     /* struct iommu_ioas_map_file */           \
        X(iommud_viommu_alloc, 40)                      /* struct iommu_viommu_alloc */            \
        X(iommud_vdevice_alloc, 24)                     /* struct iommu_vdevice_alloc */           \
        X(iommud_ioas_change_process, 8)                /* struct iommu_ioas_change_process */     \
        X(iommud_vfio_device_bind_iommufd, 24)          /* struct vfio_device_bind_iommufd */      \
        X(iommud_vfio_device_attach_iommufd_pt, 16)     /* struct vfio_device_attach_iommufd_pt */ \
        X(iommud_vfio_device_detach_iommufd_pt, 12)     /* struct vfio_device_detach_iommufd_pt */

/* Fields: our structure and field, its offset and width in that release's structure. */
#define ABI_PINNED_FIELDS(X)                                                                       \
        X(iommud_ioas_map_file, size, 0, 4)                                                        \
        X(iommud_ioas_map_file, flags, 4, 4)                                                       \
        X(iommud_ioas_map_file, ioas_id, 8, 4)                                                     \
        X(iommud_ioas_map_file, fd, 12, 4)                                                         \
        X(iommud_ioas_map_file, start, 16, 8)                                                      \
        X(iommud_ioas_map_file, length, 24, 8)                                                     \
        X(iommud_ioas_map_file, iova, 32, 8)                                                       \
        X(iommud_viommu_alloc, size, 0, 4)                                                         \
        X(iommud_viommu_alloc, flags, 4, 4)                                                        \
        X(iommud_viommu_alloc, type, 8, 4)                                                         \
        X(iommud_viommu_alloc, dev_id, 12, 4)                                                      \
        X(iommud_viommu_alloc, hwpt_id, 16, 4)                                                     \
        X(iommud_viommu_alloc, out_viommu_id, 20, 4)                                               \
        X(iommud_viommu_alloc, data_len, 24, 4)                                                    \
        X(iommud_viommu_alloc, reserved, 28, 4)         /* __reserved */                           \
        X(iommud_viommu_alloc, data_uptr, 32, 8)                                                   \
        X(iommud_vdevice_alloc, size, 0, 4)                                                        \
        X(iommud_vdevice_alloc, viommu_id, 4, 4)                                                   \
        X(iommud_vdevice_alloc, dev_id, 8, 4)                                                      \
        X(iommud_vdevice_alloc, out_vdevice_id, 12, 4)                                             \
        X(iommud_vdevice_alloc, virt_id, 16, 8)                                                    \
        X(iommud_ioas_change_process, size, 0, 4)                                                  \
        X(iommud_ioas_change_process, reserved, 4, 4)   /* __reserved */                           \
        X(iommud_hw_info, out_max_pasid_log2, 28, 1)                                               \
        X(iommud_hw_info, out_capabilities, 32, 8)                                                 \
        X(iommud_vfio_device_bind_iommufd, token_uuid_ptr, 16, 8)                                  \
        X(iommud_vfio_device_attach_iommufd_pt, pasid, 12, 4)                                      \
        X(iommud_vfio_device_detach_iommufd_pt, pasid, 8, 4)
