/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <linux/openat2.h>

#include "macros.h"
#include "sysfs.h"

/*
 * Root-relative paths for problem reports.  A path that does not fit could not
 * have been opened either, so truncating it only shortens a message.
 */
void sysfs_path_join(char *buf, size_t size, const char *dir, const char *name) {
        if (snprintf(buf, size, "%s/%s", dir, name) >= (int)size)
                buf[size - 1] = '\0';
}

int sysfs_openat_beneath(int dir_fd, const char *path, int flags, bool allow_symlinks) {
        static bool have_openat2 = true;
        int fd;

        /* One component that is not a symlink cannot leave dir_fd: plain openat() with
         * O_NOFOLLOW says the same as RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS. */
        if (!allow_symlinks && !strchr(path, '/') && !streq(path, "..")) {
                fd = openat(dir_fd, path, flags | O_CLOEXEC | O_NOFOLLOW);
                return fd >= 0 ? fd : -errno;
        }

        if (have_openat2) {
                struct open_how how = {
                        .flags = (uint64_t)(flags | O_CLOEXEC),
                        .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS |
                                   (allow_symlinks ? 0 : RESOLVE_NO_SYMLINKS),
                };

                fd = (int)syscall(SYS_openat2, dir_fd, path, &how, sizeof(how));
                if (fd >= 0)
                        return fd;
                if (errno != ENOSYS && errno != EPERM)
                        return -errno;
                /* No openat2 (old kernel, or a seccomp filter): fall back below. */
                have_openat2 = false;
        }
        if (path[0] == '/')
                return -EXDEV;
        fd = openat(dir_fd, path, flags | O_CLOEXEC | (allow_symlinks ? 0 : O_NOFOLLOW));
        return fd >= 0 ? fd : -errno;
}

/*
 * Joins the symlink target to the root-relative directory holding the link
 * and normalizes "." and "..".  Returns -EXDEV for an absolute target or one
 * that climbs above the root.
 */
int sysfs_resolve_link(const char *link_dir, const char *target, char **ret) {
        size_t ld = strlen(link_dir), lt = strlen(target);
        _cleanup_free_ char *buf = NULL;
        char *out, *p;
        size_t out_len = 0;

        if (target[0] == '/')
                return -EXDEV;

        buf = malloc(ld + lt + 2);
        out = malloc(ld + lt + 2);
        if (!buf || !out) {
                free(out);
                return -ENOMEM;
        }
        memcpy(buf, link_dir, ld);
        buf[ld] = '/';
        memcpy(buf + ld + 1, target, lt + 1);

        p = buf;
        while (*p) {
                char *slash = strchr(p, '/');
                size_t n = slash ? (size_t)(slash - p) : strlen(p);

                if (n == 0 || (n == 1 && p[0] == '.')) {
                        /* skip */
                } else if (n == 2 && p[0] == '.' && p[1] == '.') {
                        if (out_len == 0) {
                                free(out);
                                return -EXDEV;
                        }
                        char *prev = memrchr(out, '/', out_len);
                        out_len = prev ? (size_t)(prev - out) : 0;
                } else {
                        if (out_len > 0)
                                out[out_len++] = '/';
                        memcpy(out + out_len, p, n);
                        out_len += n;
                }
                p += n;
                if (*p == '/')
                        p++;
        }
        out[out_len] = '\0';
        *ret = out;
        return 0;
}

int sysfs_readlink(int dir_fd, const char *name, char **ret) {
        char buf[PATH_MAX];
        ssize_t n;

        n = readlinkat(dir_fd, name, buf, sizeof(buf));
        if (n < 0)
                return -errno;
        if ((size_t)n >= sizeof(buf))
                return -ENAMETOOLONG;
        char *s = strndup(buf, (size_t)n);
        if (!s)
                return -ENOMEM;
        *ret = s;
        return 0;
}

/* Reads a small attribute file into buf (NUL-terminated); returns its length. */
int sysfs_read_attr(int dir_fd, const char *name, char *buf, size_t size) {
        _cleanup_close_ int fd = -EBADF;
        size_t len = 0;

        fd = sysfs_openat_beneath(dir_fd, name, O_RDONLY, false);
        if (fd < 0)
                return fd;
        for (;;) {
                size_t want = size - 1 - len;
                ssize_t n = read(fd, buf + len, want);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (n == 0)
                        break;
                len += (size_t)n;
                if (len >= size - 1)
                        return -EFBIG;
                /* sysfs hands out a whole attribute at once and a regular file only reads
                 * short at its end: a short read is the end, which saves a read() per file. */
                if ((size_t)n < want)
                        break;
        }
        buf[len] = '\0';
        return (int)len;
}

/* Parses "0x" followed by 1 to 16 hex digits, the whole word. */
bool sysfs_parse_hex_u64(const char *s, size_t n, uint64_t *ret) {
        uint64_t v = 0;

        if (n < 3 || n > 18 || s[0] != '0' || (s[1] != 'x' && s[1] != 'X'))
                return false;
        for (size_t i = 2; i < n; i++) {
                int c = (unsigned char)s[i], d;

                if (c >= '0' && c <= '9')
                        d = c - '0';
                else if (c >= 'a' && c <= 'f')
                        d = c - 'a' + 10;
                else if (c >= 'A' && c <= 'F')
                        d = c - 'A' + 10;
                else
                        return false;
                v = (v << 4) | (uint64_t)d;
        }
        *ret = v;
        return true;
}
