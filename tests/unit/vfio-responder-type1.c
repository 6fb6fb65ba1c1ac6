/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* The type1 IOMMU driver of a responder container (drivers/vfio/vfio_iommu_type1.c). */

#include <string.h>

#include "macros.h"
#include "vfio-abi.h"
#include "vfio-responder-internal.h"

/* ---- the IOVA list ---- */

/* Removes [s, l] from the sorted list v (capacity grows by at most one per call). */
static int ranges_subtract(IovaRange **v, size_t *n, uint64_t s, uint64_t l) {
        IovaRange *out = calloc(*n * 2 + 1, sizeof(IovaRange));
        size_t k = 0;

        if (!out)
                return -ENOMEM;
        for (size_t i = 0; i < *n; i++) {
                IovaRange x = (*v)[i];

                if (x.last < s || x.start > l) {
                        out[k++] = x;
                        continue;
                }
                if (x.start < s)
                        out[k++] = (IovaRange){ x.start, s - 1 };
                if (x.last > l)
                        out[k++] = (IovaRange){ l + 1, x.last };
        }
        free(*v);
        *v = out;
        *n = k;
        return 0;
}

int rtype1_compute_domain(VfioResponder *r, RContainer *c, IovaRange **ret, size_t *ret_n,
                          uint64_t *ret_pgsizes) {
        IovaRange *v = calloc(1, sizeof(IovaRange));
        uint64_t pgsizes = UINT64_MAX;
        size_t n = 1;

        if (!v)
                return -ENOMEM;
        v[0] = (IovaRange){ 0, UINT64_MAX };
        for (size_t i = 0; i < c->n_groups; i++) {
                const SimGroup *g = c->groups[i]->sim;
                const SimIommu *m = &r->topo->iommus[g->iommu_index];
                int k = 0;

                pgsizes &= m->page_sizes;
                if (m->aperture_start > 0)
                        k = ranges_subtract(&v, &n, 0, m->aperture_start - 1);
                if (k >= 0 && m->aperture_last < UINT64_MAX)
                        k = ranges_subtract(&v, &n, m->aperture_last + 1, UINT64_MAX);
                /* type1 keeps direct-relaxable regions usable (vfio_iommu_resv_exclude). */
                for (size_t j = 0; k >= 0 && j < g->n_regions; j++)
                        if (g->regions[j].type != REGION_DIRECT_RELAXABLE)
                                k = ranges_subtract(&v, &n, g->regions[j].start,
                                                    g->regions[j].last);
                if (k < 0) {
                        free(v);
                        return k;
                }
        }
        *ret = v;
        *ret_n = n;
        *ret_pgsizes = pgsizes & ~(uint64_t)4095;
        return 0;
}

bool rtype1_dmas_inside(const RContainer *c, const IovaRange *iovas, size_t n) {
        for (size_t i = 0; i < c->n_dmas; i++) {
                bool in = false;

                for (size_t k = 0; k < n && !in; k++)
                        in = iovas[k].start <= c->dmas[i].iova &&
                             c->dmas[i].iova + c->dmas[i].size - 1 <= iovas[k].last;
                if (!in)
                        return false;
        }
        return true;
}

static uint64_t pgsize_of(const RContainer *c) {
        return c->pgsize_bitmap & -c->pgsize_bitmap;
}

/* The mapping containing iova, or NULL. */
static RDma *dma_at(RContainer *c, uint64_t iova) {
        for (size_t i = 0; i < c->n_dmas; i++)
                if (c->dmas[i].iova <= iova && iova - c->dmas[i].iova < c->dmas[i].size)
                        return &c->dmas[i];
        return NULL;
}

/* DIRTY_BITMAP_BYTES(): whole 64-bit words. */
static uint64_t bitmap_bytes(uint64_t npages) {
        return (npages + 63) / 64 * 8;
}

static void set_bits(uint64_t *bits, uint64_t from, uint64_t n) {
        for (uint64_t p = from; p < from + n; p++)
                bits[p / 64] |= UINT64_C(1) << (p % 64);
}

/* ---- GET_INFO ---- */

typedef struct Caps {
        uint8_t buf[1024];
        size_t size;
        size_t last; /* offset of the last capability, for its next */
} Caps;

