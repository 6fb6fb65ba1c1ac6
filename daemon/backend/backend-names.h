/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The names of the IOMMU's hardware capabilities (BACKEND_HW_CAP_*, backend.h), as
 * org.iommud.Broker and org.iommud1 report them for a device and as the simulated-topology
 * files write them: "dirty-tracking", "pasid-exec", "pasid-priv".  One table for all.
 */

#include <stddef.h>
#include <stdint.h>

/* The name of one capability bit; NULL for no bit, several, or one without a name. */
const char *backend_hw_cap_to_string(uint64_t cap);
/* The bit named s: 0, or -EINVAL for a name no capability has. */
int backend_hw_cap_from_string(const char *s, uint64_t *ret);
/*
 * The names of the named bits of caps, lowest bit first, in ret followed by NULL:
 * returns their number, or -ENOBUFS when ret (n_max entries with the NULL) is too
 * small.  UINT64_MAX gives every name.
 */
int backend_hw_caps_to_strv(uint64_t caps, const char **ret, size_t n_max);
