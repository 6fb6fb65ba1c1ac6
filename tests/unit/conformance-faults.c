/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* Conformance cases: fault queues, and what a caller may not pass. */

#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "conformance-internal.h"
#include "iommufd-abi.h"
#include "macros.h"

/* ---- fault queues ---- */

typedef struct FaultSetup {
        BackendContext *c;
        uint32_t dev, ioas, fault, hwpt;
        int fd;
} FaultSetup;

static bool readable(int fd) {
        struct pollfd p = { .fd = fd, .events = POLLIN };

        assert_true(poll(&p, 1, 0) >= 0);
        return p.revents & POLLIN;
}

/*
 * A context with the pasid device attached to a fault-capable HWPT over an IOAS: a paging
 * HWPT where the backend takes faults there, else (Linux 6.12) a nested one over a parent.
 */
static void fault_setup(ConfState *s, FaultSetup *f) {
        uint8_t data[64] = {};
        HwptAllocArgs a = { .flags = BACKEND_HWPT_FAULT_ID_VALID };

        conf_require(s, BACKEND_FEATURE_FAULT_QUEUE);
        if (!s->env.factory->inject_fault)
                conf_skip(s, "faults cannot be injected");
        f->c = ctx_new(s);
        f->ioas = ioas_new(s, f->c);
        f->dev = bind(s, f->c, CONF_DEV_PASID);
        assert_int_equal(OPS(&s->env)->fault_queue_alloc(f->c, &f->fault, &f->fd, NULL), 0);
        a.dev_id = f->dev;
        a.pt_id = f->ioas;
        a.fault_id = f->fault;
        if (pasid_bits(s, f->c, f->dev) > 0)
                a.flags |= BACKEND_HWPT_PASID;
        if (s->env.faults_need_nesting) {
                assert_true(s->env.nested_data_len > 0 && s->env.nested_data_len <= sizeof(data));
                assert_int_equal(hwpt_alloc(s, f->c, f->dev, f->ioas, BACKEND_HWPT_NEST_PARENT,
                                            &a.pt_id), 0);
                a.data_type = s->env.nested_data_type;
                a.data_len = s->env.nested_data_len;
                a.data = data;
        }
        assert_int_equal(OPS(&s->env)->hwpt_alloc(f->c, &a, &f->hwpt, NULL), 0);
        assert_int_equal(attach(s, f->c, f->dev, BACKEND_NO_PASID, f->hwpt, NULL), 0);
}

/* A fault nothing takes: refused by the injector where it can tell, never queued. */
static void inject_unrouted(ConfState *s, FaultSetup *f, uint32_t pasid) {
        assert_int_equal(s->env.factory->inject_fault(&s->env, CONF_DEV_PASID, pasid, 0x5000,
                                                      FAULT_PERM_READ, true, 1),
                         s->env.factory->inject_unrouted_unknown ? 0 : -ENOENT);
        assert_false(readable(f->fd));
}

static void fault_inject_read_respond(void **state) {
        ConfState *s = state_of(state);
        FaultRecord buf[4];
        FaultSetup f;
        size_t n = 9;

        fault_setup(s, &f);
        assert_false(readable(f.fd));
        assert_int_equal(OPS(&s->env)->fault_read(f.c, f.fault, buf, 4, &n, NULL), 0);
        assert_int_equal(n, 0);
        assert_int_equal(s->env.factory->inject_fault(&s->env, CONF_DEV_PASID, BACKEND_NO_PASID,
                                                      0x2000, FAULT_PERM_WRITE, true, 7), 0);
        assert_true(readable(f.fd));
        assert_int_equal(OPS(&s->env)->fault_read(f.c, f.fault, buf, 4, &n, NULL), 0);
        assert_int_equal(n, 1);
        assert_false(readable(f.fd));
        assert_int_equal(buf[0].dev_id, f.dev);
        assert_int_equal(buf[0].addr, 0x2000);
        assert_int_equal(buf[0].grpid, 7);
        assert_int_equal(buf[0].perm, FAULT_PERM_WRITE);
        assert_int_equal(buf[0].flags, FAULT_FLAG_LAST_PAGE);

        assert_int_equal(OPS(&s->env)->fault_respond(f.c, f.fault, buf[0].cookie + 1000,
                                                     FAULT_RESPONSE_SUCCESS, NULL), -EINVAL);
        assert_int_equal(OPS(&s->env)->fault_respond(f.c, f.fault, buf[0].cookie,
                                                     FAULT_RESPONSE_SUCCESS, NULL), 0);
        assert_int_equal(OPS(&s->env)->fault_respond(f.c, f.fault, buf[0].cookie,
                                                     FAULT_RESPONSE_SUCCESS, NULL), -EINVAL);

        /* Cookies are unique per queue. */
        assert_int_equal(s->env.factory->inject_fault(&s->env, CONF_DEV_PASID, BACKEND_NO_PASID,
                                                      0x3000, FAULT_PERM_READ, true, 8), 0);
        assert_int_equal(s->env.factory->inject_fault(&s->env, CONF_DEV_PASID, BACKEND_NO_PASID,
                                                      0x4000, FAULT_PERM_READ, true, 9), 0);
        assert_int_equal(OPS(&s->env)->fault_read(f.c, f.fault, buf, 4, &n, NULL), 0);
        assert_int_equal(n, 2);
        assert_int_not_equal(buf[0].cookie, buf[1].cookie);
        /* The queue in use by a HWPT cannot go. */
        assert_int_equal(OPS(&s->env)->destroy(f.c, f.fault, NULL), -EBUSY);
}

