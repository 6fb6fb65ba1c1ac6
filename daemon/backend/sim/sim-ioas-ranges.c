/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * What of an IOAS's address space may be mapped: reserved ranges (device regions, aperture
 * gaps of its paging domains), the allowed ranges a user set, and the alignment the domains
 * impose.
 */

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "assert-util.h"
#include "sim-private.h"

/* ---- reserved ranges and alignment ---- */

static bool ioas_allowed_overlaps(SimIoas *ioas, uint64_t start, uint64_t last) {
        SIM_FOREACH(r, ioas->allowed, ioas->n_allowed)
                if (r->start <= last && r->last >= start)
                        return true;
        return false;
}

/* Reserves [start, last] for owner; EADDRINUSE when an area or allowed range is there. */
int sim_ioas_reserve(SimIoas *ioas, uint64_t start, uint64_t last, const void *owner,
                     Error *err) {
        SimReserved *v;

        if (iova_tree_first_overlap(&ioas->areas, start, last))
                return error_set(err, -EADDRINUSE,
                                 "Reserved range 0x%" PRIx64 "-0x%" PRIx64
                                 " collides with a mapping in IOAS %" PRIu32,
                                 start, last, ioas->obj.id);
        if (ioas_allowed_overlaps(ioas, start, last))
                return error_set(err, -EADDRINUSE,
                                 "Reserved range 0x%" PRIx64 "-0x%" PRIx64
                                 " intersects an allowed range of IOAS %" PRIu32,
                                 start, last, ioas->obj.id);
        v = realloc(ioas->resv, (ioas->n_resv + 1) * sizeof(SimReserved));
        if (!v)
                return error_set(err, -ENOMEM, "Out of memory for reserved ranges");
        ioas->resv = v;
        ioas->resv[ioas->n_resv++] = (SimReserved){ start, last, owner };
        return 0;
}

void sim_ioas_unreserve(SimIoas *ioas, const void *owner) {
        size_t j = 0;

        for (size_t i = 0; i < ioas->n_resv; i++)
                if (ioas->resv[i].owner != owner)
                        ioas->resv[j++] = ioas->resv[i];
        ioas->n_resv = j;
}

bool sim_ioas_owner_has_reserved(SimIoas *ioas, const void *owner) {
        SIM_FOREACH(r, ioas->resv, ioas->n_resv)
                if (r->owner == owner)
                        return true;
        return false;
}

/* Merges the reserved ranges into a sorted, disjoint list. */
int sim_ioas_reserved_sorted(SimIoas *ioas, IovaRange **ret, size_t *ret_n) {
        _cleanup_free_ IovaRange *v = NULL;
        size_t n = 0;

        if (ioas->n_resv > 0) {
                v = malloc(ioas->n_resv * sizeof(IovaRange));
                if (!v)
                        return -ENOMEM;
        }
        for (size_t i = 0; i < ioas->n_resv; i++) {
                IovaRange r = { ioas->resv[i].start, ioas->resv[i].last };
                size_t k = n;

                while (k > 0 && v[k - 1].start > r.start) {
                        v[k] = v[k - 1];
                        k--;
                }
                v[k] = r;
                n++;
        }
        /* merge */
        size_t m = 0;
        for (size_t i = 0; i < n; i++) {
                if (m > 0 && (v[m - 1].last == UINT64_MAX || v[i].start <= v[m - 1].last + 1)) {
                        v[m - 1].last = MAX(v[m - 1].last, v[i].last);
                        continue;
                }
                v[m++] = v[i];
        }
        *ret = TAKE_PTR(v);
        *ret_n = m;
        return 0;
}

uint64_t sim_ioas_compute_alignment(SimContext *c, SimIoas *ioas, const SimHwpt *skip,
                                    const SimHwpt *extra, bool disable_large_pages) {
        uint64_t a = disable_large_pages ? BACKEND_SIM_PAGE_SIZE : 1;

        for (size_t i = 0; i < ioas->n_domains; i++)
                if (ioas->domains[i] != skip)
                        a = MAX(a, sim_lowest_bit(sim_hwpt_iommu(c, ioas->domains[i])->page_sizes));
        if (extra)
                a = MAX(a, sim_lowest_bit(c->sim->iommus[extra->iommu].page_sizes));
        return a;
}

