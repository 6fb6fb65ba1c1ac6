/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * iommuctl status, sessions, monitor, reload (org.iommud.Manager) and
 * check-config (the policy engine, locally, without the daemon).
 */

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "iommuctl.h"
#include "json-util.h"
#include "policy.h"
#include "varlink-client.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(json_object *, json_object_put);

static int no_args(Ctl *ctl, int argc, char **argv, const char *verb) {
        int r;

        r = ctl_parse(ctl, argc, argv, NULL, NULL, NULL, NULL);
        if (r < 0)
                return r;
        if (r < argc)
                return -ctl_usage(verb, "%s takes no arguments, got '%s'", argv[0], argv[r]);
        return 0;
}

static uint64_t get_u64(json_object *o, const char *key) {
        uint64_t v = 0;

        (void)json_util_get_u64(o, key, JSON_UTIL_OPTIONAL, &v, NULL);
        return v;
}

static const char *get_str(json_object *o, const char *key) {
        const char *s = NULL;

        (void)json_util_get_string(o, key, JSON_UTIL_OPTIONAL, &s, NULL);
        return s;
}

/* "3d 4h", "2h 5m", "42s" */
static void format_duration(char *buf, size_t size, uint64_t s) {
        if (s >= 86400)
                snprintf(buf, size, "%" PRIu64 "d %" PRIu64 "h", s / 86400, s % 86400 / 3600);
        else if (s >= 3600)
                snprintf(buf, size, "%" PRIu64 "h %" PRIu64 "m", s / 3600, s % 3600 / 60);
        else if (s >= 60)
                snprintf(buf, size, "%" PRIu64 "m %" PRIu64 "s", s / 60, s % 60);
        else
                snprintf(buf, size, "%" PRIu64 "s", s);
}

/* "4.0 GiB", "512 KiB", "100 B" */
static void format_bytes(char *buf, size_t size, uint64_t v) {
        static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB" };
        size_t u = 0;
        double d = (double)v;

        while (d >= 1024 && u + 1 < ELEMENTSOF(units)) {
                d /= 1024;
                u++;
        }
        if (u == 0)
                snprintf(buf, size, "%" PRIu64 " B", v);
        else
                snprintf(buf, size, "%.1f %s", d, units[u]);
}

int verb_status(Ctl *ctl, int argc, char **argv) {
        _cleanup_(json_object_putp) json_object *s = NULL;
        json_object *features = NULL;
        const char *topology;
        char uptime[32];
        int r;

        r = no_args(ctl, argc, argv, "status");
        if (r < 0)
                return -r;
        r = ctl_manager_call(ctl, "GetStatus", NULL, &s);
        if (r < 0)
                return -r;
        if (ctl->json)
                return ctl_print_json(s) < 0 ? CTL_EXIT_FAILURE : CTL_EXIT_OK;

        topology = get_str(s, "topology");
        (void)json_util_get_array(s, "features", JSON_UTIL_OPTIONAL, &features, NULL);
        format_duration(uptime, sizeof(uptime), get_u64(s, "uptime"));
        printf("%siommud %s%s\n", ctl_color(ctl, "bold"), get_str(s, "version") ?: "?",
               ctl_color(ctl, "reset"));
        printf("   Backend: %s%s%s%s\n", get_str(s, "backend") ?: "?", topology ? " (" : "",
               topology ?: "", topology ? ")" : "");
        /* Which kernel API, and why: probed, or forced by --backend. */
        if (get_str(s, "backendReason"))
                printf("    Chosen: %s\n", get_str(s, "backendReason"));
        printf("  Features: ");
        for (size_t i = 0; features && i < json_object_array_length(features); i++)
                printf("%s%s", i > 0 ? ", " : "",
                       json_object_get_string(json_object_array_get_idx(features, i)));
        printf("%s\n", features && json_object_array_length(features) > 0 ? "" : "none");
        printf("  Topology: %" PRIu64 " groups, %" PRIu64 " devices, %" PRIu64 " eligible\n",
               get_u64(s, "groups"), get_u64(s, "devices"), get_u64(s, "eligibleDevices"));
        printf("    Policy: generation %" PRIu64 "\n", get_u64(s, "policyGeneration"));
        printf("  Sessions: %" PRIu64 "\n", get_u64(s, "sessions"));
        printf("    Uptime: %s\n", uptime);
        return CTL_EXIT_OK;
}

