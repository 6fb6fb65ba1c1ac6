/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Reading a simulated topology's JSON description (format in
 * tests/data/topologies/README.md).
 */

#include <ctype.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "backend.h"
#include "json-util.h"
#include "simtopo-internal.h"
#include "simtopo.h"

#define JSON_PATH_MAX 256

/* JSON paths are only used in messages: a path that does not fit is cut short. */
static void jpath(char *buf, size_t size, const char *fmt, ...) _printf_(3, 4);
static void jpath(char *buf, size_t size, const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        (void)vsnprintf(buf, size, fmt, ap);
        va_end(ap);
}

static int json_expect(json_object *o, json_type type, const char *path, const char *what,
                       Error *err) {
        if (!json_object_is_type(o, type))
                return error_set(err, -EINVAL, "%s: expected %s", path, what);
        return 0;
}

/* A JSON integer, or a "0x..." string so that 64-bit IOVAs survive double-based readers. */
static int json_get_u64(json_object *o, const char *path, uint64_t max, uint64_t *ret, Error *err) {
        uint64_t v;

        if (json_object_is_type(o, json_type_int)) {
                if (json_object_get_int64(o) < 0)
                        return error_set(err, -EINVAL, "%s: %" PRId64 " is negative", path,
                                         json_object_get_int64(o));
                v = json_object_get_uint64(o);
        } else if (json_object_is_type(o, json_type_string)) {
                const char *s = json_object_get_string(o);
                char *end;

                if (!strneq(s, "0x", 2) || !isxdigit((unsigned char)s[2]) || strlen(s) > 18)
                        return error_set(err, -EINVAL,
                                         "%s: expected a hex string or integer, got '%s'", path, s);
                errno = 0;
                v = strtoull(s + 2, &end, 16);
                if (errno || *end)
                        return error_set(err, -EINVAL,
                                         "%s: expected a hex string or integer, got '%s'", path, s);
        } else
                return error_set(err, -EINVAL, "%s: expected a hex string or integer", path);
        if (v > max)
                return error_set(err, -ERANGE, "%s: 0x%" PRIx64 " is above the maximum 0x%" PRIx64,
                                 path, v, max);
        *ret = v;
        return 0;
}

static int json_get_string(json_object *o, const char *path, char **ret, Error *err) {
        int r = json_expect(o, json_type_string, path, "a string", err);
        if (r < 0)
                return r;
        char *s = strdup(json_object_get_string(o));
        if (!s)
                return error_set(err, -ENOMEM, "out of memory");
        free(*ret);
        *ret = s;
        return 0;
}

static int json_get_bool(json_object *o, const char *path, bool *ret, Error *err) {
        int r = json_expect(o, json_type_boolean, path, "true or false", err);
        if (r < 0)
                return r;
        *ret = json_object_get_boolean(o);
        return 0;
}

/* Rejects keys not in allowed[] so a misspelt key does not silently fall back to a default.
 * path is "" for the top level. */
static int json_expect_object(json_object *o, const char *path, const char *const *allowed,
                              Error *err) {
        int r;

        r = json_expect(o, json_type_object, path[0] ? path : "(top level)", "an object", err);
        if (r < 0)
                return r;
        json_object_object_foreach(o, key, val) {
                bool ok = false;
                (void)val;
                for (size_t i = 0; allowed[i]; i++)
                        if (streq(allowed[i], key))
                                ok = true;
                if (!ok)
                        return error_set(err, -EINVAL, "%s%s%s: unknown key", path,
                                         path[0] ? "." : "", key);
        }
        return 0;
}

static json_object *json_get(json_object *o, const char *key) {
        json_object *v;
        return json_object_object_get_ex(o, key, &v) ? v : NULL;
}

/* Sets v to member key of o (NULL when absent) and p to its path for messages; the parse
 * functions below all name their object o, its path path and these two p and v. */
#define FIELD(key) (jpath(p, sizeof(p), "%s.%s", path, key), v = json_get(o, key))

/* The required "name" of an IOMMU or device, which becomes a directory entry. */
static int parse_name(json_object *o, const char *path, const char *what, char **ret,
                      Error *err) {
        char p[JSON_PATH_MAX];
        json_object *v;
        int r;

        if (!FIELD("name"))
                return error_set(err, -EINVAL, "%s: missing", p);
        r = json_get_string(v, p, ret, err);
        if (r < 0)
                return r;
        if (!name_is_valid(*ret))
                return error_set(err, -EINVAL, "%s: '%s' is not a valid %s name", p, *ret, what);
        return 0;
}

