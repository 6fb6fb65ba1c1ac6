/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Reading a simulated topology's JSON description (format in
 * tests/data/topologies/README.md) in two steps: the tables below decode the
 * document into descriptions (every key known, every value of its type and
 * range, errors naming the JSON path), then simtopo_build() checks what the
 * tables cannot (names, references, duplicates, defaults that depend on other
 * keys) and makes the SimTopology.
 */

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "assert-util.h"
#include "backend-names.h"
#include "backend.h"
#include "json-dispatch.h"
#include "json-util.h"
#include "simtopo-internal.h"
#include "simtopo.h"

/* ---- what the document says ---- */

typedef struct IommuDesc {
        SimIommu m;
        bool has_hw_info_type;
} IommuDesc;

typedef struct DeviceDesc {
        SimDevice d;
        bool has_vendor, has_device, has_class, has_numa_node, has_cdev;
} DeviceDesc;

typedef struct GroupDesc {
        uint32_t id;
        char *type;
        const char *iommu;              /* borrowed from the document */
        ReservedRegion *regions;
        size_t n_regions;
        DeviceDesc *devices;
        size_t n_devices;
} GroupDesc;

typedef struct TopologyDesc {
        char *name;
        char *description;
        uint32_t cdev_major;
        IommuDesc *iommus;
        size_t n_iommus;
        GroupDesc *groups;
        size_t n_groups;
} TopologyDesc;

/* ---- the tables ---- */

static int page_size_parse(const char *s, uint64_t *ret) {
        char *end;
        uint64_t v;

        errno = 0;
        v = strtoull(s, &end, 10);
        if (errno || end == s || !isdigit((unsigned char)*s))
                return -EINVAL;
        if (streq(end, "K"))
                v <<= 10;
        else if (streq(end, "M"))
                v <<= 20;
        else if (streq(end, "G"))
                v <<= 30;
        else if (*end)
                return -EINVAL;
        if (v == 0 || (v & (v - 1)) != 0)
                return -EINVAL;
        *ret = v;
        return 0;
}

/* One element of "page_sizes": its size OR-ed into the bitmap. */
static int page_size_add(const JsonDispatchValue *v, void *target, const JsonDispatchPath *path,
                         Error *err) {
        char p[JSON_DISPATCH_PATH_MAX];
        uint64_t size;

        if (v->kind != JSON_DISPATCH_KIND_STRING || page_size_parse(v->text, &size) < 0)
                return error_set(err, -EINVAL,
                                 "%s: expected a power-of-two size such as \"4K\", \"2M\" or \"1G\"",
                                 json_dispatch_path_format(path, p, sizeof(p)));
        *(uint64_t *)target |= size;
        return 0;
}

/* The names come from the capability table (backend-names.h), so that a capability added
 * there is one a description may name. */
static int capability_unknown(const char *path, Error *err) {
        const char *names[16];
        char list[256] = "";
        int n;

        n = backend_hw_caps_to_strv(UINT64_MAX, names, ELEMENTSOF(names));
        for (int i = 0; i < n; i++)
                snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s\"%s\"",
                         i > 0 ? ", " : "", names[i]);
        return error_set(err, -EINVAL, "%s: expected one of %s", path, list);
}

/* One element of "capabilities": its bit OR-ed into the mask. */
static int capability_add(const JsonDispatchValue *v, void *target,
                          const JsonDispatchPath *path, Error *err) {
        char p[JSON_DISPATCH_PATH_MAX];
        uint64_t bit;

        if (v->kind != JSON_DISPATCH_KIND_STRING || backend_hw_cap_from_string(v->text, &bit) < 0)
                return capability_unknown(json_dispatch_path_format(path, p, sizeof(p)), err);
        *(uint64_t *)target |= bit;
        return 0;
}

static const JsonDispatchField page_size_element = { .type = JSON_DISPATCH_CUSTOM,
                                                     .callback = page_size_add };
static const JsonDispatchField capability_element = { .type = JSON_DISPATCH_CUSTOM,
                                                      .callback = capability_add };

#define HEX JSON_DISPATCH_HEX
#define REQUIRED_HEX (JSON_DISPATCH_REQUIRED | JSON_DISPATCH_HEX)

