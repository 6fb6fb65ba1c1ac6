/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * What the kernel-vm guest programs share: unnumbered TAP result lines (the guest's init and
 * the host number them) and the sysfs lookups of a PCI device and its VFIO cdev.  Header-only:
 * each guest program is one translation unit, and some are linked statically.
 */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "macros.h"

/* How many "not ok" lines this program printed. */
static unsigned tap_failed;

static inline _printf_(2, 3) void tap(bool ok, const char *fmt, ...) {
        va_list ap;

        printf("%s - ", ok ? "ok" : "not ok");
        va_start(ap, fmt);
        vprintf(fmt, ap);
        va_end(ap);
        putchar('\n');
        fflush(stdout);
        if (!ok)
                tap_failed++;
}

/* A step's outcome as a TAP line naming the device; returns r to stop at the first failure. */
static inline int step(int r, const char *bdf, const char *what) {
        if (r < 0)
                tap(false, "%s: %s: %s", bdf, what, strerror(-r));
        else
                tap(true, "%s: %s", bdf, what);
        return r;
}

/* Whether the PCI device is bound to driver: /sys/bus/pci/devices/BDF/driver names it. */
static inline bool pci_driver_is(const char *bdf, const char *driver) {
        char path[PATH_MAX], drv[PATH_MAX];
        ssize_t n;

        snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/driver", bdf);
        n = readlink(path, drv, sizeof(drv) - 1);
        if (n < 0)
                return false;
        drv[n] = 0;
        return streq(strrchr(drv, '/') ? strrchr(drv, '/') + 1 : drv, driver);
}

/* A hex attribute of a PCI device: /sys/bus/pci/devices/BDF/ATTR ("vendor", "device"). */
static inline int pci_sysfs_hex(const char *bdf, const char *attr, unsigned *ret) {
        char path[PATH_MAX], buf[32];
        _cleanup_close_ int fd = -EBADF;
        ssize_t n;

        snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/%s", bdf, attr);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        n = read(fd, buf, sizeof(buf) - 1);
        if (n < 0)
                return -errno;
        buf[n] = 0;
        *ret = (unsigned)strtoul(buf, NULL, 16);
        return 0;
}

/* The cdev node of a vfio-bound device: /sys/bus/pci/devices/BDF/vfio-dev/vfioN names
 * /dev/vfio/devices/vfioN. */
static inline int vfio_cdev_path(const char *bdf, char *ret, size_t size) {
        char path[PATH_MAX];
        struct dirent *de;
        DIR *d;
        int r = -ENOENT;

        if (strchr(bdf, '/'))
                return -EINVAL;
        snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/vfio-dev", bdf);
        d = opendir(path);
        if (!d)
                return -errno;
        while ((de = readdir(d)))
                if (strneq(de->d_name, "vfio", 4)) {
                        snprintf(ret, size, "/dev/vfio/devices/%s", de->d_name);
                        r = 0;
                        break;
                }
        closedir(d);
        return r;
}
