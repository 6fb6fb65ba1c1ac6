/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Guest test: what iommud takes back from a client that keeps its own VFIO device fd, as a VMM
 * does (it needs the fd for BARs and interrupts).  The client hands iommud its cdev fd; iommud
 * binds a dup of it, the same open file, so closing iommud's copy neither detaches nor unbinds
 * the device.  Each scenario makes edu DMA through a brokered mapping first, then checks on the
 * real kernel that the same DMA no longer reaches memory:
 *
 *   - after DetachDevice (Intel: DMAR fault logged; AMD: memory unchanged), and
 *     DestroyAddressSpace then succeeds;
 *   - after the client's connection closed while the process lives on with its fd: the pinned
 *     memory is released (MemFree recovers), and no object id of the ended session takes the
 *     kept fd any more;
 *   - after a policy reload took the device's grant away;
 *   - while the first client still holds its bound file, another client's AttachDevice gets
 *     DeviceBusy naming the holder's pid; once the holder lets go, the next client attaches
 *     at once.
 *
 * What a client can still do with its kept fd, and what it cannot reach (docs/SECURITY.md):
 * it attaches its device to its own session's address space after DetachDevice, iommud
 * reports that address space in use; an id of another session's address space is ENOENT and
 * that session's memory stays out of reach.
 *
 * Prints unnumbered TAP lines; the kernel-vm init numbers them.
 *
 *   guest-teardown [IOMMUD]      default: /usr/sbin/iommud
 */

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/vfio.h>

#include "edu.h"
#include "guest-broker-util.h"
#include "iommufd-abi.h"
#include "macros.h"

#define EDU_ROOT "0000:00:03.0"
#define BRIDGE_EDU "0000:01:02.0"
#define PAGE 4096u
#define IOVA_A 0x300000ull  /* edu masks DMA addresses to 28 bits */
#define IOVA_B 0x800000ull  /* another session's mapping */
#define IOVA_BIG 0x1000000ull
#define BIG_SIZE (128u << 20) /* pinned through the daemon, to see the pins go */
#define ERR_BUSY "org.iommud.Broker.DeviceBusy"

static bool is_amd(void) {
        return streq(getenv("IOMMUD_KVM_MODE") ?: "", "amd");
}

/* ---- one client: a connection, its own cdev fd, edu's BAR and two pages of memory ---- */

typedef struct Client {
        VarlinkClient *vc;
        VarlinkReply rep;
        int cdev;
        int64_t dev_id;
        uint64_t ioas, hwpt, iova;
        int mfd;
        uint8_t *mem;            /* page 0: what edu reads; page 1: where it writes */
        volatile uint8_t *bar;
        size_t bar_size;
} Client;

#define CLIENT_INIT { .rep = VARLINK_REPLY_INIT, .cdev = -EBADF, .mfd = -EBADF, \
                      .mem = MAP_FAILED, .bar = MAP_FAILED }

static void client_close_device(Client *c) {
        /* A BAR mapping holds the file too. */
        if (c->bar != MAP_FAILED)
                (void)munmap((void *)c->bar, c->bar_size);
        c->bar = MAP_FAILED;
        c->cdev = safe_close(c->cdev);
}

static void client_done(Client *c) {
        client_close_device(c);
        if (c->mem != MAP_FAILED)
                (void)munmap(c->mem, 2 * PAGE);
        c->mem = MAP_FAILED;
        c->mfd = safe_close(c->mfd);
        varlink_reply_clear(&c->rep);
        c->vc = varlink_client_free(c->vc);
}

/* Drops the connection (the session ends) and nothing else. */
static void client_disconnect(Client *c) {
        varlink_reply_clear(&c->rep);
        c->vc = varlink_client_free(c->vc);
}

static const char *client_call(Client *c, const char *method, json_object *p, const int *fds,
                               size_t n_fds) {
        const char *error;

        (void)call(c->vc, method, p, fds, n_fds, &c->rep, &error);
        return error;
}

static const char *client_map(Client *c, int mfd, uint64_t length, uint64_t iova) {
        return client_call(c, "Map",
                           params("ioasId", u64(c->ioas), "memoryFd", json_object_new_int(0),
                                  "offset", u64(0), "length", u64(length), "iova", u64(iova),
                                  "readable", json_object_new_boolean(true), "writeable",
                                  json_object_new_boolean(true), NULL),
                           &mfd, 1);
}

