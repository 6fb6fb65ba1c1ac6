/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <ctype.h>
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>

#include "backend-names.h"
#include "backend.h"
#include "file-util.h"
#include "simtopo.h"

#define SIMTOPO_DEFAULT_CDEV_MAJOR 511u
#define SIMTOPO_SCALE_DEFAULT 4096u
#define SIMTOPO_SCALE_MAX (1u << 20)
#define SIMTOPO_MARKER ".iommud-simtopo"
#define SIMTOPO_FILE_MAX (64u << 20) /* the largest description file read */
#define JSON_PATH_MAX 256

/* ---- freeing ---- */

SimTopology *simtopo_free(SimTopology *t) {
        if (!t)
                return NULL;
        for (size_t i = 0; i < t->n_iommus; i++) {
                free(t->iommus[i].name);
                free(t->iommus[i].kind);
        }
        free(t->iommus);
        for (size_t i = 0; i < t->n_groups; i++) {
                free(t->groups[i].type);
                reserved_regions_free(t->groups[i].regions, t->groups[i].n_regions);
                free(t->groups[i].device_indexes);
        }
        free(t->groups);
        for (size_t i = 0; i < t->n_devices; i++) {
                free(t->devices[i].name);
                free(t->devices[i].label);
                free(t->devices[i].driver);
        }
        free(t->devices);
        free(t->name);
        free(t->description);
        free(t);
        return NULL;
}

static int device_index_cmp_ctx(const void *a, const void *b, void *userdata) {
        const SimDevice *devices = userdata;
        return strcmp(devices[*(const size_t *)a].name, devices[*(const size_t *)b].name);
}

static bool name_is_pci_bdf(const char *s) {
        unsigned dom, bus, dev, fn;
        int n = 0;

        if (strlen(s) != 12 || sscanf(s, "%4x:%2x:%2x.%1x%n", &dom, &bus, &dev, &fn, &n) != 4 ||
            n != 12)
                return false;
        for (size_t i = 0; i < 12; i++)
                if (i != 4 && i != 7 && i != 10 && !isxdigit((unsigned char)s[i]))
                        return false;
        return dev < 32 && fn < 8;
}

/* A device or IOMMU name becomes a directory entry: keep it to a safe alphabet. */
static bool name_is_valid(const char *s) {
        if (!s[0] || streq(s, ".") || streq(s, "..") || strlen(s) > 64)
                return false;
        for (const char *p = s; *p; p++)
                if (!isalnum((unsigned char)*p) && !strchr(":._-+", *p))
                        return false;
        return true;
}

/*
 * Sorts the devices by name (remapping the groups' indexes) so that
 * simtopo_find_device() can bisect, and reports duplicates.  paths[i] names
 * device i in the input for error messages (NULL for generated ones).
 */
static int simtopo_finish(SimTopology *t, char **paths, Error *err) {
        _cleanup_free_ size_t *order = NULL, *where = NULL;
        _cleanup_free_ SimDevice *sorted = NULL;

        if (t->n_devices == 0)
                return 0;
        order = calloc(t->n_devices, sizeof(*order));
        where = calloc(t->n_devices, sizeof(*where));
        sorted = calloc(t->n_devices, sizeof(*sorted));
        if (!order || !where || !sorted)
                return error_set(err, -ENOMEM, "out of memory");
        for (size_t i = 0; i < t->n_devices; i++)
                order[i] = i;
        qsort_r(order, t->n_devices, sizeof(*order), device_index_cmp_ctx, t->devices);
        for (size_t i = 1; i < t->n_devices; i++)
                if (streq(t->devices[order[i - 1]].name, t->devices[order[i]].name)) {
                        size_t later = MAX(order[i - 1], order[i]);
                        return error_set(err, -EINVAL, "%s.name: device '%s' is listed twice",
                                         paths && paths[later] ? paths[later] : "devices",
                                         t->devices[later].name);
                }
        for (size_t i = 0; i < t->n_devices; i++) {
                sorted[i] = t->devices[order[i]];
                where[order[i]] = i;
        }
        for (size_t g = 0; g < t->n_groups; g++)
                for (size_t j = 0; j < t->groups[g].n_devices; j++)
                        t->groups[g].device_indexes[j] = where[t->groups[g].device_indexes[j]];
        free(t->devices);
        t->devices = TAKE_PTR(sorted);
        return 0;
}