static void caps_add(VfioResponder *r, Caps *caps, const void *cap, size_t size) {
        size_t at = caps->size, aligned = r->packed_caps ? size : (size + 7) & ~(size_t)7;
        struct iommud_vfio_info_cap_header h;

        memcpy(caps->buf + at, cap, size);
        if (at > 0) {
                memcpy(&h, caps->buf + caps->last, sizeof(h));
                h.next = (uint32_t)at;
                memcpy(caps->buf + caps->last, &h, sizeof(h));
        }
        caps->last = at;
        caps->size += aligned;
}

static void caps_build(VfioResponder *r, RContainer *c, Caps *caps) {
        struct iommud_vfio_iommu_type1_info_cap_migration mig = {
                .header = { .id = IOMMUD_VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION, .version = 1 },
                .pgsize_bitmap = pgsize_of(c),
                .max_dirty_bitmap_size = r->max_dirty_bitmap_size,
        };
        struct iommud_vfio_iommu_type1_info_dma_avail avail = {
                .header = { .id = IOMMUD_VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL, .version = 1 },
                .avail = r->dma_entry_limit - (uint32_t)c->n_dmas,
        };
        uint8_t iova[16 + 16 * 32];
        struct iommud_vfio_iommu_type1_info_cap_iova_range head = {
                .header = { .id = IOMMUD_VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE, .version = 1 },
                .nr_iovas = (uint32_t)MIN(c->n_iovas, (size_t)32),
        };

        if (!r->no_migration_cap)
                caps_add(r, caps, &mig, sizeof(mig));
        caps_add(r, caps, &avail, sizeof(avail));
        memcpy(iova, &head, sizeof(head));
        for (size_t i = 0; i < head.nr_iovas; i++) {
                struct iommud_vfio_iova_range x = { c->iovas[i].start, c->iovas[i].last };

                memcpy(iova + sizeof(head) + i * sizeof(x), &x, sizeof(x));
        }
        caps_add(r, caps, iova, sizeof(head) + head.nr_iovas * 16);
}

static int get_info(VfioResponder *r, RContainer *c, void *arg) {
        struct iommud_vfio_iommu_type1_info info = {};
        Caps caps = {};
        size_t minsz = IOMMUD_VFIO_INFO_MINSZ, out;

        memcpy(&info, arg, minsz);
        if (info.argsz < minsz)
                return -EINVAL;
        out = MIN((size_t)info.argsz, sizeof(info));
        info.flags = IOMMUD_VFIO_IOMMU_INFO_PGSIZES | IOMMUD_VFIO_IOMMU_INFO_CAPS;
        info.iova_pgsizes = c->pgsize_bitmap;
        info.cap_offset = 0;
        caps_build(r, c, &caps);
        if (info.argsz < sizeof(info) + caps.size)
                info.argsz = (uint32_t)(sizeof(info) + caps.size);
        else {
                /* vfio_info_cap_shift(): offsets become relative to the whole buffer. */
                for (size_t off = 0;;) {
                        struct iommud_vfio_info_cap_header h;
                        size_t next;

                        memcpy(&h, caps.buf + off, sizeof(h));
                        if (h.next == 0)
                                break;
                        next = h.next;
                        h.next += sizeof(info);
                        memcpy(caps.buf + off, &h, sizeof(h));
                        off = next;
                }
                memcpy((uint8_t *)arg + sizeof(info), caps.buf, caps.size);
                info.cap_offset = sizeof(info);
        }
        memcpy(arg, &info, out);
        return 0;
}

/* ---- MAP_DMA / UNMAP_DMA ---- */

static bool iova_valid(const RContainer *c, uint64_t iova, uint64_t last) {
        for (size_t i = 0; i < c->n_iovas; i++)
                if (c->iovas[i].start <= iova && last <= c->iovas[i].last)
                        return true;
        return false;
}

