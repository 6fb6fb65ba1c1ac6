/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * The conformance topology, and the factory that serves it with backend-sim: the model
 * every other backend is held to.
 */

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <unistd.h>

#include <cmocka.h>

#include "backend-sim.h"
#include "conformance.h"
#include "macros.h"
#include "simtopo-builder.h"

typedef struct SimFactoryData {
        SimTopology *topo;
        const char *names[_CONF_ROLE_MAX];
} SimFactoryData;

SimTopology *conformance_topology(const char *names[_CONF_ROLE_MAX]) {
        SimTopology *t = tb_new("conformance");
        size_t big, small, g;

        /* A PASID/nesting/dirty/fault-capable IOMMU and a plain one. */
        big = tb_iommu(t, &(SimIommu){
                .name = (char *)"dmar0", .kind = (char *)"intel", .hw_info_type = 1,
                .aperture_start = 0, .aperture_last = (UINT64_C(1) << 48) - 1,
                .page_sizes = UINT64_C(0x1000) | UINT64_C(0x200000) | UINT64_C(0x40000000),
                .pasid_bits = 20, .capabilities = BACKEND_HW_CAP_PCI_PASID_EXEC,
                .nesting = true, .dirty_tracking = true, .fault_queue = true,
        });
        small = tb_iommu(t, &(SimIommu){
                .name = (char *)"dmar1", .kind = (char *)"intel", .hw_info_type = 1,
                .aperture_start = 0, .aperture_last = (UINT64_C(1) << 39) - 1,
                .page_sizes = UINT64_C(0x1000) | UINT64_C(0x200000),
        });

        g = tb_group(t, 1, small);
        tb_region(t, g, CONF_MSI_START, CONF_MSI_LAST, REGION_MSI);
        tb_device(t, g, names[CONF_DEV_PLAIN] = "0000:01:00.0", "vfio-pci", 0x010802, 0, 0);

        g = tb_group(t, 2, big);
        tb_region(t, g, CONF_MSI_START, CONF_MSI_LAST, REGION_MSI);
        tb_device(t, g, names[CONF_DEV_PASID] = "0000:02:00.0", "vfio-pci", 0x020000, 1, 20);

        g = tb_group(t, 3, small);
        tb_region(t, g, CONF_MSI_START, CONF_MSI_LAST, REGION_MSI);
        tb_device(t, g, names[CONF_DEV_GROUP_A] = "0000:03:00.0", "vfio-pci", 0x020000, 2, 0);
        tb_device(t, g, names[CONF_DEV_GROUP_B] = "0000:03:00.1", "vfio-pci", 0x020000, 3, 0);
        tb_device(t, g, "0000:03:00.2", "pcieport", 0x060400, -1, 0); /* a bridge is harmless */

        g = tb_group(t, 4, small);
        tb_device(t, g, names[CONF_DEV_HOST_SIBLING] = "0000:04:00.0", "vfio-pci", 0x020000, 4,
                  0);
        tb_device(t, g, "0000:04:00.1", "e1000e", 0x020000, -1, 0);

        g = tb_group(t, 5, small);
        tb_region(t, g, 0xe0000000, 0xe00fffff, REGION_DIRECT);
        tb_region(t, g, CONF_MSI_START, CONF_MSI_LAST, REGION_MSI);
        tb_device(t, g, names[CONF_DEV_DIRECT] = "0000:05:00.0", "vfio-pci", 0x0c0330, 5, 0);
        return t;
}

static int sim_setup(ConfEnv *env) {
        SimFactoryData *d = calloc(1, sizeof(SimFactoryData));
        SimTopology *t;
        int r;

        if (!d)
                return -ENOMEM;
        t = d->topo = conformance_topology(d->names);
        r = backend_sim_new(&env->backend, t, NULL, NULL);
        if (r < 0) {
                tb_free(t);
                free(d);
                return r;
        }
        env->page_size = 0x1000;
        env->base = UINT64_C(0x40000000);
        env->plain_resv = (IovaRange){ CONF_MSI_START, CONF_MSI_LAST };
        env->auto_align_max = BACKEND_SIM_AUTO_ALIGN_MAX;
        env->nested_data_type = BACKEND_HWPT_DATA_VTD_S1;
        env->nested_data_len = 24;
        env->userdata = d;
        return 0;
}

