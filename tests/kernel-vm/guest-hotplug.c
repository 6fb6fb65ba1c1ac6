/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Hot-unplug on the real kernel: a session holds edu (iommud opened it, so iommud's file is
 * the only one) and ignores every event.  Removing the device through sysfs makes vfio-pci
 * ask the holder and wait; iommud tells the session, releases the device at the policy's
 * deadline, and the removal completes.  The session hears DeviceGone, the topology loses
 * the device without a restart, and after a rescan the device comes back, eligible and
 * usable by a new session.
 */

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "guest-broker-util.h"
#include "guest-util.h"
#include "macros.h"

#define EDU_ROOT "0000:00:03.0"
#define BRIDGE_SIBLING "0000:01:01.0" /* pci-testdev, in the bridge's group with BRIDGE_EDU */
#define BRIDGE_EDU "0000:01:02.0"
#define GRACE_MS 2000

/* Writes "1" to path from a child; returns its pid (the write blocks while the kernel waits). */
static pid_t write_one_async(const char *path) {
        pid_t pid = fork();

        if (pid == 0)
                _exit(write_file(path, "1") < 0 ? EXIT_FAILURE : EXIT_SUCCESS);
        return pid;
}

/* Whether ExplainDevice comes to answer as wanted (present, and then allowed), within 10 s. */
static bool wait_explain(VarlinkClient *c, const char *bdf, bool want_present,
                         bool want_allowed) {
        _cleanup_(varlink_reply_clear) VarlinkReply rep = VARLINK_REPLY_INIT;

        for (unsigned i = 0; i < 200; i++) {
                const char *error;
                json_object *p = call(c, "ExplainDevice",
                                      params("device", json_object_new_string(bdf), NULL), NULL,
                                      0, &rep, &error);
                json_object *a;
                bool present = !error, allowed;

                allowed = present && json_object_object_get_ex(p, "allowed", &a) &&
                          json_object_get_boolean(a);
                if (present == want_present && (!present || allowed == want_allowed))
                        return true;
                sleep_ms(50);
        }
        return false;
}

/* The next event of a WatchEvents() stream, within timeout_ms; its kind goes to kind. */
static json_object *next_event(VarlinkClient *w, VarlinkReply *rep, int timeout_ms,
                               char *kind, size_t size) {
        json_object *ev;

        varlink_reply_clear(rep);
        kind[0] = '\0';
        if (varlink_client_wait(w, timeout_ms, rep) < 0 || rep->error ||
            !json_object_object_get_ex(rep->parameters, "event", &ev))
                return NULL;
        snprintf(kind, size, "%s", get_str(ev, "kind"));
        return ev;
}

static void test_remove_held(VarlinkClient *c, VarlinkClient *w) {
        _cleanup_(varlink_reply_clear) VarlinkReply rep = VARLINK_REPLY_INIT;
        _cleanup_(varlink_reply_clear) VarlinkReply ev_rep = VARLINK_REPLY_INIT;
        const char *error;
        json_object *p, *ev;
        char kind[64];
        uint64_t dev, t0, t_req = 0, t_rel = 0, t_done;
        int status = -1;
        pid_t pid;

        p = call(c, "AttachDevice", params("device", json_object_new_string(EDU_ROOT), NULL), NULL,
                 0, &rep, &error);
        tap(!error, "a session holds %s%s%s", EDU_ROOT, error ? ": " : "", error ?: "");
        if (error)
                return;
        dev = get_u64(p, "deviceId");
        p = call(c, "GetSession", NULL, NULL, 0, &rep, &error);
        (void)call(w, "JoinSession",
                   params("token", json_object_new_string(get_str(p, "token")), NULL), NULL, 0,
                   &ev_rep, &error);
        if (error || varlink_client_send(w, "org.iommud.Broker.WatchEvents", NULL, NULL, 0,
                                         VARLINK_CLIENT_MORE) < 0) {
                tap(false, "watching the session's events: %s", error ?: "send failed");
                return;
        }

        t0 = now_ns();
        pid = write_one_async("/sys/bus/pci/devices/" EDU_ROOT "/remove");
        ev = next_event(w, &ev_rep, 5000, kind, sizeof(kind));
        t_req = now_ns();
        tap(ev && streq(kind, "release_requested") && get_u64(ev, "deviceId") == dev &&
                    get_u64(ev, "deadline") != UINT64_MAX,
            "the holder is asked for %s back (event '%s' after %" PRIu64 " ms)", EDU_ROOT, kind,
            (t_req - t0) / 1000000);
        ev = next_event(w, &ev_rep, GRACE_MS + 5000, kind, sizeof(kind));
        t_rel = now_ns();
        tap(ev && streq(kind, "released") && streq(get_str(ev, "reason"), "released to the host"),
            "iommud releases %s at the deadline (event '%s' after %" PRIu64 " ms, grace %d ms)",
            EDU_ROOT, kind, (t_rel - t0) / 1000000, GRACE_MS);
        (void)waitpid(pid, &status, 0);
        t_done = now_ns();
        tap(WIFEXITED(status) && WEXITSTATUS(status) == 0 &&
                    t_done - t0 <= (uint64_t)(GRACE_MS + 1000) * 1000000u,
            "the removal completes within the grace period plus a second (%" PRIu64 " ms)",
            (t_done - t0) / 1000000);

        (void)call(c, "DetachDevice", params("deviceId", u64(dev), NULL), NULL, 0, &rep, &error);
        tap(error && streq(error, "org.iommud.Broker.DeviceGone") &&
                    streq(get_str(rep.parameters, "reason"), "released to the host"),
            "the holder's next call on it is DeviceGone (%s, '%s')", error ?: "no error",
            get_str(rep.parameters, "reason"));
        tap(wait_explain(c, EDU_ROOT, false, false),
            "the topology no longer has %s (read in place)", EDU_ROOT);
}

