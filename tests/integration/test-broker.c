/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * The real iommud binary on simulated hosts, driven over its real socket by
 * real client processes passing real device fds and memfds.
 */

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "itest.h"

#define QUOTA_PINNED (1024 * 1024)

static bool streq_safe(const char *a, const char *b) {
        return a && b && strcmp(a, b) == 0;
}
#define PAGE 4096

typedef struct Fixture {
        ItestDaemon daemon;
        ItestClient *c;
        int baseline_fds;
} Fixture;

static const char *grant_extras =
        "\"quotas\": { \"pinned-memory\": \"1M\", \"address-spaces\": 4, \"mappings\": 64,"
        " \"devices\": 4 },\n"
        "      \"delegation\": true, \"open-on-behalf\": true";

static int setup_topology(void **state, const char *topology) {
        Fixture *f = calloc(1, sizeof(*f));
        char *policy = itest_policy_for_self(grant_extras);

        assert_non_null(f);
        assert_non_null(policy);
        assert_int_equal(itest_daemon_start(&f->daemon, topology, policy), 0);
        free(policy);
        f->baseline_fds = itest_daemon_count_fds(&f->daemon);
        assert_true(f->baseline_fds > 0);
        *state = f;
        return 0;
}

static int setup_workstation(void **state) {
        return setup_topology(state, "workstation");
}

static int teardown(void **state) {
        Fixture *f = *state;

        if (!f)
                return 0;
        /* A clean exit status also means no sanitizer report and no leak. */
        assert_int_equal(itest_daemon_stop(&f->daemon), 0);
        free(f);
        return 0;
}

static int test_setup(void **state) {
        Fixture *f = *state;

        assert_int_equal(itest_client_connect(&f->c, f->daemon.socket), 0);
        return 0;
}

static int test_teardown(void **state) {
        Fixture *f = *state;

        itest_client_free(f->c);
        f->c = NULL;
        return 0;
}

/* ---- helpers ----------------------------------------------------------------------------- */

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

static json_object *call(ItestClient *c, const char *method, json_object *params) {
        json_object *r = itest_call(c, method, params, NULL, 0);

        assert_non_null(r);
        return r;
}

static json_object *call_fds(ItestClient *c, const char *method, json_object *params,
                             const int *fds, size_t n) {
        json_object *r = itest_call(c, method, params, fds, n);

        assert_non_null(r);
        return r;
}

static json_object *I(uint64_t v) {
        return v > INT64_MAX ? json_object_new_uint64(v) : json_object_new_int64((int64_t)v);
}

/* Finds a device by predicate over GetTopology; returns its name (static buffer) or NULL. */
typedef bool (*DevicePred)(json_object *dev, void *userdata);

static const char *find_device(ItestClient *c, DevicePred pred, void *userdata, char *cdev,
                               size_t cdev_size) {
        static char name[64];
        json_object *r = call(c, "org.iommud.Broker.GetTopology", NULL), *devs;
        const char *found = NULL;

        assert_ok(r);
        assert_true(json_object_object_get_ex(itest_reply_params(r), "devices", &devs));
        for (size_t i = 0; i < json_object_array_length(devs); i++) {
                json_object *d = json_object_array_get_idx(devs, i);

                if (!itest_get_string(d, "cdev") || !pred(d, userdata))
                        continue;
                snprintf(name, sizeof(name), "%s", itest_get_string(d, "name"));
                if (cdev)
                        snprintf(cdev, cdev_size, "%s", itest_get_string(d, "cdev"));
                found = name;
                break;
        }
        json_object_put(r);
        return found;
}

static bool pred_eligible(json_object *d, void *userdata) {
        json_object *e;

        return json_object_object_get_ex(d, "eligible", &e) && json_object_get_boolean(e);
}

typedef struct StepWanted {
        ItestClient *c;
        const char *step;
} StepWanted;

/* The device's decision fails at the wanted step. */
static bool pred_fails_at(json_object *d, void *userdata) {
        StepWanted *w = userdata;
        json_object *r, *steps;
        bool match = false;

        r = call(w->c, "org.iommud.Broker.ExplainDevice",
                 itest_params("device", json_object_new_string(itest_get_string(d, "name")),
                              NULL));
        assert_ok(r);
        assert_true(json_object_object_get_ex(itest_reply_params(r), "steps", &steps));
        for (size_t i = 0; i < json_object_array_length(steps); i++) {
                json_object *s = json_object_array_get_idx(steps, i);

                if (streq_safe(itest_get_string(s, "verdict"), "fail")) {
                        match = streq_safe(itest_get_string(s, "step"), w->step);
                        break;
                }
        }
        json_object_put(r);
        return match;
}

static int open_device(const Fixture *f, const char *cdev) {
        char path[512];
        int fd;

        snprintf(path, sizeof(path), "%s/vfio/devices/%s", f->daemon.dev_root, cdev);
        fd = open(path, O_RDWR | O_CLOEXEC);
        if (fd < 0)
                fail_msg("cannot open %s: %s", path, strerror(errno));
        return fd;
}

