/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Fault queues: groups of I/O page faults queued until read, then waiting for the
 * response to their cookie; and fault injection, which raises them from a device.
 */

#include <inttypes.h>
#include <stdlib.h>
#include <sys/eventfd.h>

#include "assert-util.h"
#include "sim-private.h"

/* ---- fault queues ---- */

/* Answered groups kept for reuse, at most; a burst beyond it is given back to malloc. */
#define SIM_FAULT_SPARE_MAX 1024

static void fault_group_free(SimFaultGroup *g) {
        if (!g)
                return;
        free(g->records);
        free(g);
}

/* A group with room for n records: a spare one when there is, so steady faults allocate nothing. */
static int fault_group_get(SimFaultQueue *q, size_t n, SimFaultGroup **ret) {
        SimFaultGroup *g = q->spare;

        if (g) {
                q->spare = g->next;
                q->n_spare--;
        } else {
                g = calloc(1, sizeof(SimFaultGroup));
                if (!g)
                        return -ENOMEM;
        }
        if (g->alloc < n) {
                FaultRecord *v = realloc(g->records, n * sizeof(FaultRecord));

                if (!v) {
                        fault_group_free(g);
                        return -ENOMEM;
                }
                g->records = v;
                g->alloc = n;
        }
        g->next = NULL;
        g->n = 0;
        *ret = g;
        return 0;
}

/* The group was answered (by the client or INVALID by the queue): its memory serves the next. */
static void fault_group_put(SimFaultQueue *q, SimFaultGroup *g) {
        if (q->n_spare >= SIM_FAULT_SPARE_MAX) {
                fault_group_free(g);
                return;
        }
        g->next = q->spare;
        q->spare = g;
        q->n_spare++;
}

/*
 * POLLIN exactly while groups are queued.  Only the changes go to the eventfd: a write when
 * the first group is queued, one read (it takes the whole count) when the last one is read,
 * not a system call per fault.  Nothing but the router sees the fd, and it only polls it.
 */
static void fault_update_event(SimFaultQueue *q) {
        uint64_t v;

        if (q->queued && !q->signalled)
                q->signalled = eventfd_write(q->efd, 1) == 0;
        else if (!q->queued && q->signalled) {
                (void)eventfd_read(q->efd, &v);
                q->signalled = false;
        }
}

/* Answers INVALID every group of (dev_id, pasid) (or every group when all) in q. */
void sim_fault_auto_respond(SimContext *c, SimFaultQueue *q, bool all, uint32_t dev_id,
                            uint32_t pasid) {
        SimFaultGroup **lists[] = { &q->queued, &q->waiting };

        SIM_FOREACH(l, lists, ELEMENTSOF(lists)) {
                SimFaultGroup **p = *l;

                while (*p) {
                        SimFaultGroup *g = *p;

                        if (!all && (g->dev_id != dev_id || g->pasid != pasid)) {
                                p = &g->next;
                                continue;
                        }
                        *p = g->next;
                        c->sim->stats.auto_invalid++;
                        fault_group_put(q, g);
                }
        }
        q->queued_tail = &q->queued;
        while (*q->queued_tail)
                q->queued_tail = &(*q->queued_tail)->next;
        q->waiting_tail = &q->waiting;
        while (*q->waiting_tail)
                q->waiting_tail = &(*q->waiting_tail)->next;
        fault_update_event(q);
}

int sim_fault_queue_alloc(BackendContext *bc, uint32_t *ret_id, int *ret_fd, Error *err) {
        SimContext *c = to_ctx(bc);
        SimFaultQueue *q;
        int r;

        assert_return(bc, -EINVAL);
        assert_return(ret_id, -EINVAL);
        assert_return(ret_fd, -EINVAL);

        q = calloc(1, sizeof(SimFaultQueue));
        if (!q)
                return error_set(err, -ENOMEM, "Out of memory for a fault queue");
        q->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (q->efd < 0) {
                r = negative_errno();
                free(q);
                return error_set(err, r, "Creating the fault queue's eventfd failed");
        }
        q->queued_tail = &q->queued;
        q->waiting_tail = &q->waiting;
        q->next_cookie = 1;
        r = sim_obj_add(c, &q->obj, SIM_OBJ_FAULT, err);
        if (r < 0) {
                safe_close(q->efd);
                free(q);
                return r;
        }
        *ret_id = q->obj.id;
        *ret_fd = q->efd;
        return 0;
}

void sim_fault_queue_free(SimContext *c, SimFaultQueue *q) {
        sim_fault_auto_respond(c, q, true, 0, 0);
        while (q->spare) {
                SimFaultGroup *g = q->spare;

                q->spare = g->next;
                fault_group_free(g);
        }
        sim_obj_remove(c, &q->obj);
        safe_close(q->efd);
        free(q);
}

int sim_fault_read(BackendContext *bc, uint32_t fault_id, FaultRecord *buf, size_t n_max,
                   size_t *ret_n, Error *err) {
        SimContext *c = to_ctx(bc);
        SimFaultQueue *q;
        size_t done = 0;
        int r;

        assert_return(bc, -EINVAL);
        assert_return(buf || n_max == 0, -EINVAL);
        assert_return(ret_n, -EINVAL);

        r = sim_obj_lookup(c, fault_id, SIM_OBJ_FAULT, (void **)&q, err);
        if (r < 0)
                return r;
        while (q->queued && q->queued->n <= n_max - done) {
                SimFaultGroup *g = q->queued;

                q->queued = g->next;
                if (!q->queued)
                        q->queued_tail = &q->queued;
                g->cookie = q->next_cookie++;
                if (q->next_cookie == 0)
                        q->next_cookie = 1;
                for (size_t i = 0; i < g->n; i++) {
                        buf[done] = g->records[i];
                        buf[done].cookie = g->cookie;
                        done++;
                }
                g->next = NULL;
                *q->waiting_tail = g;
                q->waiting_tail = &g->next;
                c->sim->stats.groups_delivered++;
        }
        fault_update_event(q);
        *ret_n = done;
        return 0;
}

