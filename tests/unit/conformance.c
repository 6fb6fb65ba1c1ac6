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
#include "conformance.h"
#include "iommufd-abi.h"
#include "macros.h"

/* ---- per-test state: the env plus everything to release at teardown ---- */

#define CONF_MAX_FDS 32
#define CONF_MAX_CTX 8

/*
 * IOMMU_IOAS_MAP maps the caller's own memory: with a domain attached the kernel pins the
 * pages at once (and pins every existing area when a domain arrives), so a VA nobody mapped
 * gives EFAULT.  Sources therefore point into an arena of real anonymous memory: source X
 * becomes arena + (X mod CONF_ARENA_ALIGN), which keeps the low bits the kernel derives an
 * automatic IOVA's alignment from (it never uses more than the huge page size).
 */
#define CONF_ARENA_ALIGN (UINT64_C(4) << 20)
#define CONF_ARENA_SPAN (UINT64_C(1) << 20) /* the longest source range a test maps */

typedef struct ConfTest {
        const char *name;
        CMUnitTestFunction fn;
} ConfTest;

typedef struct ConfCase {
        const ConfFactory *factory;
        const ConfTest *test;
        struct CMUnitTest *unit; /* the entry cmocka runs */
        char **name;             /* its name, owned: a skip rewrites it */
} ConfCase;

typedef struct ConfState {
        ConfEnv env;
        const ConfCase *kase;
        jmp_buf skip_jmp;
        bool unavailable;
        int fds[CONF_MAX_FDS];
        size_t n_fds;
        BackendContext *ctxs[CONF_MAX_CTX];
        size_t n_ctxs;
        void *arena;           /* CONF_ARENA_ALIGN-aligned inside the mapping below */
        void *arena_map;
        size_t arena_map_size;
} ConfState;

#define OPS(e) ((e)->backend->ops)

/*
 * Skipping.  cmocka 1.1's skip() reports "not ok N # SKIP name", which TAP consumers (meson)
 * count as a failure.  A case that cannot run here instead renames itself to
 * "NAME # SKIP reason" and returns: cmocka reads the name when it prints the result, so the
 * line becomes "ok N - NAME # SKIP reason", a TAP skip directive that meson counts as skipped.
 */
_printf_(2, 3) static _Noreturn void conf_skip(ConfState *s, const char *fmt, ...) {
        char buf[256], *name;
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(buf, sizeof(buf), fmt, ap);
        va_end(ap);
        /* One line: a newline would end the directive. */
        for (char *p = buf; *p; p++)
                if (*p == '\n' || *p == '#')
                        *p = ' ';
        if (asprintf(&name, "%s # SKIP %s", *s->kase->name, buf) < 0)
                abort();
        free(*s->kase->name);
        *s->kase->name = name;
        s->kase->unit->name = name;
        longjmp(s->skip_jmp, 1);
}

/* Skips a test whose subject the backend does not offer (e.g. HWPT objects on VFIO type1). */
static void conf_require(ConfState *s, BackendFeature f) {
        if (!backend_has_feature(s->env.backend, f))
                conf_skip(s, "backend %s does not offer %s", s->env.factory->name,
                          backend_feature_to_string(f));
}

static ConfState *state_of(void **state) {
        ConfState *s = *state;

        if (s->unavailable)
                conf_skip(s, "backend %s is not available here: %s", s->env.factory->name,
                          s->env.unavailable[0] ? s->env.unavailable : "no reason given");
        return s;
}

static BackendContext *ctx_new(ConfState *s) {
        BackendContext *c = NULL;

        assert_true(s->n_ctxs < CONF_MAX_CTX);
        assert_int_equal(OPS(&s->env)->context_new(s->env.backend, &c, NULL), 0);
        s->ctxs[s->n_ctxs++] = c;
        return c;
}

static void ctx_free(ConfState *s, BackendContext *c) {
        for (size_t i = 0; i < s->n_ctxs; i++)
                if (s->ctxs[i] == c) {
                        s->ctxs[i] = s->ctxs[--s->n_ctxs];
                        break;
                }
        backend_context_free(c);
}

static const char *const role_names[_CONF_ROLE_MAX] = {
        [CONF_DEV_PLAIN] = "plain",
        [CONF_DEV_PASID] = "pasid",
        [CONF_DEV_GROUP_A] = "group-a",
        [CONF_DEV_GROUP_B] = "group-b",
        [CONF_DEV_HOST_SIBLING] = "host-sibling",
        [CONF_DEV_DIRECT] = "direct",
};

/* Opens the device in role, or skips the test when the factory has none. */
static int dev_open(ConfState *s, ConfRole role) {
        int fd = -EBADF, r;

        r = s->env.factory->open_device(&s->env, role, &fd);
        if (r == -EOPNOTSUPP || r == -ENODEV)
                conf_skip(s, "no %s device: %s", role_names[role],
                          s->env.missing[role][0] ? s->env.missing[role] : "none given");
        assert_int_equal(r, 0);
        assert_true(s->n_fds < CONF_MAX_FDS);
        s->fds[s->n_fds++] = fd;
        return fd;
}

static void dev_close(ConfState *s, int fd) {
        for (size_t i = 0; i < s->n_fds; i++)
                if (s->fds[i] == fd) {
                        s->fds[i] = s->fds[--s->n_fds];
                        break;
                }
        safe_close(fd);
}

static uint32_t bind(ConfState *s, BackendContext *c, ConfRole role) {
        uint32_t id = 0;

        assert_int_equal(OPS(&s->env)->device_bind(c, dev_open(s, role), &id, NULL), 0);
        assert_int_not_equal(id, 0);
        return id;
}

