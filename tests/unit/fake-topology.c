/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fake-topology.h"
#include "macros.h"

static void *xcalloc(size_t n, size_t size) {
        void *p = calloc(n ?: 1, size);

        if (!p)
                abort();
        return p;
}

static char *xstrdup(const char *s) {
        char *p;

        if (!s)
                return NULL;
        p = strdup(s);
        if (!p)
                abort();
        return p;
}

static TopoGroup *group_get(Topology *t, unsigned id) {
        for (size_t i = 0; i < t->n_groups; i++)
                if (t->groups[i]->id == id)
                        return t->groups[i];
        return NULL;
}

static int group_compare(const void *a, const void *b) {
        const TopoGroup *x = *(TopoGroup *const *)a, *y = *(TopoGroup *const *)b;

        return x->id < y->id ? -1 : x->id > y->id;
}

static int device_compare(const void *a, const void *b) {
        return strcmp((*(TopoDevice *const *)a)->name, (*(TopoDevice *const *)b)->name);
}

Topology *fake_topology_new(const FakeDevice *devices, size_t n_devices, const FakeRegion *regions,
                            size_t n_regions, const unsigned *broken_groups, size_t n_broken) {
        Topology *t = xcalloc(1, sizeof(Topology));

        t->groups = xcalloc(n_devices, sizeof(TopoGroup *));
        t->devices = xcalloc(n_devices, sizeof(TopoDevice *));
        for (size_t i = 0; i < n_devices; i++) {
                const FakeDevice *f = &devices[i];
                TopoDevice *d = xcalloc(1, sizeof(TopoDevice));
                TopoGroup *g = NULL;

                d->name = xstrdup(f->name);
                d->is_pci = true;
                d->vendor = f->vendor;
                d->device = f->device;
                d->class = f->class;
                d->driver = xstrdup(f->driver);
                d->numa_node = -1;
                d->has_cdev = f->cdev;
                if (f->cdev) {
                        char buf[32];

                        snprintf(buf, sizeof(buf), "vfio%zu", i);
                        d->cdev_name = xstrdup(buf);
                        d->cdev_major = 511;
                        d->cdev_minor = (unsigned)i;
                }
                if (f->group != FAKE_NO_GROUP) {
                        g = group_get(t, f->group);
                        if (!g) {
                                g = xcalloc(1, sizeof(TopoGroup));
                                g->id = f->group;
                                g->type = xstrdup("DMA-FQ");
                                g->devices = xcalloc(n_devices, sizeof(TopoDevice *));
                                t->groups[t->n_groups++] = g;
                        }
                        g->devices[g->n_devices++] = d;
                        d->group = g;
                }
                t->devices[t->n_devices++] = d;
        }
        for (size_t i = 0; i < n_regions; i++) {
                TopoGroup *g = group_get(t, regions[i].group);

                if (!g)
                        abort();
                if (!g->regions)
                        g->regions = xcalloc(n_regions, sizeof(ReservedRegion));
                g->regions[g->n_regions++] = (ReservedRegion){
                        .start = regions[i].start,
                        .last = regions[i].last,
                        .type = regions[i].type,
                        .type_name = xstrdup(region_type_to_string(regions[i].type)),
                };
        }
        for (size_t i = 0; i < n_broken; i++) {
                TopoGroup *g = group_get(t, broken_groups[i]);

                if (!g)
                        abort();
                g->broken = true;
        }
        qsort(t->groups, t->n_groups, sizeof(TopoGroup *), group_compare);
        qsort(t->devices, t->n_devices, sizeof(TopoDevice *), device_compare);
        for (size_t i = 0; i < t->n_groups; i++)
                qsort(t->groups[i]->devices, t->groups[i]->n_devices, sizeof(TopoDevice *),
                      device_compare);
        return t;
}

void fake_topology_free(Topology *t) {
        if (!t)
                return;
        for (size_t i = 0; i < t->n_devices; i++) {
                free(t->devices[i]->name);
                free(t->devices[i]->driver);
                free(t->devices[i]->cdev_name);
                free(t->devices[i]);
        }
        for (size_t i = 0; i < t->n_groups; i++) {
                TopoGroup *g = t->groups[i];

                for (size_t j = 0; j < g->n_regions; j++)
                        free(g->regions[j].type_name);
                free(g->regions);
                free(g->devices);
                free(g->type);
                free(g);
        }
        free(t->groups);
        free(t->devices);
        free(t);
}

TopoDevice *fake_topology_device(const Topology *t, const char *name) {
        for (size_t i = 0; i < t->n_devices; i++)
                if (streq(t->devices[i]->name, name))
                        return t->devices[i];
        return NULL;
}
