/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * IOAS objects and their areas: map (fixed or automatic IOVA), unmap (whole areas only, not
 * atomic), copy, as iommufd's io_pagetable does them.  The areas live in an IovaTree.
 */

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>

#include "assert-util.h"
#include "sim-private.h"

#define TMPFS_MAGIC_ 0x01021994
#define HUGETLBFS_MAGIC_ 0x958458f6

#define SIM_MAP_FLAGS (BACKEND_MAP_FIXED_IOVA | BACKEND_MAP_WRITEABLE | BACKEND_MAP_READABLE)

static uint64_t roundup_pow2(uint64_t v) {
        if (v <= 1)
                return 1;
        if (v > (UINT64_C(1) << 63))
                return 0;
        return UINT64_C(1) << (64 - __builtin_clzll(v - 1));
}

/* ---- areas ---- */

/* check_areas: false when the insertion itself will report EEXIST (one descent less). */
static int ioas_check_fixed(SimIoas *ioas, uint64_t iova, uint64_t length, bool check_areas,
                            Error *err) {
        uint64_t last;

        if (iova & (ioas->alignment - 1))
                return error_set(err, -EINVAL, "IOVA 0x%" PRIx64 " is not aligned to %" PRIu64,
                                 iova, ioas->alignment);
        if (ADD_OVERFLOW(iova, length - 1, &last))
                return error_set(err, -EOVERFLOW,
                                 "IOVA 0x%" PRIx64 " plus length 0x%" PRIx64 " overflows", iova,
                                 length);
        if (sim_ioas_reserved_overlaps(ioas, iova, last))
                return error_set(err, -EINVAL,
                                 "Range 0x%" PRIx64 "-0x%" PRIx64 " overlaps a reserved range",
                                 iova, last);
        if (check_areas && iova_tree_first_overlap(&ioas->areas, iova, last))
                return error_set(err, -EEXIST,
                                 "Range 0x%" PRIx64 "-0x%" PRIx64 " overlaps an existing mapping",
                                 iova, last);
        return 0;
}

/*
 * The kernel's automatic IOVA: alignment min(roundup_pow2(length), lowest set
 * bit of the source address) (just the former for source 0), capped at
 * BACKEND_SIM_AUTO_ALIGN_MAX (the kernel's HPAGE_SIZE) before it is checked
 * against the IOAS alignment, the source's
 * sub-page offset kept, searched inside [PAGE_SIZE, U64_MAX - PAGE_SIZE]
 * (so never 0) intersected with the allowed ranges when any are set, outside
 * every reserved range, lowest hole first.
 */
static int ioas_alloc_iova(SimIoas *ioas, uint64_t source, uint64_t length, uint64_t *ret,
                           Error *err) {
        _cleanup_free_ IovaRange *resv = NULL;
        IovaRange whole = { BACKEND_SIM_PAGE_SIZE, UINT64_MAX - BACKEND_SIM_PAGE_SIZE };
        const IovaRange *allowed = ioas->n_allowed > 0 ? ioas->allowed : &whole;
        size_t n_allowed = ioas->n_allowed > 0 ? ioas->n_allowed : 1, n_resv = 0;
        uint64_t align, offset = source % BACKEND_SIM_PAGE_SIZE;
        int r;

        if (length == 0 || (length & (ioas->alignment - 1)))
                return error_set(err, -EINVAL, "Length 0x%" PRIx64 " is not a multiple of %" PRIu64,
                                 length, ioas->alignment);
        align = roundup_pow2(length);
        if (align == 0)
                align = UINT64_C(1) << 63;
        if (source != 0)
                align = MIN(align, sim_lowest_bit(source));
        align = MIN(align, BACKEND_SIM_AUTO_ALIGN_MAX);
        if (align < ioas->alignment)
                return error_set(err, -EINVAL,
                                 "Source address 0x%" PRIx64 " is not aligned to the IOAS alignment %" PRIu64,
                                 source, ioas->alignment);

        r = sim_ioas_reserved_sorted(ioas, &resv, &n_resv);
        if (r < 0)
                return error_set(err, r, "Out of memory");

        for (size_t i = 0; i < n_allowed; i++) {
                uint64_t lo = MAX(allowed[i].start, whole.start);
                uint64_t hi = MIN(allowed[i].last, whole.last);
                size_t k = 0;

                /* Walk the free windows of [lo, hi] between reserved ranges. */
                while (lo <= hi) {
                        uint64_t wlast = hi, next_lo = 0;
                        bool more = false;

                        while (k < n_resv && resv[k].last < lo)
                                k++;
                        if (k < n_resv && resv[k].start <= lo) {
                                if (resv[k].last >= hi)
                                        break;
                                lo = resv[k].last + 1;
                                continue;
                        }
                        if (k < n_resv && resv[k].start <= hi) {
                                wlast = resv[k].start - 1;
                                more = resv[k].last < hi;
                                next_lo = more ? resv[k].last + 1 : 0;
                        }
                        if (iova_tree_find_hole(&ioas->areas, lo, wlast, length, align, offset, ret) == 0)
                                return 0;
                        if (!more)
                                break;
                        lo = next_lo;
                }
        }
        return error_set(err, -ENOSPC, "No free IOVA range of 0x%" PRIx64 " bytes aligned to %" PRIu64
                         " in IOAS %" PRIu32, length, align, ioas->obj.id);
}

