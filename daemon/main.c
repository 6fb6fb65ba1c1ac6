/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "assert-util.h"
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
               "                               and served by the simulated backend\n"
               "     --backend NAME            auto (default: iommufd when /dev/iommu works,\n"
               "                               else VFIO type1), iommufd (or kernel), vfio,\n"
               "                               or sim (with --sim); a forced backend that does\n"
               "                               not work is an error, never a fallback\n"
               "     --sysfs-root PATH         Read the topology below PATH (default /sys)\n"
               "     --policy FILE             Admin policy file (default %s)\n"
               "     --policy-dir DIR          Admin drop-in directory (default %s)\n"
               "     --vendor-policy-dir DIR   Vendor drop-in directory (default %s)\n"
               "     --runtime-dir DIR         Runtime directory (default %s)\n"
               "     --cdi-dir DIR             Where runtime claims' CDI specs go (default %s)\n"
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
               IOMMUD_RUNTIME_DIR, IOMMUD_CDI_DIR, IOMMUD_SOCKET_NAME);
}

static int option_help(const char *arg, Options *o) {
        help();
        return 0;
}

static int option_version(const char *arg, Options *o) {
        printf("iommud %s\n", PACKAGE_VERSION);
        return 0;
}

static int option_log_level(const char *arg, Options *o) {
        int r = log_level_from_string(arg);

        if (r < 0)
                return log_error_errno(r, "Invalid --log-level '%s': expected debug, info, "
                                       "notice, warning, err, crit or 0-7.",
                                       arg);
        log_set_max_level(r);
        return 1;
}

static int option_as_uid(const char *arg, Options *o) {
        char *end;
        unsigned long v;

        errno = 0;
        v = strtoul(arg, &end, 10);
        if (errno != 0 || end == arg || *end || arg[0] == '-' || v >= (uid_t)-1)
                return log_error_errno(EINVAL, "Invalid --as-uid '%s': expected a numeric uid.",
                                       arg);
        o->as_uid = (uid_t)v;
        o->as_uid_set = true;
        return 1;
}

/*
 * Every option is one entry: a string option stores its argument and a flag
 * stores true in the field of Options at offset; the others call parse(),
 * which returns 1 to go on, 0 to exit successfully, negative on a usage error.
 * The order is getopt_long()'s, which names ambiguous abbreviations in it.
 */
typedef enum OptionKind {
        OPTION_STRING,
        OPTION_FLAG,
        OPTION_CALL,
} OptionKind;

typedef struct OptionSpec {
        const char *name;
        char short_name; /* 0: none */
        int has_arg;     /* no_argument or required_argument */
        OptionKind kind;
        size_t offset;
        int (*parse)(const char *arg, Options *o);
} OptionSpec;

/* The offset of field in Options; a field not of type t does not build. */
#define OPTION_FIELD_IS(field, t) __builtin_types_compatible_p(__typeof__(((Options *)0)->field), t)
#define OPTION_OFFSET(field, t)                                                                    \
        (offsetof(Options, field) + 0 * sizeof(char[OPTION_FIELD_IS(field, t) ? 1 : -1]))
#define OPTION_STR(n, field)                                                                       \
        { n, 0, required_argument, OPTION_STRING, OPTION_OFFSET(field, const char *), NULL }
#define OPTION_BOOL(n, field) { n, 0, no_argument, OPTION_FLAG, OPTION_OFFSET(field, bool), NULL }
#define OPTION_FN(n, s, a, fn) { n, s, a, OPTION_CALL, 0, fn }

static const OptionSpec option_specs[] = {
        OPTION_FN("help", 'h', no_argument, option_help),
        OPTION_FN("version", 0, no_argument, option_version),
        OPTION_STR("sim", cfg.sim),
        OPTION_STR("backend", cfg.backend),
        OPTION_STR("sysfs-root", cfg.sysfs_root),
        OPTION_STR("policy", cfg.policy_paths.file),
        OPTION_STR("policy-dir", cfg.policy_paths.admin_dir),
        OPTION_STR("vendor-policy-dir", cfg.policy_paths.vendor_dir),
        OPTION_STR("runtime-dir", cfg.runtime_dir),
        OPTION_STR("cdi-dir", cfg.cdi_dir),
        OPTION_STR("socket", cfg.socket_path),
        OPTION_STR("bus-address", cfg.bus_address),
        OPTION_BOOL("no-bus", cfg.no_bus),
        OPTION_FN("log-level", 0, required_argument, option_log_level),
        OPTION_BOOL("check-config", check_config),
        OPTION_STR("explain", explain),
        OPTION_FN("as-uid", 0, required_argument, option_as_uid),
        OPTION_BOOL("fd-store", cfg.fd_store),
};

/* getopt_long() returns OPTION_VAL + the index of a long option, a short one as itself. */
#define OPTION_VAL 0x100

static const OptionSpec *option_find(int c) {
        if (c >= OPTION_VAL && (size_t)(c - OPTION_VAL) < ELEMENTSOF(option_specs))
                return &option_specs[c - OPTION_VAL];
        for (size_t i = 0; c > 0 && i < ELEMENTSOF(option_specs); i++)
                if (option_specs[i].short_name == c)
                        return &option_specs[i];
        return NULL; /* '?': getopt_long() said what was wrong */
}

static int option_apply(const OptionSpec *spec, const char *arg, Options *o) {
        uint8_t *field;

        if (!spec)
                return -EINVAL;
        field = (uint8_t *)o + spec->offset;
        switch (spec->kind) {
        case OPTION_STRING:
                *(const char **)(void *)field = arg;
                return 1;
        case OPTION_FLAG:
                *(bool *)(void *)field = true;
                return 1;
        case OPTION_CALL:
                return spec->parse(arg, o);
        }
        assert_not_reached();
}

