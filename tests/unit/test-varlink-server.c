/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * The Varlink server in a real event loop, with real sockets and fds.  Most
 * tests run the server and non-blocking clients in one thread and pump the
 * loop until the expected reply arrives, so the order of events is fixed;
 * one test drives the blocking client from a second thread.
 */

#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>
#include <json-c/json.h>

#include "fdlist.h"
#include "json-util.h"
#include "macros.h"
#include "varlink-client.h"
#include "varlink-server-fixture.h"
#include "varlink-server.h"

static void test_method_call_and_error(void **state) {
        Fixture *fx = *state;
        _cleanup_(varlink_client_freep) VarlinkClient *c = client_new(fx);
        VarlinkReply r = VARLINK_REPLY_INIT;

        call(fx, c, "io.iommud.Test.Echo", "{\"seq\":42}", &r);
        assert_null(r.error);
        assert_false(r.continues);
        assert_int_equal(num(r.parameters, "seq"), 42);
        varlink_reply_clear(&r);

        call(fx, c, "io.iommud.Test.Fail", NULL, &r);
        assert_string_equal(r.error, "io.iommud.Test.Failed");
        assert_string_equal(str(r.parameters, "reason"), "asked to");
        varlink_reply_clear(&r);

        call(fx, c, "io.iommud.Test.Errno", NULL, &r);
        assert_string_equal(r.error, "io.iommud.Test.SystemError");
        assert_int_equal(num(r.parameters, "errno"), ENOENT);
        varlink_reply_clear(&r);

        call(fx, c, "io.iommud.Test.Forget", NULL, &r);
        assert_string_equal(r.error, "io.iommud.Test.SystemError");
        assert_int_equal(num(r.parameters, "errno"), EIO);
        varlink_reply_clear(&r);
        assert_int_equal(fx->n_connect, 1);
        assert_int_equal(varlink_server_n_connections(fx->server), 1);
        /* SO_PEERPIDFD where the kernel has it (6.5+): then it names the client, us. */
        if (fx->pidfd_pid != -1)
                assert_int_equal(fx->pidfd_pid, getpid());
}

static void test_unknown_method_and_interface(void **state) {
        Fixture *fx = *state;
        _cleanup_(varlink_client_freep) VarlinkClient *c = client_new(fx);
        VarlinkReply r = VARLINK_REPLY_INIT;

        call(fx, c, "io.iommud.Test.Nope", NULL, &r);
        assert_string_equal(r.error, VARLINK_ERROR_METHOD_NOT_FOUND);
        assert_string_equal(str(r.parameters, "method"), "io.iommud.Test.Nope");
        varlink_reply_clear(&r);

        call(fx, c, "io.nope.Thing.Do", NULL, &r);
        assert_string_equal(r.error, VARLINK_ERROR_INTERFACE_NOT_FOUND);
        assert_string_equal(str(r.parameters, "interface"), "io.nope.Thing");
        varlink_reply_clear(&r);

        call(fx, c, "io.iommud.Test.TakeFd", "{\"fd\":\"zero\"}", &r);
        assert_string_equal(r.error, VARLINK_ERROR_INVALID_PARAMETER);
        assert_string_equal(str(r.parameters, "parameter"), "fd");
        varlink_reply_clear(&r);

        /* The connection survived all of it. */
        call(fx, c, "io.iommud.Test.Echo", NULL, &r);
        assert_null(r.error);
        varlink_reply_clear(&r);
}

static void test_oneway(void **state) {
        Fixture *fx = *state;
        _cleanup_(varlink_client_freep) VarlinkClient *c = client_new(fx);
        VarlinkReply r = VARLINK_REPLY_INIT;

        assert_int_equal(varlink_client_send(c, "io.iommud.Test.Note", NULL, NULL, 0, VARLINK_CLIENT_ONEWAY), 0);
        assert_int_equal(varlink_client_send(c, "io.iommud.Test.Fail", NULL, NULL, 0, VARLINK_CLIENT_ONEWAY), 0);
        assert_int_equal(varlink_client_n_pending(c), 0);
        call(fx, c, "io.iommud.Test.Echo", "{\"seq\":7}", &r);
        /* The first reply on the wire is the Echo's: the oneway calls sent nothing. */
        assert_null(r.error);
        assert_int_equal(num(r.parameters, "seq"), 7);
        assert_int_equal(fx->n_note, 1);
        varlink_reply_clear(&r);
}

