/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * peer_creds_from_source() and peer_creds_from_socket(), the one path both transports
 * take: a /proc root of our own holding the real pid of a live child (so that pidfds
 * work) and a cgroup tree of plain directories, owned as the rule wants.  Needs root: the
 * tree must be root's to be trusted, and a client with other groups needs setgroups().
 */

#include <fcntl.h>
#include <grp.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "child-util.h"
#include "macros.h"
#include "peer-creds.h"

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif

#define NOBODY 65534

/* Kernels before 5.3 (and valgrind 3.19, which does not implement the call) have no pidfd_open. */
static bool have_pidfd_open;

static void write_file(const char *path, const char *text) {
        FILE *f = fopen(path, "we");

        assert_non_null(f);
        fputs(text, f);
        fclose(f);
}

/*
 * A /proc root of our own holding the real pid of a live child, with a stat that says it
 * started at start_ticks, a status and a cgroup file; and a cgroup tree with the unit.
 */
typedef struct FakeHost {
        char proc[64];
        char cgroup[64];
        pid_t pid;
} FakeHost;

static void fake_host_make(FakeHost *h, const char *cgroup_path) {
        char path[256], text[256], cmd[512];

        snprintf(h->proc, sizeof(h->proc), "/tmp/iommud-test-proc-XXXXXX");
        snprintf(h->cgroup, sizeof(h->cgroup), "/tmp/iommud-test-cgroup-XXXXXX");
        assert_non_null(mkdtemp(h->proc));
        assert_non_null(mkdtemp(h->cgroup));
        assert_int_equal(chmod(h->cgroup, 0755), 0);
        h->pid = child_spawn_sleeper();
        snprintf(path, sizeof(path), "%s/%d", h->proc, (int)h->pid);
        assert_int_equal(mkdir(path, 0755), 0);
        snprintf(path, sizeof(path), "%s/%d/status", h->proc, (int)h->pid);
        /* Groups here are not what counts: the socket's or the bus's record does. */
        write_file(path, "Name:\tqemu\nUid:\t107 107 107 107\nGid:\t36\t107\t107\t107\n"
                         "Groups:\t36 107\n");
        snprintf(path, sizeof(path), "%s/%d/cgroup", h->proc, (int)h->pid);
        snprintf(text, sizeof(text), "0::%s\n", cgroup_path);
        write_file(path, text);
        snprintf(cmd, sizeof(cmd), "mkdir -p '%s%s'", h->cgroup, cgroup_path);
        assert_int_equal(system(cmd), 0);
}

static void fake_host_stat(FakeHost *h, unsigned long long start_ticks) {
        char path[256], text[256];

        snprintf(path, sizeof(path), "%s/%d/stat", h->proc, (int)h->pid);
        snprintf(text, sizeof(text), "%d (qemu) S 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 %llu 0\n",
                 (int)h->pid, start_ticks);
        write_file(path, text);
}

static void fake_host_free(FakeHost *h) {
        char cmd[256];

        child_reap(h->pid);
        snprintf(cmd, sizeof(cmd), "rm -rf '%s' '%s'", h->proc, h->cgroup);
        assert_int_equal(system(cmd), 0);
}

static PeerCreds *creds_of(const FakeHost *h, gid_t gid, uint64_t accepted, int pidfd) {
        static const gid_t groups[] = { 36, 4242 };
        PeerCreds *c = NULL;

        assert_int_equal(peer_creds_from_source(&c,
                                                &(PeerCredsSource){
                                                        .uid = 107,
                                                        .gid = gid,
                                                        .groups = groups,
                                                        .n_groups = ELEMENTSOF(groups),
                                                        .process = { .pid = h->pid,
                                                                     .pidfd = pidfd,
                                                                     .accepted_usec = accepted },
                                                        .proc_root = h->proc,
                                                        .cgroup_root = h->cgroup,
                                                },
                                                NULL),
                         0);
        if (c->unit_refused)
                print_message("# no unit: %s\n", c->unit_refused);
        return c;
}

/*
 * Without pidfd_open nothing pins the pid the credentials name, so nothing from /proc is
 * believed: no unit, and the reason says so.  True when that is the case the test is in.
 */
static bool refused_without_pidfd(const FakeHost *h) {
        PeerCreds *c;

        if (have_pidfd_open)
                return false;
        c = creds_of(h, 107, peer_process_now(), -EBADF);
        assert_null(c->unit);
        assert_non_null(strstr(c->unit_refused, "cannot be pinned"));
        peer_creds_free(c);
        return true;
}

static void test_verified_unit(void **state) {
        uint64_t now = peer_process_now();
        long hz = sysconf(_SC_CLK_TCK);
        FakeHost h;
        PeerCreds *c;
        char buf[64];

        fake_host_make(&h, "/machine.slice/machine-qemu-vm1.scope");
        fake_host_stat(&h, now / 1000000 * (unsigned long long)hz - (unsigned long long)hz);
        if (refused_without_pidfd(&h)) {
                fake_host_free(&h);
                return;
        }

        /* Verified: the unit, and groups as given, not as /proc says. */
        c = creds_of(&h, 107, now, -EBADF);
        assert_int_equal(c->uid, 107);
        assert_int_equal(c->gid, 107);
        assert_int_equal(c->n_groups, 2);
        assert_int_equal(c->groups[1], 4242);
        assert_string_equal(c->unit, "machine-qemu-vm1.scope");
        assert_null(c->unit_refused);
        peer_creds_describe(c, buf, sizeof(buf));
        assert_string_equal(buf, "uid 107 (machine-qemu-vm1.scope)");
        c = peer_creds_free(c);

        /* No gid from the transport (the bus has none): the effective one of status. */
        c = creds_of(&h, GID_INVALID, now, -EBADF);
        assert_int_equal(c->gid, 107);
        c = peer_creds_free(c);

        /* The pid now belongs to a process younger than the connection: nothing from /proc. */
        c = creds_of(&h, GID_INVALID, now - 2000000, -EBADF);
        assert_null(c->unit);
        assert_int_equal(c->gid, GID_INVALID);
        assert_non_null(strstr(c->unit_refused, "is not verifiably the client's"));
        assert_non_null(strstr(c->unit_refused, "started after the connection was accepted"));
        assert_int_equal(c->n_groups, 2);
        c = peer_creds_free(c);
        fake_host_free(&h);
}

