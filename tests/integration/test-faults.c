/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * PASID binds and I/O page-fault streams through the real iommud binary on a
 * simulated host: real client processes connect, bind PASIDs with fault
 * delivery, watch faults on a second connection joined to their session, and
 * answer them.  Faults are raised through org.iommud.Simulator, and the
 * model's own counters (GetStats) prove what the device was told.
 */

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "itest.h"

#define DEV_A "0000:01:00.0"  /* PASID-capable */
#define DEV_B "0000:02:00.0"  /* PASID-capable, another group */
#define DEV_C "0000:03:00.0"  /* no PASID */
#define PASID_MIN 16
#define PASID_MAX 31
#define PASID_QUOTA 4
#define QUEUE_DEPTH 4
#define TIMEOUT_MS 400

static const char topology[] =
        "{\n"
        "  \"name\": \"faults\",\n"
        "  \"description\": \"one VT-d unit, two PASID-capable devices and one without\",\n"
        "  \"cdev_major\": 511,\n"
        "  \"iommus\": [ { \"name\": \"dmar0\", \"kind\": \"intel\", \"aperture_start\": \"0x0\",\n"
        "      \"aperture_last\": \"0x7fffffffff\", \"page_sizes\": [\"4K\", \"2M\"],\n"
        "      \"pasid_bits\": 20, \"capabilities\": [\"pasid-exec\", \"pasid-priv\"],\n"
        "      \"nesting\": true, \"dirty_tracking\": false, \"fault_queue\": true } ],\n"
        "  \"groups\": [\n"
        "    { \"id\": 1, \"type\": \"DMA\", \"iommu\": \"dmar0\", \"reserved_regions\": [],\n"
        "      \"devices\": [ { \"name\": \"" DEV_A "\", \"vendor\": \"0x10ee\",\n"
        "        \"device\": \"0x505c\", \"class\": \"0x120000\", \"driver\": \"vfio-pci\",\n"
        "        \"pasid_bits\": 20 } ] },\n"
        "    { \"id\": 2, \"type\": \"DMA\", \"iommu\": \"dmar0\", \"reserved_regions\": [],\n"
        "      \"devices\": [ { \"name\": \"" DEV_B "\", \"vendor\": \"0x10ee\",\n"
        "        \"device\": \"0x505c\", \"class\": \"0x120000\", \"driver\": \"vfio-pci\",\n"
        "        \"pasid_bits\": 20 } ] },\n"
        "    { \"id\": 3, \"type\": \"DMA\", \"iommu\": \"dmar0\", \"reserved_regions\": [],\n"
        "      \"devices\": [ { \"name\": \"" DEV_C "\", \"vendor\": \"0x8086\",\n"
        "        \"device\": \"0x1528\", \"class\": \"0x020000\", \"driver\": \"vfio-pci\" } ] }\n"
        "  ]\n"
        "}\n";

typedef struct Fixture {
        ItestDaemon daemon;
        char topology_path[256];
        ItestClient *c;  /* the session's calls */
        ItestClient *w;  /* the same session's fault stream */
} Fixture;

#define assert_ok(reply)                                                                           \
        do {                                                                                       \
                const char *_e = itest_reply_error(reply);                                         \
                if (_e)                                                                            \
                        fail_msg("unexpected error %s: %s", _e,                                    \
                                 reply ? json_object_to_json_string(reply) : "");                  \
        } while (0)

#define assert_error(reply, name)                                                                  \
        do {                                                                                       \
                const char *_e = itest_reply_error(reply);                                         \
                if (!_e || strcmp(_e, (name)) != 0)                                                \
                        fail_msg("expected %s, got %s", (name),                                    \
                                 reply ? json_object_to_json_string(reply) : "(none)");            \
        } while (0)

static json_object *I(uint64_t v) {
        return v > INT64_MAX ? json_object_new_uint64(v) : json_object_new_int64((int64_t)v);
}

static json_object *call(ItestClient *c, const char *method, json_object *params) {
        json_object *r = itest_call(c, method, params, NULL, 0);

        assert_non_null(r);
        return r;
}

static void call_ok(ItestClient *c, const char *method, json_object *params) {
        json_object *r = call(c, method, params);

        assert_ok(r);
        json_object_put(r);
}