/* Attach, address space, page table: everything before memory.  NULL or the failing step. */
static const char *client_attach(Client *c, const char *bdf) {
        const char *e;

        c->cdev = open_cdev(bdf);
        if (c->cdev < 0 || varlink_client_connect(&c->vc, SOCKET_PATH) < 0)
                return "open the cdev and connect";
        c->dev_id = attach_device_released(c->vc, c->cdev, &c->rep, &e);
        if (e)
                return e;
        e = client_call(c, "CreateAddressSpace", NULL, NULL, 0);
        if (e)
                return e;
        c->ioas = get_u64(c->rep.parameters, "ioasId");
        e = client_call(c, "AttachToAddressSpace",
                        params("deviceId", u64((uint64_t)c->dev_id), "ioasId", u64(c->ioas), NULL),
                        NULL, 0);
        c->hwpt = get_u64(c->rep.parameters, "hwptId");
        return e;
}

/* The client's BAR0 through its own fd, with bus mastering on. */
static const char *client_map_bar(Client *c) {
        struct vfio_region_info bar0 = {};

        if (vfio_region_info(c->cdev, VFIO_PCI_BAR0_REGION_INDEX, &bar0) < 0 ||
            !(bar0.flags & VFIO_REGION_INFO_FLAG_MMAP))
                return "BAR0 region info";
        c->bar = mmap(NULL, bar0.size, PROT_READ | PROT_WRITE, MAP_SHARED, c->cdev,
                      (off_t)bar0.offset);
        if (c->bar == MAP_FAILED)
                return "mmap BAR0";
        c->bar_size = bar0.size;
        if (vfio_enable_bus_master(c->cdev) < 0)
                return "bus mastering";
        return NULL;
}

/*
 * A client of bdf with two pages of a memfd mapped at iova and edu's buffer loaded from the
 * first of them (a DMA through the mapping).  Says what failed in a TAP line.
 */
static bool client_setup(Client *c, const char *bdf, uint64_t iova) {
        const char *e;

        c->iova = iova;
        e = client_attach(c, bdf);
        c->mfd = memfd_create("iommud-guest-teardown", MFD_CLOEXEC);
        if (!e && (c->mfd < 0 || ftruncate(c->mfd, 2 * PAGE) < 0))
                e = "memfd";
        if (!e && (c->mem = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, c->mfd,
                                 0)) == MAP_FAILED)
                e = "mmap the memfd";
        if (!e)
                e = client_map(c, c->mfd, 2 * PAGE, iova);
        if (!e)
                e = client_map_bar(c);
        for (size_t i = 0; !e && i < PAGE; i++)
                c->mem[i] = (uint8_t)(i * 7 + 3);
        if (!e && edu_dma(c->bar, iova, EDU_BUFFER, EDU_DMA_LEN, false) < 0)
                e = "edu DMA from memory timed out";
        if (e)
                tap(false, "a client of %s with a memfd mapped at %#" PRIx64 ": %s", bdf, iova,
                    e);
        return !e;
}

/* Whether an edu DMA to the second page's IOVA lands in the memfd. */
static bool dma_reaches(Client *c) {
        memset(c->mem + PAGE, 0x5a, PAGE);
        if (edu_dma(c->bar, EDU_BUFFER, c->iova + PAGE, EDU_DMA_LEN, true) < 0)
                return true; /* a hung engine proves nothing: count it against the test */
        return memcmp(c->mem, c->mem + PAGE, EDU_DMA_LEN) == 0;
}

/*
 * Faults the Intel IOMMU raised so far: its fault interrupt's count in /proc/interrupts.  The
 * kernel log is no counter here: it rate-limits DMAR fault messages to a few every 5 s.
 */
static uint64_t dmar_fault_irqs(void) {
        char buf[16384], *save = NULL;
        uint64_t n = 0;

        if (read_file("/proc/interrupts", buf, sizeof(buf)) < 0)
                return 0;
        for (char *line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
                char *colon = strchr(line, ':');

                if (!colon || !strstr(line, "dmar"))
                        continue;
                for (char *p = colon + 1, *end; ; p = end) {
                        uint64_t v = strtoull(p, &end, 10);

                        if (end == p)
                                break;
                        n += v;
                }
        }
        return n;
}

