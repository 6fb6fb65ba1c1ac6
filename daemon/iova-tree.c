/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>

#include "iova-tree.h"
#include "macros.h"

static inline int32_t height(const IovaNode *n) {
        return n ? n->height : 0;
}

/* Recomputes n's augmentation from its children, which must be up to date. */
static void update(IovaNode *n) {
        uint64_t gap = 0;

        n->height = 1 + MAX(height(n->left), height(n->right));
        n->subtree_first = n->left ? n->left->subtree_first : n->start;
        n->subtree_last = n->right ? n->right->subtree_last : n->last;

        if (n->left) {
                gap = MAX(gap, n->left->max_gap);
                gap = MAX(gap, n->start - n->left->subtree_last - 1);
        }
        if (n->right) {
                gap = MAX(gap, n->right->max_gap);
                gap = MAX(gap, n->right->subtree_first - n->last - 1);
        }
        n->max_gap = gap;
}

static IovaNode *rotate_right(IovaNode *n) {
        IovaNode *l = n->left;

        n->left = l->right;
        l->right = n;
        update(n);
        update(l);
        return l;
}

static IovaNode *rotate_left(IovaNode *n) {
        IovaNode *r = n->right;

        n->right = r->left;
        r->left = n;
        update(n);
        update(r);
        return r;
}

static IovaNode *rebalance(IovaNode *n) {
        int32_t b;

        update(n);
        b = height(n->left) - height(n->right);
        if (b > 1) {
                if (height(n->left->left) < height(n->left->right))
                        n->left = rotate_left(n->left);
                return rotate_right(n);
        }
        if (b < -1) {
                if (height(n->right->right) < height(n->right->left))
                        n->right = rotate_right(n->right);
                return rotate_left(n);
        }
        return n;
}

typedef struct Aug {
        const IovaNode *ptr;
        int32_t height;
        uint64_t first, last, max_gap;
} Aug;

static Aug aug_of(const IovaNode *n) {
        if (!n)
                return (Aug){ .ptr = NULL };
        return (Aug){ n, n->height, n->subtree_first, n->subtree_last, n->max_gap };
}

/* Whether the child subtree is the same root with the same augmentation as before. */
static bool aug_same(const Aug *a, const IovaNode *n) {
        return a->ptr == n && (!n || (a->height == n->height && a->first == n->subtree_first &&
                                      a->last == n->subtree_last && a->max_gap == n->max_gap));
}

/*
 * One descent both finds the slot and checks overlap: at the slot, the
 * in-order neighbours are the last ancestors where the path turned right
 * (pred) and left (succ).  On the way back up, a level whose child came back
 * unchanged stops the work: nothing above it can change either, which
 * spares reading the siblings of the upper path.
 */
static IovaNode *insert_rec(IovaNode *root, IovaNode *node, const IovaNode *pred,
                            const IovaNode *succ, bool *overlap) {
        IovaNode **link, *child;
        Aug before;

        if (!root) {
                if ((pred && pred->last >= node->start) || (succ && succ->start <= node->last)) {
                        *overlap = true;
                        return NULL;
                }
                return node;
        }
        if (node->start == root->start) {
                *overlap = true;
                return root;
        }
        if (node->start < root->start) {
                link = &root->left;
                succ = root;
        } else {
                link = &root->right;
                pred = root;
        }
        before = aug_of(*link);
        child = insert_rec(*link, node, pred, succ, overlap);
        if (*overlap)
                return root; /* nothing was linked */
        *link = child;
        if (aug_same(&before, child))
                return root;
        return rebalance(root);
}

int iova_tree_insert(IovaTree *t, IovaNode *node) {
        bool overlap = false;
        IovaNode *root;

        if (node->start > node->last)
                return -EINVAL;
        node->left = node->right = NULL;
        update(node);
        root = insert_rec(t->root, node, NULL, NULL, &overlap);
        if (overlap)
                return -EEXIST;
        t->root = root;
        t->n++;
        return 0;
}

/* Detaches the lowest node of a non-empty subtree into *ret_min; returns the new subtree. */
static IovaNode *remove_min(IovaNode *root, IovaNode **ret_min) {
        if (!root->left) {
                *ret_min = root;
                return root->right;
        }
        root->left = remove_min(root->left, ret_min);
        return rebalance(root);
}

static IovaNode *remove_rec(IovaNode *root, IovaNode *node) {
        IovaNode *succ, **link;
        Aug before;

        if (!root)
                return NULL;
        if (node->start == root->start) {
                /* Areas never overlap, so start is unique: root == node. */
                if (!root->left)
                        return root->right;
                if (!root->right)
                        return root->left;
                root->right = remove_min(root->right, &succ);
                succ->left = root->left;
                succ->right = root->right;
                return rebalance(succ);
        }
        link = node->start < root->start ? &root->left : &root->right;
        before = aug_of(*link);
        *link = remove_rec(*link, node);
        if (aug_same(&before, *link))
                return root;
        return rebalance(root);
}

void iova_tree_remove(IovaTree *t, IovaNode *node) {
        t->root = remove_rec(t->root, node);
        node->left = node->right = NULL;
        t->n--;
}

IovaNode *iova_tree_first_overlap(const IovaTree *t, uint64_t start, uint64_t last) {
        IovaNode *n = t->root, *cand = NULL;

        /* Areas are disjoint and sorted, so their ends are sorted too: find the
         * lowest area ending at or after start, then check it begins by last. */
        while (n) {
                if (n->last >= start) {
                        cand = n;
                        n = n->left;
                } else
                        n = n->right;
        }
        if (cand && cand->start <= last)
                return cand;
        return NULL;
}

