/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * One question, one answer.  The policy decision for a device and a uid is asked
 * of org.iommud1 (Manager.ExplainDevice), of org.iommud.Manager.ExplainDevice on
 * the socket and of "iommud --explain --as-uid" offline, and the three answers
 * must agree step by step, reason by reason: the same account, the same primary
 * and supplementary groups, the same error for a uid without an account.  The
 * caller asking about itself over D-Bus must hear what its own broker session
 * hears from org.iommud.Broker.ExplainDevice.
 *
 * The accounts: nobody and nogroup as Debian ships them, and a user whose
 * primary group is not its uid and who is a member of one more group.  That
 * user and its groups exist only in this test's mount namespace: copies of
 * /etc/passwd and /etc/group with them added are bind-mounted over the real
 * ones before any daemon starts, so the host's account files are neither
 * changed nor seen changed.  That needs root; without it the test is skipped.
 */

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <pwd.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <json-c/json.h>
#include <systemd/sd-bus.h>

#include "bus-errors.h"
#include "bus-harness.h"
#include "bus.h"
#include "file-util.h"
#include "itest.h"
#include "macros.h"

#define USER_NAME "iommud-parity"         /* primary group of the same name */
#define MEMBER_GROUP "iommud-parity-kvm" /* USER_NAME is a member */
#define NOBODY 65534
#define UNKNOWN_DEVICE "0000:ff:1f.7"

typedef struct Step {
        char step[16];
        char verdict[8];
        char reason[512];
} Step;

/* A decision, or the error that came instead. */
typedef struct Answer {
        char error[128];   /* the error's name ("failed" offline); "" when decided */
        char message[512]; /* the error's sentence (D-Bus, offline) */
        bool allowed;
        Step steps[8];
        size_t n_steps;
} Answer;

static struct {
        char dir[64];
        char topology[128];
        pid_t dbus_pid;
        ItestDaemon daemon;
        sd_bus *bus;
        ItestClient *varlink;
        uid_t user;       /* USER_NAME */
        gid_t primary;    /* its primary group, not equal to its uid */
        gid_t member;     /* MEMBER_GROUP */
        uid_t unknown;    /* no account */
} env;

/* Five devices, each alone in its group: four on vfio-pci, one on a host driver. */
static const char topology[] =
        "{\n"
        "  \"name\": \"parity\",\n"
        "  \"description\": \"four VFIO devices and one on a host driver\",\n"
        "  \"cdev_major\": 511,\n"
        "  \"iommus\": [ { \"name\": \"dmar0\", \"kind\": \"intel\", \"aperture_start\": \"0x0\",\n"
        "      \"aperture_last\": \"0x7fffffffff\", \"page_sizes\": [\"4K\", \"2M\"] } ],\n"
        "  \"groups\": [\n"
        "    { \"id\": 1, \"type\": \"DMA\", \"iommu\": \"dmar0\", \"reserved_regions\": [],\n"
        "      \"devices\": [ { \"name\": \"0000:01:00.0\", \"vendor\": \"0x10ee\",\n"
        "        \"device\": \"0x505c\", \"class\": \"0x120000\", \"driver\": \"vfio-pci\" } ] },\n"
        "    { \"id\": 2, \"type\": \"DMA\", \"iommu\": \"dmar0\", \"reserved_regions\": [],\n"
        "      \"devices\": [ { \"name\": \"0000:02:00.0\", \"vendor\": \"0x10ee\",\n"
        "        \"device\": \"0x505c\", \"class\": \"0x120000\", \"driver\": \"vfio-pci\" } ] },\n"
        "    { \"id\": 3, \"type\": \"DMA\", \"iommu\": \"dmar0\", \"reserved_regions\": [],\n"
        "      \"devices\": [ { \"name\": \"0000:03:00.0\", \"vendor\": \"0x10ee\",\n"
        "        \"device\": \"0x505c\", \"class\": \"0x120000\", \"driver\": \"vfio-pci\" } ] },\n"
        "    { \"id\": 4, \"type\": \"DMA\", \"iommu\": \"dmar0\", \"reserved_regions\": [],\n"
        "      \"devices\": [ { \"name\": \"0000:04:00.0\", \"vendor\": \"0x10ee\",\n"
        "        \"device\": \"0x505c\", \"class\": \"0x120000\", \"driver\": \"vfio-pci\" } ] },\n"
        "    { \"id\": 5, \"type\": \"DMA\", \"iommu\": \"dmar0\", \"reserved_regions\": [],\n"
        "      \"devices\": [ { \"name\": \"0000:05:00.0\", \"vendor\": \"0x8086\",\n"
        "        \"device\": \"0x1528\", \"class\": \"0x020000\", \"driver\": \"i40e\" } ] }\n"
        "  ]\n"
        "}\n";

