/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Guest test: Delegate on the kernel backend, what only the kernel can show.  iommud runs as
 * root; the client is uid 1000 without CAP_IPC_LOCK and with an RLIMIT_MEMLOCK of 1 MiB, and
 * holds its own fd of the root-bus edu (opened for it before it dropped root, as a launcher
 * does):
 *
 *   - a session that holds an address space may not delegate (ObjectInUse);
 *   - Delegate gives a fresh iommufd whose RLIMIT_MODE is 1 (per-process accounting);
 *   - after it the session mediates nothing: CreateAddressSpace is NotSupported "mediation";
 *   - the client binds edu to its iommufd itself and maps its own memory: the pages show in
 *     its VmLck (the kernel charges the process that maps), and a map that would take it past
 *     its RLIMIT_MEMLOCK is ENOMEM;
 *   - its session ends and the mapping, its own, stays charged to it until it unmaps.
 *
 * Prints unnumbered TAP lines; the kernel-vm init numbers them.
 *
 *   guest-delegate [IOMMUD]      default: /usr/sbin/iommud
 */

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fdlist.h"
#include "guest-broker-util.h"
#include "guest-util.h"
#include "iommufd-abi.h"
#include "macros.h"

#define EDU_ROOT "0000:00:03.0"
#define CLIENT_UID 1000
#define MEMLOCK_LIMIT (UINT64_C(1) << 20)
#define MAPPED (UINT64_C(256) << 10)
#define TEST_IOVA UINT64_C(0x300000)

static const char policy[] =
        "{\n"
        "  \"rules\": { \"all\": { \"action\": \"allow\", \"match\": \"*\" } },\n"
        "  \"grants\": { \"client\": { \"principals\": [ { \"user\": 1000 } ],\n"
        "                             \"devices\": \"*\", \"delegation\": true } }\n"
        "}\n";

#define OK(error) (error) ? ": " : "", (error) ?: ""

/* VmLck of this process in bytes: what per-process accounting charges. */
static uint64_t vm_locked(void) {
        char line[256];
        unsigned long long kb = UINT64_MAX / 1024;
        FILE *f = fopen("/proc/self/status", "re");

        while (f && fgets(line, sizeof(line), f))
                if (sscanf(line, "VmLck: %llu kB", &kb) == 1)
                        break;
        if (f)
                fclose(f);
        return (uint64_t)kb * 1024;
}

static int iommufd_rlimit_mode(int iommufd, uint64_t *ret) {
        struct iommud_option o = { .size = sizeof(o), .option_id = 0 /* RLIMIT_MODE */,
                                   .op = IOMMUD_IOMMU_OPTION_OP_GET };

        if (ioctl(iommufd, IOMMUD_IOMMU_OPTION, &o) < 0)
                return -errno;
        *ret = o.val64;
        return 0;
}

/* edu bound to the client's own iommufd and attached to a new IOAS there; the IOAS id. */
static int bind_and_attach(int iommufd, int dev_fd, uint32_t *ret_ioas) {
        struct iommud_vfio_device_bind_iommufd b = { .argsz = IOMMUD_VFIO_BIND_MINSZ,
                                                      .iommufd = iommufd };
        struct iommud_ioas_alloc a = { .size = sizeof(a) };
        struct iommud_vfio_device_attach_iommufd_pt at = { .argsz = IOMMUD_VFIO_ATTACH_MINSZ };

        if (ioctl(dev_fd, IOMMUD_VFIO_DEVICE_BIND_IOMMUFD, &b) < 0 ||
            ioctl(iommufd, IOMMUD_IOMMU_IOAS_ALLOC, &a) < 0)
                return -errno;
        at.pt_id = a.out_ioas_id;
        if (ioctl(dev_fd, IOMMUD_VFIO_DEVICE_ATTACH_IOMMUFD_PT, &at) < 0)
                return -errno;
        *ret_ioas = a.out_ioas_id;
        return 0;
}

static int map_own(int iommufd, uint32_t ioas, void *va, uint64_t length, uint64_t iova) {
        struct iommud_ioas_map m = {
                .size = sizeof(m),
                .flags = IOMMUD_IOMMU_IOAS_MAP_FIXED_IOVA | IOMMUD_IOMMU_IOAS_MAP_READABLE |
                         IOMMUD_IOMMU_IOAS_MAP_WRITEABLE,
                .ioas_id = ioas,
                .user_va = (uintptr_t)va,
                .length = length,
                .iova = iova,
        };

        return ioctl(iommufd, IOMMUD_IOMMU_IOAS_MAP, &m) < 0 ? -errno : 0;
}

static int unmap_own(int iommufd, uint32_t ioas, uint64_t iova, uint64_t length,
                     uint64_t *ret_unmapped) {
        struct iommud_ioas_unmap u = { .size = sizeof(u), .ioas_id = ioas, .iova = iova,
                                       .length = length };

        if (ioctl(iommufd, IOMMUD_IOMMU_IOAS_UNMAP, &u) < 0)
                return -errno;
        *ret_unmapped = u.length;
        return 0;
}

