/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Devices: identifying a device fd through sysfs, opening a device's cdev, binding it to a
 * context (VFIO_DEVICE_BIND_IOMMUFD), attaching and detaching its RID or a PASID, HW info
 * and HWPT allocation.
 */

#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "assert-util.h"
#include "iommufd-abi.h"
#include "kernel-private.h"
#include "node-holders.h"

/* ---- device fds ---- */

static const char *fd_kind(mode_t mode) {
        if (S_ISFIFO(mode))
                return "a pipe";
        if (S_ISSOCK(mode))
                return "a socket";
        if (S_ISREG(mode))
                return "a regular file";
        if (S_ISDIR(mode))
                return "a directory";
        if (S_ISBLK(mode))
                return "a block device";
        if (S_ISLNK(mode))
                return "a symbolic link";
        return "not a device";
}

int kernel_device_fd_identify(Backend *b, int fd, char **ret_name, Error *err) {
        BackendKernel *k = (BackendKernel *)b;
        char link[32], target[PATH_MAX], *slash, *name;
        const char *leaf, *parent;
        struct stat st;
        ssize_t n;
        int flags;

        assert_return(b, -EINVAL);
        assert_return(ret_name, -EINVAL);

        flags = fcntl(fd, F_GETFL);
        if (flags < 0)
                return error_set(err, -EBADF, "fd %d is not an open file descriptor", fd);
        if (flags & O_PATH)
                return error_set(err, -EBADF,
                                 "fd %d is an O_PATH descriptor, not an open VFIO device", fd);
        if (fstat(fd, &st) < 0)
                return error_set(err, negative_errno(), "cannot stat fd %d: %m", fd);
        if (!S_ISCHR(st.st_mode))
                return error_set(err, -EBADF, "fd %d is %s, not a VFIO device", fd,
                                 fd_kind(st.st_mode));

        snprintf(link, sizeof(link), "dev/char/%u:%u", major(st.st_rdev), minor(st.st_rdev));
        n = readlinkat(k->sysfs_fd, link, target, sizeof(target) - 1);
        if (n < 0)
                return error_set(err, -ENODEV,
                                 "fd %d is character device %u:%u, which sysfs does not know",
                                 fd, major(st.st_rdev), minor(st.st_rdev));
        target[n] = '\0';

        /* .../<device>/vfio-dev/vfioN: the device is two levels up. */
        slash = strrchr(target, '/');
        leaf = slash ? slash + 1 : target;
        if (slash)
                *slash = '\0';
        slash = strrchr(target, '/');
        parent = slash ? slash + 1 : NULL;
        if (!slash || !streq(parent, "vfio-dev") || !strneq(leaf, "vfio", 4))
                return error_set(err, -ENODEV,
                                 "fd %d is character device %u:%u (%s), not a VFIO device cdev",
                                 fd, major(st.st_rdev), minor(st.st_rdev), leaf);
        *slash = '\0';
        slash = strrchr(target, '/');
        name = strdup(slash ? slash + 1 : target);
        if (!name)
                return error_set(err, -ENOMEM, "out of memory");
        if (name[0] == '\0' || streq(name, "..") || streq(name, ".")) {
                free(name);
                return error_set(err, -ENODEV, "fd %d: sysfs link %s names no device", fd, link);
        }
        *ret_name = name;
        return 0;
}

static bool device_name_is_valid(const char *name) {
        return name && name[0] != '\0' && !strchr(name, '/') && !streq(name, ".") &&
                !streq(name, "..");
}

/* The cdev node of device name: <dev_root>/vfio/devices/vfioN, N from sysfs. */
static int kernel_device_node(BackendKernel *k, const char *name, char **ret, Error *err) {
        _cleanup_free_ char *dir = NULL, *cdev = NULL;
        _cleanup_close_ int dfd = -EBADF;
        DIR *d;

        if (!device_name_is_valid(name))
                return error_set(err, -EINVAL, "\"%s\" is not a device name", name ? name : "");
        if (asprintf(&dir, "bus/pci/devices/%s/vfio-dev", name) < 0)
                return error_set(err, -ENOMEM, "out of memory");
        dfd = openat(k->sysfs_fd, dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0)
                return error_set(err, -ENODEV, "device %s has no VFIO cdev (no %s in sysfs)",
                                 name, dir);
        d = fdopendir(dfd);
        if (!d)
                return error_set(err, negative_errno(), "cannot read %s: %m", dir);
        TAKE_FD(dfd);
        for (struct dirent *de; (de = readdir(d));)
                if (strneq(de->d_name, "vfio", 4) && de->d_name[4] != '\0') {
                        cdev = strdup(de->d_name);
                        break;
                }
        closedir(d);
        if (!cdev)
                return error_set(err, -ENODEV, "device %s has no vfioN entry under %s", name,
                                 dir);
        if (asprintf(ret, "%s/vfio/devices/%s", k->dev_root, cdev) < 0)
                return error_set(err, -ENOMEM, "out of memory");
        return 0;
}

