/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Guest test: real DMA through a real IOMMU, driven through the legacy VFIO API — a
 * container with the type1 IOMMU and the device's group file — as on a stock kernel
 * without iommufd.
 *
 * For every QEMU "edu" device (1234:11e8) bound to vfio-pci: open a container and the
 * group, set the container and the type1 v2 IOMMU, read the usable IOVA ranges from
 * VFIO_IOMMU_GET_INFO, get the device fd from the group, map a memfd at a fixed IOVA, let
 * edu copy a pattern through it and back, then unmap and check that the same DMA no longer
 * reaches memory.  The ABI is the daemon's own vfio-abi.h, so this checks its layouts
 * against the running kernel too.  Prints unnumbered TAP lines; the kernel-vm init numbers
 * them.
 *
 *   guest-type1 [BDF...]      default: every edu bound to vfio-pci
 */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "edu.h"
#include "guest-util.h"
#include "macros.h"
#include "vfio-abi.h"

/* edu masks DMA addresses to 28 bits: the IOVA must sit below 256 MiB. */
#define TEST_IOVA 0x200000ull
#define PAGE 4096
#define MEMSIZE (2 * PAGE)
#define MSI_WINDOW 0xfee00000ull

static int xioctl(int fd, unsigned long req, void *arg) {
        int r = ioctl(fd, req, arg);

        return r < 0 ? -errno : r;
}

/* The last component of a device's sysfs link (its iommu_group). */
static int link_base(const char *bdf, const char *attr, char *ret, size_t size) {
        char path[PATH_MAX], target[PATH_MAX];
        const char *base;
        ssize_t n;

        snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/%s", bdf, attr);
        n = readlink(path, target, sizeof(target) - 1);
        if (n < 0)
                return -errno;
        target[n] = '\0';
        base = strrchr(target, '/') ? strrchr(target, '/') + 1 : target;
        if (strlen(base) >= size)
                return -ENAMETOOLONG;
        memcpy(ret, base, strlen(base) + 1);
        return 0;
}

static bool is_bound_edu(const char *bdf) {
        unsigned device = 0;

        return pci_sysfs_hex(bdf, "device", &device) >= 0 && device == EDU_DEVICE &&
               pci_driver_is(bdf, "vfio-pci");
}

typedef struct Type1 {
        const char *bdf;
        int container, group, dev;
        uint8_t *mem;
        volatile uint8_t *bar;
        size_t bar_size;
} Type1;

static void type1_done(Type1 *t) {
        if (t->bar != MAP_FAILED)
                munmap((void *)t->bar, t->bar_size);
        if (t->mem != MAP_FAILED)
                munmap(t->mem, MEMSIZE);
        safe_close(t->dev);
        safe_close(t->group);
        safe_close(t->container);
}

/* Container and group: the steps any VFIO user takes before it can map. */
static int setup_container(Type1 *t) {
        struct iommud_vfio_group_status st = { .argsz = sizeof(st) };
        char group[16], path[64];
        int r;

        r = step(link_base(t->bdf, "iommu_group", group, sizeof(group)), t->bdf,
                 "is in an IOMMU group");
        if (r < 0)
                return r;
        t->container = open("/dev/vfio/vfio", O_RDWR | O_CLOEXEC);
        r = step(t->container < 0 ? -errno : 0, t->bdf, "open /dev/vfio/vfio");
        if (r < 0)
                return r;
        tap(xioctl(t->container, IOMMUD_VFIO_GET_API_VERSION, NULL) == IOMMUD_VFIO_API_VERSION,
            "%s: VFIO API version %d", t->bdf, IOMMUD_VFIO_API_VERSION);
        tap(xioctl(t->container, IOMMUD_VFIO_CHECK_EXTENSION,
                   (void *)(uintptr_t)IOMMUD_VFIO_TYPE1v2_IOMMU) > 0,
            "%s: the container offers type1 v2", t->bdf);
        snprintf(path, sizeof(path), "/dev/vfio/%s", group);
        t->group = open(path, O_RDWR | O_CLOEXEC);
        r = step(t->group < 0 ? -errno : 0, t->bdf, "open the group file");
        if (r < 0)
                return r;
        printf("# %s: group %s\n", t->bdf, path);
        r = step(xioctl(t->group, IOMMUD_VFIO_GROUP_GET_STATUS, &st), t->bdf,
                 "VFIO_GROUP_GET_STATUS");
        if (r < 0)
                return r;
        tap(st.flags & IOMMUD_VFIO_GROUP_FLAGS_VIABLE, "%s: the group is viable", t->bdf);
        r = step(xioctl(t->group, IOMMUD_VFIO_GROUP_SET_CONTAINER, &t->container), t->bdf,
                 "VFIO_GROUP_SET_CONTAINER");
        if (r < 0)
                return r;
        return step(xioctl(t->container, IOMMUD_VFIO_SET_IOMMU,
                           (void *)(uintptr_t)IOMMUD_VFIO_TYPE1v2_IOMMU),
                    t->bdf, "VFIO_SET_IOMMU type1 v2");
}

