/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The backend conformance suite: the behaviours IOMMUFD.md pins down, run
 * against any Backend through a factory.  A factory builds a Backend and hands
 * out device fds by role; a role it cannot provide makes the tests that need
 * it skip.  Adding a backend is one entry in the table of test-conformance.c.
 */

#include <stdbool.h>
#include <stdint.h>

#include "backend.h"
#include "simtopo.h"

typedef enum ConfRole {
        CONF_DEV_PLAIN,        /* vfio device alone in its group; 4K IOMMU without PASID */
        CONF_DEV_PASID,        /* PASID-capable device; IOMMU with nesting, dirty tracking, faults */
        CONF_DEV_GROUP_A,      /* two vfio devices of one group */
        CONF_DEV_GROUP_B,
        CONF_DEV_HOST_SIBLING, /* a vfio device whose group has a member on a host driver */
        CONF_DEV_DIRECT,       /* a vfio device whose group has a "direct" reserved region */
        _CONF_ROLE_MAX,
} ConfRole;

typedef struct ConfEnv ConfEnv;
typedef struct ConfFactory ConfFactory;

struct ConfEnv {
        const ConfFactory *factory;
        Backend *backend;
        uint64_t page_size;    /* domain page size of the PLAIN and PASID devices' IOMMUs */
        uint64_t base;         /* an IOVA inside every aperture, free of reserved regions */
        IovaRange plain_resv;  /* a reserved region of PLAIN's group (e.g. MSI); start > last: none */
        uint64_t auto_align_max; /* the largest alignment an automatic IOVA gets (huge page) */
        uint32_t nested_data_type; /* BACKEND_HWPT_DATA_* the PASID device's IOMMU accepts */
        uint32_t nested_data_len;
        bool faults_need_nesting; /* fault queues attach to nested HWPTs only (Linux 6.12) */
        void *userdata;        /* the factory's */
        char unavailable[200]; /* why setup returned -EOPNOTSUPP/-ENODEV, when it did */
        char missing[_CONF_ROLE_MAX][160]; /* why open_device has no device in a role */
};

struct ConfFactory {
        const char *name;
        /* Fills env->backend and the fields above; -EOPNOTSUPP/-ENODEV: the factory is skipped. */
        int (*setup)(ConfEnv *env);
        void (*teardown)(ConfEnv *env);
        /* A fresh fd of the device in that role; -EOPNOTSUPP when there is none. */
        int (*open_device)(ConfEnv *env, ConfRole role, int *ret_fd);
        /*
         * Raises a fault from the device in that role; NULL when faults cannot be injected.
         * A fault nothing takes gives -ENOENT, or 0 where the device cannot know (the kernel
         * answers it); -EOPNOTSUPP for a page that is not its group's last, where every
         * fault is a group of its own.
         */
        int (*inject_fault)(ConfEnv *env, ConfRole role, uint32_t pasid, uint64_t addr,
                            uint32_t perm, bool last_page, uint32_t grpid);
        bool inject_unrouted_unknown; /* inject_fault gives 0, not -ENOENT, for an unrouted one */
        /*
         * A DMA write of [iova, iova+length) by the device in that role, attached to paging
         * HWPT hwpt_id of c: what sets dirty bits.  NULL when devices cannot be made to write.
         */
        int (*device_write)(ConfEnv *env, ConfRole role, BackendContext *c, uint32_t hwpt_id,
                            uint64_t iova, uint64_t length);
        /* Groups answered INVALID by the backend itself so far; NULL when unobservable. */
        int (*auto_invalid_count)(ConfEnv *env, uint64_t *ret);
        /*
         * The caller's limits for the maps it makes next: whether it holds CAP_IPC_LOCK, and
         * its RLIMIT_MEMLOCK in bytes (UINT64_MAX: unlimited); -EPERM when it cannot take
         * them.  The factory's teardown puts back what setup found.  NULL: not changeable.
         */
        int (*set_memlock)(ConfEnv *env, bool cap_ipc_lock, uint64_t limit);
        /* Bytes of locked memory charged to the calling process now; NULL: unobservable. */
        int (*locked_bytes)(ConfEnv *env, uint64_t *ret);
        /*
         * An iommufd ioctl on the context's fd, exactly as the kernel gets it (the argument
         * is the ABI structure, its size field included); -errno.  NULL for a backend whose
         * operations take C arguments and have no sized structures (backend-sim).
         */
        int (*ioctl)(ConfEnv *env, BackendContext *c, unsigned long request, void *arg);
        /*
         * What a client does with a device file it keeps: VFIO_DEVICE_ATTACH_IOMMUFD_PT on fd
         * to pt_id, as the kernel gets it; 0 or -errno.  NULL where devices are not bound
         * through their files (VFIO type1 binds groups).
         */
        int (*file_attach)(ConfEnv *env, int fd, uint32_t pt_id);
        /*
         * The plain device copies len bytes from src_iova to dst_iova by DMA, through its
         * file fd: 0 once it ran, whatever reached memory.  NULL where no device does DMA
         * (VFIO type1 through the responder).
         */
        int (*dma_copy)(ConfEnv *env, int fd, uint64_t src_iova, uint64_t dst_iova, size_t len);
};

/* The MSI window of the conformance topology's groups: the plain device's reserved region. */
#define CONF_MSI_START UINT64_C(0xfee00000)
#define CONF_MSI_LAST UINT64_C(0xfeefffff)

/*
 * The host every model-backed factory serves: devices in each role (their names go to
 * names[role]), a small 4K/2M IOMMU with a 39-bit aperture and a large one with PASID,
 * nesting, dirty tracking and faults.  Free with tb_free().
 */
SimTopology *conformance_topology(const char *names[_CONF_ROLE_MAX]);

/* Runs every conformance test against every factory as one cmocka group; returns failures. */
int conformance_run(const ConfFactory *const *factories, size_t n_factories);

/* The backend-sim factory (a topology built in memory). */
extern const ConfFactory conformance_sim_factory;

/* backend-kernel through the kernel responder over backend-sim (conformance-kernel.c). */
extern const ConfFactory conformance_kernel_responder_factory;
/* The same without IOMMU_IOAS_MAP_FILE: memory fds take the mmap fallback. */
extern const ConfFactory conformance_kernel_responder_mmap_factory;
/* backend-kernel on this host's /dev/iommu; skipped, with the reason, without it or a VFIO device. */
extern const ConfFactory conformance_kernel_real_factory;

/* backend-vfio through the VFIO responder over the conformance topology (conformance-vfio.c). */
extern const ConfFactory conformance_vfio_responder_factory;
/* backend-vfio on this host's /dev/vfio; skipped, with the reason, without it or a VFIO device. */
extern const ConfFactory conformance_vfio_real_factory;
