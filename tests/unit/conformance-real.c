/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * The "kernel" conformance factory: backend-kernel on this host's /dev/iommu.  Skipped, with
 * the reason, without /dev/iommu or a VFIO device cdev.  Every role the host can give is found
 * in sysfs; the kernel-vm guest (tests/kernel-vm) has each but one:
 *
 *   plain         IOMMUD_TEST_VFIO_DEVICE=<BDF>, else the first VFIO device alone in its
 *                 group; its group's MSI window is the reserved region the cases collide with;
 *   group-a/-b    the first two VFIO devices of a group whose other members are not on a
 *                 host driver (the guest's PCIe-to-PCI bridge group);
 *   host-sibling  group-b, while group-a is moved to pci-pf-stub (a host driver VFIO does not
 *                 count as DMA-safe) and back after the case;
 *   direct        a VFIO device whose group has a "direct" reserved region: none under QEMU,
 *                 which emulates no RMRR or IVMD;
 *   pasid         the kernel's mock IOMMU device (CONFIG_IOMMUFD_TEST) through iommufd-mock.c:
 *                 dirty tracking, nesting and page requests, no PASID on 6.12.
 */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <linux/capability.h>

#include "backend-kernel.h"
#include "conformance.h"
#include "edu.h"
#include "iommufd-abi.h"
#include "iommufd-mock.h"
#include "iommufd-test-abi.h"
#include "macros.h"

#define BDF_MAX 64

typedef struct RealFactoryData {
        char names[_CONF_ROLE_MAX][BDF_MAX]; /* BDF per role; "" when there is none */
        char sibling[BDF_MAX];               /* moved to a host driver for host-sibling */
        bool sibling_moved;
        IommufdMock *mock;                   /* the pasid role, when the kernel has it */
        struct rlimit memlock;               /* RLIMIT_MEMLOCK and CAP_IPC_LOCK as found */
        bool ipc_lock;
} RealFactoryData;

/* Says why the real-kernel factory does not run here: once in a comment, and to each case. */
static int real_skip(ConfEnv *env, const char *reason) {
        static bool said = false;

        if (!said) {
                printf("# kernel: skipped: %s\n", reason);
                fflush(stdout);
                said = true;
        }
        snprintf(env->unavailable, sizeof(env->unavailable), "%s", reason);
        return -ENODEV;
}

/* ---- sysfs ---- */

/* Copies a sysfs name into a BDF_MAX buffer; one too long for it (no BDF is) copies nothing. */
static bool name_set(char *dst, const char *src) {
        size_t n = strlen(src);

        dst[0] = '\0';
        if (n >= BDF_MAX)
                return false;
        memcpy(dst, src, n + 1);
        return true;
}

static int read_text(const char *path, char *buf, size_t size) {
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
        ssize_t n;

        if (fd < 0)
                return negative_errno();
        n = read(fd, buf, size - 1);
        if (n < 0)
                return negative_errno();
        buf[n] = '\0';
        return 0;
}

/* A hex attribute of a PCI device ("vendor", "device"). */
static int pci_hex(const char *bdf, const char *attr, unsigned *ret) {
        char path[PATH_MAX], buf[32];
        int r;

        snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/%s", bdf, attr);
        r = read_text(path, buf, sizeof(buf));
        if (r < 0)
                return r;
        *ret = (unsigned)strtoul(buf, NULL, 16);
        return 0;
}

static int write_text(const char *path, const char *text) {
        _cleanup_close_ int fd = open(path, O_WRONLY | O_CLOEXEC);
        size_t n = strlen(text);

        if (fd < 0)
                return negative_errno();
        return write(fd, text, n) == (ssize_t)n ? 0 : -EIO;
}

/* The last component of a sysfs link of a PCI device ("driver", "iommu_group"), or "". */
static void pci_link(const char *bdf, const char *link, char *ret, size_t size) {
        char path[PATH_MAX], target[PATH_MAX], *base;
        ssize_t n;

        snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/%s", bdf, link);
        n = readlink(path, target, sizeof(target) - 1);
        ret[0] = '\0';
        if (n < 0)
                return;
        target[n] = '\0';
        base = strrchr(target, '/') ? strrchr(target, '/') + 1 : target;
        if (strlen(base) < size)
                memcpy(ret, base, strlen(base) + 1);
}

static bool on_vfio(const char *bdf) {
        char drv[64];

        pci_link(bdf, "driver", drv, sizeof(drv));
        return streq(drv, "vfio-pci");
}

/* The members of an IOMMU group, sorted; returns how many (at most max). */
static size_t group_members(const char *group, char (*ret)[BDF_MAX], size_t max) {
        char path[PATH_MAX];
        struct dirent **list = NULL;
        size_t n = 0;
        int k;

        snprintf(path, sizeof(path), "/sys/kernel/iommu_groups/%s/devices", group);
        k = scandir(path, &list, NULL, alphasort);
        for (int i = 0; i < k; i++) {
                if (list[i]->d_name[0] != '.' && n < max && name_set(ret[n], list[i]->d_name))
                        n++;
                free(list[i]);
        }
        free(list);
        return n;
}

/* The first reserved region of the group of that type ("msi", "direct"); false if none. */
static bool group_region(const char *group, const char *type, IovaRange *ret) {
        char path[PATH_MAX], buf[2048], *save = NULL;

        snprintf(path, sizeof(path), "/sys/kernel/iommu_groups/%s/reserved_regions", group);
        if (read_text(path, buf, sizeof(buf)) < 0)
                return false;
        for (char *l = strtok_r(buf, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
                unsigned long long start, last;
                char t[32];

                if (sscanf(l, "%llx %llx %31s", &start, &last, t) == 3 && streq(t, type)) {
                        *ret = (IovaRange){ start, last };
                        return true;
                }
        }
        return false;
}

/* ---- the roles ---- */

/* Visits every IOMMU group with its members; stops when visit returns true. */
static void for_each_group(bool (*visit)(const char *group, char (*m)[BDF_MAX], size_t n,
                                         void *userdata),
                           void *userdata) {
        struct dirent **list = NULL;
        int k = scandir("/sys/kernel/iommu_groups", &list, NULL, alphasort);
        bool done = false;

        for (int i = 0; i < k; i++) {
                char members[16][BDF_MAX];

                if (!done && list[i]->d_name[0] != '.')
                        done = visit(list[i]->d_name, members,
                                     group_members(list[i]->d_name, members, 16), userdata);
                free(list[i]);
        }
        free(list);
}

static bool find_plain(const char *group, char (*m)[BDF_MAX], size_t n, void *userdata) {
        RealFactoryData *d = userdata;

        if (n != 1 || !on_vfio(m[0]))
                return false;
        return name_set(d->names[CONF_DEV_PLAIN], m[0]);
}

/* A group of two VFIO devices, the rest on no driver (bridges, functions nobody claimed). */
static bool find_group(const char *group, char (*m)[BDF_MAX], size_t n, void *userdata) {
        RealFactoryData *d = userdata;
        size_t n_vfio = 0;

        for (size_t i = 0; i < n; i++) {
                char drv[64];

                pci_link(m[i], "driver", drv, sizeof(drv));
                if (streq(drv, "vfio-pci") && n_vfio < 2)
                        n_vfio += name_set(d->names[CONF_DEV_GROUP_A + n_vfio], m[i]);
                else if (drv[0])
                        return false;
        }
        if (n_vfio == 2)
                return true;
        d->names[CONF_DEV_GROUP_A][0] = d->names[CONF_DEV_GROUP_B][0] = '\0';
        return false;
}

static bool find_direct(const char *group, char (*m)[BDF_MAX], size_t n, void *userdata) {
        RealFactoryData *d = userdata;
        IovaRange r;

        if (!group_region(group, "direct", &r))
                return false;
        for (size_t i = 0; i < n; i++)
                if (on_vfio(m[i]))
                        return name_set(d->names[CONF_DEV_DIRECT], m[i]);
        return false;
}

/* Fills the roles and says why each one missing is missing. */
static void real_find_roles(ConfEnv *env, RealFactoryData *d) {
        const char *want = getenv("IOMMUD_TEST_VFIO_DEVICE");
        char group[32];

        if (want && want[0])
                (void)name_set(d->names[CONF_DEV_PLAIN], want);
        else
                for_each_group(find_plain, d);
        for_each_group(find_group, d);
        for_each_group(find_direct, d);

        env->plain_resv = (IovaRange){ .start = 1, .last = 0 };
        pci_link(d->names[CONF_DEV_PLAIN], "iommu_group", group, sizeof(group));
        if (group[0])
                (void)group_region(group, "msi", &env->plain_resv);

        snprintf(env->missing[CONF_DEV_PLAIN], sizeof(env->missing[0]),
                 "no VFIO device alone in its IOMMU group");
        snprintf(env->missing[CONF_DEV_GROUP_A], sizeof(env->missing[0]),
                 "no IOMMU group has two devices on vfio-pci and no other on a host driver");
        snprintf(env->missing[CONF_DEV_GROUP_B], sizeof(env->missing[0]), "%s",
                 env->missing[CONF_DEV_GROUP_A]);
        if (!d->names[CONF_DEV_GROUP_A][0])
                snprintf(env->missing[CONF_DEV_HOST_SIBLING], sizeof(env->missing[0]),
                         "no group of two VFIO devices to move one of them to a host driver");
        else if (access("/sys/bus/pci/drivers/pci-pf-stub", F_OK) < 0)
                snprintf(env->missing[CONF_DEV_HOST_SIBLING], sizeof(env->missing[0]),
                         "the kernel has no pci-pf-stub to put a group member on a host driver");
        else {
                (void)name_set(d->names[CONF_DEV_HOST_SIBLING], d->names[CONF_DEV_GROUP_B]);
                (void)name_set(d->sibling, d->names[CONF_DEV_GROUP_A]);
        }
        snprintf(env->missing[CONF_DEV_DIRECT], sizeof(env->missing[0]),
                 "no group has a firmware 'direct' reserved region (QEMU emulates no RMRR or "
                 "IVMD)");
}

/* Moves a PCI device to another driver by driver_override, as a management tool does. */
static int set_driver(const char *bdf, const char *driver) {
        char path[PATH_MAX], drv[64];

        pci_link(bdf, "driver", drv, sizeof(drv));
        if (streq(drv, driver))
                return 0;
        if (drv[0]) {
                snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/driver/unbind", bdf);
                if (write_text(path, bdf) < 0)
                        return -EIO;
        }
        snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/driver_override", bdf);
        if (write_text(path, driver) < 0 || write_text("/sys/bus/pci/drivers_probe", bdf) < 0)
                return -EIO;
        pci_link(bdf, "driver", drv, sizeof(drv));
        return streq(drv, driver) ? 0 : -ENODEV;
}

/* ---- the factory ---- */

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

static void real_say_once(ConfEnv *env) {
        static bool said;

        if (said)
                return;
        said = true;
        printf("# kernel: automatic IOVAs are aligned up to 0x%" PRIx64 " (%s)\n",
               env->auto_align_max,
               env->auto_align_max > env->page_size ? "transparent huge pages" :
                                                      "no transparent huge pages");
        for (ConfRole r = 0; r < _CONF_ROLE_MAX; r++) {
                RealFactoryData *d = env->userdata;

                if (d->names[r][0])
                        printf("# kernel: role %d is %s\n", (int)r, d->names[r]);
                else
                        printf("# kernel: role %d: none: %s\n", (int)r, env->missing[r]);
        }
        fflush(stdout);
}

/* The pasid role: the kernel's mock device, when it has one; backend-kernel then goes through
 * the mock's seam, which passes every other call through to the kernel. */
static void real_setup_mock(ConfEnv *env, RealFactoryData *d, BackendKernelConfig *cfg) {
        int r = iommufd_mock_new(&d->mock, "/dev/iommu");

        if (r == -ENOTTY) {
                snprintf(env->missing[CONF_DEV_PASID], sizeof(env->missing[0]),
                         "the kernel has no mock IOMMU (CONFIG_IOMMUFD_TEST)");
                return;
        }
        if (r == -ENODEV) {
                snprintf(env->missing[CONF_DEV_PASID], sizeof(env->missing[0]),
                         "the mock IOMMU cannot probe its device next to a real IOMMU (6.12 "
                         "uses the first IOMMU's ops); a boot without one runs it");
                return;
        }
        if (r < 0) {
                snprintf(env->missing[CONF_DEV_PASID], sizeof(env->missing[0]),
                         "the mock IOMMU does not answer: %s", strerror(-r));
                return;
        }
        (void)name_set(d->names[CONF_DEV_PASID], "iommufd-mock");
        cfg->syscalls = &iommufd_mock_syscalls;
        cfg->userdata = d->mock;
        env->nested_data_type = IOMMUD_HWPT_DATA_SELFTEST;
        env->nested_data_len = sizeof(struct iommud_hwpt_selftest);
        /* 6.12 reports faults only through nested HWPTs (iommufd_hwpt_paging_alloc). */
        env->faults_need_nesting = true;
}

/* ---- locked memory ---- */

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
static int real_locked_bytes(ConfEnv *env _unused_, uint64_t *ret) {
        FILE *f = fopen("/proc/self/status", "re");
        unsigned long long kb;
        char line[256];
        int r = -ENOENT;

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

static int real_setup(ConfEnv *env) {
        BackendKernelConfig cfg = BACKEND_KERNEL_CONFIG_INIT;
        Error err = ERROR_INIT;
        RealFactoryData *d;
        int r;

        if (access("/dev/iommu", F_OK) < 0)
                return real_skip(env, "this host has no /dev/iommu "
                                      "(no iommufd in the running kernel)");
        if (access("/dev/iommu", R_OK | W_OK) < 0)
                return real_skip(env, "/dev/iommu exists but is not readable and writeable here");

        d = calloc(1, sizeof(*d));
        if (!d)
                return -ENOMEM;
        real_find_roles(env, d);
        /* What is known without a topology: 4K pages, a low IOVA free on common IOMMUs. */
        env->page_size = 4096;
        env->base = UINT64_C(0x40000000);
        env->auto_align_max = auto_align_max(env->page_size);
        env->nested_data_type = BACKEND_HWPT_DATA_NONE;
        env->nested_data_len = 0;
        real_setup_mock(env, d, &cfg);
        if (!d->names[CONF_DEV_PLAIN][0] && !d->names[CONF_DEV_PASID][0]) {
                iommufd_mock_free(d->mock);
                free(d);
                return real_skip(env, "no VFIO device alone in its group and no mock IOMMU; "
                                      "bind a device to vfio-pci or set "
                                      "IOMMUD_TEST_VFIO_DEVICE=<BDF>");
        }

        r = backend_kernel_new(&env->backend, &cfg, &err);
        if (r < 0) {
                iommufd_mock_free(d->mock);
                free(d);
                return real_skip(env, error_message(&err));
        }
        (void)getrlimit(RLIMIT_MEMLOCK, &d->memlock);
        (void)real_cap_ipc_lock(false, false, &d->ipc_lock);
        env->userdata = d;
        real_say_once(env);
        return 0;
}

static void real_teardown(ConfEnv *env) {
        RealFactoryData *d = env->userdata;

        backend_free(env->backend);
        env->backend = NULL;
        /* A case may have lowered them: the next one starts from what this one found. */
        (void)real_cap_ipc_lock(true, d->ipc_lock, NULL);
        (void)setrlimit(RLIMIT_MEMLOCK, &d->memlock);
        /* The case's fds are closed by now: the sibling may go back to vfio-pci. */
        if (d->sibling_moved && set_driver(d->sibling, "vfio-pci") < 0) {
                printf("# kernel: cannot move %s back to vfio-pci\n", d->sibling);
                fflush(stdout);
        }
        iommufd_mock_free(d->mock);
        free(d);
}

static int real_open_device(ConfEnv *env, ConfRole role, int *ret_fd) {
        RealFactoryData *d = env->userdata;

        if (!d->names[role][0])
                return -EOPNOTSUPP;
        if (role == CONF_DEV_PASID)
                return iommufd_mock_open(d->mock, ret_fd);
        if (role == CONF_DEV_HOST_SIBLING && !d->sibling_moved) {
                int r = set_driver(d->sibling, "pci-pf-stub");

                d->sibling_moved = true; /* also half-done: teardown puts it back */
                if (r < 0)
                        return r;
        }
        return env->backend->ops->device_open(env->backend, d->names[role], ret_fd, NULL);
}

static int real_inject(ConfEnv *env, ConfRole role, uint32_t pasid, uint64_t addr, uint32_t perm,
                       bool last_page, uint32_t grpid) {
        RealFactoryData *d = env->userdata;

        if (role != CONF_DEV_PASID || !d->mock)
                return -EOPNOTSUPP;
        /* The kernel's IOMMU_NO_PASID is 0. */
        return iommufd_mock_inject(d->mock, pasid == BACKEND_NO_PASID ? 0 : pasid, addr, perm,
                                   last_page, grpid);
}

static int real_device_write(ConfEnv *env, ConfRole role, BackendContext *c, uint32_t hwpt_id,
                             uint64_t iova, uint64_t length) {
        RealFactoryData *d = env->userdata;

        if (role != CONF_DEV_PASID || !d->mock)
                return -EOPNOTSUPP;
        return iommufd_mock_dirty(d->mock, hwpt_id, iova, length);
}

static int real_ioctl(ConfEnv *env, BackendContext *c, unsigned long request, void *arg) {
        return ioctl(env->backend->ops->context_fd(c), request, arg) < 0 ? -errno : 0;
}

static int real_file_attach(ConfEnv *env, int fd, uint32_t pt_id) {
        struct iommud_vfio_device_attach_iommufd_pt a = { .argsz = sizeof(a), .pt_id = pt_id };

        return ioctl(fd, IOMMUD_VFIO_DEVICE_ATTACH_IOMMUFD_PT, &a) < 0 ? -errno : 0;
}

/* QEMU's edu (the kernel-vm guest's plain device) copies memory through its DMA buffer. */
static int real_dma_copy(ConfEnv *env, int fd, uint64_t src_iova, uint64_t dst_iova,
                         size_t len) {
        RealFactoryData *d = env->userdata;
        struct vfio_region_info bar0 = {};
        volatile uint8_t *bar;
        unsigned vendor = 0, device = 0;
        int r;

        if (pci_hex(d->names[CONF_DEV_PLAIN], "vendor", &vendor) < 0 ||
            pci_hex(d->names[CONF_DEV_PLAIN], "device", &device) < 0 || vendor != EDU_VENDOR ||
            device != EDU_DEVICE)
                return -EOPNOTSUPP;
        r = vfio_region_info(fd, VFIO_PCI_BAR0_REGION_INDEX, &bar0);
        if (r < 0)
                return r;
        bar = mmap(NULL, bar0.size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)bar0.offset);
        if (bar == MAP_FAILED)
                return -errno;
        r = vfio_enable_bus_master(fd);
        if (r >= 0)
                r = edu_dma(bar, src_iova, EDU_BUFFER, len, false);
        if (r >= 0)
                r = edu_dma(bar, EDU_BUFFER, dst_iova, len, true);
        (void)munmap((void *)bar, bar0.size);
        return r;
}

const ConfFactory conformance_kernel_real_factory = {
        .name = "kernel",
        .setup = real_setup,
        .teardown = real_teardown,
        .open_device = real_open_device,
        .inject_fault = real_inject,
        .device_write = real_device_write,
        .inject_unrouted_unknown = true,
        .set_memlock = real_set_memlock,
        .locked_bytes = real_locked_bytes,
        .ioctl = real_ioctl,
        .file_attach = real_file_attach,
        .dma_copy = real_dma_copy,
};
