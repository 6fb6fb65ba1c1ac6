/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * org.iommud.Simulator: control of the simulated host, served only when the
 * daemon runs on one (iommud --sim), so tests and demos can drive I/O page
 * faults and hotplug through the real daemon.  Fault injection and the
 * model's counters go straight to backend-sim; hotplug changes go to the
 * manager through SimulatorHooks, which changes the model and runs its
 * hotplug path.
 */

#include <sys/types.h>

#include "backend.h"
#include "error.h"
#include "varlink-server.h"

#define SIMULATOR_INTERFACE "org.iommud.Simulator"

typedef struct SimulatorHooks {
        Backend *backend; /* a backend-sim: faults are injected into it */
        /* -ENODEV (with err) when the simulated host has no such device. */
        int (*set_driver)(void *userdata, const char *device, const char *driver, Error *err);
        int (*remove_device)(void *userdata, const char *device, Error *err);
        /* -EEXIST when the device is present; -ENODEV when the topology never had it. */
        int (*add_device)(void *userdata, const char *device, Error *err);
        void *userdata;
        uid_t owner_uid; /* besides root, the uid allowed to call */
} SimulatorHooks;

/* The interface table (for the IDL conformance test). */
const VarlinkInterface *simulator_interface_get(void);

/*
 * Registers the interface on s; hooks must outlive the server.  -EINVAL when
 * hooks->backend is not a backend-sim.
 */
int simulator_attach(VarlinkServer *s, const SimulatorHooks *hooks);
