/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "assert-util.h"
#include "json-dispatch.h"
#include "json-util.h"

#define TABLE_MAX 64

/* ---- messages ---------------------------------------------------------------------------- */

/* Appends path to buf (size bytes, at least 1) from offset n; returns the new length. */
static size_t path_append(const JsonDispatchPath *path, char *buf, size_t size) {
        size_t n = path->parent ? path_append(path->parent, buf, size) : 0;
        int k;

        if (n + 1 >= size)
                return n;
        if (path->name)
                k = snprintf(buf + n, size - n, "%s%s", n > 0 && path->name[0] ? "." : "",
                             path->name);
        else
                k = snprintf(buf + n, size - n, "[%zu]", path->index);
        return k < 0 ? n : MIN(n + (size_t)k, size - 1);
}

const char *json_dispatch_path_format(const JsonDispatchPath *path, char *buf, size_t size) {
        assert_return(buf && size > 0, "");

        /* A path that does not fit is cut short: it only ever goes into a message. */
        buf[0] = '\0';
        if (!path || path_append(path, buf, size) == 0)
                (void)snprintf(buf, size, "(top level)");
        return buf;
}

/* The path as text, in a buffer that lives as long as the enclosing block: for messages only. */
#define path_or_top(path)                                                                          \
        json_dispatch_path_format((path), (char[JSON_DISPATCH_PATH_MAX]){ 0 },                     \
                                  JSON_DISPATCH_PATH_MAX)

static const char *kind_phrase(const JsonDispatchValue *v) {
        switch (v->kind) {
        case JSON_DISPATCH_KIND_NULL:
                return "null";
        case JSON_DISPATCH_KIND_BOOLEAN:
                return "a boolean";
        case JSON_DISPATCH_KIND_INTEGER:
                return "an integer";
        case JSON_DISPATCH_KIND_NUMBER:
                return v->text ?: "a number";
        case JSON_DISPATCH_KIND_STRING:
                return "a string";
        case JSON_DISPATCH_KIND_ARRAY:
                return "an array";
        case JSON_DISPATCH_KIND_OBJECT:
                return "an object";
        }
        return "an unknown value";
}

/* "\"a\", \"b\" or \"c\"" */
static void enum_phrase(const JsonDispatchEnum *enums, char *buf, size_t size) {
        size_t n = 0, used = 0;

        while (enums[n].name)
                n++;
        buf[0] = '\0';
        for (size_t i = 0; i < n && used < size; i++) {
                int k = snprintf(buf + used, size - used, "%s\"%s\"",
                                 i == 0 ? "" : i + 1 == n ? " or " : ", ", enums[i].name);
                used += k > 0 ? (size_t)k : 0;
        }
}

static const char *expected_phrase(const JsonDispatchField *f, char *buf, size_t size) {
        switch (f->type) {
        case JSON_DISPATCH_BOOL:
                return "a boolean";
        case JSON_DISPATCH_UINT8:
        case JSON_DISPATCH_UINT16:
        case JSON_DISPATCH_UINT32:
        case JSON_DISPATCH_UINT64:
                return f->flags & JSON_DISPATCH_HEX ? "a hex string or integer"
                                                    : "an unsigned integer";
        case JSON_DISPATCH_INT:
                return "an integer";
        case JSON_DISPATCH_STRING:
                return "a string";
        case JSON_DISPATCH_ENUM:
                enum_phrase(f->enums, buf, size);
                return buf;
        case JSON_DISPATCH_FD_INDEX:
                return "an fd index";
        case JSON_DISPATCH_OBJECT:
                return "an object";
        case JSON_DISPATCH_ARRAY:
                return "an array";
        case JSON_DISPATCH_CUSTOM:
                break;
        }
        return "another value";
}

static int fail_type(const JsonDispatchField *f, const JsonDispatchValue *v, const JsonDispatchPath *path,
                     Error *err) {
        char buf[256];

        return error_set(err, -EINVAL, "%s: expected %s, got %s", path_or_top(path),
                         expected_phrase(f, buf, sizeof(buf)), kind_phrase(v));
}

static void mark_present(const JsonDispatchField *f, void *target) {
        if (f->presence > 0)
                *(bool *)((uint8_t *)target + f->presence - 1) = true;
}

/* ---- scalars ----------------------------------------------------------------------------- */

