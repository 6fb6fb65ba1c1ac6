/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Adversaries that keep the device file they passed to iommud, against the real daemon on the
 * simulated "server" host, whose backend binds a device through an open file as the kernel
 * does.  A keeper attaches a device with its own fd, maps memory, and then lets go in every
 * way but closing that fd: DetachDevice, closing its connection, handing the fd to another
 * process, its device leaving the host under it.  The simulated device's DMA
 * (org.iommud.Simulator.InjectDMA) through the old IOVA then reaches nothing, and nothing of
 * the session stays mapped or pinned.  Meanwhile every other client is refused with DeviceBusy
 * naming the process that holds the file, a client passing a file it bound already hears that
 * it holds it, refusals cost the daemon nothing, and once that process is gone the daemon's
 * fds, connections, the model's contexts, objects, mappings, pinned bytes and memory files and
 * the claims are back at their baseline and the device attaches at once.
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

#include "base64.h"
#include "hostile.h"

#define DEVICE "0000:c1:00.3"
#define MAP_BYTES (64 * 1024)
#define MAP_IOVA 0x100000
#define DMA_AT 0x40  /* where in the memory the scenarios' DMA lands */

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
        int mem;         /* the memory the keeper maps (it inherits it), -1: none */
        ItestClient *own; /* a scenario's own client and device files, -1: none */
        int own_fds[2];
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

/*
 * AttachDevice with fd, an address space (dirty tracking: attached through a page table iommud
 * makes for it), the device in it, MAP_BYTES of mem mapped.
 */
