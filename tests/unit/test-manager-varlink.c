/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * org.iommud.Manager on a simulated host: the method table matches the IDL,
 * session ids follow the order sessions open, Monitor() streams the events
 * the manager emits, ReloadPolicy() hands back diagnostics, and a caller
 * that is neither root nor the daemon's user is refused.  The server runs in
 * this thread; the test pumps its loop until the reply it waits for arrives.
 */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>
#include <json-c/json.h>

#include "backend-sim.h"
#include "json-util.h"
#include "varlink-manager.h"
#include "policy.h"
#include "session.h"
#include "sim-host.h"
#include "simtopo.h"
#include "topology.h"
#include "varlink-client.h"
#include "varlink-idl.h"

typedef struct Env {
        char root[64];
        SessionHost host;
        struct event_base *base;
        VarlinkServer *server;
        ManagerVarlink *mv;
        int reload_result;
        unsigned n_reloads;
} Env;

static const char policy_text[] =
        "{ \"rules\": { \"all\": { \"action\": \"allow\", \"match\": \"*\" } },\n"
        "  \"grants\": { \"vm\": { \"principals\": [ { \"user\": 1000 } ], \"devices\": \"*\" } } }\n";

static int reload_hook(void *userdata, char ***ret_diagnostics) {
        Env *e = userdata;
        char **d;

        e->n_reloads++;
        if (e->reload_result >= 0)
                return 0;
        d = calloc(2, sizeof(char *));
        assert_non_null(d);
        d[0] = strdup("policy.json:3:9: grants.vm.devices: expected a device matcher");
        *ret_diagnostics = d;
        return e->reload_result;
}

/* What the manager's fan-out does for this module. */
static void on_session(Session *s, SessionEvent event, void *userdata) {
        Env *e = userdata;

        manager_varlink_session_event(e->mv, s, event);
}

static int setup(void **state) {
        Env *e = calloc(1, sizeof(*e));

        assert_non_null(e);
        sim_host_setup(&e->host, e->root, sizeof(e->root), "workstation", policy_text);
        e->base = event_base_new();
        assert_non_null(e->base);
        assert_int_equal(varlink_server_new(&e->server, e->base, NULL), 0);
        assert_int_equal(manager_varlink_new(&e->mv, &(ManagerVarlinkConfig){
                                                             .host = &e->host,
                                                             .topology = "workstation",
                                                             .reload_policy = reload_hook,
                                                             .userdata = e,
                                                     }),
                         0);
        assert_int_equal(manager_varlink_attach(e->mv, e->server), 0);
        e->host.on_session = on_session;
        e->host.on_session_userdata = e;
        *state = e;
        return 0;
}

static int teardown(void **state) {
        Env *e = *state;

        e->mv = manager_varlink_free(e->mv);
        varlink_server_free(e->server);
        event_base_free(e->base);
        sim_host_teardown(&e->host, e->root);
        free(e);
        return 0;
}

static Session *new_session(Env *e, uid_t uid, pid_t pid) {
        PeerCreds *c = NULL;
        Session *s = NULL;

        assert_int_equal(peer_creds_new(&c, "/nonexistent", pid, uid, uid, NULL), 0);
        assert_int_equal(session_new(&s, &e->host, c, NULL), 0);
        return s;
}

static VarlinkClient *connect_client(Env *e) {
        VarlinkClient *c = NULL;
        int sv[2];

        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        assert_int_equal(varlink_server_add_connection(e->server, sv[0], NULL), 0);
        assert_int_equal(varlink_client_new_from_fd(&c, sv[1]), 0);
        return c;
}

/* Pumps the server until the client has a reply; the bound only stops a broken test. */
static void next_reply(Env *e, VarlinkClient *c, VarlinkReply *ret) {
        for (unsigned i = 0; i < 100000; i++) {
                int r = varlink_client_process(c, ret);

                assert_true(r >= 0);
                if (r > 0)
                        return;
                assert_true(event_base_loop(e->base, EVLOOP_NONBLOCK) >= 0);
        }
        fail_msg("no reply");
}

static void call(Env *e, VarlinkClient *c, const char *method, const char *params,
                 VarlinkReply *ret) {
        json_object *p = params ? json_tokener_parse(params) : NULL;

        assert_int_equal(varlink_client_send(c, method, p, NULL, 0, 0), 0);
        json_object_put(p);
        next_reply(e, c, ret);
}

static void test_methods_match_idl(void **state) {
        Env *e = *state;
        Error err = ERROR_INIT;

        if (varlink_idl_check_interface(manager_varlink_interface(e->mv), &err) < 0)
                fail_msg("%s", error_message(&err));
}

