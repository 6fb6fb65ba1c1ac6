/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <inttypes.h>
#include <stdio.h>

#include "assert-util.h"
#include "topology-json.h"

/*
 * JSON layout (keys always in this order; absent values are null, never
 * missing):
 *
 *   {"groups": [{"id": 7, "type": "DMA", "broken": false,
 *                "devices": ["0000:00:02.0", ...],
 *                "reserved_regions": [{"start": "0x00000000fee00000",
 *                                      "last": "0x00000000feefffff",
 *                                      "type": "msi"}, ...]}, ...],
 *    "devices": [<topo_device_to_json>, ...],
 *    "iommus": [{"name": "dmar0", "kind": "intel", "devices": ["0000:00:02.0", ...]}, ...],
 *    "problems": [{"path": "kernel/iommu_groups/7/type", "line": 1, "message": "..."}, ...]}
 *
 * Arrays are sorted as in Topology (groups by id, devices and IOMMUs by name,
 * problems in discovery order).  IDs and addresses are lower-case hex
 * strings with a fixed width: "0x8086" (16-bit IDs), "0x010802" (class),
 * "0x00000000fee00000" (addresses), so output diffs cleanly and u64 values
 * survive JSON readers that use doubles.  "type" of a region is the word as
 * read, so unknown types show up verbatim.
 */

static json_object *json_hex(uint64_t v, int width) {
        char buf[32];

        snprintf(buf, sizeof(buf), "0x%0*" PRIx64, width, v);
        return json_object_new_string(buf);
}

static json_object *json_string_or_null(const char *s) {
        return s ? json_object_new_string(s) : NULL;
}

/* json_object_object_add() takes the reference even on failure; track allocation failure. */
static bool json_add(json_object *o, const char *key, json_object *v, bool may_be_null) {
        if (!v && !may_be_null)
                return false;
        return json_object_object_add(o, key, v) == 0;
}

int topo_device_to_json(const TopoDevice *d, json_object **ret) {
        json_object *o, *cdev = NULL;
        bool ok;

        assert_return(d && ret, -EINVAL);
        o = json_object_new_object();
        if (!o)
                return -ENOMEM;
        if (d->has_cdev) {
                cdev = json_object_new_object();
                if (!cdev || !json_add(cdev, "name", json_string_or_null(d->cdev_name), false) ||
                    !json_add(cdev, "major", json_object_new_int64(d->cdev_major), false) ||
                    !json_add(cdev, "minor", json_object_new_int64(d->cdev_minor), false)) {
                        json_object_put(cdev);
                        json_object_put(o);
                        return -ENOMEM;
                }
        }
        ok = json_add(o, "name", json_object_new_string(d->name), false) &&
             json_add(o, "pci", json_object_new_boolean(d->is_pci), false) &&
             json_add(o, "vendor", json_hex(d->vendor, 4), false) &&
             json_add(o, "device", json_hex(d->device, 4), false) &&
             json_add(o, "subsystem_vendor", json_hex(d->subsystem_vendor, 4), false) &&
             json_add(o, "subsystem_device", json_hex(d->subsystem_device, 4), false) &&
             json_add(o, "class", json_hex(d->class, 6), false) &&
             json_add(o, "driver", json_string_or_null(d->driver), true) &&
             json_add(o, "numa_node", json_object_new_int(d->numa_node), false) &&
             json_add(o, "cdev", cdev, true) &&
             json_add(o, "group", d->group ? json_object_new_int64(d->group->id) : NULL, true) &&
             json_add(o, "iommu", d->iommu ? json_object_new_string(d->iommu->name) : NULL, true);
        if (!ok) {
                json_object_put(o);
                return -ENOMEM;
        }
        *ret = o;
        return 0;
}

