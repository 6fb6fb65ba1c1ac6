/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * A group's reserved_regions file: the bytes as read from sysfs, not
 * NUL-terminated, so that ASan catches a read past the length.
 */

#include <stdlib.h>

#include "fuzz.h"
#include "reserved-regions.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        ReservedRegion *regions = NULL;
        size_t n = 0;

        if (reserved_regions_parse((const char *)data, size, &regions, &n, NULL) < 0)
                return 0;
        for (size_t i = 0; i < n; i++) {
                /* What the parser promises: ranges in order, and a word for every type. */
                if (regions[i].start > regions[i].last || !regions[i].type_name ||
                    !region_type_to_string(regions[i].type))
                        abort();
                if (i > 0 && regions[i - 1].start > regions[i].start)
                        abort();
        }
        reserved_regions_free(regions, n);
        return 0;
}
