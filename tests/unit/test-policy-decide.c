/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <fnmatch.h>
#include <limits.h>

#include "fake-topology.h"
#include "macros.h"
#include "policy-internal.h"
#include "policy.h"

/* ---- the host ------------------------------------------------------------------------- */

static const FakeDevice devices[] = {
        /* name          group  vendor  device  class     driver        cdev */
        { "0000:01:00.0", 1, 0x144d, 0xa808, 0x010802, "vfio-pci", true },
        { "0000:02:00.0", 2, 0x10de, 0x2204, 0x030000, "vfio-pci", true },
        { "0000:02:00.1", 2, 0x10de, 0x1aef, 0x040300, "vfio-pci", true },
        { "0000:03:00.0", 3, 0x8086, 0x10fb, 0x020000, "vfio-pci", true },
        { "0000:03:00.1", 3, 0x8086, 0x10fb, 0x020000, "ixgbe", false },
        { "0000:00:1c.0", 4, 0x8086, 0xa33c, 0x060400, "pcieport", false },
        { "0000:04:00.0", 4, 0x8086, 0x1521, 0x020000, "vfio-pci", true },
        { "0000:05:00.0", 5, 0x8086, 0x1521, 0x020000, "vfio-pci", true },
        { "0000:05:00.1", 5, 0x8086, 0x1521, 0x020000, "pci-stub", false },
        { "0000:06:00.0", 6, 0x8086, 0x1521, 0x020000, "vfio-pci", true },
        { "0000:06:00.1", 6, 0x8086, 0x1521, 0x020000, NULL, false },
        { "0000:07:00.0", 7, 0x8086, 0xa36d, 0x0c0330, "vfio-pci", true },
        { "0000:08:00.0", 8, 0x8086, 0x15b8, 0x020000, "vfio-pci", true },
        { "0000:09:00.0", 9, 0x144d, 0xa808, 0x010802, "nvme", false },
        { "0000:0a:00.0", 10, 0x144d, 0xa808, 0x010802, "vfio-pci", false },
        { "0000:0b:00.0", 11, 0x144d, 0xa808, 0x010802, NULL, false },
        { "0000:0c:00.0", 12, 0x1af4, 0x1000, 0x020000, "vfio-pci", true },
        { "0000:0d:00.0", 13, 0x144d, 0xa808, 0x010802, "vfio-pci", true },
        { "0000:0e:00.0", FAKE_NO_GROUP, 0x144d, 0xa808, 0x010802, "vfio-pci", true },
        { "0000:0f:00.0", 14, 0x144d, 0xa808, 0x010802, "vfio-pci", true },
        { "0000:10:00.0", 15, 0x8086, 0x1521, 0x020000, "vfio-pci", true },
        { "0000:10:00.1", 15, 0x8086, 0x1521, 0x020000, "vfio-pci", true },
        { "0000:11:00.0", 16, 0x1234, 0x5678, 0x120000, "vfio-pci", true },
        { "0000:13:00.0", 17, 0x8086, 0xa36d, 0x0c0330, "vfio-pci", true },
        { "0000:14:00.0", 18, 0x8086, 0x15b8, 0x020000, "vfio-pci", true },
        { "0000:15:00.0", 19, 0x8086, 0x1521, 0x020000, "vfio-pci", true },
        { "0000:16:00.0", 20, 0x10de, 0x2204, 0x030000, "nouveau", false },
        { "0000:16:00.1", 20, 0x10de, 0x1aef, 0x040300, "snd_hda_intel", false },
        { "0000:17:00.0", 21, 0x8086, 0x1521, 0x020000, "vfio-pci", true },
        { "0000:17:00.1", 21, 0x8086, 0x1521, 0x020000, "igb", false },
        { "0000:17:00.2", 21, 0x8086, 0x1521, 0x020000, "igb", false },
        { "0000:18:00.0", 22, 0x8086, 0x1521, 0x020000, "vfio-platform", true },
};

static const FakeRegion regions[] = {
        { 7, 0x7b800000, 0x7fffffff, REGION_DIRECT_RELAXABLE },
        { 8, 0x7b800000, 0x7fffffff, REGION_DIRECT },
        { 13, 0xfee00000, 0xfeefffff, REGION_MSI },
        { 13, 0x1000000000, 0x10ffffffff, REGION_RESERVED },
        { 17, 0x7c000000, 0x7c0fffff, REGION_DIRECT_RELAXABLE },
        { 18, 0x7b800000, 0x7fffffff, REGION_DIRECT },
        { 18, 0xfee00000, 0xfeefffff, REGION_MSI },
};

static const unsigned broken_groups[] = { 14 };

/* ---- the policies --------------------------------------------------------------------- */

static const char policy_main[] =
        "{\n"
        "  \"quotas\": { \"devices\": 2 },\n"
        "  \"reserved-regions\": { \"exceptions\": {\n"
        "    \"strict-usb\": { \"match\": \"0000:13:*\", \"direct-relaxable\": \"deny\" },\n"
        "    \"legacy\": { \"match\": { \"bdf\": \"0000:14:00.0\" }, \"direct\": \"allow\" } } },\n"
        "  \"rules\": {\n"
        "    \"nvme\": { \"action\": \"allow\", \"match\": { \"id\": \"144d:*\" } },\n"
        "    \"intel\": { \"action\": \"allow\", \"match\": [ { \"id\": \"8086:*\" } ] },\n"
        "    \"gpus\": { \"action\": \"allow\", \"match\": { \"id\": \"10de:*\" } },\n"
        "    \"no-gpus\": { \"action\": \"deny\", \"match\": { \"class\": \"0x03xxxx\" } },\n"
        "    \"accel\": { \"action\": \"allow\", \"match\": { \"class\": \"0x12xxxx\" } },\n"
        "    \"blocked-nic\": { \"action\": \"deny\", \"match\": \"0000:15:00.0\" }\n"
        "  },\n"
        "  \"pools\": {\n"
        "    \"nvme-disks\": { \"devices\": { \"class\": \"0x010802\" } },\n"
        "    \"accelerators\": { \"devices\": [ { \"class\": \"0x12xxxx\" } ] }\n"
        "  },\n"
        "  \"grants\": {\n"
        "    \"alice\": { \"principals\": \"user:1000\",\n"
        "                \"devices\": [ \"0000:01:00.0\", { \"id\": \"8086:*\" } ],\n"
        "                \"iova-windows\": [ { \"start\": 0, \"last\": \"0xffffffff\" } ] },\n"
        "    \"storage\": { \"principals\": \"group:500\", \"pools\": [ \"nvme-disks\" ],\n"
        "                  \"open-on-behalf\": true },\n"
        "    \"vms\": { \"principals\": { \"user\": 107, \"unit\": \"machine-qemu*.scope\" },\n"
        "              \"pools\": [ \"accelerators\" ], \"quotas\": { \"devices\": 1 },\n"
        "              \"delegation\": true },\n"
        "    \"root\": { \"principals\": \"user:root\", \"devices\": \"*\",\n"
        "               \"quotas\": { \"devices\": \"unlimited\" } }\n"
        "  }\n"
        "}\n";

