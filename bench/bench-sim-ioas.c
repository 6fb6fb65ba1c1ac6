/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * backend-sim IOAS scaling: ns per fixed map, automatic map, unmap and
 * lookup with 1k, 100k and 1M areas in one IOAS, memory per area, and the
 * 1M/1k cost ratio per operation (the baseline is the 1k run of the same
 * process).  Prints figures; never fails on time.
 *
 * The IOAS holds N one-page areas two pages apart, so every gap is one page:
 * a fixed map fills a gap, an automatic map of two pages must skip every gap
 * (the tree's hole augmentation is what keeps that logarithmic), unmap and
 * lookup hit areas.  Each batch is undone untimed, so N stays fixed.
 *
 * Two access patterns: "random" (every operation on a random area: bound by
 * cache misses once the tree outgrows the caches) and "sequential" (a batch
 * works on consecutive areas from a random start, like a VMM mapping guest
 * RAM in order: shows the algorithmic cost).
 *
 * Then the daemon's own path: maps of a memory fd into an IOAS with a domain
 * (a device attached), which keep the file and pin and charge its pages, and
 * their unmaps, with 1k areas in the IOAS.
 */

#include <inttypes.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "backend-sim.h"
#include "bench-report.h"
#include "macros.h"

#define PAGE UINT64_C(4096)
#define BASE UINT64_C(0x100000000)
#define BATCH 1000
#define N_BATCHES 15

enum { OP_MAP_FIXED, OP_MAP_AUTO, OP_UNMAP, OP_LOOKUP, _OP_MAX };
static const char *const op_names[_OP_MAX] = { "fixed map", "auto map", "unmap", "lookup" };

typedef struct Result {
        size_t n;
        double ns[_OP_MAX];
        double bytes_per_area;
} Result;

static uint64_t rng = 0x9e3779b97f4a7c15;

static uint64_t next_rand(void) {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        return rng;
}

static uint64_t now_ns(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
        double x = *(const double *)a, y = *(const double *)b;

        return x < y ? -1 : x > y;
}

static double median(double *v, size_t n) {
        qsort(v, n, sizeof(double), cmp_double);
        return v[n / 2];
}

static _Noreturn void die(const char *what, int r) {
        fprintf(stderr, "bench-sim-ioas: %s failed: %s\n", what, strerror(-r));
        exit(EXIT_FAILURE);
}

static int map_fixed(BackendContext *c, uint32_t ioas, uint64_t iova, uint64_t len) {
        uint64_t at = iova;

        return c->backend->ops->ioas_map_va(c, ioas,
                                            BACKEND_MAP_FIXED_IOVA | BACKEND_MAP_READABLE |
                                                    BACKEND_MAP_WRITEABLE,
                                            iova, len, &at, NULL);
}

/* An IOAS of its own with n one-page areas two pages apart; the heap bytes each took. */
static void populate(size_t n, Backend **ret_b, BackendContext **ret_c, uint32_t *ret_ioas,
                     Result *res) {
        static const SimTopology empty = { .name = (char *)"empty" };
        struct mallinfo2 before, after;
        int r;

        r = backend_sim_new(ret_b, &empty, NULL, NULL);
        if (r < 0)
                die("backend_sim_new", r);
        r = (*ret_b)->ops->context_new(*ret_b, ret_c, NULL);
        if (r < 0)
                die("context_new", r);
        r = (*ret_b)->ops->ioas_alloc(*ret_c, ret_ioas, NULL);
        if (r < 0)
                die("ioas_alloc", r);

        before = mallinfo2();
        for (size_t i = 0; i < n; i++) {
                r = map_fixed(*ret_c, *ret_ioas, BASE + i * 2 * PAGE, PAGE);
                if (r < 0)
                        die("populating", r);
        }
        after = mallinfo2();
        res->n = n;
        res->bytes_per_area = (double)(after.uordblks - before.uordblks) / (double)n;
}

static void run(size_t n, bool sequential, Result *res) {
        Backend *b = NULL;
        BackendContext *c = NULL;
        uint64_t idx[BATCH], iovas[BATCH], t0, unmapped;
        double samples[_OP_MAX][N_BATCHES];
        uint32_t ioas;
        int r;

        populate(n, &b, &c, &ioas, res);

        for (size_t bt = 0; bt < N_BATCHES; bt++) {
                uint64_t start = next_rand() % (n - BATCH + 1);

                /* distinct areas per batch: a random permutation, or consecutive ones */
                for (size_t i = 0; i < BATCH; i++)
                        idx[i] = sequential ? start + i : (next_rand() % (n / BATCH)) * BATCH + i;

                /* fixed map into a one-page gap */
                t0 = now_ns();
                for (size_t i = 0; i < BATCH; i++) {
                        r = map_fixed(c, ioas, BASE + idx[i] * 2 * PAGE + PAGE, PAGE);
                        if (r < 0 && r != -EEXIST)
                                die("fixed map", r);
                        iovas[i] = r == 0 ? BASE + idx[i] * 2 * PAGE + PAGE : 0;
                }
                samples[OP_MAP_FIXED][bt] = (double)(now_ns() - t0) / BATCH;
                for (size_t i = 0; i < BATCH; i++)
                        if (iovas[i])
                                (void)b->ops->ioas_unmap(c, ioas, iovas[i], PAGE, &unmapped, NULL);

                /* automatic map of two pages: no one-page gap fits */
                t0 = now_ns();
                for (size_t i = 0; i < BATCH; i++) {
                        r = b->ops->ioas_map_va(c, ioas,
                                                BACKEND_MAP_READABLE | BACKEND_MAP_WRITEABLE,
                                                0x200000 + i * 2 * PAGE, 2 * PAGE, &iovas[i], NULL);
                        if (r < 0)
                                die("auto map", r);
                }
                samples[OP_MAP_AUTO][bt] = (double)(now_ns() - t0) / BATCH;
                for (size_t i = 0; i < BATCH; i++)
                        (void)b->ops->ioas_unmap(c, ioas, iovas[i], 2 * PAGE, &unmapped, NULL);

                /* unmap random areas, put back untimed */
                t0 = now_ns();
                for (size_t i = 0; i < BATCH; i++) {
                        r = b->ops->ioas_unmap(c, ioas, BASE + idx[i] * 2 * PAGE, PAGE, &unmapped,
                                               NULL);
                        if (r < 0 && r != -ENOENT)
                                die("unmap", r);
                        iovas[i] = r == 0;
                }
                samples[OP_UNMAP][bt] = (double)(now_ns() - t0) / BATCH;
                for (size_t i = 0; i < BATCH; i++)
                        if (iovas[i])
                                (void)map_fixed(c, ioas, BASE + idx[i] * 2 * PAGE, PAGE);

                /* lookup of a random byte inside a random area */
                t0 = now_ns();
                for (size_t i = 0; i < BATCH; i++) {
                        IovaRange a;

                        r = backend_sim_ioas_lookup(c, ioas, BASE + idx[i] * 2 * PAGE + 17, &a);
                        if (r < 0)
                                die("lookup", r);
                }
                samples[OP_LOOKUP][bt] = (double)(now_ns() - t0) / BATCH;
        }
        for (size_t op = 0; op < _OP_MAX; op++)
                res->ns[op] = median(samples[op], N_BATCHES);

        backend_context_free(c);
        backend_free(b);
}

/* One device alone in its group behind one IOMMU: a domain for the IOAS. */
static void one_device_host(Backend **ret_b, BackendContext **ret_c, uint32_t *ret_ioas) {
        static SimIommu iommu = { .name = (char *)"dmar0", .kind = (char *)"intel",
                                  .hw_info_type = 1, .aperture_last = (UINT64_C(1) << 48) - 1,
                                  .page_sizes = 0x1000 };
        static size_t members[] = { 0 };
        static SimGroup group = { .id = 1, .device_indexes = members, .n_devices = 1 };
        static SimDevice dev = { .name = (char *)"0000:01:00.0", .driver = (char *)"vfio-pci",
                                 .class = 0x010802, .cdev = true };
        static const SimTopology topo = { .name = (char *)"one", .iommus = &iommu, .n_iommus = 1,
                                          .groups = &group, .n_groups = 1, .devices = &dev,
                                          .n_devices = 1 };
        uint32_t dev_id, pt;
        int fd, r;

        r = backend_sim_new(ret_b, &topo, NULL, NULL);
        if (r >= 0)
                r = (*ret_b)->ops->context_new(*ret_b, ret_c, NULL);
        if (r >= 0)
                r = (*ret_b)->ops->ioas_alloc(*ret_c, ret_ioas, NULL);
        if (r >= 0)
                r = (*ret_b)->ops->device_open(*ret_b, dev.name, &fd, NULL);
        if (r < 0)
                die("setting up a device", r);
        r = (*ret_b)->ops->device_bind(*ret_c, fd, &dev_id, NULL);
        pt = *ret_ioas;
        if (r >= 0)
                r = (*ret_b)->ops->device_attach(*ret_c, dev_id, BACKEND_NO_PASID, &pt, NULL);
        close(fd);
        if (r < 0)
                die("attaching a device", r);
}

/* ns per pinned map and per unmap of one page of a memfd, BATCH at a time next to 1k areas. */
static void run_file(double *ret_map, double *ret_unmap) {
        double samples[2][N_BATCHES];
        BackendContext *c = NULL;
        Backend *b = NULL;
        uint64_t t0, at, unmapped;
        uint32_t ioas;
        int fd = memfd_create("bench", MFD_CLOEXEC), r;

        if (fd < 0 || ftruncate(fd, (off_t)(2 * BATCH * PAGE)) < 0)
                die("memfd", -errno);
        one_device_host(&b, &c, &ioas);
        for (size_t i = 0; i < BATCH; i++) {
                at = BASE + i * 2 * PAGE;
                r = b->ops->ioas_map_file(c, ioas, BACKEND_MAP_FIXED_IOVA | BACKEND_MAP_READABLE |
                                                           BACKEND_MAP_WRITEABLE,
                                          fd, i * PAGE, PAGE, &at, NULL);
                if (r < 0)
                        die("populating", r);
        }
        for (size_t bt = 0; bt < N_BATCHES; bt++) {
                t0 = now_ns();
                for (size_t i = 0; i < BATCH; i++) {
                        at = BASE + i * 2 * PAGE + PAGE;
                        r = b->ops->ioas_map_file(c, ioas,
                                                  BACKEND_MAP_FIXED_IOVA | BACKEND_MAP_READABLE |
                                                          BACKEND_MAP_WRITEABLE,
                                                  fd, (BATCH + i) * PAGE, PAGE, &at, NULL);
                        if (r < 0)
                                die("file map", r);
                }
                samples[0][bt] = (double)(now_ns() - t0) / BATCH;
                t0 = now_ns();
                for (size_t i = 0; i < BATCH; i++)
                        (void)b->ops->ioas_unmap(c, ioas, BASE + i * 2 * PAGE + PAGE, PAGE,
                                                 &unmapped, NULL);
                samples[1][bt] = (double)(now_ns() - t0) / BATCH;
        }
        *ret_map = median(samples[0], N_BATCHES);
        *ret_unmap = median(samples[1], N_BATCHES);
        backend_context_free(c);
        backend_free(b);
        close(fd);
}

static const size_t sizes[] = { 1000, 100000, 1000000 };

static bool report(const char *pattern, const Result *res) {
        const Result *base = &res[0], *top = &res[ELEMENTSOF(sizes) - 1];
        bool ok = true;

        printf("backend-sim IOAS, %s access: median ns per operation over %d batches of %d\n\n",
               pattern, N_BATCHES, BATCH);
        printf("%-10s", "areas");
        for (size_t op = 0; op < _OP_MAX; op++)
                printf(" %11s", op_names[op]);
        printf(" %12s\n", "bytes/area");
        for (size_t i = 0; i < ELEMENTSOF(sizes); i++) {
                printf("%-10zu", res[i].n);
                for (size_t op = 0; op < _OP_MAX; op++)
                        printf(" %11.1f", res[i].ns[op]);
                printf(" %12.1f\n", res[i].bytes_per_area);
        }
        printf("%-10s", "1M/1k");
        for (size_t op = 0; op < _OP_MAX; op++)
                printf(" %11.2f", top->ns[op] / base->ns[op]);
        printf("\n\ntargets at 1M areas: <= 1000 ns median per op, <= 96 bytes per area, "
               "1M/1k ratio <= 3\n");
        for (size_t op = 0; op < _OP_MAX; op++) {
                bool met = top->ns[op] <= 1000.0 && top->ns[op] / base->ns[op] <= 3.0;

                printf("  %-10s %7.1f ns, ratio %5.2f  %s\n", op_names[op], top->ns[op],
                       top->ns[op] / base->ns[op], met ? "met" : "MISSED");
                ok = ok && met;
        }
        printf("  %-10s %7.1f bytes        %s\n\n", "memory", top->bytes_per_area,
               top->bytes_per_area <= 96.0 ? "met" : "MISSED");
        for (size_t op = 0; op < _OP_MAX; op++) {
                char name[96];

                /* The scaling (1M areas against 1k) and the absolute cost at 1M. */
                snprintf(name, sizeof(name), "sim-ioas.%s.%s-1M-vs-1k", pattern, op_names[op]);
                for (char *c = name; *c; c++)
                        if (*c == ' ')
                                *c = '-';
                bench_report(name, top->ns[op], "ns", base->ns[op], 3.0, 1, 1);
                name[strlen(name) - strlen("-vs-1k")] = '\0';
                bench_report(name, top->ns[op], "ns", BENCH_NONE, 1000.0, 0, 1);
        }
        {
                char name[96];

                snprintf(name, sizeof(name), "sim-ioas.%s.bytes-per-area-1M", pattern);
                bench_report(name, top->bytes_per_area, "bytes", BENCH_NONE, 96.0, 0, 1);
        }
        return ok && top->bytes_per_area <= 96.0;
}

int main(void) {
        Result rnd[ELEMENTSOF(sizes)], seq[ELEMENTSOF(sizes)];
        bool ok;

        for (size_t i = 0; i < ELEMENTSOF(sizes); i++) {
                run(sizes[i], false, &rnd[i]);
                run(sizes[i], true, &seq[i]);
        }
        ok = report("random", rnd);
        ok = report("sequential", seq) && ok;
        {
                double map_ns, unmap_ns;

                run_file(&map_ns, &unmap_ns);
                printf("memory fd, IOAS with a domain (pinned), 1k areas: median ns per operation "
                       "over %d batches of %d\n\n%-10s %11.1f\n%-10s %11.1f\n\n", N_BATCHES,
                       BATCH, "file map", map_ns, "unmap", unmap_ns);
                bench_report("sim-ioas.pinned.file-map-1k", map_ns, "ns", BENCH_NONE, BENCH_NONE, 0, 1);
                bench_report("sim-ioas.pinned.unmap-1k", unmap_ns, "ns", BENCH_NONE, BENCH_NONE, 0, 1);
        }
        printf("%s\n", ok ? "all targets met" : "some targets missed (figures only: not a failure)");
        return EXIT_SUCCESS;
}