static void test_more(void **state) {
        Fixture *fx = *state;
        _cleanup_(varlink_client_freep) VarlinkClient *c = client_new(fx);
        VarlinkReply r = VARLINK_REPLY_INIT;
        json_object *p = json_tokener_parse("{\"n\":3}");

        assert_int_equal(varlink_client_send(c, "io.iommud.Test.Count", p, NULL, 0, VARLINK_CLIENT_MORE), 0);
        for (int i = 0; i < 3; i++) {
                assert_int_equal(wait_reply(fx, c, &r), 1);
                assert_null(r.error);
                assert_true(r.continues);
                assert_int_equal(num(r.parameters, "i"), i);
                varlink_reply_clear(&r);
        }
        assert_int_equal(wait_reply(fx, c, &r), 1);
        assert_false(r.continues);
        assert_null(r.error);
        varlink_reply_clear(&r);

        /* Without "more" the stream is refused, and the server would not let it continue. */
        assert_int_equal(varlink_client_send(c, "io.iommud.Test.Count", p, NULL, 0, 0), 0);
        assert_int_equal(wait_reply(fx, c, &r), 1);
        assert_string_equal(r.error, VARLINK_ERROR_EXPECTED_MORE);
        assert_int_equal(fx->more_without_more, -EPROTO);
        varlink_reply_clear(&r);
        json_object_put(p);
}

static void test_pipelining_order(void **state) {
        Fixture *fx = *state;
        _cleanup_(varlink_client_freep) VarlinkClient *c = client_new(fx);
        VarlinkReply r = VARLINK_REPLY_INIT;

        for (int i = 0; i < 200; i++) {
                json_object *p = json_object_new_object();

                json_util_add(p, "seq", json_object_new_int(i));
                assert_int_equal(varlink_client_send(c, i % 50 == 7 ? "io.iommud.Test.Fail"
                                                                     : "io.iommud.Test.Echo",
                                                     p, NULL, 0, 0),
                                 0);
                json_object_put(p);
        }
        for (int i = 0; i < 200; i++) {
                assert_int_equal(wait_reply(fx, c, &r), 1);
                if (i % 50 == 7)
                        assert_string_equal(r.error, "io.iommud.Test.Failed");
                else
                        assert_int_equal(num(r.parameters, "seq"), i);
                varlink_reply_clear(&r);
        }
        assert_int_equal(varlink_client_n_pending(c), 0);
}

static void test_deferred_reply_holds_the_next_call(void **state) {
        Fixture *fx = *state;
        _cleanup_(varlink_client_freep) VarlinkClient *c = client_new(fx);
        VarlinkReply r = VARLINK_REPLY_INIT;
        json_object *p = json_tokener_parse("{\"seq\":2}");

        assert_int_equal(varlink_client_send(c, "io.iommud.Test.Defer", NULL, NULL, 0, 0), 0);
        assert_int_equal(varlink_client_send(c, "io.iommud.Test.Echo", p, NULL, 0, 0), 0);
        json_object_put(p);
        for (unsigned i = 0; i < 1000; i++)
                pump(fx);
        assert_non_null(fx->deferred);
        /* The Echo waits behind the unanswered call. */
        assert_int_equal(fx->n_echo, 0);
        assert_int_equal(varlink_client_process(c, &r), 0);

        assert_int_equal(varlink_call_reply(fx->deferred, NULL), 0);
        assert_int_equal(varlink_call_reply(fx->deferred, NULL), -EALREADY);
        fx->deferred = varlink_call_unref(fx->deferred);
        assert_int_equal(wait_reply(fx, c, &r), 1);
        assert_null(str(r.parameters, "seq"));
        varlink_reply_clear(&r);
        assert_int_equal(wait_reply(fx, c, &r), 1);
        assert_int_equal(num(r.parameters, "seq"), 2);
        varlink_reply_clear(&r);
}

