/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Runtime claims on the real iommud binary (simulated workstation, fd store played by the
 * harness): PrepareClaim holds a device for a principal and writes its CDI spec, a retry
 * changes nothing, sessions and other claims get DeviceBusy naming the claim, refusals name
 * what is wrong, the claim survives a restart with its spec, and UnprepareClaim releases the
 * device and removes the spec.
 */

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "fdstore-harness.h"
#include "itest.h"
#include "macros.h"

#define DEV "0000:01:00.0"     /* eligible, cdev vfio0 */
#define REFUSED "0000:03:00.0" /* its group has a member on a host driver */
#define CLAIM "pod-4f1c.gpu-0"

static json_object *prepare_params(const char *id, const char *device, uid_t uid) {
        json_object *devs = json_object_new_array();

        json_object_array_add(devs, json_object_new_string(device));
        return itest_params("claimId", json_object_new_string(id), "devices", devs, "uid",
                            json_object_new_int64(uid), NULL);
}

/* PrepareClaim that must succeed; its "prepared". */
static bool prepare(ItestClient *c, const char *id, const char *device) {
        json_object *r = ok_call(c, "org.iommud.Manager.PrepareClaim",
                                 prepare_params(id, device, getuid()), NULL, 0), *claim;
        bool prepared;

        assert_true(json_object_object_get_ex(itest_reply_params(r), "claim", &claim));
        assert_string_equal(itest_get_string(claim, "claimId"), id);
        assert_string_equal(itest_get_string(claim, "cdiDevice"), "iommud.org/claim=pod-4f1c.gpu-0");
        assert_string_equal(itest_get_string(claim, "mode"), "iommufd");
        prepared = json_object_get_boolean(json_object_object_get(itest_reply_params(r),
                                                                  "prepared"));
        json_object_put(r);
        return prepared;
}

/* The error of a PrepareClaim expected to fail, and its member key ("" when absent). */
static void refused(ItestClient *c, json_object *params, const char *error, const char *key,
                    const char *want) {
        json_object *r = NULL;
        const char *name = call_error(c, "org.iommud.Manager.PrepareClaim", params, &r);

        assert_non_null(name);
        assert_string_equal(name, error);
        if (key) {
                const char *got = itest_get_string(itest_reply_params(r), key);

                if (!strstr(got, want))
                        fail_msg("%s: %s is '%s', not containing '%s'", error, key, got, want);
        }
        json_object_put(r);
}

static void spec_path(Harness *h, char *buf, size_t size) {
        snprintf(buf, size, "%s/cdi/iommud-claim-" CLAIM ".json", h->d.dir);
}

/* The spec is there, 0644, of kind iommud.org/claim with the device's cdev and /dev/iommu. */
static void check_spec(Harness *h) {
        json_object *spec, *devs, *dev, *edits, *nodes, *env, *common;
        char path[512];
        struct stat st;

        spec_path(h, path, sizeof(path));
        assert_int_equal(stat(path, &st), 0);
        assert_int_equal(st.st_mode & 07777, 0644);
        spec = json_object_from_file(path);
        assert_non_null(spec);
        assert_string_equal(itest_get_string(spec, "cdiVersion"), "0.5.0");
        assert_string_equal(itest_get_string(spec, "kind"), "iommud.org/claim");
        assert_true(json_object_object_get_ex(spec, "devices", &devs));
        assert_int_equal(json_object_array_length(devs), 1);
        dev = json_object_array_get_idx(devs, 0);
        assert_string_equal(itest_get_string(dev, "name"), CLAIM);
        assert_true(json_object_object_get_ex(dev, "containerEdits", &edits));
        assert_true(json_object_object_get_ex(edits, "deviceNodes", &nodes));
        assert_int_equal(json_object_array_length(nodes), 1);
        assert_string_equal(itest_get_string(json_object_array_get_idx(nodes, 0), "path"),
                            "/dev/vfio/devices/vfio0");
        assert_true(json_object_object_get_ex(edits, "env", &env));
        assert_string_equal(json_object_get_string(json_object_array_get_idx(env, 0)),
                            "IOMMUD_DEVICE_0000_01_00_0=" DEV);
        assert_true(json_object_object_get_ex(spec, "containerEdits", &common));
        assert_true(json_object_object_get_ex(common, "deviceNodes", &nodes));
        assert_string_equal(itest_get_string(json_object_array_get_idx(nodes, 0), "path"),
                            "/dev/iommu");
        json_object_put(spec);
}

/* A session's AttachDevice of DEV is DeviceBusy naming the claim. */
static void busy_to_session(Harness *h) {
        ItestClient *s = connect_client(h);
        json_object *r = NULL;
        const char *name = call_error(s, "org.iommud.Broker.AttachDevice",
                                      itest_params("device", json_object_new_string(DEV), NULL),
                                      &r);

        assert_non_null(name);
        assert_string_equal(name, "org.iommud.Broker.DeviceBusy");
        assert_non_null(strstr(itest_get_string(itest_reply_params(r), "heldBy"),
                               "claim " CLAIM " (uid "));
        json_object_put(r);
        itest_client_free(s);
}

