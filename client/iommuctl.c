/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * iommuctl: inspect and drive iommud.  Global options, the command table (one
 * entry per verb, as tmux does it), and the helpers every verb shares:
 * connecting, printing errors as sentences with advice, JSON and colour.
 */

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <json-c/json.h>

#include "iommuctl.h"

static const CtlCommand commands[] = {
        { "status", "", "Show the daemon's version, backend, sessions and policy", verb_status },
        { "devices", "[--all]", "List the devices iommud can broker (--all: every device)",
          verb_devices },
        { "groups", "", "List the IOMMU groups with their viability and reserved regions",
          verb_groups },
        { "explain", "DEVICE [--uid UID]", "Explain why a device is or is not usable",
          verb_explain },
        { "sessions", "", "List the client sessions", verb_sessions },
        { "monitor", "[--count N]", "Print events as they happen", verb_monitor },
        { "reload", "", "Reload the policy", verb_reload },
        { "check-config", "[--root DIR] [--policy FILE]", "Validate the policy files without the daemon",
          verb_check_config },
        { "", "  [--policy-dir DIR] [--vendor-policy-dir DIR]", "", NULL },
        { "cdi", "generate [--output DIR | --stdout]",
          "Write a CDI spec for the eligible devices", verb_cdi },
        { "", "  [--mode auto|iommufd|legacy|broker] [--container-socket PATH]", "", NULL },
        { "claim", "prepare ID --device DEVICE",
          "Hold devices for a container runtime and write their CDI spec", verb_claim },
        { "", "  [--device DEVICE]... --uid UID [--gid GID]", "", NULL },
        { "", "  [--unit UNIT]", "", NULL },
        { "claim", "unprepare ID", "Release a claim's devices and remove its spec", verb_claim },
        { "claim", "list", "List the prepared claims", verb_claim },
        { "attach", "DEVICE", "Test: attach a device, show what iommud reports, detach",
          verb_attach },
        { "map", "DEVICE --size BYTES", "Test: map a fresh memfd for a device, show it, unmap",
          verb_map },
        { "features", "[DEVICE]", "What the kernel and a device's IOMMU offer, and the policy",
          verb_features },
        { "exec", "--device DEVICE [--memlock SIZE]",
          "Run a VMM with the devices' fds, claimed while it runs", verb_exec },
        { "", "  [--device DEVICE]... [--verbose] -- COMMAND [ARG]...", "", NULL },
};

static void help(void) {
        printf("iommuctl %s: inspect and drive iommud\n\n"
               "Usage: iommuctl [OPTIONS] COMMAND [ARGS]\n\n"
               "Commands:\n",
               PACKAGE_VERSION);
        FOREACH_ARRAY(c, commands, ELEMENTSOF(commands)) {
                char left[64];

                /* An entry without a verb continues the usage of the one before. */
                snprintf(left, sizeof(left), "%s%s%s", c->name, *c->name ? " " : "", c->args);
                if (*c->summary)
                        printf("  %-38s %s\n", left, c->summary);
                else
                        printf("  %s\n", left);
        }
        printf("\nOptions:\n"
               "  -s --socket PATH   Talk to iommud at PATH (default $IOMMUD_SOCKET, else %s)\n"
               "  -j --json          Print JSON instead of tables\n"
               "  -t --timeout SEC   Wait at most SEC seconds for each reply (default 25, 0: no limit)\n"
               "  -h --help          Show this help\n"
               "     --version       Show the version\n\n"
               "Exit status: 0 success, 1 failure, 2 usage error, 3 denied by policy,\n"
               "4 iommud unreachable.  See iommuctl(1).\n",
               IOMMUD_DEFAULT_SOCKET);
}

const char *ctl_color(const Ctl *ctl, const char *which) {
        static const struct {
                const char *name, *seq;
        } table[] = {
                { "bold", "\033[1m" },   { "green", "\033[32m" }, { "red", "\033[31m" },
                { "yellow", "\033[33m" }, { "dim", "\033[2m" },    { "reset", "\033[0m" },
        };

        if (!ctl->color || !which)
                return "";
        FOREACH_ARRAY(t, table, ELEMENTSOF(table))
                if (streq(t->name, which))
                        return t->seq;
        return "";
}

int ctl_usage(const char *verb, const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fprintf(stderr, ".\nSee 'iommuctl %s%s--help'.\n", verb ?: "", verb ? " " : "");
        return CTL_EXIT_USAGE;
}

