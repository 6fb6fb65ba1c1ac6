/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "assert-util.h"
#include "log.h"
#include "session-internal.h"

/* ---- PASIDs ---------------------------------------------------------------------------- */

size_t session_n_pasids(const Session *s) {
        assert_return(s, 0);
        return s->n_pasids;
}

FaultStream *session_fault_stream(const Session *s) {
        assert_return(s, NULL);
        return s->faults;
}

static SessionPasid *session_find_pasid(Session *s, uint32_t device_id, uint32_t pasid) {
        for (size_t i = 0; i < s->n_pasids; i++)
                if (s->pasids[i].device_id == device_id && s->pasids[i].pasid == pasid)
                        return &s->pasids[i];
        return NULL;
}

/* The session using pasid anywhere on the host, or NULL. */
Session *session_host_pasid_holder(SessionHost *h, uint32_t pasid) {
        for (Session *o = h->sessions; o; o = o->next)
                for (size_t i = 0; i < o->n_pasids; i++)
                        if (o->pasids[i].pasid == pasid)
                                return o;
        return NULL;
}

static int pasid_in_use(BrokerError *err, uint32_t pasid, const char *holder) {
        broker_error_set(err, -EBUSY, BROKER_ERROR_OBJECT_IN_USE,
                         "PASID %" PRIu32 " is in use by %s.", pasid, holder);
        broker_error_add_string(err, "kind", BROKER_KIND_PASID);
        broker_error_add_u64(err, "id", pasid);
        broker_error_add_string(err, "reason", err ? err->error.message : "");
        return -EBUSY;
}

int session_invalid_parameter(BrokerError *err, const char *parameter, const char *fmt, ...) {
        char msg[ERROR_MESSAGE_MAX];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        broker_error_set(err, -EINVAL, BROKER_ERROR_INVALID_PARAMETER, "%s", msg);
        broker_error_add_string(err, "parameter", parameter);
        return -EINVAL;
}

/* Creates the session's fault queue and hands it to the router, once. */
static int session_ensure_faults(Session *s, BrokerError *err) {
        Error be;
        uint32_t id;
        int fd, r;

        error_init(&be);
        if (s->faults)
                return 0;
        if (!s->host->faults || !backend_has_feature(s->host->backend, BACKEND_FEATURE_FAULT_QUEUE))
                return broker_error_not_supported(err, "fault-queue",
                                                  "The %s backend cannot deliver I/O page faults.",
                                                  s->host->backend->ops->name);
        r = OPS(s)->fault_queue_alloc(s->ctx, &id, &fd, &be);
        if (r == -EOPNOTSUPP || r == -ENOTTY)
                return broker_error_not_supported(err, "fault-queue", "%s", error_message(&be));
        if (r < 0)
                return broker_error_from_backend(err, "allocate a fault queue", &be);
        r = fault_stream_new(&s->faults, s->host->faults, s->ctx, id, fd,
                             s->quotas.fault_queue_depth,
                             policy_limits(s->host->policy)->fault_response_timeout_ms);
        if (r < 0) {
                (void)OPS(s)->destroy(s->ctx, id, NULL);
                return broker_error_system(err, r, "Allocating memory");
        }
        fault_stream_set_userdata(s->faults, s);
        return 0;
}

