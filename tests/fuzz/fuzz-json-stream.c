/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * The streaming reader (common/json-stream.h) against json-c.  The input is a Varlink
 * message as it arrives; it is read twice:
 *
 *   - as the Varlink reader does: json-c, strict, depth 64, whitespace only after the
 *     value, an object, then json_util_fix_big_integers(), then json_dispatch();
 *   - by json_stream_parse() and json_stream_dispatch() on a copy;
 *   - by a JsonCursor decoding straight into the struct, on another copy.
 *
 * What the streaming reader refuses, the server reads again with json-c, whose verdict
 * stands: so every message the streaming reader accepts, json-c must accept too, and the
 * decoding with the tables of every type must fail or succeed alike, naming the same member,
 * with the same values in the struct.
 */

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "error.h"
#include "fuzz.h"
#include "json-dispatch-tables.h"
#include "json-dispatch.h"
#include "json-stream.h"
#include "json-util.h"
#include "macros.h"
#include "varlink-wire.h"

/* What the Varlink reader makes of the text: the object, or NULL and why not. */
static json_object *wire_parse(const char *text, size_t size, int *ret) {
        json_tokener *tok = json_tokener_new_ex(VARLINK_JSON_MAX_DEPTH);
        json_object *o;
        size_t used;

        if (!tok)
                abort();
        json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
        o = json_tokener_parse_ex(tok, text, (int)size);
        *ret = !o && json_tokener_get_error(tok) == json_tokener_error_depth ? -ELOOP : -EBADMSG;
        used = json_tokener_get_parse_end(tok);
        json_tokener_free(tok);
        if (!o)
                return NULL;
        for (size_t i = used; i < size; i++)
                if (!strchr(" \t\r\n", text[i])) {
                        json_object_put(o);
                        return NULL;
                }
        if (!json_object_is_type(o, json_type_object)) {
                json_object_put(o);
                return NULL;
        }
        if (json_util_fix_big_integers(o, text, used) < 0)
                abort();
        *ret = 0;
        return o;
}

static bool same_string(const char *a, const char *b) {
        return !a == !b && (!a || streq(a, b));
}

static void same_scalars(const Scalars *a, const Scalars *b) {
        if (a->u8 != b->u8 || a->u16 != b->u16 || a->u32 != b->u32 || a->u64 != b->u64 ||
            a->has_u64 != b->has_u64 || a->i != b->i || a->b != b->b || !same_string(a->s, b->s) ||
            a->e != b->e || a->fd.index != b->fd.index || a->fd.fd != b->fd.fd ||
            a->mask != b->mask || !same_string(a->copy, b->copy) || a->nine != b->nine ||
            a->longer != b->longer)
                abort();
}

static void same_result(int ra, int rb, const char *fa, const char *fb) {
        if (ra != rb || (ra < 0 && !same_string(fa, fb)))
                abort();
}

static void check_scalars(json_object *o, JsonStream *s) {
        Scalars a = { .i = -1 }, b = { .i = -1 };
        const char *fa = NULL, *fb = NULL;
        Error ea = ERROR_INIT, eb = ERROR_INIT;
        int ra, rb;

        ra = json_dispatch(o, scalar_fields, &a, "", &fa, &ea);
        rb = json_stream_dispatch(s, s->tape, scalar_fields, &b, "", &fb, &eb);
        same_result(ra, rb, fa, fb);
        if (ra >= 0)
                same_scalars(&a, &b);
        json_dispatch_clear(scalar_fields, &a);
        json_dispatch_clear(scalar_fields, &b);
}

static void same_nested(const Nested *a, const Nested *b) {
        same_scalars(&a->inner, &b->inner);
        if (a->n_ranges != b->n_ranges || a->bits != b->bits)
                abort();
        for (size_t i = 0; i < a->n_ranges; i++)
                if (a->ranges[i].start != b->ranges[i].start ||
                    a->ranges[i].last != b->ranges[i].last ||
                    !same_string(a->ranges[i].name, b->ranges[i].name))
                        abort();
}

