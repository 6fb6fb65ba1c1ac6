/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Guest test: iommud with the kernel backend on the guest's real sysfs, /dev/iommu and VFIO
 * cdevs, driven over its Varlink socket like any client.
 *
 *   - GetTopology matches what the kernel shows in /sys/kernel/iommu_groups (members, type,
 *     reserved regions, including the direct-relaxable one of the Intel chipset group);
 *   - a client passes the root-bus edu's cdev fd, creates an address space, maps a memfd
 *     (through the daemon's mmap + IOMMU_IOAS_MAP fallback: 6.12 has no MAP_FILE), makes edu
 *     DMA from it and back through BAR0 of its own fd, and after Unmap the same DMA is
 *     blocked and the IOMMU fault is logged;
 *   - features the kernel or the emulated IOMMU lack are reported, not faked: GetFeatures of
 *     edu says dirty tracking is not offered, and an address space with it refuses edu;
 *   - two sessions contend for one device; a client killed mid-session leaves nothing held;
 *   - the bridge group with a sibling on a host driver is refused by iommud with the sibling
 *     named (and by the kernel too), and is eligible once both members are on vfio-pci;
 *   - figures (BENCH lines): a brokered Map + Unmap round trip against the same ioctls made
 *     directly, and against them plus the transport's floor, of one memfd (the daemon's
 *     mapping of it cached) and of a new memfd each time.
 *
 * Prints unnumbered TAP lines; the kernel-vm init numbers them.
 *
 *   guest-broker [IOMMUD]      default: /usr/sbin/iommud
 */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/klog.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <linux/pci_regs.h>
#include <linux/vfio.h>

#include <json-c/json.h>

#include "bench-report.h"
#include "edu.h"
#include "guest-broker-util.h"
#include "guest-util.h"
#include "iommufd-abi.h"
#include "json-util.h"
#include "macros.h"
#include "varlink-client.h"

#define TEST_IOVA 0x300000ull /* edu masks DMA addresses to 28 bits */
#define PAGE 4096
#define RAM_IOVA 0x400000ull /* the long-lived area of the steady-state figure */

#define EDU_ROOT "0000:00:03.0"
#define BRIDGE_EDU "0000:01:02.0"
#define BRIDGE_SIBLING "0000:01:01.0"


/* ---- what the emulated IOMMU offers ---- */

/* The "dirty-tracking" entry of a GetFeatures reply's policy list; NULL when absent. */
static json_object *dirty_feature(json_object *features) {
        json_object *policy = NULL;

        json_object_object_get_ex(features, "policy", &policy);
        for (size_t i = 0; policy && i < json_object_array_length(policy); i++) {
                json_object *e = json_object_array_get_idx(policy, i);

                if (streq(get_str(e, "feature"), "dirty-tracking"))
                        return e;
        }
        return NULL;
}

/*
 * QEMU's Intel and AMD IOMMUs do not track dirty pages (no SSADS, no HDSUP): GetFeatures of
 * the device says "not offered" though the policy grants it, and an address space with dirty
 * tracking refuses the device by name.
 */
static void test_features(VarlinkClient *c, int64_t devid) {
        _cleanup_(varlink_reply_clear) VarlinkReply rep = VARLINK_REPLY_INIT;
        json_object *p, *dirty, *dev = NULL, *caps = NULL, *offered = NULL, *granted = NULL;
        const char *error;
        uint64_t ioas;

        p = call(c, "GetFeatures", params("deviceId", u64((uint64_t)devid), NULL), NULL, 0, &rep,
                 &error);
        dirty = dirty_feature(p);
        if (dirty) {
                json_object_object_get_ex(dirty, "offered", &offered);
                json_object_object_get_ex(dirty, "granted", &granted);
        }
        json_object_object_get_ex(p, "device", &dev);
        json_object_object_get_ex(dev, "capabilities", &caps);
        tap(!error && streq(get_str(p, "backend"), "kernel") && offered &&
                    !json_object_get_boolean(offered) && granted &&
                    json_object_get_boolean(granted) && caps &&
                    json_object_array_length(caps) == 0,
            "GetFeatures(%s): dirty tracking not offered by the emulated IOMMU, granted by the "
            "policy (%s%s)", EDU_ROOT, error ?: "", error ? "" : json_object_to_json_string(p));

        p = call(c, "CreateAddressSpace", params("dirtyTracking", json_object_new_boolean(true),
                                                 NULL),
                 NULL, 0, &rep, &error);
        tap(!error, "CreateAddressSpace with dirty tracking%s%s", error ? ": " : "",
            error ?: "");
        if (error)
                return;
        ioas = get_u64(p, "ioasId");
        p = call(c, "AttachToAddressSpace",
                 params("deviceId", u64((uint64_t)devid), "ioasId", u64(ioas), NULL), NULL, 0,
                 &rep, &error);
        tap(error && streq(error, "org.iommud.Broker.NotSupported") &&
                    streq(get_str(p, "feature"), "dirty-tracking") &&
                    streq(get_str(p, "device"), EDU_ROOT),
            "its attach to that address space is NotSupported naming %s (%s, device '%s')",
            EDU_ROOT, error ?: "success", get_str(p, "device"));
        (void)call(c, "DestroyAddressSpace", params("ioasId", u64(ioas), NULL), NULL, 0, &rep,
                   &error);
        tap(!error, "DestroyAddressSpace of it%s%s", error ? ": " : "", error ?: "");
}