static bool param_bool(json_object *o, const char *key) {
        json_object *v;

        return json_object_object_get_ex(o, key, &v) && json_object_get_boolean(v);
}

/* ---- fixture ----------------------------------------------------------------------------- */

static int group_setup(void **state) {
        Fixture *f = calloc(1, sizeof(*f));
        char *policy = NULL;
        FILE *t;

        assert_non_null(f);
        snprintf(f->topology_path, sizeof(f->topology_path), "%s/faults-topology.json",
                 getenv("IOMMUD_ITEST_SCRATCH") ?: "/tmp");
        t = fopen(f->topology_path, "we");
        assert_non_null(t);
        fputs(topology, t);
        assert_int_equal(fclose(t), 0);

        assert_true(asprintf(&policy,
                             "{\n"
                             "  \"limits\": { \"max-connections-per-user\": 4096,\n"
                             "              \"fault-response-timeout-ms\": %d },\n"
                             "  \"rules\": { \"all\": { \"action\": \"allow\", \"match\": \"*\" } },\n"
                             "  \"grants\": { \"self\": {\n"
                             "      \"principals\": [ { \"user\": %u } ], \"devices\": \"*\",\n"
                             "      \"open-on-behalf\": true,\n"
                             "      \"pasids\": { \"min\": %d, \"max\": %d },\n"
                             "      \"quotas\": { \"pasids\": %d, \"fault-queue-depth\": %d,\n"
                             "                    \"connections\": 64 } } }\n"
                             "}\n",
                             TIMEOUT_MS, (unsigned)getuid(), PASID_MIN, PASID_MAX, PASID_QUOTA,
                             QUEUE_DEPTH) > 0);
        assert_int_equal(itest_daemon_start(&f->daemon, f->topology_path, policy), 0);
        free(policy);
        *state = f;
        return 0;
}

static int group_teardown(void **state) {
        Fixture *f = *state;

        if (!f)
                return 0;
        /* A clean exit status also means no sanitizer report and no leak. */
        assert_int_equal(itest_daemon_stop(&f->daemon), 0);
        (void)unlink(f->topology_path);
        free(f);
        return 0;
}

static int test_setup(void **state) {
        Fixture *f = *state;

        assert_int_equal(itest_client_connect(&f->c, f->daemon.socket), 0);
        f->w = NULL;
        return 0;
}

static int test_teardown(void **state) {
        Fixture *f = *state;

        itest_client_free(f->w);
        itest_client_free(f->c);
        f->c = f->w = NULL;
        return 0;
}

/* ---- helpers ----------------------------------------------------------------------------- */

static uint64_t attach(const Fixture *f, ItestClient *c, const char *bdf) {
        json_object *r;
        uint64_t id;

        r = call(c, "org.iommud.Broker.AttachDevice",
                 itest_params("device", json_object_new_string(bdf), NULL));
        assert_ok(r);
        id = itest_get_u64(itest_reply_params(r), "deviceId");
        json_object_put(r);
        return id;
}

static uint64_t create_ioas(ItestClient *c) {
        json_object *r = call(c, "org.iommud.Broker.CreateAddressSpace", NULL);
        uint64_t id;

        assert_ok(r);
        id = itest_get_u64(itest_reply_params(r), "ioasId");
        json_object_put(r);
        return id;
}

static json_object *bind(ItestClient *c, uint64_t dev, uint64_t ioas, int64_t pasid, bool faults) {
        json_object *p = itest_params("deviceId", I(dev), "ioasId", I(ioas), "faults",
                                      json_object_new_boolean(faults), NULL);

        if (pasid >= 0)
                json_object_object_add(p, "pasid", I((uint64_t)pasid));
        return call(c, "org.iommud.Broker.BindPASID", p);
}

static uint32_t bind_ok(ItestClient *c, uint64_t dev, uint64_t ioas, int64_t pasid) {
        json_object *r = bind(c, dev, ioas, pasid, true);
        uint32_t v;

        assert_ok(r);
        v = (uint32_t)itest_get_u64(itest_reply_params(r), "pasid");
        json_object_put(r);
        return v;
}

