/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Dirty tracking as iommufd gives it (IOMMU_HWPT_SET_DIRTY_TRACKING, IOMMU_HWPT_GET_DIRTY_BITMAP):
 * only HWPTs allocated with the flag track; a read wants tracking on; device writes set the bits
 * of the pages they touch at the bitmap's granularity; a read clears what it reports unless
 * NO_CLEAR; enabling starts from a clean snapshot; an unmap takes the bits with the IOPTEs; a
 * range with a hole fails, after the kernel read what came before it.
 * The writes come from the factory's device (backend-sim's DMA, the kernel's mock IOMMU).
 *
 * VFIO type1 (BACKEND_FEATURE_DIRTY_ALL_PINNED) sees no device write: every pinned page reads
 * dirty at every read, written or not, and bitmaps come at the IOMMU page size only.  The
 * cases hold it to everything else, and to exactly that over-approximation.
 */

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "conformance-case.h"
#include "macros.h"

#define OPS(s) (conf_case_env(s)->backend->ops)
#define P (conf_case_env(s)->page_size)
#define BASE (conf_case_env(s)->base)
#define RW (BACKEND_MAP_READABLE | BACKEND_MAP_WRITEABLE)

static bool all_pinned(ConfState *s) {
        return backend_has_feature(conf_case_env(s)->backend, BACKEND_FEATURE_DIRTY_ALL_PINNED);
}

/* type1 logs per container, whatever the device: the plain one; else the dirty-capable IOMMU's. */
static ConfRole dirty_role(ConfState *s) {
        return all_pinned(s) ? CONF_DEV_PLAIN : CONF_DEV_PASID;
}

/* What a read of the 8 mapped pages gives after devices wrote written. */
static uint64_t expect(ConfState *s, uint64_t written) {
        return all_pinned(s) ? 0xff : written;
}

typedef struct DirtySetup {
        BackendContext *c;
        uint32_t ioas, dev, hwpt;
} DirtySetup;

/* The dirty-capable device attached to a HWPT allocated with flags, 8 pages mapped at BASE. */
static void dirty_setup(ConfState *s, DirtySetup *d, uint32_t flags) {
        HwptAllocArgs a = { .flags = flags };
        uint64_t iova = BASE;
        HwInfo info;

        conf_case_require(s, BACKEND_FEATURE_DIRTY_TRACKING);
        if (!conf_case_env(s)->factory->device_write && !all_pinned(s))
                conf_case_skip(s, "devices cannot be made to write");
        d->c = conf_case_context(s);
        d->ioas = conf_case_ioas(s, d->c);
        d->dev = conf_case_bind(s, d->c, dirty_role(s));
        if (OPS(s)->hw_info(d->c, d->dev, &info, NULL) == 0) {
                if (!(info.capabilities & BACKEND_HW_CAP_DIRTY_TRACKING))
                        conf_case_skip(s, "the device's IOMMU cannot track dirty pages");
        } else
                /* Without IOMMU_GET_HW_INFO (type1) the allocation alone says. */
                assert_false(backend_has_feature(conf_case_env(s)->backend,
                                                 BACKEND_FEATURE_HW_INFO));
        a.dev_id = d->dev;
        a.pt_id = d->ioas;
        assert_int_equal(OPS(s)->hwpt_alloc(d->c, &a, &d->hwpt, NULL), 0);
        assert_int_equal(OPS(s)->device_attach(d->c, d->dev, BACKEND_NO_PASID, &(uint32_t){ d->hwpt },
                                               NULL), 0);
        assert_int_equal(OPS(s)->ioas_map_va(d->c, d->ioas, BACKEND_MAP_FIXED_IOVA | RW,
                                             conf_case_va(s, BASE, 8 * P), 8 * P, &iova, NULL),
                         0);
}

static void write_pages(ConfState *s, DirtySetup *d, uint64_t page, uint64_t n) {
        /* A real device under type1 need not write: what it reports does not depend on it. */
        if (!conf_case_env(s)->factory->device_write)
                return;
        assert_int_equal(conf_case_env(s)->factory->device_write(conf_case_env(s), dirty_role(s),
                                                                 d->c, d->hwpt, BASE + page * P,
                                                                 n * P),
                         0);
}

