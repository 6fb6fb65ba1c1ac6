/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Dirty tracking, as iommufd and the IOMMU drivers do it: a paging HWPT allocated with
 * BACKEND_HWPT_DIRTY_TRACKING has a dirty bit per IOPTE (one BACKEND_SIM_PAGE_SIZE page here),
 * which a device write through it sets while tracking is on.  Enabling clears every bit first
 * (iopt_set_dirty_tracking()); a read wants tracking on, a range aligned to the IOAS and to
 * the page size and mapped without a hole (what comes before a hole is read, and cleared,
 * before the read fails), and clears what it reports unless NO_CLEAR; an
 * unmap takes the IOPTEs, and their bits, away.  The bits of a HWPT are its dirty page
 * numbers, sorted.
 */

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "assert-util.h"
#include "sim-private.h"

#define PAGE_SHIFT 12
_Static_assert(BACKEND_SIM_PAGE_SIZE == UINT64_C(1) << PAGE_SHIFT, "page shift");

/* Index of the first dirty page number >= pfn. */
static size_t dirty_lower_bound(const SimHwpt *h, uint64_t pfn) {
        size_t lo = 0, hi = h->n_dirty;

        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;

                if (h->dirty[mid] < pfn)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return lo;
}

static void dirty_remove_range(SimHwpt *h, uint64_t first_pfn, uint64_t last_pfn) {
        size_t a = dirty_lower_bound(h, first_pfn), b = a;

        while (b < h->n_dirty && h->dirty[b] <= last_pfn)
                b++;
        if (b == a)
                return;
        memmove(h->dirty + a, h->dirty + b, (h->n_dirty - b) * sizeof(uint64_t));
        h->n_dirty -= b - a;
}

int sim_hwpt_mark_dirty(SimHwpt *h, uint64_t iova, uint64_t last) {
        uint64_t first_pfn = iova >> PAGE_SHIFT, last_pfn = last >> PAGE_SHIFT;
        size_t at;

        assert_return(h, -EINVAL);
        if (!(h->flags & BACKEND_HWPT_DIRTY_TRACKING) || !h->dirty_enabled)
                return 0;
        at = dirty_lower_bound(h, first_pfn);
        for (uint64_t pfn = first_pfn;; pfn++) {
                if (at < h->n_dirty && h->dirty[at] == pfn) {
                        at++;
                } else {
                        if (h->n_dirty == h->n_dirty_alloc) {
                                size_t m = h->n_dirty_alloc ? h->n_dirty_alloc * 2 : 64;
                                uint64_t *d = reallocarray(h->dirty, m, sizeof(uint64_t));

                                if (!d)
                                        return -ENOMEM;
                                h->dirty = d;
                                h->n_dirty_alloc = m;
                        }
                        memmove(h->dirty + at + 1, h->dirty + at,
                                (h->n_dirty - at) * sizeof(uint64_t));
                        h->dirty[at++] = pfn;
                        h->n_dirty++;
                }
                if (pfn == last_pfn)
                        break;
        }
        return 0;
}

void sim_ioas_forget_dirty(SimIoas *ioas, uint64_t start, uint64_t last) {
        SIM_FOREACH(d, ioas->domains, ioas->n_domains)
                dirty_remove_range(*d, start >> PAGE_SHIFT, last >> PAGE_SHIFT);
}

/* The paging HWPT hwpt_id, allocated with dirty tracking. */
static int dirty_hwpt(SimContext *c, uint32_t hwpt_id, SimHwpt **ret, Error *err) {
        int r = sim_obj_lookup(c, hwpt_id, SIM_OBJ_HWPT_PAGING, (void **)ret, err);

        if (r < 0)
                return r;
        if (!((*ret)->flags & BACKEND_HWPT_DIRTY_TRACKING))
                return error_set(err, -EOPNOTSUPP,
                                 "HWPT %" PRIu32 " was not allocated with dirty tracking",
                                 hwpt_id);
        return 0;
}

int sim_hwpt_set_dirty_tracking(BackendContext *bc, uint32_t hwpt_id, bool enable, Error *err) {
        SimHwpt *h;
        int r;

        assert_return(bc, -EINVAL);
        r = dirty_hwpt(to_ctx(bc), hwpt_id, &h, err);
        if (r < 0)
                return r;
        /* A clean snapshot: whatever was dirty before is forgotten, also when already on. */
        if (enable)
                h->n_dirty = 0;
        h->dirty_enabled = enable;
        return 0;
}

