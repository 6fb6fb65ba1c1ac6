/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Adversaries that keep the device file they passed to iommud, against the real daemon on the
 * simulated "server" host, whose backend binds a device through an open file as the kernel
 * does.  A keeper attaches a device with its own fd, maps memory, and then lets go in every
 * way but closing that fd: DetachDevice, closing its connection, handing the fd to another
 * process.  Meanwhile every other client is refused with DeviceBusy naming the process that
 * holds the file, refusals cost the daemon nothing, and once that process is gone the daemon's
 * fds, sessions, the model's contexts and objects and the claims are back at their baseline and
 * the device attaches at once.
 */

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "hostile.h"

#define DEVICE "0000:c1:00.3"
#define MAP_BYTES (64 * 1024)

/* A process that keeps its device fd, and does what it is told with the rest. */
typedef struct Keeper {
        pid_t pid;
        int cmd, ack;
        pid_t heir;  /* the process it handed its fd to, 0: none */
} Keeper;

#define KEEPER_NONE ((Keeper){ .cmd = -1, .ack = -1 })

typedef struct Fixture {
        ItestDaemon daemon;
        HostileSnapshot base;
        char cdev[64];
        Keeper keeper;   /* the scenario's, stopped by its teardown when the scenario failed */
} Fixture;

static ItestClient *connect_client(const Fixture *f) {
        ItestClient *c;

        assert_int_equal(itest_client_connect(&c, f->daemon.socket), 0);
        return c;
}

static bool call_ok(ItestClient *c, const char *method, json_object *params, const int *fds,
                    size_t n_fds, uint64_t *ret, const char *key) {
        json_object *r = hostile_call(c, method, params, fds, n_fds);
        bool ok = r && !itest_reply_error(r);

        if (ok && ret)
                *ret = itest_get_u64(itest_reply_params(r), key);
        json_object_put(r);
        return ok;
}

/* AttachDevice with fd, an address space, the device in it, MAP_BYTES of a memfd mapped. */
static bool keeper_attach(ItestClient *c, int fd, uint64_t *ret_dev) {
        uint64_t ioas = 0, hwpt;
        int mem = itest_memfd(MAP_BYTES);
        bool ok;

        ok = mem >= 0 &&
             call_ok(c, "org.iommud.Broker.AttachDevice",
                     itest_params("fd", hostile_u64(0), NULL), &fd, 1, ret_dev, "deviceId") &&
             call_ok(c, "org.iommud.Broker.CreateAddressSpace", NULL, NULL, 0, &ioas, "ioasId") &&
             call_ok(c, "org.iommud.Broker.AttachToAddressSpace",
                     itest_params("deviceId", hostile_u64(*ret_dev), "ioasId", hostile_u64(ioas),
                                  NULL),
                     NULL, 0, &hwpt, "hwptId") &&
             call_ok(c, "org.iommud.Broker.Map",
                     itest_params("ioasId", hostile_u64(ioas), "memoryFd", hostile_u64(0),
                                  "offset", hostile_u64(0), "length", hostile_u64(MAP_BYTES),
                                  "iova", hostile_u64(0x100000), "readable",
                                  json_object_new_boolean(true), "writeable",
                                  json_object_new_boolean(true), NULL),
                     &mem, 1, NULL, NULL);
        if (mem >= 0)
                close(mem);
        return ok;
}

/* A grandchild that keeps fd after the keeper is gone; its pid goes to ack. */
static void keeper_hand_over(int fd, int ack) {
        pid_t heir = fork();

        if (heir == 0) {
                /* The device fd only: the keeper's connection must end with the keeper. */
                for (int i = STDERR_FILENO + 1; i < 1024; i++)
                        if (i != fd)
                                (void)close(i);
                /* Nothing of the test's output: a pipe it holds would outlive the test. */
                (void)dup2(open("/dev/null", O_WRONLY | O_CLOEXEC), STDOUT_FILENO);
                (void)dup2(STDOUT_FILENO, STDERR_FILENO);
                for (;;)
                        pause();
        }
        if (write(ack, &heir, sizeof(heir)) != sizeof(heir))
                _exit(2);
}

