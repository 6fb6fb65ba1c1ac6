/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <json-c/json.h>

#include "assert-util.h"
#include "json-util.h"
#include "varlink-wire.h"

#define READER_INITIAL_SIZE 4096U
#define WRITER_INITIAL_SIZE 4096U
/*
 * Buffers larger than this are freed once they are empty: a connection that once took a big
 * message or queued a big reply does not keep the memory while it idles.
 */
#define BUFFER_KEEP_SIZE (16U * 1024U)

/* Fds that arrived with the message that begins at stream offset "offset". */
typedef struct FdBatch {
        uint64_t offset;
        FdList *fds;
} FdBatch;

struct VarlinkReader {
        size_t max_message_bytes;
        unsigned max_fds;

        char *data;
        size_t size;      /* allocated */
        size_t start;     /* first byte not yet taken out */
        size_t scanned;   /* bytes after start known to hold no NUL */
        size_t end;       /* one past the last byte received */
        uint64_t base;    /* stream offset of data[0] */

        FdBatch *batches;
        size_t n_batches;
        size_t size_batches;

        json_tokener *tokener;
        FdList *spare;    /* the fds of a finished message, kept for the next (empty) */
        bool drained;     /* the last read left room and carried no fds */
        size_t control_size;
        union {
                struct cmsghdr align;
                char buf[CMSG_SPACE(sizeof(int) * VARLINK_FDS_MAX)];
        } control;
};

int varlink_reader_new(VarlinkReader **ret, size_t max_message_bytes, unsigned max_fds) {
        _cleanup_(varlink_reader_freep) VarlinkReader *r = NULL;

        if (max_message_bytes == 0 || max_message_bytes >= SIZE_MAX / 2 || max_fds > VARLINK_FDS_MAX)
                return -EINVAL;

        r = calloc(1, sizeof(*r));
        if (!r)
                return -ENOMEM;
        r->max_message_bytes = max_message_bytes;
        r->max_fds = max_fds;
        /* Sized for exactly max_fds, so that one more makes the kernel set MSG_CTRUNC. */
        r->control_size = max_fds > 0 ? CMSG_SPACE(sizeof(int) * max_fds) : 0;
        r->tokener = json_tokener_new_ex(VARLINK_JSON_MAX_DEPTH);
        if (!r->tokener)
                return -ENOMEM;
        json_tokener_set_flags(r->tokener, JSON_TOKENER_STRICT);
        *ret = TAKE_PTR(r);
        return 0;
}

VarlinkReader *varlink_reader_free(VarlinkReader *r) {
        if (!r)
                return NULL;
        for (size_t i = 0; i < r->n_batches; i++)
                fdlist_free(r->batches[i].fds);
        free(r->batches);
        fdlist_free(r->spare);
        free(r->data);
        if (r->tokener)
                json_tokener_free(r->tokener);
        free(r);
        return NULL;
}

size_t varlink_reader_buffered(const VarlinkReader *r) {
        return r->end - r->start;
}

/* Makes room to receive: moves pending bytes to the front, grows up to one maximal message. */
static int reader_make_room(VarlinkReader *r, Error *err) {
        size_t cap = r->max_message_bytes + 1, want;
        char *p;

        if (r->start == r->end) {
                r->base += r->end;
                r->start = r->end = r->scanned = 0;
        }
        if (r->end < r->size)
                return 0;
        if (r->start > 0) {
                memmove(r->data, r->data + r->start, r->end - r->start);
                r->base += r->start;
                r->end -= r->start;
                r->start = 0;
                if (r->end < r->size)
                        return 0;
        }
        if (r->size >= cap)
                return error_set(err, -EMSGSIZE,
                                 "message is longer than the limit of %zu bytes",
                                 r->max_message_bytes);
        want = r->size == 0 ? MIN((size_t)READER_INITIAL_SIZE, cap) : MIN(r->size * 2, cap);
        p = realloc(r->data, want);
        if (!p)
                return -ENOMEM;
        r->data = p;
        r->size = want;
        return 0;
}

