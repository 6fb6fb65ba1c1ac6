/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Explain: the policy decision for one device and one principal, made the same
 * way whoever asks.  A session about itself (org.iommud.Broker.ExplainDevice,
 * and every AttachDevice), an administrator about a uid (org.iommud.Manager and
 * org.iommud1 ExplainDevice) and iommud --explain offline all come here, so one
 * question gets one answer on every transport: the same principal (see
 * principal.h), the same holder of a device, the same errors.
 */

#include <sys/types.h>

#include "broker-errors.h"
#include "peer-creds.h"
#include "policy.h"
#include "session.h"
#include "topology.h"

/* What a decision is made against. */
typedef struct ExplainScope {
        const Policy *policy;
        const Topology *topology;
        /* Whose claims make a device busy; NULL offline: the exclusive step is skipped. */
        SessionHost *host;
        /* The session asking, whose own claims do not make a device busy; NULL: none. */
        const Session *self;
        /* Usage the quota step checks; NULL: the quota step is skipped. */
        const PolicyQuotas *usage;
        /* The device is asked for as fds (OpenDevices): the delegation step may refuse it. */
        bool handoff;
} ExplainScope;

/* The daemon's current policy and topology, and the claims of every session. */
#define EXPLAIN_SCOPE_HOST(h)                                                                      \
        ((ExplainScope){ .policy = (h)->policy, .topology = (h)->topology, .host = (h) })

/* Whom an administrator asks about. */
typedef struct ExplainSubject {
        uid_t uid;                /* UID_INVALID: nobody, only the device's own steps */
        gid_t gid;                /* GID_INVALID: the primary group of uid's account */
        const char *unit;         /* the systemd unit to decide for; NULL: none */
        /*
         * Who asks, when a client does: asking about its own uid (with neither gid nor unit)
         * it is decided exactly as its own new session would be, with its credentials'
         * groups and unit and nothing in use yet.  NULL: uid's account decides.
         */
        const PeerCreds *caller;
} ExplainSubject;

#define EXPLAIN_SUBJECT_UID(u) ((ExplainSubject){ .uid = (u), .gid = GID_INVALID })

/*
 * The decision for device and principal (NULL: the device's own steps only) in
 * scope.  -ENODEV with NoSuchObject {kind: "device"} when the topology has no such
 * device.  Clear *ret with policy_decision_clear().
 */
int explain_device(const ExplainScope *scope, const char *device, const Principal *principal,
                   PolicyDecision *ret, BrokerError *err);
/*
 * The decision for device and the principal who describes (see ExplainSubject):
 * an unknown device first, then an unknown account (-ESRCH, NoSuchObject {kind:
 * "user"}), then the decision.
 */
int explain_device_for(const ExplainScope *scope, const char *device, const ExplainSubject *who,
                       PolicyDecision *ret, BrokerError *err);
/*
 * The runtime policy_decide() gets from scope: who holds a device (when scope has a
 * host) and the usage.  ret keeps a pointer to scope, which must outlive it.
 */
int explain_runtime(const ExplainScope *scope, PolicyRuntime *ret);
