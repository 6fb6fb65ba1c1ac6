/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * The audit trail of the real iommud: a refused attach, a granted one, a map past a quota, a
 * refused Delegate and a policy reload each reach Monitor() as one event with the principal, device, step
 * and reason, and the log once with the same fields and the message ID iommud(8) names.
 */

#include <errno.h>
#include <inttypes.h>
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

#define REFUSED_ID "2f0d5b06abc04de29df7a90a32905e3f"
#define DEVICE_GRANTED_ID "e80aec0d94404f16a65a6503e99fde53"
#define RELOADED_ID "14302554c83d43f9ae51196bc4a8c22d"

static const char monitor_call[] = "{\"method\":\"org.iommud.Manager.Monitor\",\"more\":true}";

/* The next Monitor() event of type, skipping others; the message stays owned by *keep. */
static json_object *next_event(ItestClient *mon, const char *type, json_object **keep) {
        json_object *ev;

        for (;;) {
                const char *t;

                json_object_put(*keep);
                *keep = NULL;
                assert_int_equal(itest_client_recv(mon, keep), 1);
                assert_true(json_object_object_get_ex(itest_reply_params(*keep), "event", &ev));
                t = itest_get_string(ev, "type");
                if (t && strcmp(t, type) == 0)
                        return ev;
        }
}

static const char *attach(ItestClient *c, const char *device, json_object **ret) {
        *ret = itest_call(c, "org.iommud.Broker.AttachDevice",
                          itest_params("device", json_object_new_string(device), NULL), NULL, 0);
        assert_non_null(*ret);
        return itest_reply_error(*ret);
}

/* Lines of the log that contain every one of the NULL-terminated strings. */
static size_t count_lines(const char *log, ...) {
        char *copy = strdup(log), *save = NULL;
        size_t n = 0;

        assert_non_null(copy);
        for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
                bool all = true;
                const char *s;
                va_list ap;

                va_start(ap, log);
                while ((s = va_arg(ap, const char *)))
                        all = all && strstr(line, s);
                va_end(ap);
                n += all;
        }
        free(copy);
        return n;
}

static char *read_log(const char *path) {
        FILE *f = fopen(path, "re");
        char *text = calloc(1, 1 << 20);
        size_t n;

        assert_non_null(f);
        assert_non_null(text);
        n = fread(text, 1, (1 << 20) - 1, f);
        text[n] = '\0';
        fclose(f);
        return text;
}

/* Maps 128 KiB of a memfd into a new address space; the error name, or NULL. */
static const char *map_128k(ItestClient *c) {
        static char name[128];
        json_object *r, *p;
        int memfd;

        r = itest_call(c, "org.iommud.Broker.CreateAddressSpace", NULL, NULL, 0);
        assert_null(itest_reply_error(r));
        memfd = itest_memfd(128 * 1024);
        assert_true(memfd >= 0);
        p = itest_params("ioasId", json_object_new_int64((int64_t)itest_get_u64(
                                           itest_reply_params(r), "ioasId")),
                         "memoryFd", json_object_new_int(0), "offset", json_object_new_int(0),
                         "length", json_object_new_int(128 * 1024), "readable",
                         json_object_new_boolean(true), "writeable",
                         json_object_new_boolean(true), NULL);
        json_object_put(r);
        r = itest_call(c, "org.iommud.Broker.Map", p, &memfd, 1);
        snprintf(name, sizeof(name), "%s", itest_reply_error(r) ?: "");
        json_object_put(r);
        close(memfd);
        return name[0] ? name : NULL;
}

static void check_refused_event(json_object *ev, const char *device, const char *step) {
        assert_int_equal(itest_get_u64(ev, "uid"), getuid());
        assert_int_equal(itest_get_u64(ev, "pid"), getpid());
        assert_true(itest_get_u64(ev, "session") > 0);
        assert_string_equal(itest_get_string(ev, "step"), step);
        if (device)
                assert_string_equal(itest_get_string(ev, "device"), device);
        assert_non_null(itest_get_string(ev, "reason"));
}