static void test_disconnect_during_deferred_reply(void **state) {
        Fixture *fx = *state;
        VarlinkClient *c = client_new(fx);

        assert_int_equal(varlink_client_send(c, "io.iommud.Test.Defer", NULL, NULL, 0, 0), 0);
        for (unsigned i = 0; i < PUMP_MAX && !fx->deferred; i++)
                pump(fx);
        assert_non_null(fx->deferred);
        varlink_client_free(c);
        pump_until_disconnects(fx, 1);
        assert_int_equal(varlink_server_n_connections(fx->server), 0);

        /* The call outlived its connection: replying is refused, not a use after free. */
        assert_false(varlink_connection_is_connected(varlink_call_get_connection(fx->deferred)));
        assert_int_equal(varlink_call_reply(fx->deferred, NULL), -ENOTCONN);
        fx->deferred = varlink_call_unref(fx->deferred);
}

static void test_server_freed_before_deferred_call(void **state) {
        Fixture *fx = *state;
        _cleanup_(varlink_client_freep) VarlinkClient *c = client_new(fx);

        assert_int_equal(varlink_client_send(c, "io.iommud.Test.Defer", NULL, NULL, 0, 0), 0);
        for (unsigned i = 0; i < PUMP_MAX && !fx->deferred; i++)
                pump(fx);
        assert_non_null(fx->deferred);
        fx->server = varlink_server_free(fx->server);
        assert_int_equal(fx->n_disconnect, 1);
        assert_int_equal(varlink_call_error(fx->deferred, "io.iommud.Test.Failed", NULL), -ENOTCONN);
        fx->deferred = varlink_call_unref(fx->deferred);
}

static void test_close_from_handler_sends_reply_first(void **state) {
        Fixture *fx = *state;
        _cleanup_(varlink_client_freep) VarlinkClient *c = client_new(fx);
        VarlinkReply r = VARLINK_REPLY_INIT;

        call(fx, c, "io.iommud.Test.Bye", NULL, &r);
        assert_null(r.error);
        varlink_reply_clear(&r);
        assert_true(wait_reply(fx, c, &r) < 0);
        assert_int_equal(fx->n_disconnect, 1);
}

static unsigned count_open_fds(void) {
        DIR *d = opendir("/proc/self/fd");
        struct dirent *de;
        unsigned n = 0;

        assert_non_null(d);
        while ((de = readdir(d)))
                if (de->d_name[0] != '.')
                        n++;
        closedir(d);
        return n;
}

static void test_fds(void **state) {
        Fixture *fx = *state;
        _cleanup_(varlink_client_freep) VarlinkClient *c = client_new(fx);
        VarlinkReply r = VARLINK_REPLY_INIT;
        struct stat st;
        int p[2], baseline, fd;
        json_object *params;

        /* Warm up the connection so that its buffers exist before counting. */
        call(fx, c, "io.iommud.Test.Echo", NULL, &r);
        varlink_reply_clear(&r);

        assert_int_equal(pipe2(p, O_CLOEXEC), 0);
        assert_int_equal(fstat(p[1], &st), 0);
        baseline = (int)count_open_fds();

        params = json_tokener_parse("{\"fd\":1}");
        assert_int_equal(varlink_client_send(c, "io.iommud.Test.TakeFd", params, p, 2, 0), 0);
        json_object_put(params);
        assert_int_equal(wait_reply(fx, c, &r), 1);
        assert_null(r.error);
        assert_int_equal(num(r.parameters, "ino"), (int64_t)st.st_ino);
        varlink_reply_clear(&r);

        /* Fds sent to a method that takes none, and to an index that does not exist. */
        assert_int_equal(varlink_client_send(c, "io.iommud.Test.Echo", NULL, p, 2, 0), 0);
        assert_int_equal(wait_reply(fx, c, &r), 1);
        varlink_reply_clear(&r);
        params = json_tokener_parse("{\"fd\":5}");
        assert_int_equal(varlink_client_send(c, "io.iommud.Test.TakeFd", params, p, 1, 0), 0);
        json_object_put(params);
        assert_int_equal(wait_reply(fx, c, &r), 1);
        assert_string_equal(r.error, "io.iommud.Test.InvalidFd");
        varlink_reply_clear(&r);
        /* Everything the server received and nobody kept is closed again. */
        assert_int_equal((int)count_open_fds(), baseline);

        call(fx, c, "io.iommud.Test.SendFd", NULL, &r);
        assert_int_equal(fdlist_count(r.fds), 1);
        fd = fdlist_get(r.fds, (size_t)num(r.parameters, "fd"));
        assert_true(fd >= 0);
        assert_int_equal(fstat(fd, &st), 0);
        assert_true(S_ISFIFO(st.st_mode));
        varlink_reply_clear(&r);
        assert_int_equal((int)count_open_fds(), baseline);
        safe_close(p[0]);
        safe_close(p[1]);
}