/* Attaches an eligible device by fd; returns its deviceId. */
static uint64_t attach_eligible(const Fixture *f, ItestClient *c, char *name_out) {
        char cdev[64];
        const char *name = find_device(c, pred_eligible, NULL, cdev, sizeof(cdev));
        json_object *r;
        uint64_t id;
        int fd;

        assert_non_null(name);
        if (name_out)
                strcpy(name_out, name);
        fd = open_device(f, cdev);
        r = call_fds(c, "org.iommud.Broker.AttachDevice",
                     itest_params("fd", json_object_new_int(0), NULL), &fd, 1);
        close(fd);
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

static json_object *map_fd(ItestClient *c, uint64_t ioas, int fd, uint64_t length,
                           const uint64_t *iova) {
        json_object *p = itest_params("ioasId", I(ioas), "memoryFd", json_object_new_int(0),
                                      "offset", I(0), "length", I(length), "readable",
                                      json_object_new_boolean(true), "writeable",
                                      json_object_new_boolean(true), NULL);

        if (iova)
                json_object_object_add(p, "iova", I(*iova));
        return call_fds(c, "org.iommud.Broker.Map", p, &fd, 1);
}

static uint64_t session_usage(ItestClient *c, const char *resource) {
        json_object *r = call(c, "org.iommud.Broker.GetSession", NULL), *usage;
        uint64_t v = UINT64_MAX;

        assert_ok(r);
        assert_true(json_object_object_get_ex(itest_reply_params(r), "usage", &usage));
        for (size_t i = 0; i < json_object_array_length(usage); i++) {
                json_object *u = json_object_array_get_idx(usage, i);

                if (streq_safe(itest_get_string(u, "resource"), resource))
                        v = itest_get_u64(u, "used");
        }
        json_object_put(r);
        assert_true(v != UINT64_MAX);
        return v;
}

/* Another connection still gets answers: a bad client never takes the daemon down. */
static void assert_daemon_serves(const Fixture *f) {
        ItestClient *w;
        json_object *r;

        assert_int_equal(itest_client_connect(&w, f->daemon.socket), 0);
        r = call(w, "org.iommud.Broker.GetSession", NULL);
        assert_ok(r);
        json_object_put(r);
        itest_client_free(w);
}

/* ---- happy paths ------------------------------------------------------------------------- */

static void test_topology_and_explain(void **state) {
        Fixture *f = *state;
        json_object *r, *groups, *devs, *steps;
        const char *name;

        r = call(f->c, "org.iommud.Broker.GetTopology", NULL);
        assert_ok(r);
        assert_true(json_object_object_get_ex(itest_reply_params(r), "groups", &groups));
        assert_true(json_object_object_get_ex(itest_reply_params(r), "devices", &devs));
        assert_true(json_object_array_length(groups) > 0);
        assert_true(json_object_array_length(devs) > 0);
        json_object_put(r);

        name = find_device(f->c, pred_eligible, NULL, NULL, 0);
        assert_non_null(name);
        r = call(f->c, "org.iommud.Broker.ExplainDevice",
                 itest_params("device", json_object_new_string(name), NULL));
        assert_ok(r);
        assert_true(json_object_get_boolean(
                json_object_object_get(itest_reply_params(r), "allowed")));
        assert_true(json_object_object_get_ex(itest_reply_params(r), "steps", &steps));
        assert_int_equal(json_object_array_length(steps), 8);
        /* The last step says whether the caller could take the device's fds (OpenDevices). */
        assert_string_equal(json_object_get_string(json_object_object_get(
                                    json_object_array_get_idx(steps, 7), "step")),
                            "delegation");
        json_object_put(r);

        /* The interface description is the IDL, for stock Varlink tools. */
        r = call(f->c, "org.varlink.service.GetInterfaceDescription",
                 itest_params("interface", json_object_new_string("org.iommud.Broker"), NULL));
        assert_ok(r);
        assert_non_null(strstr(itest_get_string(itest_reply_params(r), "description"),
                               "method Map("));
        json_object_put(r);
}

static void test_full_session(void **state) {
        Fixture *f = *state;
        uint64_t dev, ioas, ioas2, hwpt, iova, fixed = 0x100000, copy_iova, alignment;
        json_object *r, *ranges;
        int mem = itest_memfd(64 * 1024);

        assert_true(mem >= 0);
        dev = attach_eligible(f, f->c, NULL);
        ioas = create_ioas(f->c);
        ioas2 = create_ioas(f->c);

        r = call(f->c, "org.iommud.Broker.AttachToAddressSpace",
                 itest_params("deviceId", I(dev), "ioasId", I(ioas), NULL));
        assert_ok(r);
        hwpt = itest_get_u64(itest_reply_params(r), "hwptId");
        assert_true(hwpt != ioas);
        json_object_put(r);

        r = call(f->c, "org.iommud.Broker.GetIOVARanges", itest_params("ioasId", I(ioas), NULL));
        assert_ok(r);
        assert_true(json_object_object_get_ex(itest_reply_params(r), "ranges", &ranges));
        assert_true(json_object_array_length(ranges) >= 1);
        alignment = itest_get_u64(itest_reply_params(r), "alignment");
        assert_true(alignment >= 1 && (alignment & (alignment - 1)) == 0);
        json_object_put(r);

        /* Automatic and fixed IOVAs. */
        r = map_fd(f->c, ioas, mem, 16 * 1024, NULL);
        assert_ok(r);
        iova = itest_get_u64(itest_reply_params(r), "iova");
        assert_true(iova != 0);
        json_object_put(r);
        r = map_fd(f->c, ioas, mem, 32 * 1024, &fixed);
        assert_ok(r);
        assert_int_equal(itest_get_u64(itest_reply_params(r), "iova"), fixed);
        json_object_put(r);
        assert_int_equal(session_usage(f->c, "pinnedBytes"), 48 * 1024);
        assert_int_equal(session_usage(f->c, "mappings"), 2);

        /* Copy into the second address space, at an IOVA the broker picks. */
        r = call(f->c, "org.iommud.Broker.Copy",
                 itest_params("srcIoasId", I(ioas), "srcIova", I(fixed), "dstIoasId", I(ioas2),
                              "length", I(32 * 1024), NULL));
        assert_ok(r);
        copy_iova = itest_get_u64(itest_reply_params(r), "iova");
        json_object_put(r);
        assert_int_equal(session_usage(f->c, "mappings"), 3);

        r = call(f->c, "org.iommud.Broker.AllowIOVAs",
                 itest_params("ioasId", I(ioas2), "ranges",
                              json_object_new_array(), NULL));
        assert_ok(r);
        json_object_put(r);

        /* Unmap returns the bytes removed and refunds exactly them. */
        r = call(f->c, "org.iommud.Broker.Unmap",
                 itest_params("ioasId", I(ioas), "iova", I(fixed), "length", I(32 * 1024),
                              NULL));
        assert_ok(r);
        assert_int_equal(itest_get_u64(itest_reply_params(r), "unmapped"), 32 * 1024);
        json_object_put(r);
        assert_int_equal(session_usage(f->c, "pinnedBytes"), 48 * 1024);
        r = call(f->c, "org.iommud.Broker.Unmap",
                 itest_params("ioasId", I(ioas2), "iova", I(copy_iova), "length", I(32 * 1024),
                              NULL));
        assert_ok(r);
        json_object_put(r);
        assert_int_equal(session_usage(f->c, "pinnedBytes"), 16 * 1024);

        /* An address space with a device attached cannot go; after the detach it can. */
        r = call(f->c, "org.iommud.Broker.DestroyAddressSpace",
                 itest_params("ioasId", I(ioas), NULL));
        assert_error(r, "org.iommud.Broker.ObjectInUse");
        json_object_put(r);
        r = call(f->c, "org.iommud.Broker.DetachDevice", itest_params("deviceId", I(dev), NULL));
        assert_ok(r);
        json_object_put(r);
        r = call(f->c, "org.iommud.Broker.DestroyAddressSpace",
                 itest_params("ioasId", I(ioas), NULL));
        assert_ok(r);
        json_object_put(r);
        r = call(f->c, "org.iommud.Broker.DestroyAddressSpace",
                 itest_params("ioasId", I(ioas2), NULL));
        assert_ok(r);
        json_object_put(r);

        /* The unmapped remainder was refunded with its address space. */
        assert_int_equal(session_usage(f->c, "pinnedBytes"), 0);
        assert_int_equal(session_usage(f->c, "mappings"), 0);
        assert_int_equal(session_usage(f->c, "addressSpaces"), 0);
        assert_int_equal(session_usage(f->c, "devices"), 0);
        close(mem);
}

static void test_attach_by_name_and_delegate(void **state) {
        Fixture *f = *state;
        const char *name = find_device(f->c, pred_eligible, NULL, NULL, 0);
        json_object *r;
        uint64_t id;
        char n[64];

        assert_non_null(name);
        snprintf(n, sizeof(n), "%s", name);
        r = call(f->c, "org.iommud.Broker.AttachDevice",
                 itest_params("device", json_object_new_string(n), NULL));
        assert_ok(r);
        assert_string_equal(itest_get_string(itest_reply_params(r), "bdf"), n);
        id = itest_get_u64(itest_reply_params(r), "deviceId");
        json_object_put(r);

        /* Clients of the simulated host pass their own device nodes: no fd comes back. */
        r = call(f->c, "org.iommud.Broker.GetDeviceFd",
                 itest_params("deviceId", json_object_new_int64((int64_t)id), NULL));
        assert_error(r, "org.iommud.Broker.NotSupported");
        assert_int_equal(f->c->n_rfds, 0);
        json_object_put(r);

        /* Only a session that holds nothing gets an iommufd of its own. */
        r = call(f->c, "org.iommud.Broker.Delegate", NULL);
        assert_error(r, "org.iommud.Broker.ObjectInUse");
        assert_int_equal(f->c->n_rfds, 0);
        json_object_put(r);
}

static void test_join_session(void **state) {
        Fixture *f = *state;
        ItestClient *second;
        json_object *r;
        char token[64];
        uint64_t ioas;

        ioas = create_ioas(f->c);
        r = call(f->c, "org.iommud.Broker.GetSession", NULL);
        assert_ok(r);
        snprintf(token, sizeof(token), "%s", itest_get_string(itest_reply_params(r), "token"));
        json_object_put(r);

        assert_int_equal(itest_client_connect(&second, f->daemon.socket), 0);
        r = call(second, "org.iommud.Broker.JoinSession",
                 itest_params("token", json_object_new_string("0123"), NULL));
        assert_error(r, "org.iommud.Broker.NoSuchObject");
        json_object_put(r);
        r = call(second, "org.iommud.Broker.JoinSession",
                 itest_params("token", json_object_new_string(token), NULL));
        assert_ok(r);
        json_object_put(r);
        /* The second connection sees the first one's objects. */
        assert_int_equal(session_usage(second, "addressSpaces"), 1);
        r = call(second, "org.iommud.Broker.DestroyAddressSpace",
                 itest_params("ioasId", I(ioas), NULL));
        assert_ok(r);
        json_object_put(r);
        itest_client_free(second);
        assert_int_equal(session_usage(f->c, "addressSpaces"), 0);
}

static void wait_released(const Fixture *f, bool check_fds);

/* ---- errors ------------------------------------------------------------------------------ */

static void test_error_names(void **state) {
        Fixture *f = *state;
        uint64_t ioas, fixed = 0x200000;
        int mem = itest_memfd(2 * 1024 * 1024);
        json_object *r;

        assert_true(mem >= 0);
        ioas = create_ioas(f->c);

        /* NoSuchObject: ids are looked up in this session only. */
        r = call(f->c, "org.iommud.Broker.DetachDevice", itest_params("deviceId", I(4242), NULL));
        assert_error(r, "org.iommud.Broker.NoSuchObject");
        assert_string_equal(itest_get_string(itest_reply_params(r), "kind"), "device");
        assert_string_equal(itest_get_string(itest_reply_params(r), "id"), "4242");
        json_object_put(r);
        r = call(f->c, "org.iommud.Broker.ExplainDevice",
                 itest_params("device", json_object_new_string("0000:ff:1f.7"), NULL));
        assert_error(r, "org.iommud.Broker.NoSuchObject");
        json_object_put(r);

        /* InvalidRange: nothing mapped there. */
        r = call(f->c, "org.iommud.Broker.Unmap",
                 itest_params("ioasId", I(ioas), "iova", I(0x1000), "length", I(PAGE), NULL));
        assert_error(r, "org.iommud.Broker.InvalidRange");
        json_object_put(r);

        /* IOVAInUse: a fixed map over an existing one. */
        r = map_fd(f->c, ioas, mem, 64 * 1024, &fixed);
        assert_ok(r);
        json_object_put(r);
        r = map_fd(f->c, ioas, mem, 64 * 1024, &fixed);
        assert_error(r, "org.iommud.Broker.IOVAInUse");
        assert_int_equal(itest_get_u64(itest_reply_params(r), "start"), fixed);
        json_object_put(r);

        /* InvalidRange: an unmap that cuts a mapping changes nothing. */
        r = call(f->c, "org.iommud.Broker.Unmap",
                 itest_params("ioasId", I(ioas), "iova", I(fixed), "length", I(PAGE), NULL));
        assert_error(r, "org.iommud.Broker.InvalidRange");
        json_object_put(r);
        assert_int_equal(session_usage(f->c, "pinnedBytes"), 64 * 1024);

        /* QuotaExceeded: pinned memory over the grant's 1M, and nothing charged. */
        r = map_fd(f->c, ioas, mem, 2 * 1024 * 1024, NULL);
        assert_error(r, "org.iommud.Broker.QuotaExceeded");
        assert_string_equal(itest_get_string(itest_reply_params(r), "resource"), "pinnedBytes");
        assert_int_equal(itest_get_u64(itest_reply_params(r), "limit"), QUOTA_PINNED);
        assert_int_equal(itest_get_u64(itest_reply_params(r), "used"), 64 * 1024);
        json_object_put(r);
        assert_int_equal(session_usage(f->c, "pinnedBytes"), 64 * 1024);

        /* QuotaExceeded: address spaces (4 allowed, 1 held). */
        for (int i = 0; i < 3; i++)
                (void)create_ioas(f->c);
        r = call(f->c, "org.iommud.Broker.CreateAddressSpace", NULL);
        assert_error(r, "org.iommud.Broker.QuotaExceeded");
        assert_string_equal(itest_get_string(itest_reply_params(r), "resource"),
                            "addressSpaces");
        json_object_put(r);

        /* NoSuchObject: a PASID bind on a device this session does not hold, a made-up cookie. */
        r = call(f->c, "org.iommud.Broker.BindPASID",
                 itest_params("deviceId", I(4242), "ioasId", I(ioas), NULL));
        assert_error(r, "org.iommud.Broker.NoSuchObject");
        assert_string_equal(itest_get_string(itest_reply_params(r), "kind"), "device");
        json_object_put(r);
        r = call(f->c, "org.iommud.Broker.RespondFault",
                 itest_params("cookie", I(1), "code", json_object_new_string("success"), NULL));
        assert_error(r, "org.iommud.Broker.NoSuchObject");
        assert_string_equal(itest_get_string(itest_reply_params(r), "kind"), "fault");
        json_object_put(r);

        /* InvalidParameter names the member: wrong type, missing, negative, unknown. */
        static const char *const bad[] = {
                "{\"ioasId\":\"1\",\"iova\":0,\"length\":4096}",
                "{\"iova\":0,\"length\":4096}",
                "{\"ioasId\":1,\"iova\":-4096,\"length\":4096}",
                "{\"ioasId\":1,\"iova\":0,\"length\":4096,\"bogus\":1}",
                "{\"ioasId\":4294967296,\"iova\":0,\"length\":4096}",
                "{\"ioasId\":1,\"iova\":0.5,\"length\":4096}",
                /* Beyond 2^64: refused, not read as 2^64-1. */
                "{\"ioasId\":1,\"iova\":0,\"length\":1000000000000000000000000000000}",
                "{\"ioasId\":1,\"iova\":-1000000000000000000000000000000,\"length\":4096}",
        };
        static const char *const param[] = { "ioasId", "ioasId", "iova", "bogus", "ioasId",
                                             "iova", "length", "iova" };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                char text[256];
                int n;

                /* Sent as text: json-c in this process would saturate the big literals. */
                n = snprintf(text, sizeof(text),
                             "{\"method\":\"org.iommud.Broker.Unmap\",\"parameters\":%s}", bad[i]);
                assert_true(n > 0 && (size_t)n < sizeof(text));
                assert_int_equal(itest_client_send_raw(f->c, text, (size_t)n + 1, NULL, 0), 0);
                assert_int_equal(itest_client_recv(f->c, &r), 1);
                assert_error(r, "org.varlink.service.InvalidParameter");
                assert_string_equal(itest_get_string(itest_reply_params(r), "parameter"),
                                    param[i]);
                json_object_put(r);
        }

        /* Unknown methods and interfaces. */
        r = call(f->c, "org.iommud.Broker.Frobnicate", NULL);
        assert_error(r, "org.varlink.service.MethodNotFound");
        json_object_put(r);
        r = call(f->c, "org.example.Nope.Frobnicate", NULL);
        assert_error(r, "org.varlink.service.InterfaceNotFound");
        json_object_put(r);
        close(mem);
}

