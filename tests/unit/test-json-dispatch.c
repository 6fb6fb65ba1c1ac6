/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "json-dispatch.h"
#include "json-util.h"
#include "macros.h"

typedef struct Range {
        uint64_t start, last;
} Range;

typedef struct Params {
        uint32_t id;
        uint64_t iova;
        bool has_iova;
        uint8_t bits;
        uint16_t vendor;
        int node;
        bool flag;
        const char *name;
        char *label;
        uint32_t code;
        JsonDispatchFd fd;
        Range *ranges;
        size_t n_ranges;
        struct {
                const char *type;
                uint32_t id;
        } inner;
        bool has_inner;
        uint64_t mask;
} Params;

static const JsonDispatchEnum codes[] = { { "success", 0 }, { "invalid", 1 }, {} };

static const JsonDispatchField range_fields[] = {
        { "start", JSON_DISPATCH_UINT64, JSON_DISPATCH_REQUIRED, offsetof(Range, start) },
        { "last", JSON_DISPATCH_UINT64, JSON_DISPATCH_REQUIRED, offsetof(Range, last) },
        {},
};
static const JsonDispatchField range_element = { .type = JSON_DISPATCH_OBJECT,
                                                 .fields = range_fields };

static const JsonDispatchField inner_fields[] = {
        { "type", JSON_DISPATCH_STRING, JSON_DISPATCH_REQUIRED, 0 },
        { "id", JSON_DISPATCH_UINT32, 0, offsetof(Params, inner.id) - offsetof(Params, inner) },
        {},
};

/* Names OR-ed into a mask: an array folded into one field by a callback. */
static int mask_add(const JsonDispatchValue *v, void *target, const JsonDispatchPath *path,
                    Error *err) {
        char p[JSON_DISPATCH_PATH_MAX];

        if (v->kind != JSON_DISPATCH_KIND_STRING || strlen(v->text) != 1 || v->text[0] < 'a' ||
            v->text[0] > 'z')
                return error_set(err, -EINVAL, "%s: expected one letter",
                                 json_dispatch_path_format(path, p, sizeof(p)));
        *(uint64_t *)target |= UINT64_C(1) << (v->text[0] - 'a');
        return 0;
}
static const JsonDispatchField mask_element = { .type = JSON_DISPATCH_CUSTOM,
                                                .callback = mask_add };

static const JsonDispatchField fields[] = {
        { "id", JSON_DISPATCH_UINT32, JSON_DISPATCH_REQUIRED, offsetof(Params, id) },
        { "iova", JSON_DISPATCH_UINT64, JSON_DISPATCH_NULLABLE, offsetof(Params, iova),
          .presence = JSON_DISPATCH_PRESENCE(Params, has_iova) },
        { "bits", JSON_DISPATCH_UINT8, JSON_DISPATCH_HEX, offsetof(Params, bits), .max = 20 },
        { "vendor", JSON_DISPATCH_UINT16, JSON_DISPATCH_HEX, offsetof(Params, vendor) },
        { "node", JSON_DISPATCH_INT, 0, offsetof(Params, node), .min = -1, .max = 1023 },
        { "flag", JSON_DISPATCH_BOOL, 0, offsetof(Params, flag) },
        { "name", JSON_DISPATCH_STRING, 0, offsetof(Params, name), .max = 8 },
        { "label", JSON_DISPATCH_STRING, JSON_DISPATCH_COPY | JSON_DISPATCH_NULLABLE,
          offsetof(Params, label) },
        { "code", JSON_DISPATCH_ENUM, 0, offsetof(Params, code), .enums = codes },
        { "fd", JSON_DISPATCH_FD_INDEX, 0, offsetof(Params, fd) },
        { "ranges", JSON_DISPATCH_ARRAY, 0, offsetof(Params, ranges), .max = 3,
          .element = &range_element, .element_size = sizeof(Range),
          .count_offset = offsetof(Params, n_ranges) },
        { "inner", JSON_DISPATCH_OBJECT, 0, offsetof(Params, inner), .fields = inner_fields,
          .presence = JSON_DISPATCH_PRESENCE(Params, has_inner) },
        { "mask", JSON_DISPATCH_ARRAY, 0, offsetof(Params, mask), .element = &mask_element },
        { "mask", JSON_DISPATCH_UINT64, JSON_DISPATCH_HEX, offsetof(Params, mask) },
        {},
};

