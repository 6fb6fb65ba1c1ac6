/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "conformance-case.h"
#include "conformance-internal.h"
#include "iommufd-abi.h"
#include "macros.h"

/* ---- 1-15: what the selftests pin down ---- */

static void behaviour_01_destroy_id0_enoent(void **state) {
        ConfState *s = state_of(state);
        BackendContext *c = ctx_new(s);
        uint32_t ioas = ioas_new(s, c);

        assert_int_equal(OPS(&s->env)->destroy(c, 0, NULL), -ENOENT);
        assert_int_equal(OPS(&s->env)->destroy(c, ioas + 1000, NULL), -ENOENT);
        assert_int_equal(OPS(&s->env)->destroy(c, ioas, NULL), 0);
        assert_int_equal(OPS(&s->env)->destroy(c, ioas, NULL), -ENOENT);
        /* "Unknown ioctl nr => ENOTTY" is ABI-level: behaviour_02_size_rules has it. */
}

/*
 * The size rules of every iommufd ioctl (iommufd_fops_ioctl): a size below the mandatory
 * fields is EINVAL, a longer one with a non-zero byte past the kernel's structure is E2BIG,
 * and a longer one with only zeros there is taken as exact.  A refused call changes nothing.
 */
static void behaviour_02_size_rules(void **state) {
        ConfState *s = state_of(state);
        struct {
                struct iommud_ioas_alloc a;
                uint8_t tail[8];
        } alloc;
        struct {
                struct iommud_destroy d;
                uint8_t tail[8];
        } destroy;
        int (*ioc)(ConfEnv *, BackendContext *, unsigned long, void *) = s->env.factory->ioctl;
        BackendContext *c;
        uint32_t id;

        if (!ioc)
                conf_skip(s, "backend %s takes C arguments: it has no sized ABI structures",
                          s->env.factory->name);
        c = ctx_new(s);

        memset(&alloc, 0, sizeof(alloc));
        alloc.a.size = sizeof(alloc.a) - 1;
        assert_int_equal(ioc(&s->env, c, IOMMUD_IOMMU_IOAS_ALLOC, &alloc), -EINVAL);
        alloc.a.size = sizeof(alloc.a) + 1;
        alloc.tail[0] = 1;
        assert_int_equal(ioc(&s->env, c, IOMMUD_IOMMU_IOAS_ALLOC, &alloc), -E2BIG);
        assert_int_equal(alloc.a.out_ioas_id, 0);
        alloc.tail[0] = 0;
        alloc.tail[1] = 0xff; /* beyond the size given: never read */
        assert_int_equal(ioc(&s->env, c, IOMMUD_IOMMU_IOAS_ALLOC, &alloc), 0);
        id = alloc.a.out_ioas_id;
        assert_int_not_equal(id, 0);
        assert_int_equal(alloc.tail[0], 0);
        /* The refused calls created nothing: the next id follows. */
        assert_int_equal(ioas_new(s, c), id + 1);

        memset(&destroy, 0, sizeof(destroy));
        destroy.d.id = id;
        destroy.d.size = sizeof(destroy.d) - 1;
        assert_int_equal(ioc(&s->env, c, IOMMUD_IOMMU_DESTROY, &destroy), -EINVAL);
        destroy.d.size = sizeof(destroy.d) + 8;
        destroy.tail[7] = 1;
        assert_int_equal(ioc(&s->env, c, IOMMUD_IOMMU_DESTROY, &destroy), -E2BIG);
        destroy.tail[7] = 0;
        assert_int_equal(ioc(&s->env, c, IOMMUD_IOMMU_DESTROY, &destroy), 0);
        /* It was still there for the last call to destroy, and now it is gone. */
        assert_int_equal(OPS(&s->env)->destroy(c, id, NULL), -ENOENT);
        /* A number no release defines. */
        assert_int_equal(ioc(&s->env, c, IOMMUD_IOMMUFD_IO(0xff), &destroy), -ENOTTY);
}