int kernel_device_open(Backend *b, const char *name, int *ret_fd, Error *err) {
        BackendKernel *k = (BackendKernel *)b;
        _cleanup_free_ char *node = NULL;
        int fd, r;

        assert_return(b, -EINVAL);
        assert_return(ret_fd, -EINVAL);

        r = kernel_device_node(k, name, &node, err);
        if (r < 0)
                return r;
        fd = k->sys->open(k->userdata, node, O_RDWR | O_CLOEXEC);
        if (fd < 0)
                return error_set(err, fd, "cannot open %s for device %s: %s", node, name,
                                 strerror(-fd));
        *ret_fd = fd;
        return 0;
}

int kernel_device_holders(Backend *b, const char *name, pid_t *pids, size_t n_max,
                          size_t *ret_n, Error *err) {
        BackendKernel *k = (BackendKernel *)b;
        _cleanup_free_ char *node = NULL;
        struct stat st;
        int r;

        assert_return(b, -EINVAL);
        assert_return(pids || n_max == 0, -EINVAL);
        assert_return(ret_n, -EINVAL);

        r = kernel_device_node(k, name, &node, err);
        if (r < 0)
                return r;
        if (stat(node, &st) < 0)
                return error_set(err, negative_errno(), "cannot stat %s: %m", node);
        r = node_holders(&st, pids, n_max, ret_n);
        if (r < 0)
                return error_set(err, r, "cannot read the processes' fds in /proc: %s",
                                 strerror(-r));
        return 0;
}

/* ---- binding and attaching ---- */

int kernel_device_bind(BackendContext *bc, int device_fd, uint32_t *ret_dev_id,
                       Error *err) {
        KernelContext *c = (KernelContext *)bc;
        struct iommud_vfio_device_bind_iommufd b = { .argsz = sizeof(b) };
        BackendKernel *k;
        int fd, r;

        assert_return(bc, -EINVAL);
        assert_return(ret_dev_id, -EINVAL);

        k = kernel_of(bc);
        b.iommufd = c->iommufd;
        /* Bound state belongs to the open file description; our dup keeps it alive. */
        fd = fcntl(device_fd, F_DUPFD_CLOEXEC, 3);
        if (fd < 0)
                return error_set(err, negative_errno(), "cannot duplicate device fd %d: %m",
                                 device_fd);
        r = sys_ioctl(c, fd, IOMMUD_VFIO_DEVICE_BIND_IOMMUFD, &b);
        if (r < 0) {
                sys_close(k, fd);
                switch (r) {
                case -EBUSY:
                        return error_set(err, r,
                                         "the device is in use through its legacy VFIO group");
                case -EINVAL:
                        return error_set(err, r,
                                         "the device fd is already bound to an iommufd, or "
                                         "the device needs a firmware 1:1 (direct) mapping");
                case -EBADFD:
                        return error_set(err, r, "the context fd is not an iommufd");
                case -ENODEV:
                        return error_set(err, r, "the device has no IOMMU group");
                case -EPERM:
                        return error_set(err, r,
                                         "the device's group is owned elsewhere (another "
                                         "iommufd, a VFIO container or a host driver on a "
                                         "sibling) or its MSIs are not isolated");
                case -ENOTTY:
                        return error_set(err, r,
                                         "the fd does not answer VFIO_DEVICE_BIND_IOMMUFD: not "
                                         "a VFIO device cdev");
                default:
                        return kernel_error(err, r, "VFIO_DEVICE_BIND_IOMMUFD");
                }
        }
        r = kernel_fd_add(&c->devices, &c->n_devices, b.out_devid, fd);
        if (r < 0) {
                sys_close(k, fd);
                return error_set(err, r, "out of memory");
        }
        *ret_dev_id = b.out_devid;
        return 0;
}

/* ---- PASIDs the backend attached, so that an unbind can detach them all ---- */

