/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "json-dispatch.h"
#include "json-stream.h"
#include "macros.h"

typedef struct MapParams {
        uint32_t ioas_id;
        JsonDispatchFd memory;
        uint64_t offset, length, iova;
        bool readable, writeable;
        const char *name;
} MapParams;

static const JsonDispatchField map_fields[] = {
        { "ioasId", JSON_DISPATCH_UINT32, JSON_DISPATCH_REQUIRED, offsetof(MapParams, ioas_id) },
        { "memoryFd", JSON_DISPATCH_FD_INDEX, JSON_DISPATCH_REQUIRED,
          offsetof(MapParams, memory) },
        { "offset", JSON_DISPATCH_UINT64, 0, offsetof(MapParams, offset) },
        { "length", JSON_DISPATCH_UINT64, JSON_DISPATCH_REQUIRED, offsetof(MapParams, length) },
        { "iova", JSON_DISPATCH_UINT64, JSON_DISPATCH_REQUIRED, offsetof(MapParams, iova) },
        { "readable", JSON_DISPATCH_BOOL, 0, offsetof(MapParams, readable) },
        { "writeable", JSON_DISPATCH_BOOL, 0, offsetof(MapParams, writeable) },
        { "name", JSON_DISPATCH_STRING, JSON_DISPATCH_NULLABLE, offsetof(MapParams, name) },
        {},
};

typedef struct IovaPair {
        uint64_t start, last;
} IovaPair;

static const JsonDispatchField pair_fields[] = {
        { "start", JSON_DISPATCH_UINT64, JSON_DISPATCH_REQUIRED, offsetof(IovaPair, start) },
        { "last", JSON_DISPATCH_UINT64, JSON_DISPATCH_REQUIRED, offsetof(IovaPair, last) },
        {},
};

static const JsonDispatchField pair_element = {
        .type = JSON_DISPATCH_OBJECT,
        .fields = pair_fields,
};

static const JsonDispatchField ranges_fields[] = {
        { "pairs", JSON_DISPATCH_ARRAY, JSON_DISPATCH_REQUIRED, 0, .element = &pair_element,
          .element_size = sizeof(IovaPair), .count_offset = sizeof(void *) },
        {},
};

static const JsonDispatchField envelope_fields[] = {
        { "method", JSON_DISPATCH_STRING, JSON_DISPATCH_REQUIRED, 0 },
        {},
};

/* Parses text (copied: the reader decodes in place) with a tape of n tokens. */
static int parse(JsonStream *s, char *buf, size_t size, const char *text, size_t n) {
        static JsonStreamToken tape[64];
        Error err = ERROR_INIT;

        assert_true(strlen(text) < size && n <= ELEMENTSOF(tape));
        strcpy(buf, text);
        *s = (JsonStream){ .tape = tape, .n_tape = n };
        return json_stream_parse(s, buf, strlen(buf), 4, &err);
}

static void test_map(void **state) {
        char buf[512];
        JsonStream s;
        MapParams p = {};
        const JsonStreamToken *params;
        const char *field = NULL;
        Error err = ERROR_INIT;

        (void)state;
        assert_int_equal(parse(&s, buf, sizeof(buf),
                               " {\"method\":\"org.iommud.Broker.Map\",\"parameters\":{\"ioasId\":7,"
                               "\"memoryFd\":0,\"length\":4096,\"iova\":18446744073709547520,"
                               "\"readable\":true,\"writeable\":false,"
                               "\"name\":\"a\\u00e9\\ud83d\\ude00\\n\"}}\n",
                               64),
                         0);
        params = json_stream_member(&s, s.tape, "parameters");
        assert_non_null(params);
        assert_null(json_stream_member(&s, s.tape, "oneway"));
        assert_int_equal(json_stream_dispatch(&s, params, map_fields, &p, "", &field, &err), 0);
        assert_int_equal(p.ioas_id, 7);
        assert_int_equal(p.memory.index, 0);
        assert_int_equal(p.length, 4096);
        assert_true(p.iova == UINT64_C(18446744073709547520));
        assert_true(p.readable);
        assert_false(p.writeable);
        assert_string_equal(p.name, "a\xc3\xa9\xf0\x9f\x98\x80\n");
}

