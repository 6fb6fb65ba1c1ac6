/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Private to the session core (daemon/core/session*.c) and its restart state
 * (daemon/core/state/): the tables a Session keeps and the functions its files
 * share.  Every other layer sees sessions through session.h only.
 *
 *   session.c         claims, lifetime, lookups, quotas, delegation, reload
 *   session-device.c  explain, attach and detach of devices
 *   session-ioas.c    address spaces, the policy's IOVA windows, the record of mappings
 *   session-map.c     map, unmap, copy
 *   session-pasid.c   PASID binds and fault delivery
 *   session-handoff.c devices handed over as fds (OpenDevices)
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
        PolicyQuotas usage;
        PolicyQuotas quotas;
        void *userdata;
        SessionGone *gone;
        size_t n_gone;
        SessionPasid *pasids;
        size_t n_pasids;
        FaultStream *faults;  /* the session's fault queue, made on first use */
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
 * A session of creds (not taken) with its description and quotas, not linked into host
 * and without a context yet: free() it until session_link().
 */
Session *session_alloc(SessionHost *host, PeerCreds *creds);
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


/* QuotaExceeded for resource unless used + want fits in limit. */
int session_quota_check(BrokerError *err, const char *resource, uint64_t limit, uint64_t used,
                        uint64_t want);

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

/* Unbinds d and releases its claim; the slot stays for the caller to drop. */
void session_device_release(Session *s, SessionDevice *d);
/* Drops d (its PASIDs, its attachment, its claim) from the session's table. */
void session_remove_device(Session *s, SessionDevice *d);

/* ---- session-ioas.c --------------------------------------------------------------------- */

int session_check_windows(Session *s, const SessionIoas *ioas, uint64_t first, uint64_t last,
                          BrokerError *err);
int session_apply_allowed(Session *s, SessionIoas *ioas, BrokerError *err);
/* Refunds what ioas held and drops it from the table; the kernel object is the caller's. */
void session_remove_ioas(Session *s, SessionIoas *ioas);
uint64_t session_ioas_mapped_bytes(const SessionIoas *ioas);
int session_ioas_reserve_area(SessionIoas *ioas);
void session_ioas_insert_area(SessionIoas *ioas, uint64_t iova, uint64_t length, uint32_t flags);
size_t session_ioas_first_area_from(const SessionIoas *ioas, uint64_t iova);

/* ---- session-pasid.c -------------------------------------------------------------------- */

Session *session_host_pasid_holder(SessionHost *h, uint32_t pasid);
void session_drop_device_pasids(Session *s, uint32_t device_id);

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