/*
 * Inserts an area that uses pages (a reference the area takes over; NULL: a user VA mapped
 * once) and pins it when the IOAS has a domain.  On failure the reference is dropped.
 */
static int ioas_insert_area(SimContext *c, SimIoas *ioas, uint64_t iova, uint64_t length,
                            uint64_t source, uint32_t flags, SimPages *pages, Error *err) {
        SimArea *a;
        int r;

        if ((source % BACKEND_SIM_PAGE_SIZE) & (ioas->alignment - 1)) {
                sim_pages_unref(c, pages);
                return error_set(err, -EINVAL,
                                 "Source offset 0x%" PRIx64 " is not aligned to %" PRIu64, source,
                                 ioas->alignment);
        }
        a = sim_spare_take(&c->sim->spare_areas, sizeof(SimArea));
        if (!a) {
                sim_pages_unref(c, pages);
                return error_set(err, -ENOMEM, "Out of memory for an area");
        }
        *a = (SimArea){
                .node = { .start = iova, .last = iova + length - 1 },
                .source = source,
                .pages = pages,
                .flags = flags,
        };
        r = iova_tree_insert(&ioas->areas, &a->node);
        if (r < 0) {
                sim_spare_give(&c->sim->spare_areas, a);
                sim_pages_unref(c, pages);
                if (r == -ENOMEM)
                        return error_set(err, r, "Out of memory for the area tree");
                return error_set(err, -EEXIST,
                                 "Range 0x%" PRIx64 "-0x%" PRIx64 " overlaps an existing mapping",
                                 iova, iova + length - 1);
        }
        if (ioas->n_domains > 0) {
                r = sim_area_pin(c, a, err);
                if (r < 0) {
                        iova_tree_remove(&ioas->areas, &a->node);
                        sim_spare_give(&c->sim->spare_areas, a);
                        sim_pages_unref(c, pages);
                        return r;
                }
        }
        c->mapped_bytes += length;
        c->sim->stats.mappings++;
        return 0;
}

static int check_map_flags(uint32_t flags, Error *err) {
        if (flags & ~SIM_MAP_FLAGS)
                return error_set(err, -EOPNOTSUPP, "Unknown map flags 0x%" PRIx32,
                                 flags & ~SIM_MAP_FLAGS);
        return 0;
}