/* GET_INFO: page sizes and the IOVA ranges (the complement of the reserved regions). */
static int check_info(Type1 *t) {
        union {
                struct iommud_vfio_iommu_type1_info info;
                uint8_t raw[4096];
        } u = { .info.argsz = sizeof(u) };
        bool covered = false, msi_hole = true;
        size_t off;
        int r;

        r = step(xioctl(t->container, IOMMUD_VFIO_IOMMU_GET_INFO, &u), t->bdf,
                 "VFIO_IOMMU_GET_INFO");
        if (r < 0)
                return r;
        printf("# %s: iova_pgsizes %#" PRIx64 ", flags %#x\n", t->bdf,
               (uint64_t)u.info.iova_pgsizes, u.info.flags);
        for (off = u.info.cap_offset; off != 0 && off < sizeof(u);) {
                struct iommud_vfio_info_cap_header h;
                struct iommud_vfio_iommu_type1_info_cap_iova_range c;

                memcpy(&h, u.raw + off, sizeof(h));
                printf("# %s: capability %u version %u at %zu\n", t->bdf, h.id, h.version, off);
                if (h.id == IOMMUD_VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE) {
                        memcpy(&c, u.raw + off, sizeof(c));
                        for (uint32_t i = 0; i < c.nr_iovas; i++) {
                                struct iommud_vfio_iova_range x;

                                memcpy(&x, u.raw + off + sizeof(c) + i * sizeof(x), sizeof(x));
                                printf("#   0x%016" PRIx64 " - 0x%016" PRIx64 "\n",
                                       (uint64_t)x.start, (uint64_t)x.end);
                                covered |= x.start <= TEST_IOVA && TEST_IOVA + MEMSIZE - 1 <= x.end;
                                msi_hole &= !(x.start <= MSI_WINDOW && MSI_WINDOW <= x.end);
                        }
                }
                off = h.next;
        }
        tap(covered, "%s: IOVA %#llx is inside a usable range", t->bdf, TEST_IOVA);
        tap(msi_hole, "%s: the MSI window %#llx is not usable IOVA", t->bdf, MSI_WINDOW);
        return 0;
}

static int map(Type1 *t, uint64_t iova) {
        struct iommud_vfio_iommu_type1_dma_map m = {
                .argsz = sizeof(m),
                .flags = IOMMUD_VFIO_DMA_MAP_FLAG_READ | IOMMUD_VFIO_DMA_MAP_FLAG_WRITE,
                .vaddr = (uintptr_t)t->mem,
                .iova = iova,
                .size = MEMSIZE,
        };

        return xioctl(t->container, IOMMUD_VFIO_IOMMU_MAP_DMA, &m);
}

