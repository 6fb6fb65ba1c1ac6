/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <malloc.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "iova-tree.h"
#include "macros.h"

/*
 * A brute-force reference: a sorted array of areas, every query a linear
 * scan.  The tree must agree with it after every randomized operation.
 */
typedef struct RefArea {
        uint64_t start, last;
        IovaNode *node;
} RefArea;

typedef struct Ref {
        RefArea *a;
        size_t n, cap;
} Ref;

static ssize_t ref_overlap(const Ref *r, uint64_t s, uint64_t l) {
        for (size_t i = 0; i < r->n; i++)
                if (r->a[i].start <= l && r->a[i].last >= s)
                        return (ssize_t)i;
        return -1;
}

static void ref_insert(Ref *r, uint64_t s, uint64_t l, IovaNode *node) {
        size_t i = 0;

        if (r->n == r->cap) {
                r->cap = r->cap ? r->cap * 2 : 64;
                r->a = realloc(r->a, r->cap * sizeof(RefArea));
                assert_non_null(r->a);
        }
        while (i < r->n && r->a[i].start < s)
                i++;
        memmove(r->a + i + 1, r->a + i, (r->n - i) * sizeof(RefArea));
        r->a[i] = (RefArea){ s, l, node };
        r->n++;
}

static void ref_remove(Ref *r, size_t i) {
        memmove(r->a + i, r->a + i + 1, (r->n - i - 1) * sizeof(RefArea));
        r->n--;
}

/* The kernel's rule for one hole, written independently of the tree's. */
static bool ref_fits(uint64_t a, uint64_t b, uint64_t lo, uint64_t hi, uint64_t len,
                     uint64_t align, uint64_t off, uint64_t *ret) {
        uint64_t c;

        if (a < lo)
                a = lo;
        if (b > hi)
                b = hi;
        if (a > b)
                return false;
        if (a > UINT64_MAX - (align - 1))
                return false;
        c = (((a + align - 1) / align) * align) | off;
        if (c >= b || b - c < len - 1)
                return false;
        *ret = c;
        return true;
}

static int ref_hole(const Ref *r, uint64_t lo, uint64_t hi, uint64_t len, uint64_t align,
                    uint64_t off, uint64_t *ret) {
        uint64_t cursor = 0;
        bool valid = true;

        for (size_t i = 0; i < r->n; i++) {
                if (r->a[i].start > cursor && ref_fits(cursor, r->a[i].start - 1, lo, hi, len, align,
                                                       off, ret))
                        return 0;
                if (r->a[i].last == UINT64_MAX)
                        valid = false;
                else
                        cursor = r->a[i].last + 1;
        }
        if (valid && ref_fits(cursor, UINT64_MAX, lo, hi, len, align, off, ret))
                return 0;
        return -ENOSPC;
}

static void free_node(IovaNode *n, void *userdata) {
        size_t *count = userdata;

        (*count)++;
        free(n);
}