/* A DMA that must not land: memory unchanged, and on Intel a DMAR fault. */
static void check_dma_blocked(Client *c, const char *after) {
        uint64_t before = dmar_fault_irqs();
        bool reached = dma_reaches(c), untouched = true;

        for (size_t i = 0; i < PAGE; i++)
                untouched = untouched && c->mem[PAGE + i] == 0x5a;
        tap(!reached && untouched, "after %s, edu DMA through the old IOVA does not reach the "
            "memfd", after);
        if (is_amd()) {
                skip("after %s the IOMMU reports the blocked DMA # SKIP QEMU 7.2 amd-iommu "
                     "queues no IO_PAGE_FAULT event", after);
                return;
        }
        for (unsigned i = 0; i < 50 && dmar_fault_irqs() <= before; i++)
                sleep_ms(20);
        tap(dmar_fault_irqs() > before, "after %s the IOMMU raises a DMAR fault for the blocked "
            "DMA (fault interrupts %" PRIu64 " -> %" PRIu64 ")", after, before, dmar_fault_irqs());
}

/* MemFree of /proc/meminfo in bytes. */
static uint64_t meminfo_free(void) {
        char buf[4096], *p;

        if (read_file("/proc/meminfo", buf, sizeof(buf)) < 0 || !(p = strstr(buf, "MemFree:")))
                return 0;
        return strtoull(p + strlen("MemFree:"), NULL, 10) * 1024;
}

/* ---- another client, in a process of its own ---- */

/* GetTopology's heldBy of device. */
static void held_by(VarlinkClient *vc, const char *device, char *ret, size_t size) {
        _cleanup_(varlink_reply_clear) VarlinkReply rep = VARLINK_REPLY_INIT;
        json_object *p, *devs = NULL;
        const char *e;

        snprintf(ret, size, "(no answer)");
        p = call(vc, "GetTopology", NULL, NULL, 0, &rep, &e);
        if (e || !json_object_object_get_ex(p, "devices", &devs))
                return;
        for (size_t i = 0; i < json_object_array_length(devs); i++) {
                json_object *d = json_object_array_get_idx(devs, i);

                if (streq(get_str(d, "name"), device))
                        snprintf(ret, size, "%s", get_str(d, "heldBy"));
        }
}

typedef struct AttachResult {
        char error[96];          /* "" when AttachDevice succeeded */
        char held_by[128];
        int64_t pid;             /* DeviceBusy's pid, -1 without one */
        char topology_held_by[128]; /* GetTopology's heldBy of the device afterwards */
} AttachResult;

/* AttachDevice of bdf once, from a fresh process with its own open of the cdev. */
static int attach_from_child(const char *bdf, AttachResult *ret) {
        int pipefd[2], status;
        pid_t child;

        *ret = (AttachResult){ .error = "no answer", .pid = -1 };
        if (pipe2(pipefd, O_CLOEXEC) < 0)
                return -errno;
        child = fork();
        if (child < 0)
                return -errno;
        if (child == 0) {
                _cleanup_(varlink_reply_clear) VarlinkReply rep = VARLINK_REPLY_INIT;
                VarlinkClient *vc = NULL;
                AttachResult r = { .pid = -1 };
                int fd = open_cdev(bdf);
                const char *e = "open the cdev and connect";
                json_object *pid;

                if (fd >= 0 && varlink_client_connect(&vc, SOCKET_PATH) >= 0)
                        (void)attach_device(vc, fd, &rep, &e);
                snprintf(r.error, sizeof(r.error), "%s", e ?: "");
                snprintf(r.held_by, sizeof(r.held_by), "%s", get_str(rep.parameters, "heldBy"));
                if (rep.parameters && json_object_object_get_ex(rep.parameters, "pid", &pid))
                        r.pid = json_object_get_int64(pid);
                if (vc)
                        held_by(vc, bdf, r.topology_held_by, sizeof(r.topology_held_by));
                _exit(write(pipefd[1], &r, sizeof(r)) == sizeof(r) ? 0 : 1);
        }
        close(pipefd[1]);
        if (read(pipefd[0], ret, sizeof(*ret)) != sizeof(*ret))
                *ret = (AttachResult){ .error = "the child did not answer", .pid = -1 };
        close(pipefd[0]);
        (void)waitpid(child, &status, 0);
        return 0;
}