/* Everything allowed, but relaxable regions denied everywhere. */
static const char policy_strict[] =
        "{ \"reserved-regions\": { \"direct-relaxable\": \"deny\" },\n"
        "  \"rules\": { \"all\": { \"action\": \"allow\", \"match\": \"*\" } } }\n";

/* Direct regions allowed by default (a lab machine), relaxable by default too. */
static const char policy_lax[] =
        "{ \"reserved-regions\": { \"direct\": \"allow\" },\n"
        "  \"rules\": { \"all\": { \"action\": \"allow\", \"match\": { \"bdf\": \"0000:0?:*\" } } } }\n";

enum { POLICY_MAIN, POLICY_STRICT, POLICY_LAX, _POLICY_MAX };

static const char *const policy_texts[_POLICY_MAX] = { policy_main, policy_strict, policy_lax };

/* ---- the principals ------------------------------------------------------------------- */

static const gid_t dave_groups[] = { 27, 500 };

static const Principal root = { .uid = 0, .gid = 0 };
static const Principal alice = { .uid = 1000, .gid = 1000 };
static const Principal bob = { .uid = 1001, .gid = 1001 };
static const Principal carol = { .uid = 1002, .gid = 500 };
static const Principal dave = { .uid = 1003, .gid = 1003, .groups = dave_groups, .n_groups = 2 };
static const Principal qemu_vm = { .uid = 107, .gid = 107, .unit = "machine-qemu-1-vm.scope" };
static const Principal qemu_session = { .uid = 107, .gid = 107, .unit = "session-3.scope" };
static const Principal qemu_no_unit = { .uid = 107, .gid = 107 };
/* Its cgroup named the unit, but not in the system manager's tree. */
static const Principal qemu_refused_unit = {
        .uid = 107, .gid = 107,
        .unit_refused = "machine-qemu-1-vm.scope is under user@107.service, a user's own service manager",
};

/* ---- the cases ------------------------------------------------------------------------ */

typedef enum RuntimeKind {
        RT_NONE,         /* rt == NULL */
        RT_HOLDER,       /* device_holder only, no usage */
        RT_FULL,         /* device_holder and usage */
        RT_HANDOFF,      /* device_holder and usage, for a handoff of the device's fds */
} RuntimeKind;

typedef struct DecideCase {
        const char *name;
        int policy;
        const char *device;
        const Principal *principal;
        RuntimeKind rt;
        const char *holder;
        uint64_t in_use;         /* devices in use, with RT_FULL */
        const char *verdicts;    /* one of P, F, S per step: match driver group regions principal exclusive quota
                                    delegation */
        PolicyStep step;         /* the step whose reason is checked */
        const char *reason;      /* exactly */
        const char *pool;
} DecideCase;

#define ONLY_DEVICE "SSSS"

