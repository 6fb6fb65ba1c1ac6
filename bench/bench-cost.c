/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * What the daemon spends per operation, counted rather than timed: iommud runs
 * under callgrind (instrumentation switched on once it is ready), and after
 * each phase "callgrind_control --dump" writes the user-space instructions the
 * daemon executed since the previous dump.  A phase's figure is that count,
 * minus an empty phase measured in the same run (what a dump itself costs the
 * daemon), divided by the operations of the phase:
 *
 *   cost.map               Map of a 4 KiB memfd, fd passed, one call per wakeup
 *   cost.unmap             Unmap of it, one call per wakeup
 *   cost.pipelined         Map then Unmap in windows of 64 calls in flight
 *   cost.map-batch         MapBatch of 64 areas of 4 KiB (one fd), per area
 *   cost.unmap-batch       UnmapBatch of one range over those 64 mappings, per mapping
 *   cost.fault-round-trip  a fault raised, delivered to WatchFaults and answered
 *                          with RespondFault (the simulator's InjectFault of 64
 *                          faults per call is included, 1/64 per fault)
 *   cost.get-topology      GetTopology on the 4096-device simulated host
 *   cost.idle-wakeup       a connection wakes the daemon with one byte that
 *                          completes no request
 *
 * Counts do not depend on the machine's load, so these are the figures to
 * compare between builds on a shared machine.  IOMMUD_COST_KEEP=DIR keeps
 * every dump in DIR for callgrind_annotate, as callgrind.out.N numbered in the
 * order taken: two calibration dumps per daemon, then each phase's setup and
 * the phase itself.  Needs valgrind (callgrind and
 * callgrind_control); without it the benchmark says so and exits 77.
 */

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/sockios.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <json-c/json.h>

#include "bench-report.h"
#include "itest.h"
#include "macros.h"

#define PAGE 4096
#define WINDOW 64
#define FAULT_DEVICE "0000:3b:00.0"

static const char fault_topology[] =
        "{\n"
        "  \"name\": \"cost\",\n"
        "  \"cdev_major\": 511,\n"
        "  \"iommus\": [ { \"name\": \"dmar0\", \"kind\": \"intel\", \"aperture_start\": \"0x0\",\n"
        "      \"aperture_last\": \"0x7fffffffff\", \"page_sizes\": [\"4K\", \"2M\"],\n"
        "      \"pasid_bits\": 20, \"capabilities\": [],\n"
        "      \"nesting\": false, \"dirty_tracking\": false, \"fault_queue\": true } ],\n"
        "  \"groups\": [\n"
        "    { \"id\": 1, \"type\": \"DMA\", \"iommu\": \"dmar0\", \"reserved_regions\": [],\n"
        "      \"devices\": [ { \"name\": \"" FAULT_DEVICE "\", \"vendor\": \"0x10ee\",\n"
        "        \"device\": \"0x505c\", \"class\": \"0x120000\", \"driver\": \"vfio-pci\",\n"
        "        \"pasid_bits\": 20 } ] }\n"
        "  ]\n"
        "}\n";

typedef struct Counted {
        ItestDaemon daemon;
        char dir[64];   /* the wrapper script and callgrind's output */
        unsigned dumps; /* callgrind numbers its dumps 1, 2, ... */
        double dump_cost;
} Counted;

static _Noreturn void die(const char *what) {
        fprintf(stderr, "bench-cost: %s\n", what);
        exit(EXIT_FAILURE);
}

/* Runs callgrind_control with one option on the daemon; 0 when it succeeded. */
static int control(const Counted *c, const char *option) {
        char pid[32];
        int status;
        pid_t p;

        snprintf(pid, sizeof(pid), "%d", (int)c->daemon.pid);
        p = fork();
        if (p < 0)
                return -errno;
        if (p == 0) {
                int null = open("/dev/null", O_WRONLY | O_CLOEXEC);

                if (null >= 0) {
                        dup2(null, STDOUT_FILENO);
                        dup2(null, STDERR_FILENO);
                }
                execlp("callgrind_control", "callgrind_control", option, pid, NULL);
                _exit(127);
        }
        while (waitpid(p, &status, 0) < 0)
                if (errno != EINTR)
                        return -errno;
        return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -EIO;
}

