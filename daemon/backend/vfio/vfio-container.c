/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * The kernel side of an IOAS: its container.  A container needs a group before it can
 * have an IOMMU, and loses everything when its last group leaves, so it exists exactly
 * while a group is in it: the first group opens it, sets the type1 IOMMU and replays the
 * IOAS's areas; the last one to leave closes it.
 *
 * A group whose device fd a client still holds cannot leave (UNSET_CONTAINER answers
 * EBUSY until every device fd is closed).  Then the container is wiped (every mapping
 * unmapped, so the device reaches nothing any more) and let go, and the IOAS starts a new
 * one for whoever joins next.
 */

#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "assert-util.h"
#include "macros.h"
#include "vfio-abi.h"
#include "vfio-internal.h"

/* ---- VFIO_IOMMU_GET_INFO ---- */

typedef struct ContainerInfo {
        uint64_t pgsize;
        IovaRange *usable;
        size_t n_usable;
        bool can_log_dirty;
        uint64_t dirty_pgsize;
        uint64_t dirty_max_bytes;
} ContainerInfo;

static void info_migration(BackendVfio *v, const uint8_t *buf, size_t size, size_t off,
                           ContainerInfo *ret) {
        struct iommud_vfio_iommu_type1_info_cap_migration cap;

        /* type1 v1 answers DIRTY_PAGES with EACCES. */
        if (v->iommu_type != IOMMUD_VFIO_TYPE1v2_IOMMU || off > size - sizeof(cap))
                return;
        memcpy(&cap, buf + off, sizeof(cap));
        /* GET_BITMAP takes the smallest of these page sizes only. */
        ret->dirty_pgsize = cap.pgsize_bitmap & -cap.pgsize_bitmap;
        ret->dirty_max_bytes = cap.max_dirty_bitmap_size;
        ret->can_log_dirty = ret->dirty_pgsize != 0 && ret->dirty_max_bytes >= sizeof(uint64_t);
}

static void ioas_set_dirty_info(VfioIoas *ioas, const ContainerInfo *info) {
        ioas->can_log_dirty = info ? info->can_log_dirty : false;
        ioas->dirty_pgsize = info ? info->dirty_pgsize : 0;
        ioas->dirty_max_bytes = info ? info->dirty_max_bytes : 0;
}

/* Capabilities are packed by 6.1 kernels (the 8-byte alignment came later): copy them out. */
static int info_iova_ranges(const uint8_t *buf, size_t size, size_t off, ContainerInfo *ret) {
        struct iommud_vfio_iommu_type1_info_cap_iova_range cap;
        size_t n;

        if (off > size - sizeof(cap))
                return -EBADMSG;
        memcpy(&cap, buf + off, sizeof(cap));
        n = cap.nr_iovas;
        if (n == 0 || n > (size - off - sizeof(cap)) / sizeof(struct iommud_vfio_iova_range))
                return -EBADMSG;
        ret->usable = calloc(n, sizeof(IovaRange));
        if (!ret->usable)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                struct iommud_vfio_iova_range range;

                memcpy(&range, buf + off + sizeof(cap) + i * sizeof(range), sizeof(range));
                ret->usable[i] = (IovaRange){ range.start, range.end };
        }
        ret->n_usable = n;
        return 0;
}

/* Walks the capability chain; offsets are from the start of the buffer and only grow. */
static int info_parse_caps(BackendVfio *v, const uint8_t *buf, size_t size, size_t off,
                           ContainerInfo *ret) {
        for (unsigned hops = 0; off != 0; hops++) {
                struct iommud_vfio_info_cap_header h;
                int r;

                if (hops > 64 || off < sizeof(struct iommud_vfio_iommu_type1_info) ||
                    off > size - sizeof(h))
                        return -EBADMSG;
                memcpy(&h, buf + off, sizeof(h));
                if (h.id == IOMMUD_VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE && !ret->usable) {
                        r = info_iova_ranges(buf, size, off, ret);
                        if (r < 0)
                                return r;
                } else if (h.id == IOMMUD_VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION)
                        info_migration(v, buf, size, off, ret);
                if (h.next != 0 && h.next <= off)
                        return -EBADMSG;
                off = h.next;
        }
        return 0;
}

