/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Guest test: iommud on a stock kernel without iommufd, on the legacy VFIO type1 backend,
 * driven over its Varlink socket like any client.
 *
 *   - probing picks VFIO type1 and GetStatus says why; GetTopology matches sysfs;
 *   - a client attaches the root-bus edu by name (iommud opens its group), maps a memfd,
 *     receives the device fd from GetDeviceFd, makes edu DMA through the type1 container
 *     and back, and after Unmap the same DMA is blocked and the IOMMU fault logged;
 *   - what only iommufd offers is NotSupported;
 *   - an address space with dirty tracking logs through the container: GetFeatures says
 *     dirty-all-pinned, and every pinned page reads dirty, also from an Unmap;
 *   - a client that keeps its device fd reaches nothing after DetachDevice;
 *   - two sessions contend for one device; a client killed mid-session leaves nothing held;
 *   - the bridge group with a sibling on a host driver is refused by iommud with the sibling
 *     named (and by the kernel too), and is eligible once both members are on vfio-pci;
 *   - iommuctl status says which backend and why; iommuctl cdi generate gives the legacy
 *     nodes /dev/vfio/vfio and /dev/vfio/<group>.
 *
 * Prints unnumbered TAP lines; the kernel-vm init numbers them.
 *
 *   guest-broker-vfio [IOMMUD]      default: /usr/sbin/iommud
 */

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "edu.h"
#include "fdlist.h"
#include "guest-broker-util.h"
#include "guest-util.h"
#include "vfio-abi.h"

#define TEST_IOVA 0x300000ull /* edu masks DMA addresses to 28 bits */
#define PAGE 4096

#define EDU_ROOT "0000:00:03.0"
#define EDU_ROOT_GROUP_ID "1"
#define EDU_ROOT_GROUP "/dev/vfio/" EDU_ROOT_GROUP_ID
#define BRIDGE_EDU "0000:01:02.0"
#define BRIDGE_SIBLING "0000:01:01.0"
#define BRIDGE_GROUP "/dev/vfio/3"

/* AttachDevice by name, iommud opening the group; returns the deviceId or -1. */
static int64_t attach_name(VarlinkClient *c, const char *bdf, VarlinkReply *rep,
                           const char **error) {
        json_object *p = call(c, "AttachDevice",
                              params("device", json_object_new_string(bdf), NULL), NULL, 0, rep,
                              error);

        return *error ? -1 : (int64_t)get_u64(p, "deviceId");
}

/* The same, for a device another session just let go of (torn down from the event loop). */
static int64_t attach_name_released(VarlinkClient *c, const char *bdf, VarlinkReply *rep,
                                    const char **error) {
        int64_t id = -1;

        for (unsigned i = 0; i < 100; i++) {
                id = attach_name(c, bdf, rep, error);
                if (!*error || !streq(*error, "org.iommud.Broker.DeviceBusy"))
                        break;
                sleep_ms(30);
        }
        return id;
}

static uint64_t create_attached_ioas(VarlinkClient *c, int64_t dev, VarlinkReply *rep,
                                     const char **error) {
        json_object *p = call(c, "CreateAddressSpace", NULL, NULL, 0, rep, error);
        uint64_t ioas = get_u64(p, "ioasId");

        if (*error)
                return 0;
        (void)call(c, "AttachToAddressSpace",
                   params("deviceId", u64((uint64_t)dev), "ioasId", u64(ioas), NULL), NULL, 0,
                   rep, error);
        return ioas;
}

static int map_memfd(VarlinkClient *c, uint64_t ioas, int mfd, uint64_t length,
                     VarlinkReply *rep, const char **error) {
        json_object *p = call(c, "Map",
                              params("ioasId", u64(ioas), "memoryFd", json_object_new_int(0),
                                     "offset", u64(0), "length", u64(length), "iova",
                                     u64(TEST_IOVA), "readable", json_object_new_boolean(true),
                                     "writeable", json_object_new_boolean(true), NULL),
                              &mfd, 1, rep, error);

        return *error || get_u64(p, "iova") != TEST_IOVA ? -EIO : 0;
}

