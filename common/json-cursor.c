/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "assert-util.h"
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
/* ---- plans ----------------------------------------------------------------------------- */

enum {
        PLAIN_NONE, /* not stored without the tables */
        PLAIN_U64,
        PLAIN_U32,
        PLAIN_FD,
        PLAIN_BOOL,
        PLAIN_UNSIGNED, /* another unsigned entry, stored by json_dispatch_unsigned() */
};

#define PLAN_NAME_MAX 16 /* longer names are compared byte by byte */

typedef struct PlanEntry {
        uint64_t word[2], mask[2]; /* the name as it lies in the text, and which bytes count */
        uint32_t len;
        uint8_t plain;
        bool in_run;
        JsonCursorPlan *sub; /* OBJECT, or ARRAY of OBJECT: the plan of that object's table */
} PlanEntry;

struct JsonCursorPlan {
        const JsonDispatchField *table;
        size_t n;
        /* The entries json_dispatch_finish() must see given (required ones, fds): when they
         * are, it has nothing to do (it looks at other entries of a name only for them). */
        uint64_t wanted;
        PlanEntry entry[]; /* n + 1: the last as the table's end */
};

JsonCursorPlan *json_cursor_plan_free(JsonCursorPlan *plan) {
        if (plan) {
                for (size_t i = 0; i < plan->n; i++)
                        json_cursor_plan_free(plan->entry[i].sub);
                free(plan);
        }
        return NULL;
}

static uint8_t plain_of(const JsonDispatchField *f) {
        bool bounded = f->max != 0 || f->min > 0;

        switch (f->type) {
        case JSON_DISPATCH_BOOL:
                return PLAIN_BOOL;
        case JSON_DISPATCH_UINT64:
                return bounded ? PLAIN_UNSIGNED : PLAIN_U64;
        case JSON_DISPATCH_UINT32:
                return bounded ? PLAIN_UNSIGNED : PLAIN_U32;
        case JSON_DISPATCH_FD_INDEX:
                return bounded ? PLAIN_UNSIGNED : PLAIN_FD;
        case JSON_DISPATCH_UINT8:
        case JSON_DISPATCH_UINT16:
                return PLAIN_UNSIGNED;
        default:
                return PLAIN_NONE;
        }
}

/* The table of the object an entry's value is (itself, or each element of its array). */
static const JsonDispatchField *object_table(const JsonDispatchField *f) {
        if (f->type == JSON_DISPATCH_OBJECT)
                return f->fields;
        if (f->type == JSON_DISPATCH_ARRAY && f->element && f->element->type == JSON_DISPATCH_OBJECT)
                return f->element->fields;
        return NULL;
}

int json_cursor_plan_new(const JsonDispatchField *table, JsonCursorPlan **ret) {
        JsonCursorPlan *plan;
        size_t n = 0;
        int r;

        assert_return(table && ret, -EINVAL);
        while (table[n].name)
                n++;
        assert_return(n <= 64, -E2BIG);
        plan = calloc(1, sizeof(*plan) + (n + 1) * sizeof(PlanEntry));
        if (!plan)
                return -ENOMEM;
        *plan = (JsonCursorPlan){ .table = table, .n = n };
        for (size_t i = 0; i < n; i++) {
                PlanEntry *e = &plan->entry[i];
                const JsonDispatchField *sub = object_table(&table[i]);

                e->len = (uint32_t)strlen(table[i].name);
                if (e->len <= PLAN_NAME_MAX) {
                        uint8_t word[PLAN_NAME_MAX] = {}, mask[PLAN_NAME_MAX] = {};

                        memcpy(word, table[i].name, e->len);
                        memset(mask, 0xff, e->len);
                        memcpy(e->word, word, sizeof(word));
                        memcpy(e->mask, mask, sizeof(mask));
                }
                e->plain = plain_of(&table[i]);
                e->in_run = json_dispatch_in_run(table, &table[i]);
                if ((table[i].flags & JSON_DISPATCH_REQUIRED) || table[i].type == JSON_DISPATCH_FD_INDEX)
                        plan->wanted |= UINT64_C(1) << i;
                if (sub && (r = json_cursor_plan_new(sub, &e->sub)) < 0) {
                        json_cursor_plan_free(plan);
                        return r;
                }
        }
        *ret = plan;
        return 0;
}

/* ---- decoding -------------------------------------------------------------------------- */