static void behaviour_03_unmap_empty_and_unmap_all(void **state) {
        ConfState *s = state_of(state);
        BackendContext *c = ctx_new(s);
        uint32_t ioas = ioas_new(s, c);
        uint64_t n = 1;

        assert_int_equal(unmap(s, c, ioas, BASE, P, NULL), -ENOENT);
        assert_int_equal(unmap(s, c, ioas, 0, UINT64_MAX, &n), 0);
        assert_int_equal(n, 0);
        assert_int_equal(map_fixed(s, c, ioas, BASE, P), 0);
        assert_int_equal(map_fixed(s, c, ioas, BASE + 4 * P, 2 * P), 0);
        assert_int_equal(unmap(s, c, ioas, 0, UINT64_MAX, &n), 0);
        assert_int_equal(n, 3 * P);
        assert_int_equal(unmap(s, c, ioas, BASE, P, NULL), -ENOENT);
}

static void behaviour_04_no_splitting(void **state) {
        ConfState *s = state_of(state);
        BackendContext *c = ctx_new(s);
        uint32_t ioas = ioas_new(s, c);
        uint64_t n;

        assert_int_equal(map_fixed(s, c, ioas, BASE, 2 * P), 0);
        assert_int_equal(unmap(s, c, ioas, BASE, P, NULL), -ENOENT);
        assert_int_equal(unmap(s, c, ioas, BASE + P, P, NULL), -ENOENT);
        assert_int_equal(unmap(s, c, ioas, BASE, 2 * P, &n), 0);
        assert_int_equal(n, 2 * P);
}

static void behaviour_05_fixed_overlap_eexist(void **state) {
        ConfState *s = state_of(state);
        BackendContext *c = ctx_new(s);
        uint32_t ioas = ioas_new(s, c);
        const struct {
                int64_t off; /* in pages from BASE */
                uint64_t pages;
                int expect;
        } cases[] = {
                { 0, 4, -EEXIST },  /* identical */
                { 1, 2, -EEXIST },  /* inside */
                { -1, 2, -EEXIST }, /* over the first page */
                { 3, 2, -EEXIST },  /* over the last page */
                { -1, 6, -EEXIST }, /* covering */
                { 3, 1, -EEXIST },  /* the last page alone */
                { 0, 1, -EEXIST },  /* the first page alone */
                { -2, 2, 0 },       /* adjacent below */
                { 4, 2, 0 },        /* adjacent above */
        };

        assert_int_equal(map_fixed(s, c, ioas, BASE, 4 * P), 0);
        FOREACH_ARRAY(t, cases, ELEMENTSOF(cases)) {
                uint64_t iova = BASE + (uint64_t)(t->off * (int64_t)P);

                assert_int_equal(map_fixed(s, c, ioas, iova, t->pages * P), t->expect);
                if (t->expect == 0)
                        assert_int_equal(unmap(s, c, ioas, iova, t->pages * P, NULL), 0);
        }
}

static void behaviour_06_unmap_range_containing_areas(void **state) {
        ConfState *s = state_of(state);
        BackendContext *c = ctx_new(s);
        uint32_t ioas = ioas_new(s, c);
        uint64_t n = 0;

        assert_int_equal(map_fixed(s, c, ioas, BASE, P), 0);
        assert_int_equal(map_fixed(s, c, ioas, BASE + 2 * P, P), 0);
        assert_int_equal(map_fixed(s, c, ioas, BASE + 4 * P, 2 * P), 0);
        assert_int_equal(unmap(s, c, ioas, BASE - P, 8 * P, &n), 0);
        assert_int_equal(n, 4 * P);

        assert_int_equal(map_fixed(s, c, ioas, BASE, P), 0);
        assert_int_equal(map_fixed(s, c, ioas, BASE + 2 * P, 2 * P), 0);
        assert_int_equal(unmap(s, c, ioas, BASE + P, 2 * P, NULL), -ENOENT);
}

