/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * The broker's cost, measured against a baseline in the same run:
 *
 *   1. a brokered Map+Unmap round trip (memfd passed with the Map) against a
 *      raw Unix-socket ping-pong of the same message sizes and fd passing
 *      (target: ratio <= 2.0);
 *   2. pipelined Map/Unmap throughput on one connection (target >= 150k ops/s);
 *   3. daemon memory per idle session with 1,000 sessions open (target <= 16 KiB).
 *
 * Prints figures; never passes or fails on time.
 */

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "bench-report.h"
#include "itest.h"
#include "macros.h"

#define PAGE 4096

static double now(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static _Noreturn void die(const char *what) {
        fprintf(stderr, "bench-broker: %s\n", what);
        exit(EXIT_FAILURE);
}

static char *map_text(uint64_t ioas, uint64_t iova) {
        char *s = NULL;

        if (asprintf(&s,
                     "{\"method\":\"org.iommud.Broker.Map\",\"parameters\":{\"ioasId\":%" PRIu64
                     ",\"memoryFd\":0,\"offset\":0,\"length\":%d,\"iova\":%" PRIu64
                     ",\"readable\":true,\"writeable\":true}}",
                     ioas, PAGE, iova) < 0)
                die("out of memory");
        return s;
}

static char *unmap_text(uint64_t ioas, uint64_t iova) {
        char *s = NULL;

        if (asprintf(&s,
                     "{\"method\":\"org.iommud.Broker.Unmap\",\"parameters\":{\"ioasId\":%" PRIu64
                     ",\"iova\":%" PRIu64 ",\"length\":%d}}",
                     ioas, iova, PAGE) < 0)
                die("out of memory");
        return s;
}

static void expect_ok(ItestClient *c) {
        json_object *r = NULL;

        if (itest_client_recv(c, &r) <= 0)
                die("the daemon closed the connection");
        if (itest_reply_error(r)) {
                fprintf(stderr, "bench-broker: error reply %s\n", json_object_to_json_string(r));
                exit(EXIT_FAILURE);
        }
        json_object_put(r);
}

/*
 * The raw baseline: a process that parses each NUL-terminated message and
 * answers it with the daemon's own reply text (Map and Unmap alternate), so
 * that both sides move the same bytes and the client parses the same replies.
 */
static pid_t start_echo(int fd, int peer, const char *reply_map, const char *reply_unmap) {
        pid_t pid = fork();

        if (pid != 0)
                return pid;
        /* The client's end too, or closing it in the parent would never end this loop. */
        close(peer);
        size_t len_map = strlen(reply_map) + 1, len_unmap = strlen(reply_unmap) + 1;
        char buf[65536];
        size_t n = 0;
        bool odd = false;

        for (;;) {
                union {
                        struct cmsghdr h;
                        char b[CMSG_SPACE(sizeof(int) * 16)];
                } control;
                struct iovec iov = { .iov_base = buf + n, .iov_len = sizeof(buf) - n };
                struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = &control,
                                     .msg_controllen = sizeof(control) };
                ssize_t k = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);
                char *nul;

                if (k <= 0)
                        _exit(0);
                for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm))
                        if (cm->cmsg_type == SCM_RIGHTS)
                                for (size_t i = 0; i < (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
                                     i++)
                                        close(((int *)CMSG_DATA(cm))[i]);
                n += (size_t)k;
                while ((nul = memchr(buf, '\0', n))) {
                        size_t len = (size_t)(nul - buf) + 1;
                        /* Parse like a server would, so the baseline is not just a memcpy. */
                        json_object *o = json_tokener_parse(buf);

                        json_object_put(o);
                        if (send(fd, odd ? reply_unmap : reply_map, odd ? len_unmap : len_map,
                                 MSG_NOSIGNAL) < 0)
                                _exit(0);
                        odd = !odd;
                        memmove(buf, buf + len, n - len);
                        n -= len;
                }
        }
}

static size_t rss_kib(pid_t pid) {
        char path[64], line[256];
        size_t kib = 0;
        FILE *f;

        snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
        f = fopen(path, "re");
        if (!f)
                return 0;
        while (fgets(line, sizeof(line), f))
                if (sscanf(line, "VmRSS: %zu kB", &kib) == 1)
                        break;
        fclose(f);
        return kib;
}