/* While the caller holds the bound file: DeviceBusy naming it.  Once it let go: the device. */
static void check_held_then_free(Client *holder, const char *bdf) {
        AttachResult r;

        char pid[32];

        snprintf(pid, sizeof(pid), "pid %d", (int)getpid());
        (void)attach_from_child(bdf, &r);
        tap(streq(r.error, ERR_BUSY) && r.pid == getpid(),
            "another client is refused %s with DeviceBusy naming pid %d (got %s, pid %" PRIi64
            ", heldBy '%s')", bdf, (int)getpid(), r.error[0] ? r.error : "success", r.pid,
            r.held_by);
        tap(strstr(r.topology_held_by, pid), "GetTopology lists %s as held by %s (heldBy '%s')",
            bdf, pid, r.topology_held_by);
        client_close_device(holder);
        (void)attach_from_child(bdf, &r);
        tap(!r.error[0],
            "once the holder closed its fd, the next client attaches %s at once%s%s%s%s", bdf,
            r.error[0] ? ": " : "", r.error, r.held_by[0] ? ", held by " : "", r.held_by);
}

/* How many sessions hold an address space, as org.iommud.Manager.ListSessions says. */
static int sessions_holding(VarlinkClient *vc) {
        _cleanup_(varlink_reply_clear) VarlinkReply rep = VARLINK_REPLY_INIT;
        json_object *sessions, *usage;
        int n = 0;

        if (varlink_client_call(vc, "org.iommud.Manager.ListSessions", NULL, NULL, 0, &rep) < 0 ||
            rep.error || !json_object_object_get_ex(rep.parameters, "sessions", &sessions))
                return -1;
        for (size_t i = 0; i < json_object_array_length(sessions); i++) {
                if (!json_object_object_get_ex(json_object_array_get_idx(sessions, i), "usage",
                                               &usage))
                        continue;
                for (size_t k = 0; k < json_object_array_length(usage); k++) {
                        json_object *u = json_object_array_get_idx(usage, k);

                        if (streq(get_str(u, "resource"), "addressSpaces") &&
                            get_u64(u, "used") > 0)
                                n++;
                }
        }
        return n;
}

/*
 * The daemon ends a closed connection's session from its event loop: wait until no session
 * holds an address space any more (a session leaves the list once its teardown is complete).
 */
static bool wait_session_gone(void) {
        _cleanup_(varlink_client_freep) VarlinkClient *vc = NULL;

        if (varlink_client_connect(&vc, SOCKET_PATH) < 0)
                return false;
        for (unsigned i = 0; i < 500; i++) {
                if (sessions_holding(vc) == 0)
                        return true;
                sleep_ms(20);
        }
        return false;
}

/*
 * What the kept file cannot do by itself: move the device into an iommufd of its own (the
 * kernel keeps a file bound where it is: EINVAL), or make or map anything (a device file
 * knows no iommufd ioctl: only an iommufd does, and the client has none).
 */
static void check_file_alone(Client *c, const char *after) {
        struct iommud_vfio_device_bind_iommufd bind = { .argsz = sizeof(bind) };
        struct iommud_ioas_alloc alloc = { .size = sizeof(alloc) };
        _cleanup_close_ int own = open("/dev/iommu", O_RDWR | O_CLOEXEC);
        int r;

        bind.iommufd = own;
        r = own < 0 ? -EBADF : ioctl(c->cdev, IOMMUD_VFIO_DEVICE_BIND_IOMMUFD, &bind) < 0 ?
                                      -errno : 0;
        tap(r == -EINVAL, "after %s the kept fd cannot be bound to another iommufd (%s)", after,
            r < 0 ? strerror(-r) : "it was");
        r = ioctl(c->cdev, IOMMUD_IOMMU_IOAS_ALLOC, &alloc) < 0 ? -errno : 0;
        tap(r == -ENOTTY, "after %s the kept fd makes no address space (%s)", after,
            r < 0 ? strerror(-r) : "it did");
}

/* ---- the scenarios ---- */

