/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <ctype.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sysfs.h"
#include "topology-internal.h"

/* One member of an IOMMU group: its IDs and class, driver, NUMA node and vfio cdev. */

static bool name_is_pci_bdf(const char *s) {
        /* DDDD:BB:DD.F, lower or upper hex */
        static const char pattern[] = "xxxx:xx:xx.x";

        if (strlen(s) != sizeof(pattern) - 1)
                return false;
        for (size_t i = 0; pattern[i]; i++) {
                if (pattern[i] == 'x') {
                        if (!isxdigit((unsigned char)s[i]))
                                return false;
                } else if (s[i] != pattern[i])
                        return false;
        }
        return s[11] >= '0' && s[11] <= '7';
}

TopoDevice *topo_device_free(TopoDevice *d) {
        if (!d)
                return NULL;
        free(d->name);
        free(d->driver);
        free(d->cdev_name);
        free(d);
        return NULL;
}

int topo_device_cmp(const void *a, const void *b) {
        const TopoDevice *const *x = a, *const *y = b;
        return strcmp((*x)->name, (*y)->name);
}

/* Reads a "0x8086\n"-style attribute; what cannot be read becomes a problem. */
static void device_read_hex(Loader *l, int dev_fd, const char *dev_path, const char *attr,
                            uint32_t max, uint32_t *ret, bool *broken, int *oom) {
        char buf[64], path[PATH_MAX];
        uint64_t v;
        int r;

        sysfs_path_join(path, sizeof(path), dev_path, attr);
        r = sysfs_read_attr(dev_fd, attr, buf, sizeof(buf));
        if (r < 0) {
                topology_problem_errno(l, path, r, oom);
                *broken = true;
                return;
        }
        size_t n = (size_t)r;
        bool truncated = n == 0 || buf[n - 1] != '\n';
        if (!truncated)
                n--;
        if (truncated || !sysfs_parse_hex_u64(buf, n, &v) || v > max) {
                r = topology_problem_add(
                        l, path, 1, "expected a hex value up to 0x%x, got '%.*s'%s", max,
                        (int)MIN(n, 32), buf, truncated ? " (truncated line)" : "");
                if (r < 0)
                        *oom = r;
                *broken = true;
                return;
        }
        *ret = (uint32_t)v;
}

static void device_read_numa(Loader *l, int dev_fd, const char *dev_path, TopoDevice *d,
                             bool *broken, int *oom) {
        char buf[64], path[PATH_MAX], *end;
        long v;
        int r;

        r = sysfs_read_attr(dev_fd, "numa_node", buf, sizeof(buf));
        if (r == -ENOENT)
                return; /* kernels without NUMA have no such file */
        sysfs_path_join(path, sizeof(path), dev_path, "numa_node");
        if (r < 0) {
                topology_problem_errno(l, path, r, oom);
                *broken = true;
                return;
        }
        errno = 0;
        v = strtol(buf, &end, 10);
        if (errno != 0 || end == buf || *end != '\n' || end[1] != '\0' || v < -1 || v > 65535) {
                r = topology_problem_add(l, path, 1,
                                         "expected a NUMA node number or -1, got '%.*s'",
                                         (int)strcspn(buf, "\n"), buf);
                if (r < 0)
                        *oom = r;
                *broken = true;
                return;
        }
        d->numa_node = (int)v;
}

/*
 * Reads the basename of a symlink in the device directory ("driver",
 * "iommu").  Absolute links and, when check_target is set, links whose target
 * does not exist become problems.  *ret stays NULL when there is no link.
 */
