/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Private to the session core (daemon/core/session*.c) and its restart state
 * (daemon/core/state/): the tables a Session keeps and the functions its files
 * share.  Every other layer sees sessions through session.h only.
 *
 *   session.c         claims and holders, lifetime and teardown, lookups, reload
 *   session-delegate.c  device fds for clients, delegation of a fresh iommufd
 *   session-quota.c   the usage table per principal, charges and refunds, usage reports
 *   session-device.c  explain, attach and detach of devices
 *   session-ioas.c    address spaces, the policy's IOVA windows, the record of mappings
 *   session-map.c     map, unmap, copy
 *   session-pasid.c   PASID binds and fault delivery
 *   session-handoff.c devices handed over as fds (OpenDevices)
 *   session-release.c giving a device back when the host asks for it
 */

#include <stdbool.h>
#include <stdint.h>

#include "session.h"

/* One mapping the client made: unmap refunds exactly what it removes. */
typedef struct SessionArea {
        uint64_t iova;
        uint64_t length;
        uint32_t flags; /* BACKEND_MAP_READABLE / WRITEABLE, inherited by copies */
} SessionArea;

/* A page table iommud allocated with dirty tracking for the devices of one IOMMU instance. */
typedef struct SessionDirtyHwpt {
        uint32_t id;
        char iommu[64]; /* the instance's name; "": unknown, never shared */
} SessionDirtyHwpt;

typedef struct SessionIoas {
        uint32_t id;
        /*
         * Sorted by iova, never overlapping.  The allocation starts n_head slots before areas
         * and holds n_alloc: unmapping the lowest areas (in the order they were mapped) only
         * moves areas forward, never the rest down.
         */
        SessionArea *areas;
        size_t n_areas, n_alloc, n_head;
        unsigned n_attached; /* devices whose RID is attached here */
        IovaRange *allowed;  /* what the client set with AllowIOVAs, NULL: none */
        size_t n_allowed;
        /*
         * Created with dirty tracking: devices attach through page tables iommud allocates
         * with the flag (session-dirty.c), one per IOMMU they need, kept until the address
         * space goes; dirty_enabled is what SetDirtyTracking last set on all of them.
         */
        bool dirty_tracking, dirty_enabled;
        SessionDirtyHwpt *dirty_hwpts;
        size_t n_dirty_hwpts;
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

/* One row of the host's usage table: a uid and what all its sessions hold. */
struct SessionPrincipal {
        SessionPrincipal *next;
        uid_t uid;
        unsigned n_sessions; /* references: the sessions of this uid */
        PolicyQuotas used;   /* the sums of the sessions' usage; fault_queue_depth unused */
};

/* What is charged per principal, each a field of PolicyQuotas. */
typedef enum SessionResource {
        SESSION_RESOURCE_PINNED_BYTES,
        SESSION_RESOURCE_ADDRESS_SPACES,
        SESSION_RESOURCE_MAPPINGS,
        SESSION_RESOURCE_DEVICES,
        SESSION_RESOURCE_PASIDS,
        SESSION_RESOURCE_CONNECTIONS,
        _SESSION_RESOURCE_MAX,
} SessionResource;

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
        uint8_t stage1[BACKEND_STAGE1_DATA_MAX];
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
        PolicyQuotas usage;            /* this session's share of principal->used */
        PolicyQuotas quotas;
        SessionPrincipal *principal;   /* its uid's row of the host's usage table */
        /*
         * The IOVA windows the policy of generation windows_gen (0: none looked up) gives this
         * session's principal with no device attached: what policy_iova_windows() returned
         * (windows_r) and its windows, which live as long as that policy does.  A loaded
         * policy's generation is never reused, and the principal is the session's for life.
         */
        uint64_t windows_gen;
        int windows_r;
        const IovaWindow *windows;
        size_t n_windows;
        void *userdata;
        SessionGone *gone;
        size_t n_gone;
        SessionPasid *pasids;
        size_t n_pasids;
        FaultStream *faults;  /* the session's fault queue, made on first use */
        bool delegated;       /* the client has an iommufd of its own: iommud mediates nothing */
        /* Devices whose fds the client took (OpenDevices): claimed, never bound by iommud. */
        char **handed_over;
        size_t n_handed_over;
};

/* The backend's operations, on s->ctx. */
#define OPS(s) ((s)->host->backend->ops)

/* ---- session.c -------------------------------------------------------------------------- */

SessionClaim *session_host_find_claim(SessionHost *h, const char *device);
int session_host_add_claim(SessionHost *h, const char *device, Session *owner);
void session_host_release_claim(SessionHost *h, const char *device, const Session *owner);

/*
 * A session of creds (not taken) with its description, quotas and its uid's row of the
 * usage table, not linked into host and without a context yet: session_discard() it until
 * session_link().
 */
