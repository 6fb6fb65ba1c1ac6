/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * systemd's part of iommud's fd store, for a guest program: a NOTIFY_SOCKET that takes
 * FDSTORE=1/FDNAME= messages with their fds (dropping an fd already stored, as systemd does)
 * and FDSTOREREMOVE=1, and the daemon of guest-broker-util.h started with FDSTORE and, after
 * a restart, the stored fds at 3..N with LISTEN_FDS and LISTEN_FDNAMES.  Header-only.
 */

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "guest-broker-util.h"

#define FDSTORE_NOTIFY "/run/iommud-notify"
#define FDSTORE_MAX 128

static struct {
        int notify_fd;
        char names[FDSTORE_MAX][64];
        int fds[FDSTORE_MAX];
        size_t n;
} fdstore = { .notify_fd = -EBADF };

static inline bool fdstore_same_file(int a, int b) {
        struct stat sa, sb;

        return fstat(a, &sa) == 0 && fstat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
               sa.st_ino == sb.st_ino;
}

static inline void fdstore_remove(const char *name) {
        for (size_t i = 0; i < fdstore.n;) {
                if (!streq(fdstore.names[i], name)) {
                        i++;
                        continue;
                }
                close(fdstore.fds[i]);
                fdstore.n--;
                fdstore.fds[i] = fdstore.fds[fdstore.n];
                memcpy(fdstore.names[i], fdstore.names[fdstore.n], sizeof(fdstore.names[0]));
        }
}

/* One notify datagram, handled as systemd's service manager does. */
static inline void fdstore_handle(const char *msg, int *fds, size_t n_fds) {
        const char *p = strstr(msg, "FDNAME=");
        bool keep = strstr(msg, "FDSTORE=1") != NULL;
        char name[64] = "stored";

        if (p)
                snprintf(name, sizeof(name), "%.*s", (int)strcspn(p + 7, "\n"), p + 7);
        if (strstr(msg, "FDSTOREREMOVE=1"))
                fdstore_remove(name);
        for (size_t k = 0; k < n_fds; k++) {
                bool dup = false;

                for (size_t i = 0; keep && i < fdstore.n && !dup; i++)
                        dup = fdstore_same_file(fdstore.fds[i], fds[k]);
                if (!keep || dup || fdstore.n == FDSTORE_MAX) {
                        close(fds[k]);
                        continue;
                }
                memcpy(fdstore.names[fdstore.n], name, sizeof(name));
                fdstore.fds[fdstore.n++] = fds[k];
        }
}

/* Reads every notify message queued so far (iommud sends them before its reply). */
static inline void fdstore_pump(void) {
        for (;;) {
                char control[CMSG_SPACE(sizeof(int) * 32)], buf[4096];
                struct iovec iov = { buf, sizeof(buf) - 1 };
                struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control,
                                     .msg_controllen = sizeof(control) };
                struct pollfd pfd = { .fd = fdstore.notify_fd, .events = POLLIN };
                int fds[32];
                size_t n_fds = 0;
                ssize_t n;

                if (poll(&pfd, 1, 0) <= 0)
                        return;
                n = recvmsg(fdstore.notify_fd, &mh, MSG_CMSG_CLOEXEC);
                if (n < 0)
                        return;
                buf[n] = '\0';
                for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm))
                        if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS) {
                                size_t k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);

                                memcpy(fds + n_fds, CMSG_DATA(cm), k * sizeof(int));
                                n_fds += k;
                        }
                fdstore_handle(buf, fds, n_fds);
        }
}

/* In the daemon's process: the stored fds at 3..N and the fd store's environment. */
static inline void fdstore_child(void) {
        char names[FDSTORE_MAX * 65] = "", num[32];
        int high[FDSTORE_MAX];

        for (size_t i = 0; i < fdstore.n; i++)
                high[i] = fcntl(fdstore.fds[i], F_DUPFD, 512);
        for (size_t i = 0; i < fdstore.n; i++) {
                if (dup2(high[i], 3 + (int)i) < 0)
                        _exit(126);
                if (i > 0)
                        strcat(names, ":");
                strcat(names, fdstore.names[i]);
        }
        setenv("NOTIFY_SOCKET", FDSTORE_NOTIFY, 1);
        setenv("FDSTORE", "256", 1);
        unsetenv("LISTEN_FDS");
        unsetenv("LISTEN_FDNAMES");
        unsetenv("LISTEN_PID");
        if (fdstore.n == 0)
                return;
        snprintf(num, sizeof(num), "%zu", fdstore.n);
        setenv("LISTEN_FDS", num, 1);
        setenv("LISTEN_FDNAMES", names, 1);
        snprintf(num, sizeof(num), "%d", (int)getpid());
        setenv("LISTEN_PID", num, 1);
}

/* From now on daemon_start() gives iommud an fd store. */
static inline int fdstore_enable(void) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };

        fdstore.notify_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (fdstore.notify_fd < 0)
                return -errno;
        (void)unlink(FDSTORE_NOTIFY);
        memcpy(sa.sun_path, FDSTORE_NOTIFY, sizeof(FDSTORE_NOTIFY));
        if (bind(fdstore.notify_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
                return -errno;
        daemon_child_hook = fdstore_child;
        return 0;
}

/* How many stored fds have names starting with prefix. */
static inline size_t fdstore_count(const char *prefix) {
        size_t n = 0;

        fdstore_pump();
        for (size_t i = 0; i < fdstore.n; i++)
                n += strneq(fdstore.names[i], prefix, strlen(prefix));
        return n;
}

/* SIGTERM (iommud leaves its store as it is), then iommud again on what it stored. */
static inline int fdstore_restart(void) {
        int r = daemon_stop();

        if (r != 0)
                return r < 0 ? -ECHILD : -EIO;
        fdstore_pump();
        return daemon_start();
}

static inline void fdstore_clear(void) {
        for (size_t i = 0; i < fdstore.n; i++)
                close(fdstore.fds[i]);
        fdstore.n = 0;
        fdstore.notify_fd = safe_close(fdstore.notify_fd);
        daemon_child_hook = NULL;
}