/* Grants to a primary group, to a supplementary group, to nogroup, to a user by name. */
static const char policy[] =
        "{\n"
        "  \"rules\": { \"all\": { \"action\": \"allow\", \"match\": \"*\" } },\n"
        "  \"grants\": {\n"
        "    \"root\": { \"principals\": \"user:root\", \"devices\": \"*\" },\n"
        "    \"primary\": { \"principals\": \"group:" USER_NAME "\", \"devices\": \"0000:01:00.0\" },\n"
        "    \"member\": { \"principals\": \"group:" MEMBER_GROUP "\",\n"
        "                  \"devices\": \"0000:02:00.0\" },\n"
        "    \"nogroup\": { \"principals\": \"group:nogroup\", \"devices\": \"0000:03:00.0\" },\n"
        "    \"nobody\": { \"principals\": \"user:nobody\", \"devices\": \"0000:04:00.0\" }\n"
        "  }\n"
        "}\n";

static const char *const devices[] = {
        "0000:01:00.0", "0000:02:00.0", "0000:03:00.0", "0000:04:00.0", "0000:05:00.0",
        UNKNOWN_DEVICE,
};

/* ---- the private account database --------------------------------------------------------- */

static bool id_free(unsigned id) {
        return !getpwuid((uid_t)id) && !getgrgid((gid_t)id);
}

/* Four consecutive ids no user and no group has. */
static int pick_ids(void) {
        for (unsigned id = 47000; id < 60000; id += 4)
                if (id_free(id) && id_free(id + 1) && id_free(id + 2) && id_free(id + 3)) {
                        env.user = id;
                        env.primary = id + 1;
                        env.member = id + 2;
                        env.unknown = id + 3;
                        return 0;
                }
        return -ENOSPC;
}

/* Writes file's text and lines to DIR/name and bind-mounts that over file. */
static int overlay_account_file(const char *file, const char *name, const char *lines) {
        _cleanup_free_ char *text = NULL, *joined = NULL;
        char path[128];
        size_t len;
        int r;

        r = file_util_read_at(AT_FDCWD, file, 16u << 20, &text, &len);
        if (r < 0)
                return r;
        if (asprintf(&joined, "%s%s%s", text, len > 0 && text[len - 1] != '\n' ? "\n" : "",
                     lines) < 0)
                return -ENOMEM;
        snprintf(path, sizeof(path), "%s/%s", env.dir, name);
        r = itest_write_file(path, joined);
        if (r < 0)
                return r;
        return mount(path, file, NULL, MS_BIND, NULL) < 0 ? -errno : 0;
}

static int private_accounts(void) {
        char passwd[256], group[256];
        struct passwd *pw;
        int r;

        r = pick_ids();
        if (r < 0)
                return r;
        snprintf(passwd, sizeof(passwd), USER_NAME ":x:%u:%u::/nonexistent:/usr/sbin/nologin\n",
                 (unsigned)env.user, (unsigned)env.primary);
        snprintf(group, sizeof(group), USER_NAME ":x:%u:\n" MEMBER_GROUP ":x:%u:" USER_NAME "\n",
                 (unsigned)env.primary, (unsigned)env.member);
        if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
                return -errno;
        r = overlay_account_file("/etc/passwd", "passwd", passwd);
        if (r >= 0)
                r = overlay_account_file("/etc/group", "group", group);
        if (r < 0)
                return r;
        /* A caching name service (nscd) would not see the copies: then there is nothing to test. */
        pw = getpwnam(USER_NAME);
        return pw && pw->pw_uid == env.user ? 0 : -ENXIO;
}

