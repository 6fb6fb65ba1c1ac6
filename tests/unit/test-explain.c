/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Principals and explain, the one path every transport and iommud --explain
 * take: a uid resolves to its account's groups or to an error, never to a
 * guess; the caller asking about itself is decided as its own new session;
 * who holds a device is asked of the sessions, except offline; and a caller
 * that breaks a contract stops at the boundary (under the test suites,
 * assert_return() aborts).
 */

#include <fcntl.h>
#include <pwd.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "backend-sim.h"
#include "explain.h"
#include "file-util.h"
#include "policy.h"
#include "principal.h"
#include "session.h"
#include "sim-host.h"
#include "simtopo.h"
#include "topology.h"

#define DEVICE "0000:01:00.0" /* the workstation's NVMe drive, on vfio-pci, alone in its group */
#define NO_ACCOUNT 4000000000u

typedef struct Env {
        char root[64];
        SessionHost host;
} Env;

static const char policy_text[] =
        "{ \"rules\": { \"all\": { \"action\": \"allow\", \"match\": \"*\" } },\n"
        "  \"grants\": { \"vm\": { \"principals\": [ { \"user\": 1000 } ], \"devices\": \"*\" } } }\n";

static int setup(void **state) {
        Env *e = calloc(1, sizeof(*e));

        assert_non_null(e);
        sim_host_setup(&e->host, e->root, sizeof(e->root), "workstation", policy_text);
        *state = e;
        return 0;
}

static int teardown(void **state) {
        Env *e = *state;

        sim_host_teardown(&e->host, e->root);
        free(e);
        return 0;
}

static PeerCreds *creds_for(uid_t uid, const char *unit) {
        PeerCreds *c = NULL;

        assert_int_equal(peer_creds_new(&c, "/nonexistent", 0, uid, uid, NULL), 0);
        if (unit)
                assert_non_null(c->unit = strdup(unit));
        return c;
}

static const PolicyDecisionStep *step(const PolicyDecision *d, PolicyStep s) {
        assert_true(d->n_steps == _POLICY_STEP_MAX);
        assert_int_equal(d->steps[s].step, s);
        return &d->steps[s];
}

static bool has_group(const Principal *p, gid_t g) {
        for (size_t i = 0; i < p->n_groups; i++)
                if (p->groups[i] == g)
                        return true;
        return false;
}

/* ---- principals ---------------------------------------------------------------------------- */

static void test_principal_from_creds(void **state) {
        _cleanup_(peer_creds_freep) PeerCreds *c = creds_for(1000, "vm.scope");
        gid_t groups[] = { 27, 100 };
        Principal p;

        c->gid = 1001;
        c->groups = groups;
        c->n_groups = ELEMENTSOF(groups);
        assert_int_equal(principal_from_creds(c, &p), 0);
        assert_int_equal(p.uid, 1000);
        assert_int_equal(p.gid, 1001);
        assert_ptr_equal(p.groups, groups);
        assert_int_equal(p.n_groups, 2);
        assert_string_equal(p.unit, "vm.scope");
        c->groups = NULL; /* not the creds' own */
        c->n_groups = 0;
}

static void test_account_of_root(void **state) {
        _cleanup_(principal_account_done) PrincipalAccount a = PRINCIPAL_ACCOUNT_INIT;

        /* Every system has root, uid 0 with primary group 0. */
        assert_int_equal(principal_account_resolve(0, GID_INVALID, &a, NULL), 0);
        assert_int_equal(a.principal.uid, 0);
        assert_int_equal(a.principal.gid, 0);
        assert_true(has_group(&a.principal, 0));
        assert_ptr_equal(a.principal.groups, a.groups);
        assert_null(a.principal.unit);
        principal_account_done(&a);

        /* A primary group the caller names replaces the account's and is in the list. */
        assert_int_equal(principal_account_resolve(0, 4321, &a, NULL), 0);
        assert_int_equal(a.principal.gid, 4321);
        assert_true(has_group(&a.principal, 4321));
}

