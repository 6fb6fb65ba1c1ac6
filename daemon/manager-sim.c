/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * The simulated host (iommud --sim): the topology is loaded and materialized
 * below RUNTIME_DIR/sim, where the rest of the daemon reads it as it would
 * /sys and /dev, and the simulated backend serves it.  org.iommud.Simulator
 * changes the model (hotplug); each change is rewritten into the tree and
 * taken through the same reload as a kernel uevent, and is recorded in the
 * restart state so that a restarted daemon replays it.
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend-sim.h"
#include "json-util.h"
#include "log.h"
#include "manager-internal.h"

static int sim_remove_device(SimTopology *t, size_t i) {
        SimDevice *d = &t->devices[i];

        for (size_t g = 0; g < t->n_groups; g++) {
                SimGroup *grp = &t->groups[g];

                for (size_t k = 0; k < grp->n_devices;) {
                        if (grp->device_indexes[k] == i) {
                                memmove(&grp->device_indexes[k], &grp->device_indexes[k + 1],
                                        (grp->n_devices - k - 1) * sizeof(size_t));
                                grp->n_devices--;
                                continue;
                        }
                        if (grp->device_indexes[k] > i)
                                grp->device_indexes[k]--;
                        k++;
                }
        }
        free(d->name);
        free(d->label);
        free(d->driver);
        memmove(d, d + 1, (t->n_devices - i - 1) * sizeof(*d));
        t->n_devices--;
        return 0;
}

/* A fresh vfio cdev minor, as the kernel would give. */
static unsigned sim_free_minor(const SimTopology *t) {
        unsigned minor = 0;

        for (size_t k = 0; k < t->n_devices; k++)
                if (t->devices[k].cdev)
                        minor = MAX(minor, t->devices[k].cdev_minor + 1);
        return minor;
}

/*
 * Puts back a device of the simulated topology that hotplug removed, as the
 * topology describes it (driver, group), like a hot-plugged card.
 */
static int sim_add_device(Manager *m, const char *device, bool present, Error *err) {
        _cleanup_(simtopo_freep) SimTopology *orig = NULL;
        SimTopology *t = m->sim_topo;
        const SimDevice *o;
        SimDevice *devices, copy;
        SimGroup *g = NULL;
        size_t *idx, k;
        Error e = ERROR_INIT;
        int r;

        if (present)
                return error_set(err, -EEXIST, "Device %s is present on the simulated host.",
                                 device);
        r = simtopo_load(&orig, m->sim_name, &e);
        if (r < 0)
                return error_set(err, r, "Reading simulated topology '%s' again failed: %s",
                                 m->sim_name, error_message(&e));
        o = simtopo_find_device(orig, device);
        if (!o)
                return error_set(err, -ENODEV, "The simulated host has no device %s.", device);
        for (size_t j = 0; j < t->n_groups; j++)
                if (t->groups[j].id == orig->groups[o->group_index].id)
                        g = &t->groups[j];
        if (!g)
                return error_set(err, -ENODEV, "The simulated host has no group %u for %s.",
                                 orig->groups[o->group_index].id, device);
        devices = realloc(t->devices, (t->n_devices + 1) * sizeof(*devices));
        if (!devices)
                return error_set(err, -ENOMEM, "Out of memory.");
        t->devices = devices;
        idx = realloc(g->device_indexes, (g->n_devices + 1) * sizeof(*idx));
        if (!idx)
                return error_set(err, -ENOMEM, "Out of memory.");
        g->device_indexes = idx;

        copy = *o;
        copy.group_index = (size_t)(g - t->groups);
        copy.name = strdup(o->name);
        copy.label = o->label ? strdup(o->label) : NULL;
        copy.driver = o->driver ? strdup(o->driver) : NULL;
        if (!copy.name || (o->label && !copy.label) || (o->driver && !copy.driver)) {
                free(copy.name);
                free(copy.label);
                free(copy.driver);
                return error_set(err, -ENOMEM, "Out of memory.");
        }
        /* Its old minor, unless a device bound meanwhile took it. */
        for (size_t j = 0; copy.cdev && j < t->n_devices; j++)
                if (t->devices[j].cdev && t->devices[j].cdev_minor == copy.cdev_minor) {
                        copy.cdev_minor = sim_free_minor(t);
                        break;
                }
        /* In name order, where simtopo_find_device() bisects. */
        for (k = 0; k < t->n_devices && strcmp(t->devices[k].name, device) < 0; k++)
                ;
        memmove(&t->devices[k + 1], &t->devices[k], (t->n_devices - k) * sizeof(*devices));
        for (size_t j = 0; j < t->n_groups; j++)
                for (size_t x = 0; x < t->groups[j].n_devices; x++)
                        if (t->groups[j].device_indexes[x] >= k)
                                t->groups[j].device_indexes[x]++;
        t->devices[k] = copy;
        t->n_devices++;
        g->device_indexes[g->n_devices++] = k;
        return 0;
}