static uint32_t ioas_new(ConfState *s, BackendContext *c) {
        uint32_t id = 0;

        assert_int_equal(OPS(&s->env)->ioas_alloc(c, &id, NULL), 0);
        assert_int_not_equal(id, 0);
        return id;
}

/* A user VA of real memory with the low bits of src (see CONF_ARENA_ALIGN). */
static uint64_t conf_va(ConfState *s, uint64_t src, uint64_t len) {
        uint64_t off = src & (CONF_ARENA_ALIGN - 1);

        assert_true(len <= CONF_ARENA_SPAN);
        return (uint64_t)(uintptr_t)s->arena + off;
}

/* Maps [iova, iova+len) from memory whose VA has iova's low bits (sub-page offset included). */
static int map_fixed(ConfState *s, BackendContext *c, uint32_t ioas, uint64_t iova, uint64_t len) {
        uint64_t at = iova;

        return OPS(&s->env)->ioas_map_va(c, ioas,
                                         BACKEND_MAP_FIXED_IOVA | BACKEND_MAP_READABLE |
                                                 BACKEND_MAP_WRITEABLE,
                                         conf_va(s, iova, len), len, &at, NULL);
}

/* An automatic map of memory whose VA has src's low bits (src 0: a huge-page aligned VA). */
static int map_auto(ConfState *s, BackendContext *c, uint32_t ioas, uint64_t src, uint64_t len,
                    uint64_t *ret_iova) {
        return OPS(&s->env)->ioas_map_va(c, ioas, BACKEND_MAP_READABLE | BACKEND_MAP_WRITEABLE,
                                         conf_va(s, src, len), len, ret_iova, NULL);
}

/* The alignment an automatic IOVA for this source and length is promised. */
static uint64_t auto_align(ConfState *s, uint64_t align) {
        return MIN(align, s->env.auto_align_max);
}

static int unmap(ConfState *s, BackendContext *c, uint32_t ioas, uint64_t iova, uint64_t len,
                 uint64_t *ret) {
        uint64_t dummy;

        return OPS(&s->env)->ioas_unmap(c, ioas, iova, len, ret ?: &dummy, NULL);
}

static int attach(ConfState *s, BackendContext *c, uint32_t dev, uint32_t pasid, uint32_t pt,
                  uint32_t *ret_hwpt) {
        uint32_t id = pt;
        int r;

        r = OPS(&s->env)->device_attach(c, dev, pasid, &id, NULL);
        if (r == 0 && ret_hwpt)
                *ret_hwpt = id;
        return r;
}

static int hwpt_alloc(ConfState *s, BackendContext *c, uint32_t dev, uint32_t pt, uint32_t flags,
                      uint32_t *ret) {
        HwptAllocArgs a = { .flags = flags, .dev_id = dev, .pt_id = pt };
        uint32_t dummy;

        return OPS(&s->env)->hwpt_alloc(c, &a, ret ?: &dummy, NULL);
}

static bool has_resv(ConfState *s) {
        return s->env.plain_resv.start <= s->env.plain_resv.last;
}

/* The PASID width of a bound device; 0 when it has none or its kernel cannot say. */
static uint32_t pasid_bits(ConfState *s, BackendContext *c, uint32_t dev) {
        HwInfo info;

        assert_int_equal(OPS(&s->env)->hw_info(c, dev, &info, NULL), 0);
        return info.max_pasid_log2;
}

/* Skips a case that attaches at a PASID of a device that has none to attach. */
static void require_pasid(ConfState *s, BackendContext *c, uint32_t dev) {
        if (pasid_bits(s, c, dev) == 0)
                conf_skip(s, "the %s factory's pasid device has no PASIDs (its IOMMU reports a "
                          "PASID width of 0)", s->env.factory->name);
}

#define P (s->env.page_size)
#define BASE (s->env.base)

/* An HWPT data type no IOMMU defines (the kernel's mock IOMMU uses 0xdead). */
#define CONF_HWPT_DATA_UNKNOWN 0xbad0da7au

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

/* ---- bind, groups, attach ---- */

static void bind_already_bound_einval(void **state) {
        ConfState *s = state_of(state);
        BackendContext *c = ctx_new(s), *c2 = ctx_new(s);
        int fd = dev_open(s, CONF_DEV_PLAIN);
        uint32_t id;

        assert_int_equal(OPS(&s->env)->device_bind(c, fd, &id, NULL), 0);
        assert_int_equal(OPS(&s->env)->device_bind(c, fd, &id, NULL), -EINVAL);
        assert_int_equal(OPS(&s->env)->device_bind(c2, fd, &id, NULL), -EINVAL);
}

static void bind_host_sibling_eperm(void **state) {
        ConfState *s = state_of(state);
        BackendContext *c = ctx_new(s);
        uint32_t id;

        assert_int_equal(OPS(&s->env)->device_bind(c, dev_open(s, CONF_DEV_HOST_SIBLING), &id,
                                                   NULL), -EPERM);
}

static void bind_direct_region_einval(void **state) {
        ConfState *s = state_of(state);
        BackendContext *c = ctx_new(s);
        uint32_t id;

        assert_int_equal(OPS(&s->env)->device_bind(c, dev_open(s, CONF_DEV_DIRECT), &id, NULL),
                         -EINVAL);
}

static void bind_group_owned_by_other_context_eperm(void **state) {
        ConfState *s = state_of(state);
        BackendContext *c = ctx_new(s), *c2 = ctx_new(s);
        int fd_b = dev_open(s, CONF_DEV_GROUP_B);
        uint32_t a, b;

        a = bind(s, c, CONF_DEV_GROUP_A);
        assert_int_equal(OPS(&s->env)->device_bind(c2, fd_b, &b, NULL), -EPERM);
        assert_int_equal(OPS(&s->env)->device_bind(c, fd_b, &b, NULL), 0);
        assert_int_not_equal(a, b);
        /* Once the first context lets go, the group is free for the other. */
        ctx_free(s, c);
        for (size_t i = s->n_fds; i > 0; i--)
                dev_close(s, s->fds[i - 1]);
        (void)bind(s, c2, CONF_DEV_GROUP_B);
}

