/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The policy engine: what iommud allows, to whom, and why.
 *
 * Configuration is JSON, merged like systemd drop-ins: every *.json in the
 * vendor directory (/usr/lib/iommud/policy.d), then the admin directory
 * (/etc/iommud/policy.d), each in lexical order, then /etc/iommud/policy.json;
 * later files win.  Errors carry file:line:column and the JSON path of the
 * offending value.
 *
 * A decision is the ordered list of steps from DESIGN.md, each with a verdict
 * and a sentence a person understands.  The policy knows nothing of sockets or
 * ioctls: the broker supplies the current holder of a device and the usage
 * that quotas are checked against.
 */

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include <json-c/json.h>

#include "error.h"
#include "topology.h"

typedef struct Policy Policy;

typedef struct IovaWindow {
        uint64_t start;
        uint64_t last;           /* inclusive */
} IovaWindow;

/* Who is asking: from SO_PEERCRED, SO_PEERGROUPS and the process's cgroup. */
typedef struct Principal {
        uid_t uid;
        gid_t gid;
        const gid_t *groups;     /* supplementary groups */
        size_t n_groups;
        const char *unit;        /* systemd unit, e.g. "qemu-vm1.scope"; NULL when none */
        const char *unit_refused; /* why the unit its cgroup names was not taken; NULL: it was */
} Principal;

typedef enum PolicyStep {
        POLICY_STEP_MATCH,       /* matched by an allow rule and no deny rule */
        POLICY_STEP_DRIVER,      /* bound to a VFIO driver with a cdev */
        POLICY_STEP_GROUP,       /* group viable: every other member unbound, vfio, pci-stub or a bridge */
        POLICY_STEP_REGIONS,     /* no forbidden reserved region (direct by default) */
        POLICY_STEP_PRINCIPAL,   /* the principal is granted the device or its pool */
        POLICY_STEP_EXCLUSIVE,   /* not held by another session */
        POLICY_STEP_QUOTA,       /* quota left */
        POLICY_STEP_DELEGATION,  /* may take the device's fds itself (counts for a handoff only) */
        _POLICY_STEP_MAX,
} PolicyStep;

typedef enum PolicyVerdict {
        POLICY_PASS,
        POLICY_FAIL,
        POLICY_SKIP,             /* not evaluated (no principal given, or an earlier step failed) */
} PolicyVerdict;

typedef struct PolicyDecisionStep {
        PolicyStep step;
        PolicyVerdict verdict;
        /*
         * "group 14 is not viable: 0000:00:1f.3 is bound to host driver snd_hda_intel".
         * Never NULL in a decision from policy_decide().  The reasons of one
         * decision share one allocation: release them only with
         * policy_decision_clear(), never with free().
         */
        char *reason;
        /*
         * The devices the reason is about (the members that make a group not viable, or its
         * other members), all of them where the sentence names only the first few:
         * n_devices names, each NUL-terminated, one after the other in the reasons'
         * allocation.  NULL when the step is about no other device.
         */
        const char *devices;
        size_t n_devices;
} PolicyDecisionStep;

typedef struct PolicyDecision {
        bool allowed;
        PolicyStep failed_step;  /* valid when !allowed */
        PolicyDecisionStep steps[_POLICY_STEP_MAX];
        size_t n_steps;
        char *pool;              /* the pool the grant came from, NULL if none */
} PolicyDecision;

/* Every limit a client can push; 0 means "none allowed", UINT64_MAX unlimited. */
typedef struct PolicyQuotas {
        uint64_t pinned_bytes;
        uint64_t address_spaces;
        uint64_t mappings;
        uint64_t devices;
        uint64_t pasids;
        uint64_t fault_queue_depth;
        uint64_t connections;    /* per principal (uid) */
} PolicyQuotas;

