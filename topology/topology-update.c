/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "assert-util.h"
#include "sysfs.h"
#include "topology-internal.h"

/*
 * Hotplug in place.  The groups an event touched are read into a scratch topology with the
 * loader topology_load() uses, their devices' IOMMUs are found among the live topology's
 * instances, and then everything that can fail is done: the live arrays are grown to their
 * final size and the diff's arrays allocated.  Only then is the scratch spliced in, which
 * cannot fail, so an update either happens whole or not at all.
 */

typedef struct Update {
        Topology *t;
        int root_fd;
        unsigned *ids;                 /* sorted, unique */
        size_t n_ids;
        TopologyPrivate *fresh;        /* the groups as read now */
        TopoDevice **listed;           /* fresh devices the device list of their IOMMU names */
        size_t n_listed;
} Update;

static int uint_cmp(const void *a, const void *b) {
        unsigned x = *(const unsigned *)a, y = *(const unsigned *)b;

        return x < y ? -1 : x > y;
}

static int update_set_ids(Update *u, const unsigned *ids, size_t n_ids) {
        size_t k = 0;

        u->ids = n_ids > 0 ? malloc(n_ids * sizeof(*ids)) : NULL;
        if (n_ids > 0 && !u->ids)
                return -ENOMEM;
        if (n_ids > 0)
                memcpy(u->ids, ids, n_ids * sizeof(*ids));
        qsort(u->ids, n_ids, sizeof(*ids), uint_cmp);
        for (size_t i = 0; i < n_ids; i++)
                if (k == 0 || u->ids[k - 1] != u->ids[i])
                        u->ids[k++] = u->ids[i];
        u->n_ids = k;
        return 0;
}

static bool iommu_lists(int root_fd, const IommuInstance *inst, const char *device) {
        _cleanup_close_ int fd = -EBADF;
        char path[PATH_MAX];

        snprintf(path, sizeof(path), "class/iommu/%s/devices/%s", inst->name, device);
        fd = sysfs_openat_beneath(root_fd, path, O_PATH, true);
        return fd >= 0;
}

/* The instance d's own iommu link names, read quietly: only a guess to try first. */
static IommuInstance *iommu_guess(Update *u, const char *dev_path) {
        _cleanup_free_ char *target = NULL;
        _cleanup_close_ int fd = -EBADF;
        const char *base;

        fd = sysfs_openat_beneath(u->root_fd, dev_path, O_PATH | O_DIRECTORY, true);
        if (fd < 0 || sysfs_readlink(fd, "iommu", &target) < 0)
                return NULL;
        base = strrchr(target, '/');
        return topology_find_iommu(u->t, base ? base + 1 : target);
}

/*
 * As iommu_instances_load() does for a whole topology: the instance whose device list names the
 * device (the one its link names tried first, so that this costs one lookup), or else the one
 * its iommu link names.
 */
static int update_assign_iommu(Update *u, Loader *l, TopoDevice *d, const char *dev_path) {
        IommuInstance *inst = dev_path ? iommu_guess(u, dev_path) : NULL;

        if (!inst || !iommu_lists(u->root_fd, inst, d->name)) {
                inst = NULL;
                for (size_t i = 0; i < u->t->n_iommus && !inst; i++)
                        if (iommu_lists(u->root_fd, u->t->iommus[i], d->name))
                                inst = u->t->iommus[i];
        }
        if (inst) {
                d->iommu = inst;
                u->listed[u->n_listed++] = d;
                return 0;
        }
        return dev_path ? iommu_device_read_link(l, u->t, d, dev_path) : 0;
}

