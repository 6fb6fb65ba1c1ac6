/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The state of the VFIO responder, shared by vfio-responder.c (files, groups, containers)
 * and vfio-responder-type1.c (the type1 IOMMU of a container).
 */

#include <sys/types.h>

#include "vfio-responder.h"

typedef struct RDma {
        uint64_t iova;
        uint64_t size;
        uint64_t vaddr;
        uint32_t flags; /* IOMMUD_VFIO_DMA_MAP_FLAG_READ/WRITE */
} RDma;

typedef struct RContainer {
        dev_t dev; /* the memfd that stands for it */
        ino_t ino;
        int type; /* 0 until SET_IOMMU */
        struct RGroup **groups;
        size_t n_groups;
        RDma *dmas; /* sorted by iova, disjoint */
        size_t n_dmas;
        bool dirty_logging;
        uint64_t pgsize_bitmap;
        IovaRange *iovas; /* the IOVA list: apertures minus reserved regions */
        size_t n_iovas;
} RContainer;

typedef struct RGroup {
        const SimGroup *sim;
        unsigned id;
        char *node; /* NULL: no member on a VFIO driver, no node */
        dev_t node_dev;
        ino_t node_ino;
        RContainer *container;
        int *dev_pipes; /* read ends of the device fds handed out */
        size_t n_dev_pipes;
} RGroup;

/* ---- vfio-responder-type1.c ---- */

/* The IOVA list and page sizes of the container's groups (after a group came or went). */
int rtype1_compute_domain(VfioResponder *r, RContainer *c, IovaRange **ret, size_t *ret_n,
                          uint64_t *ret_pgsizes);
/* Whether every mapping of c lies inside the IOVA ranges. */
bool rtype1_dmas_inside(const RContainer *c, const IovaRange *iovas, size_t n);
int rtype1_ioctl(VfioResponder *r, RContainer *c, unsigned long request, void *arg);
