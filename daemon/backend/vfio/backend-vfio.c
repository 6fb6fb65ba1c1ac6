/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "assert-util.h"
#include "log.h"
#include "macros.h"
#include "vfio-abi.h"
#include "vfio-dma.h"
#include "vfio-internal.h"

/* ---- the real syscalls ---- */

static int real_open(void *userdata, const char *path, int flags) {
        int fd = open(path, flags | O_CLOEXEC);
        return fd < 0 ? negative_errno() : fd;
}

static int real_close(void *userdata, int fd) {
        return close(fd) < 0 ? negative_errno() : 0;
}

static int real_ioctl(void *userdata, int fd, unsigned long request, void *arg) {
        int r = ioctl(fd, request, arg);
        return r < 0 ? negative_errno() : r;
}

static int real_mmap(void *userdata, size_t length, int prot, int fd, uint64_t offset,
                     void **ret_addr) {
        void *p = mmap(NULL, length, prot, MAP_SHARED, fd, (off_t)offset);

        if (p == MAP_FAILED)
                return negative_errno();
        *ret_addr = p;
        return 0;
}

static int real_munmap(void *userdata, void *addr, size_t length) {
        return munmap(addr, length) < 0 ? negative_errno() : 0;
}

const BackendVfioSyscalls backend_vfio_syscalls_real = {
        .open = real_open,
        .close = real_close,
        .ioctl = real_ioctl,
        .mmap = real_mmap,
        .munmap = real_munmap,
};

/* ---- helpers the other files share ---- */

void vfio_sys_close(BackendVfio *v, int fd) {
        if (fd >= 0)
                (void)v->sys->close(v->userdata, fd);
}

int vfio_sys_ioctl(BackendVfio *v, int fd, unsigned long request, void *arg) {
        return v->sys->ioctl(v->userdata, fd, request, arg);
}

void vfio_map_unref(BackendVfio *v, VfioMap *m) {
        if (!m || --m->n_ref > 0)
                return;
        (void)v->sys->munmap(v->userdata, m->addr, m->length);
        v->n_mmaps--;
        free(m);
}

int vfio_error(Error *err, int r, const char *ioctl_name) {
        switch (r) {
        case -ENOTTY:
                return error_set(err, r, "the kernel does not know %s", ioctl_name);
        case -ENOMEM:
                return error_set(err, r, "%s: out of memory", ioctl_name);
        case -EFAULT:
                return error_set(err, r, "%s: the kernel could not access the memory given",
                                 ioctl_name);
        default:
                return error_set(err, r, "%s failed: %s", ioctl_name, strerror(-r));
        }
}

/* What type1 cannot do: the sentence names the feature and why. */
static int no_iommufd(Error *err, const char *feature) {
        return error_set(err, -EOPNOTSUPP,
                         "%s needs iommufd, which this kernel lacks (CONFIG_IOMMUFD); iommud "
                         "uses the legacy VFIO type1 API here",
                         feature);
}

/* ---- object ids: one space per context, lowest free first, as iommufd's xarray ---- */

int vfio_obj_add(VfioContext *c, VfioObjKind kind, void *ptr, uint32_t *ret_id) {
        VfioObj *v;
        uint32_t id = 1;
        size_t pos = 0;

        while (pos < c->n_objs && c->objs[pos].id == id) {
                id++;
                pos++;
        }
        if (id == UINT32_MAX)
                return -ENOSPC;
        v = reallocarray(c->objs, c->n_objs + 1, sizeof(*v));
        if (!v)
                return -ENOMEM;
        c->objs = v;
        memmove(v + pos + 1, v + pos, (c->n_objs - pos) * sizeof(*v));
        v[pos] = (VfioObj){ .id = id, .kind = kind, .ptr = ptr };
        c->n_objs++;
        *ret_id = id;
        return 0;
}

int vfio_obj_add_id(VfioContext *c, VfioObjKind kind, void *ptr, uint32_t id) {
        VfioObj *v;
        size_t pos = 0;

        while (pos < c->n_objs && c->objs[pos].id < id)
                pos++;
        if (id == 0 || (pos < c->n_objs && c->objs[pos].id == id))
                return -EEXIST;
        v = reallocarray(c->objs, c->n_objs + 1, sizeof(*v));
        if (!v)
                return -ENOMEM;
        c->objs = v;
        memmove(v + pos + 1, v + pos, (c->n_objs - pos) * sizeof(*v));
        v[pos] = (VfioObj){ .id = id, .kind = kind, .ptr = ptr };
        c->n_objs++;
        return 0;
}

