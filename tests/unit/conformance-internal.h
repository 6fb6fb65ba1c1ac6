/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * What the files of the conformance suite share: a case's state (the factory's environment
 * plus everything to release at teardown), skipping, and the helpers every case uses to make
 * contexts, open and bind devices, map and attach.  conformance.c holds the cases the kernel
 * selftests pin down and the runner; conformance-devices.c binding, groups, HWPTs, PASIDs,
 * options and memory fds; conformance-faults.c fault queues and broken contracts;
 * conformance-files.c what follows from binding per open file; conformance-memory.c pins and
 * their charge, through the narrower conformance-case.h.
 */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include "conformance.h"
#include "macros.h"

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
static inline _printf_(2, 3) _Noreturn void conf_skip(ConfState *s, const char *fmt, ...) {
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
static inline void conf_require(ConfState *s, BackendFeature f) {
        if (!backend_has_feature(s->env.backend, f))
                conf_skip(s, "backend %s does not offer %s", s->env.factory->name,
                          backend_feature_to_string(f));
}

static inline ConfState *state_of(void **state) {
        ConfState *s = *state;

        if (s->unavailable)
                conf_skip(s, "backend %s is not available here: %s", s->env.factory->name,
                          s->env.unavailable[0] ? s->env.unavailable : "no reason given");
        return s;
}

static inline BackendContext *ctx_new(ConfState *s) {
        BackendContext *c = NULL;

        assert_true(s->n_ctxs < CONF_MAX_CTX);
        assert_int_equal(OPS(&s->env)->context_new(s->env.backend, &c, NULL), 0);
        s->ctxs[s->n_ctxs++] = c;
        return c;
}

static inline void ctx_free(ConfState *s, BackendContext *c) {
        for (size_t i = 0; i < s->n_ctxs; i++)
                if (s->ctxs[i] == c) {
                        s->ctxs[i] = s->ctxs[--s->n_ctxs];
                        break;
                }
        backend_context_free(c);
}

/* Opens the device in role, or skips the test when the factory has none. */
static inline int dev_open(ConfState *s, ConfRole role) {
        static const char *const role_names[_CONF_ROLE_MAX] = {
                [CONF_DEV_PLAIN] = "plain",
                [CONF_DEV_PASID] = "pasid",
                [CONF_DEV_GROUP_A] = "group-a",
                [CONF_DEV_GROUP_B] = "group-b",
                [CONF_DEV_HOST_SIBLING] = "host-sibling",
                [CONF_DEV_DIRECT] = "direct",
        };
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

static inline void dev_close(ConfState *s, int fd) {
        for (size_t i = 0; i < s->n_fds; i++)
                if (s->fds[i] == fd) {
                        s->fds[i] = s->fds[--s->n_fds];
                        break;
                }
        safe_close(fd);
}

static inline uint32_t bind(ConfState *s, BackendContext *c, ConfRole role) {
        uint32_t id = 0;

        assert_int_equal(OPS(&s->env)->device_bind(c, dev_open(s, role), &id, NULL), 0);
        assert_int_not_equal(id, 0);
        return id;
}

static inline uint32_t ioas_new(ConfState *s, BackendContext *c) {
        uint32_t id = 0;

        assert_int_equal(OPS(&s->env)->ioas_alloc(c, &id, NULL), 0);
        assert_int_not_equal(id, 0);
        return id;
}

/* A user VA of real memory with the low bits of src (see CONF_ARENA_ALIGN). */
static inline uint64_t conf_va(ConfState *s, uint64_t src, uint64_t len) {
        uint64_t off = src & (CONF_ARENA_ALIGN - 1);

        assert_true(len <= CONF_ARENA_SPAN);
        return (uint64_t)(uintptr_t)s->arena + off;
}

/* Maps [iova, iova+len) from memory whose VA has iova's low bits (sub-page offset included). */
static inline int map_fixed(ConfState *s, BackendContext *c, uint32_t ioas, uint64_t iova,
                            uint64_t len) {
        uint64_t at = iova;

        return OPS(&s->env)->ioas_map_va(c, ioas,
                                         BACKEND_MAP_FIXED_IOVA | BACKEND_MAP_READABLE |
                                                 BACKEND_MAP_WRITEABLE,
                                         conf_va(s, iova, len), len, &at, NULL);
}

/* An automatic map of memory whose VA has src's low bits (src 0: a huge-page aligned VA). */
static inline int map_auto(ConfState *s, BackendContext *c, uint32_t ioas, uint64_t src,
                           uint64_t len, uint64_t *ret_iova) {
        return OPS(&s->env)->ioas_map_va(c, ioas, BACKEND_MAP_READABLE | BACKEND_MAP_WRITEABLE,
                                         conf_va(s, src, len), len, ret_iova, NULL);
}

/* The alignment an automatic IOVA for this source and length is promised. */
static inline uint64_t auto_align(ConfState *s, uint64_t align) {
        return MIN(align, s->env.auto_align_max);
}

static inline int unmap(ConfState *s, BackendContext *c, uint32_t ioas, uint64_t iova,
                        uint64_t len, uint64_t *ret) {
        uint64_t dummy;

        return OPS(&s->env)->ioas_unmap(c, ioas, iova, len, ret ?: &dummy, NULL);
}

static inline int attach(ConfState *s, BackendContext *c, uint32_t dev, uint32_t pasid,
                         uint32_t pt, uint32_t *ret_hwpt) {
        uint32_t id = pt;
        int r;

        r = OPS(&s->env)->device_attach(c, dev, pasid, &id, NULL);
        if (r == 0 && ret_hwpt)
                *ret_hwpt = id;
        return r;
}

static inline int hwpt_alloc(ConfState *s, BackendContext *c, uint32_t dev, uint32_t pt,
                             uint32_t flags, uint32_t *ret) {
        HwptAllocArgs a = { .flags = flags, .dev_id = dev, .pt_id = pt };
        uint32_t dummy;

        return OPS(&s->env)->hwpt_alloc(c, &a, ret ?: &dummy, NULL);
}

static inline bool has_resv(ConfState *s) {
        return s->env.plain_resv.start <= s->env.plain_resv.last;
}

/* The PASID width of a bound device; 0 when it has none or its kernel cannot say. */
static inline uint32_t pasid_bits(ConfState *s, BackendContext *c, uint32_t dev) {
        HwInfo info;

        assert_int_equal(OPS(&s->env)->hw_info(c, dev, &info, NULL), 0);
        return info.max_pasid_log2;
}

/* Skips a case that attaches at a PASID of a device that has none to attach. */
static inline void require_pasid(ConfState *s, BackendContext *c, uint32_t dev) {
        if (pasid_bits(s, c, dev) == 0)
                conf_skip(s, "the %s factory's pasid device has no PASIDs (its IOMMU reports a "
                          "PASID width of 0)", s->env.factory->name);
}

#define P (s->env.page_size)
#define BASE (s->env.base)

/* An HWPT data type no IOMMU defines (the kernel's mock IOMMU uses 0xdead). */
#define CONF_HWPT_DATA_UNKNOWN 0xbad0da7au

/* The cases of the other files, run after conformance.c's own, in this order. */
extern const ConfTest conformance_device_tests[];   /* conformance-devices.c */
extern const size_t conformance_n_device_tests;
extern const ConfTest conformance_fault_tests[];    /* conformance-faults.c */
extern const size_t conformance_n_fault_tests;
extern const ConfTest conformance_file_tests[];     /* conformance-files.c */
extern const size_t conformance_n_file_tests;
