/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * backend-vfio's dirty tracking against the VFIO responder: what type1 particular makes of it
 * (VFIO_IOMMU_DIRTY_PAGES per container, whole mappings, one page size, the capability's
 * largest bitmap, every pinned page dirty) beyond what the conformance suite checks, and the
 * session's address spaces with dirty tracking on it.
 */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "macros.h"
#include "session.h"
#include "vfio-abi.h"
#include "vfio-fx.h"

/* A dirty bitmap read of [iova, iova + n * P) of the HWPT. */
static int dirty_read(Fx *fx, uint32_t hwpt, uint64_t iova, uint64_t n, uint64_t page_size,
                      uint64_t *bits) {
        DirtyBitmapArgs a = { .hwpt_id = hwpt, .iova = iova, .length = n * P,
                              .page_size = page_size, .data = bits };

        bits[0] = bits[1] = 0;
        return OPS(fx)->hwpt_get_dirty_bitmap(fx->c, &a, &fx->err);
}

/*
 * A dirty-tracking HWPT over an IOAS is its domain; its logging is the container's, started in
 * each new one, and reports every pinned page; reads take whole mappings, in pieces that the
 * capability's largest bitmap holds, at its one page size.
 */
static void dirty_page_logging(void **state) {
        Fx *fx = vfio_fx_new();
        _cleanup_close_ int mfd = vfio_fx_memfd(96);
        uint32_t ioas = vfio_fx_ioas(fx), dev = vfio_fx_bind(fx, CONF_DEV_PLAIN), hwpt = 0, pt;
        HwptAllocArgs a = { .flags = BACKEND_HWPT_DIRTY_TRACKING, .dev_id = dev, .pt_id = ioas };
        uint64_t base = 0x400000, iova, bits[2];
        unsigned reads;

        assert_true(backend_has_feature(fx->b, BACKEND_FEATURE_DIRTY_ALL_PINNED));
        /* Three mappings back to back: 64, 16 and 16 pages. */
        for (uint64_t off = 0, len = 64 * P; off < 96 * P; off += len, len = 16 * P) {
                iova = base + off;
                assert_int_equal(OPS(fx)->ioas_map_file(fx->c, ioas, RW | BACKEND_MAP_FIXED_IOVA,
                                                        mfd, off, len, &iova, NULL), 0);
        }
        assert_int_equal(OPS(fx)->hwpt_alloc(fx->c, &a, &hwpt, NULL), 0);
        assert_int_equal(OPS(fx)->hwpt_set_dirty_tracking(fx->c, hwpt, true, NULL), 0);
        /* Nothing is pinned before a group is in a container. */
        assert_int_equal(dirty_read(fx, hwpt, base, 96, P, bits), 0);
        assert_int_equal(bits[0] | bits[1], 0);
        /* One word of bitmap at most: the 64 pages alone, then the two others together. */
        fx->r->max_dirty_bitmap_size = 8;
        pt = hwpt;
        assert_int_equal(OPS(fx)->device_attach(fx->c, dev, BACKEND_NO_PASID, &pt, NULL), 0);
        assert_int_equal(pt, hwpt);
        reads = fx->r->n_dirty_reads;
        assert_int_equal(dirty_read(fx, hwpt, base + 60 * P, 24, P, bits), 0);
        assert_int_equal(bits[0], 0xffffff);
        assert_int_equal(fx->r->n_dirty_reads, reads + 2);
        /* Every pinned page again: type1 sets them all at each read. */
        assert_int_equal(dirty_read(fx, hwpt, base + 62 * P, 2, P, bits), 0);
        assert_int_equal(bits[0], 0x3);
        assert_int_equal(dirty_read(fx, hwpt, base, 32, 2 * P, bits), -EINVAL);
        assert_non_null(strstr(error_message(&fx->err), "dirty pages of 0x1000 bytes only"));
        assert_int_equal(dirty_read(fx, hwpt, base + 90 * P, 8, P, bits), -EINVAL);
        assert_non_null(strstr(error_message(&fx->err), "is not mapped"));
        /* Off: reads are refused; the IOAS cannot go while the HWPT over it is there. */
        assert_int_equal(OPS(fx)->hwpt_set_dirty_tracking(fx->c, hwpt, false, NULL), 0);
        assert_int_equal(dirty_read(fx, hwpt, base, 64, P, bits), -EINVAL);
        assert_int_equal(OPS(fx)->device_detach(fx->c, dev, BACKEND_NO_PASID, NULL), 0);
        assert_int_equal(OPS(fx)->destroy(fx->c, ioas, NULL), -EBUSY);
        assert_int_equal(OPS(fx)->destroy(fx->c, hwpt, NULL), 0);
        assert_int_equal(OPS(fx)->destroy(fx->c, ioas, NULL), 0);
        vfio_fx_free(fx);

        /* A container without the migration capability cannot take a dirty-tracking IOAS. */
        fx = vfio_fx_prepare(NULL);
        fx->r->no_migration_cap = true;
        assert_int_equal(vfio_fx_start(fx), 0);
        a.dev_id = vfio_fx_bind(fx, CONF_DEV_PLAIN);
        a.pt_id = vfio_fx_ioas(fx);
        assert_int_equal(OPS(fx)->hwpt_alloc(fx->c, &a, &hwpt, NULL), 0);
        assert_int_equal(OPS(fx)->device_attach(fx->c, a.dev_id, BACKEND_NO_PASID, &hwpt, NULL),
                         -EOPNOTSUPP);
        assert_int_equal(vfio_responder_n_containers(fx->r), 0);
        vfio_fx_free(fx);

        /* type1 v1 logs nothing. */
        fx = vfio_fx_prepare(NULL);
        fx->r->type1_only = true;
        assert_int_equal(vfio_fx_start(fx), 0);
        assert_false(backend_has_feature(fx->b, BACKEND_FEATURE_DIRTY_TRACKING));
        a.dev_id = vfio_fx_bind(fx, CONF_DEV_PLAIN);
        a.pt_id = vfio_fx_ioas(fx);
        assert_int_equal(OPS(fx)->hwpt_alloc(fx->c, &a, &hwpt, NULL), -EOPNOTSUPP);
        vfio_fx_free(fx);
}

