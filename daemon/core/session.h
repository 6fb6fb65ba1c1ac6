/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The session core: one per client, transport-independent.  The Varlink
 * broker and the D-Bus front end both call exactly these functions; nothing
 * here knows JSON, sockets or D-Bus.  Errors are BrokerErrors with the
 * protocol error name and its typed parameters.
 *
 * A session owns one backend context (one iommufd), so it can never name
 * another session's kernel objects; every id a client passes is looked up in
 * this session's own tables first (NoSuchObject otherwise).  Usage is charged
 * before anything is allocated and refunded on every failure path, so a failed
 * call costs nothing.  Quotas are per principal (the uid): every session of a
 * uid, on every transport, and every connection of it (joined ones and D-Bus
 * sessions included) is charged to one row of the host's usage table, and each
 * charge checks that row's total against the asking session's quotas.
 *
 * Devices are exclusive across sessions: a device, or any device of its IOMMU
 * group, claimed by one session is DeviceBusy for every other.  The claim table
 * lives in the SessionHost (the daemon-wide state the manager owns), and
 * session_free() releases everything the session held before it returns, so a
 * device is free again before any other client can observe it as busy.
 *
 * Restart survival (a session's record for the next daemon, and the rebuild
 * from it) is not here: state/session-state.h.
 */

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "backend.h"
#include "broker-errors.h"
#include "fault-router.h"
#include "lingering.h"
#include "peer-creds.h"
#include "policy.h"
#include "topology.h"

typedef struct Session Session;
typedef struct SessionClaim SessionClaim;
typedef struct SessionPrincipal SessionPrincipal;

/* What happens to a session, for SessionHost.on_session. */
typedef enum SessionEvent {
        SESSION_OPENED,
        SESSION_CLOSING,
        SESSION_CLOSED,
        _SESSION_EVENT_MAX,
} SessionEvent;

typedef void (*SessionHookFn)(Session *s, SessionEvent event, void *userdata);

/* What happens to one device of a session, for SessionHost.on_device. */
typedef enum SessionDeviceEvent {
        SESSION_DEVICE_BOUND,     /* bound to the session's context */
        SESSION_DEVICE_UNBINDING, /* about to be released; its request fd is still open */
        _SESSION_DEVICE_EVENT_MAX,
} SessionDeviceEvent;

typedef void (*SessionDeviceHookFn)(Session *s, SessionDeviceEvent event, uint32_t device_id,
                                    const char *name, void *userdata);

/* What a session asked for that is on the record, for SessionHost.on_audit. */
typedef enum SessionAuditAction {
        SESSION_AUDIT_ATTACH,    /* a device (AttachDevice, by fd or by name) */
        SESSION_AUDIT_DELEGATE,  /* an iommufd of its own (Delegate) */
        SESSION_AUDIT_MAP,       /* memory in an address space (Map); refusals only */
        SESSION_AUDIT_BIND_PASID,/* a PASID of an attached device (BindPASID); refusals only */
        _SESSION_AUDIT_ACTION_MAX,
} SessionAuditAction;

/* A grant, or a refusal by a policy decision (PolicyDenied, DeviceBusy, QuotaExceeded). */
typedef struct SessionAudit {
        SessionAuditAction action;
        bool granted;
        const char *device;      /* the device asked for; NULL for an iommufd */
        const char *step;        /* refusals: the step that refused ("group", "delegation") */
        const char *reason;      /* refusals: the sentence the client was given */
} SessionAudit;

typedef void (*SessionAuditFn)(Session *s, const SessionAudit *a, void *userdata);