/* ---- DMA through a brokered address space ---- */

static void test_dma(VarlinkClient *c) {
        _cleanup_(varlink_reply_clear) VarlinkReply rep = VARLINK_REPLY_INIT;
        _cleanup_close_ int dev = open_cdev(EDU_ROOT), mfd = -EBADF;
        struct vfio_region_info bar0 = {};
        volatile uint8_t *bar = MAP_FAILED;
        uint8_t *mem = MAP_FAILED, *src, *dst;
        uint64_t ioas, iova, faults_before;
        const size_t memsize = 2 * PAGE;
        json_object *p, *caps = NULL;
        const char *error;
        int64_t devid;
        bool untouched = true;

        tap(dev >= 0, "%s: open its VFIO cdev", EDU_ROOT);
        if (dev < 0)
                return;
        devid = attach_device(c, dev, &rep, &error);
        tap(!error, "AttachDevice with %s's cdev fd%s%s", EDU_ROOT, error ? ": " : "",
            error ?: "");
        if (error)
                return;
        tap(streq(get_str(rep.parameters, "bdf"), EDU_ROOT), "AttachDevice names it %s",
            get_str(rep.parameters, "bdf"));
        /* QEMU's IOMMUs have no dirty tracking and edu no PASID: neither may be claimed. */
        json_object_object_get_ex(rep.parameters, "capabilities", &caps);
        tap(caps && json_object_array_length(caps) == 0 && get_u64(rep.parameters, "pasidBits") == 0,
            "no dirty tracking or PASID is claimed for it (capabilities %s, pasidBits %" PRIu64 ")",
            caps ? json_object_to_json_string(caps) : "?", get_u64(rep.parameters, "pasidBits"));
        test_features(c, devid);

        p = call(c, "CreateAddressSpace", NULL, NULL, 0, &rep, &error);
        ioas = get_u64(p, "ioasId");
        tap(!error, "CreateAddressSpace%s%s", error ? ": " : "", error ?: "");
        if (error)
                return;
        p = call(c, "AttachToAddressSpace",
                 params("deviceId", u64((uint64_t)devid), "ioasId", u64(ioas), NULL), NULL, 0,
                 &rep, &error);
        tap(!error, "AttachToAddressSpace (hwpt %" PRIu64 ")%s%s", get_u64(p, "hwptId"),
            error ? ": " : "", error ?: "");
        if (error)
                return;
        p = call(c, "BindPASID", params("deviceId", u64((uint64_t)devid), "ioasId", u64(ioas), NULL),
                 NULL, 0, &rep, &error);
        tap(error && streq(error, "org.iommud.Broker.NotSupported"),
            "BindPASID is NotSupported (feature '%s')", get_str(p, "feature"));

        mfd = memfd_create("iommud-guest-broker", MFD_CLOEXEC);
        if (mfd < 0 || ftruncate(mfd, (off_t)memsize) < 0) {
                tap(false, "memfd: %m");
                return;
        }
        mem = mmap(NULL, memsize, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
        if (mem == MAP_FAILED) {
                tap(false, "mmap the memfd: %m");
                return;
        }
        src = mem;
        dst = mem + PAGE;
        for (size_t i = 0; i < PAGE; i++)
                src[i] = (uint8_t)(i * 13 + 5);
        memset(dst, 0x5a, PAGE);

        p = call(c, "Map",
                 params("ioasId", u64(ioas), "memoryFd", json_object_new_int(0), "offset", u64(0),
                        "length", u64(memsize), "iova", u64(TEST_IOVA), "readable",
                        json_object_new_boolean(true), "writeable", json_object_new_boolean(true),
                        NULL),
                 &mfd, 1, &rep, &error);
        iova = get_u64(p, "iova");
        tap(!error && iova == TEST_IOVA, "Map of a memfd at IOVA %#llx%s%s", TEST_IOVA,
            error ? ": " : "", error ?: "");
        if (error)
                goto out;
        /* 6.12 has no IOMMU_IOAS_MAP_FILE: the daemon must have mmapped the memfd itself. */
        tap(daemon_memfd_maps() >= 1, "without IOMMU_IOAS_MAP_FILE the map went through the "
            "daemon's mmap + IOMMU_IOAS_MAP fallback (%u mapping(s) of the memfd in iommud)",
            daemon_memfd_maps());

        if (vfio_region_info(dev, VFIO_PCI_BAR0_REGION_INDEX, &bar0) < 0 ||
            !(bar0.flags & VFIO_REGION_INFO_FLAG_MMAP)) {
                tap(false, "BAR0 region info on the client's own fd: %m");
                goto out;
        }
        bar = mmap(NULL, bar0.size, PROT_READ | PROT_WRITE, MAP_SHARED, dev, (off_t)bar0.offset);
        tap(bar != MAP_FAILED, "mmap BAR0 of the fd iommud bound");
        if (bar == MAP_FAILED)
                goto out;
        tap((*(volatile uint32_t *)(bar + EDU_REG_IDENT) & 0xff) == 0xed,
            "edu identification register reads through the BAR");
        if (vfio_enable_bus_master(dev) < 0) {
                tap(false, "enable bus mastering: %m");
                goto out;
        }
        tap(edu_dma(bar, TEST_IOVA, EDU_BUFFER, EDU_DMA_LEN, false) == 0,
            "DMA memfd -> edu through the brokered address space completes");
        tap(edu_dma(bar, EDU_BUFFER, TEST_IOVA + PAGE, EDU_DMA_LEN, true) == 0,
            "DMA edu -> memfd completes");
        tap(memcmp(src, dst, EDU_DMA_LEN) == 0 && dst[EDU_DMA_LEN] == 0x5a,
            "%d bytes made the round trip through the brokered mapping, and no more",
            EDU_DMA_LEN);

        p = call(c, "Unmap", params("ioasId", u64(ioas), "iova", u64(TEST_IOVA), "length",
                                    u64(memsize), NULL),
                 NULL, 0, &rep, &error);
        tap(!error && get_u64(p, "unmapped") == memsize, "Unmap reports %" PRIu64 " bytes%s%s",
            get_u64(p, "unmapped"), error ? ": " : "", error ?: "");
        tap(daemon_memfd_maps() == 0, "Unmap released the daemon's mmap of the memfd");

        faults_before = count_faults();
        memset(dst, 0xa5, PAGE);
        tap(edu_dma(bar, EDU_BUFFER, TEST_IOVA + PAGE, EDU_DMA_LEN, true) == 0,
            "DMA edu -> the unmapped IOVA completes on the device side");
        for (size_t i = 0; i < PAGE; i++)
                untouched = untouched && dst[i] == 0xa5;
        tap(untouched, "after Unmap the same DMA did not reach memory");
        /* The fault is reported asynchronously (a DMAR fault interrupt, AMD's event log). */
        if (streq(getenv("IOMMUD_KVM_MODE") ?: "", "amd"))
                skip("the kernel logged the blocked DMA as an IOMMU fault # SKIP QEMU 7.2 "
                     "amd-iommu blocks the access but queues no IO_PAGE_FAULT event");
        else {
                for (unsigned i = 0; i < 50 && count_faults() <= faults_before; i++)
                        sleep_ms(20);
                tap(count_faults() > faults_before, "the kernel logged the blocked DMA as an "
                    "IOMMU fault (%" PRIu64 " -> %u)", faults_before, count_faults());
        }
out:
        if (bar != MAP_FAILED)
                munmap((void *)bar, bar0.size);
        if (mem != MAP_FAILED)
                munmap(mem, memsize);
}

/* ---- sessions ---- */

static void test_contention(void) {
        _cleanup_(varlink_client_freep) VarlinkClient *a = NULL, *b = NULL;
        _cleanup_(varlink_reply_clear) VarlinkReply rep = VARLINK_REPLY_INIT;
        _cleanup_close_ int fa = open_cdev(EDU_ROOT), fb = open_cdev(EDU_ROOT);
        const char *error;

        if (varlink_client_connect(&a, SOCKET_PATH) < 0 ||
            varlink_client_connect(&b, SOCKET_PATH) < 0 || fa < 0 || fb < 0) {
                tap(false, "two sessions and two opens of %s", EDU_ROOT);
                return;
        }
        (void)attach_device_released(a, fa, &rep, &error);
        tap(!error, "session A attaches %s%s%s", EDU_ROOT, error ? ": " : "", error ?: "");
        (void)attach_device(b, fb, &rep, &error);
        tap(error && streq(error, "org.iommud.Broker.DeviceBusy"),
            "session B is refused %s with DeviceBusy (%s; held by '%s')", EDU_ROOT,
            error ?: "no error", get_str(rep.parameters, "heldBy"));
}

static void test_killed_client(void) {
        _cleanup_(varlink_reply_clear) VarlinkReply rep = VARLINK_REPLY_INIT;
        _cleanup_(varlink_client_freep) VarlinkClient *c = NULL;
        _cleanup_close_ int fd = -EBADF;
        const char *error = "not tried";
        int pipefd[2], status;
        pid_t child;
        char ok = 0;

        if (pipe2(pipefd, O_CLOEXEC) < 0)
                return tap(false, "pipe: %m");
        child = fork();
        if (child == 0) {
                _cleanup_(varlink_reply_clear) VarlinkReply crep = VARLINK_REPLY_INIT;
                VarlinkClient *cc = NULL;
                int cfd = open_cdev(EDU_ROOT), mfd = memfd_create("iommud-guest-broker", 0);
                const char *e1 = NULL, *e2 = NULL, *e3 = NULL;
                int64_t id;
                uint64_t ioas;
                json_object *p;

                if (cfd < 0 || mfd < 0 || ftruncate(mfd, 16 * PAGE) < 0 ||
                    varlink_client_connect(&cc, SOCKET_PATH) < 0)
                        _exit(1);
                id = attach_device_released(cc, cfd, &crep, &e1);
                p = call(cc, "CreateAddressSpace", NULL, NULL, 0, &crep, &e2);
                ioas = get_u64(p, "ioasId");
                (void)call(cc, "AttachToAddressSpace",
                           params("deviceId", u64((uint64_t)id), "ioasId", u64(ioas), NULL), NULL,
                           0, &crep, &e3);
                (void)call(cc, "Map",
                           params("ioasId", u64(ioas), "memoryFd", json_object_new_int(0),
                                  "offset", u64(0), "length", u64(16 * PAGE), "readable",
                                  json_object_new_boolean(true), "writeable",
                                  json_object_new_boolean(true), NULL),
                           &mfd, 1, &crep, &e1);
                ok = (!e1 && !e2 && !e3) ? 'y' : 'n';
                (void)write(pipefd[1], &ok, 1);
                pause();
                _exit(0);
        }
        close(pipefd[1]);
        if (child < 0 || read(pipefd[0], &ok, 1) != 1)
                ok = 0;
        close(pipefd[0]);
        tap(ok == 'y', "a client attaches %s, creates an address space and maps a memfd",
            EDU_ROOT);
        if (child > 0) {
                (void)kill(child, SIGKILL);
                (void)waitpid(child, &status, 0);
        }

        /* The daemon notices the hangup from its event loop: give it a moment. */
        for (unsigned i = 0; i < 100; i++) {
                varlink_reply_clear(&rep);
                c = varlink_client_free(c);
                fd = safe_close(fd);
                fd = open_cdev(EDU_ROOT);
                if (fd < 0 || varlink_client_connect(&c, SOCKET_PATH) < 0)
                        break;
                (void)attach_device(c, fd, &rep, &error);
                if (!error)
                        break;
                sleep_ms(50);
        }
        tap(!error, "after the client was killed another session binds %s again%s%s", EDU_ROOT,
            error ? ": " : "", error ?: "");
        tap(daemon_memfd_maps() == 0, "and the killed client's memfd is no longer mapped in iommud");
}

/* ---- the bridge group ---- */

static void test_bridge_group(void) {
        _cleanup_(varlink_reply_clear) VarlinkReply rep = VARLINK_REPLY_INIT;
        _cleanup_(varlink_client_freep) VarlinkClient *c = NULL;
        _cleanup_close_ int fd = -EBADF, iommufd = -EBADF, kfd = -EBADF;
        struct iommud_vfio_device_bind_iommufd bind = { .argsz = sizeof(bind) };
        const char *error;
        json_object *p;
        int r;

        if (access("/sys/bus/pci/drivers/pci-pf-stub", F_OK) < 0) {
                skip("bridge group policy # SKIP the kernel has no pci-pf-stub host driver");
                return;
        }
        daemon_stop();
        r = set_driver(BRIDGE_SIBLING, "pci-pf-stub");
        tap(r >= 0, "%s moved to the host driver pci-pf-stub", BRIDGE_SIBLING);
        if (r < 0)
                return;
        r = daemon_start();
        tap(r >= 0, "iommud restarted on the changed topology");
        if (r < 0)
                return;

        fd = open_cdev(BRIDGE_EDU);
        if (fd < 0 || varlink_client_connect(&c, SOCKET_PATH) < 0)
                return tap(false, "connect and open %s", BRIDGE_EDU);
        (void)attach_device(c, fd, &rep, &error);
        tap(error && streq(error, "org.iommud.Broker.PolicyDenied") &&
                    streq(get_str(rep.parameters, "step"), "group") &&
                    strstr(get_str(rep.parameters, "reason"), BRIDGE_SIBLING),
            "iommud refuses %s at the group step, naming %s: %s", BRIDGE_EDU, BRIDGE_SIBLING,
            get_str(rep.parameters, "reason"));

        /* What the kernel would have said: a sibling on a host driver makes the group unsafe. */
        iommufd = open("/dev/iommu", O_RDWR | O_CLOEXEC);
        kfd = open_cdev(BRIDGE_EDU);
        bind.iommufd = iommufd;
        r = (iommufd < 0 || kfd < 0) ? -EBADF :
            ioctl(kfd, IOMMUD_VFIO_DEVICE_BIND_IOMMUFD, &bind) < 0 ? -errno : 0;
        tap(r == -EPERM, "the kernel refuses the same bind too (%s)", strerror(-r));
        kfd = safe_close(kfd);
        iommufd = safe_close(iommufd);

        c = varlink_client_free(c);
        fd = safe_close(fd);
        daemon_stop();
        r = set_driver(BRIDGE_SIBLING, "vfio-pci");
        tap(r >= 0, "%s back on vfio-pci", BRIDGE_SIBLING);
        r = daemon_start();
        if (r < 0)
                return tap(false, "iommud restarted: %s", strerror(-r));
        fd = open_cdev(BRIDGE_EDU);
        if (fd < 0 || varlink_client_connect(&c, SOCKET_PATH) < 0)
                return tap(false, "connect and open %s", BRIDGE_EDU);
        p = call(c, "ExplainDevice", params("device", json_object_new_string(BRIDGE_EDU), NULL),
                 NULL, 0, &rep, &error);
        tap(!error && json_object_get_boolean(json_object_object_get(p, "allowed")),
            "with both members on vfio-pci ExplainDevice says %s is allowed", BRIDGE_EDU);
        (void)attach_device(c, fd, &rep, &error);
        tap(!error, "and AttachDevice takes it%s%s", error ? ": " : "", error ?: "");
}

/* ---- figures ---- */

/*
 * The transport's floor: a request with one fd over a Unix socket to another process and a
 * reply back, the same scheduling and SCM_RIGHTS work a brokered call has, without iommud.
 */
static uint64_t pingpong_ns(int fd, unsigned n) {
        int sv[2];
        pid_t child;
        uint64_t t0, t;
        char buf[256] = "{\"method\":\"org.iommud.Broker.Map\"}";

        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
                return 0;
        child = fork();
        if (child == 0) {
                close(sv[0]);
                for (;;) {
                        char cbuf[CMSG_SPACE(sizeof(int))], b[256];
                        struct iovec iov = { b, sizeof(b) };
                        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
                                             .msg_control = cbuf, .msg_controllen = sizeof(cbuf) };
                        ssize_t k = recvmsg(sv[1], &mh, MSG_CMSG_CLOEXEC);
                        struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);

                        if (k <= 0)
                                _exit(0);
                        if (cm && cm->cmsg_type == SCM_RIGHTS) {
                                int got;

                                memcpy(&got, CMSG_DATA(cm), sizeof(int));
                                close(got);
                        }
                        if (write(sv[1], b, (size_t)k) != k)
                                _exit(1);
                }
        }
        close(sv[1]);
        t0 = now_ns();
        for (unsigned i = 0; i < n; i++) {
                char cbuf[CMSG_SPACE(sizeof(int))] = {};
                struct iovec iov = { buf, 200 };
                struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
                                     .msg_controllen = sizeof(cbuf) };
                struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);

                cm->cmsg_level = SOL_SOCKET;
                cm->cmsg_type = SCM_RIGHTS;
                cm->cmsg_len = CMSG_LEN(sizeof(int));
                memcpy(CMSG_DATA(cm), &fd, sizeof(int));
                if (sendmsg(sv[0], &mh, 0) != 200 || read(sv[0], buf, 200) != 200)
                        break;
        }
        t = now_ns() - t0;
        close(sv[0]);
        (void)waitpid(child, NULL, 0);
        return t;
}