/* GetDeviceFd: the VFIO device fd iommud opened from the group it holds. */
static int device_fd(VarlinkClient *c, int64_t dev, VarlinkReply *rep, const char **error) {
        (void)call(c, "GetDeviceFd", params("deviceId", u64((uint64_t)dev), NULL), NULL, 0, rep,
                   error);
        if (*error || !rep->fds)
                return -EBADF;
        return fdlist_take(rep->fds, (size_t)get_u64(rep->parameters, "deviceFd"));
}

/* A memfd of two pages: a pattern in the first, 0x5a in the second. */
static int memfd_with_pattern(uint8_t **ret_mem) {
        int mfd = memfd_create("iommud-guest-broker", MFD_CLOEXEC);
        uint8_t *mem;

        if (mfd < 0 || ftruncate(mfd, 2 * PAGE) < 0)
                return -errno;
        mem = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
        if (mem == MAP_FAILED) {
                safe_close(mfd);
                return -errno;
        }
        for (size_t i = 0; i < PAGE; i++)
                mem[i] = (uint8_t)(i * 13 + 5);
        memset(mem + PAGE, 0x5a, PAGE);
        *ret_mem = mem;
        return mfd;
}

typedef struct Bar {
        volatile uint8_t *bar;
        size_t size;
} Bar;

static int bar_map(int dev, Bar *ret) {
        struct vfio_region_info bar0 = {};

        if (vfio_region_info(dev, VFIO_PCI_BAR0_REGION_INDEX, &bar0) < 0 ||
            !(bar0.flags & VFIO_REGION_INFO_FLAG_MMAP))
                return -EIO;
        ret->bar = mmap(NULL, bar0.size, PROT_READ | PROT_WRITE, MAP_SHARED, dev,
                        (off_t)bar0.offset);
        if (ret->bar == MAP_FAILED)
                return -errno;
        ret->size = bar0.size;
        return vfio_enable_bus_master(dev);
}

static void bar_unmap(Bar *b) {
        if (b->bar && b->bar != MAP_FAILED)
                munmap((void *)b->bar, b->size);
}

/* edu copies the pattern in and out through the IOVA: whether it landed, and nothing more. */
static bool round_trip(Bar *b, uint8_t *mem) {
        return edu_dma(b->bar, TEST_IOVA, EDU_BUFFER, EDU_DMA_LEN, false) == 0 &&
               edu_dma(b->bar, EDU_BUFFER, TEST_IOVA + PAGE, EDU_DMA_LEN, true) == 0 &&
               memcmp(mem, mem + PAGE, EDU_DMA_LEN) == 0 && mem[PAGE + EDU_DMA_LEN] == 0x5a;
}

/* The same write to the second page, which must not land. */
static bool write_blocked(Bar *b, uint8_t *mem) {
        bool untouched = true;

        memset(mem + PAGE, 0xa5, PAGE);
        if (edu_dma(b->bar, EDU_BUFFER, TEST_IOVA + PAGE, EDU_DMA_LEN, true) < 0)
                return false;
        for (size_t i = 0; i < PAGE; i++)
                untouched = untouched && mem[PAGE + i] == 0xa5;
        return untouched;
}

/* ---- the backend ---- */

static void test_status(VarlinkClient *c) {
        _cleanup_(varlink_reply_clear) VarlinkReply rep = VARLINK_REPLY_INIT;
        const char *error;
        json_object *p;

        p = call(c, "org.iommud.Manager.GetStatus", NULL, NULL, 0, &rep, &error);
        tap(!error && streq(get_str(p, "backend"), "vfio"),
            "probing picked the VFIO backend (GetStatus: backend '%s'%s%s)", get_str(p, "backend"),
            error ? ", " : "", error ?: "");
        tap(strstr(get_str(p, "backendReason"), "iommufd is unavailable") != NULL,
            "GetStatus says why: %s", get_str(p, "backendReason"));
}

