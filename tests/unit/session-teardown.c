/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "session-teardown.h"

/* Root opens the device on its own behalf; every other step of the policy passes. */
static const char policy_text[] =
        "{ \"rules\": { \"all\": { \"action\": \"allow\", \"match\": \"*\" } },\n"
        "  \"grants\": { \"root\": { \"principals\": [ { \"user\": 0 } ], \"devices\": \"*\",\n"
        "                          \"open-on-behalf\": true } } }\n";

/* The same with the test's device denied: a reload that takes the grant away. */
static const char policy_deny_fmt[] =
        "{ \"rules\": { \"all\": { \"action\": \"allow\", \"match\": \"*\" },\n"
        "             \"not-it\": { \"action\": \"deny\", \"match\": \"%s\" } },\n"
        "  \"grants\": { \"root\": { \"principals\": [ { \"user\": 0 } ], \"devices\": \"*\",\n"
        "                          \"open-on-behalf\": true } } }\n";

#define IOVA UINT64_C(0x100000)
#define LEN UINT64_C(0x4000)

typedef struct Case {
        const TeardownHost *host;
} Case;

static Session *session(TeardownEnv *e) {
        PeerCreds *c = NULL;
        Session *s = NULL;

        assert_int_equal(peer_creds_new(&c, "/nonexistent", 0, 0, 0, NULL), 0);
        assert_int_equal(session_new(&s, &e->host, c, NULL), 0);
        return s;
}

/* The device attached to a new address space with LEN of a memfd mapped at IOVA. */
static uint32_t attach_and_map(TeardownEnv *e, Session *s, uint32_t *ret_ioas) {
        SessionDeviceInfo info;
        BrokerError err = BROKER_ERROR_INIT;
        uint32_t ioas, hwpt;
        uint64_t iova;
        int fd = memfd_create("teardown", MFD_CLOEXEC);
        SessionMapArgs m = { .fd = fd, .length = LEN, .fixed_iova = true, .iova = IOVA,
                             .readable = true, .writeable = true };

        assert_true(fd >= 0);
        assert_int_equal(ftruncate(fd, (off_t)LEN), 0);
        if (session_attach_device_name(s, e->device, &info, &err) < 0)
                fail_msg("%s: attach %s: %s", e->kind->name, e->device, err.error.message);
        assert_int_equal(session_create_address_space(s, &ioas, NULL), 0);
        assert_int_equal(session_attach_to_address_space(s, info.device_id, ioas, &hwpt, NULL), 0);
        m.ioas_id = ioas;
        assert_int_equal(session_map(s, &m, &iova, NULL), 0);
        close(fd);
        *ret_ioas = ioas;
        return info.device_id;
}

/*
 * A process of its own that keeps fd open, as a VMM keeps its device fd: until killed, by the
 * case or, when the case fails first, by its teardown (or with the test process).
 */
static pid_t keep_in_child(TeardownEnv *e, int fd) {
        int ready[2];
        pid_t pid;
        char c;

        assert_int_equal(pipe2(ready, O_CLOEXEC), 0);
        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                (void)fd; /* inherited: the child holds the same open file */
                (void)prctl(PR_SET_PDEATHSIG, SIGKILL);
                /* Nothing of the test's output: a pipe it holds would outlive the test. */
                (void)dup2(open("/dev/null", O_WRONLY | O_CLOEXEC), STDOUT_FILENO);
                (void)dup2(STDOUT_FILENO, STDERR_FILENO);
                (void)write(ready[1], "r", 1);
                for (;;)
                        pause();
        }
        e->child = pid;
        close(ready[1]);
        assert_int_equal(read(ready[0], &c, 1), 1);
        close(ready[0]);
        return pid;
}

static void kill_child(TeardownEnv *e) {
        int status;

        if (e->child <= 0)
                return;
        (void)kill(e->child, SIGKILL);
        (void)waitpid(e->child, &status, 0);
        e->child = 0;
}

/* Another session's attach: DeviceBusy naming holder, or (holder 0) success. */
static void check_attach(TeardownEnv *e, pid_t holder) {
        BrokerError err = BROKER_ERROR_INIT;
        Session *s = session(e);
        int r = session_attach_device_name(s, e->device, NULL, &err);

        if (holder == 0) {
                if (r < 0)
                        fail_msg("%s: the device is not free again: %s", e->kind->name,
                                 err.error.message);
        } else {
                const BrokerErrorParam *pid = broker_error_get(&err, "pid");

                assert_int_equal(r, -EBUSY);
                assert_string_equal(err.error.name, "org.iommud.Broker.DeviceBusy");
                assert_non_null(pid);
                assert_int_equal(pid->i64, holder);
        }
        session_free(s);
}

/* ---- the cases ---- */

/* DetachDevice: the device is detached, its address space can go, its file names no object. */
static void detach_with_kept_file(TeardownEnv *e) {
        Session *s = session(e);
        uint32_t ioas, dev = attach_and_map(e, s, &ioas);
        int kept = e->kind->bound_file(e, s, dev);
        pid_t holder = keep_in_child(e, kept);
        PolicyDecision dec = {};
        Session *other;

        assert_int_equal(session_detach_device(s, dev, NULL), 0);
        assert_int_equal(session_destroy_address_space(s, ioas, NULL), 0);
        assert_int_equal(e->kind->file_attach(e, kept, ioas), -ENOENT);
        check_attach(e, holder);
        /* ExplainDevice says who keeps it. */
        other = session(e);
        assert_int_equal(session_explain_device(other, e->device, &dec, NULL), 0);
        assert_false(dec.allowed);
        assert_int_equal(dec.failed_step, POLICY_STEP_EXCLUSIVE);
        policy_decision_clear(&dec);
        session_free(other);
        /* Once nobody holds the file, the next attach succeeds at once. */
        kill_child(e);
        close(kept);
        check_attach(e, 0);
        session_free(s);
}

