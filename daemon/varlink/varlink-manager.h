/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * org.iommud.Manager: administration on the broker's socket (status, the
 * session list, ExplainDevice for another principal, policy reloads, a
 * stream of events and runtime claims for container runtimes).  Only uid 0 and the daemon's own user may call it.
 *
 * Events reach Monitor() subscribers through manager_varlink_emit(); session
 * events come from the SessionHost's session hook, which the manager fans out
 * to manager_varlink_session_event().
 */

#include <stdbool.h>

#include <json-c/json.h>

#include "macros.h"
#include "runtime-claim.h"
#include "session.h"
#include "varlink-server.h"

typedef struct ManagerVarlink ManagerVarlink;

typedef struct ManagerVarlinkConfig {
        SessionHost *host;              /* must outlive the object */
        const char *topology;           /* the simulated topology's name; NULL for the kernel */
        const char *backend_reason;     /* which kernel backend runs and why; NULL with sim */
        /*
         * Reloads the policy.  Returns 0, or a negative errno with every
         * diagnostic as a "FILE:LINE:COL: PATH: message" string in
         * *ret_diagnostics (a NULL-terminated array the caller frees).
         */
        int (*reload_policy)(void *userdata, char ***ret_diagnostics);
        /* Runtime claims (PrepareClaim); NULL: those methods are not implemented. */
        RuntimeClaims *claims;
        /* Told after a claim was prepared or released, before the reply: the state is saved. */
        void (*claims_changed)(void *userdata);
        void *userdata;
} ManagerVarlinkConfig;

int manager_varlink_new(ManagerVarlink **ret, const ManagerVarlinkConfig *cfg);
/* Ends every Monitor() stream.  Accepts NULL. */
ManagerVarlink *manager_varlink_free(ManagerVarlink *mv);
DEFINE_TRIVIAL_CLEANUP_FUNC(ManagerVarlink *, manager_varlink_free);

/* Registers org.iommud.Manager on s, with mv as its handlers' userdata. */
int manager_varlink_attach(ManagerVarlink *mv, VarlinkServer *s);

/*
 * Sends {type, message, ...payload} to every Monitor() subscriber.  payload
 * (may be NULL) is taken; its members (session, uid, device, generation) are
 * copied into the event.  Subscribers that are gone or too slow are dropped.
 */
void manager_varlink_emit(ManagerVarlink *mv, const char *type, const char *message,
                          json_object *payload);
/*
 * A session's lifetime event: gives it an id when it opens and tells
 * subscribers session-opened / session-closed (the latter once the session
 * released everything).  Accepts NULL.
 */
void manager_varlink_session_event(ManagerVarlink *mv, Session *s, SessionEvent event);
/* The id ListSessions() and the events give s; 0 when it has none.  Accepts NULL. */
uint64_t manager_varlink_session_id(const ManagerVarlink *mv, const Session *s);
size_t manager_varlink_n_subscribers(const ManagerVarlink *mv);
/* The interface table, for conformance tests against the IDL. */
const VarlinkInterface *manager_varlink_interface(const ManagerVarlink *mv);