static void sim_teardown(ConfEnv *env) {
        SimFactoryData *d = env->userdata;

        backend_free(env->backend);
        tb_free(d->topo);
        free(d);
}

static int sim_open_device(ConfEnv *env, ConfRole role, int *ret_fd) {
        SimFactoryData *d = env->userdata;

        if (!d->names[role])
                return -EOPNOTSUPP;
        return env->backend->ops->device_open(env->backend, d->names[role], ret_fd, NULL);
}

static int sim_inject(ConfEnv *env, ConfRole role, uint32_t pasid, uint64_t addr, uint32_t perm,
                      bool last_page, uint32_t grpid) {
        SimFactoryData *d = env->userdata;

        return backend_sim_inject_fault(env->backend, d->names[role], pasid, addr, perm, last_page,
                                        grpid, NULL);
}

static int sim_device_write(ConfEnv *env, ConfRole role, BackendContext *c, uint32_t hwpt_id,
                            uint64_t iova, uint64_t length) {
        SimFactoryData *d = env->userdata;
        _cleanup_free_ uint8_t *buf = calloc(1, length);

        if (!buf)
                return -ENOMEM;
        return backend_sim_dma(env->backend, d->names[role], BACKEND_NO_PASID, iova, buf, length,
                               true, NULL, NULL);
}

static int sim_auto_invalid(ConfEnv *env, uint64_t *ret) {
        BackendSimStats st;

        backend_sim_get_stats(env->backend, &st);
        *ret = st.auto_invalid;
        return 0;
}

static int sim_file_attach(ConfEnv *env, int fd, uint32_t pt_id) {
        BackendContext *ctx;
        uint32_t dev;

        /* The kernel's answer for a file that is not bound: EINVAL. */
        if (backend_sim_file_binding(env->backend, fd, &ctx, &dev) < 0)
                return -EINVAL;
        return env->backend->ops->device_attach(ctx, dev, BACKEND_NO_PASID, &pt_id, NULL);
}

/*
 * The plain device's DMA engine, as edu's: a read of len bytes at src_iova, then their write at
 * dst_iova, through whatever its RID is attached to now.  A refused read moves nothing.
 */
static int sim_dma_copy(ConfEnv *env, int fd, uint64_t src_iova, uint64_t dst_iova, size_t len) {
        SimFactoryData *d = env->userdata;
        _cleanup_free_ void *buf = malloc(len);
        int r;

        if (!buf)
                return -ENOMEM;
        r = backend_sim_dma(env->backend, d->names[CONF_DEV_PLAIN], BACKEND_NO_PASID, src_iova,
                            buf, len, false, NULL, NULL);
        if (r == 0)
                r = backend_sim_dma(env->backend, d->names[CONF_DEV_PLAIN], BACKEND_NO_PASID,
                                    dst_iova, buf, len, true, NULL, NULL);
        return r == -EFAULT ? 0 : r;
}

/* Each case has a backend of its own: nothing to put back at teardown. */
static int sim_set_memlock(ConfEnv *env, bool cap_ipc_lock, uint64_t limit) {
        backend_sim_set_memlock(env->backend, cap_ipc_lock, limit);
        return 0;
}

/* The model's contexts are made by this process: it is the one charged (RLIMIT_MODE 1). */
static int sim_locked_bytes(ConfEnv *env, uint64_t *ret) {
        return backend_sim_locked_bytes(env->backend, true, (uint32_t)getpid(), ret);
}

const ConfFactory conformance_sim_factory = {
        .name = "sim",
        .setup = sim_setup,
        .teardown = sim_teardown,
        .open_device = sim_open_device,
        .inject_fault = sim_inject,
        .device_write = sim_device_write,
        .auto_invalid_count = sim_auto_invalid,
        .file_attach = sim_file_attach,
        .dma_copy = sim_dma_copy,
        .set_memlock = sim_set_memlock,
        .locked_bytes = sim_locked_bytes,
};
