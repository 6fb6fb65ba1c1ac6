/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>

#include "fdlist.h"

struct FdList {
        size_t n_fds, capacity;
        int fds[];
};

int fdlist_new(FdList **ret, const int *fds, size_t n_fds) {
        FdList *l;

        l = malloc(sizeof(*l) + n_fds * sizeof(int));
        if (!l)
                return -ENOMEM;
        l->n_fds = l->capacity = n_fds;
        if (n_fds > 0)
                memcpy(l->fds, fds, n_fds * sizeof(int));
        *ret = l;
        return 0;
}

int fdlist_refill(FdList **l, const int *fds, size_t n_fds) {
        if (*l && (*l)->capacity >= n_fds) {
                fdlist_recycle(*l);
                (*l)->n_fds = n_fds;
                if (n_fds > 0)
                        memcpy((*l)->fds, fds, n_fds * sizeof(int));
                return 0;
        }
        *l = fdlist_free(*l);
        return fdlist_new(l, fds, n_fds);
}

FdList *fdlist_recycle(FdList *l) {
        if (!l)
                return NULL;
        for (size_t i = 0; i < l->n_fds; i++)
                safe_close(l->fds[i]);
        l->n_fds = 0;
        return l;
}

int fdlist_new_dup(FdList **ret, const int *fds, size_t n_fds) {
        _cleanup_(fdlist_freep) FdList *l = NULL;
        int r;

        r = fdlist_new(&l, fds, n_fds);
        if (r < 0)
                return r;
        /* Mark every slot empty first so that a failure half way closes only our copies. */
        for (size_t i = 0; i < n_fds; i++)
                l->fds[i] = -EBADF;
        for (size_t i = 0; i < n_fds; i++) {
                l->fds[i] = fcntl(fds[i], F_DUPFD_CLOEXEC, 3);
                if (l->fds[i] < 0) {
                        l->fds[i] = -EBADF;
                        return negative_errno();
                }
        }
        *ret = TAKE_PTR(l);
        return 0;
}

FdList *fdlist_free(FdList *l) {
        if (!l)
                return NULL;
        for (size_t i = 0; i < l->n_fds; i++)
                safe_close(l->fds[i]);
        free(l);
        return NULL;
}

size_t fdlist_count(const FdList *l) {
        return l ? l->n_fds : 0;
}

int fdlist_get(const FdList *l, size_t index) {
        if (index >= fdlist_count(l))
                return -ENXIO;
        return l->fds[index] >= 0 ? l->fds[index] : -EBADF;
}

int fdlist_take(FdList *l, size_t index) {
        int r;

        r = fdlist_get(l, index);
        if (r < 0)
                return r;
        return TAKE_FD(l->fds[index]);
}

const int *fdlist_data(const FdList *l) {
        return l ? l->fds : NULL;
}