static void behaviour_07_auto_iova(void **state) {
        ConfState *s = state_of(state);
        BackendContext *c = ctx_new(s);
        uint32_t ioas = ioas_new(s, c);
        const struct {
                uint64_t src, len, align;
        } cases[] = {
                { 0, P, P },
                { 0, 3 * P, 4 * P },               /* roundup_pow2(length) */
                { P, 4 * P, P },                   /* lowest set bit of the source */
                { 32 * P, 2 * P, 2 * P },
                { 0x12345 * P, 16 * P, P },
                { 64 * P, 16 * P, 16 * P },
        };
        IovaRange allowed = { BASE, BASE + 4 * P - 1 };
        uint64_t iova;

        FOREACH_ARRAY(t, cases, ELEMENTSOF(cases)) {
                iova = 0;
                assert_int_equal(map_auto(s, c, ioas, t->src, t->len, &iova), 0);
                assert_int_not_equal(iova, 0);
                assert_int_equal(iova % auto_align(s, t->align), 0);
        }
        /* A sub-page source offset is kept in the IOVA (no domain: alignment 1). */
        assert_int_equal(map_auto(s, c, ioas, BASE + P / 2, P / 2, &iova), 0);
        assert_int_equal(iova % P, P / 2);
        assert_int_equal(unmap(s, c, ioas, 0, UINT64_MAX, NULL), 0);

        /* Inside the allowed ranges, lowest first, ENOSPC when full. */
        assert_int_equal(OPS(&s->env)->ioas_allow_iovas(c, ioas, &allowed, 1, NULL), 0);
        assert_int_equal(map_auto(s, c, ioas, 0, 2 * P, &iova), 0);
        assert_int_equal(iova, BASE);
        assert_int_equal(map_auto(s, c, ioas, 0, 2 * P, &iova), 0);
        assert_int_equal(iova, BASE + 2 * P);
        assert_int_equal(map_auto(s, c, ioas, 0, P, &iova), -ENOSPC);
}

static void behaviour_07_auto_iova_avoids_reserved(void **state) {
        ConfState *s = state_of(state);
        BackendContext *c = ctx_new(s);
        uint32_t ioas = ioas_new(s, c), dev;
        IovaRange r = s->env.plain_resv, allowed[2];
        uint64_t iova;

        dev = bind(s, c, CONF_DEV_PLAIN);
        if (!has_resv(s))
                conf_skip(s, "the plain device has no reserved region");
        assert_int_equal(attach(s, c, dev, BACKEND_NO_PASID, ioas, NULL), 0);
        /* One page below the reserved region, then room only above it. */
        allowed[0] = (IovaRange){ r.start - P, r.start - 1 };
        allowed[1] = (IovaRange){ r.last + 1, r.last + 8 * P };
        assert_int_equal(OPS(&s->env)->ioas_allow_iovas(c, ioas, allowed, 2, NULL), 0);
        assert_int_equal(map_auto(s, c, ioas, 0, P, &iova), 0);
        assert_int_equal(iova, r.start - P);
        assert_int_equal(map_auto(s, c, ioas, 0, P, &iova), 0);
        assert_true(iova > r.last && iova <= r.last + 8 * P);
}

