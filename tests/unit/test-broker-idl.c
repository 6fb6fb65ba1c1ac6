/* SPDX-License-Identifier: LGPL-2.1-or-later */

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
                cmocka_unit_test(test_simulator_matches_idl),
        };

        return cmocka_run_group_tests_name("broker-idl", tests, NULL, NULL);
}