/* Decodes text; returns the errno, with the message and the top-level member. */
static int decode(const char *text, Params *p, Error *err, const char **field) {
        json_object *o = json_tokener_parse(text);
        int r;

        assert_non_null(o);
        assert_int_equal(json_util_fix_big_integers(o, text, strlen(text)), 0);
        *p = (Params){ .node = -1 };
        *err = ERROR_INIT;
        r = json_dispatch(o, fields, p, "", field, err);
        /* Borrowed strings die with the document; these tests look at them before. */
        if (p->name && r >= 0)
                p->name = streq(p->name, "nvme") ? "nvme" : "other";
        if (p->inner.type && r >= 0)
                p->inner.type = "seen";
        if (*field) {
                /* An unknown key's name is the document's. */
                static char copy[64];

                snprintf(copy, sizeof(copy), "%s", *field);
                *field = copy;
        }
        json_object_put(o);
        return r;
}

static void test_every_type(void **state) {
        Params p;
        Error err;
        const char *field;

        assert_int_equal(decode("{\"id\":7,\"iova\":18446744073709551615,\"bits\":\"0x14\","
                                "\"vendor\":\"0x8086\",\"node\":-1,\"flag\":true,\"name\":\"nvme\","
                                "\"label\":\"a b\",\"code\":\"invalid\",\"fd\":2,"
                                "\"ranges\":[{\"start\":1,\"last\":2},{\"last\":4,\"start\":3}],"
                                "\"inner\":{\"type\":\"t\",\"id\":9},\"mask\":[\"a\",\"c\"]}",
                                &p, &err, &field),
                         0);
        assert_int_equal(p.id, 7);
        assert_true(p.iova == UINT64_MAX);
        assert_true(p.has_iova);
        assert_int_equal(p.bits, 20);
        assert_int_equal(p.vendor, 0x8086);
        assert_int_equal(p.node, -1);
        assert_true(p.flag);
        assert_string_equal(p.name, "nvme");
        assert_string_equal(p.label, "a b");
        assert_int_equal(p.code, 1);
        assert_int_equal(p.fd.index, 2);
        assert_int_equal(p.fd.fd, -EBADF);
        assert_int_equal(p.n_ranges, 2);
        assert_true(p.ranges[1].start == 3 && p.ranges[1].last == 4);
        assert_true(p.has_inner);
        assert_string_equal(p.inner.type, "seen");
        assert_int_equal(p.inner.id, 9);
        assert_true(p.mask == 5);
        json_dispatch_clear(fields, &p);
        assert_null(p.ranges);
        assert_null(p.label);
        assert_int_equal(p.n_ranges, 0);

        /* The other form of "mask", and absent members: no presence, fd marked absent. */
        assert_int_equal(decode("{\"id\":1,\"mask\":\"0x30\",\"iova\":null}", &p, &err, &field), 0);
        assert_true(p.mask == 0x30);
        assert_false(p.has_iova);
        assert_false(p.has_inner);
        assert_int_equal(p.fd.index, JSON_DISPATCH_FD_NONE);
        assert_int_equal(p.node, -1);
}

