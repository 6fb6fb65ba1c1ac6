/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * The memory behind areas, as iommufd's pages.c keeps it.
 *
 * A map of a memory fd refers to the file: the model keeps its own copy of the fd (one per
 * inode, whatever the number of maps), so a device's DMA reaches the file while it is mapped,
 * whatever the client does with its fd.  A map of a user VA refers to the mapper's memory.
 * Each map has its pages (the kernel's iopt_pages, SimPages here); a copy shares them.  A VA
 * mapped once and never copied needs no SimPages: its area says everything.
 *
 * Pages are pinned while an area that uses them is in an IOAS with a domain (a paging HWPT):
 * at map time when there is one, when the first one arrives otherwise, and unpinned when the
 * area goes or the last domain leaves.  Pinning a user VA takes what pin_user_pages() takes:
 * memory mapped throughout, readable (and writeable for a writeable map), not VM_IO or
 * VM_PFNMAP; anything else is EFAULT.  Pinned pages are charged, in whole pages, to whom the
 * kernel charges them: nobody when the mapper has CAP_IPC_LOCK, else its user
 * (RLIMIT_MODE 0) or its process (RLIMIT_MODE 1), against its RLIMIT_MEMLOCK: ENOMEM past it.
 * The pages of copies are charged once (the union of what their areas pin).
 *
 * A context that stands for one an earlier daemon process made (a restart over the sim) maps
 * VAs of that process: its pages are taken as pinned and present, and a DMA through them
 * reaches nothing, like pinned pages no process maps any more.
 */

#include <assert.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "assert-util.h"
#include "sim-private.h"

#define PAGE BACKEND_SIM_PAGE_SIZE

/* ---- accounts ---- */

static int account_get(SimBackend *s, bool process, uint32_t id, SimAccount **ret) {
        SimAccount *a;

        for (a = s->accounts; a; a = a->next)
                if (a->process == process && a->id == id) {
                        *ret = a;
                        return 0;
                }
        a = calloc(1, sizeof(SimAccount));
        if (!a)
                return -ENOMEM;
        a->process = process;
        a->id = id;
        a->next = s->accounts;
        s->accounts = a;
        *ret = a;
        return 0;
}

int sim_accounts_attach(SimContext *c, uid_t uid, pid_t pid) {
        SimAccount *u, *p;
        int r;

        r = account_get(c->sim, false, (uint32_t)uid, &u);
        if (r < 0)
                return r;
        r = account_get(c->sim, true, (uint32_t)pid, &p);
        if (r < 0)
                return r;
        c->user_account = u;
        c->process_account = p;
        return 0;
}

SimAccountMode sim_map_account_mode(SimContext *c) {
        if (!c->sim->no_ipc_lock)
                return SIM_ACCOUNT_NONE;
        return c->rlimit_per_process ? SIM_ACCOUNT_MM : SIM_ACCOUNT_USER;
}

static SimAccount *mode_account(SimContext *c, SimAccountMode mode) {
        switch (mode) {
        case SIM_ACCOUNT_USER: return c->user_account;
        case SIM_ACCOUNT_MM: return c->process_account;
        case SIM_ACCOUNT_NONE: break;
        }
        return NULL;
}

/* incr_user_locked_vm() and __account_locked_vm(): whole pages against the limit's pages. */
static int account_charge(SimBackend *s, SimAccount *a, uint64_t bytes, Error *err) {
        uint64_t limit = s->memlock_limit & ~(PAGE - 1), total;

        if (!a || bytes == 0)
                return 0;
        if (ADD_OVERFLOW(a->locked, bytes, &total) || total > limit)
                return error_set(err, -ENOMEM,
                                 "Pinning 0x%" PRIx64 " more bytes takes the locked memory of %s "
                                 "%" PRIu32 " (0x%" PRIx64 " bytes) past RLIMIT_MEMLOCK "
                                 "(0x%" PRIx64 " bytes)",
                                 bytes, a->process ? "process" : "user", a->id, a->locked,
                                 s->memlock_limit);
        a->locked = total;
        s->stats.locked_bytes += bytes;
        return 0;
}

static void account_refund(SimBackend *s, SimAccount *a, uint64_t bytes) {
        if (!a)
                return;
        assert(a->locked >= bytes);
        a->locked -= bytes;
        s->stats.locked_bytes -= bytes;
}

/* ---- files: one copy of the fd per inode, sorted by (dev, ino) ---- */

static int file_cmp(dev_t dev, ino_t ino, const SimFile *f) {
        if (dev != f->dev)
                return dev < f->dev ? -1 : 1;
        if (ino != f->ino)
                return ino < f->ino ? -1 : 1;
        return 0;
}

static size_t file_lower_bound(SimBackend *s, dev_t dev, ino_t ino) {
        size_t lo = 0, hi = s->n_files;

        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;

                if (file_cmp(dev, ino, s->files[mid]) > 0)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return lo;
}

static bool fd_writable(int fd) {
        int fl = fcntl(fd, F_GETFL);

        return fl >= 0 && (fl & O_ACCMODE) == O_RDWR;
}

/* A reference to the file of fd; a writable copy replaces a read-only one. */
static int file_get(SimBackend *s, int fd, const struct stat *st, SimFile **ret, Error *err) {
        size_t i = file_lower_bound(s, st->st_dev, st->st_ino);
        _cleanup_close_ int copy = -EBADF;
        SimFile *f, **v;

        if (i < s->n_files && file_cmp(st->st_dev, st->st_ino, s->files[i]) == 0) {
                f = s->files[i];
                if (!f->writable && fd_writable(fd)) {
                        copy = fcntl(fd, F_DUPFD_CLOEXEC, 3);
                        if (copy < 0)
                                return error_set(err, negative_errno(),
                                                 "Keeping a copy of memory fd %d failed", fd);
                        safe_close(f->fd);
                        f->fd = TAKE_FD(copy);
                        f->writable = true;
                }
                f->refs++;
                *ret = f;
                return 0;
        }
        v = realloc(s->files, (s->n_files + 1) * sizeof(SimFile *));
        if (!v)
                return error_set(err, -ENOMEM, "Out of memory for the memory files");
        s->files = v;
        copy = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        if (copy < 0)
                return error_set(err, negative_errno(), "Keeping a copy of memory fd %d failed",
                                 fd);
        f = calloc(1, sizeof(SimFile));
        if (!f)
                return error_set(err, -ENOMEM, "Out of memory for a memory file");
        *f = (SimFile){ .fd = TAKE_FD(copy), .writable = fd_writable(fd), .dev = st->st_dev,
                        .ino = st->st_ino, .refs = 1 };
        memmove(&s->files[i + 1], &s->files[i], (s->n_files - i) * sizeof(SimFile *));
        s->files[i] = f;
        s->n_files++;
        s->stats.memory_files++;
        *ret = f;
        return 0;
}

static void file_put(SimBackend *s, SimFile *f) {
        size_t i;

        if (--f->refs > 0)
                return;
        i = file_lower_bound(s, f->dev, f->ino);
        assert(i < s->n_files && s->files[i] == f);
        memmove(&s->files[i], &s->files[i + 1], (s->n_files - i - 1) * sizeof(SimFile *));
        s->n_files--;
        s->stats.memory_files--;
        safe_close(f->fd);
        free(f);
}

/* Where a slab's objects start: after the word that links the slabs, at full alignment. */
#define SLAB_HEADER (_Alignof(max_align_t))

int sim_spares_refill(SimSpares *l, size_t size) {
        size_t stride = (size + SLAB_HEADER - 1) / SLAB_HEADER * SLAB_HEADER;
        char *slab = malloc(SLAB_HEADER + SIM_SPARES_SLAB * stride);

        if (!slab)
                return -ENOMEM;
        *(void **)slab = l->slabs;
        l->slabs = slab;
        /* In address order: the first taken is the lowest. */
        for (size_t i = SIM_SPARES_SLAB; i-- > 0;) {
                void *p = slab + SLAB_HEADER + i * stride;

                *(void **)p = l->head;
                l->head = p;
        }
        return 0;
}

void sim_spares_free(SimSpares *l) {
        while (l->slabs) {
                void *p = l->slabs;

                l->slabs = *(void **)p;
                free(p);
        }
        l->head = NULL;
}

void sim_memory_free(SimBackend *s) {
        sim_spares_free(&s->spare_areas);
        sim_spares_free(&s->spare_pages);
        while (s->accounts) {
                SimAccount *a = s->accounts;

                s->accounts = a->next;
                free(a);
        }
        /* Contexts free their areas first: nothing is left here unless one was leaked. */
        for (size_t i = 0; i < s->n_files; i++) {
                safe_close(s->files[i]->fd);
                free(s->files[i]);
        }
        free(s->files);
}

/* ---- pages ---- */

int sim_pages_new_file(SimContext *c, int fd, const struct stat *st, SimAccountMode mode,
                       SimPages **ret, Error *err) {
        SimPages *p;
        SimFile *f = NULL;
        int r;

        r = file_get(c->sim, fd, st, &f, err);
        if (r < 0)
                return r;
        p = sim_spare_take(&c->sim->spare_pages, sizeof(SimPages));
        if (!p) {
                file_put(c->sim, f);
                return error_set(err, -ENOMEM, "Out of memory for pages");
        }
        *p = (SimPages){ .file = f, .account = mode_account(c, mode), .refs = 1,
                         .spans = &p->first_span, .max_spans = 1 };
        *ret = p;
        return 0;
}

void sim_pages_unref(SimContext *c, SimPages *p) {
        if (!p || --p->refs > 0)
                return;
        assert(p->n_spans == 0 && p->pinned == 0);
        if (p->file)
                file_put(c->sim, p->file);
        if (p->spans != &p->first_span)
                free(p->spans);
        sim_spare_give(&c->sim->spare_pages, p);
}

static SimSpan area_span(const SimArea *a) {
        uint64_t start = a->source & ~(PAGE - 1);
        uint64_t bytes = a->node.last - a->node.start + 1 + (a->source - start);

        bytes = (bytes + PAGE - 1) & ~(PAGE - 1);
        return (SimSpan){ start, start + bytes };
}

static SimAccountMode area_mode(const SimArea *a) {
        return (SimAccountMode)((a->flags >> AREA_ACCOUNT_SHIFT) & 3u);
}

int sim_area_share(SimContext *c, SimArea *a, SimPages **ret) {
        SimPages *p;

        if (a->pages) {
                *ret = a->pages;
                return 0;
        }
        p = sim_spare_take(&c->sim->spare_pages, sizeof(SimPages));
        if (!p)
                return -ENOMEM;
        *p = (SimPages){ .account = mode_account(c, area_mode(a)),
                         .phantom = a->flags & AREA_PHANTOM, .refs = 1,
                         .spans = &p->first_span, .max_spans = 1 };
        if (a->flags & AREA_PINNED) {
                /* What the area pinned alone, and was charged for, moves to the pages. */
                p->first_span = area_span(a);
                p->n_spans = 1;
                p->pinned = p->first_span.end - p->first_span.start;
        }
        a->pages = p;
        *ret = p;
        return 0;
}

static int span_cmp(const void *x, const void *y) {
        const SimSpan *a = x, *b = y;

        return a->start < b->start ? -1 : a->start > b->start;
}

/* Bytes in the union of the spans (sorted in place). */
static uint64_t spans_union(SimSpan *v, size_t n) {
        uint64_t total = 0, cur_start = 0, cur_end = 0;

        if (n > 1)
                qsort(v, n, sizeof(SimSpan), span_cmp);
        for (size_t i = 0; i < n; i++) {
                if (i == 0 || v[i].start > cur_end) {
                        total += cur_end - cur_start;
                        cur_start = v[i].start;
                        cur_end = v[i].end;
                } else
                        cur_end = MAX(cur_end, v[i].end);
        }
        return total + (cur_end - cur_start);
}

/*
 * Whether pin_user_pages() would take [va, va + length): every byte in a mapping that allows
 * the access (read, and write for writeable pages), none in VM_IO or VM_PFNMAP memory, which
 * GUP refuses for process_vm_readv() as for iommufd: one probing read per mapping.
 */
static int va_check(uint64_t va, uint64_t length, bool write, Error *err) {
        _cleanup_free_ char *line = NULL;
        uint64_t cur = va, end;
        size_t size = 0;
        FILE *f;

        if (ADD_OVERFLOW(va, length, &end))
                return error_set(err, -EOVERFLOW, "VA 0x%" PRIx64 " + 0x%" PRIx64 " overflows",
                                 va, length);
        f = fopen("/proc/self/maps", "re");
        if (!f)
                return error_set(err, -EFAULT, "The mappings of the process cannot be read");
        while (cur < end && getline(&line, &size, f) > 0) {
                unsigned long long lo, hi;
                char perms[8], byte;
                struct iovec local = { &byte, 1 }, remote = { (void *)(uintptr_t)cur, 1 };

                if (sscanf(line, "%llx-%llx %7s", &lo, &hi, perms) != 3 || hi <= cur)
                        continue;
                if (lo > cur)
                        break;
                if (perms[0] != 'r' || (write && perms[1] != 'w') ||
                    process_vm_readv(getpid(), &local, 1, &remote, 1, 0) != 1) {
                        fclose(f);
                        return error_set(err, -EFAULT,
                                         "VA 0x%" PRIx64 " is in memory that cannot be pinned "
                                         "(%s%s)",
                                         cur, perms, write ? ", for writing" : "");
                }
                cur = hi;
        }
        fclose(f);
        if (cur < end)
                return error_set(err, -EFAULT, "VA 0x%" PRIx64 " is not mapped", cur);
        return 0;
}

/* Room for one more span: the inline one first, then an array that doubles. */
static int pages_grow_spans(SimPages *p) {
        SimSpan *v;

        if (p->n_spans < p->max_spans)
                return 0;
        v = malloc(2 * p->max_spans * sizeof(SimSpan));
        if (!v)
                return -ENOMEM;
        memcpy(v, p->spans, p->n_spans * sizeof(SimSpan));
        if (p->spans != &p->first_span)
                free(p->spans);
        p->spans = v;
        p->max_spans *= 2;
        return 0;
}

int sim_area_pin(SimContext *c, SimArea *a, Error *err) {
        SimSpan span = area_span(a);
        SimPages *p = a->pages;
        uint64_t grown, delta;
        int r;

        if (a->flags & AREA_PINNED)
                return 0;
        /* GUP runs for pages nothing pins yet: a user VA's, unless an earlier process's. */
        if (!(a->flags & AREA_PHANTOM) && !(p && (p->file || p->phantom || p->n_spans > 0))) {
                r = va_check(a->source, a->node.last - a->node.start + 1,
                             a->flags & AREA_PAGES_WRITABLE, err);
                if (r < 0)
                        return r;
        }
        if (!p) {
                delta = span.end - span.start;
                r = account_charge(c->sim, mode_account(c, area_mode(a)), delta, err);
                if (r < 0)
                        return r;
        } else {
                SimSpan *v;

                r = pages_grow_spans(p);
                if (r < 0)
                        return error_set(err, r, "Out of memory for pinned pages");
                v = p->spans;
                v[p->n_spans++] = span;
                grown = spans_union(v, p->n_spans);
                delta = grown - p->pinned;
                r = account_charge(c->sim, p->account, delta, err);
                if (r < 0) {
                        /* The union sorted the spans: take out one equal to ours. */
                        for (uint32_t i = 0; i < p->n_spans; i++)
                                if (v[i].start == span.start && v[i].end == span.end) {
                                        v[i] = v[--p->n_spans];
                                        break;
                                }
                        return r;
                }
                p->pinned = grown;
        }
        c->sim->stats.pinned_bytes += delta;
        a->flags |= AREA_PINNED;
        return 0;
}

void sim_area_unpin(SimContext *c, SimArea *a) {
        SimSpan span = area_span(a);
        SimPages *p = a->pages;
        uint64_t delta;

        if (!(a->flags & AREA_PINNED))
                return;
        a->flags &= ~AREA_PINNED;
        if (!p) {
                delta = span.end - span.start;
                account_refund(c->sim, mode_account(c, area_mode(a)), delta);
        } else {
                uint64_t left;

                for (uint32_t i = 0; i < p->n_spans; i++)
                        if (p->spans[i].start == span.start && p->spans[i].end == span.end) {
                                p->spans[i] = p->spans[--p->n_spans];
                                break;
                        }
                left = spans_union(p->spans, p->n_spans);
                delta = p->pinned - left;
                p->pinned = left;
                account_refund(c->sim, p->account, delta);
        }
        c->sim->stats.pinned_bytes -= delta;
}

int sim_ioas_pin_all(SimContext *c, SimIoas *ioas, Error *err) {
        IovaNode *n, *failed;
        int r;

        for (n = iova_tree_first(&ioas->areas); n; n = iova_tree_next(&ioas->areas, n)) {
                r = sim_area_pin(c, (SimArea *)n, err);
                if (r < 0)
                        goto fail;
        }
        return 0;
fail:
        failed = n;
        for (n = iova_tree_first(&ioas->areas); n != failed; n = iova_tree_next(&ioas->areas, n))
                sim_area_unpin(c, (SimArea *)n);
        return r;
}

void sim_ioas_unpin_all(SimContext *c, SimIoas *ioas) {
        for (IovaNode *n = iova_tree_first(&ioas->areas); n; n = iova_tree_next(&ioas->areas, n))
                sim_area_unpin(c, (SimArea *)n);
}

/* ---- what a device reaches ---- */

/* pread()/pwrite() of the part before the file's end; the rest lies in pages it no longer has. */
static int file_access(SimFile *f, uint64_t off, char *buf, size_t length, bool write) {
        struct stat st;
        size_t done = 0, inside;

        if (fstat(f->fd, &st) < 0)
                return -EIO;
        inside = off >= (uint64_t)st.st_size ? 0 : (size_t)MIN((uint64_t)length,
                                                                (uint64_t)st.st_size - off);
        while (done < inside) {
                ssize_t k = write ? pwrite(f->fd, buf + done, inside - done, (off_t)(off + done))
                                  : pread(f->fd, buf + done, inside - done, (off_t)(off + done));

                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0)
                        return -errno;
                if (k == 0)
                        break;
                done += (size_t)k;
        }
        if (!write && done < length)
                memset(buf + done, 0, length - done);
        return 0;
}

int sim_area_access(SimArea *a, uint64_t off, void *buf, size_t length, bool write) {
        SimPages *p = a->pages;
        struct iovec local = { buf, length }, remote;

        if (p && p->file)
                return file_access(p->file, a->source + off, buf, length, write);
        if ((a->flags & AREA_PHANTOM) || (p && p->phantom)) {
                if (!write)
                        memset(buf, 0, length);
                return 0;
        }
        /* The mapper's own memory; where it unmapped it, the pinned pages are nobody's. */
        remote = (struct iovec){ (void *)(uintptr_t)(a->source + off), length };
        if ((write ? process_vm_writev(getpid(), &local, 1, &remote, 1, 0)
                   : process_vm_readv(getpid(), &local, 1, &remote, 1, 0)) != (ssize_t)length &&
            !write)
                memset(buf, 0, length);
        return 0;
}
