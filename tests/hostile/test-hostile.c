/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Scripted adversaries against the real daemon: floods past the connection
 * limits, frames held half-sent, oversize and deeply nested messages, too
 * many fds, every kind of fd where a device or memory is expected, processes
 * racing for one IOMMU group and clients killed at random points.
 *
 * A bystander session (a device, an address space, a mapping) runs through
 * every scenario.  After each one the daemon must answer on a fresh
 * connection, be back at the fds, sessions, model objects and device claims
 * it had before, give new sessions zero usage, and the bystander must still
 * hold exactly what it held and still be served.
 */

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "hostile.h"

#define PAGE 4096
#define BYSTANDER_DEVICE "0000:c1:00.5"
#define BYSTANDER_IOVA 0x400000
#define BYSTANDER_BYTES (64 * 1024)
#define GROUP_A "0000:41:00.0"
#define GROUP_B "0000:41:00.1"

typedef struct Fixture {
        ItestDaemon daemon;
        ItestClient *bystander;
        int bystander_mem;
        uint64_t bystander_ioas;
        HostileSnapshot base;
        unsigned seed;
} Fixture;

#define assert_reply_ok(r)                                                                         \
        do {                                                                                       \
                if (itest_reply_error(r))                                                          \
                        fail_msg("unexpected error: %s", json_object_to_json_string(r));           \
        } while (0)

#define assert_reply_error(r, name)                                                                \
        do {                                                                                       \
                const char *_e = itest_reply_error(r);                                             \
                if (!_e || strcmp(_e, (name)) != 0)                                                \
                        fail_msg("expected %s, got %s", (name), json_object_to_json_string(r));    \
        } while (0)

static json_object *map_params(uint64_t ioas, uint64_t fd_index, uint64_t length, uint64_t iova) {
        return itest_params("ioasId", hostile_u64(ioas), "memoryFd", hostile_u64(fd_index),
                            "offset", hostile_u64(0), "length", hostile_u64(length), "iova",
                            hostile_u64(iova), "readable", json_object_new_boolean(true),
                            "writeable", json_object_new_boolean(true), NULL);
}

static void bystander_check(Fixture *f) {
        ItestClient *c = f->bystander;
        json_object *r;

        assert_int_equal(hostile_usage(c, "devices"), 1);
        assert_int_equal(hostile_usage(c, "addressSpaces"), 1);
        assert_int_equal(hostile_usage(c, "mappings"), 1);
        assert_int_equal(hostile_usage(c, "pinnedBytes"), BYSTANDER_BYTES);
        /* Still served, and its address space still holds its mapping where it was. */
        r = hostile_call(c, "org.iommud.Broker.Map",
                         map_params(f->bystander_ioas, 0, PAGE, BYSTANDER_IOVA), &f->bystander_mem,
                         1);
        assert_reply_error(r, "org.iommud.Broker.IOVAInUse");
        json_object_put(r);
        r = hostile_call(c, "org.iommud.Broker.Map",
                         map_params(f->bystander_ioas, 0, PAGE, 0x800000), &f->bystander_mem, 1);
        assert_reply_ok(r);
        json_object_put(r);
        r = hostile_call(c, "org.iommud.Broker.Unmap",
                         itest_params("ioasId", hostile_u64(f->bystander_ioas), "iova",
                                      hostile_u64(0x800000), "length", hostile_u64(PAGE), NULL),
                         NULL, 0);
        assert_reply_ok(r);
        json_object_put(r);
}

static int group_setup(void **state) {
        Fixture *f = calloc(1, sizeof(*f));
        json_object *r;
        const char *seed = getenv("HOSTILE_SEED");

        assert_non_null(f);
        f->seed = seed ? (unsigned)strtoul(seed, NULL, 0) : 0x10a1d;
        fprintf(stderr, "# hostile: seed %u (HOSTILE_SEED=%u reproduces this run)\n", f->seed,
                f->seed);
        hostile_start(&f->daemon, "server");

        assert_int_equal(itest_client_connect(&f->bystander, f->daemon.socket), 0);
        r = hostile_call(f->bystander, "org.iommud.Broker.AttachDevice",
                         itest_params("device", json_object_new_string(BYSTANDER_DEVICE), NULL),
                         NULL, 0);
        assert_reply_ok(r);
        {
                uint64_t dev = itest_get_u64(itest_reply_params(r), "deviceId");

                json_object_put(r);
                r = hostile_call(f->bystander, "org.iommud.Broker.CreateAddressSpace", NULL, NULL,
                                 0);
                assert_reply_ok(r);
                f->bystander_ioas = itest_get_u64(itest_reply_params(r), "ioasId");
                json_object_put(r);
                r = hostile_call(f->bystander, "org.iommud.Broker.AttachToAddressSpace",
                                 itest_params("deviceId", hostile_u64(dev), "ioasId",
                                              hostile_u64(f->bystander_ioas), NULL),
                                 NULL, 0);
                assert_reply_ok(r);
                json_object_put(r);
        }
        f->bystander_mem = itest_memfd(BYSTANDER_BYTES);
        assert_true(f->bystander_mem >= 0);
        r = hostile_call(f->bystander, "org.iommud.Broker.Map",
                         map_params(f->bystander_ioas, 0, BYSTANDER_BYTES, BYSTANDER_IOVA),
                         &f->bystander_mem, 1);
        assert_reply_ok(r);
        json_object_put(r);
        hostile_snapshot(&f->daemon, &f->base);
        assert_int_equal(f->base.connections, 1);
        assert_int_equal(f->base.contexts, 1);
        /* The bystander's device, address space and page table; its mapping, pinned. */
        assert_true(f->base.objects >= 3);
        assert_int_equal(f->base.mappings, 1);
        assert_int_equal(f->base.pinned, BYSTANDER_BYTES);
        assert_int_equal(f->base.memory_files, 1);
        {
                char b[700];

                hostile_snapshot_format(&f->base, b, sizeof(b));
                fprintf(stderr, "# hostile: baseline %s\n", b);
        }
        *state = f;
        return 0;
}