static _Noreturn void keeper_main(const Fixture *f, int cmd, int ack) {
        int fd = hostile_open_device(&f->daemon, f->cdev);
        ItestClient *c = NULL;
        uint64_t dev = 0;

        (void)prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (fd < 0 || itest_client_connect(&c, f->daemon.socket) < 0)
                _exit(3);
        for (;;) {
                char what = hostile_read_byte(cmd);
                bool ok = true;

                switch (what) {
                case 'a':
                        ok = keeper_attach(c, fd, &dev);
                        break;
                case 'd':
                        ok = call_ok(c, "org.iommud.Broker.DetachDevice",
                                     itest_params("deviceId", hostile_u64(dev), NULL), NULL, 0,
                                     NULL, NULL);
                        break;
                case 'c':
                        itest_client_free(c);
                        c = NULL;
                        break;
                case 'h':
                        keeper_hand_over(fd, ack);
                        continue;
                default:
                        _exit(0);
                }
                hostile_write_byte(ack, ok ? 'y' : 'n');
        }
}

static Keeper *keeper_start(Fixture *f) {
        Keeper *k = &f->keeper;
        int cmd[2], ack[2];

        assert_int_equal(pipe2(cmd, O_CLOEXEC), 0);
        assert_int_equal(pipe2(ack, O_CLOEXEC), 0);
        *k = (Keeper){ .pid = fork(), .heir = 0 };
        assert_true(k->pid >= 0);
        if (k->pid == 0) {
                close(cmd[1]);
                close(ack[0]);
                keeper_main(f, cmd[0], ack[1]);
        }
        close(cmd[0]);
        close(ack[1]);
        k->cmd = cmd[1];
        k->ack = ack[0];
        return k;
}

static void keeper_do(Keeper *k, char what) {
        hostile_write_byte(k->cmd, what);
        if (hostile_read_byte(k->ack) != 'y')
                fail_msg("the keeper could not do '%c'", what);
}

/* The keeper gives its fd to a process of its own (k->heir) and exits. */
static void keeper_hand_over_and_exit(Keeper *k) {
        int status;

        hostile_write_byte(k->cmd, 'h');
        assert_int_equal(read(k->ack, &k->heir, sizeof(k->heir)), (ssize_t)sizeof(k->heir));
        hostile_write_byte(k->cmd, 'q');
        assert_int_equal(waitpid(k->pid, &status, 0), k->pid);
        k->pid = 0;
}

static void keeper_stop(Keeper *k) {
        int status;

        if (k->pid > 0) {
                hostile_write_byte(k->cmd, 'q');
                (void)kill(k->pid, SIGKILL);
                (void)waitpid(k->pid, &status, 0);
        }
        if (k->heir > 0) {
                (void)kill(k->heir, SIGKILL);
                (void)waitpid(k->heir, &status, 0);
        }
        if (k->cmd >= 0)
                close(k->cmd);
        if (k->ack >= 0)
                close(k->ack);
        *k = KEEPER_NONE;
}

/* Another client's attach of the device with a fresh fd: DeviceBusy naming holder, or 0: ok. */
static void check_attach(const Fixture *f, pid_t holder) {
        ItestClient *c = connect_client(f);
        int fd = hostile_open_device(&f->daemon, f->cdev);
        json_object *r;
        char pid[32];

        assert_true(fd >= 0);
        r = hostile_call(c, "org.iommud.Broker.AttachDevice",
                         itest_params("fd", hostile_u64(0), NULL), &fd, 1);
        if (holder == 0 && itest_reply_error(r))
                fail_msg("the device is not free again: %s", json_object_to_json_string(r));
        if (holder > 0) {
                const char *e = itest_reply_error(r), *held;

                if (!e || strcmp(e, "org.iommud.Broker.DeviceBusy") != 0 ||
                    itest_get_u64(itest_reply_params(r), "pid") != (uint64_t)holder)
                        fail_msg("expected DeviceBusy naming pid %d: %s", (int)holder,
                                 json_object_to_json_string(r));
                /* ... and GetTopology says who holds it. */
                json_object_put(r);
                snprintf(pid, sizeof(pid), "pid %d", (int)holder);
                r = hostile_call(c, "org.iommud.Broker.GetTopology", NULL, NULL, 0);
                held = "";
                for (size_t i = 0; r && !itest_reply_error(r) &&
                                   i < json_object_array_length(json_object_object_get(
                                               itest_reply_params(r), "devices"));
                     i++) {
                        json_object *d = json_object_array_get_idx(
                                json_object_object_get(itest_reply_params(r), "devices"), i);

                        if (strcmp(itest_get_string(d, "name"), DEVICE) == 0)
                                held = itest_get_string(d, "heldBy") ?: "";
                }
                if (!strstr(held, pid))
                        fail_msg("GetTopology lists %s as held by '%s', not %s", DEVICE, held,
                                 pid);
        }
        json_object_put(r);
        close(fd);
        itest_client_free(c);
}

