/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * A kernel stand-in for backend-vfio's syscall seam: the legacy VFIO container and group
 * files and the type1 IOMMU driver, over a simulated topology (the groups, their members
 * and drivers, reserved regions and each IOMMU's aperture and page sizes).  It decodes the
 * real ABI structures of vfio-abi.h as drivers/vfio/{container,group,vfio_iommu_type1}.c
 * do and answers with their errnos:
 *
 *   - "<dev_root>/vfio/vfio" opens a new container (a memfd stands for it); "<dev_root>/
 *     vfio/<group>" opens the group's node file, once at a time (EBUSY for a second open
 *     while the first, or a device fd of the group, is open);
 *   - argsz below the mandatory fields or unknown flags => EINVAL; container ioctls other
 *     than the version, extension and SET_IOMMU answer EINVAL until SET_IOMMU;
 *   - a group whose member is on a host driver (other than pci-stub or a bridge's
 *     pcieport) cannot join a container (EPERM), nor can one with a "direct" region join
 *     a container with an IOMMU (EPERM, as 6.1 on Intel refuses RMRR devices);
 *   - type1 v2: MAP_DMA of page-aligned vaddr/iova/size inside the container's IOVA list,
 *     EEXIST on overlap, ENOSPC past the DMA entry limit; UNMAP_DMA refuses (EINVAL) a
 *     range that cuts a mapping before removing anything, and unmaps 0 bytes where
 *     nothing is mapped; GET_INFO with the migration, DMA-available and IOVA-range
 *     capabilities; DIRTY_PAGES marks every mapped page dirty, as type1 does for devices
 *     behind an IOMMU;
 *   - GET_DEVICE_FD hands out the write end of a pipe whose read end the responder keeps:
 *     when every copy is closed the read end hangs up, which is how the responder knows
 *     a client no longer holds the device (UNSET_CONTAINER answers EBUSY until then).
 *
 * Files are found by inode, so dups and a client's fds act on the same group or container,
 * and a file is released, as the kernel releases it, when no fd of this process refers to
 * it any more (the responder looks in /proc/self/fd): what a test keeps as its fd store
 * keeps a container and its groups alive.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend-vfio.h"
#include "simtopo.h"

typedef struct VfioResponder VfioResponder;

struct VfioResponder {
        const SimTopology *topo; /* borrowed */
        char *dev_root;

        /* Knobs: a kernel of another generation or configuration. */
        bool no_container_node;   /* <dev_root>/vfio/vfio is missing: ENOENT */
        bool type1_only;          /* CHECK_EXTENSION offers TYPE1 but not TYPE1v2 */
        bool no_type1;            /* neither (vfio_iommu_type1 not loaded) */
        bool no_unmap_all;        /* before VFIO_UNMAP_ALL (5.12) */
        bool no_migration_cap;    /* GET_INFO without the migration capability */
        bool packed_caps;         /* capabilities not 8-byte aligned, as 6.1 packs them */
        uint32_t dma_entry_limit; /* default 65535 */
        uint64_t max_dirty_bitmap_size; /* bytes one GET_BITMAP fills; default 256 MiB */

        /* What the backend sent. */
        unsigned n_ioctls;
        unsigned n_map_dma;
        unsigned n_unmap_dma;
        unsigned n_dirty_reads; /* DIRTY_PAGES GET_BITMAP, and UNMAP_DMA with GET_DIRTY_BITMAP */
        unsigned n_set_container;
        unsigned n_unset_container;
        unsigned long last_request;

        struct RGroup *groups;
        size_t n_groups;
        struct RContainer **containers;
        size_t n_containers;
};

/*
 * root is a tree simtopo_materialize() wrote from topo (its sys/ is what the backend
 * reads); the responder adds root/dev/vfio/vfio and root/dev/vfio/<group> for every group
 * with a member bound to a VFIO driver.  topo is borrowed.
 */
int vfio_responder_new(VfioResponder **ret, const SimTopology *topo, const char *root);
VfioResponder *vfio_responder_free(VfioResponder *r);
DEFINE_TRIVIAL_CLEANUP_FUNC(VfioResponder *, vfio_responder_free);

/* The seam: pass with userdata = the responder. */
extern const BackendVfioSyscalls vfio_responder_syscalls;

/* Opens the group's file as a client would (-EBUSY while it is open). */
int vfio_responder_open_group(VfioResponder *r, unsigned group_id);
/* Calls the seam's ioctl directly (for structure-level tests). */
int vfio_responder_ioctl(VfioResponder *r, int fd, unsigned long request, void *arg);

/* Containers alive (an fd or a group keeps one alive) and fds of containers and groups open. */
size_t vfio_responder_n_containers(VfioResponder *r);
size_t vfio_responder_open_fds(VfioResponder *r);
/* Bytes mapped with MAP_DMA over every container. */
uint64_t vfio_responder_mapped_bytes(VfioResponder *r);
/*
 * Whether a DMA by a device of the group to iova would reach memory: the group is in a
 * container with an IOMMU and a mapping covers iova.  *ret_vaddr: the address it reaches.
 */
bool vfio_responder_dma_reaches(VfioResponder *r, unsigned group_id, uint64_t iova,
                                uint64_t *ret_vaddr);
/* The group's container, NULL when it is in none (for tests comparing two groups). */
const void *vfio_responder_group_container(VfioResponder *r, unsigned group_id);
