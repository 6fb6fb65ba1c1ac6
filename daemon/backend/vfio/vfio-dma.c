/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <fcntl.h>
#include <inttypes.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "assert-util.h"
#include "macros.h"
#include "vfio-abi.h"
#include "vfio-dma.h"
#include "vfio-internal.h"

#define MAP_FLAGS (BACKEND_MAP_FIXED_IOVA | BACKEND_MAP_READABLE | BACKEND_MAP_WRITEABLE)
#define RW (BACKEND_MAP_READABLE | BACKEND_MAP_WRITEABLE)

static VfioIoas *ioas_lookup(VfioContext *c, uint32_t id, Error *err) {
        VfioIoas *ioas = vfio_obj_find(c, id, VFIO_OBJ_IOAS);

        if (!ioas)
                (void)error_set(err, -ENOENT, "IOAS %" PRIu32 " does not exist", id);
        return ioas;
}

/* What every map and copy checks first, in iommufd's order. */
static int check_request(VfioContext *c, uint32_t ioas_id, uint32_t flags, uint64_t iova,
                         uint64_t length, VfioIoas **ret, Error *err) {
        if (flags & ~MAP_FLAGS)
                return error_set(err, -EOPNOTSUPP, "unknown map flags 0x%" PRIx32,
                                 flags & ~MAP_FLAGS);
        if (((flags & BACKEND_MAP_FIXED_IOVA) && iova == UINT64_MAX) || length == UINT64_MAX)
                return error_set(err, -EOVERFLOW, "IOVA or length 0x%" PRIx64 " is too large",
                                 length);
        *ret = ioas_lookup(c, ioas_id, err);
        return *ret ? 0 : -ENOENT;
}

static int check_rw_length(uint32_t flags, uint64_t length, Error *err) {
        if (!(flags & RW))
                return error_set(err, -EINVAL, "a mapping must be readable, writeable or both");
        if (length == 0)
                return error_set(err, -EINVAL, "cannot map 0 bytes");
        return 0;
}

/* Picks or checks the IOVA, hands the piece to the kernel when a group is in, records it. */
static int map_piece(BackendVfio *v, VfioIoas *ioas, uint32_t flags, const VfioPiece *p,
                     uint64_t *iova, Error *err) {
        uint64_t at = *iova;
        int r;

        if (flags & BACKEND_MAP_FIXED_IOVA)
                r = vfio_ioas_check_fixed(ioas, at, p->length, err);
        else
                r = vfio_ioas_alloc_iova(ioas, p->source, p->length, &at, err);
        if (r < 0)
                return r;
        if (ioas->container >= 0) {
                if (p->vaddr == 0)
                        return error_set(err, -EINVAL,
                                         "the memory at 0x%" PRIx64 " was mapped before iommud "
                                         "restarted: unmap it and map it again",
                                         p->source);
                /* MAP_DMA wants the VA aligned as the IOVA is. */
                if (p->vaddr & (ioas->pgsize - 1))
                        return error_set(err, -EINVAL,
                                         "the memory at offset 0x%" PRIx64 " is not aligned to "
                                         "the IOMMU page size 0x%" PRIx64 " of IOAS %" PRIu32,
                                         p->source, ioas->pgsize, ioas->id);
                r = vfio_container_map(v, ioas, at, flags, p, err);
                if (r < 0)
                        return r;
        }
        r = vfio_ioas_insert(ioas, at, flags & RW, p, err);
        if (r < 0) {
                (void)vfio_container_unmap(v, ioas, at, p->length, NULL);
                return r;
        }
        *iova = at;
        return 0;
}