static int update_read_groups(Update *u, Loader *l, Error *err) {
        _cleanup_close_ int gfd = -EBADF;
        int r = 0;

        gfd = sysfs_openat_beneath(u->root_fd, "kernel/iommu_groups", O_RDONLY | O_DIRECTORY,
                                   false);
        if (gfd < 0)
                return error_set(err, gfd, "cannot open kernel/iommu_groups below the sysfs root: %s",
                                 strerror(-gfd));
        for (size_t i = 0; i < u->n_ids && r >= 0; i++) {
                char name[16];

                snprintf(name, sizeof(name), "%u", u->ids[i]);
                /* A group that is gone is replaced by nothing. */
                if (faccessat(gfd, name, F_OK, AT_SYMLINK_NOFOLLOW) < 0 && errno == ENOENT)
                        continue;
                r = topo_group_load(l, gfd, name);
        }
        if (r < 0)
                return error_set(err, r, "cannot read the IOMMU groups again: %s", strerror(-r));
        return 0;
}

/* Reads the groups into u->fresh, each device with its IOMMU among the live topology's. */
static int update_read(Update *u, Error *err) {
        Topology *f;
        int r;

        u->fresh = calloc(1, sizeof(*u->fresh));
        if (!u->fresh)
                return error_set(err, -ENOMEM, "out of memory updating the topology");
        f = &u->fresh->pub;
        Loader l = { .root_fd = u->root_fd, .tp = u->fresh, .group = TOPOLOGY_NO_GROUP };

        r = update_read_groups(u, &l, err);
        if (r >= 0 && f->n_devices > 0) {
                u->listed = calloc(f->n_devices, sizeof(*u->listed));
                if (!u->listed)
                        r = error_set(err, -ENOMEM, "out of memory updating the topology");
        }
        for (size_t i = 0; r >= 0 && i < l.n_links; i++) {
                r = update_assign_iommu(u, &l, l.links[i].device, l.links[i].dev_path);
                if (r < 0)
                        error_set(err, r, "out of memory updating the topology");
        }
        loader_done(&l);
        if (r < 0)
                return r;
        if (f->n_groups > 1)
                qsort(f->groups, f->n_groups, sizeof(*f->groups), topo_group_cmp);
        if (f->n_devices > 1)
                qsort(f->devices, f->n_devices, sizeof(*f->devices), topo_device_cmp);
        return 0;
}

/* ---- splicing ---- */

static TopoGroup *update_old_group(const Update *u, size_t i) {
        return topology_find_group(u->t, u->ids[i]);
}

/* Grows every array the splice writes to its final size, so that the splice cannot fail. */
static int update_reserve(Update *u, TopologyDiff *diff) {
        TopologyPrivate *tp = (TopologyPrivate *)u->t;
        Topology *t = u->t, *f = &u->fresh->pub;
        size_t n_old_groups = 0, n_old_devices = 0, n_cdev = 0;

        for (size_t i = 0; i < u->n_ids; i++) {
                TopoGroup *g = update_old_group(u, i);

                n_old_groups += g ? 1 : 0;
                n_old_devices += g ? g->n_devices : 0;
        }
        for (size_t i = 0; i < f->n_devices; i++)
                n_cdev += f->devices[i]->has_cdev;
        /* Room for a problem about each new device's name being in another group too. */
        if (!topology_grow((void **)&t->groups, &tp->allocated_groups, t->n_groups + f->n_groups,
                           sizeof(*t->groups)) ||
            !topology_grow((void **)&t->devices, &tp->allocated_devices,
                           t->n_devices + f->n_devices, sizeof(*t->devices)) ||
            !topology_grow((void **)&t->problems, &tp->allocated_problems,
                           t->n_problems + f->n_problems + f->n_devices, sizeof(*t->problems)) ||
            !topology_grow((void **)&tp->by_cdev, &tp->allocated_by_cdev, tp->n_by_cdev + n_cdev,
                           sizeof(*tp->by_cdev)))
                return -ENOMEM;
        /* Instance lists keep no capacity: each grows by what it gains, which removals never
         * take back. */
        for (size_t i = 0; i < t->n_iommus; i++) {
                IommuInstance *inst = t->iommus[i];
                size_t gain = 0;
                TopoDevice **a;

                for (size_t k = 0; k < u->n_listed; k++)
                        gain += u->listed[k]->iommu == inst;
                if (gain == 0)
                        continue;
                a = reallocarray(inst->devices, inst->n_devices + gain, sizeof(*a));
                if (!a)
                        return -ENOMEM;
                inst->devices = a;
        }
        diff->retired_groups = calloc(MAX(n_old_groups, (size_t)1), sizeof(TopoGroup *));
        diff->retired_devices = calloc(MAX(n_old_devices, (size_t)1), sizeof(TopoDevice *));
        diff->changes = calloc(MAX(n_old_devices + f->n_devices, (size_t)1),
                               sizeof(TopologyChange));
        if (!diff->retired_groups || !diff->retired_devices || !diff->changes)
                return -ENOMEM;
        return 0;
}