static const JsonDispatchField iommu_fields[] = {
        { "name", JSON_DISPATCH_STRING, JSON_DISPATCH_REQUIRED | JSON_DISPATCH_COPY,
          offsetof(IommuDesc, m.name) },
        { "kind", JSON_DISPATCH_STRING, JSON_DISPATCH_REQUIRED | JSON_DISPATCH_COPY,
          offsetof(IommuDesc, m.kind) },
        { "hw_info_type", JSON_DISPATCH_UINT32, HEX, offsetof(IommuDesc, m.hw_info_type),
          .presence = JSON_DISPATCH_PRESENCE(IommuDesc, has_hw_info_type) },
        { "aperture_start", JSON_DISPATCH_UINT64, HEX, offsetof(IommuDesc, m.aperture_start) },
        { "aperture_last", JSON_DISPATCH_UINT64, REQUIRED_HEX, offsetof(IommuDesc, m.aperture_last) },
        /* A list of sizes, or the bitmap itself. */
        { "page_sizes", JSON_DISPATCH_ARRAY, 0, offsetof(IommuDesc, m.page_sizes),
          .element = &page_size_element },
        { "page_sizes", JSON_DISPATCH_UINT64, REQUIRED_HEX, offsetof(IommuDesc, m.page_sizes) },
        { "pasid_bits", JSON_DISPATCH_UINT8, HEX, offsetof(IommuDesc, m.pasid_bits), .max = 20 },
        /* A list of names, or the IOMMU_HW_CAP_* bits. */
        { "capabilities", JSON_DISPATCH_ARRAY, 0, offsetof(IommuDesc, m.capabilities),
          .element = &capability_element },
        { "capabilities", JSON_DISPATCH_UINT64, HEX, offsetof(IommuDesc, m.capabilities) },
        { "nesting", JSON_DISPATCH_BOOL, 0, offsetof(IommuDesc, m.nesting) },
        { "dirty_tracking", JSON_DISPATCH_BOOL, 0, offsetof(IommuDesc, m.dirty_tracking) },
        { "fault_queue", JSON_DISPATCH_BOOL, 0, offsetof(IommuDesc, m.fault_queue) },
        {},
};

static const JsonDispatchField region_fields[] = {
        { "start", JSON_DISPATCH_UINT64, REQUIRED_HEX, offsetof(ReservedRegion, start) },
        { "last", JSON_DISPATCH_UINT64, REQUIRED_HEX, offsetof(ReservedRegion, last) },
        { "type", JSON_DISPATCH_STRING, JSON_DISPATCH_REQUIRED | JSON_DISPATCH_COPY,
          offsetof(ReservedRegion, type_name) },
        {},
};

static const JsonDispatchField device_fields[] = {
        { "name", JSON_DISPATCH_STRING, JSON_DISPATCH_REQUIRED | JSON_DISPATCH_COPY,
          offsetof(DeviceDesc, d.name) },
        { "label", JSON_DISPATCH_STRING, JSON_DISPATCH_COPY, offsetof(DeviceDesc, d.label) },
        /* Required for PCI devices only: platform devices have no PCI IDs. */
        { "vendor", JSON_DISPATCH_UINT16, HEX, offsetof(DeviceDesc, d.vendor),
          .presence = JSON_DISPATCH_PRESENCE(DeviceDesc, has_vendor) },
        { "device", JSON_DISPATCH_UINT16, HEX, offsetof(DeviceDesc, d.device),
          .presence = JSON_DISPATCH_PRESENCE(DeviceDesc, has_device) },
        { "subsystem_vendor", JSON_DISPATCH_UINT16, HEX, offsetof(DeviceDesc, d.subsystem_vendor) },
        { "subsystem_device", JSON_DISPATCH_UINT16, HEX, offsetof(DeviceDesc, d.subsystem_device) },
        { "class", JSON_DISPATCH_UINT32, HEX, offsetof(DeviceDesc, d.class), .max = 0xffffff,
          .presence = JSON_DISPATCH_PRESENCE(DeviceDesc, has_class) },
        { "driver", JSON_DISPATCH_STRING, JSON_DISPATCH_NULLABLE | JSON_DISPATCH_COPY,
          offsetof(DeviceDesc, d.driver) },
        { "numa_node", JSON_DISPATCH_INT, 0, offsetof(DeviceDesc, d.numa_node), .min = -1,
          .max = 1023, .presence = JSON_DISPATCH_PRESENCE(DeviceDesc, has_numa_node) },
        { "cdev", JSON_DISPATCH_BOOL, 0, offsetof(DeviceDesc, d.cdev),
          .presence = JSON_DISPATCH_PRESENCE(DeviceDesc, has_cdev) },
        { "pasid_bits", JSON_DISPATCH_UINT8, HEX, offsetof(DeviceDesc, d.pasid_bits), .max = 20 },
        {},
};