static int reader_add_batch(VarlinkReader *r, uint64_t offset, FdList *fds, Error *err) {
        if (r->n_batches > 0 && r->batches[r->n_batches - 1].offset >= offset) {
                fdlist_free(fds);
                return error_set(err, -EBADMSG, "two sets of fds arrived for one message");
        }
        if (r->n_batches == r->size_batches) {
                size_t n = MAX(r->size_batches * 2, (size_t)4);
                FdBatch *b = realloc(r->batches, n * sizeof(FdBatch));
                if (!b) {
                        fdlist_free(fds);
                        return -ENOMEM;
                }
                r->batches = b;
                r->size_batches = n;
        }
        r->batches[r->n_batches++] = (FdBatch){ .offset = offset, .fds = fds };
        return 0;
}

static void close_cmsg_fds(struct msghdr *mh) {
        for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c))
                if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
                        size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
                        int fds[VARLINK_FDS_MAX];

                        memcpy(fds, CMSG_DATA(c), MIN(n, (size_t)VARLINK_FDS_MAX) * sizeof(int));
                        for (size_t i = 0; i < n && i < VARLINK_FDS_MAX; i++)
                                safe_close(fds[i]);
                }
}

/* The fds of one read's control data in *ret (in the reader's spare list when they fit). */
static int reader_take_fds(VarlinkReader *r, struct msghdr *mh, FdList **ret) {
        int r2 = 0;

        for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
                size_t k;
                int buf[VARLINK_FDS_MAX];

                if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
                        continue;
                k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
                if (!*ret && k > 0) {
                        /* Straight from the control buffer, which is aligned for ints (its
                         * union holds a cmsghdr): the common case copies the fds once. */
                        *ret = TAKE_PTR(r->spare);
                        r2 = fdlist_refill(ret, (const int *)(const void *)CMSG_DATA(c), k);
                        if (r2 >= 0)
                                continue;
                }
                /* The kernel hands over one SCM_RIGHTS per read; anything else is odd. */
                memcpy(buf, CMSG_DATA(c), k * sizeof(int));
                for (size_t i = 0; i < k; i++)
                        safe_close(buf[i]);
                if (r2 < 0)
                        return r2;
        }
        return 0;
}

