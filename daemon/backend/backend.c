/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <stddef.h>

#include "backend.h"

static const char *const feature_names[] = {
        "ioas",       "option",      "vfio-cdev",    "hwpt-alloc",  "hw-info",
        "dirty-tracking", "hwpt-invalidate", "fault-queue", "map-file", "pasid",
        "viommu",     "change-process", "nesting",
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

void backend_free(Backend *b) {
        if (b)
                b->ops->free(b);
}

void backend_context_free(BackendContext *c) {
        if (c)
                c->backend->ops->context_free(c);
}