static void run_random(uint64_t span, uint64_t unit, unsigned seed, unsigned n_ops) {
        IovaTree t = IOVA_TREE_INIT;
        Ref r = {};
        size_t freed = 0, n_found = 0, n_nospc = 0;

        srand(seed);
        for (unsigned op = 0; op < n_ops; op++) {
                unsigned kind = (unsigned)rand() % 10;
                uint64_t s = ((uint64_t)rand() % (span / unit)) * unit;
                uint64_t len = ((uint64_t)rand() % 8 + 1) * unit;
                uint64_t l = s + len - 1;

                if (kind < 4) {
                        IovaNode *n = calloc(1, sizeof(IovaNode));
                        int expect = ref_overlap(&r, s, l) >= 0 ? -EEXIST : 0;

                        assert_non_null(n);
                        n->start = s;
                        n->last = l;
                        assert_int_equal(iova_tree_insert(&t, n), expect);
                        if (expect == 0)
                                ref_insert(&r, s, l, n);
                        else
                                free(n);
                } else if (kind < 6 && r.n > 0) {
                        size_t i = (size_t)rand() % r.n;
                        IovaNode *n = r.a[i].node, *got = NULL;

                        if (op % 2 == 0)
                                iova_tree_remove(&t, n);
                        else {
                                uint64_t from = i > 0 ? r.a[i - 1].last + 1 : 0;

                                /* A range that cuts the area takes nothing... */
                                if (n->last > n->start) {
                                        assert_int_equal(iova_tree_take_first(&t, n->start,
                                                                              n->last - 1, &got),
                                                         -ERANGE);
                                        assert_ptr_equal(got, n);
                                }
                                /* ...one from the end of the area before it takes this one. */
                                assert_int_equal(iova_tree_take_first(&t, from, n->last, &got),
                                                 0);
                                assert_ptr_equal(got, n);
                        }
                        ref_remove(&r, i);
                        free(n);
                        if (ref_overlap(&r, s, l) < 0)
                                assert_int_equal(iova_tree_take_first(&t, s, l, &got), -ENOENT);
                } else if (kind < 7) {
                        ssize_t i = ref_overlap(&r, s, s);
                        IovaNode *n = iova_tree_find(&t, s);

                        assert_ptr_equal(n, i < 0 ? NULL : r.a[i].node);
                } else if (kind < 8) {
                        ssize_t i = ref_overlap(&r, s, l);
                        IovaNode *n = iova_tree_first_overlap(&t, s, l);

                        assert_ptr_equal(n, i < 0 ? NULL : r.a[i].node);
                        if (i >= 0)
                                assert_ptr_equal(iova_tree_next(&t, n),
                                                 (size_t)i + 1 < r.n ? r.a[i + 1].node : NULL);
                } else {
                        uint64_t align = UINT64_C(1) << (rand() % 6), lo = s, hi, got = 0,
                                 want = 0, off = 0;
                        int rt, rr;

                        hi = lo + ((uint64_t)rand() % (span / unit)) * unit * 4;
                        if (rand() % 4 == 0)
                                hi = UINT64_MAX;
                        else if (rand() % 2 == 0)
                                hi = lo + ((uint64_t)rand() % 16) * unit;
                        if (rand() % 3 == 0)
                                align = unit << (rand() % 4);
                        if (rand() % 4 == 0)
                                off = align * (uint64_t)(rand() % 4);
                        rt = iova_tree_find_hole(&t, lo, hi, len, align, off, &got);
                        rr = ref_hole(&r, lo, hi, len, align, off, &want);
                        assert_int_equal(rt, rr);
                        if (rr == 0)
                                assert_int_equal(got, want);
                        if (rr == 0)
                                n_found++;
                        else
                                n_nospc++;
                }
                assert_int_equal(t.n, r.n);
                if (op % 64 == 0)
                        assert_true(iova_tree_check(&t));
        }
        assert_true(iova_tree_check(&t));
        /* Both outcomes of the hole search were exercised. */
        assert_true(n_found > n_ops / 50);
        assert_true(n_nospc > n_ops / 500);

        iova_tree_clear(&t, free_node, &freed);
        assert_int_equal(freed, r.n);
        assert_null(t.root);
        free(r.a);
}

static void test_random_dense(void **state) {
        run_random(1 << 16, 16, 12345, 40000);
}

static void test_random_sparse_pages(void **state) {
        run_random(UINT64_C(1) << 32, 4096, 777, 40000);
}

/* Areas near the top of the 64-bit space: no overflow in gaps or cursors. */
static void test_random_top_of_space(void **state) {
        IovaTree t = IOVA_TREE_INIT;
        IovaNode a = { .start = UINT64_MAX - 0xfff, .last = UINT64_MAX };
        IovaNode b = { .start = 0, .last = 0xfff };
        uint64_t got;
        size_t freed = 0;

        assert_int_equal(iova_tree_insert(&t, &a), 0);
        assert_int_equal(iova_tree_insert(&t, &b), 0);
        assert_int_equal(iova_tree_find_hole(&t, 0, UINT64_MAX, 0x1000, 0x1000, 0, &got), 0);
        assert_int_equal(got, 0x1000);
        assert_ptr_equal(iova_tree_find(&t, UINT64_MAX), &a);
        assert_int_equal(iova_tree_find_hole(&t, UINT64_MAX - 0xfff, UINT64_MAX, 1, 1, 0, &got),
                         -ENOSPC);
        /* The whole space but two pages is one hole of 2^64 - 0x2000 bytes. */
        assert_int_equal(iova_tree_find_hole(&t, 0, UINT64_MAX, UINT64_MAX - 0x1fff, 1, 0, &got),
                         0);
        assert_int_equal(got, 0x1000);
        assert_int_equal(iova_tree_find_hole(&t, 0, UINT64_MAX, UINT64_MAX - 0x1ffe, 1, 0, &got),
                         -ENOSPC);
        assert_true(iova_tree_check(&t));
        iova_tree_clear(&t, NULL, &freed);
}

