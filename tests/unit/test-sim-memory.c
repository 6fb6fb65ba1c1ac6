/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * backend-sim's memory: what a map keeps of the memory it is given, when pages are pinned and
 * whom they are charged to, and device DMA through the page tables into that memory.  The
 * kernel-observable half of this (EFAULT, ENOMEM, locked memory per process) also runs in the
 * conformance suite against the real kernel.
 */

#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "backend-sim.h"
#include "macros.h"
#include "simtopo-builder.h"

#define P UINT64_C(4096)
#define DEV "0000:65:00.0"
#define DEV2 "0000:67:00.0"
#define IOVA UINT64_C(0x100000)

typedef struct Env {
        Backend *b;
        int dev_fd, dev2_fd;
} Env;

static int env_setup(void **state) {
        SimTopology *t = tb_new("memory");
        Env *e = calloc(1, sizeof(Env));
        size_t m, g;

        assert_non_null(e);
        m = tb_iommu(t, &(SimIommu){ .name = (char *)"dmar0", .kind = (char *)"intel",
                                     .hw_info_type = 1, .aperture_last = (UINT64_C(1) << 39) - 1,
                                     .page_sizes = 0x1000 | 0x200000, .pasid_bits = 20,
                                     .fault_queue = true });
        g = tb_group(t, 7, m);
        tb_device(t, g, DEV, "vfio-pci", 0x010802, 3, 20);
        g = tb_group(t, 9, m);
        tb_device(t, g, DEV2, "vfio-pci", 0x010802, 4, 0);
        assert_int_equal(backend_sim_new(&e->b, t, NULL, NULL), 0);
        tb_free(t);
        assert_int_equal(e->b->ops->device_open(e->b, DEV, &e->dev_fd, NULL), 0);
        assert_int_equal(e->b->ops->device_open(e->b, DEV2, &e->dev2_fd, NULL), 0);
        *state = e;
        return 0;
}

static int env_teardown(void **state) {
        Env *e = *state;
        BackendSimStats st;

        /* Every test gives back everything it pinned, charged and held open. */
        backend_sim_get_stats(e->b, &st);
        assert_int_equal(st.mappings, 0);
        assert_int_equal(st.pinned_bytes, 0);
        assert_int_equal(st.locked_bytes, 0);
        assert_int_equal(st.memory_files, 0);
        safe_close(e->dev_fd);
        safe_close(e->dev2_fd);
        backend_free(e->b);
        free(e);
        return 0;
}

static BackendContext *ctx(Env *e) {
        BackendContext *c = NULL;

        assert_int_equal(e->b->ops->context_new(e->b, &c, NULL), 0);
        return c;
}

static uint32_t ioas_new(Env *e, BackendContext *c) {
        uint32_t id = 0;

        assert_int_equal(e->b->ops->ioas_alloc(c, &id, NULL), 0);
        return id;
}

/*
 * Binds the device whose fd is *fd to c, as a client that hands its fd over and closes its own
 * copy: the binding is then the backend's alone, and ends with the context.
 */
static int bind_dev(Env *e, BackendContext *c, int *fd, uint32_t *ret_dev) {
        int r = e->b->ops->device_bind(c, *fd, ret_dev, NULL);

        *fd = safe_close(*fd);
        return r;
}

/* Binds the device (whose fd is *fd) to c and attaches it to ioas: the IOAS gets a domain. */
static uint32_t attach(Env *e, BackendContext *c, int *fd, uint32_t ioas) {
        uint32_t dev = 0, pt = ioas;

        assert_int_equal(bind_dev(e, c, fd, &dev), 0);
        assert_int_equal(e->b->ops->device_attach(c, dev, BACKEND_NO_PASID, &pt, NULL), 0);
        return dev;
}

static int memfd(uint64_t size) {
        int fd = memfd_create("sim-memory", MFD_CLOEXEC);

        assert_true(fd >= 0);
        assert_int_equal(ftruncate(fd, (off_t)size), 0);
        return fd;
}

static int map_file(Env *e, BackendContext *c, uint32_t ioas, int fd, uint64_t off, uint64_t len,
                    uint64_t iova, uint32_t rw) {
        uint64_t at = iova;

        return e->b->ops->ioas_map_file(c, ioas, BACKEND_MAP_FIXED_IOVA | rw, fd, off, len, &at,
                                        NULL);
}

