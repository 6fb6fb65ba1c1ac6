/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "macros.h"
#include "topology-json.h"
#include "topology.h"
#include "tree-util.h"

/* ---- reserved_regions_parse ---- */

typedef struct RegionCase {
        const char *text;
        int ret;
        size_t n;
        const char *message; /* expected error message, or NULL */
} RegionCase;

static const RegionCase region_cases[] = {
        { "", 0, 0, NULL },
        { "0x00000000fee00000 0x00000000feefffff msi\n", 0, 1, NULL },
        { "0x00000000fee00000 0x00000000feefffff msi", 0, 1, NULL },
        { "0x000000fd00000000 0x000000ffffffffff reserved\n"
          "0x00000000fee00000 0x00000000feefffff msi\n",
          0, 2, NULL },
        { "0x00000000fee00000 0x00000000feefffff\n", -EINVAL, 0,
          "line 1: expected 3 fields (start, end, type), got 2" },
        { "0x00000000fee00000 0x00000000feefffff msi extra\n", -EINVAL, 0,
          "line 1: expected 3 fields (start, end, type), got 4" },
        { "0x00000000fee00000 0x00000000feefffff msi\n0xfee0000g 0xfeefffff msi\n", -EINVAL, 0,
          "line 2: start '0xfee0000g' is not a hex address" },
        { "0x1 fee msi\n", -EINVAL, 0, "line 1: end 'fee' is not a hex address" },
        { "0x10000000000000000 0x1 msi\n", -EINVAL, 0,
          "line 1: start '0x10000000000000000' is not a hex address" },
        { "0x0000000000002000 0x0000000000001fff direct\n", -EINVAL, 0,
          "line 1: start 0x0000000000002000 is above end 0x0000000000001fff" },
        { "\n", -EINVAL, 0, "line 1: expected 3 fields (start, end, type), got 0" },
};

static void test_reserved_regions_parse_table(void **state) {
        for (size_t i = 0; i < ELEMENTSOF(region_cases); i++) {
                const RegionCase *c = &region_cases[i];
                ReservedRegion *r = NULL;
                Error err = ERROR_INIT;
                size_t n = 99;

                /* TAP comment, so a failure below can be matched to its case. */
                printf("# case %zu\n", i);
                assert_int_equal(reserved_regions_parse(c->text, strlen(c->text), &r, &n, &err),
                                 c->ret);
                if (c->ret == 0) {
                        assert_int_equal(n, c->n);
                        reserved_regions_free(r, n);
                } else {
                        assert_int_equal(n, 99); /* untouched on failure */
                        assert_string_equal(err.message, c->message);
                }
        }
}

static void test_reserved_regions_sorted_and_typed(void **state) {
        static const char text[] = "0x00000000fee00000 0x00000000feefffff msi\n"
                                   "0x000000003c000000 0x000000003fffffff direct-relaxable\n"
                                   "0x0000000000000000 0x0000000000000fff weird-new-type\n"
                                   "0x0000000000100000 0x00000000001fffff direct\n"
                                   "0x0000000000200000 0x00000000002fffff reserved\n";
        ReservedRegion *r;
        size_t n;

        assert_int_equal(reserved_regions_parse(text, sizeof(text) - 1, &r, &n, NULL), 0);
        assert_int_equal(n, 5);
        assert_int_equal(r[0].start, 0);
        assert_int_equal(r[0].type, REGION_UNKNOWN);
        assert_string_equal(r[0].type_name, "weird-new-type");
        assert_int_equal(r[1].type, REGION_DIRECT);
        assert_int_equal(r[2].type, REGION_RESERVED);
        assert_int_equal(r[3].type, REGION_DIRECT_RELAXABLE);
        assert_int_equal(r[3].last, 0x3fffffffULL);
        assert_int_equal(r[4].type, REGION_MSI);
        assert_int_equal(r[4].start, 0xfee00000ULL);
        reserved_regions_free(r, n);
}

static void test_region_type_strings(void **state) {
        for (RegionType t = 0; t < REGION_UNKNOWN; t++)
                assert_int_equal(region_type_from_string(region_type_to_string(t)), t);
        assert_int_equal(region_type_from_string("unknown"), REGION_UNKNOWN);
        assert_int_equal(region_type_from_string("MSI"), REGION_UNKNOWN);
        assert_int_equal(region_type_from_string(NULL), REGION_UNKNOWN);
        assert_null(region_type_to_string(_REGION_TYPE_MAX));
        /* The kernel's spelling, the one every interface uses. */
        assert_string_equal(region_type_to_string(REGION_DIRECT_RELAXABLE), "direct-relaxable");
}

/* ---- a small hand-written tree ---- */

static char *tmp_root(void) {
        return tree_tmpdir("topology");
}

#define put_file tree_put_file
#define put_dir tree_put_dir
#define put_link tree_put_link
#define rm_rf tree_rm_rf

