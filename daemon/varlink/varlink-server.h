/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * VarlinkServer: the Varlink transport of the broker on a libevent loop.
 *
 * Semantics (what a client can rely on):
 *
 * - Calls on one connection are dispatched strictly in order, one at a time:
 *   the next call is not dispatched until the current one has sent its final
 *   reply.  This holds for "more" calls too, as in systemd's sd-varlink:
 *   Varlink replies carry no call id, so a stream that ran beside other calls
 *   would make its final reply indistinguishable from theirs.  A client that
 *   streams and calls at the same time uses two connections.
 * - "oneway" calls get no reply; the connection moves on as soon as the
 *   handler returns.  A call with both "oneway" and "more" is malformed.
 * - "more" calls get any number of replies with "continues": true, then one
 *   final reply (or an error).  A handler that did not get "more" must not
 *   send continuing replies (varlink_call_reply_more() returns -EPROTO).
 * - Malformed frames (invalid JSON, not an object, nesting deeper than 64,
 *   no "method", members of the wrong type, oversize, MSG_CTRUNC, more fds
 *   than allowed) disconnect that client only.  Unknown interface ⇒
 *   org.varlink.service.InterfaceNotFound, unknown method ⇒ MethodNotFound.
 * - Limits (VarlinkLimits), each with its own behaviour:
 *     max_message_bytes, max_fds_per_message: the client is disconnected;
 *     max_queued_output_bytes: no connection ever holds more unsent output.
 *       The server stops reading and dispatching a client's calls while its
 *       unsent replies exceed a small bound (VARLINK_PIPELINE_OUTPUT_BYTES, or
 *       half the limit when that is smaller), so a client that pipelines
 *       calls and reads nothing costs that bound, not the limit.  A
 *       continuing reply that does not fit is not queued
 *       (varlink_call_reply_more() returns -ENOBUFS); a final reply that does
 *       not fit becomes the interface's errno_error with ENOBUFS (which may
 *       take VARLINK_ERROR_HEADROOM bytes beyond the limit), and without an
 *       errno_error the client is disconnected;
 *     max_connections, reserved_connections: how many may connect (see
 *       varlink_server_admit()); a client refused is accepted, sent the
 *       quota error when the server has one (varlink_server_set_quota_error()),
 *       and closed.  How many one uid may hold is for on_connect() to decide
 *       (it may refuse with varlink_connection_send_error());
 *     idle_timeout_usec: a connection with no call in progress that made
 *       none for that long is closed, unless the idle hook says it holds
 *       something.
 * - When accept() fails for want of fds (EMFILE, ENFILE, ENOBUFS, ENOMEM)
 *   the server stops listening until a connection closes or a backoff timer
 *   (50 ms doubling to 2 s) fires, instead of being woken again at once.
 * - A handler that returns a negative errno without replying makes the server
 *   reply with the interface's errno_error (parameters {errno, message}), or
 *   close the connection when the interface names none.  A handler that
 *   returns 0 without replying and without a reference gets the same with EIO.
 * - "upgrade" is not supported: org.varlink.service.InvalidParameter {upgrade}.
 *
 * Lifetime: connections and calls are reference counted.  A handler that
 * wants to reply later takes a reference with varlink_call_ref() and drops it
 * after replying.  If the connection dies first, the call stays valid, the
 * reply functions return -ENOTCONN and nothing is sent.  on_disconnect() runs
 * exactly once per connection that on_connect() accepted, from the event
 * loop, never from inside a caller's stack; varlink_connection_close() only
 * schedules it.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <event2/event.h>
#include <json-c/json.h>

#include "json-dispatch.h"
#include "macros.h"

typedef struct VarlinkServer VarlinkServer;
typedef struct VarlinkConnection VarlinkConnection;
typedef struct VarlinkCall VarlinkCall;

#define VARLINK_ERROR_INTERFACE_NOT_FOUND "org.varlink.service.InterfaceNotFound"
#define VARLINK_ERROR_METHOD_NOT_FOUND "org.varlink.service.MethodNotFound"
#define VARLINK_ERROR_METHOD_NOT_IMPLEMENTED "org.varlink.service.MethodNotImplemented"
#define VARLINK_ERROR_INVALID_PARAMETER "org.varlink.service.InvalidParameter"
#define VARLINK_ERROR_PERMISSION_DENIED "org.varlink.service.PermissionDenied"
#define VARLINK_ERROR_EXPECTED_MORE "org.varlink.service.ExpectedMore"