static int unmap(Env *e, BackendContext *c, uint32_t ioas, uint64_t iova, uint64_t len) {
        uint64_t done = 0;

        return e->b->ops->ioas_unmap(c, ioas, iova, len, &done, NULL);
}

static BackendSimStats stats(Env *e) {
        BackendSimStats st;

        backend_sim_get_stats(e->b, &st);
        return st;
}

static uint64_t locked(Env *e, bool process, uint32_t id) {
        uint64_t v = UINT64_MAX;

        assert_int_equal(backend_sim_locked_bytes(e->b, process, id, &v), 0);
        return v;
}

#define RW (BACKEND_MAP_READABLE | BACKEND_MAP_WRITEABLE)

/* ---- files and pins ---- */

static void test_pins_follow_domains(void **state) {
        Env *e = *state;
        BackendContext *c = ctx(e);
        uint32_t ioas = ioas_new(e, c), dev, pt;
        int a = memfd(16 * P), b = memfd(P);

        /* A map keeps one copy of each memory file, however many maps use it. */
        assert_int_equal(map_file(e, c, ioas, a, 0, 4 * P, IOVA, RW), 0);
        assert_int_equal(map_file(e, c, ioas, a, 8 * P, 2 * P, IOVA + 8 * P, RW), 0);
        assert_int_equal(map_file(e, c, ioas, b, 0, P, IOVA + 16 * P, BACKEND_MAP_READABLE), 0);
        close(a);
        close(b);
        assert_int_equal(stats(e).memory_files, 2);
        assert_int_equal(stats(e).mappings, 3);
        /* Nothing is pinned without a domain; the first one pins everything, its end unpins. */
        assert_int_equal(stats(e).pinned_bytes, 0);
        dev = attach(e, c, &e->dev_fd, ioas);
        assert_int_equal(stats(e).pinned_bytes, 7 * P);
        assert_int_equal(e->b->ops->device_detach(c, dev, BACKEND_NO_PASID, NULL), 0);
        assert_int_equal(stats(e).pinned_bytes, 0);
        /* With CAP_IPC_LOCK (the default) nobody is charged. */
        pt = ioas;
        assert_int_equal(e->b->ops->device_attach(c, dev, BACKEND_NO_PASID, &pt, NULL), 0);
        assert_int_equal(stats(e).pinned_bytes, 7 * P);
        assert_int_equal(stats(e).locked_bytes, 0);
        assert_int_equal(unmap(e, c, ioas, IOVA, 4 * P), 0);
        assert_int_equal(stats(e).pinned_bytes, 3 * P);
        assert_int_equal(stats(e).memory_files, 2);
        backend_context_free(c);
        assert_int_equal(stats(e).memory_files, 0);
}

static void test_charged_per_user(void **state) {
        Env *e = *state;
        BackendContext *c1, *c2;
        uint32_t i1, i2;
        int fd = memfd(32 * P);

        backend_sim_set_memlock(e->b, false, 16 * P + 100);
        c1 = ctx(e);
        c2 = ctx(e);
        assert_int_equal(backend_sim_context_set_owner(c2, getuid(), 4242), 0);
        i1 = ioas_new(e, c1);
        i2 = ioas_new(e, c2);
        attach(e, c1, &e->dev_fd, i1);
        attach(e, c2, &e->dev2_fd, i2);

        /* RLIMIT_MODE 0: one uid, one account, whatever the context or process. */
        assert_int_equal(map_file(e, c1, i1, fd, 0, 8 * P, IOVA, RW), 0);
        assert_int_equal(map_file(e, c2, i2, fd, 0, 8 * P, IOVA, RW), 0);
        assert_int_equal(locked(e, false, getuid()), 16 * P);
        assert_int_equal(locked(e, true, 4242), 0);
        assert_int_equal(map_file(e, c2, i2, fd, 8 * P, P, IOVA + 8 * P, RW), -ENOMEM);
        assert_int_equal(stats(e).mappings, 2);
        /* Another user has its own. */
        assert_int_equal(unmap(e, c2, i2, 0, UINT64_MAX), 0);
        assert_int_equal(backend_sim_context_set_owner(c2, getuid() + 1, 4242), 0);
        assert_int_equal(map_file(e, c2, i2, fd, 0, 16 * P, IOVA, RW), 0);
        assert_int_equal(locked(e, false, getuid() + 1), 16 * P);
        assert_int_equal(locked(e, false, getuid()), 8 * P);

        /* Refunds: unmap, and context free. */
        assert_int_equal(unmap(e, c1, i1, IOVA, 8 * P), 0);
        assert_int_equal(locked(e, false, getuid()), 0);
        backend_context_free(c2);
        assert_int_equal(locked(e, false, getuid() + 1), 0);
        backend_context_free(c1);
        close(fd);
}

