/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Dirty tracking through the real iommud binary on a simulated host, as a migrating VMM uses
 * it: GetFeatures says which device's IOMMU can track, an address space created with dirty
 * tracking refuses the one that cannot by name, the simulated device writes
 * (org.iommud.Simulator.InjectDMA) and ReadDirtyBitmap shows those pages in the client's memfd,
 * and an Unmap returns the bits of what it unmaps.
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

#define DEV "0000:01:00.0"   /* behind dmar0, which tracks dirty pages */
#define PLAIN "0000:02:00.0" /* behind dmar1, which does not */
#define PAGE 4096
#define IOVA 0x100000
#define MEM_BYTES (16 * PAGE)

static const char topology[] =
        "{\n"
        "  \"name\": \"dirty\",\n"
        "  \"description\": \"a VT-d unit with dirty tracking and one without\",\n"
        "  \"cdev_major\": 511,\n"
        "  \"iommus\": [\n"
        "    { \"name\": \"dmar0\", \"kind\": \"intel\", \"aperture_start\": \"0x0\",\n"
        "      \"aperture_last\": \"0x7fffffffff\", \"page_sizes\": [\"4K\", \"2M\"],\n"
        "      \"dirty_tracking\": true },\n"
        "    { \"name\": \"dmar1\", \"kind\": \"intel\", \"aperture_start\": \"0x0\",\n"
        "      \"aperture_last\": \"0x7fffffffff\", \"page_sizes\": [\"4K\", \"2M\"] } ],\n"
        "  \"groups\": [\n"
        "    { \"id\": 1, \"type\": \"DMA\", \"iommu\": \"dmar0\", \"reserved_regions\": [],\n"
        "      \"devices\": [ { \"name\": \"" DEV "\", \"vendor\": \"0x1234\",\n"
        "        \"device\": \"0x11e8\", \"class\": \"0x00ff00\", \"driver\": \"vfio-pci\" } ] },\n"
        "    { \"id\": 2, \"type\": \"DMA\", \"iommu\": \"dmar1\", \"reserved_regions\": [],\n"
        "      \"devices\": [ { \"name\": \"" PLAIN "\", \"vendor\": \"0x1234\",\n"
        "        \"device\": \"0x11e8\", \"class\": \"0x00ff00\", \"driver\": \"vfio-pci\" } ] }\n"
        "  ]\n"
        "}\n";

typedef struct Fixture {
        ItestDaemon daemon;
        char topology_path[256];
} Fixture;

static json_object *I(uint64_t v) {
        return json_object_new_int64((int64_t)v);
}

static json_object *B(bool v) {
        return json_object_new_boolean(v);
}

static void assert_reply(json_object *r, const char *error) {
        const char *e = itest_reply_error(r);

        if (error ? !e || strcmp(e, error) != 0 : e != NULL)
                fail_msg("expected %s, got %s", error ?: "success",
                         r ? json_object_to_json_string(r) : "(none)");
}

static json_object *call(ItestClient *c, const char *method, json_object *params, int fd,
                         const char *error) {
        json_object *r = itest_call(c, method, params, fd >= 0 ? &fd : NULL, fd >= 0 ? 1 : 0);

        assert_non_null(r);
        assert_reply(r, error);
        return r;
}

static void call_put(ItestClient *c, const char *method, json_object *params, int fd,
                     const char *error) {
        json_object_put(call(c, method, params, fd, error));
}

static uint64_t call_u64(ItestClient *c, const char *method, json_object *params,
                         const char *key) {
        json_object *r = call(c, method, params, -EBADF, NULL);
        uint64_t v = itest_get_u64(itest_reply_params(r), key);

        json_object_put(r);
        return v;
}

static int group_setup(void **state) {
        Fixture *f = calloc(1, sizeof(*f));
        char *policy;

        assert_non_null(f);
        snprintf(f->topology_path, sizeof(f->topology_path), "%s/dirty-topology.json",
                 getenv("IOMMUD_ITEST_SCRATCH") ?: "/tmp");
        assert_int_equal(itest_write_file(f->topology_path, topology), 0);
        policy = itest_policy_for_self("\"open-on-behalf\": true");
        assert_non_null(policy);
        assert_int_equal(itest_daemon_start(&f->daemon, f->topology_path, policy), 0);
        free(policy);
        *state = f;
        return 0;
}

static int group_teardown(void **state) {
        Fixture *f = *state;

        assert_int_equal(itest_daemon_stop(&f->daemon), 0);
        (void)unlink(f->topology_path);
        free(f);
        return 0;
}

static uint64_t attach(ItestClient *c, const char *device) {
        return call_u64(c, "org.iommud.Broker.AttachDevice",
                        itest_params("device", json_object_new_string(device), NULL), "deviceId");
}