static uint64_t unsigned_type_max(JsonDispatchType t) {
        switch (t) {
        case JSON_DISPATCH_UINT8:
                return UINT8_MAX;
        case JSON_DISPATCH_UINT16:
                return UINT16_MAX;
        case JSON_DISPATCH_UINT32:
                return UINT32_MAX;
        case JSON_DISPATCH_FD_INDEX:
                return JSON_DISPATCH_FD_NONE - 1;
        default:
                return UINT64_MAX;
        }
}

static void format_unsigned(const JsonDispatchField *f, uint64_t u, char *buf, size_t size) {
        (void)snprintf(buf, size, f->flags & JSON_DISPATCH_HEX ? "0x%" PRIx64 : "%" PRIu64, u);
}

/* A NUMBER whose literal has no fraction or exponent: an integer beyond 64 bits. */
static bool number_is_big_integer(const JsonDispatchValue *v) {
        const char *p = v->text;

        if (!p)
                return false;
        p += *p == '-';
        return *p && strspn(p, "0123456789") == strlen(p);
}

/* "0x" and 1 to 16 hex digits. */
static int parse_hex(const JsonDispatchValue *v, uint64_t *ret) {
        char *end;

        if (v->length < 3 || v->length > 18 || !strneq(v->text, "0x", 2) ||
            strspn(v->text + 2, "0123456789abcdefABCDEF") != v->length - 2)
                return -EINVAL;
        errno = 0;
        *ret = strtoull(v->text + 2, &end, 16);
        return errno || *end ? -EINVAL : 0;
}

/* The unsigned value of v, or a message saying why there is none. */
static int value_unsigned(const JsonDispatchField *f, const JsonDispatchValue *v, uint64_t *ret,
                          const JsonDispatchPath *path, Error *err) {
        char limit[32];

        switch (v->kind) {
        case JSON_DISPATCH_KIND_INTEGER:
                if (v->negative && v->magnitude > 0)
                        return error_set(err, -EINVAL, "%s: -%" PRIu64 " is negative",
                                         path_or_top(path), v->magnitude);
                *ret = v->magnitude;
                return 0;
        case JSON_DISPATCH_KIND_STRING:
                if (!(f->flags & JSON_DISPATCH_HEX))
                        break;
                if (parse_hex(v, ret) < 0)
                        return error_set(err, -EINVAL,
                                         "%s: expected a hex string or integer, got '%s'",
                                         path_or_top(path), v->text);
                return 0;
        case JSON_DISPATCH_KIND_NUMBER:
                if (!number_is_big_integer(v))
                        break;
                if (v->text[0] == '-')
                        return error_set(err, -EINVAL, "%s: %s is negative", path_or_top(path),
                                         v->text);
                format_unsigned(f, f->max ?: unsigned_type_max(f->type), limit, sizeof(limit));
                return error_set(err, -EINVAL, "%s: %s is above the maximum %s",
                                 path_or_top(path), v->text, limit);
        default:
                break;
        }
        return fail_type(f, v, path, err);
}

/* Stores u, within f's range, where f's member lives in the struct at p. */
static void store_unsigned(const JsonDispatchField *f, uint64_t u, void *p) {
        switch (f->type) {
        case JSON_DISPATCH_UINT8:
                *(uint8_t *)p = (uint8_t)u;
                break;
        case JSON_DISPATCH_UINT16:
                *(uint16_t *)p = (uint16_t)u;
                break;
        case JSON_DISPATCH_UINT32:
                *(uint32_t *)p = (uint32_t)u;
                break;
        case JSON_DISPATCH_FD_INDEX:
                *(JsonDispatchFd *)p = (JsonDispatchFd){ .index = (uint32_t)u, .fd = -EBADF };
                break;
        default:
                *(uint64_t *)p = u;
        }
}

static bool unsigned_in_range(const JsonDispatchField *f, uint64_t u) {
        return u <= (f->max ?: unsigned_type_max(f->type)) && (f->min <= 0 || u >= (uint64_t)f->min);
}

int json_dispatch_unsigned(const JsonDispatchField *f, uint64_t u, void *target) {
        if (!unsigned_in_range(f, u))
                return -ERANGE;
        store_unsigned(f, u, (uint8_t *)target + f->offset);
        mark_present(f, target);
        return 0;
}