/* The dirty-tracking domain and its logging outlive a restart through the fd store. */
static void dirty_survives_restart(void **state) {
        Fx *fx = vfio_fx_new();
        _cleanup_close_ int mfd = vfio_fx_memfd(4);
        uint32_t ioas = vfio_fx_ioas(fx), dev = vfio_fx_bind(fx, CONF_DEV_PLAIN), hwpt = 0, pt;
        HwptAllocArgs a = { .flags = BACKEND_HWPT_DIRTY_TRACKING, .dev_id = dev, .pt_id = ioas };
        uint64_t iova = 0x400000, bits[2];
        VfioFxStore st = {};

        assert_int_equal(OPS(fx)->ioas_map_file(fx->c, ioas, RW | BACKEND_MAP_FIXED_IOVA, mfd, 0,
                                                4 * P, &iova, NULL), 0);
        assert_int_equal(OPS(fx)->hwpt_alloc(fx->c, &a, &hwpt, NULL), 0);
        pt = hwpt;
        assert_int_equal(OPS(fx)->device_attach(fx->c, dev, BACKEND_NO_PASID, &pt, NULL), 0);
        assert_int_equal(OPS(fx)->hwpt_set_dirty_tracking(fx->c, hwpt, true, NULL), 0);
        vfio_fx_restart(fx, &st);
        assert_int_equal(dirty_read(fx, hwpt, iova, 4, P, bits), 0);
        assert_int_equal(bits[0], 0xf);
        assert_int_equal(OPS(fx)->hwpt_set_dirty_tracking(fx->c, hwpt, false, NULL), 0);
        assert_int_equal(dirty_read(fx, hwpt, iova, 4, P, bits), -EINVAL);
        assert_int_equal(OPS(fx)->device_detach(fx->c, dev, BACKEND_NO_PASID, NULL), 0);
        assert_int_equal(OPS(fx)->destroy(fx->c, ioas, NULL), -EBUSY);
        assert_int_equal(OPS(fx)->destroy(fx->c, hwpt, NULL), 0);
        vfio_fx_free(fx);
}

static int container_fd(const char *name, int fd, void *userdata) {
        if (strncmp(name, "ioas", 4) == 0)
                *(int *)userdata = fd;
        return 0;
}

