/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Loading the policy: reading the drop-in files, parsing them with json-c,
 * validating every value against the schema documented in iommud.policy(5),
 * and merging them into one Policy.  Every problem becomes a diagnostic with
 * file, line, column and JSON path; loading goes on after a problem so that
 * one run reports them all.
 */

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>

#include "file-util.h"
#include "json-pos.h"
#include "macros.h"
#include "policy-internal.h"
#include "policy.h"
#include "user-util.h"

#define POLICY_FILE_MAX (16u * 1024u * 1024u)
#define POLICY_MAX_DEPTH 64
#define JPATH_MAX 1024

typedef struct Parser {
        const char *file;
        const char *text;
        size_t len;
        JsonPosIndex idx;
        PolicyDiagnostics *diags;
        bool fatal;              /* out of memory: stop */
} Parser;

static const char *const quota_keys[_QUOTA_FIELD_MAX] = {
        [QUOTA_PINNED_BYTES] = "pinned-memory",
        [QUOTA_ADDRESS_SPACES] = "address-spaces",
        [QUOTA_MAPPINGS] = "mappings",
        [QUOTA_DEVICES] = "devices",
        [QUOTA_PASIDS] = "pasids",
        [QUOTA_FAULT_QUEUE_DEPTH] = "fault-queue-depth",
        [QUOTA_CONNECTIONS] = "connections",
};

/* Built-in quotas of a principal that some grant names; files override them. */
static const uint64_t quota_defaults[_QUOTA_FIELD_MAX] = {
        [QUOTA_PINNED_BYTES] = UINT64_C(4) << 30,
        [QUOTA_ADDRESS_SPACES] = 16,
        [QUOTA_MAPPINGS] = 65536,
        [QUOTA_DEVICES] = 8,
        [QUOTA_PASIDS] = 64,
        [QUOTA_FAULT_QUEUE_DEPTH] = 256,
        [QUOTA_CONNECTIONS] = 16,
};

static const PolicyLimits limits_defaults = {
        .max_message_bytes = UINT64_C(1) << 20,
        .max_fds_per_message = 16,
        .max_queued_output_bytes = UINT64_C(4) << 20,
        .max_connections = 4096,
        .max_connections_per_uid = 64,
        .socket_mode = 0666,
        .fault_response_timeout_ms = 5000,
        .session_reclaim_grace_ms = 30000,
};

static uint64_t policy_generation_counter;

static void closedirp(DIR **d) {
        if (*d)
                closedir(*d);
}

/* ---- model ---------------------------------------------------------------------------- */

static void device_matcher_done(DeviceMatcher *m) {
        free(m->bdf);
        free(m->driver);
        free(m->description);
}

static void matcher_list_done(MatcherList *l) {
        for (size_t i = 0; i < l->n; i++)
                device_matcher_done(&l->items[i]);
        free(l->items);
        *l = (MatcherList){};
}

static void policy_source_done(PolicySource *s) {
        free(s->file);
        free(s->path);
}

static void policy_rule_free(void *p) {
        PolicyRule *r = p;

        if (!r)
                return;
        free(r->name);
        matcher_list_done(&r->match);
        free(r);
}

static void policy_pool_free(void *p) {
        PolicyPool *pool = p;

        if (!pool)
                return;
        free(pool->name);
        matcher_list_done(&pool->devices);
        free(pool);
}

static void policy_region_exception_free(void *p) {
        PolicyRegionException *e = p;

        if (!e)
                return;
        free(e->name);
        matcher_list_done(&e->match);
        free(e);
}

static void policy_grant_free(void *p) {
        PolicyGrant *g = p;

        if (!g)
                return;
        free(g->name);
        for (size_t i = 0; i < g->n_principals; i++) {
                free(g->principals[i].unit);
                free(g->principals[i].description);
        }
        free(g->principals);
        matcher_list_done(&g->devices);
        for (size_t i = 0; i < g->n_pools; i++) {
                free(g->pools[i].name);
                policy_source_done(&g->pools[i].source);
        }
        free(g->pools);
        free(g->windows);
        free(g);
}

static void named_list_free(void **items, size_t n, void (*free_one)(void *)) {
        for (size_t i = 0; i < n; i++)
                free_one(items[i]);
        free(items);
}

Policy *policy_free(Policy *p) {
        if (!p)
                return NULL;
        named_list_free((void **)p->exceptions, p->n_exceptions, policy_region_exception_free);
        named_list_free((void **)p->rules, p->n_rules, policy_rule_free);
        named_list_free((void **)p->pools, p->n_pools, policy_pool_free);
        named_list_free((void **)p->grants, p->n_grants, policy_grant_free);
        free(p);
        return NULL;
}

uint64_t policy_generation(const Policy *p) {
        return p ? p->generation : 0;
}

static int policy_new_defaults(Policy **ret) {
        Policy *p;

        p = calloc(1, sizeof(Policy));
        if (!p)
                return -ENOMEM;
        p->limits = limits_defaults;
        memcpy(p->default_quotas, quota_defaults, sizeof(quota_defaults));
        p->direct = REGION_ACTION_DENY;
        p->direct_relaxable = REGION_ACTION_ALLOW;
        *ret = p;
        return 0;
}

static const char *named_name(void *item) {
        /* Every named entry starts with its name. */
        return *(char **)item;
}

/* Replaces the entry of the same name in place, or appends. Takes item. */
static int named_list_put(void ***items, size_t *n, void *item, void (*free_one)(void *)) {
        void **a;

        for (size_t i = 0; i < *n; i++)
                if (streq(named_name((*items)[i]), named_name(item))) {
                        free_one((*items)[i]);
                        (*items)[i] = item;
                        return 0;
                }
        a = realloc(*items, (*n + 1) * sizeof(void *));
        if (!a) {
                free_one(item);
                return -ENOMEM;
        }
        *items = a;
        a[(*n)++] = item;
        return 0;
}

static void named_list_remove(void ***items, size_t *n, const char *name,
                              void (*free_one)(void *)) {
        for (size_t i = 0; i < *n; i++)
                if (streq(named_name((*items)[i]), name)) {
                        free_one((*items)[i]);
                        memmove(*items + i, *items + i + 1, (*n - i - 1) * sizeof(void *));
                        (*n)--;
                        return;
                }
}

/* ---- diagnostics ---------------------------------------------------------------------- */

void policy_diagnostics_clear(PolicyDiagnostics *d) {
        if (!d)
                return;
        for (size_t i = 0; i < d->n; i++) {
                free(d->items[i].file);
                free(d->items[i].json_path);
                free(d->items[i].message);
        }
        free(d->items);
        *d = (PolicyDiagnostics){};
}

static int diagnostics_add(PolicyDiagnostics *d, const char *file, unsigned line,
                           unsigned column, const char *path, const char *fmt, va_list ap)
        _printf_(6, 0);
