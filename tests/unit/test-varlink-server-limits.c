/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * The Varlink server's limits: backpressure and the output limit, who may
 * connect (the total and the reserve for root), what a refused client hears,
 * idle connections, and accept() without fds.
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
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>
#include <json-c/json.h>

#include "json-util.h"
#include "macros.h"
#include "varlink-client.h"
#include "varlink-server-fixture.h"
#include "varlink-server.h"

#define QUOTA_ERROR "io.iommud.Test.QuotaExceeded"

static void test_backpressure(void **state) {
        Fixture *fx = *state;
        VarlinkLimits limits = VARLINK_LIMITS_DEFAULT;
        _cleanup_(varlink_client_freep) VarlinkClient *c = NULL;
        VarlinkConnection *conn = NULL;
        VarlinkReply r = VARLINK_REPLY_INIT;
        const unsigned n_calls = 200, reply_bytes = 32 * 1024;

        limits.max_queued_output_bytes = 64 * 1024;
        fixture_start(fx, &limits);
        c = client_new(fx);
        for (unsigned i = 0; i < n_calls; i++) {
                json_object *p = json_object_new_object();

                json_util_add(p, "seq", json_object_new_int((int)i));
                json_util_add(p, "bytes", json_object_new_int((int)reply_bytes));
                assert_int_equal(varlink_client_send(c, "io.iommud.Test.Big", p, NULL, 0, 0), 0);
                json_object_put(p);
        }
        /* The client reads nothing: the server must stop serving it, not queue 6 MiB. */
        for (unsigned i = 0; i < 1000; i++)
                pump(fx);
        assert_true(fx->n_big > 0);
        assert_true(fx->n_big < n_calls);
        assert_int_equal(varlink_server_n_connections(fx->server), 1);
        (void)conn;

        for (unsigned i = 0; i < n_calls; i++) {
                assert_int_equal(wait_reply(fx, c, &r), 1);
                assert_int_equal(num(r.parameters, "seq"), (int64_t)i);
                assert_int_equal(strlen(str(r.parameters, "data")), reply_bytes);
                varlink_reply_clear(&r);
        }
        assert_int_equal(fx->n_big, n_calls);
}

static void test_backpressure_refuses_stream_replies(void **state) {
        Fixture *fx = *state;
        VarlinkLimits limits = VARLINK_LIMITS_DEFAULT;
        _cleanup_(varlink_client_freep) VarlinkClient *c = NULL;
        VarlinkReply r = VARLINK_REPLY_INIT;
        json_object *p = json_tokener_parse("{\"n\":100000}");
        unsigned n = 0;

        /* A stream of 100000 replies into a 4 KiB queue: the handler hears -ENOBUFS. */
        limits.max_queued_output_bytes = 4096;
        fixture_start(fx, &limits);
        c = client_new(fx);
        assert_int_equal(varlink_client_send(c, "io.iommud.Test.Count", p, NULL, 0, VARLINK_CLIENT_MORE), 0);
        json_object_put(p);
        for (;;) {
                assert_int_equal(wait_reply(fx, c, &r), 1);
                if (!r.continues)
                        break;
                n++;
                varlink_reply_clear(&r);
        }
        assert_string_equal(r.error, "io.iommud.Test.SystemError");
        assert_int_equal(num(r.parameters, "errno"), ENOBUFS);
        assert_true(n > 0 && n < 100000);
        varlink_reply_clear(&r);
}

static void test_pipelined_calls_cost_the_bound(void **state) {
        Fixture *fx = *state;
        _cleanup_(varlink_client_freep) VarlinkClient *c = NULL;
        VarlinkReply r = VARLINK_REPLY_INIT;
        const unsigned n_calls = 2000, reply_bytes = 1024;
        size_t most = 0;

        /* The default limit, 8 MiB: all 2 MiB of replies would fit without backpressure. */
        c = client_new(fx);
        for (unsigned i = 0; i < n_calls; i++) {
                json_object *p = json_object_new_object();

                json_util_add(p, "seq", json_object_new_int((int)i));
                json_util_add(p, "bytes", json_object_new_int((int)reply_bytes));
                assert_int_equal(varlink_client_send(c, "io.iommud.Test.Big", p, NULL, 0, 0), 0);
                json_object_put(p);
        }
        for (unsigned i = 0; i < 2000; i++) {
                pump(fx);
                if (fx->last_connection)
                        most = MAX(most, varlink_connection_get_queued_output(fx->last_connection));
        }
        assert_true(fx->n_big > 0 && fx->n_big < n_calls);
        /* The bound, plus the one reply that crossed it. */
        assert_true(most > 0);
        assert_true(most < VARLINK_PIPELINE_OUTPUT_BYTES + reply_bytes + 64);
        for (unsigned i = 0; i < n_calls; i++) {
                assert_int_equal(wait_reply(fx, c, &r), 1);
                assert_null(r.error);
                assert_int_equal(num(r.parameters, "seq"), (int64_t)i);
                varlink_reply_clear(&r);
        }
}

