/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * What the files of the simulated backend share: the host model copied from the topology,
 * the per-context objects (IOAS, HWPT, device, fault queue) and the functions one file
 * calls in another.  Nothing outside sim/ includes this; backend-sim.h is the interface.
 *
 *   backend-sim.c        the backend: the host model, the ops table, lifecycle hooks
 *   sim-context.c        contexts, their object table, destroy and IOMMU_OPTION
 *   sim-ioas.c           IOAS areas: map, unmap, copy, automatic IOVAs
 *   sim-ioas-ranges.c    IOAS reserved and allowed ranges, alignment, paging domains
 *   sim-hwpt.c           HWPT allocation, paging and nested
 *   sim-file.c           device node files: binding per open file (OFD locks), lingering
 *   sim-device.c         device fds, binding, HW info
 *   sim-device-attach.c  RID and PASID attachments
 *   sim-fault.c          fault queues and the faults devices raise into them
 *   sim-pages.c          the memory areas map: files, pages, pins and who they are charged to
 *   sim-dma.c            device DMA through the page table a device is attached to
 *   sim-dirty.c          dirty tracking: the bits device writes set in a paging HWPT
 *
 * An IOAS keeps its areas in an IovaTree (../iova-tree.h).
 */

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "backend-sim.h"
#include "error.h"
#include "iova-tree.h"
#include "macros.h"

typedef struct SimBackend SimBackend;
typedef struct SimContext SimContext;
typedef struct SimDevModel SimDevModel;
typedef struct SimHwpt SimHwpt;
typedef struct SimFaultQueue SimFaultQueue;
typedef struct SimFile SimFile;
typedef struct SimPages SimPages;
typedef struct SimAccount SimAccount;

/* ---- the host model (copied from the topology) ---- */

typedef struct SimIommuModel {
        char *name;
        uint32_t hw_info_type;
        uint64_t aperture_start, aperture_last;
        uint64_t page_sizes;
        uint8_t pasid_bits;
        uint64_t capabilities;
        bool nesting, dirty_tracking, fault_queue;
} SimIommuModel;

typedef struct SimGroupModel {
        unsigned id;
        size_t iommu;
        ReservedRegion *regions; /* type_name not copied */
        size_t n_regions;
        size_t *devices;
        size_t n_devices;
        SimContext *owner; /* context holding the group's DMA ownership */
        unsigned n_bound;
} SimGroupModel;

typedef struct SimIdentity {
        dev_t dev;
        ino_t ino;
} SimIdentity;

struct SimDevModel {
        char *name;
        char *driver;
        uint32_t class;
        bool cdev;
        unsigned cdev_minor;
        uint8_t pasid_bits;
        size_t group;
        /* Without a root: the memfd that is the node (sim-file.c); -1 until first opened. */
        int anchor_fd;
        SimIdentity node;
        /* bound state: through an open file of the node, which holds an OFD lock on it */
        SimContext *ctx;
        uint32_t dev_id;
        int req_efd;        /* the armed request eventfd while bound, -EBADF when none */
        /* DMA the IOMMU refused (sim-dma.c): how many, and the last one */
        uint64_t dma_faults;
        BackendSimDmaFault last_dma_fault;
};

/* Whom pinned pages are charged to, as the kernel's iopt_pages account_mode. */
typedef enum SimAccountMode {
        SIM_ACCOUNT_NONE = 0, /* the mapper has CAP_IPC_LOCK: nobody */
        SIM_ACCOUNT_USER = 1, /* the mapper's uid (RLIMIT_MODE 0, per user) */
        SIM_ACCOUNT_MM = 2,   /* the mapper's process (RLIMIT_MODE 1, per process) */
} SimAccountMode;

/* A user's or a process's locked memory (user_struct or mm locked_vm). */
struct SimAccount {
        SimAccount *next;
        bool process; /* id is a pid, else a uid */
        uint32_t id;
        uint64_t locked; /* bytes charged now */
};