/* Waits (bounded by attempts) until the daemon ended every session but the probe's. */
static void wait_sessions(const Fixture *f, HostileSnapshot *ret) {
        for (int i = 0; i < 2000; i++) {
                hostile_snapshot(&f->daemon, ret);
                if (ret->connections == f->base.connections)
                        return;
                usleep(5000);
        }
        fail_msg("the keeper's session did not end");
}

/* ---- the scenarios ---- */

/* DetachDevice, then the connection closed: the kept file keeps the device and nothing else. */
static void test_kept_after_detach_and_disconnect(void **state) {
        Fixture *f = *state;
        HostileSnapshot now;
        Keeper *k = keeper_start(f);

        keeper_do(k, 'a');
        keeper_do(k, 'd');
        check_attach(f, k->pid);
        keeper_do(k, 'c');
        wait_sessions(f, &now);
        /* Of the ended session only the binding is left: its context and the device in it. */
        assert_int_equal(now.contexts, f->base.contexts + 1);
        assert_int_equal(now.objects, f->base.objects + 1);
        check_attach(f, k->pid);
        keeper_stop(k);
        hostile_assert_at(&f->daemon, &f->base);
        check_attach(f, 0);
}

/* The keeper hands its fd to another process and exits: that process is named, then released. */
static void test_kept_and_handed_over(void **state) {
        Fixture *f = *state;
        Keeper *k = keeper_start(f);
        HostileSnapshot now;

        keeper_do(k, 'a');
        keeper_hand_over_and_exit(k);
        wait_sessions(f, &now);
        /* The keeper's session ends with its connection; its fd lives on in the heir. */
        check_attach(f, k->heir);
        keeper_stop(k);
        hostile_assert_at(&f->daemon, &f->base);
        check_attach(f, 0);
}

/* Attaches refused because another process keeps the file cost the daemon nothing. */
static void test_refusals_cost_nothing(void **state) {
        Fixture *f = *state;
        HostileSnapshot before, after;
        Keeper *k = keeper_start(f);

        keeper_do(k, 'a');
        keeper_do(k, 'd');
        hostile_snapshot(&f->daemon, &before);
        for (int i = 0; i < 20; i++)
                check_attach(f, k->pid);
        hostile_assert_at(&f->daemon, &before);
        hostile_snapshot(&f->daemon, &after);
        assert_true(hostile_snapshot_equal(&before, &after));
        keeper_stop(k);
        hostile_assert_at(&f->daemon, &f->base);
}

/* ---- fixture ---- */

static int group_setup(void **state) {
        Fixture *f = calloc(1, sizeof(*f));
        ItestClient *c;

        assert_non_null(f);
        f->keeper = KEEPER_NONE;
        hostile_start(&f->daemon, "server");
        assert_int_equal(itest_client_connect(&c, f->daemon.socket), 0);
        assert_true(hostile_device_cdev(c, DEVICE, f->cdev, sizeof(f->cdev)));
        itest_client_free(c);
        hostile_snapshot(&f->daemon, &f->base);
        *state = f;
        return 0;
}

static int group_teardown(void **state) {
        Fixture *f = *state;

        if (!f)
                return 0;
        /* A clean exit status also means no sanitizer report and no leak in the daemon. */
        assert_int_equal(itest_daemon_stop(&f->daemon), 0);
        free(f);
        return 0;
}

static int scenario_teardown(void **state) {
        Fixture *f = *state;

        /* A scenario that failed half-way leaves its keeper: it goes first. */
        if (f->keeper.pid > 0 || f->keeper.heir > 0)
                keeper_stop(&f->keeper);
        hostile_assert_at(&f->daemon, &f->base);
        return 0;
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_teardown(test_kept_after_detach_and_disconnect,
                                          scenario_teardown),
                cmocka_unit_test_teardown(test_kept_and_handed_over, scenario_teardown),
                cmocka_unit_test_teardown(test_refusals_cost_nothing, scenario_teardown),
        };

        signal(SIGPIPE, SIG_IGN);
        return cmocka_run_group_tests_name("hostile-teardown", tests, group_setup, group_teardown);
}
