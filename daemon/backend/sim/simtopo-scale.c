/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * The generated "scale" topology: many Intel-style IOMMUs, mostly
 * single-device groups, some multi-function and bridged ones.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "assert-util.h"
#include "backend.h"
#include "simtopo-internal.h"
#include "simtopo.h"

typedef struct ScaleKind {
        const char *label;
        const char *driver; /* NULL: unbound */
        uint16_t vendor, device;
        uint32_t class;
        uint8_t pasid_bits;
} ScaleKind;

/* A datacenter-ish mix; the rotation gives every group size a bit of everything. */
static const ScaleKind scale_kinds[] = {
        { "NVMe SSD", "nvme", 0x144d, 0xa80a, 0x010802, 0 },
        { "NVMe SSD (passthrough)", "vfio-pci", 0x144d, 0xa80a, 0x010802, 0 },
        { "100GbE NIC", "mlx5_core", 0x15b3, 0x101d, 0x020000, 0 },
        { "100GbE NIC VF (passthrough)", "vfio-pci", 0x15b3, 0x101e, 0x020000, 0 },
        { "10GbE NIC", "ixgbe", 0x8086, 0x10fb, 0x020000, 0 },
        { "GPU (passthrough)", "vfio-pci", 0x10de, 0x20b5, 0x030200, 20 },
        { "USB 3 xHCI controller", "xhci_hcd", 0x8086, 0x06ed, 0x0c0330, 0 },
        { "SATA AHCI controller", "ahci", 0x8086, 0x06d2, 0x010601, 0 },
        { "Accelerator (passthrough)", "vfio-pci", 0x8086, 0x0b25, 0x120000, 20 },
        { "Unbound endpoint", NULL, 0x1af4, 0x1041, 0x020000, 0 },
};

static const ScaleKind scale_bridge = { "PCIe root port", "pcieport", 0x8086, 0x347a, 0x060400, 0 };
static const ScaleKind scale_function = { "Quad-port NIC function", "vfio-pci", 0x8086, 0x1572,
                                          0x020000, 0 };

static int scale_add_device(SimTopology *t, size_t gi, const ScaleKind *k, unsigned slot,
                            unsigned fn, unsigned numa, unsigned *minor) {
        /* 32 slots per bus on buses 1-255, then the next PCI domain. */
        unsigned dom = slot / (255 * 32), bus = 1 + (slot / 32) % 255, dev = slot % 32;
        SimDevice *d = &t->devices[t->n_devices];
        SimGroup *g = &t->groups[gi];

        *d = (SimDevice){
                .vendor = k->vendor,
                .device = k->device,
                .subsystem_vendor = k->vendor,
                .subsystem_device = 0x0001,
                .class = k->class,
                .numa_node = (int)numa,
                .pasid_bits = k->pasid_bits,
                .group_index = gi,
        };
        t->n_devices++;
        if (asprintf(&d->name, "%04x:%02x:%02x.%x", dom, bus, dev, fn) < 0) {
                d->name = NULL;
                return -ENOMEM;
        }
        if (asprintf(&d->label, "%s %zu", k->label, t->n_devices - 1) < 0) {
                d->label = NULL;
                return -ENOMEM;
        }
        if (k->driver && !(d->driver = strdup(k->driver)))
                return -ENOMEM;
        if (k->driver && streq(k->driver, "vfio-pci")) {
                d->cdev = true;
                d->cdev_minor = (*minor)++;
        }
        g->device_indexes[g->n_devices++] = t->n_devices - 1;
        return 0;
}

/* Up to 16 identical Intel IOMMUs, one per 512 devices. */
static int scale_add_iommus(SimTopology *t, size_t n_devices) {
        t->n_iommus = MIN(MAX((n_devices + 511) / 512, (size_t)1), (size_t)16);
        t->iommus = calloc(t->n_iommus, sizeof(*t->iommus));
        if (!t->iommus)
                return -ENOMEM;
        for (size_t i = 0; i < t->n_iommus; i++) {
                SimIommu *m = &t->iommus[i];

                *m = (SimIommu){
                        .hw_info_type = 1,
                        .aperture_last = 0x7fffffffffULL,
                        .page_sizes = (1ULL << 12) | (1ULL << 21) | (1ULL << 30),
                        .pasid_bits = 20,
                        .capabilities = BACKEND_HW_CAP_DIRTY_TRACKING |
                                        BACKEND_HW_CAP_PCI_PASID_EXEC,
                        .nesting = true,
                        .dirty_tracking = true,
                        .fault_queue = true,
                };
                if (asprintf(&m->name, "dmar%zu", i) < 0) {
                        m->name = NULL;
                        return -ENOMEM;
                }
                if (!(m->kind = strdup("intel")))
                        return -ENOMEM;
        }
        return 0;
}

