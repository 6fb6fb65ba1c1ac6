/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * One principal, two transports, one quota: what a uid holds through an
 * org.iommud1 session counts against the same quotas as what it holds through
 * a Varlink session, and a D-Bus session is one of its connections; a MapBatch over
 * D-Bus is charged once for its total and maps all its areas or none.  A private
 * dbus-daemon with the system-style configuration and the real iommud; the
 * clients are this process (root, which iommud lets open sessions without
 * asking polkit), so no polkitd is needed.
 */

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <json-c/json.h>
#include <systemd/sd-bus.h>

#include "bus-errors.h"
#include "bus-harness.h"
#include "bus.h"
#include "itest.h"
#include "session.h"

#define QUOTA_PINNED (64 * 1024)

static struct {
        char dir[64];
        pid_t dbus_pid;
        ItestDaemon daemon;
        sd_bus *bus;
} env;

static const char grant_extras[] =
        "\"quotas\": { \"pinned-memory\": \"64K\", \"connections\": 3, \"address-spaces\": 4 }";

/* NULL to run, or why the whole suite is skipped (a TAP plan of zero with a SKIP directive). */
static const char *prepare(void) {
        if (geteuid() != 0)
                return "needs root to open D-Bus sessions without polkit";
        snprintf(env.dir, sizeof(env.dir), "/tmp/iommud-busq-XXXXXX");
        if (!mkdtemp(env.dir) || chmod(env.dir, 0755) < 0) {
                printf("Bail out! scratch directory %s: %m\n", env.dir);
                exit(EXIT_FAILURE);
        }
        return NULL;
}

static int group_setup(void **state) {
        char *policy;
        int r;

        /* As root (prepare() checked), dbus-daemon must come up: else a failure. */
        r = bus_harness_start_dbus(env.dir, &env.dbus_pid, &env.bus);
        if (r < 0) {
                print_message("Bail out! dbus-daemon did not come up: %s\n", strerror(-r));
                return -1;
        }
        policy = itest_policy_for_self(grant_extras);
        assert_non_null(policy);
        assert_int_equal(itest_daemon_start(&env.daemon, "workstation", policy), 0);
        free(policy);
        assert_int_equal(bus_harness_wait_for_name(env.bus, BUS_NAME, env.daemon.pid), 0);
        *state = NULL;
        return 0;
}

static int group_teardown(void **state) {
        if (env.daemon.pid > 0)
                assert_int_equal(itest_daemon_stop(&env.daemon), 0);
        env.bus = sd_bus_flush_close_unref(env.bus);
        bus_harness_reap(&env.dbus_pid);
        bus_harness_remove_dir(env.dir);
        return 0;
}

/* ---- D-Bus ----------------------------------------------------------------------------------- */

/* Calls member; returns 0 and the reply, or -errno with the error's name in name. */
static int bus_call(const char *path, const char *iface, const char *member, sd_bus_message **ret,
                    char *name, size_t name_size, const char *types, ...) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *m = NULL;
        va_list ap;
        int r;

        assert_int_equal(sd_bus_message_new_method_call(env.bus, &m, BUS_NAME, path, iface,
                                                        member),
                         0);
        if (types) {
                va_start(ap, types);
                assert_true(sd_bus_message_appendv(m, types, ap) >= 0);
                va_end(ap);
        }
        r = sd_bus_call(env.bus, m, 0, &error, ret);
        if (r < 0 && name)
                snprintf(name, name_size, "%s", error.name ?: "");
        sd_bus_message_unref(m);
        sd_bus_error_free(&error);
        return r < 0 ? r : 0;
}

static char *bus_create_session(void) {
        sd_bus_message *reply = NULL;
        const char *path;
        char *ret;

        assert_int_equal(bus_call(BUS_PATH, BUS_MANAGER_INTERFACE, "CreateSession", &reply, NULL,
                                  0, NULL),
                         0);
        assert_true(sd_bus_message_read(reply, "o", &path) >= 0);
        ret = strdup(path);
        assert_non_null(ret);
        sd_bus_message_unref(reply);
        return ret;
}

static void bus_close_session(const char *path) {
        sd_bus_message *reply = NULL;

        assert_int_equal(bus_call(path, BUS_SESSION_INTERFACE, "Close", &reply, NULL, 0, NULL), 0);
        sd_bus_message_unref(reply);
}

