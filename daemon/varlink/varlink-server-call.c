/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * The calls of the Varlink server: their lifetime, the replies and errors a
 * handler sends, and the decoding of their parameters with the method's table.
 */

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "assert-util.h"
#include "fdlist.h"
#include "json-util.h"
#include "log.h"
#include "varlink-server-internal.h"
#include "varlink-wire.h"

static VarlinkCall *call_free(VarlinkCall *call) {
        VarlinkConnection *c = call->conn;

        /* A streamed call has no tree, most calls no fds: nothing to hand back then. */
        if (call->message)
                json_object_put(call->message);
        if (call->fds)
                varlink_reader_recycle_fds(c ? c->reader : NULL, call->fds);
        /* Keep one finished call per connection so that steady traffic allocates none; the
         * next server_call_new() sets every member a call reads, nothing needs zeroing here. */
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
        if (!call->method && call->iface && call->entry) {
                /* A streamed call's name, written down only when asked for (logs, errors): the
                 * index matched every byte the client sent against these two. */
                (void)snprintf(call->method_name, sizeof(call->method_name), "%s.%s",
                               call->iface->name, call->entry->name);
                call->method = call->method_name;
        }
        return call->method;
}

unsigned varlink_call_get_tags(VarlinkCall *call) {
        assert_return(call, 0);
        return call->entry ? call->entry->tags : 0;
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

int varlink_call_get_fd(VarlinkCall *call, size_t index) {
        assert_return(call, -EINVAL);
        return fdlist_get(call->fds, index);
}

/* Varlink names are [A-Za-z0-9.]; checking keeps a bad name from breaking the JSON we write. */
bool error_name_valid(const char *name) {
        if (!name || !*name || !strchr(name, '.'))
                return false;
        for (const char *p = name; *p; p++)
                if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                      (*p >= '0' && *p <= '9') || *p == '.'))
                        return false;
        return true;
}

void connection_call_done(VarlinkConnection *c, VarlinkCall *call) {
        call->done = true;
        connection_mark_active(c);
        if (c->current == call) {
                c->current = NULL;
                varlink_call_unref(call);
        }
        connection_schedule(c);
}

/*
 * A reply of parameters already formatted, queued whole (NUL and all) in one step: the calls
 * that come often.  Nothing to abort on failure.
 */
static int reply_queue_text(VarlinkWriter *w, const char *params_text, size_t params_len,
                            bool continues) {
        static const char head[] = "{\"parameters\":", more[] = ",\"continues\":true";
        size_t n = STRLEN(head) + params_len + (continues ? STRLEN(more) : 0) + 1;
        char *p;
        int r;

        r = varlink_writer_message(w, n, &p);
        if (r < 0)
                return r;
        memcpy(p, head, STRLEN(head));
        p = mempcpy(p + STRLEN(head), params_text, params_len);
        if (continues)
                p = mempcpy(p, more, STRLEN(more));
        *p = '}';
        return 0;
}

int server_reply_append(VarlinkWriter *w, const char *error, json_object *params,
                        const char *params_text, size_t params_len, bool continues) {
        int r;

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
        if (r >= 0 && continues)
                r = varlink_writer_append(w, ",\"continues\":true", 17);
        if (r >= 0)
                r = varlink_writer_append(w, "}", 1);
        if (r < 0)
                varlink_writer_abort(w);
        return r;
}

/*
 * A final reply that does not fit the output limit: the call ends with ENOBUFS in the
 * interface's errno_error, which may use VARLINK_ERROR_HEADROOM bytes beyond the limit (a
 * stream's last word after its records filled the queue).  Without an errno_error the
 * connection closes, so the client never waits for a reply that cannot come.
 */
