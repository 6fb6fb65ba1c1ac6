/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * An address space as backend-vfio keeps it.  type1 knows only the mappings of a
 * container that has a group; iommufd's IOAS exists on its own, has an allowed list and
 * picks IOVAs.  So the backend holds the truth (areas, allowed and usable ranges) and the
 * container follows it: every rule here is iommufd's (IOMMUFD.md, "What the selftests
 * pin down"), checked before the kernel is asked.
 */

#include <inttypes.h>
#include <string.h>

#include "macros.h"
#include "vfio-internal.h"

/* Sub-page offsets of sources are kept in automatic IOVAs, as iommufd does. */
#define VFIO_PAGE_SIZE UINT64_C(4096)

static const IovaRange whole_space = { 0, UINT64_MAX };

static const IovaRange *usable_ranges(const VfioIoas *ioas, size_t *ret_n) {
        if (ioas->n_usable == 0) {
                *ret_n = 1;
                return &whole_space;
        }
        *ret_n = ioas->n_usable;
        return ioas->usable;
}

/* Whether [start, last] lies inside one of the ranges. */
static bool inside_one(const IovaRange *ranges, size_t n, uint64_t start, uint64_t last) {
        for (size_t i = 0; i < n; i++)
                if (ranges[i].start <= start && last <= ranges[i].last)
                        return true;
        return false;
}

static uint64_t lowest_bit(uint64_t v) {
        return v & -v;
}

static uint64_t roundup_pow2(uint64_t v) {
        if (v > (UINT64_C(1) << 63))
                return UINT64_C(1) << 63;
        return v <= 1 ? 1 : UINT64_C(1) << (64 - __builtin_clzll(v - 1));
}

VfioIoas *vfio_ioas_new(void) {
        VfioIoas *ioas = calloc(1, sizeof(*ioas));

        if (!ioas)
                return NULL;
        ioas->container = -EBADF;
        ioas->pgsize = 1;
        ioas->areas = IOVA_TREE_INIT;
        return ioas;
}

void vfio_ioas_area_free(BackendVfio *v, VfioIoas *ioas, VfioArea *a) {
        iova_tree_remove(&ioas->areas, &a->node);
        vfio_map_unref(v, a->piece.map);
        free(a);
}

static void area_free_cb(IovaNode *n, void *userdata) {
        VfioArea *a = (VfioArea *)n;

        vfio_map_unref(userdata, a->piece.map);
        free(a);
}

void vfio_ioas_free(BackendVfio *v, VfioIoas *ioas) {
        if (!ioas)
                return;
        iova_tree_clear(&ioas->areas, area_free_cb, v);
        free(ioas->usable);
        free(ioas->allowed);
        free(ioas);
}

int vfio_ioas_check_fixed(VfioIoas *ioas, uint64_t iova, uint64_t length, Error *err) {
        const IovaRange *usable;
        uint64_t last;
        size_t n;

        if ((iova | length) & (ioas->pgsize - 1))
                return error_set(err, -EINVAL,
                                 "IOVA 0x%" PRIx64 " and length 0x%" PRIx64
                                 " must be multiples of the IOMMU page size 0x%" PRIx64
                                 " of IOAS %" PRIu32,
                                 iova, length, ioas->pgsize, ioas->id);
        if (ADD_OVERFLOW(iova, length - 1, &last))
                return error_set(err, -EOVERFLOW,
                                 "IOVA 0x%" PRIx64 " plus length 0x%" PRIx64 " overflows", iova,
                                 length);
        usable = usable_ranges(ioas, &n);
        if (!inside_one(usable, n, iova, last))
                return error_set(err, -EINVAL,
                                 "IOVA range 0x%" PRIx64 "-0x%" PRIx64
                                 " overlaps a reserved range of IOAS %" PRIu32,
                                 iova, last, ioas->id);
        if (iova_tree_first_overlap(&ioas->areas, iova, last))
                return error_set(err, -EEXIST,
                                 "IOVA range 0x%" PRIx64 "+0x%" PRIx64
                                 " overlaps an existing mapping in IOAS %" PRIu32,
                                 iova, length, ioas->id);
        return 0;
}

/*
 * iommufd's automatic IOVA: aligned to min(roundup_pow2(length), lowest set bit of the
 * source) capped at the huge page size, the source's sub-page offset kept, never 0, inside
 * the allowed ranges when there are any and outside every reserved range, lowest first.
 */
