/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "json-util.h"

const char *json_util_type_phrase(json_object *o) {
        switch (json_object_get_type(o)) {
        case json_type_null:
                return "null";
        case json_type_boolean:
                return "a boolean";
        case json_type_double:
                return "a floating-point number";
        case json_type_int:
                return "an integer";
        case json_type_object:
                return "an object";
        case json_type_array:
                return "an array";
        case json_type_string:
                return "a string";
        }
        return "an unknown type";
}

/* Looks name up; 1 with the node, 0 when absent and optional, -ENOENT when absent and required. */
static int lookup(json_object *obj, const char *name, JsonUtilFlags flags, json_object **ret,
                  Error *err) {
        json_object *v = NULL;

        if (obj && json_object_is_type(obj, json_type_object))
                (void)json_object_object_get_ex(obj, name, &v);
        if (!v || json_object_is_type(v, json_type_null)) {
                if (flags & JSON_UTIL_OPTIONAL)
                        return 0;
                return error_set(err, -ENOENT, "parameter '%s' is missing", name);
        }
        *ret = v;
        return 1;
}

int json_util_to_u64(json_object *o, uint64_t *ret) {
        if (!json_object_is_type(o, json_type_int))
                return -EINVAL;
        /* json-c keeps values above INT64_MAX as unsigned; int64 reads them as INT64_MAX. */
        if (json_object_get_int64(o) < 0)
                return -EINVAL;
        *ret = json_object_get_uint64(o);
        return 0;
}

/* lookup() that also refuses a node of another type: 1 with the node, 0 when absent and
 * optional. */
static int lookup_typed(json_object *obj, const char *name, JsonUtilFlags flags, json_type type,
                        const char *phrase, json_object **ret, Error *err) {
        json_object *v = NULL;
        int r;

        r = lookup(obj, name, flags, &v, err);
        if (r <= 0)
                return r;
        if (!json_object_is_type(v, type))
                return error_set(err, -EINVAL, "parameter '%s': expected %s, got %s", name, phrase,
                                 json_util_type_phrase(v));
        *ret = v;
        return 1;
}

/* 1 with a value no larger than max, 0 when absent and optional. */
static int get_unsigned(json_object *obj, const char *name, JsonUtilFlags flags, uint64_t max,
                        uint64_t *ret, Error *err) {
        json_object *v;
        uint64_t u;
        int r;

        r = lookup_typed(obj, name, flags, json_type_int, "an unsigned integer", &v, err);
        if (r <= 0)
                return r;
        if (json_util_to_u64(v, &u) < 0)
                return error_set(err, -EINVAL,
                                 "parameter '%s': expected an unsigned integer, got %" PRIi64, name,
                                 json_object_get_int64(v));
        if (u > max)
                return error_set(err, -EINVAL,
                                 "parameter '%s': %" PRIu64 " is larger than the maximum %" PRIu64,
                                 name, u, max);
        *ret = u;
        return 1;
}

int json_util_get_u64(json_object *obj, const char *name, JsonUtilFlags flags, uint64_t *ret,
                      Error *err) {
        int r = get_unsigned(obj, name, flags, UINT64_MAX, ret, err);
        return r < 0 ? r : 0;
}

int json_util_get_u32(json_object *obj, const char *name, JsonUtilFlags flags, uint32_t *ret,
                      Error *err) {
        uint64_t u;
        int r;

        r = get_unsigned(obj, name, flags, UINT32_MAX, &u, err);
        if (r <= 0)
                return r;
        *ret = (uint32_t)u;
        return 0;
}

int json_util_get_bool(json_object *obj, const char *name, JsonUtilFlags flags, bool *ret,
                       Error *err) {
        json_object *v;
        int r;

        r = lookup_typed(obj, name, flags, json_type_boolean, "a boolean", &v, err);
        if (r <= 0)
                return r;
        *ret = json_object_get_boolean(v);
        return 0;
}

int json_util_get_string(json_object *obj, const char *name, JsonUtilFlags flags,
                         const char **ret, Error *err) {
        json_object *v;
        int r;

        r = lookup_typed(obj, name, flags, json_type_string, "a string", &v, err);
        if (r <= 0)
                return r;
        *ret = json_object_get_string(v);
        return 0;
}