static void put_attr(const char *root, const char *bdf, const char *attr, const char *content) {
        char rel[256];

        snprintf(rel, sizeof(rel), "devices/pci0000:00/%s/%s", bdf, attr);
        put_file(root, rel, content);
}

static void put_pci_device(const char *root, const char *bdf, const char *vendor,
                           const char *class, const char *driver) {
        put_attr(root, bdf, "vendor", vendor);
        put_attr(root, bdf, "device", "0x1234\n");
        put_attr(root, bdf, "subsystem_vendor", "0x8086\n");
        put_attr(root, bdf, "subsystem_device", "0x0000\n");
        put_attr(root, bdf, "class", class);
        put_attr(root, bdf, "numa_node", "-1\n");
        if (driver) {
                char rel[256], target[256];

                snprintf(rel, sizeof(rel), "bus/pci/drivers/%s", driver);
                put_dir(root, rel);
                snprintf(rel, sizeof(rel), "devices/pci0000:00/%s/driver", bdf);
                snprintf(target, sizeof(target), "../../../bus/pci/drivers/%s", driver);
                put_link(root, rel, target);
        }
}

static void test_load_hand_written_tree(void **state) {
        _cleanup_free_ char *root = tmp_root();
        _cleanup_(topology_freep) Topology *t = NULL;
        Error err = ERROR_INIT;

        put_pci_device(root, "0000:00:02.0", "0x8086\n", "0x030000\n", "i915");
        put_pci_device(root, "0000:00:14.0", "0x8086\n", "0x0c0330\n", "vfio-pci");
        put_file(root, "devices/pci0000:00/0000:00:14.0/vfio-dev/vfio0/dev", "511:0\n");
        put_link(root, "devices/pci0000:00/0000:00:14.0/iommu", "../../virtual/iommu/dmar0");
        put_dir(root, "devices/virtual/iommu/dmar0/intel-iommu");
        put_link(root, "devices/virtual/iommu/dmar0/devices/0000:00:02.0",
                 "../../../../pci0000:00/0000:00:02.0");
        put_link(root, "class/iommu/dmar0", "../../devices/virtual/iommu/dmar0");
        put_file(root, "kernel/iommu_groups/0/type", "DMA\n");
        put_file(root, "kernel/iommu_groups/0/reserved_regions",
                 "0x00000000fee00000 0x00000000feefffff msi\n");
        put_link(root, "kernel/iommu_groups/0/devices/0000:00:02.0",
                 "../../../../devices/pci0000:00/0000:00:02.0");
        put_file(root, "kernel/iommu_groups/10/type", "DMA-FQ\n");
        put_file(root, "kernel/iommu_groups/10/reserved_regions", "");
        put_link(root, "kernel/iommu_groups/10/devices/0000:00:14.0",
                 "../../../../devices/pci0000:00/0000:00:14.0");
        /* 6.1 registers a vfio-dev entry without a node: no cdev, and no problem either. */
        put_dir(root, "devices/pci0000:00/0000:00:02.0/vfio-dev/vfio9");
        /* Group 10's legacy VFIO group file (/dev/vfio/10) too. */
        put_file(root, "devices/virtual/vfio/10/dev", "242:0\n");
        put_link(root, "class/vfio/10", "../../devices/virtual/vfio/10");

        assert_int_equal(topology_load_path(&t, root, &err), 0);
        for (size_t i = 0; i < t->n_problems; i++)
                printf("# problem: %s:%u: %s\n", t->problems[i].path, t->problems[i].line,
                              t->problems[i].message);
        assert_int_equal(t->n_problems, 0);
        assert_int_equal(t->n_groups, 2);
        assert_int_equal(t->n_devices, 2);
        assert_int_equal(t->n_iommus, 1);

        TopoGroup *g0 = topology_find_group(t, 0), *g10 = topology_find_group(t, 10);
        assert_non_null(g0);
        assert_non_null(g10);
        assert_null(topology_find_group(t, 5));
        assert_string_equal(g0->type, "DMA");
        assert_int_equal(g0->n_regions, 1);
        assert_int_equal(g0->regions[0].type, REGION_MSI);
        assert_false(g0->broken);
        assert_string_equal(g10->type, "DMA-FQ");
        assert_int_equal(g10->n_regions, 0);
        assert_false(g0->vfio_group_node);
        assert_true(g10->vfio_group_node);

        TopoDevice *igpu = topology_find_device(t, "0000:00:02.0");
        assert_non_null(igpu);
        assert_true(igpu->is_pci);
        assert_int_equal(igpu->vendor, 0x8086);
        assert_int_equal(igpu->device, 0x1234);
        assert_int_equal(igpu->class, 0x030000);
        assert_string_equal(igpu->driver, "i915");
        assert_int_equal(igpu->numa_node, -1);
        assert_false(igpu->has_cdev);
        assert_ptr_equal(igpu->group, g0);
        /* No iommu link: found through class/iommu/dmar0/devices. */
        assert_non_null(igpu->iommu);
        assert_string_equal(igpu->iommu->name, "dmar0");
        assert_string_equal(igpu->iommu->kind, "intel");

        TopoDevice *xhci = topology_find_device(t, "0000:00:14.0");
        assert_non_null(xhci);
        assert_true(xhci->has_cdev);
        assert_int_equal(xhci->cdev_major, 511);
        assert_int_equal(xhci->cdev_minor, 0);
        assert_string_equal(xhci->cdev_name, "vfio0");
        assert_ptr_equal(topology_find_device_by_cdev(t, 511, 0), xhci);
        assert_null(topology_find_device_by_cdev(t, 511, 1));
        assert_ptr_equal(xhci->iommu, igpu->iommu);
        assert_null(topology_find_device(t, "0000:00:03.0"));

        rm_rf(root);
}

