/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The org.iommud.Broker Varlink methods: decode the JSON parameters (with an
 * InvalidParameter that names the value for anything malformed), call the
 * session core, encode the reply or the protocol error with its IDL
 * parameters.  One session per connection, made and freed through the
 * server's connection hooks.
 */

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
