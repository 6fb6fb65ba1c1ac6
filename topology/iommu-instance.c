/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "sysfs.h"
#include "topology-internal.h"

/* class/iommu: the IOMMU instances, their kind and the devices behind each. */

void iommu_instance_free(IommuInstance *i) {
        if (!i)
                return;
        free(i->name);
        free(i->kind);
        free(i->devices);
        free(i);
}

static int iommu_ptr_cmp(const void *a, const void *b) {
        const IommuInstance *const *x = a, *const *y = b;
        return strcmp((*x)->name, (*y)->name);
}

/*
 * The instance's directory, relative to the root: class/iommu/NAME is a symlink to it, or a
 * plain directory taken as the instance itself.  *ret stays NULL when the entry became a
 * problem instead.
 */
static int iommu_resolve(Loader *l, int class_fd, const char *name, const char *path,
                         char **ret) {
        _cleanup_free_ char *target = NULL;
        int r, oom = 0;

        r = sysfs_readlink(class_fd, name, &target);
        if (r == -EINVAL) {
                /* A plain directory: accept it as the instance itself. */
                *ret = strdup(path);
                return *ret ? 0 : -ENOMEM;
        }
        if (r < 0) {
                if (r == -ENOMEM)
                        return r;
                topology_problem_errno(l, path, r, &oom);
                return oom;
        }
        r = sysfs_resolve_link("class/iommu", target, ret);
        if (r == -EXDEV)
                return topology_problem_add(l, path, 0,
                                            "symlink target '%s' leads outside the "
                                            "sysfs root, not followed",
                                            target);
        return r;
}

static const char *iommu_kind(int ifd, const char *name) {
        struct stat st;

        if (fstatat(ifd, "intel-iommu", &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode))
                return "intel";
        if (fstatat(ifd, "amd-iommu", &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode))
                return "amd";
        /* Neither Arm SMMU has a marker directory: arm-smmu-v3 names it "smmu3.<address>",
         * arm-smmu (SMMUv1/v2, MMU-500) "smmu.<address>". */
        if (strneq(name, "smmu3.", 6))
                return "arm-smmu-v3";
        if (strneq(name, "smmu.", 5))
                return "arm-smmu";
        return "unknown";
}

/* Lists the devices behind the instance at the root-relative path resolved. */
static int iommu_read_devices(Loader *l, IommuInstance *inst, int ifd, const char *resolved) {
        Topology *t = &l->tp->pub;
        _cleanup_close_ int dfd = -EBADF;
        char path[PATH_MAX];
        size_t allocated = 0;
        struct dirent *de;
        int r = 0, oom = 0;

        dfd = sysfs_openat_beneath(ifd, "devices", O_RDONLY | O_DIRECTORY, false);
        if (dfd == -ENOENT)
                return 0; /* an instance with no devices behind it */
        if (dfd < 0) {
                sysfs_path_join(path, sizeof(path), resolved, "devices");
                topology_problem_errno(l, path, dfd, &oom);
                return oom;
        }
        DIR *dir = fdopendir(dfd);
        if (!dir)
                return -errno;
        TAKE_FD(dfd);

        while ((de = readdir(dir))) {
                if (de->d_name[0] == '.')
                        continue;
                /* Only devices that are in a group matter; others are not brokered. */
                TopoDevice *d = topology_find_device(t, de->d_name);
                if (!d)
                        continue;
                if (!topology_grow((void **)&inst->devices, &allocated, inst->n_devices + 1,
                                   sizeof(*inst->devices))) {
                        r = -ENOMEM;
                        break;
                }
                inst->devices[inst->n_devices++] = d;
        }
        closedir(dir);
        if (inst->n_devices > 1)
                qsort(inst->devices, inst->n_devices, sizeof(*inst->devices), topo_device_cmp);
        return r;
}

