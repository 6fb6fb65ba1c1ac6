/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <fcntl.h>
#include <string.h>
#include <sys/eventfd.h>

#include "fake-backend.h"
#include "macros.h"

#define MAX_OBJ 64
#define MAX_AREAS 64
#define MAX_FAULTS 16

typedef enum ObjKind {
        OBJ_NONE,
        OBJ_IOAS,
        OBJ_HWPT,
        OBJ_DEVICE,
        OBJ_FAULT,
} ObjKind;

typedef struct Area {
        uint64_t iova, last;
} Area;

typedef struct Obj {
        ObjKind kind;
        /* IOAS */
        Area areas[MAX_AREAS];
        size_t n_areas;
        size_t n_allowed;
        /* HWPT: the IOAS under it; DEVICE: attached page table (0: none) */
        uint32_t ioas;
        uint32_t attached;
        /* FAULT */
        int fd;
        FaultRecord pending[MAX_FAULTS];
        size_t n_pending;
        uint32_t outstanding[MAX_FAULTS];
        size_t n_outstanding;
} Obj;

typedef struct FakeContext {
        BackendContext base;
        Obj obj[MAX_OBJ]; /* id = index, 0 unused */
        uint64_t rlimit_mode;
        uint32_t next_cookie;
} FakeContext;

static Obj *get(FakeContext *c, uint32_t id, ObjKind kind) {
        if (id == 0 || id >= MAX_OBJ || c->obj[id].kind == OBJ_NONE)
                return NULL;
        if (kind != OBJ_NONE && c->obj[id].kind != kind)
                return NULL;
        return &c->obj[id];
}

static int new_obj(FakeContext *c, ObjKind kind, uint32_t *ret) {
        for (uint32_t i = 1; i < MAX_OBJ; i++)
                if (c->obj[i].kind == OBJ_NONE) {
                        c->obj[i] = (Obj){ .kind = kind, .fd = -EBADF };
                        *ret = i;
                        return 0;
                }
        return -ENOMEM;
}

/* The IOAS a page table id resolves to (itself, or a HWPT's IOAS). */
static Obj *ioas_of(FakeContext *c, uint32_t pt_id) {
        Obj *o = get(c, pt_id, OBJ_NONE);
        if (!o)
                return NULL;
        if (o->kind == OBJ_IOAS)
                return o;
        if (o->kind == OBJ_HWPT)
                return get(c, o->ioas, OBJ_IOAS);
        return NULL;
}

static bool overlaps(uint64_t a, uint64_t al, uint64_t b, uint64_t bl) {
        return a <= bl && b <= al;
}

static void fake_free(Backend *b) {
        free(b);
}

static int fake_context_new(Backend *b, BackendContext **ret, Error *err) {
        FakeContext *c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        c->base.backend = b;
        c->next_cookie = 1;
        *ret = &c->base;
        return 0;
}

static void fake_context_free(BackendContext *bc) {
        FakeContext *c = (FakeContext *)bc;
        for (size_t i = 0; i < MAX_OBJ; i++)
                if (c->obj[i].kind == OBJ_FAULT)
                        safe_close(c->obj[i].fd);
        free(c);
}

static int fake_context_fd(BackendContext *bc) {
        return -EOPNOTSUPP;
}

static int fake_option(BackendContext *bc, uint32_t option_id, uint16_t op, uint32_t object_id,
                       uint64_t *val64, Error *err) {
        FakeContext *c = (FakeContext *)bc;

        if (op > BACKEND_OPTION_OP_GET)
                return -EOPNOTSUPP;
        switch (option_id) {
        case BACKEND_OPTION_RLIMIT_MODE:
                if (object_id != 0)
                        return -EINVAL;
                if (op == BACKEND_OPTION_OP_GET) {
                        *val64 = c->rlimit_mode;
                        return 0;
                }
                if (*val64 > 1)
                        return -EINVAL;
                c->rlimit_mode = *val64;
                return 0;
        case BACKEND_OPTION_HUGE_PAGES:
                if (!get(c, object_id, OBJ_IOAS))
                        return -ENOENT;
                if (op == BACKEND_OPTION_OP_GET)
                        *val64 = 1;
                return 0;
        default:
                return -EOPNOTSUPP;
        }
}

