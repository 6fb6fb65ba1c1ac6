/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend-sim.h"
#include "iommufd-abi.h"
#include "kernel-responder.h"
#include "macros.h"

typedef enum ResponderFdKind {
        FD_IOMMUFD,
        FD_FAULT,
} ResponderFdKind;

typedef struct ResponderFd {
        int fd;
        ResponderFdKind kind;
        BackendContext *ctx;  /* IOMMUFD: owned; FAULT: the context it belongs to */
        uint32_t id;          /* FAULT: fault id */
} ResponderFd;

static ResponderFd *fd_find(KernelResponder *r, int fd) {
        if (!r->fds)
                return NULL;
        FOREACH_ARRAY(f, r->fds, r->n_fds)
                if (f->fd == fd)
                        return f;
        return NULL;
}

static int fd_add(KernelResponder *r, int fd, ResponderFdKind kind, BackendContext *ctx,
                  uint32_t id) {
        ResponderFd *a = reallocarray(r->fds, r->n_fds + 1, sizeof(*a));

        if (!a)
                return -ENOMEM;
        r->fds = a;
        a[r->n_fds++] = (ResponderFd){ .fd = fd, .kind = kind, .ctx = ctx, .id = id };
        return 0;
}

static void fd_remove(KernelResponder *r, ResponderFd *f) {
        size_t i = (size_t)(f - r->fds);
        memmove(r->fds + i, r->fds + i + 1, (r->n_fds - i - 1) * sizeof(*r->fds));
        r->n_fds--;
}

static const BackendOps *inner_ops(KernelResponder *r) {
        return r->inner->ops;
}

/* ---- iommufd ioctls ---- */

typedef int (*IommufdHandler)(KernelResponder *r, BackendContext *ctx, void *cmd);

static bool is_zero(const void *p, size_t n) {
        const uint8_t *b = p;
        for (size_t i = 0; i < n; i++)
                if (b[i])
                        return false;
        return true;
}

#define RSV_CHECK(r, cond)                                                                         \
        do {                                                                                       \
                if (cond) {                                                                        \
                        (r)->n_reserved_set++;                                                     \
                        return -EOPNOTSUPP;                                                        \
                }                                                                                  \
        } while (0)

static int h_destroy(KernelResponder *r, BackendContext *ctx, void *p) {
        struct iommud_destroy *c = p;
        int k = inner_ops(r)->destroy(ctx, c->id, NULL);

        /* A destroyed fault queue's fd stays open (the kernel keeps the file) but is dead. */
        return k;
}

static int h_ioas_alloc(KernelResponder *r, BackendContext *ctx, void *p) {
        struct iommud_ioas_alloc *c = p;
        RSV_CHECK(r, c->flags != 0);
        return inner_ops(r)->ioas_alloc(ctx, &c->out_ioas_id, NULL);
}

static int h_allow_iovas(KernelResponder *r, BackendContext *ctx, void *p) {
        struct iommud_ioas_allow_iovas *c = p;
        RSV_CHECK(r, c->reserved != 0);
        if (c->num_iovas > 0 && c->allowed_iovas == 0)
                return -EFAULT;
        return inner_ops(r)->ioas_allow_iovas(ctx, c->ioas_id,
                                              (const IovaRange *)(uintptr_t)c->allowed_iovas,
                                              c->num_iovas, NULL);
}

static const uint32_t map_flags = IOMMUD_IOMMU_IOAS_MAP_FIXED_IOVA |
                                  IOMMUD_IOMMU_IOAS_MAP_WRITEABLE |
                                  IOMMUD_IOMMU_IOAS_MAP_READABLE;

static int h_copy(KernelResponder *r, BackendContext *ctx, void *p) {
        struct iommud_ioas_copy *c = p;
        uint64_t iova = c->dst_iova;
        int k;

        RSV_CHECK(r, c->flags & ~map_flags);
        k = inner_ops(r)->ioas_copy(ctx, c->dst_ioas_id, c->src_ioas_id, c->flags, c->src_iova,
                                    c->length, &iova, NULL);
        if (k >= 0)
                c->dst_iova = iova;
        return k;
}

