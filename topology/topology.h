/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The host's IOMMU topology as sysfs shows it: IOMMU groups, their devices,
 * each group's reserved regions and default-domain type, and the IOMMU
 * instances.  Read from a sysfs root that is a parameter (a directory fd), so
 * that tests and --sim point it at a materialized tree.
 *
 * Hotplug changes a Topology in place, one IOMMU group at a time
 * (topology_update_groups()): a group read again replaces the old one and its
 * members as a whole, and every other group and device keeps its object, so a
 * pointer to one stays valid across updates that do not name its group.
 * Problems found while reading (a missing, truncated or garbled file) are
 * collected in topology->problems, each naming the file and line; a bad group
 * is kept with what could be read and never hides the others.
 */

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "error.h"
#include "reserved-regions.h"

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
        bool vfio_group_node;    /* class/vfio/<id>: a VFIO driver made /dev/vfio/<id> (the legacy
                                    group API, which kernels without VFIO cdevs have only) */
};

struct IommuInstance {
        char *name;              /* "dmar0", "ivhd0", "smmu3.0x0000000009050000", ... */
        char *kind;              /* "intel", "amd", "arm-smmu-v3", "arm-smmu" (SMMUv1/v2, MMU-500),
                                    "unknown": from its subdirs, or for an Arm SMMU its name */
        TopoDevice **devices;    /* devices listed under .../devices, sorted by name */
        size_t n_devices;
};

/* The group of a problem that is about no one group (class/iommu, a stray directory). */
#define TOPOLOGY_NO_GROUP UINT32_MAX

typedef struct TopologyProblem {
        char *path;              /* relative to the sysfs root, e.g. "kernel/iommu_groups/7/reserved_regions" */
        unsigned line;           /* 1-based, 0 when the problem is not about one line */
        char *message;           /* what was wrong, e.g. "expected 3 fields, got 2" */
        unsigned group;          /* the group it was found reading, or TOPOLOGY_NO_GROUP */
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

/*
 * Lookups: O(log n).  A device is found by its sysfs name, or a PCI device of domain 0000 by
 * lspci's short form ("01:00.0").
 */
TopoDevice *topology_find_device(const Topology *t, const char *name);
TopoDevice *topology_find_device_by_cdev(const Topology *t, unsigned major, unsigned minor);
TopoGroup *topology_find_group(const Topology *t, unsigned id);

/* How a device differs between two readings of the topology. */
typedef enum TopologyChangeKind {
        TOPOLOGY_DEVICE_ADDED,
        TOPOLOGY_DEVICE_REMOVED,
        TOPOLOGY_DEVICE_CHANGED,  /* another driver, cdev, group or identity */
} TopologyChangeKind;

typedef struct TopologyChange {
        TopologyChangeKind kind;
        const TopoDevice *device;    /* as it is now; NULL when removed */
        const TopoDevice *previous;  /* as it was; NULL when added */
} TopologyChange;

/*
 * What a reload or an update changed, sorted by device name.  The objects it
 * replaced (previous) are kept here, readable, until topology_diff_done().
 */
typedef struct TopologyDiff {
        TopologyChange *changes;
        size_t n_changes;
        bool full;                   /* everything was read again */
        Topology *old;               /* a full reload's previous topology */
        TopoGroup **retired_groups;  /* an update's replaced groups and devices */
        size_t n_retired_groups;
        TopoDevice **retired_devices;
        size_t n_retired_devices;
} TopologyDiff;

/*
 * The changes from old to t after a full reload; takes old (freed by
 * topology_diff_done(), also on failure).
 */
int topology_diff_replace(Topology *old, const Topology *t, TopologyDiff *ret);
void topology_diff_done(TopologyDiff *d);

/*
 * Reads the IOMMU groups ids[0..n_ids) again into t, in place: a group that is
 * gone goes with its members, a new one comes in, and one read again replaces
 * the old one as a whole (type, regions, members, their problems).  Groups and
 * devices not named keep their objects.  What was replaced, and how the devices
 * of those groups differ, goes to *ret.  On failure (out of memory, or
 * kernel/iommu_groups cannot be opened) t is unchanged.
 */
int topology_update_groups(Topology *t, int sysfs_root_fd, const unsigned *ids, size_t n_ids,
                           TopologyDiff *ret, Error *err);

/*
 * The IOMMU group sysfs puts a device in now: the iommu_group link below devpath
 * (a uevent's DEVPATH, "/devices/pci0000:00/0000:00:03.0") or, without one,
 * below bus/pci/devices/NAME (bus/platform for a name that is no PCI address).
 * -ENOENT when the device is gone or has no group.
 */
int topology_device_group(int sysfs_root_fd, const char *devpath, const char *name,
                          unsigned *ret);

/* PCI class 0x0604xx (PCI-to-PCI bridge) and friends that may share a group harmlessly. */
bool topo_device_is_bridge(const TopoDevice *d);
/* Unbound, on a VFIO driver or pci-stub, or a bridge: no host driver does DMA through it. */
bool topo_device_keeps_group_viable(const TopoDevice *d);
/*
 * Whether a group may be handed to a client as a whole: it was read completely and every
 * member keeps it viable.  The one definition of "viable" that the group listing, the
 * policy's group step and every transport use.
 */
bool topo_group_viable(const TopoGroup *g);