static void test_bad_device_fds(void **state) {
        Fixture *f = *state;
        int p[2], sp[2], fds[7];
        char tmpl[] = "/tmp/iommud-itest-file-XXXXXX";

        assert_int_equal(pipe2(p, O_CLOEXEC), 0);
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0);
        fds[0] = p[0];
        fds[1] = sp[0];
        fds[2] = mkstemp(tmpl);
        fds[3] = open("/dev/null", O_RDWR | O_CLOEXEC);
        fds[4] = open("/tmp", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        fds[5] = open("/tmp", O_PATH | O_CLOEXEC);
        fds[6] = itest_memfd(PAGE);
        unlink(tmpl);

        for (size_t i = 0; i < 7; i++) {
                json_object *r;

                assert_true(fds[i] >= 0);
                r = call_fds(f->c, "org.iommud.Broker.AttachDevice",
                             itest_params("fd", json_object_new_int(0), NULL), &fds[i], 1);
                assert_error(r, "org.iommud.Broker.InvalidFd");
                assert_int_equal(itest_get_u64(itest_reply_params(r), "index"), 0);
                assert_non_null(itest_get_string(itest_reply_params(r), "reason"));
                json_object_put(r);
        }
        /* An index that was not sent. */
        {
                json_object *r = call(f->c, "org.iommud.Broker.AttachDevice",
                                      itest_params("fd", json_object_new_int(3), NULL));
                assert_error(r, "org.varlink.service.InvalidParameter");
                json_object_put(r);
        }
        for (size_t i = 0; i < 7; i++)
                close(fds[i]);
        close(p[1]);
        close(sp[1]);
        assert_int_equal(session_usage(f->c, "devices"), 0);
}

