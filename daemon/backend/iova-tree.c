/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "iova-tree.h"
#include "macros.h"

/*
 * Node geometry: both kinds are 512 bytes, eight cache lines, allocated on a
 * cache-line boundary so a prefetch of eight lines fetches exactly one node.
 * Fields are kept as parallel arrays: a descent compares against one array
 * only (the ends), which spans three lines of a leaf and two of an inner
 * node.
 */
#define LEAF_MAX 21
#define LEAF_MIN (LEAF_MAX / 2)
#define INNER_MAX 15
#define INNER_MIN (INNER_MAX / 2)
#define CACHE_LINE 64
/* Inner nodes have at least INNER_MIN >= 7 children, so 16 levels cover any address space. */
#define MAX_DEPTH 16

struct IovaTreeNode {
        uint16_t n;     /* entries in use */
        uint16_t level; /* 0 for a leaf, the height above the leaves otherwise */
};

typedef struct Leaf {
        IovaTreeNode hdr;
        uint64_t last[LEAF_MAX]; /* the search key: areas are disjoint, so ends are sorted too */
        uint64_t start[LEAF_MAX];
        IovaNode *area[LEAF_MAX];
} __attribute__((aligned(CACHE_LINE))) Leaf;

typedef struct Inner {
        IovaTreeNode hdr;
        uint64_t last[INNER_MAX];  /* highest end in each child */
        uint64_t first[INNER_MAX]; /* lowest start in each child */
        uint64_t gap[INNER_MAX];   /* largest hole between two areas of each child, 0 if none */
        IovaTreeNode *child[INNER_MAX];
} __attribute__((aligned(CACHE_LINE))) Inner;

_Static_assert(sizeof(Leaf) == 8 * CACHE_LINE, "a leaf is eight cache lines");
_Static_assert(sizeof(Inner) == 8 * CACHE_LINE, "an inner node is eight cache lines");

/* A subtree as its parent sees it. */
typedef struct Summary {
        uint64_t first, last, gap;
} Summary;

typedef struct PathStep {
        Inner *node;
        unsigned idx;
} PathStep;

static inline Leaf *to_leaf(IovaTreeNode *n) {
        return (Leaf *)n;
}

static inline Inner *to_inner(IovaTreeNode *n) {
        return (Inner *)n;
}

static inline void prefetch_node(const IovaTreeNode *n) {
        for (size_t off = 0; off < sizeof(Leaf); off += CACHE_LINE)
                __builtin_prefetch((const char *)n + off);
}

static void *node_alloc(unsigned level) {
        IovaTreeNode *n = aligned_alloc(CACHE_LINE, level ? sizeof(Inner) : sizeof(Leaf));

        if (n)
                *n = (IovaTreeNode){ .n = 0, .level = (uint16_t)level };
        return n;
}

/*
 * The first index whose value is >= key, n when there is none.  The two ends are tried first:
 * maps in ascending order land past the last entry, unmaps in the same order at the first.
 */
static inline unsigned lower_bound(const uint64_t *v, unsigned n, uint64_t key) {
        unsigned lo = 0;

        if (n == 0 || v[0] >= key)
                return 0;
        if (v[n - 1] < key)
                return n;
        while (n > 0) {
                unsigned half = n / 2;

                if (v[lo + half] < key) {
                        lo += half + 1;
                        n -= half + 1;
                } else
                        n = half;
        }
        return lo;
}

static Summary summarize(IovaTreeNode *x) {
        Summary s = {};

        if (x->level == 0) {
                Leaf *l = to_leaf(x);

                s.first = l->start[0];
                s.last = l->last[l->hdr.n - 1];
                for (unsigned i = 1; i < l->hdr.n; i++)
                        s.gap = MAX(s.gap, l->start[i] - l->last[i - 1] - 1);
        } else {
                Inner *in = to_inner(x);

                s.first = in->first[0];
                s.last = in->last[in->hdr.n - 1];
                for (unsigned i = 0; i < in->hdr.n; i++) {
                        s.gap = MAX(s.gap, in->gap[i]);
                        if (i > 0)
                                s.gap = MAX(s.gap, in->first[i] - in->last[i - 1] - 1);
                }
        }
        return s;
}