static int h_iova_ranges(KernelResponder *r, BackendContext *ctx, void *p) {
        struct iommud_ioas_iova_ranges *c = p;
        size_t n = c->num_iovas;
        uint64_t align = 0;
        int k;

        RSV_CHECK(r, c->reserved != 0);
        if (n > 0 && c->allowed_iovas == 0)
                return -EFAULT;
        k = inner_ops(r)->ioas_iova_ranges(ctx, c->ioas_id,
                                           (IovaRange *)(uintptr_t)c->allowed_iovas, &n, &align,
                                           NULL);
        if (k >= 0 || k == -EMSGSIZE)
                c->num_iovas = (uint32_t)n;
        if (k >= 0)
                c->out_iova_alignment = align;
        return k;
}

static int h_map(KernelResponder *r, BackendContext *ctx, void *p) {
        struct iommud_ioas_map *c = p;
        uint64_t iova = c->iova;
        int k;

        RSV_CHECK(r, (c->flags & ~map_flags) || c->reserved != 0);
        k = inner_ops(r)->ioas_map_va(ctx, c->ioas_id, c->flags, c->user_va, c->length, &iova,
                                      NULL);
        if (k >= 0)
                c->iova = iova;
        return k;
}

static int h_map_file(KernelResponder *r, BackendContext *ctx, void *p) {
        struct iommud_ioas_map_file *c = p;
        uint64_t iova = c->iova;
        int k;

        RSV_CHECK(r, c->flags & ~map_flags);
        if (c->fd < 0 || fcntl(c->fd, F_GETFD) < 0)
                return -EBADF;
        k = inner_ops(r)->ioas_map_file(ctx, c->ioas_id, c->flags, c->fd, c->start, c->length,
                                        &iova, NULL);
        if (k >= 0)
                c->iova = iova;
        return k;
}

static int h_unmap(KernelResponder *r, BackendContext *ctx, void *p) {
        struct iommud_ioas_unmap *c = p;
        uint64_t unmapped = 0;
        int k;

        k = inner_ops(r)->ioas_unmap(ctx, c->ioas_id, c->iova, c->length, &unmapped, NULL);
        if (k >= 0)
                c->length = unmapped;
        return k;
}

static int h_option(KernelResponder *r, BackendContext *ctx, void *p) {
        struct iommud_option *c = p;
        uint64_t v = c->val64;
        int k;

        RSV_CHECK(r, c->reserved != 0);
        k = inner_ops(r)->option(ctx, c->option_id, c->op, c->object_id, &v, NULL);
        if (k >= 0 && c->op == IOMMUD_IOMMU_OPTION_OP_GET)
                c->val64 = v;
        return k;
}

static int h_hwpt_alloc(KernelResponder *r, BackendContext *ctx, void *p) {
        struct iommud_hwpt_alloc *c = p;
        const uint32_t known = IOMMUD_IOMMU_HWPT_ALLOC_NEST_PARENT |
                               IOMMUD_IOMMU_HWPT_ALLOC_DIRTY_TRACKING |
                               IOMMUD_IOMMU_HWPT_FAULT_ID_VALID | IOMMUD_IOMMU_HWPT_ALLOC_PASID;
        HwptAllocArgs a = {
                .flags = c->flags,
                .dev_id = c->dev_id,
                .pt_id = c->pt_id,
                .data_type = c->data_type,
                .data = (const void *)(uintptr_t)c->data_uptr,
                .data_len = c->data_len,
                .fault_id = c->fault_id,
        };

        RSV_CHECK(r, (c->flags & ~known) || c->reserved != 0 || c->reserved2 != 0);
        if (c->data_type == IOMMUD_IOMMU_HWPT_DATA_NONE && (c->data_len || c->data_uptr))
                return -EINVAL;
        return inner_ops(r)->hwpt_alloc(ctx, &a, &c->out_hwpt_id, NULL);
}

static int h_hw_info(KernelResponder *r, BackendContext *ctx, void *p) {
        struct iommud_hw_info *c = p;
        HwInfo info = {};
        int k;

        RSV_CHECK(r, c->flags != 0 || !is_zero(c->reserved, sizeof(c->reserved)));
        k = inner_ops(r)->hw_info(ctx, c->dev_id, &info, NULL);
        if (k < 0)
                return k;
        c->out_data_type = info.type;
        c->out_max_pasid_log2 = info.max_pasid_log2;
        c->out_capabilities = info.capabilities;
        c->data_len = 0; /* no vendor data is modelled */
        return 0;
}

