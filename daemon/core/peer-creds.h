/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Who is on the other end of a connection.  What the kernel recorded when the
 * client connected is taken as it is: uid, gid and pid from SO_PEERCRED,
 * supplementary groups from SO_PEERGROUPS (on the bus: what the bus recorded
 * the same way).  What only /proc/PID says, the systemd unit from the
 * process's cgroup (and on the bus its gid), is read while the process is
 * pinned and verified to be the peer (peer-process.h), and the unit is taken
 * only from the system manager's cgroup tree (cgroup-unit.h).  When either
 * check fails the client has no unit, which only ever narrows what it is
 * granted, and unit_refused says why.  Both transports come through
 * peer_creds_from_source().
 */

#include <stdbool.h>
#include <sys/types.h>

#include "error.h"
#include "macros.h"
#include "peer-process.h"

typedef struct PeerCreds {
        pid_t pid;
        uid_t uid;
        gid_t gid;          /* GID_INVALID when it could not be verified */
        gid_t *groups;      /* supplementary groups, may be empty */
        size_t n_groups;
        char *unit;         /* "foo.service", "machine-qemu-vm1.scope"; NULL when none */
        char *unit_refused; /* why no unit was taken; NULL when one was, or none was named */
} PeerCreds;

/* What a transport knows of its peer, and where to read the rest. */
typedef struct PeerCredsSource {
        uid_t uid;
        gid_t gid;               /* GID_INVALID: the effective gid of /proc/PID/status */
        const gid_t *groups;     /* supplementary groups, copied */
        size_t n_groups;
        PeerProcess process;     /* whose cgroup names the unit */
        const char *proc_root;   /* NULL: /proc */
        const char *cgroup_root; /* NULL: where cgroup2 is mounted */
} PeerCredsSource;

/*
 * The credentials src describes, with the unit (and a GID_INVALID gid) read
 * from /proc under the checks above.  Only running out of memory is an error.
 */
int peer_creds_from_source(PeerCreds **ret, const PeerCredsSource *src, Error *err);
/*
 * SO_PEERCRED, SO_PEERGROUPS and SO_PEERPIDFD (where the kernel has it) of a
 * connected AF_UNIX socket accepted at accepted_usec (peer_process_now()),
 * then as peer_creds_from_source().
 */
int peer_creds_from_socket(PeerCreds **ret, int fd, uint64_t accepted_usec,
                           const char *proc_root, Error *err);
/*
 * Credentials made from numbers, without a connection (tests, restored state): no
 * supplementary groups; a unit only as peer_creds_from_source() would take it from
 * pid's cgroup under proc_root, with the process pinned by pidfd_open() now.  pid 0
 * names no process: no unit.
 */
int peer_creds_new(PeerCreds **ret, const char *proc_root, pid_t pid, uid_t uid, gid_t gid,
                   Error *err);
PeerCreds *peer_creds_free(PeerCreds *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(PeerCreds *, peer_creds_free);

/* The effective gid on the "Gid:" line of a /proc/PID/status text. */
int peer_creds_parse_status_gid(const char *text, gid_t *ret);

/* "uid 1000 (qemu-vm1.scope)" or "uid 1000 (pid 4242)", for DeviceBusy and logs. */
int peer_creds_describe(const PeerCreds *c, char *buf, size_t size);