/* Stores child i and its summary in a slot that holds nothing yet (opened, split off, new root). */
static void inner_fill(Inner *p, unsigned i, IovaTreeNode *child) {
        Summary s = summarize(child);

        p->child[i] = child;
        p->first[i] = s.first;
        p->last[i] = s.last;
        p->gap[i] = s.gap;
}

/*
 * The summary of leaf l after an entry went in at pos, from its largest hole before
 * (old_gap): an entry at an edge adds a hole, one inside splits a hole, and only when that
 * hole was the largest must the others be looked at again.
 */
static Summary leaf_summary_inserted(Leaf *l, unsigned pos, uint64_t old_gap) {
        unsigned n = l->hdr.n;
        Summary s = { .first = l->start[0], .last = l->last[n - 1], .gap = old_gap };

        if (n < 2)
                return s;
        if (pos == 0)
                s.gap = MAX(s.gap, l->start[1] - l->last[0] - 1);
        else if (pos == n - 1)
                s.gap = MAX(s.gap, l->start[pos] - l->last[pos - 1] - 1);
        else if (l->start[pos + 1] - l->last[pos - 1] - 1 == old_gap)
                return summarize(&l->hdr);
        return s;
}

/*
 * The summary of leaf l (not empty) after the entry at pos left it, from its largest hole
 * before (old_gap): an entry inside merges its two holes; one at an edge took the hole
 * lost with it, and only when that was the largest must the others be looked at again.
 */
static Summary leaf_summary_removed(Leaf *l, unsigned pos, bool edge, uint64_t lost,
                                    uint64_t old_gap) {
        Summary s = { .first = l->start[0], .last = l->last[l->hdr.n - 1], .gap = old_gap };

        if (!edge)
                s.gap = MAX(s.gap, l->start[pos] - l->last[pos - 1] - 1);
        else if (lost == old_gap && old_gap > 0)
                return summarize(&l->hdr);
        return s;
}

/* Stores child i's summary s; returns whether it changed. */
static bool inner_put(Inner *p, unsigned i, IovaTreeNode *child, Summary s) {
        bool changed = p->child[i] != child || p->first[i] != s.first || p->last[i] != s.last ||
                       p->gap[i] != s.gap;

        p->child[i] = child;
        p->first[i] = s.first;
        p->last[i] = s.last;
        p->gap[i] = s.gap;
        return changed;
}

/* Stores child i's summary; returns whether it changed. */
static bool inner_set(Inner *p, unsigned i, IovaTreeNode *child) {
        return inner_put(p, i, child, summarize(child));
}

/*
 * Walks from the root to the leaf that holds (or would hold) the lowest
 * area ending at or after key: at each level, the first child whose highest
 * end reaches key, else the last child.  Since ends are sorted, that leaf
 * also holds the in-order neighbours an insert must check for overlap.
 */
static Leaf *descend(const IovaTree *t, uint64_t key, PathStep *path, unsigned *ret_depth) {
        IovaTreeNode *x = t->root;
        unsigned d = 0;

        while (x->level > 0) {
                Inner *in = to_inner(x);
                unsigned i = lower_bound(in->last, in->hdr.n, key);

                if (i == in->hdr.n)
                        i--;
                x = in->child[i];
                prefetch_node(x);
                if (path)
                        path[d] = (PathStep){ in, i };
                d++;
        }
        if (ret_depth)
                *ret_depth = d;
        return to_leaf(x);
}

static void leaf_put(Leaf *l, unsigned i, uint64_t start, uint64_t last, IovaNode *area) {
        l->start[i] = start;
        l->last[i] = last;
        l->area[i] = area;
}