static void test_bad_memory_fds(void **state) {
        Fixture *f = *state;
        char path[512], cdev[64];
        int p[2], fds[4];
        uint64_t ioas = create_ioas(f->c);

        /* A regular file on a file system that is not tmpfs: the build directory's. */
        snprintf(path, sizeof(path), "%s/regular-file", getenv("IOMMUD_ITEST_SCRATCH") ?: ".");
        fds[1] = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        assert_true(fds[1] >= 0);
        assert_int_equal(ftruncate(fds[1], 64 * 1024), 0);
        unlink(path);
        assert_int_equal(pipe2(p, O_CLOEXEC), 0);
        fds[0] = p[0];
        fds[2] = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        assert_non_null(find_device(f->c, pred_eligible, NULL, cdev, sizeof(cdev)));
        fds[3] = open_device(f, cdev);

        for (size_t i = 0; i < 4; i++) {
                json_object *r = map_fd(f->c, ioas, fds[i], PAGE, NULL);

                assert_error(r, "org.iommud.Broker.InvalidFd");
                json_object_put(r);
                close(fds[i]);
        }
        close(p[1]);
        assert_int_equal(session_usage(f->c, "mappings"), 0);
        assert_int_equal(session_usage(f->c, "pinnedBytes"), 0);
}

/* ---- policy denials ---------------------------------------------------------------------- */