static int dispatch_unsigned(const JsonDispatchField *f, const JsonDispatchValue *v, void *p,
                             const JsonDispatchPath *path, Error *err) {
        uint64_t u = 0, max = f->max ?: unsigned_type_max(f->type);
        char shown[32], limit[32];
        int r;

        r = value_unsigned(f, v, &u, path, err);
        if (r < 0)
                return r;
        if (u > max) {
                format_unsigned(f, u, shown, sizeof(shown));
                format_unsigned(f, max, limit, sizeof(limit));
                return error_set(err, -EINVAL, "%s: %s is above the maximum %s",
                                 path_or_top(path), shown, limit);
        }
        if (f->min > 0 && u < (uint64_t)f->min) {
                format_unsigned(f, u, shown, sizeof(shown));
                format_unsigned(f, (uint64_t)f->min, limit, sizeof(limit));
                return error_set(err, -EINVAL, "%s: %s is below the minimum %s",
                                 path_or_top(path), shown, limit);
        }
        store_unsigned(f, u, p);
        return 0;
}

static int dispatch_int(const JsonDispatchField *f, const JsonDispatchValue *v, int *p,
                        const JsonDispatchPath *path, Error *err) {
        bool ranged = f->min != 0 || f->max != 0;
        int64_t lo = ranged ? f->min : INT_MIN, hi = ranged ? (int64_t)f->max : INT_MAX;

        if (v->kind == JSON_DISPATCH_KIND_NUMBER && number_is_big_integer(v))
                return error_set(err, -EINVAL, "%s: %s is not between %" PRIi64 " and %" PRIi64,
                                 path_or_top(path), v->text, lo, hi);
        if (v->kind != JSON_DISPATCH_KIND_INTEGER)
                return fail_type(f, v, path, err);
        /* Both bounds fit in an int64_t, so a magnitude beyond it is out of range either way. */
        if (v->magnitude > (uint64_t)INT64_MAX ||
            (v->negative ? -(int64_t)v->magnitude < lo : (int64_t)v->magnitude > hi))
                return error_set(err, -EINVAL, "%s: %s%" PRIu64 " is not between %" PRIi64
                                 " and %" PRIi64, path_or_top(path), v->negative ? "-" : "",
                                 v->magnitude, lo, hi);
        *p = (int)(v->negative ? -(int64_t)v->magnitude : (int64_t)v->magnitude);
        return 0;
}

static int dispatch_string(const JsonDispatchField *f, const JsonDispatchValue *v, void *p,
                           const JsonDispatchPath *path, Error *err) {
        char *copy;

        if (v->kind != JSON_DISPATCH_KIND_STRING)
                return fail_type(f, v, path, err);
        if (strlen(v->text) != v->length)
                return error_set(err, -EINVAL, "%s: the string holds a NUL byte",
                                 path_or_top(path));
        if (f->max > 0 && v->length > f->max)
                return error_set(err, -EINVAL, "%s: %zu bytes, at most %" PRIu64 " are accepted",
                                 path_or_top(path), v->length, f->max);
        if (!(f->flags & JSON_DISPATCH_COPY)) {
                *(const char **)p = v->text;
                return 0;
        }
        copy = strdup(v->text);
        if (!copy)
                return error_set(err, -ENOMEM, "out of memory");
        free(*(char **)p);
        *(char **)p = copy;
        return 0;
}

static int dispatch_enum(const JsonDispatchField *f, const JsonDispatchValue *v, uint32_t *p,
                         const JsonDispatchPath *path, Error *err) {
        char buf[256];

        if (v->kind == JSON_DISPATCH_KIND_STRING && strlen(v->text) == v->length)
                for (const JsonDispatchEnum *e = f->enums; e && e->name; e++)
                        if (streq(e->name, v->text)) {
                                *p = e->value;
                                return 0;
                        }
        if (v->kind != JSON_DISPATCH_KIND_STRING)
                return fail_type(f, v, path, err);
        return error_set(err, -EINVAL, "%s: expected %s, got '%s'", path_or_top(path),
                         expected_phrase(f, buf, sizeof(buf)), v->text);
}