static void test_status_and_sessions(void **state) {
        Env *e = *state;
        _cleanup_(varlink_client_freep) VarlinkClient *c = connect_client(e);
        VarlinkReply reply = VARLINK_REPLY_INIT;
        Session *a = new_session(e, 1000, 11), *b = new_session(e, 1001, 12);
        json_object *sessions, *s;
        uint64_t v;
        const char *str;

        call(e, c, "org.iommud.Manager.GetStatus", NULL, &reply);
        assert_null(reply.error);
        assert_int_equal(json_util_get_string(reply.parameters, "backend", 0, &str, NULL), 0);
        assert_string_equal(str, "sim");
        assert_int_equal(json_util_get_string(reply.parameters, "topology", 0, &str, NULL), 0);
        assert_string_equal(str, "workstation");
        assert_int_equal(json_util_get_u64(reply.parameters, "sessions", 0, &v, NULL), 0);
        assert_int_equal(v, 2);
        assert_int_equal(json_util_get_u64(reply.parameters, "devices", 0, &v, NULL), 0);
        assert_int_equal(v, e->host.topology->n_devices);
        assert_int_equal(json_util_get_u64(reply.parameters, "eligibleDevices", 0, &v, NULL), 0);
        assert_int_equal(v, 1); /* the NVMe on vfio-pci; the NIC's group is not viable */
        varlink_reply_clear(&reply);

        call(e, c, "org.iommud.Manager.ListSessions", NULL, &reply);
        assert_null(reply.error);
        assert_int_equal(json_util_get_array(reply.parameters, "sessions", 0, &sessions, NULL), 0);
        assert_int_equal(json_object_array_length(sessions), 2);
        /* In the order they opened, with ids in that order. */
        s = json_object_array_get_idx(sessions, 0);
        assert_int_equal(json_util_get_u64(s, "uid", 0, &v, NULL), 0);
        assert_int_equal(v, 1000);
        assert_int_equal(json_util_get_u64(s, "id", 0, &v, NULL), 0);
        assert_int_equal(v, 1);
        s = json_object_array_get_idx(sessions, 1);
        assert_int_equal(json_util_get_u64(s, "id", 0, &v, NULL), 0);
        assert_int_equal(v, 2);
        varlink_reply_clear(&reply);

        session_free(a);
        session_free(b);
}

static void test_explain_for_uid(void **state) {
        Env *e = *state;
        _cleanup_(varlink_client_freep) VarlinkClient *c = connect_client(e);
        VarlinkReply reply = VARLINK_REPLY_INIT;
        const char *reason = NULL;
        bool allowed = true;
        json_object *steps;
        uint64_t uid = 0;

        /* uids without an account on most hosts: the primary group is given. */
        call(e, c, "org.iommud.Manager.ExplainDevice",
             "{\"device\":\"0000:01:00.0\",\"uid\":1000,\"gid\":1000}", &reply);
        assert_null(reply.error);
        assert_int_equal(json_util_get_bool(reply.parameters, "allowed", 0, &allowed, NULL), 0);
        assert_true(allowed);
        varlink_reply_clear(&reply);

        call(e, c, "org.iommud.Manager.ExplainDevice",
             "{\"device\":\"0000:01:00.0\",\"uid\":4242,\"gid\":4242}", &reply);
        assert_int_equal(json_util_get_bool(reply.parameters, "allowed", 0, &allowed, NULL), 0);
        assert_false(allowed);
        varlink_reply_clear(&reply);

        /* Without one, a uid that has no account has no groups to decide with. */
        call(e, c, "org.iommud.Manager.ExplainDevice",
             "{\"device\":\"0000:01:00.0\",\"uid\":4000000000}", &reply);
        assert_string_equal(reply.error, "org.iommud.Manager.NoSuchUser");
        assert_int_equal(json_util_get_u64(reply.parameters, "uid", 0, &uid, NULL), 0);
        assert_int_equal(uid, 4000000000);
        varlink_reply_clear(&reply);

        /* root's account: its primary group from the account database, and no grant. */
        call(e, c, "org.iommud.Manager.ExplainDevice", "{\"device\":\"0000:01:00.0\",\"uid\":0}",
             &reply);
        assert_null(reply.error);
        assert_int_equal(json_util_get_array(reply.parameters, "steps", 0, &steps, NULL), 0);
        assert_int_equal(json_util_get_string(json_object_array_get_idx(steps, POLICY_STEP_PRINCIPAL),
                                              "reason", 0, &reason, NULL),
                         0);
        assert_non_null(strstr(reason, "uid 0 (gid 0, groups 0"));
        varlink_reply_clear(&reply);

        call(e, c, "org.iommud.Manager.ExplainDevice", "{\"device\":\"0000:99:00.0\",\"uid\":0}",
             &reply);
        assert_string_equal(reply.error, "org.iommud.Manager.NoSuchDevice");
        varlink_reply_clear(&reply);

        call(e, c, "org.iommud.Manager.ExplainDevice", "{\"device\":\"0000:01:00.0\",\"bogus\":1}",
             &reply);
        assert_string_equal(reply.error, "org.varlink.service.InvalidParameter");
        varlink_reply_clear(&reply);
}