/* A group of page requests is delivered whole, once its last page came. */
static void fault_group_delivered_whole(void **state) {
        ConfState *s = state_of(state);
        FaultRecord buf[4];
        FaultSetup f;
        size_t n = 9;
        int r;

        fault_setup(s, &f);
        r = s->env.factory->inject_fault(&s->env, CONF_DEV_PASID, BACKEND_NO_PASID, 0x1000,
                                         FAULT_PERM_READ, false, 7);
        if (r == -EOPNOTSUPP)
                conf_skip(s, "the %s factory's pasid device reports every page request as the "
                          "last of its group", s->env.factory->name);
        assert_int_equal(r, 0);
        /* An incomplete group is not delivered. */
        assert_false(readable(f.fd));
        assert_int_equal(OPS(&s->env)->fault_read(f.c, f.fault, buf, 4, &n, NULL), 0);
        assert_int_equal(n, 0);
        assert_int_equal(s->env.factory->inject_fault(&s->env, CONF_DEV_PASID, BACKEND_NO_PASID,
                                                      0x2000, FAULT_PERM_WRITE, true, 7), 0);
        assert_true(readable(f.fd));
        /* Whole groups only. */
        assert_int_equal(OPS(&s->env)->fault_read(f.c, f.fault, buf, 1, &n, NULL), 0);
        assert_int_equal(n, 0);
        assert_int_equal(OPS(&s->env)->fault_read(f.c, f.fault, buf, 4, &n, NULL), 0);
        assert_int_equal(n, 2);
        assert_false(readable(f.fd));
        assert_int_equal(buf[0].addr, 0x1000);
        assert_int_equal(buf[0].perm, FAULT_PERM_READ);
        assert_int_equal(buf[0].flags & FAULT_FLAG_LAST_PAGE, 0);
        assert_int_equal(buf[1].flags & FAULT_FLAG_LAST_PAGE, FAULT_FLAG_LAST_PAGE);
        assert_int_equal(buf[0].cookie, buf[1].cookie);
        assert_int_equal(OPS(&s->env)->fault_respond(f.c, f.fault, buf[0].cookie,
                                                     FAULT_RESPONSE_SUCCESS, NULL), 0);
}

/*
 * Groups of changing sizes one after the other, each answered before the next: every one
 * arrives whole with its own pages, whatever an earlier answered group left behind.
 */
