/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "broker-errors.h"
#include "macros.h"
#include "peer-creds.h"

static void test_cgroup_path_units(void **state) {
        static const struct {
                const char *path;
                const char *unit; /* NULL: -ENXIO */
        } cases[] = {
                { "/system.slice/foo.service", "foo.service" },
                { "/system.slice/foo.service/payload", "foo.service" },
                { "/machine.slice/qemu-vm1.scope", "qemu-vm1.scope" },
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
                int r = cgroup_path_get_unit(c->path, &unit);

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

static void test_cgroup_text(void **state) {
        char *unit = NULL;

        assert_int_equal(cgroup_text_get_unit("12:cpu:/legacy\n0::/system.slice/a.service\n",
                                              &unit),
                         0);
        assert_string_equal(unit, "a.service");
        free(unit);
        unit = NULL;
        assert_int_equal(cgroup_text_get_unit("5:memory:/system.slice/b.service\n", &unit),
                         -ENXIO);
        assert_int_equal(cgroup_text_get_unit("0::/\n", &unit), -ENXIO);
        assert_null(unit);
}

static void test_status_groups(void **state) {
        gid_t *g = NULL;
        size_t n = 99;

        assert_int_equal(proc_status_get_groups("Name:\tx\nGroups:\t4 24 1000 \nNgid:\t0\n", &g,
                                                &n),
                         0);
        assert_int_equal(n, 3);
        assert_int_equal(g[0], 4);
        assert_int_equal(g[1], 24);
        assert_int_equal(g[2], 1000);
        free(g);

        assert_int_equal(proc_status_get_groups("Groups:\t\nNgid:\t0\n", &g, &n), 0);
        assert_int_equal(n, 0);
        free(g);
        assert_int_equal(proc_status_get_groups("Name:\tx\n", &g, &n), 0);
        assert_int_equal(n, 0);
        assert_int_equal(proc_status_get_groups("Groups:\t4 x\n", &g, &n), -EINVAL);
}

static void write_file(const char *path, const char *text) {
        FILE *f = fopen(path, "we");

        assert_non_null(f);
        fputs(text, f);
        fclose(f);
}

static void test_fake_proc_root(void **state) {
        char root[] = "/tmp/iommud-test-proc-XXXXXX", path[256];
        PeerCreds *c = NULL;
        char buf[64];

        assert_non_null(mkdtemp(root));
        snprintf(path, sizeof(path), "%s/4242", root);
        assert_int_equal(mkdir(path, 0755), 0);
        snprintf(path, sizeof(path), "%s/4242/status", root);
        write_file(path, "Name:\tqemu\nUid:\t1000\nGroups:\t36 107\n");
        snprintf(path, sizeof(path), "%s/4242/cgroup", root);
        write_file(path, "0::/machine.slice/qemu-vm1.scope\n");

        assert_int_equal(peer_creds_new(&c, root, 4242, 1000, 1000, NULL), 0);
        assert_int_equal(c->uid, 1000);
        assert_int_equal(c->n_groups, 2);
        assert_int_equal(c->groups[1], 107);
        assert_string_equal(c->unit, "qemu-vm1.scope");
        peer_creds_describe(c, buf, sizeof(buf));
        assert_string_equal(buf, "uid 1000 (qemu-vm1.scope)");
        c = peer_creds_free(c);

        /* A process that is gone already: no groups, no unit, still a principal. */
        assert_int_equal(peer_creds_new(&c, root, 4243, 1001, 1001, NULL), 0);
        assert_int_equal(c->n_groups, 0);
        assert_null(c->unit);
        peer_creds_describe(c, buf, sizeof(buf));
        assert_string_equal(buf, "uid 1001 (pid 4243)");
        peer_creds_free(c);

        snprintf(path, sizeof(path), "rm -rf '%s'", root);
        assert_int_equal(system(path), 0);
}

static void test_broker_error_params(void **state) {
        BrokerError e = BROKER_ERROR_INIT;
        const BrokerErrorParam *p;

        assert_int_equal(broker_error_quota(&e, BROKER_RESOURCE_PINNED_BYTES,
                                            "uid 1000 (1 session)", 4096, 4096, 1),
                         -EDQUOT);
        assert_string_equal(e.error.name, "org.iommud.Broker.QuotaExceeded");
        p = broker_error_get(&e, "limit");
        assert_non_null(p);
        assert_int_equal(p->type, BROKER_PARAM_U64);
        assert_int_equal(p->u64, 4096);
        assert_string_equal(broker_error_get(&e, "resource")->str, "pinnedBytes");

        /* A new error drops the old parameters. */
        assert_int_equal(broker_error_no_such_object(&e, BROKER_KIND_DEVICE, 7), -ENOENT);
        assert_int_equal(e.n_params, 2);
        assert_string_equal(broker_error_get(&e, "id")->str, "7");
        assert_null(broker_error_get(&e, "limit"));
        assert_string_equal(e.error.message, "This session has no device with id 7.");

        Error be = { .error = -ENOSPC };
        snprintf(be.message, sizeof(be.message), "no hole");
        assert_int_equal(broker_error_from_backend_range(&e, "map", &be, 0x1000, 0x2000),
                         -ENOSPC);
        assert_string_equal(e.error.name, "org.iommud.Broker.InvalidRange");
        assert_int_equal(broker_error_get(&e, "start")->u64, 0x1000);
        assert_int_equal(broker_error_get(&e, "length")->u64, 0x2000);
        assert_string_equal(broker_error_get(&e, "reason")->str, "no hole");
        be.error = -EEXIST;
        broker_error_from_backend_range(&e, "map", &be, 0x1000, 0x2000);
        assert_string_equal(e.error.name, "org.iommud.Broker.IOVAInUse");
        assert_int_equal(broker_error_get(&e, "start")->u64, 0x1000);
        assert_int_equal(e.n_params, 2);
        /* A method without a range never hears of one: the kernel's EINVAL on a bind. */
        be.error = -EINVAL;
        broker_error_from_backend(&e, "bind", &be);
        assert_string_equal(e.error.name, "org.iommud.Broker.BackendError");
        assert_int_equal(broker_error_get(&e, "errno")->i64, EINVAL);
        assert_null(broker_error_get(&e, "start"));
        be.error = -EOPNOTSUPP;
        broker_error_from_backend(&e, "pasid", &be);
        assert_string_equal(broker_error_get(&e, "feature")->str, "pasid");
        be.error = -ENOMEM;
        broker_error_from_backend(&e, "map", &be);
        assert_string_equal(e.error.name, "org.iommud.Broker.SystemError");
        be.error = -EIO;
        broker_error_from_backend(&e, "map", &be);
        assert_string_equal(e.error.name, "org.iommud.Broker.BackendError");
        assert_int_equal(broker_error_get(&e, "errno")->i64, EIO);
        assert_non_null(broker_error_get(&e, "message"));

        broker_error_no_such_device(&e, "0000:ff:00.0");
        assert_string_equal(e.error.name, "org.iommud.Broker.NoSuchObject");
        assert_string_equal(broker_error_get(&e, "id")->str, "0000:ff:00.0");

        /* NULL is accepted everywhere. */
        assert_int_equal(broker_error_invalid_range(NULL, 0, 1, "x"), -ERANGE);
        broker_error_add_u64(NULL, "x", 1);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_cgroup_path_units),
                cmocka_unit_test(test_cgroup_text),
                cmocka_unit_test(test_status_groups),
                cmocka_unit_test(test_fake_proc_root),
                cmocka_unit_test(test_broker_error_params),
        };

        return cmocka_run_group_tests_name("peer-creds", tests, NULL, NULL);
}
