/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * The bytes a Varlink server reads from a client: through the real
 * VarlinkReader, the call decoder and dispatch of VarlinkServer, on a real
 * socketpair in a libevent loop, with method handlers that read typed
 * parameters, take fds, stream, defer, fail and forget to reply.
 *
 * Input: 4 header bytes, then the stream.
 *   byte 0   configuration: bits 0-1 fds allowed per message (0, 1, 3, 16);
 *            bit 2 a 256-byte message limit (else 64 KiB); bit 3 a 512-byte
 *            output limit (else 1 MiB); bits 4-5 how often a write carries
 *            fds (never, 1 in 8, 1 in 2, always); bit 6 the client reads
 *            replies only when its writes would block (else after every write).
 *   bytes 1-3 seed of the generator that splits the stream into writes and
 *            picks how many fds each write carries.  Fd contents cannot be
 *            fuzzed; their number, and where they fall in the stream, is.
 * Seed corpus files are that header followed by NUL-terminated JSON calls.
 *
 * Checked after each input: the server ran on_disconnect() exactly once, and
 * no fd outlived the connection (the lowest free fd number is unchanged).
 */

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>
#include <json-c/json.h>

#include "varlink-broker-idl.h"
#include "fuzz.h"
#include "json-util.h"
#include "macros.h"
#include "varlink-server.h"

#define HEADER_SIZE 4
/* Loop iterations after the stream ended, enough to drain every reply of one input. */
#define DRAIN_ROUNDS 64

typedef struct Ctx {
        unsigned n_connect, n_disconnect;
        VarlinkCall *deferred;
} Ctx;

static const char fuzz_idl[] =
        "interface org.iommud.Fuzz\n"
        "type Range (start: int, last: int)\n"
        "method Echo(iova: ?int, pasid: ?int, readable: ?bool, device: ?string, range: ?Range,\n"
        "            ranges: ?[]Range) -> (iova: ?int)\n"
        "method TakeFd(memoryFd: int) -> (type: int)\n"
        "method Stream(n: int) -> (i: int)\n"
        "method Defer() -> ()\n"
        "method Fail() -> ()\n"
        "method Forget() -> ()\n"
        "method Bye() -> ()\n"
        "error InvalidFd (index: int)\n"
        "error SystemError (errno: int, message: string)\n";

static int m_echo(VarlinkCall *call, json_object *params, VarlinkCallFlags flags, void *userdata) {
        uint64_t iova = 0;
        uint32_t pasid = 0;
        bool readable = false;
        const char *device = NULL;
        json_object *range = NULL, *ranges = NULL, *reply;
        Error err = ERROR_INIT;
        int r;

        /* Every typed getter, in the order a real method reads its parameters. */
        if ((r = json_util_get_u64(params, "iova", JSON_UTIL_OPTIONAL, &iova, &err)) < 0 ||
            (r = json_util_get_u32(params, "pasid", JSON_UTIL_OPTIONAL, &pasid, &err)) < 0 ||
            (r = json_util_get_bool(params, "readable", JSON_UTIL_OPTIONAL, &readable, &err)) < 0 ||
            (r = json_util_get_string(params, "device", JSON_UTIL_OPTIONAL, &device, &err)) < 0 ||
            (r = json_util_get_object(params, "range", JSON_UTIL_OPTIONAL, &range, &err)) < 0 ||
            (r = json_util_get_array(params, "ranges", JSON_UTIL_OPTIONAL, &ranges, &err)) < 0) {
                error_clear(&err);
                return varlink_call_error_invalid_parameter(call, "iova");
        }
        if (range) {
                uint64_t start, last;

                if (json_util_get_u64(range, "start", 0, &start, &err) < 0 ||
                    json_util_get_u64(range, "last", 0, &last, &err) < 0) {
                        error_clear(&err);
                        return varlink_call_error_invalid_parameter(call, "range");
                }
        }
        for (size_t i = 0; ranges && i < json_object_array_length(ranges); i++) {
                uint64_t v;

                if (json_util_to_u64(json_object_array_get_idx(ranges, i), &v) < 0)
                        (void)json_util_type_phrase(json_object_array_get_idx(ranges, i));
        }
        reply = json_object_new_object();
        if (json_util_add(reply, "iova", json_object_new_uint64(iova)) < 0 ||
            (device && json_util_add(reply, "device", json_object_new_string(device)) < 0)) {
                json_object_put(reply);
                return -ENOMEM;
        }
        return varlink_call_reply(call, reply);
}