/* ---- DMA through a brokered type1 container ---- */

static void test_dma(VarlinkClient *c) {
        _cleanup_(varlink_reply_clear) VarlinkReply rep = VARLINK_REPLY_INIT;
        _cleanup_close_ int mfd = -EBADF, dev = -EBADF, group = -EBADF;
        uint64_t ioas, faults_before;
        uint8_t *mem = NULL;
        const char *error;
        Bar bar = {};
        int64_t id;
        int r;

        id = attach_name(c, EDU_ROOT, &rep, &error);
        tap(!error, "AttachDevice %s by name: iommud opens its group%s%s%s%s", EDU_ROOT,
            error ? ": " : "", error ?: "", error ? ": " : "", get_str(rep.parameters, "reason"));
        if (error)
                return;
        group = open(EDU_ROOT_GROUP, O_RDWR | O_CLOEXEC);
        tap(group < 0 && errno == EBUSY, "the group file %s is iommud's now (EBUSY for others)",
            EDU_ROOT_GROUP);
        (void)device_fd(c, id, &rep, &error);
        tap(error && streq(error, "org.varlink.service.InvalidParameter"),
            "GetDeviceFd before an address space is refused (%s)", error ?: "no error");
        ioas = create_attached_ioas(c, id, &rep, &error);
        tap(!error, "CreateAddressSpace and AttachToAddressSpace%s%s", error ? ": " : "",
            error ?: "");
        (void)call(c, "BindPASID", params("deviceId", u64((uint64_t)id), "ioasId", u64(ioas), NULL),
                   NULL, 0, &rep, &error);
        tap(error && streq(error, "org.iommud.Broker.NotSupported"),
            "BindPASID is NotSupported without iommufd (%s)", error ?: "no error");
        mfd = memfd_with_pattern(&mem);
        r = mfd < 0 ? mfd : map_memfd(c, ioas, mfd, 2 * PAGE, &rep, &error);
        tap(r >= 0, "Map of a memfd at IOVA %#llx%s%s", TEST_IOVA, r < 0 ? ": " : "",
            r < 0 ? error ?: strerror(-r) : "");
        tap(daemon_memfd_maps() >= 1, "iommud mapped the memfd for MAP_DMA");
        dev = device_fd(c, id, &rep, &error);
        tap(dev >= 0, "GetDeviceFd hands over the device fd%s%s", error ? ": " : "", error ?: "");
        if (dev < 0 || mfd < 0 || bar_map(dev, &bar) < 0) {
                tap(false, "BAR0 of the device fd from iommud");
                goto out;
        }
        tap((*(volatile uint32_t *)(bar.bar + EDU_REG_IDENT) & 0xff) == 0xed,
            "edu identification register reads through the BAR");
        tap(round_trip(&bar, mem), "%d bytes made the round trip through the brokered type1 "
            "container, and no more", EDU_DMA_LEN);
        (void)call(c, "Unmap", params("ioasId", u64(ioas), "iova", u64(TEST_IOVA), "length",
                                      u64(2 * PAGE), NULL),
                   NULL, 0, &rep, &error);
        tap(!error && get_u64(rep.parameters, "unmapped") == 2 * PAGE, "Unmap%s%s",
            error ? ": " : "", error ?: "");
        tap(daemon_memfd_maps() == 0, "Unmap released iommud's mmap of the memfd");
        faults_before = count_faults();
        tap(write_blocked(&bar, mem), "after Unmap the same DMA did not reach memory");
        for (unsigned i = 0; i < 50 && count_faults() <= faults_before; i++)
                sleep_ms(20);
        tap(count_faults() > faults_before, "the kernel logged the blocked DMA as an IOMMU fault");
out:
        bar_unmap(&bar);
        if (mem)
                munmap(mem, 2 * PAGE);
}

/* ---- dirty tracking: the container's logging ---- */

