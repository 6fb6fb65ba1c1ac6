/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Conformance cases: a device is bound through an open file, as the kernel binds a VFIO cdev.
 * The test keeps its own fd of the file the backend bound, as a client does, and asks through
 * the kernel's interface for that file (ConfFactory.file_attach) what it still reaches.
 */

#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "conformance-internal.h"
#include "macros.h"

/* An IOVA every device's DMA engine can address (edu masks its addresses to 28 bits). */
#define DMA_IOVA UINT64_C(0x300000)
#define DMA_LEN 4000u

static void require_files(ConfState *s) {
        if (!s->env.factory->file_attach)
                conf_skip(s, "backend %s binds no device file (VFIO type1 binds groups)",
                          s->env.factory->name);
}

static int file_attach(ConfState *s, int fd, uint32_t pt_id) {
        return s->env.factory->file_attach(&s->env, fd, pt_id);
}

/* A second open() of a bound device is another open file: it cannot bind.  A dup is the same. */
static void files_second_open_einval(void **state) {
        ConfState *s = state_of(state);
        BackendContext *c, *c2;
        int fd, fd2, dup_fd;
        uint32_t id, id2;

        require_files(s);
        c = ctx_new(s);
        c2 = ctx_new(s);
        fd = dev_open(s, CONF_DEV_PLAIN);
        assert_int_equal(OPS(&s->env)->device_bind(c, fd, &id, NULL), 0);
        fd2 = dev_open(s, CONF_DEV_PLAIN);
        assert_int_equal(OPS(&s->env)->device_bind(c2, fd2, &id2, NULL), -EINVAL);
        assert_int_equal(OPS(&s->env)->device_bind(c, fd2, &id2, NULL), -EINVAL);
        dup_fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        assert_true(dup_fd >= 0);
        assert_int_equal(OPS(&s->env)->device_bind(c2, dup_fd, &id2, NULL), -EINVAL);
        /* Unbound once the backend let go and the last copy of the file is closed. */
        assert_true(OPS(&s->env)->device_unbind(c, id, NULL) >= 0);
        close(dup_fd);
        assert_int_equal(OPS(&s->env)->device_bind(c2, fd2, &id2, NULL), -EINVAL);
        dev_close(s, fd);
        assert_int_equal(OPS(&s->env)->device_bind(c2, fd2, &id2, NULL), 0);
}

/*
 * device_unbind detaches through the file, but the file a client keeps stays bound (to its
 * context, whose objects it may attach to again) until its last close.
 */
static void files_kept_file_outlives_unbind(void **state) {
        ConfState *s = state_of(state);
        BackendContext *c, *c2;
        uint32_t id, id2, ioas;
        int fd;

        require_files(s);
        c = ctx_new(s);
        c2 = ctx_new(s);
        ioas = ioas_new(s, c);
        fd = dev_open(s, CONF_DEV_PLAIN);
        assert_int_equal(OPS(&s->env)->device_bind(c, fd, &id, NULL), 0);
        assert_int_equal(attach(s, c, id, BACKEND_NO_PASID, ioas, NULL), 0);
        assert_int_equal(OPS(&s->env)->device_unbind(c, id, NULL), 1);
        /* Detached: the IOAS is free; and the kept file may attach to it again by itself. */
        assert_int_equal(file_attach(s, fd, ioas), 0);
        assert_int_equal(OPS(&s->env)->destroy(c, ioas, NULL), -EBUSY);
        assert_int_equal(OPS(&s->env)->device_bind(c2, dev_open(s, CONF_DEV_PLAIN), &id2, NULL),
                         -EINVAL);
        dev_close(s, fd);
        assert_int_equal(OPS(&s->env)->device_bind(c2, dev_open(s, CONF_DEV_PLAIN), &id2, NULL),
                         0);
}

/* A context closed while a file bound to it lives on stays, objects and all. */
static void files_context_outlives_close(void **state) {
        ConfState *s = state_of(state);
        BackendContext *c, *c2;
        uint32_t id, id2, ioas;
        int fd;

        require_files(s);
        c = ctx_new(s);
        c2 = ctx_new(s);
        ioas = ioas_new(s, c);
        fd = dev_open(s, CONF_DEV_PLAIN);
        assert_int_equal(OPS(&s->env)->device_bind(c, fd, &id, NULL), 0);
        assert_int_equal(map_fixed(s, c, ioas, BASE, 4 * P), 0);
        ctx_free(s, c);
        /* The context lives in the kept file: its IOAS (and its mapping) are still there. */
        assert_int_equal(file_attach(s, fd, ioas), 0);
        assert_int_equal(OPS(&s->env)->device_bind(c2, dev_open(s, CONF_DEV_PLAIN), &id2, NULL),
                         -EINVAL);
        /* The file's last close ends the binding, and the context with it. */
        dev_close(s, fd);
        assert_int_equal(OPS(&s->env)->device_bind(c2, dev_open(s, CONF_DEV_PLAIN), &id2, NULL),
                         0);
}

/* Once nothing is attached to it, an address space can go: detach first, then destroy. */
static void files_destroy_after_detach(void **state) {
        ConfState *s = state_of(state);
        BackendContext *c = ctx_new(s);
        uint32_t ioas = ioas_new(s, c), id = bind(s, c, CONF_DEV_PLAIN);

        assert_int_equal(attach(s, c, id, BACKEND_NO_PASID, ioas, NULL), 0);
        assert_int_equal(OPS(&s->env)->destroy(c, ioas, NULL), -EBUSY);
        assert_int_equal(OPS(&s->env)->device_detach(c, id, BACKEND_NO_PASID, NULL), 0);
        assert_int_equal(OPS(&s->env)->destroy(c, ioas, NULL), 0);
}

