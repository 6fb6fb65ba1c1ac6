/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Principals that cannot be forged, on the socket.  A device is granted only to
 * "unit:machine-qemu*.scope".  Clients run as nobody in real cgroups of the
 * machine's cgroup2 tree (see itest-cgroup.h): in a scope of that name that the
 * user made in its own service manager, in a service delegated to it, in a
 * subtree delegated by root, and, for contrast, in a machine scope as
 * systemd-machined makes them.  Only the last is that unit; the others are
 * plain uid 65534, are refused the device, and hear why in the decision.
 * Without root or a writable cgroup2 mount the suite is skipped, saying which.
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
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "itest-cgroup.h"
#include "itest.h"

#define NOBODY 65534
#define DEV "0000:01:00.0"
#define DEV_GROUP "0000:02:00.0" /* granted to a supplementary group */
#define GROUP 4242
#define STR_(x) #x
#define STR(x) STR_(x)
#define USER_MANAGER "user.slice/user-65534.slice/user@65534.service"

static const char topology[] =
        "{\n"
        "  \"name\": \"principals\",\n"
        "  \"description\": \"one VFIO device\",\n"
        "  \"cdev_major\": 511,\n"
        "  \"iommus\": [ { \"name\": \"dmar0\", \"kind\": \"intel\", \"aperture_start\": \"0x0\",\n"
        "      \"aperture_last\": \"0x7fffffffff\", \"page_sizes\": [\"4K\", \"2M\"] } ],\n"
        "  \"groups\": [\n"
        "    { \"id\": 1, \"type\": \"DMA\", \"iommu\": \"dmar0\", \"reserved_regions\": [],\n"
        "      \"devices\": [ { \"name\": \"" DEV "\", \"vendor\": \"0x10ee\",\n"
        "        \"device\": \"0x505c\", \"class\": \"0x120000\", \"driver\": \"vfio-pci\" } ] },\n"
        "    { \"id\": 2, \"type\": \"DMA\", \"iommu\": \"dmar0\", \"reserved_regions\": [],\n"
        "      \"devices\": [ { \"name\": \"" DEV_GROUP "\", \"vendor\": \"0x10ee\",\n"
        "        \"device\": \"0x505c\", \"class\": \"0x120000\", \"driver\": \"vfio-pci\" } ] }\n"
        "  ]\n"
        "}\n";

static const char policy[] =
        "{\n"
        "  \"limits\": { \"max-connections-per-user\": 64 },\n"
        "  \"rules\": { \"all\": { \"action\": \"allow\", \"match\": \"*\" } },\n"
        "  \"grants\": {\n"
        "    \"vms\": { \"principals\": \"unit:machine-qemu*.scope\", \"devices\": \"" DEV "\" },\n"
        "    \"group\": { \"principals\": \"group:" STR(GROUP) "\", \"devices\": \""
        DEV_GROUP "\" }\n"
        "  }\n"
        "}\n";

static struct {
        ItestCgroups cg;
        char dir[64];
        ItestDaemon daemon;
        char cdev[512];
} env;

/* What the client saw, one "key=value" line each. */
typedef struct Outcome {
        char unit[128];   /* GetSession's principal.unit; "" when none */
        bool allowed;     /* ExplainDevice */
        char reason[512]; /* ... its principal step */
        char attach[128]; /* AttachDevice: "ok" or the error */
} Outcome;

static int setup(void **state) {
        char path[128];
        ItestClient *c;
        json_object *r, *devs;

        snprintf(env.dir, sizeof(env.dir), "/tmp/iommud-principals-XXXXXX");
        assert_non_null(mkdtemp(env.dir));
        snprintf(path, sizeof(path), "%s/topology.json", env.dir);
        assert_int_equal(itest_write_file(path, topology), 0);
        assert_int_equal(itest_daemon_start(&env.daemon, path, policy), 0);

        assert_int_equal(itest_client_connect(&c, env.daemon.socket), 0);
        r = itest_call(c, "org.iommud.Broker.GetTopology", NULL, NULL, 0);
        assert_null(itest_reply_error(r));
        assert_true(json_object_object_get_ex(itest_reply_params(r), "devices", &devs));
        for (size_t i = 0; i < json_object_array_length(devs); i++) {
                json_object *d = json_object_array_get_idx(devs, i);

                if (strcmp(itest_get_string(d, "name"), DEV) == 0)
                        snprintf(env.cdev, sizeof(env.cdev), "%s/vfio/devices/%s",
                                 env.daemon.dev_root, itest_get_string(d, "cdev"));
        }
        assert_true(env.cdev[0]);
        json_object_put(r);
        itest_client_free(c);
        return 0;
}

