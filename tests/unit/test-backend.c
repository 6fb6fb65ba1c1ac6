/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* The Backend interface's own tables: what every backend and the core read from backend.c. */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "backend.h"

/* The kernel's uAPI sizes: struct iommu_hwpt_vtd_s1 and struct iommu_hwpt_arm_smmuv3. */
static void test_stage1_data_len(void **state) {
        assert_int_equal(backend_stage1_data_len(BACKEND_HWPT_DATA_VTD_S1), 24);
        assert_int_equal(backend_stage1_data_len(BACKEND_HWPT_DATA_ARM_SMMUV3), 16);
        assert_int_equal(backend_stage1_data_len(BACKEND_HWPT_DATA_NONE), 0);
        assert_int_equal(backend_stage1_data_len(3), 0);
        assert_int_equal(backend_stage1_data_len(UINT32_MAX), 0);
}

/* A session keeps each table in BACKEND_STAGE1_DATA_MAX bytes: every known type must fit. */
static void test_stage1_data_max_holds_every_type(void **state) {
        size_t largest = 0;

        for (uint32_t t = 0; t < 64; t++)
                if (backend_stage1_data_len(t) > largest)
                        largest = backend_stage1_data_len(t);
        assert_int_equal(largest, BACKEND_STAGE1_DATA_MAX);
}

static void test_hw_info_stage1_type(void **state) {
        assert_int_equal(backend_hw_info_stage1_type(BACKEND_HW_INFO_TYPE_INTEL_VTD),
                         BACKEND_HWPT_DATA_VTD_S1);
        assert_int_equal(backend_hw_info_stage1_type(BACKEND_HW_INFO_TYPE_ARM_SMMUV3),
                         BACKEND_HWPT_DATA_ARM_SMMUV3);
        assert_int_equal(backend_hw_info_stage1_type(BACKEND_HW_INFO_TYPE_NONE),
                         BACKEND_HWPT_DATA_NONE);
        /* An IOMMU the table does not know (IOMMU_HW_INFO_TYPE_AMD = 3) takes no stage 1. */
        assert_int_equal(backend_hw_info_stage1_type(3), BACKEND_HWPT_DATA_NONE);
}

static void test_stage1_type_from_string(void **state) {
        uint32_t t = UINT32_MAX;

        assert_int_equal(backend_stage1_type_from_string("vtd", &t), 0);
        assert_int_equal(t, BACKEND_HWPT_DATA_VTD_S1);
        assert_int_equal(backend_stage1_type_from_string("arm_smmuv3", &t), 0);
        assert_int_equal(t, BACKEND_HWPT_DATA_ARM_SMMUV3);

        t = 7;
        assert_int_equal(backend_stage1_type_from_string("", &t), -EINVAL);
        assert_int_equal(backend_stage1_type_from_string("VTD", &t), -EINVAL);
        assert_int_equal(backend_stage1_type_from_string("smmuv3", &t), -EINVAL);
        assert_int_equal(t, 7);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_stage1_data_len),
                cmocka_unit_test(test_stage1_data_max_holds_every_type),
                cmocka_unit_test(test_hw_info_stage1_type),
                cmocka_unit_test(test_stage1_type_from_string),
        };

        return cmocka_run_group_tests_name("backend", tests, NULL, NULL);
}
