/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Quotas per principal in the session core, on the simulated backend: every
 * session of a uid charges one row of the host's usage table, each charge is
 * checked against that row's total, a refused or failed call gives back what
 * it charged, a session's end gives back its share, and connections move with
 * JoinSession without being counted twice.
 */

#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "policy.h"
#include "session.h"
#include "sim-host.h"
#include "topology.h"

#define K 1024

typedef struct Env {
        char root[64];
        SessionHost host;
} Env;

/* uid 1000: 64K pinned, 2 address spaces, 4 mappings, 2 devices, 3 connections. */
static const char policy_text[] =
        "{ \"rules\": { \"all\": { \"action\": \"allow\", \"match\": \"*\" } },\n"
        "  \"grants\": { \"vm\": { \"principals\": [ { \"user\": 1000 } ], \"devices\": \"*\",\n"
        "    \"quotas\": { \"pinned-memory\": \"64K\", \"address-spaces\": 2, \"mappings\": 4,\n"
        "                  \"devices\": 2, \"connections\": 3 } },\n"
        "    \"other\": { \"principals\": [ { \"user\": 1001 } ], \"devices\": \"*\",\n"
        "    \"quotas\": { \"pinned-memory\": \"64K\", \"connections\": 3 } } } }\n";

static int setup(void **state) {
        Env *e = calloc(1, sizeof(*e));

        assert_non_null(e);
        sim_host_setup(&e->host, e->root, sizeof(e->root), "server", policy_text);
        *state = e;
        return 0;
}

static int teardown(void **state) {
        Env *e = *state;

        session_host_done(&e->host);
        /* Every row of the usage table went with the last session of its uid. */
        assert_null(e->host.principals);
        sim_host_teardown(&e->host, e->root);
        free(e);
        return 0;
}

static Session *new_session(Env *e, uid_t uid) {
        return sim_host_session(&e->host, uid, 0);
}

static int memfd(size_t size) {
        int fd = memfd_create("t", MFD_CLOEXEC);

        assert_true(fd >= 0);
        assert_int_equal(ftruncate(fd, (off_t)size), 0);
        return fd;
}

static PolicyQuotas principal(Env *e, uid_t uid) {
        PolicyQuotas q = {};

        (void)session_host_principal_usage(&e->host, uid, &q, NULL);
        return q;
}

static int map(Session *s, uint32_t ioas, int fd, uint64_t length, uint64_t iova,
               BrokerError *err) {
        SessionMapArgs a = { .ioas_id = ioas, .fd = fd, .length = length, .iova = iova,
                             .fixed_iova = true, .readable = true, .writeable = true };
        uint64_t got;

        return session_map(s, &a, &got, err);
}

