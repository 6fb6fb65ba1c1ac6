/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Contexts: one iommufd each, with the fds of the devices bound to it and of its fault
 * queues, which the kernel objects are reached through.  A restarted daemon adopts the
 * contexts a previous one left in the fd store.
 */

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "assert-util.h"
#include "kernel-private.h"

/* ---- fd tables ---- */

int kernel_fd_add(KernelFd **array, size_t *n, uint32_t id, int fd) {
        KernelFd *a = reallocarray(*array, *n + 1, sizeof(**array));

        if (!a)
                return -ENOMEM;
        *array = a;
        a[(*n)++] = (KernelFd){ .id = id, .fd = fd, .req_fd = -EBADF };
        return 0;
}

KernelFd *kernel_fd_find(KernelFd *array, size_t n, uint32_t id) {
        if (!array)
                return NULL;
        FOREACH_ARRAY(f, array, n)
                if (f->id == id)
                        return f;
        return NULL;
}

void kernel_fd_remove(KernelFd *array, size_t *n, KernelFd *f) {
        size_t i = (size_t)(f - array);
        memmove(array + i, array + i + 1, (*n - i - 1) * sizeof(*array));
        (*n)--;
}

/* ---- contexts ---- */

int kernel_context_new(Backend *b, BackendContext **ret, Error *err) {
        BackendKernel *k = (BackendKernel *)b;
        _cleanup_free_ char *path = NULL;
        KernelContext *c;
        int fd;

        assert_return(b, -EINVAL);
        assert_return(ret, -EINVAL);

        if (asprintf(&path, "%s/iommu", k->dev_root) < 0)
                return error_set(err, -ENOMEM, "out of memory");
        c = calloc(1, sizeof(*c));
        if (!c)
                return error_set(err, -ENOMEM, "out of memory");
        fd = k->sys->open(k->userdata, path, O_RDWR | O_CLOEXEC);
        if (fd < 0) {
                free(c);
                return error_set(err, fd, "cannot open %s: %s", path, strerror(-fd));
        }
        c->base.backend = b;
        c->iommufd = fd;
        *ret = &c->base;
        return 0;
}

void kernel_context_free(BackendContext *bc) {
        KernelContext *c = (KernelContext *)bc;
        BackendKernel *k;

        if (!c)
                return;
        k = kernel_of(bc);
        /*
         * Closing detaches nothing: a client, or the service manager's fd store across a
         * restart, may hold the same files, and with them every object of the context.
         */
        for (size_t i = 0; i < c->n_devices; i++) {
                kernel_device_disarm_request(c, &c->devices[i]);
                sys_close(k, c->devices[i].fd);
        }
        for (size_t i = 0; i < c->n_faults; i++)
                sys_close(k, c->faults[i].fd);
        sys_close(k, c->iommufd);
        /* Our mappings of fallback areas may go: whatever the kernel still maps, it pins. */
        kernel_fallback_release_all(c);
        free(c->devices);
        free(c->pasids);
        free(c->faults);
        free(c->fault_uses);
        free(c);
}

int kernel_context_fd(BackendContext *bc) {
        assert_return(bc, -EINVAL);

        return ((KernelContext *)bc)->iommufd;
}

/* ---- restart survival ---- */

int backend_kernel_context_adopt(Backend *b, int iommufd, const uint32_t *dev_ids, int *dev_fds,
                                 size_t n, BackendContext **ret, Error *err) {
        BackendKernel *k = (BackendKernel *)b;
        KernelContext *c;

        assert_return(b, -EINVAL);
        assert_return(ret, -EINVAL);
        assert_return((dev_ids && dev_fds) || n == 0, -EINVAL);

        c = calloc(1, sizeof(*c));
        if (c && n > 0)
                c->devices = calloc(n, sizeof(KernelFd));
        if (!c || (n > 0 && !c->devices)) {
                if (c)
                        free(c->devices);
                free(c);
                sys_close(k, iommufd);
                for (size_t i = 0; i < n; i++)
                        sys_close(k, dev_fds[i]);
                return error_set(err, -ENOMEM, "out of memory");
        }
        c->base.backend = b;
        c->iommufd = iommufd;
        c->adopted = true;
        /* The bindings live in the open file descriptions, which the fd store kept. */
        for (size_t i = 0; i < n; i++)
                c->devices[i] = (KernelFd){ .id = dev_ids[i], .fd = dev_fds[i], .req_fd = -EBADF };
        c->n_devices = n;
        *ret = &c->base;
        return 0;
}

int backend_kernel_context_device_fd(BackendContext *bc, uint32_t dev_id) {
        KernelContext *c = (KernelContext *)bc;

        assert_return(bc, -EINVAL);

        for (size_t i = 0; i < c->n_devices; i++)
                if (c->devices[i].id == dev_id)
                        return c->devices[i].fd;
        return -ENOENT;
}

int backend_kernel_context_adopt_fault(BackendContext *bc, uint32_t fault_id, int fd) {
        KernelContext *c = (KernelContext *)bc;
        int r;

        assert_return(bc, -EINVAL);

        r = kernel_fd_add(&c->faults, &c->n_faults, fault_id, fd);
        if (r < 0)
                sys_close(kernel_of(bc), fd);
        return r;
}

int backend_kernel_context_fault_fd(BackendContext *bc, uint32_t fault_id) {
        KernelContext *c = (KernelContext *)bc;
        KernelFd *f;

        assert_return(bc, -EINVAL);

        f = kernel_fd_find(c->faults, c->n_faults, fault_id);
        return f ? f->fd : -ENOENT;
}
