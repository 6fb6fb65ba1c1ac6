/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* iommuctl devices, groups, explain: what the host has and what the policy says about it. */

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "glyph.h"
#include "iommuctl.h"
#include "json-util.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(IommudTopology *, iommud_topology_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(IommudExplanation *, iommud_explanation_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(json_object *, json_object_put);

/* PCI base classes by their most common name, for the CLASS column. */
static const char *class_name(uint32_t class_code) {
        static const char *const names[] = {
                [0x00] = "unclassified", [0x01] = "storage",    [0x02] = "network",
                [0x03] = "display",      [0x04] = "multimedia", [0x05] = "memory",
                [0x06] = "bridge",       [0x07] = "comm",       [0x08] = "system",
                [0x09] = "input",        [0x0a] = "docking",    [0x0b] = "processor",
                [0x0c] = "serial-bus",   [0x0d] = "wireless",   [0x0e] = "intelligent",
                [0x0f] = "satellite",    [0x10] = "crypto",     [0x11] = "signal",
                [0x12] = "accelerator",  [0x13] = "instrument",
        };
        uint32_t base = class_code >> 16;

        return base < ELEMENTSOF(names) && names[base] ? names[base] : "other";
}

static int get_topology(Ctl *ctl, IommudTopology **ret) {
        IommudClient *c;
        int r;

        r = ctl_connect(ctl, &c);
        if (r < 0)
                return r;
        r = iommud_get_topology(c, ret, ctl->error);
        if (r < 0)
                return -ctl_fail(ctl, r, "Reading the topology failed");
        return 0;
}

static json_object *json_str_or_null(const char *s) {
        return s ? json_object_new_string(s) : NULL;
}

/* Stable keys, the same as org.iommud.Broker's Device type. */
static json_object *device_to_json(const IommudDevice *d) {
        json_object *o = json_object_new_object();

        if (!o)
                return NULL;
        json_object_object_add(o, "name", json_object_new_string(d->name));
        json_object_object_add(o, "vendor", json_object_new_int64(d->vendor));
        json_object_object_add(o, "device", json_object_new_int64(d->device));
        json_object_object_add(o, "class", json_object_new_int64(d->class_code));
        json_object_object_add(o, "driver", json_str_or_null(d->driver));
        json_object_object_add(o, "group", d->has_group ? json_object_new_int64(d->group) : NULL);
        json_object_object_add(o, "cdev", json_str_or_null(d->cdev));
        json_object_object_add(o, "numaNode",
                               d->has_numa_node ? json_object_new_int64(d->numa_node) : NULL);
        json_object_object_add(o, "eligible", json_object_new_boolean(d->eligible));
        json_object_object_add(o, "heldBy", json_str_or_null(d->held_by));
        return o;
}

/* Without --all: what a client could ask for, i.e. VFIO-bound devices and eligible ones. */
static bool device_listed(const IommudDevice *d, bool all) {
        return all || d->eligible || d->cdev || (d->driver && strneq(d->driver, "vfio", 4));
}

static int opt_devices(Ctl *ctl, int c, const char *arg, void *userdata) {
        *(bool *)userdata = true;
        return 0;
}

