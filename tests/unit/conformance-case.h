/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * For conformance cases kept in files of their own: the running case's state and the
 * helpers conformance.c gives its own cases.  Everything a case makes through them is
 * released at its teardown, and a case that cannot run here skips with the reason.
 */

#include <stdint.h>

#include "conformance.h"

typedef struct ConfState ConfState;

ConfState *conf_case_state(void **state);
ConfEnv *conf_case_env(ConfState *s);
_Noreturn void conf_case_skip(ConfState *s, const char *reason);
/* Skips the case unless the backend offers f ("backend NAME does not offer FEATURE"). */
void conf_case_require(ConfState *s, BackendFeature f);
BackendContext *conf_case_context(ConfState *s);
/* Binds a fresh fd of the device in role to c (skips when the factory has none). */
uint32_t conf_case_bind(ConfState *s, BackendContext *c, ConfRole role);
uint32_t conf_case_ioas(ConfState *s, BackendContext *c);
/* A VA of real memory (up to 1 MiB of it) with src's low 22 bits. */
uint64_t conf_case_va(ConfState *s, uint64_t src, uint64_t len);

/* conformance-memory.c: pins and their charge, pinnable memory. */
void memory_pins_follow_domains(void **state);
void memory_enomem_at_memlock_limit(void **state);
void memory_copies_charged_once(void **state);
void memory_unpinnable_va_efault(void **state);

/* conformance-dirty.c: dirty tracking of paging HWPTs. */
void dirty_only_with_the_flag_and_while_on(void **state);
void dirty_writes_read_and_cleared(void **state);
void dirty_bitmap_granularity_and_range(void **state);
void dirty_enable_clears_and_unmap_forgets(void **state);