/* Whether GetFeatures' kernel list has name. */
static bool kernel_feature(json_object *p, const char *name) {
        json_object *a = NULL;

        if (!p || !json_object_object_get_ex(p, "kernel", &a))
                return false;
        for (size_t i = 0; i < json_object_array_length(a); i++)
                if (streq(json_object_get_string(json_object_array_get_idx(a, i)), name))
                        return true;
        return false;
}

/* The first word of a bitmap iommud wrote into fd, which is zeroed first. */
static uint64_t dirty_read(VarlinkClient *c, uint64_t ioas, uint64_t page_size, int fd,
                           VarlinkReply *rep, const char **error) {
        uint64_t w = 0;

        (void)pwrite(fd, &w, sizeof(w), 0);
        (void)call(c, "ReadDirtyBitmap",
                   params("ioasId", u64(ioas), "iova", u64(TEST_IOVA), "length", u64(2 * PAGE),
                          "pageSize", u64(page_size), "clear", json_object_new_boolean(true),
                          "bitmapFd", json_object_new_int(0), NULL),
                   &fd, 1, rep, error);
        return pread(fd, &w, sizeof(w), 0) == sizeof(w) ? w : UINT64_MAX;
}

static void test_dirty(void) {
        _cleanup_(varlink_client_freep) VarlinkClient *c = NULL;
        _cleanup_(varlink_reply_clear) VarlinkReply rep = VARLINK_REPLY_INIT;
        _cleanup_close_ int mfd = -EBADF, bfd = memfd_create("bitmap", MFD_CLOEXEC);
        const char *error;
        uint64_t ioas = 0, w;
        uint8_t *mem = NULL;
        json_object *p;
        int64_t id;

        if (varlink_client_connect(&c, SOCKET_PATH) < 0 || bfd < 0 || ftruncate(bfd, PAGE) < 0)
                return tap(false, "dirty tracking: a connection and a bitmap memfd");
        p = call(c, "GetFeatures", NULL, NULL, 0, &rep, &error);
        tap(kernel_feature(p, "dirty-tracking") && kernel_feature(p, "dirty-all-pinned"),
            "GetFeatures: the kernel offers dirty tracking that reports every pinned page%s%s",
            error ? ": " : "", error ?: "");
        id = attach_name_released(c, EDU_ROOT, &rep, &error);
        p = call(c, "CreateAddressSpace", params("dirtyTracking", json_object_new_boolean(true),
                                                 NULL), NULL, 0, &rep, &error);
        if (!error) {
                ioas = get_u64(p, "ioasId");
                (void)call(c, "AttachToAddressSpace",
                           params("deviceId", u64((uint64_t)id), "ioasId", u64(ioas), NULL), NULL,
                           0, &rep, &error);
        }
        tap(id >= 0 && !error, "a dirty-tracking address space takes the edu's group%s%s",
            error ? ": " : "", error ?: "");
        mfd = memfd_with_pattern(&mem);
        if (error || mfd < 0 || map_memfd(c, ioas, mfd, 2 * PAGE, &rep, &error) < 0)
                return tap(false, "dirty tracking: Map%s%s", error ? ": " : "", error ?: "");
        (void)call(c, "SetDirtyTracking", params("ioasId", u64(ioas), "enabled",
                                                 json_object_new_boolean(true), NULL),
                   NULL, 0, &rep, &error);
        w = dirty_read(c, ioas, PAGE, bfd, &rep, &error);
        tap(!error && w == 0x3, "SetDirtyTracking, ReadDirtyBitmap: both pinned pages dirty "
            "(0x%" PRIx64 "%s%s)", w, error ? ", " : "", error ?: "");
        (void)dirty_read(c, ioas, 2 * PAGE, bfd, &rep, &error);
        tap(error && !streq(error, "transport"),
            "ReadDirtyBitmap at another page size than type1 logs is refused (%s)",
            error ?: "no error");
        (void)pwrite(bfd, &(uint64_t){ 0 }, sizeof(uint64_t), 0);
        p = call(c, "Unmap", params("ioasId", u64(ioas), "iova", u64(TEST_IOVA), "length",
                                    u64(2 * PAGE), "dirtyBitmapFd", json_object_new_int(0),
                                    "pageSize", u64(PAGE), NULL),
                 &bfd, 1, &rep, &error);
        w = 0;
        (void)pread(bfd, &w, sizeof(w), 0);
        tap(!error && get_u64(p, "unmapped") == 2 * PAGE && w == 0x3,
            "Unmap with a bitmap returns both pages dirty (0x%" PRIx64 "%s%s)", w,
            error ? ", " : "", error ?: "");
        if (mem)
                munmap(mem, 2 * PAGE);
}