static const JsonDispatchField region_element = { .type = JSON_DISPATCH_OBJECT,
                                                  .fields = region_fields };
static const JsonDispatchField device_element = { .type = JSON_DISPATCH_OBJECT,
                                                  .fields = device_fields };

static const JsonDispatchField group_fields[] = {
        { "id", JSON_DISPATCH_UINT32, REQUIRED_HEX, offsetof(GroupDesc, id) },
        { "type", JSON_DISPATCH_STRING, JSON_DISPATCH_COPY, offsetof(GroupDesc, type) },
        { "iommu", JSON_DISPATCH_STRING, 0, offsetof(GroupDesc, iommu) },
        { "reserved_regions", JSON_DISPATCH_ARRAY, 0, offsetof(GroupDesc, regions),
          .element = &region_element, .element_size = sizeof(ReservedRegion),
          .count_offset = offsetof(GroupDesc, n_regions) },
        { "devices", JSON_DISPATCH_ARRAY, JSON_DISPATCH_REQUIRED, offsetof(GroupDesc, devices),
          .element = &device_element, .element_size = sizeof(DeviceDesc),
          .count_offset = offsetof(GroupDesc, n_devices) },
        {},
};

static const JsonDispatchField iommu_element = { .type = JSON_DISPATCH_OBJECT,
                                                 .fields = iommu_fields };
static const JsonDispatchField group_element = { .type = JSON_DISPATCH_OBJECT,
                                                 .fields = group_fields };

static const JsonDispatchField topology_fields[] = {
        { "name", JSON_DISPATCH_STRING, JSON_DISPATCH_COPY, offsetof(TopologyDesc, name) },
        { "description", JSON_DISPATCH_STRING, JSON_DISPATCH_COPY,
          offsetof(TopologyDesc, description) },
        /* Linux majors are 12 bits. */
        { "cdev_major", JSON_DISPATCH_UINT32, HEX, offsetof(TopologyDesc, cdev_major),
          .max = 4095 },
        { "iommus", JSON_DISPATCH_ARRAY, JSON_DISPATCH_REQUIRED, offsetof(TopologyDesc, iommus),
          .element = &iommu_element, .element_size = sizeof(IommuDesc),
          .count_offset = offsetof(TopologyDesc, n_iommus) },
        { "groups", JSON_DISPATCH_ARRAY, JSON_DISPATCH_REQUIRED, offsetof(TopologyDesc, groups),
          .element = &group_element, .element_size = sizeof(GroupDesc),
          .count_offset = offsetof(TopologyDesc, n_groups) },
        {},
};

/* ---- what the tables cannot check ---- */

/* "PATH.ARRAY[i]", for messages. */
static const char *element_path(char *buf, size_t size, const char *path, const char *array,
                                size_t i) {
        const JsonDispatchPath root = { .name = path }, member = { .parent = &root, .name = array };

        return json_dispatch_path_format(&(JsonDispatchPath){ .parent = &member, .index = i },
                                         buf, size);
}

static bool one_word(const char *s) {
        return s[0] && !strpbrk(s, " \t\n");
}

