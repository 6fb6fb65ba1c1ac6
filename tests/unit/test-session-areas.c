/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * The session's record of an address space's mappings, on the simulated backend: unmaps in
 * the order of the maps (the lowest area first), ranges that take several areas from the
 * middle, and maps that find the record full, all leave exactly the areas a plain list
 * would, as every later unmap and copy sees them.
 */

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "policy.h"
#include "session.h"
#include "sim-host.h"

#define PAGE 4096
#define BASE 0x100000
#define SLOTS 512

typedef struct Env {
        char root[64];
        SessionHost host;
        Session *s;
        uint32_t ioas;
        int fd;
        bool mapped[SLOTS]; /* the model: which page at BASE + i * PAGE is mapped */
        size_t n_mapped;
} Env;

static const char policy_text[] =
        "{ \"rules\": { \"all\": { \"action\": \"allow\", \"match\": \"*\" } },\n"
        "  \"grants\": { \"vm\": { \"principals\": [ { \"user\": 1000 } ], \"devices\": \"*\",\n"
        "    \"quotas\": { \"pinned-memory\": \"64M\", \"mappings\": 4096 } } } }\n";

static int setup(void **state) {
        Env *e = calloc(1, sizeof(*e));

        assert_non_null(e);
        sim_host_setup(&e->host, e->root, sizeof(e->root), "server", policy_text);
        e->s = sim_host_session(&e->host, 1000, 0);
        assert_int_equal(session_create_address_space(e->s, &e->ioas, NULL), 0);
        e->fd = memfd_create("t", MFD_CLOEXEC);
        assert_true(e->fd >= 0);
        assert_int_equal(ftruncate(e->fd, PAGE), 0);
        *state = e;
        return 0;
}

static int teardown(void **state) {
        Env *e = *state;

        close(e->fd);
        session_free(e->s);
        session_host_done(&e->host);
        sim_host_teardown(&e->host, e->root);
        free(e);
        return 0;
}

static uint64_t slot_iova(size_t i) {
        return BASE + (uint64_t)i * PAGE;
}

static void map_slot(Env *e, size_t i) {
        SessionMapArgs a = { .ioas_id = e->ioas, .fd = e->fd, .length = PAGE, .iova = slot_iova(i),
                             .readable = true, .writeable = true, .fixed_iova = true };
        uint64_t iova = 0;

        assert_false(e->mapped[i]);
        assert_int_equal(session_map(e->s, &a, &iova, NULL), 0);
        assert_int_equal(iova, slot_iova(i));
        e->mapped[i] = true;
        e->n_mapped++;
}

/* Unmaps slots [first, end), which must hold at least one area. */
static void unmap_slots(Env *e, size_t first, size_t end) {
        uint64_t unmapped = 0, want = 0;

        for (size_t i = first; i < end; i++)
                if (e->mapped[i]) {
                        want += PAGE;
                        e->mapped[i] = false;
                        e->n_mapped--;
                }
        assert_int_equal(session_unmap(e->s, e->ioas, slot_iova(first), (end - first) * PAGE,
                                       &unmapped, NULL),
                         0);
        assert_int_equal(unmapped, want);
}

/* The record and the model agree: a copy of each mapped page works, of any other fails. */
static void check_record(Env *e) {
        SessionInfo info;

        session_get_info(e->s, &info);
        assert_int_equal(info.usage.mappings, e->n_mapped);
        assert_int_equal(info.usage.pinned_bytes, e->n_mapped * PAGE);
        for (size_t i = 0; i < SLOTS; i++) {
                SessionCopyArgs c = { .src_ioas_id = e->ioas, .dst_ioas_id = e->ioas,
                                      .src_iova = slot_iova(i), .length = PAGE };
                uint64_t iova = 0, unmapped = 0;
                int r = session_copy(e->s, &c, &iova, NULL);

                if (!e->mapped[i]) {
                        assert_int_equal(r, -ERANGE);
                        continue;
                }
                assert_int_equal(r, 0);
                assert_true(iova < BASE); /* the lowest free IOVA: below every slot */
                assert_int_equal(session_unmap(e->s, e->ioas, iova, PAGE, &unmapped, NULL), 0);
                assert_int_equal(unmapped, PAGE);
        }
}

