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
#include <json-c/json.h>

#include "backend.h"
#include "file-util.h"
#include "macros.h"
#include "simtopo.h"
#include "topology-json.h"
#include "topology.h"
#include "tree-util.h"

static const char *const bundled[] = { "workstation", "server", "arm" };

static char *read_text(const char *path) {
        char *text = NULL;

        return file_util_read_at(AT_FDCWD, path, 64u << 20, &text, NULL) < 0 ? NULL : text;
}

/* Materializes a topology, loads it back and returns the pretty JSON text. */
static char *round_trip_json(const SimTopology *st, Topology **ret_topology) {
        _cleanup_free_ char *root = tree_tmpdir("simtopo");
        _cleanup_(topology_freep) Topology *t = NULL;
        char sys[PATH_MAX];
        Error err = ERROR_INIT;
        json_object *j;
        char *text;

        assert_int_equal(simtopo_materialize(st, root, &err), 0);
        tree_path(sys, sizeof(sys), root, "sys");
        assert_int_equal(topology_load_path(&t, sys, &err), 0);
        assert_int_equal(simtopo_remove(root), 0);
        assert_int_equal(access(root, F_OK), -1);

        assert_int_equal(topology_to_json(t, &j), 0);
        assert_true(asprintf(&text, "%s\n",
                             json_object_to_json_string_ext(j, JSON_C_TO_STRING_PRETTY |
                                                                       JSON_C_TO_STRING_SPACED |
                                                                       JSON_C_TO_STRING_NOSLASHESCAPE)) > 0);
        json_object_put(j);
        if (ret_topology)
                *ret_topology = TAKE_PTR(t);
        return text;
}

/*
 * Compares against tests/data/golden/topology-NAME.json.  On a mismatch the
 * output is written next to the test binary and the first differing line is
 * printed, so "diff -u" shows the rest.  IOMMUD_UPDATE_GOLDEN=1 rewrites the
 * golden files instead (check the diff before committing them).
 */
static void check_golden(const char *name, const char *actual) {
        const char *data = getenv("IOMMUD_TEST_DATA");
        _cleanup_free_ char *golden_path = NULL, *expected = NULL;

        assert_non_null(data);
        assert_true(asprintf(&golden_path, "%s/golden/topology-%s.json", data, name) > 0);
        if (getenv("IOMMUD_UPDATE_GOLDEN")) {
                FILE *f = fopen(golden_path, "we");
                assert_non_null(f);
                fputs(actual, f);
                assert_int_equal(fclose(f), 0);
                return;
        }
        expected = read_text(golden_path);
        if (!expected) {
                printf("# %s: cannot read golden file (%m)\n", golden_path);
                fail();
        }
        if (streq(expected, actual))
                return;

        unsigned line = 1;
        const char *e = expected, *a = actual;
        while (*e && *e == *a) {
                if (*e == '\n')
                        line++;
                e++, a++;
        }
        while (e > expected && e[-1] != '\n')
                e--, a--;
        char actual_path[PATH_MAX];
        snprintf(actual_path, sizeof(actual_path), "topology-%s.json.actual", name);
        FILE *f = fopen(actual_path, "we");
        if (f) {
                fputs(actual, f);
                fclose(f);
        }
        printf("# topology %s differs from %s at line %u:\n#   expected: %.*s\n#   actual:   %.*s\n"
               "# full output in %s (diff -u %s %s)\n",
               name, golden_path, line, (int)strcspn(e, "\n"), e, (int)strcspn(a, "\n"), a,
               actual_path, golden_path, actual_path);
        fail();
}

static void test_bundled_golden(void **state) {
        for (size_t i = 0; i < ELEMENTSOF(bundled); i++) {
                _cleanup_(simtopo_freep) SimTopology *st = NULL;
                _cleanup_(topology_freep) Topology *t = NULL;
                _cleanup_free_ char *text = NULL;
                Error err = ERROR_INIT;

                if (simtopo_load(&st, bundled[i], &err) < 0)
                        printf("# %s\n", err.message);
                assert_non_null(st);
                assert_string_equal(st->name, bundled[i]);
                text = round_trip_json(st, &t);
                /* A bundled topology reads back without a single problem. */
                assert_int_equal(t->n_problems, 0);
                assert_int_equal(t->n_devices, st->n_devices);
                assert_int_equal(t->n_groups, st->n_groups);
                assert_int_equal(t->n_iommus, st->n_iommus);
                check_golden(bundled[i], text);
        }
}

