/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * I/O page faults end to end: inject → fault router → Varlink stream → client
 * → RespondFault → the device's answer.
 *
 * Everything runs in this process: the main thread runs the daemon's own code
 * (backend-sim, session core, fault router, broker, Varlink server) on its
 * libevent loop and injects faults in-process with backend_sim_inject_fault();
 * a client thread talks to the broker over two real Unix socket connections
 * (one WatchFaults stream, one for RespondFault calls, joined to one session)
 * and answers every fault as soon as it reads it.  It reads each record whole
 * with the streaming cursor of common/json-stream.h, as a client that cares for
 * its rate would: with a json-c tree per record the client's own parsing, at
 * some 5 us a record, and not iommud, bounded the rate.
 *
 * A fault's latency runs from its injection to the moment the device got the
 * client's answer (the model's responses_success counter passing it: the
 * client answers in order, so the k-th answer is the k-th fault's).
 *
 *   1. sustained throughput with up to 256 faults in flight (target >= 200k faults/s);
 *   2. p50/p99 latency at fixed offered rates of 10k, 50k and 100k faults/s
 *      (target at 50k/s: p99 <= 100 us).
 *
 * The baseline, measured in the same run on the same CPUs: a plain socket echo
 * between two threads, a 230-byte message (a fault record's size) one way and
 * a 120-byte one (a RespondFault call's) back.  One at a time it gives the
 * round trip a fault's latency is compared with; 256 in flight, the rate the
 * throughput is compared with.  Where the process may use two CPUs the loop
 * (daemon) thread and the client thread are pinned to different ones, as a
 * daemon and its client would run; the load average at the start and the end
 * is printed with the figures, for a loaded machine's timings say little.
 *
 * Prints figures against the targets; never passes or fails on time.
 */

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <json-c/json.h>

#include "backend-sim.h"
#include "bench-report.h"
#include "json-stream.h"
#include "varlink-broker.h"
#include "fault-router.h"
#include "policy.h"
#include "session.h"
#include "simtopo.h"
#include "topology.h"
#include "varlink-client.h"
#include "varlink-server.h"

#define DEVICE "0000:e1:00.0" /* server topology: PASID-capable, behind an IOMMU with fault queues */
#define WINDOW 256
/* The echo baseline's message sizes: a fault record and a RespondFault call, as sent. */
#define ECHO_REQUEST 230
#define ECHO_REPLY 120
#define ECHO_ROUNDS 20000

static const char policy_fmt[] =
        "{ \"limits\": { \"fault-response-timeout-ms\": 10000, \"max-queued-output\": \"64M\" },\n"
        "  \"rules\": { \"all\": { \"action\": \"allow\", \"match\": \"*\" } },\n"
        "  \"grants\": { \"bench\": { \"principals\": [ { \"user\": %u } ], \"devices\": \"*\",\n"
        "    \"open-on-behalf\": true,\n"
        "    \"quotas\": { \"fault-queue-depth\": 65536 } } } }\n";

static _Noreturn void die(const char *what) {
        fprintf(stderr, "bench-faults: %s\n", what);
        exit(EXIT_FAILURE);
}

static uint64_t clock_ns(clockid_t id) {
        struct timespec ts;

        clock_gettime(id, &ts);
        return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t now_ns(void) {
        return clock_ns(CLOCK_MONOTONIC);
}

typedef struct Bench {
        int call_fd, watch_fd;       /* client ends */
        int client_cpu;              /* -1: not pinned */
        uint32_t pasid;
        atomic_int ready;            /* 1: the stream is open; -1: setup failed */
        atomic_bool stop;
        _Atomic uint64_t client_cpu_ns;  /* the client thread's CPU time, after its last batch */
} Bench;

static int cmp_u64(const void *a, const void *b) {
        uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

        return x < y ? -1 : x > y;
}

static double pct_us(uint64_t *v, size_t n, double p) {
        size_t i = (size_t)(p * (double)(n - 1));

        return (double)v[i] / 1000.0;
}

/* ---- CPUs and load --------------------------------------------------------------------- */

/* The first two CPUs this process may use; fewer than two: nothing to pin apart. */
static int cpu_pair(int *ret_daemon, int *ret_client) {
        cpu_set_t set;
        int found = 0;

        CPU_ZERO(&set);
        if (sched_getaffinity(0, sizeof(set), &set) < 0)
                return -errno;
        for (int i = 0; i < CPU_SETSIZE && found < 2; i++) {
                if (!CPU_ISSET(i, &set))
                        continue;
                if (found++ == 0)
                        *ret_daemon = i;
                else
                        *ret_client = i;
        }
        return found;
}

/* Pins the calling thread (pid 0 is the calling thread for sched_setaffinity). */
static int pin_self(int cpu) {
        cpu_set_t set;

        if (cpu < 0)
                return 0;
        CPU_ZERO(&set);
        CPU_SET(cpu, &set);
        return sched_setaffinity(0, sizeof(set), &set) < 0 ? -errno : 0;
}

static void print_load(const char *when, const char *figure) {
        double l[3] = { NAN, NAN, NAN };
        FILE *f = fopen("/proc/loadavg", "re");

        if (!f || fscanf(f, "%lf %lf %lf", &l[0], &l[1], &l[2]) != 3)
                printf("  load average %s: unknown (/proc/loadavg unreadable)\n", when);
        else
                printf("  load average %s: %.2f %.2f %.2f (%ld CPUs online)\n", when, l[0], l[1],
                       l[2], sysconf(_SC_NPROCESSORS_ONLN));
        if (f)
                fclose(f);
        bench_report(figure, l[0], "load", BENCH_NONE, BENCH_NONE, 0, 1);
}

/* ---- the baseline: a plain socket echo ----------------------------------------------------- */

typedef struct Echo {
        int in, out;                 /* the echo thread's ends */
        int cpu;
} Echo;

/* Reads until exactly len bytes came; 0 at end of stream. */
static ssize_t read_full(int fd, char *buf, size_t len) {
        size_t got = 0;

        while (got < len) {
                ssize_t k = recv(fd, buf + got, len - got, 0);

                if (k < 0 && errno == EINTR)
                        continue;
                if (k <= 0)
                        return k;
                got += (size_t)k;
        }
        return (ssize_t)got;
}

/* Answers every request with a reply, until the other end closes. */
static void *echo_main(void *userdata) {
        Echo *e = userdata;
        char req[ECHO_REQUEST], rep[ECHO_REPLY];

        (void)pin_self(e->cpu);
        memset(rep, 'r', sizeof(rep));
        while (read_full(e->in, req, sizeof(req)) == (ssize_t)sizeof(req))
                if (send(e->out, rep, sizeof(rep), MSG_NOSIGNAL) < 0)
                        break;
        return NULL;
}

typedef struct EchoFigures {
        double p50_us, p99_us;       /* one in flight */
        double rate;                 /* messages/s, WINDOW in flight */
} EchoFigures;

/* Requests kept WINDOW in flight, or one at a time with each one's round trip put in rtt. */
static uint64_t echo_run(int to, int from, size_t n, bool pipelined, uint64_t *rtt) {
        char req[ECHO_REQUEST], rep[ECHO_REPLY * WINDOW];
        size_t sent = 0, done = 0, partial = 0;
        uint64_t t0 = now_ns(), t_sent = t0;

        memset(req, 'q', sizeof(req));
        while (done < n) {
                ssize_t k;

                while (sent < n && sent - done < (pipelined ? WINDOW : 1)) {
                        t_sent = now_ns();
                        if (send(to, req, sizeof(req), MSG_NOSIGNAL) != (ssize_t)sizeof(req))
                                die("the echo baseline could not send");
                        sent++;
                }
                k = recv(from, rep, sizeof(rep) - partial, 0);
                if (k <= 0)
                        die("the echo baseline lost its peer");
                partial += (size_t)k;
                for (; partial >= ECHO_REPLY; partial -= ECHO_REPLY, done++)
                        if (rtt)
                                rtt[done] = now_ns() - t_sent;
        }
        return now_ns() - t0;
}

/* Measures the echo baseline on the two CPUs the fault runs use. */
static void echo_measure(int daemon_cpu, int client_cpu, EchoFigures *ret) {
        int a[2], b[2];
        Echo e = { .cpu = client_cpu };
        pthread_t thread;
        uint64_t *rtt = calloc(ECHO_ROUNDS, sizeof(uint64_t)), ns;

        if (!rtt || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, a) < 0 ||
            socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, b) < 0)
                die("cannot set up the echo baseline");
        e.in = a[1];
        e.out = b[0];
        if (pthread_create(&thread, NULL, echo_main, &e) != 0)
                die("cannot start the echo thread");
        (void)echo_run(a[0], b[1], ECHO_ROUNDS / 10, false, NULL); /* warm-up */
        (void)echo_run(a[0], b[1], ECHO_ROUNDS, false, rtt);
        qsort(rtt, ECHO_ROUNDS, sizeof(uint64_t), cmp_u64);
        ret->p50_us = pct_us(rtt, ECHO_ROUNDS, 0.5);
        ret->p99_us = pct_us(rtt, ECHO_ROUNDS, 0.99);
        ns = echo_run(a[0], b[1], 10 * ECHO_ROUNDS, true, NULL);
        ret->rate = 10.0 * ECHO_ROUNDS / ((double)ns / 1e9);
        close(a[0]);
        pthread_join(thread, NULL);
        close(a[1]);
        close(b[0]);
        close(b[1]);
        free(rtt);
        printf("  baseline, socket echo of %d/%d bytes: round trip p50 %.1f us, p99 %.1f us; "
               "%d in flight: %.0f/s\n", ECHO_REQUEST, ECHO_REPLY, ret->p50_us, ret->p99_us,
               WINDOW, ret->rate);
}

/* ---- the client thread --------------------------------------------------------------------- */

static int client_call(VarlinkClient *c, const char *method, json_object *params,
                       json_object **ret) {
        VarlinkReply r = VARLINK_REPLY_INIT;
        int k = varlink_client_call(c, method, params, NULL, 0, &r);

        json_object_put(params);
        if (k < 0 || r.error) {
                fprintf(stderr, "bench-faults: %s failed: %s\n", method, r.error ?: strerror(-k));
                varlink_reply_clear(&r);
                return -EIO;
        }
        if (ret)
                *ret = json_object_get(r.parameters);
        varlink_reply_clear(&r);
        return 0;
}

static json_object *obj(const char *k1, json_object *v1, const char *k2, json_object *v2,
                        const char *k3, json_object *v3) {
        json_object *o = json_object_new_object();

        if (k1)
                json_object_object_add(o, k1, v1);
        if (k2)
                json_object_object_add(o, k2, v2);
        if (k3)
                json_object_object_add(o, k3, v3);
        return o;
}

static int client_setup(Bench *b) {
        _cleanup_(varlink_client_freep) VarlinkClient *cc = NULL, *cw = NULL;
        json_object *p = NULL;
        uint64_t dev, ioas;
        char token[64];
        const char *watch = "{\"method\":\"org.iommud.Broker.WatchFaults\",\"parameters\":{},"
                            "\"more\":true}";

        if (varlink_client_new_from_fd(&cc, dup(b->call_fd)) < 0 ||
            varlink_client_new_from_fd(&cw, dup(b->watch_fd)) < 0)
                return -ENOMEM;
        if (client_call(cc, "org.iommud.Broker.AttachDevice",
                        obj("device", json_object_new_string(DEVICE), NULL, NULL, NULL, NULL),
                        &p) < 0)
                return -EIO;
        dev = json_object_get_uint64(json_object_object_get(p, "deviceId"));
        json_object_put(p);
        if (client_call(cc, "org.iommud.Broker.CreateAddressSpace", NULL, &p) < 0)
                return -EIO;
        ioas = json_object_get_uint64(json_object_object_get(p, "ioasId"));
        json_object_put(p);
        if (client_call(cc, "org.iommud.Broker.BindPASID",
                        obj("deviceId", json_object_new_int64((int64_t)dev), "ioasId",
                            json_object_new_int64((int64_t)ioas), "faults",
                            json_object_new_boolean(true)),
                        &p) < 0)
                return -EIO;
        b->pasid = (uint32_t)json_object_get_uint64(json_object_object_get(p, "pasid"));
        json_object_put(p);
        if (client_call(cc, "org.iommud.Broker.GetSession", NULL, &p) < 0)
                return -EIO;
        snprintf(token, sizeof(token), "%s",
                 json_object_get_string(json_object_object_get(p, "token")));
        json_object_put(p);
        if (client_call(cw, "org.iommud.Broker.JoinSession",
                        obj("token", json_object_new_string(token), NULL, NULL, NULL, NULL),
                        NULL) < 0)
                return -EIO;
        /* From here on both sockets are used raw; neither client object holds unread data. */
        if (send(b->watch_fd, watch, strlen(watch) + 1, MSG_NOSIGNAL) < 0)
                return -errno;
        return 0;
}

/* A fault record as WatchFaults sends it, for the client's streaming reader. */
typedef struct StreamRecord {
        uint64_t cookie, device_id, pasid, group_id, address, length;
        bool read, write, exec, privileged, last_page;
} StreamRecord;

static const JsonDispatchField record_fields[] = {
        { "cookie", JSON_DISPATCH_UINT64, JSON_DISPATCH_REQUIRED, offsetof(StreamRecord, cookie) },
        { "deviceId", JSON_DISPATCH_UINT64, 0, offsetof(StreamRecord, device_id) },
        { "pasid", JSON_DISPATCH_UINT64, 0, offsetof(StreamRecord, pasid) },
        { "groupId", JSON_DISPATCH_UINT64, 0, offsetof(StreamRecord, group_id) },
        { "address", JSON_DISPATCH_UINT64, 0, offsetof(StreamRecord, address) },
        { "length", JSON_DISPATCH_UINT64, 0, offsetof(StreamRecord, length) },
        { "read", JSON_DISPATCH_BOOL, 0, offsetof(StreamRecord, read) },
        { "write", JSON_DISPATCH_BOOL, 0, offsetof(StreamRecord, write) },
        { "exec", JSON_DISPATCH_BOOL, 0, offsetof(StreamRecord, exec) },
        { "privileged", JSON_DISPATCH_BOOL, 0, offsetof(StreamRecord, privileged) },
        { "lastPage", JSON_DISPATCH_BOOL, 0, offsetof(StreamRecord, last_page) },
        {},
};

static const JsonDispatchField fault_fields[] = {
        { "fault", JSON_DISPATCH_OBJECT, JSON_DISPATCH_REQUIRED, 0, .fields = record_fields },
        {},
};

/*
 * The cookie of the record text[0..len) (NUL-terminated), read as a client that cares for
 * speed reads it: in one pass with common/json-stream.h's cursor, which decodes every member
 * of the record.  -EBADMSG for a message that is not a plain record.
 */
static int record_cookie(char *text, size_t len, uint64_t *ret) {
        StreamRecord f = {};
        JsonCursor c;
        const char *name;
        size_t n;
        bool more, decoded = false;
        int k;

        json_cursor_init(&c, text, len, 8);
        k = json_cursor_enter_object(&c);
        while (k >= 0 && (k = json_cursor_next_member(&c, &name, &n)) > 0) {
                if (n == 10 && memcmp(name, "parameters", n) == 0) {
                        k = json_cursor_decode_object(&c, fault_fields, &f);
                        decoded = k >= 0;
                } else if (n == 9 && memcmp(name, "continues", n) == 0)
                        k = json_cursor_bool(&c, &more);
                else
                        k = -EAGAIN;
        }
        if (k < 0 || !decoded || json_cursor_end(&c) < 0)
                return -EBADMSG;
        *ret = f.cookie;
        return 0;
}

static void *client_main(void *userdata) {
        Bench *b = userdata;
        size_t n = 0, alloc = 1 << 20;
        char *buf = malloc(alloc), out[65536];

        (void)pin_self(b->client_cpu);
        if (!buf || client_setup(b) < 0) {
                atomic_store(&b->ready, -1);
                free(buf);
                return NULL;
        }
        atomic_store(&b->ready, 1);

        while (!atomic_load(&b->stop)) {
                struct pollfd p = { .fd = b->watch_fd, .events = POLLIN };
                size_t o = 0, start = 0;
                ssize_t k;

                if (poll(&p, 1, 50) <= 0)
                        continue;
                k = recv(b->watch_fd, buf + n, alloc - n, 0);
                if (k <= 0)
                        break;
                n += (size_t)k;
                for (size_t i = 0; i < n; i++) {
                        uint64_t cookie;

                        if (buf[i] != '\0')
                                continue;
                        /* A real client parses each record; so does this one, all of it. */
                        if (record_cookie(buf + start, i - start, &cookie) < 0) {
                                fprintf(stderr, "bench-faults: not a fault record: %s\n",
                                        buf + start);
                                exit(EXIT_FAILURE);
                        }
                        start = i + 1;
                        o += (size_t)snprintf(out + o, sizeof(out) - o,
                                              "{\"method\":\"org.iommud.Broker.RespondFault\","
                                              "\"parameters\":{\"cookie\":%" PRIu64
                                              ",\"code\":\"success\"},\"oneway\":true}",
                                              cookie);
                        out[o++] = '\0';
                        if (o > sizeof(out) - 256) {
                                if (send(b->call_fd, out, o, MSG_NOSIGNAL) < 0)
                                        goto done;
                                o = 0;
                        }
                }
                atomic_store(&b->client_cpu_ns, clock_ns(CLOCK_THREAD_CPUTIME_ID));
                memmove(buf, buf + start, n - start);
                n -= start;
                if (o > 0 && send(b->call_fd, out, o, MSG_NOSIGNAL) < 0)
                        break;
        }
done:
        free(buf);
        return NULL;
}

/* ---- the daemon side ----------------------------------------------------------------------- */

typedef struct Run {
        uint64_t *t_inject;
        uint64_t *latency;
        size_t n;
} Run;

static uint64_t answered(Backend *be) {
        BackendSimStats st;

        backend_sim_get_stats(be, &st);
        return st.responses_success;
}

static void on_pace(evutil_socket_t fd, short what, void *userdata) {
        /* Only wakes the loop: run() injects what is due when event_base_loop() returns. */
}

/*
 * Injects n faults, either as fast as the window allows (rate 0) or at a fixed
 * offered rate, and records each one's latency.  Returns the elapsed time.
 *
 * The loop blocks between events as the daemon's does: a loop thread that
 * polled without sleeping would compete for the CPU with the client thread
 * it waits for, and on a busy host every hand-over would wait for the
 * scheduler to preempt the spinner.  At a fixed rate a precise timer wakes
 * the loop when the next fault is due.
 */
static uint64_t run(struct event_base *base, Backend *be, Bench *b, size_t n, double rate,
                    Run *r) {
        uint64_t base_answers = answered(be), t0 = now_ns(), done = 0;
        struct event *pace = evtimer_new(base, on_pace, NULL);
        size_t injected = 0;

        if (!pace)
                die("out of memory");
        r->n = n;
        while (done < n) {
                uint64_t t = now_ns(), a;

                while (injected < n && injected - done < WINDOW &&
                       (rate == 0 || t >= t0 + (uint64_t)((double)injected * 1e9 / rate))) {
                        if (backend_sim_inject_fault(be, DEVICE, b->pasid,
                                                     (uint64_t)injected * 4096, FAULT_PERM_READ,
                                                     true, (uint32_t)injected, NULL) < 0)
                                die("injecting a fault failed");
                        r->t_inject[injected++] = t;
                }
                if (rate != 0 && injected < n && injected - done < WINDOW) {
                        uint64_t due = t0 + (uint64_t)((double)injected * 1e9 / rate);
                        uint64_t wait = due > t ? due - t : 0;
                        struct timeval tv = { .tv_sec = (time_t)(wait / 1000000000u),
                                              .tv_usec = (suseconds_t)(wait % 1000000000u / 1000) };

                        (void)evtimer_add(pace, &tv);
                }
                (void)event_base_loop(base, EVLOOP_ONCE);
                a = answered(be) - base_answers;
                t = now_ns();
                for (; done < a && done < n; done++)
                        r->latency[done] = t - r->t_inject[done];
        }
        event_free(pace);
        return now_ns() - t0;
}

typedef struct Daemon {
        char root[64];
        SimTopology *topology;
        SessionHost host;
        struct event_base *base;
        VarlinkServer *server;
        Broker *broker;
} Daemon;

/* The daemon's objects on the server topology, with the client's two connections added. */
static void daemon_start(Daemon *d, Bench *b) {
        char sys[128], *policy = NULL;
        struct event_config *cfg;
        int call_pair[2], watch_pair[2];

        snprintf(d->root, sizeof(d->root), "/tmp/iommud-bench-faults-XXXXXX");
        if (!mkdtemp(d->root) || rmdir(d->root) < 0)
                die("cannot make a scratch directory");
        if (simtopo_load(&d->topology, "server", NULL) < 0 ||
            simtopo_materialize(d->topology, d->root, NULL) < 0)
                die("cannot materialize the server topology");
        snprintf(sys, sizeof(sys), "%s/sys", d->root);
        d->host = SESSION_HOST_INIT;
        if (topology_load_path(&d->host.topology, sys, NULL) < 0 ||
            backend_sim_new(&d->host.backend, d->topology, d->root, NULL) < 0)
                die("cannot load the simulated host");
        if (asprintf(&policy, policy_fmt, (unsigned)getuid()) < 0 ||
            policy_load_string(&d->host.policy, "bench.json", policy, strlen(policy), NULL,
                               NULL) < 0)
                die("cannot load the policy");
        free(policy);
        /* Microsecond timers (timerfd) for the fixed-rate runs; epoll alone has milliseconds. */
        cfg = event_config_new();
        if (!cfg || event_config_set_flag(cfg, EVENT_BASE_FLAG_PRECISE_TIMER) < 0)
                die("out of memory");
        d->base = event_base_new_with_config(cfg);
        event_config_free(cfg);
        if (!d->base || fault_router_new(&d->host.faults, d->base) < 0 ||
            varlink_server_new(&d->server, d->base, NULL) < 0 ||
            broker_new(&d->broker, &d->host, d->root, "/proc") < 0 ||
            broker_attach(d->broker, d->server) < 0)
                die("cannot start the broker");
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, call_pair) < 0 ||
            socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, watch_pair) < 0 ||
            varlink_server_add_connection(d->server, call_pair[0], NULL) < 0 ||
            varlink_server_add_connection(d->server, watch_pair[0], NULL) < 0)
                die("cannot connect the client");
        b->call_fd = call_pair[1];
        b->watch_fd = watch_pair[1];
}

