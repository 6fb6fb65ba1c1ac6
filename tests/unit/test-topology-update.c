/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Hotplug updates of a topology in place: after each change to a copy of the workstation's
 * sysfs tree, the groups it touched are read again and the topology must be what a full load
 * of the tree gives (compared in its JSON form), the diff must name exactly what changed, and
 * every group and device the update did not touch must keep its object.
 */

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "macros.h"
#include "topology-json.h"
#include "topology.h"
#include "tree-util.h"

typedef struct Fixture {
        char *root;         /* the copy */
        char sys[PATH_MAX]; /* root/sys */
        int sys_fd;
        Topology *t;
} Fixture;

static int setup(void **state) {
        Fixture *f = calloc(1, sizeof(*f));
        Error err = ERROR_INIT;

        assert_non_null(f);
        f->root = tree_tmpdir("topology-update");
        tree_copy(IOMMUD_SIM_SYSFS "/sim-sysfs-workstation", f->root);
        snprintf(f->sys, sizeof(f->sys), "%s/sys", f->root);
        f->sys_fd = open(f->sys, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        assert_true(f->sys_fd >= 0);
        assert_int_equal(topology_load(&f->t, f->sys_fd, &err), 0);
        assert_int_equal(f->t->n_problems, 0);
        *state = f;
        return 0;
}

static int teardown(void **state) {
        Fixture *f = *state;

        topology_free(f->t);
        close(f->sys_fd);
        tree_rm_rf(f->root);
        free(f->root);
        free(f);
        return 0;
}

static int problem_cmp(const void *a, const void *b) {
        json_object *const *x = a, *const *y = b;

        return strcmp(json_object_to_json_string(*x), json_object_to_json_string(*y));
}

/* The JSON form with the problems sorted: an update finds them in another order. */
static char *canonical(const Topology *t) {
        json_object *o = NULL, *problems;
        char *s;

        assert_int_equal(topology_to_json(t, &o), 0);
        assert_true(json_object_object_get_ex(o, "problems", &problems));
        json_object_array_sort(problems, problem_cmp);
        s = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY));
        json_object_put(o);
        assert_non_null(s);
        return s;
}

/* t must be what a full load of the tree gives now. */
static void assert_as_loaded(Fixture *f) {
        _cleanup_(topology_freep) Topology *full = NULL;
        _cleanup_free_ char *a = NULL, *b = NULL;
        Error err = ERROR_INIT;

        assert_int_equal(topology_load(&full, f->sys_fd, &err), 0);
        a = canonical(f->t);
        b = canonical(full);
        if (!streq(a, b))
                fail_msg("updated topology:\n%s\nloaded topology:\n%s", a, b);
}

static void update(Fixture *f, const unsigned *ids, size_t n, TopologyDiff *ret) {
        Error err = ERROR_INIT;

        assert_int_equal(topology_update_groups(f->t, f->sys_fd, ids, n, ret, &err), 0);
        assert_false(ret->full);
        assert_as_loaded(f);
}

static const TopologyChange *find_change(const TopologyDiff *d, const char *name) {
        for (size_t i = 0; i < d->n_changes; i++) {
                const TopoDevice *x = d->changes[i].device ?: d->changes[i].previous;

                if (streq(x->name, name))
                        return &d->changes[i];
        }
        return NULL;
}

/* "sys/REL" of the copy, REL formatted. */
static void sys_path(const Fixture *f, char *buf, size_t size, const char *fmt, ...) _printf_(4, 5);
static void sys_path(const Fixture *f, char *buf, size_t size, const char *fmt, ...) {
        char rel[512];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(rel, sizeof(rel), fmt, ap);
        va_end(ap);
        snprintf(buf, size, "sys/%s", rel);
}

/* Where the simulated host keeps a PCI device: devices/pciDDDD:BB/BDF. */
#define DEV "devices/pci%.7s/%s"

static void abs_path(const Fixture *f, char *buf, size_t size, const char *rel) {
        snprintf(buf, size, "%s/%s", f->root, rel);
}

static void put_uevent_driver(Fixture *f, const char *bdf, const char *driver) {
        char rel[512], path[PATH_MAX], text[1024], uevent[1200];
        const char *rest;
        FILE *in;
        size_t n;

        sys_path(f, rel, sizeof(rel), DEV "/uevent", bdf, bdf);
        abs_path(f, path, sizeof(path), rel);
        assert_non_null(in = fopen(path, "re"));
        n = fread(text, 1, sizeof(text) - 1, in);
        fclose(in);
        text[n] = '\0';
        rest = strneq(text, "DRIVER=", 7) ? strchr(text, '\n') + 1 : text;
        snprintf(uevent, sizeof(uevent), "%s%s%s%s", driver ? "DRIVER=" : "", driver ?: "",
                 driver ? "\n" : "", rest);
        tree_put_file(f->root, rel, uevent);
}

