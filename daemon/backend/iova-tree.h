/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * An ordered set of non-overlapping IOVA areas [start, last], keyed by start.
 * Areas are the caller's objects, which embed an IovaNode; the tree hands
 * back those same pointers.
 *
 * The set is a B+tree of wide, cache-line aligned nodes: leaves hold up to
 * 21 areas' start, last and pointer inline, inner nodes up to 15 children
 * with each child's first start, last end and largest free hole between two
 * of its areas.  At a million areas that is five levels instead of an AVL
 * tree's ~25, and a level costs one prefetched node instead of one cache
 * miss per comparison.  The augmentation keeps insert, remove, lookup and
 * the lowest-free-hole search O(log n): the search skips every subtree whose
 * holes are all too small for the request.
 *
 * Insert allocates a node when a full one splits (-ENOMEM, the tree
 * unchanged); remove only ever frees.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct IovaNode IovaNode;

struct IovaNode {
        uint64_t start;
        uint64_t last; /* inclusive */
};

/* The tree's own nodes are private to iova-tree.c. */
typedef struct IovaTreeNode IovaTreeNode;

typedef struct IovaTree {
        IovaTreeNode *root;
        size_t n;
} IovaTree;

#define IOVA_TREE_INIT ((IovaTree){ .root = NULL, .n = 0 })

/*
 * Inserts node (start and last set, start <= last, neither changed while it
 * is in the tree); -EEXIST when it overlaps an area, -ENOMEM.
 */
int iova_tree_insert(IovaTree *t, IovaNode *node);
/* Removes a node that is in the tree. */
void iova_tree_remove(IovaTree *t, IovaNode *node);
/*
 * Removes the lowest area that intersects [start, last] when it lies inside that range, in
 * one descent: 0 and *ret, the area removed; -ENOENT when none intersects; -ERANGE and *ret,
 * left in the tree, when it reaches out of the range.
 */
int iova_tree_take_first(IovaTree *t, uint64_t start, uint64_t last, IovaNode **ret);

/* The area containing iova, or NULL. */
IovaNode *iova_tree_find(const IovaTree *t, uint64_t iova);
/* The lowest area that intersects [start, last], or NULL. */
IovaNode *iova_tree_first_overlap(const IovaTree *t, uint64_t start, uint64_t last);
/* The lowest area, and the one after node (by start). */
IovaNode *iova_tree_first(const IovaTree *t);
IovaNode *iova_tree_next(const IovaTree *t, const IovaNode *node);

/*
 * Lowest IOVA s inside [lo, hi] such that [s, s + length - 1] is free and
 * within [lo, hi], where s = ALIGN_UP(hole_start, align) | offset for the
 * hole s lies in (align a power of two, offset < align or a multiple of it:
 * the kernel keeps the source's sub-page offset this way).  As the kernel
 * does, a candidate must also start strictly before the hole's last byte.
 * Returns 0 and *ret, or -ENOSPC.
 */
int iova_tree_find_hole(const IovaTree *t, uint64_t lo, uint64_t hi, uint64_t length,
                        uint64_t align, uint64_t offset, uint64_t *ret);

/* Checks every invariant (order, overlap, fill, depth, augmentation); for tests. */
bool iova_tree_check(const IovaTree *t);

/* Calls fn on every node in order; fn may not modify the tree. */
void iova_tree_foreach(const IovaTree *t, void (*fn)(IovaNode *n, void *userdata), void *userdata);

/*
 * Removes every node in order, calling fn (may free the node).  Leaves the
 * tree empty.  O(n).
 */
void iova_tree_clear(IovaTree *t, void (*fn)(IovaNode *n, void *userdata), void *userdata);