static void test_load_without_groups_fails(void **state) {
        _cleanup_free_ char *root = tmp_root();
        Topology *t = NULL;
        Error err = ERROR_INIT;

        assert_int_equal(topology_load_path(&t, root, &err), -ENOENT);
        assert_null(t);
        assert_non_null(strstr(err.message, "kernel/iommu_groups"));
        rm_rf(root);
}

/* ---- damaged trees ---- */

typedef enum MutationOp {
        OP_NONE,
        OP_UNLINK,
        OP_PUT_FILE,
        OP_PUT_LINK,
        OP_PUT_DIR,
        OP_REPLACE_WITH_DIR,
} MutationOp;

typedef struct Mutation {
        MutationOp op;
        const char *path; /* relative to ROOT/sys */
        const char *arg;  /* content or link target */
} Mutation;

typedef struct ExpectedProblem {
        const char *path;
        unsigned line;
        const char *message;
} ExpectedProblem;

typedef struct BadCase {
        const char *name;
        Mutation mutations[2];
        ExpectedProblem problems[2];
        int broken_group;   /* -1: no group broken */
        size_t n_groups;    /* the workstation has 7 */
} BadCase;

#define IGPU "devices/pci0000:00/0000:00:02.0"
#define NVME "devices/pci0000:01/0000:01:00.0"
#define G1_RR "kernel/iommu_groups/1/reserved_regions"
#define RMRR_LINE "0x000000007b800000 0x000000007fffffff direct-relaxable\n"
#define MSI_LINE "0x00000000fee00000 0x00000000feefffff msi\n"
/* The integrated GPU's uevent, as the kernel prints it, in parts to garble one at a time. */
#define UE_DRIVER "DRIVER=i915\n"
#define UE_CLASS "PCI_CLASS=30000\n"
#define UE_ID "PCI_ID=8086:A780\n"
#define UE_SUBSYS "PCI_SUBSYS_ID=1043:8882\n"
#define UE_SLOT "PCI_SLOT_NAME=0000:00:02.0\n"
#define UE_MODALIAS "MODALIAS=pci:v00008086d0000A780sv00001043sd00008882bc03sc00i00\n"
#define FALLBACK ", reading the attribute files instead"