/* Opens a second connection, joins c's session and starts a WatchFaults stream on it. */
static ItestClient *watch(const Fixture *f, ItestClient *c, int64_t device_id) {
        json_object *r, *m, *p = json_object_new_object();
        ItestClient *w;
        char *token;
        const char *text;

        r = call(c, "org.iommud.Broker.GetSession", NULL);
        assert_ok(r);
        token = strdup(itest_get_string(itest_reply_params(r), "token"));
        json_object_put(r);
        assert_int_equal(itest_client_connect(&w, f->daemon.socket), 0);
        call_ok(w, "org.iommud.Broker.JoinSession",
                itest_params("token", json_object_new_string(token), NULL));
        free(token);

        if (device_id >= 0)
                json_object_object_add(p, "deviceId", I((uint64_t)device_id));
        m = itest_params("method", json_object_new_string("org.iommud.Broker.WatchFaults"),
                         "parameters", p, "more", json_object_new_boolean(true), NULL);
        text = json_object_to_json_string_ext(m, JSON_C_TO_STRING_PLAIN);
        assert_int_equal(itest_client_send_raw(w, text, strlen(text) + 1, NULL, 0), 0);
        json_object_put(m);
        return w;
}

/* The next fault on a stream (the "fault" object, owned by *holder). */
static json_object *next_fault(ItestClient *w, json_object **holder) {
        json_object *r = NULL, *fault;

        assert_int_equal(itest_client_recv(w, &r), 1);
        assert_ok(r);
        assert_true(param_bool(r, "continues"));
        assert_true(json_object_object_get_ex(itest_reply_params(r), "fault", &fault));
        *holder = r;
        return fault;
}

/* Nothing more arrives on the stream for a while (a negative check, never a timing one). */
static void assert_no_fault(ItestClient *w) {
        struct pollfd p = { .fd = w->fd, .events = POLLIN };

        assert_int_equal(w->n, 0);
        assert_int_equal(poll(&p, 1, 100), 0);
}

static void inject(ItestClient *c, const char *dev, uint32_t pasid, uint64_t addr, bool last,
                   uint32_t group, uint32_t count) {
        call_ok(c, "org.iommud.Simulator.InjectFault",
                itest_params("device", json_object_new_string(dev), "pasid", I(pasid), "address",
                             I(addr), "read", json_object_new_boolean(true), "write",
                             json_object_new_boolean(group % 2 == 1), "lastPage",
                             json_object_new_boolean(last), "groupId", I(group), "count",
                             I(count), NULL));
}

typedef struct Stats {
        uint64_t injected, delivered, success, invalid, auto_invalid;
} Stats;

static Stats stats(ItestClient *c) {
        json_object *r = call(c, "org.iommud.Simulator.GetStats", NULL), *p;
        Stats s;

        assert_ok(r);
        p = itest_reply_params(r);
        s = (Stats){
                .injected = itest_get_u64(p, "injected"),
                .delivered = itest_get_u64(p, "delivered"),
                .success = itest_get_u64(p, "responsesSuccess"),
                .invalid = itest_get_u64(p, "responsesInvalid"),
                .auto_invalid = itest_get_u64(p, "autoInvalid"),
        };
        json_object_put(r);
        return s;
}

static uint64_t counter(ItestClient *c, const char *name) {
        json_object *r = call(c, "org.iommud.Broker.GetSession", NULL), *fc;
        uint64_t v;

        assert_ok(r);
        assert_true(json_object_object_get_ex(itest_reply_params(r), "faults", &fc));
        v = itest_get_u64(fc, name);
        json_object_put(r);
        return v;
}

/* Waits until the session's counter reaches want; the bound only catches a hang. */
static void wait_counter(ItestClient *c, const char *name, uint64_t want) {
        for (int i = 0; i < 600; i++) {
                if (counter(c, name) >= want)
                        return;
                usleep(50 * 1000);
        }
        fail_msg("fault counter %s never reached %llu", name, (unsigned long long)want);
}

static json_object *respond(ItestClient *c, uint64_t cookie, const char *code) {
        return call(c, "org.iommud.Broker.RespondFault",
                    itest_params("cookie", I(cookie), "code", json_object_new_string(code), NULL));
}