static json_object *json_device_names(TopoDevice *const *devices, size_t n) {
        json_object *a = json_object_new_array_ext((int)n);

        if (!a)
                return NULL;
        for (size_t i = 0; i < n; i++) {
                json_object *s = json_object_new_string(devices[i]->name);
                if (!s || json_object_array_add(a, s) < 0) {
                        json_object_put(s);
                        json_object_put(a);
                        return NULL;
                }
        }
        return a;
}

static int group_to_json(const TopoGroup *g, json_object **ret) {
        json_object *o = json_object_new_object(), *regions = json_object_new_array();
        bool ok;

        if (!o || !regions)
                goto oom;
        for (size_t i = 0; i < g->n_regions; i++) {
                json_object *r = json_object_new_object();
                if (!r || json_object_array_add(regions, r) < 0) {
                        json_object_put(r);
                        goto oom;
                }
                if (!json_add(r, "start", json_hex(g->regions[i].start, 16), false) ||
                    !json_add(r, "last", json_hex(g->regions[i].last, 16), false) ||
                    !json_add(r, "type", json_object_new_string(g->regions[i].type_name), false))
                        goto oom;
        }
        ok = json_add(o, "id", json_object_new_int64(g->id), false) &&
             json_add(o, "type", json_string_or_null(g->type), true) &&
             json_add(o, "broken", json_object_new_boolean(g->broken), false) &&
             json_add(o, "devices", json_device_names(g->devices, g->n_devices), false) &&
             json_add(o, "reserved_regions", TAKE_PTR(regions), false);
        if (!ok)
                goto oom;
        *ret = o;
        return 0;
oom:
        json_object_put(regions);
        json_object_put(o);
        return -ENOMEM;
}

static int iommu_to_json(const IommuInstance *i, json_object **ret) {
        json_object *o = json_object_new_object();

        if (!o || !json_add(o, "name", json_object_new_string(i->name), false) ||
            !json_add(o, "kind", json_object_new_string(i->kind), false) ||
            !json_add(o, "devices", json_device_names(i->devices, i->n_devices), false)) {
                json_object_put(o);
                return -ENOMEM;
        }
        *ret = o;
        return 0;
}

static int problem_to_json(const TopologyProblem *p, json_object **ret) {
        json_object *o = json_object_new_object();

        if (!o || !json_add(o, "path", json_object_new_string(p->path), false) ||
            !json_add(o, "line", json_object_new_int64(p->line), false) ||
            !json_add(o, "message", json_object_new_string(p->message), false)) {
                json_object_put(o);
                return -ENOMEM;
        }
        *ret = o;
        return 0;
}

int topology_to_json(const Topology *t, json_object **ret) {
        json_object *o, *a;
        int r;

        assert_return(t && ret, -EINVAL);
        o = json_object_new_object();
        if (!o)
                return -ENOMEM;

#define ADD_ARRAY(key, n, conv, elem)                                                              \
        do {                                                                                       \
                a = json_object_new_array_ext((int)(n));                                           \
                if (!a || json_object_object_add(o, key, a) < 0) {                                 \
                        json_object_put(a);                                                        \
                        goto oom;                                                                  \
                }                                                                                  \
                for (size_t i = 0; i < (n); i++) {                                                 \
                        json_object *e;                                                            \
                        r = conv(elem, &e);                                                        \
                        if (r < 0)                                                                 \
                                goto oom;                                                          \
                        if (json_object_array_add(a, e) < 0) {                                     \
                                json_object_put(e);                                                \
                                goto oom;                                                          \
                        }                                                                          \
                }                                                                                  \
        } while (0)

        ADD_ARRAY("groups", t->n_groups, group_to_json, t->groups[i]);
        ADD_ARRAY("devices", t->n_devices, topo_device_to_json, t->devices[i]);
        ADD_ARRAY("iommus", t->n_iommus, iommu_to_json, t->iommus[i]);
        ADD_ARRAY("problems", t->n_problems, problem_to_json, &t->problems[i]);
#undef ADD_ARRAY

        *ret = o;
        return 0;
oom:
        json_object_put(o);
        return -ENOMEM;
}