static int dispatch_scalar(const JsonDispatchField *f, const JsonDispatchValue *v, void *p,
                           const JsonDispatchPath *path, Error *err) {
        switch (f->type) {
        case JSON_DISPATCH_BOOL:
                if (v->kind != JSON_DISPATCH_KIND_BOOLEAN)
                        return fail_type(f, v, path, err);
                *(bool *)p = v->boolean;
                return 0;
        case JSON_DISPATCH_UINT8:
        case JSON_DISPATCH_UINT16:
        case JSON_DISPATCH_UINT32:
        case JSON_DISPATCH_UINT64:
        case JSON_DISPATCH_FD_INDEX:
                return dispatch_unsigned(f, v, p, path, err);
        case JSON_DISPATCH_INT:
                return dispatch_int(f, v, p, path, err);
        case JSON_DISPATCH_STRING:
                return dispatch_string(f, v, p, path, err);
        case JSON_DISPATCH_ENUM:
                return dispatch_enum(f, v, p, path, err);
        case JSON_DISPATCH_CUSTOM:
                assert_return(f->callback, -EINVAL);
                return f->callback(v, p, path, err);
        case JSON_DISPATCH_OBJECT:
        case JSON_DISPATCH_ARRAY:
                break;
        }
        /* A container's value reaches here only when it is of another kind. */
        return fail_type(f, v, path, err);
}

int json_dispatch_value(const JsonDispatchField *f, const JsonDispatchValue *v, void *target,
                        const JsonDispatchPath *path, Error *err) {
        int r;

        assert_return(f && v && target, -EINVAL);

        if (v->kind == JSON_DISPATCH_KIND_NULL && (f->flags & JSON_DISPATCH_NULLABLE))
                return 0;
        r = dispatch_scalar(f, v, (uint8_t *)target + f->offset, path, err);
        if (r < 0)
                return r;
        mark_present(f, target);
        return 0;
}

/* ---- tables ------------------------------------------------------------------------------ */

static bool type_takes(JsonDispatchType t, JsonDispatchKind k) {
        if (k == JSON_DISPATCH_KIND_ARRAY)
                return t == JSON_DISPATCH_ARRAY;
        if (k == JSON_DISPATCH_KIND_OBJECT)
                return t == JSON_DISPATCH_OBJECT;
        return t != JSON_DISPATCH_ARRAY && t != JSON_DISPATCH_OBJECT;
}

/* Entries of one name sit in a row from f on: the first that takes the kind, else the last. */
static const JsonDispatchField *pick_kind(const JsonDispatchField *f, JsonDispatchKind kind) {
        for (;; f++)
                if (type_takes(f->type, kind) || !f[1].name || !streq(f[1].name, f->name))
                        return f;
}

const JsonDispatchField *json_dispatch_find(const JsonDispatchField *table, const char *name,
                                            size_t len, JsonDispatchKind kind) {
        const JsonDispatchField *f = table;

        if (!table || !name)
                return NULL;
        while (f->name && !json_dispatch_name_is(f->name, name, len))
                f++;
        return f->name ? pick_kind(f, kind) : NULL;
}

const JsonDispatchField *json_dispatch_find_next(const JsonDispatchField *table,
                                                 const JsonDispatchField *last, const char *name,
                                                 size_t len, JsonDispatchKind kind) {
        const JsonDispatchField *f = last ? last + 1 : NULL;

        /* Members mostly come in the table's order: the entry after the last one is tried
         * first, if it starts the run of its name. */
        if (f && f->name && name && json_dispatch_name_is(f->name, name, len) && !json_dispatch_name_is(last->name, name, len))
                return pick_kind(f, kind);
        return json_dispatch_find(table, name, len, kind);
}

int json_dispatch_seen(const JsonDispatchField *table, const JsonDispatchField *f,
                       uint64_t *seen) {
        size_t i;

        assert_return(table && f && seen && f >= table, -EINVAL);
        i = (size_t)(f - table);
        assert_return(i < TABLE_MAX, -E2BIG);
        *seen |= UINT64_C(1) << i;
        return 0;
}

static bool same_name(const JsonDispatchField *a, const JsonDispatchField *b) {
        return json_dispatch_same_name(a->name, b->name);
}

/* True when an entry named like table[i] was given: one of the run of that name around it. */
static bool name_seen(const JsonDispatchField *table, size_t i, uint64_t seen) {
        size_t first = i, last = i;

        while (first > 0 && same_name(&table[first - 1], &table[i]))
                first--;
        while (last + 1 < TABLE_MAX && table[last + 1].name && same_name(&table[last + 1], &table[i]))
                last++;
        for (size_t k = first; k <= last; k++)
                if (seen & (UINT64_C(1) << k))
                        return true;
        return false;
}