int verb_devices(Ctl *ctl, int argc, char **argv) {
        static const struct option options[] = {
                { "all", no_argument, NULL, 'a' },
                {},
        };
        static const char *const headers[] = { "DEVICE", "ID", "CLASS", "GROUP", "DRIVER",
                                                "CDEV", "ELIGIBLE", "HELD BY", NULL };
        _cleanup_(iommud_topology_freep) IommudTopology *t = NULL;
        _cleanup_(table_freep) Table *table = NULL;
        bool all = false;
        size_t n;
        int r;

        r = ctl_parse(ctl, argc, argv, options, "a", opt_devices, &all);
        if (r < 0)
                return -r;
        if (r < argc)
                return ctl_usage("devices", "devices takes no arguments, got '%s'", argv[r]);
        r = get_topology(ctl, &t);
        if (r < 0)
                return -r;
        n = iommud_topology_get_n_devices(t);

        if (ctl->json) {
                _cleanup_(json_object_putp) json_object *o = json_object_new_object();
                json_object *a = json_object_new_array();

                if (!o || json_util_add(o, "devices", a) < 0)
                        return CTL_EXIT_FAILURE;
                for (size_t i = 0; i < n; i++) {
                        const IommudDevice *d = iommud_topology_get_device(t, i);

                        if (device_listed(d, all))
                                json_object_array_add(a, device_to_json(d));
                }
                return ctl_print_json(o) < 0 ? CTL_EXIT_FAILURE : CTL_EXIT_OK;
        }

        if (table_new(&table, headers, 7) < 0)
                return CTL_EXIT_FAILURE;
        for (size_t i = 0; i < n; i++) {
                const IommudDevice *d = iommud_topology_get_device(t, i);
                char id[16], group[16];
                const char *cells[8], *colors[8] = {};

                if (!device_listed(d, all))
                        continue;
                snprintf(id, sizeof(id), "%04" PRIx32 ":%04" PRIx32, d->vendor, d->device);
                snprintf(group, sizeof(group), "%" PRIu32, d->group);
                /* Platform devices have no PCI IDs or class. */
                bool pci = d->vendor != 0 || d->device != 0 || d->class_code != 0;

                cells[0] = d->name;
                cells[1] = pci ? id : NULL;
                cells[2] = pci ? class_name(d->class_code) : NULL;
                cells[3] = d->has_group ? group : NULL;
                cells[4] = d->driver;
                cells[5] = d->cdev;
                cells[6] = d->eligible ? "yes" : "no";
                colors[6] = d->eligible ? "green" : "red";
                cells[7] = d->held_by;
                if (table_add_row(table, cells, colors) < 0)
                        return CTL_EXIT_FAILURE;
        }
        return table_print(table, ctl, stdout) < 0 ? CTL_EXIT_FAILURE : CTL_EXIT_OK;
}

static json_object *group_to_json(const IommudGroup *g) {
        json_object *o = json_object_new_object(), *devs, *regions;

        if (!o)
                return NULL;
        devs = json_object_new_array();
        regions = json_object_new_array();
        for (size_t i = 0; i < g->n_devices; i++)
                json_object_array_add(devs, json_object_new_string(g->devices[i]));
        for (size_t i = 0; i < g->n_reserved_regions; i++) {
                json_object *r = json_object_new_object();

                json_object_object_add(r, "start",
                                       json_object_new_uint64(g->reserved_regions[i].start));
                json_object_object_add(r, "last", json_object_new_uint64(g->reserved_regions[i].last));
                json_object_object_add(r, "type", json_object_new_string(g->reserved_regions[i].type));
                json_object_array_add(regions, r);
        }
        json_object_object_add(o, "id", json_object_new_int64(g->id));
        json_object_object_add(o, "type", json_str_or_null(g->type));
        json_object_object_add(o, "viable", json_object_new_boolean(g->viable));
        json_object_object_add(o, "iommu", json_str_or_null(g->iommu));
        json_object_object_add(o, "devices", devs);
        json_object_object_add(o, "reservedRegions", regions);
        return o;
}

/* "direct-relaxable, msi": the types, each once; the ranges are in --json. */
static char *regions_text(const IommudGroup *g) {
        char *buf = NULL;
        size_t size = 0;
        FILE *f = open_memstream(&buf, &size);

        if (!f)
                return NULL;
        for (size_t i = 0, n = 0; i < g->n_reserved_regions; i++) {
                const char *type = g->reserved_regions[i].type;
                bool seen = false;

                for (size_t j = 0; j < i; j++)
                        seen = seen || streq(g->reserved_regions[j].type, type);
                if (!seen)
                        fprintf(f, "%s%s", n++ > 0 ? ", " : "", type);
        }
        if (fclose(f) != 0) {
                free(buf);
                return NULL;
        }
        return buf;
}

/*
 * A viable group none of whose devices the caller may use, with a 'direct' reserved region:
 * the region, not the group, is why (the default policy refuses such devices).
 */
static bool group_refused_for_direct(const IommudTopology *t, const IommudGroup *g) {
        bool direct = false;

        for (size_t i = 0; i < g->n_reserved_regions; i++)
                direct = direct || streq(g->reserved_regions[i].type, "direct");
        if (!g->viable || !direct)
                return false;
        for (size_t i = 0; i < g->n_devices; i++) {
                const IommudDevice *d = iommud_topology_find_device(t, g->devices[i]);

                if (d && d->eligible)
                        return false;
        }
        return true;
}