static int fake_ioas_alloc(BackendContext *bc, uint32_t *ret_id, Error *err) {
        return new_obj((FakeContext *)bc, OBJ_IOAS, ret_id);
}

static int fake_destroy(BackendContext *bc, uint32_t id, Error *err) {
        FakeContext *c = (FakeContext *)bc;
        Obj *o = get(c, id, OBJ_NONE);

        if (!o || o->kind == OBJ_DEVICE)
                return -ENOENT;
        for (size_t i = 1; i < MAX_OBJ; i++) {
                if (c->obj[i].kind == OBJ_DEVICE && c->obj[i].attached == id)
                        return -EBUSY;
                if (c->obj[i].kind == OBJ_HWPT && c->obj[i].ioas == id)
                        return -EBUSY;
        }
        safe_close(o->fd);
        *o = (Obj){ .kind = OBJ_NONE, .fd = -EBADF };
        return 0;
}

static bool ioas_has_device(FakeContext *c, uint32_t ioas_id) {
        for (size_t i = 1; i < MAX_OBJ; i++)
                if (c->obj[i].kind == OBJ_DEVICE && c->obj[i].attached &&
                    ioas_of(c, c->obj[i].attached) == &c->obj[ioas_id])
                        return true;
        return false;
}

static int add_area(FakeContext *c, uint32_t ioas_id, uint32_t flags, uint64_t length,
                    uint64_t *iova) {
        Obj *o = get(c, ioas_id, OBJ_IOAS);
        uint64_t start, last;

        if (!o)
                return -ENOENT;
        if (!(flags & (BACKEND_MAP_READABLE | BACKEND_MAP_WRITEABLE)) || length == 0)
                return -EINVAL;
        if (o->n_areas >= MAX_AREAS)
                return -ENOMEM;
        if (flags & BACKEND_MAP_FIXED_IOVA) {
                start = *iova;
                if (ADD_OVERFLOW(start, length - 1, &last))
                        return -EOVERFLOW;
                if (ioas_has_device(c, ioas_id) &&
                    overlaps(start, last, FAKE_RESERVED_START, FAKE_RESERVED_LAST))
                        return -EINVAL;
                FOREACH_ARRAY(a, o->areas, o->n_areas)
                        if (overlaps(start, last, a->iova, a->last))
                                return -EEXIST;
        } else {
                /* Lowest page-aligned hole above the first page. */
                start = FAKE_PAGE_SIZE;
                for (bool moved = true; moved;) {
                        moved = false;
                        if (ADD_OVERFLOW(start, length - 1, &last))
                                return -ENOSPC;
                        FOREACH_ARRAY(a, o->areas, o->n_areas)
                                if (overlaps(start, last, a->iova, a->last)) {
                                        start = (a->last + FAKE_PAGE_SIZE) & ~(FAKE_PAGE_SIZE - 1);
                                        moved = true;
                                }
                        if (overlaps(start, last, FAKE_RESERVED_START, FAKE_RESERVED_LAST)) {
                                start = FAKE_RESERVED_LAST + 1;
                                moved = true;
                        }
                }
        }
        o->areas[o->n_areas++] = (Area){ .iova = start, .last = last };
        *iova = start;
        return 0;
}

static int fake_ioas_map_file(BackendContext *bc, uint32_t ioas_id, uint32_t flags, int fd,
                              uint64_t start, uint64_t length, uint64_t *iova, Error *err) {
        if (fd < 0 || fcntl(fd, F_GETFD) < 0)
                return -EBADF;
        return add_area((FakeContext *)bc, ioas_id, flags, length, iova);
}

static int fake_ioas_map_va(BackendContext *bc, uint32_t ioas_id, uint32_t flags,
                            uint64_t user_va, uint64_t length, uint64_t *iova, Error *err) {
        if (user_va == 0)
                return -EFAULT;
        return add_area((FakeContext *)bc, ioas_id, flags, length, iova);
}

