/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/event_struct.h>
#include <json-c/json.h>

#include "assert-util.h"
#include "fdlist.h"
#include "json-util.h"
#include "log.h"
#include "varlink-server.h"
#include "varlink-wire.h"

#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77
#endif

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

static const char varlink_service_idl[] =
        "# The interface every Varlink service implements: what the service is\n"
        "# and which interfaces it serves.\n"
        "interface org.varlink.service\n"
        "\n"
        "# Describes the service and lists its interfaces.\n"
        "method GetInfo() -> (\n"
        "  vendor: string,\n"
        "  product: string,\n"
        "  version: string,\n"
        "  url: string,\n"
        "  interfaces: []string\n"
        ")\n"
        "\n"
        "# Returns the IDL text of one of the interfaces.\n"
        "method GetInterfaceDescription(interface: string) -> (description: string)\n"
        "\n"
        "# The interface is not served here.\n"
        "error InterfaceNotFound (interface: string)\n"
        "\n"
        "# The interface has no method of that name.\n"
        "error MethodNotFound (method: string)\n"
        "\n"
        "# The interface defines the method but the service does not implement it.\n"
        "error MethodNotImplemented (method: string)\n"
        "\n"
        "# A parameter is missing or has the wrong type or value.\n"
        "error InvalidParameter (parameter: string)\n"
        "\n"
        "# The caller may not call this method.\n"
        "error PermissionDenied ()\n"
        "\n"
        "# The method must be called with \"more\".\n"
        "error ExpectedMore ()\n";

static int service_get_info(VarlinkCall *call, json_object *parameters, VarlinkCallFlags flags,
                            void *userdata);
static int service_get_interface_description(VarlinkCall *call, json_object *parameters,
                                             VarlinkCallFlags flags, void *userdata);

static const JsonDispatchField get_interface_description_parameters[] = {
        { "interface", JSON_DISPATCH_STRING, JSON_DISPATCH_REQUIRED, 0 },
        {},
};

static const VarlinkMethod varlink_service_methods[] = {
        { "GetInfo", service_get_info },
        { "GetInterfaceDescription", service_get_interface_description,
          get_interface_description_parameters },
        {},
};

static const VarlinkInterface varlink_service_interface = {
        .name = "org.varlink.service",
        .description = varlink_service_idl,
        .methods = varlink_service_methods,
};

static void connection_schedule(VarlinkConnection *c);
static void connection_disconnect(VarlinkConnection *c);
static void server_update_accept(VarlinkServer *s);

/* Calls */

static VarlinkCall *call_free(VarlinkCall *call) {
        VarlinkConnection *c = call->conn;

        json_object_put(call->message);
        fdlist_free(call->fds);
        *call = (VarlinkCall){};
        /* Keep one finished call per connection so that steady traffic allocates none. */
        if (c && !c->spare)
                c->spare = call;
        else
                free(call);
        varlink_connection_unref(c);
        return NULL;
}

VarlinkCall *varlink_call_ref(VarlinkCall *call) {
        if (call)
                call->n_ref++;
        return call;
}

VarlinkCall *varlink_call_unref(VarlinkCall *call) {
        if (!call || --call->n_ref > 0)
                return NULL;
        return call_free(call);
}

VarlinkConnection *varlink_call_get_connection(VarlinkCall *call) {
        assert_return(call, NULL);
        return call->conn;
}

const char *varlink_call_get_method(VarlinkCall *call) {
        assert_return(call, NULL);
        return call->method;
}

VarlinkCallFlags varlink_call_get_flags(VarlinkCall *call) {
        assert_return(call, 0);
        return call->flags;
}

size_t varlink_call_get_n_fds(VarlinkCall *call) {
        assert_return(call, 0);
        return fdlist_count(call->fds);
}

int varlink_call_take_fd(VarlinkCall *call, size_t index, int *ret_fd) {
        int fd;

        assert_return(call && ret_fd, -EINVAL);
        fd = fdlist_take(call->fds, index);
        if (fd < 0)
                return fd;
        *ret_fd = fd;
        return 0;
}

/* Varlink names are [A-Za-z0-9.]; checking keeps a bad name from breaking the JSON we write. */
static bool error_name_valid(const char *name) {
        if (!name || !*name || !strchr(name, '.'))
                return false;
        for (const char *p = name; *p; p++)
                if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                      (*p >= '0' && *p <= '9') || *p == '.'))
                        return false;
        return true;
}

static void connection_call_done(VarlinkConnection *c, VarlinkCall *call) {
        call->done = true;
        if (c->current == call) {
                c->current = NULL;
                varlink_call_unref(call);
        }
        connection_schedule(c);
}

