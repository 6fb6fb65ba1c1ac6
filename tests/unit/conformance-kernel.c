/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Conformance factories for backend-kernel:
 *
 *   "kernel-responder"  backend-kernel whose syscalls are answered by the
 *                       kernel responder over the simulated backend, so every
 *                       conformance test also runs through the real ABI
 *                       structures, size rules and errno mapping;
 *   "kernel-responder-mmap"  the same as a kernel without IOMMU_IOAS_MAP_FILE:
 *                       memory fds take the mmap + IOMMU_IOAS_MAP fallback.
 *
 * The "kernel" factory, on this host's /dev/iommu, is in conformance-real.c.
 */

#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "backend-kernel.h"
#include "conformance.h"
#include "iommufd-abi.h"
#include "kernel-responder.h"
#include "macros.h"

/* ---- backend-kernel through the responder over the sim ---- */

typedef struct ResponderFactoryData {
        ConfEnv sim_env;          /* the sim factory's own environment */
        KernelResponder *responder;
        char sysfs[64];           /* an empty sysfs tree: class/vfio-dev only */
} ResponderFactoryData;

static void responder_data_free(ResponderFactoryData *d) {
        char path[128];

        if (!d)
                return;
        kernel_responder_free(d->responder);
        if (d->sim_env.backend)
                conformance_sim_factory.teardown(&d->sim_env);
        if (d->sysfs[0]) {
                snprintf(path, sizeof(path), "%s/class/vfio-dev", d->sysfs);
                (void)rmdir(path);
                snprintf(path, sizeof(path), "%s/class", d->sysfs);
                (void)rmdir(path);
                (void)rmdir(d->sysfs);
        }
        free(d);
}

static int responder_setup_full(ConfEnv *env, bool map_file) {
        BackendKernelConfig cfg = BACKEND_KERNEL_CONFIG_INIT;
        ResponderFactoryData *d = calloc(1, sizeof(*d));
        char path[128];
        Backend *sim;
        int r;

        if (!d)
                return -ENOMEM;
        d->sim_env.factory = &conformance_sim_factory;
        r = conformance_sim_factory.setup(&d->sim_env);
        if (r < 0) {
                d->sim_env.backend = NULL;
                responder_data_free(d);
                return r;
        }
        sim = d->sim_env.backend;

        /* VFIO cdev support is read from sysfs: give it what the model has. */
        strcpy(d->sysfs, "/tmp/iommud-conf-sysfs-XXXXXX");
        if (!mkdtemp(d->sysfs)) {
                d->sysfs[0] = '\0';
                responder_data_free(d);
                return -errno;
        }
        if (backend_has_feature(sim, BACKEND_FEATURE_VFIO_CDEV)) {
                snprintf(path, sizeof(path), "%s/class", d->sysfs);
                (void)mkdir(path, 0755);
                snprintf(path, sizeof(path), "%s/class/vfio-dev", d->sysfs);
                (void)mkdir(path, 0755);
        }

        r = kernel_responder_new(&d->responder, sim, "/dev");
        if (r < 0) {
                responder_data_free(d);
                return r;
        }
        if (!map_file)
                kernel_responder_disable(d->responder, IOMMUD_IOMMUFD_CMD_IOAS_MAP_FILE);
        cfg.sysfs_root = d->sysfs;
        cfg.dev_root = "/dev";
        cfg.syscalls = &kernel_responder_syscalls;
        cfg.userdata = d->responder;
        r = backend_kernel_new(&env->backend, &cfg, NULL);
        if (r < 0) {
                responder_data_free(d);
                return r;
        }
        /*
         * Features the size probe infers from a same-release ioctl (PASID,
         * nesting) may differ from the model's: trust the model for those.
         */
        env->backend->features &= sim->features;

        env->page_size = d->sim_env.page_size;
        env->base = d->sim_env.base;
        env->plain_resv = d->sim_env.plain_resv;
        env->auto_align_max = d->sim_env.auto_align_max;
        env->nested_data_type = d->sim_env.nested_data_type;
        env->nested_data_len = d->sim_env.nested_data_len;
        env->userdata = d;
        return 0;
}

static void responder_teardown(ConfEnv *env);

static int responder_setup(ConfEnv *env) {
        return responder_setup_full(env, true);
}

/* As an older kernel: memory fds go through backend-kernel's mmap + IOMMU_IOAS_MAP fallback. */
static int responder_setup_mmap(ConfEnv *env) {
        int r = responder_setup_full(env, false);

        if (r >= 0 && backend_has_feature(env->backend, BACKEND_FEATURE_MAP_FILE)) {
                responder_teardown(env);
                return -EIO;
        }
        return r;
}

