/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "error.h"
#include "log.h"
#include "macros.h"

static void test_error_set_returns_errno_and_message(void **state) {
        Error e = ERROR_INIT;

        assert_int_equal(error_set(&e, -EINVAL, "IOVA 0x%x is not aligned", 0x1001), -EINVAL);
        assert_int_equal(e.error, -EINVAL);
        assert_string_equal(error_message(&e), "IOVA 0x1001 is not aligned");
        assert_null(e.name);
}

static void test_error_null_is_accepted(void **state) {
        assert_int_equal(error_set(NULL, -ENOENT, "ignored"), -ENOENT);
        assert_string_equal(error_message(NULL), "");
}

static void test_error_prefix_and_named(void **state) {
        Error e = ERROR_INIT;

        error_set_named(&e, -EBUSY, "org.iommud.Broker.DeviceBusy", "held by uid 1000");
        assert_int_equal(error_prefix(&e, "device %s", "0000:01:00.0"), -EBUSY);
        assert_string_equal(e.message, "device 0000:01:00.0: held by uid 1000");
        assert_string_equal(e.name, "org.iommud.Broker.DeviceBusy");
        error_clear(&e);
        assert_int_equal(e.error, 0);
}

static void test_error_message_falls_back_to_strerror(void **state) {
        Error e = { .error = -ENOENT };

        assert_string_equal(error_message(&e), strerror(ENOENT));
}

static void test_take_fd_and_ptr(void **state) {
        int fd = dup(STDERR_FILENO), taken;
        char *p = strdup("x"), *q;

        assert_true(fd >= 0);
        taken = TAKE_FD(fd);
        assert_int_equal(fd, -EBADF);
        assert_true(taken >= 0);
        assert_int_equal(safe_close(taken), -EBADF);

        q = TAKE_PTR(p);
        assert_null(p);
        free(q);
}

static void test_log_level_from_string(void **state) {
        assert_int_equal(log_level_from_string("debug"), LOG_DEBUG);
        assert_int_equal(log_level_from_string("error"), LOG_ERR);
        assert_int_equal(log_level_from_string("4"), LOG_WARNING);
        assert_int_equal(log_level_from_string("loud"), -EINVAL);
        assert_int_equal(log_level_from_string("8"), -EINVAL);
}

static void test_log_returns_negative_errno(void **state) {
        int saved = log_get_max_level();

        log_set_max_level(LOG_EMERG); /* silence */
        assert_int_equal(log_error_errno(EIO, "x"), -EIO);
        assert_int_equal(log_error_errno(-EPERM, "x"), -EPERM);
        log_set_max_level(saved);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_error_set_returns_errno_and_message),
                cmocka_unit_test(test_error_null_is_accepted),
                cmocka_unit_test(test_error_prefix_and_named),
                cmocka_unit_test(test_error_message_falls_back_to_strerror),
                cmocka_unit_test(test_take_fd_and_ptr),
                cmocka_unit_test(test_log_level_from_string),
                cmocka_unit_test(test_log_returns_negative_errno),
        };

        return cmocka_run_group_tests_name("common", tests, NULL, NULL);
}
