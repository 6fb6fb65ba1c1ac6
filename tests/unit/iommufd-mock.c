/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "iommufd-abi.h"
#include "iommufd-mock.h"
#include "iommufd-test-abi.h"
#include "macros.h"

#define MOCK_MAX_FILES 64

typedef struct MockFile {
        dev_t dev;
        ino_t ino;
} MockFile;

struct IommufdMock {
        MockFile files[MOCK_MAX_FILES]; /* every open file handed out */
        size_t n_files;
        /* The binding: at most one, like a VFIO device. */
        bool bound;
        MockFile bound_file;
        int iommufd;
        uint32_t stdev_id, idev_id, park_ioas;
};

static int test_cmd(int iommufd, struct iommud_test_cmd *cmd) {
        cmd->size = sizeof(*cmd);
        return ioctl(iommufd, IOMMUD_IOMMU_TEST_CMD, cmd) < 0 ? negative_errno() : 0;
}

static int destroy(int iommufd, uint32_t id) {
        struct iommud_destroy d = { .size = sizeof(d), .id = id };

        return ioctl(iommufd, IOMMUD_IOMMU_DESTROY, &d) < 0 ? negative_errno() : 0;
}

int iommufd_mock_new(IommufdMock **ret, const char *dev_iommu) {
        struct iommud_test_cmd cmd = { .op = 0 };
        struct iommud_ioas_alloc a = { .size = sizeof(a) };
        _cleanup_close_ int fd = open(dev_iommu, O_RDWR | O_CLOEXEC);
        int r;

        if (fd < 0)
                return negative_errno();
        /* No operation 0: EOPNOTSUPP from a kernel with the mock, ENOTTY from one without. */
        r = test_cmd(fd, &cmd);
        if (r == -ENOTTY)
                return r;
        if (r != -EOPNOTSUPP)
                return r < 0 ? r : -EIO;
        /* Whether a mock device can exist here (closing fd destroys the trial one). */
        if (ioctl(fd, IOMMUD_IOMMU_IOAS_ALLOC, &a) < 0)
                return negative_errno();
        cmd = (struct iommud_test_cmd){ .op = IOMMUD_TEST_OP_MOCK_DOMAIN, .id = a.out_ioas_id };
        r = test_cmd(fd, &cmd);
        if (r < 0)
                return r == -EINVAL ? -ENODEV : r;
        *ret = calloc(1, sizeof(IommufdMock));
        return *ret ? 0 : -ENOMEM;
}

IommufdMock *iommufd_mock_free(IommufdMock *m) {
        free(m);
        return NULL;
}

int iommufd_mock_open(IommufdMock *m, int *ret_fd) {
        struct stat st;
        int fd;

        if (m->n_files == MOCK_MAX_FILES)
                return -EMFILE;
        fd = memfd_create("iommufd-mock-device", MFD_CLOEXEC);
        if (fd < 0)
                return negative_errno();
        if (fstat(fd, &st) < 0) {
                int r = negative_errno();
                close(fd);
                return r;
        }
        m->files[m->n_files++] = (MockFile){ st.st_dev, st.st_ino };
        *ret_fd = fd;
        return 0;
}

/* The mock file fd is open on, or NULL. */
static const MockFile *mock_file_of(IommufdMock *m, int fd) {
        struct stat st;

        if (fstat(fd, &st) < 0)
                return NULL;
        for (size_t i = 0; i < m->n_files; i++)
                if (m->files[i].dev == st.st_dev && m->files[i].ino == st.st_ino)
                        return &m->files[i];
        return NULL;
}

/* Whether any fd of this process is still open on the file. */
static bool file_still_open(const MockFile *f) {
        DIR *d = opendir("/proc/self/fd");
        bool open = false;

        if (!d)
                return true; /* cannot tell: keep the binding rather than drop a live one */
        for (struct dirent *de; !open && (de = readdir(d));) {
                struct stat st;

                if (de->d_name[0] != '.' && fstatat(dirfd(d), de->d_name, &st, 0) == 0)
                        open = st.st_dev == f->dev && st.st_ino == f->ino;
        }
        closedir(d);
        return open;
}

static int mock_bind(IommufdMock *m, const MockFile *f, struct iommud_vfio_device_bind_iommufd *b) {
        struct iommud_ioas_alloc a = { .size = sizeof(a) };
        struct iommud_test_cmd cmd = { .op = IOMMUD_TEST_OP_MOCK_DOMAIN_FLAGS };
        int r;

        if (b->argsz < IOMMUD_VFIO_BIND_MINSZ || b->flags != 0)
                return -EINVAL;
        /* This file, or another open file of the device, is bound already. */
        if (m->bound)
                return -EINVAL;
        if (ioctl(b->iommufd, IOMMUD_IOMMU_IOAS_ALLOC, &a) < 0)
                return errno == ENOTTY ? -EBADFD : negative_errno();
        cmd.id = a.out_ioas_id;
        r = test_cmd(b->iommufd, &cmd);
        if (r < 0) {
                (void)destroy(b->iommufd, a.out_ioas_id);
                return r;
        }
        m->bound = true;
        m->bound_file = *f;
        m->iommufd = b->iommufd;
        m->park_ioas = a.out_ioas_id;
        m->stdev_id = cmd.mock_domain_flags.out_stdev_id;
        m->idev_id = cmd.mock_domain_flags.out_idev_id;
        b->out_devid = m->idev_id;
        return 0;
}

static int mock_replace(IommufdMock *m, uint32_t *pt_id) {
        struct iommud_test_cmd cmd = {
                .op = IOMMUD_TEST_OP_MOCK_DOMAIN_REPLACE,
                .id = m->stdev_id,
                .mock_domain_replace.pt_id = *pt_id,
        };
        int r = test_cmd(m->iommufd, &cmd);

        if (r == 0)
                *pt_id = cmd.mock_domain_replace.pt_id;
        return r;
}

