/* SPDX-License-Identifier: LGPL-2.1-or-later */

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

#include "macros.h"
#include "topology.h"

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
}

/* ---- a small hand-written tree ---- */

static char *tmp_root(void) {
        char *p = strdup("/tmp/iommud-test-topology-XXXXXX");
        assert_non_null(p);
        assert_non_null(mkdtemp(p));
        return p;
}

static void mkdir_parents(const char *root, const char *rel) {
        char path[PATH_MAX];

        snprintf(path, sizeof(path), "%s/%s", root, rel);
        for (char *p = path + strlen(root) + 1; *p; p++)
                if (*p == '/') {
                        *p = '\0';
                        (void)mkdir(path, 0755);
                        *p = '/';
                }
}

static void put_file(const char *root, const char *rel, const char *content) {
        char path[PATH_MAX];
        FILE *f;

        mkdir_parents(root, rel);
        snprintf(path, sizeof(path), "%s/%s", root, rel);
        f = fopen(path, "we");
        assert_non_null(f);
        fputs(content, f);
        assert_int_equal(fclose(f), 0);
}

static void put_dir(const char *root, const char *rel) {
        char path[PATH_MAX];

        snprintf(path, sizeof(path), "%s/%s/", root, rel);
        mkdir_parents(root, path + strlen(root) + 1);
}

static void put_link(const char *root, const char *rel, const char *target) {
        char path[PATH_MAX];

        mkdir_parents(root, rel);
        snprintf(path, sizeof(path), "%s/%s", root, rel);
        (void)unlink(path);
        assert_int_equal(symlink(target, path), 0);
}

static void rm_rf(const char *path) {
        char cmd[PATH_MAX + 16];

        /* Test trees only live below /tmp/iommud-test-. */
        assert_true(strneq(path, "/tmp/iommud-test-", 17));
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", path);
        assert_int_equal(system(cmd), 0);
}

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

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_reserved_regions_parse_table),
                cmocka_unit_test(test_reserved_regions_sorted_and_typed),
                cmocka_unit_test(test_region_type_strings),
                cmocka_unit_test(test_load_hand_written_tree),
                cmocka_unit_test(test_load_without_groups_fails),
        };

        return cmocka_run_group_tests_name("topology", tests, NULL, NULL);
}
