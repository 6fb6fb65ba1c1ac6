/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * OpenDevices in the session core, on the simulated backend: the whole decision with the
 * delegation step, all or nothing, the claim it leaves (busy for others, counted against the
 * quota, shown as held), and its release by ReleaseDevices, by the end of the session and by a
 * policy reload that takes the grant away.
 */

#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "backend-sim.h"
#include "policy.h"
#include "session-handoff.h"
#include "session.h"
#include "sim-host.h"

typedef struct Env {
        char root[64];
        SessionHost host;
} Env;

#define RULES "\"rules\": { \"all\": { \"action\": \"allow\", \"match\": \"*\" } }"

/* uid 1000 may take devices as fds, uid 1001 may only use them through iommud. */
static const char policy_text[] =
        "{ " RULES ",\n"
        "  \"grants\": {\n"
        "    \"vmm\": { \"principals\": [ { \"user\": 1000 } ], \"devices\": \"*\",\n"
        "               \"delegation\": true, \"quotas\": { \"devices\": 2 } },\n"
        "    \"brokered\": { \"principals\": [ { \"user\": 1001 } ], \"devices\": \"*\" } } }\n";

/* The same without delegation for uid 1000. */
static const char policy_revoked[] =
        "{ " RULES ",\n"
        "  \"grants\": { \"vmm\": { \"principals\": [ { \"user\": 1000 } ], \"devices\": \"*\" } } }\n";

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

/* The first n eligible devices with a cdev, each alone in its group. */
static size_t pick_devices(Env *e, const char **ret, size_t n) {
        size_t k = 0;

        for (size_t i = 0; k < n && i < e->host.topology->n_devices; i++) {
                const TopoDevice *d = e->host.topology->devices[i];
                PolicyDecision dec = {};

                if (!d->has_cdev || !d->group || d->group->n_devices != 1)
                        continue;
                assert_int_equal(policy_decide(e->host.policy, e->host.topology, d, NULL, NULL,
                                               &dec),
                                 0);
                if (dec.allowed)
                        ret[k++] = d->name;
                policy_decision_clear(&dec);
        }
        assert_int_equal(k, n);
        return k;
}

static const char *fd_target(int fd, char *buf, size_t size) {
        char link[64];
        ssize_t n;

        snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
        n = readlink(link, buf, size - 1);
        assert_true(n > 0);
        buf[n] = 0;
        return buf;
}

static void test_open_hands_over_and_claims(void **state) {
        Env *e = *state;
        Session *vmm = new_session(e, 1000, 4242), *other = new_session(e, 1001, 4343);
        SessionHandoff h = SESSION_HANDOFF_INIT;
        BrokerError err = BROKER_ERROR_INIT;
        PolicyDecision dec = {};
        const char *names[2];
        char path[512], target[512];
        _cleanup_free_ char *identified = NULL;
        SessionInfo info;

        pick_devices(e, names, 2);
        assert_int_equal(session_open_devices(vmm, names, 2, &h, &err), 0);
        assert_string_equal(fd_target(h.iommufd, target, sizeof(target)),
                            "/memfd:" SIM_IOMMUFD_NAME " (deleted)");
        assert_int_equal(h.n_devices, 2);
        for (size_t i = 0; i < 2; i++) {
                assert_string_equal(h.devices[i].name, names[i]);
                assert_non_null(h.devices[i].cdev);
                snprintf(path, sizeof(path), "%s/dev/vfio/devices/%s", e->root, h.devices[i].cdev);
                assert_string_equal(fd_target(h.devices[i].fd, target, sizeof(target)), path);
                assert_int_equal(e->host.backend->ops->device_fd_identify(
                                         e->host.backend, h.devices[i].fd, &identified, NULL),
                                 0);
                assert_string_equal(identified, names[i]);
                free(TAKE_PTR(identified));
                assert_ptr_equal(session_host_claim_owner(&e->host, names[i]), vmm);
        }
        session_get_info(vmm, &info);
        assert_int_equal(info.usage.devices, 2);
        assert_int_equal(session_n_devices(vmm), 2);
        assert_int_equal(session_n_handed_over(vmm), 2);
        assert_string_equal(session_handed_over(vmm, 1), names[1]);

        /* Busy for every other session, named by its holder, in explain too. */
        assert_int_equal(session_attach_device_name(other, names[0], NULL, &err), -EBUSY);
        assert_string_equal(err.error.name, "org.iommud.Broker.DeviceBusy");
        assert_string_equal(broker_error_get(&err, "heldBy")->str, session_describe(vmm));
        assert_int_equal(session_explain_device(other, names[0], &dec, NULL), 0);
        assert_int_equal(dec.steps[POLICY_STEP_EXCLUSIVE].verdict, POLICY_FAIL);
        policy_decision_clear(&dec);
        /* And for the session itself: it took the files, it cannot also have iommud bind one. */
        assert_int_equal(session_attach_device_name(vmm, names[0], NULL, &err), -EBUSY);
        assert_non_null(strstr(broker_error_get(&err, "heldBy")->str, "OpenDevices"));
        assert_int_equal(session_open_devices(vmm, names, 1, &h, &err), -EBUSY);

        session_handoff_done(&h);
        session_free(other);
        /* The end of the session ends the claims. */
        session_free(vmm);
        assert_int_equal(e->host.n_claims, 0);
}