int sim_fault_respond(BackendContext *bc, uint32_t fault_id, uint32_t cookie, uint32_t code,
                      Error *err) {
        SimContext *c = to_ctx(bc);
        SimFaultQueue *q;
        SimFaultGroup **p;
        int r;

        assert_return(bc, -EINVAL);

        r = sim_obj_lookup(c, fault_id, SIM_OBJ_FAULT, (void **)&q, err);
        if (r < 0)
                return r;
        if (code != FAULT_RESPONSE_SUCCESS && code != FAULT_RESPONSE_INVALID)
                return error_set(err, -EINVAL, "Unknown fault response code %" PRIu32, code);
        for (p = &q->waiting; *p; p = &(*p)->next)
                if ((*p)->cookie == cookie) {
                        SimFaultGroup *g = *p;

                        *p = g->next;
                        if (!*p)
                                q->waiting_tail = p;
                        fault_group_put(q, g);
                        if (code == FAULT_RESPONSE_SUCCESS)
                                c->sim->stats.responses_success++;
                        else
                                c->sim->stats.responses_invalid++;
                        return 0;
                }
        return error_set(err, -EINVAL, "No fault awaits a response with cookie %" PRIu32, cookie);
}

/* ---- fault injection ---- */

/* Whether the pending record a belongs to the group of rec: same group id and PASID. */
static bool fault_same_group(const FaultRecord *a, const FaultRecord *rec) {
        return a->grpid == rec->grpid && a->pasid == rec->pasid &&
               (a->flags & FAULT_FLAG_PASID_VALID) == (rec->flags & FAULT_FLAG_PASID_VALID);
}

/* Room for one more partial fault on d; the array keeps its size, so it grows only at first. */
static int fault_partial_reserve(SimDev *d) {
        FaultRecord *v;
        size_t a;

        if (d->n_partial < d->alloc_partial)
                return 0;
        a = d->alloc_partial ? d->alloc_partial * 2 : 8;
        v = realloc(d->partial, a * sizeof(FaultRecord));
        if (!v)
                return -ENOMEM;
        d->partial = v;
        d->alloc_partial = a;
        return 0;
}

/*
 * A fault from d into q.  Like the kernel's IOPF reporting, pages wait on the device until the
 * last page of their group arrives; then the whole group (the pending pages of its PASID and
 * group id, in arrival order, that last page at the end) is queued at once.
 */
int sim_fault_raise(SimDev *d, SimFaultQueue *q, const FaultRecord *rec) {
        SimFaultGroup *g;
        size_t n = 1, j = 0;
        int r;

        if (!(rec->flags & FAULT_FLAG_LAST_PAGE)) {
                r = fault_partial_reserve(d);
                if (r < 0)
                        return r;
                d->partial[d->n_partial++] = *rec;
                return 0;
        }

        for (size_t k = 0; k < d->n_partial; k++)
                if (fault_same_group(&d->partial[k], rec))
                        n++;
        r = fault_group_get(q, n, &g);
        if (r < 0)
                return r;
        for (size_t k = 0; k < d->n_partial; k++) {
                if (fault_same_group(&d->partial[k], rec))
                        g->records[g->n++] = d->partial[k];
                else
                        d->partial[j++] = d->partial[k];
        }
        d->n_partial = j;
        g->records[g->n++] = *rec;
        g->dev_id = d->obj.id;
        g->pasid = rec->pasid;
        *q->queued_tail = g;
        q->queued_tail = &g->next;
        fault_update_event(q);
        return 0;
}

int backend_sim_inject_fault(Backend *b, const char *device_name, uint32_t pasid, uint64_t addr,
                             uint32_t perm, bool last_page, uint32_t grpid, Error *err) {
        SimBackend *s = to_sim(b);
        FaultRecord rec;
        SimDevModel *m;
        SimContext *c;
        SimHwpt *h;
        SimDev *d;
        size_t i;
        int r;

        assert_return(b, -EINVAL);
        assert_return(device_name, -EINVAL);

        if (!backend_is_sim(b))
                return error_set(err, -EOPNOTSUPP, "Backend %s cannot inject faults", b->ops->name);
        if (sim_device_find(s, device_name, &i) < 0)
                return error_set(err, -ENODEV, "No device %s", device_name);
        m = &s->devices[i];
        if (!m->ctx)
                return error_set(err, -ENOENT, "Device %s is not bound", device_name);
        c = m->ctx;
        d = (SimDev *)sim_obj_get(c, m->dev_id);
        h = sim_device_attached(d, pasid);
        if (!h || !h->fault)
                return error_set(err, -ENOENT,
                                 "Nothing with a fault queue is attached to %s at PASID %" PRIu32,
                                 device_name, pasid);

        rec = (FaultRecord){
                .flags = (pasid != BACKEND_NO_PASID ? FAULT_FLAG_PASID_VALID : 0) |
                         (last_page ? FAULT_FLAG_LAST_PAGE : 0),
                .dev_id = d->obj.id,
                .pasid = pasid != BACKEND_NO_PASID ? pasid : 0,
                .grpid = grpid,
                .perm = perm,
                .addr = addr,
        };
        r = sim_fault_raise(d, h->fault, &rec);
        if (r < 0)
                return error_set(err, r, "Out of memory");
        s->stats.faults_injected++;
        return 0;
}
