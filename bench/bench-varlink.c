/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * What the Varlink layer costs over the socket itself.  In one run:
 *   raw      ping-pong of a message of the size of a Varlink call over a Unix
 *            socket, echoed by a second thread: the floor;
 *   varlink  the same round trip as a call through VarlinkServer (libevent,
 *            JSON parsing and serializing, dispatch) with the blocking client;
 *   pipeline calls/s with 64 calls in flight.
 * Each latency is the best of three alternating runs.  Prints the figures
 * and the ratio; never fails on time.
 */

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <json-c/json.h>

#include "bench-report.h"
#include "json-util.h"
#include "macros.h"
#include "varlink-client.h"
#include "varlink-server.h"

#define ROUNDS 20000U
#define PIPELINE_CALLS 200000U
#define WINDOW 64U
#define REPEATS 3U

static double now(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int read_full(int fd, char *buf, size_t n) {
        while (n > 0) {
                ssize_t k = read(fd, buf, n);

                if (k <= 0)
                        return k == 0 ? -ECONNRESET : -errno;
                buf += k;
                n -= (size_t)k;
        }
        return 0;
}

static int write_full(int fd, const char *buf, size_t n) {
        while (n > 0) {
                ssize_t k = write(fd, buf, n);

                if (k < 0)
                        return -errno;
                buf += k;
                n -= (size_t)k;
        }
        return 0;
}

typedef struct RawCtx {
        int fd;
        size_t size;
} RawCtx;

static void *raw_echo(void *userdata) {
        RawCtx *ctx = userdata;
        char buf[4096];

        while (read_full(ctx->fd, buf, ctx->size) >= 0)
                if (write_full(ctx->fd, buf, ctx->size) < 0)
                        break;
        return NULL;
}

static double bench_raw(size_t size) {
        char buf[4096];
        RawCtx ctx = { .size = size };
        pthread_t th;
        int sv[2];
        double t0, t;

        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
                abort();
        ctx.fd = sv[1];
        pthread_create(&th, NULL, raw_echo, &ctx);
        memset(buf, 'x', size);
        t0 = now();
        for (unsigned i = 0; i < ROUNDS; i++)
                if (write_full(sv[0], buf, size) < 0 || read_full(sv[0], buf, size) < 0)
                        abort();
        t = now() - t0;
        shutdown(sv[0], SHUT_RDWR);
        pthread_join(th, NULL);
        safe_close(sv[0]);
        safe_close(sv[1]);
        return t / ROUNDS;
}

static int m_echo(VarlinkCall *call, json_object *params, VarlinkCallFlags flags, void *userdata) {
        return varlink_call_reply(call, json_object_get(params));
}

static const VarlinkMethod bench_methods[] = { { "Echo", m_echo }, {} };
static const VarlinkInterface bench_interface = {
        .name = "io.iommud.Bench",
        .description = "interface io.iommud.Bench\nmethod Echo(seq: int) -> (seq: int)\n",
        .methods = bench_methods,
};

typedef struct ServerCtx {
        struct event_base *base;
        int stop;
} ServerCtx;

static void on_stop(evutil_socket_t fd, short what, void *userdata) {
        event_base_loopbreak(userdata);
}

static void *server_thread(void *userdata) {
        ServerCtx *ctx = userdata;
        struct event *ev = event_new(ctx->base, ctx->stop, EV_READ, on_stop, ctx->base);

        event_add(ev, NULL);
        event_base_dispatch(ctx->base);
        event_free(ev);
        return NULL;
}

int main(void) {
        _cleanup_(varlink_server_freep) VarlinkServer *s = NULL;
        _cleanup_(varlink_client_freep) VarlinkClient *c = NULL;
        VarlinkReply r = VARLINK_REPLY_INIT;
        ServerCtx ctx;
        json_object *params;
        pthread_t th;
        int sv[2], stop[2];
        size_t call_size;
        double raw, vl, t0, pipelined;
        unsigned sent = 0, received = 0;

        ctx.base = event_base_new();
        if (!ctx.base || varlink_server_new(&s, ctx.base, NULL) < 0 ||
            varlink_server_add_interface(s, &bench_interface) < 0)
                abort();
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0 || pipe2(stop, O_CLOEXEC) < 0)
                abort();
        if (varlink_server_add_connection(s, sv[0], NULL) < 0 || varlink_client_new_from_fd(&c, sv[1]) < 0)
                abort();
        ctx.stop = stop[0];

        params = json_object_new_object();
        json_util_add(params, "seq", json_object_new_int(12345));
        /* The bytes of one call on the wire, for a fair raw baseline. */
        call_size = strlen("{\"method\":\"io.iommud.Bench.Echo\",\"parameters\":") +
                    strlen(json_object_to_json_string_ext(params, JSON_C_TO_STRING_PLAIN)) + 2;

        pthread_create(&th, NULL, server_thread, &ctx);
        /* Warm up buffers and caches on both sides. */
        for (unsigned i = 0; i < 1000; i++) {
                if (varlink_client_call(c, "io.iommud.Bench.Echo", params, NULL, 0, &r) < 0 || r.error)
                        abort();
                varlink_reply_clear(&r);
        }
        /* Alternate the two and keep the best of each, so that noise from other load on the
         * machine does not land on one side only. */
        raw = vl = 1e9;
        for (unsigned rep = 0; rep < REPEATS; rep++) {
                raw = MIN(raw, bench_raw(call_size));
                t0 = now();
                for (unsigned i = 0; i < ROUNDS; i++) {
                        if (varlink_client_call(c, "io.iommud.Bench.Echo", params, NULL, 0, &r) < 0 ||
                            r.error)
                                abort();
                        varlink_reply_clear(&r);
                }
                vl = MIN(vl, (now() - t0) / ROUNDS);
        }

        t0 = now();
        while (received < PIPELINE_CALLS) {
                while (sent < PIPELINE_CALLS && sent - received < WINDOW) {
                        if (varlink_client_send(c, "io.iommud.Bench.Echo", params, NULL, 0, 0) < 0)
                                abort();
                        sent++;
                }
                if (varlink_client_wait(c, -1, &r) < 0 || r.error)
                        abort();
                varlink_reply_clear(&r);
                received++;
        }
        pipelined = PIPELINE_CALLS / (now() - t0);

        if (write(stop[1], "x", 1) != 1)
                abort();
        pthread_join(th, NULL);

        printf("message size:          %zu bytes\n", call_size);
        printf("raw socket round trip: %8.2f us  (%9.0f /s)\n", raw * 1e6, 1.0 / raw);
        printf("varlink call:          %8.2f us  (%9.0f /s)\n", vl * 1e6, 1.0 / vl);
        printf("ratio varlink/raw:     %8.2f\n", vl / raw);
        printf("pipelined calls (%u in flight): %9.0f /s  (%.2f us per call)\n", WINDOW, pipelined,
               1e6 / pipelined);
        bench_report("varlink.call-rtt", vl * 1e6, "us", raw * 1e6, BENCH_NONE, 1, 1);
        bench_report("varlink.pipelined-calls", pipelined, "calls/s", 1.0 / raw, BENCH_NONE, 1, 0);

        json_object_put(params);
        s = varlink_server_free(s);
        event_base_free(ctx.base);
        safe_close(stop[0]);
        safe_close(stop[1]);
        return 0;
}
