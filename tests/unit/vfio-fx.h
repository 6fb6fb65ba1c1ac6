/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * A backend-vfio over the VFIO responder, on the conformance topology materialized in a
 * temporary directory: the fixture of the backend-vfio unit tests.
 */

#include <stdint.h>

#include "backend-vfio.h"
#include "conformance.h"
#include "vfio-responder.h"

#define P UINT64_C(4096)
#define RW (BACKEND_MAP_READABLE | BACKEND_MAP_WRITEABLE)
#define PLAIN_GROUP 1
#define PASID_GROUP 2
#define SHARED_GROUP 3

typedef struct Fx {
        SimTopology *topo;
        const char *names[_CONF_ROLE_MAX];
        char root[64];
        VfioResponder *r;
        Backend *b;
        BackendContext *c;
        Error err;
} Fx;

#define OPS(fx) ((fx)->b->ops)

/* The responder and topology; the backend not yet (knobs first, then vfio_fx_start()). */
Fx *vfio_fx_prepare(SimTopology *topo);
/* The backend and one context: what backend_vfio_new() returned. */
int vfio_fx_start(Fx *fx);
Fx *vfio_fx_new(void);
/* Frees all, checking that the backend left no fd or container in the responder. */
void vfio_fx_free(Fx *fx);
/* Opens and binds the device of the role; its id. */
uint32_t vfio_fx_bind(Fx *fx, ConfRole role);
uint32_t vfio_fx_ioas(Fx *fx);
int vfio_fx_attach(Fx *fx, uint32_t dev, uint32_t ioas);
/* A memfd of n pages, page i filled with the byte 'A' + i. */
int vfio_fx_memfd(size_t pages);
/* Where a DMA by the group's device to iova lands: the byte there, or 0 when nowhere. */
char vfio_fx_dma_read(Fx *fx, unsigned group, uint64_t iova);

/* Restart: the fds a context stored (as the fd store keeps them) by name. */
typedef struct VfioFxStore {
        char names[8][32];
        int fds[8];
        size_t n;
} VfioFxStore;
int vfio_fx_store_fd(const char *name, int fd, void *userdata);
int vfio_fx_store_take(const char *name, void *userdata);
/* Saves the context, lets it go as a daemon exiting for a restart does, and adopts it again. */
void vfio_fx_restart(Fx *fx, VfioFxStore *st);
