/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <dirent.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "fdlist.h"
#include "json-util.h"
#include "macros.h"
#include "varlink-wire.h"

typedef struct Pair {
        int a, b;
} Pair;

static int setup_pair(void **state) {
        Pair *p = calloc(1, sizeof(*p));
        int sv[2];

        assert_non_null(p);
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv), 0);
        p->a = sv[0];
        p->b = sv[1];
        *state = p;
        return 0;
}

static int teardown_pair(void **state) {
        Pair *p = *state;

        safe_close(p->a);
        safe_close(p->b);
        free(p);
        return 0;
}

static unsigned count_open_fds(void) {
        DIR *d = opendir("/proc/self/fd");
        struct dirent *de;
        unsigned n = 0;

        assert_non_null(d);
        while ((de = readdir(d)))
                if (de->d_name[0] != '.')
                        n++;
        closedir(d);
        return n;
}

static void send_raw(int fd, const char *data, size_t n, const int *fds, size_t n_fds) {
        union {
                struct cmsghdr align;
                char buf[CMSG_SPACE(sizeof(int) * 8)];
        } control = {};
        struct iovec iov = { .iov_base = (void *)data, .iov_len = n };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };

        if (n_fds > 0) {
                struct cmsghdr *c;

                assert_true(n_fds <= 8);
                mh.msg_control = control.buf;
                mh.msg_controllen = CMSG_SPACE(sizeof(int) * n_fds);
                c = CMSG_FIRSTHDR(&mh);
                c->cmsg_level = SOL_SOCKET;
                c->cmsg_type = SCM_RIGHTS;
                c->cmsg_len = CMSG_LEN(sizeof(int) * n_fds);
                memcpy(CMSG_DATA(c), fds, sizeof(int) * n_fds);
        }
        assert_int_equal(sendmsg(fd, &mh, MSG_NOSIGNAL), (ssize_t)n);
}

/* Reads until a message or an error; returns what varlink_reader_next/fill returned. */
static int read_one(VarlinkReader *r, int fd, json_object **ret, FdList **ret_fds) {
        for (;;) {
                int k = varlink_reader_next(r, ret, ret_fds, NULL);

                if (k != 0)
                        return k;
                k = varlink_reader_fill(r, fd, NULL);
                if (k == -EAGAIN)
                        return 0;
                if (k <= 0)
                        return k == 0 ? -ECONNRESET : k;
        }
}

static const char *member(json_object *o, const char *key) {
        json_object *v;

        assert_true(json_object_object_get_ex(o, key, &v));
        return json_object_get_string(v);
}

static void test_round_trip(void **state) {
        Pair *p = *state;
        _cleanup_(varlink_reader_freep) VarlinkReader *r = NULL;
        _cleanup_(varlink_writer_freep) VarlinkWriter *w = NULL;
        json_object *o = json_tokener_parse("{\"method\":\"a.b.C\",\"parameters\":{\"x\":\"a/b\"}}");
        json_object *got = NULL;
        FdList *fds = (FdList *)1;

        assert_int_equal(varlink_reader_new(&r, 4096, 4), 0);
        assert_int_equal(varlink_writer_new(&w), 0);
        assert_int_equal(varlink_writer_enqueue(w, o, NULL), 0);
        json_object_put(o);
        assert_true(varlink_writer_queued(w) > 0);
        assert_int_equal(varlink_writer_flush(w, p->a), 1);
        assert_int_equal(varlink_writer_queued(w), 0);

        assert_int_equal(read_one(r, p->b, &got, &fds), 1);
        assert_null(fds);
        assert_string_equal(member(got, "method"), "a.b.C");
        json_object_put(got);
        assert_int_equal(varlink_reader_buffered(r), 0);
        assert_int_equal(read_one(r, p->b, &got, &fds), 0);
}

