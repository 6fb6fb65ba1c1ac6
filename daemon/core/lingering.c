/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "assert-util.h"
#include "lingering.h"
#include "log.h"

/* How many holders one question asks the backend for. */
#define HOLDERS_MAX 64

typedef struct LingeringEntry {
        Lingering *table;
        char *device;
        pid_t pids[LINGERING_WATCH_MAX];  /* the processes recorded as holding it */
        size_t n_pids;
        int pidfds[LINGERING_WATCH_MAX];
        struct event *watches[LINGERING_WATCH_MAX];
        size_t n_watches;
        bool exited;                      /* a recorded holder exited: ask again */
} LingeringEntry;

struct Lingering {
        Backend *backend;
        struct event_base *base;
        LingeringEntry **entries;
        size_t n_entries;
        struct event *recheck;            /* asks again about entries whose holders exited */
        LingeringEndFn end_fn;
        void *userdata;
};

static void holder_describe(pid_t pid, LingeringHolder *ret) {
        char path[64], comm[32] = "";
        ssize_t n = -1;
        int fd;

        snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd >= 0) {
                n = read(fd, comm, sizeof(comm) - 1);
                close(fd);
        }
        if (n > 0 && comm[n - 1] == '\n')
                n--;
        comm[n > 0 ? n : 0] = '\0';
        ret->pid = pid;
        if (comm[0])
                snprintf(ret->description, sizeof(ret->description), "pid %d (%s)", (int)pid,
                         comm);
        else
                snprintf(ret->description, sizeof(ret->description), "pid %d", (int)pid);
}

/*
 * Who holds device's node now: up to n_max pids, their number returned; 0 on any error.  With
 * n_among > 0 only the candidates in pids[0..n_among) are asked about.
 */
static size_t ask_backend(Lingering *l, const char *device, pid_t *pids, size_t n_max,
                          size_t n_among) {
        Error be = ERROR_INIT;
        size_t n = n_among;
        int r;

        r = l->backend->ops->device_holders(l->backend, device, pids, n_max, &n, &be);
        if (r < 0) {
                /* A device that left the host, or a /proc we cannot read: nobody we can name. */
                log_debug("Asking who holds %s failed, taking it as free: %s", device,
                          error_message(&be));
                return 0;
        }
        return MIN(n, n_max);
}

static bool pid_in(const pid_t *pids, size_t n, pid_t pid) {
        for (size_t i = 0; i < n; i++)
                if (pids[i] == pid)
                        return true;
        return false;
}

/* ---- watching the recorded holders ---- */

static void entry_unwatch(LingeringEntry *e) {
        for (size_t i = 0; i < e->n_watches; i++) {
                event_free(e->watches[i]);
                safe_close(e->pidfds[i]);
        }
        e->n_watches = 0;
        e->exited = false;
}

static void on_holder_exit(evutil_socket_t fd, short what, void *userdata) {
        LingeringEntry *e = userdata;

        /* Not here: this callback's own event would be freed under it. */
        e->exited = true;
        event_active(e->table->recheck, EV_TIMEOUT, 0);
}

/* A pidfd of each recorded holder: its exit ends the entry without anybody asking. */
static void entry_watch(LingeringEntry *e) {
        Lingering *l = e->table;

        entry_unwatch(e);
        if (!l->base)
                return;
        for (size_t i = 0; i < e->n_pids; i++) {
                int fd = (int)syscall(SYS_pidfd_open, e->pids[i], 0);
                struct event *ev;

                if (fd < 0)
                        continue; /* gone already: the next question finds out */
                ev = event_new(l->base, fd, EV_READ, on_holder_exit, e);
                if (!ev || event_add(ev, NULL) < 0) {
                        if (ev)
                                event_free(ev);
                        safe_close(fd);
                        continue;
                }
                e->pidfds[e->n_watches] = fd;
                e->watches[e->n_watches++] = ev;
        }
}

/* ---- entries ---- */

static LingeringEntry *entry_find(Lingering *l, const char *device, size_t *ret_index) {
        for (size_t i = 0; i < l->n_entries; i++)
                if (streq(l->entries[i]->device, device)) {
                        *ret_index = i;
                        return l->entries[i];
                }
        return NULL;
}

static void entry_free(LingeringEntry *e) {
        entry_unwatch(e);
        free(e->device);
        free(e);
}

static void entry_end(Lingering *l, size_t i, bool notify) {
        LingeringEntry *e = l->entries[i];
        _cleanup_free_ char *device = TAKE_PTR(e->device);

        l->entries[i] = l->entries[--l->n_entries];
        entry_free(e);
        log_debug("%s is free again: no process holds its VFIO file any more.", device);
        if (notify && l->end_fn)
                l->end_fn(device, l->userdata);
}