static int group_teardown(void **state) {
        Fixture *f = *state;

        if (!f)
                return 0;
        itest_client_free(f->bystander);
        close(f->bystander_mem);
        /* A clean exit status also means no sanitizer report and no leak in the daemon. */
        assert_int_equal(itest_daemon_stop(&f->daemon), 0);
        free(f);
        return 0;
}

/* After every scenario: back at baseline, and the bystander saw nothing. */
static int scenario_teardown(void **state) {
        Fixture *f = *state;

        hostile_assert_at(&f->daemon, &f->base);
        bystander_check(f);
        hostile_assert_at(&f->daemon, &f->base);
        return 0;
}

/* ---- helpers ------------------------------------------------------------------------------ */

static ItestClient *connect_client(const Fixture *f) {
        ItestClient *c;

        assert_int_equal(itest_client_connect(&c, f->daemon.socket), 0);
        return c;
}

/* Whether the daemon serves a new connection (true) or closed it at once (false). */
static bool served(ItestClient *c) {
        json_object *r = itest_call(c, "org.iommud.Broker.GetSession", NULL, NULL, 0);
        bool ok = r && !itest_reply_error(r);

        json_object_put(r);
        return ok;
}

static void assert_closed(ItestClient *c, const char *what) {
        if (!itest_client_is_closed(c))
                fail_msg("%s: the daemon kept the connection", what);
}

/* A slot freed by a close is usable once the daemon has seen the close: bounded retries. */
static ItestClient *connect_served_eventually(const Fixture *f) {
        for (int i = 0; i < 2000; i++) {
                ItestClient *c = connect_client(f);

                if (served(c))
                        return c;
                itest_client_free(c);
                usleep(5000);
        }
        fail_msg("the daemon never accepted a connection into a freed slot");
        return NULL;
}

/* ---- connection floods -------------------------------------------------------------------- */

/* Connections until one is refused (closed at once); returns how many were served. */
static size_t fill_connections(const Fixture *f, ItestClient **v, size_t max) {
        size_t n = 0;

        for (;;) {
                ItestClient *c = connect_client(f);

                if (!served(c)) {
                        itest_client_free(c);
                        return n;
                }
                if (n == max)
                        fail_msg("the daemon accepted more than %zu connections", max);
                v[n++] = c;
        }
}