/* Checks the PASID (or picks one) against device width, policy range and the host's binds. */
static int session_choose_pasid(Session *s, const SessionDevice *d, const SessionBindPasidArgs *a,
                                uint32_t *ret, BrokerError *err) {
        uint32_t lo, hi, dev_max;
        Session *holder;
        Principal p;

        dev_max = d->pasid_bits >= 32 ? UINT32_MAX : (UINT32_C(1) << d->pasid_bits) - 1;
        session_principal(s, &p);
        policy_pasid_range(s->host->policy, &p, &lo, &hi);
        if (lo > hi) {
                broker_error_set(err, -EPERM, BROKER_ERROR_POLICY_DENIED,
                                 "The policy grants %s no PASIDs.", s->description);
                broker_error_add_string(err, "device", d->name);
                broker_error_add_string(err, "step", "pasid");
                broker_error_add_string(err, "reason", "no grant gives this principal PASIDs");
                return -EPERM;
        }

        if (a->has_pasid) {
                char reason[128];

                /* PASID 0 is the RID's own on most IOMMUs; it is never the client's to bind. */
                if (a->pasid == 0 || a->pasid > dev_max)
                        return session_invalid_parameter(err, "pasid",
                                                         "PASID %" PRIu32 " is outside 1-%" PRIu32
                                                         ", the range of device %s (%u bits).",
                                                         a->pasid, dev_max, d->name, d->pasid_bits);
                if (a->pasid < lo || a->pasid > hi) {
                        snprintf(reason, sizeof(reason),
                                 "PASID %" PRIu32 " is outside the range 0x%" PRIx32 "-0x%" PRIx32
                                 " the policy grants",
                                 a->pasid, lo, hi);
                        broker_error_set(err, -EPERM, BROKER_ERROR_POLICY_DENIED,
                                         "Device %s refused at step pasid: %s.", d->name, reason);
                        broker_error_add_string(err, "device", d->name);
                        broker_error_add_string(err, "step", "pasid");
                        broker_error_add_string(err, "reason", reason);
                        return -EPERM;
                }
                holder = session_host_pasid_holder(s->host, a->pasid);
                if (holder == s)
                        return pasid_in_use(err, a->pasid, "this session");
                if (holder)
                        return pasid_in_use(err, a->pasid, holder->description);
                *ret = a->pasid;
                return 0;
        }

        lo = MAX(lo, UINT32_C(1));
        hi = MIN(hi, dev_max);
        for (uint64_t v = lo; v <= hi; v++)
                if (!session_host_pasid_holder(s->host, (uint32_t)v)) {
                        *ret = (uint32_t)v;
                        return 0;
                }
        broker_error_set(err, -ENOSPC, BROKER_ERROR_QUOTA_EXCEEDED,
                         "Every PASID in 0x%" PRIx32 "-0x%" PRIx32 " is in use.", lo, hi);
        broker_error_add_string(err, "resource", BROKER_RESOURCE_PASIDS);
        broker_error_add_u64(err, "limit", hi >= lo ? (uint64_t)hi - lo + 1 : 0);
        broker_error_add_u64(err, "used", hi >= lo ? (uint64_t)hi - lo + 1 : 0);
        return -ENOSPC;
}

/* The stage-1 table must be one the device's IOMMU takes, of the size the backend names. */
static int session_check_stage1(Session *s, const SessionDevice *d, const SessionBindPasidArgs *a,
                                BrokerError *err) {
        HwInfo info = {};
        Error be;
        size_t want;

        error_init(&be);
        if (!backend_has_feature(s->host->backend, BACKEND_FEATURE_NESTING))
                return broker_error_not_supported(err, "nesting",
                                                  "The %s backend cannot nest a user stage-1 "
                                                  "table.",
                                                  s->host->backend->ops->name);
        want = backend_stage1_data_len(a->stage1_type);
        if (want == 0)
                return session_invalid_parameter(err, "stage1",
                                                 "Stage-1 type %" PRIu32 " is not known.",
                                                 a->stage1_type);
        if (a->stage1_len != want || !a->stage1_data)
                return session_invalid_parameter(err, "stage1",
                                                 "A stage-1 table of type %" PRIu32
                                                 " is %zu bytes, got %zu.",
                                                 a->stage1_type, want, a->stage1_len);
        if (OPS(s)->hw_info(s->ctx, d->id, &info, &be) < 0)
                return broker_error_from_backend(err, "read the IOMMU's hardware info", &be);
        if (backend_hw_info_stage1_type(info.type) != a->stage1_type)
                return session_invalid_parameter(err, "stage1",
                                                 "Device %s sits behind an IOMMU of type %"
                                                 PRIu32 ", which does not take stage-1 tables "
                                                 "of type %" PRIu32 ".",
                                                 d->name, info.type, a->stage1_type);
        return 0;
}

static int pasid_backend_error(BrokerError *err, const char *op, const Error *be, int r) {
        if (r == -EOPNOTSUPP)
                return broker_error_not_supported(err, "pasid", "%s", error_message(be));
        return broker_error_from_backend(err, op, be);
}

/*
 * The PASID's page table: over the IOAS, or a user stage 1 over a nesting parent made for it.
 * *ret_parent is 0 without one.
 */
