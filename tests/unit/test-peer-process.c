/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Whether /proc/PID is still about a connection's peer.  The race it guards
 * against (the client exits while its connection waits, and its pid goes to
 * another process before iommud reads /proc) cannot be forced, so its
 * ingredients are made directly: a start time after the accept (a /proc root
 * of our own with the real pid of a live child), a pidfd of a process that has
 * exited, a pidfd that names another pid, a pid with no process.
 */

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "error.h"
#include "child-util.h"
#include "macros.h"
#include "peer-process.h"

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif

static struct {
        char proc[64];
        pid_t child; /* sleeps until killed */
        long hz;
} env;

/* Kernels before 5.3 (and valgrind 3.19, which does not implement the call) have no pidfd_open. */
static bool have_pidfd_open;

static int pidfd_open_(pid_t pid) {
        return (int)syscall(SYS_pidfd_open, pid, 0);
}

/* PROC/pid/stat with the given start time in clock ticks; the command name has ") (" in it. */
static void write_stat(pid_t pid, unsigned long long start_ticks) {
        char path[128];
        FILE *f;

        snprintf(path, sizeof(path), "%s/%d", env.proc, (int)pid);
        assert_true(mkdir(path, 0755) == 0 || errno == EEXIST);
        snprintf(path, sizeof(path), "%s/%d/stat", env.proc, (int)pid);
        f = fopen(path, "we");
        assert_non_null(f);
        fprintf(f, "%d (a) (b) S 1 %d %d 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 %llu 0 0\n",
                (int)pid, (int)pid, (int)pid, start_ticks);
        fclose(f);
}

static int setup(void **state) {
        int fd;

        snprintf(env.proc, sizeof(env.proc), "/tmp/iommud-test-proc-XXXXXX");
        assert_non_null(mkdtemp(env.proc));
        env.hz = sysconf(_SC_CLK_TCK);
        env.child = child_spawn_sleeper();
        fd = pidfd_open_(getpid());
        have_pidfd_open = fd >= 0;
        if (fd >= 0)
                close(fd);
        return 0;
}

static int teardown(void **state) {
        char cmd[128];

        child_reap(env.child);
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", env.proc);
        assert_int_equal(system(cmd), 0);
        return 0;
}

static void test_parse_start(void **state) {
        uint64_t t = 0;

        assert_int_equal(peer_process_parse_start("42 (qemu) S 1 42 42 0 -1 4194560 0 0 0 0 0 0 "
                                                  "0 0 20 0 1 0 987654 1 2\n",
                                                  &t),
                         0);
        assert_int_equal(t, 987654);
        /* A command name may hold ") " and digits: only the last ')' ends it. */
        assert_int_equal(peer_process_parse_start("42 (a) 1 2 3) S 1 42 42 0 -1 4194560 0 0 0 0 "
                                                  "0 0 0 0 20 0 1 0 77 1 2\n",
                                                  &t),
                         0);
        assert_int_equal(t, 77);
        assert_int_equal(peer_process_parse_start("42 (a) S 1 2\n", &t), -EBADMSG);
        assert_int_equal(peer_process_parse_start("no parenthesis", &t), -EBADMSG);
}