/* A client that keeps its device fd reaches nothing once the device is detached. */
static void test_detach_with_device_fd_held(void) {
        _cleanup_(varlink_reply_clear) VarlinkReply rep = VARLINK_REPLY_INIT;
        _cleanup_(varlink_client_freep) VarlinkClient *c = NULL;
        _cleanup_close_ int mfd = -EBADF, dev = -EBADF;
        uint8_t *mem = NULL;
        const char *error = "connect";
        Bar bar = {};
        int64_t id = -1;
        uint64_t ioas;

        if (varlink_client_connect(&c, SOCKET_PATH) >= 0)
                id = attach_name_released(c, EDU_ROOT, &rep, &error);
        ioas = error ? 0 : create_attached_ioas(c, id, &rep, &error);
        mfd = memfd_with_pattern(&mem);
        if (error || mfd < 0 || map_memfd(c, ioas, mfd, 2 * PAGE, &rep, &error) < 0 ||
            (dev = device_fd(c, id, &rep, &error)) < 0 || bar_map(dev, &bar) < 0) {
                tap(false, "a session with %s, a mapping and its device fd: %s", EDU_ROOT,
                    error ?: "setup failed");
                goto out;
        }
        tap(round_trip(&bar, mem), "DMA through the session's mapping works");
        (void)call(c, "DetachDevice", params("deviceId", u64((uint64_t)id), NULL), NULL, 0, &rep,
                   &error);
        tap(!error, "DetachDevice while the client keeps the device fd%s%s", error ? ": " : "",
            error ?: "");
        tap(write_blocked(&bar, mem), "the device fd the client kept reaches nothing any more "
            "(its container was wiped)");
out:
        bar_unmap(&bar);
        if (mem)
                munmap(mem, 2 * PAGE);
}

/* ---- sessions ---- */

static void test_contention(void) {
        _cleanup_(varlink_client_freep) VarlinkClient *a = NULL, *b = NULL;
        _cleanup_(varlink_reply_clear) VarlinkReply rep = VARLINK_REPLY_INIT;
        const char *error = "connect";

        if (varlink_client_connect(&a, SOCKET_PATH) < 0 ||
            varlink_client_connect(&b, SOCKET_PATH) < 0)
                return tap(false, "two sessions");
        (void)attach_name_released(a, EDU_ROOT, &rep, &error);
        tap(!error, "session A attaches %s%s%s", EDU_ROOT, error ? ": " : "", error ?: "");
        (void)attach_name(b, EDU_ROOT, &rep, &error);
        tap(error && streq(error, "org.iommud.Broker.DeviceBusy"),
            "session B is refused %s with DeviceBusy (%s; held by '%s')", EDU_ROOT,
            error ?: "no error", get_str(rep.parameters, "heldBy"));
}

/* The child: attach, map, keep the device fd, say so, wait for SIGKILL. */
static _Noreturn void killed_client(int notify) {
        _cleanup_(varlink_reply_clear) VarlinkReply rep = VARLINK_REPLY_INIT;
        VarlinkClient *c = NULL;
        int mfd = memfd_create("iommud-guest-broker", 0), dev;
        const char *error = "connect";
        int64_t id = -1;
        uint64_t ioas = 0;
        char ok;

        if (mfd >= 0 && ftruncate(mfd, 16 * PAGE) == 0 &&
            varlink_client_connect(&c, SOCKET_PATH) >= 0)
                id = attach_name_released(c, EDU_ROOT, &rep, &error);
        if (!error)
                ioas = create_attached_ioas(c, id, &rep, &error);
        if (!error)
                (void)map_memfd(c, ioas, mfd, 16 * PAGE, &rep, &error);
        dev = error ? -EBADF : device_fd(c, id, &rep, &error);
        ok = (!error && dev >= 0) ? 'y' : 'n';
        (void)!write(notify, &ok, 1);
        pause();
        _exit(0);
}

