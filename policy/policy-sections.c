/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* The sections of a policy file: limits, quotas, reserved regions, rules, pools and grants. */

#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "macros.h"
#include "policy-parser.h"

static const char *const quota_keys[_QUOTA_FIELD_MAX] = {
        [QUOTA_PINNED_BYTES] = "pinned-memory",
        [QUOTA_ADDRESS_SPACES] = "address-spaces",
        [QUOTA_MAPPINGS] = "mappings",
        [QUOTA_DEVICES] = "devices",
        [QUOTA_PASIDS] = "pasids",
        [QUOTA_FAULT_QUEUE_DEPTH] = "fault-queue-depth",
        [QUOTA_CONNECTIONS] = "connections",
};

/*
 * A pinned-memory quota above the most physical memory a 64-bit machine addresses (52 bits on
 * x86-64 and arm64) can never be reached: it is a typo or means "unlimited", which says so.
 */
#define PINNED_MAX (UINT64_C(1) << 52)
#define PINNED_MAX_NAME "4P, the most memory a 64-bit machine can address"
/* A message, and the replies queued for a client, are buffers iommud holds per connection. */
#define BUFFER_MAX (UINT64_C(1) << 30)
#define BUFFER_MAX_NAME "1G, the largest buffer iommud keeps for one connection"

static int parse_quotas(Parser *P, json_object *v, const char *path, uint64_t *values,
                        unsigned *set) {
        static const char *const keys[_QUOTA_FIELD_MAX + 1] = {
                "pinned-memory", "address-spaces", "mappings", "devices",
                "pasids",        "fault-queue-depth", "connections", NULL,
        };
        int r;

        r = policy_expect_type(P, v, path, json_type_object, "an object of quotas");
        if (r < 0)
                return r;
        r = policy_check_keys(P, v, path, keys);
        for (QuotaField q = 0; q < _QUOTA_FIELD_MAX; q++) {
                char child[JPATH_MAX];
                json_object *f;
                uint64_t u;
                int k;

                if (!json_object_object_get_ex(v, quota_keys[q], &f))
                        continue;
                json_pos_path_key(child, sizeof(child), path, quota_keys[q]);
                k = q == QUOTA_PINNED_BYTES
                            ? policy_parse_size(P, f, child, PINNED_MAX, PINNED_MAX_NAME, true, &u)
                            : policy_parse_count(P, f, child, &u);
                if (k < 0) {
                        r = k;
                        continue;
                }
                values[q] = u;
                if (set)
                        *set |= 1u << q;
        }
        return r;
}

/*
 * An octal string.  JSON has no octal numbers: an integer 666 is decimal, mode 01232, so a
 * number is refused rather than read as something the writer did not mean.
 */
static int parse_socket_mode(Parser *P, json_object *v, const char *path, uint32_t *ret) {
        const char *s;
        uint64_t u;

        if (json_object_is_type(v, json_type_int) && json_object_get_int64(v) >= 0)
                return policy_parse_error(P, path, false,
                                          "socket mode %s is a JSON number, which is decimal: mode "
                                          "0%" PRIo64 "; write the octal mode as a string such as "
                                          "\"0660\"",
                                          json_object_get_string(v),
                                          (uint64_t)json_object_get_int64(v));
        if (!json_object_is_type(v, json_type_string))
                return policy_parse_error(P, path, false,
                                          "expected an octal mode as a string such as \"0660\", "
                                          "got %s",
                                          policy_json_type_name(v));
        s = json_object_get_string(v);
        errno = 0;
        u = strtoull(s, NULL, 8);
        if (!*s || s[strspn(s, "01234567")] || errno != 0 || u > 07777)
                return policy_parse_error(
                        P, path, false,
                        "invalid socket mode '%s': expected an octal mode such as \"0660\"", s);
        if (u > 0777)
                return policy_parse_error(P, path, false,
                                          "socket mode '%s' sets the setuid, setgid or sticky bit, "
                                          "which mean nothing on a socket; at most \"0777\"",
                                          s);
        *ret = (uint32_t)u;
        return 0;
}

