/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The daemon-wide state sessions share, on a bundled simulated host: its tree
 * materialized in a fresh directory, its topology read back, the simulated
 * backend and a policy text.  What the session-level unit tests stand on.
 */

#include <stddef.h>

#include "session.h"

/* Fills host and root (at least 64 bytes); fails the test on any error. */
void sim_host_setup(SessionHost *host, char *root, size_t root_size, const char *topology,
                    const char *policy_text);
/* A session of uid (gid the same) and pid on host; fails the test when it is refused. */
Session *sim_host_session(SessionHost *host, uid_t uid, pid_t pid);
/* Opens the VFIO cdev node of device name in the materialized tree; fails the test if it can't. */
int sim_host_open_device(const SessionHost *host, const char *root, const char *name);
/* Frees every session, the backend, topology and policy, and removes the tree. */
void sim_host_teardown(SessionHost *host, const char *root);