static const char *invalid_parameter(const VarlinkReply *r) {
        const char *name = NULL;

        assert_string_equal(r->error, VARLINK_ERROR_INVALID_PARAMETER);
        assert_int_equal(json_util_get_string(r->parameters, "parameter", 0, &name, NULL), 0);
        return name;
}

/* varlink_call_dispatch() takes the fds its table names, and closes them again on a refusal. */
static void test_dispatch_takes_fds(void **state) {
        static const struct {
                const char *params, *refused;
        } cases[] = {
                { "{\"a\":0,\"b\":1}", NULL },
                { "{\"a\":1}", NULL },
                { "{\"a\":0,\"b\":2}", "b" },  /* not sent: a's fd goes again */
                { "{\"a\":0,\"b\":0}", "b" },  /* taken twice */
                { "{\"b\":0}", "a" },
                { "{\"a\":-1}", "a" },
                { "{\"a\":0,\"c\":1}", "c" },
        };
        Fixture *fx = *state;
        _cleanup_(varlink_client_freep) VarlinkClient *c = client_new(fx);
        VarlinkReply r = VARLINK_REPLY_INIT;
        struct stat sa, sb;
        int p[2], baseline;

        call(fx, c, "io.iommud.Test.Echo", NULL, &r);
        varlink_reply_clear(&r);
        assert_int_equal(pipe2(p, O_CLOEXEC), 0);
        assert_int_equal(fstat(p[0], &sa), 0);
        assert_int_equal(fstat(p[1], &sb), 0);
        baseline = (int)count_open_fds();

        for (size_t i = 0; i < 2 * ELEMENTSOF(cases); i++) {
                const typeof(cases[0]) *t = &cases[i % ELEMENTSOF(cases)];
                json_object *params = json_tokener_parse(t->params);

                assert_int_equal(varlink_client_send(c,
                                                     i < ELEMENTSOF(cases)
                                                             ? "io.iommud.Test.TakeTwoFds"
                                                             : "io.iommud.Test.TakeTwoFdsStreamed",
                                                     params, p, 2, 0),
                                 0);
                json_object_put(params);
                assert_int_equal(wait_reply(fx, c, &r), 1);
                if (t->refused)
                        assert_string_equal(invalid_parameter(&r), t->refused);
                else {
                        assert_null(r.error);
                        assert_int_equal(num(r.parameters, "a"),
                                         (int64_t)(t->params[5] == '0' ? sa : sb).st_ino);
                }
                varlink_reply_clear(&r);
                assert_int_equal((int)count_open_fds(), baseline);
        }
        safe_close(p[0]);
        safe_close(p[1]);
}