/* Varlink leaves out what is absent; the JSON iommuctl(1) describes has every key, null then. */
static void sessions_json_complete(json_object *sessions) {
        for (size_t i = 0; sessions && i < json_object_array_length(sessions); i++) {
                json_object *s = json_object_array_get_idx(sessions, i), *usage = NULL;

                if (!json_object_object_get_ex(s, "unit", NULL))
                        (void)json_object_object_add(s, "unit", NULL);
                (void)json_util_get_array(s, "usage", JSON_UTIL_OPTIONAL, &usage, NULL);
                for (size_t j = 0; usage && j < json_object_array_length(usage); j++) {
                        json_object *u = json_object_array_get_idx(usage, j);

                        if (!json_object_object_get_ex(u, "principalUsed", NULL))
                                (void)json_object_object_add(u, "principalUsed", NULL);
                        if (!json_object_object_get_ex(u, "limit", NULL))
                                (void)json_object_object_add(u, "limit", NULL);
                }
        }
}

int verb_sessions(Ctl *ctl, int argc, char **argv) {
        /* PINNED is the session's, UID PINNED what every session of its uid pins together. */
        static const char *const headers[] = { "ID",       "UID",        "PID",     "UNIT",
                                                "PINNED",   "UID PINNED", "MAPPINGS", "DEVICES",
                                                NULL };
        _cleanup_(json_object_putp) json_object *reply = NULL;
        _cleanup_(table_freep) Table *table = NULL;
        json_object *sessions = NULL;
        int r;

        r = no_args(ctl, argc, argv, "sessions");
        if (r < 0)
                return -r;
        r = ctl_manager_call(ctl, "ListSessions", NULL, &reply);
        if (r < 0)
                return -r;
        (void)json_util_get_array(reply, "sessions", JSON_UTIL_OPTIONAL, &sessions, NULL);
        if (ctl->json) {
                sessions_json_complete(sessions);
                return ctl_print_json(reply) < 0 ? CTL_EXIT_FAILURE : CTL_EXIT_OK;
        }

        if (table_new(&table, headers, 7) < 0)
                return CTL_EXIT_FAILURE;
        for (size_t i = 0; sessions && i < json_object_array_length(sessions); i++) {
                json_object *s = json_object_array_get_idx(sessions, i), *devs = NULL,
                            *usage = NULL;
                char id[24], uid[24], pid[24], pinned[32] = "0 B", total[32] = "0 B",
                     maps[24] = "0";
                _cleanup_free_ char *devices = NULL;
                size_t size = 0;
                FILE *f;

                snprintf(id, sizeof(id), "%" PRIu64, get_u64(s, "id"));
                snprintf(uid, sizeof(uid), "%" PRIu64, get_u64(s, "uid"));
                snprintf(pid, sizeof(pid), "%" PRIu64, get_u64(s, "pid"));
                (void)json_util_get_array(s, "usage", JSON_UTIL_OPTIONAL, &usage, NULL);
                for (size_t j = 0; usage && j < json_object_array_length(usage); j++) {
                        json_object *u = json_object_array_get_idx(usage, j);
                        const char *res = get_str(u, "resource");

                        if (res && streq(res, "pinnedBytes")) {
                                format_bytes(pinned, sizeof(pinned), get_u64(u, "used"));
                                format_bytes(total, sizeof(total), get_u64(u, "principalUsed"));
                        }
                        else if (res && streq(res, "mappings"))
                                snprintf(maps, sizeof(maps), "%" PRIu64, get_u64(u, "used"));
                }
                (void)json_util_get_array(s, "devices", JSON_UTIL_OPTIONAL, &devs, NULL);
                f = open_memstream(&devices, &size);
                if (!f)
                        return CTL_EXIT_FAILURE;
                for (size_t j = 0; devs && j < json_object_array_length(devs); j++)
                        fprintf(f, "%s%s", j > 0 ? " " : "",
                                json_object_get_string(json_object_array_get_idx(devs, j)));
                if (fclose(f) != 0)
                        return CTL_EXIT_FAILURE;

                if (table_add_row(table,
                                  (const char *const[]){ id, uid, pid, get_str(s, "unit"), pinned,
                                                         total, maps, *devices ? devices : NULL },
                                  NULL) < 0)
                        return CTL_EXIT_FAILURE;
        }
        return table_print(table, ctl, stdout) < 0 ? CTL_EXIT_FAILURE : CTL_EXIT_OK;
}