/* ---- setup ----------------------------------------------------------------------------------- */

/*
 * What must hold before the suite runs: root, and the private account database.  Returns NULL
 * to run, a reason to skip the whole suite (a TAP plan of zero with a SKIP directive: cmocka's
 * skip() prints "not ok # SKIP", a failure to meson), or exits on a failure.
 */
static const char *prepare(void) {
        int r;

        if (geteuid() != 0)
                return "needs root for a private account database";
        snprintf(env.dir, sizeof(env.dir), "/tmp/iommud-parity-XXXXXX");
        if (!mkdtemp(env.dir) || chmod(env.dir, 0755) < 0) {
                printf("Bail out! scratch directory %s: %m\n", env.dir);
                exit(EXIT_FAILURE);
        }
        r = private_accounts();
        if (r == -ENXIO)
                return "a caching name service (nscd) does not see the private account database";
        if (r < 0) {
                printf("Bail out! no private account database: %s\n", strerror(-r));
                exit(EXIT_FAILURE);
        }
        return NULL;
}

static int group_setup(void **state) {
        int r;

        /* As root (prepare() checked), dbus-daemon must come up: else a failure. */
        r = bus_harness_start_dbus(env.dir, &env.dbus_pid, &env.bus);
        if (r < 0) {
                print_message("Bail out! dbus-daemon did not come up: %s\n", strerror(-r));
                return -1;
        }

        snprintf(env.topology, sizeof(env.topology), "%s/topology.json", env.dir);
        assert_int_equal(itest_write_file(env.topology, topology), 0);
        assert_int_equal(itest_daemon_start(&env.daemon, env.topology, policy), 0);
        assert_int_equal(bus_harness_wait_for_name(env.bus, BUS_NAME, env.daemon.pid), 0);
        assert_int_equal(itest_client_connect(&env.varlink, env.daemon.socket), 0);
        *state = NULL;
        return 0;
}

static int group_teardown(void **state) {
        itest_client_free(env.varlink);
        if (env.daemon.pid > 0)
                assert_int_equal(itest_daemon_stop(&env.daemon), 0);
        env.bus = sd_bus_flush_close_unref(env.bus);
        bus_harness_reap(&env.dbus_pid);
        /* The copies stay mounted over /etc/passwd and /etc/group until this process, and
         * with it its mount namespace, goes; the files under them can go now. */
        bus_harness_remove_dir(env.dir);
        return 0;
}

/* ---- asking ---------------------------------------------------------------------------------- */

static void add_step(Answer *a, const char *step, const char *verdict, const char *reason) {
        Step *s;

        assert_true(a->n_steps < ELEMENTSOF(a->steps));
        s = &a->steps[a->n_steps++];
        snprintf(s->step, sizeof(s->step), "%s", step);
        snprintf(s->verdict, sizeof(s->verdict), "%s", verdict);
        snprintf(s->reason, sizeof(s->reason), "%s", reason);
}

static void ask_dbus(const char *device, uint32_t uid, Answer *ret) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        const char *step, *verdict, *reason;
        int allowed, r;

        memset(ret, 0, sizeof(*ret));
        r = sd_bus_call_method(env.bus, BUS_NAME, BUS_PATH, BUS_MANAGER_INTERFACE, "ExplainDevice",
                               &error, &reply, "su", device, uid);
        if (r < 0) {
                snprintf(ret->error, sizeof(ret->error), "%s", error.name);
                snprintf(ret->message, sizeof(ret->message), "%s", error.message ?: "");
                sd_bus_error_free(&error);
                return;
        }
        assert_true(sd_bus_message_read(reply, "b", &allowed) >= 0);
        ret->allowed = allowed;
        assert_true(sd_bus_message_enter_container(reply, 'a', "(sss)") > 0);
        while ((r = sd_bus_message_read(reply, "(sss)", &step, &verdict, &reason)) > 0)
                add_step(ret, step, verdict, reason);
        assert_int_equal(r, 0);
        sd_bus_message_unref(reply);
}

