/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * What is particular to backend-sim: device identification through a
 * materialized root, the test hooks (fault injection, statistics, mapped
 * bytes, lookup, privilege), features.  The iommufd behaviours themselves are
 * in the conformance suite.
 */

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "backend-names.h"
#include "backend-sim.h"
#include "macros.h"
#include "simtopo-builder.h"

static SimTopology *topo_small(void) {
        SimTopology *t = tb_new("small");
        size_t m, g;

        m = tb_iommu(t, &(SimIommu){ .name = (char *)"dmar0", .kind = (char *)"intel",
                                     .hw_info_type = 1, .aperture_last = (UINT64_C(1) << 39) - 1,
                                     .page_sizes = 0x1000 | 0x200000, .pasid_bits = 20,
                                     .fault_queue = true });
        g = tb_group(t, 7, m);
        tb_region(t, g, 0xfee00000, 0xfeefffff, REGION_MSI);
        tb_region(t, g, 0xc0000000, 0xc00fffff, REGION_DIRECT_RELAXABLE);
        tb_device(t, g, "0000:65:00.0", "vfio-pci", 0x010802, 3, 20);
        g = tb_group(t, 8, m);
        tb_device(t, g, "0000:66:00.0", NULL, 0x010802, -1, 0);
        return t;
}

/* A root laid out like simtopo_materialize()'s: regular files as vfio nodes. */
static void make_root(char *dir, size_t len) {
        char path[PATH_MAX];
        int fd;

        snprintf(dir, len, "/tmp/iommud-sim-XXXXXX");
        assert_non_null(mkdtemp(dir));
        snprintf(path, sizeof(path), "%s/dev", dir);
        assert_int_equal(mkdir(path, 0755), 0);
        snprintf(path, sizeof(path), "%s/dev/vfio", dir);
        assert_int_equal(mkdir(path, 0755), 0);
        snprintf(path, sizeof(path), "%s/dev/vfio/devices", dir);
        assert_int_equal(mkdir(path, 0755), 0);
        snprintf(path, sizeof(path), "%s/dev/vfio/devices/vfio3", dir);
        fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
        assert_true(fd >= 0);
        close(fd);
}

static void remove_root(const char *dir) {
        char path[PATH_MAX];

        snprintf(path, sizeof(path), "%s/dev/vfio/devices/vfio3", dir);
        unlink(path);
        snprintf(path, sizeof(path), "%s/dev/vfio/devices", dir);
        rmdir(path);
        snprintf(path, sizeof(path), "%s/dev/vfio", dir);
        rmdir(path);
        snprintf(path, sizeof(path), "%s/dev", dir);
        rmdir(path);
        rmdir(dir);
}

/* What device_node_of_file() says of the file fd is: the device's name, or NULL. */
static const char *node_of_fd(Backend *b, int fd) {
        struct stat st;

        assert_int_equal(fstat(fd, &st), 0);
        return b->ops->device_node_of_file(b, &st);
}

/* The file at path, opened, is the node of device name, by its fd and by its fstat(). */
static void assert_node_names(Backend *b, const char *path, const char *name) {
        char *got = NULL;
        int fd = open(path, O_RDWR | O_CLOEXEC);

        assert_true(fd >= 0);
        assert_int_equal(b->ops->device_fd_identify(b, fd, &got, NULL), 0);
        assert_string_equal(got, name);
        assert_string_equal(node_of_fd(b, fd), name);
        free(got);
        close(fd);
}

/*
 * A regular file is a node only when it is one of the root's nodes: a memfd (another file
 * system) and a file beside the nodes are refused alike, and a node made after the backend
 * (hot-plug) is found.
 */