static void test_denied_non_viable_group(void **state) {
        Fixture *f = *state;
        StepWanted w = { .c = f->c, .step = "group" };
        char cdev[64], name[64];
        const char *n = find_device(f->c, pred_fails_at, &w, cdev, sizeof(cdev));
        json_object *r;
        int fd;

        assert_non_null(n);
        snprintf(name, sizeof(name), "%s", n);
        fd = open_device(f, cdev);
        r = call_fds(f->c, "org.iommud.Broker.AttachDevice",
                     itest_params("fd", json_object_new_int(0), NULL), &fd, 1);
        close(fd);
        assert_error(r, "org.iommud.Broker.PolicyDenied");
        assert_string_equal(itest_get_string(itest_reply_params(r), "step"), "group");
        assert_string_equal(itest_get_string(itest_reply_params(r), "device"), name);
        json_object_put(r);
}

static void test_denied_rmrr_on_server(void **state) {
        Fixture server = {};
        char *policy = itest_policy_for_self(grant_extras);
        ItestClient *c;
        StepWanted w;
        char cdev[64];
        json_object *r;
        int fd;

        assert_int_equal(itest_daemon_start(&server.daemon, "server", policy), 0);
        free(policy);
        assert_int_equal(itest_client_connect(&c, server.daemon.socket), 0);
        w = (StepWanted){ .c = c, .step = "regions" };
        assert_non_null(find_device(c, pred_fails_at, &w, cdev, sizeof(cdev)));
        fd = open_device(&server, cdev);
        r = call_fds(c, "org.iommud.Broker.AttachDevice",
                     itest_params("fd", json_object_new_int(0), NULL), &fd, 1);
        close(fd);
        assert_error(r, "org.iommud.Broker.PolicyDenied");
        assert_string_equal(itest_get_string(itest_reply_params(r), "step"), "regions");
        json_object_put(r);
        itest_client_free(c);
        assert_int_equal(itest_daemon_stop(&server.daemon), 0);
}