static void assert_not_pending(json_object *r, const char *reason) {
        assert_error(r, "org.iommud.Broker.FaultNotPending");
        assert_string_equal(itest_get_string(itest_reply_params(r), "reason"), reason);
        json_object_put(r);
}

/* A session on dev with a PASID bound with faults and a stream on a joined connection. */
static uint32_t setup_stream(Fixture *f, const char *dev, uint64_t *ret_dev) {
        uint64_t d = attach(f, f->c, dev), ioas = create_ioas(f->c);
        uint32_t pasid = bind_ok(f->c, d, ioas, -1);

        f->w = watch(f, f->c, -1);
        if (ret_dev)
                *ret_dev = d;
        return pasid;
}

/* ---- tests ------------------------------------------------------------------------------- */

/* A three-page group arrives whole and in order with one cookie; answering it reaches the device. */
static void test_group_order_and_last_page(void **state) {
        Fixture *f = *state;
        Stats before = stats(f->c), after;
        json_object *h[4], *fault;
        uint64_t dev, cookie;
        uint32_t pasid = setup_stream(f, DEV_A, &dev);

        assert_true(pasid >= PASID_MIN && pasid <= PASID_MAX);
        inject(f->c, DEV_A, pasid, 0x10000, false, 5, 1);
        inject(f->c, DEV_A, pasid, 0x11000, false, 5, 1);
        /* Nothing is delivered before the group's last page. */
        assert_no_fault(f->w);
        inject(f->c, DEV_A, pasid, 0x12000, true, 5, 1);
        inject(f->c, DEV_A, pasid, 0x40000, true, 6, 1);

        for (int i = 0; i < 3; i++) {
                fault = next_fault(f->w, &h[i]);
                assert_int_equal(itest_get_u64(fault, "address"), 0x10000 + i * 0x1000);
                assert_int_equal(itest_get_u64(fault, "groupId"), 5);
                assert_int_equal(itest_get_u64(fault, "pasid"), pasid);
                assert_int_equal(itest_get_u64(fault, "deviceId"), dev);
                assert_true(param_bool(fault, "read"));
                assert_true(param_bool(fault, "write"));
                assert_false(param_bool(fault, "exec"));
                assert_int_equal(param_bool(fault, "lastPage"), i == 2);
                assert_int_equal(itest_get_u64(fault, "cookie"),
                                 itest_get_u64(json_object_object_get(itest_reply_params(h[0]),
                                                                      "fault"),
                                               "cookie"));
        }
        cookie = itest_get_u64(json_object_object_get(itest_reply_params(h[0]), "fault"),
                               "cookie");
        fault = next_fault(f->w, &h[3]);
        assert_int_equal(itest_get_u64(fault, "groupId"), 6);
        assert_false(param_bool(fault, "write"));
        assert_true(param_bool(fault, "lastPage"));
        assert_true(itest_get_u64(fault, "cookie") > cookie);

        json_object_put(respond(f->c, cookie, "success"));
        json_object_put(respond(f->c, itest_get_u64(fault, "cookie"), "invalid"));
        after = stats(f->c);
        assert_int_equal(after.injected - before.injected, 4);
        assert_int_equal(after.success - before.success, 1);
        assert_int_equal(after.invalid - before.invalid, 1);
        assert_int_equal(counter(f->c, "delivered"), 2);
        assert_int_equal(counter(f->c, "answered"), 2);
        assert_int_equal(counter(f->c, "pending"), 0);
        for (int i = 0; i < 4; i++)
                json_object_put(h[i]);
}

/* Wrong, duplicate and malformed answers are refused precisely and cost nothing. */
static void test_wrong_and_duplicate_cookie(void **state) {
        Fixture *f = *state;
        json_object *h, *r;
        uint64_t cookie;
        uint32_t pasid = setup_stream(f, DEV_A, NULL);

        inject(f->c, DEV_A, pasid, 0x1000, true, 1, 1);
        cookie = itest_get_u64(next_fault(f->w, &h), "cookie");
        json_object_put(h);

        r = respond(f->c, cookie + 1000, "success");
        assert_error(r, "org.iommud.Broker.NoSuchObject");
        assert_string_equal(itest_get_string(itest_reply_params(r), "kind"), "fault");
        json_object_put(r);
        r = respond(f->c, cookie, "maybe");
        assert_error(r, "org.varlink.service.InvalidParameter");
        assert_string_equal(itest_get_string(itest_reply_params(r), "parameter"), "code");
        json_object_put(r);
        assert_int_equal(counter(f->c, "pending"), 1);

        r = respond(f->c, cookie, "success");
        assert_ok(r);
        json_object_put(r);
        assert_not_pending(respond(f->c, cookie, "success"), "answered");
        assert_int_equal(counter(f->c, "answered"), 1);
}