/* Two sessions of one uid share its quotas; another uid has its own row. */
static void test_one_row_per_uid(void **state) {
        Env *e = *state;
        Session *a = new_session(e, 1000), *b = new_session(e, 1000), *o = new_session(e, 1001);
        BrokerError err = BROKER_ERROR_INIT;
        uint32_t ia, ib, io;
        unsigned n_sessions = 0;
        PolicyQuotas q;
        int fd = memfd(128 * K);

        assert_int_equal(session_host_principal_usage(&e->host, 1000, &q, &n_sessions), 0);
        assert_int_equal(n_sessions, 2);
        assert_int_equal(q.connections, 2);
        assert_int_equal(session_host_principal_usage(&e->host, 4242, &q, NULL), -ENOENT);

        assert_int_equal(session_create_address_space(a, &ia, NULL), 0);
        assert_int_equal(session_create_address_space(b, &ib, NULL), 0);
        assert_int_equal(session_create_address_space(o, &io, NULL), 0);
        assert_int_equal(map(a, ia, fd, 48 * K, 0x100000, NULL), 0);

        /* b has pinned nothing, but its uid has: 48K + 32K is over 64K. */
        assert_int_equal(map(b, ib, fd, 32 * K, 0x100000, &err), -EDQUOT);
        assert_string_equal(broker_error_get(&err, "resource")->str, "pinnedBytes");
        assert_int_equal(broker_error_get(&err, "used")->u64, 48 * K);
        assert_int_equal(broker_error_get(&err, "limit")->u64, 64 * K);
        assert_non_null(strstr(err.error.message, "uid 1000 (2 sessions)"));
        assert_int_equal(map(b, ib, fd, 16 * K, 0x100000, NULL), 0);
        /* The other uid is not touched by any of it. */
        assert_int_equal(map(o, io, fd, 64 * K, 0x100000, NULL), 0);

        q = principal(e, 1000);
        assert_int_equal(q.pinned_bytes, 64 * K);
        assert_int_equal(q.mappings, 2);
        assert_int_equal(q.address_spaces, 2);
        assert_int_equal(principal(e, 1001).pinned_bytes, 64 * K);

        /* Address spaces too: a and b hold the two the uid may have. */
        assert_int_equal(session_create_address_space(a, &ia, &err), -EDQUOT);
        assert_string_equal(broker_error_get(&err, "resource")->str, "addressSpaces");

        /* a ends: its share goes back to the uid, b's stays. */
        session_free(a);
        q = principal(e, 1000);
        assert_int_equal(q.pinned_bytes, 16 * K);
        assert_int_equal(q.address_spaces, 1);
        assert_int_equal(q.connections, 1);
        assert_int_equal(map(b, ib, fd, 48 * K, 0x200000, NULL), 0);
        close(fd);
        session_free(b);
        session_free(o);
}

/* What each session reports: its own share, its uid's total, the limit on the total. */
static void test_usage_rows(void **state) {
        Env *e = *state;
        Session *a = new_session(e, 1000), *b = new_session(e, 1000);
        SessionUsage rows[SESSION_USAGE_MAX];
        SessionInfo info;
        uint32_t ioas;
        size_t n;
        bool seen_pinned = false, seen_connections = false, seen_faults = false;
        int fd = memfd(16 * K);

        assert_int_equal(session_create_address_space(a, &ioas, NULL), 0);
        assert_int_equal(map(a, ioas, fd, 16 * K, 0x100000, NULL), 0);
        session_get_info(b, &info);
        n = session_usage_rows(&info, rows);
        assert_int_equal(n, SESSION_USAGE_MAX);
        for (size_t i = 0; i < n; i++) {
                if (strcmp(rows[i].resource, "pinnedBytes") == 0) {
                        assert_int_equal(rows[i].used, 0);
                        assert_int_equal(rows[i].principal_used, 16 * K);
                        assert_int_equal(rows[i].limit, 64 * K);
                        assert_true(rows[i].per_principal);
                        seen_pinned = true;
                } else if (strcmp(rows[i].resource, "connections") == 0) {
                        assert_int_equal(rows[i].used, 1);
                        assert_int_equal(rows[i].principal_used, 2);
                        assert_int_equal(rows[i].limit, 3);
                        seen_connections = true;
                } else if (strcmp(rows[i].resource, "faultQueueDepth") == 0) {
                        assert_false(rows[i].per_principal);
                        seen_faults = true;
                }
        }
        assert_true(seen_pinned && seen_connections && seen_faults);
        close(fd);
        session_free(a);
        session_free(b);
}

