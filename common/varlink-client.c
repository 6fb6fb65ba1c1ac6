/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>

#include "json-util.h"
#include "varlink-client.h"
#include "varlink-wire.h"

struct VarlinkClient {
        int fd;
        VarlinkReader *reader;
        VarlinkWriter *writer;
        size_t n_pending;
};

void varlink_reply_clear(VarlinkReply *r) {
        if (!r)
                return;
        json_object_put(r->message);
        fdlist_free(r->fds);
        *r = VARLINK_REPLY_INIT;
}

int varlink_client_new_from_fd(VarlinkClient **ret, int fd_in) {
        _cleanup_close_ int fd = fd_in;
        _cleanup_(varlink_client_freep) VarlinkClient *c = NULL;
        int r;

        if (fd < 0)
                return -EBADF;
        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        c->fd = TAKE_FD(fd);
        r = varlink_reader_new(&c->reader, VARLINK_CLIENT_MAX_MESSAGE, VARLINK_FDS_MAX);
        if (r < 0)
                return r;
        r = varlink_writer_new(&c->writer);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(c);
        return 0;
}

int varlink_client_connect(VarlinkClient **ret, const char *path) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        _cleanup_close_ int fd = -EBADF;
        size_t len = strlen(path);

        if (len == 0)
                return -EINVAL;
        if (len >= sizeof(sa.sun_path))
                return -ENAMETOOLONG;
        memcpy(sa.sun_path, path, len);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return negative_errno();
        /* Connect blocking: the server may still be starting under socket activation. The fd
         * can stay blocking afterwards since every recvmsg()/sendmsg() passes MSG_DONTWAIT. */
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
                return negative_errno();
        return varlink_client_new_from_fd(ret, TAKE_FD(fd));
}

VarlinkClient *varlink_client_free(VarlinkClient *c) {
        if (!c)
                return NULL;
        varlink_reader_free(c->reader);
        varlink_writer_free(c->writer);
        safe_close(c->fd);
        free(c);
        return NULL;
}

int varlink_client_get_fd(VarlinkClient *c) {
        return c->fd;
}

short varlink_client_get_events(VarlinkClient *c) {
        return POLLIN | (varlink_writer_queued(c->writer) > 0 ? POLLOUT : 0);
}

size_t varlink_client_n_pending(VarlinkClient *c) {
        return c->n_pending;
}

static bool peer_gone(int r) {
        return r == -EPIPE || r == -ECONNRESET;
}

static bool method_name_valid(const char *s) {
        if (!s || !strchr(s, '.'))
                return false;
        for (; *s; s++)
                if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
                      *s == '.' || *s == '-'))
                        return false;
        return true;
}

int varlink_client_send(VarlinkClient *c, const char *method, json_object *params, const int *fds,
                        size_t n_fds, VarlinkClientFlags flags) {
        _cleanup_(fdlist_freep) FdList *l = NULL;
        int r;

        if (!method_name_valid(method))
                return -EINVAL;
        if ((flags & VARLINK_CLIENT_ONEWAY) && (flags & VARLINK_CLIENT_MORE))
                return -EINVAL;
        if (params && !json_object_is_type(params, json_type_object))
                return -EINVAL;
        if (n_fds > VARLINK_FDS_MAX)
                return -E2BIG;
        if (n_fds > 0) {
                r = fdlist_new_dup(&l, fds, n_fds);
                if (r < 0)
                        return r;
        }

        r = varlink_writer_append(c->writer, "{\"method\":\"", 11);
        if (r >= 0)
                r = varlink_writer_append(c->writer, method, strlen(method));
        if (r >= 0)
                r = varlink_writer_append(c->writer, "\",\"parameters\":", 15);
        if (r >= 0)
                r = params ? varlink_writer_append_json(c->writer, params)
                           : varlink_writer_append(c->writer, "{}", 2);
        if (r >= 0 && (flags & VARLINK_CLIENT_ONEWAY))
                r = varlink_writer_append(c->writer, ",\"oneway\":true", 14);
        if (r >= 0 && (flags & VARLINK_CLIENT_MORE))
                r = varlink_writer_append(c->writer, ",\"more\":true", 12);
        if (r >= 0)
                r = varlink_writer_append(c->writer, "}", 1);
        if (r < 0) {
                varlink_writer_abort(c->writer);
                return r;
        }
        r = varlink_writer_end(c->writer, TAKE_PTR(l));
        if (r < 0)
                return r;
        if (!(flags & VARLINK_CLIENT_ONEWAY))
                c->n_pending++;
        r = varlink_writer_flush(c->writer, c->fd);
        /* The server may have hung up after saying why (a refused connection): reading
         * the reply tells, so that failure is the reply's to report, not the send's. */
        if (peer_gone(r))
                return 0;
        return r < 0 ? r : 0;
}