int json_util_get_object(json_object *obj, const char *name, JsonUtilFlags flags,
                         json_object **ret, Error *err) {
        int r = lookup_typed(obj, name, flags, json_type_object, "an object", ret, err);
        return r < 0 ? r : 0;
}

int json_util_get_array(json_object *obj, const char *name, JsonUtilFlags flags,
                        json_object **ret, Error *err) {
        int r = lookup_typed(obj, name, flags, json_type_array, "an array", ret, err);
        return r < 0 ? r : 0;
}

int json_util_add(json_object *obj, const char *key, json_object *value) {
        if (!value)
                return -ENOMEM;
        if (json_object_object_add(obj, key, value) < 0) {
                json_object_put(value);
                return -ENOMEM;
        }
        return 0;
}

/* ---- integer literals json-c saturated ---- */

/* The shortest literal json-c can saturate: INT64_MIN has 19 digits. */
#define BIG_INTEGER_DIGITS 19

typedef struct Cursor {
        const char *p, *end;
} Cursor;

static bool has_long_digit_run(const char *text, size_t len) {
        size_t run = 0;

        for (size_t i = 0; i < len; i++) {
                run = text[i] >= '0' && text[i] <= '9' ? run + 1 : 0;
                if (run >= BIG_INTEGER_DIGITS)
                        return true;
        }
        return false;
}

/* Whitespace and the comments json-c accepts outside strict mode. */
static void skip_space(Cursor *c) {
        while (c->p < c->end) {
                if (*c->p == ' ' || *c->p == '\t' || *c->p == '\r' || *c->p == '\n')
                        c->p++;
                else if (c->end - c->p >= 2 && strneq(c->p, "/*", 2)) {
                        const char *e = memmem(c->p + 2, (size_t)(c->end - c->p - 2), "*/", 2);

                        c->p = e ? e + 2 : c->end;
                } else if (c->end - c->p >= 2 && strneq(c->p, "//", 2)) {
                        const char *e = memchr(c->p, '\n', (size_t)(c->end - c->p));

                        c->p = e ? e : c->end;
                } else
                        break;
        }
}

/* Skips a string literal (json-c also takes single quotes); false when it does not end. */
static bool skip_string(Cursor *c) {
        char quote = *c->p++;

        while (c->p < c->end && *c->p != quote)
                c->p += *c->p == '\\' ? 2 : 1;
        if (c->p >= c->end)
                return false;
        c->p++;
        return true;
}

/* The key literal at the cursor as json-c stores it (escapes decoded), or NULL. */
static char *read_key(Cursor *c) {
        _cleanup_free_ char *literal = NULL;
        const char *start = c->p;
        json_object *s;
        char *key;

        if (c->p >= c->end || (*c->p != '"' && *c->p != '\'') || !skip_string(c))
                return NULL;
        if (!memchr(start, '\\', (size_t)(c->p - start)))
                return strndup(start + 1, (size_t)(c->p - start - 2));
        /* Escapes are rare in keys: let json-c decode them as it did in the document. */
        literal = strndup(start, (size_t)(c->p - start));
        if (!literal)
                return NULL;
        s = json_tokener_parse(literal);
        key = s && json_object_is_type(s, json_type_string) ? strdup(json_object_get_string(s))
                                                            : NULL;
        json_object_put(s);
        return key;
}

/* True when the integer literal [p, end) lies outside [INT64_MIN, UINT64_MAX]. */
static bool integer_literal_is_big(const char *p, const char *end) {
        bool negative = *p == '-';
        uint64_t v = 0;

        for (p += negative; p < end; p++) {
                unsigned d = (unsigned)(*p - '0');

                if (v > (UINT64_MAX - d) / 10)
                        return true;
                v = v * 10 + d;
        }
        return negative && v > (uint64_t)INT64_MAX + 1;
}

static bool node_is_saturated(json_object *node, bool negative) {
        if (!json_object_is_type(node, json_type_int))
                return false;
        if (negative)
                return json_object_get_int64(node) == INT64_MIN;
        return json_object_get_uint64(node) == UINT64_MAX;
}