/* Each refusal names the member by its path and the top-level member at fault. */
static void test_refusals(void **state) {
        static const struct {
                const char *json, *field, *message;
        } cases[] = {
                { "{}", "id", "id: missing" },
                { "{\"id\":null}", "id", "id: expected an unsigned integer, got null" },
                { "{\"id\":1,\"idd\":1}", "idd", "idd: unknown key" },
                { "{\"id\":\"1\"}", "id", "id: expected an unsigned integer, got a string" },
                { "{\"id\":-5}", "id", "id: -5 is negative" },
                { "{\"id\":4294967296}", "id", "id: 4294967296 is above the maximum 4294967295" },
                { "{\"id\":0.5}", "id", "id: expected an unsigned integer, got 0.5" },
                { "{\"id\":1,\"iova\":100000000000000000000}", "iova",
                  "iova: 100000000000000000000 is above the maximum 18446744073709551615" },
                { "{\"id\":1,\"iova\":-100000000000000000000}", "iova",
                  "iova: -100000000000000000000 is negative" },
                { "{\"id\":1,\"bits\":21}", "bits", "bits: 0x15 is above the maximum 0x14" },
                { "{\"id\":1,\"bits\":\"0x\"}", "bits", "bits: expected a hex string or integer, got '0x'" },
                { "{\"id\":1,\"bits\":\"0x1g\"}", "bits",
                  "bits: expected a hex string or integer, got '0x1g'" },
                { "{\"id\":1,\"vendor\":true}", "vendor",
                  "vendor: expected a hex string or integer, got a boolean" },
                { "{\"id\":1,\"node\":-2}", "node", "node: -2 is not between -1 and 1023" },
                { "{\"id\":1,\"node\":1024}", "node", "node: 1024 is not between -1 and 1023" },
                { "{\"id\":1,\"flag\":1}", "flag", "flag: expected a boolean, got an integer" },
                { "{\"id\":1,\"name\":\"123456789\"}", "name", "name: 9 bytes, at most 8 are accepted" },
                { "{\"id\":1,\"name\":\"a\\u0000b\"}", "name", "name: the string holds a NUL byte" },
                { "{\"id\":1,\"code\":\"maybe\"}", "code",
                  "code: expected \"success\" or \"invalid\", got 'maybe'" },
                { "{\"id\":1,\"code\":0}", "code",
                  "code: expected \"success\" or \"invalid\", got an integer" },
                { "{\"id\":1,\"fd\":4294967295}", "fd", "fd: 4294967295 is above the maximum 4294967294" },
                { "{\"id\":1,\"ranges\":{}}", "ranges", "ranges: expected an array, got an object" },
                { "{\"id\":1,\"ranges\":[1]}", "ranges", "ranges[0]: expected an object, got an integer" },
                { "{\"id\":1,\"ranges\":[{\"start\":1,\"last\":2},{\"start\":-1,\"last\":2}]}", "ranges",
                  "ranges[1].start: -1 is negative" },
                { "{\"id\":1,\"ranges\":[{\"start\":1}]}", "ranges", "ranges[0].last: missing" },
                { "{\"id\":1,\"ranges\":[{},{},{},{}]}", "ranges",
                  "ranges: 4 elements, at most 3 are accepted" },
                { "{\"id\":1,\"inner\":{\"type\":\"t\",\"more\":1}}", "inner", "inner.more: unknown key" },
                { "{\"id\":1,\"mask\":[\"a\",\"BB\"]}", "mask", "mask[1]: expected one letter" },
                { "{\"id\":1,\"mask\":true}", "mask", "mask: expected a hex string or integer, got a boolean" },
        };

        FOREACH_ARRAY(c, cases, ELEMENTSOF(cases)) {
                const char *field = NULL;
                Error err;
                Params p;

                printf("# %s\n", c->json);
                assert_int_equal(decode(c->json, &p, &err, &field), -EINVAL);
                assert_string_equal(err.message, c->message);
                assert_non_null(field);
                assert_string_equal(field, c->field);
                json_dispatch_clear(fields, &p);
        }
}

static void test_not_an_object(void **state) {
        json_object *o = json_tokener_parse("[]");
        const char *field = "x";
        Error err = ERROR_INIT;
        Params p = {};

        assert_int_equal(json_dispatch(o, fields, &p, "", &field, &err), -EINVAL);
        assert_string_equal(err.message, "(top level): expected an object, got an array");
        assert_null(field);
        assert_int_equal(json_dispatch(o, fields, &p, "groups[2]", &field, &err), -EINVAL);
        assert_string_equal(err.message, "groups[2]: expected an object, got an array");
        json_object_put(o);

        /* A table of nothing takes an empty object and nothing else. */
        o = json_tokener_parse("{\"a\":1}");
        assert_int_equal(json_dispatch(o, NULL, NULL, "", &field, &err), -EINVAL);
        assert_string_equal(field, "a");
        json_object_put(o);
}

/*
 * The steps a streaming tokenizer takes, without any json-c object: the same tables, the
 * same values and messages.
 */