/* Every method's parameters are decoded by its table: InvalidParameter names the member. */
static void test_invalid_parameters(void **state) {
        static const struct {
                const char *method, *params, *parameter;
        } cases[] = {
                { "GetStatus", "{\"verbose\":true}", "verbose" },
                { "ListSessions", "{\"uid\":0}", "uid" },
                { "ReloadPolicy", "{\"path\":\"/etc\"}", "path" },
                { "ExplainDevice", "{\"uid\":0}", "device" },
                { "ExplainDevice", "{\"device\":\"0000:01:00.0\",\"uid\":-1}", "uid" },
                { "ExplainDevice", "{\"device\":\"0000:01:00.0\",\"uid\":4294967296}", "uid" },
                { "ExplainDevice", "{\"device\":\"0000:01:00.0\",\"uid\":0,\"gid\":\"0\"}", "gid" },
                { "ExplainDevice", "{\"device\":\"0000:01:00.0\",\"uid\":0,\"unit\":7}", "unit" },
        };
        Env *e = *state;
        _cleanup_(varlink_client_freep) VarlinkClient *c = connect_client(e);

        FOREACH_ARRAY(t, cases, ELEMENTSOF(cases)) {
                VarlinkReply reply = VARLINK_REPLY_INIT;
                char method[64];
                const char *parameter = NULL;

                snprintf(method, sizeof(method), "org.iommud.Manager.%s", t->method);
                call(e, c, method, t->params, &reply);
                assert_string_equal(reply.error, "org.varlink.service.InvalidParameter");
                assert_int_equal(json_util_get_string(reply.parameters, "parameter", 0, &parameter,
                                                      NULL),
                                 0);
                assert_string_equal(parameter, t->parameter);
                varlink_reply_clear(&reply);
        }
}

static void expect_event(Env *e, VarlinkClient *c, const char *type, uint64_t session) {
        VarlinkReply reply = VARLINK_REPLY_INIT;
        json_object *ev;
        const char *t;
        uint64_t id = 0;

        next_reply(e, c, &reply);
        assert_null(reply.error);
        assert_true(reply.continues);
        assert_int_equal(json_util_get_object(reply.parameters, "event", 0, &ev, NULL), 0);
        assert_int_equal(json_util_get_string(ev, "type", 0, &t, NULL), 0);
        assert_string_equal(t, type);
        if (session > 0) {
                assert_int_equal(json_util_get_u64(ev, "session", 0, &id, NULL), 0);
                assert_int_equal(id, session);
        }
        assert_int_equal(json_util_get_string(ev, "message", 0, &t, NULL), 0);
        varlink_reply_clear(&reply);
}

static void test_monitor(void **state) {
        Env *e = *state;
        _cleanup_(varlink_client_freep) VarlinkClient *c = connect_client(e);
        VarlinkReply reply = VARLINK_REPLY_INIT;
        Session *s;

        /* Without "more" it is refused. */
        call(e, c, "org.iommud.Manager.Monitor", NULL, &reply);
        assert_string_equal(reply.error, "org.varlink.service.ExpectedMore");
        varlink_reply_clear(&reply);

        assert_int_equal(varlink_client_send(c, "org.iommud.Manager.Monitor", NULL, NULL, 0,
                                             VARLINK_CLIENT_MORE),
                         0);
        while (manager_varlink_n_subscribers(e->mv) == 0)
                assert_true(event_base_loop(e->base, EVLOOP_NONBLOCK) >= 0);

        s = new_session(e, 1000, 21);
        expect_event(e, c, "session-opened", 1);
        session_free(s);
        expect_event(e, c, "session-closed", 1);
        manager_varlink_emit(e->mv, "policy-reloaded", "policy reloaded (generation 2)", NULL);
        expect_event(e, c, "policy-reloaded", 0);

        /* The subscriber goes away; the next event drops it. */
        varlink_client_free(TAKE_PTR(c));
        for (unsigned i = 0; i < 1000 && manager_varlink_n_subscribers(e->mv) > 0; i++) {
                manager_varlink_emit(e->mv, "device-added", "test", NULL);
                assert_true(event_base_loop(e->base, EVLOOP_NONBLOCK) >= 0);
        }
        assert_int_equal(manager_varlink_n_subscribers(e->mv), 0);
}

