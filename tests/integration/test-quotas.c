/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Quotas belong to the principal (the uid), not to one session: what one uid
 * holds through all its sessions and connections, joined ones included, is
 * checked against its quota, and every failure and every session end gives
 * back exactly what was charged.  The real daemon on a simulated host, driven
 * over its socket.
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

#include "itest.h"

#define MIB (UINT64_C(1) << 20)
#define QUOTA_PINNED (64 * MIB)
#define QUOTA_CONNECTIONS 4
#define QUOTA_ADDRESS_SPACES 5
#define QUOTA_DEVICES 2
#define TRIES 32

typedef struct Fixture {
        ItestDaemon daemon;
        ItestClient *c[TRIES + 1];
        size_t n;
} Fixture;

static const char grant_extras[] =
        "\"quotas\": { \"pinned-memory\": \"64M\", \"connections\": 4, \"address-spaces\": 5,"
        " \"devices\": 2, \"mappings\": 64 },\n"
        "      \"open-on-behalf\": true";

static int setup(void **state) {
        Fixture *f = calloc(1, sizeof(*f));
        char *policy = itest_policy_for_self(grant_extras);

        assert_non_null(f);
        assert_non_null(policy);
        assert_int_equal(itest_daemon_start(&f->daemon, "server", policy), 0);
        free(policy);
        *state = f;
        return 0;
}

static int teardown(void **state) {
        Fixture *f = *state;

        for (size_t i = 0; i < f->n; i++)
                itest_client_free(f->c[i]);
        /* A clean exit status also means no sanitizer report and no leak. */
        assert_int_equal(itest_daemon_stop(&f->daemon), 0);
        free(f);
        return 0;
}

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

static json_object *call(ItestClient *c, const char *method, json_object *params, const int *fds,
                         size_t n_fds) {
        json_object *r = itest_call(c, method, params, fds, n_fds);

        if (!r)
                fail_msg("no reply to %s", method);
        return r;
}

/* A new connection of this uid, or NULL when the daemon closed it at once (refused). */
static ItestClient *connect_served(Fixture *f) {
        ItestClient *c;
        json_object *r;

        assert_int_equal(itest_client_connect(&c, f->daemon.socket), 0);
        r = itest_call(c, "org.iommud.Broker.GetSession", NULL, NULL, 0);
        if (!r || itest_reply_error(r)) {
                json_object_put(r);
                itest_client_free(c);
                return NULL;
        }
        json_object_put(r);
        assert_true(f->n < TRIES + 1);
        f->c[f->n++] = c;
        return c;
}

static void drop_client(Fixture *f, size_t i) {
        itest_client_free(f->c[i]);
        f->c[i] = f->c[--f->n];
}

/* The usage row of resource: this session's "used" and the principal's "principalUsed". */
static void usage_of(ItestClient *c, const char *resource, uint64_t *ret_used,
                     uint64_t *ret_principal, uint64_t *ret_limit) {
        json_object *r = call(c, "org.iommud.Broker.GetSession", NULL, NULL, 0), *usage, *v;
        bool found = false;

        assert_ok(r);
        assert_true(json_object_object_get_ex(itest_reply_params(r), "usage", &usage));
        for (size_t i = 0; i < json_object_array_length(usage); i++) {
                json_object *u = json_object_array_get_idx(usage, i);
                const char *name = itest_get_string(u, "resource");

                if (!name || strcmp(name, resource) != 0)
                        continue;
                found = true;
                *ret_used = itest_get_u64(u, "used");
                if (!json_object_object_get_ex(u, "principalUsed", &v))
                        fail_msg("usage of %s has no principalUsed: %s", resource,
                                 json_object_to_json_string(u));
                *ret_principal = (uint64_t)json_object_get_uint64(v);
                if (ret_limit)
                        *ret_limit = json_object_object_get_ex(u, "limit", &v)
                                             ? (uint64_t)json_object_get_uint64(v)
                                             : UINT64_MAX;
        }
        json_object_put(r);
        if (!found)
                fail_msg("GetSession reports no usage of %s", resource);
}

static uint64_t create_ioas(ItestClient *c) {
        json_object *r = call(c, "org.iommud.Broker.CreateAddressSpace", NULL, NULL, 0);
        uint64_t id;

        assert_ok(r);
        id = itest_get_u64(itest_reply_params(r), "ioasId");
        json_object_put(r);
        return id;
}