/* The bitmap of [BASE + first * P, +n * page_size) at page_size, as one word. */
static int read_bits(ConfState *s, DirtySetup *d, uint64_t first, uint64_t n,
                     uint64_t page_size, uint32_t flags, uint64_t *ret) {
        uint64_t bits[2] = {};
        DirtyBitmapArgs a = {
                .hwpt_id = d->hwpt, .flags = flags, .iova = BASE + first * P,
                .length = n * page_size, .page_size = page_size, .data = bits,
        };
        int r = OPS(s)->hwpt_get_dirty_bitmap(d->c, &a, NULL);

        assert_int_equal(bits[1], 0); /* nothing beyond the range */
        *ret = bits[0];
        return r;
}

static uint64_t bits_of(ConfState *s, DirtySetup *d, uint32_t flags) {
        uint64_t v = UINT64_MAX;

        assert_int_equal(read_bits(s, d, 0, 8, P, flags, &v), 0);
        return v;
}

void dirty_only_with_the_flag_and_while_on(void **state) {
        ConfState *s = conf_case_state(state);
        DirtySetup d = {}, plain;
        HwptAllocArgs a = {};
        uint64_t v;

        dirty_setup(s, &d, BACKEND_HWPT_DIRTY_TRACKING);
        /* A HWPT of the same device and IOAS without the flag tracks nothing. */
        plain = d;
        a.dev_id = d.dev;
        a.pt_id = d.ioas;
        if (backend_has_feature(conf_case_env(s)->backend, BACKEND_FEATURE_HWPT_ALLOC)) {
                assert_int_equal(OPS(s)->hwpt_alloc(d.c, &a, &plain.hwpt, NULL), 0);
                assert_int_equal(OPS(s)->hwpt_set_dirty_tracking(d.c, plain.hwpt, true, NULL),
                                 -EOPNOTSUPP);
                assert_int_equal(read_bits(s, &plain, 0, 8, P, 0, &v), -EOPNOTSUPP);
        } else
                /* type1: the dirty-tracking domain is the one page table object there is. */
                assert_int_equal(OPS(s)->hwpt_alloc(d.c, &a, &plain.hwpt, NULL), -EOPNOTSUPP);
        /* An IOAS is no paging HWPT. */
        assert_int_equal(OPS(s)->hwpt_set_dirty_tracking(d.c, d.ioas, true, NULL), -ENOENT);

        assert_int_equal(read_bits(s, &d, 0, 8, P, 0, &v), -EINVAL);
        assert_int_equal(OPS(s)->hwpt_set_dirty_tracking(d.c, d.hwpt, true, NULL), 0);
        assert_int_equal(bits_of(s, &d, 0), expect(s, 0));
        assert_int_equal(OPS(s)->hwpt_set_dirty_tracking(d.c, d.hwpt, false, NULL), 0);
        assert_int_equal(read_bits(s, &d, 0, 8, P, 0, &v), -EINVAL);
}

void dirty_writes_read_and_cleared(void **state) {
        ConfState *s = conf_case_state(state);
        DirtySetup d = {};
        uint64_t v = UINT64_MAX;

        dirty_setup(s, &d, BACKEND_HWPT_DIRTY_TRACKING);
        assert_int_equal(OPS(s)->hwpt_set_dirty_tracking(d.c, d.hwpt, true, NULL), 0);
        write_pages(s, &d, 1, 1);
        write_pages(s, &d, 3, 2);
        assert_int_equal(bits_of(s, &d, BACKEND_DIRTY_NO_CLEAR), expect(s, 0x1a));
        assert_int_equal(bits_of(s, &d, BACKEND_DIRTY_NO_CLEAR), expect(s, 0x1a));
        assert_int_equal(bits_of(s, &d, 0), expect(s, 0x1a));
        assert_int_equal(bits_of(s, &d, 0), expect(s, 0));
        /* A read of part of the range (of one mapping) clears that part only. */
        write_pages(s, &d, 0, 1);
        write_pages(s, &d, 6, 1);
        assert_int_equal(read_bits(s, &d, 4, 4, P, 0, &v), 0);
        assert_int_equal(v, expect(s, 0x4) & 0xf);
        assert_int_equal(bits_of(s, &d, 0), expect(s, 0x01));
}