/* "hh:hh.h" when shape is "xx:xx.x": x a hex digit, anything else itself. */
static bool has_shape(const char *s, const char *shape) {
        if (strlen(s) != strlen(shape))
                return false;
        for (; *shape; s++, shape++)
                if (*shape == 'x' ? !isxdigit((unsigned char)*s) : *s != *shape)
                        return false;
        return true;
}

int ctl_device_arg(const char *verb, const char *arg, char ret[static CTL_DEVICE_MAX]) {
        bool pci_like = *arg && strspn(arg, "0123456789abcdefABCDEF:.") == strlen(arg) &&
                        strchr(arg, ':');

        if (has_shape(arg, "xx:xx.x")) {
                snprintf(ret, CTL_DEVICE_MAX, "0000:%s", arg);
                return 0;
        }
        /* Platform devices ("a003000.ethernet", "ARMH0011:00") have names of their own. */
        if (has_shape(arg, "xxxx:xx:xx.x") ||
            (!pci_like && *arg && strlen(arg) < CTL_DEVICE_MAX &&
             strspn(arg, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789:._-") ==
                     strlen(arg))) {
                snprintf(ret, CTL_DEVICE_MAX, "%s", arg);
                return 0;
        }
        return -ctl_usage(verb, "'%s' is not a device name; give a PCI address such as "
                                "0000:01:00.0 (or lspci's 01:00.0) or a platform device's "
                                "name such as a003000.ethernet", arg);
}

/* Upper-cases the first letter so that a message starts a sentence. */
static void print_sentence(const char *prefix, const char *msg, const char *advice) {
        size_t n = strlen(msg);

        if (prefix)
                fprintf(stderr, "%s: ", prefix);
        if (!prefix && n > 0 && msg[0] >= 'a' && msg[0] <= 'z' && !strneq(msg, "iommu", 5))
                fprintf(stderr, "%c%s", msg[0] - 'a' + 'A', msg + 1);
        else
                fputs(msg, stderr);
        if (n > 0 && msg[n - 1] != '.')
                fputc('.', stderr);
        if (advice)
                fprintf(stderr, " %s", advice);
        fputc('\n', stderr);
}

int ctl_connect(Ctl *ctl, IommudClient **ret) {
        int r;

        if (!ctl->client) {
                r = iommud_client_new(&ctl->client, ctl->socket, ctl->error);
                if (r >= 0)
                        (void)iommud_client_set_call_timeout(ctl->client, ctl->timeout_ms);
                if (r < 0) {
                        print_sentence(NULL, iommud_error_get_message(ctl->error),
                                       r == -EACCES ? "Ask for access to the socket, or run as root." :
                                       ctl->socket ? "Check the --socket path." :
                                                     "Start it with 'systemctl start iommud.socket' "
                                                     "or point --socket or $IOMMUD_SOCKET at it.");
                        return -CTL_EXIT_UNREACHABLE;
                }
        }
        *ret = ctl->client;
        return 0;
}

/* What to do about a failed policy step. */
static const char *policy_advice(const char *step) {
        static const struct {
                const char *step, *advice;
        } table[] = {
                { "match", "Add an allow rule for it to the policy (see iommud.policy(5))." },
                { "driver", "Bind it to vfio-pci." },
                { "group", "Bind it to vfio-pci or remove it from the group." },
                { "regions", "The firmware needs a 1:1 mapping for it; use another device, or "
                             "relax the reserved-region rule in the policy if you trust it." },
                { "principal", "Ask the administrator to grant it to you in the policy." },
                { "exclusive", "Wait until that session releases it." },
                { "quota", "Detach another device or ask for a larger quota." },
                { "delegation", "Use it through iommud (AttachDevice), or ask the administrator "
                                "for a grant with \"delegation\": true." },
        };

        if (!step)
                return NULL;
        FOREACH_ARRAY(t, table, ELEMENTSOF(table))
                if (streq(t->step, step))
                        return t->advice;
        return NULL;
}

int ctl_fail(Ctl *ctl, int r, const char *what) {
        const char *msg = iommud_error_get_message(ctl->error);
        const char *name = iommud_error_get_name(ctl->error);
        const char *advice = NULL;

        if (!*msg)
                msg = strerror(-r);
        if (iommud_error_has_name(ctl->error, "PolicyDenied")) {
                print_sentence(NULL, msg, policy_advice(iommud_error_get_step(ctl->error)));
                return CTL_EXIT_DENIED;
        }
        if (iommud_error_has_name(ctl->error, "org.iommud.Manager.NotAuthorized")) {
                print_sentence(what, msg, "Run it as root.");
                return CTL_EXIT_DENIED;
        }
        if (iommud_error_has_name(ctl->error, "DeviceBusy"))
                advice = "Wait until that session releases it.";
        else if (iommud_error_has_name(ctl->error, "QuotaExceeded"))
                advice = "Release something first or ask for a larger quota.";
        else if (name && strstr(name, "InterfaceNotFound"))
                advice = "This iommud is older than iommuctl; upgrade it.";
        else if (!name && r == -ETIMEDOUT)
                advice = "Is it iommud, and is it stuck? --timeout waits longer.";
        else if (!name && r == -EPROTO)
                advice = "Point --socket or $IOMMUD_SOCKET at iommud's socket.";
        print_sentence(what, msg, advice);
        /* Without an error name the call never got an answer from iommud. */
        if (!name && (r == -ECONNRESET || r == -ETIMEDOUT || r == -EPROTO))
                return CTL_EXIT_UNREACHABLE;
        return CTL_EXIT_FAILURE;
}

int ctl_parse_size(const char *s, uint64_t *ret) {
        unsigned long long v;
        unsigned shift = 0;
        char *end;

        if (!s || !*s || *s == '-')
                return -EINVAL;
        errno = 0;
        v = strtoull(s, &end, 0);
        if (errno != 0 || end == s)
                return -EINVAL;
        if (*end) {
                switch (*end) {
                case 'K': case 'k': shift = 10; break;
                case 'M': case 'm': shift = 20; break;
                case 'G': case 'g': shift = 30; break;
                case 'T': case 't': shift = 40; break;
                default: return -EINVAL;
                }
                if (end[1] && !(end[1] == 'i' && end[2] == 'B' && !end[3]) &&
                    !(end[1] == 'B' && !end[2]))
                        return -EINVAL;
        }
        if (v == 0 || (shift && v > (UINT64_MAX >> shift)))
                return -ERANGE;
        *ret = (uint64_t)v << shift;
        return 0;
}

int ctl_print_json(json_object *o) {
        puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
                                                       JSON_C_TO_STRING_SPACED |
                                                       JSON_C_TO_STRING_NOSLASHESCAPE));
        return ferror(stdout) ? -EIO : 0;
}

