/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * backend-vfio against the VFIO responder: what the conformance suite cannot see because
 * it is particular to the legacy API — probing, group files, the replay of an IOAS into
 * its container, what a DMA reaches before and after unmap and detach, a client that keeps
 * its device fd, older kernels — and the responder's own ABI rules.
 */

#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "backend-vfio.h"
#include "conformance.h"
#include "macros.h"
#include "simtopo-builder.h"
#include "vfio-abi.h"
#include "vfio-fx.h"
#include "vfio-responder.h"

/* ---- probing ---- */

static void probe_without_container_node(void **state) {
        Fx *fx = vfio_fx_prepare(NULL);

        fx->r->no_container_node = true;
        assert_int_equal(vfio_fx_start(fx), -ENOENT);
        assert_non_null(strstr(error_message(&fx->err), "CONFIG_VFIO_CONTAINER"));
        vfio_fx_free(fx);
}

static void probe_type1_flavours(void **state) {
        Fx *fx = vfio_fx_prepare(NULL);

        fx->r->no_type1 = true;
        assert_int_equal(vfio_fx_start(fx), -EOPNOTSUPP);
        assert_non_null(strstr(error_message(&fx->err), "vfio_iommu_type1"));
        fx->r->no_type1 = false;
        fx->r->type1_only = true;
        assert_int_equal(vfio_fx_start(fx), 0);
        assert_string_equal(backend_vfio_iommu_type(fx->b), "type1");
        assert_true(backend_is_vfio(fx->b));
        assert_true(backend_has_feature(fx->b, BACKEND_FEATURE_IOAS));
        assert_false(backend_has_feature(fx->b, BACKEND_FEATURE_HWPT_ALLOC));
        vfio_fx_free(fx);

        fx = vfio_fx_new();
        assert_string_equal(backend_vfio_iommu_type(fx->b), "type1v2");
        vfio_fx_free(fx);
}

/* ---- fds ---- */

static void identify_group_files(void **state) {
        Fx *fx = vfio_fx_new();
        int g1 = vfio_responder_open_group(fx->r, PLAIN_GROUP);
        int g3 = vfio_responder_open_group(fx->r, SHARED_GROUP);
        _cleanup_close_ int dir = -EBADF, opath = -EBADF;
        _cleanup_free_ char *name = NULL;
        int p[2];

        assert_true(g1 >= 0 && g3 >= 0);
        assert_int_equal(OPS(fx)->device_fd_identify(fx->b, g1, &name, NULL), 0);
        assert_string_equal(name, fx->names[CONF_DEV_PLAIN]);
        /* Two VFIO devices in the group: the file does not say which. */
        assert_int_equal(OPS(fx)->device_fd_identify(fx->b, g3, &name, &fx->err), -EINVAL);
        assert_non_null(strstr(error_message(&fx->err), "by name"));
        /* A group is opened once: a second client open fails as with the kernel. */
        assert_int_equal(vfio_responder_open_group(fx->r, PLAIN_GROUP), -EBUSY);

        assert_int_equal(pipe2(p, O_CLOEXEC), 0);
        assert_int_equal(OPS(fx)->device_fd_identify(fx->b, p[0], &name, NULL), -EBADF);
        safe_close(p[0]);
        safe_close(p[1]);
        opath = open("/dev/null", O_PATH | O_CLOEXEC);
        assert_int_equal(OPS(fx)->device_fd_identify(fx->b, opath, &name, NULL), -EBADF);
        /* What device_open() gives (a sysfs directory) is not accepted from a client. */
        assert_int_equal(OPS(fx)->device_open(fx->b, fx->names[CONF_DEV_PLAIN], &dir, NULL), 0);
        assert_int_equal(OPS(fx)->device_fd_identify(fx->b, dir, &name, NULL), -EBADF);
        assert_int_equal(OPS(fx)->device_open(fx->b, "0000:99:00.0", &opath, NULL), -ENODEV);
        safe_close(g1);
        safe_close(g3);
        vfio_fx_free(fx);
}

