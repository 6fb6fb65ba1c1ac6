/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * MapBatch and UnmapBatch against a real daemon on a simulated host: a batch maps all its
 * areas or none (a failing area undoes the ones before it, in the backend too), the quota
 * is checked once for the total before anything is mapped, and an error names the area.
 */

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "itest.h"

#define MIB (UINT64_C(1) << 20)
#define PAGE UINT64_C(4096)
#define BASE UINT64_C(0x40000000)
#define BATCH 64
#define BATCH_MAX 4096

typedef struct Fixture {
        ItestDaemon daemon;
        ItestClient *c;
        uint64_t ioas;
        int mem;
} Fixture;

static const char grant_extras[] =
        "\"quotas\": { \"pinned-memory\": \"64M\", \"mappings\": 128 }";

#define assert_ok(reply)                                                                           \
        do {                                                                                       \
                const char *_e = itest_reply_error(reply);                                         \
                if (_e)                                                                            \
                        fail_msg("unexpected error %s: %s", _e,                                    \
                                 json_object_to_json_string(reply));                               \
        } while (0)

#define assert_error(reply, name)                                                                  \
        do {                                                                                       \
                const char *_e = itest_reply_error(reply);                                         \
                if (!_e || strcmp(_e, (name)) != 0)                                                \
                        fail_msg("expected %s, got %s", (name),                                    \
                                 json_object_to_json_string(reply));                               \
        } while (0)

static json_object *I(uint64_t v) {
        return v > INT64_MAX ? json_object_new_uint64(v) : json_object_new_int64((int64_t)v);
}

static json_object *call(Fixture *f, const char *method, json_object *params, const int *fds,
                         size_t n_fds) {
        json_object *r = itest_call(f->c, method, params, fds, n_fds);

        if (!r)
                fail_msg("no reply to %s", method);
        return r;
}

/* The test policy with messages of up to 1 MiB, room for a batch of 4097 areas. */
static char *policy_for_batches(void) {
        char *base = itest_policy_for_self(grant_extras), *at, *policy = NULL;

        assert_non_null(base);
        at = strstr(base, "\"max-message-size\": \"64K\"");
        assert_non_null(at);
        assert_true(asprintf(&policy, "%.*s\"max-message-size\": \"1M\"%s", (int)(at - base),
                             base, at + strlen("\"max-message-size\": \"64K\"")) > 0);
        free(base);
        return policy;
}

static int setup(void **state) {
        Fixture *f = calloc(1, sizeof(*f));
        char *policy = policy_for_batches();
        json_object *r;

        assert_non_null(f);
        assert_int_equal(itest_daemon_start(&f->daemon, "server", policy), 0);
        free(policy);
        assert_int_equal(itest_client_connect(&f->c, f->daemon.socket), 0);
        r = call(f, "org.iommud.Broker.CreateAddressSpace", NULL, NULL, 0);
        assert_ok(r);
        f->ioas = itest_get_u64(itest_reply_params(r), "ioasId");
        json_object_put(r);
        f->mem = itest_memfd(64 * MIB);
        assert_true(f->mem >= 0);
        *state = f;
        return 0;
}

static int teardown(void **state) {
        Fixture *f = *state;

        close(f->mem);
        itest_client_free(f->c);
        /* A clean exit status also means no sanitizer report and no leak. */
        assert_int_equal(itest_daemon_stop(&f->daemon), 0);
        free(f);
        return 0;
}

static json_object *area(uint64_t fd_index, uint64_t offset, uint64_t length, uint64_t iova) {
        json_object *a = itest_params("memoryFd", I(fd_index), "offset", I(offset), "length",
                                      I(length), "iova", I(iova), "readable",
                                      json_object_new_boolean(true), "writeable",
                                      json_object_new_boolean(true), NULL);

        assert_non_null(a);
        return a;
}

/* n areas of one page each, page i of the memfd at BASE + i pages. */
static json_object *pages(size_t n) {
        json_object *areas = json_object_new_array();

        assert_non_null(areas);
        for (size_t i = 0; i < n; i++)
                json_object_array_add(areas, area(0, i * PAGE, PAGE, BASE + i * PAGE));
        return areas;
}

static json_object *map_batch(Fixture *f, json_object *areas) {
        return call(f, "org.iommud.Broker.MapBatch",
                    itest_params("ioasId", I(f->ioas), "areas", areas, NULL), &f->mem, 1);
}