/* Without a pidfd from the transport: the start time decides. */
static void test_start_time(void **state) {
        uint64_t now = peer_process_now();
        uint64_t now_ticks = now / 1000000 * (uint64_t)env.hz;
        Error why = ERROR_INIT;
        int fd;

        /* Without pidfd_open no pid can be pinned: whatever its start time, nothing is believed. */
        if (!have_pidfd_open) {
                fd = peer_process_pin(&(PeerProcess){ .pid = env.child, .pidfd = -EBADF,
                                                      .accepted_usec = now },
                                      env.proc, &why);
                assert_int_equal(fd, -ESRCH);
                assert_non_null(strstr(why.message, "cannot be pinned"));
                return;
        }

        /* Started a second before the accept: the client. */
        write_stat(env.child, (unsigned long long)(now_ticks - (uint64_t)env.hz));
        fd = peer_process_pin(&(PeerProcess){ .pid = env.child, .pidfd = -EBADF,
                                              .accepted_usec = now },
                              env.proc, &why);
        assert_true(fd >= 0);
        assert_int_equal(why.error, 0);
        assert_int_equal(peer_process_alive(fd), 1);
        close(fd);

        /* Started after the accept: its pid was reused, whoever it is, it is not the client. */
        fd = peer_process_pin(&(PeerProcess){ .pid = env.child, .pidfd = -EBADF,
                                              .accepted_usec = now - 2000000 },
                              env.proc, &why);
        assert_int_equal(fd, -ESRCH);
        assert_int_equal(why.error, -ESRCH);
        print_message("# %s\n", why.message);
        assert_non_null(strstr(why.message, "started after the connection was accepted"));

        /* The real start time of a live process passes against now. */
        fd = peer_process_pin(&(PeerProcess){ .pid = env.child, .pidfd = -EBADF,
                                              .accepted_usec = peer_process_now() },
                              NULL, &why);
        assert_true(fd >= 0);
        close(fd);
        /* And fails against a time before it was born. */
        fd = peer_process_pin(&(PeerProcess){ .pid = env.child, .pidfd = -EBADF,
                                              .accepted_usec = 0 },
                              NULL, &why);
        assert_int_equal(fd, -ESRCH);
}

static void test_pid_gone(void **state) {
        pid_t pid = child_spawn_sleeper();
        Error why = ERROR_INIT;
        int fd;

        child_reap(pid);
        fd = peer_process_pin(&(PeerProcess){ .pid = pid, .pidfd = -EBADF,
                                              .accepted_usec = peer_process_now() },
                              NULL, &why);
        assert_int_equal(fd, -ESRCH);
        assert_non_null(strstr(why.message, "cannot be pinned"));

        /* No process named at all. */
        fd = peer_process_pin(&(PeerProcess){ .pid = 0, .pidfd = -EBADF }, NULL, &why);
        assert_int_equal(fd, -ESRCH);
}

/* The transport's own pidfd: the peer by construction, unless it has exited. */
static void test_given_pidfd(void **state) {
        pid_t pid;
        int given, fd;
        Error why = ERROR_INIT;

        /* A transport that could not get one (the kernel has none, or the peer was gone). */
        fd = peer_process_pin(&(PeerProcess){ .pid = env.child, .pidfd = -ESRCH }, NULL, &why);
        assert_int_equal(fd, -ESRCH);
        assert_non_null(strstr(why.message, "unavailable"));
        if (!have_pidfd_open)
                return;

        pid = child_spawn_sleeper();
        given = pidfd_open_(pid);
        assert_true(given >= 0);
        fd = peer_process_pin(&(PeerProcess){ .pid = pid, .pidfd = given }, NULL, &why);
        assert_true(fd >= 0);
        assert_true(fd != given);
        assert_int_equal(peer_process_alive(fd), 1);

        /* The process exits (a zombie still holds its pid): no longer alive. */
        assert_int_equal(kill(pid, SIGKILL), 0);
        assert_int_equal(waitid(P_PID, (id_t)pid, NULL, WEXITED | WNOWAIT), 0);
        assert_int_equal(peer_process_alive(fd), 0);
        close(fd);

        /* Reaped: its pid may be anyone's now, the pidfd says so. */
        assert_int_equal(waitpid(pid, NULL, 0), pid);
        fd = peer_process_pin(&(PeerProcess){ .pid = pid, .pidfd = given }, NULL, &why);
        assert_int_equal(fd, -ESRCH);
        print_message("# %s\n", why.message);
        assert_non_null(strstr(why.message, "has exited"));
        assert_int_equal(peer_process_alive(given), 0);
        close(given);

        /* A pidfd of another process than the pid the credentials name. */
        given = pidfd_open_(env.child);
        assert_true(given >= 0);
        fd = peer_process_pin(&(PeerProcess){ .pid = getpid(), .pidfd = given }, NULL, &why);
        assert_int_equal(fd, -ESRCH);
        assert_non_null(strstr(why.message, "names pid"));
        close(given);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_parse_start),
                cmocka_unit_test(test_start_time),
                cmocka_unit_test(test_pid_gone),
                cmocka_unit_test(test_given_pidfd),
        };

        return cmocka_run_group_tests_name("peer-process", tests, setup, teardown);
}