static int teardown(void **state) {
        char cmd[128];

        if (env.daemon.pid > 0) {
                /* A test that failed while it held the daemon stopped must not hang here. */
                (void)kill(env.daemon.pid, SIGCONT);
                assert_int_equal(itest_daemon_stop(&env.daemon), 0);
        }
        itest_cgroups_cleanup(&env.cg);
        if (env.dir[0]) {
                snprintf(cmd, sizeof(cmd), "rm -rf '%s'", env.dir);
                assert_int_equal(system(cmd), 0);
        }
        return 0;
}

/* The principal step's reason in an ExplainDevice reply. */
static const char *principal_reason(json_object *params) {
        json_object *steps;

        if (!json_object_object_get_ex(params, "steps", &steps))
                return "";
        for (size_t i = 0; i < json_object_array_length(steps); i++) {
                json_object *s = json_object_array_get_idx(steps, i);
                const char *step = itest_get_string(s, "step");

                if (step && strcmp(step, "principal") == 0)
                        return itest_get_string(s, "reason") ?: "";
        }
        return "";
}

/* In the child, as nobody in its cgroup: who am I, may I, and try. */
static int client(void *userdata, char *report, size_t size) {
        int fd = *(int *)userdata;
        json_object *r, *principal, *unit, *allowed;
        const char *error;
        ItestClient *c;
        size_t n;

        if (itest_client_connect(&c, env.daemon.socket) < 0)
                return 1;
        r = itest_call(c, "org.iommud.Broker.GetSession", NULL, NULL, 0);
        if (!r || itest_reply_error(r) ||
            !json_object_object_get_ex(itest_reply_params(r), "principal", &principal))
                return 2;
        n = (size_t)snprintf(report, size, "unit=%s\n",
                             json_object_object_get_ex(principal, "unit", &unit)
                                     ? json_object_get_string(unit)
                                     : "");
        json_object_put(r);

        r = itest_call(c, "org.iommud.Broker.ExplainDevice",
                       itest_params("device", json_object_new_string(DEV), NULL), NULL, 0);
        if (!r || itest_reply_error(r) ||
            !json_object_object_get_ex(itest_reply_params(r), "allowed", &allowed))
                return 3;
        n += (size_t)snprintf(report + n, size - n, "allowed=%d\nreason=%s\n",
                              json_object_get_boolean(allowed),
                              principal_reason(itest_reply_params(r)));
        json_object_put(r);

        r = itest_call(c, "org.iommud.Broker.AttachDevice",
                       itest_params("fd", json_object_new_int(0), NULL), &fd, 1);
        if (!r)
                return 4;
        error = itest_reply_error(r);
        snprintf(report + n, size - n, "attach=%s\n", error ?: "ok");
        json_object_put(r);
        itest_client_free(c);
        return 0;
}

static void field(const char *report, const char *key, char *buf, size_t size) {
        char k[32];
        const char *p;

        snprintf(k, sizeof(k), "%s=", key);
        p = strstr(report, k);
        assert_non_null(p);
        p += strlen(k);
        snprintf(buf, size, "%.*s", (int)strcspn(p, "\n"), p);
}

/* Runs the client as nobody in rel (then in rel/user_rel it makes itself). */
static void run_client(const char *rel, const char *user_rel, Outcome *ret) {
        char report[2048], allowed[8];
        int fd = open(env.cdev, O_RDWR | O_CLOEXEC), status;

        assert_true(fd >= 0);
        status = itest_cgroup_run(&env.cg, rel, user_rel, NOBODY, NOBODY, client, &fd, report,
                                  sizeof(report));
        close(fd);
        print_message("# in %s%s%s:\n", rel, user_rel ? "/" : "", user_rel ?: "");
        for (const char *l = report; *l; l += strcspn(l, "\n") + (l[strcspn(l, "\n")] != 0))
                print_message("#   %.*s\n", (int)strcspn(l, "\n"), l);
        assert_int_equal(status, 0);
        field(report, "unit", ret->unit, sizeof(ret->unit));
        field(report, "allowed", allowed, sizeof(allowed));
        ret->allowed = strcmp(allowed, "1") == 0;
        field(report, "reason", ret->reason, sizeof(ret->reason));
        field(report, "attach", ret->attach, sizeof(ret->attach));
}

static void expect_refused(const Outcome *o, const char *why) {
        assert_string_equal(o->unit, "");
        assert_false(o->allowed);
        assert_non_null(strstr(o->reason, "no unit: machine-qemu-evil.scope"));
        assert_non_null(strstr(o->reason, why));
        assert_string_equal(o->attach, "org.iommud.Broker.PolicyDenied");
}

