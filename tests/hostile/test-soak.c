/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Soak: 64 client processes do random valid and invalid work against one
 * daemon for a bounded time (SOAK_SECONDS, default 20; the meson test runs a
 * short one), while some are killed and replaced.  Every call must get a
 * reply with a known outcome; at the end the daemon's memory under load must
 * be flat against the plateau it reached after warming up (a tolerance, not a
 * clock), and once the clients are gone its fds, sessions and the model's
 * objects must be back at the baseline.
 *
 * A leak small per call hides in the tolerance of a short run, so a longer one
 * (CI runs 60 s) is also judged by its slope: the least-squares line through
 * every RSS sample after the warm-up may rise by at most SLOPE_SLACK plus
 * SLOPE_TOLERANCE of the plateau across the judged window.
 */

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "hostile.h"

#define CLIENTS 64
#define PAGE UINT64_C(4096)
/* Flat: the end may exceed the warm-up plateau by this fraction plus a fixed slack. */
#define RSS_TOLERANCE 0.25
#define RSS_SLACK (4 * 1024 * 1024)
/* Sloped: the fitted rise across the judged window, for runs whose window is this long. */
#define SLOPE_MIN_WINDOW 20.0
#define SLOPE_TOLERANCE 0.02
#define SLOPE_SLACK (1024 * 1024)

/* An online least-squares fit of RSS against time: sums only, any number of samples. */
typedef struct RssFit {
        double n, sx, sy, sxy, sxx;
} RssFit;

static void rss_fit_add(RssFit *f, double x, double y) {
        f->n += 1;
        f->sx += x;
        f->sy += y;
        f->sxy += x * y;
        f->sxx += x * x;
}

/* Bytes per second of the fitted line; 0 without two distinct samples. */
static double rss_fit_slope(const RssFit *f) {
        double den = f->n * f->sxx - f->sx * f->sx;

        return f->n >= 2 && den > 0 ? (f->n * f->sxy - f->sx * f->sy) / den : 0;
}

typedef struct SoakReport {
        uint64_t calls, errors, reconnects, unexpected;
        char first_unexpected[240];
} SoakReport;

static const char *const soak_devices[] = {
        "0000:41:00.0", "0000:41:00.1", "0000:c1:00.2", "0000:c1:00.3", "0000:c1:00.4",
        "0000:e1:00.0", "0000:21:00.0", "0000:01:00.0", "0000:ff:00.0",
};
#define N_SOAK_DEVICES (sizeof(soak_devices) / sizeof(soak_devices[0]))

