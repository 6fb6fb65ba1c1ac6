/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * A balanced (AVL) tree of non-overlapping IOVA areas [start, last], keyed by
 * start.  Nodes are embedded in the caller's objects (the tree never
 * allocates), and each node carries its subtree's first start, last end and
 * largest free hole between two of its areas.  That augmentation makes
 * insert, remove, lookup and the lowest-free-hole search O(log n): the search
 * skips every subtree whose holes are all too small for the request.
 *
 * Recursion depth is bounded by the AVL height (< 1.45 log2 n, 29 at 1M
 * areas), so no parent pointers are needed.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct IovaNode IovaNode;

struct IovaNode {
        IovaNode *left, *right;
        uint64_t start;
        uint64_t last;          /* inclusive */
        uint64_t subtree_first; /* lowest start in this subtree */
        uint64_t subtree_last;  /* highest last in this subtree */
        uint64_t max_gap;       /* largest hole (bytes) between two areas of this subtree, 0 if none */
        int32_t height;
};

typedef struct IovaTree {
        IovaNode *root;
        size_t n;
} IovaTree;

#define IOVA_TREE_INIT ((IovaTree){ .root = NULL, .n = 0 })

/* Inserts node (start and last set, start <= last); -EEXIST when it overlaps an area. */
int iova_tree_insert(IovaTree *t, IovaNode *node);
/* Removes a node that is in the tree. */
void iova_tree_remove(IovaTree *t, IovaNode *node);

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

/* Checks every invariant (order, overlap, balance, augmentation); for tests. */
bool iova_tree_check(const IovaTree *t);

/* Calls fn on every node in order; fn may not modify the tree. */
void iova_tree_foreach(const IovaTree *t, void (*fn)(IovaNode *n, void *userdata), void *userdata);

/*
 * Removes every node in post-order, calling fn (may free the node).  Leaves
 * the tree empty.  O(n) without rebalancing.
 */
void iova_tree_clear(IovaTree *t, void (*fn)(IovaNode *n, void *userdata), void *userdata);
