/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "macros.h"
#include "policy.h"

#define DEFAULT_POLICY IOMMUD_SOURCE_ROOT "/policy/default.json"

/* One invalid text and the first problem it must produce. */
typedef struct ParseCase {
        const char *name;
        const char *text;
        unsigned line, column;
        const char *path;
        const char *message;     /* substring of the message */
} ParseCase;

static const ParseCase parse_cases[] = {
        { "syntax: missing comma",
          "{\n  \"limits\": {\n    \"max-connections\": 5\n    \"socket-mode\": \"0600\"\n  }\n}\n",
          4, 5, "", "invalid JSON" },
        { "syntax: truncated", "{\n  \"rules\": {\n", 3, 1, "", "unexpected end of file" },
        { "unterminated comment", "{\n  /* never closed\n}\n", 2, 3, "", "unterminated comment" },
        { "top level is not an object", "[1, 2]\n", 1, 1, "", "expected the policy to be a JSON object" },
        { "unknown top-level key", "{\n  \"rulez\": {}\n}\n", 2, 3, "rulez",
          "unknown key 'rulez'; expected one of: limits, quotas, reserved-regions" },
        { "unknown key in a rule",
          "{\"rules\": {\n  \"nvme\": {\"action\": \"allow\", \"match\": \"*\", \"colour\": 1}\n}}\n",
          2, 45, "rules.nvme.colour", "unknown key 'colour'" },
        { "unknown key in a matcher",
          "{\"rules\": {\"a\": {\"action\": \"allow\",\n  \"match\": {\"vendor\": \"8086\"}}}}\n",
          2, 13, "rules.a.match.vendor", "unknown key 'vendor'; expected one of: bdf, id, class, driver" },
        { "bad type for a count",
          "{\"limits\": {\n  \"max-fds-per-message\": true\n}}\n",
          2, 26, "limits.max-fds-per-message", "expected a non-negative integer, got a boolean" },
        { "bad string for a count",
          "{\"limits\": {\"max-connections\": \"lots\"}}", 1, 32, "limits.max-connections",
          "invalid count 'lots'" },
        { "negative count",
          "{\"quotas\": {\"devices\": -1}}", 1, 24, "quotas.devices",
          "expected a non-negative integer, got -1" },
        { "fractional count",
          "{\"quotas\": {\"devices\": 1.5}}", 1, 24, "quotas.devices", "got a number with a fraction" },
        { "zero limit",
          "{\"limits\": {\"max-message-size\": 0}}", 1, 33, "limits.max-message-size",
          "must be at least 1" },
        { "bad size suffix",
          "{\"quotas\": {\n\t\"pinned-memory\": \"4Q\"\n}}", 2, 19, "quotas.pinned-memory",
          "invalid size '4Q'" },
        { "size overflow",
          "{\"quotas\": {\"pinned-memory\": \"99999999999E\"}}", 1, 30, "quotas.pinned-memory",
          "does not fit in 64 bits" },
        { "bad socket mode",
          "{\"limits\": {\"socket-mode\": \"0689\"}}", 1, 28, "limits.socket-mode",
          "invalid socket mode '0689'" },
        { "socket mode as a JSON number",
          "{\"limits\": {\n  \"socket-mode\": 666\n}}", 2, 18, "limits.socket-mode",
          "socket mode 666 is a JSON number, which is decimal: mode 01232" },
        { "socket mode with a sticky bit",
          "{\"limits\": {\"socket-mode\": \"1666\"}}", 1, 28, "limits.socket-mode",
          "sets the setuid, setgid or sticky bit" },
        { "socket mode with a sign",
          "{\"limits\": {\"socket-mode\": \"-0660\"}}", 1, 28, "limits.socket-mode",
          "invalid socket mode '-0660'" },
        { "pinned memory beyond any machine",
          "{\"quotas\": {\n  \"pinned-memory\": \"15E\"\n}}", 2, 20, "quotas.pinned-memory",
          "size '15E' is above 4P, the most memory a 64-bit machine can address; write "
          "\"unlimited\"" },
        { "pinned memory beyond any machine, in bytes",
          "{\"quotas\": {\"pinned-memory\": 9223372036854775807}}", 1, 30, "quotas.pinned-memory",
          "size 9223372036854775807 is above 4P" },
        { "message size beyond a buffer",
          "{\"limits\": {\"max-message-size\": \"15E\"}}", 1, 33, "limits.max-message-size",
          "size '15E' is above 1G, the largest buffer iommud keeps for one connection" },
        { "unlimited queued output",
          "{\"limits\": {\"max-queued-output\": \"unlimited\"}}", 1, 34,
          "limits.max-queued-output", "cannot be \"unlimited\"" },
        { "bad glob",
          "{\"rules\": {\"a\": {\"action\": \"allow\", \"match\": \"0000:[65:00.0\"}}}", 1, 46,
          "rules.a.match", "invalid bdf pattern '0000:[65:00.0': '[' has no matching ']'" },
        { "bad driver glob",
          "{\"rules\": {\"a\": {\"action\": \"allow\", \"match\": {\"driver\": \"vfio\\\\\"}}}}", 1, 57,
          "rules.a.match.driver", "lone backslash" },
        { "lspci's short form, which names no device",
          "{\"rules\": {\"a\": {\"action\": \"allow\", \"match\": \"01:00.0\"}}}", 1, 46,
          "rules.a.match", "invalid bdf pattern '01:00.0': PCI device names start with their "
          "domain: write '0000:' before it" },
        { "a short-form glob",
          "{\"pools\": {\"p\": {\"devices\": [\"41:00.*\"]}}}", 1, 30, "pools.p.devices[0]",
          "invalid bdf pattern '41:00.*': PCI device names start with their domain" },
        { "a trailing space",
          "{\"rules\": {\"a\": {\"action\": \"allow\", \"match\": {\"driver\": \"vfio-pci \"}}}}",
          1, 57, "rules.a.match.driver",
          "invalid driver pattern 'vfio-pci ': it contains white space, which no name has" },
        { "empty glob",
          "{\"pools\": {\"p\": {\"devices\": [\"*\", \"\"]}}}", 1, 35, "pools.p.devices[1]",
          "invalid bdf pattern '': it is empty" },
        { "bad class: letters",
          "{\"rules\": {\"a\": {\"action\": \"deny\", \"match\": {\"class\": \"0x01zz02\"}}}}", 1, 55,
          "rules.a.match.class", "invalid class '0x01zz02'" },
        { "bad class: too short",
          "{\"rules\": {\"a\": {\"action\": \"deny\", \"match\": {\"class\": \"0x0108x\"}}}}", 1, 55,
          "rules.a.match.class", "expected 0x and 6 hex digits" },
        { "bad id",
          "{\"rules\": {\"a\": {\"action\": \"deny\", \"match\": {\"id\": \"8086\"}}}}", 1, 52,
          "rules.a.match.id", "invalid id '8086'" },
        { "empty matcher",
          "{\"rules\": {\"a\": {\"action\": \"deny\", \"match\": {}}}}", 1, 45, "rules.a.match",
          "needs at least one of bdf, id, class, driver" },
        { "bad action",
          "{\"rules\": {\"a\": {\"action\": \"permit\", \"match\": \"*\"}}}", 1, 28, "rules.a.action",
          "invalid action 'permit'" },
        { "rule without action",
          "{\"rules\": {\"a\": {\"match\": \"*\"}}}", 1, 17, "rules.a", "needs \"action\"" },
        { "unknown user",
          "{\"grants\": {\"g\": {\"principals\": [\"user:no-such-user-iommud\"]}}}", 1, 34,
          "grants.g.principals[0]", "unknown user 'no-such-user-iommud'" },
        { "unknown group in an object",
          "{\"grants\": {\"g\": {\"principals\": [{\"group\": \"no-such-group-iommud\"}]}}}", 1, 44,
          "grants.g.principals[0].group", "unknown group 'no-such-group-iommud'" },
        { "bad principal string",
          "{\"grants\": {\"g\": {\"principals\": \"qemu\"}}}", 1, 33, "grants.g.principals",
          "invalid principal 'qemu'" },
        { "bad unit glob",
          "{\"grants\": {\"g\": {\"principals\": [\"unit:qemu-[.scope\"]}}}", 1, 34,
          "grants.g.principals[0]", "invalid unit pattern 'qemu-[.scope'" },
        { "grant without principals",
          "{\"grants\": {\"g\": {\"devices\": \"*\"}}}", 1, 18, "grants.g", "needs \"principals\"" },
        { "duplicate rule name",
          "{\"rules\": {\n  \"a\": {\"action\": \"allow\", \"match\": \"*\"},\n  \"a\": {\"action\": \"deny\", \"match\": \"*\"}\n}}\n",
          3, 3, "rules.a", "duplicate key (first defined at line 2, column 3)" },
        { "IOVA window start above last",
          "{\"grants\": {\"g\": {\"principals\": \"user:0\",\n  \"iova-windows\": [{\"start\": \"0x2000\", \"last\": \"0x1fff\"}]}}}",
          2, 20, "grants.g.iova-windows[0]",
          "IOVA window start 0x2000 is above its last address 0x1fff" },
        { "IOVA window missing last",
          "{\"grants\": {\"g\": {\"principals\": \"user:0\", \"iova-windows\": [{\"start\": 0}]}}}", 1, 60,
          "grants.g.iova-windows[0]", "needs \"start\" and \"last\"" },
        { "bad IOVA address",
          "{\"grants\": {\"g\": {\"principals\": \"user:0\", \"iova-windows\": [{\"start\": \"0xzz\", \"last\": 1}]}}}",
          1, 70, "grants.g.iova-windows[0].start", "invalid address '0xzz'" },
        { "PASID beyond 20 bits",
          "{\"grants\": {\"g\": {\"principals\": \"user:0\",\n  \"pasids\": {\"min\": 1, \"max\": \"0x100000\"}}}}",
          2, 31, "grants.g.pasids.max", "PASID 0x100000 does not fit in 20 bits" },
        { "PASID min above max",
          "{\"grants\": {\"g\": {\"principals\": \"user:0\", \"pasids\": {\"min\": 9, \"max\": 8}}}}", 1, 53,
          "grants.g.pasids", "min 9 is above max 8" },
        { "unknown pool",
          "{\"grants\": {\"g\": {\"principals\": \"user:0\",\n    \"pools\": [\"nvme\"]}}}", 2, 15,
          "grants.g.pools[0]", "names pool 'nvme', which no policy file defines" },
        { "bad region action",
          "{\"reserved-regions\": {\"direct\": \"maybe\"}}", 1, 33, "reserved-regions.direct",
          "expected \"allow\" or \"deny\"" },
        { "key needing quotes in the path",
          "{\"rules\": {\"my rule\": {\"action\": \"allow\", \"match\": 7}}}", 1, 52,
          "rules[\"my rule\"].match", "expected a device matcher" },
        { "delegation not a boolean",
          "{\"grants\": {\"g\": {\"principals\": \"user:0\", \"delegation\": \"yes\"}}}", 1, 57,
          "grants.g.delegation", "expected true or false, got a string" },
};

