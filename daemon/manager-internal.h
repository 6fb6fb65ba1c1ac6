/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The manager's own files share this: the Manager and what one of them asks of
 * another.  By concern, after systemd's timesyncd and hostnamed:
 *
 *   manager.c          composition and lifetime: builds every layer in order, listens,
 *                      runs the loop, reloads the policy, tears everything down
 *   manager-backend.c  the backend choice: probing, --backend, and why
 *   manager-events.c   the fan-out of what happened: session hooks, fault notices,
 *                      devices a session lost, org.iommud.Manager Monitor() events
 *   manager-hotplug.c  kernel uevents and the topology reload they cause
 *   manager-release.c  devices the host wants back: the holder told, then the device released
 *   manager-sim.c      the simulated host: its model, hotplug, org.iommud.Simulator
 *   manager-restart.c  restart survival: state and fds in the service manager's fd store
 *   manager-audit.c    the audit trail: grants, refusals and reloads, logged and told to Monitor()
 *
 * Only daemon/manager*.c include it; everything else sees manager.h.
 */

#include <stdbool.h>
#include <stdint.h>

#include <event2/event.h>
#include <json-c/json.h>

#include "bus.h"
#include "error.h"
#include "fault-router.h"
#include "fdstore.h"
#include "manager.h"
#include "policy.h"
#include "runtime-claim.h"
#include "session.h"
#include "simtopo.h"
#include "topology.h"
#include "uevent.h"
#include "varlink-broker.h"
#include "varlink-manager.h"
#include "varlink-server.h"
#include "varlink-simulator.h"

/*
 * The version of the JSON state in the fd store's slots (the slot framing has
 * its own, FDSTORE_STATE_VERSION).  1: sessions with devices, address spaces
 * and mappings.  2: also each session's fault queue and PASID binds.  3: also the
 * devices each session took as fds (OpenDevices).  A daemon restores every version up to
 * its own.
 */
#define MANAGER_STATE_VERSION 3u

typedef struct ReleaseWatch ReleaseWatch;
typedef struct SimPending SimPending;

struct Manager {
        char *runtime_dir;
        char *socket_path;
        char *sysfs_root;
        char *dev_root;
        char *proc_root;
        char *sim_root; /* materialized simulated host, removed on exit */
        PolicyPaths policy_paths;
        char *policy_vendor_dir, *policy_admin_dir, *policy_file;

        struct event_base *base;
        struct event *sig_term, *sig_int, *sig_hup, *watchdog;
        uint64_t watchdog_usec;

        SessionHost host;
        Broker *broker;
        ManagerVarlink *admin;  /* org.iommud.Manager */
        RuntimeClaims *claims;  /* PrepareClaim: devices held for container runtimes */
        char *topology_name;    /* the simulated topology's, NULL for the kernel */
        char *backend_reason;   /* which kernel backend and why; NULL with --sim */
        VarlinkServer *server;
        Bus *bus;
        char *bus_address;
        bool no_bus;
        bool socket_bound; /* we created socket_path and remove it on exit */

        /* Restart survival and hotplug. */
        FdStore *fdstore;
        json_object *restore_state; /* the state a previous daemon left, until restored */
        bool preserving;            /* exiting with the fd store holding everything */
        SimTopology *sim_topo;      /* the simulated host as it is now */
        char *sim_name;
        json_object *sim_changes;   /* [[op, device, driver?]...] since start, for the state */
        SimulatorHooks sim_hooks;
        UeventMonitor *uevents;
        struct event *hotplug;      /* coalesces a burst of uevents into one update */
        unsigned *hotplug_groups;   /* the IOMMU groups the events so far touched */
        size_t n_hotplug_groups;
        bool hotplug_full;          /* read everything: events were lost, or an IOMMU changed */
        ReleaseWatch *release_watches; /* the bound devices whose request channel is armed */
        SimPending *sim_pending;    /* simulated changes that wait for a holder's release */
        size_t n_sim_pending;
        bool exiting;
};

