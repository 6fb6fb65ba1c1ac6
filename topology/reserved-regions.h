/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * An IOMMU group's reserved regions as sysfs lists them in
 * kernel/iommu_groups/N/reserved_regions, and the names of their types.
 */

#include <stddef.h>
#include <stdint.h>

#include "error.h"

typedef enum RegionType {
        REGION_DIRECT,           /* firmware needs a 1:1 map (RMRR/IVMD/RMR): never to userspace */
        REGION_DIRECT_RELAXABLE, /* 1:1 map the OS may drop (USB, iGPU RMRRs) */
        REGION_RESERVED,         /* no DMA here */
        REGION_MSI,              /* hardware or software MSI window */
        REGION_UNKNOWN,          /* a type this code does not know: kept, treated as reserved */
        _REGION_TYPE_MAX,
} RegionType;

typedef struct ReservedRegion {
        uint64_t start;
        uint64_t last;   /* inclusive, as sysfs prints it */
        RegionType type;
        char *type_name; /* exactly as read, e.g. "direct-relaxable" or an unknown word */
} ReservedRegion;

/*
 * The names of region types, in one table, spelled as the kernel does in
 * reserved_regions and as every interface of iommud, the policy, the CLI and the
 * simulated-topology files do: "direct-relaxable".  "unknown" for REGION_UNKNOWN,
 * NULL out of range.
 */
const char *region_type_to_string(RegionType t);
RegionType region_type_from_string(const char *s); /* unknown words give REGION_UNKNOWN */

/*
 * Parses one group's reserved_regions text ("0x%016llx 0x%016llx TYPE" per
 * line).  On a bad line returns -EINVAL with err naming the line number.
 */
int reserved_regions_parse(const char *text, size_t len, ReservedRegion **ret, size_t *ret_n,
                           Error *err);
void reserved_regions_free(ReservedRegion *r, size_t n);
