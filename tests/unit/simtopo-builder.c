/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "macros.h"
#include "simtopo-builder.h"

static void *xrealloc(void *p, size_t n) {
        p = realloc(p, n);
        if (!p)
                abort();
        return p;
}

static char *xstrdup(const char *s) {
        char *d;

        if (!s)
                return NULL;
        d = strdup(s);
        if (!d)
                abort();
        return d;
}

SimTopology *tb_new(const char *name) {
        SimTopology *t = calloc(1, sizeof(SimTopology));

        if (!t)
                abort();
        t->name = xstrdup(name);
        t->cdev_major = 511;
        return t;
}

void tb_free(SimTopology *t) {
        if (!t)
                return;
        for (size_t i = 0; i < t->n_iommus; i++) {
                free(t->iommus[i].name);
                free(t->iommus[i].kind);
        }
        for (size_t i = 0; i < t->n_groups; i++) {
                for (size_t k = 0; k < t->groups[i].n_regions; k++)
                        free(t->groups[i].regions[k].type_name);
                free(t->groups[i].regions);
                free(t->groups[i].device_indexes);
                free(t->groups[i].type);
        }
        for (size_t i = 0; i < t->n_devices; i++) {
                free(t->devices[i].name);
                free(t->devices[i].driver);
                free(t->devices[i].label);
        }
        free(t->iommus);
        free(t->groups);
        free(t->devices);
        free(t->name);
        free(t->description);
        free(t);
}

size_t tb_iommu(SimTopology *t, const SimIommu *iommu) {
        t->iommus = xrealloc(t->iommus, (t->n_iommus + 1) * sizeof(SimIommu));
        t->iommus[t->n_iommus] = *iommu;
        t->iommus[t->n_iommus].name = xstrdup(iommu->name);
        t->iommus[t->n_iommus].kind = xstrdup(iommu->kind);
        return t->n_iommus++;
}

size_t tb_group(SimTopology *t, unsigned id, size_t iommu_index) {
        t->groups = xrealloc(t->groups, (t->n_groups + 1) * sizeof(SimGroup));
        t->groups[t->n_groups] = (SimGroup){
                .id = id,
                .type = xstrdup("DMA"),
                .iommu_index = iommu_index,
        };
        return t->n_groups++;
}

void tb_region(SimTopology *t, size_t group_index, uint64_t start, uint64_t last, RegionType type) {
        SimGroup *g = &t->groups[group_index];

        g->regions = xrealloc(g->regions, (g->n_regions + 1) * sizeof(ReservedRegion));
        g->regions[g->n_regions++] = (ReservedRegion){
                .start = start, .last = last, .type = type, .type_name = xstrdup(region_type_to_string(type)),
        };
}

size_t tb_device(SimTopology *t, size_t group_index, const char *name, const char *driver,
                 uint32_t class, int cdev_minor, uint8_t pasid_bits) {
        SimGroup *g = &t->groups[group_index];

        t->devices = xrealloc(t->devices, (t->n_devices + 1) * sizeof(SimDevice));
        t->devices[t->n_devices] = (SimDevice){
                .name = xstrdup(name),
                .vendor = 0x8086,
                .device = 0x1234,
                .class = class,
                .driver = xstrdup(driver),
                .numa_node = -1,
                .cdev = cdev_minor >= 0,
                .cdev_minor = cdev_minor >= 0 ? (unsigned)cdev_minor : 0,
                .pasid_bits = pasid_bits,
                .group_index = group_index,
        };
        g->device_indexes = xrealloc(g->device_indexes, (g->n_devices + 1) * sizeof(size_t));
        g->device_indexes[g->n_devices++] = t->n_devices;
        return t->n_devices++;
}
