/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Guest test: fds of the kernel's own kinds where iommud expects a device or memory, against
 * iommud on the kernel backend.  The simulated hosts of the hostile suite cannot offer these:
 *
 *   - a VFIO device cdev as memoryFd (mmap of it at offset 0 would be the device's BAR0);
 *   - a legacy VFIO group fd (/dev/vfio/N) and /dev/iommu itself as a device;
 *   - a device cdev the client already bound to an iommufd of its own.
 *
 * Each is refused with a protocol error (the bound cdev: DeviceBusy naming the caller, not a
 * range error), and afterwards the daemon holds what it held before:
 * its fds, no mapping of the fd, no device claimed; the client's own binding still works.
 *
 * Prints unnumbered TAP lines; the kernel-vm init numbers them.
 *
 *   guest-hostile [IOMMUD]      default: /usr/sbin/iommud
 */

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "guest-broker-util.h"
#include "guest-util.h"
#include "iommufd-abi.h"
#include "macros.h"

#define PAGE 4096
#define TEST_IOVA UINT64_C(0x300000) /* edu masks DMA addresses to 28 bits */
#define EDU_ROOT "0000:00:03.0"
#define BRIDGE_EDU "0000:01:02.0"

/* The device iommud lists as held by someone, or "" (GetTopology's heldBy). */
static const char *held_by(VarlinkClient *c, const char *bdf, VarlinkReply *rep) {
        json_object *p, *devs = NULL;
        const char *error;

        p = call(c, "GetTopology", NULL, NULL, 0, rep, &error);
        if (error || !json_object_object_get_ex(p, "devices", &devs))
                return "?";
        for (size_t i = 0; i < json_object_array_length(devs); i++) {
                json_object *d = json_object_array_get_idx(devs, i);

                if (streq(get_str(d, "name"), bdf))
                        return get_str(d, "heldBy");
        }
        return "?";
}

/* What the daemon holds, to compare before and after an attempt. */
typedef struct Held {
        int fds;
        unsigned maps;
        char holder[128];
} Held;

static void held_now(VarlinkClient *c, const char *bdf, Held *ret) {
        _cleanup_(varlink_reply_clear) VarlinkReply rep = VARLINK_REPLY_INIT;

        ret->fds = daemon_fds();
        ret->maps = daemon_memfd_maps_named("");
        snprintf(ret->holder, sizeof(ret->holder), "%s", held_by(c, bdf, &rep));
}

static void tap_unchanged(VarlinkClient *c, const char *bdf, const Held *before,
                          const char *what) {
        Held after;

        held_now(c, bdf, &after);
        tap(after.fds == before->fds && after.maps == before->maps &&
                    streq(after.holder, before->holder),
            "%s: the daemon holds what it held (fds %d -> %d, memfd mappings %u -> %u, %s held "
            "by '%s' -> '%s')", what, before->fds, after.fds, before->maps, after.maps, bdf,
            before->holder, after.holder);
}

/* A cdev where memory is expected: Map must not mmap a device region into the IOAS. */
static void test_cdev_as_memory(VarlinkClient *c) {
        _cleanup_(varlink_reply_clear) VarlinkReply rep = VARLINK_REPLY_INIT;
        _cleanup_close_ int dev = open_cdev(EDU_ROOT), mem = -EBADF;
        const char *error, *e2;
        json_object *p;
        uint64_t ioas;
        Held before;

        mem = open_cdev(BRIDGE_EDU);
        if (dev < 0 || mem < 0)
                return tap(false, "cdev as memory: open the cdevs of %s and %s", EDU_ROOT,
                           BRIDGE_EDU);
        (void)attach_device_released(c, dev, &rep, &error);
        p = call(c, "CreateAddressSpace", NULL, NULL, 0, &rep, &e2);
        ioas = get_u64(p, "ioasId");
        if (error || e2)
                return tap(false, "cdev as memory: a session with %s and an address space: %s",
                           EDU_ROOT, error ?: e2);
        held_now(c, BRIDGE_EDU, &before);
        (void)map_at(c, ioas, mem, 0, PAGE, TEST_IOVA, &rep, &error);
        tap(error != NULL, "cdev as memory: Map with %s's cdev as memoryFd is refused (%s: %s)",
            BRIDGE_EDU, error ?: "accepted", get_str(rep.parameters, "reason"));
        tap_unchanged(c, BRIDGE_EDU, &before, "cdev as memory");
}

/* fd as a device: refused, and nothing is held for it. */
static void attach_refused(VarlinkClient *c, int fd, const char *what) {
        _cleanup_(varlink_reply_clear) VarlinkReply rep = VARLINK_REPLY_INIT;
        const char *error;
        Held before;

        held_now(c, BRIDGE_EDU, &before);
        (void)attach_device(c, fd, &rep, &error);
        tap(error != NULL, "%s as a device: AttachDevice is refused (%s: %s)", what,
            error ?: "accepted", get_str(rep.parameters, "reason"));
        tap_unchanged(c, BRIDGE_EDU, &before, what);
}

static void test_group_and_iommu_as_device(VarlinkClient *c) {
        char path[PATH_MAX], group[32];
        _cleanup_close_ int iommu = open("/dev/iommu", O_RDWR | O_CLOEXEC), gfd = -EBADF;
        ssize_t n;

        attach_refused(c, iommu, "/dev/iommu");
        /* The bridge group: nobody uses it through a cdev now, so its group node opens. */
        n = readlink("/sys/bus/pci/devices/" BRIDGE_EDU "/iommu_group", path, sizeof(path) - 1);
        if (n < 0)
                return tap(false, "the IOMMU group of %s: %m", BRIDGE_EDU);
        path[n] = '\0';
        snprintf(group, sizeof(group), "%s", strrchr(path, '/') + 1);
        snprintf(path, sizeof(path), "/dev/vfio/%s", group);
        gfd = open(path, O_RDWR | O_CLOEXEC);
        if (gfd < 0)
                return tap(false, "open the legacy group node %s: %m", path);
        attach_refused(c, gfd, path);
}

/* A cdev the client bound to its own iommufd, then passed to iommud. */
static void test_cdev_bound_by_client(VarlinkClient *c) {
        struct iommud_vfio_device_bind_iommufd bind = { .argsz = sizeof(bind) };
        struct iommud_vfio_device_attach_iommufd_pt at = { .argsz = sizeof(at) };
        struct iommud_ioas_alloc alloc = { .size = sizeof(alloc) };
        _cleanup_close_ int iommufd = open("/dev/iommu", O_RDWR | O_CLOEXEC), fd = -EBADF;
        _cleanup_(varlink_reply_clear) VarlinkReply rep = VARLINK_REPLY_INIT;
        const char *error;
        Held before;

        fd = open_cdev(BRIDGE_EDU);
        bind.iommufd = iommufd;
        if (iommufd < 0 || fd < 0 || ioctl(fd, IOMMUD_VFIO_DEVICE_BIND_IOMMUFD, &bind) < 0)
                return tap(false, "the client binds %s to an iommufd of its own: %m", BRIDGE_EDU);
        /* The kernel's EINVAL for a bound file: DeviceBusy naming the caller, no range error. */
        held_now(c, BRIDGE_EDU, &before);
        (void)attach_device(c, fd, &rep, &error);
        tap(error && streq(error, "org.iommud.Broker.DeviceBusy") &&
                    get_u64(rep.parameters, "pid") == (uint64_t)getpid(),
            "a cdev the client bound itself as a device: DeviceBusy naming the caller, pid %d "
            "(%s: heldBy '%s', pid %" PRIu64 ")",
            (int)getpid(), error ?: "accepted", get_str(rep.parameters, "heldBy"),
            get_u64(rep.parameters, "pid"));
        tap_unchanged(c, BRIDGE_EDU, &before, "a cdev the client bound itself");
        /* The client's binding is intact: its device attaches to its own address space. */
        if (ioctl(iommufd, IOMMUD_IOMMU_IOAS_ALLOC, &alloc) < 0)
                return tap(false, "IOMMU_IOAS_ALLOC on the client's iommufd: %m");
        at.pt_id = alloc.out_ioas_id;
        tap(ioctl(fd, IOMMUD_VFIO_DEVICE_ATTACH_IOMMUFD_PT, &at) == 0,
            "a cdev the client bound itself: the client's own binding still attaches");
}

int main(int argc, char **argv) {
        _cleanup_(varlink_client_freep) VarlinkClient *c = NULL, *c2 = NULL;
        int r;

        if (argc > 1)
                iommud_path = argv[1];
        if (access("/dev/iommu", F_OK) < 0) {
                skip("hostile fds on the kernel backend # SKIP no /dev/iommu");
                return 77;
        }
        iommud_backend = "iommufd";
        r = daemon_start();
        tap(r >= 0, "iommud starts on the kernel backend (%s)", r < 0 ? strerror(-r) : "ready");
        if (r < 0 || varlink_client_connect(&c, SOCKET_PATH) < 0 ||
            varlink_client_connect(&c2, SOCKET_PATH) < 0)
                return tap(false, "connect to %s", SOCKET_PATH), EXIT_FAILURE;
        test_cdev_as_memory(c);
        test_group_and_iommu_as_device(c2);
        test_cdev_bound_by_client(c2);
        c = varlink_client_free(c);
        c2 = varlink_client_free(c2);
        r = daemon_stop();
        tap(r == 0, "iommud exits cleanly on SIGTERM (status %d)", r);
        return tap_failed > 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
