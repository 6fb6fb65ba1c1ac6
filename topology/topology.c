/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <ctype.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "assert-util.h"
#include "sysfs.h"
#include "topology-internal.h"

/*
 * topology_load(): every group and its members first, then the IOMMU instances
 * that name each member's IOMMU, then the indexes the lookups search.  What
 * cannot be read becomes a problem entry here.
 */

bool topology_grow(void **array, size_t *allocated, size_t need, size_t elem) {
        if (need <= *allocated)
                return true;
        size_t na = MAX(*allocated * 2, MAX(need, (size_t)16));
        void *p = reallocarray(*array, na, elem);
        if (!p)
                return false;
        *array = p;
        *allocated = na;
        return true;
}

int topology_problem_add(Loader *l, const char *path, unsigned line, const char *fmt, ...) {
        Topology *t = &l->tp->pub;
        char msg[PROBLEM_MESSAGE_MAX];
        va_list ap;

        if (!topology_grow((void **)&t->problems, &l->tp->allocated_problems, t->n_problems + 1,
                           sizeof(*t->problems)))
                return -ENOMEM;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);

        TopologyProblem *p = &t->problems[t->n_problems];
        p->path = strdup(path);
        p->message = strdup(msg);
        p->line = line;
        p->group = l->group;
        if (!p->path || !p->message) {
                free(p->path);
                free(p->message);
                return -ENOMEM;
        }
        t->n_problems++;
        return 0;
}

void topology_problem_errno(Loader *l, const char *path, int error, int *oom) {
        int r;

        if (error == -ENOENT)
                r = topology_problem_add(l, path, 0, "missing");
        else if (error == -EXDEV || error == -ELOOP)
                r = topology_problem_add(l, path, 0, "leads outside the sysfs root, not followed");
        else if (error == -EFBIG)
                r = topology_problem_add(l, path, 0, "larger than %d bytes", ATTR_MAX - 1);
        else
                r = topology_problem_add(l, path, 0, "cannot be read: %s", strerror(-error));
        if (r < 0)
                *oom = r;
}

int topo_device_cdev_cmp(const void *a, const void *b) {
        const TopoDevice *const *x = a, *const *y = b;

        if ((*x)->cdev_major != (*y)->cdev_major)
                return (*x)->cdev_major < (*y)->cdev_major ? -1 : 1;
        if ((*x)->cdev_minor != (*y)->cdev_minor)
                return (*x)->cdev_minor < (*y)->cdev_minor ? -1 : 1;
        return 0;
}

static int topology_finish(Loader *l) {
        TopologyPrivate *tp = l->tp;
        Topology *t = &tp->pub;
        int r;

        if (t->n_groups > 1)
                qsort(t->groups, t->n_groups, sizeof(*t->groups), topo_group_cmp);
        if (t->n_devices > 1)
                qsort(t->devices, t->n_devices, sizeof(*t->devices), topo_device_cmp);

        /* A device listed in two groups cannot be trusted in either. */
        for (size_t i = 1; i < t->n_devices; i++)
                if (streq(t->devices[i - 1]->name, t->devices[i]->name)) {
                        t->devices[i - 1]->group->broken = true;
                        t->devices[i]->group->broken = true;
                        l->group = t->devices[i]->group->id;
                        r = topology_problem_add(l, "kernel/iommu_groups", 0,
                                                 "device %s is a member of groups %u and %u",
                                                 t->devices[i]->name, t->devices[i - 1]->group->id,
                                                 t->devices[i]->group->id);
                        if (r < 0)
                                return r;
                }

        r = iommu_instances_load(l);
        if (r < 0)
                return r;

        for (size_t i = 0; i < t->n_devices; i++)
                if (t->devices[i]->has_cdev)
                        tp->n_by_cdev++;
        if (tp->n_by_cdev > 0) {
                size_t k = 0;
                tp->by_cdev = calloc(tp->n_by_cdev, sizeof(*tp->by_cdev));
                if (!tp->by_cdev)
                        return -ENOMEM;
                tp->allocated_by_cdev = tp->n_by_cdev;
                for (size_t i = 0; i < t->n_devices; i++)
                        if (t->devices[i]->has_cdev)
                                tp->by_cdev[k++] = t->devices[i];
                qsort(tp->by_cdev, tp->n_by_cdev, sizeof(*tp->by_cdev), topo_device_cdev_cmp);
        }
        return 0;
}

void loader_done(Loader *l) {
        for (size_t i = 0; i < l->n_links; i++)
                free(l->links[i].dev_path);
        free(l->links);
        l->links = NULL;
        l->n_links = l->allocated_links = 0;
        for (size_t i = 0; i < l->n_seen_targets; i++)
                free(l->seen_targets[i]);
        l->n_seen_targets = 0;
}

Topology *topology_free(Topology *t) {
        TopologyPrivate *tp = (TopologyPrivate *)t;

        if (!t)
                return NULL;
        for (size_t i = 0; i < t->n_devices; i++)
                topo_device_free(t->devices[i]);
        free(t->devices);
        for (size_t i = 0; i < t->n_groups; i++)
                topo_group_free(t->groups[i]);
        free(t->groups);
        for (size_t i = 0; i < t->n_iommus; i++)
                iommu_instance_free(t->iommus[i]);
        free(t->iommus);
        for (size_t i = 0; i < t->n_problems; i++) {
                free(t->problems[i].path);
                free(t->problems[i].message);
        }
        free(t->problems);
        free(tp->by_cdev);
        free(tp);
        return NULL;
}