static int parse_limits(Parser *P, json_object *v, const char *path, PolicyLimits *l) {
        static const char *const keys[] = {
                "max-message-size", "max-fds-per-message", "max-queued-output",
                "max-connections", "max-connections-per-user", "socket-mode",
                "fault-response-timeout-ms", "session-reclaim-grace-ms", "reserved-connections",
                "idle-timeout-ms", "device-release-timeout-ms", NULL,
        };
        static const struct {
                const char *key;
                size_t offset;
                bool size;
                bool zero_ok;
        } fields[] = {
                { "max-message-size", offsetof(PolicyLimits, max_message_bytes), true },
                { "max-fds-per-message", offsetof(PolicyLimits, max_fds_per_message), false },
                { "max-queued-output", offsetof(PolicyLimits, max_queued_output_bytes), true },
                { "max-connections", offsetof(PolicyLimits, max_connections), false },
                { "max-connections-per-user", offsetof(PolicyLimits, max_connections_per_uid), false },
                { "fault-response-timeout-ms", offsetof(PolicyLimits, fault_response_timeout_ms), false },
                { "session-reclaim-grace-ms", offsetof(PolicyLimits, session_reclaim_grace_ms), false },
                { "reserved-connections", offsetof(PolicyLimits, reserved_connections), false },
                { "idle-timeout-ms", offsetof(PolicyLimits, idle_timeout_ms), false },
                /* 0: a device the host wants back is released at once. */
                { "device-release-timeout-ms", offsetof(PolicyLimits, device_release_timeout_ms),
                  false, true },
        };
        char child[JPATH_MAX];
        json_object *f;
        int r;

        r = policy_expect_type(P, v, path, json_type_object, "an object of limits");
        if (r < 0)
                return r;
        r = policy_check_keys(P, v, path, keys);
        for (size_t i = 0; i < ELEMENTSOF(fields); i++) {
                uint64_t u;
                int k;

                if (!json_object_object_get_ex(v, fields[i].key, &f))
                        continue;
                json_pos_path_key(child, sizeof(child), path, fields[i].key);
                k = fields[i].size ? policy_parse_size(P, f, child, BUFFER_MAX, BUFFER_MAX_NAME,
                                                       false, &u)
                                   : policy_parse_count(P, f, child, &u);
                if (k < 0) {
                        r = k;
                        continue;
                }
                /* Limits bound buffers: zero would make the daemon unusable. */
                if (u == 0 && !fields[i].zero_ok) {
                        r = policy_parse_error(P, child, false, "%s must be at least 1",
                                               fields[i].key);
                        continue;
                }
                *(uint64_t *)((uint8_t *)l + fields[i].offset) = u;
        }
        if (json_object_object_get_ex(v, "socket-mode", &f)) {
                uint32_t mode = 0;
                int k;

                json_pos_path_key(child, sizeof(child), path, "socket-mode");
                k = parse_socket_mode(P, f, child, &mode);
                if (k < 0)
                        r = k;
                else
                        l->socket_mode = mode;
        }
        return r;
}

static int parse_region_action(Parser *P, json_object *v, const char *path, RegionAction *ret) {
        const char *s;
        int r;

        r = policy_parse_string(P, v, path, &s);
        if (r < 0)
                return r;
        if (streq(s, "allow"))
                *ret = REGION_ACTION_ALLOW;
        else if (streq(s, "deny"))
                *ret = REGION_ACTION_DENY;
        else
                return policy_parse_error(P, path, false,
                                          "invalid action '%s': expected \"allow\" or \"deny\"", s);
        return 0;
}

static int name_check(Parser *P, const char *name, const char *path) {
        if (!*name)
                return policy_parse_error(P, path, true, "empty name");
        for (const char *p = name; *p; p++)
                if ((unsigned char)*p < 0x20)
                        return policy_parse_error(P, path, true,
                                                  "name contains a control character");
        return 0;
}

typedef int (*parse_named_fn)(Parser *P, json_object *v, const char *path, const char *name,
                              void **ret);

static int parse_named(Parser *P, json_object *v, const char *path, const char *what,
                       void ***items, size_t *n, parse_named_fn parse_one,
                       void (*free_one)(void *)) {
        int r;

        r = policy_expect_type(P, v, path, json_type_object, what);
        if (r < 0)
                return r;
        json_object_object_foreach(v, key, val) {
                char child[JPATH_MAX];
                void *item = NULL;
                int q;

                json_pos_path_key(child, sizeof(child), path, key);
                if (name_check(P, key, child) < 0) {
                        r = -EINVAL;
                        continue;
                }
                /* null removes an entry an earlier file defined. */
                if (!val) {
                        policy_named_list_remove(items, n, key, free_one);
                        continue;
                }
                q = parse_one(P, val, child, key, &item);
                if (q < 0)
                        r = q;
                /* Kept even when invalid, so that references to it do not pile up errors. */
                if (item && policy_named_list_put(items, n, item, free_one) < 0)
                        P->fatal = true;
                if (P->fatal)
                        return -ENOMEM;
        }
        return r;
}