static const BadCase bad_cases[] = {
        { "missing reserved_regions", { { OP_UNLINK, G1_RR } },
          { { G1_RR, 0, "missing" } }, 1, 7 },
        { "truncated line", { { OP_PUT_FILE, G1_RR, RMRR_LINE "0x00000000fee00000 0x00000000fe" } },
          { { G1_RR, 2, "expected 3 fields (start, end, type), got 2" },
            { G1_RR, 2, "truncated line: no newline at its end" } }, 1, 7 },
        { "garbled hex", { { OP_PUT_FILE, G1_RR, "0x000000007b8000zz 0x000000007fffffff direct-relaxable\n" MSI_LINE } },
          { { G1_RR, 1, "start '0x000000007b8000zz' is not a hex address" } }, 1, 7 },
        { "too many fields", { { OP_PUT_FILE, G1_RR, RMRR_LINE "0x00000000fee00000 0x00000000feefffff msi 1\n" } },
          { { G1_RR, 2, "expected 3 fields (start, end, type), got 4" } }, 1, 7 },
        { "too few fields", { { OP_PUT_FILE, G1_RR, RMRR_LINE "0x00000000fee00000 msi\n" } },
          { { G1_RR, 2, "expected 3 fields (start, end, type), got 2" } }, 1, 7 },
        { "one field", { { OP_PUT_FILE, G1_RR, "direct\n" MSI_LINE } },
          { { G1_RR, 1, "expected 3 fields (start, end, type), got 1" } }, 1, 7 },
        { "start above end", { { OP_PUT_FILE, G1_RR, "0x000000007fffffff 0x000000007b800000 direct-relaxable\n" MSI_LINE } },
          { { G1_RR, 1, "start 0x000000007fffffff is above end 0x000000007b800000" } }, 1, 7 },
        { "unknown region type is kept", { { OP_PUT_FILE, G1_RR, RMRR_LINE MSI_LINE "0x00000000c0000000 0x00000000c00fffff sw-shadow\n" } },
          { { G1_RR, 0, "unknown region type 'sw-shadow' at 0x00000000c0000000, treated as reserved" } }, -1, 7 },
        { "missing type", { { OP_UNLINK, "kernel/iommu_groups/1/type" } },
          { { "kernel/iommu_groups/1/type", 0, "missing" } }, 1, 7 },
        { "two-line type", { { OP_PUT_FILE, "kernel/iommu_groups/1/type", "DMA\nDMA\n" } },
          { { "kernel/iommu_groups/1/type", 1, "expected one word and a newline, got 'DMA'" } }, 1, 7 },
        { "missing vendor", { { OP_UNLINK, IGPU "/vendor" }, { OP_UNLINK, IGPU "/uevent" } },
          { { IGPU "/vendor", 0, "missing" } }, 1, 7 },
        { "missing class", { { OP_UNLINK, IGPU "/class" }, { OP_UNLINK, IGPU "/uevent" } },
          { { IGPU "/class", 0, "missing" } }, 1, 7 },
        { "garbled vendor", { { OP_PUT_FILE, IGPU "/vendor", "0x80g6\n" }, { OP_UNLINK, IGPU "/uevent" } },
          { { IGPU "/vendor", 1, "expected a hex value up to 0xffff, got '0x80g6'" } }, 1, 7 },
        { "vendor out of range", { { OP_PUT_FILE, IGPU "/vendor", "0x18086\n" }, { OP_UNLINK, IGPU "/uevent" } },
          { { IGPU "/vendor", 1, "expected a hex value up to 0xffff, got '0x18086'" } }, 1, 7 },
        { "truncated class", { { OP_PUT_FILE, IGPU "/class", "0x0300" }, { OP_UNLINK, IGPU "/uevent" } },
          { { IGPU "/class", 1, "expected a hex value up to 0xffffff, got '0x0300' (truncated line)" } }, 1, 7 },
        { "garbled numa_node", { { OP_PUT_FILE, IGPU "/numa_node", "zero\n" } },
          { { IGPU "/numa_node", 1, "expected a NUMA node number or -1, got 'zero'" } }, 1, 7 },
        { "dangling driver symlink", { { OP_PUT_LINK, IGPU "/driver", "../../../bus/pci/drivers/gone" }, { OP_UNLINK, IGPU "/uevent" } },
          { { IGPU "/driver", 0, "symlink target '../../../bus/pci/drivers/gone' does not exist" } }, 1, 7 },
        { "absolute driver symlink", { { OP_PUT_LINK, IGPU "/driver", "/sys/bus/pci/drivers/i915" }, { OP_UNLINK, IGPU "/uevent" } },
          { { IGPU "/driver", 0, "symlink target '/sys/bus/pci/drivers/i915' leads outside the sysfs root, not followed" } }, 1, 7 },
        { "non-numeric group directory", { { OP_PUT_DIR, "kernel/iommu_groups/foo" } },
          { { "kernel/iommu_groups/foo", 0, "not a decimal group number, ignoring" } }, -1, 7 },
        { "group number with a leading zero", { { OP_PUT_DIR, "kernel/iommu_groups/012" } },
          { { "kernel/iommu_groups/012", 0, "not a decimal group number, ignoring" } }, -1, 7 },
        { "group without devices dir", { { OP_PUT_FILE, "kernel/iommu_groups/99/type", "DMA\n" },
                                         { OP_PUT_FILE, "kernel/iommu_groups/99/reserved_regions", MSI_LINE } },
          { { "kernel/iommu_groups/99/devices", 0, "missing" } }, 99, 8 },
        { "unreadable vfio dev file", { { OP_REPLACE_WITH_DIR, NVME "/vfio-dev/vfio0/dev" } },
          { { NVME "/vfio-dev/vfio0/dev", 0, "cannot be read: Is a directory" } }, 12, 7 },
        { "garbled vfio dev file", { { OP_PUT_FILE, NVME "/vfio-dev/vfio0/dev", "511-0\n" } },
          { { NVME "/vfio-dev/vfio0/dev", 1, "expected MAJOR:MINOR, got '511-0'" } }, 12, 7 },
        { "absolute symlink escaping the root",
          { { OP_PUT_LINK, "kernel/iommu_groups/12/devices/0000:01:00.0", "/sys/" NVME } },
          { { "kernel/iommu_groups/12/devices/0000:01:00.0", 0,
              "symlink target '/sys/" NVME "' leads outside the sysfs root, not followed" } }, 12, 7 },
        { "relative symlink escaping the root",
          { { OP_PUT_LINK, "kernel/iommu_groups/12/devices/0000:01:00.0", "../../../../../" NVME } },
          { { "kernel/iommu_groups/12/devices/0000:01:00.0", 0,
              "symlink target '../../../../../" NVME "' leads outside the sysfs root, not followed" } }, 12, 7 },
        { "member that is not a symlink", { { OP_REPLACE_WITH_DIR, "kernel/iommu_groups/12/devices/0000:01:00.0" } },
          { { "kernel/iommu_groups/12/devices/0000:01:00.0", 0, "not a symlink" } }, 12, 7 },
        { "dangling member symlink", { { OP_PUT_LINK, "kernel/iommu_groups/12/devices/0000:01:00.0", "../../../../devices/none" } },
          { { "kernel/iommu_groups/12/devices/0000:01:00.0", 0,
              "symlink target '../../../../devices/none' does not exist" } }, 12, 7 },
        { "absolute class/iommu link", { { OP_PUT_LINK, "class/iommu/dmar0", "/sys/devices/virtual/iommu/dmar0" } },
          { { "class/iommu/dmar0", 0,
              "symlink target '/sys/devices/virtual/iommu/dmar0' leads outside the sysfs root, not followed" } }, -1, 7 },
        /* The uevent answers for five attribute files and the driver link; when it cannot,
         * they are read, and only what they cannot answer breaks the group. */
        { "garbled uevent id", { { OP_PUT_FILE, IGPU "/uevent", UE_DRIVER UE_CLASS "PCI_ID=80G6:A780\n" UE_SUBSYS UE_SLOT UE_MODALIAS } },
          { { IGPU "/uevent", 3, "expected PCI_ID=VVVV:DDDD, got '80G6:A780'" FALLBACK } }, -1, 7 },
        { "truncated uevent", { { OP_PUT_FILE, IGPU "/uevent", UE_DRIVER UE_CLASS "PCI_ID=8086:A7" } },
          { { IGPU "/uevent", 3, "truncated line: no newline at its end" FALLBACK } }, -1, 7 },
        { "uevent line without a value", { { OP_PUT_FILE, IGPU "/uevent", UE_DRIVER "PCI_CLASS\n" UE_ID UE_SUBSYS UE_SLOT } },
          { { IGPU "/uevent", 2, "expected KEY=VALUE, got 'PCI_CLASS'" FALLBACK } }, -1, 7 },
        { "garbled uevent class", { { OP_PUT_FILE, IGPU "/uevent", UE_DRIVER "PCI_CLASS=3\n" UE_ID UE_SUBSYS UE_SLOT } },
          { { IGPU "/uevent", 2, "expected PCI_CLASS=CCCCCC, got '3'" FALLBACK } }, -1, 7 },
        { "uevent of another device", { { OP_PUT_FILE, IGPU "/uevent", UE_DRIVER UE_CLASS UE_ID UE_SUBSYS "PCI_SLOT_NAME=0000:00:03.0\n" } },
          { { IGPU "/uevent", 5, "PCI_SLOT_NAME '0000:00:03.0' is not this device" FALLBACK } }, -1, 7 },
        { "uevent without the subsystem id", { { OP_PUT_FILE, IGPU "/uevent", UE_DRIVER UE_CLASS UE_ID UE_SLOT UE_MODALIAS } },
          { { NULL } }, -1, 7 },
        { "unreadable uevent", { { OP_REPLACE_WITH_DIR, IGPU "/uevent" } },
          { { IGPU "/uevent", 0, "cannot be read: Is a directory" } }, -1, 7 },
        { "garbled uevent and vendor", { { OP_PUT_FILE, IGPU "/uevent", UE_DRIVER UE_CLASS "PCI_ID=80G6:A780\n" UE_SUBSYS UE_SLOT },
                                         { OP_PUT_FILE, IGPU "/vendor", "0x80g6\n" } },
          { { IGPU "/uevent", 3, "expected PCI_ID=VVVV:DDDD, got '80G6:A780'" FALLBACK },
            { IGPU "/vendor", 1, "expected a hex value up to 0xffff, got '0x80g6'" } }, 1, 7 },
};

