/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * IOMMU_TEST_CMD: the iommufd ioctl a kernel built with CONFIG_IOMMUFD_TEST answers with its
 * mock IOMMU (drivers/iommu/iommufd/iommufd_test.h and selftest.c of Linux 6.12).  Test-only
 * kernel ABI: the daemon never uses it, so it lives here and not in iommufd-abi.h.  Only the
 * operations the conformance suite drives are spelled out; the union keeps its full size.
 */

#include <stddef.h>
#include <stdint.h>

#include "iommufd-abi.h"

#define IOMMUD_IOMMU_TEST_CMD IOMMUD_IOMMUFD_IO(IOMMUD_IOMMUFD_CMD_BASE + 32)

enum {
        IOMMUD_TEST_OP_MOCK_DOMAIN = 2,         /* a mock device bound and attached to id */
        IOMMUD_TEST_OP_MOCK_DOMAIN_REPLACE = 10, /* its attachment moved to another pt_id */
        IOMMUD_TEST_OP_MOCK_DOMAIN_FLAGS = 12,  /* MOCK_DOMAIN with device flags */
        IOMMUD_TEST_OP_DIRTY = 13,              /* sets dirty bits of a mock domain's IOPTEs */
        IOMMUD_TEST_OP_TRIGGER_IOPF = 15,       /* a page request from the mock device */
};

/* The mock domain's geometry (MOCK_APERTURE_START/LAST) and page size (PAGE_SIZE / 2). */
#define IOMMUD_MOCK_APERTURE_START (UINT64_C(1) << 24)
#define IOMMUD_MOCK_APERTURE_LAST ((UINT64_C(1) << 31) - 1)
#define IOMMUD_MOCK_PAGE_SIZE UINT64_C(2048)

/* IOMMU_HWPT_DATA_SELFTEST: nested HWPT data of the mock IOMMU, struct iommu_hwpt_selftest. */
#define IOMMUD_HWPT_DATA_SELFTEST 0xdead
struct iommud_hwpt_selftest {
        uint32_t iotlb;
};

struct iommud_test_cmd {
        uint32_t size;
        uint32_t op;
        uint32_t id;
        uint32_t __reserved;
        union {
                struct {
                        uint32_t out_stdev_id;
                        uint32_t out_hwpt_id;
                        uint32_t out_idev_id; /* the device's id in the iommufd */
                        uint32_t dev_flags;
                } mock_domain_flags;
                struct {
                        uint32_t pt_id;
                } mock_domain_replace;
                struct {
                        uint32_t dev_id;
                        uint32_t pasid;
                        uint32_t grpid;
                        uint32_t perm;
                        uint64_t addr;
                } trigger_iopf;
                struct {
                        uint32_t flags;
                        iommud_aligned_u64 iova;
                        iommud_aligned_u64 length;
                        iommud_aligned_u64 page_size; /* the mock's IOPTE: PAGE_SIZE / 2 */
                        iommud_aligned_u64 uptr;      /* one bit per page to mark */
                        iommud_aligned_u64 out_nr_dirty;
                } dirty;
                /* The kernel's largest member (dirty: six 64-bit fields). */
                iommud_aligned_u64 _size[6];
        };
        uint32_t last;
};

_Static_assert(sizeof(struct iommud_test_cmd) == 72, "sizeof iommu_test_cmd");
_Static_assert(offsetof(struct iommud_test_cmd, mock_domain_flags) == 16, "iommu_test_cmd union");
_Static_assert(offsetof(struct iommud_test_cmd, last) == 64, "iommu_test_cmd.last");
_Static_assert(offsetof(struct iommud_test_cmd, trigger_iopf.addr) == 32, "trigger_iopf.addr");
_Static_assert(offsetof(struct iommud_test_cmd, dirty.uptr) == 48, "dirty.uptr");