static VfioObj *obj_find(VfioContext *c, uint32_t id) {
        size_t lo = 0, hi = c->n_objs;

        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;

                if (c->objs[mid].id == id)
                        return &c->objs[mid];
                if (c->objs[mid].id < id)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return NULL;
}

void vfio_obj_remove(VfioContext *c, uint32_t id) {
        VfioObj *o = obj_find(c, id);
        size_t i;

        if (!o)
                return;
        i = (size_t)(o - c->objs);
        memmove(c->objs + i, c->objs + i + 1, (c->n_objs - i - 1) * sizeof(*o));
        c->n_objs--;
}

void *vfio_obj_find(VfioContext *c, uint32_t id, VfioObjKind kind) {
        VfioObj *o = obj_find(c, id);

        return o && o->kind == kind ? o->ptr : NULL;
}

/* ---- contexts ---- */

static int vfio_context_new(Backend *b, BackendContext **ret, Error *err) {
        BackendVfio *v = (BackendVfio *)b;
        VfioContext *c;

        assert_return(b, -EINVAL);
        assert_return(ret, -EINVAL);
        c = calloc(1, sizeof(*c));
        if (!c)
                return error_set(err, -ENOMEM, "out of memory");
        c->base.backend = b;
        c->next = v->contexts;
        v->contexts = c;
        *ret = &c->base;
        return 0;
}

static void context_unlink(VfioContext *c) {
        BackendVfio *v = vfio_of(c);

        for (VfioContext **p = &v->contexts; *p; p = &(*p)->next)
                if (*p == c) {
                        *p = c->next;
                        break;
                }
}

static void vfio_context_free(BackendContext *bc) {
        VfioContext *c = (VfioContext *)bc;

        if (!c)
                return;
        /* Containers first: every mapping goes before any group or mmap is let go. */
        FOREACH_ARRAY(o, c->objs, c->n_objs)
                if (o->kind == VFIO_OBJ_IOAS) {
                        VfioIoas *ioas = o->ptr;

                        if (!vfio_of(c)->keep_kernel_state)
                                vfio_container_release(c, ioas);
                        vfio_sys_close(vfio_of(c), ioas->container);
                        ioas->container = -EBADF;
                }
        vfio_device_release_all(c);
        FOREACH_ARRAY(o, c->objs, c->n_objs)
                if (o->kind == VFIO_OBJ_IOAS)
                        vfio_ioas_free(vfio_of(c), o->ptr);
        free(c->objs);
        free(c->groups);
        context_unlink(c);
        free(c);
}

static int vfio_context_fd(BackendContext *bc) {
        return -EOPNOTSUPP;
}

/* ---- what type1 cannot do ---- */

static int vfio_option(BackendContext *bc, uint32_t option_id, uint16_t op, uint32_t object_id,
                       uint64_t *val64, Error *err) {
        assert_return(bc, -EINVAL);
        assert_return(val64, -EINVAL);

        return no_iommufd(err, "IOMMU_OPTION");
}

static int vfio_hw_info(BackendContext *bc, uint32_t dev_id, HwInfo *ret, Error *err) {
        assert_return(bc, -EINVAL);
        assert_return(ret, -EINVAL);

        return no_iommufd(err, "reading the IOMMU's hardware information");
}

static int vfio_hwpt_alloc(BackendContext *bc, const HwptAllocArgs *args, uint32_t *ret_id,
                           Error *err) {
        assert_return(bc, -EINVAL);
        assert_return(args, -EINVAL);
        assert_return(ret_id, -EINVAL);

        /* The IOAS's domain, which logs dirty pages where its container can. */
        if (args->flags == BACKEND_HWPT_DIRTY_TRACKING && args->data_type == BACKEND_HWPT_DATA_NONE)
                return vfio_dirty_hwpt_alloc((VfioContext *)bc, args, ret_id, err);
        return no_iommufd(err, args->flags & BACKEND_HWPT_NEST_PARENT
                                       ? "a nesting parent page table"
                               : args->flags & BACKEND_HWPT_PASID ? "a PASID page table"
                                                                  : "a page table (HWPT) object");
}

static int vfio_fault_queue_alloc(BackendContext *bc, uint32_t *ret_id, int *ret_fd, Error *err) {
        assert_return(bc, -EINVAL);
        assert_return(ret_id, -EINVAL);
        assert_return(ret_fd, -EINVAL);

        return no_iommufd(err, "an I/O page fault queue");
}

static int vfio_fault_read(BackendContext *bc, uint32_t fault_id, FaultRecord *buf, size_t n_max,
                           size_t *ret_n, Error *err) {
        assert_return(bc, -EINVAL);
        assert_return(buf || n_max == 0, -EINVAL);
        assert_return(ret_n, -EINVAL);

        return no_iommufd(err, "an I/O page fault queue");
}