/* Rebinds a device of the copy the way the kernel shows it: uevent, driver link, vfio cdev. */
static void set_driver(Fixture *f, const char *bdf, const char *driver, int cdev_minor) {
        char rel[512], path[PATH_MAX];

        put_uevent_driver(f, bdf, driver);
        sys_path(f, rel, sizeof(rel), DEV "/driver", bdf, bdf);
        abs_path(f, path, sizeof(path), rel);
        (void)unlink(path);
        if (driver) {
                char target[256], drv[512];

                sys_path(f, drv, sizeof(drv), "bus/pci/drivers/%s", driver);
                tree_put_dir(f->root, drv);
                snprintf(target, sizeof(target), "../../../bus/pci/drivers/%s", driver);
                tree_put_link(f->root, rel, target);
        }
        if (cdev_minor >= 0) {
                char dev[32];

                sys_path(f, rel, sizeof(rel), DEV "/vfio-dev/vfio%d/dev", bdf, bdf, cdev_minor);
                snprintf(dev, sizeof(dev), "511:%d\n", cdev_minor);
                tree_put_file(f->root, rel, dev);
        } else {
                sys_path(f, rel, sizeof(rel), DEV "/vfio-dev", bdf, bdf);
                abs_path(f, path, sizeof(path), rel);
                if (access(path, F_OK) == 0)
                        tree_rm_rf(path);
        }
}

/* Removes a device of the copy: its directory and every link to it. */
static void remove_device(Fixture *f, const char *bdf, unsigned group) {
        char rel[512], path[PATH_MAX];

        sys_path(f, rel, sizeof(rel), "kernel/iommu_groups/%u/devices/%s", group, bdf);
        tree_unlink(f->root, rel);
        sys_path(f, rel, sizeof(rel), "devices/virtual/iommu/dmar0/devices/%s", bdf);
        tree_unlink(f->root, rel);
        sys_path(f, rel, sizeof(rel), "bus/pci/devices/%s", bdf);
        tree_unlink(f->root, rel);
        sys_path(f, rel, sizeof(rel), DEV, bdf, bdf);
        abs_path(f, path, sizeof(path), rel);
        tree_rm_rf(path);
}

static void test_unchanged_group_read_again(void **state) {
        Fixture *f = *state;
        TopoDevice *igpu = topology_find_device(f->t, "0000:00:02.0");
        TopoDevice *nic = topology_find_device(f->t, "0000:03:00.0");
        TopoGroup *g1 = topology_find_group(f->t, 1);
        TopologyDiff d = {};
        unsigned ids[] = { 13, 13 };

        assert_non_null(igpu);
        assert_non_null(nic);
        update(f, ids, ELEMENTSOF(ids), &d);
        assert_int_equal(d.n_changes, 0);
        assert_int_equal(d.n_retired_groups, 1);
        assert_int_equal(d.n_retired_devices, 2);
        /* What was not read again is the same object; what was is new. */
        assert_ptr_equal(topology_find_device(f->t, "0000:00:02.0"), igpu);
        assert_ptr_equal(topology_find_group(f->t, 1), g1);
        assert_ptr_equal(igpu->group, g1);
        assert_ptr_not_equal(topology_find_device(f->t, "0000:03:00.0"), nic);
        /* The replaced object is still readable until the diff is done. */
        assert_string_equal(nic->name, "0000:03:00.0");
        topology_diff_done(&d);
}

static void test_rebind_changes_one_group(void **state) {
        Fixture *f = *state;
        TopoDevice *other = topology_find_device(f->t, "0000:00:17.0");
        const TopologyChange *c;
        const TopoDevice *d;
        TopologyDiff diff = {};
        unsigned id = 13;

        set_driver(f, "0000:03:00.1", "vfio-pci", 7);
        update(f, &id, 1, &diff);
        assert_int_equal(diff.n_changes, 1);
        c = find_change(&diff, "0000:03:00.1");
        assert_non_null(c);
        assert_int_equal(c->kind, TOPOLOGY_DEVICE_CHANGED);
        assert_string_equal(c->device->driver, "vfio-pci");
        assert_true(c->device->has_cdev);
        assert_string_equal(c->previous->driver, "ixgbe");
        d = topology_find_device_by_cdev(f->t, 511, 7);
        assert_ptr_equal(d, c->device);
        assert_ptr_equal(topology_find_device(f->t, "0000:00:17.0"), other);
        topology_diff_done(&diff);

        set_driver(f, "0000:03:00.1", NULL, -1);
        update(f, &id, 1, &diff);
        c = find_change(&diff, "0000:03:00.1");
        assert_non_null(c);
        assert_null(c->device->driver);
        assert_false(c->device->has_cdev);
        assert_null(topology_find_device_by_cdev(f->t, 511, 7));
        topology_diff_done(&diff);
}

