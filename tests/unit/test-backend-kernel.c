/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cmocka.h>

#include "backend-kernel.h"
#include "fake-backend.h"
#include "iommufd-abi.h"
#include "kernel-responder.h"
#include "macros.h"

#define TEST_BDF "0000:01:00.0"
#define PAGE UINT64_C(4096)
#define RW (BACKEND_MAP_READABLE | BACKEND_MAP_WRITEABLE)

typedef struct Env {
        char root[64];
        char sysfs[96];
        char dev[96];
        Backend *fake;
        KernelResponder *resp;
        Backend *kernel;
        BackendContext *ctx;
        uint32_t ioas;
} Env;

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
        return remove(path);
}

static void mkdirs(const char *root, const char *rel) {
        char path[512], *p;

        snprintf(path, sizeof(path), "%s/%s", root, rel);
        for (p = path + strlen(root) + 1; (p = strchr(p, '/')); p++) {
                *p = '\0';
                (void)mkdir(path, 0755);
                *p = '/';
        }
        (void)mkdir(path, 0755);
}

static void link_char(const char *sysfs, dev_t dev, const char *target) {
        char path[512];

        snprintf(path, sizeof(path), "%s/dev/char/%u:%u", sysfs, major(dev), minor(dev));
        assert_int_equal(symlink(target, path), 0);
}

static dev_t rdev_of(const char *path) {
        struct stat st;
        assert_int_equal(stat(path, &st), 0);
        return st.st_rdev;
}

/* A fake sysfs: /dev/zero plays a VFIO cdev of TEST_BDF, /dev/null is what it is. */
static void make_tree(Env *e) {
        char path[512];
        int fd;

        strcpy(e->root, "/tmp/iommud-test-kernel-XXXXXX");
        assert_non_null(mkdtemp(e->root));
        snprintf(e->sysfs, sizeof(e->sysfs), "%s/sys", e->root);
        snprintf(e->dev, sizeof(e->dev), "%s/dev", e->root);
        mkdirs(e->root, "sys/dev/char");
        mkdirs(e->root, "sys/class/vfio-dev");
        mkdirs(e->root, "sys/devices/pci0000:00/0000:00:02.0/" TEST_BDF "/vfio-dev/vfio0");
        mkdirs(e->root, "sys/bus/pci/devices");
        snprintf(path, sizeof(path), "%s/bus/pci/devices/" TEST_BDF, e->sysfs);
        assert_int_equal(symlink("../../../devices/pci0000:00/0000:00:02.0/" TEST_BDF, path), 0);
        link_char(e->sysfs, rdev_of("/dev/zero"),
                  "../../devices/pci0000:00/0000:00:02.0/" TEST_BDF "/vfio-dev/vfio0");
        link_char(e->sysfs, rdev_of("/dev/null"), "../../devices/virtual/mem/null");
        mkdirs(e->root, "dev/vfio/devices");
        snprintf(path, sizeof(path), "%s/vfio/devices/vfio0", e->dev);
        fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
        assert_true(fd >= 0);
        close(fd);
}

static int kernel_new(Env *e, Error *err) {
        BackendKernelConfig cfg = BACKEND_KERNEL_CONFIG_INIT;

        cfg.sysfs_root = e->sysfs;
        cfg.dev_root = e->dev;
        cfg.syscalls = &kernel_responder_syscalls;
        cfg.userdata = e->resp;
        return backend_kernel_new(&e->kernel, &cfg, err);
}

static int setup_raw(void **state) {
        Env *e = calloc(1, sizeof(*e));

        assert_non_null(e);
        make_tree(e);
        assert_int_equal(fake_backend_new(&e->fake), 0);
        assert_int_equal(kernel_responder_new(&e->resp, e->fake, e->dev), 0);
        *state = e;
        return 0;
}

static int setup_full(void **state) {
        Env *e;
        Error err = ERROR_INIT;

        setup_raw(state);
        e = *state;
        assert_int_equal(kernel_new(e, &err), 0);
        assert_int_equal(e->kernel->ops->context_new(e->kernel, &e->ctx, &err), 0);
        assert_int_equal(e->kernel->ops->ioas_alloc(e->ctx, &e->ioas, &err), 0);
        return 0;
}

static int teardown(void **state) {
        Env *e = *state;

        backend_context_free(e->ctx);
        if (e->kernel)
                assert_int_equal(backend_kernel_fallback_mappings(e->kernel), 0);
        backend_free(e->kernel);
        /* Everything backend-kernel opened through the seam is closed again. */
        assert_int_equal(e->resp->n_fds, 0);
        assert_int_equal(e->resp->mapped_bytes, 0);
        kernel_responder_free(e->resp);
        backend_free(e->fake);
        assert_int_equal(nftw(e->root, rm_entry, 16, FTW_DEPTH | FTW_PHYS), 0);
        free(e);
        return 0;
}

static const BackendOps *K(Env *e) {
        return e->kernel->ops;
}

static int test_memfd(size_t size) {
        int fd = memfd_create("iommud-test-mem", MFD_CLOEXEC);
        assert_true(fd >= 0);
        assert_int_equal(ftruncate(fd, (off_t)size), 0);
        return fd;
}

/* ---- creation and probing ---- */