/* A queue of mappings: the lowest leaves, a new one comes on top, many times over. */
static void test_unmap_in_map_order(void **state) {
        Env *e = *state;
        uint64_t unmapped = 0;
        size_t lo = 0, hi = 0;

        for (; hi < 48; hi++)
                map_slot(e, hi);
        while (hi < SLOTS) {
                unmap_slots(e, lo, lo + 1);
                lo++;
                map_slot(e, hi++);
                /* Now and then two at once from the bottom, and one area from the top. */
                if (hi % 37 == 0) {
                        unmap_slots(e, lo, lo + 2);
                        lo += 2;
                        unmap_slots(e, hi - 1, hi);
                        map_slot(e, hi - 1);
                }
        }
        check_record(e);
        /* Nothing below the queue is left: unmapping there finds nothing. */
        assert_int_equal(session_unmap(e->s, e->ioas, BASE, (lo - 1) * PAGE, &unmapped, NULL),
                         -ERANGE);
}

/* Ranges out of the lower and the upper part, and a range that cuts one area. */
static void test_unmap_ranges(void **state) {
        Env *e = *state;
        uint64_t unmapped = 0;

        for (size_t i = 0; i < 128; i++)
                if (i % 5 != 3)
                        map_slot(e, i);
        unmap_slots(e, 10, 20);   /* below the middle: the lower areas move */
        unmap_slots(e, 100, 110); /* above it: the upper areas move */
        unmap_slots(e, 0, 4);
        check_record(e);
        /* Half of slot 21 and half of slot 22: cuts both, refused, nothing changes. */
        assert_int_equal(session_unmap(e->s, e->ioas, slot_iova(21) + PAGE / 2, PAGE, &unmapped,
                                       NULL),
                         -ERANGE);
        /* Maps below the lowest area again, after the record moved its areas up. */
        for (size_t i = 0; i < 4; i++)
                map_slot(e, i);
        for (size_t i = 200; i < 260; i++)
                map_slot(e, i);
        check_record(e);
        unmap_slots(e, 0, SLOTS);
        check_record(e);
}

/* Replaces the host's policy with one whose grant to uid 1000 has the window [start, last]. */
static void load_window(Env *e, const char *start, const char *last) {
        Policy *old = e->host.policy;
        char text[512];

        snprintf(text, sizeof(text),
                 "{ \"rules\": { \"all\": { \"action\": \"allow\", \"match\": \"*\" } },\n"
                 "  \"grants\": { \"vm\": { \"principals\": [ { \"user\": 1000 } ],\n"
                 "    \"devices\": \"*\", \"iova-windows\": [ { \"start\": \"%s\",\n"
                 "    \"last\": \"%s\" } ] } } }\n",
                 start, last);
        assert_int_equal(policy_load_string(&e->host.policy, "windows.json", text, strlen(text),
                                            NULL, NULL),
                         0);
        policy_free(old);
}

static int map_at(Env *e, uint64_t iova) {
        SessionMapArgs a = { .ioas_id = e->ioas, .fd = e->fd, .length = PAGE, .iova = iova,
                             .readable = true, .fixed_iova = true };
        uint64_t got = 0;

        return session_map(e->s, &a, &got, NULL);
}

/* The windows of an address space without devices follow each policy the host loads. */
static void test_windows_follow_the_policy(void **state) {
        Env *e = *state;

        load_window(e, "0x100000", "0x1fffff");
        assert_int_equal(map_at(e, 0x100000), 0);
        assert_int_equal(map_at(e, 0x300000), -ERANGE);
        load_window(e, "0x300000", "0x3fffff");
        assert_int_equal(map_at(e, 0x300000), 0);
        assert_int_equal(map_at(e, 0x101000), -ERANGE);
        load_window(e, "0x100000", "0x1fffff");
        assert_int_equal(map_at(e, 0x101000), 0);
        assert_int_equal(map_at(e, 0x301000), -ERANGE);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_unmap_in_map_order, setup, teardown),
                cmocka_unit_test_setup_teardown(test_unmap_ranges, setup, teardown),
                cmocka_unit_test_setup_teardown(test_windows_follow_the_policy, setup, teardown),
        };

        return cmocka_run_group_tests_name("session-areas", tests, NULL, NULL);
}