typedef struct VarlinkLimits {
        size_t max_message_bytes;       /* per message, excluding the NUL */
        unsigned max_fds_per_message;   /* at most 253 (SCM_MAX_FD) */
        size_t max_queued_output_bytes; /* per connection, replies queued and not yet sent */
        unsigned max_connections;       /* in total */
        /* Of max_connections, how many only uid 0 and the server's own uid may take. */
        unsigned reserved_connections;
        uint64_t idle_timeout_usec;     /* 0: none */
} VarlinkLimits;

/* While a connection's unsent replies exceed this, its next call waits. */
#define VARLINK_PIPELINE_OUTPUT_BYTES (64U * 1024U)
/* What the ENOBUFS error ending a call whose reply did not fit may take beyond the limit. */
#define VARLINK_ERROR_HEADROOM 256U

#define VARLINK_LIMITS_DEFAULT                                                                     \
        ((VarlinkLimits){                                                                          \
                .max_message_bytes = 1024 * 1024,                                                  \
                .max_fds_per_message = 16,                                                         \
                .max_queued_output_bytes = 8 * 1024 * 1024,                                        \
                .max_connections = 4096,                                                           \
        })

typedef enum VarlinkCallFlags {
        VARLINK_CALL_ONEWAY = 1 << 0,
        VARLINK_CALL_MORE = 1 << 1,
} VarlinkCallFlags;

/*
 * A method handler.  parameters is the call's "parameters" object (an empty
 * object when the caller sent none), borrowed for the duration of the call
 * (json_object_get() it to keep it longer).  userdata is the interface's, or
 * the server's when the interface has none.
 * Returns 0 after replying or deferring (having taken a reference), or a
 * negative errno (see errno_error above).
 */
typedef int (*VarlinkMethodFn)(VarlinkCall *call, json_object *parameters, VarlinkCallFlags flags,
                               void *userdata);

typedef struct VarlinkMethod {
        const char *name;                /* "Map", without the interface */
        VarlinkMethodFn handler;
        /* What the handler decodes with varlink_call_dispatch(): the method's parameters,
         * checked against the IDL (varlink_idl_check_interface()).  NULL: none. */
        const JsonDispatchField *parameters;
        /* The handler reads its parameters only through varlink_call_dispatch(): its calls
         * may be read without a json-c tree (common/json-stream.h). */
        bool streamed;
        /* A streamed method's handler decodes into a zero-filled struct of this size (0: it
         * presets some of it): the server may decode a call into one before the handler runs,
         * straight from the bytes, and varlink_call_dispatch() hands it over. */
        size_t parameters_size;
        /* The interface's own marks, which the server does not read (the broker marks the
         * methods that change what it keeps across a restart). */
        unsigned tags;
} VarlinkMethod;

typedef struct VarlinkInterface {
        const char *name;                /* "org.iommud.Broker" */
        const char *description;         /* the IDL text, served by GetInterfaceDescription */
        const VarlinkMethod *methods;    /* terminated by an entry with name == NULL */
        const char *errno_error;         /* e.g. "org.iommud.Broker.SystemError", or NULL */
        /* Passed to this interface's handlers; NULL: the server's userdata.  Lets two
         * front ends with their own state share one server. */
        void *userdata;
} VarlinkInterface;

/*
 * Called when a client connects; cred comes from SO_PEERCRED, pidfd from
 * SO_PEERPIDFD (-1 when the kernel has none; owned by the connection, dup it
 * to keep it).  A negative return refuses the client: it is closed and
 * on_disconnect() is not called.
 */
typedef int (*VarlinkConnectFn)(VarlinkServer *s, VarlinkConnection *c, const struct ucred *cred,
                                int pidfd, void *userdata);
/* Called exactly once for every accepted connection when it goes away. */
typedef void (*VarlinkDisconnectFn)(VarlinkServer *s, VarlinkConnection *c, void *userdata);
/*
 * Called when a connection has been idle for idle_timeout_usec: true lets the server close
 * it, false keeps it (it holds something) until it has been idle that long again.
 */
typedef bool (*VarlinkIdleFn)(VarlinkServer *s, VarlinkConnection *c, void *userdata);