static void test_identify_regular_files(Backend *b, const char *dir) {
        char path[PATH_MAX], node[PATH_MAX], *name = NULL;
        Error e = ERROR_INIT;
        int fd;

        fd = memfd_create("guest-ram", MFD_CLOEXEC);
        assert_true(fd >= 0);
        assert_int_equal(b->ops->device_fd_identify(b, fd, &name, &e), -ENODEV);
        assert_non_null(strstr(e.message, "regular file, not a VFIO device node"));
        assert_null(node_of_fd(b, fd));
        close(fd);

        snprintf(path, sizeof(path), "%s/dev/vfio/devices/stray", dir);
        fd = open(path, O_CREAT | O_RDWR | O_CLOEXEC, 0600);
        assert_true(fd >= 0);
        assert_int_equal(b->ops->device_fd_identify(b, fd, &name, &e), -ENODEV);
        assert_non_null(strstr(e.message, "regular file, not a VFIO device node"));
        assert_null(node_of_fd(b, fd));
        close(fd);

        /* The node replaced by that file, as removing and re-adding the device does. */
        snprintf(node, sizeof(node), "%s/dev/vfio/devices/vfio3", dir);
        assert_int_equal(rename(path, node), 0);
        assert_node_names(b, node, "0000:65:00.0");
}

static void test_identify_through_root(void **state) {
        SimTopology *t = topo_small();
        _cleanup_(backend_freep) Backend *b = NULL;
        BackendContext *c = NULL;
        char dir[64], path[PATH_MAX], *name = NULL;
        int fd, pipefd[2], sv[2], dfd, pfd, other;
        uint32_t id;
        Error e = ERROR_INIT;

        make_root(dir, sizeof(dir));
        assert_int_equal(backend_sim_new(&b, t, dir, NULL), 0);
        tb_free(t);

        /* The node itself, and device_open(), name the device. */
        snprintf(path, sizeof(path), "%s/dev/vfio/devices/vfio3", dir);
        assert_node_names(b, path, "0000:65:00.0");
        assert_int_equal(b->ops->device_open(b, "0000:65:00.0", &fd, NULL), 0);
        assert_int_equal(b->ops->device_fd_identify(b, fd, &name, NULL), 0);
        free(name);
        assert_int_equal(b->ops->device_open(b, "0000:66:00.0", &other, &e), -ENODEV);
        assert_int_equal(b->ops->device_open(b, "0000:99:00.0", &other, NULL), -ENODEV);

        /* Everything else is refused with a reason. */
        assert_int_equal(pipe2(pipefd, O_CLOEXEC), 0);
        assert_int_equal(b->ops->device_fd_identify(b, pipefd[0], &name, &e), -ENODEV);
        assert_non_null(strstr(e.message, "pipe"));
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        assert_int_equal(b->ops->device_fd_identify(b, sv[0], &name, &e), -ENODEV);
        assert_non_null(strstr(e.message, "socket"));
        dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        assert_int_equal(b->ops->device_fd_identify(b, dfd, &name, NULL), -ENODEV);
        pfd = open(path, O_PATH | O_CLOEXEC);
        assert_int_equal(b->ops->device_fd_identify(b, pfd, &name, NULL), -EBADF);
        other = open("/dev/null", O_RDWR | O_CLOEXEC);
        assert_int_equal(b->ops->device_fd_identify(b, other, &name, NULL), -ENODEV);
        assert_int_equal(b->ops->device_fd_identify(b, 9999, &name, NULL), -EBADF);

        /* Binding goes by identity too. */
        assert_int_equal(b->ops->context_new(b, &c, NULL), 0);
        assert_int_equal(b->ops->device_bind(c, pipefd[0], &id, NULL), -ENODEV);
        assert_int_equal(b->ops->device_bind(c, fd, &id, NULL), 0);
        backend_context_free(c);
        test_identify_regular_files(b, dir);

        close(fd);
        close(pipefd[0]);
        close(pipefd[1]);
        close(sv[0]);
        close(sv[1]);
        close(dfd);
        close(pfd);
        close(other);
        remove_root(dir);
}