static double now(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint32_t next_rand(uint32_t *state) {
        uint32_t x = *state ?: 1;

        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        *state = x;
        return x;
}

/* Outcomes a client may see; anything else (no reply, SystemError, BackendError) is a bug. */
static bool outcome_known(const char *error) {
        static const char *const known[] = {
                "org.iommud.Broker.PolicyDenied",   "org.iommud.Broker.QuotaExceeded",
                "org.iommud.Broker.NoSuchObject",   "org.iommud.Broker.InvalidRange",
                "org.iommud.Broker.IOVAInUse",      "org.iommud.Broker.DeviceBusy",
                "org.iommud.Broker.ObjectInUse",    "org.iommud.Broker.InvalidFd",
                "org.iommud.Broker.NotSupported",   "org.varlink.service.InvalidParameter",
                "org.varlink.service.MethodNotFound",
        };

        if (!error)
                return true;
        for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
                if (strcmp(known[i], error) == 0)
                        return true;
        return false;
}

typedef struct SoakClient {
        const ItestDaemon *d;
        ItestClient *c;
        uint32_t rnd;
        int mem, pipe_r, pipe_w;
        char cdevs[N_SOAK_DEVICES][64];
        SoakReport rep;
} SoakClient;

static void soak_note(SoakClient *s, const char *method, json_object *r) {
        s->rep.calls++;
        if (r && outcome_known(itest_reply_error(r))) {
                s->rep.errors += itest_reply_error(r) != NULL;
                return;
        }
        if (s->rep.unexpected++ == 0)
                snprintf(s->rep.first_unexpected, sizeof(s->rep.first_unexpected), "%s: %s",
                         method, r ? json_object_to_json_string(r) : "no reply");
}

static void soak_reconnect(SoakClient *s) {
        itest_client_free(s->c);
        s->c = NULL;
        s->rep.reconnects++;
        /* The grant's connection quota is generous; a refusal would show as no reply. */
        if (itest_client_connect(&s->c, s->d->socket) < 0)
                _exit(4);
}

static void soak_call(SoakClient *s, const char *method, json_object *params, const int *fds,
                      size_t n_fds) {
        json_object *r = itest_call(s->c, method, params, fds, n_fds);

        soak_note(s, method, r);
        json_object_put(r);
        /* Received fds (a Delegate, none here) are not kept. */
        for (size_t i = 0; i < s->c->n_rfds; i++)
                close(s->c->rfds[i]);
        s->c->n_rfds = 0;
}

static json_object *u64(uint64_t v) {
        return hostile_u64(v);
}

static void soak_step(SoakClient *s) {
        uint32_t op = next_rand(&s->rnd) % 20;
        uint64_t ioas = 1 + next_rand(&s->rnd) % 6, dev = 1 + next_rand(&s->rnd) % 6;
        const char *name = soak_devices[next_rand(&s->rnd) % N_SOAK_DEVICES];
        json_object *p;

        switch (op) {
        case 0:
                soak_call(s, "org.iommud.Broker.AttachDevice",
                          itest_params("device", json_object_new_string(name), NULL), NULL, 0);
                break;
        case 1: {
                size_t k = next_rand(&s->rnd) % N_SOAK_DEVICES;
                int fd = s->cdevs[k][0] ? hostile_open_device(s->d, s->cdevs[k]) : -1;

                if (fd < 0)
                        fd = dup(s->pipe_r);
                soak_call(s, "org.iommud.Broker.AttachDevice",
                          itest_params("fd", u64(0), NULL), &fd, 1);
                close(fd);
                break;
        }
        case 2:
                soak_call(s, "org.iommud.Broker.DetachDevice",
                          itest_params("deviceId", u64(dev), NULL), NULL, 0);
                break;
        case 3:
                soak_call(s, "org.iommud.Broker.CreateAddressSpace", NULL, NULL, 0);
                break;
        case 4:
                soak_call(s, "org.iommud.Broker.DestroyAddressSpace",
                          itest_params("ioasId", u64(ioas), NULL), NULL, 0);
                break;
        case 5:
                soak_call(s, "org.iommud.Broker.AttachToAddressSpace",
                          itest_params("deviceId", u64(dev), "ioasId", u64(ioas), NULL), NULL, 0);
                break;
        case 6:
        case 7:
                p = itest_params("ioasId", u64(ioas), "memoryFd", u64(0), "offset", u64(0),
                                 "length", u64(PAGE * (1 + next_rand(&s->rnd) % 16)), "readable",
                                 json_object_new_boolean(true), "writeable",
                                 json_object_new_boolean(true), NULL);
                if (op == 6)
                        json_object_object_add(
                                p, "iova", u64(0x100000 + PAGE * (next_rand(&s->rnd) % 512)));
                soak_call(s, "org.iommud.Broker.Map", p, &s->mem, 1);
                break;
        case 8:
                if (next_rand(&s->rnd) % 2)
                        p = itest_params("ioasId", u64(ioas), "iova", u64(0), "length",
                                         u64(UINT64_MAX), NULL);
                else
                        p = itest_params("ioasId", u64(ioas), "iova",
                                         u64(0x100000 + PAGE * (next_rand(&s->rnd) % 512)),
                                         "length", u64(PAGE * (1 + next_rand(&s->rnd) % 16)),
                                         NULL);
                soak_call(s, "org.iommud.Broker.Unmap", p, NULL, 0);
                break;
        case 9:
                soak_call(s, "org.iommud.Broker.Copy",
                          itest_params("srcIoasId", u64(ioas), "srcIova",
                                       u64(0x100000 + PAGE * (next_rand(&s->rnd) % 512)),
                                       "dstIoasId", u64(1 + next_rand(&s->rnd) % 6), "length",
                                       u64(PAGE), NULL),
                          NULL, 0);
                break;
        case 10:
                soak_call(s, "org.iommud.Broker.GetSession", NULL, NULL, 0);
                break;
        case 11:
                soak_call(s, "org.iommud.Broker.GetTopology", NULL, NULL, 0);
                break;
        case 12:
                soak_call(s, "org.iommud.Broker.ExplainDevice",
                          itest_params("device", json_object_new_string(name), NULL), NULL, 0);
                break;
        case 13:
                soak_call(s, "org.iommud.Broker.Unmap",
                          itest_params("ioasId", json_object_new_string("one"), "iova", u64(0),
                                       "length", u64(PAGE), NULL),
                          NULL, 0);
                break;
        case 14:
                soak_call(s, "org.iommud.Broker.Frobnicate", NULL, NULL, 0);
                break;
        case 15: {
                int fd = dup(s->pipe_r);

                soak_call(s, "org.iommud.Broker.Map",
                          itest_params("ioasId", u64(ioas), "memoryFd", u64(0), "offset", u64(0),
                                       "length", u64(PAGE), "readable",
                                       json_object_new_boolean(true), "writeable",
                                       json_object_new_boolean(false), NULL),
                          &fd, 1);
                close(fd);
                break;
        }
        case 16: {
                /* A oneway call gets no reply; the next call's reply is its own. */
                static const char oneway[] =
                        "{\"method\":\"org.iommud.Broker.CreateAddressSpace\",\"oneway\":true}";

                (void)hostile_send(s->c->fd, oneway, sizeof(oneway), NULL, 0);
                soak_call(s, "org.iommud.Broker.GetSession", NULL, NULL, 0);
                break;
        }
        case 17:
                /* Malformed: the daemon hangs up; come back. */
                (void)hostile_send(s->c->fd, "{\"method\":", 11, NULL, 0);
                if (!itest_client_is_closed(s->c))
                        soak_note(s, "malformed call", NULL);
                soak_reconnect(s);
                break;
        case 18:
                if (next_rand(&s->rnd) % 8 == 0)
                        soak_reconnect(s);
                break;
        default:
                /* Half a frame, then gone. */
                (void)hostile_send(s->c->fd, "{\"method\":\"org.iommud", 20, &s->mem, 1);
                soak_reconnect(s);
                break;
        }
}

static _Noreturn void soak_client(const ItestDaemon *d, uint32_t seed, double deadline,
                                  int report_fd) {
        SoakClient s = { .d = d, .rnd = seed };
        int p[2];

        if (pipe2(p, O_CLOEXEC) < 0)
                _exit(3);
        s.pipe_r = p[0];
        s.pipe_w = p[1];
        s.mem = itest_memfd(1024 * 1024);
        if (s.mem < 0 || itest_client_connect(&s.c, d->socket) < 0)
                _exit(3);
        for (size_t k = 0; k < N_SOAK_DEVICES; k++)
                (void)hostile_device_cdev(s.c, soak_devices[k], s.cdevs[k], sizeof(s.cdevs[k]));
        while (now() < deadline)
                soak_step(&s);
        itest_client_free(s.c);
        if (write(report_fd, &s.rep, sizeof(s.rep)) != (ssize_t)sizeof(s.rep))
                _exit(5);
        _exit(0);
}

static double env_seconds(void) {
        const char *v = getenv("SOAK_SECONDS") ?: getenv("SOAK_DEFAULT_SECONDS");
        double s = v ? strtod(v, NULL) : 20.0;

        return s > 0.5 ? s : 0.5;
}

/* What the daemon's memory did: the warm-up plateau, the end under load, the fit after. */
typedef struct SoakMemory {
        uint64_t plateau, end_rss;
        RssFit fit;
        double window; /* seconds from the end of the warm-up to the deadline */
} SoakMemory;

/* Every client ran out its time and exited cleanly. */
static void soak_reap(const pid_t *pids) {
        for (int i = 0; i < CLIENTS; i++) {
                int status;

                assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
                if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
                        fail_msg("client %d ended with status 0x%x", i, status);
        }
}

/* Sums what every client reported; the number of reports. */
static int soak_collect(int fd, SoakReport *total) {
        int finished = 0;

        for (;;) {
                SoakReport r;

                if (read(fd, &r, sizeof(r)) != (ssize_t)sizeof(r))
                        return finished;
                finished++;
                total->calls += r.calls;
                total->errors += r.errors;
                total->reconnects += r.reconnects;
                if (r.unexpected > 0 && total->unexpected == 0)
                        memcpy(total->first_unexpected, r.first_unexpected,
                               sizeof(r.first_unexpected));
                total->unexpected += r.unexpected;
        }
}

/* Flat against the plateau (a tolerance), and in a longer run by the slope of the fit. */
static void soak_judge_memory(const SoakMemory *m, const ItestDaemon *d) {
        double rise = rss_fit_slope(&m->fit) * m->window;
        double allowed = (double)m->plateau * SLOPE_TOLERANCE + SLOPE_SLACK;
        bool judged = m->window >= SLOPE_MIN_WINDOW;

        fprintf(stderr,
                "# soak: RSS plateau %.1f MiB, under load at the end %.1f MiB, idle %.1f MiB; "
                "fds %d\n"
                "# soak: fitted RSS rise over the last %.1f s: %+.2f MiB from %.0f samples "
                "(allowed %.2f MiB%s)\n",
                m->plateau / 1048576.0, m->end_rss / 1048576.0,
                hostile_daemon_rss(d) / 1048576.0, itest_daemon_count_fds(d), m->window,
                rise / 1048576.0, m->fit.n, allowed / 1048576.0,
                judged ? "" : "; not judged in a short run");
        assert_true(m->plateau > 0 && m->end_rss > 0);
        if ((double)m->end_rss > (double)m->plateau * (1.0 + RSS_TOLERANCE) + RSS_SLACK)
                fail_msg("the daemon's memory grew under steady load: %.1f MiB after warming up, "
                         "%.1f MiB at the end",
                         m->plateau / 1048576.0, m->end_rss / 1048576.0);
        if (judged && rise > allowed)
                fail_msg("the daemon's memory rises under steady load: the fitted line gains "
                         "%.2f MiB over %.1f s (allowed %.2f MiB)",
                         rise / 1048576.0, m->window, allowed / 1048576.0);
}

static void test_soak(void **state) {
        ItestDaemon d;
        HostileSnapshot base;
        double seconds = env_seconds(), start, deadline, warm_end, next_kill;
        const char *seed_env = getenv("SOAK_SEED") ?: getenv("HOSTILE_SEED");
        uint32_t seed = seed_env ? (uint32_t)strtoul(seed_env, NULL, 0) : 0x50a4, rnd;
        SoakMemory mem = {};
        SoakReport total = {};
        pid_t pids[CLIENTS];
        int reports[2], kills = 0, finished;

        fprintf(stderr, "# soak: %d clients for %.1f s, seed %u (SOAK_SECONDS, SOAK_SEED)\n",
                CLIENTS, seconds, seed);
        /* Room for every client, its reconnects and the probes. */
        hostile_start_with(&d, "server", 4 * CLIENTS, 4 * CLIENTS, 4 * CLIENTS);
        hostile_snapshot(&d, &base);
        assert_int_equal(pipe2(reports, O_CLOEXEC), 0);

        rnd = seed;
        start = now();
        deadline = start + seconds;
        /* The plateau is what the daemon holds once every client has warmed up. */
        warm_end = start + seconds * 0.3;
        mem.window = deadline - warm_end;
        next_kill = start + seconds * 0.1;
        for (int i = 0; i < CLIENTS; i++) {
                pids[i] = itest_fork();
                assert_true(pids[i] >= 0);
                if (pids[i] == 0)
                        soak_client(&d, seed + 1 + (uint32_t)i, deadline, reports[1]);
        }
        while (now() < deadline) {
                double t = now();
                uint64_t rss = hostile_daemon_rss(&d);

                if (t >= start + seconds * 0.15 && t < warm_end && rss > mem.plateau)
                        mem.plateau = rss;
                if (t >= deadline - seconds * 0.15 && rss > mem.end_rss)
                        mem.end_rss = rss;
                if (t >= warm_end && rss > 0)
                        rss_fit_add(&mem.fit, t - warm_end, (double)rss);
                /* Now and then one dies wherever it is, and another takes its place. */
                if (t >= next_kill && t < deadline - 1.0) {
                        int i = (int)(next_rand(&rnd) % CLIENTS), status;

                        kill(pids[i], SIGKILL);
                        assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
                        kills++;
                        pids[i] = itest_fork();
                        assert_true(pids[i] >= 0);
                        if (pids[i] == 0)
                                soak_client(&d, seed + 1000u * (uint32_t)kills + (uint32_t)i,
                                            deadline, reports[1]);
                        next_kill = t + 0.25;
                }
                usleep(50000);
        }
        close(reports[1]);
        soak_reap(pids);
        finished = soak_collect(reports[0], &total);
        close(reports[0]);

        hostile_assert_at(&d, &base);
        fprintf(stderr,
                "# soak: %llu calls (%llu refused as expected), %llu reconnects, %d kills, "
                "%d clients finished\n",
                (unsigned long long)total.calls, (unsigned long long)total.errors,
                (unsigned long long)total.reconnects, kills, finished);
        if (total.unexpected > 0)
                fail_msg("%llu call(s) without a known outcome, the first: %s",
                         (unsigned long long)total.unexpected, total.first_unexpected);
        assert_int_equal(finished, CLIENTS);
        assert_true(total.calls > total.errors);
        soak_judge_memory(&mem, &d);
        assert_int_equal(itest_daemon_stop(&d), 0);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_soak),
        };

        signal(SIGPIPE, SIG_IGN);
        return cmocka_run_group_tests_name("soak", tests, NULL, NULL);
}