/* The daemon-wide state sessions share; owned by the manager (or a test). */
typedef struct SessionHost {
        Backend *backend;
        Topology *topology;  /* current; the manager swaps it on hotplug */
        Policy *policy;      /* current; the manager swaps it on reload */
        Session *sessions;   /* every live session, newest first */
        size_t n_sessions;
        SessionClaim *claims; /* device name → session */
        size_t n_claims;
        SessionPrincipal *principals; /* what each uid holds across its sessions */
        /*
         * Asked before a device is reported busy: if every client of holder is
         * gone (killed, with its disconnect not processed yet), free holder now
         * and return true, so that a dead client never makes a device look busy.
         */
        bool (*reap_if_gone)(Session *holder, void *userdata);
        void *reap_userdata;
        /*
         * Told about each session's lifetime, whichever transport made it:
         * SESSION_OPENED once it is linked in, SESSION_CLOSING when it is
         * about to be freed (everything it held still there), SESSION_CLOSED
         * once it is unlinked and has released everything (only its
         * credentials and description still valid, the host's counts already
         * without it).  May be NULL; the manager fans it out to its listeners.
         */
        SessionHookFn on_session;
        void *on_session_userdata;
        /*
         * Told when a device is bound to a session and when it is about to be released,
         * whatever releases it (DetachDevice, a reload, hotplug, the session's end), so
         * that whoever watches its request channel stops before the fd is closed.
         */
        SessionDeviceHookFn on_device;
        void *on_device_userdata;
        /*
         * Told once about every grant of a device or an iommufd and every refusal of one by a
         * policy decision, whichever transport asked.  May be NULL.
         */
        SessionAuditFn on_audit;
        void *on_audit_userdata;
        /* Reads the sessions' fault queues; NULL: no event loop, fault delivery is NotSupported. */
        FaultRouter *faults;
        /*
         * Devices let go of whose file a client still holds (lingering.h); owned by the host
         * once set.  NULL: made on first use, without an event loop.
         */
        Lingering *lingering;
        /* What session_host_holder_description() last answered. */
        char holder_description[128];
        /*
         * The daemon exits and the service manager's fd store keeps every session's files for
         * the next one: session_free() then closes what it holds and tears nothing down.
         */
        bool preserving;
} SessionHost;

#define SESSION_HOST_INIT ((SessionHost){})

/* Frees every session still alive and the claim table; not backend/topology/policy. */
void session_host_done(SessionHost *h);
/*
 * Whether a group may be handed to a client as a whole: every device in it is unbound, bound
 * to a VFIO driver or pci-stub, or a bridge.  Both transports report this as "viable".
 */
bool session_group_viable(const TopoGroup *g);
/* The session holding d or any device of its group other than self, or NULL. */
Session *session_host_device_holder(SessionHost *h, const TopoDevice *d, const Session *self);

/* Who holds a device: a session, or a process that kept a device file iommud let go of. */
typedef struct SessionHolder {
        const Session *session;   /* NULL: a process holding a lingering device's file */
        pid_t pid;                /* the session's client, or the process holding the file */
        char description[128];    /* "uid 1000 (qemu-vm1.scope)", "pid 4242 (qemu-system-x86)" */
} SessionHolder;

/*
 * Who holds d or any device of its group other than self: a session's claim first, then a
 * process still holding the file of a device iommud let go of (asked about now, so that an
 * entry whose holders are gone ends here).  self's own client is no such process: it may hold
 * an fd of the device it is about to pass, and if that fd is not the bound file, the kernel's
 * refusal of the bind names it.  Returns 1 with *ret filled when held, 0 when not.
 */
int session_host_holder(SessionHost *h, const TopoDevice *d, const Session *self,
                        SessionHolder *ret);
/*
 * session_host_holder()'s description, or NULL when d is free: PolicyRuntime.device_holder
 * for every transport.  Points into h, valid until the next call.
 */
const char *session_host_holder_description(SessionHost *h, const TopoDevice *d,
                                            const Session *self);
/*
 * Who holds exactly device name (a session's claim or its lingering file) as self (NULL: an
 * administrator) sees it, for GetTopology.  Points into h, valid until the next call.
 */
const char *session_host_device_held_by(SessionHost *h, const char *device,
                                        const Session *self);
/* The lingering devices of h (made on first use). */
Lingering *session_host_lingering(SessionHost *h);
/* The session that claimed exactly this device, or NULL. */
Session *session_host_claim_owner(SessionHost *h, const char *device);
/*
 * What uid holds across all its sessions and transports, the totals its quotas are checked
 * against, and how many sessions it has.  -ENOENT when it has none.
 */
