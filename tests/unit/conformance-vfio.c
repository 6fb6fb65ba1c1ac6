/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Conformance factories for backend-vfio:
 *
 *   "vfio-responder"  backend-vfio whose syscalls the VFIO responder answers as the type1
 *                     kernel would, over the conformance topology materialized as a sysfs
 *                     tree, so every test runs through the real container, group and
 *                     type1 ABI structures;
 *   "vfio"            backend-vfio on this host's /dev/vfio, with a device bound to
 *                     vfio-pci (IOMMUD_TEST_VFIO_DEVICE=<BDF>, else the first one the
 *                     driver lists), and two devices of one group on vfio-pci for the
 *                     group roles where the host has them.  Skipped, with the reason,
 *                     without a device.
 *
 * What type1 cannot do (HWPT objects, nesting, PASID, fault queues, IOMMU_OPTION) the
 * backend does not offer, and the tests about it skip with that reason.
 */

#include <dirent.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "backend-vfio.h"
#include "conformance.h"
#include "macros.h"
#include "simtopo-builder.h"
#include "vfio-responder.h"

/* ---- through the responder ---- */

typedef struct ResponderData {
        SimTopology *topo;
        const char *names[_CONF_ROLE_MAX];
        char root[64];
        VfioResponder *responder;
} ResponderData;

static void responder_data_free(ResponderData *d) {
        if (!d)
                return;
        vfio_responder_free(d->responder);
        if (d->root[0])
                (void)simtopo_remove(d->root);
        tb_free(d->topo);
        free(d);
}

static int responder_setup(ConfEnv *env) {
        BackendVfioConfig cfg = BACKEND_VFIO_CONFIG_INIT;
        ResponderData *d = calloc(1, sizeof(*d));
        char sys[96], dev[96];
        int r;

        if (!d)
                return -ENOMEM;
        d->topo = conformance_topology(d->names);
        strcpy(d->root, "/tmp/iommud-conf-vfio-XXXXXX");
        if (!mkdtemp(d->root)) {
                d->root[0] = '\0';
                responder_data_free(d);
                return -errno;
        }
        r = simtopo_materialize(d->topo, d->root, NULL);
        if (r >= 0)
                r = vfio_responder_new(&d->responder, d->topo, d->root);
        if (r < 0) {
                responder_data_free(d);
                return r;
        }
        snprintf(sys, sizeof(sys), "%s/sys", d->root);
        snprintf(dev, sizeof(dev), "%s/dev", d->root);
        cfg.sysfs_root = sys;
        cfg.dev_root = dev;
        cfg.syscalls = &vfio_responder_syscalls;
        cfg.userdata = d->responder;
        r = backend_vfio_new(&env->backend, &cfg, NULL);
        if (r < 0) {
                responder_data_free(d);
                return r;
        }
        env->page_size = 0x1000;
        env->base = UINT64_C(0x40000000);
        env->plain_resv = (IovaRange){ CONF_MSI_START, CONF_MSI_LAST };
        env->auto_align_max = BACKEND_VFIO_AUTO_ALIGN_MAX;
        env->userdata = d;
        return 0;
}

static void responder_teardown(ConfEnv *env) {
        ResponderData *d = env->userdata;
        size_t fds, containers, mmaps = backend_vfio_mappings(env->backend);
        uint64_t mapped;

        backend_free(env->backend);
        env->backend = NULL;
        /* backend-vfio must have closed, unmapped and let go of everything it made. */
        fds = vfio_responder_open_fds(d->responder);
        containers = vfio_responder_n_containers(d->responder);
        mapped = vfio_responder_mapped_bytes(d->responder);
        responder_data_free(d);
        if (fds != 0 || containers != 0 || mapped != 0 || mmaps != 0)
                fail_msg("backend-vfio left %zu fds open, %zu containers, 0x%" PRIx64
                         " bytes mapped and %zu memory fd mmaps",
                         fds, containers, mapped, mmaps);
}

static int responder_open_device(ConfEnv *env, ConfRole role, int *ret_fd) {
        ResponderData *d = env->userdata;

        if (!d->names[role])
                return -EOPNOTSUPP;
        return env->backend->ops->device_open(env->backend, d->names[role], ret_fd, NULL);
}

/*
 * type1 sees no device write (every pinned page reads dirty): a write by the device in the
 * role only has to reach memory through its group's container, page by page.
 */
static int responder_device_write(ConfEnv *env, ConfRole role, BackendContext *c,
                                  uint32_t hwpt_id, uint64_t iova, uint64_t length) {
        ResponderData *d = env->userdata;
        uint64_t vaddr;

        for (size_t i = 0; d->names[role] && i < d->topo->n_devices; i++) {
                const SimDevice *dev = &d->topo->devices[i];
                unsigned group = d->topo->groups[dev->group_index].id;

                if (!streq(dev->name, d->names[role]))
                        continue;
                for (uint64_t off = 0; off < length; off += env->page_size)
                        if (!vfio_responder_dma_reaches(d->responder, group, iova + off, &vaddr))
                                return -EFAULT;
                return 0;
        }
        return -ENODEV;
}

const ConfFactory conformance_vfio_responder_factory = {
        .name = "vfio-responder",
        .setup = responder_setup,
        .teardown = responder_teardown,
        .open_device = responder_open_device,
        .device_write = responder_device_write,
};

/* ---- on this host ---- */

typedef struct RealData {
        char device[64];
        char group_a[64], group_b[64]; /* two vfio-pci devices of one group, if there are */
} RealData;

/* Says why the factory does not run here: once in a comment, and to each case. */
static int real_skip(ConfEnv *env, const char *reason) {
        static bool said = false;

        if (!said) {
                printf("# vfio: skipped: %s\n", reason);
                fflush(stdout);
                said = true;
        }
        snprintf(env->unavailable, sizeof(env->unavailable), "%s", reason);
        return -ENODEV;
}

