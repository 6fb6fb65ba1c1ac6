/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/magic.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>

#include "explain.h"
#include "json-util.h"
#include "log.h"
#include "principal.h"
#include "session.h"

#ifndef F_GET_SEALS
#define F_GET_SEALS 1034
#endif

/* One mapping the client made: unmap refunds exactly what it removes. */
typedef struct SessionArea {
        uint64_t iova;
        uint64_t length;
        uint32_t flags; /* BACKEND_MAP_READABLE / WRITEABLE, inherited by copies */
} SessionArea;

typedef struct SessionIoas {
        uint32_t id;
        SessionArea *areas; /* sorted by iova, never overlapping */
        size_t n_areas, n_alloc;
        unsigned n_attached; /* devices whose RID is attached here */
        IovaRange *allowed;  /* what the client set with AllowIOVAs, NULL: none */
        size_t n_allowed;
} SessionIoas;

typedef struct SessionDevice {
        uint32_t id; /* the backend's device id, scoped to this session's context */
        char *name;
        uint32_t ioas_id; /* 0: not attached */
        uint32_t hwpt_id;
        uint8_t pasid_bits;
        uint64_t capabilities;
} SessionDevice;

/* A device the session lost to hotplug or a policy reload: later use names it. */
typedef struct SessionGone {
        uint32_t id;
        char *name;
        char *reason;
} SessionGone;

struct SessionClaim {
        char *device;
        Session *owner;
};

/* One BindPASID: what to detach and destroy on unbind. */
typedef struct SessionPasid {
        uint32_t device_id;
        uint32_t pasid;
        uint32_t ioas_id;
        uint32_t hwpt_id;
        uint32_t parent_id;  /* the NEST_PARENT under a nested stage 1; 0: none */
        bool faults;
        /* The user stage-1 table, kept so a restarted daemon can recreate it (sim). */
        uint32_t stage1_type;
        uint8_t stage1[SESSION_STAGE1_MAX];
        size_t stage1_len;
} SessionPasid;

struct Session {
        SessionHost *host;
        Session *next, *prev;
        PeerCreds *creds;
        char description[128];
        BackendContext *ctx;
        SessionDevice *devices;
        size_t n_devices;
        SessionIoas *ioas;
        size_t n_ioas;
        PolicyQuotas usage;
        PolicyQuotas quotas;
        void *userdata;
        SessionGone *gone;
        size_t n_gone;
        SessionPasid *pasids;
        size_t n_pasids;
        FaultStream *faults;  /* the session's fault queue, made on first use */
};

static void session_drop_device_pasids(Session *s, uint32_t device_id);
static Session *host_pasid_holder(SessionHost *h, uint32_t pasid);

#define OPS(s) ((s)->host->backend->ops)

/* ---- claims ---------------------------------------------------------------------------- */

static SessionClaim *host_find_claim(SessionHost *h, const char *device) {
        for (size_t i = 0; i < h->n_claims; i++)
                if (streq(h->claims[i].device, device))
                        return &h->claims[i];
        return NULL;
}