static void check_nested(json_object *o, JsonStream *s) {
        Nested a = { .inner.i = -1 }, b = { .inner.i = -1 };
        const char *fa = NULL, *fb = NULL;
        Error ea = ERROR_INIT, eb = ERROR_INIT;
        int ra, rb;

        ra = json_dispatch(o, nested_fields, &a, "", &fa, &ea);
        rb = json_stream_dispatch(s, s->tape, nested_fields, &b, "", &fb, &eb);
        same_result(ra, rb, fa, fb);
        if (ra >= 0)
                same_nested(&a, &b);
        json_dispatch_clear(nested_fields, &a);
        json_dispatch_clear(nested_fields, &b);
}

/* Whether the cursor decodes the whole text (size bytes, a fresh copy that outlives target's
 * borrowed strings) with table, and with plan when there is one. */
static bool cursor_takes(char *text, size_t size, const JsonDispatchField *table,
                         const JsonCursorPlan *plan, void *target) {
        JsonCursor c;
        int k;

        json_cursor_init(&c, text, size, VARLINK_JSON_MAX_DEPTH);
        k = plan ? json_cursor_decode_planned(&c, plan, target)
                 : json_cursor_decode_object(&c, table, target);
        return k >= 0 && json_cursor_end(&c) >= 0;
}

/*
 * The cursor with each table, with and without its plan: what it decodes json-c must accept
 * and the tables decode alike from the tree, and the plan changes neither verdict nor value;
 * what it refuses is never checked (the tape reads it).
 */
static void check_cursor(const uint8_t *data, size_t size, json_object *o) {
        static JsonCursorPlan *scalar_plan, *nested_plan; /* built once, kept for the process */
        _cleanup_free_ char *t1 = fuzz_strndup(data, size), *t2 = fuzz_strndup(data, size),
                            *t3 = fuzz_strndup(data, size), *t4 = fuzz_strndup(data, size);
        Scalars x = { .i = -1 }, y = { .i = -1 }, z = { .i = -1 };
        Nested n = { .inner.i = -1 }, m = { .inner.i = -1 }, l = { .inner.i = -1 };
        bool taken;

        if (!scalar_plan && (json_cursor_plan_new(scalar_fields, &scalar_plan) < 0 ||
                             json_cursor_plan_new(nested_fields, &nested_plan) < 0))
                abort();
        taken = cursor_takes(t1, size, scalar_fields, NULL, &x);
        if (taken != cursor_takes(t2, size, scalar_fields, scalar_plan, &z))
                abort();
        if (taken) {
                if (!o || json_dispatch(o, scalar_fields, &y, "", NULL, NULL) < 0)
                        abort();
                same_scalars(&x, &y);
                same_scalars(&x, &z);
        }
        taken = cursor_takes(t3, size, nested_fields, NULL, &n);
        if (taken != cursor_takes(t4, size, nested_fields, nested_plan, &l))
                abort();
        if (taken) {
                if (!o || json_dispatch(o, nested_fields, &m, "", NULL, NULL) < 0)
                        abort();
                same_nested(&n, &m);
                same_nested(&n, &l);
        }
        json_dispatch_clear(scalar_fields, &x);
        json_dispatch_clear(scalar_fields, &y);
        json_dispatch_clear(scalar_fields, &z);
        json_dispatch_clear(nested_fields, &n);
        json_dispatch_clear(nested_fields, &m);
        json_dispatch_clear(nested_fields, &l);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_free_ char *text = fuzz_strndup(data, size), *copy = fuzz_strndup(data, size);
        static JsonStreamToken tape[4096];
        JsonStream s = { .tape = tape, .n_tape = ELEMENTSOF(tape) };
        Error err = ERROR_INIT;
        json_object *o;
        int rw, rs;

        /* The wire splits messages at NUL: a message never holds one. */
        if (memchr(data, 0, size))
                return 0;
        o = wire_parse(text, size, &rw);
        rs = json_stream_parse(&s, copy, size, VARLINK_JSON_MAX_DEPTH, &err);
        if (rs >= 0 && rw < 0)
                abort();
        if (rs >= 0) {
                check_scalars(o, &s);
                check_nested(o, &s);
        }
        check_cursor(data, size, o);
        json_object_put(o);
        return 0;
}
