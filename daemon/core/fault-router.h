/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The fault router: reads the I/O page-fault queues of every session from the
 * event loop, hands each page-request group to the watch of the session that
 * owns the faulting device, and makes sure the device always gets an answer.
 *
 * A FaultStream is one session's fault queue (one iommufd fault fd).  Every
 * group read from it becomes a pending entry with a cookie of its own: cookies
 * are unique across the whole daemon, so a client can only ever answer a
 * fault that was delivered to its own session, and a wrong cookie is told
 * apart from another session's or from one already answered.  The router
 * answers INVALID itself when the session's queue is full (the policy's
 * fault-queue-depth), when the client does not answer within the policy's
 * fault-response-timeout-ms, when the client's output queue overflows, and
 * when the watch or the session goes away.  Nothing here blocks.
 *
 * Counters are in page-request groups: one group is one answer.
 */

#include <stdbool.h>
#include <stdint.h>

#include <event2/event.h>

#include "backend.h"
#include "broker-errors.h"
#include "macros.h"

typedef struct FaultRouter FaultRouter;
typedef struct FaultStream FaultStream;
typedef struct FaultWatch FaultWatch;

/* Every device of the session. */
#define FAULT_WATCH_ALL UINT32_MAX

/* One fault record as a client sees it. */
typedef struct FaultEvent {
        uint64_t cookie;          /* the session's cookie of the group; answer it once */
        uint32_t device_id;
        bool pasid_valid;
        uint32_t pasid;
        uint32_t group_id;
        uint32_t perm;            /* FAULT_PERM_* */
        uint64_t address;
        uint32_t length;
        bool last_page;           /* the last record of its group */
} FaultEvent;

typedef struct FaultCounters {
        uint64_t delivered;       /* groups streamed to a watch */
        uint64_t answered;        /* groups the client answered */
        uint64_t timed_out;       /* groups answered INVALID because the client took too long */
        uint64_t dropped;         /* groups answered INVALID on overflow, disconnect or unbind */
        uint64_t pending;         /* groups waiting for an answer now */
} FaultCounters;

/*
 * Why a cookie is no longer pending, for RespondFault's FaultNotPending
 * {reason}.  Same order as fault_closed_reason_to_string().
 */
typedef enum FaultClosedReason {
        FAULT_CLOSED_ANSWERED,
        FAULT_CLOSED_TIMED_OUT,
        FAULT_CLOSED_OVERFLOW,
        FAULT_CLOSED_DISCONNECTED,
        FAULT_CLOSED_UNBOUND,
        FAULT_CLOSED_DEVICE_GONE,
        _FAULT_CLOSED_MAX,
} FaultClosedReason;

const char *fault_closed_reason_to_string(FaultClosedReason r);

/*
 * Hands one record to a client.  Returns 0 when it was queued for the client,
 * -ENOBUFS when the client's output is full (the group is then answered
 * INVALID and counted as dropped), any other negative errno when the watch
 * cannot deliver any more (same treatment).
 */
typedef int (*FaultDeliverFn)(FaultWatch *w, const FaultEvent *ev, void *userdata);

/*
 * Told what became of each fault group, for monitors: delivered (true) to a
 * watch, or answered INVALID by the router on its own for reason (delivered
 * false; never FAULT_CLOSED_ANSWERED or _UNBOUND).  ev is the group's first
 * record (cookie and address).  Runs synchronously: keep it cheap, and do not
 * touch the stream.
 */
typedef void (*FaultNoticeFn)(FaultStream *s, const FaultEvent *ev, bool delivered,
                              FaultClosedReason reason, void *userdata);

int fault_router_new(FaultRouter **ret, struct event_base *base);
/* Every stream must have been freed before. Accepts NULL. */
FaultRouter *fault_router_free(FaultRouter *r);
DEFINE_TRIVIAL_CLEANUP_FUNC(FaultRouter *, fault_router_free);
/* fn may be NULL (no notices). */
void fault_router_set_notice(FaultRouter *r, FaultNoticeFn fn, void *userdata);

/*
 * Starts watching the fault queue fault_id of ctx, whose pollable fd is fd
 * (owned by the context, which must outlive the stream).  depth: the most
 * groups pending at once; timeout_ms: how long a delivered or queued group
 * may wait for its answer (0: no limit).
 */
int fault_stream_new(FaultStream **ret, FaultRouter *r, BackendContext *ctx, uint32_t fault_id,
                     int fd, uint64_t depth, uint64_t timeout_ms);
/*
 * Answers INVALID to every pending group.  Watches still alive stop
 * delivering; their owners free them as usual.  Accepts NULL.
 */
FaultStream *fault_stream_free(FaultStream *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(FaultStream *, fault_stream_free);
/* New limits after a policy reload; pending groups keep their deadlines. */
void fault_stream_set_limits(FaultStream *s, uint64_t depth, uint64_t timeout_ms);
uint32_t fault_stream_fault_id(const FaultStream *s);
void fault_stream_set_userdata(FaultStream *s, void *userdata);
void *fault_stream_get_userdata(const FaultStream *s);

/*
 * Reads what the queue holds now and routes it; the loop calls this when the
 * fd is readable.  Returns the number of groups read.
 */
int fault_stream_dispatch(FaultStream *s);

/*
 * Starts delivering the faults of device_id (or FAULT_WATCH_ALL) to fn.
 * Groups already queued for that device are delivered at once, in order.
 * -EEXIST when a watch for the same device_id exists.
 */
int fault_stream_watch(FaultStream *s, uint32_t device_id, FaultDeliverFn fn, void *userdata,
                       FaultWatch **ret);
/* Ends a watch: what it delivered and nobody answered is answered INVALID.  Accepts NULL. */
FaultWatch *fault_watch_free(FaultWatch *w);
DEFINE_TRIVIAL_CLEANUP_FUNC(FaultWatch *, fault_watch_free);

/*
 * The client's answer (FAULT_RESPONSE_SUCCESS or _INVALID) to cookie.
 * Errors: NoSuchObject {kind: fault} for a cookie this daemon never delivered
 * to this session; FaultNotOwned for another session's cookie; FaultNotPending
 * {reason} for one already answered (by the client or by the router).
 */
int fault_stream_respond(FaultStream *s, uint64_t cookie, uint32_t code, BrokerError *err);

/*
 * The PASID (BACKEND_NO_PASID: the RID) of device_id is being detached: the
 * kernel answers its pending groups itself, so the router forgets them
 * (reason "unbound").  Call before the detach.
 */
void fault_stream_forget(FaultStream *s, uint32_t device_id, uint32_t pasid);
/* Same for every PASID and the RID of device_id (it is being unbound). */
void fault_stream_forget_device(FaultStream *s, uint32_t device_id);
/*
 * device_id was taken from the session (hot-unplug, rebind, policy): the
 * router answers INVALID itself, now, to every group of it still pending
 * (reason "device_gone", counted as dropped), instead of leaving them to the
 * detach that follows.  Call before the device's PASIDs are unbound.
 */
void fault_stream_answer_device(FaultStream *s, uint32_t device_id);

void fault_stream_get_counters(const FaultStream *s, FaultCounters *ret);

/*
 * The error for a cookie that self (may be NULL: a session without a fault
 * queue) has no pending group for: FaultNotOwned when another stream
 * delivered it, else NoSuchObject {kind: fault}.  r may be NULL (no event
 * loop, so no fault was ever delivered).  Returns the errno.
 */
int fault_router_unknown_cookie(FaultRouter *r, const FaultStream *self, uint64_t cookie,
                                BrokerError *err);