static void test_new_fails_without_dev_iommu(void **state) {
        Env *e = *state;
        Error err = ERROR_INIT;

        e->resp->no_dev_iommu = true;
        assert_int_equal(kernel_new(e, &err), -ENOENT);
        assert_null(e->kernel);
        assert_non_null(strstr(err.message, "/iommu does not exist"));
        assert_non_null(strstr(err.message, "CONFIG_IOMMUFD"));
}

static void test_new_fails_without_dev_iommu_real(void **state) {
        Env *e = *state;
        BackendKernelConfig cfg = BACKEND_KERNEL_CONFIG_INIT;
        Backend *b = NULL;
        Error err = ERROR_INIT;

        /* The real syscalls against a /dev without an iommu node. */
        cfg.sysfs_root = e->sysfs;
        cfg.dev_root = e->dev;
        assert_int_equal(backend_kernel_new(&b, &cfg, &err), -ENOENT);
        assert_null(b);
        assert_non_null(strstr(err.message, e->dev));
}

static void test_probe_all_features(void **state) {
        Env *e = *state;
        Error err = ERROR_INIT;

        assert_int_equal(kernel_new(e, &err), 0);
        assert_string_equal(K(e)->name, "kernel");
        assert_int_equal(e->kernel->features,
                         (_BACKEND_FEATURE_MAX - 1) & ~BACKEND_FEATURE_DIRTY_ALL_PINNED);
        /* The probe context is gone and the probes created nothing. */
        assert_int_equal(e->resp->n_fds, 0);
}

static void test_probe_uses_short_size(void **state) {
        Env *e = *state;
        Error err = ERROR_INIT;

        assert_int_equal(kernel_new(e, &err), 0);
        /* Every probe claimed 4 bytes and differed from the structure's size. */
        assert_int_equal(e->resp->last_size, 4);
        assert_true(e->resp->n_ioctls >= 10);
        assert_int_equal(e->resp->n_size_not_sizeof, e->resp->n_ioctls);
}

static void test_probe_old_kernel_features_off(void **state) {
        static const struct {
                uint32_t cmd;
                uint64_t off;
        } table[] = {
                { IOMMUD_IOMMUFD_CMD_IOAS_MAP_FILE, BACKEND_FEATURE_MAP_FILE },
                { IOMMUD_IOMMUFD_CMD_FAULT_QUEUE_ALLOC, BACKEND_FEATURE_FAULT_QUEUE },
                { IOMMUD_IOMMUFD_CMD_HWPT_INVALIDATE,
                  BACKEND_FEATURE_HWPT_INVALIDATE | BACKEND_FEATURE_NESTING },
                { IOMMUD_IOMMUFD_CMD_IOAS_CHANGE_PROCESS,
                  BACKEND_FEATURE_CHANGE_PROCESS | BACKEND_FEATURE_PASID },
                { IOMMUD_IOMMUFD_CMD_VIOMMU_ALLOC, BACKEND_FEATURE_VIOMMU },
                { IOMMUD_IOMMUFD_CMD_OPTION, BACKEND_FEATURE_OPTION },
                { IOMMUD_IOMMUFD_CMD_HWPT_ALLOC, BACKEND_FEATURE_HWPT_ALLOC },
                { IOMMUD_IOMMUFD_CMD_GET_HW_INFO, BACKEND_FEATURE_HW_INFO },
                { IOMMUD_IOMMUFD_CMD_HWPT_SET_DIRTY_TRACKING, BACKEND_FEATURE_DIRTY_TRACKING },
        };
        Env *e = *state;

        FOREACH_ARRAY(t, table, ELEMENTSOF(table)) {
                Error err = ERROR_INIT;

                e->resp->disabled_cmds = 0;
                kernel_responder_disable(e->resp, t->cmd);
                assert_int_equal(kernel_new(e, &err), 0);
                assert_int_equal(e->kernel->features,
                                 (_BACKEND_FEATURE_MAX - 1) &
                                         ~(t->off | BACKEND_FEATURE_DIRTY_ALL_PINNED));
                backend_free(e->kernel);
                e->kernel = NULL;
        }
}

static void test_probe_6_1_kernel(void **state) {
        Env *e = *state;
        Error err = ERROR_INIT;

        /* A 6.2-era kernel: only 0x80..0x88. */
        for (uint32_t cmd = IOMMUD_IOMMUFD_CMD_HWPT_ALLOC;
             cmd <= IOMMUD_IOMMUFD_CMD_VEVENTQ_ALLOC; cmd++)
                kernel_responder_disable(e->resp, cmd);
        assert_int_equal(kernel_new(e, &err), 0);
        assert_int_equal(e->kernel->features, BACKEND_FEATURE_IOAS | BACKEND_FEATURE_OPTION |
                                                      BACKEND_FEATURE_VFIO_CDEV);
}

static void test_probe_follows_inner_features(void **state) {
        Env *e = *state;
        Error err = ERROR_INIT;
        const uint64_t off = BACKEND_FEATURE_MAP_FILE | BACKEND_FEATURE_VIOMMU |
                             BACKEND_FEATURE_FAULT_QUEUE;

        /* A responder over an older model answers ENOTTY where that model has no feature. */
        kernel_responder_free(e->resp);
        e->fake->features &= ~off;
        assert_int_equal(kernel_responder_new(&e->resp, e->fake, e->dev), 0);
        assert_int_equal(kernel_new(e, &err), 0);
        assert_int_equal(e->kernel->features, e->fake->features);
}

