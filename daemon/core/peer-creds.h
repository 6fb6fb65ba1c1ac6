/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Who is on the other end of a connection: uid/gid/pid from SO_PEERCRED,
 * supplementary groups from /proc/PID/status and the systemd unit from
 * /proc/PID/cgroup.  The /proc root is a parameter so tests can fake it.
 */

#include <stdbool.h>
#include <sys/types.h>

#include "error.h"
#include "macros.h"

typedef struct PeerCreds {
        pid_t pid;
        uid_t uid;
        gid_t gid;
        gid_t *groups;   /* supplementary groups, may be empty */
        size_t n_groups;
        char *unit;      /* "foo.service", "qemu-vm1.scope"; NULL when none */
} PeerCreds;

/*
 * Fills groups and unit from PROC_ROOT/PID/{status,cgroup}.  The process may
 * be gone already: then the groups stay empty and the unit NULL, which only
 * ever narrows what the principal is granted.  proc_root NULL means "/proc".
 */
int peer_creds_new(PeerCreds **ret, const char *proc_root, pid_t pid, uid_t uid, gid_t gid,
                   Error *err);
/* SO_PEERCRED of a connected AF_UNIX socket, then as peer_creds_new(). */
int peer_creds_from_socket(PeerCreds **ret, int fd, const char *proc_root, Error *err);
PeerCreds *peer_creds_free(PeerCreds *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(PeerCreds *, peer_creds_free);

/*
 * The innermost systemd unit (.service or .scope) on a cgroup path:
 * "/system.slice/foo.service" → "foo.service",
 * "/user.slice/user-1000.slice/user@1000.service/app.slice/vm.scope/sub" → "vm.scope".
 * -ENXIO when the path names no unit.
 */
int cgroup_path_get_unit(const char *path, char **ret);
/* Parses the "0::PATH" line of a /proc/PID/cgroup text. -ENXIO when there is none. */
int cgroup_text_get_unit(const char *text, char **ret);
/* Parses the "Groups:" line of a /proc/PID/status text. */
int proc_status_get_groups(const char *text, gid_t **ret, size_t *ret_n);

/* "uid 1000 (qemu-vm1.scope)" or "uid 1000 (pid 4242)", for DeviceBusy and logs. */
int peer_creds_describe(const PeerCreds *c, char *buf, size_t size);
