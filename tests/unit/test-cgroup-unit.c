/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Which unit a cgroup path proves, on a cgroup tree made of plain directories
 * under /tmp: ownership, modes and the delegation xattrs are what the rule
 * looks at, and a plain directory has them all.  Making directories owned by
 * root and by another uid needs root; the real cgroup2 tree is exercised by
 * the integration and bus suites.  Without root the suite is skipped.
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
#include <sys/xattr.h>
#include <unistd.h>

#include <cmocka.h>

#include "cgroup-unit.h"
#include "macros.h"

#define NOBODY 65534

static char root[] = "/tmp/iommud-test-cgroup-XXXXXX";

/* mkdir -p ROOT/rel, every new directory 0755 and root's. */
static void make_dirs(const char *rel) {
        char path[512];
        size_t n = strlen(root);

        snprintf(path, sizeof(path), "%s/%s", root, rel);
        for (char *p = path + n + 1;; p++) {
                if (*p == '/' || *p == 0) {
                        char c = *p;

                        *p = 0;
                        assert_true(mkdir(path, 0755) == 0 || errno == EEXIST);
                        *p = c;
                }
                if (*p == 0)
                        break;
        }
}

static void path_of(const char *rel, char *buf, size_t size) {
        snprintf(buf, size, "%s/%s", root, rel);
}

/* Checks "/rel": unit wanted (NULL: none), and a refusal containing refused (NULL: none). */
static void expect(const char *rel, const char *unit, const char *refused) {
        char path[512], *got = NULL;
        Error err = ERROR_INIT;
        int r;

        snprintf(path, sizeof(path), "/%s", rel);
        r = cgroup_unit_check(root, path, &got, &err);
        if (err.error)
                print_message("# %s: %s\n", path, err.message);
        if (unit) {
                assert_int_equal(r, 1);
                assert_string_equal(got, unit);
        } else
                assert_int_equal(r, refused ? -EPERM : 0);
        if (refused)
                assert_non_null(strstr(err.message, refused));
        else
                assert_int_equal(err.error, 0);
        free(got);
}

static int setup(void **state) {
        assert_non_null(mkdtemp(root));
        assert_int_equal(chmod(root, 0755), 0);
        return 0;
}

static int teardown(void **state) {
        char cmd[600];

        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
        assert_int_equal(system(cmd), 0);
        return 0;
}

static void test_parse_proc(void **state) {
        char *path = NULL;

        assert_int_equal(cgroup_unit_parse_proc("9:name=systemd:/\n4:memory:/x\n0::/system.slice/"
                                                "a.service\n",
                                                &path),
                         0);
        assert_string_equal(path, "/system.slice/a.service");
        free(path);
        path = NULL;
        assert_int_equal(cgroup_unit_parse_proc("5:memory:/system.slice/b.service\n", &path),
                         -ENXIO);
        /* A cgroup named "x\n0::/system.slice/foo.service" would add a line of its own. */
        assert_int_equal(cgroup_unit_parse_proc("0::/user.slice/x\n0::/system.slice/foo.service\n",
                                                &path),
                         -EBADMSG);
        assert_int_equal(cgroup_unit_parse_proc("1:name=systemd:/a\n0::/system.slice/f.service\n"
                                                "0::/b\n",
                                                &path),
                         -EBADMSG);
        assert_null(path);
        assert_int_equal(cgroup_unit_parse_proc("0::/\n", &path), 0);
        assert_string_equal(path, "/");
        free(path);
}

static void test_unit_names(void **state) {
        static const struct {
                const char *path;
                const char *unit; /* NULL: -ENXIO */
        } cases[] = {
                { "/system.slice/foo.service", "foo.service" },
                { "/system.slice/foo.service/payload", "foo.service" },
                { "/machine.slice/qemu-vm1.scope/libvirt/emulator", "qemu-vm1.scope" },
                { "/user.slice/user-1000.slice/user@1000.service/app.slice/vm.scope/sub",
                  "vm.scope" },
                { "/user.slice/user-1000.slice/session-2.scope", "session-2.scope" },
                { "/init.scope", "init.scope" },
                { "/", NULL },
                { "/user.slice", NULL },
                { "", NULL },
                { "/system.slice/.service", NULL },
        };

        FOREACH_ARRAY(c, cases, ELEMENTSOF(cases)) {
                char *unit = NULL;
                int r = cgroup_unit_name(c->path, &unit);

                if (c->unit) {
                        assert_int_equal(r, 0);
                        assert_string_equal(unit, c->unit);
                } else {
                        assert_int_equal(r, -ENXIO);
                        assert_null(unit);
                }
                free(unit);
        }
}

static void test_system_units(void **state) {
        make_dirs("machine.slice/machine-qemu-good.scope/libvirt/emulator");
        make_dirs("system.slice/foo.service");
        make_dirs("user.slice/user-1000.slice/session-2.scope");
        make_dirs("init.scope");

        expect("machine.slice/machine-qemu-good.scope", "machine-qemu-good.scope", NULL);
        expect("machine.slice/machine-qemu-good.scope/libvirt/emulator",
               "machine-qemu-good.scope", NULL);
        expect("system.slice/foo.service", "foo.service", NULL);
        expect("user.slice/user-1000.slice/session-2.scope", "session-2.scope", NULL);
        expect("init.scope", "init.scope", NULL);
        /* Naming no unit refuses nothing. */
        expect("machine.slice", NULL, NULL);
        expect("", NULL, NULL);
}

