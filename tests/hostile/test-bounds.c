/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * The daemon's resources stay bounded by its limits, whatever clients do:
 * clients that pipeline calls and read no reply cost what the memory formula
 * of iommud.policy(5) says (measured on the daemon's VmRSS, not against
 * time), a client refused for a quota is told so rather than reset, and a
 * connection that holds nothing and makes no call is closed.
 */

#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "hostile.h"
#include "itest.h"

#define N_CLIENTS 64
#define CALLS_MAX 4000               /* per client: stops earlier when the daemon stops reading */
#define MAX_MESSAGE (64 * 1024)      /* the policy's max-message-size */
#define MAX_OUTPUT (4 * 1024 * 1024) /* the policy's max-queued-output */
#define PIPELINE_BOUND (64 * 1024)   /* unsent replies past which a connection's calls wait */
#define SELF_CONNECTIONS 80
#define IDLE_TIMEOUT_MS 300
#define ALLOCATOR_SLACK (4 * 1024 * 1024)

static char *bounds_policy(void) {
        char *p = NULL;

        if (asprintf(&p,
                     "{ \"limits\": { \"max-connections\": 100, \"max-connections-per-user\": 100,"
                     "  \"max-message-size\": %d, \"max-queued-output\": %d,"
                     "  \"reserved-connections\": 4, \"idle-timeout-ms\": %d },"
                     "  \"rules\": { \"all\": { \"action\": \"allow\", \"match\": \"*\" } },"
                     "  \"grants\": { \"self\": { \"principals\": [ { \"user\": %u } ],"
                     "    \"devices\": \"*\", \"quotas\": { \"connections\": %d } } } }",
                     MAX_MESSAGE, MAX_OUTPUT, IDLE_TIMEOUT_MS, (unsigned)getuid(),
                     SELF_CONNECTIONS) < 0)
                return NULL;
        return p;
}

static int setup(void **state) {
        ItestDaemon *d = calloc(1, sizeof(*d));
        char *policy = bounds_policy();

        if (!d || !policy || itest_daemon_start(d, "server", policy) < 0) {
                free(policy);
                free(d);
                return -1;
        }
        free(policy);
        *state = d;
        return 0;
}

static int teardown(void **state) {
        ItestDaemon *d = *state;

        assert_int_equal(itest_daemon_stop(d), 0);
        free(d);
        return 0;
}

static ItestClient *connect_to(const ItestDaemon *d) {
        ItestClient *c;

        assert_int_equal(itest_client_connect(&c, d->socket), 0);
        return c;
}

/* The largest RSS over a few round trips of a probe: the daemon has done what it was sent. */
static uint64_t settled_rss(const ItestDaemon *d) {
        ItestClient *probe = connect_to(d);
        uint64_t rss = 0;

        for (int i = 0; i < 50; i++) {
                json_object *r = itest_call(probe, "org.iommud.Broker.GetSession", NULL, NULL, 0);
                uint64_t now = hostile_daemon_rss(d);

                assert_non_null(r);
                json_object_put(r);
                rss = now > rss ? now : rss;
        }
        itest_client_free(probe);
        return rss;
}

/* Sends GetTopology calls until the daemon stops reading them (EAGAIN) or CALLS_MAX. */
static unsigned pipeline_without_reading(ItestClient *c) {
        static const char call[] = "{\"method\":\"org.iommud.Broker.GetTopology\"}";
        unsigned n;

        for (n = 0; n < CALLS_MAX; n++) {
                ssize_t k = send(c->fd, call, sizeof(call), MSG_DONTWAIT | MSG_NOSIGNAL);

                if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                        break;
                assert_int_equal(k, (ssize_t)sizeof(call));
        }
        return n;
}

/*
 * 64 clients pipeline GetTopology and read nothing.  iommud.policy(5): a connection costs
 * its fixed part (measured here on 64 idle connections), at most max-message-size of input
 * and min(max-queued-output, 64 KiB + its largest reply) of output.  Without backpressure
 * each would queue max-queued-output (4 MiB here): 256 MiB.
 */