static int vfio_fault_respond(BackendContext *bc, uint32_t fault_id, uint32_t cookie, uint32_t code,
                              Error *err) {
        assert_return(bc, -EINVAL);

        return no_iommufd(err, "an I/O page fault queue");
}

/* ---- objects ---- */

static int vfio_ioas_alloc(BackendContext *bc, uint32_t *ret_id, Error *err) {
        VfioContext *c = (VfioContext *)bc;
        VfioIoas *ioas;

        assert_return(bc, -EINVAL);
        assert_return(ret_id, -EINVAL);
        ioas = vfio_ioas_new();
        if (!ioas || vfio_obj_add(c, VFIO_OBJ_IOAS, ioas, &ioas->id) < 0) {
                free(ioas);
                return error_set(err, -ENOMEM, "out of memory");
        }
        *ret_id = ioas->id;
        return 0;
}

static int vfio_destroy(BackendContext *bc, uint32_t id, Error *err) {
        VfioContext *c = (VfioContext *)bc;
        VfioIoas *ioas;
        VfioObj *o;

        assert_return(bc, -EINVAL);
        o = obj_find(c, id);
        if (!o)
                return error_set(err, -ENOENT, "object %" PRIu32 " does not exist", id);
        ioas = o->kind == VFIO_OBJ_DEVICE ? NULL : o->ptr;
        if (o->kind == VFIO_OBJ_HWPT && ioas->hwpt_held && ioas->n_attached == 0) {
                /* A dirty-tracking domain nothing is attached to goes, and its logging. */
                vfio_obj_remove(c, id);
                ioas->hwpt_id = 0;
                ioas->hwpt_held = ioas->dirty_on = false;
                return 0;
        }
        if (o->kind != VFIO_OBJ_IOAS)
                /* A domain lives while a device is attached; a device goes with unbind. */
                return error_set(err, -EBUSY, "object %" PRIu32 " is in use: %s", id,
                                 o->kind == VFIO_OBJ_HWPT ? "a device is attached to it"
                                                          : "it is a bound device");
        if (ioas->hwpt_held)
                return error_set(err, -EBUSY,
                                 "IOAS %" PRIu32 " is in use: HWPT %" PRIu32 " is allocated over "
                                 "it",
                                 id, ioas->hwpt_id);
        if (ioas->n_attached > 0)
                return error_set(err, -EBUSY, "IOAS %" PRIu32 " is in use: a device is attached",
                                 id);
        vfio_obj_remove(c, id);
        if (!vfio_of(c)->keep_kernel_state)
                vfio_container_release(c, ioas);
        vfio_sys_close(vfio_of(c), ioas->container);
        vfio_ioas_free(vfio_of(c), ioas);
        return 0;
}

static void vfio_free(Backend *b);

static const BackendOps vfio_ops = {
        .name = "vfio",
        .free = vfio_free,
        .device_fd_identify = vfio_device_fd_identify,
        .device_open = vfio_device_open,
        .device_holders = vfio_device_holders,
        .context_new = vfio_context_new,
        .context_free = vfio_context_free,
        .context_fd = vfio_context_fd,
        .option = vfio_option,
        .ioas_alloc = vfio_ioas_alloc,
        .destroy = vfio_destroy,
        .ioas_map_file = vfio_dma_map_file,
        .ioas_map_va = vfio_dma_map_va,
        .ioas_unmap = vfio_dma_unmap,
        .ioas_copy = vfio_dma_copy,
        .ioas_iova_ranges = vfio_dma_iova_ranges,
        .ioas_allow_iovas = vfio_dma_allow_iovas,
        .device_bind = vfio_device_bind,
        .device_unbind = vfio_device_unbind,
        .device_attach = vfio_device_attach,
        .device_detach = vfio_device_detach,
        .hw_info = vfio_hw_info,
        .device_fd = backend_vfio_context_open_device,
        .hwpt_alloc = vfio_hwpt_alloc,
        .hwpt_set_dirty_tracking = vfio_dirty_set,
        .hwpt_get_dirty_bitmap = vfio_dirty_get_bitmap,
        .fault_queue_alloc = vfio_fault_queue_alloc,
        .fault_read = vfio_fault_read,
        .fault_respond = vfio_fault_respond,
};

/* ---- the backend ---- */

static void vfio_free(Backend *b) {
        BackendVfio *v = (BackendVfio *)b;

        safe_close(v->sysfs_fd);
        free(v->dev_root);
        free(v);
}

static int check_extension(BackendVfio *v, int fd, int ext) {
        return vfio_sys_ioctl(v, fd, IOMMUD_VFIO_CHECK_EXTENSION, (void *)(uintptr_t)ext);
}