static void test_charged_per_process(void **state) {
        Env *e = *state;
        BackendContext *c;
        uint64_t mode = 1;
        uint32_t ioas;
        int fd = memfd(32 * P);

        backend_sim_set_memlock(e->b, false, 8 * P);
        c = ctx(e);
        assert_int_equal(e->b->ops->option(c, BACKEND_OPTION_RLIMIT_MODE, BACKEND_OPTION_OP_SET, 0,
                                           &mode, NULL), 0);
        ioas = ioas_new(e, c);
        attach(e, c, &e->dev_fd, ioas);
        assert_int_equal(map_file(e, c, ioas, fd, 0, 6 * P, IOVA, RW), 0);
        assert_int_equal(locked(e, true, getpid()), 6 * P);
        assert_int_equal(locked(e, false, getuid()), 0);
        /* A partial page counts whole; the limit is in whole pages too. */
        assert_int_equal(map_file(e, c, ioas, fd, 0, 3 * P, IOVA + 8 * P, RW), -ENOMEM);
        assert_int_equal(map_file(e, c, ioas, fd, 0, 2 * P, IOVA + 8 * P, RW), 0);
        assert_int_equal(locked(e, true, getpid()), 8 * P);
        /* The same memory mapped twice is charged twice, as the kernel does. */
        assert_int_equal(stats(e).pinned_bytes, 8 * P);
        backend_context_free(c);
        assert_int_equal(locked(e, true, getpid()), 0);
        close(fd);
}

/* The first domain pins what is mapped: at the limit, the attach fails and nothing changes. */
static void test_enomem_at_attach(void **state) {
        Env *e = *state;
        BackendContext *c = ctx(e);
        uint32_t ioas = ioas_new(e, c), dev = 0, pt;
        int fd = memfd(8 * P);

        backend_sim_set_memlock(e->b, false, 4 * P);
        assert_int_equal(map_file(e, c, ioas, fd, 0, 2 * P, IOVA, RW), 0);
        assert_int_equal(map_file(e, c, ioas, fd, 2 * P, 4 * P, IOVA + 4 * P, RW), 0);
        assert_int_equal(bind_dev(e, c, &e->dev_fd, &dev), 0);
        pt = ioas;
        assert_int_equal(e->b->ops->device_attach(c, dev, BACKEND_NO_PASID, &pt, NULL), -ENOMEM);
        assert_int_equal(stats(e).pinned_bytes, 0);
        assert_int_equal(locked(e, false, getuid()), 0);
        assert_int_equal(stats(e).mappings, 2);
        assert_int_equal(unmap(e, c, ioas, IOVA, 2 * P), 0);
        pt = ioas;
        assert_int_equal(e->b->ops->device_attach(c, dev, BACKEND_NO_PASID, &pt, NULL), 0);
        assert_int_equal(locked(e, false, getuid()), 4 * P);
        backend_context_free(c);
        close(fd);
}

/* A copy shares the pages of its source: what both pin is charged once. */
static void test_copy_shares_pages(void **state) {
        Env *e = *state;
        BackendContext *c = ctx(e);
        uint32_t ioas = ioas_new(e, c), other = ioas_new(e, c);
        uint64_t at = IOVA + 64 * P;
        int fd = memfd(8 * P);

        backend_sim_set_memlock(e->b, false, UINT64_MAX);
        attach(e, c, &e->dev_fd, ioas);
        assert_int_equal(map_file(e, c, ioas, fd, 0, 8 * P, IOVA, RW), 0);
        assert_int_equal(e->b->ops->ioas_copy(c, ioas, ioas, BACKEND_MAP_FIXED_IOVA | RW,
                                              IOVA + 2 * P, 4 * P, &at, NULL), 0);
        assert_int_equal(locked(e, false, getuid()), 8 * P);
        at = IOVA;
        assert_int_equal(e->b->ops->ioas_copy(c, other, ioas, BACKEND_MAP_FIXED_IOVA | RW, IOVA,
                                              8 * P, &at, NULL), 0);
        assert_int_equal(stats(e).mappings, 3);
        assert_int_equal(stats(e).pinned_bytes, 8 * P);
        /* The source goes: the copy in the pinned IOAS keeps its four pages. */
        assert_int_equal(unmap(e, c, ioas, IOVA, 8 * P), 0);
        assert_int_equal(locked(e, false, getuid()), 4 * P);
        /* A domain for the other IOAS pins the rest of the shared pages. */
        attach(e, c, &e->dev2_fd, other);
        assert_int_equal(locked(e, false, getuid()), 8 * P);
        assert_int_equal(stats(e).memory_files, 1);
        backend_context_free(c);
        close(fd);
}