static void test_parse_errors(void **state) {
        unsigned failed = 0;

        for (size_t i = 0; i < ELEMENTSOF(parse_cases); i++) {
                const ParseCase *c = &parse_cases[i];
                PolicyDiagnostics diags = {};
                Error err = ERROR_INIT;
                Policy *p = NULL;
                int r;

                r = policy_load_string(&p, "test.json", c->text, strlen(c->text), &diags, &err);
                if (r != -EINVAL || diags.n == 0 || diags.items[0].line != c->line ||
                    diags.items[0].column != c->column || !streq(diags.items[0].json_path, c->path) ||
                    !strstr(diags.items[0].message, c->message)) {
                        print_error("case '%s': r=%d\n", c->name, r);
                        policy_diagnostics_print(&diags, stderr);
                        print_error("case '%s': expected %u:%u: %s: ...%s...\n", c->name, c->line,
                                    c->column, c->path, c->message);
                        failed++;
                        policy_freep(&p);
                        policy_diagnostics_clear(&diags);
                        continue;
                }
                assert_null(p);
                assert_string_equal(diags.items[0].file, "test.json");
                assert_int_equal(err.error, -EINVAL);
                assert_non_null(strstr(err.message, "test.json:"));
                policy_diagnostics_clear(&diags);
        }
        assert_int_equal(failed, 0);
}

