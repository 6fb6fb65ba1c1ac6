/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "assert-util.h"
#include "explain.h"
#include "log.h"
#include "principal.h"
#include "session-internal.h"

/* ---- claims ---------------------------------------------------------------------------- */

SessionClaim *session_host_find_claim(SessionHost *h, const char *device) {
        for (size_t i = 0; i < h->n_claims; i++)
                if (streq(h->claims[i].device, device))
                        return &h->claims[i];
        return NULL;
}

int session_host_add_claim(SessionHost *h, const char *device, Session *owner) {
        SessionClaim *c;
        char *name;

        name = strdup(device);
        if (!name)
                return -ENOMEM;
        c = realloc(h->claims, (h->n_claims + 1) * sizeof(*c));
        if (!c) {
                free(name);
                return -ENOMEM;
        }
        h->claims = c;
        h->claims[h->n_claims++] = (SessionClaim){ .device = name, .owner = owner };
        return 0;
}

void session_host_release_claim(SessionHost *h, const char *device, const Session *owner) {
        for (size_t i = 0; i < h->n_claims; i++) {
                if (h->claims[i].owner != owner || !streq(h->claims[i].device, device))
                        continue;
                free(h->claims[i].device);
                h->claims[i] = h->claims[--h->n_claims];
                return;
        }
}

bool session_group_viable(const TopoGroup *g) {
        assert_return(g, false);

        return topo_group_viable(g);
}

Session *session_host_device_holder(SessionHost *h, const TopoDevice *d, const Session *self) {
        SessionClaim *c;

        assert_return(h, NULL);
        assert_return(d, NULL);

        if (!d->group) {
                c = session_host_find_claim(h, d->name);
                return c && c->owner != self ? c->owner : NULL;
        }
        /* A group is one isolation unit: any claimed member makes the whole group busy. */
        for (size_t i = 0; i < d->group->n_devices; i++) {
                c = session_host_find_claim(h, d->group->devices[i]->name);
                if (c && c->owner != self)
                        return c->owner;
        }
        return NULL;
}

Lingering *session_host_lingering(SessionHost *h) {
        assert_return(h, NULL);

        if (!h->lingering && lingering_new(&h->lingering, h->backend, NULL) < 0)
                return NULL;
        return h->lingering;
}

int session_host_holder(SessionHost *h, const TopoDevice *d, const Session *self,
                        SessionHolder *ret) {
        const Session *s;
        LingeringHolder lh;
        Lingering *l;

        assert_return(h, -EINVAL);
        assert_return(d, -EINVAL);
        assert_return(ret, -EINVAL);

        s = session_host_device_holder(h, d, self);
        if (s) {
                *ret = (SessionHolder){ .session = s, .pid = s->creds->pid };
                snprintf(ret->description, sizeof(ret->description), "%s", s->description);
                return 1;
        }
        l = session_host_lingering(h);
        if (!l)
                return 0;
        /* A lingering member keeps its group bound to a context of its own, as a claim does. */
        for (size_t i = 0; i < (d->group ? d->group->n_devices : 1); i++) {
                const char *name = d->group ? d->group->devices[i]->name : d->name;

                if (lingering_check(l, name, self ? self->creds->pid : 0, &lh) <= 0)
                        continue;
                *ret = (SessionHolder){ .pid = lh.pid };
                snprintf(ret->description, sizeof(ret->description), "%s", lh.description);
                return 1;
        }
        return 0;
}

const char *session_host_holder_description(SessionHost *h, const TopoDevice *d,
                                            const Session *self) {
        SessionHolder holder;

        if (session_host_holder(h, d, self, &holder) <= 0)
                return NULL;
        snprintf(h->holder_description, sizeof(h->holder_description), "%s",
                 holder.description);
        return h->holder_description;
}

const char *session_host_device_held_by(SessionHost *h, const char *device,
                                        const Session *self) {
        SessionClaim *c;
        LingeringHolder lh;
        Lingering *l;

        assert_return(h, NULL);
        assert_return(device, NULL);

        c = session_host_find_claim(h, device);
        if (c)
                return c->owner->description;
        l = session_host_lingering(h);
        if (!l || lingering_check(l, device, self ? self->creds->pid : 0, &lh) <= 0)
                return NULL;
        snprintf(h->holder_description, sizeof(h->holder_description), "%s", lh.description);
        return h->holder_description;
}

