/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* What a principal's grants give it besides devices: quotas, IOVA windows, PASIDs, delegation. */

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "assert-util.h"
#include "macros.h"
#include "policy-internal.h"
#include "policy.h"

void policy_quotas(const Policy *p, const Principal *principal, PolicyQuotas *ret) {
        uint64_t v[_QUOTA_FIELD_MAX] = {};
        bool any = false;

        if (!principal) {
                memcpy(v, p->default_quotas, sizeof(v));
                any = true;
        } else
                for (size_t i = 0; i < p->n_grants; i++) {
                        const PolicyGrant *g = p->grants[i];

                        if (!policy_grant_match_principal(g, principal))
                                continue;
                        any = true;
                        /* Several grants: the most generous value of each quota. */
                        for (QuotaField q = 0; q < _QUOTA_FIELD_MAX; q++) {
                                uint64_t x = g->quotas.set & (1u << q) ? g->quotas.v[q]
                                                                       : p->default_quotas[q];
                                v[q] = MAX(v[q], x);
                        }
                }
        /* Without a grant nothing may be allocated, but the principal may still connect and ask. */
        if (!any)
                v[QUOTA_CONNECTIONS] = p->default_quotas[QUOTA_CONNECTIONS];
        /*
         * max-connections-per-user caps every principal's connections quota: one count (the
         * principal's connections on both transports) against one number, not a second
         * count in the transport that could disagree with it.
         */
        v[QUOTA_CONNECTIONS] = MIN(v[QUOTA_CONNECTIONS], p->limits.max_connections_per_uid);

        *ret = (PolicyQuotas){
                .pinned_bytes = v[QUOTA_PINNED_BYTES],
                .address_spaces = v[QUOTA_ADDRESS_SPACES],
                .mappings = v[QUOTA_MAPPINGS],
                .devices = v[QUOTA_DEVICES],
                .pasids = v[QUOTA_PASIDS],
                .fault_queue_depth = v[QUOTA_FAULT_QUEUE_DEPTH],
                .connections = v[QUOTA_CONNECTIONS],
        };
}

const PolicyLimits *policy_limits(const Policy *p) {
        assert_return(p, NULL);
        return &p->limits;
}

int policy_iova_windows(const Policy *p, const Principal *principal, const TopoDevice *d,
                        const IovaWindow **ret, size_t *ret_n) {
        assert_return(p && ret && ret_n, -EINVAL);

        if (!principal)
                return -EPERM;
        for (size_t i = 0; i < p->n_grants; i++) {
                const PolicyGrant *g = p->grants[i];
                const PolicyPool *pool;
                const DeviceMatcher *dm;

                if (!policy_grant_match_principal(g, principal))
                        continue;
                if (d && !policy_grant_covers(g, d, &pool, &dm))
                        continue;
                /* The first grant (in policy order) that gives the device decides. */
                *ret = g->windows;
                *ret_n = g->n_windows;
                return 0;
        }
        return -EPERM;
}

void policy_pasid_range(const Policy *p, const Principal *principal, uint32_t *ret_min,
                        uint32_t *ret_max) {
        uint32_t lo = UINT32_MAX, hi = 0;

        for (size_t i = 0; principal && i < p->n_grants; i++) {
                const PolicyGrant *g = p->grants[i];

                if (!policy_grant_match_principal(g, principal))
                        continue;
                lo = MIN(lo, g->has_pasids ? g->pasid_min : PASID_MIN_DEFAULT);
                hi = MAX(hi, g->has_pasids ? g->pasid_max : PASID_MAX_DEFAULT);
        }
        if (lo > hi) {
                /* No grant: an empty range. */
                lo = PASID_MIN_DEFAULT;
                hi = 0;
        }
        *ret_min = lo;
        *ret_max = hi;
}

bool policy_allows_delegation(const Policy *p, const Principal *principal) {
        assert_return(p, false);

        for (size_t i = 0; principal && i < p->n_grants; i++)
                if (p->grants[i]->delegation &&
                    policy_grant_match_principal(p->grants[i], principal))
                        return true;
        return false;
}

bool policy_allows_dirty_tracking(const Policy *p, const Principal *principal) {
        assert_return(p, false);

        for (size_t i = 0; principal && i < p->n_grants; i++)
                if (p->grants[i]->no_dirty_tracking &&
                    policy_grant_match_principal(p->grants[i], principal))
                        return false;
        return true;
}

const PolicyGrant *policy_grant_with(const Policy *p, const Principal *principal,
                                      const TopoDevice *d, size_t flag_offset) {
        for (size_t i = 0; principal && d && i < p->n_grants; i++) {
                const PolicyGrant *g = p->grants[i];
                const PolicyPool *pool;
                const DeviceMatcher *dm;

                if (*(const bool *)((const char *)g + flag_offset) &&
                    policy_grant_match_principal(g, principal) &&
                    policy_grant_covers(g, d, &pool, &dm))
                        return g;
        }
        return NULL;
}

bool policy_allows_open_on_behalf(const Policy *p, const Principal *principal,
                                  const TopoDevice *d) {
        assert_return(p, false);

        return policy_grant_with(p, principal, d, offsetof(PolicyGrant, open_on_behalf));
}

bool policy_allows_delegation_of(const Policy *p, const Principal *principal,
                                 const TopoDevice *d) {
        assert_return(p, false);

        return policy_grant_with(p, principal, d, offsetof(PolicyGrant, delegation));
}
