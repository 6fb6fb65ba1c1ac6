/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Guest test: the address-space methods and a real restart of iommud on the kernel backend,
 * each proven by DMA of the root-bus edu through what the broker set up (the client keeps its
 * own cdev fd for BAR0, as a VMM does):
 *
 *   - DestroyAddressSpace: refused while a device is attached; once the device moved on, the
 *     address space goes, its memfd mapping leaves the daemon, and DMA through its IOVA is
 *     blocked;
 *   - Copy: a mapping of one address space copied into the one edu is attached to carries DMA
 *     at the new IOVA; a source range beyond the mapping is refused and creates nothing;
 *   - AllowIOVAs: an automatic IOVA lands inside the allowed range, a full range refuses the
 *     next one, and a range over the MSI window is refused;
 *   - JoinSession after a real restart: iommud keeps its fd store as systemd would, is stopped
 *     and started again on the stored fds, and the client's session comes back by its token
 *     with its device, address space and mapping, through which edu DMAs as before.
 *
 * Prints unnumbered TAP lines; the kernel-vm init numbers them.
 *
 *   guest-sessions [IOMMUD]      default: /usr/sbin/iommud
 */

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "edu.h"
#include "guest-broker-util.h"
#include "guest-fdstore.h"
#include "guest-util.h"
#include "macros.h"

#define PAGE 4096
#define TEST_IOVA UINT64_C(0x300000) /* edu masks DMA addresses to 28 bits */
#define EDU_ROOT "0000:00:03.0"
#define BRIDGE_EDU "0000:01:02.0"
#define MEMFD_NAME "iommud-guest-sessions"
#define MSI_START UINT64_C(0xfee00000)

/* The client's side of the device: its own cdev fd, BAR0, and two pages of a memfd. */
typedef struct Edu {
        int fd;
        int64_t dev_id;
        volatile uint8_t *bar;
        size_t bar_size;
        int mfd;
        uint8_t *mem; /* page 0: DMA source, page 1: DMA destination */
} Edu;

/* The cdev and the memfd: before AttachDevice. */
static int edu_open(Edu *e) {
        e->bar = MAP_FAILED;
        e->mem = MAP_FAILED;
        e->fd = open_cdev(EDU_ROOT);
        e->mfd = memfd_create(MEMFD_NAME, MFD_CLOEXEC);
        if (e->fd < 0 || e->mfd < 0 || ftruncate(e->mfd, 2 * PAGE) < 0)
                return -errno;
        e->mem = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, e->mfd, 0);
        return e->mem == MAP_FAILED ? -errno : 0;
}

/* BAR0 through the client's own fd: a VFIO cdev grants access once it is bound (by iommud). */
static int edu_map_bar(Edu *e) {
        struct vfio_region_info bar0 = {};

        if (vfio_region_info(e->fd, VFIO_PCI_BAR0_REGION_INDEX, &bar0) < 0)
                return -EIO;
        e->bar = mmap(NULL, bar0.size, PROT_READ | PROT_WRITE, MAP_SHARED, e->fd,
                      (off_t)bar0.offset);
        if (e->bar == MAP_FAILED)
                return -errno;
        e->bar_size = bar0.size;
        return vfio_enable_bus_master(e->fd);
}

/* edu reads the source page at src and writes it to dst: did exactly that land in memory? */
static bool dma_roundtrip(Edu *e, uint64_t src, uint64_t dst) {
        for (size_t i = 0; i < PAGE; i++)
                e->mem[i] = (uint8_t)(i * 7 + (src >> 12));
        memset(e->mem + PAGE, 0x5a, PAGE);
        if (edu_dma(e->bar, src, EDU_BUFFER, EDU_DMA_LEN, false) < 0 ||
            edu_dma(e->bar, EDU_BUFFER, dst, EDU_DMA_LEN, true) < 0)
                return false;
        return memcmp(e->mem, e->mem + PAGE, EDU_DMA_LEN) == 0 &&
               e->mem[PAGE + EDU_DMA_LEN] == 0x5a;
}

