/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The libFuzzer entry point every target implements, and what several
 * targets share.  With -Dfuzzing=true the targets link libFuzzer; otherwise
 * fuzz-main.c replays corpus files through the same function, so the corpus
 * runs in every build.
 */

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A NUL-terminated copy of the input, for parsers that take C strings; aborts on OOM. */
char *fuzz_strndup(const uint8_t *data, size_t size);

/*
 * A small host (one Intel IOMMU; a viable vfio group, a non-viable two-port
 * NIC, a group with a direct-relaxable RMRR) materialized once per process in
 * a fresh directory under $TMPDIR (or /dev/shm, a tmpfs, when it exists) and
 * removed at exit.  Returns the root, which holds sys/ and dev/; aborts on
 * failure, since no input could run without it.
 */
const char *fuzz_small_host(void);