static int diagnostics_add(PolicyDiagnostics *d, const char *file, unsigned line,
                           unsigned column, const char *path, const char *fmt, va_list ap) {
        PolicyDiagnostic *items, *di;
        _cleanup_free_ char *f = NULL, *jp = NULL, *m = NULL;

        f = strdup(file ?: "");
        jp = strdup(path ?: "");
        if (!f || !jp || vasprintf(&m, fmt, ap) < 0)
                return -ENOMEM;
        items = realloc(d->items, (d->n + 1) * sizeof(PolicyDiagnostic));
        if (!items)
                return -ENOMEM;
        d->items = items;
        di = &d->items[d->n++];
        *di = (PolicyDiagnostic){
                .file = TAKE_PTR(f),
                .line = line,
                .column = column,
                .json_path = TAKE_PTR(jp),
                .message = TAKE_PTR(m),
        };
        return 0;
}

static int diagnostics_addf(PolicyDiagnostics *d, const char *file, unsigned line,
                            unsigned column, const char *path, const char *fmt, ...) _printf_(6, 7);
static int diagnostics_addf(PolicyDiagnostics *d, const char *file, unsigned line,
                            unsigned column, const char *path, const char *fmt, ...) {
        va_list ap;
        int r;

        va_start(ap, fmt);
        r = diagnostics_add(d, file, line, column, path, fmt, ap);
        va_end(ap);
        return r;
}

/* Records a problem at the value (or its key) at path; returns -EINVAL. */
static int parser_error(Parser *P, const char *path, bool at_key, const char *fmt, ...)
        _printf_(4, 5);
static int parser_error(Parser *P, const char *path, bool at_key, const char *fmt, ...) {
        const JsonPos *pos = json_pos_index_find(&P->idx, path);
        unsigned line = 0, column = 0;
        va_list ap;

        if (pos) {
                line = at_key ? pos->key_line : pos->line;
                column = at_key ? pos->key_column : pos->column;
        }
        va_start(ap, fmt);
        if (diagnostics_add(P->diags, P->file, line, column, path, fmt, ap) < 0)
                P->fatal = true;
        va_end(ap);
        return -EINVAL;
}

int policy_diagnostics_print(const PolicyDiagnostics *d, FILE *f) {
        if (!d)
                return 0;
        for (size_t i = 0; i < d->n; i++) {
                const PolicyDiagnostic *di = &d->items[i];

                fputs(di->file, f);
                if (di->line > 0)
                        fprintf(f, ":%u:%u", di->line, di->column);
                fputs(": ", f);
                if (di->json_path && di->json_path[0])
                        fprintf(f, "%s: ", di->json_path);
                fprintf(f, "%s\n", di->message);
        }
        fflush(f);
        return ferror(f) ? -EIO : 0;
}

/* ---- values --------------------------------------------------------------------------- */

