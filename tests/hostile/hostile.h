/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Shared pieces of the adversary suites (hostile, soak): a daemon on the
 * simulated "server" host with deliberately small transport limits, a
 * snapshot of everything a departed client could leave behind (fds, live
 * sessions, the model's contexts, objects, mappings, pinned memory and memory
 * files, device claims), and raw sends
 * that the well-behaved itest client cannot make.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "itest.h"

/* The limits the hostile policy sets; the scenarios push exactly past them. */
#define HOSTILE_MAX_CONNECTIONS 20
#define HOSTILE_MAX_PER_UID 12      /* max-connections-per-user (caps nobody's quota of 1000) */
#define HOSTILE_SELF_CONNECTIONS 10 /* the caller's grant quota (hits first for the caller) */
#define HOSTILE_MAX_MESSAGE (1024 * 1024)
#define HOSTILE_MAX_FDS 16
#define HOSTILE_PINNED (4 * 1024 * 1024)
#define HOSTILE_ADDRESS_SPACES 4
#define HOSTILE_MAPPINGS 16
#define HOSTILE_DEVICES 4
#define HOSTILE_NOBODY 65534

/* What a client that went away may have left behind, as the daemon reports it. */
typedef struct HostileSnapshot {
        int fds;               /* /proc/PID/fd, with the probe connection open */
        uint64_t connections;  /* connections of the caller's uid, the probe's own excluded */
        uint64_t contexts;     /* the model's live contexts, the probe's own excluded */
        uint64_t objects;      /* the model's live objects */
        uint64_t mappings;     /* the mappings the model holds for the daemon */
        uint64_t pinned;       /* bytes they pin */
        uint64_t memory_files; /* memory files the model keeps open for them */
        char held[512];        /* "device=holder;..." for every claimed device */
} HostileSnapshot;

/*
 * Policy text: the limits above, with the connection limits given (total,
 * per uid, the caller's grant quota); the caller and nobody get every device.
 */
char *hostile_policy(unsigned max_connections, unsigned max_per_uid, unsigned self_connections);

/* Starts the daemon on topology with that policy; fails the test on error. */
void hostile_start_with(ItestDaemon *d, const char *topology, unsigned max_connections,
                        unsigned max_per_uid, unsigned self_connections);
/* The same with the small limits above. */
void hostile_start(ItestDaemon *d, const char *topology);

/* The daemon's resident set in bytes (/proc/PID/status VmRSS), or 0. */
uint64_t hostile_daemon_rss(const ItestDaemon *d);

/*
 * Takes a snapshot through a fresh probe connection.  Fails the test unless
 * the probe's new session reports zero usage for every resource.
 */
void hostile_snapshot(const ItestDaemon *d, HostileSnapshot *ret);
/* Waits (bounded by attempts, not time) until the daemon is back at want; fails the test if not. */
void hostile_assert_at(const ItestDaemon *d, const HostileSnapshot *want);
bool hostile_snapshot_equal(const HostileSnapshot *a, const HostileSnapshot *b);
void hostile_snapshot_format(const HostileSnapshot *s, char *buf, size_t size);

/* One sendmsg() of data with up to 253 fds (one SCM_RIGHTS); 0 or -errno. */
int hostile_send(int fd, const void *data, size_t n, const int *fds, size_t n_fds);

/* Calls and checks: the error name of the reply (NULL on success); the reply goes to *ret. */
json_object *hostile_call(ItestClient *c, const char *method, json_object *params,
                          const int *fds, size_t n_fds);
/* What the session of c uses of resource ("used"), and what its uid uses ("principalUsed"). */
uint64_t hostile_usage(ItestClient *c, const char *resource);
uint64_t hostile_principal_usage(ItestClient *c, const char *resource);
json_object *hostile_u64(uint64_t v);

/* The cdev file name of a device of the simulated host ("vfio3"), from GetTopology. */
bool hostile_device_cdev(ItestClient *c, const char *device, char *ret, size_t size);
/* Opens ROOT/sim/dev/vfio/devices/CDEV read-write; -errno on failure. */
int hostile_open_device(const ItestDaemon *d, const char *cdev);

/* Process-shared helpers for forked adversaries. */
void hostile_write_byte(int fd, char c);
char hostile_read_byte(int fd);