static void kernel_device_detach_pasid_quiet(KernelContext *c, int fd, uint32_t pasid) {
        struct iommud_vfio_device_detach_iommufd_pt a = {
                .argsz = sizeof(a),
                .flags = IOMMUD_VFIO_DEVICE_DETACH_PASID,
                .pasid = pasid,
        };

        (void)sys_ioctl(c, fd, IOMMUD_VFIO_DEVICE_DETACH_IOMMUFD_PT, &a);
}

static int pasid_add(KernelContext *c, uint32_t dev_id, uint32_t pasid) {
        KernelPasid *a;

        for (size_t i = 0; i < c->n_pasids; i++)
                if (c->pasids[i].dev_id == dev_id && c->pasids[i].pasid == pasid)
                        return 0;
        a = reallocarray(c->pasids, c->n_pasids + 1, sizeof(*a));
        if (!a)
                return -ENOMEM;
        c->pasids = a;
        a[c->n_pasids++] = (KernelPasid){ .dev_id = dev_id, .pasid = pasid };
        return 0;
}

static void pasid_remove(KernelContext *c, uint32_t dev_id, uint32_t pasid) {
        for (size_t i = 0; i < c->n_pasids; i++)
                if (c->pasids[i].dev_id == dev_id && c->pasids[i].pasid == pasid) {
                        c->pasids[i] = c->pasids[--c->n_pasids];
                        return;
                }
}

/* Detaches every PASID the backend attached and the RID of a device, through its file fd. */
static void kernel_device_detach_all(KernelContext *c, uint32_t dev_id, int fd) {
        struct iommud_vfio_device_detach_iommufd_pt a = { .argsz = sizeof(a) };

        /* Failures change nothing here: a detach of what is not attached is no error. */
        for (size_t i = 0; i < c->n_pasids;) {
                if (c->pasids[i].dev_id != dev_id) {
                        i++;
                        continue;
                }
                a.flags = IOMMUD_VFIO_DEVICE_DETACH_PASID;
                a.pasid = c->pasids[i].pasid;
                (void)sys_ioctl(c, fd, IOMMUD_VFIO_DEVICE_DETACH_IOMMUFD_PT, &a);
                c->pasids[i] = c->pasids[--c->n_pasids];
        }
        a.flags = 0;
        a.pasid = 0;
        (void)sys_ioctl(c, fd, IOMMUD_VFIO_DEVICE_DETACH_IOMMUFD_PT, &a);
}

int kernel_device_unbind(BackendContext *bc, uint32_t dev_id, Error *err) {
        KernelContext *c = (KernelContext *)bc;
        KernelFd *d;

        assert_return(bc, -EINVAL);

        d = kernel_fd_find(c->devices, c->n_devices, dev_id);
        if (!d)
                return error_set(err, -ENOENT, "device %" PRIu32 " is not bound to this context",
                                 dev_id);
        /*
         * The bound state belongs to the open file, which the client may hold too: closing our
         * copy ends nothing then.  Detach through it first, so the device's DMA is blocked
         * whoever keeps the file.
         */
        kernel_device_detach_all(c, dev_id, d->fd);
        kernel_device_disarm_request(c, d);
        sys_close(kernel_of(bc), d->fd);
        kernel_fd_remove(c->devices, &c->n_devices, d);
        /* Whether another process holds the file only a look at every process can tell. */
        return 1;
}

static int set_request_trigger(KernelContext *c, int device_fd, int efd) {
        struct iommud_vfio_irq_set_eventfd set = {
                .argsz = sizeof(set),
                .flags = IOMMUD_VFIO_IRQ_SET_DATA_EVENTFD | IOMMUD_VFIO_IRQ_SET_ACTION_TRIGGER,
                .index = IOMMUD_VFIO_PCI_REQ_IRQ_INDEX,
                .count = 1,
                .fd = efd,
        };

        return sys_ioctl(c, device_fd, IOMMUD_VFIO_DEVICE_SET_IRQS, &set);
}