static int entry_new(Parser *P, size_t size, const char *name, void **ret) {
        char **e;

        e = calloc(1, size);
        if (!e)
                goto oom;
        *e = strdup(name);
        if (!*e) {
                free(e);
                goto oom;
        }
        *ret = e;
        return 0;
oom:
        P->fatal = true;
        return -ENOMEM;
}

static int parse_rule(Parser *P, json_object *v, const char *path, const char *name, void **ret) {
        static const char *const keys[] = { "action", "match", "comment", NULL };
        char child[JPATH_MAX];
        PolicyRule *rule;
        json_object *f;
        const char *s;
        int r;

        r = policy_expect_type(P, v, path, json_type_object, "a rule object");
        if (r < 0)
                return r;
        r = entry_new(P, sizeof(PolicyRule), name, (void **)&rule);
        if (r < 0)
                return r;
        *ret = rule;
        r = policy_check_keys(P, v, path, keys);
        if (json_object_object_get_ex(v, "comment", &f)) {
                json_pos_path_key(child, sizeof(child), path, "comment");
                if (policy_parse_string(P, f, child, &s) < 0)
                        r = -EINVAL;
        }
        if (!json_object_object_get_ex(v, "action", &f))
                r = policy_parse_error(P, path, false,
                                       "rule '%s' needs \"action\": \"allow\" or \"deny\"", name);
        else {
                json_pos_path_key(child, sizeof(child), path, "action");
                if (policy_parse_string(P, f, child, &s) < 0)
                        r = -EINVAL;
                else if (streq(s, "deny"))
                        rule->deny = true;
                else if (!streq(s, "allow"))
                        r = policy_parse_error(
                                P, child, false,
                                "invalid action '%s': expected \"allow\" or \"deny\"", s);
        }
        if (!json_object_object_get_ex(v, "match", &f))
                r = policy_parse_error(P, path, false,
                                       "rule '%s' needs \"match\": the devices it applies to",
                                       name);
        else {
                json_pos_path_key(child, sizeof(child), path, "match");
                if (policy_parse_matcher_list(P, f, child, &rule->match) < 0)
                        r = -EINVAL;
                else if (rule->match.n == 0)
                        r = policy_parse_error(P, child, false, "an empty list matches no device");
        }
        return r;
}

static int parse_pool(Parser *P, json_object *v, const char *path, const char *name, void **ret) {
        static const char *const keys[] = { "devices", "comment", NULL };
        char child[JPATH_MAX];
        PolicyPool *pool;
        json_object *f;
        const char *s;
        int r;

        r = policy_expect_type(P, v, path, json_type_object, "a pool object");
        if (r < 0)
                return r;
        r = entry_new(P, sizeof(PolicyPool), name, (void **)&pool);
        if (r < 0)
                return r;
        *ret = pool;
        r = policy_check_keys(P, v, path, keys);
        if (json_object_object_get_ex(v, "comment", &f)) {
                json_pos_path_key(child, sizeof(child), path, "comment");
                if (policy_parse_string(P, f, child, &s) < 0)
                        r = -EINVAL;
        }
        if (!json_object_object_get_ex(v, "devices", &f))
                r = policy_parse_error(P, path, false, "pool '%s' needs \"devices\"", name);
        else {
                json_pos_path_key(child, sizeof(child), path, "devices");
                if (policy_parse_matcher_list(P, f, child, &pool->devices) < 0)
                        r = -EINVAL;
        }
        return r;
}