/* An unanswered fault is answered INVALID by iommud once the policy's timeout passes. */
static void test_timeout(void **state) {
        Fixture *f = *state;
        Stats before = stats(f->c), after;
        json_object *h;
        uint64_t cookie;
        uint32_t pasid = setup_stream(f, DEV_A, NULL);

        inject(f->c, DEV_A, pasid, 0x2000, true, 2, 1);
        cookie = itest_get_u64(next_fault(f->w, &h), "cookie");
        json_object_put(h);
        wait_counter(f->c, "timedOut", 1);
        after = stats(f->c);
        assert_int_equal(after.invalid - before.invalid, 1);
        assert_int_equal(counter(f->c, "pending"), 0);
        assert_not_pending(respond(f->c, cookie, "success"), "timed_out");
}

/* Beyond fault-queue-depth the device hears INVALID at once; the client sees only the depth. */
static void test_overflow(void **state) {
        Fixture *f = *state;
        Stats before = stats(f->c), after;
        uint64_t cookies[QUEUE_DEPTH];
        json_object *h;
        uint32_t pasid = setup_stream(f, DEV_A, NULL);

        inject(f->c, DEV_A, pasid, 0x100000, true, 10, QUEUE_DEPTH + 2);
        for (int i = 0; i < QUEUE_DEPTH; i++) {
                json_object *fault = next_fault(f->w, &h);

                assert_int_equal(itest_get_u64(fault, "groupId"), 10 + i);
                cookies[i] = itest_get_u64(fault, "cookie");
                json_object_put(h);
        }
        assert_no_fault(f->w);
        assert_int_equal(counter(f->c, "dropped"), 2);
        assert_int_equal(counter(f->c, "pending"), QUEUE_DEPTH);
        after = stats(f->c);
        assert_int_equal(after.invalid - before.invalid, 2);

        for (int i = 0; i < QUEUE_DEPTH; i++)
                json_object_put(respond(f->c, cookies[i], "success"));
        assert_int_equal(stats(f->c).success - before.success, QUEUE_DEPTH);
        assert_int_equal(counter(f->c, "answered"), QUEUE_DEPTH);
}

/* Closing the stream with faults pending answers them INVALID; the session lives on. */
static void test_disconnect_with_pending(void **state) {
        Fixture *f = *state;
        Stats before = stats(f->c);
        json_object *h;
        uint32_t pasid = setup_stream(f, DEV_A, NULL);

        inject(f->c, DEV_A, pasid, 0x3000, true, 3, 2);
        json_object_put((next_fault(f->w, &h), h));
        json_object_put((next_fault(f->w, &h), h));
        itest_client_free(f->w);
        f->w = NULL;
        wait_counter(f->c, "dropped", 2);
        assert_int_equal(stats(f->c).invalid - before.invalid, 2);
        assert_int_equal(counter(f->c, "pending"), 0);

        /* Faults with nobody watching wait for the next stream, and are delivered to it. */
        inject(f->c, DEV_A, pasid, 0x5000, true, 4, 1);
        f->w = watch(f, f->c, -1);
        assert_int_equal(itest_get_u64(next_fault(f->w, &h), "groupId"), 4);
        json_object_put(h);

        /* The whole session going away answers what is left. */
        before = stats(f->c);
        {
                ItestClient *probe;

                itest_client_free(f->c);
                itest_client_free(f->w);
                f->c = f->w = NULL;
                assert_int_equal(itest_client_connect(&probe, f->daemon.socket), 0);
                for (int i = 0; i < 600 && stats(probe).invalid + stats(probe).auto_invalid ==
                                                   before.invalid + before.auto_invalid;
                     i++)
                        usleep(50 * 1000);
                assert_int_equal(stats(probe).invalid + stats(probe).auto_invalid -
                                         before.invalid - before.auto_invalid,
                                 1);
                f->c = probe;
        }
}

