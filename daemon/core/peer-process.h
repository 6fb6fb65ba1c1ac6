/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The process behind a connection, and whether what /proc/PID says is about
 * it.  A connection's credentials name the pid that connected; by the time
 * iommud reads /proc/PID that process may be gone and the pid taken by
 * another (a connection can wait in the listen backlog, a bus caller can
 * exit after sending).  So every read of /proc/PID for a connection happens
 * while a pidfd pins the process, and counts only if that pidfd is the peer's
 * and its process is still alive after the reads:
 *   - the transport's own pidfd of the peer (SO_PEERPIDFD, Linux 6.5; the
 *     bus's ProcessFD) when it has one: the kernel made it from the very
 *     process that connected;
 *   - else pidfd_open(pid), accepted only if that process started no later
 *     than the connection was accepted (/proc/PID/stat field 22).  A pid reused
 *     between the client's exit and the accept still passes this check; only
 *     SO_PEERPIDFD closes that window.
 */

#include <stdint.h>
#include <sys/types.h>

#include "error.h"

typedef struct PeerProcess {
        pid_t pid;              /* as SO_PEERCRED or the bus recorded it; <= 0: none */
        /*
         * The transport's pidfd of pid, borrowed.  -EBADF: the transport has none, so
         * pidfd_open(pid); any other negative errno: getting it failed (the peer is gone).
         */
        int pidfd;
        uint64_t accepted_usec; /* CLOCK_BOOTTIME when the connection was accepted */
} PeerProcess;

/* Now on CLOCK_BOOTTIME in µs: the clock /proc/PID/stat's start time counts on. */
uint64_t peer_process_now(void);

/*
 * A pidfd (≥ 0, the caller closes it) of p's process, checked as above with its
 * /proc/PID/stat under proc_root (NULL: /proc).  -ESRCH with err saying why
 * ("pid 42 started after the connection was accepted") when the process is not
 * verifiably the peer.
 */
int peer_process_pin(const PeerProcess *p, const char *proc_root, Error *err);

/* 1 while pidfd's process runs, 0 once it has exited, or -errno. */
int peer_process_alive(int pidfd);

/* The start time (clock ticks since boot, field 22) in the text of /proc/PID/stat. */
int peer_process_parse_start(const char *text, uint64_t *ret_ticks);