static void test_remove_device_and_group(void **state) {
        Fixture *f = *state;
        const TopologyChange *c;
        TopologyDiff diff = {};
        size_t n = f->t->n_devices;
        unsigned id = 13, ids[] = { 12 };
        char path[PATH_MAX], rel[512];

        remove_device(f, "0000:03:00.1", 13);
        update(f, &id, 1, &diff);
        assert_int_equal(f->t->n_devices, n - 1);
        c = find_change(&diff, "0000:03:00.1");
        assert_non_null(c);
        assert_int_equal(c->kind, TOPOLOGY_DEVICE_REMOVED);
        assert_null(c->device);
        assert_string_equal(c->previous->driver, "ixgbe");
        assert_null(topology_find_device(f->t, "0000:03:00.1"));
        topology_diff_done(&diff);

        /* The last member goes, and the kernel removes its group. */
        remove_device(f, "0000:01:00.0", 12);
        sys_path(f, rel, sizeof(rel), "kernel/iommu_groups/12");
        abs_path(f, path, sizeof(path), rel);
        tree_rm_rf(path);
        update(f, ids, 1, &diff);
        assert_null(topology_find_group(f->t, 12));
        assert_int_equal(f->t->n_devices, n - 2);
        c = find_change(&diff, "0000:01:00.0");
        assert_non_null(c);
        assert_int_equal(c->kind, TOPOLOGY_DEVICE_REMOVED);
        assert_int_equal(diff.n_retired_groups, 1);
        topology_diff_done(&diff);
}

/* A new group with a device behind dmar0: found in the instance's list, and added to it. */
static void test_add_group(void **state) {
        Fixture *f = *state;
        const char *bdf = "0000:05:00.0";
        const TopologyChange *c;
        TopologyDiff diff = {};
        unsigned id = 20, got = 0;
        char rel[512];

        sys_path(f, rel, sizeof(rel), "kernel/iommu_groups/20/type");
        tree_put_file(f->root, rel, "DMA\n");
        sys_path(f, rel, sizeof(rel), "kernel/iommu_groups/20/reserved_regions");
        tree_put_file(f->root, rel, "0x00000000fee00000 0x00000000feefffff msi\n");
        sys_path(f, rel, sizeof(rel), "kernel/iommu_groups/20/devices/%s", bdf);
        tree_put_link(f->root, rel, "../../../../devices/pci0000:05/0000:05:00.0");
        sys_path(f, rel, sizeof(rel), DEV "/uevent", bdf, bdf);
        tree_put_file(f->root, rel, "PCI_CLASS=10802\nPCI_ID=144D:A80A\nPCI_SUBSYS_ID=144D:0001\n"
                      "PCI_SLOT_NAME=0000:05:00.0\n");
        sys_path(f, rel, sizeof(rel), DEV "/numa_node", bdf, bdf);
        tree_put_file(f->root, rel, "0\n");
        sys_path(f, rel, sizeof(rel), DEV "/iommu_group", bdf, bdf);
        tree_put_link(f->root, rel, "../../../kernel/iommu_groups/20");
        sys_path(f, rel, sizeof(rel), DEV "/iommu", bdf, bdf);
        tree_put_link(f->root, rel, "../../virtual/iommu/dmar0");
        sys_path(f, rel, sizeof(rel), "devices/virtual/iommu/dmar0/devices/%s", bdf);
        tree_put_link(f->root, rel, "../../../../pci0000:05/0000:05:00.0");
        set_driver(f, bdf, "vfio-pci", 9);
        sys_path(f, rel, sizeof(rel), "bus/pci/devices/%s", bdf);
        tree_put_link(f->root, rel, "../../../devices/pci0000:05/0000:05:00.0");

        assert_int_equal(topology_device_group(f->sys_fd, "/devices/pci0000:05/0000:05:00.0",
                                               NULL, &got), 0);
        assert_int_equal(got, 20);
        got = 0;
        assert_int_equal(topology_device_group(f->sys_fd, NULL, bdf, &got), 0);
        assert_int_equal(got, 20);

        update(f, &id, 1, &diff);
        c = find_change(&diff, bdf);
        assert_non_null(c);
        assert_int_equal(c->kind, TOPOLOGY_DEVICE_ADDED);
        assert_non_null(c->device->iommu);
        assert_string_equal(c->device->iommu->name, "dmar0");
        assert_ptr_equal(topology_find_device_by_cdev(f->t, 511, 9), c->device);
        assert_ptr_equal(topology_find_group(f->t, 20), c->device->group);
        topology_diff_done(&diff);
}

