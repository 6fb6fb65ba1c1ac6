/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "assert-util.h"
#include "log.h"
#include "session-internal.h"

/* ---- policy IOVA windows --------------------------------------------------------------- */

static bool windows_contain(const IovaWindow *w, size_t n, uint64_t first, uint64_t last) {
        if (n == 0)
                return true;
        for (size_t i = 0; i < n; i++)
                if (first >= w[i].start && last <= w[i].last)
                        return true;
        return false;
}

/*
 * Checks [first, last] against the windows the policy gives this principal for
 * every device attached to the IOAS, or for the principal alone when none is.
 */
int session_check_windows(Session *s, const SessionIoas *ioas, uint64_t first, uint64_t last,
                          BrokerError *err) {
        const IovaWindow *w;
        Principal p;
        size_t n;
        bool any = false;

        session_principal(s, &p);
        for (size_t i = 0; i < s->n_devices; i++) {
                const TopoDevice *td;

                if (s->devices[i].ioas_id != ioas->id)
                        continue;
                td = topology_find_device(s->host->topology, s->devices[i].name);
                if (!td)
                        continue;
                any = true;
                if (policy_iova_windows(s->host->policy, &p, td, &w, &n) < 0)
                        continue;
                if (!windows_contain(w, n, first, last))
                        return broker_error_invalid_range(err, first, last - first + 1,
                                "IOVA range 0x%" PRIx64 "-0x%" PRIx64
                                " is outside the IOVA windows the policy grants for device %s.",
                                first, last, td->name);
        }
        if (!any && policy_iova_windows(s->host->policy, &p, NULL, &w, &n) >= 0 &&
            !windows_contain(w, n, first, last))
                return broker_error_invalid_range(err, first, last - first + 1,
                        "IOVA range 0x%" PRIx64 "-0x%" PRIx64
                        " is outside the IOVA windows the policy grants.",
                        first, last);
        return 0;
}

/* ---- address spaces -------------------------------------------------------------------- */

int session_apply_allowed(Session *s, SessionIoas *ioas, BrokerError *err) {
        const IovaWindow *w = NULL;
        _cleanup_free_ IovaRange *r = NULL;
        Error be = ERROR_INIT;
        Principal p;
        size_t n = 0;
        int k;

        /* The client's list, or else the policy's windows, keeps automatic IOVAs inside them. */
        if (ioas->n_allowed > 0)
                k = OPS(s)->ioas_allow_iovas(s->ctx, ioas->id, ioas->allowed, ioas->n_allowed,
                                             &be);
        else {
                session_principal(s, &p);
                if (policy_iova_windows(s->host->policy, &p, NULL, &w, &n) < 0 || n == 0)
                        return 0;
                r = calloc(n, sizeof(*r));
                if (!r)
                        return broker_error_system(err, -ENOMEM, "Allocating memory");
                for (size_t i = 0; i < n; i++)
                        r[i] = (IovaRange){ .start = w[i].start, .last = w[i].last };
                k = OPS(s)->ioas_allow_iovas(s->ctx, ioas->id, r, n, &be);
        }
        if (k < 0)
                return broker_error_from_backend(err, "allow IOVAs", &be);
        return 0;
}

int session_create_address_space(Session *s, uint32_t *ret_ioas_id, BrokerError *err) {
        SessionIoas *arr;
        Error be = ERROR_INIT;
        uint32_t id;
        int r;

        assert_return(s, -EINVAL);
        assert_return(ret_ioas_id, -EINVAL);

        r = session_quota_check(err, BROKER_RESOURCE_ADDRESS_SPACES, s->quotas.address_spaces,
                                s->usage.address_spaces, 1);
        if (r < 0)
                return r;
        arr = realloc(s->ioas, (s->n_ioas + 1) * sizeof(*arr));
        if (!arr)
                return broker_error_system(err, -ENOMEM, "Allocating memory");
        s->ioas = arr;

        r = OPS(s)->ioas_alloc(s->ctx, &id, &be);
        if (r < 0)
                return broker_error_from_backend(err, "allocate an address space", &be);

        s->ioas[s->n_ioas] = (SessionIoas){ .id = id };
        r = session_apply_allowed(s, &s->ioas[s->n_ioas], err);
        if (r < 0) {
                (void)OPS(s)->destroy(s->ctx, id, NULL);
                return r;
        }
        s->n_ioas++;
        s->usage.address_spaces++;
        *ret_ioas_id = id;
        return 0;
}