static void test_killed_client(void) {
        _cleanup_(varlink_reply_clear) VarlinkReply rep = VARLINK_REPLY_INIT;
        _cleanup_(varlink_client_freep) VarlinkClient *c = NULL;
        const char *error = "not tried";
        int pipefd[2], status;
        pid_t child;
        char ok = 0;

        if (pipe2(pipefd, O_CLOEXEC) < 0)
                return tap(false, "pipe: %m");
        child = fork();
        if (child == 0)
                killed_client(pipefd[1]);
        close(pipefd[1]);
        if (child < 0 || read(pipefd[0], &ok, 1) != 1)
                ok = 0;
        close(pipefd[0]);
        tap(ok == 'y', "a client attaches %s, maps a memfd and takes its device fd", EDU_ROOT);
        if (child > 0) {
                (void)kill(child, SIGKILL);
                (void)waitpid(child, &status, 0);
        }
        if (varlink_client_connect(&c, SOCKET_PATH) >= 0)
                (void)attach_name_released(c, EDU_ROOT, &rep, &error);
        tap(!error, "after the client was killed another session attaches %s again%s%s",
            EDU_ROOT, error ? ": " : "", error ?: "");
        tap(daemon_memfd_maps() == 0,
            "and the killed client's memfd is no longer mapped in iommud");
}

/* ---- the bridge group ---- */

static void test_bridge_group(void) {
        _cleanup_(varlink_reply_clear) VarlinkReply rep = VARLINK_REPLY_INIT;
        _cleanup_(varlink_client_freep) VarlinkClient *c = NULL;
        struct iommud_vfio_group_status st = { .argsz = sizeof(st) };
        _cleanup_close_ int group = -EBADF;
        const char *error;
        json_object *p;
        int r;

        if (access("/sys/bus/pci/drivers/pci-pf-stub", F_OK) < 0)
                return skip("bridge group policy # SKIP the kernel has no pci-pf-stub host driver");
        daemon_stop();
        r = set_driver(BRIDGE_SIBLING, "pci-pf-stub");
        tap(r >= 0, "%s moved to the host driver pci-pf-stub", BRIDGE_SIBLING);
        r = r < 0 ? r : daemon_start();
        if (r < 0 || varlink_client_connect(&c, SOCKET_PATH) < 0)
                return tap(false, "iommud restarted on the changed topology");
        (void)attach_name(c, BRIDGE_EDU, &rep, &error);
        tap(error && streq(error, "org.iommud.Broker.PolicyDenied") &&
                    streq(get_str(rep.parameters, "step"), "group") &&
                    strstr(get_str(rep.parameters, "reason"), BRIDGE_SIBLING),
            "iommud refuses %s at the group step, naming %s: %s", BRIDGE_EDU, BRIDGE_SIBLING,
            get_str(rep.parameters, "reason"));
        /* What the kernel says: a member on a host driver makes the group not viable. */
        group = open(BRIDGE_GROUP, O_RDWR | O_CLOEXEC);
        r = group < 0 ? -errno :
            ioctl(group, IOMMUD_VFIO_GROUP_GET_STATUS, &st) < 0 ? -errno : 0;
        tap(r == 0 && !(st.flags & IOMMUD_VFIO_GROUP_FLAGS_VIABLE),
            "the kernel calls the group not viable too (flags %#x)", st.flags);
        group = safe_close(group);

        c = varlink_client_free(c);
        daemon_stop();
        r = set_driver(BRIDGE_SIBLING, "vfio-pci");
        tap(r >= 0, "%s back on vfio-pci", BRIDGE_SIBLING);
        r = r < 0 ? r : daemon_start();
        if (r < 0 || varlink_client_connect(&c, SOCKET_PATH) < 0)
                return tap(false, "iommud restarted");
        p = call(c, "ExplainDevice", params("device", json_object_new_string(BRIDGE_EDU), NULL),
                 NULL, 0, &rep, &error);
        tap(!error && json_object_get_boolean(json_object_object_get(p, "allowed")),
            "with both members on vfio-pci ExplainDevice says %s is allowed", BRIDGE_EDU);
        (void)attach_name(c, BRIDGE_EDU, &rep, &error);
        tap(!error, "and AttachDevice takes it%s%s", error ? ": " : "", error ?: "");
}