/* Maps length bytes of a new memfd into a new address space of the D-Bus session. */
static int bus_map(const char *session, uint64_t length, char *err, size_t err_size) {
        sd_bus_message *reply = NULL;
        uint32_t ioas;
        uint64_t iova;
        int mem = itest_memfd(length), r;

        assert_true(mem >= 0);
        assert_int_equal(bus_call(session, BUS_SESSION_INTERFACE, "CreateAddressSpace", &reply,
                                  NULL, 0, NULL),
                         0);
        assert_true(sd_bus_message_read(reply, "u", &ioas) >= 0);
        reply = sd_bus_message_unref(reply);
        r = bus_call(session, BUS_SESSION_INTERFACE, "Map", &reply, err, err_size, "uhtttu", ioas,
                     mem, (uint64_t)0, length, (uint64_t)0x100000,
                     BUS_MAP_FIXED_IOVA | BUS_MAP_READABLE | BUS_MAP_WRITEABLE);
        if (r >= 0)
                assert_true(sd_bus_message_read(reply, "t", &iova) >= 0);
        sd_bus_message_unref(reply);
        close(mem);
        return r;
}

/* The (resource, used, limit) row of a usage property: Usage (the session's) or PrincipalUsage. */
static uint64_t bus_usage(const char *session, const char *property, const char *resource) {
        sd_bus_message *reply = NULL;
        const char *name;
        uint64_t used, limit, found = UINT64_MAX;

        assert_int_equal(bus_call(session, "org.freedesktop.DBus.Properties", "Get", &reply, NULL,
                                  0, "ss", BUS_SESSION_INTERFACE, property),
                         0);
        assert_true(sd_bus_message_enter_container(reply, 'v', "a(stt)") > 0);
        assert_true(sd_bus_message_enter_container(reply, 'a', "(stt)") > 0);
        while (sd_bus_message_read(reply, "(stt)", &name, &used, &limit) > 0)
                if (strcmp(name, resource) == 0)
                        found = used;
        sd_bus_message_unref(reply);
        if (found == UINT64_MAX)
                fail_msg("%s of %s has no row %s", property, session, resource);
        return found;
}

/* ---- Varlink ------------------------------------------------------------------------------- */

static json_object *vcall(ItestClient *c, const char *method, json_object *params, int fd) {
        json_object *r = itest_call(c, method, params, fd >= 0 ? &fd : NULL, fd >= 0 ? 1 : 0);

        if (!r)
                fail_msg("no reply to %s", method);
        return r;
}

static const char *varlink_map(ItestClient *c, uint64_t length, json_object **ret) {
        json_object *r = vcall(c, "org.iommud.Broker.CreateAddressSpace", NULL, -1);
        uint64_t ioas;
        int mem = itest_memfd(length);

        assert_null(itest_reply_error(r));
        ioas = itest_get_u64(itest_reply_params(r), "ioasId");
        json_object_put(r);
        r = vcall(c, "org.iommud.Broker.Map",
                  itest_params("ioasId", json_object_new_int64((int64_t)ioas), "memoryFd",
                               json_object_new_int(0), "offset", json_object_new_int(0), "length",
                               json_object_new_int64((int64_t)length), "readable",
                               json_object_new_boolean(true), "writeable",
                               json_object_new_boolean(true), NULL),
                  mem);
        close(mem);
        *ret = r;
        return itest_reply_error(r);
}

static uint64_t varlink_principal_used(ItestClient *c, const char *resource) {
        json_object *r = vcall(c, "org.iommud.Broker.GetSession", NULL, -1), *usage, *v;
        uint64_t found = UINT64_MAX;

        assert_null(itest_reply_error(r));
        assert_true(json_object_object_get_ex(itest_reply_params(r), "usage", &usage));
        for (size_t i = 0; i < json_object_array_length(usage); i++) {
                json_object *u = json_object_array_get_idx(usage, i);

                if (strcmp(itest_get_string(u, "resource"), resource) == 0 &&
                    json_object_object_get_ex(u, "principalUsed", &v))
                        found = (uint64_t)json_object_get_uint64(v);
        }
        json_object_put(r);
        if (found == UINT64_MAX)
                fail_msg("GetSession has no principalUsed for %s", resource);
        return found;
}

/* ---- tests ----------------------------------------------------------------------------------- */

