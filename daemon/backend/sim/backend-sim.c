/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "backend-sim.h"
#include "iova-tree.h"
#include "macros.h"

#define TMPFS_MAGIC_ 0x01021994
#define HUGETLBFS_MAGIC_ 0x958458f6

#define SIM_MAP_FLAGS (BACKEND_MAP_FIXED_IOVA | BACKEND_MAP_WRITEABLE | BACKEND_MAP_READABLE)
#define SIM_HWPT_FLAGS                                                                             \
        (BACKEND_HWPT_NEST_PARENT | BACKEND_HWPT_DIRTY_TRACKING | BACKEND_HWPT_FAULT_ID_VALID |    \
         BACKEND_HWPT_PASID)

/* Sizes of the kernel's vendor stage-1 structs: iommu_hwpt_vtd_s1 and iommu_hwpt_arm_smmuv3. */
#define SIM_VTD_S1_SIZE 24u
#define SIM_ARM_SMMUV3_SIZE 16u

typedef struct SimBackend SimBackend;
typedef struct SimContext SimContext;
typedef struct SimDevModel SimDevModel;
typedef struct SimHwpt SimHwpt;
typedef struct SimFaultQueue SimFaultQueue;

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
        /* test-hook nodes handed out by device_open() without a root */
        int *node_fds;
        SimIdentity *nodes;
        size_t n_nodes;
        /* bound state */
        SimContext *ctx;
        uint32_t dev_id;
};

struct SimBackend {
        Backend base;
        char *root;
        SimIommuModel *iommus;
        size_t n_iommus;
        SimGroupModel *groups;
        size_t n_groups;
        SimDevModel *devices;
        size_t n_devices;
        bool unprivileged;
        BackendSimStats stats;
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
};

/* One mapped area: 32 bytes, plus its 24-byte entry in a leaf of the area tree. */
typedef struct SimArea {
        IovaNode node;
        uint64_t source; /* user VA or file offset of the first byte */
        uint32_t flags;  /* BACKEND_MAP_READABLE/WRITEABLE | AREA_PAGES_WRITABLE */
} SimArea;

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
};

typedef struct SimAttach {
        uint32_t pasid;
        SimHwpt *hwpt;
} SimAttach;

typedef struct SimDev {
        SimObject obj;
        size_t model;
        SimHwpt *rid;      /* RID attachment */
        SimAttach *pasids;
        size_t n_pasids;
        FaultRecord *partial; /* faults waiting for their group's last page */
        size_t n_partial;
} SimDev;

typedef struct SimFaultGroup SimFaultGroup;
struct SimFaultGroup {
        SimFaultGroup *next;
        uint32_t dev_id;
        uint32_t pasid;
        uint32_t cookie;
        size_t n;
        FaultRecord *records;
};

struct SimFaultQueue {
        SimObject obj;
        int efd;
        SimFaultGroup *queued, **queued_tail;
        /* Read, awaiting a response; oldest first, so in-order answers find theirs at the head. */
        SimFaultGroup *waiting, **waiting_tail;
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
};

static const BackendOps sim_ops;

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

static const char *obj_type_name(SimObjType t) {
        switch (t) {
        case SIM_OBJ_IOAS: return "IOAS";
        case SIM_OBJ_HWPT_PAGING: return "paging HWPT";
        case SIM_OBJ_HWPT_NESTED: return "nested HWPT";
        case SIM_OBJ_DEVICE: return "device";
        case SIM_OBJ_FAULT: return "fault queue";
        }
        return "object";
}

/* ---- object table: ids shared by all types, lowest free id >= 1, like the kernel's xarray ---- */

static int obj_add(SimContext *c, SimObject *o, SimObjType type, Error *err) {
        uint32_t id = c->free_hint ?: 1;

        while (id < c->n_objs && c->objs[id])
                id++;
        if (id >= c->n_objs) {
                size_t n = MAX((size_t)16, c->n_objs * 2);
                SimObject **v = realloc(c->objs, n * sizeof(SimObject *));

                if (!v)
                        return error_set(err, -ENOMEM, "Out of memory for the object table");
                memset(v + c->n_objs, 0, (n - c->n_objs) * sizeof(SimObject *));
                c->objs = v;
                c->n_objs = n;
        }
        o->id = id;
        o->type = type;
        c->objs[id] = o;
        c->n_live++;
        c->sim->stats.objects++;
        c->free_hint = id + 1;
        return 0;
}

static void obj_remove(SimContext *c, SimObject *o) {
        c->objs[o->id] = NULL;
        c->n_live--;
        c->sim->stats.objects--;
        if (o->id < c->free_hint)
                c->free_hint = o->id;
}

static SimObject *obj_get(SimContext *c, uint32_t id) {
        if (id == 0 || id >= c->n_objs)
                return NULL;
        return c->objs[id];
}

static int obj_lookup(SimContext *c, uint32_t id, SimObjType type, void **ret, Error *err) {
        SimObject *o = obj_get(c, id);

        if (!o)
                return error_set(err, -ENOENT, "No object with id %" PRIu32, id);
        if (o->type != type)
                return error_set(err, -ENOENT, "Object %" PRIu32 " is a %s, not a %s", id,
                                 obj_type_name(o->type), obj_type_name(type));
        *ret = o;
        return 0;
}

/* ---- helpers ---- */

static uint64_t roundup_pow2(uint64_t v) {
        if (v <= 1)
                return 1;
        if (v > (UINT64_C(1) << 63))
                return 0;
        return UINT64_C(1) << (64 - __builtin_clzll(v - 1));
}

static uint64_t lowest_bit(uint64_t v) {
        return v & -v;
}

static SimIommuModel *hwpt_iommu(SimContext *c, SimHwpt *h) {
        return &c->sim->iommus[h->iommu];
}

static SimDevModel *dev_model(SimContext *c, SimDev *d) {
        return &c->sim->devices[d->model];
}

static SimGroupModel *dev_group(SimContext *c, SimDev *d) {
        return &c->sim->groups[dev_model(c, d)->group];
}

static SimIommuModel *dev_iommu(SimContext *c, SimDev *d) {
        return &c->sim->iommus[dev_group(c, d)->iommu];
}

static uint8_t dev_pasid_width(SimContext *c, SimDev *d) {
        return MIN(dev_model(c, d)->pasid_bits, dev_iommu(c, d)->pasid_bits);
}

/* The IOAS a HWPT translates through (a nested one through its parent's). */
static SimIoas *hwpt_ioas(SimHwpt *h) {
        return h->parent ? h->parent->ioas : h->ioas;
}

/* ---- IOAS: reserved ranges and alignment ---- */

static bool ioas_reserved_overlaps(SimIoas *ioas, uint64_t start, uint64_t last) {
        SIM_FOREACH(r, ioas->resv, ioas->n_resv)
                if (r->start <= last && r->last >= start)
                        return true;
        return false;
}

static bool ioas_allowed_overlaps(SimIoas *ioas, uint64_t start, uint64_t last) {
        SIM_FOREACH(r, ioas->allowed, ioas->n_allowed)
                if (r->start <= last && r->last >= start)
                        return true;
        return false;
}

/* Reserves [start, last] for owner; EADDRINUSE when an area or allowed range is there. */
static int ioas_reserve(SimIoas *ioas, uint64_t start, uint64_t last, const void *owner,
                        Error *err) {
        SimReserved *v;

        if (iova_tree_first_overlap(&ioas->areas, start, last))
                return error_set(err, -EADDRINUSE,
                                 "Reserved range 0x%" PRIx64 "-0x%" PRIx64
                                 " collides with a mapping in IOAS %" PRIu32,
                                 start, last, ioas->obj.id);
        if (ioas_allowed_overlaps(ioas, start, last))
                return error_set(err, -EADDRINUSE,
                                 "Reserved range 0x%" PRIx64 "-0x%" PRIx64
                                 " intersects an allowed range of IOAS %" PRIu32,
                                 start, last, ioas->obj.id);
        v = realloc(ioas->resv, (ioas->n_resv + 1) * sizeof(SimReserved));
        if (!v)
                return error_set(err, -ENOMEM, "Out of memory for reserved ranges");
        ioas->resv = v;
        ioas->resv[ioas->n_resv++] = (SimReserved){ start, last, owner };
        return 0;
}

static void ioas_unreserve(SimIoas *ioas, const void *owner) {
        size_t j = 0;

        for (size_t i = 0; i < ioas->n_resv; i++)
                if (ioas->resv[i].owner != owner)
                        ioas->resv[j++] = ioas->resv[i];
        ioas->n_resv = j;
}

static bool ioas_owner_has_reserved(SimIoas *ioas, const void *owner) {
        SIM_FOREACH(r, ioas->resv, ioas->n_resv)
                if (r->owner == owner)
                        return true;
        return false;
}

static uint64_t ioas_compute_alignment(SimContext *c, SimIoas *ioas, const SimHwpt *skip,
                                       const SimHwpt *extra, bool disable_large_pages) {
        uint64_t a = disable_large_pages ? BACKEND_SIM_PAGE_SIZE : 1;

        for (size_t i = 0; i < ioas->n_domains; i++)
                if (ioas->domains[i] != skip)
                        a = MAX(a, lowest_bit(hwpt_iommu(c, ioas->domains[i])->page_sizes));
        if (extra)
                a = MAX(a, lowest_bit(c->sim->iommus[extra->iommu].page_sizes));
        return a;
}

typedef struct AlignCheck {
        uint64_t mask;
        const SimArea *bad;
} AlignCheck;

static void align_check_one(IovaNode *n, void *userdata) {
        AlignCheck *ac = userdata;
        SimArea *a = (SimArea *)n;

        if (ac->bad)
                return;
        if ((a->node.start & ac->mask) || ((a->node.last - a->node.start + 1) & ac->mask) ||
            ((a->source % BACKEND_SIM_PAGE_SIZE) & ac->mask))
                ac->bad = a;
}

/* Raising the alignment requires every existing area to obey it (else EADDRINUSE). */
static int ioas_check_alignment(SimIoas *ioas, uint64_t alignment, Error *err) {
        AlignCheck ac = { .mask = alignment - 1 };

        if (alignment <= ioas->alignment)
                return 0;
        iova_tree_foreach(&ioas->areas, align_check_one, &ac);
        if (ac.bad)
                return error_set(err, -EADDRINUSE,
                                 "Area 0x%" PRIx64 "-0x%" PRIx64 " of IOAS %" PRIu32
                                 " is not aligned to %" PRIu64,
                                 ac.bad->node.start, ac.bad->node.last, ioas->obj.id, alignment);
        return 0;
}

