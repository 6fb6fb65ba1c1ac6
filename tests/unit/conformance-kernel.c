/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Conformance factories for backend-kernel:
 *
 *   "kernel-responder"  backend-kernel whose syscalls are answered by the
 *                       kernel responder over the simulated backend, so every
 *                       conformance test also runs through the real ABI
 *                       structures, size rules and errno mapping;
 *   "kernel-responder-mmap"  the same as a kernel without IOMMU_IOAS_MAP_FILE:
 *                       memory fds take the mmap + IOMMU_IOAS_MAP fallback;
 *   "kernel"            backend-kernel on this host's /dev/iommu, with a VFIO
 *                       device cdev (IOMMUD_TEST_VFIO_DEVICE=<BDF>, else the
 *                       first one sysfs lists).  Skipped, with the reason,
 *                       when there is no /dev/iommu or no VFIO device.
 */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cmocka.h>
#include <linux/capability.h>

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

const ConfFactory conformance_kernel_responder_factory = {
        .name = "kernel-responder",
        .setup = responder_setup,
        .teardown = responder_teardown,
        .open_device = responder_open_device,
        .inject_fault = responder_inject,
        .auto_invalid_count = responder_auto_invalid,
        .set_memlock = responder_set_memlock,
        .locked_bytes = responder_locked_bytes,
};

const ConfFactory conformance_kernel_responder_mmap_factory = {
        .name = "kernel-responder-mmap",
        .setup = responder_setup_mmap,
        .teardown = responder_teardown,
        .open_device = responder_open_device,
        .inject_fault = responder_inject,
        .auto_invalid_count = responder_auto_invalid,
        .set_memlock = responder_set_memlock,
        .locked_bytes = responder_locked_bytes,
};

/* ---- backend-kernel on this host ---- */

typedef struct RealFactoryData {
        char device[64];          /* BDF of the VFIO device used as the plain device */
        struct rlimit memlock;    /* RLIMIT_MEMLOCK and CAP_IPC_LOCK as setup found them */
        bool ipc_lock;
} RealFactoryData;

/*
 * Whether CAP_IPC_LOCK is in the effective set (the one capable() reads) in *ret_was; with
 * set, raises or drops it there.
 */
static int real_cap_ipc_lock(bool set, bool on, bool *ret_was) {
        struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3 };
        struct __user_cap_data_struct d[_LINUX_CAPABILITY_U32S_3] = {};
        const uint32_t bit = UINT32_C(1) << CAP_IPC_LOCK;

        if (syscall(SYS_capget, &h, d) < 0)
                return -errno;
        if (ret_was)
                *ret_was = d[0].effective & bit;
        if (!set)
                return 0;
        if (on && !(d[0].permitted & bit))
                return -EPERM;
        d[0].effective = on ? d[0].effective | bit : d[0].effective & ~bit;
        if (syscall(SYS_capset, &h, d) < 0)
                return -errno;
        return 0;
}

static int real_set_memlock(ConfEnv *env, bool cap_ipc_lock, uint64_t limit) {
        RealFactoryData *d = env->userdata;
        struct rlimit rl = {
                .rlim_cur = limit == UINT64_MAX ? RLIM_INFINITY : (rlim_t)limit,
                .rlim_max = d->memlock.rlim_max,
        };
        int r;

        if (rl.rlim_max != RLIM_INFINITY && rl.rlim_cur > rl.rlim_max)
                rl.rlim_max = rl.rlim_cur;
        r = real_cap_ipc_lock(true, cap_ipc_lock, NULL);
        if (r < 0)
                return r;
        return setrlimit(RLIMIT_MEMLOCK, &rl) < 0 ? -errno : 0;
}

/* The process's locked memory: VmLck of /proc/self/status, in kB there. */
static int real_locked_bytes(ConfEnv *env, uint64_t *ret) {
        FILE *f = fopen("/proc/self/status", "re");
        unsigned long long kb;
        char line[256];
        int r = -ENOENT;

        (void)env;
        if (!f)
                return -errno;
        while (fgets(line, sizeof(line), f))
                if (sscanf(line, "VmLck: %llu kB", &kb) == 1) {
                        *ret = (uint64_t)kb * 1024;
                        r = 0;
                        break;
                }
        fclose(f);
        return r;
}

/* Says once why the real-kernel factory does not run here. */
static int real_skip(const char *reason) {
        static bool said = false;

        if (!said) {
                printf("# kernel: skipped: %s\n", reason);
                fflush(stdout);
                said = true;
        }
        return -ENODEV;
}

