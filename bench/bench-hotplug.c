/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * What one hotplug event costs: reading the whole topology again, against
 * only opening and reading the sysfs files of the one device that changed
 * (the least an incremental update could do).  Decides whether hotplug
 * re-reads everything; prints figures, never fails on time.
 */

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "bench-report.h"
#include "simtopo.h"
#include "topology.h"

static double now_ms(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static double read_one_device(const char *sys, const char *bdf) {
        static const char *const files[] = { "vendor", "device", "class", "numa_node", NULL };
        char path[512], buf[64];
        double t0 = now_ms();

        for (int rep = 0; rep < 100; rep++)
                for (size_t i = 0; files[i]; i++) {
                        int fd;

                        snprintf(path, sizeof(path), "%s/bus/pci/devices/%s/%s", sys, bdf,
                                 files[i]);
                        fd = open(path, O_RDONLY | O_CLOEXEC);
                        if (fd >= 0) {
                                (void)!read(fd, buf, sizeof(buf));
                                close(fd);
                        }
                }
        return (now_ms() - t0) / 100;
}

int main(void) {
        static const size_t sizes[] = { 64, 1024, 4096 };

        for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
                char root[] = "/tmp/iommud-bench-hotplug-XXXXXX", sys[64];
                SimTopology *st = NULL;
                Error err = ERROR_INIT;
                double t0, full, one;
                const int reps = 5;

                if (!mkdtemp(root) || simtopo_generate_scale(&st, sizes[k], &err) < 0 ||
                    simtopo_materialize(st, root, &err) < 0) {
                        fprintf(stderr, "setup failed: %s\n", error_message(&err));
                        return 1;
                }
                snprintf(sys, sizeof(sys), "%s/sys", root);
                t0 = now_ms();
                for (int i = 0; i < reps; i++) {
                        Topology *t = NULL;

                        if (topology_load_path(&t, sys, &err) < 0) {
                                fprintf(stderr, "load failed: %s\n", error_message(&err));
                                return 1;
                        }
                        topology_free(t);
                }
                full = (now_ms() - t0) / reps;
                one = read_one_device(sys, st->devices[st->n_devices / 2].name);
                printf("%5zu devices: full topology reload %.2f ms, one device's files %.4f ms, "
                       "ratio %.0fx\n",
                       sizes[k], full, one, full / one);
                {
                        char name[64];

                        snprintf(name, sizeof(name), "hotplug.full-reload-%zu-devices", sizes[k]);
                        bench_report(name, full, "ms", one, BENCH_NONE, 1, 1);
                }
                simtopo_remove(root);
                simtopo_free(st);
        }
        return 0;
}
