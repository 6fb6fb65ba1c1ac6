/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * A simulated topology description.  The bytes are not NUL-terminated, so a
 * read past the length shows.  Materializing is left out on purpose: it
 * writes files, and parse is where untrusted text is handled.
 */

#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "fuzz.h"
#include "simtopo.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_(simtopo_freep) SimTopology *t = NULL;
        Error err = ERROR_INIT;

        if (simtopo_parse(&t, (const char *)data, size, &err) < 0) {
                error_clear(&err);
                return 0;
        }
        /* What the parser promises: every index in range, and every device findable by name. */
        for (size_t i = 0; i < t->n_groups; i++) {
                const SimGroup *g = &t->groups[i];

                if (g->iommu_index >= t->n_iommus)
                        abort();
                for (size_t j = 0; j < g->n_devices; j++)
                        if (g->device_indexes[j] >= t->n_devices ||
                            t->devices[g->device_indexes[j]].group_index != i)
                                abort();
                for (size_t j = 0; j < g->n_regions; j++)
                        if (g->regions[j].start > g->regions[j].last)
                                abort();
        }
        for (size_t i = 0; i < t->n_devices; i++)
                if (simtopo_find_device(t, t->devices[i].name) != &t->devices[i])
                        abort();
        return 0;
}