/* params_text (params_len bytes, one JSON object) stands in for params when not NULL. */
static int call_send(VarlinkCall *call, const char *error, json_object *params,
                     const char *params_text, size_t params_len, bool continues, FdList *fds_in) {
        _cleanup_(fdlist_freep) FdList *fds = fds_in;
        VarlinkConnection *c;
        VarlinkWriter *w;
        int r;

        if (!call)
                json_object_put(params); /* taken in every case, as promised */
        assert_return(call, -EINVAL);
        c = call->conn;
        if (call->done) {
                json_object_put(params);
                return -EALREADY;
        }
        if (!c || c->dead) {
                json_object_put(params);
                if (!continues)
                        call->done = true;
                return -ENOTCONN;
        }
        if (continues && !(call->flags & VARLINK_CALL_MORE)) {
                json_object_put(params);
                return -EPROTO;
        }
        if (call->flags & VARLINK_CALL_ONEWAY) {
                json_object_put(params);
                return 0;
        }
        if (continues && varlink_writer_queued(c->writer) >= c->server->limits.max_queued_output_bytes) {
                json_object_put(params);
                return -ENOBUFS;
        }
        if (error && !error_name_valid(error)) {
                json_object_put(params);
                return -EINVAL;
        }

        w = c->writer;
        if (error) {
                r = varlink_writer_append(w, "{\"error\":\"", 10);
                if (r >= 0)
                        r = varlink_writer_append(w, error, strlen(error));
                if (r >= 0)
                        r = varlink_writer_append(w, "\",\"parameters\":", 15);
        } else
                r = varlink_writer_append(w, "{\"parameters\":", 14);
        if (r >= 0 && params_text)
                r = varlink_writer_append(w, params_text, params_len);
        else if (r >= 0)
                r = params ? varlink_writer_append_json(w, params) : varlink_writer_append(w, "{}", 2);
        json_object_put(params);
        if (r >= 0 && continues)
                r = varlink_writer_append(w, ",\"continues\":true", 17);
        if (r >= 0)
                r = varlink_writer_append(w, "}", 1);
        if (r < 0) {
                varlink_writer_abort(w);
                return r;
        }
        r = varlink_writer_end(w, TAKE_PTR(fds));
        if (r < 0)
                return r;

        if (!continues)
                connection_call_done(c, call);
        else
                connection_schedule(c);
        return 0;
}

int varlink_call_reply(VarlinkCall *call, json_object *params) {
        return call_send(call, NULL, params, NULL, 0, false, NULL);
}

int varlink_call_reply_text(VarlinkCall *call, const char *params, size_t len) {
        assert_return(params && len > 0, -EINVAL);
        return call_send(call, NULL, NULL, params, len, false, NULL);
}

int varlink_call_reply_with_fds(VarlinkCall *call, json_object *params, int *fds, size_t n_fds) {
        FdList *l = NULL;
        int r;

        assert_return(fds || n_fds == 0, -EINVAL);
        if (n_fds > VARLINK_FDS_MAX) {
                r = -E2BIG;
                goto fail;
        }
        r = fdlist_new(&l, fds, n_fds);
        if (r < 0)
                goto fail;
        return call_send(call, NULL, params, NULL, 0, false, l);
fail:
        for (size_t i = 0; i < n_fds; i++)
                safe_close(fds[i]);
        json_object_put(params);
        return r;
}

int varlink_call_reply_more(VarlinkCall *call, json_object *params) {
        return call_send(call, NULL, params, NULL, 0, true, NULL);
}

int varlink_call_reply_more_text(VarlinkCall *call, const char *params, size_t len) {
        assert_return(params && len > 0, -EINVAL);
        return call_send(call, NULL, NULL, params, len, true, NULL);
}

int varlink_call_error(VarlinkCall *call, const char *error_name, json_object *params) {
        return call_send(call, error_name, params, NULL, 0, false, NULL);
}

int varlink_call_error_invalid_parameter(VarlinkCall *call, const char *parameter) {
        json_object *p;

        assert_return(call && parameter, -EINVAL);
        p = json_object_new_object();
        if (!p || json_util_add(p, "parameter", json_object_new_string(parameter)) < 0) {
                json_object_put(p);
                return -ENOMEM;
        }
        return varlink_call_error(call, VARLINK_ERROR_INVALID_PARAMETER, p);
}

int varlink_call_invalid_parameter(VarlinkCall *call, const char *parameter, const char *fmt, ...) {
        char reason[ERROR_MESSAGE_MAX];
        va_list ap;
        int r;

        assert_return(call && parameter && fmt, -EINVAL);

        va_start(ap, fmt);
        (void)vsnprintf(reason, sizeof(reason), fmt, ap);
        va_end(ap);
        /* The standard error carries only the parameter's name; the sentence goes to the log. */
        log_debug("%s: invalid parameter '%s': %s", call->method, parameter, reason);
        r = varlink_call_error_invalid_parameter(call, parameter);
        return r < 0 ? r : -EINVAL;
}

