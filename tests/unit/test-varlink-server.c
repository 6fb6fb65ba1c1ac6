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
#include "varlink-server.h"

#define PUMP_MAX 200000U

typedef struct Fixture {
        struct event_base *base;
        VarlinkServer *server;
        char dir[64];
        char path[128];

        unsigned n_connect, n_disconnect, n_echo, n_note, n_big;
        int pidfd_pid; /* the pid the last connection's pidfd names, -1 without pidfd */
        bool refuse;
        const struct ucred *as;  /* the credentials connections are added with, NULL: peer's */
        VarlinkCall *deferred;
        int more_without_more;
} Fixture;

static const char test_idl[] =
        "interface io.iommud.Test\n"
        "method Echo(seq: ?int) -> (seq: ?int)\n"
        "method Fail() -> ()\n"
        "method Count(n: int) -> (i: int)\n"
        "method Defer() -> ()\n"
        "method Note() -> ()\n"
        "method TakeFd(fd: int) -> (ino: int)\n"
        "method TakeTwoFds(a: int, b: ?int) -> (a: int, b: ?int)\n"
        "method SendFd() -> (fd: int)\n"
        "method Big(seq: int, bytes: int) -> (seq: int, data: string)\n"
        "method Errno() -> ()\n"
        "method Forget() -> ()\n"
        "method Bye() -> ()\n"
        "error Failed (reason: string)\n"
        "error InvalidFd (reason: string)\n"
        "error SystemError (errno: int, message: string)\n";

static int m_echo(VarlinkCall *call, json_object *params, VarlinkCallFlags flags, void *userdata) {
        Fixture *fx = userdata;

        fx->n_echo++;
        return varlink_call_reply(call, json_object_get(params));
}

static int m_fail(VarlinkCall *call, json_object *params, VarlinkCallFlags flags, void *userdata) {
        json_object *p = json_object_new_object();

        json_util_add(p, "reason", json_object_new_string("asked to"));
        return varlink_call_error(call, "io.iommud.Test.Failed", p);
}

static int m_count(VarlinkCall *call, json_object *params, VarlinkCallFlags flags, void *userdata) {
        Fixture *fx = userdata;
        uint64_t n;
        int r;

        if (!(flags & VARLINK_CALL_MORE)) {
                fx->more_without_more = varlink_call_reply_more(call, NULL);
                return varlink_call_error(call, VARLINK_ERROR_EXPECTED_MORE, NULL);
        }
        if (json_util_get_u64(params, "n", 0, &n, NULL) < 0)
                return varlink_call_error_invalid_parameter(call, "n");
        for (uint64_t i = 0; i < n; i++) {
                char text[64];

                /* Odd records go out as preformatted text; the client must not tell. */
                if (i % 2 == 1)
                        r = varlink_call_reply_more_text(
                                call, text,
                                (size_t)snprintf(text, sizeof(text), "{\"i\":%" PRIu64 "}", i));
                else {
                        json_object *p = json_object_new_object();

                        json_util_add(p, "i", json_object_new_int64((int64_t)i));
                        r = varlink_call_reply_more(call, p);
                }
                if (r < 0)
                        return r;
        }
        return varlink_call_reply(call, NULL);
}

static int m_defer(VarlinkCall *call, json_object *params, VarlinkCallFlags flags, void *userdata) {
        Fixture *fx = userdata;

        fx->deferred = varlink_call_ref(call);
        return 0;
}

static int m_note(VarlinkCall *call, json_object *params, VarlinkCallFlags flags, void *userdata) {
        Fixture *fx = userdata;

        fx->n_note++;
        return varlink_call_reply(call, NULL);
}

static int m_take_fd(VarlinkCall *call, json_object *params, VarlinkCallFlags flags, void *userdata) {
        _cleanup_close_ int fd = -EBADF;
        json_object *p;
        struct stat st;
        uint64_t index;

        if (json_util_get_u64(params, "fd", 0, &index, NULL) < 0)
                return varlink_call_error_invalid_parameter(call, "fd");
        if (varlink_call_take_fd(call, index, &fd) < 0) {
                p = json_object_new_object();
                json_util_add(p, "reason", json_object_new_string("no fd at that index"));
                return varlink_call_error(call, "io.iommud.Test.InvalidFd", p);
        }
        if (fstat(fd, &st) < 0)
                return -errno;
        p = json_object_new_object();
        json_util_add(p, "ino", json_object_new_int64((int64_t)st.st_ino));
        return varlink_call_reply(call, p);
}

typedef struct TwoFds {
        JsonDispatchFd a, b;
} TwoFds;

static const JsonDispatchField take_two_fds_parameters[] = {
        { "a", JSON_DISPATCH_FD_INDEX, JSON_DISPATCH_REQUIRED, offsetof(TwoFds, a) },
        { "b", JSON_DISPATCH_FD_INDEX, JSON_DISPATCH_NULLABLE, offsetof(TwoFds, b) },
        {},
};