/* The limits are copied.  NULL means VARLINK_LIMITS_DEFAULT. */
int varlink_server_new(VarlinkServer **ret, struct event_base *base, const VarlinkLimits *limits);
/* Disconnects every client (running on_disconnect) and frees the server; accepts NULL. */
VarlinkServer *varlink_server_free(VarlinkServer *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(VarlinkServer *, varlink_server_free);

void varlink_server_set_userdata(VarlinkServer *s, void *userdata);
void *varlink_server_get_userdata(VarlinkServer *s);
void varlink_server_set_hooks(VarlinkServer *s, VarlinkConnectFn on_connect,
                              VarlinkDisconnectFn on_disconnect);
/* Without one, every connection idle for idle_timeout_usec is closed. */
void varlink_server_set_idle_hook(VarlinkServer *s, VarlinkIdleFn on_idle);
/*
 * The error a refused client is sent before the close, with the parameters
 * {resource: "connections", limit, used}, e.g. "org.iommud.Broker.QuotaExceeded";
 * the string must outlive the server.  NULL (the default): closed without a word.
 */
void varlink_server_set_quota_error(VarlinkServer *s, const char *error_name);
/*
 * Whether a client of uid may connect now: 0, or -EUSERS when the server is full for it
 * (max_connections, or max_connections - reserved_connections for uids other than 0 and the
 * server's own).  ret_limit and ret_used (may be NULL) say which limit, and what is used of it.
 */
int varlink_server_admit(VarlinkServer *s, uid_t uid, unsigned *ret_limit, unsigned *ret_used);
/* What org.varlink.service.GetInfo reports; the strings must outlive the server. */
void varlink_server_set_info(VarlinkServer *s, const char *vendor, const char *product,
                             const char *version, const char *url);

/* The interface (and everything it points to) must outlive the server.  -EEXIST for a duplicate. */
int varlink_server_add_interface(VarlinkServer *s, const VarlinkInterface *iface);

/* Starts accepting on a listening socket; the server takes fd (closing it on failure too). */
int varlink_server_listen_fd(VarlinkServer *s, int fd);
/*
 * Binds a new listening socket at path (replacing a stale socket file there,
 * refusing anything that is not a socket with -EEXIST) with the given mode.
 * Returns the fd, for varlink_server_listen_fd().
 */
int varlink_server_listen_unix(const char *path, mode_t mode);
/* Serves an already connected socket (e.g. one end of a socketpair); takes fd. */
int varlink_server_add_connection(VarlinkServer *s, int fd, VarlinkConnection **ret);
/*
 * The same for a socket served on behalf of someone else (a connection
 * handed out over D-Bus, whose peer is this process): the connection gets the
 * credentials as instead of SO_PEERCRED's and no pidfd: on_connect() and the
 * reserve for root see as->uid.
 */
int varlink_server_add_connection_as(VarlinkServer *s, int fd, const struct ucred *as,
                                     VarlinkConnection **ret);

unsigned varlink_server_n_connections(const VarlinkServer *s);
/* How often accept() failed for want of fds: once per pause, not once per loop turn. */
uint64_t varlink_server_n_accept_shortages(const VarlinkServer *s);

VarlinkConnection *varlink_connection_ref(VarlinkConnection *c);
VarlinkConnection *varlink_connection_unref(VarlinkConnection *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(VarlinkConnection *, varlink_connection_unref);
void varlink_connection_set_userdata(VarlinkConnection *c, void *userdata);
void *varlink_connection_get_userdata(VarlinkConnection *c);
const struct ucred *varlink_connection_get_ucred(VarlinkConnection *c);
/* The connection's socket, owned by it: for getsockopt(), never for I/O. */
int varlink_connection_get_fd(VarlinkConnection *c);
/* The peer's pidfd, owned by the connection; -EBADF when the kernel gave none. */
int varlink_connection_get_pidfd(VarlinkConnection *c);
size_t varlink_connection_get_queued_output(VarlinkConnection *c);
bool varlink_connection_is_connected(VarlinkConnection *c);
/* Schedules the disconnect for the end of the current dispatch; safe to call repeatedly. */
void varlink_connection_close(VarlinkConnection *c);
/*
 * For on_connect() refusing the client: queues the error error_name with params (taken;
 * NULL means {}) as the one message the client reads, before the close that the negative
 * return of on_connect() brings.  -EINVAL for an invalid name, -ENOBUFS, -ENOMEM.
 */
int varlink_connection_send_error(VarlinkConnection *c, const char *error_name,
                                  json_object *params);

VarlinkCall *varlink_call_ref(VarlinkCall *call);
VarlinkCall *varlink_call_unref(VarlinkCall *call);
DEFINE_TRIVIAL_CLEANUP_FUNC(VarlinkCall *, varlink_call_unref);
VarlinkConnection *varlink_call_get_connection(VarlinkCall *call);
/* The fully qualified method name, "org.iommud.Broker.Map". */
const char *varlink_call_get_method(VarlinkCall *call);
/* The tags of the call's VarlinkMethod entry; 0 before it is found. */
unsigned varlink_call_get_tags(VarlinkCall *call);
VarlinkCallFlags varlink_call_get_flags(VarlinkCall *call);
/* The number of fds sent with the call. */
size_t varlink_call_get_n_fds(VarlinkCall *call);
/* Moves the fd at index to the caller: -ENXIO if there is none, -EBADF if it was taken. */
int varlink_call_take_fd(VarlinkCall *call, size_t index, int *ret_fd);
/* The fd at index, still the call's (closed with it): -ENXIO if there is none, -EBADF if taken. */
int varlink_call_get_fd(VarlinkCall *call, size_t index);

/*
 * Replies.  Each takes ownership of params (NULL means {}) and of fds, even
 * on failure.  The final reply (reply, reply_with_fds, error) completes the
 * call; replying twice returns -EALREADY.  For oneway calls nothing is sent
 * and 0 is returned.  -ENOTCONN: the client is gone.
 */
int varlink_call_reply(VarlinkCall *call, json_object *params);
int varlink_call_reply_with_fds(VarlinkCall *call, json_object *params, int *fds, size_t n_fds);
/*
 * The final reply with the parameters already serialized: params is one JSON
 * object of len bytes (no NUL), written as it is.  For hot methods whose
 * replies are cheaper to format than to build; the caller vouches for the text.
 */
int varlink_call_reply_text(VarlinkCall *call, const char *params, size_t len);
/* The bytes of a {"<key>": <value>} reply before the value (key: a string literal). */
#define VARLINK_REPLY_U64_HEAD(key) "{\"parameters\":{\"" key "\":"
/*
 * The final reply {"<key>": <value>}, written straight into the connection's output: what
 * the most frequent methods answer.  key is a string literal that needs no escaping; its
 * part of the reply is put together by the compiler.
 */
#define varlink_call_reply_u64(call, key, value)                                              \
        varlink_call_reply_u64_head((call), VARLINK_REPLY_U64_HEAD(key),                       \
                                    STRLEN(VARLINK_REPLY_U64_HEAD(key)), (value))
/* The longest head varlink_call_reply_u64_head() takes. */
#define VARLINK_REPLY_HEAD_MAX 96
/* The same with its head written out: head_len bytes of VARLINK_REPLY_U64_HEAD(key). */
int varlink_call_reply_u64_head(VarlinkCall *call, const char *head, size_t head_len,
                                uint64_t value);
/* A "continues": true reply; -EPROTO unless the caller asked for more, -ENOBUFS when over the output limit. */
int varlink_call_reply_more(VarlinkCall *call, json_object *params);
/*
 * The same with the parameters already serialized: params is one JSON object
 * of len bytes (no NUL), written as it is.  For streams whose records are
 * cheaper to format than to build as objects; the caller vouches for the text.
 */
int varlink_call_reply_more_text(VarlinkCall *call, const char *params, size_t len);
/* error_name is a fully qualified Varlink error name, "org.iommud.Broker.NoSuchObject". */
int varlink_call_error(VarlinkCall *call, const char *error_name, json_object *params);
/* org.varlink.service.InvalidParameter {parameter}. */
int varlink_call_error_invalid_parameter(VarlinkCall *call, const char *parameter);

/*
 * varlink_call_dispatch() - decodes the call's parameters into target with table
 * (json_dispatch()) and takes the fds its FD_INDEX members name from the call, into their
 * JsonDispatchFd.fd (target then owns them).
 *
 * table is the one the method's VarlinkMethod lists, so that the IDL check covers what the
 * handler decodes.  On a client's mistake (a member unknown, missing, mistyped, out of range,
 * an fd index the call did not carry) replies org.varlink.service.InvalidParameter naming
 * the member, with the sentence in the debug log, and returns -EINVAL: the handler returns
 * that, the call being answered.  -ENOMEM and the like without a reply.
 */
int varlink_call_dispatch(VarlinkCall *call, json_object *parameters,
                          const JsonDispatchField *table, void *target);
/*
 * InvalidParameter {parameter} for a value the method judges itself ("exactly one of fd and
 * device"); the sentence goes to the debug log.  -EINVAL after replying, like
 * varlink_call_dispatch().
 */
int varlink_call_invalid_parameter(VarlinkCall *call, const char *parameter, const char *fmt, ...)
        _printf_(3, 4);
/* The interface's errno_error {errno, message}; falls back to closing the connection. */
int varlink_call_error_errno(VarlinkCall *call, int error, const char *message);