static const DecideCase cases[] = {
        /* Device eligibility: no principal. */
        { "eligible nvme", POLICY_MAIN, "0000:01:00.0", NULL, RT_NONE, NULL, 0, "PPPP" ONLY_DEVICE,
          POLICY_STEP_MATCH, "allowed by rule 'nvme' (id 144d:*)" },
        { "no principal skips the rest", POLICY_MAIN, "0000:01:00.0", NULL, RT_FULL, "uid 5", 9,
          "PPPP" ONLY_DEVICE, POLICY_STEP_PRINCIPAL, "no principal given: device eligibility only" },
        { "deny beats allow", POLICY_MAIN, "0000:02:00.0", NULL, RT_NONE, NULL, 0, "FPPP" ONLY_DEVICE,
          POLICY_STEP_MATCH, "denied by rule 'no-gpus' (class 0x03xxxx), deny beats allow rule 'gpus' (id 10de:*)" },
        { "deny by bdf beats allow by id", POLICY_MAIN, "0000:15:00.0", NULL, RT_NONE, NULL, 0,
          "FPPP" ONLY_DEVICE, POLICY_STEP_MATCH,
          "denied by rule 'blocked-nic' (bdf 0000:15:00.0), deny beats allow rule 'intel' (id 8086:*)" },
        { "no allow rule", POLICY_MAIN, "0000:0c:00.0", NULL, RT_NONE, NULL, 0, "FPPP" ONLY_DEVICE,
          POLICY_STEP_MATCH, "no allow rule matches 0000:0c:00.0 (id 1af4:1000, class 0x020000, driver vfio-pci)" },
        { "allow by class", POLICY_MAIN, "0000:11:00.0", NULL, RT_NONE, NULL, 0, "PPPP" ONLY_DEVICE,
          POLICY_STEP_MATCH, "allowed by rule 'accel' (class 0x12xxxx)" },
        { "allow by bdf glob", POLICY_LAX, "0000:07:00.0", NULL, RT_NONE, NULL, 0, "PPPP" ONLY_DEVICE,
          POLICY_STEP_MATCH, "allowed by rule 'all' (bdf 0000:0?:*)" },
        { "bdf glob does not match", POLICY_LAX, "0000:10:00.0", NULL, RT_NONE, NULL, 0, "FPPP" ONLY_DEVICE,
          POLICY_STEP_MATCH, "no allow rule matches 0000:10:00.0 (id 8086:1521, class 0x020000, driver vfio-pci)" },
        { "non-viable group names sibling and driver", POLICY_MAIN, "0000:03:00.0", NULL, RT_NONE, NULL, 0,
          "PPFP" ONLY_DEVICE, POLICY_STEP_GROUP,
          "group 3 is not viable: 0000:03:00.1 is bound to host driver ixgbe" },
        { "every offending sibling is named", POLICY_MAIN, "0000:17:00.0", NULL, RT_NONE, NULL, 0,
          "PPFP" ONLY_DEVICE, POLICY_STEP_GROUP,
          "group 21 is not viable: 0000:17:00.1 is bound to host driver igb and 0000:17:00.2 is bound to host driver igb" },
        { "bridge in group", POLICY_MAIN, "0000:04:00.0", NULL, RT_NONE, NULL, 0, "PPPP" ONLY_DEVICE,
          POLICY_STEP_GROUP, "group 4 is viable: its 1 other member is unbound, on a VFIO driver, pci-stub or a bridge: 0000:00:1c.0 (a bridge)" },
        { "pci-stub sibling", POLICY_MAIN, "0000:05:00.0", NULL, RT_NONE, NULL, 0, "PPPP" ONLY_DEVICE,
          POLICY_STEP_GROUP, "group 5 is viable: its 1 other member is unbound, on a VFIO driver, pci-stub or a bridge: 0000:05:00.1 (pci-stub)" },
        { "unbound sibling", POLICY_MAIN, "0000:06:00.0", NULL, RT_NONE, NULL, 0, "PPPP" ONLY_DEVICE,
          POLICY_STEP_GROUP, "group 6 is viable: its 1 other member is unbound, on a VFIO driver, pci-stub or a bridge: 0000:06:00.1 (unbound)" },
        { "vfio sibling", POLICY_MAIN, "0000:10:00.0", NULL, RT_NONE, NULL, 0, "PPPP" ONLY_DEVICE,
          POLICY_STEP_GROUP, "group 15 is viable: its 1 other member is unbound, on a VFIO driver, pci-stub or a bridge: 0000:10:00.1 (vfio-pci)" },
        { "only member", POLICY_MAIN, "0000:01:00.0", NULL, RT_NONE, NULL, 0, "PPPP" ONLY_DEVICE,
          POLICY_STEP_GROUP, "group 1 is viable: 0000:01:00.0 is its only member" },
        { "no group", POLICY_MAIN, "0000:0e:00.0", NULL, RT_NONE, NULL, 0, "PPFS" ONLY_DEVICE,
          POLICY_STEP_GROUP, "0000:0e:00.0 has no IOMMU group: no IOMMU isolates its DMA" },
        { "broken group", POLICY_MAIN, "0000:0f:00.0", NULL, RT_NONE, NULL, 0, "PPFP" ONLY_DEVICE,
          POLICY_STEP_GROUP, "group 14 could not be read completely (see the topology problems), so its viability is unknown" },
        { "host driver", POLICY_MAIN, "0000:09:00.0", NULL, RT_NONE, NULL, 0, "PFFP" ONLY_DEVICE,
          POLICY_STEP_DRIVER, "0000:09:00.0 is bound to host driver nvme, not to a VFIO driver such as vfio-pci" },
        { "vfio without cdev", POLICY_MAIN, "0000:0a:00.0", NULL, RT_NONE, NULL, 0, "PFPP" ONLY_DEVICE,
          POLICY_STEP_DRIVER, "0000:0a:00.0 is bound to vfio-pci but has no VFIO device cdev (kernel without CONFIG_VFIO_DEVICE_CDEV?)" },
        { "unbound device", POLICY_MAIN, "0000:0b:00.0", NULL, RT_NONE, NULL, 0, "PFPP" ONLY_DEVICE,
          POLICY_STEP_DRIVER, "0000:0b:00.0 is not bound to any driver; bind it to vfio-pci" },
        { "cdev named", POLICY_MAIN, "0000:01:00.0", NULL, RT_NONE, NULL, 0, "PPPP" ONLY_DEVICE,
          POLICY_STEP_DRIVER, "bound to vfio-pci with cdev vfio0 (511:0)" },
        { "any vfio* driver", POLICY_MAIN, "0000:18:00.0", NULL, RT_NONE, NULL, 0, "PPPP" ONLY_DEVICE,
          POLICY_STEP_DRIVER, "bound to vfio-platform with cdev vfio31 (511:31)" },
        { "RMRR direct denied", POLICY_MAIN, "0000:08:00.0", NULL, RT_NONE, NULL, 0, "PPPF" ONLY_DEVICE,
          POLICY_STEP_REGIONS,
          "group 8 has a 'direct' reserved region 0x000000007b800000-0x000000007fffffff (firmware needs a 1:1 mapping the client would own): such devices are not handed to userspace (reserved-regions.direct is \"deny\")" },
        { "direct allowed when configured", POLICY_LAX, "0000:08:00.0", NULL, RT_NONE, NULL, 0,
          "PPPP" ONLY_DEVICE, POLICY_STEP_REGIONS,
          "group 8 has a 'direct' reserved region 0x000000007b800000-0x000000007fffffff (firmware needs a 1:1 mapping the client would own), allowed by reserved-regions.direct" },
        { "direct allowed by exception", POLICY_MAIN, "0000:14:00.0", NULL, RT_NONE, NULL, 0,
          "PPPP" ONLY_DEVICE, POLICY_STEP_REGIONS,
          "group 18 has a 'direct' reserved region 0x000000007b800000-0x000000007fffffff (firmware needs a 1:1 mapping the client would own), allowed by exception 'legacy'" },
        { "relaxable allowed by default", POLICY_MAIN, "0000:07:00.0", NULL, RT_NONE, NULL, 0,
          "PPPP" ONLY_DEVICE, POLICY_STEP_REGIONS,
          "group 7 has a 'direct-relaxable' reserved region 0x000000007b800000-0x000000007fffffff (a 1:1 mapping the OS may drop), allowed by reserved-regions.direct-relaxable" },
        { "relaxable denied when configured", POLICY_STRICT, "0000:07:00.0", NULL, RT_NONE, NULL, 0,
          "PPPF" ONLY_DEVICE, POLICY_STEP_REGIONS,
          "group 7 has a 'direct-relaxable' reserved region 0x000000007b800000-0x000000007fffffff (a 1:1 mapping the OS may drop), denied by reserved-regions.direct-relaxable" },
        { "relaxable denied by exception", POLICY_MAIN, "0000:13:00.0", NULL, RT_NONE, NULL, 0,
          "PPPF" ONLY_DEVICE, POLICY_STEP_REGIONS,
          "group 17 has a 'direct-relaxable' reserved region 0x000000007c000000-0x000000007c0fffff (a 1:1 mapping the OS may drop), denied by exception 'strict-usb'" },
        { "reserved and msi regions are fine", POLICY_MAIN, "0000:0d:00.0", NULL, RT_NONE, NULL, 0,
          "PPPP" ONLY_DEVICE, POLICY_STEP_REGIONS, "no direct-mapped reserved regions in group 13" },
        { "every device-only problem is shown", POLICY_MAIN, "0000:16:00.0", NULL, RT_NONE, NULL, 0,
          "FFFP" ONLY_DEVICE, POLICY_STEP_GROUP,
          "group 20 is not viable: 0000:16:00.0 is bound to host driver nouveau and 0000:16:00.1 is bound to host driver snd_hda_intel" },

        /* Principals. */
        { "root gets everything", POLICY_MAIN, "0000:01:00.0", &root, RT_NONE, NULL, 0, "PPPPPSSS",
          POLICY_STEP_PRINCIPAL, "uid 0 is granted 0000:01:00.0 by grant 'root' (user root (uid 0)) for bdf *" },
        { "uid by number, device by bdf", POLICY_MAIN, "0000:01:00.0", &alice, RT_NONE, NULL, 0, "PPPPPSSS",
          POLICY_STEP_PRINCIPAL, "uid 1000 is granted 0000:01:00.0 by grant 'alice' (uid 1000) for bdf 0000:01:00.0" },
        { "device by id", POLICY_MAIN, "0000:04:00.0", &alice, RT_NONE, NULL, 0, "PPPPPSSS",
          POLICY_STEP_PRINCIPAL, "uid 1000 is granted 0000:04:00.0 by grant 'alice' (uid 1000) for id 8086:*" },
        { "named but not granted this device", POLICY_MAIN, "0000:11:00.0", &alice, RT_NONE, NULL, 0,
          "PPPPFSSS", POLICY_STEP_PRINCIPAL,
          "uid 1000 is named by grant 'alice', but no grant gives it 0000:11:00.0" },
        { "not granted at all", POLICY_MAIN, "0000:01:00.0", &bob, RT_NONE, NULL, 0, "PPPPFSSS",
          POLICY_STEP_PRINCIPAL, "no grant names uid 1001 (gid 1001): it may use no device" },
        { "primary gid through a pool", POLICY_MAIN, "0000:01:00.0", &carol, RT_NONE, NULL, 0, "PPPPPSSS",
          POLICY_STEP_PRINCIPAL,
          "uid 1002 is granted 0000:01:00.0 by grant 'storage' (gid 500) through pool 'nvme-disks' (class 0x010802)",
          "nvme-disks" },
        { "supplementary group through a pool", POLICY_MAIN, "0000:0d:00.0", &dave, RT_NONE, NULL, 0,
          "PPPPPSSS", POLICY_STEP_PRINCIPAL,
          "uid 1003 is granted 0000:0d:00.0 by grant 'storage' (gid 500) through pool 'nvme-disks' (class 0x010802)",
          "nvme-disks" },
        { "supplementary group, device outside the pool", POLICY_MAIN, "0000:04:00.0", &dave, RT_NONE, NULL,
          0, "PPPPFSSS", POLICY_STEP_PRINCIPAL,
          "uid 1003 is named by grant 'storage', but no grant gives it 0000:04:00.0" },
        { "unit glob matches", POLICY_MAIN, "0000:11:00.0", &qemu_vm, RT_NONE, NULL, 0, "PPPPPSSP",
          POLICY_STEP_PRINCIPAL,
          "uid 107 (machine-qemu-1-vm.scope) is granted 0000:11:00.0 by grant 'vms' (uid 107, unit machine-qemu*.scope) through pool 'accelerators' (class 0x12xxxx)",
          "accelerators" },
        { "unit glob does not match", POLICY_MAIN, "0000:11:00.0", &qemu_session, RT_NONE, NULL, 0,
          "PPPPFSSS", POLICY_STEP_PRINCIPAL, "no grant names uid 107 (gid 107, unit session-3.scope): it may use no device" },
        { "unit required but none", POLICY_MAIN, "0000:11:00.0", &qemu_no_unit, RT_NONE, NULL, 0,
          "PPPPFSSS", POLICY_STEP_PRINCIPAL, "no grant names uid 107 (gid 107): it may use no device" },
        { "a refused unit says why", POLICY_MAIN, "0000:11:00.0", &qemu_refused_unit, RT_NONE, NULL, 0,
          "PPPPFSSS", POLICY_STEP_PRINCIPAL,
          "no grant names uid 107 (gid 107, no unit: machine-qemu-1-vm.scope is under user@107.service, a user's own service manager): it may use no device" },
        { "device-only failure with a principal", POLICY_MAIN, "0000:03:00.0", &alice, RT_FULL, NULL, 0,
          "PPFPPPPS", POLICY_STEP_GROUP, "group 3 is not viable: 0000:03:00.1 is bound to host driver ixgbe" },
        { "pool grant on a device with a host driver", POLICY_MAIN, "0000:09:00.0", &carol, RT_NONE, NULL, 0,
          "PFFPPSSS", POLICY_STEP_DRIVER,
          "0000:09:00.0 is bound to host driver nvme, not to a VFIO driver such as vfio-pci", "nvme-disks" },

        /* Exclusivity. */
        { "held by another session", POLICY_MAIN, "0000:01:00.0", &alice, RT_HOLDER, "uid 1000 (qemu-vm1.scope)",
          0, "PPPPPFSS", POLICY_STEP_EXCLUSIVE, "held by uid 1000 (qemu-vm1.scope)" },
        { "free device", POLICY_MAIN, "0000:01:00.0", &alice, RT_HOLDER, NULL, 0, "PPPPPPSS",
          POLICY_STEP_EXCLUSIVE, "not held by another session" },
        { "no runtime", POLICY_MAIN, "0000:01:00.0", &alice, RT_NONE, NULL, 0, "PPPPPSSS",
          POLICY_STEP_EXCLUSIVE, "no session state given" },
        { "holder shown even when not granted", POLICY_MAIN, "0000:01:00.0", &bob, RT_FULL, "uid 0", 0,
          "PPPPFFSS", POLICY_STEP_EXCLUSIVE, "held by uid 0" },

        /* Quotas. */
        { "quota exhausted", POLICY_MAIN, "0000:01:00.0", &alice, RT_FULL, NULL, 2, "PPPPPPFS",
          POLICY_STEP_QUOTA, "device quota 2 reached (2 in use)" },
        { "quota left", POLICY_MAIN, "0000:01:00.0", &alice, RT_FULL, NULL, 1, "PPPPPPPS",
          POLICY_STEP_QUOTA, "1 of 2 devices in use" },
        { "grant quota", POLICY_MAIN, "0000:11:00.0", &qemu_vm, RT_FULL, NULL, 1, "PPPPPPFP",
          POLICY_STEP_QUOTA, "device quota 1 reached (1 in use)", "accelerators" },
        { "unlimited quota", POLICY_MAIN, "0000:01:00.0", &root, RT_FULL, NULL, 100, "PPPPPPPS",
          POLICY_STEP_QUOTA, "no device quota (100 in use)" },
        { "no quota without a grant", POLICY_MAIN, "0000:01:00.0", &bob, RT_FULL, NULL, 0, "PPPPFPSS",
          POLICY_STEP_QUOTA, "no grant applies, so there is no quota to check" },
        { "no usage given", POLICY_MAIN, "0000:01:00.0", &alice, RT_HOLDER, NULL, 0, "PPPPPPSS",
          POLICY_STEP_QUOTA, "no usage given" },

        /* Delegation: counts only for a handoff of the device's fds. */
        { "delegation granted", POLICY_MAIN, "0000:11:00.0", &qemu_vm, RT_NONE, NULL, 0, "PPPPPSSP",
          POLICY_STEP_DELEGATION,
          "uid 107 (machine-qemu-1-vm.scope) may take the fds of 0000:11:00.0 itself (OpenDevices) by grant 'vms'",
          "accelerators" },
        { "no delegation, brokered use", POLICY_MAIN, "0000:01:00.0", &alice, RT_FULL, NULL, 0,
          "PPPPPPPS", POLICY_STEP_DELEGATION,
          "use through iommud only: no grant that gives uid 1000 0000:01:00.0 has \"delegation\": true, so OpenDevices would refuse it" },
        { "no delegation, handoff", POLICY_MAIN, "0000:01:00.0", &alice, RT_HANDOFF, NULL, 0,
          "PPPPPPPF", POLICY_STEP_DELEGATION,
          "no grant that gives uid 1000 0000:01:00.0 has \"delegation\": true: iommud hands it out only through its own calls, never as fds" },
        { "delegation, handoff", POLICY_MAIN, "0000:11:00.0", &qemu_vm, RT_HANDOFF, NULL, 0,
          "PPPPPPPP", POLICY_STEP_DELEGATION,
          "uid 107 (machine-qemu-1-vm.scope) may take the fds of 0000:11:00.0 itself (OpenDevices) by grant 'vms'",
          "accelerators" },
        { "handoff without any grant", POLICY_MAIN, "0000:01:00.0", &bob, RT_HANDOFF, NULL, 0,
          "PPPPFPSS", POLICY_STEP_DELEGATION,
          "no grant gives uid 1001 0000:01:00.0, so it cannot take its fds either" },
        { "handoff, device refused first", POLICY_MAIN, "0000:03:00.0", &alice, RT_HANDOFF, NULL, 0,
          "PPFPPPPF", POLICY_STEP_GROUP,
          "group 3 is not viable: 0000:03:00.1 is bound to host driver ixgbe" },
};

