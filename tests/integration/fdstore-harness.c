/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* The fd-store harness of the restart tests (fdstore-harness.h) and their client calls. */

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "fdstore-harness.h"

bool streq_safe(const char *a, const char *b) {
        return a && b && strcmp(a, b) == 0;
}

static bool same_file(int a, int b) {
        struct stat sa, sb;

        return fstat(a, &sa) == 0 && fstat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
               sa.st_ino == sb.st_ino;
}

/* Handles one notify datagram as systemd's service manager does. */
static void harness_handle(Harness *h, const char *msg, int *fds, size_t n_fds) {
        char name[256] = "stored";
        bool store = false, remove = false;
        const char *p;

        if (strstr(msg, "READY=1"))
                h->ready = true;
        store = strstr(msg, "FDSTORE=1") != NULL;
        remove = strstr(msg, "FDSTOREREMOVE=1") != NULL;
        p = strstr(msg, "FDNAME=");
        if (p) {
                size_t n = strcspn(p + 7, "\n");

                assert_true(n < sizeof(name));
                memcpy(name, p + 7, n);
                name[n] = '\0';
                assert_null(strchr(name, ':'));
        }
        if (remove)
                for (size_t i = 0; i < h->n_store;) {
                        if (strcmp(h->store[i].name, name) == 0) {
                                close(h->store[i].fd);
                                h->store[i] = h->store[--h->n_store];
                        } else
                                i++;
                }
        for (size_t k = 0; k < n_fds; k++) {
                bool dup = false;

                for (size_t i = 0; store && i < h->n_store && !dup; i++)
                        dup = same_file(h->store[i].fd, fds[k]);
                if (!store || dup || h->n_store == 256) {
                        close(fds[k]);
                        continue;
                }
                snprintf(h->store[h->n_store].name, sizeof(h->store[0].name), "%s", name);
                h->store[h->n_store++].fd = fds[k];
        }
}

/* Reads every queued notify message; with wait_ready, until READY=1 or the daemon died. */
static int harness_pump(Harness *h, bool wait_ready) {
        for (;;) {
                union {
                        struct cmsghdr h;
                        char buf[CMSG_SPACE(sizeof(int) * 64)];
                } control;
                char buf[4096];
                struct iovec iov = { .iov_base = buf, .iov_len = sizeof(buf) - 1 };
                struct msghdr mh = {
                        .msg_iov = &iov,
                        .msg_iovlen = 1,
                        .msg_control = &control,
                        .msg_controllen = sizeof(control),
                };
                struct pollfd pfd = { .fd = h->notify_fd, .events = POLLIN };
                int fds[64];
                size_t n_fds = 0;
                ssize_t n;
                int status;

                if (poll(&pfd, 1, wait_ready && !h->ready ? 100 : 0) <= 0) {
                        if (!wait_ready || h->ready)
                                return 0;
                        if (waitpid(h->d.pid, &status, WNOHANG) == h->d.pid) {
                                h->d.pid = 0;
                                return -ECHILD;
                        }
                        continue;
                }
                n = recvmsg(h->notify_fd, &mh, MSG_CMSG_CLOEXEC);
                if (n < 0)
                        return -errno;
                buf[n] = '\0';
                for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm))
                        if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS) {
                                size_t k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);

                                memcpy(fds + n_fds, CMSG_DATA(cm), k * sizeof(int));
                                n_fds += k;
                        }
                assert_false(mh.msg_flags & MSG_CTRUNC);
                harness_handle(h, buf, fds, n_fds);
        }
}

static void harness_exec(Harness *h) {
        const char *binary = getenv("IOMMUD_BINARY");
        char empty[320], cdi[320], names[8192] = "", num[32];
        int high[256];

        /* Move the stored fds out of the way, then to 3..N, inheritable. */
        for (size_t i = 0; i < h->n_store; i++)
                high[i] = fcntl(h->store[i].fd, F_DUPFD, 512);
        for (size_t i = 0; i < h->n_store; i++) {
                if (dup2(high[i], 3 + (int)i) < 0)
                        _exit(126);
                if (i > 0)
                        strncat(names, ":", sizeof(names) - strlen(names) - 1);
                strncat(names, h->store[i].name, sizeof(names) - strlen(names) - 1);
        }
        if (h->n_store > 0) {
                snprintf(num, sizeof(num), "%zu", h->n_store);
                setenv("LISTEN_FDS", num, 1);
                setenv("LISTEN_FDNAMES", names, 1);
                snprintf(num, sizeof(num), "%d", (int)getpid());
                setenv("LISTEN_PID", num, 1);
        } else {
                unsetenv("LISTEN_FDS");
                unsetenv("LISTEN_FDNAMES");
                unsetenv("LISTEN_PID");
        }
        setenv("NOTIFY_SOCKET", h->notify, 1);
        setenv("FDSTORE", "256", 1);
        unsetenv("WATCHDOG_USEC");
        snprintf(empty, sizeof(empty), "%s/empty.d", h->d.dir);
        snprintf(cdi, sizeof(cdi), "%s/cdi", h->d.dir);
        execl(binary, binary, "--sim", h->topology, "--runtime-dir", h->d.dir, "--policy",
              h->d.policy, "--policy-dir", empty, "--vendor-policy-dir", empty, "--cdi-dir", cdi,
              "--log-level", getenv("IOMMUD_ITEST_LOG_LEVEL") ?: "notice", NULL);
        _exit(127);
}