static int h_fault_alloc(KernelResponder *r, BackendContext *ctx, void *p) {
        struct iommud_fault_alloc *c = p;
        int inner_fd = -EBADF, fd, k;
        uint32_t id;

        RSV_CHECK(r, c->flags != 0);
        k = inner_ops(r)->fault_queue_alloc(ctx, &id, &inner_fd, NULL);
        if (k < 0)
                return k;
        /* The caller owns the fd it gets, as with the kernel: hand out a dup. */
        fd = fcntl(inner_fd, F_DUPFD_CLOEXEC, 3);
        if (fd < 0)
                return negative_errno();
        k = fd_add(r, fd, FD_FAULT, ctx, id);
        if (k < 0) {
                safe_close(fd);
                return k;
        }
        c->out_fault_id = id;
        c->out_fault_fd = (uint32_t)fd;
        return 0;
}

static int h_set_dirty(KernelResponder *r, BackendContext *ctx, void *p) {
        struct iommud_hwpt_set_dirty_tracking *c = p;

        RSV_CHECK(r, c->flags & ~IOMMUD_IOMMU_HWPT_DIRTY_TRACKING_ENABLE);
        if (!inner_ops(r)->hwpt_set_dirty_tracking)
                return -EOPNOTSUPP;
        return inner_ops(r)->hwpt_set_dirty_tracking(
                ctx, c->hwpt_id, c->flags & IOMMUD_IOMMU_HWPT_DIRTY_TRACKING_ENABLE, NULL);
}

static int h_get_dirty(KernelResponder *r, BackendContext *ctx, void *p) {
        struct iommud_hwpt_get_dirty_bitmap *c = p;
        DirtyBitmapArgs a = {
                .hwpt_id = c->hwpt_id,
                .flags = c->flags,
                .iova = c->iova,
                .length = c->length,
                .page_size = c->page_size,
                .data = (uint64_t *)(uintptr_t)c->data,
        };

        RSV_CHECK(r, c->reserved != 0 ||
                             (c->flags & ~IOMMUD_IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR));
        if (!inner_ops(r)->hwpt_get_dirty_bitmap)
                return -EOPNOTSUPP;
        if (!a.data)
                return -EFAULT;
        return inner_ops(r)->hwpt_get_dirty_bitmap(ctx, &a, NULL);
}

static int h_unmodelled(KernelResponder *r, BackendContext *ctx, void *p) {
        return -ENOTTY;
}

static int h_change_process(KernelResponder *r, BackendContext *ctx, void *p) {
        struct iommud_ioas_change_process *c = p;
        RSV_CHECK(r, c->reserved != 0);
        return -EOPNOTSUPP; /* not modelled by the Backend ops */
}

#define OFFSETOFEND(type, field) IOMMUD_ABI_OFFSETOFEND(type, field)

/* Mirrors the kernel's op table: structure size and the end of the last mandatory field. */
static const struct {
        size_t size;
        size_t min_size;
        IommufdHandler handler;
} iommufd_table[] = {
#define OP(cmd, type, last, fn)                                                                    \
        [IOMMUD_IOMMUFD_CMD_##cmd - IOMMUD_IOMMUFD_CMD_BASE] = {                                   \
                sizeof(struct type), OFFSETOFEND(struct type, last), fn }
        OP(DESTROY, iommud_destroy, id, h_destroy),
        OP(IOAS_ALLOC, iommud_ioas_alloc, out_ioas_id, h_ioas_alloc),
        OP(IOAS_ALLOW_IOVAS, iommud_ioas_allow_iovas, allowed_iovas, h_allow_iovas),
        OP(IOAS_COPY, iommud_ioas_copy, src_iova, h_copy),
        OP(IOAS_IOVA_RANGES, iommud_ioas_iova_ranges, out_iova_alignment, h_iova_ranges),
        OP(IOAS_MAP, iommud_ioas_map, iova, h_map),
        OP(IOAS_UNMAP, iommud_ioas_unmap, length, h_unmap),
        OP(OPTION, iommud_option, val64, h_option),
        OP(VFIO_IOAS, iommud_vfio_ioas, reserved, h_unmodelled),
        OP(HWPT_ALLOC, iommud_hwpt_alloc, reserved, h_hwpt_alloc),
        OP(GET_HW_INFO, iommud_hw_info, reserved, h_hw_info),
        OP(HWPT_SET_DIRTY_TRACKING, iommud_hwpt_set_dirty_tracking, reserved, h_set_dirty),
        OP(HWPT_GET_DIRTY_BITMAP, iommud_hwpt_get_dirty_bitmap, data, h_get_dirty),
        OP(HWPT_INVALIDATE, iommud_hwpt_invalidate, reserved, h_unmodelled),
        OP(FAULT_QUEUE_ALLOC, iommud_fault_alloc, out_fault_fd, h_fault_alloc),
        OP(IOAS_MAP_FILE, iommud_ioas_map_file, iova, h_map_file),
        OP(VIOMMU_ALLOC, iommud_viommu_alloc, out_viommu_id, h_unmodelled),
        OP(VDEVICE_ALLOC, iommud_vdevice_alloc, virt_id, h_unmodelled),
        OP(IOAS_CHANGE_PROCESS, iommud_ioas_change_process, reserved, h_change_process),
#undef OP
};

