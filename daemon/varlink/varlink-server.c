/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * The Varlink server: its interfaces, its listening sockets and the count of
 * connections per uid.  Calls live in varlink-server-call.c, connections in
 * varlink-server-connection.c, org.varlink.service in varlink-server-service.c.
 */

#include <errno.h>
#include <fcntl.h>
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
#include "varlink-server-internal.h"
#include "varlink-wire.h"

static UidCount *server_uid_find(VarlinkServer *s, uid_t uid) {
        for (size_t i = 0; i < s->n_uids; i++)
                if (s->uids[i].uid == uid)
                        return &s->uids[i];
        return NULL;
}

unsigned server_uid_count(VarlinkServer *s, uid_t uid) {
        UidCount *u = server_uid_find(s, uid);

        return u ? u->n : 0;
}

int server_uid_inc(VarlinkServer *s, uid_t uid) {
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

void server_uid_dec(VarlinkServer *s, uid_t uid) {
        for (size_t i = 0; i < s->n_uids; i++)
                if (s->uids[i].uid == uid) {
                        if (--s->uids[i].n == 0)
                                s->uids[i] = s->uids[--s->n_uids];
                        return;
                }
}

/* Listening */

void server_arm_event(struct event *ev, bool *armed, bool want) {
        if (want == *armed)
                return;
        if (want)
                (void)event_add(ev, NULL);
        else
                (void)event_del(ev);
        *armed = want;
}

void server_update_accept(VarlinkServer *s) {
        bool want = s->n_connections < s->limits.max_connections;

        for (size_t i = 0; i < s->n_listeners; i++)
                server_arm_event(&s->listeners[i]->ev, &s->listeners[i]->armed, want);
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