static int opt_count(Ctl *ctl, int c, const char *arg, void *userdata) {
        char *end;
        unsigned long v;

        errno = 0;
        v = strtoul(arg, &end, 10);
        if (errno != 0 || *end || end == arg || v == 0 || v > UINT_MAX || arg[0] == '-') {
                ctl_usage("monitor", "--count takes a positive number of events, not '%s'", arg);
                return -EINVAL;
        }
        *(unsigned *)userdata = (unsigned)v;
        return 0;
}

int verb_monitor(Ctl *ctl, int argc, char **argv) {
        static const struct option options[] = {
                { "count", required_argument, NULL, 'n' },
                {},
        };
        _cleanup_(varlink_client_freep) VarlinkClient *vc = NULL;
        const char *path = ctl->socket;
        unsigned count = 0, seen = 0;
        int r;

        r = ctl_parse(ctl, argc, argv, options, "n:", opt_count, &count);
        if (r < 0)
                return -r;
        if (r < argc)
                return ctl_usage("monitor", "monitor takes no arguments, got '%s'", argv[r]);

        /* The stream occupies its connection, so it gets one of its own. */
        if (!path) {
                path = getenv("IOMMUD_SOCKET");
                if (!path || !*path)
                        path = IOMMUD_DEFAULT_SOCKET;
        }
        r = varlink_client_connect(&vc, path);
        if (r < 0) {
                fprintf(stderr, "iommud is not listening on %s: %s. Start it with 'systemctl start "
                                "iommud.socket' or point --socket at it.\n", path, strerror(-r));
                return CTL_EXIT_UNREACHABLE;
        }
        r = varlink_client_send(vc, IOMMUD_MANAGER_INTERFACE ".Monitor", NULL, NULL, 0,
                                VARLINK_CLIENT_MORE);
        if (r < 0) {
                fprintf(stderr, "Cannot ask iommud for events: %s.\n", strerror(-r));
                return CTL_EXIT_UNREACHABLE;
        }
        for (;;) {
                VarlinkReply reply = VARLINK_REPLY_INIT;
                json_object *ev = NULL;

                r = varlink_client_wait(vc, -1, &reply);
                if (r < 0) {
                        fprintf(stderr, "The connection to iommud ended: %s.\n", strerror(-r));
                        return CTL_EXIT_UNREACHABLE;
                }
                if (reply.error) {
                        if (streq(reply.error, "org.iommud.Manager.NotAuthorized"))
                                fprintf(stderr, "Monitoring failed: %s. Run it as root.\n",
                                        get_str(reply.parameters, "reason") ?: reply.error);
                        else
                                fprintf(stderr, "Monitoring failed: iommud replied with %s.\n",
                                        reply.error);
                        r = streq(reply.error, "org.iommud.Manager.NotAuthorized") ?
                                    CTL_EXIT_DENIED : CTL_EXIT_FAILURE;
                        varlink_reply_clear(&reply);
                        return r;
                }
                (void)json_util_get_object(reply.parameters, "event", JSON_UTIL_OPTIONAL, &ev, NULL);
                if (ev) {
                        if (ctl->json)
                                puts(json_object_to_json_string_ext(ev, JSON_C_TO_STRING_PLAIN |
                                                                                JSON_C_TO_STRING_NOSLASHESCAPE));
                        else
                                printf("%s%-16s%s %s\n", ctl_color(ctl, "bold"),
                                       get_str(ev, "type") ?: "?", ctl_color(ctl, "reset"),
                                       get_str(ev, "message") ?: "");
                        fflush(stdout);
                        seen++;
                }
                r = reply.continues;
                varlink_reply_clear(&reply);
                if (!r || (count > 0 && seen >= count))
                        return CTL_EXIT_OK;
        }
}

