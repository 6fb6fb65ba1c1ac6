/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Shared by the files of the topology reader; nothing here is API.  A Loader
 * carries one topology_load() call: the Topology being filled, its problem
 * list and what is kept until the IOMMU instances are read.
 */

#include <stdbool.h>
#include <stddef.h>

#include "topology.h"

#define PROBLEM_MESSAGE_MAX 256
#define ATTR_MAX 4096

typedef struct TopologyPrivate {
        Topology pub;
        TopoDevice **by_cdev; /* devices with a cdev, sorted by (major, minor) */
        size_t n_by_cdev;
        /* Capacities of the arrays, which an update grows in place. */
        size_t allocated_groups, allocated_devices, allocated_problems, allocated_iommus;
        size_t allocated_by_cdev;
} TopologyPrivate;

/*
 * A device's directory, kept until the IOMMU instances are read: the
 * instances' device lists name the IOMMU of almost every device, and only
 * a device none of them lists has its own "iommu" link read.
 */
typedef struct PendingIommuLink {
        TopoDevice *device;
        char *dev_path;
} PendingIommuLink;

typedef struct Loader {
        int root_fd;
        TopologyPrivate *tp;
        unsigned group; /* the group being read, which its problems are about */
        PendingIommuLink *links;
        size_t n_links, allocated_links;
        /* Driver directories already found to exist: hosts have few drivers and many devices. */
        char *seen_targets[32];
        size_t n_seen_targets;
} Loader;

/* Frees what the loader kept besides the topology. */
void loader_done(Loader *l);
/* Grows *array to hold need elements of elem bytes; false when out of memory. */
bool topology_grow(void **array, size_t *allocated, size_t need, size_t elem);
/* Adds a problem about path (line 0: not about one line); returns -ENOMEM or 0. */
int topology_problem_add(Loader *l, const char *path, unsigned line, const char *fmt, ...)
        _printf_(4, 5);
/* Adds the problem an errno from reading path stands for; out of memory goes to *oom. */
void topology_problem_errno(Loader *l, const char *path, int error, int *oom);

/* reserved-regions.c */
typedef void (*RegionProblemFn)(void *userdata, unsigned line, const char *msg);
int reserved_regions_parse_lines(const char *text, size_t len, RegionProblemFn problem,
                                 void *userdata, ReservedRegion **ret, size_t *ret_n,
                                 unsigned *ret_bad_line, char *msg, size_t msg_size);

/* topo-device.c */
int topo_device_load(Loader *l, int group_devices_fd, const char *group_devices_path,
                     const char *name, TopoDevice **ret, bool *broken);
TopoDevice *topo_device_free(TopoDevice *d);
void topo_device_read_link_name(Loader *l, int dev_fd, const char *dev_path, const char *attr,
                                bool check_target, char **ret, bool *broken, int *oom);
/* Orders TopoDevice pointers by name, for qsort() and bsearch(). */
int topo_device_cmp(const void *a, const void *b);
/* Orders TopoDevice pointers by cdev (major, minor). */
int topo_device_cdev_cmp(const void *a, const void *b);

/* topo-group.c */
int topo_group_load(Loader *l, int groups_fd, const char *name);
void topo_group_free(TopoGroup *g);
/* Orders TopoGroup pointers by id. */
int topo_group_cmp(const void *a, const void *b);

/* iommu-instance.c */
/*
 * Reads class/iommu once every group is read, and names each device's IOMMU
 * from the instances' device lists or, failing that, its own iommu link.
 */
int iommu_instances_load(Loader *l);
void iommu_instance_free(IommuInstance *i);
IommuInstance *topology_find_iommu(const Topology *t, const char *name);
/* Names d's IOMMU (one of t's) from its own iommu link below dev_path. */
int iommu_device_read_link(Loader *l, const Topology *t, TopoDevice *d, const char *dev_path);