typedef struct AlignCheck {
        uint64_t mask;
        const SimArea *bad;
} AlignCheck;

static void align_check_one(IovaNode *n, void *userdata) {
        AlignCheck *ac = userdata;
        SimArea *a = (SimArea *)n;

        if (ac->bad)
                return;
        if ((a->node.start & ac->mask) || ((a->node.last - a->node.start + 1) & ac->mask) ||
            ((a->source % BACKEND_SIM_PAGE_SIZE) & ac->mask))
                ac->bad = a;
}

/* Raising the alignment requires every existing area to obey it (else EADDRINUSE). */
int sim_ioas_check_alignment(SimIoas *ioas, uint64_t alignment, Error *err) {
        AlignCheck ac = { .mask = alignment - 1 };

        if (alignment <= ioas->alignment)
                return 0;
        iova_tree_foreach(&ioas->areas, align_check_one, &ac);
        if (ac.bad)
                return error_set(err, -EADDRINUSE,
                                 "Area 0x%" PRIx64 "-0x%" PRIx64 " of IOAS %" PRIu32
                                 " is not aligned to %" PRIu64,
                                 ac.bad->node.start, ac.bad->node.last, ioas->obj.id, alignment);
        return 0;
}

/* Adds a paging domain: aperture gaps become reserved, alignment rises. */
int sim_ioas_add_domain(SimContext *c, SimIoas *ioas, SimHwpt *h, Error *err) {
        SimIommuModel *m = &c->sim->iommus[h->iommu];
        uint64_t a = sim_ioas_compute_alignment(c, ioas, NULL, h, ioas->disable_large_pages);
        SimHwpt **v;
        int r;

        r = sim_ioas_check_alignment(ioas, a, err);
        if (r < 0)
                return r;
        v = realloc(ioas->domains, (ioas->n_domains + 1) * sizeof(SimHwpt *));
        if (!v)
                return error_set(err, -ENOMEM, "Out of memory for domains");
        ioas->domains = v;
        if (m->aperture_start > 0) {
                r = sim_ioas_reserve(ioas, 0, m->aperture_start - 1, h, err);
                if (r < 0)
                        goto fail;
        }
        if (m->aperture_last < UINT64_MAX) {
                r = sim_ioas_reserve(ioas, m->aperture_last + 1, UINT64_MAX, h, err);
                if (r < 0)
                        goto fail;
        }
        /* The first domain pins every area (iopt_table_add_domain() fills it from them). */
        if (ioas->n_domains == 0) {
                r = sim_ioas_pin_all(c, ioas, err);
                if (r < 0)
                        goto fail;
        }
        ioas->domains[ioas->n_domains++] = h;
        ioas->alignment = a;
        return 0;
fail:
        sim_ioas_unreserve(ioas, h);
        return r;
}

void sim_ioas_remove_domain(SimContext *c, SimIoas *ioas, SimHwpt *h) {
        size_t j = 0;

        sim_ioas_unreserve(ioas, h);
        for (size_t i = 0; i < ioas->n_domains; i++)
                if (ioas->domains[i] != h)
                        ioas->domains[j++] = ioas->domains[i];
        ioas->n_domains = j;
        if (j == 0)
                sim_ioas_unpin_all(c, ioas);
        ioas->alignment =
                sim_ioas_compute_alignment(c, ioas, NULL, NULL, ioas->disable_large_pages);
}

/* ---- IOMMU_IOAS_IOVA_RANGES, IOMMU_IOAS_ALLOW_IOVAS ---- */