/* The memory fd, mapped by the backend: MAP_DMA pins the caller's own VA. */
static int map_memfd(BackendVfio *v, int fd, uint64_t start, uint64_t length, uint32_t flags,
                     VfioMap **ret, uint64_t *ret_delta, Error *err) {
        uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE), aligned = start & ~(page - 1);
        uint64_t delta = start - aligned, maplen, end;
        struct stat st;
        VfioMap *m;
        void *addr;
        int r;

        if (fd < 0 || fstat(fd, &st) < 0)
                return error_set(err, -EBADF, "memory fd %d is not open", fd);
        if (!S_ISREG(st.st_mode))
                return error_set(err, -EINVAL,
                                 "memory fd %d is not a memfd, shmem or hugetlbfs file", fd);
        if (ADD_OVERFLOW(start, length, &end) || end > (uint64_t)st.st_size)
                return error_set(err, -EINVAL,
                                 "offset 0x%" PRIx64 " + length 0x%" PRIx64
                                 " extends past the end of memory fd %d (0x%" PRIx64 " bytes)",
                                 start, length, fd, (uint64_t)st.st_size);
        if (ADD_OVERFLOW(length, delta, &maplen) || maplen > SIZE_MAX)
                return error_set(err, -EOVERFLOW,
                                 "offset 0x%" PRIx64 " + length 0x%" PRIx64 " overflows", start,
                                 length);
        m = calloc(1, sizeof(*m));
        if (!m)
                return error_set(err, -ENOMEM, "out of memory");
        r = v->sys->mmap(v->userdata, (size_t)maplen,
                         PROT_READ | ((flags & BACKEND_MAP_WRITEABLE) ? PROT_WRITE : 0), fd,
                         aligned, &addr);
        if (r < 0) {
                free(m);
                return error_set(err, r == -EACCES ? r : -EINVAL,
                                 "cannot map memory fd %d at offset 0x%" PRIx64 " (0x%" PRIx64
                                 " bytes)%s: %s",
                                 fd, start, length,
                                 (flags & BACKEND_MAP_WRITEABLE) ? " writeable" : "", strerror(-r));
        }
        *m = (VfioMap){ .n_ref = 1, .addr = addr, .length = (size_t)maplen };
        v->n_mmaps++;
        *ret = m;
        *ret_delta = delta;
        return 0;
}

int vfio_dma_map_file(BackendContext *bc, uint32_t ioas_id, uint32_t flags, int fd, uint64_t start,
                      uint64_t length, uint64_t *iova, Error *err) {
        VfioContext *c = (VfioContext *)bc;
        BackendVfio *v = vfio_of(c);
        VfioIoas *ioas;
        VfioMap *m = NULL;
        uint64_t delta = 0;
        int r;

        assert_return(bc && iova, -EINVAL);
        r = check_request(c, ioas_id, flags, *iova, length, &ioas, err);
        if (r < 0)
                return r;
        if (fd < 0 || fcntl(fd, F_GETFD) < 0)
                return error_set(err, -EBADF, "memory fd %d is not open", fd);
        r = check_rw_length(flags, length, err);
        if (r < 0)
                return r;
        r = map_memfd(v, fd, start, length, flags, &m, &delta, err);
        if (r < 0)
                return r;
        r = map_piece(v, ioas, flags,
                      &(VfioPiece){
                              .length = length,
                              .vaddr = (uint64_t)(uintptr_t)m->addr + delta,
                              .source = start,
                              .pages_writable = flags & BACKEND_MAP_WRITEABLE,
                              .map = m,
                      },
                      iova, err);
        /* The area took its own reference on success. */
        vfio_map_unref(v, m);
        return r;
}

int vfio_dma_map_va(BackendContext *bc, uint32_t ioas_id, uint32_t flags, uint64_t user_va,
                    uint64_t length, uint64_t *iova, Error *err) {
        VfioContext *c = (VfioContext *)bc;
        VfioIoas *ioas;
        int r;

        assert_return(bc && iova, -EINVAL);
        r = check_request(c, ioas_id, flags, *iova, length, &ioas, err);
        if (r < 0)
                return r;
        r = check_rw_length(flags, length, err);
        if (r < 0)
                return r;
        return map_piece(vfio_of(c), ioas, flags,
                         &(VfioPiece){
                                 .length = length,
                                 .vaddr = user_va,
                                 .source = user_va,
                                 .pages_writable = flags & BACKEND_MAP_WRITEABLE,
                         },
                         iova, err);
}