static void test_account_missing(void **state) {
        _cleanup_(principal_account_done) PrincipalAccount a = PRINCIPAL_ACCOUNT_INIT;
        BrokerError err = BROKER_ERROR_INIT;

        if (getpwuid(NO_ACCOUNT)) {
                print_message("# skipped: uid %u has an account here\n", NO_ACCOUNT);
                skip();
        }
        assert_int_equal(principal_account_resolve(NO_ACCOUNT, GID_INVALID, &a, &err), -ESRCH);
        assert_string_equal(err.error.name, BROKER_ERROR_NO_SUCH_OBJECT);
        assert_string_equal(broker_error_get(&err, "kind")->str, BROKER_KIND_USER);
        assert_string_equal(broker_error_get(&err, "id")->str, "4000000000");
        assert_non_null(strstr(error_message(&err.error), "uid 4000000000"));
        assert_null(a.groups);

        /* With a primary group given: that group and nothing more. */
        assert_int_equal(principal_account_resolve(NO_ACCOUNT, 4321, &a, &err), 0);
        assert_int_equal(a.principal.uid, NO_ACCOUNT);
        assert_int_equal(a.principal.gid, 4321);
        assert_int_equal(a.principal.n_groups, 0);
        principal_account_done(&a);
        principal_account_done(&a);
        principal_account_done(NULL);
}

/* ---- explain ------------------------------------------------------------------------------- */

static void test_explain_device_errors(void **state) {
        Env *e = *state;
        _cleanup_(policy_decision_clear) PolicyDecision dec = {};
        BrokerError err = BROKER_ERROR_INIT;

        assert_int_equal(explain_device(&EXPLAIN_SCOPE_HOST(&e->host), "0000:99:00.0", NULL, &dec,
                                        &err),
                         -ENODEV);
        assert_string_equal(err.error.name, BROKER_ERROR_NO_SUCH_OBJECT);
        assert_string_equal(broker_error_get(&err, "kind")->str, BROKER_KIND_DEVICE);

        /* The device is looked at before the account. */
        broker_error_clear(&err);
        assert_int_equal(explain_device_for(&EXPLAIN_SCOPE_HOST(&e->host), "0000:99:00.0",
                                            &EXPLAIN_SUBJECT_UID(NO_ACCOUNT), &dec, &err),
                         -ENODEV);
        assert_string_equal(broker_error_get(&err, "kind")->str, BROKER_KIND_DEVICE);
}

static void test_explain_nobody_in_particular(void **state) {
        Env *e = *state;
        _cleanup_(policy_decision_clear) PolicyDecision dec = {};

        assert_int_equal(explain_device_for(&EXPLAIN_SCOPE_HOST(&e->host), DEVICE,
                                            &EXPLAIN_SUBJECT_UID(UID_INVALID), &dec, NULL),
                         0);
        assert_true(dec.allowed);
        assert_int_equal(step(&dec, POLICY_STEP_PRINCIPAL)->verdict, POLICY_SKIP);
}

/* Who holds a device: every session but the one asking; offline, nobody can say. */
static void test_explain_holder(void **state) {
        Env *e = *state;
        _cleanup_(policy_decision_clear) PolicyDecision dec = {};
        ExplainSubject who = { .uid = 1000, .gid = 1000 };
        ExplainScope scope = EXPLAIN_SCOPE_HOST(&e->host);
        Session *s = NULL;
        SessionDeviceInfo info;
        char path[256];
        int fd;

        assert_int_equal(session_new(&s, &e->host, creds_for(1000, NULL), NULL), 0);
        snprintf(path, sizeof(path), "%s/dev/vfio/devices/%s", e->root,
                 topology_find_device(e->host.topology, DEVICE)->cdev_name);
        fd = open(path, O_RDWR | O_CLOEXEC);
        assert_true(fd >= 0);
        assert_int_equal(session_attach_device_fd(s, fd, &info, NULL), 0);
        close(fd);

        assert_int_equal(explain_device_for(&scope, DEVICE, &who, &dec, NULL), 0);
        assert_false(dec.allowed);
        assert_int_equal(step(&dec, POLICY_STEP_EXCLUSIVE)->verdict, POLICY_FAIL);
        assert_non_null(strstr(step(&dec, POLICY_STEP_EXCLUSIVE)->reason, session_describe(s)));
        policy_decision_clear(&dec);

        scope.self = s;
        assert_int_equal(explain_device_for(&scope, DEVICE, &who, &dec, NULL), 0);
        assert_true(dec.allowed);
        assert_int_equal(step(&dec, POLICY_STEP_EXCLUSIVE)->verdict, POLICY_PASS);
        policy_decision_clear(&dec);

        scope = (ExplainScope){ .policy = e->host.policy, .topology = e->host.topology };
        assert_int_equal(explain_device_for(&scope, DEVICE, &who, &dec, NULL), 0);
        assert_true(dec.allowed);
        assert_int_equal(step(&dec, POLICY_STEP_EXCLUSIVE)->verdict, POLICY_SKIP);
        session_free(s);
}

