/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* The real syscalls behind the BackendKernelSyscalls seam, converted to negative errno. */

#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "backend-kernel.h"
#include "macros.h"

static int real_open(void *userdata, const char *path, int flags) {
        int fd = open(path, flags | O_CLOEXEC);
        return fd < 0 ? negative_errno() : fd;
}

static int real_close(void *userdata, int fd) {
        return close(fd) < 0 ? negative_errno() : 0;
}

static int real_ioctl(void *userdata, int fd, unsigned long request, void *arg) {
        int r = ioctl(fd, request, arg);
        return r < 0 ? negative_errno() : r;
}

static ssize_t real_read(void *userdata, int fd, void *buf, size_t count) {
        ssize_t n = read(fd, buf, count);
        return n < 0 ? negative_errno() : n;
}

static ssize_t real_write(void *userdata, int fd, const void *buf, size_t count) {
        ssize_t n = write(fd, buf, count);
        return n < 0 ? negative_errno() : n;
}

static int real_mmap(void *userdata, void *addr, size_t length, int prot, int fd,
                     uint64_t offset, void **ret_addr) {
        void *p = mmap(addr, length, prot, MAP_SHARED | (addr ? MAP_FIXED : 0), fd,
                       (off_t)offset);
        if (p == MAP_FAILED)
                return negative_errno();
        *ret_addr = p;
        return 0;
}

static int real_munmap(void *userdata, void *addr, size_t length) {
        return munmap(addr, length) < 0 ? negative_errno() : 0;
}

const BackendKernelSyscalls backend_kernel_syscalls_real = {
        .open = real_open,
        .close = real_close,
        .ioctl = real_ioctl,
        .read = real_read,
        .write = real_write,
        .mmap = real_mmap,
        .munmap = real_munmap,
};