/* The responder's UNMAP_DMA with GET_DIRTY_BITMAP: logging on, its page size, every page. */
static void responder_unmap_with_bitmap(void **state) {
        Fx *fx = vfio_fx_new();
        _cleanup_close_ int mfd = vfio_fx_memfd(8);
        uint32_t ioas = vfio_fx_ioas(fx), dev = vfio_fx_bind(fx, CONF_DEV_PLAIN), hwpt = 0;
        HwptAllocArgs a = { .flags = BACKEND_HWPT_DIRTY_TRACKING, .dev_id = dev, .pt_id = ioas };
        uint64_t iova = 0x400000, bits[1] = {};
        struct {
                struct iommud_vfio_iommu_type1_dma_unmap u;
                struct iommud_vfio_bitmap b;
        } req = {
                .u = { .argsz = sizeof(req), .flags = IOMMUD_VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP,
                       .iova = iova, .size = 8 * P },
                .b = { .pgsize = P, .size = sizeof(bits), .data = (uint64_t)(uintptr_t)bits },
        };
        int container = -EBADF;

        assert_int_equal(OPS(fx)->ioas_map_file(fx->c, ioas, RW | BACKEND_MAP_FIXED_IOVA, mfd, 0,
                                                8 * P, &iova, NULL), 0);
        assert_int_equal(OPS(fx)->hwpt_alloc(fx->c, &a, &hwpt, NULL), 0);
        assert_int_equal(OPS(fx)->device_attach(fx->c, dev, BACKEND_NO_PASID, &hwpt, NULL), 0);
        assert_int_equal(backend_vfio_context_foreach_fd(fx->c, container_fd, &container), 0);
        assert_true(container >= 0);
        /* Not while logging is off, nor at another page size. */
        assert_int_equal(vfio_responder_ioctl(fx->r, container, IOMMUD_VFIO_IOMMU_UNMAP_DMA, &req),
                         -EINVAL);
        assert_int_equal(OPS(fx)->hwpt_set_dirty_tracking(fx->c, hwpt, true, NULL), 0);
        req.b.pgsize = 2 * P;
        assert_int_equal(vfio_responder_ioctl(fx->r, container, IOMMUD_VFIO_IOMMU_UNMAP_DMA, &req),
                         -EINVAL);
        req.b.pgsize = P;
        assert_int_equal(vfio_responder_ioctl(fx->r, container, IOMMUD_VFIO_IOMMU_UNMAP_DMA, &req),
                         0);
        assert_int_equal(req.u.size, 8 * P);
        assert_int_equal(bits[0], 0xff);
        assert_int_equal(vfio_responder_mapped_bytes(fx->r), 0);
        /* The backend's record still has the area: the context's teardown lets it go. */
        vfio_fx_free(fx);
}

static const char policy_text[] =
        "{ \"rules\": { \"all\": { \"action\": \"allow\", \"match\": \"*\" } },\n"
        "  \"grants\": { \"vm\": { \"principals\": [ { \"user\": 1000 } ], \"devices\": \"*\",\n"
        "    \"open-on-behalf\": true } } }\n";

/* A session of uid 1000 on a host whose backend is fx's. */
static Session *host_session(Fx *fx, SessionHost *host) {
        PeerCreds *creds = NULL;
        Session *s = NULL;
        char sys[96];

        snprintf(sys, sizeof(sys), "%s/sys", fx->root);
        assert_int_equal(topology_load_path(&host->topology, sys, NULL), 0);
        assert_int_equal(policy_load_string(&host->policy, "test.json", policy_text,
                                            strlen(policy_text), NULL, NULL), 0);
        host->backend = fx->b;
        assert_int_equal(peer_creds_new(&creds, "/nonexistent", 4242, 1000, 1000, NULL), 0);
        assert_int_equal(session_new(&s, host, creds, NULL), 0);
        return s;
}

static void host_done(Fx *fx, SessionHost *host) {
        session_host_done(host);
        topology_free(host->topology);
        policy_free(host->policy);
        vfio_fx_free(fx);
}

/* The first word of the bitmap a session read wrote into fd. */
static uint64_t bitmap_word(int fd) {
        uint64_t w = 0;

        assert_int_equal(pread(fd, &w, sizeof(w), 0), (ssize_t)sizeof(w));
        return w;
}

/*
 * An address space created with dirty tracking: its devices attach through its domain, one for
 * all of them; SetDirtyTracking, ReadDirtyBitmap and Unmap with a bitmap go to the container.
 */
