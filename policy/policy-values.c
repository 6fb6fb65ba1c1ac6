/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* Typed values of the policy files: strings, counts, sizes, patterns, device matchers. */

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "macros.h"
#include "policy-parser.h"

/* Records a problem at the value (or its key) at path; returns -EINVAL. */
int policy_parse_error(Parser *P, const char *path, bool at_key, const char *fmt, ...) {
        const JsonPos *pos = json_pos_index_find(&P->idx, path);
        unsigned line = 0, column = 0;
        va_list ap;

        if (pos) {
                line = at_key ? pos->key_line : pos->line;
                column = at_key ? pos->key_column : pos->column;
        }
        va_start(ap, fmt);
        if (policy_diagnostics_addv(P->diags, P->file, line, column, path, fmt, ap) < 0)
                P->fatal = true;
        va_end(ap);
        return -EINVAL;
}

const char *policy_json_type_name(json_object *v) {
        switch (json_object_get_type(v)) {
        case json_type_null: return "null";
        case json_type_boolean: return "a boolean";
        case json_type_double: return "a number with a fraction";
        case json_type_int: return "an integer";
        case json_type_object: return "an object";
        case json_type_array: return "an array";
        case json_type_string: return "a string";
        }
        return "something else";
}

int policy_expect_type(Parser *P, json_object *v, const char *path, json_type t, const char *what) {
        if (json_object_is_type(v, t))
                return 0;
        return policy_parse_error(P, path, false, "expected %s, got %s", what,
                                  policy_json_type_name(v));
}

int policy_parse_string(Parser *P, json_object *v, const char *path, const char **ret) {
        int r = policy_expect_type(P, v, path, json_type_string, "a string");
        if (r < 0)
                return r;
        *ret = json_object_get_string(v);
        return 0;
}

int policy_parse_bool(Parser *P, json_object *v, const char *path, bool *ret) {
        int r = policy_expect_type(P, v, path, json_type_boolean, "true or false");
        if (r < 0)
                return r;
        *ret = json_object_get_boolean(v);
        return 0;
}

/* A non-negative JSON integer. */
int policy_parse_json_uint(Parser *P, json_object *v, const char *path, uint64_t *ret) {
        if (!json_object_is_type(v, json_type_int))
                return policy_parse_error(P, path, false, "expected a non-negative integer, got %s",
                                          policy_json_type_name(v));
        if (json_object_get_int64(v) < 0)
                return policy_parse_error(P, path, false,
                                          "expected a non-negative integer, got %" PRIi64,
                                          json_object_get_int64(v));
        *ret = json_object_get_uint64(v);
        return 0;
}

static bool is_unlimited(const char *s) {
        return streq(s, "unlimited") || streq(s, "infinity");
}

/* A count: an integer or "unlimited". */
int policy_parse_count(Parser *P, json_object *v, const char *path, uint64_t *ret) {
        if (json_object_is_type(v, json_type_string)) {
                if (is_unlimited(json_object_get_string(v))) {
                        *ret = UINT64_MAX;
                        return 0;
                }
                return policy_parse_error(
                        P, path, false,
                        "invalid count '%s': expected a non-negative integer or \"unlimited\"",
                        json_object_get_string(v));
        }
        return policy_parse_json_uint(P, v, path, ret);
}

/* Parses "4G", "512MiB", "1048576", "64K"; binary multiples. */
static int size_from_string(const char *s, uint64_t *ret) {
        static const char suffixes[] = "KMGTPE";
        uint64_t v = 0, mult = 1;
        const char *p = s, *q;

        if (!isdigit((unsigned char)*p))
                return -EINVAL;
        for (; isdigit((unsigned char)*p); p++) {
                if (MUL_OVERFLOW(v, 10, &v) || ADD_OVERFLOW(v, (uint64_t)(*p - '0'), &v))
                        return -ERANGE;
        }
        while (*p == ' ')
                p++;
        if (*p) {
                q = strchr(suffixes, toupper((unsigned char)*p));
                if (!q)
                        return -EINVAL;
                mult = UINT64_C(1) << (10 * (q - suffixes + 1));
                p++;
                if (*p == 'i' && p[1] == 'B')
                        p += 2;
                else if (*p == 'B')
                        p++;
                if (*p)
                        return -EINVAL;
        }
        if (MUL_OVERFLOW(v, mult, &v))
                return -ERANGE;
        *ret = v;
        return 0;
}