static void bind_with_client_group_file(void **state) {
        Fx *fx = vfio_fx_new();
        int g1 = vfio_responder_open_group(fx->r, PLAIN_GROUP), dfd = -EBADF;
        uint32_t dev = 0, ioas = vfio_fx_ioas(fx);

        assert_true(g1 >= 0);
        assert_int_equal(OPS(fx)->device_bind(fx->c, g1, &dev, NULL), 0);
        assert_int_equal(vfio_fx_attach(fx, dev, ioas), 0);
        assert_int_equal(backend_vfio_context_open_device(fx->c, dev, &dfd, NULL), 0);
        assert_true(dfd >= 0);
        safe_close(dfd);
        /* 1: the group file lives on in the client, which keeps it open (and the group). */
        assert_int_equal(OPS(fx)->device_unbind(fx->c, dev, NULL), 1);
        /* The client's open file is its own: the backend let go of its copy only. */
        assert_int_equal(vfio_responder_open_fds(fx->r), 1);
        assert_int_equal(vfio_responder_open_group(fx->r, PLAIN_GROUP), -EBUSY);
        safe_close(g1);
        vfio_fx_free(fx);
}

static void bind_group_open_elsewhere_ebusy(void **state) {
        Fx *fx = vfio_fx_new();
        int g1 = vfio_responder_open_group(fx->r, PLAIN_GROUP);
        _cleanup_close_ int fd = -EBADF;
        uint32_t dev;

        assert_int_equal(OPS(fx)->device_open(fx->b, fx->names[CONF_DEV_PLAIN], &fd, NULL), 0);
        assert_int_equal(OPS(fx)->device_bind(fx->c, fd, &dev, &fx->err), -EBUSY);
        assert_non_null(strstr(error_message(&fx->err), "legacy VFIO API"));
        safe_close(g1);
        vfio_fx_free(fx);
}

/* ---- the IOAS and its container ---- */

static void maps_replayed_when_the_first_group_joins(void **state) {
        Fx *fx = vfio_fx_new();
        _cleanup_close_ int mfd = vfio_fx_memfd(4);
        uint32_t ioas = vfio_fx_ioas(fx), dev = vfio_fx_bind(fx, CONF_DEV_PLAIN);
        uint64_t iova = 0x100000, unmapped = 0;

        assert_int_equal(OPS(fx)->ioas_map_file(fx->c, ioas, RW | BACKEND_MAP_FIXED_IOVA, mfd, P,
                                                2 * P, &iova, NULL), 0);
        /* No group yet: the container does not exist, the backend holds the area. */
        assert_int_equal(fx->r->n_map_dma, 0);
        assert_int_equal(vfio_responder_n_containers(fx->r), 0);
        assert_int_equal(vfio_fx_attach(fx, dev, ioas), 0);
        assert_int_equal(fx->r->n_map_dma, 1);
        /* A DMA to the IOVA lands in the memfd at the offset mapped. */
        assert_int_equal(vfio_fx_dma_read(fx, PLAIN_GROUP, 0x100000), 'B');
        assert_int_equal(vfio_fx_dma_read(fx, PLAIN_GROUP, 0x100000 + P), 'C');
        assert_int_equal(vfio_fx_dma_read(fx, PLAIN_GROUP, 0x100000 + 2 * P), 0);
        assert_int_equal(OPS(fx)->ioas_unmap(fx->c, ioas, 0x100000, 2 * P, &unmapped, NULL), 0);
        assert_int_equal(unmapped, 2 * P);
        assert_int_equal(vfio_fx_dma_read(fx, PLAIN_GROUP, 0x100000), 0);
        assert_int_equal(backend_vfio_mappings(fx->b), 0);
        vfio_fx_free(fx);
}

static void detach_lets_the_container_go(void **state) {
        Fx *fx = vfio_fx_new();
        _cleanup_close_ int mfd = vfio_fx_memfd(1);
        uint32_t ioas = vfio_fx_ioas(fx), dev = vfio_fx_bind(fx, CONF_DEV_PLAIN);
        uint64_t iova = 0;
        IovaRange ranges[4];
        size_t n = ELEMENTSOF(ranges);
        uint64_t align = 0;

        assert_int_equal(vfio_fx_attach(fx, dev, ioas), 0);
        assert_int_equal(OPS(fx)->ioas_map_file(fx->c, ioas, RW, mfd, 0, P, &iova, NULL), 0);
        assert_int_equal(vfio_fx_dma_read(fx, PLAIN_GROUP, iova), 'A');
        /* The usable ranges are the container's: the 39-bit aperture minus the MSI window. */
        assert_int_equal(OPS(fx)->ioas_iova_ranges(fx->c, ioas, ranges, &n, &align, NULL), 0);
        assert_int_equal(n, 2);
        assert_int_equal(ranges[0].last, CONF_MSI_START - 1);
        assert_int_equal(ranges[1].start, CONF_MSI_LAST + 1);
        assert_int_equal(ranges[1].last, (UINT64_C(1) << 39) - 1);
        assert_int_equal(align, P);

        assert_int_equal(OPS(fx)->device_detach(fx->c, dev, BACKEND_NO_PASID, NULL), 0);
        assert_int_equal(vfio_responder_n_containers(fx->r), 0);
        assert_int_equal(vfio_fx_dma_read(fx, PLAIN_GROUP, iova), 0);
        /* The IOAS kept its area: the next attach puts it back. */
        assert_int_equal(vfio_fx_attach(fx, dev, ioas), 0);
        assert_int_equal(vfio_fx_dma_read(fx, PLAIN_GROUP, iova), 'A');
        vfio_fx_free(fx);
}

