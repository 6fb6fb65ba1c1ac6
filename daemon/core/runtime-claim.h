/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Runtime claims: the node-local half of a Kubernetes DRA driver.  An administrator (the
 * driver's kubelet plugin) prepares a claim for a principal: the devices get the full policy
 * decision for that uid (and unit) as if it took their files (OpenDevices, so "delegation"
 * applies), are held in the host's claim table by the claim (DeviceBusy to everyone else names
 * it), and a CDI spec of kind CDI_CLAIM_KIND with one device named by the claim id is written
 * to DIR/iommud-claim-ID.json for the runtime to resolve.  Unpreparing releases the devices and
 * removes the spec.  Both are idempotent, as a driver retries them.
 *
 * The table is recorded in the restart state (runtime_claims_to_json()) and rebuilt from it
 * (runtime_claims_restore()); the spec files stay where they are across a restart.
 */

#include <stdbool.h>
#include <sys/types.h>

#include <json-c/json.h>

#include "broker-errors.h"
#include "macros.h"
#include "session.h"

/* Kubernetes names a claim by its UID, 36 characters. */
#define RUNTIME_CLAIM_ID_MAX 64

/* The errors only claims give (the rest are the session core's). */
#define RUNTIME_CLAIM_ERROR_CONFLICT "org.iommud.Manager.ClaimConflict" /* claimId, reason */
#define RUNTIME_CLAIM_ERROR_FAILED "org.iommud.Manager.ClaimFailed"     /* claimId, reason */
#define RUNTIME_CLAIM_ERROR_INVALID_ID "org.iommud.Manager.InvalidClaimId" /* claimId, reason */

typedef struct RuntimeClaims RuntimeClaims;

/* Whom a claim's devices are granted to. */
typedef struct RuntimeClaimPrincipal {
        uid_t uid;
        gid_t gid;              /* GID_INVALID: the primary group of uid's account */
        const char *unit;       /* NULL: none */
} RuntimeClaimPrincipal;

/* One prepared claim, as runtime_claims_get() shows it. */
typedef struct RuntimeClaimInfo {
        const char *id;
        uid_t uid;
        gid_t gid;
        const char *unit;
        const char *const *devices;
        size_t n_devices;
        const char *spec_path;
        const char *mode;       /* "iommufd" or "legacy" */
} RuntimeClaimInfo;

/* Claims on host, whose specs go to cdi_dir (copied). */
int runtime_claims_new(RuntimeClaims **ret, SessionHost *host, const char *cdi_dir);
/*
 * Releases every hold.  The spec files go too, unless the host is preserving its state for the
 * next daemon (which restores the claims).  Accepts NULL.
 */
RuntimeClaims *runtime_claims_free(RuntimeClaims *t);
DEFINE_TRIVIAL_CLEANUP_FUNC(RuntimeClaims *, runtime_claims_free);

/* [A-Za-z0-9] ([A-Za-z0-9_.-]* [A-Za-z0-9])?, at most RUNTIME_CLAIM_ID_MAX characters. */
bool runtime_claim_id_is_valid(const char *id);

/*
 * Prepares claim id.  The same id with the same devices (in any order) and principal again
 * returns 0 and changes nothing but writing its spec again; a new claim returns 1.  Errors:
 * InvalidClaimId (syntax), InvalidParameter "devices" (none, too many, twice), ClaimConflict
 * for the id prepared with other devices or another principal, NoSuchObject for an unknown
 * device or user, PolicyDenied naming the step, DeviceBusy naming the holder, QuotaExceeded,
 * ClaimFailed when a device has no node to give or the spec cannot be written.  Nothing is held when it fails.
 */
int runtime_claims_prepare(RuntimeClaims *t, const char *id, const char *const *devices,
                           size_t n, const RuntimeClaimPrincipal *p, BrokerError *err);
/* Releases claim id and removes its spec; 1 when it was prepared, 0 when not (no error). */
int runtime_claims_unprepare(RuntimeClaims *t, const char *id, BrokerError *err);

size_t runtime_claims_n(const RuntimeClaims *t);
/* Claim i, in the order they were prepared; -ENOENT past the end. */
int runtime_claims_get(const RuntimeClaims *t, size_t i, RuntimeClaimInfo *ret);

/*
 * After a policy reload or a topology change: each device the policy no longer lets its claim's
 * principal take (or that left the host) is released with a warning, and the claim's spec is
 * written again without it; a claim left with no device is dropped and its spec removed.
 * Returns how many devices were released.
 */
size_t runtime_claims_revalidate(RuntimeClaims *t);

/* Every claim as a JSON array for the restart state. */
int runtime_claims_to_json(const RuntimeClaims *t, json_object **ret);
/*
 * Prepares each claim of a runtime_claims_to_json() array again (the policy in force decides
 * once more); a claim that is refused now is dropped, its spec removed, and on_drop told why.
 * Returns how many were restored.
 */
size_t runtime_claims_restore(RuntimeClaims *t, json_object *claims,
                              void (*on_drop)(const char *id, const char *why, void *userdata),
                              void *userdata);
