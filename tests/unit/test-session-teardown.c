/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * The session core's teardown (session-teardown.c) on the simulated backend and on
 * backend-kernel through the kernel responder over it.  The kernel-vm guest runs the same
 * cases on the real kernel (guest-session).
 */

#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "backend-kernel.h"
#include "backend-sim.h"
#include "iommufd-abi.h"
#include "kernel-responder.h"
#include "session-state.h"
#include "session-teardown.h"
#include "sim-host.h"
#include "simtopo.h"

typedef struct HostData {
        char root[64];
        Backend *inner;          /* the responder's model */
        KernelResponder *responder;
} HostData;

/* ---- the simulated backend ---- */

static int sim_setup(TeardownEnv *e, const char *policy_text) {
        HostData *d = calloc(1, sizeof(*d));

        assert_non_null(d);
        sim_host_setup(&e->host, d->root, sizeof(d->root), "server", policy_text);
        e->userdata = d;
        return session_teardown_pick_device(e);
}

static void sim_teardown(TeardownEnv *e) {
        HostData *d = e->userdata;

        sim_host_teardown(&e->host, d->root);
        free(d);
}

static int sim_bound_file(TeardownEnv *e, Session *s, uint32_t device_id) {
        int fd = backend_sim_context_device_fd(session_get_context(s), device_id);

        assert_true(fd >= 0);
        fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        assert_true(fd >= 0);
        return fd;
}

static int sim_file_attach(TeardownEnv *e, int fd, uint32_t pt_id) {
        BackendContext *ctx;
        uint32_t dev;
        int r;

        r = backend_sim_file_binding(e->host.backend, fd, &ctx, &dev);
        if (r < 0)
                return -EINVAL; /* the kernel's answer on a file that is not bound */
        return e->host.backend->ops->device_attach(ctx, dev, BACKEND_NO_PASID, &pt_id, NULL);
}

static const TeardownHost sim_host = {
        .name = "sim",
        .setup = sim_setup,
        .teardown = sim_teardown,
        .bound_file = sim_bound_file,
        .file_attach = sim_file_attach,
};

/* ---- backend-kernel through the responder ---- */

static int responder_setup(TeardownEnv *e, const char *policy_text) {
        _cleanup_(simtopo_freep) SimTopology *st = NULL;
        BackendKernelConfig cfg = BACKEND_KERNEL_CONFIG_INIT;
        HostData *d = calloc(1, sizeof(*d));
        char sys[128], dev[128];

        assert_non_null(d);
        snprintf(d->root, sizeof(d->root), "/tmp/iommud-test-host-XXXXXX");
        assert_non_null(mkdtemp(d->root));
        assert_int_equal(rmdir(d->root), 0);
        assert_int_equal(simtopo_load(&st, "server", NULL), 0);
        assert_int_equal(simtopo_materialize(st, d->root, NULL), 0);
        snprintf(sys, sizeof(sys), "%s/sys", d->root);
        snprintf(dev, sizeof(dev), "%s/dev", d->root);
        assert_int_equal(topology_load_path(&e->host.topology, sys, NULL), 0);
        assert_int_equal(backend_sim_new(&d->inner, st, d->root, NULL), 0);
        assert_int_equal(kernel_responder_new(&d->responder, d->inner, dev), 0);
        cfg.sysfs_root = sys;
        cfg.dev_root = dev;
        cfg.syscalls = &kernel_responder_syscalls;
        cfg.userdata = d->responder;
        assert_int_equal(backend_kernel_new(&e->host.backend, &cfg, NULL), 0);
        assert_int_equal(policy_load_string(&e->host.policy, "test.json", policy_text,
                                            strlen(policy_text), NULL, NULL),
                         0);
        e->userdata = d;
        return session_teardown_pick_device(e);
}

static void responder_teardown(TeardownEnv *e) {
        HostData *d = e->userdata;

        backend_free(e->host.backend);
        kernel_responder_free(d->responder);
        backend_free(d->inner);
        topology_free(e->host.topology);
        policy_free(e->host.policy);
        simtopo_remove(d->root);
        free(d);
}

static int responder_bound_file(TeardownEnv *e, Session *s, uint32_t device_id) {
        int fd = backend_kernel_context_device_fd(session_get_context(s), device_id);

        assert_true(fd >= 0);
        fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        assert_true(fd >= 0);
        return fd;
}

static int responder_file_attach(TeardownEnv *e, int fd, uint32_t pt_id) {
        HostData *d = e->userdata;
        struct iommud_vfio_device_attach_iommufd_pt a = { .argsz = sizeof(a), .pt_id = pt_id };

        return kernel_responder_ioctl(d->responder, fd, IOMMUD_VFIO_DEVICE_ATTACH_IOMMUFD_PT, &a);
}

static const TeardownHost responder_host = {
        .name = "kernel-responder",
        .setup = responder_setup,
        .teardown = responder_teardown,
        .bound_file = responder_bound_file,
        .file_attach = responder_file_attach,
};

int main(void) {
        static const TeardownHost *const hosts[] = { &sim_host, &responder_host };

        return session_teardown_run(hosts, ELEMENTSOF(hosts));
}
