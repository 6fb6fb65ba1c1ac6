/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * A policy file (JSON with comments) on top of the built-in defaults, the way
 * one drop-in is read.  When it loads, every query the broker makes is asked
 * of it over a small host, so values the parser accepted are also used.  The
 * host is built in memory: this target links the policy engine alone.
 */

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "error.h"
#include "fake-topology.h"
#include "fuzz.h"
#include "macros.h"
#include "policy.h"
#include "topology.h"

/*
 * One Intel IOMMU: a USB controller alone with a direct-relaxable RMRR, an NVMe
 * on vfio-pci, and a two-port NIC with one port still on its host driver.
 */
static const FakeDevice host_devices[] = {
        { "0000:00:14.0", 1, 0x8086, 0x7ae0, 0x0c0330, "xhci_hcd", false },
        { "0000:01:00.0", 2, 0x144d, 0xa80a, 0x010802, "vfio-pci", true },
        { "0000:02:00.0", 3, 0x8086, 0x1572, 0x020000, "vfio-pci", true },
        { "0000:02:00.1", 3, 0x8086, 0x1572, 0x020000, "i40e", false },
};
static const FakeRegion host_regions[] = {
        { 1, 0x0, 0xffffff, REGION_DIRECT_RELAXABLE },
        { 1, 0xfee00000, 0xfeefffff, REGION_MSI },
        { 2, 0xfee00000, 0xfeefffff, REGION_MSI },
        { 3, 0xfee00000, 0xfeefffff, REGION_MSI },
};

static Topology *host;
static FILE *devnull;

static const char *holder(void *userdata, const TopoDevice *d) {
        /* One device is taken by someone else, so the exclusive step both passes and fails. */
        return streq(d->name, "0000:01:00.0") ? "uid 1001 (qemu-vm2.scope)" : NULL;
}

static void query(const Policy *p) {
        static const gid_t groups[] = { 36, 993 };
        static const Principal principals[] = {
                { .uid = 0, .gid = 0 },
                { .uid = 1000, .gid = 1000, .groups = groups, .n_groups = ELEMENTSOF(groups),
                  .unit = "machine-qemu\\x2d1\\x2dvm1.scope" },
                { .uid = 107, .gid = 107, .unit = "qemu-vm1.scope" },
        };
        const PolicyQuotas usage = { .devices = 1, .pinned_bytes = 1 << 20 };
        const PolicyRuntime rt = { .device_holder = holder, .usage = &usage };

        (void)policy_limits(p);
        for (size_t i = 0; i < ELEMENTSOF(principals); i++) {
                const Principal *pr = &principals[i];
                const IovaWindow *w;
                PolicyQuotas q;
                uint32_t lo, hi;
                size_t n;

                policy_quotas(p, pr, &q);
                policy_pasid_range(p, pr, &lo, &hi);
                (void)policy_allows_delegation(p, pr);
                (void)policy_iova_windows(p, pr, NULL, &w, &n);
                for (size_t j = 0; j < host->n_devices; j++) {
                        const TopoDevice *d = host->devices[j];
                        PolicyDecision dec = {};
                        json_object *o = NULL;

                        (void)policy_iova_windows(p, pr, d, &w, &n);
                        (void)policy_allows_open_on_behalf(p, pr, d);
                        if (policy_decide(p, host, d, pr, &rt, &dec) < 0)
                                continue;
                        if (dec.n_steps != _POLICY_STEP_MAX)
                                abort();
                        (void)policy_decision_print(&dec, d, devnull);
                        if (policy_decision_to_json(&dec, &o) >= 0)
                                json_object_put(o);
                        policy_decision_clear(&dec);
                }
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_(policy_freep) Policy *p = NULL;
        PolicyDiagnostics diags = {};
        Error err = ERROR_INIT;

        if (!host) {
                host = fake_topology_new(host_devices, ELEMENTSOF(host_devices), host_regions,
                                         ELEMENTSOF(host_regions), NULL, 0);
                devnull = fopen("/dev/null", "we");
                if (!devnull)
                        abort();
        }

        if (policy_load_string(&p, "fuzz.json", (const char *)data, size, &diags, &err) >= 0)
                query(p);
        (void)policy_diagnostics_print(&diags, devnull);
        policy_diagnostics_clear(&diags);
        error_clear(&err);
        return 0;
}