/*
 * BENCH lines (bench/bench-report.h) for tools/bench: figures, not verdicts.  Under QEMU's TCG
 * every instruction is emulated, both sides are inflated, and only the ratios carry over.
 */
static void bench_figures(uint64_t broker_ns, uint64_t mapped_ns, uint64_t fresh_ns,
                          uint64_t direct_ns, uint64_t pingpong, uint64_t query_ns, unsigned n) {
        const char *mode = getenv("IOMMUD_KVM_MODE") ?: "unknown";
        char name[96];

        printf("# figures: %u round trips each, %s IOMMU under TCG (compare ratios only)\n", n,
               mode);
        /* Brokered Map+Unmap of 64 KiB (Varlink, SCM_RIGHTS, the mmap fallback, the ioctls)
         * against the same two ioctls made directly in this process. */
        snprintf(name, sizeof(name), "kernel-vm-%s.map-unmap-rtt", mode);
        bench_report(name, (double)broker_ns / n / 1000.0, "us", (double)direct_ns / n / 1000.0,
                     BENCH_NONE, 1, 1);
        /* ... and against the direct ioctls plus the transport's floor: what iommud adds.
         * The same memfd every time, so the daemon's cached mapping of it serves each Map. */
        snprintf(name, sizeof(name), "kernel-vm-%s.map-unmap-rtt-over-floor", mode);
        bench_report(name, (double)broker_ns / n / 1000.0, "us",
                     (double)(direct_ns + pingpong) / n / 1000.0, 1.5, 1, 1);
        /* The memfd stays mapped by another area all along (a VMM's guest RAM), the calls are
         * written as text like the floor's: the steady state of a VMM's DMA maps. */
        snprintf(name, sizeof(name), "kernel-vm-%s.map-unmap-rtt-mapped-over-floor", mode);
        bench_report(name, (double)mapped_ns / n / 1000.0, "us",
                     (double)(direct_ns + pingpong) / n / 1000.0, 1.5, 1, 1);
        /* A new memfd for every Map: the daemon maps each one and the kernel faults it in
         * through that mapping, what every Map cost before the cache. */
        snprintf(name, sizeof(name), "kernel-vm-%s.map-unmap-rtt-new-memfd-over-floor", mode);
        bench_report(name, (double)fresh_ns / n / 1000.0, "us",
                     (double)(direct_ns + pingpong) / n / 1000.0, BENCH_NONE, 1, 1);
        /* Two brokered calls that map nothing (GetIOVARanges) against two bare ping-pongs. */
        snprintf(name, sizeof(name), "kernel-vm-%s.dispatch-pair", mode);
        bench_report(name, (double)query_ns / n / 1000.0, "us", (double)pingpong / n / 1000.0,
                     BENCH_NONE, 1, 1);
}