static void group_devices_share_hwpt(void **state) {
        ConfState *s = state_of(state);
        BackendContext *c = ctx_new(s);
        uint32_t ioas1 = ioas_new(s, c), ioas2 = ioas_new(s, c);
        uint32_t a = bind(s, c, CONF_DEV_GROUP_A), b = 0, ha = 0, hb = 0;
        int fd_b = dev_open(s, CONF_DEV_GROUP_B);

        assert_int_equal(OPS(&s->env)->device_bind(c, fd_b, &b, NULL), 0);
        assert_int_equal(attach(s, c, a, BACKEND_NO_PASID, ioas1, &ha), 0);
        assert_int_equal(attach(s, c, b, BACKEND_NO_PASID, ioas2, NULL), -EINVAL);
        assert_int_equal(attach(s, c, b, BACKEND_NO_PASID, ioas1, &hb), 0);
        assert_int_equal(ha, hb);
        /* The shared HWPT stays while one member is attached. */
        assert_int_equal(OPS(&s->env)->device_detach(c, a, BACKEND_NO_PASID, NULL), 0);
        assert_int_equal(OPS(&s->env)->destroy(c, hb, NULL), -EBUSY);
        /* The caller lets go of its own copy too (keeping it is a teardown case of its own). */
        dev_close(s, fd_b);
        assert_int_equal(OPS(&s->env)->device_unbind(c, b, NULL), 0);
        assert_int_equal(OPS(&s->env)->destroy(c, hb, NULL), -ENOENT);
}

static void attach_reserved_collision_eaddrinuse(void **state) {
        ConfState *s = state_of(state);
        BackendContext *c = ctx_new(s);
        uint32_t ioas = ioas_new(s, c), dev;
        IovaRange r = s->env.plain_resv;

        dev = bind(s, c, CONF_DEV_PLAIN);
        if (!has_resv(s))
                conf_skip(s, "the plain device has no reserved region");
        assert_int_equal(map_fixed(s, c, ioas, r.start & ~(P - 1), P), 0);
        assert_int_equal(attach(s, c, dev, BACKEND_NO_PASID, ioas, NULL), -EADDRINUSE);
        assert_int_equal(unmap(s, c, ioas, 0, UINT64_MAX, NULL), 0);
        assert_int_equal(attach(s, c, dev, BACKEND_NO_PASID, ioas, NULL), 0);
}

static void attach_again_replaces(void **state) {
        ConfState *s = state_of(state);
        BackendContext *c = ctx_new(s);
        uint32_t ioas1 = ioas_new(s, c), ioas2 = ioas_new(s, c), dev = bind(s, c, CONF_DEV_PLAIN);
        uint32_t h1 = 0, h2 = 0;
        uint64_t iova = 0;

        assert_int_equal(attach(s, c, dev, BACKEND_NO_PASID, ioas1, &h1), 0);
        assert_int_equal(map_fixed(s, c, ioas2, BASE, P), 0);
        assert_int_equal(attach(s, c, dev, BACKEND_NO_PASID, ioas2, &h2), 0);
        assert_int_not_equal(h1, h2);
        /* The device is in the new IOAS: its mapping is there, the old IOAS is free. */
        assert_int_equal(map_fixed(s, c, ioas2, BASE, P), -EEXIST);
        assert_int_equal(OPS(&s->env)->destroy(c, ioas2, NULL), -EBUSY);
        assert_int_equal(OPS(&s->env)->destroy(c, ioas1, NULL), 0);
        assert_int_equal(map_auto(s, c, ioas2, 0, P, &iova), 0);
        assert_int_not_equal(iova, BASE);
}

static void attach_manual_hwpt_replaces(void **state) {
        ConfState *s = state_of(state);
        BackendContext *c;
        uint32_t ioas1, ioas2, dev, manual = 0, h = 0;

        conf_require(s, BACKEND_FEATURE_HWPT_ALLOC);
        c = ctx_new(s);
        ioas1 = ioas_new(s, c);
        ioas2 = ioas_new(s, c);
        dev = bind(s, c, CONF_DEV_PLAIN);
        assert_int_equal(hwpt_alloc(s, c, dev, ioas2, 0, &manual), 0);
        assert_int_equal(attach(s, c, dev, BACKEND_NO_PASID, ioas1, &h), 0);
        assert_int_equal(attach(s, c, dev, BACKEND_NO_PASID, manual, &h), 0);
        assert_int_equal(h, manual);
        assert_int_equal(OPS(&s->env)->destroy(c, manual, NULL), -EBUSY);
        /* The IOAS left behind is free again. */
        assert_int_equal(OPS(&s->env)->destroy(c, ioas1, NULL), 0);
}

static void object_ids_shared_across_types(void **state) {
        ConfState *s = state_of(state);
        BackendContext *c = ctx_new(s);
        uint32_t ioas = ioas_new(s, c), dev = bind(s, c, CONF_DEV_PLAIN), ioas2;

        assert_int_not_equal(ioas, dev);
        assert_int_equal(OPS(&s->env)->destroy(c, dev, NULL), -EBUSY);
        assert_int_equal(OPS(&s->env)->destroy(c, ioas, NULL), 0);
        ioas2 = ioas_new(s, c);
        assert_int_equal(ioas2, ioas); /* lowest free id again */
        /* An id of another type is not an IOAS. */
        assert_int_equal(map_fixed(s, c, dev, BASE, P), -ENOENT);
}