static const char *type_name(json_object *v) {
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

static int expect_type(Parser *P, json_object *v, const char *path, json_type t,
                       const char *what) {
        if (json_object_is_type(v, t))
                return 0;
        return parser_error(P, path, false, "expected %s, got %s", what, type_name(v));
}

static int parse_string(Parser *P, json_object *v, const char *path, const char **ret) {
        int r = expect_type(P, v, path, json_type_string, "a string");
        if (r < 0)
                return r;
        *ret = json_object_get_string(v);
        return 0;
}

static int parse_bool(Parser *P, json_object *v, const char *path, bool *ret) {
        int r = expect_type(P, v, path, json_type_boolean, "true or false");
        if (r < 0)
                return r;
        *ret = json_object_get_boolean(v);
        return 0;
}

/* A non-negative JSON integer. */
static int parse_json_uint(Parser *P, json_object *v, const char *path, uint64_t *ret) {
        if (!json_object_is_type(v, json_type_int))
                return parser_error(P, path, false, "expected a non-negative integer, got %s",
                                    type_name(v));
        if (json_object_get_int64(v) < 0)
                return parser_error(P, path, false, "expected a non-negative integer, got %" PRIi64,
                                    json_object_get_int64(v));
        *ret = json_object_get_uint64(v);
        return 0;
}

static bool is_unlimited(const char *s) {
        return streq(s, "unlimited") || streq(s, "infinity");
}

/* A count: an integer or "unlimited". */
static int parse_count(Parser *P, json_object *v, const char *path, uint64_t *ret) {
        if (json_object_is_type(v, json_type_string)) {
                if (is_unlimited(json_object_get_string(v))) {
                        *ret = UINT64_MAX;
                        return 0;
                }
                return parser_error(P, path, false,
                                    "invalid count '%s': expected a non-negative integer or \"unlimited\"",
                                    json_object_get_string(v));
        }
        return parse_json_uint(P, v, path, ret);
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

static int parse_size(Parser *P, json_object *v, const char *path, uint64_t *ret) {
        const char *s;
        int r;

        if (!json_object_is_type(v, json_type_string))
                return parse_json_uint(P, v, path, ret);
        s = json_object_get_string(v);
        if (is_unlimited(s)) {
                *ret = UINT64_MAX;
                return 0;
        }
        r = size_from_string(s, ret);
        if (r == -ERANGE)
                return parser_error(P, path, false, "size '%s' does not fit in 64 bits", s);
        if (r < 0)
                return parser_error(P, path, false,
                                    "invalid size '%s': expected bytes with an optional K, M, G, T, P or E suffix (e.g. \"4G\"), or \"unlimited\"",
                                    s);
        return 0;
}

/* An address: an integer, or a string in hex ("0x...") or decimal. */
static int parse_u64(Parser *P, json_object *v, const char *path, uint64_t *ret) {
        const char *s;
        char *end;
        unsigned long long u;

        if (!json_object_is_type(v, json_type_string))
                return parse_json_uint(P, v, path, ret);
        s = json_object_get_string(v);
        errno = 0;
        u = strtoull(s, &end, 0);
        if (!isdigit((unsigned char)s[0]) || *end || errno != 0)
                return parser_error(P, path, false,
                                    "invalid address '%s': expected an integer, hex (0x...) or decimal",
                                    s);
        *ret = u;
        return 0;
}

/* Reports every key of obj that is not in allowed (NULL-terminated). */
static int check_keys(Parser *P, json_object *obj, const char *path,
                      const char *const *allowed) {
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
                r = parser_error(P, child, true, "unknown key '%s'; expected one of: %s", key, list);
        }
        return r;
}

static const char *glob_problem(const char *s) {
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

static int parse_glob(Parser *P, json_object *v, const char *path, const char *what,
                      char **ret, GlobKind *ret_kind) {
        const char *s, *problem;
        char *c;
        int r;

        r = parse_string(P, v, path, &s);
        if (r < 0)
                return r;
        problem = glob_problem(s);
        if (problem)
                return parser_error(P, path, false, "invalid %s pattern '%s': %s", what, s, problem);
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

        r = parse_string(P, v, path, &s);
        if (r < 0)
                return r;
        colon = strchr(s, ':');
        if (!colon || parse_hex_or_star(s, (size_t)(colon - s), &m->vendor) < 0 ||
            parse_hex_or_star(colon + 1, strlen(colon + 1), &m->device) < 0)
                return parser_error(P, path, false,
                                    "invalid id '%s': expected VENDOR:DEVICE, each 4 hex digits or '*' (e.g. \"8086:*\" or \"144d:a808\")",
                                    s);
        m->has_id = true;
        return 0;
}

static int parse_class(Parser *P, json_object *v, const char *path, DeviceMatcher *m) {
        const char *s;
        uint32_t value = 0, mask = 0;
        int r;

        r = parse_string(P, v, path, &s);
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
        return parser_error(P, path, false,
                            "invalid class '%s': expected 0x and 6 hex digits, 'x' for any digit (e.g. \"0x010802\" or \"0x03xxxx\")",
                            s);
}

static int append_description(char **desc, const char *fmt, ...) _printf_(2, 3);
static int append_description(char **desc, const char *fmt, ...) {
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
                if (append_description(&m.description, "bdf %s", m.bdf) < 0)
                        goto oom;
                *ret = m;
                return 0;
        }
        if (!json_object_is_type(v, json_type_object))
                return parser_error(P, path, false,
                                    "expected a device matcher (a BDF pattern string or an object with bdf, id, class or driver), got %s",
                                    type_name(v));
        r = check_keys(P, v, path, keys);
        if (json_object_object_length(v) == 0)
                r = parser_error(P, path, false,
                                 "a device matcher needs at least one of bdf, id, class, driver");

        if (json_object_object_get_ex(v, "bdf", &f)) {
                json_pos_path_key(child, sizeof(child), path, "bdf");
                q = parse_glob(P, f, child, "bdf", &m.bdf, &m.bdf_kind);
                if (q < 0)
                        r = q;
                else if (append_description(&m.description, "bdf %s", m.bdf) < 0)
                        goto oom;
        }
        if (json_object_object_get_ex(v, "id", &f)) {
                json_pos_path_key(child, sizeof(child), path, "id");
                q = parse_id(P, f, child, &m);
                if (q < 0)
                        r = q;
                else if (append_description(&m.description, "id %s", json_object_get_string(f)) < 0)
                        goto oom;
        }
        if (json_object_object_get_ex(v, "class", &f)) {
                json_pos_path_key(child, sizeof(child), path, "class");
                q = parse_class(P, f, child, &m);
                if (q < 0)
                        r = q;
                else if (append_description(&m.description, "class %s", json_object_get_string(f)) < 0)
                        goto oom;
        }
        if (json_object_object_get_ex(v, "driver", &f)) {
                json_pos_path_key(child, sizeof(child), path, "driver");
                q = parse_glob(P, f, child, "driver", &m.driver, &m.driver_kind);
                if (q < 0)
                        r = q;
                else if (append_description(&m.description, "driver %s", m.driver) < 0)
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

static int parse_matcher_list(Parser *P, json_object *v, const char *path, MatcherList *ret) {
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

/* ---- principals ----------------------------------------------------------------------- */

static bool all_digits(const char *s) {
        if (!*s)
                return false;
        for (; *s; s++)
                if (!isdigit((unsigned char)*s))
                        return false;
        return true;
}

static int parse_id_number(const char *s, uint32_t *ret) {
        char *end;
        unsigned long v;

        errno = 0;
        v = strtoul(s, &end, 10);
        /* (uid_t) -1 means "no id" to the kernel: never a valid principal. */
        if (errno != 0 || *end || v >= UINT32_MAX)
                return -ERANGE;
        *ret = (uint32_t)v;
        return 0;
}

static int lookup_id(const char *name, bool group, uint32_t *ret) {
        _cleanup_free_ char *buf = NULL;
        struct passwd pw;
        struct group gr;
        int r;

        r = group ? user_util_group_by_name(name, &gr, &buf) :
                    user_util_get_by_name(name, &pw, &buf);
        if (r < 0)
                return r;
        if (r == 0)
                return -ESRCH;
        *ret = group ? gr.gr_gid : pw.pw_uid;
        return 0;
}

/* A user or group given by name or number; resolves names now. */
static int parse_user_or_group(Parser *P, json_object *v, const char *text, const char *path,
                               bool group, uint32_t *ret, char **desc) {
        const char *what = group ? "group" : "user";
        char numbuf[32];
        uint32_t id;
        int r;

        if (!text) {
                uint64_t u;

                if (json_object_is_type(v, json_type_int)) {
                        r = parse_json_uint(P, v, path, &u);
                        if (r < 0)
                                return r;
                        if (u >= UINT32_MAX)
                                return parser_error(P, path, false, "%s id %" PRIu64 " is out of range",
                                                    what, u);
                        snprintf(numbuf, sizeof(numbuf), "%" PRIu64, u);
                        text = numbuf;
                } else if (json_object_is_type(v, json_type_string))
                        text = json_object_get_string(v);
                else
                        return parser_error(P, path, false, "expected a %s name or number, got %s",
                                            what, type_name(v));
        }

        if (all_digits(text)) {
                if (parse_id_number(text, &id) < 0)
                        return parser_error(P, path, false, "%s id %s is out of range", what, text);
                if (append_description(desc, "%s %s", group ? "gid" : "uid", text) < 0)
                        goto oom;
                *ret = id;
                return 0;
        }
        if (!*text)
                return parser_error(P, path, false, "empty %s name", what);
        r = lookup_id(text, group, &id);
        if (r == -ENOMEM)
                goto oom;
        if (r == -ESRCH)
                return parser_error(P, path, false, "unknown %s '%s': no such %s on this system",
                                    what, text, what);
        if (r < 0)
                return parser_error(P, path, false, "cannot look up %s '%s': %s", what, text,
                                    strerror(-r));
        if (append_description(desc, "%s %s (%s %" PRIu32 ")", what, text, group ? "gid" : "uid",
                               id) < 0)
                goto oom;
        *ret = id;
        return 0;
oom:
        P->fatal = true;
        return -ENOMEM;
}

static int parse_unit(Parser *P, json_object *v, const char *text, const char *path,
                      PrincipalMatcher *m) {
        const char *problem;

        if (!text) {
                int r = parse_string(P, v, path, &text);
                if (r < 0)
                        return r;
        }
        problem = glob_problem(text);
        if (problem)
                return parser_error(P, path, false, "invalid unit pattern '%s': %s", text, problem);
        m->unit = strdup(text);
        m->unit_kind = policy_glob_kind(text);
        if (!m->unit || append_description(&m->description, "unit %s", text) < 0) {
                P->fatal = true;
                return -ENOMEM;
        }
        return 0;
}

static void principal_matcher_done(PrincipalMatcher *m) {
        free(m->unit);
        free(m->description);
}

static int parse_principal(Parser *P, json_object *v, const char *path, PrincipalMatcher *ret) {
        static const char *const keys[] = { "user", "group", "unit", NULL };
        PrincipalMatcher m = {};
        int r = 0, q;

        if (json_object_is_type(v, json_type_string)) {
                const char *s = json_object_get_string(v), *colon = strchr(s, ':');

                if (colon && strneq(s, "user:", 5)) {
                        uid_t uid;

                        r = parse_user_or_group(P, v, colon + 1, path, false, &uid, &m.description);
                        m.uid = uid;
                        m.has_uid = r >= 0;
                } else if (colon && strneq(s, "group:", 6)) {
                        gid_t gid;

                        r = parse_user_or_group(P, v, colon + 1, path, true, &gid, &m.description);
                        m.gid = gid;
                        m.has_gid = r >= 0;
                } else if (colon && strneq(s, "unit:", 5))
                        r = parse_unit(P, v, colon + 1, path, &m);
                else
                        r = parser_error(P, path, false,
                                         "invalid principal '%s': expected \"user:NAME\", \"group:NAME\" or \"unit:PATTERN\"",
                                         s);
        } else if (json_object_is_type(v, json_type_object)) {
                json_object *f;
                char child[JPATH_MAX];

                r = check_keys(P, v, path, keys);
                if (json_object_object_length(v) == 0)
                        r = parser_error(P, path, false,
                                         "a principal needs at least one of user, group, unit");
                if (json_object_object_get_ex(v, "user", &f)) {
                        uid_t uid;

                        json_pos_path_key(child, sizeof(child), path, "user");
                        q = parse_user_or_group(P, f, NULL, child, false, &uid, &m.description);
                        if (q < 0)
                                r = q;
                        else {
                                m.uid = uid;
                                m.has_uid = true;
                        }
                }
                if (json_object_object_get_ex(v, "group", &f)) {
                        gid_t gid;

                        json_pos_path_key(child, sizeof(child), path, "group");
                        q = parse_user_or_group(P, f, NULL, child, true, &gid, &m.description);
                        if (q < 0)
                                r = q;
                        else {
                                m.gid = gid;
                                m.has_gid = true;
                        }
                }
                if (json_object_object_get_ex(v, "unit", &f)) {
                        json_pos_path_key(child, sizeof(child), path, "unit");
                        q = parse_unit(P, f, NULL, child, &m);
                        if (q < 0)
                                r = q;
                }
        } else
                r = parser_error(P, path, false,
                                 "expected a principal (\"user:NAME\", \"group:NAME\", \"unit:PATTERN\" or an object), got %s",
                                 type_name(v));
        if (r < 0) {
                principal_matcher_done(&m);
                return r;
        }
        *ret = m;
        return 0;
}

static int parse_principals(Parser *P, json_object *v, const char *path, PolicyGrant *g) {
        size_t n = json_object_is_type(v, json_type_array) ? json_object_array_length(v) : 1;
        int r = 0;

        g->principals = calloc(n ?: 1, sizeof(PrincipalMatcher));
        if (!g->principals) {
                P->fatal = true;
                return -ENOMEM;
        }
        if (!json_object_is_type(v, json_type_array)) {
                r = parse_principal(P, v, path, &g->principals[0]);
                if (r >= 0)
                        g->n_principals = 1;
                return r;
        }
        if (n == 0)
                return parser_error(P, path, false, "a grant needs at least one principal");
        for (size_t i = 0; i < n; i++) {
                char child[JPATH_MAX];
                int q;

                json_pos_path_index(child, sizeof(child), path, i);
                q = parse_principal(P, json_object_array_get_idx(v, i), child,
                                    &g->principals[g->n_principals]);
                if (q < 0)
                        r = q;
                else
                        g->n_principals++;
        }
        return r;
}

/* ---- sections ------------------------------------------------------------------------- */

static int parse_quotas(Parser *P, json_object *v, const char *path, uint64_t *values,
                        unsigned *set) {
        static const char *const keys[_QUOTA_FIELD_MAX + 1] = {
                "pinned-memory", "address-spaces", "mappings", "devices",
                "pasids",        "fault-queue-depth", "connections", NULL,
        };
        int r;

        r = expect_type(P, v, path, json_type_object, "an object of quotas");
        if (r < 0)
                return r;
        r = check_keys(P, v, path, keys);
        for (QuotaField q = 0; q < _QUOTA_FIELD_MAX; q++) {
                char child[JPATH_MAX];
                json_object *f;
                uint64_t u;
                int k;

                if (!json_object_object_get_ex(v, quota_keys[q], &f))
                        continue;
                json_pos_path_key(child, sizeof(child), path, quota_keys[q]);
                k = q == QUOTA_PINNED_BYTES ? parse_size(P, f, child, &u) : parse_count(P, f, child, &u);
                if (k < 0) {
                        r = k;
                        continue;
                }
                values[q] = u;
                if (set)
                        *set |= 1u << q;
        }
        return r;
}

static int parse_socket_mode(Parser *P, json_object *v, const char *path, uint32_t *ret) {
        uint64_t u;

        if (json_object_is_type(v, json_type_string)) {
                const char *s = json_object_get_string(v);
                char *end;

                errno = 0;
                u = strtoull(s, &end, 8);
                if (!*s || *end || errno != 0 || u > 07777)
                        return parser_error(P, path, false,
                                            "invalid socket mode '%s': expected an octal mode such as \"0660\"",
                                            s);
        } else {
                int r = parse_json_uint(P, v, path, &u);
                if (r < 0)
                        return r;
                if (u > 07777)
                        return parser_error(P, path, false,
                                            "socket mode %" PRIu64 " is above 07777 (write it as an octal string such as \"0660\")",
                                            u);
        }
        *ret = (uint32_t)u;
        return 0;
}

static int parse_limits(Parser *P, json_object *v, const char *path, PolicyLimits *l) {
        static const char *const keys[] = {
                "max-message-size", "max-fds-per-message", "max-queued-output",
                "max-connections", "max-connections-per-user", "socket-mode",
                "fault-response-timeout-ms", "session-reclaim-grace-ms", NULL,
        };
        static const struct {
                const char *key;
                size_t offset;
                bool size;
        } fields[] = {
                { "max-message-size", offsetof(PolicyLimits, max_message_bytes), true },
                { "max-fds-per-message", offsetof(PolicyLimits, max_fds_per_message), false },
                { "max-queued-output", offsetof(PolicyLimits, max_queued_output_bytes), true },
                { "max-connections", offsetof(PolicyLimits, max_connections), false },
                { "max-connections-per-user", offsetof(PolicyLimits, max_connections_per_uid), false },
                { "fault-response-timeout-ms", offsetof(PolicyLimits, fault_response_timeout_ms), false },
                { "session-reclaim-grace-ms", offsetof(PolicyLimits, session_reclaim_grace_ms), false },
        };
        char child[JPATH_MAX];
        json_object *f;
        int r;

        r = expect_type(P, v, path, json_type_object, "an object of limits");
        if (r < 0)
                return r;
        r = check_keys(P, v, path, keys);
        for (size_t i = 0; i < ELEMENTSOF(fields); i++) {
                uint64_t u;
                int k;

                if (!json_object_object_get_ex(v, fields[i].key, &f))
                        continue;
                json_pos_path_key(child, sizeof(child), path, fields[i].key);
                k = fields[i].size ? parse_size(P, f, child, &u) : parse_count(P, f, child, &u);
                if (k < 0) {
                        r = k;
                        continue;
                }
                /* Limits bound buffers: zero would make the daemon unusable. */
                if (u == 0) {
                        r = parser_error(P, child, false, "%s must be at least 1", fields[i].key);
                        continue;
                }
                *(uint64_t *)((uint8_t *)l + fields[i].offset) = u;
        }
        if (json_object_object_get_ex(v, "socket-mode", &f)) {
                uint32_t mode = 0;
                int k;

                json_pos_path_key(child, sizeof(child), path, "socket-mode");
                k = parse_socket_mode(P, f, child, &mode);
                if (k < 0)
                        r = k;
                else
                        l->socket_mode = mode;
        }
        return r;
}

static int parse_region_action(Parser *P, json_object *v, const char *path, RegionAction *ret) {
        const char *s;
        int r;

        r = parse_string(P, v, path, &s);
        if (r < 0)
                return r;
        if (streq(s, "allow"))
                *ret = REGION_ACTION_ALLOW;
        else if (streq(s, "deny"))
                *ret = REGION_ACTION_DENY;
        else
                return parser_error(P, path, false, "invalid action '%s': expected \"allow\" or \"deny\"", s);
        return 0;
}

static int name_check(Parser *P, const char *name, const char *path) {
        if (!*name)
                return parser_error(P, path, true, "empty name");
        for (const char *p = name; *p; p++)
                if ((unsigned char)*p < 0x20)
                        return parser_error(P, path, true, "name contains a control character");
        return 0;
}

typedef int (*parse_named_fn)(Parser *P, json_object *v, const char *path, const char *name,
                              void **ret);

static int parse_named(Parser *P, json_object *v, const char *path, const char *what,
                       void ***items, size_t *n, parse_named_fn parse_one,
                       void (*free_one)(void *)) {
        int r;

        r = expect_type(P, v, path, json_type_object, what);
        if (r < 0)
                return r;
        json_object_object_foreach(v, key, val) {
                char child[JPATH_MAX];
                void *item = NULL;
                int q;

                json_pos_path_key(child, sizeof(child), path, key);
                if (name_check(P, key, child) < 0) {
                        r = -EINVAL;
                        continue;
                }
                /* null removes an entry an earlier file defined. */
                if (!val) {
                        named_list_remove(items, n, key, free_one);
                        continue;
                }
                q = parse_one(P, val, child, key, &item);
                if (q < 0)
                        r = q;
                /* Kept even when invalid, so that references to it do not pile up errors. */
                if (item && named_list_put(items, n, item, free_one) < 0)
                        P->fatal = true;
                if (P->fatal)
                        return -ENOMEM;
        }
        return r;
}

static int entry_new(Parser *P, size_t size, const char *name, void **ret) {
        char **e;

        e = calloc(1, size);
        if (!e)
                goto oom;
        *e = strdup(name);
        if (!*e) {
                free(e);
                goto oom;
        }
        *ret = e;
        return 0;
oom:
        P->fatal = true;
        return -ENOMEM;
}

static int parse_rule(Parser *P, json_object *v, const char *path, const char *name, void **ret) {
        static const char *const keys[] = { "action", "match", "comment", NULL };
        char child[JPATH_MAX];
        PolicyRule *rule;
        json_object *f;
        const char *s;
        int r;

        r = expect_type(P, v, path, json_type_object, "a rule object");
        if (r < 0)
                return r;
        r = entry_new(P, sizeof(PolicyRule), name, (void **)&rule);
        if (r < 0)
                return r;
        *ret = rule;
        r = check_keys(P, v, path, keys);
        if (json_object_object_get_ex(v, "comment", &f)) {
                json_pos_path_key(child, sizeof(child), path, "comment");
                if (parse_string(P, f, child, &s) < 0)
                        r = -EINVAL;
        }
        if (!json_object_object_get_ex(v, "action", &f))
                r = parser_error(P, path, false, "rule '%s' needs \"action\": \"allow\" or \"deny\"", name);
        else {
                json_pos_path_key(child, sizeof(child), path, "action");
                if (parse_string(P, f, child, &s) < 0)
                        r = -EINVAL;
                else if (streq(s, "deny"))
                        rule->deny = true;
                else if (!streq(s, "allow"))
                        r = parser_error(P, child, false,
                                         "invalid action '%s': expected \"allow\" or \"deny\"", s);
        }
        if (!json_object_object_get_ex(v, "match", &f))
                r = parser_error(P, path, false, "rule '%s' needs \"match\": the devices it applies to", name);
        else {
                json_pos_path_key(child, sizeof(child), path, "match");
                if (parse_matcher_list(P, f, child, &rule->match) < 0)
                        r = -EINVAL;
                else if (rule->match.n == 0)
                        r = parser_error(P, child, false, "an empty list matches no device");
        }
        return r;
}

static int parse_pool(Parser *P, json_object *v, const char *path, const char *name, void **ret) {
        static const char *const keys[] = { "devices", "comment", NULL };
        char child[JPATH_MAX];
        PolicyPool *pool;
        json_object *f;
        const char *s;
        int r;

        r = expect_type(P, v, path, json_type_object, "a pool object");
        if (r < 0)
                return r;
        r = entry_new(P, sizeof(PolicyPool), name, (void **)&pool);
        if (r < 0)
                return r;
        *ret = pool;
        r = check_keys(P, v, path, keys);
        if (json_object_object_get_ex(v, "comment", &f)) {
                json_pos_path_key(child, sizeof(child), path, "comment");
                if (parse_string(P, f, child, &s) < 0)
                        r = -EINVAL;
        }
        if (!json_object_object_get_ex(v, "devices", &f))
                r = parser_error(P, path, false, "pool '%s' needs \"devices\"", name);
        else {
                json_pos_path_key(child, sizeof(child), path, "devices");
                if (parse_matcher_list(P, f, child, &pool->devices) < 0)
                        r = -EINVAL;
        }
        return r;
}

static int parse_exception(Parser *P, json_object *v, const char *path, const char *name,
                           void **ret) {
        static const char *const keys[] = { "match", "direct", "direct-relaxable", "comment", NULL };
        char child[JPATH_MAX];
        PolicyRegionException *e;
        json_object *f;
        const char *s;
        int r;

        r = expect_type(P, v, path, json_type_object, "an exception object");
        if (r < 0)
                return r;
        r = entry_new(P, sizeof(PolicyRegionException), name, (void **)&e);
        if (r < 0)
                return r;
        e->direct = e->direct_relaxable = REGION_ACTION_UNSET;
        *ret = e;
        r = check_keys(P, v, path, keys);
        if (json_object_object_get_ex(v, "comment", &f)) {
                json_pos_path_key(child, sizeof(child), path, "comment");
                if (parse_string(P, f, child, &s) < 0)
                        r = -EINVAL;
        }
        if (!json_object_object_get_ex(v, "match", &f))
                r = parser_error(P, path, false, "exception '%s' needs \"match\"", name);
        else {
                json_pos_path_key(child, sizeof(child), path, "match");
                if (parse_matcher_list(P, f, child, &e->match) < 0)
                        r = -EINVAL;
        }
        if (json_object_object_get_ex(v, "direct", &f)) {
                json_pos_path_key(child, sizeof(child), path, "direct");
                if (parse_region_action(P, f, child, &e->direct) < 0)
                        r = -EINVAL;
        }
        if (json_object_object_get_ex(v, "direct-relaxable", &f)) {
                json_pos_path_key(child, sizeof(child), path, "direct-relaxable");
                if (parse_region_action(P, f, child, &e->direct_relaxable) < 0)
                        r = -EINVAL;
        }
        return r;
}

static int parse_iova_windows(Parser *P, json_object *v, const char *path, PolicyGrant *g) {
        static const char *const keys[] = { "start", "last", NULL };
        size_t n;
        int r;

        r = expect_type(P, v, path, json_type_array, "an array of {\"start\", \"last\"} windows");
        if (r < 0)
                return r;
        n = json_object_array_length(v);
        g->windows = calloc(n ?: 1, sizeof(IovaWindow));
        if (!g->windows) {
                P->fatal = true;
                return -ENOMEM;
        }
        for (size_t i = 0; i < n; i++) {
                json_object *w = json_object_array_get_idx(v, i), *fs, *fl;
                char child[JPATH_MAX], fp[JPATH_MAX];
                uint64_t start, last;

                json_pos_path_index(child, sizeof(child), path, i);
                if (expect_type(P, w, child, json_type_object, "an object with \"start\" and \"last\"") < 0) {
                        r = -EINVAL;
                        continue;
                }
                if (check_keys(P, w, child, keys) < 0)
                        r = -EINVAL;
                if (!json_object_object_get_ex(w, "start", &fs) ||
                    !json_object_object_get_ex(w, "last", &fl)) {
                        r = parser_error(P, child, false,
                                         "an IOVA window needs \"start\" and \"last\" (inclusive)");
                        continue;
                }
                json_pos_path_key(fp, sizeof(fp), child, "start");
                if (parse_u64(P, fs, fp, &start) < 0) {
                        r = -EINVAL;
                        continue;
                }
                json_pos_path_key(fp, sizeof(fp), child, "last");
                if (parse_u64(P, fl, fp, &last) < 0) {
                        r = -EINVAL;
                        continue;
                }
                if (start > last) {
                        r = parser_error(P, child, false,
                                         "IOVA window start 0x%" PRIx64 " is above its last address 0x%" PRIx64,
                                         start, last);
                        continue;
                }
                g->windows[g->n_windows++] = (IovaWindow){ .start = start, .last = last };
        }
        return r;
}

static int parse_pasids(Parser *P, json_object *v, const char *path, PolicyGrant *g) {
        static const char *const keys[] = { "min", "max", NULL };
        uint64_t lo = PASID_MIN_DEFAULT, hi = PASID_MAX_DEFAULT;
        char child[JPATH_MAX];
        json_object *f;
        int r;

        r = expect_type(P, v, path, json_type_object, "an object with \"min\" and \"max\"");
        if (r < 0)
                return r;
        r = check_keys(P, v, path, keys);
        if (json_object_object_get_ex(v, "min", &f)) {
                json_pos_path_key(child, sizeof(child), path, "min");
                if (parse_u64(P, f, child, &lo) < 0)
                        r = -EINVAL;
                else if (lo > PASID_MAX_DEFAULT)
                        r = parser_error(P, child, false,
                                         "PASID 0x%" PRIx64 " does not fit in 20 bits (maximum 0xfffff)", lo);
        }
        if (json_object_object_get_ex(v, "max", &f)) {
                json_pos_path_key(child, sizeof(child), path, "max");
                if (parse_u64(P, f, child, &hi) < 0)
                        r = -EINVAL;
                else if (hi > PASID_MAX_DEFAULT)
                        r = parser_error(P, child, false,
                                         "PASID 0x%" PRIx64 " does not fit in 20 bits (maximum 0xfffff)", hi);
        }
        if (r < 0)
                return r;
        if (lo > hi)
                return parser_error(P, path, false, "PASID range min %" PRIu64 " is above max %" PRIu64,
                                    lo, hi);
        g->has_pasids = true;
        g->pasid_min = (uint32_t)lo;
        g->pasid_max = (uint32_t)hi;
        return 0;
}

static int parse_pool_refs(Parser *P, json_object *v, const char *path, PolicyGrant *g) {
        size_t n;
        int r;

        r = expect_type(P, v, path, json_type_array, "an array of pool names");
        if (r < 0)
                return r;
        n = json_object_array_length(v);
        g->pools = calloc(n ?: 1, sizeof(PoolRef));
        if (!g->pools)
                goto oom;
        for (size_t i = 0; i < n; i++) {
                char child[JPATH_MAX];
                const JsonPos *pos;
                PoolRef *ref;
                const char *s;

                json_pos_path_index(child, sizeof(child), path, i);
                if (parse_string(P, json_object_array_get_idx(v, i), child, &s) < 0) {
                        r = -EINVAL;
                        continue;
                }
                /* Resolved after every file is merged; remember where the name was written. */
                pos = json_pos_index_find(&P->idx, child);
                ref = &g->pools[g->n_pools++];
                ref->name = strdup(s);
                ref->source.file = strdup(P->file);
                ref->source.path = strdup(child);
                if (!ref->name || !ref->source.file || !ref->source.path)
                        goto oom;
                if (pos) {
                        ref->source.line = pos->line;
                        ref->source.column = pos->column;
                }
        }
        return r;
oom:
        P->fatal = true;
        return -ENOMEM;
}

static int parse_grant(Parser *P, json_object *v, const char *path, const char *name, void **ret) {
        static const char *const keys[] = {
                "principals", "devices", "pools", "quotas", "iova-windows", "pasids",
                "delegation", "open-on-behalf", "comment", NULL,
        };
        char child[JPATH_MAX];
        PolicyGrant *g;
        json_object *f;
        const char *s;
        int r;

        r = expect_type(P, v, path, json_type_object, "a grant object");
        if (r < 0)
                return r;
        r = entry_new(P, sizeof(PolicyGrant), name, (void **)&g);
        if (r < 0)
                return r;
        *ret = g;
        r = check_keys(P, v, path, keys);

#define CHILD(key) (json_pos_path_key(child, sizeof(child), path, key), child)
        if (json_object_object_get_ex(v, "comment", &f) && parse_string(P, f, CHILD("comment"), &s) < 0)
                r = -EINVAL;
        if (!json_object_object_get_ex(v, "principals", &f))
                r = parser_error(P, path, false, "grant '%s' needs \"principals\": who it applies to", name);
        else if (parse_principals(P, f, CHILD("principals"), g) < 0)
                r = -EINVAL;
        if (json_object_object_get_ex(v, "devices", &f) &&
            parse_matcher_list(P, f, CHILD("devices"), &g->devices) < 0)
                r = -EINVAL;
        if (json_object_object_get_ex(v, "pools", &f) && parse_pool_refs(P, f, CHILD("pools"), g) < 0)
                r = -EINVAL;
        if (json_object_object_get_ex(v, "quotas", &f) &&
            parse_quotas(P, f, CHILD("quotas"), g->quotas.v, &g->quotas.set) < 0)
                r = -EINVAL;
        if (json_object_object_get_ex(v, "iova-windows", &f) &&
            parse_iova_windows(P, f, CHILD("iova-windows"), g) < 0)
                r = -EINVAL;
        if (json_object_object_get_ex(v, "pasids", &f) && parse_pasids(P, f, CHILD("pasids"), g) < 0)
                r = -EINVAL;
        if (json_object_object_get_ex(v, "delegation", &f) &&
            parse_bool(P, f, CHILD("delegation"), &g->delegation) < 0)
                r = -EINVAL;
        if (json_object_object_get_ex(v, "open-on-behalf", &f) &&
            parse_bool(P, f, CHILD("open-on-behalf"), &g->open_on_behalf) < 0)
                r = -EINVAL;
#undef CHILD
        return P->fatal ? -ENOMEM : r;
}

static int parse_reserved_regions(Parser *P, json_object *v, const char *path, Policy *p) {
        static const char *const keys[] = { "direct", "direct-relaxable", "exceptions", NULL };
        char child[JPATH_MAX];
        json_object *f;
        int r;

        r = expect_type(P, v, path, json_type_object, "an object");
        if (r < 0)
                return r;
        r = check_keys(P, v, path, keys);
        if (json_object_object_get_ex(v, "direct", &f)) {
                json_pos_path_key(child, sizeof(child), path, "direct");
                if (parse_region_action(P, f, child, &p->direct) < 0)
                        r = -EINVAL;
        }
        if (json_object_object_get_ex(v, "direct-relaxable", &f)) {
                json_pos_path_key(child, sizeof(child), path, "direct-relaxable");
                if (parse_region_action(P, f, child, &p->direct_relaxable) < 0)
                        r = -EINVAL;
        }
        if (json_object_object_get_ex(v, "exceptions", &f)) {
                json_pos_path_key(child, sizeof(child), path, "exceptions");
                if (parse_named(P, f, child, "an object of named exceptions", (void ***)&p->exceptions,
                                &p->n_exceptions, parse_exception, policy_region_exception_free) < 0)
                        r = -EINVAL;
        }
        return r;
}

static int parse_root(Parser *P, json_object *root, Policy *p) {
        static const char *const keys[] = {
                "limits", "quotas", "reserved-regions", "rules", "pools", "grants", "comment", NULL,
        };
        json_object *f;
        const char *s;
        int r;

        if (!json_object_is_type(root, json_type_object))
                return parser_error(P, "", false, "expected the policy to be a JSON object, got %s",
                                    type_name(root));
        r = check_keys(P, root, "", keys);
        if (json_object_object_get_ex(root, "comment", &f) && parse_string(P, f, "comment", &s) < 0)
                r = -EINVAL;
        if (json_object_object_get_ex(root, "limits", &f) && parse_limits(P, f, "limits", &p->limits) < 0)
                r = -EINVAL;
        if (json_object_object_get_ex(root, "quotas", &f) &&
            parse_quotas(P, f, "quotas", p->default_quotas, NULL) < 0)
                r = -EINVAL;
        if (json_object_object_get_ex(root, "reserved-regions", &f) &&
            parse_reserved_regions(P, f, "reserved-regions", p) < 0)
                r = -EINVAL;
        if (json_object_object_get_ex(root, "rules", &f) &&
            parse_named(P, f, "rules", "an object of named rules", (void ***)&p->rules, &p->n_rules,
                        parse_rule, policy_rule_free) < 0)
                r = -EINVAL;
        if (json_object_object_get_ex(root, "pools", &f) &&
            parse_named(P, f, "pools", "an object of named pools", (void ***)&p->pools, &p->n_pools,
                        parse_pool, policy_pool_free) < 0)
                r = -EINVAL;
        if (json_object_object_get_ex(root, "grants", &f) &&
            parse_named(P, f, "grants", "an object of named grants", (void ***)&p->grants,
                        &p->n_grants, parse_grant, policy_grant_free) < 0)
                r = -EINVAL;
        return P->fatal ? -ENOMEM : r;
}

/* ---- files ---------------------------------------------------------------------------- */

static bool all_space(const char *s, size_t len) {
        for (size_t i = 0; i < len; i++)
                if (!strchr(" \t\r\n", s[i]) || !s[i])
                        return false;
        return true;
}

/* Parses one text on top of p.  -EINVAL: problems recorded in diags; -ENOMEM: fatal. */
static int policy_apply_text(Policy *p, const char *filename, const char *text, size_t len,
                             PolicyDiagnostics *diags) {
        _cleanup_free_ char *copy = NULL;
        struct json_tokener *tok = NULL;
        json_object *root = NULL;
        Parser P = { .file = filename, .diags = diags };
        enum json_tokener_error jerr;
        size_t bad;
        unsigned line, column;
        int r;

        copy = malloc(len + 1);
        if (!copy)
                return -ENOMEM;
        memcpy(copy, text, len);
        copy[len] = 0;
        P.text = copy;
        P.len = len;

        if (memchr(copy, 0, len))
                return diagnostics_addf(diags, filename, 0, 0, "", "file contains a NUL byte") ?: -EINVAL;

        if (json_pos_strip_comments(copy, len, &bad) < 0) {
                json_pos_offset_to_line_column(copy, len, bad, &line, &column);
                return diagnostics_addf(diags, filename, line, column, "", "unterminated comment") ?: -EINVAL;
        }
        /* An empty file (or a symlink to /dev/null) masks a vendor file of the same name. */
        if (all_space(copy, len))
                return 0;

        tok = json_tokener_new_ex(POLICY_MAX_DEPTH);
        if (!tok)
                return -ENOMEM;
        json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
        root = json_tokener_parse_ex(tok, copy, (int)len);
        jerr = json_tokener_get_error(tok);
        if (jerr != json_tokener_success || !root) {
                size_t off = json_tokener_get_parse_end(tok);
                const char *desc = jerr == json_tokener_continue ? "unexpected end of file"
                                                                : json_tokener_error_desc(jerr);

                /* parse_end is the offset of the character the tokener rejected. */
                json_pos_offset_to_line_column(copy, len, off, &line, &column);
                json_tokener_free(tok);
                json_object_put(root);
                return diagnostics_addf(diags, filename, line, column, "", "invalid JSON: %s", desc) ?: -EINVAL;
        }
        json_tokener_free(tok);

        r = json_pos_index_build(&P.idx, copy, len);
        if (r < 0) {
                json_object_put(root);
                return r == -ENOMEM ? r : (diagnostics_addf(diags, filename, 0, 0, "",
                                                            "cannot index the JSON text") ?: -EINVAL);
        }
        for (size_t i = 0; i < P.idx.n_duplicates; i++) {
                const JsonPosDuplicate *d = &P.idx.duplicates[i];

                if (diagnostics_addf(diags, filename, d->line, d->column, d->path,
                                     "duplicate key (first defined at line %u, column %u); names must be unique within one file",
                                     d->first_line, d->first_column) < 0)
                        P.fatal = true;
        }
        r = parse_root(&P, root, p);
        if (P.idx.n_duplicates > 0 && r >= 0)
                r = -EINVAL;
        json_pos_index_clear(&P.idx);
        json_object_put(root);
        if (P.fatal)
                return -ENOMEM;
        return r;
}

static int policy_apply_file(Policy *p, int dirfd, const char *dir, const char *name,
                             bool missing_ok, PolicyDiagnostics *diags) {
        _cleanup_free_ char *text = NULL, *display = NULL;
        size_t len;
        int r;

        if (asprintf(&display, "%s%s%s", dir ?: "", dir ? "/" : "", name) < 0)
                return -ENOMEM;
        r = file_util_read_at(dirfd, name, POLICY_FILE_MAX, &text, &len);
        if (r == -ENOENT && missing_ok)
                return 0;
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return diagnostics_addf(diags, display, 0, 0, "", "cannot read: %s", strerror(-r)) ?: -EINVAL;
        return policy_apply_text(p, display, text, len, diags);
}

typedef struct DropIn {
        char *name;
        const char *dir;
        int dirfd;
} DropIn;

static int dropin_compare(const void *a, const void *b) {
        return strcmp(((const DropIn *)a)->name, ((const DropIn *)b)->name);
}

static bool has_json_suffix(const char *s) {
        size_t n = strlen(s);

        return n > 5 && streq(s + n - 5, ".json");
}

/* Appends dir's *.json to list, sorted; an entry whose name is already listed masks it. */
static int dropins_collect(DropIn **list, size_t *n, const char *dir, int dirfd,
                           PolicyDiagnostics *diags) {
        _cleanup_(closedirp) DIR *d = NULL;
        size_t first = *n;
        struct dirent *de;
        int fd;

        fd = fcntl(dirfd, F_DUPFD_CLOEXEC, 3);
        if (fd < 0)
                return negative_errno();
        d = fdopendir(fd);
        if (!d) {
                safe_close(fd);
                return negative_errno();
        }
        errno = 0;
        while ((de = readdir(d))) {
                DropIn *l;
                char *name;

                if (de->d_name[0] == '.' || !has_json_suffix(de->d_name))
                        continue;
                name = strdup(de->d_name);
                if (!name)
                        return -ENOMEM;
                /* An admin file named like a vendor file replaces it, as systemd does. */
                for (size_t i = 0; i < first; i++)
                        if (streq((*list)[i].name, name)) {
                                free((*list)[i].name);
                                memmove(*list + i, *list + i + 1, (*n - i - 1) * sizeof(DropIn));
                                (*n)--;
                                first--;
                                break;
                        }
                l = realloc(*list, (*n + 1) * sizeof(DropIn));
                if (!l) {
                        free(name);
                        return -ENOMEM;
                }
                *list = l;
                (*list)[(*n)++] = (DropIn){ .name = name, .dir = dir, .dirfd = dirfd };
        }
        if (errno != 0)
                return diagnostics_addf(diags, dir, 0, 0, "", "cannot list directory: %m") ?: -EINVAL;
        if (*n > first)
                qsort(*list + first, *n - first, sizeof(DropIn), dropin_compare);
        return 0;
}

static int resolve_references(Policy *p, PolicyDiagnostics *diags) {
        int r = 0;

        for (size_t i = 0; i < p->n_grants; i++) {
                PolicyGrant *g = p->grants[i];

                for (size_t j = 0; j < g->n_pools; j++) {
                        PoolRef *ref = &g->pools[j];

                        ref->pool = NULL;
                        for (size_t k = 0; k < p->n_pools; k++)
                                if (streq(p->pools[k]->name, ref->name))
                                        ref->pool = p->pools[k];
                        if (ref->pool)
                                continue;
                        if (diagnostics_addf(diags, ref->source.file, ref->source.line,
                                             ref->source.column, ref->source.path,
                                             "grant '%s' names pool '%s', which no policy file defines",
                                             g->name, ref->name) < 0)
                                return -ENOMEM;
                        r = -EINVAL;
                }
        }
        return r;
}

static int policy_finish(Policy **ret, Policy *p, PolicyDiagnostics *diags, size_t first_diag,
                         int r, Error *err) {
        _cleanup_(policy_freep) Policy *owned = p;
        int q;

        if (r == -ENOMEM)
                return error_set(err, -ENOMEM, "out of memory while loading the policy");
        q = resolve_references(p, diags);
        if (q == -ENOMEM)
                return error_set(err, -ENOMEM, "out of memory while loading the policy");
        if (diags->n > first_diag) {
                const PolicyDiagnostic *d = &diags->items[first_diag];
                size_t more = diags->n - first_diag - 1;

                if (more == 0)
                        return error_set(err, -EINVAL, "%s:%u:%u: %s%s%s", d->file, d->line,
                                         d->column, d->json_path, d->json_path[0] ? ": " : "",
                                         d->message);
                return error_set(err, -EINVAL, "%s:%u:%u: %s%s%s (and %zu more problem%s)",
                                 d->file, d->line, d->column, d->json_path,
                                 d->json_path[0] ? ": " : "", d->message, more,
                                 more == 1 ? "" : "s");
        }
        owned->generation = __atomic_add_fetch(&policy_generation_counter, 1, __ATOMIC_RELAXED);
        *ret = TAKE_PTR(owned);
        return 0;
}

int policy_load_string(Policy **ret, const char *filename, const char *text, size_t len,
                       PolicyDiagnostics *diags, Error *err) {
        PolicyDiagnostics local = {};
        PolicyDiagnostics *d = diags ?: &local;
        size_t first = d->n;
        Policy *p;
        int r;

        r = policy_new_defaults(&p);
        if (r < 0)
                return error_set(err, r, "out of memory while loading the policy");
        r = policy_apply_text(p, filename ?: "<string>", text, len, d);
        r = policy_finish(ret, p, d, first, r, err);
        policy_diagnostics_clear(&local);
        return r;
}

int policy_load(Policy **ret, const PolicyPaths *paths, PolicyDiagnostics *diags, Error *err) {
        const char *vendor = paths && paths->vendor_dir ? paths->vendor_dir : IOMMUD_VENDOR_POLICY_DIR;
        const char *admin = paths && paths->admin_dir ? paths->admin_dir : IOMMUD_POLICY_DIR;
        const char *file = paths && paths->file ? paths->file : IOMMUD_POLICY_FILE;
        PolicyDiagnostics local = {};
        PolicyDiagnostics *d = diags ?: &local;
        const char *dirs[2] = { vendor, admin };
        int dirfds[2] = { -EBADF, -EBADF };
        DropIn *list = NULL;
        size_t n = 0, first = d->n;
        Policy *p = NULL;
        int r = 0, q;

        q = policy_new_defaults(&p);
        if (q < 0) {
                r = q;
                goto finish;
        }
        for (size_t i = 0; i < 2; i++) {
                /* An empty path turns the directory off. */
                if (!dirs[i][0])
                        continue;
                dirfds[i] = open(dirs[i], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                if (dirfds[i] < 0) {
                        if (errno == ENOENT)
                                continue;
                        q = diagnostics_addf(d, dirs[i], 0, 0, "", "cannot open directory: %m");
                        r = q < 0 ? q : -EINVAL;
                        continue;
                }
                q = dropins_collect(&list, &n, dirs[i], dirfds[i], d);
                if (q == -ENOMEM) {
                        r = q;
                        goto finish;
                }
                if (q < 0)
                        r = q;
        }
        for (size_t i = 0; i < n; i++) {
                q = policy_apply_file(p, list[i].dirfd, list[i].dir, list[i].name, false, d);
                if (q == -ENOMEM) {
                        r = q;
                        goto finish;
                }
                if (q < 0)
                        r = q;
        }
        if (file[0]) {
                q = policy_apply_file(p, AT_FDCWD, NULL, file, true, d);
                if (q == -ENOMEM)
                        r = q;
                else if (q < 0)
                        r = q;
        }
finish:
        for (size_t i = 0; i < n; i++)
                free(list[i].name);
        free(list);
        for (size_t i = 0; i < 2; i++)
                safe_close(dirfds[i]);
        if (!p)
                r = error_set(err, -ENOMEM, "out of memory while loading the policy");
        else
                r = policy_finish(ret, p, d, first, r, err);
        policy_diagnostics_clear(&local);
        return r;
}