/* What the D-Bus session pins is the whole quota of the uid, on the socket too. */
static void test_pinned_across_transports(void **state) {
        _cleanup_free_ char *session = NULL;
        ItestClient *c = NULL;
        json_object *r = NULL;
        const char *e;
        char err[128] = "";

        session = bus_create_session();
        assert_int_equal(bus_map(session, QUOTA_PINNED, err, sizeof(err)), 0);
        assert_int_equal(bus_usage(session, "Usage", BROKER_RESOURCE_PINNED_BYTES), QUOTA_PINNED);

        assert_int_equal(itest_client_connect(&c, env.daemon.socket), 0);
        e = varlink_map(c, 4096, &r);
        print_message("# uid 0: %d KiB through org.iommud1, then 4 KiB over Varlink: %s\n",
                      QUOTA_PINNED / 1024, e ?: "mapped");
        if (!e || strcmp(e, BROKER_ERROR_QUOTA_EXCEEDED) != 0)
                fail_msg("expected QuotaExceeded, got %s", json_object_to_json_string(r));
        assert_int_equal(itest_get_u64(itest_reply_params(r), "used"), QUOTA_PINNED);
        json_object_put(r);
        assert_int_equal(varlink_principal_used(c, "pinnedBytes"), QUOTA_PINNED);
        /* Both sessions name the principal's total; each its own share. */
        assert_int_equal(bus_usage(session, "PrincipalUsage", BROKER_RESOURCE_PINNED_BYTES),
                         QUOTA_PINNED);

        /* The D-Bus session goes: the Varlink one gets the whole quota. */
        bus_close_session(session);
        assert_int_equal(varlink_principal_used(c, "pinnedBytes"), 0);
        assert_null(varlink_map(c, QUOTA_PINNED, &r));
        json_object_put(r);
        itest_client_free(c);
}

/* A D-Bus session is one of the principal's connections. */
static void test_connections_across_transports(void **state) {
        _cleanup_free_ char *first = NULL, *second = NULL;
        sd_bus_message *reply = NULL;
        ItestClient *c = NULL, *refused = NULL;
        json_object *r;
        char err[128] = "";

        assert_int_equal(itest_client_connect(&c, env.daemon.socket), 0);
        /* The connection of the test before may still be closing: bounded retries, no clock. */
        for (unsigned tries = 0; varlink_principal_used(c, "connections") != 1; tries++) {
                assert_true(tries < 1000);
                usleep(1000);
        }
        first = bus_create_session();
        second = bus_create_session();
        assert_int_equal(varlink_principal_used(c, "connections"), 3);
        assert_int_equal(bus_usage(first, "PrincipalUsage", BROKER_RESOURCE_CONNECTIONS), 3);
        assert_int_equal(bus_usage(first, "Usage", BROKER_RESOURCE_CONNECTIONS), 1);

        /* A fourth, on either transport, is over the quota of 3. */
        assert_int_equal(bus_call(BUS_PATH, BUS_MANAGER_INTERFACE, "CreateSession", &reply, err,
                                  sizeof(err), NULL),
                         -EDQUOT);
        assert_string_equal(err, BROKER_ERROR_QUOTA_EXCEEDED);
        assert_int_equal(itest_client_connect(&refused, env.daemon.socket), 0);
        r = itest_call(refused, "org.iommud.Broker.GetSession", NULL, NULL, 0);
        assert_true(!r || itest_reply_error(r));
        json_object_put(r);
        itest_client_free(refused);

        bus_close_session(second);
        bus_close_session(first);
        assert_int_equal(varlink_principal_used(c, "connections"), 1);
        itest_client_free(c);
}

/* ---- MapBatch ------------------------------------------------------------------------------ */

