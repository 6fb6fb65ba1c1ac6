/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * backend-kernel without IOMMU_IOAS_MAP_FILE: memory fds are mapped into the daemon and their
 * VA given to IOMMU_IOAS_MAP, the mappings tracked per area and kept per context.  Counted
 * through the syscall seam of the kernel responder.
 */

#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "backend-kernel.h"
#include "fake-backend.h"
#include "iommufd-abi.h"
#include "kernel-responder.h"
#include "macros.h"

#define PAGE UINT64_C(4096)
#define RW (BACKEND_MAP_READABLE | BACKEND_MAP_WRITEABLE)
#define IDLE_MAX 2

typedef struct Env {
        char root[64];
        char path[96];
        Backend *fake;
        KernelResponder *resp;
        Backend *kernel;
        BackendContext *ctx;
        uint32_t ioas;
} Env;

static int setup_idle(void **state, size_t idle_max) {
        BackendKernelConfig cfg = BACKEND_KERNEL_CONFIG_INIT;
        Error err = ERROR_INIT;
        Env *e = calloc(1, sizeof(*e));

        assert_non_null(e);
        strcpy(e->root, "/tmp/iommud-test-mapcache-XXXXXX");
        assert_non_null(mkdtemp(e->root));
        /* No devices: sysfs and the device directory only have to exist. */
        snprintf(e->path, sizeof(e->path), "%s/sys", e->root);
        assert_int_equal(mkdir(e->path, 0755), 0);
        cfg.sysfs_root = e->path;
        snprintf(e->path, sizeof(e->path), "%s/dev", e->root);
        assert_int_equal(mkdir(e->path, 0755), 0);
        cfg.dev_root = e->path;

        assert_int_equal(fake_backend_new(&e->fake), 0);
        assert_int_equal(kernel_responder_new(&e->resp, e->fake, e->path), 0);
        kernel_responder_disable(e->resp, IOMMUD_IOMMUFD_CMD_IOAS_MAP_FILE);
        cfg.syscalls = &kernel_responder_syscalls;
        cfg.userdata = e->resp;
        cfg.fallback_idle_max = idle_max;
        assert_int_equal(backend_kernel_new(&e->kernel, &cfg, &err), 0);
        assert_false(backend_has_feature(e->kernel, BACKEND_FEATURE_MAP_FILE));
        assert_int_equal(e->kernel->ops->context_new(e->kernel, &e->ctx, &err), 0);
        assert_int_equal(e->kernel->ops->ioas_alloc(e->ctx, &e->ioas, &err), 0);
        *state = e;
        return 0;
}

static int setup_cached(void **state) {
        return setup_idle(state, IDLE_MAX);
}

static int setup_uncached(void **state) {
        return setup_idle(state, 0);
}

static int teardown(void **state) {
        Env *e = *state;
        char path[96];

        backend_context_free(e->ctx);
        /* The context took every mapping with it, idle ones too. */
        assert_int_equal(backend_kernel_fallback_mappings(e->kernel), 0);
        assert_int_equal(e->resp->mapped_bytes, 0);
        assert_int_equal(e->resp->n_munmaps, e->resp->n_mmaps);
        backend_free(e->kernel);
        assert_int_equal(e->resp->n_fds, 0);
        kernel_responder_free(e->resp);
        backend_free(e->fake);
        snprintf(path, sizeof(path), "%s/sys", e->root);
        assert_int_equal(rmdir(path), 0);
        assert_int_equal(rmdir(e->path), 0);
        assert_int_equal(rmdir(e->root), 0);
        free(e);
        return 0;
}

static int test_memfd(size_t size) {
        int fd = memfd_create("iommud-test-mem", MFD_CLOEXEC | MFD_ALLOW_SEALING);

        assert_true(fd >= 0);
        assert_int_equal(ftruncate(fd, (off_t)size), 0);
        return fd;
}

/* How many lines of /proc/self/maps name the test memfd. */
static unsigned maps_of_test_memfd(void) {
        char line[512];
        unsigned n = 0;
        FILE *f = fopen("/proc/self/maps", "re");

        assert_non_null(f);
        while (fgets(line, sizeof(line), f))
                if (strstr(line, "memfd:iommud-test-mem"))
                        n++;
        fclose(f);
        return n;
}

static const BackendOps *K(Env *e) {
        return e->kernel->ops;
}

/* ---- areas and their mappings, without idle room ---- */