static void answer_from_varlink(json_object *reply, Answer *ret) {
        json_object *params = itest_reply_params(reply), *steps, *allowed;
        const char *error = itest_reply_error(reply);

        memset(ret, 0, sizeof(*ret));
        if (error) {
                /* The parameters say what the error is about: {device}, {kind, id}, ... */
                snprintf(ret->error, sizeof(ret->error), "%s", error);
                snprintf(ret->message, sizeof(ret->message), "%s",
                         params ? json_object_to_json_string(params) : "");
                return;
        }
        assert_true(json_object_object_get_ex(params, "allowed", &allowed));
        ret->allowed = json_object_get_boolean(allowed);
        assert_true(json_object_object_get_ex(params, "steps", &steps));
        for (size_t i = 0; i < json_object_array_length(steps); i++) {
                json_object *s = json_object_array_get_idx(steps, i);

                add_step(ret, itest_get_string(s, "step"), itest_get_string(s, "verdict"),
                         itest_get_string(s, "reason"));
        }
}

static void ask_varlink(const char *device, uint32_t uid, Answer *ret) {
        json_object *reply = itest_call(env.varlink, "org.iommud.Manager.ExplainDevice",
                                        itest_params("device", json_object_new_string(device),
                                                     "uid", json_object_new_int64(uid), NULL),
                                        NULL, 0);

        assert_non_null(reply);
        answer_from_varlink(reply, ret);
        json_object_put(reply);
}

/* Parses "  ✓ match      reason" lines; the header and the pool line are skipped. */
static void parse_offline(const char *out, Answer *a) {
        static const struct {
                const char *mark, *verdict;
        } marks[] = { { "  \u2713 ", "pass" }, { "  \u2717 ", "fail" }, { "  - ", "skip" } };

        for (const char *line = out; line && *line;) {
                const char *eol = strchr(line, '\n');
                size_t n = eol ? (size_t)(eol - line) : strlen(line);
                char buf[768], step[16];
                int at = 0;

                snprintf(buf, sizeof(buf), "%.*s", (int)n, line);
                for (size_t k = 0; k < ELEMENTSOF(marks); k++)
                        if (strneq(buf, marks[k].mark, strlen(marks[k].mark)) &&
                            sscanf(buf + strlen(marks[k].mark), "%15s %n", step, &at) == 1 &&
                            at > 0)
                                add_step(a, step, marks[k].verdict,
                                         buf + strlen(marks[k].mark) + at);
                line = eol ? eol + 1 : NULL;
        }
}

/* iommud --explain DEVICE [--as-uid UID] on the daemon's topology and policy files. */
static void ask_offline(const char *device, uint32_t uid, Answer *ret) {
        char out[128], err[128], empty[300], uid_text[16];
        _cleanup_free_ char *out_text = NULL, *err_text = NULL;
        int status = 0;
        pid_t pid;

        memset(ret, 0, sizeof(*ret));
        snprintf(out, sizeof(out), "%s/explain.out", env.dir);
        snprintf(err, sizeof(err), "%s/explain.err", env.dir);
        snprintf(empty, sizeof(empty), "%s/empty.d", env.daemon.dir);
        snprintf(uid_text, sizeof(uid_text), "%" PRIu32, uid);
        pid = itest_fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                const char *binary = getenv("IOMMUD_BINARY");
                int o = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
                int e = open(err, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

                if (!binary || o < 0 || e < 0 || dup2(o, STDOUT_FILENO) < 0 ||
                    dup2(e, STDERR_FILENO) < 0)
                        _exit(127);
                /* uid 4294967295: nobody in particular, the device's own eligibility. */
                execl(binary, binary, "--sim", env.topology, "--policy", env.daemon.policy,
                      "--policy-dir", empty, "--vendor-policy-dir", empty, "--explain", device,
                      uid == UINT32_MAX ? NULL : "--as-uid", uid_text, NULL);
                _exit(127);
        }
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status));
        assert_true(WEXITSTATUS(status) <= 1);
        assert_int_equal(file_util_read_at(AT_FDCWD, out, 1u << 20, &out_text, NULL), 0);
        assert_int_equal(file_util_read_at(AT_FDCWD, err, 1u << 20, &err_text, NULL), 0);
        parse_offline(out_text, ret);
        if (ret->n_steps == 0) {
                /* No decision: an error, which says why on stderr. */
                assert_int_equal(WEXITSTATUS(status), 1);
                snprintf(ret->error, sizeof(ret->error), "failed");
                snprintf(ret->message, sizeof(ret->message), "%s", err_text);
                return;
        }
        ret->allowed = WEXITSTATUS(status) == 0;
}

