/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Attachments of a bound device: its RID (the whole device, shared by its group) or a PASID
 * to an IOAS (through an automatic domain) or a HWPT; replace, detach, and what an
 * attachment reserves in the IOAS.
 */

#include <inttypes.h>
#include <stdlib.h>

#include "assert-util.h"
#include "sim-private.h"

static SimAttach *dev_find_pasid(SimDev *d, uint32_t pasid) {
        SIM_FOREACH(a, d->pasids, d->n_pasids)
                if (a->pasid == pasid)
                        return a;
        return NULL;
}

SimHwpt *sim_device_attached(SimDev *d, uint32_t pasid) {
        SimAttach *a;

        if (pasid == BACKEND_NO_PASID)
                return d->rid;
        a = dev_find_pasid(d, pasid);
        return a ? a->hwpt : NULL;
}

static void dev_drop_partial(SimDev *d, uint32_t pasid) {
        size_t j = 0;

        for (size_t i = 0; i < d->n_partial; i++) {
                bool match = pasid == BACKEND_NO_PASID ?
                                     !(d->partial[i].flags & FAULT_FLAG_PASID_VALID) :
                                     ((d->partial[i].flags & FAULT_FLAG_PASID_VALID) &&
                                      d->partial[i].pasid == pasid);
                if (!match)
                        d->partial[j++] = d->partial[i];
        }
        d->n_partial = j;
}

/* Drops one reference a device attachment held on h; auto domains go with their last user. */
static void hwpt_put_attach(SimContext *c, SimDev *d, uint32_t pasid, SimHwpt *h) {
        if (h->fault)
                sim_fault_auto_respond(c, h->fault, false, d->obj.id,
                                       pasid == BACKEND_NO_PASID ? 0 : pasid);
        dev_drop_partial(d, pasid);
        h->users--;
        if (h->auto_domain && h->users == 0)
                sim_hwpt_free(c, h);
}

/* Enforces the group's reserved regions of d on ioas (RID attach). */
static int dev_reserve(SimContext *c, SimDev *d, SimIoas *ioas, Error *err) {
        SimGroupModel *g = sim_dev_group(c, d);
        int r;

        if (sim_ioas_owner_has_reserved(ioas, d))
                return 0;
        SIM_FOREACH(reg, g->regions, g->n_regions) {
                if (reg->type == REGION_DIRECT_RELAXABLE)
                        continue;
                r = sim_ioas_reserve(ioas, reg->start, reg->last, d, err);
                if (r < 0) {
                        sim_ioas_unreserve(ioas, d);
                        return r;
                }
        }
        return 0;
}

/* Finds or creates the HWPT an attach to pt_id means. */
static int attach_target(SimContext *c, SimDev *d, uint32_t pasid, uint32_t pt_id, SimHwpt **ret,
                         bool *ret_created, Error *err) {
        SimObject *pt = sim_obj_get(c, pt_id);
        size_t iommu = sim_dev_group(c, d)->iommu;
        uint32_t flags = pasid == BACKEND_NO_PASID ? 0 : BACKEND_HWPT_PASID;
        SimIoas *ioas;
        int r;

        if (!pt)
                return error_set(err, -ENOENT, "No object with id %" PRIu32, pt_id);
        if (pt->type == SIM_OBJ_HWPT_PAGING || pt->type == SIM_OBJ_HWPT_NESTED) {
                SimHwpt *h = (SimHwpt *)pt;

                if (h->iommu != iommu)
                        return error_set(err, -EINVAL,
                                         "HWPT %" PRIu32 " belongs to another IOMMU instance",
                                         pt_id);
                *ret = h;
                *ret_created = false;
                return 0;
        }
        if (pt->type != SIM_OBJ_IOAS)
                return error_set(err, -EINVAL, "Object %" PRIu32 " is a %s, not an IOAS or HWPT",
                                 pt_id, sim_obj_type_name(pt->type));
        ioas = (SimIoas *)pt;
        /* Reuse an automatic domain of the same IOMMU instance on this IOAS. */
        for (size_t i = 0; i < ioas->n_domains; i++) {
                SimHwpt *h = ioas->domains[i];

                if (h->auto_domain && h->iommu == iommu && h->flags == flags) {
                        *ret = h;
                        *ret_created = false;
                        return 0;
                }
        }
        r = sim_hwpt_paging_new(c, ioas, iommu, flags, NULL, true, ret, err);
        if (r < 0)
                return r;
        *ret_created = true;
        return 0;
}

