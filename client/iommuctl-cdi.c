/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * iommuctl cdi generate: a CDI spec for the devices the policy makes eligible, in the mode the
 * host and the policy choose (iommufd, legacy or broker; see cdi.h) or the one asked for.
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>

#include "cdi.h"
#include "iommuctl.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(IommudTopology *, iommud_topology_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(IommudExplanation *, iommud_explanation_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(json_object *, json_object_put);

typedef struct CdiArgs {
        const char *output;
        const char *container_socket;
        bool to_stdout;
        CdiMode mode;
} CdiArgs;

static int opt_cdi(Ctl *ctl, int c, const char *arg, void *userdata) {
        CdiArgs *a = userdata;

        switch (c) {
        case 'o':
                a->output = arg;
                break;
        case 'O':
                a->to_stdout = true;
                break;
        case 'm': {
                int m = cdi_mode_from_string(arg);

                if (m < 0) {
                        ctl_usage("cdi ", "--mode takes auto, iommufd, legacy or broker, not '%s'",
                                  arg);
                        return -EINVAL;
                }
                a->mode = (CdiMode)m;
                break;
        }
        case 'C':
                if (arg[0] != '/') {
                        ctl_usage("cdi", "--container-socket takes an absolute path, not '%s'", arg);
                        return -EINVAL;
                }
                a->container_socket = arg;
                break;
        default:
                return -EINVAL;
        }
        return 0;
}

/* What to do when the output directory is not the caller's to write (the default is root's). */
static const char *write_advice(int err) {
        if (err != EACCES && err != EPERM && err != EROFS)
                return "";
        return geteuid() == 0 ? " Write it elsewhere with --output DIR, or to standard output "
                                "with --stdout." :
                                " Run it as root, or write it elsewhere with --output DIR, or to "
                                "standard output with --stdout.";
}

/* A CDI spec needs at least one device: remove a stale one rather than write it. */
static int remove_stale_spec(const CdiArgs *args) {
        char path[4096];

        snprintf(path, sizeof(path), "%s/%s", args->output, CDI_FILE_NAME);
        if (!args->to_stdout && unlink(path) < 0 && errno != ENOENT) {
                fprintf(stderr, "No device is eligible, and removing the old %s failed: "
                                "%m.%s\n", path, write_advice(errno));
                return CTL_EXIT_FAILURE;
        }
        fprintf(stderr, "No device is eligible for you, so there is no CDI spec%s%s.\n",
                args->to_stdout ? "" : " at ", args->to_stdout ? "" : path);
        return CTL_EXIT_OK;
}

/* Writes the spec (text, with n devices) to the output directory and says so. */
static int write_spec(Ctl *ctl, const CdiArgs *args, const char *mode, const char *text,
                      size_t n) {
        int r;

        if (mkdir(args->output, 0755) < 0 && errno != EEXIST) {
                fprintf(stderr, "Cannot create %s: %m.%s\n", args->output, write_advice(errno));
                return CTL_EXIT_FAILURE;
        }
        {
                _cleanup_free_ char *with_nl = NULL;

                if (asprintf(&with_nl, "%s\n", text) < 0)
                        return CTL_EXIT_FAILURE;
                r = cdi_write_atomic(args->output, CDI_FILE_NAME, with_nl);
        }
        if (r < 0) {
                fprintf(stderr, "Cannot write %s/%s: %s.%s\n", args->output, CDI_FILE_NAME,
                        strerror(-r), write_advice(-r));
                return CTL_EXIT_FAILURE;
        }
        if (ctl->json) {
                _cleanup_(json_object_putp) json_object *out = json_object_new_object();
                char path[4096];

                snprintf(path, sizeof(path), "%s/%s", args->output, CDI_FILE_NAME);
                json_object_object_add(out, "path", json_object_new_string(path));
                json_object_object_add(out, "kind", json_object_new_string(CDI_KIND));
                json_object_object_add(out, "devices", json_object_new_int64((int64_t)n));
                json_object_object_add(out, "mode", json_object_new_string(mode));
                return ctl_print_json(out) < 0 ? CTL_EXIT_FAILURE : CTL_EXIT_OK;
        }
        printf("Wrote %s/%s with %zu device%s of kind %s, %s mode.\n", args->output,
               CDI_FILE_NAME, n, n == 1 ? "" : "s", CDI_KIND, mode);
        return CTL_EXIT_OK;
}