static void test_map_file_fallback(void **state) {
        Env *e = *state;
        Error err = ERROR_INIT;
        _cleanup_close_ int mem = test_memfd(4 * PAGE);
        uint64_t iova = 0, unmapped = 0;
        unsigned before = maps_of_test_memfd();

        /* A sub-page offset: the mmap starts at the page below and the VA is offset. */
        assert_int_equal(K(e)->ioas_map_file(e->ctx, e->ioas, RW, mem, PAGE + 100, PAGE, &iova,
                                             &err),
                         0);
        assert_int_equal(e->resp->last_request, IOMMUD_IOMMU_IOAS_MAP);
        assert_int_equal(e->resp->n_mmaps, 1);
        assert_int_equal(e->resp->last_mmap_prot, PROT_READ | PROT_WRITE);
        assert_int_equal(e->resp->mapped_bytes, PAGE + 100);
        assert_int_equal(backend_kernel_fallback_mappings(e->kernel), 1);
        assert_int_equal(maps_of_test_memfd(), before + 1);
        assert_int_equal(fake_backend_n_areas(kernel_responder_context(
                                 e->resp, K(e)->context_fd(e->ctx)), e->ioas),
                         1);

        /* Read-only DMA maps the fd read-only. */
        assert_int_equal(K(e)->ioas_map_file(e->ctx, e->ioas, BACKEND_MAP_READABLE, mem, 0, PAGE,
                                             &iova, &err),
                         0);
        assert_int_equal(e->resp->last_mmap_prot, PROT_READ);
        assert_int_equal(K(e)->ioas_unmap(e->ctx, e->ioas, iova, PAGE, &unmapped, &err), 0);
        assert_int_equal(e->resp->n_munmaps, 1);

        assert_int_equal(K(e)->ioas_unmap(e->ctx, e->ioas, 0, UINT64_MAX, &unmapped, &err), 0);
        assert_int_equal(unmapped, PAGE);
        assert_int_equal(e->resp->n_munmaps, 2);
        assert_int_equal(e->resp->mapped_bytes, 0);
        assert_int_equal(backend_kernel_fallback_mappings(e->kernel), 0);
        assert_int_equal(maps_of_test_memfd(), before);
}

static void test_fallback_unmap_releases_exactly_what_went(void **state) {
        Env *e = *state;
        Error err = ERROR_INIT;
        _cleanup_close_ int mem = test_memfd(8 * PAGE);
        const uint64_t base = 0x100000;
        uint64_t unmapped;

        /* Four areas at base, base+2P, base+4P, base+8P (each one page). */
        for (unsigned i = 0; i < 4; i++) {
                uint64_t iova = base + (i < 3 ? 2 * i : 8) * PAGE;
                assert_int_equal(K(e)->ioas_map_file(e->ctx, e->ioas, RW | BACKEND_MAP_FIXED_IOVA,
                                                     mem, i * PAGE, PAGE, &iova, &err),
                                 0);
        }
        assert_int_equal(backend_kernel_fallback_mappings(e->kernel), 4);

        /* A range holding the first two areas and the gaps between. */
        assert_int_equal(K(e)->ioas_unmap(e->ctx, e->ioas, base, 4 * PAGE, &unmapped, &err), 0);
        assert_int_equal(unmapped, 2 * PAGE);
        assert_int_equal(e->resp->n_munmaps, 2);
        assert_int_equal(backend_kernel_fallback_mappings(e->kernel), 2);

        /* A range that cuts nothing but holds no area: the kernel says ENOENT, nothing moves. */
        assert_int_equal(K(e)->ioas_unmap(e->ctx, e->ioas, base + 5 * PAGE, PAGE, &unmapped, &err),
                         -ENOENT);
        assert_int_equal(backend_kernel_fallback_mappings(e->kernel), 2);

        /* The rest goes with the IOAS. */
        assert_int_equal(K(e)->destroy(e->ctx, e->ioas, &err), 0);
        assert_int_equal(e->resp->n_munmaps, 4);
        assert_int_equal(backend_kernel_fallback_mappings(e->kernel), 0);
}

/*
 * Enough areas for the bookkeeping to span several nodes of its tree, and entries the kernel
 * dropped in a refused, non-atomic unmap: they stay until a new mapping takes their place or
 * a later unmap covers them.
 */