/* The attack: a scope of that name in the user's own service manager. */
static void test_user_manager(void **state) {
        const char *rel = "user.slice/user-65534.slice/user@65534.service/app.slice/"
                          "machine-qemu-evil.scope";
        char path[512];

        make_dirs(rel);
        /* Even left root's (no delegation seen at all), the user's manager is no source. */
        expect(rel, NULL, "machine-qemu-evil.scope is under user@65534.service, a user's own "
                          "service manager");
        /* As systemd leaves it: the user's subtree is the user's. */
        path_of("user.slice/user-65534.slice/user@65534.service", path, sizeof(path));
        assert_int_equal(chown(path, NOBODY, NOBODY), 0);
        expect(rel, NULL, "is under user@65534.service");
        expect("user.slice/user-65534.slice/user@65534.service", NULL,
               "user@65534.service is a user's own service manager");
}

static void test_delegated_subtrees(void **state) {
        char path[512];

        /* A service with Delegate=yes and User=: its cgroup is chowned to the user. */
        make_dirs("system.slice/chowned.service/machine-qemu-evil.scope");
        path_of("system.slice/chowned.service", path, sizeof(path));
        assert_int_equal(chown(path, NOBODY, NOBODY), 0);
        expect("system.slice/chowned.service/machine-qemu-evil.scope", NULL,
               "inside /system.slice/chowned.service, which belongs to uid 65534");
        /* The delegated unit itself: its name was the system manager's to choose. */
        expect("system.slice/chowned.service", "chowned.service", NULL);

        /* A directory anyone may write to is as good as delegated. */
        make_dirs("system.slice/open.service/x.scope");
        path_of("system.slice/open.service", path, sizeof(path));
        assert_int_equal(chmod(path, 0777), 0);
        expect("system.slice/open.service/x.scope", NULL, "which others may write to (mode 0777)");

        /* A cgroup in someone else's namespace, as /proc shows it from ours. */
        make_dirs("system.slice/far.service");
        expect("../system.slice/far.service", NULL, "outside iommud's cgroup namespace");
        /* Gone, or never there. */
        expect("system.slice/gone.service", NULL, "cannot be checked");
}

static void test_delegation_xattrs(void **state) {
        char path[512];

        /* Owned by root, delegated all the same (Delegate=yes without User=). */
        make_dirs("system.slice/root.service/machine-qemu-evil.scope");
        path_of("system.slice/root.service", path, sizeof(path));
        assert_int_equal(setxattr(path, "trusted.delegate", "1", 1, 0), 0);
        expect("system.slice/root.service/machine-qemu-evil.scope", NULL,
               "inside /system.slice/root.service, which is delegated (trusted.delegate)");
        /* (user.delegate, which not every file system here takes, is tested on cgroup2 by
         * the integration suite.) */

        /* systemd-machined delegates its machine scopes: the scope is the unit still. */
        make_dirs("machine.slice/machine-qemu-delegated.scope/libvirt/emulator");
        path_of("machine.slice/machine-qemu-delegated.scope", path, sizeof(path));
        assert_int_equal(setxattr(path, "trusted.delegate", "1", 1, 0), 0);
        expect("machine.slice/machine-qemu-delegated.scope/libvirt/emulator",
               "machine-qemu-delegated.scope", NULL);
        /* But nothing inside it names a unit of its own. */
        make_dirs("machine.slice/machine-qemu-delegated.scope/libvirt/inner.scope");
        expect("machine.slice/machine-qemu-delegated.scope/libvirt/inner.scope", NULL,
               "which is delegated (trusted.delegate)");
}

static void test_find_root(void **state) {
        const char *where = NULL;
        int r = cgroup_unit_find_root(&where);

        /* Whatever the machine has: cgroup2 somewhere systemd would mount it, or nothing. */
        if (r == -ENOMEDIUM) {
                print_message("# no cgroup2 hierarchy mounted\n");
                return;
        }
        assert_int_equal(r, 0);
        assert_true(streq(where, "/sys/fs/cgroup") || streq(where, "/sys/fs/cgroup/unified"));
        assert_int_equal(access(where, F_OK), 0);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_parse_proc),
                cmocka_unit_test(test_unit_names),
                cmocka_unit_test(test_system_units),
                cmocka_unit_test(test_user_manager),
                cmocka_unit_test(test_delegated_subtrees),
                cmocka_unit_test(test_delegation_xattrs),
                cmocka_unit_test(test_find_root),
        };

        /* A whole-suite skip is a TAP plan of zero (cmocka's skip() is a failure to meson). */
        if (geteuid() != 0) {
                printf("1..0 # SKIP needs root to make directories of other owners\n");
                return 0;
        }
        return cmocka_run_group_tests_name("cgroup-unit", tests, setup, teardown);
}