Session *session_host_claim_owner(SessionHost *h, const char *device) {
        SessionClaim *c;

        assert_return(h, NULL);
        assert_return(device, NULL);

        c = session_host_find_claim(h, device);
        return c ? c->owner : NULL;
}

void session_host_done(SessionHost *h) {
        assert(h);

        while (h->sessions)
                session_free(h->sessions);
        for (size_t i = 0; i < h->n_claims; i++)
                free(h->claims[i].device);
        free(h->claims);
        h->claims = NULL;
        h->n_claims = 0;
        h->lingering = lingering_free(h->lingering);
        /* Each session took its row of the usage table with it. */
        assert(!h->principals);
}

/* ---- lifetime -------------------------------------------------------------------------- */

Session *session_alloc(SessionHost *host, PeerCreds *creds) {
        Session *s;
        Principal p;

        s = calloc(1, sizeof(*s));
        if (!s)
                return NULL;
        s->principal = session_principal_ref(host, creds->uid);
        if (!s->principal) {
                free(s);
                return NULL;
        }
        s->host = host;
        s->creds = creds;
        peer_creds_describe(creds, s->description, sizeof(s->description));
        session_principal(s, &p);
        policy_quotas(host->policy, &p, &s->quotas);
        return s;
}

void session_discard(Session *s) {
        if (!s)
                return;
        session_refund_all(s);
        session_principal_unref(s->host, s->principal);
        free(s);
}

static void session_discardp(Session **s) {
        session_discard(*s);
}

void session_link(Session *s) {
        SessionHost *host = s->host;

        s->next = host->sessions;
        if (host->sessions)
                host->sessions->prev = s;
        host->sessions = s;
        host->n_sessions++;
}

int session_new(Session **ret, SessionHost *host, PeerCreds *creds, BrokerError *err) {
        _cleanup_(session_discardp) Session *s = NULL;
        Error be;
        int r;

        error_init(&be);
        assert_return(ret, -EINVAL);
        assert_return(host && host->backend && host->policy, -EINVAL);
        assert_return(creds, -EINVAL);

        s = session_alloc(host, creds);
        if (!s)
                return broker_error_system(err, -ENOMEM, "Allocating memory");

        /* Charged here so that the socket and the bus count one limit the same way, and before
         * anything is opened for a client that is refused. */
        r = session_add_connection(s, err);
        if (r < 0)
                return r;

        r = host->backend->ops->context_new(host->backend, &s->ctx, &be);
        if (r < 0)
                return broker_error_from_backend(err, "open an iommufd context", &be);
        s->ctx->fds_checked = true; /* check_memory_fd() before every map */

        session_link(s);
        if (host->on_session)
                host->on_session(s, SESSION_OPENED, host->on_session_userdata);
        *ret = TAKE_PTR(s);
        return 0;
}

/*
 * Everything the session made, through the kernel, before any record goes.  The client may
 * keep its device files, and a bound file keeps the context and every object in it alive
 * whatever iommud closes: so each device is detached through the kernel, each address space
 * unmapped (the pins go with the mappings) and destroyed, and no object of the session is left
 * for a kept file to reach.
 */
static void session_teardown(Session *s, uint32_t fault_id) {
        Error be;

        error_init(&be);
        session_drop_all_pasids(s);
        /* Devices first, so they are free for others before this function returns. */
        for (size_t i = 0; i < s->n_devices; i++)
                session_device_release(s, &s->devices[i]);
        for (size_t i = 0; i < s->n_ioas; i++)
                (void)session_ioas_teardown(s, &s->ioas[i]);
        if (fault_id != 0 && OPS(s)->destroy(s->ctx, fault_id, &be) < 0)
                log_debug("Destroying fault queue %" PRIu32 " failed, ignoring: %s", fault_id,
                          error_message(&be));
}

/* The daemon exits for a restart that takes the session over: only the claims go. */
static void session_hand_over(Session *s) {
        for (size_t i = 0; i < s->n_devices; i++) {
                session_host_release_claim(s->host, s->devices[i].name, s);
                free(s->devices[i].name);
        }
}

