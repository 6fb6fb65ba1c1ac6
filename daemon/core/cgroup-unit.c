/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/xattr.h>

#include "cgroup-unit.h"
#include "macros.h"

/* The markers systemd puts on a delegated cgroup (user.* is readable without CAP_SYS_ADMIN). */
static const char *const delegate_xattrs[] = { "trusted.delegate", "user.delegate" };

int cgroup_unit_parse_proc(const char *text, char **ret_path) {
        const char *found = NULL;
        size_t found_len = 0;

        for (const char *p = text; p && *p;) {
                const char *eol = strchr(p, '\n');
                size_t n = eol ? (size_t)(eol - p) : strlen(p);

                if (n >= 3 && strneq(p, "0::", 3)) {
                        if (found)
                                return -EBADMSG;
                        found = p + 3;
                        found_len = n - 3;
                }
                p = eol ? eol + 1 : NULL;
        }
        if (!found)
                return -ENXIO;
        char *path = strndup(found, found_len);
        if (!path)
                return -ENOMEM;
        *ret_path = path;
        return 0;
}

static bool endswith(const char *s, size_t n, const char *suffix) {
        size_t l = strlen(suffix);

        return n > l && memcmp(s + n - l, suffix, l) == 0;
}

static bool is_unit(const char *s, size_t n) {
        return endswith(s, n, ".service") || endswith(s, n, ".scope");
}

/* The user's own service manager: "user@1000.service". */
static bool is_user_manager(const char *s, size_t n) {
        return n > 5 && strneq(s, "user@", 5) && endswith(s, n, ".service");
}

/* Offset and length of the innermost unit on path; false when there is none. */
static bool find_unit(const char *path, size_t *ret_at, size_t *ret_len) {
        bool found = false;

        for (size_t at = 0;;) {
                size_t n;

                at += strspn(path + at, "/");
                n = strcspn(path + at, "/");
                if (n == 0)
                        return found;
                if (is_unit(path + at, n)) {
                        *ret_at = at;
                        *ret_len = n;
                        found = true;
                }
                at += n;
        }
}

int cgroup_unit_name(const char *path, char **ret) {
        size_t at, n;

        if (!find_unit(path, &at, &n))
                return -ENXIO;
        char *u = strndup(path + at, n);
        if (!u)
                return -ENOMEM;
        *ret = u;
        return 0;
}

/*
 * Whether the directory fd, at the first len bytes of path, is the system manager's:
 * 1 when it is, -EPERM with err saying why not.
 */
static int check_ancestor(int fd, const char *path, size_t len, const char *unit, Error *err) {
        const char *shown = len > 0 ? path : "/";
        int shown_len = len > 0 ? (int)len : 1;
        struct stat st;

        if (fstat(fd, &st) < 0)
                return error_set(err, -EPERM, "%s cannot be checked: %.*s: %s", unit, shown_len,
                                 shown, strerror(errno));
        if (st.st_uid != 0)
                return error_set(err, -EPERM,
                                 "%s is inside %.*s, which belongs to uid %u (a delegated subtree)",
                                 unit, shown_len, shown, (unsigned)st.st_uid);
        if (st.st_mode & (S_IWGRP | S_IWOTH))
                return error_set(err, -EPERM,
                                 "%s is inside %.*s, which others may write to (mode %04o)", unit,
                                 shown_len, shown, (unsigned)(st.st_mode & 07777));
        FOREACH_ARRAY(x, delegate_xattrs, ELEMENTSOF(delegate_xattrs)) {
                if (fgetxattr(fd, *x, NULL, 0) >= 0)
                        return error_set(err, -EPERM, "%s is inside %.*s, which is delegated (%s)",
                                         unit, shown_len, shown, *x);
                if (errno != ENODATA && errno != ENOTSUP && errno != EOPNOTSUPP)
                        return error_set(err, -EPERM, "%s cannot be checked: %s of %.*s: %s", unit,
                                         *x, shown_len, shown, strerror(errno));
        }
        return 1;
}

/* Walks from root down to the unit's own cgroup; 1 when every directory above it passes. */
static int walk(const char *root, const char *path, size_t unit_at, const char *unit, Error *err) {
        _cleanup_close_ int fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        _cleanup_free_ char *name = NULL;
        size_t at = 0;
        int r;

        if (fd < 0)
                return error_set(err, -EPERM, "%s cannot be checked: %s: %s", unit, root,
                                 strerror(errno));
        for (;;) {
                size_t n;
                int next;

                at += strspn(path + at, "/");
                n = strcspn(path + at, "/");
                /* Only above the unit: its own name is what the directories above vouch for. */
                if (at <= unit_at) {
                        r = check_ancestor(fd, path, at > 0 ? at - 1 : 0, unit, err);
                        if (r < 0)
                                return r;
                }
                if ((n == 1 && path[at] == '.') || (n == 2 && strneq(path + at, "..", 2)))
                        return error_set(err, -EPERM, "%s is outside iommud's cgroup namespace",
                                         unit);
                if (at == unit_at && is_user_manager(path + at, n))
                        return error_set(err, -EPERM, "%s is a user's own service manager", unit);
                if (at < unit_at && is_user_manager(path + at, n))
                        return error_set(err, -EPERM,
                                         "%s is under %.*s, a user's own service manager", unit,
                                         (int)n, path + at);
                if (at > unit_at)
                        return 1;
                free(name);
                name = strndup(path + at, n);
                if (!name)
                        return -ENOMEM;
                next = openat(fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (next < 0)
                        return error_set(err, -EPERM, "%s cannot be checked: %.*s: %s", unit,
                                         (int)(at + n), path, strerror(errno));
                safe_close(fd);
                fd = next;
                at += n;
        }
}

int cgroup_unit_check(const char *root, const char *path, char **ret_unit, Error *err) {
        _cleanup_free_ char *unit = NULL;
        size_t at, n;
        int r;

        if (!find_unit(path, &at, &n))
                return 0;
        unit = strndup(path + at, n);
        if (!unit)
                return -ENOMEM;
        if (!root && cgroup_unit_find_root(&root) < 0)
                return error_set(err, -EPERM,
                                 "%s cannot be checked: no cgroup2 hierarchy is mounted", unit);
        r = walk(root, path, at, unit, err);
        if (r < 0)
                return r;
        *ret_unit = TAKE_PTR(unit);
        return 1;
}

int cgroup_unit_find_root(const char **ret) {
        static const char *const candidates[] = { "/sys/fs/cgroup", "/sys/fs/cgroup/unified" };

        FOREACH_ARRAY(c, candidates, ELEMENTSOF(candidates)) {
                struct statfs fs;

                if (statfs(*c, &fs) >= 0 && fs.f_type == CGROUP2_SUPER_MAGIC) {
                        *ret = *c;
                        return 0;
                }
        }
        return -ENOMEDIUM;
}