/* What the rest of iommud relies on in the bundled topologies. */
static void test_bundled_contents(void **state) {
        _cleanup_(simtopo_freep) SimTopology *ws = NULL, *srv = NULL, *arm = NULL;
        const SimDevice *d;

        assert_int_equal(simtopo_load(&ws, "workstation", NULL), 0);
        assert_int_equal(simtopo_load(&srv, "server", NULL), 0);
        assert_int_equal(simtopo_load(&arm, "arm", NULL), 0);

        for (size_t k = 0; k < 3; k++) {
                const SimTopology *t = k == 0 ? ws : k == 1 ? srv : arm;
                unsigned minor = 0;
                for (size_t i = 0; i < t->n_devices; i++) {
                        assert_non_null(t->devices[i].label);
                        if (t->devices[i].driver && streq(t->devices[i].driver, "vfio-pci"))
                                assert_true(t->devices[i].cdev);
                        if (t->devices[i].cdev)
                                minor++;
                }
                /* Minors are dense: 0..n-1, each used once. */
                for (unsigned m = 0; m < minor; m++) {
                        size_t uses = 0;
                        for (size_t i = 0; i < t->n_devices; i++)
                                uses += t->devices[i].cdev && t->devices[i].cdev_minor == m;
                        assert_int_equal(uses, 1);
                }
        }

        assert_int_equal(ws->n_iommus, 1);
        assert_int_equal(ws->iommus[0].aperture_last, 0x7fffffffffULL);
        assert_int_equal(ws->iommus[0].page_sizes, (1ULL << 12) | (1ULL << 21) | (1ULL << 30));
        assert_int_equal(ws->iommus[0].pasid_bits, 20);
        assert_true(ws->iommus[0].nesting);
        assert_true(ws->iommus[0].capabilities & BACKEND_HW_CAP_DIRTY_TRACKING);
        assert_int_equal(ws->iommus[0].hw_info_type, 1);
        d = simtopo_find_device(ws, "0000:03:00.1");
        assert_non_null(d);
        assert_string_equal(d->driver, "ixgbe");
        assert_false(d->cdev);
        assert_int_equal(ws->groups[d->group_index].n_devices, 2);
        d = simtopo_find_device(ws, "0000:00:02.0");
        assert_int_equal(ws->groups[d->group_index].regions[0].type, REGION_DIRECT_RELAXABLE);
        for (size_t g = 0; g < ws->n_groups; g++) {
                bool msi = false;
                for (size_t r = 0; r < ws->groups[g].n_regions; r++)
                        msi |= ws->groups[g].regions[r].type == REGION_MSI &&
                               ws->groups[g].regions[r].start == 0xfee00000ULL;
                assert_true(msi);
        }

        d = simtopo_find_device(srv, "0000:21:00.0");
        assert_non_null(d);
        assert_int_equal(srv->groups[d->group_index].regions[0].type, REGION_DIRECT);
        d = simtopo_find_device(srv, "0000:e1:00.0");
        assert_int_equal(d->pasid_bits, 20);
        assert_true(d->cdev);
        assert_int_equal(srv->n_iommus, 2);

        assert_string_equal(arm->iommus[0].kind, "arm-smmu-v3");
        assert_int_equal(arm->iommus[0].aperture_last, 0xffffffffffffULL);
        assert_int_equal(arm->iommus[0].page_sizes, (1ULL << 12) | (1ULL << 16));
        assert_int_equal(arm->iommus[0].hw_info_type, 2);
        assert_int_equal(arm->groups[0].regions[0].start, 0x8000000ULL);
        assert_null(simtopo_find_device(arm, "0000:99:00.0"));
}

typedef struct ParseCase {
        const char *json;
        const char *message;
} ParseCase;

#define IOMMU "{\"name\":\"dmar0\",\"kind\":\"intel\",\"aperture_last\":\"0x7fffffffff\",\"page_sizes\":[\"4K\"]}"
#define DEV(name) "{\"name\":\"" name "\",\"vendor\":\"0x8086\",\"device\":1,\"class\":\"0x020000\"}"