static json_object *map(ItestClient *c, uint64_t ioas, int mem, uint64_t length, uint64_t iova) {
        return call(c, "org.iommud.Broker.Map",
                    itest_params("ioasId", I(ioas), "memoryFd", I(0), "offset", I(0), "length",
                                 I(length), "iova", I(iova), "readable",
                                 json_object_new_boolean(true), "writeable",
                                 json_object_new_boolean(true), NULL),
                    &mem, 1);
}

/* ---- pinned memory ------------------------------------------------------------------------ */

/*
 * One uid, as many sessions as its connections quota allows, each trying to pin the whole
 * pinned-memory quota: together they pin the quota once, not once per session.
 */
static void test_pinned_across_sessions(void **state) {
        Fixture *f = *state;
        int mem = itest_memfd(QUOTA_PINNED);
        uint64_t pinned = 0, used, principal, limit, ioas;
        size_t sessions = 0, refused = 0;

        assert_true(mem >= 0);
        for (size_t i = 0; i < QUOTA_CONNECTIONS; i++) {
                ItestClient *c = connect_served(f);
                json_object *r;

                assert_non_null(c);
                r = map(c, create_ioas(c), mem, QUOTA_PINNED, 0x40000000);
                if (!itest_reply_error(r)) {
                        pinned += QUOTA_PINNED;
                        sessions++;
                } else {
                        assert_error(r, "org.iommud.Broker.QuotaExceeded");
                        assert_string_equal(itest_get_string(itest_reply_params(r), "resource"),
                                            "pinnedBytes");
                        assert_int_equal(itest_get_u64(itest_reply_params(r), "limit"),
                                         QUOTA_PINNED);
                        assert_int_equal(itest_get_u64(itest_reply_params(r), "used"),
                                         QUOTA_PINNED);
                        refused++;
                }
                json_object_put(r);
        }
        print_message("# one uid pinned %llu MiB through %zu of %d sessions (pinned-memory 64M)\n",
                      (unsigned long long)(pinned / MIB), sessions, QUOTA_CONNECTIONS);
        assert_int_equal(pinned, QUOTA_PINNED);
        assert_int_equal(refused, QUOTA_CONNECTIONS - 1);

        /* Every session reports its own share and the principal's total. */
        usage_of(f->c[0], "pinnedBytes", &used, &principal, &limit);
        assert_int_equal(used, QUOTA_PINNED);
        assert_int_equal(principal, QUOTA_PINNED);
        assert_int_equal(limit, QUOTA_PINNED);
        usage_of(f->c[1], "pinnedBytes", &used, &principal, &limit);
        assert_int_equal(used, 0);
        assert_int_equal(principal, QUOTA_PINNED);

        /* The session that holds the memory ends: its share is given back to the principal. */
        drop_client(f, 0);
        ioas = create_ioas(f->c[0]);
        for (unsigned tries = 0;; tries++) {
                json_object *r = map(f->c[0], ioas, mem, QUOTA_PINNED, 0x80000000);
                bool ok = !itest_reply_error(r);

                json_object_put(r);
                if (ok)
                        break;
                /* The daemon may not have seen the close yet: bounded retries, no clock. */
                assert_true(tries < 1000);
                usleep(1000);
        }
        usage_of(f->c[1], "pinnedBytes", &used, &principal, NULL);
        assert_int_equal(used, 0);
        assert_int_equal(principal, QUOTA_PINNED);
        close(mem);
}

/* ---- connections -------------------------------------------------------------------------- */

/* Connections joined to one session count against the connections quota like any other. */
static void test_joined_connections(void **state) {
        Fixture *f = *state;
        ItestClient *first = connect_served(f);
        uint64_t used, principal, limit;
        size_t served = 1;
        json_object *r;
        char token[64];

        assert_non_null(first);
        r = call(first, "org.iommud.Broker.GetSession", NULL, NULL, 0);
        assert_ok(r);
        snprintf(token, sizeof(token), "%s", itest_get_string(itest_reply_params(r), "token"));
        json_object_put(r);

        for (size_t i = 1; i < TRIES; i++) {
                ItestClient *c = connect_served(f);

                if (!c)
                        break;
                r = call(c, "org.iommud.Broker.JoinSession",
                         itest_params("token", json_object_new_string(token), NULL), NULL, 0);
                assert_ok(r);
                json_object_put(r);
                served++;
        }
        print_message("# %zu connections of one uid served, %zu of them joined (connections 4)\n",
                      served, served - 1);
        assert_int_equal(served, QUOTA_CONNECTIONS);

        usage_of(first, "connections", &used, &principal, &limit);
        assert_int_equal(used, QUOTA_CONNECTIONS);
        assert_int_equal(principal, QUOTA_CONNECTIONS);
        assert_int_equal(limit, QUOTA_CONNECTIONS);

        /* A joined connection that closes gives its slot back, and the session lives on. */
        drop_client(f, f->n - 1);
        for (unsigned tries = 0; !connect_served(f); tries++) {
                assert_true(tries < 1000);
                usleep(1000);
        }
        usage_of(first, "connections", &used, &principal, NULL);
        assert_int_equal(used, QUOTA_CONNECTIONS - 1);
        assert_int_equal(principal, QUOTA_CONNECTIONS);
}

