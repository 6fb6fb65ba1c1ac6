/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * The session core on the simulated backend: quotas charged before anything
 * is allocated and refunded on every failure, handles scoped to their
 * session, device exclusivity across sessions, and release on free.
 */

#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "backend-sim.h"
#include "policy.h"
#include "session.h"
#include "sim-host.h"
#include "simtopo.h"
#include "topology.h"

typedef struct Env {
        char root[64];
        SessionHost host;
} Env;

static const char policy_text[] =
        "{ \"rules\": { \"all\": { \"action\": \"allow\", \"match\": \"*\" } },\n"
        "  \"grants\": { \"vm\": { \"principals\": [ { \"user\": 1000 } ], \"devices\": \"*\",\n"
        "    \"quotas\": { \"pinned-memory\": \"64K\", \"address-spaces\": 2, \"mappings\": 4,\n"
        "                  \"devices\": 2, \"connections\": 2 } } } }\n";

static int setup(void **state) {
        Env *e = calloc(1, sizeof(*e));

        assert_non_null(e);
        sim_host_setup(&e->host, e->root, sizeof(e->root), "server", policy_text);
        *state = e;
        return 0;
}

static int teardown(void **state) {
        Env *e = *state;

        session_host_done(&e->host);
        assert_int_equal(e->host.n_sessions, 0);
        assert_int_equal(e->host.n_claims, 0);
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

/* An eligible device with a cdev in a group of its own, and one in a shared group. */
static const TopoDevice *pick_device(Env *e, bool shared_group) {
        for (size_t i = 0; i < e->host.topology->n_devices; i++) {
                const TopoDevice *d = e->host.topology->devices[i];
                PolicyDecision dec = {};
                bool ok;

                if (!d->has_cdev || !d->group)
                        continue;
                if (policy_decide(e->host.policy, e->host.topology, d, NULL, NULL, &dec) < 0)
                        continue;
                ok = dec.allowed;
                policy_decision_clear(&dec);
                if (ok && (d->group->n_devices > 1) == shared_group)
                        return d;
        }
        return NULL;
}

static int open_node(Env *e, const TopoDevice *d) {
        char path[256];
        int fd;

        snprintf(path, sizeof(path), "%s/dev/vfio/devices/%s", e->root, d->cdev_name);
        fd = open(path, O_RDWR | O_CLOEXEC);
        assert_true(fd >= 0);
        return fd;
}

static int memfd(size_t size) {
        int fd = memfd_create("t", MFD_CLOEXEC);

        assert_true(fd >= 0);
        assert_int_equal(ftruncate(fd, (off_t)size), 0);
        return fd;
}

static void test_quota_charge_and_refund(void **state) {
        Env *e = *state;
        Session *s = new_session(e, 1000, 0);
        BrokerError err = BROKER_ERROR_INIT;
        SessionInfo info;
        uint32_t ioas;
        uint64_t iova, unmapped;
        int fd = memfd(128 * 1024);
        SessionMapArgs a = { .fd = fd, .length = 16 * 1024, .readable = true, .writeable = true,
                             .fixed_iova = true };

        assert_int_equal(session_create_address_space(s, &ioas, NULL), 0);
        a.ioas_id = ioas;

        /* Three areas: 16K at 1M, 16K at 1M+16K, 16K at 2M. */
        a.iova = 0x100000;
        assert_int_equal(session_map(s, &a, &iova, NULL), 0);
        a.iova = 0x104000;
        assert_int_equal(session_map(s, &a, &iova, NULL), 0);
        a.iova = 0x200000;
        assert_int_equal(session_map(s, &a, &iova, NULL), 0);
        session_get_info(s, &info);
        assert_int_equal(info.usage.pinned_bytes, 48 * 1024);
        assert_int_equal(info.usage.mappings, 3);

        /* Over the 64K pinned quota: refused before the backend sees it, nothing charged. */
        a.iova = 0x300000;
        a.length = 32 * 1024;
        assert_int_equal(session_map(s, &a, &iova, &err), -EDQUOT);
        assert_string_equal(err.error.name, "org.iommud.Broker.QuotaExceeded");
        assert_int_equal(broker_error_get(&err, "used")->u64, 48 * 1024);
        session_get_info(s, &info);
        assert_int_equal(info.usage.pinned_bytes, 48 * 1024);

        /* Overlap: the backend refuses, nothing charged. */
        a.iova = 0x100000;
        a.length = 4096;
        assert_int_equal(session_map(s, &a, &iova, &err), -EEXIST);
        assert_string_equal(err.error.name, "org.iommud.Broker.IOVAInUse");
        session_get_info(s, &info);
        assert_int_equal(info.usage.mappings, 3);

        /* A range that cuts an area: refused, every mapping stays. */
        assert_int_equal(session_unmap(s, ioas, 0x100000, 0x6000, &unmapped, &err), -ERANGE);
        session_get_info(s, &info);
        assert_int_equal(info.usage.mappings, 3);

        /* Two areas at once: exactly their bytes come back. */
        assert_int_equal(session_unmap(s, ioas, 0x100000, 0x8000, &unmapped, NULL), 0);
        assert_int_equal(unmapped, 32 * 1024);
        session_get_info(s, &info);
        assert_int_equal(info.usage.pinned_bytes, 16 * 1024);
        assert_int_equal(info.usage.mappings, 1);

        /* Unmap everything. */
        assert_int_equal(session_unmap(s, ioas, 0, UINT64_MAX, &unmapped, NULL), 0);
        assert_int_equal(unmapped, 16 * 1024);
        session_get_info(s, &info);
        assert_int_equal(info.usage.pinned_bytes, 0);

        /* Address-space quota (2). */
        assert_int_equal(session_create_address_space(s, &ioas, NULL), 0);
        assert_int_equal(session_create_address_space(s, &ioas, &err), -EDQUOT);
        assert_string_equal(broker_error_get(&err, "resource")->str, "addressSpaces");
        close(fd);
        session_free(s);
}

static void test_handles_are_scoped(void **state) {
        Env *e = *state;
        Session *a = new_session(e, 1000, 0), *b = new_session(e, 1000, 0);
        BrokerError err = BROKER_ERROR_INIT;
        uint32_t ioas, ioas_b;

        assert_int_equal(session_create_address_space(a, &ioas, NULL), 0);
        assert_int_equal(session_destroy_address_space(b, ioas, &err), -ENOENT);
        assert_string_equal(err.error.name, "org.iommud.Broker.NoSuchObject");
        assert_string_equal(broker_error_get(&err, "kind")->str, "ioas");
        /* A device id is not an address space either. */
        assert_int_equal(session_create_address_space(b, &ioas_b, NULL), 0);
        assert_int_equal(session_detach_device(b, ioas_b, &err), -ENOENT);
        assert_string_equal(broker_error_get(&err, "kind")->str, "device");
        session_free(a);
        session_free(b);
}

static void test_exclusive_and_released_on_free(void **state) {
        Env *e = *state;
        const TopoDevice *d = pick_device(e, true);
        Session *a = new_session(e, 1000, 4242), *b = new_session(e, 1000, 4343);
        BrokerError err = BROKER_ERROR_INIT;
        SessionDeviceInfo info;
        const TopoDevice *sibling = NULL;
        int fd;

        assert_non_null(d);
        for (size_t i = 0; i < d->group->n_devices; i++)
                if (d->group->devices[i] != d && d->group->devices[i]->has_cdev)
                        sibling = d->group->devices[i];
        assert_non_null(sibling);

        fd = open_node(e, d);
        assert_int_equal(session_attach_device_fd(a, fd, &info, &err), 0);
        close(fd);
        assert_string_equal(info.bdf, d->name);
        assert_int_equal(e->host.n_claims, 1);

        fd = open_node(e, sibling);
        assert_int_equal(session_attach_device_fd(b, fd, NULL, &err), -EBUSY);
        assert_string_equal(err.error.name, "org.iommud.Broker.DeviceBusy");
        assert_string_equal(broker_error_get(&err, "heldBy")->str, "uid 1000 (pid 4242)");
        assert_int_equal(session_n_devices(b), 0);

        /* Freeing the holder frees the group at once. */
        session_free(a);
        assert_int_equal(e->host.n_claims, 0);
        assert_int_equal(session_attach_device_fd(b, fd, NULL, &err), 0);
        close(fd);
        session_free(b);
        assert_int_equal(e->host.n_claims, 0);
}

typedef struct HookSeen {
        SessionEvent event;
        size_t n_sessions;      /* the host's count when the hook ran */
        size_t n_claims;
        size_t n_devices;       /* the session's, where it is still whole */
} HookSeen;

typedef struct HookLog {
        SessionHost *host;
        HookSeen seen[8];
        size_t n;
} HookLog;

static void hook(Session *s, SessionEvent event, void *userdata) {
        HookLog *l = userdata;

        assert_true(l->n < 8);
        l->seen[l->n++] = (HookSeen){
                .event = event,
                .n_sessions = l->host->n_sessions,
                .n_claims = l->host->n_claims,
                .n_devices = event == SESSION_CLOSED ? 0 : session_n_devices(s),
        };
        /* Every event may read the credentials. */
        assert_int_equal(session_creds(s)->uid, 1000);
}

/* The connections quota counts sessions of a uid, over every transport, before opening anything. */
static void test_connections_quota(void **state) {
        Env *e = *state;
        BrokerError err = BROKER_ERROR_INIT;
        Session *a = new_session(e, 1000, 4444), *b = new_session(e, 1000, 4445), *s = NULL;
        PeerCreds *c = NULL;

        assert_int_equal(peer_creds_new(&c, "/nonexistent", 4446, 1000, 1000, NULL), 0);
        assert_int_equal(session_new(&s, &e->host, c, &err), -EDQUOT);
        assert_null(s);
        assert_string_equal(err.error.name, BROKER_ERROR_QUOTA_EXCEEDED);
        assert_non_null(strstr(err.error.message, "connections"));
        assert_int_equal(e->host.n_sessions, 2);

        /* Once one is gone the same creds are admitted (they were not taken on failure). */
        session_free(a);
        assert_int_equal(session_new(&s, &e->host, c, NULL), 0);
        session_free(s);
        session_free(b);
}

/* One hook: opened once linked, closing with everything still held, closed after release. */
static void test_lifetime_hook(void **state) {
        Env *e = *state;
        const TopoDevice *d = pick_device(e, false);
        HookLog l = { .host = &e->host };
        BrokerError err = BROKER_ERROR_INIT;
        Session *s;
        int fd;

        assert_non_null(d);
        e->host.on_session = hook;
        e->host.on_session_userdata = &l;
        s = new_session(e, 1000, 4444);
        assert_int_equal(l.n, 1);
        assert_int_equal(l.seen[0].event, SESSION_OPENED);
        assert_int_equal(l.seen[0].n_sessions, 1);

        fd = open_node(e, d);
        assert_int_equal(session_attach_device_fd(s, fd, NULL, &err), 0);
        close(fd);
        session_free(s);
        e->host.on_session = NULL;

        assert_int_equal(l.n, 3);
        assert_int_equal(l.seen[1].event, SESSION_CLOSING);
        assert_int_equal(l.seen[1].n_sessions, 1);
        assert_int_equal(l.seen[1].n_claims, 1);
        assert_int_equal(l.seen[1].n_devices, 1);
        assert_int_equal(l.seen[2].event, SESSION_CLOSED);
        assert_int_equal(l.seen[2].n_sessions, 0);
        assert_int_equal(l.seen[2].n_claims, 0);
}

static void test_bad_fds(void **state) {
        Env *e = *state;
        Session *s = new_session(e, 1000, 0);
        BrokerError err = BROKER_ERROR_INIT;
        uint32_t ioas;
        uint64_t iova;
        int p[2];
        SessionMapArgs a = { .length = 4096, .readable = true };

        assert_int_equal(pipe2(p, O_CLOEXEC), 0);
        assert_true(session_attach_device_fd(s, p[0], NULL, &err) < 0);
        assert_string_equal(err.error.name, "org.iommud.Broker.InvalidFd");

        assert_int_equal(session_create_address_space(s, &ioas, NULL), 0);
        a.ioas_id = ioas;
        a.fd = p[0];
        assert_int_equal(session_map(s, &a, &iova, &err), -EBADF);
        assert_string_equal(err.error.name, "org.iommud.Broker.InvalidFd");
        assert_non_null(strstr(err.error.message, "pipe"));
        close(p[0]);
        close(p[1]);
        session_free(s);
}

/* Bad memory and device fds the kernel would take: a write-sealed memfd, a read-only device. */
static void test_sealed_memory_and_readonly_device(void **state) {
        static const int seals[] = { F_SEAL_WRITE, F_SEAL_FUTURE_WRITE };
        Env *e = *state;
        const TopoDevice *d = pick_device(e, false);
        Session *s = new_session(e, 1000, 0);
        BrokerError err = BROKER_ERROR_INIT;
        SessionMapArgs a = { .length = 4096, .readable = true, .writeable = true,
                             .fixed_iova = true, .iova = 0x100000 };
        uint64_t iova, unmapped;
        char path[256];
        int fd;

        assert_int_equal(session_create_address_space(s, &a.ioas_id, NULL), 0);
        FOREACH_ARRAY(seal, seals, ELEMENTSOF(seals)) {
                a.fd = memfd_create("sealed", MFD_CLOEXEC | MFD_ALLOW_SEALING);
                assert_true(a.fd >= 0);
                assert_int_equal(ftruncate(a.fd, 4096), 0);
                assert_int_equal(fcntl(a.fd, F_ADD_SEALS, *seal), 0);
                a.writeable = true;
                assert_int_equal(session_map(s, &a, &iova, &err), -EPERM);
                assert_string_equal(err.error.name, "org.iommud.Broker.InvalidFd");
                assert_non_null(strstr(broker_error_get(&err, "reason")->str,
                                       *seal == F_SEAL_WRITE ? "F_SEAL_WRITE"
                                                             : "F_SEAL_FUTURE_WRITE"));
                broker_error_clear(&err);
                /* Read-only, the device cannot break the seal. */
                a.writeable = false;
                assert_int_equal(session_map(s, &a, &iova, NULL), 0);
                assert_int_equal(session_unmap(s, a.ioas_id, iova, 4096, &unmapped, NULL), 0);
                close(a.fd);
        }

        assert_non_null(d);
        snprintf(path, sizeof(path), "%s/dev/vfio/devices/%s", e->root, d->cdev_name);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        assert_true(fd >= 0);
        assert_int_equal(session_attach_device_fd(s, fd, NULL, &err), -EBADF);
        assert_string_equal(err.error.name, "org.iommud.Broker.InvalidFd");
        assert_non_null(strstr(err.error.message, "read-only"));
        assert_non_null(strstr(err.error.message, d->name));
        broker_error_clear(&err);
        close(fd);
        fd = open_node(e, d);
        assert_int_equal(session_attach_device_fd(s, fd, NULL, NULL), 0);
        close(fd);
        session_free(s);
}

static void test_other_principal_denied(void **state) {
        Env *e = *state;
        const TopoDevice *d = pick_device(e, false);
        Session *s = new_session(e, 1001, 0);
        BrokerError err = BROKER_ERROR_INIT;
        int fd;

        assert_non_null(d);
        fd = open_node(e, d);
        assert_int_equal(session_attach_device_fd(s, fd, NULL, &err), -EPERM);
        assert_string_equal(err.error.name, "org.iommud.Broker.PolicyDenied");
        assert_string_equal(broker_error_get(&err, "step")->str, "principal");
        close(fd);
        session_free(s);
}

/* A batch outside the windows is refused whole, naming the area and whose windows. */
static void expect_batch_outside(Session *s, uint32_t ioas, const SessionMapArgs *areas,
                                 const char *whose) {
        BrokerError err = BROKER_ERROR_INIT;
        SessionInfo info;
        uint64_t iovas[2];

        assert_int_equal(session_map_batch(s, ioas, areas, 2, iovas, &err), -ERANGE);
        assert_string_equal(err.error.name, "org.iommud.Broker.InvalidRange");
        assert_int_equal(broker_error_get(&err, "area")->u64, 1);
        assert_non_null(strstr(err.error.message, whose));
        session_get_info(s, &info);
        assert_int_equal(info.usage.mappings, 0);
}

static void test_batch_inside_windows(void **state) {
        static const char windows[] =
                "{ \"rules\": { \"all\": { \"action\": \"allow\", \"match\": \"*\" } },\n"
                "  \"grants\": { \"vm\": { \"principals\": [ { \"user\": 1000 } ],\n"
                "    \"devices\": \"*\", \"iova-windows\": [ { \"start\": \"0x100000\",\n"
                "    \"last\": \"0x1fffff\" } ] } } }\n";
        Env *e = *state;
        Policy *old = e->host.policy;
        BrokerError err = BROKER_ERROR_INIT;
        const TopoDevice *d;
        SessionDeviceInfo info;
        Session *s;
        uint32_t ioas, hwpt;
        uint64_t iovas[2], unmapped;
        int fd = memfd(64 * 1024), dfd;
        SessionMapArgs areas[2] = {
                { .fd = fd, .length = 4096, .iova = 0x100000, .readable = true,
                  .fixed_iova = true },
                { .fd = fd, .length = 4096, .iova = 0x200000, .readable = true,
                  .fixed_iova = true },
        };

        assert_int_equal(policy_load_string(&e->host.policy, "windows.json", windows,
                                            strlen(windows), NULL, NULL),
                         0);
        policy_free(old);
        s = new_session(e, 1000, 0);
        assert_int_equal(session_create_address_space(s, &ioas, NULL), 0);
        areas[0].ioas_id = areas[1].ioas_id = ioas;

        /* No device attached: the principal's windows. */
        expect_batch_outside(s, ioas, areas, "the policy grants.");

        /* A device attached: its windows, by name. */
        d = pick_device(e, false);
        assert_non_null(d);
        dfd = open_node(e, d);
        assert_int_equal(session_attach_device_fd(s, dfd, &info, NULL), 0);
        close(dfd);
        assert_int_equal(session_attach_to_address_space(s, info.device_id, ioas, &hwpt, NULL), 0);
        expect_batch_outside(s, ioas, areas, d->name);
        assert_int_equal(session_map(s, &areas[1], &iovas[0], &err), -ERANGE);
        assert_non_null(strstr(err.error.message, d->name));

        areas[1].iova = 0x1ff000;
        assert_int_equal(session_map_batch(s, ioas, areas, 2, iovas, NULL), 0);
        assert_int_equal(session_unmap(s, ioas, 0x100000, 0x100000, &unmapped, NULL), 0);
        assert_int_equal(unmapped, 8192);
        close(fd);
        session_free(s);

        /* The group's policy again, for the tests after this one. */
        old = e->host.policy;
        assert_int_equal(policy_load_string(&e->host.policy, "policy.json", policy_text,
                                            strlen(policy_text), NULL, NULL),
                         0);
        policy_free(old);
}

static void test_revalidate_drops_lost_grants(void **state) {
        Env *e = *state;
        static const char no_grant[] =
                "{ \"rules\": { \"all\": { \"action\": \"allow\", \"match\": \"*\" } } }";
        const TopoDevice *d = pick_device(e, false);
        Session *s = new_session(e, 1000, 0);
        Policy *old = e->host.policy;
        SessionDeviceInfo info;
        uint32_t ioas, hwpt;
        int fd;

        assert_non_null(d);
        fd = open_node(e, d);
        assert_int_equal(session_attach_device_fd(s, fd, &info, NULL), 0);
        close(fd);
        assert_int_equal(session_create_address_space(s, &ioas, NULL), 0);
        assert_int_equal(session_attach_to_address_space(s, info.device_id, ioas, &hwpt, NULL), 0);

        assert_int_equal(policy_load_string(&e->host.policy, "new.json", no_grant,
                                            strlen(no_grant), NULL, NULL),
                         0);
        assert_int_equal(session_revalidate(s, NULL, NULL), 1);
        assert_int_equal(session_n_devices(s), 0);
        /* The address space only that device used went with it. */
        assert_int_equal(session_n_address_spaces(s), 0);
        assert_int_equal(e->host.n_claims, 0);
        policy_free(old);
        session_free(s);
}

/*
 * A caller that breaks a contract of the core (a NULL session or argument) is stopped at the
 * boundary: the call aborts when $IOMMUD_ASSERT_RETURN_IS_CRITICAL is set, as in every suite,
 * and returns the contract's value otherwise, where it would have crashed further in.
 */
static int contracts_broken(Session *s, uint32_t ioas_id) {
        SessionMapArgs m = { .ioas_id = ioas_id, .fd = -EBADF, .length = 4096, .readable = true };
        SessionBindPasidArgs b = { .ioas_id = ioas_id };
        IovaRange *ranges = NULL;
        uint64_t u64, align;
        uint32_t u32;
        size_t n;

        if (session_map(NULL, &m, &u64, NULL) != -EINVAL ||
            session_map(s, NULL, &u64, NULL) != -EINVAL ||
            session_map(s, &m, NULL, NULL) != -EINVAL)
                return 1;
        if (session_new(NULL, NULL, NULL, NULL) != -EINVAL ||
            session_allow_iovas(s, ioas_id, NULL, 1, NULL) != -EINVAL ||
            session_get_iova_ranges(s, ioas_id, &ranges, &n, NULL, NULL) != -EINVAL ||
            session_bind_pasid(s, &b, NULL, &u32, NULL) != -EINVAL ||
            session_detach_device(NULL, 1, NULL) != -EINVAL)
                return 2;
        if (session_describe(NULL) || session_n_devices(NULL) != 0 ||
            session_host_claim_owner(NULL, "0000:00:00.0") ||
            session_get_iova_ranges(s, ioas_id, &ranges, &n, &align, NULL) != 0)
                return 3;
        free(ranges);
        return 0;
}

static int run_broken_contracts(Session *s, uint32_t ioas_id, bool critical) {
        int status;
        pid_t pid;

        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                /* cmocka's handlers would carry on with the next test in this child. */
                for (int sig = 1; sig < NSIG; sig++)
                        if (sig != SIGKILL && sig != SIGSTOP)
                                (void)signal(sig, SIG_DFL);
                /* The abort message is expected; keep it out of the test log. */
                (void)freopen("/dev/null", "w", stderr);
                if (!critical)
                        unsetenv("IOMMUD_ASSERT_RETURN_IS_CRITICAL");
                else
                        setenv("IOMMUD_ASSERT_RETURN_IS_CRITICAL", "1", 1);
                _exit(contracts_broken(s, ioas_id));
        }
        assert_int_equal(waitpid(pid, &status, 0), pid);
        return status;
}

