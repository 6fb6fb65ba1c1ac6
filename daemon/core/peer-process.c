/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "file-util.h"
#include "macros.h"
#include "peer-process.h"

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif

uint64_t peer_process_now(void) {
        struct timespec ts;

        (void)clock_gettime(CLOCK_BOOTTIME, &ts);
        return (uint64_t)ts.tv_sec * UINT64_C(1000000) + (uint64_t)ts.tv_nsec / 1000;
}

int peer_process_parse_start(const char *text, uint64_t *ret_ticks) {
        /* The command name (field 2) is in parentheses and may hold anything, ")" too. */
        const char *p = strrchr(text, ')');
        unsigned long long v;
        char *end;

        if (!p)
                return -EBADMSG;
        p++;
        /* Fields 3 to 21, then the start time. */
        for (unsigned i = 3; i <= 22; i++) {
                p += strspn(p, " ");
                if (i == 22)
                        break;
                p += strcspn(p, " ");
        }
        errno = 0;
        v = strtoull(p, &end, 10);
        if (errno != 0 || end == p || (*end != ' ' && *end != '\n' && *end != 0))
                return -EBADMSG;
        *ret_ticks = v;
        return 0;
}

/* The pid a pidfd refers to, from our own fdinfo; -1 once the process is reaped. */
static int pidfd_get_pid(int pidfd, pid_t *ret) {
        _cleanup_free_ char *text = NULL;
        char path[64];
        const char *p;
        int r;

        snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", pidfd);
        r = file_util_read_at(AT_FDCWD, path, 4096, &text, NULL);
        if (r < 0)
                return r;
        p = strstr(text, "\nPid:");
        if (!p)
                return -EBADMSG;
        *ret = (pid_t)strtol(p + 5, NULL, 10);
        return 0;
}

/* The transport's pidfd: the peer by construction, so only its pid needs to agree. */
static int pin_given(const PeerProcess *p, Error *err) {
        _cleanup_close_ int fd = fcntl(p->pidfd, F_DUPFD_CLOEXEC, 3);
        pid_t pid;
        int r;

        if (fd < 0)
                return error_set(err, -ESRCH, "the pidfd of pid %d cannot be used: %s", (int)p->pid,
                                 strerror(errno));
        r = pidfd_get_pid(fd, &pid);
        if (r < 0)
                return error_set(err, -ESRCH, "the pidfd of pid %d cannot be read: %s", (int)p->pid,
                                 strerror(-r));
        if (pid <= 0)
                return error_set(err, -ESRCH, "pid %d has exited", (int)p->pid);
        if (pid != p->pid)
                return error_set(err, -ESRCH, "the connection's pidfd names pid %d, not pid %d",
                                 (int)pid, (int)p->pid);
        return TAKE_FD(fd);
}

/* No pidfd from the transport: the process with that pid now, if it is old enough. */
static int pin_by_pid(const PeerProcess *p, const char *proc_root, Error *err) {
        _cleanup_close_ int fd = (int)syscall(SYS_pidfd_open, p->pid, 0);
        _cleanup_free_ char *stat = NULL;
        char path[PATH_MAX];
        uint64_t ticks, start;
        long hz = sysconf(_SC_CLK_TCK);
        int r;

        if (fd < 0)
                return error_set(err, -ESRCH, "pid %d cannot be pinned: %s", (int)p->pid,
                                 strerror(errno));
        snprintf(path, sizeof(path), "%s/%d/stat", proc_root, (int)p->pid);
        r = file_util_read_at(AT_FDCWD, path, 4096, &stat, NULL);
        if (r >= 0)
                r = peer_process_parse_start(stat, &ticks);
        if (r < 0)
                return error_set(err, -ESRCH, "the start time of pid %d cannot be read: %s",
                                 (int)p->pid, strerror(-r));
        if (hz <= 0)
                hz = 100;
        start = ticks / (uint64_t)hz * UINT64_C(1000000) +
                ticks % (uint64_t)hz * UINT64_C(1000000) / (uint64_t)hz;
        if (start > p->accepted_usec)
                return error_set(err, -ESRCH, "pid %d started after the connection was accepted",
                                 (int)p->pid);
        return TAKE_FD(fd);
}

int peer_process_pin(const PeerProcess *p, const char *proc_root, Error *err) {
        if (p->pid <= 0)
                return error_set(err, -ESRCH, "the connection names no process");
        if (p->pidfd >= 0)
                return pin_given(p, err);
        if (p->pidfd != -EBADF)
                return error_set(err, -ESRCH, "the pidfd of pid %d is unavailable: %s", (int)p->pid,
                                 strerror(-p->pidfd));
        return pin_by_pid(p, proc_root ?: "/proc", err);
}

int peer_process_alive(int pidfd) {
        struct pollfd pfd = {.fd = pidfd, .events = POLLIN};
        int r = poll(&pfd, 1, 0);

        if (r < 0)
                return negative_errno();
        if (pfd.revents & POLLNVAL)
                return -EBADF;
        /* A pidfd polls readable once its process has exited. */
        return r == 0 || !(pfd.revents & (POLLIN | POLLHUP));
}