static void behaviour_08_reserved_and_allowed(void **state) {
        ConfState *s = state_of(state);
        BackendContext *c = ctx_new(s);
        uint32_t ioas = ioas_new(s, c), ioas2 = ioas_new(s, c), dev;
        IovaRange r = s->env.plain_resv, bad;
        const IovaRange overlapping[] = { { BASE, BASE + 2 * P - 1 }, { BASE + P, BASE + 4 * P - 1 } };
        const IovaRange inverted[] = { { BASE + P, BASE } }, single[] = { { BASE, BASE } };
        uint64_t iova;

        assert_int_equal(OPS(&s->env)->ioas_allow_iovas(c, ioas, inverted, 1, NULL), -EINVAL);
        assert_int_equal(OPS(&s->env)->ioas_allow_iovas(c, ioas, single, 1, NULL), -EINVAL);
        assert_int_equal(OPS(&s->env)->ioas_allow_iovas(c, ioas, overlapping, 2, NULL), -EINVAL);
        /* num 0 clears: an auto map may land anywhere again. */
        assert_int_equal(OPS(&s->env)->ioas_allow_iovas(c, ioas, overlapping, 1, NULL), 0);
        assert_int_equal(OPS(&s->env)->ioas_allow_iovas(c, ioas, NULL, 0, NULL), 0);
        assert_int_equal(map_auto(s, c, ioas, 0, P, &iova), 0);
        assert_true(iova < BASE || iova > BASE + 2 * P - 1);

        if (!has_resv(s))
                return;
        dev = bind(s, c, CONF_DEV_PLAIN);
        assert_int_equal(attach(s, c, dev, BACKEND_NO_PASID, ioas, NULL), 0);
        assert_int_equal(map_fixed(s, c, ioas, r.start, P), -EINVAL);
        assert_int_equal(map_fixed(s, c, ioas, r.start - P, 2 * P), -EINVAL);
        bad = (IovaRange){ r.start - P, r.start + P - 1 };
        assert_int_equal(OPS(&s->env)->ioas_allow_iovas(c, ioas, &bad, 1, NULL), -EADDRINUSE);

        /* The other way round: an allowed range already there refuses the region. */
        assert_int_equal(OPS(&s->env)->ioas_allow_iovas(c, ioas2, &bad, 1, NULL), 0);
        assert_int_equal(attach(s, c, dev, BACKEND_NO_PASID, ioas2, NULL), -EADDRINUSE);
}

static void behaviour_09_iova_ranges(void **state) {
        ConfState *s = state_of(state);
        BackendContext *c = ctx_new(s);
        uint32_t ioas = ioas_new(s, c), dev;
        IovaRange ranges[16], allowed = { BASE, BASE + P - 1 };
        size_t n = ELEMENTSOF(ranges);
        uint64_t align = 0;

        assert_int_equal(OPS(&s->env)->ioas_iova_ranges(c, ioas, ranges, &n, &align, NULL), 0);
        assert_int_equal(n, 1);
        assert_int_equal(ranges[0].start, 0);
        assert_true(ranges[0].last == UINT64_MAX);
        assert_int_equal(align, 1);
        n = 0;
        assert_int_equal(OPS(&s->env)->ioas_iova_ranges(c, ioas, ranges, &n, &align, NULL),
                         -EMSGSIZE);
        assert_int_equal(n, 1);

        dev = bind(s, c, CONF_DEV_PLAIN);
        assert_int_equal(attach(s, c, dev, BACKEND_NO_PASID, ioas, NULL), 0);
        /* Maps and the allowed list do not change the answer. */
        assert_int_equal(map_fixed(s, c, ioas, BASE, P), 0);
        assert_int_equal(OPS(&s->env)->ioas_allow_iovas(c, ioas, &allowed, 1, NULL), 0);
        n = ELEMENTSOF(ranges);
        assert_int_equal(OPS(&s->env)->ioas_iova_ranges(c, ioas, ranges, &n, &align, NULL), 0);
        assert_int_equal(align, P);
        assert_true(n >= 1);
        for (size_t i = 0; i < n; i++) {
                assert_true(ranges[i].start <= ranges[i].last);
                if (i > 0)
                        assert_true(ranges[i].start > ranges[i - 1].last + 1);
                if (has_resv(s))
                        assert_true(ranges[i].last < s->env.plain_resv.start ||
                                    ranges[i].start > s->env.plain_resv.last);
        }
        if (n > 1) {
                size_t want = n;

                n = 1;
                assert_int_equal(OPS(&s->env)->ioas_iova_ranges(c, ioas, ranges, &n, &align, NULL),
                                 -EMSGSIZE);
                assert_int_equal(n, want);
        }
}

