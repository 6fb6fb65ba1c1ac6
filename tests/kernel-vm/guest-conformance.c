/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Guest test: the backend conformance suite against the guest's real kernel, with the
 * device IOMMUD_TEST_VFIO_DEVICE (set by the kernel-vm init to the root-bus edu): backend-
 * kernel on /dev/iommu and a VFIO device cdev, or on a stock kernel without iommufd
 * (IOMMUD_KVM_API=group) backend-vfio on /dev/vfio.  The same suite runs against backend-sim
 * and the responders in the unit tests, so a difference between the model and the kernel
 * shows up here as a failing case.
 */

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "conformance.h"
#include "macros.h"

int main(void) {
        const char *api = getenv("IOMMUD_KVM_API");
        const ConfFactory *factory = api && streq(api, "group") ? &conformance_vfio_real_factory :
                                                                  &conformance_kernel_real_factory;

        return conformance_run(&factory, 1);
}
