/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Nested guest test: the edu device a VMM passed through with vfio-pci, driven from sysfs
 * by root without any driver.  Finds edu (1234:11e8), checks its identification register,
 * then lets it DMA a pattern from one RAM page into its buffer and back out into another page
 * and compares byte for byte.  The nested guest has no IOMMU, so edu's DMA addresses are
 * guest-physical: /proc/self/pagemap gives them for two locked pages.  Below it, the VMM
 * mapped guest RAM into an iommufd IOAS at IOVA = guest-physical address, and the outer
 * guest's IOMMU translates that for the real (emulated) device.
 *
 * It is the nested guest's whole initramfs: as pid 1 it mounts what it reads, prints its TAP
 * lines on the second serial port (ttyS1, which carries nothing else) and the console, ends
 * with the kernel-vm completion marker and reboots, which ends a VMM run with -no-reboot.
 * Under nested emulation every byte of initramfs costs time (~12 s per MB unpacked under
 * load), so there is no shell.  Run by hand, it prints to stdout and just exits.
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
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "edu.h"
#include "guest-util.h"
#include "macros.h"

#define EDU_IDENT 0x010000edu
#define PAGE 4096u
/* Set in bit 63 of a pagemap entry when the page is present; bits 0-54 hold its frame. */
#define PAGEMAP_PRESENT (1ull << 63)
#define PAGEMAP_PFN_MASK ((1ull << 55) - 1)
#define MARKER "IOMMUD-KVM-DONE"

static int find_edu(char *ret, size_t size) {
        struct dirent *de;
        unsigned vendor = 0, device = 0;
        DIR *d;
        int r = -ENODEV;

        d = opendir("/sys/bus/pci/devices");
        if (!d)
                return -errno;
        while ((de = readdir(d))) {
                if (de->d_name[0] == '.')
                        continue;
                if (pci_sysfs_hex(de->d_name, "vendor", &vendor) < 0 ||
                    pci_sysfs_hex(de->d_name, "device", &device) < 0)
                        continue;
                printf("# pci %s %04x:%04x\n", de->d_name, vendor, device);
                if (vendor == EDU_VENDOR && device == EDU_DEVICE && r < 0) {
                        snprintf(ret, size, "%s", de->d_name);
                        r = 0;
                }
        }
        closedir(d);
        return r;
}

/* No driver enabled the device: turn on memory decoding and bus mastering in its config. */
static int enable_device(const char *bdf) {
        char path[PATH_MAX];
        _cleanup_close_ int fd = -EBADF;
        uint16_t cmd;

        snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/config", bdf);
        fd = open(path, O_RDWR | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        if (pread(fd, &cmd, sizeof(cmd), PCI_COMMAND) != sizeof(cmd))
                return -EIO;
        cmd |= PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER;
        if (pwrite(fd, &cmd, sizeof(cmd), PCI_COMMAND) != sizeof(cmd))
                return -EIO;
        return 0;
}

static int map_bar0(const char *bdf, volatile uint8_t **ret, size_t *ret_size) {
        char path[PATH_MAX];
        _cleanup_close_ int fd = -EBADF;
        struct stat st;
        void *p;

        snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/resource0", bdf);
        fd = open(path, O_RDWR | O_SYNC | O_CLOEXEC);
        if (fd < 0 || fstat(fd, &st) < 0)
                return -errno;
        p = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (p == MAP_FAILED)
                return -errno;
        *ret = p;
        *ret_size = (size_t)st.st_size;
        return 0;
}

/* The guest-physical address of a locked page of ours (root sees frame numbers). */
static int phys_addr(const void *va, uint64_t *ret) {
        _cleanup_close_ int fd = -EBADF;
        uint64_t entry;
        off_t off = (off_t)((uintptr_t)va / PAGE * sizeof(entry));

        fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        if (pread(fd, &entry, sizeof(entry), off) != sizeof(entry))
                return -EIO;
        if (!(entry & PAGEMAP_PRESENT) || (entry & PAGEMAP_PFN_MASK) == 0)
                return -EADDRNOTAVAIL;
        *ret = (entry & PAGEMAP_PFN_MASK) * PAGE;
        return 0;
}

static void round_trip(volatile uint8_t *bar) {
        uint8_t *mem, *src, *dst;
        uint64_t src_pa, dst_pa;
        size_t diff;

        mem = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE | MAP_LOCKED, -1, 0);
        if (mem == MAP_FAILED) {
                tap(false, "two locked pages: %s", strerror(errno));
                return;
        }
        src = mem;
        dst = mem + PAGE;
        for (size_t i = 0; i < PAGE; i++)
                src[i] = (uint8_t)(i * 7 + 3);
        memset(dst, 0x5a, PAGE);
        if (phys_addr(src, &src_pa) < 0 || phys_addr(dst, &dst_pa) < 0) {
                tap(false, "guest-physical addresses from /proc/self/pagemap");
                munmap(mem, 2 * PAGE);
                return;
        }
        printf("# source page at %#" PRIx64 ", destination page at %#" PRIx64 "\n", src_pa, dst_pa);

        tap(edu_dma(bar, src_pa, EDU_BUFFER, EDU_DMA_LEN, false) == 0, "DMA RAM -> edu completes");
        tap(edu_dma(bar, EDU_BUFFER, dst_pa, EDU_DMA_LEN, true) == 0, "DMA edu -> RAM completes");
        for (diff = 0; diff < EDU_DMA_LEN && src[diff] == dst[diff]; diff++)
                ;
        if (diff == EDU_DMA_LEN)
                tap(true, "DMA round trip of %d bytes matched byte for byte", EDU_DMA_LEN);
        else
                tap(false, "DMA round trip of %d bytes differs at byte %zu: %#x, expected %#x",
                    EDU_DMA_LEN, diff, dst[diff], src[diff]);
        tap(dst[EDU_DMA_LEN] == 0x5a, "the byte after the transfer is untouched");
        munmap(mem, 2 * PAGE);
}

