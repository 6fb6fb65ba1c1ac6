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

/*
 * A cursor over a document that decodes as it reads, recording nothing: for callers that know
 * the table of an object before they reach it (a Varlink call names its method before its
 * parameters).  It takes only what is plain and right; everything else — a mistake, a member
 * given twice or unknown, a member name with escapes, a number that is no 64-bit integer —
 * ends it with -EAGAIN, after which the caller reads the document with json_stream_parse()
 * (or json-c), whose verdict stands.  What the cursor decodes, json_stream_dispatch() decodes
 * alike (fuzz-json-stream holds it to that).  Strings are decoded in place, as by
 * json_stream_parse(); text[len] must be a NUL.
 */
/* Where a reader is in a document (json-stream.c's own). */
typedef struct JsonReader {
        JsonStream *s;       /* the tape; NULL for a cursor */
        char *p, *end;
        unsigned depth, max_depth;
        Error *err;          /* why it stopped; NULL for a cursor */
} JsonReader;

typedef struct JsonCursor {
        JsonReader r;
        bool first; /* no member read yet in the object it is in */
} JsonCursor;

void json_cursor_init(JsonCursor *c, char *text, size_t len, unsigned max_depth);
/* Enters the object at the cursor. */
int json_cursor_enter_object(JsonCursor *c);
/* 1 and the name of the next member (the cursor on its value), or 0 at the object's end. */
int json_cursor_next_member(JsonCursor *c, const char **ret_name, size_t *ret_len);
/*
 * 1 when the next member is named name (len bytes without '"', '\\' or NUL), compared in
 * place without reading the name first, the cursor then on its value; 0, the cursor
 * unmoved, for anything else.
 */
int json_cursor_member_is(JsonCursor *c, const char *name, size_t len);
/* A string without a NUL inside, or a boolean, at the cursor. */
int json_cursor_string(JsonCursor *c, const char **ret, size_t *ret_len);
int json_cursor_bool(JsonCursor *c, bool *ret);
/* Whether the value at the cursor is the plain string text (len bytes without '"', '\\' or
 * NUL), compared in place; the cursor moves past it only when it is. */
bool json_cursor_string_is(JsonCursor *c, const char *text, size_t len);
/*
 * Decodes the object at the cursor with table into target (zero-filled by the caller, who
 * clears it with json_dispatch_clear() also after a failure), or the value at the cursor for
 * the entry f.
 */
int json_cursor_decode_object(JsonCursor *c, const JsonDispatchField *table, void *target);
int json_cursor_decode_value(JsonCursor *c, const JsonDispatchField *f, void *target);
/* Only whitespace after the top-level value. */
int json_cursor_end(JsonCursor *c);