/* Refused and failed calls give back exactly what they charged. */
static void test_failures_refund(void **state) {
        Env *e = *state;
        Session *a = new_session(e, 1000), *b = new_session(e, 1000);
        BrokerError err = BROKER_ERROR_INIT;
        PolicyQuotas before, after;
        uint32_t ioas;
        uint64_t iova;
        int fd = memfd(64 * K);
        SessionCopyArgs c = { .length = 8 * K, .src_iova = 0x100000, .fixed_iova = true,
                              .dst_iova = 0x100000 };

        assert_int_equal(session_create_address_space(a, &ioas, NULL), 0);
        assert_int_equal(map(a, ioas, fd, 8 * K, 0x100000, NULL), 0);
        before = principal(e, 1000);

        /* The backend refuses (the IOVA is taken): nothing stays charged. */
        assert_int_equal(map(b, ioas, fd, 4 * K, 0x100000, &err), -ENOENT);
        assert_int_equal(map(a, ioas, fd, 4 * K, 0x100000, &err), -EEXIST);
        /* A copy onto itself: the backend refuses, nothing stays charged. */
        c.src_ioas_id = c.dst_ioas_id = ioas;
        assert_int_equal(session_copy(a, &c, &iova, &err), -EEXIST);
        /* Past the end of the memory fd: refused before anything is charged. */
        assert_int_equal(map(a, ioas, fd, 128 * K, 0x200000, &err), -ERANGE);
        /* The mapping is charged, then the pinned bytes are over: both given back. */
        assert_int_equal(map(a, ioas, fd, 60 * K, 0x300000, &err), -EDQUOT);
        assert_string_equal(broker_error_get(&err, "resource")->str, "pinnedBytes");
        after = principal(e, 1000);
        assert_int_equal(after.pinned_bytes, before.pinned_bytes);
        assert_int_equal(after.mappings, before.mappings);
        assert_int_equal(after.address_spaces, before.address_spaces);
        assert_int_equal(after.pinned_bytes, 8 * K);
        assert_int_equal(after.mappings, 1);
        close(fd);
        session_free(a);
        session_free(b);
        assert_null(e->host.principals);
}

static int read_bitmap(Session *s, uint32_t ioas, uint64_t length, int fd, BrokerError *err) {
        SessionDirtyArgs a = { .ioas_id = ioas, .iova = 0x100000, .length = length,
                               .page_size = 4 * K, .clear = true, .bitmap_fd = fd };

        return session_read_dirty_bitmap(s, &a, err);
}

/*
 * A dirty bitmap is memory iommud faults for the principal: while it is written it counts
 * against the uid's pinned-memory, with what its sessions pin, and nothing stays charged.
 */
static void test_dirty_bitmap_counts(void **state) {
        Env *e = *state;
        Session *a = new_session(e, 1000), *b = new_session(e, 1000);
        BrokerError err = BROKER_ERROR_INIT;
        SessionDirtyArgs u = { .iova = 0x100000, .page_size = 4 * K };
        uint32_t ioas, other;
        uint64_t unmapped = 0;
        int fd = memfd(48 * K), bitmap = memfd(32 * K);

        assert_int_equal(session_create_address_space_full(a, true, &ioas, NULL), 0);
        assert_int_equal(session_create_address_space(b, &other, NULL), 0);
        assert_int_equal(session_set_dirty_tracking(a, ioas, true, NULL), 0);
        assert_int_equal(map(a, ioas, fd, 40 * K, 0x100000, NULL), 0);
        assert_int_equal(map(b, other, fd, 8 * K, 0x100000, NULL), 0);

        /* 1 GiB at 4K takes 32K of bitmap: with the uid's 48K pinned, over its 64K. */
        assert_int_equal(read_bitmap(a, ioas, 1024 * 1024 * K, bitmap, &err), -EDQUOT);
        assert_string_equal(broker_error_get(&err, "resource")->str, "pinnedBytes");
        assert_int_equal(broker_error_get(&err, "used")->u64, 48 * K);
        assert_int_equal(broker_error_get(&err, "limit")->u64, 64 * K);
        assert_non_null(strstr(err.error.message, "dirty bitmap takes 32768 bytes"));
        assert_int_equal(principal(e, 1000).pinned_bytes, 48 * K);
        /* 512M takes 16K: it fits, and is given back once written. */
        assert_int_equal(read_bitmap(a, ioas, 512 * 1024 * K, bitmap, NULL), 0);
        assert_int_equal(principal(e, 1000).pinned_bytes, 48 * K);

        /* An Unmap that returns 24K of bits is refused before anything is unmapped. */
        u.ioas_id = ioas;
        u.bitmap_fd = bitmap;
        u.length = 768 * 1024 * K;
        assert_int_equal(session_unmap_dirty(a, &u, &unmapped, &err), -EDQUOT);
        assert_int_equal(principal(e, 1000).mappings, 2);
        /* Once b gave back its 8K, the same bitmap fits. */
        session_free(b);
        assert_int_equal(session_unmap_dirty(a, &u, &unmapped, NULL), 0);
        assert_int_equal(unmapped, 40 * K);
        assert_int_equal(principal(e, 1000).pinned_bytes, 0);
        close(bitmap);
        close(fd);
        session_free(a);
}