/* A DMA to dst that the IOMMU must block: the destination page stays as it was. */
static bool dma_blocked(Edu *e, uint64_t dst) {
        bool untouched = true;

        memset(e->mem + PAGE, 0xa5, PAGE);
        if (edu_dma(e->bar, EDU_BUFFER, dst, EDU_DMA_LEN, true) < 0)
                return false;
        for (size_t i = 0; i < PAGE; i++)
                untouched = untouched && e->mem[PAGE + i] == 0xa5;
        return untouched;
}

static uint64_t new_ioas(VarlinkClient *c, VarlinkReply *rep, const char **error) {
        json_object *p = call(c, "CreateAddressSpace", NULL, NULL, 0, rep, error);

        return *error ? UINT64_MAX : get_u64(p, "ioasId");
}

static const char *attach_to(VarlinkClient *c, Edu *e, uint64_t ioas, VarlinkReply *rep) {
        const char *error;

        (void)call(c, "AttachToAddressSpace",
                          params("deviceId", u64((uint64_t)e->dev_id), "ioasId",
                                        u64(ioas), NULL),
                          NULL, 0, rep, &error);
        return error;
}

static const char *simple_call(VarlinkClient *c, const char *method, json_object *params,
                               VarlinkReply *rep) {
        const char *error;

        (void)call(c, method, params, NULL, 0, rep, &error);
        return error;
}

#define OK(e) (!(e) ? "" : ": "), ((e) ?: "")

/* ---- DestroyAddressSpace ---- */

static void test_destroy(VarlinkClient *c, Edu *e) {
        _cleanup_(varlink_reply_clear) VarlinkReply rep = VARLINK_REPLY_INIT;
        const char *error, *e2;
        uint64_t a, b, iova;

        a = new_ioas(c, &rep, &error);
        e2 = error ?: attach_to(c, e, a, &rep);
        iova = map_at(c, a, e->mfd, 0, 2 * PAGE, TEST_IOVA, &rep, &error);
        tap(!e2 && !error && dma_roundtrip(e, iova, iova + PAGE),
            "destroy: edu DMAs through a mapping of address space %" PRIu64 "%s%s", a,
            OK(e2 ?: error));
        error = simple_call(c, "DestroyAddressSpace", params("ioasId", u64(a), NULL),
                            &rep);
        tap(error && streq(error, "org.iommud.Broker.ObjectInUse"),
            "destroy: DestroyAddressSpace with the device attached is ObjectInUse (%s)",
            error ?: "accepted");
        b = new_ioas(c, &rep, &error);
        e2 = error ?: attach_to(c, e, b, &rep);
        error = e2 ?: simple_call(c, "DestroyAddressSpace",
                                  params("ioasId", u64(a), NULL), &rep);
        tap(!error, "destroy: once edu moved to address space %" PRIu64 ", %" PRIu64 " goes%s%s",
            b, a, OK(error));
        tap(daemon_memfd_maps_named(MEMFD_NAME) == 0,
            "destroy: the daemon no longer maps the memfd the destroyed address space mapped");
        iova = map_at(c, a, e->mfd, 0, PAGE, UINT64_MAX, &rep, &error);
        tap(error && streq(error, "org.iommud.Broker.NoSuchObject"),
            "destroy: Map into it is NoSuchObject (%s)", error ?: "accepted");
        tap(dma_blocked(e, TEST_IOVA + PAGE),
            "destroy: DMA through its old IOVA no longer reaches memory");
}

/* ---- Copy ---- */