static void test_audit_trail(void **state) {
        char log_path[512], uid_field[64], *policy, *log;
        ItestClient *mon = NULL, *c = NULL;
        json_object *keep = NULL, *r, *ev;
        ItestDaemon d;

        snprintf(log_path, sizeof(log_path), "%s/audit-%d.log",
                 getenv("IOMMUD_ITEST_SCRATCH") ?: "/tmp", (int)getpid());
        (void)unlink(log_path);
        setenv("IOMMUD_ITEST_STDERR", log_path, 1);
        setenv("IOMMUD_ITEST_LOG_LEVEL", "info", 1);
        policy = itest_policy_for_self("\"open-on-behalf\": true, "
                                       "\"quotas\": { \"pinned-memory\": \"64K\" }");
        assert_int_equal(itest_daemon_start(&d, "workstation", policy), 0);
        assert_int_equal(itest_client_connect(&mon, d.socket), 0);
        assert_int_equal(itest_client_send_raw(mon, monitor_call, sizeof(monitor_call), NULL, 0), 0);
        assert_int_equal(itest_client_connect(&c, d.socket), 0);

        /* Refused by the group step: 0000:03:00.1 sits on ixgbe. */
        assert_string_equal(attach(c, "0000:03:00.0", &r), "org.iommud.Broker.PolicyDenied");
        json_object_put(r);
        ev = next_event(mon, "access-refused", &keep);
        check_refused_event(ev, "0000:03:00.0", "group");
        assert_non_null(strstr(itest_get_string(ev, "reason"), "0000:03:00.1"));

        /* Granted. */
        assert_null(attach(c, "0000:01:00.0", &r));
        json_object_put(r);
        ev = next_event(mon, "device-granted", &keep);
        assert_string_equal(itest_get_string(ev, "device"), "0000:01:00.0");
        assert_int_equal(itest_get_u64(ev, "uid"), getuid());

        /* A map past the pinned-memory quota. */
        assert_string_equal(map_128k(c), "org.iommud.Broker.QuotaExceeded");
        ev = next_event(mon, "access-refused", &keep);
        check_refused_event(ev, NULL, "quota");
        assert_string_equal(itest_get_string(ev, "action"), "map");

        /* No grant gives this principal an iommufd of its own. */
        r = itest_call(c, "org.iommud.Broker.Delegate", NULL, NULL, 0);
        assert_string_equal(itest_reply_error(r), "org.iommud.Broker.PolicyDenied");
        json_object_put(r);
        ev = next_event(mon, "access-refused", &keep);
        check_refused_event(ev, NULL, "delegation");
        assert_null(itest_get_string(ev, "device"));

        json_object_put(itest_call(c, "org.iommud.Manager.ReloadPolicy", NULL, NULL, 0));
        ev = next_event(mon, "policy-reloaded", &keep);
        assert_int_equal(itest_get_u64(ev, "generation"), 2);
        json_object_put(keep);

        itest_client_free(c);
        itest_client_free(mon);
        assert_int_equal(itest_daemon_stop(&d), 0);
        unsetenv("IOMMUD_ITEST_STDERR");

        /* Each decision once in the log, with its fields. */
        log = read_log(log_path);
        snprintf(uid_field, sizeof(uid_field), "IOMMUD_UID=%u", (unsigned)getuid());
        assert_int_equal(count_lines(log, "MESSAGE_ID=" REFUSED_ID, uid_field, "IOMMUD_SESSION=",
                                     "IOMMUD_PID=", "IOMMUD_DEVICE=0000:03:00.0",
                                     "IOMMUD_STEP=group", "IOMMUD_ACTION=attach",
                                     "0000:03:00.1 is bound to host driver ixgbe", NULL),
                         1);
        assert_int_equal(count_lines(log, "MESSAGE_ID=" DEVICE_GRANTED_ID, uid_field,
                                     "IOMMUD_DEVICE=0000:01:00.0", NULL),
                         1);
        assert_int_equal(count_lines(log, "MESSAGE_ID=" REFUSED_ID, "IOMMUD_STEP=delegation",
                                     "IOMMUD_ACTION=delegate", NULL),
                         1);
        assert_int_equal(count_lines(log, "MESSAGE_ID=" REFUSED_ID, "IOMMUD_STEP=quota",
                                     "IOMMUD_ACTION=map", NULL),
                         1);
        assert_int_equal(count_lines(log, "MESSAGE_ID=" RELOADED_ID,
                                     "IOMMUD_POLICY_GENERATION=2", NULL),
                         1);
        free(log);
        free(policy);
        (void)unlink(log_path);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_audit_trail),
        };

        return cmocka_run_group_tests_name("audit", tests, NULL, NULL);
}