/* ---- iommuctl ---- */

/* Runs iommuctl with args; its standard output in buf. */
static int iommuctl(char *buf, size_t size, const char *const *args) {
        int p[2], status;
        size_t n = 0;
        ssize_t k;
        pid_t pid;

        if (pipe2(p, O_CLOEXEC) < 0)
                return -errno;
        pid = fork();
        if (pid == 0) {
                char *argv[8] = { (char *)"iommuctl" };

                for (size_t i = 0; args[i] && i + 2 < ELEMENTSOF(argv); i++)
                        argv[i + 1] = (char *)args[i];
                (void)dup2(p[1], STDOUT_FILENO);
                execv("/usr/bin/iommuctl", argv);
                _exit(127);
        }
        close(p[1]);
        while (n + 1 < size && (k = read(p[0], buf + n, size - n - 1)) > 0)
                n += (size_t)k;
        buf[n] = '\0';
        close(p[0]);
        if (pid < 0 || waitpid(pid, &status, 0) < 0)
                return -ECHILD;
        return WIFEXITED(status) ? WEXITSTATUS(status) : -EIO;
}

static void test_cli(void) {
        static const char *const status[] = { "status", NULL };
        static const char *const cdi[] = { "cdi", "generate", "--mode", "legacy", "--stdout", NULL };
        char out[8192];
        int r;

        if (access("/usr/bin/iommuctl", X_OK) < 0)
                return skip("iommuctl # SKIP not in the guest");
        r = iommuctl(out, sizeof(out), status);
        tap(r == 0 && strstr(out, "Backend: vfio") && strstr(out, "Chosen: VFIO type1"),
            "iommuctl status names the VFIO backend and why (status %d)", r);
        r = iommuctl(out, sizeof(out), cdi);
        tap(r == 0 && strstr(out, "\"/dev/vfio/vfio\"") &&
                    strstr(out, "\"/dev/vfio/" EDU_ROOT_GROUP_ID "\"") &&
                    !strstr(out, "/dev/vfio/devices/"),
            "iommuctl cdi generate --mode legacy gives /dev/vfio/vfio and %s (status %d)",
            EDU_ROOT_GROUP, r);
}

int main(int argc, char **argv) {
        _cleanup_(varlink_client_freep) VarlinkClient *c = NULL;
        int r;

        if (argc > 1)
                iommud_path = argv[1];
        if (access("/dev/iommu", F_OK) == 0 || access("/dev/vfio/vfio", F_OK) < 0) {
                skip("iommud on the VFIO type1 backend # SKIP this kernel has iommufd or no VFIO "
                     "container");
                return 77;
        }
        r = daemon_start();
        tap(r >= 0, "iommud starts without iommufd (%s)", r < 0 ? strerror(-r) : "ready");
        if (r < 0 || varlink_client_connect(&c, SOCKET_PATH) < 0)
                return EXIT_FAILURE;
        test_status(c);
        test_cli();
        test_topology(c);
        test_dma(c);
        c = varlink_client_free(c);
        test_dirty();

        test_detach_with_device_fd_held();
        test_contention();
        test_killed_client();
        test_bridge_group();

        r = daemon_stop();
        tap(r == 0, "iommud exits cleanly on SIGTERM (status %d)", r);
        return tap_failed > 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