void dirty_bitmap_granularity_and_range(void **state) {
        ConfState *s = conf_case_state(state);
        DirtySetup d = {};
        uint64_t v = UINT64_MAX;

        dirty_setup(s, &d, BACKEND_HWPT_DIRTY_TRACKING);
        assert_int_equal(OPS(s)->hwpt_set_dirty_tracking(d.c, d.hwpt, true, NULL), 0);
        write_pages(s, &d, 3, 1);
        write_pages(s, &d, 4, 1);
        if (all_pinned(s))
                /* type1 reads at its IOMMU page size only. */
                assert_int_equal(read_bits(s, &d, 0, 4, 2 * P, BACKEND_DIRTY_NO_CLEAR, &v),
                                 -EINVAL);
        else {
                /* Two pages a bit: pages 3 and 4 are the bits 1 and 2. */
                assert_int_equal(read_bits(s, &d, 0, 4, 2 * P, BACKEND_DIRTY_NO_CLEAR, &v), 0);
                assert_int_equal(v, 0x6);
                /* Eight pages a bit. */
                assert_int_equal(read_bits(s, &d, 0, 1, 8 * P, BACKEND_DIRTY_NO_CLEAR, &v), 0);
                assert_int_equal(v, 0x1);
        }
        /* Not whole pages of the bitmap, nothing, an unknown flag, a wrap: refused, nothing read. */
        assert_int_equal(read_bits(s, &d, 1, 2, 2 * P, 0, &v), -EINVAL);
        assert_int_equal(read_bits(s, &d, 0, 0, P, 0, &v), -EINVAL);
        assert_int_equal(read_bits(s, &d, 0, 8, P, 0x80, &v), -EOPNOTSUPP);
        {
                uint64_t bits[1] = {};
                DirtyBitmapArgs a = { .hwpt_id = d.hwpt, .iova = UINT64_MAX & ~(P - 1),
                                      .length = 2 * P, .page_size = P, .data = bits };

                assert_int_equal(OPS(s)->hwpt_get_dirty_bitmap(d.c, &a, NULL), -EOVERFLOW);
        }
        assert_int_equal(bits_of(s, &d, BACKEND_DIRTY_NO_CLEAR), expect(s, 0x18));
        /*
         * A range with a hole fails after the mapped run before it was read and cleared (the
         * kernel walks the areas in order: "the dirty state becomes unknown").
         */
        assert_int_equal(read_bits(s, &d, 0, 16, P, 0, &v), -EINVAL);
        assert_int_equal(bits_of(s, &d, 0), expect(s, 0));
}

void dirty_enable_clears_and_unmap_forgets(void **state) {
        ConfState *s = conf_case_state(state);
        DirtySetup d = {};
        uint64_t iova = BASE, done = 0;

        dirty_setup(s, &d, BACKEND_HWPT_DIRTY_TRACKING);
        assert_int_equal(OPS(s)->hwpt_set_dirty_tracking(d.c, d.hwpt, true, NULL), 0);
        write_pages(s, &d, 2, 1);
        assert_int_equal(OPS(s)->hwpt_set_dirty_tracking(d.c, d.hwpt, true, NULL), 0);
        assert_int_equal(bits_of(s, &d, 0), expect(s, 0));
        write_pages(s, &d, 5, 1);
        assert_int_equal(OPS(s)->hwpt_set_dirty_tracking(d.c, d.hwpt, false, NULL), 0);
        assert_int_equal(OPS(s)->hwpt_set_dirty_tracking(d.c, d.hwpt, true, NULL), 0);
        assert_int_equal(bits_of(s, &d, 0), expect(s, 0));

        /* The bits of an unmapped range go with it: mapped again, it is clean. */
        write_pages(s, &d, 7, 1);
        assert_int_equal(OPS(s)->ioas_unmap(d.c, d.ioas, BASE, 8 * P, &done, NULL), 0);
        assert_int_equal(done, 8 * P);
        assert_int_equal(OPS(s)->ioas_map_va(d.c, d.ioas, BACKEND_MAP_FIXED_IOVA | RW,
                                             conf_case_va(s, BASE, 8 * P), 8 * P, &iova, NULL),
                         0);
        assert_int_equal(bits_of(s, &d, 0), expect(s, 0));
}