static int container_info(BackendVfio *v, int container, ContainerInfo *ret, Error *err) {
        _cleanup_free_ uint8_t *buf = NULL;
        struct iommud_vfio_iommu_type1_info *info;
        size_t size = 512;
        int r;

        *ret = (ContainerInfo){ .pgsize = 4096 };
        for (unsigned attempt = 0;; attempt++) {
                free(buf);
                buf = calloc(1, size);
                if (!buf)
                        return error_set(err, -ENOMEM, "out of memory");
                info = (void *)buf;
                info->argsz = (uint32_t)size;
                r = vfio_sys_ioctl(v, container, IOMMUD_VFIO_IOMMU_GET_INFO, info);
                if (r < 0)
                        return vfio_error(err, r, "VFIO_IOMMU_GET_INFO");
                /* Too small for the capabilities: argsz says what is needed. */
                if (info->argsz <= size || attempt > 0)
                        break;
                size = info->argsz;
        }
        if ((info->flags & IOMMUD_VFIO_IOMMU_INFO_PGSIZES) && info->iova_pgsizes != 0)
                ret->pgsize = info->iova_pgsizes & -info->iova_pgsizes;
        if ((info->flags & IOMMUD_VFIO_IOMMU_INFO_CAPS) && info->cap_offset != 0) {
                r = info_parse_caps(v, buf, MIN(size, (size_t)info->argsz), info->cap_offset, ret);
                if (r < 0) {
                        free(ret->usable);
                        ret->usable = NULL;
                        return error_set(err, r == -ENOMEM ? r : -EIO,
                                         "VFIO_IOMMU_GET_INFO returned a capability chain that "
                                         "cannot be read");
                }
        }
        return 0;
}

int vfio_container_refresh(BackendVfio *v, VfioIoas *ioas, Error *err) {
        ContainerInfo info = {};
        int r;

        r = container_info(v, ioas->container, &info, err);
        if (r < 0)
                return r;
        vfio_ioas_set_domain(ioas, info.usable, info.n_usable, info.pgsize);
        ioas_set_dirty_info(ioas, &info);
        return 0;
}

/* ---- MAP_DMA / UNMAP_DMA ---- */

static int map_error(Error *err, int r, uint64_t iova, uint64_t length) {
        switch (r) {
        case -EINVAL:
                return error_set(err, r,
                                 "the kernel refused IOVA 0x%" PRIx64 "+0x%" PRIx64
                                 ": misaligned or outside the container's usable ranges",
                                 iova, length);
        case -EEXIST:
                return error_set(err, r,
                                 "IOVA 0x%" PRIx64 "+0x%" PRIx64
                                 " overlaps a mapping the container already has",
                                 iova, length);
        case -ENOSPC:
                return error_set(err, r,
                                 "the container holds as many mappings as vfio_iommu_type1 "
                                 "allows (its dma_entry_limit)");
        case -ENOMEM:
                return error_set(err, r,
                                 "pinning 0x%" PRIx64 " bytes failed: out of memory or over "
                                 "the locked-memory limit",
                                 length);
        case -EFAULT:
                return error_set(err, r,
                                 "the memory cannot be pinned for DMA (not ordinary memory, "
                                 "e.g. a device BAR)");
        default:
                return vfio_error(err, r, "VFIO_IOMMU_MAP_DMA");
        }
}

static int unmap_range(BackendVfio *v, int container, uint64_t iova, uint64_t length) {
        struct iommud_vfio_iommu_type1_dma_unmap u = {
                .argsz = sizeof(u),
                .iova = iova,
                .size = length,
        };
        int r;

        r = vfio_sys_ioctl(v, container, IOMMUD_VFIO_IOMMU_UNMAP_DMA, &u);
        if (r < 0)
                return r;
        return u.size == length ? 0 : -EIO;
}