/* After UnbindPASID the kernel has answered; a late response says so. */
static void test_response_after_unbind(void **state) {
        Fixture *f = *state;
        Stats before = stats(f->c);
        json_object *h, *r;
        uint64_t dev, cookie;
        uint32_t pasid = setup_stream(f, DEV_A, &dev);

        inject(f->c, DEV_A, pasid, 0x6000, true, 6, 1);
        cookie = itest_get_u64(next_fault(f->w, &h), "cookie");
        json_object_put(h);
        call_ok(f->c, "org.iommud.Broker.UnbindPASID",
                itest_params("deviceId", I(dev), "pasid", I(pasid), NULL));
        assert_not_pending(respond(f->c, cookie, "success"), "unbound");
        assert_int_equal(stats(f->c).auto_invalid - before.auto_invalid, 1);
        assert_int_equal(stats(f->c).success - before.success, 0);

        r = call(f->c, "org.iommud.Broker.UnbindPASID",
                 itest_params("deviceId", I(dev), "pasid", I(pasid), NULL));
        assert_error(r, "org.iommud.Broker.NoSuchObject");
        assert_string_equal(itest_get_string(itest_reply_params(r), "kind"), "pasid");
        json_object_put(r);
        /* The fault can no longer be raised: nothing is attached at that PASID. */
        r = call(f->c, "org.iommud.Simulator.InjectFault",
                 itest_params("device", json_object_new_string(DEV_A), "pasid", I(pasid),
                              "address", I(0x7000), NULL));
        assert_error(r, "org.iommud.Simulator.NotAttached");
        json_object_put(r);

        /* The simulator's parameters are decoded by its tables too. */
        static const struct {
                const char *member, *value;
        } bad[] = {
                { "count", "0" },
                { "count", "65537" },
                { "lastPage", "\"yes\"" },
                { "colour", "true" },
        };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                json_object *p = itest_params("device", json_object_new_string(DEV_A),
                                              "address", I(0x7000), NULL);

                json_object_object_add(p, bad[i].member, json_tokener_parse(bad[i].value));
                r = call(f->c, "org.iommud.Simulator.InjectFault", p);
                assert_error(r, "org.varlink.service.InvalidParameter");
                assert_string_equal(itest_get_string(itest_reply_params(r), "parameter"),
                                    bad[i].member);
                json_object_put(r);
        }
}

/* Two sessions on two devices each see only their own faults and cannot answer the other's. */
static void test_two_sessions_isolated(void **state) {
        Fixture *f = *state;
        ItestClient *c2, *w2;
        json_object *h1, *h2, *r, *fa, *fb;
        uint64_t dev2, ioas2;
        uint32_t pasid1 = setup_stream(f, DEV_A, NULL), pasid2;

        assert_int_equal(itest_client_connect(&c2, f->daemon.socket), 0);
        dev2 = attach(f, c2, DEV_B);
        ioas2 = create_ioas(c2);
        pasid2 = bind_ok(c2, dev2, ioas2, -1);
        assert_true(pasid2 != pasid1);
        w2 = watch(f, c2, (int64_t)dev2);

        inject(f->c, DEV_B, pasid2, 0xb000, true, 20, 1);
        inject(f->c, DEV_A, pasid1, 0xa000, true, 21, 1);
        fa = next_fault(f->w, &h1);
        fb = next_fault(w2, &h2);
        assert_int_equal(itest_get_u64(fa, "address"), 0xa000);
        assert_int_equal(itest_get_u64(fb, "address"), 0xb000);
        assert_no_fault(f->w);
        assert_no_fault(w2);

        r = respond(c2, itest_get_u64(fa, "cookie"), "success");
        assert_error(r, "org.iommud.Broker.FaultNotOwned");
        json_object_put(r);
        r = respond(f->c, itest_get_u64(fb, "cookie"), "success");
        assert_error(r, "org.iommud.Broker.FaultNotOwned");
        json_object_put(r);
        /* The refused answers changed nothing: both are still there for their owners. */
        json_object_put(respond(f->c, itest_get_u64(fa, "cookie"), "success"));
        r = respond(c2, itest_get_u64(fb, "cookie"), "success");
        assert_ok(r);
        json_object_put(r);
        json_object_put(h1);
        json_object_put(h2);
        itest_client_free(w2);
        itest_client_free(c2);
}