static void test_copy(VarlinkClient *c, Edu *e) {
        _cleanup_(varlink_reply_clear) VarlinkReply rep = VARLINK_REPLY_INIT;
        const uint64_t src_iova = 0x500000, dst_iova = 0x700000;
        const char *error, *e2;
        uint64_t src, dst, iova;
        json_object *p;

        src = new_ioas(c, &rep, &error);
        iova = map_at(c, src, e->mfd, 0, 2 * PAGE, src_iova, &rep, &error);
        dst = new_ioas(c, &rep, &e2);
        e2 = e2 ?: attach_to(c, e, dst, &rep);
        tap(!error && !e2 && iova == src_iova,
            "copy: a memfd mapped into address space %" PRIu64 ", edu attached to %" PRIu64
            "%s%s", src, dst, OK(error ?: e2));
        tap(dma_blocked(e, dst_iova + PAGE), "copy: before the copy nothing is at 0x%" PRIx64,
            dst_iova + PAGE);
        p = call(c, "Copy",
                        params("srcIoasId", u64(src), "srcIova", u64(src_iova),
                                      "dstIoasId", u64(dst), "dstIova",
                                      u64(dst_iova), "length", u64(2 * PAGE), NULL),
                        NULL, 0, &rep, &error);
        tap(!error && get_u64(p, "iova") == dst_iova, "copy: Copy to 0x%" PRIx64 "%s%s",
            dst_iova, OK(error));
        tap(dma_roundtrip(e, dst_iova, dst_iova + PAGE),
            "copy: edu DMAs through the copied mapping");
        p = call(c, "Copy",
                        params("srcIoasId", u64(src), "srcIova", u64(src_iova),
                                      "dstIoasId", u64(dst), "length",
                                      u64(3 * PAGE), NULL),
                        NULL, 0, &rep, &error);
        tap(error != NULL, "copy: a source range beyond the mapping is refused (%s)",
            error ?: "accepted");
        error = simple_call(c, "Unmap",
                            params("ioasId", u64(dst), "iova", u64(0),
                                          "length", u64(UINT64_C(1) << 40), NULL),
                            &rep);
        tap(!error && get_u64(rep.parameters, "unmapped") == 2 * PAGE,
            "copy: the refused copy left nothing: unmapping all of %" PRIu64 " finds %" PRIu64
            " bytes", dst, get_u64(rep.parameters, "unmapped"));
}

/* ---- AllowIOVAs ---- */

static json_object *range(uint64_t start, uint64_t last) {
        return params("start", u64(start), "last", u64(last), NULL);
}

static void test_allow_iovas(VarlinkClient *c, Edu *e) {
        _cleanup_(varlink_reply_clear) VarlinkReply rep = VARLINK_REPLY_INIT;
        const uint64_t lo = 0x900000, hi = 0x900000 + 2 * PAGE - 1;
        json_object *ranges = json_object_new_array();
        const char *error, *e2;
        uint64_t ioas, iova;

        ioas = new_ioas(c, &rep, &error);
        e2 = error ?: attach_to(c, e, ioas, &rep);
        json_object_array_add(ranges, range(lo, hi));
        error = e2 ?: simple_call(c, "AllowIOVAs",
                                  params("ioasId", u64(ioas), "ranges", ranges, NULL),
                                  &rep);
        tap(!error, "allow: AllowIOVAs 0x%" PRIx64 "-0x%" PRIx64 " on an attached address space%s%s",
            lo, hi, OK(error));
        iova = map_at(c, ioas, e->mfd, 0, 2 * PAGE, UINT64_MAX, &rep, &error);
        tap(!error && iova == lo, "allow: an automatic Map lands at 0x%" PRIx64 " (got 0x%" PRIx64
            ")%s%s", lo, iova, OK(error));
        tap(dma_roundtrip(e, iova, iova + PAGE), "allow: edu DMAs there");
        iova = map_at(c, ioas, e->mfd, 0, PAGE, UINT64_MAX, &rep, &error);
        tap(error != NULL, "allow: with the allowed range full the next automatic Map is refused "
            "(%s)", error ?: "accepted");
        ranges = json_object_new_array();
        json_object_array_add(ranges, range(MSI_START - PAGE, MSI_START + PAGE - 1));
        error = simple_call(c, "AllowIOVAs",
                            params("ioasId", u64(ioas), "ranges", ranges, NULL),
                            &rep);
        tap(error != NULL, "allow: a range over the MSI window 0x%" PRIx64 " is refused (%s)",
            MSI_START, error ?: "accepted");
}

/* ---- JoinSession after a restart ---- */

