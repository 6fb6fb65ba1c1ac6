/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Materializing a simulated topology: the sysfs-like tree and device nodes
 * written to disk, removed, and rewritten after hotplug.
 */

#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "assert-util.h"
#include "simtopo-internal.h"
#include "simtopo.h"

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

/* The PCI attributes of the device's directory, fd. */
static int materialize_pci_attributes(const SimDevice *d, int fd) {
        int r;

        if ((r = write_at(fd, "vendor", 0644, "0x%04x\n", d->vendor)) < 0 ||
            (r = write_at(fd, "device", 0644, "0x%04x\n", d->device)) < 0 ||
            (r = write_at(fd, "subsystem_vendor", 0644, "0x%04x\n", d->subsystem_vendor)) < 0 ||
            (r = write_at(fd, "subsystem_device", 0644, "0x%04x\n", d->subsystem_device)) < 0 ||
            (r = write_at(fd, "class", 0644, "0x%06x\n", d->class)) < 0)
                return r;
        /* Byte for byte what the driver core and pci_uevent() print. */
        return write_at(fd, "uevent", 0644,
                        "%s%s%s"
                        "PCI_CLASS=%04X\n"
                        "PCI_ID=%04X:%04X\n"
                        "PCI_SUBSYS_ID=%04X:%04X\n"
                        "PCI_SLOT_NAME=%s\n"
                        "MODALIAS=pci:v%08Xd%08Xsv%08Xsd%08Xbc%02Xsc%02Xi%02x\n",
                        d->driver ? "DRIVER=" : "", d->driver ?: "", d->driver ? "\n" : "",
                        d->class, d->vendor, d->device, d->subsystem_vendor, d->subsystem_device,
                        d->name, d->vendor, d->device, d->subsystem_vendor, d->subsystem_device,
                        (d->class >> 16) & 0xff, (d->class >> 8) & 0xff, d->class & 0xff);
}

/* The vfio cdev of the device in directory dir (fd): its sysfs entries and its node. */
static int materialize_cdev(const SimTopology *t, const SimDevice *d, const char *dir, int fd,
                            int root_fd, int sys_fd) {
        char path[256];
        int r;

        snprintf(path, sizeof(path), "vfio-dev/vfio%u/dev", d->cdev_minor);
        if ((r = write_at(fd, path, 0644, "%u:%u\n", t->cdev_major, d->cdev_minor)) < 0)
                return r;
        snprintf(path, sizeof(path), "dev/char/%u:%u", t->cdev_major, d->cdev_minor);
        if ((r = symlink_at(sys_fd, path, "../../%s/vfio-dev/vfio%u", dir, d->cdev_minor)) < 0)
                return r;
        snprintf(path, sizeof(path), "dev/vfio/devices/vfio%u", d->cdev_minor);
        return write_at(root_fd, path, 0666, "%s", "");
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
        if (pci && (r = materialize_pci_attributes(d, fd)) < 0)
                return r;
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
        if (d->cdev)
                return materialize_cdev(t, d, dir, fd, root_fd, sys_fd);
        return 0;
}

static int materialize_iommu(const SimIommu *m, int sys_fd) {
        char path[128];
        int r;

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
        return symlink_at(sys_fd, path, "../../devices/virtual/iommu/%s", m->name);
}

static int materialize_group(const SimGroup *g, int sys_fd) {
        _cleanup_free_ char *regions = NULL;
        _cleanup_close_ int fd = -EBADF;
        char path[64];
        size_t size = 0;
        FILE *f;
        int r;

        snprintf(path, sizeof(path), "kernel/iommu_groups/%u/devices", g->id);
        if ((r = mkdir_p_at(sys_fd, path)) < 0)
                return r;
        snprintf(path, sizeof(path), "kernel/iommu_groups/%u/type", g->id);
        if ((r = write_at(sys_fd, path, 0644, "%s\n", g->type)) < 0)
                return r;

        /* Exactly the kernel's "0x%016llx 0x%016llx %s\n" per region. */
        f = open_memstream(&regions, &size);
        if (!f)
                return -ENOMEM;
        for (size_t k = 0; k < g->n_regions; k++)
                fprintf(f, "0x%016" PRIx64 " 0x%016" PRIx64 " %s\n", g->regions[k].start,
                        g->regions[k].last, g->regions[k].type_name);
        if (fclose(f) != 0)
                return -ENOMEM;
        snprintf(path, sizeof(path), "kernel/iommu_groups/%u/reserved_regions", g->id);
        fd = openat(sys_fd, path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
        if (fd < 0)
                return -errno;
        if (write(fd, regions, size) != (ssize_t)size)
                return -EIO;
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

        for (size_t i = 0; i < t->n_iommus; i++)
                if ((r = materialize_iommu(&t->iommus[i], sys_fd)) < 0)
                        return r;
        for (size_t i = 0; i < t->n_groups; i++)
                if ((r = materialize_group(&t->groups[i], sys_fd)) < 0)
                        return r;
        for (size_t i = 0; i < t->n_devices; i++)
                if ((r = materialize_device(t, &t->devices[i], root_fd, sys_fd)) < 0)
                        return r;

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

        assert_return(t && root, -EINVAL);

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

        assert_return(root, -EINVAL);

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

        assert_return(t && root, -EINVAL);

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
