/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Devices of backend-vfio.  The legacy API has no per-device file before a device is in
 * a container, so a device is named by one of two fds:
 *
 *   - its IOMMU group's file, /dev/vfio/<group>, opened by a client (whose permission to
 *     open it is the proof of access) and passed to iommud; it names the group's one
 *     device bound to a VFIO driver;
 *   - its sysfs directory, which device_open() returns when iommud opens on a client's
 *     behalf after the policy allowed it.  device_fd_identify() refuses directories, so a
 *     client cannot pass one off as a device.
 *
 * Binding opens the group file (once per context: the kernel lets one open file hold a
 * group) and checks it is viable; attaching adds the group to the IOAS's container.  The
 * devices of a group share its container, so they share one address space, as with
 * iommufd.
 */

#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "assert-util.h"
#include "macros.h"
#include "node-holders.h"
#include "vfio-abi.h"
#include "vfio-internal.h"

/* ---- sysfs ---- */

static bool name_is_valid(const char *name) {
        return name && name[0] != '\0' && !strchr(name, '/') && !streq(name, ".") &&
               !streq(name, "..");
}

/* The number at the end of an iommu_group link. */
static int group_from_link(int dir_fd, const char *path, unsigned *ret) {
        char target[PATH_MAX], *end;
        const char *base;
        unsigned long n;
        ssize_t len;

        len = readlinkat(dir_fd, path, target, sizeof(target) - 1);
        if (len < 0)
                return -ENODEV;
        target[len] = '\0';
        base = strrchr(target, '/');
        base = base ? base + 1 : target;
        errno = 0;
        n = strtoul(base, &end, 10);
        if (errno != 0 || end == base || *end != '\0' || n > UINT_MAX)
                return -ENODEV;
        *ret = (unsigned)n;
        return 0;
}

static int device_group(BackendVfio *v, const char *name, unsigned *ret) {
        char path[PATH_MAX];

        snprintf(path, sizeof(path), "bus/pci/devices/%s/iommu_group", name);
        return group_from_link(v->sysfs_fd, path, ret);
}