static int check_iommu(IommuDesc *desc, const char *path, Error *err) {
        SimIommu *m = &desc->m;

        if (!name_is_valid(m->name))
                return error_set(err, -EINVAL, "%s.name: '%s' is not a valid IOMMU name", path,
                                 m->name);
        if (!streq(m->kind, "intel") && !streq(m->kind, "amd") && !streq(m->kind, "arm-smmu-v3") &&
            !streq(m->kind, "arm-smmu"))
                return error_set(err, -EINVAL,
                                 "%s.kind: expected \"intel\", \"amd\", \"arm-smmu-v3\" or "
                                 "\"arm-smmu\", got '%s'",
                                 path, m->kind);
        /* sysfs shows no marker directory for an Arm SMMU: topology_load() goes by the name. */
        if (streq(m->kind, "arm-smmu-v3") && !strneq(m->name, "smmu3.", 6))
                return error_set(err, -EINVAL, "%s.name: an arm-smmu-v3 instance is named "
                                 "\"smmu3.<address>\", got '%s'", path, m->name);
        if (streq(m->kind, "arm-smmu") && !strneq(m->name, "smmu.", 5))
                return error_set(err, -EINVAL, "%s.name: an arm-smmu instance is named "
                                 "\"smmu.<address>\", got '%s'", path, m->name);
        /* IOMMU_HW_INFO_TYPE_INTEL_VTD = 1, IOMMU_HW_INFO_TYPE_ARM_SMMUV3 = 2 */
        if (!desc->has_hw_info_type)
                m->hw_info_type = streq(m->kind, "intel") ? 1 : streq(m->kind, "arm-smmu-v3") ? 2 : 0;
        if (m->aperture_last < m->aperture_start)
                return error_set(err, -EINVAL,
                                 "%s.aperture_last: 0x%" PRIx64 " is below aperture_start 0x%" PRIx64,
                                 path, m->aperture_last, m->aperture_start);
        if (m->page_sizes == 0)
                return error_set(err, -EINVAL, "%s.page_sizes: at least one page size is needed",
                                 path);
        /* Dirty tracking is reported to clients through the capability bit. */
        if (m->dirty_tracking)
                m->capabilities |= BACKEND_HW_CAP_DIRTY_TRACKING;
        return 0;
}

static int build_iommus(SimTopology *t, TopologyDesc *desc, Error *err) {
        char p[JSON_DISPATCH_PATH_MAX];
        int r;

        if (desc->n_iommus == 0)
                return error_set(err, -EINVAL, "iommus: at least one IOMMU is needed");
        t->iommus = calloc(desc->n_iommus, sizeof(*t->iommus));
        if (!t->iommus)
                return error_set(err, -ENOMEM, "out of memory");
        for (size_t i = 0; i < desc->n_iommus; i++) {
                element_path(p, sizeof(p), "", "iommus", i);
                r = check_iommu(&desc->iommus[i], p, err);
                if (r < 0)
                        return r;
                for (size_t k = 0; k < i; k++)
                        if (streq(t->iommus[k].name, desc->iommus[i].m.name))
                                return error_set(err, -EINVAL, "%s.name: IOMMU '%s' is listed twice",
                                                 p, desc->iommus[i].m.name);
                /* The strings move to the topology; the description keeps none. */
                t->iommus[t->n_iommus++] = desc->iommus[i].m;
                desc->iommus[i].m = (SimIommu){};
        }
        return 0;
}

static int check_device(DeviceDesc *desc, const char *path, Error *err) {
        SimDevice *d = &desc->d;

        if (!name_is_valid(d->name))
                return error_set(err, -EINVAL, "%s.name: '%s' is not a valid device name", path,
                                 d->name);
        /* Platform devices have no PCI IDs. */
        if (name_is_pci_bdf(d->name)) {
                if (!desc->has_vendor)
                        return error_set(err, -EINVAL, "%s.vendor: missing", path);
                if (!desc->has_device)
                        return error_set(err, -EINVAL, "%s.device: missing", path);
                if (!desc->has_class)
                        return error_set(err, -EINVAL, "%s.class: missing", path);
        }
        if (d->driver && !name_is_valid(d->driver))
                return error_set(err, -EINVAL, "%s.driver: '%s' is not a valid driver name", path,
                                 d->driver);
        if (!desc->has_numa_node)
                d->numa_node = -1;
        /* A device bound to vfio-pci has a cdev unless the description says otherwise. */
        if (!desc->has_cdev)
                d->cdev = d->driver &&
                          (streq(d->driver, "vfio-pci") || streq(d->driver, "vfio-platform"));
        return 0;
}