static void test_all_errors_are_collected(void **state) {
        static const char text[] =
                "{\n"
                "  \"limits\": { \"max-connections\": \"x\", \"bogus\": 1 },\n"
                "  \"quotas\": { \"pinned-memory\": \"4Q\" },\n"
                "  \"rules\": { \"r\": { \"action\": \"allow\", \"match\": { \"class\": \"0x03\" } } },\n"
                "  \"grants\": { \"g\": { \"principals\": \"user:no-such-user-iommud\", \"pools\": [\"missing\"] } }\n"
                "}\n";
        PolicyDiagnostics diags = {};
        _cleanup_free_ char *out = NULL;
        size_t out_len = 0;
        Policy *p = NULL;
        FILE *f;

        assert_int_equal(policy_load_string(&p, "many.json", text, strlen(text), &diags, NULL), -EINVAL);
        assert_int_equal(diags.n, 6);

        f = open_memstream(&out, &out_len);
        assert_non_null(f);
        assert_int_equal(policy_diagnostics_print(&diags, f), 0);
        fclose(f);
        assert_non_null(strstr(out, "many.json:2:39: limits.bogus: unknown key 'bogus'"));
        assert_non_null(strstr(out, "many.json:2:34: limits.max-connections: invalid count 'x'"));
        assert_non_null(strstr(out, "many.json:3:32: quotas.pinned-memory: invalid size '4Q'"));
        assert_non_null(strstr(out, "many.json:4:60: rules.r.match.class: invalid class '0x03'"));
        assert_non_null(strstr(out, "many.json:5:36: grants.g.principals: unknown user"));
        assert_non_null(strstr(out, "many.json:5:74: grants.g.pools[0]: grant 'g' names pool 'missing'"));
        policy_diagnostics_clear(&diags);
}