static void test_nonreading_clients_cost_the_formula(void **state) {
        ItestDaemon *d = *state;
        ItestClient *idle[N_CLIENTS], *greedy[N_CLIENTS];
        uint64_t base, with_idle, with_greedy, reply, per_conn_fixed, bound;
        json_object *r;
        ItestClient *c;
        unsigned calls = 0;

        c = connect_to(d);
        r = itest_call(c, "org.iommud.Broker.GetTopology", NULL, NULL, 0);
        assert_non_null(r);
        assert_null(itest_reply_error(r));
        reply = strlen(json_object_to_json_string_ext(r, JSON_C_TO_STRING_PLAIN)) + 1;
        json_object_put(r);
        itest_client_free(c);

        base = settled_rss(d);
        for (int i = 0; i < N_CLIENTS; i++) {
                idle[i] = connect_to(d);
                r = itest_call(idle[i], "org.iommud.Broker.GetTopology", NULL, NULL, 0);
                assert_non_null(r);
                json_object_put(r);
        }
        with_idle = settled_rss(d);
        per_conn_fixed = with_idle > base ? (with_idle - base) / N_CLIENTS : 0;
        for (int i = 0; i < N_CLIENTS; i++)
                itest_client_free(idle[i]);

        for (int i = 0; i < N_CLIENTS; i++) {
                greedy[i] = connect_to(d);
                calls += pipeline_without_reading(greedy[i]);
        }
        with_greedy = settled_rss(d);
        bound = N_CLIENTS * (per_conn_fixed + MAX_MESSAGE + PIPELINE_BOUND + reply) +
                ALLOCATOR_SLACK;
        print_message("# bounds: reply %llu B, fixed %llu B/connection, %u calls sent; RSS "
                      "%.1f MiB idle, %.1f MiB with %d idle, %.1f MiB with %d that read nothing; "
                      "formula allows %.1f MiB above idle\n",
                      (unsigned long long)reply, (unsigned long long)per_conn_fixed, calls,
                      base / 1048576.0, with_idle / 1048576.0, N_CLIENTS,
                      with_greedy / 1048576.0, N_CLIENTS, bound / 1048576.0);
        assert_true(calls >= N_CLIENTS);
        if (with_greedy > base + bound)
                fail_msg("the daemon grew by %.1f MiB for %d clients that read nothing; the "
                         "formula allows %.1f MiB",
                         (with_greedy - base) / 1048576.0, N_CLIENTS, bound / 1048576.0);

        /* Every one is still served when it reads: backpressure, not a drop. */
        for (int i = 0; i < N_CLIENTS; i++) {
                assert_int_equal(itest_client_recv(greedy[i], &r), 1);
                assert_null(itest_reply_error(r));
                json_object_put(r);
                itest_client_free(greedy[i]);
        }
}

static void get_session(ItestClient *c) {
        json_object *r = itest_call(c, "org.iommud.Broker.GetSession", NULL, NULL, 0);

        assert_non_null(r);
        assert_null(itest_reply_error(r));
        json_object_put(r);
}

/* A client over its uid's connections quota reads QuotaExceeded, not a reset. */
static void test_refused_client_is_told(void **state) {
        ItestDaemon *d = *state;
        ItestClient *held[SELF_CONNECTIONS], *late;
        json_object *r, *p;

        for (int i = 0; i < SELF_CONNECTIONS; i++) {
                held[i] = connect_to(d);
                get_session(held[i]);
        }
        late = connect_to(d);
        /* The daemon may have answered and closed before the call is sent: the reply stays. */
        (void)itest_client_send(late, "org.iommud.Broker.GetSession", NULL, NULL, 0);
        assert_int_equal(itest_client_recv(late, &r), 1);
        assert_string_equal(itest_reply_error(r), "org.iommud.Broker.QuotaExceeded");
        p = itest_reply_params(r);
        assert_string_equal(itest_get_string(p, "resource"), "connections");
        assert_int_equal(itest_get_u64(p, "limit"), SELF_CONNECTIONS);
        assert_int_equal(itest_get_u64(p, "used"), SELF_CONNECTIONS);
        json_object_put(r);
        assert_true(itest_client_is_closed(late));
        itest_client_free(late);
        for (int i = 0; i < SELF_CONNECTIONS; i++)
                itest_client_free(held[i]);
}

/* Whether the daemon closes c within about ms (polls; the close is what is asserted). */
static bool closed_within(ItestClient *c, int ms) {
        struct pollfd p = { .fd = c->fd, .events = POLLIN };

        return poll(&p, 1, ms) > 0 && itest_client_is_closed(c);
}

/* A connection that holds nothing and idles is closed; one holding an address space stays. */
static void test_idle_connection_closed(void **state) {
        ItestDaemon *d = *state;
        ItestClient *before = connect_to(d), *holder = connect_to(d), *after = connect_to(d);
        json_object *r;

        get_session(before);
        r = itest_call(holder, "org.iommud.Broker.CreateAddressSpace", NULL, NULL, 0);
        assert_non_null(r);
        assert_null(itest_reply_error(r));
        json_object_put(r);
        get_session(after);

        assert_true(closed_within(before, 20 * IDLE_TIMEOUT_MS));
        assert_true(closed_within(after, 20 * IDLE_TIMEOUT_MS));
        /* The holder idled longer than after did: still served. */
        get_session(holder);
        itest_client_free(before);
        itest_client_free(after);
        itest_client_free(holder);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_nonreading_clients_cost_the_formula, setup,
                                                teardown),
                cmocka_unit_test_setup_teardown(test_refused_client_is_told, setup, teardown),
                cmocka_unit_test_setup_teardown(test_idle_connection_closed, setup, teardown),
        };

        return cmocka_run_group_tests_name("bounds", tests, NULL, NULL);
}
