/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * policy_check_host() over the bundled simulated hosts read back from sysfs: an IOVA window
 * that overlaps a reserved region the kernel keeps out of every address space of a device the
 * grant gives (or, on x86, the MSI window every group reserves) is refused at its
 * file:line:column, since no device could ever be attached under it; direct-relaxable regions
 * and windows around the regions pass.
 */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "policy.h"
#include "topology.h"

static Topology *load_host(const char *name) {
        Topology *t = NULL;
        char sys[512];

        snprintf(sys, sizeof(sys), "%s/sim-sysfs-%s/sys", IOMMUD_SIM_SYSFS, name);
        assert_int_equal(topology_load_path(&t, sys, NULL), 0);
        return t;
}

/* A grant of devices to root with the windows given (JSON array text) on line 4. */
static Policy *load_policy(const char *devices, const char *windows) {
        char text[1024];
        Policy *p = NULL;

        snprintf(text, sizeof(text),
                 "{ \"rules\": { \"all\": { \"action\": \"allow\", \"match\": \"*\" } },\n"
                 "  \"grants\": {\n"
                 "    \"vms\": { \"principals\": \"user:0\", \"devices\": \"%s\",\n"
                 "      \"iova-windows\": %s } } }\n",
                 devices, windows);
        assert_int_equal(policy_load_string(&p, "vms.json", text, strlen(text), NULL, NULL), 0);
        return p;
}

/* The first diagnostic of checking windows against host, or "" when the policy fits. */
static int check(const char *host, const char *devices, const char *windows,
                 PolicyDiagnostics *ret) {
        Topology *t = load_host(host);
        Policy *p = load_policy(devices, windows);
        int r;

        *ret = (PolicyDiagnostics){};
        r = policy_check_host(p, t, ret);
        policy_free(p);
        topology_free(t);
        return r;
}

static void test_x86_msi_window(void **state) {
        PolicyDiagnostics d;

        /* The window of the shipped example: 0 to 1T covers the MSI window of every group. */
        assert_int_equal(
                check("workstation", "*", "[ { \"start\": 0, \"last\": \"0xffffffffff\" } ]", &d),
                -EINVAL);
        assert_int_equal(d.n, 1);
        assert_string_equal(d.items[0].file, "vms.json");
        assert_int_equal(d.items[0].line, 4);
        assert_int_equal(d.items[0].column, 25);
        assert_string_equal(d.items[0].json_path, "grants.vms.iova-windows[0]");
        assert_non_null(strstr(d.items[0].message,
                               "overlaps the msi region 0xfee00000-0xfeefffff"));
        assert_non_null(strstr(d.items[0].message,
                               "ending at 0xfedfffff and starting at 0xfef00000"));
        policy_diagnostics_clear(&d);

        /* On x86 whatever the grant gives: no device of this host matches, the window is bad. */
        assert_int_equal(check("server", "0000:ff:*",
                               "[ { \"start\": \"0xfeef0000\", \"last\": \"0xfeefffff\" } ]", &d),
                         -EINVAL);
        assert_non_null(strstr(d.items[0].message, "every IOMMU group of an x86 host reserves"));
        policy_diagnostics_clear(&d);

        /* Around it: fine. */
        assert_int_equal(check("workstation", "*",
                               "[ { \"start\": \"0x100000\", \"last\": \"0xfedfffff\" },\n"
                               "  { \"start\": \"0xfef00000\", \"last\": \"0xffffffffff\" } ]",
                               &d),
                         0);
        assert_int_equal(d.n, 0);
}

static void test_group_regions(void **state) {
        PolicyDiagnostics d;

        /* AMD's HyperTransport range, reserved in the server's groups, only the second window. */
        assert_int_equal(check("server", "0000:c1:00.5",
                               "[ { \"start\": \"0x100000\", \"last\": \"0xfedfffff\" },\n"
                               "  { \"start\": \"0xfc00000000\", \"last\": \"0xfdffffffff\" } ]",
                               &d),
                         -EINVAL);
        assert_int_equal(d.n, 1);
        assert_string_equal(d.items[0].json_path, "grants.vms.iova-windows[1]");
        assert_non_null(strstr(d.items[0].message, "reserved region 0xfd00000000-0xffffffffff of "
                                                   "IOMMU group 24 (0000:c1:00.5"));
        policy_diagnostics_clear(&d);

        /* The arm host's software MSI window, for a device the grant gives. */
        assert_int_equal(check("arm", "*", "[ { \"start\": 0, \"last\": \"0xffffffff\" } ]", &d),
                         -EINVAL);
        assert_non_null(strstr(d.items[0].message,
                               "msi region 0x8000000-0x80fffff of IOMMU group"));
        policy_diagnostics_clear(&d);
        /* No x86 IOMMU there: the range of x86's MSI window is an address like any other. */
        assert_int_equal(check("arm", "*",
                               "[ { \"start\": \"0x10000000\", \"last\": \"0xffffffff\" } ]", &d),
                         0);
}

/*
 * direct-relaxable regions stay out of what the kernel reserves, and a device the policy refuses
 * for its direct region is never attached: windows over either pass.
 */
static void test_regions_that_do_not_count(void **state) {
        PolicyDiagnostics d;

        assert_int_equal(check("workstation", "*",
                               "[ { \"start\": \"0x6e000000\", \"last\": \"0x7fffffff\" } ]", &d),
                         0);
        assert_int_equal(d.n, 0);
        /* 0000:21:00.0 of the server reserves 0xa9800000-0xa98fffff direct: refused anyway. */
        assert_int_equal(check("server", "0000:21:00.0",
                               "[ { \"start\": \"0xa0000000\", \"last\": \"0xafffffff\" } ]", &d),
                         0);
        assert_int_equal(d.n, 0);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_x86_msi_window),
                cmocka_unit_test(test_group_regions),
                cmocka_unit_test(test_regions_that_do_not_count),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
