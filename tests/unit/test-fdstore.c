/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* The fd store's state slots and the uevent parser. */

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "fdstore.h"
#include "uevent.h"

static void test_crc32(void **state) {
        /* The standard check value of CRC-32 (IEEE 802.3). */
        assert_int_equal(fdstore_crc32("123456789", 9), 0xcbf43926u);
        assert_int_equal(fdstore_crc32("", 0), 0);
}

static void test_uevent_parse(void **state) {
        static const char add[] = "add@/devices/pci0000:00/0000:00:01.0\0ACTION=add\0"
                                  "DEVPATH=/devices/pci0000:00/0000:00:01.0\0SUBSYSTEM=pci\0"
                                  "SEQNUM=4242";
        static const char bind[] = "bind@/devices/x\0ACTION=bind\0DEVPATH=/devices/x\0"
                                   "SUBSYSTEM=pci\0DRIVER=vfio-pci\0";
        static const char change[] = "change@/devices/y\0ACTION=change\0DEVPATH=/devices/y\0"
                                     "SUBSYSTEM=block\0";
        static const char udev[] = "libudev\0\xfe\xed\xca\xfe";
        static const char no_action[] = "add@/devices/z\0DEVPATH=/devices/z\0";
        Uevent u;

        assert_int_equal(uevent_parse(add, sizeof(add) - 1, &u), 0);
        assert_string_equal(u.action, "add");
        assert_string_equal(u.devpath, "/devices/pci0000:00/0000:00:01.0");
        assert_string_equal(u.subsystem, "pci");
        assert_null(u.driver);
        assert_true(uevent_is_relevant(&u));

        assert_int_equal(uevent_parse(bind, sizeof(bind), &u), 0);
        assert_string_equal(u.driver, "vfio-pci");
        assert_true(uevent_is_relevant(&u));

        assert_int_equal(uevent_parse(change, sizeof(change), &u), 0);
        assert_false(uevent_is_relevant(&u));

        assert_int_equal(uevent_parse(udev, sizeof(udev), &u), -EBADMSG);
        assert_int_equal(uevent_parse(no_action, sizeof(no_action), &u), -EBADMSG);
        assert_int_equal(uevent_parse("", 0, &u), -EBADMSG);
}

/* A notify socket, so that FDSTORE messages have somewhere to go. */
static int notify_socket(char *path, size_t n) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);

        assert_true(fd >= 0);
        snprintf(path, n, "/tmp/iommud-fdstore-test-%d", (int)getpid());
        unlink(path);
        memcpy(sa.sun_path, path, strlen(path) + 1);
        assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
        setenv("NOTIFY_SOCKET", path, 1);
        return fd;
}

/* Receives one FDSTORE message and returns its fd (dup'ed to a fixed place). */
static int receive_fd(int sock, char *name, size_t n) {
        union {
                struct cmsghdr h;
                char buf[CMSG_SPACE(sizeof(int))];
        } control;
        char buf[512];
        struct iovec iov = { .iov_base = buf, .iov_len = sizeof(buf) - 1 };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = &control,
                             .msg_controllen = sizeof(control) };
        ssize_t k = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
        struct cmsghdr *cm;
        const char *p;
        int fd;

        assert_true(k > 0);
        buf[k] = '\0';
        assert_non_null(strstr(buf, "FDSTORE=1"));
        p = strstr(buf, "FDNAME=");
        assert_non_null(p);
        snprintf(name, n, "%s", p + 7);
        cm = CMSG_FIRSTHDR(&mh);
        assert_non_null(cm);
        memcpy(&fd, CMSG_DATA(cm), sizeof(fd));
        return fd;
}

/* Hands fds to a new FdStore the way the service manager does on the next start. */
static FdStore *restart_with(const char *const *names, const int *fds, size_t n) {
        char env[256] = "", num[32];
        FdStore *s = NULL;

        for (size_t i = 0; i < n; i++) {
                assert_int_equal(dup2(fds[i], 3 + (int)i + 100), 3 + (int)i + 100);
                if (i > 0)
                        strcat(env, ":");
                strcat(env, names[i]);
        }
        /* sd_listen_fds wants them at 3..; park them high first, then move them down. */
        for (size_t i = 0; i < n; i++) {
                assert_int_equal(dup2(3 + (int)i + 100, 3 + (int)i), 3 + (int)i);
                close(3 + (int)i + 100);
        }
        snprintf(num, sizeof(num), "%zu", n);
        setenv("LISTEN_FDS", num, 1);
        setenv("LISTEN_FDNAMES", env, 1);
        snprintf(num, sizeof(num), "%d", (int)getpid());
        setenv("LISTEN_PID", num, 1);
        assert_int_equal(fdstore_new(&s, true), 0);
        return s;
}

static void test_state_round_trip_and_torn_slot(void **state) {
        char path[128], names[2][64];
        int sock = notify_socket(path, sizeof(path)), fds[2];
        const char *const n2[2] = { names[0], names[1] };
        FdStore *s = NULL;
        Error err = ERROR_INIT;
        char *text = NULL;

        unsetenv("LISTEN_FDS");
        assert_int_equal(fdstore_new(&s, true), 0);
        assert_int_equal(fdstore_write_state(s, "{\"g\":1}", 7, &err), 0);
        fds[0] = receive_fd(sock, names[0], sizeof(names[0]));
        fds[1] = receive_fd(sock, names[1], sizeof(names[1]));
        assert_string_equal(names[0], "iommud-state-a");
        assert_string_equal(names[1], "iommud-state-b");
        assert_int_equal(fdstore_write_state(s, "{\"g\":2}", 7, &err), 0);
        fdstore_free(s);

        /* The newest generation wins. */
        s = restart_with(n2, fds, 2);
        assert_int_equal(fdstore_read_state(s, &text, &err), 0);
        assert_string_equal(text, "{\"g\":2}");
        free(text);
        /* The next write goes to the older slot; tear it and the other one still reads. */
        assert_int_equal(fdstore_write_state(s, "{\"g\":3}", 7, &err), 0);
        fdstore_free(s);
        assert_int_equal(pwrite(fds[1], "X", 1, 34), 1); /* generation 3 lives in slot b */
        s = restart_with(n2, fds, 2);
        assert_int_equal(fdstore_read_state(s, &text, &err), 0);
        assert_string_equal(text, "{\"g\":2}");
        free(text);
        fdstore_free(s);

        /* Both damaged: a precise refusal, never a half-read state. */
        assert_int_equal(pwrite(fds[0], "YYYYYYYY", 8, 0), 8);
        s = restart_with(n2, fds, 2);
        assert_int_equal(fdstore_read_state(s, &text, &err), -EBADMSG);
        assert_non_null(strstr(error_message(&err), "damaged"));
        fdstore_free(s);

        close(fds[0]);
        close(fds[1]);
        close(sock);
        unlink(path);
        unsetenv("NOTIFY_SOCKET");
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_crc32),
                cmocka_unit_test(test_uevent_parse),
                cmocka_unit_test(test_state_round_trip_and_torn_slot),
        };

        return cmocka_run_group_tests_name("fdstore", tests, NULL, NULL);
}