static void test_detach(void) {
        _cleanup_(client_done) Client c = CLIENT_INIT;
        const char *e;

        if (!client_setup(&c, EDU_ROOT, IOVA_A))
                return;
        tap(dma_reaches(&c), "detach: edu DMA through the brokered mapping reaches the memfd");
        e = client_call(&c, "DetachDevice", params("deviceId", u64((uint64_t)c.dev_id), NULL),
                        NULL, 0);
        tap(!e, "DetachDevice while the client keeps its fd%s%s", e ? ": " : "", e ?: "");
        check_dma_blocked(&c, "DetachDevice");
        e = client_call(&c, "DestroyAddressSpace", params("ioasId", u64(c.ioas), NULL), NULL, 0);
        tap(!e, "DestroyAddressSpace after DetachDevice succeeds%s%s", e ? ": " : "", e ?: "");
        check_file_alone(&c, "DetachDevice");
        check_held_then_free(&c, EDU_ROOT);
}

static void test_disconnect(void) {
        _cleanup_(client_done) Client c = CLIENT_INIT;
        _cleanup_close_ int big = memfd_create("iommud-guest-teardown-big", MFD_CLOEXEC);
        uint64_t before, after;
        unsigned n_ok = 0, first_ok = 0;
        const char *e;

        if (!client_setup(&c, EDU_ROOT, IOVA_A))
                return;
        if (big < 0 || ftruncate(big, BIG_SIZE) < 0) {
                tap(false, "disconnect: a %u MiB memfd", BIG_SIZE >> 20);
                return;
        }
        e = client_map(&c, big, BIG_SIZE, IOVA_BIG);
        tap(!e, "disconnect: Map of %u MiB more%s%s", BIG_SIZE >> 20, e ? ": " : "", e ?: "");
        /* From here only the daemon's mapping and the kernel's pins hold those pages. */
        big = safe_close(big);
        before = meminfo_free();
        tap(dma_reaches(&c), "disconnect: edu DMA through the brokered mapping reaches the memfd");
        client_disconnect(&c);
        tap(wait_session_gone(), "the daemon ended the session of the closed connection");
        check_dma_blocked(&c, "the connection closed");
        /* The pages go back as the daemon lets go of the memfd, a moment after the session. */
        for (unsigned i = 0; i < 500; i++) {
                after = meminfo_free();
                if (after > before && after - before >= BIG_SIZE / 2)
                        break;
                sleep_ms(20);
        }
        tap(after > before && after - before >= BIG_SIZE / 2,
            "the %u MiB the session pinned are free again (MemFree %+" PRIi64 " KiB)",
            BIG_SIZE >> 20, (int64_t)(after - before) / 1024);
        /* The kept fd still names the ended session's context: nothing in it may take it. */
        for (uint32_t id = 1; id <= 16; id++) {
                struct iommud_vfio_device_attach_iommufd_pt a = { .argsz = sizeof(a), .pt_id = id };

                if (ioctl(c.cdev, IOMMUD_VFIO_DEVICE_ATTACH_IOMMUFD_PT, &a) == 0 && !n_ok++)
                        first_ok = id;
        }
        tap(n_ok == 0, "no object id 1-16 of the ended session takes the kept fd (%u did, the "
            "first %u)", n_ok, first_ok);
        check_file_alone(&c, "the session's end");
        check_held_then_free(&c, EDU_ROOT);
}

/* The devices row of GetSession's usage. */
static uint64_t session_devices(Client *c) {
        json_object *usage;

        if (client_call(c, "GetSession", NULL, NULL, 0) ||
            !json_object_object_get_ex(c->rep.parameters, "usage", &usage))
                return UINT64_MAX;
        for (size_t i = 0; i < json_object_array_length(usage); i++) {
                json_object *u = json_object_array_get_idx(usage, i);

                if (streq(get_str(u, "resource"), "devices"))
                        return get_u64(u, "used");
        }
        return UINT64_MAX;
}

static int reload_policy(const char *policy) {
        int r = write_file(POLICY_PATH, policy);

        if (r < 0)
                return r;
        return kill(daemon_pid, SIGHUP) < 0 ? -errno : 0;
}

/* Whether the policy's match step passes for device: the reload took effect. */
static bool device_matched(Client *c, const char *device) {
        json_object *steps;

        if (client_call(c, "ExplainDevice", params("device", json_object_new_string(device), NULL),
                        NULL, 0) ||
            !json_object_object_get_ex(c->rep.parameters, "steps", &steps))
                return false;
        for (size_t i = 0; i < json_object_array_length(steps); i++) {
                json_object *s = json_object_array_get_idx(steps, i);

                if (streq(get_str(s, "step"), "match"))
                        return streq(get_str(s, "verdict"), "pass");
        }
        return false;
}