void topo_device_read_link_name(Loader *l, int dev_fd, const char *dev_path, const char *attr,
                                bool check_target, char **ret, bool *broken, int *oom) {
        _cleanup_free_ char *target = NULL, *resolved = NULL;
        char path[PATH_MAX];
        int r;

        r = sysfs_readlink(dev_fd, attr, &target);
        if (r == -ENOENT)
                return;
        sysfs_path_join(path, sizeof(path), dev_path, attr);
        if (r == -EINVAL) {
                r = topology_problem_add(l, path, 0, "not a symlink");
                goto fail;
        }
        if (r < 0) {
                topology_problem_errno(l, path, r, oom);
                *broken = true;
                return;
        }
        r = sysfs_resolve_link(dev_path, target, &resolved);
        if (r == -EXDEV) {
                r = topology_problem_add(l, path, 0,
                                         "symlink target '%s' leads outside the sysfs root, "
                                         "not followed",
                                         target);
                goto fail;
        }
        if (r < 0)
                goto fail;
        if (check_target) {
                bool seen = false;

                for (size_t i = 0; i < l->n_seen_targets && !seen; i++)
                        seen = streq(l->seen_targets[i], resolved);
                if (!seen) {
                        _cleanup_close_ int fd =
                                sysfs_openat_beneath(l->root_fd, resolved, O_PATH, true);
                        if (fd < 0) {
                                r = topology_problem_add(
                                        l, path, 0, "symlink target '%s' does not exist", target);
                                goto fail;
                        }
                        if (l->n_seen_targets < ELEMENTSOF(l->seen_targets)) {
                                l->seen_targets[l->n_seen_targets] = strdup(resolved);
                                if (l->seen_targets[l->n_seen_targets])
                                        l->n_seen_targets++;
                        }
                }
        }

        const char *base = strrchr(resolved, '/');
        base = base ? base + 1 : resolved;
        if (!*base) {
                r = topology_problem_add(l, path, 0, "symlink target '%s' names no entry", target);
                goto fail;
        }
        *ret = strdup(base);
        if (!*ret)
                *oom = -ENOMEM;
        return;
fail:
        if (r < 0)
                *oom = r;
        *broken = true;
}

/* Parses exactly n hex digits (either case) at s. */
static bool parse_hex_digits(const char *s, size_t n, uint32_t *ret) {
        uint32_t v = 0;

        for (size_t i = 0; i < n; i++) {
                int c = (unsigned char)s[i];

                if (!isxdigit(c))
                        return false;
                v = (v << 4) | (uint32_t)(isdigit(c) ? c - '0' : (c | 0x20) - 'a' + 10);
        }
        *ret = v;
        return true;
}

/* "VVVV:DDDD", as the kernel prints PCI_ID and PCI_SUBSYS_ID. */
static bool parse_id_pair(const char *s, size_t n, uint16_t *ret_a, uint16_t *ret_b) {
        uint32_t a, b;

        if (n != 9 || s[4] != ':' || !parse_hex_digits(s, 4, &a) || !parse_hex_digits(s + 5, 4, &b))
                return false;
        *ret_a = (uint16_t)a;
        *ret_b = (uint16_t)b;
        return true;
}

/* What a PCI device's uevent said; each field is used only when it was read cleanly. */
typedef struct Uevent {
        bool have_class, have_id, have_subsys;
        bool complete; /* read whole with no bad line: the absence of DRIVER= means unbound */
        uint32_t class;
        uint16_t vendor, device, subsystem_vendor, subsystem_device;
        char *driver;
} Uevent;

/* Passes on out-of-memory from adding the problem about a garbled line; returns false. */
static bool uevent_bad(int r, int *oom) {
        if (r < 0)
                *oom = r;
        return false;
}

/*
 * One KEY=VALUE line of a uevent, without its newline.  Returns false when it is
 * garbled, after adding the problem that names it.
 */
