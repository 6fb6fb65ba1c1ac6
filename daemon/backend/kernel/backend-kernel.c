/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * The kernel backend as a whole: its construction, the probe of what the running kernel's
 * iommufd knows, and the BackendOps table the kernel-*.c files implement.
 */

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "assert-util.h"
#include "iommufd-abi.h"
#include "kernel-private.h"
#include "log.h"

/* FaultRecord and IovaRange are read and written in place of the kernel's structures. */
_Static_assert(sizeof(FaultRecord) == sizeof(struct iommud_hwpt_pgfault), "FaultRecord size");
_Static_assert(offsetof(FaultRecord, addr) == offsetof(struct iommud_hwpt_pgfault, addr),
               "FaultRecord.addr");
_Static_assert(offsetof(FaultRecord, cookie) == offsetof(struct iommud_hwpt_pgfault, cookie),
               "FaultRecord.cookie");
_Static_assert(sizeof(IovaRange) == sizeof(struct iommud_iova_range), "IovaRange size");
_Static_assert(offsetof(IovaRange, last) == offsetof(struct iommud_iova_range, last),
               "IovaRange.last");

static void kernel_free(Backend *b) {
        BackendKernel *k = (BackendKernel *)b;

        safe_close(k->sysfs_fd);
        free(k->dev_root);
        free(k);
}

static const BackendOps kernel_ops = {
        .name = "kernel",
        .free = kernel_free,
        .device_fd_identify = kernel_device_fd_identify,
        .device_open = kernel_device_open,
        .device_holders = kernel_device_holders,
        .context_new = kernel_context_new,
        .context_free = kernel_context_free,
        .context_fd = kernel_context_fd,
        .option = kernel_option,
        .ioas_alloc = kernel_ioas_alloc,
        .destroy = kernel_destroy,
        .ioas_map_file = kernel_ioas_map_file,
        .ioas_map_va = kernel_ioas_map_va,
        .ioas_unmap = kernel_ioas_unmap,
        .ioas_copy = kernel_ioas_copy,
        .ioas_iova_ranges = kernel_ioas_iova_ranges,
        .ioas_allow_iovas = kernel_ioas_allow_iovas,
        .device_bind = kernel_device_bind,
        .device_unbind = kernel_device_unbind,
        .device_request_fd = kernel_device_request_fd,
        .device_attach = kernel_device_attach,
        .device_detach = kernel_device_detach,
        .hw_info = kernel_hw_info,
        .hwpt_alloc = kernel_hwpt_alloc,
        .hwpt_set_dirty_tracking = kernel_hwpt_set_dirty_tracking,
        .hwpt_get_dirty_bitmap = kernel_hwpt_get_dirty_bitmap,
        .fault_queue_alloc = kernel_fault_queue_alloc,
        .fault_read = kernel_fault_read,
        .fault_respond = kernel_fault_respond,
};

/*
 * Feature probing.  Every iommufd ioctl is issued once with an argument whose
 * size field says 4 bytes, shorter than any ioctl's mandatory fields: a kernel
 * that knows the ioctl rejects it with EINVAL before doing anything, one that
 * does not answers ENOTTY.  Nothing is created.  Features the size probe
 * cannot see are inferred from an ioctl of the same kernel release, or from
 * sysfs (VFIO cdev support registers the "vfio-dev" class).
 */
static const struct {
        uint32_t cmd;
        const char *name;
        uint64_t features; /* what an answer other than ENOTTY turns on */
} probe_table[] = {
        { IOMMUD_IOMMUFD_CMD_IOAS_ALLOC, "IOMMU_IOAS_ALLOC", BACKEND_FEATURE_IOAS },
        { IOMMUD_IOMMUFD_CMD_OPTION, "IOMMU_OPTION", BACKEND_FEATURE_OPTION },
        { IOMMUD_IOMMUFD_CMD_HWPT_ALLOC, "IOMMU_HWPT_ALLOC", BACKEND_FEATURE_HWPT_ALLOC },
        { IOMMUD_IOMMUFD_CMD_GET_HW_INFO, "IOMMU_GET_HW_INFO", BACKEND_FEATURE_HW_INFO },
        { IOMMUD_IOMMUFD_CMD_HWPT_SET_DIRTY_TRACKING, "IOMMU_HWPT_SET_DIRTY_TRACKING",
          BACKEND_FEATURE_DIRTY_TRACKING },
        /* Nested HWPTs came with user cache invalidation (6.8). */
        { IOMMUD_IOMMUFD_CMD_HWPT_INVALIDATE, "IOMMU_HWPT_INVALIDATE",
          BACKEND_FEATURE_HWPT_INVALIDATE | BACKEND_FEATURE_NESTING },
        { IOMMUD_IOMMUFD_CMD_FAULT_QUEUE_ALLOC, "IOMMU_FAULT_QUEUE_ALLOC",
          BACKEND_FEATURE_FAULT_QUEUE },
        { IOMMUD_IOMMUFD_CMD_IOAS_MAP_FILE, "IOMMU_IOAS_MAP_FILE", BACKEND_FEATURE_MAP_FILE },
        { IOMMUD_IOMMUFD_CMD_VIOMMU_ALLOC, "IOMMU_VIOMMU_ALLOC", BACKEND_FEATURE_VIOMMU },
        /* PASID attach (HWPT_ALLOC_PASID, VFIO ATTACH_PASID) came in the same release (6.14). */
        { IOMMUD_IOMMUFD_CMD_IOAS_CHANGE_PROCESS, "IOMMU_IOAS_CHANGE_PROCESS",
          BACKEND_FEATURE_CHANGE_PROCESS | BACKEND_FEATURE_PASID },
};

