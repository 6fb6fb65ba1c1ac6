/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>
#include <json-c/json.h>

#include "json-util.h"
#include "macros.h"
#include "varlink-server-fixture.h"

const char test_idl[] =
        "interface io.iommud.Test\n"
        "method Echo(seq: ?int) -> (seq: ?int)\n"
        "method Fail() -> ()\n"
        "method Count(n: int) -> (i: int)\n"
        "method Defer() -> ()\n"
        "method Note() -> ()\n"
        "method TakeFd(fd: int) -> (ino: int)\n"
        "method TakeTwoFds(a: int, b: ?int) -> (a: int, b: ?int)\n"
        "method TakeTwoFdsStreamed(a: int, b: ?int) -> (a: int, b: ?int)\n"
        "method SendFd() -> (fd: int)\n"
        "method Big(seq: int, bytes: int) -> (seq: int, data: string)\n"
        "method Errno() -> ()\n"
        "method Forget() -> ()\n"
        "method Bye() -> ()\n"
        "method U64(v: int) -> (v: int)\n"
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

typedef struct U64Params {
        uint64_t v;
} U64Params;

static const JsonDispatchField u64_parameters[] = {
        { "v", JSON_DISPATCH_UINT64, JSON_DISPATCH_REQUIRED, offsetof(U64Params, v) },
        {},
};

/* Answers {"v": v} the short way, then tries to answer again, which must be refused. */
static int m_u64(VarlinkCall *call, json_object *params, VarlinkCallFlags flags, void *userdata) {
        Fixture *fx = userdata;
        U64Params p = {};
        int r;

        r = varlink_call_dispatch(call, params, u64_parameters, &p);
        if (r < 0)
                return r;
        snprintf(fx->u64_method, sizeof(fx->u64_method), "%s", varlink_call_get_method(call));
        r = varlink_call_reply_u64(call, "v", p.v);
        fx->u64_first = r;
        fx->u64_second = varlink_call_reply_u64(call, "v", p.v);
        return r;
}

static const VarlinkMethod test_methods[] = {
        { "Echo", m_echo },     { "Fail", m_fail },     { "Count", m_count },   { "Defer", m_defer },
        { "Note", m_note },     { "TakeFd", m_take_fd }, { "SendFd", m_send_fd }, { "Big", m_big },
        { "TakeTwoFds", m_take_two_fds, take_two_fds_parameters },
        /* The same, read without a json-c tree when the message allows. */
        { "TakeTwoFdsStreamed", m_take_two_fds, take_two_fds_parameters, .streamed = true },
        { "Errno", m_errno },   { "Forget", m_forget }, { "Bye", m_bye },
        { "U64", m_u64, u64_parameters, .streamed = true, .parameters_size = sizeof(U64Params) },
        {},
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
        if (fx->refuse_with_error) {
                json_object *p = json_object_new_object();

                json_util_add(p, "reason", json_object_new_string("no room"));
                assert_int_equal(varlink_connection_send_error(c, "io.iommud.Test.Failed", p), 0);
                return -EDQUOT;
        }
        fx->n_connect++;
        assert_int_equal(cred->uid, fx->as ? fx->as->uid : getuid());
        assert_int_equal(cred->pid, fx->as ? fx->as->pid : getpid());
        varlink_connection_set_userdata(c, fx);
        fx->last_connection = c;
        assert_int_equal(varlink_connection_get_pidfd(c), pidfd >= 0 ? pidfd : -EBADF);
        fx->pidfd_pid = pidfd >= 0 ? pidfd_pid(pidfd) : -1;
        return 0;
}

static void on_disconnect(VarlinkServer *s, VarlinkConnection *c, void *userdata) {
        Fixture *fx = userdata;

        assert_ptr_equal(varlink_connection_get_userdata(c), fx);
        fx->n_disconnect++;
}

void fixture_start(Fixture *fx, const VarlinkLimits *limits) {
        int fd;

        varlink_server_free(fx->server);
        assert_int_equal(varlink_server_new(&fx->server, fx->base, limits), 0);
        varlink_server_set_userdata(fx->server, fx);
        varlink_server_set_hooks(fx->server, on_connect, on_disconnect);
        assert_int_equal(varlink_server_add_interface(fx->server, &test_interface), 0);
        assert_int_equal(varlink_server_add_interface(fx->server, &test_interface), -EEXIST);
        fd = varlink_server_listen_unix(fx->path, 0666);
        assert_true(fd >= 0);
        fx->listen_fd = fd;
        assert_int_equal(varlink_server_listen_fd(fx->server, fd), 0);
}

int setup(void **state) {
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

int teardown(void **state) {
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

void pump(Fixture *fx) {
        assert_true(event_base_loop(fx->base, EVLOOP_NONBLOCK) >= 0);
}

VarlinkClient *client_new(Fixture *fx) {
        VarlinkClient *c = NULL;

        assert_int_equal(varlink_client_connect(&c, fx->path), 0);
        return c;
}

/* Pumps the server until the client has a reply (1) or an error (negative). */
int wait_reply(Fixture *fx, VarlinkClient *c, VarlinkReply *reply) {
        for (unsigned i = 0; i < PUMP_MAX; i++) {
                int k = varlink_client_process(c, reply);

                if (k != 0)
                        return k;
                pump(fx);
        }
        fail_msg("no reply from the server");
        return 0;
}

void call(Fixture *fx, VarlinkClient *c, const char *method, const char *params_json,
                 VarlinkReply *reply) {
        json_object *params = params_json ? json_tokener_parse(params_json) : NULL;

        assert_int_equal(varlink_client_send(c, method, params, NULL, 0, 0), 0);
        json_object_put(params);
        assert_int_equal(wait_reply(fx, c, reply), 1);
}

const char *str(json_object *o, const char *key) {
        json_object *v;

        if (!json_object_object_get_ex(o, key, &v))
                return NULL;
        return json_object_get_string(v);
}

int64_t num(json_object *o, const char *key) {
        json_object *v;

        assert_true(json_object_object_get_ex(o, key, &v));
        return json_object_get_int64(v);
}

void pump_until_disconnects(Fixture *fx, unsigned n) {
        for (unsigned i = 0; i < PUMP_MAX && fx->n_disconnect < n; i++)
                pump(fx);
        assert_int_equal(fx->n_disconnect, n);
}