Session *session_free(Session *s) {
        uint32_t fault_id;

        if (!s)
                return NULL;
        if (s->host->on_session)
                s->host->on_session(s, SESSION_CLOSING, s->host->on_session_userdata);

        fault_id = s->faults ? fault_stream_fault_id(s->faults) : 0;
        /* Pending faults are answered INVALID before the devices go. */
        s->faults = fault_stream_free(s->faults);
        if (s->host->preserving)
                session_hand_over(s);
        else
                session_teardown(s, fault_id);
        free(s->pasids);
        free(s->devices);
        session_handoff_release_all(s);
        for (size_t i = 0; i < s->n_ioas; i++) {
                session_ioas_free_areas(&s->ioas[i]);
                free(s->ioas[i].allowed);
                free(s->ioas[i].dirty_hwpts);
        }
        free(s->ioas);
        for (size_t i = 0; i < s->n_gone; i++) {
                free(s->gone[i].name);
                free(s->gone[i].reason);
        }
        free(s->gone);
        backend_context_free(s->ctx);
        /* What the session held is its principal's again, before anyone hears it is gone. */
        session_refund_all(s);
        session_principal_unref(s->host, s->principal);

        if (s->prev)
                s->prev->next = s->next;
        else if (s->host->sessions == s)
                s->host->sessions = s->next;
        if (s->next)
                s->next->prev = s->prev;
        s->host->n_sessions--;
        if (s->host->on_session)
                s->host->on_session(s, SESSION_CLOSED, s->host->on_session_userdata);

        peer_creds_free(s->creds);
        free(s);
        return NULL;
}

const PeerCreds *session_creds(const Session *s) {
        assert_return(s, NULL);
        return s->creds;
}

const char *session_describe(const Session *s) {
        assert_return(s, NULL);
        return s->description;
}

void session_set_userdata(Session *s, void *userdata) {
        assert(s);
        s->userdata = userdata;
}

void *session_get_userdata(const Session *s) {
        assert_return(s, NULL);
        return s->userdata;
}

Session *session_next(const Session *s) {
        assert_return(s, NULL);
        return s->next;
}

size_t session_n_devices(const Session *s) {
        assert_return(s, 0);
        return s->n_devices + s->n_handed_over;
}

size_t session_n_address_spaces(const Session *s) {
        assert_return(s, 0);
        return s->n_ioas;
}

void session_principal(const Session *s, Principal *ret) {
        assert(s);
        assert(ret);

        (void)principal_from_creds(s->creds, ret);
}

void session_get_info(const Session *s, SessionInfo *ret) {
        assert(s);
        assert(ret);

        *ret = (SessionInfo){
                .creds = s->creds,
                .usage = s->usage,
                .principal_usage = s->principal->used,
                .quotas = s->quotas,
                .policy_generation = policy_generation(s->host->policy),
        };
        if (s->faults) {
                fault_stream_get_counters(s->faults, &ret->faults);
                ret->usage.fault_queue_depth = ret->faults.pending;
        }
}

/* ---- lookups --------------------------------------------------------------------------- */

SessionDevice *session_find_device(Session *s, uint32_t id) {
        for (size_t i = 0; i < s->n_devices; i++)
                if (s->devices[i].id == id)
                        return &s->devices[i];
        return NULL;
}

SessionDevice *session_find_device_by_name(Session *s, const char *name) {
        for (size_t i = 0; i < s->n_devices; i++)
                if (streq(s->devices[i].name, name))
                        return &s->devices[i];
        return NULL;
}

SessionIoas *session_find_ioas(Session *s, uint32_t id) {
        for (size_t i = 0; i < s->n_ioas; i++)
                if (s->ioas[i].id == id)
                        return &s->ioas[i];
        return NULL;
}