static void test_probe_not_iommufd(void **state) {
        Env *e = *state;
        Error err = ERROR_INIT;

        kernel_responder_disable(e->resp, IOMMUD_IOMMUFD_CMD_IOAS_ALLOC);
        assert_int_equal(kernel_new(e, &err), -EOPNOTSUPP);
        assert_non_null(strstr(err.message, "does not answer IOMMU_IOAS_ALLOC"));
}

/* ---- the responder decodes the ABI as the kernel does ---- */

static int open_iommufd(Env *e) {
        char path[128];
        int fd;

        snprintf(path, sizeof(path), "%s/iommu", e->dev);
        fd = kernel_responder_syscalls.open(e->resp, path, O_RDWR);
        assert_true(fd >= 0);
        return fd;
}

static void test_size_rules_every_ioctl(void **state) {
        /* Each ioctl's structure size and the end of its last mandatory field. */
        static const struct {
                uint32_t cmd;
                size_t size;
                size_t min;
        } table[] = {
                { IOMMUD_IOMMUFD_CMD_DESTROY, 8, 8 },
                { IOMMUD_IOMMUFD_CMD_IOAS_ALLOC, 12, 12 },
                { IOMMUD_IOMMUFD_CMD_IOAS_ALLOW_IOVAS, 24, 24 },
                { IOMMUD_IOMMUFD_CMD_IOAS_COPY, 40, 40 },
                { IOMMUD_IOMMUFD_CMD_IOAS_IOVA_RANGES, 32, 32 },
                { IOMMUD_IOMMUFD_CMD_IOAS_MAP, 40, 40 },
                { IOMMUD_IOMMUFD_CMD_IOAS_UNMAP, 24, 24 },
                { IOMMUD_IOMMUFD_CMD_OPTION, 24, 24 },
                { IOMMUD_IOMMUFD_CMD_VFIO_IOAS, 12, 12 },
                { IOMMUD_IOMMUFD_CMD_HWPT_ALLOC, 48, 24 },
                { IOMMUD_IOMMUFD_CMD_GET_HW_INFO, 40, 32 },
                { IOMMUD_IOMMUFD_CMD_HWPT_SET_DIRTY_TRACKING, 16, 16 },
                { IOMMUD_IOMMUFD_CMD_HWPT_GET_DIRTY_BITMAP, 48, 48 },
                { IOMMUD_IOMMUFD_CMD_HWPT_INVALIDATE, 32, 32 },
                { IOMMUD_IOMMUFD_CMD_FAULT_QUEUE_ALLOC, 16, 16 },
                { IOMMUD_IOMMUFD_CMD_IOAS_MAP_FILE, 40, 40 },
                { IOMMUD_IOMMUFD_CMD_VIOMMU_ALLOC, 40, 24 },
                { IOMMUD_IOMMUFD_CMD_VDEVICE_ALLOC, 24, 24 },
                { IOMMUD_IOMMUFD_CMD_IOAS_CHANGE_PROCESS, 8, 8 },
        };
        Env *e = *state;
        int fd = open_iommufd(e);

        FOREACH_ARRAY(t, table, ELEMENTSOF(table)) {
                uint8_t buf[128] = {};
                uint32_t size;
                int r;

                /* One byte short of the mandatory fields. */
                size = (uint32_t)t->min - 1;
                memcpy(buf, &size, 4);
                r = kernel_responder_ioctl(e->resp, fd, IOMMUD_IOMMUFD_IO(t->cmd), buf);
                assert_int_equal(r, -EINVAL);

                /* One byte longer, non-zero. */
                size = (uint32_t)t->size + 1;
                memcpy(buf, &size, 4);
                buf[t->size] = 0x5a;
                r = kernel_responder_ioctl(e->resp, fd, IOMMUD_IOMMUFD_IO(t->cmd), buf);
                assert_int_equal(r, -E2BIG);

                /* One byte longer, zero: as exact, so no longer a size error. */
                buf[t->size] = 0;
                r = kernel_responder_ioctl(e->resp, fd, IOMMUD_IOMMUFD_IO(t->cmd), buf);
                assert_int_not_equal(r, -E2BIG);
                assert_int_not_equal(r, -ENOTTY);
        }
        assert_int_equal(kernel_responder_syscalls.close(e->resp, fd), 0);
}

static void test_size_zero_extended_behaves_as_exact(void **state) {
        Env *e = *state;
        int fd = open_iommufd(e);
        struct {
                struct iommud_ioas_alloc a;
                uint8_t extra[20];
        } big = { .a.size = sizeof(big) };
        struct iommud_ioas_alloc exact = { .size = sizeof(exact) };

        assert_int_equal(kernel_responder_ioctl(e->resp, fd, IOMMUD_IOMMU_IOAS_ALLOC, &big), 0);
        assert_int_equal(kernel_responder_ioctl(e->resp, fd, IOMMUD_IOMMU_IOAS_ALLOC, &exact), 0);
        assert_int_not_equal(big.a.out_ioas_id, 0);
        assert_int_equal(exact.out_ioas_id, big.a.out_ioas_id + 1);
        /* Nothing is written past the kernel's structure. */
        for (size_t i = 0; i < sizeof(big.extra); i++)
                assert_int_equal(big.extra[i], 0);
        assert_int_equal(kernel_responder_syscalls.close(e->resp, fd), 0);
}

