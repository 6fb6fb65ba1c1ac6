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

static int windows_refuse(BrokerError *err, const char *device, uint64_t first, uint64_t last) {
        if (device)
                return broker_error_invalid_range(err, first, last - first + 1,
                        "IOVA range 0x%" PRIx64 "-0x%" PRIx64
                        " is outside the IOVA windows the policy grants for device %s.",
                        first, last, device);
        return broker_error_invalid_range(err, first, last - first + 1,
                                          "IOVA range 0x%" PRIx64 "-0x%" PRIx64
                                          " is outside the IOVA windows the policy grants.",
                                          first, last);
}

/*
 * The windows the policy gives the session's principal for no device, looked up once per
 * policy: every map into an address space without devices asks.
 */
static int principal_windows(Session *s, const IovaWindow **ret, size_t *ret_n) {
        uint64_t gen = policy_generation(s->host->policy);

        if (gen == 0 || gen != s->windows_gen) {
                Principal p;

                session_principal(s, &p);
                s->windows_r = policy_iova_windows(s->host->policy, &p, NULL, &s->windows,
                                                   &s->n_windows);
                s->windows_gen = gen;
        }
        *ret = s->windows;
        *ret_n = s->n_windows;
        return s->windows_r;
}

/*
 * Calls fn for each set of windows that bounds ioas: one per attached device the policy
 * gives windows, or the principal's when no device is attached; stops at fn's error.
 */
static int windows_foreach(Session *s, const SessionIoas *ioas,
                           int (*fn)(const char *device, const IovaWindow *w, size_t n,
                                     void *userdata),
                           void *userdata) {
        const IovaWindow *w;
        Principal p;
        size_t n;
        bool any = false;
        int r;

        for (size_t i = 0; i < s->n_devices; i++) {
                const TopoDevice *td;

                if (s->devices[i].ioas_id != ioas->id)
                        continue;
                td = topology_find_device(s->host->topology, s->devices[i].name);
                if (!td)
                        continue;
                if (!any)
                        session_principal(s, &p);
                any = true;
                if (policy_iova_windows(s->host->policy, &p, td, &w, &n) < 0)
                        continue;
                r = fn(td->name, w, n, userdata);
                if (r < 0)
                        return r;
        }
        if (!any && principal_windows(s, &w, &n) >= 0)
                return fn(NULL, w, n, userdata);
        return 0;
}

typedef struct WindowsRange {
        uint64_t first, last;
        BrokerError *err;
} WindowsRange;

static int range_inside(const char *device, const IovaWindow *w, size_t n, void *userdata) {
        WindowsRange *r = userdata;

        if (windows_contain(w, n, r->first, r->last))
                return 0;
        return windows_refuse(r->err, device, r->first, r->last);
}

/*
 * Checks [first, last] against the windows the policy gives this principal for
 * every device attached to the IOAS, or for the principal alone when none is.
 */
int session_check_windows(Session *s, const SessionIoas *ioas, uint64_t first, uint64_t last,
                          BrokerError *err) {
        WindowsRange range = { first, last, err };

        return windows_foreach(s, ioas, range_inside, &range);
}

static int windows_add(const char *device, const IovaWindow *w, size_t n, void *userdata) {
        SessionWindows *ws = userdata;

        if (ws->n == SESSION_WINDOWS_MAX) {
                ws->per_range = true;
                return -ENOBUFS;
        }
        ws->sets[ws->n].device = device;
        ws->sets[ws->n].w = w;
        ws->sets[ws->n].n = n;
        ws->n++;
        return 0;
}

void session_windows_resolve(Session *s, const SessionIoas *ioas, SessionWindows *ret) {
        ret->per_range = false;
        ret->n = 0;
        (void)windows_foreach(s, ioas, windows_add, ret);
}

