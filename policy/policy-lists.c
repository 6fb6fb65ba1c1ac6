/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * The parts of the decision's sentences that list things: the members of a group and the
 * reserved regions of a kind, named in full up to a point and summarised on purpose past
 * it, so that a reason is whole and still readable whatever the host.
 */

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "policy-internal.h"

#define LIST_NAMED_MAX 4   /* a list names this many in full ... */
#define LIST_MORE_MAX 3    /* ... then, after "and K more:", this many by name only */

static const char *dev_name(const TopoDevice *d) {
        return d->name ?: "(unnamed device)";
}

/* How a member that keeps its group viable is doing so: "vfio-pci", "unbound", "a bridge". */
static const char *member_state(const TopoDevice *m) {
        if (!m->driver)
                return "unbound";
        if (topo_device_is_bridge(m))
                return "a bridge";
        return m->driver;
}

/*
 * Writes "A, B and C", each item as phrase() says it; a longer list is summarised on
 * purpose: "A, B, C, D and 12 more: E, F, G, …".  The decision's JSON lists them all.
 */
void policy_list_write(FILE *f, const TopoDevice *const *devs, size_t n,
                       void (*phrase)(FILE *f, const TopoDevice *m)) {
        size_t named = n <= LIST_NAMED_MAX + 1 ? n : LIST_NAMED_MAX;

        for (size_t i = 0; i < named; i++) {
                if (i > 0)
                        fputs(i + 1 == n ? " and " : ", ", f);
                phrase(f, devs[i]);
        }
        if (named == n)
                return;
        fprintf(f, " and %zu more: ", n - named);
        for (size_t i = named; i < n && i < named + LIST_MORE_MAX; i++)
                fprintf(f, "%s%s", i > named ? ", " : "", dev_name(devs[i]));
        if (n > named + LIST_MORE_MAX)
                fputs(", …", f);
}

void policy_phrase_host_driver(FILE *f, const TopoDevice *m) {
        fprintf(f, "%s is bound to host driver %s", dev_name(m), m->driver);
}

void policy_phrase_member(FILE *f, const TopoDevice *m) {
        fprintf(f, "%s (%s)", dev_name(m), member_state(m));
}

/* The firmware table that describes 1:1 regions for the IOMMU d sits behind; NULL: unknown. */
static const char *firmware_source(const TopoDevice *d) {
        const char *kind = d->iommu ? d->iommu->kind : NULL;

        if (!kind)
                return NULL;
        if (streq(kind, "intel"))
                return "an RMRR";
        if (streq(kind, "amd"))
                return "an IVMD";
        if (strneq(kind, "arm-smmu", 8))
                return "an IORT RMR";
        return NULL;
}

/* "0x…-0x…, 0x…-0x… and 0x…-0x…" for the regions of group g of type t, summarised past five. */
static void ranges_write(FILE *f, const TopoGroup *g, RegionType t) {
        size_t n = 0, shown = 0, total = 0;

        for (size_t i = 0; i < g->n_regions; i++)
                total += g->regions[i].type == t;
        for (size_t i = 0; i < g->n_regions; i++) {
                const ReservedRegion *rr = &g->regions[i];

                if (rr->type != t)
                        continue;
                n++;
                if (total > LIST_NAMED_MAX + 1 && shown == LIST_NAMED_MAX) {
                        fprintf(f, " and %zu more", total - shown);
                        break;
                }
                if (shown > 0)
                        fputs(n == total ? " and " : ", ", f);
                fprintf(f, "0x%016" PRIx64 "-0x%016" PRIx64, rr->start, rr->last);
                shown++;
        }
}

/* "group 7 has 'direct' reserved region(s) R (what it is)"; returns how many there are. */
size_t policy_regions_write(FILE *f, const TopoDevice *d, RegionType t) {
        const TopoGroup *g = d->group;
        const char *src;
        size_t n = 0;

        for (size_t i = 0; i < g->n_regions; i++)
                n += g->regions[i].type == t;
        if (n == 0)
                return 0;
        fprintf(f, "group %u has %s '%s' reserved region%s ", g->id, n == 1 ? "a" : "the",
                region_type_to_string(t), n == 1 ? "" : "s");
        ranges_write(f, g, t);
        src = firmware_source(d);
        if (t == REGION_DIRECT)
                fprintf(f, " (firmware needs a 1:1 mapping the client would own%s%s)",
                        src ? ", described by " : "", src ?: "");
        else if (d->iommu && d->iommu->kind && streq(d->iommu->kind, "intel"))
                fputs(" (a 1:1 mapping the OS may drop, e.g. a USB or graphics RMRR)", f);
        else
                fprintf(f, " (a 1:1 mapping the OS may drop%s%s)", src ? ", described by " : "",
                        src ?: "");
        return n;
}