static int manager_sim_apply(Manager *m, const char *op, const char *device, const char *driver,
                             Error *err) {
        SimTopology *t = m->sim_topo;
        size_t i;

        for (i = 0; i < t->n_devices; i++)
                if (streq(t->devices[i].name, device))
                        break;
        if (streq(op, "add"))
                return sim_add_device(m, device, i < t->n_devices, err);
        if (i == t->n_devices)
                return error_set(err, -ENODEV, "The simulated host has no device %s.", device);
        if (streq(op, "remove"))
                return sim_remove_device(t, i);
        if (streq(op, "driver")) {
                SimDevice *d = &t->devices[i];
                char *n = driver ? strdup(driver) : NULL;
                bool cdev = driver && strneq(driver, "vfio", 4);

                if (driver && !n)
                        return error_set(err, -ENOMEM, "Out of memory.");
                if (cdev && !d->cdev) {
                        unsigned minor = 0;

                        /* A fresh cdev minor, as the kernel would give. */
                        for (size_t k = 0; k < t->n_devices; k++)
                                if (t->devices[k].cdev || k == i)
                                        minor = MAX(minor, t->devices[k].cdev_minor + 1);
                        d->cdev_minor = minor;
                }
                free(d->driver);
                d->driver = n;
                d->cdev = cdev;
                return 0;
        }
        return error_set(err, -EINVAL, "Unknown simulated hotplug change '%s'.", op);
}

struct SimPending {
        char *op;
        char *device;
        char *driver;
};

static void sim_pending_clear(SimPending *p) {
        free(p->op);
        free(p->device);
        free(p->driver);
}

/*
 * As vfio-pci does before a removal or an unbind: a device a session holds is asked back
 * and the change waits for its release (manager_sim_released()).  1 when it waits.
 */
static int sim_wait_for_holder(Manager *m, const char *op, const char *device,
                               const char *driver, Error *err) {
        SimPending *p;
        int r;

        if (streq(op, "add"))
                return 0;
        /* Recorded before the holder is asked: it may release the device at once. */
        p = reallocarray(m->sim_pending, m->n_sim_pending + 1, sizeof(*p));
        if (!p)
                return error_set(err, -ENOMEM, "Out of memory.");
        m->sim_pending = p;
        p = &m->sim_pending[m->n_sim_pending];
        *p = (SimPending){ .op = strdup(op), .device = strdup(device),
                           .driver = driver ? strdup(driver) : NULL };
        if (!p->op || !p->device || (driver && !p->driver)) {
                sim_pending_clear(p);
                return error_set(err, -ENOMEM, "Out of memory.");
        }
        m->n_sim_pending++;
        r = backend_sim_request_device(m->host.backend, device);
        if (r <= 0) {
                /* Nobody holds it (or no such device: the change says which): go on now. */
                sim_pending_clear(&m->sim_pending[--m->n_sim_pending]);
                return 0;
        }
        log_info("Simulated hotplug: %s %s waits until its holder releases it.", op, device);
        manager_release_check(m, device);
        return 1;
}