/*
 * One call written as text with up to one fd, and its reply read up to its NUL: the client
 * does what the floor's client does and no JSON work, so that the time over the floor is
 * iommud's.  0, -EPROTO for an error reply, or another negative errno.
 */
static int raw_call(int sock, const char *text, int fd) {
        char cbuf[CMSG_SPACE(sizeof(int))] = {}, reply[512];
        struct iovec iov = { (void *)text, strlen(text) + 1 };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
        size_t got = 0;

        if (fd >= 0) {
                struct cmsghdr *cm;

                mh.msg_control = cbuf;
                mh.msg_controllen = sizeof(cbuf);
                cm = CMSG_FIRSTHDR(&mh);
                cm->cmsg_level = SOL_SOCKET;
                cm->cmsg_type = SCM_RIGHTS;
                cm->cmsg_len = CMSG_LEN(sizeof(int));
                memcpy(CMSG_DATA(cm), &fd, sizeof(int));
        }
        if (sendmsg(sock, &mh, MSG_NOSIGNAL) != (ssize_t)iov.iov_len)
                return -errno;
        while (!memchr(reply, '\0', got)) {
                ssize_t k = got < sizeof(reply) ? read(sock, reply + got, sizeof(reply) - got) : -1;

                if (k <= 0)
                        return k < 0 ? -errno : -EIO;
                got += (size_t)k;
        }
        return strneq(reply, "{\"error\"", 8) ? -EPROTO : 0;
}