static void held_device_fd_detach_wipes(void **state) {
        Fx *fx = vfio_fx_new();
        _cleanup_close_ int mfd = vfio_fx_memfd(1);
        uint32_t ioas = vfio_fx_ioas(fx), dev = vfio_fx_bind(fx, CONF_DEV_PLAIN);
        uint64_t iova = 0;
        int dfd = -EBADF;

        assert_int_equal(backend_vfio_context_open_device(fx->c, dev, &dfd, NULL), -EINVAL);
        assert_int_equal(vfio_fx_attach(fx, dev, ioas), 0);
        assert_int_equal(OPS(fx)->ioas_map_file(fx->c, ioas, RW, mfd, 0, P, &iova, NULL), 0);
        assert_int_equal(backend_vfio_context_open_device(fx->c, dev, &dfd, NULL), 0);
        /* The client keeps its device fd: the group cannot leave, the container is wiped. */
        assert_int_equal(OPS(fx)->device_detach(fx->c, dev, BACKEND_NO_PASID, NULL), 0);
        assert_true(vfio_responder_group_container(fx->r, PLAIN_GROUP) != NULL);
        assert_int_equal(vfio_fx_dma_read(fx, PLAIN_GROUP, iova), 0);
        assert_int_equal(vfio_responder_mapped_bytes(fx->r), 0);
        assert_int_equal(vfio_fx_attach(fx, dev, ioas), -EBUSY);
        assert_non_null(strstr(error_message(&fx->err), "still holds a device fd"));
        safe_close(dfd);
        assert_int_equal(vfio_fx_attach(fx, dev, ioas), 0);
        assert_int_equal(vfio_fx_dma_read(fx, PLAIN_GROUP, iova), 'A');
        vfio_fx_free(fx);
}

static void held_device_fd_in_a_shared_container(void **state) {
        Fx *fx = vfio_fx_new();
        _cleanup_close_ int mfd = vfio_fx_memfd(1);
        uint32_t ioas = vfio_fx_ioas(fx), plain = vfio_fx_bind(fx, CONF_DEV_PLAIN);
        uint32_t other = vfio_fx_bind(fx, CONF_DEV_PASID);
        const void *before;
        uint64_t iova = 0;
        int dfd = -EBADF;

        assert_int_equal(vfio_fx_attach(fx, plain, ioas), 0);
        assert_int_equal(vfio_fx_attach(fx, other, ioas), 0);
        before = vfio_responder_group_container(fx->r, PASID_GROUP);
        assert_ptr_equal(before, vfio_responder_group_container(fx->r, PLAIN_GROUP));
        assert_int_equal(OPS(fx)->ioas_map_file(fx->c, ioas, RW, mfd, 0, P, &iova, NULL), 0);
        assert_int_equal(backend_vfio_context_open_device(fx->c, plain, &dfd, NULL), 0);
        /* A detach would take the other group's DMA away too: refused. */
        assert_int_equal(OPS(fx)->device_detach(fx->c, plain, BACKEND_NO_PASID, &fx->err), -EBUSY);
        assert_int_equal(vfio_fx_dma_read(fx, PASID_GROUP, iova), 'A');
        /* Unbinding cannot be refused: the plain group reaches nothing, the other moved. */
        assert_int_equal(OPS(fx)->device_unbind(fx->c, plain, NULL), 0);
        assert_int_equal(vfio_fx_dma_read(fx, PLAIN_GROUP, iova), 0);
        assert_int_equal(vfio_fx_dma_read(fx, PASID_GROUP, iova), 'A');
        assert_ptr_not_equal(vfio_responder_group_container(fx->r, PASID_GROUP), before);
        safe_close(dfd);
        vfio_fx_free(fx);
}