/* Removes p from the array a[0..*n); whether it was there. */
static bool array_remove(void **a, size_t *n, const void *p) {
        for (size_t i = 0; i < *n; i++)
                if (a[i] == p) {
                        memmove(&a[i], &a[i + 1], (*n - i - 1) * sizeof(*a));
                        (*n)--;
                        return true;
                }
        return false;
}

/* Inserts p into the sorted array a[0..*n), which has room for it, after its equals. */
static void array_insert(void **a, size_t *n, void *p, int (*cmp)(const void *, const void *)) {
        size_t lo = 0, hi = *n;

        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;

                if (cmp(&a[mid], &p) <= 0)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        memmove(&a[lo + 1], &a[lo], (*n - lo) * sizeof(*a));
        a[lo] = p;
        (*n)++;
}

/* Takes group g and its members out of t, into the diff. */
static void update_retire_group(Update *u, TopoGroup *g, TopologyDiff *diff) {
        TopologyPrivate *tp = (TopologyPrivate *)u->t;
        Topology *t = u->t;

        (void)array_remove((void **)t->groups, &t->n_groups, g);
        for (size_t k = 0; k < g->n_devices; k++) {
                TopoDevice *d = g->devices[k];

                (void)array_remove((void **)t->devices, &t->n_devices, d);
                if (d->has_cdev)
                        (void)array_remove((void **)tp->by_cdev, &tp->n_by_cdev, d);
                if (d->iommu)
                        (void)array_remove((void **)d->iommu->devices, &d->iommu->n_devices, d);
                diff->retired_devices[diff->n_retired_devices++] = d;
        }
        diff->retired_groups[diff->n_retired_groups++] = g;
}

static bool update_names_group(const Update *u, unsigned id) {
        return bsearch(&id, u->ids, u->n_ids, sizeof(*u->ids), uint_cmp) != NULL;
}

/* Drops the problems found reading the replaced groups; the new reading brings its own. */
static void update_drop_problems(Update *u) {
        Topology *t = u->t;
        size_t k = 0;

        for (size_t i = 0; i < t->n_problems; i++) {
                TopologyProblem *p = &t->problems[i];

                if (p->group != TOPOLOGY_NO_GROUP && update_names_group(u, p->group)) {
                        free(p->path);
                        free(p->message);
                        continue;
                }
                t->problems[k++] = *p;
        }
        t->n_problems = k;
}

/* As topology_load() would: a device listed in two groups cannot be trusted in either. */
static void update_check_twins(Update *u, TopoDevice *d) {
        TopoDevice **found = bsearch(&d, u->t->devices, u->t->n_devices, sizeof(d),
                                     topo_device_cmp);
        Topology *t = u->t;

        if (!found)
                return;
        /* Equal names sit next to each other: look at the whole run. */
        while (found > t->devices && topo_device_cmp(found - 1, &d) == 0)
                found--;
        for (; found < t->devices + t->n_devices && topo_device_cmp(found, &d) == 0; found++) {
                TopologyProblem *p;

                if (*found == d || !(*found)->group || !d->group)
                        continue;
                (*found)->group->broken = d->group->broken = true;
                p = &t->problems[t->n_problems];
                *p = (TopologyProblem){ .line = 0, .group = d->group->id };
                p->path = strdup("kernel/iommu_groups");
                if (asprintf(&p->message, "device %s is a member of groups %u and %u", d->name,
                             (*found)->group->id, d->group->id) < 0)
                        p->message = NULL;
                if (p->path && p->message)
                        t->n_problems++;
                else {
                        free(p->path);
                        free(p->message);
                }
                return;
        }
}

