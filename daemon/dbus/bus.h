/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The D-Bus front end: org.iommud1 on the system bus, driven by sd-bus from
 * the daemon's libevent loop.  /org/iommud1 carries org.iommud1.Manager and
 * an ObjectManager; /org/iommud1/device/<escaped BDF> one org.iommud1.Device
 * per device (a fallback vtable and a node enumerator over the current
 * topology); /org/iommud1/session/N one org.iommud1.Session per session made
 * by CreateSession(), owned by the calling connection and ended when it
 * leaves.  Session methods call the session core the Varlink broker calls, so
 * semantics, policy, quotas and error names are the same.  The API is
 * documented in org.iommud1(5).
 */

#include <stdbool.h>
#include <stdint.h>

#include <event2/event.h>

#include "varlink-broker.h"
#include "error.h"
#include "macros.h"
#include "runtime-claim.h"
#include "session.h"
#include "topology.h"
#include "varlink-server.h"

#define BUS_NAME "org.iommud1"
#define BUS_PATH "/org/iommud1"
#define BUS_MANAGER_INTERFACE "org.iommud1.Manager"
#define BUS_SESSION_INTERFACE "org.iommud1.Session"
#define BUS_DEVICE_INTERFACE "org.iommud1.Device"
#define BUS_SESSION_PREFIX "/org/iommud1/session"
#define BUS_DEVICE_PREFIX "/org/iommud1/device"

/* Map and Copy flags, the iommufd values. */
#define BUS_MAP_FIXED_IOVA (UINT32_C(1) << 0)
#define BUS_MAP_WRITEABLE (UINT32_C(1) << 1)
#define BUS_MAP_READABLE (UINT32_C(1) << 2)

/* BindPASID flags. */
#define BUS_PASID_FIXED (UINT32_C(1) << 0)  /* bind the pasid given, else iommud picks one */
#define BUS_PASID_FAULTS (UINT32_C(1) << 1) /* deliver its I/O page faults (WatchFaults) */

typedef struct Bus Bus;

typedef struct BusConfig {
        struct event_base *base;
        SessionHost *host;
        Broker *broker;           /* for OpenSession() */
        VarlinkServer *server;
        const char *proc_root;    /* NULL: "/proc" */
        const char *address;      /* NULL: the system bus ($DBUS_SYSTEM_BUS_ADDRESS honoured) */
        /* ReloadPolicy(): returns 0 or a negative errno (the old policy stays). */
        int (*reload_policy)(void *userdata);
        /* PrepareClaim() and the rest; NULL: not offered.  claims_changed saves the state. */
        RuntimeClaims *claims;
        void (*claims_changed)(void *userdata);
        void *userdata;
} BusConfig;

/*
 * Connects, registers every object and asks for the name, without waiting
 * for anything.  Everything cfg points to must outlive the Bus.  Fails when
 * there is no bus to connect to; the caller decides whether to go on without.
 */
int bus_new(Bus **ret, const BusConfig *cfg, Error *err);
/* Ends every D-Bus session and disconnects.  Accepts NULL. */
Bus *bus_free(Bus *b);
DEFINE_TRIVIAL_CLEANUP_FUNC(Bus *, bus_free);

/*
 * A session's lifetime event (the manager fans SessionHost.on_session out to
 * here): SessionOpened, SessionClosed once the session released everything,
 * and SessionCount's change.  Accepts NULL.
 */
void bus_session_event(Bus *b, Session *s, SessionEvent event);
/* After a successful policy reload: PolicyReloaded and PolicyGeneration's change. */
void bus_policy_reloaded(Bus *b);
/*
 * After the topology changed as diff says (hotplug): DeviceAdded/DeviceRemoved,
 * the device objects' InterfacesAdded/Removed and DeviceCount's change.
 */
void bus_topology_changed(Bus *b, const TopologyDiff *diff);
/*
 * DeviceReleaseRequested: the host wants device back from whoever holds it, who
 * keeps it until deadline_usec (CLOCK_REALTIME) at the latest.
 */
void bus_device_release_requested(Bus *b, const char *device, uint64_t deadline_usec);
