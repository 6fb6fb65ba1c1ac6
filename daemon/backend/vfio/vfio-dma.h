/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The IOAS operations of backend-vfio's ops table: map (a memory fd through the backend's
 * own mmap, or the daemon's VA), unmap, copy, IOVA ranges and the allowed list.  The rules
 * are iommufd's, checked against the backend's record of the IOAS; the kernel sees one
 * MAP_DMA or UNMAP_DMA per area while a group is in the container.
 */

#include <stdint.h>

#include "backend.h"
#include "error.h"

int vfio_dma_map_file(BackendContext *bc, uint32_t ioas_id, uint32_t flags, int fd, uint64_t start,
                      uint64_t length, uint64_t *iova, Error *err);
int vfio_dma_map_va(BackendContext *bc, uint32_t ioas_id, uint32_t flags, uint64_t user_va,
                    uint64_t length, uint64_t *iova, Error *err);
int vfio_dma_unmap(BackendContext *bc, uint32_t ioas_id, uint64_t iova, uint64_t length,
                   uint64_t *ret_unmapped, Error *err);
int vfio_dma_copy(BackendContext *bc, uint32_t dst_ioas_id, uint32_t src_ioas_id, uint32_t flags,
                  uint64_t src_iova, uint64_t length, uint64_t *dst_iova, Error *err);
int vfio_dma_iova_ranges(BackendContext *bc, uint32_t ioas_id, IovaRange *ranges, size_t *n_ranges,
                         uint64_t *ret_alignment, Error *err);
int vfio_dma_allow_iovas(BackendContext *bc, uint32_t ioas_id, const IovaRange *ranges, size_t n,
                         Error *err);