/* What the kernel checks of the memory before it places the area: the file, or the VA range. */
static int map_memory(SimContext *c, int fd, uint64_t source, uint64_t length, SimPages **ret,
                      Error *err) {
        struct stat st;
        struct statfs sfs;
        uint64_t end;

        if (fd < 0) {
                if (ADD_OVERFLOW(source, length, &end))
                        return error_set(err, -EOVERFLOW,
                                         "VA 0x%" PRIx64 " + length 0x%" PRIx64 " overflows",
                                         source, length);
                *ret = NULL;
                return 0;
        }
        if (fstat(fd, &st) < 0)
                return error_set(err, -EBADF, "Memory fd %d is not an open file", fd);
        if (!S_ISREG(st.st_mode) || fstatfs(fd, &sfs) < 0 ||
            ((uint64_t)sfs.f_type != TMPFS_MAGIC_ && (uint64_t)sfs.f_type != HUGETLBFS_MAGIC_))
                return error_set(err, -EINVAL,
                                 "Memory fd %d is not a memfd, shmem or hugetlbfs file", fd);
        if (ADD_OVERFLOW(source, length, &end) || end > (uint64_t)st.st_size)
                return error_set(err, -EINVAL,
                                 "Range 0x%" PRIx64 "+0x%" PRIx64
                                 " is beyond the end of the memory fd (%" PRIu64 " bytes)",
                                 source, length, (uint64_t)st.st_size);
        return sim_pages_new_file(c, fd, &st, sim_map_account_mode(c), ret, err);
}

static int ioas_map_common(SimContext *c, uint32_t ioas_id, uint32_t flags, uint64_t source,
                           uint64_t length, uint64_t *iova, int fd, Error *err) {
        uint32_t rw = flags & (BACKEND_MAP_READABLE | BACKEND_MAP_WRITEABLE), area_flags;
        SimPages *pages = NULL;
        SimIoas *ioas;
        uint64_t at;
        int r;

        r = check_map_flags(flags, err);
        if (r < 0)
                return r;
        if (((flags & BACKEND_MAP_FIXED_IOVA) && *iova == UINT64_MAX) || length == UINT64_MAX)
                return error_set(err, -EOVERFLOW, "IOVA or length 0x%" PRIx64 " is too large", length);
        r = sim_obj_lookup(c, ioas_id, SIM_OBJ_IOAS, (void **)&ioas, err);
        if (r < 0)
                return r;
        if (fd >= 0) {
                r = map_memory(c, fd, source, length, &pages, err);
                if (r < 0)
                        return r;
        }
        if (rw == 0)
                r = error_set(err, -EINVAL, "A mapping must be readable, writeable or both");
        else if (length == 0)
                r = error_set(err, -EINVAL, "Length is 0");
        else if (fd < 0)
                r = map_memory(c, fd, source, length, &pages, err);
        if (r < 0) {
                sim_pages_unref(c, pages);
                return r;
        }

        if (flags & BACKEND_MAP_FIXED_IOVA) {
                at = *iova;
                if (length & (ioas->alignment - 1))
                        r = error_set(err, -EINVAL,
                                      "Length 0x%" PRIx64 " is not a multiple of %" PRIu64,
                                      length, ioas->alignment);
                else
                        r = ioas_check_fixed(ioas, at, length, false, err);
        } else
                r = ioas_alloc_iova(ioas, source, length, &at, err);
        if (r < 0) {
                sim_pages_unref(c, pages);
                return r;
        }

        area_flags = rw | ((flags & BACKEND_MAP_WRITEABLE) ? AREA_PAGES_WRITABLE : 0) |
                     ((uint32_t)sim_map_account_mode(c) << AREA_ACCOUNT_SHIFT) |
                     (fd < 0 && c->adopted_memory ? AREA_PHANTOM : 0);
        r = ioas_insert_area(c, ioas, at, length, source, area_flags, pages, err);
        if (r < 0)
                return r;
        *iova = at;
        return 0;
}

int sim_ioas_map_file(BackendContext *bc, uint32_t ioas_id, uint32_t flags, int fd,
                      uint64_t start, uint64_t length, uint64_t *iova, Error *err) {
        assert_return(bc, -EINVAL);
        assert_return(iova, -EINVAL);

        if (fd < 0)
                return error_set(err, -EBADF, "Memory fd %d is not valid", fd);
        return ioas_map_common(to_ctx(bc), ioas_id, flags, start, length, iova, fd, err);
}

