/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * What the files of the kernel backend share.  Nothing outside kernel/ includes this;
 * backend-kernel.h is the interface, iommufd-abi.h the kernel's structures.
 *
 *   backend-kernel.c    the backend: feature probing, the ops table
 *   kernel-syscalls.c   the real syscalls behind the BackendKernelSyscalls seam
 *   kernel-context.c    contexts (one iommufd each), their fd tables, restart survival
 *   kernel-ioas.c       IOAS operations, IOMMU_DESTROY, IOMMU_OPTION
 *   kernel-fallback.c   IOMMU_IOAS_MAP_FILE on kernels without it: mmap + IOMMU_IOAS_MAP
 *   kernel-device.c     device fds, VFIO bind and attach, HW info, HWPT allocation
 *   kernel-fault.c      fault queues
 *   kernel-error.c      errno to sentences shared by several operations
 */

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "backend-kernel.h"
#include "error.h"
#include "macros.h"

typedef struct BackendKernel {
        Backend base;
        int sysfs_fd;
        char *dev_root;
        const BackendKernelSyscalls *sys;
        void *userdata;
        size_t n_fallback_maps;
        size_t fallback_idle_max;
} BackendKernel;

/* The MAP_FILE fallback's areas of one IOAS, in an IovaTree (kernel-fallback.c). */
typedef struct IoasAreas IoasAreas;
/* One mmap of a memory fd for the fallback, cached per context (kernel-fallback.c). */
typedef struct FallbackMap FallbackMap;

typedef struct KernelFd {
        uint32_t id; /* dev_id or fault id */
        int fd;
        int req_fd;  /* a device's armed request eventfd, -EBADF when none */
} KernelFd;

/* A PASID of a device the backend attached (so that an unbind detaches it). */
typedef struct KernelPasid {
        uint32_t dev_id;
        uint32_t pasid;
} KernelPasid;
/* An HWPT the context allocated with a fault queue: the queue cannot go while the HWPT lives. */
typedef struct KernelFaultUse {
        uint32_t hwpt_id;
        uint32_t fault_id;
} KernelFaultUse;

typedef struct KernelContext {
        BackendContext base;
        int iommufd;
        bool adopted; /* from a previous daemon: its fault uses are not known */
        KernelFd *devices;
        size_t n_devices;
        KernelPasid *pasids;
        size_t n_pasids;
        KernelFd *faults;
        size_t n_faults;
        KernelFaultUse *fault_uses;
        size_t n_fault_uses;
        IoasAreas *ioas;
        size_t n_ioas;
        FallbackMap *maps; /* every fallback mapping, most recently used first */
        size_t n_idle;     /* of them used by no area */
} KernelContext;

static inline BackendKernel *kernel_of(BackendContext *c) {
        return (BackendKernel *)c->backend;
}

static inline int sys_ioctl(KernelContext *c, int fd, unsigned long request, void *arg) {
        BackendKernel *k = kernel_of(&c->base);
        return k->sys->ioctl(k->userdata, fd, request, arg);
}

static inline void sys_close(BackendKernel *k, int fd) {
        if (fd >= 0)
                (void)k->sys->close(k->userdata, fd);
}

/* ---- fd tables (kernel-context.c) ---- */

int kernel_fd_add(KernelFd **array, size_t *n, uint32_t id, int fd);
KernelFd *kernel_fd_find(KernelFd *array, size_t n, uint32_t id);
void kernel_fd_remove(KernelFd *array, size_t *n, KernelFd *f);

/* ---- fault queues (kernel-fault.c) ---- */

int kernel_fault_use_add(KernelContext *c, uint32_t hwpt_id, uint32_t fault_id);
/* The object id is gone: an HWPT among it no longer uses its queue. */
void kernel_fault_use_drop(KernelContext *c, uint32_t id);
/* IOMMU_DESTROY of a fault queue of a context that knows the queue's users. */
int kernel_fault_destroy(KernelContext *c, KernelFd *f, Error *err);

/* ---- errno to sentences (kernel-error.c) ---- */

/* The generic sentence for an errno the per-operation mapping did not name. */
int kernel_error(Error *err, int r, const char *ioctl_name);
/* The sentence for a failed IOAS map or copy. */
int kernel_map_error(Error *err, int r, const char *ioctl_name, uint32_t ioas_id, uint32_t flags,
                     uint64_t length, uint64_t iova);

/* ---- MAP_FILE fallback (kernel-fallback.c) ---- */

int kernel_fallback_map_file(KernelContext *c, uint32_t ioas_id, uint32_t flags, int fd,
                             uint64_t start, uint64_t length, uint64_t *iova, Error *err);
