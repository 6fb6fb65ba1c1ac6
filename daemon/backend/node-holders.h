/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Which processes hold an open file of a device node: the answer both backends give to
 * BackendOps.device_holders, from a scan of /proc/PID/fd.  A file matches the node when both
 * are the same character (or block) device, whatever the path it was opened by, or else the
 * same inode (the simulated nodes are regular files).  iommud's own process is left out: what
 * it holds of a node is a copy it is about to close or a client's fd in a request it serves.
 */

#include <stddef.h>
#include <sys/stat.h>
#include <sys/types.h>

/*
 * Fills pids[0..n_max) with the processes holding node open, in the order /proc lists them,
 * and *ret_n with how many there are (also past n_max).  On input *ret_n is 0 to look at every
 * process, or the number of candidates in pids[] to look at those only (cheap: a scan of all of
 * /proc reads every fd of every process).  Processes whose fd table cannot be read (gone
 * meanwhile, or not ours to see) are skipped.  -errno when /proc cannot be read.
 */
int node_holders(const struct stat *node, pid_t *pids, size_t n_max, size_t *ret_n);

/* Whether process pid holds node open now (the check after pidfd_open(), against pid reuse). */
int node_held_by(const struct stat *node, pid_t pid);
