/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "base64.h"
#include "error.h"
#include "file-util.h"
#include "json-util.h"
#include "log.h"
#include "macros.h"
#include "user-util.h"

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

/* Parses text as the Varlink reader does, then repairs what json-c saturated. */
static json_object *parse_fixed(const char *text) {
        json_object *o = json_tokener_parse(text);

        assert_non_null(o);
        assert_int_equal(json_util_fix_big_integers(o, text, strlen(text)), 0);
        return o;
}

static void assert_member_is_literal(json_object *o, const char *key, const char *literal) {
        json_object *v = json_object_object_get(o, key);

        assert_true(json_object_is_type(v, json_type_double));
        assert_string_equal(json_object_get_string(v), literal);
}

/* Integer literals beyond [INT64_MIN, UINT64_MAX] stop passing for the nearest bound. */
static void test_big_integers_are_not_saturated(void **state) {
        json_object *o, *a;

        o = parse_fixed("{\"a\":1000000000000000000000000000000,\"b\":18446744073709551615,"
                        "\"c\":-9223372036854775809,\"d\":-9223372036854775808,"
                        "\"e\":18446744073709551616,\"f\":[1,[99999999999999999999999]],"
                        "\"g\":{\"x\\\"y\":-100000000000000000000},\"h\":\"123456789012345678901\"}");
        assert_member_is_literal(o, "a", "1000000000000000000000000000000");
        /* The bounds themselves are integers. */
        assert_true(json_object_is_type(json_object_object_get(o, "b"), json_type_int));
        assert_true(json_object_get_uint64(json_object_object_get(o, "b")) == UINT64_MAX);
        assert_member_is_literal(o, "c", "-9223372036854775809");
        assert_true(json_object_get_int64(json_object_object_get(o, "d")) == INT64_MIN);
        assert_member_is_literal(o, "e", "18446744073709551616");
        a = json_object_array_get_idx(json_object_object_get(o, "f"), 1);
        assert_true(json_object_is_type(json_object_array_get_idx(a, 0), json_type_double));
        assert_member_is_literal(json_object_object_get(o, "g"), "x\"y", "-100000000000000000000");
        /* Digits in a string are no number. */
        assert_string_equal(json_object_get_string(json_object_object_get(o, "h")),
                            "123456789012345678901");
        json_object_put(o);

        /* A later duplicate wins in json-c; only the value it kept is looked at. */
        o = parse_fixed("{\"a\":100000000000000000000,\"a\":5}");
        assert_int_equal(json_object_get_int64(json_object_object_get(o, "a")), 5);
        json_object_put(o);
        o = parse_fixed("{\"a\":5,\"a\":100000000000000000000}");
        assert_member_is_literal(o, "a", "100000000000000000000");
        json_object_put(o);
}

/* A file of n bytes 'a'..'z' repeated, in a fresh directory; returns the directory's fd. */
static int scratch_file(char *dir, size_t n) {
        char path[128];
        FILE *f;
        int dfd;

        assert_non_null(mkdtemp(dir));
        snprintf(path, sizeof(path), "%s/f", dir);
        f = fopen(path, "we");
        assert_non_null(f);
        for (size_t i = 0; i < n; i++)
                fputc('a' + (int)(i % 26), f);
        assert_int_equal(fclose(f), 0);
        dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        assert_true(dfd >= 0);
        return dfd;
}

static void scratch_remove(char *dir, int dfd) {
        assert_int_equal(unlinkat(dfd, "f", 0), 0);
        close(dfd);
        assert_int_equal(rmdir(dir), 0);
}

static void test_file_read_whole(void **state) {
        /* Empty, one buffer exactly, and several growths of the buffer. */
        static const size_t sizes[] = { 0, 1, 4096, 4097, 100000 };

        for (size_t k = 0; k < ELEMENTSOF(sizes); k++) {
                char dir[] = "/tmp/iommud-test-file-XXXXXX";
                int dfd = scratch_file(dir, sizes[k]);
                char *text = NULL;
                size_t len = SIZE_MAX;

                assert_int_equal(file_util_read_at(dfd, "f", sizes[k], &text, &len), 0);
                assert_int_equal(len, sizes[k]);
                assert_int_equal(strlen(text), sizes[k]);
                for (size_t i = 0; i < len; i++)
                        assert_int_equal(text[i], 'a' + (int)(i % 26));
                free(text);
                scratch_remove(dir, dfd);
        }
}