static void test_denied_other_principal(void **state) {
        Fixture *f = *state;
        char cdev[64];
        pid_t pid;
        int status;

        assert_non_null(find_device(f->c, pred_eligible, NULL, cdev, sizeof(cdev)));
        if (getuid() != 0)
                skip();
        pid = itest_fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                ItestClient *c;
                json_object *r;
                int fd = open_device(f, cdev);

                if (setgroups(0, NULL) < 0 || setgid(65534) < 0 || setuid(65534) < 0)
                        _exit(2);
                itest_die_with_parent();
                if (itest_client_connect(&c, f->daemon.socket) < 0)
                        _exit(3);
                r = itest_call(c, "org.iommud.Broker.AttachDevice",
                               itest_params("fd", json_object_new_int(0), NULL), &fd, 1);
                _exit(streq_safe(itest_reply_error(r), "org.iommud.Broker.PolicyDenied") &&
                                      streq_safe(itest_get_string(itest_reply_params(r), "step"),
                                                 "principal")
                              ? 0
                              : 4);
        }
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
}

typedef struct GroupPair {
        char a[64], b[64];
        char a_cdev[64], b_cdev[64];
} GroupPair;

/* Two eligible devices with cdevs in one group. */
static bool find_group_pair(ItestClient *c, GroupPair *ret) {
        json_object *r = call(c, "org.iommud.Broker.GetTopology", NULL), *devs;
        bool found = false;

        assert_true(json_object_object_get_ex(itest_reply_params(r), "devices", &devs));
        for (size_t i = 0; i < json_object_array_length(devs) && !found; i++)
                for (size_t j = i + 1; j < json_object_array_length(devs) && !found; j++) {
                        json_object *x = json_object_array_get_idx(devs, i);
                        json_object *y = json_object_array_get_idx(devs, j);
                        json_object *gx, *gy;

                        if (!pred_eligible(x, NULL) || !pred_eligible(y, NULL) ||
                            !itest_get_string(x, "cdev") || !itest_get_string(y, "cdev") ||
                            !json_object_object_get_ex(x, "group", &gx) ||
                            !json_object_object_get_ex(y, "group", &gy) ||
                            json_object_get_int64(gx) != json_object_get_int64(gy))
                                continue;
                        snprintf(ret->a, sizeof(ret->a), "%s", itest_get_string(x, "name"));
                        snprintf(ret->b, sizeof(ret->b), "%s", itest_get_string(y, "name"));
                        snprintf(ret->a_cdev, sizeof(ret->a_cdev), "%s",
                                 itest_get_string(x, "cdev"));
                        snprintf(ret->b_cdev, sizeof(ret->b_cdev), "%s",
                                 itest_get_string(y, "cdev"));
                        found = true;
                }
        json_object_put(r);
        return found;
}

/* The workstation has no group with two VFIO devices; the server's switch group does. */
static void test_busy_group_names_holder(void **state) {
        Fixture server = {};
        char *policy = itest_policy_for_self(grant_extras);
        ItestClient *c, *other;
        GroupPair gp;
        json_object *r;
        int fd;

        assert_int_equal(itest_daemon_start(&server.daemon, "server", policy), 0);
        free(policy);
        assert_int_equal(itest_client_connect(&c, server.daemon.socket), 0);
        assert_true(find_group_pair(c, &gp));
        fd = open_device(&server, gp.a_cdev);
        r = call_fds(c, "org.iommud.Broker.AttachDevice",
                     itest_params("fd", json_object_new_int(0), NULL), &fd, 1);
        close(fd);
        assert_ok(r);
        json_object_put(r);

        /* Another connection asks for the sibling: the whole group is held. */
        assert_int_equal(itest_client_connect(&other, server.daemon.socket), 0);
        fd = open_device(&server, gp.b_cdev);
        r = call_fds(other, "org.iommud.Broker.AttachDevice",
                     itest_params("fd", json_object_new_int(0), NULL), &fd, 1);
        assert_error(r, "org.iommud.Broker.DeviceBusy");
        assert_string_equal(itest_get_string(itest_reply_params(r), "device"), gp.b);
        assert_non_null(strstr(itest_get_string(itest_reply_params(r), "heldBy"), "uid "));
        json_object_put(r);
        assert_int_equal(session_usage(other, "devices"), 0);

        /* The same device twice in one session is refused too. */
        r = call(c, "org.iommud.Broker.AttachDevice",
                 itest_params("device", json_object_new_string(gp.a), NULL));
        assert_error(r, "org.iommud.Broker.DeviceBusy");
        json_object_put(r);

        /* Once the holder is gone, the sibling is free. */
        itest_client_free(c);
        wait_released(&server, false);
        r = call_fds(other, "org.iommud.Broker.AttachDevice",
                     itest_params("fd", json_object_new_int(0), NULL), &fd, 1);
        assert_ok(r);
        json_object_put(r);
        close(fd);
        itest_client_free(other);
        assert_int_equal(itest_daemon_stop(&server.daemon), 0);
}