int session_windows_check(Session *s, const SessionIoas *ioas, const SessionWindows *w,
                          uint64_t first, uint64_t last, BrokerError *err) {
        WindowsRange range = { first, last, err };

        if (w->per_range)
                return windows_foreach(s, ioas, range_inside, &range);
        for (size_t i = 0; i < w->n; i++) {
                int r = range_inside(w->sets[i].device, w->sets[i].w, w->sets[i].n, &range);

                if (r < 0)
                        return r;
        }
        return 0;
}

/* ---- what the kernel reserves --------------------------------------------------------- */

static int range_intersect(uint64_t a0, uint64_t a1, uint64_t b0, uint64_t b1, IovaRange *ret) {
        uint64_t s0 = MAX(a0, b0), s1 = MIN(a1, b1);

        if (s0 > s1)
                return 0;
        *ret = (IovaRange){ .start = s0, .last = s1 };
        return 1;
}

/* What the address space allows: the client's list, else the principal's windows, else all. */
static void session_ioas_allowed(Session *s, const SessionIoas *ioas, const IovaRange **ret_ranges,
                                 const IovaWindow **ret_windows, size_t *ret_n) {
        Principal p;

        *ret_ranges = NULL;
        *ret_windows = NULL;
        *ret_n = 0;
        if (ioas->n_allowed > 0) {
                *ret_ranges = ioas->allowed;
                *ret_n = ioas->n_allowed;
                return;
        }
        session_principal(s, &p);
        if (policy_iova_windows(s->host->policy, &p, NULL, ret_windows, ret_n) < 0)
                *ret_n = 0;
}

/*
 * Where a region the kernel keeps out of every address space of device name (a reserved region
 * of its group, any type but direct-relaxable) meets a mapping of ioas or an allowed range
 * (ranges, or what ioas allows when ranges is NULL): the kernel's EADDRINUSE, made precise.
 */
static bool session_reserved_collision(Session *s, const SessionIoas *ioas, const char *name,
                                       const IovaRange *ranges, size_t n, IovaRange *ret) {
        const TopoDevice *td = topology_find_device(s->host->topology, name);
        const IovaWindow *windows = NULL;

        if (!td || !td->group)
                return false;
        if (!ranges)
                session_ioas_allowed(s, ioas, &ranges, &windows, &n);
        for (size_t i = 0; i < td->group->n_regions; i++) {
                const ReservedRegion *rr = &td->group->regions[i];

                if (rr->type == REGION_DIRECT_RELAXABLE)
                        continue;
                for (size_t k = 0; k < ioas->n_areas; k++)
                        if (range_intersect(rr->start, rr->last, ioas->areas[k].iova,
                                            ioas->areas[k].iova + (ioas->areas[k].length - 1),
                                            ret))
                                return true;
                for (size_t k = 0; k < n; k++)
                        if (range_intersect(rr->start, rr->last,
                                            ranges ? ranges[k].start : windows[k].start,
                                            ranges ? ranges[k].last : windows[k].last, ret))
                                return true;
        }
        return false;
}

/* IOVAInUse {start, length} for the kernel's EADDRINUSE where reserved meets mapped or allowed. */
static int session_reserved_in_use(Session *s, const SessionIoas *ioas, const char *device,
                                   const IovaRange *ranges, size_t n, const Error *be,
                                   BrokerError *err) {
        IovaRange c = {};

        if (!session_reserved_collision(s, ioas, device, ranges, n, &c))
                return broker_error_from_backend(err, "reserve the device's regions", be);
        broker_error_set(err, -EADDRINUSE, BROKER_ERROR_IOVA_IN_USE,
                         "IOVA range 0x%" PRIx64 "-0x%" PRIx64 " of address space %" PRIu32
                         " is reserved by the IOMMU group of device %s, but %s: %s",
                         c.start, c.last, ioas->id, device,
                         ranges ? "the ranges allow it" : "mapped or allowed there",
                         error_message(be));
        broker_error_add_u64(err, "start", c.start);
        broker_error_add_u64(err, "length", c.last - c.start + 1);
        return -EADDRINUSE;
}

/* ---- address spaces -------------------------------------------------------------------- */