/* Where a value sits, so that it can be replaced: a member of an object or an array element. */
typedef struct Slot {
        json_object *parent;
        const char *key;
        size_t index;
} Slot;

static int replace_number(const Slot *slot, const char *start, const char *end) {
        _cleanup_free_ char *literal = strndup(start, (size_t)(end - start));
        json_object *d;

        if (!literal)
                return -ENOMEM;
        d = json_object_new_double_s(strtod(literal, NULL), literal);
        if (!d)
                return -ENOMEM;
        if (json_object_is_type(slot->parent, json_type_object))
                return json_object_object_add(slot->parent, slot->key, d) < 0 ? -ENOMEM : 0;
        return json_object_array_put_idx(slot->parent, slot->index, d) < 0 ? -ENOMEM : 0;
}

static int walk_value(Cursor *c, const Slot *slot, json_object *node);

/* A member or an element, and the comma after it. */
static int walk_member(Cursor *c, const Slot *slot, json_object *node) {
        int r = walk_value(c, slot, node);

        if (r <= 0)
                return r;
        skip_space(c);
        if (c->p < c->end && *c->p == ',')
                c->p++;
        return 1;
}

static int walk_object(Cursor *c, json_object *node) {
        bool is_object = json_object_is_type(node, json_type_object);

        for (c->p++;;) {
                _cleanup_free_ char *key = NULL;
                json_object *child = NULL;
                int r;

                skip_space(c);
                if (c->p < c->end && *c->p == '}')
                        break;
                key = read_key(c);
                skip_space(c);
                if (!key || c->p >= c->end || *c->p != ':')
                        return 0; /* not what json-c read: leave the rest as it is */
                c->p++;
                if (is_object)
                        (void)json_object_object_get_ex(node, key, &child);
                r = walk_member(c, &(Slot){ .parent = node, .key = key }, child);
                if (r <= 0)
                        return r;
        }
        c->p++;
        return 1;
}

static int walk_array(Cursor *c, json_object *node) {
        bool is_array = json_object_is_type(node, json_type_array);

        c->p++;
        for (size_t i = 0;; i++) {
                json_object *child;
                int r;

                skip_space(c);
                if (c->p >= c->end)
                        return 0;
                if (*c->p == ']')
                        break;
                child = is_array && i < json_object_array_length(node)
                                ? json_object_array_get_idx(node, i)
                                : NULL;
                r = walk_member(c, &(Slot){ .parent = node, .index = i }, child);
                if (r <= 0)
                        return r;
        }
        c->p++;
        return 1;
}

/* 1 after the value, 0 when the text is not what json-c read (stop), -ENOMEM. */
static int walk_value(Cursor *c, const Slot *slot, json_object *node) {
        const char *start;

        skip_space(c);
        if (c->p >= c->end)
                return 0;
        if (*c->p == '{')
                return walk_object(c, node);
        if (*c->p == '[')
                return walk_array(c, node);
        if (*c->p == '"' || *c->p == '\'')
                return skip_string(c) ? 1 : 0;
        start = c->p;
        if (*c->p == '-' || (*c->p >= '0' && *c->p <= '9')) {
                bool integer = true;

                for (c->p++; c->p < c->end && *c->p && strchr("0123456789.eE+-", *c->p); c->p++)
                        if (!(*c->p >= '0' && *c->p <= '9'))
                                integer = false;
                if (integer && c->p - start >= BIG_INTEGER_DIGITS && slot->parent &&
                    integer_literal_is_big(start, c->p) && node_is_saturated(node, *start == '-'))
                        return replace_number(slot, start, c->p) < 0 ? -ENOMEM : 1;
                return 1;
        }
        /* true, false, null and json-c's other words. */
        while (c->p < c->end && (isalnum((unsigned char)*c->p) || *c->p == '_'))
                c->p++;
        return c->p > start ? 1 : 0;
}

int json_util_fix_big_integers(json_object *root, const char *text, size_t len) {
        Cursor c = { .p = text, .end = text + len };
        int r;

        if (!root || !text || !has_long_digit_run(text, len))
                return 0;
        r = walk_value(&c, &(Slot){}, root);
        return r < 0 ? r : 0;
}