/* ---- running them --------------------------------------------------------------------- */

typedef struct Fixture {
        Topology *topology;
        Policy *policies[_POLICY_MAX];
} Fixture;

static int setup(void **state) {
        Fixture *f = calloc(1, sizeof(Fixture));

        assert_non_null(f);
        f->topology = fake_topology_new(devices, ELEMENTSOF(devices), regions, ELEMENTSOF(regions),
                                        broken_groups, ELEMENTSOF(broken_groups));
        for (size_t i = 0; i < _POLICY_MAX; i++) {
                PolicyDiagnostics diags = {};

                if (policy_load_string(&f->policies[i], "test.json", policy_texts[i],
                                       strlen(policy_texts[i]), &diags, NULL) < 0) {
                        policy_diagnostics_print(&diags, stderr);
                        policy_diagnostics_clear(&diags);
                        return -1;
                }
        }
        *state = f;
        return 0;
}

static int teardown(void **state) {
        Fixture *f = *state;

        for (size_t i = 0; i < _POLICY_MAX; i++)
                policy_free(f->policies[i]);
        fake_topology_free(f->topology);
        free(f);
        return 0;
}

static const char *holder_of(void *userdata, const TopoDevice *d) {
        return userdata;
}

static char verdict_char(PolicyVerdict v) {
        return v == POLICY_PASS ? 'P' : v == POLICY_FAIL ? 'F' : 'S';
}

