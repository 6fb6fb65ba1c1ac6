/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Dirty tracking of address spaces, for live migration: an address space created with it gets
 * page tables allocated with dirty tracking for its devices (one per IOMMU instance, as the
 * kernel shares an automatic domain), SetDirtyTracking turns tracking on or off on all of them,
 * and a bitmap read ORs theirs into the client's memfd, which iommud maps so the kernel writes
 * the bits straight into it.
 */

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "assert-util.h"
#include "session-internal.h"

/* A run whose first bit is not a word's first is read through a buffer this many bits long. */
#define DIRTY_CHUNK_BITS (UINT64_C(1) << 18)

static bool dirty_supported(Session *s) {
        return backend_has_feature(s->host->backend, BACKEND_FEATURE_DIRTY_TRACKING) &&
               OPS(s)->hwpt_set_dirty_tracking && OPS(s)->hwpt_get_dirty_bitmap;
}

int session_create_address_space_full(Session *s, bool dirty_tracking, uint32_t *ret_ioas_id,
                                      BrokerError *err) {
        uint32_t id;
        int r;

        assert_return(s, -EINVAL);
        assert_return(ret_ioas_id, -EINVAL);

        if (dirty_tracking && !s->delegated && !dirty_supported(s))
                return broker_error_not_supported(err, "dirty-tracking",
                                                  "The %s backend has no dirty tracking "
                                                  "(iommufd's IOMMU_HWPT_SET_DIRTY_TRACKING).",
                                                  OPS(s)->name);
        if (dirty_tracking) {
                Principal p;

                session_principal(s, &p);
                if (!policy_allows_dirty_tracking(s->host->policy, &p)) {
                        broker_error_set(err, -EPERM, BROKER_ERROR_POLICY_DENIED,
                                         "The policy does not allow %s dirty tracking.",
                                         s->description);
                        broker_error_add_string(err, "device", "");
                        broker_error_add_string(err, "step", "dirty-tracking");
                        broker_error_add_string(err, "reason", "a grant naming this principal "
                                                "has \"dirty-tracking\": false");
                        return -EPERM;
                }
        }
        r = session_create_address_space(s, &id, err);
        if (r < 0)
                return r;
        session_find_ioas(s, id)->dirty_tracking = dirty_tracking;
        *ret_ioas_id = id;
        return 0;
}

int session_dirty_refused(const SessionIoas *ioas, const SessionDevice *d, const Error *be,
                          BrokerError *err) {
        (void)broker_error_not_supported(err, "dirty-tracking",
                                         "Address space %" PRIu32 " tracks dirty pages, but the "
                                         "IOMMU of device %s cannot: %s",
                                         ioas->id, d->name, error_message(be));
        broker_error_add_string(err, "device", d->name);
        return -EOPNOTSUPP;
}

int session_dirty_page_table(Session *s, const SessionDevice *d, const TopoDevice *td,
                             SessionIoas *ioas, uint32_t *ret_pt, bool *ret_new,
                             BrokerError *err) {
        HwptAllocArgs a = { .flags = BACKEND_HWPT_DIRTY_TRACKING, .dev_id = d->id,
                            .pt_id = ioas->id };
        const char *iommu = td && td->iommu ? td->iommu->name : "";
        SessionDirtyHwpt *arr;
        Error be = ERROR_INIT;
        uint32_t id;
        int r;

        for (size_t i = 0; iommu[0] && i < ioas->n_dirty_hwpts; i++)
                if (streq(ioas->dirty_hwpts[i].iommu, iommu)) {
                        *ret_pt = ioas->dirty_hwpts[i].id;
                        *ret_new = false;
                        return 0;
                }
        arr = reallocarray(ioas->dirty_hwpts, ioas->n_dirty_hwpts + 1, sizeof(*arr));
        if (!arr)
                return broker_error_system(err, -ENOMEM, "Allocating memory");
        ioas->dirty_hwpts = arr;
        r = OPS(s)->hwpt_alloc(s->ctx, &a, &id, &be);
        if (r == -EOPNOTSUPP)
                return session_dirty_refused(ioas, d, &be, err);
        if (r < 0)
                return broker_error_from_backend(err, "allocate a dirty-tracking page table",
                                                 &be);
        /* One page table for several IOMMUs (VFIO type1: the address space's container). */
        for (size_t i = 0; i < ioas->n_dirty_hwpts; i++)
                if (ioas->dirty_hwpts[i].id == id) {
                        *ret_pt = id;
                        *ret_new = false;
                        return 0;
                }
        if (ioas->dirty_enabled) {
                r = OPS(s)->hwpt_set_dirty_tracking(s->ctx, id, true, &be);
                if (r < 0) {
                        (void)OPS(s)->destroy(s->ctx, id, NULL);
                        return broker_error_from_backend(err, "start dirty tracking", &be);
                }
        }
        arr[ioas->n_dirty_hwpts].id = id;
        snprintf(arr[ioas->n_dirty_hwpts].iommu, sizeof(arr->iommu), "%s", iommu);
        ioas->n_dirty_hwpts++;
        *ret_pt = id;
        *ret_new = true;
        return 0;
}