static void test_comments_and_empty_text(void **state) {
        static const char text[] =
                "// leading comment\n"
                "{ /* block */ \"limits\": { \"max-connections\": 7 /* trailing */ },\n"
                "  \"rules\": { \"a\": { \"action\": \"allow\", \"match\": \"0000:*//x\" } } }\n";
        _cleanup_(policy_freep) Policy *p = NULL, *empty = NULL;

        assert_int_equal(policy_load_string(&p, "c.json", text, strlen(text), NULL, NULL), 0);
        assert_int_equal(policy_limits(p)->max_connections, 7);

        /* An empty file is no policy at all: the built-in defaults. */
        assert_int_equal(policy_load_string(&empty, "e.json", " \n", 2, NULL, NULL), 0);
        assert_int_equal(policy_limits(empty)->max_connections, 4096);
        assert_true(policy_generation(empty) > policy_generation(p));
}

static void test_builtin_limits(void **state) {
        _cleanup_(policy_freep) Policy *p = NULL;
        const PolicyLimits *l;

        assert_int_equal(policy_load_string(&p, "x.json", "{}", 2, NULL, NULL), 0);
        l = policy_limits(p);
        assert_int_equal(l->max_message_bytes, 1024 * 1024);
        assert_int_equal(l->max_fds_per_message, 16);
        assert_int_equal(l->max_queued_output_bytes, 4 * 1024 * 1024);
        assert_int_equal(l->max_connections, 4096);
        assert_int_equal(l->max_connections_per_uid, 64);
        assert_int_equal(l->socket_mode, 0666);
        assert_int_equal(l->fault_response_timeout_ms, 5000);
        assert_int_equal(l->session_reclaim_grace_ms, 30000);
        assert_int_equal(l->device_release_timeout_ms, 10000);
        assert_int_equal(l->reserved_connections, 8);
        assert_int_equal(l->idle_timeout_ms, 600000);
}