static void send_raw(int fd, const void *data, size_t n, const int *fds, size_t n_fds) {
        union {
                struct cmsghdr align;
                char buf[CMSG_SPACE(sizeof(int) * 8)];
        } control = {};
        struct iovec iov = { .iov_base = (void *)data, .iov_len = n };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };

        if (n_fds > 0) {
                struct cmsghdr *cm;

                mh.msg_control = control.buf;
                mh.msg_controllen = CMSG_SPACE(sizeof(int) * n_fds);
                cm = CMSG_FIRSTHDR(&mh);
                cm->cmsg_level = SOL_SOCKET;
                cm->cmsg_type = SCM_RIGHTS;
                cm->cmsg_len = CMSG_LEN(sizeof(int) * n_fds);
                memcpy(CMSG_DATA(cm), fds, sizeof(int) * n_fds);
        }
        assert_int_equal(sendmsg(fd, &mh, MSG_NOSIGNAL), (ssize_t)n);
}

/*
 * A streamed method reads what json-c reads, whichever reader takes the message: plain JSON
 * goes through the streaming reader, a member given twice (the last value counts) or a NaN
 * through json-c.
 */
static void test_streamed_method_reads_like_json_c(void **state) {
        static const char *const messages[] = {
                "{\"method\":\"io.iommud.Test.TakeTwoFdsStreamed\",\"parameters\":{\"a\":1}}",
                "{\"method\":\"io.iommud.Test.TakeTwoFdsStreamed\",\"parameters\":{\"a\":0,"
                "\"a\":1}}",
                "{\"method\":\"io.iommud.Test.TakeTwoFdsStreamed\",\"parameters\":{\"a\":1},"
                "\"note\":NaN}",
        };
        Fixture *fx = *state;
        VarlinkReply r = VARLINK_REPLY_INIT;
        struct stat sb;
        int p[2];

        assert_int_equal(pipe2(p, O_CLOEXEC), 0);
        assert_int_equal(fstat(p[1], &sb), 0);
        FOREACH_ARRAY(m, messages, ELEMENTSOF(messages)) {
                _cleanup_(varlink_client_freep) VarlinkClient *c = client_new(fx);

                send_raw(varlink_client_get_fd(c), *m, strlen(*m) + 1, p, 2);
                assert_int_equal(wait_reply(fx, c, &r), 1);
                assert_null(r.error);
                assert_int_equal(num(r.parameters, "a"), (int64_t)sb.st_ino);
                varlink_reply_clear(&r);
        }
        safe_close(p[0]);
        safe_close(p[1]);
}

/*
 * The server compares a streamed call's method with the last one's in place: a name that
 * only starts like it, or that it starts like, is another method (or none), and the method
 * after them is still found.
 */
static void test_streamed_method_named_again(void **state) {
        static const struct {
                const char *method;
                const char *error; /* NULL: the call succeeds */
        } calls[] = {
                { "io.iommud.Test.TakeTwoFdsStreamed", NULL },
                { "io.iommud.Test.TakeTwoFdsStreamedX", "org.varlink.service.MethodNotFound" },
                { "io.iommud.Test.TakeTwoFdsStreamed", NULL },
                { "io.iommud.Test.TakeTwoFds", NULL },
                { "io.iommud.Test.TakeTwoFdsStreame", "org.varlink.service.MethodNotFound" },
                { "io.iommud.Test.TakeTwoFdsStreamed", NULL },
        };
        Fixture *fx = *state;
        _cleanup_(varlink_client_freep) VarlinkClient *c = client_new(fx);
        VarlinkReply r = VARLINK_REPLY_INIT;
        struct stat sb;
        int p[2];

        assert_int_equal(pipe2(p, O_CLOEXEC), 0);
        assert_int_equal(fstat(p[1], &sb), 0);
        FOREACH_ARRAY(k, calls, ELEMENTSOF(calls)) {
                char text[256];

                snprintf(text, sizeof(text), "{\"method\":\"%s\",\"parameters\":{\"a\":1}}",
                         k->method);
                send_raw(varlink_client_get_fd(c), text, strlen(text) + 1, p, 2);
                assert_int_equal(wait_reply(fx, c, &r), 1);
                if (k->error)
                        assert_string_equal(r.error, k->error);
                else {
                        assert_null(r.error);
                        assert_int_equal(num(r.parameters, "a"), (int64_t)sb.st_ino);
                }
                varlink_reply_clear(&r);
        }
        safe_close(p[0]);
        safe_close(p[1]);
}