/* The first VFIO device cdev sysfs lists: /sys/class/vfio-dev/vfioN/device -> .../BDF. */
static int first_vfio_device(char *ret, size_t size) {
        DIR *d = opendir("/sys/class/vfio-dev");
        int r = -ENOENT;

        if (!d)
                return -ENOENT;
        for (struct dirent *de; (de = readdir(d));) {
                char link[PATH_MAX], target[PATH_MAX], *base;
                ssize_t n;

                if (!strneq(de->d_name, "vfio", 4))
                        continue;
                snprintf(link, sizeof(link), "/sys/class/vfio-dev/%s/device", de->d_name);
                n = readlink(link, target, sizeof(target) - 1);
                if (n < 0)
                        continue;
                target[n] = '\0';
                base = strrchr(target, '/');
                base = base ? base + 1 : target;
                if (strlen(base) >= size)
                        continue;
                strcpy(ret, base);
                r = 0;
                break;
        }
        closedir(d);
        return r;
}

/*
 * iommufd caps an automatic IOVA's alignment at HPAGE_SIZE on kernels with transparent huge
 * pages and at PAGE_SIZE without (iopt_alloc_iova); sysfs shows which and the PMD size.
 */
static uint64_t auto_align_max(uint64_t page_size) {
        FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/hpage_pmd_size", "re");
        unsigned long long v = 0;

        if (!f)
                return page_size;
        if (fscanf(f, "%llu", &v) != 1 || v < page_size)
                v = page_size;
        fclose(f);
        return v;
}

static bool said_align;

static int real_setup(ConfEnv *env) {
        BackendKernelConfig cfg = BACKEND_KERNEL_CONFIG_INIT;
        RealFactoryData *d;
        const char *want = getenv("IOMMUD_TEST_VFIO_DEVICE");
        Error err = ERROR_INIT;
        int r;

        if (access("/dev/iommu", F_OK) < 0)
                return real_skip("this host has no /dev/iommu (no iommufd in the running kernel)");
        if (access("/dev/iommu", R_OK | W_OK) < 0)
                return real_skip("/dev/iommu exists but is not readable and writeable here");

        d = calloc(1, sizeof(*d));
        if (!d)
                return -ENOMEM;
        if (want && want[0])
                snprintf(d->device, sizeof(d->device), "%s", want);
        else if (first_vfio_device(d->device, sizeof(d->device)) < 0) {
                free(d);
                return real_skip("no VFIO device cdev (/sys/class/vfio-dev is empty); bind a "
                                 "device to vfio-pci or set IOMMUD_TEST_VFIO_DEVICE=<BDF>");
        }

        r = backend_kernel_new(&env->backend, &cfg, &err);
        if (r < 0) {
                free(d);
                printf("# kernel: skipped: %s\n", error_message(&err));
                return -ENODEV;
        }
        /* What is known without a topology: 4K pages, a low IOVA free on common IOMMUs. */
        env->page_size = 4096;
        env->base = UINT64_C(0x40000000);
        env->plain_resv = (IovaRange){ .start = 1, .last = 0 };
        env->auto_align_max = auto_align_max(env->page_size);
        if (!said_align) {
                printf("# kernel: automatic IOVAs are aligned up to 0x%" PRIx64 " (%s)\n",
                       env->auto_align_max,
                       env->auto_align_max > env->page_size ? "transparent huge pages" :
                                                              "no transparent huge pages");
                fflush(stdout);
                said_align = true;
        }
        env->nested_data_type = BACKEND_HWPT_DATA_NONE;
        env->nested_data_len = 0;
        (void)getrlimit(RLIMIT_MEMLOCK, &d->memlock);
        (void)real_cap_ipc_lock(false, false, &d->ipc_lock);
        env->userdata = d;
        return 0;
}

static void real_teardown(ConfEnv *env) {
        RealFactoryData *d = env->userdata;

        backend_free(env->backend);
        env->backend = NULL;
        /* A case may have lowered them: the next one starts from what this one found. */
        (void)real_cap_ipc_lock(true, d->ipc_lock, NULL);
        (void)setrlimit(RLIMIT_MEMLOCK, &d->memlock);
        free(d);
}

static int real_open_device(ConfEnv *env, ConfRole role, int *ret_fd) {
        RealFactoryData *d = env->userdata;

        /* One device cannot play group or reserved-region roles it does not have. */
        if (role != CONF_DEV_PLAIN)
                return -EOPNOTSUPP;
        return env->backend->ops->device_open(env->backend, d->device, ret_fd, NULL);
}

const ConfFactory conformance_kernel_real_factory = {
        .name = "kernel",
        .setup = real_setup,
        .teardown = real_teardown,
        .open_device = real_open_device,
        .set_memlock = real_set_memlock,
        .locked_bytes = real_locked_bytes,
};
