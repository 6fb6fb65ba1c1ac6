/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "json-reader.h"
#include "macros.h"

/*
 * The cursor reads the same bytes with the same functions as the tape, but records nothing:
 * each member is decoded into the target as soon as it is read.  Whatever is not plain and
 * right (a mistake, a member given twice or unknown, a name with escapes, a number that is not
 * a 64-bit integer) ends it with -EAGAIN, and the caller reads the document the other way,
 * whose verdict stands: so the cursor needs no messages, only to never accept what the tape
 * and the tables would refuse, nor differ in a value.
 */

/*
 * Whether the member name at p (on its opening quote) is entry's, followed by its closing
 * quote: compared as it is read, with no scan before.  An escape never matches (entry names
 * hold none), and the text's NUL stops the loop.
 */
static inline bool name_at(const char *p, const char *entry, size_t *ret_len) {
        size_t i = 0;

        for (p++; entry[i] != '\0'; i++)
                if (p[i] != entry[i])
                        return false;
        *ret_len = i;
        return p[i] == '"';
}

void json_cursor_init(JsonCursor *c, char *text, size_t len, unsigned max_depth) {
        assert(c && text && text[len] == '\0');
        *c = (JsonCursor){ .r = { .p = text, .end = text + len, .max_depth = max_depth } };
}

int json_cursor_enter_object(JsonCursor *c) {
        c->r.p = skip_space(c->r.p);
        if (*c->r.p != '{' || ++c->r.depth > c->r.max_depth)
                return -EAGAIN;
        c->r.p++;
        c->first = true;
        return 0;
}

int json_cursor_next_member(JsonCursor *c, const char **ret_name, size_t *ret_len) {
        JsonStreamToken key;

        c->r.p = skip_space(c->r.p);
        if (*c->r.p == '}') {
                c->r.p++;
                c->r.depth--;
                c->first = false; /* the container around it has a member: this object */
                return 0;
        }
        if (!c->first) {
                if (*c->r.p != ',')
                        return -EAGAIN;
                c->r.p = skip_space(c->r.p + 1);
        }
        if (*c->r.p != '"' || read_string(&c->r, &key) != 0) /* escapes in a name: the tape's */
                return -EAGAIN;
        c->r.p = skip_space(c->r.p);
        if (*c->r.p != ':')
                return -EAGAIN;
        c->r.p = skip_space(c->r.p + 1);
        c->first = false;
        *ret_name = key.text;
        *ret_len = key.length;
        return 1;
}

/* The kind of the value the cursor is on, from its first byte (what pick_kind() needs). */
static JsonDispatchKind cursor_kind(const char *p) {
        switch (*p) {
        case '{':
                return JSON_DISPATCH_KIND_OBJECT;
        case '[':
                return JSON_DISPATCH_KIND_ARRAY;
        case '"':
                return JSON_DISPATCH_KIND_STRING;
        case 't': case 'f':
                return JSON_DISPATCH_KIND_BOOLEAN;
        case 'n':
                return JSON_DISPATCH_KIND_NULL;
        default:
                return JSON_DISPATCH_KIND_INTEGER;
        }
}

/* A scalar value at the cursor, as the tables take it; -EAGAIN for a NUMBER or a mistake. */
static int cursor_scalar(JsonCursor *c, JsonDispatchValue *ret) {
        JsonStreamToken t;
        char first = *c->r.p;

        if (first == '"') {
                if (read_string(&c->r, &t) < 0)
                        return -EAGAIN;
                *ret = (JsonDispatchValue){ .kind = t.kind, .text = t.text, .length = t.length };
        } else if (first == '-' || is_class(first, CLASS_DIGIT)) {
                if (json_reader_number(&c->r, &t) < 0 || t.kind != JSON_DISPATCH_KIND_INTEGER)
                        return -EAGAIN;
                *ret = (JsonDispatchValue){ .kind = t.kind, .negative = t.negative,
                                            .magnitude = t.magnitude };
        } else {
                if (json_reader_word(&c->r, &t) < 0)
                        return -EAGAIN;
                *ret = (JsonDispatchValue){ .kind = t.kind, .boolean = t.boolean };
        }
        return 0;
}

