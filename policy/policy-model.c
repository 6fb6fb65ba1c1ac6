/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* The policy's model: built-in defaults, releasing it, and the named lists it keeps. */

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "macros.h"
#include "policy-internal.h"

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
        .reserved_connections = 8,
        .idle_timeout_ms = 600000,
        .socket_mode = 0666,
        .fault_response_timeout_ms = 5000,
        .session_reclaim_grace_ms = 30000,
        .device_release_timeout_ms = 10000,
};

void device_matcher_done(DeviceMatcher *m) {
        free(m->bdf);
        free(m->driver);
        free(m->description);
}

void matcher_list_done(MatcherList *l) {
        for (size_t i = 0; i < l->n; i++)
                device_matcher_done(&l->items[i]);
        free(l->items);
        *l = (MatcherList){};
}

void policy_source_done(PolicySource *s) {
        free(s->file);
        free(s->path);
}

void policy_rule_free(void *p) {
        PolicyRule *r = p;

        if (!r)
                return;
        free(r->name);
        matcher_list_done(&r->match);
        free(r);
}

void policy_pool_free(void *p) {
        PolicyPool *pool = p;

        if (!pool)
                return;
        free(pool->name);
        matcher_list_done(&pool->devices);
        free(pool);
}

void policy_region_exception_free(void *p) {
        PolicyRegionException *e = p;

        if (!e)
                return;
        free(e->name);
        matcher_list_done(&e->match);
        free(e);
}

void policy_grant_free(void *p) {
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
        for (size_t i = 0; i < g->n_windows; i++)
                policy_source_done(&g->window_sources[i]);
        free(g->window_sources);
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

int policy_new_defaults(Policy **ret) {
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
int policy_named_list_put(void ***items, size_t *n, void *item, void (*free_one)(void *)) {
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

void policy_named_list_remove(void ***items, size_t *n, const char *name,
                              void (*free_one)(void *)) {
        for (size_t i = 0; i < *n; i++)
                if (streq(named_name((*items)[i]), name)) {
                        free_one((*items)[i]);
                        memmove(*items + i, *items + i + 1, (*n - i - 1) * sizeof(void *));
                        (*n)--;
                        return;
                }
}
