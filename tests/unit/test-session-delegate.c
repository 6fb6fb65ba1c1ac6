/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Delegation in the session core, on the simulated backend, whose IOMMU_OPTION is the kernel's
 * (RLIMIT_MODE: SET needs CAP_SYS_RESOURCE and a context without objects).  The simulated
 * contexts have no file of their own, so the backend is wrapped here: each context gets a
 * memfd for its "iommufd", and what RLIMIT_MODE a context had when iommud let go of it is
 * recorded.  Delegate hands a fresh context, switched to per-process accounting before the
 * client sees it, never the session's own; afterwards iommud mediates nothing for the session.
 */

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "backend-sim.h"
#include "session-state.h"
#include "session.h"
#include "sim-host.h"

#define MAX_CONTEXTS 16

typedef struct Env {
        char root[64];
        SessionHost host;
        BackendOps ops;            /* the simulated backend's, with context_fd and _free wrapped */
        const BackendOps *sim_ops;
        struct {
                BackendContext *ctx;
                int fd;
        } files[MAX_CONTEXTS];
        unsigned n_freed_per_process; /* contexts iommud let go of in RLIMIT_MODE 1 */
        unsigned n_freed;
} Env;

static Env *env; /* the wrappers' way back to the test */

static int wrap_context_fd(BackendContext *c) {
        for (size_t i = 0; i < MAX_CONTEXTS; i++)
                if (env->files[i].ctx == c)
                        return env->files[i].fd;
        for (size_t i = 0; i < MAX_CONTEXTS; i++)
                if (!env->files[i].ctx) {
                        env->files[i].ctx = c;
                        env->files[i].fd = memfd_create("iommufd", MFD_CLOEXEC);
                        assert_true(env->files[i].fd >= 0);
                        return env->files[i].fd;
                }
        return -EMFILE;
}

static void wrap_context_free(BackendContext *c) {
        uint64_t mode = 0;

        if (c && env->sim_ops->option(c, BACKEND_OPTION_RLIMIT_MODE, BACKEND_OPTION_OP_GET, 0,
                                      &mode, NULL) >= 0) {
                env->n_freed++;
                env->n_freed_per_process += mode == 1;
        }
        for (size_t i = 0; c && i < MAX_CONTEXTS; i++)
                if (env->files[i].ctx == c) {
                        close(env->files[i].fd);
                        env->files[i].ctx = NULL;
                }
        env->sim_ops->context_free(c);
}

static const char policy_text[] =
        "{ \"rules\": { \"all\": { \"action\": \"allow\", \"match\": \"*\" } },\n"
        "  \"grants\": { \"vm\": { \"principals\": [ { \"user\": 1000 } ], \"devices\": \"*\",\n"
        "                        \"delegation\": true },\n"
        "                \"other\": { \"principals\": [ { \"user\": 1001 } ],\n"
        "                           \"devices\": \"*\" } } }\n";

static int setup(void **state) {
        Env *e = calloc(1, sizeof(*e));

        assert_non_null(e);
        env = e;
        sim_host_setup(&e->host, e->root, sizeof(e->root), "server", policy_text);
        e->sim_ops = e->host.backend->ops;
        e->ops = *e->sim_ops;
        e->ops.context_fd = wrap_context_fd;
        e->ops.context_free = wrap_context_free;
        e->host.backend->ops = &e->ops;
        *state = e;
        return 0;
}

static int teardown(void **state) {
        Env *e = *state;

        session_host_done(&e->host);
        e->host.backend->ops = e->sim_ops;
        sim_host_teardown(&e->host, e->root);
        free(e);
        env = NULL;
        return 0;
}

static void assert_error(const BrokerError *err, const char *name, const char *key,
                         const char *value) {
        assert_string_equal(err->error.name, name);
        assert_non_null(broker_error_get(err, key));
        assert_string_equal(broker_error_get(err, key)->str, value);
}

/* A fresh iommufd in per-process accounting; the session's own context is not it. */
static void test_delegate_fresh_per_process(void **state) {
        Env *e = *state;
        Session *s = sim_host_session(&e->host, 1000, 0);
        BrokerError err = BROKER_ERROR_INIT;
        struct stat st;
        uint32_t ioas;
        uint64_t iova;
        int fd = -1, mem = memfd_create("m", MFD_CLOEXEC);
        SessionMapArgs m = { .fd = mem, .length = 4096, .readable = true };

        assert_int_equal(session_delegate(s, &fd, &err), 0);
        assert_true(fd >= 0);
        assert_int_equal(fstat(fd, &st), 0);
        assert_true(session_is_delegated(s));
        /* iommud let go of the context it made, after switching it to per-process accounting. */
        assert_int_equal(e->n_freed, 1);
        assert_int_equal(e->n_freed_per_process, 1);
        /* The session's own context is not what the client got, and keeps per-user accounting. */
        {
                BackendContext *own = session_get_context(s);
                struct stat own_st;
                uint64_t mode = 1;

                assert_int_equal(fstat(e->ops.context_fd(own), &own_st), 0);
                assert_true(own_st.st_ino != st.st_ino);
                assert_int_equal(e->sim_ops->option(own, BACKEND_OPTION_RLIMIT_MODE,
                                                    BACKEND_OPTION_OP_GET, 0, &mode, NULL),
                                 0);
                assert_int_equal(mode, 0);
        }

        /* Nothing is mediated any more: no address space, no map, no attach. */
        assert_int_equal(session_create_address_space(s, &ioas, &err), -EOPNOTSUPP);
        assert_error(&err, BROKER_ERROR_NOT_SUPPORTED, "feature", "mediation");
        assert_non_null(strstr(err.error.message, "delegated its iommufd"));
        assert_int_equal(ftruncate(mem, 4096), 0);
        assert_int_equal(session_map(s, &m, &iova, &err), -EOPNOTSUPP);
        assert_int_equal(session_attach_device_fd(s, mem, NULL, &err), -EOPNOTSUPP);
        /* Once only. */
        assert_int_equal(session_delegate(s, &fd, &err), -EBUSY);
        assert_error(&err, BROKER_ERROR_OBJECT_IN_USE, "kind", "session");
        close(mem);
        close(fd);
        session_free(s);
}