static size_t n_claims(ItestClient *c) {
        json_object *r = ok_call(c, "org.iommud.Manager.ListClaims", NULL, NULL, 0), *a;
        size_t n;

        assert_true(json_object_object_get_ex(itest_reply_params(r), "claims", &a));
        n = json_object_array_length(a);
        json_object_put(r);
        return n;
}

static bool unprepare(ItestClient *c) {
        json_object *r = ok_call(c, "org.iommud.Manager.UnprepareClaim",
                                 itest_params("claimId", json_object_new_string(CLAIM), NULL),
                                 NULL, 0);
        bool released = json_object_get_boolean(json_object_object_get(itest_reply_params(r),
                                                                       "released"));

        json_object_put(r);
        return released;
}

/* The daemon with a grant of delegation to the caller, and CLAIM prepared for it on DEV. */
static ItestClient *start_with_claim(Harness *h) {
        ItestClient *c;

        harness_start(h, "\"open-on-behalf\": true, \"delegation\": true");
        c = connect_client(h);
        assert_true(prepare(c, CLAIM, DEV));
        return c;
}

static void test_claim_prepare_refuse_unprepare(void **state) {
        char path[512];
        ItestClient *c;
        Harness h;

        (void)state;
        c = start_with_claim(&h);
        check_spec(&h);
        /* The retry of a DRA driver: the same answer, nothing new. */
        assert_false(prepare(c, CLAIM, "01:00.0"));
        assert_int_equal(n_claims(c), 1);
        busy_to_session(&h);

        refused(c, prepare_params("pod-other", DEV, getuid()), "org.iommud.Manager.DeviceBusy",
                "heldBy", "claim " CLAIM);
        refused(c, prepare_params(CLAIM, "0000:00:02.0", getuid()),
                "org.iommud.Manager.ClaimConflict", "reason", "other devices");
        refused(c, prepare_params("-pod", DEV, getuid()), "org.iommud.Manager.InvalidClaimId",
                "claimId", "-pod");
        refused(c, prepare_params("pod-x", REFUSED, getuid()), "org.iommud.Manager.PolicyDenied",
                "step", "group");
        refused(c, prepare_params("pod-x", "0000:7f:00.0", getuid()),
                "org.iommud.Manager.NoSuchDevice", "device", "0000:7f:00.0");
        assert_int_equal(n_claims(c), 1);

        assert_true(unprepare(c));
        spec_path(&h, path, sizeof(path));
        assert_int_equal(access(path, F_OK), -1);
        assert_int_equal(errno, ENOENT);
        assert_false(unprepare(c));
        assert_int_equal(n_claims(c), 0);
        /* nobody's account, which the policy grants nothing (unless the test runs as it). */
        if (getuid() != 65534)
                refused(c, prepare_params(CLAIM, DEV, 65534), "org.iommud.Manager.PolicyDenied",
                        "step", "principal");
        /* Free again for a session. */
        attach_by_name(c, DEV);

        itest_client_free(c);
        harness_stop(&h);
}

/* Ends the daemon (orderly, or killed as in a crash) and starts it again from the store. */
static ItestClient *restart(Harness *h, ItestClient *c, bool orderly) {
        itest_client_free(c);
        if (orderly)
                harness_term(h);
        else
                harness_kill(h);
        assert_int_equal(harness_launch(h), 0);
        return connect_client(h);
}

static void test_claim_survives_restart(void **state) {
        char path[512];
        ItestClient *c;
        Harness h;

        (void)state;
        c = start_with_claim(&h);
        c = restart(&h, c, false);
        assert_int_equal(n_claims(c), 1);
        check_spec(&h);
        busy_to_session(&h);
        assert_false(prepare(c, CLAIM, DEV));
        /* systemctl restart: the orderly exit leaves the spec and the next daemon the claim. */
        c = restart(&h, c, true);
        assert_int_equal(n_claims(c), 1);
        check_spec(&h);
        busy_to_session(&h);

        /* Released, it stays released across the next restart. */
        assert_true(unprepare(c));
        c = restart(&h, c, false);
        assert_int_equal(n_claims(c), 0);
        spec_path(&h, path, sizeof(path));
        assert_int_equal(access(path, F_OK), -1);
        attach_by_name(c, DEV);

        itest_client_free(c);
        harness_stop(&h);
}

/* A reload that withdraws the grant's delegation takes the device from the claim. */
static void test_claim_follows_policy(void **state) {
        _cleanup_free_ char *policy = itest_policy_for_self("\"open-on-behalf\": true");
        char path[512];
        ItestClient *c;
        Harness h;

        (void)state;
        c = start_with_claim(&h);
        assert_non_null(policy);
        assert_int_equal(itest_write_file(h.d.policy, policy), 0);
        json_object_put(ok_call(c, "org.iommud.Manager.ReloadPolicy", NULL, NULL, 0));
        assert_int_equal(n_claims(c), 0);
        spec_path(&h, path, sizeof(path));
        assert_int_equal(access(path, F_OK), -1);
        refused(c, prepare_params(CLAIM, DEV, getuid()), "org.iommud.Manager.PolicyDenied",
                "step", "delegation");
        attach_by_name(c, DEV);

        itest_client_free(c);
        harness_stop(&h);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_claim_follows_policy),
                cmocka_unit_test(test_claim_prepare_refuse_unprepare),
                cmocka_unit_test(test_claim_survives_restart),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
