/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * IOMMU_IOAS_MAP_FILE on kernels that do not have it (before 6.13): the memory fd is mapped
 * into the daemon and its VA given to IOMMU_IOAS_MAP.  The mapping must outlive every area
 * the kernel made of it (IOAS_COPY makes more), so each one is tracked per IOAS.
 *
 * Mapping a file costs an mmap and, when the kernel pins through the new VA, a page fault
 * per page: more than the IOMMU_IOAS_MAP itself.  So a context keeps its mappings in a cache
 * keyed by the file (st_dev, st_ino: the mapping holds the file, so the pair cannot name
 * another file while the entry lives) and the range they cover.  A later map of a range an
 * entry covers, with no more access than it was made with, reuses it.  The kernel pins
 * through the VA whenever a domain or access is added later (pages.c pins through the
 * area's user address), so a mapping stays as long as an area uses it; once none does it is
 * kept idle, at most fallback_idle_max of them per context, the oldest dropped first, all of
 * them with the context.
 */

#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "iommufd-abi.h"
#include "iova-tree.h"
#include "kernel-private.h"

/* Linux 5.1; glibc's <fcntl.h> has the older seals only. */
#ifndef F_SEAL_FUTURE_WRITE
#define F_SEAL_FUTURE_WRITE 0x0010
#endif

/* One mmap of a memory fd, shared by the areas mapped from it and the copies of those. */
struct FallbackMap {
        unsigned n_ref;  /* areas using it; 0: idle, in the cache only */
        void *addr;
        size_t length;
        bool cacheable;  /* a regular file: (dev, ino) names it */
        dev_t dev;
        ino_t ino;
        uint64_t offset; /* of addr in the file */
        int prot;
        FallbackMap *prev, *next; /* the context's list, most recently used first */
};

/* One area the kernel maps through a FallbackMap. */
typedef struct FallbackArea {
        IovaNode node;
        FallbackMap *map;
} FallbackArea;

/* The fallback areas of one IOAS. */
struct IoasAreas {
        uint32_t ioas_id;
        IovaTree areas;
};

/* ---- bookkeeping ---- */

static void fallback_map_unlink(KernelContext *c, FallbackMap *m) {
        if (m->prev)
                m->prev->next = m->next;
        else if (c->maps == m)
                c->maps = m->next;
        if (m->next)
                m->next->prev = m->prev;
        m->prev = m->next = NULL;
}

static void fallback_map_push(KernelContext *c, FallbackMap *m) {
        m->prev = NULL;
        m->next = c->maps;
        if (c->maps)
                c->maps->prev = m;
        c->maps = m;
}

static void fallback_map_free(KernelContext *c, FallbackMap *m) {
        BackendKernel *k = kernel_of(&c->base);

        fallback_map_unlink(c, m);
        (void)k->sys->munmap(k->userdata, m->addr, m->length);
        k->n_fallback_maps--;
        free(m);
}

/* Drops the least recently used idle mappings until at most max are left. */
static void fallback_cache_trim(KernelContext *c, size_t max) {
        FallbackMap *m = c->maps, *last = NULL;

        for (; m; m = m->next)
                last = m;
        for (m = last; m && c->n_idle > max;) {
                FallbackMap *prev = m->prev;

                if (m->n_ref == 0) {
                        fallback_map_free(c, m);
                        c->n_idle--;
                }
                m = prev;
        }
}

static void fallback_map_unref(KernelContext *c, FallbackMap *m) {
        if (!m || --m->n_ref > 0)
                return;
        if (!m->cacheable) {
                fallback_map_free(c, m);
                return;
        }
        c->n_idle++;
        fallback_cache_trim(c, kernel_of(&c->base)->fallback_idle_max);
}

static void fallback_map_ref(KernelContext *c, FallbackMap *m) {
        if (m->n_ref++ == 0 && m->cacheable)
                c->n_idle--;
}

static void fallback_area_free(KernelContext *c, FallbackArea *f) {
        fallback_map_unref(c, f->map);
        free(f);
}

static void fallback_area_free_cb(IovaNode *n, void *userdata) {
        fallback_area_free(userdata, (FallbackArea *)n);
}

static IoasAreas *ioas_areas_find(KernelContext *c, uint32_t ioas_id) {
        if (!c->ioas)
                return NULL;
        FOREACH_ARRAY(a, c->ioas, c->n_ioas)
                if (a->ioas_id == ioas_id)
                        return a;
        return NULL;
}

static IoasAreas *ioas_areas_get(KernelContext *c, uint32_t ioas_id) {
        IoasAreas *a = ioas_areas_find(c, ioas_id), *n;

        if (a)
                return a;
        n = reallocarray(c->ioas, c->n_ioas + 1, sizeof(*c->ioas));
        if (!n)
                return NULL;
        c->ioas = n;
        c->ioas[c->n_ioas] = (IoasAreas){ .ioas_id = ioas_id, .areas = IOVA_TREE_INIT };
        return &c->ioas[c->n_ioas++];
}

void kernel_fallback_release_inside(KernelContext *c, uint32_t ioas_id, uint64_t first,
                                    uint64_t last) {
        IoasAreas *a = ioas_areas_find(c, ioas_id);
        IovaNode *n;

        if (!a)
                return;
        n = iova_tree_first_overlap(&a->areas, first, last);
        while (n && n->start <= last) {
                IovaNode *next = iova_tree_next(&a->areas, n);

                /* Only the first and the last area can stick out of the range. */
                if (n->start >= first && n->last <= last) {
                        iova_tree_remove(&a->areas, n);
                        fallback_area_free(c, (FallbackArea *)n);
                }
                n = next;
        }
}

/*
 * Releases tracked areas that overlap [first, last] in any way.  Used before
 * recording a new area: the kernel just accepted a mapping there, so whatever
 * was recorded there is already gone from the kernel (a failed, non-atomic
 * unmap can leave such stale entries behind).
 */
static void ioas_areas_release_overlapping(KernelContext *c, uint32_t ioas_id, uint64_t first,
                                           uint64_t last) {
        IoasAreas *a = ioas_areas_find(c, ioas_id);
        IovaNode *n;

        if (!a)
                return;
        while ((n = iova_tree_first_overlap(&a->areas, first, last))) {
                iova_tree_remove(&a->areas, n);
                fallback_area_free(c, (FallbackArea *)n);
        }
}

static int ioas_areas_add(KernelContext *c, uint32_t ioas_id, uint64_t iova, uint64_t length,
                          FallbackMap *m) {
        uint64_t last = iova + length - 1;
        IoasAreas *a;
        FallbackArea *f;
        int r;

        ioas_areas_release_overlapping(c, ioas_id, iova, last);
        a = ioas_areas_get(c, ioas_id);
        if (!a)
                return -ENOMEM;
        f = malloc(sizeof(*f));
        if (!f)
                return -ENOMEM;
        *f = (FallbackArea){ .node = { .start = iova, .last = last }, .map = m };
        /* Nothing overlaps any more: only -ENOMEM can be left. */
        r = iova_tree_insert(&a->areas, &f->node);
        if (r < 0) {
                free(f);
                return r;
        }
        fallback_map_ref(c, m);
        return 0;
}

static const FallbackArea *ioas_areas_containing(KernelContext *c, uint32_t ioas_id,
                                                 uint64_t iova, uint64_t length) {
        IoasAreas *a = ioas_areas_find(c, ioas_id);
        IovaNode *n;

        if (!a || length == 0)
                return NULL;
        n = iova_tree_find(&a->areas, iova);
        if (!n || iova + (length - 1) > n->last)
                return NULL;
        return (const FallbackArea *)n;
}

void kernel_fallback_drop(KernelContext *c, uint32_t ioas_id) {
        kernel_fallback_release_inside(c, ioas_id, 0, UINT64_MAX);
}

void kernel_fallback_release_all(KernelContext *c) {
        FOREACH_ARRAY(a, c->ioas, c->n_ioas)
                iova_tree_clear(&a->areas, fallback_area_free_cb, c);
        free(c->ioas);
        c->ioas = NULL;
        c->n_ioas = 0;
        fallback_cache_trim(c, 0);
}

/* ---- mapping ---- */

/*
 * The largest alignment iommufd gives an automatic IOVA: iopt_alloc_iova() caps
 * min(roundup_pow_of_two(length), lowest set bit of the source) at HPAGE_SIZE (2 MiB on
 * x86-64 and 4K-page arm64) on kernels with transparent huge pages, at PAGE_SIZE without.
 */
#define FALLBACK_ALIGN_MAX (UINT64_C(2) << 20)

/* The smallest power of two >= v (v >= 1); 2^63 when v is larger. */
static uint64_t roundup_pow2(uint64_t v) {
        if (v > (UINT64_C(1) << 63))
                return UINT64_C(1) << 63;
        return v <= 1 ? 1 : UINT64_C(1) << (64 - __builtin_clzll(v - 1));
}

/*
 * Maps [offset, offset+length) of fd (offset page aligned) at an address congruent to offset
 * modulo align (a power of two, at least a page).  iommufd picks an automatic IOVA from the
 * low bits of the user VA it is given, while IOMMU_IOAS_MAP_FILE and the model use the file
 * offset: a VA with the offset's low bits makes both give the same alignment.  The address
 * space is reserved with slack first, the file mapped over it and the slack trimmed.
 */
static int fallback_mmap(BackendKernel *k, size_t length, int prot, int fd, uint64_t offset,
                         uint64_t align, void **ret_addr) {
        uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
        size_t mlen, resv_len;
        uintptr_t resv, at;
        void *p, *addr = NULL;
        int r;

        if (align <= page)
                return k->sys->mmap(k->userdata, NULL, length, prot, fd, offset, ret_addr);
        mlen = (length + page - 1) & ~(page - 1);
        if (mlen < length || ADD_OVERFLOW(mlen, (size_t)(align - page), &resv_len))
                return -EOVERFLOW;
        p = mmap(NULL, resv_len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (p == MAP_FAILED)
                return negative_errno();
        resv = (uintptr_t)p;
        at = resv + (uintptr_t)((offset - resv) & (align - 1));
        r = k->sys->mmap(k->userdata, (void *)at, length, prot, fd, offset, &addr);
        if (r < 0) {
                (void)munmap(p, resv_len);
                return r;
        }
        /* The slack on either side is still the PROT_NONE reservation: give it back. */
        if (at > resv)
                (void)munmap(p, at - resv);
        if (resv + resv_len > at + mlen)
                (void)munmap((void *)(at + mlen), resv + resv_len - (at + mlen));
        *ret_addr = addr;
        return 0;
}

/*
 * A fallback mapping without a record in the area table could never be released (the mmap
 * would outlive it or be freed under the device): undo it in the kernel.  Best effort, as the
 * caller is already failing with the reason that matters.
 */
void kernel_fallback_unmap_unrecorded(KernelContext *c, uint32_t ioas_id, uint64_t iova,
                                      uint64_t length) {
        struct iommud_ioas_unmap u = {
                .size = sizeof(u),
                .ioas_id = ioas_id,
                .iova = iova,
                .length = length,
        };

        (void)sys_ioctl(c, c->iommufd, IOMMUD_IOMMU_IOAS_UNMAP, &u);
}

/*
 * IOMMU_IOAS_MAP_FILE refuses a range past the end of the file; an mmap would not, and
 * pinning would fail later and less clearly.  Say it up front.  Checked on every map, cached
 * or not: the file may have shrunk since.
 */
static int fallback_check_range(int fd, uint64_t start, uint64_t length, struct stat *ret_st,
                                Error *err) {
        uint64_t end;

        if (length == 0)
                return error_set(err, -EINVAL, "cannot map 0 bytes");
        if (fstat(fd, ret_st) < 0)
                return error_set(err, negative_errno(), "memory fd %d: %m", fd);
        if (S_ISREG(ret_st->st_mode) &&
            (ADD_OVERFLOW(start, length, &end) || end > (uint64_t)ret_st->st_size))
                return error_set(err, -EINVAL,
                                 "offset 0x%" PRIx64 " + length 0x%" PRIx64
                                 " extends past the end of memory fd %d (0x%" PRIx64 " bytes)",
                                 start, length, fd, (uint64_t)ret_st->st_size);
        return 0;
}

/*
 * Whether a new mapping of fd with prot would be allowed: the mmap checks the open file
 * description's access mode and, for a shared writeable mapping, the file's write seals.
 */
static bool fallback_fd_allows(int fd, int prot) {
        int acc = fcntl(fd, F_GETFL), seals;

        if (acc < 0 || (acc & O_ACCMODE) == O_WRONLY)
                return false;
        if (!(prot & PROT_WRITE))
                return true;
        if ((acc & O_ACCMODE) != O_RDWR)
                return false;
        seals = fcntl(fd, F_GET_SEALS);
        return seals < 0 || !(seals & (F_SEAL_WRITE | F_SEAL_FUTURE_WRITE));
}

/*
 * A cached mapping of the file that covers [offset, offset+length), has at least prot and
 * puts offset at a VA congruent to it modulo align.  The fd must allow prot itself: the
 * mapping may have been made through another open file description of the same file, or
 * before a write seal.  A context whose caller checks that (fds_checked) is not asked twice.
 */
static FallbackMap *fallback_cache_find(KernelContext *c, int fd, const struct stat *st,
                                        uint64_t offset, uint64_t length, int prot,
                                        uint64_t align) {
        if (!S_ISREG(st->st_mode))
                return NULL;
        for (FallbackMap *m = c->maps; m; m = m->next) {
                if (!m->cacheable || m->dev != st->st_dev || m->ino != st->st_ino ||
                    (prot & ~m->prot) || offset < m->offset ||
                    offset - m->offset > m->length || length > m->length - (offset - m->offset) ||
                    (((uintptr_t)m->addr - m->offset) & (align - 1)))
                        continue;
                return c->base.fds_checked || fallback_fd_allows(fd, prot) ? m : NULL;
        }
        return NULL;
}

/*
 * A mapping of [offset, offset+length) of fd for one more area, with one reference held for
 * the caller: a cached one when there is one, a new one otherwise.
 */
static int fallback_map_get(KernelContext *c, int fd, const struct stat *st, uint64_t offset,
                            uint64_t length, int prot, uint64_t align, FallbackMap **ret,
                            Error *err) {
        BackendKernel *k = kernel_of(&c->base);
        FallbackMap *m = fallback_cache_find(c, fd, st, offset, length, prot, align);
        void *addr = NULL;
        int r;

        if (m) {
                fallback_map_ref(c, m);
                fallback_map_unlink(c, m);
                fallback_map_push(c, m);
                *ret = m;
                return 0;
        }
        r = fallback_mmap(k, (size_t)length, prot, fd, offset, align, &addr);
        if (r < 0)
                return error_set(err, r,
                                 "cannot map memory fd %d at offset 0x%" PRIx64 " (0x%" PRIx64
                                 " bytes) for IOMMU_IOAS_MAP: %s",
                                 fd, offset, length, strerror(-r));
        m = calloc(1, sizeof(*m));
        if (!m) {
                (void)k->sys->munmap(k->userdata, addr, (size_t)length);
                return error_set(err, -ENOMEM, "out of memory");
        }
        *m = (FallbackMap){
                .n_ref = 1,
                .addr = addr,
                .length = (size_t)length,
                .cacheable = S_ISREG(st->st_mode),
                .dev = st->st_dev,
                .ino = st->st_ino,
                .offset = offset,
                .prot = prot,
        };
        fallback_map_push(c, m);
        k->n_fallback_maps++;
        *ret = m;
        return 0;
}

int kernel_fallback_map_file(KernelContext *c, uint32_t ioas_id, uint32_t flags, int fd,
                             uint64_t start, uint64_t length, uint64_t *iova, Error *err) {
        uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE), aligned, delta, maplen, align;
        FallbackMap *m = NULL;
        struct stat st;
        int prot = 0, r;

        r = fallback_check_range(fd, start, length, &st, err);
        if (r < 0)
                return r;
        aligned = start & ~(page - 1);
        delta = start - aligned;
        if (ADD_OVERFLOW(length, delta, &maplen) || maplen > SIZE_MAX)
                return error_set(err, -EOVERFLOW,
                                 "offset 0x%" PRIx64 " + length 0x%" PRIx64 " overflows", start,
                                 length);
        if (flags & IOMMUD_IOMMU_IOAS_MAP_READABLE)
                prot |= PROT_READ;
        if (flags & IOMMUD_IOMMU_IOAS_MAP_WRITEABLE)
                prot |= PROT_WRITE;

        /*
         * The contents are never touched: the mapping only gives the kernel a VA to pin.  Its
         * low bits are the offset's up to the alignment an automatic IOVA can get, so the
         * kernel aligns the IOVA as IOMMU_IOAS_MAP_FILE would.
         */
        align = MIN(roundup_pow2(length), FALLBACK_ALIGN_MAX);
        r = fallback_map_get(c, fd, &st, aligned, maplen, prot, align, &m, err);
        if (r < 0)
                return r;

        struct iommud_ioas_map map = {
                .size = sizeof(map),
                .flags = flags,
                .ioas_id = ioas_id,
                .user_va = (uint64_t)(uintptr_t)m->addr + (aligned - m->offset) + delta,
                .length = length,
                .iova = (flags & IOMMUD_IOMMU_IOAS_MAP_FIXED_IOVA) ? *iova : 0,
        };
        r = sys_ioctl(c, c->iommufd, IOMMUD_IOMMU_IOAS_MAP, &map);
        if (r < 0) {
                fallback_map_unref(c, m);
                return kernel_map_error(err, r, "IOMMU_IOAS_MAP", ioas_id, flags, length,
                                        map.iova);
        }
        r = ioas_areas_add(c, ioas_id, map.iova, length, m);
        fallback_map_unref(c, m);
        if (r < 0) {
                kernel_fallback_unmap_unrecorded(c, ioas_id, map.iova, length);
                return error_set(err, r, "out of memory");
        }
        *iova = map.iova;
        return 0;
}

int kernel_fallback_copied(KernelContext *c, uint32_t src_ioas_id, uint64_t src_iova,
                           uint32_t dst_ioas_id, uint64_t dst_iova, uint64_t length) {
        const FallbackArea *src = ioas_areas_containing(c, src_ioas_id, src_iova, length);
        FallbackMap *m;
        int r;

        if (!src)
                return 0;
        m = src->map;
        /* Hold it across the insertion, which may release stale entries. */
        fallback_map_ref(c, m);
        r = ioas_areas_add(c, dst_ioas_id, dst_iova, length, m);
        fallback_map_unref(c, m);
        return r;
}