static void test_rescan(void) {
        _cleanup_(varlink_client_freep) VarlinkClient *c = NULL;
        _cleanup_(varlink_reply_clear) VarlinkReply rep = VARLINK_REPLY_INIT;
        const char *error;
        int r;

        r = write_file("/sys/bus/pci/rescan", "1");
        tap(r >= 0 && access("/sys/bus/pci/devices/" EDU_ROOT, F_OK) == 0,
            "a rescan brings %s back", EDU_ROOT);
        r = set_driver(EDU_ROOT, "vfio-pci");
        tap(r >= 0, "%s binds to vfio-pci again", EDU_ROOT);
        if (varlink_client_connect(&c, SOCKET_PATH) < 0) {
                tap(false, "connect to %s", SOCKET_PATH);
                return;
        }
        tap(wait_explain(c, EDU_ROOT, true, true), "%s is back in the topology and eligible",
            EDU_ROOT);
        (void)call(c, "AttachDevice", params("device", json_object_new_string(EDU_ROOT), NULL),
                   NULL, 0, &rep, &error);
        tap(!error, "a new session attaches %s%s%s", EDU_ROOT, error ? ": " : "", error ?: "");
}

/*
 * A sibling moved to a host driver makes the bridge group not viable, and unbinding it makes
 * the group viable again: each seen by the running daemon, from the uevents alone.
 */
static void test_bridge_sibling(void) {
        _cleanup_(varlink_client_freep) VarlinkClient *c = NULL;
        int r;

        if (access("/sys/bus/pci/drivers/pci-pf-stub", F_OK) < 0) {
                skip("bridge group sibling # SKIP the kernel has no pci-pf-stub host driver");
                return;
        }
        if (varlink_client_connect(&c, SOCKET_PATH) < 0) {
                tap(false, "connect to %s", SOCKET_PATH);
                return;
        }
        tap(wait_explain(c, BRIDGE_EDU, true, true), "%s is eligible", BRIDGE_EDU);
        r = set_driver(BRIDGE_SIBLING, "pci-pf-stub");
        tap(r >= 0 && wait_explain(c, BRIDGE_EDU, true, false),
            "%s on the host driver pci-pf-stub makes %s ineligible", BRIDGE_SIBLING, BRIDGE_EDU);
        r = write_file("/sys/bus/pci/devices/" BRIDGE_SIBLING "/driver/unbind", BRIDGE_SIBLING);
        tap(r >= 0 && wait_explain(c, BRIDGE_EDU, true, true),
            "unbinding %s makes the group viable and %s eligible again", BRIDGE_SIBLING,
            BRIDGE_EDU);
        r = set_driver(BRIDGE_SIBLING, "vfio-pci");
        tap(r >= 0 && wait_explain(c, BRIDGE_EDU, true, true), "%s back on vfio-pci",
            BRIDGE_SIBLING);
}

int main(int argc, char **argv) {
        _cleanup_(varlink_client_freep) VarlinkClient *c = NULL, *w = NULL;
        char policy[512];
        int r;

        if (argc > 1)
                iommud_path = argv[1];
        if (access("/dev/iommu", F_OK) < 0) {
                skip("hot-unplug on the kernel backend # SKIP no /dev/iommu");
                return 77;
        }
        iommud_backend = "iommufd";
        snprintf(policy, sizeof(policy),
                 "{\n"
                 "  \"limits\": { \"device-release-timeout-ms\": %d },\n"
                 "  \"rules\": { \"all\": { \"action\": \"allow\", \"match\": \"*\" } },\n"
                 "  \"grants\": { \"root\": { \"principals\": [ { \"user\": 0 } ],\n"
                 "                           \"devices\": \"*\", \"open-on-behalf\": true } }\n"
                 "}\n",
                 GRACE_MS);
        daemon_policy = policy;
        r = daemon_start();
        tap(r >= 0, "iommud starts on the kernel backend (%s)", r < 0 ? strerror(-r) : "ready");
        if (r < 0 || varlink_client_connect(&c, SOCKET_PATH) < 0 ||
            varlink_client_connect(&w, SOCKET_PATH) < 0)
                return tap(false, "connect to %s", SOCKET_PATH), EXIT_FAILURE;
        test_remove_held(c, w);
        test_rescan();
        test_bridge_sibling();
        c = varlink_client_free(c);
        w = varlink_client_free(w);
        r = daemon_stop();
        tap(r == 0, "iommud exits cleanly on SIGTERM (status %d)", r);
        return tap_failed > 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