static void test_flood_limits(void **state) {
        Fixture *f = *state;
        ItestClient *mine[HOSTILE_MAX_CONNECTIONS] = {}, *pending;
        int to_child[2], from_child[2], status;
        size_t n_mine;
        json_object *r;
        pid_t pid;
        char n_nobody;

        /* The grant's connection quota for this uid; the bystander holds one. */
        n_mine = fill_connections(f, mine, HOSTILE_MAX_CONNECTIONS);
        assert_int_equal(n_mine + 1, HOSTILE_SELF_CONNECTIONS);
        /* A freed slot is usable again. */
        itest_client_free(mine[--n_mine]);
        mine[n_mine++] = connect_served_eventually(f);
        while (n_mine > 0)
                itest_client_free(mine[--n_mine]);
        hostile_assert_at(&f->daemon, &f->base);

        if (getuid() != 0) {
                /* The per-uid and total limits need a second uid. */
                skip();
                return;
        }
        /* The transport's per-uid limit, hit by another user holding everything it may. */
        assert_int_equal(pipe2(to_child, O_CLOEXEC), 0);
        assert_int_equal(pipe2(from_child, O_CLOEXEC), 0);
        pid = itest_fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                ItestClient *v[HOSTILE_MAX_CONNECTIONS];
                size_t n;

                if (setgroups(0, NULL) < 0 || setgid(HOSTILE_NOBODY) < 0 ||
                    setuid(HOSTILE_NOBODY) < 0)
                        _exit(2);
                itest_die_with_parent();
                n = fill_connections(f, v, HOSTILE_MAX_CONNECTIONS - 1);
                hostile_write_byte(from_child[1], (char)n);
                (void)hostile_read_byte(to_child[0]);
                _exit(0);
        }
        close(to_child[0]);
        close(from_child[1]);
        n_nobody = hostile_read_byte(from_child[0]);
        assert_int_equal(n_nobody, HOSTILE_MAX_PER_UID);

        /* Fill the daemon to its total with this uid; the bystander is one of them. */
        n_mine = 0;
        while (1 + (size_t)n_nobody + n_mine < HOSTILE_MAX_CONNECTIONS) {
                mine[n_mine] = connect_client(f);
                assert_true(served(mine[n_mine]));
                n_mine++;
        }
        /* At the total the next client is told so at once, not left waiting in the backlog. */
        pending = connect_client(f);
        /* The daemon may have answered and closed before the call is sent: the reply stays. */
        (void)itest_client_send(pending, "org.iommud.Broker.GetSession", NULL, NULL, 0);
        assert_int_equal(itest_client_recv(pending, &r), 1);
        assert_string_equal(itest_reply_error(r), "org.iommud.Broker.QuotaExceeded");
        assert_string_equal(json_object_get_string(json_object_object_get(
                                    json_object_object_get(r, "parameters"), "resource")),
                            "connections");
        json_object_put(r);
        itest_client_free(pending);
        /* The other user leaves: a new client is served. */
        hostile_write_byte(to_child[1], 'x');
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        pending = connect_served_eventually(f);
        itest_client_free(pending);
        while (n_mine > 0)
                itest_client_free(mine[--n_mine]);
        close(to_child[1]);
        close(from_child[0]);
}

/* Connections that come and go in every rude way, hundreds of times. */
static void test_flood_churn(void **state) {
        Fixture *f = *state;
        static const char call[] = "{\"method\":\"org.iommud.Broker.GetTopology\"}";

        for (unsigned i = 0; i < 400; i++) {
                ItestClient *c = connect_client(f);

                switch (i % 5) {
                case 0: /* connect, say nothing, close */
                        break;
                case 1: /* ask, do not read the reply, close */
                        (void)hostile_send(c->fd, call, sizeof(call), NULL, 0);
                        break;
                case 2: /* half a call, close */
                        (void)hostile_send(c->fd, call, sizeof(call) / 2, NULL, 0);
                        break;
                case 3: /* ask, shut down the sending side, read the reply */
                        (void)hostile_send(c->fd, call, sizeof(call), NULL, 0);
                        shutdown(c->fd, SHUT_WR);
                        assert_closed(c, "half-closed client");
                        break;
                case 4: /* reset: linger 0 is not for Unix sockets, so close with unread input */
                        (void)hostile_send(c->fd, call, sizeof(call), NULL, 0);
                        (void)hostile_send(c->fd, call, sizeof(call), NULL, 0);
                        break;
                }
                itest_client_free(c);
        }
}

/* ---- frames ------------------------------------------------------------------------------- */

/* Clients that send half a call and hold it; some finish later, some die mid-frame. */
static void test_partial_frames(void **state) {
        Fixture *f = *state;
        static const char call[] = "{\"method\":\"org.iommud.Broker.GetSession\"}";
        const size_t cut = 17;
        ItestClient *c[8];
        int fds[3];

        for (size_t i = 0; i < 8; i++) {
                c[i] = connect_served_eventually(f);
                /* Fds travel with the first byte of their message. */
                for (size_t k = 0; k < 3; k++)
                        fds[k] = itest_memfd(PAGE);
                assert_int_equal(hostile_send(c[i]->fd, call, cut, fds, i % 2 ? 3 : 0), 0);
                for (size_t k = 0; k < 3; k++)
                        close(fds[k]);
        }
        /* Held frames cost nobody else anything. */
        bystander_check(f);
        /* Half of them finish their call byte by byte, and are answered. */
        for (size_t i = 0; i < 4; i++) {
                json_object *r;

                for (size_t k = cut; k < sizeof(call); k++)
                        assert_int_equal(hostile_send(c[i]->fd, call + k, 1, NULL, 0), 0);
                assert_int_equal(itest_client_recv(c[i], &r), 1);
                assert_reply_ok(r);
                json_object_put(r);
        }
        /* The other half go away mid-frame, two of them with fds in flight. */
        for (size_t i = 0; i < 8; i++)
                itest_client_free(c[i]);
}