static int map_dma(VfioResponder *r, RContainer *c, void *arg) {
        struct iommud_vfio_iommu_type1_dma_map m;
        const uint32_t mask = IOMMUD_VFIO_DMA_MAP_FLAG_READ | IOMMUD_VFIO_DMA_MAP_FLAG_WRITE |
                              IOMMUD_VFIO_DMA_MAP_FLAG_VADDR;
        uint64_t pgsize = pgsize_of(c);
        RDma *v;
        size_t pos = 0;

        memcpy(&m, arg, IOMMUD_VFIO_MAP_MINSZ);
        if (m.argsz < IOMMUD_VFIO_MAP_MINSZ || (m.flags & ~mask))
                return -EINVAL;
        /* Updating a vaddr is not modelled: iommud never invalidates one. */
        if (!(m.flags & (IOMMUD_VFIO_DMA_MAP_FLAG_READ | IOMMUD_VFIO_DMA_MAP_FLAG_WRITE)) ||
            (m.flags & IOMMUD_VFIO_DMA_MAP_FLAG_VADDR))
                return -EINVAL;
        if (!m.size || ((m.size | m.iova | m.vaddr) & (pgsize - 1)))
                return -EINVAL;
        if (m.iova + m.size - 1 < m.iova || m.vaddr + m.size - 1 < m.vaddr)
                return -EINVAL;
        for (size_t i = 0; i < c->n_dmas; i++)
                if (c->dmas[i].iova <= m.iova + m.size - 1 &&
                    m.iova <= c->dmas[i].iova + c->dmas[i].size - 1)
                        return -EEXIST;
        if (c->n_dmas >= r->dma_entry_limit)
                return -ENOSPC;
        if (!iova_valid(c, m.iova, m.iova + m.size - 1))
                return -EINVAL;
        v = reallocarray(c->dmas, c->n_dmas + 1, sizeof(*v));
        if (!v)
                return -ENOMEM;
        c->dmas = v;
        while (pos < c->n_dmas && v[pos].iova < m.iova)
                pos++;
        memmove(v + pos + 1, v + pos, (c->n_dmas - pos) * sizeof(*v));
        v[pos] = (RDma){ m.iova, m.size, m.vaddr, m.flags };
        c->n_dmas++;
        r->n_map_dma++;
        return 0;
}

static void dma_remove(RContainer *c, size_t i) {
        memmove(c->dmas + i, c->dmas + i + 1, (c->n_dmas - i - 1) * sizeof(*c->dmas));
        c->n_dmas--;
}

static int unmap_dma(VfioResponder *r, RContainer *c, void *arg) {
        struct iommud_vfio_iommu_type1_dma_unmap u;
        const uint32_t mask = IOMMUD_VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP |
                              IOMMUD_VFIO_DMA_UNMAP_FLAG_ALL | IOMMUD_VFIO_DMA_UNMAP_FLAG_VADDR;
        uint64_t pgsize = pgsize_of(c), size, unmapped = 0;
        struct iommud_vfio_bitmap bm = {};
        bool all;
        RDma *d;

        memcpy(&u, arg, IOMMUD_VFIO_UNMAP_MINSZ);
        if (u.argsz < IOMMUD_VFIO_UNMAP_MINSZ || (u.flags & ~mask))
                return -EINVAL;
        all = u.flags & IOMMUD_VFIO_DMA_UNMAP_FLAG_ALL;
        if ((all && r->no_unmap_all) || (u.flags & IOMMUD_VFIO_DMA_UNMAP_FLAG_VADDR))
                return -EINVAL; /* an older kernel; updating a vaddr is not modelled */
        if (u.flags & IOMMUD_VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP) {
                if (all || u.argsz < IOMMUD_VFIO_UNMAP_MINSZ + sizeof(bm))
                        return -EINVAL;
                memcpy(&bm, (uint8_t *)arg + IOMMUD_VFIO_UNMAP_MINSZ, sizeof(bm));
                /* vfio_dma_do_unmap(): logging on, the smallest page, room for every page. */
                if (!c->dirty_logging || bm.pgsize != pgsize || !u.size ||
                    (u.size & (pgsize - 1)) || bitmap_bytes(u.size / pgsize) > bm.size ||
                    !bm.data)
                        return -EINVAL;
        }
        if (u.iova & (pgsize - 1))
                return -EINVAL;
        if (all) {
                if (u.iova || u.size)
                        return -EINVAL;
                size = UINT64_MAX;
        } else {
                size = u.size;
                if (!size || (size & (pgsize - 1)) || u.iova + size - 1 < u.iova)
                        return -EINVAL;
        }
        /* v2: a range that cuts a mapping is refused before anything goes. */
        if (c->type == IOMMUD_VFIO_TYPE1v2_IOMMU && !all) {
                d = dma_at(c, u.iova);
                if (d && d->iova != u.iova)
                        return -EINVAL;
                d = dma_at(c, u.iova + size - 1);
                if (d && d->iova + d->size != u.iova + size)
                        return -EINVAL;
        }
        for (size_t i = 0; i < c->n_dmas;) {
                d = &c->dmas[i];
                if (d->iova + d->size - 1 < u.iova) {
                        i++;
                        continue;
                }
                if (d->iova - u.iova > size - 1 ||
                    (c->type != IOMMUD_VFIO_TYPE1v2_IOMMU && u.iova > d->iova))
                        break;
                unmapped += d->size;
                /* Every pinned page of what goes is dirty (no pinning scope). */
                if (bm.data)
                        set_bits((uint64_t *)(uintptr_t)bm.data, (d->iova - u.iova) / pgsize,
                                 d->size / pgsize);
                dma_remove(c, i);
        }
        r->n_unmap_dma++;
        r->n_dirty_reads += bm.data != 0;
        u.size = unmapped;
        memcpy(arg, &u, IOMMUD_VFIO_UNMAP_MINSZ);
        return 0;
}