static void test_refusals_cost_nothing(void **state) {
        Env *e = *state;
        Session *vmm = new_session(e, 1000, 1), *brokered = new_session(e, 1001, 2);
        SessionHandoff h = SESSION_HANDOFF_INIT;
        BrokerError err = BROKER_ERROR_INIT;
        const char *names[3], *bad[2], *twice[2];
        SessionInfo info;

        pick_devices(e, names, 3);
        /* Granted the devices, not their fds: the delegation step says so. */
        assert_int_equal(session_open_devices(brokered, names, 1, &h, &err), -EPERM);
        assert_string_equal(err.error.name, "org.iommud.Broker.PolicyDenied");
        assert_string_equal(broker_error_get(&err, "step")->str, "delegation");
        assert_non_null(strstr(broker_error_get(&err, "reason")->str, "\"delegation\": true"));
        /* ... while it may still attach them through iommud. */
        assert_int_equal(session_attach_device_name(brokered, names[2], NULL, &err), -EPERM);
        assert_string_equal(broker_error_get(&err, "step")->str, "open-on-behalf");

        bad[0] = names[0];
        bad[1] = "0000:ff:1f.7";
        assert_int_equal(session_open_devices(vmm, bad, 2, &h, &err), -ENODEV);
        assert_string_equal(err.error.name, "org.iommud.Broker.NoSuchObject");
        twice[0] = twice[1] = names[0];
        assert_int_equal(session_open_devices(vmm, twice, 2, &h, &err), -EINVAL);
        assert_string_equal(broker_error_get(&err, "parameter")->str, "devices");
        assert_int_equal(session_open_devices(vmm, names, 0, &h, &err), -EINVAL);
        /* Three devices against a quota of two: the quota counts them all. */
        assert_int_equal(session_open_devices(vmm, names, 3, &h, &err), -EDQUOT);
        assert_string_equal(broker_error_get(&err, "resource")->str, "devices");

        /* A daemon that may not set RLIMIT_MODE hands out nothing (as for Delegate). */
        backend_sim_set_privileged(e->host.backend, false);
        assert_int_equal(session_open_devices(vmm, names, 1, &h, &err), -EOPNOTSUPP);
        assert_string_equal(err.error.name, "org.iommud.Broker.NotSupported");
        assert_string_equal(broker_error_get(&err, "feature")->str, "open-devices");
        assert_non_null(strstr(err.error.message, "CAP_SYS_RESOURCE"));
        backend_sim_set_privileged(e->host.backend, true);

        assert_int_equal(h.iommufd, -EBADF);
        assert_int_equal(h.n_devices, 0);
        assert_int_equal(e->host.n_claims, 0);
        session_get_info(vmm, &info);
        assert_int_equal(info.usage.devices, 0);
        assert_int_equal(session_n_handed_over(vmm), 0);
        session_free(vmm);
        session_free(brokered);
}