/* Adds a paging domain: aperture gaps become reserved, alignment rises. */
static int ioas_add_domain(SimContext *c, SimIoas *ioas, SimHwpt *h, Error *err) {
        SimIommuModel *m = &c->sim->iommus[h->iommu];
        uint64_t a = ioas_compute_alignment(c, ioas, NULL, h, ioas->disable_large_pages);
        SimHwpt **v;
        int r;

        r = ioas_check_alignment(ioas, a, err);
        if (r < 0)
                return r;
        v = realloc(ioas->domains, (ioas->n_domains + 1) * sizeof(SimHwpt *));
        if (!v)
                return error_set(err, -ENOMEM, "Out of memory for domains");
        ioas->domains = v;
        if (m->aperture_start > 0) {
                r = ioas_reserve(ioas, 0, m->aperture_start - 1, h, err);
                if (r < 0)
                        goto fail;
        }
        if (m->aperture_last < UINT64_MAX) {
                r = ioas_reserve(ioas, m->aperture_last + 1, UINT64_MAX, h, err);
                if (r < 0)
                        goto fail;
        }
        ioas->domains[ioas->n_domains++] = h;
        ioas->alignment = a;
        return 0;
fail:
        ioas_unreserve(ioas, h);
        return r;
}

static void ioas_remove_domain(SimContext *c, SimIoas *ioas, SimHwpt *h) {
        size_t j = 0;

        ioas_unreserve(ioas, h);
        for (size_t i = 0; i < ioas->n_domains; i++)
                if (ioas->domains[i] != h)
                        ioas->domains[j++] = ioas->domains[i];
        ioas->n_domains = j;
        ioas->alignment = ioas_compute_alignment(c, ioas, NULL, NULL, ioas->disable_large_pages);
}

/* ---- IOAS: areas ---- */

/* check_areas: false when the insertion itself will report EEXIST (one descent less). */
static int ioas_check_fixed(SimIoas *ioas, uint64_t iova, uint64_t length, bool check_areas,
                            Error *err) {
        uint64_t last;

        if (iova & (ioas->alignment - 1))
                return error_set(err, -EINVAL, "IOVA 0x%" PRIx64 " is not aligned to %" PRIu64,
                                 iova, ioas->alignment);
        if (ADD_OVERFLOW(iova, length - 1, &last))
                return error_set(err, -EOVERFLOW,
                                 "IOVA 0x%" PRIx64 " plus length 0x%" PRIx64 " overflows", iova,
                                 length);
        if (ioas_reserved_overlaps(ioas, iova, last))
                return error_set(err, -EINVAL,
                                 "Range 0x%" PRIx64 "-0x%" PRIx64 " overlaps a reserved range",
                                 iova, last);
        if (check_areas && iova_tree_first_overlap(&ioas->areas, iova, last))
                return error_set(err, -EEXIST,
                                 "Range 0x%" PRIx64 "-0x%" PRIx64 " overlaps an existing mapping",
                                 iova, last);
        return 0;
}

/* Merges the reserved ranges into a sorted, disjoint list. */
static int ioas_reserved_sorted(SimIoas *ioas, IovaRange **ret, size_t *ret_n) {
        _cleanup_free_ IovaRange *v = NULL;
        size_t n = 0;

        if (ioas->n_resv > 0) {
                v = malloc(ioas->n_resv * sizeof(IovaRange));
                if (!v)
                        return -ENOMEM;
        }
        for (size_t i = 0; i < ioas->n_resv; i++) {
                IovaRange r = { ioas->resv[i].start, ioas->resv[i].last };
                size_t k = n;

                while (k > 0 && v[k - 1].start > r.start) {
                        v[k] = v[k - 1];
                        k--;
                }
                v[k] = r;
                n++;
        }
        /* merge */
        size_t m = 0;
        for (size_t i = 0; i < n; i++) {
                if (m > 0 && (v[m - 1].last == UINT64_MAX || v[i].start <= v[m - 1].last + 1)) {
                        v[m - 1].last = MAX(v[m - 1].last, v[i].last);
                        continue;
                }
                v[m++] = v[i];
        }
        *ret = TAKE_PTR(v);
        *ret_n = m;
        return 0;
}

/*
 * The kernel's automatic IOVA: alignment min(roundup_pow2(length), lowest set
 * bit of the source address) (just the former for source 0), capped at
 * BACKEND_SIM_AUTO_ALIGN_MAX (the kernel's HPAGE_SIZE) before it is checked
 * against the IOAS alignment, the source's
 * sub-page offset kept, searched inside [PAGE_SIZE, U64_MAX - PAGE_SIZE]
 * (so never 0) intersected with the allowed ranges when any are set, outside
 * every reserved range, lowest hole first.
 */
static int ioas_alloc_iova(SimIoas *ioas, uint64_t source, uint64_t length, uint64_t *ret,
                           Error *err) {
        _cleanup_free_ IovaRange *resv = NULL;
        IovaRange whole = { BACKEND_SIM_PAGE_SIZE, UINT64_MAX - BACKEND_SIM_PAGE_SIZE };
        const IovaRange *allowed = ioas->n_allowed > 0 ? ioas->allowed : &whole;
        size_t n_allowed = ioas->n_allowed > 0 ? ioas->n_allowed : 1, n_resv = 0;
        uint64_t align, offset = source % BACKEND_SIM_PAGE_SIZE;
        int r;

        if (length == 0 || (length & (ioas->alignment - 1)))
                return error_set(err, -EINVAL, "Length 0x%" PRIx64 " is not a multiple of %" PRIu64,
                                 length, ioas->alignment);
        align = roundup_pow2(length);
        if (align == 0)
                align = UINT64_C(1) << 63;
        if (source != 0)
                align = MIN(align, lowest_bit(source));
        align = MIN(align, BACKEND_SIM_AUTO_ALIGN_MAX);
        if (align < ioas->alignment)
                return error_set(err, -EINVAL,
                                 "Source address 0x%" PRIx64 " is not aligned to the IOAS alignment %" PRIu64,
                                 source, ioas->alignment);

        r = ioas_reserved_sorted(ioas, &resv, &n_resv);
        if (r < 0)
                return error_set(err, r, "Out of memory");

        for (size_t i = 0; i < n_allowed; i++) {
                uint64_t lo = MAX(allowed[i].start, whole.start);
                uint64_t hi = MIN(allowed[i].last, whole.last);
                size_t k = 0;

                /* Walk the free windows of [lo, hi] between reserved ranges. */
                while (lo <= hi) {
                        uint64_t wlast = hi, next_lo = 0;
                        bool more = false;

                        while (k < n_resv && resv[k].last < lo)
                                k++;
                        if (k < n_resv && resv[k].start <= lo) {
                                if (resv[k].last >= hi)
                                        break;
                                lo = resv[k].last + 1;
                                continue;
                        }
                        if (k < n_resv && resv[k].start <= hi) {
                                wlast = resv[k].start - 1;
                                more = resv[k].last < hi;
                                next_lo = more ? resv[k].last + 1 : 0;
                        }
                        if (iova_tree_find_hole(&ioas->areas, lo, wlast, length, align, offset, ret) == 0)
                                return 0;
                        if (!more)
                                break;
                        lo = next_lo;
                }
        }
        return error_set(err, -ENOSPC, "No free IOVA range of 0x%" PRIx64 " bytes aligned to %" PRIu64
                         " in IOAS %" PRIu32, length, align, ioas->obj.id);
}

static int ioas_insert_area(SimContext *c, SimIoas *ioas, uint64_t iova, uint64_t length,
                            uint64_t source, uint32_t flags, Error *err) {
        SimArea *a;
        int r;

        if ((source % BACKEND_SIM_PAGE_SIZE) & (ioas->alignment - 1))
                return error_set(err, -EINVAL,
                                 "Source offset 0x%" PRIx64 " is not aligned to %" PRIu64, source,
                                 ioas->alignment);
        a = malloc(sizeof(SimArea));
        if (!a)
                return error_set(err, -ENOMEM, "Out of memory for an area");
        a->node.start = iova;
        a->node.last = iova + length - 1;
        a->source = source;
        a->flags = flags;
        r = iova_tree_insert(&ioas->areas, &a->node);
        if (r == -ENOMEM) {
                free(a);
                return error_set(err, r, "Out of memory for the area tree");
        }
        if (r < 0) {
                free(a);
                return error_set(err, -EEXIST,
                                 "Range 0x%" PRIx64 "-0x%" PRIx64 " overlaps an existing mapping",
                                 iova, iova + length - 1);
        }
        c->mapped_bytes += length;
        return 0;
}

static int check_map_flags(uint32_t flags, Error *err) {
        if (flags & ~SIM_MAP_FLAGS)
                return error_set(err, -EOPNOTSUPP, "Unknown map flags 0x%" PRIx32,
                                 flags & ~SIM_MAP_FLAGS);
        return 0;
}

static int ioas_map_common(SimContext *c, uint32_t ioas_id, uint32_t flags, uint64_t source,
                           uint64_t length, uint64_t *iova, int fd, Error *err) {
        SimIoas *ioas;
        uint64_t at;
        int r;

        r = check_map_flags(flags, err);
        if (r < 0)
                return r;
        if (((flags & BACKEND_MAP_FIXED_IOVA) && *iova == UINT64_MAX) || length == UINT64_MAX)
                return error_set(err, -EOVERFLOW, "IOVA or length 0x%" PRIx64 " is too large", length);
        r = obj_lookup(c, ioas_id, SIM_OBJ_IOAS, (void **)&ioas, err);
        if (r < 0)
                return r;
        if (fd >= 0) {
                struct stat st;
                struct statfs sfs;
                uint64_t end;

                if (fstat(fd, &st) < 0)
                        return error_set(err, -EBADF, "Memory fd %d is not an open file", fd);
                if (!S_ISREG(st.st_mode) || fstatfs(fd, &sfs) < 0 ||
                    ((uint64_t)sfs.f_type != TMPFS_MAGIC_ && (uint64_t)sfs.f_type != HUGETLBFS_MAGIC_))
                        return error_set(err, -EINVAL,
                                         "Memory fd %d is not a memfd, shmem or hugetlbfs file", fd);
                if (ADD_OVERFLOW(source, length, &end) || end > (uint64_t)st.st_size)
                        return error_set(err, -EINVAL,
                                         "Range 0x%" PRIx64 "+0x%" PRIx64
                                         " is beyond the end of the memory fd (%" PRIu64 " bytes)",
                                         source, length, (uint64_t)st.st_size);
        }
        if (!(flags & (BACKEND_MAP_READABLE | BACKEND_MAP_WRITEABLE)))
                return error_set(err, -EINVAL, "A mapping must be readable, writeable or both");
        if (length == 0)
                return error_set(err, -EINVAL, "Length is 0");

        if (flags & BACKEND_MAP_FIXED_IOVA) {
                at = *iova;
                if (length & (ioas->alignment - 1))
                        return error_set(err, -EINVAL,
                                         "Length 0x%" PRIx64 " is not a multiple of %" PRIu64,
                                         length, ioas->alignment);
                r = ioas_check_fixed(ioas, at, length, false, err);
        } else
                r = ioas_alloc_iova(ioas, source, length, &at, err);
        if (r < 0)
                return r;

        r = ioas_insert_area(c, ioas, at, length, source,
                             (flags & (BACKEND_MAP_READABLE | BACKEND_MAP_WRITEABLE)) |
                                     ((flags & BACKEND_MAP_WRITEABLE) ? AREA_PAGES_WRITABLE : 0),
                             err);
        if (r < 0)
                return r;
        *iova = at;
        return 0;
}