static void replace_moves_the_group(void **state) {
        Fx *fx = vfio_fx_new();
        _cleanup_close_ int mfd = vfio_fx_memfd(2);
        uint32_t ioas1 = vfio_fx_ioas(fx), ioas2 = vfio_fx_ioas(fx);
        uint32_t a = vfio_fx_bind(fx, CONF_DEV_GROUP_A), b = vfio_fx_bind(fx, CONF_DEV_GROUP_B);
        uint64_t iova1 = 0x200000, iova2 = 0x200000;
        int dfd = -EBADF;

        assert_int_equal(OPS(fx)->ioas_map_file(fx->c, ioas1, RW | BACKEND_MAP_FIXED_IOVA, mfd,
                                                0, P, &iova1, NULL), 0);
        assert_int_equal(OPS(fx)->ioas_map_file(fx->c, ioas2, RW | BACKEND_MAP_FIXED_IOVA, mfd,
                                                P, P, &iova2, NULL), 0);
        assert_int_equal(vfio_fx_attach(fx, a, ioas1), 0);
        assert_int_equal(vfio_fx_attach(fx, b, ioas1), 0);
        assert_int_equal(vfio_fx_dma_read(fx, SHARED_GROUP, 0x200000), 'A');
        /* Both devices of the group move with the replace. */
        assert_int_equal(vfio_fx_attach(fx, a, ioas2), 0);
        assert_int_equal(vfio_fx_dma_read(fx, SHARED_GROUP, 0x200000), 'B');
        assert_int_equal(OPS(fx)->destroy(fx->c, ioas1, NULL), 0);
        /* A client's device fd pins the group in its container: no replace then. */
        assert_int_equal(backend_vfio_context_open_device(fx->c, b, &dfd, NULL), 0);
        ioas1 = vfio_fx_ioas(fx);
        assert_int_equal(vfio_fx_attach(fx, a, ioas1), -EBUSY);
        assert_int_equal(vfio_fx_dma_read(fx, SHARED_GROUP, 0x200000), 'B');
        safe_close(dfd);
        vfio_fx_free(fx);
}

static void context_free_wipes_what_a_client_holds(void **state) {
        Fx *fx = vfio_fx_new();
        _cleanup_close_ int mfd = vfio_fx_memfd(1);
        uint32_t ioas = vfio_fx_ioas(fx), dev = vfio_fx_bind(fx, CONF_DEV_PLAIN);
        uint64_t iova = 0;
        int dfd = -EBADF;

        assert_int_equal(vfio_fx_attach(fx, dev, ioas), 0);
        assert_int_equal(OPS(fx)->ioas_map_file(fx->c, ioas, RW, mfd, 0, P, &iova, NULL), 0);
        assert_int_equal(backend_vfio_context_open_device(fx->c, dev, &dfd, NULL), 0);
        backend_context_free(fx->c);
        fx->c = NULL;
        assert_int_equal(vfio_fx_dma_read(fx, PLAIN_GROUP, iova), 0);
        assert_int_equal(vfio_responder_mapped_bytes(fx->r), 0);
        assert_int_equal(backend_vfio_mappings(fx->b), 0);
        /* The group stays held by the client's device fd until it closes it. */
        assert_int_equal(vfio_responder_open_group(fx->r, PLAIN_GROUP), -EBUSY);
        safe_close(dfd);
        vfio_fx_free(fx);
}

static void older_kernels(void **state) {
        Fx *fx = vfio_fx_prepare(NULL);
        _cleanup_close_ int mfd = vfio_fx_memfd(2);
        uint32_t ioas, dev;
        uint64_t iova = 0;
        IovaRange ranges[4];
        size_t n = ELEMENTSOF(ranges);
        int dfd = -EBADF;

        /* 6.1: capabilities packed, no VFIO_UNMAP_ALL before 5.12. */
        fx->r->packed_caps = true;
        fx->r->no_unmap_all = true;
        assert_int_equal(vfio_fx_start(fx), 0);
        ioas = vfio_fx_ioas(fx);
        dev = vfio_fx_bind(fx, CONF_DEV_PLAIN);
        assert_int_equal(vfio_fx_attach(fx, dev, ioas), 0);
        assert_int_equal(OPS(fx)->ioas_iova_ranges(fx->c, ioas, ranges, &n, NULL, NULL), 0);
        assert_int_equal(n, 2);
        assert_int_equal(ranges[1].start, CONF_MSI_LAST + 1);
        assert_int_equal(OPS(fx)->ioas_map_file(fx->c, ioas, RW, mfd, 0, 2 * P, &iova, NULL), 0);
        assert_int_equal(backend_vfio_context_open_device(fx->c, dev, &dfd, NULL), 0);
        /* The wipe goes area by area. */
        assert_int_equal(OPS(fx)->device_detach(fx->c, dev, BACKEND_NO_PASID, NULL), 0);
        assert_int_equal(vfio_responder_mapped_bytes(fx->r), 0);
        safe_close(dfd);
        vfio_fx_free(fx);
}