static void test_split_frames(void **state) {
        Pair *p = *state;
        _cleanup_(varlink_reader_freep) VarlinkReader *r = NULL;
        const char msg[] = "{\"method\":\"x.y.Z\"}";
        json_object *got;
        FdList *fds;

        assert_int_equal(varlink_reader_new(&r, 4096, 4), 0);
        /* One byte at a time, including the terminating NUL last. */
        for (size_t i = 0; i < sizeof(msg); i++) {
                assert_int_equal(read_one(r, p->b, &got, &fds), 0);
                send_raw(p->a, msg + i, 1, NULL, 0);
        }
        assert_int_equal(read_one(r, p->b, &got, &fds), 1);
        assert_string_equal(member(got, "method"), "x.y.Z");
        json_object_put(got);
}

static void test_several_frames_in_one_read(void **state) {
        Pair *p = *state;
        _cleanup_(varlink_reader_freep) VarlinkReader *r = NULL;
        const char data[] = "{\"n\":\"1\"}\0{\"n\":\"2\"}\0 {\"n\":\"3\"} \0{\"n\":";
        json_object *got;
        FdList *fds;

        assert_int_equal(varlink_reader_new(&r, 4096, 4), 0);
        send_raw(p->a, data, sizeof(data) - 1, NULL, 0);
        assert_int_equal(varlink_reader_fill(r, p->b, NULL), 1);
        for (int i = 1; i <= 3; i++) {
                char want[2] = { (char)('0' + i), 0 };

                assert_int_equal(varlink_reader_next(r, &got, &fds, NULL), 1);
                assert_string_equal(member(got, "n"), want);
                json_object_put(got);
        }
        assert_int_equal(varlink_reader_next(r, &got, &fds, NULL), 0);
        send_raw(p->a, "\"4\"}", 5, NULL, 0);
        assert_int_equal(read_one(r, p->b, &got, &fds), 1);
        assert_string_equal(member(got, "n"), "4");
        json_object_put(got);
}