static void test_fallback_many_areas_stale_entries(void **state) {
        Env *e = *state;
        Error err = ERROR_INIT;
        _cleanup_close_ int mem = test_memfd(64 * PAGE);
        const uint64_t base = 0x1000000;
        uint64_t iova, unmapped;

        for (unsigned i = 0; i < 64; i++) {
                iova = base + 2 * i * PAGE;
                assert_int_equal(K(e)->ioas_map_file(e->ctx, e->ioas, RW | BACKEND_MAP_FIXED_IOVA,
                                                     mem, i * PAGE, PAGE, &iova, &err),
                                 0);
        }
        assert_int_equal(backend_kernel_fallback_mappings(e->kernel), 64);

        /* Cuts area 40: the kernel has dropped areas 0-39 and says ENOENT; the mmaps stay. */
        assert_int_equal(K(e)->ioas_unmap(e->ctx, e->ioas, base, 80 * PAGE + 100, &unmapped,
                                          &err),
                         -ENOENT);
        assert_int_equal(e->resp->n_munmaps, 0);
        assert_int_equal(backend_kernel_fallback_mappings(e->kernel), 64);

        /*
         * A new mapping where area 10 was replaces its stale entry; it maps the first page
         * of the file again, which (stale) area 0's mapping still covers: no new mmap.
         */
        iova = base + 20 * PAGE;
        assert_int_equal(K(e)->ioas_map_file(e->ctx, e->ioas, RW | BACKEND_MAP_FIXED_IOVA, mem, 0,
                                             PAGE, &iova, &err),
                         0);
        assert_int_equal(e->resp->n_mmaps, 64);
        assert_int_equal(e->resp->n_munmaps, 1);
        assert_int_equal(backend_kernel_fallback_mappings(e->kernel), 63);

        /* Unmapping the span of areas 0-39 releases the new area and the 39 stale ones. */
        assert_int_equal(K(e)->ioas_unmap(e->ctx, e->ioas, base, 80 * PAGE, &unmapped, &err), 0);
        assert_int_equal(unmapped, PAGE);
        assert_int_equal(e->resp->n_munmaps, 40);
        assert_int_equal(backend_kernel_fallback_mappings(e->kernel), 24);

        /* Areas 40-63 go with the IOAS. */
        assert_int_equal(K(e)->destroy(e->ctx, e->ioas, &err), 0);
        assert_int_equal(e->resp->n_munmaps, 64);
        assert_int_equal(backend_kernel_fallback_mappings(e->kernel), 0);
}

static void test_fallback_copy_shares_mapping(void **state) {
        Env *e = *state;
        Error err = ERROR_INIT;
        _cleanup_close_ int mem = test_memfd(4 * PAGE);
        uint64_t iova = 0, dst = 0, unmapped;
        uint32_t ioas2;

        assert_int_equal(K(e)->ioas_alloc(e->ctx, &ioas2, &err), 0);
        assert_int_equal(K(e)->ioas_map_file(e->ctx, e->ioas, RW, mem, 0, 4 * PAGE, &iova, &err),
                         0);
        assert_int_equal(K(e)->ioas_copy(e->ctx, ioas2, e->ioas, RW, iova + PAGE, PAGE, &dst,
                                         &err),
                         0);
        /* The source area goes; the copy still references the pages. */
        assert_int_equal(K(e)->ioas_unmap(e->ctx, e->ioas, iova, 4 * PAGE, &unmapped, &err), 0);
        assert_int_equal(e->resp->n_munmaps, 0);
        assert_int_equal(backend_kernel_fallback_mappings(e->kernel), 1);
        assert_int_equal(K(e)->ioas_unmap(e->ctx, ioas2, dst, PAGE, &unmapped, &err), 0);
        assert_int_equal(e->resp->n_munmaps, 1);
        assert_int_equal(backend_kernel_fallback_mappings(e->kernel), 0);
}

static void test_fallback_failed_map_releases(void **state) {
        Env *e = *state;
        Error err = ERROR_INIT;
        _cleanup_close_ int mem = test_memfd(4 * PAGE);
        uint64_t iova = 0x200000;

        assert_int_equal(K(e)->ioas_map_file(e->ctx, e->ioas, RW | BACKEND_MAP_FIXED_IOVA, mem, 0,
                                             PAGE, &iova, &err),
                         0);
        assert_int_equal(K(e)->ioas_map_file(e->ctx, e->ioas, RW | BACKEND_MAP_FIXED_IOVA, mem,
                                             PAGE, PAGE, &iova, &err),
                         -EEXIST);
        assert_non_null(strstr(err.message, "overlaps an existing mapping"));
        assert_int_equal(e->resp->n_mmaps, 2);
        assert_int_equal(e->resp->n_munmaps, 1);
        assert_int_equal(backend_kernel_fallback_mappings(e->kernel), 1);
        error_clear(&err);

        /* mmap itself failing (not a mappable fd) is said as such. */
        int rfd[2];
        assert_int_equal(pipe2(rfd, O_CLOEXEC), 0);
        assert_true(K(e)->ioas_map_file(e->ctx, e->ioas, RW, rfd[0], 0, PAGE, &iova, &err) < 0);
        assert_non_null(strstr(err.message, "cannot map memory fd"));
        safe_close(rfd[0]);
        safe_close(rfd[1]);
        /* Context teardown releases what is left. */
}