/* ---- comparing ------------------------------------------------------------------------------- */

/* What an error is about: "device", "user" or "" (something else). */
static const char *error_subject(const Answer *a, const char *device, uint32_t uid) {
        char uid_text[32];

        if (streq(a->error, "org.iommud.Manager.NoSuchDevice"))
                return "device";
        if (streq(a->error, "org.iommud.Manager.NoSuchUser"))
                return "user";
        snprintf(uid_text, sizeof(uid_text), "uid %" PRIu32, uid);
        if (strstr(a->message, uid_text))
                return "user";
        if (strstr(a->message, device))
                return "device";
        return "";
}

static void describe(const Answer *a, char *buf, size_t size) {
        size_t n;

        if (a->error[0]) {
                snprintf(buf, size, "error %s: %s", a->error, a->message);
                return;
        }
        n = (size_t)snprintf(buf, size, "%s", a->allowed ? "allowed" : "refused");
        for (size_t i = 0; i < a->n_steps && n < size; i++)
                n += (size_t)snprintf(buf + n, size - n, "\n    %s %s: %s", a->steps[i].step,
                                      a->steps[i].verdict, a->steps[i].reason);
}

/*
 * a and b must be the same answer.  offline: b comes from iommud --explain, which has
 * no sessions to ask, so its "exclusive" step is skipped rather than passed.
 */
static bool same_answer(const Answer *a, const Answer *b, const char *device, uint32_t uid,
                        bool offline) {
        if (a->error[0] || b->error[0])
                return a->error[0] && b->error[0] &&
                       streq(error_subject(a, device, uid), error_subject(b, device, uid)) &&
                       error_subject(a, device, uid)[0];
        if (a->allowed != b->allowed || a->n_steps != b->n_steps)
                return false;
        for (size_t i = 0; i < a->n_steps; i++) {
                const Step *x = &a->steps[i], *y = &b->steps[i];

                if (!streq(x->step, y->step))
                        return false;
                if (offline && streq(x->step, "exclusive"))
                        continue;
                if (!streq(x->verdict, y->verdict) || !streq(x->reason, y->reason))
                        return false;
        }
        return true;
}

/* Prints text as TAP comments, one "# " line per line. */
static void note(const char *text) {
        for (const char *line = text; line;) {
                const char *eol = strchr(line, '\n');

                print_message("# %.*s\n", (int)(eol ? eol - line : (long)strlen(line)), line);
                line = eol ? eol + 1 : NULL;
        }
}

static unsigned expect_same(const char *what, const Answer *a, const char *a_name,
                            const Answer *b, const char *b_name, const char *device, uint32_t uid,
                            bool offline) {
        char da[2048], db[2048], text[4400];

        if (same_answer(a, b, device, uid, offline))
                return 0;
        describe(a, da, sizeof(da));
        describe(b, db, sizeof(db));
        snprintf(text, sizeof(text), "%s: %s and %s disagree\n  %s: %s\n  %s: %s", what, a_name,
                 b_name, a_name, da, b_name, db);
        note(text);
        return 1;
}

static const char *verdict_of(const Answer *a, const char *step) {
        for (size_t i = 0; i < a->n_steps; i++)
                if (streq(a->steps[i].step, step))
                        return a->steps[i].verdict;
        return "";
}

/* ---- tests ----------------------------------------------------------------------------------- */