static int decode_object(JsonCursor *c, const JsonDispatchField *table, const JsonCursorPlan *plan,
                         void *target);
static int decode_value(JsonCursor *c, const JsonDispatchField *f, const JsonCursorPlan *sub,
                        void *target);

static int cursor_array(JsonCursor *c, const JsonDispatchField *f, const JsonCursorPlan *sub,
                        void *target) {
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
                k = decode_value(c, f->element, sub, element);
                if (k < 0)
                        return k;
                n++;
                c->r.p = skip_space(c->r.p);
        }
        c->r.p++;
        c->r.depth--;
        return 0;
}

/* The plain digits at p as u; their count, or 0 for anything the tables must read ("01",
 * "1.5", "1e3", more than the 19 digits that always fit). */
static inline size_t plain_digits(const char *p, uint64_t *u) {
        size_t n = 0;

        *u = 0;
        while (is_class(p[n], CLASS_DIGIT))
                *u = *u * 10 + (unsigned)(p[n++] - '0');
        if (n > 19 || (p[0] == '0' && n > 1) || p[n] == '.' || p[n] == 'e' || p[n] == 'E')
                return 0;
        return n;
}

/* true or false at p: its length, 0 for anything else. */
static inline size_t plain_bool(const char *p, bool *b) {
        if (word_at(p, "true", 4))
                return *b = true, 4;
        if (word_at(p, "false", 5))
                return *b = false, 5;
        return 0;
}

/*
 * The value at the cursor for f, decoded without a token when it is plain for how it is
 * stored (plain: PLAIN_*): 1 when it took the value, 0 when the value is not that plain (the
 * tables then read it), -EAGAIN for one they would refuse.  Whatever follows the value is the
 * caller's to check, as after any value: a ',', '}' or ']'.
 */
static _always_inline_ int cursor_plain(JsonCursor *c, const JsonDispatchField *f, uint8_t plain,
                               void *target) {
        uint8_t *at = (uint8_t *)target + f->offset;
        uint64_t u;
        size_t n;
        bool b;

        switch (plain) {
        case PLAIN_U64:
        case PLAIN_U32:
        case PLAIN_FD:
        case PLAIN_UNSIGNED:
                n = plain_digits(c->r.p, &u);
                if (n == 0)
                        return 0;
                if (plain == PLAIN_U64)
                        *(uint64_t *)at = u;
                else if (plain == PLAIN_U32 && u <= UINT32_MAX)
                        *(uint32_t *)at = (uint32_t)u;
                else if (plain == PLAIN_FD && u < JSON_DISPATCH_FD_NONE)
                        *(JsonDispatchFd *)at = (JsonDispatchFd){ .index = (uint32_t)u, .fd = -EBADF };
                else if (json_dispatch_unsigned(f, u, target) < 0)
                        return -EAGAIN;
                else
                        break; /* it marked the member given */
                goto given;
        case PLAIN_BOOL:
                n = plain_bool(c->r.p, &b);
                if (n == 0)
                        return 0;
                *(bool *)at = b;
                goto given;
        default:
                return 0;
        }
        c->r.p += n;
        return 1;
given:
        if (f->presence > 0)
                *(bool *)((uint8_t *)target + f->presence - 1) = true;
        c->r.p += n;
        return 1;
}