static int sim_ioas_map_file(BackendContext *bc, uint32_t ioas_id, uint32_t flags, int fd,
                             uint64_t start, uint64_t length, uint64_t *iova, Error *err) {
        if (fd < 0)
                return error_set(err, -EBADF, "Memory fd %d is not valid", fd);
        return ioas_map_common(to_ctx(bc), ioas_id, flags, start, length, iova, fd, err);
}

static int sim_ioas_map_va(BackendContext *bc, uint32_t ioas_id, uint32_t flags, uint64_t user_va,
                           uint64_t length, uint64_t *iova, Error *err) {
        return ioas_map_common(to_ctx(bc), ioas_id, flags, user_va, length, iova, -1, err);
}

static void area_free(SimContext *c, SimIoas *ioas, SimArea *a) {
        c->mapped_bytes -= a->node.last - a->node.start + 1;
        iova_tree_remove(&ioas->areas, &a->node);
        free(a);
}

/* Unmaps areas wholly inside [start, last] in order; a cut area stops it (not atomic). */
static int ioas_unmap_range(SimContext *c, SimIoas *ioas, uint64_t start, uint64_t last,
                            uint64_t *ret_unmapped, Error *err) {
        uint64_t unmapped = 0;
        IovaNode *n;

        while ((n = iova_tree_first_overlap(&ioas->areas, start, last))) {
                if (n->start < start || n->last > last)
                        return error_set(err, -ENOENT,
                                         "Range 0x%" PRIx64 "-0x%" PRIx64
                                         " cuts the mapping 0x%" PRIx64 "-0x%" PRIx64,
                                         start, last, n->start, n->last);
                unmapped += n->last - n->start + 1;
                area_free(c, ioas, (SimArea *)n);
        }
        if (unmapped == 0)
                return error_set(err, -ENOENT,
                                 "Nothing is mapped in 0x%" PRIx64 "-0x%" PRIx64, start, last);
        *ret_unmapped = unmapped;
        return 0;
}

static int sim_ioas_unmap(BackendContext *bc, uint32_t ioas_id, uint64_t iova, uint64_t length,
                          uint64_t *ret_unmapped, Error *err) {
        SimContext *c = to_ctx(bc);
        SimIoas *ioas;
        uint64_t last, unmapped = 0;
        int r;

        r = obj_lookup(c, ioas_id, SIM_OBJ_IOAS, (void **)&ioas, err);
        if (r < 0)
                return r;
        if (iova == 0 && length == UINT64_MAX) {
                r = ioas_unmap_range(c, ioas, 0, UINT64_MAX, &unmapped, NULL);
                if (r < 0 && r != -ENOENT)
                        return error_set(err, r, "Unmapping everything failed");
                if (ret_unmapped)
                        *ret_unmapped = unmapped;
                return 0;
        }
        if (iova == UINT64_MAX || length == UINT64_MAX)
                return error_set(err, -EOVERFLOW, "IOVA 0x%" PRIx64 " or length 0x%" PRIx64
                                 " is too large", iova, length);
        if (length == 0)
                return error_set(err, -EINVAL, "Length is 0");
        if (ADD_OVERFLOW(iova, length - 1, &last))
                return error_set(err, -EOVERFLOW,
                                 "IOVA 0x%" PRIx64 " plus length 0x%" PRIx64 " overflows", iova,
                                 length);
        r = ioas_unmap_range(c, ioas, iova, last, &unmapped, err);
        if (r < 0)
                return r;
        if (ret_unmapped)
                *ret_unmapped = unmapped;
        return 0;
}

typedef struct CopyPiece {
        uint64_t offset; /* from the start of the copied range */
        uint64_t length;
        uint64_t source;
        uint32_t pages_writable;
} CopyPiece;

static int sim_ioas_copy(BackendContext *bc, uint32_t dst_ioas_id, uint32_t src_ioas_id,
                         uint32_t flags, uint64_t src_iova, uint64_t length, uint64_t *dst_iova,
                         Error *err) {
        SimContext *c = to_ctx(bc);
        _cleanup_free_ CopyPiece *pieces = NULL;
        size_t n_pieces = 0;
        SimIoas *src, *dst;
        uint64_t src_last, cur, at;
        IovaNode *n;
        int r;

        if (length == UINT64_MAX || src_iova == UINT64_MAX ||
            ((flags & BACKEND_MAP_FIXED_IOVA) && *dst_iova == UINT64_MAX))
                return error_set(err, -EOVERFLOW, "IOVA or length is too large");
        r = check_map_flags(flags, err);
        if (r < 0)
                return r;
        r = obj_lookup(c, src_ioas_id, SIM_OBJ_IOAS, (void **)&src, err);
        if (r < 0)
                return r;
        if (length == 0)
                return error_set(err, -EINVAL, "Length is 0");
        if (ADD_OVERFLOW(src_iova, length - 1, &src_last))
                return error_set(err, -EOVERFLOW, "Source range overflows");

        /* The source must be covered by contiguous areas. */
        cur = src_iova;
        n = iova_tree_find(&src->areas, src_iova);
        while (true) {
                SimArea *a = (SimArea *)n;
                uint64_t piece_last;
                CopyPiece *v;

                if (!n || n->start > cur)
                        return error_set(err, -ENOENT,
                                         "IOVA 0x%" PRIx64 " of IOAS %" PRIu32 " is not mapped",
                                         cur, src_ioas_id);
                piece_last = MIN(n->last, src_last);
                v = realloc(pieces, (n_pieces + 1) * sizeof(CopyPiece));
                if (!v)
                        return error_set(err, -ENOMEM, "Out of memory");
                pieces = v;
                pieces[n_pieces++] = (CopyPiece){
                        .offset = cur - src_iova,
                        .length = piece_last - cur + 1,
                        .source = a->source + (cur - n->start),
                        .pages_writable = a->flags & AREA_PAGES_WRITABLE,
                };
                if (piece_last == src_last)
                        break;
                cur = piece_last + 1;
                n = iova_tree_next(&src->areas, n);
        }

        r = obj_lookup(c, dst_ioas_id, SIM_OBJ_IOAS, (void **)&dst, err);
        if (r < 0)
                return r;
        if (!(flags & (BACKEND_MAP_READABLE | BACKEND_MAP_WRITEABLE)))
                return error_set(err, -EINVAL, "A mapping must be readable, writeable or both");
        if (flags & BACKEND_MAP_WRITEABLE)
                for (size_t i = 0; i < n_pieces; i++)
                        if (!pieces[i].pages_writable)
                                return error_set(err, -EPERM,
                                                 "Source 0x%" PRIx64 " was not mapped writeable",
                                                 src_iova + pieces[i].offset);

        if (flags & BACKEND_MAP_FIXED_IOVA) {
                at = *dst_iova;
                if (length & (dst->alignment - 1))
                        return error_set(err, -EINVAL,
                                         "Length 0x%" PRIx64 " is not a multiple of %" PRIu64,
                                         length, dst->alignment);
                r = ioas_check_fixed(dst, at, length, true, err);
        } else
                r = ioas_alloc_iova(dst, pieces[0].source, length, &at, err);
        if (r < 0)
                return r;

        for (size_t i = 0; i < n_pieces; i++) {
                r = ioas_insert_area(c, dst, at + pieces[i].offset, pieces[i].length,
                                     pieces[i].source,
                                     (flags & (BACKEND_MAP_READABLE | BACKEND_MAP_WRITEABLE)) |
                                             pieces[i].pages_writable,
                                     err);
                if (r < 0) {
                        /* Roll back what this copy inserted. */
                        for (size_t j = 0; j < i; j++)
                                area_free(c, dst,
                                          (SimArea *)iova_tree_find(&dst->areas,
                                                                    at + pieces[j].offset));
                        return r;
                }
        }
        *dst_iova = at;
        return 0;
}

static int sim_ioas_iova_ranges(BackendContext *bc, uint32_t ioas_id, IovaRange *ranges,
                                size_t *n_ranges, uint64_t *ret_alignment, Error *err) {
        SimContext *c = to_ctx(bc);
        _cleanup_free_ IovaRange *resv = NULL;
        size_t n_resv = 0, n = 0, cap = *n_ranges;
        uint64_t cursor = 0;
        bool valid = true;
        SimIoas *ioas;
        int r;

        r = obj_lookup(c, ioas_id, SIM_OBJ_IOAS, (void **)&ioas, err);
        if (r < 0)
                return r;
        r = ioas_reserved_sorted(ioas, &resv, &n_resv);
        if (r < 0)
                return error_set(err, r, "Out of memory");

        for (size_t i = 0; i <= n_resv; i++) {
                uint64_t hole_last;

                if (!valid)
                        break;
                if (i < n_resv) {
                        if (resv[i].start > cursor) {
                                hole_last = resv[i].start - 1;
                                if (n < cap)
                                        ranges[n] = (IovaRange){ cursor, hole_last };
                                n++;
                        }
                        if (resv[i].last == UINT64_MAX)
                                valid = false;
                        else
                                cursor = resv[i].last + 1;
                } else {
                        if (n < cap)
                                ranges[n] = (IovaRange){ cursor, UINT64_MAX };
                        n++;
                }
        }
        *n_ranges = n;
        if (n > cap)
                return error_set(err, -EMSGSIZE, "IOAS %" PRIu32 " has %zu ranges, room for %zu",
                                 ioas_id, n, cap);
        if (ret_alignment)
                *ret_alignment = ioas->alignment;
        return 0;
}

static int range_cmp(const void *a, const void *b) {
        const IovaRange *x = a, *y = b;

        return x->start < y->start ? -1 : x->start > y->start;
}