int main(int argc, char *argv[]) {
        /* IOMMUD_BENCH_SCALE (default 1) shrinks or grows every count, e.g. 0.1 for a quick look. */
        double scale = getenv("IOMMUD_BENCH_SCALE") ? atof(getenv("IOMMUD_BENCH_SCALE")) : 1.0;
        const int rounds = (int)(20000 * scale) ?: 1, pipelined = (int)(100000 * scale) ?: 128;
        const int window = 64, sessions = 1000;
        char *policy = itest_policy_for_self(
                "\"quotas\": { \"pinned-memory\": \"unlimited\", \"address-spaces\": \"unlimited\","
                " \"mappings\": \"unlimited\", \"devices\": \"unlimited\","
                " \"connections\": \"unlimited\" }");
        struct rlimit rl;
        ItestDaemon d;
        ItestClient *c;
        json_object *r;
        uint64_t ioas;
        _cleanup_free_ char *map_reply = NULL, *unmap_reply = NULL;
        double t0, brokered, raw;
        int mem, sp[2];

        signal(SIGPIPE, SIG_IGN);
        setvbuf(stdout, NULL, _IOLBF, 0);
        /* 1,000 sessions need 1,000 fds on each side. */
        if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < 4096) {
                rl.rlim_cur = rl.rlim_max < 4096 ? rl.rlim_max : 4096;
                (void)setrlimit(RLIMIT_NOFILE, &rl);
        }
        if (!policy || itest_daemon_start(&d, argc > 1 ? argv[1] : "workstation", policy) < 0)
                die("cannot start iommud (is IOMMUD_BINARY set?)");
        free(policy);
        if (itest_client_connect(&c, d.socket) < 0)
                die("cannot connect");
        mem = itest_memfd(PAGE);
        r = itest_call(c, "org.iommud.Broker.CreateAddressSpace", NULL, NULL, 0);
        if (itest_reply_error(r))
                die("CreateAddressSpace failed");
        ioas = itest_get_u64(itest_reply_params(r), "ioasId");
        json_object_put(r);

        /* Reply sizes for the baseline, from one real exchange. */
        {
                _cleanup_free_ char *m = map_text(ioas, 0x100000), *u = unmap_text(ioas, 0x100000);
                json_object *o;

                itest_client_send_raw(c, m, strlen(m) + 1, &mem, 1);
                if (itest_client_recv(c, &o) <= 0 || itest_reply_error(o))
                        die("Map failed");
                map_reply = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
                json_object_put(o);
                itest_client_send_raw(c, u, strlen(u) + 1, NULL, 0);
                if (itest_client_recv(c, &o) <= 0 || itest_reply_error(o))
                        die("Unmap failed");
                unmap_reply = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
                json_object_put(o);
                if (!map_reply || !unmap_reply)
                        die("out of memory");
        }

        /* 1. Round trips. */
        {
                _cleanup_free_ char *m = map_text(ioas, 0x100000), *u = unmap_text(ioas, 0x100000);
                ItestClient echo = { .fd = -1 };
                pid_t pid;

                t0 = now();
                for (int i = 0; i < rounds; i++) {
                        itest_client_send_raw(c, m, strlen(m) + 1, &mem, 1);
                        expect_ok(c);
                        itest_client_send_raw(c, u, strlen(u) + 1, NULL, 0);
                        expect_ok(c);
                }
                brokered = (now() - t0) / rounds;

                if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0)
                        die("socketpair failed");
                pid = start_echo(sp[1], sp[0], map_reply, unmap_reply);
                close(sp[1]);
                echo.fd = sp[0];
                t0 = now();
                for (int i = 0; i < rounds; i++) {
                        json_object *o;

                        itest_client_send_raw(&echo, m, strlen(m) + 1, &mem, 1);
                        if (itest_client_recv(&echo, &o) <= 0)
                                die("echo failed");
                        json_object_put(o);
                        itest_client_send_raw(&echo, u, strlen(u) + 1, NULL, 0);
                        if (itest_client_recv(&echo, &o) <= 0)
                                die("echo failed");
                        json_object_put(o);
                }
                raw = (now() - t0) / rounds;
                close(sp[0]);
                free(echo.buf);
                waitpid(pid, NULL, 0);
                printf("map+unmap round trip: brokered %.1f us, raw socket %.1f us, ratio %.2f "
                       "(target <= 2.0)\n",
                       brokered * 1e6, raw * 1e6, brokered / raw);
                bench_report("broker.map-unmap-rtt", brokered * 1e6, "us", raw * 1e6, 2.0, 1, 1);
        }

        /* 2. Pipelined throughput: a window of Maps, then the same window of Unmaps. */
        {
                double t;
                int done = 0;

                t0 = now();
                while (done < pipelined) {
                        for (int i = 0; i < window; i++) {
                                _cleanup_free_ char *m =
                                        map_text(ioas, 0x1000000 + (uint64_t)i * PAGE);
                                itest_client_send_raw(c, m, strlen(m) + 1, &mem, 1);
                        }
                        for (int i = 0; i < window; i++)
                                expect_ok(c);
                        for (int i = 0; i < window; i++) {
                                _cleanup_free_ char *u =
                                        unmap_text(ioas, 0x1000000 + (uint64_t)i * PAGE);
                                itest_client_send_raw(c, u, strlen(u) + 1, NULL, 0);
                        }
                        for (int i = 0; i < window; i++)
                                expect_ok(c);
                        done += 2 * window;
                }
                t = now() - t0;
                printf("pipelined map/unmap: %.0f ops/s over %d ops, window %d (target >= "
                       "150000)\n",
                       done / t, done, window);
                bench_report("broker.pipelined-map-unmap", done / t, "ops/s", BENCH_NONE, 150000,
                             0, 0);
        }

        /* 3. Memory per idle session. */
        {
                ItestClient **idle = calloc(sessions, sizeof(*idle));
                size_t before = rss_kib(d.pid), after;
                int opened = 0;

                for (int i = 0; i < sessions; i++) {
                        if (itest_client_connect(&idle[i], d.socket) < 0)
                                break;
                        /* One round trip makes sure the session exists. */
                        r = itest_call(idle[i], "org.iommud.Broker.GetSession", NULL, NULL, 0);
                        if (!r || itest_reply_error(r))
                                die("GetSession on an idle session failed");
                        json_object_put(r);
                        opened++;
                }
                after = rss_kib(d.pid);
                printf("idle sessions: %d, daemon RSS %zu -> %zu KiB, %.1f KiB per session "
                       "(target <= 16)\n",
                       opened, before, after,
                       opened ? (double)(after - before) / opened : 0.0);
                bench_report("broker.idle-session-memory",
                             opened ? (double)(after - before) / opened : 0.0, "KiB", BENCH_NONE,
                             16, 0, 1);
                for (int i = 0; i < opened; i++)
                        itest_client_free(idle[i]);
                free(idle);
        }

        close(mem);
        itest_client_free(c);
        return itest_daemon_stop(&d) == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