static void test_features_and_hw_info(void **state) {
        SimTopology *t = topo_small();
        _cleanup_(backend_freep) Backend *b = NULL;
        BackendContext *c = NULL;
        const char *names[16];
        uint32_t dev;
        HwInfo info;
        int fd, mem;

        assert_int_equal(backend_sim_new(&b, t, NULL, NULL), 0);
        tb_free(t);
        assert_true(backend_is_sim(b));
        assert_string_equal(b->ops->name, "sim");
        assert_true(backend_has_feature(b, BACKEND_FEATURE_IOAS));
        assert_true(backend_has_feature(b, BACKEND_FEATURE_FAULT_QUEUE));
        assert_true(backend_has_feature(b, BACKEND_FEATURE_PASID));
        assert_true(backend_has_feature(b, BACKEND_FEATURE_MAP_FILE));
        assert_false(backend_has_feature(b, BACKEND_FEATURE_VIOMMU));
        assert_true(backend_features_to_strv(b->features, names, ELEMENTSOF(names)) >= 8);

        assert_int_equal(b->ops->context_new(b, &c, NULL), 0);
        assert_int_equal(b->ops->device_open(b, "0000:65:00.0", &fd, NULL), 0);
        /* Without a root a node is a memfd: known by its identity, not by its file system. */
        assert_string_equal(node_of_fd(b, fd), "0000:65:00.0");
        mem = memfd_create("guest-ram", MFD_CLOEXEC);
        assert_true(mem >= 0);
        assert_null(node_of_fd(b, mem));
        close(mem);
        assert_int_equal(b->ops->device_bind(c, fd, &dev, NULL), 0);
        assert_int_equal(b->ops->hw_info(c, dev, &info, NULL), 0);
        assert_int_equal(info.type, 1);
        assert_int_equal(info.max_pasid_log2, 20);
        assert_int_equal(b->ops->hw_info(c, dev + 1, &info, NULL), -ENOENT);
        backend_context_free(c);
        close(fd);
}

/* One table names the hardware capabilities for both transports and the topology files. */
static void test_hw_cap_names(void **state) {
        const char *names[4];
        uint64_t bit = 0;

        assert_string_equal(backend_hw_cap_to_string(BACKEND_HW_CAP_DIRTY_TRACKING),
                            "dirty-tracking");
        assert_null(backend_hw_cap_to_string(0));
        assert_null(backend_hw_cap_to_string(BACKEND_HW_CAP_PCI_PASID_EXEC |
                                             BACKEND_HW_CAP_PCI_PASID_PRIV));
        assert_int_equal(backend_hw_cap_from_string("pasid-priv", &bit), 0);
        assert_int_equal(bit, BACKEND_HW_CAP_PCI_PASID_PRIV);
        assert_int_equal(backend_hw_cap_from_string("pasid_priv", &bit), -EINVAL);

        /* In bit order, NULL-terminated; unnamed bits are left out. */
        assert_int_equal(backend_hw_caps_to_strv(BACKEND_HW_CAP_PCI_PASID_PRIV |
                                                 BACKEND_HW_CAP_DIRTY_TRACKING | (1u << 30),
                                                 names, ELEMENTSOF(names)),
                         2);
        assert_string_equal(names[0], "dirty-tracking");
        assert_string_equal(names[1], "pasid-priv");
        assert_null(names[2]);
        assert_int_equal(backend_hw_caps_to_strv(UINT64_MAX, names, ELEMENTSOF(names)), 3);
        for (int i = 0; i < 3; i++)
                assert_int_equal(backend_hw_cap_from_string(names[i], &bit), 0);
        assert_int_equal(backend_hw_caps_to_strv(UINT64_MAX, names, 3), -ENOBUFS);
        assert_int_equal(backend_hw_caps_to_strv(0, names, 1), 0);
        assert_null(names[0]);
}