static int first_vfio_pci_device(char *ret, size_t size) {
        DIR *d = opendir("/sys/bus/pci/drivers/vfio-pci");
        int r = -ENOENT;

        if (!d)
                return -ENOENT;
        for (struct dirent *de; (de = readdir(d));)
                if (strchr(de->d_name, ':') && strlen(de->d_name) < size) {
                        strcpy(ret, de->d_name);
                        r = 0;
                        break;
                }
        closedir(d);
        return r;
}

static bool on_vfio_pci(const char *dir, const char *member) {
        char path[PATH_MAX], target[PATH_MAX];
        ssize_t n;

        snprintf(path, sizeof(path), "%s/%s/driver", dir, member);
        n = readlink(path, target, sizeof(target) - 1);
        if (n < 0)
                return false;
        target[n] = '\0';
        return strstr(target, "/vfio-pci") != NULL;
}

/* The first IOMMU group with two devices on vfio-pci: the GROUP_A and GROUP_B roles. */
static void find_group_pair(RealData *d) {
        DIR *groups = opendir("/sys/kernel/iommu_groups");

        for (struct dirent *g; groups && !d->group_b[0] && (g = readdir(groups));) {
                char dir[320];
                DIR *members;

                snprintf(dir, sizeof(dir), "/sys/kernel/iommu_groups/%s/devices", g->d_name);
                members = g->d_name[0] == '.' ? NULL : opendir(dir);
                d->group_a[0] = '\0';
                for (struct dirent *m; members && (m = readdir(members));) {
                        char *slot = d->group_a[0] ? d->group_b : d->group_a;

                        if (m->d_name[0] == '.' || !on_vfio_pci(dir, m->d_name) ||
                            strlen(m->d_name) >= sizeof(d->group_a))
                                continue;
                        strcpy(slot, m->d_name);
                        if (slot == d->group_b)
                                break;
                }
                if (members)
                        closedir(members);
        }
        if (groups)
                closedir(groups);
        if (!d->group_b[0])
                d->group_a[0] = '\0';
}

/* The device group's MSI window, where the plain device's reserved-region tests aim. */
static IovaRange msi_region(const char *device) {
        char path[PATH_MAX], line[128], type[32];
        unsigned long long s, l;
        IovaRange r = { 1, 0 };
        FILE *f;

        snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/iommu_group/reserved_regions",
                 device);
        f = fopen(path, "re");
        if (!f)
                return r;
        while (fgets(line, sizeof(line), f))
                if (sscanf(line, "%llx %llx %31s", &s, &l, type) == 3 && streq(type, "msi")) {
                        r = (IovaRange){ s, l };
                        break;
                }
        fclose(f);
        return r;
}

static int real_setup(ConfEnv *env) {
        BackendVfioConfig cfg = BACKEND_VFIO_CONFIG_INIT;
        const char *want = getenv("IOMMUD_TEST_VFIO_DEVICE");
        Error err = ERROR_INIT;
        RealData *d;

        if (access("/dev/vfio/vfio", F_OK) < 0)
                return real_skip(env, "this host has no /dev/vfio/vfio (no VFIO container support)");
        d = calloc(1, sizeof(*d));
        if (!d)
                return -ENOMEM;
        if (want && want[0])
                snprintf(d->device, sizeof(d->device), "%s", want);
        else if (first_vfio_pci_device(d->device, sizeof(d->device)) < 0) {
                free(d);
                return real_skip(env, "no device is bound to vfio-pci; bind one or set "
                                      "IOMMUD_TEST_VFIO_DEVICE=<BDF>");
        }
        find_group_pair(d);
        if (backend_vfio_new(&env->backend, &cfg, &err) < 0) {
                free(d);
                return real_skip(env, error_message(&err));
        }
        env->page_size = 4096;
        env->base = UINT64_C(0x40000000);
        env->plain_resv = msi_region(d->device);
        env->auto_align_max = BACKEND_VFIO_AUTO_ALIGN_MAX;
        env->userdata = d;
        /* What the skips of the roles this factory has no device for say. */
        snprintf(env->missing[CONF_DEV_PASID], sizeof(env->missing[0]),
                 "VFIO type1 attaches no PASID");
        snprintf(env->missing[CONF_DEV_GROUP_A], sizeof(env->missing[0]),
                 "no IOMMU group has two devices on vfio-pci");
        snprintf(env->missing[CONF_DEV_GROUP_B], sizeof(env->missing[0]), "%s",
                 env->missing[CONF_DEV_GROUP_A]);
        snprintf(env->missing[CONF_DEV_HOST_SIBLING], sizeof(env->missing[0]),
                 "the vfio factory moves no group member to a host driver");
        snprintf(env->missing[CONF_DEV_DIRECT], sizeof(env->missing[0]),
                 "the vfio factory looks for no group with a firmware 'direct' region");
        return 0;
}

static void real_teardown(ConfEnv *env) {
        backend_free(env->backend);
        env->backend = NULL;
        free(env->userdata);
}

static int real_open_device(ConfEnv *env, ConfRole role, int *ret_fd) {
        RealData *d = env->userdata;
        const char *name = role == CONF_DEV_PLAIN     ? d->device :
                           role == CONF_DEV_GROUP_A   ? d->group_a :
                           role == CONF_DEV_GROUP_B   ? d->group_b :
                                                        "";

        if (!name[0])
                return -EOPNOTSUPP;
        return env->backend->ops->device_open(env->backend, name, ret_fd, NULL);
}

const ConfFactory conformance_vfio_real_factory = {
        .name = "vfio",
        .setup = real_setup,
        .teardown = real_teardown,
        .open_device = real_open_device,
};