/* max-connections-per-user caps every grant's connections: one number per uid, not two. */
static void test_connections_capped_per_user(void **state) {
        static const char text[] =
                "{ \"limits\": { \"max-connections-per-user\": 5, \"idle-timeout-ms\": 250,"
                "              \"reserved-connections\": 2 },"
                "  \"grants\": {"
                "    \"many\": { \"principals\": \"user:1000\", \"quotas\": { \"connections\": 100 } },"
                "    \"few\": { \"principals\": \"user:1001\", \"quotas\": { \"connections\": 3 } }"
                "  } }";
        _cleanup_(policy_freep) Policy *p = NULL;
        Principal many = { .uid = 1000, .gid = 1000 }, few = { .uid = 1001, .gid = 1001 };
        Principal nobody = { .uid = 65534, .gid = 65534 };
        PolicyQuotas q;

        assert_int_equal(policy_load_string(&p, "c.json", text, strlen(text), NULL, NULL), 0);
        assert_int_equal(policy_limits(p)->idle_timeout_ms, 250);
        assert_int_equal(policy_limits(p)->reserved_connections, 2);
        policy_quotas(p, &many, &q);
        assert_int_equal(q.connections, 5);
        policy_quotas(p, &few, &q);
        assert_int_equal(q.connections, 3);
        policy_quotas(p, &nobody, &q);
        assert_int_equal(q.connections, 5);
        policy_quotas(p, NULL, &q);
        assert_int_equal(q.connections, 5);
}

static void test_values(void **state) {
        static const char text[] =
                "{ \"limits\": { \"max-message-size\": \"64KiB\", \"max-queued-output\": 1000,"
                "              \"socket-mode\": \"0660\", \"max-connections-per-user\": \"unlimited\" },"
                "  \"quotas\": { \"devices\": 3 },"
                "  \"grants\": {"
                "    \"a\": { \"principals\": [\"user:1000\", {\"group\": 0}],"
                "             \"quotas\": { \"pinned-memory\": \"2G\", \"mappings\": 5 },"
                "             \"pasids\": { \"min\": 16, \"max\": 31 }, \"delegation\": true },"
                "    \"b\": { \"principals\": \"user:root\","
                "             \"quotas\": { \"pinned-memory\": \"1T\" },"
                "             \"iova-windows\": [ { \"start\": \"0x100000\", \"last\": 4294967295 } ] }"
                "  } }";
        _cleanup_(policy_freep) Policy *p = NULL;
        Principal u1000 = { .uid = 1000, .gid = 1000 }, root = { .uid = 0, .gid = 0 };
        Principal nobody = { .uid = 65534, .gid = 65534 };
        const IovaWindow *w;
        PolicyQuotas q;
        uint32_t lo, hi;
        size_t n;

        assert_int_equal(policy_load_string(&p, "v.json", text, strlen(text), NULL, NULL), 0);
        assert_int_equal(policy_limits(p)->max_message_bytes, 65536);
        assert_int_equal(policy_limits(p)->max_queued_output_bytes, 1000);
        assert_int_equal(policy_limits(p)->socket_mode, 0660);
        assert_true(policy_limits(p)->max_connections_per_uid == UINT64_MAX);

        policy_quotas(p, &u1000, &q);
        assert_true(q.pinned_bytes == UINT64_C(2) << 30);
        assert_int_equal(q.mappings, 5);
        assert_int_equal(q.devices, 3);        /* the file's default */
        assert_int_equal(q.address_spaces, 16); /* the built-in default */

        /* root is named by both grants: the larger value of each quota. */
        policy_quotas(p, &root, &q);
        assert_true(q.pinned_bytes == UINT64_C(1) << 40);
        assert_int_equal(q.mappings, 65536);

        policy_quotas(p, &nobody, &q);
        assert_int_equal(q.pinned_bytes, 0);
        assert_int_equal(q.devices, 0);
        assert_int_equal(q.connections, 16);

        policy_pasid_range(p, &u1000, &lo, &hi);
        assert_int_equal(lo, 16);
        assert_int_equal(hi, 31);
        policy_pasid_range(p, &root, &lo, &hi);
        assert_int_equal(lo, 1);
        assert_int_equal(hi, 0xfffff);
        policy_pasid_range(p, &nobody, &lo, &hi);
        assert_true(lo > hi);

        assert_true(policy_allows_delegation(p, &u1000));
        assert_true(policy_allows_delegation(p, &root));
        assert_false(policy_allows_delegation(p, &nobody));

        /* root: grant 'a' comes first and has no windows. */
        assert_int_equal(policy_iova_windows(p, &root, NULL, &w, &n), 0);
        assert_int_equal(n, 0);
        assert_int_equal(policy_iova_windows(p, &nobody, NULL, &w, &n), -EPERM);
}