/* The elements of the array at the cursor, for f; a growing array when f has element_size. */
static int cursor_array(JsonCursor *c, const JsonDispatchField *f, void *target) {
        uint8_t *base = (uint8_t *)target + f->offset;
        size_t *count = f->element_size > 0 ? (size_t *)((uint8_t *)target + f->count_offset) : NULL;
        size_t n = 0, capacity = 0;
        int k;

        if (++c->r.depth > c->r.max_depth)
                return -EAGAIN;
        c->r.p = skip_space(c->r.p + 1);
        while (*c->r.p != ']') {
                void *element = base;

                if (n > 0) {
                        if (*c->r.p != ',')
                                return -EAGAIN;
                        c->r.p = skip_space(c->r.p + 1);
                }
                if (f->max > 0 && n >= f->max)
                        return -EAGAIN;
                if (count) {
                        if (n == capacity) {
                                size_t grown = capacity ? capacity * 2 : 16;
                                uint8_t *a = reallocarray(*(uint8_t **)base, grown, f->element_size);

                                if (!a)
                                        return -EAGAIN;
                                memset(a + capacity * f->element_size, 0,
                                       (grown - capacity) * f->element_size);
                                *(uint8_t **)base = a;
                                capacity = grown;
                        }
                        element = *(uint8_t **)base + n * f->element_size;
                        *count = n + 1; /* so that clearing frees what the element holds */
                }
                k = json_cursor_decode_value(c, f->element, element);
                if (k < 0)
                        return k;
                n++;
                c->r.p = skip_space(c->r.p);
        }
        c->r.p++;
        c->r.depth--;
        return 0;
}

/*
 * A plain integer for an unsigned entry, or true or false for a BOOL one, decoded without a
 * token: 1 when it took the value, 0 when the value is not that plain (the tables then read
 * it), -EAGAIN for one they would refuse.  Whatever follows the value is the caller's to
 * check, as after any value: a ',', '}' or ']'.
 */
static int cursor_plain(JsonCursor *c, const JsonDispatchField *f, void *target) {
        const char *p = c->r.p;
        uint64_t u = 0;
        size_t n = 0;

        switch (f->type) {
        case JSON_DISPATCH_UINT8: case JSON_DISPATCH_UINT16: case JSON_DISPATCH_UINT32:
        case JSON_DISPATCH_UINT64: case JSON_DISPATCH_FD_INDEX:
                while (is_class(p[n], CLASS_DIGIT))
                        u = u * 10 + (unsigned)(p[n++] - '0');
                /* 19 digits always fit; "01", "1.5", "1e3" and longer ones are the tables'. */
                if (n == 0 || n > 19 || (p[0] == '0' && n > 1) || p[n] == '.' || p[n] == 'e' ||
                    p[n] == 'E')
                        return 0;
                if (json_dispatch_unsigned(f, u, target) < 0)
                        return -EAGAIN;
                break;
        case JSON_DISPATCH_BOOL:
                if (word_at(p, "true", 4))
                        n = 4;
                else if (word_at(p, "false", 5))
                        n = 5;
                else
                        return 0;
                *(bool *)((uint8_t *)target + f->offset) = n == 4;
                if (f->presence > 0)
                        *(bool *)((uint8_t *)target + f->presence - 1) = true;
                break;
        default:
                return 0;
        }
        c->r.p += n;
        return 1;
}

int json_cursor_decode_value(JsonCursor *c, const JsonDispatchField *f, void *target) {
        JsonDispatchValue v;
        int k;

        c->r.p = skip_space(c->r.p);
        k = cursor_plain(c, f, target);
        if (k != 0)
                return k < 0 ? k : 0;
        if (*c->r.p == '{' && f->type == JSON_DISPATCH_OBJECT)
                k = json_cursor_decode_object(c, f->fields, (uint8_t *)target + f->offset);
        else if (*c->r.p == '[' && f->type == JSON_DISPATCH_ARRAY)
                k = cursor_array(c, f, target);
        else {
                if (*c->r.p == '{' || *c->r.p == '[' || cursor_scalar(c, &v) < 0)
                        return -EAGAIN;
                return json_dispatch_value(f, &v, target, NULL, NULL) < 0 ? -EAGAIN : 0;
        }
        if (k < 0)
                return k;
        if (f->presence > 0)
                *(bool *)((uint8_t *)target + f->presence - 1) = true;
        return 0;
}