/* ---- robustness -------------------------------------------------------------------------- */

/* Whether the daemon reports any device as held, asked on a connection of its own. */
static bool any_held(const Fixture *f) {
        ItestClient *w;
        json_object *r, *devs;
        bool held = false;

        assert_int_equal(itest_client_connect(&w, f->daemon.socket), 0);
        r = call(w, "org.iommud.Broker.GetTopology", NULL);
        assert_true(json_object_object_get_ex(itest_reply_params(r), "devices", &devs));
        for (size_t k = 0; k < json_object_array_length(devs); k++)
                held = held || json_object_object_get_ex(json_object_array_get_idx(devs, k),
                                                         "heldBy", NULL);
        json_object_put(r);
        itest_client_free(w);
        return held;
}

/*
 * Waits until the daemon holds no device, then until it is back at its fd baseline (or gives
 * up).  The fds are counted with no connection of ours opening meanwhile: the one any_held()
 * just closed is the daemon's to close, and a new one every round would always be one more.
 */
static void wait_released(const Fixture *f, bool check_fds) {
        int i = 0;

        while (any_held(f)) {
                if (++i >= 2000)
                        fail_msg("the daemon still holds devices");
                usleep(5000);
        }
        for (i = 0; check_fds && itest_daemon_count_fds(&f->daemon) > f->baseline_fds; i++) {
                if (i >= 2000)
                        fail_msg("the daemon still holds fds (%d, baseline %d)",
                                 itest_daemon_count_fds(&f->daemon), f->baseline_fds);
                usleep(5000);
        }
}

static int test_teardown_released(void **state) {
        test_teardown(state);
        wait_released(*state, true);
        return 0;
}

static void test_malformed_traffic(void **state) {
        Fixture *f = *state;
        static const struct {
                const char *what;
                const char *data;
                size_t len; /* 0: strlen + 1 */
                size_t n_fds;
        } cases[] = {
                { "missing NUL, then close", "{\"method\":\"org.iommud.Broker.GetSession\"}", 41, 0 },
                { "invalid JSON", "{\"method\":", 0, 0 },
                { "not an object", "[1,2,3]", 0, 0 },
                { "method of the wrong type", "{\"method\":5}", 0, 0 },
                { "no method", "{\"parameters\":{}}", 0, 0 },
                { "too many fds", "{\"method\":\"org.iommud.Broker.GetSession\"}", 0, 17 },
                { "oversize message", NULL, 0, 0 },
        };

        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                ItestClient *bad;
                int fds[17];
                char *big = NULL;
                const char *data = cases[i].data;
                size_t len;

                assert_int_equal(itest_client_connect(&bad, f->daemon.socket), 0);
                if (!data) {
                        /* 64K is the test policy's limit. */
                        len = 128 * 1024;
                        big = malloc(len + 1);
                        memset(big, ' ', len);
                        memcpy(big, "{\"method\":\"x\",\"pad\":\"", 20);
                        big[len] = '\0';
                        data = big;
                } else
                        len = cases[i].len ?: strlen(data) + 1;
                for (size_t k = 0; k < cases[i].n_fds; k++)
                        fds[k] = itest_memfd(PAGE);
                (void)itest_client_send_raw(bad, data, len, fds, cases[i].n_fds);
                for (size_t k = 0; k < cases[i].n_fds; k++)
                        close(fds[k]);
                if (i == 0)
                        shutdown(bad->fd, SHUT_WR);
                if (!itest_client_is_closed(bad))
                        fail_msg("case '%s': the daemon kept the connection", cases[i].what);
                itest_client_free(bad);
                free(big);

                /* Our own connection and new ones are unaffected. */
                json_object *r = call(f->c, "org.iommud.Broker.GetSession", NULL);
                assert_ok(r);
                json_object_put(r);
                assert_daemon_serves(f);
        }
}

