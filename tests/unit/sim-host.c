/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "backend-sim.h"
#include "sim-host.h"
#include "simtopo.h"

void sim_host_setup(SessionHost *host, char *root, size_t root_size, const char *topology,
                    const char *policy_text) {
        _cleanup_(simtopo_freep) SimTopology *st = NULL;
        char sys[128];

        snprintf(root, root_size, "/tmp/iommud-test-host-XXXXXX");
        assert_non_null(mkdtemp(root));
        assert_int_equal(rmdir(root), 0);
        assert_int_equal(simtopo_load(&st, topology, NULL), 0);
        assert_int_equal(simtopo_materialize(st, root, NULL), 0);
        snprintf(sys, sizeof(sys), "%s/sys", root);
        assert_int_equal(topology_load_path(&host->topology, sys, NULL), 0);
        assert_int_equal(backend_sim_new(&host->backend, st, root, NULL), 0);
        assert_int_equal(policy_load_string(&host->policy, "test.json", policy_text,
                                            strlen(policy_text), NULL, NULL),
                         0);
}

void sim_host_teardown(SessionHost *host, const char *root) {
        session_host_done(host);
        backend_free(host->backend);
        topology_free(host->topology);
        policy_free(host->policy);
        simtopo_remove(root);
        host->backend = NULL;
        host->topology = NULL;
        host->policy = NULL;
}
