/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Device DMA through the real iommud binary on a simulated host: a client maps its memfd,
 * the simulated device writes and reads it (org.iommud.Simulator.InjectDMA) through the
 * address space it is attached to, and the client sees the bytes in its own memfd.  What the
 * IOMMU must refuse (no permission, nothing mapped after an Unmap, a detached device, a device
 * whose session ended) faults and moves no byte; the model's memory goes back to zero.
 */

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "base64.h"
#include "itest.h"
#include "macros.h"

#define DEV "0000:01:00.0"
#define PAGE 4096
#define IOVA 0x100000
#define MEM_BYTES (4 * PAGE)

static const char topology[] =
        "{\n"
        "  \"name\": \"dma\",\n"
        "  \"description\": \"one VT-d unit, one device\",\n"
        "  \"cdev_major\": 511,\n"
        "  \"iommus\": [ { \"name\": \"dmar0\", \"kind\": \"intel\", \"aperture_start\": \"0x0\",\n"
        "      \"aperture_last\": \"0x7fffffffff\", \"page_sizes\": [\"4K\", \"2M\"] } ],\n"
        "  \"groups\": [\n"
        "    { \"id\": 1, \"type\": \"DMA\", \"iommu\": \"dmar0\", \"reserved_regions\": [],\n"
        "      \"devices\": [ { \"name\": \"" DEV "\", \"vendor\": \"0x1234\",\n"
        "        \"device\": \"0x11e8\", \"class\": \"0x00ff00\", \"driver\": \"vfio-pci\" } ] }\n"
        "  ]\n"
        "}\n";

typedef struct Fixture {
        ItestDaemon daemon;
        char topology_path[256];
} Fixture;

#define assert_ok(reply)                                                                           \
        do {                                                                                       \
                const char *_e = itest_reply_error(reply);                                         \
                if (_e)                                                                            \
                        fail_msg("unexpected error %s: %s", _e,                                    \
                                 reply ? json_object_to_json_string(reply) : "");                  \
        } while (0)

#define assert_error(reply, name)                                                                  \
        do {                                                                                       \
                const char *_e = itest_reply_error(reply);                                         \
                if (!_e || strcmp(_e, (name)) != 0)                                                \
                        fail_msg("expected %s, got %s", (name),                                    \
                                 reply ? json_object_to_json_string(reply) : "(none)");            \
        } while (0)

static json_object *I(uint64_t v) {
        return json_object_new_int64((int64_t)v);
}

static json_object *call_ok(ItestClient *c, const char *method, json_object *params,
                            const int *fds, size_t n_fds) {
        json_object *r = itest_call(c, method, params, fds, n_fds);

        assert_non_null(r);
        assert_ok(r);
        return r;
}

static void call_ok_put(ItestClient *c, const char *method, json_object *params) {
        json_object_put(call_ok(c, method, params, NULL, 0));
}

static bool get_bool(json_object *o, const char *key) {
        json_object *v;

        if (!json_object_object_get_ex(o, key, &v))
                fail_msg("no %s in %s", key, json_object_to_json_string(o));
        return json_object_get_boolean(v);
}

/* ---- fixture ----------------------------------------------------------------------------- */

static int group_setup(void **state) {
        Fixture *f = calloc(1, sizeof(*f));
        char *policy;
        FILE *t;

        assert_non_null(f);
        snprintf(f->topology_path, sizeof(f->topology_path), "%s/dma-topology.json",
                 getenv("IOMMUD_ITEST_SCRATCH") ?: "/tmp");
        t = fopen(f->topology_path, "we");
        assert_non_null(t);
        fputs(topology, t);
        assert_int_equal(fclose(t), 0);
        policy = itest_policy_for_self("\"open-on-behalf\": true");
        assert_non_null(policy);
        assert_int_equal(itest_daemon_start(&f->daemon, f->topology_path, policy), 0);
        free(policy);
        *state = f;
        return 0;
}

static int group_teardown(void **state) {
        Fixture *f = *state;

        /* A clean exit status also means no sanitizer report and no leak. */
        assert_int_equal(itest_daemon_stop(&f->daemon), 0);
        (void)unlink(f->topology_path);
        free(f);
        return 0;
}

/* ---- the simulated device ------------------------------------------------------------------ */

typedef struct Dma {
        bool faulted;
        char reason[16];
        uint64_t address;
        char data[64];
        size_t n;
} Dma;