static void test_relaxable_region_not_reserved(void **state) {
        SimTopology *t = topo_small();
        _cleanup_(backend_freep) Backend *b = NULL;
        BackendContext *c = NULL;
        IovaRange r[8];
        size_t n = ELEMENTSOF(r);
        uint32_t dev, ioas, pt;
        uint64_t align;
        int fd;

        assert_int_equal(backend_sim_new(&b, t, NULL, NULL), 0);
        tb_free(t);
        assert_int_equal(b->ops->context_new(b, &c, NULL), 0);
        assert_int_equal(b->ops->device_open(b, "0000:65:00.0", &fd, NULL), 0);
        assert_int_equal(b->ops->device_bind(c, fd, &dev, NULL), 0);
        assert_int_equal(b->ops->ioas_alloc(c, &ioas, NULL), 0);
        pt = ioas;
        assert_int_equal(b->ops->device_attach(c, dev, BACKEND_NO_PASID, &pt, NULL), 0);
        /* Aperture top and MSI are reserved; the direct-relaxable region is not. */
        assert_int_equal(b->ops->ioas_iova_ranges(c, ioas, r, &n, &align, NULL), 0);
        assert_int_equal(n, 2);
        assert_int_equal(r[0].start, 0);
        assert_int_equal(r[0].last, 0xfedfffff);
        assert_int_equal(r[1].start, 0xfef00000);
        assert_int_equal(r[1].last, (UINT64_C(1) << 39) - 1);
        assert_int_equal(align, 0x1000);
        backend_context_free(c);
        close(fd);
}