int session_host_principal_usage(const SessionHost *h, uid_t uid, PolicyQuotas *ret,
                                 unsigned *ret_sessions);

typedef struct SessionDeviceInfo {
        uint32_t device_id;       /* this session's handle (the backend's device id) */
        char bdf[64];
        unsigned group;
        uint8_t pasid_bits;
        uint64_t capabilities;    /* BACKEND_HW_CAP_* */
} SessionDeviceInfo;

typedef struct SessionMapArgs {
        uint32_t ioas_id;
        int fd;                   /* borrowed */
        uint64_t offset;
        uint64_t length;
        bool fixed_iova;          /* iova is an input */
        uint64_t iova;
        bool readable;
        bool writeable;
} SessionMapArgs;

typedef struct SessionCopyArgs {
        uint32_t src_ioas_id;
        uint64_t src_iova;
        uint32_t dst_ioas_id;
        bool fixed_iova;
        uint64_t dst_iova;
        uint64_t length;
} SessionCopyArgs;

typedef struct SessionInfo {
        const PeerCreds *creds;
        PolicyQuotas usage;       /* same fields, counted: this session's own share */
        PolicyQuotas principal_usage; /* the principal's totals, every session and transport */
        PolicyQuotas quotas;      /* this session's quotas, on the principal's totals */
        uint64_t policy_generation;
        FaultCounters faults;     /* all zero until the session has a fault queue */
} SessionInfo;

typedef struct SessionBindPasidArgs {
        uint32_t device_id;
        uint32_t ioas_id;
        bool has_pasid;           /* else iommud picks the lowest free PASID the policy allows */
        uint32_t pasid;
        bool faults;              /* deliver this PASID's I/O page faults to WatchFaults */
        /*
         * A user stage-1 table (vSVA), nested over the IOAS; BACKEND_HWPT_DATA_NONE: none.
         * At most BACKEND_STAGE1_DATA_MAX bytes, as backend_stage1_data_len() says.
         */
        uint32_t stage1_type;
        const void *stage1_data;
        size_t stage1_len;
} SessionBindPasidArgs;

/*
 * Creates a session for creds (taken on success), with its own backend
 * context, and links it into host.  Quotas come from the current policy.  The
 * session counts as one connection of its principal: QuotaExceeded
 * (connections) when creds' uid already has as many connections as the policy
 * allows, over any transport.
 */
int session_new(Session **ret, SessionHost *host, PeerCreds *creds, BrokerError *err);
/* "attach", "delegate", "map", "bind-pasid" */
const char *session_audit_action_to_string(SessionAuditAction a);