static void leaf_move(Leaf *dst, unsigned to, Leaf *src, unsigned from, unsigned count) {
        if (count == 0)
                return; /* an append, the common insert: three calls less */
        memmove(dst->start + to, src->start + from, count * sizeof(uint64_t));
        memmove(dst->last + to, src->last + from, count * sizeof(uint64_t));
        memmove(dst->area + to, src->area + from, count * sizeof(IovaNode *));
}

static void inner_move(Inner *dst, unsigned to, Inner *src, unsigned from, unsigned count) {
        memmove(dst->first + to, src->first + from, count * sizeof(uint64_t));
        memmove(dst->last + to, src->last + from, count * sizeof(uint64_t));
        memmove(dst->gap + to, src->gap + from, count * sizeof(uint64_t));
        memmove(dst->child + to, src->child + from, count * sizeof(IovaTreeNode *));
}

/* Moves the upper entries of x, from index keep on, to the front of the empty node r. */
static void node_move_tail(IovaTreeNode *x, IovaTreeNode *r, unsigned keep) {
        unsigned count = x->n - keep;

        if (x->level == 0)
                leaf_move(to_leaf(r), 0, to_leaf(x), keep, count);
        else
                inner_move(to_inner(r), 0, to_inner(x), keep, count);
        r->n = (uint16_t)count;
        x->n = (uint16_t)keep;
}

/* Opens a hole at index i of a node that has room. */
static void node_open(IovaTreeNode *x, unsigned i) {
        if (x->level == 0)
                leaf_move(to_leaf(x), i + 1, to_leaf(x), i, x->n - i);
        else
                inner_move(to_inner(x), i + 1, to_inner(x), i, x->n - i);
        x->n++;
}

/*
 * Makes room at index *i of the full node x by moving its upper half to the
 * empty node r, and points x_at and i at the node and index to fill.  An
 * append at the right edge of the tree (the pattern of a VMM mapping its
 * RAM in order) keeps x full and starts r with the new entry alone, so
 * ascending inserts fill leaves completely instead of half.
 */
static void node_split(IovaTreeNode *x, IovaTreeNode *r, unsigned *i, bool append,
                       IovaTreeNode **x_at) {
        unsigned keep = append ? x->n : (x->n + 1) / 2;

        r->level = x->level;
        if (*i >= keep) {
                node_move_tail(x, r, keep);
                *i -= keep;
                *x_at = r;
        } else {
                /* The new entry stays on the left, so the left keeps one fewer. */
                node_move_tail(x, r, keep - 1);
                *x_at = x;
        }
        node_open(*x_at, *i);
}

/* Whether the path runs down the right edge of the tree. */
static bool path_rightmost(const PathStep *path, unsigned depth) {
        for (unsigned d = 0; d < depth; d++)
                if (path[d].idx != path[d].node->hdr.n - 1u)
                        return false;
        return true;
}

/*
 * Allocates every node the splits of an insert into a full leaf will need: the leaf's new
 * sibling, one for each full parent above it, and a new root when the split reaches it.
 * Done up front, so failure leaves the tree as it was.
 */
static int alloc_spares(const PathStep *path, unsigned depth, IovaTreeNode **spare,
                        unsigned *ret_n) {
        unsigned d = depth, n_spare = 1;

        while (d > 0 && path[d - 1].node->hdr.n == INNER_MAX) {
                d--;
                n_spare++;
        }
        if (d == 0)
                n_spare++; /* a new root */
        for (unsigned k = 0; k < n_spare; k++) {
                spare[k] = node_alloc(k == 0 ? 0 : 1);
                if (!spare[k]) {
                        for (unsigned j = 0; j < k; j++)
                                free(spare[j]);
                        return -ENOMEM;
                }
        }
        *ret_n = n_spare;
        return 0;
}