/* A PASID the policy refuses is on the audit trail: one access-refused event, action bind-pasid. */
static void test_pasid_refusal_audited(void **state) {
        static const char monitor[] = "{\"method\":\"org.iommud.Manager.Monitor\",\"more\":true}";
        Fixture *f = *state;
        ItestClient *mon;
        json_object *r, *ev = NULL;
        uint64_t dev, ioas;

        assert_int_equal(itest_client_connect(&mon, f->daemon.socket), 0);
        assert_int_equal(itest_client_send_raw(mon, monitor, sizeof(monitor), NULL, 0), 0);
        /* Round trips after the subscription was sent: iommud has read it by the bind. */
        dev = attach(f, f->c, DEV_A);
        ioas = create_ioas(f->c);
        r = bind(f->c, dev, ioas, 5, false);
        assert_error(r, "org.iommud.Broker.PolicyDenied");
        json_object_put(r);
        for (;;) {
                json_object *e;
                const char *type;

                json_object_put(ev);
                assert_int_equal(itest_client_recv(mon, &ev), 1);
                assert_true(json_object_object_get_ex(itest_reply_params(ev), "event", &e));
                type = itest_get_string(e, "type");
                if (!type || strcmp(type, "access-refused") != 0)
                        continue;
                assert_string_equal(itest_get_string(e, "action"), "bind-pasid");
                assert_string_equal(itest_get_string(e, "step"), "pasid");
                assert_string_equal(itest_get_string(e, "device"), DEV_A);
                break;
        }
        json_object_put(ev);
        itest_client_free(mon);
}

/* PASIDs: the policy's range, host-wide uniqueness, the quota, NotSupported, one stream each. */
static void test_pasid_policy(void **state) {
        Fixture *f = *state;
        ItestClient *c2;
        json_object *r;
        uint64_t dev = attach(f, f->c, DEV_A), ioas = create_ioas(f->c), dev2, ioas2, devc;
        uint32_t p;

        r = bind(f->c, dev, ioas, 5, false);
        assert_error(r, "org.iommud.Broker.PolicyDenied");
        assert_string_equal(itest_get_string(itest_reply_params(r), "step"), "pasid");
        json_object_put(r);
        r = bind(f->c, dev, ioas, 0x100000, false);
        assert_error(r, "org.varlink.service.InvalidParameter");
        json_object_put(r);
        p = bind_ok(f->c, dev, ioas, -1);
        assert_int_equal(p, PASID_MIN);

        /* Another session on another device cannot take the same PASID, and is given the next. */
        assert_int_equal(itest_client_connect(&c2, f->daemon.socket), 0);
        dev2 = attach(f, c2, DEV_B);
        ioas2 = create_ioas(c2);
        r = bind(c2, dev2, ioas2, PASID_MIN, false);
        assert_error(r, "org.iommud.Broker.ObjectInUse");
        assert_string_equal(itest_get_string(itest_reply_params(r), "kind"), "pasid");
        json_object_put(r);
        assert_int_equal(bind_ok(c2, dev2, ioas2, -1), PASID_MIN + 1);
        /* Nor can this session bind it twice. */
        r = bind(f->c, dev, ioas, PASID_MIN, false);
        assert_error(r, "org.iommud.Broker.ObjectInUse");
        json_object_put(r);

        /* The address space is held by the bind. */
        r = call(f->c, "org.iommud.Broker.DestroyAddressSpace", itest_params("ioasId", I(ioas), NULL));
        assert_error(r, "org.iommud.Broker.ObjectInUse");
        json_object_put(r);

        /* The quota is the principal's: the PASID of c2, a session of the same uid, counts too. */
        for (int i = 2; i < PASID_QUOTA; i++)
                (void)bind_ok(f->c, dev, ioas, -1);
        r = bind(f->c, dev, ioas, -1, false);
        assert_error(r, "org.iommud.Broker.QuotaExceeded");
        assert_string_equal(itest_get_string(itest_reply_params(r), "resource"), "pasids");
        assert_int_equal(itest_get_u64(itest_reply_params(r), "used"), PASID_QUOTA);
        json_object_put(r);

        /* Detaching the device gives every PASID back. */
        call_ok(f->c, "org.iommud.Broker.DetachDevice", itest_params("deviceId", I(dev), NULL));
        dev = attach(f, f->c, DEV_A);
        assert_int_equal(bind_ok(f->c, dev, ioas, PASID_MIN), PASID_MIN);

        devc = attach(f, f->c, DEV_C);
        r = bind(f->c, devc, ioas, -1, true);
        assert_error(r, "org.iommud.Broker.NotSupported");
        assert_string_equal(itest_get_string(itest_reply_params(r), "feature"), "pasid");
        json_object_put(r);
        itest_client_free(c2);
}

