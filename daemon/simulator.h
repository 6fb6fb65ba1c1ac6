/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * org.iommud.Simulator: fault injection and model counters of backend-sim,
 * served only when the daemon runs on a simulated host, so tests and demos
 * can drive I/O page faults through the real daemon.
 */

#include "backend.h"
#include "varlink-server.h"

#define SIMULATOR_INTERFACE "org.iommud.Simulator"

/* The interface table (for the IDL conformance test). */
const VarlinkInterface *simulator_interface_get(void);

/* Registers the interface on s for backend b (a backend-sim; -EINVAL otherwise). */
int simulator_attach(VarlinkServer *s, Backend *b);