static int m_take_fd(VarlinkCall *call, json_object *params, VarlinkCallFlags flags, void *userdata) {
        _cleanup_close_ int fd = -EBADF;
        uint64_t index;
        struct stat st;
        json_object *p;

        if (json_util_get_u64(params, "memoryFd", 0, &index, NULL) < 0)
                return varlink_call_error_invalid_parameter(call, "memoryFd");
        if (varlink_call_take_fd(call, index, &fd) < 0) {
                p = json_object_new_object();
                json_util_add(p, "index", json_object_new_uint64(index));
                return varlink_call_error(call, "org.iommud.Fuzz.InvalidFd", p);
        }
        if (fstat(fd, &st) < 0)
                return -errno;
        p = json_object_new_object();
        json_util_add(p, "type", json_object_new_int((int)(st.st_mode & S_IFMT)));
        /* Reply with the fd once, so the reply-with-fds path runs too. */
        if (varlink_call_get_n_fds(call) > 1)
                return varlink_call_reply_with_fds(call, p, (int[]){ TAKE_FD(fd) }, 1);
        return varlink_call_reply(call, p);
}

static int m_stream(VarlinkCall *call, json_object *params, VarlinkCallFlags flags, void *userdata) {
        uint64_t n = 0;
        int r;

        if (!(flags & VARLINK_CALL_MORE))
                return varlink_call_error(call, VARLINK_ERROR_EXPECTED_MORE, NULL);
        if (json_util_get_u64(params, "n", 0, &n, NULL) < 0)
                return varlink_call_error_invalid_parameter(call, "n");
        for (uint64_t i = 0; i < MIN(n, (uint64_t)16); i++) {
                json_object *p = json_object_new_object();

                json_util_add(p, "i", json_object_new_uint64(i));
                r = varlink_call_reply_more(call, p);
                if (r < 0)
                        return r;
        }
        return varlink_call_reply(call, NULL);
}

static int m_defer(VarlinkCall *call, json_object *params, VarlinkCallFlags flags, void *userdata) {
        Ctx *ctx = userdata;

        if (ctx->deferred)
                return -EBUSY;
        ctx->deferred = varlink_call_ref(call);
        return 0;
}

static int m_fail(VarlinkCall *call, json_object *params, VarlinkCallFlags flags, void *userdata) {
        return -EINVAL;
}

static int m_forget(VarlinkCall *call, json_object *params, VarlinkCallFlags flags, void *userdata) {
        return 0;
}

static int m_bye(VarlinkCall *call, json_object *params, VarlinkCallFlags flags, void *userdata) {
        int r = varlink_call_reply(call, NULL);

        varlink_connection_close(varlink_call_get_connection(call));
        return r;
}

static const VarlinkMethod fuzz_methods[] = {
        { "Echo", m_echo },     { "TakeFd", m_take_fd }, { "Stream", m_stream }, { "Defer", m_defer },
        { "Fail", m_fail },     { "Forget", m_forget },  { "Bye", m_bye },       {},
};

static const VarlinkInterface fuzz_interface = {
        .name = "org.iommud.Fuzz",
        .description = fuzz_idl,
        .methods = fuzz_methods,
        .errno_error = "org.iommud.Fuzz.SystemError",
};

/* The broker's own description, for GetInterfaceDescription; its methods live elsewhere. */
static const VarlinkInterface broker_interface = {
        .name = BROKER_INTERFACE,
        .description = broker_idl,
};

static int on_connect(VarlinkServer *s, VarlinkConnection *c, const struct ucred *cred, int pidfd,
                      void *userdata) {
        Ctx *ctx = userdata;

        ctx->n_connect++;
        return 0;
}

static void on_disconnect(VarlinkServer *s, VarlinkConnection *c, void *userdata) {
        Ctx *ctx = userdata;

        ctx->n_disconnect++;
}

static uint32_t rnd(uint32_t *state) {
        /* xorshift32: deterministic from the seed in the input. */
        uint32_t x = *state;

        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        return *state = x;
}

static void drain(int fd) {
        char buf[65536];

        for (;;) {
                struct msghdr mh = { .msg_iov = &(struct iovec){ buf, sizeof(buf) }, .msg_iovlen = 1 };
                union {
                        struct cmsghdr align;
                        char buf[CMSG_SPACE(sizeof(int) * 16)];
                } control;
                ssize_t n;

                mh.msg_control = control.buf;
                mh.msg_controllen = sizeof(control.buf);
                n = recvmsg(fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
                if (n <= 0)
                        return;
                for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
                        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
                                size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
                                int fds[16];

                                memcpy(fds, CMSG_DATA(c), MIN(k, ELEMENTSOF(fds)) * sizeof(int));
                                for (size_t i = 0; i < MIN(k, ELEMENTSOF(fds)); i++)
                                        safe_close(fds[i]);
                        }
        }
}

