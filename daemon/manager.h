/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The manager: owns the event loop, the topology, the policy, the backend,
 * the Varlink server and the sessions (through the SessionHost and its device
 * claim table).  Signals arrive through libevent: SIGTERM/SIGINT shut down
 * gracefully, SIGHUP reloads the policy atomically.  Talks to systemd with
 * sd_notify (READY, STATUS, WATCHDOG, STOPPING) and takes its socket from
 * socket activation when there is one.
 */

#include <stdbool.h>

#include "error.h"
#include "macros.h"
#include "policy.h"

typedef struct Manager Manager;

typedef struct ManagerConfig {
        const char *sim;           /* simulated topology (bundled name or path); NULL: kernel */
        const char *backend;       /* auto (NULL), iommufd (alias kernel), vfio or sim */
        const char *sysfs_root;    /* NULL: "/sys", or RUNTIME_DIR/sim/sys with sim */
        PolicyPaths policy_paths;
        const char *runtime_dir;   /* NULL: IOMMUD_RUNTIME_DIR */
        const char *cdi_dir;       /* where claims' CDI specs go; NULL: IOMMUD_CDI_DIR */
        const char *socket_path;   /* NULL: RUNTIME_DIR/org.iommud.Broker */
        const char *proc_root;     /* NULL: "/proc" */
        const char *bus_address;   /* NULL: the system bus ($DBUS_SYSTEM_BUS_ADDRESS honoured) */
        bool no_bus;               /* serve the socket only */
        bool fd_store;             /* use the fd store even without $FDSTORE (systemd < 254) */
} ManagerConfig;

/* Loads policy, topology and backend (materializing the simulated host with sim). */
int manager_new(Manager **ret, const ManagerConfig *cfg, Error *err);
Manager *manager_free(Manager *m);
DEFINE_TRIVIAL_CLEANUP_FUNC(Manager *, manager_free);

/* Listens (socket activation or bind), installs signal handlers, tells systemd READY=1. */
int manager_start(Manager *m, Error *err);
/* Runs the loop until SIGTERM/SIGINT or manager_exit(). */
int manager_run(Manager *m);
void manager_exit(Manager *m);

/*
 * Loads the policy again; on any problem keeps the current one and logs every
 * diagnostic.  Sessions that lose a grant get the affected devices detached.
 */
int manager_reload_policy(Manager *m);
/*
 * The same; on failure, every diagnostic as a string in *ret_diagnostics
 * (NULL-terminated, freed by the caller).
 */
int manager_reload_policy_full(Manager *m, char ***ret_diagnostics);