static void fault_groups_after_answers(void **state) {
        static const size_t sizes[] = { 1, 3, 1, 2, 5, 1 };
        ConfState *s = state_of(state);
        FaultRecord buf[8];
        FaultSetup f;
        uint64_t addr = 0x10000;
        size_t n;
        int r;

        fault_setup(s, &f);
        for (size_t g = 0; g < ELEMENTSOF(sizes); g++) {
                uint64_t first = addr;

                for (size_t i = 0; i < sizes[g]; i++, addr += 0x1000) {
                        r = s->env.factory->inject_fault(&s->env, CONF_DEV_PASID,
                                                         BACKEND_NO_PASID, addr, FAULT_PERM_READ,
                                                         i + 1 == sizes[g], (uint32_t)g + 1);
                        if (r == -EOPNOTSUPP)
                                conf_skip(s, "the %s factory's pasid device reports every page "
                                          "request as the last of its group",
                                          s->env.factory->name);
                        assert_int_equal(r, 0);
                }
                assert_true(readable(f.fd));
                assert_int_equal(OPS(&s->env)->fault_read(f.c, f.fault, buf, ELEMENTSOF(buf), &n,
                                                          NULL), 0);
                assert_false(readable(f.fd));
                assert_int_equal(n, sizes[g]);
                for (size_t i = 0; i < n; i++) {
                        assert_int_equal(buf[i].addr, first + i * 0x1000);
                        assert_int_equal(buf[i].grpid, g + 1);
                        assert_int_equal(buf[i].cookie, buf[0].cookie);
                        assert_int_equal(buf[i].flags & FAULT_FLAG_LAST_PAGE,
                                         i + 1 == n ? FAULT_FLAG_LAST_PAGE : 0);
                }
                assert_int_equal(OPS(&s->env)->fault_respond(f.c, f.fault, buf[0].cookie,
                                                             FAULT_RESPONSE_SUCCESS, NULL), 0);
        }
        /* Two groups queued, one read: the queue stays readable until the second is read too. */
        for (uint32_t g = 10; g < 12; g++)
                assert_int_equal(s->env.factory->inject_fault(&s->env, CONF_DEV_PASID,
                                                              BACKEND_NO_PASID, addr,
                                                              FAULT_PERM_READ, true, g), 0);
        assert_int_equal(OPS(&s->env)->fault_read(f.c, f.fault, buf, 1, &n, NULL), 0);
        assert_int_equal(n, 1);
        assert_true(readable(f.fd));
        assert_int_equal(OPS(&s->env)->fault_read(f.c, f.fault, buf + 1, 1, &n, NULL), 0);
        assert_int_equal(n, 1);
        assert_false(readable(f.fd));
}

static void fault_pasid_records(void **state) {
        ConfState *s = state_of(state);
        FaultRecord buf[2];
        FaultSetup f;
        size_t n;

        fault_setup(s, &f);
        require_pasid(s, f.c, f.dev);
        assert_int_equal(attach(s, f.c, f.dev, 5, f.hwpt, NULL), 0);
        assert_int_equal(s->env.factory->inject_fault(&s->env, CONF_DEV_PASID, 5, 0x5000,
                                                      FAULT_PERM_EXEC, true, 1), 0);
        assert_int_equal(OPS(&s->env)->fault_read(f.c, f.fault, buf, 2, &n, NULL), 0);
        assert_int_equal(n, 1);
        assert_int_equal(buf[0].pasid, 5);
        assert_int_equal(buf[0].flags, FAULT_FLAG_PASID_VALID | FAULT_FLAG_LAST_PAGE);
        /* Nothing with a fault queue at PASID 6. */
        inject_unrouted(s, &f, 6);
}

static void fault_invalid_on_detach(void **state) {
        ConfState *s = state_of(state);
        int (*count)(ConfEnv *, uint64_t *) = s->env.factory->auto_invalid_count;
        uint64_t before = 0, after = 0;
        FaultRecord buf[2];
        FaultSetup f;
        size_t n;

        fault_setup(s, &f);
        if (count)
                assert_int_equal(count(&s->env, &before), 0);
        assert_int_equal(s->env.factory->inject_fault(&s->env, CONF_DEV_PASID, BACKEND_NO_PASID,
                                                      0x1000, FAULT_PERM_READ, true, 1), 0);
        assert_int_equal(OPS(&s->env)->fault_read(f.c, f.fault, buf, 2, &n, NULL), 0);
        assert_int_equal(n, 1);
        assert_int_equal(s->env.factory->inject_fault(&s->env, CONF_DEV_PASID, BACKEND_NO_PASID,
                                                      0x2000, FAULT_PERM_READ, true, 2), 0);
        /* One group read and unanswered, one still queued: detach answers both. */
        assert_int_equal(OPS(&s->env)->device_detach(f.c, f.dev, BACKEND_NO_PASID, NULL), 0);
        /* Where the automatic answers can be counted (the kernel gives no count), both. */
        if (count) {
                assert_int_equal(count(&s->env, &after), 0);
                assert_int_equal(after - before, 2);
        }
        assert_false(readable(f.fd));
        assert_int_equal(OPS(&s->env)->fault_respond(f.c, f.fault, buf[0].cookie,
                                                     FAULT_RESPONSE_SUCCESS, NULL), -EINVAL);
        assert_int_equal(OPS(&s->env)->fault_read(f.c, f.fault, buf, 2, &n, NULL), 0);
        assert_int_equal(n, 0);
        /* Detached: nothing receives faults there any more. */
        inject_unrouted(s, &f, BACKEND_NO_PASID);
        assert_int_equal(OPS(&s->env)->destroy(f.c, f.hwpt, NULL), 0);
        assert_int_equal(OPS(&s->env)->destroy(f.c, f.fault, NULL), 0);
}