static void test_release(void **state) {
        Env *e = *state;
        Session *vmm = new_session(e, 1000, 1), *other = new_session(e, 1001, 2);
        SessionHandoff h = SESSION_HANDOFF_INIT;
        BrokerError err = BROKER_ERROR_INIT;
        const char *names[2], *unknown[2];
        SessionInfo info;

        pick_devices(e, names, 2);
        assert_int_equal(session_open_devices(vmm, names, 2, &h, &err), 0);
        session_handoff_done(&h);

        /* A name it does not hold that way releases nothing, not even the good one. */
        unknown[0] = names[0];
        unknown[1] = "0000:ff:1f.7";
        assert_int_equal(session_release_devices(vmm, unknown, 2, &err), -ENOENT);
        assert_string_equal(err.error.name, "org.iommud.Broker.NoSuchObject");
        assert_string_equal(broker_error_get(&err, "id")->str, "0000:ff:1f.7");
        assert_int_equal(e->host.n_claims, 2);

        assert_int_equal(session_release_devices(vmm, names, 1, &err), 0);
        assert_null(session_host_claim_owner(&e->host, names[0]));
        assert_ptr_equal(session_host_claim_owner(&e->host, names[1]), vmm);
        session_get_info(vmm, &info);
        assert_int_equal(info.usage.devices, 1);
        /* Free for another session now (through iommud: uid 1001 may). */
        assert_null(session_host_device_holder(&e->host,
                                               topology_find_device(e->host.topology, names[0]),
                                               other));

        assert_int_equal(session_release_devices(vmm, NULL, 0, &err), 0);
        assert_int_equal(e->host.n_claims, 0);
        assert_int_equal(session_n_handed_over(vmm), 0);
        session_get_info(vmm, &info);
        assert_int_equal(info.usage.devices, 0);
        session_free(vmm);
        session_free(other);
}

static void on_drop(Session *s, const char *device, const char *reason, void *userdata) {
        char *seen = userdata;

        snprintf(seen, 512, "%s: %s", device, reason);
}

static void test_reload_takes_the_grant_away(void **state) {
        Env *e = *state;
        Session *vmm = new_session(e, 1000, 1);
        SessionHandoff h = SESSION_HANDOFF_INIT;
        Policy *p = NULL;
        const char *names[1];
        char seen[512] = "";

        pick_devices(e, names, 1);
        assert_int_equal(session_open_devices(vmm, names, 1, &h, NULL), 0);
        session_handoff_done(&h);
        assert_int_equal(session_revalidate(vmm, on_drop, seen), 0);
        assert_string_equal(seen, "");

        assert_int_equal(policy_load_string(&p, "revoked.json", policy_revoked,
                                            strlen(policy_revoked), NULL, NULL),
                         0);
        policy_free(e->host.policy);
        e->host.policy = p;
        assert_int_equal(session_revalidate(vmm, on_drop, seen), 1);
        assert_non_null(strstr(seen, names[0]));
        assert_non_null(strstr(seen, "delegation: "));
        assert_int_equal(e->host.n_claims, 0);
        assert_int_equal(session_n_devices(vmm), 0);
        session_free(vmm);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_open_hands_over_and_claims, setup, teardown),
                cmocka_unit_test_setup_teardown(test_refusals_cost_nothing, setup, teardown),
                cmocka_unit_test_setup_teardown(test_release, setup, teardown),
                cmocka_unit_test_setup_teardown(test_reload_takes_the_grant_away, setup,
                                                teardown),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