/* ---- the cache ---- */

static int map(Env *e, uint32_t flags, int fd, uint64_t start, uint64_t length,
               uint64_t *iova) {
        Error err = ERROR_INIT;
        int r = e->kernel->ops->ioas_map_file(e->ctx, e->ioas, flags, fd, start, length, iova,
                                              &err);

        error_clear(&err);
        return r;
}

static void unmap(Env *e, uint64_t iova, uint64_t length) {
        Error err = ERROR_INIT;
        uint64_t unmapped = 0;

        assert_int_equal(e->kernel->ops->ioas_unmap(e->ctx, e->ioas, iova, length, &unmapped,
                                                    &err),
                         0);
        assert_int_equal(unmapped, length);
}

static size_t mappings(Env *e) {
        return backend_kernel_fallback_mappings(e->kernel);
}

/* A second map of the same memfd, of the same range or one inside it, does no mmap. */
static void test_second_map_reuses(void **state) {
        Env *e = *state;
        _cleanup_close_ int mem = test_memfd(16 * PAGE);
        uint64_t a = 0, b = 0, c = 0;

        assert_int_equal(map(e, RW, mem, 0, 16 * PAGE, &a), 0);
        assert_int_equal(e->resp->n_mmaps, 1);
        assert_int_equal(map(e, RW, mem, 0, 16 * PAGE, &b), 0);
        /* Read-only, a sub-page offset, inside: the read-write mapping serves it. */
        assert_int_equal(map(e, BACKEND_MAP_READABLE, mem, 4 * PAGE + 8, PAGE, &c), 0);
        assert_int_equal(e->resp->n_mmaps, 1);
        assert_int_equal(mappings(e), 1);
        assert_int_not_equal(a, b);

        /* The same range of another memfd is another file. */
        _cleanup_close_ int other = test_memfd(16 * PAGE);
        uint64_t d = 0;
        assert_int_equal(map(e, RW, other, 0, 16 * PAGE, &d), 0);
        assert_int_equal(e->resp->n_mmaps, 2);

        /* A range the mapping does not cover takes a new one. */
        assert_int_equal(ftruncate(mem, (off_t)(32 * PAGE)), 0);
        uint64_t f = 0;
        assert_int_equal(map(e, RW, mem, 8 * PAGE, 16 * PAGE, &f), 0);
        assert_int_equal(e->resp->n_mmaps, 3);
}

/* Map, Unmap, Map of the same memfd: the idle mapping serves the second map. */
static void test_idle_mapping_kept(void **state) {
        Env *e = *state;
        _cleanup_close_ int mem = test_memfd(16 * PAGE);
        uint64_t iova = 0;

        for (unsigned i = 0; i < 4; i++) {
                assert_int_equal(map(e, RW, mem, 0, 16 * PAGE, &iova), 0);
                unmap(e, iova, 16 * PAGE);
        }
        assert_int_equal(e->resp->n_mmaps, 1);
        assert_int_equal(e->resp->n_munmaps, 0);
        assert_int_equal(mappings(e), 1);
}

/* Without idle room, dropping the last area that uses a mapping drops the mapping. */
static void test_last_area_drops_mapping(void **state) {
        Env *e = *state;
        _cleanup_close_ int mem = test_memfd(16 * PAGE);
        uint64_t a = 0, b = 0;

        assert_int_equal(map(e, RW, mem, 0, 16 * PAGE, &a), 0);
        assert_int_equal(map(e, RW, mem, 0, 8 * PAGE, &b), 0);
        assert_int_equal(e->resp->n_mmaps, 1);
        unmap(e, a, 16 * PAGE);
        assert_int_equal(e->resp->n_munmaps, 0);
        unmap(e, b, 8 * PAGE);
        assert_int_equal(e->resp->n_munmaps, 1);
        assert_int_equal(mappings(e), 0);
        assert_int_equal(e->resp->mapped_bytes, 0);
}