static int page_size_parse(const char *s, uint64_t *ret) {
        char *end;
        uint64_t v;

        errno = 0;
        v = strtoull(s, &end, 10);
        if (errno || end == s)
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

static int parse_page_sizes(json_object *o, const char *path, uint64_t *ret, Error *err) {
        char p[JSON_PATH_MAX];
        uint64_t bitmap = 0;
        int r;

        if (!json_object_is_type(o, json_type_array)) {
                r = json_get_u64(o, path, UINT64_MAX, &bitmap, err);
                if (r < 0)
                        return r;
        } else
                for (size_t i = 0; i < json_object_array_length(o); i++) {
                        json_object *e = json_object_array_get_idx(o, i);
                        uint64_t size;

                        jpath(p, sizeof(p), "%s[%zu]", path, i);
                        if (!json_object_is_type(e, json_type_string) ||
                            page_size_parse(json_object_get_string(e), &size) < 0)
                                return error_set(err, -EINVAL,
                                                 "%s: expected a power-of-two size such as "
                                                 "\"4K\", \"2M\" or \"1G\"", p);
                        bitmap |= size;
                }
        if (bitmap == 0)
                return error_set(err, -EINVAL, "%s: at least one page size is needed", path);
        *ret = bitmap;
        return 0;
}

static const struct {
        const char *name;
        uint64_t bit;
} capability_names[] = {
        { "dirty-tracking", BACKEND_HW_CAP_DIRTY_TRACKING },
        { "pasid-exec", BACKEND_HW_CAP_PCI_PASID_EXEC },
        { "pasid-priv", BACKEND_HW_CAP_PCI_PASID_PRIV },
};

static int parse_capabilities(json_object *o, const char *path, uint64_t *ret, Error *err) {
        char p[JSON_PATH_MAX];
        uint64_t caps = 0;

        if (!json_object_is_type(o, json_type_array))
                return json_get_u64(o, path, UINT64_MAX, ret, err);
        for (size_t i = 0; i < json_object_array_length(o); i++) {
                json_object *e = json_object_array_get_idx(o, i);
                bool found = false;

                jpath(p, sizeof(p), "%s[%zu]", path, i);
                if (json_object_is_type(e, json_type_string))
                        for (size_t k = 0; k < ELEMENTSOF(capability_names); k++)
                                if (streq(capability_names[k].name, json_object_get_string(e))) {
                                        caps |= capability_names[k].bit;
                                        found = true;
                                }
                if (!found)
                        return error_set(err, -EINVAL, "%s: expected one of \"dirty-tracking\", "
                                         "\"pasid-exec\", \"pasid-priv\"", p);
        }
        *ret = caps;
        return 0;
}

static int parse_iommu(json_object *o, const char *path, SimIommu *m, Error *err) {
        static const char *const keys[] = { "name", "kind", "hw_info_type", "aperture_start",
                                            "aperture_last", "page_sizes", "pasid_bits",
                                            "capabilities", "nesting", "dirty_tracking",
                                            "fault_queue", NULL };
        char p[JSON_PATH_MAX];
        json_object *v;
        uint64_t u;
        int r;

        r = json_expect_object(o, path, keys, err);
        if (r < 0)
                return r;

        r = parse_name(o, path, "IOMMU", &m->name, err);
        if (r < 0)
                return r;

        if (!FIELD("kind"))
                return error_set(err, -EINVAL, "%s: missing", p);
        r = json_get_string(v, p, &m->kind, err);
        if (r < 0)
                return r;
        if (!streq(m->kind, "intel") && !streq(m->kind, "amd") && !streq(m->kind, "arm-smmu-v3"))
                return error_set(err, -EINVAL,
                                 "%s: expected \"intel\", \"amd\" or \"arm-smmu-v3\", got '%s'", p,
                                 m->kind);
        /* sysfs shows no marker directory for SMMUv3: topology_load() goes by the name. */
        if (streq(m->kind, "arm-smmu-v3") && !strneq(m->name, "smmu3.", 6))
                return error_set(err, -EINVAL, "%s.name: an arm-smmu-v3 instance is named "
                                 "\"smmu3.<address>\", got '%s'", path, m->name);
        /* IOMMU_HW_INFO_TYPE_INTEL_VTD = 1, IOMMU_HW_INFO_TYPE_ARM_SMMUV3 = 2 */
        m->hw_info_type = streq(m->kind, "intel") ? 1 : streq(m->kind, "arm-smmu-v3") ? 2 : 0;
        if (FIELD("hw_info_type")) {
                r = json_get_u64(v, p, UINT32_MAX, &u, err);
                if (r < 0)
                        return r;
                m->hw_info_type = (uint32_t)u;
        }
        if (FIELD("aperture_start")) {
                r = json_get_u64(v, p, UINT64_MAX, &m->aperture_start, err);
                if (r < 0)
                        return r;
        }
        if (!FIELD("aperture_last"))
                return error_set(err, -EINVAL, "%s: missing", p);
        r = json_get_u64(v, p, UINT64_MAX, &m->aperture_last, err);
        if (r < 0)
                return r;
        if (m->aperture_last < m->aperture_start)
                return error_set(err, -EINVAL, "%s: 0x%" PRIx64 " is below aperture_start 0x%" PRIx64,
                                 p, m->aperture_last, m->aperture_start);
        if (!FIELD("page_sizes"))
                return error_set(err, -EINVAL, "%s: missing", p);
        r = parse_page_sizes(v, p, &m->page_sizes, err);
        if (r < 0)
                return r;
        if (FIELD("pasid_bits")) {
                r = json_get_u64(v, p, 20, &u, err);
                if (r < 0)
                        return r;
                m->pasid_bits = (uint8_t)u;
        }
        if (FIELD("capabilities")) {
                r = parse_capabilities(v, p, &m->capabilities, err);
                if (r < 0)
                        return r;
        }
        if (FIELD("nesting") && (r = json_get_bool(v, p, &m->nesting, err)) < 0)
                return r;
        if (FIELD("dirty_tracking") && (r = json_get_bool(v, p, &m->dirty_tracking, err)) < 0)
                return r;
        if (FIELD("fault_queue") && (r = json_get_bool(v, p, &m->fault_queue, err)) < 0)
                return r;
        /* Dirty tracking is reported to clients through the capability bit. */
        if (m->dirty_tracking)
                m->capabilities |= BACKEND_HW_CAP_DIRTY_TRACKING;
        return 0;
}

static int parse_region(json_object *o, const char *path, ReservedRegion *rr, Error *err) {
        static const char *const keys[] = { "start", "last", "type", NULL };
        char p[JSON_PATH_MAX];
        json_object *v;
        int r;

        r = json_expect_object(o, path, keys, err);
        if (r < 0)
                return r;
        if (!FIELD("start"))
                return error_set(err, -EINVAL, "%s: missing", p);
        r = json_get_u64(v, p, UINT64_MAX, &rr->start, err);
        if (r < 0)
                return r;
        if (!FIELD("last"))
                return error_set(err, -EINVAL, "%s: missing", p);
        r = json_get_u64(v, p, UINT64_MAX, &rr->last, err);
        if (r < 0)
                return r;
        if (rr->last < rr->start)
                return error_set(err, -EINVAL, "%s: 0x%" PRIx64 " is below start 0x%" PRIx64, p,
                                 rr->last, rr->start);
        if (!FIELD("type"))
                return error_set(err, -EINVAL, "%s: missing", p);
        r = json_get_string(v, p, &rr->type_name, err);
        if (r < 0)
                return r;
        /* Any single word is accepted, so that unknown kernel types can be simulated. */
        if (!rr->type_name[0] || strpbrk(rr->type_name, " \t\n"))
                return error_set(err, -EINVAL, "%s: expected one word, got '%s'", p,
                                 rr->type_name);
        rr->type = region_type_from_string(rr->type_name);
        return 0;
}

static int region_cmp(const void *a, const void *b) {
        const ReservedRegion *x = a, *y = b;

        if (x->start != y->start)
                return x->start < y->start ? -1 : 1;
        return x->last < y->last ? -1 : x->last > y->last;
}

static int parse_device(json_object *o, const char *path, SimDevice *d, Error *err) {
        static const char *const keys[] = { "name", "label", "vendor", "device",
                                            "subsystem_vendor", "subsystem_device", "class",
                                            "driver", "numa_node", "cdev", "pasid_bits", NULL };
        static const struct {
                const char *key;
                uint64_t max;
                bool required;
                size_t offset;
                size_t size;
        } ids[] = {
                { "vendor", 0xffff, true, offsetof(SimDevice, vendor), 2 },
                { "device", 0xffff, true, offsetof(SimDevice, device), 2 },
                { "subsystem_vendor", 0xffff, false, offsetof(SimDevice, subsystem_vendor), 2 },
                { "subsystem_device", 0xffff, false, offsetof(SimDevice, subsystem_device), 2 },
                { "class", 0xffffff, true, offsetof(SimDevice, class), 4 },
        };
        char p[JSON_PATH_MAX];
        json_object *v;
        uint64_t u;
        int r;

        r = json_expect_object(o, path, keys, err);
        if (r < 0)
                return r;

        r = parse_name(o, path, "device", &d->name, err);
        if (r < 0)
                return r;
        if (FIELD("label") && (r = json_get_string(v, p, &d->label, err)) < 0)
                return r;

        for (size_t i = 0; i < ELEMENTSOF(ids); i++) {
                if (!FIELD(ids[i].key)) {
                        /* Platform devices have no PCI IDs. */
                        if (ids[i].required && name_is_pci_bdf(d->name))
                                return error_set(err, -EINVAL, "%s: missing", p);
                        continue;
                }
                r = json_get_u64(v, p, ids[i].max, &u, err);
                if (r < 0)
                        return r;
                if (ids[i].size == 2)
                        *(uint16_t *)((uint8_t *)d + ids[i].offset) = (uint16_t)u;
                else
                        *(uint32_t *)((uint8_t *)d + ids[i].offset) = (uint32_t)u;
        }

        if (FIELD("driver") && !json_object_is_type(v, json_type_null)) {
                r = json_get_string(v, p, &d->driver, err);
                if (r < 0)
                        return r;
                if (!name_is_valid(d->driver))
                        return error_set(err, -EINVAL, "%s: '%s' is not a valid driver name", p,
                                         d->driver);
        }
        d->numa_node = -1;
        if (FIELD("numa_node")) {
                int64_t n;
                r = json_expect(v, json_type_int, p, "an integer", err);
                if (r < 0)
                        return r;
                n = json_object_get_int64(v);
                if (n < -1 || n > 1023)
                        return error_set(err, -ERANGE, "%s: %" PRId64 " is not -1 or a node 0-1023",
                                         p, n);
                d->numa_node = (int)n;
        }
        /* A device bound to vfio-pci has a cdev unless the description says otherwise. */
        d->cdev = d->driver && (streq(d->driver, "vfio-pci") || streq(d->driver, "vfio-platform"));
        if (FIELD("cdev") && (r = json_get_bool(v, p, &d->cdev, err)) < 0)
                return r;
        if (FIELD("pasid_bits")) {
                r = json_get_u64(v, p, 20, &u, err);
                if (r < 0)
                        return r;
                d->pasid_bits = (uint8_t)u;
        }
        return 0;
}

static int parse_group(json_object *o, const char *path, SimTopology *t, SimGroup *g,
                       size_t *allocated_devices, char ***paths, Error *err) {
        static const char *const keys[] = { "id", "type", "iommu", "reserved_regions", "devices",
                                            NULL };
        char p[JSON_PATH_MAX];
        json_object *v;
        uint64_t u;
        int r;

        r = json_expect_object(o, path, keys, err);
        if (r < 0)
                return r;

        if (!FIELD("id"))
                return error_set(err, -EINVAL, "%s: missing", p);
        r = json_get_u64(v, p, UINT32_MAX, &u, err);
        if (r < 0)
                return r;
        g->id = (unsigned)u;
        for (SimGroup *other = t->groups; other < g; other++)
                if (other->id == g->id)
                        return error_set(err, -EINVAL, "%s: group %u is listed twice", p, g->id);

        if (FIELD("type")) {
                r = json_get_string(v, p, &g->type, err);
                if (r < 0)
                        return r;
                if (!g->type[0] || strpbrk(g->type, " \t\n"))
                        return error_set(err, -EINVAL, "%s: expected one word", p);
        } else if (!(g->type = strdup("DMA")))
                return error_set(err, -ENOMEM, "out of memory");

        if (FIELD("iommu")) {
                r = json_expect(v, json_type_string, p, "a string", err);
                if (r < 0)
                        return r;
                size_t k;
                for (k = 0; k < t->n_iommus; k++)
                        if (streq(t->iommus[k].name, json_object_get_string(v)))
                                break;
                if (k == t->n_iommus)
                        return error_set(err, -EINVAL, "%s: no IOMMU named '%s'", p,
                                         json_object_get_string(v));
                g->iommu_index = k;
        } else if (t->n_iommus != 1)
                return error_set(err, -EINVAL, "%s: missing (there is more than one IOMMU)", p);

        if (FIELD("reserved_regions")) {
                r = json_expect(v, json_type_array, p, "an array", err);
                if (r < 0)
                        return r;
                size_t n = json_object_array_length(v);
                if (n > 0) {
                        g->regions = calloc(n, sizeof(*g->regions));
                        if (!g->regions)
                                return error_set(err, -ENOMEM, "out of memory");
                }
                for (size_t i = 0; i < n; i++) {
                        char rp[JSON_PATH_MAX];

                        jpath(rp, sizeof(rp), "%s[%zu]", p, i);
                        g->n_regions++;
                        r = parse_region(json_object_array_get_idx(v, i), rp,
                                         &g->regions[i], err);
                        if (r < 0)
                                return r;
                }
        }

        if (!FIELD("devices"))
                return error_set(err, -EINVAL, "%s: missing", p);
        r = json_expect(v, json_type_array, p, "an array", err);
        if (r < 0)
                return r;
        size_t n = json_object_array_length(v);
        if (n == 0)
                return error_set(err, -EINVAL, "%s: a group needs at least one device", p);
        g->device_indexes = calloc(n, sizeof(*g->device_indexes));
        if (!g->device_indexes)
                return error_set(err, -ENOMEM, "out of memory");
        for (size_t i = 0; i < n; i++) {
                char dp[JSON_PATH_MAX];

                if (t->n_devices >= *allocated_devices) {
                        size_t na = MAX(*allocated_devices * 2, (size_t)16);
                        SimDevice *nd = reallocarray(t->devices, na, sizeof(*nd));
                        char **np = reallocarray(*paths, na, sizeof(*np));
                        if (nd)
                                t->devices = nd;
                        if (np)
                                *paths = np;
                        if (!nd || !np)
                                return error_set(err, -ENOMEM, "out of memory");
                        *allocated_devices = na;
                }
                SimDevice *d = &t->devices[t->n_devices];
                *d = (SimDevice){ .group_index = (size_t)(g - t->groups) };
                jpath(dp, sizeof(dp), "%s[%zu]", p, i);
                (*paths)[t->n_devices] = strdup(dp);
                t->n_devices++;
                if (!(*paths)[t->n_devices - 1])
                        return error_set(err, -ENOMEM, "out of memory");
                r = parse_device(json_object_array_get_idx(v, i), dp, d, err);
                if (r < 0)
                        return r;
                g->device_indexes[g->n_devices++] = t->n_devices - 1;
        }
        if (g->n_regions > 1)
                qsort(g->regions, g->n_regions, sizeof(*g->regions), region_cmp);
        return 0;
}

static void paths_free(char **paths, size_t n) {
        if (!paths)
                return;
        for (size_t i = 0; i < n; i++)
                free(paths[i]);
        free(paths);
}

static int simtopo_parse_object(SimTopology *t, json_object *root, char ***paths, Error *err) {
        static const char *const keys[] = { "name", "description", "cdev_major", "iommus",
                                            "groups", NULL };
        size_t allocated_devices = 0;
        json_object *v;
        uint64_t u;
        int r;

        r = json_expect_object(root, "", keys, err);
        if (r < 0)
                return r;
        if ((v = json_get(root, "name")) && (r = json_get_string(v, "name", &t->name, err)) < 0)
                return r;
        if ((v = json_get(root, "description")) &&
            (r = json_get_string(v, "description", &t->description, err)) < 0)
                return r;
        t->cdev_major = SIMTOPO_DEFAULT_CDEV_MAJOR;
        if ((v = json_get(root, "cdev_major"))) {
                /* Linux majors are 12 bits. */
                r = json_get_u64(v, "cdev_major", 4095, &u, err);
                if (r < 0)
                        return r;
                t->cdev_major = (unsigned)u;
        }

        if (!(v = json_get(root, "iommus")))
                return error_set(err, -EINVAL, "iommus: missing");
        r = json_expect(v, json_type_array, "iommus", "an array", err);
        if (r < 0)
                return r;
        size_t n = json_object_array_length(v);
        if (n == 0)
                return error_set(err, -EINVAL, "iommus: at least one IOMMU is needed");
        t->iommus = calloc(n, sizeof(*t->iommus));
        if (!t->iommus)
                return error_set(err, -ENOMEM, "out of memory");
        for (size_t i = 0; i < n; i++) {
                char p[JSON_PATH_MAX];

                jpath(p, sizeof(p), "iommus[%zu]", i);
                t->n_iommus++;
                r = parse_iommu(json_object_array_get_idx(v, i), p, &t->iommus[i], err);
                if (r < 0)
                        return r;
                for (size_t k = 0; k < i; k++)
                        if (streq(t->iommus[k].name, t->iommus[i].name))
                                return error_set(err, -EINVAL, "%s.name: IOMMU '%s' is listed twice",
                                                 p, t->iommus[i].name);
        }

        if (!(v = json_get(root, "groups")))
                return error_set(err, -EINVAL, "groups: missing");
        r = json_expect(v, json_type_array, "groups", "an array", err);
        if (r < 0)
                return r;
        n = json_object_array_length(v);
        if (n > 0) {
                t->groups = calloc(n, sizeof(*t->groups));
                if (!t->groups)
                        return error_set(err, -ENOMEM, "out of memory");
        }
        for (size_t i = 0; i < n; i++) {
                char p[JSON_PATH_MAX];

                jpath(p, sizeof(p), "groups[%zu]", i);
                t->n_groups++;
                r = parse_group(json_object_array_get_idx(v, i), p, t, &t->groups[i],
                                &allocated_devices, paths, err);
                if (r < 0)
                        return r;
        }

        /* vfio minors are handed out in the order devices appear, as on a booting host. */
        unsigned minor = 0;
        for (size_t i = 0; i < t->n_devices; i++)
                if (t->devices[i].cdev)
                        t->devices[i].cdev_minor = minor++;
        return simtopo_finish(t, *paths, err);
}

int simtopo_parse(SimTopology **ret, const char *json_text, size_t len, Error *err) {
        _cleanup_(simtopo_freep) SimTopology *t = NULL;
        json_tokener *tok;
        json_object *root;
        char **paths = NULL;
        int r;

        if (len > INT32_MAX)
                return error_set(err, -EFBIG, "topology description is too large");
        tok = json_tokener_new();
        if (!tok)
                return error_set(err, -ENOMEM, "out of memory");
        root = json_tokener_parse_ex(tok, json_text, (int)len);
        enum json_tokener_error jerr = json_tokener_get_error(tok);
        if (jerr == json_tokener_continue) {
                json_tokener_free(tok);
                return error_set(err, -EINVAL, "JSON ends before the document is complete");
        }
        if (!root || jerr != json_tokener_success) {
                size_t off = json_tokener_get_parse_end(tok), line = 1, col = 1;

                for (size_t i = 0; i < off && i < len; i++) {
                        if (json_text[i] == '\n')
                                line++, col = 1;
                        else
                                col++;
                }
                json_tokener_free(tok);
                json_object_put(root);
                return error_set(err, -EINVAL, "JSON syntax error at line %zu column %zu: %s",
                                 line, col, json_tokener_error_desc(jerr));
        }
        size_t end = json_tokener_get_parse_end(tok);
        json_tokener_free(tok);
        for (; end < len; end++)
                if (!isspace((unsigned char)json_text[end])) {
                        json_object_put(root);
                        return error_set(err, -EINVAL, "trailing data after the JSON document");
                }

        t = calloc(1, sizeof(*t));
        if (!t || json_util_fix_big_integers(root, json_text, len) < 0) {
                json_object_put(root);
                return error_set(err, -ENOMEM, "out of memory");
        }
        r = simtopo_parse_object(t, root, &paths, err);
        paths_free(paths, t->n_devices);
        json_object_put(root);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(t);
        return 0;
}