/* MapBatch of n pages of mem at 0x100000 up; area bad (if < n) reads past the memfd's end. */
static int bus_map_batch(const char *session, uint32_t ioas, int mem, size_t n, size_t bad,
                         char *err, size_t err_size, char *message, size_t message_size) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *m = NULL, *reply = NULL;
        const uint64_t *iovas;
        size_t size = 0;
        int r;

        assert_int_equal(sd_bus_message_new_method_call(env.bus, &m, BUS_NAME, session,
                                                        BUS_SESSION_INTERFACE, "MapBatch"),
                         0);
        assert_true(sd_bus_message_append(m, "u", ioas) >= 0);
        assert_true(sd_bus_message_append(m, "ah", 1, mem) >= 0);
        assert_true(sd_bus_message_open_container(m, 'a', "(utttu)") >= 0);
        for (size_t i = 0; i < n; i++) {
                uint64_t offset = i == bad ? 2 * QUOTA_PINNED : i * 4096;

                assert_true(sd_bus_message_append(m, "(utttu)", UINT32_C(0), offset,
                                                  (uint64_t)4096, (uint64_t)(0x100000 + i * 4096),
                                                  BUS_MAP_FIXED_IOVA | BUS_MAP_READABLE) >= 0);
        }
        assert_true(sd_bus_message_close_container(m) >= 0);
        r = sd_bus_call(env.bus, m, 0, &error, &reply);
        if (r < 0) {
                snprintf(err, err_size, "%s", error.name ?: "");
                snprintf(message, message_size, "%s", error.message ?: "");
        } else {
                assert_true(sd_bus_message_read_array(reply, 't', (const void **)&iovas, &size) >=
                            0);
                assert_int_equal(size, n * sizeof(uint64_t));
                for (size_t i = 0; i < n; i++)
                        assert_int_equal(iovas[i], 0x100000 + i * 4096);
        }
        sd_bus_message_unref(reply);
        sd_bus_message_unref(m);
        sd_bus_error_free(&error);
        return r < 0 ? r : 0;
}

/* All or none over D-Bus too: a failing area and a total over quota leave nothing held. */
static void test_map_batch(void **state) {
        _cleanup_free_ char *session = bus_create_session();
        sd_bus_message *reply = NULL;
        char err[128] = "", message[512] = "";
        int mem = itest_memfd(2 * QUOTA_PINNED);
        uint64_t unmapped;
        uint32_t ioas;

        assert_true(mem >= 0);
        assert_int_equal(bus_call(session, BUS_SESSION_INTERFACE, "CreateAddressSpace", &reply,
                                  NULL, 0, NULL),
                         0);
        assert_true(sd_bus_message_read(reply, "u", &ioas) >= 0);
        reply = sd_bus_message_unref(reply);

        /* The 10th area reads past the memfd: refused, named, and nothing stays mapped. */
        assert_int_equal(bus_map_batch(session, ioas, mem, 12, 9, err, sizeof(err), message,
                                       sizeof(message)),
                         -ERANGE);
        assert_string_equal(err, BROKER_ERROR_INVALID_RANGE);
        assert_non_null(strstr(message, "Area 9: "));
        assert_int_equal(bus_usage(session, "Usage", BROKER_RESOURCE_PINNED_BYTES), 0);

        /* 17 pages are over the 64K quota as a whole: refused before anything is mapped. */
        assert_int_equal(bus_map_batch(session, ioas, mem, 17, SIZE_MAX, err, sizeof(err),
                                       message, sizeof(message)),
                         -EDQUOT);
        assert_string_equal(err, BROKER_ERROR_QUOTA_EXCEEDED);
        assert_int_equal(bus_usage(session, "Usage", BROKER_RESOURCE_PINNED_BYTES), 0);

        /* 16 pages fit exactly; UnmapBatch takes them back in two ranges. */
        assert_int_equal(bus_map_batch(session, ioas, mem, 16, SIZE_MAX, err, sizeof(err),
                                       message, sizeof(message)),
                         0);
        assert_int_equal(bus_usage(session, "Usage", BROKER_RESOURCE_PINNED_BYTES), QUOTA_PINNED);
        assert_int_equal(bus_call(session, BUS_SESSION_INTERFACE, "UnmapBatch", &reply, NULL, 0,
                                  "ua(tt)", ioas, 2, (uint64_t)0x100000, (uint64_t)0x103fff,
                                  (uint64_t)0x104000, (uint64_t)0x10ffff),
                         0);
        assert_true(sd_bus_message_read(reply, "t", &unmapped) >= 0);
        sd_bus_message_unref(reply);
        assert_int_equal(unmapped, QUOTA_PINNED);
        assert_int_equal(bus_usage(session, "Usage", BROKER_RESOURCE_PINNED_BYTES), 0);
        close(mem);
        bus_close_session(session);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_pinned_across_transports),
                cmocka_unit_test(test_connections_across_transports),
                cmocka_unit_test(test_map_batch),
        };

        const char *why = prepare();

        if (why) {
                printf("1..0 # SKIP %s\n", why);
                return 0;
        }
        return cmocka_run_group_tests_name("bus-quota", tests, group_setup, group_teardown);
}