/* Under the table: why a viable group marked "yes*" is of no use all the same. */
static void groups_print_notes(const IommudTopology *t) {
        for (size_t i = 0; i < iommud_topology_get_n_groups(t); i++) {
                const IommudGroup *g = iommud_topology_get_group(t, i);

                if (group_refused_for_direct(t, g))
                        printf("* group %" PRIu32 " is viable, but the policy refuses its devices "
                               "for its 'direct' reserved region: iommuctl explain %s says why.\n",
                               g->id, g->n_devices > 0 ? g->devices[0] : "DEVICE");
        }
}

int verb_groups(Ctl *ctl, int argc, char **argv) {
        static const char *const headers[] = { "GROUP", "TYPE", "IOMMU", "VIABLE", "DEVICES",
                                                "RESERVED", NULL };
        _cleanup_(iommud_topology_freep) IommudTopology *t = NULL;
        _cleanup_(table_freep) Table *table = NULL;
        size_t n;
        int r;

        r = ctl_parse(ctl, argc, argv, NULL, NULL, NULL, NULL);
        if (r < 0)
                return -r;
        if (r < argc)
                return ctl_usage("groups", "groups takes no arguments, got '%s'", argv[r]);
        r = get_topology(ctl, &t);
        if (r < 0)
                return -r;
        n = iommud_topology_get_n_groups(t);

        if (ctl->json) {
                _cleanup_(json_object_putp) json_object *o = json_object_new_object();
                json_object *a = json_object_new_array();

                if (!o || json_util_add(o, "groups", a) < 0)
                        return CTL_EXIT_FAILURE;
                for (size_t i = 0; i < n; i++)
                        json_object_array_add(a, group_to_json(iommud_topology_get_group(t, i)));
                return ctl_print_json(o) < 0 ? CTL_EXIT_FAILURE : CTL_EXIT_OK;
        }

        if (table_new(&table, headers, 4) < 0)
                return CTL_EXIT_FAILURE;
        for (size_t i = 0; i < n; i++) {
                const IommudGroup *g = iommud_topology_get_group(t, i);
                _cleanup_free_ char *regions = regions_text(g), *devices = NULL;
                const char *cells[6], *colors[6] = {};
                char id[16];
                size_t len = 1;

                for (size_t j = 0; j < g->n_devices; j++)
                        len += strlen(g->devices[j]) + 1;
                devices = calloc(1, len);
                if (!devices || !regions)
                        return CTL_EXIT_FAILURE;
                for (size_t j = 0; j < g->n_devices; j++) {
                        if (j > 0)
                                strcat(devices, "\n");
                        strcat(devices, g->devices[j]);
                }
                snprintf(id, sizeof(id), "%" PRIu32, g->id);
                cells[0] = id;
                cells[1] = g->type;
                cells[2] = g->iommu;
                cells[3] = !g->viable ? "no" : group_refused_for_direct(t, g) ? "yes*" : "yes";
                colors[3] = g->viable ? "green" : "red";
                cells[4] = devices;
                cells[5] = *regions ? regions : NULL;
                if (table_add_row(table, cells, colors) < 0)
                        return CTL_EXIT_FAILURE;
        }
        if (table_print(table, ctl, stdout) < 0)
                return CTL_EXIT_FAILURE;
        groups_print_notes(t);
        return CTL_EXIT_OK;
}

typedef struct ExplainArgs {
        bool has_uid;
        uint32_t uid;
} ExplainArgs;

static int opt_explain(Ctl *ctl, int c, const char *arg, void *userdata) {
        ExplainArgs *a = userdata;
        char *end;
        unsigned long v;

        errno = 0;
        v = strtoul(arg, &end, 10);
        if (errno != 0 || *end || end == arg || v > UINT32_MAX - 1 || arg[0] == '-') {
                ctl_usage("explain", "--uid takes a numeric user id, not '%s'", arg);
                return -EINVAL;
        }
        a->has_uid = true;
        a->uid = (uint32_t)v;
        return 0;
}

static const char *verdict_mark(const char *verdict) {
        if (streq(verdict, "pass"))
                return glyph(GLYPH_CHECK);
        if (streq(verdict, "fail"))
                return glyph(GLYPH_CROSS);
        return "-";
}

static const char *verdict_color(const char *verdict) {
        if (streq(verdict, "pass"))
                return "green";
        if (streq(verdict, "fail"))
                return "red";
        return "dim";
}