/* A final reply larger than the output limit is an error, and the connection goes on. */
static void test_final_reply_over_the_limit(void **state) {
        Fixture *fx = *state;
        VarlinkLimits limits = VARLINK_LIMITS_DEFAULT;
        _cleanup_(varlink_client_freep) VarlinkClient *c = NULL;
        VarlinkReply r = VARLINK_REPLY_INIT;

        limits.max_queued_output_bytes = 16 * 1024;
        fixture_start(fx, &limits);
        c = client_new(fx);
        call(fx, c, "io.iommud.Test.Big", "{\"seq\":1,\"bytes\":32768}", &r);
        assert_string_equal(r.error, "io.iommud.Test.SystemError");
        assert_int_equal(num(r.parameters, "errno"), ENOBUFS);
        varlink_reply_clear(&r);
        call(fx, c, "io.iommud.Test.Big", "{\"seq\":2,\"bytes\":8192}", &r);
        assert_null(r.error);
        assert_int_equal(strlen(str(r.parameters, "data")), 8192);
        varlink_reply_clear(&r);
}

/* A refused client reads why, even when it sends its call after the server closed. */
static void test_refusal_is_read_after_the_close(void **state) {
        Fixture *fx = *state;
        VarlinkLimits limits = VARLINK_LIMITS_DEFAULT;
        _cleanup_(varlink_client_freep) VarlinkClient *a = NULL, *b = NULL;
        VarlinkReply r = VARLINK_REPLY_INIT;

        limits.max_connections = 1;
        fixture_start(fx, &limits);
        varlink_server_set_quota_error(fx->server, QUOTA_ERROR);
        a = client_new(fx);
        call(fx, a, "io.iommud.Test.Echo", NULL, &r);
        varlink_reply_clear(&r);
        b = client_new(fx);
        /* The server accepts b, says why it refuses it, and closes; b sends only then. */
        for (unsigned i = 0; i < 1000; i++)
                pump(fx);
        assert_int_equal(varlink_server_n_connections(fx->server), 1);
        assert_int_equal(varlink_client_send(b, "io.iommud.Test.Echo", NULL, NULL, 0, 0), 0);
        assert_int_equal(varlink_client_wait(b, -1, &r), 0);
        assert_string_equal(r.error, QUOTA_ERROR);
        assert_string_equal(str(r.parameters, "resource"), "connections");
        assert_int_equal(num(r.parameters, "limit"), 1);
        assert_int_equal(num(r.parameters, "used"), 1);
        varlink_reply_clear(&r);
        /* Then the hangup. */
        assert_true(varlink_client_wait(b, -1, &r) < 0);
}

/* At the total, a new client is answered and closed, not left waiting in the backlog. */
static void test_total_limit(void **state) {
        Fixture *fx = *state;
        VarlinkLimits limits = VARLINK_LIMITS_DEFAULT;
        VarlinkClient *c[3];
        VarlinkReply r = VARLINK_REPLY_INIT;

        limits.max_connections = 2;
        fixture_start(fx, &limits);
        varlink_server_set_quota_error(fx->server, QUOTA_ERROR);
        for (int i = 0; i < 2; i++) {
                c[i] = client_new(fx);
                call(fx, c[i], "io.iommud.Test.Echo", NULL, &r);
                varlink_reply_clear(&r);
        }
        c[2] = client_new(fx);
        call(fx, c[2], "io.iommud.Test.Echo", NULL, &r);
        assert_string_equal(r.error, QUOTA_ERROR);
        assert_string_equal(str(r.parameters, "resource"), "connections");
        assert_int_equal(num(r.parameters, "limit"), 2);
        assert_int_equal(num(r.parameters, "used"), 2);
        varlink_reply_clear(&r);
        assert_true(wait_reply(fx, c[2], &r) < 0);
        assert_int_equal(varlink_server_n_connections(fx->server), 2);
        varlink_client_free(c[2]);

        /* A slot freed is usable again. */
        varlink_client_free(c[0]);
        pump_until_disconnects(fx, 1);
        c[2] = client_new(fx);
        call(fx, c[2], "io.iommud.Test.Echo", NULL, &r);
        assert_null(r.error);
        varlink_reply_clear(&r);
        varlink_client_free(c[1]);
        varlink_client_free(c[2]);
}

/* Adds a connection on behalf of uid over a socketpair; the peer end goes to *ret_peer. */
static int add_as(Fixture *fx, uid_t uid, int *ret_peer) {
        static struct ucred as;
        VarlinkConnection *c = NULL;
        int sv[2], r;

        as = (struct ucred){ .pid = (pid_t)uid, .uid = uid, .gid = uid };
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        fx->as = &as;
        r = varlink_server_add_connection_as(fx->server, sv[0], &as, &c);
        fx->as = NULL;
        *ret_peer = sv[1];
        return r;
}

