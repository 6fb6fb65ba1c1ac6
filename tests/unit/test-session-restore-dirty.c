/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Restart survival of dirty tracking where the restarted daemon adopts the stored iommufd:
 * the record names the dirty-tracking page tables, each is taken over when the context still
 * has it and dropped with a sentence when not, and taking one over loses none of the bits
 * devices wrote before the restart.  The adopted context is built here as the kernel's
 * would be, on the simulated backend, with the restore's id preparation off.
 */

#include <errno.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "backend-sim.h"
#include "session-state.h"
#include "session.h"
#include "sim-host.h"

#define DEV "0000:01:00.0" /* behind dmar0 of the workstation, which tracks dirty pages */
#define PAGE 4096
#define IOVA 0x100000

static const char policy_text[] =
        "{ \"rules\": { \"all\": { \"action\": \"allow\", \"match\": \"*\" } },\n"
        "  \"grants\": { \"vm\": { \"principals\": [ { \"user\": 1000 } ], \"devices\": \"*\" } } }\n";

typedef struct Env {
        char root[64];
        SessionHost host;
        char dropped[1024];
} Env;

static void on_drop(Session *s, const char *what, void *userdata) {
        Env *e = userdata;

        (void)s;
        snprintf(e->dropped + strlen(e->dropped), sizeof(e->dropped) - strlen(e->dropped),
                 "%s\n", what);
}

/*
 * What the stored iommufd holds: DEV (its file fd, which the fd store keeps open too) attached
 * through a dirty-tracking table, tracking on.
 */
static void build_context(Env *e, BackendContext *ctx, int memfd, int fd, uint32_t *dev,
                          uint32_t *ioas, uint32_t *hwpt) {
        const BackendOps *ops = e->host.backend->ops;
        uint64_t iova = IOVA;

        assert_int_equal(ops->device_bind(ctx, fd, dev, NULL), 0);
        assert_int_equal(ops->ioas_alloc(ctx, ioas, NULL), 0);
        HwptAllocArgs a = { .flags = BACKEND_HWPT_DIRTY_TRACKING, .dev_id = *dev,
                            .pt_id = *ioas };
        assert_int_equal(ops->hwpt_alloc(ctx, &a, hwpt, NULL), 0);
        assert_int_equal(ops->device_attach(ctx, *dev, BACKEND_NO_PASID, hwpt, NULL), 0);
        assert_int_equal(ops->ioas_map_file(ctx, *ioas,
                                            BACKEND_MAP_FIXED_IOVA | BACKEND_MAP_READABLE |
                                                    BACKEND_MAP_WRITEABLE,
                                            memfd, 0, 16 * PAGE, &iova, NULL),
                         0);
        assert_int_equal(ops->hwpt_set_dirty_tracking(ctx, *hwpt, true, NULL), 0);
}

static json_object *record(uint32_t dev, uint32_t ioas, uint32_t hwpt) {
        char text[1024];

        snprintf(text, sizeof(text),
                 "{ \"devices\": [ { \"id\": %" PRIu32 ", \"name\": \"" DEV "\", \"ioasId\": "
                 "%" PRIu32 ", \"hwptId\": %" PRIu32 " } ],\n"
                 "  \"addressSpaces\": [ { \"id\": %" PRIu32 ", \"areas\": [ [ %d, %d, 6 ] ],"
                 " \"allowed\": [], \"dirtyTracking\": { \"enabled\": true, \"hwpts\": [\n"
                 "    { \"id\": %" PRIu32 ", \"iommu\": \"dmar0\" },\n"
                 "    { \"id\": 999, \"iommu\": \"dmar1\" } ] } } ] }",
                 dev, ioas, hwpt, ioas, IOVA, 16 * PAGE, hwpt);
        return json_tokener_parse(text);
}

