/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "assert-util.h"
#include "json-stream.h"
#include "macros.h"

/* ---- reading: the document onto the tape ------------------------------------------------- */

/*
 * The text ends with a NUL at text[len] (json_stream_parse()'s contract), and every scan stops
 * at it: the loops look at one byte class per byte and at no bounds.  A NUL before the end is
 * a byte like any other inside a string (the slow path copies it, and a member name that
 * holds one is json-c's to judge) and a mistake anywhere else.
 */
enum {
        CLASS_SPACE = 1 << 0, /* JSON's whitespace (json-c takes more in places: its to read) */
        CLASS_STOP = 1 << 1,  /* ends a plain run inside a string: '"', '\\' and NUL */
        CLASS_DIGIT = 1 << 2,
};

static const uint8_t byte_class[256] = {
        [' '] = CLASS_SPACE, ['\t'] = CLASS_SPACE, ['\n'] = CLASS_SPACE, ['\r'] = CLASS_SPACE,
        ['"'] = CLASS_STOP, ['\\'] = CLASS_STOP, ['\0'] = CLASS_STOP,
        ['0'] = CLASS_DIGIT, ['1'] = CLASS_DIGIT, ['2'] = CLASS_DIGIT, ['3'] = CLASS_DIGIT,
        ['4'] = CLASS_DIGIT, ['5'] = CLASS_DIGIT, ['6'] = CLASS_DIGIT, ['7'] = CLASS_DIGIT,
        ['8'] = CLASS_DIGIT, ['9'] = CLASS_DIGIT,
};

static inline bool is_class(char c, uint8_t class) {
        return byte_class[(uint8_t)c] & class;
}

static inline char *skip_space(char *p) {
        while (is_class(*p, CLASS_SPACE))
                p++;
        return p;
}

static int bad(JsonReader *r, const char *what) {
        return error_set(r->err, -EBADMSG, "message is not valid JSON: %s", what);
}

/* A new token on the tape, or NULL (with why in r->err) when the tape is full. */
static inline JsonStreamToken *token_new(JsonReader *r, JsonDispatchKind kind) {
        JsonStream *s = r->s;

        if (s->used >= s->n_tape) {
                (void)error_set(r->err, -E2BIG, "more values than the tape holds");
                return NULL;
        }
        s->tape[s->used] = (JsonStreamToken){ .kind = kind };
        return &s->tape[s->used++];
}

static int hex4(const char *p, uint32_t *ret) {
        uint32_t v = 0;

        for (int i = 0; i < 4; i++) {
                int d = unhexchar(p[i]);

                if (d < 0)
                        return -EBADMSG;
                v = v << 4 | (uint32_t)d;
        }
        *ret = v;
        return 0;
}

static char *put_utf8(char *w, uint32_t cp) {
        if (cp < 0x80) {
                *w++ = (char)cp;
        } else if (cp < 0x800) {
                *w++ = (char)(0xc0 | (cp >> 6));
                *w++ = (char)(0x80 | (cp & 0x3f));
        } else if (cp < 0x10000) {
                *w++ = (char)(0xe0 | (cp >> 12));
                *w++ = (char)(0x80 | ((cp >> 6) & 0x3f));
                *w++ = (char)(0x80 | (cp & 0x3f));
        } else {
                *w++ = (char)(0xf0 | (cp >> 18));
                *w++ = (char)(0x80 | ((cp >> 12) & 0x3f));
                *w++ = (char)(0x80 | ((cp >> 6) & 0x3f));
                *w++ = (char)(0x80 | (cp & 0x3f));
        }
        return w;
}

/* A \u escape at r->p (after the backslash and 'u'), written at *w; a surrogate pair as one. */
static int read_unicode(JsonReader *r, char **w) {
        uint32_t cp, low;

        if (r->end - r->p < 4 || hex4(r->p, &cp) < 0)
                return bad(r, "bad \\u escape");
        r->p += 4;
        if (cp >= 0xd800 && cp <= 0xdbff) {
                /* A high surrogate wants a low one; without it json-c writes U+FFFD. */
                if (r->end - r->p >= 6 && r->p[0] == '\\' && r->p[1] == 'u' &&
                    hex4(r->p + 2, &low) == 0 && low >= 0xdc00 && low <= 0xdfff) {
                        r->p += 6;
                        cp = 0x10000 + ((cp - 0xd800) << 10) + (low - 0xdc00);
                } else
                        cp = 0xfffd;
        } else if (cp >= 0xdc00 && cp <= 0xdfff)
                cp = 0xfffd;
        *w = put_utf8(*w, cp);
        return 0;
}