static void test_reserved_and_flags_rejected(void **state) {
        Env *e = *state;
        int fd = open_iommufd(e);
        struct iommud_ioas_alloc a = { .size = sizeof(a), .flags = 1 };
        struct iommud_ioas_map m = { .size = sizeof(m), .flags = BACKEND_MAP_READABLE,
                                     .ioas_id = 1, .reserved = 1, .user_va = 4096,
                                     .length = 4096 };
        struct iommud_ioas_map m2 = { .size = sizeof(m2), .flags = 1u << 7, .ioas_id = 1,
                                      .user_va = 4096, .length = 4096 };
        struct iommud_option o = { .size = sizeof(o), .op = IOMMUD_IOMMU_OPTION_OP_GET,
                                   .reserved = 1 };
        struct iommud_hwpt_alloc h = { .size = sizeof(h), .reserved2 = 1 };
        struct iommud_hw_info hi = { .size = sizeof(hi), .reserved = { 0, 1, 0 } };
        struct iommud_fault_alloc f = { .size = sizeof(f), .flags = 2 };
        struct iommud_ioas_iova_ranges q = { .size = sizeof(q), .ioas_id = 1, .reserved = 7 };

        assert_int_equal(kernel_responder_ioctl(e->resp, fd, IOMMUD_IOMMU_IOAS_ALLOC, &a),
                         -EOPNOTSUPP);
        assert_int_equal(kernel_responder_ioctl(e->resp, fd, IOMMUD_IOMMU_IOAS_MAP, &m),
                         -EOPNOTSUPP);
        assert_int_equal(kernel_responder_ioctl(e->resp, fd, IOMMUD_IOMMU_IOAS_MAP, &m2),
                         -EOPNOTSUPP);
        assert_int_equal(kernel_responder_ioctl(e->resp, fd, IOMMUD_IOMMU_OPTION, &o),
                         -EOPNOTSUPP);
        assert_int_equal(kernel_responder_ioctl(e->resp, fd, IOMMUD_IOMMU_HWPT_ALLOC, &h),
                         -EOPNOTSUPP);
        assert_int_equal(kernel_responder_ioctl(e->resp, fd, IOMMUD_IOMMU_GET_HW_INFO, &hi),
                         -EOPNOTSUPP);
        assert_int_equal(kernel_responder_ioctl(e->resp, fd, IOMMUD_IOMMU_FAULT_QUEUE_ALLOC, &f),
                         -EOPNOTSUPP);
        assert_int_equal(kernel_responder_ioctl(e->resp, fd, IOMMUD_IOMMU_IOAS_IOVA_RANGES, &q),
                         -EOPNOTSUPP);
        assert_int_equal(e->resp->n_reserved_set, 8);
        assert_int_equal(kernel_responder_syscalls.close(e->resp, fd), 0);
}

static void test_unknown_ioctls(void **state) {
        Env *e = *state;
        int fd = open_iommufd(e);
        uint8_t buf[64] = { 8 };

        assert_int_equal(kernel_responder_ioctl(e->resp, fd, IOMMUD_IOMMUFD_IO(0x9f), buf),
                         -ENOTTY);
        assert_int_equal(kernel_responder_ioctl(e->resp, fd, IOMMUD_IOMMUFD_IO(0x7f), buf),
                         -ENOTTY);
        /* Size or direction bits make it a different ioctl. */
        assert_int_equal(kernel_responder_ioctl(e->resp, fd, _IOW(';', 0x80, uint64_t), buf),
                         -ENOTTY);
        /* VFIO cdev ioctls do not exist on an iommufd. */
        assert_int_equal(
                kernel_responder_ioctl(e->resp, fd, IOMMUD_VFIO_DEVICE_BIND_IOMMUFD, buf),
                -ENOTTY);
        assert_int_equal(kernel_responder_syscalls.close(e->resp, fd), 0);
        assert_int_equal(kernel_responder_ioctl(e->resp, fd, IOMMUD_IOMMU_DESTROY, buf), -EBADF);
}

static void test_vfio_argsz_rules(void **state) {
        Env *e = *state;
        int fd = open_iommufd(e), dev = open("/dev/zero", O_RDWR | O_CLOEXEC);
        struct iommud_vfio_device_bind_iommufd b = { .argsz = 15, .iommufd = fd };
        struct iommud_vfio_device_attach_iommufd_pt a = { .argsz = 12, .pt_id = 1 };

        assert_true(dev >= 0);
        assert_int_equal(kernel_responder_ioctl(e->resp, dev, IOMMUD_VFIO_DEVICE_BIND_IOMMUFD, &b),
                         -EINVAL);
        b.argsz = 16;
        b.flags = 1;
        assert_int_equal(kernel_responder_ioctl(e->resp, dev, IOMMUD_VFIO_DEVICE_BIND_IOMMUFD, &b),
                         -EINVAL);
        b.flags = 0;
        b.iommufd = dev; /* not an iommufd */
        assert_int_equal(kernel_responder_ioctl(e->resp, dev, IOMMUD_VFIO_DEVICE_BIND_IOMMUFD, &b),
                         -EBADFD);
        b.iommufd = fd;
        /* The pre-token 16-byte layout is still accepted. */
        assert_int_equal(kernel_responder_ioctl(e->resp, dev, IOMMUD_VFIO_DEVICE_BIND_IOMMUFD, &b),
                         0);
        assert_int_not_equal(b.out_devid, 0);
        /* PASID flag needs the 16-byte layout. */
        a.flags = IOMMUD_VFIO_DEVICE_ATTACH_PASID;
        assert_int_equal(
                kernel_responder_ioctl(e->resp, dev, IOMMUD_VFIO_DEVICE_ATTACH_IOMMUFD_PT, &a),
                -EINVAL);
        a.flags = 2;
        assert_int_equal(
                kernel_responder_ioctl(e->resp, dev, IOMMUD_VFIO_DEVICE_ATTACH_IOMMUFD_PT, &a),
                -EINVAL);
        assert_int_equal(kernel_responder_syscalls.close(e->resp, dev), 0);
        assert_int_equal(kernel_responder_syscalls.close(e->resp, fd), 0);
}