/* A write of n bytes by DEV at iova. */
static void dma_write(ItestClient *sim, uint64_t iova, size_t n) {
        _cleanup_free_ char *coded = NULL, *data = calloc(1, n);
        json_object *r;

        assert_non_null(data);
        assert_int_equal(base64_encode(data, n, &coded), 0);
        r = call(sim, "org.iommud.Simulator.InjectDMA",
                 itest_params("device", json_object_new_string(DEV), "iova", I(iova), "write",
                              B(true), "data", json_object_new_string(coded), NULL),
                 -EBADF, NULL);
        assert_false(json_object_get_boolean(
                json_object_object_get(itest_reply_params(r), "faulted")));
        json_object_put(r);
}

/* The first 64 bits of the bitmap of [IOVA, IOVA + 16 pages) at PAGE, through a memfd. */
static uint64_t read_bits(ItestClient *c, uint64_t ioas, bool clear) {
        int fd = itest_memfd(PAGE);
        uint64_t bits = UINT64_MAX;

        call_put(c, "org.iommud.Broker.ReadDirtyBitmap",
                 itest_params("ioasId", I(ioas), "iova", I(IOVA), "length", I(16 * PAGE),
                              "pageSize", I(PAGE), "clear", B(clear), "bitmapFd", I(0), NULL),
                 fd, NULL);
        assert_int_equal(pread(fd, &bits, sizeof(bits), 0), (ssize_t)sizeof(bits));
        close(fd);
        return bits;
}

static bool feature_offered(json_object *out, const char *feature, bool *ret_granted) {
        json_object *policy = json_object_object_get(out, "policy");

        for (size_t i = 0; i < json_object_array_length(policy); i++) {
                json_object *e = json_object_array_get_idx(policy, i);

                if (strcmp(itest_get_string(e, "feature"), feature) != 0)
                        continue;
                *ret_granted = json_object_get_boolean(json_object_object_get(e, "granted"));
                return json_object_get_boolean(json_object_object_get(e, "offered"));
        }
        fail_msg("no %s in %s", feature, json_object_to_json_string(out));
        return false;
}

static void test_features_per_device(void **state) {
        Fixture *f = *state;
        ItestClient *c;
        json_object *r;
        uint64_t dev, plain;
        bool granted = false;

        assert_int_equal(itest_client_connect(&c, f->daemon.socket), 0);
        dev = attach(c, DEV);
        plain = attach(c, PLAIN);
        r = call(c, "org.iommud.Broker.GetFeatures", NULL, -EBADF, NULL);
        assert_string_equal(itest_get_string(itest_reply_params(r), "backend"), "sim");
        assert_true(feature_offered(itest_reply_params(r), "dirty-tracking", &granted));
        assert_true(granted);
        json_object_put(r);
        r = call(c, "org.iommud.Broker.GetFeatures", itest_params("deviceId", I(dev), NULL),
                 -EBADF, NULL);
        assert_true(feature_offered(itest_reply_params(r), "dirty-tracking", &granted));
        assert_string_equal(
                json_object_get_string(json_object_array_get_idx(json_object_object_get(
                        json_object_object_get(itest_reply_params(r), "device"), "capabilities"),
                        0)),
                "dirty-tracking");
        json_object_put(r);
        r = call(c, "org.iommud.Broker.GetFeatures", itest_params("deviceId", I(plain), NULL),
                 -EBADF, NULL);
        assert_false(feature_offered(itest_reply_params(r), "dirty-tracking", &granted));
        json_object_put(r);
        call_put(c, "org.iommud.Broker.GetFeatures", itest_params("deviceId", I(999), NULL),
                 -EBADF, "org.iommud.Broker.NoSuchObject");
        itest_client_free(c);
}