/* ---- loading from directories --------------------------------------------------------- */

typedef struct TempTree {
        char root[64];
        char vendor[96], admin[96], file[96];
} TempTree;

static void write_file(const char *dir, const char *name, const char *text) {
        char path[256];
        FILE *f;

        snprintf(path, sizeof(path), "%s%s%s", dir, name ? "/" : "", name ?: "");
        f = fopen(path, "we");
        assert_non_null(f);
        fputs(text, f);
        assert_int_equal(fclose(f), 0);
}

static void temp_tree_make(TempTree *t) {
        strcpy(t->root, "/tmp/iommud-policy-XXXXXX");
        assert_non_null(mkdtemp(t->root));
        snprintf(t->vendor, sizeof(t->vendor), "%s/vendor", t->root);
        snprintf(t->admin, sizeof(t->admin), "%s/admin", t->root);
        snprintf(t->file, sizeof(t->file), "%s/policy.json", t->root);
        assert_int_equal(mkdir(t->vendor, 0755), 0);
        assert_int_equal(mkdir(t->admin, 0755), 0);
}

static void temp_tree_remove(TempTree *t) {
        char cmd[128];

        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", t->root);
        assert_int_equal(system(cmd), 0);
}

static const char *match_reason(const Policy *p, const char *bdf) {
        static char buf[512];
        TopoDevice d = { .name = (char *)bdf, .is_pci = true, .vendor = 0x8086, .device = 0x10fb,
                         .class = 0x020000 };
        PolicyDecision dec;

        assert_int_equal(policy_decide(p, NULL, &d, NULL, NULL, &dec), 0);
        snprintf(buf, sizeof(buf), "%s: %s",
                 policy_verdict_to_string(dec.steps[POLICY_STEP_MATCH].verdict),
                 dec.steps[POLICY_STEP_MATCH].reason);
        policy_decision_clear(&dec);
        return buf;
}

