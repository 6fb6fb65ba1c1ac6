/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * What the tape (json-stream.c) and the cursor (json-cursor.c) both read with: byte classes
 * and the scanners of strings, numbers and words.  Private to the two.
 */

#include <stdbool.h>
#include <stdint.h>

#include "json-stream.h"

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

/* The rest of a string from r->p on, which needs decoding: escapes, or a NUL inside.  1. */
int json_reader_string_decoded(JsonReader *r, JsonStreamToken *t);
/* A number at r->p: an INTEGER when json-c keeps it as one, else a NUMBER with its literal. */
int json_reader_number(JsonReader *r, JsonStreamToken *t);
/* true, false or null at r->p. */
int json_reader_word(JsonReader *r, JsonStreamToken *t);

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
        return json_reader_string_decoded(r, t);
}

/* Whether word (n letters) is at p; the NUL at the end stops the comparison in time. */
static inline bool word_at(const char *p, const char *word, size_t n) {
        for (size_t i = 0; i < n; i++)
                if (p[i] != word[i])
                        return false;
        return true;
}
