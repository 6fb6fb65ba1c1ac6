/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * HWPT allocation: paging HWPTs built on an IOAS (a domain of it) and nested ones over a
 * nesting parent, with the kernel's order of checks and errnos.
 */

#include <inttypes.h>
#include <stdlib.h>

#include "assert-util.h"
#include "sim-private.h"

#define SIM_HWPT_FLAGS                                                                             \
        (BACKEND_HWPT_NEST_PARENT | BACKEND_HWPT_DIRTY_TRACKING | BACKEND_HWPT_FAULT_ID_VALID |    \
         BACKEND_HWPT_PASID)

/* Sizes of the kernel's vendor stage-1 structs: iommu_hwpt_vtd_s1 and iommu_hwpt_arm_smmuv3. */
#define SIM_VTD_S1_SIZE 24u
#define SIM_ARM_SMMUV3_SIZE 16u

void sim_hwpt_free(SimContext *c, SimHwpt *h) {
        if (h->ioas) {
                sim_ioas_remove_domain(c, h->ioas, h);
                h->ioas->users--;
        }
        if (h->parent)
                h->parent->users--;
        if (h->fault)
                h->fault->users--;
        sim_obj_remove(c, &h->obj);
        free(h->dirty);
        free(h);
}

int sim_hwpt_paging_new(SimContext *c, SimIoas *ioas, size_t iommu, uint32_t flags,
                        SimFaultQueue *fault, bool auto_domain, SimHwpt **ret, Error *err) {
        SimHwpt *h;
        int r;

        h = calloc(1, sizeof(SimHwpt));
        if (!h)
                return error_set(err, -ENOMEM, "Out of memory for a HWPT");
        h->flags = flags;
        h->iommu = iommu;
        h->auto_domain = auto_domain;
        r = sim_ioas_add_domain(c, ioas, h, err);
        if (r < 0) {
                free(h);
                return r;
        }
        r = sim_obj_add(c, &h->obj, SIM_OBJ_HWPT_PAGING, err);
        if (r < 0) {
                sim_ioas_remove_domain(c, ioas, h);
                free(h);
                return r;
        }
        h->ioas = ioas;
        ioas->users++;
        h->fault = fault;
        if (fault)
                fault->users++;
        *ret = h;
        return 0;
}

/*
 * Driver data has the driver's size exactly: iommu_copy_struct_from_user() refuses a shorter
 * and also a longer one, whatever its tail holds (EINVAL, not the E2BIG of the ioctl sizes).
 */
static int check_user_data(uint32_t type, const void *data, uint32_t len, Error *err) {
        uint32_t size = type == BACKEND_HWPT_DATA_VTD_S1 ? SIM_VTD_S1_SIZE : SIM_ARM_SMMUV3_SIZE;

        if (!data || len != size)
                return error_set(err, -EINVAL, "HWPT data of type %" PRIu32 " is %" PRIu32
                                 " bytes, got %" PRIu32, type, size, len);
        return 0;
}

/* The fault queue named by FAULT_ID_VALID; looked up after the flag checks, as the kernel does. */
static int hwpt_lookup_fault(SimContext *c, SimIommuModel *m, const HwptAllocArgs *args,
                             SimFaultQueue **ret, Error *err) {
        int r;

        if (!(args->flags & BACKEND_HWPT_FAULT_ID_VALID)) {
                *ret = NULL;
                return 0;
        }
        if (!m->fault_queue)
                return error_set(err, -EOPNOTSUPP, "IOMMU %s cannot deliver I/O page faults",
                                 m->name);
        r = sim_obj_lookup(c, args->fault_id, SIM_OBJ_FAULT, (void **)ret, err);
        if (r < 0)
                return r;
        return 0;
}

/* A paging HWPT on ioas: a domain of it on the device's IOMMU instance. */
static int hwpt_alloc_paging(SimContext *c, const HwptAllocArgs *args, SimDev *d,
                             SimIommuModel *m, SimIoas *ioas, uint32_t *ret_id, Error *err) {
        SimFaultQueue *fault = NULL;
        SimHwpt *h;
        int r;

        if (args->data_type != BACKEND_HWPT_DATA_NONE)
                return error_set(err, -EOPNOTSUPP,
                                 "A paging HWPT takes no data (type %" PRIu32 ")",
                                 args->data_type);
        if ((args->flags & BACKEND_HWPT_NEST_PARENT) && !m->nesting)
                return error_set(err, -EOPNOTSUPP, "IOMMU %s does not support nesting",
                                 m->name);
        if ((args->flags & BACKEND_HWPT_DIRTY_TRACKING) && !m->dirty_tracking)
                return error_set(err, -EOPNOTSUPP,
                                 "IOMMU %s does not support dirty tracking", m->name);
        if ((args->flags & BACKEND_HWPT_FAULT_ID_VALID) &&
            (args->flags & BACKEND_HWPT_NEST_PARENT))
                return error_set(err, -EOPNOTSUPP,
                                 "A nesting parent cannot take faults");
        if ((args->flags & BACKEND_HWPT_PASID) && m->pasid_bits == 0)
                return error_set(err, -EOPNOTSUPP, "IOMMU %s does not support PASID",
                                 m->name);
        r = hwpt_lookup_fault(c, m, args, &fault, err);
        if (r < 0)
                return r;
        r = sim_hwpt_paging_new(c, ioas, sim_dev_group(c, d)->iommu, args->flags, fault,
                                false, &h, err);
        if (r < 0)
                return r;
        *ret_id = h->obj.id;
        return 0;
}