static int parse_exception(Parser *P, json_object *v, const char *path, const char *name,
                           void **ret) {
        static const char *const keys[] = { "match", "direct", "direct-relaxable", "comment", NULL };
        char child[JPATH_MAX];
        PolicyRegionException *e;
        json_object *f;
        const char *s;
        int r;

        r = policy_expect_type(P, v, path, json_type_object, "an exception object");
        if (r < 0)
                return r;
        r = entry_new(P, sizeof(PolicyRegionException), name, (void **)&e);
        if (r < 0)
                return r;
        e->direct = e->direct_relaxable = REGION_ACTION_UNSET;
        *ret = e;
        r = policy_check_keys(P, v, path, keys);
        if (json_object_object_get_ex(v, "comment", &f)) {
                json_pos_path_key(child, sizeof(child), path, "comment");
                if (policy_parse_string(P, f, child, &s) < 0)
                        r = -EINVAL;
        }
        if (!json_object_object_get_ex(v, "match", &f))
                r = policy_parse_error(P, path, false, "exception '%s' needs \"match\"", name);
        else {
                json_pos_path_key(child, sizeof(child), path, "match");
                if (policy_parse_matcher_list(P, f, child, &e->match) < 0)
                        r = -EINVAL;
        }
        if (json_object_object_get_ex(v, "direct", &f)) {
                json_pos_path_key(child, sizeof(child), path, "direct");
                if (parse_region_action(P, f, child, &e->direct) < 0)
                        r = -EINVAL;
        }
        if (json_object_object_get_ex(v, "direct-relaxable", &f)) {
                json_pos_path_key(child, sizeof(child), path, "direct-relaxable");
                if (parse_region_action(P, f, child, &e->direct_relaxable) < 0)
                        r = -EINVAL;
        }
        return r;
}

static int parse_iova_windows(Parser *P, json_object *v, const char *path, PolicyGrant *g) {
        static const char *const keys[] = { "start", "last", NULL };
        size_t n;
        int r;

        r = policy_expect_type(P, v, path, json_type_array,
                               "an array of {\"start\", \"last\"} windows");
        if (r < 0)
                return r;
        n = json_object_array_length(v);
        g->windows = calloc(n ?: 1, sizeof(IovaWindow));
        g->window_sources = calloc(n ?: 1, sizeof(PolicySource));
        if (!g->windows || !g->window_sources) {
                P->fatal = true;
                return -ENOMEM;
        }
        for (size_t i = 0; i < n; i++) {
                json_object *w = json_object_array_get_idx(v, i), *fs, *fl;
                char child[JPATH_MAX], fp[JPATH_MAX];
                uint64_t start, last;

                json_pos_path_index(child, sizeof(child), path, i);
                if (policy_expect_type(P, w, child, json_type_object,
                                       "an object with \"start\" and \"last\"") < 0) {
                        r = -EINVAL;
                        continue;
                }
                if (policy_check_keys(P, w, child, keys) < 0)
                        r = -EINVAL;
                if (!json_object_object_get_ex(w, "start", &fs) ||
                    !json_object_object_get_ex(w, "last", &fl)) {
                        r = policy_parse_error(
                                P, child, false,
                                "an IOVA window needs \"start\" and \"last\" (inclusive)");
                        continue;
                }
                json_pos_path_key(fp, sizeof(fp), child, "start");
                if (policy_parse_u64(P, fs, fp, &start) < 0) {
                        r = -EINVAL;
                        continue;
                }
                json_pos_path_key(fp, sizeof(fp), child, "last");
                if (policy_parse_u64(P, fl, fp, &last) < 0) {
                        r = -EINVAL;
                        continue;
                }
                if (start > last) {
                        r = policy_parse_error(P, child, false,
                                               "IOVA window start 0x%" PRIx64
                                               " is above its last address 0x%" PRIx64,
                                               start, last);
                        continue;
                }
                /* Checked against the host's reserved regions later: policy_check_host(). */
                if (policy_source_remember(P, child, &g->window_sources[g->n_windows]) < 0)
                        return -ENOMEM;
                g->windows[g->n_windows++] = (IovaWindow){ .start = start, .last = last };
        }
        return r;
}