void session_dirty_drop(Session *s, SessionIoas *ioas, uint32_t pt) {
        for (size_t i = 0; i < ioas->n_dirty_hwpts; i++)
                if (ioas->dirty_hwpts[i].id == pt) {
                        (void)OPS(s)->destroy(s->ctx, pt, NULL);
                        ioas->dirty_hwpts[i] = ioas->dirty_hwpts[--ioas->n_dirty_hwpts];
                        return;
                }
}

void session_dirty_destroy_hwpts(Session *s, SessionIoas *ioas) {
        while (ioas->n_dirty_hwpts > 0)
                (void)OPS(s)->destroy(s->ctx, ioas->dirty_hwpts[--ioas->n_dirty_hwpts].id, NULL);
}

static int dirty_ioas(Session *s, uint32_t ioas_id, SessionIoas **ret, BrokerError *err) {
        *ret = session_find_ioas(s, ioas_id);
        if (!*ret)
                return broker_error_no_such_object(err, BROKER_KIND_ADDRESS_SPACE, ioas_id);
        if (!(*ret)->dirty_tracking)
                return broker_error_not_supported(err, "dirty-tracking",
                                                  "Address space %" PRIu32 " was created without "
                                                  "dirty tracking.", ioas_id);
        return 0;
}

int session_set_dirty_tracking(Session *s, uint32_t ioas_id, bool enabled, BrokerError *err) {
        SessionIoas *ioas;
        Error be = ERROR_INIT;
        int r;

        assert_return(s, -EINVAL);
        REFUSE_IF_DELEGATED(s, err);
        r = dirty_ioas(s, ioas_id, &ioas, err);
        if (r < 0)
                return r;
        for (size_t i = 0; i < ioas->n_dirty_hwpts; i++)
                if (OPS(s)->hwpt_set_dirty_tracking(s->ctx, ioas->dirty_hwpts[i].id, enabled,
                                                    &be) < 0)
                        return broker_error_from_backend(err, "set dirty tracking", &be);
        ioas->dirty_enabled = enabled;
        return 0;
}

uint64_t session_dirty_bitmap_bytes(uint64_t length, uint64_t page_size) {
        uint64_t bits = length / page_size;

        return (bits / 64 + (bits % 64 != 0)) * sizeof(uint64_t);
}

/* What a bitmap request must be before anything is read: *ret_last is its last IOVA. */
static int dirty_check_args(Session *s, const SessionDirtyArgs *a, SessionIoas **ret_ioas,
                            uint64_t *ret_last, BrokerError *err) {
        int r = dirty_ioas(s, a->ioas_id, ret_ioas, err);

        if (r < 0)
                return r;
        if (a->page_size == 0 || (a->page_size & (a->page_size - 1)))
                return session_invalid_parameter(err, "pageSize",
                                                 "pageSize %" PRIu64 " is not a power of two.",
                                                 a->page_size);
        if (a->length == 0 || ADD_OVERFLOW(a->iova, a->length - 1, ret_last))
                return broker_error_invalid_range(err, a->iova, a->length,
                                                  "IOVA 0x%" PRIx64 " + length 0x%" PRIx64
                                                  " is empty or overflows 64 bits.",
                                                  a->iova, a->length);
        if ((a->iova | a->length) & (a->page_size - 1))
                return broker_error_invalid_range(err, a->iova, a->length,
                                                  "IOVA 0x%" PRIx64 " and length 0x%" PRIx64
                                                  " must be multiples of pageSize 0x%" PRIx64 ".",
                                                  a->iova, a->length, a->page_size);
        if (session_dirty_bitmap_bytes(a->length, a->page_size) > SESSION_DIRTY_BITMAP_MAX)
                return broker_error_invalid_range(err, a->iova, a->length,
                                                  "The bitmap of 0x%" PRIx64 " bytes at pageSize "
                                                  "0x%" PRIx64 " would pass %" PRIu64 " bytes.",
                                                  a->length, a->page_size,
                                                  SESSION_DIRTY_BITMAP_MAX);
        if (!(*ret_ioas)->dirty_enabled)
                return session_invalid_parameter(err, "ioasId",
                                                 "Dirty tracking of address space %" PRIu32
                                                 " is off; SetDirtyTracking turns it on.",
                                                 a->ioas_id);
        return 0;
}