static void context_free_releases_everything(void **state) {
        ConfState *s = state_of(state);
        BackendContext *c = ctx_new(s), *c2;
        uint32_t ioas = ioas_new(s, c), dev = bind(s, c, CONF_DEV_PLAIN);

        assert_int_equal(attach(s, c, dev, BACKEND_NO_PASID, ioas, NULL), 0);
        assert_int_equal(map_fixed(s, c, ioas, BASE, 4 * P), 0);
        ctx_free(s, c);
        for (size_t i = s->n_fds; i > 0; i--)
                dev_close(s, s->fds[i - 1]);
        c2 = ctx_new(s);
        (void)bind(s, c2, CONF_DEV_PLAIN);
}

/* ---- HWPT flags, PASID ---- */

/* Each device the factory has of the plain and pasid roles: where they run in separate boots. */
static void hwpt_dirty_tracking_where_supported(void **state) {
        ConfState *s = state_of(state);
        BackendContext *c;
        uint32_t ioas;
        const ConfRole roles[] = { CONF_DEV_PLAIN, CONF_DEV_PASID };
        unsigned tried = 0;

        conf_require(s, BACKEND_FEATURE_HW_INFO);
        conf_require(s, BACKEND_FEATURE_HWPT_ALLOC);
        c = ctx_new(s);
        ioas = ioas_new(s, c);
        FOREACH_ARRAY(role, roles, ELEMENTSOF(roles)) {
                uint32_t dev = 0;
                HwInfo info;
                int fd = -EBADF, r;

                r = s->env.factory->open_device(&s->env, *role, &fd);
                if (r == -EOPNOTSUPP || r == -ENODEV)
                        continue;
                assert_int_equal(r, 0);
                assert_true(s->n_fds < CONF_MAX_FDS);
                s->fds[s->n_fds++] = fd;
                assert_int_equal(OPS(&s->env)->device_bind(c, fd, &dev, NULL), 0);
                assert_int_equal(OPS(&s->env)->hw_info(c, dev, &info, NULL), 0);
                assert_int_equal(hwpt_alloc(s, c, dev, ioas, BACKEND_HWPT_DIRTY_TRACKING, NULL),
                                 (info.capabilities & BACKEND_HW_CAP_DIRTY_TRACKING) ? 0 :
                                                                                       -EOPNOTSUPP);
                tried++;
        }
        if (tried == 0)
                conf_skip(s, "no plain or pasid device: %s; %s", s->env.missing[CONF_DEV_PLAIN],
                          s->env.missing[CONF_DEV_PASID]);
}

static void hwpt_nested_data_validation(void **state) {
        ConfState *s = state_of(state);
        BackendContext *c;
        uint32_t ioas, dev, parent = 0, id;
        uint8_t data[64] = {};
        HwptAllocArgs a = { .data = data };

        /* Nesting by the data the factory's IOMMU takes: the feature probe infers NESTING from
         * IOMMU_HWPT_INVALIDATE, which the responder does not answer. */
        conf_require(s, BACKEND_FEATURE_HWPT_ALLOC);
        c = ctx_new(s);
        ioas = ioas_new(s, c);
        a.dev_id = dev = bind(s, c, CONF_DEV_PASID);
        if (s->env.nested_data_len == 0)
                conf_skip(s, "no nested HWPT data for this IOMMU");
        assert_int_equal(hwpt_alloc(s, c, dev, ioas, BACKEND_HWPT_NEST_PARENT, &parent), 0);
        a.pt_id = parent;
        a.data_type = s->env.nested_data_type;
        /*
         * The driver's structure has its size exactly (iommu_copy_struct_from_user): shorter,
         * or longer even with only zeros past it, is EINVAL.
         */
        a.data_len = s->env.nested_data_len - 1;
        assert_int_equal(OPS(&s->env)->hwpt_alloc(c, &a, &id, NULL), -EINVAL);
        a.data_len = s->env.nested_data_len + 8;
        assert_int_equal(OPS(&s->env)->hwpt_alloc(c, &a, &id, NULL), -EINVAL);
        a.data_len = s->env.nested_data_len;
        assert_int_equal(OPS(&s->env)->hwpt_alloc(c, &a, &id, NULL), 0);
        a.data_len = s->env.nested_data_len + 8;
        a.data_type = BACKEND_HWPT_DATA_NONE;
        assert_int_equal(OPS(&s->env)->hwpt_alloc(c, &a, &id, NULL), -EINVAL);
        /* A nesting parent cannot also take faults. */
        assert_int_equal(hwpt_alloc(s, c, dev, ioas,
                                    BACKEND_HWPT_NEST_PARENT | BACKEND_HWPT_FAULT_ID_VALID, NULL),
                         -EOPNOTSUPP);
}