int vfio_container_map(BackendVfio *v, VfioIoas *ioas, uint64_t iova, uint32_t flags,
                       const VfioPiece *p, Error *err) {
        struct iommud_vfio_iommu_type1_dma_map m = {
                .argsz = sizeof(m),
                .flags = ((flags & BACKEND_MAP_READABLE) ? IOMMUD_VFIO_DMA_MAP_FLAG_READ : 0) |
                         ((flags & BACKEND_MAP_WRITEABLE) ? IOMMUD_VFIO_DMA_MAP_FLAG_WRITE : 0),
                .vaddr = p->vaddr,
                .iova = iova,
                .size = p->length,
        };
        int r;

        r = vfio_sys_ioctl(v, ioas->container, IOMMUD_VFIO_IOMMU_MAP_DMA, &m);
        return r < 0 ? map_error(err, r, iova, p->length) : 0;
}

int vfio_container_unmap(BackendVfio *v, VfioIoas *ioas, uint64_t iova, uint64_t length,
                         Error *err) {
        int r;

        if (ioas->container < 0)
                return 0;
        r = unmap_range(v, ioas->container, iova, length);
        if (r == -EIO)
                return error_set(err, r,
                                 "the container unmapped less than 0x%" PRIx64 "+0x%" PRIx64
                                 " of IOAS %" PRIu32,
                                 iova, length, ioas->id);
        if (r < 0)
                return vfio_error(err, r, "VFIO_IOMMU_UNMAP_DMA");
        return 0;
}

/* Everything out of the container; what is left mapped after a failure is all unmapped. */
static void container_wipe(BackendVfio *v, int container, VfioIoas *ioas) {
        struct iommud_vfio_iommu_type1_dma_unmap u = {
                .argsz = sizeof(u),
                .flags = IOMMUD_VFIO_DMA_UNMAP_FLAG_ALL,
        };

        if (vfio_sys_ioctl(v, container, IOMMUD_VFIO_IOMMU_UNMAP_DMA, &u) >= 0)
                return;
        /* Kernels before VFIO_UNMAP_ALL (5.12): area by area. */
        for (IovaNode *n = iova_tree_first(&ioas->areas); n; n = iova_tree_next(&ioas->areas, n))
                (void)unmap_range(v, container, n->start, n->last - n->start + 1);
}

static int replay(BackendVfio *v, VfioIoas *ioas, Error *err) {
        for (IovaNode *n = iova_tree_first(&ioas->areas); n; n = iova_tree_next(&ioas->areas, n)) {
                VfioArea *a = (VfioArea *)n;
                int r;

                r = vfio_container_map(v, ioas, n->start, a->flags, &a->piece, err);
                if (r < 0) {
                        container_wipe(v, ioas->container, ioas);
                        return error_prefix(err, "replaying the mappings of IOAS %" PRIu32,
                                            ioas->id);
                }
        }
        return 0;
}

/* ---- groups in and out ---- */

static int set_container(BackendVfio *v, VfioGroup *g, int container, Error *err) {
        int32_t fd = container;
        int r;

        r = vfio_sys_ioctl(v, g->fd, IOMMUD_VFIO_GROUP_SET_CONTAINER, &fd);
        switch (r) {
        case 0:
                return 0;
        case -EPERM:
                return error_set(err, r,
                                 "the kernel refused group %u: a member is bound to a host "
                                 "driver, or the group is owned elsewhere",
                                 g->id);
        case -EBUSY:
                return error_set(err, r, "group %u is in use elsewhere", g->id);
        default:
                return vfio_error(err, r, "VFIO_GROUP_SET_CONTAINER");
        }
}

static int unset_container(BackendVfio *v, VfioGroup *g) {
        return vfio_sys_ioctl(v, g->fd, IOMMUD_VFIO_GROUP_UNSET_CONTAINER, NULL);
}