/* As pid 1: the pseudo file systems, and stdout on ttyS1 as well as the console. */
static FILE *init_setup(void) {
        struct utsname u;
        FILE *console;

        /* The archive holds this program only: make the mount points too. */
        (void)mkdir("/proc", 0755);
        (void)mkdir("/sys", 0755);
        (void)mkdir("/dev", 0755);
        (void)mount("proc", "/proc", "proc", 0, NULL);
        (void)mount("sysfs", "/sys", "sysfs", 0, NULL);
        (void)mount("devtmpfs", "/dev", "devtmpfs", 0, NULL);
        console = fopen("/dev/console", "we");
        if (!freopen("/dev/ttyS1", "w", stdout) && console)
                fprintf(console, "nested-edu: no /dev/ttyS1: %m\n");
        (void)uname(&u);
        printf("# nested kernel %s\n", u.release);
        return console;
}

_Noreturn static void init_finish(FILE *console) {
        printf(MARKER "\n");
        fflush(stdout);
        if (console)
                fprintf(console, "nested-edu: %u failure(s)\n" MARKER "\n", tap_failed);
        sync();
        (void)reboot(RB_AUTOBOOT);
        for (;;)
                pause();
}

static int run(void) {
        volatile uint8_t *bar;
        size_t bar_size;
        char bdf[NAME_MAX + 1];
        uint32_t ident;
        int r;

        r = find_edu(bdf, sizeof(bdf));
        tap(r == 0, "found edu %04x:%04x%s%s", EDU_VENDOR, EDU_DEVICE, r == 0 ? " at " : "",
            r == 0 ? bdf : ": not on the PCI bus");
        if (r < 0)
                return r;
        r = enable_device(bdf);
        tap(r == 0, "%s: memory decoding and bus mastering on%s%s", bdf, r < 0 ? ": " : "",
            r < 0 ? strerror(-r) : "");
        if (r < 0)
                return r;
        r = map_bar0(bdf, &bar, &bar_size);
        tap(r == 0, "%s: mmap BAR0%s%s", bdf, r < 0 ? ": " : "", r < 0 ? strerror(-r) : "");
        if (r < 0)
                return r;

        ident = *edu_reg32(bar, EDU_REG_IDENT);
        tap(ident == EDU_IDENT, "edu ident register reads %#010x (expected %#010x)", ident,
            EDU_IDENT);
        *edu_reg32(bar, EDU_REG_LIVENESS) = 0x12345678;
        tap(*edu_reg32(bar, EDU_REG_LIVENESS) == ~0x12345678u, "edu liveness register inverts");

        round_trip(bar);
        munmap((void *)bar, bar_size);
        return 0;
}

int main(void) {
        bool init = getpid() == 1;
        FILE *console = init ? init_setup() : NULL;

        (void)run();
        if (init)
                init_finish(console);
        return tap_failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