static const ParseCase parse_cases[] = {
        { "{\"iommus\":[" IOMMU "],\"groups\":[{\"id\":0,\"devices\":[" DEV("0000:00:00.0") "]},"
          "{\"id\":1,\"devices\":[" DEV("0000:00:01.0") "]},{\"id\":2,\"devices\":[" DEV("0000:00:02.0")
          "]},{\"id\":3,\"devices\":[" DEV("0000:00:03.0") ",{\"name\":\"0000:00:03.1\",\"vendor\":1,"
          "\"device\":1,\"class\":true}]}]}",
          "groups[3].devices[1].class: expected a hex string or integer, got a boolean" },
        { "{\"iommus\":[" IOMMU "],\n\"groups\":[}", "JSON syntax error at line 2 column 11: unexpected character" },
        { "{\"iommus\":[" IOMMU "]", "JSON ends before the document is complete" },
        { "{\"iommus\":[" IOMMU "],\"groups\":[]} x", "trailing data after the JSON document" },
        { "[]", "(top level): expected an object, got an array" },
        { "{\"groups\":[]}", "iommus: missing" },
        { "{\"iommus\":[],\"groups\":[]}", "iommus: at least one IOMMU is needed" },
        { "{\"iommus\":[" IOMMU "],\"groups\":[],\"colour\":1}", "colour: unknown key" },
        { "{\"iommus\":[{\"name\":\"dmar0\",\"kind\":\"vtd\",\"aperture_last\":1,\"page_sizes\":[\"4K\"]}],"
          "\"groups\":[]}",
          "iommus[0].kind: expected \"intel\", \"amd\", \"arm-smmu-v3\" or \"arm-smmu\", got 'vtd'" },
        { "{\"iommus\":[{\"name\":\"dmar0\",\"kind\":\"intel\",\"aperture_last\":1,\"page_sizes\":[\"3K\"]}],"
          "\"groups\":[]}",
          "iommus[0].page_sizes[0]: expected a power-of-two size such as \"4K\", \"2M\" or \"1G\"" },
        { "{\"iommus\":[{\"name\":\"dmar0\",\"kind\":\"intel\",\"aperture_last\":\"0x\",\"page_sizes\":[\"4K\"]}],"
          "\"groups\":[]}",
          "iommus[0].aperture_last: expected a hex string or integer, got '0x'" },
        { "{\"iommus\":[{\"name\":\"dmar0\",\"kind\":\"intel\",\"aperture_last\":-1,\"page_sizes\":[\"4K\"]}],"
          "\"groups\":[]}",
          "iommus[0].aperture_last: -1 is negative" },
        { "{\"iommus\":[{\"name\":\"dmar0\",\"kind\":\"intel\",\"aperture_last\":18446744073709551616,"
          "\"page_sizes\":[\"4K\"]}],\"groups\":[]}",
          "iommus[0].aperture_last: 18446744073709551616 is above the maximum 0xffffffffffffffff" },
        { "{\"iommus\":[{\"name\":\"dmar0\",\"kind\":\"intel\",\"aperture_last\":1,\"page_sizes\":4096,"
          "\"pasid_bits\":21}],\"groups\":[]}",
          "iommus[0].pasid_bits: 0x15 is above the maximum 0x14" },
        { "{\"iommus\":[{\"name\":\"dmar0\",\"kind\":\"intel\",\"aperture_last\":1,\"page_sizes\":4096,"
          "\"capabilities\":[\"pasid-exec\",\"pasid_priv\"]}],\"groups\":[]}",
          "iommus[0].capabilities[1]: expected one of \"dirty-tracking\", \"pasid-exec\", "
          "\"pasid-priv\"" },
        { "{\"iommus\":[{\"name\":\"smmu0\",\"kind\":\"arm-smmu-v3\",\"aperture_last\":1,\"page_sizes\":4096}],"
          "\"groups\":[]}",
          "iommus[0].name: an arm-smmu-v3 instance is named \"smmu3.<address>\", got 'smmu0'" },
        { "{\"iommus\":[{\"name\":\"smmu3.0x1000\",\"kind\":\"arm-smmu\",\"aperture_last\":1,"
          "\"page_sizes\":4096}],\"groups\":[]}",
          "iommus[0].name: an arm-smmu instance is named \"smmu.<address>\", got 'smmu3.0x1000'" },
        { "{\"iommus\":[" IOMMU "," IOMMU "],\"groups\":[]}", "iommus[1].name: IOMMU 'dmar0' is listed twice" },
        { "{\"iommus\":[" IOMMU ",{\"name\":\"dmar1\",\"kind\":\"intel\",\"aperture_last\":1,\"page_sizes\":4096}],"
          "\"groups\":[{\"id\":0,\"devices\":[" DEV("0000:00:00.0") "]}]}",
          "groups[0].iommu: missing (there is more than one IOMMU)" },
        { "{\"iommus\":[" IOMMU "],\"groups\":[{\"id\":0,\"iommu\":\"dmar9\",\"devices\":[" DEV("0000:00:00.0") "]}]}",
          "groups[0].iommu: no IOMMU named 'dmar9'" },
        { "{\"iommus\":[" IOMMU "],\"groups\":[{\"id\":0,\"devices\":[" DEV("0000:00:00.0") "]},"
          "{\"id\":0,\"devices\":[" DEV("0000:00:01.0") "]}]}",
          "groups[1].id: group 0 is listed twice" },
        { "{\"iommus\":[" IOMMU "],\"groups\":[{\"id\":0,\"devices\":[]}]}",
          "groups[0].devices: a group needs at least one device" },
        { "{\"iommus\":[" IOMMU "],\"groups\":[{\"id\":0,\"devices\":[" DEV("0000:00:00.0") "]},"
          "{\"id\":1,\"devices\":[" DEV("0000:00:01.0") "," DEV("0000:00:00.0") "]}]}",
          "groups[1].devices[1].name: device '0000:00:00.0' is listed twice" },
        { "{\"iommus\":[" IOMMU "],\"groups\":[{\"id\":0,\"devices\":[{\"name\":\"0000:00:00.0\","
          "\"vendor\":\"0x18086\",\"device\":1,\"class\":1}]}]}",
          "groups[0].devices[0].vendor: 0x18086 is above the maximum 0xffff" },
        { "{\"iommus\":[" IOMMU "],\"groups\":[{\"id\":0,\"devices\":[{\"name\":\"0000:00:00.0\","
          "\"vendor\":1,\"class\":1}]}]}",
          "groups[0].devices[0].device: missing" },
        { "{\"iommus\":[" IOMMU "],\"groups\":[{\"id\":0,\"devices\":[{\"name\":\"../etc\"}]}]}",
          "groups[0].devices[0].name: '../etc' is not a valid device name" },
        { "{\"iommus\":[" IOMMU "],\"groups\":[{\"id\":0,\"devices\":[{\"name\":\"0000:00:00.0\","
          "\"vendor\":1,\"device\":1,\"class\":1,\"drvier\":\"x\"}]}]}",
          "groups[0].devices[0].drvier: unknown key" },
        { "{\"iommus\":[" IOMMU "],\"groups\":[{\"id\":0,\"devices\":[{\"name\":\"0000:00:00.0\","
          "\"vendor\":1,\"device\":1,\"class\":1,\"numa_node\":-2}]}]}",
          "groups[0].devices[0].numa_node: -2 is not between -1 and 1023" },
        { "{\"iommus\":[" IOMMU "],\"groups\":[{\"id\":0,\"reserved_regions\":[{\"start\":\"0x2000\","
          "\"last\":\"0x1fff\",\"type\":\"direct\"}],\"devices\":[" DEV("0000:00:00.0") "]}]}",
          "groups[0].reserved_regions[0].last: 0x1fff is below start 0x2000" },
        { "{\"iommus\":[" IOMMU "],\"groups\":[{\"id\":0,\"reserved_regions\":[{\"start\":0,"
          "\"last\":1,\"type\":\"two words\"}],\"devices\":[" DEV("0000:00:00.0") "]}]}",
          "groups[0].reserved_regions[0].type: expected one word, got 'two words'" },
};

