/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * backend-kernel: the production Backend.  Real ioctls on /dev/iommu and on
 * VFIO device cdevs, with the argument structures of iommufd-abi.h.
 *
 * Every call that reaches the kernel (open of /dev/iommu and of device
 * nodes, close of iommufd/device/fault fds, ioctl, read/write on fault fds,
 * mmap/munmap for the MAP_FILE fallback) goes through a BackendKernelSyscalls
 * table.  The default one calls the real syscalls; tests replace it with a
 * responder that decodes the ABI structures as the kernel does.  fstat() and
 * readlinkat() used to identify fds are not part of the seam: tests give
 * them real fds and a fake sysfs tree instead.
 */

#include <stdint.h>
#include <sys/types.h>

#include "backend.h"
#include "error.h"

/* Each returns >= 0 on success (a new fd for open, a byte count for read/write) or -errno. */
typedef struct BackendKernelSyscalls {
        int (*open)(void *userdata, const char *path, int flags);
        int (*close)(void *userdata, int fd);
        int (*ioctl)(void *userdata, int fd, unsigned long request, void *arg);
        ssize_t (*read)(void *userdata, int fd, void *buf, size_t count);
        ssize_t (*write)(void *userdata, int fd, const void *buf, size_t count);
        /*
         * MAP_SHARED mapping of [offset, offset+length) of fd; offset is page aligned.  addr is
         * NULL (anywhere) or a page-aligned address inside a reservation the caller owns, where
         * the mapping must go (MAP_FIXED over the reservation).
         */
        int (*mmap)(void *userdata, void *addr, size_t length, int prot, int fd, uint64_t offset,
                    void **ret_addr);
        int (*munmap)(void *userdata, void *addr, size_t length);
} BackendKernelSyscalls;

typedef struct BackendKernelConfig {
        /* sysfs, to identify device fds and find cdev nodes.  The fd is borrowed (dup'ed). */
        int sysfs_fd;               /* < 0: open sysfs_root */
        const char *sysfs_root;     /* NULL: "/sys" */
        const char *dev_root;       /* where "iommu" and "vfio/devices/" are; NULL: "/dev" */
        const BackendKernelSyscalls *syscalls; /* NULL: backend_kernel_syscalls_real */
        void *userdata;             /* passed to every syscalls callback */
        /*
         * Without IOMMU_IOAS_MAP_FILE: how many mappings of memory fds that no area uses any
         * more a context keeps for the next map of the same file (0: none).
         */
        size_t fallback_idle_max;
} BackendKernelConfig;

#define BACKEND_KERNEL_FALLBACK_IDLE_DEFAULT 0
#define BACKEND_KERNEL_CONFIG_INIT                                                              \
        ((BackendKernelConfig){ .sysfs_fd = -EBADF,                                             \
                                .fallback_idle_max = BACKEND_KERNEL_FALLBACK_IDLE_DEFAULT })

/* The real syscalls, converted to negative errno. */
extern const BackendKernelSyscalls backend_kernel_syscalls_real;

/*
 * Opens <dev_root>/iommu once to probe which iommufd ioctls the kernel knows
 * (see the probe table in backend-kernel.c) and fills Backend.features.
 * Fails, with a sentence saying why, when /dev/iommu is missing or cannot be
 * opened or does not answer IOMMU_IOAS_ALLOC: the daemon never falls back to
 * the simulated backend on its own.
 */
int backend_kernel_new(Backend **ret, const BackendKernelConfig *cfg, Error *err);

/*
 * How many MAP_FILE-fallback mappings (mmap of a memory fd) the backend holds
 * right now, over all contexts, idle cached ones included.  For tests and diagnostics.
 */
size_t backend_kernel_fallback_mappings(Backend *b);

/*
 * Takes over an iommufd and the device fds bound to it (dev_ids[i] is the
 * device id of dev_fds[i]) that a previous daemon left in the service
 * manager's fd store.  Every fd is taken, also on failure.  MAP_FILE-fallback
 * mappings are not known to the new context: the kernel still holds their
 * pages, and they are unmapped like any other.
 */
int backend_kernel_context_adopt(Backend *b, int iommufd, const uint32_t *dev_ids, int *dev_fds,
                                 size_t n, BackendContext **ret, Error *err);
/* The context's fd of a bound device (borrowed), -ENOENT when it has none. */
int backend_kernel_context_device_fd(BackendContext *c, uint32_t dev_id);
/*
 * Takes over the fd of fault queue fault_id of an adopted context (taken also
 * on failure): the fault object lives in the iommufd, but its fd is the only
 * way to read it, so the fd store keeps that too.
 */
int backend_kernel_context_adopt_fault(BackendContext *c, uint32_t fault_id, int fd);
/* The context's fd of fault queue fault_id (borrowed), -ENOENT when it has none. */
int backend_kernel_context_fault_fd(BackendContext *c, uint32_t fault_id);
