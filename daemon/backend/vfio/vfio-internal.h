/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The objects of backend-vfio, shared by its files:
 *
 *   backend-vfio.c    the ops table, probing, contexts and their object ids
 *   vfio-ioas.c       an address space as the backend keeps it: areas, allowed and
 *                     usable ranges, automatic IOVAs (no syscalls)
 *   vfio-container.c  the kernel side of an IOAS: its container, groups joining and
 *                     leaving it, MAP_DMA/UNMAP_DMA, replay
 *   vfio-device.c     devices: identifying fds, group files, bind/attach/detach
 *   vfio-dirty.c      dirty page logging through the IOAS's domain (its pseudo-HWPT)
 */

#include <stdbool.h>
#include <stdint.h>

#include "backend-vfio.h"
#include "iova-tree.h"

typedef struct VfioContext VfioContext;

typedef struct BackendVfio {
        Backend base;
        int sysfs_fd;
        char *dev_root;
        const BackendVfioSyscalls *sys;
        void *userdata;
        int iommu_type;        /* IOMMUD_VFIO_TYPE1v2_IOMMU or IOMMUD_VFIO_TYPE1_IOMMU */
        VfioContext *contexts; /* every live context: group ownership spans them */
        size_t n_mmaps;
        bool keep_kernel_state; /* contexts go without undoing anything in the kernel */
} BackendVfio;

/* One mmap of a memory fd, shared by the areas copies made of it. */
typedef struct VfioMap {
        unsigned n_ref;
        void *addr;
        size_t length;
} VfioMap;

/* What an area is backed by: one run of virtual memory the kernel pins. */
typedef struct VfioPiece {
        uint64_t offset; /* from the start of the range a copy collects */
        uint64_t length;
        uint64_t vaddr;      /* what MAP_DMA pins */
        uint64_t source;     /* file offset or user VA: automatic IOVAs align to it */
        bool pages_writable; /* mapped writeable at first: a copy may be too */
        VfioMap *map;        /* NULL when the VA is not the backend's own mmap */
} VfioPiece;

/* One MAP_DMA: a map makes one area, a copy one per area it copies from (as iommufd). */
typedef struct VfioArea {
        IovaNode node;   /* first, so that an IovaNode * is a VfioArea * */
        uint32_t flags;  /* BACKEND_MAP_READABLE | BACKEND_MAP_WRITEABLE */
        VfioPiece piece; /* offset 0, length of the area */
} VfioArea;

typedef struct VfioIoas {
        uint32_t id;
        uint32_t hwpt_id;    /* the container's domain while devices are attached, else 0 */
        int container;       /* -EBADF while no group is in it */
        unsigned n_groups;   /* groups in the container */
        unsigned n_attached; /* devices attached */
        uint64_t pgsize;     /* IOVA alignment: the smallest IOMMU page, 1 without groups */
        IovaRange *usable;   /* sorted; [0, U64_MAX] without groups */
        size_t n_usable;
        IovaRange *allowed; /* sorted, disjoint; none: anywhere */
        size_t n_allowed;
        IovaTree areas;
        bool can_log_dirty;       /* the container offers VFIO_IOMMU_DIRTY_PAGES */
        uint64_t dirty_pgsize;    /* the one page size its bitmaps come in */
        uint64_t dirty_max_bytes; /* the largest bitmap one GET_BITMAP fills */
        /*
         * hwpt_id was allocated with dirty tracking (vfio-dirty.c): it stays until destroyed,
         * and every container of the IOAS must log dirty pages; dirty_on is the logging the
         * last set asked for, started again in each new container.
         */
        bool hwpt_held, dirty_on;
} VfioIoas;

typedef struct VfioGroup {
        unsigned id;
        int fd;
        VfioIoas *ioas;   /* whose container the group is in, NULL */
        bool stale;       /* still in a wiped container it could not leave */
        bool client_file; /* fd is a dup of a client's group file, which it may keep */
        unsigned n_bound; /* devices of the group bound in the context */
} VfioGroup;

typedef struct VfioDevice {
        uint32_t id;
        char *name;
        VfioGroup *group;
        VfioIoas *ioas; /* attached to, NULL */
} VfioDevice;

typedef enum VfioObjKind {
        VFIO_OBJ_IOAS,
        VFIO_OBJ_HWPT,
        VFIO_OBJ_DEVICE,
} VfioObjKind;

typedef struct VfioObj {
        uint32_t id;
        VfioObjKind kind;
        void *ptr; /* VfioIoas (IOAS and its HWPT) or VfioDevice */
} VfioObj;

struct VfioContext {
        BackendContext base;
        VfioContext *next;
        VfioObj *objs; /* sorted by id */
        size_t n_objs;
        VfioDevice **devices; /* the same devices, to walk while objects come and go */
        size_t n_devices;
        VfioGroup **groups;
        size_t n_groups;
};

static inline BackendVfio *vfio_of(VfioContext *c) {
        return (BackendVfio *)c->base.backend;
}

/* ---- backend-vfio.c ---- */

int vfio_obj_add(VfioContext *c, VfioObjKind kind, void *ptr, uint32_t *ret_id);
/* Under a given id (restart): -EEXIST when it is taken. */
int vfio_obj_add_id(VfioContext *c, VfioObjKind kind, void *ptr, uint32_t id);
void vfio_obj_remove(VfioContext *c, uint32_t id);
void *vfio_obj_find(VfioContext *c, uint32_t id, VfioObjKind kind);
void vfio_sys_close(BackendVfio *v, int fd);
int vfio_sys_ioctl(BackendVfio *v, int fd, unsigned long request, void *arg);
void vfio_map_unref(BackendVfio *v, VfioMap *m);
/* The generic sentence for an errno nothing more specific explained. */
int vfio_error(Error *err, int r, const char *ioctl_name);