/* Prints (or emits as JSON) a decision: {allowed, steps[{step, verdict, reason}]}. */
static int print_decision(Ctl *ctl, const char *device, const char *who, json_object *decision) {
        json_object *steps = NULL;
        bool allowed = false;

        (void)json_util_get_bool(decision, "allowed", 0, &allowed, NULL);
        (void)json_util_get_array(decision, "steps", 0, &steps, NULL);

        if (ctl->json) {
                _cleanup_(json_object_putp) json_object *o = json_object_new_object();

                if (!o)
                        return CTL_EXIT_FAILURE;
                json_object_object_add(o, "device", json_object_new_string(device));
                json_object_object_add(o, "allowed", json_object_new_boolean(allowed));
                json_object_object_add(o, "steps", json_object_get(steps));
                if (ctl_print_json(o) < 0)
                        return CTL_EXIT_FAILURE;
                return allowed ? CTL_EXIT_OK : CTL_EXIT_DENIED;
        }

        printf("%s%s%s is %s%s%s by %s.\n", ctl_color(ctl, "bold"), device, ctl_color(ctl, "reset"),
               ctl_color(ctl, allowed ? "green" : "red"), allowed ? "usable" : "not usable",
               ctl_color(ctl, "reset"), who);
        for (size_t i = 0; steps && i < json_object_array_length(steps); i++) {
                json_object *s = json_object_array_get_idx(steps, i);
                const char *step = "?", *verdict = "skip", *reason = "";

                (void)json_util_get_string(s, "step", 0, &step, NULL);
                (void)json_util_get_string(s, "verdict", 0, &verdict, NULL);
                (void)json_util_get_string(s, "reason", 0, &reason, NULL);
                printf("  %s%s%s %-10s %s\n", ctl_color(ctl, verdict_color(verdict)),
                       verdict_mark(verdict), ctl_color(ctl, "reset"), step, reason);
        }
        return allowed ? CTL_EXIT_OK : CTL_EXIT_DENIED;
}

int verb_explain(Ctl *ctl, int argc, char **argv) {
        static const struct option options[] = {
                { "uid", required_argument, NULL, 'u' },
                {},
        };
        _cleanup_(json_object_putp) json_object *decision = NULL;
        ExplainArgs args = {};
        char device[CTL_DEVICE_MAX], who[64];
        int r;

        r = ctl_parse(ctl, argc, argv, options, "u:", opt_explain, &args);
        if (r < 0)
                return -r;
        if (r >= argc)
                return ctl_usage("explain", "explain needs a device, e.g. 'iommuctl explain "
                                             "0000:65:00.0'");
        if (r + 1 < argc)
                return ctl_usage("explain", "explain takes one device, got '%s' too", argv[r + 1]);
        r = ctl_device_arg("explain", argv[r], device);
        if (r < 0)
                return -r;

        if (args.has_uid) {
                _cleanup_(json_object_putp) json_object *p = json_object_new_object();

                if (!p || json_util_add(p, "device", json_object_new_string(device)) < 0 ||
                    json_util_add(p, "uid", json_object_new_int64(args.uid)) < 0)
                        return CTL_EXIT_FAILURE;
                r = ctl_manager_call(ctl, "ExplainDevice", p, &decision);
                if (r < 0)
                        return -r;
                snprintf(who, sizeof(who), "uid %" PRIu32, args.uid);
        } else {
                _cleanup_(iommud_explanation_freep) IommudExplanation *x = NULL;
                IommudClient *c;
                json_object *steps;

                r = ctl_connect(ctl, &c);
                if (r < 0)
                        return -r;
                r = iommud_explain_device(c, device, &x, ctl->error);
                if (r < 0)
                        return ctl_fail(ctl, r, NULL);
                decision = json_object_new_object();
                steps = json_object_new_array();
                if (!decision || json_util_add(decision, "allowed", json_object_new_boolean(
                                                                    iommud_explanation_is_allowed(x))) < 0 ||
                    json_util_add(decision, "steps", steps) < 0)
                        return CTL_EXIT_FAILURE;
                for (size_t i = 0; i < iommud_explanation_get_n_steps(x); i++) {
                        const IommudDecisionStep *s = iommud_explanation_get_step(x, i);
                        json_object *o = json_object_new_object();

                        json_object_object_add(o, "step", json_object_new_string(s->step));
                        json_object_object_add(o, "verdict", json_object_new_string(s->verdict));
                        json_object_object_add(o, "reason", json_object_new_string(s->reason));
                        json_object_array_add(steps, o);
                }
                snprintf(who, sizeof(who), "you");
        }
        return print_decision(ctl, device, who, decision);
}