/* A nested HWPT over parent, with the vendor stage-1 data of the device's IOMMU. */
static int hwpt_alloc_nested(SimContext *c, const HwptAllocArgs *args, SimDev *d,
                             SimIommuModel *m, SimHwpt *parent, uint32_t *ret_id, Error *err) {
        SimFaultQueue *fault = NULL;
        uint32_t want;
        SimHwpt *h;
        int r;

        if (args->flags & ~(BACKEND_HWPT_FAULT_ID_VALID | BACKEND_HWPT_PASID))
                return error_set(err, -EOPNOTSUPP,
                                 "Flags 0x%" PRIx32 " are not valid for a nested HWPT",
                                 args->flags);
        if (args->data_len == 0 || !m->nesting)
                return error_set(err, -EOPNOTSUPP,
                                 "IOMMU %s does not support nested HWPTs without data",
                                 m->name);
        if (parent->auto_domain || !(parent->flags & BACKEND_HWPT_NEST_PARENT))
                return error_set(err, -EINVAL,
                                 "HWPT %" PRIu32 " was not allocated as a nesting parent",
                                 parent->obj.id);
        if (parent->iommu != sim_dev_group(c, d)->iommu)
                return error_set(err, -EINVAL,
                                 "HWPT %" PRIu32 " belongs to another IOMMU instance",
                                 parent->obj.id);
        want = m->hw_info_type == 1 ? BACKEND_HWPT_DATA_VTD_S1 :
               m->hw_info_type == 2 ? BACKEND_HWPT_DATA_ARM_SMMUV3 : UINT32_MAX;
        if (args->data_type != want)
                return error_set(err, -EOPNOTSUPP,
                                 "HWPT data type %" PRIu32 " is not supported by IOMMU %s",
                                 args->data_type, m->name);
        r = check_user_data(args->data_type, args->data, args->data_len, err);
        if (r < 0)
                return r;
        r = hwpt_lookup_fault(c, m, args, &fault, err);
        if (r < 0)
                return r;
        h = calloc(1, sizeof(SimHwpt));
        if (!h)
                return error_set(err, -ENOMEM, "Out of memory for a HWPT");
        r = sim_obj_add(c, &h->obj, SIM_OBJ_HWPT_NESTED, err);
        if (r < 0) {
                free(h);
                return r;
        }
        h->flags = args->flags;
        h->iommu = parent->iommu;
        h->parent = parent;
        h->data_type = args->data_type;
        parent->users++;
        h->fault = fault;
        if (fault)
                fault->users++;
        *ret_id = h->obj.id;
        return 0;
}

int sim_hwpt_alloc(BackendContext *bc, const HwptAllocArgs *args, uint32_t *ret_id,
                   Error *err) {
        SimContext *c = to_ctx(bc);
        SimObject *pt;
        SimDev *d;
        int r;

        assert_return(bc, -EINVAL);
        assert_return(args, -EINVAL);
        assert_return(ret_id, -EINVAL);

        if (args->flags & ~SIM_HWPT_FLAGS)
                return error_set(err, -EOPNOTSUPP, "Unknown HWPT flags 0x%" PRIx32,
                                 args->flags & ~SIM_HWPT_FLAGS);
        if ((args->data_type == BACKEND_HWPT_DATA_NONE && args->data_len != 0) ||
            (args->data_type != BACKEND_HWPT_DATA_NONE && (args->data_len == 0 || !args->data)))
                return error_set(err, -EINVAL, "HWPT data type %" PRIu32 " with %" PRIu32 " bytes",
                                 args->data_type, args->data_len);
        r = sim_obj_lookup(c, args->dev_id, SIM_OBJ_DEVICE, (void **)&d, err);
        if (r < 0)
                return r;
        /*
         * The kernel answers an unknown pt_id with EINVAL, not ENOENT: iommufd_hwpt_alloc()
         * turns the failed object lookup into -EINVAL (hw_pagetable.c, 6.6 through 6.12 at
         * least), like a pt_id of the wrong type.
         */
        pt = sim_obj_get(c, args->pt_id);
        if (!pt)
                return error_set(err, -EINVAL, "No IOAS or paging HWPT with id %" PRIu32,
                                 args->pt_id);
        if (pt->type == SIM_OBJ_IOAS)
                return hwpt_alloc_paging(c, args, d, sim_dev_iommu(c, d), (SimIoas *)pt, ret_id,
                                         err);
        if (pt->type == SIM_OBJ_HWPT_PAGING)
                return hwpt_alloc_nested(c, args, d, sim_dev_iommu(c, d), (SimHwpt *)pt, ret_id,
                                         err);
        return error_set(err, -EINVAL, "Object %" PRIu32 " is a %s: HWPTs are built on an IOAS or "
                         "a nesting parent", args->pt_id, sim_obj_type_name(pt->type));
}
