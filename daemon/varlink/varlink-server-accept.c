/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Accepting clients: the listening sockets, who may connect (the total and
 * the connections reserved for root), what a refused client hears, and not
 * listening while the process is out of fds.
 */

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/event_struct.h>

#include "assert-util.h"
#include "log.h"
#include "varlink-server-internal.h"

/* The first pause after accept() ran out of fds, and the longest. */
#define ACCEPT_BACKOFF_FIRST_MS 50U
#define ACCEPT_BACKOFF_MAX_MS 2000U

/* Admission */

static bool uid_is_admin(uid_t uid) {
        return uid == 0 || uid == geteuid();
}

static int refuse(int r, unsigned limit, unsigned used, unsigned *ret_limit, unsigned *ret_used) {
        if (ret_limit)
                *ret_limit = limit;
        if (ret_used)
                *ret_used = used;
        return r;
}

int varlink_server_admit(VarlinkServer *s, uid_t uid, unsigned *ret_limit, unsigned *ret_used) {
        unsigned total;

        assert_return(s, -EINVAL);
        /*
         * Only the total is the server's: how many connections one uid may hold is its
         * principal's connections quota, counted once with its D-Bus sessions by the
         * connect hook's owner.
         */
        total = s->limits.max_connections;
        if (!uid_is_admin(uid))
                total -= MIN(s->limits.reserved_connections, total);
        if (s->n_connections >= total)
                return refuse(-EUSERS, total, s->n_connections, ret_limit, ret_used);
        return refuse(0, total, s->n_connections, ret_limit, ret_used);
}

void server_send_refusal(VarlinkServer *s, int fd, unsigned limit, unsigned used) {
        char buf[256];
        int n;

        if (!s->quota_error)
                return;
        n = snprintf(buf, sizeof(buf),
                     "{\"error\":\"%s\",\"parameters\":{\"resource\":\"connections\","
                     "\"limit\":%u,\"used\":%u}}",
                     s->quota_error, limit, used);
        if (n < 0 || (size_t)n >= sizeof(buf))
                return;
        /* A fresh socket's send buffer is empty: the message goes now or the peer is gone. */
        (void)send(fd, buf, (size_t)n + 1, MSG_DONTWAIT | MSG_NOSIGNAL);
}

void varlink_server_set_quota_error(VarlinkServer *s, const char *error_name) {
        assert(s);
        s->quota_error = error_name && error_name_valid(error_name) ? error_name : NULL;
}

/* Listening */

void server_update_accept(VarlinkServer *s) {
        for (size_t i = 0; i < s->n_listeners; i++)
                server_arm_event(&s->listeners[i]->ev, &s->listeners[i]->armed,
                                 !s->accept_paused);
}

static void server_resume_accept(VarlinkServer *s) {
        if (!s->accept_paused)
                return;
        s->accept_paused = false;
        if (s->accept_retry)
                (void)event_del(s->accept_retry);
        server_update_accept(s);
}

static void on_accept_retry(evutil_socket_t fd, short what, void *userdata) {
        server_resume_accept(userdata);
}

/*
 * accept() failed for want of fds or memory: the pending connection stays in the backlog and
 * the socket stays readable, so listening on would wake the loop again at once, forever.  Stop
 * until a connection closes (server_fd_released()) or the backoff timer fires.
 */
static void server_pause_accept(VarlinkServer *s, int error) {
        struct timeval tv;

        s->accept_backoff_ms = s->accept_backoff_ms == 0
                                       ? ACCEPT_BACKOFF_FIRST_MS
                                       : MIN(s->accept_backoff_ms * 2, ACCEPT_BACKOFF_MAX_MS);
        if (s->accept_backoff_ms == ACCEPT_BACKOFF_FIRST_MS)
                log_warning("accept() failed: %s; not accepting until a connection closes, "
                            "retrying in up to %u ms.",
                            strerror(error), ACCEPT_BACKOFF_MAX_MS);
        s->accept_paused = true;
        server_update_accept(s);
        if (!s->accept_retry) {
                s->accept_retry = evtimer_new(s->base, on_accept_retry, s);
                if (!s->accept_retry) {
                        /* Without a timer only a close resumes: still no busy loop. */
                        log_oom();
                        return;
                }
        }
        tv = (struct timeval){
                .tv_sec = (time_t)(s->accept_backoff_ms / 1000),
                .tv_usec = (suseconds_t)(s->accept_backoff_ms % 1000 * 1000),
        };
        (void)evtimer_add(s->accept_retry, &tv);
}

void server_fd_released(VarlinkServer *s) {
        server_resume_accept(s);
}

static bool accept_error_is_shortage(int error) {
        return error == EMFILE || error == ENFILE || error == ENOBUFS || error == ENOMEM;
}

static void on_accept(evutil_socket_t fd, short what, void *userdata) {
        Listener *l = userdata;
        VarlinkServer *s = l->server;

        for (unsigned i = 0; i < ACCEPT_BATCH; i++) {
                int cfd, r;

                cfd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                if (cfd < 0) {
                        if (errno == EINTR || errno == ECONNABORTED)
                                continue;
                        if (accept_error_is_shortage(errno)) {
                                s->n_accept_shortages++;
                                server_pause_accept(s, errno);
                                return;
                        }
                        if (errno != EAGAIN)
                                log_debug("accept() failed: %m, ignoring");
                        break;
                }
                s->accept_backoff_ms = 0;
                r = varlink_server_add_connection(s, cfd, NULL);
                if (r < 0 && r != -EDQUOT && r != -EUSERS)
                        log_debug("Failed to set up a connection: %s, ignoring", strerror(-r));
        }
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

uint64_t varlink_server_n_accept_shortages(const VarlinkServer *s) {
        assert_return(s, 0);
        return s->n_accept_shortages;
}

void server_listeners_free(VarlinkServer *s) {
        for (size_t i = 0; i < s->n_listeners; i++) {
                if (s->listeners[i]->armed)
                        (void)event_del(&s->listeners[i]->ev);
                safe_close(s->listeners[i]->fd);
                free(s->listeners[i]);
        }
        free(s->listeners);
        s->listeners = NULL;
        s->n_listeners = 0;
        if (s->accept_retry)
                event_free(s->accept_retry);
        s->accept_retry = NULL;
}