/* The last connections are for root (and the server's own uid), whoever else fills the rest. */
static void test_reserved_for_root(void **state) {
        Fixture *fx = *state;
        VarlinkLimits limits = VARLINK_LIMITS_DEFAULT;
        VarlinkReply r = VARLINK_REPLY_INIT;
        VarlinkClient *own;
        unsigned limit, used;
        int peers[3];

        limits.max_connections = 3;
        limits.reserved_connections = 1;
        fixture_start(fx, &limits);
        assert_int_equal(add_as(fx, 4242, &peers[0]), 0);
        assert_int_equal(add_as(fx, 4243, &peers[1]), 0);
        assert_int_equal(add_as(fx, 4244, &peers[2]), -EUSERS);
        assert_int_equal(varlink_server_admit(fx->server, 4244, &limit, &used), -EUSERS);
        assert_int_equal(limit, 2);
        assert_int_equal(used, 2);
        /* The last one is root's (this process's own uid counts as admin too). */
        own = client_new(fx);
        call(fx, own, "io.iommud.Test.Echo", NULL, &r);
        assert_null(r.error);
        varlink_reply_clear(&r);
        assert_int_equal(varlink_server_n_connections(fx->server), 3);
        varlink_client_free(own);
        for (int i = 0; i < 3; i++)
                close(peers[i]);
        pump_until_disconnects(fx, 3);
}

static void test_on_connect_refuses_with_error(void **state) {
        Fixture *fx = *state;
        _cleanup_(varlink_client_freep) VarlinkClient *c = NULL;
        VarlinkReply r = VARLINK_REPLY_INIT;

        fx->refuse_with_error = true;
        c = client_new(fx);
        call(fx, c, "io.iommud.Test.Echo", NULL, &r);
        assert_string_equal(r.error, "io.iommud.Test.Failed");
        assert_string_equal(str(r.parameters, "reason"), "no room");
        varlink_reply_clear(&r);
        assert_true(wait_reply(fx, c, &r) < 0);
        assert_int_equal(fx->n_connect, 0);
        assert_int_equal(varlink_server_n_connections(fx->server), 0);
}

static VarlinkConnection *idle_keep;
static unsigned idle_asked;

static bool on_idle(VarlinkServer *s, VarlinkConnection *c, void *userdata) {
        idle_asked += c == idle_keep;
        return c != idle_keep;
}

/*
 * Idle connections go, unless the hook says they hold something or they make calls.  No
 * clock decides the outcome: each connection's idle time starts at its last call, and the
 * server closes the one that idles longest among those it may close first.
 */
static void test_idle_timeout(void **state) {
        Fixture *fx = *state;
        VarlinkLimits limits = VARLINK_LIMITS_DEFAULT;
        _cleanup_(varlink_client_freep) VarlinkClient *keep = NULL, *busy = NULL, *idle = NULL;
        VarlinkReply r = VARLINK_REPLY_INIT;
        unsigned i;

        limits.idle_timeout_usec = 50 * 1000;
        fixture_start(fx, &limits);
        varlink_server_set_idle_hook(fx->server, on_idle);
        idle_asked = 0;
        keep = client_new(fx);
        call(fx, keep, "io.iommud.Test.Echo", NULL, &r);
        varlink_reply_clear(&r);
        idle_keep = fx->last_connection;
        busy = client_new(fx);
        call(fx, busy, "io.iommud.Test.Echo", NULL, &r);
        varlink_reply_clear(&r);
        idle = client_new(fx);
        call(fx, idle, "io.iommud.Test.Echo", NULL, &r);
        varlink_reply_clear(&r);

        /* busy makes calls until idle, which connected after it, has been closed. */
        for (i = 0; i < 1000000 && fx->n_disconnect == 0; i++) {
                call(fx, busy, "io.iommud.Test.Echo", NULL, &r);
                varlink_reply_clear(&r);
        }
        assert_int_equal(fx->n_disconnect, 1);
        assert_true(wait_reply(fx, idle, &r) < 0);
        /* keep idled longer than idle did: the hook was asked, and kept it. */
        assert_true(idle_asked > 0);
        call(fx, keep, "io.iommud.Test.Echo", NULL, &r);
        assert_null(r.error);
        varlink_reply_clear(&r);
        call(fx, busy, "io.iommud.Test.Echo", NULL, &r);
        assert_null(r.error);
        varlink_reply_clear(&r);
        assert_int_equal(varlink_server_n_connections(fx->server), 2);
        idle_keep = NULL;
}