/* Whether iommud lets the caller take the device's files itself: its "delegation" step passes. */
static int may_take_files(Ctl *ctl, IommudClient *c, const char *device) {
        _cleanup_(iommud_explanation_freep) IommudExplanation *x = NULL;
        int r;

        r = iommud_explain_device(c, device, &x, ctl->error);
        if (r < 0)
                return r;
        for (size_t i = 0; i < iommud_explanation_get_n_steps(x); i++) {
                const IommudDecisionStep *s = iommud_explanation_get_step(x, i);

                if (streq(s->step, "delegation"))
                        return streq(s->verdict, "pass");
        }
        return false;
}

/* The mode for the eligible devices of t (see cdi_mode_choose()); an exit code on failure. */
static int choose_mode(Ctl *ctl, IommudClient *c, const IommudTopology *t, CdiMode *ret) {
        bool delegation = true, all_cdevs = true, any = false;
        int r;

        for (size_t i = 0; i < iommud_topology_get_n_devices(t); i++) {
                const IommudDevice *d = iommud_topology_get_device(t, i);

                if (!d->eligible)
                        continue;
                any = true;
                all_cdevs = all_cdevs && d->cdev;
                r = may_take_files(ctl, c, d->name);
                if (r < 0)
                        return ctl_fail(ctl, r, "Explaining a device for the CDI mode failed");
                delegation = delegation && r > 0;
        }
        *ret = cdi_mode_choose(any && delegation, all_cdevs);
        return 0;
}

int verb_cdi(Ctl *ctl, int argc, char **argv) {
        static const struct option options[] = {
                { "output", required_argument, NULL, 'o' },
                { "stdout", no_argument, NULL, 'O' },
                { "mode", required_argument, NULL, 'm' },
                { "container-socket", required_argument, NULL, 'C' },
                {},
        };
        _cleanup_(iommud_topology_freep) IommudTopology *t = NULL;
        _cleanup_(json_object_putp) json_object *spec = NULL;
        _cleanup_free_ CdiDevice *devs = NULL;
        CdiArgs args = { .output = CDI_DEFAULT_DIR, .container_socket = IOMMUD_DEFAULT_SOCKET,
                         .mode = CDI_MODE_AUTO };
        CdiOptions o;
        IommudClient *c;
        const char *text, *bad = NULL;
        size_t n = 0;
        int r;

        r = ctl_parse(ctl, argc, argv, options, "o:", opt_cdi, &args);
        if (r < 0)
                return -r;
        if (r >= argc || !streq(argv[r], "generate"))
                return ctl_usage("cdi", "cdi needs the subcommand 'generate'");
        if (r + 1 < argc)
                return ctl_usage("cdi", "cdi generate takes no arguments, got '%s'", argv[r + 1]);

        r = ctl_connect(ctl, &c);
        if (r < 0)
                return -r;
        r = iommud_get_topology(c, &t, ctl->error);
        if (r < 0)
                return ctl_fail(ctl, r, "Reading the topology failed");

        if (args.mode == CDI_MODE_AUTO) {
                r = choose_mode(ctl, c, t, &args.mode);
                if (r != 0)
                        return r;
        }
        o = (CdiOptions){
                .mode = args.mode,
                .host_socket = iommud_client_get_path(c),
                .container_socket = args.container_socket,
        };
        devs = calloc(iommud_topology_get_n_devices(t) + 1, sizeof(*devs));
        if (!devs)
                return CTL_EXIT_FAILURE;
        for (size_t i = 0; i < iommud_topology_get_n_devices(t); i++) {
                const IommudDevice *d = iommud_topology_get_device(t, i);

                if (d->eligible)
                        devs[n++] = (CdiDevice){ .name = d->name, .cdev = d->cdev,
                                                 .has_group = d->has_group, .group = d->group };
        }
        r = cdi_spec_build(devs, n, &o, &spec, &bad);
        if (r == -EINVAL) {
                fprintf(stderr, "A device name from iommud is not a valid CDI device name.\n");
                return CTL_EXIT_FAILURE;
        }
        if (r == -ENODEV) {
                fprintf(stderr, "Device %s has no %s in %s mode.\n", bad,
                        o.mode == CDI_MODE_IOMMUFD ? "VFIO cdev" : "IOMMU group",
                        cdi_mode_to_string(o.mode));
                return CTL_EXIT_FAILURE;
        }
        if (r < 0)
                return CTL_EXIT_FAILURE;
        if (n == 0)
                return remove_stale_spec(&args);
        text = json_object_to_json_string_ext(spec, JSON_C_TO_STRING_PRETTY |
                                                            JSON_C_TO_STRING_SPACED |
                                                            JSON_C_TO_STRING_NOSLASHESCAPE);
        if (args.to_stdout) {
                puts(text);
                return CTL_EXIT_OK;
        }
        return write_spec(ctl, &args, cdi_mode_to_string(o.mode), text, n);
}