static void test_reload(void) {
        _cleanup_(client_done) Client c = CLIENT_INIT;
        /* The policy daemon_start() wrote, and the same with edu denied. */
        const char *allow =
                "{\n"
                "  \"rules\": { \"all\": { \"action\": \"allow\", \"match\": \"*\" } },\n"
                "  \"grants\": { \"root\": { \"principals\": [ { \"user\": 0 } ],\n"
                "                           \"devices\": \"*\", \"open-on-behalf\": true } }\n"
                "}\n";
        const char *deny =
                "{\n"
                "  \"rules\": { \"all\": { \"action\": \"allow\", \"match\": \"*\" },\n"
                "             \"not-edu\": { \"action\": \"deny\",\n"
                "                          \"match\": \"" EDU_ROOT "\" } },\n"
                "  \"grants\": { \"root\": { \"principals\": [ { \"user\": 0 } ],\n"
                "                           \"devices\": \"*\" } }\n"
                "}\n";
        unsigned i;

        if (!client_setup(&c, EDU_ROOT, IOVA_A))
                return;
        tap(dma_reaches(&c), "reload: edu DMA through the brokered mapping reaches the memfd");
        tap(reload_policy(deny) >= 0, "a policy that denies %s, and SIGHUP", EDU_ROOT);
        for (i = 0; i < 500 && session_devices(&c) != 0; i++)
                sleep_ms(20);
        tap(i < 500, "the reload took %s from the session", EDU_ROOT);
        check_dma_blocked(&c, "the reload took the grant away");
        tap(reload_policy(allow) >= 0, "the first policy again, and SIGHUP");
        for (i = 0; i < 500 && !device_matched(&c, EDU_ROOT); i++)
                sleep_ms(20);
        tap(i < 500, "the reload gave %s back to the policy", EDU_ROOT);
}

/*
 * What a client can still do with its kept fd: attach its device to its own session's address
 * space by itself.  iommud reports that address space in use, and empties it when the session
 * ends.
 */
static void test_self_attach(void) {
        _cleanup_(client_done) Client c = CLIENT_INIT;
        struct iommud_vfio_device_attach_iommufd_pt a = { .argsz = sizeof(a) };
        const char *e;
        int r;

        if (!client_setup(&c, EDU_ROOT, IOVA_A))
                return;
        e = client_call(&c, "DetachDevice", params("deviceId", u64((uint64_t)c.dev_id), NULL),
                        NULL, 0);
        tap(!e, "self-attach: DetachDevice%s%s", e ? ": " : "", e ?: "");
        a.pt_id = (uint32_t)c.ioas;
        r = ioctl(c.cdev, IOMMUD_VFIO_DEVICE_ATTACH_IOMMUFD_PT, &a) < 0 ? -errno : 0;
        tap(r == 0, "the client attaches its kept fd to its own session's address space %" PRIu64
            " by itself (%s)", c.ioas, r < 0 ? strerror(-r) : "as docs/SECURITY.md says it can");
        tap(dma_reaches(&c), "and its DMA then reaches what the session maps there");
        e = client_call(&c, "DestroyAddressSpace", params("ioasId", u64(c.ioas), NULL), NULL, 0);
        tap(e && streq(e, "org.iommud.Broker.ObjectInUse"),
            "DestroyAddressSpace says the address space is in use (%s: %s)", e ?: "success",
            get_str(c.rep.parameters, "reason"));
        client_disconnect(&c);
        tap(wait_session_gone(), "the daemon ended the session of the closed connection");
        check_dma_blocked(&c, "the session of a self-attached device ended");
}

/*
 * Session B in a child: the bridge edu, four address spaces, mfd mapped at IOVA_B in the last
 * one.  Writes that address space's id to out (0 on failure), then waits for a byte on in.
 */
