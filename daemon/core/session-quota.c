/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Quotas per principal.  A principal is a uid: whatever transport its sessions came
 * through (Varlink connections, joined connections, org.iommud1 sessions), they are
 * charged to one row of the host's usage table, and each charge checks that row's total
 * against the quota of the session that asks.  A session also counts its own share, which
 * is what it gives back when it ends.
 */

#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include "assert-util.h"
#include "session-internal.h"

static const struct {
        const char *name; /* BROKER_RESOURCE_* */
        size_t offset;    /* in PolicyQuotas */
} resources[_SESSION_RESOURCE_MAX] = {
        [SESSION_RESOURCE_PINNED_BYTES] = { BROKER_RESOURCE_PINNED_BYTES,
                                            offsetof(PolicyQuotas, pinned_bytes) },
        [SESSION_RESOURCE_ADDRESS_SPACES] = { BROKER_RESOURCE_ADDRESS_SPACES,
                                              offsetof(PolicyQuotas, address_spaces) },
        [SESSION_RESOURCE_MAPPINGS] = { BROKER_RESOURCE_MAPPINGS,
                                        offsetof(PolicyQuotas, mappings) },
        [SESSION_RESOURCE_DEVICES] = { BROKER_RESOURCE_DEVICES, offsetof(PolicyQuotas, devices) },
        [SESSION_RESOURCE_PASIDS] = { BROKER_RESOURCE_PASIDS, offsetof(PolicyQuotas, pasids) },
        [SESSION_RESOURCE_CONNECTIONS] = { BROKER_RESOURCE_CONNECTIONS,
                                           offsetof(PolicyQuotas, connections) },
};

static uint64_t *quota_field(PolicyQuotas *q, SessionResource r) {
        return (uint64_t *)((uint8_t *)q + resources[r].offset);
}

static uint64_t quota_value(const PolicyQuotas *q, SessionResource r) {
        return *(const uint64_t *)((const uint8_t *)q + resources[r].offset);
}

/* ---- the table --------------------------------------------------------------------------- */

SessionPrincipal *session_principal_ref(SessionHost *h, uid_t uid) {
        SessionPrincipal *p;

        for (p = h->principals; p; p = p->next)
                if (p->uid == uid) {
                        p->n_sessions++;
                        return p;
                }
        p = calloc(1, sizeof(*p));
        if (!p)
                return NULL;
        *p = (SessionPrincipal){ .next = h->principals, .uid = uid, .n_sessions = 1 };
        h->principals = p;
        return p;
}

void session_principal_unref(SessionHost *h, SessionPrincipal *p) {
        if (!p)
                return;
        assert(p->n_sessions > 0);
        if (--p->n_sessions > 0)
                return;
        /* Every session gave back its share before it let go: a row left over is a leak. */
        for (SessionResource r = 0; r < _SESSION_RESOURCE_MAX; r++)
                assert(quota_value(&p->used, r) == 0);
        for (SessionPrincipal **pp = &h->principals; *pp; pp = &(*pp)->next)
                if (*pp == p) {
                        *pp = p->next;
                        break;
                }
        free(p);
}

int session_host_principal_usage(const SessionHost *h, uid_t uid, PolicyQuotas *ret,
                                 unsigned *ret_sessions) {
        assert_return(h, -EINVAL);
        assert_return(ret, -EINVAL);

        for (const SessionPrincipal *p = h->principals; p; p = p->next)
                if (p->uid == uid) {
                        *ret = p->used;
                        if (ret_sessions)
                                *ret_sessions = p->n_sessions;
                        return 0;
                }
        return -ENOENT;
}

/* ---- charges ----------------------------------------------------------------------------- */

int session_quota_exceeded(Session *s, SessionResource r, uint64_t want, BrokerError *err) {
        char whose[96];

        snprintf(whose, sizeof(whose), "uid %u (%u session%s)", (unsigned)s->creds->uid,
                 s->principal->n_sessions, s->principal->n_sessions == 1 ? "" : "s");
        return broker_error_quota(err, resources[r].name, whose, quota_value(&s->quotas, r),
                                  quota_value(&s->principal->used, r), want);
}

int session_charge(Session *s, SessionResource r, uint64_t n, BrokerError *err) {
        uint64_t *total = quota_field(&s->principal->used, r), sum;

        assert(r < _SESSION_RESOURCE_MAX);
        if (ADD_OVERFLOW(*total, n, &sum) || sum > quota_value(&s->quotas, r))
                return session_quota_exceeded(s, r, n, err);
        *total = sum;
        *quota_field(&s->usage, r) += n;
        return 0;
}

