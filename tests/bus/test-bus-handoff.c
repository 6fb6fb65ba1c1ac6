/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * OpenDevices and ReleaseDevices on org.iommud1.Session: the same handoff as on the socket,
 * with the fds as "h".  A private dbus-daemon and the real iommud on a simulated host; the
 * client is root, which needs no polkit to create a session.
 */

#include <errno.h>
#include <fcntl.h>
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
#include "itest.h"

#define DEV "0000:01:00.0" /* NVMe on vfio-pci, a group of its own */

static struct {
        char dir[64];
        pid_t dbus_pid;
        sd_bus *bus;
        ItestDaemon daemon;
} env;

static int setup(void **state) {
        char *policy = itest_policy_for_self("\"delegation\": true");
        int r;

        snprintf(env.dir, sizeof(env.dir), "/tmp/iommud-bus-handoff-XXXXXX");
        assert_non_null(mkdtemp(env.dir));
        assert_int_equal(chmod(env.dir, 0755), 0);
        /* As root (main() checked), dbus-daemon must come up: else a failure. */
        r = bus_harness_start_dbus(env.dir, &env.dbus_pid, &env.bus);
        if (r < 0) {
                print_message("Bail out! dbus-daemon did not come up: %s\n", strerror(-r));
                return -1;
        }
        assert_non_null(policy);
        assert_int_equal(itest_daemon_start(&env.daemon, "workstation", policy), 0);
        free(policy);
        assert_int_equal(bus_harness_wait_for_name(env.bus, BUS_NAME, env.daemon.pid), 0);
        return 0;
}

static int teardown(void **state) {
        if (env.daemon.pid > 0)
                assert_int_equal(itest_daemon_stop(&env.daemon), 0);
        env.bus = sd_bus_flush_close_unref(env.bus);
        bus_harness_reap(&env.dbus_pid);
        bus_harness_remove_dir(env.dir);
        return 0;
}

/* Calls path's member; NULL and the error's name in *ret_error when it fails. */
static sd_bus_message *call(const char *path, const char *iface, const char *member,
                            const char **ret_error, const char *types, ...) {
        static char name[256];
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *m = NULL, *reply = NULL;
        va_list ap;

        assert_int_equal(sd_bus_message_new_method_call(env.bus, &m, BUS_NAME, path, iface,
                                                        member),
                         0);
        va_start(ap, types);
        assert_true(sd_bus_message_appendv(m, types, ap) >= 0);
        va_end(ap);
        if (sd_bus_call(env.bus, m, 0, &error, &reply) < 0) {
                snprintf(name, sizeof(name), "%s", error.name);
                reply = NULL;
        } else
                name[0] = 0;
        if (ret_error)
                *ret_error = name;
        else if (!reply)
                fail_msg("%s.%s: %s: %s", iface, member, error.name, error.message);
        sd_bus_error_free(&error);
        sd_bus_message_unref(m);
        return reply;
}

static char *device_holder(void) {
        _cleanup_free_ char *path = NULL;
        char *v = NULL;

        assert_int_equal(sd_bus_path_encode(BUS_DEVICE_PREFIX, DEV, &path), 0);
        assert_int_equal(sd_bus_get_property_string(env.bus, BUS_NAME, path,
                                                    BUS_DEVICE_INTERFACE, "Holder", NULL, &v),
                         0);
        return v;
}

