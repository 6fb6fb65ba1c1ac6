/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * The table-driven parameter decoder (common/json-dispatch.h).  The input is a
 * JSON document, as the parameters of a Varlink call; it is parsed as the
 * Varlink reader does (json-c, then json_util_fix_big_integers()) and decoded
 * twice with a table of every scalar type:
 *
 *   - by json_dispatch(), the json-c tree driver;
 *   - by the driver steps a streaming tokenizer takes (json_dispatch_find(),
 *     json_dispatch_value(), json_dispatch_seen(), json_dispatch_finish()),
 *     fed with the values of the tree's members one by one.
 *
 * Both must accept and refuse the same documents, with the same member and
 * sentence, and decode the same values; every value decoded must lie within its
 * field's range and equal what the document holds.  A second table with an
 * object and arrays nests the decoding; everything it allocates is freed.
 */

#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "error.h"
#include "fuzz.h"
#include "json-dispatch-tables.h"
#include "json-dispatch.h"
#include "json-util.h"
#include "macros.h"

/* The driver steps over a flat object whose table has scalars only. */
static int steps_dispatch(json_object *o, const JsonDispatchField *table, void *target,
                          const char **ret_field, Error *err) {
        const JsonDispatchPath top = { .name = "" };
        uint64_t seen = 0;
        int r;

        *ret_field = NULL;
        if (!json_object_is_type(o, json_type_object))
                return error_set(err, -EINVAL, "(top level): expected an object, got %s",
                                 json_util_type_phrase(o));
        json_object_object_foreach(o, key, v) {
                const JsonDispatchPath path = { .parent = &top, .name = key };
                char text[JSON_DISPATCH_PATH_MAX];
                const JsonDispatchField *f;
                JsonDispatchValue value;

                json_dispatch_value_of(v, &value);
                f = json_dispatch_find(table, key, strlen(key), value.kind);
                if (!f)
                        r = error_set(err, -EINVAL, "%s: unknown key",
                                      json_dispatch_path_format(&path, text, sizeof(text)));
                else
                        r = json_dispatch_value(f, &value, target, &path, err);
                if (r >= 0)
                        r = json_dispatch_seen(table, f, &seen);
                if (r < 0) {
                        *ret_field = f ? f->name : key;
                        return r;
                }
        }
        return json_dispatch_finish(table, seen, target, &top, ret_field, err);
}

static void same_values(const Scalars *a, const Scalars *b) {
        if (a->u8 != b->u8 || a->u16 != b->u16 || a->u32 != b->u32 || a->u64 != b->u64 ||
            a->has_u64 != b->has_u64 || a->i != b->i || a->b != b->b || a->s != b->s ||
            a->e != b->e || a->fd.index != b->fd.index || a->fd.fd != b->fd.fd ||
            a->mask != b->mask || !a->copy != !b->copy || (a->copy && !streq(a->copy, b->copy)) ||
            a->nine != b->nine || a->longer != b->longer)
                abort();
}

/* What was decoded lies within each field's range and is what the document says. */
static void check_ranges(json_object *o, const Scalars *p) {
        json_object *v;

        if (p->u8 > 20 || p->u32 < 1 || p->i < -1 || p->i > 1023 || p->e > 1)
                abort();
        if (p->s && strlen(p->s) > 16)
                abort();
        if (p->has_u64 && (!json_object_object_get_ex(o, "u64", &v) ||
                           !json_object_is_type(v, json_type_int) ||
                           json_object_get_int64(v) < 0 || json_object_get_uint64(v) != p->u64))
                abort();
        if (json_object_object_get_ex(o, "u32", &v) &&
            (!json_object_is_type(v, json_type_int) || json_object_get_uint64(v) != p->u32))
                abort();
}

static void check_scalars(json_object *o) {
        Scalars a = { .i = -1 }, b = { .i = -1 };
        const char *fa = NULL, *fb = NULL;
        Error ea = ERROR_INIT, eb = ERROR_INIT;
        int ra, rb;

        ra = json_dispatch(o, scalar_fields, &a, "", &fa, &ea);
        rb = steps_dispatch(o, scalar_fields, &b, &fb, &eb);
        if (ra != rb)
                abort();
        if (ra < 0) {
                if (!fa != !fb || (fa && !streq(fa, fb)) || !streq(ea.message, eb.message))
                        abort();
        } else {
                same_values(&a, &b);
                check_ranges(o, &a);
        }
        json_dispatch_clear(scalar_fields, &a);
        json_dispatch_clear(scalar_fields, &b);
        if (a.copy || b.copy)
                abort();
}

static void check_nested(json_object *o) {
        Nested n = { .inner.i = -1 };
        Error err = ERROR_INIT;

        if (json_dispatch(o, nested_fields, &n, "", NULL, &err) >= 0) {
                if (n.n_ranges > 64 || (n.n_ranges > 0) != !!n.ranges)
                        abort();
        } else if (!err.message[0])
                abort();
        json_dispatch_clear(nested_fields, &n);
        if (n.ranges || n.n_ranges || n.inner.copy)
                abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_free_ char *text = fuzz_strndup(data, size);
        json_tokener *tok = json_tokener_new_ex(64);
        json_object *o;

        if (!tok)
                abort();
        json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
        o = json_tokener_parse_ex(tok, text, (int)size);
        json_tokener_free(tok);
        if (!o)
                return 0;
        if (json_util_fix_big_integers(o, text, size) < 0)
                abort();
        check_scalars(o);
        check_nested(o);
        json_object_put(o);
        return 0;
}