static int sim_ioas_allow_iovas(BackendContext *bc, uint32_t ioas_id, const IovaRange *ranges,
                                size_t n, Error *err) {
        SimContext *c = to_ctx(bc);
        _cleanup_free_ IovaRange *v = NULL;
        SimIoas *ioas;
        int r;

        r = obj_lookup(c, ioas_id, SIM_OBJ_IOAS, (void **)&ioas, err);
        if (r < 0)
                return r;
        if (n > 0) {
                v = malloc(n * sizeof(IovaRange));
                if (!v)
                        return error_set(err, -ENOMEM, "Out of memory");
                memcpy(v, ranges, n * sizeof(IovaRange));
        }
        for (size_t i = 0; i < n; i++)
                if (v[i].start >= v[i].last)
                        return error_set(err, -EINVAL,
                                         "Allowed range %zu: start 0x%" PRIx64
                                         " is not below last 0x%" PRIx64,
                                         i, v[i].start, v[i].last);
        if (n > 1)
                qsort(v, n, sizeof(IovaRange), range_cmp);
        for (size_t i = 1; i < n; i++)
                if (v[i].start <= v[i - 1].last)
                        return error_set(err, -EINVAL,
                                         "Allowed ranges 0x%" PRIx64 "-0x%" PRIx64 " and 0x%" PRIx64
                                         "-0x%" PRIx64 " overlap",
                                         v[i - 1].start, v[i - 1].last, v[i].start, v[i].last);
        for (size_t i = 0; i < n; i++)
                if (ioas_reserved_overlaps(ioas, v[i].start, v[i].last))
                        return error_set(err, -EADDRINUSE,
                                         "Allowed range 0x%" PRIx64 "-0x%" PRIx64
                                         " intersects a reserved range",
                                         v[i].start, v[i].last);
        free(ioas->allowed);
        ioas->allowed = TAKE_PTR(v);
        ioas->n_allowed = n;
        return 0;
}

static int sim_ioas_alloc(BackendContext *bc, uint32_t *ret_id, Error *err) {
        SimContext *c = to_ctx(bc);
        SimIoas *ioas;
        int r;

        ioas = calloc(1, sizeof(SimIoas));
        if (!ioas)
                return error_set(err, -ENOMEM, "Out of memory for an IOAS");
        ioas->areas = IOVA_TREE_INIT;
        ioas->alignment = 1;
        r = obj_add(c, &ioas->obj, SIM_OBJ_IOAS, err);
        if (r < 0) {
                free(ioas);
                return r;
        }
        *ret_id = ioas->obj.id;
        return 0;
}

static void area_free_cb(IovaNode *n, void *userdata) {
        SimContext *c = userdata;

        c->mapped_bytes -= n->last - n->start + 1;
        free(n);
}

static void ioas_free(SimContext *c, SimIoas *ioas) {
        iova_tree_clear(&ioas->areas, area_free_cb, c);
        obj_remove(c, &ioas->obj);
        free(ioas->resv);
        free(ioas->allowed);
        free(ioas->domains);
        free(ioas);
}

/* ---- fault queues ---- */

static void fault_group_free(SimFaultGroup *g) {
        if (!g)
                return;
        free(g->records);
        free(g);
}

static void fault_update_event(SimFaultQueue *q) {
        uint64_t v;

        /* POLLIN exactly while groups are queued. */
        if (q->queued)
                (void)eventfd_write(q->efd, 1);
        else
                while (eventfd_read(q->efd, &v) == 0)
                        ;
}

/* Answers INVALID every group of (dev_id, pasid) (or every group when all) in q. */
static void fault_auto_respond(SimContext *c, SimFaultQueue *q, bool all, uint32_t dev_id,
                               uint32_t pasid) {
        SimFaultGroup **lists[] = { &q->queued, &q->waiting };

        SIM_FOREACH(l, lists, ELEMENTSOF(lists)) {
                SimFaultGroup **p = *l;

                while (*p) {
                        SimFaultGroup *g = *p;

                        if (!all && (g->dev_id != dev_id || g->pasid != pasid)) {
                                p = &g->next;
                                continue;
                        }
                        *p = g->next;
                        c->sim->stats.auto_invalid++;
                        fault_group_free(g);
                }
        }
        q->queued_tail = &q->queued;
        while (*q->queued_tail)
                q->queued_tail = &(*q->queued_tail)->next;
        q->waiting_tail = &q->waiting;
        while (*q->waiting_tail)
                q->waiting_tail = &(*q->waiting_tail)->next;
        fault_update_event(q);
}

static int sim_fault_queue_alloc(BackendContext *bc, uint32_t *ret_id, int *ret_fd, Error *err) {
        SimContext *c = to_ctx(bc);
        SimFaultQueue *q;
        int r;

        q = calloc(1, sizeof(SimFaultQueue));
        if (!q)
                return error_set(err, -ENOMEM, "Out of memory for a fault queue");
        q->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (q->efd < 0) {
                r = negative_errno();
                free(q);
                return error_set(err, r, "Creating the fault queue's eventfd failed");
        }
        q->queued_tail = &q->queued;
        q->waiting_tail = &q->waiting;
        q->next_cookie = 1;
        r = obj_add(c, &q->obj, SIM_OBJ_FAULT, err);
        if (r < 0) {
                safe_close(q->efd);
                free(q);
                return r;
        }
        *ret_id = q->obj.id;
        *ret_fd = q->efd;
        return 0;
}

static void fault_queue_free(SimContext *c, SimFaultQueue *q) {
        fault_auto_respond(c, q, true, 0, 0);
        obj_remove(c, &q->obj);
        safe_close(q->efd);
        free(q);
}

static int sim_fault_read(BackendContext *bc, uint32_t fault_id, FaultRecord *buf, size_t n_max,
                          size_t *ret_n, Error *err) {
        SimContext *c = to_ctx(bc);
        SimFaultQueue *q;
        size_t done = 0;
        int r;

        r = obj_lookup(c, fault_id, SIM_OBJ_FAULT, (void **)&q, err);
        if (r < 0)
                return r;
        while (q->queued && q->queued->n <= n_max - done) {
                SimFaultGroup *g = q->queued;

                q->queued = g->next;
                if (!q->queued)
                        q->queued_tail = &q->queued;
                g->cookie = q->next_cookie++;
                if (q->next_cookie == 0)
                        q->next_cookie = 1;
                for (size_t i = 0; i < g->n; i++) {
                        buf[done] = g->records[i];
                        buf[done].cookie = g->cookie;
                        done++;
                }
                g->next = NULL;
                *q->waiting_tail = g;
                q->waiting_tail = &g->next;
                c->sim->stats.groups_delivered++;
        }
        fault_update_event(q);
        *ret_n = done;
        return 0;
}

static int sim_fault_respond(BackendContext *bc, uint32_t fault_id, uint32_t cookie, uint32_t code,
                             Error *err) {
        SimContext *c = to_ctx(bc);
        SimFaultQueue *q;
        SimFaultGroup **p;
        int r;

        r = obj_lookup(c, fault_id, SIM_OBJ_FAULT, (void **)&q, err);
        if (r < 0)
                return r;
        if (code != FAULT_RESPONSE_SUCCESS && code != FAULT_RESPONSE_INVALID)
                return error_set(err, -EINVAL, "Unknown fault response code %" PRIu32, code);
        for (p = &q->waiting; *p; p = &(*p)->next)
                if ((*p)->cookie == cookie) {
                        SimFaultGroup *g = *p;

                        *p = g->next;
                        if (!*p)
                                q->waiting_tail = p;
                        fault_group_free(g);
                        if (code == FAULT_RESPONSE_SUCCESS)
                                c->sim->stats.responses_success++;
                        else
                                c->sim->stats.responses_invalid++;
                        return 0;
                }
        return error_set(err, -EINVAL, "No fault awaits a response with cookie %" PRIu32, cookie);
}

/* ---- HWPTs ---- */

static void hwpt_free(SimContext *c, SimHwpt *h) {
        if (h->ioas) {
                ioas_remove_domain(c, h->ioas, h);
                h->ioas->users--;
        }
        if (h->parent)
                h->parent->users--;
        if (h->fault)
                h->fault->users--;
        obj_remove(c, &h->obj);
        free(h);
}

static int hwpt_paging_new(SimContext *c, SimIoas *ioas, size_t iommu, uint32_t flags,
                           SimFaultQueue *fault, bool auto_domain, SimHwpt **ret, Error *err) {
        SimHwpt *h;
        int r;

        h = calloc(1, sizeof(SimHwpt));
        if (!h)
                return error_set(err, -ENOMEM, "Out of memory for a HWPT");
        h->flags = flags;
        h->iommu = iommu;
        h->auto_domain = auto_domain;
        r = ioas_add_domain(c, ioas, h, err);
        if (r < 0) {
                free(h);
                return r;
        }
        r = obj_add(c, &h->obj, SIM_OBJ_HWPT_PAGING, err);
        if (r < 0) {
                ioas_remove_domain(c, ioas, h);
                free(h);
                return r;
        }
        h->ioas = ioas;
        ioas->users++;
        h->fault = fault;
        if (fault)
                fault->users++;
        *ret = h;
        return 0;
}

static int check_user_data(uint32_t type, const void *data, uint32_t len, Error *err) {
        uint32_t size = type == BACKEND_HWPT_DATA_VTD_S1 ? SIM_VTD_S1_SIZE : SIM_ARM_SMMUV3_SIZE;

        if (len < size)
                return error_set(err, -EINVAL, "HWPT data of type %" PRIu32 " needs %" PRIu32
                                 " bytes, got %" PRIu32, type, size, len);
        for (uint32_t i = size; i < len; i++)
                if (((const uint8_t *)data)[i] != 0)
                        return error_set(err, -E2BIG,
                                         "HWPT data has non-zero byte %" PRIu32 " beyond the %" PRIu32
                                         " bytes known", i, size);
        return 0;
}

/* The fault queue named by FAULT_ID_VALID; looked up after the flag checks, as the kernel does. */
static int hwpt_lookup_fault(SimContext *c, SimIommuModel *m, const HwptAllocArgs *args,
                             SimFaultQueue **ret, Error *err) {
        int r;

        if (!(args->flags & BACKEND_HWPT_FAULT_ID_VALID)) {
                *ret = NULL;
                return 0;
        }
        if (!m->fault_queue)
                return error_set(err, -EOPNOTSUPP, "IOMMU %s cannot deliver I/O page faults",
                                 m->name);
        r = obj_lookup(c, args->fault_id, SIM_OBJ_FAULT, (void **)ret, err);
        if (r < 0)
                return r;
        return 0;
}