/* Moves a dump to $IOMMUD_COST_KEEP when that is set, else removes it. */
static void keep(const char *path) {
        static unsigned n; /* across daemons: the dumps' order in the whole run */
        const char *dir = getenv("IOMMUD_COST_KEEP");
        char to[PATH_MAX];

        if (!dir || (size_t)snprintf(to, sizeof(to), "%s/callgrind.out.%u", dir, ++n) >= sizeof(to) ||
            rename(path, to) < 0)
                (void)unlink(path);
}

/* Dumps the counters (which zeroes them) and returns the instructions since the last dump. */
static double dump(Counted *c) {
        char path[128], line[256];
        double total = -1;
        FILE *f;

        if (control(c, "--dump") < 0)
                die("callgrind_control --dump failed");
        snprintf(path, sizeof(path), "%s/callgrind.out.%u", c->dir, ++c->dumps);
        f = fopen(path, "re");
        if (!f)
                die("callgrind wrote no dump");
        while (fgets(line, sizeof(line), f))
                if (sscanf(line, "totals: %lf", &total) == 1 ||
                    sscanf(line, "summary: %lf", &total) == 1)
                        break;
        fclose(f);
        keep(path);
        if (total < 0)
                die("a dump without totals");
        return total;
}

static void counted_start(Counted *c, const char *topology, const char *policy) {
        const char *binary = getenv("IOMMUD_BINARY");
        char script[128];
        FILE *f;

        if (!binary)
                die("IOMMUD_BINARY is not set");
        snprintf(c->dir, sizeof(c->dir), "/tmp/iommud-cost-XXXXXX");
        if (!mkdtemp(c->dir))
                die("cannot create a directory");
        snprintf(script, sizeof(script), "%s/iommud", c->dir);
        f = fopen(script, "we");
        if (!f)
                die("cannot write the wrapper");
        /* Startup runs uninstrumented: only the phases below are counted. */
        /* Kept dumps say which instructions, for callgrind_annotate --auto=yes. */
        fprintf(f,
                "#!/bin/sh\nexec valgrind -q --tool=callgrind --instr-atstart=no %s "
                "--log-file=%s/valgrind.log --callgrind-out-file=%s/callgrind.out "
                "'%s' \"$@\"\n",
                getenv("IOMMUD_COST_KEEP") ? "--dump-instr=yes" : "--dump-line=no", c->dir,
                c->dir, binary);
        if (fclose(f) != 0 || chmod(script, 0755) < 0)
                die("cannot write the wrapper");
        setenv("IOMMUD_BINARY", script, 1);
        if (itest_daemon_start(&c->daemon, topology, policy) < 0)
                die("cannot start iommud under callgrind");
        setenv("IOMMUD_BINARY", binary, 1);
        if (control(c, "--instr=on") < 0)
                die("callgrind_control --instr=on failed");
        (void)dump(c);
        /* What a dump costs the daemon (a wakeup from its poll), taken off every phase. */
        c->dump_cost = dump(c);
}

/* The daemon's instructions per operation since the last dump. */
static double per_op(Counted *c, unsigned ops) {
        double v = dump(c) - c->dump_cost;

        return (v < 0 ? 0 : v) / ops;
}

static void counted_stop(Counted *c) {
        char cmd[128];

        (void)itest_daemon_stop(&c->daemon);
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", c->dir);
        (void)!system(cmd);
}

static json_object *I(uint64_t v) {
        return json_object_new_int64((int64_t)v);
}

static json_object *call_ok(ItestClient *c, const char *method, json_object *params) {
        json_object *r = itest_call(c, method, params, NULL, 0);

        if (!r || itest_reply_error(r)) {
                fprintf(stderr, "bench-cost: %s failed: %s\n", method,
                        r ? json_object_to_json_string(r) : "connection closed");
                exit(EXIT_FAILURE);
        }
        return r;
}

static void expect_ok(ItestClient *c) {
        json_object *r = NULL;

        if (itest_client_recv(c, &r) <= 0 || itest_reply_error(r))
                die("an error reply or a closed connection");
        json_object_put(r);
}

static void send_text(ItestClient *c, const char *text, const int *fds, size_t n_fds) {
        if (itest_client_send_raw(c, text, strlen(text) + 1, fds, n_fds) < 0)
                die("send failed");
}