/*
 * The ioctls the Backend ops cannot express (invalidation,
 * vIOMMU, VFIO compat) still decode their argument, so size rules apply to
 * them, and then answer EOPNOTSUPP, as a kernel whose IOMMU lacks the
 * capability would.
 */
static bool answers_eopnotsupp(IommufdHandler h) {
        return h == h_unmodelled;
}

static int iommufd_ioctl(KernelResponder *r, ResponderFd *f, unsigned nr, void *arg) {
        uint8_t buf[64] = {};
        size_t idx = nr - IOMMUD_IOMMUFD_CMD_BASE;
        uint32_t user_size;
        int k;

        if (nr < IOMMUD_IOMMUFD_CMD_BASE || idx >= ELEMENTSOF(iommufd_table) ||
            !iommufd_table[idx].handler || (r->disabled_cmds & (UINT64_C(1) << idx)))
                return -ENOTTY;
        if (!arg)
                return -EFAULT;
        memcpy(&user_size, arg, sizeof(user_size));
        r->last_size = user_size;
        if (user_size != iommufd_table[idx].size)
                r->n_size_not_sizeof++;

        /* copy_struct_from_user(): short => EINVAL, long => trailing bytes must be zero. */
        if (user_size < iommufd_table[idx].min_size)
                return -EINVAL;
        if (user_size > iommufd_table[idx].size &&
            !is_zero((uint8_t *)arg + iommufd_table[idx].size,
                     user_size - iommufd_table[idx].size))
                return -E2BIG;
        _Static_assert(sizeof(buf) >= sizeof(struct iommud_hwpt_alloc), "buffer fits all");
        memcpy(buf, arg, MIN((size_t)user_size, iommufd_table[idx].size));

        if (answers_eopnotsupp(iommufd_table[idx].handler))
                return -EOPNOTSUPP;
        k = iommufd_table[idx].handler(r, f->ctx, buf);
        /* iommufd_ucmd_respond(): copy out at most what the caller gave room for. */
        if (k >= 0 || k == -EMSGSIZE)
                memcpy(arg, buf, MIN((size_t)user_size, iommufd_table[idx].size));
        return k;
}

/* ---- VFIO cdev ioctls ---- */

/* ---- bound files ---- */

/*
 * The kernel binds a cdev per open file description: every dup of the fd shares the binding,
 * and it ends with the file's last close.  The responder marks the file it bound with an OFD
 * lock (the simulated backend marks its own the same way; a lock set again by the same open
 * file is the same lock) and finds the binding of any fd by its inode and that lock.
 */
typedef struct ResponderBinding {
        dev_t dev;
        ino_t ino;
        int anchor;           /* another open file of the node: asks whether the lock lives */
        BackendContext *ctx;
        uint32_t id;
} ResponderBinding;

static int lock_against(int fd) {
        struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 1 };

        return fcntl(fd, F_OFD_GETLK, &fl) < 0 ? F_UNLCK : fl.l_type;
}

static ResponderBinding *binding_of_inode(KernelResponder *r, int fd) {
        struct stat st;

        if (fstat(fd, &st) < 0)
                return NULL;
        for (size_t i = 0; i < r->n_bindings; i++)
                if (r->bindings[i].dev == st.st_dev && r->bindings[i].ino == st.st_ino)
                        return &r->bindings[i];
        return NULL;
}

/* The binding fd's open file holds: its inode is bound and no other open file has the lock. */
static ResponderBinding *binding_of(KernelResponder *r, int fd) {
        ResponderBinding *b = binding_of_inode(r, fd);

        if (!b || lock_against(b->anchor) == F_UNLCK || lock_against(fd) != F_UNLCK)
                return NULL;
        return b;
}

static void binding_remove(KernelResponder *r, ResponderBinding *b) {
        safe_close(b->anchor);
        *b = r->bindings[--r->n_bindings];
}