/* This session's use of resource, as GetSession reports it. */
static uint64_t used(Fixture *f, const char *resource) {
        json_object *r = call(f, "org.iommud.Broker.GetSession", NULL, NULL, 0), *usage;
        uint64_t v = UINT64_MAX;

        assert_ok(r);
        assert_true(json_object_object_get_ex(itest_reply_params(r), "usage", &usage));
        for (size_t i = 0; i < json_object_array_length(usage); i++) {
                json_object *u = json_object_array_get_idx(usage, i);

                if (strcmp(itest_get_string(u, "resource"), resource) == 0)
                        v = itest_get_u64(u, "used");
        }
        json_object_put(r);
        if (v == UINT64_MAX)
                fail_msg("GetSession reports no usage of %s", resource);
        return v;
}

static void assert_nothing_mapped(Fixture *f) {
        assert_int_equal(used(f, "mappings"), 0);
        assert_int_equal(used(f, "pinnedBytes"), 0);
}

static void test_batch_of_64(void **state) {
        Fixture *f = *state;
        json_object *r = map_batch(f, pages(BATCH)), *iovas, *ranges;

        assert_ok(r);
        assert_true(json_object_object_get_ex(itest_reply_params(r), "iovas", &iovas));
        assert_int_equal(json_object_array_length(iovas), BATCH);
        for (size_t i = 0; i < BATCH; i++)
                assert_int_equal(json_object_get_uint64(json_object_array_get_idx(iovas, i)),
                                 BASE + i * PAGE);
        json_object_put(r);
        assert_int_equal(used(f, "mappings"), BATCH);
        assert_int_equal(used(f, "pinnedBytes"), BATCH * PAGE);

        /* Every area is a mapping of its own: Unmap removes one and leaves the others. */
        r = call(f, "org.iommud.Broker.Unmap",
                 itest_params("ioasId", I(f->ioas), "iova", I(BASE + 5 * PAGE), "length", I(PAGE),
                              NULL),
                 NULL, 0);
        assert_ok(r);
        assert_int_equal(itest_get_u64(itest_reply_params(r), "unmapped"), PAGE);
        json_object_put(r);

        /* UnmapBatch: one range over pages 0-4, one over 6-63. */
        ranges = json_object_new_array();
        json_object_array_add(ranges, itest_params("start", I(BASE), "last",
                                                   I(BASE + 5 * PAGE - 1), NULL));
        json_object_array_add(ranges, itest_params("start", I(BASE + 6 * PAGE), "last",
                                                   I(BASE + BATCH * PAGE - 1), NULL));
        r = call(f, "org.iommud.Broker.UnmapBatch",
                 itest_params("ioasId", I(f->ioas), "ranges", ranges, NULL), NULL, 0);
        assert_ok(r);
        assert_int_equal(itest_get_u64(itest_reply_params(r), "unmapped"), (BATCH - 1) * PAGE);
        json_object_put(r);
        assert_nothing_mapped(f);
}

/*
 * The 10th area fails in the backend, after the nine before it were mapped there: they are
 * undone, and the same batch without the conflict then maps at the very same IOVAs.
 */
static void test_failing_10th_area(void **state) {
        Fixture *f = *state;
        json_object *r, *areas;

        /* Refused by the checks: past the end of the memfd. */
        areas = pages(BATCH);
        json_object_array_put_idx(areas, 9, area(0, 64 * MIB, PAGE, BASE + 9 * PAGE));
        r = map_batch(f, areas);
        assert_error(r, "org.iommud.Broker.InvalidRange");
        assert_int_equal(itest_get_u64(itest_reply_params(r), "area"), 9);
        json_object_put(r);
        assert_nothing_mapped(f);

        /* Refused by the backend: a mapping already sits where area 9 goes. */
        r = call(f, "org.iommud.Broker.Map",
                 itest_params("ioasId", I(f->ioas), "memoryFd", I(0), "offset", I(0), "length",
                              I(PAGE), "iova", I(BASE + 9 * PAGE), "readable",
                              json_object_new_boolean(true), "writeable",
                              json_object_new_boolean(false), NULL),
                 &f->mem, 1);
        assert_ok(r);
        json_object_put(r);
        r = map_batch(f, pages(BATCH));
        assert_error(r, "org.iommud.Broker.IOVAInUse");
        assert_int_equal(itest_get_u64(itest_reply_params(r), "area"), 9);
        json_object_put(r);
        assert_int_equal(used(f, "mappings"), 1);
        assert_int_equal(used(f, "pinnedBytes"), PAGE);

        r = call(f, "org.iommud.Broker.Unmap",
                 itest_params("ioasId", I(f->ioas), "iova", I(BASE + 9 * PAGE), "length", I(PAGE),
                              NULL),
                 NULL, 0);
        assert_ok(r);
        json_object_put(r);
        r = map_batch(f, pages(BATCH));
        assert_ok(r);
        json_object_put(r);
        assert_int_equal(used(f, "mappings"), BATCH);
}