static void test_dispatch_refusals(void **state) {
        static const char *const bad[] = {
                "{\"ioasId\":-1,\"memoryFd\":0,\"length\":1,\"iova\":0}",
                "{\"ioasId\":1,\"memoryFd\":0,\"length\":1.5,\"iova\":0}",
                "{\"ioasId\":1,\"memoryFd\":0,\"length\":1}",
                "{\"ioasId\":1,\"memoryFd\":0,\"length\":1,\"iova\":0,\"extra\":1}",
                "{\"ioasId\":1,\"memoryFd\":0,\"length\":1,\"iova\":99999999999999999999}",
        };
        static const char *const field[] = { "ioasId", "length", "iova", "extra", "iova" };

        (void)state;
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                char buf[512];
                JsonStream s;
                MapParams p = {};
                const char *f = NULL;
                Error err = ERROR_INIT;

                assert_int_equal(parse(&s, buf, sizeof(buf), bad[i], 64), 0);
                assert_int_equal(json_stream_dispatch(&s, s.tape, map_fields, &p, "", &f, &err),
                                 -EINVAL);
                assert_string_equal(f, field[i]);
                assert_true(err.message[0] != '\0');
        }
}

/* What the reader leaves to json-c: not plain JSON, duplicates, too deep, too long. */
static void test_parse_refusals(void **state) {
        static const char *const bad[] = {
                "", "[]", "{'method':1}", "{\"a\":NaN}", "{\"a\":01}", "{\"a\":1,}",
                "{\"a\":1} x", "{\"a\":1,\"a\":2}", "{\"a\":\"\\x\"}", "{\"a\":\"\\ud83\"}",
                "{\"a\":[[[[1]]]]}", "{\"a\":1", "{\"a\":-}", "{\"a\":tru}",
        };
        static const int code[] = {
                -EBADMSG, -EBADMSG, -EBADMSG, -EBADMSG, -EBADMSG, -EBADMSG, -EBADMSG,
                -EBADMSG, -EBADMSG, -EBADMSG, -ELOOP, -EBADMSG, -EBADMSG, -EBADMSG,
        };
        char buf[512];
        JsonStream s;

        (void)state;
        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                assert_int_equal(parse(&s, buf, sizeof(buf), bad[i], 64), code[i]);
        /* Names are compared only when their sketches meet: "b", "ba" and "abc" share one. */
        assert_int_equal(parse(&s, buf, sizeof(buf), "{\"b\":1,\"ba\":2,\"abc\":3}", 64), 0);
        assert_int_equal(parse(&s, buf, sizeof(buf), "{\"ba\":1,\"b\":2,\"ba\":3}", 64),
                         -EBADMSG);
        assert_int_equal(parse(&s, buf, sizeof(buf), "{\"x\":{\"q\":1,\"q\":1}}", 64),
                         -EBADMSG);
        /* A name with a NUL inside is json-c's to read (it keeps names up to the NUL). */
        assert_int_equal(parse(&s, buf, sizeof(buf), "{\"a\\u0000b\":1}", 64), -EBADMSG);
        /* Four levels are allowed, and a tape of exactly the values it needs is enough. */
        assert_int_equal(parse(&s, buf, sizeof(buf), "{\"a\":[[[1]]]}", 64), 0);
        assert_int_equal(parse(&s, buf, sizeof(buf), "{\"a\":[[[1]]]}", 6), 0);
        assert_int_equal(parse(&s, buf, sizeof(buf), "{\"a\":[[[1]]]}", 5), -E2BIG);
}

static void test_decoded_in_place(void **state) {
        char buf[128];
        JsonStream s;
        const JsonStreamToken *m;
        const char *method = NULL, *f = NULL;
        Error err = ERROR_INIT;

        (void)state;
        assert_int_equal(parse(&s, buf, sizeof(buf), "{\"method\":\"a\\\"b\\u0000c\"}", 64), 0);
        m = json_stream_member(&s, s.tape, "method");
        assert_non_null(m);
        assert_int_equal(m->length, 5);
        assert_memory_equal(m->text, "a\"b\0c", 6);
        /* A NUL inside is refused by the string rule, as json_dispatch() does. */
        assert_int_equal(json_stream_dispatch(&s, s.tape, envelope_fields, &method, "", &f, &err),
                         -EINVAL);
        assert_string_equal(f, "method");
}