/* The rest of a string from r->p on, which needs decoding: escapes, or a NUL inside.  1. */
static int read_string_decoded(JsonReader *r, JsonStreamToken *t) {
        char *w = r->p;

        for (;;) {
                char c;

                if (r->p >= r->end)
                        return bad(r, "unterminated string");
                c = *r->p++;
                if (c == '"')
                        break;
                if (c != '\\') {
                        *w++ = c;
                        continue;
                }
                if (r->p >= r->end)
                        return bad(r, "unterminated string");
                c = *r->p++;
                switch (c) {
                case '"': case '\\': case '/': *w++ = c; break;
                case 'b': *w++ = '\b'; break;
                case 'f': *w++ = '\f'; break;
                case 'n': *w++ = '\n'; break;
                case 'r': *w++ = '\r'; break;
                case 't': *w++ = '\t'; break;
                case 'u':
                        if (read_unicode(r, &w) < 0)
                                return -EBADMSG;
                        break;
                default:
                        return bad(r, "bad escape in a string");
                }
        }
        t->length = (size_t)(w - t->text);
        *w = '\0';
        return 1;
}

/*
 * A string at r->p (on its opening quote), decoded in place and NUL-terminated.  0, or 1 when
 * it had to be decoded.
 */
static inline int read_string(JsonReader *r, JsonStreamToken *t) {
        char *start = r->p + 1, *p = start;

        while (!is_class(*p, CLASS_STOP))
                p++;
        t->kind = JSON_DISPATCH_KIND_STRING;
        t->text = start;
        if (*p == '"') {
                /* Nothing to decode, as in nearly every string: the quote becomes the NUL. */
                t->length = (size_t)(p - start);
                *p = '\0';
                r->p = p + 1;
                return 0;
        }
        r->p = p;
        return read_string_decoded(r, t);
}

/* A member's name: a string json-c keeps whole, which one with a NUL inside it is not. */
static int read_key(JsonReader *r, JsonStreamToken *t) {
        int k = read_string(r, t);

        if (k > 0 && strlen(t->text) != t->length)
                return bad(r, "a member name holds a NUL");
        return k;
}

/* The digits at p as an integer; false when they do not fit in 64 bits. */
static bool read_digits(char **p, uint64_t *ret) {
        char *start = *p, *q = start;
        uint64_t v = 0;

        while (is_class(*q, CLASS_DIGIT))
                v = v * 10 + (unsigned)(*q++ - '0');
        *p = q;
        if (q - start < 20) /* 19 digits always fit */
                return *ret = v, true;
        v = 0;
        for (q = start; q < *p; q++) {
                unsigned d = (unsigned)(*q - '0');

                if (v > (UINT64_MAX - d) / 10)
                        return false;
                v = v * 10 + d;
        }
        *ret = v;
        return true;
}

/* A number at r->p: an INTEGER when json-c keeps it as one, else a NUMBER with its literal. */
static int read_number(JsonReader *r, JsonStreamToken *t) {
        char *start = r->p, *p = start;
        bool integer = true, fits;
        uint64_t v = 0;

        t->negative = *p == '-';
        p += t->negative;
        if (!is_class(*p, CLASS_DIGIT))
                return bad(r, "bad number");
        if (*p == '0' && is_class(p[1], CLASS_DIGIT))
                return bad(r, "number with a leading zero");
        fits = read_digits(&p, &v);
        if (*p == '.') {
                integer = false;
                if (!is_class(*++p, CLASS_DIGIT))
                        return bad(r, "bad fraction");
                while (is_class(*p, CLASS_DIGIT))
                        p++;
        }
        if (*p == 'e' || *p == 'E') {
                integer = false;
                p++;
                if (*p == '+' || *p == '-')
                        p++;
                if (!is_class(*p, CLASS_DIGIT))
                        return bad(r, "bad exponent");
                while (is_class(*p, CLASS_DIGIT))
                        p++;
        }
        r->p = p;
        if (integer && fits && (!t->negative || v <= (uint64_t)INT64_MAX + 1)) {
                t->kind = JSON_DISPATCH_KIND_INTEGER;
                t->magnitude = v;
                t->negative = t->negative && v > 0;
                return 0;
        }
        t->kind = JSON_DISPATCH_KIND_NUMBER;
        t->negative = false;
        t->text = start;
        t->length = (size_t)(p - start);
        return 0;
}

/* Whether word (n letters) is at p; the NUL at the end stops the comparison in time. */
static bool word_at(const char *p, const char *word, size_t n) {
        for (size_t i = 0; i < n; i++)
                if (p[i] != word[i])
                        return false;
        return true;
}

