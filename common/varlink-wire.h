/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Varlink framing, shared by the daemon and the client library: each message
 * is one JSON object followed by a NUL byte on a SOCK_STREAM Unix socket.
 *
 * File descriptors travel as SCM_RIGHTS and belong to the message they were
 * sent with, as in systemd: the sender passes them with the first byte of
 * their message, in a sendmsg() that carries that message and nothing after
 * it, and parameters refer to them by index.  The kernel never glues an skb
 * that carries fds in front of later data within one recvmsg(), so on the
 * receiving side the fds of a read belong to the last message that begins in
 * the bytes of that read.
 *
 * VarlinkReader does non-blocking recvmsg(MSG_CMSG_CLOEXEC) into a fixed
 * control buffer sized for the per-message fd limit and buffers at most one
 * maximal message: a longer one is an error before it is buffered whole.  A
 * buffer that grew past 16 KiB is freed as soon as it is empty.
 * VarlinkWriter is the send queue: bytes queued (for backpressure) and fds
 * attached to the message they go with.
 *
 * Errors (every one of them means "drop this peer"):
 *   -EMSGSIZE      a message is longer than the limit
 *   -ETOOMANYREFS  control data truncated (MSG_CTRUNC): more fds than allowed per message
 *   -EBADMSG       not JSON, not an object, trailing garbage, or fds in the middle of a message
 *   -ELOOP         JSON nested deeper than VARLINK_JSON_MAX_DEPTH
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "error.h"
#include "fdlist.h"
#include "macros.h"

#define VARLINK_JSON_MAX_DEPTH 64
/* The kernel's SCM_MAX_FD: no sendmsg() can carry more. */
#define VARLINK_FDS_MAX 253U

typedef struct VarlinkReader VarlinkReader;
typedef struct VarlinkWriter VarlinkWriter;

/* max_message_bytes excludes the NUL; max_fds is per message, at most VARLINK_FDS_MAX. */
int varlink_reader_new(VarlinkReader **ret, size_t max_message_bytes, unsigned max_fds);
VarlinkReader *varlink_reader_free(VarlinkReader *r);
DEFINE_TRIVIAL_CLEANUP_FUNC(VarlinkReader *, varlink_reader_free);

/*
 * varlink_reader_fill() - one non-blocking recvmsg() from fd into the buffer.
 *
 * Returns 1 when bytes arrived, 0 at end of stream, -EAGAIN when there was
 * nothing to read, or a negative errno (see above) with a sentence in err.
 */
int varlink_reader_fill(VarlinkReader *r, int fd, Error *err);

/*
 * varlink_reader_next() - takes the next complete message out of the buffer.
 *
 * Returns 1 and the parsed object (never NULL, always a JSON object) plus the
 * fds that came with it (NULL if none) in ret_fds; 0 when no complete
 * message is buffered; or a negative errno with a sentence in err.
 */
int varlink_reader_next(VarlinkReader *r, json_object **ret, FdList **ret_fds, Error *err);

/*
 * varlink_reader_next_text() - the same, without parsing: the message's bytes (no NUL
 * among them; they stay valid until the next call on the reader) and its fds.  For a
 * reader of its own (common/json-stream.h), with varlink_reader_parse() when that one
 * cannot judge the message.
 */
int varlink_reader_next_text(VarlinkReader *r, const char **ret_text, size_t *ret_len,
                             FdList **ret_fds, Error *err);
/* Parses a message's bytes as varlink_reader_next() does (same result, same errors). */
int varlink_reader_parse(VarlinkReader *r, const char *text, size_t len, json_object **ret,
                         Error *err);

/* True when a complete message (or a framing error) is buffered, i.e. _next() will not return 0. */
bool varlink_reader_has_message(VarlinkReader *r);
/*
 * Whether the last varlink_reader_fill() found the socket empty behind what it read: it left
 * room in the buffer and carried no fds (the kernel ends a read at fds, whatever follows).
 * Another read would most likely find nothing; a caller on a level-triggered poll may wait.
 */
bool varlink_reader_drained(const VarlinkReader *r);
/* Takes fds, which a message read by r carried and which are done with: closes them and keeps
 * the list for the fds of a later message (r may be NULL: then it is freed). */
void varlink_reader_recycle_fds(VarlinkReader *r, FdList *fds);
/* Bytes received and not yet taken out as messages. */
size_t varlink_reader_buffered(const VarlinkReader *r);

int varlink_writer_new(VarlinkWriter **ret);
VarlinkWriter *varlink_writer_free(VarlinkWriter *w);
DEFINE_TRIVIAL_CLEANUP_FUNC(VarlinkWriter *, varlink_writer_free);

/*
 * Building one message: varlink_writer_append() pieces of it, then
 * varlink_writer_end() adds the NUL and queues it with its fds (the writer
 * takes fds in every case), or varlink_writer_abort() drops the pieces.
 */
int varlink_writer_append(VarlinkWriter *w, const void *data, size_t n);
/* Appends n bytes for the caller to write at *ret (valid until the next call on w). */
int varlink_writer_extend(VarlinkWriter *w, size_t n, char **ret);
int varlink_writer_append_json(VarlinkWriter *w, json_object *o);
int varlink_writer_end(VarlinkWriter *w, FdList *fds);
void varlink_writer_abort(VarlinkWriter *w);
/*
 * Queues a whole message of n bytes without fds, its NUL added, in one step: the caller writes
 * exactly n bytes at *ret before its next call on w.  Not while a message is being built.
 * -ENOBUFS over the limit, as an append; nothing is queued on failure.
 */
int varlink_writer_message(VarlinkWriter *w, size_t n, char **ret);
/* The whole message in one go; takes fds in every case. */
int varlink_writer_enqueue(VarlinkWriter *w, json_object *message, FdList *fds);

/*
 * varlink_writer_flush() - sends queued messages with non-blocking sendmsg().
 *
 * Returns 1 when the queue is empty, 0 when the socket is full (wait for
 * EPOLLOUT and call again), or a negative errno (-EPIPE: the peer is gone).
 */
int varlink_writer_flush(VarlinkWriter *w, int fd);
/* Bytes queued and not yet sent, for backpressure. */
size_t varlink_writer_queued(const VarlinkWriter *w);
/*
 * The most bytes the writer holds, queued and being built (0: no limit, the default): an
 * append that would pass it fails with -ENOBUFS, and the buffer never grows beyond it.
 */
void varlink_writer_set_limit(VarlinkWriter *w, size_t limit);
/* Bytes the writer has allocated; a buffer above 16 KiB is freed when the queue empties. */
size_t varlink_writer_allocated(const VarlinkWriter *w);
