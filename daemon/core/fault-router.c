/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "fault-router.h"
#include "log.h"

/* Records read per fault_read(); a group larger than this is read alone once it is first. */
#define FAULT_READ_BATCH 256
/* Reads per dispatch, so one busy device cannot starve the rest of the loop. */
#define FAULT_READ_ROUNDS 8
/* Cookies remembered after their group was closed, to tell "already answered" from "unknown". */
#define FAULT_CLOSED_HISTORY 1024

typedef struct PendingGroup {
        uint64_t cookie;
        uint64_t deadline_usec;   /* UINT64_MAX: none */
        uint32_t kcookie;         /* the backend's cookie */
        uint32_t device_id;
        uint32_t pasid;
        bool pasid_valid;
        bool open;
        FaultWatch *watch;        /* delivered through it; NULL: not delivered yet */
        size_t n;
        FaultRecord one;          /* n == 1 */
        FaultRecord *many;        /* n > 1 */
} PendingGroup;

typedef struct ClosedCookie {
        uint64_t cookie;
        FaultClosedReason reason;
} ClosedCookie;

struct FaultWatch {
        FaultStream *stream;      /* NULL once the stream is gone */
        FaultWatch *next, *prev;
        uint32_t device_id;
        FaultDeliverFn deliver;
        void *userdata;
};

struct FaultStream {
        FaultRouter *router;
        FaultStream *next, *prev;
        BackendContext *ctx;
        uint32_t fault_id;
        uint64_t depth;
        uint64_t timeout_usec;    /* 0: none */
        struct event *ev_read;
        struct event *ev_timeout;
        /* Open groups in arrival (so cookie, so deadline) order; closed ones are skipped. */
        PendingGroup *q;
        size_t head, n, alloc;
        size_t n_open;
        ClosedCookie closed[FAULT_CLOSED_HISTORY];
        size_t closed_next, n_closed;
        FaultWatch *watches;
        FaultCounters counters;
        void *userdata;
};

struct FaultRouter {
        struct event_base *base;
        FaultStream *streams;
        uint64_t next_cookie;
        FaultRecord buf[FAULT_READ_BATCH];
        FaultNoticeFn notice;
        void *notice_userdata;
};

static const char *const closed_reason_table[_FAULT_CLOSED_MAX] = {
        [FAULT_CLOSED_ANSWERED] = "answered",
        [FAULT_CLOSED_TIMED_OUT] = "timed_out",
        [FAULT_CLOSED_OVERFLOW] = "overflow",
        [FAULT_CLOSED_DISCONNECTED] = "disconnected",
        [FAULT_CLOSED_UNBOUND] = "unbound",
        [FAULT_CLOSED_DEVICE_GONE] = "device_gone",
};

const char *fault_closed_reason_to_string(FaultClosedReason r) {
        return r < _FAULT_CLOSED_MAX ? closed_reason_table[r] : NULL;
}