static int read_word(JsonReader *r, JsonStreamToken *t) {
        static const struct {
                const char *word;
                size_t n;
                JsonDispatchKind kind;
                bool value;
        } words[] = {
                { "true", 4, JSON_DISPATCH_KIND_BOOLEAN, true },
                { "false", 5, JSON_DISPATCH_KIND_BOOLEAN, false },
                { "null", 4, JSON_DISPATCH_KIND_NULL, false },
        };

        for (size_t i = 0; i < ELEMENTSOF(words); i++)
                if (word_at(r->p, words[i].word, words[i].n)) {
                        r->p += words[i].n;
                        t->kind = words[i].kind;
                        t->boolean = words[i].value;
                        return 0;
                }
        return bad(r, "unexpected character");
}

static int read_value(JsonReader *r);

/*
 * Refuses an object that names a member twice: json-c keeps the last value where the first
 * stood, and json_util_fix_big_integers() may then judge one literal by another's value.
 * Such messages are json-c's to read.  Names hold no NUL (read_key()), so length and bytes
 * say it.  Called only for an object where two names share a name_sketch() bit.
 */
static int check_unique(JsonReader *r, size_t first, size_t end) {
        const JsonStreamToken *t = r->s->tape;

        for (size_t i = first; i < end; i = t[i + 1].next)
                for (size_t k = t[i + 1].next; k < end; k = t[k + 1].next)
                        if (t[i].length == t[k].length && t[i].text[0] == t[k].text[0] &&
                            memcmp(t[i].text, t[k].text, t[i].length) == 0)
                                return bad(r, "a member given twice");
        return 0;
}

/*
 * A bit for a member's name, from its length and its first and last bytes, mixed by a
 * multiplication: names whose bits differ need no comparison for duplicates.  The parameters
 * of every streamed method and the envelope's members all get bits of their own.
 */
static uint64_t name_sketch(const JsonStreamToken *key) {
        size_t n = key->length;
        uint32_t ends = n ? (uint8_t)key->text[0] * 3u + (uint8_t)key->text[n - 1] : 0;

        return UINT64_C(1) << ((((uint32_t)n + ends) * 31153u >> 7) & 63);
}

/* A member's name and its colon, at r->p; ORs its sketch into *names, says if it was there. */
static int read_member_name(JsonReader *r, uint64_t *names, bool *ret_collides) {
        JsonStreamToken *key;
        uint64_t bit;
        int k;

        if (*r->p != '"')
                return bad(r, "expected a member name");
        key = token_new(r, JSON_DISPATCH_KIND_STRING);
        if (!key)
                return -E2BIG;
        k = read_key(r, key);
        if (k < 0)
                return k;
        key->next = (uint32_t)r->s->used;
        bit = name_sketch(key);
        *ret_collides = *ret_collides || (*names & bit);
        *names |= bit;
        r->p = skip_space(r->p);
        if (*r->p != ':')
                return bad(r, "expected ':'");
        r->p++;
        return 0;
}

/* The members or elements of a container whose opening bracket r->p is on. */
static int read_container(JsonReader *r, bool object) {
        char close = object ? '}' : ']';
        size_t first = r->s->used;
        uint64_t names = 0;
        bool collides = false;

        if (++r->depth > r->max_depth)
                return error_set(r->err, -ELOOP, "JSON nested deeper than %u levels",
                                 r->max_depth);
        r->p = skip_space(r->p + 1);
        if (*r->p == close) {
                r->p++;
                r->depth--;
                return 0;
        }
        for (;;) {
                int k;

                r->p = skip_space(r->p);
                if (object && (k = read_member_name(r, &names, &collides)) < 0)
                        return k;
                k = read_value(r);
                if (k < 0)
                        return k;
                r->p = skip_space(r->p);
                if (*r->p == ',') {
                        r->p++;
                        continue;
                }
                if (*r->p == close && r->p < r->end)
                        break;
                return bad(r, object ? "expected ',' or '}'" : "expected ',' or ']'");
        }
        r->p++;
        r->depth--;
        return collides ? check_unique(r, first, r->s->used) : 0;
}

static int read_value(JsonReader *r) {
        JsonStreamToken *t;
        char c;
        int k;

        r->p = skip_space(r->p);
        if (r->p >= r->end)
                return error_set(r->err, -EBADMSG, "message ends inside a JSON value");
        t = token_new(r, JSON_DISPATCH_KIND_NULL);
        if (!t)
                return -E2BIG;
        c = *r->p;
        if (c == '"')
                k = read_string(r, t);
        else if (c == '-' || is_class(c, CLASS_DIGIT))
                k = read_number(r, t);
        else if (c == '{' || c == '[') {
                t->kind = c == '{' ? JSON_DISPATCH_KIND_OBJECT : JSON_DISPATCH_KIND_ARRAY;
                k = read_container(r, c == '{');
        } else
                k = read_word(r, t);
        if (k < 0)
                return k;
        /* The tape is the caller's and does not move: t is still valid. */
        t->next = (uint32_t)r->s->used;
        return 0;
}