static int set_iommu(BackendVfio *v, int container, VfioGroup *g, Error *err) {
        int r = vfio_sys_ioctl(v, container, IOMMUD_VFIO_SET_IOMMU,
                               (void *)(uintptr_t)v->iommu_type);

        switch (r) {
        case 0:
                return 0;
        case -EPERM:
                return error_set(err, r,
                                 "the IOMMU refused to attach group %u (a firmware-required "
                                 "mapping, or MSIs it cannot isolate)",
                                 g->id);
        case -ENODEV:
                return error_set(err, r, "no type1 IOMMU driver takes group %u", g->id);
        default:
                return vfio_error(err, r, "VFIO_SET_IOMMU");
        }
}

/* The first group: a new container with the type1 IOMMU and every area of the IOAS. */
static int join_first(VfioContext *c, VfioIoas *ioas, VfioGroup *g, Error *err) {
        BackendVfio *v = vfio_of(c);
        _cleanup_free_ char *path = NULL;
        ContainerInfo info = {};
        int fd, r;

        if (asprintf(&path, "%s/vfio/vfio", v->dev_root) < 0)
                return error_set(err, -ENOMEM, "out of memory");
        fd = v->sys->open(v->userdata, path, O_RDWR | O_CLOEXEC);
        if (fd < 0)
                return error_set(err, fd, "cannot open %s: %s", path, strerror(-fd));
        r = set_container(v, g, fd, err);
        if (r < 0)
                goto close;
        r = set_iommu(v, fd, g, err);
        if (r >= 0)
                r = container_info(v, fd, &info, err);
        if (r >= 0)
                r = vfio_ioas_check_domain(ioas, info.usable, info.n_usable, info.pgsize, err);
        if (r >= 0) {
                ioas->container = fd;
                r = replay(v, ioas, err);
        }
        if (r >= 0) {
                ioas_set_dirty_info(ioas, &info);
                r = vfio_dirty_container_ready(v, ioas, fd, info.can_log_dirty, err);
                if (r < 0)
                        container_wipe(v, fd, ioas);
        }
        if (r < 0) {
                ioas_set_dirty_info(ioas, NULL);
                ioas->container = -EBADF;
                free(info.usable);
                (void)unset_container(v, g);
                goto close;
        }
        vfio_ioas_set_domain(ioas, info.usable, info.n_usable, info.pgsize);
        return 0;
close:
        vfio_sys_close(v, fd);
        return r;
}

/* One more group: the kernel refuses one whose reserved regions collide with mappings. */
static int join_more(VfioContext *c, VfioIoas *ioas, VfioGroup *g, Error *err) {
        BackendVfio *v = vfio_of(c);
        ContainerInfo info = {};
        int r;

        r = set_container(v, g, ioas->container, err);
        if (r == -EINVAL)
                return error_set(err, -EADDRINUSE,
                                 "a reserved region of group %u collides with a mapping of "
                                 "IOAS %" PRIu32,
                                 g->id, ioas->id);
        if (r < 0)
                return r;
        r = container_info(v, ioas->container, &info, err);
        if (r >= 0)
                r = vfio_ioas_check_domain(ioas, info.usable, info.n_usable, info.pgsize, err);
        if (r >= 0)
                r = vfio_dirty_container_ready(v, ioas, ioas->container, info.can_log_dirty, err);
        if (r < 0) {
                free(info.usable);
                (void)unset_container(v, g);
                return r;
        }
        vfio_ioas_set_domain(ioas, info.usable, info.n_usable, info.pgsize);
        ioas_set_dirty_info(ioas, &info);
        return 0;
}

/* A group left in a wiped container goes free once the client closed its device fds. */
static int leave_stale(BackendVfio *v, VfioGroup *g, Error *err) {
        if (!g->stale)
                return 0;
        if (unset_container(v, g) == -EBUSY)
                return error_set(err, -EBUSY,
                                 "a client still holds a device fd of group %u from before the "
                                 "group left its address space; close it first",
                                 g->id);
        g->stale = false;
        return 0;
}

int vfio_container_join(VfioContext *c, VfioIoas *ioas, VfioGroup *g, Error *err) {
        int r;

        assert_return(!g->ioas, -EINVAL);
        r = leave_stale(vfio_of(c), g, err);
        if (r < 0)
                return r;
        r = ioas->container < 0 ? join_first(c, ioas, g, err) : join_more(c, ioas, g, err);
        if (r < 0)
                return r;
        ioas->n_groups++;
        g->ioas = ioas;
        return 0;
}