static bool uevent_parse_line(Loader *l, const char *path, unsigned line, const char *p, size_t n,
                              const TopoDevice *d, Uevent *u, bool *slot_ok, int *oom) {
        const char *eq = memchr(p, '=', n), *v;
        size_t kn, vn;
        int r;

        if (!eq) {
                r = topology_problem_add(l, path, line, "expected KEY=VALUE, got '%.*s', reading "
                                         "the attribute files instead", (int)MIN(n, 64), p);
                return uevent_bad(r, oom);
        }
        kn = (size_t)(eq - p);
        v = eq + 1;
        vn = n - kn - 1;
        if (kn == 6 && strneq(p, "DRIVER", kn)) {
                if (vn == 0 || vn > NAME_MAX || memchr(v, '/', vn)) {
                        r = topology_problem_add(l, path, line, "expected a driver name, got "
                                                 "'%.*s', reading the driver link instead",
                                                 (int)MIN(vn, 64), v);
                        return uevent_bad(r, oom);
                }
                if (!u->driver && !(u->driver = strndup(v, vn)))
                        *oom = -ENOMEM;
        } else if (kn == 9 && strneq(p, "PCI_CLASS", kn)) {
                u->have_class = vn >= 4 && vn <= 6 && parse_hex_digits(v, vn, &u->class);
                if (!u->have_class) {
                        r = topology_problem_add(l, path, line, "expected PCI_CLASS=CCCCCC, got "
                                                 "'%.*s', reading the attribute files instead",
                                                 (int)MIN(vn, 64), v);
                        return uevent_bad(r, oom);
                }
        } else if (kn == 6 && strneq(p, "PCI_ID", kn)) {
                u->have_id = parse_id_pair(v, vn, &u->vendor, &u->device);
                if (!u->have_id) {
                        r = topology_problem_add(l, path, line, "expected PCI_ID=VVVV:DDDD, got "
                                                 "'%.*s', reading the attribute files instead",
                                                 (int)MIN(vn, 64), v);
                        return uevent_bad(r, oom);
                }
        } else if (kn == 13 && strneq(p, "PCI_SUBSYS_ID", kn)) {
                u->have_subsys = parse_id_pair(v, vn, &u->subsystem_vendor,
                                               &u->subsystem_device);
                if (!u->have_subsys) {
                        r = topology_problem_add(l, path, line, "expected PCI_SUBSYS_ID=SSSS:ssss, "
                                                 "got '%.*s', reading the attribute files instead",
                                                 (int)MIN(vn, 64), v);
                        return uevent_bad(r, oom);
                }
        } else if (kn == 13 && strneq(p, "PCI_SLOT_NAME", kn)) {
                *slot_ok = vn == strlen(d->name) && strneq(v, d->name, vn);
                if (!*slot_ok) {
                        r = topology_problem_add(l, path, line, "PCI_SLOT_NAME '%.*s' is not this "
                                                 "device, reading the attribute files instead",
                                                 (int)MIN(vn, 64), v);
                        return uevent_bad(r, oom);
                }
        }
        return true;
}

/*
 * Reads the uevent file the kernel's PCI core writes for every device
 * ("DRIVER=", "PCI_CLASS=%04X", "PCI_ID=%04X:%04X", "PCI_SUBSYS_ID=%04X:%04X",
 * "PCI_SLOT_NAME=", "MODALIAS=", one per line): one open and read instead of
 * five attribute files and the driver link.  A missing file is not a
 * problem; a garbled or truncated line is, naming the line, and whatever it
 * should have said is read from the attribute files instead.
 */
static void device_read_uevent(Loader *l, int dev_fd, const char *dev_path, const TopoDevice *d,
                               Uevent *u, int *oom) {
        char buf[ATTR_MAX], path[PATH_MAX];
        const char *p, *end;
        unsigned line = 0;
        bool bad = false, slot_ok = false;
        int r;

        r = sysfs_read_attr(dev_fd, "uevent", buf, sizeof(buf));
        if (r == -ENOENT)
                return;
        sysfs_path_join(path, sizeof(path), dev_path, "uevent");
        if (r < 0) {
                topology_problem_errno(l, path, r, oom);
                return;
        }

        for (p = buf, end = buf + r; p < end && !bad; p++) {
                const char *nl = memchr(p, '\n', (size_t)(end - p));

                line++;
                if (!nl) {
                        r = topology_problem_add(l, path, line, "truncated line: no newline at "
                                                 "its end, reading the attribute files instead");
                        bad = !uevent_bad(r, oom);
                        break;
                }
                bad = !uevent_parse_line(l, path, line, p, (size_t)(nl - p), d, u, &slot_ok, oom);
                p = nl;
        }
        /* A damaged file is trusted for nothing, and one without this device's slot name
         * may be another device's. */
        if (bad || !slot_ok)
                u->have_class = u->have_id = u->have_subsys = false;
        u->complete = u->have_class && u->have_id && u->have_subsys;
        if (!u->complete) {
                free(u->driver);
                u->driver = NULL;
        }
}