int json_stream_parse(JsonStream *s, char *text, size_t len, unsigned max_depth, Error *err) {
        JsonReader r = { .s = s, .p = text, .end = text + len, .max_depth = max_depth, .err = err };
        int k;

        assert_return(s && s->tape && text && text[len] == '\0', -EINVAL);

        s->used = 0;
        r.p = skip_space(r.p);
        if (r.p >= r.end)
                return error_set(err, -EBADMSG, "message ends inside a JSON value");
        if (*r.p != '{')
                return error_set(err, -EBADMSG, "message is not a JSON object");
        k = read_value(&r);
        if (k < 0)
                return k;
        r.p = skip_space(r.p);
        if (r.p < r.end)
                return error_set(err, -EBADMSG, "trailing data after the JSON value");
        return 0;
}

/* ---- dispatching: the tape into a struct ------------------------------------------------- */

static size_t index_of(const JsonStream *s, const JsonStreamToken *t) {
        return (size_t)(t - s->tape);
}

static void value_of(JsonStream *s, const JsonStreamToken *t, JsonDispatchValue *ret) {
        *ret = (JsonDispatchValue){ .kind = t->kind, .boolean = t->boolean,
                                    .negative = t->negative, .magnitude = t->magnitude,
                                    .text = t->text, .length = t->length };
        if (t->kind == JSON_DISPATCH_KIND_NUMBER) {
                /* The literal is not terminated in the document: messages quote a copy. */
                size_t n = MIN(t->length, sizeof(s->number) - 1);

                memcpy(s->number, t->text, n);
                s->number[n] = '\0';
                ret->text = s->number;
                ret->length = n;
        }
}

static int stream_object(JsonStream *s, size_t o, const JsonDispatchField *table, void *target,
                         const JsonDispatchPath *path, const char **ret_field, Error *err);

static int stream_array(JsonStream *s, const JsonDispatchField *f, size_t a, void *target,
                        const JsonDispatchPath *path, Error *err);

static int stream_member(JsonStream *s, const JsonDispatchField *f, size_t v, void *target,
                         const JsonDispatchPath *path, Error *err) {
        JsonDispatchValue value;
        int r;

        value_of(s, &s->tape[v], &value);
        if (f->type == JSON_DISPATCH_OBJECT && value.kind == JSON_DISPATCH_KIND_OBJECT)
                r = stream_object(s, v, f->fields, (uint8_t *)target + f->offset, path, NULL,
                                  err);
        else if (f->type == JSON_DISPATCH_ARRAY && value.kind == JSON_DISPATCH_KIND_ARRAY)
                r = stream_array(s, f, v, target, path, err);
        else
                return json_dispatch_value(f, &value, target, path, err);
        if (r < 0)
                return r;
        if (f->presence > 0)
                *(bool *)((uint8_t *)target + f->presence - 1) = true;
        return 0;
}

static int stream_array(JsonStream *s, const JsonDispatchField *f, size_t a, void *target,
                        const JsonDispatchPath *path, Error *err) {
        uint8_t *base = (uint8_t *)target + f->offset;
        size_t n = 0, i, end = s->tape[a].next;

        assert_return(f->element, -EINVAL);
        for (i = a + 1; i < end; i = s->tape[i].next)
                n++;
        if (f->max > 0 && n > f->max) {
                char buf[JSON_DISPATCH_PATH_MAX];

                return error_set(err, -EINVAL, "%s: %zu elements, at most %" PRIu64 " are accepted",
                                 json_dispatch_path_format(path, buf, sizeof(buf)), n, f->max);
        }
        if (f->element_size > 0) {
                void **array = (void **)base;
                size_t *count = (size_t *)((uint8_t *)target + f->count_offset);

                /* A document decoded into the same struct before. */
                json_dispatch_clear(&(const JsonDispatchField[]){ *f, {} }[0], target);
                if (n > 0 && !(*array = calloc(n, f->element_size)))
                        return error_set(err, -ENOMEM, "out of memory");
                *count = n;
        }
        i = a + 1;
        for (size_t k = 0; k < n; k++, i = s->tape[i].next) {
                void *element = f->element_size > 0 ? *(uint8_t **)base + k * f->element_size
                                                    : base;
                int r = stream_member(s, f->element, i, element,
                                      &(JsonDispatchPath){ .parent = path, .index = k }, err);

                if (r < 0)
                        return r;
        }
        return 0;
}