/*
 * Walks up from *x, which just took an entry, refreshing each parent's summary of its child
 * and, while a split left a new node right of the child, inserting that node into the
 * parent (splitting the parent in turn, with nodes from spare).  Returns the node that the
 * root itself split off, NULL when it did not split; *x ends at the root.
 */
static IovaTreeNode *insert_upwards(PathStep *path, unsigned depth, IovaTreeNode **x,
                                    IovaTreeNode *right, IovaTreeNode **spare,
                                    unsigned *used, unsigned leaf_pos) {
        for (unsigned d = depth; d-- > 0;) {
                Inner *p = path[d].node;
                unsigned i = path[d].idx + 1;
                /* A leaf that took the entry without a split: what changed is known. */
                Summary sum = d == depth - 1 && !right
                        ? leaf_summary_inserted(to_leaf(*x), leaf_pos, p->gap[path[d].idx])
                        : summarize(*x);

                if (!inner_put(p, path[d].idx, *x, sum) && !right)
                        break; /* nothing above can change either */
                if (right) {
                        IovaTreeNode *at = &p->hdr, *r = NULL;

                        if (p->hdr.n < INNER_MAX)
                                node_open(&p->hdr, i);
                        else {
                                r = spare[(*used)++];
                                node_split(&p->hdr, r, &i, false, &at);
                        }
                        inner_fill(to_inner(at), i, right);
                        /* The split may have moved the entry just refreshed. */
                        right = r;
                }
                *x = &p->hdr;
        }
        return right;
}

static int insert_first(IovaTree *t, IovaNode *node) {
        Leaf *leaf = node_alloc(0);

        if (!leaf)
                return -ENOMEM;
        leaf->hdr.n = 1;
        leaf_put(leaf, 0, node->start, node->last, node);
        t->root = &leaf->hdr;
        t->n = 1;
        return 0;
}

/* Inserts node at pos of the full leaf, which descend() reached through path: splits. */
static int insert_split(IovaTree *t, IovaNode *node, Leaf *leaf, unsigned pos,
                        PathStep *path, unsigned depth) {
        IovaTreeNode *spare[MAX_DEPTH + 2] = {}, *x = &leaf->hdr, *right, *at;
        unsigned n_spare = 0, used = 0;
        int r;

        r = alloc_spares(path, depth, spare, &n_spare);
        if (r < 0)
                return r;
        right = spare[used++];
        node_split(x, right, &pos, path_rightmost(path, depth) && pos == LEAF_MAX, &at);
        leaf_put(to_leaf(at), pos, node->start, node->last, node);

        right = insert_upwards(path, depth, &x, right, spare, &used, pos);
        if (right) {
                Inner *root = to_inner(spare[used++]);

                root->hdr.level = (uint16_t)(x->level + 1);
                root->hdr.n = 2;
                inner_fill(root, 0, x);
                inner_fill(root, 1, right);
                t->root = &root->hdr;
        }
        assert(used == n_spare);
        t->n++;
        return 0;
}

int iova_tree_insert(IovaTree *t, IovaNode *node) {
        PathStep path[MAX_DEPTH];
        unsigned depth, pos;
        IovaTreeNode *x;
        Leaf *leaf;

        if (node->start > node->last)
                return -EINVAL;
        if (!t->root)
                return insert_first(t, node);

        leaf = descend(t, node->start, path, &depth);
        pos = lower_bound(leaf->last, leaf->hdr.n, node->start);
        /* The area before pos ends below start; the one at pos must begin after last. */
        if (pos < leaf->hdr.n && leaf->start[pos] <= node->last)
                return -EEXIST;
        if (leaf->hdr.n == LEAF_MAX)
                return insert_split(t, node, leaf, pos, path, depth);

        /* A leaf with room: nothing splits, only the summaries above change. */
        x = &leaf->hdr;
        node_open(x, pos);
        leaf_put(leaf, pos, node->start, node->last, node);
        (void)insert_upwards(path, depth, &x, NULL, NULL, NULL, pos);
        t->n++;
        return 0;
}