/* After IOAS_COPY: the copy at dst_iova references the same pages as a fallback source. */
int kernel_fallback_copied(KernelContext *c, uint32_t src_ioas_id, uint64_t src_iova,
                           uint32_t dst_ioas_id, uint64_t dst_iova, uint64_t length);
/* Releases every tracked area of the IOAS that lies wholly inside [first, last]. */
void kernel_fallback_release_inside(KernelContext *c, uint32_t ioas_id, uint64_t first,
                                    uint64_t last);
/* The IOAS is gone: releases all its tracked areas. */
void kernel_fallback_drop(KernelContext *c, uint32_t ioas_id);
/* The context goes: releases every tracked area of every IOAS and every cached mapping. */
void kernel_fallback_release_all(KernelContext *c);
void kernel_fallback_unmap_unrecorded(KernelContext *c, uint32_t ioas_id, uint64_t iova,
                                      uint64_t length);

/* ---- the operations, one per BackendOps member (the table is in backend-kernel.c) ---- */

int kernel_device_fd_identify(Backend *b, int fd, char **ret_name, Error *err);
int kernel_device_open(Backend *b, const char *name, int *ret_fd, Error *err);
int kernel_device_holders(Backend *b, const char *name, pid_t *pids, size_t n_max,
                          size_t *ret_n, Error *err);
int kernel_context_new(Backend *b, BackendContext **ret, Error *err);
void kernel_context_free(BackendContext *bc);
int kernel_context_fd(BackendContext *bc);
int kernel_option(BackendContext *bc, uint32_t option_id, uint16_t op, uint32_t object_id,
                  uint64_t *val64, Error *err);
int kernel_ioas_alloc(BackendContext *bc, uint32_t *ret_id, Error *err);
int kernel_destroy(BackendContext *bc, uint32_t id, Error *err);
int kernel_ioas_map_file(BackendContext *bc, uint32_t ioas_id, uint32_t flags, int fd,
                         uint64_t start, uint64_t length, uint64_t *iova, Error *err);
int kernel_ioas_map_va(BackendContext *bc, uint32_t ioas_id, uint32_t flags, uint64_t user_va,
                       uint64_t length, uint64_t *iova, Error *err);
int kernel_ioas_unmap(BackendContext *bc, uint32_t ioas_id, uint64_t iova, uint64_t length,
                      uint64_t *ret_unmapped, Error *err);
int kernel_ioas_copy(BackendContext *bc, uint32_t dst_ioas_id, uint32_t src_ioas_id,
                     uint32_t flags, uint64_t src_iova, uint64_t length, uint64_t *dst_iova,
                     Error *err);
int kernel_ioas_iova_ranges(BackendContext *bc, uint32_t ioas_id, IovaRange *ranges,
                            size_t *n_ranges, uint64_t *ret_alignment, Error *err);
int kernel_ioas_allow_iovas(BackendContext *bc, uint32_t ioas_id, const IovaRange *ranges,
                            size_t n, Error *err);
int kernel_device_bind(BackendContext *bc, int device_fd, uint32_t *ret_dev_id, Error *err);
int kernel_device_unbind(BackendContext *bc, uint32_t dev_id, Error *err);
int kernel_device_request_fd(BackendContext *bc, uint32_t dev_id, int *ret_fd, Error *err);
/* Points the device's request channel nowhere again and closes the eventfd. */
void kernel_device_disarm_request(KernelContext *c, KernelFd *d);
int kernel_device_attach(BackendContext *bc, uint32_t dev_id, uint32_t pasid, uint32_t *pt_id,
                         Error *err);
int kernel_device_detach(BackendContext *bc, uint32_t dev_id, uint32_t pasid, Error *err);
int kernel_hw_info(BackendContext *bc, uint32_t dev_id, HwInfo *ret, Error *err);
int kernel_hwpt_alloc(BackendContext *bc, const HwptAllocArgs *args, uint32_t *ret_id,
                      Error *err);
int kernel_hwpt_set_dirty_tracking(BackendContext *bc, uint32_t hwpt_id, bool enable,
                                   Error *err);
int kernel_hwpt_get_dirty_bitmap(BackendContext *bc, const DirtyBitmapArgs *args, Error *err);
int kernel_fault_queue_alloc(BackendContext *bc, uint32_t *ret_id, int *ret_fd, Error *err);
int kernel_fault_read(BackendContext *bc, uint32_t fault_id, FaultRecord *buf, size_t n_max,
                      size_t *ret_n, Error *err);
int kernel_fault_respond(BackendContext *bc, uint32_t fault_id, uint32_t cookie, uint32_t code,
                         Error *err);