int ctl_manager_call(Ctl *ctl, const char *method, json_object *params, json_object **ret) {
        _cleanup_free_ char *reply = NULL;
        IommudClient *c;
        char full[128];
        int r;

        r = ctl_connect(ctl, &c);
        if (r < 0)
                return r;
        snprintf(full, sizeof(full), IOMMUD_MANAGER_INTERFACE ".%s", method);
        r = iommud_client_call(c, full,
                               params ? json_object_to_json_string_ext(params, JSON_C_TO_STRING_PLAIN) :
                                        NULL,
                               NULL, 0, &reply, ctl->error);
        if (r < 0)
                return -ctl_fail(ctl, r, method);
        *ret = json_tokener_parse(reply);
        if (!*ret) {
                fprintf(stderr, "iommud's reply to %s is not JSON.\n", method);
                return -CTL_EXIT_FAILURE;
        }
        return 0;
}

/* "5", "0.5": seconds, to milliseconds; "0" is no limit. */
static int parse_timeout(const char *s, uint64_t *ret) {
        char *end;
        double v;

        errno = 0;
        v = strtod(s, &end);
        if (errno != 0 || end == s || *end || !(v >= 0) || v > 86400.0 * 365)
                return -EINVAL;
        *ret = (uint64_t)(v * 1000.0 + 0.5);
        if (*ret == 0 && v > 0)
                *ret = 1;
        return 0;
}

