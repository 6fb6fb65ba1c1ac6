/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Real cgroups for the tests of principals: a private subtree of the machine's
 * cgroup2 hierarchy (ROOT/OWN/iommud-test-PID, where OWN is the test's own
 * cgroup), where a test builds what systemd would (a user's manager chowned to
 * the user and marked delegated, machine scopes) and what an attacker would (a
 * scope with a unit's name in a subtree of its own), and runs clients in them.
 * Needs root and a writable cgroup2 mount; otherwise init fills skip with why.
 */

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

typedef struct ItestCgroups {
        char mount[200];  /* where cgroup2 is mounted */
        char base[512];   /* the test's subtree, a directory under mount */
        char path[300];   /* the same, as /proc/PID/cgroup shows it ("/iommud-test-42") */
        char skip[1024];  /* why the machine cannot run these tests; "" when it can */
} ItestCgroups;

/* Finds cgroup2 and makes the test's subtree; -errno with cg->skip set when it cannot. */
int itest_cgroups_init(ItestCgroups *cg);
/* Removes every cgroup under the subtree, deepest first; processes must have left them. */
void itest_cgroups_cleanup(ItestCgroups *cg);

/*
 * mkdir -p BASE/rel, every new cgroup root's.  From the cgroup owned_from (a prefix of
 * rel, NULL: none) down, each is chowned to uid with its cgroup.procs, cgroup.threads and
 * cgroup.subtree_control, as systemd hands a delegated subtree over.
 */
int itest_cgroup_make(ItestCgroups *cg, const char *rel, const char *owned_from, uid_t uid);
/* Sets the xattr (trusted.delegate, user.delegate) systemd marks delegation with on BASE/rel. */
int itest_cgroup_mark_delegated(ItestCgroups *cg, const char *rel, const char *xattr);

/* What a client run in a cgroup does once it is there; returns its exit status (0: fine). */
typedef int (*ItestCgroupFn)(void *userdata, char *report, size_t size);

/*
 * Runs fn in a child process that the parent moves into BASE/rel while still root, then
 * drops to uid/gid (no supplementary groups).  With user_rel, the child itself, as uid,
 * then makes BASE/rel/user_rel and moves itself there: what any user can do in a subtree
 * delegated to it.  The child's report (a line of text) lands in report.  Returns fn's
 * exit status, or 100 + a step number when the child failed before fn.
 */
int itest_cgroup_run(ItestCgroups *cg, const char *rel, const char *user_rel, uid_t uid,
                     gid_t gid, ItestCgroupFn fn, void *userdata, char *report, size_t size);
