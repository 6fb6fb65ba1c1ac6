/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * What one hotplug event costs: what the daemon does for one uevent (where
 * sysfs puts the device, then topology_update_groups() of its group, in
 * place), against reading the whole topology again, measured in the same run
 * on the same tree.  Target: one event at most 1/100 of a full reload, and
 * at most 1 ms on the 4096-device host.  Prints figures, never fails on time.
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

/* One uevent about device name, as manager-hotplug.c handles it: ms per event. */
static double update_one_device(Topology *t, const char *sys, const char *name, int reps) {
        int root_fd = open(sys, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        double t0 = now_ms();

        for (int rep = 0; rep < reps; rep++) {
                const TopoDevice *d = topology_find_device(t, name);
                unsigned ids[2], n = 0, now;
                TopologyDiff diff = {};
                Error err = ERROR_INIT;

                if (d && d->group)
                        ids[n++] = d->group->id;
                if (topology_device_group(root_fd, NULL, name, &now) >= 0)
                        ids[n++] = now;
                if (topology_update_groups(t, root_fd, ids, n, &diff, &err) < 0) {
                        fprintf(stderr, "update failed: %s\n", error_message(&err));
                        exit(1);
                }
                topology_diff_done(&diff);
        }
        close(root_fd);
        return (now_ms() - t0) / reps;
}

int main(void) {
        static const size_t sizes[] = { 64, 1024, 4096 };

        for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
                char root[] = "/tmp/iommud-bench-hotplug-XXXXXX", sys[64];
                SimTopology *st = NULL;
                Topology *live = NULL;
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
                if (topology_load_path(&live, sys, &err) < 0) {
                        fprintf(stderr, "load failed: %s\n", error_message(&err));
                        return 1;
                }
                one = update_one_device(live, sys, st->devices[st->n_devices / 2].name, 200);
                topology_free(live);
                printf("%5zu devices: full topology reload %.2f ms, one uevent (its group read "
                       "again in place) %.4f ms, 1/%.0f of a reload\n",
                       sizes[k], full, one, full / one);
                {
                        char name[64];

                        snprintf(name, sizeof(name), "hotplug.one-uevent-%zu-devices", sizes[k]);
                        /* The targets are the large host's; smaller ones show the trend. */
                        bench_report(name, one, "ms", full, sizes[k] == 4096 ? 0.01 : BENCH_NONE,
                                     1, 1);
                        if (sizes[k] == 4096)
                                bench_report("hotplug.one-uevent-ms", one, "ms", BENCH_NONE, 1.0,
                                             0, 1);
                }
                simtopo_remove(root);
                simtopo_free(st);
        }
        return 0;
}