static void mock_unbind(IommufdMock *m) {
        /* The mock object first: it holds the parking IOAS's HWPT. */
        (void)destroy(m->iommufd, m->stdev_id);
        (void)destroy(m->iommufd, m->park_ioas);
        m->bound = false;
}

static bool is_bound_file(IommufdMock *m, const MockFile *f) {
        return m->bound && f && f->dev == m->bound_file.dev && f->ino == m->bound_file.ino;
}

static int mock_device_ioctl(IommufdMock *m, const MockFile *f, unsigned long request,
                             void *arg) {
        switch (request) {
        case IOMMUD_VFIO_DEVICE_BIND_IOMMUFD:
                return mock_bind(m, f, arg);
        case IOMMUD_VFIO_DEVICE_ATTACH_IOMMUFD_PT: {
                struct iommud_vfio_device_attach_iommufd_pt *a = arg;

                if (!is_bound_file(m, f) || a->argsz < IOMMUD_VFIO_ATTACH_MINSZ || a->flags != 0)
                        return -EINVAL;
                return mock_replace(m, &a->pt_id);
        }
        case IOMMUD_VFIO_DEVICE_DETACH_IOMMUFD_PT: {
                struct iommud_vfio_device_detach_iommufd_pt *d = arg;
                uint32_t pt = m->park_ioas;

                if (!is_bound_file(m, f) || d->argsz < IOMMUD_VFIO_DETACH_MINSZ || d->flags != 0)
                        return -EINVAL;
                return mock_replace(m, &pt);
        }
        default:
                return -ENOTTY;
        }
}

static int mock_sys_open(void *userdata, const char *path, int flags) {
        return backend_kernel_syscalls_real.open(NULL, path, flags);
}

static int mock_sys_close(void *userdata, int fd) {
        IommufdMock *m = userdata;
        const MockFile *f = mock_file_of(m, fd);
        int r;

        /* Closing the iommufd destroys every object in it, the mock included. */
        if (m->bound && fd == m->iommufd && !f)
                m->bound = false;
        r = backend_kernel_syscalls_real.close(NULL, fd);
        if (is_bound_file(m, f) && !file_still_open(f))
                mock_unbind(m);
        return r;
}

static int mock_sys_ioctl(void *userdata, int fd, unsigned long request, void *arg) {
        IommufdMock *m = userdata;
        const MockFile *f = mock_file_of(m, fd);

        if (f)
                return mock_device_ioctl(m, f, request, arg);
        return backend_kernel_syscalls_real.ioctl(NULL, fd, request, arg);
}

static ssize_t mock_sys_read(void *userdata, int fd, void *buf, size_t count) {
        return backend_kernel_syscalls_real.read(NULL, fd, buf, count);
}

static ssize_t mock_sys_write(void *userdata, int fd, const void *buf, size_t count) {
        return backend_kernel_syscalls_real.write(NULL, fd, buf, count);
}

static int mock_sys_mmap(void *userdata, void *addr, size_t length, int prot, int fd,
                         uint64_t offset, void **ret_addr) {
        return backend_kernel_syscalls_real.mmap(NULL, addr, length, prot, fd, offset, ret_addr);
}

static int mock_sys_munmap(void *userdata, void *addr, size_t length) {
        return backend_kernel_syscalls_real.munmap(NULL, addr, length);
}

const BackendKernelSyscalls iommufd_mock_syscalls = {
        .open = mock_sys_open,
        .close = mock_sys_close,
        .ioctl = mock_sys_ioctl,
        .read = mock_sys_read,
        .write = mock_sys_write,
        .mmap = mock_sys_mmap,
        .munmap = mock_sys_munmap,
};

int iommufd_mock_inject(IommufdMock *m, uint32_t pasid, uint64_t addr, uint32_t perm,
                        bool last_page, uint32_t grpid) {
        struct iommud_test_cmd cmd = {
                .op = IOMMUD_TEST_OP_TRIGGER_IOPF,
                .trigger_iopf = {
                        .dev_id = m->idev_id,
                        .pasid = pasid,
                        .grpid = grpid,
                        .perm = perm,
                        .addr = addr,
                },
        };

        if (!m->bound)
                return -ENOENT;
        if (!last_page)
                return -EOPNOTSUPP;
        return test_cmd(m->iommufd, &cmd);
}

/* The mock's IOPTE: half a CPU page (MOCK_IO_PAGE_SIZE), a 4 KiB page on x86. */
#define MOCK_IO_PAGE_SIZE UINT64_C(2048)

int iommufd_mock_dirty(IommufdMock *m, uint32_t hwpt_id, uint64_t iova, uint64_t length) {
        _cleanup_free_ uint8_t *bits = NULL;
        uint64_t first = iova & ~(MOCK_IO_PAGE_SIZE - 1), n;
        struct iommud_test_cmd cmd = { .op = IOMMUD_TEST_OP_DIRTY, .id = hwpt_id };

        if (!m->bound)
                return -ENOENT;
        if (length == 0)
                return -EINVAL;
        n = (iova + length - first + MOCK_IO_PAGE_SIZE - 1) / MOCK_IO_PAGE_SIZE;
        bits = malloc((n + 7) / 8);
        if (!bits)
                return -ENOMEM;
        memset(bits, 0xff, (n + 7) / 8);
        cmd.dirty.iova = first;
        cmd.dirty.length = n * MOCK_IO_PAGE_SIZE;
        cmd.dirty.page_size = MOCK_IO_PAGE_SIZE;
        cmd.dirty.uptr = (uint64_t)(uintptr_t)bits;
        return test_cmd(m->iommufd, &cmd);
}