static int kernel_probe(BackendKernel *k, Error *err) {
        _cleanup_free_ char *path = NULL;
        uint64_t features = 0;
        int fd;

        if (asprintf(&path, "%s/iommu", k->dev_root) < 0)
                return error_set(err, -ENOMEM, "out of memory");
        fd = k->sys->open(k->userdata, path, O_RDWR | O_CLOEXEC);
        if (fd == -ENOENT)
                return error_set(err, fd,
                                 "%s does not exist: this kernel has no iommufd "
                                 "(CONFIG_IOMMUFD) or the iommufd module is not loaded",
                                 path);
        if (fd == -EACCES || fd == -EPERM)
                return error_set(err, fd, "permission denied opening %s", path);
        if (fd < 0)
                return error_set(err, fd, "cannot open %s: %s", path, strerror(-fd));

        for (size_t i = 0; i < ELEMENTSOF(probe_table); i++) {
                /* Room for any argument, but the size field claims only itself. */
                uint64_t arg[8] = {};
                int r;

                *(uint32_t *)arg = sizeof(uint32_t);
                r = k->sys->ioctl(k->userdata, fd, IOMMUD_IOMMUFD_IO(probe_table[i].cmd), arg);
                log_debug("probe %s: %s", probe_table[i].name, r < 0 ? strerror(-r) : "ok");
                if (r != -ENOTTY)
                        features |= probe_table[i].features;
        }
        sys_close(k, fd);

        if (!(features & BACKEND_FEATURE_IOAS))
                return error_set(err, -EOPNOTSUPP,
                                 "%s does not answer IOMMU_IOAS_ALLOC: not an iommufd device",
                                 path);
        if (faccessat(k->sysfs_fd, "class/vfio-dev", F_OK, 0) == 0)
                features |= BACKEND_FEATURE_VFIO_CDEV;
        k->base.features = features;
        return 0;
}

int backend_kernel_new(Backend **ret, const BackendKernelConfig *cfg, Error *err) {
        BackendKernel *k;
        int r;

        assert_return(ret, -EINVAL);
        assert_return(cfg, -EINVAL);

        k = calloc(1, sizeof(*k));
        if (!k)
                return error_set(err, -ENOMEM, "out of memory");
        k->base.ops = &kernel_ops;
        k->sys = cfg->syscalls ?: &backend_kernel_syscalls_real;
        k->userdata = cfg->userdata;
        k->fallback_idle_max = cfg->fallback_idle_max;
        k->sysfs_fd = -EBADF;

        if (cfg->sysfs_fd >= 0) {
                k->sysfs_fd = fcntl(cfg->sysfs_fd, F_DUPFD_CLOEXEC, 3);
                if (k->sysfs_fd < 0) {
                        r = error_set(err, negative_errno(), "cannot duplicate sysfs fd %d: %m",
                                      cfg->sysfs_fd);
                        goto fail;
                }
        } else {
                const char *root = cfg->sysfs_root ?: "/sys";
                k->sysfs_fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                if (k->sysfs_fd < 0) {
                        r = error_set(err, negative_errno(), "cannot open sysfs root %s: %m",
                                      root);
                        goto fail;
                }
        }
        k->dev_root = strdup(cfg->dev_root ?: "/dev");
        if (!k->dev_root) {
                r = error_set(err, -ENOMEM, "out of memory");
                goto fail;
        }
        r = kernel_probe(k, err);
        if (r < 0)
                goto fail;

        *ret = &k->base;
        return 0;
fail:
        kernel_free(&k->base);
        return r;
}

size_t backend_kernel_fallback_mappings(Backend *b) {
        return ((BackendKernel *)b)->n_fallback_maps;
}