/* A frame with padding of pad bytes in parameters, exactly total bytes long before the NUL. */
static char *padded_call(size_t total) {
        static const char head[] = "{\"method\":\"org.iommud.Broker.GetSession\","
                                   "\"parameters\":{\"pad\":\"";
        static const char tail[] = "\"}}";
        char *m = malloc(total + 1);

        assert_non_null(m);
        assert_true(total > sizeof(head) + sizeof(tail));
        memcpy(m, head, sizeof(head) - 1);
        memset(m + sizeof(head) - 1, 'x', total - (sizeof(head) - 1) - (sizeof(tail) - 1));
        memcpy(m + total - (sizeof(tail) - 1), tail, sizeof(tail) - 1);
        m[total] = '\0';
        return m;
}

/* org.iommud.Broker.AllowIOVAs takes at most this many ranges (the IDL says so). */
#define ALLOW_IOVAS_MAX 4096

/* {"method":"...AllowIOVAs","parameters":{"ioasId":ioas,"ranges":[n ranges a page apart]}}. */
static json_object *allow_iovas_params(uint64_t ioas, size_t n) {
        json_object *ranges = json_object_new_array();

        assert_non_null(ranges);
        for (size_t i = 0; i < n; i++) {
                json_object *r = json_object_new_object();

                assert_non_null(r);
                json_object_object_add(r, "start", hostile_u64(0x100000 + i * 0x2000));
                json_object_object_add(r, "last", hostile_u64(0x100000 + i * 0x2000 + 0xfff));
                json_object_array_add(ranges, r);
        }
        return itest_params("ioasId", hostile_u64(ioas), "ranges", ranges, NULL);
}

static void test_big_messages(void **state) {
        Fixture *f = *state;
        ItestClient *c;
        json_object *r;
        uint64_t ioas;
        char *m;

        /* Exactly the limit: parsed, and refused for its unknown member, not for its size. */
        c = connect_served_eventually(f);
        m = padded_call(HOSTILE_MAX_MESSAGE);
        assert_int_equal(hostile_send(c->fd, m, HOSTILE_MAX_MESSAGE + 1, NULL, 0), 0);
        free(m);
        assert_int_equal(itest_client_recv(c, &r), 1);
        assert_reply_error(r, "org.varlink.service.InvalidParameter");
        assert_string_equal(itest_get_string(itest_reply_params(r), "parameter"), "pad");
        json_object_put(r);
        assert_true(served(c));
        itest_client_free(c);

        /* One byte over: disconnected. */
        c = connect_served_eventually(f);
        m = padded_call(HOSTILE_MAX_MESSAGE + 1);
        (void)hostile_send(c->fd, m, HOSTILE_MAX_MESSAGE + 2, NULL, 0);
        free(m);
        assert_closed(c, "a message one byte over the limit");
        itest_client_free(c);

        /* Four limits' worth without a NUL: disconnected once the limit is passed. */
        c = connect_served_eventually(f);
        m = malloc(4 * HOSTILE_MAX_MESSAGE);
        assert_non_null(m);
        memset(m, '[', 4 * HOSTILE_MAX_MESSAGE);
        (void)hostile_send(c->fd, m, 4 * HOSTILE_MAX_MESSAGE, NULL, 0);
        free(m);
        assert_closed(c, "an endless frame");
        itest_client_free(c);

        /* The most ranges AllowIOVAs takes, and one more: refused, naming the parameter. */
        c = connect_served_eventually(f);
        r = hostile_call(c, "org.iommud.Broker.CreateAddressSpace", NULL, NULL, 0);
        assert_reply_ok(r);
        ioas = itest_get_u64(itest_reply_params(r), "ioasId");
        json_object_put(r);
        r = hostile_call(c, "org.iommud.Broker.AllowIOVAs",
                         allow_iovas_params(ioas, ALLOW_IOVAS_MAX), NULL, 0);
        assert_reply_ok(r);
        json_object_put(r);
        r = hostile_call(c, "org.iommud.Broker.AllowIOVAs",
                         allow_iovas_params(ioas, ALLOW_IOVAS_MAX + 1), NULL, 0);
        assert_reply_error(r, "org.varlink.service.InvalidParameter");
        assert_string_equal(itest_get_string(itest_reply_params(r), "parameter"), "ranges");
        json_object_put(r);
        assert_true(served(c));
        itest_client_free(c);
}

/* {"method":...,"parameters":{"deep":[[[...]]]}} nested depth levels in total. */
static char *nested_call(size_t depth) {
        static const char head[] = "{\"method\":\"org.iommud.Broker.GetSession\","
                                   "\"parameters\":{\"deep\":";
        size_t inner = depth - 2, n = sizeof(head) - 1 + 2 * inner + 2;
        char *m = malloc(n + 1);

        assert_non_null(m);
        memcpy(m, head, sizeof(head) - 1);
        memset(m + sizeof(head) - 1, '[', inner);
        memset(m + sizeof(head) - 1 + inner, ']', inner);
        memcpy(m + n - 2, "}}", 2);
        m[n] = '\0';
        return m;
}