/* ---- vfio-ioas.c ---- */

VfioIoas *vfio_ioas_new(void);
/* Releases areas and their mmaps; the caller has emptied the kernel side first. */
void vfio_ioas_free(BackendVfio *v, VfioIoas *ioas);
void vfio_ioas_area_free(BackendVfio *v, VfioIoas *ioas, VfioArea *a);
/* A fixed [iova, iova+length) the IOAS can take (alignment, reserved, overlap). */
int vfio_ioas_check_fixed(VfioIoas *ioas, uint64_t iova, uint64_t length, Error *err);
/* iommufd's automatic IOVA for a map of length from source. */
int vfio_ioas_alloc_iova(VfioIoas *ioas, uint64_t source, uint64_t length, uint64_t *ret,
                         Error *err);
/* Records an area of p->length at iova (its map referenced) once the kernel holds it. */
int vfio_ioas_insert(VfioIoas *ioas, uint64_t iova, uint32_t flags, const VfioPiece *p, Error *err);
/* The pieces backing [iova, iova+length), which contiguous areas must cover (unreferenced). */
int vfio_ioas_collect(VfioIoas *ioas, uint64_t iova, uint64_t length, VfioPiece **ret,
                      size_t *ret_n, Error *err);
int vfio_ioas_set_allowed(VfioIoas *ioas, const IovaRange *ranges, size_t n, Error *err);
/* Whether the areas and allowed ranges fit usable ranges at page size pgsize. */
int vfio_ioas_check_domain(VfioIoas *ioas, const IovaRange *usable, size_t n_usable,
                           uint64_t pgsize, Error *err);
/* Takes usable (or resets to [0, U64_MAX] and alignment 1 when NULL). */
void vfio_ioas_set_domain(VfioIoas *ioas, IovaRange *usable, size_t n_usable, uint64_t pgsize);

/* ---- vfio-container.c ---- */

/* Adds the group to the IOAS's container (opening and setting it up for the first). */
int vfio_container_join(VfioContext *c, VfioIoas *ioas, VfioGroup *g, Error *err);
/*
 * What to do when a client's device fd keeps a group in its container (UNSET_CONTAINER
 * answers EBUSY): the only way to take the device's DMA away is then to wipe the container
 * and let it go, which every other group in it loses too.
 */
typedef enum VfioLeave {
        VFIO_LEAVE_TRY,    /* -EBUSY, nothing changed (a replace) */
        VFIO_LEAVE_REVOKE, /* wipe when the group is alone in it, else -EBUSY (detach) */
        VFIO_LEAVE_FORCE,  /* wipe (unbind, teardown) */
} VfioLeave;

/*
 * Takes the group out of its IOAS's container.  After a wipe every group of the IOAS is
 * out or stale, and the IOAS has no container.
 */
int vfio_container_leave(VfioContext *c, VfioGroup *g, VfioLeave how);
/* Reads the container's page size and usable ranges again (after a restart). */
int vfio_container_refresh(BackendVfio *v, VfioIoas *ioas, Error *err);
/* Wipes every mapping from the kernel and lets the container go (context teardown). */
void vfio_container_release(VfioContext *c, VfioIoas *ioas);
/* MAP_DMA of p at iova. */
int vfio_container_map(BackendVfio *v, VfioIoas *ioas, uint64_t iova, uint32_t flags,
                       const VfioPiece *p, Error *err);
/* UNMAP_DMA of [iova, iova+length), which must be whole areas. */
int vfio_container_unmap(BackendVfio *v, VfioIoas *ioas, uint64_t iova, uint64_t length,
                         Error *err);
int vfio_container_dirty(BackendVfio *v, VfioIoas *ioas, uint32_t flags, void *extra,
                         size_t extra_size, Error *err);

/* ---- vfio-dirty.c ---- */

/* IOMMU_HWPT_ALLOC_DIRTY_TRACKING over an IOAS: the IOAS's domain, held until destroyed. */
int vfio_dirty_hwpt_alloc(VfioContext *c, const HwptAllocArgs *args, uint32_t *ret_id,
                          Error *err);
int vfio_dirty_set(BackendContext *bc, uint32_t hwpt_id, bool enable, Error *err);
int vfio_dirty_get_bitmap(BackendContext *bc, const DirtyBitmapArgs *args, Error *err);
/* A new container of the IOAS, its areas replayed: refuses one that cannot log, starts logging. */
int vfio_dirty_container_ready(BackendVfio *v, VfioIoas *ioas, int container, bool can_log,
                               Error *err);

/* ---- vfio-device.c ---- */

int vfio_device_fd_identify(Backend *b, int fd, char **ret_name, Error *err);
int vfio_device_open(Backend *b, const char *name, int *ret_fd, Error *err);
int vfio_device_holders(Backend *b, const char *name, pid_t *pids, size_t n_max, size_t *ret_n,
                        Error *err);
int vfio_device_bind(BackendContext *bc, int fd, uint32_t *ret_dev_id, Error *err);
int vfio_device_unbind(BackendContext *bc, uint32_t dev_id, Error *err);
int vfio_device_attach(BackendContext *bc, uint32_t dev_id, uint32_t pasid, uint32_t *pt_id,
                       Error *err);
int vfio_device_detach(BackendContext *bc, uint32_t dev_id, uint32_t pasid, Error *err);
/* Context teardown: every device and group of the context. */
void vfio_device_release_all(VfioContext *c);
/* Restart: a group file and a device record the fd store and the saved state kept. */
int vfio_device_adopt_group(VfioContext *c, unsigned id, int fd, VfioIoas *ioas, bool stale);
int vfio_device_adopt(VfioContext *c, uint32_t id, const char *name, unsigned group,
                      VfioIoas *ioas);