/* Areas wholly inside [first, last] go in order; a cut one stops it (not atomic, as iommufd). */
static int unmap_range(BackendVfio *v, VfioIoas *ioas, uint64_t first, uint64_t last,
                       uint64_t *ret_unmapped, Error *err) {
        uint64_t unmapped = 0;
        IovaNode *n;
        int r;

        while ((n = iova_tree_first_overlap(&ioas->areas, first, last))) {
                uint64_t len = n->last - n->start + 1;

                if (n->start < first || n->last > last) {
                        *ret_unmapped = unmapped;
                        return error_set(err, -ENOENT,
                                         "IOVA range 0x%" PRIx64 "-0x%" PRIx64
                                         " cuts the mapping 0x%" PRIx64 "-0x%" PRIx64
                                         " of IOAS %" PRIu32,
                                         first, last, n->start, n->last, ioas->id);
                }
                r = vfio_container_unmap(v, ioas, n->start, len, err);
                if (r < 0) {
                        *ret_unmapped = unmapped;
                        return r;
                }
                unmapped += len;
                vfio_ioas_area_free(v, ioas, (VfioArea *)n);
        }
        *ret_unmapped = unmapped;
        if (unmapped == 0)
                return error_set(err, -ENOENT,
                                 "nothing is mapped in 0x%" PRIx64 "-0x%" PRIx64
                                 " of IOAS %" PRIu32,
                                 first, last, ioas->id);
        return 0;
}

int vfio_dma_unmap(BackendContext *bc, uint32_t ioas_id, uint64_t iova, uint64_t length,
                   uint64_t *ret_unmapped, Error *err) {
        VfioContext *c = (VfioContext *)bc;
        uint64_t last, unmapped = 0;
        VfioIoas *ioas;
        int r;

        assert_return(bc, -EINVAL);
        ioas = ioas_lookup(c, ioas_id, err);
        if (!ioas)
                return -ENOENT;
        /* (0, U64_MAX) empties the IOAS, also when it is empty already. */
        if (iova == 0 && length == UINT64_MAX) {
                r = unmap_range(vfio_of(c), ioas, 0, UINT64_MAX, &unmapped, err);
                if (r < 0 && r != -ENOENT)
                        return r;
                if (ret_unmapped)
                        *ret_unmapped = unmapped;
                return 0;
        }
        if (iova == UINT64_MAX || length == UINT64_MAX)
                return error_set(err, -EOVERFLOW,
                                 "IOVA 0x%" PRIx64 " or length 0x%" PRIx64 " is too large", iova,
                                 length);
        if (length == 0)
                return error_set(err, -EINVAL, "cannot unmap 0 bytes");
        if (ADD_OVERFLOW(iova, length - 1, &last))
                return error_set(err, -EOVERFLOW,
                                 "IOVA 0x%" PRIx64 " plus length 0x%" PRIx64 " overflows", iova,
                                 length);
        r = unmap_range(vfio_of(c), ioas, iova, last, &unmapped, err);
        if (r < 0)
                return r;
        if (ret_unmapped)
                *ret_unmapped = unmapped;
        return 0;
}

static int copy_checks(VfioContext *c, uint32_t dst_ioas_id, uint32_t flags,
                       const VfioPiece *pieces, size_t n, uint64_t src_iova, VfioIoas **ret_dst,
                       Error *err) {
        *ret_dst = ioas_lookup(c, dst_ioas_id, err);
        if (!*ret_dst)
                return -ENOENT;
        if (!(flags & RW))
                return error_set(err, -EINVAL, "a mapping must be readable, writeable or both");
        for (size_t i = 0; i < n; i++) {
                if ((flags & BACKEND_MAP_WRITEABLE) && !pieces[i].pages_writable)
                        return error_set(err, -EPERM,
                                         "source 0x%" PRIx64 " was not mapped writeable",
                                         src_iova + pieces[i].offset);
        }
        return 0;
}