/* Closes the fds dispatch took for the FD_INDEX members before end. */
static void dispatch_close_fds(const JsonDispatchField *table, const JsonDispatchField *end,
                               void *target) {
        for (const JsonDispatchField *f = table; f < end; f++)
                if (f->type == JSON_DISPATCH_FD_INDEX) {
                        JsonDispatchFd *d = (JsonDispatchFd *)((uint8_t *)target + f->offset);

                        d->fd = safe_close(d->fd);
                }
}

static int dispatch_take_fds(VarlinkCall *call, const JsonDispatchField *table, void *target) {
        for (const JsonDispatchField *f = table; f && f->name; f++) {
                JsonDispatchFd *d = (JsonDispatchFd *)((uint8_t *)target + f->offset);
                int r;

                if (f->type != JSON_DISPATCH_FD_INDEX || d->index == JSON_DISPATCH_FD_NONE)
                        continue;
                r = varlink_call_take_fd(call, d->index, &d->fd);
                if (r >= 0)
                        continue;
                dispatch_close_fds(table, f, target);
                if (r == -ENXIO)
                        return varlink_call_invalid_parameter(
                                call, f->name, "fd index %" PRIu32 " does not exist, the call "
                                "carried %zu fd(s)", d->index, varlink_call_get_n_fds(call));
                return varlink_call_invalid_parameter(call, f->name, "fd index %" PRIu32
                                                      " was already used by another parameter",
                                                      d->index);
        }
        return 0;
}

int varlink_call_dispatch(VarlinkCall *call, json_object *parameters,
                          const JsonDispatchField *table, void *target) {
        const char *field = NULL;
        Error e = ERROR_INIT;
        int r;

        assert_return(call && parameters, -EINVAL);
        /* The IDL check covers the method's table: decoding with another one escapes it. */
        assert_return(!call->entry || call->entry->parameters == table, -EINVAL);

        r = json_dispatch(parameters, table, target, "", &field, &e);
        if (r == -EINVAL)
                return varlink_call_invalid_parameter(call, field ?: "parameters", "%s",
                                                      error_message(&e));
        if (r < 0)
                return r;
        return dispatch_take_fds(call, table, target);
}

int varlink_call_error_errno(VarlinkCall *call, int error, const char *message) {
        json_object *p;
        int r;

        assert_return(call, -EINVAL);
        error = error < 0 ? -error : error;
        if (!call->iface || !call->iface->errno_error) {
                if (call->done)
                        return -EALREADY;
                /* Nothing to tell the client in its own terms: a clean disconnect is the answer. */
                if (call->conn && !call->conn->dead) {
                        log_debug("%s failed without a reply (%s), disconnecting the client",
                                  call->method, strerror(error));
                        varlink_connection_close(call->conn);
                        connection_call_done(call->conn, call);
                } else
                        call->done = true;
                return 0;
        }
        p = json_object_new_object();
        if (!p)
                return -ENOMEM;
        r = json_util_add(p, "errno", json_object_new_int(error));
        if (r >= 0)
                r = json_util_add(p, "message", json_object_new_string(message ? message : strerror(error)));
        if (r < 0) {
                json_object_put(p);
                return r;
        }
        return varlink_call_error(call, call->iface->errno_error, p);
}

/* org.varlink.service */

static int service_get_info(VarlinkCall *call, json_object *parameters, VarlinkCallFlags flags,
                            void *userdata) {
        VarlinkServer *s = call->conn->server;
        json_object *p, *list;
        int r;

        r = varlink_call_dispatch(call, parameters, NULL, NULL);
        if (r < 0)
                return r;
        p = json_object_new_object();
        list = json_object_new_array();
        if (!p || !list) {
                json_object_put(p);
                json_object_put(list);
                return -ENOMEM;
        }
        r = json_util_add(p, "interfaces", list);
        for (size_t i = 0; r >= 0 && i < s->n_interfaces; i++)
                if (json_object_array_add(list, json_object_new_string(s->interfaces[i]->name)) < 0)
                        r = -ENOMEM;
        if (r >= 0)
                r = json_util_add(p, "vendor", json_object_new_string(s->vendor));
        if (r >= 0)
                r = json_util_add(p, "product", json_object_new_string(s->product));
        if (r >= 0)
                r = json_util_add(p, "version", json_object_new_string(s->version));
        if (r >= 0)
                r = json_util_add(p, "url", json_object_new_string(s->url));
        if (r < 0) {
                json_object_put(p);
                return r;
        }
        return varlink_call_reply(call, p);
}