/* The attack as observed: a scope of the granted name in the user's own manager. */
static void test_user_manager_scope(void **state) {
        Outcome o;

        /* As systemd hands user@UID.service to the user: chowned and marked delegated. */
        assert_int_equal(itest_cgroup_make(&env.cg, USER_MANAGER, USER_MANAGER, NOBODY), 0);
        (void)itest_cgroup_mark_delegated(&env.cg, USER_MANAGER, "trusted.delegate");
        (void)itest_cgroup_mark_delegated(&env.cg, USER_MANAGER, "user.delegate");
        /* The user makes the scope itself and moves into it. */
        run_client(USER_MANAGER, "app.slice/machine-qemu-evil.scope", &o);
        expect_refused(&o, "is under user@65534.service, a user's own service manager");
}

/* A system service delegated to the user (Delegate=yes, User=nobody). */
static void test_delegated_service(void **state) {
        Outcome o;

        assert_int_equal(itest_cgroup_make(&env.cg, "system.slice/vmm.service",
                                           "system.slice/vmm.service", NOBODY),
                         0);
        run_client("system.slice/vmm.service", "machine-qemu-evil.scope", &o);
        expect_refused(&o, "/system.slice/vmm.service, which belongs to uid 65534");
}

/* A subtree delegated to root (Delegate=yes, no User=): only the xattrs say so. */
static void test_root_delegated_subtree(void **state) {
        static const char *const xattrs[] = { "trusted.delegate", "user.delegate" };

        for (size_t i = 0; i < sizeof(xattrs) / sizeof(xattrs[0]); i++) {
                char service[64], rel[128], why[128];
                Outcome o;

                snprintf(service, sizeof(service), "system.slice/runtime-%zu.service", i);
                snprintf(rel, sizeof(rel), "%s/machine-qemu-evil.scope", service);
                assert_int_equal(itest_cgroup_make(&env.cg, rel, NULL, 0), 0);
                assert_int_equal(itest_cgroup_mark_delegated(&env.cg, service, xattrs[i]), 0);
                run_client(rel, NULL, &o);
                snprintf(why, sizeof(why), "/%s, which is delegated (%s)", service, xattrs[i]);
                expect_refused(&o, why);
        }
}

/* The real thing: a machine scope of the system manager, delegated as machined does. */
static void test_machine_scope(void **state) {
        const char *scope = "machine.slice/machine-qemu-good.scope";
        Outcome o;

        assert_int_equal(itest_cgroup_make(&env.cg, "machine.slice/machine-qemu-good.scope/"
                                                    "libvirt/emulator",
                                           NULL, 0),
                         0);
        (void)itest_cgroup_mark_delegated(&env.cg, scope, "trusted.delegate");
        run_client("machine.slice/machine-qemu-good.scope/libvirt/emulator", NULL, &o);
        assert_string_equal(o.unit, "machine-qemu-good.scope");
        assert_true(o.allowed);
        assert_non_null(strstr(o.reason, "uid 65534 (machine-qemu-good.scope) is granted"));
        assert_string_equal(o.attach, "ok");
}

/* A client on a socket that is already connected. */
static ItestClient *client_of_fd(int fd) {
        ItestClient *c = calloc(1, sizeof(*c));

        assert_non_null(c);
        c->fd = fd;
        return c;
}

static int connect_to_daemon(int fd) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };

        if (strlen(env.daemon.socket) >= sizeof(sa.sun_path))
                return -1;
        memcpy(sa.sun_path, env.daemon.socket, strlen(env.daemon.socket) + 1);
        return connect(fd, (struct sockaddr *)&sa, sizeof(sa));
}

static bool explain_allowed(ItestClient *c, const char *device, char *reason, size_t size) {
        json_object *r = itest_call(c, "org.iommud.Broker.ExplainDevice",
                                    itest_params("device", json_object_new_string(device), NULL),
                                    NULL, 0);
        json_object *allowed = NULL;
        bool yes;

        if (!r || itest_reply_error(r) ||
            !json_object_object_get_ex(itest_reply_params(r), "allowed", &allowed))
                return false;
        yes = json_object_get_boolean(allowed);
        if (reason)
                snprintf(reason, size, "%s", principal_reason(itest_reply_params(r)));
        json_object_put(r);
        return yes;
}

/*
 * The child: as nobody with GROUP, it connects while the daemon is stopped, so the
 * connection waits in the backlog, then drops GROUP before the daemon accepts it.
 */
