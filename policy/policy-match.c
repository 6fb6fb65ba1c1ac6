/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * What matches what: patterns, device matchers, principal matchers and the
 * grants built of them.  Decisions run for every device on every request.
 */

#include <fnmatch.h>
#include <stdbool.h>
#include <string.h>
#include <strings.h>

#include "macros.h"
#include "policy-internal.h"

GlobKind policy_glob_kind(const char *pattern) {
        if (strpbrk(pattern, "[\\"))
                return GLOB_FNMATCH;
        if (strpbrk(pattern, "*?") == pattern + strlen(pattern) - 1 && pattern[strlen(pattern) - 1] == '*')
                return GLOB_PREFIX;
        if (strpbrk(pattern, "*?"))
                return GLOB_SIMPLE;
        return GLOB_EXACT;
}

static inline char fold(char c, bool casefold) {
        return casefold && c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

bool policy_glob_match(const char *pattern, GlobKind kind, const char *s, bool casefold) {
        const char *star_p = NULL, *star_s = NULL, *p = pattern;

        if (kind == GLOB_FNMATCH)
                return fnmatch(pattern, s, casefold ? FNM_CASEFOLD : 0) == 0;
        if (kind == GLOB_EXACT)
                return casefold ? strcasecmp(pattern, s) == 0 : streq(pattern, s);
        if (kind == GLOB_PREFIX) {
                /* Everything but the final '*'. */
                size_t n = strlen(pattern) - 1;

                return casefold ? strncasecmp(pattern, s, n) == 0 : strneq(pattern, s, n);
        }

        /* '*' and '?' only: backtrack to the last star, which is linear enough here. */
        while (*s) {
                if (*p == '*') {
                        star_p = ++p;
                        star_s = s;
                } else if (*p == '?' || (*p && fold(*p, casefold) == fold(*s, casefold))) {
                        p++;
                        s++;
                } else if (star_p) {
                        p = star_p;
                        s = ++star_s;
                } else
                        return false;
        }
        while (*p == '*')
                p++;
        return *p == 0;
}

bool device_matcher_match(const DeviceMatcher *m, const TopoDevice *d) {
        if (m->has_id && ((m->vendor >= 0 && (uint16_t)m->vendor != d->vendor) ||
                          (m->device >= 0 && (uint16_t)m->device != d->device)))
                return false;
        if (m->has_class && (d->class & m->class_mask) != m->class_value)
                return false;
        if (m->bdf) {
                if (!d->name)
                        return false;
                if (!policy_glob_match(m->bdf, m->bdf_kind, d->name, true))
                        return false;
        }
        if (m->driver) {
                if (!d->driver)
                        return false;
                if (!policy_glob_match(m->driver, m->driver_kind, d->driver, false))
                        return false;
        }
        return true;
}

ssize_t matcher_list_match(const MatcherList *l, const TopoDevice *d) {
        for (size_t i = 0; i < l->n; i++)
                if (device_matcher_match(&l->items[i], d))
                        return (ssize_t)i;
        return -1;
}

bool principal_matcher_match(const PrincipalMatcher *m, const Principal *p) {
        if (m->has_uid && p->uid != m->uid)
                return false;
        if (m->has_gid && p->gid != m->gid) {
                bool found = false;

                for (size_t i = 0; i < p->n_groups; i++)
                        if (p->groups[i] == m->gid) {
                                found = true;
                                break;
                        }
                if (!found)
                        return false;
        }
        if (m->unit && (!p->unit || !policy_glob_match(m->unit, m->unit_kind, p->unit, false)))
                return false;
        return true;
}

/* The first principal matcher of g that matches p, or NULL. */
const PrincipalMatcher *policy_grant_match_principal(const PolicyGrant *g, const Principal *p) {
        for (size_t i = 0; i < g->n_principals; i++)
                if (principal_matcher_match(&g->principals[i], p))
                        return &g->principals[i];
        return NULL;
}

/* Whether g covers d; on success names the pool and matcher that did. */
bool policy_grant_covers(const PolicyGrant *g, const TopoDevice *d, const PolicyPool **ret_pool,
                         const DeviceMatcher **ret_matcher) {
        ssize_t k;

        k = matcher_list_match(&g->devices, d);
        if (k >= 0) {
                *ret_pool = NULL;
                *ret_matcher = &g->devices.items[k];
                return true;
        }
        for (size_t i = 0; i < g->n_pools; i++) {
                const PolicyPool *pool = g->pools[i].pool;

                if (!pool)
                        continue;
                k = matcher_list_match(&pool->devices, d);
                if (k >= 0) {
                        *ret_pool = pool;
                        *ret_matcher = &pool->devices.items[k];
                        return true;
                }
        }
        return false;
}
