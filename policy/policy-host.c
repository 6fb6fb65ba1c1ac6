/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * The policy against the host it is for.  A grant's IOVA windows become the allowed list of its
 * principals' address spaces, and the kernel refuses to attach a device whose IOMMU group
 * reserves an address inside an allowed range (IOMMU_IOAS_ALLOW_IOVAS and the attach meet in
 * iopt_reserve_iova(): EADDRINUSE).  So a window that overlaps a reserved region of the group
 * of a device the grant gives can never be used with that device: it is refused here, where
 * the administrator reads file:line:column, rather than at every attach.
 */

#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "assert-util.h"
#include "policy-internal.h"
#include "policy-parser.h"

/* Every x86 IOMMU (Intel VT-d, AMD-Vi) reserves the interrupt window in every group. */
static const ReservedRegion x86_msi = {
        .start = UINT64_C(0xfee00000),
        .last = UINT64_C(0xfeefffff),
        .type = REGION_MSI,
};

static bool host_is_x86(const Topology *t) {
        for (size_t i = 0; i < t->n_iommus; i++)
                if (streq(t->iommus[i]->kind, "intel") || streq(t->iommus[i]->kind, "amd"))
                        return true;
        return false;
}

static bool overlaps(const IovaWindow *w, const ReservedRegion *r) {
        return w->start <= r->last && r->start <= w->last;
}

/* The first region the kernel keeps out of an address space that overlaps w, or NULL. */
static const ReservedRegion *group_conflict(const TopoGroup *g, const IovaWindow *w) {
        for (size_t i = 0; i < g->n_regions; i++)
                if (g->regions[i].type != REGION_DIRECT_RELAXABLE && overlaps(w, &g->regions[i]))
                        return &g->regions[i];
        return NULL;
}

static int report(PolicyDiagnostics *diags, const PolicyGrant *g, size_t i,
                  const ReservedRegion *r, const char *where) {
        const PolicySource *src = &g->window_sources[i];
        const IovaWindow *w = &g->windows[i];

        return policy_diagnostics_addf(
                diags, src->file ?: "(policy)", src->line, src->column, src->path ?: "",
                "IOVA window 0x%" PRIx64 "-0x%" PRIx64 " of grant '%s' overlaps the %s region "
                "0x%" PRIx64 "-0x%" PRIx64 " %s: the kernel refuses to attach a device whose group "
                "reserves addresses inside the allowed IOVAs, so no device could be attached; "
                "leave the region out (windows ending at 0x%" PRIx64 " and starting at 0x%" PRIx64
                ")",
                w->start, w->last, g->name, region_type_to_string(r->type), r->start,
                r->last, where, r->start > 0 ? r->start - 1 : 0,
                r->last < UINT64_MAX ? r->last + 1 : UINT64_MAX);
}

/*
 * A device that the rules or the reserved-region settings refuse is never attached, whatever
 * the windows: its group's regions do not count.  Driver and group viability may change
 * (rebinds), so they do not exempt a device.
 */
static bool device_attachable(const Policy *p, const Topology *t, const TopoDevice *d) {
        _cleanup_(policy_decision_clear) PolicyDecision dec = {};

        if (policy_decide(p, t, d, NULL, NULL, &dec) < 0)
                return true;
        return dec.steps[POLICY_STEP_MATCH].verdict != POLICY_FAIL &&
               dec.steps[POLICY_STEP_REGIONS].verdict != POLICY_FAIL;
}

/* The first device g gives whose group reserves part of window i, with that region. */
static const TopoDevice *device_conflict(const Policy *p, const PolicyGrant *g, size_t i,
                                         const Topology *t, const ReservedRegion **ret) {
        for (size_t k = 0; k < t->n_devices; k++) {
                const TopoDevice *d = t->devices[k];
                const PolicyPool *pool;
                const DeviceMatcher *dm;

                if (!d->group || !policy_grant_covers(g, d, &pool, &dm) ||
                    !device_attachable(p, t, d))
                        continue;
                *ret = group_conflict(d->group, &g->windows[i]);
                if (*ret)
                        return d;
        }
        return NULL;
}

static int check_window(const Policy *p, const PolicyGrant *g, size_t i, const Topology *t,
                        bool x86, PolicyDiagnostics *diags) {
        const ReservedRegion *r = NULL;
        const TopoDevice *d;
        char where[160];
        int k;

        if (x86 && overlaps(&g->windows[i], &x86_msi)) {
                k = report(diags, g, i, &x86_msi, "that every IOMMU group of an x86 host reserves");
                return k < 0 ? k : -EINVAL;
        }
        d = device_conflict(p, g, i, t, &r);
        if (!d)
                return 0;
        snprintf(where, sizeof(where), "of IOMMU group %u (%s, which the grant gives)",
                 d->group->id, d->name);
        k = report(diags, g, i, r, where);
        return k < 0 ? k : -EINVAL;
}

int policy_check_host(const Policy *p, const Topology *t, PolicyDiagnostics *diags) {
        PolicyDiagnostics local = {};
        bool x86;
        int r = 0;

        assert_return(p, -EINVAL);
        assert_return(t, -EINVAL);

        x86 = host_is_x86(t);
        for (size_t i = 0; i < p->n_grants; i++)
                for (size_t w = 0; w < p->grants[i]->n_windows; w++) {
                        int k = check_window(p, p->grants[i], w, t, x86, diags ?: &local);

                        if (k == -ENOMEM) {
                                policy_diagnostics_clear(&local);
                                return k;
                        }
                        if (k < 0)
                                r = k;
                }
        policy_diagnostics_clear(&local);
        return r;
}