int sim_ioas_map_va(BackendContext *bc, uint32_t ioas_id, uint32_t flags, uint64_t user_va,
                    uint64_t length, uint64_t *iova, Error *err) {
        assert_return(bc, -EINVAL);
        assert_return(iova, -EINVAL);

        return ioas_map_common(to_ctx(bc), ioas_id, flags, user_va, length, iova, -1, err);
}

/* An area leaves: its pins go (and their charge), then its reference to the pages. */
static void area_release(SimContext *c, SimArea *a) {
        c->mapped_bytes -= a->node.last - a->node.start + 1;
        c->sim->stats.mappings--;
        sim_area_unpin(c, a);
        sim_pages_unref(c, a->pages);
        sim_spare_give(&c->sim->spare_areas, a);
}

static void area_free(SimContext *c, SimIoas *ioas, SimArea *a) {
        sim_ioas_forget_dirty(ioas, a->node.start, a->node.last);
        iova_tree_remove(&ioas->areas, &a->node);
        area_release(c, a);
}

/* Unmaps areas wholly inside [start, last] in order; a cut area stops it (not atomic). */
static int ioas_unmap_range(SimContext *c, SimIoas *ioas, uint64_t start, uint64_t last,
                            uint64_t *ret_unmapped, Error *err) {
        uint64_t unmapped = 0, from = start;
        IovaNode *n;
        int r;

        /* One descent per area: found and removed together unless it is cut. */
        while ((r = iova_tree_take_first(&ioas->areas, from, last, &n)) != -ENOENT) {
                uint64_t n_last = n->last;

                if (r < 0)
                        return error_set(err, -ENOENT,
                                         "Range 0x%" PRIx64 "-0x%" PRIx64
                                         " cuts the mapping 0x%" PRIx64 "-0x%" PRIx64,
                                         start, last, n->start, n_last);
                unmapped += n_last - n->start + 1;
                sim_ioas_forget_dirty(ioas, n->start, n_last);
                area_release(c, (SimArea *)n);
                /* Areas are disjoint: none after one that ends at last is in the range. */
                if (n_last == last)
                        break;
                from = n_last + 1;
        }
        if (unmapped == 0)
                return error_set(err, -ENOENT,
                                 "Nothing is mapped in 0x%" PRIx64 "-0x%" PRIx64, start, last);
        *ret_unmapped = unmapped;
        return 0;
}

int sim_ioas_unmap(BackendContext *bc, uint32_t ioas_id, uint64_t iova, uint64_t length,
                   uint64_t *ret_unmapped, Error *err) {
        SimContext *c = to_ctx(bc);
        SimIoas *ioas;
        uint64_t last, unmapped = 0;
        int r;

        assert_return(bc, -EINVAL);

        r = sim_obj_lookup(c, ioas_id, SIM_OBJ_IOAS, (void **)&ioas, err);
        if (r < 0)
                return r;
        if (iova == 0 && length == UINT64_MAX) {
                r = ioas_unmap_range(c, ioas, 0, UINT64_MAX, &unmapped, NULL);
                if (r < 0 && r != -ENOENT)
                        return error_set(err, r, "Unmapping everything failed");
                if (ret_unmapped)
                        *ret_unmapped = unmapped;
                return 0;
        }
        if (iova == UINT64_MAX || length == UINT64_MAX)
                return error_set(err, -EOVERFLOW, "IOVA 0x%" PRIx64 " or length 0x%" PRIx64
                                 " is too large", iova, length);
        if (length == 0)
                return error_set(err, -EINVAL, "Length is 0");
        if (ADD_OVERFLOW(iova, length - 1, &last))
                return error_set(err, -EOVERFLOW,
                                 "IOVA 0x%" PRIx64 " plus length 0x%" PRIx64 " overflows", iova,
                                 length);
        r = ioas_unmap_range(c, ioas, iova, last, &unmapped, err);
        if (r < 0)
                return r;
        if (ret_unmapped)
                *ret_unmapped = unmapped;
        return 0;
}

typedef struct CopyPiece {
        uint64_t offset; /* from the start of the copied range */
        uint64_t length;
        uint64_t source;
        SimPages *pages; /* the source area's, which the copy shares */
        uint32_t pages_writable;
} CopyPiece;

