/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Dirty tracking survives a restart of the real iommud binary on a simulated host: a VMM in
 * pre-copy whose daemon restarts (fd store, JoinSession) still reads the dirty pages of its
 * address space, whose devices stay attached through the same dirty-tracking page table, and
 * tracking that was turned off stays off.
 */

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "base64.h"
#include "fdstore-harness.h"
#include "itest.h"
#include "macros.h"

#define PAGE 4096
#define DEV "0000:01:00.0" /* behind dmar0 of the workstation, which tracks dirty pages */
#define IOVA 0x100000

static json_object *I(uint64_t v) {
        return json_object_new_int64((int64_t)v);
}

/* A write of one page by DEV at iova, as the device's DMA. */
static void dma_write(Harness *h, uint64_t iova) {
        _cleanup_free_ char *coded = NULL, *data = calloc(1, PAGE);

        assert_non_null(data);
        assert_int_equal(base64_encode(data, PAGE, &coded), 0);
        simulator(h, "org.iommud.Simulator.InjectDMA",
                  itest_params("device", json_object_new_string(DEV), "iova", I(iova), "write",
                               json_object_new_boolean(true), "data",
                               json_object_new_string(coded), NULL));
}

/* ReadDirtyBitmap of [IOVA, IOVA + 16 pages): the first 64 bits, or the error's name. */
static const char *read_bits(ItestClient *c, uint64_t ioas, uint64_t *ret_bits) {
        static char name[128];
        int fd = itest_memfd(PAGE);
        json_object *r = itest_call(c, "org.iommud.Broker.ReadDirtyBitmap",
                                    itest_params("ioasId", I(ioas), "iova", I(IOVA), "length",
                                                 I(16 * PAGE), "pageSize", I(PAGE), "clear",
                                                 json_object_new_boolean(true), "bitmapFd",
                                                 I(0), NULL),
                                    &fd, 1);

        assert_non_null(r);
        *ret_bits = UINT64_MAX;
        snprintf(name, sizeof(name), "%s", itest_reply_error(r) ?: "");
        if (!itest_reply_error(r))
                assert_int_equal(pread(fd, ret_bits, sizeof(*ret_bits), 0),
                                 (ssize_t)sizeof(*ret_bits));
        json_object_put(r);
        close(fd);
        return name;
}

static void set_tracking(ItestClient *c, uint64_t ioas, bool on) {
        json_object_put(ok_call(c, "org.iommud.Broker.SetDirtyTracking",
                                itest_params("ioasId", I(ioas), "enabled",
                                             json_object_new_boolean(on), NULL),
                                NULL, 0));
}

static uint64_t attach_to(ItestClient *c, uint64_t dev, uint64_t ioas) {
        return call_u64(c, "org.iommud.Broker.AttachToAddressSpace",
                        itest_params("deviceId", I(dev), "ioasId", I(ioas), NULL), "hwptId",
                        NULL, 0);
}

/* Kills the daemon, starts it again from the store and joins the session of token. */
static ItestClient *restart(Harness *h, ItestClient *c, const char *token) {
        harness_kill(h);
        itest_client_free(c);
        assert_int_equal(harness_launch(h), 0);
        c = connect_client(h);
        join(c, token);
        return c;
}

static void test_restart_keeps_dirty_tracking(void **state) {
        int memfd = itest_memfd(16 * PAGE);
        uint64_t dev, ioas, hwpt, bits;
        char token[64];
        ItestClient *c;
        Harness h;

        (void)state;
        harness_start(&h, "\"open-on-behalf\": true");
        c = connect_client(&h);
        dev = attach_by_name(c, DEV);
        ioas = call_u64(c, "org.iommud.Broker.CreateAddressSpace",
                        itest_params("dirtyTracking", json_object_new_boolean(true), NULL),
                        "ioasId", NULL, 0);
        hwpt = attach_to(c, dev, ioas);
        assert_int_equal(map_fixed(c, ioas, memfd, IOVA, 16 * PAGE), IOVA);
        set_tracking(c, ioas, true);
        dma_write(&h, IOVA + 2 * PAGE);
        assert_string_equal(read_bits(c, ioas, &bits), "");
        assert_int_equal(bits, UINT64_C(1) << 2);
        assert_int_equal(usage_of(c, "mappings", token, sizeof(token)), 1);

        c = restart(&h, c, token);
        /* Still tracking, through the same page table: a write after the restart shows. */
        assert_string_equal(read_bits(c, ioas, &bits), "");
        dma_write(&h, IOVA + 5 * PAGE);
        assert_string_equal(read_bits(c, ioas, &bits), "");
        assert_int_equal(bits & (UINT64_C(1) << 5), UINT64_C(1) << 5);
        assert_int_equal(attach_to(c, dev, ioas), hwpt);

        /* Turned off, it stays off across the next restart, and can be turned on again. */
        set_tracking(c, ioas, false);
        c = restart(&h, c, token);
        assert_string_equal(read_bits(c, ioas, &bits), "org.varlink.service.InvalidParameter");
        set_tracking(c, ioas, true);
        dma_write(&h, IOVA + 7 * PAGE);
        assert_string_equal(read_bits(c, ioas, &bits), "");
        assert_int_equal(bits, UINT64_C(1) << 7);
        assert_int_equal(attach_to(c, dev, ioas), hwpt);

        itest_client_free(c);
        close(memfd);
        harness_stop(&h);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_restart_keeps_dirty_tracking),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
