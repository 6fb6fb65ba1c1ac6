/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The kernel's mock IOMMU device (CONFIG_IOMMUFD_TEST) as a VFIO device cdev for
 * backend-kernel.  No emulated PCI device has PASID, dirty tracking, nesting or page requests;
 * the mock device of IOMMU_TEST_CMD has all but PASID, but it is not a cdev: it is created
 * inside an iommufd, bound and attached at once.  This seam stands between backend-kernel and
 * the real syscalls (iommufd_mock_syscalls) and passes everything through, except the VFIO
 * device ioctls on a file from iommufd_mock_open(), which it turns into the mock's:
 *
 *   VFIO_DEVICE_BIND_IOMMUFD      an IOAS of its own to park the device on (the mock cannot
 *                                 be bound unattached) and IOMMU_TEST_OP_MOCK_DOMAIN_FLAGS;
 *                                 out_devid is the mock's device id, which IOMMU_GET_HW_INFO,
 *                                 IOMMU_HWPT_ALLOC and fault records use like any other;
 *   VFIO_DEVICE_ATTACH_IOMMUFD_PT IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE to pt_id;
 *   VFIO_DEVICE_DETACH_IOMMUFD_PT the same, back to the parking IOAS;
 *   the last close of the file     IOMMU_DESTROY of the mock and of its parking IOAS.
 *
 * As with a VFIO cdev, the binding belongs to the open file: a dup() shares it, closing one
 * copy while another lives unbinds nothing, and another open() of the device cannot bind while
 * it is bound (EINVAL).  PASID flags get EINVAL, as on a 6.12 kernel.
 */

#include <stdbool.h>
#include <stdint.h>

#include "backend-kernel.h"

typedef struct IommufdMock IommufdMock;

/*
 * -ENOTTY when the kernel has no IOMMU_TEST_CMD; -ENODEV when it cannot make a mock device:
 * Linux 6.12 probes it with the ops of the first IOMMU registered (iommu_fwspec_ops(NULL) in
 * __iommu_probe_device), so only where the mock IOMMU is the only one.  dev_iommu is the
 * iommufd node to probe.
 */
int iommufd_mock_new(IommufdMock **ret, const char *dev_iommu);
IommufdMock *iommufd_mock_free(IommufdMock *m);

/* The seam: pass with userdata = the mock. */
extern const BackendKernelSyscalls iommufd_mock_syscalls;

/* A new open file of the mock device, standing in for an open() of its cdev. */
int iommufd_mock_open(IommufdMock *m, int *ret_fd);

/*
 * A page request from the bound mock device (IOMMU_TEST_OP_TRIGGER_IOPF).  -ENOENT when it is
 * not bound; -EOPNOTSUPP for a page that is not the last of its group (the mock reports each
 * as a whole group).  A request nobody takes is answered by the kernel and still returns 0.
 */
int iommufd_mock_inject(IommufdMock *m, uint32_t pasid, uint64_t addr, uint32_t perm,
                        bool last_page, uint32_t grpid);

/*
 * What a DMA write of [iova, iova+length) by the mock device through mock page table hwpt_id
 * does to its IOPTEs: their dirty bits are set (IOMMU_TEST_OP_DIRTY).  -EINVAL while the page
 * table does not track; -ENOENT when the mock device is not bound.
 */
int iommufd_mock_dirty(IommufdMock *m, uint32_t hwpt_id, uint64_t iova, uint64_t length);
