/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "assert-util.h"
#include "json-reader.h"
#include "macros.h"

/* ---- reading: the document onto the tape ------------------------------------------------- */

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
int json_reader_string_decoded(JsonReader *r, JsonStreamToken *t) {
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
int json_reader_number(JsonReader *r, JsonStreamToken *t) {
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

int json_reader_word(JsonReader *r, JsonStreamToken *t) {
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
                k = json_reader_number(r, t);
        else if (c == '{' || c == '[') {
                t->kind = c == '{' ? JSON_DISPATCH_KIND_OBJECT : JSON_DISPATCH_KIND_ARRAY;
                k = read_container(r, c == '{');
        } else
                k = json_reader_word(r, t);
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
