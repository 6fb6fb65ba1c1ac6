/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The Varlink server's test fixture: a server on a real event loop and a
 * Unix socket, serving io.iommud.Test (echo, errors, streams, deferred calls,
 * fds, big replies), with counters of what it saw.  The tests run the server
 * and non-blocking clients in one thread and pump the loop until the
 * expected reply arrives, so the order of events is fixed.
 */

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include <event2/event.h>
#include <json-c/json.h>

#include "varlink-client.h"
#include "varlink-server.h"

#define PUMP_MAX 200000U

typedef struct Fixture {
        struct event_base *base;
        VarlinkServer *server;
        char dir[64];
        char path[128];
        int listen_fd; /* the server's, for looking at its event */

        unsigned n_connect, n_disconnect, n_echo, n_note, n_big;
        int pidfd_pid; /* the pid the last connection's pidfd names, -1 without pidfd */
        bool refuse;
        const struct ucred *as;  /* the credentials connections are added with, NULL: peer's */
        VarlinkCall *deferred;
        int more_without_more;
        bool refuse_with_error;  /* on_connect() refuses, saying why */
        VarlinkConnection *last_connection; /* the one on_connect() accepted last */
        int u64_first, u64_second; /* what U64's reply and its second attempt returned */
        char u64_method[128];      /* the name U64's call gave for its method */
} Fixture;

/* The IDL of io.iommud.Test, the interface the fixture serves. */
extern const char test_idl[];

/* (Re)starts the server with limits (NULL: the defaults) listening on fx->path. */
void fixture_start(Fixture *fx, const VarlinkLimits *limits);
int setup(void **state);
int teardown(void **state);
/* One non-blocking turn of the loop. */
void pump(Fixture *fx);
VarlinkClient *client_new(Fixture *fx);
/* Pumps the server until the client has a reply (1) or an error (negative). */
int wait_reply(Fixture *fx, VarlinkClient *c, VarlinkReply *reply);
void call(Fixture *fx, VarlinkClient *c, const char *method, const char *params_json,
          VarlinkReply *reply);
const char *str(json_object *o, const char *key);
int64_t num(json_object *o, const char *key);
/* Pumps until n disconnects were reported; fails the test when they never come. */
void pump_until_disconnects(Fixture *fx, unsigned n);