/* Nested stage-1 tables are checked for type and length before anything is allocated. */
static void test_nested_stage1(void **state) {
        Fixture *f = *state;
        uint64_t dev = attach(f, f->c, DEV_A), ioas = create_ioas(f->c);
        char vtd[49], short_vtd[47];
        json_object *r;

        memset(vtd, '0', 48);
        vtd[48] = '\0';
        memset(short_vtd, '0', 46);
        short_vtd[46] = '\0';
        static const struct {
                const char *type;
                const char *data;
                const char *error;
        } cases[] = {
                { "vtd", NULL, NULL },
                { "vtd", "short", "org.varlink.service.InvalidParameter" },
                { "arm_smmuv3", "00000000000000000000000000000000",
                  "org.varlink.service.InvalidParameter" },
                { "vtd", "zz", "org.varlink.service.InvalidParameter" },
                { "mips", "00", "org.varlink.service.InvalidParameter" },
        };
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                const char *data = !cases[i].data ? vtd :
                                   strcmp(cases[i].data, "short") == 0 ? short_vtd : cases[i].data;
                json_object *s1 = itest_params("type", json_object_new_string(cases[i].type),
                                               "data", json_object_new_string(data), NULL);

                r = call(f->c, "org.iommud.Broker.BindPASID",
                         itest_params("deviceId", I(dev), "ioasId", I(ioas), "stage1", s1,
                                      "faults", json_object_new_boolean(true), NULL));
                if (cases[i].error) {
                        assert_error(r, cases[i].error);
                        assert_string_equal(itest_get_string(itest_reply_params(r), "parameter"),
                                            "stage1");
                } else
                        assert_ok(r);
                json_object_put(r);
        }
        r = call(f->c, "org.iommud.Broker.GetSession", NULL);
        assert_ok(r);
        json_object_put(r);
}

/* WatchFaults is a stream: without "more" it is refused; a device is watched once. */
static void test_watch_rules(void **state) {
        Fixture *f = *state;
        json_object *r;
        uint64_t dev;
        ItestClient *w2;

        (void)setup_stream(f, DEV_A, &dev);
        r = call(f->c, "org.iommud.Broker.WatchFaults", NULL);
        assert_error(r, "org.varlink.service.ExpectedMore");
        json_object_put(r);

        /* A second stream for every device is refused on its connection. */
        w2 = watch(f, f->c, -1);
        assert_int_equal(itest_client_recv(w2, &r), 1);
        assert_error(r, "org.iommud.Broker.ObjectInUse");
        json_object_put(r);
        itest_client_free(w2);
        /* A stream for one device next to the one for all is fine. */
        w2 = watch(f, f->c, (int64_t)dev);
        assert_no_fault(w2);
        itest_client_free(w2);
}

int main(void) {
        const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, test_setup, test_teardown)
                T(test_group_order_and_last_page),
                T(test_wrong_and_duplicate_cookie),
                T(test_timeout),
                T(test_overflow),
                T(test_disconnect_with_pending),
                T(test_response_after_unbind),
                T(test_two_sessions_isolated),
                T(test_pasid_refusal_audited),
                T(test_pasid_policy),
                T(test_nested_stage1),
                T(test_watch_rules),
#undef T
        };

        return cmocka_run_group_tests_name("fault-integration", tests, group_setup,
                                           group_teardown);
}