int varlink_reader_fill(VarlinkReader *r, int fd, Error *err) {
        struct iovec iov;
        struct msghdr mh = {
                .msg_iov = &iov,
                .msg_iovlen = 1,
                .msg_control = r->control_size > 0 ? r->control.buf : NULL,
                .msg_controllen = r->control_size,
        };
        _cleanup_(fdlist_freep) FdList *fds = NULL;
        size_t old_end;
        ssize_t n;
        int r2;

        r2 = reader_make_room(r, err);
        if (r2 < 0)
                return r2;

        iov = (struct iovec){ .iov_base = r->data + r->end, .iov_len = r->size - r->end };
        n = recvmsg(fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
        if (n < 0) {
                if (errno == EINTR)
                        return -EAGAIN;
                return negative_errno();
        }
        if (mh.msg_flags & MSG_CTRUNC) {
                close_cmsg_fds(&mh);
                return error_set(err, -ETOOMANYREFS,
                                 "control data truncated: more than %u fds sent with one message",
                                 r->max_fds);
        }

        r2 = reader_take_fds(r, &mh, &fds);
        if (r2 < 0)
                return r2;

        if (n == 0) {
                /* Fds with no bytes cannot belong to any message. */
                if (fds)
                        return error_set(err, -EBADMSG, "fds arrived without message bytes");
                return 0;
        }

        old_end = r->end;
        r->end += (size_t)n;
        /* A read with fds ends at them, whatever follows; one without that left room took
         * all there was. */
        r->drained = (size_t)n < iov.iov_len && !fds;

        if (fds) {
                /* The fds belong to the last message that begins in this read. */
                const char *q = n > 1 ? memrchr(r->data + old_end, 0, (size_t)n - 1) : NULL;
                size_t owner;

                if (q)
                        owner = (size_t)(q - r->data) + 1;
                else if (old_end == r->start || r->data[old_end - 1] == '\0')
                        owner = old_end;
                else
                        return error_set(err, -EBADMSG, "fds arrived in the middle of a message");
                /* One message read whole with its fds, the usual case: the search above saw
                 * that it holds no NUL before its last byte, and reader_scan() need not look. */
                if (!q && owner == r->start)
                        r->scanned = r->end - 1 - r->start;
                r2 = reader_add_batch(r, r->base + owner, TAKE_PTR(fds), err);
                if (r2 < 0)
                        return r2;
        }
        return 1;
}

/* Finds the end of the message at start; returns its length or -1 if it is incomplete. */
static ssize_t reader_scan(VarlinkReader *r) {
        const char *p;

        if (r->end - r->start == r->scanned)
                return -1;
        p = memchr(r->data + r->start + r->scanned, 0, r->end - r->start - r->scanned);
        if (!p) {
                r->scanned = r->end - r->start;
                return -1;
        }
        return p - (r->data + r->start);
}

bool varlink_reader_drained(const VarlinkReader *r) {
        return r->drained;
}

void varlink_reader_recycle_fds(VarlinkReader *r, FdList *fds) {
        if (r && !r->spare)
                r->spare = fdlist_recycle(fds);
        else
                fdlist_free(fds);
}

bool varlink_reader_has_message(VarlinkReader *r) {
        return reader_scan(r) >= 0 || r->end - r->start > r->max_message_bytes;
}

static int parse_message(VarlinkReader *r, const char *s, size_t len, json_object **ret, Error *err) {
        json_object *o;
        enum json_tokener_error e;
        size_t used;

        json_tokener_reset(r->tokener);
        o = json_tokener_parse_ex(r->tokener, s, (int)len);
        e = json_tokener_get_error(r->tokener);
        if (!o) {
                if (e == json_tokener_error_depth)
                        return error_set(err, -ELOOP, "JSON nested deeper than %d levels",
                                         VARLINK_JSON_MAX_DEPTH);
                if (e == json_tokener_continue)
                        return error_set(err, -EBADMSG, "message ends inside a JSON value");
                return error_set(err, -EBADMSG, "message is not valid JSON: %s",
                                 json_tokener_error_desc(e));
        }
        used = json_tokener_get_parse_end(r->tokener);
        for (size_t i = used; i < len; i++)
                if (!strchr(" \t\r\n", s[i])) {
                        json_object_put(o);
                        return error_set(err, -EBADMSG, "trailing data after the JSON value");
                }
        if (!json_object_is_type(o, json_type_object)) {
                json_type t = json_object_get_type(o);

                json_object_put(o);
                return error_set(err, -EBADMSG, "message is a JSON %s, expected an object",
                                 json_type_to_name(t));
        }
        if (json_util_fix_big_integers(o, s, used) < 0) {
                json_object_put(o);
                return error_set(err, -ENOMEM, "out of memory");
        }
        *ret = o;
        return 0;
}

/* A big buffer goes once empty, and once the message last taken out of it is done with. */
static void reader_release_if_empty(VarlinkReader *r) {
        if (r->start == r->end && r->size > BUFFER_KEEP_SIZE) {
                free(r->data);
                r->data = NULL;
                r->size = 0;
        }
}

int varlink_reader_next_text(VarlinkReader *r, const char **ret_text, size_t *ret_len,
                             FdList **ret_fds, Error *err) {
        FdList *fds = NULL;
        ssize_t len;
        uint64_t offset;

        reader_release_if_empty(r);
        len = reader_scan(r);
        if (len < 0) {
                if (r->end - r->start > r->max_message_bytes)
                        return error_set(err, -EMSGSIZE,
                                         "message is longer than the limit of %zu bytes",
                                         r->max_message_bytes);
                return 0;
        }
        if ((size_t)len > r->max_message_bytes)
                return error_set(err, -EMSGSIZE, "message of %zd bytes exceeds the limit of %zu",
                                 len, r->max_message_bytes);

        offset = r->base + r->start;
        if (r->n_batches > 0 && r->batches[0].offset < offset)
                return error_set(err, -EBADMSG, "fds arrived that belong to no message");
        if (r->n_batches > 0 && r->batches[0].offset == offset) {
                fds = r->batches[0].fds;
                memmove(r->batches, r->batches + 1, (r->n_batches - 1) * sizeof(FdBatch));
                r->n_batches--;
        }

        /* The bytes stay where they are until the next varlink_reader_fill(). */
        *ret_text = r->data + r->start;
        *ret_len = (size_t)len;
        r->start += (size_t)len + 1;
        r->scanned = 0;
        if (r->start == r->end) {
                r->base += r->end;
                r->start = r->end = 0;
        }
        *ret_fds = fds;
        return 1;
}

int varlink_reader_parse(VarlinkReader *r, const char *text, size_t len, json_object **ret,
                         Error *err) {
        assert_return(r && text && ret, -EINVAL);
        return parse_message(r, text, len, ret, err);
}

int varlink_reader_next(VarlinkReader *r, json_object **ret, FdList **ret_fds, Error *err) {
        const char *text;
        FdList *fds;
        size_t len;
        int k;

        k = varlink_reader_next_text(r, &text, &len, &fds, err);
        if (k <= 0)
                return k;
        k = parse_message(r, text, len, ret, err);
        reader_release_if_empty(r);
        if (k < 0) {
                fdlist_free(fds);
                return k;
        }
        *ret_fds = fds;
        return 1;
}

/* A queued message that carries fds: they go with its first byte. */
typedef struct FdMark {
        uint64_t offset;
        size_t length; /* including the NUL */
        FdList *fds;
} FdMark;

struct VarlinkWriter {
        char *data;
        size_t size;
        size_t head;      /* first byte not yet sent */
        size_t end;       /* one past the last byte of complete messages */
        size_t building;  /* end of the message being built, or 0 when none */
        bool in_message;
        uint64_t base;    /* stream offset of data[0] */
        size_t limit;     /* most bytes held, queued and being built */

        FdMark *marks;
        size_t n_marks;
        size_t size_marks;
};

int varlink_writer_new(VarlinkWriter **ret) {
        VarlinkWriter *w;

        w = calloc(1, sizeof(*w));
        if (!w)
                return -ENOMEM;
        w->limit = SIZE_MAX;
        *ret = w;
        return 0;
}

VarlinkWriter *varlink_writer_free(VarlinkWriter *w) {
        if (!w)
                return NULL;
        for (size_t i = 0; i < w->n_marks; i++)
                fdlist_free(w->marks[i].fds);
        free(w->marks);
        free(w->data);
        free(w);
        return NULL;
}

size_t varlink_writer_queued(const VarlinkWriter *w) {
        return w->end - w->head;
}

void varlink_writer_set_limit(VarlinkWriter *w, size_t limit) {
        w->limit = limit > 0 ? limit : SIZE_MAX;
}

size_t varlink_writer_allocated(const VarlinkWriter *w) {
        return w->size;
}

/* Moves the unsent bytes to the front of the buffer. */
static void writer_compact(VarlinkWriter *w) {
        if (w->head == 0)
                return;
        memmove(w->data, w->data + w->head, w->building - w->head);
        w->base += w->head;
        w->end -= w->head;
        w->building -= w->head;
        w->head = 0;
}

int varlink_writer_extend(VarlinkWriter *w, size_t n, char **ret) {
        size_t used, want;
        char *p;

        if (!w->in_message) {
                w->in_message = true;
                w->building = w->end;
        }
        used = w->building - w->head;
        /* What is unsent plus this piece may not pass the limit: the buffer never grows past it. */
        if (used > w->limit || n > w->limit - used)
                return -ENOBUFS;
        if (w->size - w->building < n)
                writer_compact(w);
        if (w->size - w->building < n) {
                /* Compacted: the unsent bytes start at 0, so used + n is what must fit. */
                want = MAX(used + n, MIN(MAX((size_t)WRITER_INITIAL_SIZE, w->size * 2), w->limit));
                p = realloc(w->data, want);
                if (!p)
                        return -ENOMEM;
                w->data = p;
                w->size = want;
        }
        *ret = w->data + w->building;
        w->building += n;
        return 0;
}

int varlink_writer_append(VarlinkWriter *w, const void *data, size_t n) {
        char *p;
        int r;

        r = varlink_writer_extend(w, n, &p);
        if (r < 0)
                return r;
        memcpy(p, data, n);
        return 0;
}

int varlink_writer_append_json(VarlinkWriter *w, json_object *o) {
        const char *s;
        size_t len;

        s = json_object_to_json_string_length(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE,
                                              &len);
        if (!s)
                return -ENOMEM;
        return varlink_writer_append(w, s, len);
}

void varlink_writer_abort(VarlinkWriter *w) {
        w->in_message = false;
        w->building = 0;
}

int varlink_writer_end(VarlinkWriter *w, FdList *fds) {
        _cleanup_(fdlist_freep) FdList *owned = fds;
        size_t start;
        int r;

        r = varlink_writer_append(w, "", 1);
        if (r < 0) {
                varlink_writer_abort(w);
                return r;
        }
        /* append() may have moved the buffer; the message starts where complete ones end. */
        start = w->end;
        if (fdlist_count(owned) > 0) {
                if (w->n_marks == w->size_marks) {
                        size_t n = MAX(w->size_marks * 2, (size_t)4);
                        FdMark *m = realloc(w->marks, n * sizeof(FdMark));
                        if (!m) {
                                varlink_writer_abort(w);
                                return -ENOMEM;
                        }
                        w->marks = m;
                        w->size_marks = n;
                }
                w->marks[w->n_marks++] = (FdMark){
                        .offset = w->base + start,
                        .length = w->building - start,
                        .fds = TAKE_PTR(owned),
                };
        }
        w->end = w->building;
        w->in_message = false;
        w->building = 0;
        return 0;
}

int varlink_writer_message(VarlinkWriter *w, size_t n, char **ret) {
        size_t used;
        char *p;
        int r;

        assert_return(w && ret && !w->in_message && n < SIZE_MAX, -EINVAL);
        used = w->end - w->head;
        if (used > w->limit || n + 1 > w->limit - used)
                return -ENOBUFS;
        if (w->size - w->end > n) {
                /* The common case: room behind the queue, nothing to move or grow. */
                p = w->data + w->end;
                w->end += n + 1;
        } else {
                r = varlink_writer_extend(w, n + 1, &p);
                if (r < 0) {
                        varlink_writer_abort(w);
                        return r;
                }
                w->end = w->building;
                w->in_message = false;
                w->building = 0;
        }
        p[n] = '\0';
        *ret = p;
        return 0;
}

int varlink_writer_enqueue(VarlinkWriter *w, json_object *message, FdList *fds) {
        int r;

        r = varlink_writer_append_json(w, message);
        if (r < 0) {
                fdlist_free(fds);
                varlink_writer_abort(w);
                return r;
        }
        return varlink_writer_end(w, fds);
}

int varlink_writer_flush(VarlinkWriter *w, int fd) {
        while (w->head < w->end) {
                union {
                        struct cmsghdr align;
                        char buf[CMSG_SPACE(sizeof(int) * VARLINK_FDS_MAX)];
                } control;
                struct iovec iov = { .iov_base = w->data + w->head };
                struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
                uint64_t pos = w->base + w->head;
                FdMark *m = w->n_marks > 0 ? &w->marks[0] : NULL;
                ssize_t n;

                if (m && m->offset == pos) {
                        /* The fds and exactly their message, so that they are not glued to the next. */
                        size_t k = fdlist_count(m->fds);
                        struct cmsghdr *c;

                        iov.iov_len = m->length;
                        mh.msg_control = control.buf;
                        mh.msg_controllen = CMSG_SPACE(sizeof(int) * k);
                        memset(control.buf, 0, mh.msg_controllen);
                        c = CMSG_FIRSTHDR(&mh);
                        c->cmsg_level = SOL_SOCKET;
                        c->cmsg_type = SCM_RIGHTS;
                        c->cmsg_len = CMSG_LEN(sizeof(int) * k);
                        memcpy(CMSG_DATA(c), fdlist_data(m->fds), sizeof(int) * k);
                } else
                        iov.iov_len = (m ? (size_t)(m->offset - w->base) : w->end) - w->head;

                n = sendmsg(fd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EAGAIN)
                                return 0;
                        return negative_errno();
                }
                if (m && m->offset == pos) {
                        /* The kernel took the fds with the first byte; the rest goes as plain bytes. */
                        fdlist_free(m->fds);
                        memmove(w->marks, w->marks + 1, (w->n_marks - 1) * sizeof(FdMark));
                        w->n_marks--;
                }
                w->head += (size_t)n;
        }
        if (!w->in_message) {
                w->base += w->head;
                w->head = w->end = 0;
                if (w->size > BUFFER_KEEP_SIZE) {
                        free(w->data);
                        w->data = NULL;
                        w->size = 0;
                }
        }
        return 1;
}
