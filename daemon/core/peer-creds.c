/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "file-util.h"
#include "log.h"
#include "peer-creds.h"

static bool endswith(const char *s, size_t n, const char *suffix) {
        size_t l = strlen(suffix);

        return n > l && memcmp(s + n - l, suffix, l) == 0;
}

int cgroup_path_get_unit(const char *path, char **ret) {
        const char *unit = NULL, *p = path;
        size_t unit_len = 0;

        while (*p) {
                size_t n;

                p += strspn(p, "/");
                n = strcspn(p, "/");
                if (n == 0)
                        break;
                if (endswith(p, n, ".service") || endswith(p, n, ".scope")) {
                        unit = p;
                        unit_len = n;
                }
                p += n;
        }
        if (!unit)
                return -ENXIO;
        char *u = strndup(unit, unit_len);
        if (!u)
                return -ENOMEM;
        *ret = u;
        return 0;
}

int cgroup_text_get_unit(const char *text, char **ret) {
        const char *p = text;

        /* Only the unified hierarchy line "0::PATH" tells the unit reliably. */
        while (p && *p) {
                const char *eol = strchr(p, '\n');
                size_t n = eol ? (size_t)(eol - p) : strlen(p);

                if (n > 3 && strneq(p, "0::", 3)) {
                        _cleanup_free_ char *path = strndup(p + 3, n - 3);
                        if (!path)
                                return -ENOMEM;
                        return cgroup_path_get_unit(path, ret);
                }
                p = eol ? eol + 1 : NULL;
        }
        return -ENXIO;
}

int proc_status_get_groups(const char *text, gid_t **ret, size_t *ret_n) {
        const char *p = text;

        while (p && *p) {
                const char *eol = strchr(p, '\n');

                if (strneq(p, "Groups:", 7)) {
                        _cleanup_free_ gid_t *groups = NULL;
                        size_t n = 0, n_alloc = 0;
                        const char *q = p + 7;

                        for (;;) {
                                char *end;
                                unsigned long v;

                                q += strspn(q, " \t");
                                if (!*q || *q == '\n')
                                        break;
                                errno = 0;
                                v = strtoul(q, &end, 10);
                                if (errno != 0 || end == q || v > (gid_t)-2)
                                        return -EINVAL;
                                if (n == n_alloc) {
                                        size_t m = n_alloc ? n_alloc * 2 : 8;
                                        gid_t *g = realloc(groups, m * sizeof(gid_t));
                                        if (!g)
                                                return -ENOMEM;
                                        groups = g;
                                        n_alloc = m;
                                }
                                groups[n++] = (gid_t)v;
                                q = end;
                        }
                        *ret = TAKE_PTR(groups);
                        *ret_n = n;
                        return 0;
                }
                p = eol ? eol + 1 : NULL;
        }
        *ret = NULL;
        *ret_n = 0;
        return 0;
}

static int read_proc_file(const char *proc_root, pid_t pid, const char *name, char **ret) {
        char path[PATH_MAX];

        snprintf(path, sizeof(path), "%s/%d/%s", proc_root, (int)pid, name);
        return file_util_read_at(AT_FDCWD, path, 1024 * 1024, ret, NULL);
}

int peer_creds_new(PeerCreds **ret, const char *proc_root, pid_t pid, uid_t uid, gid_t gid,
                   Error *err) {
        _cleanup_(peer_creds_freep) PeerCreds *c = NULL;
        _cleanup_free_ char *status = NULL, *cgroup = NULL;
        int r;

        if (!proc_root)
                proc_root = "/proc";
        c = calloc(1, sizeof(*c));
        if (!c)
                return error_set(err, -ENOMEM, "Out of memory.");
        c->pid = pid;
        c->uid = uid;
        c->gid = gid;

        if (pid > 0) {
                r = read_proc_file(proc_root, pid, "status", &status);
                if (r < 0)
                        log_debug_errno(r, "Cannot read %s/%d/status, assuming no "
                                        "supplementary groups: %m", proc_root, (int)pid);
                else {
                        r = proc_status_get_groups(status, &c->groups, &c->n_groups);
                        if (r == -ENOMEM)
                                return error_set(err, r, "Out of memory.");
                        if (r < 0)
                                log_debug_errno(r, "Cannot parse the Groups line of "
                                                "%s/%d/status, ignoring: %m",
                                                proc_root, (int)pid);
                }

                r = read_proc_file(proc_root, pid, "cgroup", &cgroup);
                if (r < 0)
                        log_debug_errno(r, "Cannot read %s/%d/cgroup, assuming no unit: %m",
                                        proc_root, (int)pid);
                else {
                        r = cgroup_text_get_unit(cgroup, &c->unit);
                        if (r == -ENOMEM)
                                return error_set(err, r, "Out of memory.");
                }
        }
        *ret = TAKE_PTR(c);
        return 0;
}

int peer_creds_from_socket(PeerCreds **ret, int fd, const char *proc_root, Error *err) {
        struct ucred uc;
        socklen_t len = sizeof(uc);

        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &uc, &len) < 0)
                return error_set(err, -errno, "SO_PEERCRED on fd %d failed: %s", fd,
                                 strerror(errno));
        return peer_creds_new(ret, proc_root, uc.pid, uc.uid, uc.gid, err);
}

PeerCreds *peer_creds_free(PeerCreds *c) {
        if (!c)
                return NULL;
        free(c->groups);
        free(c->unit);
        free(c);
        return NULL;
}

int peer_creds_describe(const PeerCreds *c, char *buf, size_t size) {
        if (c->unit)
                return snprintf(buf, size, "uid %u (%s)", (unsigned)c->uid, c->unit);
        return snprintf(buf, size, "uid %u (pid %d)", (unsigned)c->uid, (int)c->pid);
}