/* The group's reserved regions: MSI everywhere, and every 64th a relaxable RMRR before it. */
static int scale_group_regions(SimGroup *g, size_t gi) {
        g->n_regions = gi % 64 == 7 ? 2 : 1;
        g->regions = calloc(g->n_regions, sizeof(*g->regions));
        if (!g->regions)
                return -ENOMEM;
        g->regions[g->n_regions - 1] = (ReservedRegion){
                0xfee00000ULL, 0xfeefffffULL, REGION_MSI,
                strdup(region_type_to_string(REGION_MSI)) };
        if (!g->regions[g->n_regions - 1].type_name)
                return -ENOMEM;
        if (g->n_regions == 2) {
                /* An RMRR the OS may relax, as USB controllers have. */
                g->regions[0] = (ReservedRegion){
                        0x3c000000ULL, 0x3fffffffULL, REGION_DIRECT_RELAXABLE,
                        strdup(region_type_to_string(REGION_DIRECT_RELAXABLE)) };
                if (!g->regions[0].type_name)
                        return -ENOMEM;
        }
        return 0;
}

/* Adds group t->n_groups with up to left devices from *slot on. */
static int scale_add_group(SimTopology *t, size_t left, unsigned iommu, unsigned *slot,
                           unsigned *minor) {
        size_t gi = t->n_groups, size = 1;
        bool bridged = gi % 32 == 9;
        SimGroup *g = &t->groups[gi];
        int r;

        /* Every 16th group is a 4-function card, every 32nd a bridge with two devices. */
        if (gi % 16 == 5)
                size = MIN(left, (size_t)4);
        else if (bridged)
                size = MIN(left, (size_t)3);

        t->n_groups++;
        g->id = (unsigned)gi;
        g->iommu_index = iommu;
        g->device_indexes = calloc(size, sizeof(*g->device_indexes));
        g->type = strdup(gi % 3 == 0 ? "DMA" : "DMA-FQ");
        if (!g->device_indexes || !g->type || scale_group_regions(g, gi) < 0)
                return -ENOMEM;
        for (unsigned fn = 0; fn < size; fn++) {
                const ScaleKind *k;

                if (size == 1)
                        k = &scale_kinds[gi % ELEMENTSOF(scale_kinds)];
                else if (bridged)
                        k = fn == 0 ? &scale_bridge : &scale_kinds[1];
                else
                        k = &scale_function;
                /* Bridged devices get their own slots; functions share one. */
                if (fn > 0 && bridged)
                        (*slot)++;
                r = scale_add_device(t, gi, k, *slot, bridged ? 0 : fn, iommu % 2, minor);
                if (r < 0)
                        return r;
        }
        (*slot)++;
        return 0;
}

int simtopo_generate_scale(SimTopology **ret, size_t n_devices, Error *err) {
        _cleanup_(simtopo_freep) SimTopology *t = NULL;
        unsigned minor = 0, slot = 0;
        int r;

        assert_return(ret, -EINVAL);

        if (n_devices == 0 || n_devices > SIMTOPO_SCALE_MAX)
                return error_set(err, -ERANGE, "scale topology size %zu is not between 1 and %u",
                                 n_devices, SIMTOPO_SCALE_MAX);
        t = calloc(1, sizeof(*t));
        if (!t)
                return error_set(err, -ENOMEM, "out of memory");
        t->cdev_major = SIMTOPO_DEFAULT_CDEV_MAJOR;
        if (asprintf(&t->name, "scale:%zu", n_devices) < 0) {
                t->name = NULL;
                return error_set(err, -ENOMEM, "out of memory");
        }
        t->description = strdup("Generated: many Intel-style IOMMUs, mostly single-device "
                                "groups, some multi-function and bridged groups");
        /* At most one group per device. */
        t->groups = calloc(n_devices, sizeof(*t->groups));
        t->devices = calloc(n_devices, sizeof(*t->devices));
        if (!t->description || !t->groups || !t->devices || scale_add_iommus(t, n_devices) < 0)
                return error_set(err, -ENOMEM, "out of memory");

        while (t->n_devices < n_devices) {
                unsigned iommu = (unsigned)((t->n_devices * t->n_iommus) / n_devices);

                r = scale_add_group(t, n_devices - t->n_devices, iommu, &slot, &minor);
                if (r < 0)
                        return error_set(err, r, "out of memory");
        }
        r = simtopo_finish(t, NULL, err);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(t);
        return 0;
}
