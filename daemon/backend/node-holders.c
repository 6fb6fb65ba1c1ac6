/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <dirent.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "assert-util.h"
#include "macros.h"
#include "node-holders.h"

static void closedirp(DIR **d) {
        if (*d)
                closedir(*d);
}

static bool same_file(const struct stat *node, const struct statx *f) {
        mode_t type = node->st_mode & S_IFMT;

        if ((f->stx_mode & S_IFMT) != type)
                return false;
        if (type == S_IFCHR || type == S_IFBLK)
                return makedev(f->stx_rdev_major, f->stx_rdev_minor) == node->st_rdev;
        return makedev(f->stx_dev_major, f->stx_dev_minor) == node->st_dev &&
               f->stx_ino == node->st_ino;
}

/* 1 when one of the fds in /proc/PID/fd (dirfd taken) is node, 0 when none is. */
static int fd_dir_holds(int dirfd, const struct stat *node) {
        DIR *d = fdopendir(dirfd);

        if (!d) {
                safe_close(dirfd);
                return 0;
        }
        for (struct dirent *de; (de = readdir(d));) {
                char link[64];
                struct statx stx;
                ssize_t n;

                if (de->d_name[0] == '.')
                        continue;
                /* Sockets, pipes and anonymous inodes are never a node: no stat for them. */
                n = readlinkat(dirfd, de->d_name, link, sizeof(link) - 1);
                if (n > 0) {
                        link[n] = '\0';
                        if (strchr(link, ':') && link[0] != '/')
                                continue;
                }
                /* Cached attributes only: a dead network file system must not stall us. */
                if (statx(dirfd, de->d_name, AT_STATX_DONT_SYNC, STATX_TYPE | STATX_INO, &stx) < 0)
                        continue;
                if (same_file(node, &stx)) {
                        closedir(d);
                        return 1;
                }
        }
        closedir(d);
        return 0;
}

int node_held_by(const struct stat *node, pid_t pid) {
        char path[64];
        int dirfd;

        assert_return(node, -EINVAL);
        assert_return(pid > 0, -EINVAL);

        snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
        dirfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dirfd < 0)
                return 0;
        return fd_dir_holds(dirfd, node);
}

int node_holders(const struct stat *node, pid_t *pids, size_t n_max, size_t *ret_n) {
        _cleanup_(closedirp) DIR *proc = NULL;
        pid_t self = getpid();
        size_t n = 0;

        assert_return(node, -EINVAL);
        assert_return(pids || n_max == 0, -EINVAL);
        assert_return(ret_n, -EINVAL);
        assert_return(*ret_n <= n_max, -EINVAL);

        if (*ret_n > 0) {
                /* Only the candidates: kept in place, in their order. */
                for (size_t i = 0; i < *ret_n; i++)
                        if (pids[i] > 0 && pids[i] != self && node_held_by(node, pids[i]) > 0)
                                pids[n++] = pids[i];
                *ret_n = n;
                return 0;
        }
        proc = opendir("/proc");
        if (!proc)
                return negative_errno();
        for (struct dirent *de; (de = readdir(proc));) {
                char *end;
                long pid = strtol(de->d_name, &end, 10);

                if (*end != '\0' || pid <= 0 || (pid_t)pid == self)
                        continue;
                if (node_held_by(node, (pid_t)pid) <= 0)
                        continue;
                if (n < n_max)
                        pids[n] = (pid_t)pid;
                n++;
        }
        *ret_n = n;
        return 0;
}