static void behaviour_10_copy(void **state) {
        ConfState *s = state_of(state);
        BackendContext *c = ctx_new(s);
        uint32_t src = ioas_new(s, c), dst = ioas_new(s, c);
        const uint32_t rw = BACKEND_MAP_READABLE | BACKEND_MAP_WRITEABLE;
        uint64_t iova, n;

        assert_int_equal(map_fixed(s, c, src, BASE, 4 * P), 0);
        /* Any sub-range inside the area. */
        iova = BASE;
        assert_int_equal(OPS(&s->env)->ioas_copy(c, dst, src, rw | BACKEND_MAP_FIXED_IOVA,
                                                 BASE + P, 2 * P, &iova, NULL), 0);
        assert_int_equal(unmap(s, c, dst, BASE, 2 * P, &n), 0);
        assert_int_equal(n, 2 * P);
        assert_int_equal(OPS(&s->env)->ioas_copy(c, dst, src, rw, BASE, 4 * P, &iova, NULL), 0);
        assert_int_not_equal(iova, 0);
        assert_int_equal(OPS(&s->env)->ioas_copy(c, dst, src, rw, BASE + 3 * P, P, &iova, NULL), 0);
        /* Partly outside. */
        assert_int_equal(OPS(&s->env)->ioas_copy(c, dst, src, rw, BASE + 3 * P, 2 * P, &iova, NULL),
                         -ENOENT);
        assert_int_equal(OPS(&s->env)->ioas_copy(c, dst, src, rw, BASE - P, 2 * P, &iova, NULL),
                         -ENOENT);
}

static void behaviour_11_destroy_in_use_ebusy(void **state) {
        ConfState *s = state_of(state);
        BackendContext *c = ctx_new(s);
        uint32_t ioas = ioas_new(s, c), dev = bind(s, c, CONF_DEV_PLAIN), hwpt = 0;

        assert_int_equal(attach(s, c, dev, BACKEND_NO_PASID, ioas, &hwpt), 0);
        assert_int_not_equal(hwpt, ioas);
        assert_int_equal(OPS(&s->env)->destroy(c, ioas, NULL), -EBUSY);
        assert_int_equal(OPS(&s->env)->destroy(c, hwpt, NULL), -EBUSY);
        /* The automatic domain goes with the last device attached to it. */
        assert_int_equal(OPS(&s->env)->device_detach(c, dev, BACKEND_NO_PASID, NULL), 0);
        assert_int_equal(OPS(&s->env)->destroy(c, hwpt, NULL), -ENOENT);
        assert_int_equal(OPS(&s->env)->destroy(c, ioas, NULL), 0);
}

static void behaviour_11_destroy_manual_hwpt_in_use_ebusy(void **state) {
        ConfState *s = state_of(state);
        BackendContext *c;
        uint32_t ioas, dev, manual = 0;

        conf_require(s, BACKEND_FEATURE_HWPT_ALLOC);
        c = ctx_new(s);
        ioas = ioas_new(s, c);
        dev = bind(s, c, CONF_DEV_PLAIN);
        assert_int_equal(attach(s, c, dev, BACKEND_NO_PASID, ioas, NULL), 0);
        assert_int_equal(hwpt_alloc(s, c, dev, ioas, 0, &manual), 0);
        assert_int_equal(attach(s, c, dev, BACKEND_NO_PASID, manual, NULL), 0);
        assert_int_equal(OPS(&s->env)->destroy(c, manual, NULL), -EBUSY);
        assert_int_equal(OPS(&s->env)->device_detach(c, dev, BACKEND_NO_PASID, NULL), 0);
        assert_int_equal(OPS(&s->env)->destroy(c, ioas, NULL), -EBUSY); /* the manual HWPT */
        assert_int_equal(OPS(&s->env)->destroy(c, manual, NULL), 0);
        assert_int_equal(OPS(&s->env)->destroy(c, ioas, NULL), 0);
}

