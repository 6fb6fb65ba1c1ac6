/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Guest test: the backend conformance suite against backend-kernel on the guest's real
 * /dev/iommu and a VFIO device cdev (IOMMUD_TEST_VFIO_DEVICE, set by the kernel-vm init to
 * the root-bus edu).  The same suite runs against backend-sim in the unit tests, so a
 * difference between the model and the kernel shows up here as a failing case.
 */

#include <stddef.h>

#include "conformance.h"
#include "macros.h"

/* Defined in tests/unit/conformance-kernel.c, which has no header of its own. */
extern const ConfFactory conformance_kernel_real_factory;

int main(void) {
        static const ConfFactory *const factories[] = {
                &conformance_kernel_real_factory,
        };

        return conformance_run(factories, ELEMENTSOF(factories));
}