static int region_cmp(const void *a, const void *b) {
        const ReservedRegion *x = a, *y = b;

        if (x->start != y->start)
                return x->start < y->start ? -1 : 1;
        return x->last < y->last ? -1 : x->last > y->last;
}

/* The group's reserved regions move to g, checked and sorted. */
static int build_regions(SimGroup *g, GroupDesc *desc, const char *path, Error *err) {
        for (size_t i = 0; i < desc->n_regions; i++) {
                ReservedRegion *rr = &desc->regions[i];

                if (rr->last < rr->start)
                        return error_set(err, -EINVAL, "%s.reserved_regions[%zu].last: 0x%" PRIx64
                                         " is below start 0x%" PRIx64, path, i, rr->last, rr->start);
                /* Any single word is accepted, so that unknown kernel types can be simulated. */
                if (!one_word(rr->type_name))
                        return error_set(err, -EINVAL, "%s.reserved_regions[%zu].type: expected "
                                         "one word, got '%s'", path, i, rr->type_name);
                rr->type = region_type_from_string(rr->type_name);
        }
        g->regions = TAKE_PTR(desc->regions);
        g->n_regions = desc->n_regions;
        desc->n_regions = 0;
        if (g->n_regions > 1)
                qsort(g->regions, g->n_regions, sizeof(*g->regions), region_cmp);
        return 0;
}

/* The group's devices move to the topology's list; paths[i] names device i for messages. */
static int build_devices(SimTopology *t, SimGroup *g, GroupDesc *desc, const char *path,
                         char **paths, Error *err) {
        char p[JSON_DISPATCH_PATH_MAX];
        int r;

        if (desc->n_devices == 0)
                return error_set(err, -EINVAL, "%s.devices: a group needs at least one device",
                                 path);
        g->device_indexes = calloc(desc->n_devices, sizeof(*g->device_indexes));
        if (!g->device_indexes)
                return error_set(err, -ENOMEM, "out of memory");
        for (size_t i = 0; i < desc->n_devices; i++) {
                element_path(p, sizeof(p), path, "devices", i);
                r = check_device(&desc->devices[i], p, err);
                if (r < 0)
                        return r;
                paths[t->n_devices] = strdup(p);
                if (!paths[t->n_devices])
                        return error_set(err, -ENOMEM, "out of memory");
                desc->devices[i].d.group_index = (size_t)(g - t->groups);
                g->device_indexes[g->n_devices++] = t->n_devices;
                t->devices[t->n_devices++] = desc->devices[i].d;
                desc->devices[i].d = (SimDevice){};
        }
        return 0;
}

static int build_group(SimTopology *t, SimGroup *g, GroupDesc *desc, const char *path,
                       char **paths, Error *err) {
        int r;

        g->id = desc->id;
        for (SimGroup *other = t->groups; other < g; other++)
                if (other->id == g->id)
                        return error_set(err, -EINVAL, "%s.id: group %u is listed twice", path,
                                         g->id);
        if (desc->type && !one_word(desc->type))
                return error_set(err, -EINVAL, "%s.type: expected one word", path);
        g->type = desc->type ? TAKE_PTR(desc->type) : strdup("DMA");
        if (!g->type)
                return error_set(err, -ENOMEM, "out of memory");
        if (desc->iommu) {
                size_t k = 0;

                while (k < t->n_iommus && !streq(t->iommus[k].name, desc->iommu))
                        k++;
                if (k == t->n_iommus)
                        return error_set(err, -EINVAL, "%s.iommu: no IOMMU named '%s'", path,
                                         desc->iommu);
                g->iommu_index = k;
        } else if (t->n_iommus != 1)
                return error_set(err, -EINVAL, "%s.iommu: missing (there is more than one IOMMU)",
                                 path);
        r = build_regions(g, desc, path, err);
        if (r < 0)
                return r;
        return build_devices(t, g, desc, path, paths, err);
}

static void paths_free(char **paths, size_t n) {
        if (!paths)
                return;
        for (size_t i = 0; i < n; i++)
                free(paths[i]);
        free(paths);
}