typedef struct Ranges {
        IovaPair *pairs;
        size_t n_pairs;
} Ranges;

/*
 * Decodes text with a cursor into a zeroed target with table, and again with the table's plan
 * into a copy of it, which must come out alike: the cursor's verdict.
 */
static int cursor(char *buf, size_t size, const char *text, const JsonDispatchField *table,
                  void *target) {
        JsonCursorPlan *plan = NULL;
        char planned[512], copy[2048];
        JsonCursor c;
        int r, k;

        assert_true(strlen(text) < size && strlen(text) < sizeof(copy));
        assert_int_equal(json_cursor_plan_new(table, &plan), 0);
        strcpy(copy, text);
        memset(planned, 0, sizeof(planned));
        json_cursor_init(&c, copy, strlen(copy), 4);
        k = json_cursor_decode_planned(&c, plan, planned);
        k = k < 0 ? k : json_cursor_end(&c);
        json_cursor_plan_free(plan);

        strcpy(buf, text);
        json_cursor_init(&c, buf, strlen(buf), 4);
        r = json_cursor_decode_object(&c, table, target);
        r = r < 0 ? r : json_cursor_end(&c);
        assert_int_equal(k, r);
        if (r >= 0 && table == map_fields) {
                MapParams *a = target, *b = (MapParams *)planned;

                assert_int_equal(a->ioas_id, b->ioas_id);
                assert_int_equal(a->memory.index, b->memory.index);
                assert_int_equal(a->memory.fd, b->memory.fd);
                assert_int_equal(a->length, b->length);
                assert_int_equal(a->iova, b->iova);
                assert_int_equal(a->readable, b->readable);
                assert_int_equal(a->writeable, b->writeable);
        } else if (r >= 0 && table == ranges_fields) {
                Ranges *a = target, *b = (Ranges *)planned;

                assert_int_equal(a->n_pairs, b->n_pairs);
                assert_memory_equal(a->pairs, b->pairs, a->n_pairs * sizeof(*a->pairs));
        }
        json_dispatch_clear(table, planned);
        return r;
}

/* The cursor decodes what is plain and right as the tape does, in one pass. */
static void test_cursor(void **state) {
        char buf[2048], text[2048];
        MapParams p = {};
        Ranges r = {};
        int n;

        (void)state;
        assert_int_equal(cursor(buf, sizeof(buf),
                                " {\"ioasId\":3, \"memoryFd\":0,\"offset\":0,\"length\":4096,"
                                "\"iova\":65536,\"readable\":true,\"writeable\":false,"
                                "\"name\":\"a\\tb\"} ", map_fields, &p), 0);
        assert_int_equal(p.ioas_id, 3);
        assert_int_equal(p.memory.index, 0);
        assert_int_equal(p.memory.fd, -EBADF);
        assert_int_equal(p.length, 4096);
        assert_int_equal(p.iova, 65536);
        assert_true(p.readable);
        assert_false(p.writeable);
        assert_string_equal(p.name, "a\tb");

        /* An array grows past its first sixteen elements. */
        n = snprintf(text, sizeof(text), "{\"pairs\":[");
        for (int i = 0; i < 40; i++)
                n += snprintf(text + n, sizeof(text) - (size_t)n, "%s{\"start\":%d,\"last\":%d}",
                              i ? "," : "", i * 10, i * 10 + 9);
        snprintf(text + n, sizeof(text) - (size_t)n, "]}");
        assert_int_equal(cursor(buf, sizeof(buf), text, ranges_fields, &r), 0);
        assert_int_equal(r.n_pairs, 40);
        assert_int_equal(r.pairs[39].start, 390);
        assert_int_equal(r.pairs[39].last, 399);
        json_dispatch_clear(ranges_fields, &r);
}