static void daemon_stop(Daemon *d) {
        varlink_server_free(d->server);
        session_host_done(&d->host);
        fault_router_free(d->host.faults);
        broker_free(d->broker);
        event_base_free(d->base);
        backend_free(d->host.backend);
        topology_free(d->host.topology);
        policy_free(d->host.policy);
        simtopo_remove(d->root);
        simtopo_free(d->topology);
}

/* The maximum sustained rate: as many faults as the window lets in, as fast as they go. */
static void report_sustained(Daemon *d, Bench *b, Run *r, size_t n, const EchoFigures *echo) {
        uint64_t loop0 = clock_ns(CLOCK_THREAD_CPUTIME_ID);
        uint64_t client0 = atomic_load(&b->client_cpu_ns);
        uint64_t ns = run(d->base, d->host.backend, b, n, 0, r);
        double fps = (double)n / ((double)ns / 1e9);

        double loop_us = (double)(clock_ns(CLOCK_THREAD_CPUTIME_ID) - loop0) / 1e3 / (double)n;
        double client_us = (double)(atomic_load(&b->client_cpu_ns) - client0) / 1e3 / (double)n;

        /* Which side bounds the rate: CPU time per fault of the loop (iommud) and the client. */
        printf("  CPU per fault: the loop (iommud and the injection) %.2f us, the client %.2f us\n",
               loop_us, client_us);
        bench_report("faults.loop-cpu-per-fault", loop_us, "us", BENCH_NONE, BENCH_NONE, 0, 1);
        bench_report("faults.client-cpu-per-fault", client_us, "us", BENCH_NONE, BENCH_NONE, 0, 1);

        qsort(r->latency, n, sizeof(uint64_t), cmp_u64);
        printf("  sustained, %d in flight: %.0f faults/s (target >= 200000: %.2fx; %.2fx the "
               "echo's rate), p50 %.1f us, p99 %.1f us\n",
               WINDOW, fps, fps / 200000.0, fps / echo->rate, pct_us(r->latency, n, 0.5),
               pct_us(r->latency, n, 0.99));
        bench_report("faults.sustained-throughput", fps, "faults/s", echo->rate, 200000, 0, 0);
}