/* ---- user VAs: what pin_user_pages() takes ---- */

/* The [vvar] mapping (VM_IO | VM_PFNMAP on x86), or false where this process has none. */
static bool find_vvar(uint64_t *ret_start, uint64_t *ret_len) {
        FILE *f = fopen("/proc/self/maps", "re");
        char line[512];
        bool found = false;

        assert_non_null(f);
        while (!found && fgets(line, sizeof(line), f)) {
                unsigned long long lo, hi;

                if (strstr(line, "[vvar]") && sscanf(line, "%llx-%llx", &lo, &hi) == 2) {
                        *ret_start = lo;
                        *ret_len = hi - lo;
                        found = true;
                }
        }
        fclose(f);
        return found;
}

static void test_va_pins(void **state) {
        Env *e = *state;
        BackendContext *c = ctx(e);
        uint32_t ioas = ioas_new(e, c);
        uint64_t at = IOVA, va, len;
        char *mem = mmap(NULL, 4 * P, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        const uint32_t fixed = BACKEND_MAP_FIXED_IOVA;

        assert_true(mem != MAP_FAILED);
        attach(e, c, &e->dev_fd, ioas);
        va = (uint64_t)(uintptr_t)mem;
        assert_int_equal(e->b->ops->ioas_map_va(c, ioas, fixed | RW, va, 2 * P, &at, NULL), 0);
        assert_int_equal(stats(e).pinned_bytes, 2 * P);
        assert_int_equal(mprotect(mem + 2 * P, P, PROT_READ), 0);
        assert_int_equal(munmap(mem + 3 * P, P), 0);
        at = IOVA + 4 * P;
        /* Read-only memory pins for reading, not for a writeable map. */
        assert_int_equal(e->b->ops->ioas_map_va(c, ioas, fixed | RW, va + 2 * P, P, &at, NULL),
                         -EFAULT);
        assert_int_equal(e->b->ops->ioas_map_va(c, ioas, fixed | BACKEND_MAP_READABLE, va + 2 * P,
                                                P, &at, NULL), 0);
        /* Memory nobody maps, and memory GUP refuses. */
        at = IOVA + 8 * P;
        assert_int_equal(e->b->ops->ioas_map_va(c, ioas, fixed | BACKEND_MAP_READABLE, va + 3 * P,
                                                P, &at, NULL), -EFAULT);
        assert_int_equal(e->b->ops->ioas_map_va(c, ioas, fixed | BACKEND_MAP_READABLE, va + 2 * P,
                                                2 * P, &at, NULL), -EFAULT);
        if (find_vvar(&va, &len))
                assert_int_equal(e->b->ops->ioas_map_va(c, ioas, fixed | BACKEND_MAP_READABLE, va,
                                                        len, &at, NULL), -EFAULT);
        assert_int_equal(stats(e).mappings, 2);
        assert_int_equal(stats(e).pinned_bytes, 3 * P);
        backend_context_free(c);
        munmap(mem, 3 * P);
}

/* A context standing for an earlier process's: its VAs are that process's pinned memory. */
static void test_adopted_memory(void **state) {
        Env *e = *state;
        BackendContext *c = ctx(e);
        uint32_t ioas = ioas_new(e, c);
        uint64_t at = IOVA;
        char buf[16] = "untouched";

        backend_sim_context_adopt_memory(c);
        assert_int_equal(e->b->ops->ioas_map_va(c, ioas, BACKEND_MAP_FIXED_IOVA | RW, IOVA,
                                                4 * P, &at, NULL), 0);
        attach(e, c, &e->dev_fd, ioas);
        assert_int_equal(stats(e).pinned_bytes, 4 * P);
        assert_int_equal(backend_sim_dma(e->b, DEV, BACKEND_NO_PASID, IOVA, buf, sizeof(buf),
                                         true, NULL, NULL), 0);
        assert_int_equal(backend_sim_dma(e->b, DEV, BACKEND_NO_PASID, IOVA, buf, sizeof(buf),
                                         false, NULL, NULL), 0);
        assert_int_equal(buf[0], 0);
        backend_context_free(c);
}

/* ---- DMA ---- */

static int dma(Env *e, const char *dev, uint32_t pasid, uint64_t iova, void *buf, size_t len,
               bool write, BackendSimDmaFault *f) {
        return backend_sim_dma(e->b, dev, pasid, iova, buf, len, write, f, NULL);
}

static void assert_file(int fd, uint64_t off, const char *want, size_t len) {
        char got[64] = "";

        assert_true(len <= sizeof(got));
        assert_int_equal(pread(fd, got, len, (off_t)off), (ssize_t)len);
        assert_memory_equal(got, want, len);
}

static void assert_fault(const BackendSimDmaFault *f, uint64_t addr, uint32_t perm,
                         BackendSimDmaFaultReason reason) {
        assert_int_equal(f->addr, addr);
        assert_int_equal(f->perm, perm);
        assert_int_equal(f->reason, reason);
}

static void test_dma_reaches_the_memory_fd(void **state) {
        Env *e = *state;
        BackendContext *c = ctx(e);
        uint32_t ioas = ioas_new(e, c), dev;
        int fd = memfd(8 * P);
        BackendSimDmaFault f = {}, last = {};
        char buf[8] = "";
        uint64_t n = 0;

        dev = attach(e, c, &e->dev_fd, ioas);
        assert_int_equal(map_file(e, c, ioas, fd, 0, 2 * P, IOVA, RW), 0);
        assert_int_equal(map_file(e, c, ioas, fd, 5 * P, P, IOVA + 2 * P, RW), 0);
        assert_int_equal(map_file(e, c, ioas, fd, 7 * P, P, IOVA + 4 * P, BACKEND_MAP_READABLE), 0);
        /* Within an area, and across two areas that follow each other in IOVA space. */
        assert_int_equal(dma(e, DEV, BACKEND_NO_PASID, IOVA + P - 2, "hello", 5, true, &f), 0);
        assert_file(fd, P - 2, "hello", 5);
        assert_int_equal(dma(e, DEV, BACKEND_NO_PASID, IOVA + 2 * P - 4, "abcdefgh", 8, true, &f),
                         0);
        assert_file(fd, 2 * P - 4, "abcd", 4);
        assert_file(fd, 5 * P, "efgh", 4);
        assert_int_equal(dma(e, DEV, BACKEND_NO_PASID, IOVA + P - 2, buf, 5, false, &f), 0);
        assert_memory_equal(buf, "hello", 5);
        assert_int_equal(pwrite(fd, "ro", 2, (off_t)(7 * P)), 2);
        assert_int_equal(dma(e, DEV, BACKEND_NO_PASID, IOVA + 4 * P, buf, 2, false, &f), 0);
        assert_memory_equal(buf, "ro", 2);

        /* Refused whole: no permission, nothing mapped, a range that runs off an area. */
        assert_int_equal(dma(e, DEV, BACKEND_NO_PASID, IOVA + 4 * P, "xx", 2, true, &f), -EFAULT);
        assert_fault(&f, IOVA + 4 * P, 0x2, BACKEND_SIM_DMA_PERMISSION);
        assert_file(fd, 7 * P, "ro", 2);
        assert_int_equal(dma(e, DEV, BACKEND_NO_PASID, IOVA + 3 * P - 2, "wxyz", 4, true, &f),
                         -EFAULT);
        assert_fault(&f, IOVA + 3 * P, 0x2, BACKEND_SIM_DMA_UNMAPPED);
        assert_file(fd, 6 * P - 2, "\0\0", 2);
        assert_int_equal(backend_sim_device_dma_faults(e->b, DEV, &n, &last), 0);
        assert_int_equal(n, 2);
        assert_fault(&last, IOVA + 3 * P, 0x2, BACKEND_SIM_DMA_UNMAPPED);

        /* After the unmap the same DMA faults; after the detach the device is blocked. */
        assert_int_equal(unmap(e, c, ioas, IOVA, 2 * P), 0);
        assert_int_equal(dma(e, DEV, BACKEND_NO_PASID, IOVA + P - 2, "hello", 5, true, &f),
                         -EFAULT);
        assert_fault(&f, IOVA + P - 2, 0x2, BACKEND_SIM_DMA_UNMAPPED);
        assert_int_equal(e->b->ops->device_detach(c, dev, BACKEND_NO_PASID, NULL), 0);
        assert_int_equal(dma(e, DEV, BACKEND_NO_PASID, IOVA + 4 * P, buf, 1, false, &f), -EFAULT);
        assert_fault(&f, IOVA + 4 * P, 0x1, BACKEND_SIM_DMA_BLOCKED);
        /* A device bound nowhere is blocked too; an unknown one is no device. */
        assert_int_equal(dma(e, DEV2, BACKEND_NO_PASID, IOVA, buf, 1, false, &f), -EFAULT);
        assert_fault(&f, IOVA, 0x1, BACKEND_SIM_DMA_BLOCKED);
        assert_int_equal(dma(e, "0000:99:00.0", BACKEND_NO_PASID, IOVA, buf, 1, false, &f),
                         -ENODEV);
        assert_int_equal(stats(e).dma_transfers, 4);
        assert_int_equal(stats(e).dma_faults, 5);
        backend_context_free(c);
        close(fd);
}

/* DMA to each of n areas, area i at IOVA + i pages mapping page n - 1 - i of fd, lands there. */
static void assert_areas_reach_their_pages(Env *e, int fd, unsigned n, unsigned round) {
        BackendSimDmaFault f = {};

        for (unsigned i = 0; i < n; i++) {
                char tag[8] = "";

                snprintf(tag, sizeof(tag), "%u:%03u", round, i);
                assert_int_equal(dma(e, DEV, BACKEND_NO_PASID, IOVA + i * P, tag, sizeof(tag), true,
                                     &f),
                                 0);
        }
        for (unsigned i = 0; i < n; i++) {
                char tag[8] = "";

                snprintf(tag, sizeof(tag), "%u:%03u", round, i);
                assert_file(fd, (n - 1 - i) * P, tag, sizeof(tag));
        }
}

/*
 * Areas and their pages come from slabs of objects: more maps than one slab holds, half of
 * them given back and taken again, each keep its own source and file.
 */
static void test_many_areas_keep_apart(void **state) {
        Env *e = *state;
        BackendContext *c = ctx(e);
        uint32_t ioas = ioas_new(e, c);
        const unsigned n = 101;
        int fd = memfd(n * P);

        (void)attach(e, c, &e->dev_fd, ioas);
        for (unsigned i = 0; i < n; i++)
                assert_int_equal(map_file(e, c, ioas, fd, (n - 1 - i) * P, P, IOVA + i * P, RW), 0);
        assert_int_equal(stats(e).mappings, n);
        assert_areas_reach_their_pages(e, fd, n, 1);
        for (unsigned i = 0; i < n; i += 2)
                assert_int_equal(unmap(e, c, ioas, IOVA + i * P, P), 0);
        assert_int_equal(stats(e).mappings, n / 2);
        for (unsigned i = 0; i < n; i += 2)
                assert_int_equal(map_file(e, c, ioas, fd, (n - 1 - i) * P, P, IOVA + i * P, RW), 0);
        assert_areas_reach_their_pages(e, fd, n, 2);
        assert_int_equal(unmap(e, c, ioas, IOVA, n * P), 0);
        assert_int_equal(stats(e).mappings, 0);
        backend_context_free(c);
        close(fd);
}

/* A page table with a fault queue receives the DMA faults of the devices attached to it. */
static void test_dma_fault_goes_to_the_queue(void **state) {
        Env *e = *state;
        BackendContext *c = ctx(e);
        uint32_t ioas = ioas_new(e, c), dev = 0, fq, hwpt, pt;
        FaultRecord rec[2];
        size_t n = 0;
        int qfd;
        char byte = 1;

        assert_int_equal(e->b->ops->fault_queue_alloc(c, &fq, &qfd, NULL), 0);
        assert_int_equal(bind_dev(e, c, &e->dev_fd, &dev), 0);
        {
                HwptAllocArgs a = { .flags = BACKEND_HWPT_FAULT_ID_VALID, .dev_id = dev,
                                    .pt_id = ioas, .fault_id = fq };

                assert_int_equal(e->b->ops->hwpt_alloc(c, &a, &hwpt, NULL), 0);
        }
        pt = hwpt;
        assert_int_equal(e->b->ops->device_attach(c, dev, BACKEND_NO_PASID, &pt, NULL), 0);
        assert_int_equal(dma(e, DEV, BACKEND_NO_PASID, IOVA + 0x123, &byte, 1, true, NULL),
                         -EFAULT);
        assert_int_equal(e->b->ops->fault_read(c, fq, rec, 2, &n, NULL), 0);
        assert_int_equal(n, 1);
        assert_int_equal(rec[0].dev_id, dev);
        assert_int_equal(rec[0].addr, IOVA);
        assert_int_equal(rec[0].perm, FAULT_PERM_WRITE);
        assert_int_equal(rec[0].flags, FAULT_FLAG_LAST_PAGE);
        backend_context_free(c);
}

/* A PASID-tagged DMA goes through the PASID's page table, an untagged one through the RID's. */
static void test_dma_by_pasid(void **state) {
        Env *e = *state;
        BackendContext *c = ctx(e);
        uint32_t ioas = ioas_new(e, c), dev = 0, pt = ioas;
        BackendSimDmaFault f = {};
        int fd = memfd(P);

        assert_int_equal(bind_dev(e, c, &e->dev_fd, &dev), 0);
        assert_int_equal(e->b->ops->device_attach(c, dev, 7, &pt, NULL), 0);
        assert_int_equal(map_file(e, c, ioas, fd, 0, P, IOVA, RW), 0);
        assert_int_equal(dma(e, DEV, 7, IOVA + 8, "pasid", 5, true, &f), 0);
        assert_file(fd, 8, "pasid", 5);
        assert_int_equal(dma(e, DEV, BACKEND_NO_PASID, IOVA, "rid", 3, true, &f), -EFAULT);
        assert_fault(&f, IOVA, 0x2, BACKEND_SIM_DMA_BLOCKED);
        assert_int_equal(f.pasid, BACKEND_NO_PASID);
        assert_int_equal(dma(e, DEV, 8, IOVA, "other", 5, true, &f), -EFAULT);
        assert_int_equal(f.pasid, 8);
        backend_context_free(c);
        close(fd);
}

/* A user VA map: the device reaches the mapper's own memory. */
static void test_dma_reaches_user_memory(void **state) {
        Env *e = *state;
        BackendContext *c = ctx(e);
        uint32_t ioas = ioas_new(e, c);
        char *mem = mmap(NULL, 2 * P, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        uint64_t at = IOVA;

        assert_true(mem != MAP_FAILED);
        attach(e, c, &e->dev_fd, ioas);
        assert_int_equal(e->b->ops->ioas_map_va(c, ioas, BACKEND_MAP_FIXED_IOVA | RW,
                                                (uint64_t)(uintptr_t)mem, 2 * P, &at, NULL), 0);
        assert_int_equal(dma(e, DEV, BACKEND_NO_PASID, IOVA + P + 1, "va", 2, true, NULL), 0);
        assert_memory_equal(mem + P + 1, "va", 2);
        backend_context_free(c);
        munmap(mem, 2 * P);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_pins_follow_domains, env_setup, env_teardown),
                cmocka_unit_test_setup_teardown(test_charged_per_user, env_setup, env_teardown),
                cmocka_unit_test_setup_teardown(test_charged_per_process, env_setup, env_teardown),
                cmocka_unit_test_setup_teardown(test_enomem_at_attach, env_setup, env_teardown),
                cmocka_unit_test_setup_teardown(test_copy_shares_pages, env_setup, env_teardown),
                cmocka_unit_test_setup_teardown(test_va_pins, env_setup, env_teardown),
                cmocka_unit_test_setup_teardown(test_adopted_memory, env_setup, env_teardown),
                cmocka_unit_test_setup_teardown(test_dma_reaches_the_memory_fd, env_setup,
                                                env_teardown),
                cmocka_unit_test_setup_teardown(test_dma_fault_goes_to_the_queue, env_setup,
                                                env_teardown),
                cmocka_unit_test_setup_teardown(test_dma_by_pasid, env_setup, env_teardown),
                cmocka_unit_test_setup_teardown(test_many_areas_keep_apart, env_setup,
                                                env_teardown),
                cmocka_unit_test_setup_teardown(test_dma_reaches_user_memory, env_setup,
                                                env_teardown),
        };

        return cmocka_run_group_tests_name("sim-memory", tests, NULL, NULL);
}
