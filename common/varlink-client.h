/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * A small Varlink client for libiommud, iommuctl and the tests.
 *
 * Blocking use: varlink_client_call() sends one call and waits for its reply.
 * Streams: varlink_client_send(..., VARLINK_CLIENT_MORE) then
 * varlink_client_wait() until a reply has continues == false.
 * Event-loop use: poll varlink_client_get_fd() for varlink_client_get_events()
 * and call varlink_client_process() whenever it is ready; it never blocks.
 *
 * A reply that is a Varlink error is not a failure of these functions: they
 * return 0 and reply->error names it.  Negative errnos mean the connection is
 * unusable (-ECONNRESET, -EPIPE: the server hung up).  What a server sent
 * before hanging up is read before that is reported: a server that refuses a
 * connection says why and closes, and a call sent after the close gets that
 * error as its reply.
 */

#include <stdbool.h>
#include <stddef.h>

#include <json-c/json.h>

#include "fdlist.h"
#include "macros.h"

typedef struct VarlinkClient VarlinkClient;

typedef struct VarlinkReply {
        json_object *message;    /* the whole reply; owns the rest */
        json_object *parameters; /* never NULL after a successful read: {} when absent */
        const char *error;       /* the error name, NULL for a normal reply */
        bool continues;
        FdList *fds;             /* fds sent with the reply, NULL if none */
} VarlinkReply;

#define VARLINK_REPLY_INIT ((VarlinkReply){})
/* Releases what a reply holds (closing fds nobody took) and resets it. */
void varlink_reply_clear(VarlinkReply *r);

typedef enum VarlinkClientFlags {
        VARLINK_CLIENT_ONEWAY = 1 << 0,
        VARLINK_CLIENT_MORE = 1 << 1,
} VarlinkClientFlags;

/* Largest reply the client accepts. */
#define VARLINK_CLIENT_MAX_MESSAGE (16U * 1024U * 1024U)

int varlink_client_connect(VarlinkClient **ret, const char *path);
/* Wraps a connected SOCK_STREAM socket; takes fd (also on failure). */
int varlink_client_new_from_fd(VarlinkClient **ret, int fd);
VarlinkClient *varlink_client_free(VarlinkClient *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(VarlinkClient *, varlink_client_free);

int varlink_client_get_fd(VarlinkClient *c);
/* POLLIN, plus POLLOUT while calls are queued unsent. */
short varlink_client_get_events(VarlinkClient *c);
/* Calls whose final reply has not arrived (oneway calls are not counted). */
size_t varlink_client_n_pending(VarlinkClient *c);

/*
 * varlink_client_send() - queues a call and sends what the socket takes now.
 * @params: borrowed; NULL means {}.
 * @fds: borrowed; duplicates are sent with the call.
 */
int varlink_client_send(VarlinkClient *c, const char *method, json_object *params, const int *fds,
                        size_t n_fds, VarlinkClientFlags flags);

/* Never blocks: returns 1 with the next reply, 0 when none is complete yet. */
int varlink_client_process(VarlinkClient *c, VarlinkReply *ret);
/* Blocks until the next reply (or until timeout_ms, -ETIMEDOUT; -1 waits forever). */
int varlink_client_wait(VarlinkClient *c, int timeout_ms, VarlinkReply *ret);

/* Sends one call and waits for its (first) reply.  Returns 0 for any reply, errors included. */
int varlink_client_call(VarlinkClient *c, const char *method, json_object *params, const int *fds,
                        size_t n_fds, VarlinkReply *ret);