static void test_restart_join(VarlinkClient **c, Edu *e, const char *token) {
        _cleanup_(varlink_reply_clear) VarlinkReply rep = VARLINK_REPLY_INIT;
        const char *error, *e2;
        uint64_t ioas, iova;
        int r;

        ioas = new_ioas(*c, &rep, &error);
        e2 = error ?: attach_to(*c, e, ioas, &rep);
        iova = map_at(*c, ioas, e->mfd, 0, 2 * PAGE, TEST_IOVA, &rep, &error);
        tap(!e2 && !error && dma_roundtrip(e, iova, iova + PAGE),
            "restart: edu DMAs through address space %" PRIu64 " before the restart%s%s", ioas,
            OK(e2 ?: error));
        tap(fdstore_count("iommud-state-") == 2 && fdstore_count("s") >= 2,
            "restart: the fd store holds the state and the session's iommufd and device "
            "(%zu state, %zu session fds)", fdstore_count("iommud-state-"), fdstore_count("s"));
        r = fdstore_restart();
        tap(r >= 0, "restart: iommud stopped and started again on the stored fds (%s)",
            r < 0 ? strerror(-r) : "ready");
        *c = varlink_client_free(*c);
        if (r < 0 || varlink_client_connect(c, SOCKET_PATH) < 0)
                return tap(false, "restart: connect to the new iommud");
        error = simple_call(*c, "JoinSession",
                            params("token", json_object_new_string(token), NULL), &rep);
        tap(!error, "restart: JoinSession with the token reclaims the session%s%s", OK(error));
        tap(dma_roundtrip(e, TEST_IOVA, TEST_IOVA + PAGE),
            "restart: edu DMAs through the same IOVA after the restart");
        error = simple_call(*c, "Unmap",
                            params("ioasId", u64(ioas), "iova",
                                          u64(TEST_IOVA), "length",
                                          u64(2 * PAGE), NULL),
                            &rep);
        tap(!error && get_u64(rep.parameters, "unmapped") == 2 * PAGE,
            "restart: the reclaimed mapping unmaps by its old id and IOVA%s%s", OK(error));
        tap(dma_blocked(e, TEST_IOVA + PAGE), "restart: and DMA there is blocked again");
}

int main(int argc, char **argv) {
        _cleanup_(varlink_reply_clear) VarlinkReply rep = VARLINK_REPLY_INIT;
        _cleanup_(varlink_client_freep) VarlinkClient *c = NULL;
        _cleanup_free_ char *token = NULL;
        Edu e = { .fd = -EBADF, .mfd = -EBADF };
        const char *error;
        json_object *p;
        int r;

        if (argc > 1)
                iommud_path = argv[1];
        if (access("/dev/iommu", F_OK) < 0) {
                skip("iommud sessions on the kernel backend # SKIP no /dev/iommu");
                return 77;
        }
        iommud_backend = "iommufd";
        r = fdstore_enable();
        if (r >= 0)
                r = daemon_start();
        tap(r >= 0, "iommud starts with an fd store (%s)", r < 0 ? strerror(-r) : "ready");
        if (r < 0 || varlink_client_connect(&c, SOCKET_PATH) < 0 || edu_open(&e) < 0)
                return tap(false, "connect and open %s", EDU_ROOT), EXIT_FAILURE;
        p = call(c, "GetSession", NULL, NULL, 0, &rep, &error);
        token = strdup(get_str(p, "token"));
        e.dev_id = attach_device(c, e.fd, &rep, &error);
        tap(!error && token && token[0], "AttachDevice %s into a session with a token%s%s",
            EDU_ROOT, OK(error));
        if (error)
                return EXIT_FAILURE;
        r = edu_map_bar(&e);
        tap(r >= 0, "the client maps BAR0 of its own fd of %s (%s)", EDU_ROOT,
            r < 0 ? strerror(-r) : "ok");
        if (r < 0)
                return EXIT_FAILURE;
        test_destroy(c, &e);
        test_copy(c, &e);
        test_allow_iovas(c, &e);
        test_restart_join(&c, &e, token);
        c = varlink_client_free(c);
        r = daemon_stop();
        tap(r == 0, "iommud exits cleanly on SIGTERM (status %d)", r);
        fdstore_clear();
        return tap_failed > 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
