/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * What the files of the Varlink server share: its objects and the functions
 * one file offers the others.  Only varlink-server*.c include it.
 */

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <event2/event.h>
#include <event2/event_struct.h>
#include <json-c/json.h>

#include "fdlist.h"
#include "varlink-server.h"
#include "varlink-wire.h"

/* Accepts per wakeup of a listening socket, so that one busy socket cannot starve the loop. */
#define ACCEPT_BATCH 32
/* Reads per wakeup of a connection, for the same reason. */
#define READ_BATCH 64

typedef struct Listener {
        VarlinkServer *server;
        int fd;
        struct event ev;
        bool armed;
} Listener;

typedef struct UidCount {
        uid_t uid;
        unsigned n;
} UidCount;

struct VarlinkServer {
        struct event_base *base;
        VarlinkLimits limits;
        void *userdata;
        VarlinkConnectFn on_connect;
        VarlinkDisconnectFn on_disconnect;
        const char *vendor, *product, *version, *url;

        const VarlinkInterface **interfaces;
        size_t n_interfaces;

        Listener **listeners;
        size_t n_listeners;

        VarlinkConnection *connections;
        unsigned n_connections;
        UidCount *uids;
        size_t n_uids;

        json_object *empty; /* the parameters of calls that sent none */
};

struct VarlinkConnection {
        unsigned n_ref;
        VarlinkServer *server; /* NULL once disconnected */
        VarlinkConnection *prev, *next;

        int fd;
        struct ucred ucred;
        int pidfd;
        void *userdata;

        VarlinkReader *reader;
        VarlinkWriter *writer;
        struct event ev_read, ev_write, ev_defer;
        bool read_armed, write_armed, events_assigned;

        bool read_eof;   /* the peer shut down its sending side */
        bool closing;    /* disconnect at the end of the current dispatch */
        bool connected;  /* on_connect() accepted it: on_disconnect() is due */
        bool dead;       /* disconnected, fd closed */
        bool in_process; /* connection_process() is on the stack */

        VarlinkCall *current; /* the call being served, one at a time */
        VarlinkCall *spare;   /* a finished call kept for reuse */
};

struct VarlinkCall {
        unsigned n_ref;
        VarlinkConnection *conn;
        json_object *message;
        FdList *fds;
        const char *method;
        const VarlinkInterface *iface;
        const VarlinkMethod *entry; /* NULL until the method is found */
        VarlinkCallFlags flags;
        bool done;
};

/* varlink-server.c */
unsigned server_uid_count(VarlinkServer *s, uid_t uid);
int server_uid_inc(VarlinkServer *s, uid_t uid);
void server_uid_dec(VarlinkServer *s, uid_t uid);
/* Adds or removes ev from the loop when want differs from *armed. */
void server_arm_event(struct event *ev, bool *armed, bool want);
/* Accepts on the listening sockets while there is room for another connection. */
void server_update_accept(VarlinkServer *s);

/* varlink-server-call.c */
/* Varlink names are [A-Za-z0-9.]; checking keeps a bad name from breaking the JSON we write. */
bool error_name_valid(const char *name);
/* The call got its final reply (or needs none): the connection may take the next. */
void connection_call_done(VarlinkConnection *c, VarlinkCall *call);

/* varlink-server-connection.c */
/* Has the connection processed from the loop soon (not from inside a caller's stack). */
void connection_schedule(VarlinkConnection *c);
void connection_disconnect(VarlinkConnection *c);

/* varlink-server-service.c */
extern const VarlinkInterface varlink_service_interface;
const VarlinkInterface *server_find_interface(VarlinkServer *s, const char *name, size_t len);
/* The error error_name with one string parameter {key: value}. */
int error_with_string(VarlinkCall *call, const char *error_name, const char *key,
                      const char *value);