static void test_contracts_stop_at_the_boundary(void **state) {
        Env *e = *state;
        _cleanup_(session_freep) Session *s = new_session(e, 1000, 100);
        uint32_t ioas_id;
        int status;

        assert_int_equal(session_create_address_space(s, &ioas_id, NULL), 0);

        status = run_broken_contracts(s, ioas_id, true);
        assert_true(WIFSIGNALED(status));
        assert_int_equal(WTERMSIG(status), SIGABRT);

        status = run_broken_contracts(s, ioas_id, false);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_quota_charge_and_refund),
                cmocka_unit_test(test_handles_are_scoped),
                cmocka_unit_test(test_exclusive_and_released_on_free),
                cmocka_unit_test(test_connections_quota),
                cmocka_unit_test(test_lifetime_hook),
                cmocka_unit_test(test_bad_fds),
                cmocka_unit_test(test_sealed_memory_and_readonly_device),
                cmocka_unit_test(test_other_principal_denied),
                cmocka_unit_test(test_batch_inside_windows),
                cmocka_unit_test(test_contracts_stop_at_the_boundary),
                /* Last: it leaves the host with a policy that grants nothing. */
                cmocka_unit_test(test_revalidate_drops_lost_grants),
        };

        return cmocka_run_group_tests_name("session", tests, setup, teardown);
}