/* ---- backend-kernel's requests, byte for byte ---- */

static void test_ops_send_exact_structures(void **state) {
        Env *e = *state;
        Error err = ERROR_INIT;
        _cleanup_close_ int mem = test_memfd(4 * PAGE), dev = -EBADF;
        uint64_t iova = 0, unmapped = 0, val = 0, align = 0;
        uint32_t ioas2, dev_id, hwpt, pt, fault_id;
        IovaRange ranges[4];
        size_t n = ELEMENTSOF(ranges);
        HwInfo info;
        int fault_fd;

        e->resp->n_size_not_sizeof = 0;
        e->resp->n_ioctls = 0;
        dev = open("/dev/zero", O_RDWR | O_CLOEXEC);
        assert_true(dev >= 0);

        assert_int_equal(K(e)->ioas_alloc(e->ctx, &ioas2, &err), 0);
        assert_int_equal(K(e)->ioas_map_file(e->ctx, e->ioas, RW, mem, 0, 2 * PAGE, &iova, &err),
                         0);
        assert_int_equal(K(e)->ioas_copy(e->ctx, ioas2, e->ioas, RW, iova, PAGE, &iova, &err), 0);
        assert_int_equal(K(e)->ioas_iova_ranges(e->ctx, e->ioas, ranges, &n, &align, &err), 0);
        assert_int_equal(n, 2);
        assert_int_equal(align, PAGE);
        assert_int_equal(ranges[1].start, FAKE_RESERVED_LAST + 1);
        assert_int_equal(ranges[1].last, UINT64_MAX);
        assert_int_equal(K(e)->ioas_allow_iovas(e->ctx, e->ioas, ranges, 1, &err), 0);
        assert_int_equal(K(e)->option(e->ctx, BACKEND_OPTION_RLIMIT_MODE, BACKEND_OPTION_OP_GET, 0,
                                      &val, &err),
                         0);
        val = 1;
        assert_int_equal(K(e)->option(e->ctx, BACKEND_OPTION_RLIMIT_MODE, BACKEND_OPTION_OP_SET, 0,
                                      &val, &err),
                         0);
        val = 0;
        assert_int_equal(K(e)->option(e->ctx, BACKEND_OPTION_RLIMIT_MODE, BACKEND_OPTION_OP_GET, 0,
                                      &val, &err),
                         0);
        assert_int_equal(val, 1);
        assert_int_equal(K(e)->device_bind(e->ctx, dev, &dev_id, &err), 0);
        pt = ioas2;
        assert_int_equal(K(e)->device_attach(e->ctx, dev_id, BACKEND_NO_PASID, &pt, &err), 0);
        assert_int_not_equal(pt, ioas2);
        assert_int_equal(K(e)->hw_info(e->ctx, dev_id, &info, &err), 0);
        assert_int_equal(info.type, 1);
        assert_int_equal(info.max_pasid_log2, 20);
        assert_int_equal(info.capabilities, BACKEND_HW_CAP_PCI_PASID_EXEC);
        assert_int_equal(K(e)->fault_queue_alloc(e->ctx, &fault_id, &fault_fd, &err), 0);
        HwptAllocArgs h = { .flags = BACKEND_HWPT_FAULT_ID_VALID, .dev_id = dev_id,
                            .pt_id = e->ioas, .fault_id = fault_id };
        assert_int_equal(K(e)->hwpt_alloc(e->ctx, &h, &hwpt, &err), 0);
        pt = hwpt;
        assert_int_equal(K(e)->device_attach(e->ctx, dev_id, 5, &pt, &err), 0);
        assert_int_equal(pt, hwpt);
        assert_int_equal(K(e)->device_detach(e->ctx, dev_id, 5, &err), 0);
        assert_int_equal(K(e)->device_detach(e->ctx, dev_id, BACKEND_NO_PASID, &err), 0);
        assert_int_equal(K(e)->ioas_unmap(e->ctx, e->ioas, 0, UINT64_MAX, &unmapped, &err), 0);
        assert_int_equal(unmapped, 2 * PAGE);
        /* The kernel backend cannot see from the file whether a client keeps it: "maybe". */
        assert_int_equal(K(e)->device_unbind(e->ctx, dev_id, &err), 1);
        assert_int_equal(K(e)->destroy(e->ctx, hwpt, &err), 0);
        assert_int_equal(K(e)->destroy(e->ctx, fault_id, &err), 0);

        /* Every structure went out with size = sizeof and zero reserved fields. */
        assert_int_equal(e->resp->n_size_not_sizeof, 0);
        assert_int_equal(e->resp->n_reserved_set, 0);
        assert_int_equal(e->resp->n_ioctls, 20); /* the unbind detaches the RID first */
}

