/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <ctype.h>
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sysfs.h"
#include "topology-internal.h"

/* kernel/iommu_groups/N: the group's default-domain type, reserved regions and members. */

void topo_group_free(TopoGroup *g) {
        if (!g)
                return;
        free(g->type);
        reserved_regions_free(g->regions, g->n_regions);
        free(g->devices);
        free(g);
}

int topo_group_cmp(const void *a, const void *b) {
        const TopoGroup *const *x = a, *const *y = b;
        return (*x)->id < (*y)->id ? -1 : (*x)->id > (*y)->id;
}

typedef struct RegionProblemCtx {
        Loader *loader;
        const char *path;
        int r;
} RegionProblemCtx;

static void region_problem(void *userdata, unsigned line, const char *msg) {
        RegionProblemCtx *c = userdata;
        int r = topology_problem_add(c->loader, c->path, line, "%s", msg);
        if (r < 0)
                c->r = r;
}

static int group_read_regions(Loader *l, int group_fd, const char *group_path, TopoGroup *g) {
        _cleanup_free_ char *buf = NULL;
        char path[PATH_MAX], msg[PROBLEM_MESSAGE_MAX];
        unsigned bad_line = 0;
        int r, oom = 0;

        sysfs_path_join(path, sizeof(path), group_path, "reserved_regions");
        buf = malloc(ATTR_MAX);
        if (!buf)
                return -ENOMEM;
        r = sysfs_read_attr(group_fd, "reserved_regions", buf, ATTR_MAX);
        if (r < 0) {
                topology_problem_errno(l, path, r, &oom);
                g->broken = true;
                return oom;
        }

        RegionProblemCtx ctx = { .loader = l, .path = path };
        size_t before = l->tp->pub.n_problems;
        r = reserved_regions_parse_lines(buf, (size_t)r, region_problem, &ctx, &g->regions,
                                         &g->n_regions, &bad_line, msg, sizeof(msg));
        if (r < 0)
                return r;
        if (ctx.r < 0)
                return ctx.r;
        if (l->tp->pub.n_problems > before)
                g->broken = true;

        size_t len = strlen(buf);
        if (len > 0 && buf[len - 1] != '\n') {
                unsigned lines = 1;
                for (size_t i = 0; i < len; i++)
                        lines += buf[i] == '\n';
                g->broken = true;
                r = topology_problem_add(l, path, lines, "truncated line: no newline at its end");
                if (r < 0)
                        return r;
        }

        /* Unknown types are kept (treated as reserved) and reported, but do not break a group. */
        for (size_t i = 0; i < g->n_regions; i++)
                if (g->regions[i].type == REGION_UNKNOWN) {
                        r = topology_problem_add(l, path, 0,
                                                 "unknown region type '%s' at 0x%016" PRIx64
                                                 ", treated as reserved",
                                                 g->regions[i].type_name, g->regions[i].start);
                        if (r < 0)
                                return r;
                }
        return 0;
}

static int group_read_type(Loader *l, int group_fd, const char *group_path, TopoGroup *g) {
        char buf[128], path[PATH_MAX];
        int r, oom = 0;

        sysfs_path_join(path, sizeof(path), group_path, "type");
        r = sysfs_read_attr(group_fd, "type", buf, sizeof(buf));
        if (r < 0) {
                topology_problem_errno(l, path, r, &oom);
                g->broken = true;
                return oom;
        }
        size_t n = (size_t)r;
        if (n == 0 || buf[n - 1] != '\n' || memchr(buf, '\n', n) != buf + n - 1 || n == 1 ||
            strcspn(buf, " \t") < n - 1) {
                g->broken = true;
                return topology_problem_add(l, path, 1,
                                            "expected one word and a newline, got '%.*s'",
                                            (int)strcspn(buf, "\n"), buf);
        }
        g->type = strndup(buf, n - 1);
        return g->type ? 0 : -ENOMEM;
}

static int topology_add_device(Loader *l, TopoDevice *d) {
        Topology *t = &l->tp->pub;

        if (!topology_grow((void **)&t->devices, &l->tp->allocated_devices, t->n_devices + 1,
                           sizeof(*t->devices)))
                return -ENOMEM;
        t->devices[t->n_devices++] = d;
        return 0;
}