int kernel_device_request_fd(BackendContext *bc, uint32_t dev_id, int *ret_fd, Error *err) {
        KernelContext *c = (KernelContext *)bc;
        _cleanup_close_ int efd = -EBADF;
        KernelFd *d;
        int r;

        assert_return(bc, -EINVAL);
        assert_return(ret_fd, -EINVAL);

        d = kernel_fd_find(c->devices, c->n_devices, dev_id);
        if (!d)
                return error_set(err, -ENOENT, "device %" PRIu32 " is not bound to this context",
                                 dev_id);
        if (d->req_fd >= 0) {
                *ret_fd = d->req_fd;
                return 0;
        }
        efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (efd < 0)
                return error_set(err, negative_errno(), "cannot create an eventfd: %m");
        r = set_request_trigger(c, d->fd, efd);
        if (r < 0)
                /* EINVAL: no such index (not vfio-pci, or a kernel before 4.0). */
                return error_set(err, r == -EINVAL || r == -ENOTTY ? -EOPNOTSUPP : r,
                                 "the device has no request channel (VFIO_DEVICE_SET_IRQS "
                                 "index %d: %s)", IOMMUD_VFIO_PCI_REQ_IRQ_INDEX, strerror(-r));
        d->req_fd = TAKE_FD(efd);
        *ret_fd = d->req_fd;
        return 0;
}

void kernel_device_disarm_request(KernelContext *c, KernelFd *d) {
        if (d->req_fd < 0)
                return;
        /* The kernel keeps its own reference: point it nowhere, or the client's file would. */
        (void)set_request_trigger(c, d->fd, -1);
        d->req_fd = safe_close(d->req_fd);
}

int kernel_device_attach(BackendContext *bc, uint32_t dev_id, uint32_t pasid,
                         uint32_t *pt_id, Error *err) {
        KernelContext *c = (KernelContext *)bc;
        struct iommud_vfio_device_attach_iommufd_pt a = {
                .argsz = sizeof(a),
                .flags = pasid != BACKEND_NO_PASID ? IOMMUD_VFIO_DEVICE_ATTACH_PASID : 0,
                .pasid = pasid != BACKEND_NO_PASID ? pasid : 0,
        };
        KernelFd *d;
        int r;

        assert_return(bc, -EINVAL);
        assert_return(pt_id, -EINVAL);

        a.pt_id = *pt_id;
        d = kernel_fd_find(c->devices, c->n_devices, dev_id);
        if (!d)
                return error_set(err, -ENOENT, "device %" PRIu32 " is not bound to this context",
                                 dev_id);
        r = sys_ioctl(c, d->fd, IOMMUD_VFIO_DEVICE_ATTACH_IOMMUFD_PT, &a);
        if (r == 0 && pasid != BACKEND_NO_PASID && pasid_add(c, dev_id, pasid) < 0) {
                kernel_device_detach_pasid_quiet(c, d->fd, pasid);
                return error_set(err, -ENOMEM, "out of memory");
        }
        switch (r) {
        case 0:
                *pt_id = a.pt_id;
                return 0;
        case -EADDRINUSE:
                return error_set(err, r,
                                 "a reserved region of the device collides with an existing "
                                 "mapping in %" PRIu32,
                                 *pt_id);
        case -ENOENT:
                return error_set(err, r, "IOAS or HWPT %" PRIu32 " does not exist", *pt_id);
        case -EBUSY:
                return error_set(err, r, "device %" PRIu32 " is being reset", dev_id);
        case -EOPNOTSUPP:
                if (pasid != BACKEND_NO_PASID)
                        return error_set(err, r,
                                         "device %" PRIu32 " cannot attach at PASID %" PRIu32,
                                         dev_id, pasid);
                return error_set(err, r, "device %" PRIu32 " cannot use %" PRIu32, dev_id,
                                 *pt_id);
        case -EINVAL:
                if (pasid != BACKEND_NO_PASID)
                        return error_set(err, r,
                                         "PASID %" PRIu32 " or page table %" PRIu32
                                         " is not valid for device %" PRIu32,
                                         pasid, *pt_id, dev_id);
                return error_set(err, r,
                                 "page table %" PRIu32 " is not compatible with device %" PRIu32,
                                 *pt_id, dev_id);
        default:
                return kernel_error(err, r, "VFIO_DEVICE_ATTACH_IOMMUFD_PT");
        }
}