/* A PASID must fit the width that both the device and its IOMMU support. */
static int attach_check_pasid(SimContext *c, SimDev *d, uint32_t pasid, Error *err) {
        uint8_t w;

        if (pasid == BACKEND_NO_PASID)
                return 0;
        w = sim_dev_pasid_width(c, d);
        if (w == 0)
                return error_set(err, -EINVAL, "Device %s does not support PASID",
                                 sim_dev_model(c, d)->name);
        if (w < 32 && pasid >= (UINT32_C(1) << w))
                return error_set(err, -EINVAL,
                                 "PASID %" PRIu32 " is beyond the %u bits of device %s",
                                 pasid, w, sim_dev_model(c, d)->name);
        return 0;
}

/*
 * The devices of a group share one HWPT: a first attach must match the group's; a replace
 * (old set) moves the whole group.
 */
static int attach_check_group(SimContext *c, SimDev *d, SimGroupModel *g, SimHwpt *h,
                              SimHwpt *old, Error *err) {
        for (size_t k = 0; k < g->n_devices; k++) {
                SimDevModel *sm = &c->sim->devices[g->devices[k]];
                SimDev *sib;

                if (sm->ctx != c || sm->dev_id == d->obj.id)
                        continue;
                sib = (SimDev *)sim_obj_get(c, sm->dev_id);
                if (sib->rid && !old && sib->rid != h)
                        return error_set(err, -EINVAL,
                                         "Device %s shares IOMMU group %u with %s, attached "
                                         "to HWPT %" PRIu32,
                                         sim_dev_model(c, d)->name, g->id, sm->name,
                                         sib->rid->obj.id);
        }
        return 0;
}

/* Replace applies to the group: move the siblings of d in this context along to h. */
static void attach_move_group(SimContext *c, SimDev *d, SimGroupModel *g, SimHwpt *h,
                              SimIoas *ioas) {
        for (size_t k = 0; k < g->n_devices; k++) {
                SimDevModel *sm = &c->sim->devices[g->devices[k]];
                SimDev *sib;
                SimHwpt *sold;

                if (sm->ctx != c || sm->dev_id == d->obj.id)
                        continue;
                sib = (SimDev *)sim_obj_get(c, sm->dev_id);
                if (!sib->rid || sib->rid == h)
                        continue;
                sold = sib->rid;
                if (ioas && dev_reserve(c, sib, ioas, NULL) < 0)
                        continue; /* same group: same regions, already reserved */
                h->users++;
                sib->rid = h;
                if (sim_hwpt_ioas(sold) && sim_hwpt_ioas(sold) != ioas)
                        sim_ioas_unreserve(sim_hwpt_ioas(sold), sib);
                hwpt_put_attach(c, sib, BACKEND_NO_PASID, sold);
        }
}

/* Attaches the RID of d to h in place of old (NULL: nothing attached yet). */
static int attach_rid(SimContext *c, SimDev *d, SimHwpt *h, SimHwpt *old, Error *err) {
        SimIoas *ioas = sim_hwpt_ioas(h), *old_ioas = old ? sim_hwpt_ioas(old) : NULL;
        SimGroupModel *g = sim_dev_group(c, d);
        int r;

        r = attach_check_group(c, d, g, h, old, err);
        if (r < 0)
                return r;
        if (ioas) {
                r = dev_reserve(c, d, ioas, err);
                if (r < 0)
                        return r;
        }
        h->users++;
        d->rid = h;
        if (old) {
                if (old_ioas && old_ioas != ioas)
                        sim_ioas_unreserve(old_ioas, d);
                hwpt_put_attach(c, d, BACKEND_NO_PASID, old);
                attach_move_group(c, d, g, h, ioas);
        }
        return 0;
}