static int manager_sim_hotplug(Manager *m, const char *op, const char *device, const char *driver,
                               Error *err) {
        json_object *c;
        const SimDevice *d;
        int r;

        r = sim_wait_for_holder(m, op, device, driver, err);
        if (r != 0)
                return r < 0 ? r : 0;
        r = manager_sim_apply(m, op, device, driver, err);
        if (r < 0)
                return r;
        /* By name, not by bisection: an added device is appended, out of the sorted order. */
        d = NULL;
        for (size_t i = 0; i < m->sim_topo->n_devices && !d; i++)
                if (streq(m->sim_topo->devices[i].name, device))
                        d = &m->sim_topo->devices[i];
        r = backend_sim_set_device(m->host.backend, device, d ? d->driver : NULL,
                                   d ? d->cdev : false, err);
        if (r < 0)
                return r;
        r = simtopo_rematerialize_sys(m->sim_topo, m->sim_root, err);
        if (r < 0)
                return r;
        c = json_object_new_array();
        if (c) {
                json_object_array_add(c, json_object_new_string(op));
                json_object_array_add(c, json_object_new_string(device));
                json_object_array_add(c, driver ? json_object_new_string(driver) : NULL);
                json_object_array_add(m->sim_changes, c);
        }
        log_info("Simulated hotplug: %s %s%s%s.", op, device, driver ? " → " : "",
                 driver ?: "");
        /* From here on, exactly what a kernel uevent does. */
        manager_hotplug_device(m, NULL, device);
        (void)manager_hotplug_flush(m);
        return 0;
}

typedef struct SimReleased {
        Manager *m;
        char *device;
} SimReleased;

static void on_sim_released(evutil_socket_t fd, short what, void *userdata) {
        SimReleased *rel = userdata;
        Manager *m = rel->m;
        size_t n = 0;

        /* Taken out first, in order: a change may wait again if someone holds the device now. */
        _cleanup_free_ SimPending *mine = calloc(MAX(m->n_sim_pending, 1u), sizeof(*mine));
        size_t kept = 0;

        if (!mine) {
                log_warning("Simulated hotplug of %s cannot go on (out of memory), ignoring.",
                            rel->device);
                goto out;
        }
        for (size_t i = 0; i < m->n_sim_pending; i++)
                if (streq(m->sim_pending[i].device, rel->device))
                        mine[n++] = m->sim_pending[i];
                else
                        m->sim_pending[kept++] = m->sim_pending[i];
        m->n_sim_pending = kept;
        FOREACH_ARRAY(p, mine, n) {
                Error e = ERROR_INIT;

                if (manager_sim_hotplug(m, p->op, p->device, p->driver, &e) < 0)
                        log_warning("Simulated hotplug: %s %s failed after its release: %s, "
                                    "ignoring.", p->op, p->device, error_message(&e));
                sim_pending_clear(p);
        }
out:
        free(rel->device);
        free(rel);
}

void manager_sim_released(Manager *m, const char *device) {
        SimReleased *rel = calloc(1, sizeof(*rel));

        /* Not from inside the session call that released it: once the loop is back. */
        if (rel && (rel->device = strdup(device))) {
                rel->m = m;
                if (event_base_once(m->base, -1, EV_TIMEOUT, on_sim_released, rel, NULL) == 0)
                        return;
        }
        if (rel)
                free(rel->device);
        free(rel);
        log_warning("Simulated hotplug of %s cannot go on after its release (out of memory), "
                    "ignoring.", device);
}

void manager_sim_pending_free(Manager *m) {
        FOREACH_ARRAY(p, m->sim_pending, m->n_sim_pending)
                sim_pending_clear(p);
        free(m->sim_pending);
        m->sim_pending = NULL;
        m->n_sim_pending = 0;
}

static int sim_hook_set_driver(void *userdata, const char *device, const char *driver,
                               Error *err) {
        return manager_sim_hotplug(userdata, "driver", device, driver, err);
}

static int sim_hook_remove(void *userdata, const char *device, Error *err) {
        return manager_sim_hotplug(userdata, "remove", device, NULL, err);
}

static int sim_hook_add(void *userdata, const char *device, Error *err) {
        return manager_sim_hotplug(userdata, "add", device, NULL, err);
}

int manager_sim_attach(Manager *m, Error *err) {
        int r;

        /* Fault injection, the model's counters and hotplug exist only on a simulated host. */
        m->sim_hooks = (SimulatorHooks){
                .backend = m->host.backend,
                .set_driver = sim_hook_set_driver,
                .remove_device = sim_hook_remove,
                .add_device = sim_hook_add,
                .userdata = m,
                .owner_uid = geteuid(),
        };
        r = simulator_attach(m->server, &m->sim_hooks);
        if (r < 0)
                return error_set(err, r, "Registering org.iommud.Simulator failed: %s",
                                 strerror(-r));
        return 0;
}