/* The pieces of the areas that cover [src_iova, src_last] without a hole, in order. */
static int copy_collect(SimContext *c, SimIoas *src, uint64_t src_iova, uint64_t src_last,
                        CopyPiece **ret, size_t *ret_n, Error *err) {
        _cleanup_free_ CopyPiece *pieces = NULL;
        size_t n_pieces = 0;
        uint64_t cur = src_iova;
        IovaNode *n = iova_tree_find(&src->areas, src_iova);

        while (true) {
                SimArea *a = (SimArea *)n;
                uint64_t piece_last;
                SimPages *shared;
                CopyPiece *v;

                if (!n || n->start > cur)
                        return error_set(err, -ENOENT,
                                         "IOVA 0x%" PRIx64 " of IOAS %" PRIu32 " is not mapped",
                                         cur, src->obj.id);
                piece_last = MIN(n->last, src_last);
                v = realloc(pieces, (n_pieces + 1) * sizeof(CopyPiece));
                if (!v)
                        return error_set(err, -ENOMEM, "Out of memory");
                pieces = v;
                if (sim_area_share(c, a, &shared) < 0)
                        return error_set(err, -ENOMEM, "Out of memory for shared pages");
                pieces[n_pieces++] = (CopyPiece){
                        .offset = cur - src_iova,
                        .length = piece_last - cur + 1,
                        .source = a->source + (cur - n->start),
                        .pages = shared,
                        .pages_writable = a->flags & AREA_PAGES_WRITABLE,
                };
                if (piece_last == src_last)
                        break;
                cur = piece_last + 1;
                n = iova_tree_next(&src->areas, n);
        }
        *ret = TAKE_PTR(pieces);
        *ret_n = n_pieces;
        return 0;
}

/* Inserts the pieces at at in dst; all or none. */
static int copy_insert(SimContext *c, SimIoas *dst, uint64_t at, const CopyPiece *pieces,
                       size_t n_pieces, uint32_t flags, Error *err) {
        int r;

        for (size_t i = 0; i < n_pieces; i++) {
                pieces[i].pages->refs++;
                r = ioas_insert_area(c, dst, at + pieces[i].offset, pieces[i].length,
                                     pieces[i].source,
                                     (flags & (BACKEND_MAP_READABLE | BACKEND_MAP_WRITEABLE)) |
                                             pieces[i].pages_writable,
                                     pieces[i].pages, err);
                if (r < 0) {
                        /* Roll back what this copy inserted. */
                        for (size_t j = 0; j < i; j++)
                                area_free(c, dst,
                                          (SimArea *)iova_tree_find(&dst->areas,
                                                                    at + pieces[j].offset));
                        return r;
                }
        }
        return 0;
}