/* One write of the client, with n_fds copies of fd attached. */
static ssize_t client_send(int sock, const uint8_t *p, size_t n, int fd, unsigned n_fds) {
        union {
                struct cmsghdr align;
                char buf[CMSG_SPACE(sizeof(int) * 32)];
        } control = {};
        struct msghdr mh = { .msg_iov = &(struct iovec){ (void *)p, n }, .msg_iovlen = 1 };

        if (n_fds > 0) {
                struct cmsghdr *c;

                mh.msg_control = control.buf;
                mh.msg_controllen = CMSG_SPACE(sizeof(int) * n_fds);
                c = CMSG_FIRSTHDR(&mh);
                c->cmsg_level = SOL_SOCKET;
                c->cmsg_type = SCM_RIGHTS;
                c->cmsg_len = CMSG_LEN(sizeof(int) * n_fds);
                for (unsigned i = 0; i < n_fds; i++)
                        memcpy(CMSG_DATA(c) + i * sizeof(int), &fd, sizeof(int));
        }
        return sendmsg(sock, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
}

static void pump(struct event_base *base, int client, bool read_replies) {
        for (unsigned i = 0; i < 2; i++)
                (void)event_base_loop(base, EVLOOP_NONBLOCK);
        if (read_replies)
                drain(client);
}

static void finish_deferred(Ctx *ctx) {
        if (!ctx->deferred)
                return;
        (void)varlink_call_reply(ctx->deferred, NULL);
        ctx->deferred = varlink_call_unref(ctx->deferred);
}

static int lowest_free_fd(void) {
        int fd = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 0);

        if (fd < 0)
                abort();
        close(fd);
        return fd;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static const unsigned fds_allowed[] = { 0, 1, 3, 16 };
        static const uint32_t fd_every[] = { 0, 8, 2, 1 };
        struct event_base *base;
        VarlinkServer *s;
        VarlinkLimits limits = VARLINK_LIMITS_DEFAULT;
        Ctx ctx = {};
        int sv[2], null_fd, fd_mark;
        uint32_t seed;
        uint8_t config;
        bool lazy_reader;

        if (size < HEADER_SIZE)
                return 0;
        config = data[0];
        seed = (uint32_t)data[1] << 16 | (uint32_t)data[2] << 8 | data[3];
        seed = seed * 2654435761u | 1; /* xorshift needs a nonzero state */
        data += HEADER_SIZE;
        size -= HEADER_SIZE;

        limits.max_fds_per_message = fds_allowed[config & 3];
        limits.max_message_bytes = (config & 4) ? 256 : 64 * 1024;
        limits.max_queued_output_bytes = (config & 8) ? 512 : 1024 * 1024;
        lazy_reader = config & 0x40;

        fd_mark = lowest_free_fd();
        base = event_base_new();
        if (!base || varlink_server_new(&s, base, &limits) < 0)
                abort();
        varlink_server_set_userdata(s, &ctx);
        varlink_server_set_hooks(s, on_connect, on_disconnect);
        if (varlink_server_add_interface(s, &fuzz_interface) < 0 ||
            varlink_server_add_interface(s, &broker_interface) < 0)
                abort();
        null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
        if (null_fd < 0 || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
                abort();
        if (fcntl(sv[1], F_SETFL, O_NONBLOCK) < 0 || varlink_server_add_connection(s, sv[0], NULL) < 0)
                abort();

        for (size_t pos = 0; pos < size && varlink_server_n_connections(s) > 0;) {
                uint32_t x = rnd(&seed);
                size_t n = 1 + (x & 0x100 ? (x >> 9) % 512 : (x >> 9) % 16);
                unsigned n_fds = 0;
                ssize_t k;

                n = MIN(n, size - pos);
                if (fd_every[(config >> 4) & 3] > 0 && rnd(&seed) % fd_every[(config >> 4) & 3] == 0)
                        /* Up to one more than allowed: the kernel truncates, the reader must notice. */
                        n_fds = rnd(&seed) % (limits.max_fds_per_message + 2);
                k = client_send(sv[1], data + pos, n, null_fd, MIN(n_fds, 32u));
                if (k < 0) {
                        if (errno != EAGAIN)
                                break; /* the server hung up on us */
                        /* The server is not reading (output over its limit): let it, and read. */
                        pump(base, sv[1], true);
                        finish_deferred(&ctx);
                        continue;
                }
                pos += (size_t)k;
                pump(base, sv[1], !lazy_reader);
                if (rnd(&seed) % 4 == 0)
                        finish_deferred(&ctx);
        }

        /* End of the stream: the server answers what it has, then hangs up. */
        (void)shutdown(sv[1], SHUT_WR);
        for (unsigned i = 0; i < DRAIN_ROUNDS && varlink_server_n_connections(s) > 0; i++) {
                finish_deferred(&ctx);
                pump(base, sv[1], true);
        }
        safe_close(sv[1]);
        pump(base, -EBADF, false);
        finish_deferred(&ctx);
        varlink_server_free(s);
        event_base_free(base);
        safe_close(null_fd);

        if (ctx.n_connect != 1 || ctx.n_disconnect != 1)
                abort();
        if (lowest_free_fd() != fd_mark)
                abort();
        return 0;
}