/*
 * The last close of a bound file unbinds it: what the kernel does at once, done here lazily.
 * The simulated backend sees the same (its own lock is on the same file) and ends its bindings
 * itself, perhaps a closed context with them: a binding whose file is gone is not touched.
 */
static void bindings_reap(KernelResponder *r) {
        for (size_t i = 0; i < r->n_bindings;) {
                ResponderBinding *b = &r->bindings[i];

                if (lock_against(b->anchor) != F_UNLCK) {
                        i++;
                        continue;
                }
                if (!backend_is_sim(r->inner))
                        (void)inner_ops(r)->device_unbind(b->ctx, b->id, NULL);
                binding_remove(r, b);
        }
        if (backend_is_sim(r->inner))
                backend_sim_reap(r->inner);
}

static int binding_add(KernelResponder *r, int fd, BackendContext *ctx, uint32_t id) {
        struct flock lk = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 1 };
        char path[64];
        ResponderBinding *v;
        struct stat st;
        int anchor;

        if ((fcntl(fd, F_GETFL) & O_ACCMODE) == O_RDONLY)
                lk.l_type = F_RDLCK;
        if (fstat(fd, &st) < 0 || fcntl(fd, F_OFD_SETLK, &lk) < 0)
                return negative_errno();
        snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
        anchor = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (anchor < 0)
                return negative_errno();
        v = reallocarray(r->bindings, r->n_bindings + 1, sizeof(*v));
        if (!v) {
                safe_close(anchor);
                return -ENOMEM;
        }
        r->bindings = v;
        v[r->n_bindings++] = (ResponderBinding){
                .dev = st.st_dev, .ino = st.st_ino, .anchor = anchor, .ctx = ctx, .id = id,
        };
        return 0;
}

static int vfio_bind(KernelResponder *r, int fd, void *arg) {
        struct iommud_vfio_device_bind_iommufd b = {};
        ResponderFd *ictx;
        uint32_t dev_id;
        int k;

        memcpy(&b, arg, IOMMUD_VFIO_BIND_MINSZ);
        r->last_size = b.argsz;
        if (b.argsz != sizeof(b))
                r->n_size_not_sizeof++;
        if (b.argsz < IOMMUD_VFIO_BIND_MINSZ || b.flags != 0 || b.iommufd < 0)
                return -EINVAL;
        bindings_reap(r);
        /* This open file is bound already, or another one of the same node is. */
        if (binding_of_inode(r, fd))
                return -EINVAL;
        ictx = fd_find(r, b.iommufd);
        if (!ictx || ictx->kind != FD_IOMMUFD)
                return fcntl(b.iommufd, F_GETFD) < 0 ? -EBADF : -EBADFD;
        k = inner_ops(r)->device_bind(ictx->ctx, fd, &dev_id, NULL);
        if (k < 0)
                return k;
        k = binding_add(r, fd, ictx->ctx, dev_id);
        if (k < 0) {
                (void)inner_ops(r)->device_unbind(ictx->ctx, dev_id, NULL);
                return k;
        }
        /* The kernel keeps no file of its own: the simulated backend drops its copy. */
        if (backend_is_sim(r->inner))
                (void)backend_sim_device_drop_copy(ictx->ctx, dev_id);
        ((struct iommud_vfio_device_bind_iommufd *)arg)->out_devid = dev_id;
        return 0;
}

static int vfio_attach(KernelResponder *r, ResponderBinding *f, void *arg) {
        struct iommud_vfio_device_attach_iommufd_pt a = {};
        uint32_t pt_id;
        int k;

        memcpy(&a, arg, IOMMUD_VFIO_ATTACH_MINSZ);
        r->last_size = a.argsz;
        if (a.argsz != sizeof(a))
                r->n_size_not_sizeof++;
        if (a.argsz < IOMMUD_VFIO_ATTACH_MINSZ || (a.flags & ~IOMMUD_VFIO_DEVICE_ATTACH_PASID))
                return -EINVAL;
        if (a.flags & IOMMUD_VFIO_DEVICE_ATTACH_PASID) {
                if (a.argsz < sizeof(a))
                        return -EINVAL;
                memcpy(&a, arg, sizeof(a));
        }
        if (!f)
                return -EINVAL; /* not bound */
        pt_id = a.pt_id;
        k = inner_ops(r)->device_attach(
                f->ctx, f->id, (a.flags & IOMMUD_VFIO_DEVICE_ATTACH_PASID) ? a.pasid : BACKEND_NO_PASID,
                &pt_id, NULL);
        if (k < 0)
                return k;
        ((struct iommud_vfio_device_attach_iommufd_pt *)arg)->pt_id = pt_id;
        return 0;
}