int policy_parse_size(Parser *P, json_object *v, const char *path, uint64_t max,
                      const char *max_name, bool unlimited, uint64_t *ret) {
        const char *s = NULL;
        uint64_t u;
        int r;

        if (!json_object_is_type(v, json_type_string)) {
                r = policy_parse_json_uint(P, v, path, &u);
                if (r < 0)
                        return r;
        } else {
                s = json_object_get_string(v);
                if (is_unlimited(s) && unlimited) {
                        *ret = UINT64_MAX;
                        return 0;
                }
                if (is_unlimited(s))
                        return policy_parse_error(P, path, false,
                                                  "a size here cannot be \"%s\": it bounds what "
                                                  "iommud holds; at most %s",
                                                  s, max_name);
                r = size_from_string(s, &u);
                if (r == -ERANGE)
                        return policy_parse_error(P, path, false,
                                                  "size '%s' does not fit in 64 bits", s);
                if (r < 0)
                        return policy_parse_error(P, path, false,
                                                  "invalid size '%s': expected bytes with an "
                                                  "optional K, M, G, T, P or E suffix (e.g. "
                                                  "\"4G\")%s",
                                                  s, unlimited ? ", or \"unlimited\"" : "");
        }
        if (u > max) {
                if (s)
                        return policy_parse_error(P, path, false, "size '%s' is above %s%s", s,
                                                  max_name,
                                                  unlimited ? "; write \"unlimited\" for no limit"
                                                            : "");
                return policy_parse_error(P, path, false, "size %" PRIu64 " is above %s%s", u,
                                          max_name,
                                          unlimited ? "; write \"unlimited\" for no limit" : "");
        }
        *ret = u;
        return 0;
}

/* An address: an integer, or a string in hex ("0x...") or decimal. */
int policy_parse_u64(Parser *P, json_object *v, const char *path, uint64_t *ret) {
        const char *s;
        char *end;
        unsigned long long u;

        if (!json_object_is_type(v, json_type_string))
                return policy_parse_json_uint(P, v, path, ret);
        s = json_object_get_string(v);
        errno = 0;
        u = strtoull(s, &end, 0);
        if (!isdigit((unsigned char)s[0]) || *end || errno != 0)
                return policy_parse_error(
                        P, path, false,
                        "invalid address '%s': expected an integer, hex (0x...) or decimal", s);
        *ret = u;
        return 0;
}

int policy_source_remember(Parser *P, const char *path, PolicySource *ret) {
        const JsonPos *pos = json_pos_index_find(&P->idx, path);

        *ret = (PolicySource){ .file = strdup(P->file), .path = strdup(path) };
        if (!ret->file || !ret->path) {
                free(ret->file);
                free(ret->path);
                *ret = (PolicySource){};
                P->fatal = true;
                return -ENOMEM;
        }
        if (pos) {
                ret->line = pos->line;
                ret->column = pos->column;
        }
        return 0;
}

/* Reports every key of obj that is not in allowed (NULL-terminated). */
int policy_check_keys(Parser *P, json_object *obj, const char *path, const char *const *allowed) {
        int r = 0;

        json_object_object_foreach(obj, key, val) {
                char child[JPATH_MAX], list[256] = "";
                bool found = false;
                size_t n = 0;

                (void)val;
                for (const char *const *a = allowed; *a; a++)
                        if (streq(*a, key))
                                found = true;
                if (found)
                        continue;
                for (const char *const *a = allowed; *a; a++)
                        n += (size_t)snprintf(list + n, n < sizeof(list) ? sizeof(list) - n : 0,
                                              "%s%s", a == allowed ? "" : ", ", *a);
                json_pos_path_key(child, sizeof(child), path, key);
                r = policy_parse_error(P, child, true, "unknown key '%s'; expected one of: %s", key,
                                       list);
        }
        return r;
}

const char *policy_glob_problem(const char *s) {
        if (!*s)
                return "it is empty";
        for (const char *p = s; *p; p++) {
                if (*p == '\\') {
                        if (!p[1])
                                return "it ends in a lone backslash";
                        p++;
                } else if (*p == '[') {
                        const char *q = p + 1;

                        if (*q == '!' || *q == '^')
                                q++;
                        if (*q == ']')
                                q++; /* a leading ']' is literal */
                        while (*q && *q != ']')
                                q++;
                        if (!*q)
                                return "'[' has no matching ']'";
                        p = q;
                } else if ((unsigned char)*p < 0x20)
                        return "it contains a control character";
        }
        return NULL;
}