static const VarlinkInterface *server_find_interface(VarlinkServer *s, const char *name,
                                                     size_t len) {
        for (size_t i = 0; i < s->n_interfaces; i++)
                if (strlen(s->interfaces[i]->name) == len &&
                    memcmp(s->interfaces[i]->name, name, len) == 0)
                        return s->interfaces[i];
        return NULL;
}

static int error_with_string(VarlinkCall *call, const char *error, const char *key, const char *value) {
        json_object *p = json_object_new_object();

        if (!p || json_util_add(p, key, json_object_new_string(value)) < 0) {
                json_object_put(p);
                return -ENOMEM;
        }
        return varlink_call_error(call, error, p);
}

static int service_get_interface_description(VarlinkCall *call, json_object *parameters,
                                             VarlinkCallFlags flags, void *userdata) {
        const VarlinkInterface *iface;
        const char *name = NULL;
        json_object *p;
        int r;

        r = varlink_call_dispatch(call, parameters, get_interface_description_parameters,
                                  &name);
        if (r < 0)
                return r;
        iface = server_find_interface(call->conn->server, name, strlen(name));
        if (!iface)
                return error_with_string(call, VARLINK_ERROR_INTERFACE_NOT_FOUND, "interface", name);
        p = json_object_new_object();
        if (!p || json_util_add(p, "description", json_object_new_string(iface->description)) < 0) {
                json_object_put(p);
                return -ENOMEM;
        }
        return varlink_call_reply(call, p);
}

/* Connections */

VarlinkConnection *varlink_connection_ref(VarlinkConnection *c) {
        if (c)
                c->n_ref++;
        return c;
}

VarlinkConnection *varlink_connection_unref(VarlinkConnection *c) {
        if (!c || --c->n_ref > 0)
                return NULL;
        /* Only a disconnected connection can lose its last reference: the server holds one. */
        varlink_reader_free(c->reader);
        varlink_writer_free(c->writer);
        safe_close(c->pidfd);
        safe_close(c->fd);
        free(c->spare);
        free(c);
        return NULL;
}

void varlink_connection_set_userdata(VarlinkConnection *c, void *userdata) {
        assert(c);
        c->userdata = userdata;
}

void *varlink_connection_get_userdata(VarlinkConnection *c) {
        assert_return(c, NULL);
        return c->userdata;
}

const struct ucred *varlink_connection_get_ucred(VarlinkConnection *c) {
        assert_return(c, NULL);
        return &c->ucred;
}

int varlink_connection_get_pidfd(VarlinkConnection *c) {
        assert_return(c, -EBADF);
        return c->pidfd >= 0 ? c->pidfd : -EBADF;
}

size_t varlink_connection_get_queued_output(VarlinkConnection *c) {
        assert_return(c, 0);
        return c->writer ? varlink_writer_queued(c->writer) : 0;
}

bool varlink_connection_is_connected(VarlinkConnection *c) {
        assert_return(c, false);
        return !c->dead && !c->closing;
}

void varlink_connection_close(VarlinkConnection *c) {
        assert(c);
        if (c->dead || c->closing)
                return;
        c->closing = true;
        connection_schedule(c);
}

static void connection_schedule(VarlinkConnection *c) {
        /* Inside connection_process() the loop picks the change up itself. */
        if (c->dead || c->in_process)
                return;
        event_active(&c->ev_defer, EV_TIMEOUT, 1);
}

static void arm(struct event *ev, bool *armed, bool want) {
        if (want == *armed)
                return;
        if (want)
                (void)event_add(ev, NULL);
        else
                (void)event_del(ev);
        *armed = want;
}

static void connection_update_events(VarlinkConnection *c) {
        size_t queued = varlink_writer_queued(c->writer);
        bool want_read;

        /* Read while nothing complete is waiting, so that a hangup is seen even during a call. */
        want_read = !c->read_eof && !c->closing &&
                    queued < c->server->limits.max_queued_output_bytes &&
                    !varlink_reader_has_message(c->reader);
        arm(&c->ev_read, &c->read_armed, want_read);
        arm(&c->ev_write, &c->write_armed, queued > 0);
}

static UidCount *server_uid_find(VarlinkServer *s, uid_t uid) {
        for (size_t i = 0; i < s->n_uids; i++)
                if (s->uids[i].uid == uid)
                        return &s->uids[i];
        return NULL;
}

static unsigned server_uid_count(VarlinkServer *s, uid_t uid) {
        UidCount *u = server_uid_find(s, uid);

        return u ? u->n : 0;
}

static int server_uid_inc(VarlinkServer *s, uid_t uid) {
        UidCount *u = server_uid_find(s, uid);

        if (u) {
                u->n++;
                return 0;
        }
        u = realloc(s->uids, (s->n_uids + 1) * sizeof(UidCount));
        if (!u)
                return -ENOMEM;
        s->uids = u;
        s->uids[s->n_uids++] = (UidCount){ .uid = uid, .n = 1 };
        return 0;
}