/* json_cursor_member_is() for a table entry's name, whose length is not known. */
static inline int member_is(JsonCursor *c, const char *name) {
        char *p = skip_space(c->r.p);
        size_t len;

        if (!c->first) {
                if (*p != ',')
                        return 0;
                p = skip_space(p + 1);
        }
        if (*p != '"' || !name_at(p, name, &len))
                return 0;
        p = skip_space(p + len + 2);
        if (*p != ':')
                return 0;
        c->r.p = skip_space(p + 1);
        c->first = false;
        return 1;
}

int json_cursor_member_is(JsonCursor *c, const char *name, size_t len) {
        char *p = skip_space(c->r.p);

        if (!c->first) {
                if (*p != ',')
                        return 0;
                p = skip_space(p + 1);
        }
        /* name holds no '"', '\\' or NUL, so the quote after it ends a plain name. */
        if (*p != '"' || (size_t)(c->r.end - p) < len + 2 || memcmp(p + 1, name, len) != 0 ||
            p[len + 1] != '"')
                return 0;
        p = skip_space(p + len + 2);
        if (*p != ':')
                return 0;
        c->r.p = skip_space(p + 1);
        c->first = false;
        return 1;
}

/*
 * The entry of table for the next member, the cursor moved onto its value: 1 and its index
 * in *i (the index of the previous member's entry on entry, SIZE_MAX before the first), 0 at
 * the object's end, -EAGAIN for anything not plain.  Members mostly come in the table's
 * order, so the entry after the previous one is compared first, in place.
 */
static int cursor_member(JsonCursor *c, const JsonDispatchField *table, size_t *i) {
        const JsonDispatchField *next = &table[*i + 1], *f;
        const char *name;
        size_t len;
        int k;

        if (next->name && !json_dispatch_in_run(table, next) && member_is(c, next->name)) {
                *i += 1;
                return 1;
        }
        k = json_cursor_next_member(c, &name, &len);
        if (k <= 0)
                return k;
        f = json_dispatch_find(table, name, len, cursor_kind(c->r.p));
        if (!f || json_dispatch_in_run(table, f))
                return -EAGAIN;
        *i = (size_t)(f - table);
        return 1;
}

int json_cursor_decode_object(JsonCursor *c, const JsonDispatchField *table, void *target) {
        size_t i = SIZE_MAX;
        uint64_t seen = 0;
        int k;

        k = json_cursor_enter_object(c);
        while (k >= 0 && (k = cursor_member(c, table, &i)) > 0) {
                if (i >= 64 || (seen & (UINT64_C(1) << i)))
                        return -EAGAIN;
                seen |= UINT64_C(1) << i;
                c->r.p = skip_space(c->r.p);
                k = cursor_plain(c, &table[i], target);
                if (k == 0)
                        k = json_cursor_decode_value(c, &table[i], target);
        }
        if (k < 0 || json_dispatch_finish(table, seen, target, NULL, NULL, NULL) < 0)
                return -EAGAIN;
        return 0;
}


int json_cursor_bool(JsonCursor *c, bool *ret) {
        JsonDispatchValue v;

        c->r.p = skip_space(c->r.p);
        if (cursor_scalar(c, &v) < 0 || v.kind != JSON_DISPATCH_KIND_BOOLEAN)
                return -EAGAIN;
        *ret = v.boolean;
        return 0;
}

int json_cursor_string(JsonCursor *c, const char **ret, size_t *ret_len) {
        JsonStreamToken t;
        int k;

        c->r.p = skip_space(c->r.p);
        if (*c->r.p != '"')
                return -EAGAIN;
        k = read_string(&c->r, &t);
        /* A plain run stops at a NUL: only a decoded string can hold one. */
        if (k < 0 || (k > 0 && memchr(t.text, '\0', t.length)))
                return -EAGAIN;
        *ret = t.text;
        *ret_len = t.length;
        return 0;
}

bool json_cursor_string_is(JsonCursor *c, const char *text, size_t len) {
        char *p = skip_space(c->r.p);

        /* The text holds no '"', '\\' or NUL, so the quote after it ends a plain string. */
        if (*p != '"' || (size_t)(c->r.end - p) < len + 2 || memcmp(p + 1, text, len) != 0 ||
            p[len + 1] != '"')
                return false;
        c->r.p = p + len + 2;
        return true;
}

int json_cursor_end(JsonCursor *c) {
        c->r.p = skip_space(c->r.p);
        return c->r.p == c->r.end && c->r.depth == 0 ? 0 : -EAGAIN;
}
