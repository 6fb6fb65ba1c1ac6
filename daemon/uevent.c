/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>
#include <linux/netlink.h>

#include "assert-util.h"
#include "uevent.h"

struct UeventMonitor {
        int fd;
        struct event *ev;
        UeventFn fn;
        void *userdata;
};

int uevent_parse(const char *buf, size_t len, Uevent *ret) {
        Uevent u = {};
        const char *p = buf, *end = buf + len;

        assert_return(buf || len == 0, -EINVAL);
        assert_return(ret, -EINVAL);

        /* The header "ACTION@DEVPATH" tells kernel messages from udev's binary ones. */
        if (len == 0 || !memchr(buf, '@', strnlen(buf, len)) || memchr(buf, '\0', len) == NULL)
                return -EBADMSG;
        while (p < end) {
                size_t n = strnlen(p, (size_t)(end - p));

                if (p + n == end)
                        break; /* not NUL-terminated: ignore the tail */
                if (strneq(p, "ACTION=", 7))
                        u.action = p + 7;
                else if (strneq(p, "DEVPATH=", 8))
                        u.devpath = p + 8;
                else if (strneq(p, "SUBSYSTEM=", 10))
                        u.subsystem = p + 10;
                else if (strneq(p, "DRIVER=", 7))
                        u.driver = p + 7;
                p += n + 1;
        }
        if (!u.action || !u.devpath)
                return -EBADMSG;
        *ret = u;
        return 0;
}

bool uevent_is_relevant(const Uevent *u) {
        static const char *const actions[] = { "add", "remove", "bind", "unbind", "move", NULL };
        static const char *const subsystems[] = { "pci", "platform", "vfio-dev", "iommu", NULL };
        bool a = false, s = false;

        assert_return(u && u->action, false);

        for (size_t i = 0; actions[i]; i++)
                a = a || streq(u->action, actions[i]);
        for (size_t i = 0; u->subsystem && subsystems[i]; i++)
                s = s || streq(u->subsystem, subsystems[i]);
        return a && s;
}

static void on_readable(evutil_socket_t fd, short what, void *userdata) {
        UeventMonitor *m = userdata;
        char buf[8192];

        for (;;) {
                struct sockaddr_nl sa = {};
                struct iovec iov = { .iov_base = buf, .iov_len = sizeof(buf) - 1 };
                struct msghdr mh = { .msg_name = &sa, .msg_namelen = sizeof(sa),
                                     .msg_iov = &iov, .msg_iovlen = 1 };
                ssize_t n = recvmsg(m->fd, &mh, MSG_DONTWAIT);
                Uevent u;

                if (n < 0 && errno == ENOBUFS) {
                        /* The socket overflowed: what changed is unknown. */
                        m->fn(NULL, m->userdata);
                        continue;
                }
                if (n <= 0)
                        return;
                /* Only the kernel (port 0) speaks here; a process could forge anything. */
                if (mh.msg_namelen != sizeof(sa) || sa.nl_pid != 0 || (mh.msg_flags & MSG_TRUNC))
                        continue;
                buf[n] = '\0';
                if (uevent_parse(buf, (size_t)n, &u) < 0 || !uevent_is_relevant(&u))
                        continue;
                m->fn(&u, m->userdata);
        }
}

int uevent_monitor_new(UeventMonitor **ret, struct event_base *base, UeventFn fn, void *userdata) {
        struct sockaddr_nl sa = { .nl_family = AF_NETLINK, .nl_groups = 1 };
        UeventMonitor *m;
        int fd;

        assert_return(ret, -EINVAL);
        assert_return(base, -EINVAL);
        assert_return(fn, -EINVAL);

        fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_KOBJECT_UEVENT);
        if (fd < 0)
                return -errno;
        if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
                int r = -errno;

                close(fd);
                return r;
        }
        m = calloc(1, sizeof(*m));
        if (!m) {
                close(fd);
                return -ENOMEM;
        }
        m->fd = fd;
        m->fn = fn;
        m->userdata = userdata;
        m->ev = event_new(base, fd, EV_READ | EV_PERSIST, on_readable, m);
        if (!m->ev || event_add(m->ev, NULL) < 0) {
                uevent_monitor_free(m);
                return -ENOMEM;
        }
        *ret = m;
        return 0;
}

UeventMonitor *uevent_monitor_free(UeventMonitor *m) {
        if (!m)
                return NULL;
        if (m->ev)
                event_free(m->ev);
        safe_close(m->fd);
        free(m);
        return NULL;
}