static void pasid_attach_rules(void **state) {
        ConfState *s = state_of(state);
        BackendContext *c;
        uint32_t ioas, dev, plain, ph = 0, np = 0, h = 0;
        HwInfo info;

        conf_require(s, BACKEND_FEATURE_HWPT_ALLOC);
        c = ctx_new(s);
        ioas = ioas_new(s, c);
        dev = bind(s, c, CONF_DEV_PASID);
        /* By the device, not the feature bits: a probe cannot see PASID attach everywhere. */
        require_pasid(s, c, dev);
        assert_int_equal(OPS(&s->env)->hw_info(c, dev, &info, NULL), 0);
        assert_true(info.max_pasid_log2 > 0);
        assert_int_equal(hwpt_alloc(s, c, dev, ioas, BACKEND_HWPT_PASID, &ph), 0);
        assert_int_equal(hwpt_alloc(s, c, dev, ioas, 0, &np), 0);

        assert_int_equal(attach(s, c, dev, 1, ph, &h), 0);
        assert_int_equal(h, ph);
        assert_int_equal(OPS(&s->env)->destroy(c, ph, NULL), -EBUSY);
        assert_int_equal(attach(s, c, dev, 2, np, NULL), -EINVAL);
        if (info.max_pasid_log2 < 32)
                assert_int_equal(attach(s, c, dev, UINT32_C(1) << info.max_pasid_log2, ph, NULL),
                                 -EINVAL);
        /* An IOAS at a PASID gets an automatic PASID-capable HWPT. */
        assert_int_equal(attach(s, c, dev, 3, ioas, &h), 0);
        assert_int_not_equal(h, ioas);
        /* The RID is independent of the PASIDs. */
        assert_int_equal(attach(s, c, dev, BACKEND_NO_PASID, np, NULL), 0);
        assert_int_equal(OPS(&s->env)->device_detach(c, dev, 1, NULL), 0);
        assert_int_equal(OPS(&s->env)->destroy(c, ph, NULL), 0);

        plain = bind(s, c, CONF_DEV_PLAIN);
        assert_int_equal(attach(s, c, plain, 1, ioas, NULL), -EINVAL);
}

/* ---- options, memory fds ---- */

static void option_rlimit_mode_and_huge_pages(void **state) {
        ConfState *s = state_of(state);
        BackendContext *c;
        uint64_t v = 7;
        uint32_t ioas;
        int r;

        conf_require(s, BACKEND_FEATURE_OPTION);
        c = ctx_new(s);
        assert_int_equal(OPS(&s->env)->option(c, BACKEND_OPTION_RLIMIT_MODE,
                                              BACKEND_OPTION_OP_GET, 0, &v, NULL), 0);
        assert_int_equal(v, 0);
        v = 1;
        r = OPS(&s->env)->option(c, BACKEND_OPTION_RLIMIT_MODE, BACKEND_OPTION_OP_SET, 0, &v, NULL);
        if (r != -EPERM) {
                assert_int_equal(r, 0);
                assert_int_equal(OPS(&s->env)->option(c, BACKEND_OPTION_RLIMIT_MODE,
                                                      BACKEND_OPTION_OP_GET, 0, &v, NULL), 0);
                assert_int_equal(v, 1);
                v = 2;
                assert_int_equal(OPS(&s->env)->option(c, BACKEND_OPTION_RLIMIT_MODE,
                                                      BACKEND_OPTION_OP_SET, 0, &v, NULL), -EINVAL);
        }
        ioas = ioas_new(s, c);
        v = 0;
        r = OPS(&s->env)->option(c, BACKEND_OPTION_RLIMIT_MODE, BACKEND_OPTION_OP_SET, 0, &v, NULL);
        assert_true(r == -EBUSY || r == -EPERM);

        assert_int_equal(OPS(&s->env)->option(c, BACKEND_OPTION_HUGE_PAGES, BACKEND_OPTION_OP_GET,
                                              ioas, &v, NULL), 0);
        assert_int_equal(v, 1);
        v = 0;
        assert_int_equal(OPS(&s->env)->option(c, BACKEND_OPTION_HUGE_PAGES, BACKEND_OPTION_OP_SET,
                                              ioas, &v, NULL), 0);
        assert_int_equal(OPS(&s->env)->option(c, BACKEND_OPTION_HUGE_PAGES, BACKEND_OPTION_OP_GET,
                                              ioas, &v, NULL), 0);
        assert_int_equal(v, 0);
        v = 2;
        assert_int_equal(OPS(&s->env)->option(c, BACKEND_OPTION_HUGE_PAGES, BACKEND_OPTION_OP_SET,
                                              ioas, &v, NULL), -EINVAL);
        assert_int_equal(OPS(&s->env)->option(c, BACKEND_OPTION_HUGE_PAGES, BACKEND_OPTION_OP_GET,
                                              ioas + 100, &v, NULL), -ENOENT);
        assert_int_equal(OPS(&s->env)->option(c, 77, BACKEND_OPTION_OP_GET, 0, &v, NULL),
                         -EOPNOTSUPP);
}

static void map_file_validates_fd(void **state) {
        ConfState *s = state_of(state);
        BackendContext *c = ctx_new(s);
        uint32_t ioas = ioas_new(s, c);
        const uint32_t rw = BACKEND_MAP_READABLE | BACKEND_MAP_WRITEABLE;
        _cleanup_close_ int fd = memfd_create("conformance", MFD_CLOEXEC);
        uint64_t iova = 0;

        assert_true(fd >= 0);
        assert_int_equal(ftruncate(fd, (off_t)(4 * P)), 0);
        assert_int_equal(OPS(&s->env)->ioas_map_file(c, ioas, rw, fd, 0, 4 * P, &iova, NULL), 0);
        assert_int_not_equal(iova, 0);
        assert_int_equal(OPS(&s->env)->ioas_map_file(c, ioas, rw, fd, P, 4 * P, &iova, NULL),
                         -EINVAL);
        assert_int_equal(OPS(&s->env)->ioas_map_file(c, ioas, rw, -1, 0, P, &iova, NULL), -EBADF);
        assert_int_equal(OPS(&s->env)->ioas_map_file(c, ioas, 0, fd, 0, P, &iova, NULL), -EINVAL);
        assert_int_equal(OPS(&s->env)->ioas_map_file(c, ioas, rw | (1u << 12), fd, 0, P, &iova,
                                                     NULL), -EOPNOTSUPP);
}

/*
 * A memory fd's automatic IOVA is aligned from the file offset, as IOMMU_IOAS_MAP_FILE does;
 * without MAP_FILE the backend's mmap fallback must give the kernel a VA with the same low bits.
 */