int sim_ioas_iova_ranges(BackendContext *bc, uint32_t ioas_id, IovaRange *ranges,
                         size_t *n_ranges, uint64_t *ret_alignment, Error *err) {
        SimContext *c = to_ctx(bc);
        _cleanup_free_ IovaRange *resv = NULL;
        size_t n_resv = 0, n = 0, cap;
        uint64_t cursor = 0;
        bool valid = true;
        SimIoas *ioas;
        int r;

        assert_return(bc, -EINVAL);
        assert_return(n_ranges, -EINVAL);
        assert_return(ranges || *n_ranges == 0, -EINVAL);

        cap = *n_ranges;
        r = sim_obj_lookup(c, ioas_id, SIM_OBJ_IOAS, (void **)&ioas, err);
        if (r < 0)
                return r;
        r = sim_ioas_reserved_sorted(ioas, &resv, &n_resv);
        if (r < 0)
                return error_set(err, r, "Out of memory");

        for (size_t i = 0; i <= n_resv; i++) {
                uint64_t hole_last;

                if (!valid)
                        break;
                if (i < n_resv) {
                        if (resv[i].start > cursor) {
                                hole_last = resv[i].start - 1;
                                if (n < cap)
                                        ranges[n] = (IovaRange){ cursor, hole_last };
                                n++;
                        }
                        if (resv[i].last == UINT64_MAX)
                                valid = false;
                        else
                                cursor = resv[i].last + 1;
                } else {
                        if (n < cap)
                                ranges[n] = (IovaRange){ cursor, UINT64_MAX };
                        n++;
                }
        }
        *n_ranges = n;
        if (n > cap)
                return error_set(err, -EMSGSIZE, "IOAS %" PRIu32 " has %zu ranges, room for %zu",
                                 ioas_id, n, cap);
        if (ret_alignment)
                *ret_alignment = ioas->alignment;
        return 0;
}

static int range_cmp(const void *a, const void *b) {
        const IovaRange *x = a, *y = b;

        return x->start < y->start ? -1 : x->start > y->start;
}

int sim_ioas_allow_iovas(BackendContext *bc, uint32_t ioas_id, const IovaRange *ranges,
                         size_t n, Error *err) {
        SimContext *c = to_ctx(bc);
        _cleanup_free_ IovaRange *v = NULL;
        SimIoas *ioas;
        int r;

        assert_return(bc, -EINVAL);
        assert_return(ranges || n == 0, -EINVAL);

        r = sim_obj_lookup(c, ioas_id, SIM_OBJ_IOAS, (void **)&ioas, err);
        if (r < 0)
                return r;
        if (n > 0) {
                v = malloc(n * sizeof(IovaRange));
                if (!v)
                        return error_set(err, -ENOMEM, "Out of memory");
                memcpy(v, ranges, n * sizeof(IovaRange));
        }
        for (size_t i = 0; i < n; i++)
                if (v[i].start >= v[i].last)
                        return error_set(err, -EINVAL,
                                         "Allowed range %zu: start 0x%" PRIx64
                                         " is not below last 0x%" PRIx64,
                                         i, v[i].start, v[i].last);
        if (n > 1)
                qsort(v, n, sizeof(IovaRange), range_cmp);
        for (size_t i = 1; i < n; i++)
                if (v[i].start <= v[i - 1].last)
                        return error_set(err, -EINVAL,
                                         "Allowed ranges 0x%" PRIx64 "-0x%" PRIx64 " and 0x%" PRIx64
                                         "-0x%" PRIx64 " overlap",
                                         v[i - 1].start, v[i - 1].last, v[i].start, v[i].last);
        for (size_t i = 0; i < n; i++)
                if (sim_ioas_reserved_overlaps(ioas, v[i].start, v[i].last))
                        return error_set(err, -EADDRINUSE,
                                         "Allowed range 0x%" PRIx64 "-0x%" PRIx64
                                         " intersects a reserved range",
                                         v[i].start, v[i].last);
        free(ioas->allowed);
        ioas->allowed = TAKE_PTR(v);
        ioas->n_allowed = n;
        return 0;
}