static int decode_value(JsonCursor *c, const JsonDispatchField *f, const JsonCursorPlan *sub,
                        void *target) {
        JsonDispatchValue v;
        int k;

        c->r.p = skip_space(c->r.p);
        k = cursor_plain(c, f, plain_of(f), target);
        if (k != 0)
                return k < 0 ? k : 0;
        if (*c->r.p == '{' && f->type == JSON_DISPATCH_OBJECT)
                k = decode_object(c, f->fields, sub, (uint8_t *)target + f->offset);
        else if (*c->r.p == '[' && f->type == JSON_DISPATCH_ARRAY)
                k = cursor_array(c, f, sub, target);
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

int json_cursor_decode_value(JsonCursor *c, const JsonDispatchField *f, void *target) {
        return decode_value(c, f, NULL, target);
}

/*
 * Whether the member name at p (on its opening quote) is e's: two masked words compared
 * where the text has sixteen bytes after the quote, else byte by byte.
 */
static inline bool plan_name_at(const JsonCursor *c, const char *p, const PlanEntry *e,
                                const char *name, size_t *ret_len) {
        uint64_t w[2];

        if (e->len > PLAN_NAME_MAX || c->r.end - p <= PLAN_NAME_MAX)
                return name_at(p, name, ret_len);
        memcpy(w, p + 1, sizeof(w));
        *ret_len = e->len;
        return ((w[0] ^ e->word[0]) & e->mask[0]) == 0 && ((w[1] ^ e->word[1]) & e->mask[1]) == 0 &&
               p[1 + e->len] == '"';
}

/* The opening quote of the next member's name, past the ',' before it if one is due; NULL
 * for anything else (the object's end, a mistake). */
static inline char *member_name(const JsonCursor *c) {
        char *p = skip_space(c->r.p);

        if (!c->first) {
                if (*p != ',')
                        return NULL;
                p = skip_space(p + 1);
        }
        return *p == '"' ? p : NULL;
}

/* Moves the cursor onto the value of the member whose name (len bytes) is at p: 1, or 0
 * (the cursor unmoved) when no ':' follows. */
static inline int member_enter(JsonCursor *c, char *p, size_t len) {
        p = skip_space(p + len + 2);
        if (*p != ':')
                return 0;
        c->r.p = skip_space(p + 1);
        c->first = false;
        return 1;
}

/*
 * 1 when the next member is the entry f's (with its plan e, or none), the cursor moved onto
 * its value; 0, the cursor unmoved, for anything else.  Entries' names hold no '"', '\\' or
 * NUL, so the quote after the name ends a plain one, and an escape never matches.
 */
static inline int member_is(JsonCursor *c, const JsonDispatchField *f, const PlanEntry *e) {
        char *p = member_name(c);
        size_t len;

        if (!p || !(e ? plan_name_at(c, p, e, f->name, &len) : name_at(p, f->name, &len)))
                return 0;
        return member_enter(c, p, len);
}

int json_cursor_member_is(JsonCursor *c, const char *name, size_t len) {
        char *p = member_name(c);

        /* name holds no '"', '\\' or NUL, so the quote after it ends a plain name. */
        if (!p || (size_t)(c->r.end - p) < len + 2 || memcmp(p + 1, name, len) != 0 ||
            p[len + 1] != '"')
                return 0;
        return member_enter(c, p, len);
}

/*
 * The entry of table for the next member, the cursor moved onto its value: 1 and its index
 * in *i (the index of the previous member's entry on entry, SIZE_MAX before the first), 0 at
 * the object's end, -EAGAIN for anything not plain.  Members mostly come in the table's
 * order, so the entry after the previous one is compared first, in place.
 */
static int cursor_member(JsonCursor *c, const JsonDispatchField *table,
                         const JsonCursorPlan *plan, size_t *i) {
        const JsonDispatchField *next = &table[*i + 1], *f;
        const PlanEntry *e = plan ? &plan->entry[*i + 1] : NULL;
        const char *name;
        size_t len;
        int k;

        if (next->name && !(e ? e->in_run : json_dispatch_in_run(table, next)) &&
            member_is(c, next, e)) {
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

static int decode_object(JsonCursor *c, const JsonDispatchField *table, const JsonCursorPlan *plan,
                         void *target) {
        size_t i = SIZE_MAX;
        uint64_t seen = 0;
        int k;

        k = json_cursor_enter_object(c);
        while (k >= 0 && (k = cursor_member(c, table, plan, &i)) > 0) {
                if (i >= 64 || (seen & (UINT64_C(1) << i)))
                        return -EAGAIN;
                seen |= UINT64_C(1) << i;
                c->r.p = skip_space(c->r.p);
                k = cursor_plain(c, &table[i], plan ? plan->entry[i].plain : plain_of(&table[i]),
                                 target);
                if (k == 0)
                        k = decode_value(c, &table[i], plan ? plan->entry[i].sub : NULL, target);
        }
        if (k < 0)
                return k;
        if (plan && (seen & plan->wanted) == plan->wanted)
                return 0;
        return json_dispatch_finish(table, seen, target, NULL, NULL, NULL) < 0 ? -EAGAIN : 0;
}

int json_cursor_decode_object(JsonCursor *c, const JsonDispatchField *table, void *target) {
        return decode_object(c, table, NULL, target);
}

int json_cursor_decode_planned(JsonCursor *c, const JsonCursorPlan *plan, void *target) {
        return decode_object(c, plan->table, plan, target);
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