static DIR *group_devices_dir(BackendVfio *v, unsigned group) {
        char path[64];
        int fd;
        DIR *d;

        snprintf(path, sizeof(path), "kernel/iommu_groups/%u/devices", group);
        fd = openat(v->sysfs_fd, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return NULL;
        d = fdopendir(fd);
        if (!d)
                safe_close(fd);
        return d;
}

static bool bound_to_vfio(DIR *d, const char *member) {
        char path[PATH_MAX], target[PATH_MAX];
        const char *base;
        ssize_t n;

        snprintf(path, sizeof(path), "%s/driver", member);
        n = readlinkat(dirfd(d), path, target, sizeof(target) - 1);
        if (n < 0)
                return false;
        target[n] = '\0';
        base = strrchr(target, '/');
        base = base ? base + 1 : target;
        return strneq(base, "vfio", 4);
}

/* The group's one device bound to a VFIO driver. */
static int group_vfio_device(BackendVfio *v, unsigned group, char **ret, Error *err) {
        _cleanup_free_ char *found = NULL;
        unsigned n = 0;
        DIR *d;

        d = group_devices_dir(v, group);
        if (!d)
                return error_set(err, -ENODEV, "IOMMU group %u has no devices in sysfs", group);
        for (struct dirent *de; (de = readdir(d));) {
                if (de->d_name[0] == '.' || !bound_to_vfio(d, de->d_name))
                        continue;
                if (n++ == 0)
                        found = strdup(de->d_name);
        }
        closedir(d);
        if (n == 0)
                return error_set(err, -ENODEV,
                                 "IOMMU group %u has no device bound to a VFIO driver", group);
        if (n > 1)
                return error_set(err, -EINVAL,
                                 "IOMMU group %u has %u devices bound to VFIO drivers: its file "
                                 "does not say which one is meant; attach the device by name",
                                 group, n);
        if (!found)
                return error_set(err, -ENOMEM, "out of memory");
        *ret = TAKE_PTR(found);
        return 0;
}

/* The member of the group whose sysfs directory st is. */
static int group_member_by_inode(BackendVfio *v, unsigned group, const struct stat *st,
                                 char **ret) {
        int r = -ENODEV;
        DIR *d;

        d = group_devices_dir(v, group);
        if (!d)
                return -ENODEV;
        for (struct dirent *de; (de = readdir(d));) {
                struct stat m;

                if (de->d_name[0] == '.' || fstatat(dirfd(d), de->d_name, &m, 0) < 0)
                        continue;
                if (m.st_dev == st->st_dev && m.st_ino == st->st_ino) {
                        *ret = strdup(de->d_name);
                        r = *ret ? 0 : -ENOMEM;
                        break;
                }
        }
        closedir(d);
        return r;
}

/* Whether the group has a "direct" (firmware 1:1, not relaxable) reserved region. */
static bool group_has_direct(BackendVfio *v, unsigned group) {
        char path[64], line[128], type[32];
        bool direct = false;
        FILE *f;
        int fd;

        snprintf(path, sizeof(path), "kernel/iommu_groups/%u/reserved_regions", group);
        fd = openat(v->sysfs_fd, path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return false;
        f = fdopen(fd, "re");
        if (!f) {
                safe_close(fd);
                return false;
        }
        while (!direct && fgets(line, sizeof(line), f))
                direct = sscanf(line, "%*s %*s %31s", type) == 1 && streq(type, "direct");
        fclose(f);
        return direct;
}

/* The group whose node under <dev_root>/vfio st is (same device number, or same inode). */
static int group_of_node(BackendVfio *v, const struct stat *st, unsigned *ret) {
        char path[PATH_MAX];
        int r = -ENODEV;
        DIR *d;

        snprintf(path, sizeof(path), "%s/vfio", v->dev_root);
        d = opendir(path);
        if (!d)
                return -ENODEV;
        for (struct dirent *de; (de = readdir(d));) {
                struct stat n;
                char *end;
                unsigned long id;

                errno = 0;
                id = strtoul(de->d_name, &end, 10);
                if (errno != 0 || end == de->d_name || *end != '\0' || id > UINT_MAX ||
                    fstatat(dirfd(d), de->d_name, &n, 0) < 0)
                        continue;
                if ((S_ISCHR(st->st_mode) && S_ISCHR(n.st_mode) && st->st_rdev == n.st_rdev) ||
                    (st->st_dev == n.st_dev && st->st_ino == n.st_ino)) {
                        *ret = (unsigned)id;
                        r = 0;
                        break;
                }
        }
        closedir(d);
        return r;
}

static const char *fd_kind(mode_t mode) {
        if (S_ISFIFO(mode))
                return "a pipe";
        if (S_ISSOCK(mode))
                return "a socket";
        if (S_ISDIR(mode))
                return "a directory";
        if (S_ISBLK(mode))
                return "a block device";
        return "not a device";
}

/* A group file a client passed: its group number. */
static int identify_group_fd(BackendVfio *v, int fd, unsigned *ret, Error *err) {
        struct stat st;
        int flags;

        flags = fcntl(fd, F_GETFL);
        if (flags < 0)
                return error_set(err, -EBADF, "fd %d is not an open file descriptor", fd);
        if (flags & O_PATH)
                return error_set(err, -EBADF,
                                 "fd %d is an O_PATH descriptor, not an open VFIO group file", fd);
        if (fstat(fd, &st) < 0)
                return error_set(err, negative_errno(), "cannot stat fd %d: %m", fd);
        if (!S_ISCHR(st.st_mode) && !S_ISREG(st.st_mode))
                return error_set(err, -EBADF, "fd %d is %s, not a VFIO group file", fd,
                                 fd_kind(st.st_mode));
        if (group_of_node(v, &st, ret) < 0)
                return error_set(err, -ENODEV, "fd %d is not a VFIO group file of %s/vfio", fd,
                                 v->dev_root);
        return 0;
}

int vfio_device_fd_identify(Backend *b, int fd, char **ret_name, Error *err) {
        BackendVfio *v = (BackendVfio *)b;
        unsigned group;
        int r;

        assert_return(b, -EINVAL);
        assert_return(ret_name, -EINVAL);
        r = identify_group_fd(v, fd, &group, err);
        if (r < 0)
                return r;
        return group_vfio_device(v, group, ret_name, err);
}

int vfio_device_open(Backend *b, const char *name, int *ret_fd, Error *err) {
        BackendVfio *v = (BackendVfio *)b;
        char path[PATH_MAX];
        unsigned group;
        int fd;

        assert_return(b, -EINVAL);
        assert_return(ret_fd, -EINVAL);
        if (!name_is_valid(name))
                return error_set(err, -EINVAL, "\"%s\" is not a device name", name ? name : "");
        if (device_group(v, name, &group) < 0)
                return error_set(err, -ENODEV, "device %s has no IOMMU group in sysfs", name);
        snprintf(path, sizeof(path), "bus/pci/devices/%s", name);
        fd = openat(v->sysfs_fd, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return error_set(err, -ENODEV, "cannot open the sysfs directory of device %s: %m",
                                 name);
        *ret_fd = fd;
        return 0;
}

/* Who holds the device's group file (<dev_root>/vfio/N): VFIO lets one open file have it. */
int vfio_device_holders(Backend *b, const char *name, pid_t *pids, size_t n_max, size_t *ret_n,
                        Error *err) {
        BackendVfio *v = (BackendVfio *)b;
        char path[PATH_MAX];
        unsigned group;
        struct stat st;
        int r;

        assert_return(b, -EINVAL);
        assert_return(pids || n_max == 0, -EINVAL);
        assert_return(ret_n, -EINVAL);
        if (!name_is_valid(name))
                return error_set(err, -EINVAL, "\"%s\" is not a device name", name ? name : "");
        if (device_group(v, name, &group) < 0)
                return error_set(err, -ENODEV, "device %s has no IOMMU group in sysfs", name);
        snprintf(path, sizeof(path), "%s/vfio/%u", v->dev_root, group);
        if (stat(path, &st) < 0)
                return error_set(err, negative_errno(), "cannot stat %s: %m", path);
        r = node_holders(&st, pids, n_max, ret_n);
        if (r < 0)
                return error_set(err, r, "cannot read the processes' fds in /proc: %s",
                                 strerror(-r));
        return 0;
}

/* ---- binding ---- */

typedef struct DeviceRef {
        char *name;
        unsigned group;
        int group_fd; /* the client's group file, or -EBADF (iommud opens it) */
} DeviceRef;

static int resolve(BackendVfio *v, int fd, DeviceRef *ret, Error *err) {
        struct stat st;
        int r;

        if (fstat(fd, &st) < 0)
                return error_set(err, -EBADF, "fd %d is not an open file descriptor", fd);
        if (!S_ISDIR(st.st_mode)) {
                r = vfio_device_fd_identify(&v->base, fd, &ret->name, err);
                if (r < 0)
                        return r;
                ret->group_fd = fd;
                return identify_group_fd(v, fd, &ret->group, err);
        }
        if (group_from_link(fd, "iommu_group", &ret->group) < 0 ||
            group_member_by_inode(v, ret->group, &st, &ret->name) < 0)
                return error_set(err, -ENODEV,
                                 "fd %d is not the sysfs directory of a device "
                                 "in an IOMMU group",
                                 fd);
        ret->group_fd = -EBADF;
        return 0;
}

static VfioDevice *device_by_name(BackendVfio *v, const char *name) {
        for (VfioContext *c = v->contexts; c; c = c->next)
                for (size_t i = 0; i < c->n_devices; i++)
                        if (streq(c->devices[i]->name, name))
                                return c->devices[i];
        return NULL;
}

static VfioGroup *group_find(VfioContext *c, unsigned id) {
        for (size_t i = 0; i < c->n_groups; i++)
                if (c->groups[i]->id == id)
                        return c->groups[i];
        return NULL;
}

static int group_check_status(BackendVfio *v, VfioGroup *g, Error *err) {
        struct iommud_vfio_group_status st = { .argsz = sizeof(st) };
        int r;

        r = vfio_sys_ioctl(v, g->fd, IOMMUD_VFIO_GROUP_GET_STATUS, &st);
        if (r < 0)
                return vfio_error(err, r, "VFIO_GROUP_GET_STATUS");
        if (!(st.flags & IOMMUD_VFIO_GROUP_FLAGS_VIABLE))
                return error_set(err, -EPERM,
                                 "IOMMU group %u is not viable: a member is bound to a host "
                                 "driver",
                                 g->id);
        if (st.flags & IOMMUD_VFIO_GROUP_FLAGS_CONTAINER_SET)
                return error_set(err, -EBUSY, "IOMMU group %u is already in a container", g->id);
        return 0;
}

/* The client's open file is the group's one: keep a reference of our own. */
static int group_dup(const DeviceRef *ref, int *ret, Error *err) {
        int fd = fcntl(ref->group_fd, F_DUPFD_CLOEXEC, 3);

        if (fd < 0)
                return error_set(err, negative_errno(),
                                 "cannot duplicate the file of IOMMU "
                                 "group %u: %m",
                                 ref->group);
        *ret = fd;
        return 0;
}

static int group_open_node(BackendVfio *v, const DeviceRef *ref, int *ret, Error *err) {
        char path[PATH_MAX];
        int fd;

        snprintf(path, sizeof(path), "%s/vfio/%u", v->dev_root, ref->group);
        fd = v->sys->open(v->userdata, path, O_RDWR | O_CLOEXEC);
        switch (fd) {
        case -EBUSY:
                return error_set(err, fd,
                                 "IOMMU group %u is open elsewhere (a process uses it through "
                                 "the legacy VFIO API)",
                                 ref->group);
        case -ENOENT:
                return error_set(err, -ENODEV,
                                 "there is no %s: no device of IOMMU group %u is bound to a "
                                 "VFIO driver",
                                 path, ref->group);
        default:
                if (fd < 0)
                        return error_set(err, fd, "cannot open %s: %s", path, strerror(-fd));
        }
        *ret = fd;
        return 0;
}

static int group_open(VfioContext *c, const DeviceRef *ref, VfioGroup **ret, Error *err) {
        BackendVfio *v = vfio_of(c);
        _cleanup_free_ VfioGroup *g = calloc(1, sizeof(VfioGroup));
        VfioGroup **groups;
        int r;

        if (!g)
                return error_set(err, -ENOMEM, "out of memory");
        g->id = ref->group;
        g->client_file = ref->group_fd >= 0;
        r = ref->group_fd >= 0 ? group_dup(ref, &g->fd, err) : group_open_node(v, ref, &g->fd, err);
        if (r < 0)
                return r;
        r = group_check_status(v, g, err);
        groups = r < 0 ? NULL : reallocarray(c->groups, c->n_groups + 1, sizeof(*groups));
        if (!groups) {
                vfio_sys_close(v, g->fd);
                return r < 0 ? r : error_set(err, -ENOMEM, "out of memory");
        }
        c->groups = groups;
        c->groups[c->n_groups++] = g;
        *ret = TAKE_PTR(g);
        return 0;
}

static void group_close(VfioContext *c, VfioGroup *g) {
        for (size_t i = 0; i < c->n_groups; i++)
                if (c->groups[i] == g) {
                        c->groups[i] = c->groups[--c->n_groups];
                        break;
                }
        vfio_sys_close(vfio_of(c), g->fd);
        free(g);
}

/* Who may bind: not bound anywhere, its group not another context's, no firmware 1:1 map. */
static int bind_check(VfioContext *c, const DeviceRef *ref, Error *err) {
        BackendVfio *v = vfio_of(c);

        if (device_by_name(v, ref->name))
                return error_set(err, -EINVAL, "device %s is already bound", ref->name);
        for (VfioContext *o = v->contexts; o; o = o->next)
                if (o != c && group_find(o, ref->group))
                        return error_set(err, -EPERM,
                                         "IOMMU group %u of device %s is owned by another "
                                         "context",
                                         ref->group, ref->name);
        if (group_has_direct(v, ref->group))
                return error_set(err, -EINVAL,
                                 "device %s needs a firmware 1:1 (direct) mapping in IOMMU "
                                 "group %u",
                                 ref->name, ref->group);
        return 0;
}

int vfio_device_bind(BackendContext *bc, int fd, uint32_t *ret_dev_id, Error *err) {
        VfioContext *c = (VfioContext *)bc;
        _cleanup_free_ char *name = NULL;
        DeviceRef ref = {};
        VfioDevice *d, **devices;
        VfioGroup *g;
        int r;

        assert_return(bc, -EINVAL);
        assert_return(ret_dev_id, -EINVAL);
        r = resolve(vfio_of(c), fd, &ref, err);
        name = ref.name;
        if (r < 0)
                return r;
        r = bind_check(c, &ref, err);
        if (r < 0)
                return r;
        g = group_find(c, ref.group);
        if (!g) {
                r = group_open(c, &ref, &g, err);
                if (r < 0)
                        return r;
        }
        d = calloc(1, sizeof(*d));
        devices = reallocarray(c->devices, c->n_devices + 1, sizeof(*devices));
        if (devices)
                c->devices = devices;
        if (!d || !devices || vfio_obj_add(c, VFIO_OBJ_DEVICE, d, &d->id) < 0) {
                free(d);
                if (g->n_bound == 0)
                        group_close(c, g);
                return error_set(err, -ENOMEM, "out of memory");
        }
        c->devices[c->n_devices++] = d;
        d->name = TAKE_PTR(name);
        d->group = g;
        g->n_bound++;
        *ret_dev_id = d->id;
        return 0;
}

/* ---- attaching ---- */

static VfioDevice *device_lookup(VfioContext *c, uint32_t id, Error *err) {
        VfioDevice *d = vfio_obj_find(c, id, VFIO_OBJ_DEVICE);

        if (!d)
                (void)error_set(err, -ENOENT, "device %" PRIu32 " is not bound to this context",
                                id);
        return d;
}

/* Devices of g attached in c, other than skip. */
static unsigned group_attached(VfioContext *c, const VfioGroup *g, const VfioDevice *skip) {
        unsigned n = 0;

        for (size_t i = 0; i < c->n_devices; i++) {
                const VfioDevice *d = c->devices[i];

                if (d != skip && d->group == g && d->ioas)
                        n++;
        }
        return n;
}

static int attach_record(VfioContext *c, VfioDevice *d, VfioIoas *ioas) {
        /* The IOAS's domain gets an id of its own, as iommufd's automatic HWPT does. */
        if (ioas->hwpt_id == 0 && vfio_obj_add(c, VFIO_OBJ_HWPT, ioas, &ioas->hwpt_id) < 0)
                return -ENOMEM;
        d->ioas = ioas;
        ioas->n_attached++;
        return 0;
}

static void detach_record(VfioContext *c, VfioDevice *d) {
        VfioIoas *ioas = d->ioas;

        d->ioas = NULL;
        /* A dirty-tracking domain stays for whoever allocated it. */
        if (--ioas->n_attached == 0 && ioas->hwpt_id != 0 && !ioas->hwpt_held) {
                vfio_obj_remove(c, ioas->hwpt_id);
                ioas->hwpt_id = 0;
        }
}

/* The IOAS's container was let go: its groups join a new one, or their devices detach. */
static void rejoin(VfioContext *c, VfioIoas *ioas) {
        for (size_t i = 0; i < c->n_devices; i++) {
                VfioDevice *d = c->devices[i];

                if (d->ioas != ioas || d->group->ioas == ioas)
                        continue;
                if (d->group->stale || vfio_container_join(c, ioas, d->group, NULL) < 0)
                        detach_record(c, d);
        }
}

static int detach_device(VfioContext *c, VfioDevice *d, VfioLeave how, Error *err) {
        VfioIoas *ioas = d->ioas;
        int r;

        if (group_attached(c, d->group, d) == 0) {
                r = vfio_container_leave(c, d->group, how);
                if (r == -EBUSY)
                        return error_set(err, r,
                                         "a client still holds the device fd of %s, and IOMMU "
                                         "group %u shares the container of IOAS %" PRIu32
                                         " with other groups: close the device fd first",
                                         d->name, d->group->id, ioas->id);
        }
        detach_record(c, d);
        if (ioas->container < 0 && ioas->n_attached > 0)
                rejoin(c, ioas);
        return 0;
}

/* A replace: the group, and with it every attached device of it, moves to another IOAS. */
static int move_group(VfioContext *c, VfioGroup *g, VfioIoas *to, Error *err) {
        VfioIoas *from = g->ioas;
        int r;

        r = vfio_container_leave(c, g, VFIO_LEAVE_TRY);
        if (r == -EBUSY)
                return error_set(err, r,
                                 "a client holds a device fd of IOMMU group %u, which keeps it in "
                                 "the container of IOAS %" PRIu32 ": close it before moving",
                                 g->id, from->id);
        r = vfio_container_join(c, to, g, err);
        if (r < 0) {
                if (vfio_container_join(c, from, g, NULL) < 0)
                        rejoin(c, from);
                return r;
        }
        for (size_t i = 0; i < c->n_devices; i++) {
                VfioDevice *d = c->devices[i];

                if (d->group != g || d->ioas != from)
                        continue;
                /* The new domain's id first, as iommufd allocates before it destroys. */
                if (attach_record(c, d, to) < 0) {
                        detach_record(c, d);
                        (void)vfio_container_leave(c, g, VFIO_LEAVE_FORCE);
                        return error_set(err, -ENOMEM, "out of memory");
                }
                d->ioas = from;
                detach_record(c, d);
                d->ioas = to;
        }
        return 0;
}

static VfioIoas *pt_lookup(VfioContext *c, uint32_t pt_id) {
        VfioIoas *ioas = vfio_obj_find(c, pt_id, VFIO_OBJ_IOAS);

        return ioas ?: vfio_obj_find(c, pt_id, VFIO_OBJ_HWPT);
}

int vfio_device_attach(BackendContext *bc, uint32_t dev_id, uint32_t pasid, uint32_t *pt_id,
                       Error *err) {
        VfioContext *c = (VfioContext *)bc;
        VfioDevice *d;
        VfioIoas *ioas;
        int r;

        assert_return(bc, -EINVAL);
        assert_return(pt_id, -EINVAL);
        if (pasid != BACKEND_NO_PASID)
                return error_set(err, -EOPNOTSUPP,
                                 "attaching at a PASID needs iommufd; this kernel offers only "
                                 "VFIO type1");
        d = device_lookup(c, dev_id, err);
        if (!d)
                return -ENOENT;
        ioas = pt_lookup(c, *pt_id);
        if (!ioas)
                return error_set(err, -ENOENT, "IOAS or HWPT %" PRIu32 " does not exist", *pt_id);
        if (d->ioas == ioas)
                goto done;
        if (d->group->ioas && d->group->ioas != ioas) {
                if (!d->ioas)
                        return error_set(err, -EINVAL,
                                         "device %s shares IOMMU group %u with devices attached "
                                         "to IOAS %" PRIu32 ": a group has one address space",
                                         d->name, d->group->id, d->group->ioas->id);
                r = move_group(c, d->group, ioas, err);
                if (r < 0)
                        return r;
                goto done;
        }
        if (!d->group->ioas) {
                r = vfio_container_join(c, ioas, d->group, err);
                if (r < 0)
                        return r;
        }
        if (attach_record(c, d, ioas) < 0) {
                if (group_attached(c, d->group, d) == 0)
                        (void)vfio_container_leave(c, d->group, VFIO_LEAVE_FORCE);
                return error_set(err, -ENOMEM, "out of memory");
        }
done:
        *pt_id = ioas->hwpt_id;
        return 0;
}

int vfio_device_detach(BackendContext *bc, uint32_t dev_id, uint32_t pasid, Error *err) {
        VfioContext *c = (VfioContext *)bc;
        VfioDevice *d;

        assert_return(bc, -EINVAL);
        if (pasid != BACKEND_NO_PASID)
                return error_set(err, -EOPNOTSUPP,
                                 "PASIDs need iommufd; this kernel offers only VFIO type1");
        d = device_lookup(c, dev_id, err);
        if (!d)
                return -ENOENT;
        if (!d->ioas)
                return error_set(err, -EINVAL, "device %" PRIu32 " is not attached", dev_id);
        return detach_device(c, d, VFIO_LEAVE_REVOKE, err);
}

static void device_free(VfioContext *c, VfioDevice *d) {
        VfioGroup *g = d->group;

        vfio_obj_remove(c, d->id);
        for (size_t i = 0; i < c->n_devices; i++)
                if (c->devices[i] == d) {
                        c->devices[i] = c->devices[--c->n_devices];
                        break;
                }
        free(d->name);
        free(d);
        if (--g->n_bound == 0)
                group_close(c, g);
}

int vfio_device_unbind(BackendContext *bc, uint32_t dev_id, Error *err) {
        VfioContext *c = (VfioContext *)bc;
        VfioDevice *d;
        bool lingers;

        assert_return(bc, -EINVAL);
        d = device_lookup(c, dev_id, err);
        if (!d)
                return -ENOENT;
        /* Whatever a client still holds, the device must reach nothing of the context. */
        if (d->ioas && !vfio_of(c)->keep_kernel_state)
                (void)detach_device(c, d, VFIO_LEAVE_FORCE, NULL);
        /* The group file goes with its last device; a client's copy of it keeps it open. */
        lingers = d->group->client_file && d->group->n_bound == 1;
        device_free(c, d);
        return lingers;
}

void vfio_device_release_all(VfioContext *c) {
        while (c->n_devices > 0)
                device_free(c, c->devices[c->n_devices - 1]);
        free(c->devices);
        c->devices = NULL;
}

int backend_vfio_context_open_device(BackendContext *bc, uint32_t dev_id, int *ret_fd, Error *err) {
        VfioContext *c = (VfioContext *)bc;
        VfioDevice *d;
        int fd;

        assert_return(bc && ret_fd, -EINVAL);
        d = device_lookup(c, dev_id, err);
        if (!d)
                return -ENOENT;
        if (!d->ioas)
                return error_set(err, -EINVAL,
                                 "device %s is not attached: a VFIO device fd exists only while "
                                 "its group is in a container",
                                 d->name);
        fd = vfio_sys_ioctl(vfio_of(c), d->group->fd, IOMMUD_VFIO_GROUP_GET_DEVICE_FD, d->name);
        if (fd < 0)
                return vfio_error(err, fd, "VFIO_GROUP_GET_DEVICE_FD");
        *ret_fd = fd;
        return 0;
}

/* ---- restart ---- */

int vfio_device_adopt_group(VfioContext *c, unsigned id, int fd, VfioIoas *ioas, bool stale) {
        VfioGroup *g = calloc(1, sizeof(VfioGroup)), **groups;

        groups = reallocarray(c->groups, c->n_groups + 1, sizeof(*groups));
        if (groups)
                c->groups = groups;
        if (!g || !groups) {
                free(g);
                vfio_sys_close(vfio_of(c), fd);
                return -ENOMEM;
        }
        *g = (VfioGroup){ .id = id, .fd = fd, .ioas = ioas, .stale = stale };
        if (ioas)
                ioas->n_groups++;
        c->groups[c->n_groups++] = g;
        return 0;
}

int vfio_device_adopt(VfioContext *c, uint32_t id, const char *name, unsigned group,
                      VfioIoas *ioas) {
        VfioGroup *g = group_find(c, group);
        VfioDevice *d, **devices;

        if (!g || (ioas && g->ioas != ioas))
                return -EINVAL;
        d = calloc(1, sizeof(*d));
        devices = reallocarray(c->devices, c->n_devices + 1, sizeof(*devices));
        if (devices)
                c->devices = devices;
        if (!d || !devices || !(d->name = strdup(name)) ||
            vfio_obj_add_id(c, VFIO_OBJ_DEVICE, d, id) < 0) {
                if (d)
                        free(d->name);
                free(d);
                return -ENOMEM;
        }
        d->id = id;
        d->group = g;
        c->devices[c->n_devices++] = d;
        g->n_bound++;
        if (ioas) {
                d->ioas = ioas;
                ioas->n_attached++;
        }
        return 0;
}