/* A session that holds objects made with iommud's credentials delegates nothing. */
static void test_delegate_refused_while_holding(void **state) {
        Env *e = *state;
        Session *s = sim_host_session(&e->host, 1000, 0);
        BrokerError err = BROKER_ERROR_INIT;
        uint32_t ioas;
        int fd = -1;

        assert_int_equal(session_create_address_space(s, &ioas, NULL), 0);
        assert_int_equal(session_delegate(s, &fd, &err), -EBUSY);
        assert_error(&err, BROKER_ERROR_OBJECT_IN_USE, "kind", "session");
        assert_non_null(strstr(broker_error_get(&err, "reason")->str, "1 address space"));
        assert_int_equal(fd, -1);
        assert_int_equal(e->n_freed, 0);
        assert_false(session_is_delegated(s));
        /* Still mediated. */
        assert_int_equal(session_destroy_address_space(s, ioas, NULL), 0);
        assert_int_equal(session_delegate(s, &fd, NULL), 0);
        close(fd);
        session_free(s);
}

/* Without CAP_SYS_RESOURCE no iommufd goes out that would charge nobody. */
static void test_delegate_needs_per_process(void **state) {
        Env *e = *state;
        Session *s = sim_host_session(&e->host, 1000, 0), *o = sim_host_session(&e->host, 1001, 0);
        BrokerError err = BROKER_ERROR_INIT;
        uint32_t ioas;
        int fd = -1;

        backend_sim_set_privileged(e->host.backend, false);
        assert_int_equal(session_delegate(s, &fd, &err), -EOPNOTSUPP);
        assert_error(&err, BROKER_ERROR_NOT_SUPPORTED, "feature", "delegation");
        assert_non_null(strstr(err.error.message, "CAP_SYS_RESOURCE"));
        assert_int_equal(fd, -1);
        assert_false(session_is_delegated(s));
        assert_int_equal(session_create_address_space(s, &ioas, NULL), 0);
        backend_sim_set_privileged(e->host.backend, true);

        /* The policy decides first. */
        assert_int_equal(session_delegate(o, &fd, &err), -EPERM);
        assert_error(&err, BROKER_ERROR_POLICY_DENIED, "step", "delegation");
        session_free(o);
        session_free(s);
}

/* A restarted daemon takes the session over as delegated: it goes on mediating nothing. */
static void test_delegated_survives_restart(void **state) {
        Env *e = *state;
        Session *s = sim_host_session(&e->host, 1000, 0), *back = NULL;
        SessionRestoreConfig rc = { .prepare_id = backend_sim_context_set_next_id };
        BrokerError err = BROKER_ERROR_INIT;
        BackendContext *ctx = NULL;
        PeerCreds *c = NULL;
        json_object *j = NULL;
        uint32_t ioas;
        int fd = -1;

        assert_int_equal(session_delegate(s, &fd, NULL), 0);
        close(fd);
        assert_int_equal(session_to_json(s, &j), 0);
        session_free(s);
        assert_int_equal(e->host.backend->ops->context_new(e->host.backend, &ctx, NULL), 0);
        assert_int_equal(peer_creds_new(&c, "/nonexistent", 0, 1000, 1000, NULL), 0);
        assert_int_equal(session_restore(&back, &e->host, c, ctx, j, &rc), 0);
        assert_true(session_is_delegated(back));
        assert_int_equal(session_create_address_space(back, &ioas, &err), -EOPNOTSUPP);
        assert_error(&err, BROKER_ERROR_NOT_SUPPORTED, "feature", "mediation");
        json_object_put(j);
        session_free(back);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_delegate_fresh_per_process, setup, teardown),
                cmocka_unit_test_setup_teardown(test_delegate_refused_while_holding, setup,
                                                teardown),
                cmocka_unit_test_setup_teardown(test_delegate_needs_per_process, setup, teardown),
                cmocka_unit_test_setup_teardown(test_delegated_survives_restart, setup, teardown),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
