/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * The harness's own promise: whatever a test forks with itest_fork() (clients, daemons, a
 * client that dropped to nobody) dies with the test, so a failed or crashed test never leaves
 * a process holding meson's output pipe until the timeout.  No clock is involved: if a child
 * survived, the blocking waitpid() below would hang and meson's timeout would fail the test.
 */

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "itest.h"

#define NOBODY 65534

/* A child of the stand-in test: optionally drops to nobody, says it is armed, waits. */
static void child(bool drop, int ready) {
        if (drop) {
                if (setgroups(0, NULL) < 0 || setgid(NOBODY) < 0 || setuid(NOBODY) < 0)
                        _exit(2);
                itest_die_with_parent();
        }
        if (write(ready, "x", 1) != 1)
                _exit(3);
        for (;;)
                pause();
}

static void test_children_die_with_the_test(void **state) {
        bool root = geteuid() == 0;
        pid_t kids[2] = { 0, 0 }, test;
        int ready[2], report[2], status;
        size_t n_kids = root ? 2 : 1;
        char c;

        (void)state;
        /* Orphans come to this process, which can then wait for them. */
        assert_int_equal(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
        assert_int_equal(pipe2(ready, O_CLOEXEC), 0);
        assert_int_equal(pipe2(report, O_CLOEXEC), 0);
        /* The stand-in for a test process: forks its children, then dies of SIGKILL. */
        test = fork();
        assert_true(test >= 0);
        if (test == 0) {
                for (size_t i = 0; i < n_kids; i++) {
                        kids[i] = itest_fork();
                        if (kids[i] < 0)
                                _exit(4);
                        if (kids[i] == 0)
                                child(i == 1, ready[1]);
                        if (read(ready[0], &c, 1) != 1)
                                _exit(5);
                }
                if (write(report[1], kids, sizeof(kids)) != sizeof(kids))
                        _exit(6);
                (void)kill(getpid(), SIGKILL);
                _exit(7);
        }
        assert_int_equal(read(report[0], kids, sizeof(kids)), sizeof(kids));
        assert_int_equal(waitpid(test, &status, 0), test);
        assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
        for (size_t i = 0; i < n_kids; i++) {
                assert_int_equal(waitpid(kids[i], &status, 0), kids[i]);
                if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL)
                        fail_msg("child %zu%s ended with wait status 0x%x, not SIGKILL", i,
                                 i == 1 ? " (dropped to nobody)" : "", status);
        }
        close(ready[0]);
        close(ready[1]);
        close(report[0]);
        close(report[1]);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_children_die_with_the_test),
        };

        return cmocka_run_group_tests_name("itest", tests, NULL, NULL);
}
