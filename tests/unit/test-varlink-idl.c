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
        "MapBatch",     "UnmapBatch",
        "BindPASID",    "UnbindPASID",   "WatchFaults",  "RespondFault",
        "Delegate",     "GetSession",    "JoinSession",   "WatchEvents",
        "OpenDevices",  "ReleaseDevices",
        "GetFeatures",  "SetDirtyTracking", "ReadDirtyBitmap",
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
                           "method Put(\n  # the key\n  key: string,\n  value: ?[]Pair,\n"
                           "  mode: ?(fast, safe),\n  inline: (a: int, b: ?int),\n  n: int\n) -> ()\n"
                           "error Missing (key: string)\n";
        const VarlinkIdlParameters *p;

        assert_int_equal(varlink_idl_parse(text, &idl, NULL), 0);
        assert_string_equal(idl->name, "io.example.Thing");
        assert_int_equal(idl->n_types, 1);
        assert_string_equal(idl->types[0], "Pair");
        assert_int_equal(idl->n_methods, 2);
        assert_string_equal(idl->methods[0], "Get");
        assert_int_equal(idl->n_errors, 1);
        assert_string_equal(idl->errors[0], "Missing");

        /* Parameters: the input only, with their optionality and the type's first token. */
        p = varlink_idl_method_parameters(idl, "Get");
        assert_int_equal(p->n, 1);
        assert_string_equal(p->items[0].name, "key");
        assert_false(p->items[0].optional);
        assert_string_equal(p->items[0].type, "string");
        p = varlink_idl_method_parameters(idl, "Put");
        assert_int_equal(p->n, 5);
        assert_string_equal(p->items[1].name, "value");
        assert_true(p->items[1].optional);
        assert_string_equal(p->items[1].type, "[");
        assert_string_equal(p->items[2].name, "mode");
        assert_true(p->items[2].optional);
        assert_string_equal(p->items[2].type, "(");
        assert_string_equal(p->items[3].name, "inline");
        assert_string_equal(p->items[4].name, "n");
        assert_string_equal(p->items[4].type, "int");
        assert_null(varlink_idl_method_parameters(idl, "Pair"));
}

/* A parameter whose type is missing ends with its parentheses: the next method starts afresh. */
static void test_parameter_without_type(void **state) {
        _cleanup_(varlink_idl_freep) VarlinkIdl *idl = NULL;
        const VarlinkIdlParameters *p;

        assert_int_equal(varlink_idl_parse("interface a.b\nmethod A(x:) -> ()\n"
                                           "method B(y: int) -> ()\n", &idl, NULL), 0);
        p = varlink_idl_method_parameters(idl, "A");
        assert_int_equal(p->n, 1);
        assert_null(p->items[0].type);
        p = varlink_idl_method_parameters(idl, "B");
        assert_int_equal(p->n, 1);
        assert_string_equal(p->items[0].type, "int");
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

typedef struct Args {
        uint32_t n;
        const char *key;
} Args;

/* The parameter tables agree with the IDL: names, optionality and types. */
static void test_check_parameters(void **state) {
        static const char text[] = "interface io.example.T\nmethod A(n: int, key: ?string) -> ()\n";
        static const JsonDispatchField good[] = {
                { "n", JSON_DISPATCH_UINT32, JSON_DISPATCH_REQUIRED, offsetof(Args, n) },
                { "key", JSON_DISPATCH_STRING, JSON_DISPATCH_NULLABLE, offsetof(Args, key) },
                {},
        };
        static const JsonDispatchField missing[] = {
                { "n", JSON_DISPATCH_UINT32, JSON_DISPATCH_REQUIRED, offsetof(Args, n) },
                {},
        };
        static const JsonDispatchField extra[] = {
                { "n", JSON_DISPATCH_UINT32, JSON_DISPATCH_REQUIRED, offsetof(Args, n) },
                { "key", JSON_DISPATCH_STRING, JSON_DISPATCH_NULLABLE, offsetof(Args, key) },
                { "other", JSON_DISPATCH_STRING, 0, offsetof(Args, key) },
                {},
        };
        static const JsonDispatchField optional_n[] = {
                { "n", JSON_DISPATCH_UINT32, JSON_DISPATCH_NULLABLE, offsetof(Args, n) },
                { "key", JSON_DISPATCH_STRING, JSON_DISPATCH_NULLABLE, offsetof(Args, key) },
                {},
        };
        static const JsonDispatchField string_n[] = {
                { "n", JSON_DISPATCH_STRING, JSON_DISPATCH_REQUIRED, offsetof(Args, key) },
                { "key", JSON_DISPATCH_STRING, JSON_DISPATCH_NULLABLE, offsetof(Args, key) },
                {},
        };
        static const struct {
                const JsonDispatchField *table;
                const char *message;
        } cases[] = {
                { good, NULL },
                { missing, "interface io.example.T: method A: parameter 'key' is not in the table" },
                { extra, "interface io.example.T: method A: table entry 'other' is not a parameter "
                         "in the IDL" },
                { optional_n, "interface io.example.T: method A: parameter 'n' is required in the "
                              "IDL but not in the table" },
                { string_n, "interface io.example.T: method A: parameter 'n': the IDL's type 'int' "
                            "is not what the table decodes" },
        };

        FOREACH_ARRAY(c, cases, ELEMENTSOF(cases)) {
                const VarlinkMethod methods[] = { { "A", dummy, c->table }, {} };
                Error err = ERROR_INIT;
                int r;

                r = varlink_idl_check_interface(&(VarlinkInterface){ "io.example.T", text, methods },
                                                &err);
                if (!c->message) {
                        assert_int_equal(r, 0);
                        continue;
                }
                assert_int_equal(r, -EBADMSG);
                assert_string_equal(err.message, c->message);
        }
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_broker_idl_lists_the_api),
                cmocka_unit_test(test_bad_idl),
                cmocka_unit_test(test_good_idl_details),
                cmocka_unit_test(test_parameter_without_type),
                cmocka_unit_test(test_check_interface),
                cmocka_unit_test(test_check_parameters),
        };

        return cmocka_run_group_tests_name("varlink-idl", tests, NULL, NULL);
}
