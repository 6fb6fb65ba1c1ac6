/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Builds a Topology in memory from a compact table, for tests that need
 * devices and groups without a sysfs tree.  The structs of topology.h are
 * plain data; this fills them the way the sysfs reader does (groups and
 * devices sorted, members linked both ways).
 */

#include <stdbool.h>
#include <stdint.h>

#include "topology.h"

typedef struct FakeDevice {
        const char *name;
        unsigned group;          /* FAKE_NO_GROUP: not in any group */
        uint16_t vendor, device;
        uint32_t class;
        const char *driver;      /* NULL: unbound */
        bool cdev;
} FakeDevice;

typedef struct FakeRegion {
        unsigned group;
        uint64_t start, last;
        RegionType type;
} FakeRegion;

#define FAKE_NO_GROUP UINT32_MAX

/* Devices outside any group are kept in t->devices too, so that tests can find them. */
Topology *fake_topology_new(const FakeDevice *devices, size_t n_devices, const FakeRegion *regions,
                            size_t n_regions, const unsigned *broken_groups, size_t n_broken);
void fake_topology_free(Topology *t);
TopoDevice *fake_topology_device(const Topology *t, const char *name);