/* The container device, its API version and the type1 flavour the kernel offers. */
static int vfio_probe(BackendVfio *v, Error *err) {
        _cleanup_free_ char *path = NULL;
        int fd, r;

        if (asprintf(&path, "%s/vfio/vfio", v->dev_root) < 0)
                return error_set(err, -ENOMEM, "out of memory");
        fd = v->sys->open(v->userdata, path, O_RDWR | O_CLOEXEC);
        if (fd == -ENOENT)
                return error_set(err, fd,
                                 "%s does not exist: this kernel has no VFIO container "
                                 "(CONFIG_VFIO_CONTAINER) or the vfio module is not loaded",
                                 path);
        if (fd == -EACCES || fd == -EPERM)
                return error_set(err, fd, "permission denied opening %s", path);
        if (fd < 0)
                return error_set(err, fd, "cannot open %s: %s", path, strerror(-fd));

        r = vfio_sys_ioctl(v, fd, IOMMUD_VFIO_GET_API_VERSION, NULL);
        if (r != IOMMUD_VFIO_API_VERSION) {
                vfio_sys_close(v, fd);
                return error_set(err, -EPROTO, "%s speaks VFIO API version %d, not %d", path, r,
                                 IOMMUD_VFIO_API_VERSION);
        }
        if (check_extension(v, fd, IOMMUD_VFIO_TYPE1v2_IOMMU) > 0)
                v->iommu_type = IOMMUD_VFIO_TYPE1v2_IOMMU;
        else if (check_extension(v, fd, IOMMUD_VFIO_TYPE1_IOMMU) > 0)
                v->iommu_type = IOMMUD_VFIO_TYPE1_IOMMU;
        vfio_sys_close(v, fd);
        if (v->iommu_type == 0)
                return error_set(err, -EOPNOTSUPP,
                                 "%s offers no type1 IOMMU: the vfio_iommu_type1 module is not "
                                 "loaded",
                                 path);
        log_debug("VFIO container %s: %s", path, backend_vfio_iommu_type(&v->base));
        v->base.features = BACKEND_FEATURE_IOAS;
        /*
         * type1 v2 has logged dirty pages since Linux 5.8; whether a container can is known
         * once a group is in it (VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION), and what it logs is
         * every pinned page.
         */
        if (v->iommu_type == IOMMUD_VFIO_TYPE1v2_IOMMU)
                v->base.features |= BACKEND_FEATURE_DIRTY_TRACKING |
                                    BACKEND_FEATURE_DIRTY_ALL_PINNED;
        return 0;
}

int backend_vfio_new(Backend **ret, const BackendVfioConfig *cfg, Error *err) {
        BackendVfio *v;
        int r;

        assert_return(ret && cfg, -EINVAL);
        v = calloc(1, sizeof(*v));
        if (!v)
                return error_set(err, -ENOMEM, "out of memory");
        v->base.ops = &vfio_ops;
        v->sys = cfg->syscalls ?: &backend_vfio_syscalls_real;
        v->userdata = cfg->userdata;
        v->sysfs_fd = cfg->sysfs_fd >= 0
                              ? fcntl(cfg->sysfs_fd, F_DUPFD_CLOEXEC, 3)
                              : open(cfg->sysfs_root ?: "/sys", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (v->sysfs_fd < 0) {
                r = error_set(err, negative_errno(), "cannot open sysfs %s: %m",
                              cfg->sysfs_fd >= 0 ? "fd" : cfg->sysfs_root ?: "/sys");
                goto fail;
        }
        v->dev_root = strdup(cfg->dev_root ?: "/dev");
        if (!v->dev_root) {
                r = error_set(err, -ENOMEM, "out of memory");
                goto fail;
        }
        r = vfio_probe(v, err);
        if (r < 0)
                goto fail;
        *ret = &v->base;
        return 0;
fail:
        vfio_free(&v->base);
        return r;
}

bool backend_is_vfio(const Backend *b) {
        return b && b->ops == &vfio_ops;
}

const char *backend_vfio_iommu_type(const Backend *b) {
        assert_return(backend_is_vfio(b), NULL);
        return ((const BackendVfio *)b)->iommu_type == IOMMUD_VFIO_TYPE1v2_IOMMU ? "type1v2"
                                                                                 : "type1";
}

void backend_vfio_keep_kernel_state(Backend *b) {
        if (backend_is_vfio(b))
                ((BackendVfio *)b)->keep_kernel_state = true;
}

size_t backend_vfio_mappings(const Backend *b) {
        assert_return(backend_is_vfio(b), 0);
        return ((const BackendVfio *)b)->n_mmaps;
}