/* The first bytes of the client's memfd, mapped writable and zeroed. */
static int dirty_map_fd(int fd, uint64_t bytes, uint64_t **ret, BrokerError *err) {
        struct stat st;
        void *p;

        if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
                return broker_error_invalid_fd(err, -EBADF, "The bitmap fd is not a memfd.");
        if ((uint64_t)st.st_size < bytes)
                return broker_error_invalid_fd(err, -EINVAL,
                                               "The bitmap takes %" PRIu64 " bytes; the memfd "
                                               "has %" PRIu64 ".", bytes, (uint64_t)st.st_size);
        p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (p == MAP_FAILED)
                return broker_error_invalid_fd(err, -errno,
                                               "The bitmap memfd cannot be written (opened "
                                               "read-only, or sealed against writes): %m.");
        memset(p, 0, bytes);
        *ret = p;
        return 0;
}

/* ORs n_bits of src into dst from bit at. */
static void bits_or(uint64_t *dst, uint64_t at, const uint64_t *src, uint64_t n_bits) {
        for (uint64_t w = 0; w * 64 < n_bits; w++)
                for (uint64_t v = src[w]; v; v &= v - 1) {
                        uint64_t bit = at + w * 64 + (uint64_t)__builtin_ctzll(v);

                        dst[bit / 64] |= UINT64_C(1) << (bit % 64);
                }
}

/* Reads [start, start + n_bits * page_size) of every page table into data, ORed. */
static int dirty_read_hwpts(Session *s, const SessionIoas *ioas, const SessionDirtyArgs *a,
                            uint64_t start, uint64_t n_bits, uint32_t flags, uint64_t *data,
                            BrokerError *err) {
        Error be = ERROR_INIT;

        for (size_t i = 0; i < ioas->n_dirty_hwpts; i++) {
                DirtyBitmapArgs d = {
                        .hwpt_id = ioas->dirty_hwpts[i].id, .flags = flags, .iova = start,
                        .length = n_bits * a->page_size, .page_size = a->page_size, .data = data,
                };

                if (OPS(s)->hwpt_get_dirty_bitmap(s->ctx, &d, &be) < 0)
                        return broker_error_from_backend_range(err, "read the dirty bitmap", &be,
                                                               start, d.length);
        }
        return 0;
}

/* One run of contiguous mappings, [start, last]: straight into the bitmap when word-aligned. */
static int dirty_read_run(Session *s, const SessionIoas *ioas, const SessionDirtyArgs *a,
                          uint64_t start, uint64_t last, uint32_t flags, uint64_t *bitmap,
                          BrokerError *err) {
        _cleanup_free_ uint64_t *tmp = NULL;
        uint64_t bit = (start - a->iova) / a->page_size;
        uint64_t n_bits = (last - start) / a->page_size + 1;
        int r;

        if ((start | (last + 1)) & (a->page_size - 1))
                return broker_error_invalid_range(err, start, last - start + 1,
                                                  "The mappings at 0x%" PRIx64 "-0x%" PRIx64
                                                  " are not whole pages of pageSize 0x%" PRIx64
                                                  ".", start, last, a->page_size);
        if (bit % 64 == 0)
                return dirty_read_hwpts(s, ioas, a, start, n_bits, flags, bitmap + bit / 64,
                                        err);
        tmp = malloc(DIRTY_CHUNK_BITS / 8);
        if (!tmp)
                return broker_error_system(err, -ENOMEM, "Allocating memory");
        for (uint64_t done = 0; done < n_bits;) {
                uint64_t n = MIN(n_bits - done, DIRTY_CHUNK_BITS);

                memset(tmp, 0, DIRTY_CHUNK_BITS / 8);
                r = dirty_read_hwpts(s, ioas, a, start + done * a->page_size, n, flags, tmp, err);
                if (r < 0)
                        return r;
                bits_or(bitmap, bit + done, tmp, n);
                done += n;
        }
        return 0;
}