static void many_reserved_ranges(void **state) {
        SimTopology *t = tb_new("many");
        size_t m, g;
        Fx *fx;
        uint32_t ioas, dev;
        IovaRange ranges[64];
        size_t n = ELEMENTSOF(ranges);

        m = tb_iommu(t, &(SimIommu){ .name = (char *)"dmar0", .kind = (char *)"intel",
                                     .aperture_last = (UINT64_C(1) << 39) - 1,
                                     .page_sizes = P });
        g = tb_group(t, 7, m);
        for (uint64_t i = 0; i < 40; i++)
                tb_region(t, g, 0x10000000 + i * 0x100000, 0x10000000 + i * 0x100000 + P - 1,
                          REGION_RESERVED);
        tb_device(t, g, "0000:07:00.0", "vfio-pci", 0x020000, 0, 0);
        fx = vfio_fx_prepare(t);
        assert_int_equal(vfio_fx_start(fx), 0);
        ioas = vfio_fx_ioas(fx);
        {
                _cleanup_close_ int fd = -EBADF;

                assert_int_equal(OPS(fx)->device_open(fx->b, "0000:07:00.0", &fd, NULL), 0);
                assert_int_equal(OPS(fx)->device_bind(fx->c, fd, &dev, NULL), 0);
        }
        /* The capability chain does not fit the first buffer: GET_INFO is asked again. */
        assert_int_equal(vfio_fx_attach(fx, dev, ioas), 0);
        assert_int_equal(OPS(fx)->ioas_iova_ranges(fx->c, ioas, ranges, &n, NULL, NULL), 0);
        assert_int_equal(n, 32);
        vfio_fx_free(fx);
}

static void dma_entry_limit(void **state) {
        Fx *fx = vfio_fx_prepare(NULL);
        _cleanup_close_ int mfd = vfio_fx_memfd(3);
        uint32_t ioas, dev;
        uint64_t iova = 0;

        fx->r->dma_entry_limit = 2;
        assert_int_equal(vfio_fx_start(fx), 0);
        ioas = vfio_fx_ioas(fx);
        dev = vfio_fx_bind(fx, CONF_DEV_PLAIN);
        assert_int_equal(vfio_fx_attach(fx, dev, ioas), 0);
        for (int i = 0; i < 2; i++)
                assert_int_equal(OPS(fx)->ioas_map_file(fx->c, ioas, RW, mfd, (uint64_t)i * P, P,
                                                        &iova, NULL), 0);
        assert_int_equal(OPS(fx)->ioas_map_file(fx->c, ioas, RW, mfd, 2 * P, P, &iova, &fx->err),
                         -ENOSPC);
        assert_non_null(strstr(error_message(&fx->err), "dma_entry_limit"));
        /* The failed map left nothing behind: no area, no mmap. */
        assert_int_equal(backend_vfio_mappings(fx->b), 2);
        vfio_fx_free(fx);
}