/* Devices: the policy's quota step and the charge both use the uid's total. */
static void test_devices_across_sessions(void **state) {
        Env *e = *state;
        static const char *const names[] = { "0000:c1:00.2", "0000:c1:00.3", "0000:c1:00.4" };
        Session *a = new_session(e, 1000), *b = new_session(e, 1000);
        BrokerError err = BROKER_ERROR_INIT;
        PolicyDecision dec = {};

        /* Open-on-behalf is not granted: attach each device by its node, as a client does. */
        for (size_t i = 0; i < 3; i++) {
                int fd = sim_host_open_device(&e->host, e->root, names[i]), r;

                r = session_attach_device_fd(i == 0 ? a : b, fd, NULL, &err);
                close(fd);
                assert_int_equal(r, i < 2 ? 0 : -EDQUOT);
        }
        assert_string_equal(broker_error_get(&err, "resource")->str, "devices");
        assert_int_equal(broker_error_get(&err, "used")->u64, 2);
        assert_int_equal(principal(e, 1000).devices, 2);

        /* ExplainDevice says the same: the quota step fails for b, which holds one. */
        assert_int_equal(session_explain_device(b, names[2], &dec, NULL), 0);
        assert_false(dec.allowed);
        assert_int_equal(dec.failed_step, POLICY_STEP_QUOTA);
        policy_decision_clear(&dec);

        session_free(a);
        assert_int_equal(principal(e, 1000).devices, 1);
        session_free(b);
}

/* Connections: one per session from its start, joined ones moved and counted, never twice. */
static void test_connections(void **state) {
        Env *e = *state;
        Session *a = new_session(e, 1000), *fresh = new_session(e, 1000), *s = NULL;
        BrokerError err = BROKER_ERROR_INIT;
        PeerCreds *c = NULL;

        assert_int_equal(principal(e, 1000).connections, 2);
        /* A second connection joins a: its own session is given up, the uid keeps 2. */
        assert_int_equal(session_move_connection(fresh, a), 0);
        session_free(fresh);
        assert_int_equal(principal(e, 1000).connections, 2);

        /* A third joins by adding a connection; a fourth is over the quota of 3. */
        assert_int_equal(session_add_connection(a, NULL), 0);
        assert_int_equal(session_add_connection(a, &err), -EDQUOT);
        assert_string_equal(broker_error_get(&err, "resource")->str, "connections");
        assert_int_equal(peer_creds_new(&c, "/nonexistent", 0, 1000, 1000, NULL), 0);
        assert_int_equal(session_new(&s, &e->host, c, &err), -EDQUOT);
        assert_null(s);

        /* One leaves: room for a new session of the uid. */
        session_remove_connection(a);
        assert_int_equal(session_new(&s, &e->host, c, NULL), 0);
        assert_int_equal(principal(e, 1000).connections, 3);
        session_free(s);
        session_free(a);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_one_row_per_uid, setup, teardown),
                cmocka_unit_test_setup_teardown(test_usage_rows, setup, teardown),
                cmocka_unit_test_setup_teardown(test_failures_refund, setup, teardown),
                cmocka_unit_test_setup_teardown(test_devices_across_sessions, setup, teardown),
                cmocka_unit_test_setup_teardown(test_connections, setup, teardown),
                cmocka_unit_test_setup_teardown(test_dirty_bitmap_counts, setup, teardown),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