Session *session_alloc(SessionHost *host, PeerCreds *creds);
/* Gives back what an unlinked session was charged and frees it, not its credentials. */
void session_discard(Session *s);
/* Links s into its host's list of sessions; session_free() unlinks it. */
void session_link(Session *s);

SessionDevice *session_find_device(Session *s, uint32_t id);
SessionDevice *session_find_device_by_name(Session *s, const char *name);
SessionIoas *session_find_ioas(Session *s, uint32_t id);
/* DeviceGone when the device was taken from this session, else NoSuchObject. */
int session_device_missing(Session *s, uint32_t id, BrokerError *err);

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
                        return broker_error_no_such_object((err), BROKER_KIND_ADDRESS_SPACE,       \
                                                           (id));                                  \
                _i;                                                                                \
        })

/* ---- session-delegate.c ----------------------------------------------------------------- */

/* NotSupported {feature: "mediation"}: what every mediated method answers after Delegate. */
int session_refuse_delegated(const Session *s, BrokerError *err);
/* NotSupported {feature} unless the backend has an iommufd to hand over, per process. */
int session_can_hand_iommufd(Session *s, const char *feature, BrokerError *err);
/*
 * A fresh iommufd for the client to keep (Delegate, OpenDevices): a new context switched to
 * per-process accounting before anyone holds it; iommud keeps no copy.  NotSupported {feature}
 * when iommud may not switch it (no CAP_SYS_RESOURCE).
 */
int session_fresh_iommufd(Session *s, const char *feature, int *ret_fd, BrokerError *err);
#define REFUSE_IF_DELEGATED(s, err)                                                                \
        do {                                                                                       \
                if ((s)->delegated)                                                                \
                        return session_refuse_delegated((s), (err));                               \
        } while (false)

/* ---- session-quota.c -------------------------------------------------------------------- */

/* The row of uid in h's usage table, made on first use and shared; NULL without memory. */
SessionPrincipal *session_principal_ref(SessionHost *h, uid_t uid);
/* Drops a session's reference; the row goes with the last one (accepts NULL). */
void session_principal_unref(SessionHost *h, SessionPrincipal *p);
/*
 * Charges n of r to s and its principal when the principal's total stays within s's quota,
 * QuotaExceeded otherwise (nothing charged).  Every path that then fails refunds exactly
 * what was charged.
 */
int session_charge(Session *s, SessionResource r, uint64_t n, BrokerError *err);
/* Charges what a restored session already held, without a check: it was granted before. */
void session_charge_held(Session *s, SessionResource r, uint64_t n);
void session_refund(Session *s, SessionResource r, uint64_t n);
/* Gives back everything s holds; for its end. */
void session_refund_all(Session *s);
/* QuotaExceeded for want more of r, with the principal's total as used. */
int session_quota_exceeded(Session *s, SessionResource r, uint64_t want, BrokerError *err);
/* n mappings of bytes in all (Map, MapBatch and Copy charge alike), both or neither. */
int session_charge_mappings(Session *s, uint64_t n, uint64_t bytes, BrokerError *err);
void session_refund_mappings(Session *s, uint64_t n, uint64_t bytes);

/* Why device id is gone, for later calls naming it (session.c). */
void session_remember_gone(Session *s, uint32_t id, const char *name, const char *reason);

/* ---- session-device.c ------------------------------------------------------------------- */

/* The decision for device name as this session would get it now, for a handoff or not. */
int session_decide(Session *s, const char *name, bool handoff, PolicyDecision *ret,
                   BrokerError *err);
/*
 * Everything before a device is bound or handed over: lookup, exclusivity (the session's own
 * devices included), the policy with its delegation step when handoff, and the devices quota
 * against what the session holds now.  *ret is the device in the topology.
 */
int session_admit_device(Session *s, const char *name, bool handoff, const TopoDevice **ret,
                         BrokerError *err);

/*
 * Detaches d through the kernel, closes iommud's copy of its file and releases its claim; a
 * device whose file a client still holds is recorded as lingering.  The slot stays for the
 * caller to drop.
 */
void session_device_release(Session *s, SessionDevice *d);
/*
 * session-audit.c: tells the host's on_audit about the outcome r of action on device (NULL:
 * an iommufd, or the device err names): a grant when r >= 0, a refusal when err is a policy
 * decision's; nothing for any other failure.  err must not be NULL.  Returns r.
 */
int session_audit_result(Session *s, SessionAuditAction action, const char *device, int r,
                         const BrokerError *err);
/* Drops d (its PASIDs, its attachment, its claim) from the session's table. */
void session_remove_device(Session *s, SessionDevice *d);

/* ---- session-release.c ------------------------------------------------------------------ */