int kernel_device_detach(BackendContext *bc, uint32_t dev_id, uint32_t pasid,
                         Error *err) {
        KernelContext *c = (KernelContext *)bc;
        struct iommud_vfio_device_detach_iommufd_pt a = {
                .argsz = sizeof(a),
                .flags = pasid != BACKEND_NO_PASID ? IOMMUD_VFIO_DEVICE_DETACH_PASID : 0,
                .pasid = pasid != BACKEND_NO_PASID ? pasid : 0,
        };
        KernelFd *d;
        int r;

        assert_return(bc, -EINVAL);

        d = kernel_fd_find(c->devices, c->n_devices, dev_id);
        if (!d)
                return error_set(err, -ENOENT, "device %" PRIu32 " is not bound to this context",
                                 dev_id);
        r = sys_ioctl(c, d->fd, IOMMUD_VFIO_DEVICE_DETACH_IOMMUFD_PT, &a);
        switch (r) {
        case 0:
                if (pasid != BACKEND_NO_PASID)
                        pasid_remove(c, dev_id, pasid);
                return 0;
        case -EINVAL:
                if (pasid != BACKEND_NO_PASID)
                        return error_set(err, r,
                                         "PASID %" PRIu32 " of device %" PRIu32
                                         " is not valid or not attached",
                                         pasid, dev_id);
                return error_set(err, r, "device %" PRIu32 " is not attached", dev_id);
        case -EOPNOTSUPP:
                return error_set(err, r, "device %" PRIu32 " does not support PASID %" PRIu32,
                                 dev_id, pasid);
        default:
                return kernel_error(err, r, "VFIO_DEVICE_DETACH_IOMMUFD_PT");
        }
}

int kernel_hw_info(BackendContext *bc, uint32_t dev_id, HwInfo *ret, Error *err) {
        KernelContext *c = (KernelContext *)bc;
        struct iommud_hw_info h = { .size = sizeof(h), .dev_id = dev_id };
        int r;

        assert_return(bc, -EINVAL);
        assert_return(ret, -EINVAL);

        r = sys_ioctl(c, c->iommufd, IOMMUD_IOMMU_GET_HW_INFO, &h);
        switch (r) {
        case 0:
                *ret = (HwInfo){
                        .type = h.out_data_type,
                        .max_pasid_log2 = h.out_max_pasid_log2,
                        .capabilities = h.out_capabilities,
                };
                return 0;
        case -ENOENT:
                return error_set(err, r, "device %" PRIu32 " is not bound to this context",
                                 dev_id);
        default:
                return kernel_error(err, r, "IOMMU_GET_HW_INFO");
        }
}

int kernel_hwpt_alloc(BackendContext *bc, const HwptAllocArgs *args, uint32_t *ret_id,
                      Error *err) {
        KernelContext *c = (KernelContext *)bc;
        struct iommud_hwpt_alloc h;
        int r;

        assert_return(bc, -EINVAL);
        assert_return(args, -EINVAL);
        assert_return(ret_id, -EINVAL);

        h = (struct iommud_hwpt_alloc){
                .size = sizeof(h),
                .flags = args->flags,
                .dev_id = args->dev_id,
                .pt_id = args->pt_id,
                .data_type = args->data_type,
                .data_len = args->data_len,
                .data_uptr = (uint64_t)(uintptr_t)args->data,
                .fault_id = (args->flags & IOMMUD_IOMMU_HWPT_FAULT_ID_VALID) ? args->fault_id : 0,
        };
        r = sys_ioctl(c, c->iommufd, IOMMUD_IOMMU_HWPT_ALLOC, &h);
        switch (r) {
        case 0:
                if ((args->flags & IOMMUD_IOMMU_HWPT_FAULT_ID_VALID) &&
                    kernel_fault_use_add(c, h.out_hwpt_id, args->fault_id) < 0) {
                        struct iommud_destroy d = { .size = sizeof(d), .id = h.out_hwpt_id };

                        (void)sys_ioctl(c, c->iommufd, IOMMUD_IOMMU_DESTROY, &d);
                        return error_set(err, -ENOMEM, "out of memory");
                }
                *ret_id = h.out_hwpt_id;
                return 0;
        case -ENOENT:
                return error_set(err, r,
                                 "device %" PRIu32 ", page table %" PRIu32
                                 " or fault queue %" PRIu32 " does not exist",
                                 args->dev_id, args->pt_id, args->fault_id);
        case -EOPNOTSUPP:
                return error_set(err, r,
                                 "HWPT flags 0x%" PRIx32 " or data type %" PRIu32
                                 " are not supported for device %" PRIu32,
                                 args->flags, args->data_type, args->dev_id);
        case -EINVAL:
                return error_set(err, r,
                                 "page table %" PRIu32 " cannot be the parent of this HWPT "
                                 "(nested over nested, parent without NEST_PARENT, or bad data)",
                                 args->pt_id);
        default:
                return kernel_error(err, r, "IOMMU_HWPT_ALLOC");
        }
}