static void test_parse_errors(void **state) {
        for (size_t i = 0; i < ELEMENTSOF(parse_cases); i++) {
                SimTopology *t = NULL;
                Error err = ERROR_INIT;
                const char *json = parse_cases[i].json;

                printf("# case %zu\n", i);
                assert_true(simtopo_parse(&t, json, strlen(json), &err) < 0);
                assert_null(t);
                assert_string_equal(err.message, parse_cases[i].message);
        }
}

/* An SMMUv2 / MMU-500 host: sysfs names it "smmu.<address>", which is how its kind is told. */
static void test_arm_smmu_v2(void **state) {
        static const char json[] =
                "{\"iommus\":[{\"name\":\"smmu.0x0000000050000000\",\"kind\":\"arm-smmu\","
                "\"aperture_last\":\"0xffffffffff\",\"page_sizes\":[\"4K\",\"64K\"]}],"
                "\"groups\":[{\"id\":0,\"devices\":[{\"name\":\"50100000.dma\","
                "\"driver\":\"vfio-platform\"}]}]}";
        _cleanup_(simtopo_freep) SimTopology *st = NULL;
        _cleanup_(topology_freep) Topology *t = NULL;
        _cleanup_free_ char *text = NULL;
        Error err = ERROR_INIT;

        if (simtopo_parse(&st, json, strlen(json), &err) < 0)
                fail_msg("%s", err.message);
        assert_string_equal(st->iommus[0].kind, "arm-smmu");
        assert_int_equal(st->iommus[0].hw_info_type, 0);
        text = round_trip_json(st, &t);
        assert_int_equal(t->n_iommus, 1);
        assert_string_equal(t->iommus[0]->name, "smmu.0x0000000050000000");
        assert_string_equal(t->iommus[0]->kind, "arm-smmu");
}