static int build_groups(SimTopology *t, TopologyDesc *desc, Error *err) {
        char p[JSON_DISPATCH_PATH_MAX], **paths = NULL;
        size_t n_devices = 0;
        int r = 0;

        for (size_t i = 0; i < desc->n_groups; i++)
                n_devices += desc->groups[i].n_devices;
        if (desc->n_groups > 0 && !(t->groups = calloc(desc->n_groups, sizeof(*t->groups))))
                return error_set(err, -ENOMEM, "out of memory");
        if (n_devices > 0 && (!(t->devices = calloc(n_devices, sizeof(*t->devices))) ||
                              !(paths = calloc(n_devices, sizeof(*paths)))))
                return error_set(err, -ENOMEM, "out of memory");
        for (size_t i = 0; i < desc->n_groups && r >= 0; i++) {
                element_path(p, sizeof(p), "", "groups", i);
                t->n_groups++;
                r = build_group(t, &t->groups[i], &desc->groups[i], p, paths, err);
        }
        /* vfio minors are handed out in the order devices appear, as on a booting host. */
        for (size_t i = 0, minor = 0; r >= 0 && i < t->n_devices; i++)
                if (t->devices[i].cdev)
                        t->devices[i].cdev_minor = (unsigned)minor++;
        if (r >= 0)
                r = simtopo_finish(t, paths, err);
        paths_free(paths, n_devices);
        return r;
}

static int simtopo_build(SimTopology *t, TopologyDesc *desc, Error *err) {
        int r;

        t->name = TAKE_PTR(desc->name);
        t->description = TAKE_PTR(desc->description);
        t->cdev_major = desc->cdev_major;
        r = build_iommus(t, desc, err);
        if (r < 0)
                return r;
        return build_groups(t, desc, err);
}

/* ---- the document ---- */

DEFINE_TRIVIAL_CLEANUP_FUNC(json_tokener *, json_tokener_free);

/* The JSON document in text, or a message that says where it is not JSON. */
static int parse_json(const char *text, size_t len, json_object **ret, Error *err) {
        _cleanup_(json_tokener_freep) json_tokener *tok = json_tokener_new();
        enum json_tokener_error jerr;
        json_object *root;
        size_t end;

        if (!tok)
                return error_set(err, -ENOMEM, "out of memory");
        root = json_tokener_parse_ex(tok, text, (int)len);
        jerr = json_tokener_get_error(tok);
        if (jerr == json_tokener_continue)
                return error_set(err, -EINVAL, "JSON ends before the document is complete");
        if (!root || jerr != json_tokener_success) {
                size_t off = json_tokener_get_parse_end(tok), line = 1, col = 1;

                for (size_t i = 0; i < off && i < len; i++) {
                        if (text[i] == '\n')
                                line++, col = 1;
                        else
                                col++;
                }
                json_object_put(root);
                return error_set(err, -EINVAL, "JSON syntax error at line %zu column %zu: %s",
                                 line, col, json_tokener_error_desc(jerr));
        }
        for (end = json_tokener_get_parse_end(tok); end < len; end++)
                if (!isspace((unsigned char)text[end])) {
                        json_object_put(root);
                        return error_set(err, -EINVAL, "trailing data after the JSON document");
                }
        if (json_util_fix_big_integers(root, text, len) < 0) {
                json_object_put(root);
                return error_set(err, -ENOMEM, "out of memory");
        }
        *ret = root;
        return 0;
}

int simtopo_parse(SimTopology **ret, const char *json_text, size_t len, Error *err) {
        _cleanup_(simtopo_freep) SimTopology *t = NULL;
        TopologyDesc desc = { .cdev_major = SIMTOPO_DEFAULT_CDEV_MAJOR };
        json_object *root = NULL;
        int r;

        assert_return(ret && json_text, -EINVAL);

        if (len > INT32_MAX)
                return error_set(err, -EFBIG, "topology description is too large");
        r = parse_json(json_text, len, &root, err);
        if (r < 0)
                return r;
        t = calloc(1, sizeof(*t));
        if (!t)
                r = error_set(err, -ENOMEM, "out of memory");
        else
                r = json_dispatch(root, topology_fields, &desc, "", NULL, err);
        if (r >= 0)
                r = simtopo_build(t, &desc, err);
        json_dispatch_clear(topology_fields, &desc);
        json_object_put(root);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(t);
        return 0;
}
