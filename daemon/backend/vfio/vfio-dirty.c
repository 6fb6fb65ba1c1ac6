/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Dirty page logging on type1 (VFIO_IOMMU_DIRTY_PAGES), behind the backend's HWPT operations.
 *
 * type1 logs per container, and an IOAS has one container at a time, whose domain already has
 * an object id (the IOAS's pseudo-HWPT): a HWPT allocated with dirty tracking over an IOAS is
 * that domain, held by its allocator until destroyed, so that the broker allocates, attaches,
 * enables, reads and destroys it as it does an iommufd HWPT.  Its logging is the container's
 * START/STOP; the IOAS remembers it and starts it again in every new container.
 *
 * What type1 reports differs from an IOMMU's dirty bits: without a device that pins pages
 * itself (vfio-pci devices never do), every page pinned for DMA is dirty at every read, and a
 * read cannot leave bits set (BACKEND_DIRTY_NO_CLEAR changes nothing when all are set again).
 * GET_BITMAP takes the one page size of the migration capability, and whole mappings: a read
 * of part of one reads it whole and keeps the bits asked for.
 */

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "assert-util.h"
#include "macros.h"
#include "vfio-abi.h"
#include "vfio-internal.h"

/* The largest bitmap read at once over several mappings (one mapping may need more). */
#define DIRTY_CHUNK_BITS (UINT64_C(1) << 24)

int vfio_dirty_hwpt_alloc(VfioContext *c, const HwptAllocArgs *a, uint32_t *ret_id, Error *err) {
        VfioIoas *ioas;

        if (!vfio_obj_find(c, a->dev_id, VFIO_OBJ_DEVICE))
                return error_set(err, -ENOENT, "device %" PRIu32 " is not bound to this context",
                                 a->dev_id);
        ioas = vfio_obj_find(c, a->pt_id, VFIO_OBJ_IOAS);
        if (!ioas)
                return error_set(err, -ENOENT,
                                 "IOAS %" PRIu32 " does not exist (a type1 page table is an "
                                 "IOAS's container)",
                                 a->pt_id);
        if (vfio_of(c)->iommu_type != IOMMUD_VFIO_TYPE1v2_IOMMU)
                return error_set(err, -EOPNOTSUPP,
                                 "dirty tracking needs the type1 v2 IOMMU; this kernel offers "
                                 "type1 v1 only");
        if (ioas->container >= 0 && !ioas->can_log_dirty)
                return error_set(err, -EOPNOTSUPP,
                                 "the container of IOAS %" PRIu32 " cannot log dirty pages (no "
                                 "VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION)",
                                 ioas->id);
        if (ioas->hwpt_id == 0 && vfio_obj_add(c, VFIO_OBJ_HWPT, ioas, &ioas->hwpt_id) < 0)
                return error_set(err, -ENOMEM, "out of memory");
        ioas->hwpt_held = true;
        *ret_id = ioas->hwpt_id;
        return 0;
}

int vfio_dirty_container_ready(BackendVfio *v, VfioIoas *ioas, int container, bool can_log,
                               Error *err) {
        int saved = ioas->container, r;

        if (!ioas->hwpt_held)
                return 0;
        if (!can_log)
                return error_set(err, -EOPNOTSUPP,
                                 "IOAS %" PRIu32 " tracks dirty pages, but its container "
                                 "cannot log them (no VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION)",
                                 ioas->id);
        if (!ioas->dirty_on)
                return 0;
        ioas->container = container;
        r = vfio_container_dirty(v, ioas, IOMMUD_VFIO_IOMMU_DIRTY_PAGES_FLAG_START, NULL, 0, err);
        ioas->container = saved;
        return r;
}

/* The IOAS whose dirty-tracking domain id is. */
static int dirty_lookup(VfioContext *c, uint32_t id, VfioIoas **ret, Error *err) {
        VfioIoas *ioas = vfio_obj_find(c, id, VFIO_OBJ_HWPT);

        if (!ioas)
                return error_set(err, -ENOENT, "%" PRIu32 " is no page table (HWPT)", id);
        if (!ioas->hwpt_held)
                return error_set(err, -EOPNOTSUPP,
                                 "HWPT %" PRIu32 " was not allocated with dirty tracking", id);
        *ret = ioas;
        return 0;
}

int vfio_dirty_set(BackendContext *bc, uint32_t hwpt_id, bool enable, Error *err) {
        VfioContext *c = (VfioContext *)bc;
        VfioIoas *ioas;
        int r;

        assert_return(bc, -EINVAL);
        r = dirty_lookup(c, hwpt_id, &ioas, err);
        if (r < 0)
                return r;
        if (ioas->container >= 0) {
                r = vfio_container_dirty(vfio_of(c), ioas,
                                         enable ? IOMMUD_VFIO_IOMMU_DIRTY_PAGES_FLAG_START
                                                : IOMMUD_VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP,
                                         NULL, 0, err);
                if (r < 0)
                        return r;
        }
        ioas->dirty_on = enable;
        return 0;
}

/* ORs n bits of src from bit from into dst from bit to. */
static void bits_or(uint64_t *dst, uint64_t to, const uint64_t *src, uint64_t from, uint64_t n) {
        for (uint64_t i = 0; i < n; i++) {
                uint64_t s = from + i, d = to + i;

                if (s % 64 == 0 && d % 64 == 0 && n - i >= 64) {
                        dst[d / 64] |= src[s / 64];
                        i += 63;
                } else if (src[s / 64] & (UINT64_C(1) << (s % 64)))
                        dst[d / 64] |= UINT64_C(1) << (d % 64);
        }
}

/* GET_BITMAP of [start, last], whole mappings; the bits of what a asks for go into a->data. */
static int read_chunk(BackendVfio *v, VfioIoas *ioas, uint64_t start, uint64_t last,
                      const DirtyBitmapArgs *a, Error *err) {
        uint64_t pg = ioas->dirty_pgsize, bits = (last - start) / pg + 1;
        uint64_t words = bits / 64 + (bits % 64 != 0);
        uint64_t lo = MAX(start, a->iova), hi = MIN(last, a->iova + (a->length - 1));
        _cleanup_free_ uint64_t *tmp = calloc(words, sizeof(uint64_t));
        struct iommud_vfio_iommu_type1_dirty_bitmap_get get = {
                .iova = start,
                .size = last - start + 1,
                .bitmap = { .pgsize = pg, .size = words * sizeof(uint64_t),
                            .data = (uint64_t)(uintptr_t)tmp },
        };
        int r;

        if (!tmp)
                return error_set(err, -ENOMEM, "out of memory");
        r = vfio_container_dirty(v, ioas, IOMMUD_VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP, &get,
                                 sizeof(get), err);
        if (r < 0)
                return r;
        bits_or(a->data, (lo - a->iova) / pg, tmp, (lo - start) / pg, (hi - lo) / pg + 1);
        return 0;
}

/*
 * The mappings that cover [a->iova, last], in reads of whole mappings that the kernel's
 * largest bitmap (and DIRTY_CHUNK_BITS, unless one mapping needs more) holds.
 */
static int read_areas(BackendVfio *v, VfioIoas *ioas, const DirtyBitmapArgs *a, uint64_t last,
                      Error *err) {
        uint64_t pg = ioas->dirty_pgsize, max_bits = ioas->dirty_max_bytes * 8;
        IovaNode *n = iova_tree_first_overlap(&ioas->areas, a->iova, last);
        uint64_t want = a->iova;

        while (want <= last) {
                uint64_t start, end;
                int r;

                if (!n || n->start > want)
                        return error_set(err, -EINVAL,
                                         "IOVA 0x%" PRIx64 " of IOAS %" PRIu32 " is not mapped: "
                                         "a dirty bitmap covers mapped memory only",
                                         want, ioas->id);
                start = n->start;
                end = n->last;
                if ((end - start) / pg + 1 > max_bits)
                        return error_set(err, -EINVAL,
                                         "the mapping 0x%" PRIx64 "-0x%" PRIx64 " has more pages "
                                         "than type1's largest dirty bitmap (0x%" PRIx64
                                         " bytes) holds",
                                         start, end, ioas->dirty_max_bytes);
                /* Contiguous mappings after it, while the bitmap stays small. */
                for (IovaNode *m = iova_tree_next(&ioas->areas, n);
                     end < last && m && m->start == end + 1 &&
                     (m->last - start) / pg + 1 <= MIN(max_bits, DIRTY_CHUNK_BITS);
                     m = iova_tree_next(&ioas->areas, m)) {
                        n = m;
                        end = m->last;
                }
                r = read_chunk(v, ioas, start, end, a, err);
                if (r < 0)
                        return r;
                if (end >= last)
                        break;
                want = end + 1;
                n = iova_tree_next(&ioas->areas, n);
        }
        return 0;
}

static int check_bitmap_args(VfioIoas *ioas, const DirtyBitmapArgs *a, uint64_t *ret_last,
                             Error *err) {
        if (a->flags & ~BACKEND_DIRTY_NO_CLEAR)
                return error_set(err, -EOPNOTSUPP, "unknown dirty bitmap flags 0x%" PRIx32,
                                 a->flags & ~BACKEND_DIRTY_NO_CLEAR);
        if (a->length == 0)
                return error_set(err, -EINVAL, "a dirty bitmap of 0 bytes");
        if (ADD_OVERFLOW(a->iova, a->length - 1, ret_last))
                return error_set(err, -EOVERFLOW,
                                 "IOVA 0x%" PRIx64 " plus length 0x%" PRIx64 " overflows",
                                 a->iova, a->length);
        if (!ioas->dirty_on)
                return error_set(err, -EINVAL, "dirty tracking of HWPT %" PRIu32 " is off",
                                 ioas->hwpt_id);
        if (a->page_size == 0 || (a->page_size & (a->page_size - 1)) ||
            ((a->iova | a->length) & (a->page_size - 1)))
                return error_set(err, -EINVAL,
                                 "IOVA 0x%" PRIx64 " and length 0x%" PRIx64 " are not whole "
                                 "pages of 0x%" PRIx64 " bytes",
                                 a->iova, a->length, a->page_size);
        /* A container logs at its smallest IOMMU page; without one nothing is pinned. */
        if (ioas->container >= 0 && a->page_size != ioas->dirty_pgsize)
                return error_set(err, -EINVAL,
                                 "type1 logs dirty pages of 0x%" PRIx64 " bytes only (IOAS %"
                                 PRIu32 "'s migration capability); a bitmap of 0x%" PRIx64
                                 "-byte pages cannot be read",
                                 ioas->dirty_pgsize, ioas->id, a->page_size);
        return 0;
}

int vfio_dirty_get_bitmap(BackendContext *bc, const DirtyBitmapArgs *a, Error *err) {
        VfioContext *c = (VfioContext *)bc;
        VfioIoas *ioas;
        uint64_t last = 0;
        int r;

        assert_return(bc && a, -EINVAL);
        assert_return(a->data, -EINVAL);
        r = dirty_lookup(c, a->hwpt_id, &ioas, err);
        if (r >= 0)
                r = check_bitmap_args(ioas, a, &last, err);
        if (r < 0)
                return r;
        /* No container, nothing pinned: no device could write, and nothing is dirty. */
        if (ioas->container < 0)
                return 0;
        return read_areas(vfio_of(c), ioas, a, last, err);
}
