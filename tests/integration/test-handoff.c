/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * OpenDevices and ReleaseDevices against the real iommud on a simulated host: the fds in the
 * reply, the claim they leave (busy for others, shown as held, listed in the session), and
 * its end by ReleaseDevices and by the end of the connection while the client keeps its files.
 */

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "iommud/iommud-handoff.h"
#include "itest.h"

#define DEV_A "0000:01:00.0" /* NVMe on vfio-pci, a group of its own */

typedef struct Fixture {
        ItestDaemon daemon;
} Fixture;

static int setup(void **state) {
        Fixture *f = calloc(1, sizeof(*f));
        char *policy = itest_policy_for_self("\"delegation\": true, \"open-on-behalf\": true");

        assert_non_null(f);
        assert_non_null(policy);
        assert_int_equal(itest_daemon_start(&f->daemon, "workstation", policy), 0);
        free(policy);
        *state = f;
        return 0;
}

static int teardown(void **state) {
        Fixture *f = *state;

        /* A clean exit status also means no sanitizer report and no leak. */
        assert_int_equal(itest_daemon_stop(&f->daemon), 0);
        free(f);
        return 0;
}

static ItestClient *client(Fixture *f) {
        ItestClient *c = NULL;

        assert_int_equal(itest_client_connect(&c, f->daemon.socket), 0);
        return c;
}

static json_object *names(const char *a, const char *b) {
        json_object *v = json_object_new_array();

        json_object_array_add(v, json_object_new_string(a));
        if (b)
                json_object_array_add(v, json_object_new_string(b));
        return v;
}

