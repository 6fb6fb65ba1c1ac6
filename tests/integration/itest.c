/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "itest.h"

/* The process whose children itest_fork() makes: they end with it. */
static pid_t itest_parent;

void itest_die_with_parent(void) {
        (void)prctl(PR_SET_PDEATHSIG, SIGKILL);
        /* The parent may have gone before the line above ran: then nobody will signal us. */
        if (getppid() != itest_parent)
                _exit(EXIT_FAILURE);
}

pid_t itest_fork(void) {
        pid_t pid;

        itest_parent = getpid();
        pid = fork();
        if (pid < 0)
                return -errno;
        if (pid == 0)
                itest_die_with_parent();
        return pid;
}

int itest_write_file(const char *path, const char *text) {
        FILE *f = fopen(path, "we");

        if (!f)
                return -errno;
        fputs(text, f);
        if (fclose(f) != 0)
                return -errno;
        return chmod(path, 0644) < 0 ? -errno : 0;
}

char *itest_policy_for_self(const char *extra) {
        char *p = NULL;

        if (asprintf(&p,
                     "{\n"
                     "  \"limits\": { \"max-connections-per-user\": 4096,\n"
                     "              \"max-message-size\": \"64K\", \"max-fds-per-message\": 16,\n"
                     "              \"device-release-timeout-ms\": 0 },\n"
                     "  \"rules\": { \"all\": { \"action\": \"allow\", \"match\": \"*\" } },\n"
                     "  \"grants\": {\n"
                     "    \"self\": {\n"
                     "      \"principals\": [ { \"user\": %u } ],\n"
                     "      \"devices\": \"*\"%s%s\n"
                     "    }\n"
                     "  }\n"
                     "}\n",
                     (unsigned)getuid(), extra ? ",\n      " : "", extra ?: "") < 0)
                return NULL;
        return p;
}

/* In the daemon's child: a test that reads the daemon's log names a file for it. */
static void redirect_log(void) {
        const char *path = getenv("IOMMUD_ITEST_STDERR");
        int lfd;

        if (!path)
                return;
        lfd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (lfd < 0 || dup2(lfd, STDERR_FILENO) < 0)
                _exit(126);
}

