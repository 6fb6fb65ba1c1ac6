/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "itest-cgroup.h"
#include "itest.h"

static int read_text(const char *path, char *buf, size_t size) {
        FILE *f = fopen(path, "re");
        size_t n;

        if (!f)
                return -errno;
        n = fread(buf, 1, size - 1, f);
        buf[n] = 0;
        fclose(f);
        return 0;
}

/* The mount point of cgroup2, if it shows the whole hierarchy (its root is "/"). */
static int find_mount(char *buf, size_t size) {
        char line[1024];
        FILE *f = fopen("/proc/self/mountinfo", "re");
        int r = -ENOENT;

        if (!f)
                return -errno;
        while (fgets(line, sizeof(line), f)) {
                char root[200], where[200];
                const char *sep = strstr(line, " - cgroup2 ");

                if (!sep || sscanf(line, "%*s %*s %*s %199s %199s", root, where) != 2)
                        continue;
                r = strcmp(root, "/") == 0 ? 0 : -EXDEV;
                if (r == 0)
                        snprintf(buf, size, "%s", where);
                break;
        }
        fclose(f);
        return r;
}

/* The test's own cgroup2 path, from the "0::" line, without a trailing "/". */
static int own_cgroup(char *buf, size_t size) {
        char text[4096];
        const char *p;
        int r = read_text("/proc/self/cgroup", text, sizeof(text));

        if (r < 0)
                return r;
        p = strncmp(text, "0::", 3) == 0 ? text : strstr(text, "\n0::");
        if (!p)
                return -ENOENT;
        p += p == text ? 3 : 4;
        snprintf(buf, size, "%.*s", (int)strcspn(p, "\n"), p);
        if (strcmp(buf, "/") == 0)
                buf[0] = 0;
        return 0;
}

int itest_cgroups_init(ItestCgroups *cg) {
        char own[256], dir[512];
        struct stat st;
        int r;

        memset(cg, 0, sizeof(*cg));
        if (geteuid() != 0) {
                snprintf(cg->skip, sizeof(cg->skip), "needs root to make cgroups and to run "
                                                     "clients as other users");
                return -EPERM;
        }
        r = find_mount(cg->mount, sizeof(cg->mount));
        if (r >= 0)
                r = own_cgroup(own, sizeof(own));
        if (r < 0) {
                snprintf(cg->skip, sizeof(cg->skip), "no cgroup2 hierarchy to use: %s",
                         strerror(-r));
                return r;
        }
        /* Inside somebody's delegated subtree nothing below could ever be the system's. */
        snprintf(dir, sizeof(dir), "%s%s", cg->mount, own);
        if (stat(dir, &st) < 0 || st.st_uid != 0) {
                snprintf(cg->skip, sizeof(cg->skip), "the test's cgroup %s is not root's", dir);
                return -EPERM;
        }
        snprintf(cg->path, sizeof(cg->path), "%s/iommud-test-%d", own, (int)getpid());
        snprintf(cg->base, sizeof(cg->base), "%s%s", cg->mount, cg->path);
        if (mkdir(cg->base, 0755) < 0) {
                r = -errno;
                snprintf(cg->skip, sizeof(cg->skip), "cannot make a cgroup under %s: %s",
                         cg->mount, strerror(errno));
                return r;
        }
        return 0;
}

static int remove_dir(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
        if (flag == FTW_DP)
                (void)rmdir(path);
        return 0;
}

void itest_cgroups_cleanup(ItestCgroups *cg) {
        if (!cg->base[0])
                return;
        (void)nftw(cg->base, remove_dir, 16, FTW_DEPTH | FTW_PHYS);
        cg->base[0] = 0;
}

/* A delegated cgroup is the user's with the files that let it manage its processes. */
static int chown_cgroup(const char *dir, uid_t uid) {
        static const char *const files[] = { "", "/cgroup.procs", "/cgroup.threads",
                                             "/cgroup.subtree_control" };
        char path[768];

        for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
                snprintf(path, sizeof(path), "%s%s", dir, files[i]);
                if (chown(path, uid, (gid_t)uid) < 0)
                        return -errno;
        }
        return 0;
}