static void test_parse_u64_forms(void **state) {
        static const char json[] =
                "{\"name\":\"t\",\"cdev_major\":240,\"iommus\":[{\"name\":\"d\",\"kind\":\"amd\","
                "\"aperture_start\":4096,\"aperture_last\":\"0xffffffffffffffff\","
                "\"page_sizes\":\"0x201000\",\"capabilities\":[\"pasid-exec\"],\"dirty_tracking\":true}],"
                "\"groups\":[{\"id\":\"0x10\",\"reserved_regions\":[{\"start\":\"0xfffffffffffff000\","
                "\"last\":18446744073709551615,\"type\":\"odd\"}],\"devices\":[{\"name\":\"0000:00:00.0\","
                "\"vendor\":32902,\"device\":\"0xABCD\",\"class\":\"0x0c0330\",\"driver\":\"vfio-pci\","
                "\"cdev\":false},{\"name\":\"0000:00:00.1\",\"vendor\":1,\"device\":2,\"class\":3,"
                "\"driver\":\"vfio-pci\"}]}]}";
        _cleanup_(simtopo_freep) SimTopology *t = NULL;
        Error err = ERROR_INIT;

        assert_int_equal(simtopo_parse(&t, json, strlen(json), &err), 0);
        assert_int_equal(t->cdev_major, 240);
        assert_int_equal(t->iommus[0].aperture_start, 4096);
        assert_int_equal(t->iommus[0].aperture_last, UINT64_MAX);
        assert_int_equal(t->iommus[0].page_sizes, 0x201000);
        assert_int_equal(t->iommus[0].hw_info_type, 0);
        assert_int_equal(t->iommus[0].capabilities,
                         BACKEND_HW_CAP_PCI_PASID_EXEC | BACKEND_HW_CAP_DIRTY_TRACKING);
        assert_int_equal(t->groups[0].id, 16);
        assert_string_equal(t->groups[0].type, "DMA");
        assert_int_equal(t->groups[0].regions[0].last, UINT64_MAX);
        assert_int_equal(t->groups[0].regions[0].type, REGION_UNKNOWN);
        assert_string_equal(t->groups[0].regions[0].type_name, "odd");
        assert_int_equal(t->devices[0].vendor, 0x8086);
        assert_int_equal(t->devices[0].device, 0xabcd);
        assert_false(t->devices[0].cdev);
        assert_true(t->devices[1].cdev);
        assert_int_equal(t->devices[1].cdev_minor, 0);
        assert_int_equal(t->devices[1].numa_node, -1);
}