/* Returns 1 to go on, 0 to exit successfully, negative on a usage error. */
static int parse_argv(int argc, char *argv[], Options *o) {
        struct option options[ELEMENTSOF(option_specs) + 1] = {};
        char shorts[2 * ELEMENTSOF(option_specs) + 1] = "";
        size_t n = 0;
        int c, r;

        for (size_t i = 0; i < ELEMENTSOF(option_specs); i++) {
                const OptionSpec *spec = &option_specs[i];

                options[i] = (struct option){
                        .name = spec->name,
                        .has_arg = spec->has_arg,
                        .val = OPTION_VAL + (int)i,
                };
                if (spec->short_name) {
                        shorts[n++] = spec->short_name;
                        if (spec->has_arg == required_argument)
                                shorts[n++] = ':';
                }
        }
        while ((c = getopt_long(argc, argv, shorts, options, NULL)) >= 0) {
                r = option_apply(option_find(c), optarg, o);
                if (r <= 0)
                        return r;
        }

        if (optind < argc)
                return log_error_errno(EINVAL, "Unexpected argument '%s'; see --help.",
                                       argv[optind]);
        if (o->as_uid_set && !o->explain)
                return log_error_errno(EINVAL, "--as-uid only makes sense with --explain.");
        return 1;
}

/* The host an offline command looks at: --sim's topology (written out to tmp), else sysfs. */
typedef struct OfflineHost {
        Topology *topology;
        char tmp[32];
        bool sim_tree;
} OfflineHost;

static void offline_host_done(OfflineHost *h) {
        h->topology = topology_free(h->topology);
        if (h->sim_tree)
                (void)simtopo_remove(h->tmp);
        h->sim_tree = false;
}

static int offline_host_load(const Options *o, OfflineHost *h, Error *err) {
        _cleanup_free_ char *sysfs = NULL;
        int r;

        *h = (OfflineHost){ .tmp = "/tmp/iommud-offline-XXXXXX" };
        if (o->cfg.sim) {
                _cleanup_(simtopo_freep) SimTopology *st = NULL;

                r = simtopo_load(&st, o->cfg.sim, err);
                if (r < 0)
                        return r;
                if (!mkdtemp(h->tmp))
                        return error_set(err, -errno, "Creating a temporary directory failed: %m");
                h->sim_tree = true;
                r = simtopo_materialize(st, h->tmp, err);
                if (r < 0)
                        return r;
                if (asprintf(&sysfs, "%s/sys", h->tmp) < 0)
                        return error_set(err, -ENOMEM, "Out of memory.");
        }
        return topology_load_path(&h->topology, sysfs ?: o->cfg.sysfs_root ?: "/sys", err);
}

static int run_check_config(const Options *o) {
        _cleanup_(policy_freep) Policy *p = NULL;
        OfflineHost h;
        PolicyDiagnostics diags = {};
        Error err = ERROR_INIT;
        int r;

        r = policy_load(&p, &o->cfg.policy_paths, &diags, &err);
        if (r >= 0) {
                /* What the daemon would refuse on this host: windows over reserved regions. */
                Error terr = ERROR_INIT;

                if (offline_host_load(o, &h, &terr) < 0)
                        log_notice("IOVA windows not checked against the host's reserved regions: "
                                   "%s", error_message(&terr));
                else
                        r = policy_check_host(p, h.topology, &diags);
                offline_host_done(&h);
        }
        (void)policy_diagnostics_print(&diags, stderr);
        policy_diagnostics_clear(&diags);
        if (r < 0) {
                log_error_errno(r, "The policy is invalid: %s",
                                err.error ? error_message(&err) : "see above");
                return EXIT_FAILURE;
        }
        printf("Policy OK (generation %" PRIu64 ").\n", policy_generation(p));
        return EXIT_SUCCESS;
}

/* The decision, then what could not be read of the topology, which a step may point to. */
static void explain_print(const PolicyDecision *dec, const Topology *t, const char *device) {
        (void)policy_decision_print(dec, topology_find_device(t, device), stdout);
        if (t->n_problems > 0)
                printf("Topology problems:\n");
        for (size_t i = 0; i < t->n_problems; i++) {
                const TopologyProblem *p = &t->problems[i];

                if (p->line > 0)
                        printf("  %s:%u: %s\n", p->path, p->line, p->message);
                else
                        printf("  %s: %s\n", p->path, p->message);
        }
}

static int run_explain(const Options *o) {
        _cleanup_(policy_freep) Policy *p = NULL;
        _cleanup_(policy_decision_clear) PolicyDecision dec = {};
        OfflineHost h;
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

        r = offline_host_load(o, &h, &err);
        if (r < 0) {
                log_error_errno(r, "Reading the IOMMU topology failed: %s", error_message(&err));
                goto finish;
        }
        /* Offline no session can say who holds the device: the exclusive step is skipped. */
        r = explain_device_for(&(ExplainScope){ .policy = p, .topology = h.topology }, o->explain,
                               &EXPLAIN_SUBJECT_UID(o->as_uid_set ? o->as_uid : UID_INVALID),
                               &dec, &e);
        if (r < 0) {
                log_error_errno(r, "%s", error_message(&e.error));
                goto finish;
        }
        explain_print(&dec, h.topology, o->explain);
        ret = dec.allowed ? EXIT_SUCCESS : EXIT_FAILURE;
finish:
        offline_host_done(&h);
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