static void behaviour_12_domain_alignment(void **state) {
        ConfState *s = state_of(state);
        BackendContext *c = ctx_new(s);
        uint32_t ioas = ioas_new(s, c), dev = bind(s, c, CONF_DEV_PLAIN);
        IovaRange ranges[16];
        size_t n = ELEMENTSOF(ranges);
        uint64_t align = 0, iova;

        if (P < 2)
                conf_skip(s, "no page size");
        /* Fine without a domain... */
        assert_int_equal(map_fixed(s, c, ioas, BASE + P / 2, P / 2), 0);
        /* ...but a domain will not take it. */
        assert_int_equal(attach(s, c, dev, BACKEND_NO_PASID, ioas, NULL), -EADDRINUSE);
        assert_int_equal(unmap(s, c, ioas, BASE + P / 2, P / 2, NULL), 0);
        assert_int_equal(attach(s, c, dev, BACKEND_NO_PASID, ioas, NULL), 0);
        assert_int_equal(OPS(&s->env)->ioas_iova_ranges(c, ioas, ranges, &n, &align, NULL), 0);
        assert_int_equal(align, P);
        assert_int_equal(map_fixed(s, c, ioas, BASE + P / 2, P), -EINVAL);
        assert_int_equal(map_fixed(s, c, ioas, BASE, P / 2), -EINVAL);
        assert_int_equal(map_auto(s, c, ioas, 0, P / 2, &iova), -EINVAL);
        assert_int_equal(map_fixed(s, c, ioas, BASE, P), 0);
}

static void behaviour_13_hwpt_alloc_errors(void **state) {
        ConfState *s = state_of(state);
        BackendContext *c;
        uint32_t ioas, dev, plain = 0, parent = 0, nested = 0;
        uint8_t data[64] = {};
        HwptAllocArgs a = {
                .data_type = s->env.nested_data_type,
                .data = data,
                .data_len = s->env.nested_data_len,
        };

        conf_require(s, BACKEND_FEATURE_HWPT_ALLOC);
        c = ctx_new(s);
        ioas = ioas_new(s, c);
        a.dev_id = dev = bind(s, c, CONF_DEV_PASID);
        assert_int_equal(hwpt_alloc(s, c, dev, ioas, 1u << 30, NULL), -EOPNOTSUPP);
        assert_int_equal(hwpt_alloc(s, c, dev, ioas, 0, &plain), 0);
        /* Unknown data type for a paging HWPT. */
        a.pt_id = ioas;
        a.data_type = CONF_HWPT_DATA_UNKNOWN;
        a.data_len = 24;
        assert_int_equal(OPS(&s->env)->hwpt_alloc(c, &a, &nested, NULL), -EOPNOTSUPP);
        if (s->env.nested_data_len == 0)
                return;
        a.data_len = s->env.nested_data_len;
        a.data_type = s->env.nested_data_type;
        /* Parent without NEST_PARENT. */
        a.pt_id = plain;
        assert_int_equal(OPS(&s->env)->hwpt_alloc(c, &a, &nested, NULL), -EINVAL);
        assert_int_equal(hwpt_alloc(s, c, dev, ioas, BACKEND_HWPT_NEST_PARENT, &parent), 0);
        a.pt_id = parent;
        /* Unknown data type for a nested HWPT. */
        a.data_type = CONF_HWPT_DATA_UNKNOWN;
        assert_int_equal(OPS(&s->env)->hwpt_alloc(c, &a, &nested, NULL), -EOPNOTSUPP);
        a.data_type = s->env.nested_data_type;
        assert_int_equal(OPS(&s->env)->hwpt_alloc(c, &a, &nested, NULL), 0);
        /* Nested on nested. */
        a.pt_id = nested;
        assert_int_equal(OPS(&s->env)->hwpt_alloc(c, &a, &plain, NULL), -EINVAL);
        /* A parent in use by a nested HWPT cannot go. */
        assert_int_equal(OPS(&s->env)->destroy(c, parent, NULL), -EBUSY);
        assert_int_equal(OPS(&s->env)->destroy(c, nested, NULL), 0);
        assert_int_equal(OPS(&s->env)->destroy(c, parent, NULL), 0);
}