static bool keeper_attach(ItestClient *c, int fd, int mem, bool dirty, uint64_t *ret_dev) {
        uint64_t ioas = 0, hwpt;
        bool ok;

        ok = call_ok(c, "org.iommud.Broker.AttachDevice",
                     itest_params("fd", hostile_u64(0), NULL), &fd, 1, ret_dev, "deviceId") &&
             call_ok(c, "org.iommud.Broker.CreateAddressSpace",
                     itest_params("dirtyTracking", json_object_new_boolean(dirty), NULL), NULL, 0,
                     &ioas, "ioasId") &&
             call_ok(c, "org.iommud.Broker.AttachToAddressSpace",
                     itest_params("deviceId", hostile_u64(*ret_dev), "ioasId", hostile_u64(ioas),
                                  NULL),
                     NULL, 0, &hwpt, "hwptId") &&
             call_ok(c, "org.iommud.Broker.Map",
                     itest_params("ioasId", hostile_u64(ioas), "memoryFd", hostile_u64(0),
                                  "offset", hostile_u64(0), "length", hostile_u64(MAP_BYTES),
                                  "iova", hostile_u64(MAP_IOVA), "readable",
                                  json_object_new_boolean(true), "writeable",
                                  json_object_new_boolean(true), NULL),
                     &mem, 1, NULL, NULL);
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
                case 'A':
                        ok = keeper_attach(c, fd, f->mem, what == 'A', &dev);
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

        f->mem = itest_memfd(MAP_BYTES);
        assert_true(f->mem >= 0);

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

/* Who GetTopology lists as holding DEVICE, into held ("" for nobody). */
static void topology_held_by(ItestClient *c, char *held, size_t size) {
        json_object *r = hostile_call(c, "org.iommud.Broker.GetTopology", NULL, NULL, 0);
        json_object *devs = r && !itest_reply_error(r)
                                    ? json_object_object_get(itest_reply_params(r), "devices")
                                    : NULL;

        snprintf(held, size, "%s", "");
        for (size_t i = 0; devs && i < json_object_array_length(devs); i++) {
                json_object *d = json_object_array_get_idx(devs, i);

                if (strcmp(itest_get_string(d, "name"), DEVICE) == 0)
                        snprintf(held, size, "%s", itest_get_string(d, "heldBy") ?: "");
        }
        json_object_put(r);
}

/* What is wrong with c's attach of the device with fd, against holder (0: none), or "". */
static void attach_verdict(ItestClient *c, int fd, pid_t holder, char *why, size_t size) {
        json_object *r = hostile_call(c, "org.iommud.Broker.AttachDevice",
                                      itest_params("fd", hostile_u64(0), NULL), &fd, 1);
        const char *e = itest_reply_error(r);
        char pid[32], held[256];

        why[0] = '\0';
        if (holder == 0 && e)
                snprintf(why, size, "the device is not free again: %s",
                         json_object_to_json_string(r));
        else if (holder > 0 && (!e || strcmp(e, "org.iommud.Broker.DeviceBusy") != 0 ||
                                itest_get_u64(itest_reply_params(r), "pid") != (uint64_t)holder))
                snprintf(why, size, "expected DeviceBusy naming pid %d: %s", (int)holder,
                         r ? json_object_to_json_string(r) : "(none)");
        json_object_put(r);
        if (why[0] || holder == 0)
                return;
        /* ... and GetTopology says who holds it. */
        snprintf(pid, sizeof(pid), "pid %d", (int)holder);
        topology_held_by(c, held, sizeof(held));
        if (!strstr(held, pid))
                snprintf(why, size, "GetTopology lists %s as held by '%s', not %s", DEVICE, held,
                         pid);
}

/* Another client's attach of the device with a fresh fd: DeviceBusy naming holder, or 0: ok. */
static void check_attach(const Fixture *f, pid_t holder) {
        ItestClient *c = connect_client(f);
        int fd = hostile_open_device(&f->daemon, f->cdev);
        char why[768] = "cannot open the device's node";

        if (fd >= 0)
                attach_verdict(c, fd, holder, why, sizeof(why));
        /* Before any failure: neither may outlive the scenario. */
        if (fd >= 0)
                close(fd);
        itest_client_free(c);
        if (why[0])
                fail_msg("%s", why);
}

/*
 * The simulated device writes text at MAP_IOVA + DMA_AT: true when that reached f->mem, false
 * when the IOMMU refused it as "blocked" (the device is attached to nothing) and the memory
 * kept what it held.  Any other answer fails the test.
 */
static bool dma_reaches(const Fixture *f, const char *text) {
        ItestClient *sim = connect_client(f);
        size_t n = strlen(text);
        char *coded = NULL, was[64] = "", now[64] = "", reply[512] = "(none)";
        json_object *r;
        bool ok, faulted = false, blocked = false;

        assert_true(n < sizeof(was));
        assert_int_equal(pread(f->mem, was, n, DMA_AT), (ssize_t)n);
        assert_int_equal(base64_encode(text, n, &coded), 0);
        r = hostile_call(sim, "org.iommud.Simulator.InjectDMA",
                         itest_params("device", json_object_new_string(DEVICE), "iova",
                                      hostile_u64(MAP_IOVA + DMA_AT), "write",
                                      json_object_new_boolean(true), "data",
                                      json_object_new_string(coded), NULL),
                         NULL, 0);
        free(coded);
        ok = r && !itest_reply_error(r);
        if (ok) {
                json_object *out = itest_reply_params(r);

                faulted = json_object_get_boolean(json_object_object_get(out, "faulted"));
                blocked = faulted &&
                          strcmp(itest_get_string(out, "faultReason") ?: "", "blocked") == 0;
        }
        if (r)
                snprintf(reply, sizeof(reply), "%s", json_object_to_json_string(r));
        json_object_put(r);
        /* Before any failure: the probe must not outlive the scenario. */
        itest_client_free(sim);
        if (!ok)
                fail_msg("InjectDMA failed: %s", reply);
        if (faulted && !blocked)
                fail_msg("the DMA faulted, but not as blocked: %s", reply);
        assert_int_equal(pread(f->mem, now, n, DMA_AT), (ssize_t)n);
        if (faulted)
                assert_memory_equal(now, was, n);
        else
                assert_memory_equal(now, text, n);
        return !faulted;
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

/*
 * DetachDevice, then the connection closed: the kept file keeps the device and nothing else,
 * not even the dirty-tracking page table iommud made for its address space.
 */
static void test_kept_after_detach_and_disconnect(void **state) {
        Fixture *f = *state;
        HostileSnapshot now;
        Keeper *k = keeper_start(f);

        keeper_do(k, 'A');
        assert_true(dma_reaches(f, "attached"));
        keeper_do(k, 'd');
        assert_false(dma_reaches(f, "detached"));
        check_attach(f, k->pid);
        keeper_do(k, 'c');
        wait_sessions(f, &now);
        /* Of the ended session only the binding is left: its context and the device in it. */
        assert_int_equal(now.contexts, f->base.contexts + 1);
        assert_int_equal(now.objects, f->base.objects + 1);
        assert_int_equal(now.mappings, f->base.mappings);
        assert_int_equal(now.pinned, f->base.pinned);
        assert_int_equal(now.memory_files, f->base.memory_files);
        assert_false(dma_reaches(f, "disconnected"));
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
        /* Never detached by the client: its session's end did it. */
        assert_int_equal(now.pinned, f->base.pinned);
        assert_false(dma_reaches(f, "handed over"));
        /* The keeper's session ends with its connection; its fd lives on in the heir. */
        check_attach(f, k->heir);
        keeper_stop(k);
        hostile_assert_at(&f->daemon, &f->base);
        check_attach(f, 0);
}

/* AttachDevice with fd: the reply, which the caller puts. */
static json_object *attach_with(ItestClient *c, int fd) {
        return hostile_call(c, "org.iommud.Broker.AttachDevice",
                            itest_params("fd", hostile_u64(0), NULL), &fd, 1);
}

/* DeviceBusy naming this process as the holder of the bound file, and nothing else. */
static void assert_busy_self(json_object *r) {
        const char *e = itest_reply_error(r), *held;
        char pid[32];

        if (!e || strcmp(e, "org.iommud.Broker.DeviceBusy") != 0)
                fail_msg("expected DeviceBusy naming this process: %s",
                         r ? json_object_to_json_string(r) : "(none)");
        snprintf(pid, sizeof(pid), "pid %d", (int)getpid());
        held = itest_get_string(itest_reply_params(r), "heldBy");
        assert_int_equal(itest_get_u64(itest_reply_params(r), "pid"), (uint64_t)getpid());
        if (!held || !strstr(held, pid) || !strstr(held, "the caller itself"))
                fail_msg("DeviceBusy does not say the caller holds the file: %s",
                         json_object_to_json_string(r));
        json_object_put(r);
}

/*
 * A client passes a file that is bound already (it kept it after DetachDevice), or a fresh one
 * while it keeps the bound one: DeviceBusy says the caller itself holds the bound file, not a
 * range error; once it closed the bound file, the fresh one attaches.
 */
static void test_own_bound_file(void **state) {
        Fixture *f = *state;
        int *fd = &f->own_fds[0], *fresh = &f->own_fds[1];
        uint64_t dev = 0;
        json_object *r;

        f->own = connect_client(f);
        *fd = hostile_open_device(&f->daemon, f->cdev);
        assert_true(*fd >= 0);
        r = attach_with(f->own, *fd);
        if (!r || itest_reply_error(r))
                fail_msg("AttachDevice failed: %s", r ? json_object_to_json_string(r) : "(none)");
        dev = itest_get_u64(itest_reply_params(r), "deviceId");
        json_object_put(r);
        assert_true(call_ok(f->own, "org.iommud.Broker.DetachDevice",
                            itest_params("deviceId", hostile_u64(dev), NULL), NULL, 0, NULL, NULL));
        assert_busy_self(attach_with(f->own, *fd));
        *fresh = hostile_open_device(&f->daemon, f->cdev);
        assert_true(*fresh >= 0);
        assert_busy_self(attach_with(f->own, *fresh));
        close(*fd);
        *fd = -1;
        r = attach_with(f->own, *fresh);
        if (!r || itest_reply_error(r))
                fail_msg("a fresh file after the bound one was closed: %s",
                         r ? json_object_to_json_string(r) : "(none)");
        json_object_put(r);
}

/* A Simulator hotplug call on DEVICE (RemoveDevice, AddDevice); fails the test on an error. */
static void hotplug(const Fixture *f, const char *method) {
        ItestClient *sim = connect_client(f);
        bool ok = call_ok(sim, method,
                          itest_params("device", json_object_new_string(DEVICE), NULL), NULL, 0,
                          NULL, NULL);

        itest_client_free(sim);
        if (!ok)
                fail_msg("%s of %s failed", method, DEVICE);
}

/*
 * The device leaves the host while the keeper holds its file and its connection: the session
 * drops the device and the address space only it used, so nothing of the session stays mapped
 * or pinned although the client never let go.  Back on the host, the device attaches once the
 * keeper is gone.
 */
static void test_kept_through_device_loss(void **state) {
        Fixture *f = *state;
        Keeper *k = keeper_start(f);
        HostileSnapshot now = {};
        int i;

        keeper_do(k, 'a');
        assert_true(dma_reaches(f, "before"));
        hotplug(f, "org.iommud.Simulator.RemoveDevice");
        for (i = 0; i < 2000; i++) {
                hostile_snapshot(&f->daemon, &now);
                if (now.pinned == f->base.pinned && now.mappings == f->base.mappings)
                        break;
                usleep(5000);
        }
        assert_int_equal(now.pinned, f->base.pinned);
        assert_int_equal(now.mappings, f->base.mappings);
        assert_int_equal(now.memory_files, f->base.memory_files);
        /* The keeper's connection is still open; its device, still in the model, is blocked. */
        assert_int_equal(now.connections, f->base.connections + 1);
        assert_false(dma_reaches(f, "removed"));
        hotplug(f, "org.iommud.Simulator.AddDevice");
        assert_false(dma_reaches(f, "added again"));
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
        f->mem = -1;
        f->own_fds[0] = f->own_fds[1] = -1;
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
        if (f->mem >= 0)
                close(f->mem);
        f->mem = -1;
        itest_client_free(f->own);
        f->own = NULL;
        for (size_t i = 0; i < 2; i++) {
                if (f->own_fds[i] >= 0)
                        close(f->own_fds[i]);
                f->own_fds[i] = -1;
        }
        hostile_assert_at(&f->daemon, &f->base);
        return 0;
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_teardown(test_kept_after_detach_and_disconnect,
                                          scenario_teardown),
                cmocka_unit_test_teardown(test_kept_and_handed_over, scenario_teardown),
                cmocka_unit_test_teardown(test_own_bound_file, scenario_teardown),
                cmocka_unit_test_teardown(test_kept_through_device_loss, scenario_teardown),
                cmocka_unit_test_teardown(test_refusals_cost_nothing, scenario_teardown),
        };

        signal(SIGPIPE, SIG_IGN);
        return cmocka_run_group_tests_name("hostile-teardown", tests, group_setup, group_teardown);
}