static void send_map(ItestClient *c, uint64_t ioas, uint64_t iova, int mem) {
        char s[512];

        snprintf(s, sizeof(s),
                 "{\"method\":\"org.iommud.Broker.Map\",\"parameters\":{\"ioasId\":%" PRIu64
                 ",\"memoryFd\":0,\"offset\":0,\"length\":%d,\"iova\":%" PRIu64
                 ",\"readable\":true,\"writeable\":true}}",
                 ioas, PAGE, iova);
        send_text(c, s, &mem, 1);
}

static void send_unmap(ItestClient *c, uint64_t ioas, uint64_t iova) {
        char s[512];

        snprintf(s, sizeof(s),
                 "{\"method\":\"org.iommud.Broker.Unmap\",\"parameters\":{\"ioasId\":%" PRIu64
                 ",\"iova\":%" PRIu64 ",\"length\":%d}}",
                 ioas, iova, PAGE);
        send_text(c, s, NULL, 0);
}

static uint64_t reply_u64(json_object *r, const char *key) {
        uint64_t v = itest_get_u64(itest_reply_params(r), key);

        json_object_put(r);
        return v;
}

static void map_phases(Counted *k, ItestClient *c, unsigned n) {
        uint64_t ioas = reply_u64(call_ok(c, "org.iommud.Broker.CreateAddressSpace", NULL),
                                  "ioasId");
        int mem = itest_memfd(PAGE);
        double map, unmap, pipelined;

        if (mem < 0)
                die("memfd failed");
        (void)dump(k);
        for (unsigned i = 0; i < n; i++) {
                send_map(c, ioas, 0x100000 + (uint64_t)i * PAGE, mem);
                expect_ok(c);
        }
        map = per_op(k, n);
        for (unsigned i = 0; i < n; i++) {
                send_unmap(c, ioas, 0x100000 + (uint64_t)i * PAGE);
                expect_ok(c);
        }
        unmap = per_op(k, n);
        for (unsigned done = 0; done < n; done += WINDOW) {
                for (unsigned i = 0; i < WINDOW; i++)
                        send_map(c, ioas, 0x1000000 + (uint64_t)i * PAGE, mem);
                for (unsigned i = 0; i < WINDOW; i++)
                        expect_ok(c);
                for (unsigned i = 0; i < WINDOW; i++)
                        send_unmap(c, ioas, 0x1000000 + (uint64_t)i * PAGE);
                for (unsigned i = 0; i < WINDOW; i++)
                        expect_ok(c);
        }
        pipelined = per_op(k, 2 * n);
        close(mem);

        printf("Map (fd passed): %.0f instructions per call (target <= 5000)\n", map);
        bench_report("cost.map", map, "instructions", BENCH_NONE, 5000, 0, 1);
        printf("Unmap: %.0f instructions per call (target <= 3000)\n", unmap);
        bench_report("cost.unmap", unmap, "instructions", BENCH_NONE, 3000, 0, 1);
        printf("Map/Unmap pipelined, windows of %d: %.0f instructions per call\n", WINDOW,
               pipelined);
        bench_report("cost.pipelined", pipelined, "instructions", BENCH_NONE, BENCH_NONE, 0, 1);
}

/* MapBatch of WINDOW pages of mem at iova up, written as a client would send it. */
static void send_map_batch(ItestClient *c, uint64_t ioas, uint64_t iova, int mem) {
        char s[WINDOW * 128 + 256];
        int n;

        n = snprintf(s, sizeof(s),
                     "{\"method\":\"org.iommud.Broker.MapBatch\",\"parameters\":{\"ioasId\":"
                     "%" PRIu64 ",\"areas\":[", ioas);
        for (unsigned i = 0; i < WINDOW; i++)
                n += snprintf(s + n, sizeof(s) - (size_t)n,
                              "%s{\"memoryFd\":0,\"offset\":%u,\"length\":%d,\"iova\":%" PRIu64
                              ",\"readable\":true,\"writeable\":true}",
                              i ? "," : "", i * PAGE, PAGE, iova + (uint64_t)i * PAGE);
        snprintf(s + n, sizeof(s) - (size_t)n, "]}}");
        send_text(c, s, &mem, 1);
}