static bool case_run(const Fixture *f, const DecideCase *c) {
        const TopoDevice *d = fake_topology_device(f->topology, c->device);
        PolicyQuotas usage = { .devices = c->in_use };
        PolicyRuntime rt = { .device_holder = holder_of, .userdata = (void *)c->holder };
        PolicyDecision dec;
        char got[_POLICY_STEP_MAX + 1] = {};
        bool ok = true, expect_allowed = !strchr(c->verdicts, 'F');

        assert_non_null(d);
        if (c->rt == RT_FULL || c->rt == RT_HANDOFF)
                rt.usage = &usage;
        rt.handoff = c->rt == RT_HANDOFF;
        assert_int_equal(policy_decide(f->policies[c->policy], f->topology, d, c->principal,
                                       c->rt == RT_NONE ? NULL : &rt, &dec),
                         0);
        assert_int_equal(dec.n_steps, _POLICY_STEP_MAX);
        for (size_t i = 0; i < _POLICY_STEP_MAX; i++) {
                assert_int_equal(dec.steps[i].step, i);
                assert_non_null(dec.steps[i].reason);
                got[i] = verdict_char(dec.steps[i].verdict);
        }
        if (strlen(c->verdicts) != _POLICY_STEP_MAX || !streq(got, c->verdicts)) {
                print_error("case '%s': verdicts %s, expected %s\n", c->name, got, c->verdicts);
                ok = false;
        }
        if (dec.allowed != expect_allowed) {
                print_error("case '%s': allowed=%d\n", c->name, dec.allowed);
                ok = false;
        }
        if (!dec.allowed && dec.failed_step != (PolicyStep)(strchr(got, 'F') - got)) {
                print_error("case '%s': failed_step=%s\n", c->name,
                            policy_step_to_string(dec.failed_step));
                ok = false;
        }
        if (!streq(dec.steps[c->step].reason, c->reason)) {
                print_error("case '%s': %s reason\n  got:      %s\n  expected: %s\n", c->name,
                            policy_step_to_string(c->step), dec.steps[c->step].reason, c->reason);
                ok = false;
        }
        if (!streq(dec.pool ?: "", c->pool ?: "")) {
                print_error("case '%s': pool %s, expected %s\n", c->name, dec.pool ?: "(none)",
                            c->pool ?: "(none)");
                ok = false;
        }
        policy_decision_clear(&dec);
        return ok;
}