static void test_deep_nesting(void **state) {
        Fixture *f = *state;
        static const size_t depths[] = { 32, 64, 65, 1000, 200000 };

        for (size_t i = 0; i < sizeof(depths) / sizeof(depths[0]); i++) {
                ItestClient *c = connect_served_eventually(f);
                char *m = nested_call(depths[i]);
                json_object *r;

                (void)hostile_send(c->fd, m, strlen(m) + 1, NULL, 0);
                free(m);
                if (depths[i] <= 64) {
                        /* Within the parser's depth: an ordinary unknown member. */
                        assert_int_equal(itest_client_recv(c, &r), 1);
                        assert_reply_error(r, "org.varlink.service.InvalidParameter");
                        assert_string_equal(itest_get_string(itest_reply_params(r), "parameter"),
                                            "deep");
                        json_object_put(r);
                } else
                        assert_closed(c, "nesting past the limit");
                itest_client_free(c);
        }
}

/* ---- fds ---------------------------------------------------------------------------------- */

static void test_many_fds(void **state) {
        Fixture *f = *state;
        static const char call[] = "{\"method\":\"org.iommud.Broker.GetSession\"}";
        static const size_t counts[] = { HOSTILE_MAX_FDS, HOSTILE_MAX_FDS + 1, 100, 253 };
        int fds[253];

        for (size_t k = 0; k < 253; k++) {
                fds[k] = itest_memfd(PAGE);
                assert_true(fds[k] >= 0);
        }
        for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++) {
                ItestClient *c = connect_served_eventually(f);
                json_object *r;

                assert_int_equal(hostile_send(c->fd, call, sizeof(call), fds, counts[i]), 0);
                if (counts[i] <= HOSTILE_MAX_FDS) {
                        /* A call that takes no fds: answered, and the fds are closed. */
                        assert_int_equal(itest_client_recv(c, &r), 1);
                        assert_reply_ok(r);
                        json_object_put(r);
                } else
                        assert_closed(c, "too many fds");
                itest_client_free(c);
        }
        for (size_t k = 0; k < 253; k++)
                close(fds[k]);
}

typedef enum FdKind {
        FD_PIPE,
        FD_SOCKETPAIR,
        FD_REGULAR,
        FD_DEV_NULL,
        FD_DIRECTORY,
        FD_O_PATH,
        FD_EVENTFD,
        FD_MEMFD,
        FD_MEMFD_READONLY,
        FD_DEVICE,
        _FD_KIND_MAX,
} FdKind;

static const char *const fd_kind_name[] = {
        [FD_PIPE] = "pipe",          [FD_SOCKETPAIR] = "socketpair",
        [FD_REGULAR] = "regular file", [FD_DEV_NULL] = "/dev/null",
        [FD_DIRECTORY] = "directory",  [FD_O_PATH] = "O_PATH",
        [FD_EVENTFD] = "eventfd",      [FD_MEMFD] = "memfd",
        [FD_MEMFD_READONLY] = "read-only memfd", [FD_DEVICE] = "VFIO device",
};

/* An fd of that kind; *extra gets a second fd to close (the other end), or -1. */
static int make_fd(const Fixture *f, FdKind kind, int *extra) {
        char path[512], cdev[64];
        int p[2], fd = -1;

        *extra = -1;
        switch (kind) {
        case FD_PIPE:
                assert_int_equal(pipe2(p, O_CLOEXEC), 0);
                *extra = p[1];
                return p[0];
        case FD_SOCKETPAIR:
                assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, p), 0);
                *extra = p[1];
                return p[0];
        case FD_REGULAR:
                /* Not on tmpfs: the build directory's file system. */
                snprintf(path, sizeof(path), "%s/hostile-regular",
                         getenv("IOMMUD_ITEST_SCRATCH") ?: ".");
                fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
                assert_true(fd >= 0);
                assert_int_equal(ftruncate(fd, 64 * 1024), 0);
                unlink(path);
                return fd;
        case FD_DEV_NULL:
                return open("/dev/null", O_RDWR | O_CLOEXEC);
        case FD_DIRECTORY:
                return open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        case FD_O_PATH:
                return open(f->daemon.dir, O_PATH | O_CLOEXEC);
        case FD_EVENTFD:
                return eventfd(0, EFD_CLOEXEC);
        case FD_MEMFD:
                return itest_memfd(64 * 1024);
        case FD_MEMFD_READONLY:
                *extra = itest_memfd(64 * 1024);
                snprintf(path, sizeof(path), "/proc/self/fd/%d", *extra);
                return open(path, O_RDONLY | O_CLOEXEC);
        case FD_DEVICE:
                assert_true(hostile_device_cdev(f->bystander, GROUP_A, cdev, sizeof(cdev)));
                return hostile_open_device(&f->daemon, cdev);
        default:
                abort();
        }
}