uint64_t session_ioas_mapped_bytes(const SessionIoas *ioas) {
        uint64_t sum = 0;

        for (size_t i = 0; i < ioas->n_areas; i++)
                sum += ioas->areas[i].length;
        return sum;
}

void session_remove_ioas(Session *s, SessionIoas *ioas) {
        s->usage.pinned_bytes -= session_ioas_mapped_bytes(ioas);
        s->usage.mappings -= ioas->n_areas;
        s->usage.address_spaces--;
        free(ioas->areas);
        free(ioas->allowed);
        *ioas = s->ioas[--s->n_ioas];
}

int session_ioas_teardown(Session *s, uint32_t id) {
        Error be = ERROR_INIT;
        uint64_t n = 0;
        int r;

        if (OPS(s)->ioas_unmap(s->ctx, id, 0, UINT64_MAX, &n, &be) < 0)
                log_debug("Unmapping address space %" PRIu32 " failed, ignoring: %s", id,
                          error_message(&be));
        r = OPS(s)->destroy(s->ctx, id, &be);
        if (r < 0)
                log_debug("Destroying address space %" PRIu32 " failed (emptied, kept by the "
                          "kernel): %s", id, error_message(&be));
        return r;
}

int session_destroy_address_space(Session *s, uint32_t ioas_id, BrokerError *err) {
        SessionIoas *ioas;
        Error be = ERROR_INIT;
        int r;

        assert_return(s, -EINVAL);

        ioas = LOOKUP_IOAS(s, ioas_id, err);
        for (size_t i = 0; i < s->n_pasids; i++)
                if (s->pasids[i].ioas_id == ioas_id) {
                        broker_error_set(err, -EBUSY, BROKER_ERROR_OBJECT_IN_USE,
                                         "Address space %" PRIu32 " is bound to PASID %" PRIu32
                                         " of device %" PRIu32 "; unbind it first.",
                                         ioas_id, s->pasids[i].pasid, s->pasids[i].device_id);
                        broker_error_add_string(err, "kind", BROKER_KIND_ADDRESS_SPACE);
                        broker_error_add_u64(err, "id", ioas_id);
                        broker_error_add_string(err, "reason", "a PASID is bound to it");
                        return -EBUSY;
                }
        if (ioas->n_attached > 0) {
                broker_error_set(err, -EBUSY, BROKER_ERROR_OBJECT_IN_USE,
                                 "Address space %" PRIu32 " has %u device(s) attached; detach "
                                 "them or attach them elsewhere first.",
                                 ioas_id, ioas->n_attached);
                broker_error_add_string(err, "kind", BROKER_KIND_ADDRESS_SPACE);
                broker_error_add_u64(err, "id", ioas_id);
                broker_error_add_string(err, "reason", "devices are attached");
                return -EBUSY;
        }
        r = OPS(s)->destroy(s->ctx, ioas_id, &be);
        if (r == -EBUSY) {
                /* No device of ours is attached: one the client attached by itself is. */
                broker_error_set(err, r, BROKER_ERROR_OBJECT_IN_USE,
                                 "Address space %" PRIu32 " is in use in the kernel: a device "
                                 "file the client holds itself is attached to it (%s).",
                                 ioas_id, error_message(&be));
                broker_error_add_string(err, "kind", BROKER_KIND_ADDRESS_SPACE);
                broker_error_add_u64(err, "id", ioas_id);
                broker_error_add_string(err, "reason",
                                        "a device was attached to it through the client's own "
                                        "VFIO file, not through iommud");
                return r;
        }
        if (r < 0)
                return broker_error_from_backend(err, "destroy the address space", &be);
        session_remove_ioas(s, ioas);
        return 0;
}

/* Existing mappings must lie inside the windows device td may use. */
static int session_check_mappings_in_windows(Session *s, const SessionIoas *ioas,
                                             const TopoDevice *td, BrokerError *err) {
        const IovaWindow *w;
        Principal p;
        size_t n;

        session_principal(s, &p);
        if (policy_iova_windows(s->host->policy, &p, td, &w, &n) < 0)
                return 0;
        for (size_t i = 0; i < ioas->n_areas; i++) {
                uint64_t first = ioas->areas[i].iova;
                uint64_t last = first + ioas->areas[i].length - 1;

                if (!windows_contain(w, n, first, last))
                        return broker_error_invalid_range(err, first, last - first + 1,
                                                          "Address space %" PRIu32 " maps 0x%"
                                                          PRIx64 "-0x%" PRIx64 ", outside the "
                                                          "IOVA windows the policy grants for "
                                                          "device %s.",
                                                          ioas->id, first, last, td->name);
        }
        return 0;
}