int json_dispatch_finish(const JsonDispatchField *table, uint64_t seen, void *target,
                         const JsonDispatchPath *path, const char **ret_field, Error *err) {
        for (size_t i = 0; table && table[i].name; i++) {
                const JsonDispatchField *f = &table[i];

                assert_return(i < TABLE_MAX, -E2BIG);
                if ((seen & (UINT64_C(1) << i)) ||
                    (!(f->flags & JSON_DISPATCH_REQUIRED) && f->type != JSON_DISPATCH_FD_INDEX) ||
                    name_seen(table, i, seen))
                        continue;
                if (f->flags & JSON_DISPATCH_REQUIRED) {
                        const JsonDispatchPath member = { .parent = path, .name = f->name };

                        if (ret_field)
                                *ret_field = f->name;
                        return error_set(err, -EINVAL, "%s: missing", path_or_top(&member));
                }
                if (f->type == JSON_DISPATCH_FD_INDEX)
                        *(JsonDispatchFd *)((uint8_t *)target + f->offset) =
                                (JsonDispatchFd){ .index = JSON_DISPATCH_FD_NONE, .fd = -EBADF };
        }
        return 0;
}

/* ---- the json-c driver ------------------------------------------------------------------- */

void json_dispatch_value_of(json_object *o, JsonDispatchValue *ret) {
        int64_t i;

        assert(ret);
        *ret = (JsonDispatchValue){};
        switch (json_object_get_type(o)) {
        case json_type_null:
                ret->kind = JSON_DISPATCH_KIND_NULL;
                break;
        case json_type_boolean:
                ret->kind = JSON_DISPATCH_KIND_BOOLEAN;
                ret->boolean = json_object_get_boolean(o);
                break;
        case json_type_int:
                ret->kind = JSON_DISPATCH_KIND_INTEGER;
                /* json-c keeps values above INT64_MAX as unsigned; int64 reads INT64_MAX. */
                i = json_object_get_int64(o);
                ret->negative = i < 0;
                ret->magnitude = i < 0 ? (uint64_t)0 - (uint64_t)i : json_object_get_uint64(o);
                break;
        case json_type_double:
                /* A parsed double keeps its literal, which messages quote. */
                ret->kind = JSON_DISPATCH_KIND_NUMBER;
                ret->text = json_object_get_string(o);
                ret->length = strlen(ret->text);
                break;
        case json_type_string:
                ret->kind = JSON_DISPATCH_KIND_STRING;
                ret->text = json_object_get_string(o);
                ret->length = (size_t)json_object_get_string_len(o);
                break;
        case json_type_array:
                ret->kind = JSON_DISPATCH_KIND_ARRAY;
                break;
        case json_type_object:
                ret->kind = JSON_DISPATCH_KIND_OBJECT;
                break;
        }
}

static int tree_object(json_object *o, const JsonDispatchField *table, void *target,
                       const JsonDispatchPath *path, const char **ret_field, Error *err);
static void clear_field(const JsonDispatchField *f, void *target);

static int tree_array(const JsonDispatchField *f, json_object *a, void *target,
                      const JsonDispatchPath *path, Error *err);

/* Decodes the value of member f (at path) into the struct at target. */
static int tree_member(const JsonDispatchField *f, json_object *v, void *target,
                       const JsonDispatchPath *path, Error *err) {
        JsonDispatchValue value;
        int r;

        json_dispatch_value_of(v, &value);
        if (f->type == JSON_DISPATCH_OBJECT && value.kind == JSON_DISPATCH_KIND_OBJECT)
                r = tree_object(v, f->fields, (uint8_t *)target + f->offset, path, NULL, err);
        else if (f->type == JSON_DISPATCH_ARRAY && value.kind == JSON_DISPATCH_KIND_ARRAY)
                r = tree_array(f, v, target, path, err);
        else
                return json_dispatch_value(f, &value, target, path, err);
        if (r < 0)
                return r;
        mark_present(f, target);
        return 0;
}