static void test_fd_kinds_as_device(void **state) {
        Fixture *f = *state;
        ItestClient *c = connect_served_eventually(f);
        json_object *r;
        int fd, extra, pair[2];

        for (FdKind k = 0; k < _FD_KIND_MAX; k++) {
                if (k == FD_DEVICE)
                        continue;
                fd = make_fd(f, k, &extra);
                assert_true(fd >= 0);
                r = hostile_call(c, "org.iommud.Broker.AttachDevice",
                                 itest_params("fd", hostile_u64(0), NULL), &fd, 1);
                if (!itest_reply_error(r) ||
                    strcmp(itest_reply_error(r), "org.iommud.Broker.InvalidFd") != 0)
                        fail_msg("a %s as a device: %s", fd_kind_name[k],
                                 json_object_to_json_string(r));
                assert_int_equal(itest_get_u64(itest_reply_params(r), "index"), 0);
                json_object_put(r);
                close(fd);
                if (extra >= 0)
                        close(extra);
        }

        /* An index past the fds sent, and no fds at all. */
        fd = make_fd(f, FD_DEVICE, &extra);
        r = hostile_call(c, "org.iommud.Broker.AttachDevice",
                         itest_params("fd", hostile_u64(1), NULL), &fd, 1);
        assert_reply_error(r, "org.varlink.service.InvalidParameter");
        assert_string_equal(itest_get_string(itest_reply_params(r), "parameter"), "fd");
        json_object_put(r);
        r = hostile_call(c, "org.iommud.Broker.AttachDevice",
                         itest_params("fd", hostile_u64(4294967295u), NULL), NULL, 0);
        assert_reply_error(r, "org.varlink.service.InvalidParameter");
        json_object_put(r);

        /* The same device fd twice in one message: index 1 is as good as index 0. */
        pair[0] = pair[1] = fd;
        r = hostile_call(c, "org.iommud.Broker.AttachDevice",
                         itest_params("fd", hostile_u64(1), NULL), pair, 2);
        assert_reply_ok(r);
        json_object_put(r);
        /* ... and again in the next call: the device is this session's already. */
        r = hostile_call(c, "org.iommud.Broker.AttachDevice",
                         itest_params("fd", hostile_u64(0), NULL), pair, 2);
        assert_reply_error(r, "org.iommud.Broker.DeviceBusy");
        json_object_put(r);
        assert_int_equal(hostile_usage(c, "devices"), 1);
        close(fd);
        itest_client_free(c);
}

static void test_fd_kinds_as_memory(void **state) {
        Fixture *f = *state;
        ItestClient *c = connect_served_eventually(f);
        uint64_t ioas;
        json_object *r;
        int fd, extra, pair[2];

        r = hostile_call(c, "org.iommud.Broker.CreateAddressSpace", NULL, NULL, 0);
        assert_reply_ok(r);
        ioas = itest_get_u64(itest_reply_params(r), "ioasId");
        json_object_put(r);

        for (FdKind k = 0; k < _FD_KIND_MAX; k++) {
                if (k == FD_MEMFD)
                        continue;
                fd = make_fd(f, k, &extra);
                assert_true(fd >= 0);
                r = hostile_call(c, "org.iommud.Broker.Map", map_params(ioas, 0, PAGE, 0x100000),
                                 &fd, 1);
                if (!itest_reply_error(r) ||
                    strcmp(itest_reply_error(r), "org.iommud.Broker.InvalidFd") != 0)
                        fail_msg("a %s as memory: %s", fd_kind_name[k],
                                 json_object_to_json_string(r));
                json_object_put(r);
                close(fd);
                if (extra >= 0)
                        close(extra);
        }
        assert_int_equal(hostile_usage(c, "mappings"), 0);
        assert_int_equal(hostile_usage(c, "pinnedBytes"), 0);

        fd = make_fd(f, FD_MEMFD, &extra);
        r = hostile_call(c, "org.iommud.Broker.Map", map_params(ioas, 2, PAGE, 0x100000), &fd, 1);
        assert_reply_error(r, "org.varlink.service.InvalidParameter");
        assert_string_equal(itest_get_string(itest_reply_params(r), "parameter"), "memoryFd");
        json_object_put(r);
        /* One memfd twice in a message, mapped through its second index. */
        pair[0] = pair[1] = fd;
        r = hostile_call(c, "org.iommud.Broker.Map", map_params(ioas, 1, PAGE, 0x100000), pair, 2);
        assert_reply_ok(r);
        json_object_put(r);
        /* The fd member twice: whichever one the parser keeps, the call is answered. */
        {
                char m[512];
                const char *e;

                snprintf(m, sizeof(m),
                         "{\"method\":\"org.iommud.Broker.Map\",\"parameters\":{\"ioasId\":%llu,"
                         "\"memoryFd\":7,\"memoryFd\":0,\"offset\":0,\"length\":4096,"
                         "\"iova\":1048576,\"readable\":true,\"writeable\":true}}",
                         (unsigned long long)ioas);
                assert_int_equal(hostile_send(c->fd, m, strlen(m) + 1, pair, 2), 0);
                assert_int_equal(itest_client_recv(c, &r), 1);
                e = itest_reply_error(r);
                if (!e || (strcmp(e, "org.iommud.Broker.IOVAInUse") != 0 &&
                           strcmp(e, "org.varlink.service.InvalidParameter") != 0))
                        fail_msg("a duplicated fd member: %s", json_object_to_json_string(r));
                json_object_put(r);
        }
        assert_int_equal(hostile_usage(c, "mappings"), 1);
        assert_int_equal(hostile_usage(c, "pinnedBytes"), PAGE);
        close(fd);
        itest_client_free(c);
}