/* The broker's side: refused while holding, then a fresh iommufd, then nothing mediated. */
static int delegate(VarlinkClient *c) {
        _cleanup_(varlink_reply_clear) VarlinkReply rep = VARLINK_REPLY_INIT;
        const char *error;
        json_object *p;
        uint64_t ioas, mode = UINT64_MAX;
        int fd, r;

        p = call(c, "CreateAddressSpace", NULL, NULL, 0, &rep, &error);
        ioas = get_u64(p, "ioasId");
        (void)call(c, "Delegate", NULL, NULL, 0, &rep, &error);
        tap(error && streq(error, "org.iommud.Broker.ObjectInUse"),
            "Delegate is refused while the session holds an address space (%s)", error ?: "ok");
        (void)call(c, "DestroyAddressSpace", params("ioasId", u64(ioas), NULL), NULL, 0, &rep,
                   &error);
        (void)call(c, "Delegate", NULL, NULL, 0, &rep, &error);
        fd = !error && rep.fds ? fdlist_take(rep.fds, 0) : -EBADF;
        tap(fd >= 0, "Delegate hands uid %d an iommufd%s%s", CLIENT_UID, OK(error));
        if (fd < 0)
                return -EBADF;
        r = iommufd_rlimit_mode(fd, &mode);
        tap(r >= 0 && mode == 1,
            "its RLIMIT_MODE is 1: pins are charged to the process that maps (got %" PRIu64 ")",
            mode);
        p = call(c, "CreateAddressSpace", NULL, NULL, 0, &rep, &error);
        tap(error && streq(error, "org.iommud.Broker.NotSupported") &&
                    streq(get_str(p, "feature"), "mediation"),
            "after Delegate the session mediates nothing: CreateAddressSpace is NotSupported "
            "\"mediation\" (%s)",
            error ?: "it succeeded");
        return fd;
}

/* The client's own iommufd: its pins in its VmLck, bounded by its RLIMIT_MEMLOCK. */
static void use_own(VarlinkClient **c, int iommufd, int dev_fd) {
        uint64_t before = vm_locked(), after, unmapped = 0;
        void *mem = mmap(NULL, 2 * MEMLOCK_LIMIT, PROT_READ | PROT_WRITE,
                         MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
        uint32_t ioas = 0;
        int r;

        r = bind_and_attach(iommufd, dev_fd, &ioas);
        tap(r >= 0, "the client binds %s to its own iommufd and attaches it (%s)", EDU_ROOT,
            r < 0 ? strerror(-r) : "ok");
        if (r < 0 || mem == MAP_FAILED)
                return;
        r = map_own(iommufd, ioas, mem, MAPPED, TEST_IOVA);
        after = vm_locked();
        tap(r >= 0 && after - before == MAPPED,
            "a map of %" PRIu64 " KiB of its own memory shows in its VmLck (%" PRIu64 " -> %"
            PRIu64 " KiB%s%s)",
            MAPPED >> 10, before >> 10, after >> 10, r < 0 ? ", " : "", r < 0 ? strerror(-r) : "");
        r = map_own(iommufd, ioas, (uint8_t *)mem + MAPPED, 2 * MEMLOCK_LIMIT - MAPPED,
                    TEST_IOVA + MAPPED);
        tap(r == -ENOMEM, "a map past its RLIMIT_MEMLOCK of %" PRIu64 " KiB is ENOMEM (%s)",
            MEMLOCK_LIMIT >> 10, r < 0 ? strerror(-r) : "it was mapped");

        /* The session ends; what the client mapped through its own iommufd is its own. */
        *c = varlink_client_free(*c);
        r = unmap_own(iommufd, ioas, TEST_IOVA, MAPPED, &unmapped);
        tap(r >= 0 && unmapped == MAPPED && vm_locked() == before,
            "after its session ended the client's mapping is still there, charged to it, until "
            "it unmaps it (%" PRIu64 " bytes unmapped, VmLck %" PRIu64 " KiB)",
            unmapped, vm_locked() >> 10);
        (void)munmap(mem, 2 * MEMLOCK_LIMIT);
}

/* In a child: uid 1000, no capabilities, RLIMIT_MEMLOCK 1 MiB.  Exit status: failures. */
static int client(int dev_fd) {
        _cleanup_(varlink_client_freep) VarlinkClient *c = NULL;
        struct rlimit rl = { MEMLOCK_LIMIT, MEMLOCK_LIMIT };
        int iommufd;

        if (setrlimit(RLIMIT_MEMLOCK, &rl) < 0 || setgroups(0, NULL) < 0 ||
            setresgid(CLIENT_UID, CLIENT_UID, CLIENT_UID) < 0 ||
            setresuid(CLIENT_UID, CLIENT_UID, CLIENT_UID) < 0)
                return tap(false, "drop to uid %d: %m", CLIENT_UID), 1;
        if (varlink_client_connect(&c, SOCKET_PATH) < 0)
                return tap(false, "uid %d connects to %s", CLIENT_UID, SOCKET_PATH), 1;
        iommufd = delegate(c);
        if (iommufd >= 0)
                use_own(&c, iommufd, dev_fd);
        return tap_failed > 0;
}

int main(int argc, char **argv) {
        int r, status = 0, dev_fd;
        pid_t pid;

        if (argc > 1)
                iommud_path = argv[1];
        if (access("/dev/iommu", F_OK) < 0) {
                skip("delegation on the kernel backend # SKIP no /dev/iommu");
                return 77;
        }
        iommud_backend = "iommufd";
        daemon_policy = policy;
        r = daemon_start();
        tap(r >= 0, "iommud starts with delegation granted to uid %d (%s)", CLIENT_UID,
            r < 0 ? strerror(-r) : "ready");
        dev_fd = open_cdev(EDU_ROOT);
        tap(dev_fd >= 0, "open %s for the client (%s)", EDU_ROOT,
            dev_fd < 0 ? strerror(-dev_fd) : "ok");
        if (r < 0 || dev_fd < 0)
                return EXIT_FAILURE;
        fflush(stdout);
        pid = fork();
        if (pid == 0)
                _exit(client(dev_fd));
        close(dev_fd);
        if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
            WEXITSTATUS(status) != 0)
                tap_failed++;
        r = daemon_stop();
        tap(r == 0, "iommud exits cleanly on SIGTERM (status %d)", r);
        return tap_failed > 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
