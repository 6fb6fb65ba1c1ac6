/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * A JSON reader without a tree, for the calls that come often (Map, Unmap, Copy,
 * RespondFault): it checks the whole document once, recording its values on a tape the
 * caller provides (no allocation), decoding strings in place in the caller's buffer; then it
 * drives the json-dispatch tables from the tape, so that a method's parameter struct is
 * filled straight from the bytes.  It reads RFC 8259 JSON; what it accepts, the wire reader
 * (json-c, strict, with json_util_fix_big_integers()) accepts too and hands the tables the
 * same values: the fuzz target fuzz-json-stream holds it to that.  json-c also takes things
 * this reader refuses (single quotes, NaN, a member given twice): a caller that meets a refusal reads the message
 * again with json-c, whose verdict stands.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "json-dispatch.h"

typedef struct JsonStreamToken {
        JsonDispatchKind kind;
        uint32_t next;       /* the token after this value and everything inside it */
        bool boolean;        /* BOOLEAN */
        bool negative;       /* INTEGER */
        uint64_t magnitude;  /* INTEGER */
        const char *text;    /* STRING: decoded, NUL-terminated; NUMBER: the literal (not) */
        size_t length;       /* STRING bytes; NUMBER literal bytes */
} JsonStreamToken;

typedef struct JsonStream {
        JsonStreamToken *tape;
        size_t n_tape, used;
        char number[64];     /* a NUMBER literal, NUL-terminated, for messages */
} JsonStream;

/*
 * json_stream_parse() - checks text[0..len) (one JSON object, whitespace around it) and
 * records it on the tape.  text[len] must be a NUL, at which the scans stop.  Strings are
 * decoded in place: text is changed.
 *
 * Returns 0; -EBADMSG (not plain JSON, or not an object), -ELOOP (nested deeper than
 * max_depth) or -E2BIG (more values than the tape holds) with a sentence in err: the
 * document is then json-c's to judge.
 */
int json_stream_parse(JsonStream *s, char *text, size_t len, unsigned max_depth, Error *err);

/*
 * json_stream_member() - the token of the value of member name of object, or NULL when it
 * has none.
 */
const JsonStreamToken *json_stream_member(const JsonStream *s, const JsonStreamToken *object,
                                          const char *name);

/*
 * json_stream_dispatch() - decodes the object at token o of a parsed stream into target,
 * with the rules and results of json_dispatch() on the same document.
 */
int json_stream_dispatch(JsonStream *s, const JsonStreamToken *o, const JsonDispatchField *table,
                         void *target, const char *path, const char **ret_field, Error *err);