static int fake_ioas_unmap(BackendContext *bc, uint32_t ioas_id, uint64_t iova, uint64_t length,
                           uint64_t *ret_unmapped, Error *err) {
        FakeContext *c = (FakeContext *)bc;
        Obj *o = get(c, ioas_id, OBJ_IOAS);
        uint64_t last, total = 0;
        size_t j = 0;
        bool cut = false;

        if (!o)
                return -ENOENT;
        if (length == 0)
                return -EINVAL;
        if (ADD_OVERFLOW(iova, length - 1, &last))
                last = UINT64_MAX;
        /* Ascending order, not atomic: areas before a cut one are gone. */
        for (size_t i = 0; i < o->n_areas; i++) {
                Area *a = &o->areas[i];
                if (!cut && a->iova >= iova && a->last <= last) {
                        total += a->last - a->iova + 1;
                        continue;
                }
                if (overlaps(a->iova, a->last, iova, last))
                        cut = true;
                o->areas[j++] = *a;
        }
        o->n_areas = j;
        if (cut || (total == 0 && !(iova == 0 && last == UINT64_MAX)))
                return -ENOENT;
        if (ret_unmapped)
                *ret_unmapped = total;
        return 0;
}

static int fake_ioas_copy(BackendContext *bc, uint32_t dst_ioas_id, uint32_t src_ioas_id,
                          uint32_t flags, uint64_t src_iova, uint64_t length, uint64_t *dst_iova,
                          Error *err) {
        FakeContext *c = (FakeContext *)bc;
        Obj *src = get(c, src_ioas_id, OBJ_IOAS);
        bool inside = false;

        if (!src || !get(c, dst_ioas_id, OBJ_IOAS) || length == 0)
                return -ENOENT;
        FOREACH_ARRAY(a, src->areas, src->n_areas)
                if (a->iova <= src_iova && src_iova + (length - 1) <= a->last)
                        inside = true;
        if (!inside)
                return -ENOENT;
        return add_area(c, dst_ioas_id, flags, length, dst_iova);
}

static int fake_ioas_iova_ranges(BackendContext *bc, uint32_t ioas_id, IovaRange *ranges,
                                 size_t *n_ranges, uint64_t *ret_alignment, Error *err) {
        FakeContext *c = (FakeContext *)bc;

        if (!get(c, ioas_id, OBJ_IOAS))
                return -ENOENT;
        if (*n_ranges < 2) {
                *n_ranges = 2;
                return -EMSGSIZE;
        }
        ranges[0] = (IovaRange){ 0, FAKE_RESERVED_START - 1 };
        ranges[1] = (IovaRange){ FAKE_RESERVED_LAST + 1, UINT64_MAX };
        *n_ranges = 2;
        if (ret_alignment)
                *ret_alignment = FAKE_PAGE_SIZE;
        return 0;
}

static int fake_ioas_allow_iovas(BackendContext *bc, uint32_t ioas_id, const IovaRange *ranges,
                                 size_t n, Error *err) {
        FakeContext *c = (FakeContext *)bc;
        Obj *o = get(c, ioas_id, OBJ_IOAS);

        if (!o)
                return -ENOENT;
        for (size_t i = 0; i < n; i++) {
                if (ranges[i].start >= ranges[i].last)
                        return -EINVAL;
                if (overlaps(ranges[i].start, ranges[i].last, FAKE_RESERVED_START,
                             FAKE_RESERVED_LAST))
                        return -EADDRINUSE;
        }
        o->n_allowed = n;
        return 0;
}

static int fake_device_bind(BackendContext *bc, int device_fd, uint32_t *ret_dev_id, Error *err) {
        if (fcntl(device_fd, F_GETFD) < 0)
                return -EBADF;
        return new_obj((FakeContext *)bc, OBJ_DEVICE, ret_dev_id);
}

static int fake_device_unbind(BackendContext *bc, uint32_t dev_id, Error *err) {
        FakeContext *c = (FakeContext *)bc;
        Obj *o = get(c, dev_id, OBJ_DEVICE);

        if (!o)
                return -ENOENT;
        *o = (Obj){ .kind = OBJ_NONE, .fd = -EBADF };
        return 0;
}