static void map_file_auto_iova_alignment(void **state) {
        ConfState *s = state_of(state);
        BackendContext *c = ctx_new(s);
        uint32_t ioas = ioas_new(s, c);
        const uint32_t rw = BACKEND_MAP_READABLE | BACKEND_MAP_WRITEABLE;
        _cleanup_close_ int fd = memfd_create("conformance", MFD_CLOEXEC);
        const struct {
                uint64_t start, len, align; /* in pages */
        } cases[] = {
                { 0, 16, 16 }, { 1, 4, 1 }, { 32, 2, 2 }, { 8, 8, 8 }, { 16, 5, 8 }, { 24, 32, 8 },
        };

        assert_true(fd >= 0);
        assert_int_equal(ftruncate(fd, (off_t)(64 * P)), 0);
        FOREACH_ARRAY(t, cases, ELEMENTSOF(cases)) {
                uint64_t iova = 0;

                assert_int_equal(OPS(&s->env)->ioas_map_file(c, ioas, rw, fd, t->start * P,
                                                             t->len * P, &iova, NULL), 0);
                assert_int_not_equal(iova, 0);
                if (iova % auto_align(s, t->align * P) != 0)
                        fail_msg("offset %" PRIu64 "P length %" PRIu64 "P: IOVA 0x%" PRIx64
                                 " is not aligned to 0x%" PRIx64, t->start, t->len, iova,
                                 auto_align(s, t->align * P));
        }
        assert_int_equal(unmap(s, c, ioas, 0, UINT64_MAX, NULL), 0);
}

/* ---- fault queues ---- */

typedef struct FaultSetup {
        BackendContext *c;
        uint32_t dev, ioas, fault, hwpt;
        int fd;
} FaultSetup;

static bool readable(int fd) {
        struct pollfd p = { .fd = fd, .events = POLLIN };

        assert_true(poll(&p, 1, 0) >= 0);
        return p.revents & POLLIN;
}

/*
 * A context with the pasid device attached to a fault-capable HWPT over an IOAS: a paging
 * HWPT where the backend takes faults there, else (Linux 6.12) a nested one over a parent.
 */
static void fault_setup(ConfState *s, FaultSetup *f) {
        uint8_t data[64] = {};
        HwptAllocArgs a = { .flags = BACKEND_HWPT_FAULT_ID_VALID };

        conf_require(s, BACKEND_FEATURE_FAULT_QUEUE);
        if (!s->env.factory->inject_fault)
                conf_skip(s, "faults cannot be injected");
        f->c = ctx_new(s);
        f->ioas = ioas_new(s, f->c);
        f->dev = bind(s, f->c, CONF_DEV_PASID);
        assert_int_equal(OPS(&s->env)->fault_queue_alloc(f->c, &f->fault, &f->fd, NULL), 0);
        a.dev_id = f->dev;
        a.pt_id = f->ioas;
        a.fault_id = f->fault;
        if (pasid_bits(s, f->c, f->dev) > 0)
                a.flags |= BACKEND_HWPT_PASID;
        if (s->env.faults_need_nesting) {
                assert_true(s->env.nested_data_len > 0 && s->env.nested_data_len <= sizeof(data));
                assert_int_equal(hwpt_alloc(s, f->c, f->dev, f->ioas, BACKEND_HWPT_NEST_PARENT,
                                            &a.pt_id), 0);
                a.data_type = s->env.nested_data_type;
                a.data_len = s->env.nested_data_len;
                a.data = data;
        }
        assert_int_equal(OPS(&s->env)->hwpt_alloc(f->c, &a, &f->hwpt, NULL), 0);
        assert_int_equal(attach(s, f->c, f->dev, BACKEND_NO_PASID, f->hwpt, NULL), 0);
}

/* A fault nothing takes: refused by the injector where it can tell, never queued. */
static void inject_unrouted(ConfState *s, FaultSetup *f, uint32_t pasid) {
        assert_int_equal(s->env.factory->inject_fault(&s->env, CONF_DEV_PASID, pasid, 0x5000,
                                                      FAULT_PERM_READ, true, 1),
                         s->env.factory->inject_unrouted_unknown ? 0 : -ENOENT);
        assert_false(readable(f->fd));
}

static void fault_inject_read_respond(void **state) {
        ConfState *s = state_of(state);
        FaultRecord buf[4];
        FaultSetup f;
        size_t n = 9;

        fault_setup(s, &f);
        assert_false(readable(f.fd));
        assert_int_equal(OPS(&s->env)->fault_read(f.c, f.fault, buf, 4, &n, NULL), 0);
        assert_int_equal(n, 0);
        assert_int_equal(s->env.factory->inject_fault(&s->env, CONF_DEV_PASID, BACKEND_NO_PASID,
                                                      0x2000, FAULT_PERM_WRITE, true, 7), 0);
        assert_true(readable(f.fd));
        assert_int_equal(OPS(&s->env)->fault_read(f.c, f.fault, buf, 4, &n, NULL), 0);
        assert_int_equal(n, 1);
        assert_false(readable(f.fd));
        assert_int_equal(buf[0].dev_id, f.dev);
        assert_int_equal(buf[0].addr, 0x2000);
        assert_int_equal(buf[0].grpid, 7);
        assert_int_equal(buf[0].perm, FAULT_PERM_WRITE);
        assert_int_equal(buf[0].flags, FAULT_FLAG_LAST_PAGE);

        assert_int_equal(OPS(&s->env)->fault_respond(f.c, f.fault, buf[0].cookie + 1000,
                                                     FAULT_RESPONSE_SUCCESS, NULL), -EINVAL);
        assert_int_equal(OPS(&s->env)->fault_respond(f.c, f.fault, buf[0].cookie,
                                                     FAULT_RESPONSE_SUCCESS, NULL), 0);
        assert_int_equal(OPS(&s->env)->fault_respond(f.c, f.fault, buf[0].cookie,
                                                     FAULT_RESPONSE_SUCCESS, NULL), -EINVAL);

        /* Cookies are unique per queue. */
        assert_int_equal(s->env.factory->inject_fault(&s->env, CONF_DEV_PASID, BACKEND_NO_PASID,
                                                      0x3000, FAULT_PERM_READ, true, 8), 0);
        assert_int_equal(s->env.factory->inject_fault(&s->env, CONF_DEV_PASID, BACKEND_NO_PASID,
                                                      0x4000, FAULT_PERM_READ, true, 9), 0);
        assert_int_equal(OPS(&s->env)->fault_read(f.c, f.fault, buf, 4, &n, NULL), 0);
        assert_int_equal(n, 2);
        assert_int_not_equal(buf[0].cookie, buf[1].cookie);
        /* The queue in use by a HWPT cannot go. */
        assert_int_equal(OPS(&s->env)->destroy(f.c, f.fault, NULL), -EBUSY);
}

