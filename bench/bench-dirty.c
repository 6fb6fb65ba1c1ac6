/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Dirty tracking through the broker for a 64 GiB guest: ReadDirtyBitmap of the whole address
 * space at 4 KiB a bit (a 2 MiB bitmap, written by iommud into the client's memfd), timed
 * against a plain read of the same 2 MiB from a memfd in the same run: the ratio is what the
 * broker adds to the bitmap a VMM reads every pre-copy round.  The bits are counted: every
 * page the simulated device wrote (InjectDMA) is found once, and a clearing read leaves none.
 * Starts the real iommud on a simulated host.  Prints figures; never fails on time.
 */

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "base64.h"
#include "bench-report.h"
#include "itest.h"
#include "macros.h"

#define DEV "0000:01:00.0"
#define PAGE UINT64_C(4096)
#define GUEST (UINT64_C(64) << 30)
#define IOVA (UINT64_C(1) << 32)
#define BITMAP_BYTES (GUEST / PAGE / 8)
#define WRITES 256

static const char topology[] =
        "{ \"name\": \"bench-dirty\", \"description\": \"one VT-d unit with dirty tracking\",\n"
        "  \"cdev_major\": 511,\n"
        "  \"iommus\": [ { \"name\": \"dmar0\", \"kind\": \"intel\", \"aperture_start\": \"0x0\",\n"
        "      \"aperture_last\": \"0x7fffffffff\", \"page_sizes\": [\"4K\", \"2M\"],\n"
        "      \"dirty_tracking\": true } ],\n"
        "  \"groups\": [ { \"id\": 1, \"type\": \"DMA\", \"iommu\": \"dmar0\",\n"
        "      \"reserved_regions\": [], \"devices\": [ { \"name\": \"" DEV "\",\n"
        "        \"vendor\": \"0x1234\", \"device\": \"0x11e8\", \"class\": \"0x00ff00\",\n"
        "        \"driver\": \"vfio-pci\" } ] } ] }\n";

static double now(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static _Noreturn void die(const char *what) {
        fprintf(stderr, "bench-dirty: %s\n", what);
        exit(EXIT_FAILURE);
}

static json_object *I(uint64_t v) {
        return json_object_new_int64((int64_t)v);
}

static uint64_t call_ok(ItestClient *c, const char *method, json_object *params, int fd,
                        const char *key) {
        json_object *r = itest_call(c, method, params, fd >= 0 ? &fd : NULL, fd >= 0 ? 1 : 0);
        uint64_t v = 0;

        if (!r || itest_reply_error(r)) {
                fprintf(stderr, "bench-dirty: %s: %s\n", method,
                        r ? json_object_to_json_string(r) : "no reply");
                exit(EXIT_FAILURE);
        }
        if (key)
                v = itest_get_u64(itest_reply_params(r), key);
        json_object_put(r);
        return v;
}

static void read_bitmap(ItestClient *c, uint64_t ioas, int fd) {
        call_ok(c, "org.iommud.Broker.ReadDirtyBitmap",
                itest_params("ioasId", I(ioas), "iova", I(IOVA), "length", I(GUEST), "pageSize",
                             I(PAGE), "clear", json_object_new_boolean(true), "bitmapFd", I(0),
                             NULL),
                fd, NULL);
}

static uint64_t count_bits(int fd) {
        _cleanup_free_ uint64_t *b = malloc(BITMAP_BYTES);
        uint64_t n = 0;

        if (!b || pread(fd, b, BITMAP_BYTES, 0) != (ssize_t)BITMAP_BYTES)
                die("cannot read the bitmap back");
        for (size_t i = 0; i < BITMAP_BYTES / 8; i++)
                n += (uint64_t)__builtin_popcountll(b[i]);
        return n;
}

/* The simulated device writes one byte in each of WRITES pages spread over the guest. */
static void device_writes(ItestClient *sim) {
        _cleanup_free_ char *coded = NULL;

        if (base64_encode("x", 1, &coded) < 0)
                die("out of memory");
        for (uint64_t i = 0; i < WRITES; i++)
                call_ok(sim, "org.iommud.Simulator.InjectDMA",
                        itest_params("device", json_object_new_string(DEV), "iova",
                                     I(IOVA + i * (GUEST / WRITES) + 17 * PAGE), "write",
                                     json_object_new_boolean(true), "data",
                                     json_object_new_string(coded), NULL),
                        -1, NULL);
}

int main(int argc, char *argv[]) {
        double scale = getenv("IOMMUD_BENCH_SCALE") ? atof(getenv("IOMMUD_BENCH_SCALE")) : 1.0;
        const int rounds = (int)(50 * scale) ?: 1;
        char topo_path[256];
        char *policy = itest_policy_for_self(
                "\"open-on-behalf\": true, \"quotas\": { \"pinned-memory\": \"unlimited\" }");
        ItestDaemon d;
        ItestClient *c, *sim;
        uint64_t dev, ioas, found, left;
        int guest, bitmap, plain;
        _cleanup_free_ void *buf = malloc(BITMAP_BYTES);
        double t0, brokered, raw;

        setvbuf(stdout, NULL, _IOLBF, 0);
        snprintf(topo_path, sizeof(topo_path), "%s/bench-dirty-%d.json",
                 getenv("TMPDIR") ?: "/tmp", (int)getpid());
        if (!buf || !policy || itest_write_file(topo_path, topology) < 0 ||
            itest_daemon_start(&d, topo_path, policy) < 0)
                die("cannot start iommud (is IOMMUD_BINARY set?)");
        free(policy);
        if (itest_client_connect(&c, d.socket) < 0 || itest_client_connect(&sim, d.socket) < 0)
                die("cannot connect");
        guest = itest_memfd(0);
        bitmap = itest_memfd(BITMAP_BYTES);
        plain = itest_memfd(BITMAP_BYTES);
        if (guest < 0 || bitmap < 0 || plain < 0 || ftruncate(guest, (off_t)GUEST) < 0)
                die("cannot make the memfds");

        dev = call_ok(c, "org.iommud.Broker.AttachDevice",
                      itest_params("device", json_object_new_string(DEV), NULL), -1, "deviceId");
        ioas = call_ok(c, "org.iommud.Broker.CreateAddressSpace",
                       itest_params("dirtyTracking", json_object_new_boolean(true), NULL), -1,
                       "ioasId");
        call_ok(c, "org.iommud.Broker.AttachToAddressSpace",
                itest_params("deviceId", I(dev), "ioasId", I(ioas), NULL), -1, NULL);
        call_ok(c, "org.iommud.Broker.Map",
                itest_params("ioasId", I(ioas), "memoryFd", I(0), "offset", I(0), "length",
                             I(GUEST), "iova", I(IOVA), "readable", json_object_new_boolean(true),
                             "writeable", json_object_new_boolean(true), NULL),
                guest, NULL);
        call_ok(c, "org.iommud.Broker.SetDirtyTracking",
                itest_params("ioasId", I(ioas), "enabled", json_object_new_boolean(true), NULL),
                -1, NULL);

        /* Counted: what the device wrote is there once, and a clearing read leaves nothing. */
        device_writes(sim);
        read_bitmap(c, ioas, bitmap);
        found = count_bits(bitmap);
        read_bitmap(c, ioas, bitmap);
        left = count_bits(bitmap);
        printf("dirty pages: %d written, %" PRIu64 " found, %" PRIu64 " after a clearing read\n",
               WRITES, found, left);
        bench_report("dirty.pages-found", (double)found, "pages", WRITES, 1, 1, 1);
        bench_report("dirty.pages-left-after-clear", (double)left, "pages", BENCH_NONE, 0, 0, 1);
        if (found != WRITES || left != 0)
                die("the bitmap does not hold what the device wrote");

        /* Timed: a round of pre-copy reads the whole bitmap; the baseline reads 2 MiB. */
        device_writes(sim);
        t0 = now();
        for (int i = 0; i < rounds; i++)
                read_bitmap(c, ioas, bitmap);
        brokered = (now() - t0) / rounds;
        t0 = now();
        for (int i = 0; i < rounds; i++)
                if (pread(plain, buf, BITMAP_BYTES, 0) != (ssize_t)BITMAP_BYTES)
                        die("cannot read the plain memfd");
        raw = (now() - t0) / rounds;
        printf("ReadDirtyBitmap of %" PRIu64 " GiB at 4 KiB (%" PRIu64 " KiB): %.1f us; "
               "pread of the same bytes from a memfd: %.1f us (%d rounds)\n",
               GUEST >> 30, BITMAP_BYTES >> 10, brokered * 1e6, raw * 1e6, rounds);
        bench_report("dirty.read-bitmap-64g", brokered * 1e6, "us", raw * 1e6, 20, 1, 1);

        itest_client_free(sim);
        itest_client_free(c);
        if (itest_daemon_stop(&d) < 0)
                die("iommud did not stop cleanly");
        (void)unlink(topo_path);
        return 0;
}