static void test_scale_sizes(void **state) {
        static const size_t sizes[] = { 1, 2, 7, 100, 4096, 20000 };

        for (size_t k = 0; k < ELEMENTSOF(sizes); k++) {
                _cleanup_(simtopo_freep) SimTopology *t = NULL;
                size_t in_groups = 0, multi = 0, vfio = 0, unbound = 0, bridges = 0;
                unsigned next_minor = 0;

                assert_int_equal(simtopo_generate_scale(&t, sizes[k], NULL), 0);
                assert_int_equal(t->n_devices, sizes[k]);
                assert_true(t->n_iommus >= 1 && t->n_iommus <= 16);
                for (size_t g = 0; g < t->n_groups; g++) {
                        assert_true(t->groups[g].n_devices >= 1);
                        assert_true(t->groups[g].iommu_index < t->n_iommus);
                        multi += t->groups[g].n_devices > 1;
                        for (size_t j = 0; j < t->groups[g].n_devices; j++) {
                                const SimDevice *d = &t->devices[t->groups[g].device_indexes[j]];
                                assert_int_equal(d->group_index, g);
                                in_groups++;
                        }
                }
                assert_int_equal(in_groups, sizes[k]);
                for (size_t i = 0; i < t->n_devices; i++) {
                        const SimDevice *d = &t->devices[i];
                        assert_ptr_equal(simtopo_find_device(t, d->name), d);
                        if (i > 0)
                                assert_true(strcmp(t->devices[i - 1].name, d->name) < 0);
                        if (d->cdev)
                                assert_int_equal(d->cdev_minor, next_minor++);
                        vfio += d->driver && streq(d->driver, "vfio-pci");
                        unbound += !d->driver;
                        bridges += (d->class >> 8) == 0x0604;
                }
                if (sizes[k] >= 4096) {
                        assert_int_equal(t->n_iommus, MIN(sizes[k] / 512, (size_t)16));
                        assert_true(multi > t->n_groups / 20);
                        assert_true(bridges > 0);
                        assert_true(vfio > sizes[k] / 5);
                        assert_true(unbound > 0);
                }
        }

        SimTopology *t = NULL;
        Error err = ERROR_INIT;
        assert_int_equal(simtopo_generate_scale(&t, 0, &err), -ERANGE);
        assert_int_equal(simtopo_load(&t, "scale:x", &err), -EINVAL);
        assert_int_equal(simtopo_load(&t, "scale:", &err), -EINVAL);
        assert_int_equal(simtopo_load(&t, "scale:-5", &err), -EINVAL);
        assert_null(t);
        assert_int_equal(simtopo_load(&t, "scale", &err), 0);
        assert_int_equal(t->n_devices, 4096);
        assert_string_equal(t->name, "scale:4096");
        simtopo_free(t);
        assert_int_equal(simtopo_load(&t, "scale:33", &err), 0);
        assert_int_equal(t->n_devices, 33);
        simtopo_free(t);
}

static void test_scale_round_trip(void **state) {
        _cleanup_(simtopo_freep) SimTopology *st = NULL;
        _cleanup_(topology_freep) Topology *t = NULL;
        _cleanup_free_ char *text = NULL;

        assert_int_equal(simtopo_generate_scale(&st, 1000, NULL), 0);
        text = round_trip_json(st, &t);
        assert_int_equal(t->n_problems, 0);
        assert_int_equal(t->n_devices, 1000);
        assert_int_equal(t->n_groups, st->n_groups);
        for (size_t i = 0; i < st->n_devices; i++) {
                const SimDevice *sd = &st->devices[i];
                TopoDevice *d = topology_find_device(t, sd->name);
                assert_non_null(d);
                assert_int_equal(d->vendor, sd->vendor);
                assert_int_equal(d->class, sd->class);
                assert_int_equal(d->group->id, st->groups[sd->group_index].id);
                assert_string_equal(d->iommu->name, st->iommus[st->groups[sd->group_index].iommu_index].name);
                assert_int_equal(d->has_cdev, sd->cdev);
                if (sd->cdev)
                        assert_ptr_equal(topology_find_device_by_cdev(t, st->cdev_major,
                                                                      sd->cdev_minor), d);
        }
}

static void test_load_lookup_errors(void **state) {
        SimTopology *t = NULL;
        Error err = ERROR_INIT;

        assert_int_equal(simtopo_load(&t, "no-such-topology", &err), -ENOENT);
        assert_non_null(strstr(err.message, "no topology named 'no-such-topology'"));
        assert_int_equal(simtopo_load(&t, "bad name!", &err), -EINVAL);
        assert_int_equal(simtopo_load(&t, "", &err), -EINVAL);
        assert_int_equal(simtopo_load(&t, "/nonexistent/x.json", &err), -ENOENT);
        assert_null(t);

        /* A path works too, and the name defaults to the file name. */
        const char *dir = getenv("IOMMUD_TOPOLOGY_DIR");
        _cleanup_free_ char *path = NULL;
        assert_non_null(dir);
        assert_true(asprintf(&path, "%s/arm.json", dir) > 0);
        assert_int_equal(simtopo_load(&t, path, &err), 0);
        assert_string_equal(t->name, "arm");
        simtopo_free(t);
}

