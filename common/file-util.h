/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Reading a whole file into memory: the policy drop-ins, simulated-topology
 * descriptions and /proc/PID/{status,cgroup}.  sysfs attributes, read by the
 * thousand, have a fixed-buffer reader of their own in topology/.
 */

#include <stddef.h>

/*
 * Reads the file at path (relative to dirfd, or AT_FDCWD) into a NUL-terminated
 * buffer, *ret, that the caller frees; *ret_len (may be NULL) gets the number of
 * bytes before the NUL.  An empty file gives "".  Returns 0, -EISDIR for a
 * directory, -EFBIG when the file holds more than max_size bytes, or the -errno of
 * open or read.
 */
int file_util_read_at(int dirfd, const char *path, size_t max_size, char **ret, size_t *ret_len);
