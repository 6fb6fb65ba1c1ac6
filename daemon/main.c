/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "explain.h"
#include "log.h"
#include "manager.h"
#include "policy.h"
#include "simtopo.h"
#include "topology.h"

typedef struct Options {
        ManagerConfig cfg;
        bool check_config;
        const char *explain;
        bool as_uid_set;
        uid_t as_uid;
} Options;

static void help(void) {
        printf("iommud %s: broker for the Linux IOMMU user API (iommufd)\n\n"
               "Usage: iommud [OPTIONS]\n\n"
               "  -h --help                    Show this help\n"
               "     --version                 Show the version\n"
               "     --sim TOPOLOGY            Simulate a host: a bundled topology name\n"
               "                               (workstation, server, arm, scale[:N]) or a\n"
               "                               .json path, materialized below RUNTIME_DIR/sim\n"
               "                               and served by the simulated backend (default:\n"
               "                               the kernel backend, never a silent fallback)\n"
               "     --sysfs-root PATH         Read the topology below PATH (default /sys)\n"
               "     --policy FILE             Admin policy file (default %s)\n"
               "     --policy-dir DIR          Admin drop-in directory (default %s)\n"
               "     --vendor-policy-dir DIR   Vendor drop-in directory (default %s)\n"
               "     --runtime-dir DIR         Runtime directory (default %s)\n"
               "     --socket PATH             Broker socket when not socket-activated\n"
               "                               (default RUNTIME_DIR/%s)\n"
               "     --bus-address ADDRESS     Serve org.iommud1 on this D-Bus address (default:\n"
               "                               $DBUS_SYSTEM_BUS_ADDRESS or the system bus)\n"
               "     --no-bus                  Do not connect to D-Bus; serve the socket only\n"
               "     --fd-store                Keep sessions in the service manager's fd store\n"
               "                               even when $FDSTORE is not set (systemd < 254\n"
               "                               with FileDescriptorStoreMax=)\n"
               "     --log-level LEVEL         debug, info, notice, warning, err, crit or 0-7\n"
               "     --check-config            Validate the policy, print every problem and\n"
               "                               exit (non-zero when it is invalid)\n"
               "     --explain DEVICE          Print the policy decision for DEVICE and exit\n"
               "                               (0 when allowed, 1 when refused)\n"
               "     --as-uid UID              With --explain: decide for this user (default:\n"
               "                               only the device's own eligibility)\n",
               PACKAGE_VERSION, IOMMUD_POLICY_FILE, IOMMUD_POLICY_DIR, IOMMUD_VENDOR_POLICY_DIR,
               IOMMUD_RUNTIME_DIR, IOMMUD_SOCKET_NAME);
}

enum {
        ARG_VERSION = 0x100,
        ARG_SIM,
        ARG_SYSFS_ROOT,
        ARG_POLICY,
        ARG_POLICY_DIR,
        ARG_VENDOR_POLICY_DIR,
        ARG_RUNTIME_DIR,
        ARG_SOCKET,
        ARG_BUS_ADDRESS,
        ARG_NO_BUS,
        ARG_LOG_LEVEL,
        ARG_CHECK_CONFIG,
        ARG_EXPLAIN,
        ARG_AS_UID,
        ARG_FD_STORE,
};

/* Returns 1 to go on, 0 to exit successfully, negative on a usage error. */
static int parse_argv(int argc, char *argv[], Options *o) {
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, ARG_VERSION },
                { "sim", required_argument, NULL, ARG_SIM },
                { "sysfs-root", required_argument, NULL, ARG_SYSFS_ROOT },
                { "policy", required_argument, NULL, ARG_POLICY },
                { "policy-dir", required_argument, NULL, ARG_POLICY_DIR },
                { "vendor-policy-dir", required_argument, NULL, ARG_VENDOR_POLICY_DIR },
                { "runtime-dir", required_argument, NULL, ARG_RUNTIME_DIR },
                { "socket", required_argument, NULL, ARG_SOCKET },
                { "bus-address", required_argument, NULL, ARG_BUS_ADDRESS },
                { "no-bus", no_argument, NULL, ARG_NO_BUS },
                { "log-level", required_argument, NULL, ARG_LOG_LEVEL },
                { "check-config", no_argument, NULL, ARG_CHECK_CONFIG },
                { "explain", required_argument, NULL, ARG_EXPLAIN },
                { "as-uid", required_argument, NULL, ARG_AS_UID },
                { "fd-store", no_argument, NULL, ARG_FD_STORE },
                {},
        };
        int c, r;

        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0)
                switch (c) {
                case 'h':
                        help();
                        return 0;
                case ARG_VERSION:
                        printf("iommud %s\n", PACKAGE_VERSION);
                        return 0;
                case ARG_SIM:
                        o->cfg.sim = optarg;
                        break;
                case ARG_SYSFS_ROOT:
                        o->cfg.sysfs_root = optarg;
                        break;
                case ARG_POLICY:
                        o->cfg.policy_paths.file = optarg;
                        break;
                case ARG_POLICY_DIR:
                        o->cfg.policy_paths.admin_dir = optarg;
                        break;
                case ARG_VENDOR_POLICY_DIR:
                        o->cfg.policy_paths.vendor_dir = optarg;
                        break;
                case ARG_RUNTIME_DIR:
                        o->cfg.runtime_dir = optarg;
                        break;
                case ARG_SOCKET:
                        o->cfg.socket_path = optarg;
                        break;
                case ARG_BUS_ADDRESS:
                        o->cfg.bus_address = optarg;
                        break;
                case ARG_NO_BUS:
                        o->cfg.no_bus = true;
                        break;
                case ARG_LOG_LEVEL:
                        r = log_level_from_string(optarg);
                        if (r < 0)
                                return log_error_errno(r, "Invalid --log-level '%s': expected "
                                                       "debug, info, notice, warning, err, crit "
                                                       "or 0-7.",
                                                       optarg);
                        log_set_max_level(r);
                        break;
                case ARG_FD_STORE:
                        o->cfg.fd_store = true;
                        break;
                case ARG_CHECK_CONFIG:
                        o->check_config = true;
                        break;
                case ARG_EXPLAIN:
                        o->explain = optarg;
                        break;
                case ARG_AS_UID: {
                        char *end;
                        unsigned long v;

                        errno = 0;
                        v = strtoul(optarg, &end, 10);
                        if (errno != 0 || end == optarg || *end || optarg[0] == '-' ||
                            v >= (uid_t)-1)
                                return log_error_errno(EINVAL, "Invalid --as-uid '%s': expected "
                                                       "a numeric uid.",
                                                       optarg);
                        o->as_uid = (uid_t)v;
                        o->as_uid_set = true;
                        break;
                }
                default:
                        return -EINVAL;
                }

        if (optind < argc)
                return log_error_errno(EINVAL, "Unexpected argument '%s'; see --help.",
                                       argv[optind]);
        if (o->as_uid_set && !o->explain)
                return log_error_errno(EINVAL, "--as-uid only makes sense with --explain.");
        return 1;
}