static void test_dirty_pages_of_device_writes(void **state) {
        Fixture *f = *state;
        ItestClient *c, *sim;
        int memfd = itest_memfd(MEM_BYTES), bitmap;
        uint64_t dev, plain, ioas, plain_ioas, bits = 0;
        json_object *r;

        assert_int_equal(itest_client_connect(&c, f->daemon.socket), 0);
        assert_int_equal(itest_client_connect(&sim, f->daemon.socket), 0);
        dev = attach(c, DEV);
        plain = attach(c, PLAIN);
        ioas = call_u64(c, "org.iommud.Broker.CreateAddressSpace",
                        itest_params("dirtyTracking", B(true), NULL), "ioasId");
        call_put(c, "org.iommud.Broker.AttachToAddressSpace",
                 itest_params("deviceId", I(dev), "ioasId", I(ioas), NULL), -EBADF, NULL);
        /* The device whose IOMMU cannot track is refused, by name. */
        r = call(c, "org.iommud.Broker.AttachToAddressSpace",
                 itest_params("deviceId", I(plain), "ioasId", I(ioas), NULL), -EBADF,
                 "org.iommud.Broker.NotSupported");
        assert_string_equal(itest_get_string(itest_reply_params(r), "feature"), "dirty-tracking");
        assert_string_equal(itest_get_string(itest_reply_params(r), "device"), PLAIN);
        json_object_put(r);
        /* An address space without dirty tracking has no bitmap. */
        plain_ioas = call_u64(c, "org.iommud.Broker.CreateAddressSpace", NULL, "ioasId");
        call_put(c, "org.iommud.Broker.SetDirtyTracking",
                 itest_params("ioasId", I(plain_ioas), "enabled", B(true), NULL), -EBADF,
                 "org.iommud.Broker.NotSupported");

        call_put(c, "org.iommud.Broker.Map",
                 itest_params("ioasId", I(ioas), "memoryFd", I(0), "offset", I(0), "length",
                              I(MEM_BYTES), "iova", I(IOVA), "readable", B(true), "writeable",
                              B(true), NULL),
                 memfd, NULL);
        /* Off: no bitmap. */
        bitmap = itest_memfd(PAGE);
        call_put(c, "org.iommud.Broker.ReadDirtyBitmap",
                 itest_params("ioasId", I(ioas), "iova", I(IOVA), "length", I(16 * PAGE),
                              "pageSize", I(PAGE), "clear", B(true), "bitmapFd", I(0), NULL),
                 bitmap, "org.varlink.service.InvalidParameter");
        call_put(c, "org.iommud.Broker.SetDirtyTracking",
                 itest_params("ioasId", I(ioas), "enabled", B(true), NULL), -EBADF, NULL);
        /* A bitmap memfd too small, and a page size that is no power of two. */
        close(bitmap);
        bitmap = itest_memfd(4);
        call_put(c, "org.iommud.Broker.ReadDirtyBitmap",
                 itest_params("ioasId", I(ioas), "iova", I(IOVA), "length", I(16 * PAGE),
                              "pageSize", I(PAGE), "clear", B(true), "bitmapFd", I(0), NULL),
                 bitmap, "org.iommud.Broker.InvalidFd");
        call_put(c, "org.iommud.Broker.ReadDirtyBitmap",
                 itest_params("ioasId", I(ioas), "iova", I(IOVA), "length", I(16 * PAGE),
                              "pageSize", I(3 * PAGE), "clear", B(true), "bitmapFd", I(0), NULL),
                 bitmap, "org.varlink.service.InvalidParameter");
        close(bitmap);

        assert_int_equal(read_bits(c, ioas, true), 0);
        dma_write(sim, IOVA + PAGE + 16, 8);
        dma_write(sim, IOVA + 5 * PAGE - 2, 4); /* pages 4 and 5 */
        assert_int_equal(read_bits(c, ioas, false), 0x32);
        assert_int_equal(read_bits(c, ioas, true), 0x32);
        assert_int_equal(read_bits(c, ioas, true), 0);

        /* Unmap returns the bits of what it unmaps. */
        dma_write(sim, IOVA + 9 * PAGE, 1);
        bitmap = itest_memfd(PAGE);
        r = call(c, "org.iommud.Broker.Unmap",
                 itest_params("ioasId", I(ioas), "iova", I(IOVA), "length", I(MEM_BYTES),
                              "dirtyBitmapFd", I(0), "pageSize", I(PAGE), NULL),
                 bitmap, NULL);
        assert_int_equal(itest_get_u64(itest_reply_params(r), "unmapped"), MEM_BYTES);
        json_object_put(r);
        assert_int_equal(pread(bitmap, &bits, sizeof(bits), 0), (ssize_t)sizeof(bits));
        assert_int_equal(bits, UINT64_C(1) << 9);
        close(bitmap);
        itest_client_free(sim);
        itest_client_free(c);
        close(memfd);
}

/* A grant with "dirty-tracking": false: refused at CreateAddressSpace, and GetFeatures says so. */
static void test_policy_refuses_dirty_tracking(void **state) {
        Fixture *f = *state;
        _cleanup_free_ char *policy =
                itest_policy_for_self("\"open-on-behalf\": true, \"dirty-tracking\": false");
        ItestDaemon d = {};
        ItestClient *c;
        json_object *r;
        bool granted = true;

        assert_non_null(policy);
        assert_int_equal(itest_daemon_start(&d, f->topology_path, policy), 0);
        assert_int_equal(itest_client_connect(&c, d.socket), 0);
        r = call(c, "org.iommud.Broker.CreateAddressSpace",
                 itest_params("dirtyTracking", B(true), NULL), -EBADF,
                 "org.iommud.Broker.PolicyDenied");
        assert_string_equal(itest_get_string(itest_reply_params(r), "step"), "dirty-tracking");
        json_object_put(r);
        r = call(c, "org.iommud.Broker.GetFeatures", NULL, -EBADF, NULL);
        assert_true(feature_offered(itest_reply_params(r), "dirty-tracking", &granted));
        assert_false(granted);
        json_object_put(r);
        /* Without dirty tracking the address space is still there to have. */
        call_put(c, "org.iommud.Broker.CreateAddressSpace",
                 itest_params("dirtyTracking", B(false), NULL), -EBADF, NULL);
        itest_client_free(c);
        assert_int_equal(itest_daemon_stop(&d), 0);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_features_per_device),
                cmocka_unit_test(test_dirty_pages_of_device_writes),
                cmocka_unit_test(test_policy_refuses_dirty_tracking),
        };

        return cmocka_run_group_tests_name("dirty", tests, group_setup, group_teardown);
}
