/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * backend-vfio: the Backend interface over the legacy VFIO API, for kernels
 * without iommufd (every stock Debian kernel: CONFIG_IOMMUFD is not set, the
 * VFIO container and group files are).
 *
 * The model, mapped onto type1:
 *   - an address space (IOAS) is a container (/dev/vfio/vfio) with the type1
 *     IOMMU; the backend keeps each IOAS's mappings itself, so an IOAS exists,
 *     maps and copies before any device is attached, as with iommufd, and its
 *     areas are replayed into the container when the first group joins;
 *   - a device is bound to a context with its IOMMU group's file
 *     (/dev/vfio/<group>), opened once per group and context; attaching a
 *     device adds its group to the IOAS's container; the IOAS's "domain" has
 *     an object id of its own while a device is attached (what iommufd calls
 *     the automatic HWPT);
 *   - the IOVA of an automatic map is chosen here, with iommufd's rule
 *     (IOMMUFD.md 7), inside the ranges VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE
 *     reports; memory fds are mmap'ed by the backend and mapped with
 *     VFIO_IOMMU_MAP_DMA;
 *   - dirty tracking: a HWPT allocated with it over an IOAS is the IOAS's
 *     domain, logging through VFIO_IOMMU_DIRTY_PAGES (vfio-dirty.c), where the
 *     container offers it; type1 reports every pinned page dirty;
 *   - what type1 cannot do (other HWPT objects, nesting, PASID, fault queues,
 *     IOMMU_OPTION, hardware info) answers -EOPNOTSUPP with a sentence saying
 *     the kernel lacks iommufd.
 * Errors follow iommufd's errnos for the same request, so that the daemon's
 * decisions do not depend on the backend.
 *
 * Every call that reaches the kernel (open and close of the container, group
 * and device files, ioctl, mmap/munmap of memory fds) goes through a
 * BackendVfioSyscalls table, which tests replace with a responder that plays
 * the type1 kernel.  sysfs (which group a device is in, its reserved regions)
 * is read directly below a root that is a parameter.
 */

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "backend.h"
#include "error.h"

/* Each returns >= 0 on success (a new fd for open, the ioctl's value) or -errno. */
typedef struct BackendVfioSyscalls {
        int (*open)(void *userdata, const char *path, int flags);
        int (*close)(void *userdata, int fd);
        int (*ioctl)(void *userdata, int fd, unsigned long request, void *arg);
        /* MAP_SHARED mapping of [offset, offset+length) of fd, anywhere; offset page aligned. */
        int (*mmap)(void *userdata, size_t length, int prot, int fd, uint64_t offset,
                    void **ret_addr);
        int (*munmap)(void *userdata, void *addr, size_t length);
} BackendVfioSyscalls;

typedef struct BackendVfioConfig {
        int sysfs_fd;           /* borrowed (dup'ed); < 0: open sysfs_root */
        const char *sysfs_root; /* NULL: "/sys" */
        const char *dev_root;   /* where "vfio/vfio" and "vfio/<group>" are; NULL: "/dev" */
        const BackendVfioSyscalls *syscalls; /* NULL: backend_vfio_syscalls_real */
        void *userdata;
} BackendVfioConfig;

#define BACKEND_VFIO_CONFIG_INIT ((BackendVfioConfig){ .sysfs_fd = -EBADF })

/*
 * The largest alignment an automatic IOVA gets: the huge page size, the cap iommufd
 * applies on kernels with transparent huge pages (iopt_alloc_iova).
 */
#define BACKEND_VFIO_AUTO_ALIGN_MAX (UINT64_C(2) << 20)

extern const BackendVfioSyscalls backend_vfio_syscalls_real;

/*
 * Opens <dev_root>/vfio/vfio once to check the API version and which type1
 * IOMMU the kernel offers (v2, else v1).  Fails with a sentence saying why
 * when there is no container device or no type1 driver.
 */
int backend_vfio_new(Backend **ret, const BackendVfioConfig *cfg, Error *err);
bool backend_is_vfio(const Backend *b);

/* "type1v2" or "type1": what the probe found, for status reports. */
const char *backend_vfio_iommu_type(const Backend *b);

/* mmaps of memory fds the backend holds, over all contexts (tests, diagnostics). */
size_t backend_vfio_mappings(const Backend *b);

/*
 * A new VFIO device fd of the device (VFIO_GROUP_GET_DEVICE_FD), owned by the
 * caller: with the group API a client cannot open its device without the group
 * file, which the backend holds, so this is what a client receives once the
 * device is attached.  The backend keeps no copy: while a client holds one, the
 * group cannot leave its container, and detaching wipes the container instead
 * (see vfio-container.c).  -EINVAL while the device is not attached (its group
 * is in no container), -ENOENT for an unknown device.
 */
int backend_vfio_context_open_device(BackendContext *c, uint32_t dev_id, int *ret_fd, Error *err);

/*
 * Restart survival.  The kernel objects of a context live in its containers and group
 * files: the service manager's fd store keeps those, the daemon's state keeps what
 * backend_vfio_context_save() says, and the next daemon adopts them.  Mappings survive
 * in the kernel (it still pins their pages), but the backend no longer has the memory
 * they were made from: they can be unmapped and stay mapped while a group is in their
 * container, but they cannot be copied or put into a new container.
 */
struct json_object;

/* Calls fn for every container ("ioas<ID>") and group file ("group<N>") fd (borrowed). */
typedef int (*BackendVfioFdFn)(const char *name, int fd, void *userdata);
int backend_vfio_context_foreach_fd(BackendContext *c, BackendVfioFdFn fn, void *userdata);
/* What the backend knows of the context beyond its fds (objects, areas, devices). */
int backend_vfio_context_save(BackendContext *c, struct json_object **ret);
/*
 * A context from a saved state.  take(name) hands over the fd stored under name, or
 * -ENOENT; every fd taken belongs to the context, also on failure.
 */
typedef int (*BackendVfioTakeFn)(const char *name, void *userdata);
int backend_vfio_context_adopt(Backend *b, struct json_object *state, BackendVfioTakeFn take,
                               void *userdata, BackendContext **ret, Error *err);
/*
 * From now on contexts go passively: their fds are closed, but nothing is unmapped and no
 * group taken out of its container, because the fd store keeps them for the next daemon.
 * Called once the state is stored, before a daemon exits to be restarted.
 */
void backend_vfio_keep_kernel_state(Backend *b);
