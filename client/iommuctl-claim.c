/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * iommuctl claim prepare|unprepare|list: runtime claims (org.iommud.Manager's PrepareClaim,
 * UnprepareClaim, ListClaims), what a DRA driver's node plugin asks iommud for.
 */

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "iommuctl.h"
#include "json-util.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(json_object *, json_object_put);

#define CLAIM_DEVICES_MAX 32

typedef struct ClaimArgs {
        char devices[CLAIM_DEVICES_MAX][CTL_DEVICE_MAX];
        size_t n_devices;
        bool has_uid, has_gid;
        uint32_t uid, gid;
        const char *unit;
} ClaimArgs;

static int parse_id(const char *what, const char *arg, uint32_t *ret) {
        unsigned long v;
        char *end;

        errno = 0;
        v = strtoul(arg, &end, 10);
        if (errno != 0 || *end || end == arg || arg[0] == '-' || v >= UINT32_MAX) {
                ctl_usage("claim", "%s takes a number, not '%s'", what, arg);
                return -EINVAL;
        }
        *ret = (uint32_t)v;
        return 0;
}

static int opt_claim(Ctl *ctl, int c, const char *arg, void *userdata) {
        ClaimArgs *a = userdata;

        switch (c) {
        case 'd':
                if (a->n_devices >= CLAIM_DEVICES_MAX) {
                        ctl_usage("claim", "at most %d devices", CLAIM_DEVICES_MAX);
                        return -EINVAL;
                }
                return ctl_device_arg("claim", arg, a->devices[a->n_devices++]) < 0 ? -EINVAL : 0;
        case 'u':
                a->has_uid = true;
                return parse_id("--uid", arg, &a->uid);
        case 'g':
                a->has_gid = true;
                return parse_id("--gid", arg, &a->gid);
        case 'U':
                a->unit = arg;
                return 0;
        }
        return -EINVAL;
}

static json_object *get_array(json_object *o, const char *key) {
        json_object *a = NULL;

        (void)json_util_get_array(o, key, JSON_UTIL_OPTIONAL, &a, NULL);
        return a;
}

static const char *get_str(json_object *o, const char *key) {
        const char *s = NULL;

        (void)json_util_get_string(o, key, JSON_UTIL_OPTIONAL, &s, NULL);
        return s;
}

/* "0000:01:00.0 0000:02:00.0" */
static void join_devices(json_object *devs, char *buf, size_t size) {
        size_t k = 0;

        buf[0] = 0;
        for (size_t i = 0; devs && i < json_object_array_length(devs) && k < size; i++)
                k += (size_t)snprintf(buf + k, size - k, "%s%s", i > 0 ? " " : "",
                                      json_object_get_string(json_object_array_get_idx(devs, i)));
}

static int claim_prepare(Ctl *ctl, const char *id, const ClaimArgs *a) {
        _cleanup_(json_object_putp) json_object *p = json_object_new_object(), *reply = NULL;
        json_object *devs = json_object_new_array(), *claim = NULL;
        bool prepared = false;
        char list[1024];
        int r;

        if (!p || !devs || json_util_add(p, "claimId", json_object_new_string(id)) < 0 ||
            json_util_add(p, "devices", devs) < 0 ||
            json_util_add(p, "uid", json_object_new_int64(a->uid)) < 0 ||
            (a->has_gid && json_util_add(p, "gid", json_object_new_int64(a->gid)) < 0) ||
            (a->unit && json_util_add(p, "unit", json_object_new_string(a->unit)) < 0))
                return CTL_EXIT_FAILURE;
        for (size_t i = 0; i < a->n_devices; i++)
                if (json_object_array_add(devs, json_object_new_string(a->devices[i])) < 0)
                        return CTL_EXIT_FAILURE;
        r = ctl_manager_call(ctl, "PrepareClaim", p, &reply);
        if (r < 0)
                return -r;
        if (ctl->json)
                return ctl_print_json(reply) < 0 ? CTL_EXIT_FAILURE : CTL_EXIT_OK;
        (void)json_util_get_object(reply, "claim", JSON_UTIL_OPTIONAL, &claim, NULL);
        (void)json_util_get_bool(reply, "prepared", JSON_UTIL_OPTIONAL, &prepared, NULL);
        join_devices(get_array(claim, "devices"), list, sizeof(list));
        printf("%s claim %s for uid %" PRIu32 ": %s.\n", prepared ? "Prepared" : "Already prepared",
               id, a->uid, list);
        printf("CDI spec %s (%s mode); give a container --device %s.\n",
               get_str(claim, "spec") ?: "?", get_str(claim, "mode") ?: "?",
               get_str(claim, "cdiDevice") ?: "?");
        return CTL_EXIT_OK;
}