/* Daemon-wide transport limits. */
typedef struct PolicyLimits {
        uint64_t max_message_bytes;
        uint64_t max_fds_per_message;
        uint64_t max_queued_output_bytes;
        uint64_t max_connections;         /* total */
        uint64_t max_connections_per_uid; /* caps every principal's connections quota */
        uint64_t reserved_connections;    /* of max_connections, for root only */
        uint64_t idle_timeout_ms;         /* a connection holding nothing, making no call */
        uint32_t socket_mode;             /* mode of the broker socket when iommud binds it */
        uint64_t fault_response_timeout_ms;
        uint64_t session_reclaim_grace_ms;
        uint64_t device_release_timeout_ms; /* how long a holder may keep a device the host wants */
} PolicyLimits;

/* The broker's view of who holds what, for the exclusivity and quota steps. */
typedef struct PolicyRuntime {
        /* Returns a description of the holder ("uid 1000 (qemu-vm1.scope)") or NULL if free. */
        const char *(*device_holder)(void *userdata, const TopoDevice *d);
        void *userdata;
        /* Usage of the principal asking; NULL skips the quota step. */
        const PolicyQuotas *usage;
        /*
         * The device is asked for as fds the client keeps (OpenDevices, a claim with device
         * nodes): the delegation step fails without a grant that allows it.  Otherwise it only
         * says whether the principal could, and never refuses.
         */
        bool handoff;
} PolicyRuntime;

typedef struct PolicyPaths {
        const char *vendor_dir;  /* NULL: IOMMUD_VENDOR_POLICY_DIR */
        const char *admin_dir;   /* NULL: IOMMUD_POLICY_DIR */
        const char *file;        /* NULL: IOMMUD_POLICY_FILE */
} PolicyPaths;

/* One problem found while loading, "FILE:LINE:COL: PATH: message". */
typedef struct PolicyDiagnostic {
        char *file;
        unsigned line, column;
        char *json_path;         /* e.g. "rules[2].match.vendor" */
        char *message;
} PolicyDiagnostic;

typedef struct PolicyDiagnostics {
        PolicyDiagnostic *items;
        size_t n;
} PolicyDiagnostics;

void policy_diagnostics_clear(PolicyDiagnostics *d);
/*
 * Prints one "FILE:LINE:COL: PATH: message" line per diagnostic (for
 * "iommud --check-config").  A problem about a whole file (unreadable) prints
 * as "FILE: message"; one about the top-level value omits the path.  Returns 0,
 * or -EIO when writing failed.
 */
int policy_diagnostics_print(const PolicyDiagnostics *d, FILE *f);

/*
 * Loads and validates the merged configuration.  Missing directories/files are
 * fine (built-in defaults apply); any invalid value fails with -EINVAL and
 * every problem found listed in diags (may be NULL).
 */
int policy_load(Policy **ret, const PolicyPaths *paths, PolicyDiagnostics *diags, Error *err);
/* Parses one JSON text on top of the defaults (for tests and fuzzing). */
int policy_load_string(Policy **ret, const char *filename, const char *text, size_t len,
                       PolicyDiagnostics *diags, Error *err);
Policy *policy_free(Policy *p);
DEFINE_TRIVIAL_CLEANUP_FUNC(Policy *, policy_free);

/*
 * Checks a loaded policy against the host it is for, t: an IOVA window that overlaps a
 * reserved region (any type but direct-relaxable) of the IOMMU group of a device its grant
 * gives, or on an x86 host (an Intel or AMD IOMMU in t) the MSI window 0xfee00000-0xfeefffff
 * that every group reserves, can never be attached to: the kernel refuses to attach a device
 * whose group reserves addresses inside the allowed IOVAs.  Each such window is a diagnostic at
 * its file:line:column in diags (may be NULL).  Returns -EINVAL when there is one, -ENOMEM, or
 * 0.  What a device hotplugged later reserves is its attach's to refuse.
 */
int policy_check_host(const Policy *p, const Topology *t, PolicyDiagnostics *diags);

/* Increases on every successful load; the daemon reports it. */
uint64_t policy_generation(const Policy *p);

