/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * The simulated backend as a whole: the host model it copies from a SimTopology (IOMMU
 * instances, groups, devices), the BackendOps table that the sim-*.c files implement, and
 * the hooks the simulator's users turn (hotplug, privilege, statistics).
 */

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "assert-util.h"
#include "sim-private.h"

static const BackendOps sim_ops;

/* ---- the host model (copied from the topology) ---- */

static void sim_free(Backend *b) {
        SimBackend *s = to_sim(b);

        if (!s)
                return;
        /* Contexts their clients' files kept alive end with the backend. */
        while (s->n_closed > 0)
                sim_context_destroy(s->closed[--s->n_closed]);
        free(s->closed);
        for (size_t i = 0; i < s->n_iommus; i++)
                free(s->iommus[i].name);
        for (size_t i = 0; i < s->n_groups; i++) {
                free(s->groups[i].regions);
                free(s->groups[i].devices);
        }
        for (size_t i = 0; i < s->n_devices; i++) {
                SimDevModel *m = &s->devices[i];

                free(m->name);
                free(m->driver);
                safe_close(m->anchor_fd);
        }
        sim_memory_free(s);
        free(s->iommus);
        free(s->groups);
        free(s->devices);
        free(s->root);
        free(s->devices_dir);
        free(s);
}

static void sim_free_s(SimBackend *s) {
        sim_free(&s->base);
}
DEFINE_TRIVIAL_CLEANUP_FUNC(SimBackend *, sim_free_s);

static int copy_iommus(SimBackend *s, const SimTopology *t, Error *err) {
        if (t->n_iommus > 0 && !(s->iommus = calloc(t->n_iommus, sizeof(SimIommuModel))))
                return error_set(err, -ENOMEM, "Out of memory");
        s->n_iommus = t->n_iommus;
        for (size_t i = 0; i < t->n_iommus; i++) {
                const SimIommu *si = &t->iommus[i];
                SimIommuModel *m = &s->iommus[i];

                *m = (SimIommuModel){
                        .name = strdup(si->name ?: "iommu"),
                        .hw_info_type = si->hw_info_type,
                        .aperture_start = si->aperture_start,
                        .aperture_last = si->aperture_last,
                        .page_sizes = si->page_sizes ?: BACKEND_SIM_PAGE_SIZE,
                        .pasid_bits = si->pasid_bits,
                        .capabilities = si->capabilities,
                        .nesting = si->nesting,
                        .dirty_tracking = si->dirty_tracking,
                        .fault_queue = si->fault_queue,
                };
                if (!m->name)
                        return error_set(err, -ENOMEM, "Out of memory");
                if (m->aperture_start > m->aperture_last)
                        return error_set(err, -EINVAL, "IOMMU %s: aperture start 0x%" PRIx64
                                         " is above its last 0x%" PRIx64,
                                         m->name, m->aperture_start, m->aperture_last);
        }
        return 0;
}

static int copy_groups(SimBackend *s, const SimTopology *t, Error *err) {
        if (t->n_groups > 0 && !(s->groups = calloc(t->n_groups, sizeof(SimGroupModel))))
                return error_set(err, -ENOMEM, "Out of memory");
        s->n_groups = t->n_groups;
        for (size_t i = 0; i < t->n_groups; i++) {
                const SimGroup *sg = &t->groups[i];
                SimGroupModel *g = &s->groups[i];

                g->id = sg->id;
                g->iommu = sg->iommu_index;
                if (g->iommu >= s->n_iommus)
                        return error_set(err, -EINVAL, "Group %u refers to IOMMU %zu of %zu",
                                         g->id, g->iommu, s->n_iommus);
                if (sg->n_regions > 0) {
                        g->regions = calloc(sg->n_regions, sizeof(ReservedRegion));
                        if (!g->regions)
                                return error_set(err, -ENOMEM, "Out of memory");
                        for (size_t k = 0; k < sg->n_regions; k++) {
                                g->regions[k] = sg->regions[k];
                                g->regions[k].type_name = NULL;
                        }
                        g->n_regions = sg->n_regions;
                }
                if (sg->n_devices > 0) {
                        g->devices = calloc(sg->n_devices, sizeof(size_t));
                        if (!g->devices)
                                return error_set(err, -ENOMEM, "Out of memory");
                        memcpy(g->devices, sg->device_indexes, sg->n_devices * sizeof(size_t));
                        g->n_devices = sg->n_devices;
                }
        }
        return 0;
}

static int copy_devices(SimBackend *s, const SimTopology *t, Error *err) {
        if (t->n_devices > 0 && !(s->devices = calloc(t->n_devices, sizeof(SimDevModel))))
                return error_set(err, -ENOMEM, "Out of memory");
        s->n_devices = t->n_devices;
        for (size_t i = 0; i < t->n_devices; i++) {
                const SimDevice *sd = &t->devices[i];
                SimDevModel *m = &s->devices[i];

                m->name = strdup(sd->name);
                m->driver = sd->driver ? strdup(sd->driver) : NULL;
                if (!m->name || (sd->driver && !m->driver))
                        return error_set(err, -ENOMEM, "Out of memory");
                m->class = sd->class;
                m->cdev = sd->cdev;
                m->anchor_fd = -EBADF;
                m->cdev_minor = sd->cdev_minor;
                m->pasid_bits = sd->pasid_bits;
                m->group = sd->group_index;
                if (m->group >= s->n_groups)
                        return error_set(err, -EINVAL, "Device %s refers to group %zu of %zu",
                                         m->name, m->group, s->n_groups);
        }
        return 0;
}

