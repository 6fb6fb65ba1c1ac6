/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "varlink-broker-idl.h"
#include "macros.h"
#include "varlink-idl.h"

/* The socket API of DESIGN.md: every name here must be in the IDL. */
static const char *const broker_methods[] = {
        "GetTopology",  "ExplainDevice", "AttachDevice", "DetachDevice", "GetDeviceFd",
        "CreateAddressSpace", "DestroyAddressSpace", "AttachToAddressSpace", "GetIOVARanges",
        "AllowIOVAs",   "Map",           "Unmap",        "Copy",
        "BindPASID",    "UnbindPASID",   "WatchFaults",  "RespondFault",
        "Delegate",     "GetSession",    "JoinSession",   "WatchEvents",
};

static const char *const broker_errors[] = {
        "PolicyDenied", "DeviceBusy", "QuotaExceeded", "NoSuchObject", "InvalidRange",
        "IOVAInUse",    "InvalidFd",  "NotSupported",  "ObjectInUse",  "BackendError",
        "SystemError",  "DeviceGone",      "FaultNotPending", "FaultNotOwned",
};

static void test_broker_idl_lists_the_api(void **state) {
        _cleanup_(varlink_idl_freep) VarlinkIdl *idl = NULL;
        Error err = ERROR_INIT;

        if (varlink_idl_parse(broker_idl, &idl, &err) < 0)
                fail_msg("%s", error_message(&err));
        assert_string_equal(idl->name, BROKER_INTERFACE);
        assert_int_equal(idl->n_methods, ELEMENTSOF(broker_methods));
        FOREACH_ARRAY(m, broker_methods, ELEMENTSOF(broker_methods))
                if (!varlink_idl_has_method(idl, *m))
                        fail_msg("method %s missing from the IDL", *m);
        assert_int_equal(idl->n_errors, ELEMENTSOF(broker_errors));
        FOREACH_ARRAY(e, broker_errors, ELEMENTSOF(broker_errors))
                if (!varlink_idl_has_error(idl, *e))
                        fail_msg("error %s missing from the IDL", *e);
        assert_true(idl->n_types >= 5);
}

static void test_bad_idl(void **state) {
        static const struct {
                const char *text;
                const char *message;
        } cases[] = {
                { "method Foo() -> ()", "line 1: expected 'interface' before anything else" },
                { "interface foo\n", "line 1: invalid interface name 'foo'" },
                { "interface a.b\nmethod lower() -> ()", "line 2: invalid method name 'lower'" },
                { "interface a.b\nmethod Foo(\n", "line 2: '(' is never closed" },
                { "interface a.b\nmethod Foo() -> ())", "line 2: ')' without '('" },
                { "interface a.b\nerror E ()\nmethod E() -> ()", "line 3: 'E' is defined twice" },
                { "interface a.b\nfunction F()", "line 2: expected 'type', 'method' or 'error', got 'function'" },
                { "interface a.b\nmethod", "line 2: 'method' without a name" },
                { "# only a comment\n", "no interface declaration" },
        };

        FOREACH_ARRAY(c, cases, ELEMENTSOF(cases)) {
                VarlinkIdl *idl = NULL;
                Error err = ERROR_INIT;

                assert_int_equal(varlink_idl_parse(c->text, &idl, &err), -EBADMSG);
                assert_null(idl);
                assert_string_equal(err.message, c->message);
        }
}

static void test_good_idl_details(void **state) {
        _cleanup_(varlink_idl_freep) VarlinkIdl *idl = NULL;
        const char *text = "# doc\ninterface io.example.Thing\n\n"
                           "type Pair (a: int, b: ?[]string, c: (x, y))\n"
                           "# a method\nmethod Get(key: string) -> (value: ?object, more: [string]int)\n"
                           "error Missing (key: string)\n";

        assert_int_equal(varlink_idl_parse(text, &idl, NULL), 0);
        assert_string_equal(idl->name, "io.example.Thing");
        assert_int_equal(idl->n_types, 1);
        assert_string_equal(idl->types[0], "Pair");
        assert_int_equal(idl->n_methods, 1);
        assert_string_equal(idl->methods[0], "Get");
        assert_int_equal(idl->n_errors, 1);
        assert_string_equal(idl->errors[0], "Missing");
}

static int dummy(VarlinkCall *call, json_object *parameters, VarlinkCallFlags flags, void *userdata) {
        return 0;
}

static void test_check_interface(void **state) {
        static const char text[] = "interface io.example.T\nmethod A() -> ()\nmethod B() -> ()\n"
                                   "error Failed (errno: int, message: string)\n";
        static const VarlinkMethod both[] = { { "A", dummy }, { "B", dummy }, {} };
        static const VarlinkMethod one[] = { { "A", dummy }, {} };
        static const VarlinkMethod extra[] = { { "A", dummy }, { "B", dummy }, { "C", dummy }, {} };
        Error err = ERROR_INIT;

        assert_int_equal(varlink_idl_check_interface(
                                 &(VarlinkInterface){ "io.example.T", text, both, "io.example.T.Failed" },
                                 &err),
                         0);
        assert_int_equal(varlink_idl_check_interface(&(VarlinkInterface){ "io.example.T", text, one, NULL },
                                                     &err),
                         -EBADMSG);
        assert_string_equal(err.message, "interface io.example.T: method B has no handler");
        assert_int_equal(varlink_idl_check_interface(
                                 &(VarlinkInterface){ "io.example.T", text, extra, NULL }, &err),
                         -EBADMSG);
        assert_string_equal(err.message, "interface io.example.T: method C is not in the IDL");
        assert_int_equal(varlink_idl_check_interface(&(VarlinkInterface){ "io.example.U", text, both, NULL },
                                                     &err),
                         -EBADMSG);
        assert_string_equal(err.message, "interface io.example.U: its IDL declares 'io.example.T'");
        assert_int_equal(varlink_idl_check_interface(
                                 &(VarlinkInterface){ "io.example.T", text, both, "io.example.T.Nope" },
                                 &err),
                         -EBADMSG);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_broker_idl_lists_the_api),
                cmocka_unit_test(test_bad_idl),
                cmocka_unit_test(test_good_idl_details),
                cmocka_unit_test(test_check_interface),
        };

        return cmocka_run_group_tests_name("varlink-idl", tests, NULL, NULL);
}
