/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Principals that cannot be forged, on org.iommud1.  The bus path takes the
 * caller's credentials from the bus driver, not from a socket, and must come
 * to the same principal: a client as nobody in a scope named like the granted
 * unit, made in its own service manager's cgroup, is no unit; a client in a
 * machine scope of the system manager is.  Each asks Manager.ExplainDevice
 * about itself, which decides with its own credentials (see explain.h).
 * Real cgroups (itest-cgroup.h), a private dbus-daemon, no polkit needed.
 */

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <systemd/sd-bus.h>

#include "bus-harness.h"
#include "bus.h"
#include "itest-cgroup.h"
#include "itest.h"

#define NOBODY 65534
#define DEV "0000:01:00.0"
#define USER_MANAGER "user.slice/user-65534.slice/user@65534.service"

static const char topology[] =
        "{\n"
        "  \"name\": \"bus-principals\",\n"
        "  \"description\": \"one VFIO device\",\n"
        "  \"cdev_major\": 511,\n"
        "  \"iommus\": [ { \"name\": \"dmar0\", \"kind\": \"intel\", \"aperture_start\": \"0x0\",\n"
        "      \"aperture_last\": \"0x7fffffffff\", \"page_sizes\": [\"4K\", \"2M\"] } ],\n"
        "  \"groups\": [\n"
        "    { \"id\": 1, \"type\": \"DMA\", \"iommu\": \"dmar0\", \"reserved_regions\": [],\n"
        "      \"devices\": [ { \"name\": \"" DEV "\", \"vendor\": \"0x10ee\",\n"
        "        \"device\": \"0x505c\", \"class\": \"0x120000\", \"driver\": \"vfio-pci\" } ] }\n"
        "  ]\n"
        "}\n";

static const char policy[] =
        "{\n"
        "  \"rules\": { \"all\": { \"action\": \"allow\", \"match\": \"*\" } },\n"
        "  \"grants\": {\n"
        "    \"vms\": { \"principals\": \"unit:machine-qemu*.scope\", \"devices\": \"" DEV "\" }\n"
        "  }\n"
        "}\n";

static struct {
        char dir[64];
        ItestCgroups cg;
        pid_t dbus_pid;
        sd_bus *bus;
        ItestDaemon daemon;
} env;

static int setup(void **state) {
        char path[128];
        int r;

        snprintf(env.dir, sizeof(env.dir), "/tmp/iommud-bus-principals-XXXXXX");
        assert_non_null(mkdtemp(env.dir));
        assert_int_equal(chmod(env.dir, 0755), 0);
        /* As root (main() checked), dbus-daemon must come up: else a failure. */
        r = bus_harness_start_dbus(env.dir, &env.dbus_pid, &env.bus);
        if (r < 0) {
                print_message("Bail out! dbus-daemon did not come up: %s\n", strerror(-r));
                return -1;
        }
        snprintf(path, sizeof(path), "%s/topology.json", env.dir);
        assert_int_equal(itest_write_file(path, topology), 0);
        assert_int_equal(itest_daemon_start(&env.daemon, path, policy), 0);
        assert_int_equal(bus_harness_wait_for_name(env.bus, BUS_NAME, env.daemon.pid), 0);
        return 0;
}

static int teardown(void **state) {
        if (env.daemon.pid > 0)
                assert_int_equal(itest_daemon_stop(&env.daemon), 0);
        env.bus = sd_bus_flush_close_unref(env.bus);
        bus_harness_reap(&env.dbus_pid);
        itest_cgroups_cleanup(&env.cg);
        bus_harness_remove_dir(env.dir);
        return 0;
}