/* Releases every device, object, claim and the context; unlinks.  Accepts NULL. */
Session *session_free(Session *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(Session *, session_free);

const PeerCreds *session_creds(const Session *s);
/* "uid 1000 (qemu-vm1.scope)" */
const char *session_describe(const Session *s);
void session_set_userdata(Session *s, void *userdata);
void *session_get_userdata(const Session *s);
Session *session_next(const Session *s);

/* The principal of this session, pointing into its credentials. */
void session_principal(const Session *s, Principal *ret);

/*
 * Full decision for device name as this session would get it now (policy,
 * holder, usage).  -ENODEV with NoSuchDevice when the topology has no such
 * device.  ret must be cleared with policy_decision_clear().
 */
int session_explain_device(Session *s, const char *name, PolicyDecision *ret, BrokerError *err);

/* Attaches the device behind a client's VFIO cdev fd (borrowed). */
int session_attach_device_fd(Session *s, int fd, SessionDeviceInfo *ret, BrokerError *err);
/* Opens the device on the client's behalf; only where the policy allows it. */
int session_attach_device_name(Session *s, const char *name, SessionDeviceInfo *ret,
                               BrokerError *err);
int session_detach_device(Session *s, uint32_t device_id, BrokerError *err);

int session_create_address_space(Session *s, uint32_t *ret_ioas_id, BrokerError *err);
/*
 * The same; with dirty_tracking, every device attached to it gets a page table allocated with
 * dirty tracking (NotSupported "dirty-tracking" naming a device whose IOMMU cannot, or where the
 * kernel has none), so SetDirtyTracking and ReadDirtyBitmap can act on it.
 */
int session_create_address_space_full(Session *s, bool dirty_tracking, uint32_t *ret_ioas_id,
                                      BrokerError *err);
int session_destroy_address_space(Session *s, uint32_t ioas_id, BrokerError *err);
int session_attach_to_address_space(Session *s, uint32_t device_id, uint32_t ioas_id,
                                    uint32_t *ret_hwpt_id, BrokerError *err);

/*
 * Usable IOVA ranges of the IOAS, narrowed to the policy's windows for this
 * principal.  *ret is malloc'ed.
 */
int session_get_iova_ranges(Session *s, uint32_t ioas_id, IovaRange **ret, size_t *ret_n,
                            uint64_t *ret_alignment, BrokerError *err);
/* The most ranges one AllowIOVAs call takes, on either transport. */
#define SESSION_ALLOW_IOVAS_MAX 4096
int session_allow_iovas(Session *s, uint32_t ioas_id, const IovaRange *ranges, size_t n,
                        BrokerError *err);

int session_map(Session *s, const SessionMapArgs *args, uint64_t *ret_iova, BrokerError *err);
/* The most areas one MapBatch or UnmapBatch names. */
#define SESSION_MAP_BATCH_MAX 4096

/*
 * Maps n areas (their ioas_id is ignored) in address space ioas_id, all or none: the
 * quota is checked once for their total, and a failing area undoes the ones before it,
 * in the backend too.  ret_iovas receives n IOVAs.  An error about one area carries its
 * index as the error parameter "area".
 */
int session_map_batch(Session *s, uint32_t ioas_id, const SessionMapArgs *areas, size_t n,
                      uint64_t *ret_iovas, BrokerError *err);
/*
 * Unmaps n ranges of ioas_id, each as session_unmap() would: every range is checked
 * before any is unmapped (each must remove whole mappings, at least one, and the ranges
 * must not overlap), so a refused batch leaves everything mapped.  *ret_unmapped: bytes
 * removed in all.  An error about one range carries its index as "area".
 */
int session_unmap_batch(Session *s, uint32_t ioas_id, const IovaRange *ranges, size_t n,
                        uint64_t *ret_unmapped, BrokerError *err);
/* iova 0 + length UINT64_MAX unmaps everything.  *ret_unmapped: bytes removed. */
int session_unmap(Session *s, uint32_t ioas_id, uint64_t iova, uint64_t length,
                  uint64_t *ret_unmapped, BrokerError *err);
int session_copy(Session *s, const SessionCopyArgs *args, uint64_t *ret_iova, BrokerError *err);

typedef struct SessionFeatures {
        const char *backend;      /* "kernel", "vfio", "sim" */
        uint64_t kernel;          /* BackendFeature bits probed at start */
        bool has_device;
        uint32_t device_id;
        HwInfo hw;                /* the device's IOMMU (IOMMU_GET_HW_INFO); zero where unknown */
        bool dirty_tracking_offered; /* the kernel, and the device's IOMMU when asked about one */
        bool dirty_tracking_granted; /* the policy lets the principal use it */
        bool delegation_offered;     /* the backend has an iommufd to hand over */
        bool delegation_granted;
} SessionFeatures;

/*
 * What the host offers this session: the backend, what the kernel was probed to know at start,
 * with has_device the IOMMU behind device_id (NoSuchObject when the session holds none such),
 * and what the policy grants the principal of it.
 */
int session_get_features(Session *s, bool has_device, uint32_t device_id, SessionFeatures *ret,
                         BrokerError *err);

/*
 * Dirty tracking of an address space created with it: on or off for every page table of it
 * (turning it on starts from a clean snapshot).  NotSupported "dirty-tracking" for an address
 * space created without it.
 */
int session_set_dirty_tracking(Session *s, uint32_t ioas_id, bool enabled, BrokerError *err);

/* The largest bitmap one call writes: 64 MiB, 2 TiB of IOVA at 4 KiB a bit. */
#define SESSION_DIRTY_BITMAP_MAX (UINT64_C(64) << 20)

typedef struct SessionDirtyArgs {
        uint32_t ioas_id;
        uint64_t iova;
        uint64_t length;
        uint64_t page_size;       /* a power of two; iova and length are multiples of it */
        bool clear;               /* the bits read are cleared (ReadDirtyBitmap) */
        int bitmap_fd;            /* borrowed: a writable memfd of at least the bitmap's bytes */
} SessionDirtyArgs;

/* How many bytes the bitmap of length bytes at page_size takes (whole 64-bit words). */
uint64_t session_dirty_bitmap_bytes(uint64_t length, uint64_t page_size);
/*
 * Writes the dirty bitmap of [iova, iova + length) into the first bytes of bitmap_fd: bit i
 * (bit i % 64 of little-endian 64-bit word i / 64) for the page_size bytes at iova + i *
 * page_size; what is not mapped reads clean.  Tracking must be on.  iommud maps the client's
 * memfd and the kernel writes into it: nothing is copied.  The memfd's pages iommud faults
 * are charged to its memory cgroup, so the bitmap's bytes count against the principal's
 * pinned-memory quota while the call runs (QuotaExceeded pinnedBytes, nothing read).
 */
int session_read_dirty_bitmap(Session *s, const SessionDirtyArgs *args, BrokerError *err);
/*
 * Unmap that also returns the dirty bits of what it unmaps: read into bitmap_fd (without
 * clearing, so a refused unmap loses nothing) just before the unmap, as iommufd has no
 * unmap that reads them.  args->clear is ignored.
 */
int session_unmap_dirty(Session *s, const SessionDirtyArgs *args, uint64_t *ret_unmapped,
                        BrokerError *err);

/*
 * A VFIO device fd of an attached device for the client, where it cannot open one
 * itself (the legacy VFIO API, whose group file iommud holds).  Owned by the caller.
 */
int session_device_fd(Session *s, uint32_t device_id, int *ret_fd, BrokerError *err);

/*
 * A fresh iommufd for the client (owned by the caller), where the policy allows delegation
 * (PolicyDenied step "delegation"), the backend has one and can switch it to per-process
 * accounting (IOMMU_OPTION_RLIMIT_MODE 1: what the client pins is charged to the process that
 * maps, against its RLIMIT_MEMLOCK; NotSupported "delegation" otherwise), and the session holds
 * nothing and has not delegated before (ObjectInUse kind "session").  iommud keeps no copy.
 * From then on every method that would act on the session's iommufd answers NotSupported
 * {feature: "mediation"}; the session stays, and counts as a connection.
 */
int session_delegate(Session *s, int *ret_fd, BrokerError *err);
bool session_is_delegated(const Session *s);
/*
 * Whether the session holds nothing a client could lose: no device, address space, mapping,
 * pinned byte, PASID or claim, and no delegated iommufd.  Such a session may be closed when
 * its connection idles.
 */
bool session_holds_nothing(const Session *s);

/*
 * Another connection of the client joins s (JoinSession) or leaves it while
 * others stay: the connection is counted to s and its principal.  A session
 * counts the connection that made it from session_new() until session_free().
 * session_add_connection() is QuotaExceeded (connections) at the principal's
 * quota.  session_move_connection() moves one connection of a session being
 * given up to another session of the same principal: the principal's total
 * does not change.
 */
int session_add_connection(Session *s, BrokerError *err);
void session_remove_connection(Session *s);
int session_move_connection(Session *from, Session *to);

void session_get_info(const Session *s, SessionInfo *ret);

typedef struct SessionUsage {
        const char *resource;     /* BROKER_RESOURCE_* */
        uint64_t used;            /* this session's share */
        uint64_t principal_used;  /* every session of the principal, on every transport */
        uint64_t limit;           /* on principal_used, or on used unless per_principal */
        bool per_principal;       /* false: faultQueueDepth, a limit of each session */
} SessionUsage;

#define SESSION_USAGE_MAX 7

/*
 * The quotas of info as rows, in the order every transport reports them, so
 * that the socket and the bus cannot list different resources.  Returns the
 * number of rows.
 */
size_t session_usage_rows(const SessionInfo *info, SessionUsage ret[static SESSION_USAGE_MAX]);

/*
 * Re-checks every device against the host's current policy and topology (after
 * a reload or hotplug) and refreshes the quotas.  Devices no longer granted are
 * detached and unbound, and address spaces left without any device are torn
 * down.  Returns the number of devices dropped; each one is reported through
 * on_drop (may be NULL) so the caller can tell the client and log.
 */
int session_revalidate(Session *s,
                       void (*on_drop)(Session *s, const char *device, const char *reason,
                                       void *userdata),
                       void *userdata);

/*
 * The device's request channel (see BackendOps.device_request_fd): readable when the host
 * wants the device back.  Owned by the session until the device is unbound (on_device says
 * when).  -EOPNOTSUPP where the backend or the device has none.
 */
int session_device_request_fd(Session *s, uint32_t device_id, int *ret_fd);
/*
 * Gives the device back to the host: detaches it, unbinds its PASIDs, answers its pending
 * faults "invalid", destroys an address space only it used and releases the session's
 * file of it.  Later calls naming it fail with DeviceGone carrying reason.  -ENOENT when
 * the session holds no such device.
 */
int session_release_device(Session *s, uint32_t device_id, const char *reason);

/* The id under which the session holds device name, -ENOENT when it does not. */
int session_device_id(const Session *s, const char *name, uint32_t *ret);
/* The name of the device this session knows as device_id, or NULL. */
const char *session_device_name(const Session *s, uint32_t device_id);

/*
 * Attaches a PASID of a device to an address space (or to a nested stage 1
 * over it).  Checks, in order: the device has PASIDs (NotSupported "pasid"),
 * the PASID lies in the policy's range for the principal and the device's
 * width (PolicyDenied step "pasid" / InvalidParameter "pasid"), no session
 * of the host uses it (ObjectInUse kind "pasid"), the pasids quota, fault
 * delivery and nesting are available (NotSupported "fault-queue",
 * "nesting"), the stage-1 data has the type and length the IOMMU takes
 * (InvalidParameter "stage1").  PASIDs are unique host-wide, so one PASID
 * never names two sessions' address spaces.
 */
int session_bind_pasid(Session *s, const SessionBindPasidArgs *args, uint32_t *ret_pasid,
                       uint32_t *ret_hwpt_id, BrokerError *err);
/* Detaches and frees what BindPASID made; its pending faults are answered by the kernel. */
int session_unbind_pasid(Session *s, uint32_t device_id, uint32_t pasid, BrokerError *err);
size_t session_n_pasids(const Session *s);

/*
 * Starts streaming the faults of device_id (FAULT_WATCH_ALL: every device) to
 * fn.  The watch belongs to the caller (fault_watch_free() when the client's
 * stream ends) and must be freed before the session.  ObjectInUse when that
 * device (or all) is watched already.
 */
int session_watch_faults(Session *s, uint32_t device_id, FaultDeliverFn fn, void *userdata,
                         FaultWatch **ret, BrokerError *err);
/* code: FAULT_RESPONSE_SUCCESS or FAULT_RESPONSE_INVALID. */
int session_respond_fault(Session *s, uint64_t cookie, uint32_t code, BrokerError *err);
/* The session's fault stream, NULL before it has one (for monitors and tests). */
FaultStream *session_fault_stream(const Session *s);

/* Counts for tests and the manager's status line; devices handed over as fds count. */
size_t session_n_devices(const Session *s);
size_t session_n_address_spaces(const Session *s);