/* A memory file maps refer to: the model's own copy of the fd, one per inode. */
struct SimFile {
        int fd;
        bool writable; /* fd is open read-write */
        dev_t dev;
        ino_t ino;
        unsigned refs; /* pages that map it */
};

/*
 * Areas and pages, cut SIM_SPARES_SLAB at a time from one allocation (a slab) and given back
 * to a list through their first word, so that neither a cold nor a warm map calls malloc():
 * the slabs (a list through their first word too) stay until the backend goes, which holds
 * no more than the most objects of the kind ever live at once.
 */
typedef struct SimSpares {
        void *head;
        void *slabs;
} SimSpares;

#define SIM_SPARES_SLAB 32

struct SimBackend {
        Backend base;
        char *root;
        char *devices_dir; /* ROOT/dev/vfio/devices, where the nodes are; NULL without a root */
        SimIommuModel *iommus;
        size_t n_iommus;
        SimGroupModel *groups;
        size_t n_groups;
        SimDevModel *devices;
        size_t n_devices;
        bool unprivileged;
        BackendSimStats stats;
        /* Contexts closed while files bound to them live on in clients (sim-file.c). */
        SimContext **closed;
        size_t n_closed;
        /* memory: the files maps hold (sorted by dev, ino), the accounts pins are charged to */
        SimFile **files;
        size_t n_files;
        SimAccount *accounts;
        bool no_ipc_lock;      /* the mapper lacks CAP_IPC_LOCK: pins are charged */
        uint64_t memlock_limit; /* its RLIMIT_MEMLOCK in bytes */
        SimSpares spare_areas, spare_pages;
};

/* ---- per-context objects ---- */

typedef enum SimObjType {
        SIM_OBJ_IOAS,
        SIM_OBJ_HWPT_PAGING,
        SIM_OBJ_HWPT_NESTED,
        SIM_OBJ_DEVICE,
        SIM_OBJ_FAULT,
} SimObjType;

typedef struct SimObject {
        uint32_t id;
        SimObjType type;
} SimObject;

enum {
        AREA_PAGES_WRITABLE = 1u << 8, /* the pinned source may be written (copy rule) */
        AREA_PINNED = 1u << 9,         /* its pages are pinned: its IOAS has a domain */
        AREA_PHANTOM = 1u << 10,       /* a VA of an earlier daemon process (see sim-pages.c) */
        AREA_ACCOUNT_SHIFT = 11,       /* SimAccountMode of an area without pages: 2 bits */
};

/*
 * One mapped area: 40 bytes (the same 48-byte heap chunk as 32), plus its 24-byte entry in a
 * leaf of the area tree.  A user VA mapped once needs nothing more; a file, or pages a copy
 * shares, have a SimPages.
 */
typedef struct SimArea {
        IovaNode node;
        uint64_t source; /* user VA or file offset of the first byte */
        SimPages *pages; /* NULL: a user VA of the context's owner, never copied */
        uint32_t flags;  /* BACKEND_MAP_READABLE/WRITEABLE | AREA_* */
} SimArea;

/* Page-aligned [start, end) of a source: what pinning an area pins. */
typedef struct SimSpan {
        uint64_t start, end;
} SimSpan;

/* The kernel's iopt_pages: what one map pinned, shared by the copies of its areas. */
struct SimPages {
        SimFile *file;       /* NULL: user VAs */
        SimAccount *account; /* charged for the pins; NULL: nobody */
        uint64_t pinned;     /* bytes pinned now: the union of spans */
        SimSpan *spans;      /* one per pinned area: first_span, or an array */
        uint32_t n_spans, max_spans;
        uint32_t refs;       /* areas */
        bool phantom;
        SimSpan first_span;  /* a map's own area needs no array */
};

typedef struct SimReserved {
        uint64_t start, last;
        const void *owner; /* a SimDev (device region) or a SimHwpt (aperture gap) */
} SimReserved;

typedef struct SimIoas {
        SimObject obj;
        IovaTree areas;
        SimReserved *resv;
        size_t n_resv;
        IovaRange *allowed; /* sorted */
        size_t n_allowed;
        SimHwpt **domains;  /* paging HWPTs built on this IOAS */
        size_t n_domains;
        uint64_t alignment;
        bool disable_large_pages;
        unsigned users;
} SimIoas;