static int host_add_claim(SessionHost *h, const char *device, Session *owner) {
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

static void host_release_claim(SessionHost *h, const char *device, const Session *owner) {
        for (size_t i = 0; i < h->n_claims; i++) {
                if (h->claims[i].owner != owner || !streq(h->claims[i].device, device))
                        continue;
                free(h->claims[i].device);
                h->claims[i] = h->claims[--h->n_claims];
                return;
        }
}

static bool device_is_harmless(const TopoDevice *d) {
        return !d->driver || strneq(d->driver, "vfio", 4) || streq(d->driver, "pci-stub") ||
               topo_device_is_bridge(d);
}

bool session_group_viable(const TopoGroup *g) {
        for (size_t i = 0; i < g->n_devices; i++)
                if (!device_is_harmless(g->devices[i]))
                        return false;
        return true;
}

Session *session_host_device_holder(SessionHost *h, const TopoDevice *d, const Session *self) {
        SessionClaim *c;

        if (!d->group) {
                c = host_find_claim(h, d->name);
                return c && c->owner != self ? c->owner : NULL;
        }
        /* A group is one isolation unit: any claimed member makes the whole group busy. */
        for (size_t i = 0; i < d->group->n_devices; i++) {
                c = host_find_claim(h, d->group->devices[i]->name);
                if (c && c->owner != self)
                        return c->owner;
        }
        return NULL;
}

Session *session_host_claim_owner(SessionHost *h, const char *device) {
        SessionClaim *c = host_find_claim(h, device);

        return c ? c->owner : NULL;
}

size_t session_host_count_uid(const SessionHost *h, uid_t uid) {
        size_t n = 0;

        for (Session *s = h->sessions; s; s = s->next)
                if (s->creds->uid == uid)
                        n++;
        return n;
}

void session_host_done(SessionHost *h) {
        while (h->sessions)
                session_free(h->sessions);
        for (size_t i = 0; i < h->n_claims; i++)
                free(h->claims[i].device);
        free(h->claims);
        h->claims = NULL;
        h->n_claims = 0;
}

/* ---- lifetime -------------------------------------------------------------------------- */

int session_new(Session **ret, SessionHost *host, PeerCreds *creds, BrokerError *err) {
        _cleanup_free_ Session *s = NULL;
        Error be = ERROR_INIT;
        Principal p;
        size_t used;
        int r;

        s = calloc(1, sizeof(*s));
        if (!s)
                return broker_error_system(err, -ENOMEM, "Allocating memory");
        s->host = host;
        s->creds = creds;
        session_principal(s, &p);
        policy_quotas(host->policy, &p, &s->quotas);

        /* Checked here so that the socket and the bus count one limit the same way, and before
         * anything is opened for a client that is refused. */
        used = session_host_count_uid(host, creds->uid);
        if (used >= s->quotas.connections)
                return broker_error_quota(err, BROKER_RESOURCE_CONNECTIONS, s->quotas.connections,
                                          used, 1);

        r = host->backend->ops->context_new(host->backend, &s->ctx, &be);
        if (r < 0)
                return broker_error_from_backend(err, "open an iommufd context", &be);

        peer_creds_describe(creds, s->description, sizeof(s->description));

        s->next = host->sessions;
        if (host->sessions)
                host->sessions->prev = s;
        host->sessions = s;
        host->n_sessions++;
        if (host->on_session)
                host->on_session(s, SESSION_OPENED, host->on_session_userdata);
        *ret = TAKE_PTR(s);
        return 0;
}

static void session_device_release(Session *s, SessionDevice *d) {
        Error be = ERROR_INIT;
        int r;

        r = OPS(s)->device_unbind(s->ctx, d->id, &be);
        if (r < 0)
                log_debug("Unbinding device %s (id %" PRIu32 ") failed, ignoring: %s", d->name,
                          d->id, error_message(&be));
        host_release_claim(s->host, d->name, s);
        free(d->name);
        d->name = NULL;
}

Session *session_free(Session *s) {
        if (!s)
                return NULL;
        if (s->host->on_session)
                s->host->on_session(s, SESSION_CLOSING, s->host->on_session_userdata);

        /* Pending faults are answered INVALID before the devices go. */
        s->faults = fault_stream_free(s->faults);
        free(s->pasids);
        s->pasids = NULL;
        s->n_pasids = 0;

        /* Devices first, so they are free for others before this function returns. */
        for (size_t i = 0; i < s->n_devices; i++)
                session_device_release(s, &s->devices[i]);
        free(s->devices);
        for (size_t i = 0; i < s->n_ioas; i++) {
                free(s->ioas[i].areas);
                free(s->ioas[i].allowed);
        }
        free(s->ioas);
        for (size_t i = 0; i < s->n_gone; i++) {
                free(s->gone[i].name);
                free(s->gone[i].reason);
        }
        free(s->gone);
        /* Closing the context destroys every remaining kernel object of this session at once. */
        backend_context_free(s->ctx);

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
        return s->creds;
}

const char *session_describe(const Session *s) {
        return s->description;
}

void session_set_userdata(Session *s, void *userdata) {
        s->userdata = userdata;
}

void *session_get_userdata(const Session *s) {
        return s->userdata;
}

Session *session_next(const Session *s) {
        return s->next;
}

size_t session_n_devices(const Session *s) {
        return s->n_devices;
}

size_t session_n_address_spaces(const Session *s) {
        return s->n_ioas;
}

void session_principal(const Session *s, Principal *ret) {
        (void)principal_from_creds(s->creds, ret);
}

void session_get_info(const Session *s, SessionInfo *ret) {
        *ret = (SessionInfo){
                .creds = s->creds,
                .usage = s->usage,
                .quotas = s->quotas,
                .policy_generation = policy_generation(s->host->policy),
        };
        if (s->faults) {
                fault_stream_get_counters(s->faults, &ret->faults);
                ret->usage.fault_queue_depth = ret->faults.pending;
        }
}

size_t session_usage_rows(const SessionInfo *info, SessionUsage ret[static SESSION_USAGE_MAX]) {
        size_t n = 0;

#define ROW(name, field)                                                                           \
        ret[n++] = (SessionUsage){ name, info->usage.field, info->quotas.field }
        ROW(BROKER_RESOURCE_PINNED_BYTES, pinned_bytes);
        ROW(BROKER_RESOURCE_ADDRESS_SPACES, address_spaces);
        ROW(BROKER_RESOURCE_MAPPINGS, mappings);
        ROW(BROKER_RESOURCE_DEVICES, devices);
        ROW(BROKER_RESOURCE_PASIDS, pasids);
        ROW(BROKER_RESOURCE_FAULT_QUEUE_DEPTH, fault_queue_depth);
#undef ROW
        return n;
}

/* ---- lookups --------------------------------------------------------------------------- */

static SessionDevice *session_find_device(Session *s, uint32_t id) {
        for (size_t i = 0; i < s->n_devices; i++)
                if (s->devices[i].id == id)
                        return &s->devices[i];
        return NULL;
}

static SessionDevice *session_find_device_by_name(Session *s, const char *name) {
        for (size_t i = 0; i < s->n_devices; i++)
                if (streq(s->devices[i].name, name))
                        return &s->devices[i];
        return NULL;
}

static SessionIoas *session_find_ioas(Session *s, uint32_t id) {
        for (size_t i = 0; i < s->n_ioas; i++)
                if (s->ioas[i].id == id)
                        return &s->ioas[i];
        return NULL;
}

static int session_device_missing(Session *s, uint32_t id, BrokerError *err) {
        /* Newest first: a device id can only be reused after a new attach. */
        for (size_t i = s->n_gone; i > 0; i--) {
                const SessionGone *g = &s->gone[i - 1];

                if (g->id != id)
                        continue;
                broker_error_set(err, -ENODEV, BROKER_ERROR_DEVICE_GONE,
                                 "Device %s (deviceId %" PRIu32 ") was taken from this session: %s.",
                                 g->name, id, g->reason);
                broker_error_add_string(err, "device", g->name);
                broker_error_add_u64(err, "deviceId", id);
                broker_error_add_string(err, "reason", g->reason);
                return -ENODEV;
        }
        return broker_error_no_such_object(err, BROKER_KIND_DEVICE, id);
}

#define LOOKUP_DEVICE(s, id, err)                                                                  \
        ({                                                                                         \
                SessionDevice *_d = session_find_device((s), (id));                                \
                if (!_d)                                                                           \
                        return session_device_missing((s), (id), (err));                           \
                _d;                                                                                \
        })

#define LOOKUP_IOAS(s, id, err)                                                                    \
        ({                                                                                         \
                SessionIoas *_i = session_find_ioas((s), (id));                                    \
                if (!_i)                                                                           \
                        return broker_error_no_such_object((err), BROKER_KIND_ADDRESS_SPACE, (id)); \
                _i;                                                                                \
        })

/* ---- quotas ---------------------------------------------------------------------------- */

static int quota_check(BrokerError *err, const char *resource, uint64_t limit, uint64_t used,
                       uint64_t want) {
        uint64_t total;

        if (ADD_OVERFLOW(used, want, &total) || total > limit)
                return broker_error_quota(err, resource, limit, used, want);
        return 0;
}

/* ---- policy IOVA windows --------------------------------------------------------------- */

static bool windows_contain(const IovaWindow *w, size_t n, uint64_t first, uint64_t last) {
        if (n == 0)
                return true;
        for (size_t i = 0; i < n; i++)
                if (first >= w[i].start && last <= w[i].last)
                        return true;
        return false;
}

/*
 * Checks [first, last] against the windows the policy gives this principal for
 * every device attached to the IOAS, or for the principal alone when none is.
 */
static int session_check_windows(Session *s, const SessionIoas *ioas, uint64_t first,
                                 uint64_t last, BrokerError *err) {
        const IovaWindow *w;
        Principal p;
        size_t n;
        bool any = false;

        session_principal(s, &p);
        for (size_t i = 0; i < s->n_devices; i++) {
                const TopoDevice *td;

                if (s->devices[i].ioas_id != ioas->id)
                        continue;
                td = topology_find_device(s->host->topology, s->devices[i].name);
                if (!td)
                        continue;
                any = true;
                if (policy_iova_windows(s->host->policy, &p, td, &w, &n) < 0)
                        continue;
                if (!windows_contain(w, n, first, last))
                        return broker_error_invalid_range(err, first, last - first + 1,
                                "IOVA range 0x%" PRIx64 "-0x%" PRIx64
                                " is outside the IOVA windows the policy grants for device %s.",
                                first, last, td->name);
        }
        if (!any && policy_iova_windows(s->host->policy, &p, NULL, &w, &n) >= 0 &&
            !windows_contain(w, n, first, last))
                return broker_error_invalid_range(err, first, last - first + 1,
                        "IOVA range 0x%" PRIx64 "-0x%" PRIx64
                        " is outside the IOVA windows the policy grants.",
                        first, last);
        return 0;
}

/* ---- devices --------------------------------------------------------------------------- */

int session_explain_device(Session *s, const char *name, PolicyDecision *ret, BrokerError *err) {
        ExplainScope scope = EXPLAIN_SCOPE_HOST(s->host);
        Principal p;

        scope.self = s;
        scope.usage = &s->usage;
        session_principal(s, &p);
        return explain_device(&scope, name, &p, ret, err);
}

static int device_busy(BrokerError *err, const char *device, const char *holder) {
        broker_error_set(err, -EBUSY, BROKER_ERROR_DEVICE_BUSY,
                         "Device %s or a device of its IOMMU group is held by %s.", device,
                         holder);
        broker_error_add_string(err, "device", device);
        broker_error_add_string(err, "heldBy", holder);
        return -EBUSY;
}

static int policy_denied(BrokerError *err, const char *device, const char *step,
                         const char *reason) {
        broker_error_set(err, -EPERM, BROKER_ERROR_POLICY_DENIED, "Device %s refused at step %s: %s",
                         device, step, reason);
        broker_error_add_string(err, "device", device);
        broker_error_add_string(err, "step", step);
        broker_error_add_string(err, "reason", reason);
        return -EPERM;
}

/* Everything before the bind: quota, lookup, exclusivity, policy. */
static int session_admit_device(Session *s, const char *name, const TopoDevice **ret,
                                BrokerError *err) {
        _cleanup_(policy_decision_clear) PolicyDecision dec = {};
        const TopoDevice *d;
        SessionDevice *mine;
        Session *holder;
        int r;

        d = topology_find_device(s->host->topology, name);
        if (!d)
                return broker_error_no_such_device(err, name);

        holder = session_host_device_holder(s->host, d, s);
        while (holder && s->host->reap_if_gone &&
               s->host->reap_if_gone(holder, s->host->reap_userdata))
                holder = session_host_device_holder(s->host, d, s);

        mine = session_find_device_by_name(s, name);
        if (mine) {
                char self[64];

                snprintf(self, sizeof(self), "this session (deviceId %" PRIu32 ")", mine->id);
                return device_busy(err, name, self);
        }

        r = session_explain_device(s, name, &dec, err);
        if (r < 0)
                return r;
        if (!dec.allowed) {
                const char *reason = "denied";

                for (size_t i = 0; i < dec.n_steps; i++)
                        if (dec.steps[i].step == dec.failed_step && dec.steps[i].reason)
                                reason = dec.steps[i].reason;
                if (dec.failed_step == POLICY_STEP_EXCLUSIVE) {
                        holder = session_host_device_holder(s->host, d, s);
                        return device_busy(err, name, holder ? holder->description : reason);
                }
                if (dec.failed_step == POLICY_STEP_QUOTA)
                        return quota_check(err, BROKER_RESOURCE_DEVICES, s->quotas.devices,
                                           s->quotas.devices, 1);
                return policy_denied(err, name, policy_step_to_string(dec.failed_step), reason);
        }

        /* The claim table is authoritative even if the policy skipped the step. */
        holder = session_host_device_holder(s->host, d, s);
        if (holder)
                return device_busy(err, name, holder->description);

        /* After the policy, so that a principal without a grant hears why, not "quota 0". */
        r = quota_check(err, BROKER_RESOURCE_DEVICES, s->quotas.devices, s->usage.devices, 1);
        if (r < 0)
                return r;

        *ret = d;
        return 0;
}

static int session_bind_device(Session *s, const TopoDevice *d, int fd, SessionDeviceInfo *ret,
                               BrokerError *err) {
        _cleanup_free_ char *name = NULL;
        SessionDevice *devs;
        Error be = ERROR_INIT;
        HwInfo info = {};
        uint32_t dev_id;
        int r;

        /* Allocate everything first: after the bind nothing may fail. */
        name = strdup(d->name);
        if (!name)
                return broker_error_system(err, -ENOMEM, "Allocating memory");
        devs = realloc(s->devices, (s->n_devices + 1) * sizeof(*devs));
        if (!devs)
                return broker_error_system(err, -ENOMEM, "Allocating memory");
        s->devices = devs;
        r = host_add_claim(s->host, d->name, s);
        if (r < 0)
                return broker_error_system(err, r, "Allocating memory");

        r = OPS(s)->device_bind(s->ctx, fd, &dev_id, &be);
        if (r < 0) {
                host_release_claim(s->host, d->name, s);
                switch (r) {
                case -EPERM:
                        return policy_denied(err, d->name, "bind", error_message(&be));
                case -EBUSY:
                        return device_busy(err, d->name, error_message(&be));
                case -EBADF:
                case -EBADFD:
                case -ENOTTY:
                        return broker_error_invalid_fd(err, -EBADF, "%s", error_message(&be));
                default:
                        return broker_error_from_backend(err, "bind", &be);
                }
        }

        if (backend_has_feature(s->host->backend, BACKEND_FEATURE_HW_INFO) &&
            OPS(s)->hw_info(s->ctx, dev_id, &info, &be) < 0) {
                log_debug("hw_info for %s failed, reporting no PASID or capabilities: %s",
                          d->name, error_message(&be));
                info = (HwInfo){};
        }

        s->devices[s->n_devices++] = (SessionDevice){
                .id = dev_id,
                .name = TAKE_PTR(name),
                .pasid_bits = info.max_pasid_log2,
                .capabilities = info.capabilities,
        };
        s->usage.devices++;

        if (ret) {
                *ret = (SessionDeviceInfo){
                        .device_id = dev_id,
                        .group = d->group ? d->group->id : UINT32_MAX,
                        .pasid_bits = info.max_pasid_log2,
                        .capabilities = info.capabilities,
                };
                snprintf(ret->bdf, sizeof(ret->bdf), "%s", d->name);
        }
        return 0;
}

int session_attach_device_fd(Session *s, int fd, SessionDeviceInfo *ret, BrokerError *err) {
        _cleanup_free_ char *name = NULL;
        const TopoDevice *d;
        Error be = ERROR_INIT;
        int r;

        r = OPS(s)->device_fd_identify(s->host->backend, fd, &name, &be);
        if (r < 0)
                return broker_error_invalid_fd(err, r, "%s", error_message(&be));

        r = session_admit_device(s, name, &d, err);
        if (r < 0)
                return r;
        return session_bind_device(s, d, fd, ret, err);
}

int session_attach_device_name(Session *s, const char *name, SessionDeviceInfo *ret,
                               BrokerError *err) {
        _cleanup_close_ int fd = -EBADF;
        const TopoDevice *d;
        Error be = ERROR_INIT;
        Principal p;
        int r;

        r = session_admit_device(s, name, &d, err);
        if (r < 0)
                return r;

        session_principal(s, &p);
        if (!policy_allows_open_on_behalf(s->host->policy, &p, d))
                return policy_denied(err, name, "open-on-behalf",
                                     "the policy does not let iommud open this device for the "
                                     "caller; pass the device's VFIO cdev fd instead");

        r = OPS(s)->device_open(s->host->backend, name, &fd, &be);
        if (r < 0)
                return broker_error_from_backend(err, "open the device", &be);
        return session_bind_device(s, d, fd, ret, err);
}

static void session_remove_device(Session *s, SessionDevice *d) {
        SessionIoas *ioas = d->ioas_id ? session_find_ioas(s, d->ioas_id) : NULL;

        if (ioas && ioas->n_attached > 0)
                ioas->n_attached--;
        session_drop_device_pasids(s, d->id);
        session_device_release(s, d);
        *d = s->devices[--s->n_devices];
        s->usage.devices--;
}

int session_detach_device(Session *s, uint32_t device_id, BrokerError *err) {
        SessionDevice *d = LOOKUP_DEVICE(s, device_id, err);

        session_remove_device(s, d);
        return 0;
}

/* ---- address spaces -------------------------------------------------------------------- */

static int session_apply_allowed(Session *s, SessionIoas *ioas, BrokerError *err) {
        const IovaWindow *w = NULL;
        _cleanup_free_ IovaRange *r = NULL;
        Error be = ERROR_INIT;
        Principal p;
        size_t n = 0;
        int k;

        /* The client's list, or else the policy's windows, keeps automatic IOVAs inside them. */
        if (ioas->n_allowed > 0)
                k = OPS(s)->ioas_allow_iovas(s->ctx, ioas->id, ioas->allowed, ioas->n_allowed,
                                             &be);
        else {
                session_principal(s, &p);
                if (policy_iova_windows(s->host->policy, &p, NULL, &w, &n) < 0 || n == 0)
                        return 0;
                r = calloc(n, sizeof(*r));
                if (!r)
                        return broker_error_system(err, -ENOMEM, "Allocating memory");
                for (size_t i = 0; i < n; i++)
                        r[i] = (IovaRange){ .start = w[i].start, .last = w[i].last };
                k = OPS(s)->ioas_allow_iovas(s->ctx, ioas->id, r, n, &be);
        }
        if (k < 0)
                return broker_error_from_backend(err, "allow IOVAs", &be);
        return 0;
}

int session_create_address_space(Session *s, uint32_t *ret_ioas_id, BrokerError *err) {
        SessionIoas *arr;
        Error be = ERROR_INIT;
        uint32_t id;
        int r;

        r = quota_check(err, BROKER_RESOURCE_ADDRESS_SPACES, s->quotas.address_spaces,
                        s->usage.address_spaces, 1);
        if (r < 0)
                return r;
        arr = realloc(s->ioas, (s->n_ioas + 1) * sizeof(*arr));
        if (!arr)
                return broker_error_system(err, -ENOMEM, "Allocating memory");
        s->ioas = arr;

        r = OPS(s)->ioas_alloc(s->ctx, &id, &be);
        if (r < 0)
                return broker_error_from_backend(err, "allocate an address space", &be);

        s->ioas[s->n_ioas] = (SessionIoas){ .id = id };
        r = session_apply_allowed(s, &s->ioas[s->n_ioas], err);
        if (r < 0) {
                (void)OPS(s)->destroy(s->ctx, id, NULL);
                return r;
        }
        s->n_ioas++;
        s->usage.address_spaces++;
        *ret_ioas_id = id;
        return 0;
}

static uint64_t ioas_mapped_bytes(const SessionIoas *ioas) {
        uint64_t sum = 0;

        for (size_t i = 0; i < ioas->n_areas; i++)
                sum += ioas->areas[i].length;
        return sum;
}

static void session_remove_ioas(Session *s, SessionIoas *ioas) {
        s->usage.pinned_bytes -= ioas_mapped_bytes(ioas);
        s->usage.mappings -= ioas->n_areas;
        s->usage.address_spaces--;
        free(ioas->areas);
        free(ioas->allowed);
        *ioas = s->ioas[--s->n_ioas];
}

int session_destroy_address_space(Session *s, uint32_t ioas_id, BrokerError *err) {
        SessionIoas *ioas = LOOKUP_IOAS(s, ioas_id, err);
        Error be = ERROR_INIT;
        int r;

        for (size_t i = 0; i < s->n_pasids; i++)
                if (s->pasids[i].ioas_id == ioas_id) {
                        broker_error_set(err, -EBUSY, BROKER_ERROR_OBJECT_IN_USE,
                                         "Address space %" PRIu32 " is bound to PASID %" PRIu32
                                         " of device %" PRIu32 "; unbind it first.",
                                         ioas_id, s->pasids[i].pasid, s->pasids[i].device_id);
                        broker_error_add_string(err, "kind", BROKER_KIND_ADDRESS_SPACE);
                        broker_error_add_u64(err, "id", ioas_id);
                        broker_error_add_string(err, "reason", "a PASID is bound to it");
                        return -EBUSY;
                }
        if (ioas->n_attached > 0) {
                broker_error_set(err, -EBUSY, BROKER_ERROR_OBJECT_IN_USE,
                                 "Address space %" PRIu32 " has %u device(s) attached; detach "
                                 "them or attach them elsewhere first.",
                                 ioas_id, ioas->n_attached);
                broker_error_add_string(err, "kind", BROKER_KIND_ADDRESS_SPACE);
                broker_error_add_u64(err, "id", ioas_id);
                broker_error_add_string(err, "reason", "devices are attached");
                return -EBUSY;
        }
        r = OPS(s)->destroy(s->ctx, ioas_id, &be);
        if (r < 0)
                return broker_error_from_backend(err, "destroy the address space", &be);
        session_remove_ioas(s, ioas);
        return 0;
}

int session_attach_to_address_space(Session *s, uint32_t device_id, uint32_t ioas_id,
                                    uint32_t *ret_hwpt_id, BrokerError *err) {
        SessionDevice *d = LOOKUP_DEVICE(s, device_id, err);
        SessionIoas *ioas = LOOKUP_IOAS(s, ioas_id, err);
        const TopoDevice *td = topology_find_device(s->host->topology, d->name);
        Error be = ERROR_INIT;
        uint32_t pt = ioas_id;
        int r;

        /* Existing mappings must lie inside the windows this device may use. */
        if (td) {
                const IovaWindow *w;
                Principal p;
                size_t n;

                session_principal(s, &p);
                if (policy_iova_windows(s->host->policy, &p, td, &w, &n) >= 0)
                        for (size_t i = 0; i < ioas->n_areas; i++) {
                                uint64_t first = ioas->areas[i].iova;
                                uint64_t last = first + ioas->areas[i].length - 1;

                                if (!windows_contain(w, n, first, last))
                                        return broker_error_invalid_range(err, first, last - first + 1,
                                                "Address space %" PRIu32 " maps 0x%" PRIx64
                                                "-0x%" PRIx64 ", outside the IOVA windows the "
                                                "policy grants for device %s.",
                                                ioas_id, first, last, d->name);
                        }
        }

        r = OPS(s)->device_attach(s->ctx, d->id, BACKEND_NO_PASID, &pt, &be);
        if (r < 0) {
                if (r == -EADDRINUSE) {
                        broker_error_set(err, r, BROKER_ERROR_IOVA_IN_USE,
                                         "A reserved region of device %s collides with a mapping "
                                         "in address space %" PRIu32 ": %s",
                                         d->name, ioas_id, error_message(&be));
                        return r;
                }
                return broker_error_from_backend(err, "attach", &be);
        }

        if (d->ioas_id != ioas_id) {
                SessionIoas *old = d->ioas_id ? session_find_ioas(s, d->ioas_id) : NULL;
                uint32_t old_id = d->ioas_id;

                if (old && old->n_attached > 0)
                        old->n_attached--;
                ioas->n_attached++;
                /*
                 * The devices of an IOMMU group share one page table, so a replace moves the
                 * whole group: this session's other devices of the group follow, or the
                 * address space they left would still count them and the one they are in
                 * now would not.
                 */
                for (size_t i = 0; old_id && td && td->group && i < s->n_devices; i++) {
                        SessionDevice *sib = &s->devices[i];
                        const TopoDevice *st;

                        if (sib == d || sib->ioas_id != old_id)
                                continue;
                        st = topology_find_device(s->host->topology, sib->name);
                        if (!st || st->group != td->group)
                                continue;
                        if (old && old->n_attached > 0)
                                old->n_attached--;
                        ioas->n_attached++;
                        sib->ioas_id = ioas_id;
                        sib->hwpt_id = pt;
                }
        }
        d->ioas_id = ioas_id;
        d->hwpt_id = pt;
        *ret_hwpt_id = pt;
        return 0;
}

static int range_intersect(uint64_t a0, uint64_t a1, uint64_t b0, uint64_t b1, IovaRange *ret) {
        uint64_t s0 = MAX(a0, b0), s1 = MIN(a1, b1);

        if (s0 > s1)
                return 0;
        *ret = (IovaRange){ .start = s0, .last = s1 };
        return 1;
}

int session_get_iova_ranges(Session *s, uint32_t ioas_id, IovaRange **ret, size_t *ret_n,
                            uint64_t *ret_alignment, BrokerError *err) {
        _cleanup_free_ IovaRange *ranges = NULL, *out = NULL;
        const IovaWindow *w = NULL;
        Error be = ERROR_INIT;
        size_t n = 8, n_w = 0, n_out = 0;
        uint64_t alignment;
        Principal p;
        int r;

        LOOKUP_IOAS(s, ioas_id, err);
        for (;;) {
                size_t cap = n;

                free(ranges);
                ranges = calloc(cap, sizeof(*ranges));
                if (!ranges)
                        return broker_error_system(err, -ENOMEM, "Allocating memory");
                r = OPS(s)->ioas_iova_ranges(s->ctx, ioas_id, ranges, &n, &alignment, &be);
                if (r == -EMSGSIZE && n > cap)
                        continue;
                if (r < 0)
                        return broker_error_from_backend(err, "get IOVA ranges", &be);
                break;
        }

        session_principal(s, &p);
        if (policy_iova_windows(s->host->policy, &p, NULL, &w, &n_w) < 0)
                n_w = 0;
        if (n_w == 0) {
                *ret = TAKE_PTR(ranges);
                *ret_n = n;
                *ret_alignment = alignment;
                return 0;
        }

        out = calloc(n * n_w + 1, sizeof(*out));
        if (!out)
                return broker_error_system(err, -ENOMEM, "Allocating memory");
        for (size_t i = 0; i < n; i++)
                for (size_t j = 0; j < n_w; j++)
                        n_out += range_intersect(ranges[i].start, ranges[i].last, w[j].start,
                                                 w[j].last, &out[n_out]);
        *ret = TAKE_PTR(out);
        *ret_n = n_out;
        *ret_alignment = alignment;
        return 0;
}

int session_allow_iovas(Session *s, uint32_t ioas_id, const IovaRange *ranges, size_t n,
                        BrokerError *err) {
        SessionIoas *ioas = LOOKUP_IOAS(s, ioas_id, err);
        _cleanup_free_ IovaRange *copy = NULL;
        IovaRange *old;
        size_t n_old;
        int r;

        for (size_t i = 0; i < n; i++) {
                if (ranges[i].start > ranges[i].last)
                        return broker_error_invalid_range(err, ranges[i].start, 0, "Range %zu starts at 0x%" PRIx64 " after its end 0x%" PRIx64 ".",
                                i, ranges[i].start, ranges[i].last);
                r = session_check_windows(s, ioas, ranges[i].start, ranges[i].last, err);
                if (r < 0)
                        return r;
        }
        if (n > 0) {
                copy = calloc(n, sizeof(*copy));
                if (!copy)
                        return broker_error_system(err, -ENOMEM, "Allocating memory");
                memcpy(copy, ranges, n * sizeof(*copy));
        }

        old = ioas->allowed;
        n_old = ioas->n_allowed;
        ioas->allowed = copy;
        ioas->n_allowed = n;
        r = session_apply_allowed(s, ioas, err);
        if (r < 0) {
                /* Keep what was in force; the backend's list is unchanged on failure. */
                ioas->allowed = old;
                ioas->n_allowed = n_old;
                return r;
        }
        TAKE_PTR(copy);
        free(old);
        return 0;
}

/* ---- mappings -------------------------------------------------------------------------- */

static int check_memory_fd(int fd, uint64_t offset, uint64_t length, bool writeable,
                           BrokerError *err) {
        struct statfs sfs;
        struct stat st;
        uint64_t end;
        int flags;

        if (fd < 0)
                return broker_error_invalid_fd(err, -EBADF, "No memory fd was passed.");
        flags = fcntl(fd, F_GETFL);
        if (flags < 0)
                return broker_error_invalid_fd(err, -EBADF, "The memory fd is not open: %s",
                                               strerror(errno));
        if (flags & O_PATH)
                return broker_error_invalid_fd(err, -EBADF,
                                               "The memory fd is an O_PATH fd, which holds no "
                                               "memory.");
        if (fstat(fd, &st) < 0)
                return broker_error_invalid_fd(err, -EBADF, "fstat on the memory fd failed: %s",
                                               strerror(errno));
        if (!S_ISREG(st.st_mode))
                return broker_error_invalid_fd(err, -EBADF,
                                               "The memory fd is a %s, not a memfd, shmem or "
                                               "hugetlbfs file.",
                                               S_ISDIR(st.st_mode)    ? "directory"
                                               : S_ISCHR(st.st_mode)  ? "character device"
                                               : S_ISBLK(st.st_mode)  ? "block device"
                                               : S_ISFIFO(st.st_mode) ? "pipe"
                                               : S_ISSOCK(st.st_mode) ? "socket"
                                                                      : "special file");
        if (fstatfs(fd, &sfs) < 0)
                return broker_error_invalid_fd(err, -EBADF, "fstatfs on the memory fd failed: %s",
                                               strerror(errno));
        if ((unsigned long)sfs.f_type != TMPFS_MAGIC &&
            (unsigned long)sfs.f_type != HUGETLBFS_MAGIC && fcntl(fd, F_GET_SEALS) < 0)
                return broker_error_invalid_fd(err, -EBADF,
                                               "The memory fd is a regular file on a file system "
                                               "with magic 0x%lx; only memfd, shmem (tmpfs) and "
                                               "hugetlbfs files can be pinned for DMA.",
                                               (unsigned long)sfs.f_type);
        if ((flags & O_ACCMODE) == O_WRONLY)
                return broker_error_invalid_fd(err, -EBADF,
                                               "The memory fd is open write-only; it must be "
                                               "readable.");
        if (writeable && (flags & O_ACCMODE) == O_RDONLY)
                return broker_error_invalid_fd(err, -EBADF,
                                               "A writeable mapping needs a memory fd opened "
                                               "read-write, this one is read-only.");
        if (ADD_OVERFLOW(offset, length, &end) || end > (uint64_t)st.st_size)
                return broker_error_invalid_range(err, offset, length,
                        "Offset 0x%" PRIx64 " + length 0x%" PRIx64
                        " goes past the end of the memory fd (%" PRIu64 " bytes).",
                        offset, length, (uint64_t)st.st_size);
        return 0;
}

/* Reserves room for one more area, so that recording it after a map cannot fail. */
static int ioas_reserve_area(SessionIoas *ioas) {
        SessionArea *a;
        size_t m;

        if (ioas->n_areas < ioas->n_alloc)
                return 0;
        m = ioas->n_alloc ? ioas->n_alloc * 2 : 4;
        a = realloc(ioas->areas, m * sizeof(*a));
        if (!a)
                return -ENOMEM;
        ioas->areas = a;
        ioas->n_alloc = m;
        return 0;
}

static void ioas_insert_area(SessionIoas *ioas, uint64_t iova, uint64_t length, uint32_t flags) {
        size_t lo = 0, hi = ioas->n_areas;

        while (lo < hi) {
                size_t mid = (lo + hi) / 2;

                if (ioas->areas[mid].iova < iova)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        memmove(&ioas->areas[lo + 1], &ioas->areas[lo], (ioas->n_areas - lo) * sizeof(SessionArea));
        ioas->areas[lo] = (SessionArea){ .iova = iova, .length = length, .flags = flags };
        ioas->n_areas++;
}

/* Index of the first area whose last byte is at or after iova. */
static size_t ioas_first_area_from(const SessionIoas *ioas, uint64_t iova) {
        size_t lo = 0, hi = ioas->n_areas;

        while (lo < hi) {
                size_t mid = (lo + hi) / 2;
                const SessionArea *a = &ioas->areas[mid];

                if (a->iova + (a->length - 1) < iova)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return lo;
}

static int map_error(BrokerError *err, const Error *be, uint64_t iova, bool fixed,
                     uint64_t length) {
        switch (be->error) {
        case -EEXIST:
        case -EADDRINUSE:
                broker_error_set(err, be->error, BROKER_ERROR_IOVA_IN_USE,
                                 "IOVA range 0x%" PRIx64 "-0x%" PRIx64
                                 " overlaps an existing mapping or reserved region: %s",
                                 iova, iova + (length - 1), error_message(be));
                broker_error_add_u64(err, "start", iova);
                broker_error_add_u64(err, "length", length);
                return be->error;
        case -ENOSPC:
                return broker_error_invalid_range(err, iova, length,
                                                  "No free IOVA window of %" PRIu64
                                                  " bytes in the address space.",
                                                  length);
        case -EBADF:
        case -EFAULT:
                return broker_error_invalid_fd(err, -EBADF, "The memory fd cannot be mapped: %s",
                                               error_message(be));
        default:
                return broker_error_from_backend(err, fixed ? "map at a fixed IOVA" : "map", be);
        }
}

/*
 * Map and copy both create one mapping the client holds: charge both the same way so the
 * refund on unmap never depends on how the mapping was made.
 */
static int session_check_mapping_quota(Session *s, uint64_t length, BrokerError *err) {
        int r;

        r = quota_check(err, BROKER_RESOURCE_MAPPINGS, s->quotas.mappings, s->usage.mappings, 1);
        if (r < 0)
                return r;
        return quota_check(err, BROKER_RESOURCE_PINNED_BYTES, s->quotas.pinned_bytes,
                           s->usage.pinned_bytes, length);
}

/*
 * Records a mapping the backend just made at iova, and charges it.  The allowed list keeps
 * automatic IOVAs inside the principal's windows, but device windows may be narrower: an
 * automatic IOVA outside them is given back, so a refused map leaves nothing behind.  The
 * caller has reserved room for the area, so recording it cannot fail.
 */
static int session_commit_mapping(Session *s, SessionIoas *ioas, uint32_t ioas_id, uint64_t iova,
                                  uint64_t length, uint32_t flags, bool fixed_iova,
                                  BrokerError *err) {
        if (!fixed_iova && session_check_windows(s, ioas, iova, iova + (length - 1), NULL) < 0) {
                (void)OPS(s)->ioas_unmap(s->ctx, ioas_id, iova, length, NULL, NULL);
                return broker_error_invalid_range(err, iova, length,
                                                  "No free IOVA window of %" PRIu64
                                                  " bytes inside the IOVA windows the policy "
                                                  "grants.",
                                                  length);
        }

        ioas_insert_area(ioas, iova, length, flags);
        s->usage.mappings++;
        s->usage.pinned_bytes += length;
        return 0;
}

int session_map(Session *s, const SessionMapArgs *a, uint64_t *ret_iova, BrokerError *err) {
        SessionIoas *ioas = LOOKUP_IOAS(s, a->ioas_id, err);
        Error be = ERROR_INIT;
        uint32_t flags = 0;
        uint64_t iova = a->iova, last = 0;
        int r;

        if (a->length == 0)
                return broker_error_invalid_range(err, a->iova, 0, "A mapping of length 0 maps nothing.");
        if (!a->readable && !a->writeable) {
                broker_error_set(err, -EINVAL, BROKER_ERROR_INVALID_PARAMETER,
                                 "A mapping must be readable, writeable or both.");
                broker_error_add_string(err, "parameter", "readable");
                return -EINVAL;
        }
        if (a->fixed_iova && ADD_OVERFLOW(a->iova, a->length - 1, &last))
                return broker_error_invalid_range(err, a->iova, a->length,
                                                  "IOVA 0x%" PRIx64 " + length 0x%" PRIx64
                                                  " overflows 64 bits.",
                                                  a->iova, a->length);
        r = check_memory_fd(a->fd, a->offset, a->length, a->writeable, err);
        if (r < 0)
                return r;
        {
                _cleanup_free_ char *dev = NULL;

                /* A simulated device node is a regular file: it must not pass for memory. */
                if (OPS(s)->device_fd_identify(s->host->backend, a->fd, &dev, NULL) >= 0)
                        return broker_error_invalid_fd(err, -EBADF,
                                                       "The memory fd is the VFIO device %s, "
                                                       "not memory.",
                                                       dev);
        }
        if (a->fixed_iova) {
                r = session_check_windows(s, ioas, a->iova, last, err);
                if (r < 0)
                        return r;
        }

        r = session_check_mapping_quota(s, a->length, err);
        if (r < 0)
                return r;
        if (ioas_reserve_area(ioas) < 0)
                return broker_error_system(err, -ENOMEM, "Allocating memory");

        if (a->readable)
                flags |= BACKEND_MAP_READABLE;
        if (a->writeable)
                flags |= BACKEND_MAP_WRITEABLE;
        r = OPS(s)->ioas_map_file(s->ctx, a->ioas_id,
                                  flags | (a->fixed_iova ? BACKEND_MAP_FIXED_IOVA : 0), a->fd,
                                  a->offset, a->length, &iova, &be);
        if (r < 0)
                return map_error(err, &be, a->iova, a->fixed_iova, a->length);

        r = session_commit_mapping(s, ioas, a->ioas_id, iova, a->length, flags, a->fixed_iova, err);
        if (r < 0)
                return r;
        *ret_iova = iova;
        return 0;
}

int session_unmap(Session *s, uint32_t ioas_id, uint64_t iova, uint64_t length,
                  uint64_t *ret_unmapped, BrokerError *err) {
        SessionIoas *ioas = LOOKUP_IOAS(s, ioas_id, err);
        Error be = ERROR_INIT;
        uint64_t last, refund = 0, unmapped = 0;
        size_t first, end;
        int r;

        if (iova == 0 && length == UINT64_MAX)
                last = UINT64_MAX;
        else if (length == 0)
                return broker_error_invalid_range(err, iova, 0, "An unmap of length 0 unmaps nothing.");
        else if (ADD_OVERFLOW(iova, length - 1, &last))
                return broker_error_invalid_range(err, iova, length,
                                                  "IOVA 0x%" PRIx64 " + length 0x%" PRIx64
                                                  " overflows 64 bits.",
                                                  iova, length);

        /*
         * Mappings are never split, and the kernel's unmap is not atomic when the range cuts
         * one: decide from our own record before touching anything, so a refused unmap
         * leaves every mapping (and the quota) as it was.
         */
        first = ioas_first_area_from(ioas, iova);
        for (end = first; end < ioas->n_areas && ioas->areas[end].iova <= last; end++) {
                const SessionArea *a = &ioas->areas[end];
                uint64_t a_last = a->iova + (a->length - 1);

                if (a->iova < iova || a_last > last)
                        return broker_error_invalid_range(err, iova, length,
                                "Range 0x%" PRIx64 "-0x%" PRIx64 " cuts the mapping at 0x%" PRIx64
                                "-0x%" PRIx64 "; mappings are only removed whole.",
                                iova, last, a->iova, a_last);
                refund += a->length;
        }
        if (first == end && !(iova == 0 && length == UINT64_MAX))
                return broker_error_invalid_range(err, iova, length,
                                                  "Nothing is mapped in 0x%" PRIx64 "-0x%" PRIx64
                                                  " of address space %" PRIu32 ".",
                                                  iova, last, ioas_id);
        if (first == end) {
                *ret_unmapped = 0;
                return 0;
        }

        r = OPS(s)->ioas_unmap(s->ctx, ioas_id, iova, length, &unmapped, &be);
        if (r < 0)
                return broker_error_from_backend(err, "unmap", &be);

        memmove(&ioas->areas[first], &ioas->areas[end],
                (ioas->n_areas - end) * sizeof(SessionArea));
        s->usage.mappings -= end - first;
        ioas->n_areas -= end - first;
        s->usage.pinned_bytes -= refund;
        *ret_unmapped = unmapped;
        return 0;
}

int session_copy(Session *s, const SessionCopyArgs *a, uint64_t *ret_iova, BrokerError *err) {
        SessionIoas *src = LOOKUP_IOAS(s, a->src_ioas_id, err);
        SessionIoas *dst = LOOKUP_IOAS(s, a->dst_ioas_id, err);
        const SessionArea *area = NULL;
        Error be = ERROR_INIT;
        uint64_t src_last, dst_last = 0, iova = a->dst_iova;
        uint32_t flags;
        size_t i;
        int r;

        if (a->length == 0)
                return broker_error_invalid_range(err, a->src_iova, 0, "A copy of length 0 copies nothing.");
        if (ADD_OVERFLOW(a->src_iova, a->length - 1, &src_last) ||
            (a->fixed_iova && ADD_OVERFLOW(a->dst_iova, a->length - 1, &dst_last)))
                return broker_error_invalid_range(err, a->src_iova, a->length, "IOVA + length 0x%" PRIx64
                                                       " overflows 64 bits.",
                                                  a->length);
        i = ioas_first_area_from(src, a->src_iova);
        if (i < src->n_areas && src->areas[i].iova <= a->src_iova &&
            src->areas[i].iova + (src->areas[i].length - 1) >= src_last)
                area = &src->areas[i];
        if (!area)
                return broker_error_invalid_range(err, a->src_iova, a->length,
                                                  "Source range 0x%" PRIx64 "-0x%" PRIx64
                                                  " is not inside one mapping of address space "
                                                  "%" PRIu32 ".",
                                                  a->src_iova, src_last, a->src_ioas_id);
        if (a->fixed_iova) {
                r = session_check_windows(s, dst, a->dst_iova, dst_last, err);
                if (r < 0)
                        return r;
        }

        /* A copy pins nothing new in the kernel, but it is a mapping the client holds. */
        r = session_check_mapping_quota(s, a->length, err);
        if (r < 0)
                return r;
        /* The copy inherits the source mapping's permissions; read them before the
         * reservation below may move the area array (src and dst can be the same). */
        flags = area->flags;
        area = NULL;
        if (ioas_reserve_area(dst) < 0)
                return broker_error_system(err, -ENOMEM, "Allocating memory");

        r = OPS(s)->ioas_copy(s->ctx, a->dst_ioas_id, a->src_ioas_id,
                              flags | (a->fixed_iova ? BACKEND_MAP_FIXED_IOVA : 0), a->src_iova,
                              a->length, &iova, &be);
        if (r < 0)
                return map_error(err, &be, a->dst_iova, a->fixed_iova, a->length);

        r = session_commit_mapping(s, dst, a->dst_ioas_id, iova, a->length, flags, a->fixed_iova,
                                   err);
        if (r < 0)
                return r;
        *ret_iova = iova;
        return 0;
}

/* ---- delegation ------------------------------------------------------------------------ */

int session_delegate(Session *s, int *ret_fd, BrokerError *err) {
        Principal p;
        int fd, dup_fd;

        session_principal(s, &p);
        if (!policy_allows_delegation(s->host->policy, &p)) {
                broker_error_set(err, -EPERM, BROKER_ERROR_POLICY_DENIED,
                                 "The policy does not allow %s to receive an iommufd.",
                                 s->description);
                broker_error_add_string(err, "device", "");
                broker_error_add_string(err, "step", "delegation");
                broker_error_add_string(err, "reason", "delegation is not granted to this principal");
                return -EPERM;
        }
        fd = OPS(s)->context_fd(s->ctx);
        if (fd == -EOPNOTSUPP)
                return broker_error_not_supported(err, "delegation",
                                                  "The %s backend has no iommufd to delegate.",
                                                  s->host->backend->ops->name);
        if (fd < 0)
                return broker_error_set(err, fd, BROKER_ERROR_BACKEND_ERROR,
                                        "The session has no iommufd: %s", strerror(-fd));
        dup_fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        if (dup_fd < 0)
                return broker_error_set(err, -errno, BROKER_ERROR_BACKEND_ERROR,
                                        "Duplicating the iommufd failed: %s", strerror(errno));
        *ret_fd = dup_fd;
        return 0;
}

/* ---- reload ---------------------------------------------------------------------------- */

static void session_remember_gone(Session *s, uint32_t id, const char *name, const char *reason) {
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
        ExplainScope scope = EXPLAIN_SCOPE_HOST(s->host);
        PolicyRuntime rt;
        Principal p;
        int dropped = 0;

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
                uint32_t ioas_id = d->ioas_id;

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
                session_remember_gone(s, d->id, d->name, reason);
                /* The device is not coming back: the router answers what it left pending. */
                if (s->faults)
                        fault_stream_answer_device(s->faults, d->id);
                session_remove_device(s, d);
                dropped++;

                /* An address space only that device used goes with it. */
                SessionIoas *ioas = ioas_id ? session_find_ioas(s, ioas_id) : NULL;
                if (ioas && ioas->n_attached == 0) {
                        (void)OPS(s)->destroy(s->ctx, ioas_id, NULL);
                        session_remove_ioas(s, ioas);
                }
        }
        return dropped;
}

/* ---- restart survival ------------------------------------------------------------------ */

static json_object *u64_json(uint64_t v) {
        return v > INT64_MAX ? json_object_new_uint64(v) : json_object_new_int64((int64_t)v);
}

int session_to_json(const Session *s, json_object **ret) {
        json_object *o = json_object_new_object(), *devs = json_object_new_array(),
                    *ioas = json_object_new_array();

        if (!o || !devs || !ioas) {
                json_object_put(o);
                json_object_put(devs);
                json_object_put(ioas);
                return -ENOMEM;
        }
        (void)json_util_add(o, "devices", devs);
        (void)json_util_add(o, "addressSpaces", ioas);
        if (s->faults)
                (void)json_util_add(o, "faultQueue", u64_json(fault_stream_fault_id(s->faults)));
        if (s->n_pasids > 0) {
                json_object *pasids = json_object_new_array();

                if (!pasids || json_util_add(o, "pasids", pasids) < 0) {
                        json_object_put(o);
                        return -ENOMEM;
                }
                for (size_t i = 0; i < s->n_pasids; i++) {
                        const SessionPasid *p = &s->pasids[i];
                        json_object *j = json_object_new_object();
                        char hex[2 * SESSION_STAGE1_MAX + 1];

                        if (!j || json_object_array_add(pasids, j) < 0) {
                                json_object_put(j);
                                json_object_put(o);
                                return -ENOMEM;
                        }
                        (void)json_util_add(j, "deviceId", u64_json(p->device_id));
                        (void)json_util_add(j, "pasid", u64_json(p->pasid));
                        (void)json_util_add(j, "ioasId", u64_json(p->ioas_id));
                        (void)json_util_add(j, "hwptId", u64_json(p->hwpt_id));
                        if (p->parent_id != 0)
                                (void)json_util_add(j, "parentId", u64_json(p->parent_id));
                        (void)json_util_add(j, "faults", json_object_new_boolean(p->faults));
                        if (p->stage1_len > 0) {
                                for (size_t k = 0; k < p->stage1_len; k++)
                                        snprintf(hex + 2 * k, 3, "%02x", p->stage1[k]);
                                (void)json_util_add(j, "stage1Type", u64_json(p->stage1_type));
                                (void)json_util_add(j, "stage1", json_object_new_string(hex));
                        }
                }
        }
        for (size_t i = 0; i < s->n_devices; i++) {
                const SessionDevice *d = &s->devices[i];
                json_object *j = json_object_new_object();

                if (!j || json_object_array_add(devs, j) < 0) {
                        json_object_put(j);
                        json_object_put(o);
                        return -ENOMEM;
                }
                (void)json_util_add(j, "id", u64_json(d->id));
                (void)json_util_add(j, "name", json_object_new_string(d->name));
                (void)json_util_add(j, "ioasId", u64_json(d->ioas_id));
                (void)json_util_add(j, "hwptId", u64_json(d->hwpt_id));
        }
        for (size_t i = 0; i < s->n_ioas; i++) {
                const SessionIoas *a = &s->ioas[i];
                json_object *j = json_object_new_object(), *areas = json_object_new_array(),
                            *allowed = json_object_new_array();

                if (!j || !areas || !allowed || json_object_array_add(ioas, j) < 0) {
                        json_object_put(j);
                        json_object_put(areas);
                        json_object_put(allowed);
                        json_object_put(o);
                        return -ENOMEM;
                }
                (void)json_util_add(j, "id", u64_json(a->id));
                (void)json_util_add(j, "areas", areas);
                (void)json_util_add(j, "allowed", allowed);
                for (size_t k = 0; k < a->n_areas; k++) {
                        json_object *e = json_object_new_array();

                        if (!e || json_object_array_add(areas, e) < 0) {
                                json_object_put(e);
                                json_object_put(o);
                                return -ENOMEM;
                        }
                        json_object_array_add(e, u64_json(a->areas[k].iova));
                        json_object_array_add(e, u64_json(a->areas[k].length));
                        json_object_array_add(e, u64_json(a->areas[k].flags));
                }
                for (size_t k = 0; k < a->n_allowed; k++) {
                        json_object *e = json_object_new_array();

                        if (!e || json_object_array_add(allowed, e) < 0) {
                                json_object_put(e);
                                json_object_put(o);
                                return -ENOMEM;
                        }
                        json_object_array_add(e, u64_json(a->allowed[k].start));
                        json_object_array_add(e, u64_json(a->allowed[k].last));
                }
        }
        *ret = o;
        return 0;
}

static int tuple_get(json_object *a, size_t n, uint64_t *v) {
        if (!json_object_is_type(a, json_type_array) || json_object_array_length(a) != n)
                return -EINVAL;
        for (size_t i = 0; i < n; i++)
                if (json_util_to_u64(json_object_array_get_idx(a, i), &v[i]) < 0)
                        return -EINVAL;
        return 0;
}

#define DROP(s, rc, ...)                                                                           \
        do {                                                                                       \
                char _m[256];                                                                      \
                snprintf(_m, sizeof(_m), __VA_ARGS__);                                             \
                if ((rc)->on_drop)                                                                 \
                        (rc)->on_drop((s), _m, (rc)->userdata);                                    \
        } while (0)

/* Is [iova, iova+length) one area of the IOAS in the backend?  Copies it into a scratch IOAS. */
static bool area_present(Session *s, uint32_t scratch, uint32_t ioas_id, const SessionArea *a) {
        uint64_t at = 0;

        if (OPS(s)->ioas_copy(s->ctx, scratch, ioas_id,
                              a->flags & (BACKEND_MAP_READABLE | BACKEND_MAP_WRITEABLE), a->iova,
                              a->length, &at, NULL) < 0)
                return false;
        (void)OPS(s)->ioas_unmap(s->ctx, scratch, 0, UINT64_MAX, NULL, NULL);
        return true;
}

static int restore_ioas(Session *s, json_object *j, const SessionRestoreConfig *rc,
                        uint32_t scratch) {
        json_object *areas = NULL, *allowed = NULL;
        SessionIoas ioas = {};
        Error be = ERROR_INIT;
        uint32_t id, got;
        int r;

        if (json_util_get_u32(j, "id", 0, &id, NULL) < 0 || id == 0 ||
            json_util_get_array(j, "areas", 0, &areas, NULL) < 0 ||
            json_util_get_array(j, "allowed", 0, &allowed, NULL) < 0) {
                DROP(s, rc, "an address space record is malformed");
                return 0;
        }
        if (rc->prepare_id) {
                rc->prepare_id(s->ctx, id);
                r = OPS(s)->ioas_alloc(s->ctx, &got, &be);
                if (r < 0) {
                        DROP(s, rc, "address space %" PRIu32 " could not be recreated: %s", id,
                             error_message(&be));
                        return 0;
                }
                if (got != id) {
                        (void)OPS(s)->destroy(s->ctx, got, NULL);
                        DROP(s, rc, "address space %" PRIu32 " came back as %" PRIu32, id, got);
                        return 0;
                }
        } else {
                size_t n = 0;
                uint64_t align;

                r = OPS(s)->ioas_iova_ranges(s->ctx, id, NULL, &n, &align, &be);
                if (r < 0 && r != -EMSGSIZE) {
                        DROP(s, rc, "address space %" PRIu32 " is not in the iommufd: %s", id,
                             error_message(&be));
                        return 0;
                }
        }

        ioas.id = id;
        for (size_t k = 0; k < json_object_array_length(allowed); k++) {
                uint64_t v[2];
                IovaRange *a;

                if (tuple_get(json_object_array_get_idx(allowed, k), 2, v) < 0)
                        continue;
                a = realloc(ioas.allowed, (ioas.n_allowed + 1) * sizeof(*a));
                if (!a)
                        goto oom;
                ioas.allowed = a;
                a[ioas.n_allowed++] = (IovaRange){ .start = v[0], .last = v[1] };
        }
        if (rc->prepare_id && session_apply_allowed(s, &ioas, NULL) < 0)
                DROP(s, rc, "the allowed IOVA list of address space %" PRIu32
                     " could not be set again", id);

        for (size_t k = 0; k < json_object_array_length(areas); k++) {
                SessionArea a;
                uint64_t v[3], iova;

                if (tuple_get(json_object_array_get_idx(areas, k), 3, v) < 0 || v[1] == 0 ||
                    v[2] > UINT32_MAX) {
                        DROP(s, rc, "a mapping record of address space %" PRIu32
                             " is malformed", id);
                        continue;
                }
                a = (SessionArea){ .iova = v[0], .length = v[1], .flags = (uint32_t)v[2] };
                iova = a.iova;
                if (rc->prepare_id)
                        r = OPS(s)->ioas_map_va(s->ctx, id, a.flags | BACKEND_MAP_FIXED_IOVA,
                                                a.iova, a.length, &iova, &be);
                else
                        r = area_present(s, scratch, id, &a) ? 0 : -ENOENT;
                if (r < 0) {
                        DROP(s, rc, "mapping 0x%" PRIx64 "+0x%" PRIx64 " of address space %" PRIu32
                             " is not in the iommufd",
                             a.iova, a.length, id);
                        continue;
                }
                if (ioas_reserve_area(&ioas) < 0)
                        goto oom;
                ioas_insert_area(&ioas, a.iova, a.length, a.flags);
        }

        {
                SessionIoas *arr = realloc(s->ioas, (s->n_ioas + 1) * sizeof(*arr));

                if (!arr)
                        goto oom;
                s->ioas = arr;
        }
        s->usage.address_spaces++;
        s->usage.mappings += ioas.n_areas;
        s->usage.pinned_bytes += ioas_mapped_bytes(&ioas);
        s->ioas[s->n_ioas++] = ioas;
        return 0;
oom:
        free(ioas.areas);
        free(ioas.allowed);
        return -ENOMEM;
}

static int restore_device(Session *s, json_object *j, const SessionRestoreConfig *rc) {
        _cleanup_free_ char *name = NULL;
        const char *n;
        Error be = ERROR_INIT;
        uint32_t id, ioas_id = 0, hwpt_id = 0;
        HwInfo info = {};
        SessionDevice *devs;
        SessionIoas *ioas = NULL;
        int r;

        if (json_util_get_u32(j, "id", 0, &id, NULL) < 0 ||
            json_util_get_string(j, "name", 0, &n, NULL) < 0 ||
            json_util_get_u32(j, "ioasId", JSON_UTIL_OPTIONAL, &ioas_id, NULL) < 0 ||
            json_util_get_u32(j, "hwptId", JSON_UTIL_OPTIONAL, &hwpt_id, NULL) < 0) {
                DROP(s, rc, "a device record is malformed");
                return 0;
        }
        if (session_find_device_by_name(s, n) || host_find_claim(s->host, n)) {
                DROP(s, rc, "device %s is recorded twice", n);
                return 0;
        }
        name = strdup(n);
        devs = realloc(s->devices, (s->n_devices + 1) * sizeof(*devs));
        if (!name || !devs)
                return -ENOMEM;
        s->devices = devs;

        if (rc->prepare_id) {
                _cleanup_close_ int fd = -EBADF;
                uint32_t got;

                r = OPS(s)->device_open(s->host->backend, n, &fd, &be);
                if (r >= 0) {
                        rc->prepare_id(s->ctx, id);
                        r = OPS(s)->device_bind(s->ctx, fd, &got, &be);
                }
                if (r < 0) {
                        DROP(s, rc, "device %s could not be bound again: %s", n,
                             error_message(&be));
                        return 0;
                }
                if (got != id) {
                        (void)OPS(s)->device_unbind(s->ctx, got, NULL);
                        DROP(s, rc, "device %s came back as id %" PRIu32 ", not %" PRIu32, n,
                             got, id);
                        return 0;
                }
        }
        if (backend_has_feature(s->host->backend, BACKEND_FEATURE_HW_INFO) &&
            OPS(s)->hw_info(s->ctx, id, &info, &be) < 0) {
                DROP(s, rc, "device %s (id %" PRIu32 ") is not bound to the iommufd: %s", n, id,
                     error_message(&be));
                return 0;
        }
        if (ioas_id != 0) {
                ioas = session_find_ioas(s, ioas_id);
                if (!ioas) {
                        DROP(s, rc, "device %s was attached to address space %" PRIu32
                             ", which is gone; it stays detached", n, ioas_id);
                        ioas_id = hwpt_id = 0;
                } else if (rc->prepare_id) {
                        uint32_t pt = ioas_id;

                        rc->prepare_id(s->ctx, hwpt_id);
                        if (OPS(s)->device_attach(s->ctx, id, BACKEND_NO_PASID, &pt, &be) < 0) {
                                DROP(s, rc, "device %s could not be attached to address space "
                                     "%" PRIu32 " again: %s; it stays detached",
                                     n, ioas_id, error_message(&be));
                                ioas = NULL;
                                ioas_id = hwpt_id = 0;
                        } else
                                hwpt_id = pt;
                }
        }
        r = host_add_claim(s->host, n, s);
        if (r < 0)
                return r;
        if (ioas)
                ioas->n_attached++;
        s->devices[s->n_devices++] = (SessionDevice){
                .id = id,
                .name = TAKE_PTR(name),
                .ioas_id = ioas_id,
                .hwpt_id = hwpt_id,
                .pasid_bits = info.max_pasid_log2,
                .capabilities = info.capabilities,
        };
        s->usage.devices++;
        return 0;
}

static int hex_to_bytes(const char *hex, uint8_t *buf, size_t size, size_t *ret_len) {
        size_t n = strlen(hex);

        if (n == 0 || n % 2 != 0 || n / 2 > size)
                return -EINVAL;
        for (size_t i = 0; i < n / 2; i++) {
                char pair[3] = { hex[2 * i], hex[2 * i + 1], '\0' };
                char *end;

                if (!isxdigit((unsigned char)pair[0]) || !isxdigit((unsigned char)pair[1]))
                        return -EINVAL;
                buf[i] = (uint8_t)strtoul(pair, &end, 16);
        }
        *ret_len = n / 2;
        return 0;
}

/* The session's fault queue: recreated under its id (sim), or the adopted one (kernel). */
static int restore_faults(Session *s, json_object *state, const SessionRestoreConfig *rc) {
        Error be = ERROR_INIT;
        uint32_t id, got;
        int fd = -EBADF, r;

        if (!json_object_object_get_ex(state, "faultQueue", NULL))
                return 0;
        if (json_util_get_u32(state, "faultQueue", 0, &id, NULL) < 0 || id == 0) {
                DROP(s, rc, "the fault queue record is malformed");
                return 0;
        }
        if (!s->host->faults) {
                DROP(s, rc, "fault queue %" PRIu32 " has no fault router to read it", id);
                return 0;
        }
        if (rc->prepare_id) {
                rc->prepare_id(s->ctx, id);
                r = OPS(s)->fault_queue_alloc(s->ctx, &got, &fd, &be);
                if (r < 0) {
                        DROP(s, rc, "fault queue %" PRIu32 " could not be recreated: %s", id,
                             error_message(&be));
                        return 0;
                }
                if (got != id) {
                        (void)OPS(s)->destroy(s->ctx, got, NULL);
                        DROP(s, rc, "fault queue %" PRIu32 " came back as %" PRIu32, id, got);
                        return 0;
                }
        } else {
                fd = rc->fault_fd ? rc->fault_fd(s->ctx, id) : -ENOENT;
                if (fd < 0) {
                        DROP(s, rc, "fault queue %" PRIu32 " is not in the fd store", id);
                        return 0;
                }
        }
        r = fault_stream_new(&s->faults, s->host->faults, s->ctx, id, fd,
                             s->quotas.fault_queue_depth,
                             policy_limits(s->host->policy)->fault_response_timeout_ms);
        if (r < 0)
                return r;
        fault_stream_set_userdata(s->faults, s);
        return 0;
}

/* Best effort: what an adopted PASID record left in the iommufd goes. */
static void discard_pasid(Session *s, uint32_t dev, uint32_t pasid, uint32_t hwpt,
                          uint32_t parent) {
        (void)OPS(s)->device_detach(s->ctx, dev, pasid, NULL);
        if (hwpt != 0)
                (void)OPS(s)->destroy(s->ctx, hwpt, NULL);
        if (parent != 0)
                (void)OPS(s)->destroy(s->ctx, parent, NULL);
}

static int restore_pasid(Session *s, json_object *j, const SessionRestoreConfig *rc) {
        uint32_t dev, pasid, ioas_id, hwpt, parent = 0, stage1_type = BACKEND_HWPT_DATA_NONE;
        uint32_t got, pt;
        const char *hex = NULL;
        bool faults = false, adopted = !rc->prepare_id;
        SessionPasid p = {};
        Error be = ERROR_INIT;
        int r;

        if (json_util_get_u32(j, "deviceId", 0, &dev, NULL) < 0 ||
            json_util_get_u32(j, "pasid", 0, &pasid, NULL) < 0 ||
            json_util_get_u32(j, "ioasId", 0, &ioas_id, NULL) < 0 ||
            json_util_get_u32(j, "hwptId", 0, &hwpt, NULL) < 0 || hwpt == 0 ||
            json_util_get_u32(j, "parentId", JSON_UTIL_OPTIONAL, &parent, NULL) < 0 ||
            json_util_get_bool(j, "faults", JSON_UTIL_OPTIONAL, &faults, NULL) < 0 ||
            json_util_get_u32(j, "stage1Type", JSON_UTIL_OPTIONAL, &stage1_type, NULL) < 0 ||
            json_util_get_string(j, "stage1", JSON_UTIL_OPTIONAL, &hex, NULL) < 0 ||
            (hex && hex_to_bytes(hex, p.stage1, sizeof(p.stage1), &p.stage1_len) < 0) ||
            (parent != 0) != (hex != NULL)) {
                DROP(s, rc, "a PASID record is malformed");
                return 0;
        }
        if (!session_find_device(s, dev)) {
                DROP(s, rc, "PASID %" PRIu32 " of device %" PRIu32 " was bound to a device that "
                     "did not come back", pasid, dev);
                return 0;
        }
        if (!session_find_ioas(s, ioas_id)) {
                if (adopted)
                        discard_pasid(s, dev, pasid, hwpt, parent);
                DROP(s, rc, "PASID %" PRIu32 " of device %" PRIu32 " was bound to address space "
                     "%" PRIu32 ", which did not come back", pasid, dev, ioas_id);
                return 0;
        }
        if (host_pasid_holder(s->host, pasid)) {
                if (adopted)
                        discard_pasid(s, dev, pasid, hwpt, parent);
                DROP(s, rc, "PASID %" PRIu32 " is recorded twice", pasid);
                return 0;
        }
        if (faults && !s->faults) {
                /* A page table whose faults nobody reads would leave the device waiting. */
                if (adopted)
                        discard_pasid(s, dev, pasid, hwpt, parent);
                DROP(s, rc, "PASID %" PRIu32 " of device %" PRIu32 " delivers faults to a queue "
                     "that did not come back; unbound", pasid, dev);
                return 0;
        }

        if (!adopted) {
                if (parent != 0) {
                        HwptAllocArgs pa = { .flags = BACKEND_HWPT_NEST_PARENT, .dev_id = dev,
                                             .pt_id = ioas_id };

                        rc->prepare_id(s->ctx, parent);
                        r = OPS(s)->hwpt_alloc(s->ctx, &pa, &got, &be);
                        if (r < 0 || got != parent) {
                                if (r >= 0)
                                        (void)OPS(s)->destroy(s->ctx, got, NULL);
                                DROP(s, rc, "the nesting parent %" PRIu32 " of PASID %" PRIu32
                                     " could not be recreated", parent, pasid);
                                return 0;
                        }
                }
                HwptAllocArgs ha = {
                        .flags = BACKEND_HWPT_PASID | (faults ? BACKEND_HWPT_FAULT_ID_VALID : 0),
                        .dev_id = dev,
                        .pt_id = parent != 0 ? parent : ioas_id,
                        .data_type = stage1_type,
                        .data = p.stage1_len > 0 ? p.stage1 : NULL,
                        .data_len = (uint32_t)p.stage1_len,
                        .fault_id = faults ? fault_stream_fault_id(s->faults) : 0,
                };
                rc->prepare_id(s->ctx, hwpt);
                r = OPS(s)->hwpt_alloc(s->ctx, &ha, &got, &be);
                if (r < 0 || got != hwpt) {
                        if (r >= 0)
                                (void)OPS(s)->destroy(s->ctx, got, NULL);
                        if (parent != 0)
                                (void)OPS(s)->destroy(s->ctx, parent, NULL);
                        DROP(s, rc, "the page table %" PRIu32 " of PASID %" PRIu32 " could not "
                             "be recreated%s%s", hwpt, pasid, r < 0 ? ": " : "",
                             r < 0 ? error_message(&be) : "");
                        return 0;
                }
        }
        /* Adopted: attaching the recorded page table again is a replace with itself, which
         * succeeds exactly when the PASID, the table and the device are still what we recorded. */
        pt = hwpt;
        r = OPS(s)->device_attach(s->ctx, dev, pasid, &pt, &be);
        if (r < 0 || pt != hwpt) {
                if (r >= 0 || adopted)
                        (void)OPS(s)->device_detach(s->ctx, dev, pasid, NULL);
                (void)OPS(s)->destroy(s->ctx, hwpt, NULL);
                if (parent != 0)
                        (void)OPS(s)->destroy(s->ctx, parent, NULL);
                DROP(s, rc, "PASID %" PRIu32 " of device %" PRIu32 " could not be attached to "
                     "page table %" PRIu32 " again%s%s", pasid, dev, hwpt, r < 0 ? ": " : "",
                     r < 0 ? error_message(&be) : "");
                return 0;
        }

        {
                SessionPasid *arr = realloc(s->pasids, (s->n_pasids + 1) * sizeof(*arr));

                if (!arr)
                        return -ENOMEM;
                s->pasids = arr;
        }
        p.device_id = dev;
        p.pasid = pasid;
        p.ioas_id = ioas_id;
        p.hwpt_id = hwpt;
        p.parent_id = parent;
        p.faults = faults;
        p.stage1_type = p.stage1_len > 0 ? stage1_type : BACKEND_HWPT_DATA_NONE;
        s->pasids[s->n_pasids++] = p;
        s->usage.pasids++;
        return 0;
}

int session_restore(Session **ret, SessionHost *host, PeerCreds *creds, BackendContext *ctx,
                    json_object *state, const SessionRestoreConfig *rc) {
        _cleanup_(session_freep) Session *s = NULL;
        json_object *devs = NULL, *ioas = NULL, *pasids = NULL;
        uint32_t scratch = 0;
        Principal p;
        int r = 0;

        s = calloc(1, sizeof(*s));
        if (!s) {
                backend_context_free(ctx);
                peer_creds_free(creds);
                return -ENOMEM;
        }
        s->host = host;
        s->creds = creds;
        s->ctx = ctx;
        peer_creds_describe(creds, s->description, sizeof(s->description));
        session_principal(s, &p);
        policy_quotas(host->policy, &p, &s->quotas);
        s->next = host->sessions;
        if (host->sessions)
                host->sessions->prev = s;
        host->sessions = s;
        host->n_sessions++;

        if (json_util_get_array(state, "addressSpaces", 0, &ioas, NULL) < 0 ||
            json_util_get_array(state, "devices", 0, &devs, NULL) < 0) {
                DROP(s, rc, "the session record is malformed");
                goto done;
        }
        /* Adopted kernel objects are checked by copying each area into a scratch IOAS:
         * IOMMU_IOAS_COPY fails with ENOENT unless the range is one mapped area. */
        if (!rc->prepare_id && json_object_array_length(ioas) > 0 &&
            OPS(s)->ioas_alloc(s->ctx, &scratch, NULL) < 0)
                scratch = 0;
        for (size_t i = 0; i < json_object_array_length(ioas) && r >= 0; i++)
                r = restore_ioas(s, json_object_array_get_idx(ioas, i), rc, scratch);
        if (scratch != 0)
                (void)OPS(s)->destroy(s->ctx, scratch, NULL);
        for (size_t i = 0; i < json_object_array_length(devs) && r >= 0; i++)
                r = restore_device(s, json_object_array_get_idx(devs, i), rc);
        if (r < 0)
                return r;
        /* State version 2: the fault queue and the PASID binds (absent in version 1). */
        r = restore_faults(s, state, rc);
        if (r < 0)
                return r;
        if (json_util_get_array(state, "pasids", JSON_UTIL_OPTIONAL, &pasids, NULL) < 0) {
                DROP(s, rc, "the PASID records are malformed");
                pasids = NULL;
        }
        for (size_t i = 0; pasids && i < json_object_array_length(pasids) && r >= 0; i++)
                r = restore_pasid(s, json_object_array_get_idx(pasids, i), rc);
        if (r < 0)
                return r;
done:
        *ret = TAKE_PTR(s);
        return 0;
}

BackendContext *session_get_context(const Session *s) {
        return s->ctx;
}

int session_device_id(const Session *s, const char *name, uint32_t *ret) {
        for (size_t i = 0; i < s->n_devices; i++)
                if (streq(s->devices[i].name, name)) {
                        *ret = s->devices[i].id;
                        return 0;
                }
        return -ENOENT;
}

const char *session_device_name(const Session *s, uint32_t device_id) {
        for (size_t i = 0; i < s->n_devices; i++)
                if (s->devices[i].id == device_id)
                        return s->devices[i].name;
        return NULL;
}

/* ---- PASIDs ---------------------------------------------------------------------------- */

size_t session_n_pasids(const Session *s) {
        return s->n_pasids;
}

FaultStream *session_fault_stream(const Session *s) {
        return s->faults;
}

static SessionPasid *session_find_pasid(Session *s, uint32_t device_id, uint32_t pasid) {
        for (size_t i = 0; i < s->n_pasids; i++)
                if (s->pasids[i].device_id == device_id && s->pasids[i].pasid == pasid)
                        return &s->pasids[i];
        return NULL;
}

/* The session using pasid anywhere on the host, or NULL. */
static Session *host_pasid_holder(SessionHost *h, uint32_t pasid) {
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

static int invalid_parameter(BrokerError *err, const char *parameter, const char *fmt, ...)
        _printf_(3, 4);
static int invalid_parameter(BrokerError *err, const char *parameter, const char *fmt, ...) {
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
        Error be = ERROR_INIT;
        uint32_t id;
        int fd, r;

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
                        return invalid_parameter(err, "pasid",
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
                holder = host_pasid_holder(s->host, a->pasid);
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
                if (!host_pasid_holder(s->host, (uint32_t)v)) {
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

/* The stage-1 table sizes the IOMMUs take (struct iommu_hwpt_vtd_s1, iommu_hwpt_arm_smmuv3). */
static int session_check_stage1(Session *s, const SessionDevice *d, const SessionBindPasidArgs *a,
                                BrokerError *err) {
        HwInfo info = {};
        Error be = ERROR_INIT;
        size_t want;

        if (!backend_has_feature(s->host->backend, BACKEND_FEATURE_NESTING))
                return broker_error_not_supported(err, "nesting",
                                                  "The %s backend cannot nest a user stage-1 "
                                                  "table.",
                                                  s->host->backend->ops->name);
        switch (a->stage1_type) {
        case BACKEND_HWPT_DATA_VTD_S1:
                want = 24;
                break;
        case BACKEND_HWPT_DATA_ARM_SMMUV3:
                want = 16;
                break;
        default:
                return invalid_parameter(err, "stage1",
                                         "Stage-1 type %" PRIu32 " is not known.", a->stage1_type);
        }
        if (a->stage1_len != want || !a->stage1_data)
                return invalid_parameter(err, "stage1",
                                         "A stage-1 table of type %" PRIu32 " is %zu bytes, got "
                                         "%zu.",
                                         a->stage1_type, want, a->stage1_len);
        if (OPS(s)->hw_info(s->ctx, d->id, &info, &be) < 0)
                return broker_error_from_backend(err, "read the IOMMU's hardware info", &be);
        /* HW info type 1 is VT-d (stage-1 type 1), 2 is SMMUv3 (type 2). */
        if (info.type != a->stage1_type)
                return invalid_parameter(err, "stage1",
                                         "Device %s sits behind an IOMMU of type %" PRIu32
                                         ", which does not take stage-1 tables of type %" PRIu32
                                         ".",
                                         d->name, info.type, a->stage1_type);
        return 0;
}

static int pasid_backend_error(BrokerError *err, const char *op, const Error *be, int r) {
        if (r == -EOPNOTSUPP)
                return broker_error_not_supported(err, "pasid", "%s", error_message(be));
        return broker_error_from_backend(err, op, be);
}

int session_bind_pasid(Session *s, const SessionBindPasidArgs *a, uint32_t *ret_pasid,
                       uint32_t *ret_hwpt_id, BrokerError *err) {
        SessionDevice *d = LOOKUP_DEVICE(s, a->device_id, err);
        Error be = ERROR_INIT;
        uint32_t pasid = 0, parent = 0, hwpt = 0, pt;
        SessionPasid *arr;
        bool nested = a->stage1_type != BACKEND_HWPT_DATA_NONE;
        int r;

        (void)LOOKUP_IOAS(s, a->ioas_id, err);
        if (d->pasid_bits == 0 || !backend_has_feature(s->host->backend, BACKEND_FEATURE_PASID))
                return broker_error_not_supported(err, "pasid",
                                                  "Device %s has no PASID capability.", d->name);
        r = session_choose_pasid(s, d, a, &pasid, err);
        if (r < 0)
                return r;
        r = quota_check(err, BROKER_RESOURCE_PASIDS, s->quotas.pasids, s->usage.pasids, 1);
        if (r < 0)
                return r;
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

        if (nested) {
                HwptAllocArgs pa = { .flags = BACKEND_HWPT_NEST_PARENT, .dev_id = d->id,
                                     .pt_id = a->ioas_id };

                r = OPS(s)->hwpt_alloc(s->ctx, &pa, &parent, &be);
                if (r < 0)
                        return r == -EOPNOTSUPP ?
                                broker_error_not_supported(err, "nesting", "%s", error_message(&be)) :
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
        pt = hwpt;
        r = OPS(s)->device_attach(s->ctx, d->id, pasid, &pt, &be);
        if (r < 0) {
                (void)OPS(s)->destroy(s->ctx, hwpt, NULL);
                if (parent)
                        (void)OPS(s)->destroy(s->ctx, parent, NULL);
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
        s->usage.pasids++;
        *ret_pasid = pasid;
        *ret_hwpt_id = hwpt;
        return 0;
}

static void session_release_pasid(Session *s, SessionPasid *p) {
        Error be = ERROR_INIT;

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
        s->usage.pasids--;
}

int session_unbind_pasid(Session *s, uint32_t device_id, uint32_t pasid, BrokerError *err) {
        SessionPasid *p;
        char id[32];

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

static void session_drop_device_pasids(Session *s, uint32_t device_id) {
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
        if (code != FAULT_RESPONSE_SUCCESS && code != FAULT_RESPONSE_INVALID)
                return invalid_parameter(err, "code", "Fault response code %" PRIu32
                                         " is neither success (0) nor invalid (1).", code);
        if (!s->faults)
                return fault_router_unknown_cookie(s->host->faults, NULL, cookie, err);
        return fault_stream_respond(s->faults, cookie, code, err);
}