static int group_read_devices(Loader *l, int group_fd, const char *group_path, TopoGroup *g) {
        _cleanup_close_ int dfd = -EBADF;
        char path[PATH_MAX];
        size_t allocated = 0;
        struct dirent *de;
        DIR *dir;
        int r = 0, oom = 0;

        sysfs_path_join(path, sizeof(path), group_path, "devices");
        dfd = sysfs_openat_beneath(group_fd, "devices", O_RDONLY | O_DIRECTORY, false);
        if (dfd < 0) {
                topology_problem_errno(l, path, dfd, &oom);
                g->broken = true;
                return oom;
        }
        dir = fdopendir(dfd);
        if (!dir)
                return -errno;
        int dir_fd = TAKE_FD(dfd);

        while ((de = readdir(dir))) {
                TopoDevice *d = NULL;

                if (de->d_name[0] == '.')
                        continue;
                r = topo_device_load(l, dir_fd, path, de->d_name, &d, &g->broken);
                if (r < 0)
                        break;
                d->group = g;
                r = topology_add_device(l, d);
                if (r < 0) {
                        /* d may already be in l->links: drop that entry with it. */
                        if (l->n_links > 0 && l->links[l->n_links - 1].device == d)
                                free(l->links[--l->n_links].dev_path);
                        topo_device_free(d);
                        break;
                }
                if (!topology_grow((void **)&g->devices, &allocated, g->n_devices + 1,
                                   sizeof(*g->devices))) {
                        r = -ENOMEM;
                        break;
                }
                g->devices[g->n_devices++] = d;
        }
        closedir(dir);
        if (r < 0)
                return r;
        if (g->n_devices > 1)
                qsort(g->devices, g->n_devices, sizeof(*g->devices), topo_device_cmp);
        return 0;
}

static bool parse_group_id(const char *s, unsigned *ret) {
        unsigned long v;
        char *end;

        if (!isdigit((unsigned char)s[0]) || (s[0] == '0' && s[1]))
                return false;
        errno = 0;
        v = strtoul(s, &end, 10);
        if (errno || *end || v > UINT32_MAX)
                return false;
        *ret = (unsigned)v;
        return true;
}

/* A VFIO driver made the group's legacy file /dev/vfio/<id>: sysfs has class/vfio/<id>. */
static bool group_has_vfio_node(Loader *l, unsigned id) {
        char path[32];

        snprintf(path, sizeof(path), "class/vfio/%u", id);
        return faccessat(l->root_fd, path, F_OK, AT_SYMLINK_NOFOLLOW) == 0;
}

int topo_group_load(Loader *l, int groups_fd, const char *name) {
        Topology *t = &l->tp->pub;
        _cleanup_close_ int gfd = -EBADF;
        char group_path[PATH_MAX];
        unsigned id;
        int r;

        snprintf(group_path, sizeof(group_path), "kernel/iommu_groups/%s", name);
        if (!parse_group_id(name, &id))
                return topology_problem_add(l, group_path, 0,
                                            "not a decimal group number, ignoring");

        gfd = sysfs_openat_beneath(groups_fd, name, O_RDONLY | O_DIRECTORY, false);
        if (gfd < 0) {
                int oom = 0;
                topology_problem_errno(l, group_path, gfd, &oom);
                return oom;
        }

        TopoGroup *g = calloc(1, sizeof(*g));
        if (!g)
                return -ENOMEM;
        g->id = id;
        if (!topology_grow((void **)&t->groups, &l->tp->allocated_groups, t->n_groups + 1,
                           sizeof(*t->groups))) {
                topo_group_free(g);
                return -ENOMEM;
        }
        t->groups[t->n_groups++] = g;

        /* What goes wrong from here on is about this group: an update replaces it with it. */
        l->group = id;
        r = group_read_type(l, gfd, group_path, g);
        if (r >= 0) {
                g->vfio_group_node = group_has_vfio_node(l, id);
                r = group_read_regions(l, gfd, group_path, g);
        }
        if (r >= 0)
                r = group_read_devices(l, gfd, group_path, g);
        l->group = TOPOLOGY_NO_GROUP;
        return r;
}