int itest_daemon_start(ItestDaemon *d, const char *topology, const char *policy_json) {
        const char *binary = getenv("IOMMUD_BINARY");
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        char empty[300], cdi[300], notify[300];
        int nfd, r;

        memset(d, 0, sizeof(*d));
        if (!binary)
                return -ENOENT;
        snprintf(d->dir, sizeof(d->dir), "/tmp/iommud-itest-XXXXXX");
        if (!mkdtemp(d->dir))
                return -errno;
        /* Other principals (the denial tests) must reach the socket. */
        if (chmod(d->dir, 0755) < 0)
                return -errno;
        snprintf(d->socket, sizeof(d->socket), "%s/org.iommud.Broker", d->dir);
        snprintf(d->dev_root, sizeof(d->dev_root), "%s/sim/dev", d->dir);
        snprintf(d->policy, sizeof(d->policy), "%s/policy.json", d->dir);
        snprintf(empty, sizeof(empty), "%s/empty.d", d->dir);
        snprintf(notify, sizeof(notify), "%s/notify", d->dir);
        if (mkdir(empty, 0755) < 0)
                return -errno;
        r = itest_write_file(d->policy, policy_json);
        if (r < 0)
                return r;

        nfd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (nfd < 0)
                return -errno;
        if (strlen(notify) >= sizeof(sa.sun_path)) {
                close(nfd);
                return -ENAMETOOLONG;
        }
        memcpy(sa.sun_path, notify, strlen(notify) + 1);
        if (bind(nfd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
                r = -errno;
                close(nfd);
                return r;
        }

        d->pid = itest_fork();
        if (d->pid < 0) {
                r = d->pid;
                d->pid = 0;
                close(nfd);
                return r;
        }
        if (d->pid == 0) {
                setenv("NOTIFY_SOCKET", notify, 1);
                unsetenv("LISTEN_FDS");
                unsetenv("LISTEN_PID");
                unsetenv("WATCHDOG_USEC");
                redirect_log();
                snprintf(cdi, sizeof(cdi), "%s/cdi", d->dir);
                execl(binary, binary, "--sim", topology, "--runtime-dir", d->dir, "--policy",
                      d->policy, "--policy-dir", empty, "--vendor-policy-dir", empty,
                      "--cdi-dir", cdi, "--log-level",
                      getenv("IOMMUD_ITEST_LOG_LEVEL") ?: "notice", NULL);
                _exit(127);
        }

        /* Wait for READY=1; a daemon that dies first fails the start, never a clock. */
        for (;;) {
                struct pollfd pfd = { .fd = nfd, .events = POLLIN };
                char buf[1024];
                int status;
                ssize_t n;

                r = poll(&pfd, 1, 100);
                if (r > 0) {
                        n = recv(nfd, buf, sizeof(buf) - 1, 0);
                        if (n > 0) {
                                buf[n] = '\0';
                                if (strstr(buf, "READY=1"))
                                        break;
                        }
                        continue;
                }
                if (waitpid(d->pid, &status, WNOHANG) == d->pid) {
                        d->pid = 0;
                        close(nfd);
                        return -ECHILD;
                }
        }
        close(nfd);
        return 0;
}

int itest_daemon_stop(ItestDaemon *d) {
        int status = 0;
        char cmd[400];

        if (d->pid > 0) {
                kill(d->pid, SIGTERM);
                while (waitpid(d->pid, &status, 0) < 0 && errno == EINTR)
                        ;
                d->pid = 0;
        }
        if (d->dir[0]) {
                snprintf(cmd, sizeof(cmd), "rm -rf '%s'", d->dir);
                (void)!system(cmd);
        }
        if (WIFEXITED(status))
                return WEXITSTATUS(status);
        return -1;
}

int itest_daemon_count_fds(const ItestDaemon *d) {
        char path[64];
        struct dirent *de;
        DIR *dir;
        int n = 0;

        snprintf(path, sizeof(path), "/proc/%d/fd", (int)d->pid);
        dir = opendir(path);
        if (!dir)
                return -errno;
        while ((de = readdir(dir)))
                if (de->d_name[0] != '.')
                        n++;
        closedir(dir);
        return n;
}

int itest_client_connect(ItestClient **ret, const char *socket_path) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        ItestClient *c = calloc(1, sizeof(*c));

        if (!c)
                return -ENOMEM;
        c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (c->fd < 0) {
                free(c);
                return -errno;
        }
        if (strlen(socket_path) >= sizeof(sa.sun_path)) {
                close(c->fd);
                free(c);
                return -ENAMETOOLONG;
        }
        memcpy(sa.sun_path, socket_path, strlen(socket_path) + 1);
        if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
                int r = -errno;
                close(c->fd);
                free(c);
                return r;
        }
        *ret = c;
        return 0;
}

void itest_client_free(ItestClient *c) {
        if (!c)
                return;
        for (size_t i = 0; i < c->n_rfds; i++)
                close(c->rfds[i]);
        close(c->fd);
        free(c->buf);
        free(c);
}

int itest_client_send_raw(ItestClient *c, const void *data, size_t n, const int *fds,
                          size_t n_fds) {
        union {
                struct cmsghdr h;
                char buf[CMSG_SPACE(sizeof(int) * 64)];
        } control = {};
        struct iovec iov = { .iov_base = (void *)data, .iov_len = n };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
        size_t sent = 0;

        if (n_fds > 64)
                return -E2BIG;
        if (n_fds > 0) {
                struct cmsghdr *cm;

                mh.msg_control = &control;
                mh.msg_controllen = CMSG_SPACE(sizeof(int) * n_fds);
                cm = CMSG_FIRSTHDR(&mh);
                cm->cmsg_level = SOL_SOCKET;
                cm->cmsg_type = SCM_RIGHTS;
                cm->cmsg_len = CMSG_LEN(sizeof(int) * n_fds);
                memcpy(CMSG_DATA(cm), fds, sizeof(int) * n_fds);
        }
        while (sent < n) {
                ssize_t k;

                iov.iov_base = (char *)data + sent;
                iov.iov_len = n - sent;
                k = sendmsg(c->fd, &mh, MSG_NOSIGNAL);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                sent += (size_t)k;
                mh.msg_control = NULL;
                mh.msg_controllen = 0;
        }
        return 0;
}

int itest_client_send(ItestClient *c, const char *method, json_object *params, const int *fds,
                      size_t n_fds) {
        json_object *m = json_object_new_object();
        const char *text;
        int r;

        json_object_object_add(m, "method", json_object_new_string(method));
        if (params)
                json_object_object_add(m, "parameters", params);
        text = json_object_to_json_string_ext(m, JSON_C_TO_STRING_PLAIN);
        r = itest_client_send_raw(c, text, strlen(text) + 1, fds, n_fds);
        json_object_put(m);
        return r;
}