/*
 * Why a device-name or driver pattern can match nothing on any host, or NULL.  Such names
 * never hold white space, and PCI devices are named with their domain: lspci's short
 * "01:00.0" (or "01:00.*") is never a name.
 */
static const char *unmatchable_problem(const char *s, const char *what) {
        if (strpbrk(s, " \t\n\r\v\f"))
                return "it contains white space, which no name has";
        if (streq(what, "bdf") && isxdigit((unsigned char)s[0]) && isxdigit((unsigned char)s[1]) &&
            s[2] == ':')
                return "PCI device names start with their domain: write '0000:' before it "
                       "(lspci -D prints them so)";
        return NULL;
}

static int parse_glob(Parser *P, json_object *v, const char *path, const char *what,
                      char **ret, GlobKind *ret_kind) {
        const char *s, *problem;
        char *c;
        int r;

        r = policy_parse_string(P, v, path, &s);
        if (r < 0)
                return r;
        problem = policy_glob_problem(s) ?: unmatchable_problem(s, what);
        if (problem)
                return policy_parse_error(P, path, false, "invalid %s pattern '%s': %s", what, s,
                                          problem);
        c = strdup(s);
        if (!c) {
                P->fatal = true;
                return -ENOMEM;
        }
        *ret = c;
        if (ret_kind)
                *ret_kind = policy_glob_kind(s);
        return 0;
}

static int parse_hex_or_star(const char *s, size_t n, int32_t *ret) {
        int32_t v = 0;

        if (n == 1 && s[0] == '*') {
                *ret = -1;
                return 0;
        }
        if (n != 4)
                return -EINVAL;
        for (size_t i = 0; i < n; i++) {
                if (!isxdigit((unsigned char)s[i]))
                        return -EINVAL;
                v = v * 16 + (int32_t)(isdigit((unsigned char)s[i]) ? s[i] - '0'
                                                                    : tolower((unsigned char)s[i]) - 'a' + 10);
        }
        *ret = v;
        return 0;
}

static int parse_id(Parser *P, json_object *v, const char *path, DeviceMatcher *m) {
        const char *s, *colon;
        int r;

        r = policy_parse_string(P, v, path, &s);
        if (r < 0)
                return r;
        colon = strchr(s, ':');
        if (!colon || parse_hex_or_star(s, (size_t)(colon - s), &m->vendor) < 0 ||
            parse_hex_or_star(colon + 1, strlen(colon + 1), &m->device) < 0)
                return policy_parse_error(P, path, false,
                                          "invalid id '%s': expected VENDOR:DEVICE, each 4 hex "
                                          "digits or '*' (e.g. \"8086:*\" or \"144d:a808\")",
                                          s);
        m->has_id = true;
        return 0;
}

static int parse_class(Parser *P, json_object *v, const char *path, DeviceMatcher *m) {
        const char *s;
        uint32_t value = 0, mask = 0;
        int r;

        r = policy_parse_string(P, v, path, &s);
        if (r < 0)
                return r;
        if (strlen(s) != 8 || s[0] != '0' || (s[1] != 'x' && s[1] != 'X'))
                goto bad;
        for (size_t i = 2; i < 8; i++) {
                char c = s[i];

                value <<= 4;
                mask <<= 4;
                if (c == 'x' || c == 'X')
                        continue;
                if (!isxdigit((unsigned char)c))
                        goto bad;
                value |= (uint32_t)(isdigit((unsigned char)c) ? c - '0' : tolower((unsigned char)c) - 'a' + 10);
                mask |= 0xF;
        }
        m->has_class = true;
        m->class_value = value;
        m->class_mask = mask;
        return 0;
bad:
        return policy_parse_error(P, path, false,
                                  "invalid class '%s': expected 0x and 6 hex digits, 'x' for any "
                                  "digit (e.g. \"0x010802\" or \"0x03xxxx\")",
                                  s);
}

