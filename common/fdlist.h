/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * FdList: the file descriptors that arrived with one message.  The list owns
 * them; whoever needs one takes it out with fdlist_take(), and fdlist_free()
 * closes whatever nobody took, so a client that sends more fds than a method
 * consumes cannot make the daemon leak them.
 */

#include <stddef.h>

#include "macros.h"

typedef struct FdList FdList;

/* Creates a list that owns fds[0..n_fds) on success (on failure the caller still owns them). */
int fdlist_new(FdList **ret, const int *fds, size_t n_fds);
/*
 * Puts fds[0..n_fds) in *l when it can hold them (closing what it held), else in a new list
 * that replaces it: a list kept for reuse makes steady traffic allocate nothing.  On failure
 * *l is NULL and the caller still owns fds.
 */
int fdlist_refill(FdList **l, const int *fds, size_t n_fds);
/* Closes the fds the list still owns and empties it, keeping its memory; returns l. */
FdList *fdlist_recycle(FdList *l);
/* Creates a list of O_CLOEXEC duplicates of fds[0..n_fds); the caller keeps the originals. */
int fdlist_new_dup(FdList **ret, const int *fds, size_t n_fds);
/* Closes every fd still in the list and frees it; accepts NULL, returns NULL. */
FdList *fdlist_free(FdList *l);
DEFINE_TRIVIAL_CLEANUP_FUNC(FdList *, fdlist_free);

/* The number of slots, taken or not; 0 for NULL. */
size_t fdlist_count(const FdList *l);
/* The fd at index, still owned by the list; -ENXIO if out of range, -EBADF if taken. */
int fdlist_get(const FdList *l, size_t index);
/* Moves the fd at index to the caller; -ENXIO if out of range, -EBADF if already taken. */
int fdlist_take(FdList *l, size_t index);
/* The array of fds for sendmsg(); taken slots hold -EBADF. */
const int *fdlist_data(const FdList *l);