/* In the child, as nobody in its cgroup: may I use DEV, and why (or why not)? */
static int client(void *userdata, char *report, size_t size) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        const char *step, *verdict, *reason, *principal = "";
        sd_bus *bus = NULL;
        int allowed, r;

        if (sd_bus_open_system(&bus) < 0)
                return 1;
        r = sd_bus_call_method(bus, BUS_NAME, BUS_PATH, BUS_MANAGER_INTERFACE, "ExplainDevice",
                               &error, &reply, "su", DEV, (uint32_t)NOBODY);
        if (r < 0) {
                snprintf(report, size, "error=%s: %s\n", error.name, error.message);
                return 2;
        }
        if (sd_bus_message_read(reply, "b", &allowed) < 0 ||
            sd_bus_message_enter_container(reply, 'a', "(sss)") <= 0)
                return 3;
        while (sd_bus_message_read(reply, "(sss)", &step, &verdict, &reason) > 0)
                if (strcmp(step, "principal") == 0)
                        principal = reason;
        snprintf(report, size, "allowed=%d\nreason=%s\n", allowed, principal);
        sd_bus_message_unref(reply);
        sd_bus_flush_close_unref(bus);
        return 0;
}

static void run_client(const char *rel, const char *user_rel, bool *ret_allowed, char *reason,
                       size_t size) {
        char report[2048];
        const char *p;
        int status;

        status = itest_cgroup_run(&env.cg, rel, user_rel, NOBODY, NOBODY, client, NULL, report,
                                  sizeof(report));
        print_message("# in %s%s%s:\n", rel, user_rel ? "/" : "", user_rel ?: "");
        for (const char *l = report; *l; l += strcspn(l, "\n") + (l[strcspn(l, "\n")] != 0))
                print_message("#   %.*s\n", (int)strcspn(l, "\n"), l);
        assert_int_equal(status, 0);
        *ret_allowed = strstr(report, "allowed=1") != NULL;
        p = strstr(report, "reason=");
        assert_non_null(p);
        p += strlen("reason=");
        snprintf(reason, size, "%.*s", (int)strcspn(p, "\n"), p);
}

static void test_user_manager_scope(void **state) {
        char reason[1024];
        bool allowed;

        assert_int_equal(itest_cgroup_make(&env.cg, USER_MANAGER, USER_MANAGER, NOBODY), 0);
        (void)itest_cgroup_mark_delegated(&env.cg, USER_MANAGER, "trusted.delegate");
        (void)itest_cgroup_mark_delegated(&env.cg, USER_MANAGER, "user.delegate");
        run_client(USER_MANAGER, "app.slice/machine-qemu-evil.scope", &allowed, reason,
                   sizeof(reason));
        assert_false(allowed);
        /* The gid is the one /proc says, verified: the bus does not record it. */
        assert_non_null(strstr(reason, "uid 65534 (gid 65534, "));
        assert_non_null(strstr(reason, "no unit: machine-qemu-evil.scope is under "
                                       "user@65534.service, a user's own service manager"));
}

static void test_delegated_service(void **state) {
        char reason[1024];
        bool allowed;

        assert_int_equal(itest_cgroup_make(&env.cg, "system.slice/vmm.service",
                                           "system.slice/vmm.service", NOBODY),
                         0);
        run_client("system.slice/vmm.service", "machine-qemu-evil.scope", &allowed, reason,
                   sizeof(reason));
        assert_false(allowed);
        assert_non_null(strstr(reason, "which belongs to uid 65534"));
}

static void test_machine_scope(void **state) {
        const char *rel = "machine.slice/machine-qemu-good.scope/libvirt/emulator";
        char reason[1024];
        bool allowed;

        assert_int_equal(itest_cgroup_make(&env.cg, rel, NULL, 0), 0);
        (void)itest_cgroup_mark_delegated(&env.cg, "machine.slice/machine-qemu-good.scope",
                                          "trusted.delegate");
        run_client(rel, NULL, &allowed, reason, sizeof(reason));
        assert_true(allowed);
        assert_non_null(strstr(reason, "uid 65534 (machine-qemu-good.scope) is granted"));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_user_manager_scope),
                cmocka_unit_test(test_delegated_service),
                cmocka_unit_test(test_machine_scope),
        };

        /* Without root or a cgroup2 tree to write: a TAP plan of zero, which says why. */
        if (itest_cgroups_init(&env.cg) < 0) {
                printf("1..0 # SKIP %s\n", env.cg.skip);
                return 0;
        }
        return cmocka_run_group_tests_name("bus-principals", tests, setup, teardown);
}