static void test_malformed_frames_drop_only_that_client(void **state) {
        static const struct {
                const char *data;
                size_t n_fds;
        } cases[] = {
                { "{\"method\":", 0 },
                { "not json", 0 },
                { "[\"io.iommud.Test.Echo\"]", 0 },
                { "{\"parameters\":{}}", 0 },
                { "{\"method\":42}", 0 },
                { "{\"method\":\"io.iommud.Test.Echo\",\"parameters\":[]}", 0 },
                { "{\"method\":\"io.iommud.Test.Echo\",\"oneway\":\"yes\"}", 0 },
                { "{\"method\":\"io.iommud.Test.Echo\",\"more\":1}", 0 },
                { "{\"method\":\"io.iommud.Test.Echo\",\"more\":true,\"oneway\":true}", 0 },
                { "{\"method\":\"io.iommud.Test.Echo\"}", 5 },          /* too many fds */
                { NULL, 0 },                                            /* oversize */
        };
        Fixture *fx = *state;
        VarlinkLimits limits = VARLINK_LIMITS_DEFAULT;
        _cleanup_(varlink_client_freep) VarlinkClient *good = NULL;
        _cleanup_free_ char *big = malloc(8192);
        VarlinkReply r = VARLINK_REPLY_INIT;
        unsigned n = 0;
        int fds[5];

        limits.max_message_bytes = 4096;
        limits.max_fds_per_message = 4;
        fixture_start(fx, &limits);
        good = client_new(fx);
        memset(big, ' ', 8191);
        big[0] = '{';
        big[8190] = '}';
        big[8191] = 0;
        for (int i = 0; i < 5; i++)
                fds[i] = dup(STDERR_FILENO);

        FOREACH_ARRAY(t, cases, ELEMENTSOF(cases)) {
                VarlinkClient *bad = client_new(fx);
                const char *data = t->data ?: big;

                call(fx, good, "io.iommud.Test.Echo", NULL, &r);
                varlink_reply_clear(&r);
                send_raw(varlink_client_get_fd(bad), data, strlen(data) + 1, fds, t->n_fds);
                if (wait_reply(fx, bad, &r) >= 0)
                        fail_msg("'%.40s' did not disconnect the client", data);
                varlink_client_free(bad);
                pump_until_disconnects(fx, ++n);
                /* The well-behaved client is unaffected. */
                call(fx, good, "io.iommud.Test.Echo", "{\"seq\":1}", &r);
                assert_int_equal(num(r.parameters, "seq"), 1);
                varlink_reply_clear(&r);
        }
        for (int i = 0; i < 5; i++)
                safe_close(fds[i]);
}

static void test_on_connect_refuses(void **state) {
        Fixture *fx = *state;
        _cleanup_(varlink_client_freep) VarlinkClient *c = NULL;
        VarlinkReply r = VARLINK_REPLY_INIT;

        fx->refuse = true;
        c = client_new(fx);
        assert_int_equal(varlink_client_send(c, "io.iommud.Test.Echo", NULL, NULL, 0, 0), 0);
        assert_true(wait_reply(fx, c, &r) < 0);
        /* Refused connections never reach on_disconnect. */
        assert_int_equal(fx->n_connect, 0);
        assert_int_equal(fx->n_disconnect, 0);
        assert_int_equal(varlink_server_n_connections(fx->server), 0);
}

static void test_half_close_still_gets_replies(void **state) {
        Fixture *fx = *state;
        _cleanup_(varlink_client_freep) VarlinkClient *c = client_new(fx);
        VarlinkReply r = VARLINK_REPLY_INIT;
        json_object *p = json_tokener_parse("{\"seq\":5}");

        assert_int_equal(varlink_client_send(c, "io.iommud.Test.Echo", p, NULL, 0, 0), 0);
        json_object_put(p);
        assert_int_equal(shutdown(varlink_client_get_fd(c), SHUT_WR), 0);
        assert_int_equal(wait_reply(fx, c, &r), 1);
        assert_int_equal(num(r.parameters, "seq"), 5);
        varlink_reply_clear(&r);
        assert_true(wait_reply(fx, c, &r) < 0);
        pump_until_disconnects(fx, 1);
}