/* Tells the host's on_device hook about d (before its file is released, for UNBINDING). */
void session_device_notify(Session *s, SessionDeviceEvent event, const SessionDevice *d);
/*
 * Takes d from the session for good: remembers why (DeviceGone), answers its pending faults,
 * removes it and destroys an address space only it used.
 */
void session_drop_device(Session *s, SessionDevice *d, const char *reason);

/* ---- session-ioas.c --------------------------------------------------------------------- */

int session_check_windows(Session *s, const SessionIoas *ioas, uint64_t first, uint64_t last,
                          BrokerError *err);

#define SESSION_WINDOWS_MAX 8

/*
 * The IOVA windows the policy grants for an address space, looked up once for the many
 * ranges of one call (a batch: neither policy nor attachments change within it).  Each set
 * is a device's (device: its name), or the principal's when no device is attached (NULL).
 * When more devices have windows than it holds, each range is looked up as
 * session_check_windows() does.
 */
typedef struct SessionWindows {
        bool per_range;
        size_t n;
        struct {
                const char *device;
                const IovaWindow *w;
                size_t n;
        } sets[SESSION_WINDOWS_MAX];
} SessionWindows;

void session_windows_resolve(Session *s, const SessionIoas *ioas, SessionWindows *ret);
int session_windows_check(Session *s, const SessionIoas *ioas, const SessionWindows *w,
                          uint64_t first, uint64_t last, BrokerError *err);
int session_apply_allowed(Session *s, SessionIoas *ioas, BrokerError *err);
/* Refunds what ioas held and drops it from the table; the kernel object is the caller's. */
void session_remove_ioas(Session *s, SessionIoas *ioas);
/* InvalidParameter {parameter} with the sentence; returns -EINVAL. */
int session_invalid_parameter(BrokerError *err, const char *parameter, const char *fmt, ...)
        _printf_(3, 4);
/*
 * The dirty-tracking page table of ioas device d (topology entry td, may be NULL) attaches to:
 * the one of its IOMMU instance, or a new one (*ret_new), tracking if the address space is.
 */
int session_dirty_page_table(Session *s, const SessionDevice *d, const TopoDevice *td,
                             SessionIoas *ioas, uint32_t *ret_pt, bool *ret_new,
                             BrokerError *err);
/* NotSupported "dirty-tracking" naming device d, whose IOMMU (be says why) cannot track ioas. */
int session_dirty_refused(const SessionIoas *ioas, const SessionDevice *d, const Error *be,
                          BrokerError *err);
/* Destroys the page table pt session_dirty_page_table() just made, which nothing uses. */
void session_dirty_drop(Session *s, SessionIoas *ioas, uint32_t pt);
/* Destroys the page tables iommud allocated for ioas (before the IOAS itself goes). */
void session_dirty_destroy_hwpts(Session *s, SessionIoas *ioas);
/*
 * Destroys the page tables iommud made for ioas, unmaps everything in it and destroys it, in
 * the kernel only (the record is the caller's).  Unmapped first, so that its pages are released
 * even when the kernel keeps the object: a device the client attached to it by itself makes the
 * destroy -EBUSY.
 */
int session_ioas_teardown(Session *s, SessionIoas *ioas);
uint64_t session_ioas_mapped_bytes(const SessionIoas *ioas);
int session_ioas_grow_areas(SessionIoas *ioas);
/* Reserves room for one more area, so that recording it after a map cannot fail. */
static inline int session_ioas_reserve_area(SessionIoas *ioas) {
        if (ioas->n_head + ioas->n_areas < ioas->n_alloc)
                return 0;
        return session_ioas_grow_areas(ioas);
}
/* Drops the areas [first, end) from the record; the charge and the backend are the caller's. */
void session_ioas_remove_areas(SessionIoas *ioas, size_t first, size_t end);
/* Frees the record of areas. */
void session_ioas_free_areas(SessionIoas *ioas);
void session_ioas_insert_area(SessionIoas *ioas, uint64_t iova, uint64_t length, uint32_t flags);
size_t session_ioas_first_area_from(const SessionIoas *ioas, uint64_t iova);

/* ---- session-pasid.c -------------------------------------------------------------------- */

Session *session_host_pasid_holder(SessionHost *h, uint32_t pasid);
void session_drop_device_pasids(Session *s, uint32_t device_id);
/* Detaches and destroys every PASID bind of the session, through the kernel. */
void session_drop_all_pasids(Session *s);

/* ---- session-handoff.c ------------------------------------------------------------------ */

/* Whether the session holds device name as fds it handed over. */
bool session_handoff_find(const Session *s, const char *name);
/* Releases every device handed over (the session ends): claims go, the client's files may not. */
void session_handoff_release_all(Session *s);
/* Releases the handed-over devices the policy no longer lets it take; see session_revalidate(). */
int session_handoff_revalidate(Session *s,
                               void (*on_drop)(Session *s, const char *device,
                                               const char *reason, void *userdata),
                               void *userdata);