static int parse_pasids(Parser *P, json_object *v, const char *path, PolicyGrant *g) {
        static const char *const keys[] = { "min", "max", NULL };
        uint64_t lo = PASID_MIN_DEFAULT, hi = PASID_MAX_DEFAULT;
        char child[JPATH_MAX];
        json_object *f;
        int r;

        r = policy_expect_type(P, v, path, json_type_object, "an object with \"min\" and \"max\"");
        if (r < 0)
                return r;
        r = policy_check_keys(P, v, path, keys);
        if (json_object_object_get_ex(v, "min", &f)) {
                json_pos_path_key(child, sizeof(child), path, "min");
                if (policy_parse_u64(P, f, child, &lo) < 0)
                        r = -EINVAL;
                else if (lo > PASID_MAX_DEFAULT)
                        r = policy_parse_error(P, child, false,
                                               "PASID 0x%" PRIx64
                                               " does not fit in 20 bits (maximum 0xfffff)",
                                               lo);
        }
        if (json_object_object_get_ex(v, "max", &f)) {
                json_pos_path_key(child, sizeof(child), path, "max");
                if (policy_parse_u64(P, f, child, &hi) < 0)
                        r = -EINVAL;
                else if (hi > PASID_MAX_DEFAULT)
                        r = policy_parse_error(P, child, false,
                                               "PASID 0x%" PRIx64
                                               " does not fit in 20 bits (maximum 0xfffff)",
                                               hi);
        }
        if (r < 0)
                return r;
        if (lo > hi)
                return policy_parse_error(P, path, false,
                                          "PASID range min %" PRIu64 " is above max %" PRIu64, lo,
                                          hi);
        g->has_pasids = true;
        g->pasid_min = (uint32_t)lo;
        g->pasid_max = (uint32_t)hi;
        return 0;
}

static int parse_pool_refs(Parser *P, json_object *v, const char *path, PolicyGrant *g) {
        size_t n;
        int r;

        r = policy_expect_type(P, v, path, json_type_array, "an array of pool names");
        if (r < 0)
                return r;
        n = json_object_array_length(v);
        g->pools = calloc(n ?: 1, sizeof(PoolRef));
        if (!g->pools)
                goto oom;
        for (size_t i = 0; i < n; i++) {
                char child[JPATH_MAX];
                PoolRef *ref;
                const char *s;

                json_pos_path_index(child, sizeof(child), path, i);
                if (policy_parse_string(P, json_object_array_get_idx(v, i), child, &s) < 0) {
                        r = -EINVAL;
                        continue;
                }
                /* Resolved after every file is merged; remember where the name was written. */
                ref = &g->pools[g->n_pools++];
                ref->name = strdup(s);
                if (!ref->name || policy_source_remember(P, child, &ref->source) < 0)
                        goto oom;
        }
        return r;
oom:
        P->fatal = true;
        return -ENOMEM;
}

static int parse_grant(Parser *P, json_object *v, const char *path, const char *name, void **ret) {
        static const char *const keys[] = {
                "principals", "devices", "pools", "quotas", "iova-windows", "pasids",
                "delegation", "open-on-behalf", "dirty-tracking", "comment", NULL,
        };
        char child[JPATH_MAX];
        PolicyGrant *g;
        json_object *f;
        const char *s;
        int r;

        r = policy_expect_type(P, v, path, json_type_object, "a grant object");
        if (r < 0)
                return r;
        r = entry_new(P, sizeof(PolicyGrant), name, (void **)&g);
        if (r < 0)
                return r;
        *ret = g;
        r = policy_check_keys(P, v, path, keys);

#define CHILD(key) (json_pos_path_key(child, sizeof(child), path, key), child)
        if (json_object_object_get_ex(v, "comment", &f) &&
            policy_parse_string(P, f, CHILD("comment"), &s) < 0)
                r = -EINVAL;
        if (!json_object_object_get_ex(v, "principals", &f))
                r = policy_parse_error(P, path, false,
                                       "grant '%s' needs \"principals\": who it applies to", name);
        else if (policy_parse_principals(P, f, CHILD("principals"), g) < 0)
                r = -EINVAL;
        if (json_object_object_get_ex(v, "devices", &f) &&
            policy_parse_matcher_list(P, f, CHILD("devices"), &g->devices) < 0)
                r = -EINVAL;
        if (json_object_object_get_ex(v, "pools", &f) && parse_pool_refs(P, f, CHILD("pools"), g) < 0)
                r = -EINVAL;
        if (json_object_object_get_ex(v, "quotas", &f) &&
            parse_quotas(P, f, CHILD("quotas"), g->quotas.v, &g->quotas.set) < 0)
                r = -EINVAL;
        if (json_object_object_get_ex(v, "iova-windows", &f) &&
            parse_iova_windows(P, f, CHILD("iova-windows"), g) < 0)
                r = -EINVAL;
        if (json_object_object_get_ex(v, "pasids", &f) && parse_pasids(P, f, CHILD("pasids"), g) < 0)
                r = -EINVAL;
        if (json_object_object_get_ex(v, "delegation", &f) &&
            policy_parse_bool(P, f, CHILD("delegation"), &g->delegation) < 0)
                r = -EINVAL;
        if (json_object_object_get_ex(v, "open-on-behalf", &f) &&
            policy_parse_bool(P, f, CHILD("open-on-behalf"), &g->open_on_behalf) < 0)
                r = -EINVAL;
        if (json_object_object_get_ex(v, "dirty-tracking", &f)) {
                bool allow = true;

                if (policy_parse_bool(P, f, CHILD("dirty-tracking"), &allow) < 0)
                        r = -EINVAL;
                g->no_dirty_tracking = !allow;
        }
#undef CHILD
        return P->fatal ? -ENOMEM : r;
}

