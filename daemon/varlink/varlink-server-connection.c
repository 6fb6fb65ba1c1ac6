/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * The connections of the Varlink server: reading calls off the socket,
 * dispatching them one at a time, flushing replies, and going away.
 */

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/event_struct.h>
#include <json-c/json.h>

#include "assert-util.h"
#include "fdlist.h"
#include "json-util.h"
#include "log.h"
#include "varlink-server-internal.h"
#include "varlink-wire.h"

#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77
#endif

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

int varlink_connection_get_fd(VarlinkConnection *c) {
        assert_return(c, -EBADF);
        return c->fd;
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

int varlink_connection_send_error(VarlinkConnection *c, const char *error_name,
                                  json_object *params) {
        int r;

        if (!c || !error_name_valid(error_name) || c->dead || !c->writer) {
                json_object_put(params); /* taken in every case */
                return -EINVAL;
        }
        r = server_reply_append(c->writer, error_name, params, NULL, 0, false);
        json_object_put(params);
        if (r < 0)
                return r;
        return varlink_writer_end(c->writer, NULL);
}

size_t connection_pipeline_bytes(const VarlinkServer *s) {
        return s->pipeline_bytes;
}

/* Whether the connection may take its next call: none running, and few replies unsent. */
static bool connection_may_dispatch(VarlinkConnection *c) {
        return !c->closing && !c->current &&
               varlink_writer_queued(c->writer) < connection_pipeline_bytes(c->server);
}

static uint64_t now_usec(void) {
        struct timespec ts;

        (void)clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

void connection_mark_active(VarlinkConnection *c) {
        if (c->server && c->server->limits.idle_timeout_usec > 0)
                c->last_active_usec = now_usec();
}

static void connection_arm_idle(VarlinkConnection *c, uint64_t usec) {
        struct timeval tv = {
                .tv_sec = (time_t)(usec / 1000000),
                .tv_usec = (suseconds_t)(usec % 1000000),
        };

        if (event_add(&c->ev_idle, &tv) >= 0)
                c->idle_armed = true;
}

/*
 * The idle timer: a connection that runs no call and started or finished none for the
 * timeout is closed, unless the idle hook says it holds something.  The timer is not moved
 * on every call; it fires at the first deadline and looks how long the connection has really
 * been idle.
 */
static void on_connection_idle(evutil_socket_t fd, short what, void *userdata) {
        _cleanup_(varlink_connection_unrefp) VarlinkConnection *c = varlink_connection_ref(userdata);
        VarlinkServer *s = c->server;
        uint64_t timeout, idle;

        c->idle_armed = false;
        if (c->dead || c->closing)
                return;
        timeout = s->limits.idle_timeout_usec;
        idle = now_usec() - c->last_active_usec;
        if (c->current || idle < timeout) {
                connection_arm_idle(c, c->current ? timeout : timeout - idle);
                return;
        }
        if (s->on_idle && !s->on_idle(s, c, s->userdata)) {
                connection_arm_idle(c, timeout);
                return;
        }
        log_debug("Closing the connection of pid %d: idle for %" PRIu64 " ms, holding nothing.",
                  (int)c->ucred.pid, idle / 1000);
        varlink_connection_close(c);
}

void connection_schedule(VarlinkConnection *c) {
        /* Inside connection_process() the loop picks the change up itself. */
        if (c->dead || c->in_process)
                return;
        event_active(&c->ev_defer, EV_TIMEOUT, 1);
}

/* Adds or removes ev from the loop only when want differs from *armed: mostly nothing to do. */
static void arm_event(struct event *ev, bool *armed, bool want) {
        if (want != *armed)
                server_arm_event(ev, armed, want);
}

/* message_waiting: a complete message (or a framing error) is buffered. */
static void connection_arm(VarlinkConnection *c, bool message_waiting) {
        size_t queued = varlink_writer_queued(c->writer);
        bool want_read;

        /*
         * Read while nothing complete is waiting, so that a hangup is seen even during a call,
         * and while few replies are unsent: a client that does not read its replies makes the
         * kernel's socket buffer fill, not ours (backpressure).
         */
        want_read = !c->read_eof && !c->closing && queued < connection_pipeline_bytes(c->server) &&
                    !message_waiting;
        arm_event(&c->ev_read, &c->read_armed, want_read);
        arm_event(&c->ev_write, &c->write_armed, queued > 0);
}

static void connection_update_events(VarlinkConnection *c) {
        connection_arm(c, varlink_reader_has_message(c->reader));
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
}

void connection_disconnect(VarlinkConnection *c) {
        VarlinkServer *s = c->server;
        VarlinkCall *call;

        if (c->dead)
                return;
        c->dead = true;
        if (c->events_assigned) {
                (void)event_del(&c->ev_read);
                (void)event_del(&c->ev_write);
                (void)event_del(&c->ev_defer);
                (void)event_del(&c->ev_idle);
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
        server_fd_released(s);
        varlink_connection_unref(c); /* the server's reference */
}

/* Reads the call's envelope; -EBADMSG for anything malformed. */
static int envelope_read(json_object *message, Envelope *ret) {
        Envelope e = {};

        if (json_util_get_string(message, "method", 0, &e.method, NULL) < 0 ||
            json_util_get_object(message, "parameters", JSON_UTIL_OPTIONAL, &e.params, NULL) < 0 ||
            json_util_get_bool(message, "oneway", JSON_UTIL_OPTIONAL, &e.oneway, NULL) < 0 ||
            json_util_get_bool(message, "more", JSON_UTIL_OPTIONAL, &e.more, NULL) < 0 ||
            json_util_get_bool(message, "upgrade", JSON_UTIL_OPTIONAL, &e.upgrade, NULL) < 0 ||
            (e.oneway && e.more))
                return -EBADMSG;
        *ret = e;
        return 0;
}

/*
 * The message with only Varlink's members (message itself when it has no others; it is taken
 * either way).  A call that stays (a stream) keeps its message, and padding sent with it must
 * not stay too, parsed into many times its size.
 */
static json_object *envelope_strip(json_object *message) {
        static const char *const known[] = { "method", "parameters", "oneway", "more", "upgrade" };
        json_object *stripped, *v;
        int n = 0;

        for (size_t i = 0; i < ELEMENTSOF(known); i++)
                n += json_object_object_get_ex(message, known[i], NULL);
        if (json_object_object_length(message) == n)
                return message;
        stripped = json_object_new_object();
        if (!stripped)
                return message; /* only memory that a disconnect would free anyway */
        for (size_t i = 0; i < ELEMENTSOF(known); i++)
                if (json_object_object_get_ex(message, known[i], &v) &&
                    json_object_object_add(stripped, known[i], json_object_get(v)) < 0) {
                        json_object_put(v);
                        json_object_put(stripped);
                        return message;
                }
        json_object_put(message);
        return stripped;
}

/* The call of message, which it takes with fds; the connection holds a reference too. */
int server_call_new(VarlinkConnection *c, json_object *message, FdList *fds, const Envelope *e,
                    VarlinkCall **ret) {
        VarlinkCall *call = c->spare ? TAKE_PTR(c->spare) : calloc(1, sizeof(*call));

        if (!call) {
                json_object_put(message);
                fdlist_free(fds);
                return -ENOMEM;
        }
        /* Member by member: a reused call keeps its name buffer, which nobody reads unset. */
        call->n_ref = 1;
        call->conn = varlink_connection_ref(c);
        call->message = message;
        call->fds = fds;
        call->method = e->method;
        call->iface = NULL;
        call->entry = NULL;
        call->flags = (e->oneway ? VARLINK_CALL_ONEWAY : 0) | (e->more ? VARLINK_CALL_MORE : 0);
        call->done = false;
        call->stream_params = NULL;
        call->decoded = NULL;
        /* One reference is the connection's (until the final reply), one is ours (until return). */
        call->n_ref++;
        c->current = call;
        *ret = call;
        return 0;
}

/* Finds the method and runs its handler, or answers why there is none to run. */
static int call_run(VarlinkServer *s, VarlinkCall *call, const Envelope *e) {
        const VarlinkMethod *m = server_find_method(s, e->method, strlen(e->method), &call->iface,
                                                    NULL);
        const char *dot;

        if (m) {
                if (e->upgrade)
                        return varlink_call_error_invalid_parameter(call, "upgrade");
                call->entry = m;
                return m->handler(call, e->params ?: s->empty, call->flags,
                                  call->iface->userdata ?: s->userdata);
        }
        dot = strrchr(e->method, '.');
        if (!dot || dot == e->method || !server_find_interface(s, e->method,
                                                               (size_t)(dot - e->method))) {
                _cleanup_free_ char *name = strndup(e->method, dot ? (size_t)(dot - e->method) : 0);

                return name ? error_with_string(call, VARLINK_ERROR_INTERFACE_NOT_FOUND,
                                                "interface", name)
                            : -ENOMEM;
        }
        return error_with_string(call, VARLINK_ERROR_METHOD_NOT_FOUND, "method", e->method);
}

/* After the handler: a call it neither answered nor kept gets an error, not silence. */
int server_call_finish(VarlinkConnection *c, VarlinkCall *call, int r) {
        if (call->done)
                return 0;
        if (call->flags & VARLINK_CALL_ONEWAY) {
                if (r < 0)
                        log_debug("Oneway call %s failed: %s", varlink_call_get_method(call),
                                  strerror(-r));
                connection_call_done(c, call);
                return 0;
        }
        if (r < 0)
                return varlink_call_error_errno(call, r, NULL) < 0 ? -ENOMEM : 0;
        if (call->n_ref <= 2) {
                /* Neither replied nor kept for later: the client would wait forever. */
                log_debug("%s returned without replying or deferring",
                          varlink_call_get_method(call));
                return varlink_call_error_errno(call, -EIO, "the method returned no reply") < 0
                               ? -ENOMEM
                               : 0;
        }
        return 0;
}

/* Serves one call; -EBADMSG for a malformed envelope, which ends the connection. */
static int connection_dispatch(VarlinkConnection *c, json_object *message, FdList *fds) {
        _cleanup_(varlink_call_unrefp) VarlinkCall *call = NULL;
        Envelope e;
        int r;

        if (envelope_read(message, &e) < 0) {
                log_debug("Malformed call envelope from pid %d, disconnecting", (int)c->ucred.pid);
                json_object_put(message);
                fdlist_free(fds);
                return -EBADMSG;
        }
        message = envelope_strip(message);
        connection_mark_active(c);
        r = server_call_new(c, message, fds, &e, &call);
        if (r < 0)
                return r;
        r = call_run(c->server, call, &e);
        return server_call_finish(c, call, r);
}

/* Dispatches the complete calls that are buffered, as long as the connection may take them. */
static void connection_dispatch_buffered(VarlinkConnection *c) {
        Error err;
        int r;

        error_init(&err);
        while (connection_may_dispatch(c)) {
                json_object *message;
                const char *text = NULL;
                FdList *fds = NULL;
                size_t len = 0;

                r = varlink_reader_next_text(c->reader, &text, &len, &fds, &err);
                if (r == 0)
                        break;
                if (r > 0) {
                        r = connection_dispatch_stream(c, text, len, &fds);
                        if (r < 0)
                                c->closing = true;
                        if (r != 0)
                                continue;
                        r = varlink_reader_parse(c->reader, text, len, &message, &err);
                }
                if (r < 0) {
                        fdlist_free(fds);
                        log_debug("Dropping client pid %d: %s", (int)c->ucred.pid, error_message(&err));
                        c->closing = true;
                        break;
                }
                r = connection_dispatch(c, message, fds);
                if (r < 0)
                        c->closing = true;
        }
}

/*
 * Dispatches what is buffered, flushes, and decides what to wait for.  Called from the loop
 * only.  dispatched: the caller dispatched all it could since its last read, so the first pass
 * starts at the flush (the check after it still takes whatever the flush made room for).
 */
static void connection_process(VarlinkConnection *c, bool dispatched) {
        bool waiting;
        int r;

        if (c->dead)
                return;
        c->in_process = true;
        if (dispatched)
                goto flush;
again:
        connection_dispatch_buffered(c);
flush:

        /* Also when closing: a reply queued before varlink_connection_close() still goes out
         * if the socket takes it now. */
        r = varlink_writer_flush(c->writer, c->fd);
        if (r < 0 && !c->closing) {
                log_debug("Dropping client pid %d: write failed: %s", (int)c->ucred.pid, strerror(-r));
                c->closing = true;
        }
        /* Flushing may have made room for calls that waited behind unsent replies. */
        waiting = varlink_reader_has_message(c->reader);
        if (waiting && connection_may_dispatch(c))
                goto again;
        /* After a half-close, finish what was asked, then hang up. */
        if (!c->closing && c->read_eof && !c->current && !waiting &&
            varlink_writer_queued(c->writer) == 0)
                c->closing = true;
        c->in_process = false;

        if (c->closing)
                connection_disconnect(c);
        else
                connection_arm(c, waiting);
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
        Error err;
        int r;

        error_init(&err);
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
                /* Waiting for a deferred reply or for the output to drain: read no further.  Nor
                 * when the socket was empty behind the read: the loop says when more comes, and
                 * the replies go out a read() sooner. */
                if (!connection_may_dispatch(c) || varlink_reader_drained(c->reader))
                        break;
                /* The first read's replies go out before the next read, which after a call that
                 * carried fds (the kernel ends a read at them) usually finds nothing: a client
                 * that waits for its reply gets it a system call sooner, and calls that come in
                 * a row still leave together after the first. */
                if (i == 0 && !c->closing && varlink_writer_flush(c->writer, c->fd) < 0)
                        break;
        }
        /* Every read that brought bytes was followed by a dispatch; what a flush in between
         * made room for, connection_process() finds after its own flush. */
        connection_process(c, true);
}

static void on_connection_write(evutil_socket_t fd, short what, void *userdata) {
        _cleanup_(varlink_connection_unrefp) VarlinkConnection *c = varlink_connection_ref(userdata);

        connection_process(c, false);
}

static void on_connection_defer(evutil_socket_t fd, short what, void *userdata) {
        _cleanup_(varlink_connection_unrefp) VarlinkConnection *c = varlink_connection_ref(userdata);

        connection_process(c, false);
}

static int peer_pidfd(int fd) {
        int pidfd = -EBADF;
        socklen_t len = sizeof(pidfd);

        if (getsockopt(fd, SOL_SOCKET, SO_PEERPIDFD, &pidfd, &len) < 0 || pidfd < 0)
                return -EBADF;
        return pidfd;
}

/* Whether the client may connect; a refused one hears why, when the server has the words. */
static int server_admit_fd(VarlinkServer *s, int fd, uid_t uid) {
        unsigned limit, used;
        int r;

        r = varlink_server_admit(s, uid, &limit, &used);
        if (r >= 0)
                return 0;
        log_debug("uid %u refused: the server is full (%u of %u connections)", (unsigned)uid,
                  used, limit);
        server_send_refusal(s, fd, limit, used);
        return r;
}

static int connection_new(VarlinkServer *s, int fd, const struct ucred *ucred, bool on_behalf,
                          VarlinkConnection **ret) {
        VarlinkConnection *c;
        int r;

        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        *c = (VarlinkConnection){
                .n_ref = 1,
                .fd = fd,
                .ucred = *ucred,
        };
        /* On behalf of someone else, the socket's peer is not the client: no pidfd. */
        c->pidfd = on_behalf ? -EBADF : peer_pidfd(c->fd);
        r = varlink_reader_new(&c->reader, s->limits.max_message_bytes, s->limits.max_fds_per_message);
        if (r >= 0)
                r = varlink_writer_new(&c->writer);
        if (r < 0) {
                c->fd = -EBADF; /* still the caller's */
                varlink_connection_unref(c);
                return r;
        }
        varlink_writer_set_limit(c->writer, s->limits.max_queued_output_bytes);
        *ret = c;
        return 0;
}

/* Links c into the server and its loop. */
static void connection_link(VarlinkServer *s, VarlinkConnection *c) {
        event_assign(&c->ev_read, s->base, c->fd, EV_READ | EV_PERSIST, on_connection_read, c);
        event_assign(&c->ev_write, s->base, c->fd, EV_WRITE | EV_PERSIST, on_connection_write, c);
        event_assign(&c->ev_defer, s->base, -1, 0, on_connection_defer, c);
        event_assign(&c->ev_idle, s->base, -1, 0, on_connection_idle, c);
        c->events_assigned = true;
        c->server = s;
        c->next = s->connections;
        if (c->next)
                c->next->prev = c;
        s->connections = c;
        s->n_connections++;
        connection_mark_active(c);
        if (s->limits.idle_timeout_usec > 0)
                connection_arm_idle(c, s->limits.idle_timeout_usec);
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
        r = server_admit_fd(s, fd, ucred.uid);
        if (r < 0)
                return r;
        r = fcntl(fd, F_GETFL);
        if (r < 0 || (!(r & O_NONBLOCK) && fcntl(fd, F_SETFL, r | O_NONBLOCK) < 0))
                return negative_errno();
        r = connection_new(s, fd, &ucred, as != NULL, &c);
        if (r < 0)
                return r;
        TAKE_FD(fd);
        connection_link(s, c);

        if (s->on_connect) {
                r = s->on_connect(s, c, &c->ucred, varlink_connection_get_pidfd(c), s->userdata);
                if (r < 0) {
                        log_debug("Connection from pid %d refused: %s", (int)ucred.pid, strerror(-r));
                        /* What on_connect() queued (varlink_connection_send_error()) goes first. */
                        (void)varlink_writer_flush(c->writer, c->fd);
                        connection_disconnect(c);
                        return r;
                }
        }
        c->connected = true;
        connection_update_events(c);
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