static int iommu_load(Loader *l, int class_fd, const char *name) {
        Topology *t = &l->tp->pub;
        _cleanup_free_ char *resolved = NULL;
        _cleanup_close_ int ifd = -EBADF;
        char path[PATH_MAX];
        int r, oom = 0;

        snprintf(path, sizeof(path), "class/iommu/%s", name);
        r = iommu_resolve(l, class_fd, name, path, &resolved);
        if (r < 0 || !resolved)
                return r;
        ifd = sysfs_openat_beneath(l->root_fd, resolved, O_RDONLY | O_DIRECTORY, true);
        if (ifd < 0) {
                topology_problem_errno(l, path, ifd, &oom);
                return oom;
        }

        IommuInstance *inst = calloc(1, sizeof(*inst));
        if (!inst)
                return -ENOMEM;
        inst->name = strdup(name);
        inst->kind = strdup(iommu_kind(ifd, name));
        if (!inst->name || !inst->kind ||
            !topology_grow((void **)&t->iommus, &l->tp->allocated_iommus, t->n_iommus + 1,
                           sizeof(*t->iommus))) {
                iommu_instance_free(inst);
                return -ENOMEM;
        }
        t->iommus[t->n_iommus++] = inst;

        return iommu_read_devices(l, inst, ifd, resolved);
}

static int iommus_load(Loader *l) {
        _cleanup_close_ int cfd = -EBADF;
        struct dirent *de;
        int r = 0;

        cfd = sysfs_openat_beneath(l->root_fd, "class/iommu", O_RDONLY | O_DIRECTORY, false);
        if (cfd == -ENOENT)
                return 0; /* no IOMMU registered with the class: nothing to list */
        if (cfd < 0) {
                int oom = 0;
                topology_problem_errno(l, "class/iommu", cfd, &oom);
                return oom;
        }
        DIR *dir = fdopendir(cfd);
        if (!dir)
                return -errno;
        int dir_fd = TAKE_FD(cfd);
        while ((de = readdir(dir))) {
                if (de->d_name[0] == '.')
                        continue;
                r = iommu_load(l, dir_fd, de->d_name);
                if (r < 0)
                        break;
        }
        closedir(dir);
        return r;
}

IommuInstance *topology_find_iommu(const Topology *t, const char *name) {
        IommuInstance key = { .name = (char *)name }, *kp = &key, **found;

        if (t->n_iommus == 0)
                return NULL;
        found = bsearch(&kp, t->iommus, t->n_iommus, sizeof(*t->iommus), iommu_ptr_cmp);
        return found ? *found : NULL;
}

int iommu_device_read_link(Loader *l, const Topology *t, TopoDevice *d, const char *dev_path) {
        _cleanup_free_ char *name = NULL;
        _cleanup_close_ int dev_fd = -EBADF;
        bool broken = false;
        int oom = 0;

        dev_fd = sysfs_openat_beneath(l->root_fd, dev_path, O_PATH | O_DIRECTORY, true);
        if (dev_fd < 0)
                return dev_fd == -ENOMEM ? dev_fd : 0; /* reported when the device was read */
        l->group = d->group ? d->group->id : TOPOLOGY_NO_GROUP;
        topo_device_read_link_name(l, dev_fd, dev_path, "iommu", false, &name, &broken, &oom);
        l->group = TOPOLOGY_NO_GROUP;
        if (oom < 0)
                return oom;
        if (broken && d->group)
                d->group->broken = true;
        if (name)
                d->iommu = topology_find_iommu(t, name);
        return 0;
}

int iommu_instances_load(Loader *l) {
        Topology *t = &l->tp->pub;
        int r;

        r = iommus_load(l);
        if (r < 0)
                return r;
        if (t->n_iommus > 1)
                qsort(t->iommus, t->n_iommus, sizeof(*t->iommus), iommu_ptr_cmp);

        /*
         * The kernel links a device to its IOMMU and lists it under the IOMMU's devices in
         * one step, so the lists answer for every device and no per-device link needs
         * reading.  A device no list names (a hand-made or damaged tree) falls back to its
         * own iommu link.
         */
        for (size_t i = 0; i < t->n_iommus; i++)
                for (size_t j = 0; j < t->iommus[i]->n_devices; j++)
                        if (!t->iommus[i]->devices[j]->iommu)
                                t->iommus[i]->devices[j]->iommu = t->iommus[i];
        for (size_t i = 0; i < l->n_links; i++) {
                TopoDevice *d = l->links[i].device;

                if (d->iommu || !l->links[i].dev_path)
                        continue;
                r = iommu_device_read_link(l, &l->tp->pub, d, l->links[i].dev_path);
                if (r < 0)
                        return r;
        }
        return 0;
}
