/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * iommud-simtopo: a build-tree helper around simulated topologies.
 *
 *   iommud-simtopo materialize TOPOLOGY DIR   write DIR/sys and DIR/dev
 *   iommud-simtopo show TOPOLOGY              print the topology as topology_load() reads it
 *   iommud-simtopo remove DIR                 delete a tree made by materialize
 */

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include "simtopo.h"
#include "topology-json.h"
#include "topology.h"

static int usage(FILE *f) {
        fputs("Usage: iommud-simtopo materialize TOPOLOGY DIR\n"
              "       iommud-simtopo show TOPOLOGY\n"
              "       iommud-simtopo remove DIR\n"
              "TOPOLOGY is a bundled name (workstation, server, arm), scale[:N] or a .json path.\n",
              f);
        return f == stderr ? 2 : 0;
}

static int show(const char *name) {
        _cleanup_(simtopo_freep) SimTopology *st = NULL;
        _cleanup_(topology_freep) Topology *t = NULL;
        const char *base = getenv("TMPDIR");
        char tmp[PATH_MAX], sys[PATH_MAX + 8];
        json_object *j = NULL;
        Error err = ERROR_INIT;
        int r;

        r = simtopo_load(&st, name, &err);
        if (r < 0) {
                fprintf(stderr, "iommud-simtopo: %s\n", error_message(&err));
                return 1;
        }
        /* tmpfs keeps materializing thousands of small files cheap. */
        if (!base || !base[0])
                base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
        snprintf(tmp, sizeof(tmp), "%s/iommud-simtopo-XXXXXX", base);
        if (!mkdtemp(tmp)) {
                fprintf(stderr, "iommud-simtopo: cannot create a temporary directory: %m\n");
                return 1;
        }
        r = simtopo_materialize(st, tmp, &err);
        if (r >= 0) {
                snprintf(sys, sizeof(sys), "%s/sys", tmp);
                r = topology_load_path(&t, sys, &err);
        }
        (void)simtopo_remove(tmp);
        (void)rmdir(tmp);
        if (r < 0) {
                fprintf(stderr, "iommud-simtopo: %s\n", error_message(&err));
                return 1;
        }
        r = topology_to_json(t, &j);
        if (r < 0) {
                fprintf(stderr, "iommud-simtopo: %s\n", strerror(-r));
                return 1;
        }
        puts(json_object_to_json_string_ext(j, JSON_C_TO_STRING_PRETTY |
                                                       JSON_C_TO_STRING_SPACED |
                                                       JSON_C_TO_STRING_NOSLASHESCAPE));
        json_object_put(j);
        return 0;
}

int main(int argc, char *argv[]) {
        Error err = ERROR_INIT;

        if (argc == 2 && (streq(argv[1], "-h") || streq(argv[1], "--help")))
                return usage(stdout);
        if (argc == 4 && streq(argv[1], "materialize")) {
                _cleanup_(simtopo_freep) SimTopology *st = NULL;

                if (simtopo_load(&st, argv[2], &err) < 0 ||
                    simtopo_materialize(st, argv[3], &err) < 0) {
                        fprintf(stderr, "iommud-simtopo: %s\n", error_message(&err));
                        return 1;
                }
                return 0;
        }
        if (argc == 3 && streq(argv[1], "show"))
                return show(argv[2]);
        if (argc == 3 && streq(argv[1], "remove")) {
                int r = simtopo_remove(argv[2]);
                if (r < 0) {
                        fprintf(stderr, "iommud-simtopo: cannot remove %s: %s\n", argv[2],
                                r == -EPERM ? "not a materialized topology" : strerror(-r));
                        return 1;
                }
                return 0;
        }
        return usage(stderr);
}