int policy_append_description(char **desc, const char *fmt, ...) {
        _cleanup_free_ char *part = NULL;
        char *joined;
        va_list ap;
        int r;

        va_start(ap, fmt);
        r = vasprintf(&part, fmt, ap);
        va_end(ap);
        if (r < 0)
                return -ENOMEM;
        if (asprintf(&joined, "%s%s%s", *desc ?: "", *desc ? ", " : "", part) < 0)
                return -ENOMEM;
        free(*desc);
        *desc = joined;
        return 0;
}

static int parse_matcher(Parser *P, json_object *v, const char *path, DeviceMatcher *ret) {
        static const char *const keys[] = { "bdf", "id", "class", "driver", NULL };
        DeviceMatcher m = { .vendor = -1, .device = -1 };
        char child[JPATH_MAX];
        json_object *f;
        int r = 0, q = 0;

        if (json_object_is_type(v, json_type_string)) {
                r = parse_glob(P, v, path, "bdf", &m.bdf, &m.bdf_kind);
                if (r < 0)
                        return r;
                if (policy_append_description(&m.description, "bdf %s", m.bdf) < 0)
                        goto oom;
                *ret = m;
                return 0;
        }
        if (!json_object_is_type(v, json_type_object))
                return policy_parse_error(P, path, false,
                                          "expected a device matcher (a BDF pattern string or an "
                                          "object with bdf, id, class or driver), got %s",
                                          policy_json_type_name(v));
        r = policy_check_keys(P, v, path, keys);
        if (json_object_object_length(v) == 0)
                r = policy_parse_error(
                        P, path, false,
                        "a device matcher needs at least one of bdf, id, class, driver");

        if (json_object_object_get_ex(v, "bdf", &f)) {
                json_pos_path_key(child, sizeof(child), path, "bdf");
                q = parse_glob(P, f, child, "bdf", &m.bdf, &m.bdf_kind);
                if (q < 0)
                        r = q;
                else if (policy_append_description(&m.description, "bdf %s", m.bdf) < 0)
                        goto oom;
        }
        if (json_object_object_get_ex(v, "id", &f)) {
                json_pos_path_key(child, sizeof(child), path, "id");
                q = parse_id(P, f, child, &m);
                if (q < 0)
                        r = q;
                else if (policy_append_description(&m.description, "id %s",
                                                   json_object_get_string(f)) < 0)
                        goto oom;
        }
        if (json_object_object_get_ex(v, "class", &f)) {
                json_pos_path_key(child, sizeof(child), path, "class");
                q = parse_class(P, f, child, &m);
                if (q < 0)
                        r = q;
                else if (policy_append_description(&m.description, "class %s",
                                                   json_object_get_string(f)) < 0)
                        goto oom;
        }
        if (json_object_object_get_ex(v, "driver", &f)) {
                json_pos_path_key(child, sizeof(child), path, "driver");
                q = parse_glob(P, f, child, "driver", &m.driver, &m.driver_kind);
                if (q < 0)
                        r = q;
                else if (policy_append_description(&m.description, "driver %s", m.driver) < 0)
                        goto oom;
        }
        if (r < 0) {
                device_matcher_done(&m);
                return r;
        }
        *ret = m;
        return 0;
oom:
        device_matcher_done(&m);
        P->fatal = true;
        return -ENOMEM;
}

int policy_parse_matcher_list(Parser *P, json_object *v, const char *path, MatcherList *ret) {
        MatcherList l = {};
        size_t n;
        int r = 0;

        if (!json_object_is_type(v, json_type_array)) {
                DeviceMatcher m;

                r = parse_matcher(P, v, path, &m);
                if (r < 0)
                        return r;
                l.items = malloc(sizeof(DeviceMatcher));
                if (!l.items) {
                        device_matcher_done(&m);
                        P->fatal = true;
                        return -ENOMEM;
                }
                l.items[0] = m;
                l.n = 1;
                *ret = l;
                return 0;
        }

        n = json_object_array_length(v);
        l.items = calloc(n ?: 1, sizeof(DeviceMatcher));
        if (!l.items) {
                P->fatal = true;
                return -ENOMEM;
        }
        for (size_t i = 0; i < n; i++) {
                char child[JPATH_MAX];
                int q;

                json_pos_path_index(child, sizeof(child), path, i);
                q = parse_matcher(P, json_object_array_get_idx(v, i), child, &l.items[l.n]);
                if (q < 0)
                        r = q;
                else
                        l.n++;
        }
        if (r < 0) {
                matcher_list_done(&l);
                return r;
        }
        *ret = l;
        return 0;
}