/* ---- races and deaths --------------------------------------------------------------------- */

typedef enum RaceResult {
        RACE_WON = 'w',
        RACE_BUSY = 'b',
        RACE_OTHER = 'o',
} RaceResult;

/*
 * Processes race to attach the two devices of one IOMMU group.  Exactly one
 * wins each round, however the previous winner left: detach, exit, SIGKILL.
 */
static void test_group_race(void **state) {
        Fixture *f = *state;
        enum { ROUNDS = 12, RACERS = 6 };
        char cdev[2][64];

        assert_true(hostile_device_cdev(f->bystander, GROUP_A, cdev[0], sizeof(cdev[0])));
        assert_true(hostile_device_cdev(f->bystander, GROUP_B, cdev[1], sizeof(cdev[1])));
        for (unsigned round = 0; round < ROUNDS; round++) {
                int go[2], results[2], release[RACERS][2];
                pid_t pids[RACERS];
                int status;

                assert_int_equal(pipe2(go, O_CLOEXEC), 0);
                assert_int_equal(pipe2(results, O_CLOEXEC), 0);
                for (int i = 0; i < RACERS; i++) {
                        assert_int_equal(pipe2(release[i], O_CLOEXEC), 0);
                        pids[i] = itest_fork();
                        assert_true(pids[i] >= 0);
                        if (pids[i] == 0) {
                                ItestClient *c;
                                json_object *r;
                                int fd = hostile_open_device(&f->daemon, cdev[i % 2]);
                                char verdict, how;

                                if (fd < 0 || itest_client_connect(&c, f->daemon.socket) < 0)
                                        _exit(3);
                                /* Connected and ready: all attach at once. */
                                (void)hostile_read_byte(go[0]);
                                r = itest_call(c, "org.iommud.Broker.AttachDevice",
                                               itest_params("fd", hostile_u64(0), NULL), &fd, 1);
                                verdict = !r                         ? RACE_OTHER
                                          : !itest_reply_error(r)    ? RACE_WON
                                          : strcmp(itest_reply_error(r),
                                                   "org.iommud.Broker.DeviceBusy") == 0
                                                  ? RACE_BUSY
                                                  : RACE_OTHER;
                                hostile_write_byte(results[1], verdict);
                                how = hostile_read_byte(release[i][0]);
                                if (how == 'd' && verdict == RACE_WON) {
                                        uint64_t id = itest_get_u64(itest_reply_params(r),
                                                                    "deviceId");

                                        json_object_put(itest_call(
                                                c, "org.iommud.Broker.DetachDevice",
                                                itest_params("deviceId", hostile_u64(id), NULL),
                                                NULL, 0));
                                }
                                _exit(0);
                        }
                        close(release[i][0]);
                }
                close(go[0]);
                close(results[1]);
                for (int i = 0; i < RACERS; i++)
                        hostile_write_byte(go[1], 'g');
                {
                        unsigned won = 0, busy = 0;

                        for (int i = 0; i < RACERS; i++) {
                                char v = hostile_read_byte(results[0]);

                                won += v == RACE_WON;
                                busy += v == RACE_BUSY;
                        }
                        if (won != 1 || busy != RACERS - 1)
                                fail_msg("round %u: %u winner(s), %u busy, of %d", round, won,
                                         busy, RACERS);
                }
                /* Losers go; the winner leaves by detach, by exit or by SIGKILL. */
                for (int i = 0; i < RACERS; i++) {
                        if (round % 3 == 2) {
                                kill(pids[i], SIGKILL);
                                close(release[i][1]);
                        } else {
                                hostile_write_byte(release[i][1], round % 3 == 0 ? 'd' : 'x');
                                close(release[i][1]);
                        }
                        assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
                }
                close(go[1]);
                close(results[0]);
        }
}

static uint32_t next_rand(uint32_t *state) {
        /* xorshift32: the sequence only depends on the logged seed. */
        uint32_t x = *state ?: 1;

        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        *state = x;
        return x;
}