static void map_file_rules(void **state) {
        Fx *fx = vfio_fx_new();
        _cleanup_close_ int mfd = vfio_fx_memfd(2), ro = -EBADF;
        uint32_t ioas = vfio_fx_ioas(fx), dev = vfio_fx_bind(fx, CONF_DEV_PLAIN);
        uint64_t iova = 0;
        char path[64];

        snprintf(path, sizeof(path), "/proc/self/fd/%d", mfd);
        ro = open(path, O_RDONLY | O_CLOEXEC);
        assert_true(ro >= 0);
        /* The device may write: the mapping must be writeable. */
        assert_int_equal(OPS(fx)->ioas_map_file(fx->c, ioas, RW, ro, 0, P, &iova, &fx->err),
                         -EACCES);
        assert_int_equal(OPS(fx)->ioas_map_file(fx->c, ioas, BACKEND_MAP_READABLE, ro, 0, P,
                                                &iova, NULL), 0);
        /* A read-only source cannot be copied writeable. */
        assert_int_equal(OPS(fx)->ioas_copy(fx->c, ioas, ioas, RW, iova, P, &(uint64_t){ 0 },
                                            NULL), -EPERM);
        /* With a domain, a sub-page offset cannot be mapped. */
        assert_int_equal(vfio_fx_attach(fx, dev, ioas), 0);
        assert_int_equal(OPS(fx)->ioas_map_file(fx->c, ioas, RW, mfd, 8, P, &iova, NULL), -EINVAL);
        /* Nor anything into the MSI window. */
        iova = CONF_MSI_START;
        assert_int_equal(OPS(fx)->ioas_map_file(fx->c, ioas, RW | BACKEND_MAP_FIXED_IOVA, mfd, 0,
                                                P, &iova, NULL), -EINVAL);
        vfio_fx_free(fx);
}

static void what_type1_cannot_do(void **state) {
        Fx *fx = vfio_fx_new();
        uint32_t ioas = vfio_fx_ioas(fx), dev = vfio_fx_bind(fx, CONF_DEV_PLAIN), id, pt = ioas;
        HwptAllocArgs a = { .dev_id = dev, .pt_id = ioas };
        uint64_t v = 0;
        HwInfo info;
        int fd;

        assert_int_equal(OPS(fx)->hwpt_alloc(fx->c, &a, &id, &fx->err), -EOPNOTSUPP);
        assert_non_null(strstr(error_message(&fx->err), "needs iommufd"));
        assert_int_equal(OPS(fx)->device_attach(fx->c, dev, 1, &pt, &fx->err), -EOPNOTSUPP);
        assert_non_null(strstr(error_message(&fx->err), "PASID"));
        assert_int_equal(OPS(fx)->hw_info(fx->c, dev, &info, NULL), -EOPNOTSUPP);
        assert_int_equal(OPS(fx)->option(fx->c, BACKEND_OPTION_RLIMIT_MODE, BACKEND_OPTION_OP_GET,
                                         0, &v, NULL), -EOPNOTSUPP);
        assert_int_equal(OPS(fx)->fault_queue_alloc(fx->c, &id, &fd, NULL), -EOPNOTSUPP);
        assert_int_equal(OPS(fx)->context_fd(fx->c), -EOPNOTSUPP);
        vfio_fx_free(fx);
}

/* ---- restart ---- */

static void restart_keeps_the_kernel_objects(void **state) {
        Fx *fx = vfio_fx_new();
        _cleanup_close_ int mfd = vfio_fx_memfd(4);
        uint32_t ioas = vfio_fx_ioas(fx), other = vfio_fx_ioas(fx);
        uint32_t dev = vfio_fx_bind(fx, CONF_DEV_PLAIN);
        uint64_t iova = 0x300000, iova2 = 0x500000, n = 0;
        IovaRange allowed = { 0x100000, 0x7fffff }, ranges[4];
        size_t n_ranges = ELEMENTSOF(ranges);
        uint32_t hwpt = ioas, id;
        VfioFxStore st = {};
        int dfd = -EBADF;

        assert_int_equal(OPS(fx)->ioas_allow_iovas(fx->c, ioas, &allowed, 1, NULL), 0);
        assert_int_equal(OPS(fx)->device_attach(fx->c, dev, BACKEND_NO_PASID, &hwpt, NULL), 0);
        assert_int_equal(OPS(fx)->ioas_map_file(fx->c, ioas, RW | BACKEND_MAP_FIXED_IOVA, mfd, 0,
                                                P, &iova, NULL), 0);
        assert_int_equal(OPS(fx)->ioas_map_file(fx->c, ioas, RW | BACKEND_MAP_FIXED_IOVA, mfd, P,
                                                P, &iova2, NULL), 0);
        vfio_fx_restart(fx, &st);

        /* The kernel kept the container, the group in it and the mappings. */
        assert_true(vfio_responder_dma_reaches(fx->r, PLAIN_GROUP, iova, NULL));
        assert_int_equal(OPS(fx)->ioas_iova_ranges(fx->c, ioas, ranges, &n_ranges, NULL, NULL), 0);
        assert_int_equal(n_ranges, 2);
        assert_int_equal(OPS(fx)->destroy(fx->c, hwpt, NULL), -EBUSY);
        assert_int_equal(OPS(fx)->destroy(fx->c, ioas, NULL), -EBUSY);
        assert_int_equal(backend_vfio_context_open_device(fx->c, dev, &dfd, NULL), 0);
        safe_close(dfd);
        /* New ids do not collide with the adopted ones. */
        assert_int_equal(OPS(fx)->ioas_alloc(fx->c, &id, NULL), 0);
        assert_true(id != ioas && id != other && id != dev && id != hwpt);
        /* Adopted mappings can be unmapped, not copied; the allowed list came back. */
        assert_int_equal(OPS(fx)->ioas_unmap(fx->c, ioas, iova, P, &n, NULL), 0);
        assert_false(vfio_responder_dma_reaches(fx->r, PLAIN_GROUP, iova, NULL));
        assert_int_equal(OPS(fx)->ioas_map_file(fx->c, ioas, RW, mfd, 2 * P, P, &iova, NULL), 0);
        assert_true(iova >= allowed.start && iova <= allowed.last);
        assert_int_equal(OPS(fx)->ioas_copy(fx->c, ioas, ioas, RW, iova2, P, &(uint64_t){ 0 },
                                            &fx->err), -EINVAL);
        assert_non_null(strstr(error_message(&fx->err), "before iommud restarted"));
        /* A new container cannot take them back. */
        assert_int_equal(OPS(fx)->device_detach(fx->c, dev, BACKEND_NO_PASID, NULL), 0);
        assert_int_equal(vfio_fx_attach(fx, dev, ioas), -EADDRINUSE);
        assert_int_equal(OPS(fx)->ioas_unmap(fx->c, ioas, iova2, P, &n, NULL), 0);
        assert_int_equal(vfio_fx_attach(fx, dev, ioas), 0);
        vfio_fx_free(fx);
}

