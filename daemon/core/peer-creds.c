/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "cgroup-unit.h"
#include "file-util.h"
#include "log.h"
#include "peer-creds.h"

#ifndef SO_PEERGROUPS
#define SO_PEERGROUPS 59
#endif
#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77
#endif

int peer_creds_parse_status_gid(const char *text, gid_t *ret) {
        for (const char *p = text; p && *p;) {
                const char *eol = strchr(p, '\n');

                if (strneq(p, "Gid:", 4)) {
                        unsigned long real, effective;

                        /* Real, effective, saved, filesystem: SO_PEERCRED names the effective. */
                        if (sscanf(p + 4, "%lu %lu", &real, &effective) != 2 ||
                            effective >= (unsigned long)GID_INVALID)
                                return -EBADMSG;
                        *ret = (gid_t)effective;
                        return 0;
                }
                p = eol ? eol + 1 : NULL;
        }
        return -EBADMSG;
}

static int read_proc_file(const char *proc_root, pid_t pid, const char *name, char **ret) {
        char path[PATH_MAX];

        snprintf(path, sizeof(path), "%s/%d/%s", proc_root, (int)pid, name);
        return file_util_read_at(AT_FDCWD, path, 1024 * 1024, ret, NULL);
}

/*
 * The cgroup text (and with want_status the status text) of src's process, read while it
 * is pinned: 0 when the reads are verified to be about the peer, -ESRCH with err.
 */
static int read_process(const PeerCredsSource *src, bool want_status, char **ret_cgroup,
                        char **ret_status, Error *err) {
        const char *proc_root = src->proc_root ?: "/proc";
        pid_t pid = src->process.pid;
        _cleanup_free_ char *cgroup = NULL, *status = NULL;
        _cleanup_close_ int pidfd = -EBADF;
        int r;

        pidfd = peer_process_pin(&src->process, proc_root, err);
        if (pidfd < 0)
                return error_prefix(err, "%s/%d is not verifiably the client's", proc_root,
                                    (int)pid);
        r = read_proc_file(proc_root, pid, "cgroup", &cgroup);
        if (r >= 0 && want_status)
                r = read_proc_file(proc_root, pid, "status", &status);
        /* Only now is it known that the pid still named the pinned process while it was read. */
        if (peer_process_alive(pidfd) <= 0)
                return error_set(err, -ESRCH, "pid %d exited while %s/%d was read", (int)pid,
                                 proc_root, (int)pid);
        if (r < 0)
                return error_set(err, -ESRCH, "%s/%d cannot be read: %s", proc_root, (int)pid,
                                 strerror(-r));
        *ret_cgroup = TAKE_PTR(cgroup);
        *ret_status = TAKE_PTR(status);
        return 0;
}

static int take_unit(PeerCreds *c, const PeerCredsSource *src, const char *cgroup_text,
                     Error *err) {
        _cleanup_free_ char *path = NULL;
        int r;

        r = cgroup_unit_parse_proc(cgroup_text, &path);
        if (r == -ENXIO)
                return 0;
        if (r == -EBADMSG)
                return error_set(err, -EPERM,
                                 "the cgroup of pid %d is ambiguous (a cgroup name holds a "
                                 "newline)",
                                 (int)c->pid);
        if (r < 0)
                return r;
        return cgroup_unit_check(src->cgroup_root, path, &c->unit, err);
}

/* The unit (and gid) /proc says, when it may be believed; else why not in c->unit_refused. */
static int creds_read_process(PeerCreds *c, const PeerCredsSource *src) {
        _cleanup_free_ char *cgroup = NULL, *status = NULL;
        bool want_gid = src->gid == GID_INVALID;
        Error err = ERROR_INIT;
        int r;

        /* Credentials that name no process (made up by iommud itself) have nothing to read. */
        if (src->process.pid <= 0)
                return 0;
        r = read_process(src, want_gid, &cgroup, &status, &err);
        if (r >= 0 && want_gid && peer_creds_parse_status_gid(status, &c->gid) < 0)
                log_debug("No Gid line in /proc/%d/status, the gid stays unknown", (int)c->pid);
        if (r >= 0)
                r = take_unit(c, src, cgroup, &err);
        if (r == -ENOMEM)
                return r;
        if (r < 0) {
                log_debug("No unit for uid %u: %s", (unsigned)c->uid, error_message(&err));
                c->unit_refused = strdup(error_message(&err));
                if (!c->unit_refused)
                        return -ENOMEM;
        }
        return 0;
}