/*
 * Child i of p fell below its minimum: merges it with a neighbour, or
 * shares the two evenly when they do not fit one node.
 */
static void rebalance(Inner *p, unsigned i) {
        unsigned a = i > 0 ? i - 1 : i, b = a + 1;
        IovaTreeNode *x = p->child[a], *y = p->child[b];
        unsigned max = x->level == 0 ? LEAF_MAX : INNER_MAX, total = x->n + y->n;

        if (total <= max) {
                if (x->level == 0)
                        leaf_move(to_leaf(x), x->n, to_leaf(y), 0, y->n);
                else
                        inner_move(to_inner(x), x->n, to_inner(y), 0, y->n);
                x->n = (uint16_t)total;
                free(y);
                inner_move(p, b, p, b + 1, p->hdr.n - b - 1);
                p->hdr.n--;
                (void)inner_set(p, a, x);
                return;
        }
        if (x->n > y->n) {
                unsigned count = x->n - total / 2;

                /* x gives its upper entries to the front of y */
                if (x->level == 0) {
                        leaf_move(to_leaf(y), count, to_leaf(y), 0, y->n);
                        leaf_move(to_leaf(y), 0, to_leaf(x), x->n - count, count);
                } else {
                        inner_move(to_inner(y), count, to_inner(y), 0, y->n);
                        inner_move(to_inner(y), 0, to_inner(x), x->n - count, count);
                }
                x->n = (uint16_t)(x->n - count);
                y->n = (uint16_t)(y->n + count);
        } else {
                unsigned count = y->n - total / 2;

                /* y gives its lower entries to the end of x */
                if (x->level == 0) {
                        leaf_move(to_leaf(x), x->n, to_leaf(y), 0, count);
                        leaf_move(to_leaf(y), 0, to_leaf(y), count, y->n - count);
                } else {
                        inner_move(to_inner(x), x->n, to_inner(y), 0, count);
                        inner_move(to_inner(y), 0, to_inner(y), count, y->n - count);
                }
                x->n = (uint16_t)(x->n + count);
                y->n = (uint16_t)(y->n - count);
        }
        (void)inner_set(p, a, x);
        (void)inner_set(p, b, y);
}

/* Removes the entry at pos of leaf, which descend() reached through path. */
static void remove_at(IovaTree *t, Leaf *leaf, unsigned pos, const PathStep *path,
                      unsigned depth) {
        IovaTreeNode *x;
        uint64_t lost = 0;
        bool rightmost, edge;

        /* The hole an entry at an edge takes with it. */
        edge = pos == 0 || pos == leaf->hdr.n - 1u;
        if (edge && leaf->hdr.n > 1)
                lost = pos == 0 ? leaf->start[1] - leaf->last[0] - 1
                                : leaf->start[pos] - leaf->last[pos - 1] - 1;
        leaf_move(leaf, pos, leaf, pos + 1, leaf->hdr.n - pos - 1);
        leaf->hdr.n--;
        t->n--;
        rightmost = path_rightmost(path, depth);

        x = &leaf->hdr;
        for (unsigned d = depth; d-- > 0;) {
                Inner *p = path[d].node;
                bool under;

                /* The last leaf may be short (see node_split) until it empties. */
                if (x->level == 0)
                        under = rightmost ? x->n == 0 : x->n < LEAF_MIN;
                else
                        under = x->n < INNER_MIN;
                if (under)
                        rebalance(p, path[d].idx);
                else if (!inner_put(p, path[d].idx, x,
                                    x->level == 0 ? leaf_summary_removed(leaf, pos, edge, lost,
                                                                         p->gap[path[d].idx])
                                                  : summarize(x)))
                        break; /* nothing above can change either */
                x = &p->hdr;
        }

        x = t->root;
        if (x->level == 0 && x->n == 0) {
                free(x);
                t->root = NULL;
        } else if (x->level > 0 && x->n == 1) {
                t->root = to_inner(x)->child[0];
                free(x);
        }
}