static int run_check_config(const Options *o) {
        _cleanup_(policy_freep) Policy *p = NULL;
        PolicyDiagnostics diags = {};
        Error err = ERROR_INIT;
        int r;

        r = policy_load(&p, &o->cfg.policy_paths, &diags, &err);
        (void)policy_diagnostics_print(&diags, stderr);
        policy_diagnostics_clear(&diags);
        if (r < 0) {
                log_error_errno(r, "The policy is invalid: %s", error_message(&err));
                return EXIT_FAILURE;
        }
        printf("Policy OK (generation %" PRIu64 ").\n", policy_generation(p));
        return EXIT_SUCCESS;
}

static int run_explain(const Options *o) {
        _cleanup_(policy_freep) Policy *p = NULL;
        _cleanup_(topology_freep) Topology *t = NULL;
        _cleanup_(policy_decision_clear) PolicyDecision dec = {};
        char tmp[] = "/tmp/iommud-explain-XXXXXX";
        _cleanup_free_ char *sysfs = NULL;
        bool sim_tree = false;
        PolicyDiagnostics diags = {};
        BrokerError e = BROKER_ERROR_INIT;
        Error err = ERROR_INIT;
        int r, ret = EXIT_FAILURE;

        r = policy_load(&p, &o->cfg.policy_paths, &diags, &err);
        if (r < 0) {
                (void)policy_diagnostics_print(&diags, stderr);
                policy_diagnostics_clear(&diags);
                log_error_errno(r, "The policy is invalid: %s", error_message(&err));
                return EXIT_FAILURE;
        }
        policy_diagnostics_clear(&diags);

        if (o->cfg.sim) {
                _cleanup_(simtopo_freep) SimTopology *st = NULL;

                r = simtopo_load(&st, o->cfg.sim, &err);
                if (r < 0) {
                        log_error_errno(r, "Loading simulated topology '%s' failed: %s",
                                        o->cfg.sim, error_message(&err));
                        return EXIT_FAILURE;
                }
                if (!mkdtemp(tmp)) {
                        log_error_errno(errno, "Creating a temporary directory failed: %m");
                        return EXIT_FAILURE;
                }
                sim_tree = true;
                r = simtopo_materialize(st, tmp, &err);
                if (r < 0) {
                        log_error_errno(r, "Materializing '%s' failed: %s", o->cfg.sim,
                                        error_message(&err));
                        goto finish;
                }
                if (asprintf(&sysfs, "%s/sys", tmp) < 0) {
                        log_oom();
                        goto finish;
                }
        }

        r = topology_load_path(&t, sysfs ?: o->cfg.sysfs_root ?: "/sys", &err);
        if (r < 0) {
                log_error_errno(r, "Reading the IOMMU topology failed: %s", error_message(&err));
                goto finish;
        }
        /* Offline no session can say who holds the device: the exclusive step is skipped. */
        r = explain_device_for(&(ExplainScope){ .policy = p, .topology = t }, o->explain,
                               &EXPLAIN_SUBJECT_UID(o->as_uid_set ? o->as_uid : UID_INVALID),
                               &dec, &e);
        if (r < 0) {
                log_error_errno(r, "%s", error_message(&e.error));
                goto finish;
        }
        (void)policy_decision_print(&dec, topology_find_device(t, o->explain), stdout);
        ret = dec.allowed ? EXIT_SUCCESS : EXIT_FAILURE;
finish:
        if (sim_tree)
                (void)simtopo_remove(tmp);
        return ret;
}

int main(int argc, char *argv[]) {
        _cleanup_(manager_freep) Manager *m = NULL;
        Options o = {};
        Error err = ERROR_INIT;
        int r;

        if (getenv("JOURNAL_STREAM"))
                log_set_target(LOG_TARGET_JOURNAL);

        r = parse_argv(argc, argv, &o);
        if (r <= 0)
                return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;

        if (o.check_config)
                return run_check_config(&o);
        if (o.explain)
                return run_explain(&o);

        r = manager_new(&m, &o.cfg, &err);
        if (r < 0) {
                log_error_errno(r, "%s", error_message(&err));
                return EXIT_FAILURE;
        }
        r = manager_start(m, &err);
        if (r < 0) {
                log_error_errno(r, "%s", error_message(&err));
                return EXIT_FAILURE;
        }
        r = manager_run(m);
        return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