static void test_driver_steps(void **state) {
        static const struct {
                const char *name;
                JsonDispatchValue v;
        } members[] = {
                { "id", { .kind = JSON_DISPATCH_KIND_INTEGER, .magnitude = 42 } },
                { "code", { .kind = JSON_DISPATCH_KIND_STRING, .text = "success", .length = 7 } },
                { "iova", { .kind = JSON_DISPATCH_KIND_INTEGER, .magnitude = UINT64_MAX } },
        };
        const JsonDispatchValue big = { .kind = JSON_DISPATCH_KIND_NUMBER,
                                        .text = "18446744073709551616", .length = 20 };
        Params p = { .code = 9 };
        Error err = ERROR_INIT;
        const char *field = NULL;
        uint64_t seen = 0;

        FOREACH_ARRAY(m, members, ELEMENTSOF(members)) {
                const JsonDispatchField *f =
                        json_dispatch_find(fields, m->name, strlen(m->name), m->v.kind);

                assert_non_null(f);
                assert_int_equal(json_dispatch_value(f, &m->v, &p,
                                                     &(JsonDispatchPath){ .name = m->name }, &err),
                                 0);
                assert_int_equal(json_dispatch_seen(fields, f, &seen), 0);
        }
        assert_int_equal(json_dispatch_finish(fields, seen, &p, NULL, &field, &err), 0);
        assert_int_equal(p.id, 42);
        assert_int_equal(p.code, 0);
        assert_true(p.has_iova && p.iova == UINT64_MAX);
        assert_int_equal(p.fd.index, JSON_DISPATCH_FD_NONE);

        assert_int_equal(json_dispatch_value(json_dispatch_find(fields, "iova", 4, big.kind), &big,
                                             &p, &(JsonDispatchPath){ .name = "iova" }, &err),
                         -EINVAL);
        assert_string_equal(err.message,
                            "iova: 18446744073709551616 is above the maximum 18446744073709551615");
        /* Kinds pick among entries of one name; a name not in the table finds nothing. */
        assert_int_equal(json_dispatch_find(fields, "mask", 4, JSON_DISPATCH_KIND_ARRAY)->type,
                         JSON_DISPATCH_ARRAY);
        assert_int_equal(json_dispatch_find(fields, "mask", 4, JSON_DISPATCH_KIND_STRING)->type,
                         JSON_DISPATCH_UINT64);
        assert_null(json_dispatch_find(fields, "masks", 5, JSON_DISPATCH_KIND_STRING));
        assert_null(json_dispatch_find(fields, "mas", 3, JSON_DISPATCH_KIND_STRING));
        assert_int_equal(json_dispatch_finish(fields, 0, &p, &(JsonDispatchPath){ .name = "x" },
                                              &field, &err),
                         -EINVAL);
        assert_string_equal(err.message, "x.id: missing");

        /* Paths are formatted only for messages: chains of members and elements. */
        {
                const JsonDispatchPath top = { .name = "" }, groups = { &top, "groups" },
                                       third = { &groups, NULL, 3 }, cls = { &third, "class" };
                char buf[JSON_DISPATCH_PATH_MAX], small[8];

                assert_string_equal(json_dispatch_path_format(&cls, buf, sizeof(buf)),
                                    "groups[3].class");
                assert_string_equal(json_dispatch_path_format(&top, buf, sizeof(buf)),
                                    "(top level)");
                assert_string_equal(json_dispatch_path_format(NULL, buf, sizeof(buf)),
                                    "(top level)");
                assert_string_equal(json_dispatch_path_format(&cls, small, sizeof(small)),
                                    "groups[");
        }
}

/* A document decoded twice into one struct: the first array and copied string are freed. */
static void test_decode_again(void **state) {
        json_object *o = json_tokener_parse("{\"id\":1,\"label\":\"l\",\"ranges\":[{\"start\":1,"
                                            "\"last\":1}]}");
        Error err = ERROR_INIT;
        Params p = {};

        assert_int_equal(json_dispatch(o, fields, &p, "", NULL, &err), 0);
        assert_int_equal(json_dispatch(o, fields, &p, "", NULL, &err), 0);
        assert_int_equal(p.n_ranges, 1);
        json_dispatch_clear(fields, &p);
        json_object_put(o);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_every_type),
                cmocka_unit_test(test_refusals),
                cmocka_unit_test(test_not_an_object),
                cmocka_unit_test(test_driver_steps),
                cmocka_unit_test(test_decode_again),
        };

        return cmocka_run_group_tests_name("json-dispatch", tests, NULL, NULL);
}
