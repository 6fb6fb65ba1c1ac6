/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Principals: who a policy decision is for.
 *
 * A connected client is the principal its credentials say: uid, gid, the
 * supplementary groups of the process and its systemd unit
 * (principal_from_creds()).  A principal an administrator names by uid
 * ("explain for uid 1000", on D-Bus, on the socket or offline with iommud
 * --explain --as-uid) is that user's account as it would log in: its primary
 * group and every group the account database (NSS) makes it a member of
 * (principal_account_resolve()).  Nothing is guessed: a uid without an account
 * has no known groups and is an error, unless the caller names the primary
 * group itself.
 */

#include <sys/types.h>

#include "broker-errors.h"
#include "peer-creds.h"
#include "policy.h"

/* A principal resolved from the account database; owns the group list it points to. */
typedef struct PrincipalAccount {
        Principal principal; /* .groups points into groups, .unit is NULL */
        gid_t *groups;
} PrincipalAccount;

#define PRINCIPAL_ACCOUNT_INIT ((PrincipalAccount){})

/* The principal of a connected client; ret points into c, which must outlive it. */
int principal_from_creds(const PeerCreds *c, Principal *ret);

/*
 * The principal of uid's account: primary group gid (GID_INVALID: the account's own)
 * and the groups getgrouplist() gives for that primary group, which include it.  A
 * uid without an account gives -ESRCH and NoSuchObject {kind: "user", id: uid} when
 * gid is GID_INVALID, else the principal {uid, gid} without supplementary groups.
 * Clear *ret with principal_account_done().
 */
int principal_account_resolve(uid_t uid, gid_t gid, PrincipalAccount *ret, BrokerError *err);
/* Frees what ret holds and resets it; accepts NULL and a cleared account. */
void principal_account_done(PrincipalAccount *a);