void iova_tree_remove(IovaTree *t, IovaNode *node) {
        PathStep path[MAX_DEPTH];
        unsigned depth, pos;
        Leaf *leaf;

        leaf = descend(t, node->start, path, &depth);
        pos = lower_bound(leaf->last, leaf->hdr.n, node->start);
        assert(pos < leaf->hdr.n && leaf->area[pos] == node);
        remove_at(t, leaf, pos, path, depth);
}

int iova_tree_take_first(IovaTree *t, uint64_t start, uint64_t last, IovaNode **ret) {
        PathStep path[MAX_DEPTH];
        unsigned depth, pos;
        Leaf *leaf;

        if (!t->root)
                return -ENOENT;
        leaf = descend(t, start, path, &depth);
        pos = lower_bound(leaf->last, leaf->hdr.n, start);
        if (pos == leaf->hdr.n || leaf->start[pos] > last)
                return -ENOENT;
        *ret = leaf->area[pos];
        if (leaf->start[pos] < start || leaf->last[pos] > last)
                return -ERANGE;
        remove_at(t, leaf, pos, path, depth);
        return 0;
}

IovaNode *iova_tree_first_overlap(const IovaTree *t, uint64_t start, uint64_t last) {
        Leaf *leaf;
        unsigned pos;

        if (!t->root)
                return NULL;
        /* The lowest area ending at or after start is the only candidate. */
        leaf = descend(t, start, NULL, NULL);
        pos = lower_bound(leaf->last, leaf->hdr.n, start);
        if (pos < leaf->hdr.n && leaf->start[pos] <= last)
                return leaf->area[pos];
        return NULL;
}

IovaNode *iova_tree_find(const IovaTree *t, uint64_t iova) {
        return iova_tree_first_overlap(t, iova, iova);
}

IovaNode *iova_tree_first(const IovaTree *t) {
        IovaTreeNode *x = t->root;

        if (!x)
                return NULL;
        while (x->level > 0)
                x = to_inner(x)->child[0];
        return to_leaf(x)->area[0];
}

