/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Base64 (RFC 4648 section 4, with padding): how bytes travel in JSON, e.g. the data a
 * simulated device reads or writes by DMA.
 */

#include <stddef.h>

/* *ret: a NUL-terminated string the caller frees.  -ENOMEM. */
int base64_encode(const void *data, size_t n, char **ret);

/*
 * Decodes len characters of text (padded to a multiple of four, no whitespace): *ret gets
 * *ret_n bytes the caller frees (non-NULL, also for "").  -EINVAL names nothing: any other
 * character, a bad length or padding anywhere but the end.  -ENOMEM.
 */
int base64_decode(const char *text, size_t len, void **ret, size_t *ret_n);
