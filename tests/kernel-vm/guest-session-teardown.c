/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Guest test: the session core's teardown cases (tests/unit/session-teardown.c), which the
 * unit tests run on the simulated backend and through the kernel responder, here on
 * backend-kernel over the guest's real /dev/iommu, sysfs and the root-bus edu's VFIO cdev.
 * A file iommud bound is kept by another process as a VMM keeps its fd, and what stays
 * reachable through it is asked of the kernel itself (VFIO_DEVICE_ATTACH_IOMMUFD_PT).
 */

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cmocka.h>

#include "backend-kernel.h"
#include "iommufd-abi.h"
#include "session-state.h"
#include "session-teardown.h"

static int real_setup(TeardownEnv *e, const char *policy_text) {
        BackendKernelConfig cfg = BACKEND_KERNEL_CONFIG_INIT;
        const char *device = getenv("IOMMUD_TEST_VFIO_DEVICE");

        if (!device || !device[0] || access("/dev/iommu", F_OK) < 0)
                return -EOPNOTSUPP;
        assert_int_equal(topology_load_path(&e->host.topology, "/sys", NULL), 0);
        assert_int_equal(backend_kernel_new(&e->host.backend, &cfg, NULL), 0);
        assert_int_equal(policy_load_string(&e->host.policy, "test.json", policy_text,
                                            strlen(policy_text), NULL, NULL),
                         0);
        snprintf(e->device, sizeof(e->device), "%s", device);
        return 0;
}

static void real_teardown(TeardownEnv *e) {
        backend_free(e->host.backend);
        topology_free(e->host.topology);
        policy_free(e->host.policy);
}

static int real_bound_file(TeardownEnv *e, Session *s, uint32_t device_id) {
        int fd = backend_kernel_context_device_fd(session_get_context(s), device_id);

        assert_true(fd >= 0);
        fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        assert_true(fd >= 0);
        return fd;
}

static int real_file_attach(TeardownEnv *e, int fd, uint32_t pt_id) {
        struct iommud_vfio_device_attach_iommufd_pt a = { .argsz = sizeof(a), .pt_id = pt_id };

        return ioctl(fd, IOMMUD_VFIO_DEVICE_ATTACH_IOMMUFD_PT, &a) < 0 ? -errno : 0;
}

static const TeardownHost real_host = {
        .name = "kernel",
        .setup = real_setup,
        .teardown = real_teardown,
        .bound_file = real_bound_file,
        .file_attach = real_file_attach,
};

int main(void) {
        static const TeardownHost *const hosts[] = { &real_host };

        if (access("/dev/iommu", F_OK) < 0) {
                printf("1..0 # SKIP no /dev/iommu\n");
                return 77;
        }
        return session_teardown_run(hosts, ELEMENTSOF(hosts));
}