static int sim_hwpt_alloc(BackendContext *bc, const HwptAllocArgs *args, uint32_t *ret_id,
                          Error *err) {
        SimContext *c = to_ctx(bc);
        SimFaultQueue *fault = NULL;
        SimIommuModel *m;
        SimObject *pt;
        SimHwpt *h;
        SimDev *d;
        int r;

        if (args->flags & ~SIM_HWPT_FLAGS)
                return error_set(err, -EOPNOTSUPP, "Unknown HWPT flags 0x%" PRIx32,
                                 args->flags & ~SIM_HWPT_FLAGS);
        if ((args->data_type == BACKEND_HWPT_DATA_NONE && args->data_len != 0) ||
            (args->data_type != BACKEND_HWPT_DATA_NONE && (args->data_len == 0 || !args->data)))
                return error_set(err, -EINVAL, "HWPT data type %" PRIu32 " with %" PRIu32 " bytes",
                                 args->data_type, args->data_len);
        r = obj_lookup(c, args->dev_id, SIM_OBJ_DEVICE, (void **)&d, err);
        if (r < 0)
                return r;
        /*
         * The kernel answers an unknown pt_id with EINVAL, not ENOENT: iommufd_hwpt_alloc()
         * turns the failed object lookup into -EINVAL (hw_pagetable.c, 6.6 through 6.12 at
         * least), like a pt_id of the wrong type.
         */
        pt = obj_get(c, args->pt_id);
        if (!pt)
                return error_set(err, -EINVAL, "No IOAS or paging HWPT with id %" PRIu32,
                                 args->pt_id);
        m = dev_iommu(c, d);

        if (pt->type == SIM_OBJ_IOAS) {
                if (args->data_type != BACKEND_HWPT_DATA_NONE)
                        return error_set(err, -EOPNOTSUPP,
                                         "A paging HWPT takes no data (type %" PRIu32 ")",
                                         args->data_type);
                if ((args->flags & BACKEND_HWPT_NEST_PARENT) && !m->nesting)
                        return error_set(err, -EOPNOTSUPP, "IOMMU %s does not support nesting",
                                         m->name);
                if ((args->flags & BACKEND_HWPT_DIRTY_TRACKING) && !m->dirty_tracking)
                        return error_set(err, -EOPNOTSUPP,
                                         "IOMMU %s does not support dirty tracking", m->name);
                if ((args->flags & BACKEND_HWPT_FAULT_ID_VALID) &&
                    (args->flags & BACKEND_HWPT_NEST_PARENT))
                        return error_set(err, -EOPNOTSUPP,
                                         "A nesting parent cannot take faults");
                if ((args->flags & BACKEND_HWPT_PASID) && m->pasid_bits == 0)
                        return error_set(err, -EOPNOTSUPP, "IOMMU %s does not support PASID",
                                         m->name);
                r = hwpt_lookup_fault(c, m, args, &fault, err);
                if (r < 0)
                        return r;
                r = hwpt_paging_new(c, (SimIoas *)pt, dev_group(c, d)->iommu, args->flags, fault,
                                    false, &h, err);
                if (r < 0)
                        return r;
                *ret_id = h->obj.id;
                return 0;
        }
        if (pt->type == SIM_OBJ_HWPT_PAGING) {
                SimHwpt *parent = (SimHwpt *)pt;
                uint32_t want;

                if (args->flags & ~(BACKEND_HWPT_FAULT_ID_VALID | BACKEND_HWPT_PASID))
                        return error_set(err, -EOPNOTSUPP,
                                         "Flags 0x%" PRIx32 " are not valid for a nested HWPT",
                                         args->flags);
                if (args->data_len == 0 || !m->nesting)
                        return error_set(err, -EOPNOTSUPP,
                                         "IOMMU %s does not support nested HWPTs without data",
                                         m->name);
                if (parent->auto_domain || !(parent->flags & BACKEND_HWPT_NEST_PARENT))
                        return error_set(err, -EINVAL,
                                         "HWPT %" PRIu32 " was not allocated as a nesting parent",
                                         parent->obj.id);
                if (parent->iommu != dev_group(c, d)->iommu)
                        return error_set(err, -EINVAL,
                                         "HWPT %" PRIu32 " belongs to another IOMMU instance",
                                         parent->obj.id);
                want = m->hw_info_type == 1 ? BACKEND_HWPT_DATA_VTD_S1 :
                       m->hw_info_type == 2 ? BACKEND_HWPT_DATA_ARM_SMMUV3 : UINT32_MAX;
                if (args->data_type != want)
                        return error_set(err, -EOPNOTSUPP,
                                         "HWPT data type %" PRIu32 " is not supported by IOMMU %s",
                                         args->data_type, m->name);
                r = check_user_data(args->data_type, args->data, args->data_len, err);
                if (r < 0)
                        return r;
                r = hwpt_lookup_fault(c, m, args, &fault, err);
                if (r < 0)
                        return r;
                h = calloc(1, sizeof(SimHwpt));
                if (!h)
                        return error_set(err, -ENOMEM, "Out of memory for a HWPT");
                r = obj_add(c, &h->obj, SIM_OBJ_HWPT_NESTED, err);
                if (r < 0) {
                        free(h);
                        return r;
                }
                h->flags = args->flags;
                h->iommu = parent->iommu;
                h->parent = parent;
                h->data_type = args->data_type;
                parent->users++;
                h->fault = fault;
                if (fault)
                        fault->users++;
                *ret_id = h->obj.id;
                return 0;
        }
        return error_set(err, -EINVAL, "Object %" PRIu32 " is a %s: HWPTs are built on an IOAS or "
                         "a nesting parent", args->pt_id, obj_type_name(pt->type));
}

/* ---- devices ---- */

static bool driver_is_viable(const SimDevModel *m) {
        if (!m->driver)
                return true;
        if (strneq(m->driver, "vfio", 4) || streq(m->driver, "pci-stub"))
                return true;
        return (m->class >> 8) == 0x0604 || (m->class >> 8) == 0x0600; /* bridges */
}

static int sim_device_fd_identify_model(SimBackend *s, int fd, size_t *ret, Error *err) {
        struct stat st;
        int fl;

        fl = fcntl(fd, F_GETFL);
        if (fl < 0)
                return error_set(err, -EBADF, "fd %d is not open", fd);
        if (fl & O_PATH)
                return error_set(err, -EBADF, "fd %d is an O_PATH fd, not an open device", fd);
        if (fstat(fd, &st) < 0)
                return error_set(err, -EBADF, "fd %d cannot be inspected", fd);
        if (!S_ISREG(st.st_mode))
                return error_set(err, -ENODEV, "fd %d is a %s, not a VFIO device", fd,
                                 S_ISDIR(st.st_mode) ? "directory" :
                                 S_ISFIFO(st.st_mode) ? "pipe" :
                                 S_ISSOCK(st.st_mode) ? "socket" :
                                 S_ISCHR(st.st_mode) ? "character device that is not a VFIO cdev" :
                                 "special file");

        for (size_t i = 0; i < s->n_devices; i++) {
                SimDevModel *m = &s->devices[i];

                if (!m->cdev)
                        continue;
                for (size_t k = 0; k < m->n_nodes; k++)
                        if (m->nodes[k].dev == st.st_dev && m->nodes[k].ino == st.st_ino) {
                                *ret = i;
                                return 0;
                        }
                if (s->root) {
                        char path[PATH_MAX];
                        struct stat nst;

                        snprintf(path, sizeof(path), "%s/dev/vfio/devices/vfio%u", s->root,
                                 m->cdev_minor);
                        if (stat(path, &nst) == 0 && nst.st_dev == st.st_dev &&
                            nst.st_ino == st.st_ino) {
                                *ret = i;
                                return 0;
                        }
                }
        }
        return error_set(err, -ENODEV, "fd %d is a regular file, not a VFIO device node", fd);
}

static int sim_device_fd_identify(Backend *b, int fd, char **ret_name, Error *err) {
        SimBackend *s = to_sim(b);
        size_t i;
        char *n;
        int r;

        r = sim_device_fd_identify_model(s, fd, &i, err);
        if (r < 0)
                return r;
        n = strdup(s->devices[i].name);
        if (!n)
                return error_set(err, -ENOMEM, "Out of memory");
        *ret_name = n;
        return 0;
}

static int sim_find_device(SimBackend *s, const char *name, size_t *ret) {
        for (size_t i = 0; i < s->n_devices; i++)
                if (streq(s->devices[i].name, name)) {
                        *ret = i;
                        return 0;
                }
        return -ENODEV;
}

static int sim_device_open(Backend *b, const char *name, int *ret_fd, Error *err) {
        SimBackend *s = to_sim(b);
        _cleanup_close_ int fd = -EBADF, keep = -EBADF;
        SimDevModel *m;
        struct stat st;
        size_t i;
        char buf[64];

        if (sim_find_device(s, name, &i) < 0)
                return error_set(err, -ENODEV, "No device %s", name);
        m = &s->devices[i];
        if (!m->cdev)
                return error_set(err, -ENODEV, "Device %s has no VFIO cdev", name);

        if (s->root) {
                char path[PATH_MAX];

                snprintf(path, sizeof(path), "%s/dev/vfio/devices/vfio%u", s->root, m->cdev_minor);
                fd = open(path, O_RDWR | O_CLOEXEC | O_NOCTTY);
                if (fd < 0)
                        return error_set(err, negative_errno(), "Opening %s failed", path);
                *ret_fd = TAKE_FD(fd);
                return 0;
        }

        /* Test hook: a memfd stands for the node; keep one copy so its inode stays unique. */
        snprintf(buf, sizeof(buf), "vfio%u", m->cdev_minor);
        fd = memfd_create(buf, MFD_CLOEXEC);
        if (fd < 0)
                return error_set(err, negative_errno(), "Creating a node for %s failed", name);
        if (fstat(fd, &st) < 0)
                return error_set(err, negative_errno(), "Inspecting the node of %s failed", name);
        keep = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        if (keep < 0)
                return error_set(err, negative_errno(), "Duplicating the node of %s failed", name);
        {
                SimIdentity *v = realloc(m->nodes, (m->n_nodes + 1) * sizeof(SimIdentity));
                int *f;

                if (!v)
                        return error_set(err, -ENOMEM, "Out of memory");
                m->nodes = v;
                f = realloc(m->node_fds, (m->n_nodes + 1) * sizeof(int));
                if (!f)
                        return error_set(err, -ENOMEM, "Out of memory");
                m->node_fds = f;
                m->nodes[m->n_nodes] = (SimIdentity){ st.st_dev, st.st_ino };
                m->node_fds[m->n_nodes] = TAKE_FD(keep);
                m->n_nodes++;
        }
        *ret_fd = TAKE_FD(fd);
        return 0;
}

