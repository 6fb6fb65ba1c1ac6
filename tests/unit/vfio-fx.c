/* SPDX-License-Identifier: LGPL-2.1-or-later */

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
#include <json-c/json.h>

#include "macros.h"
#include "simtopo-builder.h"
#include "vfio-fx.h"

Fx *vfio_fx_prepare(SimTopology *topo) {
        Fx *fx = calloc(1, sizeof(Fx));

        assert_non_null(fx);
        fx->topo = topo ?: conformance_topology(fx->names);
        strcpy(fx->root, "/tmp/iommud-test-vfio-XXXXXX");
        assert_non_null(mkdtemp(fx->root));
        assert_int_equal(simtopo_materialize(fx->topo, fx->root, NULL), 0);
        assert_int_equal(vfio_responder_new(&fx->r, fx->topo, fx->root), 0);
        return fx;
}

int vfio_fx_start(Fx *fx) {
        BackendVfioConfig cfg = BACKEND_VFIO_CONFIG_INIT;
        char sys[96], dev[96];
        int r;

        snprintf(sys, sizeof(sys), "%s/sys", fx->root);
        snprintf(dev, sizeof(dev), "%s/dev", fx->root);
        cfg.sysfs_root = sys;
        cfg.dev_root = dev;
        cfg.syscalls = &vfio_responder_syscalls;
        cfg.userdata = fx->r;
        r = backend_vfio_new(&fx->b, &cfg, &fx->err);
        if (r >= 0)
                assert_int_equal(OPS(fx)->context_new(fx->b, &fx->c, NULL), 0);
        return r;
}

Fx *vfio_fx_new(void) {
        Fx *fx = vfio_fx_prepare(NULL);

        assert_int_equal(vfio_fx_start(fx), 0);
        return fx;
}

void vfio_fx_free(Fx *fx) {
        backend_context_free(fx->c);
        backend_free(fx->b);
        if (fx->b) {
                assert_int_equal(vfio_responder_open_fds(fx->r), 0);
                assert_int_equal(vfio_responder_n_containers(fx->r), 0);
        }
        vfio_responder_free(fx->r);
        (void)simtopo_remove(fx->root);
        tb_free(fx->topo);
        free(fx);
}

uint32_t vfio_fx_bind(Fx *fx, ConfRole role) {
        _cleanup_close_ int fd = -EBADF;
        uint32_t id = 0;

        assert_int_equal(OPS(fx)->device_open(fx->b, fx->names[role], &fd, NULL), 0);
        assert_int_equal(OPS(fx)->device_bind(fx->c, fd, &id, NULL), 0);
        return id;
}

uint32_t vfio_fx_ioas(Fx *fx) {
        uint32_t id = 0;

        assert_int_equal(OPS(fx)->ioas_alloc(fx->c, &id, NULL), 0);
        return id;
}

int vfio_fx_attach(Fx *fx, uint32_t dev, uint32_t ioas) {
        uint32_t pt = ioas;

        return OPS(fx)->device_attach(fx->c, dev, BACKEND_NO_PASID, &pt, &fx->err);
}

int vfio_fx_memfd(size_t pages) {
        int fd = memfd_create("test-backend-vfio", MFD_CLOEXEC);
        char page[4096];

        assert_true(fd >= 0);
        for (size_t i = 0; i < pages; i++) {
                memset(page, 'A' + (int)i, sizeof(page));
                assert_int_equal(pwrite(fd, page, sizeof(page), (off_t)(i * P)), (ssize_t)P);
        }
        return fd;
}

char vfio_fx_dma_read(Fx *fx, unsigned group, uint64_t iova) {
        uint64_t vaddr = 0;

        if (!vfio_responder_dma_reaches(fx->r, group, iova, &vaddr))
                return 0;
        return *(const char *)(uintptr_t)vaddr;
}

int vfio_fx_store_fd(const char *name, int fd, void *userdata) {
        VfioFxStore *st = userdata;

        assert_true(st->n < ELEMENTSOF(st->fds));
        snprintf(st->names[st->n], sizeof(st->names[0]), "%s", name);
        st->fds[st->n] = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        assert_true(st->fds[st->n] >= 0);
        st->n++;
        return 0;
}

int vfio_fx_store_take(const char *name, void *userdata) {
        VfioFxStore *st = userdata;

        for (size_t i = 0; i < st->n; i++)
                if (streq(st->names[i], name) && st->fds[i] >= 0)
                        return TAKE_FD(st->fds[i]);
        return -ENOENT;
}

void vfio_fx_restart(Fx *fx, VfioFxStore *st) {
        json_object *state = NULL;

        assert_int_equal(backend_vfio_context_foreach_fd(fx->c, vfio_fx_store_fd, st), 0);
        assert_int_equal(backend_vfio_context_save(fx->c, &state), 0);
        backend_vfio_keep_kernel_state(fx->b);
        backend_context_free(fx->c);
        backend_free(fx->b);
        fx->c = NULL;
        assert_int_equal(vfio_fx_start(fx), 0);
        backend_context_free(fx->c);
        if (backend_vfio_context_adopt(fx->b, state, vfio_fx_store_take, st, &fx->c, &fx->err) < 0)
                fail_msg("adopt: %s", error_message(&fx->err));
        json_object_put(state);
}
