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
#include "json-stream.h"
#include "varlink-server.h"
#include "varlink-wire.h"

/* Accepts per wakeup of a listening socket, so that one busy socket cannot starve the loop. */
#define ACCEPT_BATCH 32
/* Reads per wakeup of a connection, for the same reason. */
#define READ_BATCH 64
/*
 * Values (members' names included) a call read by the streaming reader may hold; longer ones
 * go to json-c.  A MapBatch of 64 areas takes 13 a area: it fits.
 */
#define STREAM_TAPE 1024
/* The largest parameter struct (VarlinkMethod.parameters_size) decoded before the handler runs. */
#define STREAM_PARAMS_MAX 256
/* The longest method name such a call may carry (kept in the call for its logs). */
#define STREAM_METHOD_MAX 96

typedef struct MethodSlot MethodSlot;

typedef struct Listener {
        VarlinkServer *server;
        int fd;
        struct event ev;
        bool armed;
} Listener;

struct VarlinkServer {
        struct event_base *base;
        VarlinkLimits limits;
        size_t pipeline_bytes; /* see connection_pipeline_bytes() */
        void *userdata;
        VarlinkConnectFn on_connect;
        VarlinkDisconnectFn on_disconnect;
        VarlinkIdleFn on_idle;
        const char *quota_error;
        const char *vendor, *product, *version, *url;

        const VarlinkInterface **interfaces;
        size_t n_interfaces;
        MethodSlot *methods; /* the index of their methods' full names */
        size_t methods_mask;

        Listener **listeners;
        size_t n_listeners;
        /* accept() ran out of fds: not listening until a close or the retry timer. */
        bool accept_paused;
        unsigned accept_backoff_ms;
        uint64_t n_accept_shortages; /* accept() calls that failed for want of fds */
        struct event *accept_retry;

        VarlinkConnection *connections;
        unsigned n_connections;

        json_object *empty; /* the parameters of calls that sent none */

        /* The streaming reader's state: one call at a time is read, on the loop. */
        JsonStream stream;
        JsonStreamToken tape[STREAM_TAPE];
        /* The parameters of a streamed call decoded before its handler runs, which takes them. */
        union {
                max_align_t align;
                uint8_t bytes[STREAM_PARAMS_MAX];
        } decoded;
        char *scratch;      /* a copy of the message, decoded in place */
        size_t scratch_size;
        /* The streamed method the last call named (NULL: none since the index was built),
         * compared in place with the next call's: clients mostly call one method in a row. */
        struct {
                const VarlinkMethod *method;
                const VarlinkInterface *iface;
                const JsonCursorPlan *plan;
                size_t len;
                char name[STREAM_METHOD_MAX];
        } last;
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
        struct event ev_read, ev_write, ev_defer, ev_idle;
        bool read_armed, write_armed, idle_armed, events_assigned;
        uint64_t last_active_usec; /* CLOCK_MONOTONIC of the last call's start or end */

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
        const char *method; /* NULL: not written down yet (varlink_call_get_method()) */
        const VarlinkInterface *iface;
        const VarlinkMethod *entry; /* NULL until the method is found */
        VarlinkCallFlags flags;
        bool done;
        /* A call read by the streaming reader: its parameters on the server's tape, until
         * the handler returns. */
        const JsonStreamToken *stream_params;
        void *decoded; /* or its parameters decoded already, until varlink_call_dispatch() */
        /* Its method name, once logs or errors asked for it; not zeroed on reuse. */
        char method_name[STREAM_METHOD_MAX];
};

/* varlink-server.c */
/* Adds or removes ev from the loop when want differs from *armed. */
void server_arm_event(struct event *ev, bool *armed, bool want);

/* varlink-server-accept.c */
/* Listens unless accepting is paused for want of fds. */
void server_update_accept(VarlinkServer *s);
/* A connection closed, releasing an fd: accepting resumes if it was paused. */
void server_fd_released(VarlinkServer *s);
/* Sends the quota error {resource: "connections", limit, used} on fd, if the server has one. */
void server_send_refusal(VarlinkServer *s, int fd, unsigned limit, unsigned used);
void server_listeners_free(VarlinkServer *s);

/* varlink-server-call.c */
/* Varlink names are [A-Za-z0-9.]; checking keeps a bad name from breaking the JSON we write. */
bool error_name_valid(const char *name);
/* The call got its final reply (or needs none): the connection may take the next. */
void connection_call_done(VarlinkConnection *c, VarlinkCall *call);
/*
 * Appends one reply (error NULL: not an error) to w, or nothing on failure; params_text
 * (params_len bytes) stands in for params when not NULL.  params is not taken.
 */
int server_reply_append(VarlinkWriter *w, const char *error, json_object *params,
                        const char *params_text, size_t params_len, bool continues);

/* A call's envelope: what it asks for and how it wants its replies. */
typedef struct Envelope {
        const char *method;
        json_object *params;
        bool oneway, more, upgrade;
} Envelope;

/* varlink-server-connection.c */
/* The call of message, which it takes with fds; the connection holds a reference too. */
int server_call_new(VarlinkConnection *c, json_object *message, FdList *fds, const Envelope *e,
                    VarlinkCall **ret);
/* After the handler: a call it neither answered nor kept gets an error, not silence. */
int server_call_finish(VarlinkConnection *c, VarlinkCall *call, int r);
/* Has the connection processed from the loop soon (not from inside a caller's stack). */
void connection_schedule(VarlinkConnection *c);
void connection_disconnect(VarlinkConnection *c);
/* The connection starts or ends a call now: its idle time starts again. */
void connection_mark_active(VarlinkConnection *c);
/* While its unsent replies exceed this, a connection's next call waits. */
size_t connection_pipeline_bytes(const VarlinkServer *s);

/* varlink-server-stream.c */
/*
 * Serves a call of a streamed method without a json-c tree: 1 when it did, 0 when the
 * message is not one for this path (json-c reads it then), or a negative errno.  Takes *fds
 * only when it serves the call.
 */
int connection_dispatch_stream(VarlinkConnection *c, const char *text, size_t len,
                               FdList **fds);

/* varlink-server-methods.c */
/* Indexes the methods of every interface the server has; after each one added. */
int server_index_methods(VarlinkServer *s);
/* The method INTERFACE.NAME (len bytes), its interface and (ret_plan non-NULL) the cursor's
 * plan of its parameters, NULL for a method not streamed; NULL when there is none. */
const VarlinkMethod *server_find_method(VarlinkServer *s, const char *name, size_t len,
                                        const VarlinkInterface **ret_iface,
                                        const JsonCursorPlan **ret_plan);
/* Frees the index of methods and their plans. */
void server_methods_free(VarlinkServer *s);

/* varlink-server-service.c */
extern const VarlinkInterface varlink_service_interface;
const VarlinkInterface *server_find_interface(VarlinkServer *s, const char *name, size_t len);
/* The error error_name with one string parameter {key: value}. */
int error_with_string(VarlinkCall *call, const char *error_name, const char *key,
                      const char *value);