/* The transport's pidfd of a process that has exited: nothing from /proc either. */
static void test_dead_peer(void **state) {
        FakeHost h;
        PeerCreds *c;
        int pidfd;

        fake_host_make(&h, "/machine.slice/machine-qemu-vm1.scope");
        if (refused_without_pidfd(&h)) {
                fake_host_free(&h);
                return;
        }
        pidfd = (int)syscall(SYS_pidfd_open, h.pid, 0);
        assert_true(pidfd >= 0);
        c = creds_of(&h, 107, peer_process_now(), pidfd);
        assert_string_equal(c->unit, "machine-qemu-vm1.scope");
        c = peer_creds_free(c);

        assert_int_equal(kill(h.pid, SIGKILL), 0);
        assert_int_equal(waitid(P_PID, (id_t)h.pid, NULL, WEXITED | WNOWAIT), 0);
        c = creds_of(&h, 107, peer_process_now(), pidfd);
        assert_null(c->unit);
        assert_non_null(strstr(c->unit_refused, "exited while"));
        c = peer_creds_free(c);
        close(pidfd);
        fake_host_free(&h);
}

/* A spoofing cgroup whose /proc entry verifies: still no unit, and why. */
static void test_untrusted_cgroup(void **state) {
        const char *spoof = "/user.slice/user-65534.slice/user@65534.service/app.slice/"
                            "machine-qemu-evil.scope";
        FakeHost h;
        PeerCreds *c;

        fake_host_make(&h, spoof);
        if (refused_without_pidfd(&h)) {
                fake_host_free(&h);
                return;
        }
        c = creds_of(&h, 107, peer_process_now(), (int)syscall(SYS_pidfd_open, h.pid, 0));
        assert_null(c->unit);
        assert_non_null(strstr(c->unit_refused, "under user@65534.service"));
        c = peer_creds_free(c);
        fake_host_free(&h);
}

/* Groups come from SO_PEERGROUPS: the ones the peer had when it connected, not /proc's. */
static void test_socket_groups(void **state) {
        static const gid_t groups[] = { 4242, 4243, 4244 };
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        socklen_t sa_len;
        PeerCreds *c = NULL;
        int l, fd, ready[2];
        pid_t pid;
        char b;

        snprintf(sa.sun_path + 1, sizeof(sa.sun_path) - 1, "iommud-test-groups-%d", (int)getpid());
        sa_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + strlen(sa.sun_path + 1));
        l = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        assert_true(l >= 0);
        assert_int_equal(bind(l, (struct sockaddr *)&sa, sa_len), 0);
        assert_int_equal(listen(l, 1), 0);
        assert_int_equal(pipe2(ready, O_CLOEXEC), 0);
        fflush(NULL);
        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                int s = socket(AF_UNIX, SOCK_STREAM, 0);

                (void)prctl(PR_SET_PDEATHSIG, SIGKILL);
                if (s < 0 || setgroups(ELEMENTSOF(groups), groups) < 0 ||
                    connect(s, (struct sockaddr *)&sa, sa_len) < 0 || setgroups(0, NULL) < 0 ||
                    write(ready[1], "x", 1) != 1)
                        _exit(2);
                for (;;)
                        pause();
        }
        assert_int_equal(read(ready[0], &b, 1), 1);
        fd = accept4(l, NULL, NULL, SOCK_CLOEXEC);
        assert_true(fd >= 0);
        assert_int_equal(peer_creds_from_socket(&c, fd, peer_process_now(), NULL, NULL), 0);
        assert_int_equal(c->pid, pid);
        assert_int_equal(c->uid, 0);
        assert_int_equal(c->n_groups, ELEMENTSOF(groups));
        for (size_t i = 0; i < ELEMENTSOF(groups); i++)
                assert_int_equal(c->groups[i], groups[i]);
        peer_creds_free(c);
        child_reap(pid);
        close(fd);
        close(l);
        close(ready[0]);
        close(ready[1]);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_verified_unit),
                cmocka_unit_test(test_dead_peer),
                cmocka_unit_test(test_untrusted_cgroup),
                cmocka_unit_test(test_socket_groups),
        };

        /* A whole-suite skip is a TAP plan of zero (cmocka's skip() is a failure to meson). */
        int fd;

        if (geteuid() != 0) {
                printf("1..0 # SKIP needs root to own the cgroup tree and to set groups\n");
                return 0;
        }
        fd = (int)syscall(SYS_pidfd_open, getpid(), 0);
        have_pidfd_open = fd >= 0;
        if (fd >= 0)
                close(fd);
        return cmocka_run_group_tests_name("peer-verify", tests, NULL, NULL);
}