static int parse_reply(json_object *message, FdList *fds, VarlinkReply *ret) {
        json_object *params = NULL;
        const char *error = NULL;
        bool continues = false;

        if (json_util_get_object(message, "parameters", JSON_UTIL_OPTIONAL, &params, NULL) < 0 ||
            json_util_get_string(message, "error", JSON_UTIL_OPTIONAL, &error, NULL) < 0 ||
            json_util_get_bool(message, "continues", JSON_UTIL_OPTIONAL, &continues, NULL) < 0) {
                json_object_put(message);
                fdlist_free(fds);
                return -EBADMSG;
        }
        if (!params) {
                params = json_object_new_object();
                if (!params || json_object_object_add(message, "parameters", params) < 0) {
                        json_object_put(params);
                        json_object_put(message);
                        fdlist_free(fds);
                        return -ENOMEM;
                }
        }
        *ret = (VarlinkReply){
                .message = message,
                .parameters = params,
                .error = error,
                .continues = continues && !error,
                .fds = fds,
        };
        return 0;
}

int varlink_client_process(VarlinkClient *c, VarlinkReply *ret) {
        int r, write_error;

        /* When the server is gone, what it sent before it went is still read first. */
        r = varlink_writer_flush(c->writer, c->fd);
        if (r < 0 && !peer_gone(r))
                return r;
        write_error = MIN(r, 0);
        for (;;) {
                json_object *message;
                FdList *fds;

                r = varlink_reader_next(c->reader, &message, &fds, NULL);
                if (r < 0)
                        return r;
                if (r > 0) {
                        VarlinkReply reply;

                        r = parse_reply(message, fds, &reply);
                        if (r < 0)
                                return r;
                        if (!reply.continues && c->n_pending > 0)
                                c->n_pending--;
                        *ret = reply;
                        return 1;
                }
                r = varlink_reader_fill(c->reader, c->fd, NULL);
                if (r == -EAGAIN)
                        return write_error;
                if (r == 0)
                        return write_error ?: -ECONNRESET;
                if (r < 0)
                        return r;
        }
}

static int64_t monotonic_ms(void) {
        struct timespec ts;

        (void)clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int varlink_client_wait(VarlinkClient *c, int timeout_ms, VarlinkReply *ret) {
        /* A deadline, so that a peer sending a byte now and then does not wait us forever. */
        int64_t deadline = timeout_ms >= 0 ? monotonic_ms() + timeout_ms : -1;

        for (;;) {
                struct pollfd p = { .fd = c->fd, .events = varlink_client_get_events(c) };
                int64_t left = -1;
                int r;

                r = varlink_client_process(c, ret);
                if (r != 0)
                        return r < 0 ? r : 0;
                if (deadline >= 0) {
                        left = deadline - monotonic_ms();
                        if (left < 0)
                                left = 0;
                }
                r = poll(&p, 1, (int)left);
                if (r < 0 && errno != EINTR)
                        return negative_errno();
                if (r == 0)
                        return -ETIMEDOUT;
        }
}

int varlink_client_call(VarlinkClient *c, const char *method, json_object *params, const int *fds,
                        size_t n_fds, VarlinkReply *ret) {
        int r;

        r = varlink_client_send(c, method, params, fds, n_fds, 0);
        if (r < 0)
                return r;
        return varlink_client_wait(c, -1, ret);
}