static void test_open_and_release(void **state) {
        sd_bus_message *reply;
        const char *session, *name, *cdev, *error;
        char link[64], target[512], cdev_path[512];
        _cleanup_free_ char *holder = NULL;
        uint32_t group, n_devices = 0;
        int iommufd, fd;
        ssize_t n;

        reply = call(BUS_PATH, BUS_MANAGER_INTERFACE, "CreateSession", NULL, "");
        assert_int_equal(sd_bus_message_read(reply, "o", &session), 1);
        session = strdup(session);
        sd_bus_message_unref(reply);

        reply = call(session, BUS_SESSION_INTERFACE, "OpenDevices", NULL, "as", 1, DEV);
        assert_int_equal(sd_bus_message_read(reply, "h", &iommufd), 1);
        snprintf(link, sizeof(link), "/proc/self/fd/%d", iommufd);
        n = readlink(link, target, sizeof(target) - 1);
        assert_true(n > 0);
        target[n] = 0;
        assert_string_equal(target, "/memfd:iommufd-sim (deleted)");
        assert_int_equal(sd_bus_message_enter_container(reply, 'a', "(shsu)"), 1);
        assert_int_equal(sd_bus_message_read(reply, "(shsu)", &name, &fd, &cdev, &group), 1);
        assert_string_equal(name, DEV);
        snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
        n = readlink(link, target, sizeof(target) - 1);
        assert_true(n > 0);
        target[n] = 0;
        snprintf(cdev_path, sizeof(cdev_path), "%s/vfio/devices/%s", env.daemon.dev_root, cdev);
        assert_string_equal(target, cdev_path);
        assert_int_equal(sd_bus_message_read(reply, "(shsu)", &name, &fd, &cdev, &group), 0);
        sd_bus_message_unref(reply);

        /* Held by the session, counted among its devices. */
        holder = device_holder();
        assert_non_null(strstr(holder, "uid 0"));
        assert_int_equal(sd_bus_get_property_trivial(env.bus, BUS_NAME, session,
                                                     BUS_SESSION_INTERFACE, "Devices", NULL, 'u',
                                                     &n_devices),
                         0);
        assert_int_equal(n_devices, 1);
        /* Taken already: the same session cannot take it again. */
        assert_null(call(session, BUS_SESSION_INTERFACE, "OpenDevices", &error, "as", 1, DEV));
        assert_string_equal(error, "org.iommud.Broker.DeviceBusy");

        sd_bus_message_unref(call(session, BUS_SESSION_INTERFACE, "ReleaseDevices", NULL, "as",
                                  0));
        free(holder);
        holder = device_holder();
        assert_string_equal(holder, "");
        assert_null(call(session, BUS_SESSION_INTERFACE, "ReleaseDevices", &error, "as", 1,
                         DEV));
        assert_string_equal(error, "org.iommud.Broker.NoSuchObject");
        assert_null(call(session, BUS_SESSION_INTERFACE, "OpenDevices", &error, "as", 0));
        assert_string_equal(error, "org.freedesktop.DBus.Error.InvalidArgs");
        sd_bus_message_unref(call(session, BUS_SESSION_INTERFACE, "Close", NULL, ""));
        free((char *)session);
}

/* PrepareClaim and the rest on the bus: the socket's claims, behind org.iommud1.claim. */
static void test_claims(void **state) {
        const char *spec, *cdi_device, *error, *id;
        _cleanup_free_ char *holder = NULL;
        char path[512];
        sd_bus_message *reply;
        int prepared = -1, released = -1;

        reply = call(BUS_PATH, BUS_MANAGER_INTERFACE, "PrepareClaim", NULL, "sasuus", "pod-1", 1,
                     DEV, (uint32_t)getuid(), UINT32_MAX, "");
        assert_int_equal(sd_bus_message_read(reply, "ssb", &spec, &cdi_device, &prepared), 1);
        snprintf(path, sizeof(path), "%s/cdi/iommud-claim-pod-1.json", env.daemon.dir);
        assert_string_equal(spec, path);
        assert_string_equal(cdi_device, "iommud.org/claim=pod-1");
        assert_true(prepared);
        assert_int_equal(access(path, F_OK), 0);
        sd_bus_message_unref(reply);
        reply = call(BUS_PATH, BUS_MANAGER_INTERFACE, "PrepareClaim", NULL, "sasuus", "pod-1", 1,
                     DEV, (uint32_t)getuid(), UINT32_MAX, "");
        assert_int_equal(sd_bus_message_read(reply, "ssb", &spec, &cdi_device, &prepared), 1);
        assert_false(prepared);
        sd_bus_message_unref(reply);

        holder = device_holder();
        assert_string_equal(holder, "claim pod-1 (uid 0)");
        assert_null(call(BUS_PATH, BUS_MANAGER_INTERFACE, "PrepareClaim", &error, "sasuus",
                         "pod-2", 1, DEV, (uint32_t)getuid(), UINT32_MAX, ""));
        assert_string_equal(error, "org.iommud.Broker.DeviceBusy");
        assert_null(call(BUS_PATH, BUS_MANAGER_INTERFACE, "PrepareClaim", &error, "sasuus",
                         "pod/2", 1, DEV, (uint32_t)getuid(), UINT32_MAX, ""));
        assert_string_equal(error, "org.iommud.Manager.InvalidClaimId");

        reply = call(BUS_PATH, BUS_MANAGER_INTERFACE, "ListClaims", NULL, "");
        assert_int_equal(sd_bus_message_enter_container(reply, 'a', "(suusassss)"), 1);
        assert_int_equal(sd_bus_message_enter_container(reply, 'r', "suusassss"), 1);
        assert_int_equal(sd_bus_message_read(reply, "s", &id), 1);
        assert_string_equal(id, "pod-1");
        sd_bus_message_unref(reply);

        reply = call(BUS_PATH, BUS_MANAGER_INTERFACE, "UnprepareClaim", NULL, "s", "pod-1");
        assert_int_equal(sd_bus_message_read(reply, "b", &released), 1);
        assert_true(released);
        sd_bus_message_unref(reply);
        assert_int_equal(access(path, F_OK), -1);
        free(holder);
        holder = device_holder();
        assert_string_equal(holder, "");
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_open_and_release),
                cmocka_unit_test(test_claims),
        };

        if (geteuid() != 0) {
                printf("1..0 # SKIP a system-style dbus-daemon needs root\n");
                return 0;
        }
        return cmocka_run_group_tests(tests, setup, teardown);
}