static int sim_device_bind(BackendContext *bc, int device_fd, uint32_t *ret_dev_id, Error *err) {
        SimContext *c = to_ctx(bc);
        SimBackend *s = c->sim;
        SimGroupModel *g;
        SimDevModel *m;
        SimDev *d;
        size_t i;
        int r;

        r = sim_device_fd_identify_model(s, device_fd, &i, err);
        if (r < 0)
                return r;
        m = &s->devices[i];
        g = &s->groups[m->group];
        if (m->ctx)
                return error_set(err, -EINVAL, "Device %s is already bound", m->name);
        if (g->owner && g->owner != c)
                return error_set(err, -EPERM, "IOMMU group %u of %s is owned by another iommufd",
                                 g->id, m->name);
        for (size_t k = 0; k < g->n_devices; k++) {
                SimDevModel *sib = &s->devices[g->devices[k]];

                if (sib != m && !driver_is_viable(sib))
                        return error_set(err, -EPERM,
                                         "IOMMU group %u of %s is not viable: %s is bound to %s",
                                         g->id, m->name, sib->name, sib->driver);
        }
        SIM_FOREACH(reg, g->regions, g->n_regions)
                if (reg->type == REGION_DIRECT)
                        return error_set(err, -EINVAL,
                                         "Device %s needs a firmware 1:1 mapping of 0x%" PRIx64
                                         "-0x%" PRIx64,
                                         m->name, reg->start, reg->last);

        d = calloc(1, sizeof(SimDev));
        if (!d)
                return error_set(err, -ENOMEM, "Out of memory for a device");
        d->model = i;
        r = obj_add(c, &d->obj, SIM_OBJ_DEVICE, err);
        if (r < 0) {
                free(d);
                return r;
        }
        m->ctx = c;
        m->dev_id = d->obj.id;
        g->owner = c;
        g->n_bound++;
        *ret_dev_id = d->obj.id;
        return 0;
}

static SimAttach *dev_find_pasid(SimDev *d, uint32_t pasid) {
        SIM_FOREACH(a, d->pasids, d->n_pasids)
                if (a->pasid == pasid)
                        return a;
        return NULL;
}

static SimHwpt *dev_attached(SimDev *d, uint32_t pasid) {
        SimAttach *a;

        if (pasid == BACKEND_NO_PASID)
                return d->rid;
        a = dev_find_pasid(d, pasid);
        return a ? a->hwpt : NULL;
}

static void dev_drop_partial(SimDev *d, uint32_t pasid) {
        size_t j = 0;

        for (size_t i = 0; i < d->n_partial; i++) {
                bool match = pasid == BACKEND_NO_PASID ?
                                     !(d->partial[i].flags & FAULT_FLAG_PASID_VALID) :
                                     ((d->partial[i].flags & FAULT_FLAG_PASID_VALID) &&
                                      d->partial[i].pasid == pasid);
                if (!match)
                        d->partial[j++] = d->partial[i];
        }
        d->n_partial = j;
}

/* Drops one reference a device attachment held on h; auto domains go with their last user. */
static void hwpt_put_attach(SimContext *c, SimDev *d, uint32_t pasid, SimHwpt *h) {
        if (h->fault)
                fault_auto_respond(c, h->fault, false, d->obj.id,
                                   pasid == BACKEND_NO_PASID ? 0 : pasid);
        dev_drop_partial(d, pasid);
        h->users--;
        if (h->auto_domain && h->users == 0)
                hwpt_free(c, h);
}

/* Enforces the group's reserved regions of d on ioas (RID attach). */
static int dev_reserve(SimContext *c, SimDev *d, SimIoas *ioas, Error *err) {
        SimGroupModel *g = dev_group(c, d);
        int r;

        if (ioas_owner_has_reserved(ioas, d))
                return 0;
        SIM_FOREACH(reg, g->regions, g->n_regions) {
                if (reg->type == REGION_DIRECT_RELAXABLE)
                        continue;
                r = ioas_reserve(ioas, reg->start, reg->last, d, err);
                if (r < 0) {
                        ioas_unreserve(ioas, d);
                        return r;
                }
        }
        return 0;
}

/* Finds or creates the HWPT an attach to pt_id means. */
static int attach_target(SimContext *c, SimDev *d, uint32_t pasid, uint32_t pt_id, SimHwpt **ret,
                         bool *ret_created, Error *err) {
        SimObject *pt = obj_get(c, pt_id);
        size_t iommu = dev_group(c, d)->iommu;
        uint32_t flags = pasid == BACKEND_NO_PASID ? 0 : BACKEND_HWPT_PASID;
        SimIoas *ioas;
        int r;

        if (!pt)
                return error_set(err, -ENOENT, "No object with id %" PRIu32, pt_id);
        if (pt->type == SIM_OBJ_HWPT_PAGING || pt->type == SIM_OBJ_HWPT_NESTED) {
                SimHwpt *h = (SimHwpt *)pt;

                if (h->iommu != iommu)
                        return error_set(err, -EINVAL,
                                         "HWPT %" PRIu32 " belongs to another IOMMU instance",
                                         pt_id);
                *ret = h;
                *ret_created = false;
                return 0;
        }
        if (pt->type != SIM_OBJ_IOAS)
                return error_set(err, -EINVAL, "Object %" PRIu32 " is a %s, not an IOAS or HWPT",
                                 pt_id, obj_type_name(pt->type));
        ioas = (SimIoas *)pt;
        /* Reuse an automatic domain of the same IOMMU instance on this IOAS. */
        for (size_t i = 0; i < ioas->n_domains; i++) {
                SimHwpt *h = ioas->domains[i];

                if (h->auto_domain && h->iommu == iommu && h->flags == flags) {
                        *ret = h;
                        *ret_created = false;
                        return 0;
                }
        }
        r = hwpt_paging_new(c, ioas, iommu, flags, NULL, true, ret, err);
        if (r < 0)
                return r;
        *ret_created = true;
        return 0;
}

static int sim_device_attach(BackendContext *bc, uint32_t dev_id, uint32_t pasid, uint32_t *pt_id,
                             Error *err) {
        SimContext *c = to_ctx(bc);
        SimHwpt *h = NULL, *old;
        SimGroupModel *g;
        SimIoas *ioas;
        SimDev *d;
        bool created = false;
        int r;

        r = obj_lookup(c, dev_id, SIM_OBJ_DEVICE, (void **)&d, err);
        if (r < 0)
                return r;
        if (pasid != BACKEND_NO_PASID) {
                uint8_t w = dev_pasid_width(c, d);

                if (w == 0)
                        return error_set(err, -EINVAL, "Device %s does not support PASID",
                                         dev_model(c, d)->name);
                if (w < 32 && pasid >= (UINT32_C(1) << w))
                        return error_set(err, -EINVAL,
                                         "PASID %" PRIu32 " is beyond the %u bits of device %s",
                                         pasid, w, dev_model(c, d)->name);
        }
        r = attach_target(c, d, pasid, *pt_id, &h, &created, err);
        if (r < 0)
                return r;
        if (pasid != BACKEND_NO_PASID && !(h->flags & BACKEND_HWPT_PASID)) {
                r = error_set(err, -EINVAL, "HWPT %" PRIu32 " was not allocated for PASID use",
                              h->obj.id);
                goto fail;
        }
        old = dev_attached(d, pasid);
        if (old == h) {
                *pt_id = h->obj.id;
                return 0;
        }

        ioas = hwpt_ioas(h);
        g = dev_group(c, d);
        if (pasid == BACKEND_NO_PASID) {
                SimIoas *old_ioas = old ? hwpt_ioas(old) : NULL;

                /* The devices of a group share one HWPT: a first attach must match the
                 * group's; a replace moves the whole group. */
                for (size_t k = 0; k < g->n_devices; k++) {
                        SimDevModel *sm = &c->sim->devices[g->devices[k]];
                        SimDev *sib;

                        if (sm->ctx != c || sm->dev_id == d->obj.id)
                                continue;
                        sib = (SimDev *)obj_get(c, sm->dev_id);
                        if (sib->rid && !old && sib->rid != h) {
                                r = error_set(err, -EINVAL,
                                              "Device %s shares IOMMU group %u with %s, attached "
                                              "to HWPT %" PRIu32,
                                              dev_model(c, d)->name, g->id, sm->name,
                                              sib->rid->obj.id);
                                goto fail;
                        }
                }
                if (ioas) {
                        r = dev_reserve(c, d, ioas, err);
                        if (r < 0)
                                goto fail;
                }
                h->users++;
                d->rid = h;
                if (old) {
                        if (old_ioas && old_ioas != ioas)
                                ioas_unreserve(old_ioas, d);
                        hwpt_put_attach(c, d, BACKEND_NO_PASID, old);
                        /* Replace applies to the group: move the siblings along. */
                        for (size_t k = 0; k < g->n_devices; k++) {
                                SimDevModel *sm = &c->sim->devices[g->devices[k]];
                                SimDev *sib;
                                SimHwpt *sold;

                                if (sm->ctx != c || sm->dev_id == d->obj.id)
                                        continue;
                                sib = (SimDev *)obj_get(c, sm->dev_id);
                                if (!sib->rid || sib->rid == h)
                                        continue;
                                sold = sib->rid;
                                if (ioas && dev_reserve(c, sib, ioas, NULL) < 0)
                                        continue; /* same group: same regions, already reserved */
                                h->users++;
                                sib->rid = h;
                                if (hwpt_ioas(sold) && hwpt_ioas(sold) != ioas)
                                        ioas_unreserve(hwpt_ioas(sold), sib);
                                hwpt_put_attach(c, sib, BACKEND_NO_PASID, sold);
                        }
                }
        } else {
                SimAttach *a = dev_find_pasid(d, pasid);

                if (!a) {
                        SimAttach *v = realloc(d->pasids, (d->n_pasids + 1) * sizeof(SimAttach));

                        if (!v) {
                                r = error_set(err, -ENOMEM, "Out of memory");
                                goto fail;
                        }
                        d->pasids = v;
                        a = &d->pasids[d->n_pasids++];
                        a->pasid = pasid;
                        a->hwpt = NULL;
                }
                h->users++;
                a->hwpt = h;
                if (old)
                        hwpt_put_attach(c, d, pasid, old);
        }
        *pt_id = h->obj.id;
        return 0;
fail:
        if (created)
                hwpt_free(c, h);
        return r;
}

static void dev_detach_rid(SimContext *c, SimDev *d) {
        SimHwpt *h = d->rid;
        SimIoas *ioas;

        if (!h)
                return;
        ioas = hwpt_ioas(h);
        if (ioas)
                ioas_unreserve(ioas, d);
        d->rid = NULL;
        hwpt_put_attach(c, d, BACKEND_NO_PASID, h);
}