static void test_client_never_reads(void **state) {
        Fixture *f = *state;
        ItestClient *lazy;
        const char *msg = "{\"method\":\"org.iommud.Broker.GetTopology\"}";
        size_t sent = 0;
        int flags;

        assert_int_equal(itest_client_connect(&lazy, f->daemon.socket), 0);
        flags = fcntl(lazy->fd, F_GETFL);
        assert_int_equal(fcntl(lazy->fd, F_SETFL, flags | O_NONBLOCK), 0);
        /* Queue calls until our send buffer is full: the daemon must stop reading, not block. */
        for (;;) {
                ssize_t k = send(lazy->fd, msg, strlen(msg) + 1, MSG_NOSIGNAL);

                if (k < 0) {
                        assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
                        break;
                }
                sent += (size_t)k;
                if (sent > 64 * 1024 * 1024)
                        fail_msg("the daemon kept reading %zu bytes from a client that never "
                                 "reads",
                                 sent);
        }
        assert_daemon_serves(f);
        json_object *r = call(f->c, "org.iommud.Broker.GetSession", NULL);
        assert_ok(r);
        json_object_put(r);
        itest_client_free(lazy);
        assert_daemon_serves(f);
}

static void test_sigkill_mid_session(void **state) {
        Fixture *f = *state;
        char cdev[64], name[64];
        int ready[2], status;
        pid_t pid;
        json_object *r;

        assert_non_null(find_device(f->c, pred_eligible, NULL, cdev, sizeof(cdev)));
        assert_int_equal(pipe2(ready, O_CLOEXEC), 0);
        pid = itest_fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                ItestClient *c;
                uint64_t ioas;
                int fd = open_device(f, cdev), mem = itest_memfd(256 * 1024);

                close(ready[0]);
                if (itest_client_connect(&c, f->daemon.socket) < 0)
                        _exit(1);
                r = itest_call(c, "org.iommud.Broker.AttachDevice",
                               itest_params("fd", json_object_new_int(0), NULL), &fd, 1);
                if (itest_reply_error(r))
                        _exit(2);
                r = itest_call(c, "org.iommud.Broker.CreateAddressSpace", NULL, NULL, 0);
                if (itest_reply_error(r))
                        _exit(3);
                ioas = itest_get_u64(itest_reply_params(r), "ioasId");
                r = map_fd(c, ioas, mem, 256 * 1024, NULL);
                if (itest_reply_error(r))
                        _exit(4);
                (void)!write(ready[1], "x", 1);
                for (;;)
                        pause();
        }
        close(ready[1]);
        {
                char x;
                assert_int_equal(read(ready[0], &x, 1), 1);
        }
        close(ready[0]);
        kill(pid, SIGKILL);
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFSIGNALED(status));

        /* Right away, another client gets the device, and its session starts from zero. */
        snprintf(name, sizeof(name), "%s", find_device(f->c, pred_eligible, NULL, NULL, 0) ?: "");
        {
                int fd = open_device(f, cdev);

                r = call_fds(f->c, "org.iommud.Broker.AttachDevice",
                             itest_params("fd", json_object_new_int(0), NULL), &fd, 1);
                close(fd);
        }
        assert_ok(r);
        json_object_put(r);
        assert_int_equal(session_usage(f->c, "pinnedBytes"), 0);
        assert_int_equal(session_usage(f->c, "addressSpaces"), 0);
        assert_int_equal(session_usage(f->c, "devices"), 1);
}

static void test_fds_return_to_baseline(void **state) {
        Fixture *f = *state;

        /* Everything the earlier tests held is gone once their clients are. */
        itest_client_free(f->c);
        f->c = NULL;
        wait_released(f, true);
        assert_true(itest_daemon_count_fds(&f->daemon) <= f->baseline_fds);
        assert_int_equal(itest_client_connect(&f->c, f->daemon.socket), 0);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_topology_and_explain, test_setup,
                                                test_teardown_released),
                cmocka_unit_test_setup_teardown(test_full_session, test_setup,
                                                test_teardown_released),
                cmocka_unit_test_setup_teardown(test_attach_by_name_and_delegate, test_setup,
                                                test_teardown_released),
                cmocka_unit_test_setup_teardown(test_join_session, test_setup,
                                                test_teardown_released),
                cmocka_unit_test_setup_teardown(test_error_names, test_setup,
                                                test_teardown_released),
                cmocka_unit_test_setup_teardown(test_bad_device_fds, test_setup,
                                                test_teardown_released),
                cmocka_unit_test_setup_teardown(test_bad_memory_fds, test_setup,
                                                test_teardown_released),
                cmocka_unit_test_setup_teardown(test_denied_non_viable_group, test_setup,
                                                test_teardown_released),
                cmocka_unit_test_setup_teardown(test_denied_rmrr_on_server, test_setup,
                                                test_teardown_released),
                cmocka_unit_test_setup_teardown(test_denied_other_principal, test_setup,
                                                test_teardown_released),
                cmocka_unit_test_setup_teardown(test_busy_group_names_holder, test_setup,
                                                test_teardown_released),
                cmocka_unit_test_setup_teardown(test_malformed_traffic, test_setup,
                                                test_teardown_released),
                cmocka_unit_test_setup_teardown(test_client_never_reads, test_setup,
                                                test_teardown_released),
                cmocka_unit_test_setup_teardown(test_sigkill_mid_session, test_setup,
                                                test_teardown_released),
                cmocka_unit_test_setup_teardown(test_fds_return_to_baseline, test_setup,
                                                test_teardown_released),
        };

        signal(SIGPIPE, SIG_IGN);
        return cmocka_run_group_tests_name("broker-integration", tests, setup_workstation,
                                           teardown);
}