/* A client doing random work forever, valid and not, until it is killed. */
static _Noreturn void busy_client(const Fixture *f, uint32_t seed) {
        static const char *const devices[] = { "0000:c1:00.2", "0000:c1:00.3", "0000:c1:00.4",
                                               GROUP_A, GROUP_B };
        uint64_t dev = 0, ioas = 0;
        ItestClient *c;
        int mem = itest_memfd(1024 * 1024);

        if (mem < 0 || itest_client_connect(&c, f->daemon.socket) < 0)
                _exit(3);
        for (;;) {
                uint32_t op = next_rand(&seed) % 8;
                json_object *r = NULL;

                switch (op) {
                case 0:
                        r = itest_call(c, "org.iommud.Broker.AttachDevice",
                                       itest_params("device",
                                                    json_object_new_string(
                                                            devices[next_rand(&seed) % 5]),
                                                    NULL),
                                       NULL, 0);
                        if (r && !itest_reply_error(r))
                                dev = itest_get_u64(itest_reply_params(r), "deviceId");
                        break;
                case 1:
                        r = itest_call(c, "org.iommud.Broker.CreateAddressSpace", NULL, NULL, 0);
                        if (r && !itest_reply_error(r))
                                ioas = itest_get_u64(itest_reply_params(r), "ioasId");
                        break;
                case 2:
                        r = itest_call(c, "org.iommud.Broker.AttachToAddressSpace",
                                       itest_params("deviceId", hostile_u64(dev), "ioasId",
                                                    hostile_u64(ioas), NULL),
                                       NULL, 0);
                        break;
                case 3:
                case 4:
                        r = itest_call(c, "org.iommud.Broker.Map",
                                       map_params(ioas, 0, PAGE * (1 + next_rand(&seed) % 16),
                                                  0x100000 + PAGE * (next_rand(&seed) % 256)),
                                       &mem, 1);
                        break;
                case 5:
                        r = itest_call(c, "org.iommud.Broker.Unmap",
                                       itest_params("ioasId", hostile_u64(ioas), "iova",
                                                    hostile_u64(0), "length",
                                                    hostile_u64(UINT64_MAX), NULL),
                                       NULL, 0);
                        break;
                case 6:
                        /* Half a frame with an fd riding on it. */
                        (void)hostile_send(c->fd, "{\"method\":\"org.iommud.Bro", 24, &mem, 1);
                        pause();
                        break;
                default:
                        r = itest_call(c, "org.iommud.Broker.DetachDevice",
                                       itest_params("deviceId", hostile_u64(dev), NULL), NULL, 0);
                        break;
                }
                json_object_put(r);
        }
}

/* Clients die with SIGKILL wherever they happen to be; the daemon releases all they held. */
static void test_sigkill_random(void **state) {
        Fixture *f = *state;
        enum { CLIENTS = 6, KILLS = 40 };
        uint32_t rnd = f->seed;
        pid_t pids[CLIENTS];
        int status;

        for (int i = 0; i < CLIENTS; i++) {
                pids[i] = itest_fork();
                assert_true(pids[i] >= 0);
                if (pids[i] == 0)
                        busy_client(f, f->seed + (uint32_t)i + 1);
        }
        for (int k = 0; k < KILLS; k++) {
                int i = (int)(next_rand(&rnd) % CLIENTS);

                usleep(next_rand(&rnd) % 20000);
                kill(pids[i], SIGKILL);
                assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
                if (!WIFSIGNALED(status))
                        fail_msg("client %d ended with status 0x%x before it was killed", i,
                                 status);
                pids[i] = itest_fork();
                assert_true(pids[i] >= 0);
                if (pids[i] == 0)
                        busy_client(f, f->seed + 1000u * (uint32_t)(k + 1) + (uint32_t)i);
                /* The bystander is served throughout. */
                if (k % 10 == 0)
                        bystander_check(f);
        }
        for (int i = 0; i < CLIENTS; i++) {
                kill(pids[i], SIGKILL);
                assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
        }
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_teardown(test_flood_limits, scenario_teardown),
                cmocka_unit_test_teardown(test_flood_churn, scenario_teardown),
                cmocka_unit_test_teardown(test_partial_frames, scenario_teardown),
                cmocka_unit_test_teardown(test_big_messages, scenario_teardown),
                cmocka_unit_test_teardown(test_deep_nesting, scenario_teardown),
                cmocka_unit_test_teardown(test_many_fds, scenario_teardown),
                cmocka_unit_test_teardown(test_fd_kinds_as_device, scenario_teardown),
                cmocka_unit_test_teardown(test_fd_kinds_as_memory, scenario_teardown),
                cmocka_unit_test_teardown(test_group_race, scenario_teardown),
                cmocka_unit_test_teardown(test_sigkill_random, scenario_teardown),
        };

        signal(SIGPIPE, SIG_IGN);
        return cmocka_run_group_tests_name("hostile", tests, group_setup, group_teardown);
}