/* Whatever is not plain and right is left to the tape (-EAGAIN), with nothing leaked. */
static void test_cursor_refusals(void **state) {
        static const char *const bad[] = {
                "{\"ioasId\":1,\"ioasId\":2,\"length\":1,\"iova\":0,\"memoryFd\":0}",
                "{\"ioasId\":1,\"length\":1,\"iova\":0,\"memoryFd\":0,\"other\":0}",
                "{\"io\\u0061sId\":1,\"length\":1,\"iova\":0,\"memoryFd\":0}",
                "{\"ioasId\":1.0,\"length\":1,\"iova\":0,\"memoryFd\":0}",
                "{\"ioasId\":1,\"length\":1,\"iova\":0}",
                "{\"ioasId\":1,\"length\":1,\"iova\":0,\"memoryFd\":0,}",
                "{\"ioasId\":1 \"length\":1,\"iova\":0,\"memoryFd\":0}",
                "{\"ioasId\":-1,\"length\":1,\"iova\":0,\"memoryFd\":0}",
                "{\"ioasId\":1,\"length\":1,\"iova\":0,\"memoryFd\":0} x",
                "{\"ioasId\":1,\"length\":1,\"iova\":0,\"memoryFd\":0",
                "{\"ioasId\":1,\"length\":1,\"iova\":0,\"memoryFd\":0,\"name\":\"a\\u0000\"}",
        };
        static const char *const bad_ranges[] = {
                "{\"pairs\":[{\"start\":1,\"last\":2},{\"start\":1}]}",
                "{\"pairs\":[{\"start\":1,\"last\":2},]}",
                "{\"pairs\":[[[[1]]]]}",
        };
        char buf[512];

        (void)state;
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                MapParams p = {};

                assert_int_equal(cursor(buf, sizeof(buf), bad[i], map_fields, &p), -EAGAIN);
        }
        for (size_t i = 0; i < ELEMENTSOF(bad_ranges); i++) {
                Ranges r = {};

                assert_int_equal(cursor(buf, sizeof(buf), bad_ranges[i], ranges_fields, &r),
                                 -EAGAIN);
                json_dispatch_clear(ranges_fields, &r);
        }
}

/* A member name or string compared in place matches only whole, and moves nothing else. */
static void test_cursor_compares_in_place(void **state) {
        static const struct {
                const char *text;
                bool member, string;
        } cases[] = {
                { "{\"method\":\"a.b.C\"}", true, true },
                { "{ \"method\" : \"a.b.C\" }", true, true },
                { "{\"methods\":\"a.b.Cd\"}", false, false },
                { "{\"metho\":\"a.b.\"}", false, false },
                { "{\"m\\u0065thod\":\"a.b\\u002eC\"}", false, false },
                { "{\"method", false, false },
                { "{\"method\":\"a.b.C", true, false },
                { "{\"method\":1}", true, false },
                { "{\"method\":\"a.b.Cd\"}", true, false },
                { "{\"method\":\"a.b.\"}", true, false },
        };
        char buf[128];

        (void)state;
        FOREACH_ARRAY(k, cases, ELEMENTSOF(cases)) {
                JsonCursor c;
                char *before;

                strcpy(buf, k->text);
                json_cursor_init(&c, buf, strlen(buf), 4);
                assert_int_equal(json_cursor_enter_object(&c), 0);
                before = c.r.p;
                assert_int_equal(json_cursor_member_is(&c, "method", 6), k->member);
                if (!k->member) {
                        assert_ptr_equal(c.r.p, before);
                        continue;
                }
                before = c.r.p;
                assert_int_equal(json_cursor_string_is(&c, "a.b.C", 5), k->string);
                if (!k->string)
                        assert_ptr_equal(c.r.p, before);
                else
                        assert_int_equal(json_cursor_next_member(&c, &(const char *){ NULL },
                                                                 &(size_t){ 0 }), 0);
        }
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_map),
                cmocka_unit_test(test_dispatch_refusals),
                cmocka_unit_test(test_parse_refusals),
                cmocka_unit_test(test_decoded_in_place),
                cmocka_unit_test(test_cursor),
                cmocka_unit_test(test_cursor_refusals),
                cmocka_unit_test(test_cursor_compares_in_place),
        };

        return cmocka_run_group_tests_name("json-stream", tests, NULL, NULL);
}