IovaNode *iova_tree_next(const IovaTree *t, const IovaNode *node) {
        if (node->last == UINT64_MAX)
                return NULL;
        return iova_tree_first_overlap(t, node->last + 1, UINT64_MAX);
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

/*
 * Visits a span [first, last] whose inner holes are at most gap bytes:
 * one area (child NULL, gap 0) or a subtree.  Returns whether the caller
 * must descend into the subtree.
 */
static bool search_span(HoleSearch *s, uint64_t first, uint64_t last, uint64_t gap,
                        bool is_subtree) {
        /* Every hole this span closes lies below lo. */
        if (last < s->lo) {
                cursor_after(s, last);
                return false;
        }
        if (s->cursor > s->hi) {
                s->done = true; /* nothing further can start inside [lo, hi] */
                return false;
        }
        if (is_subtree && first <= s->hi && gap >= s->length)
                return true;
        /* Only the hole before the span can matter: it starts past hi, or its
         * inner holes are all too small. */
        if (s->cursor < first)
                hole_try(s, s->cursor, first - 1);
        if (first > s->hi)
                s->done = true;
        if (!s->done)
                cursor_after(s, last);
        return false;
}

static void search_node(HoleSearch *s, IovaTreeNode *x) {
        if (x->level == 0) {
                Leaf *l = to_leaf(x);

                for (unsigned i = 0; i < l->hdr.n && !s->done && s->cursor_valid; i++)
                        (void)search_span(s, l->start[i], l->last[i], 0, false);
                return;
        }

        Inner *in = to_inner(x);

        for (unsigned i = 0; i < in->hdr.n && !s->done && s->cursor_valid; i++)
                if (search_span(s, in->first[i], in->last[i], in->gap[i], true))
                        search_node(s, in->child[i]);
}

int iova_tree_find_hole(const IovaTree *t, uint64_t lo, uint64_t hi, uint64_t length,
                        uint64_t align, uint64_t offset, uint64_t *ret) {
        HoleSearch s = {
                .lo = lo, .hi = hi, .length = length, .align = align ?: 1, .offset = offset,
                .cursor = 0, .cursor_valid = true,
        };

        if (length == 0 || lo > hi)
                return -ENOSPC;

        if (t->root)
                search_node(&s, t->root);
        if (!s.done && s.cursor_valid)
                hole_try(&s, s.cursor, UINT64_MAX);
        if (!s.found)
                return -ENOSPC;
        *ret = s.result;
        return 0;
}

typedef struct Check {
        const IovaNode *prev;
        size_t count;
        unsigned leaf_level_seen; /* every leaf at the same depth */
        bool ok;
} Check;

static void check_node(Check *c, IovaTreeNode *x, unsigned level, bool is_root, bool rightmost) {
        if (!c->ok)
                return;
        if (x->level != level || x->n == 0) {
                c->ok = false;
                return;
        }
        if (x->level == 0) {
                Leaf *l = to_leaf(x);

                if (x->n > LEAF_MAX || (!is_root && !rightmost && x->n < LEAF_MIN)) {
                        c->ok = false;
                        return;
                }
                for (unsigned i = 0; i < x->n; i++) {
                        const IovaNode *a = l->area[i];

                        if (!a || a->start != l->start[i] || a->last != l->last[i] ||
                            a->start > a->last || (c->prev && c->prev->last >= a->start)) {
                                c->ok = false;
                                return;
                        }
                        c->prev = a;
                        c->count++;
                }
                return;
        }

        Inner *in = to_inner(x);

        if (x->n > INNER_MAX || x->n < (is_root ? 2 : INNER_MIN)) {
                c->ok = false;
                return;
        }
        for (unsigned i = 0; i < x->n && c->ok; i++) {
                Summary s;

                check_node(c, in->child[i], level - 1, false, rightmost && i == x->n - 1u);
                if (!c->ok)
                        return;
                s = summarize(in->child[i]);
                if (s.first != in->first[i] || s.last != in->last[i] || s.gap != in->gap[i])
                        c->ok = false;
        }
}

bool iova_tree_check(const IovaTree *t) {
        Check c = { .ok = true };

        if (!t->root)
                return t->n == 0;
        check_node(&c, t->root, t->root->level, true, true);
        return c.ok && c.count == t->n;
}

static void foreach_node(IovaTreeNode *x, void (*fn)(IovaNode *n, void *userdata),
                         void *userdata) {
        if (x->level == 0) {
                for (unsigned i = 0; i < x->n; i++)
                        fn(to_leaf(x)->area[i], userdata);
                return;
        }
        for (unsigned i = 0; i < x->n; i++)
                foreach_node(to_inner(x)->child[i], fn, userdata);
}

void iova_tree_foreach(const IovaTree *t, void (*fn)(IovaNode *n, void *userdata), void *userdata) {
        if (t->root)
                foreach_node(t->root, fn, userdata);
}

static void clear_node(IovaTreeNode *x, void (*fn)(IovaNode *n, void *userdata), void *userdata) {
        if (x->level == 0) {
                if (fn)
                        for (unsigned i = 0; i < x->n; i++)
                                fn(to_leaf(x)->area[i], userdata);
        } else
                for (unsigned i = 0; i < x->n; i++)
                        clear_node(to_inner(x)->child[i], fn, userdata);
        free(x);
}

void iova_tree_clear(IovaTree *t, void (*fn)(IovaNode *n, void *userdata), void *userdata) {
        if (t->root)
                clear_node(t->root, fn, userdata);
        t->root = NULL;
        t->n = 0;
}
