/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Everything is read relative to the sysfs root fd.  Symlinks are never
 * followed by the kernel on our behalf: their targets are read with
 * readlinkat(), joined to the directory that holds the link, normalized, and
 * refused when absolute or when ".." would climb above the root.  The
 * resulting root-relative path is then opened with openat2(RESOLVE_BENEATH)
 * where the kernel has it, so that even an intermediate component cannot
 * lead out of the tree.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* dir/name into buf, for problem reports: truncated when it does not fit. */
void sysfs_path_join(char *buf, size_t size, const char *dir, const char *name);
/* Opens path below dir_fd; returns the fd or a negative errno (-EXDEV: it would leave). */
int sysfs_openat_beneath(int dir_fd, const char *path, int flags, bool allow_symlinks);
/* The root-relative path a symlink target in link_dir names; -EXDEV when it leaves the root. */
int sysfs_resolve_link(const char *link_dir, const char *target, char **ret);
/* The target of the symlink name in dir_fd, newly allocated; -EINVAL when it is no symlink. */
int sysfs_readlink(int dir_fd, const char *name, char **ret);
/* Reads a small attribute file into buf (NUL-terminated); returns its length. */
int sysfs_read_attr(int dir_fd, const char *name, char *buf, size_t size);
/* Parses "0x" followed by 1 to 16 hex digits, the whole word. */
bool sysfs_parse_hex_u64(const char *s, size_t n, uint64_t *ret);