void manager_sim_serialize(Manager *m, json_object *root) {
        json_object *sim;

        if (!m->sim_topo)
                return;
        sim = json_object_new_object();
        (void)json_util_add(sim, "topology", json_object_new_string(m->sim_name));
        (void)json_util_add(sim, "changes", json_object_get(m->sim_changes));
        (void)json_util_add(root, "sim", sim);
}

/* The simulated host lived in the old process: replay what hotplug did to it. */
static void manager_sim_replay(Manager *m) {
        json_object *sim = NULL, *changes = NULL;
        const char *name = NULL;
        Error e = ERROR_INIT;

        if (!m->restore_state)
                return;
        if (json_util_get_object(m->restore_state, "sim", 0, &sim, NULL) < 0 ||
            json_util_get_string(sim, "topology", 0, &name, NULL) < 0 ||
            !streq(name, m->sim_name) ||
            json_util_get_array(sim, "changes", 0, &changes, NULL) < 0) {
                log_warning("The state was left by a daemon simulating another "
                            "host, or by a real one; its sessions are dropped.");
                return;
        }
        for (size_t i = 0; i < json_object_array_length(changes); i++) {
                json_object *c = json_object_array_get_idx(changes, i);
                const char *op = json_object_get_string(json_object_array_get_idx(c, 0));
                const char *dev = json_object_get_string(json_object_array_get_idx(c, 1));
                const char *drv = json_object_get_string(json_object_array_get_idx(c, 2));

                if (!op || !dev || manager_sim_apply(m, op, dev, drv, &e) < 0)
                        log_warning("Replaying a simulated hotplug change failed: %s, ignoring.",
                                    error_message(&e));
        }
}

static int manager_sim_load(Manager *m, const char *name, Error *err) {
        _cleanup_(simtopo_freep) SimTopology *st = NULL;
        Error e = ERROR_INIT;
        int r;

        r = simtopo_load(&st, name, &e);
        if (r < 0)
                return error_set(err, r, "Loading simulated topology '%s' failed: %s", name,
                                 error_message(&e));
        m->sim_name = strdup(name);
        m->sim_changes = json_object_new_array();
        if (!m->sim_name || !m->sim_changes)
                return error_set(err, -ENOMEM, "Out of memory.");
        m->sim_topo = TAKE_PTR(st);
        return 0;
}

/* Writes the simulated host's sysfs and dev trees, read from then on like the real ones. */
static int manager_sim_materialize(Manager *m, Error *err) {
        Error e = ERROR_INIT;
        int r;

        r = manager_make_runtime_dir(m, err);
        if (r < 0)
                return r;
        if (asprintf(&m->sim_root, "%s/sim", m->runtime_dir) < 0)
                return error_set(err, -ENOMEM, "Out of memory.");
        /* A previous run may have left its tree behind; it is ours to replace. */
        (void)simtopo_remove(m->sim_root);
        r = simtopo_materialize(m->sim_topo, m->sim_root, &e);
        if (r < 0)
                return error_set(err, r, "Materializing '%s' into %s failed: %s", m->sim_name,
                                 m->sim_root, error_message(&e));
        if (asprintf(&m->sysfs_root, "%s/sys", m->sim_root) < 0 ||
            asprintf(&m->dev_root, "%s/dev", m->sim_root) < 0)
                return error_set(err, -ENOMEM, "Out of memory.");
        return 0;
}

int manager_sim_setup(Manager *m, const char *name, Error *err) {
        Error e = ERROR_INIT;
        int r;

        r = manager_sim_load(m, name, err);
        if (r < 0)
                return r;
        manager_sim_replay(m);
        r = manager_sim_materialize(m, err);
        if (r < 0)
                return r;
        r = backend_sim_new(&m->host.backend, m->sim_topo, m->sim_root, &e);
        if (r < 0)
                return error_set(err, r, "Starting the simulated backend failed: %s",
                                 error_message(&e));
        m->topology_name = strdup(m->sim_topo->name);
        if (!m->topology_name)
                return error_set(err, -ENOMEM, "Out of memory.");
        log_info("Simulating topology '%s' (%s) below %s.", m->sim_topo->name,
                 m->sim_topo->description ?: "no description", m->sim_root);
        return 0;
}