int vfio_ioas_alloc_iova(VfioIoas *ioas, uint64_t source, uint64_t length, uint64_t *ret,
                         Error *err) {
        const IovaRange bounds = { VFIO_PAGE_SIZE, UINT64_MAX - VFIO_PAGE_SIZE };
        const IovaRange *allowed = ioas->n_allowed > 0 ? ioas->allowed : &bounds, *usable;
        size_t n_allowed = ioas->n_allowed > 0 ? ioas->n_allowed : 1, n_usable;
        uint64_t align;

        if (length == 0 || (length & (ioas->pgsize - 1)))
                return error_set(err, -EINVAL,
                                 "length 0x%" PRIx64 " is not a multiple of the IOMMU page size "
                                 "0x%" PRIx64 " of IOAS %" PRIu32,
                                 length, ioas->pgsize, ioas->id);
        align = roundup_pow2(length);
        if (source != 0)
                align = MIN(align, lowest_bit(source));
        align = MIN(align, BACKEND_VFIO_AUTO_ALIGN_MAX);
        if (align < ioas->pgsize)
                return error_set(err, -EINVAL,
                                 "source 0x%" PRIx64 " is not aligned to the IOMMU page size "
                                 "0x%" PRIx64 " of IOAS %" PRIu32,
                                 source, ioas->pgsize, ioas->id);

        usable = usable_ranges(ioas, &n_usable);
        for (size_t i = 0; i < n_allowed; i++)
                for (size_t k = 0; k < n_usable; k++) {
                        uint64_t lo = MAX(MAX(allowed[i].start, usable[k].start), bounds.start);
                        uint64_t hi = MIN(MIN(allowed[i].last, usable[k].last), bounds.last);

                        if (lo > hi)
                                continue;
                        if (iova_tree_find_hole(&ioas->areas, lo, hi, length, align,
                                                source % VFIO_PAGE_SIZE, ret) == 0)
                                return 0;
                }
        return error_set(err, -ENOSPC,
                         "no free IOVA range of 0x%" PRIx64 " bytes aligned to 0x%" PRIx64
                         " in IOAS %" PRIu32,
                         length, align, ioas->id);
}

int vfio_ioas_insert(VfioIoas *ioas, uint64_t iova, uint32_t flags, const VfioPiece *p,
                     Error *err) {
        VfioArea *a = calloc(1, sizeof(*a));
        int r;

        if (!a)
                return error_set(err, -ENOMEM, "out of memory");
        a->node.start = iova;
        a->node.last = iova + p->length - 1;
        a->flags = flags;
        a->piece = *p;
        a->piece.offset = 0;
        r = iova_tree_insert(&ioas->areas, &a->node);
        if (r < 0) {
                free(a);
                if (r == -EEXIST)
                        return error_set(err, r,
                                         "IOVA range 0x%" PRIx64 "+0x%" PRIx64
                                         " overlaps an existing mapping in IOAS %" PRIu32,
                                         iova, p->length, ioas->id);
                return error_set(err, -ENOMEM, "out of memory");
        }
        if (a->piece.map)
                a->piece.map->n_ref++;
        return 0;
}

static int pieces_append(VfioPiece **pieces, size_t *n, const VfioPiece *p) {
        VfioPiece *v = reallocarray(*pieces, *n + 1, sizeof(**pieces));

        if (!v)
                return -ENOMEM;
        *pieces = v;
        v[(*n)++] = *p;
        return 0;
}

int vfio_ioas_collect(VfioIoas *ioas, uint64_t iova, uint64_t length, VfioPiece **ret,
                      size_t *ret_n, Error *err) {
        _cleanup_free_ VfioPiece *pieces = NULL;
        uint64_t last, cur = iova;
        size_t n = 0;

        if (length == 0)
                return error_set(err, -EINVAL, "cannot copy 0 bytes");
        if (ADD_OVERFLOW(iova, length - 1, &last))
                return error_set(err, -EOVERFLOW,
                                 "IOVA 0x%" PRIx64 " plus length 0x%" PRIx64 " overflows", iova,
                                 length);
        for (;;) {
                const VfioArea *a = (const VfioArea *)iova_tree_find(&ioas->areas, cur);
                uint64_t l, delta;

                if (!a)
                        return error_set(err, -ENOENT,
                                         "IOVA 0x%" PRIx64 " of IOAS %" PRIu32 " is not mapped",
                                         cur, ioas->id);
                l = MIN(a->node.last, last);
                delta = cur - a->node.start;
                if (pieces_append(&pieces, &n,
                                  &(VfioPiece){
                                          .offset = cur - iova,
                                          .length = l - cur + 1,
                                          .vaddr = a->piece.vaddr + delta,
                                          .source = a->piece.source + delta,
                                          .pages_writable = a->piece.pages_writable,
                                          .map = a->piece.map,
                                  }) < 0)
                        return error_set(err, -ENOMEM, "out of memory");
                if (l == last)
                        break;
                cur = l + 1;
        }
        *ret = TAKE_PTR(pieces);
        *ret_n = n;
        return 0;
}

