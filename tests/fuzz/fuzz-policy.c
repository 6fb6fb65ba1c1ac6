/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* Feeds arbitrary text to the policy loader: it must diagnose, never crash or leak. */

#include <stddef.h>
#include <stdint.h>

#include "policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        PolicyDiagnostics diags = {};
        Policy *p = NULL;

        if (policy_load_string(&p, "fuzz.json", (const char *)data, size, &diags, NULL) >= 0)
                policy_free(p);
        policy_diagnostics_clear(&diags);
        return 0;
}