int ctl_parse(Ctl *ctl, int argc, char **argv, const struct option *options, const char *shortopts,
              int (*on_option)(Ctl *ctl, int c, const char *arg, void *userdata), void *userdata) {
        struct option all[32];
        char shorts[64];
        size_t n = 0;
        int c;

        all[n++] = (struct option){ "json", no_argument, NULL, 'j' };
        all[n++] = (struct option){ "socket", required_argument, NULL, 's' };
        all[n++] = (struct option){ "help", no_argument, NULL, 'h' };
        all[n++] = (struct option){ "timeout", required_argument, NULL, 't' };
        for (const struct option *o = options; o && o->name && n < ELEMENTSOF(all) - 1; o++)
                all[n++] = *o;
        all[n] = (struct option){};
        snprintf(shorts, sizeof(shorts), "js:ht:%s", shortopts ?: "");

        optind = 0;
        opterr = 0;
        while ((c = getopt_long(argc, argv, shorts, all, NULL)) >= 0)
                switch (c) {
                case 'j':
                        ctl->json = true;
                        break;
                case 's':
                        ctl->socket = optarg;
                        break;
                case 't':
                        if (parse_timeout(optarg, &ctl->timeout_ms) < 0)
                                return -ctl_usage(argv[0], "--timeout takes seconds, such as 5 "
                                                           "or 0.5 (0: no limit), not '%s'", optarg);
                        break;
                case 'h':
                        help();
                        return CTL_HELP_SHOWN;
                case '?':
                        if (optopt)
                                return -ctl_usage(argv[0], "Option -%c of %s is unknown or lacks "
                                                           "its value", optopt, argv[0]);
                        return -ctl_usage(argv[0], "Option %s of %s is unknown or lacks its value",
                                          argv[optind - 1], argv[0]);
                default:
                        if (!on_option || on_option(ctl, c, optarg, userdata) < 0)
                                return -CTL_EXIT_USAGE;
                }
        return optind;
}

static unsigned terminal_width(void) {
        struct winsize ws;
        const char *e = getenv("COLUMNS");
        char *end;
        unsigned long v;

        if (e && *e) {
                errno = 0;
                v = strtoul(e, &end, 10);
                if (errno == 0 && *end == 0 && v >= 20 && v <= 1000)
                        return (unsigned)v;
        }
        if (!isatty(STDOUT_FILENO))
                return UINT_MAX; /* a pipe or a file: whole lines, for whatever reads them */
        if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col >= 20)
                return ws.ws_col;
        return 80;
}

static bool use_color(void) {
        const char *term = getenv("TERM");

        if (getenv("NO_COLOR"))
                return false;
        if (term && streq(term, "dumb"))
                return false;
        return isatty(STDOUT_FILENO);
}

int main(int argc, char *argv[]) {
        static const struct option options[] = {
                { "socket", required_argument, NULL, 's' },
                { "json", no_argument, NULL, 'j' },
                { "help", no_argument, NULL, 'h' },
                { "timeout", required_argument, NULL, 't' },
                { "version", no_argument, NULL, 'V' },
                {},
        };
        Ctl ctl = {
                .color = use_color(),
                .width = terminal_width(),
                .timeout_ms = IOMMUD_CALL_TIMEOUT_MS_DEFAULT,
        };
        const CtlCommand *cmd = NULL;
        int c, r;

        opterr = 0;
        while ((c = getopt_long(argc, argv, "+s:jht:", options, NULL)) >= 0)
                switch (c) {
                case 's':
                        ctl.socket = optarg;
                        break;
                case 't':
                        if (parse_timeout(optarg, &ctl.timeout_ms) < 0)
                                return ctl_usage(NULL, "--timeout takes seconds, such as 5 or 0.5 "
                                                       "(0: no limit), not '%s'", optarg);
                        break;
                case 'j':
                        ctl.json = true;
                        break;
                case 'h':
                        help();
                        return CTL_EXIT_OK;
                case 'V':
                        printf("iommuctl %s\n", PACKAGE_VERSION);
                        return CTL_EXIT_OK;
                default:
                        return ctl_usage(NULL, "Option %s is unknown or lacks its value",
                                         argv[optind - 1]);
                }

        if (optind >= argc)
                return ctl_usage(NULL, "No command given; 'iommuctl status' shows the daemon");
        FOREACH_ARRAY(k, commands, ELEMENTSOF(commands))
                if (k->run && streq(k->name, argv[optind])) {
                        cmd = k;
                        break;
                }
        if (!cmd)
                return ctl_usage(NULL, "Unknown command '%s'", argv[optind]);

        if (iommud_error_new(&ctl.error) < 0) {
                fputs("Out of memory.\n", stderr);
                return CTL_EXIT_FAILURE;
        }
        r = cmd->run(&ctl, argc - optind, argv + optind);
        if (r == CTL_HELP_SHOWN || r == -CTL_HELP_SHOWN)
                r = CTL_EXIT_OK;
        if (r < 0)
                r = -r;
        if (fflush(stdout) != 0 && r == CTL_EXIT_OK) {
                fprintf(stderr, "Writing the output failed: %m.\n");
                r = CTL_EXIT_FAILURE;
        }
        iommud_client_unref(ctl.client);
        iommud_error_free(ctl.error);
        return r;
}