/* A session's end: nothing of it is left for the kept file to reach. */
static void session_end_with_kept_file(TeardownEnv *e) {
        Session *s = session(e);
        uint32_t ioas, dev = attach_and_map(e, s, &ioas), second;
        int kept = e->kind->bound_file(e, s, dev);
        pid_t holder = keep_in_child(e, kept);

        assert_int_equal(session_create_address_space(s, &second, NULL), 0);
        session_free(s);
        for (uint32_t id = 1; id <= 16; id++)
                if (e->kind->file_attach(e, kept, id) == 0)
                        fail_msg("%s: id %u of the ended session takes the kept file",
                                 e->kind->name, id);
        check_attach(e, holder);
        kill_child(e);
        close(kept);
        check_attach(e, 0);
}

/* A reload that takes the grant away detaches, and the address space only it used goes. */
static void reload_with_kept_file(TeardownEnv *e) {
        Session *s = session(e);
        uint32_t ioas, dev = attach_and_map(e, s, &ioas);
        int kept = e->kind->bound_file(e, s, dev);
        Policy *deny = NULL, *old = e->host.policy;
        char text[1024];

        snprintf(text, sizeof(text), policy_deny_fmt, e->device);
        assert_int_equal(policy_load_string(&deny, "deny.json", text, strlen(text), NULL, NULL),
                         0);
        e->host.policy = deny;
        assert_int_equal(session_revalidate(s, NULL, NULL), 1);
        assert_int_equal(e->kind->file_attach(e, kept, ioas), -ENOENT);
        e->host.policy = old;
        policy_free(deny);
        close(kept);
        session_free(s);
        check_attach(e, 0);
}

/*
 * What the kept file can still do: attach its device to its own session's address space by
 * itself.  iommud reports that address space in use rather than a backend failure.
 */
static void self_attach_is_reported(TeardownEnv *e) {
        BrokerError err = BROKER_ERROR_INIT;
        Session *s = session(e);
        uint32_t ioas, dev = attach_and_map(e, s, &ioas);
        int kept = e->kind->bound_file(e, s, dev);

        assert_int_equal(session_detach_device(s, dev, NULL), 0);
        assert_int_equal(e->kind->file_attach(e, kept, ioas), 0);
        assert_int_equal(session_destroy_address_space(s, ioas, &err), -EBUSY);
        assert_string_equal(err.error.name, "org.iommud.Broker.ObjectInUse");
        session_free(s);
        close(kept);
        check_attach(e, 0);
}

/* ---- the runner ---- */

int session_teardown_pick_device(TeardownEnv *e) {
        const Topology *t = e->host.topology;

        for (size_t i = 0; i < t->n_devices; i++) {
                const TopoDevice *d = t->devices[i];
                PolicyDecision dec = {};
                bool ok;

                if (!d->has_cdev || !d->group || d->group->n_devices != 1)
                        continue;
                if (policy_decide(e->host.policy, t, d, NULL, NULL, &dec) < 0)
                        continue;
                ok = dec.allowed;
                policy_decision_clear(&dec);
                if (ok) {
                        snprintf(e->device, sizeof(e->device), "%s", d->name);
                        return 0;
                }
        }
        return -ENODEV;
}

static int case_setup(void **state) {
        const Case *c = *state;
        TeardownEnv *e = calloc(1, sizeof(*e));
        int r;

        if (!e)
                return -1;
        e->kind = c->host;
        e->host = SESSION_HOST_INIT;
        r = c->host->setup(e, policy_text);
        if (r < 0) {
                free(e);
                return -1;
        }
        *state = e;
        return 0;
}

static int case_teardown(void **state) {
        TeardownEnv *e = *state;

        kill_child(e);
        session_host_done(&e->host);
        e->kind->teardown(e);
        free(e);
        return 0;
}

#define CASES(X) X(detach_with_kept_file) X(session_end_with_kept_file) \
                 X(reload_with_kept_file) X(self_attach_is_reported)

#define FN(f) static void run_##f(void **state) { f(*state); }
CASES(FN)
#undef FN

int session_teardown_run(const TeardownHost *const *hosts, size_t n_hosts) {
#define ENTRY(f) { #f, run_##f },
        static const struct {
                const char *name;
                CMUnitTestFunction fn;
        } cases[] = { CASES(ENTRY) };
#undef ENTRY
        size_t n = n_hosts * ELEMENTSOF(cases), k = 0;
        struct CMUnitTest *tests = calloc(n, sizeof(*tests));
        Case *states = calloc(n, sizeof(*states));
        char **names = calloc(n, sizeof(*names));
        int r;

        if (!tests || !states || !names)
                abort();
        for (size_t h = 0; h < n_hosts; h++)
                for (size_t i = 0; i < ELEMENTSOF(cases); i++, k++) {
                        if (asprintf(&names[k], "%s/%s", hosts[h]->name, cases[i].name) < 0)
                                abort();
                        states[k] = (Case){ .host = hosts[h] };
                        tests[k] = (struct CMUnitTest){
                                .name = names[k],
                                .test_func = cases[i].fn,
                                .setup_func = case_setup,
                                .teardown_func = case_teardown,
                                .initial_state = &states[k],
                        };
                }
        r = _cmocka_run_group_tests("session-teardown", tests, n, NULL, NULL);
        for (size_t i = 0; i < n; i++)
                free(names[i]);
        free(names);
        free(tests);
        free(states);
        return r;
}