static void test_decisions(void **state) {
        const Fixture *f = *state;
        unsigned failed = 0;

        assert_true(ELEMENTSOF(cases) >= 40);
        for (size_t i = 0; i < ELEMENTSOF(cases); i++)
                if (!case_run(f, &cases[i]))
                        failed++;
        assert_int_equal(failed, 0);
}

/* Without iommufd (no VFIO cdevs), a device is reached through its group's legacy file. */
static void test_legacy_group_file(void **state) {
        const Fixture *f = *state;
        TopoDevice *d = fake_topology_device(f->topology, "0000:0a:00.0");
        PolicyDecision dec;

        assert_non_null(d);
        assert_false(d->has_cdev);
        d->group->vfio_group_node = true;
        assert_int_equal(policy_decide(f->policies[POLICY_MAIN], f->topology, d, NULL, NULL, &dec),
                         0);
        d->group->vfio_group_node = false;
        assert_int_equal(dec.steps[POLICY_STEP_DRIVER].verdict, POLICY_PASS);
        assert_string_equal(dec.steps[POLICY_STEP_DRIVER].reason,
                            "bound to vfio-pci, reached through its group file /dev/vfio/10 (no "
                            "VFIO cdev: the legacy VFIO API)");
        policy_decision_clear(&dec);
}

static void test_decision_json(void **state) {
        const Fixture *f = *state;
        PolicyDecision dec;
        json_object *o = NULL, *steps, *v;

        assert_int_equal(policy_decide(f->policies[POLICY_MAIN], f->topology,
                                       fake_topology_device(f->topology, "0000:03:00.0"), &carol, NULL, &dec),
                         0);
        assert_int_equal(policy_decision_to_json(&dec, &o), 0);
        assert_true(json_object_object_get_ex(o, "allowed", &v));
        assert_false(json_object_get_boolean(v));
        assert_true(json_object_object_get_ex(o, "failedStep", &v));
        assert_string_equal(json_object_get_string(v), "group");
        assert_false(json_object_object_get_ex(o, "pool", &v));
        assert_true(json_object_object_get_ex(o, "steps", &steps));
        assert_int_equal(json_object_array_length(steps), _POLICY_STEP_MAX);
        v = json_object_array_get_idx(steps, POLICY_STEP_PRINCIPAL);
        assert_string_equal(json_object_get_string(json_object_object_get(v, "step")), "principal");
        assert_string_equal(json_object_get_string(json_object_object_get(v, "verdict")), "fail");
        assert_string_equal(json_object_get_string(json_object_object_get(v, "reason")),
                            "uid 1002 is named by grant 'storage', but no grant gives it 0000:03:00.0");
        json_object_put(o);
        policy_decision_clear(&dec);
}

static void test_decision_print(void **state) {
        const Fixture *f = *state;
        const TopoDevice *d = fake_topology_device(f->topology, "0000:01:00.0");
        _cleanup_free_ char *out = NULL;
        PolicyDecision dec;
        size_t len = 0;
        FILE *m;

        assert_int_equal(policy_decide(f->policies[POLICY_MAIN], f->topology, d, &carol, NULL, &dec), 0);
        m = open_memstream(&out, &len);
        assert_non_null(m);
        assert_int_equal(policy_decision_print(&dec, d, m), 0);
        fclose(m);
        assert_string_equal(out,
                "0000:01:00.0 [144d:a808] class 0x010802, driver vfio-pci, group 1: allowed\n"
                "  pool: nvme-disks\n"
                "  ✓ match      allowed by rule 'nvme' (id 144d:*)\n"
                "  ✓ driver     bound to vfio-pci with cdev vfio0 (511:0)\n"
                "  ✓ group      group 1 is viable: 0000:01:00.0 is its only member\n"
                "  ✓ regions    no direct-mapped reserved regions in group 1\n"
                "  ✓ principal  uid 1002 is granted 0000:01:00.0 by grant 'storage' (gid 500) through pool 'nvme-disks' (class 0x010802)\n"
                "  - exclusive  no session state given\n"
                "  - quota      no usage given\n"
                "  - delegation use through iommud only: no grant that gives uid 1002 0000:01:00.0 "
                "has \"delegation\": true, so OpenDevices would refuse it\n");
        policy_decision_clear(&dec);
}

