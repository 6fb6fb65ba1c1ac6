/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Builds SimTopology values in memory for tests and benchmarks, without the
 * JSON parser.  Out of memory aborts: this is test code.
 */

#include <stdint.h>

#include "simtopo.h"

SimTopology *tb_new(const char *name);
void tb_free(SimTopology *t);

/* Returns the IOMMU's index; name is copied. */
size_t tb_iommu(SimTopology *t, const SimIommu *iommu);
size_t tb_group(SimTopology *t, unsigned id, size_t iommu_index);
void tb_region(SimTopology *t, size_t group_index, uint64_t start, uint64_t last, RegionType type);
/* cdev_minor < 0: no vfio cdev.  driver may be NULL (unbound). */
size_t tb_device(SimTopology *t, size_t group_index, const char *name, const char *driver,
                 uint32_t class, int cdev_minor, uint8_t pasid_bits);