/*
 * Brokered Map+Unmap of len bytes of mfd at TEST_IOVA while another area keeps the same
 * bytes mapped at RAM_IOVA, so that the daemon's mapping of the memfd outlives each Unmap as
 * a VMM's guest RAM keeps it: the nanoseconds they took, 0 on a failure.
 */
static uint64_t brokered_mapped_ns(VarlinkClient *c, uint64_t ioas, int mfd, size_t len,
                                   unsigned n) {
        _cleanup_(varlink_reply_clear) VarlinkReply rep = VARLINK_REPLY_INIT;
        int sock = varlink_client_get_fd(c), r = 0;
        const char *error = NULL;
        char map[256], unmap[256];
        uint64_t t0, t;

        (void)map_at(c, ioas, mfd, 0, len, RAM_IOVA, &rep, &error);
        if (error)
                return tap(false, "bench: the long-lived Map: %s", error), 0;
        snprintf(map, sizeof(map),
                 "{\"method\":\"org.iommud.Broker.Map\",\"parameters\":{\"ioasId\":%" PRIu64
                 ",\"memoryFd\":0,\"offset\":0,\"length\":%zu,\"iova\":%llu,\"readable\":true,"
                 "\"writeable\":true}}", ioas, len, TEST_IOVA);
        snprintf(unmap, sizeof(unmap),
                 "{\"method\":\"org.iommud.Broker.Unmap\",\"parameters\":{\"ioasId\":%" PRIu64
                 ",\"iova\":%llu,\"length\":%zu}}", ioas, TEST_IOVA, len);
        t0 = now_ns();
        for (unsigned i = 0; i < n && r == 0; i++) {
                r = raw_call(sock, map, mfd);
                if (r == 0)
                        r = raw_call(sock, unmap, -EBADF);
        }
        t = now_ns() - t0;
        (void)call(c, "Unmap", params("ioasId", u64(ioas), "iova", u64(RAM_IOVA), "length",
                                      u64(len), NULL), NULL, 0, &rep, &error);
        if (r < 0 || error)
                return tap(false, "bench: Map/Unmap beside a long-lived area: %s",
                           r < 0 ? strerror(-r) : error), 0;
        return t;
}