/* InjectDMA from DEV: writes data (n bytes) at iova, or reads n bytes there (data NULL). */
static Dma inject(ItestClient *sim, uint64_t iova, const char *data, size_t n) {
        json_object *p = itest_params("device", json_object_new_string(DEV), "iova", I(iova),
                                      "write", json_object_new_boolean(data != NULL), NULL);
        json_object *r, *out, *v;
        Dma d = {};

        if (data) {
                _cleanup_free_ char *coded = NULL;

                assert_int_equal(base64_encode(data, n, &coded), 0);
                json_object_object_add(p, "data", json_object_new_string(coded));
        } else
                json_object_object_add(p, "length", I(n));
        r = call_ok(sim, "org.iommud.Simulator.InjectDMA", p, NULL, 0);
        out = itest_reply_params(r);
        d.faulted = get_bool(out, "faulted");
        if (d.faulted) {
                d.address = itest_get_u64(out, "faultAddress");
                snprintf(d.reason, sizeof(d.reason), "%s", itest_get_string(out, "faultReason"));
        } else if (!data) {
                _cleanup_free_ void *bytes = NULL;
                const char *coded;

                assert_true(json_object_object_get_ex(out, "data", &v));
                coded = json_object_get_string(v);
                assert_int_equal(base64_decode(coded, strlen(coded), &bytes, &d.n), 0);
                assert_true(d.n <= sizeof(d.data));
                memcpy(d.data, bytes, d.n);
        }
        json_object_put(r);
        return d;
}

static uint64_t stat_of(ItestClient *sim, const char *key) {
        json_object *r = call_ok(sim, "org.iommud.Simulator.GetStats", NULL, NULL, 0);
        uint64_t v = itest_get_u64(itest_reply_params(r), key);

        json_object_put(r);
        return v;
}

static void assert_mem(int fd, off_t off, const char *want, size_t n) {
        char got[64] = "";

        assert_true(n <= sizeof(got));
        assert_int_equal(pread(fd, got, n, off), (ssize_t)n);
        assert_memory_equal(got, want, n);
}

/* ---- tests ------------------------------------------------------------------------------- */

static uint64_t map(ItestClient *c, uint64_t ioas, int memfd, uint64_t offset, uint64_t length,
                    uint64_t iova, bool writeable) {
        json_object *r = call_ok(c, "org.iommud.Broker.Map",
                                 itest_params("ioasId", I(ioas), "memoryFd", I(0), "offset",
                                              I(offset), "length", I(length), "iova", I(iova),
                                              "readable", json_object_new_boolean(true),
                                              "writeable", json_object_new_boolean(writeable),
                                              NULL),
                                 &memfd, 1);

        json_object_put(r);
        return iova;
}