static void child_groups(int ready, int go) {
        gid_t g = GROUP;
        ItestClient *c;
        int fd;
        char b;

        /* The saved uid stays root's so that the group can be dropped after connecting. */
        if (setgroups(1, &g) < 0 || setresgid(NOBODY, NOBODY, NOBODY) < 0 ||
            setresuid(NOBODY, NOBODY, 0) < 0)
                _exit(2);
        itest_die_with_parent();
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || connect_to_daemon(fd) < 0)
                _exit(3);
        if (seteuid(0) < 0 || setgroups(0, NULL) < 0 || seteuid(NOBODY) < 0)
                _exit(4);
        if (write(ready, "r", 1) != 1 || read(go, &b, 1) != 1)
                _exit(5);
        c = client_of_fd(fd);
        /* Accepted after the drop: the groups are still those it connected with. */
        if (!explain_allowed(c, DEV_GROUP, NULL, 0))
                _exit(6);
        itest_client_free(c);
        /* A connection made without the group has none. */
        if (itest_client_connect(&c, env.daemon.socket) < 0)
                _exit(7);
        if (explain_allowed(c, DEV_GROUP, NULL, 0))
                _exit(8);
        itest_client_free(c);
        _exit(0);
}

/* Supplementary groups are the kernel's record of connect() (SO_PEERGROUPS), not /proc's. */
static void test_groups_at_connect(void **state) {
        int ready[2], go[2], status;
        pid_t pid;
        char b;

        assert_int_equal(pipe2(ready, O_CLOEXEC), 0);
        assert_int_equal(pipe2(go, O_CLOEXEC), 0);
        assert_int_equal(kill(env.daemon.pid, SIGSTOP), 0);
        fflush(NULL);
        pid = itest_fork();
        assert_true(pid >= 0);
        if (pid == 0)
                child_groups(ready[1], go[0]);
        assert_int_equal(read(ready[0], &b, 1), 1);
        assert_int_equal(kill(env.daemon.pid, SIGCONT), 0);
        assert_int_equal(write(go[1], "g", 1), 1);
        assert_int_equal(waitpid(pid, &status, 0), pid);
        for (size_t i = 0; i < 2; i++) {
                close(ready[i]);
                close(go[i]);
        }
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
}

static int connect_only(void *userdata, char *report, size_t size) {
        return connect_to_daemon(*(int *)userdata) < 0 ? 1 : 0;
}

/*
 * A client in a real machine scope connects and exits before the daemon accepts (its socket
 * lives on here).  Its pid could be anyone's by then: nothing /proc says is taken.
 */
static void test_peer_gone_before_accept(void **state) {
        const char *rel = "machine.slice/machine-qemu-gone.scope";
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        char report[64], reason[512];
        json_object *r, *principal, *unit;
        ItestClient *c;

        assert_true(fd >= 0);
        assert_int_equal(itest_cgroup_make(&env.cg, rel, NULL, 0), 0);
        assert_int_equal(kill(env.daemon.pid, SIGSTOP), 0);
        assert_int_equal(itest_cgroup_run(&env.cg, rel, NULL, NOBODY, NOBODY, connect_only, &fd,
                                          report, sizeof(report)),
                         0);
        assert_int_equal(kill(env.daemon.pid, SIGCONT), 0);

        c = client_of_fd(fd);
        r = itest_call(c, "org.iommud.Broker.GetSession", NULL, NULL, 0);
        assert_non_null(r);
        assert_null(itest_reply_error(r));
        assert_true(json_object_object_get_ex(itest_reply_params(r), "principal", &principal));
        assert_false(json_object_object_get_ex(principal, "unit", &unit));
        json_object_put(r);
        assert_false(explain_allowed(c, DEV, reason, sizeof(reason)));
        print_message("# %s\n", reason);
        assert_non_null(strstr(reason, "no unit: "));
        assert_non_null(strstr(reason, "is not verifiably the client's"));
        itest_client_free(c);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_user_manager_scope),
                cmocka_unit_test(test_delegated_service),
                cmocka_unit_test(test_root_delegated_subtree),
                cmocka_unit_test(test_machine_scope),
                cmocka_unit_test(test_groups_at_connect),
                cmocka_unit_test(test_peer_gone_before_accept),
        };

        /* Without root or a cgroup2 tree to write: a TAP plan of zero, which says why. */
        if (itest_cgroups_init(&env.cg) < 0) {
                printf("1..0 # SKIP %s\n", env.cg.skip);
                return 0;
        }
        return cmocka_run_group_tests_name("principals", tests, setup, teardown);
}