static void test_hooks(void **state) {
        SimTopology *t = topo_small();
        _cleanup_(backend_freep) Backend *b = NULL;
        BackendContext *c = NULL, *c2 = NULL;
        BackendSimStats st;
        uint32_t ioas, fq, dev;
        uint64_t iova = 0x100000, v = 1, unmapped = 0;
        void *hole;
        IovaRange a;
        size_t n;
        int ffd, fd;

        assert_int_equal(backend_sim_new(&b, t, NULL, NULL), 0);
        tb_free(t);
        assert_int_equal(b->ops->context_new(b, &c, NULL), 0);
        assert_int_equal(b->ops->ioas_alloc(c, &ioas, NULL), 0);
        /* Memory nobody maps: mapping it is lazy, pinning it (with a domain) is EFAULT. */
        hole = mmap(NULL, 0x4000, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        assert_true(hole != MAP_FAILED);
        assert_int_equal(munmap(hole, 0x4000), 0);
        assert_int_equal(b->ops->ioas_map_va(c, ioas, BACKEND_MAP_FIXED_IOVA | BACKEND_MAP_READABLE,
                                             (uint64_t)(uintptr_t)hole, 0x4000, &iova, NULL), 0);
        assert_int_equal(backend_sim_context_mapped_bytes(c), 0x4000);
        assert_int_equal(backend_sim_ioas_n_areas(c, ioas, &n), 0);
        assert_int_equal(n, 1);
        assert_int_equal(backend_sim_ioas_lookup(c, ioas, 0x103fff, &a), 0);
        assert_int_equal(a.start, 0x100000);
        assert_int_equal(a.last, 0x103fff);
        assert_int_equal(backend_sim_ioas_lookup(c, ioas, 0x104000, &a), -ENOENT);
        /* A read-only source cannot be copied writeable. */
        iova = 0x200000;
        assert_int_equal(b->ops->ioas_copy(c, ioas, ioas,
                                           BACKEND_MAP_FIXED_IOVA | BACKEND_MAP_WRITEABLE,
                                           0x100000, 0x1000, &iova, NULL), -EPERM);

        /* Faults: unknown device, unbound device. */
        assert_int_equal(backend_sim_inject_fault(b, "0000:99:00.0", BACKEND_NO_PASID, 0, 1, true,
                                                  0, NULL), -ENODEV);
        assert_int_equal(backend_sim_inject_fault(b, "0000:65:00.0", BACKEND_NO_PASID, 0, 1, true,
                                                  0, NULL), -ENOENT);
        backend_sim_get_stats(b, &st);
        assert_int_equal(st.faults_injected, 0);

        /* Context free answers pending faults and frees everything (ASan checks the rest). */
        assert_int_equal(b->ops->fault_queue_alloc(c, &fq, &ffd, NULL), 0);
        assert_int_equal(b->ops->device_open(b, "0000:65:00.0", &fd, NULL), 0);
        assert_int_equal(b->ops->device_bind(c, fd, &dev, NULL), 0);
        {
                HwptAllocArgs h = { .flags = BACKEND_HWPT_FAULT_ID_VALID, .dev_id = dev,
                                    .pt_id = ioas, .fault_id = fq };
                uint32_t hw, pt;

                assert_int_equal(b->ops->hwpt_alloc(c, &h, &hw, NULL), -EFAULT);
                assert_int_equal(b->ops->ioas_unmap(c, ioas, 0, UINT64_MAX, &unmapped, NULL), 0);
                assert_int_equal(unmapped, 0x4000);
                assert_int_equal(b->ops->hwpt_alloc(c, &h, &hw, NULL), 0);
                pt = hw;
                assert_int_equal(b->ops->device_attach(c, dev, BACKEND_NO_PASID, &pt, NULL), 0);
        }
        assert_int_equal(backend_sim_inject_fault(b, "0000:65:00.0", BACKEND_NO_PASID, 0x1000,
                                                  FAULT_PERM_READ, true, 3, NULL), 0);
        backend_sim_get_stats(b, &st);
        assert_int_equal(st.faults_injected, 1);
        assert_int_equal(st.auto_invalid, 0);
        /* As with the kernel, a file bound to the context keeps it, and everything in it. */
        backend_context_free(c);
        backend_sim_get_stats(b, &st);
        assert_int_equal(st.contexts, 1);
        assert_int_equal(st.auto_invalid, 0);
        /* Its last close ends the binding, and the closed context with it. */
        fd = safe_close(fd);
        backend_sim_get_stats(b, &st);
        assert_int_equal(st.contexts, 0);
        assert_int_equal(st.objects, 0);
        assert_int_equal(st.auto_invalid, 1);

        /* RLIMIT_MODE needs CAP_SYS_RESOURCE. */
        backend_sim_set_privileged(b, false);
        assert_int_equal(b->ops->context_new(b, &c2, NULL), 0);
        assert_int_equal(b->ops->option(c2, BACKEND_OPTION_RLIMIT_MODE, BACKEND_OPTION_OP_SET, 0,
                                        &v, NULL), -EPERM);
        assert_int_equal(b->ops->option(c2, BACKEND_OPTION_RLIMIT_MODE, BACKEND_OPTION_OP_SET, 1,
                                        &v, NULL), -EOPNOTSUPP);
        /* The device is free again once the first context is gone. */
        assert_int_equal(b->ops->device_open(b, "0000:65:00.0", &fd, NULL), 0);
        assert_int_equal(b->ops->device_bind(c2, fd, &dev, NULL), 0);
        backend_context_free(c2);
        close(fd);
}

/* A context's iommufd: a memfd stands for it, one per context, closed with the context. */
static void test_context_fd(void **state) {
        SimTopology *t = topo_small();
        _cleanup_(backend_freep) Backend *b = NULL;
        BackendContext *c1 = NULL, *c2 = NULL;
        Error err = ERROR_INIT;
        char link[64], target[PATH_MAX] = "";
        struct stat st;
        int fd;

        assert_int_equal(backend_sim_new(&b, t, NULL, &err), 0);
        tb_free(t);
        assert_int_equal(b->ops->context_new(b, &c1, NULL), 0);
        assert_int_equal(b->ops->context_new(b, &c2, NULL), 0);
        fd = b->ops->context_fd(c1);
        assert_true(fd >= 0);
        assert_int_equal(b->ops->context_fd(c1), fd);
        assert_int_not_equal(b->ops->context_fd(c2), fd);
        snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
        assert_true(readlink(link, target, sizeof(target) - 1) > 0);
        assert_string_equal(target, "/memfd:" SIM_IOMMUFD_NAME " (deleted)");
        assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
        backend_context_free(c1);
        assert_int_equal(fstat(fd, &st), -1);
        assert_int_equal(errno, EBADF);
        backend_context_free(c2);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_identify_through_root),
                cmocka_unit_test(test_features_and_hw_info),
                cmocka_unit_test(test_hw_cap_names),
                cmocka_unit_test(test_relaxable_region_not_reserved),
                cmocka_unit_test(test_hooks),
                cmocka_unit_test(test_context_fd),
        };

        return cmocka_run_group_tests_name("backend-sim", tests, NULL, NULL);
}