static int parse_reserved_regions(Parser *P, json_object *v, const char *path, Policy *p) {
        static const char *const keys[] = { "direct", "direct-relaxable", "exceptions", NULL };
        char child[JPATH_MAX];
        json_object *f;
        int r;

        r = policy_expect_type(P, v, path, json_type_object, "an object");
        if (r < 0)
                return r;
        r = policy_check_keys(P, v, path, keys);
        if (json_object_object_get_ex(v, "direct", &f)) {
                json_pos_path_key(child, sizeof(child), path, "direct");
                if (parse_region_action(P, f, child, &p->direct) < 0)
                        r = -EINVAL;
        }
        if (json_object_object_get_ex(v, "direct-relaxable", &f)) {
                json_pos_path_key(child, sizeof(child), path, "direct-relaxable");
                if (parse_region_action(P, f, child, &p->direct_relaxable) < 0)
                        r = -EINVAL;
        }
        if (json_object_object_get_ex(v, "exceptions", &f)) {
                json_pos_path_key(child, sizeof(child), path, "exceptions");
                if (parse_named(P, f, child, "an object of named exceptions",
                                (void ***)&p->exceptions, &p->n_exceptions, parse_exception,
                                policy_region_exception_free) < 0)
                        r = -EINVAL;
        }
        return r;
}

int policy_parse_root(Parser *P, json_object *root, Policy *p) {
        static const char *const keys[] = {
                "limits", "quotas", "reserved-regions", "rules", "pools", "grants", "comment", NULL,
        };
        json_object *f;
        const char *s;
        int r;

        if (!json_object_is_type(root, json_type_object))
                return policy_parse_error(P, "", false,
                                          "expected the policy to be a JSON object, got %s",
                                          policy_json_type_name(root));
        r = policy_check_keys(P, root, "", keys);
        if (json_object_object_get_ex(root, "comment", &f) &&
            policy_parse_string(P, f, "comment", &s) < 0)
                r = -EINVAL;
        if (json_object_object_get_ex(root, "limits", &f) && parse_limits(P, f, "limits", &p->limits) < 0)
                r = -EINVAL;
        if (json_object_object_get_ex(root, "quotas", &f) &&
            parse_quotas(P, f, "quotas", p->default_quotas, NULL) < 0)
                r = -EINVAL;
        if (json_object_object_get_ex(root, "reserved-regions", &f) &&
            parse_reserved_regions(P, f, "reserved-regions", p) < 0)
                r = -EINVAL;
        if (json_object_object_get_ex(root, "rules", &f) &&
            parse_named(P, f, "rules", "an object of named rules", (void ***)&p->rules, &p->n_rules,
                        parse_rule, policy_rule_free) < 0)
                r = -EINVAL;
        if (json_object_object_get_ex(root, "pools", &f) &&
            parse_named(P, f, "pools", "an object of named pools", (void ***)&p->pools, &p->n_pools,
                        parse_pool, policy_pool_free) < 0)
                r = -EINVAL;
        if (json_object_object_get_ex(root, "grants", &f) &&
            parse_named(P, f, "grants", "an object of named grants", (void ***)&p->grants,
                        &p->n_grants, parse_grant, policy_grant_free) < 0)
                r = -EINVAL;
        return P->fatal ? -ENOMEM : r;
}
