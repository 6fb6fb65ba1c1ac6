/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <inttypes.h>

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