struct SimHwpt {
        SimObject obj;
        uint32_t flags;
        size_t iommu;
        SimIoas *ioas;     /* paging */
        SimHwpt *parent;   /* nested */
        SimFaultQueue *fault;
        uint32_t data_type;
        bool auto_domain;
        unsigned users;    /* attachments and nested children */
        /* Dirty tracking (sim-dirty.c): on or off, and the dirty pages, sorted page numbers. */
        bool dirty_enabled;
        uint64_t *dirty;
        size_t n_dirty, n_dirty_alloc;
};

typedef struct SimAttach {
        uint32_t pasid;
        SimHwpt *hwpt;
} SimAttach;

typedef struct SimDev {
        SimObject obj;
        size_t model;
        int file;          /* the backend's copy of the bound file; -1: dropped, lingering */
        SimHwpt *rid;      /* RID attachment */
        SimAttach *pasids;
        size_t n_pasids;
        FaultRecord *partial; /* faults waiting for their group's last page */
        size_t n_partial, alloc_partial;
} SimDev;

typedef struct SimFaultGroup SimFaultGroup;
struct SimFaultGroup {
        SimFaultGroup *next;
        uint32_t dev_id;
        uint32_t pasid;
        uint32_t cookie;
        size_t n, alloc;
        FaultRecord *records;
};

struct SimFaultQueue {
        SimObject obj;
        int efd;
        SimFaultGroup *queued, **queued_tail;
        /* Read, awaiting a response; oldest first, so in-order answers find theirs at the head. */
        SimFaultGroup *waiting, **waiting_tail;
        /* Answered groups kept with their records for the next faults: none allocated per fault. */
        SimFaultGroup *spare;
        size_t n_spare;
        bool signalled;   /* the eventfd's count is not zero */
        uint32_t next_cookie;
        unsigned users;
};

struct SimContext {
        BackendContext base;
        SimBackend *sim;
        SimObject **objs; /* indexed by id; 0 unused */
        size_t n_objs;    /* capacity */
        size_t n_live;
        uint32_t free_hint;
        uint64_t mapped_bytes;
        bool rlimit_per_process;
        bool closed;       /* context_free() was called: kept by its lingering devices */
        bool adopted_memory; /* user VAs are an earlier process's memory (sim-pages.c) */
        int file;            /* what stands for its iommufd (sim_context_fd); -EBADF: none yet */
        /* the mapper: whom its pins are charged to (user, process) */
        SimAccount *user_account, *process_account;
};

