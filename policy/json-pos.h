/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Positions of JSON values in their source text.  json-c builds the tree but
 * forgets where each value came from; the policy needs "file:line:column" for
 * every semantic error.  This module scans the same text again (after json-c
 * accepted it) and records, for every value, its JSON path ("rules.nvme.match")
 * and where its key and its value start.  It also finds duplicate keys, which
 * json-c silently collapses.
 *
 * Paths: object members are ".key" (no leading dot at the top level), or
 * ["key"] when the key has characters other than letters, digits, '_' and '-';
 * array elements are "[N]".  The root is "".
 */

#include <stddef.h>

typedef struct JsonPos {
        char *path;
        size_t offset;           /* of the value, to keep the first of duplicates */
        unsigned line, column;   /* the value, 1-based */
        unsigned key_line, key_column; /* its key; equal to line/column for array elements */
} JsonPos;

typedef struct JsonPosDuplicate {
        char *path;
        unsigned line, column;             /* the repeated key */
        unsigned first_line, first_column; /* where it was first defined */
} JsonPosDuplicate;

typedef struct JsonPosIndex {
        JsonPos *items;          /* sorted by path */
        size_t n;
        JsonPosDuplicate *duplicates;
        size_t n_duplicates;
} JsonPosIndex;

/*
 * Replaces comments ("// ..." to the end of the line and block comments) with
 * spaces, keeping newlines, so that offsets and line numbers stay the same and
 * json-c can parse the text strictly.  On an unterminated block comment returns
 * -EINVAL and the offset where it starts.
 */
int json_pos_strip_comments(char *text, size_t len, size_t *ret_error_offset);

/* Converts a byte offset to 1-based line and column (columns count UTF-8 characters). */
void json_pos_offset_to_line_column(const char *text, size_t len, size_t offset,
                                    unsigned *ret_line, unsigned *ret_column);

/* Builds the index of text, which must be valid JSON without comments. */
int json_pos_index_build(JsonPosIndex *idx, const char *text, size_t len);
void json_pos_index_clear(JsonPosIndex *idx);
const JsonPos *json_pos_index_find(const JsonPosIndex *idx, const char *path);

/* Writes parent + member/element into buf (always NUL-terminated, truncated if needed). */
void json_pos_path_key(char *buf, size_t size, const char *parent, const char *key);
void json_pos_path_index(char *buf, size_t size, const char *parent, size_t index);