int itest_cgroup_make(ItestCgroups *cg, const char *rel, const char *owned_from, uid_t uid) {
        char path[768];
        size_t base_len = (size_t)snprintf(path, sizeof(path), "%s/%s", cg->base, rel);

        for (size_t at = strlen(cg->base) + 1;; at++) {
                char c = path[at];
                const char *here = path + strlen(cg->base) + 1;

                if (c != '/' && c != 0)
                        continue;
                path[at] = 0;
                if (mkdir(path, 0755) < 0 && errno != EEXIST)
                        return -errno;
                if (owned_from && strncmp(here, owned_from, strlen(owned_from)) == 0 &&
                    strlen(here) >= strlen(owned_from) && chown_cgroup(path, uid) < 0)
                        return -errno;
                path[at] = c;
                if (c == 0 || at >= base_len)
                        return 0;
        }
}

int itest_cgroup_mark_delegated(ItestCgroups *cg, const char *rel, const char *xattr) {
        char path[768];

        snprintf(path, sizeof(path), "%s/%s", cg->base, rel);
        return setxattr(path, xattr, "1", 1, 0) < 0 ? -errno : 0;
}

static int write_pid(const char *dir, pid_t pid) {
        char path[1024];
        FILE *f;

        snprintf(path, sizeof(path), "%s/cgroup.procs", dir);
        f = fopen(path, "we");
        if (!f)
                return -errno;
        fprintf(f, "%d\n", (int)pid);
        return fclose(f) == 0 ? 0 : -errno;
}

/* In the child, as uid: mkdir -p DIR/user_rel and move there. */
static int enter_own(const char *dir, const char *user_rel) {
        char path[1024];
        size_t start = (size_t)snprintf(path, sizeof(path), "%s/", dir);

        snprintf(path + start, sizeof(path) - start, "%s", user_rel);
        for (size_t at = start;; at++) {
                char c = path[at];

                if (c != '/' && c != 0)
                        continue;
                path[at] = 0;
                if (mkdir(path, 0755) < 0 && errno != EEXIST)
                        return -errno;
                path[at] = c;
                if (c == 0)
                        break;
        }
        return write_pid(path, getpid());
}

static void child(ItestCgroups *cg, const char *rel, const char *user_rel, uid_t uid, gid_t gid,
                  ItestCgroupFn fn, void *userdata, int go, int out) {
        char dir[768], report[2048] = "", b;
        int status;

        if (read(go, &b, 1) != 1)
                _exit(101);
        if (setgroups(0, NULL) < 0 || setgid(gid) < 0 || setuid(uid) < 0)
                _exit(102);
        /* Changing credentials disarmed what itest_fork() armed. */
        itest_die_with_parent();
        snprintf(dir, sizeof(dir), "%s/%s", cg->base, rel);
        if (user_rel && enter_own(dir, user_rel) < 0) {
                snprintf(report, sizeof(report), "cannot move into %s/%s: %m", dir, user_rel);
                (void)!write(out, report, strlen(report));
                _exit(103);
        }
        status = fn(userdata, report, sizeof(report));
        (void)!write(out, report, strlen(report));
        _exit(status);
}

int itest_cgroup_run(ItestCgroups *cg, const char *rel, const char *user_rel, uid_t uid,
                     gid_t gid, ItestCgroupFn fn, void *userdata, char *report, size_t size) {
        char dir[768];
        int go[2], out[2], status = 0;
        size_t n = 0;
        ssize_t k;
        pid_t pid;

        if (pipe2(go, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0)
                return -errno;
        /* What the parent has buffered must not be written twice. */
        fflush(NULL);
        pid = itest_fork();
        if (pid < 0)
                return pid;
        if (pid == 0) {
                close(go[1]);
                close(out[0]);
                child(cg, rel, user_rel, uid, gid, fn, userdata, go[0], out[1]);
        }
        close(go[0]);
        close(out[1]);
        snprintf(dir, sizeof(dir), "%s/%s", cg->base, rel);
        if (write_pid(dir, pid) < 0)
                (void)kill(pid, SIGKILL);
        else
                (void)!write(go[1], "g", 1);
        close(go[1]);
        while (n + 1 < size && (k = read(out[0], report + n, size - 1 - n)) > 0)
                n += (size_t)k;
        report[n] = 0;
        close(out[0]);
        if (waitpid(pid, &status, 0) != pid)
                return -errno;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 200;
}