/* The caller about itself: its credentials and nothing in use; about another: the account. */
static void test_explain_caller(void **state) {
        Env *e = *state;
        _cleanup_(peer_creds_freep) PeerCreds *c = creds_for(1000, "vm.scope");
        _cleanup_(policy_decision_clear) PolicyDecision dec = {};
        ExplainSubject who = { .uid = 1000, .gid = GID_INVALID, .caller = c };

        assert_int_equal(explain_device_for(&EXPLAIN_SCOPE_HOST(&e->host), DEVICE, &who, &dec,
                                            NULL),
                         0);
        assert_true(dec.allowed);
        assert_non_null(strstr(step(&dec, POLICY_STEP_PRINCIPAL)->reason, "uid 1000 (vm.scope)"));
        assert_int_equal(step(&dec, POLICY_STEP_QUOTA)->verdict, POLICY_PASS);
        policy_decision_clear(&dec);

        /* A gid named: the account (none here, so just uid and gid), not the caller. */
        who.gid = 1000;
        assert_int_equal(explain_device_for(&EXPLAIN_SCOPE_HOST(&e->host), DEVICE, &who, &dec,
                                            NULL),
                         0);
        assert_null(strstr(step(&dec, POLICY_STEP_PRINCIPAL)->reason, "vm.scope"));
        assert_int_equal(step(&dec, POLICY_STEP_QUOTA)->verdict, POLICY_SKIP);
}

/* ---- contracts ----------------------------------------------------------------------------- */

/* Runs fn in a child; under IOMMUD_ASSERT_RETURN_IS_CRITICAL a broken contract aborts it. */
static void assert_contract_aborts(void (*fn)(void)) {
        int status = 0;
        pid_t pid;

        assert_non_null(getenv("IOMMUD_ASSERT_RETURN_IS_CRITICAL"));
        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                /* Keep the expected message out of the test's output. */
                int null = open("/dev/null", O_WRONLY | O_CLOEXEC);

                if (null >= 0)
                        (void)dup2(null, STDERR_FILENO);
                fn();
                _exit(0);
        }
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFSIGNALED(status));
        assert_int_equal(WTERMSIG(status), SIGABRT);
}

static void resolve_invalid_uid(void) {
        PrincipalAccount a = PRINCIPAL_ACCOUNT_INIT;

        (void)principal_account_resolve(UID_INVALID, GID_INVALID, &a, NULL);
}

static void explain_without_policy(void) {
        PolicyDecision dec = {};

        (void)explain_device(&(ExplainScope){}, DEVICE, NULL, &dec, NULL);
}

static void explain_self_without_host(void) {
        PolicyDecision dec = {};
        Topology *t = (Topology *)(uintptr_t)1;
        Policy *p = (Policy *)(uintptr_t)1;

        (void)explain_device(&(ExplainScope){ .policy = p, .topology = t,
                                               .self = (Session *)(uintptr_t)1 },
                             DEVICE, NULL, &dec, NULL);
}

static void read_without_path(void) {
        char *text = NULL;

        (void)file_util_read_at(AT_FDCWD, NULL, 1, &text, NULL);
}

static void test_contracts(void **state) {
        assert_contract_aborts(resolve_invalid_uid);
        assert_contract_aborts(explain_without_policy);
        assert_contract_aborts(explain_self_without_host);
        assert_contract_aborts(read_without_path);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_principal_from_creds),
                cmocka_unit_test(test_account_of_root),
                cmocka_unit_test(test_account_missing),
                cmocka_unit_test_setup_teardown(test_explain_device_errors, setup, teardown),
                cmocka_unit_test_setup_teardown(test_explain_nobody_in_particular, setup,
                                                teardown),
                cmocka_unit_test_setup_teardown(test_explain_holder, setup, teardown),
                cmocka_unit_test_setup_teardown(test_explain_caller, setup, teardown),
                cmocka_unit_test(test_contracts),
        };

        return cmocka_run_group_tests_name("explain", tests, NULL, NULL);
}