/*
 * Counts d (device td, now attached to ioas through page table pt) out of the address space it
 * left and into ioas.  The devices of an IOMMU group share one page table, so a replace moves
 * the whole group: this session's other devices of the group follow, or the address space they
 * left would still count them and the one they are in now would not.
 */
static void session_move_attachment(Session *s, SessionDevice *d, const TopoDevice *td,
                                    SessionIoas *ioas, uint32_t pt) {
        SessionIoas *old = d->ioas_id ? session_find_ioas(s, d->ioas_id) : NULL;
        uint32_t old_id = d->ioas_id;

        if (old && old->n_attached > 0)
                old->n_attached--;
        ioas->n_attached++;
        for (size_t i = 0; old_id && td && td->group && i < s->n_devices; i++) {
                SessionDevice *sib = &s->devices[i];
                const TopoDevice *st;

                if (sib == d || sib->ioas_id != old_id)
                        continue;
                st = topology_find_device(s->host->topology, sib->name);
                if (!st || st->group != td->group)
                        continue;
                if (old && old->n_attached > 0)
                        old->n_attached--;
                ioas->n_attached++;
                sib->ioas_id = ioas->id;
                sib->hwpt_id = pt;
        }
}

int session_attach_to_address_space(Session *s, uint32_t device_id, uint32_t ioas_id,
                                    uint32_t *ret_hwpt_id, BrokerError *err) {
        const TopoDevice *td;
        SessionDevice *d;
        SessionIoas *ioas;
        Error be = ERROR_INIT;
        uint32_t pt = ioas_id;
        int r;

        assert_return(s, -EINVAL);
        assert_return(ret_hwpt_id, -EINVAL);

        d = LOOKUP_DEVICE(s, device_id, err);
        ioas = LOOKUP_IOAS(s, ioas_id, err);
        td = topology_find_device(s->host->topology, d->name);
        if (td) {
                r = session_check_mappings_in_windows(s, ioas, td, err);
                if (r < 0)
                        return r;
        }

        r = OPS(s)->device_attach(s->ctx, d->id, BACKEND_NO_PASID, &pt, &be);
        if (r < 0) {
                if (r == -EADDRINUSE) {
                        broker_error_set(err, r, BROKER_ERROR_IOVA_IN_USE,
                                         "A reserved region of device %s collides with a mapping "
                                         "in address space %" PRIu32 ": %s",
                                         d->name, ioas_id, error_message(&be));
                        return r;
                }
                return broker_error_from_backend(err, "attach", &be);
        }

        if (d->ioas_id != ioas_id)
                session_move_attachment(s, d, td, ioas, pt);
        d->ioas_id = ioas_id;
        d->hwpt_id = pt;
        *ret_hwpt_id = pt;
        return 0;
}

static int range_intersect(uint64_t a0, uint64_t a1, uint64_t b0, uint64_t b1, IovaRange *ret) {
        uint64_t s0 = MAX(a0, b0), s1 = MIN(a1, b1);

        if (s0 > s1)
                return 0;
        *ret = (IovaRange){ .start = s0, .last = s1 };
        return 1;
}