/* One second's worth of faults at a fixed offered rate: p50 and p99 against the echo's. */
static void report_rate(Daemon *d, Bench *b, Run *r, double rate, const EchoFigures *echo) {
        size_t n = (size_t)rate;
        uint64_t ns = run(d->base, d->host.backend, b, n, rate, r);
        double p50, p99;
        char name[64];

        qsort(r->latency, n, sizeof(uint64_t), cmp_u64);
        p50 = pct_us(r->latency, n, 0.5);
        p99 = pct_us(r->latency, n, 0.99);
        printf("  offered %6.0f/s: achieved %.0f/s, p50 %.1f us (%.1fx the echo), p99 %.1f us "
               "(%.1fx the echo)", rate, (double)n / ((double)ns / 1e9), p50, p50 / echo->p50_us,
               p99, p99 / echo->p99_us);
        if (rate == 50000)
                printf(" (target p99 <= 100 us: %.2fx of budget)", p99 / 100.0);
        printf("\n");
        snprintf(name, sizeof(name), "faults.p50-at-%.0fk", rate / 1000);
        bench_report(name, p50, "us", echo->p50_us, BENCH_NONE, 0, 1);
        snprintf(name, sizeof(name), "faults.p99-at-%.0fk", rate / 1000);
        bench_report(name, p99, "us", echo->p99_us, rate == 50000 ? 100 : BENCH_NONE, 0, 1);
}