static void test_materialize_layout_and_remove(void **state) {
        _cleanup_(simtopo_freep) SimTopology *st = NULL;
        _cleanup_free_ char *root = tree_tmpdir("simtopo");
        char path[PATH_MAX], target[PATH_MAX];
        Error err = ERROR_INIT;
        struct stat s;
        ssize_t n;

        assert_int_equal(simtopo_load(&st, "workstation", NULL), 0);
        assert_int_equal(simtopo_materialize(st, root, &err), 0);

        /* vfio nodes: regular files, 0666. */
        tree_path(path, sizeof(path), root, "dev/vfio/devices/vfio1");
        assert_int_equal(stat(path, &s), 0);
        assert_true(S_ISREG(s.st_mode));
        assert_int_equal(s.st_mode & 07777, 0666);

        /* Relative links everywhere, resolving inside the tree. */
        static const struct {
                const char *link, *target;
        } links[] = {
                { "sys/kernel/iommu_groups/12/devices/0000:01:00.0",
                  "../../../../devices/pci0000:01/0000:01:00.0" },
                { "sys/devices/pci0000:01/0000:01:00.0/driver", "../../../bus/pci/drivers/vfio-pci" },
                { "sys/devices/pci0000:01/0000:01:00.0/iommu_group", "../../../kernel/iommu_groups/12" },
                { "sys/devices/pci0000:01/0000:01:00.0/iommu", "../../virtual/iommu/dmar0" },
                { "sys/bus/pci/devices/0000:01:00.0", "../../../devices/pci0000:01/0000:01:00.0" },
                { "sys/class/iommu/dmar0", "../../devices/virtual/iommu/dmar0" },
                { "sys/dev/char/511:0", "../../devices/pci0000:01/0000:01:00.0/vfio-dev/vfio0" },
        };
        for (size_t i = 0; i < ELEMENTSOF(links); i++) {
                tree_path(path, sizeof(path), root, links[i].link);
                n = readlink(path, target, sizeof(target) - 1);
                assert_true(n > 0);
                target[n] = '\0';
                assert_string_equal(target, links[i].target);
                assert_int_equal(stat(path, &s), 0); /* not dangling */
        }
        tree_path(path, sizeof(path), root, "sys/devices/virtual/iommu/dmar0/intel-iommu");
        assert_int_equal(stat(path, &s), 0);
        assert_true(S_ISDIR(s.st_mode));
        tree_path(path, sizeof(path), root, "sys/devices/pci0000:01/0000:01:00.0/vfio-dev/vfio0/dev");
        _cleanup_free_ char *dev = read_text(path);
        assert_string_equal(dev, "511:0\n");
        tree_path(path, sizeof(path), root, "sys/kernel/iommu_groups/1/reserved_regions");
        _cleanup_free_ char *rr = read_text(path);
        assert_string_equal(rr, "0x000000007b800000 0x000000007fffffff direct-relaxable\n"
                                "0x00000000fee00000 0x00000000feefffff msi\n");

        /* Not into a non-empty directory. */
        assert_int_equal(simtopo_materialize(st, root, &err), -EEXIST);

        /* A foreign file makes remove stop short of deleting the root. */
        tree_put_file(root, "mine.txt", "x");
        assert_int_equal(simtopo_remove(root), -ENOTEMPTY);
        tree_path(path, sizeof(path), root, "sys");
        assert_int_equal(access(path, F_OK), -1);
        tree_path(path, sizeof(path), root, "mine.txt");
        assert_int_equal(access(path, F_OK), 0);
        /* ...and without the marker nothing is touched at all. */
        assert_int_equal(simtopo_remove(root), -EPERM);
        assert_int_equal(access(path, F_OK), 0);
        tree_rm_rf(root);
}

static void test_remove_does_not_follow_links(void **state) {
        _cleanup_free_ char *outside = tree_tmpdir("outside"), *root = tree_tmpdir("simtopo");
        _cleanup_(simtopo_freep) SimTopology *st = NULL;
        char path[PATH_MAX];

        tree_put_file(outside, "keep/precious", "data");
        assert_int_equal(simtopo_load(&st, "arm", NULL), 0);
        assert_int_equal(simtopo_materialize(st, root, NULL), 0);
        tree_path(path, sizeof(path), outside, "keep");
        tree_put_link(root, "sys/escape", path);
        tree_put_link(root, "sys/devices/escape-rel", "../../../../..");

        assert_int_equal(simtopo_remove(root), 0);
        assert_int_equal(access(root, F_OK), -1);
        tree_path(path, sizeof(path), outside, "keep/precious");
        assert_int_equal(access(path, F_OK), 0);

        /* Refuses a root that is itself a symlink, even to a materialized tree. */
        tree_path(path, sizeof(path), outside, "tree");
        assert_int_equal(simtopo_materialize(st, path, NULL), 0);
        tree_put_link(outside, "link", "tree");
        tree_path(path, sizeof(path), outside, "link");
        assert_int_equal(simtopo_remove(path), -ENOTDIR);
        tree_path(path, sizeof(path), outside, "tree/sys");
        assert_int_equal(access(path, F_OK), 0);
        tree_rm_rf(outside);
}

