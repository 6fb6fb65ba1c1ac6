/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Hotplug: a burst of kernel uevents becomes one reload of the topology, after
 * which every session is checked against it again.  The simulated host's
 * hotplug (manager-sim.c) ends in the same reload.
 */

#include <string.h>

#include "log.h"
#include "manager-internal.h"

/* Reads the whole topology again: a few ms even for thousands of devices (see bench/). */
int manager_hotplug_reload(Manager *m) {
        _cleanup_(topology_freep) Topology *t = NULL, *old = NULL;
        Error e = ERROR_INIT;
        int r;

        r = topology_load_path(&t, m->sysfs_root, &e);
        if (r < 0)
                return log_error_errno(r, "Reading the IOMMU topology below %s after hotplug "
                                       "failed, keeping the old one: %s",
                                       m->sysfs_root, error_message(&e));
        /* Kept until everyone was told what changed; sessions never point into it. */
        old = m->host.topology;
        m->host.topology = TAKE_PTR(t);
        for (Session *s = m->host.sessions, *next; s; s = next) {
                next = session_next(s);
                (void)session_revalidate(s, manager_on_device_lost, m);
        }
        manager_persist(m);
        manager_notify_status(m);
        bus_topology_changed(m->bus, old);
        manager_emit_topology_events(m, old);
        return 0;
}

static void on_hotplug(evutil_socket_t fd, short what, void *userdata) {
        (void)manager_hotplug_reload(userdata);
}

static void manager_on_uevent(const Uevent *u, void *userdata) {
        Manager *m = userdata;

        log_debug("uevent %s %s (%s%s%s)", u->action, u->devpath, u->subsystem ?: "?",
                  u->driver ? ", driver " : "", u->driver ?: "");
        /* One reload for a burst (a bind is add + bind + vfio-dev add), once the loop is idle. */
        if (!m->hotplug)
                m->hotplug = event_new(m->base, -1, 0, on_hotplug, m);
        if (m->hotplug && !event_pending(m->hotplug, EV_TIMEOUT, NULL))
                event_active(m->hotplug, EV_TIMEOUT, 0);
}

void manager_hotplug_watch(Manager *m) {
        int r;

        r = uevent_monitor_new(&m->uevents, m->base, manager_on_uevent, m);
        if (r < 0)
                log_warning_errno(r, "Watching kernel uevents failed, hotplug goes "
                                  "unnoticed until a restart: %m, ignoring.");
}