/* The error name of a reply, "" on success; the reply is freed. */
static char *error_of(json_object *r, char *buf, size_t size) {
        const char *e = itest_reply_error(r);

        snprintf(buf, size, "%s", e ?: "");
        json_object_put(r);
        return buf;
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

/* The heldBy of device name in GetTopology as c sees it; "" when free. */
static char *held_by(ItestClient *c, const char *name, char *buf, size_t size) {
        json_object *r = itest_call(c, "org.iommud.Broker.GetTopology", NULL, NULL, 0), *devs;

        buf[0] = 0;
        assert_null(itest_reply_error(r));
        assert_true(json_object_object_get_ex(itest_reply_params(r), "devices", &devs));
        for (size_t i = 0; i < json_object_array_length(devs); i++) {
                json_object *d = json_object_array_get_idx(devs, i), *h;

                if (strcmp(itest_get_string(d, "name"), name) == 0 &&
                    json_object_object_get_ex(d, "heldBy", &h))
                        snprintf(buf, size, "%s", json_object_get_string(h));
        }
        json_object_put(r);
        return buf;
}

static void test_open_devices(void **state) {
        Fixture *f = *state;
        ItestClient *vmm = client(f), *other = client(f);
        json_object *r, *dev;
        char buf[512], path[512], who[128];

        r = itest_call(vmm, "org.iommud.Broker.OpenDevices",
                       itest_params("devices", names(DEV_A, NULL), NULL), NULL, 0);
        assert_null(itest_reply_error(r));
        assert_int_equal(itest_get_u64(itest_reply_params(r), "iommufd"), 0);
        dev = json_object_array_get_idx(
                json_object_object_get(itest_reply_params(r), "devices"), 0);
        assert_string_equal(itest_get_string(dev, "device"), DEV_A);
        assert_int_equal(itest_get_u64(dev, "fd"), 1);
        assert_int_equal(vmm->n_rfds, 2);
        /* fd 0: the stand-in iommufd; fd 1: the device's node, opened for the client. */
        assert_string_equal(fd_target(vmm->rfds[0], buf, sizeof(buf)),
                            "/memfd:iommufd-sim (deleted)");
        snprintf(path, sizeof(path), "%s/vfio/devices/%s", f->daemon.dev_root,
                 itest_get_string(dev, "cdev"));
        assert_string_equal(fd_target(vmm->rfds[1], buf, sizeof(buf)), path);
        assert_true((fcntl(vmm->rfds[1], F_GETFL) & O_ACCMODE) == O_RDWR);
        json_object_put(r);

        /* Held by the client's session, for every other client. */
        snprintf(who, sizeof(who), "uid %u (pid %d)", (unsigned)getuid(), (int)getpid());
        assert_string_equal(held_by(other, DEV_A, buf, sizeof(buf)), who);
        r = itest_call(other, "org.iommud.Broker.AttachDevice",
                       itest_params("device", json_object_new_string(DEV_A), NULL), NULL, 0);
        assert_string_equal(itest_reply_error(r), "org.iommud.Broker.DeviceBusy");
        assert_string_equal(itest_get_string(itest_reply_params(r), "heldBy"), who);
        json_object_put(r);
        assert_string_equal(error_of(itest_call(other, "org.iommud.Broker.OpenDevices",
                                                itest_params("devices", names(DEV_A, NULL), NULL),
                                                NULL, 0),
                                     buf, sizeof(buf)),
                            "org.iommud.Broker.DeviceBusy");

        /* Released: the other client gets it at once, though the first keeps its files. */
        assert_string_equal(error_of(itest_call(vmm, "org.iommud.Broker.ReleaseDevices",
                                                itest_params("devices", names(DEV_A, NULL), NULL),
                                                NULL, 0),
                                     buf, sizeof(buf)),
                            "");
        assert_string_equal(held_by(other, DEV_A, buf, sizeof(buf)), "");
        assert_string_equal(error_of(itest_call(vmm, "org.iommud.Broker.ReleaseDevices",
                                                itest_params("devices", names(DEV_A, NULL), NULL),
                                                NULL, 0),
                                     buf, sizeof(buf)),
                            "org.iommud.Broker.NoSuchObject");
        itest_client_free(vmm);
        itest_client_free(other);
}

static void test_claim_ends_with_the_connection(void **state) {
        Fixture *f = *state;
        ItestClient *vmm = client(f), *other = client(f);
        json_object *r;
        char buf[512];
        int kept;

        r = itest_call(vmm, "org.iommud.Broker.OpenDevices",
                       itest_params("devices", names(DEV_A, NULL), NULL), NULL, 0);
        assert_null(itest_reply_error(r));
        json_object_put(r);
        kept = fcntl(vmm->rfds[1], F_DUPFD_CLOEXEC, 3);
        assert_true(kept >= 0);
        assert_string_not_equal(held_by(other, DEV_A, buf, sizeof(buf)), "");

        /* The session ends; the device's file lives on here, but the claim is gone. */
        itest_client_free(vmm);
        for (int i = 0; i < 200 && *held_by(other, DEV_A, buf, sizeof(buf)); i++)
                usleep(10000);
        assert_string_equal(held_by(other, DEV_A, buf, sizeof(buf)), "");
        r = itest_call(other, "org.iommud.Broker.OpenDevices",
                       itest_params("devices", names(DEV_A, NULL), NULL), NULL, 0);
        assert_null(itest_reply_error(r));
        json_object_put(r);
        close(kept);
        itest_client_free(other);
}

static void test_refusals(void **state) {
        Fixture *f = *state;
        ItestClient *c = client(f);
        json_object *r;
        char buf[512];

        /* All or none: an unknown device refuses the whole call. */
        r = itest_call(c, "org.iommud.Broker.OpenDevices",
                       itest_params("devices", names(DEV_A, "0000:ff:1f.7"), NULL), NULL, 0);
        assert_string_equal(itest_reply_error(r), "org.iommud.Broker.NoSuchObject");
        assert_int_equal(c->n_rfds, 0);
        json_object_put(r);
        assert_string_equal(error_of(itest_call(c, "org.iommud.Broker.OpenDevices",
                                                itest_params("devices", names(DEV_A, DEV_A), NULL),
                                                NULL, 0),
                                     buf, sizeof(buf)),
                            "org.varlink.service.InvalidParameter");
        assert_string_equal(error_of(itest_call(c, "org.iommud.Broker.OpenDevices",
                                                itest_params("devices", json_object_new_array(),
                                                             NULL),
                                                NULL, 0),
                                     buf, sizeof(buf)),
                            "org.varlink.service.InvalidParameter");
        assert_string_equal(error_of(itest_call(c, "org.iommud.Broker.OpenDevices",
                                                itest_params("devices",
                                                             json_object_new_string(DEV_A), NULL),
                                                NULL, 0),
                                     buf, sizeof(buf)),
                            "org.varlink.service.InvalidParameter");
        assert_string_equal(held_by(c, DEV_A, buf, sizeof(buf)), "");
        itest_client_free(c);
}

/* The same through libiommud: what it decodes, what it owns, what it gives away. */
static void test_libiommud(void **state) {
        Fixture *f = *state;
        const char *const devs[] = { DEV_A };
        const char *const unknown[] = { "0000:ff:1f.7" };
        IommudClient *c = NULL, *other = NULL;
        IommudHandoff *h = NULL;
        IommudError *e = NULL;
        const IommudHandedDevice *d;
        ItestClient *watcher = client(f);
        char buf[512];
        int fd;

        assert_int_equal(iommud_error_new(&e), 0);
        assert_int_equal(iommud_client_new(&c, f->daemon.socket, e), 0);
        assert_int_equal(iommud_client_new(&other, f->daemon.socket, e), 0);
        assert_int_equal(iommud_open_devices(c, devs, 1, &h, e), 0);
        assert_int_equal(iommud_handoff_get_n_devices(h), 1);
        d = iommud_handoff_get_device(h, 0);
        assert_string_equal(d->name, DEV_A);
        assert_non_null(d->cdev);
        assert_true(d->has_group);
        assert_null(iommud_handoff_get_device(h, 1));
        assert_string_equal(fd_target(iommud_handoff_get_iommufd(h), buf, sizeof(buf)),
                            "/memfd:iommufd-sim (deleted)");
        fd = iommud_handoff_take_device_fd(h, 0);
        assert_true(fd >= 0);
        assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
        assert_int_equal(iommud_handoff_take_device_fd(h, 0), -EBADF);
        assert_int_equal(iommud_handoff_take_device_fd(h, 1), -EINVAL);
        h = iommud_handoff_free(h);
        /* Freeing the handoff closed the iommufd, not the fd taken, and kept the claim. */
        assert_true(fcntl(fd, F_GETFD) >= 0);
        assert_string_not_equal(held_by(watcher, DEV_A, buf, sizeof(buf)), "");

        assert_int_equal(iommud_open_devices(other, devs, 1, &h, e), -EBUSY);
        assert_true(iommud_error_has_name(e, "DeviceBusy"));
        assert_int_equal(iommud_release_devices(c, unknown, 1, e), -ENOENT);
        assert_int_equal(iommud_release_devices(c, NULL, 0, e), 0);
        assert_string_equal(held_by(watcher, DEV_A, buf, sizeof(buf)), "");
        assert_int_equal(iommud_open_devices(other, NULL, 0, &h, e), -EINVAL);
        close(fd);
        iommud_client_unref(c);
        iommud_client_unref(other);
        iommud_error_free(e);
        itest_client_free(watcher);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_open_devices),
                cmocka_unit_test(test_claim_ends_with_the_connection),
                cmocka_unit_test(test_refusals),
                cmocka_unit_test(test_libiommud),
        };

        return cmocka_run_group_tests(tests, setup, teardown);
}