static void test_hole_rules(void **state) {
        IovaTree t = IOVA_TREE_INIT;
        IovaNode a = { .start = 0x1000, .last = 0x1fff }, b = { .start = 0x3000, .last = 0x3fff };
        uint64_t got;

        assert_int_equal(iova_tree_find_hole(&t, 0x1000, 0xffff, 0x1000, 0x1000, 0, &got), 0);
        assert_int_equal(got, 0x1000);
        assert_int_equal(iova_tree_insert(&t, &a), 0);
        assert_int_equal(iova_tree_insert(&t, &b), 0);
        assert_int_equal(iova_tree_insert(&t, &(IovaNode){ .start = 0x1fff, .last = 0x2000 }),
                         -EEXIST);
        /* The hole between a and b fits one page. */
        assert_int_equal(iova_tree_find_hole(&t, 0x1000, 0xffff, 0x1000, 0x1000, 0, &got), 0);
        assert_int_equal(got, 0x2000);
        /* Two pages aligned to 0x2000 land after b. */
        assert_int_equal(iova_tree_find_hole(&t, 0x1000, 0xffff, 0x2000, 0x2000, 0, &got), 0);
        assert_int_equal(got, 0x4000);
        /* The sub-page offset is kept. */
        assert_int_equal(iova_tree_find_hole(&t, 0x1000, 0xffff, 0x800, 0x800, 0x800, &got), 0);
        assert_int_equal(got, 0x2800);
        /* No room inside the window. */
        assert_int_equal(iova_tree_find_hole(&t, 0x1000, 0x3fff, 0x2000, 1, 0, &got), -ENOSPC);
        assert_int_equal(iova_tree_find_hole(&t, 0x1000, 0x1fff, 1, 1, 0, &got), -ENOSPC);
        iova_tree_clear(&t, NULL, NULL);
}

/*
 * Node splits and merges at every boundary: trees of sizes around one, two
 * and many full leaves and inner nodes, built in orders that take the
 * append split (ascending), the even split at the front (descending) and in
 * the middle of full leaves (evens, then the odds between them), then torn
 * down in orders that merge with the left sibling, the right one, and both.
 * Every step is checked against the invariants and every area is found.
 */
enum { ORDER_ASCENDING, ORDER_DESCENDING, ORDER_INTERLEAVED, ORDER_SHUFFLED, ORDER_MIDDLE_OUT };

static void make_order(size_t *v, size_t n, int order, unsigned seed) {
        size_t k = 0;

        for (size_t i = 0; i < n; i++)
                v[i] = i;
        switch (order) {
        case ORDER_DESCENDING:
                for (size_t i = 0; i < n; i++)
                        v[i] = n - 1 - i;
                break;
        case ORDER_INTERLEAVED:
                for (size_t i = 0; i < n; i += 2)
                        v[k++] = i;
                for (size_t i = 1; i < n; i += 2)
                        v[k++] = i;
                break;
        case ORDER_SHUFFLED:
                srand(seed);
                for (size_t i = n; i > 1; i--) {
                        size_t j = (size_t)rand() % i, x = v[i - 1];

                        v[i - 1] = v[j];
                        v[j] = x;
                }
                break;
        case ORDER_MIDDLE_OUT:
                for (size_t i = 0; i < n; i++)
                        v[i] = i % 2 ? n / 2 + (i - 1) / 2 : n / 2 - i / 2 - 1;
                if (n % 2)
                        v[n - 1] = n - 1;
                break;
        }
}

