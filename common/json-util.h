/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Typed getters for the members of a JSON object (Varlink parameters).  Each
 * returns 0 with the value, -ENOENT when the member is missing, or -EINVAL
 * when it has the wrong type or range, and fills err with a sentence that
 * names the parameter: "parameter 'iova': expected an unsigned integer, got a string".
 * With JSON_UTIL_OPTIONAL a missing member (or JSON null) returns 0 and leaves
 * *ret untouched, so callers preset defaults.
 */

#include <stdbool.h>
#include <stdint.h>

#include <json-c/json.h>

#include "error.h"

typedef enum JsonUtilFlags {
        JSON_UTIL_OPTIONAL = 1 << 0,
} JsonUtilFlags;

int json_util_get_u64(json_object *obj, const char *name, JsonUtilFlags flags, uint64_t *ret,
                      Error *err);
int json_util_get_u32(json_object *obj, const char *name, JsonUtilFlags flags, uint32_t *ret,
                      Error *err);
int json_util_get_bool(json_object *obj, const char *name, JsonUtilFlags flags, bool *ret,
                       Error *err);
/* The string is owned by obj. */
int json_util_get_string(json_object *obj, const char *name, JsonUtilFlags flags,
                         const char **ret, Error *err);
/* Borrowed members; the caller json_object_get()s them to keep them. */
int json_util_get_object(json_object *obj, const char *name, JsonUtilFlags flags,
                         json_object **ret, Error *err);
int json_util_get_array(json_object *obj, const char *name, JsonUtilFlags flags,
                        json_object **ret, Error *err);

/* The unsigned value of an integer node; -EINVAL for other types and negative numbers. */
int json_util_to_u64(json_object *o, uint64_t *ret);

/* Adds key/value to obj; takes value in every case.  Returns -ENOMEM if value is NULL. */
int json_util_add(json_object *obj, const char *key, json_object *value);

/*
 * json-c reads an integer literal beyond [INT64_MIN, UINT64_MAX] as the nearest bound, so
 * 10^30 would pass for 2^64-1.  This replaces every such node of root, parsed from text
 * (len bytes), by a floating-point node that keeps the literal as written: readers then
 * refuse a number that is no 64-bit integer instead of taking a wrong one.  A text without a
 * run of 19 digits costs one pass over its bytes.  Returns 0, or -ENOMEM.
 */
int json_util_fix_big_integers(json_object *root, const char *text, size_t len);

/* The JSON type name with an article, for messages: "a string", "an array", "null". */
const char *json_util_type_phrase(json_object *o);
