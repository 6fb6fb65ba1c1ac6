/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * What the session core takes back from a client that keeps its device's file, run on any
 * host: the simulated backend, backend-kernel through the kernel responder (unit tests), and
 * backend-kernel on the real kernel in the kernel-vm guest.  A host builds a SessionHost with
 * a policy and names a device it may open on a client's behalf; the cases then keep the file
 * iommud bound in a process of their own, as a VMM keeps its fd, and check through the
 * kernel's own interface (VFIO_DEVICE_ATTACH_IOMMUFD_PT on that file) what stays reachable.
 */

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "session.h"

typedef struct TeardownEnv TeardownEnv;

typedef struct TeardownHost {
        const char *name;
        /*
         * Fills env->host (backend, topology, policy from policy_text) and env->device (a
         * device alone in its IOMMU group, with a VFIO cdev); -EOPNOTSUPP: not here.
         */
        int (*setup)(TeardownEnv *env, const char *policy_text);
        void (*teardown)(TeardownEnv *env);
        /* A new fd of the file the session's backend bound for device_id (a dup of it). */
        int (*bound_file)(TeardownEnv *env, Session *s, uint32_t device_id);
        /* What a client does with its kept file: VFIO_DEVICE_ATTACH_IOMMUFD_PT, 0 or -errno. */
        int (*file_attach)(TeardownEnv *env, int fd, uint32_t pt_id);
} TeardownHost;

struct TeardownEnv {
        const TeardownHost *kind;
        SessionHost host;
        char device[64];
        void *userdata;          /* the host's */
        pid_t child;             /* the process keeping a file, killed at the latest by teardown */
};

/* Names in env->device the first device of env's topology the policy allows, alone in its group. */
int session_teardown_pick_device(TeardownEnv *env);

/* Runs every case on every host as one cmocka group; returns the number of failures. */
int session_teardown_run(const TeardownHost *const *hosts, size_t n_hosts);