/* Decodes with its table, which takes the fds: the reply gives their inode numbers. */
static int m_take_two_fds(VarlinkCall *call, json_object *params, VarlinkCallFlags flags,
                          void *userdata) {
        _cleanup_close_ int a = -EBADF, b = -EBADF;
        TwoFds p = {};
        struct stat st;
        json_object *out;
        int r;

        r = varlink_call_dispatch(call, params, take_two_fds_parameters, &p);
        if (r < 0)
                return r;
        a = p.a.fd;
        b = p.b.fd;
        out = json_object_new_object();
        if (fstat(a, &st) >= 0)
                json_util_add(out, "a", json_object_new_int64((int64_t)st.st_ino));
        if (b >= 0 && fstat(b, &st) >= 0)
                json_util_add(out, "b", json_object_new_int64((int64_t)st.st_ino));
        return varlink_call_reply(call, out);
}

static int m_send_fd(VarlinkCall *call, json_object *params, VarlinkCallFlags flags, void *userdata) {
        int fds[2];
        json_object *p;

        if (pipe2(fds, O_CLOEXEC) < 0)
                return -errno;
        safe_close(fds[1]);
        p = json_object_new_object();
        json_util_add(p, "fd", json_object_new_int(0));
        return varlink_call_reply_with_fds(call, p, fds, 1);
}

static int m_big(VarlinkCall *call, json_object *params, VarlinkCallFlags flags, void *userdata) {
        Fixture *fx = userdata;
        _cleanup_free_ char *data = NULL;
        json_object *p;
        uint64_t seq, bytes;

        fx->n_big++;
        assert_int_equal(json_util_get_u64(params, "seq", 0, &seq, NULL), 0);
        assert_int_equal(json_util_get_u64(params, "bytes", 0, &bytes, NULL), 0);
        data = malloc(bytes + 1);
        memset(data, 'b', bytes);
        data[bytes] = 0;
        p = json_object_new_object();
        json_util_add(p, "seq", json_object_new_int64((int64_t)seq));
        json_util_add(p, "data", json_object_new_string(data));
        return varlink_call_reply(call, p);
}

static int m_errno(VarlinkCall *call, json_object *params, VarlinkCallFlags flags, void *userdata) {
        return -ENOENT;
}

static int m_forget(VarlinkCall *call, json_object *params, VarlinkCallFlags flags, void *userdata) {
        return 0;
}

static int m_bye(VarlinkCall *call, json_object *params, VarlinkCallFlags flags, void *userdata) {
        int r = varlink_call_reply(call, NULL);

        varlink_connection_close(varlink_call_get_connection(call));
        return r;
}

static const VarlinkMethod test_methods[] = {
        { "Echo", m_echo },     { "Fail", m_fail },     { "Count", m_count },   { "Defer", m_defer },
        { "Note", m_note },     { "TakeFd", m_take_fd }, { "SendFd", m_send_fd }, { "Big", m_big },
        { "TakeTwoFds", m_take_two_fds, take_two_fds_parameters },
        { "Errno", m_errno },   { "Forget", m_forget }, { "Bye", m_bye },       {},
};

static const VarlinkInterface test_interface = {
        .name = "io.iommud.Test",
        .description = test_idl,
        .methods = test_methods,
        .errno_error = "io.iommud.Test.SystemError",
};

/* The "Pid:" line of a pidfd's fdinfo. */
static int pidfd_pid(int pidfd) {
        char path[64], line[256];
        FILE *f;
        int pid = -1;

        snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", pidfd);
        f = fopen(path, "re");
        assert_non_null(f);
        while (fgets(line, sizeof(line), f))
                if (sscanf(line, "Pid: %d", &pid) == 1)
                        break;
        fclose(f);
        return pid;
}

static int on_connect(VarlinkServer *s, VarlinkConnection *c, const struct ucred *cred, int pidfd,
                      void *userdata) {
        Fixture *fx = userdata;

        if (fx->refuse)
                return -EPERM;
        fx->n_connect++;
        assert_int_equal(cred->uid, fx->as ? fx->as->uid : getuid());
        assert_int_equal(cred->pid, fx->as ? fx->as->pid : getpid());
        varlink_connection_set_userdata(c, fx);
        assert_int_equal(varlink_connection_get_pidfd(c), pidfd >= 0 ? pidfd : -EBADF);
        fx->pidfd_pid = pidfd >= 0 ? pidfd_pid(pidfd) : -1;
        return 0;
}

static void on_disconnect(VarlinkServer *s, VarlinkConnection *c, void *userdata) {
        Fixture *fx = userdata;

        assert_ptr_equal(varlink_connection_get_userdata(c), fx);
        fx->n_disconnect++;
}