static void dev_detach_pasid(SimContext *c, SimDev *d, SimAttach *a) {
        SimHwpt *h = a->hwpt;
        uint32_t pasid = a->pasid;

        *a = d->pasids[--d->n_pasids];
        hwpt_put_attach(c, d, pasid, h);
}

static int sim_device_detach(BackendContext *bc, uint32_t dev_id, uint32_t pasid, Error *err) {
        SimContext *c = to_ctx(bc);
        SimDev *d;
        int r;

        r = obj_lookup(c, dev_id, SIM_OBJ_DEVICE, (void **)&d, err);
        if (r < 0)
                return r;
        if (pasid == BACKEND_NO_PASID)
                dev_detach_rid(c, d);
        else {
                SimAttach *a = dev_find_pasid(d, pasid);

                /* Like the kernel, detaching what is not attached is not an error. */
                if (a)
                        dev_detach_pasid(c, d, a);
        }
        return 0;
}

static void dev_free(SimContext *c, SimDev *d) {
        SimDevModel *m = dev_model(c, d);
        SimGroupModel *g = dev_group(c, d);

        while (d->n_pasids > 0)
                dev_detach_pasid(c, d, &d->pasids[0]);
        dev_detach_rid(c, d);
        m->ctx = NULL;
        m->dev_id = 0;
        if (--g->n_bound == 0)
                g->owner = NULL;
        obj_remove(c, &d->obj);
        free(d->pasids);
        free(d->partial);
        free(d);
}

static int sim_device_unbind(BackendContext *bc, uint32_t dev_id, Error *err) {
        SimContext *c = to_ctx(bc);
        SimDev *d;
        int r;

        r = obj_lookup(c, dev_id, SIM_OBJ_DEVICE, (void **)&d, err);
        if (r < 0)
                return r;
        dev_free(c, d);
        return 0;
}

static int sim_hw_info(BackendContext *bc, uint32_t dev_id, HwInfo *ret, Error *err) {
        SimContext *c = to_ctx(bc);
        SimIommuModel *m;
        SimDev *d;
        int r;

        r = obj_lookup(c, dev_id, SIM_OBJ_DEVICE, (void **)&d, err);
        if (r < 0)
                return r;
        m = dev_iommu(c, d);
        *ret = (HwInfo){
                .type = m->hw_info_type,
                .max_pasid_log2 = dev_pasid_width(c, d),
                .capabilities = m->capabilities |
                                (m->dirty_tracking ? BACKEND_HW_CAP_DIRTY_TRACKING : 0),
        };
        return 0;
}

/* ---- destroy, option, contexts ---- */

static int sim_destroy(BackendContext *bc, uint32_t id, Error *err) {
        SimContext *c = to_ctx(bc);
        SimObject *o = obj_get(c, id);

        if (!o)
                return error_set(err, -ENOENT, "No object with id %" PRIu32, id);
        switch (o->type) {
        case SIM_OBJ_DEVICE:
                return error_set(err, -EBUSY, "Device %" PRIu32 " is bound: unbind it instead", id);
        case SIM_OBJ_IOAS: {
                SimIoas *ioas = (SimIoas *)o;

                if (ioas->users > 0)
                        return error_set(err, -EBUSY, "IOAS %" PRIu32 " is used by %u HWPTs", id,
                                         ioas->users);
                ioas_free(c, ioas);
                return 0;
        }
        case SIM_OBJ_HWPT_PAGING:
        case SIM_OBJ_HWPT_NESTED: {
                SimHwpt *h = (SimHwpt *)o;

                if (h->users > 0)
                        return error_set(err, -EBUSY, "HWPT %" PRIu32 " is in use", id);
                hwpt_free(c, h);
                return 0;
        }
        case SIM_OBJ_FAULT: {
                SimFaultQueue *q = (SimFaultQueue *)o;

                if (q->users > 0)
                        return error_set(err, -EBUSY, "Fault queue %" PRIu32 " is used by %u HWPTs",
                                         id, q->users);
                fault_queue_free(c, q);
                return 0;
        }
        }
        return error_set(err, -ENOENT, "No object with id %" PRIu32, id);
}

static int sim_option(BackendContext *bc, uint32_t option_id, uint16_t op, uint32_t object_id,
                      uint64_t *val64, Error *err) {
        SimContext *c = to_ctx(bc);
        int r;

        if (op != BACKEND_OPTION_OP_SET && op != BACKEND_OPTION_OP_GET)
                return error_set(err, -EOPNOTSUPP, "Unknown option op %u", op);
        switch (option_id) {
        case BACKEND_OPTION_RLIMIT_MODE:
                if (object_id != 0)
                        return error_set(err, -EOPNOTSUPP,
                                         "RLIMIT_MODE is global: object id must be 0, not %" PRIu32,
                                         object_id);
                if (op == BACKEND_OPTION_OP_GET) {
                        *val64 = c->rlimit_per_process;
                        return 0;
                }
                if (c->sim->unprivileged)
                        return error_set(err, -EPERM, "Setting RLIMIT_MODE needs CAP_SYS_RESOURCE");
                if (c->n_live > 0)
                        return error_set(err, -EBUSY,
                                         "RLIMIT_MODE can only change before any object exists");
                if (*val64 > 1)
                        return error_set(err, -EINVAL, "RLIMIT_MODE %" PRIu64 " is not 0 or 1",
                                         *val64);
                c->rlimit_per_process = *val64 == 1;
                return 0;
        case BACKEND_OPTION_HUGE_PAGES: {
                SimIoas *ioas;
                uint64_t a;

                r = obj_lookup(c, object_id, SIM_OBJ_IOAS, (void **)&ioas, err);
                if (r < 0)
                        return r;
                if (op == BACKEND_OPTION_OP_GET) {
                        *val64 = !ioas->disable_large_pages;
                        return 0;
                }
                if (*val64 > 1)
                        return error_set(err, -EINVAL, "HUGE_PAGES %" PRIu64 " is not 0 or 1",
                                         *val64);
                if (*val64 == 1) {
                        ioas->disable_large_pages = false;
                        ioas->alignment = ioas_compute_alignment(c, ioas, NULL, NULL, false);
                        return 0;
                }
                if (ioas->disable_large_pages)
                        return 0;
                if (ioas->n_domains > 0 && ioas->areas.n > 0)
                        return error_set(err, -EINVAL,
                                         "IOAS %" PRIu32 " already has mappings in a domain",
                                         object_id);
                a = ioas_compute_alignment(c, ioas, NULL, NULL, true);
                r = ioas_check_alignment(ioas, a, err);
                if (r < 0)
                        return r;
                ioas->disable_large_pages = true;
                ioas->alignment = a;
                return 0;
        }
        }
        return error_set(err, -EOPNOTSUPP, "Unknown option %" PRIu32, option_id);
}

static int sim_context_new(Backend *b, BackendContext **ret, Error *err) {
        SimContext *c;

        c = calloc(1, sizeof(SimContext));
        if (!c)
                return error_set(err, -ENOMEM, "Out of memory for a context");
        c->base.backend = b;
        c->sim = to_sim(b);
        c->free_hint = 1;
        c->sim->stats.contexts++;
        *ret = &c->base;
        return 0;
}

static void sim_context_free(BackendContext *bc) {
        SimContext *c = to_ctx(bc);

        if (!c)
                return;
        /* Devices first (detaches, auto domains, faults), then nested, paging, IOAS, queues. */
        for (SimObjType t = SIM_OBJ_DEVICE;; t = t == SIM_OBJ_DEVICE ? SIM_OBJ_HWPT_NESTED :
                                                t == SIM_OBJ_HWPT_NESTED ? SIM_OBJ_HWPT_PAGING :
                                                t == SIM_OBJ_HWPT_PAGING ? SIM_OBJ_IOAS :
                                                                           SIM_OBJ_FAULT) {
                for (size_t id = 1; id < c->n_objs; id++) {
                        SimObject *o = c->objs[id];

                        if (!o || o->type != t)
                                continue;
                        switch (t) {
                        case SIM_OBJ_DEVICE: dev_free(c, (SimDev *)o); break;
                        case SIM_OBJ_HWPT_NESTED:
                        case SIM_OBJ_HWPT_PAGING: hwpt_free(c, (SimHwpt *)o); break;
                        case SIM_OBJ_IOAS: ioas_free(c, (SimIoas *)o); break;
                        case SIM_OBJ_FAULT: fault_queue_free(c, (SimFaultQueue *)o); break;
                        }
                }
                if (t == SIM_OBJ_FAULT)
                        break;
        }
        free(c->objs);
        c->sim->stats.contexts--;
        free(c);
}

static int sim_context_fd(BackendContext *c) {
        return -EOPNOTSUPP;
}

/* ---- fault injection ---- */

int backend_sim_inject_fault(Backend *b, const char *device_name, uint32_t pasid, uint64_t addr,
                             uint32_t perm, bool last_page, uint32_t grpid, Error *err) {
        SimBackend *s = to_sim(b);
        FaultRecord rec, *v;
        SimFaultQueue *q;
        SimFaultGroup *g;
        SimDevModel *m;
        SimContext *c;
        SimHwpt *h;
        SimDev *d;
        size_t i, n = 0, j = 0;

        if (!backend_is_sim(b))
                return error_set(err, -EOPNOTSUPP, "Backend %s cannot inject faults", b->ops->name);
        if (sim_find_device(s, device_name, &i) < 0)
                return error_set(err, -ENODEV, "No device %s", device_name);
        m = &s->devices[i];
        if (!m->ctx)
                return error_set(err, -ENOENT, "Device %s is not bound", device_name);
        c = m->ctx;
        d = (SimDev *)obj_get(c, m->dev_id);
        h = dev_attached(d, pasid);
        if (!h || !h->fault)
                return error_set(err, -ENOENT,
                                 "Nothing with a fault queue is attached to %s at PASID %" PRIu32,
                                 device_name, pasid);
        q = h->fault;

        rec = (FaultRecord){
                .flags = (pasid != BACKEND_NO_PASID ? FAULT_FLAG_PASID_VALID : 0) |
                         (last_page ? FAULT_FLAG_LAST_PAGE : 0),
                .dev_id = d->obj.id,
                .pasid = pasid != BACKEND_NO_PASID ? pasid : 0,
                .grpid = grpid,
                .perm = perm,
                .addr = addr,
        };
        v = realloc(d->partial, (d->n_partial + 1) * sizeof(FaultRecord));
        if (!v)
                return error_set(err, -ENOMEM, "Out of memory");
        d->partial = v;
        d->partial[d->n_partial++] = rec;
        s->stats.faults_injected++;
        if (!last_page)
                return 0;

        /* The last page completes the group: everything pending with its PASID and group id. */
        for (size_t k = 0; k < d->n_partial; k++)
                if (d->partial[k].grpid == grpid && d->partial[k].pasid == rec.pasid &&
                    (d->partial[k].flags & FAULT_FLAG_PASID_VALID) ==
                            (rec.flags & FAULT_FLAG_PASID_VALID))
                        n++;
        g = calloc(1, sizeof(SimFaultGroup));
        if (!g)
                return error_set(err, -ENOMEM, "Out of memory");
        g->records = calloc(n, sizeof(FaultRecord));
        if (!g->records) {
                free(g);
                return error_set(err, -ENOMEM, "Out of memory");
        }
        for (size_t k = 0; k < d->n_partial; k++) {
                if (d->partial[k].grpid == grpid && d->partial[k].pasid == rec.pasid &&
                    (d->partial[k].flags & FAULT_FLAG_PASID_VALID) ==
                            (rec.flags & FAULT_FLAG_PASID_VALID))
                        g->records[g->n++] = d->partial[k];
                else
                        d->partial[j++] = d->partial[k];
        }
        d->n_partial = j;
        g->dev_id = d->obj.id;
        g->pasid = rec.pasid;
        *q->queued_tail = g;
        q->queued_tail = &g->next;
        fault_update_event(q);
        return 0;
}

