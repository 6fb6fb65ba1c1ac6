/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * What the files of the simulated-topology reader share.  Only simtopo*.c
 * include it.
 */

#include <stdbool.h>

#include "error.h"
#include "simtopo.h"

#define SIMTOPO_DEFAULT_CDEV_MAJOR 511u
#define SIMTOPO_SCALE_DEFAULT 4096u
#define SIMTOPO_SCALE_MAX (1u << 20)
#define SIMTOPO_MARKER ".iommud-simtopo"

/* "DDDD:BB:DD.F" */
bool name_is_pci_bdf(const char *s);
/* A device or IOMMU name becomes a directory entry: keep it to a safe alphabet. */
bool name_is_valid(const char *s);
/*
 * Sorts the devices by name (remapping the groups' indexes) so that
 * simtopo_find_device() can bisect, and reports duplicates.  paths[i] names
 * device i in the input for error messages (NULL for generated ones).
 */
int simtopo_finish(SimTopology *t, char **paths, Error *err);
