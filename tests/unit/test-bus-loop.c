/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * bus-loop drives sd-bus from libevent, and bus-errors keeps error names and
 * errnos: two peer-to-peer sd-bus connections over a socketpair, both on one
 * event_base, with nothing but the event loop running them.
 */

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <cmocka.h>
#include <event2/event.h>
#include <systemd/sd-bus.h>

#include "bus-errors.h"
#include "bus-loop.h"

typedef struct Pair Pair;

struct Pair {
        struct event_base *base;
        sd_bus *server, *client;
        BusLoop *server_loop, *client_loop;
        int replies;
        int last_errno;
        size_t last_size;
        bool client_lost;
        sd_bus_message *unanswered;
};

static int method_big(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        uint32_t size;
        char *s;
        int r;

        r = sd_bus_message_read(m, "u", &size);
        if (r < 0)
                return r;
        s = malloc(size + 1);
        if (!s)
                return -ENOMEM;
        memset(s, 'x', size);
        s[size] = '\0';
        r = sd_bus_reply_method_return(m, "s", s);
        free(s);
        return r;
}

static int method_never(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Pair *p = userdata;

        /* Keeps the call unanswered: the caller's timeout has to fire. */
        p->unanswered = sd_bus_message_ref(m);
        return 1;
}

static int method_fail(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        const char *name;
        int r;

        r = sd_bus_message_read(m, "s", &name);
        if (r < 0)
                return r;
        return sd_bus_error_set(error, name, "refused by the test");
}

static const sd_bus_vtable test_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_METHOD("Big", "u", "s", method_big, 0),
        SD_BUS_METHOD("Never", "", "", method_never, 0),
        SD_BUS_METHOD("Fail", "s", "", method_fail, 0),
        SD_BUS_VTABLE_END,
};

static void on_lost(BusLoop *l, void *userdata) {
        Pair *p = userdata;

        p->client_lost = true;
        event_base_loopbreak(p->base);
}

static int pair_setup(void **state) {
        Pair *p = calloc(1, sizeof(*p));
        sd_id128_t id;
        int fds[2];

        assert_non_null(p);
        p->base = event_base_new();
        assert_non_null(p->base);
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, fds),
                         0);
        assert_int_equal(sd_id128_randomize(&id), 0);

        assert_int_equal(sd_bus_new(&p->server), 0);
        assert_int_equal(sd_bus_set_fd(p->server, fds[0], fds[0]), 0);
        assert_int_equal(sd_bus_set_server(p->server, 1, id), 0);
        assert_int_equal(sd_bus_set_anonymous(p->server, 1), 0);
        assert_true(sd_bus_add_object_vtable(p->server, NULL, "/test", "org.iommud1.Test",
                                             test_vtable, p) >= 0);
        assert_int_equal(sd_bus_start(p->server), 0);

        assert_int_equal(sd_bus_new(&p->client), 0);
        assert_int_equal(sd_bus_set_fd(p->client, fds[1], fds[1]), 0);
        assert_int_equal(sd_bus_set_anonymous(p->client, 1), 0);
        assert_int_equal(sd_bus_start(p->client), 0);
        assert_true(sd_bus_error_add_map(bus_error_map) >= 0);

        assert_int_equal(bus_loop_new(&p->server_loop, p->base, p->server, NULL, NULL), 0);
        assert_int_equal(bus_loop_new(&p->client_loop, p->base, p->client, on_lost, p), 0);
        *state = p;
        return 0;
}

static int pair_teardown(void **state) {
        Pair *p = *state;

        sd_bus_message_unref(p->unanswered);
        bus_loop_free(p->server_loop);
        bus_loop_free(p->client_loop);
        sd_bus_close_unref(p->server);
        sd_bus_close_unref(p->client);
        event_base_free(p->base);
        free(p);
        return 0;
}

static int on_reply(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        Pair *p = userdata;
        const sd_bus_error *e = sd_bus_message_get_error(m);
        const char *s;

        p->replies++;
        p->last_errno = e ? sd_bus_error_get_errno(e) : 0;
        p->last_size = 0;
        if (!e && sd_bus_message_read(m, "s", &s) > 0)
                p->last_size = strlen(s);
        event_base_loopbreak(p->base);
        return 0;
}

static void run_until_reply(Pair *p, int want) {
        /* Only the event loop moves the messages. */
        while (p->replies < want && !p->client_lost)
                assert_int_equal(event_base_loop(p->base, EVLOOP_ONCE), 0);
        assert_false(p->client_lost);
}

static void test_call_and_reply(void **state) {
        Pair *p = *state;

        assert_true(sd_bus_call_method_async(p->client, NULL, NULL, "/test", "org.iommud1.Test",
                                             "Big", on_reply, p, "u", 16) >= 0);
        bus_loop_kick(p->client_loop);
        run_until_reply(p, 1);
        assert_int_equal(p->last_errno, 0);
        assert_int_equal(p->last_size, 16);
}