static int tree_array(const JsonDispatchField *f, json_object *a, void *target,
                      const JsonDispatchPath *path, Error *err) {
        size_t n = json_object_array_length(a);
        uint8_t *base = (uint8_t *)target + f->offset;

        assert_return(f->element, -EINVAL);
        if (f->max > 0 && n > f->max)
                return error_set(err, -EINVAL, "%s: %zu elements, at most %" PRIu64 " are accepted",
                                 path_or_top(path), n, f->max);
        if (f->element_size > 0) {
                void **array = (void **)base;

                clear_field(f, target); /* a document decoded into the same struct before */
                if (n > 0 && !(*array = calloc(n, f->element_size)))
                        return error_set(err, -ENOMEM, "out of memory");
                *(size_t *)((uint8_t *)target + f->count_offset) = n;
        }
        for (size_t i = 0; i < n; i++) {
                void *element = f->element_size > 0
                                        ? *(uint8_t **)base + i * f->element_size
                                        : base;
                int r;

                r = tree_member(f->element, json_object_array_get_idx(a, i), element,
                                &(JsonDispatchPath){ .parent = path, .index = i }, err);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int tree_object(json_object *o, const JsonDispatchField *table, void *target,
                       const JsonDispatchPath *path, const char **ret_field, Error *err) {
        uint64_t seen = 0;
        int r;

        if (!json_object_is_type(o, json_type_object))
                return error_set(err, -EINVAL, "%s: expected an object, got %s",
                                 path_or_top(path), json_util_type_phrase(o));
        json_object_object_foreach(o, key, v) {
                const JsonDispatchPath p = { .parent = path, .name = key };
                const JsonDispatchField *f;
                JsonDispatchValue value;

                json_dispatch_value_of(v, &value);
                f = json_dispatch_find(table, key, strlen(key), value.kind);
                if (!f)
                        r = error_set(err, -EINVAL, "%s: unknown key", path_or_top(&p));
                else
                        r = tree_member(f, v, target, &p, err);
                if (r >= 0)
                        r = json_dispatch_seen(table, f, &seen);
                if (r < 0) {
                        if (ret_field)
                                *ret_field = f ? f->name : key;
                        return r;
                }
        }
        return json_dispatch_finish(table, seen, target, path, ret_field, err);
}

int json_dispatch(json_object *o, const JsonDispatchField *table, void *target,
                  const char *path, const char **ret_field, Error *err) {
        assert_return(target || !table, -EINVAL);

        if (ret_field)
                *ret_field = NULL;
        return tree_object(o, table, target, &(JsonDispatchPath){ .name = path ?: "" }, ret_field,
                           err);
}

/* ---- freeing ----------------------------------------------------------------------------- */

/* Whether decoding f may allocate what json_dispatch_clear() frees. */
static bool field_owns(const JsonDispatchField *f) {
        switch (f->type) {
        case JSON_DISPATCH_STRING:
                return f->flags & JSON_DISPATCH_COPY;
        case JSON_DISPATCH_OBJECT:
                for (const JsonDispatchField *g = f->fields; g && g->name; g++)
                        if (field_owns(g))
                                return true;
                return false;
        case JSON_DISPATCH_ARRAY:
                return f->element_size > 0;
        default:
                return false;
        }
}

static void clear_field(const JsonDispatchField *f, void *target) {
        uint8_t *p = (uint8_t *)target + f->offset;

        switch (f->type) {
        case JSON_DISPATCH_STRING:
                if (f->flags & JSON_DISPATCH_COPY) {
                        free(*(char **)p);
                        *(char **)p = NULL;
                }
                break;
        case JSON_DISPATCH_OBJECT:
                json_dispatch_clear(f->fields, p);
                break;
        case JSON_DISPATCH_ARRAY: {
                size_t *count = (size_t *)((uint8_t *)target + f->count_offset);
                uint8_t *array = *(uint8_t **)p;

                if (f->element_size == 0)
                        break;
                /* Elements of plain values (a MapBatch's areas) are not visited one by one. */
                if (field_owns(f->element))
                        for (size_t i = 0; array && i < *count; i++)
                                clear_field(f->element, array + i * f->element_size);
                free(array);
                *(uint8_t **)p = NULL;
                *count = 0;
                break;
        }
        default:
                break;
        }
}

void json_dispatch_clear(const JsonDispatchField *table, void *target) {
        if (!table || !target)
                return;
        for (const JsonDispatchField *f = table; f->name; f++)
                clear_field(f, target);
}