static void restart_with_a_missing_fd(void **state) {
        Fx *fx = vfio_fx_new();
        uint32_t ioas = vfio_fx_ioas(fx), dev = vfio_fx_bind(fx, CONF_DEV_PLAIN);
        json_object *saved = NULL;
        VfioFxStore st = {};

        assert_int_equal(vfio_fx_attach(fx, dev, ioas), 0);
        assert_int_equal(backend_vfio_context_save(fx->c, &saved), 0);
        assert_int_equal(backend_vfio_context_foreach_fd(fx->c, vfio_fx_store_fd, &st), 0);
        assert_int_equal(st.n, 2);
        /* The container went missing: the adoption fails and ends what it took. */
        safe_close(vfio_fx_store_take("ioas1", &st));
        backend_vfio_keep_kernel_state(fx->b);
        backend_context_free(fx->c);
        fx->c = NULL;
        assert_int_equal(backend_vfio_context_adopt(fx->b, saved, vfio_fx_store_take, &st, &fx->c,
                                                    &fx->err), -ENOENT);
        assert_non_null(strstr(error_message(&fx->err), "ioas1"));
        assert_null(fx->c);
        /* What the store still holds goes when it is closed, as systemd closes it. */
        safe_close(vfio_fx_store_take("group1", &st));
        assert_int_equal(vfio_responder_n_containers(fx->r), 0);
        json_object_put(saved);
        backend_free(fx->b);
        fx->b = NULL;
        vfio_fx_free(fx);
}

/* ---- the responder's own rules (the model the backend is tested against) ---- */