/* Pins the loop here and the client (and the echo's peer) on another CPU, where there is one. */
static void plan_cpus(int *ret_daemon, int *ret_client) {
        int k, r;

        *ret_daemon = *ret_client = -1;
        k = cpu_pair(ret_daemon, ret_client);
        if (k < 0) {
                printf("  not pinned: sched_getaffinity failed (%s)\n", strerror(-k));
                return;
        }
        if (k < 2) {
                *ret_daemon = *ret_client = -1;
                printf("  not pinned: this process may use %d CPU%s, the loop and the client "
                       "share it\n", k, k == 1 ? "" : "s");
                return;
        }
        r = pin_self(*ret_daemon);
        if (r < 0) {
                printf("  not pinned: sched_setaffinity failed (%s)\n", strerror(-r));
                *ret_daemon = *ret_client = -1;
                return;
        }
        printf("  pinned: the daemon's loop on CPU %d, the client thread on CPU %d\n",
               *ret_daemon, *ret_client);
}

int main(void) {
        const double rates[] = { 10000, 50000, 100000 };
        const size_t n_tput = 200000;
        int daemon_cpu, client_cpu;
        EchoFigures echo;
        Daemon d = {};
        Bench b = {};
        pthread_t thread;
        Run r = {};

        printf("bench-faults: inject (in-process, backend_sim_inject_fault) -> router -> "
               "Varlink stream -> client thread -> RespondFault -> device\n");
        print_load("at start", "faults.loadavg-start");
        plan_cpus(&daemon_cpu, &client_cpu);
        echo_measure(daemon_cpu, client_cpu, &echo);

        daemon_start(&d, &b);
        b.client_cpu = client_cpu;
        if (pthread_create(&thread, NULL, client_main, &b) != 0)
                die("cannot start the client thread");
        while (atomic_load(&b.ready) == 0) {
                struct timeval tv = { .tv_usec = 1000 };

                /* Setup is a handful of calls; the timeout only notices that it ended. */
                (void)event_base_loopexit(d.base, &tv);
                (void)event_base_loop(d.base, EVLOOP_ONCE);
        }
        if (atomic_load(&b.ready) < 0)
                die("client setup failed");
        r.t_inject = calloc(n_tput, sizeof(uint64_t));
        r.latency = calloc(n_tput, sizeof(uint64_t));
        if (!r.t_inject || !r.latency)
                die("out of memory");

        (void)run(d.base, d.host.backend, &b, 20000, 0, &r); /* warm-up */
        report_sustained(&d, &b, &r, n_tput, &echo);
        for (size_t i = 0; i < ELEMENTSOF(rates); i++)
                report_rate(&d, &b, &r, rates[i], &echo);
        print_load("at end", "faults.loadavg-end");

        atomic_store(&b.stop, true);
        pthread_join(thread, NULL);
        close(b.call_fd);
        close(b.watch_fd);
        free(r.t_inject);
        free(r.latency);
        daemon_stop(&d);
        return 0;
}