/* Records pids[0..n) as device's holders, in a new entry or in place of what it recorded. */
static int entry_record(Lingering *l, const char *device, const pid_t *pids, size_t n) {
        LingeringEntry **v, *e;
        size_t i;

        e = entry_find(l, device, &i);
        if (!e) {
                v = reallocarray(l->entries, l->n_entries + 1, sizeof(*v));
                if (!v)
                        return -ENOMEM;
                l->entries = v;
                e = calloc(1, sizeof(*e));
                if (!e)
                        return -ENOMEM;
                e->table = l;
                e->device = strdup(device);
                if (!e->device) {
                        free(e);
                        return -ENOMEM;
                }
                l->entries[l->n_entries++] = e;
        }
        e->n_pids = MIN(n, (size_t)LINGERING_WATCH_MAX);
        memcpy(e->pids, pids, e->n_pids * sizeof(pid_t));
        entry_watch(e);
        return 0;
}

/*
 * Asks the backend about entry i: the recorded processes that still hold the node stay
 * recorded, and without any the entry ends (0).  1 when one of them is not exclude (*ret names
 * it), 2 when only exclude is.
 */
static int entry_recheck(Lingering *l, size_t i, pid_t exclude, LingeringHolder *ret) {
        LingeringEntry *e = l->entries[i];
        pid_t now[LINGERING_WATCH_MAX];
        size_t n, kept = 0;
        pid_t other = 0;

        /* Only the recorded processes: a look at them, not at every process on the host. */
        memcpy(now, e->pids, e->n_pids * sizeof(pid_t));
        n = ask_backend(l, e->device, now, ELEMENTSOF(now), e->n_pids);
        for (size_t k = 0; k < e->n_pids; k++)
                if (pid_in(now, n, e->pids[k]))
                        e->pids[kept++] = e->pids[k];
        if (kept == 0) {
                entry_end(l, i, true);
                return 0;
        }
        if (kept != e->n_pids || e->exited) {
                e->n_pids = kept;
                entry_watch(e);
        }
        for (size_t k = 0; k < e->n_pids && other == 0; k++)
                if (e->pids[k] != exclude)
                        other = e->pids[k];
        if (other == 0)
                return 2;
        if (ret)
                holder_describe(other, ret);
        return 1;
}

static void on_recheck(evutil_socket_t fd, short what, void *userdata) {
        Lingering *l = userdata;

        for (size_t i = l->n_entries; i > 0; i--)
                if (l->entries[i - 1]->exited)
                        (void)entry_recheck(l, i - 1, 0, NULL);
}

/* ---- the table ---- */

int lingering_new(Lingering **ret, Backend *backend, struct event_base *base) {
        Lingering *l;

        assert_return(ret, -EINVAL);
        assert_return(backend, -EINVAL);

        l = calloc(1, sizeof(*l));
        if (!l)
                return -ENOMEM;
        l->backend = backend;
        l->base = base;
        if (base) {
                l->recheck = event_new(base, -1, 0, on_recheck, l);
                if (!l->recheck) {
                        free(l);
                        return -ENOMEM;
                }
        }
        *ret = l;
        return 0;
}

Lingering *lingering_free(Lingering *l) {
        if (!l)
                return NULL;
        for (size_t i = 0; i < l->n_entries; i++)
                entry_free(l->entries[i]);
        free(l->entries);
        if (l->recheck)
                event_free(l->recheck);
        free(l);
        return NULL;
}

void lingering_set_end_fn(Lingering *l, LingeringEndFn fn, void *userdata) {
        assert(l);
        l->end_fn = fn;
        l->userdata = userdata;
}

size_t lingering_count(const Lingering *l) {
        assert_return(l, 0);
        return l->n_entries;
}

int lingering_add(Lingering *l, const char *device) {
        pid_t pids[HOLDERS_MAX];
        size_t n;
        int r;

        assert_return(l, -EINVAL);
        assert_return(device, -EINVAL);

        n = ask_backend(l, device, pids, ELEMENTSOF(pids), 0);
        if (n == 0)
                return 0;
        r = entry_record(l, device, pids, n);
        return r < 0 ? r : 1;
}

int lingering_check(Lingering *l, const char *device, pid_t exclude, LingeringHolder *ret) {
        size_t i;

        assert_return(l, -EINVAL);
        assert_return(device, -EINVAL);

        if (!entry_find(l, device, &i))
                return 0;
        return entry_recheck(l, i, exclude, ret) == 1;
}

int lingering_probe(Lingering *l, const char *device, pid_t exclude, LingeringHolder *ret) {
        pid_t pids[HOLDERS_MAX], first;
        size_t n;

        assert_return(l, -EINVAL);
        assert_return(device, -EINVAL);
        assert_return(ret, -EINVAL);

        /* The processes recorded for it first: cheaper than a look at every process. */
        if (lingering_check(l, device, exclude, ret) > 0)
                return 1;
        n = ask_backend(l, device, pids, ELEMENTSOF(pids), 0);
        if (n == 0)
                return 0;
        first = pids[0];
        for (size_t k = 0; k < n; k++)
                if (pids[k] != exclude) {
                        first = pids[k];
                        break;
                }
        /* Nothing recorded: a refused call costs the daemon nothing, not even a pidfd. */
        holder_describe(first, ret);
        return 1;
}

void lingering_forget(Lingering *l, const char *device) {
        size_t i;

        assert(l);
        assert(device);

        if (entry_find(l, device, &i))
                entry_end(l, i, false);
}