static void test_grant_settings_per_device(void **state) {
        const Fixture *f = *state;
        const Policy *p = f->policies[POLICY_MAIN];
        const TopoDevice *nvme = fake_topology_device(f->topology, "0000:01:00.0");
        const TopoDevice *nic = fake_topology_device(f->topology, "0000:04:00.0");
        const IovaWindow *w;
        size_t n;

        assert_int_equal(policy_iova_windows(p, &alice, nvme, &w, &n), 0);
        assert_int_equal(n, 1);
        assert_true(w[0].start == 0 && w[0].last == 0xffffffff);
        assert_int_equal(policy_iova_windows(p, &carol, nvme, &w, &n), 0);
        assert_int_equal(n, 0);
        assert_int_equal(policy_iova_windows(p, &carol, nic, &w, &n), -EPERM);
        assert_int_equal(policy_iova_windows(p, &bob, nvme, &w, &n), -EPERM);

        assert_true(policy_allows_open_on_behalf(p, &carol, nvme));
        assert_false(policy_allows_open_on_behalf(p, &carol, nic));
        assert_false(policy_allows_open_on_behalf(p, &alice, nvme));
        assert_false(policy_allows_delegation(p, &alice));
        assert_false(policy_allows_delegation_of(p, &alice, nvme));
        assert_false(policy_allows_delegation_of(p, &bob, nvme));
        assert_true(policy_allows_delegation_of(p, &qemu_vm,
                                                fake_topology_device(f->topology, "0000:11:00.0")));
        assert_false(policy_allows_delegation_of(p, &qemu_vm, nvme));
}

/* The fast matcher must agree with fnmatch(3), which the documentation promises. */
static void test_glob_matches_fnmatch(void **state) {
        static const char *const patterns[] = {
                "*", "?", "", "0000:65:00.0", "0000:65:*", "0000:6?:00.*", "*:00.0", "*00*",
                "0000:*:*.1", "**", "*.scope", "machine-qemu*.scope", "vfio*", "VFIO-PCI",
                "0000:0[0-9]:*", "a\\*b", "*a*b*c*", "?*?",
        };
        static const char *const names[] = {
                "0000:65:00.0", "0000:65:00.1", "0000:6a:00.0", "0000:0A:00.0", "", "vfio-pci",
                "machine-qemu-1-vm.scope", "session-3.scope", "a*b", "aXb", "abc", "xaybzc", "0",
        };

        for (size_t i = 0; i < ELEMENTSOF(patterns); i++)
                for (size_t j = 0; j < ELEMENTSOF(names); j++)
                        for (int fold = 0; fold < 2; fold++) {
                                bool want = fnmatch(patterns[i], names[j], fold ? FNM_CASEFOLD : 0) == 0;
                                bool got = policy_glob_match(patterns[i], policy_glob_kind(patterns[i]),
                                                             names[j], fold);

                                if (want != got)
                                        fail_msg("'%s' vs '%s' (casefold %d): fnmatch %d, ours %d",
                                                 patterns[i], names[j], fold, want, got);
                        }
}

/*
 * The regions step names every direct and relaxable range, says which firmware table
 * describes them on the IOMMU the device sits behind, and a platform device is described
 * without PCI ids.
 */
static void test_region_sentences(void **state) {
        static const FakeDevice devs[] = {
                { "0000:01:00.0", 1, 0x8086, 0x1521, 0x020000, "vfio-pci", true },
                { "9000000.gpu", 2, 0, 0, 0, "vfio-platform", true },
        };
        static const FakeRegion rr[] = {
                { 1, 0x1000, 0x1fff, REGION_DIRECT },
                { 1, 0x4000, 0x4fff, REGION_DIRECT },
                { 1, 0x8000, 0x8fff, REGION_DIRECT_RELAXABLE },
                { 2, 0x10000, 0x1ffff, REGION_DIRECT_RELAXABLE },
        };
        static const char text[] = "{ \"reserved-regions\": { \"direct\": \"allow\" } }";
        IommuInstance smmu = { .name = (char *)"smmu3.0x0000000009050000",
                               .kind = (char *)"arm-smmu-v3" };
        _cleanup_(policy_freep) Policy *p = NULL;
        PolicyDecision dec;
        Topology *t = fake_topology_new(devs, ELEMENTSOF(devs), rr, ELEMENTSOF(rr), NULL, 0);
        TopoDevice *pci = fake_topology_device(t, "0000:01:00.0"),
                   *plat = fake_topology_device(t, "9000000.gpu");

        assert_int_equal(policy_load_string(&p, "t.json", text, strlen(text), NULL, NULL), 0);
        pci->iommu = &smmu;
        plat->iommu = &smmu;
        plat->is_pci = false;
        assert_int_equal(policy_decide(p, t, pci, NULL, NULL, &dec), 0);
        assert_string_equal(dec.steps[POLICY_STEP_REGIONS].reason,
                            "group 1 has the 'direct' reserved regions "
                            "0x0000000000001000-0x0000000000001fff and "
                            "0x0000000000004000-0x0000000000004fff (firmware needs a 1:1 mapping "
                            "the client would own, described by an IORT RMR), allowed by "
                            "reserved-regions.direct; group 1 has a 'direct-relaxable' reserved "
                            "region 0x0000000000008000-0x0000000000008fff (a 1:1 mapping the OS "
                            "may drop, described by an IORT RMR), allowed by "
                            "reserved-regions.direct-relaxable");
        assert_null(strstr(dec.steps[POLICY_STEP_REGIONS].reason, "USB"));
        policy_decision_clear(&dec);

        policy_free(p);
        p = NULL;
        assert_int_equal(policy_load_string(&p, "t.json", "{}", 2, NULL, NULL), 0);
        assert_int_equal(policy_decide(p, t, plat, NULL, NULL, &dec), 0);
        assert_string_equal(dec.steps[POLICY_STEP_MATCH].reason,
                            "no allow rule matches 9000000.gpu (a platform device, driver "
                            "vfio-platform)");
        policy_decision_clear(&dec);
        fake_topology_free(t);
}

