/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Simulated topologies.  A JSON description (format in
 * tests/data/topologies/README.md) of IOMMU instances, groups, devices and
 * reserved regions, which simtopo_materialize() turns into a real directory
 * tree laid out like sysfs plus the device nodes backend-sim hands out:
 *
 *   ROOT/sys/...                        read by topology_load() like /sys
 *   ROOT/dev/vfio/devices/vfioN         simulated vfio cdev nodes
 *
 * Bundled topologies are found by name ("workstation", "server", "arm"); the
 * name "scale" (or "scale:N") is generated in memory.
 */

#include <stdbool.h>
#include <stdint.h>

#include "error.h"
#include "topology.h"

typedef struct SimIommu {
        char *name;              /* "dmar0" */
        char *kind;              /* "intel", "amd", "arm-smmu-v3" */
        uint32_t hw_info_type;   /* IOMMU_HW_INFO_TYPE_*: 1 Intel VT-d, 2 Arm SMMUv3, 0 none */
        uint64_t aperture_start;
        uint64_t aperture_last;  /* inclusive: 39-bit Intel is 0x7fffffffff */
        uint64_t page_sizes;     /* bitmap of supported page sizes, lowest is the IOVA granule */
        uint8_t pasid_bits;      /* IOMMU's PASID width, 0 without PASID */
        uint64_t capabilities;   /* BACKEND_HW_CAP_* */
        bool nesting;            /* supports NEST_PARENT + nested stage-1 HWPTs */
        bool dirty_tracking;
        bool fault_queue;        /* can deliver I/O page faults (PRI) */
} SimIommu;

typedef struct SimDevice {
        char *name;              /* BDF */
        char *label;             /* human description, e.g. "NVMe SSD"; may be NULL */
        uint16_t vendor, device, subsystem_vendor, subsystem_device;
        uint32_t class;
        char *driver;            /* NULL: unbound */
        int numa_node;
        bool cdev;               /* has a vfio cdev node (bound to a VFIO driver) */
        unsigned cdev_minor;     /* vfio<minor> */
        uint8_t pasid_bits;      /* device PASID capability width, 0 without */
        size_t group_index;      /* index into SimTopology.groups */
} SimDevice;

typedef struct SimGroup {
        unsigned id;
        char *type;              /* "DMA", "DMA-FQ", "identity", ... */
        size_t iommu_index;      /* index into SimTopology.iommus */
        ReservedRegion *regions;
        size_t n_regions;
        size_t *device_indexes;  /* indexes into SimTopology.devices */
        size_t n_devices;
} SimGroup;

typedef struct SimTopology {
        char *name;
        char *description;
        unsigned cdev_major;     /* major of the simulated vfio-dev region */
        SimIommu *iommus;
        size_t n_iommus;
        SimGroup *groups;
        size_t n_groups;
        SimDevice *devices;
        size_t n_devices;
} SimTopology;

/* Parses a description; errors name the JSON path of the offending value. */
int simtopo_parse(SimTopology **ret, const char *json_text, size_t len, Error *err);
/* A bundled name ("workstation", "scale:4096") or a path to a .json file. */
int simtopo_load(SimTopology **ret, const char *name_or_path, Error *err);
/* Generated topology with n devices (the "scale" topology). */
int simtopo_generate_scale(SimTopology **ret, size_t n_devices, Error *err);
SimTopology *simtopo_free(SimTopology *t);
DEFINE_TRIVIAL_CLEANUP_FUNC(SimTopology *, simtopo_free);

/* Writes ROOT/sys and ROOT/dev; root must not exist or be an empty directory. */
int simtopo_materialize(const SimTopology *t, const char *root, Error *err);
/* Removes a tree made by simtopo_materialize(). */
int simtopo_remove(const char *root);
/*
 * Rewrites ROOT/sys of a tree made by simtopo_materialize() from t as it is
 * now (after hotplug changes to the model).  The new sys/ is written to the
 * sibling ROOT.new and swapped in with one rename, so readers never see a
 * half-written tree; ROOT/dev keeps its nodes (clients hold them, and they
 * are identified by inode) and gains those of devices that got a cdev.
 * Refuses (-EPERM) a root that simtopo_materialize() did not make.
 */
int simtopo_rematerialize_sys(const SimTopology *t, const char *root, Error *err);

const SimDevice *simtopo_find_device(const SimTopology *t, const char *name);