static void update_splice(Update *u, TopologyDiff *diff) {
        TopologyPrivate *tp = (TopologyPrivate *)u->t;
        Topology *t = u->t, *f = &u->fresh->pub;

        for (size_t i = 0; i < u->n_ids; i++) {
                TopoGroup *g = update_old_group(u, i);

                if (g)
                        update_retire_group(u, g, diff);
        }
        update_drop_problems(u);
        for (size_t i = 0; i < f->n_groups; i++)
                array_insert((void **)t->groups, &t->n_groups, f->groups[i], topo_group_cmp);
        for (size_t i = 0; i < f->n_devices; i++) {
                TopoDevice *d = f->devices[i];

                array_insert((void **)t->devices, &t->n_devices, d, topo_device_cmp);
                if (d->has_cdev)
                        array_insert((void **)tp->by_cdev, &tp->n_by_cdev, d,
                                     topo_device_cdev_cmp);
        }
        for (size_t i = 0; i < u->n_listed; i++)
                array_insert((void **)u->listed[i]->iommu->devices, &u->listed[i]->iommu->n_devices,
                             u->listed[i], topo_device_cmp);
        /* Both arrays may be NULL (no problems anywhere): memcpy() may not see them then. */
        if (f->n_problems > 0)
                memcpy(t->problems + t->n_problems, f->problems,
                       f->n_problems * sizeof(*f->problems));
        t->n_problems += f->n_problems;
        f->n_problems = 0;
        for (size_t i = 0; i < f->n_devices; i++)
                update_check_twins(u, f->devices[i]);
}

/* ---- differences ---- */

static bool device_differs(const TopoDevice *a, const TopoDevice *b) {
        unsigned ga = a->group ? a->group->id : TOPOLOGY_NO_GROUP;
        unsigned gb = b->group ? b->group->id : TOPOLOGY_NO_GROUP;

        return !(a->driver && b->driver ? streq(a->driver, b->driver) : a->driver == b->driver) ||
               a->has_cdev != b->has_cdev || a->cdev_major != b->cdev_major ||
               a->cdev_minor != b->cdev_minor || ga != gb || a->vendor != b->vendor ||
               a->device != b->device || a->class != b->class;
}

/* Merges two arrays of devices sorted by name into the changes from before to now. */
static void diff_merge(TopologyDiff *diff, TopoDevice *const *before, size_t n_before,
                       TopoDevice *const *now, size_t n_now) {
        size_t i = 0, k = 0;

        while (i < n_before || k < n_now) {
                int c = i == n_before ? 1 : k == n_now ? -1 : topo_device_cmp(&before[i], &now[k]);

                if (c < 0)
                        diff->changes[diff->n_changes++] = (TopologyChange){
                                TOPOLOGY_DEVICE_REMOVED, NULL, before[i++] };
                else if (c > 0)
                        diff->changes[diff->n_changes++] = (TopologyChange){
                                TOPOLOGY_DEVICE_ADDED, now[k++], NULL };
                else {
                        if (device_differs(before[i], now[k]))
                                diff->changes[diff->n_changes++] = (TopologyChange){
                                        TOPOLOGY_DEVICE_CHANGED, now[k], before[i] };
                        i++, k++;
                }
        }
}

int topology_diff_replace(Topology *old, const Topology *t, TopologyDiff *ret) {
        assert_return(old && t && ret, -EINVAL);

        *ret = (TopologyDiff){ .full = true, .old = old };
        ret->changes = calloc(MAX(old->n_devices + t->n_devices, (size_t)1),
                              sizeof(*ret->changes));
        if (!ret->changes) {
                topology_diff_done(ret);
                return -ENOMEM;
        }
        diff_merge(ret, old->devices, old->n_devices, t->devices, t->n_devices);
        return 0;
}

