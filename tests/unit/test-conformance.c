/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <stddef.h>

#include "conformance.h"
#include "macros.h"

/*
 * Every backend that claims iommufd semantics runs the same suite.  Add a
 * backend by adding its factory here (see conformance.h).
 */
static const ConfFactory *const factories[] = {
        &conformance_sim_factory,
        &conformance_kernel_responder_factory,
        &conformance_kernel_responder_mmap_factory,
        &conformance_kernel_real_factory,
        &conformance_vfio_responder_factory,
        &conformance_vfio_real_factory,
};

int main(void) {
        return conformance_run(factories, ELEMENTSOF(factories));
}
