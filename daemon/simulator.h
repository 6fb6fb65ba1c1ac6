/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * org.iommud.Simulator: hotplug control of the simulated host (--sim only).
 * The methods decode their parameters and call the manager through
 * SimulatorHooks; the manager changes the model and runs its hotplug path.
 */

#include <sys/types.h>

#include "error.h"
#include "varlink-server.h"

#define SIMULATOR_INTERFACE "org.iommud.Simulator"

typedef struct SimulatorHooks {
        /* -ENODEV (with err) when the simulated host has no such device. */
        int (*set_driver)(void *userdata, const char *device, const char *driver, Error *err);
        int (*remove_device)(void *userdata, const char *device, Error *err);
        void *userdata;
        uid_t owner_uid; /* besides root, the uid allowed to call */
} SimulatorHooks;

/* Registers the interface; hooks must outlive the server. */
int simulator_attach(VarlinkServer *s, const SimulatorHooks *hooks);
const VarlinkInterface *simulator_interface_get(void);