static int map_memory(Type1 *t) {
        struct iommud_vfio_iommu_type1_dma_unmap u = {
                .argsz = sizeof(u), .iova = TEST_IOVA, .size = PAGE };
        _cleanup_close_ int mfd = memfd_create("iommud-guest-type1", MFD_CLOEXEC);
        int r;

        if (mfd < 0 || ftruncate(mfd, MEMSIZE) < 0)
                return step(-errno, t->bdf, "memfd");
        t->mem = mmap(NULL, MEMSIZE, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
        if (t->mem == MAP_FAILED)
                return step(-errno, t->bdf, "mmap the memfd");
        r = step(map(t, TEST_IOVA), t->bdf, "VFIO_IOMMU_MAP_DMA of a memfd at a fixed IOVA");
        if (r < 0)
                return r;
        tap(map(t, MSI_WINDOW) == -EINVAL, "%s: MAP_DMA into the MSI window is refused (EINVAL)",
            t->bdf);
        tap(map(t, TEST_IOVA) == -EEXIST, "%s: MAP_DMA over the mapping is refused (EEXIST)",
            t->bdf);
        /* v2 unmaps whole mappings only, and says so before it removes anything. */
        tap(xioctl(t->container, IOMMUD_VFIO_IOMMU_UNMAP_DMA, &u) == -EINVAL,
            "%s: UNMAP_DMA of half the mapping is refused (EINVAL)", t->bdf);
        return 0;
}

static int open_device(Type1 *t) {
        struct vfio_region_info bar0 = {};
        uint32_t ident;
        int r;

        t->dev = xioctl(t->group, IOMMUD_VFIO_GROUP_GET_DEVICE_FD, (void *)t->bdf);
        r = step(t->dev < 0 ? t->dev : 0, t->bdf, "VFIO_GROUP_GET_DEVICE_FD");
        if (r < 0)
                return r;
        r = step(vfio_region_info(t->dev, VFIO_PCI_BAR0_REGION_INDEX, &bar0), t->bdf,
                 "BAR0 region info");
        if (r < 0)
                return r;
        t->bar = mmap(NULL, bar0.size, PROT_READ | PROT_WRITE, MAP_SHARED, t->dev,
                      (off_t)bar0.offset);
        r = step(t->bar == MAP_FAILED ? -errno : 0, t->bdf, "mmap BAR0");
        if (r < 0)
                return r;
        t->bar_size = bar0.size;
        ident = *edu_reg32(t->bar, EDU_REG_IDENT);
        tap((ident & 0xff) == 0xed, "%s: edu identification register reads %#x", t->bdf, ident);
        return step(vfio_enable_bus_master(t->dev), t->bdf, "enable bus mastering");
}

static int dma_round_trip(Type1 *t) {
        struct iommud_vfio_iommu_type1_dma_unmap u = {
                .argsz = sizeof(u), .iova = TEST_IOVA, .size = MEMSIZE };
        uint8_t *src = t->mem, *dst = t->mem + PAGE;
        bool untouched = true;
        int r;

        for (size_t i = 0; i < PAGE; i++)
                src[i] = (uint8_t)(i * 7 + 3);
        memset(dst, 0x5a, PAGE);
        r = step(edu_dma(t->bar, TEST_IOVA, EDU_BUFFER, EDU_DMA_LEN, false), t->bdf,
                 "DMA memfd -> edu completes");
        if (r >= 0)
                r = step(edu_dma(t->bar, EDU_BUFFER, TEST_IOVA + PAGE, EDU_DMA_LEN, true), t->bdf,
                         "DMA edu -> memfd completes");
        if (r < 0)
                return r;
        tap(memcmp(src, dst, EDU_DMA_LEN) == 0,
            "%s: %d bytes made the round trip through the type1 container", t->bdf, EDU_DMA_LEN);
        r = step(xioctl(t->container, IOMMUD_VFIO_IOMMU_UNMAP_DMA, &u), t->bdf,
                 "VFIO_IOMMU_UNMAP_DMA");
        if (r < 0)
                return r;
        tap(u.size == MEMSIZE, "%s: unmap reports %llu bytes", t->bdf, (unsigned long long)u.size);
        memset(dst, 0xa5, PAGE);
        r = step(edu_dma(t->bar, EDU_BUFFER, TEST_IOVA + PAGE, EDU_DMA_LEN, true), t->bdf,
                 "DMA edu -> unmapped IOVA completes on the device side");
        if (r < 0)
                return r;
        for (size_t i = 0; i < PAGE; i++)
                untouched = untouched && dst[i] == 0xa5;
        tap(untouched, "%s: DMA to the unmapped IOVA did not reach memory", t->bdf);
        return 0;
}

static void test_device(const char *bdf) {
        Type1 t = { .bdf = bdf, .container = -EBADF, .group = -EBADF, .dev = -EBADF,
                    .mem = MAP_FAILED, .bar = MAP_FAILED };

        if (setup_container(&t) >= 0 && check_info(&t) >= 0 && map_memory(&t) >= 0 &&
            open_device(&t) >= 0)
                (void)dma_round_trip(&t);
        type1_done(&t);
}

int main(int argc, char **argv) {
        unsigned n_devices = 0;
        DIR *d;

        for (int i = 1; i < argc; i++, n_devices++)
                test_device(argv[i]);
        if (argc <= 1) {
                d = opendir("/sys/bus/pci/devices");
                if (!d) {
                        printf("not ok - /sys/bus/pci/devices: %s\n", strerror(errno));
                        return EXIT_FAILURE;
                }
                for (struct dirent *de; (de = readdir(d));)
                        if (de->d_name[0] != '.' && is_bound_edu(de->d_name)) {
                                test_device(de->d_name);
                                n_devices++;
                        }
                closedir(d);
        }
        if (n_devices == 0) {
                printf("ok - no edu device bound to vfio-pci # SKIP nothing to test\n");
                return 77;
        }
        return tap_failed > 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