/* iommufd_check_iova_range(): the kernel's order of checks and errnos. */
static int dirty_check_range(const SimIoas *ioas, const DirtyBitmapArgs *a, uint64_t *ret_last,
                             Error *err) {
        if (a->length == 0)
                return error_set(err, -EINVAL, "A dirty bitmap of 0 bytes of IOVA");
        if (ADD_OVERFLOW(a->iova, a->length - 1, ret_last))
                return error_set(err, -EOVERFLOW, "IOVA 0x%" PRIx64 " plus length 0x%" PRIx64
                                 " overflows", a->iova, a->length);
        if ((a->iova | a->length) & (ioas->alignment - 1))
                return error_set(err, -EINVAL, "IOVA 0x%" PRIx64 "+0x%" PRIx64 " is not aligned "
                                 "to the IOAS's %" PRIu64 " bytes", a->iova, a->length,
                                 ioas->alignment);
        if (a->page_size == 0 || (a->iova % a->page_size) || (a->length % a->page_size))
                return error_set(err, -EINVAL, "IOVA 0x%" PRIx64 "+0x%" PRIx64 " is not made of "
                                 "whole pages of 0x%" PRIx64 " bytes", a->iova, a->length,
                                 a->page_size);
        return 0;
}

/*
 * Every byte of [iova, last] is mapped: the kernel's contiguous-area walk.  Where it is not,
 * *ret_hole is the first IOVA that is not (the kernel has read, and cleared, what came before).
 */
static int dirty_check_mapped(const SimIoas *ioas, uint64_t iova, uint64_t last,
                              uint64_t *ret_hole, Error *err) {
        uint64_t cur = iova;

        for (IovaNode *n = iova_tree_find(&ioas->areas, iova);; n = iova_tree_next(&ioas->areas, n)) {
                if (!n || n->start > cur) {
                        *ret_hole = cur;
                        return error_set(err, -EINVAL, "IOVA 0x%" PRIx64 " in the dirty bitmap's "
                                         "range is not mapped", cur);
                }
                if (n->last >= last)
                        return 0;
                cur = n->last + 1;
        }
}

/* Sets the bits of [a->iova, last]'s dirty pages; clears them unless NO_CLEAR. */
static void dirty_report(SimHwpt *h, const DirtyBitmapArgs *a, uint64_t last) {
        size_t first = dirty_lower_bound(h, a->iova >> PAGE_SHIFT), end;

        for (end = first; end < h->n_dirty && h->dirty[end] <= last >> PAGE_SHIFT; end++) {
                /* An IOPTE larger than page_size sets each bit it covers. */
                uint64_t lo = MAX(h->dirty[end] << PAGE_SHIFT, a->iova);
                uint64_t hi = MIN((h->dirty[end] << PAGE_SHIFT) + BACKEND_SIM_PAGE_SIZE - 1, last);

                for (uint64_t bit = (lo - a->iova) / a->page_size;
                     bit <= (hi - a->iova) / a->page_size; bit++)
                        a->data[bit / 64] |= UINT64_C(1) << (bit % 64);
        }
        if (!(a->flags & BACKEND_DIRTY_NO_CLEAR) && end > first) {
                memmove(h->dirty + first, h->dirty + end, (h->n_dirty - end) * sizeof(uint64_t));
                h->n_dirty -= end - first;
        }
}

int sim_hwpt_get_dirty_bitmap(BackendContext *bc, const DirtyBitmapArgs *a, Error *err) {
        uint64_t last = 0, hole = 0;
        SimHwpt *h;
        int r;

        assert_return(bc, -EINVAL);
        assert_return(a && a->data, -EINVAL);

        if (a->flags & ~BACKEND_DIRTY_NO_CLEAR)
                return error_set(err, -EOPNOTSUPP, "Unknown dirty bitmap flags 0x%" PRIx32,
                                 a->flags & ~BACKEND_DIRTY_NO_CLEAR);
        r = dirty_hwpt(to_ctx(bc), a->hwpt_id, &h, err);
        if (r < 0)
                return r;
        r = dirty_check_range(h->ioas, a, &last, err);
        if (r < 0)
                return r;
        /* The driver's read_and_clear_dirty() refuses a bitmap while tracking is off. */
        if (!h->dirty_enabled)
                return error_set(err, -EINVAL, "Dirty tracking of HWPT %" PRIu32 " is off",
                                 a->hwpt_id);
        /* A hole fails the read after what came before it was read, and cleared, as the kernel. */
        r = dirty_check_mapped(h->ioas, a->iova, last, &hole, err);
        if (r < 0 && hole > a->iova)
                dirty_report(h, a, hole - 1);
        if (r < 0)
                return r;
        dirty_report(h, a, last);
        return 0;
}