static int simdevice_cmp_name(const void *key, const void *elem) {
        return strcmp(key, ((const SimDevice *)elem)->name);
}

const SimDevice *simtopo_find_device(const SimTopology *t, const char *name) {
        if (!t || !name || t->n_devices == 0)
                return NULL;
        return bsearch(name, t->devices, t->n_devices, sizeof(*t->devices), simdevice_cmp_name);
}

/* ---- JSON parsing ---- */

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

static int parse_capabilities(json_object *o, const char *path, uint64_t *ret, Error *err) {
        char p[JSON_PATH_MAX];
        uint64_t caps = 0;

        if (!json_object_is_type(o, json_type_array))
                return json_get_u64(o, path, UINT64_MAX, ret, err);
        for (size_t i = 0; i < json_object_array_length(o); i++) {
                json_object *e = json_object_array_get_idx(o, i);
                uint64_t bit;

                jpath(p, sizeof(p), "%s[%zu]", path, i);
                if (!json_object_is_type(e, json_type_string) ||
                    backend_hw_cap_from_string(json_object_get_string(e), &bit) < 0)
                        return capability_unknown(p, err);
                caps |= bit;
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
        if (!t) {
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

/* ---- the generated "scale" topology ---- */

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

int simtopo_generate_scale(SimTopology **ret, size_t n_devices, Error *err) {
        _cleanup_(simtopo_freep) SimTopology *t = NULL;
        unsigned minor = 0, slot = 0;
        int r;

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
        t->n_iommus = MIN(MAX((n_devices + 511) / 512, (size_t)1), (size_t)16);
        t->iommus = calloc(t->n_iommus, sizeof(*t->iommus));
        /* At most one group per device. */
        t->groups = calloc(n_devices, sizeof(*t->groups));
        t->devices = calloc(n_devices, sizeof(*t->devices));
        if (!t->description || !t->iommus || !t->groups || !t->devices)
                return error_set(err, -ENOMEM, "out of memory");

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
                        return error_set(err, -ENOMEM, "out of memory");
                }
                if (!(m->kind = strdup("intel")))
                        return error_set(err, -ENOMEM, "out of memory");
        }

        while (t->n_devices < n_devices) {
                size_t gi = t->n_groups, left = n_devices - t->n_devices, size;
                SimGroup *g = &t->groups[gi];
                unsigned iommu = (unsigned)((t->n_devices * t->n_iommus) / n_devices);

                /* Every 16th group is a 4-function card, every 32nd a bridge with two devices. */
                if (gi % 16 == 5)
                        size = MIN(left, (size_t)4);
                else if (gi % 32 == 9)
                        size = MIN(left, (size_t)3);
                else
                        size = 1;

                t->n_groups++;
                g->id = (unsigned)gi;
                g->iommu_index = iommu;
                g->device_indexes = calloc(size, sizeof(*g->device_indexes));
                g->type = strdup(gi % 3 == 0 ? "DMA" : "DMA-FQ");
                g->n_regions = gi % 64 == 7 ? 2 : 1;
                g->regions = calloc(g->n_regions, sizeof(*g->regions));
                if (!g->device_indexes || !g->type || !g->regions)
                        return error_set(err, -ENOMEM, "out of memory");
                g->regions[0] = (ReservedRegion){ 0xfee00000ULL, 0xfeefffffULL, REGION_MSI,
                                                  strdup(region_type_to_string(REGION_MSI)) };
                if (!g->regions[0].type_name)
                        return error_set(err, -ENOMEM, "out of memory");
                if (g->n_regions == 2) {
                        /* An RMRR the OS may relax, as USB controllers have. */
                        g->regions[1] = g->regions[0];
                        g->regions[0] = (ReservedRegion){
                                0x3c000000ULL, 0x3fffffffULL, REGION_DIRECT_RELAXABLE,
                                strdup(region_type_to_string(REGION_DIRECT_RELAXABLE)) };
                        if (!g->regions[0].type_name)
                                return error_set(err, -ENOMEM, "out of memory");
                }

                for (unsigned fn = 0; fn < size; fn++) {
                        const ScaleKind *k;

                        if (size == 1)
                                k = &scale_kinds[gi % ELEMENTSOF(scale_kinds)];
                        else if (gi % 32 == 9)
                                k = fn == 0 ? &scale_bridge : &scale_kinds[1];
                        else
                                k = &scale_function;
                        /* Bridged devices get their own slots; functions share one. */
                        if (fn > 0 && gi % 32 == 9)
                                slot++;
                        r = scale_add_device(t, gi, k, slot, gi % 32 == 9 ? 0 : fn, iommu % 2,
                                             &minor);
                        if (r < 0)
                                return error_set(err, r, "out of memory");
                }
                slot++;
        }
        r = simtopo_finish(t, NULL, err);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(t);
        return 0;
}

/* ---- finding descriptions ---- */

static int simtopo_load_file(SimTopology **ret, const char *path, const char *default_name,
                             Error *err) {
        _cleanup_free_ char *text = NULL;
        size_t len = 0;
        SimTopology *t;
        int r;

        r = file_util_read_at(AT_FDCWD, path, SIMTOPO_FILE_MAX, &text, &len);
        if (r < 0)
                return error_set(err, r, "cannot read topology %s: %s", path, strerror(-r));
        r = simtopo_parse(&t, text, len, err);
        if (r < 0)
                return error_prefix(err, "%s", path);
        if (!t->name && !(t->name = strdup(default_name))) {
                simtopo_free(t);
                return error_set(err, -ENOMEM, "out of memory");
        }
        *ret = t;
        return 0;
}

int simtopo_load(SimTopology **ret, const char *name_or_path, Error *err) {
        const char *dirs[3];
        size_t n_dirs = 0;

        if (!name_or_path || !name_or_path[0])
                return error_set(err, -EINVAL, "empty topology name");

        if (streq(name_or_path, "scale"))
                return simtopo_generate_scale(ret, SIMTOPO_SCALE_DEFAULT, err);
        if (strneq(name_or_path, "scale:", 6)) {
                const char *s = name_or_path + 6;
                char *end;
                unsigned long long n;

                errno = 0;
                n = strtoull(s, &end, 10);
                if (!isdigit((unsigned char)*s) || errno || *end)
                        return error_set(err, -EINVAL, "'%s': expected scale:N with N a device "
                                         "count", name_or_path);
                return simtopo_generate_scale(ret, (size_t)MIN(n, (unsigned long long)SIZE_MAX),
                                              err);
        }

        if (strchr(name_or_path, '/')) {
                const char *base = strrchr(name_or_path, '/') + 1;
                return simtopo_load_file(ret, name_or_path, base, err);
        }
        for (const char *p = name_or_path; *p; p++)
                if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_' && *p != '.')
                        return error_set(err, -EINVAL, "'%s' is not a topology name", name_or_path);
        if (strlen(name_or_path) > 5 && streq(name_or_path + strlen(name_or_path) - 5, ".json"))
                return simtopo_load_file(ret, name_or_path, name_or_path, err);

        /* The environment first (tests, a developer's checkout), then installed, then source. */
        const char *env = getenv("IOMMUD_TOPOLOGY_DIR");
        if (env && env[0])
                dirs[n_dirs++] = env;
        dirs[n_dirs++] = IOMMUD_TOPOLOGY_DIR;
        dirs[n_dirs++] = IOMMUD_SOURCE_TOPOLOGY_DIR;
        for (size_t i = 0; i < n_dirs; i++) {
                _cleanup_free_ char *path = NULL;

                if (asprintf(&path, "%s/%s.json", dirs[i], name_or_path) < 0)
                        return error_set(err, -ENOMEM, "out of memory");
                if (access(path, F_OK) < 0)
                        continue;
                return simtopo_load_file(ret, path, name_or_path, err);
        }
        return error_set(err, -ENOENT, "no topology named '%s' in %s%s%s%s%s", name_or_path,
                         dirs[0], n_dirs > 1 ? ", " : "", n_dirs > 1 ? dirs[1] : "",
                         n_dirs > 2 ? ", " : "", n_dirs > 2 ? dirs[2] : "");
}

/* ---- materializing ---- */

/* Creates every missing directory of path (relative to dir_fd), the last one included. */
static int mkdir_p_at(int dir_fd, const char *path) {
        char buf[PATH_MAX];
        size_t n = strlen(path);

        if (n >= sizeof(buf))
                return -ENAMETOOLONG;
        memcpy(buf, path, n + 1);
        for (char *p = buf;; p++) {
                if (*p == '/' || *p == '\0') {
                        char c = *p;
                        *p = '\0';
                        if (buf[0] && mkdirat(dir_fd, buf, 0755) < 0 && errno != EEXIST)
                                return -errno;
                        *p = c;
                        if (c == '\0')
                                return 0;
                }
        }
}

static int mkdir_parent_at(int dir_fd, const char *path) {
        char buf[PATH_MAX];
        const char *slash = strrchr(path, '/');

        if (!slash)
                return 0;
        if ((size_t)(slash - path) >= sizeof(buf))
                return -ENAMETOOLONG;
        memcpy(buf, path, (size_t)(slash - path));
        buf[slash - path] = '\0';
        return mkdir_p_at(dir_fd, buf);
}

static int write_at(int dir_fd, const char *path, mode_t mode, const char *fmt, ...) _printf_(4, 5);
static int write_at(int dir_fd, const char *path, mode_t mode, const char *fmt, ...) {
        _cleanup_close_ int fd = -EBADF;
        char buf[512];
        va_list ap;
        int n;

        va_start(ap, fmt);
        n = vsnprintf(buf, sizeof(buf), fmt, ap);
        va_end(ap);
        if (n < 0 || (size_t)n >= sizeof(buf))
                return -ENAMETOOLONG;
        fd = openat(dir_fd, path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
        if (fd < 0 && errno == ENOENT) {
                int r = mkdir_parent_at(dir_fd, path);
                if (r < 0)
                        return r;
                fd = openat(dir_fd, path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                            mode);
        }
        if (fd < 0)
                return -errno;
        /* The umask must not narrow the simulated device nodes' 0666. */
        if (fchmod(fd, mode) < 0)
                return -errno;
        if (write(fd, buf, (size_t)n) != n)
                return -EIO;
        return 0;
}

static int symlink_at(int dir_fd, const char *path, const char *fmt, ...) _printf_(3, 4);
static int symlink_at(int dir_fd, const char *path, const char *fmt, ...) {
        char target[PATH_MAX];
        va_list ap;
        int n;

        va_start(ap, fmt);
        n = vsnprintf(target, sizeof(target), fmt, ap);
        va_end(ap);
        if (n < 0 || (size_t)n >= sizeof(target))
                return -ENAMETOOLONG;
        if (symlinkat(target, dir_fd, path) == 0)
                return 0;
        if (errno != ENOENT)
                return -errno;
        int r = mkdir_parent_at(dir_fd, path);
        if (r < 0)
                return r;
        return symlinkat(target, dir_fd, path) < 0 ? -errno : 0;
}

/* "devices/pci0000:65/0000:65:00.0" or "devices/platform/NAME", relative to ROOT/sys. */
static void device_dir(const SimDevice *d, char *buf, size_t size) {
        if (name_is_pci_bdf(d->name))
                snprintf(buf, size, "devices/pci%.7s/%s", d->name, d->name);
        else
                snprintf(buf, size, "devices/platform/%s", d->name);
}

static int materialize_device(const SimTopology *t, const SimDevice *d, int root_fd, int sys_fd) {
        const SimGroup *g = &t->groups[d->group_index];
        const SimIommu *m = &t->iommus[g->iommu_index];
        bool pci = name_is_pci_bdf(d->name);
        const char *bus = pci ? "pci" : "platform";
        _cleanup_close_ int fd = -EBADF;
        char dir[128], path[256];
        int r;

        device_dir(d, dir, sizeof(dir));
        r = mkdir_p_at(sys_fd, dir);
        if (r < 0)
                return r;
        fd = openat(sys_fd, dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
                return -errno;

        /* Both device directories sit three levels below ROOT/sys, so links share a shape. */
        if (pci) {
                if ((r = write_at(fd, "vendor", 0644, "0x%04x\n", d->vendor)) < 0 ||
                    (r = write_at(fd, "device", 0644, "0x%04x\n", d->device)) < 0 ||
                    (r = write_at(fd, "subsystem_vendor", 0644, "0x%04x\n", d->subsystem_vendor)) < 0 ||
                    (r = write_at(fd, "subsystem_device", 0644, "0x%04x\n", d->subsystem_device)) < 0 ||
                    (r = write_at(fd, "class", 0644, "0x%06x\n", d->class)) < 0)
                        return r;
                /* Byte for byte what the driver core and pci_uevent() print. */
                if ((r = write_at(fd, "uevent", 0644,
                                  "%s%s%s"
                                  "PCI_CLASS=%04X\n"
                                  "PCI_ID=%04X:%04X\n"
                                  "PCI_SUBSYS_ID=%04X:%04X\n"
                                  "PCI_SLOT_NAME=%s\n"
                                  "MODALIAS=pci:v%08Xd%08Xsv%08Xsd%08Xbc%02Xsc%02Xi%02x\n",
                                  d->driver ? "DRIVER=" : "", d->driver ?: "",
                                  d->driver ? "\n" : "", d->class, d->vendor, d->device,
                                  d->subsystem_vendor, d->subsystem_device, d->name, d->vendor,
                                  d->device, d->subsystem_vendor, d->subsystem_device,
                                  (d->class >> 16) & 0xff, (d->class >> 8) & 0xff,
                                  d->class & 0xff)) < 0)
                        return r;
        }
        if ((r = write_at(fd, "numa_node", 0644, "%d\n", d->numa_node)) < 0 ||
            (r = symlink_at(fd, "subsystem", "../../../bus/%s", bus)) < 0 ||
            (r = symlink_at(fd, "iommu_group", "../../../kernel/iommu_groups/%u", g->id)) < 0 ||
            (r = symlink_at(fd, "iommu", "../../virtual/iommu/%s", m->name)) < 0)
                return r;

        snprintf(path, sizeof(path), "bus/%s/devices/%s", bus, d->name);
        if ((r = symlink_at(sys_fd, path, "../../../%s", dir)) < 0)
                return r;
        snprintf(path, sizeof(path), "kernel/iommu_groups/%u/devices/%s", g->id, d->name);
        if ((r = symlink_at(sys_fd, path, "../../../../%s", dir)) < 0)
                return r;
        snprintf(path, sizeof(path), "devices/virtual/iommu/%s/devices/%s", m->name, d->name);
        if ((r = symlink_at(sys_fd, path, "../../../../%s", dir + strlen("devices/"))) < 0)
                return r;

        if (d->driver) {
                if ((r = symlink_at(fd, "driver", "../../../bus/%s/drivers/%s", bus, d->driver)) < 0)
                        return r;
                snprintf(path, sizeof(path), "bus/%s/drivers/%s/%s", bus, d->driver, d->name);
                if ((r = symlink_at(sys_fd, path, "../../../../%s", dir)) < 0)
                        return r;
        }
        if (d->cdev) {
                snprintf(path, sizeof(path), "vfio-dev/vfio%u/dev", d->cdev_minor);
                if ((r = write_at(fd, path, 0644, "%u:%u\n", t->cdev_major, d->cdev_minor)) < 0)
                        return r;
                snprintf(path, sizeof(path), "dev/char/%u:%u", t->cdev_major, d->cdev_minor);
                if ((r = symlink_at(sys_fd, path, "../../%s/vfio-dev/vfio%u", dir,
                                    d->cdev_minor)) < 0)
                        return r;
                snprintf(path, sizeof(path), "dev/vfio/devices/vfio%u", d->cdev_minor);
                if ((r = write_at(root_fd, path, 0666, "%s", "")) < 0)
                        return r;
        }
        return 0;
}

static int materialize_tree(const SimTopology *t, int root_fd) {
        _cleanup_close_ int sys_fd = -EBADF;
        int r;

        if (mkdirat(root_fd, "sys", 0755) < 0)
                return -errno;
        sys_fd = openat(root_fd, "sys", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (sys_fd < 0)
                return -errno;
        if ((r = mkdir_p_at(sys_fd, "kernel/iommu_groups")) < 0 ||
            (r = mkdir_p_at(sys_fd, "class/iommu")) < 0 ||
            (r = mkdir_p_at(sys_fd, "bus/pci/devices")) < 0 ||
            (r = mkdir_p_at(sys_fd, "bus/pci/drivers")) < 0 ||
            (r = mkdir_p_at(sys_fd, "dev/char")) < 0 ||
            (r = mkdir_p_at(root_fd, "dev/vfio/devices")) < 0)
                return r;

        for (size_t i = 0; i < t->n_iommus; i++) {
                const SimIommu *m = &t->iommus[i];
                char path[128];

                snprintf(path, sizeof(path), "devices/virtual/iommu/%s/devices", m->name);
                if ((r = mkdir_p_at(sys_fd, path)) < 0)
                        return r;
                if (streq(m->kind, "intel") || streq(m->kind, "amd")) {
                        snprintf(path, sizeof(path), "devices/virtual/iommu/%s/%s-iommu", m->name,
                                 m->kind);
                        if ((r = mkdir_p_at(sys_fd, path)) < 0)
                                return r;
                }
                snprintf(path, sizeof(path), "class/iommu/%s", m->name);
                if ((r = symlink_at(sys_fd, path, "../../devices/virtual/iommu/%s", m->name)) < 0)
                        return r;
        }

        for (size_t i = 0; i < t->n_groups; i++) {
                const SimGroup *g = &t->groups[i];
                _cleanup_free_ char *regions = NULL;
                _cleanup_close_ int fd = -EBADF;
                char path[64];

                snprintf(path, sizeof(path), "kernel/iommu_groups/%u/devices", g->id);
                if ((r = mkdir_p_at(sys_fd, path)) < 0)
                        return r;
                snprintf(path, sizeof(path), "kernel/iommu_groups/%u/type", g->id);
                if ((r = write_at(sys_fd, path, 0644, "%s\n", g->type)) < 0)
                        return r;

                /* Exactly the kernel's "0x%016llx 0x%016llx %s\n" per region. */
                size_t size = 0;
                FILE *f = open_memstream(&regions, &size);
                if (!f)
                        return -ENOMEM;
                for (size_t k = 0; k < g->n_regions; k++)
                        fprintf(f, "0x%016" PRIx64 " 0x%016" PRIx64 " %s\n", g->regions[k].start,
                                g->regions[k].last, g->regions[k].type_name);
                if (fclose(f) != 0)
                        return -ENOMEM;
                snprintf(path, sizeof(path), "kernel/iommu_groups/%u/reserved_regions", g->id);
                fd = openat(sys_fd, path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                            0644);
                if (fd < 0)
                        return -errno;
                if (write(fd, regions, size) != (ssize_t)size)
                        return -EIO;
        }

        for (size_t i = 0; i < t->n_devices; i++) {
                r = materialize_device(t, &t->devices[i], root_fd, sys_fd);
                if (r < 0)
                        return r;
        }

        if ((r = write_at(root_fd, "proc/devices", 0644,
                          "Character devices:\n 10 misc\n%3u vfio-dev\n\nBlock devices:\n",
                          t->cdev_major)) < 0)
                return r;
        /* Simulated /dev/iommu: a plain file, like the vfio nodes. */
        return write_at(root_fd, "dev/iommu", 0666, "%s", "");
}

int simtopo_materialize(const SimTopology *t, const char *root, Error *err) {
        _cleanup_close_ int root_fd = -EBADF;
        struct dirent *de;
        int r;

        if (mkdir(root, 0755) < 0 && errno != EEXIST)
                return error_set(err, -errno, "cannot create %s: %m", root);
        root_fd = open(root, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (root_fd < 0)
                return error_set(err, -errno, "cannot open %s: %m", root);

        int dfd = fcntl(root_fd, F_DUPFD_CLOEXEC, 3);
        if (dfd < 0)
                return error_set(err, -errno, "cannot list %s: %m", root);
        DIR *dir = fdopendir(dfd);
        if (!dir) {
                safe_close(dfd);
                return error_set(err, -errno, "cannot list %s: %m", root);
        }
        bool empty = true;
        while ((de = readdir(dir)))
                if (!streq(de->d_name, ".") && !streq(de->d_name, ".."))
                        empty = false;
        closedir(dir);
        if (!empty)
                return error_set(err, -EEXIST, "%s is not empty", root);

        /* The marker goes first: simtopo_remove() only touches trees that carry it. */
        r = write_at(root_fd, SIMTOPO_MARKER, 0644, "%s\n", t->name ? t->name : "");
        if (r < 0)
                return error_set(err, r, "cannot write %s/%s: %s", root, SIMTOPO_MARKER,
                                 strerror(-r));
        r = materialize_tree(t, root_fd);
        if (r < 0) {
                (void)simtopo_remove(root);
                return error_set(err, r, "cannot materialize topology %s in %s: %s",
                                 t->name ? t->name : "", root, strerror(-r));
        }
        return 0;
}

/* Removes name below dir_fd: directories are entered only when they are real directories
 * on the same file system; symlinks and files are unlinked, never followed. */
static int rm_rf_at(int dir_fd, const char *name, dev_t dev) {
        struct stat st;
        int r = 0;

        if (fstatat(dir_fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                return errno == ENOENT ? 0 : -errno;
        if (!S_ISDIR(st.st_mode))
                return unlinkat(dir_fd, name, 0) < 0 ? -errno : 0;
        if (st.st_dev != dev)
                return -EXDEV;

        int fd = openat(dir_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        DIR *dir = fdopendir(fd);
        if (!dir) {
                safe_close(fd);
                return -errno;
        }
        struct dirent *de;
        while ((de = readdir(dir))) {
                if (streq(de->d_name, ".") || streq(de->d_name, ".."))
                        continue;
                int k = rm_rf_at(dirfd(dir), de->d_name, dev);
                if (k < 0 && r == 0)
                        r = k;
        }
        closedir(dir);
        if (unlinkat(dir_fd, name, AT_REMOVEDIR) < 0 && r == 0)
                r = -errno;
        return r;
}

int simtopo_remove(const char *root) {
        static const char *const tops[] = { "sys", "dev", "proc" };
        _cleanup_close_ int root_fd = -EBADF;
        struct stat st;
        int r = 0;

        root_fd = open(root, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (root_fd < 0)
                return -errno;
        if (fstat(root_fd, &st) < 0)
                return -errno;
        /* Refuse anything that is not a tree simtopo_materialize() made. */
        struct stat mst;
        if (fstatat(root_fd, SIMTOPO_MARKER, &mst, AT_SYMLINK_NOFOLLOW) < 0 ||
            !S_ISREG(mst.st_mode))
                return -EPERM;

        for (size_t i = 0; i < ELEMENTSOF(tops); i++) {
                int k = rm_rf_at(root_fd, tops[i], st.st_dev);
                if (k < 0 && r == 0)
                        r = k;
        }
        if (r < 0)
                return r;
        if (unlinkat(root_fd, SIMTOPO_MARKER, 0) < 0)
                return -errno;
        /* Fails with ENOTEMPTY when someone put other files there: those are not ours. */
        if (rmdir(root) < 0)
                return -errno;
        return 0;
}

/* Swaps two names atomically; falls back to two renames where RENAME_EXCHANGE is unknown. */
static int exchange_at(int a_fd, const char *a, int b_fd, const char *b) {
        if (renameat2(a_fd, a, b_fd, b, RENAME_EXCHANGE) == 0)
                return 0;
        if (errno != EINVAL && errno != ENOSYS)
                return -errno;
        if (renameat(b_fd, b, a_fd, "sys.old") < 0)
                return -errno;
        if (renameat(a_fd, a, b_fd, b) < 0) {
                int r = -errno;

                (void)renameat(a_fd, "sys.old", b_fd, b);
                return r;
        }
        return renameat(a_fd, "sys.old", a_fd, a) < 0 ? -errno : 0;
}

int simtopo_rematerialize_sys(const SimTopology *t, const char *root, Error *err) {
        _cleanup_free_ char *staging = NULL;
        _cleanup_close_ int root_fd = -EBADF, staging_fd = -EBADF;
        struct stat st;
        int r;

        root_fd = open(root, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (root_fd < 0)
                return error_set(err, -errno, "cannot open %s: %m", root);
        if (fstatat(root_fd, SIMTOPO_MARKER, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode))
                return error_set(err, -EPERM, "%s was not made by simtopo_materialize()", root);

        /* A sibling, so the swap below stays on one file system. */
        if (asprintf(&staging, "%s.new", root) < 0)
                return error_set(err, -ENOMEM, "out of memory");
        r = simtopo_remove(staging);
        if (r < 0 && r != -ENOENT)
                return error_set(err, r, "cannot remove the stale staging tree %s: %s", staging,
                                 strerror(-r));
        r = simtopo_materialize(t, staging, err);
        if (r < 0)
                return r;
        staging_fd = open(staging, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (staging_fd < 0) {
                r = error_set(err, -errno, "cannot open %s: %m", staging);
                goto out;
        }

        /* Readers see either the old sys/ or the new one, never a mix. */
        r = exchange_at(staging_fd, "sys", root_fd, "sys");
        if (r < 0) {
                error_set(err, r, "cannot put the new tree in place at %s/sys: %s", root,
                          strerror(-r));
                goto out;
        }
        /* dev/ stays: nodes clients hold are identified by inode; add the nodes of new cdevs. */
        for (size_t i = 0; i < t->n_devices; i++) {
                const SimDevice *d = &t->devices[i];
                char path[64];

                if (!d->cdev)
                        continue;
                snprintf(path, sizeof(path), "dev/vfio/devices/vfio%u", d->cdev_minor);
                if (fstatat(root_fd, path, &st, AT_SYMLINK_NOFOLLOW) >= 0)
                        continue;
                (void)mkdirat(root_fd, "dev/vfio", 0755);
                (void)mkdirat(root_fd, "dev/vfio/devices", 0755);
                if (renameat(staging_fd, path, root_fd, path) < 0) {
                        r = error_set(err, -errno, "cannot create %s/%s: %m", root, path);
                        goto out;
                }
        }
        r = 0;
out:
        /* The staging tree now holds the old sys/ (or the unused new one): it goes. */
        (void)simtopo_remove(staging);
        return r;
}