/* ---- contracts: what a caller may not pass ---- */

/* One broken call each: a NULL context, or a NULL where the op writes or reads. */
static int broken_call(ConfState *s, BackendContext *c, uint32_t ioas, unsigned i) {
        const BackendOps *ops = OPS(&s->env);
        uint64_t va = conf_va(s, 0, 0x1000);
        size_t n = 1;
        uint32_t id;

        switch (i) {
        case 0: return ops->destroy(NULL, ioas, NULL);
        case 1: return ops->ioas_alloc(c, NULL, NULL);
        case 2: return ops->ioas_map_va(c, ioas, BACKEND_MAP_READABLE, va, 0x1000, NULL, NULL);
        case 3: return ops->ioas_iova_ranges(c, ioas, NULL, &n, NULL, NULL);
        case 4: return ops->hwpt_alloc(c, NULL, &id, NULL);
        case 5: return ops->device_attach(c, 1, BACKEND_NO_PASID, NULL, NULL);
        case 6: return ops->fault_read(c, 1, NULL, 1, &n, NULL);
        case 7: return ops->option(c, BACKEND_OPTION_RLIMIT_MODE, BACKEND_OPTION_OP_GET, 0, NULL,
                                   NULL);
        }
        return 0;
}
#define N_BROKEN_CALLS 8u

/* Runs broken call i (all of them when i is N_BROKEN_CALLS) in a child; its wait status. */
static int broken_child(ConfState *s, BackendContext *c, uint32_t ioas, unsigned i,
                        bool critical) {
        int status = 0;
        pid_t pid;

        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                struct rlimit no_core = {};
                int null = open("/dev/null", O_WRONLY | O_CLOEXEC);

                (void)setrlimit(RLIMIT_CORE, &no_core);
                if (null >= 0)
                        (void)dup2(null, STDERR_FILENO);
                if (critical)
                        (void)setenv("IOMMUD_ASSERT_RETURN_IS_CRITICAL", "1", 1);
                else
                        (void)unsetenv("IOMMUD_ASSERT_RETURN_IS_CRITICAL");
                for (unsigned k = 0; k < N_BROKEN_CALLS; k++) {
                        if (i != N_BROKEN_CALLS && i != k)
                                continue;
                        if (broken_call(s, c, ioas, k) != -EINVAL)
                                _exit(10 + (int)k);
                }
                _exit(0);
        }
        assert_int_equal(waitpid(pid, &status, 0), pid);
        return status;
}

/*
 * A caller's programming error stops at the op it called: with
 * $IOMMUD_ASSERT_RETURN_IS_CRITICAL (tests) the process aborts there, without it (the
 * daemon) the op returns -EINVAL and the daemon keeps serving.
 */
static void contracts_broken_by_caller(void **state) {
        ConfState *s = state_of(state);
        BackendContext *c = ctx_new(s);
        uint32_t ioas = ioas_new(s, c);
        int status;

        for (unsigned i = 0; i < N_BROKEN_CALLS; i++) {
                status = broken_child(s, c, ioas, i, true);
                if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGABRT)
                        fail_msg("broken call %u did not abort (wait status 0x%x)", i, status);
        }
        status = broken_child(s, c, ioas, N_BROKEN_CALLS, false);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
                fail_msg("broken calls did not all return -EINVAL (wait status 0x%x)", status);
        /* Nothing happened to the context. */
        assert_int_equal(OPS(&s->env)->destroy(c, ioas, NULL), 0);
}

#define T(f) { #f, f }
const ConfTest conformance_fault_tests[] = {
        T(fault_inject_read_respond),
        T(fault_group_delivered_whole),
        T(fault_groups_after_answers),
        T(fault_pasid_records),
        T(fault_invalid_on_detach),
        T(contracts_broken_by_caller),
};
#undef T
const size_t conformance_n_fault_tests = ELEMENTSOF(conformance_fault_tests);