static int session_alloc_pasid_tables(Session *s, const SessionDevice *d,
                                      const SessionBindPasidArgs *a, uint32_t *ret_parent,
                                      uint32_t *ret_hwpt, BrokerError *err) {
        bool nested = a->stage1_type != BACKEND_HWPT_DATA_NONE;
        Error be;
        uint32_t parent = 0, hwpt = 0;
        int r;

        error_init(&be);
        if (nested) {
                HwptAllocArgs pa = { .flags = BACKEND_HWPT_NEST_PARENT, .dev_id = d->id,
                                     .pt_id = a->ioas_id };

                r = OPS(s)->hwpt_alloc(s->ctx, &pa, &parent, &be);
                if (r < 0)
                        return r == -EOPNOTSUPP ?
                                broker_error_not_supported(err, "nesting", "%s",
                                                           error_message(&be)) :
                                broker_error_from_backend(err, "allocate a nesting parent", &be);
        }
        HwptAllocArgs ha = {
                .flags = BACKEND_HWPT_PASID | (a->faults ? BACKEND_HWPT_FAULT_ID_VALID : 0),
                .dev_id = d->id,
                .pt_id = nested ? parent : a->ioas_id,
                .data_type = a->stage1_type,
                .data = a->stage1_data,
                .data_len = (uint32_t)a->stage1_len,
                .fault_id = a->faults ? fault_stream_fault_id(s->faults) : 0,
        };
        r = OPS(s)->hwpt_alloc(s->ctx, &ha, &hwpt, &be);
        if (r < 0) {
                if (parent)
                        (void)OPS(s)->destroy(s->ctx, parent, NULL);
                if (r == -EOPNOTSUPP && a->faults)
                        return broker_error_not_supported(err, "fault-queue", "%s",
                                                          error_message(&be));
                return pasid_backend_error(err, "allocate a PASID page table", &be, r);
        }
        *ret_parent = parent;
        *ret_hwpt = hwpt;
        return 0;
}

static int bind_pasid(Session *s, const SessionBindPasidArgs *a, uint32_t *ret_pasid,
                      uint32_t *ret_hwpt_id, BrokerError *err) {
        SessionDevice *d;
        Error be;
        uint32_t pasid = 0, parent = 0, hwpt = 0, pt;
        SessionPasid *arr;
        bool nested;
        int r;

        error_init(&be);
        REFUSE_IF_DELEGATED(s, err);

        d = LOOKUP_DEVICE(s, a->device_id, err);
        nested = a->stage1_type != BACKEND_HWPT_DATA_NONE;
        (void)LOOKUP_IOAS(s, a->ioas_id, err);
        if (d->pasid_bits == 0 || !backend_has_feature(s->host->backend, BACKEND_FEATURE_PASID))
                return broker_error_not_supported(err, "pasid",
                                                  "Device %s has no PASID capability.", d->name);
        r = session_choose_pasid(s, d, a, &pasid, err);
        if (r < 0)
                return r;
        /* Checked here so that a refused bind says so before any other refusal; charged below. */
        if (s->principal->used.pasids >= s->quotas.pasids)
                return session_quota_exceeded(s, SESSION_RESOURCE_PASIDS, 1, err);
        if (nested) {
                r = session_check_stage1(s, d, a, err);
                if (r < 0)
                        return r;
        }
        if (a->faults) {
                r = session_ensure_faults(s, err);
                if (r < 0)
                        return r;
        }
        arr = realloc(s->pasids, (s->n_pasids + 1) * sizeof(*arr));
        if (!arr)
                return broker_error_system(err, -ENOMEM, "Allocating memory");
        s->pasids = arr;
        r = session_charge(s, SESSION_RESOURCE_PASIDS, 1, err);
        if (r < 0)
                return r;

        r = session_alloc_pasid_tables(s, d, a, &parent, &hwpt, err);
        if (r < 0) {
                session_refund(s, SESSION_RESOURCE_PASIDS, 1);
                return r;
        }
        pt = hwpt;
        r = OPS(s)->device_attach(s->ctx, d->id, pasid, &pt, &be);
        if (r < 0) {
                (void)OPS(s)->destroy(s->ctx, hwpt, NULL);
                if (parent)
                        (void)OPS(s)->destroy(s->ctx, parent, NULL);
                session_refund(s, SESSION_RESOURCE_PASIDS, 1);
                return pasid_backend_error(err, "attach the PASID", &be, r);
        }

        s->pasids[s->n_pasids++] = (SessionPasid){
                .device_id = d->id,
                .pasid = pasid,
                .ioas_id = a->ioas_id,
                .hwpt_id = hwpt,
                .parent_id = parent,
                .faults = a->faults,
                .stage1_type = a->stage1_type,
                .stage1_len = nested ? a->stage1_len : 0,
        };
        if (nested)
                memcpy(s->pasids[s->n_pasids - 1].stage1, a->stage1_data, a->stage1_len);
        *ret_pasid = pasid;
        *ret_hwpt_id = hwpt;
        return 0;
}

/* A PASID the policy refuses is on the record, like a refused device; a bind is no new grant. */
int session_bind_pasid(Session *s, const SessionBindPasidArgs *a, uint32_t *ret_pasid,
                       uint32_t *ret_hwpt_id, BrokerError *err) {
        BrokerError local;

        broker_error_init(&local);
        assert_return(s, -EINVAL);
        assert_return(a, -EINVAL);
        assert_return(ret_pasid && ret_hwpt_id, -EINVAL);

        err = err ?: &local;
        return session_audit_result(s, SESSION_AUDIT_BIND_PASID, NULL,
                                    bind_pasid(s, a, ret_pasid, ret_hwpt_id, err), err);
}