static void test_explain_for_uid_agrees(void **state) {
        uint32_t uids[] = { 0, NOBODY, 0, UINT32_MAX };
        unsigned disagreements = 0;

        uids[0] = env.user;
        uids[2] = env.unknown;
        for (size_t u = 0; u < ELEMENTSOF(uids); u++)
                for (size_t k = 0; k < ELEMENTSOF(devices); k++) {
                        Answer bus, varlink, offline;
                        char what[96];

                        snprintf(what, sizeof(what), "%s for uid %" PRIu32, devices[k], uids[u]);
                        ask_dbus(devices[k], uids[u], &bus);
                        ask_varlink(devices[k], uids[u], &varlink);
                        ask_offline(devices[k], uids[u], &offline);
                        disagreements += expect_same(what, &bus, "org.iommud1", &varlink,
                                                     "org.iommud.Manager", devices[k], uids[u],
                                                     false);
                        disagreements += expect_same(what, &bus, "org.iommud1", &offline,
                                                     "iommud --explain", devices[k], uids[u],
                                                     true);
                }
        assert_int_equal(disagreements, 0);
}

/* What the three agree on is also right: group grants count, no account is an error. */
static void test_explain_for_uid_is_right(void **state) {
        Answer a;

        /* The primary group and the supplementary group each give the user a device. */
        ask_varlink("0000:01:00.0", env.user, &a);
        assert_string_equal(a.error, "");
        assert_true(a.allowed);
        ask_varlink("0000:02:00.0", env.user, &a);
        assert_true(a.allowed);
        ask_varlink("0000:03:00.0", env.user, &a);
        assert_false(a.allowed);
        assert_string_equal(verdict_of(&a, "principal"), "fail");

        /* nobody: through nogroup and by name, nothing else. */
        ask_varlink("0000:03:00.0", NOBODY, &a);
        assert_true(a.allowed);
        ask_varlink("0000:04:00.0", NOBODY, &a);
        assert_true(a.allowed);
        ask_varlink("0000:01:00.0", NOBODY, &a);
        assert_false(a.allowed);

        /* No account: no guess at its groups. */
        ask_varlink("0000:01:00.0", env.unknown, &a);
        assert_string_equal(a.error, "org.iommud.Manager.NoSuchUser");
        ask_dbus("0000:01:00.0", env.unknown, &a);
        assert_string_equal(a.error, BROKER_ERROR_NO_SUCH_OBJECT);

        /* uid 4294967295: the device alone. */
        ask_varlink("0000:01:00.0", UINT32_MAX, &a);
        assert_true(a.allowed);
        assert_string_equal(verdict_of(&a, "principal"), "skip");
        ask_varlink("0000:05:00.0", UINT32_MAX, &a);
        assert_false(a.allowed);
        assert_string_equal(verdict_of(&a, "driver"), "fail");
}

/* The caller about itself: org.iommud1 as its own broker session decides. */
static void test_explain_self_agrees(void **state) {
        unsigned disagreements = 0;

        for (size_t k = 0; k < ELEMENTSOF(devices); k++) {
                ItestClient *c = NULL;
                Answer bus, broker;
                json_object *reply;
                char what[96];

                /* A fresh connection: a fresh session, nothing held, nothing used. */
                assert_int_equal(itest_client_connect(&c, env.daemon.socket), 0);
                reply = itest_call(c, "org.iommud.Broker.ExplainDevice",
                                   itest_params("device", json_object_new_string(devices[k]),
                                                NULL),
                                   NULL, 0);
                assert_non_null(reply);
                answer_from_varlink(reply, &broker);
                json_object_put(reply);
                itest_client_free(c);

                ask_dbus(devices[k], (uint32_t)getuid(), &bus);
                snprintf(what, sizeof(what), "%s for the caller", devices[k]);
                disagreements += expect_same(what, &bus, "org.iommud1",
                                             &broker, "org.iommud.Broker", devices[k],
                                             (uint32_t)getuid(), false);
        }
        assert_int_equal(disagreements, 0);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_explain_for_uid_agrees),
                cmocka_unit_test(test_explain_for_uid_is_right),
                cmocka_unit_test(test_explain_self_agrees),
        };

        const char *why = prepare();

        if (why) {
                printf("1..0 # SKIP %s\n", why);
                bus_harness_remove_dir(env.dir);
                return 0;
        }
        return cmocka_run_group_tests_name("explain-parity", tests, group_setup, group_teardown);
}