/* A group of page requests is delivered whole, once its last page came. */
static void fault_group_delivered_whole(void **state) {
        ConfState *s = state_of(state);
        FaultRecord buf[4];
        FaultSetup f;
        size_t n = 9;
        int r;

        fault_setup(s, &f);
        r = s->env.factory->inject_fault(&s->env, CONF_DEV_PASID, BACKEND_NO_PASID, 0x1000,
                                         FAULT_PERM_READ, false, 7);
        if (r == -EOPNOTSUPP)
                conf_skip(s, "the %s factory's pasid device reports every page request as the "
                          "last of its group", s->env.factory->name);
        assert_int_equal(r, 0);
        /* An incomplete group is not delivered. */
        assert_false(readable(f.fd));
        assert_int_equal(OPS(&s->env)->fault_read(f.c, f.fault, buf, 4, &n, NULL), 0);
        assert_int_equal(n, 0);
        assert_int_equal(s->env.factory->inject_fault(&s->env, CONF_DEV_PASID, BACKEND_NO_PASID,
                                                      0x2000, FAULT_PERM_WRITE, true, 7), 0);
        assert_true(readable(f.fd));
        /* Whole groups only. */
        assert_int_equal(OPS(&s->env)->fault_read(f.c, f.fault, buf, 1, &n, NULL), 0);
        assert_int_equal(n, 0);
        assert_int_equal(OPS(&s->env)->fault_read(f.c, f.fault, buf, 4, &n, NULL), 0);
        assert_int_equal(n, 2);
        assert_false(readable(f.fd));
        assert_int_equal(buf[0].addr, 0x1000);
        assert_int_equal(buf[0].perm, FAULT_PERM_READ);
        assert_int_equal(buf[0].flags & FAULT_FLAG_LAST_PAGE, 0);
        assert_int_equal(buf[1].flags & FAULT_FLAG_LAST_PAGE, FAULT_FLAG_LAST_PAGE);
        assert_int_equal(buf[0].cookie, buf[1].cookie);
        assert_int_equal(OPS(&s->env)->fault_respond(f.c, f.fault, buf[0].cookie,
                                                     FAULT_RESPONSE_SUCCESS, NULL), 0);
}

static void fault_pasid_records(void **state) {
        ConfState *s = state_of(state);
        FaultRecord buf[2];
        FaultSetup f;
        size_t n;

        fault_setup(s, &f);
        require_pasid(s, f.c, f.dev);
        assert_int_equal(attach(s, f.c, f.dev, 5, f.hwpt, NULL), 0);
        assert_int_equal(s->env.factory->inject_fault(&s->env, CONF_DEV_PASID, 5, 0x5000,
                                                      FAULT_PERM_EXEC, true, 1), 0);
        assert_int_equal(OPS(&s->env)->fault_read(f.c, f.fault, buf, 2, &n, NULL), 0);
        assert_int_equal(n, 1);
        assert_int_equal(buf[0].pasid, 5);
        assert_int_equal(buf[0].flags, FAULT_FLAG_PASID_VALID | FAULT_FLAG_LAST_PAGE);
        /* Nothing with a fault queue at PASID 6. */
        inject_unrouted(s, &f, 6);
}

static void fault_invalid_on_detach(void **state) {
        ConfState *s = state_of(state);
        int (*count)(ConfEnv *, uint64_t *) = s->env.factory->auto_invalid_count;
        uint64_t before = 0, after = 0;
        FaultRecord buf[2];
        FaultSetup f;
        size_t n;

        fault_setup(s, &f);
        if (count)
                assert_int_equal(count(&s->env, &before), 0);
        assert_int_equal(s->env.factory->inject_fault(&s->env, CONF_DEV_PASID, BACKEND_NO_PASID,
                                                      0x1000, FAULT_PERM_READ, true, 1), 0);
        assert_int_equal(OPS(&s->env)->fault_read(f.c, f.fault, buf, 2, &n, NULL), 0);
        assert_int_equal(n, 1);
        assert_int_equal(s->env.factory->inject_fault(&s->env, CONF_DEV_PASID, BACKEND_NO_PASID,
                                                      0x2000, FAULT_PERM_READ, true, 2), 0);
        /* One group read and unanswered, one still queued: detach answers both. */
        assert_int_equal(OPS(&s->env)->device_detach(f.c, f.dev, BACKEND_NO_PASID, NULL), 0);
        /* Where the automatic answers can be counted (the kernel gives no count), both. */
        if (count) {
                assert_int_equal(count(&s->env, &after), 0);
                assert_int_equal(after - before, 2);
        }
        assert_false(readable(f.fd));
        assert_int_equal(OPS(&s->env)->fault_respond(f.c, f.fault, buf[0].cookie,
                                                     FAULT_RESPONSE_SUCCESS, NULL), -EINVAL);
        assert_int_equal(OPS(&s->env)->fault_read(f.c, f.fault, buf, 2, &n, NULL), 0);
        assert_int_equal(n, 0);
        /* Detached: nothing receives faults there any more. */
        inject_unrouted(s, &f, BACKEND_NO_PASID);
        assert_int_equal(OPS(&s->env)->destroy(f.c, f.hwpt, NULL), 0);
        assert_int_equal(OPS(&s->env)->destroy(f.c, f.fault, NULL), 0);
}