/*
 * The request interrupt: armed once with an eventfd the context keeps (asking again gives the
 * same fd), and pointed nowhere again before the device file goes at unbind.
 */
static void test_device_request_fd(void **state) {
        Env *e = *state;
        Error err = ERROR_INIT;
        _cleanup_close_ int dev = open("/dev/zero", O_RDWR | O_CLOEXEC);
        uint32_t dev_id;
        int fd = -1, again = -1;

        assert_true(dev >= 0);
        assert_int_equal(K(e)->device_request_fd(e->ctx, 4242, &fd, &err), -ENOENT);
        assert_int_equal(K(e)->device_bind(e->ctx, dev, &dev_id, &err), 0);
        e->resp->n_size_not_sizeof = 0;
        assert_int_equal(K(e)->device_request_fd(e->ctx, dev_id, &fd, &err), 0);
        assert_true(fd >= 0);
        assert_int_equal(e->resp->request_trigger, fd);
        assert_int_equal(e->resp->n_size_not_sizeof, 0);
        assert_int_equal(K(e)->device_request_fd(e->ctx, dev_id, &again, &err), 0);
        assert_int_equal(again, fd);
        assert_true(K(e)->device_unbind(e->ctx, dev_id, &err) >= 0);
        assert_int_equal(e->resp->request_trigger, -1);
        assert_true(fcntl(fd, F_GETFD) < 0); /* closed with the device */
}

static void test_context_fd_is_the_iommufd(void **state) {
        Env *e = *state;
        int fd = K(e)->context_fd(e->ctx);

        assert_true(fd >= 0);
        assert_non_null(kernel_responder_context(e->resp, fd));
}

/* ---- errno sentences ---- */

static void test_errno_sentences(void **state) {
        Env *e = *state;
        Error err = ERROR_INIT;
        _cleanup_close_ int mem = test_memfd(4 * PAGE), dev = open("/dev/zero", O_RDWR | O_CLOEXEC);
        uint64_t iova = FAKE_RESERVED_START - PAGE, unmapped;
        uint32_t dev_id, pt = e->ioas, ioas2;
        IovaRange one[1], bad = { .start = 10, .last = 5 };
        size_t n = 1;

        assert_true(dev >= 0);
        assert_int_equal(K(e)->device_bind(e->ctx, dev, &dev_id, &err), 0);

        /* A mapping over the device's reserved window, then attach: EADDRINUSE. */
        assert_int_equal(K(e)->ioas_map_file(e->ctx, e->ioas, RW | BACKEND_MAP_FIXED_IOVA, mem, 0,
                                             2 * PAGE, &iova, &err),
                         0);
        assert_int_equal(K(e)->device_attach(e->ctx, dev_id, BACKEND_NO_PASID, &pt, &err),
                         -EADDRINUSE);
        assert_non_null(strstr(err.message, "a reserved region of the device collides with an "
                                            "existing mapping"));
        error_clear(&err);

        assert_int_equal(K(e)->ioas_map_file(e->ctx, e->ioas, RW | BACKEND_MAP_FIXED_IOVA, mem, 0,
                                             PAGE, &iova, &err),
                         -EEXIST);
        assert_non_null(strstr(err.message, "overlaps an existing mapping in IOAS"));
        error_clear(&err);

        assert_int_equal(K(e)->ioas_unmap(e->ctx, e->ioas, iova, PAGE, &unmapped, &err), -ENOENT);
        assert_non_null(strstr(err.message, "does not cover whole mappings"));
        error_clear(&err);

        assert_int_equal(K(e)->ioas_iova_ranges(e->ctx, e->ioas, one, &n, NULL, &err), -EMSGSIZE);
        assert_int_equal(n, 2);
        error_clear(&err);

        assert_int_equal(K(e)->ioas_allow_iovas(e->ctx, e->ioas, &bad, 1, &err), -EINVAL);
        assert_non_null(strstr(err.message, "are invalid"));
        error_clear(&err);

        assert_int_equal(K(e)->destroy(e->ctx, 0, &err), -ENOENT);
        assert_string_equal(err.message, "object 0 does not exist");
        error_clear(&err);

        assert_int_equal(K(e)->ioas_map_file(e->ctx, e->ioas, BACKEND_MAP_FIXED_IOVA, mem, 0,
                                             PAGE, &iova, &err),
                         -EINVAL);
        assert_string_equal(err.message, "a mapping must be readable, writeable or both");
        error_clear(&err);

        assert_int_equal(K(e)->ioas_map_file(e->ctx, e->ioas, RW, 999, 0, PAGE, &iova, &err),
                         -EBADF);
        error_clear(&err);

        /* A device attached to an IOAS keeps it alive: EBUSY. */
        assert_int_equal(K(e)->ioas_alloc(e->ctx, &ioas2, &err), 0);
        pt = ioas2;
        assert_int_equal(K(e)->device_attach(e->ctx, dev_id, BACKEND_NO_PASID, &pt, &err), 0);
        assert_int_equal(K(e)->destroy(e->ctx, pt, &err), -EBUSY);
        assert_non_null(strstr(err.message, "is in use"));
        error_clear(&err);

        assert_int_equal(K(e)->device_unbind(e->ctx, dev_id + 100, &err), -ENOENT);
        assert_non_null(strstr(err.message, "is not bound to this context"));
}