static int claim_unprepare(Ctl *ctl, const char *id) {
        _cleanup_(json_object_putp) json_object *p = json_object_new_object(), *reply = NULL;
        bool released = false;
        int r;

        if (!p || json_util_add(p, "claimId", json_object_new_string(id)) < 0)
                return CTL_EXIT_FAILURE;
        r = ctl_manager_call(ctl, "UnprepareClaim", p, &reply);
        if (r < 0)
                return -r;
        if (ctl->json)
                return ctl_print_json(reply) < 0 ? CTL_EXIT_FAILURE : CTL_EXIT_OK;
        (void)json_util_get_bool(reply, "released", JSON_UTIL_OPTIONAL, &released, NULL);
        printf(released ? "Released claim %s and removed its CDI spec.\n"
                        : "Claim %s was not prepared; nothing to release.\n", id);
        return CTL_EXIT_OK;
}

static int claim_list(Ctl *ctl) {
        static const char *const headers[] = { "CLAIM", "UID", "UNIT", "MODE", "DEVICES",
                                               "SPEC", NULL };
        _cleanup_(json_object_putp) json_object *reply = NULL;
        _cleanup_(table_freep) Table *table = NULL;
        json_object *claims;
        int r;

        r = ctl_manager_call(ctl, "ListClaims", NULL, &reply);
        if (r < 0)
                return -r;
        claims = get_array(reply, "claims");
        if (ctl->json) {
                /* Every key, null when absent, as iommuctl(1) describes. */
                for (size_t i = 0; claims && i < json_object_array_length(claims); i++) {
                        json_object *c = json_object_array_get_idx(claims, i);

                        if (!json_object_object_get_ex(c, "unit", NULL))
                                (void)json_object_object_add(c, "unit", NULL);
                }
                return ctl_print_json(reply) < 0 ? CTL_EXIT_FAILURE : CTL_EXIT_OK;
        }
        if (table_new(&table, headers, 4) < 0)
                return CTL_EXIT_FAILURE;
        for (size_t i = 0; claims && i < json_object_array_length(claims); i++) {
                json_object *c = json_object_array_get_idx(claims, i);
                char uid[24], list[1024];
                uint64_t v = 0;

                (void)json_util_get_u64(c, "uid", JSON_UTIL_OPTIONAL, &v, NULL);
                snprintf(uid, sizeof(uid), "%" PRIu64, v);
                join_devices(get_array(c, "devices"), list, sizeof(list));
                if (table_add_row(table,
                                  (const char *const[]){ get_str(c, "claimId"), uid,
                                                         get_str(c, "unit"), get_str(c, "mode"),
                                                         list, get_str(c, "spec") },
                                  NULL) < 0)
                        return CTL_EXIT_FAILURE;
        }
        return table_print(table, ctl, stdout) < 0 ? CTL_EXIT_FAILURE : CTL_EXIT_OK;
}

int verb_claim(Ctl *ctl, int argc, char **argv) {
        static const struct option options[] = {
                { "device", required_argument, NULL, 'd' },
                { "uid", required_argument, NULL, 'u' },
                { "gid", required_argument, NULL, 'g' },
                { "unit", required_argument, NULL, 'U' },
                {},
        };
        ClaimArgs a = {};
        const char *sub;
        int r;

        r = ctl_parse(ctl, argc, argv, options, "d:u:", opt_claim, &a);
        if (r < 0)
                return -r;
        if (r >= argc)
                return ctl_usage("claim", "claim needs 'prepare', 'unprepare' or 'list'");
        sub = argv[r++];
        if (streq(sub, "list")) {
                if (r < argc || a.n_devices > 0 || a.has_uid || a.has_gid || a.unit)
                        return ctl_usage("claim", "claim list takes no arguments or options");
                return claim_list(ctl);
        }
        if (!streq(sub, "prepare") && !streq(sub, "unprepare"))
                return ctl_usage("claim", "unknown claim subcommand '%s'", sub);
        if (r >= argc)
                return ctl_usage("claim", "claim %s needs a claim id", sub);
        if (r + 1 < argc)
                return ctl_usage("claim", "claim %s takes one claim id, got '%s' too", sub,
                                 argv[r + 1]);
        if (streq(sub, "unprepare")) {
                if (a.n_devices > 0 || a.has_uid || a.has_gid || a.unit)
                        return ctl_usage("claim", "claim unprepare takes only the claim id");
                return claim_unprepare(ctl, argv[r]);
        }
        if (a.n_devices == 0 || !a.has_uid)
                return ctl_usage("claim", "claim prepare needs --device DEVICE and --uid UID");
        return claim_prepare(ctl, argv[r], &a);
}
