/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The host's IOMMU topology as sysfs shows it: IOMMU groups, their devices,
 * each group's reserved regions and default-domain type, and the IOMMU
 * instances.  Read from a sysfs root that is a parameter (a directory fd), so
 * that tests and --sim point it at a materialized tree.
 *
 * A Topology is immutable once loaded; hotplug builds a new one.  Problems
 * found while reading (a missing, truncated or garbled file) are collected in
 * topology->problems, each naming the file and line; a bad group is kept with
 * what could be read and never hides the others.
 */

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <json-c/json.h>

#include "error.h"

typedef enum RegionType {
        REGION_DIRECT,           /* firmware needs a 1:1 map (RMRR/IVMD/RMR): never to userspace */
        REGION_DIRECT_RELAXABLE, /* 1:1 map the OS may drop (USB, iGPU RMRRs) */
        REGION_RESERVED,         /* no DMA here */
        REGION_MSI,              /* hardware or software MSI window */
        REGION_UNKNOWN,          /* a type this code does not know: kept, treated as reserved */
        _REGION_TYPE_MAX,
} RegionType;

typedef struct ReservedRegion {
        uint64_t start;
        uint64_t last;   /* inclusive, as sysfs prints it */
        RegionType type;
        char *type_name; /* exactly as read, e.g. "direct-relaxable" or an unknown word */
} ReservedRegion;

typedef struct TopoDevice TopoDevice;
typedef struct TopoGroup TopoGroup;
typedef struct IommuInstance IommuInstance;

struct TopoDevice {
        char *name;              /* PCI BDF "0000:65:00.0", or the platform device name */
        bool is_pci;
        uint16_t vendor;
        uint16_t device;
        uint16_t subsystem_vendor;
        uint16_t subsystem_device;
        uint32_t class;          /* 24-bit PCI class code, e.g. 0x010802 */
        char *driver;            /* bound driver, NULL when unbound */
        int numa_node;           /* -1 when unknown */
        bool has_cdev;           /* has a vfio cdev (bound to a VFIO driver with cdev support) */
        unsigned cdev_major;
        unsigned cdev_minor;
        char *cdev_name;         /* "vfio3": node /dev/vfio/devices/vfio3; NULL without cdev */
        TopoGroup *group;        /* NULL only for a device without IOMMU group */
        IommuInstance *iommu;    /* the IOMMU instance it sits behind, NULL when unknown */
};

struct TopoGroup {
        unsigned id;
        char *type;              /* "DMA", "DMA-FQ", "identity", "blocked", "unmanaged", ...; NULL if unreadable */
        ReservedRegion *regions; /* sorted by start */
        size_t n_regions;
        TopoDevice **devices;    /* members, sorted by name */
        size_t n_devices;
        bool broken;             /* something in this group could not be read; see problems */
};

struct IommuInstance {
        char *name;              /* "dmar0", "ivhd0", "smmu3.0x0000000009050000", ... */
        char *kind;              /* "intel", "amd", "arm-smmu-v3", "unknown" (from its subdirs) */
        TopoDevice **devices;    /* devices listed under .../devices, sorted by name */
        size_t n_devices;
};

typedef struct TopologyProblem {
        char *path;              /* relative to the sysfs root, e.g. "kernel/iommu_groups/7/reserved_regions" */
        unsigned line;           /* 1-based, 0 when the problem is not about one line */
        char *message;           /* what was wrong, e.g. "expected 3 fields, got 2" */
} TopologyProblem;

typedef struct Topology {
        TopoGroup **groups;      /* sorted by id */
        size_t n_groups;
        TopoDevice **devices;    /* every device in any group, sorted by name */
        size_t n_devices;
        IommuInstance **iommus;  /* sorted by name */
        size_t n_iommus;
        TopologyProblem *problems;
        size_t n_problems;
} Topology;

/*
 * Reads the topology below sysfs_root_fd (a directory fd of the sysfs root:
 * "/sys" in production).  Fails only when nothing at all can be read (the root
 * lacks kernel/iommu_groups, or out of memory); everything else becomes a
 * problem entry.
 */
int topology_load(Topology **ret, int sysfs_root_fd, Error *err);
/* Same, opening the root by path. */
int topology_load_path(Topology **ret, const char *sysfs_root, Error *err);
Topology *topology_free(Topology *t);
DEFINE_TRIVIAL_CLEANUP_FUNC(Topology *, topology_free);

/* Lookups: O(log n). */
TopoDevice *topology_find_device(const Topology *t, const char *name);
TopoDevice *topology_find_device_by_cdev(const Topology *t, unsigned major, unsigned minor);
TopoGroup *topology_find_group(const Topology *t, unsigned id);

/* PCI class 0x0604xx (PCI-to-PCI bridge) and friends that may share a group harmlessly. */
bool topo_device_is_bridge(const TopoDevice *d);

/* Stable JSON: {"groups":[...],"devices":[...],"iommus":[...],"problems":[...]}. */
int topology_to_json(const Topology *t, json_object **ret);
int topo_device_to_json(const TopoDevice *d, json_object **ret);

/*
 * The names of region types, in one table.  region_type_to_string() spells them as the
 * kernel does in reserved_regions, and as org.iommud1 and the simulated-topology files
 * do: "direct-relaxable".  region_type_to_idl() spells them as org.iommud.Broker's
 * ReservedRegion.type enum must, a Varlink identifier having no '-': "direct_relaxable".
 * Both give "unknown" for REGION_UNKNOWN and NULL out of range.
 */
const char *region_type_to_string(RegionType t);
const char *region_type_to_idl(RegionType t);
RegionType region_type_from_string(const char *s); /* unknown words give REGION_UNKNOWN */

/*
 * Parses one group's reserved_regions text ("0x%016llx 0x%016llx TYPE" per
 * line).  On a bad line returns -EINVAL with err naming the line number.
 */
int reserved_regions_parse(const char *text, size_t len, ReservedRegion **ret, size_t *ret_n,
                           Error *err);
void reserved_regions_free(ReservedRegion *r, size_t n);