/* A reply far larger than the socket buffer is written as the peer drains it. */
static void test_reply_larger_than_socket_buffer(void **state) {
        Pair *p = *state;

        assert_true(sd_bus_call_method_async(p->client, NULL, NULL, "/test", "org.iommud1.Test",
                                             "Big", on_reply, p, "u", 8u << 20) >= 0);
        bus_loop_kick(p->client_loop);
        run_until_reply(p, 1);
        assert_int_equal(p->last_errno, 0);
        assert_int_equal(p->last_size, 8u << 20);
}

/* sd-bus's timeout reaches the loop as a timer. */
static void test_timeout_fires(void **state) {
        Pair *p = *state;

        {
                sd_bus_message *m = NULL;

                assert_true(sd_bus_message_new_method_call(p->client, &m, NULL, "/test",
                                                           "org.iommud1.Test", "Never") >= 0);
                assert_true(sd_bus_call_async(p->client, NULL, m, on_reply, p, 1000) >= 0);
                sd_bus_message_unref(m);
        }
        bus_loop_kick(p->client_loop);
        run_until_reply(p, 1);
        assert_int_equal(p->last_errno, ETIMEDOUT);
}

typedef struct ErrorCase {
        const char *name;
        int errno_value;
} ErrorCase;

/* Every name the session core raises arrives with its name and its errno. */
static void test_error_names_keep_errnos(void **state) {
        static const ErrorCase cases[] = {
                { BROKER_ERROR_POLICY_DENIED, EPERM },
                { BROKER_ERROR_QUOTA_EXCEEDED, EDQUOT },
                { BROKER_ERROR_NO_SUCH_OBJECT, ENOENT },
                { BROKER_ERROR_INVALID_RANGE, ERANGE },
                { BROKER_ERROR_IOVA_IN_USE, EEXIST },
                { BROKER_ERROR_DEVICE_BUSY, EBUSY },
                { BROKER_ERROR_OBJECT_IN_USE, EBUSY },
                { BROKER_ERROR_INVALID_FD, EBADF },
                { BROKER_ERROR_NOT_SUPPORTED, EOPNOTSUPP },
                { BROKER_ERROR_BACKEND_ERROR, EIO },
                { BROKER_ERROR_SYSTEM_ERROR, ENOMEM },
                { BROKER_ERROR_DEVICE_GONE, ENODEV },
                { BROKER_ERROR_FAULT_NOT_PENDING, EALREADY },
                { BROKER_ERROR_FAULT_NOT_OWNED, EACCES },
                { BUS_ERROR_POLICY_INVALID, EINVAL },
        };
        Pair *p = *state;

        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                p->replies = 0;
                assert_true(sd_bus_call_method_async(p->client, NULL, NULL, "/test",
                                                     "org.iommud1.Test", "Fail", on_reply, p, "s",
                                                     cases[i].name) >= 0);
                bus_loop_kick(p->client_loop);
                run_until_reply(p, 1);
                if (p->last_errno != cases[i].errno_value)
                        fail_msg("%s arrived as errno %d, expected %d", cases[i].name,
                                 p->last_errno, cases[i].errno_value);
        }
}

/* A BrokerError becomes the bus error of the same name; InvalidParameter becomes InvalidArgs. */
static void test_error_from_broker(void **state) {
        BrokerError e = BROKER_ERROR_INIT;
        sd_bus_error be = SD_BUS_ERROR_NULL;

        broker_error_set(&e, -EDQUOT, BROKER_ERROR_QUOTA_EXCEEDED, "Quota pinnedBytes is %d.", 1);
        assert_int_equal(bus_error_from_broker(&be, &e), -EDQUOT);
        assert_string_equal(be.name, BROKER_ERROR_QUOTA_EXCEEDED);
        assert_string_equal(be.message, "Quota pinnedBytes is 1.");
        sd_bus_error_free(&be);

        broker_error_set(&e, -EINVAL, BROKER_ERROR_INVALID_PARAMETER, "bad");
        assert_int_equal(bus_error_from_broker(&be, &e), -EINVAL);
        assert_string_equal(be.name, SD_BUS_ERROR_INVALID_ARGS);
        sd_bus_error_free(&be);
}

/* The peer hanging up reaches the disconnect callback once. */
static void test_disconnect(void **state) {
        Pair *p = *state;

        sd_bus_close(p->server);
        while (!p->client_lost)
                assert_int_equal(event_base_loop(p->base, EVLOOP_ONCE), 0);
        assert_true(p->client_lost);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_call_and_reply, pair_setup, pair_teardown),
                cmocka_unit_test_setup_teardown(test_reply_larger_than_socket_buffer, pair_setup,
                                                pair_teardown),
                cmocka_unit_test_setup_teardown(test_timeout_fires, pair_setup, pair_teardown),
                cmocka_unit_test_setup_teardown(test_error_names_keep_errnos, pair_setup,
                                                pair_teardown),
                cmocka_unit_test(test_error_from_broker),
                cmocka_unit_test_setup_teardown(test_disconnect, pair_setup, pair_teardown),
        };

        return cmocka_run_group_tests_name("bus-loop", tests, NULL, NULL);
}