static int vfio_detach(KernelResponder *r, ResponderBinding *f, void *arg) {
        struct iommud_vfio_device_detach_iommufd_pt d = {};

        memcpy(&d, arg, IOMMUD_VFIO_DETACH_MINSZ);
        r->last_size = d.argsz;
        if (d.argsz != sizeof(d))
                r->n_size_not_sizeof++;
        if (d.argsz < IOMMUD_VFIO_DETACH_MINSZ || (d.flags & ~IOMMUD_VFIO_DEVICE_DETACH_PASID))
                return -EINVAL;
        if (d.flags & IOMMUD_VFIO_DEVICE_DETACH_PASID) {
                if (d.argsz < sizeof(d))
                        return -EINVAL;
                memcpy(&d, arg, sizeof(d));
        }
        if (!f)
                return -EINVAL;
        return inner_ops(r)->device_detach(
                f->ctx, f->id, (d.flags & IOMMUD_VFIO_DEVICE_DETACH_PASID) ? d.pasid : BACKEND_NO_PASID,
                NULL);
}

/* VFIO_DEVICE_SET_IRQS as vfio-pci takes it for the request interrupt: one eventfd, or -1. */
static int vfio_set_irqs(KernelResponder *r, bool bound, void *arg) {
        struct iommud_vfio_irq_set_eventfd s;

        memcpy(&s, arg, sizeof(s));
        r->last_size = s.argsz;
        if (s.argsz != sizeof(s))
                r->n_size_not_sizeof++;
        if (!bound || s.argsz < sizeof(s) || s.index != IOMMUD_VFIO_PCI_REQ_IRQ_INDEX ||
            s.start != 0 || s.count != 1 ||
            s.flags != (IOMMUD_VFIO_IRQ_SET_DATA_EVENTFD | IOMMUD_VFIO_IRQ_SET_ACTION_TRIGGER))
                return -EINVAL;
        if (s.fd >= 0 && fcntl(s.fd, F_GETFD) < 0)
                return -EBADF;
        r->request_trigger = s.fd;
        return 0;
}

/* ---- the seam ---- */

int kernel_responder_ioctl(KernelResponder *r, int fd, unsigned long request, void *arg) {
        ResponderFd *f = fd_find(r, fd);
        unsigned nr = _IOC_NR(request);

        r->n_ioctls++;
        r->last_request = request;
        if (fcntl(fd, F_GETFD) < 0)
                return -EBADF;
        /* Both families are _IO(';', nr): no size or direction bits. */
        if (_IOC_TYPE(request) != IOMMUD_IOMMUFD_TYPE || _IOC_DIR(request) != _IOC_NONE ||
            _IOC_SIZE(request) != 0)
                return -ENOTTY;
        if (f && f->kind == FD_IOMMUFD)
                return iommufd_ioctl(r, f, nr, arg);
        if (f && f->kind == FD_FAULT)
                return -ENOTTY;
        if (!arg)
                return -EFAULT;
        switch (request) {
        case IOMMUD_VFIO_DEVICE_BIND_IOMMUFD:
                return vfio_bind(r, fd, arg);
        case IOMMUD_VFIO_DEVICE_ATTACH_IOMMUFD_PT:
                bindings_reap(r);
                return vfio_attach(r, binding_of(r, fd), arg);
        case IOMMUD_VFIO_DEVICE_DETACH_IOMMUFD_PT:
                bindings_reap(r);
                return vfio_detach(r, binding_of(r, fd), arg);
        case IOMMUD_VFIO_DEVICE_SET_IRQS:
                bindings_reap(r);
                return vfio_set_irqs(r, binding_of(r, fd) != NULL, arg);
        default:
                return -ENOTTY;
        }
}

static int seam_ioctl(void *userdata, int fd, unsigned long request, void *arg) {
        return kernel_responder_ioctl(userdata, fd, request, arg);
}