/* ---- fault queues ---- */

static void test_fault_read_respond(void **state) {
        Env *e = *state;
        Error err = ERROR_INIT;
        BackendContext *inner = kernel_responder_context(e->resp, K(e)->context_fd(e->ctx));
        FaultRecord recs[4];
        uint32_t fault_id, c1, c2;
        size_t n = 99;
        int fd;

        assert_int_equal(K(e)->fault_queue_alloc(e->ctx, &fault_id, &fd, &err), 0);
        assert_true(fd >= 0);
        assert_int_equal(K(e)->fault_read(e->ctx, fault_id, recs, 4, &n, &err), 0);
        assert_int_equal(n, 0);

        assert_int_equal(fake_backend_inject_fault(inner, fault_id, 7, 0x1000, &c1), 0);
        assert_int_equal(fake_backend_inject_fault(inner, fault_id, 7, 0x2000, &c2), 0);
        assert_int_equal(K(e)->fault_read(e->ctx, fault_id, recs, 4, &n, &err), 0);
        assert_int_equal(n, 2);
        assert_int_equal(recs[0].addr, 0x1000);
        assert_int_equal(recs[0].cookie, c1);
        assert_int_equal(recs[0].dev_id, 7);
        assert_int_equal(recs[0].flags, FAULT_FLAG_LAST_PAGE);
        assert_int_equal(recs[1].addr, 0x2000);
        assert_int_equal(recs[1].cookie, c2);

        assert_int_equal(K(e)->fault_respond(e->ctx, fault_id, c1, FAULT_RESPONSE_SUCCESS, &err),
                         0);
        assert_int_equal(K(e)->fault_respond(e->ctx, fault_id, c1, FAULT_RESPONSE_SUCCESS, &err),
                         -EINVAL);
        assert_non_null(strstr(err.message, "is not pending on fault queue"));
        error_clear(&err);
        assert_int_equal(K(e)->fault_respond(e->ctx, fault_id, c2, FAULT_RESPONSE_INVALID, &err),
                         0);
        assert_int_equal(K(e)->fault_read(e->ctx, fault_id + 1, recs, 4, &n, &err), -ENOENT);
}

static void test_fault_fd_whole_records(void **state) {
        Env *e = *state;
        Error err = ERROR_INIT;
        uint8_t buf[80];
        uint32_t fault_id;
        int fd;

        assert_int_equal(K(e)->fault_queue_alloc(e->ctx, &fault_id, &fd, &err), 0);
        assert_int_equal(kernel_responder_syscalls.read(e->resp, fd, buf, 39), -ESPIPE);
        assert_int_equal(kernel_responder_syscalls.read(e->resp, fd, buf, 41), -ESPIPE);
        assert_int_equal(kernel_responder_syscalls.read(e->resp, fd, buf, 80), 0);
        assert_int_equal(kernel_responder_syscalls.write(e->resp, fd, buf, 7), -ESPIPE);
}

/* ---- memory fds: MAP_FILE (its fallback: test-backend-kernel-fallback.c) ---- */

static void test_map_file_native(void **state) {
        Env *e = *state;
        Error err = ERROR_INIT;
        _cleanup_close_ int mem = test_memfd(4 * PAGE);
        uint64_t iova = 0, unmapped = 0;

        assert_true(backend_has_feature(e->kernel, BACKEND_FEATURE_MAP_FILE));
        assert_int_equal(K(e)->ioas_map_file(e->ctx, e->ioas, RW, mem, PAGE, 2 * PAGE, &iova,
                                             &err),
                         0);
        assert_int_equal(e->resp->last_request, IOMMUD_IOMMU_IOAS_MAP_FILE);
        assert_int_equal(e->resp->n_mmaps, 0);
        assert_int_equal(backend_kernel_fallback_mappings(e->kernel), 0);
        assert_int_equal(K(e)->ioas_unmap(e->ctx, e->ioas, iova, 2 * PAGE, &unmapped, &err), 0);
        assert_int_equal(unmapped, 2 * PAGE);
}

/* ---- device fds ---- */

static void test_device_fd_identify(void **state) {
        Env *e = *state;
        Error err = ERROR_INIT;
        char tmpl[] = "/tmp/iommud-test-file-XXXXXX";
        _cleanup_close_ int zero = open("/dev/zero", O_RDWR | O_CLOEXEC),
                            null = open("/dev/null", O_RDWR | O_CLOEXEC),
                            full = open("/dev/full", O_RDWR | O_CLOEXEC),
                            zpath = open("/dev/zero", O_PATH | O_CLOEXEC),
                            dir = open("/tmp", O_RDONLY | O_DIRECTORY | O_CLOEXEC),
                            file = mkostemp(tmpl, O_CLOEXEC);
        int p[2], s[2];
        char *name = NULL;

        assert_int_equal(kernel_new(e, &err), 0);
        assert_int_equal(pipe2(p, O_CLOEXEC), 0);
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, s), 0);
        unlink(tmpl);

        assert_int_equal(K(e)->device_fd_identify(e->kernel, zero, &name, &err), 0);
        assert_string_equal(name, TEST_BDF);
        free(name);
        name = NULL;

        const struct {
                int fd;
                int error;
                const char *says;
        } table[] = {
                { p[0], -EBADF, "is a pipe, not a VFIO device" },
                { s[0], -EBADF, "is a socket, not a VFIO device" },
                { file, -EBADF, "is a regular file, not a VFIO device" },
                { dir, -EBADF, "is a directory, not a VFIO device" },
                { zpath, -EBADF, "is an O_PATH descriptor" },
                { null, -ENODEV, "(null), not a VFIO device cdev" },
                { full, -ENODEV, "which sysfs does not know" },
                { 987, -EBADF, "is not an open file descriptor" },
        };
        FOREACH_ARRAY(t, table, ELEMENTSOF(table)) {
                error_clear(&err);
                assert_int_equal(K(e)->device_fd_identify(e->kernel, t->fd, &name, &err),
                                 t->error);
                assert_null(name);
                if (!strstr(err.message, t->says))
                        fail_msg("fd %d: \"%s\" does not say \"%s\"", t->fd, err.message, t->says);
        }
        close(p[0]);
        close(p[1]);
        close(s[0]);
        close(s[1]);
}