/* Whether the device's DMA from page 0 to page 1 of mem, at DMA_IOVA, arrived. */
static bool dma_arrives(ConfState *s, int fd, uint8_t *mem) {
        for (size_t i = 0; i < P; i++)
                mem[i] = (uint8_t)(i * 7 + 3);
        memset(mem + P, 0x5a, P);
        (void)s->env.factory->dma_copy(&s->env, fd, DMA_IOVA, DMA_IOVA + P, DMA_LEN);
        return memcmp(mem, mem + P, DMA_LEN) == 0;
}

static void require_dma(ConfState *s) {
        if (!s->env.factory->dma_copy)
                conf_skip(s, "the %s factory's devices do no DMA here", s->env.factory->name);
}

/* mfd's two pages at DMA_IOVA of ioas in c, readable and writeable. */
static void dma_map(ConfState *s, BackendContext *c, uint32_t ioas, int mfd) {
        uint64_t iova = DMA_IOVA;

        assert_int_equal(OPS(&s->env)->ioas_map_file(c, ioas,
                                                     BACKEND_MAP_FIXED_IOVA | BACKEND_MAP_READABLE |
                                                             BACKEND_MAP_WRITEABLE,
                                                     mfd, 0, 2 * P, &iova, NULL),
                         0);
}

/* Two pages of a memfd, mapped at DMA_IOVA of ioas in c: the memory a device's DMA may reach. */
static uint8_t *dma_memory(ConfState *s, BackendContext *c, uint32_t ioas, int *ret_mfd) {
        uint8_t *mem;
        int mfd;

        mfd = memfd_create("conformance-dma", MFD_CLOEXEC);
        assert_true(mfd >= 0);
        assert_int_equal(ftruncate(mfd, (off_t)(2 * P)), 0);
        mem = mmap(NULL, 2 * P, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
        assert_true(mem != MAP_FAILED);
        dma_map(s, c, ioas, mfd);
        *ret_mfd = mfd;
        return mem;
}

static void dma_memory_free(ConfState *s, uint8_t *mem, int mfd) {
        (void)munmap(mem, 2 * P);
        close(mfd);
}

/* After a detach the device's DMA through the old IOVA reaches nothing. */
static void files_detach_then_dma(void **state) {
        ConfState *s = state_of(state);
        BackendContext *c;
        uint32_t ioas, id;
        uint8_t *mem;
        int fd, mfd;

        require_dma(s);
        c = ctx_new(s);
        ioas = ioas_new(s, c);
        fd = dev_open(s, CONF_DEV_PLAIN);
        assert_int_equal(OPS(&s->env)->device_bind(c, fd, &id, NULL), 0);
        assert_int_equal(attach(s, c, id, BACKEND_NO_PASID, ioas, NULL), 0);
        mem = dma_memory(s, c, ioas, &mfd);
        assert_true(dma_arrives(s, fd, mem));
        assert_int_equal(OPS(&s->env)->device_detach(c, id, BACKEND_NO_PASID, NULL), 0);
        assert_false(dma_arrives(s, fd, mem));
        for (size_t i = 0; i < P; i++)
                assert_int_equal(mem[P + i], 0x5a);
        dma_memory_free(s, mem, mfd);
}

/*
 * A bound file reaches the objects of its own context only: an id of another context's address
 * space is unknown in its own (ENOENT), and that context's memory at the very IOVA its device
 * uses stays out of the device's reach.
 */
static void files_other_context_unreachable(void **state) {
        ConfState *s = state_of(state);
        BackendContext *c, *c2;
        uint32_t ioas, id, other = 0;
        uint8_t *mem;
        int fd, mfd;

        require_files(s);
        c = ctx_new(s);
        c2 = ctx_new(s);
        fd = dev_open(s, CONF_DEV_PLAIN);
        assert_int_equal(OPS(&s->env)->device_bind(c, fd, &id, NULL), 0);
        /* Ids past every id of c: c2's third address space names nothing in c. */
        for (int i = 0; i < 3; i++)
                other = ioas_new(s, c2);
        assert_int_equal(file_attach(s, fd, other), -ENOENT);
        if (!s->env.factory->dma_copy)
                return;
        ioas = ioas_new(s, c);
        assert_int_equal(attach(s, c, id, BACKEND_NO_PASID, ioas, NULL), 0);
        mem = dma_memory(s, c2, other, &mfd);
        assert_false(dma_arrives(s, fd, mem));
        for (size_t i = 0; i < P; i++)
                assert_int_equal(mem[P + i], 0x5a);
        /* The same memory mapped in its own context: the engine was only kept out. */
        dma_map(s, c, ioas, mfd);
        assert_true(dma_arrives(s, fd, mem));
        dma_memory_free(s, mem, mfd);
}

#define T(f) { #f, f }
const ConfTest conformance_file_tests[] = {
        T(files_second_open_einval),
        T(files_kept_file_outlives_unbind),
        T(files_context_outlives_close),
        T(files_destroy_after_detach),
        T(files_detach_then_dma),
        T(files_other_context_unreachable),
};
#undef T
const size_t conformance_n_file_tests = ELEMENTSOF(conformance_file_tests);