static int fake_device_attach(BackendContext *bc, uint32_t dev_id, uint32_t pasid, uint32_t *pt_id,
                              Error *err) {
        FakeContext *c = (FakeContext *)bc;
        Obj *d = get(c, dev_id, OBJ_DEVICE), *ioas = ioas_of(c, *pt_id);
        uint32_t hwpt;
        int r;

        if (!d)
                return -EINVAL;
        if (!ioas)
                return -ENOENT;
        if (pasid != BACKEND_NO_PASID && pasid >= (1u << 20))
                return -EINVAL;
        FOREACH_ARRAY(a, ioas->areas, ioas->n_areas)
                if (overlaps(a->iova, a->last, FAKE_RESERVED_START, FAKE_RESERVED_LAST))
                        return -EADDRINUSE;
        hwpt = *pt_id;
        if (c->obj[*pt_id].kind == OBJ_IOAS) {
                r = new_obj(c, OBJ_HWPT, &hwpt);
                if (r < 0)
                        return r;
                c->obj[hwpt].ioas = *pt_id;
        }
        if (pasid == BACKEND_NO_PASID)
                d->attached = hwpt;
        *pt_id = hwpt;
        return 0;
}

static int fake_device_detach(BackendContext *bc, uint32_t dev_id, uint32_t pasid, Error *err) {
        FakeContext *c = (FakeContext *)bc;
        Obj *d = get(c, dev_id, OBJ_DEVICE);

        if (!d)
                return -EINVAL;
        if (pasid != BACKEND_NO_PASID)
                return 0; /* PASID attachments are not tracked */
        if (!d->attached)
                return -EINVAL;
        d->attached = 0;
        return 0;
}

static int fake_hw_info(BackendContext *bc, uint32_t dev_id, HwInfo *ret, Error *err) {
        if (!get((FakeContext *)bc, dev_id, OBJ_DEVICE))
                return -ENOENT;
        *ret = (HwInfo){ .type = 1, .max_pasid_log2 = 20,
                         .capabilities = BACKEND_HW_CAP_PCI_PASID_EXEC };
        return 0;
}

static int fake_hwpt_alloc(BackendContext *bc, const HwptAllocArgs *args, uint32_t *ret_id,
                           Error *err) {
        FakeContext *c = (FakeContext *)bc;
        uint32_t id;
        int r;

        if (!get(c, args->dev_id, OBJ_DEVICE) || !get(c, args->pt_id, OBJ_IOAS))
                return -ENOENT;
        if (args->data_type != BACKEND_HWPT_DATA_NONE)
                return -EOPNOTSUPP;
        if ((args->flags & BACKEND_HWPT_FAULT_ID_VALID) && !get(c, args->fault_id, OBJ_FAULT))
                return -ENOENT;
        r = new_obj(c, OBJ_HWPT, &id);
        if (r < 0)
                return r;
        c->obj[id].ioas = args->pt_id;
        *ret_id = id;
        return 0;
}

static int fake_fault_queue_alloc(BackendContext *bc, uint32_t *ret_id, int *ret_fd, Error *err) {
        FakeContext *c = (FakeContext *)bc;
        uint32_t id;
        int r, fd;

        fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (fd < 0)
                return negative_errno();
        r = new_obj(c, OBJ_FAULT, &id);
        if (r < 0) {
                safe_close(fd);
                return r;
        }
        c->obj[id].fd = fd;
        *ret_id = id;
        *ret_fd = fd;
        return 0;
}

static int fake_fault_read(BackendContext *bc, uint32_t fault_id, FaultRecord *buf, size_t n_max,
                           size_t *ret_n, Error *err) {
        FakeContext *c = (FakeContext *)bc;
        Obj *o = get(c, fault_id, OBJ_FAULT);
        size_t n;

        if (!o)
                return -ENOENT;
        n = MIN(n_max, o->n_pending);
        for (size_t i = 0; i < n; i++) {
                buf[i] = o->pending[i];
                o->outstanding[o->n_outstanding++] = o->pending[i].cookie;
        }
        memmove(o->pending, o->pending + n, (o->n_pending - n) * sizeof(*o->pending));
        o->n_pending -= n;
        *ret_n = n;
        return 0;
}