int peer_creds_from_source(PeerCreds **ret, const PeerCredsSource *src, Error *err) {
        _cleanup_(peer_creds_freep) PeerCreds *c = NULL;
        int r;

        c = calloc(1, sizeof(*c));
        if (!c)
                return error_set(err, -ENOMEM, "Out of memory.");
        *c = (PeerCreds){
                .pid = src->process.pid,
                .uid = src->uid,
                .gid = src->gid,
        };
        if (src->n_groups > 0) {
                c->groups = malloc(src->n_groups * sizeof(gid_t));
                if (!c->groups)
                        return error_set(err, -ENOMEM, "Out of memory.");
                memcpy(c->groups, src->groups, src->n_groups * sizeof(gid_t));
                c->n_groups = src->n_groups;
        }
        r = creds_read_process(c, src);
        if (r < 0)
                return error_set(err, r, "Out of memory.");
        *ret = TAKE_PTR(c);
        return 0;
}

/* SO_PEERGROUPS into a buffer that grows to what the kernel says it needs. */
static int socket_groups(int fd, gid_t **ret, size_t *ret_n) {
        socklen_t len = 16 * sizeof(gid_t);

        for (;;) {
                _cleanup_free_ gid_t *g = malloc(len);
                socklen_t n = len;

                if (!g)
                        return -ENOMEM;
                if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, g, &n) >= 0) {
                        *ret_n = n / sizeof(gid_t);
                        *ret = TAKE_PTR(g);
                        return 0;
                }
                if (errno != ERANGE || n <= len)
                        return negative_errno();
                len = n;
        }
}

int peer_creds_from_socket(PeerCreds **ret, int fd, uint64_t accepted_usec, const char *proc_root,
                           Error *err) {
        _cleanup_free_ gid_t *groups = NULL;
        _cleanup_close_ int pidfd = -EBADF;
        struct ucred uc;
        socklen_t len = sizeof(uc);
        size_t n_groups = 0;
        int r;

        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &uc, &len) < 0)
                return error_set(err, -errno, "SO_PEERCRED on fd %d failed: %s", fd,
                                 strerror(errno));
        r = socket_groups(fd, &groups, &n_groups);
        /* Before Linux 4.13 there is none: no supplementary groups, which only narrows. */
        if (r == -ENOPROTOOPT)
                log_debug("No SO_PEERGROUPS in this kernel: pid %d has no supplementary groups",
                          (int)uc.pid);
        else if (r < 0)
                return error_set(err, r, "SO_PEERGROUPS on fd %d failed: %s", fd, strerror(-r));
        len = sizeof(pidfd);
        /* Before Linux 6.5 there is none; where there is, a peer that is gone has none. */
        if (getsockopt(fd, SOL_SOCKET, SO_PEERPIDFD, &pidfd, &len) < 0)
                pidfd = errno == ENOPROTOOPT ? -EBADF : negative_errno();
        return peer_creds_from_source(
                ret,
                &(PeerCredsSource){
                        .uid = uc.uid,
                        .gid = uc.gid,
                        .groups = groups,
                        .n_groups = n_groups,
                        .process = {.pid = uc.pid, .pidfd = pidfd, .accepted_usec = accepted_usec},
                        .proc_root = proc_root,
                },
                err);
}

int peer_creds_new(PeerCreds **ret, const char *proc_root, pid_t pid, uid_t uid, gid_t gid,
                   Error *err) {
        return peer_creds_from_source(ret,
                                      &(PeerCredsSource){
                                              .uid = uid,
                                              .gid = gid,
                                              .process = {.pid = pid,
                                                          .pidfd = -EBADF,
                                                          .accepted_usec = peer_process_now()},
                                              .proc_root = proc_root,
                                      },
                                      err);
}

PeerCreds *peer_creds_free(PeerCreds *c) {
        if (!c)
                return NULL;
        free(c->groups);
        free(c->unit);
        free(c->unit_refused);
        free(c);
        return NULL;
}

int peer_creds_describe(const PeerCreds *c, char *buf, size_t size) {
        if (c->unit)
                return snprintf(buf, size, "uid %u (%s)", (unsigned)c->uid, c->unit);
        return snprintf(buf, size, "uid %u (pid %d)", (unsigned)c->uid, (int)c->pid);
}