/* The kernel refused an allowed list: say which range, with the parameters of its error. */
static int session_allowed_error(Session *s, const SessionIoas *ioas, const IovaRange *ranges,
                                 size_t n, const Error *be, BrokerError *err) {
        /* A range over a region the group of an attached device reserves. */
        for (size_t i = 0; be->error == -EADDRINUSE && i < s->n_devices; i++)
                if (s->devices[i].ioas_id == ioas->id &&
                    session_reserved_collision(s, ioas, s->devices[i].name, ranges, n,
                                               &(IovaRange){}))
                        return session_reserved_in_use(s, ioas, s->devices[i].name, ranges, n,
                                                       be, err);
        /* Ranges that overlap one another. */
        for (size_t i = 0; be->error == -EINVAL && i < n; i++)
                for (size_t k = 0; k < i; k++)
                        if (ranges[i].start <= ranges[k].last && ranges[k].start <= ranges[i].last)
                                return broker_error_invalid_range(
                                        err, ranges[i].start, ranges[i].last - ranges[i].start + 1,
                                        "Range %zu (0x%" PRIx64 "-0x%" PRIx64 ") overlaps range "
                                        "%zu (0x%" PRIx64 "-0x%" PRIx64 ").",
                                        i, ranges[i].start, ranges[i].last, k, ranges[k].start,
                                        ranges[k].last);
        return broker_error_from_backend(err, "allow IOVAs", be);
}

int session_apply_allowed(Session *s, SessionIoas *ioas, BrokerError *err) {
        const IovaWindow *w = NULL;
        _cleanup_free_ IovaRange *r = NULL;
        const IovaRange *ranges;
        Error be;
        size_t n = 0;

        error_init(&be);
        /*
         * The client's list, or else the policy's windows, keeps automatic IOVAs inside them; an
         * empty list clears what was allowed before.
         */
        session_ioas_allowed(s, ioas, &ranges, &w, &n);
        if (w && n > 0) {
                r = calloc(n, sizeof(*r));
                if (!r)
                        return broker_error_system(err, -ENOMEM, "Allocating memory");
                for (size_t i = 0; i < n; i++)
                        r[i] = (IovaRange){ .start = w[i].start, .last = w[i].last };
                ranges = r;
        }
        if (OPS(s)->ioas_allow_iovas(s->ctx, ioas->id, ranges, n, &be) < 0)
                return session_allowed_error(s, ioas, ranges, n, &be, err);
        return 0;
}

int session_create_address_space(Session *s, uint32_t *ret_ioas_id, BrokerError *err) {
        SessionIoas *arr;
        Error be;
        uint32_t id;
        int r;

        error_init(&be);
        assert_return(s, -EINVAL);
        assert_return(ret_ioas_id, -EINVAL);

        REFUSE_IF_DELEGATED(s, err);

        arr = realloc(s->ioas, (s->n_ioas + 1) * sizeof(*arr));
        if (!arr)
                return broker_error_system(err, -ENOMEM, "Allocating memory");
        s->ioas = arr;
        r = session_charge(s, SESSION_RESOURCE_ADDRESS_SPACES, 1, err);
        if (r < 0)
                return r;

        r = OPS(s)->ioas_alloc(s->ctx, &id, &be);
        if (r < 0) {
                session_refund(s, SESSION_RESOURCE_ADDRESS_SPACES, 1);
                return broker_error_from_backend(err, "allocate an address space", &be);
        }

        s->ioas[s->n_ioas] = (SessionIoas){ .id = id };
        r = session_apply_allowed(s, &s->ioas[s->n_ioas], err);
        if (r < 0) {
                (void)OPS(s)->destroy(s->ctx, id, NULL);
                session_refund(s, SESSION_RESOURCE_ADDRESS_SPACES, 1);
                return r;
        }
        s->n_ioas++;
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
        session_refund_mappings(s, ioas->n_areas, session_ioas_mapped_bytes(ioas));
        session_refund(s, SESSION_RESOURCE_ADDRESS_SPACES, 1);
        session_ioas_free_areas(ioas);
        free(ioas->allowed);
        free(ioas->dirty_hwpts);
        *ioas = s->ioas[--s->n_ioas];
}

