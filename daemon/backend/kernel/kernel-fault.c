/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* Fault queues: IOMMU_FAULT_QUEUE_ALLOC, and records read from and answers written to its fd. */

#include <inttypes.h>
#include <string.h>

#include "assert-util.h"
#include "iommufd-abi.h"
#include "kernel-private.h"

int kernel_fault_queue_alloc(BackendContext *bc, uint32_t *ret_id, int *ret_fd,
                             Error *err) {
        KernelContext *c = (KernelContext *)bc;
        struct iommud_fault_alloc f = { .size = sizeof(f) };
        int r;

        assert_return(bc, -EINVAL);
        assert_return(ret_id, -EINVAL);
        assert_return(ret_fd, -EINVAL);

        r = sys_ioctl(c, c->iommufd, IOMMUD_IOMMU_FAULT_QUEUE_ALLOC, &f);
        if (r < 0)
                return kernel_error(err, r, "IOMMU_FAULT_QUEUE_ALLOC");
        r = kernel_fd_add(&c->faults, &c->n_faults, f.out_fault_id, (int)f.out_fault_fd);
        if (r < 0) {
                struct iommud_destroy d = { .size = sizeof(d), .id = f.out_fault_id };
                sys_close(kernel_of(bc), (int)f.out_fault_fd);
                (void)sys_ioctl(c, c->iommufd, IOMMUD_IOMMU_DESTROY, &d);
                return error_set(err, r, "out of memory");
        }
        *ret_id = f.out_fault_id;
        *ret_fd = (int)f.out_fault_fd;
        return 0;
}

int kernel_fault_use_add(KernelContext *c, uint32_t hwpt_id, uint32_t fault_id) {
        KernelFaultUse *a = reallocarray(c->fault_uses, c->n_fault_uses + 1, sizeof(*a));

        if (!a)
                return -ENOMEM;
        c->fault_uses = a;
        a[c->n_fault_uses++] = (KernelFaultUse){ .hwpt_id = hwpt_id, .fault_id = fault_id };
        return 0;
}

void kernel_fault_use_drop(KernelContext *c, uint32_t id) {
        for (size_t i = 0; i < c->n_fault_uses;)
                if (c->fault_uses[i].hwpt_id == id)
                        c->fault_uses[i] = c->fault_uses[--c->n_fault_uses];
                else
                        i++;
}

/*
 * The queue's fd holds a reference to the fault object, and the kernel refuses IOMMU_DESTROY
 * with EBUSY while it is open.  So: refuse while an HWPT uses the queue (nothing changes), else
 * close the fd first, then destroy.
 */
int kernel_fault_destroy(KernelContext *c, KernelFd *f, Error *err) {
        struct iommud_destroy d = { .size = sizeof(d), .id = f->id };
        int r;

        FOREACH_ARRAY(u, c->fault_uses, c->n_fault_uses)
                if (u->fault_id == f->id)
                        return error_set(err, -EBUSY,
                                         "fault queue %" PRIu32 " is in use by HWPT %" PRIu32,
                                         f->id, u->hwpt_id);
        sys_close(kernel_of(&c->base), f->fd);
        kernel_fd_remove(c->faults, &c->n_faults, f);
        r = sys_ioctl(c, c->iommufd, IOMMUD_IOMMU_DESTROY, &d);
        if (r < 0)
                return kernel_error(err, r, "IOMMU_DESTROY");
        return 0;
}

int kernel_fault_read(BackendContext *bc, uint32_t fault_id, FaultRecord *buf,
                      size_t n_max, size_t *ret_n, Error *err) {
        KernelContext *c = (KernelContext *)bc;
        BackendKernel *k;
        KernelFd *f;
        ssize_t n;

        assert_return(bc, -EINVAL);
        assert_return(buf || n_max == 0, -EINVAL);
        assert_return(ret_n, -EINVAL);

        k = kernel_of(bc);
        f = kernel_fd_find(c->faults, c->n_faults, fault_id);
        if (!f)
                return error_set(err, -ENOENT, "fault queue %" PRIu32 " does not exist",
                                 fault_id);
        if (n_max == 0) {
                *ret_n = 0;
                return 0;
        }
        n = k->sys->read(k->userdata, f->fd, buf, n_max * sizeof(FaultRecord));
        if (n == -EAGAIN)
                n = 0;
        if (n < 0)
                return error_set(err, (int)n, "reading fault queue %" PRIu32 ": %s", fault_id,
                                 strerror((int)-n));
        if (n % sizeof(FaultRecord) != 0)
                return error_set(err, -EIO,
                                 "fault queue %" PRIu32 " returned %zd bytes, not whole "
                                 "%zu-byte records",
                                 fault_id, n, sizeof(FaultRecord));
        *ret_n = (size_t)n / sizeof(FaultRecord);
        return 0;
}

int kernel_fault_respond(BackendContext *bc, uint32_t fault_id, uint32_t cookie,
                         uint32_t code, Error *err) {
        KernelContext *c = (KernelContext *)bc;
        struct iommud_hwpt_page_response resp = { .cookie = cookie, .code = code };
        BackendKernel *k;
        KernelFd *f;
        ssize_t n;

        assert_return(bc, -EINVAL);

        k = kernel_of(bc);
        f = kernel_fd_find(c->faults, c->n_faults, fault_id);
        if (!f)
                return error_set(err, -ENOENT, "fault queue %" PRIu32 " does not exist",
                                 fault_id);
        n = k->sys->write(k->userdata, f->fd, &resp, sizeof(resp));
        if (n == -EINVAL)
                return error_set(err, (int)n,
                                 "cookie %" PRIu32 " is not pending on fault queue %" PRIu32
                                 " or code %" PRIu32 " is not valid",
                                 cookie, fault_id, code);
        if (n < 0)
                return error_set(err, (int)n, "answering fault queue %" PRIu32 ": %s", fault_id,
                                 strerror((int)-n));
        if ((size_t)n != sizeof(resp))
                return error_set(err, -EIO, "fault queue %" PRIu32 " took %zd of %zu bytes",
                                 fault_id, n, sizeof(resp));
        return 0;
}