static void responder_teardown(ConfEnv *env) {
        ResponderFactoryData *d = env->userdata;
        size_t n_fds, mapped;

        backend_free(env->backend);
        env->backend = NULL;
        /* backend-kernel must have closed and unmapped everything it opened. */
        n_fds = d->responder->n_fds;
        mapped = d->responder->mapped_bytes;
        responder_data_free(d);
        if (n_fds != 0 || mapped != 0)
                fail_msg("backend-kernel left %zu fds open and %zu bytes mapped", n_fds, mapped);
}

static int responder_open_device(ConfEnv *env, ConfRole role, int *ret_fd) {
        ResponderFactoryData *d = env->userdata;
        return conformance_sim_factory.open_device(&d->sim_env, role, ret_fd);
}

static int responder_inject(ConfEnv *env, ConfRole role, uint32_t pasid, uint64_t addr,
                            uint32_t perm, bool last_page, uint32_t grpid) {
        ResponderFactoryData *d = env->userdata;

        if (!conformance_sim_factory.inject_fault)
                return -EOPNOTSUPP;
        return conformance_sim_factory.inject_fault(&d->sim_env, role, pasid, addr, perm,
                                                    last_page, grpid);
}

/* The model's device writes; hwpt_id names the same page table in the model. */
static int responder_device_write(ConfEnv *env, ConfRole role, BackendContext *c,
                                  uint32_t hwpt_id, uint64_t iova, uint64_t length) {
        ResponderFactoryData *d = env->userdata;

        return conformance_sim_factory.device_write(&d->sim_env, role, c, hwpt_id, iova, length);
}

static int responder_auto_invalid(ConfEnv *env, uint64_t *ret) {
        ResponderFactoryData *d = env->userdata;

        if (!conformance_sim_factory.auto_invalid_count)
                return -EOPNOTSUPP;
        return conformance_sim_factory.auto_invalid_count(&d->sim_env, ret);
}

/* The model pins and charges what the responder maps for backend-kernel. */
static int responder_set_memlock(ConfEnv *env, bool cap_ipc_lock, uint64_t limit) {
        ResponderFactoryData *d = env->userdata;

        return conformance_sim_factory.set_memlock(&d->sim_env, cap_ipc_lock, limit);
}

static int responder_locked_bytes(ConfEnv *env, uint64_t *ret) {
        ResponderFactoryData *d = env->userdata;

        return conformance_sim_factory.locked_bytes(&d->sim_env, ret);
}

static int responder_ioctl(ConfEnv *env, BackendContext *c, unsigned long request, void *arg) {
        ResponderFactoryData *d = env->userdata;

        return kernel_responder_ioctl(d->responder, env->backend->ops->context_fd(c), request,
                                      arg);
}

static int responder_file_attach(ConfEnv *env, int fd, uint32_t pt_id) {
        ResponderFactoryData *d = env->userdata;
        struct iommud_vfio_device_attach_iommufd_pt a = { .argsz = sizeof(a), .pt_id = pt_id };

        return kernel_responder_ioctl(d->responder, fd, IOMMUD_VFIO_DEVICE_ATTACH_IOMMUFD_PT, &a);
}

/* The device behind the responder is the sim's: its DMA engine is the sim's. */
static int responder_dma_copy(ConfEnv *env, int fd, uint64_t src_iova, uint64_t dst_iova,
                              size_t len) {
        ResponderFactoryData *d = env->userdata;

        return conformance_sim_factory.dma_copy(&d->sim_env, fd, src_iova, dst_iova, len);
}

const ConfFactory conformance_kernel_responder_factory = {
        .name = "kernel-responder",
        .setup = responder_setup,
        .teardown = responder_teardown,
        .open_device = responder_open_device,
        .inject_fault = responder_inject,
        .device_write = responder_device_write,
        .auto_invalid_count = responder_auto_invalid,
        .set_memlock = responder_set_memlock,
        .locked_bytes = responder_locked_bytes,
        .ioctl = responder_ioctl,
        .file_attach = responder_file_attach,
        .dma_copy = responder_dma_copy,
};

const ConfFactory conformance_kernel_responder_mmap_factory = {
        .name = "kernel-responder-mmap",
        .setup = responder_setup_mmap,
        .teardown = responder_teardown,
        .open_device = responder_open_device,
        .inject_fault = responder_inject,
        .device_write = responder_device_write,
        .auto_invalid_count = responder_auto_invalid,
        .set_memlock = responder_set_memlock,
        .locked_bytes = responder_locked_bytes,
        .ioctl = responder_ioctl,
        .file_attach = responder_file_attach,
        .dma_copy = responder_dma_copy,
};