int topology_load(Topology **ret, int sysfs_root_fd, Error *err) {
        _cleanup_(topology_freep) Topology *t = NULL;
        _cleanup_close_ int gfd = -EBADF;
        struct dirent *de;
        int r = 0;

        assert_return(ret, -EINVAL);
        assert_return(sysfs_root_fd >= 0, -EBADF);

        TopologyPrivate *tp = calloc(1, sizeof(*tp));
        if (!tp)
                return error_set(err, -ENOMEM, "out of memory loading the topology");
        t = &tp->pub;
        Loader l = { .root_fd = sysfs_root_fd, .tp = tp, .group = TOPOLOGY_NO_GROUP };

        gfd = sysfs_openat_beneath(sysfs_root_fd, "kernel/iommu_groups", O_RDONLY | O_DIRECTORY,
                                   false);
        if (gfd < 0)
                return error_set(err, gfd, "cannot open kernel/iommu_groups below the sysfs root: %s",
                                 strerror(-gfd));
        DIR *dir = fdopendir(gfd);
        if (!dir)
                return error_set(err, -errno, "cannot list kernel/iommu_groups: %m");
        int dir_fd = TAKE_FD(gfd);
        while ((de = readdir(dir))) {
                if (de->d_name[0] == '.')
                        continue;
                r = topo_group_load(&l, dir_fd, de->d_name);
                if (r < 0)
                        break;
        }
        closedir(dir);
        if (r >= 0)
                r = topology_finish(&l);
        loader_done(&l);
        if (r < 0)
                return error_set(err, r, "cannot load the topology: %s", strerror(-r));

        *ret = TAKE_PTR(t);
        return 0;
}

int topology_load_path(Topology **ret, const char *sysfs_root, Error *err) {
        _cleanup_close_ int fd = -EBADF;

        assert_return(ret && sysfs_root, -EINVAL);

        fd = open(sysfs_root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return error_set(err, -errno, "cannot open sysfs root %s: %m", sysfs_root);
        return topology_load(ret, fd, err);
}

/* ---- lookups ---- */

/* lspci's short form "01:00.0": bus, device and function of PCI domain 0000. */
static bool is_short_bdf(const char *s) {
        static const char shape[] = "xx:xx.x";

        if (strlen(s) != sizeof(shape) - 1)
                return false;
        for (size_t i = 0; shape[i]; i++)
                if (shape[i] == 'x' ? !isxdigit((unsigned char)s[i]) : s[i] != shape[i])
                        return false;
        return true;
}

TopoDevice *topology_find_device(const Topology *t, const char *name) {
        TopoDevice key = { .name = (char *)name }, *kp = &key, **found;
        char full[sizeof("0000:xx:xx.x")];

        if (!t || !name || t->n_devices == 0)
                return NULL;
        found = bsearch(&kp, t->devices, t->n_devices, sizeof(*t->devices), topo_device_cmp);
        if (!found && is_short_bdf(name)) {
                snprintf(full, sizeof(full), "0000:%s", name);
                key.name = full;
                found = bsearch(&kp, t->devices, t->n_devices, sizeof(*t->devices),
                                topo_device_cmp);
        }
        return found ? *found : NULL;
}

TopoDevice *topology_find_device_by_cdev(const Topology *t, unsigned major, unsigned minor) {
        const TopologyPrivate *tp = (const TopologyPrivate *)t;
        TopoDevice key = { .cdev_major = major, .cdev_minor = minor }, *kp = &key, **found;

        if (!t || tp->n_by_cdev == 0)
                return NULL;
        found = bsearch(&kp, tp->by_cdev, tp->n_by_cdev, sizeof(*tp->by_cdev),
                        topo_device_cdev_cmp);
        return found ? *found : NULL;
}

TopoGroup *topology_find_group(const Topology *t, unsigned id) {
        TopoGroup key = { .id = id }, *kp = &key, **found;

        if (!t || t->n_groups == 0)
                return NULL;
        found = bsearch(&kp, t->groups, t->n_groups, sizeof(*t->groups), topo_group_cmp);
        return found ? *found : NULL;
}

bool topo_device_is_bridge(const TopoDevice *d) {
        /* Base class 0x06 (bridge), subclass 0x04 PCI-to-PCI or 0x09 semi-transparent P2P. */
        if (!d || !d->is_pci)
                return false;
        uint32_t sub = (d->class >> 8) & 0xffff;
        return sub == 0x0604 || sub == 0x0609;
}

bool topo_device_keeps_group_viable(const TopoDevice *d) {
        assert_return(d, false);

        return !d->driver || strneq(d->driver, "vfio", 4) || streq(d->driver, "pci-stub") ||
               topo_device_is_bridge(d);
}

bool topo_group_viable(const TopoGroup *g) {
        assert_return(g, false);

        if (g->broken)
                return false;
        for (size_t i = 0; i < g->n_devices; i++)
                if (!topo_device_keeps_group_viable(g->devices[i]))
                        return false;
        return true;
}