static void fixture_start(Fixture *fx, const VarlinkLimits *limits) {
        int fd;

        varlink_server_free(fx->server);
        assert_int_equal(varlink_server_new(&fx->server, fx->base, limits), 0);
        varlink_server_set_userdata(fx->server, fx);
        varlink_server_set_hooks(fx->server, on_connect, on_disconnect);
        assert_int_equal(varlink_server_add_interface(fx->server, &test_interface), 0);
        assert_int_equal(varlink_server_add_interface(fx->server, &test_interface), -EEXIST);
        fd = varlink_server_listen_unix(fx->path, 0666);
        assert_true(fd >= 0);
        assert_int_equal(varlink_server_listen_fd(fx->server, fd), 0);
}

static int setup(void **state) {
        Fixture *fx = calloc(1, sizeof(*fx));

        assert_non_null(fx);
        fx->base = event_base_new();
        assert_non_null(fx->base);
        snprintf(fx->dir, sizeof(fx->dir), "/tmp/iommud-test-XXXXXX");
        assert_non_null(mkdtemp(fx->dir));
        snprintf(fx->path, sizeof(fx->path), "%s/sock", fx->dir);
        fixture_start(fx, NULL);
        *state = fx;
        return 0;
}

static int teardown(void **state) {
        Fixture *fx = *state;

        varlink_call_unref(fx->deferred);
        varlink_server_free(fx->server);
        /* Every connection that was accepted was reported gone exactly once. */
        assert_int_equal(fx->n_connect, fx->n_disconnect);
        event_base_free(fx->base);
        unlink(fx->path);
        rmdir(fx->dir);
        free(fx);
        return 0;
}

static void pump(Fixture *fx) {
        assert_true(event_base_loop(fx->base, EVLOOP_NONBLOCK) >= 0);
}

static VarlinkClient *client_new(Fixture *fx) {
        VarlinkClient *c = NULL;

        assert_int_equal(varlink_client_connect(&c, fx->path), 0);
        return c;
}

/* Pumps the server until the client has a reply (1) or an error (negative). */
static int wait_reply(Fixture *fx, VarlinkClient *c, VarlinkReply *reply) {
        for (unsigned i = 0; i < PUMP_MAX; i++) {
                int k = varlink_client_process(c, reply);

                if (k != 0)
                        return k;
                pump(fx);
        }
        fail_msg("no reply from the server");
        return 0;
}

static void call(Fixture *fx, VarlinkClient *c, const char *method, const char *params_json,
                 VarlinkReply *reply) {
        json_object *params = params_json ? json_tokener_parse(params_json) : NULL;

        assert_int_equal(varlink_client_send(c, method, params, NULL, 0, 0), 0);
        json_object_put(params);
        assert_int_equal(wait_reply(fx, c, reply), 1);
}

static const char *str(json_object *o, const char *key) {
        json_object *v;

        if (!json_object_object_get_ex(o, key, &v))
                return NULL;
        return json_object_get_string(v);
}

static int64_t num(json_object *o, const char *key) {
        json_object *v;

        assert_true(json_object_object_get_ex(o, key, &v));
        return json_object_get_int64(v);
}