/* ---- objects and refunds ------------------------------------------------------------------ */

static json_object *attach_by_name(ItestClient *c, const char *device) {
        return call(c, "org.iommud.Broker.AttachDevice",
                    itest_params("device", json_object_new_string(device), NULL), NULL, 0);
}

/* Address spaces and devices are counted across sessions too; refused calls cost nothing. */
static void test_objects_across_sessions(void **state) {
        static const char *const devices[] = { "0000:c1:00.3", "0000:c1:00.4", "0000:c1:00.5" };
        Fixture *f = *state;
        ItestClient *a = connect_served(f), *b = connect_served(f);
        uint64_t used, principal;
        json_object *r;
        int mem = itest_memfd(MIB);
        uint64_t ioas;

        assert_non_null(a);
        assert_non_null(b);
        assert_true(mem >= 0);

        ioas = create_ioas(a);
        (void)create_ioas(a);
        (void)create_ioas(a);
        (void)create_ioas(b);
        (void)create_ioas(b);
        r = call(b, "org.iommud.Broker.CreateAddressSpace", NULL, NULL, 0);
        assert_error(r, "org.iommud.Broker.QuotaExceeded");
        assert_string_equal(itest_get_string(itest_reply_params(r), "resource"), "addressSpaces");
        assert_int_equal(itest_get_u64(itest_reply_params(r), "used"), QUOTA_ADDRESS_SPACES);
        json_object_put(r);

        r = attach_by_name(a, devices[0]);
        assert_ok(r);
        json_object_put(r);
        r = attach_by_name(b, devices[1]);
        assert_ok(r);
        json_object_put(r);
        r = attach_by_name(b, devices[2]);
        assert_error(r, "org.iommud.Broker.QuotaExceeded");
        assert_string_equal(itest_get_string(itest_reply_params(r), "resource"), "devices");
        json_object_put(r);

        /* A map the backend refuses (the IOVA is taken) gives back what it charged. */
        r = map(a, ioas, mem, MIB, 0x100000);
        assert_ok(r);
        json_object_put(r);
        r = map(a, ioas, mem, MIB, 0x100000);
        assert_error(r, "org.iommud.Broker.IOVAInUse");
        json_object_put(r);
        usage_of(b, "pinnedBytes", &used, &principal, NULL);
        assert_int_equal(used, 0);
        assert_int_equal(principal, MIB);
        usage_of(b, "mappings", &used, &principal, NULL);
        assert_int_equal(principal, 1);
        usage_of(b, "devices", &used, &principal, NULL);
        assert_int_equal(used, 1);
        assert_int_equal(principal, QUOTA_DEVICES);
        usage_of(a, "addressSpaces", &used, &principal, NULL);
        assert_int_equal(used, 3);
        assert_int_equal(principal, QUOTA_ADDRESS_SPACES);

        /* Session a goes: only b's share is left. */
        drop_client(f, 0);
        for (unsigned tries = 0;; tries++) {
                usage_of(b, "addressSpaces", &used, &principal, NULL);
                if (principal == 2)
                        break;
                assert_true(tries < 1000);
                usleep(1000);
        }
        usage_of(b, "pinnedBytes", &used, &principal, NULL);
        assert_int_equal(principal, 0);
        usage_of(b, "mappings", &used, &principal, NULL);
        assert_int_equal(principal, 0);
        usage_of(b, "devices", &used, &principal, NULL);
        assert_int_equal(principal, 1);
        close(mem);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_pinned_across_sessions, setup, teardown),
                cmocka_unit_test_setup_teardown(test_joined_connections, setup, teardown),
                cmocka_unit_test_setup_teardown(test_objects_across_sessions, setup, teardown),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
