/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "broker-errors.h"
#include "varlink-broker.h"
#include "varlink-simulator.h"
#include "varlink-idl.h"

/* The method table implements exactly the methods org.iommud.Broker.varlink declares. */
static void test_methods_match_idl(void **state) {
        Error err = ERROR_INIT;

        if (varlink_idl_check_interface(broker_interface_get(), &err) < 0)
                fail_msg("%s", error_message(&err));
}

/* Every error name the session core produces is declared by the IDL. */
static void test_error_names_declared(void **state) {
        static const char *const names[] = {
                BROKER_ERROR_POLICY_DENIED, BROKER_ERROR_QUOTA_EXCEEDED,
                BROKER_ERROR_NO_SUCH_OBJECT, BROKER_ERROR_INVALID_RANGE,
                BROKER_ERROR_IOVA_IN_USE, BROKER_ERROR_DEVICE_BUSY,
                BROKER_ERROR_OBJECT_IN_USE, BROKER_ERROR_INVALID_FD,
                BROKER_ERROR_NOT_SUPPORTED, BROKER_ERROR_BACKEND_ERROR,
                BROKER_ERROR_SYSTEM_ERROR, BROKER_ERROR_FAULT_NOT_PENDING,
                BROKER_ERROR_FAULT_NOT_OWNED,
        };
        _cleanup_(varlink_idl_freep) VarlinkIdl *idl = NULL;

        assert_int_equal(varlink_idl_parse(broker_interface_get()->description, &idl, NULL), 0);
        for (size_t i = 0; i < ELEMENTSOF(names); i++) {
                const char *short_name = names[i] + strlen(BROKER_INTERFACE ".");

                if (!varlink_idl_has_error(idl, short_name))
                        fail_msg("%s is not declared in the IDL", names[i]);
        }
}

static void assert_conforms(const VarlinkIdl *idl, const BrokerError *e) {
        Error err = ERROR_INIT;

        if (broker_error_check_idl(idl, e, &err) < 0)
                fail_msg("%s (\"%s\")", error_message(&err), e->error.message);
}

/*
 * Every error the core's constructors make carries the parameters the IDL declares for it, and
 * so does every kernel refusal, whatever its errno, whether the operation has a range or not.
 */
static void test_error_parameters_declared(void **state) {
        static const int errnos[] = { EINVAL, ENOENT, ENOSPC, ERANGE,  EOVERFLOW, EEXIST,
                                      EADDRINUSE, EBUSY, EPERM, EOPNOTSUPP, ENOTTY,  ENOMEM,
                                      EFAULT, EBADF, EIO,   E2BIG };
        _cleanup_(varlink_idl_freep) VarlinkIdl *idl = NULL;
        BrokerError e = BROKER_ERROR_INIT;
        Error be = ERROR_INIT;

        assert_int_equal(varlink_idl_parse(broker_interface_get()->description, &idl, NULL), 0);
        broker_error_no_such_object(&e, BROKER_KIND_ADDRESS_SPACE, 7);
        assert_conforms(idl, &e);
        broker_error_no_such_device(&e, "0000:ff:00.0");
        assert_conforms(idl, &e);
        broker_error_system(&e, -ENOMEM, "Allocating memory");
        assert_conforms(idl, &e);
        broker_error_quota(&e, BROKER_RESOURCE_DEVICES, "uid 1000 (1 session)", 2, 2, 1);
        assert_conforms(idl, &e);
        broker_error_not_supported(&e, "pasid", "No PASID.");
        assert_conforms(idl, &e);
        broker_error_invalid_fd(&e, -EBADF, "A pipe.");
        assert_conforms(idl, &e);
        broker_error_invalid_range(&e, 0x1000, 0x1000, "Outside.");
        assert_conforms(idl, &e);
        for (size_t i = 0; i < ELEMENTSOF(errnos); i++) {
                be = (Error){ .error = -errnos[i] };
                broker_error_from_backend(&e, "attach", &be);
                assert_conforms(idl, &e);
                broker_error_from_backend_range(&e, "map", &be, 0x1000, 0x2000);
                assert_conforms(idl, &e);
        }
}

/* The check can fail: a missing, an undeclared and a mistyped parameter, an unknown name. */
static void test_error_parameters_check_fails(void **state) {
        _cleanup_(varlink_idl_freep) VarlinkIdl *idl = NULL;
        BrokerError e = BROKER_ERROR_INIT;

        assert_int_equal(varlink_idl_parse(broker_interface_get()->description, &idl, NULL), 0);
        broker_error_set(&e, -EADDRINUSE, BROKER_ERROR_IOVA_IN_USE, "No range.");
        assert_int_equal(broker_error_check_idl(idl, &e, NULL), -EBADMSG);
        broker_error_add_u64(&e, "start", 0);
        broker_error_add_u64(&e, "length", 0);
        assert_int_equal(broker_error_check_idl(idl, &e, NULL), 0);
        broker_error_add_string(&e, "reason", "not declared for IOVAInUse");
        assert_int_equal(broker_error_check_idl(idl, &e, NULL), -EBADMSG);
        broker_error_set(&e, -EDQUOT, BROKER_ERROR_QUOTA_EXCEEDED, "Typed wrong.");
        broker_error_add_string(&e, "resource", "devices");
        broker_error_add_string(&e, "limit", "2");
        broker_error_add_u64(&e, "used", 2);
        assert_int_equal(broker_error_check_idl(idl, &e, NULL), -EBADMSG);
        broker_error_set(&e, -EIO, BROKER_INTERFACE ".NoSuchError", "Undeclared.");
        assert_int_equal(broker_error_check_idl(idl, &e, NULL), -EBADMSG);
}

/* The simulator's table implements exactly what org.iommud.Simulator.varlink declares. */
static void test_simulator_matches_idl(void **state) {
        Error err = ERROR_INIT;

        if (varlink_idl_check_interface(simulator_interface_get(), &err) < 0)
                fail_msg("%s", error_message(&err));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_methods_match_idl),
                cmocka_unit_test(test_error_names_declared),
                cmocka_unit_test(test_error_parameters_declared),
                cmocka_unit_test(test_error_parameters_check_fails),
                cmocka_unit_test(test_simulator_matches_idl),
        };

        return cmocka_run_group_tests_name("broker-idl", tests, NULL, NULL);
}