int verb_reload(Ctl *ctl, int argc, char **argv) {
        _cleanup_(json_object_putp) json_object *reply = NULL;
        _cleanup_free_ char *text = NULL;
        IommudClient *c;
        int r;

        r = no_args(ctl, argc, argv, "reload");
        if (r < 0)
                return -r;
        r = ctl_connect(ctl, &c);
        if (r < 0)
                return -r;
        r = iommud_client_call(c, IOMMUD_MANAGER_INTERFACE ".ReloadPolicy", NULL, NULL, 0, &text,
                               ctl->error);
        if (r < 0 && iommud_error_has_name(ctl->error, "org.iommud.Manager.PolicyInvalid")) {
                _cleanup_(json_object_putp) json_object *p =
                        json_tokener_parse(iommud_error_get_parameters(ctl->error));
                json_object *diags = NULL;

                (void)json_util_get_array(p, "diagnostics", JSON_UTIL_OPTIONAL, &diags, NULL);
                if (ctl->json) {
                        _cleanup_(json_object_putp) json_object *out = json_object_new_object();

                        /* No generation took effect; what check-config would say of the files. */
                        if (!out || json_object_object_add(out, "generation", NULL) < 0 ||
                            json_util_add(out, "diagnostics",
                                          json_object_get(diags) ?: json_object_new_array()) < 0 ||
                            ctl_print_json(out) < 0)
                                return CTL_EXIT_FAILURE;
                        return CTL_EXIT_FAILURE;
                }
                fprintf(stderr, "The policy was not reloaded; iommud keeps the current one. "
                                "Fix these problems and reload again:\n");
                for (size_t i = 0; diags && i < json_object_array_length(diags); i++)
                        fprintf(stderr, "  %s\n",
                                json_object_get_string(json_object_array_get_idx(diags, i)));
                return CTL_EXIT_FAILURE;
        }
        if (r < 0)
                return ctl_fail(ctl, r, "Reloading the policy failed");
        reply = json_tokener_parse(text);
        if (ctl->json)
                return ctl_print_json(reply) < 0 ? CTL_EXIT_FAILURE : CTL_EXIT_OK;
        printf("Reloaded the policy (generation %" PRIu64 ").\n", get_u64(reply, "generation"));
        return CTL_EXIT_OK;
}

typedef struct CheckArgs {
        const char *root, *vendor_dir, *admin_dir, *file;
} CheckArgs;

static int opt_check(Ctl *ctl, int c, const char *arg, void *userdata) {
        CheckArgs *a = userdata;

        switch (c) {
        case 'R':
                a->root = arg;
                break;
        case 'P':
                a->file = arg;
                break;
        case 'D':
                a->admin_dir = arg;
                break;
        case 'E':
                a->vendor_dir = arg;
                break;
        default:
                return -EINVAL;
        }
        return 0;
}

/* root + path, or the explicit path when given; NULL root means the path itself. */
static int policy_path(const char *root, const char *explicit, const char *def, char **ret) {
        if (explicit)
                *ret = strdup(explicit);
        else if (asprintf(ret, "%s%s", root ?: "", def) < 0)
                *ret = NULL;
        return *ret ? 0 : -ENOMEM;
}

/*
 * What iommud refuses on this host besides the files themselves: IOVA windows over the reserved
 * regions of the IOMMU groups (ROOT/sys with --root).  A host whose groups cannot be read has
 * nothing to check against.
 */
