/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * A small Backend test double for the kernel responder: just enough iommufd
 * semantics (ids, fixed/automatic IOVAs, EEXIST on overlap, no splitting on
 * unmap, copy inside one area, one reserved MSI window, attach/detach, fault
 * queues with injectable records) to check that backend-kernel's structures
 * and errno sentences survive the trip through the ABI.  The full model is
 * backend-sim; this double only stands in for it in the ABI-level tests.
 */

#include <stdint.h>

#include "backend.h"

/* The reserved window every device brings (an MSI doorbell). */
#define FAKE_RESERVED_START UINT64_C(0xfee00000)
#define FAKE_RESERVED_LAST UINT64_C(0xfeefffff)
#define FAKE_PAGE_SIZE UINT64_C(4096)

int fake_backend_new(Backend **ret);

/* Queues a one-record fault group on fault queue fault_id of ctx; returns its cookie. */
int fake_backend_inject_fault(BackendContext *ctx, uint32_t fault_id, uint32_t dev_id,
                              uint64_t addr, uint32_t *ret_cookie);

/* Number of areas in an IOAS (-ENOENT without it). */
int fake_backend_n_areas(BackendContext *ctx, uint32_t ioas_id);