static void session_release_pasid(Session *s, SessionPasid *p) {
        Error be;

        error_init(&be);
        /* The kernel answers what is pending at the detach; the router must not answer again. */
        if (s->faults)
                fault_stream_forget(s->faults, p->device_id, p->pasid);
        if (OPS(s)->device_detach(s->ctx, p->device_id, p->pasid, &be) < 0)
                log_debug("Detaching PASID %" PRIu32 " of device %" PRIu32 " failed, ignoring: %s",
                          p->pasid, p->device_id, error_message(&be));
        if (OPS(s)->destroy(s->ctx, p->hwpt_id, &be) < 0)
                log_debug("Destroying HWPT %" PRIu32 " failed, ignoring: %s", p->hwpt_id,
                          error_message(&be));
        if (p->parent_id != 0 && OPS(s)->destroy(s->ctx, p->parent_id, &be) < 0)
                log_debug("Destroying HWPT %" PRIu32 " failed, ignoring: %s", p->parent_id,
                          error_message(&be));
        *p = s->pasids[--s->n_pasids];
        session_refund(s, SESSION_RESOURCE_PASIDS, 1);
}

int session_unbind_pasid(Session *s, uint32_t device_id, uint32_t pasid, BrokerError *err) {
        SessionPasid *p;
        char id[32];

        assert_return(s, -EINVAL);

        REFUSE_IF_DELEGATED(s, err);

        (void)LOOKUP_DEVICE(s, device_id, err);
        p = session_find_pasid(s, device_id, pasid);
        if (!p) {
                snprintf(id, sizeof(id), "%" PRIu32, pasid);
                broker_error_set(err, -ENOENT, BROKER_ERROR_NO_SUCH_OBJECT,
                                 "PASID %" PRIu32 " of device %" PRIu32 " is not bound in this "
                                 "session.",
                                 pasid, device_id);
                broker_error_add_string(err, "kind", BROKER_KIND_PASID);
                broker_error_add_string(err, "id", id);
                return -ENOENT;
        }
        session_release_pasid(s, p);
        return 0;
}

void session_drop_all_pasids(Session *s) {
        while (s->n_pasids > 0)
                session_release_pasid(s, &s->pasids[s->n_pasids - 1]);
}

void session_drop_device_pasids(Session *s, uint32_t device_id) {
        for (size_t i = 0; i < s->n_pasids;)
                if (s->pasids[i].device_id == device_id)
                        session_release_pasid(s, &s->pasids[i]);
                else
                        i++;
        if (s->faults)
                fault_stream_forget_device(s->faults, device_id);
}

/* ---- faults ---------------------------------------------------------------------------- */

int session_watch_faults(Session *s, uint32_t device_id, FaultDeliverFn fn, void *userdata,
                         FaultWatch **ret, BrokerError *err) {
        int r;

        assert_return(s, -EINVAL);
        assert_return(fn, -EINVAL);
        assert_return(ret, -EINVAL);

        REFUSE_IF_DELEGATED(s, err);

        if (device_id != FAULT_WATCH_ALL)
                (void)LOOKUP_DEVICE(s, device_id, err);
        r = session_ensure_faults(s, err);
        if (r < 0)
                return r;
        r = fault_stream_watch(s->faults, device_id, fn, userdata, ret);
        if (r == -EEXIST) {
                broker_error_set(err, -EBUSY, BROKER_ERROR_OBJECT_IN_USE,
                                 device_id == FAULT_WATCH_ALL ?
                                         "The faults of every device are watched already." :
                                         "The faults of this device are watched already.");
                broker_error_add_string(err, "kind", BROKER_KIND_DEVICE);
                broker_error_add_u64(err, "id", device_id == FAULT_WATCH_ALL ? 0 : device_id);
                broker_error_add_string(err, "reason", "another stream watches its faults");
                return -EBUSY;
        }
        if (r < 0)
                return broker_error_system(err, r, "Allocating memory");
        return 0;
}

int session_respond_fault(Session *s, uint64_t cookie, uint32_t code, BrokerError *err) {
        assert_return(s, -EINVAL);

        REFUSE_IF_DELEGATED(s, err);

        if (code != FAULT_RESPONSE_SUCCESS && code != FAULT_RESPONSE_INVALID)
                return session_invalid_parameter(err, "code", "Fault response code %" PRIu32
                                                 " is neither success (0) nor invalid (1).", code);
        if (!s->faults)
                return fault_router_unknown_cookie(s->host->faults, NULL, cookie, err);
        return fault_stream_respond(s->faults, cookie, code, err);
}