static json_object *json_find_by(json_object *array, const char *key, json_object *value) {
        for (size_t i = 0; i < json_object_array_length(array); i++) {
                json_object *e = json_object_array_get_idx(array, i), *v;
                if (json_object_object_get_ex(e, key, &v) && json_object_equal(v, value))
                        return e;
        }
        return NULL;
}

static void apply_mutation(const char *sys, const Mutation *m) {
        char path[PATH_MAX];

        switch (m->op) {
        case OP_NONE:
                break;
        case OP_UNLINK:
                tree_unlink(sys, m->path);
                break;
        case OP_PUT_FILE:
                tree_put_file(sys, m->path, m->arg);
                break;
        case OP_PUT_LINK:
                tree_put_link(sys, m->path, m->arg);
                break;
        case OP_PUT_DIR:
                tree_put_dir(sys, m->path);
                break;
        case OP_REPLACE_WITH_DIR:
                tree_unlink(sys, m->path);
                tree_path(path, sizeof(path), sys, m->path);
                assert_int_equal(mkdir(path, 0755), 0);
                break;
        }
}

/* The sysfs tree of a bundled simulated host, as the build wrote it: read only. */
static void sim_host_sys(char *buf, size_t size, const char *name) {
        assert_true((size_t)snprintf(buf, size, "%s/sim-sysfs-%s/sys", IOMMUD_SIM_SYSFS, name) <
                    size);
}