IovaNode *iova_tree_find(const IovaTree *t, uint64_t iova) {
        return iova_tree_first_overlap(t, iova, iova);
}

IovaNode *iova_tree_first(const IovaTree *t) {
        IovaNode *n = t->root;

        while (n && n->left)
                n = n->left;
        return n;
}

IovaNode *iova_tree_next(const IovaTree *t, const IovaNode *node) {
        IovaNode *n = t->root, *cand = NULL;

        while (n) {
                if (n->start > node->start) {
                        cand = n;
                        n = n->left;
                } else
                        n = n->right;
        }
        return cand;
}

typedef struct HoleSearch {
        uint64_t lo, hi, length, align, offset;
        uint64_t cursor;   /* first byte after the previous area */
        bool cursor_valid; /* false once an area ended at UINT64_MAX */
        bool done;
        bool found;
        uint64_t result;
} HoleSearch;

/* Tries the free hole [a, b]; sets done when a candidate fits. */
static void hole_try(HoleSearch *s, uint64_t a, uint64_t b) {
        uint64_t cand;

        a = MAX(a, s->lo);
        b = MIN(b, s->hi);
        if (a > b)
                return;
        if (ADD_OVERFLOW(a, s->align - 1, &cand))
                return;
        cand &= ~(s->align - 1);
        cand |= s->offset;
        if (cand >= b || b - cand < s->length - 1)
                return;
        s->result = cand;
        s->found = s->done = true;
}

static void cursor_after(HoleSearch *s, uint64_t last) {
        if (last == UINT64_MAX)
                s->cursor_valid = false;
        else
                s->cursor = last + 1;
}

static void search_rec(HoleSearch *s, const IovaNode *n) {
        if (!n || s->done || !s->cursor_valid)
                return;

        /* Every hole this subtree closes lies below lo. */
        if (n->subtree_last < s->lo) {
                cursor_after(s, n->subtree_last);
                return;
        }
        if (s->cursor > s->hi) {
                s->done = true; /* nothing further can start inside [lo, hi] */
                return;
        }
        /* Only the hole before the subtree can matter: it starts past hi, or its
         * inner holes are all too small. */
        if (n->subtree_first > s->hi || n->max_gap < s->length) {
                if (s->cursor < n->subtree_first)
                        hole_try(s, s->cursor, n->subtree_first - 1);
                if (n->subtree_first > s->hi)
                        s->done = true;
                if (!s->done)
                        cursor_after(s, n->subtree_last);
                return;
        }

        search_rec(s, n->left);
        if (s->done || !s->cursor_valid)
                return;
        if (s->cursor < n->start)
                hole_try(s, s->cursor, n->start - 1);
        if (s->done)
                return;
        cursor_after(s, n->last);
        search_rec(s, n->right);
}

int iova_tree_find_hole(const IovaTree *t, uint64_t lo, uint64_t hi, uint64_t length,
                        uint64_t align, uint64_t offset, uint64_t *ret) {
        HoleSearch s = {
                .lo = lo, .hi = hi, .length = length, .align = align ?: 1, .offset = offset,
                .cursor = 0, .cursor_valid = true,
        };

        if (length == 0 || lo > hi)
                return -ENOSPC;

        search_rec(&s, t->root);
        if (!s.done && s.cursor_valid)
                hole_try(&s, s.cursor, UINT64_MAX);
        if (!s.found)
                return -ENOSPC;
        *ret = s.result;
        return 0;
}

static bool check_rec(const IovaNode *n, const IovaNode **prev) {
        IovaNode copy;

        if (!n)
                return true;
        if (!check_rec(n->left, prev))
                return false;
        if (n->start > n->last)
                return false;
        if (*prev && (*prev)->last >= n->start)
                return false;
        *prev = n;
        if (!check_rec(n->right, prev))
                return false;

        copy = *n;
        update(&copy);
        if (copy.height != n->height || copy.subtree_first != n->subtree_first ||
            copy.subtree_last != n->subtree_last || copy.max_gap != n->max_gap)
                return false;
        return height(n->left) - height(n->right) <= 1 && height(n->right) - height(n->left) <= 1;
}

bool iova_tree_check(const IovaTree *t) {
        const IovaNode *prev = NULL;

        return check_rec(t->root, &prev);
}

static void foreach_rec(IovaNode *n, void (*fn)(IovaNode *n, void *userdata), void *userdata) {
        if (!n)
                return;
        foreach_rec(n->left, fn, userdata);
        fn(n, userdata);
        foreach_rec(n->right, fn, userdata);
}

void iova_tree_foreach(const IovaTree *t, void (*fn)(IovaNode *n, void *userdata), void *userdata) {
        foreach_rec(t->root, fn, userdata);
}

static void clear_rec(IovaNode *n, void (*fn)(IovaNode *n, void *userdata), void *userdata) {
        IovaNode *l, *r;

        if (!n)
                return;
        l = n->left;
        r = n->right;
        clear_rec(l, fn, userdata);
        clear_rec(r, fn, userdata);
        n->left = n->right = NULL;
        if (fn)
                fn(n, userdata);
}

void iova_tree_clear(IovaTree *t, void (*fn)(IovaNode *n, void *userdata), void *userdata) {
        clear_rec(t->root, fn, userdata);
        t->root = NULL;
        t->n = 0;
}