void session_charge_held(Session *s, SessionResource r, uint64_t n) {
        assert(r < _SESSION_RESOURCE_MAX);
        *quota_field(&s->principal->used, r) += n;
        *quota_field(&s->usage, r) += n;
}

void session_refund(Session *s, SessionResource r, uint64_t n) {
        uint64_t *mine = quota_field(&s->usage, r), *total = quota_field(&s->principal->used, r);

        assert(r < _SESSION_RESOURCE_MAX);
        assert(*mine >= n && *total >= n);
        *mine -= n;
        *total -= n;
}

void session_refund_all(Session *s) {
        for (SessionResource r = 0; r < _SESSION_RESOURCE_MAX; r++)
                session_refund(s, r, quota_value(&s->usage, r));
}

int session_charge_mappings(Session *s, uint64_t n, uint64_t bytes, BrokerError *err) {
        int r;

        r = session_charge(s, SESSION_RESOURCE_MAPPINGS, n, err);
        if (r < 0)
                return r;
        r = session_charge(s, SESSION_RESOURCE_PINNED_BYTES, bytes, err);
        if (r < 0)
                session_refund(s, SESSION_RESOURCE_MAPPINGS, n);
        return r;
}

void session_refund_mappings(Session *s, uint64_t n, uint64_t bytes) {
        session_refund(s, SESSION_RESOURCE_MAPPINGS, n);
        session_refund(s, SESSION_RESOURCE_PINNED_BYTES, bytes);
}

/* ---- connections ------------------------------------------------------------------------- */

int session_add_connection(Session *s, BrokerError *err) {
        assert_return(s, -EINVAL);
        return session_charge(s, SESSION_RESOURCE_CONNECTIONS, 1, err);
}

void session_remove_connection(Session *s) {
        assert(s);
        session_refund(s, SESSION_RESOURCE_CONNECTIONS, 1);
}

int session_move_connection(Session *from, Session *to) {
        assert_return(from && to, -EINVAL);
        assert_return(from->principal == to->principal, -EINVAL);
        assert_return(from->usage.connections > 0, -EINVAL);

        /* The principal keeps the same number of connections: nothing to check. */
        from->usage.connections--;
        to->usage.connections++;
        return 0;
}

/* ---- idleness --------------------------------------------------------------------------- */

bool session_holds_nothing(const Session *s) {
        assert_return(s, false);
        if (s->delegated || s->usage.pinned_bytes > 0 || s->usage.address_spaces > 0 ||
            s->usage.mappings > 0 || s->usage.devices > 0 || s->usage.pasids > 0)
                return false;
        for (size_t i = 0; i < s->host->n_claims; i++)
                if (s->host->claims[i].owner == s)
                        return false;
        return true;
}

/* ---- reports ----------------------------------------------------------------------------- */

static SessionUsage usage_row(const SessionInfo *info, SessionResource r) {
        return (SessionUsage){
                .resource = resources[r].name,
                .used = quota_value(&info->usage, r),
                .principal_used = quota_value(&info->principal_usage, r),
                .limit = quota_value(&info->quotas, r),
                .per_principal = true,
        };
}

size_t session_usage_rows(const SessionInfo *info, SessionUsage ret[static SESSION_USAGE_MAX]) {
        size_t n = 0;

        assert_return(info, 0);

        ret[n++] = usage_row(info, SESSION_RESOURCE_PINNED_BYTES);
        ret[n++] = usage_row(info, SESSION_RESOURCE_ADDRESS_SPACES);
        ret[n++] = usage_row(info, SESSION_RESOURCE_MAPPINGS);
        ret[n++] = usage_row(info, SESSION_RESOURCE_DEVICES);
        ret[n++] = usage_row(info, SESSION_RESOURCE_PASIDS);
        /* The fault queue is the session's own: its depth is limited per session. */
        ret[n++] = (SessionUsage){
                .resource = BROKER_RESOURCE_FAULT_QUEUE_DEPTH,
                .used = info->usage.fault_queue_depth,
                .principal_used = info->usage.fault_queue_depth,
                .limit = info->quotas.fault_queue_depth,
        };
        ret[n++] = usage_row(info, SESSION_RESOURCE_CONNECTIONS);
        return n;
}