static int check_host(const char *root, const Policy *p, PolicyDiagnostics *diags) {
        _cleanup_(topology_freep) Topology *t = NULL;
        _cleanup_free_ char *sysfs = NULL;

        if (asprintf(&sysfs, "%s/sys", root ?: "") < 0)
                return -ENOMEM;
        if (topology_load_path(&t, sysfs, NULL) < 0)
                return 0;
        return policy_check_host(p, t, diags);
}

int verb_check_config(Ctl *ctl, int argc, char **argv) {
        static const struct option options[] = {
                { "root", required_argument, NULL, 'R' },
                { "policy", required_argument, NULL, 'P' },
                { "policy-dir", required_argument, NULL, 'D' },
                { "vendor-policy-dir", required_argument, NULL, 'E' },
                {},
        };
        _cleanup_(policy_freep) Policy *p = NULL;
        _cleanup_free_ char *vendor = NULL, *admin = NULL, *file = NULL;
        PolicyDiagnostics diags = {};
        Error err = ERROR_INIT;
        CheckArgs args = {};
        PolicyPaths paths;
        int r;

        r = ctl_parse(ctl, argc, argv, options, "", opt_check, &args);
        if (r < 0)
                return -r;
        if (r < argc)
                return ctl_usage("check-config", "check-config takes no arguments, got '%s'",
                                 argv[r]);
        if (policy_path(args.root, args.vendor_dir, IOMMUD_VENDOR_POLICY_DIR, &vendor) < 0 ||
            policy_path(args.root, args.admin_dir, IOMMUD_POLICY_DIR, &admin) < 0 ||
            policy_path(args.root, args.file, IOMMUD_POLICY_FILE, &file) < 0)
                return CTL_EXIT_FAILURE;
        paths = (PolicyPaths){ .vendor_dir = vendor, .admin_dir = admin, .file = file };

        r = policy_load(&p, &paths, &diags, &err);
        if (r >= 0) {
                r = check_host(args.root, p, &diags);
                if (r < 0)
                        error_set(&err, r, "the policy does not fit this host's IOMMU groups");
        }
        if (ctl->json) {
                _cleanup_(json_object_putp) json_object *o = json_object_new_object();
                json_object *a = json_object_new_array();

                for (size_t i = 0; i < diags.n; i++) {
                        _cleanup_free_ char *line = NULL;
                        size_t size = 0;
                        FILE *f = open_memstream(&line, &size);
                        PolicyDiagnostics one = { .items = &diags.items[i], .n = 1 };

                        if (!f)
                                break;
                        (void)policy_diagnostics_print(&one, f);
                        if (fclose(f) == 0) {
                                size_t n = strlen(line);

                                if (n > 0 && line[n - 1] == '\n')
                                        line[n - 1] = 0;
                                json_object_array_add(a, json_object_new_string(line));
                        }
                }
                json_object_object_add(o, "valid", json_object_new_boolean(r >= 0));
                json_object_object_add(o, "generation",
                                       r >= 0 ? json_object_new_uint64(policy_generation(p)) : NULL);
                json_object_object_add(o, "diagnostics", a);
                if (r < 0 && diags.n == 0)
                        json_object_object_add(o, "error", json_object_new_string(error_message(&err)));
                (void)ctl_print_json(o);
                policy_diagnostics_clear(&diags);
                return r < 0 ? CTL_EXIT_FAILURE : CTL_EXIT_OK;
        }
        if (r < 0) {
                if (diags.n > 0) {
                        fprintf(stderr, "The policy is invalid; iommud would refuse to start with "
                                        "it and keep the current one on reload:\n");
                        (void)policy_diagnostics_print(&diags, stderr);
                } else
                        fprintf(stderr, "The policy cannot be loaded: %s.\n", error_message(&err));
                policy_diagnostics_clear(&diags);
                return CTL_EXIT_FAILURE;
        }
        policy_diagnostics_clear(&diags);
        printf("The policy is valid.\n");
        return CTL_EXIT_OK;
}