static void test_merge_order(void **state) {
        TempTree t;
        PolicyPaths paths;
        _cleanup_(policy_freep) Policy *p = NULL;
        PolicyDiagnostics diags = {};
        Principal alice = { .uid = 1234, .gid = 1234 };
        PolicyQuotas q;

        temp_tree_make(&t);
        paths = (PolicyPaths){ .vendor_dir = t.vendor, .admin_dir = t.admin, .file = t.file };

        write_file(t.vendor, "10-base.json",
                   "{ \"limits\": { \"max-connections\": 10, \"max-fds-per-message\": 4 },\n"
                   "  \"rules\": { \"all\": { \"action\": \"allow\", \"match\": \"*\" },\n"
                   "             \"old\": { \"action\": \"deny\", \"match\": \"0000:02:*\" } },\n"
                   "  \"grants\": { \"alice\": { \"principals\": \"user:1234\", \"devices\": \"*\",\n"
                   "                            \"quotas\": { \"devices\": 1 } } } }\n");
        /* Lexically later in the same directory: overrides a scalar, leaves the other. */
        write_file(t.vendor, "20-more.json", "{ \"limits\": { \"max-connections\": 20 } }\n");
        /* Masked by the admin file of the same name: never read (it is invalid). */
        write_file(t.vendor, "30-masked.json", "{ \"this is\": \"not valid policy\" }\n");
        write_file(t.admin, "30-masked.json", "");
        /* Not *.json: ignored. */
        write_file(t.vendor, "40-ignored.conf", "garbage");
        /* The admin directory replaces a rule by name and removes another with null. */
        write_file(t.admin, "10-admin.json",
                   "{ \"rules\": { \"all\": { \"action\": \"allow\", \"match\": \"0000:01:*\" },\n"
                   "              \"old\": null } }\n");
        /* The single file comes last. */
        write_file(t.file, NULL,
                   "{ \"limits\": { \"max-connections\": 30 },\n"
                   "  \"grants\": { \"alice\": { \"principals\": \"user:1234\", \"devices\": \"*\",\n"
                   "                          \"quotas\": { \"mappings\": 9 } } } }\n");

        assert_int_equal(policy_load(&p, &paths, &diags, NULL), 0);
        assert_int_equal(diags.n, 0);
        assert_int_equal(policy_limits(p)->max_connections, 30);
        assert_int_equal(policy_limits(p)->max_fds_per_message, 4);
        assert_string_equal(match_reason(p, "0000:01:00.0"), "pass: allowed by rule 'all' (bdf 0000:01:*)");
        assert_string_equal(match_reason(p, "0000:02:00.0"),
                            "fail: no allow rule matches 0000:02:00.0 (id 8086:10fb, class 0x020000)");

        /* The grant was replaced whole: its device quota is the default again. */
        policy_quotas(p, &alice, &q);
        assert_int_equal(q.devices, 8);
        assert_int_equal(q.mappings, 9);

        temp_tree_remove(&t);
}

static void test_load_errors_name_files(void **state) {
        TempTree t;
        PolicyPaths paths;
        Policy *p = NULL;
        PolicyDiagnostics diags = {};
        Error err = ERROR_INIT;
        char expect[256];

        temp_tree_make(&t);
        paths = (PolicyPaths){ .vendor_dir = t.vendor, .admin_dir = t.admin, .file = t.file };
        write_file(t.vendor, "50-a.json", "{ \"pools\": { \"p\": { \"devices\": \"*\" } } }\n");
        write_file(t.admin, "50-b.json", "{\n  \"quotas\": { \"devices\": \"many\" } }\n");
        /* The pool is removed later, so the reference in the admin file dangles. */
        write_file(t.admin, "60-c.json",
                   "{ \"grants\": { \"g\": { \"principals\": \"user:0\",\n   \"pools\": [ \"p\" ] } } }\n");
        write_file(t.file, NULL, "{ \"pools\": { \"p\": null } }\n");

        assert_int_equal(policy_load(&p, &paths, &diags, &err), -EINVAL);
        assert_null(p);
        assert_int_equal(diags.n, 2);
        snprintf(expect, sizeof(expect), "%s/50-b.json", t.admin);
        assert_string_equal(diags.items[0].file, expect);
        assert_int_equal(diags.items[0].line, 2);
        assert_int_equal(diags.items[0].column, 26);
        assert_string_equal(diags.items[0].json_path, "quotas.devices");
        snprintf(expect, sizeof(expect), "%s/60-c.json", t.admin);
        assert_string_equal(diags.items[1].file, expect);
        assert_int_equal(diags.items[1].line, 2);
        assert_int_equal(diags.items[1].column, 15);
        assert_string_equal(diags.items[1].json_path, "grants.g.pools[0]");
        assert_non_null(strstr(err.message, "(and 1 more problem)"));
        policy_diagnostics_clear(&diags);

        temp_tree_remove(&t);
}

