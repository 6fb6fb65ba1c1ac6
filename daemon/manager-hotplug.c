/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Hotplug.  A kernel uevent names one device; the IOMMU groups it was and is in are read
 * again in place (topology_update_groups()), once the loop is idle, so that a burst (a bind
 * is add + bind + vfio-dev add) costs one update of the groups it touched, not a reading
 * of the whole host.  A full reload happens only when events were lost (the socket's
 * buffer overflowed), when an IOMMU instance comes or goes, or on SIGHUP.  Either way every
 * session is then checked against the topology again.  The simulated host's hotplug
 * (manager-sim.c) takes the same path.
 */

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "manager-internal.h"

/* After the topology changed: sessions checked again, and everyone told. */
static void manager_hotplug_changed(Manager *m, const TopologyDiff *diff) {
        for (Session *s = m->host.sessions, *next; s; s = next) {
                next = session_next(s);
                (void)session_revalidate(s, manager_on_device_lost, m);
        }
        (void)runtime_claims_revalidate(m->claims);
        manager_persist(m);
        manager_notify_status(m);
        bus_topology_changed(m->bus, diff);
        manager_emit_topology_events(m, diff);
}

/* Reads the whole topology again. */
int manager_hotplug_reload(Manager *m) {
        _cleanup_(topology_freep) Topology *t = NULL;
        TopologyDiff diff = {};
        Error e = ERROR_INIT;
        int r;

        m->hotplug_full = false;
        m->n_hotplug_groups = 0;
        r = topology_load_path(&t, m->sysfs_root, &e);
        if (r < 0)
                return log_error_errno(r, "Reading the IOMMU topology below %s after hotplug "
                                       "failed, keeping the old one: %s",
                                       m->sysfs_root, error_message(&e));
        /* The diff keeps the old topology until everyone was told what changed. */
        r = topology_diff_replace(m->host.topology, t, &diff);
        m->host.topology = TAKE_PTR(t);
        if (r < 0)
                log_warning_errno(r, "Comparing the topology with the old one failed, not "
                                  "telling what changed: %m, ignoring.");
        manager_hotplug_changed(m, &diff);
        topology_diff_done(&diff);
        return 0;
}

/* Reads the groups the queued events touched again. */
int manager_hotplug_flush(Manager *m) {
        _cleanup_close_ int root_fd = -EBADF;
        TopologyDiff diff = {};
        Error e = ERROR_INIT;
        int r;

        if (m->hotplug_full)
                return manager_hotplug_reload(m);
        if (m->n_hotplug_groups == 0)
                return 0;
        root_fd = open(m->sysfs_root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (root_fd < 0)
                return log_error_errno(errno, "Opening %s after hotplug failed, keeping the "
                                       "old topology: %m", m->sysfs_root);
        r = topology_update_groups(m->host.topology, root_fd, m->hotplug_groups,
                                   m->n_hotplug_groups, &diff, &e);
        m->n_hotplug_groups = 0;
        if (r < 0) {
                log_warning("Reading IOMMU groups again after hotplug failed (%s), reading "
                            "everything.", error_message(&e));
                return manager_hotplug_reload(m);
        }
        manager_hotplug_changed(m, &diff);
        topology_diff_done(&diff);
        return 0;
}

static void hotplug_add_group(Manager *m, unsigned id) {
        unsigned *a;

        for (size_t i = 0; i < m->n_hotplug_groups; i++)
                if (m->hotplug_groups[i] == id)
                        return;
        a = reallocarray(m->hotplug_groups, m->n_hotplug_groups + 1, sizeof(*a));
        if (!a) {
                m->hotplug_full = true; /* cannot remember it: read everything */
                return;
        }
        m->hotplug_groups = a;
        a[m->n_hotplug_groups++] = id;
}

void manager_hotplug_device(Manager *m, const char *devpath, const char *name) {
        _cleanup_close_ int root_fd = -EBADF;
        const TopoDevice *d = topology_find_device(m->host.topology, name);
        unsigned id;

        /* The group it was in, and the one sysfs puts it in now (none once it is gone). */
        if (d && d->group)
                hotplug_add_group(m, d->group->id);
        root_fd = open(m->sysfs_root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (root_fd >= 0 && topology_device_group(root_fd, devpath, name, &id) >= 0)
                hotplug_add_group(m, id);
}

static void on_hotplug(evutil_socket_t fd, short what, void *userdata) {
        (void)manager_hotplug_flush(userdata);
}

/* The device a uevent is about: DEVPATH's last part, its parent's for a vfio cdev. */
static int uevent_device_name(const Uevent *u, char *buf, size_t size) {
        const char *end = u->devpath + strlen(u->devpath), *start;

        if (u->subsystem && streq(u->subsystem, "vfio-dev"))
                for (int up = 0; up < 2 && end > u->devpath; up++)
                        while (end > u->devpath && *--end != '/')
                                ;
        start = end;
        while (start > u->devpath && start[-1] != '/')
                start--;
        if (start == end || (size_t)(end - start) >= size)
                return -EINVAL;
        memcpy(buf, start, (size_t)(end - start));
        buf[end - start] = '\0';
        return 0;
}

static void manager_on_uevent(const Uevent *u, void *userdata) {
        Manager *m = userdata;
        char name[256];

        if (!u) {
                log_warning("Kernel uevents were lost, reading the whole topology again.");
                m->hotplug_full = true;
        } else {
                log_debug("uevent %s %s (%s%s%s)", u->action, u->devpath, u->subsystem ?: "?",
                          u->driver ? ", driver " : "", u->driver ?: "");
                if ((u->subsystem && streq(u->subsystem, "iommu")) ||
                    uevent_device_name(u, name, sizeof(name)) < 0)
                        m->hotplug_full = true;
                else
                        manager_hotplug_device(m, u->devpath, name);
        }
        /* One update for a burst, once the loop is idle. */
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