static void responder_abi_rules(void **state) {
        Fx *fx = vfio_fx_new();
        char path[128];
        struct iommud_vfio_iommu_type1_dma_map m = { .argsz = sizeof(m), .size = P,
                                                     .flags = IOMMUD_VFIO_DMA_MAP_FLAG_READ,
                                                     .vaddr = 0x10000, .iova = 0x10000 };
        struct iommud_vfio_iommu_type1_dma_unmap u = { .argsz = sizeof(u) };
        int c, g, host;

        snprintf(path, sizeof(path), "%s/dev/vfio/vfio", fx->root);
        c = vfio_responder_syscalls.open(fx->r, path, O_RDWR);
        g = vfio_responder_open_group(fx->r, PLAIN_GROUP);
        host = vfio_responder_open_group(fx->r, 4);
        assert_true(c >= 0 && g >= 0 && host >= 0);
        assert_int_equal(vfio_responder_ioctl(fx->r, c, IOMMUD_VFIO_IOMMU_MAP_DMA, &m), -EINVAL);
        assert_int_equal(vfio_responder_ioctl(fx->r, c, IOMMUD_VFIO_SET_IOMMU,
                                              (void *)(uintptr_t)IOMMUD_VFIO_TYPE1v2_IOMMU),
                         -EINVAL);
        assert_int_equal(vfio_responder_ioctl(fx->r, g, IOMMUD_VFIO_GROUP_GET_DEVICE_FD,
                                              (void *)fx->names[CONF_DEV_PLAIN]), -EINVAL);
        assert_int_equal(vfio_responder_ioctl(fx->r, host, IOMMUD_VFIO_GROUP_SET_CONTAINER, &c),
                         -EPERM);
        assert_int_equal(vfio_responder_ioctl(fx->r, g, IOMMUD_VFIO_GROUP_SET_CONTAINER, &c), 0);
        assert_int_equal(vfio_responder_ioctl(fx->r, g, IOMMUD_VFIO_GROUP_SET_CONTAINER, &c),
                         -EINVAL);
        assert_int_equal(vfio_responder_ioctl(fx->r, c, IOMMUD_VFIO_SET_IOMMU,
                                              (void *)(uintptr_t)IOMMUD_VFIO_TYPE1v2_IOMMU), 0);
        m.argsz = IOMMUD_VFIO_MAP_MINSZ - 1;
        assert_int_equal(vfio_responder_ioctl(fx->r, c, IOMMUD_VFIO_IOMMU_MAP_DMA, &m), -EINVAL);
        m.argsz = sizeof(m);
        m.flags |= 1u << 7;
        assert_int_equal(vfio_responder_ioctl(fx->r, c, IOMMUD_VFIO_IOMMU_MAP_DMA, &m), -EINVAL);
        m.flags = IOMMUD_VFIO_DMA_MAP_FLAG_READ;
        m.size = 2 * P;
        assert_int_equal(vfio_responder_ioctl(fx->r, c, IOMMUD_VFIO_IOMMU_MAP_DMA, &m), 0);
        assert_int_equal(vfio_responder_ioctl(fx->r, c, IOMMUD_VFIO_IOMMU_MAP_DMA, &m), -EEXIST);
        /* v2: a cut is refused before anything goes; an empty range unmaps 0 bytes. */
        u.iova = 0x10000;
        u.size = P;
        assert_int_equal(vfio_responder_ioctl(fx->r, c, IOMMUD_VFIO_IOMMU_UNMAP_DMA, &u), -EINVAL);
        u.iova = 0x100000;
        assert_int_equal(vfio_responder_ioctl(fx->r, c, IOMMUD_VFIO_IOMMU_UNMAP_DMA, &u), 0);
        assert_int_equal(u.size, 0);
        u.flags = IOMMUD_VFIO_DMA_UNMAP_FLAG_ALL;
        u.iova = u.size = 0;
        assert_int_equal(vfio_responder_ioctl(fx->r, c, IOMMUD_VFIO_IOMMU_UNMAP_DMA, &u), 0);
        assert_int_equal(u.size, 2 * P);
        assert_int_equal(vfio_responder_ioctl(fx->r, g, IOMMUD_VFIO_GROUP_UNSET_CONTAINER, NULL),
                         0);
        safe_close(c);
        safe_close(g);
        safe_close(host);
        vfio_fx_free(fx);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(probe_without_container_node),
                cmocka_unit_test(probe_type1_flavours),
                cmocka_unit_test(identify_group_files),
                cmocka_unit_test(bind_with_client_group_file),
                cmocka_unit_test(bind_group_open_elsewhere_ebusy),
                cmocka_unit_test(maps_replayed_when_the_first_group_joins),
                cmocka_unit_test(detach_lets_the_container_go),
                cmocka_unit_test(held_device_fd_detach_wipes),
                cmocka_unit_test(held_device_fd_in_a_shared_container),
                cmocka_unit_test(replace_moves_the_group),
                cmocka_unit_test(context_free_wipes_what_a_client_holds),
                cmocka_unit_test(older_kernels),
                cmocka_unit_test(many_reserved_ranges),
                cmocka_unit_test(dma_entry_limit),
                cmocka_unit_test(map_file_rules),
                cmocka_unit_test(what_type1_cannot_do),
                cmocka_unit_test(restart_keeps_the_kernel_objects),
                cmocka_unit_test(restart_with_a_missing_fd),
                cmocka_unit_test(responder_abi_rules),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