/*
 * Brokered Map+Unmap of len bytes as in bench(), each Map of another memfd of n (their pages
 * allocated beforehand, as the one memfd's are): the nanoseconds they took, 0 on a failure.
 */
static uint64_t brokered_new_memfd_ns(VarlinkClient *c, uint64_t ioas, size_t len, unsigned n) {
        _cleanup_(varlink_reply_clear) VarlinkReply rep = VARLINK_REPLY_INIT;
        _cleanup_free_ int *mfds = calloc(n, sizeof(int));
        const char *error = NULL;
        uint64_t t0, t = 0;
        unsigned made = 0;

        if (!mfds)
                return 0;
        for (; made < n; made++) {
                mfds[made] = memfd_create("iommud-guest-bench-new", MFD_CLOEXEC);
                if (mfds[made] < 0 || fallocate(mfds[made], 0, 0, (off_t)len) < 0)
                        break;
        }
        if (made == n) {
                t0 = now_ns();
                for (unsigned i = 0; i < n && !error; i++) {
                        (void)map_at(c, ioas, mfds[i], 0, len, TEST_IOVA, &rep, &error);
                        if (!error)
                                (void)call(c, "Unmap",
                                           params("ioasId", u64(ioas), "iova", u64(TEST_IOVA),
                                                  "length", u64(len), NULL),
                                           NULL, 0, &rep, &error);
                }
                t = now_ns() - t0;
        }
        if (made < n || error)
                tap(false, "bench: brokered Map/Unmap of new memfds: %s",
                    error ?: strerror(errno));
        for (unsigned i = 0; i < made + (made < n); i++)
                safe_close(mfds[i]);
        return made == n && !error ? t : 0;
}