/* Hotplug in the model: sys/ is rewritten in one swap, dev/ keeps the nodes clients hold. */
static void test_rematerialize_sys(void **state) {
        _cleanup_(simtopo_freep) SimTopology *st = NULL;
        _cleanup_(topology_freep) Topology *topo = NULL;
        _cleanup_free_ char *root = tree_tmpdir("simtopo"), *other = tree_tmpdir("plain");
        char path[PATH_MAX], staging[PATH_MAX], target[PATH_MAX];
        SimDevice *gone = NULL, *gains = NULL;
        const TopoDevice *td;
        unsigned minor = 0;
        struct stat before, after;
        Error err = ERROR_INIT;
        ssize_t n;

        assert_int_equal(simtopo_load(&st, "workstation", NULL), 0);
        assert_int_equal(simtopo_materialize(st, root, &err), 0);
        for (size_t i = 0; i < st->n_devices; i++) {
                SimDevice *d = &st->devices[i];

                if (d->cdev)
                        minor = MAX(minor, d->cdev_minor + 1);
                if (d->cdev && !gone)
                        gone = d;
                else if (!d->cdev && d->driver && !gains)
                        gains = d;
        }
        assert_non_null(gone);
        assert_non_null(gains);
        snprintf(path, sizeof(path), "%s/dev/vfio/devices/vfio%u", root, gone->cdev_minor);
        assert_int_equal(stat(path, &before), 0);

        /* One device goes to a host driver, another to vfio-pci with a fresh minor. */
        free(gone->driver);
        assert_non_null(gone->driver = strdup("nvme"));
        gone->cdev = false;
        free(gains->driver);
        assert_non_null(gains->driver = strdup("vfio-pci"));
        gains->cdev = true;
        gains->cdev_minor = minor;
        assert_int_equal(simtopo_rematerialize_sys(st, root, &err), 0);

        snprintf(path, sizeof(path), "%s/sys/bus/pci/devices/%s/driver", root, gone->name);
        n = readlink(path, target, sizeof(target) - 1);
        assert_true(n > 0);
        target[n] = '\0';
        assert_non_null(strstr(target, "/drivers/nvme"));
        snprintf(path, sizeof(path), "%s/sys/bus/pci/devices/%s/vfio-dev", root, gone->name);
        assert_int_equal(access(path, F_OK), -1);
        /* The node a client may hold is the same file... */
        snprintf(path, sizeof(path), "%s/dev/vfio/devices/vfio%u", root, gone->cdev_minor);
        assert_int_equal(stat(path, &after), 0);
        assert_int_equal(before.st_ino, after.st_ino);
        /* ...and the new cdev has its node. */
        snprintf(path, sizeof(path), "%s/dev/vfio/devices/vfio%u", root, minor);
        assert_int_equal(access(path, F_OK), 0);
        snprintf(staging, sizeof(staging), "%s.new", root);
        assert_int_equal(access(staging, F_OK), -1);

        /* What topology reads is the new host. */
        snprintf(path, sizeof(path), "%s/sys", root);
        assert_int_equal(topology_load_path(&topo, path, &err), 0);
        td = topology_find_device(topo, gone->name);
        assert_non_null(td);
        assert_false(td->has_cdev);
        td = topology_find_device(topo, gains->name);
        assert_non_null(td);
        assert_true(td->has_cdev);

        /* Never a tree it did not make. */
        tree_put_file(other, "sys/keep", "x");
        assert_int_equal(simtopo_rematerialize_sys(st, other, &err), -EPERM);
        tree_path(path, sizeof(path), other, "sys/keep");
        assert_int_equal(access(path, F_OK), 0);

        assert_int_equal(simtopo_remove(root), 0);
        tree_rm_rf(other);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_bundled_golden),
                cmocka_unit_test(test_bundled_contents),
                cmocka_unit_test(test_parse_errors),
                cmocka_unit_test(test_arm_smmu_v2),
                cmocka_unit_test(test_parse_u64_forms),
                cmocka_unit_test(test_scale_sizes),
                cmocka_unit_test(test_scale_round_trip),
                cmocka_unit_test(test_load_lookup_errors),
                cmocka_unit_test(test_materialize_layout_and_remove),
                cmocka_unit_test(test_remove_does_not_follow_links),
                cmocka_unit_test(test_rematerialize_sys),
        };

        return cmocka_run_group_tests_name("simtopo", tests, NULL, NULL);
}