static void test_reload(void **state) {
        Env *e = *state;
        _cleanup_(varlink_client_freep) VarlinkClient *c = connect_client(e);
        VarlinkReply reply = VARLINK_REPLY_INIT;
        json_object *diags;
        uint64_t g;

        call(e, c, "org.iommud.Manager.ReloadPolicy", NULL, &reply);
        assert_null(reply.error);
        assert_int_equal(json_util_get_u64(reply.parameters, "generation", 0, &g, NULL), 0);
        assert_int_equal(g, policy_generation(e->host.policy));
        varlink_reply_clear(&reply);

        e->reload_result = -EINVAL;
        call(e, c, "org.iommud.Manager.ReloadPolicy", NULL, &reply);
        assert_string_equal(reply.error, "org.iommud.Manager.PolicyInvalid");
        assert_int_equal(json_util_get_array(reply.parameters, "diagnostics", 0, &diags, NULL), 0);
        assert_int_equal(json_object_array_length(diags), 1);
        assert_non_null(strstr(json_object_get_string(json_object_array_get_idx(diags, 0)),
                               "grants.vm.devices"));
        varlink_reply_clear(&reply);
        assert_int_equal(e->n_reloads, 2);
}

/*
 * A socketpair made by a child that became nobody: SO_PEERCRED of a socketpair
 * names its creator, so the server sees nobody on the other end.
 */
static void socketpair_as_nobody(int ret[2]) {
        char buf[CMSG_SPACE(2 * sizeof(int))] = {}, x = 0;
        struct iovec iov = { .iov_base = &x, .iov_len = 1 };
        struct msghdr mh = {
                .msg_iov = &iov, .msg_iovlen = 1, .msg_control = buf, .msg_controllen = sizeof(buf),
        };
        int carrier[2], status;
        pid_t pid;

        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, carrier), 0);
        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
                int pair[2];

                if (setgid(65534) < 0 || setuid(65534) < 0 ||
                    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) < 0)
                        _exit(1);
                cm->cmsg_level = SOL_SOCKET;
                cm->cmsg_type = SCM_RIGHTS;
                cm->cmsg_len = CMSG_LEN(2 * sizeof(int));
                memcpy(CMSG_DATA(cm), pair, sizeof(pair));
                _exit(sendmsg(carrier[1], &mh, 0) == 1 ? 0 : 1);
        }
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        assert_int_equal(recvmsg(carrier[0], &mh, MSG_CMSG_CLOEXEC), 1);
        assert_non_null(CMSG_FIRSTHDR(&mh));
        memcpy(ret, CMSG_DATA(CMSG_FIRSTHDR(&mh)), 2 * sizeof(int));
        close(carrier[0]);
        close(carrier[1]);
}

/* A caller that is neither root nor the daemon's user; needs root to make one. */
static void test_not_authorized(void **state) {
        Env *e = *state;
        _cleanup_(varlink_client_freep) VarlinkClient *c = NULL;
        VarlinkReply reply = VARLINK_REPLY_INIT;
        uint64_t uid;
        int pair[2];

        if (geteuid() != 0)
                skip();
        socketpair_as_nobody(pair);
        assert_int_equal(varlink_server_add_connection(e->server, pair[0], NULL), 0);
        assert_int_equal(varlink_client_new_from_fd(&c, pair[1]), 0);
        call(e, c, "org.iommud.Manager.GetStatus", NULL, &reply);
        assert_string_equal(reply.error, "org.iommud.Manager.NotAuthorized");
        assert_int_equal(json_util_get_u64(reply.parameters, "uid", 0, &uid, NULL), 0);
        assert_int_equal(uid, 65534);
        varlink_reply_clear(&reply);
        call(e, c, "org.iommud.Manager.ListSessions", NULL, &reply);
        assert_string_equal(reply.error, "org.iommud.Manager.NotAuthorized");
        varlink_reply_clear(&reply);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_methods_match_idl, setup, teardown),
                cmocka_unit_test_setup_teardown(test_invalid_parameters, setup, teardown),
                cmocka_unit_test_setup_teardown(test_status_and_sessions, setup, teardown),
                cmocka_unit_test_setup_teardown(test_explain_for_uid, setup, teardown),
                cmocka_unit_test_setup_teardown(test_monitor, setup, teardown),
                cmocka_unit_test_setup_teardown(test_reload, setup, teardown),
                cmocka_unit_test_setup_teardown(test_not_authorized, setup, teardown),
        };

        return cmocka_run_group_tests_name("manager-varlink", tests, NULL, NULL);
}
