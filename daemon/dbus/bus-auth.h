/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Who is calling over the bus, and may they: the caller's credentials from
 * the bus driver (GetConnectionCredentials: uid, supplementary groups, pid and,
 * where the bus has it, a pidfd, as recorded when it connected; gid and
 * systemd unit from its /proc entry under the same checks as a socket's peer,
 * see peer_creds_from_source(), against the time the call arrived), then, for
 * a privileged action, polkit's
 * org.freedesktop.PolicyKit1.Authority.CheckAuthorization with the caller's
 * bus name as subject.  Both are asynchronous calls on the same connection;
 * root is allowed without asking polkit.  Interactive authorization is
 * requested only when the caller's message allows it; a challenge the caller
 * did not allow becomes InteractiveAuthorizationRequired.
 */

#include <systemd/sd-bus.h>

#include "macros.h"
#include "peer-creds.h"

#define BUS_POLKIT_ACTION_OPEN_SESSION "org.iommud1.open-session"
#define BUS_POLKIT_ACTION_RELOAD "org.iommud1.reload"
#define BUS_POLKIT_ACTION_MANAGE "org.iommud1.manage"
#define BUS_POLKIT_ACTION_CLAIM "org.iommud1.claim"

typedef struct BusAuth BusAuth;

/*
 * The outcome: r > 0 allowed (creds is the caller's, to take with TAKE_PTR),
 * r == 0 denied, r < 0 the check itself failed; error then holds what to
 * reply (AccessDenied, InteractiveAuthorizationRequired, ...).  The BusAuth
 * may be freed from inside the callback.
 */
typedef void (*BusAuthFn)(BusAuth *a, int r, const sd_bus_error *error, PeerCreds **creds,
                          void *userdata);

/*
 * Starts the check for the sender of call.  action NULL: credentials only;
 * a caller whose uid is exempt_uid (UID_INVALID: nobody) needs no polkit
 * check either, e.g. a user asking about itself.  The callback always runs
 * from the event loop, never from this call.
 */
int bus_auth_start(BusAuth **ret, sd_bus *bus, sd_bus_message *call, const char *action,
                   uid_t exempt_uid, const char *proc_root, BusAuthFn cb, void *userdata);
/* Cancels a pending check (the callback will not run).  Accepts NULL. */
BusAuth *bus_auth_free(BusAuth *a);
DEFINE_TRIVIAL_CLEANUP_FUNC(BusAuth *, bus_auth_free);

sd_bus_message *bus_auth_get_call(BusAuth *a);