static void batch_phases(Counted *k, ItestClient *c, unsigned n) {
        uint64_t ioas = reply_u64(call_ok(c, "org.iommud.Broker.CreateAddressSpace", NULL),
                                  "ioasId");
        int mem = itest_memfd(WINDOW * PAGE);
        double map = 0, unmap = 0;
        char s[512];

        if (mem < 0)
                die("memfd failed");
        snprintf(s, sizeof(s),
                 "{\"method\":\"org.iommud.Broker.UnmapBatch\",\"parameters\":{\"ioasId\":"
                 "%" PRIu64 ",\"ranges\":[{\"start\":%d,\"last\":%d}]}}",
                 ioas, 0x100000, 0x100000 + WINDOW * PAGE - 1);
        (void)dump(k);
        for (unsigned done = 0; done < n; done += WINDOW) {
                send_map_batch(c, ioas, 0x100000, mem);
                expect_ok(c);
                map += dump(k) - k->dump_cost;
                send_text(c, s, NULL, 0);
                expect_ok(c);
                unmap += dump(k) - k->dump_cost;
        }
        close(mem);

        map /= n;
        unmap /= n;
        printf("MapBatch of %d: %.0f instructions per area (target <= 1500)\n", WINDOW, map);
        bench_report("cost.map-batch", map, "instructions", BENCH_NONE, 1500, 0, 1);
        printf("UnmapBatch of %d mappings: %.0f instructions per mapping\n", WINDOW, unmap);
        bench_report("cost.unmap-batch", unmap, "instructions", BENCH_NONE, BENCH_NONE, 0, 1);
}

/* Waits until the daemon has read everything this connection sent (SIOCOUTQ drains to 0). */
static void wait_read(ItestClient *c) {
        int queued = 1;

        while (ioctl(c->fd, SIOCOUTQ, &queued) == 0 && queued > 0)
                (void)sched_yield();
}

static void idle_phase(Counted *k, const char *socket, unsigned n) {
        ItestClient *idle;
        double v;

        if (itest_client_connect(&idle, socket) < 0)
                die("cannot connect");
        (void)dump(k);
        for (unsigned i = 0; i < n; i++) {
                if (itest_client_send_raw(idle, " ", 1, NULL, 0) < 0)
                        die("send failed");
                wait_read(idle);
        }
        v = per_op(k, n);
        itest_client_free(idle);
        printf("idle connection's wakeup: %.0f instructions\n", v);
        bench_report("cost.idle-wakeup", v, "instructions", BENCH_NONE, BENCH_NONE, 0, 1);
}

/* Opens a stream of c's faults on a second connection of the same session. */
static ItestClient *watch(const char *socket, ItestClient *c) {
        json_object *r = call_ok(c, "org.iommud.Broker.GetSession", NULL);
        _cleanup_free_ char *token = strdup(itest_get_string(itest_reply_params(r), "token"));
        ItestClient *w;

        json_object_put(r);
        if (!token || itest_client_connect(&w, socket) < 0)
                die("cannot connect");
        json_object_put(call_ok(w, "org.iommud.Broker.JoinSession",
                                itest_params("token", json_object_new_string(token), NULL)));
        send_text(w,
                  "{\"method\":\"org.iommud.Broker.WatchFaults\",\"parameters\":{},\"more\":true}",
                  NULL, 0);
        return w;
}