static int stream_object(JsonStream *s, size_t o, const JsonDispatchField *table, void *target,
                         const JsonDispatchPath *path, const char **ret_field, Error *err) {
        const JsonDispatchField *f = NULL;
        size_t end = s->tape[o].next;
        uint64_t seen = 0;
        char buf[JSON_DISPATCH_PATH_MAX];
        int r;

        if (s->tape[o].kind != JSON_DISPATCH_KIND_OBJECT)
                return error_set(err, -EINVAL, "%s: expected an object",
                                 json_dispatch_path_format(path, buf, sizeof(buf)));
        for (size_t k = o + 1; k < end; k = s->tape[k + 1].next) {
                const char *key = s->tape[k].text;
                const JsonDispatchPath p = { .parent = path, .name = key };
                size_t v = k + 1;

                f = json_dispatch_find_next(table, f, key, s->tape[k].length, s->tape[v].kind);
                if (!f)
                        r = error_set(err, -EINVAL, "%s: unknown key",
                                      json_dispatch_path_format(&p, buf, sizeof(buf)));
                else
                        r = stream_member(s, f, v, target, &p, err);
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

const JsonStreamToken *json_stream_member(const JsonStream *s, const JsonStreamToken *object,
                                          const char *name) {
        size_t o, end;

        assert_return(s && object && name, NULL);
        o = index_of(s, object);
        if (object->kind != JSON_DISPATCH_KIND_OBJECT)
                return NULL;
        end = object->next;
        for (size_t k = o + 1; k < end; k = s->tape[k + 1].next)
                if (streq(s->tape[k].text, name))
                        return &s->tape[k + 1];
        return NULL;
}

int json_stream_dispatch(JsonStream *s, const JsonStreamToken *o, const JsonDispatchField *table,
                         void *target, const char *path, const char **ret_field, Error *err) {
        assert_return(s && o && (target || !table), -EINVAL);

        if (ret_field)
                *ret_field = NULL;
        return stream_object(s, index_of(s, o), table, target,
                             &(JsonDispatchPath){ .name = path ?: "" }, ret_field, err);
}

/* ---- decoding: the bytes straight into a struct ------------------------------------------ */

/*
 * The cursor reads the same bytes with the same functions as the tape, but records nothing:
 * each member is decoded into the target as soon as it is read.  Whatever is not plain and
 * right (a mistake, a member given twice or unknown, a name with escapes, a number that is not
 * a 64-bit integer) ends it with -EAGAIN, and the caller reads the document the other way,
 * whose verdict stands: so the cursor needs no messages, only to never accept what the tape
 * and the tables would refuse, nor differ in a value.
 */

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
                if (read_number(&c->r, &t) < 0 || t.kind != JSON_DISPATCH_KIND_INTEGER)
                        return -EAGAIN;
                *ret = (JsonDispatchValue){ .kind = t.kind, .negative = t.negative,
                                            .magnitude = t.magnitude };
        } else {
                if (read_word(&c->r, &t) < 0)
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

        c->r.p = skip_space(c->r.p);
        if (*c->r.p != (c->first ? '"' : ',')) { /* the object's end, or a mistake */
                k = json_cursor_next_member(c, &name, &len);
                return k > 0 ? -EAGAIN : k;
        }
        if (!c->first)
                c->r.p = skip_space(c->r.p + 1);
        if (*c->r.p == '"' && next->name && name_at(c->r.p, next->name, &len) &&
            !json_dispatch_in_run(table, next)) {
                c->r.p = skip_space(c->r.p + len + 2);
                if (*c->r.p != ':')
                        return -EAGAIN;
                c->r.p = skip_space(c->r.p + 1);
                c->first = false;
                *i += 1;
                return 1;
        }
        c->first = true; /* the separator is behind: read the member as the first one */
        k = json_cursor_next_member(c, &name, &len);
        if (k <= 0)
                return k < 0 ? k : -EAGAIN;
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
        JsonDispatchValue v;

        c->r.p = skip_space(c->r.p);
        if (*c->r.p != '"' || cursor_scalar(c, &v) < 0 || memchr(v.text, '\0', v.length))
                return -EAGAIN;
        *ret = v.text;
        *ret_len = v.length;
        return 0;
}

int json_cursor_end(JsonCursor *c) {
        c->r.p = skip_space(c->r.p);
        return c->r.p == c->r.end && c->r.depth == 0 ? 0 : -EAGAIN;
}