int session_ioas_teardown(Session *s, SessionIoas *ioas) {
        Error be;
        uint32_t id = ioas->id;
        uint64_t n = 0;
        int r;

        error_init(&be);
        /* Page tables iommud made for it hold it: they go first. */
        session_dirty_destroy_hwpts(s, ioas);
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
        Error be;
        int r;

        error_init(&be);
        assert_return(s, -EINVAL);

        REFUSE_IF_DELEGATED(s, err);

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
        session_dirty_destroy_hwpts(s, ioas);
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

/*
 * The devices of an IOMMU group share one page table: a device of a group whose other device is
 * attached elsewhere can only join it there (the kernel's EINVAL), or be moved with it (a
 * replace moves the whole group).
 */
static int session_check_group_attach(Session *s, const SessionDevice *d, const TopoDevice *td,
                                      uint32_t ioas_id, BrokerError *err) {
        char reason[192];

        if (!td || !td->group || d->ioas_id != 0)
                return 0;
        for (size_t i = 0; i < s->n_devices; i++) {
                const SessionDevice *sib = &s->devices[i];
                const TopoDevice *st;

                if (sib == d || sib->ioas_id == 0 || sib->ioas_id == ioas_id)
                        continue;
                st = topology_find_device(s->host->topology, sib->name);
                if (!st || st->group != td->group)
                        continue;
                snprintf(reason, sizeof(reason),
                         "it shares IOMMU group %u with %s, whose page table is address space %"
                         PRIu32, td->group->id, sib->name, sib->ioas_id);
                broker_error_set(err, -EBUSY, BROKER_ERROR_OBJECT_IN_USE,
                                 "Device %s (deviceId %" PRIu32 ") cannot go to address space %"
                                 PRIu32 ": %s; attach it there, or move %s first.",
                                 d->name, d->id, ioas_id, reason, sib->name);
                broker_error_add_string(err, "kind", BROKER_KIND_DEVICE);
                broker_error_add_u64(err, "id", sib->id);
                broker_error_add_string(err, "reason", reason);
                return -EBUSY;
        }
        return 0;
}

int session_attach_to_address_space(Session *s, uint32_t device_id, uint32_t ioas_id,
                                    uint32_t *ret_hwpt_id, BrokerError *err) {
        const TopoDevice *td;
        SessionDevice *d;
        SessionIoas *ioas;
        Error be;
        uint32_t pt = ioas_id;
        bool new_pt = false;
        int r;

        error_init(&be);
        assert_return(s, -EINVAL);
        assert_return(ret_hwpt_id, -EINVAL);

        REFUSE_IF_DELEGATED(s, err);

        d = LOOKUP_DEVICE(s, device_id, err);
        ioas = LOOKUP_IOAS(s, ioas_id, err);
        td = topology_find_device(s->host->topology, d->name);
        r = session_check_group_attach(s, d, td, ioas_id, err);
        if (r < 0)
                return r;
        if (td) {
                r = session_check_mappings_in_windows(s, ioas, td, err);
                if (r < 0)
                        return r;
        }

        if (ioas->dirty_tracking) {
                r = session_dirty_page_table(s, d, td, ioas, &pt, &new_pt, err);
                if (r < 0)
                        return r;
        }

        r = OPS(s)->device_attach(s->ctx, d->id, BACKEND_NO_PASID, &pt, &be);
        if (r < 0 && new_pt)
                session_dirty_drop(s, ioas, pt);
        if (r == -EADDRINUSE)
                return session_reserved_in_use(s, ioas, d->name, NULL, 0, &be, err);
        /* VFIO type1 knows only once the group is in the container whether it logs. */
        if (r == -EOPNOTSUPP && ioas->dirty_tracking)
                return session_dirty_refused(ioas, d, &be, err);
        if (r < 0)
                return broker_error_from_backend(err, "attach", &be);

        if (d->ioas_id != ioas_id)
                session_move_attachment(s, d, td, ioas, pt);
        d->ioas_id = ioas_id;
        d->hwpt_id = pt;
        *ret_hwpt_id = pt;
        return 0;
}

int session_get_iova_ranges(Session *s, uint32_t ioas_id, IovaRange **ret, size_t *ret_n,
                            uint64_t *ret_alignment, BrokerError *err) {
        _cleanup_free_ IovaRange *ranges = NULL, *out = NULL;
        const IovaWindow *w = NULL;
        Error be;
        size_t n = 8, n_w = 0, n_out = 0;
        uint64_t alignment;
        Principal p;
        int r;

        error_init(&be);
        assert_return(s, -EINVAL);
        assert_return(ret && ret_n && ret_alignment, -EINVAL);

        REFUSE_IF_DELEGATED(s, err);

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

        REFUSE_IF_DELEGATED(s, err);

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

/* Makes room for one more area when the allocation is full. */
int session_ioas_grow_areas(SessionIoas *ioas) {
        SessionArea *base = ioas->areas ? ioas->areas - ioas->n_head : NULL, *a;
        size_t m;

        if (ioas->n_head + ioas->n_areas < ioas->n_alloc)
                return 0;
        /* Half the allocation free in front: moving the areas back costs no more than the
         * unmaps that freed it did not move. */
        if (ioas->n_head > 0 && ioas->n_head >= ioas->n_alloc / 2) {
                memmove(base, ioas->areas, ioas->n_areas * sizeof(*base));
                ioas->areas = base;
                ioas->n_head = 0;
                return 0;
        }
        m = ioas->n_alloc ? ioas->n_alloc * 2 : 4;
        a = realloc(base, m * sizeof(*a));
        if (!a)
                return -ENOMEM;
        ioas->areas = a + ioas->n_head;
        ioas->n_alloc = m;
        return 0;
}

void session_ioas_remove_areas(SessionIoas *ioas, size_t first, size_t end) {
        size_t k = end - first;

        if (ioas->n_areas == k) {
                ioas->areas -= ioas->n_head;
                ioas->n_head = 0;
        } else if (first < ioas->n_areas - end) {
                /* Fewer areas below the range than above it: those move up (often none). */
                if (first > 0)
                        memmove(&ioas->areas[k], &ioas->areas[0], first * sizeof(SessionArea));
                ioas->areas += k;
                ioas->n_head += k;
        } else
                memmove(&ioas->areas[first], &ioas->areas[end],
                        (ioas->n_areas - end) * sizeof(SessionArea));
        ioas->n_areas -= k;
}

void session_ioas_free_areas(SessionIoas *ioas) {
        free(ioas->areas ? ioas->areas - ioas->n_head : NULL);
        ioas->areas = NULL;
        ioas->n_areas = ioas->n_alloc = ioas->n_head = 0;
}

void session_ioas_insert_area(SessionIoas *ioas, uint64_t iova, uint64_t length, uint32_t flags) {
        size_t lo = 0, hi = ioas->n_areas;

        /* Above every area (a VMM maps its RAM in order): no search, nothing to move. */
        if (hi > 0 && ioas->areas[hi - 1].iova < iova)
                lo = hi;
        while (lo < hi) {
                size_t mid = (lo + hi) / 2;

                if (ioas->areas[mid].iova < iova)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        if (lo < ioas->n_areas)
                memmove(&ioas->areas[lo + 1], &ioas->areas[lo],
                        (ioas->n_areas - lo) * sizeof(SessionArea));
        ioas->areas[lo] = (SessionArea){ .iova = iova, .length = length, .flags = flags };
        ioas->n_areas++;
}

/* Index of the first area whose last byte is at or after iova. */
size_t session_ioas_first_area_from(const SessionIoas *ioas, uint64_t iova) {
        size_t lo = 0, hi = ioas->n_areas;

        /* The lowest area (an unmap in the order of the maps): no search. */
        if (hi == 0 || ioas->areas[0].iova + (ioas->areas[0].length - 1) >= iova)
                return 0;
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