/* Every run of mappings inside [a->iova, last]; gaps read clean. */
static int dirty_collect(Session *s, const SessionIoas *ioas, const SessionDirtyArgs *a,
                         uint64_t last, uint32_t flags, uint64_t *bitmap, BrokerError *err) {
        size_t i = session_ioas_first_area_from(ioas, a->iova);

        while (i < ioas->n_areas && ioas->areas[i].iova <= last) {
                uint64_t start = MAX(ioas->areas[i].iova, a->iova);
                uint64_t end = ioas->areas[i].iova + (ioas->areas[i].length - 1);
                int r;

                while (i + 1 < ioas->n_areas && end < last &&
                       ioas->areas[i + 1].iova == end + 1) {
                        i++;
                        end = ioas->areas[i].iova + (ioas->areas[i].length - 1);
                }
                r = dirty_read_run(s, ioas, a, start, MIN(end, last), flags, bitmap, err);
                if (r < 0)
                        return r;
                i++;
        }
        return 0;
}

/*
 * The pages of the client's bitmap that iommud writes are faulted by iommud, so the kernel
 * charges them to iommud's memory cgroup, not the client's: while the call runs they count
 * against the principal's pinned-memory quota, like the memory its mappings pin.
 */
static int dirty_charge_bitmap(Session *s, uint64_t bytes, BrokerError *err) {
        int r = session_charge(s, SESSION_RESOURCE_PINNED_BYTES, bytes, err);

        if (r == -EDQUOT && err)
                (void)error_prefix(&err->error, "The dirty bitmap takes %" PRIu64 " bytes of "
                                   "iommud's memory", bytes);
        return r;
}

static int dirty_read_into_fd(Session *s, const SessionDirtyArgs *a, uint32_t flags,
                              BrokerError *err) {
        SessionIoas *ioas;
        uint64_t *bitmap = NULL, last = 0, bytes;
        int r;

        r = dirty_check_args(s, a, &ioas, &last, err);
        if (r < 0)
                return r;
        bytes = session_dirty_bitmap_bytes(a->length, a->page_size);
        r = dirty_charge_bitmap(s, bytes, err);
        if (r < 0)
                return r;
        r = dirty_map_fd(a->bitmap_fd, bytes, &bitmap, err);
        if (r >= 0) {
                r = dirty_collect(s, ioas, a, last, flags, bitmap, err);
                (void)munmap(bitmap, bytes);
        }
        session_refund(s, SESSION_RESOURCE_PINNED_BYTES, bytes);
        return r;
}

int session_read_dirty_bitmap(Session *s, const SessionDirtyArgs *args, BrokerError *err) {
        assert_return(s, -EINVAL);
        assert_return(args, -EINVAL);
        REFUSE_IF_DELEGATED(s, err);

        return dirty_read_into_fd(s, args, args->clear ? 0 : BACKEND_DIRTY_NO_CLEAR, err);
}

int session_unmap_dirty(Session *s, const SessionDirtyArgs *args, uint64_t *ret_unmapped,
                        BrokerError *err) {
        int r;

        assert_return(s, -EINVAL);
        assert_return(args && ret_unmapped, -EINVAL);
        REFUSE_IF_DELEGATED(s, err);

        r = dirty_read_into_fd(s, args, BACKEND_DIRTY_NO_CLEAR, err);
        if (r < 0)
                return r;
        return session_unmap(s, args->ioas_id, args->iova, args->length, ret_unmapped, err);
}

int session_get_features(Session *s, bool has_device, uint32_t device_id, SessionFeatures *ret,
                         BrokerError *err) {
        SessionFeatures f = {
                .backend = OPS(s)->name,
                .kernel = s->host->backend->features,
                .has_device = has_device,
                .device_id = device_id,
        };
        Principal p;

        assert_return(s, -EINVAL);
        assert_return(ret, -EINVAL);

        f.dirty_tracking_offered = dirty_supported(s);
        f.delegation_offered = !s->delegated &&
                               session_can_hand_iommufd(s, "delegation", NULL) >= 0;
        if (has_device) {
                SessionDevice *d = LOOKUP_DEVICE(s, device_id, err);

                /*
                 * A backend without IOMMU_GET_HW_INFO (VFIO type1) tells nothing of the IOMMU:
                 * its dirty tracking is the container's, which the kernel's answer covers.
                 */
                if (OPS(s)->hw_info(s->ctx, d->id, &f.hw, NULL) < 0)
                        f.hw = (HwInfo){};
                else
                        f.dirty_tracking_offered &=
                                !!(f.hw.capabilities & BACKEND_HW_CAP_DIRTY_TRACKING);
        }
        session_principal(s, &p);
        f.dirty_tracking_granted = policy_allows_dirty_tracking(s->host->policy, &p);
        f.delegation_granted = policy_allows_delegation(s->host->policy, &p);
        *ret = f;
        return 0;
}