static int call_send_overflow(VarlinkCall *call) {
        VarlinkConnection *c = call->conn;
        size_t limit = c->server->limits.max_queued_output_bytes;
        char text[128];
        int n, r = -ENOBUFS;

        log_debug("%s: the reply does not fit the %zu bytes of output a connection may queue "
                  "(%zu queued)", varlink_call_get_method(call), limit, varlink_writer_queued(c->writer));
        n = snprintf(text, sizeof(text), "{\"errno\":%d,\"message\":\"%s\"}", ENOBUFS,
                     "the reply does not fit the output queue");
        if (call->iface && call->iface->errno_error && n > 0 && (size_t)n < sizeof(text)) {
                varlink_writer_set_limit(c->writer, limit + VARLINK_ERROR_HEADROOM);
                r = server_reply_append(c->writer, call->iface->errno_error, NULL, text, (size_t)n, false);
                if (r >= 0)
                        r = varlink_writer_end(c->writer, NULL);
                varlink_writer_set_limit(c->writer, limit);
        }
        if (r < 0)
                varlink_connection_close(c);
        connection_call_done(c, call);
        return -ENOBUFS;
}

/* params_text (params_len bytes, one JSON object) stands in for params when not NULL. */
static int call_send(VarlinkCall *call, const char *error, json_object *params,
                     const char *params_text, size_t params_len, bool continues, FdList *fds_in) {
        _cleanup_(fdlist_freep) FdList *fds = fds_in;
        VarlinkConnection *c;
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
        if (error && !error_name_valid(error)) {
                json_object_put(params);
                return -EINVAL;
        }

        if (!error && params_text && !fds)
                r = reply_queue_text(c->writer, params_text, params_len, continues);
        else {
                r = server_reply_append(c->writer, error, params, params_text, params_len,
                                        continues);
                if (r >= 0)
                        r = varlink_writer_end(c->writer, TAKE_PTR(fds));
        }
        json_object_put(params);
        if (r == -ENOBUFS && !continues)
                return call_send_overflow(call);
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

/*
 * Writes value in decimal at the end of buf, two digits a step; returns how many (they start
 * at buf + 20 - n).  By hand: snprintf() would cost more than the rest of the reply.
 */
static size_t format_u64(char buf[static 20], uint64_t value) {
        static const char pairs[201] =
                "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
                "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
                "8081828384858687888990919293949596979899";
        size_t n = 0;

        while (value >= 100) {
                const char *pair = pairs + 2 * (value % 100);

                value /= 100;
                buf[20 - ++n] = pair[1];
                buf[20 - ++n] = pair[0];
        }
        if (value >= 10) {
                buf[20 - ++n] = pairs[2 * value + 1];
                buf[20 - ++n] = pairs[2 * value];
        } else
                buf[20 - ++n] = (char)('0' + value);
        return n;
}

int varlink_call_reply_u64_head(VarlinkCall *call, const char *head, size_t head_len,
                                uint64_t value) {
        VarlinkConnection *c;
        char digits[20], *p;
        size_t d;
        int r;

        assert_return(call && head && head_len > 0 && head_len <= VARLINK_REPLY_HEAD_MAX,
                      -EINVAL);
        c = call->conn;
        if (call->done || !c || c->dead || (call->flags & VARLINK_CALL_ONEWAY))
                /* Such a call gets no bytes: call_send() only says why, as for any reply. */
                return call_send(call, NULL, NULL, NULL, 0, false, NULL);

        d = format_u64(digits, value);
        /* {"parameters":{"KEY":VALUE}} written straight into the output queue. */
        r = varlink_writer_message(c->writer, head_len + d + 2, &p);
        if (r == -ENOBUFS)
                return call_send_overflow(call);
        if (r < 0)
                return r;
        p = mempcpy(mempcpy(p, head, head_len), digits + sizeof(digits) - d, d);
        p[0] = '}';
        p[1] = '}';
        connection_call_done(c, call);
        return 0;
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
        log_debug("%s: invalid parameter '%s': %s", varlink_call_get_method(call), parameter,
                  reason);
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
        Error e;
        int r;

        assert_return(call && parameters, -EINVAL);
        /* The IDL check covers the method's table: decoding with another one escapes it. */
        assert_return(!call->entry || call->entry->parameters == table, -EINVAL);

        if (call->decoded) {
                /* Decoded by the server straight from the bytes: the handler's struct is zero. */
                memcpy(target, TAKE_PTR(call->decoded), call->entry->parameters_size);
                return dispatch_take_fds(call, table, target);
        }
        error_init(&e);
        if (call->stream_params)
                r = json_stream_dispatch(&call->conn->server->stream, call->stream_params, table,
                                         target, "", &field, &e);
        else
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
                                  varlink_call_get_method(call), strerror(error));
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
