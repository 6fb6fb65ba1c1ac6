/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * The session core's errors carry the parameters org.iommud.Broker declares, with the values
 * that went wrong: the kernel's EADDRINUSE at an attach or an AllowIOVAs is IOVAInUse with the
 * reserved range that collided, its EINVAL at an operation without a range never becomes an
 * InvalidRange {0, 0}, and a device of a group whose other device sits in another address space
 * hears which one.  On the simulated "server" host, where every group reserves the x86 MSI
 * window 0xfee00000-0xfeefffff.
 */

#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "policy.h"
#include "session.h"
#include "sim-host.h"
#include "topology.h"

#define MSI_START UINT64_C(0xfee00000)
#define MSI_LENGTH UINT64_C(0x100000)
#define GROUP_A "0000:41:00.0" /* group 2, with 0000:41:00.1 */
#define GROUP_B "0000:41:00.1"
#define ALONE "0000:c1:00.5"

typedef struct Env {
        char root[64];
        SessionHost host;
        Session *s;
} Env;

static const char policy_text[] =
        "{ \"rules\": { \"all\": { \"action\": \"allow\", \"match\": \"*\" } },\n"
        "  \"grants\": { \"vm\": { \"principals\": [ { \"user\": 1000 } ], \"devices\": \"*\" } } }\n";

static int setup(void **state) {
        Env *e = calloc(1, sizeof(*e));

        assert_non_null(e);
        sim_host_setup(&e->host, e->root, sizeof(e->root), "server", policy_text);
        e->s = sim_host_session(&e->host, 1000, 0);
        *state = e;
        return 0;
}

static int teardown(void **state) {
        Env *e = *state;

        session_free(e->s);
        sim_host_teardown(&e->host, e->root);
        free(e);
        return 0;
}

static uint32_t attach(Env *e, const char *name) {
        int fd = sim_host_open_device(&e->host, e->root, name);
        SessionDeviceInfo info;

        assert_int_equal(session_attach_device_fd(e->s, fd, &info, NULL), 0);
        close(fd);
        return info.device_id;
}

static void assert_range_params(const BrokerError *err, const char *name, uint64_t start,
                                uint64_t length) {
        assert_string_equal(err->error.name, name);
        assert_non_null(broker_error_get(err, "start"));
        assert_non_null(broker_error_get(err, "length"));
        assert_int_equal(broker_error_get(err, "start")->u64, start);
        assert_int_equal(broker_error_get(err, "length")->u64, length);
}

/* The client's allowed IOVAs cover the MSI window, then a device comes: which range collides. */
static void test_attach_into_allowed_msi(void **state) {
        Env *e = *state;
        BrokerError err = BROKER_ERROR_INIT;
        IovaRange all = { .start = 0x100000, .last = 0xffffffff };
        uint32_t ioas, hwpt, dev = attach(e, ALONE);

        assert_int_equal(session_create_address_space(e->s, &ioas, NULL), 0);
        assert_int_equal(session_allow_iovas(e->s, ioas, &all, 1, NULL), 0);
        assert_int_equal(session_attach_to_address_space(e->s, dev, ioas, &hwpt, &err),
                         -EADDRINUSE);
        assert_range_params(&err, BROKER_ERROR_IOVA_IN_USE, MSI_START, MSI_LENGTH);
        assert_non_null(strstr(err.error.message, "0xfee00000-0xfeefffff"));
        assert_non_null(strstr(err.error.message, ALONE));

        /* With the window left out, the same attach works. */
        IovaRange split[] = { { 0x100000, MSI_START - 1 }, { MSI_START + MSI_LENGTH, 0xffffffff } };
        assert_int_equal(session_allow_iovas(e->s, ioas, split, 2, NULL), 0);
        assert_int_equal(session_attach_to_address_space(e->s, dev, ioas, &hwpt, NULL), 0);
}

/* A device is attached, then the client allows a range over its group's MSI window. */
static void test_allow_over_reserved(void **state) {
        Env *e = *state;
        BrokerError err = BROKER_ERROR_INIT;
        IovaRange over = { .start = 0xfe000000, .last = 0xfeefffff };
        IovaRange twice[] = { { 0x100000, 0x1fffff }, { 0x180000, 0x2fffff } };
        uint32_t ioas, hwpt, dev = attach(e, ALONE);

        assert_int_equal(session_create_address_space(e->s, &ioas, NULL), 0);
        assert_int_equal(session_attach_to_address_space(e->s, dev, ioas, &hwpt, NULL), 0);
        assert_int_equal(session_allow_iovas(e->s, ioas, &over, 1, &err), -EADDRINUSE);
        assert_range_params(&err, BROKER_ERROR_IOVA_IN_USE, MSI_START, MSI_LENGTH);

        /* Ranges the kernel refuses as overlapping each other: the second one is named. */
        assert_int_equal(session_allow_iovas(e->s, ioas, twice, 2, &err), -ERANGE);
        assert_range_params(&err, BROKER_ERROR_INVALID_RANGE, 0x180000, 0x180000);
        assert_non_null(broker_error_get(&err, "reason"));
}

/* Two devices of one group, in different address spaces: the kernel's EINVAL, made precise. */
static void test_group_split(void **state) {
        Env *e = *state;
        BrokerError err = BROKER_ERROR_INIT;
        uint32_t a = attach(e, GROUP_A), b = attach(e, GROUP_B), io1, io2, hwpt;

        assert_int_equal(session_create_address_space(e->s, &io1, NULL), 0);
        assert_int_equal(session_create_address_space(e->s, &io2, NULL), 0);
        assert_int_equal(session_attach_to_address_space(e->s, a, io1, &hwpt, NULL), 0);
        assert_int_equal(session_attach_to_address_space(e->s, b, io2, &hwpt, &err), -EBUSY);
        assert_string_equal(err.error.name, BROKER_ERROR_OBJECT_IN_USE);
        assert_string_equal(broker_error_get(&err, "kind")->str, "device");
        assert_int_equal(broker_error_get(&err, "id")->u64, a);
        assert_non_null(strstr(broker_error_get(&err, "reason")->str, "IOMMU group 2"));
        /* No range was involved: no range is named. */
        assert_null(broker_error_get(&err, "start"));
        /* Where its sibling is, it joins. */
        assert_int_equal(session_attach_to_address_space(e->s, b, io1, &hwpt, NULL), 0);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_attach_into_allowed_msi, setup, teardown),
                cmocka_unit_test_setup_teardown(test_allow_over_reserved, setup, teardown),
                cmocka_unit_test_setup_teardown(test_group_split, setup, teardown),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