/* FOREACH_ARRAY that never does arithmetic on a NULL array (empty lists are NULL here). */
#define SIM_FOREACH(i, array, num)                                                                 \
        for (__typeof__(array[0]) *i = (array), *_end_##i = (num) > 0 ? (array) + (num) : (array); \
             i < _end_##i; i++)

static inline SimBackend *to_sim(Backend *b) {
        return (SimBackend *)b;
}

static inline SimContext *to_ctx(BackendContext *c) {
        return (SimContext *)c;
}

/* ---- the model of an object ---- */

static inline uint64_t sim_lowest_bit(uint64_t v) {
        return v & -v;
}

static inline SimIommuModel *sim_hwpt_iommu(SimContext *c, SimHwpt *h) {
        return &c->sim->iommus[h->iommu];
}

static inline SimDevModel *sim_dev_model(SimContext *c, SimDev *d) {
        return &c->sim->devices[d->model];
}

static inline SimGroupModel *sim_dev_group(SimContext *c, SimDev *d) {
        return &c->sim->groups[sim_dev_model(c, d)->group];
}

static inline SimIommuModel *sim_dev_iommu(SimContext *c, SimDev *d) {
        return &c->sim->iommus[sim_dev_group(c, d)->iommu];
}

static inline uint8_t sim_dev_pasid_width(SimContext *c, SimDev *d) {
        return MIN(sim_dev_model(c, d)->pasid_bits, sim_dev_iommu(c, d)->pasid_bits);
}

/* The IOAS a HWPT translates through (a nested one through its parent's). */
static inline SimIoas *sim_hwpt_ioas(SimHwpt *h) {
        return h->parent ? h->parent->ioas : h->ioas;
}

/* ---- spare objects ---- */

/* Cuts a new slab of objects of size bytes into l; -ENOMEM. */
int sim_spares_refill(SimSpares *l, size_t size);

/* An object of size bytes (always the same for l, uninitialized): a spare one; NULL. */
static inline void *sim_spare_take(SimSpares *l, size_t size) {
        void *p = l->head;

        if (!p) {
                if (sim_spares_refill(l, size) < 0)
                        return NULL;
                p = l->head;
        }
        l->head = *(void **)p;
        return p;
}

/* Gives p (which may be NULL), taken from l, back to it. */
static inline void sim_spare_give(SimSpares *l, void *p) {
        if (!p)
                return;
        *(void **)p = l->head;
        l->head = p;
}

void sim_spares_free(SimSpares *l);

/* ---- object table (sim-context.c) ---- */

/* Frees c and every object in it, whatever holds them. */
void sim_context_destroy(SimContext *c);
const char *sim_obj_type_name(SimObjType t);
int sim_obj_add(SimContext *c, SimObject *o, SimObjType type, Error *err);
void sim_obj_remove(SimContext *c, SimObject *o);

static inline SimObject *sim_obj_get(SimContext *c, uint32_t id) {
        if (id == 0 || id >= c->n_objs)
                return NULL;
        return c->objs[id];
}

/* The object id of the given type; -ENOENT when there is none or it is of another type. */
int sim_obj_lookup(SimContext *c, uint32_t id, SimObjType type, void **ret, Error *err);

/* ---- IOAS (sim-ioas.c, sim-ioas-ranges.c) ---- */

void sim_ioas_free(SimContext *c, SimIoas *ioas);
/* Reserves [start, last] for owner; EADDRINUSE when an area or allowed range is there. */
int sim_ioas_reserve(SimIoas *ioas, uint64_t start, uint64_t last, const void *owner, Error *err);
void sim_ioas_unreserve(SimIoas *ioas, const void *owner);
bool sim_ioas_owner_has_reserved(SimIoas *ioas, const void *owner);
/* Merges the reserved ranges into a sorted, disjoint list. */
int sim_ioas_reserved_sorted(SimIoas *ioas, IovaRange **ret, size_t *ret_n);
uint64_t sim_ioas_compute_alignment(SimContext *c, SimIoas *ioas, const SimHwpt *skip,
                                    const SimHwpt *extra, bool disable_large_pages);
/* Raising the alignment requires every existing area to obey it (else EADDRINUSE). */
int sim_ioas_check_alignment(SimIoas *ioas, uint64_t alignment, Error *err);
/* Adds a paging domain: aperture gaps become reserved, alignment rises. */
int sim_ioas_add_domain(SimContext *c, SimIoas *ioas, SimHwpt *h, Error *err);
void sim_ioas_remove_domain(SimContext *c, SimIoas *ioas, SimHwpt *h);

/* Inline: every fixed map asks. */
static inline bool sim_ioas_reserved_overlaps(SimIoas *ioas, uint64_t start, uint64_t last) {
        SIM_FOREACH(r, ioas->resv, ioas->n_resv)
                if (r->start <= last && r->last >= start)
                        return true;
        return false;
}

/* ---- HWPTs (sim-hwpt.c) ---- */

void sim_hwpt_free(SimContext *c, SimHwpt *h);
int sim_hwpt_paging_new(SimContext *c, SimIoas *ioas, size_t iommu, uint32_t flags,
                        SimFaultQueue *fault, bool auto_domain, SimHwpt **ret, Error *err);

/* ---- files of the device nodes (sim-file.c) ---- */

/* Without a root: the memfd that is the device's node (made on first use), or -errno. */
int sim_file_anchor(SimBackend *s, SimDevModel *m);
/* The identity of the device's node (st_dev, st_ino), -errno when it has none. */
int sim_file_node(SimBackend *s, SimDevModel *m, struct stat *ret);
/* Whether st (of a client's fd) is the device's node. */
bool sim_file_is_node(SimBackend *s, SimDevModel *m, const struct stat *st);
/* Whether st can be the node of any device: false rules out every device with one stat. */
bool sim_file_may_be_node(SimBackend *s, const struct stat *st);
/* A new open file of the device's node, O_RDWR. */
int sim_file_open(SimBackend *s, SimDevModel *m, int *ret_fd);
/* Whether some open file of the node holds the binding's lock. */
bool sim_file_bound(SimBackend *s, SimDevModel *m);
/* Whether m is bound through fd's open file. */
bool sim_file_binds(SimBackend *s, SimDevModel *m, int fd);
/* Takes the binding's lock through fd; -EBUSY when another open file holds it. */
int sim_file_lock(int fd);
/* Ends m's binding when its file is gone (and the backend holds no copy): 1 when it did. */
int sim_file_reap_model(SimBackend *s, SimDevModel *m);
void sim_file_reap(SimBackend *s);
/*
 * context_free()'s part: drops the backend's copies of the bound files; returns 0 when no file
 * bound to c lives on (c may be destroyed), 1 when c was kept as closed.
 */
int sim_file_close_context(SimContext *c);

/* ---- dirty tracking (sim-dirty.c) ---- */

/* A device wrote [iova, last] through h: its pages become dirty while h tracks. -ENOMEM. */
int sim_hwpt_mark_dirty(SimHwpt *h, uint64_t iova, uint64_t last);
/* [start, last] left ioas: the dirty bits of its pages go with the IOPTEs, in every domain. */
void sim_ioas_forget_dirty(SimIoas *ioas, uint64_t start, uint64_t last);

/* ---- devices (sim-device.c, sim-device-attach.c) ---- */

int sim_device_fd_identify_model(SimBackend *s, int fd, size_t *ret, Error *err);
int sim_device_find(SimBackend *s, const char *name, size_t *ret);
void sim_device_free(SimContext *c, SimDev *d);
/* The HWPT attached to d at pasid (BACKEND_NO_PASID: the RID), or NULL. */
SimHwpt *sim_device_attached(SimDev *d, uint32_t pasid);
/* Detaches every PASID and the RID of d. */
void sim_device_detach_all(SimContext *c, SimDev *d);

/* ---- memory (sim-pages.c) ---- */

int sim_accounts_attach(SimContext *c, uid_t uid, pid_t pid);
void sim_memory_free(SimBackend *s);
/* How a map made now is charged (the mapper's CAP_IPC_LOCK, the context's RLIMIT_MODE). */
SimAccountMode sim_map_account_mode(SimContext *c);
/* A SimPages for a map of memory fd fd (stat st), charged by mode. */
int sim_pages_new_file(SimContext *c, int fd, const struct stat *st, SimAccountMode mode,
                       SimPages **ret, Error *err);
void sim_pages_unref(SimContext *c, SimPages *p);
/* The pages of a, made shareable (a copy refers to them); -ENOMEM. */
int sim_area_share(SimContext *c, SimArea *a, SimPages **ret);
/* Pins a's pages and charges them (-ENOMEM at the limit, -EFAULT for memory GUP refuses). */
int sim_area_pin(SimContext *c, SimArea *a, Error *err);
void sim_area_unpin(SimContext *c, SimArea *a);
/* The first domain arrives: every area is pinned, all or none; the last one leaves. */
int sim_ioas_pin_all(SimContext *c, SimIoas *ioas, Error *err);
void sim_ioas_unpin_all(SimContext *c, SimIoas *ioas);
/* Reads or writes length bytes at source offset off of a's memory (DMA); -EIO. */
int sim_area_access(SimArea *a, uint64_t off, void *buf, size_t length, bool write);

/* ---- fault queues (sim-fault.c) ---- */

/* Answers INVALID every group of (dev_id, pasid) (or every group when all) in q. */
void sim_fault_auto_respond(SimContext *c, SimFaultQueue *q, bool all, uint32_t dev_id,
                            uint32_t pasid);
void sim_fault_queue_free(SimContext *c, SimFaultQueue *q);
/* Adds a record d raised; its last page queues its group in q.  -ENOMEM. */
int sim_fault_raise(SimDev *d, SimFaultQueue *q, const FaultRecord *rec);

/* ---- the operations, one per BackendOps member (the table is in backend-sim.c) ---- */

int sim_device_fd_identify(Backend *b, int fd, char **ret_name, Error *err);
const char *sim_device_node_of_file(Backend *b, const struct stat *st);
int sim_device_open(Backend *b, const char *name, int *ret_fd, Error *err);
int sim_device_holders(Backend *b, const char *name, pid_t *pids, size_t n_max, size_t *ret_n,
                       Error *err);
int sim_context_new(Backend *b, BackendContext **ret, Error *err);
void sim_context_free(BackendContext *bc);
int sim_context_fd(BackendContext *c);
int sim_option(BackendContext *bc, uint32_t option_id, uint16_t op, uint32_t object_id,
               uint64_t *val64, Error *err);
int sim_ioas_alloc(BackendContext *bc, uint32_t *ret_id, Error *err);
int sim_destroy(BackendContext *bc, uint32_t id, Error *err);
int sim_ioas_map_file(BackendContext *bc, uint32_t ioas_id, uint32_t flags, int fd,
                      uint64_t start, uint64_t length, uint64_t *iova, Error *err);
int sim_ioas_map_va(BackendContext *bc, uint32_t ioas_id, uint32_t flags, uint64_t user_va,
                    uint64_t length, uint64_t *iova, Error *err);
int sim_ioas_unmap(BackendContext *bc, uint32_t ioas_id, uint64_t iova, uint64_t length,
                   uint64_t *ret_unmapped, Error *err);
int sim_ioas_copy(BackendContext *bc, uint32_t dst_ioas_id, uint32_t src_ioas_id, uint32_t flags,
                  uint64_t src_iova, uint64_t length, uint64_t *dst_iova, Error *err);
int sim_ioas_iova_ranges(BackendContext *bc, uint32_t ioas_id, IovaRange *ranges,
                         size_t *n_ranges, uint64_t *ret_alignment, Error *err);
int sim_ioas_allow_iovas(BackendContext *bc, uint32_t ioas_id, const IovaRange *ranges,
                         size_t n, Error *err);
int sim_device_bind(BackendContext *bc, int device_fd, uint32_t *ret_dev_id, Error *err);
int sim_device_unbind(BackendContext *bc, uint32_t dev_id, Error *err);
int sim_device_request_fd(BackendContext *bc, uint32_t dev_id, int *ret_fd, Error *err);
int sim_device_attach(BackendContext *bc, uint32_t dev_id, uint32_t pasid, uint32_t *pt_id,
                      Error *err);
int sim_device_detach(BackendContext *bc, uint32_t dev_id, uint32_t pasid, Error *err);
int sim_hw_info(BackendContext *bc, uint32_t dev_id, HwInfo *ret, Error *err);
int sim_hwpt_alloc(BackendContext *bc, const HwptAllocArgs *args, uint32_t *ret_id, Error *err);
int sim_hwpt_set_dirty_tracking(BackendContext *bc, uint32_t hwpt_id, bool enable, Error *err);
int sim_hwpt_get_dirty_bitmap(BackendContext *bc, const DirtyBitmapArgs *args, Error *err);
int sim_fault_queue_alloc(BackendContext *bc, uint32_t *ret_id, int *ret_fd, Error *err);
int sim_fault_read(BackendContext *bc, uint32_t fault_id, FaultRecord *buf, size_t n_max,
                   size_t *ret_n, Error *err);
int sim_fault_respond(BackendContext *bc, uint32_t fault_id, uint32_t cookie, uint32_t code,
                      Error *err);
