/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The real iommud binary on a simulated host, with systemd's part of the fd-store protocol
 * played by the test: a NOTIFY_SOCKET datagram socket that takes FDSTORE=1/FDNAME= messages
 * with SCM_RIGHTS (ignoring an fd it already holds, as systemd does), drops entries on
 * FDSTOREREMOVE=1, and starts the daemon again with the stored fds at 3..N and LISTEN_FDS,
 * LISTEN_FDNAMES and LISTEN_PID set.  Failures end the cmocka test.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "itest.h"

typedef struct Stored {
        char name[256];
        int fd;
} Stored;

typedef struct Harness {
        ItestDaemon d;
        int notify_fd;
        char notify[320];
        char topology[320];
        Stored store[256];
        size_t n_store;
        bool ready;
} Harness;

bool streq_safe(const char *a, const char *b);

/* Starts iommud on the bundled workstation, or on topology_json, with a grant for the caller. */
void harness_start_on(Harness *h, const char *policy_extra, const char *topology_json);
void harness_start(Harness *h, const char *policy_extra);
/* Starts the daemon again with what the store holds; 0 once it said READY=1. */
int harness_launch(Harness *h);
/* SIGKILL, then what the dying daemon still sent to the store. */
void harness_kill(Harness *h);
/* The same with SIGTERM, an orderly exit (systemctl restart), which must exit 0. */
void harness_term(Harness *h);
void harness_stop(Harness *h);
/* How many stored fds have a name starting with prefix. */
size_t harness_count(const Harness *h, const char *prefix);

/* Calls that must succeed end the test otherwise. */
ItestClient *connect_client(Harness *h);
json_object *ok_call(ItestClient *c, const char *method, json_object *params, const int *fds,
                     size_t n_fds);
uint64_t call_u64(ItestClient *c, const char *method, json_object *params, const char *key,
                  const int *fds, size_t n_fds);
/* The error name of a call that is expected to fail; *ret is the reply (the caller puts it). */
const char *call_error(ItestClient *c, const char *method, json_object *params,
                       json_object **ret);
/* GetSession's "used" of resource (UINT64_MAX: not listed), and the session token. */
uint64_t usage_of(ItestClient *c, const char *resource, char *token, size_t n);
uint64_t map_fixed(ItestClient *c, uint64_t ioas, int memfd, uint64_t iova, uint64_t len);
uint64_t unmap(ItestClient *c, uint64_t ioas, uint64_t iova, uint64_t len);
uint64_t attach_by_name(ItestClient *c, const char *name);
void join(ItestClient *c, const char *token);
/* A call on org.iommud.Simulator, on a connection of its own, that must succeed. */
void simulator(Harness *h, const char *method, json_object *params);
/* A second connection of the session of token with a WatchFaults stream on it. */
ItestClient *watch_faults(Harness *h, const char *token);
/* One figure of org.iommud.Simulator.GetStats. */
uint64_t sim_stat(Harness *h, const char *name);