/* Lowers this process's fd limit to what is open now; returns the old limit. */
static struct rlimit fds_exhaust(void) {
        struct rlimit old, now;
        int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);

        assert_true(fd >= 0);
        close(fd);
        assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
        /* fd was the lowest free number: with the limit there, no new fd can be made. */
        now = (struct rlimit){ .rlim_cur = (rlim_t)fd, .rlim_max = old.rlim_max };
        assert_int_equal(setrlimit(RLIMIT_NOFILE, &now), 0);
        return old;
}

static int find_listener(const struct event_base *base, const struct event *ev, void *userdata) {
        const Fixture *fx = userdata;

        return event_get_fd(ev) == fx->listen_fd && (event_get_events(ev) & EV_READ);
}

/* Whether the server waits for the listening socket to be readable. */
static bool listening(Fixture *fx) {
        return event_base_foreach_event(fx->base, find_listener, fx) == 1;
}

/* Pumps one round at a time, n times: a server that listens on would make pump() spin. */
static void pump_rounds(Fixture *fx, unsigned n) {
        for (unsigned i = 0; i < n; i++)
                assert_true(event_base_loop(fx->base, EVLOOP_ONCE | EVLOOP_NONBLOCK) >= 0);
}

/*
 * Out of fds, the server stops listening and the waiting client stays in the backlog; the
 * retry timer brings accepting back, and so does a connection that closes (freeing fds).
 */
static void test_accept_without_fds(void **state) {
        Fixture *fx = *state;
        VarlinkClient *first, *waiting, *late;
        VarlinkReply r = VARLINK_REPLY_INIT;
        struct rlimit old;

        first = client_new(fx);
        call(fx, first, "io.iommud.Test.Echo", NULL, &r);
        varlink_reply_clear(&r);
        /*
         * valgrind emulates RLIMIT_NOFILE for the program it runs (its own fds sit above the
         * limit it reports), so running out of fds there is not what the kernel does: the
         * gcc and ASan runs check it, valgrind the memory of the part above.
         */
        if (getenv("IOMMUD_VALGRIND")) {
                varlink_client_free(first);
                return;
        }
        waiting = client_new(fx);
        assert_int_equal(varlink_client_send(waiting, "io.iommud.Test.Echo", NULL, NULL, 0, 0), 0);
        assert_true(listening(fx));
        old = fds_exhaust();
        pump_rounds(fx, 1000);
        /*
         * Not accepted, not dropped, and not woken for it again and again: 1000 turns of the
         * loop tried accept() once (a server that listens on fails once per turn).
         */
        assert_int_equal(varlink_server_n_accept_shortages(fx->server), 1);
        assert_int_equal(varlink_server_n_connections(fx->server), 1);
        assert_int_equal(varlink_client_process(waiting, &r), 0);
        assert_false(listening(fx));

        /* fds again, and nothing closed: the retry timer resumes.  Wait for it, blocking. */
        assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0);
        while (varlink_client_process(waiting, &r) == 0)
                assert_true(event_base_loop(fx->base, EVLOOP_ONCE) >= 0);
        assert_null(r.error);
        varlink_reply_clear(&r);
        assert_true(listening(fx));

        /* Out of fds again: a late client waits until the first one leaves. */
        late = client_new(fx);
        old = fds_exhaust();
        assert_int_equal(varlink_client_send(late, "io.iommud.Test.Echo", NULL, NULL, 0, 0), 0);
        pump_rounds(fx, 1000);
        assert_int_equal(varlink_server_n_accept_shortages(fx->server), 2);
        assert_int_equal(varlink_client_process(late, &r), 0);
        assert_false(listening(fx));
        varlink_client_free(first);
        assert_int_equal(wait_reply(fx, late, &r), 1);
        assert_null(r.error);
        varlink_reply_clear(&r);
        assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0);
        varlink_client_free(waiting);
        varlink_client_free(late);
        pump_until_disconnects(fx, 3);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_backpressure, setup, teardown),
                cmocka_unit_test_setup_teardown(test_backpressure_refuses_stream_replies, setup, teardown),
                cmocka_unit_test_setup_teardown(test_pipelined_calls_cost_the_bound, setup, teardown),
                cmocka_unit_test_setup_teardown(test_final_reply_over_the_limit, setup, teardown),
                cmocka_unit_test_setup_teardown(test_refusal_is_read_after_the_close, setup, teardown),
                cmocka_unit_test_setup_teardown(test_total_limit, setup, teardown),
                cmocka_unit_test_setup_teardown(test_reserved_for_root, setup, teardown),
                cmocka_unit_test_setup_teardown(test_on_connect_refuses_with_error, setup, teardown),
                cmocka_unit_test_setup_teardown(test_idle_timeout, setup, teardown),
                cmocka_unit_test_setup_teardown(test_accept_without_fds, setup, teardown),
        };

        return cmocka_run_group_tests_name("varlink-server-limits", tests, NULL, NULL);
}