int sim_ioas_copy(BackendContext *bc, uint32_t dst_ioas_id, uint32_t src_ioas_id,
                  uint32_t flags, uint64_t src_iova, uint64_t length, uint64_t *dst_iova,
                  Error *err) {
        SimContext *c = to_ctx(bc);
        _cleanup_free_ CopyPiece *pieces = NULL;
        size_t n_pieces = 0;
        SimIoas *src, *dst;
        uint64_t src_last, at;
        int r;

        assert_return(bc, -EINVAL);
        assert_return(dst_iova, -EINVAL);

        if (length == UINT64_MAX || src_iova == UINT64_MAX ||
            ((flags & BACKEND_MAP_FIXED_IOVA) && *dst_iova == UINT64_MAX))
                return error_set(err, -EOVERFLOW, "IOVA or length is too large");
        r = check_map_flags(flags, err);
        if (r < 0)
                return r;
        r = sim_obj_lookup(c, src_ioas_id, SIM_OBJ_IOAS, (void **)&src, err);
        if (r < 0)
                return r;
        if (length == 0)
                return error_set(err, -EINVAL, "Length is 0");
        if (ADD_OVERFLOW(src_iova, length - 1, &src_last))
                return error_set(err, -EOVERFLOW, "Source range overflows");

        /* The source must be covered by contiguous areas. */
        r = copy_collect(c, src, src_iova, src_last, &pieces, &n_pieces, err);
        if (r < 0)
                return r;

        r = sim_obj_lookup(c, dst_ioas_id, SIM_OBJ_IOAS, (void **)&dst, err);
        if (r < 0)
                return r;
        if (!(flags & (BACKEND_MAP_READABLE | BACKEND_MAP_WRITEABLE)))
                return error_set(err, -EINVAL, "A mapping must be readable, writeable or both");
        if (flags & BACKEND_MAP_WRITEABLE)
                for (size_t i = 0; i < n_pieces; i++)
                        if (!pieces[i].pages_writable)
                                return error_set(err, -EPERM,
                                                 "Source 0x%" PRIx64 " was not mapped writeable",
                                                 src_iova + pieces[i].offset);

        if (flags & BACKEND_MAP_FIXED_IOVA) {
                at = *dst_iova;
                if (length & (dst->alignment - 1))
                        return error_set(err, -EINVAL,
                                         "Length 0x%" PRIx64 " is not a multiple of %" PRIu64,
                                         length, dst->alignment);
                r = ioas_check_fixed(dst, at, length, true, err);
        } else
                r = ioas_alloc_iova(dst, pieces[0].source, length, &at, err);
        if (r < 0)
                return r;

        r = copy_insert(c, dst, at, pieces, n_pieces, flags, err);
        if (r < 0)
                return r;
        *dst_iova = at;
        return 0;
}

/* ---- IOAS objects ---- */

int sim_ioas_alloc(BackendContext *bc, uint32_t *ret_id, Error *err) {
        SimContext *c = to_ctx(bc);
        SimIoas *ioas;
        int r;

        assert_return(bc, -EINVAL);
        assert_return(ret_id, -EINVAL);

        ioas = calloc(1, sizeof(SimIoas));
        if (!ioas)
                return error_set(err, -ENOMEM, "Out of memory for an IOAS");
        ioas->areas = IOVA_TREE_INIT;
        ioas->alignment = 1;
        r = sim_obj_add(c, &ioas->obj, SIM_OBJ_IOAS, err);
        if (r < 0) {
                free(ioas);
                return r;
        }
        *ret_id = ioas->obj.id;
        return 0;
}

static void area_free_cb(IovaNode *n, void *userdata) {
        area_release(userdata, (SimArea *)n);
}

void sim_ioas_free(SimContext *c, SimIoas *ioas) {
        iova_tree_clear(&ioas->areas, area_free_cb, c);
        sim_obj_remove(c, &ioas->obj);
        free(ioas->resv);
        free(ioas->allowed);
        free(ioas->domains);
        free(ioas);
}

/* ---- what tests and benchmarks read ---- */

uint64_t backend_sim_context_mapped_bytes(const BackendContext *c) {
        return ((const SimContext *)c)->mapped_bytes;
}

int backend_sim_ioas_n_areas(const BackendContext *bc, uint32_t ioas_id, size_t *ret) {
        SimContext *c = (SimContext *)bc;
        SimIoas *ioas;
        int r;

        assert_return(bc && backend_is_sim(bc->backend), -EINVAL);
        assert_return(ret, -EINVAL);

        r = sim_obj_lookup(c, ioas_id, SIM_OBJ_IOAS, (void **)&ioas, NULL);
        if (r < 0)
                return r;
        *ret = ioas->areas.n;
        return 0;
}

int backend_sim_ioas_lookup(const BackendContext *bc, uint32_t ioas_id, uint64_t iova,
                            IovaRange *ret) {
        SimContext *c = (SimContext *)bc;
        SimIoas *ioas;
        IovaNode *n;
        int r;

        assert_return(bc && backend_is_sim(bc->backend), -EINVAL);
        assert_return(ret, -EINVAL);

        r = sim_obj_lookup(c, ioas_id, SIM_OBJ_IOAS, (void **)&ioas, NULL);
        if (r < 0)
                return r;
        n = iova_tree_find(&ioas->areas, iova);
        if (!n)
                return -ENOENT;
        *ret = (IovaRange){ n->start, n->last };
        return 0;
}