static void test_missing_paths_give_defaults(void **state) {
        PolicyPaths paths = {
                .vendor_dir = "/nonexistent/iommud/vendor",
                .admin_dir = "/nonexistent/iommud/admin",
                .file = "/nonexistent/iommud/policy.json",
        };
        _cleanup_(policy_freep) Policy *p = NULL;

        assert_int_equal(policy_load(&p, &paths, NULL, NULL), 0);
        assert_int_equal(policy_limits(p)->max_connections, 4096);
        assert_string_equal(match_reason(p, "0000:01:00.0"),
                            "fail: no allow rule matches 0000:01:00.0 (id 8086:10fb, class 0x020000)");
}

static void test_shipped_default_policy(void **state) {
        PolicyPaths paths = { .vendor_dir = "", .admin_dir = "", .file = DEFAULT_POLICY };
        _cleanup_(policy_freep) Policy *p = NULL;
        PolicyDiagnostics diags = {};
        Principal root = { .uid = 0, .gid = 0 }, user = { .uid = 1000, .gid = 1000 };
        PolicyQuotas q;

        assert_int_equal(policy_load(&p, &paths, &diags, NULL), 0);
        policy_diagnostics_print(&diags, stderr);
        assert_int_equal(diags.n, 0);
        assert_string_equal(match_reason(p, "0000:01:00.0"), "pass: allowed by rule 'all-devices' (bdf *)");
        policy_quotas(p, &root, &q);
        assert_true(q.pinned_bytes == UINT64_MAX);
        assert_int_equal(q.fault_queue_depth, 256);
        assert_true(policy_allows_delegation(p, &root));
        assert_false(policy_allows_delegation(p, &user));
        policy_quotas(p, &user, &q);
        assert_int_equal(q.devices, 0);
}

/* The drop-in example of iommud.policy(5), over the shipped file. */
static void test_admin_dropin_over_shipped_policy(void **state) {
        TempTree t;
        PolicyPaths paths;
        _cleanup_(policy_freep) Policy *p = NULL;
        PolicyDiagnostics diags = {};
        char cmd[512];

        temp_tree_make(&t);
        snprintf(cmd, sizeof(cmd), "cp '%s' '%s/50-default.json'", DEFAULT_POLICY, t.vendor);
        assert_int_equal(system(cmd), 0);
        write_file(t.admin, "90-local.json",
                   "{\n"
                   "\t\"rules\": { \"all-devices\": null },\n"
                   "\t\"reserved-regions\": {\n"
                   "\t\t\"exceptions\": {\n"
                   "\t\t\t\"strict-gpus\": { \"match\": { \"class\": \"0x03xxxx\" }, \"direct-relaxable\": \"deny\" }\n"
                   "\t\t}\n"
                   "\t},\n"
                   "\t\"limits\": { \"max-connections-per-user\": 128 }\n"
                   "}\n");
        paths = (PolicyPaths){ .vendor_dir = t.vendor, .admin_dir = t.admin, .file = t.file };
        assert_int_equal(policy_load(&p, &paths, &diags, NULL), 0);
        assert_int_equal(diags.n, 0);
        assert_int_equal(policy_limits(p)->max_connections_per_uid, 128);
        assert_int_equal(policy_limits(p)->max_connections, 4096);
        assert_string_equal(match_reason(p, "0000:01:00.0"),
                            "fail: no allow rule matches 0000:01:00.0 (id 8086:10fb, class 0x020000)");
        temp_tree_remove(&t);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_parse_errors),
                cmocka_unit_test(test_all_errors_are_collected),
                cmocka_unit_test(test_comments_and_empty_text),
                cmocka_unit_test(test_builtin_limits),
                cmocka_unit_test(test_connections_capped_per_user),
                cmocka_unit_test(test_values),
                cmocka_unit_test(test_merge_order),
                cmocka_unit_test(test_load_errors_name_files),
                cmocka_unit_test(test_missing_paths_give_defaults),
                cmocka_unit_test(test_shipped_default_policy),
                cmocka_unit_test(test_admin_dropin_over_shipped_policy),
        };

        return cmocka_run_group_tests_name("policy-parse", tests, NULL, NULL);
}