int session_device_missing(Session *s, uint32_t id, BrokerError *err) {
        /* Newest first: a device id can only be reused after a new attach. */
        for (size_t i = s->n_gone; i > 0; i--) {
                const SessionGone *g = &s->gone[i - 1];

                if (g->id != id)
                        continue;
                broker_error_set(err, -ENODEV, BROKER_ERROR_DEVICE_GONE,
                                 "Device %s (deviceId %" PRIu32
                                 ") was taken from this session: %s.",
                                 g->name, id, g->reason);
                broker_error_add_string(err, "device", g->name);
                broker_error_add_u64(err, "deviceId", id);
                broker_error_add_string(err, "reason", g->reason);
                return -ENODEV;
        }
        return broker_error_no_such_object(err, BROKER_KIND_DEVICE, id);
}

int session_device_id(const Session *s, const char *name, uint32_t *ret) {
        assert_return(s, -EINVAL);
        assert_return(name, -EINVAL);
        assert_return(ret, -EINVAL);

        for (size_t i = 0; i < s->n_devices; i++)
                if (streq(s->devices[i].name, name)) {
                        *ret = s->devices[i].id;
                        return 0;
                }
        return -ENOENT;
}

const char *session_device_name(const Session *s, uint32_t device_id) {
        assert_return(s, NULL);

        for (size_t i = 0; i < s->n_devices; i++)
                if (s->devices[i].id == device_id)
                        return s->devices[i].name;
        return NULL;
}

/* ---- reload ---------------------------------------------------------------------------- */

void session_remember_gone(Session *s, uint32_t id, const char *name, const char *reason) {
        SessionGone *g;

        /* Ids come back when the device is attached again, so a stale record goes. */
        for (size_t i = 0; i < s->n_gone; i++)
                if (s->gone[i].id == id) {
                        free(s->gone[i].name);
                        free(s->gone[i].reason);
                        s->gone[i] = s->gone[--s->n_gone];
                        break;
                }
        g = realloc(s->gone, (s->n_gone + 1) * sizeof(*g));
        if (!g)
                return; /* only the error message gets less precise */
        s->gone = g;
        g[s->n_gone] = (SessionGone){ .id = id, .name = strdup(name), .reason = strdup(reason) };
        if (!g[s->n_gone].name || !g[s->n_gone].reason) {
                free(g[s->n_gone].name);
                free(g[s->n_gone].reason);
                return;
        }
        s->n_gone++;
}

int session_revalidate(Session *s,
                       void (*on_drop)(Session *s, const char *device, const char *reason,
                                       void *userdata),
                       void *userdata) {
        ExplainScope scope;
        PolicyRuntime rt;
        Principal p;
        int dropped = 0;

        assert_return(s, -EINVAL);

        scope = EXPLAIN_SCOPE_HOST(s->host);
        scope.self = s;
        (void)explain_runtime(&scope, &rt);
        session_principal(s, &p);
        policy_quotas(s->host->policy, &p, &s->quotas);
        if (s->faults)
                fault_stream_set_limits(s->faults, s->quotas.fault_queue_depth,
                                        policy_limits(s->host->policy)->fault_response_timeout_ms);

        for (size_t i = 0; i < s->n_devices;) {
                _cleanup_(policy_decision_clear) PolicyDecision dec = {};
                SessionDevice *d = &s->devices[i];
                const TopoDevice *td = topology_find_device(s->host->topology, d->name);
                char reason[256] = "";

                if (!td)
                        snprintf(reason, sizeof(reason), "the device left the topology");
                else if (policy_decide(s->host->policy, s->host->topology, td, &p, &rt, &dec) < 0)
                        snprintf(reason, sizeof(reason), "the policy could not be evaluated");
                else if (!dec.allowed) {
                        for (size_t k = 0; k < dec.n_steps; k++)
                                if (dec.steps[k].step == dec.failed_step)
                                        snprintf(reason, sizeof(reason), "%s: %s",
                                                 policy_step_to_string(dec.failed_step),
                                                 dec.steps[k].reason ?: "denied");
                        if (!reason[0])
                                snprintf(reason, sizeof(reason), "%s",
                                         policy_step_to_string(dec.failed_step));
                }
                if (!reason[0]) {
                        i++;
                        continue;
                }

                if (on_drop)
                        on_drop(s, d->name, reason, userdata);
                session_drop_device(s, d, reason);
                dropped++;
        }
        return dropped + session_handoff_revalidate(s, on_drop, userdata);
}