static uint64_t now_usec(void) {
        struct timespec ts;

        (void)clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static const FaultRecord *group_record(const PendingGroup *g, size_t i) {
        return g->n == 1 ? &g->one : &g->many[i];
}

static void group_event(const FaultStream *s, const PendingGroup *g, size_t i, FaultEvent *ret) {
        const FaultRecord *rec = group_record(g, i);

        *ret = (FaultEvent){
                .cookie = g->cookie,
                .device_id = rec->dev_id,
                .pasid_valid = rec->flags & FAULT_FLAG_PASID_VALID,
                .pasid = rec->pasid,
                .group_id = rec->grpid,
                .perm = rec->perm,
                .address = rec->addr,
                .length = rec->length,
                .last_page = rec->flags & FAULT_FLAG_LAST_PAGE,
        };
}

/* ---- router ---------------------------------------------------------------------------- */

int fault_router_new(FaultRouter **ret, struct event_base *base) {
        FaultRouter *r = calloc(1, sizeof(*r));

        if (!r)
                return -ENOMEM;
        r->base = base;
        r->next_cookie = 1;
        *ret = r;
        return 0;
}

FaultRouter *fault_router_free(FaultRouter *r) {
        if (!r)
                return NULL;
        /* Streams belong to sessions; one left here would point at freed memory later. */
        while (r->streams)
                fault_stream_free(r->streams);
        free(r);
        return NULL;
}

void fault_router_set_notice(FaultRouter *r, FaultNoticeFn fn, void *userdata) {
        r->notice = fn;
        r->notice_userdata = userdata;
}

/* ---- pending groups -------------------------------------------------------------------- */

static void stream_remember_closed(FaultStream *s, uint64_t cookie, FaultClosedReason reason) {
        s->closed[s->closed_next] = (ClosedCookie){ .cookie = cookie, .reason = reason };
        s->closed_next = (s->closed_next + 1) % FAULT_CLOSED_HISTORY;
        if (s->n_closed < FAULT_CLOSED_HISTORY)
                s->n_closed++;
}

static const ClosedCookie *stream_find_closed(const FaultStream *s, uint64_t cookie) {
        for (size_t i = 0; i < s->n_closed; i++)
                if (s->closed[i].cookie == cookie)
                        return &s->closed[i];
        return NULL;
}

/* Drops closed entries at the head and compacts, so the array stays as small as what is open. */
static void stream_trim(FaultStream *s) {
        while (s->head < s->n && !s->q[s->head].open)
                s->head++;
        if (s->head == s->n) {
                s->head = s->n = 0;
                return;
        }
        if (s->head > 64 && s->head * 2 > s->n) {
                memmove(s->q, s->q + s->head, (s->n - s->head) * sizeof(PendingGroup));
                s->n -= s->head;
                s->head = 0;
        }
}

static PendingGroup *stream_find(FaultStream *s, uint64_t cookie) {
        size_t lo = s->head, hi = s->n;

        /* Clients answer in order: the oldest open group is the one, without a search. */
        if (lo < hi && s->q[lo].cookie == cookie)
                return &s->q[lo];
        /* Cookies only grow, so the queue is sorted by them. */
        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;

                if (s->q[mid].cookie < cookie)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return lo < s->n && s->q[lo].cookie == cookie ? &s->q[lo] : NULL;
}

static void stream_arm_timeout(FaultStream *s) {
        uint64_t now, delta;
        struct timeval tv;

        if (s->timeout_usec == 0 || evtimer_pending(s->ev_timeout, NULL))
                return;
        stream_trim(s);
        if (s->head == s->n)
                return;
        now = now_usec();
        delta = s->q[s->head].deadline_usec > now ? s->q[s->head].deadline_usec - now : 0;
        tv = (struct timeval){ .tv_sec = (time_t)(delta / 1000000),
                               .tv_usec = (suseconds_t)(delta % 1000000) };
        (void)evtimer_add(s->ev_timeout, &tv);
}

/*
 * Closes g.  With answer, tells the device INVALID first (the router answering
 * for the client); without, the kernel already did (detach) or the client did.
 */
static void stream_close(FaultStream *s, PendingGroup *g, FaultClosedReason reason, bool answer) {
        if (answer) {
                Error be;

                error_init(&be);
                if (s->ctx->backend->ops->fault_respond(s->ctx, s->fault_id, g->kcookie,
                                                        FAULT_RESPONSE_INVALID, &be) < 0)
                        log_debug("Answering fault group %" PRIu64 " INVALID failed: %s, "
                                  "ignoring.", g->cookie, error_message(&be));
        }
        if (answer && s->router->notice) {
                FaultEvent ev;

                group_event(s, g, 0, &ev);
                s->router->notice(s, &ev, false, reason, s->router->notice_userdata);
        }
        switch (reason) {
        case FAULT_CLOSED_ANSWERED:
                s->counters.answered++;
                break;
        case FAULT_CLOSED_TIMED_OUT:
                s->counters.timed_out++;
                break;
        default:
                s->counters.dropped++;
        }
        stream_remember_closed(s, g->cookie, reason);
        /* Only groups of more than one page have records of their own: no free() per fault. */
        if (g->many) {
                free(g->many);
                g->many = NULL;
        }
        g->open = false;
        g->watch = NULL;
        s->n_open--;
}

static FaultWatch *stream_watch_for(FaultStream *s, uint32_t device_id) {
        FaultWatch *all = NULL;

        for (FaultWatch *w = s->watches; w; w = w->next) {
                if (w->device_id == device_id)
                        return w;
                if (w->device_id == FAULT_WATCH_ALL)
                        all = w;
        }
        return all;
}

/* Streams the group to its watch; on overflow or a dead watch answers INVALID. */
static void stream_deliver(FaultStream *s, PendingGroup *g, FaultWatch *w) {
        uint64_t cookie = g->cookie;
        size_t at = (size_t)(g - s->q);

        for (size_t i = 0; i < g->n; i++) {
                FaultEvent ev;
                int r;

                group_event(s, g, i, &ev);
                r = w->deliver(w, &ev, w->userdata);
                /*
                 * The callback may not touch the queue, but it may have grown it: find g again,
                 * where it was unless the queue moved under it.
                 */
                g = at < s->n && s->q[at].cookie == cookie ? &s->q[at] : stream_find(s, cookie);
                if (!g || !g->open)
                        return;
                if (r < 0) {
                        log_debug("Fault group %" PRIu64 " of device %" PRIu32
                                  " not delivered (%s), answering INVALID.",
                                  cookie, ev.device_id, strerror(-r));
                        stream_close(s, g, FAULT_CLOSED_OVERFLOW, true);
                        return;
                }
        }
        g->watch = w;
        s->counters.delivered++;
        if (s->router->notice) {
                FaultEvent ev;

                group_event(s, g, 0, &ev);
                s->router->notice(s, &ev, true, FAULT_CLOSED_ANSWERED, s->router->notice_userdata);
        }
}

/*
 * Answers a group INVALID without queueing it, for the device must not wait on a group the
 * client will never see.  It still gets a cookie of its own, so that the overflow is reported
 * and remembered like any other closed group.
 */
static void stream_refuse(FaultStream *s, uint64_t kcookie, const FaultRecord *rec) {
        PendingGroup tmp = {
                .cookie = s->router->next_cookie++,
                .kcookie = kcookie,
                .n = 1,
                .one = *rec,
                .open = true,
        };

        s->n_open++;
        stream_close(s, &tmp, FAULT_CLOSED_OVERFLOW, true);
}

static int stream_add_group(FaultStream *s, const FaultRecord *recs, size_t n) {
        PendingGroup *g;

        if (s->n_open >= s->depth) {
                /* Over the depth: the device hears INVALID now, the client never sees it. */
                stream_refuse(s, recs[0].cookie, &recs[n - 1]);
                return 0;
        }
        if (s->n == s->alloc) {
                size_t a = s->alloc ? s->alloc * 2 : 16;
                PendingGroup *q = realloc(s->q, a * sizeof(*q));

                if (!q)
                        return -ENOMEM;
                s->q = q;
                s->alloc = a;
        }
        g = &s->q[s->n];
        *g = (PendingGroup){
                .cookie = s->router->next_cookie++,
                .kcookie = recs[0].cookie,
                .device_id = recs[0].dev_id,
                .pasid = recs[0].pasid,
                .pasid_valid = recs[0].flags & FAULT_FLAG_PASID_VALID,
                .open = true,
                .n = n,
                .deadline_usec = s->timeout_usec ? now_usec() + s->timeout_usec : UINT64_MAX,
        };
        if (n == 1)
                g->one = recs[0];
        else {
                g->many = malloc(n * sizeof(FaultRecord));
                if (!g->many)
                        return -ENOMEM;
                memcpy(g->many, recs, n * sizeof(FaultRecord));
        }
        s->n++;
        s->n_open++;

        FaultWatch *w = stream_watch_for(s, g->device_id);
        if (w)
                stream_deliver(s, g, w);
        return 0;
}

int fault_stream_dispatch(FaultStream *s) {
        FaultRouter *r = s->router;
        int groups = 0;

        for (unsigned round = 0; round < FAULT_READ_ROUNDS; round++) {
                size_t n = 0, start = 0;
                Error be;
                int k;

                error_init(&be);
                k = s->ctx->backend->ops->fault_read(s->ctx, s->fault_id, r->buf, FAULT_READ_BATCH,
                                                     &n, &be);
                if (k < 0) {
                        log_debug("Reading fault queue %" PRIu32 " failed: %s", s->fault_id,
                                  error_message(&be));
                        break;
                }
                if (n == 0)
                        break;
                /* Records of one group are adjacent and share the backend's cookie. */
                for (size_t i = 1; i <= n; i++) {
                        if (i < n && r->buf[i].cookie == r->buf[start].cookie)
                                continue;
                        /* No memory to keep it: the device must not wait anyway. */
                        if (stream_add_group(s, r->buf + start, i - start) < 0)
                                stream_refuse(s, r->buf[start].cookie, &r->buf[start]);
                        groups++;
                        start = i;
                }
                if (n < FAULT_READ_BATCH / 2)
                        break;
        }
        stream_arm_timeout(s);
        return groups;
}

static void on_readable(evutil_socket_t fd, short what, void *userdata) {
        (void)fault_stream_dispatch(userdata);
}

static void on_timeout(evutil_socket_t fd, short what, void *userdata) {
        FaultStream *s = userdata;
        uint64_t now = now_usec();

        for (size_t i = s->head; i < s->n; i++) {
                PendingGroup *g = &s->q[i];

                if (!g->open)
                        continue;
                if (g->deadline_usec > now)
                        break;
                log_debug("Fault group %" PRIu64 " of device %" PRIu32
                          " was not answered in time, answering INVALID.",
                          g->cookie, g->device_id);
                stream_close(s, g, FAULT_CLOSED_TIMED_OUT, true);
        }
        stream_arm_timeout(s);
}

/* ---- streams --------------------------------------------------------------------------- */

int fault_stream_new(FaultStream **ret, FaultRouter *r, BackendContext *ctx, uint32_t fault_id,
                     int fd, uint64_t depth, uint64_t timeout_ms) {
        FaultStream *s = calloc(1, sizeof(*s));

        if (!s)
                return -ENOMEM;
        s->router = r;
        s->ctx = ctx;
        s->fault_id = fault_id;
        fault_stream_set_limits(s, depth, timeout_ms);
        s->ev_read = event_new(r->base, fd, EV_READ | EV_PERSIST, on_readable, s);
        s->ev_timeout = evtimer_new(r->base, on_timeout, s);
        if (!s->ev_read || !s->ev_timeout || event_add(s->ev_read, NULL) < 0) {
                if (s->ev_read)
                        event_free(s->ev_read);
                if (s->ev_timeout)
                        event_free(s->ev_timeout);
                free(s);
                return -ENOMEM;
        }
        s->next = r->streams;
        if (r->streams)
                r->streams->prev = s;
        r->streams = s;
        *ret = s;
        return 0;
}

FaultStream *fault_stream_free(FaultStream *s) {
        if (!s)
                return NULL;
        for (size_t i = s->head; i < s->n; i++)
                if (s->q[i].open)
                        stream_close(s, &s->q[i], FAULT_CLOSED_DISCONNECTED, true);
        for (FaultWatch *w = s->watches, *next; w; w = next) {
                next = w->next;
                w->stream = NULL;
                w->next = w->prev = NULL;
        }
        event_free(s->ev_read);
        event_free(s->ev_timeout);
        if (s->prev)
                s->prev->next = s->next;
        else
                s->router->streams = s->next;
        if (s->next)
                s->next->prev = s->prev;
        free(s->q);
        free(s);
        return NULL;
}

void fault_stream_set_limits(FaultStream *s, uint64_t depth, uint64_t timeout_ms) {
        s->depth = depth;
        s->timeout_usec = timeout_ms > UINT64_MAX / 1000 ? UINT64_MAX / 2 : timeout_ms * 1000;
}

uint32_t fault_stream_fault_id(const FaultStream *s) {
        return s->fault_id;
}

void fault_stream_set_userdata(FaultStream *s, void *userdata) {
        s->userdata = userdata;
}

void *fault_stream_get_userdata(const FaultStream *s) {
        return s->userdata;
}

void fault_stream_get_counters(const FaultStream *s, FaultCounters *ret) {
        *ret = s->counters;
        ret->pending = s->n_open;
}

/* ---- watches --------------------------------------------------------------------------- */

int fault_stream_watch(FaultStream *s, uint32_t device_id, FaultDeliverFn fn, void *userdata,
                       FaultWatch **ret) {
        FaultWatch *w;

        for (w = s->watches; w; w = w->next)
                if (w->device_id == device_id)
                        return -EEXIST;
        w = calloc(1, sizeof(*w));
        if (!w)
                return -ENOMEM;
        *w = (FaultWatch){ .stream = s, .device_id = device_id, .deliver = fn,
                           .userdata = userdata, .next = s->watches };
        if (s->watches)
                s->watches->prev = w;
        s->watches = w;
        *ret = w;

        /* What arrived before anyone watched goes out now, oldest first. */
        for (size_t i = s->head; i < s->n; i++) {
                PendingGroup *g = &s->q[i];

                if (g->open && !g->watch && stream_watch_for(s, g->device_id) == w)
                        stream_deliver(s, g, w);
        }
        return 0;
}

FaultWatch *fault_watch_free(FaultWatch *w) {
        FaultStream *s;

        if (!w)
                return NULL;
        s = w->stream;
        if (s) {
                for (size_t i = s->head; i < s->n; i++)
                        if (s->q[i].open && s->q[i].watch == w)
                                stream_close(s, &s->q[i], FAULT_CLOSED_DISCONNECTED, true);
                if (w->prev)
                        w->prev->next = w->next;
                else
                        s->watches = w->next;
                if (w->next)
                        w->next->prev = w->prev;
                stream_trim(s);
        }
        free(w);
        return NULL;
}

/* ---- answers --------------------------------------------------------------------------- */

static int not_pending(BrokerError *err, uint64_t cookie, FaultClosedReason reason) {
        static const char *const why[_FAULT_CLOSED_MAX] = {
                [FAULT_CLOSED_ANSWERED] = "was already answered",
                [FAULT_CLOSED_TIMED_OUT] = "was answered INVALID by iommud: the response "
                                           "timeout passed",
                [FAULT_CLOSED_OVERFLOW] = "was answered INVALID by iommud: the session's fault "
                                          "queue overflowed",
                [FAULT_CLOSED_DISCONNECTED] = "was answered INVALID by iommud: its watch ended",
                [FAULT_CLOSED_UNBOUND] = "was answered INVALID by the kernel: its PASID or "
                                         "device was unbound",
        };

        broker_error_set(err, -ESTALE, BROKER_ERROR_FAULT_NOT_PENDING,
                         "Fault cookie %" PRIu64 " %s.", cookie, why[reason]);
        broker_error_add_u64(err, "cookie", cookie);
        broker_error_add_string(err, "reason", fault_closed_reason_to_string(reason));
        return -ESTALE;
}

int fault_stream_respond(FaultStream *s, uint64_t cookie, uint32_t code, BrokerError *err) {
        PendingGroup *g = stream_find(s, cookie);
        const ClosedCookie *c;
        Error be;
        int r;

        if (g && g->open && g->watch) {
                error_init(&be);
                r = s->ctx->backend->ops->fault_respond(s->ctx, s->fault_id, g->kcookie, code,
                                                        &be);
                if (r < 0)
                        return broker_error_from_backend(err, "answer the fault", &be);
                stream_close(s, g, FAULT_CLOSED_ANSWERED, false);
                stream_trim(s);
                return 0;
        }
        c = stream_find_closed(s, cookie);
        if (c)
                return not_pending(err, cookie, c->reason);

        return fault_router_unknown_cookie(s->router, s, cookie, err);
}

int fault_router_unknown_cookie(FaultRouter *r, const FaultStream *self, uint64_t cookie,
                                BrokerError *err) {
        char id[32];

        for (FaultStream *o = r ? r->streams : NULL; o; o = o->next) {
                PendingGroup *og;

                if (o == self)
                        continue;
                og = stream_find(o, cookie);
                if ((og && og->watch) || stream_find_closed(o, cookie)) {
                        broker_error_set(err, -EPERM, BROKER_ERROR_FAULT_NOT_OWNED,
                                         "Fault cookie %" PRIu64 " was delivered to another "
                                         "session; a session answers only its own faults.",
                                         cookie);
                        broker_error_add_u64(err, "cookie", cookie);
                        return -EPERM;
                }
        }
        snprintf(id, sizeof(id), "%" PRIu64, cookie);
        broker_error_set(err, -ENOENT, BROKER_ERROR_NO_SUCH_OBJECT,
                         "No fault with cookie %" PRIu64 " was delivered to this session.",
                         cookie);
        broker_error_add_string(err, "kind", BROKER_KIND_FAULT);
        broker_error_add_string(err, "id", id);
        return -ENOENT;
}

void fault_stream_forget(FaultStream *s, uint32_t device_id, uint32_t pasid) {
        bool rid = pasid == BACKEND_NO_PASID;

        for (size_t i = s->head; i < s->n; i++) {
                PendingGroup *g = &s->q[i];

                if (g->open && g->device_id == device_id && g->pasid_valid == !rid &&
                    (rid || g->pasid == pasid))
                        stream_close(s, g, FAULT_CLOSED_UNBOUND, false);
        }
        stream_trim(s);
}

void fault_stream_forget_device(FaultStream *s, uint32_t device_id) {
        for (size_t i = s->head; i < s->n; i++) {
                PendingGroup *g = &s->q[i];

                if (g->open && g->device_id == device_id)
                        stream_close(s, g, FAULT_CLOSED_UNBOUND, false);
        }
        stream_trim(s);
}

void fault_stream_answer_device(FaultStream *s, uint32_t device_id) {
        for (size_t i = s->head; i < s->n; i++) {
                PendingGroup *g = &s->q[i];

                if (g->open && g->device_id == device_id)
                        stream_close(s, g, FAULT_CLOSED_DEVICE_GONE, true);
        }
        stream_trim(s);
}