/* A copy of that tree in a fresh directory, to damage. */
static char *sim_host_copy(const char *name) {
        char *root = tree_tmpdir("topology"), src[PATH_MAX];

        assert_true((size_t)snprintf(src, sizeof(src), "%s/sim-sysfs-%s", IOMMUD_SIM_SYSFS,
                                     name) < sizeof(src));
        tree_copy(src, root);
        return root;
}

static void test_damaged_trees(void **state) {
        _cleanup_(topology_freep) Topology *clean = NULL;
        json_object *clean_json = NULL, *clean_groups, *clean_devices;
        char clean_sys[PATH_MAX];

        sim_host_sys(clean_sys, sizeof(clean_sys), "workstation");
        assert_int_equal(topology_load_path(&clean, clean_sys, NULL), 0);
        assert_int_equal(clean->n_problems, 0);
        assert_int_equal(clean->n_groups, 7);
        assert_int_equal(topology_to_json(clean, &clean_json), 0);
        assert_true(json_object_object_get_ex(clean_json, "groups", &clean_groups));
        assert_true(json_object_object_get_ex(clean_json, "devices", &clean_devices));

        for (size_t i = 0; i < ELEMENTSOF(bad_cases); i++) {
                const BadCase *c = &bad_cases[i];
                _cleanup_free_ char *root = sim_host_copy("workstation");
                _cleanup_(topology_freep) Topology *t = NULL;
                char sys[PATH_MAX];
                Error err = ERROR_INIT;
                size_t n_expected = 0;

                printf("# case: %s\n", c->name);
                tree_path(sys, sizeof(sys), root, "sys");
                for (size_t k = 0; k < ELEMENTSOF(c->mutations); k++)
                        apply_mutation(sys, &c->mutations[k]);

                assert_int_equal(topology_load_path(&t, sys, &err), 0);
                for (size_t k = 0; k < t->n_problems; k++)
                        printf("#   problem: %s:%u: %s\n", t->problems[k].path,
                               t->problems[k].line, t->problems[k].message);
                for (size_t k = 0; k < ELEMENTSOF(c->problems); k++)
                        if (c->problems[k].path)
                                n_expected++;
                assert_int_equal(t->n_problems, n_expected);
                for (size_t k = 0; k < n_expected; k++) {
                        assert_string_equal(t->problems[k].path, c->problems[k].path);
                        assert_int_equal(t->problems[k].line, c->problems[k].line);
                        assert_string_equal(t->problems[k].message, c->problems[k].message);
                }

                /* The damaged group is kept and marked; every other group reads as before. */
                assert_int_equal(t->n_groups, c->n_groups);
                assert_int_equal(t->n_devices, 11);
                if (c->broken_group >= 0) {
                        TopoGroup *g = topology_find_group(t, (unsigned)c->broken_group);
                        assert_non_null(g);
                        assert_true(g->broken);
                }
                for (size_t k = 0; k < t->n_groups; k++) {
                        TopoGroup *g = t->groups[k];
                        json_object *id, *want, *got, *gj;

                        if ((int)g->id == c->broken_group)
                                continue;
                        assert_false(g->broken);
                        if (streq(c->name, "unknown region type is kept") && g->id == 1)
                                continue;
                        id = json_object_new_int64(g->id);
                        want = json_find_by(clean_groups, "id", id);
                        json_object_put(id);
                        assert_non_null(want);
                        assert_int_equal(topology_to_json(t, &gj), 0);
                        json_object *groups;
                        assert_true(json_object_object_get_ex(gj, "groups", &groups));
                        got = json_object_array_get_idx(groups, k);
                        assert_true(json_object_equal(want, got));
                        for (size_t m = 0; m < g->n_devices; m++) {
                                json_object *dj, *name = json_object_new_string(g->devices[m]->name);
                                json_object *wd = json_find_by(clean_devices, "name", name);
                                json_object_put(name);
                                assert_int_equal(topo_device_to_json(g->devices[m], &dj), 0);
                                /* The IOMMU comes from class/iommu, which one case breaks. */
                                if (!streq(c->name, "absolute class/iommu link"))
                                        assert_true(json_object_equal(wd, dj));
                                json_object_put(dj);
                        }
                        json_object_put(gj);
                }
                tree_rm_rf(root);
        }

        json_object_put(clean_json);
}

static Topology *load_damaged(const Mutation m[static 2], char **ret_root) {
        char *root = sim_host_copy("workstation"), sys[PATH_MAX];
        Topology *t = NULL;

        tree_path(sys, sizeof(sys), root, "sys");
        apply_mutation(sys, &m[0]);
        apply_mutation(sys, &m[1]);
        assert_int_equal(topology_load_path(&t, sys, NULL), 0);
        *ret_root = root;
        return t;
}