static bool same_file(int a, int b) {
        struct stat sa, sb;

        assert_int_equal(fstat(a, &sa), 0);
        assert_int_equal(fstat(b, &sb), 0);
        return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

static void test_fds_attach_to_their_message(void **state) {
        Pair *p = *state;
        _cleanup_(varlink_reader_freep) VarlinkReader *r = NULL;
        _cleanup_(varlink_writer_freep) VarlinkWriter *w = NULL;
        int pa[2], pb[2];
        /* Which message carries which of the four fds: A none, B two, C none, D one. */
        static const struct {
                const char *json;
                size_t n_fds;
        } msgs[] = {
                { "{\"m\":\"A\"}", 0 }, { "{\"m\":\"B\"}", 2 }, { "{\"m\":\"C\"}", 0 }, { "{\"m\":\"D\"}", 1 },
        };
        int originals[3];
        size_t next = 0;

        assert_int_equal(pipe2(pa, O_CLOEXEC), 0);
        assert_int_equal(pipe2(pb, O_CLOEXEC), 0);
        originals[0] = pa[0];
        originals[1] = pa[1];
        originals[2] = pb[0];

        assert_int_equal(varlink_reader_new(&r, 4096, 4), 0);
        assert_int_equal(varlink_writer_new(&w), 0);
        FOREACH_ARRAY(m, msgs, ELEMENTSOF(msgs)) {
                json_object *o = json_tokener_parse(m->json);
                FdList *l = NULL;

                if (m->n_fds > 0)
                        assert_int_equal(fdlist_new_dup(&l, originals + next, m->n_fds), 0);
                next += m->n_fds;
                assert_int_equal(varlink_writer_enqueue(w, o, l), 0);
                json_object_put(o);
        }
        assert_int_equal(varlink_writer_flush(w, p->a), 1);

        next = 0;
        FOREACH_ARRAY(m, msgs, ELEMENTSOF(msgs)) {
                _cleanup_(fdlist_freep) FdList *fds = NULL;
                json_object *got;
                char want[2] = { m->json[6], 0 };

                assert_int_equal(read_one(r, p->b, &got, &fds), 1);
                assert_string_equal(member(got, "m"), want);
                json_object_put(got);
                assert_int_equal(fdlist_count(fds), m->n_fds);
                for (size_t i = 0; i < m->n_fds; i++) {
                        int fd = fdlist_get(fds, i);

                        assert_true(fd >= 0);
                        assert_true(same_file(fd, originals[next + i]));
                        assert_int_equal(fcntl(fd, F_GETFD), FD_CLOEXEC);
                }
                next += m->n_fds;
        }
        for (int i = 0; i < 2; i++) {
                safe_close(pa[i]);
                safe_close(pb[i]);
        }
}

static void test_fds_go_to_the_last_message_begun_in_the_read(void **state) {
        Pair *p = *state;
        _cleanup_(varlink_reader_freep) VarlinkReader *r = NULL;
        _cleanup_(fdlist_freep) FdList *fds1 = NULL, *fds2 = NULL;
        json_object *got;
        int fd = dup(STDERR_FILENO);

        /* Plain bytes, then a second message with an fd: the kernel glues them into one read. */
        assert_int_equal(varlink_reader_new(&r, 4096, 4), 0);
        send_raw(p->a, "{\"m\":\"A\"}", 10, NULL, 0);
        send_raw(p->a, "{\"m\":\"B\"}", 10, &fd, 1);
        assert_int_equal(varlink_reader_fill(r, p->b, NULL), 1);
        assert_int_equal(varlink_reader_next(r, &got, &fds1, NULL), 1);
        assert_string_equal(member(got, "m"), "A");
        assert_null(fds1);
        json_object_put(got);
        assert_int_equal(varlink_reader_next(r, &got, &fds2, NULL), 1);
        assert_string_equal(member(got, "m"), "B");
        assert_int_equal(fdlist_count(fds2), 1);
        json_object_put(got);
        safe_close(fd);
}

static void test_fds_in_the_middle_of_a_message(void **state) {
        Pair *p = *state;
        _cleanup_(varlink_reader_freep) VarlinkReader *r = NULL;
        json_object *got;
        FdList *fds;
        unsigned before;
        int fd = dup(STDERR_FILENO);

        assert_int_equal(varlink_reader_new(&r, 4096, 4), 0);
        send_raw(p->a, "{\"m\":", 5, NULL, 0);
        assert_int_equal(varlink_reader_fill(r, p->b, NULL), 1);
        send_raw(p->a, "\"A\"}", 5, &fd, 1);
        safe_close(fd);
        before = count_open_fds();
        assert_int_equal(varlink_reader_fill(r, p->b, NULL), -EBADMSG);
        assert_int_equal(count_open_fds(), before);
        (void)got;
        (void)fds;
}

static void test_untaken_fds_are_closed(void **state) {
        Pair *p = *state;
        _cleanup_(varlink_reader_freep) VarlinkReader *r = NULL;
        FdList *fds = NULL;
        json_object *got;
        int sent[3], numbers[3], taken;

        for (int i = 0; i < 3; i++)
                sent[i] = dup(STDERR_FILENO);
        assert_int_equal(varlink_reader_new(&r, 4096, 4), 0);
        send_raw(p->a, "{}", 3, sent, 3);
        for (int i = 0; i < 3; i++)
                safe_close(sent[i]);
        assert_int_equal(read_one(r, p->b, &got, &fds), 1);
        json_object_put(got);
        assert_int_equal(fdlist_count(fds), 3);
        for (int i = 0; i < 3; i++) {
                numbers[i] = fdlist_get(fds, i);
                assert_true(fcntl(numbers[i], F_GETFD) >= 0);
        }
        taken = fdlist_take(fds, 1);
        assert_int_equal(taken, numbers[1]);
        assert_int_equal(fdlist_take(fds, 1), -EBADF);
        assert_int_equal(fdlist_get(fds, 3), -ENXIO);
        fdlist_free(fds);

        /* The two nobody took are closed; the taken one is ours. */
        assert_int_equal(fcntl(numbers[0], F_GETFD), -1);
        assert_int_equal(errno, EBADF);
        assert_int_equal(fcntl(numbers[2], F_GETFD), -1);
        assert_int_equal(fcntl(taken, F_GETFD), FD_CLOEXEC);
        safe_close(taken);
}

static void test_unread_fds_closed_with_reader(void **state) {
        Pair *p = *state;
        VarlinkReader *r = NULL;
        unsigned before;
        int fd = dup(STDERR_FILENO);

        before = count_open_fds();
        assert_int_equal(varlink_reader_new(&r, 4096, 4), 0);
        /* A message that never completes, with an fd: freeing the reader must close it. */
        send_raw(p->a, "{\"incomplete", 12, &fd, 1);
        assert_int_equal(varlink_reader_fill(r, p->b, NULL), 1);
        assert_int_equal(count_open_fds(), before + 1);
        varlink_reader_free(r);
        assert_int_equal(count_open_fds(), before);
        safe_close(fd);
}

static void test_ctrunc_is_an_error(void **state) {
        Pair *p = *state;
        _cleanup_(varlink_reader_freep) VarlinkReader *r = NULL;
        int sent[3];
        unsigned before;

        for (int i = 0; i < 3; i++)
                sent[i] = dup(STDERR_FILENO);
        assert_int_equal(varlink_reader_new(&r, 4096, 2), 0);
        send_raw(p->a, "{}", 3, sent, 3);
        for (int i = 0; i < 3; i++)
                safe_close(sent[i]);
        before = count_open_fds();
        Error err = ERROR_INIT;
        assert_int_equal(varlink_reader_fill(r, p->b, &err), -ETOOMANYREFS);
        assert_non_null(strstr(err.message, "more than 2 fds"));
        /* The two that did fit were closed, not leaked. */
        assert_int_equal(count_open_fds(), before);
}

static void test_no_fds_allowed(void **state) {
        Pair *p = *state;
        _cleanup_(varlink_reader_freep) VarlinkReader *r = NULL;
        int fd = dup(STDERR_FILENO);

        assert_int_equal(varlink_reader_new(&r, 4096, 0), 0);
        send_raw(p->a, "{}", 3, &fd, 1);
        safe_close(fd);
        assert_int_equal(varlink_reader_fill(r, p->b, NULL), -ETOOMANYREFS);
}

static void test_oversize(void **state) {
        Pair *p = *state;
        _cleanup_(varlink_reader_freep) VarlinkReader *r = NULL;
        char big[300];
        json_object *got;
        FdList *fds;
        int k = 0;
        Error err = ERROR_INIT;

        assert_int_equal(varlink_reader_new(&r, 100, 0), 0);
        /* Exactly at the limit is fine. */
        memset(big, ' ', sizeof(big));
        big[0] = '{';
        big[99] = '}';
        big[100] = '\0';
        send_raw(p->a, big, 101, NULL, 0);
        assert_int_equal(read_one(r, p->b, &got, &fds), 1);
        json_object_put(got);

        /* One byte over, never terminated: an error once the limit is passed, not at the end. */
        big[99] = big[100] = ' ';
        send_raw(p->a, big, sizeof(big), NULL, 0);
        for (int i = 0; i < 10 && k >= 0; i++) {
                k = varlink_reader_fill(r, p->b, &err);
                if (k > 0)
                        k = varlink_reader_next(r, &got, &fds, &err);
        }
        assert_int_equal(k, -EMSGSIZE);
        assert_true(varlink_reader_buffered(r) <= 101);
        assert_non_null(strstr(err.message, "limit of 100 bytes"));
}

static void test_bad_messages(void **state) {
        static const struct {
                const char *data;
                int error;
        } cases[] = {
                { "{abc}", -EBADMSG },          { "[1,2]", -EBADMSG },
                { "\"string\"", -EBADMSG },     { "{} x", -EBADMSG },
                { "{\"a\":", -EBADMSG },        { "", -EBADMSG },
                { "{\"a\":'single'}", -EBADMSG }, { "{} \n", 1 },
        };

        FOREACH_ARRAY(c, cases, ELEMENTSOF(cases)) {
                _cleanup_(varlink_reader_freep) VarlinkReader *r = NULL;
                json_object *got = NULL;
                FdList *fds;
                int sv[2], k;

                assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
                assert_int_equal(varlink_reader_new(&r, 4096, 0), 0);
                send_raw(sv[0], c->data, strlen(c->data) + 1, NULL, 0);
                k = read_one(r, sv[1], &got, &fds);
                if (k != c->error)
                        fail_msg("'%s': got %d, expected %d", c->data, k, c->error);
                json_object_put(got);
                safe_close(sv[0]);
                safe_close(sv[1]);
        }
}

static void nest(char *buf, int depth) {
        int n = 0;

        n += sprintf(buf + n, "{\"a\":");
        for (int i = 0; i < depth - 2; i++)
                buf[n++] = '[';
        buf[n++] = '1';
        for (int i = 0; i < depth - 2; i++)
                buf[n++] = ']';
        buf[n++] = '}';
        buf[n] = 0;
}

static void test_deep_nesting(void **state) {
        Pair *p = *state;
        _cleanup_(varlink_reader_freep) VarlinkReader *r = NULL;
        char buf[1024];
        json_object *got;
        FdList *fds;

        assert_int_equal(varlink_reader_new(&r, 4096, 0), 0);
        nest(buf, 32);
        send_raw(p->a, buf, strlen(buf) + 1, NULL, 0);
        assert_int_equal(read_one(r, p->b, &got, &fds), 1);
        json_object_put(got);
        nest(buf, 200);
        send_raw(p->a, buf, strlen(buf) + 1, NULL, 0);
        assert_int_equal(read_one(r, p->b, &got, &fds), -ELOOP);
}

static void test_eof(void **state) {
        Pair *p = *state;
        _cleanup_(varlink_reader_freep) VarlinkReader *r = NULL;

        assert_int_equal(varlink_reader_new(&r, 4096, 0), 0);
        assert_int_equal(varlink_reader_fill(r, p->b, NULL), -EAGAIN);
        p->a = safe_close(p->a);
        assert_int_equal(varlink_reader_fill(r, p->b, NULL), 0);
}

static void test_large_message_with_fds_partial_writes(void **state) {
        Pair *p = *state;
        _cleanup_(varlink_reader_freep) VarlinkReader *r = NULL;
        _cleanup_(varlink_writer_freep) VarlinkWriter *w = NULL;
        _cleanup_(fdlist_freep) FdList *got_fds = NULL;
        _cleanup_free_ char *payload = malloc(1024 * 1024);
        json_object *o, *got = NULL;
        FdList *l = NULL;
        int fd = dup(STDERR_FILENO), k;

        /* Larger than the socket buffer: several sendmsg() calls, fds with the first. */
        memset(payload, 'x', 1024 * 1024 - 1);
        payload[1024 * 1024 - 1] = 0;
        assert_int_equal(varlink_reader_new(&r, 2 * 1024 * 1024, 4), 0);
        assert_int_equal(varlink_writer_new(&w), 0);
        o = json_object_new_object();
        json_object_object_add(o, "p", json_object_new_string(payload));
        assert_int_equal(varlink_writer_enqueue(w, o, NULL), 0);
        assert_int_equal(fdlist_new(&l, &fd, 1), 0);
        assert_int_equal(varlink_writer_enqueue(w, o, l), 0);
        json_object_put(o);

        for (int rounds = 0, n = 0; n < 2; rounds++) {
                _cleanup_(fdlist_freep) FdList *fds = NULL;

                assert_true(rounds < 1000000);
                assert_true(varlink_writer_flush(w, p->a) >= 0);
                k = read_one(r, p->b, &got, &fds);
                assert_true(k >= 0);
                if (k == 0)
                        continue;
                if (++n == 1) {
                        /* The first one carries no fds, the second one exactly one. */
                        assert_null(fds);
                        json_object_put(got);
                        got = NULL;
                } else
                        got_fds = TAKE_PTR(fds);
        }
        assert_non_null(got);
        assert_int_equal(strlen(member(got, "p")), 1024 * 1024 - 1);
        assert_int_equal(fdlist_count(got_fds), 1);
        json_object_put(got);
        assert_int_equal(varlink_writer_queued(w), 0);
}

/* The writer never holds more than its limit, and gives a big buffer back once it is sent. */
static void test_writer_limit(void **state) {
        Pair *p = *state;
        _cleanup_(varlink_writer_freep) VarlinkWriter *w = NULL;
        static char chunk[8192];
        char sink[65536];
        unsigned n = 0;
        int r;

        memset(chunk, 'x', sizeof(chunk));
        assert_int_equal(varlink_writer_new(&w), 0);
        varlink_writer_set_limit(w, 40000);
        /* Whole messages until one does not fit: it is refused, not queued in part. */
        for (;;) {
                r = varlink_writer_append(w, chunk, sizeof(chunk));
                if (r < 0)
                        break;
                assert_int_equal(varlink_writer_end(w, NULL), 0);
                n++;
        }
        assert_int_equal(r, -ENOBUFS);
        varlink_writer_abort(w);
        assert_int_equal(n, 4);
        assert_int_equal(varlink_writer_queued(w), 4 * (sizeof(chunk) + 1));
        assert_true(varlink_writer_allocated(w) <= 40000);

        /* Sent and read: the 40000-byte buffer goes, the next message starts small. */
        assert_int_equal(varlink_writer_flush(w, p->a), 1);
        while (read(p->b, sink, sizeof(sink)) == (ssize_t)sizeof(sink))
                ;
        assert_int_equal(varlink_writer_queued(w), 0);
        assert_int_equal(varlink_writer_allocated(w), 0);
        assert_int_equal(varlink_writer_append(w, "{}", 2), 0);
        assert_int_equal(varlink_writer_end(w, NULL), 0);
        assert_true(varlink_writer_allocated(w) <= 16384);
}

/* A whole message queued in one step sits between the others, NUL and all, within the limit. */
static void test_writer_message(void **state) {
        static const char want[] = "{}\0{\"a\":1}\0{\"b\":2}";
        Pair *p = *state;
        _cleanup_(varlink_writer_freep) VarlinkWriter *w = NULL;
        char got[64];
        char *q;

        assert_int_equal(varlink_writer_new(&w), 0);
        varlink_writer_set_limit(w, 24);
        /* The first has no buffer yet to write into: it takes the growing path. */
        assert_int_equal(varlink_writer_message(w, 2, &q), 0);
        memcpy(q, "{}", 2);
        assert_int_equal(varlink_writer_queued(w), 3);
        assert_int_equal(varlink_writer_message(w, 7, &q), 0);
        memcpy(q, "{\"a\":1}", 7);
        /* 3 + 8 queued: 14 bytes more (13 and the NUL) would pass the limit of 24. */
        assert_int_equal(varlink_writer_message(w, 13, &q), -ENOBUFS);
        assert_int_equal(varlink_writer_queued(w), 11);
        assert_int_equal(varlink_writer_append(w, "{\"b\":2}", 7), 0);
        assert_int_equal(varlink_writer_end(w, NULL), 0);
        assert_int_equal(varlink_writer_flush(w, p->a), 1);
        assert_int_equal(read(p->b, got, sizeof(got)), (ssize_t)sizeof(want));
        assert_memory_equal(got, want, sizeof(want));
}

/* A message that brought fds with its first half: it is found whole, with them, after the rest. */
static void test_fds_with_a_message_read_in_two(void **state) {
        Pair *p = *state;
        _cleanup_(varlink_reader_freep) VarlinkReader *r = NULL;
        _cleanup_(fdlist_freep) FdList *fds1 = NULL, *fds2 = NULL;
        json_object *got;
        int fd = dup(STDERR_FILENO);

        assert_int_equal(varlink_reader_new(&r, 4096, 4), 0);
        send_raw(p->a, "{\"m\":", 5, &fd, 1);
        assert_int_equal(varlink_reader_fill(r, p->b, NULL), 1);
        assert_int_equal(varlink_reader_next(r, &got, &fds1, NULL), 0);
        assert_false(varlink_reader_has_message(r));
        send_raw(p->a, "\"A\"}\0{\"m\":\"B\"}", 15, NULL, 0);
        assert_int_equal(varlink_reader_fill(r, p->b, NULL), 1);
        assert_int_equal(varlink_reader_next(r, &got, &fds1, NULL), 1);
        assert_string_equal(member(got, "m"), "A");
        assert_int_equal(fdlist_count(fds1), 1);
        json_object_put(got);
        assert_int_equal(varlink_reader_next(r, &got, &fds2, NULL), 1);
        assert_string_equal(member(got, "m"), "B");
        assert_null(fds2);
        json_object_put(got);
        safe_close(fd);
}

/* A list kept for reuse holds the next fds in the same memory, and closes the ones before. */
static void test_fdlist_refill(void **state) {
        int a[2], b[3];
        FdList *l = NULL, *kept;

        (void)state;
        assert_int_equal(pipe2(a, O_CLOEXEC), 0);
        assert_int_equal(pipe2(b, O_CLOEXEC), 0);
        b[2] = dup(b[0]);
        assert_int_equal(fdlist_refill(&l, a, 2), 0);
        kept = l;
        assert_int_equal(fdlist_count(fdlist_recycle(l)), 0);
        assert_int_equal(fcntl(a[0], F_GETFD), -1); /* recycling closed them */
        assert_int_equal(fcntl(a[1], F_GETFD), -1);
        assert_int_equal(fdlist_refill(&l, b, 1), 0);
        assert_ptr_equal(l, kept);                  /* one fd fits where two were */
        assert_int_equal(fdlist_get(l, 0), b[0]);
        assert_int_equal(fdlist_refill(&l, b + 1, 2), 0);
        assert_int_equal(fcntl(b[0], F_GETFD), -1); /* the list's old fd went with the refill */
        assert_int_equal(fdlist_count(l), 2);
        assert_int_equal(fdlist_get(l, 1), b[2]);
        fdlist_free(l);
        assert_int_equal(fcntl(b[2], F_GETFD), -1);
}

static void test_json_util_u64(void **state) {
        static const struct {
                const char *json;
                int error;
                uint64_t value;
                const char *message;
        } cases[] = {
                { "{\"v\":0}", 0, 0, NULL },
                { "{\"v\":18446744073709551615}", 0, UINT64_MAX, NULL },
                { "{\"v\":9223372036854775808}", 0, 9223372036854775808ULL, NULL },
                { "{\"v\":-1}", -EINVAL, 0, "parameter 'v': expected an unsigned integer, got -1" },
                { "{\"v\":1.5}", -EINVAL, 0,
                  "parameter 'v': expected an unsigned integer, got a floating-point number" },
                { "{\"v\":\"7\"}", -EINVAL, 0, "parameter 'v': expected an unsigned integer, got a string" },
                { "{}", -ENOENT, 0, "parameter 'v' is missing" },
                { "{\"v\":null}", -ENOENT, 0, "parameter 'v' is missing" },
        };

        FOREACH_ARRAY(c, cases, ELEMENTSOF(cases)) {
                json_object *o = json_tokener_parse(c->json);
                Error err = ERROR_INIT;
                uint64_t v = 42;

                assert_non_null(o);
                assert_int_equal(json_util_get_u64(o, "v", 0, &v, &err), c->error);
                if (c->error == 0)
                        assert_true(v == c->value);
                else {
                        assert_int_equal(v, 42);
                        assert_string_equal(err.message, c->message);
                }
                json_object_put(o);
        }
}

static void test_json_util_other_getters(void **state) {
        json_object *o = json_tokener_parse(
                "{\"b\":true,\"s\":\"x\",\"big\":4294967296,\"small\":7,\"a\":[1],\"o\":{}}");
        Error err = ERROR_INIT;
        uint32_t u32 = 0;
        bool b = false;
        const char *s;
        json_object *v;

        assert_int_equal(json_util_get_bool(o, "b", 0, &b, NULL), 0);
        assert_true(b);
        assert_int_equal(json_util_get_string(o, "s", 0, &s, NULL), 0);
        assert_string_equal(s, "x");
        assert_int_equal(json_util_get_u32(o, "small", 0, &u32, NULL), 0);
        assert_int_equal(u32, 7);
        assert_int_equal(json_util_get_u32(o, "big", 0, &u32, &err), -EINVAL);
        assert_string_equal(err.message,
                            "parameter 'big': 4294967296 is larger than the maximum 4294967295");
        assert_int_equal(json_util_get_u32(o, "none", JSON_UTIL_OPTIONAL, &u32, NULL), 0);
        assert_int_equal(u32, 7);
        assert_int_equal(json_util_get_array(o, "a", 0, &v, NULL), 0);
        assert_int_equal(json_util_get_object(o, "o", 0, &v, NULL), 0);
        assert_int_equal(json_util_get_object(o, "a", 0, &v, &err), -EINVAL);
        assert_string_equal(err.message, "parameter 'a': expected an object, got an array");
        assert_int_equal(json_util_get_string(o, "b", 0, &s, &err), -EINVAL);
        assert_string_equal(err.message, "parameter 'b': expected a string, got a boolean");
        json_object_put(o);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_round_trip, setup_pair, teardown_pair),
                cmocka_unit_test_setup_teardown(test_split_frames, setup_pair, teardown_pair),
                cmocka_unit_test_setup_teardown(test_several_frames_in_one_read, setup_pair, teardown_pair),
                cmocka_unit_test_setup_teardown(test_fds_attach_to_their_message, setup_pair, teardown_pair),
                cmocka_unit_test_setup_teardown(test_fds_go_to_the_last_message_begun_in_the_read,
                                                setup_pair, teardown_pair),
                cmocka_unit_test_setup_teardown(test_fds_in_the_middle_of_a_message, setup_pair,
                                                teardown_pair),
                cmocka_unit_test_setup_teardown(test_untaken_fds_are_closed, setup_pair, teardown_pair),
                cmocka_unit_test_setup_teardown(test_unread_fds_closed_with_reader, setup_pair,
                                                teardown_pair),
                cmocka_unit_test_setup_teardown(test_ctrunc_is_an_error, setup_pair, teardown_pair),
                cmocka_unit_test_setup_teardown(test_no_fds_allowed, setup_pair, teardown_pair),
                cmocka_unit_test_setup_teardown(test_oversize, setup_pair, teardown_pair),
                cmocka_unit_test(test_bad_messages),
                cmocka_unit_test(test_fdlist_refill),
                cmocka_unit_test_setup_teardown(test_deep_nesting, setup_pair, teardown_pair),
                cmocka_unit_test_setup_teardown(test_eof, setup_pair, teardown_pair),
                cmocka_unit_test_setup_teardown(test_large_message_with_fds_partial_writes, setup_pair,
                                                teardown_pair),
                cmocka_unit_test_setup_teardown(test_writer_limit, setup_pair, teardown_pair),
                cmocka_unit_test_setup_teardown(test_writer_message, setup_pair, teardown_pair),
                cmocka_unit_test_setup_teardown(test_fds_with_a_message_read_in_two, setup_pair,
                                                teardown_pair),
                cmocka_unit_test(test_json_util_u64),
                cmocka_unit_test(test_json_util_other_getters),
        };

        return cmocka_run_group_tests_name("varlink-wire", tests, NULL, NULL);
}