/*
 * The same work as the brokered Map+Unmap, directly: the bridge edu on this process's own
 * iommufd, n round trips of len bytes of mfd.  The nanoseconds they took, 0 on a failure.
 */
static uint64_t direct_map_unmap_ns(int mfd, size_t len, unsigned n) {
        _cleanup_close_ int iommufd = open("/dev/iommu", O_RDWR | O_CLOEXEC), ddev = -EBADF;
        struct iommud_vfio_device_bind_iommufd bind = { .argsz = sizeof(bind), .iommufd = iommufd };
        struct iommud_ioas_alloc alloc = { .size = sizeof(alloc) };
        struct iommud_vfio_device_attach_iommufd_pt attach = { .argsz = sizeof(attach) };
        uint64_t t0, t;
        bool ok = true;
        void *va;

        ddev = open_cdev(BRIDGE_EDU);
        if (iommufd < 0 || ddev < 0 || ioctl(ddev, IOMMUD_VFIO_DEVICE_BIND_IOMMUFD, &bind) < 0 ||
            ioctl(iommufd, IOMMUD_IOMMU_IOAS_ALLOC, &alloc) < 0)
                return tap(false, "bench: direct setup: %m"), 0;
        attach.pt_id = alloc.out_ioas_id;
        if (ioctl(ddev, IOMMUD_VFIO_DEVICE_ATTACH_IOMMUFD_PT, &attach) < 0)
                return tap(false, "bench: direct attach: %m"), 0;
        va = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
        if (va == MAP_FAILED)
                return tap(false, "bench: mmap: %m"), 0;
        t0 = now_ns();
        for (unsigned i = 0; i < n && ok; i++) {
                struct iommud_ioas_map m = {
                        .size = sizeof(m),
                        .flags = IOMMUD_IOMMU_IOAS_MAP_FIXED_IOVA |
                                 IOMMUD_IOMMU_IOAS_MAP_READABLE | IOMMUD_IOMMU_IOAS_MAP_WRITEABLE,
                        .ioas_id = alloc.out_ioas_id,
                        .user_va = (uintptr_t)va,
                        .length = len,
                        .iova = TEST_IOVA,
                };
                struct iommud_ioas_unmap u = {
                        .size = sizeof(u), .ioas_id = alloc.out_ioas_id, .iova = TEST_IOVA,
                        .length = len,
                };

                ok = ioctl(iommufd, IOMMUD_IOMMU_IOAS_MAP, &m) == 0 &&
                     ioctl(iommufd, IOMMUD_IOMMU_IOAS_UNMAP, &u) == 0;
        }
        t = now_ns() - t0;
        if (!ok)
                tap(false, "bench: direct map/unmap: %m");
        munmap(va, len);
        return ok ? t : 0;
}