/* Every area is found by its bytes, the holes between them are empty, and next walks them all. */
static void check_contents(const IovaTree *t, IovaNode *areas, const bool *present, size_t n) {
        IovaNode *x = iova_tree_first(t);
        uint64_t got, cursor = 0, hole = UINT64_MAX;

        assert_true(iova_tree_check(t));
        for (size_t i = 0; i < n; i++) {
                IovaNode *want = present[i] ? &areas[i] : NULL;

                assert_ptr_equal(iova_tree_find(t, areas[i].start), want);
                assert_ptr_equal(iova_tree_find(t, areas[i].last), want);
                assert_null(iova_tree_find(t, areas[i].last + 1));
                if (!want)
                        continue;
                assert_ptr_equal(x, want);
                x = iova_tree_next(t, x);
        }
        assert_null(x);
        /* Present areas are 3 bytes with 1-byte holes; a 2-byte request needs a removed one. */
        for (size_t i = 0; i < n && hole == UINT64_MAX; i++) {
                if (!present[i])
                        continue;
                if (areas[i].start - cursor >= 2)
                        hole = cursor;
                cursor = areas[i].last + 1;
        }
        assert_int_equal(iova_tree_find_hole(t, 0, UINT64_MAX, 2, 1, 0, &got), 0);
        assert_int_equal(got, hole == UINT64_MAX ? cursor : hole);
}

static void test_split_merge_boundaries(void **state) {
        static const size_t sizes[] = { 1, 2, 10, 11, 20, 21, 22, 23, 42, 43, 44, 64, 160, 161,
                                        162, 315, 316, 317, 330, 331, 1000, 3400, 5000 };
        static const int build[] = { ORDER_ASCENDING, ORDER_DESCENDING, ORDER_INTERLEAVED,
                                     ORDER_SHUFFLED };
        static const int teardown[] = { ORDER_ASCENDING, ORDER_DESCENDING, ORDER_INTERLEAVED,
                                        ORDER_SHUFFLED, ORDER_MIDDLE_OUT };

        FOREACH_ARRAY(sz, sizes, ELEMENTSOF(sizes)) {
                size_t n = *sz, *ins = calloc(n, sizeof(size_t)), *del = calloc(n, sizeof(size_t));
                IovaNode *areas = calloc(n, sizeof(IovaNode));
                bool *present = calloc(n, sizeof(bool));
                /* Checking the whole tree after every step is quadratic: sample large sizes. */
                size_t every = n > 200 ? n / 20 : 1;

                assert_non_null(ins);
                assert_non_null(del);
                assert_non_null(areas);
                assert_non_null(present);
                for (size_t i = 0; i < n; i++)
                        areas[i] = (IovaNode){ .start = 4 * i + 1, .last = 4 * i + 3 };

                for (size_t b = 0; b < ELEMENTSOF(build); b++)
                        for (size_t d = 0; d < ELEMENTSOF(teardown); d++) {
                                IovaTree t = IOVA_TREE_INIT;

                                make_order(ins, n, build[b], (unsigned)(n + b));
                                make_order(del, n, teardown[d], (unsigned)(n * 7 + d));
                                for (size_t i = 0; i < n; i++) {
                                        assert_int_equal(iova_tree_insert(&t, &areas[ins[i]]), 0);
                                        present[ins[i]] = true;
                                        /* The same area again, and one overlapping its end. */
                                        assert_int_equal(iova_tree_insert(&t, &(IovaNode){
                                                                 .start = areas[ins[i]].last,
                                                                 .last = areas[ins[i]].last + 1 }),
                                                         -EEXIST);
                                        if (i % every == 0 || i == n - 1)
                                                check_contents(&t, areas, present, n);
                                }
                                assert_int_equal(t.n, n);
                                for (size_t i = 0; i < n; i++) {
                                        iova_tree_remove(&t, &areas[del[i]]);
                                        present[del[i]] = false;
                                        if (i % every == 0 || i == n - 1)
                                                check_contents(&t, areas, present, n);
                                }
                                assert_int_equal(t.n, 0);
                                assert_null(t.root);
                        }
                free(ins);
                free(del);
                free(areas);
                free(present);
        }
}

static void test_node_is_small(void **state) {
        /* An area as backend-sim stores it: the node plus source offset and flags. */
        struct {
                IovaNode node;
                uint64_t source;
                uint32_t flags;
        } *area = malloc(sizeof(*area));

        assert_non_null(area);
        assert_true(sizeof(IovaNode) <= 64);
        assert_true(malloc_usable_size(area) + sizeof(size_t) <= 96);
        free(area);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_hole_rules),
                cmocka_unit_test(test_random_dense),
                cmocka_unit_test(test_random_sparse_pages),
                cmocka_unit_test(test_random_top_of_space),
                cmocka_unit_test(test_split_merge_boundaries),
                cmocka_unit_test(test_node_is_small),
        };

        return cmocka_run_group_tests_name("iova-tree", tests, NULL, NULL);
}