int session_get_iova_ranges(Session *s, uint32_t ioas_id, IovaRange **ret, size_t *ret_n,
                            uint64_t *ret_alignment, BrokerError *err) {
        _cleanup_free_ IovaRange *ranges = NULL, *out = NULL;
        const IovaWindow *w = NULL;
        Error be = ERROR_INIT;
        size_t n = 8, n_w = 0, n_out = 0;
        uint64_t alignment;
        Principal p;
        int r;

        assert_return(s, -EINVAL);
        assert_return(ret && ret_n && ret_alignment, -EINVAL);

        LOOKUP_IOAS(s, ioas_id, err);
        for (;;) {
                size_t cap = n;

                free(ranges);
                ranges = calloc(cap, sizeof(*ranges));
                if (!ranges)
                        return broker_error_system(err, -ENOMEM, "Allocating memory");
                r = OPS(s)->ioas_iova_ranges(s->ctx, ioas_id, ranges, &n, &alignment, &be);
                if (r == -EMSGSIZE && n > cap)
                        continue;
                if (r < 0)
                        return broker_error_from_backend(err, "get IOVA ranges", &be);
                break;
        }

        session_principal(s, &p);
        if (policy_iova_windows(s->host->policy, &p, NULL, &w, &n_w) < 0)
                n_w = 0;
        if (n_w == 0) {
                *ret = TAKE_PTR(ranges);
                *ret_n = n;
                *ret_alignment = alignment;
                return 0;
        }

        out = calloc(n * n_w + 1, sizeof(*out));
        if (!out)
                return broker_error_system(err, -ENOMEM, "Allocating memory");
        for (size_t i = 0; i < n; i++)
                for (size_t j = 0; j < n_w; j++)
                        n_out += range_intersect(ranges[i].start, ranges[i].last, w[j].start,
                                                 w[j].last, &out[n_out]);
        *ret = TAKE_PTR(out);
        *ret_n = n_out;
        *ret_alignment = alignment;
        return 0;
}

int session_allow_iovas(Session *s, uint32_t ioas_id, const IovaRange *ranges, size_t n,
                        BrokerError *err) {
        _cleanup_free_ IovaRange *copy = NULL;
        SessionIoas *ioas;
        IovaRange *old;
        size_t n_old;
        int r;

        assert_return(s, -EINVAL);
        assert_return(ranges || n == 0, -EINVAL);

        ioas = LOOKUP_IOAS(s, ioas_id, err);
        for (size_t i = 0; i < n; i++) {
                if (ranges[i].start > ranges[i].last)
                        return broker_error_invalid_range(err, ranges[i].start, 0,
                                                          "Range %zu starts at 0x%" PRIx64
                                                          " after its end 0x%" PRIx64 ".",
                                                          i, ranges[i].start, ranges[i].last);
                r = session_check_windows(s, ioas, ranges[i].start, ranges[i].last, err);
                if (r < 0)
                        return r;
        }
        if (n > 0) {
                copy = calloc(n, sizeof(*copy));
                if (!copy)
                        return broker_error_system(err, -ENOMEM, "Allocating memory");
                memcpy(copy, ranges, n * sizeof(*copy));
        }

        old = ioas->allowed;
        n_old = ioas->n_allowed;
        ioas->allowed = copy;
        ioas->n_allowed = n;
        r = session_apply_allowed(s, ioas, err);
        if (r < 0) {
                /* Keep what was in force; the backend's list is unchanged on failure. */
                ioas->allowed = old;
                ioas->n_allowed = n_old;
                return r;
        }
        TAKE_PTR(copy);
        free(old);
        return 0;
}

/* ---- the record of mappings ----------------------------------------------------------- */

/* Reserves room for one more area, so that recording it after a map cannot fail. */
int session_ioas_reserve_area(SessionIoas *ioas) {
        SessionArea *a;
        size_t m;

        if (ioas->n_areas < ioas->n_alloc)
                return 0;
        m = ioas->n_alloc ? ioas->n_alloc * 2 : 4;
        a = realloc(ioas->areas, m * sizeof(*a));
        if (!a)
                return -ENOMEM;
        ioas->areas = a;
        ioas->n_alloc = m;
        return 0;
}

void session_ioas_insert_area(SessionIoas *ioas, uint64_t iova, uint64_t length, uint32_t flags) {
        size_t lo = 0, hi = ioas->n_areas;

        while (lo < hi) {
                size_t mid = (lo + hi) / 2;

                if (ioas->areas[mid].iova < iova)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        memmove(&ioas->areas[lo + 1], &ioas->areas[lo], (ioas->n_areas - lo) * sizeof(SessionArea));
        ioas->areas[lo] = (SessionArea){ .iova = iova, .length = length, .flags = flags };
        ioas->n_areas++;
}

/* Index of the first area whose last byte is at or after iova. */
size_t session_ioas_first_area_from(const SessionIoas *ioas, uint64_t iova) {
        size_t lo = 0, hi = ioas->n_areas;

        while (lo < hi) {
                size_t mid = (lo + hi) / 2;
                const SessionArea *a = &ioas->areas[mid];

                if (a->iova + (a->length - 1) < iova)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return lo;
}