/* A reason longer than the decision's stack buffer: a group of 300 host-bound functions. */
static void test_long_reason(void **state) {
        static FakeDevice many[301];
        static char names[301][16];
        _cleanup_(policy_freep) Policy *p = NULL;
        static const char text[] = "{ \"rules\": { \"all\": { \"action\": \"allow\", \"match\": \"*\" } } }";
        PolicyDecision dec;
        Topology *t;

        for (size_t i = 0; i < ELEMENTSOF(many); i++) {
                snprintf(names[i], sizeof(names[i]), "0000:%02zx:%02zx.%zu", 0x40 + i / 256, i / 8 % 32, i % 8);
                many[i] = (FakeDevice){ names[i], 99, 0x8086, 0x1521, 0x020000, i == 0 ? "vfio-pci" : "igb", i == 0 };
        }
        t = fake_topology_new(many, ELEMENTSOF(many), NULL, 0, NULL, 0);
        assert_int_equal(policy_load_string(&p, "t.json", text, strlen(text), NULL, NULL), 0);
        assert_int_equal(policy_decide(p, t, fake_topology_device(t, "0000:40:00.0"), &alice, NULL, &dec), 0);
        assert_false(dec.allowed);
        assert_int_equal(dec.failed_step, POLICY_STEP_GROUP);
        /* Summarised on purpose, the full list beside it. */
        assert_string_equal(dec.steps[POLICY_STEP_GROUP].reason,
                            "group 99 is not viable: 0000:40:00.1 is bound to host driver igb, "
                            "0000:40:00.2 is bound to host driver igb, 0000:40:00.3 is bound to "
                            "host driver igb, 0000:40:00.4 is bound to host driver igb and 296 "
                            "more: 0000:40:00.5, 0000:40:00.6, 0000:40:00.7, …");
        assert_int_equal(dec.steps[POLICY_STEP_GROUP].n_devices, 300);
        {
                json_object *o = NULL, *steps, *devs;

                assert_int_equal(policy_decision_to_json(&dec, &o), 0);
                assert_true(json_object_object_get_ex(o, "steps", &steps));
                assert_true(json_object_object_get_ex(
                        json_object_array_get_idx(steps, POLICY_STEP_GROUP), "devices", &devs));
                assert_int_equal(json_object_array_length(devs), 300);
                assert_string_equal(json_object_get_string(json_object_array_get_idx(devs, 299)),
                                    names[300]);
                json_object_put(o);
        }
        assert_string_equal(dec.steps[POLICY_STEP_MATCH].reason, "allowed by rule 'all' (bdf *)");
        assert_string_equal(dec.steps[POLICY_STEP_PRINCIPAL].reason,
                            "no grant names uid 1000 (gid 1000): it may use no device");
        policy_decision_clear(&dec);
        fake_topology_free(t);
}

/* Invariants of the shipped policy over the bundled simulated hosts, read back through sysfs. */
static void test_bundled_topologies(void **state) {
        static const char *const names[] = { "workstation", "server", "arm" };
        PolicyPaths paths = { .vendor_dir = "", .admin_dir = "",
                              .file = IOMMUD_SOURCE_ROOT "/policy/default.json" };
        _cleanup_(policy_freep) Policy *p = NULL;

        assert_int_equal(policy_load(&p, &paths, NULL, NULL), 0);
        for (size_t k = 0; k < ELEMENTSOF(names); k++) {
                _cleanup_(topology_freep) Topology *t = NULL;
                char sys[PATH_MAX];
                Error err = ERROR_INIT;
                size_t n_allowed = 0;

                snprintf(sys, sizeof(sys), "%s/sim-sysfs-%s/sys", IOMMUD_SIM_SYSFS, names[k]);
                assert_int_equal(topology_load_path(&t, sys, &err), 0);
                assert_true(t->n_devices > 0);

                for (size_t i = 0; i < t->n_devices; i++) {
                        const TopoDevice *d = t->devices[i];
                        bool has_direct = false, vfio = d->driver && strneq(d->driver, "vfio", 4) && d->has_cdev;
                        PolicyDecision eligible, forroot;

                        for (size_t j = 0; d->group && j < d->group->n_regions; j++)
                                has_direct |= d->group->regions[j].type == REGION_DIRECT;
                        assert_int_equal(policy_decide(p, t, d, NULL, NULL, &eligible), 0);
                        assert_int_equal(policy_decide(p, t, d, &root, NULL, &forroot), 0);
                        for (size_t j = 0; j < _POLICY_STEP_MAX; j++) {
                                assert_non_null(eligible.steps[j].reason);
                                assert_true(strlen(forroot.steps[j].reason) > 0);
                        }
                        assert_int_equal(eligible.steps[POLICY_STEP_MATCH].verdict, POLICY_PASS);
                        assert_int_equal(eligible.steps[POLICY_STEP_DRIVER].verdict,
                                         vfio ? POLICY_PASS : POLICY_FAIL);
                        if (has_direct)
                                assert_int_equal(eligible.steps[POLICY_STEP_REGIONS].verdict, POLICY_FAIL);
                        /* The shipped policy grants root whatever is eligible. */
                        assert_int_equal(forroot.steps[POLICY_STEP_PRINCIPAL].verdict, POLICY_PASS);
                        assert_int_equal(forroot.allowed, eligible.allowed);
                        n_allowed += eligible.allowed;
                        policy_decision_clear(&eligible);
                        policy_decision_clear(&forroot);
                }
                printf("# %s: %zu of %zu devices eligible under the shipped policy\n", names[k],
                       n_allowed, t->n_devices);
        }
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_decisions),
                cmocka_unit_test(test_legacy_group_file),
                cmocka_unit_test(test_decision_json),
                cmocka_unit_test(test_decision_print),
                cmocka_unit_test(test_grant_settings_per_device),
                cmocka_unit_test(test_glob_matches_fnmatch),
                cmocka_unit_test(test_long_reason),
                cmocka_unit_test(test_region_sentences),
                cmocka_unit_test(test_bundled_topologies),
        };

        return cmocka_run_group_tests_name("policy-decide", tests, setup, teardown);
}