static void pump_until_disconnects(Fixture *fx, unsigned n) {
        for (unsigned i = 0; i < PUMP_MAX && fx->n_disconnect < n; i++)
                pump(fx);
        assert_int_equal(fx->n_disconnect, n);
}

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

        FOREACH_ARRAY(t, cases, ELEMENTSOF(cases)) {
                json_object *params = json_tokener_parse(t->params);

                assert_int_equal(varlink_client_send(c, "io.iommud.Test.TakeTwoFds", params, p, 2,
                                                     0),
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

static void test_per_uid_limit(void **state) {
        Fixture *fx = *state;
        VarlinkLimits limits = VARLINK_LIMITS_DEFAULT;
        VarlinkClient *c[3];
        VarlinkReply r = VARLINK_REPLY_INIT;

        limits.max_connections_per_uid = 2;
        fixture_start(fx, &limits);
        for (int i = 0; i < 3; i++)
                c[i] = client_new(fx);
        call(fx, c[0], "io.iommud.Test.Echo", NULL, &r);
        varlink_reply_clear(&r);
        call(fx, c[1], "io.iommud.Test.Echo", NULL, &r);
        varlink_reply_clear(&r);
        /* The third of the same uid is accepted and closed at once. */
        (void)varlink_client_send(c[2], "io.iommud.Test.Echo", NULL, NULL, 0, 0);
        assert_true(wait_reply(fx, c[2], &r) < 0);
        assert_int_equal(fx->n_connect, 2);
        assert_int_equal(varlink_server_n_connections(fx->server), 2);

        /* Once one goes, the uid may connect again. */
        varlink_client_free(c[0]);
        pump_until_disconnects(fx, 1);
        varlink_client_free(c[2]);
        c[2] = client_new(fx);
        call(fx, c[2], "io.iommud.Test.Echo", NULL, &r);
        assert_null(r.error);
        varlink_reply_clear(&r);
        varlink_client_free(c[1]);
        varlink_client_free(c[2]);
}

/* A connection served on someone's behalf counts against their uid, not the peer's. */
static void test_per_uid_limit_on_behalf(void **state) {
        Fixture *fx = *state;
        VarlinkLimits limits = VARLINK_LIMITS_DEFAULT;
        const struct ucred as = { .pid = 4242, .uid = 4242, .gid = 4242 };
        VarlinkReply r = VARLINK_REPLY_INIT;
        VarlinkClient *own[2];
        int peers[3];

        limits.max_connections_per_uid = 2;
        fixture_start(fx, &limits);
        fx->as = &as;
        for (int i = 0; i < 3; i++) {
                VarlinkConnection *c = NULL;
                int sv[2];

                assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
                peers[i] = sv[1];
                if (i == 2) {
                        /* The third for 4242 is refused, and its fd closed. */
                        assert_int_equal(varlink_server_add_connection_as(fx->server, sv[0], &as,
                                                                          &c),
                                         -EDQUOT);
                        continue;
                }
                assert_int_equal(varlink_server_add_connection_as(fx->server, sv[0], &as, &c), 0);
                assert_int_equal(varlink_connection_get_ucred(c)->uid, 4242);
                assert_int_equal(varlink_connection_get_ucred(c)->gid, 4242);
                /* The socket's peer is this process, not the client: no pidfd. */
                assert_int_equal(varlink_connection_get_pidfd(c), -EBADF);
        }
        assert_int_equal(fx->n_connect, 2);
        fx->as = NULL;

        /* This process's own uid still has its two. */
        for (int i = 0; i < 2; i++) {
                own[i] = client_new(fx);
                call(fx, own[i], "io.iommud.Test.Echo", NULL, &r);
                assert_null(r.error);
                varlink_reply_clear(&r);
        }
        assert_int_equal(varlink_server_n_connections(fx->server), 4);
        for (int i = 0; i < 2; i++)
                varlink_client_free(own[i]);
        for (int i = 0; i < 3; i++)
                close(peers[i]);
        pump_until_disconnects(fx, 4);
}

static void test_total_limit(void **state) {
        Fixture *fx = *state;
        VarlinkLimits limits = VARLINK_LIMITS_DEFAULT;
        VarlinkClient *c[3];
        VarlinkReply r = VARLINK_REPLY_INIT;

        limits.max_connections = 2;
        fixture_start(fx, &limits);
        for (int i = 0; i < 2; i++) {
                c[i] = client_new(fx);
                call(fx, c[i], "io.iommud.Test.Echo", NULL, &r);
                varlink_reply_clear(&r);
        }
        /* The third waits in the backlog: connected, but not served. */
        c[2] = client_new(fx);
        assert_int_equal(varlink_client_send(c[2], "io.iommud.Test.Echo", NULL, NULL, 0, 0), 0);
        for (unsigned i = 0; i < 1000; i++)
                pump(fx);
        assert_int_equal(varlink_client_process(c[2], &r), 0);
        assert_int_equal(varlink_server_n_connections(fx->server), 2);

        varlink_client_free(c[0]);
        assert_int_equal(wait_reply(fx, c[2], &r), 1);
        assert_null(r.error);
        varlink_reply_clear(&r);
        assert_int_equal(fx->n_disconnect, 1);
        varlink_client_free(c[1]);
        varlink_client_free(c[2]);
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
                cmocka_unit_test_setup_teardown(test_malformed_frames_drop_only_that_client, setup, teardown),
                cmocka_unit_test_setup_teardown(test_backpressure, setup, teardown),
                cmocka_unit_test_setup_teardown(test_backpressure_refuses_stream_replies, setup, teardown),
                cmocka_unit_test_setup_teardown(test_per_uid_limit, setup, teardown),
                cmocka_unit_test_setup_teardown(test_per_uid_limit_on_behalf, setup, teardown),
                cmocka_unit_test_setup_teardown(test_total_limit, setup, teardown),
                cmocka_unit_test_setup_teardown(test_on_connect_refuses, setup, teardown),
                cmocka_unit_test_setup_teardown(test_half_close_still_gets_replies, setup, teardown),
                cmocka_unit_test_setup_teardown(test_service_interface, setup, teardown),
                cmocka_unit_test_setup_teardown(test_listen_unix_stale_and_live, setup, teardown),
                cmocka_unit_test_setup_teardown(test_blocking_client_in_thread, setup, teardown),
        };

        return cmocka_run_group_tests_name("varlink-server", tests, NULL, NULL);
}