/* manager.c */
int manager_make_runtime_dir(Manager *m, Error *err);
/* STATUS= for the service manager: sessions, claims, policy generation, backend. */
void manager_notify_status(Manager *m);

/* manager-events.c */
/* The one session hook of the host (SessionHookFn). */
void manager_on_session(Session *s, SessionEvent event, void *userdata);
/* The fault router's notice of every fault group it delivers or answers itself. */
void manager_on_fault(FaultStream *fs, const FaultEvent *ev, bool delivered,
                      FaultClosedReason reason, void *userdata);
/* session_revalidate()'s on_drop: a session lost a device to hotplug or a policy reload. */
void manager_on_device_lost(Session *s, const char *device, const char *reason, void *userdata);
/*
 * Tells the session (WatchEvents()) and Monitor() subscribers that it lost a device:
 * kind "removed", "rebound", "revoked" or "released".
 */
void manager_tell_device_lost(Manager *m, Session *s, const char *device, const char *kind,
                              const char *reason);
/* Tells the session and Monitor() subscribers that the host wants a device back. */
void manager_tell_release_requested(Manager *m, Session *s, const char *device,
                                    uint32_t device_id, uint64_t deadline_usec);
/* Tells Monitor() subscribers how the devices changed. */
void manager_emit_topology_events(Manager *m, const TopologyDiff *diff);
/*
 * Tells org.iommud.Manager Monitor() subscribers that something happened:
 * type "session-opened", "policy-reloaded", ...; payload (may be NULL, taken)
 * adds members such as session, uid, device, generation.
 */
void manager_emit_event(Manager *m, const char *type, const char *message, json_object *payload);

/* manager-backend.c */
/*
 * Chooses the backend and with it where the topology is read (m->sysfs_root)
 * and device nodes are opened (m->dev_root): by probing (iommufd, else VFIO
 * type1), as --backend forces, or the simulated host of --sim.  Never falls
 * back silently: the choice and its reason are logged and kept.
 */
int manager_setup_backend(Manager *m, const ManagerConfig *cfg, Error *err);

/* manager-hotplug.c */
/* Reads the whole topology again and revalidates every session against it. */
int manager_hotplug_reload(Manager *m);
/*
 * Notes that device name (at devpath below the sysfs root, NULL: find it by name) changed:
 * the groups it was and is in are read again at the next manager_hotplug_flush().
 */
void manager_hotplug_device(Manager *m, const char *devpath, const char *name);
/* Reads what the noted changes touched again (everything if events were lost). */
int manager_hotplug_flush(Manager *m);
/* Watches kernel uevents; without them hotplug goes unnoticed until a restart. */
void manager_hotplug_watch(Manager *m);

/* manager-release.c */
/* The session host's on_device hook: arms and drops the watch on each device's requests. */
void manager_on_device(Session *s, SessionDeviceEvent event, uint32_t device_id,
                       const char *name, void *userdata);
/*
 * Handles a request for device the host just made, without waiting for the loop to see it
 * (the simulated host asks from inside a call).  Nothing when the request channel is quiet.
 */
void manager_release_check(Manager *m, const char *device);

/* manager-sim.c */
/* A device the simulated host asked back was released: what waited for it happens, later. */
void manager_sim_released(Manager *m, const char *device);
void manager_sim_pending_free(Manager *m);
/* Loads and materializes the simulated host named name and starts the simulated backend. */
int manager_sim_setup(Manager *m, const char *name, Error *err);
/* Registers org.iommud.Simulator: fault injection, the model's counters and hotplug. */
int manager_sim_attach(Manager *m, Error *err);
/* Adds the simulated host's "sim" member (topology and changes) to the state. */
void manager_sim_serialize(Manager *m, json_object *root);

/* manager-restart.c */
/* Takes the fds the service manager passed and the state a previous daemon left. */
int manager_fdstore_open(Manager *m, bool fd_store, Error *err);
/* Writes every session's state and fds to the fd store (when there is one). */
void manager_persist(Manager *m);
void manager_persist_cb(void *userdata);
/* Takes over the sessions of the state a previous daemon left, then persists. */
void manager_restore(Manager *m);
