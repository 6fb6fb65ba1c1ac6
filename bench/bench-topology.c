/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * How long topology_load() takes per device on a large host, against the
 * floor set by the file system: the same opens, reads, readlinks and
 * directory listings with no parsing, checking or allocation.  Both are
 * measured in this run on the same materialized "scale" tree, alternating,
 * and the medians are compared.  Prints figures only; never fails on time.
 *
 *   bench-topology [DEVICES [ROUNDS]]     default 4096 devices, 15 rounds
 */

#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench-report.h"
#include "macros.h"
#include "simtopo.h"
#include "topology.h"

#define TARGET_US_PER_DEVICE 25.0

static double now_us(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int cmp_double(const void *a, const void *b) {
        double x = *(const double *)a, y = *(const double *)b;
        return x < y ? -1 : x > y;
}

static void slurp(int dir_fd, const char *name) {
        char buf[4096];
        int fd = openat(dir_fd, name, O_RDONLY | O_CLOEXEC);

        if (fd < 0)
                return;
        /* One read: attributes are small and come whole. */
        (void)read(fd, buf, sizeof(buf));
        close(fd);
}

static void peek_link(int dir_fd, const char *name) {
        char buf[PATH_MAX];

        (void)readlinkat(dir_fd, name, buf, sizeof(buf));
}

/*
 * The baselines: the file system operations a reader needs, done through
 * plain openat() on the kernel-resolved paths.  "per-attribute" reads each
 * ID file and both links of every device (the classic way, and what
 * topology_load() did before it read uevent); "uevent" reads what
 * topology_load() reads now: uevent and numa_node, and vfio-dev only under
 * a VFIO driver.
 */
static size_t baseline_scan(int root_fd, bool uevent) {
        static const char *const classic[] = { "vendor", "device", "subsystem_vendor",
                                               "subsystem_device", "class", "numa_node" };
        static const char *const lean[] = { "uevent", "numa_node" };
        const char *const *attrs = uevent ? lean : classic;
        size_t n_attrs = uevent ? ELEMENTSOF(lean) : ELEMENTSOF(classic);
        size_t n_devices = 0;
        int groups_fd = openat(root_fd, "kernel/iommu_groups", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        DIR *groups = fdopendir(groups_fd);
        struct dirent *ge;

        while ((ge = readdir(groups))) {
                if (ge->d_name[0] == '.')
                        continue;
                int gfd = openat(groups_fd, ge->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                slurp(gfd, "type");
                slurp(gfd, "reserved_regions");
                int dfd = openat(gfd, "devices", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                DIR *devs = fdopendir(dfd);
                struct dirent *de;
                while ((de = readdir(devs))) {
                        if (de->d_name[0] == '.')
                                continue;
                        peek_link(dirfd(devs), de->d_name);
                        int devfd = openat(dirfd(devs), de->d_name,
                                           O_PATH | O_DIRECTORY | O_CLOEXEC);
                        char ue[4096] = "";
                        for (size_t i = 0; i < n_attrs; i++)
                                if (uevent && i == 0) {
                                        int fd = openat(devfd, "uevent", O_RDONLY | O_CLOEXEC);
                                        if (fd >= 0) {
                                                (void)!read(fd, ue, sizeof(ue) - 1);
                                                close(fd);
                                        }
                                } else
                                        slurp(devfd, attrs[i]);
                        if (!uevent) {
                                peek_link(devfd, "driver");
                                peek_link(devfd, "iommu");
                        }
                        int vfd = uevent && !strstr(ue, "DRIVER=vfio") ? -1 :
                                  openat(devfd, "vfio-dev", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                        if (vfd >= 0) {
                                DIR *v = fdopendir(vfd);
                                struct dirent *ve;
                                char rel[NAME_MAX + 8];
                                while ((ve = readdir(v)))
                                        if (strncmp(ve->d_name, "vfio", 4) == 0) {
                                                snprintf(rel, sizeof(rel), "%s/dev", ve->d_name);
                                                slurp(vfd, rel);
                                        }
                                closedir(v);
                        }
                        close(devfd);
                        n_devices++;
                }
                closedir(devs);
                close(gfd);
        }
        closedir(groups);

        int cfd = openat(root_fd, "class/iommu", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        DIR *cls = fdopendir(cfd);
        struct dirent *ce;
        while ((ce = readdir(cls))) {
                if (ce->d_name[0] == '.')
                        continue;
                peek_link(cfd, ce->d_name);
                char rel[NAME_MAX + 16];
                snprintf(rel, sizeof(rel), "%s/devices", ce->d_name);
                int dfd = openat(cfd, rel, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                DIR *d = fdopendir(dfd);
                while (readdir(d))
                        ;
                closedir(d);
        }
        closedir(cls);
        return n_devices;
}

int main(int argc, char *argv[]) {
        size_t n = argc > 1 ? strtoul(argv[1], NULL, 10) : 4096;
        unsigned rounds = argc > 2 ? (unsigned)strtoul(argv[2], NULL, 10) : 15;
        _cleanup_(simtopo_freep) SimTopology *st = NULL;
        const char *base = getenv("TMPDIR");
        char root[PATH_MAX], sys[PATH_MAX + 8];
        Error err = ERROR_INIT;
        size_t n_groups = 0;
        int r;

        if (rounds == 0)
                rounds = 1;
        if (simtopo_generate_scale(&st, n, &err) < 0) {
                fprintf(stderr, "bench-topology: %s\n", err.message);
                return 1;
        }
        /* tmpfs, like sysfs, keeps the figures about the code rather than a disk. */
        if (!base || !base[0])
                base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
        snprintf(root, sizeof(root), "%s/iommud-bench-topology-XXXXXX", base);
        if (!mkdtemp(root)) {
                fprintf(stderr, "bench-topology: cannot create %s: %m\n", root);
                return 1;
        }
        r = simtopo_materialize(st, root, &err);
        if (r < 0) {
                fprintf(stderr, "bench-topology: %s\n", err.message);
                (void)rmdir(root);
                return 1;
        }
        snprintf(sys, sizeof(sys), "%s/sys", root);
        int root_fd = open(sys, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (root_fd < 0) {
                fprintf(stderr, "bench-topology: cannot open %s: %m\n", sys);
                (void)simtopo_remove(root);
                return 1;
        }

        double *load = calloc(rounds, sizeof(double)), *floor_ = calloc(rounds, sizeof(double)),
               *lean = calloc(rounds, sizeof(double));
        if (!load || !floor_ || !lean)
                return 1;

        /* Warm the dentry and inode caches for both, then alternate. */
        {
                Topology *t = NULL;
                if (topology_load(&t, root_fd, &err) < 0) {
                        fprintf(stderr, "bench-topology: %s\n", err.message);
                        return 1;
                }
                if (t->n_devices != n || t->n_problems != 0) {
                        fprintf(stderr, "bench-topology: read %zu devices and %zu problems, "
                                "expected %zu and none\n", t->n_devices, t->n_problems, n);
                        return 1;
                }
                n_groups = t->n_groups;
                topology_free(t);
                if (baseline_scan(root_fd, false) != n || baseline_scan(root_fd, true) != n)
                        return 1;
        }
        for (unsigned i = 0; i < rounds; i++) {
                Topology *t = NULL;
                double t0 = now_us();
                r = topology_load(&t, root_fd, &err);
                double t1 = now_us();
                topology_free(t);
                if (r < 0)
                        return 1;
                load[i] = t1 - t0;

                t0 = now_us();
                size_t seen = baseline_scan(root_fd, false);
                t1 = now_us();
                if (seen != n)
                        return 1;
                floor_[i] = t1 - t0;

                t0 = now_us();
                seen = baseline_scan(root_fd, true);
                t1 = now_us();
                if (seen != n)
                        return 1;
                lean[i] = t1 - t0;
        }
        qsort(load, rounds, sizeof(double), cmp_double);
        qsort(floor_, rounds, sizeof(double), cmp_double);
        qsort(lean, rounds, sizeof(double), cmp_double);

        /* What one attribute costs on this machine, to read the absolute figures by. */
        double t0 = now_us();
        for (unsigned i = 0; i < 10000; i++)
                slurp(root_fd, "kernel/iommu_groups/0/type");
        double attr_us = (now_us() - t0) / 10000;

        double load_us = load[rounds / 2] / (double)n, floor_us = floor_[rounds / 2] / (double)n,
               lean_us = lean[rounds / 2] / (double)n;
        printf("topology_load: %zu devices in %zu groups, %u rounds (median)\n", n, n_groups,
               rounds);
        printf("  topology_load        %8.2f us/device  (%.1f ms per load)\n", load_us,
               load[rounds / 2] / 1e3);
        printf("  baseline open+read   %8.2f us/device  (per-attribute files and links, no parsing)\n",
               floor_us);
        printf("  ratio                %8.2fx\n", load_us / floor_us);
        printf("  uevent open+read     %8.2f us/device  (the files topology_load reads, no parsing)\n",
               lean_us);
        printf("  ratio                %8.2fx\n", load_us / lean_us);
        printf("  one attribute        %8.2f us        (open+read+close on this machine)\n",
               attr_us);
        printf("  target               %8.2f us/device: %s\n", TARGET_US_PER_DEVICE,
               load_us <= TARGET_US_PER_DEVICE ? "met" : "NOT met");
        bench_report("topology.load-per-device", load_us, "us", floor_us, TARGET_US_PER_DEVICE,
                     0, 1);
        bench_report("topology.load-vs-uevent-read", load_us, "us", lean_us, BENCH_NONE, 0, 1);

        free(load);
        free(floor_);
        free(lean);
        close(root_fd);
        r = simtopo_remove(root);
        if (r < 0)
                fprintf(stderr, "bench-topology: cannot remove %s: %s\n", root, strerror(-r));
        return 0;
}