static int seam_open(void *userdata, const char *path, int flags) {
        KernelResponder *r = userdata;
        _cleanup_free_ char *iommu = NULL;
        BackendContext *ctx = NULL;
        int fd, k;

        if (asprintf(&iommu, "%s/iommu", r->dev_root) < 0)
                return -ENOMEM;
        if (!streq(path, iommu)) {
                /* Device nodes and anything else: a real open. */
                fd = open(path, flags | O_CLOEXEC);
                return fd < 0 ? negative_errno() : fd;
        }
        if (r->no_dev_iommu)
                return -ENOENT;
        k = inner_ops(r)->context_new(r->inner, &ctx, NULL);
        if (k < 0)
                return k;
        fd = eventfd(0, EFD_CLOEXEC);
        if (fd < 0) {
                k = negative_errno();
                inner_ops(r)->context_free(ctx);
                return k;
        }
        k = fd_add(r, fd, FD_IOMMUFD, ctx, 0);
        if (k < 0) {
                safe_close(fd);
                inner_ops(r)->context_free(ctx);
                return k;
        }
        return fd;
}

static void context_close(KernelResponder *r, BackendContext *ctx) {
        bool kept = false;

        /* Its fault fds are the caller's to close; a bound file keeps the context. */
        for (size_t i = 0; i < r->n_fds;) {
                if (r->fds[i].kind != FD_IOMMUFD && r->fds[i].ctx == ctx)
                        fd_remove(r, &r->fds[i]);
                else
                        i++;
        }
        bindings_reap(r);
        for (size_t i = 0; i < r->n_bindings; i++)
                kept = kept || r->bindings[i].ctx == ctx;
        /*
         * The simulated backend keeps a context whose files live on; a double that does not
         * model files frees it, and the bindings go with it.
         */
        if (kept && !backend_is_sim(r->inner))
                for (size_t i = r->n_bindings; i > 0; i--)
                        if (r->bindings[i - 1].ctx == ctx)
                                binding_remove(r, &r->bindings[i - 1]);
        inner_ops(r)->context_free(ctx);
}

static int seam_close(void *userdata, int fd) {
        KernelResponder *r = userdata;
        ResponderFd *f = fd_find(r, fd);

        if (f) {
                switch (f->kind) {
                case FD_IOMMUFD: {
                        BackendContext *ctx = f->ctx;
                        fd_remove(r, f);
                        context_close(r, ctx);
                        break;
                }
                case FD_FAULT:
                        fd_remove(r, f);
                        break;
                }
        }
        if (close(fd) < 0)
                return negative_errno();
        /* Maybe the last copy of a bound file. */
        bindings_reap(r);
        return 0;
}

static ssize_t seam_read(void *userdata, int fd, void *buf, size_t count) {
        KernelResponder *r = userdata;
        ResponderFd *f = fd_find(r, fd);
        FaultRecord recs[16];
        size_t done = 0;

        if (!f || f->kind != FD_FAULT) {
                ssize_t n = read(fd, buf, count);
                return n < 0 ? negative_errno() : n;
        }
        if (count % sizeof(struct iommud_hwpt_pgfault))
                return -ESPIPE;
        while (done < count) {
                size_t want = MIN(ELEMENTSOF(recs), (count - done) / sizeof(FaultRecord)), got = 0;
                int k = inner_ops(r)->fault_read(f->ctx, f->id, recs, want, &got, NULL);
                if (k < 0)
                        return done > 0 ? (ssize_t)done : k;
                if (got == 0)
                        break;
                memcpy((uint8_t *)buf + done, recs, got * sizeof(FaultRecord));
                done += got * sizeof(FaultRecord);
                if (got < want)
                        break;
        }
        return (ssize_t)done;
}

static ssize_t seam_write(void *userdata, int fd, const void *buf, size_t count) {
        KernelResponder *r = userdata;
        ResponderFd *f = fd_find(r, fd);
        size_t done;

        if (!f || f->kind != FD_FAULT) {
                ssize_t n = write(fd, buf, count);
                return n < 0 ? negative_errno() : n;
        }
        if (count % sizeof(struct iommud_hwpt_page_response))
                return -ESPIPE;
        for (done = 0; done < count; done += sizeof(struct iommud_hwpt_page_response)) {
                struct iommud_hwpt_page_response resp;
                int k;

                memcpy(&resp, (const uint8_t *)buf + done, sizeof(resp));
                k = inner_ops(r)->fault_respond(f->ctx, f->id, resp.cookie, resp.code, NULL);
                if (k < 0)
                        return done > 0 ? (ssize_t)done : k;
        }
        return (ssize_t)done;
}