/* ---- DIRTY_PAGES ---- */

static int dirty_bitmap(VfioResponder *r, RContainer *c,
                        const struct iommud_vfio_iommu_type1_dirty_bitmap_get *g) {
        uint64_t pgsize = pgsize_of(c), npages;
        uint64_t *bits = (uint64_t *)(uintptr_t)g->bitmap.data;
        RDma *d;

        if (g->bitmap.pgsize != pgsize || (g->iova & (pgsize - 1)) || !g->size ||
            (g->size & (pgsize - 1)) || g->iova + g->size < g->iova)
                return -EINVAL;
        /* verify_bitmap_size(): no more than the capability says, and room for every page. */
        npages = g->size / pgsize;
        if (bitmap_bytes(npages) > r->max_dirty_bitmap_size ||
            bitmap_bytes(npages) > g->bitmap.size || !bits || !c->dirty_logging)
                return -EINVAL;
        /* No mapping may be cut at either end (vfio_iova_dirty_bitmap); holes are fine. */
        d = dma_at(c, g->iova);
        if (d && d->iova != g->iova)
                return -EINVAL;
        d = dma_at(c, g->iova + g->size - 1);
        if (d && d->iova + d->size != g->iova + g->size)
                return -EINVAL;
        r->n_dirty_reads++;
        /* Without page pinning scope every mapped page counts as dirty, at every read. */
        for (size_t i = 0; i < c->n_dmas; i++) {
                d = &c->dmas[i];
                if (d->iova >= g->iova && d->iova - g->iova < g->size)
                        set_bits(bits, (d->iova - g->iova) / pgsize, d->size / pgsize);
        }
        return 0;
}

static int dirty_pages(VfioResponder *r, RContainer *c, void *arg) {
        struct iommud_vfio_iommu_type1_dirty_bitmap d;
        struct iommud_vfio_iommu_type1_dirty_bitmap_get g;
        const uint32_t mask = IOMMUD_VFIO_IOMMU_DIRTY_PAGES_FLAG_START |
                              IOMMUD_VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP |
                              IOMMUD_VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP;

        if (c->type != IOMMUD_VFIO_TYPE1v2_IOMMU)
                return -EACCES;
        memcpy(&d, arg, IOMMUD_VFIO_DIRTY_MINSZ);
        if (d.argsz < IOMMUD_VFIO_DIRTY_MINSZ || (d.flags & ~mask) ||
            __builtin_popcount(d.flags) != 1)
                return -EINVAL;
        switch (d.flags) {
        case IOMMUD_VFIO_IOMMU_DIRTY_PAGES_FLAG_START:
                c->dirty_logging = true;
                return 0;
        case IOMMUD_VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP:
                c->dirty_logging = false;
                return 0;
        default:
                if (d.argsz < IOMMUD_VFIO_DIRTY_MINSZ + sizeof(g))
                        return -EINVAL;
                memcpy(&g, (uint8_t *)arg + IOMMUD_VFIO_DIRTY_MINSZ, sizeof(g));
                return dirty_bitmap(r, c, &g);
        }
}

int rtype1_ioctl(VfioResponder *r, RContainer *c, unsigned long request, void *arg) {
        if (!arg)
                return -EFAULT;
        switch (request) {
        case IOMMUD_VFIO_IOMMU_GET_INFO:
                return get_info(r, c, arg);
        case IOMMUD_VFIO_IOMMU_MAP_DMA:
                return map_dma(r, c, arg);
        case IOMMUD_VFIO_IOMMU_UNMAP_DMA:
                return unmap_dma(r, c, arg);
        case IOMMUD_VFIO_IOMMU_DIRTY_PAGES:
                return dirty_pages(r, c, arg);
        default:
                return -ENOTTY;
        }
}