static void server_uid_dec(VarlinkServer *s, uid_t uid) {
        for (size_t i = 0; i < s->n_uids; i++)
                if (s->uids[i].uid == uid) {
                        if (--s->uids[i].n == 0)
                                s->uids[i] = s->uids[--s->n_uids];
                        return;
                }
}

static void connection_unlink(VarlinkConnection *c) {
        VarlinkServer *s = c->server;

        if (c->prev)
                c->prev->next = c->next;
        else
                s->connections = c->next;
        if (c->next)
                c->next->prev = c->prev;
        c->prev = c->next = NULL;
        s->n_connections--;
        server_uid_dec(s, c->ucred.uid);
}

static void connection_disconnect(VarlinkConnection *c) {
        VarlinkServer *s = c->server;
        VarlinkCall *call;

        if (c->dead)
                return;
        c->dead = true;
        if (c->events_assigned) {
                (void)event_del(&c->ev_read);
                (void)event_del(&c->ev_write);
                (void)event_del(&c->ev_defer);
        }
        c->fd = safe_close(c->fd);
        /* Received fds nobody took and unsent replies go now, not when the last call ref does. */
        c->reader = varlink_reader_free(c->reader);
        c->writer = varlink_writer_free(c->writer);

        connection_unlink(c);
        if (c->connected && s->on_disconnect)
                s->on_disconnect(s, c, s->userdata);
        c->connected = false;

        call = TAKE_PTR(c->current);
        varlink_call_unref(call);
        c->server = NULL;
        server_update_accept(s);
        varlink_connection_unref(c); /* the server's reference */
}

/* Reads the call's envelope; -EBADMSG for anything malformed. */
static int connection_dispatch(VarlinkConnection *c, json_object *message, FdList *fds) {
        VarlinkServer *s = c->server;
        _cleanup_(varlink_call_unrefp) VarlinkCall *call = NULL;
        json_object *params = NULL;
        const VarlinkMethod *m = NULL;
        const char *method, *dot;
        bool oneway = false, more = false, upgrade = false;
        int r;

        if (json_util_get_string(message, "method", 0, &method, NULL) < 0 ||
            json_util_get_object(message, "parameters", JSON_UTIL_OPTIONAL, &params, NULL) < 0 ||
            json_util_get_bool(message, "oneway", JSON_UTIL_OPTIONAL, &oneway, NULL) < 0 ||
            json_util_get_bool(message, "more", JSON_UTIL_OPTIONAL, &more, NULL) < 0 ||
            json_util_get_bool(message, "upgrade", JSON_UTIL_OPTIONAL, &upgrade, NULL) < 0 ||
            (oneway && more)) {
                log_debug("Malformed call envelope from pid %d, disconnecting", (int)c->ucred.pid);
                json_object_put(message);
                fdlist_free(fds);
                return -EBADMSG;
        }

        call = c->spare ? TAKE_PTR(c->spare) : calloc(1, sizeof(*call));
        if (!call) {
                json_object_put(message);
                fdlist_free(fds);
                return -ENOMEM;
        }
        *call = (VarlinkCall){
                .n_ref = 1,
                .conn = varlink_connection_ref(c),
                .message = message,
                .fds = fds,
                .method = method,
                .flags = (oneway ? VARLINK_CALL_ONEWAY : 0) | (more ? VARLINK_CALL_MORE : 0),
        };
        /* One reference is the connection's (until the final reply), one is ours (until return). */
        c->current = varlink_call_ref(call);

        dot = strrchr(method, '.');
        if (dot && dot != method)
                call->iface = server_find_interface(s, method, (size_t)(dot - method));
        if (!call->iface) {
                _cleanup_free_ char *name = strndup(method, dot ? (size_t)(dot - method) : 0);

                r = name ? error_with_string(call, VARLINK_ERROR_INTERFACE_NOT_FOUND, "interface", name)
                         : -ENOMEM;
        } else {
                for (const VarlinkMethod *i = call->iface->methods; i && i->name; i++)
                        if (streq(i->name, dot + 1)) {
                                m = i;
                                break;
                        }
                if (!m)
                        r = error_with_string(call, VARLINK_ERROR_METHOD_NOT_FOUND, "method", method);
                else if (upgrade)
                        r = varlink_call_error_invalid_parameter(call, "upgrade");
                else {
                        call->entry = m;
                        r = m->handler(call, params ?: s->empty, call->flags,
                                       call->iface->userdata ?: s->userdata);
                }
        }

        if (call->done)
                return 0;
        if (oneway) {
                if (r < 0)
                        log_debug("Oneway call %s failed: %s", method, strerror(-r));
                connection_call_done(c, call);
                return 0;
        }
        if (r < 0)
                return varlink_call_error_errno(call, r, NULL) < 0 ? -ENOMEM : 0;
        if (call->n_ref <= 2) {
                /* Neither replied nor kept for later: the client would wait forever. */
                log_debug("%s returned without replying or deferring", method);
                return varlink_call_error_errno(call, -EIO, "the method returned no reply") < 0
                               ? -ENOMEM
                               : 0;
        }
        return 0;
}

