/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Helpers for the integration suite: start the real iommud binary on a
 * simulated topology in a private runtime directory, and talk to it over the
 * real socket with a deliberately small Varlink client that can also send
 * malformed traffic.
 */

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <json-c/json.h>

/*
 * fork() for tests: the child gets SIGKILL when the test process ends, so a test that fails
 * (or crashes) leaves no client or daemon behind to hold meson's output pipe until the timeout.
 * Returns what fork() returns, -errno on failure.
 */
pid_t itest_fork(void);
/*
 * In a child of itest_fork(): arms the same again.  The kernel clears it when the child
 * changes its uid or gid (a client that drops to nobody), so call it after setuid().
 */
void itest_die_with_parent(void);

typedef struct ItestDaemon {
        pid_t pid;
        char dir[256];      /* private runtime directory */
        char socket[320];
        char dev_root[320]; /* RUNTIME_DIR/sim/dev */
        char policy[320];
} ItestDaemon;

/*
 * Starts iommud (path from $IOMMUD_BINARY) with --sim topology and the policy
 * text, waits for READY=1 on a private NOTIFY_SOCKET.  Returns 0 or -errno.
 * $IOMMUD_ITEST_LOG_LEVEL sets its --log-level (default notice), and
 * $IOMMUD_ITEST_STDERR names a file its log is appended to.
 */
int itest_daemon_start(ItestDaemon *d, const char *topology, const char *policy_json);
/* Sends SIGTERM and reaps; returns the exit status (0 on a clean exit), or -1 on a signal. */
int itest_daemon_stop(ItestDaemon *d);
/* Number of fds the daemon has open (/proc/PID/fd). */
int itest_daemon_count_fds(const ItestDaemon *d);
/* Writes text to path, mode 0644 whatever the umask (daemons of other users read it). */
int itest_write_file(const char *path, const char *text);
/*
 * A policy granting the caller's uid every device, with the given quota overrides (JSON
 * members).  A device the host wants back is released at once (device-release-timeout-ms 0),
 * so a hotplug change has happened when the Simulator call that made it returns.
 */
char *itest_policy_for_self(const char *extra_grant_members);

typedef struct ItestClient {
        int fd;
        char *buf;
        size_t n, alloc;
        int rfds[32];
        size_t n_rfds;
} ItestClient;

int itest_client_connect(ItestClient **ret, const char *socket_path);
void itest_client_free(ItestClient *c);

/* Sends raw bytes (no NUL added) with optional fds, in one sendmsg(). */
int itest_client_send_raw(ItestClient *c, const void *data, size_t n, const int *fds,
                          size_t n_fds);
/* Sends {"method": method, "parameters": params} + NUL; takes params (NULL: none). */
int itest_client_send(ItestClient *c, const char *method, json_object *params, const int *fds,
                      size_t n_fds);
/* Receives one message; 0 and NULL at EOF.  Received fds land in c->rfds. */
int itest_client_recv(ItestClient *c, json_object **ret);
/* Call and wait for the reply: the whole reply object ({parameters} or {error, parameters}). */
json_object *itest_call(ItestClient *c, const char *method, json_object *params, const int *fds,
                        size_t n_fds);
/* True when the server has closed the connection (reads EOF or ECONNRESET). */
bool itest_client_is_closed(ItestClient *c);

/* Accessors on replies. */
const char *itest_reply_error(json_object *reply);          /* NULL on success */
json_object *itest_reply_params(json_object *reply);        /* borrowed */
uint64_t itest_get_u64(json_object *obj, const char *key);  /* aborts the test if absent */
const char *itest_get_string(json_object *obj, const char *key);

/* Builds parameters: itest_params("ioasId", json_object_new_int(1), ..., NULL). */
json_object *itest_params(const char *key, ...);

/* A memfd of size bytes. */
int itest_memfd(size_t size);
