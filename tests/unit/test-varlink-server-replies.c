/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * The server's short ways to answer: the bytes a client reads must be those of the long way,
 * and a call that may not be answered (oneway, answered already, over the output limit) is
 * treated as it is there.  Clients here are raw sockets, so that the bytes are compared as
 * they are, not as a parser sees them.
 */

#include <errno.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "macros.h"
#include "varlink-server-fixture.h"
#include "varlink-server.h"

static int raw_connect(Fixture *fx) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

        assert_true(fd >= 0);
        assert_true(strlen(fx->path) < sizeof(sa.sun_path));
        strcpy(sa.sun_path, fx->path);
        assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
        return fd;
}

static void raw_send(int fd, const char *text) {
        assert_int_equal(send(fd, text, strlen(text) + 1, MSG_NOSIGNAL), (ssize_t)strlen(text) + 1);
}

/* Pumps the server until one whole message arrived on fd; returns its bytes (NUL-terminated). */
static void raw_recv(Fixture *fx, int fd, char *buf, size_t size) {
        size_t n = 0;

        for (unsigned i = 0; i < PUMP_MAX; i++) {
                ssize_t k = recv(fd, buf + n, 1, 0);

                if (k == 1 && buf[n] == '\0')
                        return;
                if (k == 1) {
                        assert_true(++n < size);
                        continue;
                }
                assert_true(k < 0 && errno == EAGAIN);
                pump(fx);
        }
        fail_msg("no reply from the server");
}

static void send_u64(int fd, const char *value, bool oneway) {
        char text[256];

        snprintf(text, sizeof(text),
                 "{\"method\":\"io.iommud.Test.U64\",\"parameters\":{\"v\":%s}%s}", value,
                 oneway ? ",\"oneway\":true" : "");
        raw_send(fd, text);
}

/* Every number of digits, the edges of each two-digit step, and the largest value. */
static void test_u64_reply_bytes(void **state) {
        static const char *const values[] = {
                "0",     "1",     "9",        "10",       "42",       "99",
                "100",   "101",   "999",      "1000",     "4096",     "65535",
                "99999", "100000", "1048576", "16777216", "4294967295", "4294967296",
                "1000000000000", "9999999999999999999", "10000000000000000000",
                "18446744073709551615",
        };
        Fixture *fx = *state;
        int fd = raw_connect(fx);

        for (size_t i = 0; i < ELEMENTSOF(values); i++) {
                char got[256], want[256];

                fx->u64_first = fx->u64_second = 1;
                fx->u64_method[0] = '\0';
                send_u64(fd, values[i], false);
                raw_recv(fx, fd, got, sizeof(got));
                /* Read without a tree, in a call object reused from the one before: the name
                 * is written down when asked for, and it is the one sent. */
                assert_string_equal(fx->u64_method, "io.iommud.Test.U64");
                snprintf(want, sizeof(want), "{\"parameters\":{\"v\":%s}}", values[i]);
                assert_string_equal(got, want);
                assert_int_equal(fx->u64_first, 0);
                /* Answered already: the second reply is refused and sends nothing. */
                assert_int_equal(fx->u64_second, -EALREADY);
        }
        safe_close(fd);
}

/* A oneway call is served and answered with nothing: the next reply read is the next call's. */
static void test_u64_oneway_sends_nothing(void **state) {
        Fixture *fx = *state;
        int fd = raw_connect(fx);
        char got[256];

        fx->u64_first = 1;
        send_u64(fd, "7", true);
        send_u64(fd, "8", false);
        raw_recv(fx, fd, got, sizeof(got));
        assert_string_equal(got, "{\"parameters\":{\"v\":8}}");
        assert_int_equal(fx->u64_first, 0);
        safe_close(fd);
}

/* A reply over the output limit ends the call with ENOBUFS, and the connection goes on. */
static void test_u64_over_the_limit(void **state) {
        Fixture *fx = *state;
        VarlinkLimits limits = VARLINK_LIMITS_DEFAULT;
        _cleanup_(varlink_client_freep) VarlinkClient *c = NULL;
        VarlinkReply r = VARLINK_REPLY_INIT;

        /* {"parameters":{"v":1}} takes 23 bytes with its NUL: the short one fits, not the long. */
        limits.max_queued_output_bytes = 32;
        fixture_start(fx, &limits);
        c = client_new(fx);
        call(fx, c, "io.iommud.Test.U64", "{\"v\":18446744073709551615}", &r);
        assert_string_equal(r.error, "io.iommud.Test.SystemError");
        assert_int_equal(num(r.parameters, "errno"), ENOBUFS);
        assert_int_equal(fx->u64_first, -ENOBUFS);
        varlink_reply_clear(&r);
        call(fx, c, "io.iommud.Test.U64", "{\"v\":1}", &r);
        assert_null(r.error);
        assert_int_equal(num(r.parameters, "v"), 1);
        assert_int_equal(fx->u64_first, 0);
        varlink_reply_clear(&r);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_u64_reply_bytes, setup, teardown),
                cmocka_unit_test_setup_teardown(test_u64_oneway_sends_nothing, setup, teardown),
                cmocka_unit_test_setup_teardown(test_u64_over_the_limit, setup, teardown),
        };

        return cmocka_run_group_tests_name("varlink-server-replies", tests, NULL, NULL);
}