/* IOMMUs first: groups refer to them by index, as devices refer to groups. */
static int sim_copy_topology(SimBackend *s, const SimTopology *t, Error *err) {
        int r;

        r = copy_iommus(s, t, err);
        if (r < 0)
                return r;
        r = copy_groups(s, t, err);
        if (r < 0)
                return r;
        return copy_devices(s, t, err);
}

int backend_sim_new(Backend **ret, const SimTopology *topo, const char *root, Error *err) {
        _cleanup_(sim_free_sp) SimBackend *s = NULL;
        int r;

        assert_return(ret, -EINVAL);

        s = calloc(1, sizeof(SimBackend));
        if (!s)
                return error_set(err, -ENOMEM, "Out of memory for the simulated backend");
        s->base.ops = &sim_ops;
        s->memlock_limit = UINT64_MAX;
        s->base.features = BACKEND_FEATURE_IOAS | BACKEND_FEATURE_OPTION |
                           BACKEND_FEATURE_VFIO_CDEV | BACKEND_FEATURE_HWPT_ALLOC |
                           BACKEND_FEATURE_HW_INFO | BACKEND_FEATURE_DIRTY_TRACKING |
                           BACKEND_FEATURE_FAULT_QUEUE | BACKEND_FEATURE_MAP_FILE |
                           BACKEND_FEATURE_PASID | BACKEND_FEATURE_NESTING;
        if (root) {
                s->root = strdup(root);
                if (!s->root || asprintf(&s->devices_dir, "%s/dev/vfio/devices", root) < 0)
                        return error_set(err, -ENOMEM, "Out of memory");
        }
        if (topo) {
                r = sim_copy_topology(s, topo, err);
                if (r < 0)
                        return r;
        }
        *ret = &TAKE_PTR(s)->base;
        return 0;
}

static const BackendOps sim_ops = {
        .name = "sim",
        .device_node_of_file = sim_device_node_of_file,
        .free = sim_free,
        .device_fd_identify = sim_device_fd_identify,
        .device_open = sim_device_open,
        .device_holders = sim_device_holders,
        .context_new = sim_context_new,
        .context_free = sim_context_free,
        .context_fd = sim_context_fd,
        .option = sim_option,
        .ioas_alloc = sim_ioas_alloc,
        .destroy = sim_destroy,
        .ioas_map_file = sim_ioas_map_file,
        .ioas_map_va = sim_ioas_map_va,
        .ioas_unmap = sim_ioas_unmap,
        .ioas_copy = sim_ioas_copy,
        .ioas_iova_ranges = sim_ioas_iova_ranges,
        .ioas_allow_iovas = sim_ioas_allow_iovas,
        .device_bind = sim_device_bind,
        .device_unbind = sim_device_unbind,
        .device_request_fd = sim_device_request_fd,
        .device_attach = sim_device_attach,
        .device_detach = sim_device_detach,
        .hw_info = sim_hw_info,
        .hwpt_alloc = sim_hwpt_alloc,
        .hwpt_set_dirty_tracking = sim_hwpt_set_dirty_tracking,
        .hwpt_get_dirty_bitmap = sim_hwpt_get_dirty_bitmap,
        .fault_queue_alloc = sim_fault_queue_alloc,
        .fault_read = sim_fault_read,
        .fault_respond = sim_fault_respond,
};

bool backend_is_sim(const Backend *b) {
        return b && b->ops == &sim_ops;
}

void backend_sim_get_stats(const Backend *b, BackendSimStats *ret) {
        /* Bindings whose files are gone have ended, as they would have in the kernel. */
        sim_file_reap((SimBackend *)b);
        *ret = ((const SimBackend *)b)->stats;
}

/* ---- lifecycle hooks ---- */

int backend_sim_set_device(Backend *b, const char *name, const char *driver, bool cdev,
                           Error *err) {
        SimBackend *s = to_sim(b);
        char *d = NULL;
        size_t i;

        assert_return(backend_is_sim(b), -EINVAL);
        assert_return(name, -EINVAL);

        if (sim_device_find(s, name, &i) < 0)
                return error_set(err, -ENODEV, "No simulated device %s", name);
        if (driver) {
                d = strdup(driver);
                if (!d)
                        return error_set(err, -ENOMEM, "Out of memory");
        }
        free(s->devices[i].driver);
        s->devices[i].driver = d;
        s->devices[i].cdev = cdev;
        return 0;
}

void backend_sim_set_privileged(Backend *b, bool privileged) {
        to_sim(b)->unprivileged = !privileged;
}

void backend_sim_set_memlock(Backend *b, bool cap_ipc_lock, uint64_t limit) {
        SimBackend *s = to_sim(b);

        s->no_ipc_lock = !cap_ipc_lock;
        s->memlock_limit = limit;
}

int backend_sim_context_set_owner(BackendContext *c, uid_t uid, pid_t pid) {
        assert_return(c && backend_is_sim(c->backend), -EINVAL);

        return sim_accounts_attach(to_ctx(c), uid, pid);
}

void backend_sim_context_adopt_memory(BackendContext *c) {
        to_ctx(c)->adopted_memory = true;
}

int backend_sim_locked_bytes(const Backend *b, bool process, uint32_t id, uint64_t *ret) {
        assert_return(backend_is_sim(b), -EINVAL);
        assert_return(ret, -EINVAL);

        for (SimAccount *a = ((const SimBackend *)b)->accounts; a; a = a->next)
                if (a->process == process && a->id == id) {
                        *ret = a->locked;
                        return 0;
                }
        *ret = 0;
        return 0;
}