/* A client's memfd, mapped, is what the device writes and reads; an Unmap takes it away. */
static void test_dma_reaches_the_client_memfd(void **state) {
        Fixture *f = *state;
        ItestClient *c, *sim;
        int memfd = itest_memfd(MEM_BYTES);
        uint64_t dev, ioas, faults;
        json_object *r;
        Dma d;

        assert_int_equal(itest_client_connect(&c, f->daemon.socket), 0);
        assert_int_equal(itest_client_connect(&sim, f->daemon.socket), 0);
        r = call_ok(c, "org.iommud.Broker.AttachDevice",
                    itest_params("device", json_object_new_string(DEV), NULL), NULL, 0);
        dev = itest_get_u64(itest_reply_params(r), "deviceId");
        json_object_put(r);
        r = call_ok(c, "org.iommud.Broker.CreateAddressSpace", NULL, NULL, 0);
        ioas = itest_get_u64(itest_reply_params(r), "ioasId");
        json_object_put(r);
        call_ok_put(c, "org.iommud.Broker.AttachToAddressSpace",
                    itest_params("deviceId", I(dev), "ioasId", I(ioas), NULL));
        map(c, ioas, memfd, 0, 2 * PAGE, IOVA, true);
        map(c, ioas, memfd, 3 * PAGE, PAGE, IOVA + 4 * PAGE, false);
        assert_int_equal(stat_of(sim, "pinnedBytes"), 3 * PAGE);
        assert_int_equal(stat_of(sim, "memoryFiles"), 1);
        faults = stat_of(sim, "dmaFaults");

        /* Written by the device, read by the client; written by the client, read by it. */
        d = inject(sim, IOVA + PAGE + 16, "written by DMA", 14);
        assert_false(d.faulted);
        assert_mem(memfd, PAGE + 16, "written by DMA", 14);
        assert_int_equal(pwrite(memfd, "by the CPU", 10, 3 * PAGE + 8), 10);
        d = inject(sim, IOVA + 4 * PAGE + 8, NULL, 10);
        assert_false(d.faulted);
        assert_int_equal(d.n, 10);
        assert_memory_equal(d.data, "by the CPU", 10);
        /* Mapped read-only: the write faults and changes nothing. */
        d = inject(sim, IOVA + 4 * PAGE + 8, "overwrite!", 10);
        assert_true(d.faulted);
        assert_string_equal(d.reason, "permission");
        assert_mem(memfd, 3 * PAGE + 8, "by the CPU", 10);

        /* After the Unmap the same DMA faults at the same address. */
        call_ok_put(c, "org.iommud.Broker.Unmap",
                    itest_params("ioasId", I(ioas), "iova", I(IOVA), "length", I(2 * PAGE), NULL));
        d = inject(sim, IOVA + PAGE + 16, "too late, DMA!", 14);
        assert_true(d.faulted);
        assert_string_equal(d.reason, "unmapped");
        assert_int_equal(d.address, IOVA + PAGE + 16);
        assert_mem(memfd, PAGE + 16, "written by DMA", 14);

        /* Detached, the device reaches nothing; its session gone, nothing is left. */
        call_ok_put(c, "org.iommud.Broker.DetachDevice", itest_params("deviceId", I(dev), NULL));
        d = inject(sim, IOVA + 4 * PAGE, NULL, 1);
        assert_true(d.faulted);
        assert_string_equal(d.reason, "blocked");
        assert_int_equal(stat_of(sim, "dmaFaults"), faults + 3);
        itest_client_free(c);
        close(memfd);
        for (int i = 0; i < 2000 && stat_of(sim, "memoryFiles") > 0; i++)
                usleep(5000);
        assert_int_equal(stat_of(sim, "mappings"), 0);
        assert_int_equal(stat_of(sim, "pinnedBytes"), 0);
        assert_int_equal(stat_of(sim, "memoryFiles"), 0);
        itest_client_free(sim);
}

/* What InjectDMA refuses before any DMA happens. */
static void test_inject_dma_bad_input(void **state) {
        Fixture *f = *state;
        ItestClient *sim;
        json_object *r;
        const struct {
                const char *json, *error, *parameter;
        } cases[] = {
                { "{\"device\":\"0000:99:00.0\",\"iova\":0,\"write\":false,\"length\":1}",
                  "org.iommud.Simulator.NoSuchDevice", NULL },
                { "{\"device\":\"" DEV "\",\"iova\":0,\"write\":true,\"data\":\"not base64!\"}",
                  "org.varlink.service.InvalidParameter", "data" },
                { "{\"device\":\"" DEV "\",\"iova\":0,\"write\":true}",
                  "org.varlink.service.InvalidParameter", "data" },
                { "{\"device\":\"" DEV "\",\"iova\":0,\"write\":false}",
                  "org.varlink.service.InvalidParameter", "length" },
                { "{\"device\":\"" DEV "\",\"iova\":0,\"write\":false,\"length\":0}",
                  "org.varlink.service.InvalidParameter", "length" },
                { "{\"device\":\"" DEV "\",\"iova\":0,\"write\":false,\"length\":1048577}",
                  "org.varlink.service.InvalidParameter", "length" },
                { "{\"device\":\"" DEV "\",\"iova\":18446744073709551615,\"write\":false,"
                  "\"length\":2}",
                  "org.varlink.service.InvalidParameter", "length" },
        };

        assert_int_equal(itest_client_connect(&sim, f->daemon.socket), 0);
        FOREACH_ARRAY(t, cases, ELEMENTSOF(cases)) {
                r = itest_call(sim, "org.iommud.Simulator.InjectDMA", json_tokener_parse(t->json),
                               NULL, 0);
                assert_error(r, t->error);
                if (t->parameter)
                        assert_string_equal(itest_get_string(itest_reply_params(r), "parameter"),
                                            t->parameter);
                json_object_put(r);
        }
        itest_client_free(sim);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_dma_reaches_the_client_memfd),
                cmocka_unit_test(test_inject_dma_bad_input),
        };

        return cmocka_run_group_tests_name("dma", tests, group_setup, group_teardown);
}