static void behaviour_14_auto_hwpt_gone_after_move(void **state) {
        ConfState *s = state_of(state);
        BackendContext *c = ctx_new(s);
        uint32_t ioas1 = ioas_new(s, c), ioas2 = ioas_new(s, c), dev = bind(s, c, CONF_DEV_PLAIN);
        uint32_t h1 = 0, h2 = 0;

        assert_int_equal(attach(s, c, dev, BACKEND_NO_PASID, ioas1, &h1), 0);
        assert_int_equal(attach(s, c, dev, BACKEND_NO_PASID, ioas2, &h2), 0);
        assert_int_not_equal(h1, h2);
        assert_int_equal(OPS(&s->env)->destroy(c, h1, NULL), -ENOENT);
        /* IOMMU_HWPT_ALLOC turns a failed pt_id lookup into EINVAL (iommufd_hwpt_alloc()). */
        if (backend_has_feature(s->env.backend, BACKEND_FEATURE_HWPT_ALLOC))
                assert_int_equal(hwpt_alloc(s, c, dev, h1, 0, NULL), -EINVAL);
        assert_int_equal(OPS(&s->env)->destroy(c, ioas1, NULL), 0);
}

static void behaviour_15_unmap_not_atomic(void **state) {
        ConfState *s = state_of(state);
        BackendContext *c = ctx_new(s);
        uint32_t ioas = ioas_new(s, c);
        uint64_t n;

        assert_int_equal(map_fixed(s, c, ioas, BASE, P), 0);
        assert_int_equal(map_fixed(s, c, ioas, BASE + 2 * P, 2 * P), 0);
        assert_int_equal(unmap(s, c, ioas, BASE, 3 * P, NULL), -ENOENT);
        /* The first area went before the cut was found; the cut one stayed. */
        assert_int_equal(unmap(s, c, ioas, BASE, P, NULL), -ENOENT);
        assert_int_equal(unmap(s, c, ioas, BASE + 2 * P, 2 * P, &n), 0);
        assert_int_equal(n, 2 * P);
}

/* ---- for cases in files of their own (conformance-case.h) ---- */

ConfState *conf_case_state(void **state) {
        return state_of(state);
}

ConfEnv *conf_case_env(ConfState *s) {
        return &s->env;
}

_Noreturn void conf_case_skip(ConfState *s, const char *reason) {
        conf_skip(s, "%s", reason);
}

void conf_case_require(ConfState *s, BackendFeature f) {
        conf_require(s, f);
}

BackendContext *conf_case_context(ConfState *s) {
        return ctx_new(s);
}

uint32_t conf_case_bind(ConfState *s, BackendContext *c, ConfRole role) {
        return bind(s, c, role);
}

uint32_t conf_case_ioas(ConfState *s, BackendContext *c) {
        return ioas_new(s, c);
}

uint64_t conf_case_va(ConfState *s, uint64_t src, uint64_t len) {
        return conf_va(s, src, len);
}

/* ---- the runner ---- */

#define T(f) { #f, f }
static const ConfTest conf_tests[] = {
        T(behaviour_01_destroy_id0_enoent),
        T(behaviour_02_size_rules),
        T(behaviour_03_unmap_empty_and_unmap_all),
        T(behaviour_04_no_splitting),
        T(behaviour_05_fixed_overlap_eexist),
        T(behaviour_06_unmap_range_containing_areas),
        T(behaviour_07_auto_iova),
        T(behaviour_07_auto_iova_avoids_reserved),
        T(behaviour_08_reserved_and_allowed),
        T(behaviour_09_iova_ranges),
        T(behaviour_10_copy),
        T(behaviour_11_destroy_in_use_ebusy),
        T(behaviour_11_destroy_manual_hwpt_in_use_ebusy),
        T(behaviour_12_domain_alignment),
        T(behaviour_13_hwpt_alloc_errors),
        T(behaviour_14_auto_hwpt_gone_after_move),
        T(behaviour_15_unmap_not_atomic),
        T(memory_pins_follow_domains),
        T(memory_enomem_at_memlock_limit),
        T(memory_copies_charged_once),
        T(memory_unpinnable_va_efault),
        T(dirty_only_with_the_flag_and_while_on),
        T(dirty_writes_read_and_cleared),
        T(dirty_bitmap_granularity_and_range),
        T(dirty_enable_clears_and_unmap_forgets),
};
#undef T