/* Dispatches the complete calls that are buffered, as long as the connection may take them. */
static void connection_dispatch_buffered(VarlinkConnection *c) {
        VarlinkServer *s = c->server;
        Error err = ERROR_INIT;
        int r;

        while (!c->closing && !c->current &&
               varlink_writer_queued(c->writer) < s->limits.max_queued_output_bytes) {
                json_object *message;
                FdList *fds;

                r = varlink_reader_next(c->reader, &message, &fds, &err);
                if (r == 0)
                        break;
                if (r < 0) {
                        log_debug("Dropping client pid %d: %s", (int)c->ucred.pid, error_message(&err));
                        c->closing = true;
                        break;
                }
                r = connection_dispatch(c, message, fds);
                if (r < 0)
                        c->closing = true;
        }
}

/* Dispatches what is buffered, flushes, and decides what to wait for.  Called from the loop only. */
static void connection_process(VarlinkConnection *c) {
        VarlinkServer *s = c->server;
        int r;

        if (c->dead)
                return;
        c->in_process = true;
again:
        connection_dispatch_buffered(c);

        /* Also when closing: a reply queued before varlink_connection_close() still goes out
         * if the socket takes it now. */
        r = varlink_writer_flush(c->writer, c->fd);
        if (r < 0 && !c->closing) {
                log_debug("Dropping client pid %d: write failed: %s", (int)c->ucred.pid, strerror(-r));
                c->closing = true;
        }
        /* Flushing may have made room for calls that waited behind a full output queue. */
        if (!c->closing && !c->current &&
            varlink_writer_queued(c->writer) < s->limits.max_queued_output_bytes &&
            varlink_reader_has_message(c->reader))
                goto again;
        /* After a half-close, finish what was asked, then hang up. */
        if (!c->closing && c->read_eof && !c->current && !varlink_reader_has_message(c->reader) &&
            varlink_writer_queued(c->writer) == 0)
                c->closing = true;
        c->in_process = false;

        if (c->closing)
                connection_disconnect(c);
        else
                connection_update_events(c);
}

/*
 * Reads until the socket is empty (at most READ_BATCH reads), dispatching as
 * it goes, and only then flushes: a client that pipelines calls gets their
 * replies in one write and one wakeup instead of one each.  That matters
 * most for calls that carry fds, as the kernel ends a read at every message
 * that has fds attached.
 */
static void on_connection_read(evutil_socket_t fd, short what, void *userdata) {
        _cleanup_(varlink_connection_unrefp) VarlinkConnection *c = varlink_connection_ref(userdata);
        Error err = ERROR_INIT;
        int r;

        for (unsigned i = 0; i < READ_BATCH; i++) {
                r = varlink_reader_fill(c->reader, c->fd, &err);
                if (r == 0) {
                        struct pollfd p = { .fd = c->fd, .events = POLLOUT };

                        c->read_eof = true;
                        /* A full close (not a shutdown of its sending side) means nobody reads replies. */
                        if (poll(&p, 1, 0) > 0 && (p.revents & (POLLHUP | POLLERR)))
                                c->closing = true;
                        break;
                }
                if (r < 0) {
                        if (r != -EAGAIN) {
                                log_debug("Dropping client pid %d: %s", (int)c->ucred.pid,
                                          err.error ? error_message(&err) : strerror(-r));
                                c->closing = true;
                        }
                        break;
                }
                c->in_process = true;
                connection_dispatch_buffered(c);
                c->in_process = false;
                /* Waiting for a deferred reply or for the output to drain: read no further. */
                if (c->closing || c->current ||
                    varlink_writer_queued(c->writer) >= c->server->limits.max_queued_output_bytes)
                        break;
        }
        connection_process(c);
}

static void on_connection_write(evutil_socket_t fd, short what, void *userdata) {
        _cleanup_(varlink_connection_unrefp) VarlinkConnection *c = varlink_connection_ref(userdata);

        connection_process(c);
}

static void on_connection_defer(evutil_socket_t fd, short what, void *userdata) {
        _cleanup_(varlink_connection_unrefp) VarlinkConnection *c = varlink_connection_ref(userdata);

        connection_process(c);
}