static int range_cmp(const void *a, const void *b) {
        const IovaRange *x = a, *y = b;

        return x->start < y->start ? -1 : x->start > y->start;
}

int vfio_ioas_set_allowed(VfioIoas *ioas, const IovaRange *ranges, size_t n, Error *err) {
        _cleanup_free_ IovaRange *v = NULL;
        const IovaRange *usable;
        size_t n_usable;

        if (n > 0) {
                v = reallocarray(NULL, n, sizeof(*v));
                if (!v)
                        return error_set(err, -ENOMEM, "out of memory");
                memcpy(v, ranges, n * sizeof(*v));
        }
        for (size_t i = 0; i < n; i++)
                if (v[i].start >= v[i].last)
                        return error_set(err, -EINVAL,
                                         "allowed range %zu: start 0x%" PRIx64
                                         " is not below last 0x%" PRIx64,
                                         i, v[i].start, v[i].last);
        if (n > 1)
                qsort(v, n, sizeof(*v), range_cmp);
        for (size_t i = 1; i < n; i++)
                if (v[i].start <= v[i - 1].last)
                        return error_set(err, -EINVAL,
                                         "allowed ranges 0x%" PRIx64 "-0x%" PRIx64 " and 0x%" PRIx64
                                         "-0x%" PRIx64 " overlap",
                                         v[i - 1].start, v[i - 1].last, v[i].start, v[i].last);
        usable = usable_ranges(ioas, &n_usable);
        for (size_t i = 0; i < n; i++)
                if (!inside_one(usable, n_usable, v[i].start, v[i].last))
                        return error_set(err, -EADDRINUSE,
                                         "allowed range 0x%" PRIx64 "-0x%" PRIx64
                                         " intersects a reserved range of IOAS %" PRIu32,
                                         v[i].start, v[i].last, ioas->id);
        free(ioas->allowed);
        ioas->allowed = TAKE_PTR(v);
        ioas->n_allowed = n;
        return 0;
}

int vfio_ioas_check_domain(VfioIoas *ioas, const IovaRange *usable, size_t n_usable,
                           uint64_t pgsize, Error *err) {
        if (n_usable == 0) {
                usable = &whole_space;
                n_usable = 1;
        }
        for (IovaNode *n = iova_tree_first(&ioas->areas); n; n = iova_tree_next(&ioas->areas, n)) {
                const VfioArea *a = (const VfioArea *)n;

                if (a->piece.vaddr == 0)
                        return error_set(err, -EADDRINUSE,
                                         "mapping 0x%" PRIx64 "-0x%" PRIx64 " of IOAS %" PRIu32
                                         " was made before iommud restarted and cannot go into "
                                         "a new container: unmap it and map it again",
                                         n->start, n->last, ioas->id);
                if (((n->start | (n->last + 1) | a->piece.vaddr) & (pgsize - 1)) != 0)
                        return error_set(err, -EADDRINUSE,
                                         "mapping 0x%" PRIx64 "-0x%" PRIx64 " of IOAS %" PRIu32
                                         " is not aligned to the IOMMU page size 0x%" PRIx64,
                                         n->start, n->last, ioas->id, pgsize);
                if (!inside_one(usable, n_usable, n->start, n->last))
                        return error_set(err, -EADDRINUSE,
                                         "mapping 0x%" PRIx64 "-0x%" PRIx64 " of IOAS %" PRIu32
                                         " collides with a reserved region of the device",
                                         n->start, n->last, ioas->id);
        }
        for (size_t i = 0; i < ioas->n_allowed; i++)
                if (!inside_one(usable, n_usable, ioas->allowed[i].start, ioas->allowed[i].last))
                        return error_set(err, -EADDRINUSE,
                                         "allowed range 0x%" PRIx64 "-0x%" PRIx64
                                         " of IOAS %" PRIu32
                                         " intersects a reserved region of the device",
                                         ioas->allowed[i].start, ioas->allowed[i].last, ioas->id);
        return 0;
}

void vfio_ioas_set_domain(VfioIoas *ioas, IovaRange *usable, size_t n_usable, uint64_t pgsize) {
        free(ioas->usable);
        ioas->usable = usable;
        ioas->n_usable = usable ? n_usable : 0;
        ioas->pgsize = usable ? pgsize : 1;
}