/* Attaches pasid of d to h in place of old (NULL: nothing attached there yet). */
static int attach_pasid(SimContext *c, SimDev *d, uint32_t pasid, SimHwpt *h, SimHwpt *old,
                        Error *err) {
        SimAttach *a = dev_find_pasid(d, pasid);

        if (!a) {
                SimAttach *v = realloc(d->pasids, (d->n_pasids + 1) * sizeof(SimAttach));

                if (!v)
                        return error_set(err, -ENOMEM, "Out of memory");
                d->pasids = v;
                a = &d->pasids[d->n_pasids++];
                a->pasid = pasid;
                a->hwpt = NULL;
        }
        h->users++;
        a->hwpt = h;
        if (old)
                hwpt_put_attach(c, d, pasid, old);
        return 0;
}

int sim_device_attach(BackendContext *bc, uint32_t dev_id, uint32_t pasid, uint32_t *pt_id,
                      Error *err) {
        SimContext *c = to_ctx(bc);
        SimHwpt *h = NULL, *old;
        SimDev *d;
        bool created = false;
        int r;

        assert_return(bc, -EINVAL);
        assert_return(pt_id, -EINVAL);

        r = sim_obj_lookup(c, dev_id, SIM_OBJ_DEVICE, (void **)&d, err);
        if (r < 0)
                return r;
        r = attach_check_pasid(c, d, pasid, err);
        if (r < 0)
                return r;
        r = attach_target(c, d, pasid, *pt_id, &h, &created, err);
        if (r < 0)
                return r;
        if (pasid != BACKEND_NO_PASID && !(h->flags & BACKEND_HWPT_PASID)) {
                r = error_set(err, -EINVAL, "HWPT %" PRIu32 " was not allocated for PASID use",
                              h->obj.id);
                goto fail;
        }
        old = sim_device_attached(d, pasid);
        if (old == h) {
                *pt_id = h->obj.id;
                return 0;
        }
        if (pasid == BACKEND_NO_PASID)
                r = attach_rid(c, d, h, old, err);
        else
                r = attach_pasid(c, d, pasid, h, old, err);
        if (r < 0)
                goto fail;
        *pt_id = h->obj.id;
        return 0;
fail:
        if (created)
                sim_hwpt_free(c, h);
        return r;
}

static void dev_detach_rid(SimContext *c, SimDev *d) {
        SimHwpt *h = d->rid;
        SimIoas *ioas;

        if (!h)
                return;
        ioas = sim_hwpt_ioas(h);
        if (ioas)
                sim_ioas_unreserve(ioas, d);
        d->rid = NULL;
        hwpt_put_attach(c, d, BACKEND_NO_PASID, h);
}

static void dev_detach_pasid(SimContext *c, SimDev *d, SimAttach *a) {
        SimHwpt *h = a->hwpt;
        uint32_t pasid = a->pasid;

        *a = d->pasids[--d->n_pasids];
        hwpt_put_attach(c, d, pasid, h);
}

void sim_device_detach_all(SimContext *c, SimDev *d) {
        while (d->n_pasids > 0)
                dev_detach_pasid(c, d, &d->pasids[0]);
        dev_detach_rid(c, d);
}

int sim_device_detach(BackendContext *bc, uint32_t dev_id, uint32_t pasid, Error *err) {
        SimContext *c = to_ctx(bc);
        SimDev *d;
        int r;

        assert_return(bc, -EINVAL);

        r = sim_obj_lookup(c, dev_id, SIM_OBJ_DEVICE, (void **)&d, err);
        if (r < 0)
                return r;
        if (pasid == BACKEND_NO_PASID)
                dev_detach_rid(c, d);
        else {
                SimAttach *a = dev_find_pasid(d, pasid);

                /* Like the kernel, detaching what is not attached is not an error. */
                if (a)
                        dev_detach_pasid(c, d, a);
        }
        return 0;
}