static int conf_setup(void **state) {
        const ConfCase *kase = *state;
        const ConfFactory *f = kase->factory;
        ConfState *s = calloc(1, sizeof(ConfState));
        uintptr_t p;
        int r;

        if (!s)
                return -1;
        /* Only the pages a test maps with a domain attached are ever touched. */
        s->arena_map_size = 2 * CONF_ARENA_ALIGN + CONF_ARENA_SPAN;
        s->arena_map = mmap(NULL, s->arena_map_size, PROT_READ | PROT_WRITE,
                            MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (s->arena_map == MAP_FAILED) {
                free(s);
                return -1;
        }
        p = ((uintptr_t)s->arena_map + CONF_ARENA_ALIGN - 1) & ~(uintptr_t)(CONF_ARENA_ALIGN - 1);
        s->arena = (void *)p;
        s->kase = kase;
        s->env.factory = f;
        r = f->setup(&s->env);
        if (r == -EOPNOTSUPP || r == -ENODEV)
                s->unavailable = true;
        else if (r < 0) {
                (void)munmap(s->arena_map, s->arena_map_size);
                free(s);
                return -1;
        }
        *state = s;
        return 0;
}

static int conf_teardown(void **state) {
        ConfState *s = *state;

        while (s->n_ctxs > 0)
                backend_context_free(s->ctxs[--s->n_ctxs]);
        while (s->n_fds > 0)
                safe_close(s->fds[--s->n_fds]);
        if (!s->unavailable)
                s->env.factory->teardown(&s->env);
        /* After the contexts: nothing pins the arena any more. */
        (void)munmap(s->arena_map, s->arena_map_size);
        free(s);
        return 0;
}

static void conf_run_one(void **state) {
        ConfState *s = *state;

        if (setjmp(s->skip_jmp) == 0)
                s->kase->test->fn(state);
}

int conformance_run(const ConfFactory *const *factories, size_t n_factories) {
        const struct {
                const ConfTest *tests;
                size_t n;
        } tables[] = {
                { conf_tests, ELEMENTSOF(conf_tests) },
                { conformance_device_tests, conformance_n_device_tests },
                { conformance_fault_tests, conformance_n_fault_tests },
                { conformance_file_tests, conformance_n_file_tests },
        };
        size_t n = 0, k = 0;
        struct CMUnitTest *tests;
        ConfCase *cases;
        char **names;
        int r;

        FOREACH_ARRAY(t, tables, ELEMENTSOF(tables))
                n += n_factories * t->n;
        tests = calloc(n, sizeof(struct CMUnitTest));
        cases = calloc(n, sizeof(ConfCase));
        names = calloc(n, sizeof(char *));
        if (!tests || !names || !cases)
                abort();
        for (size_t i = 0; i < n_factories; i++)
                FOREACH_ARRAY(tab, tables, ELEMENTSOF(tables))
                        for (size_t j = 0; j < tab->n; j++, k++) {
                                const ConfTest *t = &tab->tests[j];

                                if (asprintf(&names[k], "%s/%s", factories[i]->name, t->name) < 0)
                                        abort();
                                cases[k] = (ConfCase){ factories[i], t, &tests[k], &names[k] };
                                tests[k] = (struct CMUnitTest){
                                        .name = names[k],
                                        .test_func = conf_run_one,
                                        .setup_func = conf_setup,
                                        .teardown_func = conf_teardown,
                                        .initial_state = &cases[k],
                                };
                        }
        r = _cmocka_run_group_tests("conformance", tests, n, NULL, NULL);
        for (size_t i = 0; i < n; i++)
                free(names[i]);
        free(names);
        free(tests);
        free(cases);
        return r;
}
