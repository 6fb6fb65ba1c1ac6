/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Simulated topologies: freeing one, finding a device in it, and finding a
 * description by name (bundled, generated or a file).  Parsing is in
 * simtopo-json.c, the generated "scale" host in simtopo-scale.c, the tree on
 * disk in simtopo-materialize.c.
 */

#include <ctype.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "assert-util.h"
#include "file-util.h"
#include "simtopo-internal.h"
#include "simtopo.h"

#define SIMTOPO_FILE_MAX (64u << 20) /* the largest description file read */

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

bool name_is_pci_bdf(const char *s) {
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
bool name_is_valid(const char *s) {
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
int simtopo_finish(SimTopology *t, char **paths, Error *err) {
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

        assert_return(ret && name_or_path, -EINVAL);

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