static void fault_phase(Counted *k, const char *socket, ItestClient *c, unsigned n) {
        uint64_t dev = reply_u64(call_ok(c, "org.iommud.Broker.AttachDevice",
                                         itest_params("device",
                                                      json_object_new_string(FAULT_DEVICE),
                                                      NULL)),
                                 "deviceId");
        uint64_t ioas = reply_u64(call_ok(c, "org.iommud.Broker.CreateAddressSpace", NULL),
                                  "ioasId");
        uint64_t cookies[WINDOW];
        ItestClient *w;
        double v;

        json_object_put(call_ok(c, "org.iommud.Broker.BindPASID",
                                itest_params("deviceId", I(dev), "ioasId", I(ioas), "pasid", I(16),
                                             "faults", json_object_new_boolean(true), NULL)));
        w = watch(socket, c);
        (void)dump(k);
        for (unsigned done = 0; done < n; done += WINDOW) {
                json_object_put(call_ok(
                        c, "org.iommud.Simulator.InjectFault",
                        itest_params("device", json_object_new_string(FAULT_DEVICE), "pasid",
                                     I(16), "address", I(0x200000), "read",
                                     json_object_new_boolean(true), "count", I(WINDOW), NULL)));
                for (unsigned i = 0; i < WINDOW; i++) {
                        json_object *r = NULL, *fault;

                        if (itest_client_recv(w, &r) <= 0 || itest_reply_error(r) ||
                            !json_object_object_get_ex(itest_reply_params(r), "fault", &fault))
                                die("no fault on the stream");
                        cookies[i] = itest_get_u64(fault, "cookie");
                        json_object_put(r);
                }
                for (unsigned i = 0; i < WINDOW; i++) {
                        char s[256];

                        snprintf(s, sizeof(s),
                                 "{\"method\":\"org.iommud.Broker.RespondFault\",\"parameters\":"
                                 "{\"cookie\":%" PRIu64 ",\"code\":\"success\"}}",
                                 cookies[i]);
                        send_text(c, s, NULL, 0);
                }
                for (unsigned i = 0; i < WINDOW; i++)
                        expect_ok(c);
        }
        v = per_op(k, n);
        itest_client_free(w);
        printf("fault round trip: %.0f instructions per fault (target <= 6000)\n", v);
        bench_report("cost.fault-round-trip", v, "instructions", BENCH_NONE, 6000, 0, 1);
}

static void topology_phase(const char *policy, unsigned n) {
        ItestClient *c;
        Counted k = {};
        double v;

        counted_start(&k, "scale", policy);
        if (itest_client_connect(&c, k.daemon.socket) < 0)
                die("cannot connect");
        (void)dump(&k);
        for (unsigned i = 0; i < n; i++)
                json_object_put(call_ok(c, "org.iommud.Broker.GetTopology", NULL));
        v = per_op(&k, n);
        itest_client_free(c);
        counted_stop(&k);
        printf("GetTopology, 4096 devices: %.0f instructions per call\n", v);
        bench_report("cost.get-topology", v, "instructions", BENCH_NONE, BENCH_NONE, 0, 1);
}

static int write_topology(char *path, size_t size) {
        FILE *f;

        snprintf(path, size, "/tmp/iommud-cost-topology-%d.json", (int)getpid());
        f = fopen(path, "we");
        if (!f)
                return -errno;
        fputs(fault_topology, f);
        return fclose(f) == 0 ? 0 : -EIO;
}

int main(void) {
        /* IOMMUD_BENCH_SCALE (default 1) shrinks or grows every count. */
        double scale = getenv("IOMMUD_BENCH_SCALE") ? atof(getenv("IOMMUD_BENCH_SCALE")) : 1.0;
        unsigned n = ((unsigned)(256 * scale) / WINDOW ?: 1) * WINDOW;
        _cleanup_free_ char *policy = itest_policy_for_self(
                "\"open-on-behalf\": true, \"pasids\": { \"min\": 16, \"max\": 31 },\n"
                "      \"quotas\": { \"pinned-memory\": \"unlimited\", \"address-spaces\": "
                "\"unlimited\", \"mappings\": \"unlimited\", \"fault-queue-depth\": 256 }");
        char topology[128];
        ItestClient *c;
        Counted k = {};

        signal(SIGPIPE, SIG_IGN);
        setvbuf(stdout, NULL, _IOLBF, 0);
        if (system("command -v callgrind_control >/dev/null 2>&1") != 0) {
                printf("bench-cost: valgrind (callgrind_control) is not installed, skipping\n");
                return 77;
        }
        if (!policy || write_topology(topology, sizeof(topology)) < 0)
                die("cannot write the policy or the topology");

        counted_start(&k, topology, policy);
        printf("the daemon's cost of one dump: %.0f instructions (taken off every figure)\n",
               k.dump_cost);
        if (itest_client_connect(&c, k.daemon.socket) < 0)
                die("cannot connect");
        map_phases(&k, c, n);
        batch_phases(&k, c, n);
        fault_phase(&k, k.daemon.socket, c, n);
        idle_phase(&k, k.daemon.socket, n);
        itest_client_free(c);
        counted_stop(&k);
        (void)unlink(topology);

        topology_phase(policy, 2);
        return EXIT_SUCCESS;
}