/* Undoes the first n pieces a copy mapped at at. */
static void copy_undo(BackendVfio *v, VfioIoas *dst, uint64_t at, const VfioPiece *pieces,
                      size_t n) {
        for (size_t j = 0; j < n; j++) {
                VfioArea *a = (VfioArea *)iova_tree_find(&dst->areas, at + pieces[j].offset);

                (void)vfio_container_unmap(v, dst, a->node.start, pieces[j].length, NULL);
                vfio_ioas_area_free(v, dst, a);
        }
}

/* A copy maps the same memory again: one area per source area, as iommufd makes. */
int vfio_dma_copy(BackendContext *bc, uint32_t dst_ioas_id, uint32_t src_ioas_id, uint32_t flags,
                  uint64_t src_iova, uint64_t length, uint64_t *dst_iova, Error *err) {
        VfioContext *c = (VfioContext *)bc;
        BackendVfio *v = vfio_of(c);
        _cleanup_free_ VfioPiece *pieces = NULL;
        VfioIoas *src, *dst;
        uint64_t at;
        size_t n = 0;
        int r;

        assert_return(bc && dst_iova, -EINVAL);
        r = check_request(c, src_ioas_id, flags, *dst_iova, length, &src, err);
        if (r >= 0)
                r = vfio_ioas_collect(src, src_iova, length, &pieces, &n, err);
        if (r >= 0)
                r = copy_checks(c, dst_ioas_id, flags, pieces, n, src_iova, &dst, err);
        if (r < 0)
                return r;
        at = *dst_iova;
        if (flags & BACKEND_MAP_FIXED_IOVA)
                r = vfio_ioas_check_fixed(dst, at, length, err);
        else
                r = vfio_ioas_alloc_iova(dst, pieces[0].source, length, &at, err);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++) {
                uint64_t piece_iova = at + pieces[i].offset;

                r = map_piece(v, dst, flags | BACKEND_MAP_FIXED_IOVA, &pieces[i], &piece_iova, err);
                if (r < 0) {
                        copy_undo(v, dst, at, pieces, i);
                        return r;
                }
        }
        *dst_iova = at;
        return 0;
}

int vfio_dma_iova_ranges(BackendContext *bc, uint32_t ioas_id, IovaRange *ranges, size_t *n_ranges,
                         uint64_t *ret_alignment, Error *err) {
        static const IovaRange whole = { 0, UINT64_MAX };
        const IovaRange *usable = &whole;
        VfioIoas *ioas;
        size_t n = 1;

        assert_return(bc, -EINVAL);
        assert_return(n_ranges, -EINVAL);
        assert_return(ranges || *n_ranges == 0, -EINVAL);
        ioas = ioas_lookup((VfioContext *)bc, ioas_id, err);
        if (!ioas)
                return -ENOENT;
        if (ioas->n_usable > 0) {
                usable = ioas->usable;
                n = ioas->n_usable;
        }
        if (*n_ranges < n) {
                *n_ranges = n;
                return error_set(err, -EMSGSIZE,
                                 "IOAS %" PRIu32 " has %zu IOVA ranges, room was given for fewer",
                                 ioas_id, n);
        }
        memcpy(ranges, usable, n * sizeof(*usable));
        *n_ranges = n;
        if (ret_alignment)
                *ret_alignment = ioas->pgsize;
        return 0;
}

int vfio_dma_allow_iovas(BackendContext *bc, uint32_t ioas_id, const IovaRange *ranges, size_t n,
                         Error *err) {
        VfioContext *c = (VfioContext *)bc;
        VfioIoas *ioas;

        assert_return(bc, -EINVAL);
        assert_return(ranges || n == 0, -EINVAL);
        ioas = ioas_lookup(c, ioas_id, err);
        if (!ioas)
                return -ENOENT;
        return vfio_ioas_set_allowed(ioas, ranges, n, err);
}
