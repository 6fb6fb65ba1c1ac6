/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * A device the host wants back, on a simulated host: Simulator.RemoveDevice (and SetDriver)
 * of a held device asks its holder through the device's request channel, as vfio-pci does,
 * and the change waits until the device is released.  The holder hears "release_requested"
 * with a deadline; iommud releases the device itself once the policy's
 * device-release-timeout-ms has passed (or as soon as the holder detaches it), and only
 * then does the host change.
 */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "itest.h"

#define DEV_A "0000:01:00.0" /* NVMe on vfio-pci, a group of its own */
#define TIMEOUT_MS 200
#define I(v) json_object_new_int64((int64_t)(v))

typedef struct Fixture {
        ItestDaemon daemon;
} Fixture;

static int setup(void **state) {
        Fixture *f = calloc(1, sizeof(*f));
        char *policy = NULL;

        assert_non_null(f);
        assert_true(asprintf(&policy,
                             "{\n"
                             "  \"limits\": { \"max-connections-per-user\": 64,\n"
                             "              \"device-release-timeout-ms\": %d },\n"
                             "  \"rules\": { \"all\": { \"action\": \"allow\",\n"
                             "                         \"match\": \"*\" } },\n"
                             "  \"grants\": { \"self\": {\n"
                             "      \"principals\": [ { \"user\": %u } ], \"devices\": \"*\",\n"
                             "      \"open-on-behalf\": true } }\n"
                             "}\n",
                             TIMEOUT_MS, (unsigned)getuid()) > 0);
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

static ItestClient *connect_client(Fixture *f) {
        ItestClient *c = NULL;

        assert_int_equal(itest_client_connect(&c, f->daemon.socket), 0);
        return c;
}

static json_object *ok_call(ItestClient *c, const char *method, json_object *params) {
        json_object *r = itest_call(c, method, params, NULL, 0);

        assert_non_null(r);
        if (itest_reply_error(r))
                fail_msg("%s failed: %s", method, json_object_to_json_string(r));
        return r;
}

static uint64_t call_u64(ItestClient *c, const char *method, json_object *params,
                         const char *key) {
        json_object *r = ok_call(c, method, params);
        uint64_t v = itest_get_u64(itest_reply_params(r), key);

        json_object_put(r);
        return v;
}

static void watch_events(ItestClient *c) {
        const char *msg = "{\"method\":\"org.iommud.Broker.WatchEvents\",\"more\":true}";

        assert_int_equal(itest_client_send_raw(c, msg, strlen(msg) + 1, NULL, 0), 0);
}

/* The next event of a WatchEvents() stream; its kind and device must be these. */
static json_object *expect_event(ItestClient *w, const char *kind, uint64_t dev_id) {
        json_object *m = NULL, *ev, *ret;

        assert_int_equal(itest_client_recv(w, &m), 1);
        assert_true(json_object_object_get_ex(itest_reply_params(m), "event", &ev));
        assert_string_equal(itest_get_string(ev, "kind"), kind);
        assert_string_equal(itest_get_string(ev, "device"), DEV_A);
        assert_int_equal(itest_get_u64(ev, "deviceId"), dev_id);
        ret = json_object_get(ev);
        json_object_put(m);
        return ret;
}

static void simulator(Fixture *f, const char *method, json_object *params) {
        ItestClient *s = connect_client(f);

        json_object_put(ok_call(s, method, params));
        itest_client_free(s);
}

static bool device_present(ItestClient *c) {
        json_object *r = itest_call(c, "org.iommud.Broker.ExplainDevice",
                                    itest_params("device", json_object_new_string(DEV_A), NULL),
                                    NULL, 0);
        bool present;

        assert_non_null(r);
        present = itest_reply_error(r) == NULL;
        json_object_put(r);
        return present;
}

static const char *call_error(ItestClient *c, const char *method, json_object *params,
                              json_object **ret) {
        *ret = itest_call(c, method, params, NULL, 0);
        assert_non_null(*ret);
        return itest_reply_error(*ret);
}

/* A second connection of c's session, streaming its events. */
static ItestClient *watcher(Fixture *f, ItestClient *c) {
        ItestClient *w = connect_client(f);
        json_object *r = ok_call(c, "org.iommud.Broker.GetSession", NULL);

        json_object_put(ok_call(w, "org.iommud.Broker.JoinSession",
                                itest_params("token",
                                             json_object_new_string(itest_get_string(
                                                     itest_reply_params(r), "token")),
                                             NULL)));
        json_object_put(r);
        watch_events(w);
        return w;
}

static uint64_t attach(ItestClient *c) {
        return call_u64(c, "org.iommud.Broker.AttachDevice",
                        itest_params("device", json_object_new_string(DEV_A), NULL), "deviceId");
}

/*
 * A holder that ignores the request: the host's change waits, the holder is told with a
 * deadline, keeps the device until then, and loses it at the deadline (DeviceGone "released
 * to the host"); only then is the device removed.
 */
static void test_release_at_deadline(void **state) {
        Fixture *f = *state;
        ItestClient *c = connect_client(f), *w, *admin = connect_client(f);
        json_object *ev, *r;
        uint64_t dev, ioas;
        int memfd = itest_memfd(4096);

        w = watcher(f, c);
        dev = attach(c);
        ioas = call_u64(c, "org.iommud.Broker.CreateAddressSpace", NULL, "ioasId");
        json_object_put(ok_call(c, "org.iommud.Broker.AttachToAddressSpace",
                                itest_params("deviceId", I(dev), "ioasId", I(ioas), NULL)));

        simulator(f, "org.iommud.Simulator.RemoveDevice",
                  itest_params("device", json_object_new_string(DEV_A), NULL));
        ev = expect_event(w, "release_requested", dev);
        assert_true(itest_get_u64(ev, "deadline") > 0);
        json_object_put(ev);
        /* Asked, not taken: the device is still the holder's and still on the host. */
        assert_true(device_present(admin));
        json_object_put(ok_call(c, "org.iommud.Broker.AttachToAddressSpace",
                                itest_params("deviceId", I(dev), "ioasId", I(ioas), NULL)));

        ev = expect_event(w, "released", dev);
        assert_string_equal(itest_get_string(ev, "reason"), "released to the host");
        json_object_put(ev);
        assert_string_equal(call_error(c, "org.iommud.Broker.DetachDevice",
                                       itest_params("deviceId", I(dev), NULL), &r),
                            "org.iommud.Broker.DeviceGone");
        assert_string_equal(itest_get_string(itest_reply_params(r), "reason"),
                            "released to the host");
        json_object_put(r);
        /* The address space only it used went with it; the removal went on. */
        assert_string_equal(call_error(c, "org.iommud.Broker.DestroyAddressSpace",
                                       itest_params("ioasId", I(ioas), NULL), &r),
                            "org.iommud.Broker.NoSuchObject");
        json_object_put(r);
        assert_false(device_present(admin));
        r = ok_call(admin, "org.iommud.Simulator.GetStats", NULL);
        assert_int_equal(itest_get_u64(itest_reply_params(r), "deviceRequests"), 1);
        json_object_put(r);

        simulator(f, "org.iommud.Simulator.AddDevice",
                  itest_params("device", json_object_new_string(DEV_A), NULL));
        close(memfd);
        itest_client_free(w);
        itest_client_free(c);
        itest_client_free(admin);
}

/*
 * A holder that gives the device back when asked: the change goes on at once, and a new
 * session can have the device again after it is back.
 */
static void test_release_by_holder(void **state) {
        Fixture *f = *state;
        ItestClient *c = connect_client(f), *w, *admin = connect_client(f), *next;
        uint64_t dev;

        w = watcher(f, c);
        dev = attach(c);
        simulator(f, "org.iommud.Simulator.SetDriver",
                  itest_params("device", json_object_new_string(DEV_A), "driver",
                               json_object_new_string("nvme"), NULL));
        json_object_put(expect_event(w, "release_requested", dev));
        json_object_put(ok_call(c, "org.iommud.Broker.DetachDevice",
                                itest_params("deviceId", I(dev), NULL)));
        /* Released by the holder: the unbind went on at once, and the device is back. */
        simulator(f, "org.iommud.Simulator.SetDriver",
                  itest_params("device", json_object_new_string(DEV_A), "driver",
                               json_object_new_string("vfio-pci"), NULL));
        next = connect_client(f);
        assert_true(attach(next) > 0);
        itest_client_free(next);
        itest_client_free(w);
        itest_client_free(c);
        itest_client_free(admin);
}

/* A device removed and added back is usable again (its cdev and its place in the model). */
static void test_removed_device_comes_back(void **state) {
        Fixture *f = *state;
        ItestClient *c = connect_client(f);

        simulator(f, "org.iommud.Simulator.RemoveDevice",
                  itest_params("device", json_object_new_string(DEV_A), NULL));
        simulator(f, "org.iommud.Simulator.AddDevice",
                  itest_params("device", json_object_new_string(DEV_A), NULL));
        assert_true(attach(c) > 0);
        itest_client_free(c);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_removed_device_comes_back),
                cmocka_unit_test(test_release_at_deadline),
                cmocka_unit_test(test_release_by_holder),
        };

        return cmocka_run_group_tests_name("release", tests, setup, teardown);
}