/*
 * A client's device fd keeps g in the container: nothing may stay reachable through it.
 * The container is wiped and let go (the kernel keeps it while a group is in it, and
 * nobody can map into it without its fd); every group of the IOAS leaves it or stays in it
 * stale, and the IOAS starts a new container for whoever joins next.
 */
static void abandon(BackendVfio *v, VfioContext *c, VfioIoas *ioas) {
        container_wipe(v, ioas->container, ioas);
        for (size_t i = 0; i < c->n_groups; i++) {
                VfioGroup *o = c->groups[i];

                if (o->ioas != ioas)
                        continue;
                o->ioas = NULL;
                if (unset_container(v, o) == -EBUSY)
                        o->stale = true;
        }
        ioas->n_groups = 0;
        vfio_sys_close(v, ioas->container);
        ioas->container = -EBADF;
        vfio_ioas_set_domain(ioas, NULL, 0, 1);
        ioas_set_dirty_info(ioas, NULL);
}

int vfio_container_leave(VfioContext *c, VfioGroup *g, VfioLeave how) {
        BackendVfio *v = vfio_of(c);
        VfioIoas *ioas = g->ioas;
        ContainerInfo info = {};

        if (!ioas)
                return 0;
        if (unset_container(v, g) == -EBUSY) {
                if (how == VFIO_LEAVE_TRY || (how == VFIO_LEAVE_REVOKE && ioas->n_groups > 1))
                        return -EBUSY;
                abandon(v, c, ioas);
                return 0;
        }
        g->ioas = NULL;
        if (--ioas->n_groups == 0) {
                vfio_sys_close(v, ioas->container);
                ioas->container = -EBADF;
                vfio_ioas_set_domain(ioas, NULL, 0, 1);
                ioas_set_dirty_info(ioas, NULL);
        } else if (container_info(v, ioas->container, &info, NULL) >= 0)
                /* The ranges the departed group reserved are usable again. */
                vfio_ioas_set_domain(ioas, info.usable, info.n_usable, info.pgsize);
        return 0;
}

void vfio_container_release(VfioContext *c, VfioIoas *ioas) {
        BackendVfio *v = vfio_of(c);

        if (ioas->container < 0)
                return;
        /* First the mappings: a group a client keeps alive must reach nothing. */
        container_wipe(v, ioas->container, ioas);
        for (size_t i = 0; i < c->n_groups; i++)
                if (c->groups[i]->ioas == ioas) {
                        (void)unset_container(v, c->groups[i]);
                        c->groups[i]->ioas = NULL;
                }
        ioas->n_groups = 0;
        vfio_sys_close(v, ioas->container);
        ioas->container = -EBADF;
        vfio_ioas_set_domain(ioas, NULL, 0, 1);
        ioas_set_dirty_info(ioas, NULL);
}

int vfio_container_dirty(BackendVfio *v, VfioIoas *ioas, uint32_t flags, void *extra,
                         size_t extra_size, Error *err) {
        _cleanup_free_ uint8_t *buf = NULL;
        struct iommud_vfio_iommu_type1_dirty_bitmap *d;
        int r;

        buf = calloc(1, sizeof(*d) + extra_size);
        if (!buf)
                return error_set(err, -ENOMEM, "out of memory");
        d = (void *)buf;
        d->argsz = (uint32_t)(sizeof(*d) + extra_size);
        d->flags = flags;
        if (extra_size > 0)
                memcpy(buf + sizeof(*d), extra, extra_size);
        r = vfio_sys_ioctl(v, ioas->container, IOMMUD_VFIO_IOMMU_DIRTY_PAGES, d);
        if (r == -EINVAL)
                return error_set(err, r,
                                 "the container refused the dirty page request for IOAS %" PRIu32
                                 " (logging off, or a range or page size it does not track)",
                                 ioas->id);
        if (r < 0)
                return vfio_error(err, r, "VFIO_IOMMU_DIRTY_PAGES");
        return 0;
}