/*
 * Decides whether principal may use device d.  principal may be NULL: then the
 * device-only steps (match, driver, group, regions) are evaluated and the
 * rest skipped ("eligible").  rt may be NULL (no holder, no quota step).
 *
 * Every step that can be evaluated is, even after an earlier one failed, so
 * that "explain" shows every problem at once; allowed is false when any step
 * failed and failed_step names the first that did.  ret->n_steps is always
 * _POLICY_STEP_MAX and steps[i].step == i.  A step is SKIP when it cannot be
 * evaluated: regions without an IOMMU group; principal, exclusive, quota and
 * delegation without a principal; exclusive without rt->device_holder; quota
 * without rt->usage or when no grant gives the principal this device;
 * delegation when no grant gives the principal this device, or, unless
 * rt->handoff, when none that does allows delegation.  The quota step checks
 * the device count (usage->devices against the principal's devices quota).
 * The delegation step passes when a grant that names the principal and gives
 * it d has "delegation": true.  t may be NULL: the decision only follows d's
 * own links.
 */
int policy_decide(const Policy *p, const Topology *t, const TopoDevice *d,
                  const Principal *principal, const PolicyRuntime *rt, PolicyDecision *ret);
void policy_decision_clear(PolicyDecision *d);
int policy_decision_to_json(const PolicyDecision *d, json_object **ret);
/*
 * Prints a readable explanation: a header naming dev (may be NULL) and the
 * outcome, then one line per step with a mark (✓ pass, ✗ fail, - skip), the
 * step name and its reason.  Returns 0, or -EIO when writing failed.
 */
int policy_decision_print(const PolicyDecision *d, const TopoDevice *dev, FILE *f);

const char *policy_step_to_string(PolicyStep s);       /* "match", "driver", "group", ... */
const char *policy_verdict_to_string(PolicyVerdict v); /* "pass", "fail", "skip" */

/*
 * Per-principal settings, merged from every grant that names the principal.
 *
 * policy_quotas: for each quota the largest value among those grants, a grant
 * that does not set a quota contributing the policy's default ("quotas" at the
 * top level).  A principal no grant names gets 0 for everything except
 * connections (the default), so it may still connect and ask.  principal NULL
 * gives the defaults.  connections is at most limits.max_connections_per_uid.
 */
void policy_quotas(const Policy *p, const Principal *principal, PolicyQuotas *ret);
const PolicyLimits *policy_limits(const Policy *p);
/*
 * IOVA windows the principal may map into on device d (d may be NULL: any
 * device); n == 0 means no restriction.  The first grant in policy order that
 * names the principal and gives it d decides.  -EPERM when there is none.  The
 * array belongs to the policy.
 */
int policy_iova_windows(const Policy *p, const Principal *principal, const TopoDevice *d,
                        const IovaWindow **ret, size_t *ret_n);
/*
 * PASID range the principal may bind, inclusive: the smallest range covering
 * the ranges of every grant that names it (1-0xfffff for a grant without
 * "pasids").  Without a grant the range is empty (*ret_min > *ret_max).
 */
void policy_pasid_range(const Policy *p, const Principal *principal, uint32_t *ret_min,
                        uint32_t *ret_max);
/* True when some grant that names the principal has "delegation": true. */
bool policy_allows_delegation(const Policy *p, const Principal *principal);
/*
 * True when some grant that names the principal and gives it d has "delegation": true: it
 * may take d's fds itself (the delegation step of a decision).
 */
bool policy_allows_delegation_of(const Policy *p, const Principal *principal,
                                 const TopoDevice *d);
/* False when some grant that names the principal has "dirty-tracking": false. */
bool policy_allows_dirty_tracking(const Policy *p, const Principal *principal);
/* True when some grant that names the principal and gives it d has "open-on-behalf": true. */
bool policy_allows_open_on_behalf(const Policy *p, const Principal *principal,
                                  const TopoDevice *d);

