/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The org.iommud.Broker Varlink methods: decode the JSON parameters (with an
 * InvalidParameter that names the value for anything malformed), call the
 * session core, encode the reply or the protocol error with its IDL
 * parameters.  One session per connection, made and freed through the
 * server's connection hooks.
 */

#include <stdbool.h>
#include <stdint.h>

#include <event2/event.h>
#include <json-c/json.h>

#include "macros.h"
#include "session.h"
#include "varlink-server.h"

typedef struct Broker Broker;

/* host, dev_root and proc_root must outlive the broker. */
int broker_new(Broker **ret, SessionHost *host, const char *dev_root, const char *proc_root);
Broker *broker_free(Broker *b);
DEFINE_TRIVIAL_CLEANUP_FUNC(Broker *, broker_free);

/* The org.iommud.Broker method table (for the IDL conformance test). */
const VarlinkInterface *broker_interface_get(void);

/*
 * Serves one end of a new socketpair as a broker connection whose session
 * carries creds instead of the socket's own credentials (a client that
 * authenticated over another transport, such as D-Bus), and returns the other
 * end.  creds is taken, also on failure.
 */
int broker_open_connection(Broker *b, VarlinkServer *s, PeerCreds *creds, int *ret_fd);

/* Registers the interface and the connection hooks on s (userdata: the broker). */
int broker_attach(Broker *b, VarlinkServer *s);

/*
 * Restart survival.  changed() runs whenever the state a restarted daemon
 * needs has changed (before the reply that reports it is sent, and when a
 * session ends); restored sessions nobody reclaims within reclaim_grace_ms
 * are torn down on base.
 */
void broker_set_lifecycle(Broker *b, struct event_base *base, uint64_t reclaim_grace_ms,
                          void (*changed)(void *userdata), void *userdata);
/* {serial, token, principal, session}: the session's record for the state memfd. */
int broker_session_to_json(const Session *s, json_object **ret);
/*
 * One row of usage as org.iommud.Broker's and org.iommud.Manager's Usage type say: resource,
 * used (the session's), principalUsed (its uid's, where the limit is the principal's) and
 * limit (absent when unlimited).
 */
json_object *broker_usage_json(const SessionUsage *u);

typedef struct VarlinkIdl VarlinkIdl;
/*
 * Whether e is an error org.iommud.Broker declares (or org.varlink.service.InvalidParameter)
 * with exactly its parameters: every required one, no other, each of the declared type.
 * -EBADMSG naming the difference.  Every error the broker sends is held to it.
 */
int broker_error_check_idl(const VarlinkIdl *idl, const BrokerError *e, Error *err);
/* e's parameters as a JSON object, unchecked (for an interface of other errors); NULL: OOM. */
json_object *broker_error_params_json(const BrokerError *e);
/* The number naming the session's fds in the fd store ("s<serial>-..."). */
uint64_t broker_session_serial(const Session *s);
/*
 * Takes over a restored session (no connection yet) under its old serial and
 * token; JoinSession(token) reclaims it, the grace timer ends it otherwise.
 */
int broker_adopt_session(Broker *b, Session *s, uint64_t serial, const char *token);
/*
 * Frees the sessions the broker still holds when no connection is left:
 * restored sessions nobody reclaimed, which no disconnect would ever free.
 * For shutdown, after the server is freed and before the session host is.
 */
void broker_release_sessions(Broker *b);

/*
 * Tells every WatchEvents() stream of the session about a device it lost (kind
 * "removed", "rebound", "revoked" or "released") or is asked to give back
 * ("release_requested", with its deadline in µs of CLOCK_REALTIME; else 0);
 * device_id UINT32_MAX when unknown.
 */
void broker_session_event(Session *s, const char *kind, const char *device, uint32_t device_id,
                          const char *reason, uint64_t deadline_usec);