static _Noreturn void other_session(Client *parent, int mfd, int in, int out) {
        Client b = CLIENT_INIT;
        uint64_t id = 0;
        const char *e;
        char done;

        /* What the fork copied of the parent's client is not this session's. */
        client_done(parent);
        e = client_attach(&b, BRIDGE_EDU);
        for (unsigned i = 0; !e && i < 3; i++) {
                e = client_call(&b, "CreateAddressSpace", NULL, NULL, 0);
                b.ioas = get_u64(b.rep.parameters, "ioasId");
        }
        if (!e)
                e = client_call(&b, "AttachToAddressSpace",
                                params("deviceId", u64((uint64_t)b.dev_id), "ioasId", u64(b.ioas),
                                       NULL),
                                NULL, 0);
        if (!e)
                e = client_map(&b, mfd, 2 * PAGE, IOVA_B);
        if (!e)
                id = b.ioas;
        if (write(out, &id, sizeof(id)) != sizeof(id) || read(in, &done, 1) != 1)
                _exit(1);
        client_done(&b);
        _exit(0);
}

/* What a client's kept fd cannot reach: another session's address space and memory. */
static void test_other_session(void) {
        _cleanup_(client_done) Client c = CLIENT_INIT;
        _cleanup_close_ int mfd = memfd_create("iommud-guest-teardown-b", MFD_CLOEXEC);
        struct iommud_vfio_device_attach_iommufd_pt a = { .argsz = sizeof(a) };
        int to_b[2] = { -EBADF, -EBADF }, from_b[2] = { -EBADF, -EBADF }, r;
        uint8_t *mem = MAP_FAILED;
        uint64_t theirs = 0;
        bool untouched = true;
        pid_t child = -1;

        if (!client_setup(&c, EDU_ROOT, IOVA_A))
                return;
        if (mfd < 0 || ftruncate(mfd, 2 * PAGE) < 0 || pipe2(to_b, O_CLOEXEC) < 0 ||
            pipe2(from_b, O_CLOEXEC) < 0 ||
            (mem = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0)) ==
                    MAP_FAILED ||
            (child = fork()) < 0) {
                tap(false, "other session: setup: %m");
                goto out;
        }
        if (child == 0)
                other_session(&c, mfd, to_b[0], from_b[1]);
        memset(mem, 0x77, 2 * PAGE);
        if (read(from_b[0], &theirs, sizeof(theirs)) != sizeof(theirs) || theirs == 0) {
                tap(false, "another session maps a memfd at %#llx in its address space", IOVA_B);
                goto out;
        }
        /* Ids are per context: one that this session has would name this session's object. */
        tap(theirs > c.ioas && theirs > c.hwpt && theirs > (uint64_t)c.dev_id,
            "the other session's address space %" PRIu64 " is an id this session does not have",
            theirs);
        a.pt_id = (uint32_t)theirs;
        r = ioctl(c.cdev, IOMMUD_VFIO_DEVICE_ATTACH_IOMMUFD_PT, &a) < 0 ? -errno : 0;
        tap(r == -ENOENT, "the client's kept fd cannot attach to the other session's address "
            "space %" PRIu64 " (%s)", theirs, r < 0 ? strerror(-r) : "it did");
        (void)edu_dma(c.bar, EDU_BUFFER, IOVA_B, EDU_DMA_LEN, true);
        for (size_t i = 0; i < 2 * PAGE; i++)
                untouched = untouched && mem[i] == 0x77;
        tap(untouched, "edu DMA to the other session's IOVA %#llx does not reach its memfd",
            IOVA_B);
out:
        if (to_b[1] >= 0)
                (void)write(to_b[1], "x", 1);
        if (child > 0)
                (void)waitpid(child, NULL, 0);
        if (mem != MAP_FAILED)
                (void)munmap(mem, 2 * PAGE);
        for (size_t i = 0; i < 2; i++) {
                safe_close(to_b[i]);
                safe_close(from_b[i]);
        }
}

int main(int argc, char **argv) {
        int r;

        if (argc > 1)
                iommud_path = argv[1];
        if (access("/dev/iommu", F_OK) < 0) {
                skip("iommud's teardown on the kernel backend # SKIP no /dev/iommu");
                return 77;
        }
        r = daemon_start();
        tap(r >= 0, "iommud starts on the kernel backend (%s)", r < 0 ? strerror(-r) : "ready");
        if (r < 0)
                return EXIT_FAILURE;

        test_detach();
        test_disconnect();
        test_reload();
        test_self_attach();
        test_other_session();

        r = daemon_stop();
        tap(r == 0, "iommud exits cleanly on SIGTERM (status %d)", r);
        return tap_failed > 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