void backend_sim_get_stats(const Backend *b, BackendSimStats *ret) {
        *ret = ((const SimBackend *)b)->stats;
}

uint64_t backend_sim_context_mapped_bytes(const BackendContext *c) {
        return ((const SimContext *)c)->mapped_bytes;
}

int backend_sim_ioas_n_areas(const BackendContext *bc, uint32_t ioas_id, size_t *ret) {
        SimContext *c = (SimContext *)bc;
        SimIoas *ioas;
        int r;

        r = obj_lookup(c, ioas_id, SIM_OBJ_IOAS, (void **)&ioas, NULL);
        if (r < 0)
                return r;
        *ret = ioas->areas.n;
        return 0;
}

int backend_sim_ioas_lookup(const BackendContext *bc, uint32_t ioas_id, uint64_t iova,
                            IovaRange *ret) {
        SimContext *c = (SimContext *)bc;
        SimIoas *ioas;
        IovaNode *n;
        int r;

        r = obj_lookup(c, ioas_id, SIM_OBJ_IOAS, (void **)&ioas, NULL);
        if (r < 0)
                return r;
        n = iova_tree_find(&ioas->areas, iova);
        if (!n)
                return -ENOENT;
        *ret = (IovaRange){ n->start, n->last };
        return 0;
}

void backend_sim_set_privileged(Backend *b, bool privileged) {
        to_sim(b)->unprivileged = !privileged;
}

bool backend_is_sim(const Backend *b) {
        return b && b->ops == &sim_ops;
}

/* ---- the backend ---- */

static void sim_free(Backend *b) {
        SimBackend *s = to_sim(b);

        if (!s)
                return;
        for (size_t i = 0; i < s->n_iommus; i++)
                free(s->iommus[i].name);
        for (size_t i = 0; i < s->n_groups; i++) {
                free(s->groups[i].regions);
                free(s->groups[i].devices);
        }
        for (size_t i = 0; i < s->n_devices; i++) {
                SimDevModel *m = &s->devices[i];

                free(m->name);
                free(m->driver);
                for (size_t k = 0; k < m->n_nodes; k++)
                        safe_close(m->node_fds[k]);
                free(m->node_fds);
                free(m->nodes);
        }
        free(s->iommus);
        free(s->groups);
        free(s->devices);
        free(s->root);
        free(s);
}

static void sim_free_s(SimBackend *s) {
        sim_free(&s->base);
}
DEFINE_TRIVIAL_CLEANUP_FUNC(SimBackend *, sim_free_s);

static int sim_copy_topology(SimBackend *s, const SimTopology *t, Error *err) {
        if (t->n_iommus > 0 && !(s->iommus = calloc(t->n_iommus, sizeof(SimIommuModel))))
                return error_set(err, -ENOMEM, "Out of memory");
        s->n_iommus = t->n_iommus;
        for (size_t i = 0; i < t->n_iommus; i++) {
                const SimIommu *si = &t->iommus[i];
                SimIommuModel *m = &s->iommus[i];

                *m = (SimIommuModel){
                        .name = strdup(si->name ?: "iommu"),
                        .hw_info_type = si->hw_info_type,
                        .aperture_start = si->aperture_start,
                        .aperture_last = si->aperture_last,
                        .page_sizes = si->page_sizes ?: BACKEND_SIM_PAGE_SIZE,
                        .pasid_bits = si->pasid_bits,
                        .capabilities = si->capabilities,
                        .nesting = si->nesting,
                        .dirty_tracking = si->dirty_tracking,
                        .fault_queue = si->fault_queue,
                };
                if (!m->name)
                        return error_set(err, -ENOMEM, "Out of memory");
                if (m->aperture_start > m->aperture_last)
                        return error_set(err, -EINVAL, "IOMMU %s: aperture start 0x%" PRIx64
                                         " is above its last 0x%" PRIx64,
                                         m->name, m->aperture_start, m->aperture_last);
        }

        if (t->n_groups > 0 && !(s->groups = calloc(t->n_groups, sizeof(SimGroupModel))))
                return error_set(err, -ENOMEM, "Out of memory");
        s->n_groups = t->n_groups;
        for (size_t i = 0; i < t->n_groups; i++) {
                const SimGroup *sg = &t->groups[i];
                SimGroupModel *g = &s->groups[i];

                g->id = sg->id;
                g->iommu = sg->iommu_index;
                if (g->iommu >= s->n_iommus)
                        return error_set(err, -EINVAL, "Group %u refers to IOMMU %zu of %zu",
                                         g->id, g->iommu, s->n_iommus);
                if (sg->n_regions > 0) {
                        g->regions = calloc(sg->n_regions, sizeof(ReservedRegion));
                        if (!g->regions)
                                return error_set(err, -ENOMEM, "Out of memory");
                        for (size_t k = 0; k < sg->n_regions; k++) {
                                g->regions[k] = sg->regions[k];
                                g->regions[k].type_name = NULL;
                        }
                        g->n_regions = sg->n_regions;
                }
                if (sg->n_devices > 0) {
                        g->devices = calloc(sg->n_devices, sizeof(size_t));
                        if (!g->devices)
                                return error_set(err, -ENOMEM, "Out of memory");
                        memcpy(g->devices, sg->device_indexes, sg->n_devices * sizeof(size_t));
                        g->n_devices = sg->n_devices;
                }
        }

        if (t->n_devices > 0 && !(s->devices = calloc(t->n_devices, sizeof(SimDevModel))))
                return error_set(err, -ENOMEM, "Out of memory");
        s->n_devices = t->n_devices;
        for (size_t i = 0; i < t->n_devices; i++) {
                const SimDevice *sd = &t->devices[i];
                SimDevModel *m = &s->devices[i];

                m->name = strdup(sd->name);
                m->driver = sd->driver ? strdup(sd->driver) : NULL;
                if (!m->name || (sd->driver && !m->driver))
                        return error_set(err, -ENOMEM, "Out of memory");
                m->class = sd->class;
                m->cdev = sd->cdev;
                m->cdev_minor = sd->cdev_minor;
                m->pasid_bits = sd->pasid_bits;
                m->group = sd->group_index;
                if (m->group >= s->n_groups)
                        return error_set(err, -EINVAL, "Device %s refers to group %zu of %zu",
                                         m->name, m->group, s->n_groups);
        }
        return 0;
}

int backend_sim_new(Backend **ret, const SimTopology *topo, const char *root, Error *err) {
        _cleanup_(sim_free_sp) SimBackend *s = NULL;
        int r;

        s = calloc(1, sizeof(SimBackend));
        if (!s)
                return error_set(err, -ENOMEM, "Out of memory for the simulated backend");
        s->base.ops = &sim_ops;
        s->base.features = BACKEND_FEATURE_IOAS | BACKEND_FEATURE_OPTION |
                           BACKEND_FEATURE_VFIO_CDEV | BACKEND_FEATURE_HWPT_ALLOC |
                           BACKEND_FEATURE_HW_INFO | BACKEND_FEATURE_DIRTY_TRACKING |
                           BACKEND_FEATURE_FAULT_QUEUE | BACKEND_FEATURE_MAP_FILE |
                           BACKEND_FEATURE_PASID | BACKEND_FEATURE_NESTING;
        if (root) {
                s->root = strdup(root);
                if (!s->root)
                        return error_set(err, -ENOMEM, "Out of memory");
        }
        if (topo) {
                r = sim_copy_topology(s, topo, err);
                if (r < 0)
                        return r;
        }
        *ret = &TAKE_PTR(s)->base;
        return 0;
}

static const BackendOps sim_ops = {
        .name = "sim",
        .free = sim_free,
        .device_fd_identify = sim_device_fd_identify,
        .device_open = sim_device_open,
        .context_new = sim_context_new,
        .context_free = sim_context_free,
        .context_fd = sim_context_fd,
        .option = sim_option,
        .ioas_alloc = sim_ioas_alloc,
        .destroy = sim_destroy,
        .ioas_map_file = sim_ioas_map_file,
        .ioas_map_va = sim_ioas_map_va,
        .ioas_unmap = sim_ioas_unmap,
        .ioas_copy = sim_ioas_copy,
        .ioas_iova_ranges = sim_ioas_iova_ranges,
        .ioas_allow_iovas = sim_ioas_allow_iovas,
        .device_bind = sim_device_bind,
        .device_unbind = sim_device_unbind,
        .device_attach = sim_device_attach,
        .device_detach = sim_device_detach,
        .hw_info = sim_hw_info,
        .hwpt_alloc = sim_hwpt_alloc,
        .fault_queue_alloc = sim_fault_queue_alloc,
        .fault_read = sim_fault_read,
        .fault_respond = sim_fault_respond,
};

/* ---- lifecycle hooks ---- */

int backend_sim_set_device(Backend *b, const char *name, const char *driver, bool cdev,
                           Error *err) {
        SimBackend *s = to_sim(b);
        char *d = NULL;
        size_t i;

        if (sim_find_device(s, name, &i) < 0)
                return error_set(err, -ENODEV, "No simulated device %s", name);
        if (driver) {
                d = strdup(driver);
                if (!d)
                        return error_set(err, -ENOMEM, "Out of memory");
        }
        free(s->devices[i].driver);
        s->devices[i].driver = d;
        s->devices[i].cdev = cdev;
        return 0;
}

void backend_sim_context_set_next_id(BackendContext *bc, uint32_t id) {
        /* obj_add() takes the first free slot from the hint on, so a free id is used exactly. */
        to_ctx(bc)->free_hint = id;
}