static void test_damaged_groups_keep_what_was_read(void **state) {
        Topology *t;
        char *root;
        TopoDevice *d;
        TopoGroup *g;

        /* A bad line drops only that line. */
        t = load_damaged(bad_cases[2].mutations, &root);
        g = topology_find_group(t, 1);
        assert_int_equal(g->n_regions, 1);
        assert_int_equal(g->regions[0].type, REGION_MSI);
        assert_string_equal(g->type, "DMA-FQ");
        assert_int_equal(g->n_devices, 1);
        topology_free(t), tree_rm_rf(root), free(root);

        /* An unknown type is kept and does not break the group. */
        t = load_damaged(bad_cases[7].mutations, &root);
        g = topology_find_group(t, 1);
        assert_false(g->broken);
        assert_int_equal(g->n_regions, 3);
        assert_int_equal(g->regions[1].type, REGION_UNKNOWN);
        assert_string_equal(g->regions[1].type_name, "sw-shadow");
        topology_free(t), tree_rm_rf(root), free(root);

        /* A missing vendor leaves the other IDs and the driver. */
        t = load_damaged(bad_cases[10].mutations, &root);
        d = topology_find_device(t, "0000:00:02.0");
        assert_int_equal(d->vendor, 0);
        assert_int_equal(d->device, 0xa780);
        assert_int_equal(d->class, 0x030000);
        assert_string_equal(d->driver, "i915");
        topology_free(t), tree_rm_rf(root), free(root);

        /* A dangling driver link is not reported as a driver. */
        t = load_damaged(bad_cases[16].mutations, &root);
        d = topology_find_device(t, "0000:00:02.0");
        assert_null(d->driver);
        assert_int_equal(d->vendor, 0x8086);
        topology_free(t), tree_rm_rf(root), free(root);

        /* An escaping member link keeps the member by name, with nothing read through it. */
        t = load_damaged(bad_cases[23].mutations, &root);
        d = topology_find_device(t, "0000:01:00.0");
        assert_non_null(d);
        assert_true(d->is_pci);
        assert_int_equal(d->vendor, 0);
        assert_null(d->driver);
        assert_false(d->has_cdev);
        assert_null(topology_find_device_by_cdev(t, 511, 0));
        assert_int_equal(d->group->id, 12);
        /* ...which the class/iommu listing still places behind dmar0. */
        assert_string_equal(d->iommu->name, "dmar0");
        topology_free(t), tree_rm_rf(root), free(root);

        /* A garbled uevent is read from the attribute files and the driver link instead. */
        t = load_damaged(bad_cases[ELEMENTSOF(bad_cases) - 2].mutations, &root);
        d = topology_find_device(t, "0000:00:02.0");
        assert_int_equal(d->vendor, 0x8086);
        assert_int_equal(d->device, 0xa780);
        assert_int_equal(d->subsystem_vendor, 0x1043);
        assert_int_equal(d->subsystem_device, 0x8882);
        assert_int_equal(d->class, 0x030000);
        assert_string_equal(d->driver, "i915");
        topology_free(t), tree_rm_rf(root), free(root);

        /* A complete uevent is the whole answer: without DRIVER= the device is unbound,
         * whatever a stale driver link says, and the attribute files are not read. */
        {
                static const Mutation unbound[2] = {
                        { OP_PUT_FILE, IGPU "/uevent", UE_CLASS UE_ID UE_SUBSYS UE_SLOT },
                        { OP_UNLINK, IGPU "/vendor" },
                };

                t = load_damaged(unbound, &root);
                assert_int_equal(t->n_problems, 0);
                d = topology_find_device(t, "0000:00:02.0");
                assert_null(d->driver);
                assert_int_equal(d->vendor, 0x8086);
                assert_false(d->group->broken);
                topology_free(t), tree_rm_rf(root), free(root);
        }

        /* A garbled vfio dev file means no cdev. */
        t = load_damaged(bad_cases[22].mutations, &root);
        d = topology_find_device(t, "0000:01:00.0");
        assert_false(d->has_cdev);
        assert_null(d->cdev_name);
        assert_string_equal(d->driver, "vfio-pci");
        assert_ptr_equal(topology_find_device_by_cdev(t, 511, 1), topology_find_device(t, "0000:03:00.0"));
        topology_free(t), tree_rm_rf(root), free(root);
}

/*
 * Every member link under kernel/iommu_groups names a device the lookups find in
 * that group, and every vfio cdev in dev/char the device whose vfio-dev holds it.
 */