/* Two areas of 48 MiB each fit the 64 MiB quota alone, not together: refused up front. */
static void test_quota_over_total(void **state) {
        Fixture *f = *state;
        json_object *areas = json_object_new_array(), *r;

        json_object_array_add(areas, area(0, 0, 48 * MIB, BASE));
        json_object_array_add(areas, area(0, 0, 48 * MIB, BASE + 48 * MIB));
        r = map_batch(f, areas);
        assert_error(r, "org.iommud.Broker.QuotaExceeded");
        assert_string_equal(itest_get_string(itest_reply_params(r), "resource"), "pinnedBytes");
        assert_int_equal(itest_get_u64(itest_reply_params(r), "limit"), 64 * MIB);
        assert_int_equal(itest_get_u64(itest_reply_params(r), "used"), 0);
        json_object_put(r);
        assert_nothing_mapped(f);

        /* 129 pages: over the mappings quota (128) as a whole, not page by page. */
        r = map_batch(f, pages(129));
        assert_error(r, "org.iommud.Broker.QuotaExceeded");
        assert_string_equal(itest_get_string(itest_reply_params(r), "resource"), "mappings");
        json_object_put(r);
        assert_nothing_mapped(f);
}

static void assert_invalid_parameter(json_object *r, const char *parameter) {
        assert_error(r, "org.varlink.service.InvalidParameter");
        assert_string_equal(itest_get_string(itest_reply_params(r), "parameter"), parameter);
        json_object_put(r);
}

static void test_refusals_name_the_area(void **state) {
        Fixture *f = *state;
        json_object *areas, *a, *ranges, *r;

        /* The cap is exact: 4096 areas are read, 4097 are not. */
        r = map_batch(f, pages(BATCH_MAX + 1));
        assert_invalid_parameter(r, "areas");
        r = map_batch(f, pages(BATCH_MAX));
        assert_error(r, "org.iommud.Broker.QuotaExceeded");
        json_object_put(r);

        areas = pages(3);
        json_object_array_put_idx(areas, 1, area(1, 0, PAGE, BASE + PAGE));
        assert_invalid_parameter(map_batch(f, areas), "areas[1].memoryFd");

        areas = pages(3);
        a = area(0, 2 * PAGE, PAGE, BASE + 2 * PAGE);
        json_object_object_add(a, "readable", json_object_new_boolean(false));
        json_object_object_add(a, "writeable", json_object_new_boolean(false));
        json_object_array_put_idx(areas, 2, a);
        assert_invalid_parameter(map_batch(f, areas), "areas[2].readable");
        assert_nothing_mapped(f);

        /*
         * The fd is checked once per batch, but again for its first writeable area: a
         * read-only fd serves the read-only area 0 and is refused for area 1.
         */
        {
                char path[64];
                int ro;

                snprintf(path, sizeof(path), "/proc/self/fd/%d", f->mem);
                ro = open(path, O_RDONLY | O_CLOEXEC);
                assert_true(ro >= 0);
                areas = pages(2);
                a = area(0, 0, PAGE, BASE);
                json_object_object_add(a, "writeable", json_object_new_boolean(false));
                json_object_array_put_idx(areas, 0, a);
                r = call(f, "org.iommud.Broker.MapBatch",
                         itest_params("ioasId", I(f->ioas), "areas", areas, NULL), &ro, 1);
                assert_error(r, "org.iommud.Broker.InvalidFd");
                assert_int_equal(itest_get_u64(itest_reply_params(r), "area"), 1);
                assert_int_equal(itest_get_u64(itest_reply_params(r), "index"), 0);
                json_object_put(r);
                close(ro);
        }

        /* UnmapBatch: the second range unmaps nothing, so the first stays mapped too. */
        r = map_batch(f, pages(2));
        assert_ok(r);
        json_object_put(r);
        ranges = json_object_new_array();
        json_object_array_add(ranges, itest_params("start", I(BASE), "last", I(BASE + PAGE - 1),
                                                   NULL));
        json_object_array_add(ranges, itest_params("start", I(BASE + 8 * PAGE), "last",
                                                   I(BASE + 9 * PAGE - 1), NULL));
        r = call(f, "org.iommud.Broker.UnmapBatch",
                 itest_params("ioasId", I(f->ioas), "ranges", ranges, NULL), NULL, 0);
        assert_error(r, "org.iommud.Broker.InvalidRange");
        assert_int_equal(itest_get_u64(itest_reply_params(r), "area"), 1);
        json_object_put(r);
        assert_int_equal(used(f, "mappings"), 2);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_batch_of_64, setup, teardown),
                cmocka_unit_test_setup_teardown(test_failing_10th_area, setup, teardown),
                cmocka_unit_test_setup_teardown(test_quota_over_total, setup, teardown),
                cmocka_unit_test_setup_teardown(test_refusals_name_the_area, setup, teardown),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