static void bench(VarlinkClient *c) {
        _cleanup_(varlink_reply_clear) VarlinkReply rep = VARLINK_REPLY_INIT;
        _cleanup_close_ int dev = open_cdev(EDU_ROOT), mfd = -EBADF;
        const size_t len = 16 * PAGE;
        const unsigned n = 200;
        uint64_t ioas, t0, broker_ns, mapped_ns, fresh_ns, direct_ns, pingpong, query_ns;
        const char *error;
        json_object *p;
        int64_t devid;

        mfd = memfd_create("iommud-guest-bench", MFD_CLOEXEC);
        if (dev < 0 || mfd < 0 || fallocate(mfd, 0, 0, (off_t)len) < 0)
                return tap(false, "bench setup");
        devid = attach_device_released(c, dev, &rep, &error);
        if (error)
                return tap(false, "bench: AttachDevice: %s", error);
        p = call(c, "CreateAddressSpace", NULL, NULL, 0, &rep, &error);
        ioas = get_u64(p, "ioasId");
        (void)call(c, "AttachToAddressSpace",
                   params("deviceId", u64((uint64_t)devid), "ioasId", u64(ioas), NULL), NULL, 0,
                   &rep, &error);
        if (error)
                return tap(false, "bench: AttachToAddressSpace: %s", error);

        t0 = now_ns();
        for (unsigned i = 0; i < n && !error; i++) {
                (void)map_at(c, ioas, mfd, 0, len, TEST_IOVA, &rep, &error);
                if (!error)
                        (void)call(c, "Unmap", params("ioasId", u64(ioas), "iova", u64(TEST_IOVA),
                                                      "length", u64(len), NULL),
                                   NULL, 0, &rep, &error);
        }
        broker_ns = now_ns() - t0;
        if (error)
                return tap(false, "bench: brokered Map/Unmap: %s", error);
        mapped_ns = brokered_mapped_ns(c, ioas, mfd, len, n);
        if (mapped_ns == 0)
                return;
        fresh_ns = brokered_new_memfd_ns(c, ioas, len, n);
        if (fresh_ns == 0)
                return;

        /* Two calls that reach the backend but pin and map nothing: the dispatch cost. */
        t0 = now_ns();
        for (unsigned i = 0; i < 2 * n && !error; i++)
                (void)call(c, "GetIOVARanges", params("ioasId", u64(ioas), NULL), NULL, 0, &rep,
                           &error);
        query_ns = now_ns() - t0;
        if (error)
                return tap(false, "bench: GetIOVARanges: %s", error);

        direct_ns = direct_map_unmap_ns(mfd, len, n);
        if (direct_ns == 0)
                return;
        /* Two messages per brokered round trip (Map, Unmap): two ping-pongs. */
        pingpong = 2 * pingpong_ns(mfd, n);
        bench_figures(broker_ns, mapped_ns, fresh_ns, direct_ns, pingpong, query_ns, n);
}

int main(int argc, char **argv) {
        _cleanup_(varlink_client_freep) VarlinkClient *c = NULL;
        int r;

        if (argc > 1)
                iommud_path = argv[1];
        iommud_backend = "iommufd";
        if (access("/dev/iommu", F_OK) < 0) {
                skip("iommud on the kernel backend # SKIP no /dev/iommu");
                return 77;
        }
        r = daemon_start();
        tap(r >= 0, "iommud starts on the kernel backend (%s)", r < 0 ? strerror(-r) : "ready");
        if (r < 0)
                return EXIT_FAILURE;

        if (varlink_client_connect(&c, SOCKET_PATH) < 0) {
                tap(false, "connect to %s", SOCKET_PATH);
                daemon_stop();
                return EXIT_FAILURE;
        }
        test_topology(c);
        test_dma(c);
        c = varlink_client_free(c);

        test_contention();
        test_killed_client();

        if (varlink_client_connect(&c, SOCKET_PATH) >= 0)
                bench(c);
        c = varlink_client_free(c);

        test_bridge_group();

        r = daemon_stop();
        tap(r == 0, "iommud exits cleanly on SIGTERM (status %d)", r);
        return tap_failed > 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