int harness_launch(Harness *h) {
        h->ready = false;
        h->d.pid = itest_fork();
        if (h->d.pid < 0) {
                int r = h->d.pid;

                h->d.pid = 0;
                return r;
        }
        if (h->d.pid == 0)
                harness_exec(h);
        return harness_pump(h, true);
}

/* topology_json: a simulated host of the test's own (NULL: the bundled workstation). */
void harness_start_on(Harness *h, const char *policy_extra, const char *topology_json) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        char empty[320];
        char *policy = itest_policy_for_self(policy_extra);
        FILE *f;

        assert_non_null(policy);
        memset(h, 0, sizeof(*h));
        snprintf(h->topology, sizeof(h->topology), "workstation");
        snprintf(h->d.dir, sizeof(h->d.dir), "/tmp/iommud-lifecycle-XXXXXX");
        assert_non_null(mkdtemp(h->d.dir));
        assert_int_equal(chmod(h->d.dir, 0755), 0);
        snprintf(h->d.socket, sizeof(h->d.socket), "%s/org.iommud.Broker", h->d.dir);
        snprintf(h->d.dev_root, sizeof(h->d.dev_root), "%s/sim/dev", h->d.dir);
        snprintf(h->d.policy, sizeof(h->d.policy), "%s/policy.json", h->d.dir);
        snprintf(empty, sizeof(empty), "%s/empty.d", h->d.dir);
        snprintf(h->notify, sizeof(h->notify), "%s/notify", h->d.dir);
        assert_int_equal(mkdir(empty, 0755), 0);
        f = fopen(h->d.policy, "we");
        assert_non_null(f);
        fputs(policy, f);
        assert_int_equal(fclose(f), 0);
        free(policy);

        h->notify_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        assert_true(h->notify_fd >= 0);
        memcpy(sa.sun_path, h->notify, strlen(h->notify) + 1);
        assert_int_equal(bind(h->notify_fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
        if (topology_json) {
                snprintf(h->topology, sizeof(h->topology), "%s/topology.json", h->d.dir);
                f = fopen(h->topology, "we");
                assert_non_null(f);
                fputs(topology_json, f);
                assert_int_equal(fclose(f), 0);
        }
        assert_int_equal(harness_launch(h), 0);
}

void harness_start(Harness *h, const char *policy_extra) {
        harness_start_on(h, policy_extra, NULL);
}

static void harness_signal(Harness *h, int sig, int *ret_status) {
        assert_true(h->d.pid > 0);
        assert_int_equal(kill(h->d.pid, sig), 0);
        assert_int_equal(waitpid(h->d.pid, ret_status, 0), h->d.pid);
        h->d.pid = 0;
        assert_int_equal(harness_pump(h, false), 0);
}

void harness_kill(Harness *h) {
        int status;

        harness_signal(h, SIGKILL, &status);
}

void harness_term(Harness *h) {
        int status;

        harness_signal(h, SIGTERM, &status);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
}

void harness_stop(Harness *h) {
        (void)itest_daemon_stop(&h->d);
        for (size_t i = 0; i < h->n_store; i++)
                close(h->store[i].fd);
        h->n_store = 0;
        close(h->notify_fd);
}

size_t harness_count(const Harness *h, const char *prefix) {
        size_t n = 0;

        for (size_t i = 0; i < h->n_store; i++)
                n += strncmp(h->store[i].name, prefix, strlen(prefix)) == 0;
        return n;
}

/* ---- client calls ---- */

ItestClient *connect_client(Harness *h) {
        ItestClient *c = NULL;

        assert_int_equal(itest_client_connect(&c, h->d.socket), 0);
        return c;
}

json_object *ok_call(ItestClient *c, const char *method, json_object *params,
                            const int *fds, size_t n_fds) {
        json_object *r = itest_call(c, method, params, fds, n_fds);

        assert_non_null(r);
        if (itest_reply_error(r))
                fail_msg("%s failed: %s", method, json_object_to_json_string(r));
        return r;
}

uint64_t call_u64(ItestClient *c, const char *method, json_object *params, const char *key,
                         const int *fds, size_t n_fds) {
        json_object *r = ok_call(c, method, params, fds, n_fds);
        uint64_t v = itest_get_u64(itest_reply_params(r), key);

        json_object_put(r);
        return v;
}

const char *call_error(ItestClient *c, const char *method, json_object *params,
                              json_object **ret) {
        json_object *r = itest_call(c, method, params, NULL, 0);

        assert_non_null(r);
        *ret = r;
        return itest_reply_error(r);
}

uint64_t usage_of(ItestClient *c, const char *resource, char *token, size_t n) {
        json_object *r = ok_call(c, "org.iommud.Broker.GetSession", NULL, NULL, 0), *usage;
        uint64_t v = UINT64_MAX;

        assert_true(json_object_object_get_ex(itest_reply_params(r), "usage", &usage));
        for (size_t i = 0; i < json_object_array_length(usage); i++) {
                json_object *u = json_object_array_get_idx(usage, i);

                if (streq_safe(itest_get_string(u, "resource"), resource))
                        v = itest_get_u64(u, "used");
        }
        if (token)
                snprintf(token, n, "%s", itest_get_string(itest_reply_params(r), "token"));
        json_object_put(r);
        return v;
}

uint64_t map_fixed(ItestClient *c, uint64_t ioas, int memfd, uint64_t iova, uint64_t len) {
        return call_u64(c, "org.iommud.Broker.Map",
                        itest_params("ioasId", json_object_new_int64((int64_t)ioas), "memoryFd",
                                     json_object_new_int(0), "offset", json_object_new_int(0),
                                     "length", json_object_new_int64((int64_t)len), "iova",
                                     json_object_new_int64((int64_t)iova), "readable",
                                     json_object_new_boolean(true), "writeable",
                                     json_object_new_boolean(true), NULL),
                        "iova", &memfd, 1);
}

uint64_t unmap(ItestClient *c, uint64_t ioas, uint64_t iova, uint64_t len) {
        return call_u64(c, "org.iommud.Broker.Unmap",
                        itest_params("ioasId", json_object_new_int64((int64_t)ioas), "iova",
                                     json_object_new_int64((int64_t)iova), "length",
                                     json_object_new_int64((int64_t)len), NULL),
                        "unmapped", NULL, 0);
}

uint64_t attach_by_name(ItestClient *c, const char *name) {
        return call_u64(c, "org.iommud.Broker.AttachDevice",
                        itest_params("device", json_object_new_string(name), NULL), "deviceId",
                        NULL, 0);
}

void join(ItestClient *c, const char *token) {
        json_object_put(ok_call(c, "org.iommud.Broker.JoinSession",
                                itest_params("token", json_object_new_string(token), NULL), NULL,
                                0));
}

void simulator(Harness *h, const char *method, json_object *params) {
        ItestClient *s = connect_client(h);

        json_object_put(ok_call(s, method, params, NULL, 0));
        itest_client_free(s);
}

/* A second connection of the session with a WatchFaults stream on it. */
ItestClient *watch_faults(Harness *h, const char *token) {
        ItestClient *w = connect_client(h);
        json_object *m;
        const char *t;

        join(w, token);
        m = itest_params("method", json_object_new_string("org.iommud.Broker.WatchFaults"),
                         "parameters", json_object_new_object(), "more",
                         json_object_new_boolean(true), NULL);
        t = json_object_to_json_string_ext(m, JSON_C_TO_STRING_PLAIN);
        assert_int_equal(itest_client_send_raw(w, t, strlen(t) + 1, NULL, 0), 0);
        json_object_put(m);
        return w;
}

uint64_t sim_stat(Harness *h, const char *name) {
        ItestClient *s = connect_client(h);
        json_object *r = ok_call(s, "org.iommud.Simulator.GetStats", NULL, NULL, 0);
        uint64_t v = itest_get_u64(itest_reply_params(r), name);

        json_object_put(r);
        itest_client_free(s);
        return v;
}