void topology_diff_done(TopologyDiff *d) {
        if (!d)
                return;
        free(d->changes);
        topology_free(d->old);
        for (size_t i = 0; i < d->n_retired_devices; i++)
                topo_device_free(d->retired_devices[i]);
        free(d->retired_devices);
        for (size_t i = 0; i < d->n_retired_groups; i++)
                topo_group_free(d->retired_groups[i]);
        free(d->retired_groups);
        *d = (TopologyDiff){};
}

int topology_update_groups(Topology *t, int sysfs_root_fd, const unsigned *ids, size_t n_ids,
                           TopologyDiff *ret, Error *err) {
        Update u = { .t = t, .root_fd = sysfs_root_fd };
        TopologyDiff diff = {};
        int r;

        assert_return(t && ret, -EINVAL);
        assert_return(ids || n_ids == 0, -EINVAL);
        assert_return(sysfs_root_fd >= 0, -EBADF);

        r = update_set_ids(&u, ids, n_ids);
        if (r < 0)
                error_set(err, r, "out of memory updating the topology");
        if (r >= 0)
                r = update_read(&u, err);
        if (r >= 0 && (r = update_reserve(&u, &diff)) < 0)
                error_set(err, r, "out of memory updating the topology");
        if (r >= 0) {
                update_splice(&u, &diff);
                /* The retired devices in name order, to merge with the fresh ones. */
                qsort(diff.retired_devices, diff.n_retired_devices, sizeof(TopoDevice *),
                      topo_device_cmp);
                diff_merge(&diff, diff.retired_devices, diff.n_retired_devices,
                           u.fresh->pub.devices, u.fresh->pub.n_devices);
                /* Everything read is t's now: only the scratch arrays go. */
                u.fresh->pub.n_groups = u.fresh->pub.n_devices = 0;
        }
        topology_free(u.fresh ? &u.fresh->pub : NULL);
        free(u.listed);
        free(u.ids);
        if (r < 0) {
                topology_diff_done(&diff);
                return r;
        }
        *ret = diff;
        return 0;
}

/* ---- where sysfs puts a device ---- */

static bool parse_group_name(const char *s, unsigned *ret) {
        unsigned long v;
        char *end;

        if (s[0] < '0' || s[0] > '9' || (s[0] == '0' && s[1]))
                return false;
        errno = 0;
        v = strtoul(s, &end, 10);
        if (errno || *end || v >= TOPOLOGY_NO_GROUP)
                return false;
        *ret = (unsigned)v;
        return true;
}

int topology_device_group(int sysfs_root_fd, const char *devpath, const char *name,
                          unsigned *ret) {
        _cleanup_free_ char *target = NULL;
        _cleanup_close_ int fd = -EBADF;
        char path[PATH_MAX];
        const char *base;
        int r;

        assert_return(sysfs_root_fd >= 0, -EBADF);
        assert_return(devpath || name, -EINVAL);
        assert_return(ret, -EINVAL);

        if (devpath) {
                /* The kernel's DEVPATH is absolute in sysfs: "/devices/...". */
                if (!strneq(devpath, "/devices/", 9))
                        return -EINVAL;
                snprintf(path, sizeof(path), "%s", devpath + 1);
        } else if (strchr(name, '/') || streq(name, "..") || streq(name, "."))
                return -EINVAL;
        else
                snprintf(path, sizeof(path), "bus/%s/devices/%s",
                         strlen(name) == 12 && name[4] == ':' ? "pci" : "platform", name);
        fd = sysfs_openat_beneath(sysfs_root_fd, path, O_PATH | O_DIRECTORY, true);
        if (fd < 0)
                return fd == -ENOTDIR ? -ENOENT : fd;
        r = sysfs_readlink(fd, "iommu_group", &target);
        if (r < 0)
                return r == -EINVAL ? -ENOENT : r;
        base = strrchr(target, '/');
        if (!parse_group_name(base ? base + 1 : target, ret))
                return -ENOENT;
        return 0;
}