/* ---- contracts: what a caller may not pass ---- */

/* One broken call each: a NULL context, or a NULL where the op writes or reads. */
static int broken_call(ConfState *s, BackendContext *c, uint32_t ioas, unsigned i) {
        const BackendOps *ops = OPS(&s->env);
        uint64_t va = conf_va(s, 0, 0x1000);
        size_t n = 1;
        uint32_t id;

        switch (i) {
        case 0: return ops->destroy(NULL, ioas, NULL);
        case 1: return ops->ioas_alloc(c, NULL, NULL);
        case 2: return ops->ioas_map_va(c, ioas, BACKEND_MAP_READABLE, va, 0x1000, NULL, NULL);
        case 3: return ops->ioas_iova_ranges(c, ioas, NULL, &n, NULL, NULL);
        case 4: return ops->hwpt_alloc(c, NULL, &id, NULL);
        case 5: return ops->device_attach(c, 1, BACKEND_NO_PASID, NULL, NULL);
        case 6: return ops->fault_read(c, 1, NULL, 1, &n, NULL);
        case 7: return ops->option(c, BACKEND_OPTION_RLIMIT_MODE, BACKEND_OPTION_OP_GET, 0, NULL,
                                   NULL);
        }
        return 0;
}
#define N_BROKEN_CALLS 8u

/* Runs broken call i (all of them when i is N_BROKEN_CALLS) in a child; its wait status. */
static int broken_child(ConfState *s, BackendContext *c, uint32_t ioas, unsigned i,
                        bool critical) {
        int status = 0;
        pid_t pid;

        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                struct rlimit no_core = {};
                int null = open("/dev/null", O_WRONLY | O_CLOEXEC);

                (void)setrlimit(RLIMIT_CORE, &no_core);
                if (null >= 0)
                        (void)dup2(null, STDERR_FILENO);
                if (critical)
                        (void)setenv("IOMMUD_ASSERT_RETURN_IS_CRITICAL", "1", 1);
                else
                        (void)unsetenv("IOMMUD_ASSERT_RETURN_IS_CRITICAL");
                for (unsigned k = 0; k < N_BROKEN_CALLS; k++) {
                        if (i != N_BROKEN_CALLS && i != k)
                                continue;
                        if (broken_call(s, c, ioas, k) != -EINVAL)
                                _exit(10 + (int)k);
                }
                _exit(0);
        }
        assert_int_equal(waitpid(pid, &status, 0), pid);
        return status;
}

/*
 * A caller's programming error stops at the op it called: with
 * $IOMMUD_ASSERT_RETURN_IS_CRITICAL (tests) the process aborts there, without it (the
 * daemon) the op returns -EINVAL and the daemon keeps serving.
 */
static void contracts_broken_by_caller(void **state) {
        ConfState *s = state_of(state);
        BackendContext *c = ctx_new(s);
        uint32_t ioas = ioas_new(s, c);
        int status;

        for (unsigned i = 0; i < N_BROKEN_CALLS; i++) {
                status = broken_child(s, c, ioas, i, true);
                if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGABRT)
                        fail_msg("broken call %u did not abort (wait status 0x%x)", i, status);
        }
        status = broken_child(s, c, ioas, N_BROKEN_CALLS, false);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
                fail_msg("broken calls did not all return -EINVAL (wait status 0x%x)", status);
        /* Nothing happened to the context. */
        assert_int_equal(OPS(&s->env)->destroy(c, ioas, NULL), 0);
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
        T(bind_already_bound_einval),
        T(bind_host_sibling_eperm),
        T(bind_direct_region_einval),
        T(bind_group_owned_by_other_context_eperm),
        T(group_devices_share_hwpt),
        T(attach_reserved_collision_eaddrinuse),
        T(attach_again_replaces),
        T(attach_manual_hwpt_replaces),
        T(object_ids_shared_across_types),
        T(context_free_releases_everything),
        T(hwpt_dirty_tracking_where_supported),
        T(hwpt_nested_data_validation),
        T(pasid_attach_rules),
        T(option_rlimit_mode_and_huge_pages),
        T(map_file_validates_fd),
        T(map_file_auto_iova_alignment),
        T(fault_inject_read_respond),
        T(fault_group_delivered_whole),
        T(fault_pasid_records),
        T(fault_invalid_on_detach),
        T(contracts_broken_by_caller),
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
        size_t n = n_factories * ELEMENTSOF(conf_tests), k = 0;
        struct CMUnitTest *tests = calloc(n, sizeof(struct CMUnitTest));
        ConfCase *cases = calloc(n, sizeof(ConfCase));
        char **names = calloc(n, sizeof(char *));
        int r;

        if (!tests || !names || !cases)
                abort();
        for (size_t i = 0; i < n_factories; i++)
                FOREACH_ARRAY(t, conf_tests, ELEMENTSOF(conf_tests)) {
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
                        k++;
                }
        r = _cmocka_run_group_tests("conformance", tests, n, NULL, NULL);
        for (size_t i = 0; i < n; i++)
                free(names[i]);
        free(names);
        free(tests);
        free(cases);
        return r;
}