static void test_service_interface(void **state) {
        Fixture *fx = *state;
        _cleanup_(varlink_client_freep) VarlinkClient *c = client_new(fx);
        VarlinkReply r = VARLINK_REPLY_INIT;
        json_object *list;

        call(fx, c, "org.varlink.service.GetInfo", NULL, &r);
        assert_null(r.error);
        assert_string_equal(str(r.parameters, "vendor"), "iommud");
        assert_string_equal(str(r.parameters, "product"), "iommud");
        assert_string_equal(str(r.parameters, "version"), PACKAGE_VERSION);
        assert_non_null(str(r.parameters, "url"));
        assert_true(json_object_object_get_ex(r.parameters, "interfaces", &list));
        assert_int_equal(json_object_array_length(list), 2);
        assert_string_equal(json_object_get_string(json_object_array_get_idx(list, 0)),
                            "org.varlink.service");
        assert_string_equal(json_object_get_string(json_object_array_get_idx(list, 1)),
                            "io.iommud.Test");
        varlink_reply_clear(&r);

        call(fx, c, "org.varlink.service.GetInterfaceDescription", "{\"interface\":\"io.iommud.Test\"}", &r);
        assert_null(r.error);
        assert_string_equal(str(r.parameters, "description"), test_idl);
        varlink_reply_clear(&r);

        call(fx, c, "org.varlink.service.GetInterfaceDescription",
             "{\"interface\":\"org.varlink.service\"}", &r);
        assert_null(r.error);
        assert_non_null(strstr(str(r.parameters, "description"), "method GetInfo()"));
        varlink_reply_clear(&r);

        call(fx, c, "org.varlink.service.GetInterfaceDescription", "{\"interface\":\"io.nope\"}", &r);
        assert_string_equal(r.error, VARLINK_ERROR_INTERFACE_NOT_FOUND);
        varlink_reply_clear(&r);

        call(fx, c, "org.varlink.service.GetInterfaceDescription", NULL, &r);
        assert_string_equal(r.error, VARLINK_ERROR_INVALID_PARAMETER);
        assert_string_equal(str(r.parameters, "parameter"), "interface");
        varlink_reply_clear(&r);
}

static void test_listen_unix_stale_and_live(void **state) {
        Fixture *fx = *state;
        char path[192];
        int fd, fd2;

        /* The fixture's socket is live: not stolen. */
        assert_int_equal(varlink_server_listen_unix(fx->path, 0600), -EADDRINUSE);

        snprintf(path, sizeof(path), "%s/stale", fx->dir);
        fd = varlink_server_listen_unix(path, 0600);
        assert_true(fd >= 0);
        safe_close(fd);
        /* Nobody listens any more: the old file is replaced. */
        fd2 = varlink_server_listen_unix(path, 0640);
        assert_true(fd2 >= 0);
        struct stat st;
        assert_int_equal(stat(path, &st), 0);
        assert_int_equal(st.st_mode & 0777, 0640);
        safe_close(fd2);
        unlink(path);

        snprintf(path, sizeof(path), "%s/file", fx->dir);
        fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
        safe_close(fd);
        assert_int_equal(varlink_server_listen_unix(path, 0600), -EEXIST);
        unlink(path);
}

/* The blocking client against a server running its loop in another thread. */
typedef struct ThreadCtx {
        Fixture *fx;
        int stop[2];
} ThreadCtx;

static void on_stop(evutil_socket_t fd, short what, void *userdata) {
        event_base_loopbreak(userdata);
}

static void *server_thread(void *userdata) {
        ThreadCtx *t = userdata;
        struct event *ev = event_new(t->fx->base, t->stop[0], EV_READ, on_stop, t->fx->base);

        event_add(ev, NULL);
        event_base_dispatch(t->fx->base);
        event_free(ev);
        return NULL;
}