static int peer_pidfd(int fd) {
        int pidfd = -EBADF;
        socklen_t len = sizeof(pidfd);

        if (getsockopt(fd, SOL_SOCKET, SO_PEERPIDFD, &pidfd, &len) < 0 || pidfd < 0)
                return -EBADF;
        return pidfd;
}

static int server_add_connection(VarlinkServer *s, int fd_in, const struct ucred *as,
                                 VarlinkConnection **ret) {
        _cleanup_close_ int fd = fd_in;
        struct ucred ucred = {};
        socklen_t len = sizeof(ucred);
        VarlinkConnection *c;
        int r;

        if (as)
                ucred = *as;
        else if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &ucred, &len) < 0)
                return negative_errno();
        if (s->n_connections >= s->limits.max_connections)
                return -EUSERS;
        if (server_uid_count(s, ucred.uid) >= s->limits.max_connections_per_uid) {
                log_debug("uid %u has %u connections, the limit; refusing another",
                          (unsigned)ucred.uid, s->limits.max_connections_per_uid);
                return -EDQUOT;
        }
        r = fcntl(fd, F_GETFL);
        if (r < 0 || (!(r & O_NONBLOCK) && fcntl(fd, F_SETFL, r | O_NONBLOCK) < 0))
                return negative_errno();

        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        *c = (VarlinkConnection){
                .n_ref = 1,
                .fd = TAKE_FD(fd),
                .ucred = ucred,
        };
        /* On behalf of someone else, the socket's peer is not the client: no pidfd. */
        c->pidfd = as ? -EBADF : peer_pidfd(c->fd);
        r = varlink_reader_new(&c->reader, s->limits.max_message_bytes, s->limits.max_fds_per_message);
        if (r >= 0)
                r = varlink_writer_new(&c->writer);
        if (r >= 0)
                r = server_uid_inc(s, ucred.uid);
        if (r < 0) {
                varlink_connection_unref(c);
                return r;
        }
        event_assign(&c->ev_read, s->base, c->fd, EV_READ | EV_PERSIST, on_connection_read, c);
        event_assign(&c->ev_write, s->base, c->fd, EV_WRITE | EV_PERSIST, on_connection_write, c);
        event_assign(&c->ev_defer, s->base, -1, 0, on_connection_defer, c);
        c->events_assigned = true;
        c->server = s;
        c->next = s->connections;
        if (c->next)
                c->next->prev = c;
        s->connections = c;
        s->n_connections++;

        if (s->on_connect) {
                r = s->on_connect(s, c, &c->ucred, varlink_connection_get_pidfd(c), s->userdata);
                if (r < 0) {
                        log_debug("Connection from pid %d refused: %s", (int)ucred.pid, strerror(-r));
                        connection_disconnect(c);
                        return r;
                }
        }
        c->connected = true;
        connection_update_events(c);
        server_update_accept(s);
        if (ret)
                *ret = c;
        return 0;
}

int varlink_server_add_connection(VarlinkServer *s, int fd, VarlinkConnection **ret) {
        if (!s)
                safe_close(fd); /* taken in every case */
        assert_return(s, -EINVAL);
        return server_add_connection(s, fd, NULL, ret);
}

int varlink_server_add_connection_as(VarlinkServer *s, int fd, const struct ucred *as,
                                     VarlinkConnection **ret) {
        if (!s || !as)
                safe_close(fd); /* taken in every case */
        assert_return(s && as, -EINVAL);
        return server_add_connection(s, fd, as, ret);
}

/* Listening */

static void server_update_accept(VarlinkServer *s) {
        bool want = s->n_connections < s->limits.max_connections;

        for (size_t i = 0; i < s->n_listeners; i++)
                arm(&s->listeners[i]->ev, &s->listeners[i]->armed, want);
}

static void on_accept(evutil_socket_t fd, short what, void *userdata) {
        Listener *l = userdata;
        VarlinkServer *s = l->server;

        for (unsigned i = 0; i < ACCEPT_BATCH; i++) {
                int cfd, r;

                if (s->n_connections >= s->limits.max_connections)
                        break;
                cfd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                if (cfd < 0) {
                        if (errno == EINTR || errno == ECONNABORTED)
                                continue;
                        if (errno != EAGAIN)
                                log_debug("accept() failed: %m, ignoring");
                        break;
                }
                r = varlink_server_add_connection(s, cfd, NULL);
                if (r < 0 && r != -EDQUOT)
                        log_debug("Failed to set up a connection: %s, ignoring", strerror(-r));
        }
        server_update_accept(s);
}

