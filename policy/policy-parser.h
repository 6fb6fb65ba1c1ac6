/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Shared by the files that load the policy: policy-config.c reads the files,
 * policy-sections.c, policy-principals.c and policy-values.c parse what they
 * say, policy-diagnostics.c records what is wrong.  A Parser carries one file.
 * Parse functions record every problem as a diagnostic and return -EINVAL, or
 * set P->fatal and return -ENOMEM; they go on after a problem so that one run
 * reports them all.  Nothing outside policy/ includes this.
 */

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "json-pos.h"
#include "macros.h"
#include "policy-internal.h"

#define JPATH_MAX 1024

typedef struct Parser {
        const char *file;
        const char *text;
        size_t len;
        JsonPosIndex idx;
        PolicyDiagnostics *diags;
        bool fatal;              /* out of memory: stop */
} Parser;

/* policy-diagnostics.c: appends one diagnostic; -ENOMEM or 0. */
int policy_diagnostics_addv(PolicyDiagnostics *d, const char *file, unsigned line, unsigned column,
                            const char *path, const char *fmt, va_list ap) _printf_(6, 0);
int policy_diagnostics_addf(PolicyDiagnostics *d, const char *file, unsigned line, unsigned column,
                            const char *path, const char *fmt, ...) _printf_(6, 7);

/* policy-values.c */
int policy_parse_error(Parser *P, const char *path, bool at_key, const char *fmt, ...)
        _printf_(4, 5);
const char *policy_json_type_name(json_object *v); /* "an integer", "a string", ... */
int policy_expect_type(Parser *P, json_object *v, const char *path, json_type t, const char *what);
int policy_parse_string(Parser *P, json_object *v, const char *path, const char **ret);
int policy_parse_bool(Parser *P, json_object *v, const char *path, bool *ret);
int policy_parse_json_uint(Parser *P, json_object *v, const char *path, uint64_t *ret);
/* A count: an integer or "unlimited" (UINT64_MAX). */
int policy_parse_count(Parser *P, json_object *v, const char *path, uint64_t *ret);
/*
 * A size: bytes, or a string such as "4G" (binary multiples), at most max (named max_name in
 * the error, "4P"); "unlimited" (UINT64_MAX) only with unlimited.
 */
int policy_parse_size(Parser *P, json_object *v, const char *path, uint64_t max,
                      const char *max_name, bool unlimited, uint64_t *ret);
/* An address: an integer, or a string in hex ("0x...") or decimal. */
int policy_parse_u64(Parser *P, json_object *v, const char *path, uint64_t *ret);
/* Where the value at path was written, for problems found after the merge; -ENOMEM or 0. */
int policy_source_remember(Parser *P, const char *path, PolicySource *ret);
/* Reports every key of obj that is not in allowed (NULL-terminated). */
int policy_check_keys(Parser *P, json_object *obj, const char *path, const char *const *allowed);
/* Why s is no valid pattern, or NULL when it is one. */
const char *policy_glob_problem(const char *s);
/* Appends ", " and a formatted part to *desc; -ENOMEM or 0. */
int policy_append_description(char **desc, const char *fmt, ...) _printf_(2, 3);
/* One device matcher or an array of them. */
int policy_parse_matcher_list(Parser *P, json_object *v, const char *path, MatcherList *ret);

/* policy-principals.c: a grant's "principals", one or an array. */
int policy_parse_principals(Parser *P, json_object *v, const char *path, PolicyGrant *g);

/* policy-sections.c: a whole file's top-level object, merged into p. */
int policy_parse_root(Parser *P, json_object *root, Policy *p);