static void test_blocking_client_in_thread(void **state) {
        Fixture *fx = *state;
        ThreadCtx t = { .fx = fx };
        VarlinkClient *c;
        VarlinkReply r = VARLINK_REPLY_INIT;
        json_object *p = json_tokener_parse("{\"seq\":99}");
        pthread_t th;
        int results[3] = {};
        int64_t seq = 0;
        bool more_ok = true;

        assert_int_equal(pipe2(t.stop, O_CLOEXEC), 0);
        assert_int_equal(pthread_create(&th, NULL, server_thread, &t), 0);

        /* No cmocka asserts while the server thread runs: collect, then check. */
        c = NULL;
        results[0] = varlink_client_connect(&c, fx->path);
        if (results[0] == 0) {
                results[1] = varlink_client_call(c, "io.iommud.Test.Echo", p, NULL, 0, &r);
                if (results[1] == 0 && !r.error)
                        seq = json_object_get_int64(json_object_object_get(r.parameters, "seq"));
                varlink_reply_clear(&r);
                json_object_put(p);
                p = json_tokener_parse("{\"n\":5}");
                results[2] = varlink_client_send(c, "io.iommud.Test.Count", p, NULL, 0, VARLINK_CLIENT_MORE);
                for (int i = 0; results[2] == 0; i++) {
                        results[2] = varlink_client_wait(c, -1, &r);
                        if (results[2] < 0)
                                break;
                        if (!r.continues) {
                                more_ok = more_ok && i == 5 && !r.error;
                                varlink_reply_clear(&r);
                                break;
                        }
                        more_ok = more_ok && json_object_get_int64(json_object_object_get(r.parameters, "i")) == i;
                        varlink_reply_clear(&r);
                }
                varlink_client_free(c);
        }
        json_object_put(p);
        assert_int_equal(write(t.stop[1], "x", 1), 1);
        pthread_join(th, NULL);
        safe_close(t.stop[0]);
        safe_close(t.stop[1]);

        assert_int_equal(results[0], 0);
        assert_int_equal(results[1], 0);
        assert_int_equal(seq, 99);
        assert_int_equal(results[2], 0);
        assert_true(more_ok);
        pump_until_disconnects(fx, 1);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_method_call_and_error, setup, teardown),
                cmocka_unit_test_setup_teardown(test_unknown_method_and_interface, setup, teardown),
                cmocka_unit_test_setup_teardown(test_oneway, setup, teardown),
                cmocka_unit_test_setup_teardown(test_more, setup, teardown),
                cmocka_unit_test_setup_teardown(test_pipelining_order, setup, teardown),
                cmocka_unit_test_setup_teardown(test_deferred_reply_holds_the_next_call, setup, teardown),
                cmocka_unit_test_setup_teardown(test_disconnect_during_deferred_reply, setup, teardown),
                cmocka_unit_test_setup_teardown(test_server_freed_before_deferred_call, setup, teardown),
                cmocka_unit_test_setup_teardown(test_close_from_handler_sends_reply_first, setup, teardown),
                cmocka_unit_test_setup_teardown(test_fds, setup, teardown),
                cmocka_unit_test_setup_teardown(test_dispatch_takes_fds, setup, teardown),
                cmocka_unit_test_setup_teardown(test_streamed_method_reads_like_json_c, setup, teardown),
                cmocka_unit_test_setup_teardown(test_streamed_method_named_again, setup, teardown),
                cmocka_unit_test_setup_teardown(test_malformed_frames_drop_only_that_client, setup, teardown),
                cmocka_unit_test_setup_teardown(test_on_connect_refuses, setup, teardown),
                cmocka_unit_test_setup_teardown(test_half_close_still_gets_replies, setup, teardown),
                cmocka_unit_test_setup_teardown(test_service_interface, setup, teardown),
                cmocka_unit_test_setup_teardown(test_listen_unix_stale_and_live, setup, teardown),
                cmocka_unit_test_setup_teardown(test_blocking_client_in_thread, setup, teardown),
        };

        return cmocka_run_group_tests_name("varlink-server", tests, NULL, NULL);
}