static void device_read_cdev(Loader *l, int dev_fd, const char *dev_path, TopoDevice *d,
                             bool *broken, int *oom) {
        _cleanup_close_ int vfd = -EBADF;
        DIR *dir;
        struct dirent *de;
        char path[PATH_MAX], buf[64];
        int r;

        vfd = sysfs_openat_beneath(dev_fd, "vfio-dev", O_RDONLY | O_DIRECTORY, false);
        if (vfd == -ENOENT)
                return;
        if (vfd < 0) {
                sysfs_path_join(path, sizeof(path), dev_path, "vfio-dev");
                topology_problem_errno(l, path, vfd, oom);
                *broken = true;
                return;
        }
        int dfd = fcntl(vfd, F_DUPFD_CLOEXEC, 3);
        if (dfd < 0) {
                *oom = -errno;
                return;
        }
        dir = fdopendir(dfd);
        if (!dir) {
                *oom = -errno;
                safe_close(dfd);
                return;
        }
        while ((de = readdir(dir))) {
                unsigned maj, min;
                char tail;

                if (!strneq(de->d_name, "vfio", 4) || !isdigit((unsigned char)de->d_name[4]))
                        continue;
                snprintf(path, sizeof(path), "%s/vfio-dev/%s/dev", dev_path, de->d_name);
                char rel[NAME_MAX + 8];
                snprintf(rel, sizeof(rel), "%s/dev", de->d_name);
                r = sysfs_read_attr(vfd, rel, buf, sizeof(buf));
                /* 6.1 (before VFIO cdevs) registers vfio-dev/vfioN without a node: no cdev. */
                if (r == -ENOENT)
                        continue;
                if (r < 0) {
                        topology_problem_errno(l, path, r, oom);
                        *broken = true;
                        continue;
                }
                if (d->has_cdev) {
                        r = topology_problem_add(l, path, 0, "second vfio cdev, ignoring");
                        if (r < 0)
                                *oom = r;
                        continue;
                }
                if (sscanf(buf, "%u:%u%c", &maj, &min, &tail) != 3 || tail != '\n' ||
                    (size_t)r != strlen(buf) || strchr(buf, '\n') != buf + r - 1) {
                        r = topology_problem_add(l, path, 1, "expected MAJOR:MINOR, got '%.*s'",
                                                 (int)strcspn(buf, "\n"), buf);
                        if (r < 0)
                                *oom = r;
                        *broken = true;
                        continue;
                }
                d->cdev_name = strdup(de->d_name);
                if (!d->cdev_name) {
                        *oom = -ENOMEM;
                        break;
                }
                d->has_cdev = true;
                d->cdev_major = maj;
                d->cdev_minor = min;
        }
        closedir(dir);
}

/*
 * Follows a group's member link to the device's directory.  Returns 1 with the
 * directory open, 0 when the link became a problem, or a negative errno.
 */
static int device_open(Loader *l, int group_devices_fd, const char *group_devices_path,
                       const char *name, char **ret_path, int *ret_fd) {
        _cleanup_free_ char *target = NULL, *dev_path = NULL;
        char link_path[PATH_MAX];
        int r, fd, oom = 0;

        sysfs_path_join(link_path, sizeof(link_path), group_devices_path, name);
        r = sysfs_readlink(group_devices_fd, name, &target);
        if (r == -EINVAL)
                return topology_problem_add(l, link_path, 0, "not a symlink");
        if (r == -ENOMEM)
                return r;
        if (r < 0) {
                topology_problem_errno(l, link_path, r, &oom);
                return oom;
        }
        r = sysfs_resolve_link(group_devices_path, target, &dev_path);
        if (r == -EXDEV)
                return topology_problem_add(l, link_path, 0, "symlink target '%s' leads outside "
                                            "the sysfs root, not followed", target);
        if (r < 0)
                return r;
        fd = sysfs_openat_beneath(l->root_fd, dev_path, O_PATH | O_DIRECTORY, true);
        if (fd == -ENOENT || fd == -ENOTDIR)
                return topology_problem_add(l, link_path, 0, "symlink target '%s' does not exist",
                                            target);
        if (fd < 0) {
                topology_problem_errno(l, link_path, fd, &oom);
                return oom;
        }
        *ret_path = TAKE_PTR(dev_path);
        *ret_fd = fd;
        return 1;
}

