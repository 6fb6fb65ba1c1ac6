/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* Conformance cases: binding, groups, attaching; HWPT flags and PASIDs; options and memory fds. */

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

#include "conformance-internal.h"
#include "iommufd-abi.h"
#include "macros.h"

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
        /* 0: unbound now; 1: maybe not (backend-kernel cannot see other processes' copies). */
        assert_true(OPS(&s->env)->device_unbind(c, b, NULL) >= 0);
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

#define T(f) { #f, f }
const ConfTest conformance_device_tests[] = {
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
};
#undef T
const size_t conformance_n_device_tests = ELEMENTSOF(conformance_device_tests);