int varlink_server_listen_fd(VarlinkServer *s, int fd_in) {
        _cleanup_close_ int fd = fd_in;
        Listener *l, **a;
        int flags;

        assert_return(s, -EINVAL);
        flags = fcntl(fd, F_GETFL);
        if (flags < 0 || (!(flags & O_NONBLOCK) && fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0))
                return negative_errno();
        a = realloc(s->listeners, (s->n_listeners + 1) * sizeof(Listener *));
        if (!a)
                return -ENOMEM;
        s->listeners = a;
        l = calloc(1, sizeof(*l));
        if (!l)
                return -ENOMEM;
        l->server = s;
        l->fd = TAKE_FD(fd);
        event_assign(&l->ev, s->base, l->fd, EV_READ | EV_PERSIST, on_accept, l);
        s->listeners[s->n_listeners++] = l;
        server_update_accept(s);
        return 0;
}

int varlink_server_listen_unix(const char *path, mode_t mode) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        _cleanup_close_ int fd = -EBADF;
        struct stat st;
        size_t len;

        assert_return(path, -EINVAL);
        len = strlen(path);
        if (len == 0 || len >= sizeof(sa.sun_path))
                return -ENAMETOOLONG;
        memcpy(sa.sun_path, path, len);

        if (lstat(path, &st) >= 0) {
                _cleanup_close_ int probe = -EBADF;

                if (!S_ISSOCK(st.st_mode))
                        return -EEXIST;
                /* A socket someone still listens on is not stale: do not steal it. */
                probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
                if (probe < 0)
                        return negative_errno();
                if (connect(probe, (struct sockaddr *)&sa, sizeof(sa)) >= 0)
                        return -EADDRINUSE;
                if (unlink(path) < 0 && errno != ENOENT)
                        return negative_errno();
        }

        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return negative_errno();
        if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
                return negative_errno();
        if (chmod(path, mode) < 0 || listen(fd, SOMAXCONN) < 0) {
                int r = negative_errno();

                (void)unlink(path);
                return r;
        }
        return TAKE_FD(fd);
}

/* The server */

int varlink_server_new(VarlinkServer **ret, struct event_base *base, const VarlinkLimits *limits) {
        _cleanup_(varlink_server_freep) VarlinkServer *s = NULL;
        int r;

        assert_return(ret && base, -EINVAL);
        if (limits && (limits->max_fds_per_message > VARLINK_FDS_MAX || limits->max_message_bytes == 0))
                return -EINVAL;

        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        s->base = base;
        s->limits = limits ? *limits : VARLINK_LIMITS_DEFAULT;
        s->vendor = "iommud";
        s->product = "iommud";
        s->version = PACKAGE_VERSION;
        s->url = "https://github.com/iommud/iommud";
        s->empty = json_object_new_object();
        if (!s->empty)
                return -ENOMEM;
        r = varlink_server_add_interface(s, &varlink_service_interface);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(s);
        return 0;
}

VarlinkServer *varlink_server_free(VarlinkServer *s) {
        if (!s)
                return NULL;
        while (s->connections)
                connection_disconnect(s->connections);
        for (size_t i = 0; i < s->n_listeners; i++) {
                if (s->listeners[i]->armed)
                        (void)event_del(&s->listeners[i]->ev);
                safe_close(s->listeners[i]->fd);
                free(s->listeners[i]);
        }
        free(s->listeners);
        free(s->interfaces);
        free(s->uids);
        json_object_put(s->empty);
        free(s);
        return NULL;
}

void varlink_server_set_userdata(VarlinkServer *s, void *userdata) {
        assert(s);
        s->userdata = userdata;
}

void *varlink_server_get_userdata(VarlinkServer *s) {
        assert_return(s, NULL);
        return s->userdata;
}

void varlink_server_set_hooks(VarlinkServer *s, VarlinkConnectFn on_connect,
                              VarlinkDisconnectFn on_disconnect) {
        assert(s);
        s->on_connect = on_connect;
        s->on_disconnect = on_disconnect;
}

void varlink_server_set_info(VarlinkServer *s, const char *vendor, const char *product,
                             const char *version, const char *url) {
        assert(s);
        if (vendor)
                s->vendor = vendor;
        if (product)
                s->product = product;
        if (version)
                s->version = version;
        if (url)
                s->url = url;
}

int varlink_server_add_interface(VarlinkServer *s, const VarlinkInterface *iface) {
        const VarlinkInterface **a;

        assert_return(s && iface && iface->name && iface->description, -EINVAL);
        assert_return(error_name_valid(iface->name), -EINVAL);
        if (server_find_interface(s, iface->name, strlen(iface->name)))
                return -EEXIST;
        a = realloc(s->interfaces, (s->n_interfaces + 1) * sizeof(*a));
        if (!a)
                return -ENOMEM;
        s->interfaces = a;
        s->interfaces[s->n_interfaces++] = iface;
        return 0;
}

unsigned varlink_server_n_connections(const VarlinkServer *s) {
        assert_return(s, 0);
        return s->n_connections;
}