int itest_client_recv(ItestClient *c, json_object **ret) {
        for (;;) {
                char *nul = c->n ? memchr(c->buf, '\0', c->n) : NULL;

                if (nul) {
                        size_t len = (size_t)(nul - c->buf);
                        json_object *o = json_tokener_parse(c->buf);

                        memmove(c->buf, nul + 1, c->n - len - 1);
                        c->n -= len + 1;
                        if (!o)
                                return -EBADMSG;
                        *ret = o;
                        return 1;
                }
                if (c->alloc - c->n < 65536) {
                        size_t m = c->alloc ? c->alloc * 2 : 131072;
                        char *b = realloc(c->buf, m);
                        if (!b)
                                return -ENOMEM;
                        c->buf = b;
                        c->alloc = m;
                }

                union {
                        struct cmsghdr h;
                        char buf[CMSG_SPACE(sizeof(int) * 16)];
                } control;
                struct iovec iov = { .iov_base = c->buf + c->n, .iov_len = c->alloc - c->n };
                struct msghdr mh = {
                        .msg_iov = &iov,
                        .msg_iovlen = 1,
                        .msg_control = &control,
                        .msg_controllen = sizeof(control),
                };
                ssize_t k = recvmsg(c->fd, &mh, MSG_CMSG_CLOEXEC);

                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
                        if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
                                continue;
                        size_t nf = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
                        int *f = (int *)CMSG_DATA(cm);
                        for (size_t i = 0; i < nf; i++) {
                                if (c->n_rfds < 32)
                                        c->rfds[c->n_rfds++] = f[i];
                                else
                                        close(f[i]);
                        }
                }
                if (k == 0) {
                        *ret = NULL;
                        return 0;
                }
                c->n += (size_t)k;
        }
}

json_object *itest_call(ItestClient *c, const char *method, json_object *params, const int *fds,
                        size_t n_fds) {
        json_object *reply = NULL;

        if (itest_client_send(c, method, params, fds, n_fds) < 0)
                return NULL;
        if (itest_client_recv(c, &reply) <= 0)
                return NULL;
        return reply;
}

bool itest_client_is_closed(ItestClient *c) {
        json_object *o = NULL;
        int r;

        /* Drain whatever replies came before the close. */
        for (;;) {
                r = itest_client_recv(c, &o);
                if (r <= 0)
                        return r == 0 || r == -ECONNRESET || r == -EPIPE;
                json_object_put(o);
        }
}

const char *itest_reply_error(json_object *reply) {
        json_object *e;

        if (!reply)
                return "(no reply)";
        if (!json_object_object_get_ex(reply, "error", &e))
                return NULL;
        return json_object_get_string(e);
}

json_object *itest_reply_params(json_object *reply) {
        json_object *p = NULL;

        if (reply)
                (void)json_object_object_get_ex(reply, "parameters", &p);
        return p;
}

uint64_t itest_get_u64(json_object *obj, const char *key) {
        json_object *v = NULL;

        if (!obj || !json_object_object_get_ex(obj, key, &v) ||
            !json_object_is_type(v, json_type_int)) {
                fprintf(stderr, "missing integer '%s' in %s\n", key,
                        obj ? json_object_to_json_string(obj) : "(null)");
                abort();
        }
        return json_object_get_uint64(v);
}

const char *itest_get_string(json_object *obj, const char *key) {
        json_object *v = NULL;

        if (!obj || !json_object_object_get_ex(obj, key, &v) ||
            !json_object_is_type(v, json_type_string))
                return NULL;
        return json_object_get_string(v);
}

json_object *itest_params(const char *key, ...) {
        json_object *o = json_object_new_object();
        va_list ap;

        va_start(ap, key);
        for (const char *k = key; k; k = va_arg(ap, const char *))
                json_object_object_add(o, k, va_arg(ap, json_object *));
        va_end(ap);
        return o;
}

int itest_memfd(size_t size) {
        int fd = memfd_create("itest", MFD_CLOEXEC | MFD_ALLOW_SEALING);

        if (fd < 0)
                return -errno;
        if (ftruncate(fd, (off_t)size) < 0) {
                close(fd);
                return -errno;
        }
        return fd;
}