static uint64_t read_bits(Session *s, uint32_t ioas) {
        int fd = memfd_create("bitmap", MFD_CLOEXEC);
        SessionDirtyArgs a = { .ioas_id = ioas, .iova = IOVA, .length = 16 * PAGE,
                               .page_size = PAGE, .clear = true, .bitmap_fd = fd };
        BrokerError err = BROKER_ERROR_INIT;
        uint64_t bits = UINT64_MAX;

        assert_true(fd >= 0);
        assert_int_equal(ftruncate(fd, PAGE), 0);
        if (session_read_dirty_bitmap(s, &a, &err) < 0)
                fail_msg("ReadDirtyBitmap: %s", err.error.message);
        assert_int_equal(pread(fd, &bits, sizeof(bits), 0), (ssize_t)sizeof(bits));
        close(fd);
        return bits;
}

static void test_adopted_dirty_tracking(void **state) {
        Env e = {};
        SessionRestoreConfig rc = { .on_drop = on_drop, .userdata = &e };
        BackendContext *ctx = NULL;
        PeerCreds *creds = NULL;
        Session *s = NULL;
        uint32_t dev, ioas, hwpt, pt;
        uint8_t byte = 0x5a;
        json_object *j, *tables;
        int memfd = memfd_create("guest", MFD_CLOEXEC), devfd;

        (void)state;
        assert_true(memfd >= 0);
        assert_int_equal(ftruncate(memfd, 16 * PAGE), 0);
        sim_host_setup(&e.host, e.root, sizeof(e.root), "workstation", policy_text);
        assert_int_equal(e.host.backend->ops->context_new(e.host.backend, &ctx, NULL), 0);
        devfd = sim_host_open_device(&e.host, e.root, DEV);
        build_context(&e, ctx, memfd, devfd, &dev, &ioas, &hwpt);
        /* The device wrote page 3 before the restart. */
        assert_int_equal(backend_sim_dma(e.host.backend, DEV, BACKEND_NO_PASID, IOVA + 3 * PAGE,
                                         &byte, 1, true, NULL, NULL),
                         0);

        j = record(dev, ioas, hwpt);
        assert_non_null(j);
        assert_int_equal(peer_creds_new(&creds, "/nonexistent", 0, 1000, 1000, NULL), 0);
        assert_int_equal(session_restore(&s, &e.host, creds, ctx, j, &rc), 0);
        json_object_put(j);
        /* The table the context lacks is dropped by name; the one it has is kept. */
        assert_non_null(strstr(e.dropped, "dirty-tracking page table 999 of address space"));
        assert_null(strstr(e.dropped, "device"));

        /* And the next record names the table again, for the restart after this one. */
        assert_int_equal(session_to_json(s, &j), 0);
        tables = json_object_object_get(
                json_object_object_get(
                        json_object_array_get_idx(json_object_object_get(j, "addressSpaces"), 0),
                        "dirtyTracking"),
                "hwpts");
        assert_int_equal(json_object_array_length(tables), 1);
        assert_int_equal(json_object_get_int64(json_object_object_get(
                                 json_object_array_get_idx(tables, 0), "id")),
                         hwpt);
        json_object_put(j);

        /* Taking the table over cleared nothing: the write before the restart is there. */
        assert_int_equal(read_bits(s, ioas), UINT64_C(1) << 3);
        assert_int_equal(read_bits(s, ioas), 0);
        assert_int_equal(session_attach_to_address_space(s, dev, ioas, &pt, NULL), 0);
        assert_int_equal(pt, hwpt);
        assert_int_equal(session_set_dirty_tracking(s, ioas, false, NULL), 0);
        assert_int_equal(session_set_dirty_tracking(s, ioas, true, NULL), 0);
        assert_int_equal(backend_sim_dma(e.host.backend, DEV, BACKEND_NO_PASID, IOVA, &byte, 1,
                                         true, NULL, NULL),
                         0);
        assert_int_equal(read_bits(s, ioas), 1);

        session_free(s);
        close(devfd);
        close(memfd);
        sim_host_teardown(&e.host, e.root);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_adopted_dirty_tracking),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