static void check_lookups_against_tree(const Topology *t, const char *sys) {
        char path[PATH_MAX], target[PATH_MAX];
        size_t n_members = 0, n_cdevs = 0, n_with_cdev = 0;
        struct dirent *de, *me;
        DIR *groups, *members, *chars;

        tree_path(path, sizeof(path), sys, "kernel/iommu_groups");
        assert_non_null(groups = opendir(path));
        while ((de = readdir(groups))) {
                if (de->d_name[0] == '.')
                        continue;
                assert_true((size_t)snprintf(path, sizeof(path), "%s/kernel/iommu_groups/%s/devices",
                                             sys, de->d_name) < sizeof(path));
                assert_non_null(members = opendir(path));
                while ((me = readdir(members))) {
                        const TopoDevice *d = topology_find_device(t, me->d_name);

                        if (me->d_name[0] == '.')
                                continue;
                        assert_non_null(d);
                        assert_string_equal(d->name, me->d_name);
                        assert_ptr_equal(topology_find_group(t, (unsigned)atoi(de->d_name)),
                                         d->group);
                        n_members++;
                }
                closedir(members);
        }
        closedir(groups);
        assert_int_equal(n_members, t->n_devices);

        /* dev/char/MAJ:MIN -> ../../devices/.../BDF/vfio-dev/vfioN */
        tree_path(path, sizeof(path), sys, "dev/char");
        assert_non_null(chars = opendir(path));
        while ((de = readdir(chars))) {
                unsigned major, minor;
                const TopoDevice *d;
                char *vfio_dev, *name;
                ssize_t n;

                if (de->d_name[0] == '.')
                        continue;
                assert_int_equal(sscanf(de->d_name, "%u:%u", &major, &minor), 2);
                assert_true((size_t)snprintf(path, sizeof(path), "%s/dev/char/%s", sys,
                                             de->d_name) < sizeof(path));
                n = readlink(path, target, sizeof(target) - 1);
                assert_true(n > 0);
                target[n] = '\0';
                assert_non_null(vfio_dev = strstr(target, "/vfio-dev/"));
                *vfio_dev = '\0';
                name = strrchr(target, '/') + 1;
                d = topology_find_device(t, name);
                assert_non_null(d);
                assert_ptr_equal(topology_find_device_by_cdev(t, major, minor), d);
                assert_int_equal(d->cdev_minor, minor);
                n_cdevs++;
        }
        closedir(chars);
        for (size_t i = 0; i < t->n_devices; i++)
                n_with_cdev += t->devices[i]->has_cdev;
        assert_int_equal(n_cdevs, n_with_cdev);
        assert_true(n_cdevs > 0);
}

static void test_lookups(void **state) {
        _cleanup_(topology_freep) Topology *t = NULL;
        char sys[PATH_MAX];

        sim_host_sys(sys, sizeof(sys), "server");
        assert_int_equal(topology_load_path(&t, sys, NULL), 0);
        check_lookups_against_tree(t, sys);

        for (size_t i = 0; i < t->n_groups; i++)
                assert_ptr_equal(topology_find_group(t, t->groups[i]->id), t->groups[i]);
        assert_null(topology_find_device_by_cdev(t, 510, 0));
        assert_null(topology_find_device_by_cdev(t, 511, 8));
        assert_null(topology_find_group(t, 19));
        assert_null(topology_find_group(t, 26));
        assert_null(topology_find_device(t, "0000:00:00.0"));
        assert_null(topology_find_device(t, "0000:ff:00.0"));
        assert_null(topology_find_device(t, NULL));
        /* lspci's short form is domain 0000; nothing else is guessed. */
        assert_ptr_equal(topology_find_device(t, "41:00.1"),
                         topology_find_device(t, "0000:41:00.1"));
        assert_non_null(topology_find_device(t, "41:00.1"));
        assert_null(topology_find_device(t, "00:00.0"));
        assert_null(topology_find_device(t, "1:00.1"));
        assert_null(topology_find_device(t, "41:00.1 "));

        assert_true(topo_device_is_bridge(topology_find_device(t, "0000:40:01.1")));
        assert_false(topo_device_is_bridge(topology_find_device(t, "0000:41:00.0")));
        assert_false(topo_device_is_bridge(NULL));

        /* Groups sorted by id, members and devices by name, iommus by name. */
        for (size_t i = 1; i < t->n_groups; i++)
                assert_true(t->groups[i - 1]->id < t->groups[i]->id);
        for (size_t i = 1; i < t->n_devices; i++)
                assert_true(strcmp(t->devices[i - 1]->name, t->devices[i]->name) < 0);
        TopoGroup *g = topology_find_group(t, 2);
        assert_int_equal(g->n_devices, 3);
        assert_string_equal(g->devices[0]->name, "0000:40:01.1");
        assert_string_equal(g->devices[2]->name, "0000:41:00.1");
        assert_int_equal(t->n_iommus, 2);
        assert_string_equal(t->iommus[1]->name, "ivhd1");
        assert_int_equal(t->iommus[1]->n_devices, 6);
        assert_string_equal(t->iommus[1]->kind, "amd");
        assert_int_equal(topology_find_device(t, "0000:c1:00.2")->numa_node, 1);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_reserved_regions_parse_table),
                cmocka_unit_test(test_reserved_regions_sorted_and_typed),
                cmocka_unit_test(test_region_type_strings),
                cmocka_unit_test(test_load_hand_written_tree),
                cmocka_unit_test(test_load_without_groups_fails),
                cmocka_unit_test(test_damaged_trees),
                cmocka_unit_test(test_damaged_groups_keep_what_was_read),
                cmocka_unit_test(test_lookups),
        };

        return cmocka_run_group_tests_name("topology", tests, NULL, NULL);
}
