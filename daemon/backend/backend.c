/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <stddef.h>
#include <string.h>

#include "assert-util.h"
#include "backend.h"

/*
 * One row per vendor stage-1 format: the kernel's IOMMU_HWPT_DATA_* type, the size of its
 * struct (iommu_hwpt_vtd_s1, iommu_hwpt_arm_smmuv3), the IOMMU_HW_INFO_TYPE_* of the IOMMUs
 * that take it, and its name on the wire.
 */
static const struct {
        uint32_t data_type;
        size_t data_len;
        uint32_t hw_info_type;
        const char *name;
} stage1_types[] = {
        { BACKEND_HWPT_DATA_VTD_S1, 24, BACKEND_HW_INFO_TYPE_INTEL_VTD, "vtd" },
        { BACKEND_HWPT_DATA_ARM_SMMUV3, 16, BACKEND_HW_INFO_TYPE_ARM_SMMUV3, "arm_smmuv3" },
};

static const char *const feature_names[] = {
        "ioas",       "option",      "vfio-cdev",    "hwpt-alloc",  "hw-info",
        "dirty-tracking", "hwpt-invalidate", "fault-queue", "map-file", "pasid",
        "viommu",     "change-process", "nesting", "dirty-all-pinned",
};

const char *backend_feature_to_string(BackendFeature f) {
        for (size_t i = 0; i < ELEMENTSOF(feature_names); i++)
                if ((unsigned)f == 1u << i)
                        return feature_names[i];
        return NULL;
}

int backend_features_to_strv(uint64_t features, const char **ret, size_t n_max) {
        size_t n = 0;

        for (size_t i = 0; i < ELEMENTSOF(feature_names); i++) {
                if (!(features & (UINT64_C(1) << i)))
                        continue;
                if (n + 1 >= n_max)
                        return -ENOBUFS;
                ret[n++] = feature_names[i];
        }
        if (n_max > 0)
                ret[n] = NULL;
        return (int)n;
}

size_t backend_stage1_data_len(uint32_t data_type) {
        for (size_t i = 0; i < ELEMENTSOF(stage1_types); i++)
                if (stage1_types[i].data_type == data_type)
                        return stage1_types[i].data_len;
        return 0;
}

uint32_t backend_hw_info_stage1_type(uint32_t hw_info_type) {
        for (size_t i = 0; i < ELEMENTSOF(stage1_types); i++)
                if (stage1_types[i].hw_info_type == hw_info_type)
                        return stage1_types[i].data_type;
        return BACKEND_HWPT_DATA_NONE;
}

int backend_stage1_type_from_string(const char *name, uint32_t *ret) {
        assert_return(name, -EINVAL);
        assert_return(ret, -EINVAL);

        for (size_t i = 0; i < ELEMENTSOF(stage1_types); i++)
                if (streq(stage1_types[i].name, name)) {
                        *ret = stage1_types[i].data_type;
                        return 0;
                }
        return -EINVAL;
}

void backend_free(Backend *b) {
        if (b)
                b->ops->free(b);
}

void backend_context_free(BackendContext *c) {
        if (c)
                c->backend->ops->context_free(c);
}
