/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "broker-errors.h"
#include "macros.h"
#include "peer-creds.h"

static void test_status_gid(void **state) {
        gid_t g = 0;

        assert_int_equal(peer_creds_parse_status_gid("Name:\tx\nUid:\t1 1 1 1\nGid:\t100\t107\t"
                                                     "107\t107\nGroups:\t4\n",
                                                     &g),
                         0);
        assert_int_equal(g, 107);
        assert_int_equal(peer_creds_parse_status_gid("Name:\tx\n", &g), -EBADMSG);
        assert_int_equal(peer_creds_parse_status_gid("Gid:\tx\n", &g), -EBADMSG);
}

/* pid 0: made up by iommud itself, nothing to read and nothing refused. */
static void test_no_process(void **state) {
        PeerCreds *c = NULL;
        char buf[64];

        assert_int_equal(peer_creds_new(&c, "/nonexistent", 0, 1001, 1001, NULL), 0);
        assert_int_equal(c->n_groups, 0);
        assert_null(c->unit);
        assert_null(c->unit_refused);
        peer_creds_describe(c, buf, sizeof(buf));
        assert_string_equal(buf, "uid 1001 (pid 0)");
        peer_creds_free(c);
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
                cmocka_unit_test(test_status_gid),
                cmocka_unit_test(test_no_process),
                cmocka_unit_test(test_broker_error_params),
        };

        return cmocka_run_group_tests_name("peer-creds", tests, NULL, NULL);
}
