/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * QEMU's edu device (docs/specs/edu.rst) driven through a VFIO cdev: the DMA
 * engine the guest tests use to prove that a mapping reaches memory, and that
 * an unmapped IOVA does not.  Shared by guest-dma (raw ioctls) and
 * guest-broker (through iommud).
 */

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include <linux/pci_regs.h>
#include <linux/vfio.h>

#define EDU_VENDOR 0x1234
#define EDU_DEVICE 0x11e8
#define EDU_REG_IDENT 0x00
#define EDU_REG_LIVENESS 0x04
#define EDU_REG_DMA_SRC 0x80
#define EDU_REG_DMA_DST 0x88
#define EDU_REG_DMA_COUNT 0x90
#define EDU_REG_DMA_CMD 0x98
#define EDU_DMA_START 0x1
#define EDU_DMA_TO_RAM 0x2
#define EDU_BUFFER 0x40000
/* QEMU 7.2's range check rejects (and aborts on) a transfer of the whole 4 KiB buffer. */
#define EDU_DMA_LEN 4000

static inline volatile uint32_t *edu_reg32(volatile uint8_t *bar, size_t off) {
        return (volatile uint32_t *)(bar + off);
}

static inline volatile uint64_t *edu_reg64(volatile uint8_t *bar, size_t off) {
        return (volatile uint64_t *)(bar + off);
}

/* Runs one edu DMA and waits for it: edu performs it from a timer, 100 ms of guest time on. */
static inline int edu_dma(volatile uint8_t *bar, uint64_t src, uint64_t dst, uint64_t len,
                          bool to_ram) {
        struct timespec delay = { .tv_nsec = 1000000 };

        *edu_reg64(bar, EDU_REG_DMA_SRC) = src;
        *edu_reg64(bar, EDU_REG_DMA_DST) = dst;
        *edu_reg64(bar, EDU_REG_DMA_COUNT) = len;
        *edu_reg64(bar, EDU_REG_DMA_CMD) = EDU_DMA_START | (to_ram ? EDU_DMA_TO_RAM : 0);
        for (unsigned i = 0; i < 10000; i++) {
                if (!(*edu_reg64(bar, EDU_REG_DMA_CMD) & EDU_DMA_START))
                        return 0;
                nanosleep(&delay, NULL);
        }
        return -ETIMEDOUT;
}

static inline int vfio_region_info(int dev, unsigned index, struct vfio_region_info *ret) {
        struct vfio_region_info info = { .argsz = sizeof(info), .index = index };

        if (ioctl(dev, VFIO_DEVICE_GET_REGION_INFO, &info) < 0)
                return -errno;
        *ret = info;
        return 0;
}

/* vfio-pci leaves bus mastering off: edu's DMA goes nowhere until the command register says so. */
static inline int vfio_enable_bus_master(int dev) {
        struct vfio_region_info cfg = {};
        uint16_t cmd;
        int r;

        r = vfio_region_info(dev, VFIO_PCI_CONFIG_REGION_INDEX, &cfg);
        if (r < 0)
                return r;
        if (pread(dev, &cmd, sizeof(cmd), (off_t)(cfg.offset + PCI_COMMAND)) != sizeof(cmd))
                return -EIO;
        cmd |= PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER;
        if (pwrite(dev, &cmd, sizeof(cmd), (off_t)(cfg.offset + PCI_COMMAND)) != sizeof(cmd))
                return -EIO;
        return 0;
}