/*
 * Reads a PCI device's IDs and class: from its uevent where that can be trusted,
 * from the attribute files otherwise.  Returns whether the driver is known: a
 * complete uevent names it, or by leaving DRIVER= out says there is none.
 */
static bool device_read_pci(Loader *l, int dev_fd, const char *dev_path, TopoDevice *d,
                            bool *broken, int *oom) {
        Uevent u = {};
        uint32_t v;

        device_read_uevent(l, dev_fd, dev_path, d, &u, oom);
        if (u.have_id) {
                d->vendor = u.vendor;
                d->device = u.device;
        } else {
                v = 0, device_read_hex(l, dev_fd, dev_path, "vendor", 0xffff, &v, broken, oom);
                d->vendor = (uint16_t)v;
                v = 0, device_read_hex(l, dev_fd, dev_path, "device", 0xffff, &v, broken, oom);
                d->device = (uint16_t)v;
        }
        if (u.have_subsys) {
                d->subsystem_vendor = u.subsystem_vendor;
                d->subsystem_device = u.subsystem_device;
        } else {
                v = 0, device_read_hex(l, dev_fd, dev_path, "subsystem_vendor", 0xffff, &v, broken,
                                       oom);
                d->subsystem_vendor = (uint16_t)v;
                v = 0, device_read_hex(l, dev_fd, dev_path, "subsystem_device", 0xffff, &v, broken,
                                       oom);
                d->subsystem_device = (uint16_t)v;
        }
        if (u.have_class)
                d->class = u.class;
        else
                device_read_hex(l, dev_fd, dev_path, "class", 0xffffff, &d->class, broken, oom);
        d->driver = TAKE_PTR(u.driver);
        return u.complete;
}

/*
 * Reads one member of a group.  The device is returned even when some of it
 * could not be read (with *broken set); only out-of-memory fails.
 */
int topo_device_load(Loader *l, int group_devices_fd, const char *group_devices_path,
                     const char *name, TopoDevice **ret, bool *broken) {
        _cleanup_free_ char *dev_path = NULL;
        _cleanup_close_ int dev_fd = -EBADF;
        bool driver_known = false;
        int r, oom = 0;

        TopoDevice *d = calloc(1, sizeof(*d));
        if (!d)
                return -ENOMEM;
        d->numa_node = -1;
        d->name = strdup(name);
        if (!d->name) {
                topo_device_free(d);
                return -ENOMEM;
        }
        d->is_pci = name_is_pci_bdf(name);

        r = device_open(l, group_devices_fd, group_devices_path, name, &dev_path, &dev_fd);
        if (r <= 0) {
                /* Kept by name, with nothing read through the link. */
                *broken = true;
                if (r < 0) {
                        topo_device_free(d);
                        return r;
                }
                *ret = d;
                return 0;
        }

        if (d->is_pci)
                driver_known = device_read_pci(l, dev_fd, dev_path, d, broken, &oom);
        device_read_numa(l, dev_fd, dev_path, d, broken, &oom);
        if (!driver_known) {
                bool link_broken = false;

                topo_device_read_link_name(l, dev_fd, dev_path, "driver", true, &d->driver,
                                           &link_broken, &oom);
                driver_known = !link_broken;
                *broken = *broken || link_broken;
        }
        /* Only VFIO drivers (vfio-pci, its variants, vfio-platform) create a vfio cdev. */
        if (!driver_known || (d->driver && strstr(d->driver, "vfio")))
                device_read_cdev(l, dev_fd, dev_path, d, broken, &oom);
        /* The IOMMU is named by the instances' device lists, read later: keep where the
         * device lives in case none lists it. */
        if (oom < 0 || !topology_grow((void **)&l->links, &l->allocated_links, l->n_links + 1,
                                      sizeof(*l->links))) {
                topo_device_free(d);
                return oom < 0 ? oom : -ENOMEM;
        }
        l->links[l->n_links++] = (PendingIommuLink){ d, TAKE_PTR(dev_path) };
        *ret = d;
        return 0;
}