static int fake_fault_respond(BackendContext *bc, uint32_t fault_id, uint32_t cookie,
                              uint32_t code, Error *err) {
        FakeContext *c = (FakeContext *)bc;
        Obj *o = get(c, fault_id, OBJ_FAULT);

        if (!o)
                return -ENOENT;
        if (code > FAULT_RESPONSE_INVALID)
                return -EINVAL;
        for (size_t i = 0; i < o->n_outstanding; i++)
                if (o->outstanding[i] == cookie) {
                        o->outstanding[i] = o->outstanding[--o->n_outstanding];
                        return 0;
                }
        return -EINVAL;
}

static int fake_device_fd_identify(Backend *b, int fd, char **ret_name, Error *err) {
        return -EOPNOTSUPP;
}

static int fake_device_open(Backend *b, const char *name, int *ret_fd, Error *err) {
        return -EOPNOTSUPP;
}

static int fake_device_holders(Backend *b, const char *name, pid_t *pids, size_t n_max,
                               size_t *ret_n, Error *err) {
        return -EOPNOTSUPP;
}

static const BackendOps fake_ops = {
        .name = "fake",
        .free = fake_free,
        .device_fd_identify = fake_device_fd_identify,
        .device_open = fake_device_open,
        .device_holders = fake_device_holders,
        .context_new = fake_context_new,
        .context_free = fake_context_free,
        .context_fd = fake_context_fd,
        .option = fake_option,
        .ioas_alloc = fake_ioas_alloc,
        .destroy = fake_destroy,
        .ioas_map_file = fake_ioas_map_file,
        .ioas_map_va = fake_ioas_map_va,
        .ioas_unmap = fake_ioas_unmap,
        .ioas_copy = fake_ioas_copy,
        .ioas_iova_ranges = fake_ioas_iova_ranges,
        .ioas_allow_iovas = fake_ioas_allow_iovas,
        .device_bind = fake_device_bind,
        .device_unbind = fake_device_unbind,
        .device_attach = fake_device_attach,
        .device_detach = fake_device_detach,
        .hw_info = fake_hw_info,
        .hwpt_alloc = fake_hwpt_alloc,
        .fault_queue_alloc = fake_fault_queue_alloc,
        .fault_read = fake_fault_read,
        .fault_respond = fake_fault_respond,
};

int fake_backend_new(Backend **ret) {
        Backend *b = calloc(1, sizeof(*b));
        if (!b)
                return -ENOMEM;
        b->ops = &fake_ops;
        b->features = (_BACKEND_FEATURE_MAX - 1) & ~BACKEND_FEATURE_DIRTY_ALL_PINNED;
        *ret = b;
        return 0;
}

int fake_backend_inject_fault(BackendContext *bc, uint32_t fault_id, uint32_t dev_id,
                              uint64_t addr, uint32_t *ret_cookie) {
        FakeContext *c = (FakeContext *)bc;
        Obj *o = get(c, fault_id, OBJ_FAULT);

        if (!o)
                return -ENOENT;
        if (o->n_pending >= MAX_FAULTS || o->n_outstanding + o->n_pending >= MAX_FAULTS)
                return -ENOSPC;
        o->pending[o->n_pending++] = (FaultRecord){
                .flags = FAULT_FLAG_LAST_PAGE,
                .dev_id = dev_id,
                .perm = FAULT_PERM_READ,
                .addr = addr,
                .cookie = c->next_cookie,
        };
        *ret_cookie = c->next_cookie++;
        return 0;
}

int fake_backend_n_areas(BackendContext *bc, uint32_t ioas_id) {
        Obj *o = get((FakeContext *)bc, ioas_id, OBJ_IOAS);
        return o ? (int)o->n_areas : -ENOENT;
}
