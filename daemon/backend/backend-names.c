/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <string.h>

#include "assert-util.h"
#include "backend-names.h"
#include "backend.h"

static const struct {
        uint64_t bit;
        const char *name;
} hw_cap_names[] = {
        { BACKEND_HW_CAP_DIRTY_TRACKING, "dirty-tracking" },
        { BACKEND_HW_CAP_PCI_PASID_EXEC, "pasid-exec" },
        { BACKEND_HW_CAP_PCI_PASID_PRIV, "pasid-priv" },
};

const char *backend_hw_cap_to_string(uint64_t cap) {
        for (size_t i = 0; i < ELEMENTSOF(hw_cap_names); i++)
                if (hw_cap_names[i].bit == cap)
                        return hw_cap_names[i].name;
        return NULL;
}

int backend_hw_cap_from_string(const char *s, uint64_t *ret) {
        assert_return(s, -EINVAL);
        assert_return(ret, -EINVAL);

        for (size_t i = 0; i < ELEMENTSOF(hw_cap_names); i++)
                if (streq(hw_cap_names[i].name, s)) {
                        *ret = hw_cap_names[i].bit;
                        return 0;
                }
        return -EINVAL;
}

int backend_hw_caps_to_strv(uint64_t caps, const char **ret, size_t n_max) {
        size_t n = 0;

        assert_return(ret || n_max == 0, -EINVAL);

        for (size_t i = 0; i < ELEMENTSOF(hw_cap_names); i++) {
                if (!(caps & hw_cap_names[i].bit))
                        continue;
                if (n + 1 >= n_max)
                        return -ENOBUFS;
                ret[n++] = hw_cap_names[i].name;
        }
        if (n_max == 0)
                return -ENOBUFS;
        ret[n] = NULL;
        return (int)n;
}
