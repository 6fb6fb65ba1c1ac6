/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* Who a grant applies to: users, groups (resolved by name when loading) and units. */

#include <ctype.h>
#include <errno.h>
#include <grp.h>
#include <inttypes.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "macros.h"
#include "policy-parser.h"
#include "user-util.h"

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
                        r = policy_parse_json_uint(P, v, path, &u);
                        if (r < 0)
                                return r;
                        if (u >= UINT32_MAX)
                                return policy_parse_error(P, path, false,
                                                          "%s id %" PRIu64 " is out of range", what,
                                                          u);
                        snprintf(numbuf, sizeof(numbuf), "%" PRIu64, u);
                        text = numbuf;
                } else if (json_object_is_type(v, json_type_string))
                        text = json_object_get_string(v);
                else
                        return policy_parse_error(P, path, false,
                                                  "expected a %s name or number, got %s", what,
                                                  policy_json_type_name(v));
        }

        if (all_digits(text)) {
                if (parse_id_number(text, &id) < 0)
                        return policy_parse_error(P, path, false, "%s id %s is out of range", what,
                                                  text);
                if (policy_append_description(desc, "%s %s", group ? "gid" : "uid", text) < 0)
                        goto oom;
                *ret = id;
                return 0;
        }
        if (!*text)
                return policy_parse_error(P, path, false, "empty %s name", what);
        r = lookup_id(text, group, &id);
        if (r == -ENOMEM)
                goto oom;
        if (r == -ESRCH)
                return policy_parse_error(P, path, false,
                                          "unknown %s '%s': no such %s on this system", what, text,
                                          what);
        if (r < 0)
                return policy_parse_error(P, path, false, "cannot look up %s '%s': %s", what, text,
                                          strerror(-r));
        if (policy_append_description(desc, "%s %s (%s %" PRIu32 ")", what, text,
                                      group ? "gid" : "uid", id) < 0)
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
                int r = policy_parse_string(P, v, path, &text);
                if (r < 0)
                        return r;
        }
        problem = policy_glob_problem(text);
        if (problem)
                return policy_parse_error(P, path, false, "invalid unit pattern '%s': %s", text,
                                          problem);
        m->unit = strdup(text);
        m->unit_kind = policy_glob_kind(text);
        if (!m->unit || policy_append_description(&m->description, "unit %s", text) < 0) {
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
                        r = policy_parse_error(P, path, false,
                                               "invalid principal '%s': expected \"user:NAME\", "
                                               "\"group:NAME\" or \"unit:PATTERN\"",
                                               s);
        } else if (json_object_is_type(v, json_type_object)) {
                json_object *f;
                char child[JPATH_MAX];

                r = policy_check_keys(P, v, path, keys);
                if (json_object_object_length(v) == 0)
                        r = policy_parse_error(
                                P, path, false,
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
                r = policy_parse_error(P, path, false,
                                       "expected a principal (\"user:NAME\", \"group:NAME\", "
                                       "\"unit:PATTERN\" or an object), got %s",
                                       policy_json_type_name(v));
        if (r < 0) {
                principal_matcher_done(&m);
                return r;
        }
        *ret = m;
        return 0;
}

int policy_parse_principals(Parser *P, json_object *v, const char *path, PolicyGrant *g) {
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
                return policy_parse_error(P, path, false, "a grant needs at least one principal");
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