/* Idle mappings beyond the bound go, the least recently used first. */
static void test_idle_bounded_lru(void **state) {
        Env *e = *state;
        int mem[IDLE_MAX + 1];
        uint64_t iova = 0;

        for (unsigned i = 0; i < ELEMENTSOF(mem); i++) {
                mem[i] = test_memfd(4 * PAGE);
                assert_int_equal(map(e, RW, mem[i], 0, 4 * PAGE, &iova), 0);
                unmap(e, iova, 4 * PAGE);
        }
        assert_int_equal(e->resp->n_mmaps, IDLE_MAX + 1);
        assert_int_equal(e->resp->n_munmaps, 1);
        assert_int_equal(mappings(e), IDLE_MAX);

        /* The last one is still there; the first went and costs an mmap again. */
        assert_int_equal(map(e, RW, mem[IDLE_MAX], 0, 4 * PAGE, &iova), 0);
        assert_int_equal(e->resp->n_mmaps, IDLE_MAX + 1);
        unmap(e, iova, 4 * PAGE);
        assert_int_equal(map(e, RW, mem[0], 0, 4 * PAGE, &iova), 0);
        assert_int_equal(e->resp->n_mmaps, IDLE_MAX + 2);
        for (unsigned i = 0; i < ELEMENTSOF(mem); i++)
                close(mem[i]);
        /* Areas in use do not count against the bound, and the context drops them all. */
        assert_int_equal(mappings(e), IDLE_MAX + 1);
}

/* The file shrank under an idle mapping: the range is checked against its size now. */
static void test_shrunk_file(void **state) {
        Env *e = *state;
        _cleanup_close_ int mem = test_memfd(16 * PAGE);
        uint64_t iova = 0;

        assert_int_equal(map(e, RW, mem, 0, 16 * PAGE, &iova), 0);
        unmap(e, iova, 16 * PAGE);
        assert_int_equal(ftruncate(mem, (off_t)(4 * PAGE)), 0);
        assert_int_equal(map(e, RW, mem, 0, 16 * PAGE, &iova), -EINVAL);
        assert_int_equal(map(e, RW, mem, 0, 4 * PAGE, &iova), 0);
        assert_int_equal(e->resp->n_mmaps, 1);
}

/*
 * A cached read-write mapping does not lend write access that the fd or the file no longer
 * gives: a read-only fd of the same memfd, or a write seal added since.
 */
static void test_reuse_needs_the_access(void **state) {
        Env *e = *state;
        _cleanup_close_ int mem = test_memfd(4 * PAGE), ro = -EBADF;
        char path[64];
        uint64_t iova = 0;

        assert_int_equal(map(e, RW, mem, 0, 4 * PAGE, &iova), 0);
        unmap(e, iova, 4 * PAGE);
        snprintf(path, sizeof(path), "/proc/self/fd/%d", mem);
        ro = open(path, O_RDONLY | O_CLOEXEC);
        assert_true(ro >= 0);
        assert_int_equal(map(e, RW, ro, 0, 4 * PAGE, &iova), -EACCES);
        /* Reading through it is fine, and the cached mapping serves it. */
        assert_int_equal(map(e, BACKEND_MAP_READABLE, ro, 0, 4 * PAGE, &iova), 0);
        unmap(e, iova, 4 * PAGE);
        assert_int_equal(e->resp->n_mmaps, 1);

        assert_int_equal(fcntl(mem, F_ADD_SEALS, F_SEAL_FUTURE_WRITE), 0);
        assert_int_equal(map(e, RW, mem, 0, 4 * PAGE, &iova), -EPERM);
        assert_int_equal(map(e, BACKEND_MAP_READABLE, mem, 0, 4 * PAGE, &iova), 0);
        assert_int_equal(e->resp->n_mmaps, 1);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_map_file_fallback, setup_uncached, teardown),
                cmocka_unit_test_setup_teardown(test_fallback_unmap_releases_exactly_what_went,
                                                setup_uncached, teardown),
                cmocka_unit_test_setup_teardown(test_fallback_many_areas_stale_entries,
                                                setup_uncached, teardown),
                cmocka_unit_test_setup_teardown(test_fallback_copy_shares_mapping, setup_uncached,
                                                teardown),
                cmocka_unit_test_setup_teardown(test_fallback_failed_map_releases, setup_uncached,
                                                teardown),
                cmocka_unit_test_setup_teardown(test_second_map_reuses, setup_uncached,
                                                teardown),
                cmocka_unit_test_setup_teardown(test_idle_mapping_kept, setup_cached, teardown),
                cmocka_unit_test_setup_teardown(test_last_area_drops_mapping, setup_uncached,
                                                teardown),
                cmocka_unit_test_setup_teardown(test_idle_bounded_lru, setup_cached, teardown),
                cmocka_unit_test_setup_teardown(test_shrunk_file, setup_cached, teardown),
                cmocka_unit_test_setup_teardown(test_reuse_needs_the_access, setup_cached,
                                                teardown),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