static void test_device_open(void **state) {
        Env *e = *state;
        Error err = ERROR_INIT;
        struct stat st;
        int fd = -EBADF;

        assert_int_equal(K(e)->device_open(e->kernel, TEST_BDF, &fd, &err), 0);
        assert_true(fd >= 0);
        assert_int_equal(fstat(fd, &st), 0);
        assert_true(S_ISREG(st.st_mode)); /* the test's stand-in node */
        assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
        close(fd);

        assert_int_equal(K(e)->device_open(e->kernel, "0000:02:00.0", &fd, &err), -ENODEV);
        assert_non_null(strstr(err.message, "has no VFIO cdev"));
        assert_int_equal(K(e)->device_open(e->kernel, "../../etc", &fd, &err), -EINVAL);
}

static void test_device_bind_keeps_a_dup(void **state) {
        Env *e = *state;
        Error err = ERROR_INIT;
        int dev = open("/dev/zero", O_RDWR | O_CLOEXEC);
        uint32_t dev_id, pt = e->ioas;
        BackendContext *inner = kernel_responder_context(e->resp, K(e)->context_fd(e->ctx));

        assert_true(dev >= 0);
        assert_int_equal(K(e)->device_bind(e->ctx, dev, &dev_id, &err), 0);
        /* The caller's fd is borrowed: closing it does not unbind. */
        close(dev);
        assert_int_equal(K(e)->device_attach(e->ctx, dev_id, BACKEND_NO_PASID, &pt, &err), 0);
        assert_int_equal(K(e)->device_unbind(e->ctx, dev_id, &err), 1);
        /* Unbinding closed the backend's copy: the device is gone from the context. */
        assert_int_equal(e->resp->n_fds, 1); /* only the iommufd is left */
        assert_non_null(inner);
        assert_int_equal(K(e)->device_attach(e->ctx, dev_id, BACKEND_NO_PASID, &pt, &err),
                         -ENOENT);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_new_fails_without_dev_iommu, setup_raw,
                                                teardown),
                cmocka_unit_test_setup_teardown(test_new_fails_without_dev_iommu_real, setup_raw,
                                                teardown),
                cmocka_unit_test_setup_teardown(test_probe_all_features, setup_raw, teardown),
                cmocka_unit_test_setup_teardown(test_probe_uses_short_size, setup_raw, teardown),
                cmocka_unit_test_setup_teardown(test_probe_old_kernel_features_off, setup_raw,
                                                teardown),
                cmocka_unit_test_setup_teardown(test_probe_6_1_kernel, setup_raw, teardown),
                cmocka_unit_test_setup_teardown(test_probe_follows_inner_features, setup_raw,
                                                teardown),
                cmocka_unit_test_setup_teardown(test_probe_not_iommufd, setup_raw, teardown),
                cmocka_unit_test_setup_teardown(test_size_rules_every_ioctl, setup_raw, teardown),
                cmocka_unit_test_setup_teardown(test_size_zero_extended_behaves_as_exact,
                                                setup_raw, teardown),
                cmocka_unit_test_setup_teardown(test_reserved_and_flags_rejected, setup_raw,
                                                teardown),
                cmocka_unit_test_setup_teardown(test_unknown_ioctls, setup_raw, teardown),
                cmocka_unit_test_setup_teardown(test_vfio_argsz_rules, setup_raw, teardown),
                cmocka_unit_test_setup_teardown(test_ops_send_exact_structures, setup_full,
                                                teardown),
                cmocka_unit_test_setup_teardown(test_device_request_fd, setup_full,
                                                teardown),
                cmocka_unit_test_setup_teardown(test_context_fd_is_the_iommufd, setup_full,
                                                teardown),
                cmocka_unit_test_setup_teardown(test_errno_sentences, setup_full, teardown),
                cmocka_unit_test_setup_teardown(test_fault_read_respond, setup_full, teardown),
                cmocka_unit_test_setup_teardown(test_fault_fd_whole_records, setup_full,
                                                teardown),
                cmocka_unit_test_setup_teardown(test_map_file_native, setup_full, teardown),
                cmocka_unit_test_setup_teardown(test_device_fd_identify, setup_raw, teardown),
                cmocka_unit_test_setup_teardown(test_device_open, setup_full, teardown),
                cmocka_unit_test_setup_teardown(test_device_bind_keeps_a_dup, setup_full,
                                                teardown),
        };

        return cmocka_run_group_tests_name("backend-kernel", tests, NULL, NULL);
}
