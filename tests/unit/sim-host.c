/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <fcntl.h>
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

Session *sim_host_session(SessionHost *host, uid_t uid, pid_t pid) {
        PeerCreds *c = NULL;
        Session *s = NULL;

        assert_int_equal(peer_creds_new(&c, "/nonexistent", pid, uid, uid, NULL), 0);
        assert_int_equal(session_new(&s, host, c, NULL), 0);
        return s;
}

int sim_host_open_device(const SessionHost *host, const char *root, const char *name) {
        const TopoDevice *d = topology_find_device(host->topology, name);
        char path[256];
        int fd;

        assert_non_null(d);
        assert_non_null(d->cdev_name);
        snprintf(path, sizeof(path), "%s/dev/vfio/devices/%s", root, d->cdev_name);
        fd = open(path, O_RDWR | O_CLOEXEC);
        assert_true(fd >= 0);
        return fd;
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
