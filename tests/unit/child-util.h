/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Child processes that a test needs alive, for their pid and their pidfds: they sleep
 * until killed and die with the test whatever becomes of it.
 */

#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

static inline pid_t child_spawn_sleeper(void) {
        pid_t pid = fork();

        assert_true(pid >= 0);
        if (pid == 0) {
                (void)prctl(PR_SET_PDEATHSIG, SIGKILL);
                for (;;)
                        pause();
        }
        return pid;
}

/* Kills and reaps pid. */
static inline void child_reap(pid_t pid) {
        (void)kill(pid, SIGKILL);
        assert_int_equal(waitpid(pid, NULL, 0), pid);
}