/* A problem belongs to the group it was found in: read again, it goes or comes back. */
static void test_problems_follow_their_group(void **state) {
        Fixture *f = *state;
        TopologyDiff diff = {};
        unsigned id = 4;
        char rel[PATH_MAX];

        sys_path(f, rel, sizeof(rel), "kernel/iommu_groups/4/type");
        tree_put_file(f->root, rel, "DMA FQ\n");
        update(f, &id, 1, &diff);
        assert_int_equal(f->t->n_problems, 1);
        assert_int_equal(f->t->problems[0].group, 4);
        assert_true(topology_find_group(f->t, 4)->broken);
        topology_diff_done(&diff);

        /* Another group read again leaves it alone. */
        id = 1;
        update(f, &id, 1, &diff);
        assert_int_equal(f->t->n_problems, 1);
        topology_diff_done(&diff);

        tree_put_file(f->root, rel, "DMA\n");
        id = 4;
        update(f, &id, 1, &diff);
        assert_int_equal(f->t->n_problems, 0);
        assert_false(topology_find_group(f->t, 4)->broken);
        topology_diff_done(&diff);
}

static void test_device_group_refuses(void **state) {
        Fixture *f = *state;
        unsigned id = 99;

        assert_int_equal(topology_device_group(f->sys_fd, "devices/pci0000:00/0000:00:02.0", NULL,
                                               &id), -EINVAL);
        assert_int_equal(topology_device_group(f->sys_fd, NULL, "../x", &id), -EINVAL);
        assert_int_equal(topology_device_group(f->sys_fd, "/devices/../../etc", NULL, &id) < 0,
                         true);
        assert_int_equal(topology_device_group(f->sys_fd, "/devices/pci0000:09/0000:09:00.0",
                                               NULL, &id), -ENOENT);
        assert_int_equal(id, 99);
        assert_int_equal(topology_device_group(f->sys_fd, "/devices/pci0000:00/0000:00:1f.3",
                                               NULL, &id), 0);
        assert_int_equal(id, 4);
}

static void test_diff_replace(void **state) {
        Fixture *f = *state;
        _cleanup_(topology_freep) Topology *now = NULL;
        Topology *old = f->t;
        const TopologyChange *c;
        TopologyDiff diff = {};
        Error err = ERROR_INIT;

        remove_device(f, "0000:00:17.0", 3);
        set_driver(f, "0000:00:14.0", "vfio-pci", 11);
        assert_int_equal(topology_load(&now, f->sys_fd, &err), 0);
        f->t = NULL;
        assert_int_equal(topology_diff_replace(old, now, &diff), 0);
        assert_true(diff.full);
        assert_int_equal(diff.n_changes, 2);
        c = find_change(&diff, "0000:00:17.0");
        assert_non_null(c);
        assert_int_equal(c->kind, TOPOLOGY_DEVICE_REMOVED);
        c = find_change(&diff, "0000:00:14.0");
        assert_non_null(c);
        assert_int_equal(c->kind, TOPOLOGY_DEVICE_CHANGED);
        assert_string_equal(c->previous->driver, "xhci_hcd");
        topology_diff_done(&diff);
        f->t = TAKE_PTR(now);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_unchanged_group_read_again, setup, teardown),
                cmocka_unit_test_setup_teardown(test_rebind_changes_one_group, setup, teardown),
                cmocka_unit_test_setup_teardown(test_remove_device_and_group, setup, teardown),
                cmocka_unit_test_setup_teardown(test_add_group, setup, teardown),
                cmocka_unit_test_setup_teardown(test_problems_follow_their_group, setup, teardown),
                cmocka_unit_test_setup_teardown(test_device_group_refuses, setup, teardown),
                cmocka_unit_test_setup_teardown(test_diff_replace, setup, teardown),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