static void test_file_read_limits(void **state) {
        char dir[] = "/tmp/iommud-test-file-XXXXXX";
        int dfd = scratch_file(dir, 5000);
        char path[128], *text = (char *)"untouched";

        /* One byte over the limit, whether it fits the first buffer or not. */
        assert_int_equal(file_util_read_at(dfd, "f", 4999, &text, NULL), -EFBIG);
        assert_int_equal(file_util_read_at(dfd, "f", 100, &text, NULL), -EFBIG);
        assert_string_equal(text, "untouched");
        assert_int_equal(file_util_read_at(dfd, "missing", 100, &text, NULL), -ENOENT);
        assert_int_equal(file_util_read_at(dfd, ".", 100, &text, NULL), -EISDIR);
        /* AT_FDCWD with an absolute path, as for /proc files. */
        snprintf(path, sizeof(path), "%s/f", dir);
        assert_int_equal(file_util_read_at(AT_FDCWD, path, 5000, &text, NULL), 0);
        assert_int_equal(strlen(text), 5000);
        free(text);
        scratch_remove(dir, dfd);
}

/* root (uid 0, group 0) exists everywhere; the names below exist nowhere. */
static void test_user_lookups(void **state) {
        _cleanup_free_ char *b1 = NULL, *b2 = NULL, *b3 = NULL;
        char *none = NULL;
        struct passwd pw;
        struct group gr;

        assert_int_equal(user_util_get_by_uid(0, &pw, &b1), 1);
        assert_string_equal(pw.pw_name, "root");
        assert_int_equal(pw.pw_gid, 0);
        assert_int_equal(user_util_get_by_name("root", &pw, &b2), 1);
        assert_int_equal(pw.pw_uid, 0);
        assert_int_equal(user_util_group_by_name("root", &gr, &b3), 1);
        assert_int_equal(gr.gr_gid, 0);

        assert_int_equal(user_util_get_by_name("iommud-no-such-user", &pw, &none), 0);
        assert_int_equal(user_util_group_by_name("iommud-no-such-group", &gr, &none), 0);
        assert_null(none);
}

static void test_base64_round_trip(void **state) {
        static const struct {
                const char *plain, *coded;
        } v[] = { /* RFC 4648 section 10 */
                { "", "" },         { "f", "Zg==" },        { "fo", "Zm8=" },
                { "foo", "Zm9v" },  { "foob", "Zm9vYg==" }, { "fooba", "Zm9vYmE=" },
                { "foobar", "Zm9vYmFy" },
        };
        static const uint8_t bin[] = { 0x00, 0xff, 0xfe, 0x3e, 0x3f };

        FOREACH_ARRAY(t, v, ELEMENTSOF(v)) {
                _cleanup_free_ char *coded = NULL;
                _cleanup_free_ void *plain = NULL;
                size_t n = 1234;

                assert_int_equal(base64_encode(t->plain, strlen(t->plain), &coded), 0);
                assert_string_equal(coded, t->coded);
                assert_int_equal(base64_decode(t->coded, strlen(t->coded), &plain, &n), 0);
                assert_int_equal(n, strlen(t->plain));
                assert_memory_equal(plain, t->plain, n);
        }
        {
                _cleanup_free_ char *coded = NULL;
                _cleanup_free_ void *back = NULL;
                size_t n = 0;

                assert_int_equal(base64_encode(bin, sizeof(bin), &coded), 0);
                assert_string_equal(coded, "AP/+Pj8=");
                assert_int_equal(base64_decode(coded, strlen(coded), &back, &n), 0);
                assert_int_equal(n, sizeof(bin));
                assert_memory_equal(back, bin, n);
        }
}

static void test_base64_refuses_what_is_not(void **state) {
        static const char *const bad[] = { "Zg=", "Zg", "Z===", "Zm9v\n", "Zm 9", "Zg==Zg==",
                                           "Zm9-", "=Zm9", "Zm=v" };
        void *out = NULL;
        size_t n = 0;

        FOREACH_ARRAY(b, bad, ELEMENTSOF(bad))
                if (base64_decode(*b, strlen(*b), &out, &n) != -EINVAL)
                        fail_msg("\"%s\" was decoded", *b);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_error_set_returns_errno_and_message),
                cmocka_unit_test(test_base64_round_trip),
                cmocka_unit_test(test_base64_refuses_what_is_not),
                cmocka_unit_test(test_error_null_is_accepted),
                cmocka_unit_test(test_error_prefix_and_named),
                cmocka_unit_test(test_error_message_falls_back_to_strerror),
                cmocka_unit_test(test_take_fd_and_ptr),
                cmocka_unit_test(test_log_level_from_string),
                cmocka_unit_test(test_log_returns_negative_errno),
                cmocka_unit_test(test_big_integers_are_not_saturated),
                cmocka_unit_test(test_file_read_whole),
                cmocka_unit_test(test_file_read_limits),
                cmocka_unit_test(test_user_lookups),
        };

        return cmocka_run_group_tests_name("common", tests, NULL, NULL);
}