static int seam_mmap(void *userdata, void *addr, size_t length, int prot, int fd,
                     uint64_t offset, void **ret_addr) {
        KernelResponder *r = userdata;
        void *p = mmap(addr, length, prot, MAP_SHARED | (addr ? MAP_FIXED : 0), fd,
                       (off_t)offset);

        if (p == MAP_FAILED)
                return negative_errno();
        r->n_mmaps++;
        r->mapped_bytes += length;
        r->last_mmap_prot = prot;
        *ret_addr = p;
        return 0;
}

static int seam_munmap(void *userdata, void *addr, size_t length) {
        KernelResponder *r = userdata;

        if (munmap(addr, length) < 0)
                return negative_errno();
        r->n_munmaps++;
        r->mapped_bytes -= length;
        return 0;
}

const BackendKernelSyscalls kernel_responder_syscalls = {
        .open = seam_open,
        .close = seam_close,
        .ioctl = seam_ioctl,
        .read = seam_read,
        .write = seam_write,
        .mmap = seam_mmap,
        .munmap = seam_munmap,
};

/* The ioctls a kernel without the feature would not know. */
static const struct {
        uint64_t feature;
        uint32_t cmds[2];
} feature_cmds[] = {
        { BACKEND_FEATURE_OPTION, { IOMMUD_IOMMUFD_CMD_OPTION } },
        { BACKEND_FEATURE_HWPT_ALLOC, { IOMMUD_IOMMUFD_CMD_HWPT_ALLOC } },
        { BACKEND_FEATURE_HW_INFO, { IOMMUD_IOMMUFD_CMD_GET_HW_INFO } },
        { BACKEND_FEATURE_DIRTY_TRACKING,
          { IOMMUD_IOMMUFD_CMD_HWPT_SET_DIRTY_TRACKING, IOMMUD_IOMMUFD_CMD_HWPT_GET_DIRTY_BITMAP } },
        { BACKEND_FEATURE_HWPT_INVALIDATE, { IOMMUD_IOMMUFD_CMD_HWPT_INVALIDATE } },
        { BACKEND_FEATURE_FAULT_QUEUE, { IOMMUD_IOMMUFD_CMD_FAULT_QUEUE_ALLOC } },
        { BACKEND_FEATURE_MAP_FILE, { IOMMUD_IOMMUFD_CMD_IOAS_MAP_FILE } },
        { BACKEND_FEATURE_VIOMMU, { IOMMUD_IOMMUFD_CMD_VIOMMU_ALLOC, IOMMUD_IOMMUFD_CMD_VDEVICE_ALLOC } },
        { BACKEND_FEATURE_CHANGE_PROCESS, { IOMMUD_IOMMUFD_CMD_IOAS_CHANGE_PROCESS } },
};

int kernel_responder_new(KernelResponder **ret, Backend *inner, const char *dev_root) {
        KernelResponder *r = calloc(1, sizeof(*r));

        if (!r)
                return -ENOMEM;
        /* Behave as a kernel of the inner backend's generation. */
        FOREACH_ARRAY(f, feature_cmds, ELEMENTSOF(feature_cmds))
                if (!(inner->features & f->feature))
                        for (size_t i = 0; i < ELEMENTSOF(f->cmds) && f->cmds[i]; i++)
                                kernel_responder_disable(r, f->cmds[i]);
        r->inner = inner;
        r->request_trigger = -1;
        r->dev_root = strdup(dev_root ?: "/dev");
        if (!r->dev_root) {
                free(r);
                return -ENOMEM;
        }
        *ret = r;
        return 0;
}

KernelResponder *kernel_responder_free(KernelResponder *r) {
        if (!r)
                return NULL;
        /* Whatever backend-kernel left open (it should leave nothing). */
        while (r->n_fds > 0)
                (void)seam_close(r, r->fds[r->n_fds - 1].fd);
        free(r->fds);
        while (r->n_bindings > 0)
                binding_remove(r, &r->bindings[r->n_bindings - 1]);
        free(r->bindings);
        free(r->dev_root);
        free(r);
        return NULL;
}

void kernel_responder_disable(KernelResponder *r, uint32_t cmd) {
        if (cmd >= IOMMUD_IOMMUFD_CMD_BASE && cmd - IOMMUD_IOMMUFD_CMD_BASE < 64)
                r->disabled_cmds |= UINT64_C(1) << (cmd - IOMMUD_IOMMUFD_CMD_BASE);
}

BackendContext *kernel_responder_context(KernelResponder *r, int iommufd) {
        ResponderFd *f = fd_find(r, iommufd);
        return f && f->kind == FD_IOMMUFD ? f->ctx : NULL;
}