static void dirty_through_the_session(void **state) {
        Fx *fx = vfio_fx_new();
        SessionHost host = {};
        BrokerError err = BROKER_ERROR_INIT;
        _cleanup_close_ int mfd = vfio_fx_memfd(16);
        _cleanup_close_ int bfd = memfd_create("bitmap", MFD_CLOEXEC);
        SessionDeviceInfo dev = {}, dev2 = {};
        SessionFeatures f;
        Session *s = NULL;
        uint32_t ioas = 0, hwpt = 0, hwpt2 = 0;
        uint64_t iova, unmapped = 0;

        s = host_session(fx, &host);
        assert_true(bfd >= 0 && ftruncate(bfd, 4096) == 0);

        assert_int_equal(session_get_features(s, false, 0, &f, NULL), 0);
        assert_true(f.dirty_tracking_offered);
        assert_true(f.kernel & BACKEND_FEATURE_DIRTY_ALL_PINNED);
        assert_int_equal(session_create_address_space_full(s, true, &ioas, NULL), 0);
        for (uint64_t off = 0; off < 16 * P; off += 8 * P) {
                SessionMapArgs m = { .ioas_id = ioas, .fd = mfd, .offset = off, .length = 8 * P,
                                     .fixed_iova = true, .iova = 0x400000 + off,
                                     .readable = true, .writeable = true };

                assert_int_equal(session_map(s, &m, &iova, NULL), 0);
        }
        /* Two devices of two IOMMUs: one container, one page table. */
        assert_int_equal(session_attach_device_name(s, fx->names[CONF_DEV_PLAIN], &dev, NULL), 0);
        assert_int_equal(session_attach_device_name(s, fx->names[CONF_DEV_PASID], &dev2, NULL),
                         0);
        assert_int_equal(session_attach_to_address_space(s, dev.device_id, ioas, &hwpt, NULL), 0);
        assert_int_equal(session_attach_to_address_space(s, dev2.device_id, ioas, &hwpt2, NULL),
                         0);
        assert_int_equal(hwpt2, hwpt);
        assert_int_equal(session_get_features(s, true, dev.device_id, &f, NULL), 0);
        assert_true(f.dirty_tracking_offered);

        assert_int_equal(session_set_dirty_tracking(s, ioas, true, NULL), 0);
        fx->r->n_dirty_reads = 0;
        assert_int_equal(session_read_dirty_bitmap(s, &(SessionDirtyArgs){
                                 .ioas_id = ioas, .iova = 0x400000 + 4 * P, .length = 8 * P,
                                 .page_size = P, .clear = true, .bitmap_fd = bfd }, NULL), 0);
        assert_int_equal(bitmap_word(bfd), 0xff);
        assert_int_equal(fx->r->n_dirty_reads, 1);
        assert_int_equal(session_read_dirty_bitmap(s, &(SessionDirtyArgs){
                                 .ioas_id = ioas, .iova = 0x400000, .length = 16 * P,
                                 .page_size = 2 * P, .clear = true, .bitmap_fd = bfd }, &err),
                         -EINVAL);
        assert_non_null(strstr(error_message(&err.error), "0x1000 bytes only"));
        broker_error_clear(&err);
        assert_int_equal(session_unmap_dirty(s, &(SessionDirtyArgs){
                                 .ioas_id = ioas, .iova = 0x400000, .length = 8 * P,
                                 .page_size = P, .bitmap_fd = bfd }, &unmapped, NULL), 0);
        assert_int_equal(unmapped, 8 * P);
        assert_int_equal(bitmap_word(bfd), 0xff);
        assert_int_equal(vfio_responder_mapped_bytes(fx->r), 8 * P);

        session_free(s);
        host_done(fx, &host);
}

/* A container without the migration capability: the attach names the device that cannot. */
static void dirty_refused_without_the_capability(void **state) {
        Fx *fx = vfio_fx_prepare(NULL);
        SessionHost host = {};
        BrokerError err = BROKER_ERROR_INIT;
        SessionDeviceInfo dev = {};
        Session *s = NULL;
        uint32_t ioas = 0, hwpt = 0;

        fx->r->no_migration_cap = true;
        assert_int_equal(vfio_fx_start(fx), 0);
        s = host_session(fx, &host);
        assert_int_equal(session_create_address_space_full(s, true, &ioas, NULL), 0);
        assert_int_equal(session_attach_device_name(s, fx->names[CONF_DEV_PLAIN], &dev, NULL), 0);
        assert_int_equal(session_attach_to_address_space(s, dev.device_id, ioas, &hwpt, &err),
                         -EOPNOTSUPP);
        assert_string_equal(broker_error_get(&err, "feature")->str, "dirty-tracking");
        assert_string_equal(broker_error_get(&err, "device")->str, fx->names[CONF_DEV_PLAIN]);
        broker_error_clear(&err);
        /* Nothing is left attached, and the address space goes. */
        assert_int_equal(session_destroy_address_space(s, ioas, NULL), 0);

        session_free(s);
        host_done(fx, &host);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(dirty_page_logging),
                cmocka_unit_test(dirty_survives_restart),
                cmocka_unit_test(dirty_through_the_session),
                cmocka_unit_test(dirty_refused_without_the_capability),
                cmocka_unit_test(responder_unmap_with_bitmap),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
