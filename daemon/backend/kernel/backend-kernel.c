/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "backend-kernel.h"
#include "iommufd-abi.h"
#include "log.h"
#include "macros.h"

/* FaultRecord and IovaRange are read and written in place of the kernel's structures. */
_Static_assert(sizeof(FaultRecord) == sizeof(struct iommud_hwpt_pgfault), "FaultRecord size");
_Static_assert(offsetof(FaultRecord, addr) == offsetof(struct iommud_hwpt_pgfault, addr),
               "FaultRecord.addr");
_Static_assert(offsetof(FaultRecord, cookie) == offsetof(struct iommud_hwpt_pgfault, cookie),
               "FaultRecord.cookie");
_Static_assert(sizeof(IovaRange) == sizeof(struct iommud_iova_range), "IovaRange size");
_Static_assert(offsetof(IovaRange, last) == offsetof(struct iommud_iova_range, last),
               "IovaRange.last");

/* ---- the real syscalls ---- */

static int real_open(void *userdata, const char *path, int flags) {
        int fd = open(path, flags | O_CLOEXEC);
        return fd < 0 ? negative_errno() : fd;
}

static int real_close(void *userdata, int fd) {
        return close(fd) < 0 ? negative_errno() : 0;
}

static int real_ioctl(void *userdata, int fd, unsigned long request, void *arg) {
        int r = ioctl(fd, request, arg);
        return r < 0 ? negative_errno() : r;
}

static ssize_t real_read(void *userdata, int fd, void *buf, size_t count) {
        ssize_t n = read(fd, buf, count);
        return n < 0 ? negative_errno() : n;
}

static ssize_t real_write(void *userdata, int fd, const void *buf, size_t count) {
        ssize_t n = write(fd, buf, count);
        return n < 0 ? negative_errno() : n;
}

static int real_mmap(void *userdata, void *addr, size_t length, int prot, int fd,
                     uint64_t offset, void **ret_addr) {
        void *p = mmap(addr, length, prot, MAP_SHARED | (addr ? MAP_FIXED : 0), fd,
                       (off_t)offset);
        if (p == MAP_FAILED)
                return negative_errno();
        *ret_addr = p;
        return 0;
}

static int real_munmap(void *userdata, void *addr, size_t length) {
        return munmap(addr, length) < 0 ? negative_errno() : 0;
}

const BackendKernelSyscalls backend_kernel_syscalls_real = {
        .open = real_open,
        .close = real_close,
        .ioctl = real_ioctl,
        .read = real_read,
        .write = real_write,
        .mmap = real_mmap,
        .munmap = real_munmap,
};

/* ---- objects ---- */

typedef struct BackendKernel {
        Backend base;
        int sysfs_fd;
        char *dev_root;
        const BackendKernelSyscalls *sys;
        void *userdata;
        size_t n_fallback_maps;
} BackendKernel;

/* One mmap of a memory fd, shared by the areas that IOAS_COPY made of it. */
typedef struct FallbackMap {
        unsigned n_ref;
        void *addr;
        size_t length;
} FallbackMap;

typedef struct FallbackArea {
        uint64_t iova;
        uint64_t last; /* inclusive */
        FallbackMap *map;
} FallbackArea;

/* The fallback areas of one IOAS, sorted by iova, never overlapping. */
typedef struct IoasAreas {
        uint32_t ioas_id;
        FallbackArea *areas;
        size_t n;
} IoasAreas;

typedef struct KernelFd {
        uint32_t id; /* dev_id or fault id */
        int fd;
} KernelFd;

typedef struct KernelContext {
        BackendContext base;
        int iommufd;
        KernelFd *devices;
        size_t n_devices;
        KernelFd *faults;
        size_t n_faults;
        IoasAreas *ioas;
        size_t n_ioas;
} KernelContext;

static BackendKernel *kernel_of(BackendContext *c) {
        return (BackendKernel *)c->backend;
}

static int sys_ioctl(KernelContext *c, int fd, unsigned long request, void *arg) {
        BackendKernel *k = kernel_of(&c->base);
        return k->sys->ioctl(k->userdata, fd, request, arg);
}

static void sys_close(BackendKernel *k, int fd) {
        if (fd >= 0)
                (void)k->sys->close(k->userdata, fd);
}

/* ---- MAP_FILE fallback bookkeeping ---- */

static void fallback_map_unref(BackendKernel *k, FallbackMap *m) {
        if (!m || --m->n_ref > 0)
                return;
        (void)k->sys->munmap(k->userdata, m->addr, m->length);
        k->n_fallback_maps--;
        free(m);
}

static IoasAreas *ioas_areas_find(KernelContext *c, uint32_t ioas_id) {
        if (!c->ioas)
                return NULL;
        FOREACH_ARRAY(a, c->ioas, c->n_ioas)
                if (a->ioas_id == ioas_id)
                        return a;
        return NULL;
}

static IoasAreas *ioas_areas_get(KernelContext *c, uint32_t ioas_id) {
        IoasAreas *a = ioas_areas_find(c, ioas_id), *n;

        if (a)
                return a;
        n = reallocarray(c->ioas, c->n_ioas + 1, sizeof(*c->ioas));
        if (!n)
                return NULL;
        c->ioas = n;
        c->ioas[c->n_ioas] = (IoasAreas){ .ioas_id = ioas_id };
        return &c->ioas[c->n_ioas++];
}

/* Releases every tracked area of the IOAS that lies wholly inside [first, last]. */
static void ioas_areas_release_inside(KernelContext *c, uint32_t ioas_id, uint64_t first,
                                      uint64_t last) {
        IoasAreas *a = ioas_areas_find(c, ioas_id);
        size_t j = 0;

        if (!a)
                return;
        for (size_t i = 0; i < a->n; i++) {
                if (a->areas[i].iova >= first && a->areas[i].last <= last)
                        fallback_map_unref(kernel_of(&c->base), a->areas[i].map);
                else
                        a->areas[j++] = a->areas[i];
        }
        a->n = j;
}

/*
 * Releases tracked areas that overlap [first, last] in any way.  Used before
 * recording a new area: the kernel just accepted a mapping there, so whatever
 * was recorded there is already gone from the kernel (a failed, non-atomic
 * unmap can leave such stale entries behind).
 */
static void ioas_areas_release_overlapping(KernelContext *c, uint32_t ioas_id, uint64_t first,
                                           uint64_t last) {
        IoasAreas *a = ioas_areas_find(c, ioas_id);
        size_t j = 0;

        if (!a)
                return;
        for (size_t i = 0; i < a->n; i++) {
                if (a->areas[i].iova <= last && a->areas[i].last >= first)
                        fallback_map_unref(kernel_of(&c->base), a->areas[i].map);
                else
                        a->areas[j++] = a->areas[i];
        }
        a->n = j;
}

static int ioas_areas_add(KernelContext *c, uint32_t ioas_id, uint64_t iova, uint64_t length,
                          FallbackMap *m) {
        IoasAreas *a;
        FallbackArea *n;
        uint64_t last = iova + length - 1;
        size_t pos = 0;

        ioas_areas_release_overlapping(c, ioas_id, iova, last);
        a = ioas_areas_get(c, ioas_id);
        if (!a)
                return -ENOMEM;
        n = reallocarray(a->areas, a->n + 1, sizeof(*a->areas));
        if (!n)
                return -ENOMEM;
        a->areas = n;
        while (pos < a->n && a->areas[pos].iova < iova)
                pos++;
        memmove(a->areas + pos + 1, a->areas + pos, (a->n - pos) * sizeof(*a->areas));
        a->areas[pos] = (FallbackArea){ .iova = iova, .last = last, .map = m };
        a->n++;
        m->n_ref++;
        return 0;
}

static const FallbackArea *ioas_areas_containing(KernelContext *c, uint32_t ioas_id,
                                                 uint64_t iova, uint64_t length) {
        IoasAreas *a = ioas_areas_find(c, ioas_id);

        if (!a || !a->areas || length == 0)
                return NULL;
        FOREACH_ARRAY(f, a->areas, a->n)
                if (f->iova <= iova && iova + (length - 1) <= f->last)
                        return f;
        return NULL;
}

static void ioas_areas_drop(KernelContext *c, uint32_t ioas_id) {
        ioas_areas_release_inside(c, ioas_id, 0, UINT64_MAX);
}

/* ---- fd tables ---- */

static int kernel_fd_add(KernelFd **array, size_t *n, uint32_t id, int fd) {
        KernelFd *a = reallocarray(*array, *n + 1, sizeof(**array));

        if (!a)
                return -ENOMEM;
        *array = a;
        a[(*n)++] = (KernelFd){ .id = id, .fd = fd };
        return 0;
}

static KernelFd *kernel_fd_find(KernelFd *array, size_t n, uint32_t id) {
        if (!array)
                return NULL;
        FOREACH_ARRAY(f, array, n)
                if (f->id == id)
                        return f;
        return NULL;
}

static void kernel_fd_remove(KernelFd *array, size_t *n, KernelFd *f) {
        size_t i = (size_t)(f - array);
        memmove(array + i, array + i + 1, (*n - i - 1) * sizeof(*array));
        (*n)--;
}

/* ---- errno to sentences ---- */

/* The generic sentence for an errno the per-operation mapping did not name. */
static int kernel_error(Error *err, int r, const char *ioctl_name) {
        switch (r) {
        case -ENOTTY:
                return error_set(err, r, "the kernel does not know %s", ioctl_name);
        case -E2BIG:
                return error_set(err, r, "the kernel rejected unknown non-zero fields in %s",
                                 ioctl_name);
        case -EOPNOTSUPP:
                return error_set(err, r, "%s: a flag or value is not supported by this kernel",
                                 ioctl_name);
        case -EOVERFLOW:
                return error_set(err, r, "%s: an address or length overflows", ioctl_name);
        case -ENOMEM:
                return error_set(err, r, "%s: out of memory", ioctl_name);
        case -EFAULT:
                return error_set(err, r, "%s: the kernel could not access the memory given",
                                 ioctl_name);
        default:
                return error_set(err, r, "%s failed: %s", ioctl_name, strerror(-r));
        }
}

/* ---- Backend ops ---- */

static void kernel_free(Backend *b) {
        BackendKernel *k = (BackendKernel *)b;

        safe_close(k->sysfs_fd);
        free(k->dev_root);
        free(k);
}

static const char *fd_kind(mode_t mode) {
        if (S_ISFIFO(mode))
                return "a pipe";
        if (S_ISSOCK(mode))
                return "a socket";
        if (S_ISREG(mode))
                return "a regular file";
        if (S_ISDIR(mode))
                return "a directory";
        if (S_ISBLK(mode))
                return "a block device";
        if (S_ISLNK(mode))
                return "a symbolic link";
        return "not a device";
}

static int kernel_device_fd_identify(Backend *b, int fd, char **ret_name, Error *err) {
        BackendKernel *k = (BackendKernel *)b;
        char link[32], target[PATH_MAX], *slash, *name;
        const char *leaf, *parent;
        struct stat st;
        ssize_t n;
        int flags;

        flags = fcntl(fd, F_GETFL);
        if (flags < 0)
                return error_set(err, -EBADF, "fd %d is not an open file descriptor", fd);
        if (flags & O_PATH)
                return error_set(err, -EBADF,
                                 "fd %d is an O_PATH descriptor, not an open VFIO device", fd);
        if (fstat(fd, &st) < 0)
                return error_set(err, negative_errno(), "cannot stat fd %d: %m", fd);
        if (!S_ISCHR(st.st_mode))
                return error_set(err, -EBADF, "fd %d is %s, not a VFIO device", fd,
                                 fd_kind(st.st_mode));

        snprintf(link, sizeof(link), "dev/char/%u:%u", major(st.st_rdev), minor(st.st_rdev));
        n = readlinkat(k->sysfs_fd, link, target, sizeof(target) - 1);
        if (n < 0)
                return error_set(err, -ENODEV,
                                 "fd %d is character device %u:%u, which sysfs does not know",
                                 fd, major(st.st_rdev), minor(st.st_rdev));
        target[n] = '\0';

        /* .../<device>/vfio-dev/vfioN: the device is two levels up. */
        slash = strrchr(target, '/');
        leaf = slash ? slash + 1 : target;
        if (slash)
                *slash = '\0';
        slash = strrchr(target, '/');
        parent = slash ? slash + 1 : NULL;
        if (!slash || !streq(parent, "vfio-dev") || !strneq(leaf, "vfio", 4))
                return error_set(err, -ENODEV,
                                 "fd %d is character device %u:%u (%s), not a VFIO device cdev",
                                 fd, major(st.st_rdev), minor(st.st_rdev), leaf);
        *slash = '\0';
        slash = strrchr(target, '/');
        name = strdup(slash ? slash + 1 : target);
        if (!name)
                return error_set(err, -ENOMEM, "out of memory");
        if (name[0] == '\0' || streq(name, "..") || streq(name, ".")) {
                free(name);
                return error_set(err, -ENODEV, "fd %d: sysfs link %s names no device", fd, link);
        }
        *ret_name = name;
        return 0;
}

static bool device_name_is_valid(const char *name) {
        return name && name[0] != '\0' && !strchr(name, '/') && !streq(name, ".") &&
                !streq(name, "..");
}

static int kernel_device_open(Backend *b, const char *name, int *ret_fd, Error *err) {
        BackendKernel *k = (BackendKernel *)b;
        _cleanup_free_ char *dir = NULL, *node = NULL, *cdev = NULL;
        _cleanup_close_ int dfd = -EBADF;
        DIR *d;
        int fd;

        if (!device_name_is_valid(name))
                return error_set(err, -EINVAL, "\"%s\" is not a device name", name ? name : "");
        if (asprintf(&dir, "bus/pci/devices/%s/vfio-dev", name) < 0)
                return error_set(err, -ENOMEM, "out of memory");
        dfd = openat(k->sysfs_fd, dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0)
                return error_set(err, -ENODEV, "device %s has no VFIO cdev (no %s in sysfs)",
                                 name, dir);
        d = fdopendir(dfd);
        if (!d)
                return error_set(err, negative_errno(), "cannot read %s: %m", dir);
        TAKE_FD(dfd);
        for (struct dirent *de; (de = readdir(d));)
                if (strneq(de->d_name, "vfio", 4) && de->d_name[4] != '\0') {
                        cdev = strdup(de->d_name);
                        break;
                }
        closedir(d);
        if (!cdev)
                return error_set(err, -ENODEV, "device %s has no vfioN entry under %s", name,
                                 dir);
        if (asprintf(&node, "%s/vfio/devices/%s", k->dev_root, cdev) < 0)
                return error_set(err, -ENOMEM, "out of memory");
        fd = k->sys->open(k->userdata, node, O_RDWR | O_CLOEXEC);
        if (fd < 0)
                return error_set(err, fd, "cannot open %s for device %s: %s", node, name,
                                 strerror(-fd));
        *ret_fd = fd;
        return 0;
}

static int kernel_context_new(Backend *b, BackendContext **ret, Error *err) {
        BackendKernel *k = (BackendKernel *)b;
        _cleanup_free_ char *path = NULL;
        KernelContext *c;
        int fd;

        if (asprintf(&path, "%s/iommu", k->dev_root) < 0)
                return error_set(err, -ENOMEM, "out of memory");
        c = calloc(1, sizeof(*c));
        if (!c)
                return error_set(err, -ENOMEM, "out of memory");
        fd = k->sys->open(k->userdata, path, O_RDWR | O_CLOEXEC);
        if (fd < 0) {
                free(c);
                return error_set(err, fd, "cannot open %s: %s", path, strerror(-fd));
        }
        c->base.backend = b;
        c->iommufd = fd;
        *ret = &c->base;
        return 0;
}

static void kernel_context_free(BackendContext *bc) {
        KernelContext *c = (KernelContext *)bc;
        BackendKernel *k;

        if (!c)
                return;
        k = kernel_of(bc);
        /* Devices first (closing a bound cdev unbinds it), then fault fds, then the context. */
        for (size_t i = 0; i < c->n_devices; i++)
                sys_close(k, c->devices[i].fd);
        for (size_t i = 0; i < c->n_faults; i++)
                sys_close(k, c->faults[i].fd);
        sys_close(k, c->iommufd);
        /* Only now that the kernel dropped every area may the fallback mappings go. */
        for (size_t i = 0; i < c->n_ioas; i++) {
                for (size_t j = 0; j < c->ioas[i].n; j++)
                        fallback_map_unref(k, c->ioas[i].areas[j].map);
                free(c->ioas[i].areas);
        }
        free(c->ioas);
        free(c->devices);
        free(c->faults);
        free(c);
}

static int kernel_context_fd(BackendContext *bc) {
        return ((KernelContext *)bc)->iommufd;
}

static int kernel_option(BackendContext *bc, uint32_t option_id, uint16_t op, uint32_t object_id,
                         uint64_t *val64, Error *err) {
        KernelContext *c = (KernelContext *)bc;
        struct iommud_option o = {
                .size = sizeof(o),
                .option_id = option_id,
                .op = op,
                .object_id = object_id,
                .val64 = op == IOMMUD_IOMMU_OPTION_OP_SET ? *val64 : 0,
        };
        int r;

        r = sys_ioctl(c, c->iommufd, IOMMUD_IOMMU_OPTION, &o);
        switch (r) {
        case 0:
                if (op == IOMMUD_IOMMU_OPTION_OP_GET)
                        *val64 = o.val64;
                return 0;
        case -EOPNOTSUPP:
                return error_set(err, r, "option %" PRIu32 " with op %u is not supported",
                                 option_id, op);
        case -ENOENT:
                return error_set(err, r, "object %" PRIu32 " does not exist", object_id);
        case -EPERM:
                return error_set(err, r, "setting option %" PRIu32 " needs CAP_SYS_RESOURCE",
                                 option_id);
        case -EBUSY:
                return error_set(err, r,
                                 "option %" PRIu32 " can only change while the context holds "
                                 "no mappings",
                                 option_id);
        case -EINVAL:
                return error_set(err, r, "value %" PRIu64 " or object %" PRIu32
                                 " is not valid for option %" PRIu32,
                                 o.val64, object_id, option_id);
        default:
                return kernel_error(err, r, "IOMMU_OPTION");
        }
}

static int kernel_ioas_alloc(BackendContext *bc, uint32_t *ret_id, Error *err) {
        KernelContext *c = (KernelContext *)bc;
        struct iommud_ioas_alloc a = { .size = sizeof(a) };
        int r;

        r = sys_ioctl(c, c->iommufd, IOMMUD_IOMMU_IOAS_ALLOC, &a);
        if (r < 0)
                return kernel_error(err, r, "IOMMU_IOAS_ALLOC");
        *ret_id = a.out_ioas_id;
        return 0;
}

static int kernel_destroy(BackendContext *bc, uint32_t id, Error *err) {
        KernelContext *c = (KernelContext *)bc;
        struct iommud_destroy d = { .size = sizeof(d), .id = id };
        KernelFd *f;
        int r;

        r = sys_ioctl(c, c->iommufd, IOMMUD_IOMMU_DESTROY, &d);
        switch (r) {
        case 0:
                break;
        case -ENOENT:
                return error_set(err, r, "object %" PRIu32 " does not exist", id);
        case -EBUSY:
                return error_set(err, r,
                                 "object %" PRIu32 " is in use: a device is attached to it or "
                                 "another object depends on it",
                                 id);
        default:
                return kernel_error(err, r, "IOMMU_DESTROY");
        }

        /* The kernel dropped the IOAS's areas, or the fault object: release our side. */
        ioas_areas_drop(c, id);
        f = kernel_fd_find(c->faults, c->n_faults, id);
        if (f) {
                sys_close(kernel_of(bc), f->fd);
                kernel_fd_remove(c->faults, &c->n_faults, f);
        }
        return 0;
}

static int map_error(Error *err, int r, const char *ioctl_name, uint32_t ioas_id, uint32_t flags,
                     uint64_t length, uint64_t iova) {
        bool fixed = flags & IOMMUD_IOMMU_IOAS_MAP_FIXED_IOVA;

        switch (r) {
        case -ENOENT:
                return error_set(err, r, "IOAS %" PRIu32 " does not exist", ioas_id);
        case -EEXIST:
                return error_set(err, r,
                                 "IOVA range 0x%" PRIx64 "+0x%" PRIx64
                                 " overlaps an existing mapping in IOAS %" PRIu32,
                                 iova, length, ioas_id);
        case -ENOSPC:
                return error_set(err, r,
                                 "no free IOVA range of 0x%" PRIx64 " bytes in IOAS %" PRIu32,
                                 length, ioas_id);
        case -EINVAL:
                if (!(flags & (IOMMUD_IOMMU_IOAS_MAP_READABLE | IOMMUD_IOMMU_IOAS_MAP_WRITEABLE)))
                        return error_set(err, r, "a mapping must be readable, writeable or both");
                if (length == 0)
                        return error_set(err, r, "cannot map 0 bytes");
                if (fixed)
                        return error_set(err, r,
                                         "IOVA 0x%" PRIx64 "+0x%" PRIx64
                                         " is misaligned or outside the usable ranges of IOAS "
                                         "%" PRIu32,
                                         iova, length, ioas_id);
                return error_set(err, r, "length 0x%" PRIx64 " is not valid for IOAS %" PRIu32,
                                 length, ioas_id);
        case -EFAULT:
                return error_set(err, r,
                                 "the memory cannot be pinned for DMA (not ordinary memory, "
                                 "e.g. a device BAR)");
        case -ENOMEM:
                return error_set(err, r,
                                 "pinning 0x%" PRIx64 " bytes failed: out of memory or over "
                                 "the locked-memory limit",
                                 length);
        case -EBADF:
                return error_set(err, r, "the memory fd is not open");
        default:
                return kernel_error(err, r, ioctl_name);
        }
}

/*
 * The largest alignment iommufd gives an automatic IOVA: iopt_alloc_iova() caps
 * min(roundup_pow_of_two(length), lowest set bit of the source) at HPAGE_SIZE (2 MiB on
 * x86-64 and 4K-page arm64) on kernels with transparent huge pages, at PAGE_SIZE without.
 */
#define FALLBACK_ALIGN_MAX (UINT64_C(2) << 20)

/* The smallest power of two >= v (v >= 1); 2^63 when v is larger. */
static uint64_t roundup_pow2(uint64_t v) {
        if (v > (UINT64_C(1) << 63))
                return UINT64_C(1) << 63;
        return v <= 1 ? 1 : UINT64_C(1) << (64 - __builtin_clzll(v - 1));
}

/*
 * Maps [offset, offset+length) of fd (offset page aligned) at an address congruent to offset
 * modulo align (a power of two, at least a page).  iommufd picks an automatic IOVA from the
 * low bits of the user VA it is given, while IOMMU_IOAS_MAP_FILE and the model use the file
 * offset: a VA with the offset's low bits makes both give the same alignment.  The address
 * space is reserved with slack first, the file mapped over it and the slack trimmed.
 */
static int fallback_mmap(BackendKernel *k, size_t length, int prot, int fd, uint64_t offset,
                         uint64_t align, void **ret_addr) {
        uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
        size_t mlen, resv_len;
        uintptr_t resv, at;
        void *p, *addr = NULL;
        int r;

        if (align <= page)
                return k->sys->mmap(k->userdata, NULL, length, prot, fd, offset, ret_addr);
        mlen = (length + page - 1) & ~(page - 1);
        if (mlen < length || ADD_OVERFLOW(mlen, (size_t)(align - page), &resv_len))
                return -EOVERFLOW;
        p = mmap(NULL, resv_len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (p == MAP_FAILED)
                return negative_errno();
        resv = (uintptr_t)p;
        at = resv + (uintptr_t)((offset - resv) & (align - 1));
        r = k->sys->mmap(k->userdata, (void *)at, length, prot, fd, offset, &addr);
        if (r < 0) {
                (void)munmap(p, resv_len);
                return r;
        }
        /* The slack on either side is still the PROT_NONE reservation: give it back. */
        if (at > resv)
                (void)munmap(p, at - resv);
        if (resv + resv_len > at + mlen)
                (void)munmap((void *)(at + mlen), resv + resv_len - (at + mlen));
        *ret_addr = addr;
        return 0;
}

/*
 * A fallback mapping without a record in the area table could never be released (the mmap
 * would outlive it or be freed under the device): undo it in the kernel.  Best effort, as the
 * caller is already failing with the reason that matters.
 */
static void ioas_unmap_unrecorded(KernelContext *c, uint32_t ioas_id, uint64_t iova,
                                  uint64_t length) {
        struct iommud_ioas_unmap u = {
                .size = sizeof(u),
                .ioas_id = ioas_id,
                .iova = iova,
                .length = length,
        };

        (void)sys_ioctl(c, c->iommufd, IOMMUD_IOMMU_IOAS_UNMAP, &u);
}

static int fallback_map_file(KernelContext *c, uint32_t ioas_id, uint32_t flags, int fd,
                             uint64_t start, uint64_t length, uint64_t *iova, Error *err) {
        BackendKernel *k = kernel_of(&c->base);
        uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE), aligned, delta, maplen, end, align;
        struct stat st;
        FallbackMap *m;
        void *addr = NULL;
        int prot = 0, r;

        if (length == 0)
                return error_set(err, -EINVAL, "cannot map 0 bytes");
        /*
         * IOMMU_IOAS_MAP_FILE refuses a range past the end of the file; an mmap would
         * not, and pinning would fail later and less clearly.  Say it up front.
         */
        if (fstat(fd, &st) < 0)
                return error_set(err, negative_errno(), "memory fd %d: %m", fd);
        if (S_ISREG(st.st_mode) &&
            (ADD_OVERFLOW(start, length, &end) || end > (uint64_t)st.st_size))
                return error_set(err, -EINVAL,
                                 "offset 0x%" PRIx64 " + length 0x%" PRIx64
                                 " extends past the end of memory fd %d (0x%" PRIx64 " bytes)",
                                 start, length, fd, (uint64_t)st.st_size);
        aligned = start & ~(page - 1);
        delta = start - aligned;
        if (ADD_OVERFLOW(length, delta, &maplen) || maplen > SIZE_MAX)
                return error_set(err, -EOVERFLOW,
                                 "offset 0x%" PRIx64 " + length 0x%" PRIx64 " overflows", start,
                                 length);
        if (flags & IOMMUD_IOMMU_IOAS_MAP_READABLE)
                prot |= PROT_READ;
        if (flags & IOMMUD_IOMMU_IOAS_MAP_WRITEABLE)
                prot |= PROT_WRITE;

        /*
         * The contents are never touched: the mapping only gives the kernel a VA to pin.  Its
         * low bits are the offset's up to the alignment an automatic IOVA can get, so the
         * kernel aligns the IOVA as IOMMU_IOAS_MAP_FILE would.
         */
        align = MIN(roundup_pow2(length), FALLBACK_ALIGN_MAX);
        r = fallback_mmap(k, (size_t)maplen, prot, fd, aligned, align, &addr);
        if (r < 0)
                return error_set(err, r,
                                 "cannot map memory fd %d at offset 0x%" PRIx64 " (0x%" PRIx64
                                 " bytes) for IOMMU_IOAS_MAP: %s",
                                 fd, start, length, strerror(-r));
        m = calloc(1, sizeof(*m));
        if (!m) {
                (void)k->sys->munmap(k->userdata, addr, (size_t)maplen);
                return error_set(err, -ENOMEM, "out of memory");
        }
        *m = (FallbackMap){ .addr = addr, .length = (size_t)maplen };
        k->n_fallback_maps++;

        struct iommud_ioas_map map = {
                .size = sizeof(map),
                .flags = flags,
                .ioas_id = ioas_id,
                .user_va = (uint64_t)(uintptr_t)addr + delta,
                .length = length,
                .iova = (flags & IOMMUD_IOMMU_IOAS_MAP_FIXED_IOVA) ? *iova : 0,
        };
        r = sys_ioctl(c, c->iommufd, IOMMUD_IOMMU_IOAS_MAP, &map);
        if (r < 0) {
                m->n_ref = 1;
                fallback_map_unref(k, m);
                return map_error(err, r, "IOMMU_IOAS_MAP", ioas_id, flags, length, map.iova);
        }
        r = ioas_areas_add(c, ioas_id, map.iova, length, m);
        if (r < 0) {
                ioas_unmap_unrecorded(c, ioas_id, map.iova, length);
                m->n_ref = 1;
                fallback_map_unref(k, m);
                return error_set(err, r, "out of memory");
        }
        *iova = map.iova;
        return 0;
}

static int kernel_ioas_map_file(BackendContext *bc, uint32_t ioas_id, uint32_t flags, int fd,
                                uint64_t start, uint64_t length, uint64_t *iova, Error *err) {
        KernelContext *c = (KernelContext *)bc;
        int r;

        if (!backend_has_feature(bc->backend, BACKEND_FEATURE_MAP_FILE))
                return fallback_map_file(c, ioas_id, flags, fd, start, length, iova, err);

        struct iommud_ioas_map_file m = {
                .size = sizeof(m),
                .flags = flags,
                .ioas_id = ioas_id,
                .fd = fd,
                .start = start,
                .length = length,
                .iova = (flags & IOMMUD_IOMMU_IOAS_MAP_FIXED_IOVA) ? *iova : 0,
        };
        r = sys_ioctl(c, c->iommufd, IOMMUD_IOMMU_IOAS_MAP_FILE, &m);
        if (r == -EBADF || r == -EINVAL) {
                if (fd < 0 || fcntl(fd, F_GETFD) < 0)
                        return error_set(err, -EBADF, "memory fd %d is not open", fd);
        }
        if (r < 0)
                return map_error(err, r, "IOMMU_IOAS_MAP_FILE", ioas_id, flags, length, m.iova);
        *iova = m.iova;
        return 0;
}

static int kernel_ioas_map_va(BackendContext *bc, uint32_t ioas_id, uint32_t flags,
                              uint64_t user_va, uint64_t length, uint64_t *iova, Error *err) {
        KernelContext *c = (KernelContext *)bc;
        struct iommud_ioas_map m = {
                .size = sizeof(m),
                .flags = flags,
                .ioas_id = ioas_id,
                .user_va = user_va,
                .length = length,
                .iova = (flags & IOMMUD_IOMMU_IOAS_MAP_FIXED_IOVA) ? *iova : 0,
        };
        int r;

        r = sys_ioctl(c, c->iommufd, IOMMUD_IOMMU_IOAS_MAP, &m);
        if (r < 0)
                return map_error(err, r, "IOMMU_IOAS_MAP", ioas_id, flags, length, m.iova);
        *iova = m.iova;
        return 0;
}

static int kernel_ioas_unmap(BackendContext *bc, uint32_t ioas_id, uint64_t iova, uint64_t length,
                             uint64_t *ret_unmapped, Error *err) {
        KernelContext *c = (KernelContext *)bc;
        struct iommud_ioas_unmap u = {
                .size = sizeof(u),
                .ioas_id = ioas_id,
                .iova = iova,
                .length = length,
        };
        uint64_t last;
        int r;

        r = sys_ioctl(c, c->iommufd, IOMMUD_IOMMU_IOAS_UNMAP, &u);
        switch (r) {
        case 0:
                break;
        case -ENOENT:
                /*
                 * Either no such IOAS, or the range cuts an area or maps nothing.  Areas
                 * wholly inside the range before the cut may already be gone; their
                 * fallback mappings are kept (the kernel might still reference them) and
                 * are released when a new mapping takes their place or the IOAS goes.
                 */
                return error_set(err, r,
                                 "IOVA range 0x%" PRIx64 "+0x%" PRIx64
                                 " does not cover whole mappings of IOAS %" PRIu32
                                 " (or the IOAS does not exist)",
                                 iova, length, ioas_id);
        case -EINVAL:
                return error_set(err, r,
                                 "IOVA range 0x%" PRIx64 "+0x%" PRIx64
                                 " is empty or misaligned for IOAS %" PRIu32,
                                 iova, length, ioas_id);
        case -EBUSY:
                return error_set(err, r,
                                 "IOVA range 0x%" PRIx64 "+0x%" PRIx64
                                 " is in use by a device access in IOAS %" PRIu32,
                                 iova, length, ioas_id);
        default:
                return kernel_error(err, r, "IOMMU_IOAS_UNMAP");
        }

        if (length == 0 || ADD_OVERFLOW(iova, length - 1, &last))
                last = UINT64_MAX;
        ioas_areas_release_inside(c, ioas_id, iova, last);
        if (ret_unmapped)
                *ret_unmapped = u.length;
        return 0;
}

static int kernel_ioas_copy(BackendContext *bc, uint32_t dst_ioas_id, uint32_t src_ioas_id,
                            uint32_t flags, uint64_t src_iova, uint64_t length,
                            uint64_t *dst_iova, Error *err) {
        KernelContext *c = (KernelContext *)bc;
        struct iommud_ioas_copy cp = {
                .size = sizeof(cp),
                .flags = flags,
                .dst_ioas_id = dst_ioas_id,
                .src_ioas_id = src_ioas_id,
                .length = length,
                .dst_iova = (flags & IOMMUD_IOMMU_IOAS_MAP_FIXED_IOVA) ? *dst_iova : 0,
                .src_iova = src_iova,
        };
        const FallbackArea *src;
        int r;

        r = sys_ioctl(c, c->iommufd, IOMMUD_IOMMU_IOAS_COPY, &cp);
        switch (r) {
        case 0:
                break;
        case -ENOENT:
                return error_set(err, r,
                                 "source range 0x%" PRIx64 "+0x%" PRIx64
                                 " is not inside one mapping of IOAS %" PRIu32
                                 ", or IOAS %" PRIu32 " or %" PRIu32 " does not exist",
                                 src_iova, length, src_ioas_id, src_ioas_id, dst_ioas_id);
        default:
                return map_error(err, r, "IOMMU_IOAS_COPY", dst_ioas_id, flags, length,
                                 cp.dst_iova);
        }

        /* A copy of a fallback area references the same pages: keep the mmap for it too. */
        src = ioas_areas_containing(c, src_ioas_id, src_iova, length);
        if (src) {
                FallbackMap *m = src->map;

                /* Hold it across the insertion, which may release stale entries. */
                m->n_ref++;
                r = ioas_areas_add(c, dst_ioas_id, cp.dst_iova, length, m);
                fallback_map_unref(kernel_of(bc), m);
                if (r < 0) {
                        ioas_unmap_unrecorded(c, dst_ioas_id, cp.dst_iova, length);
                        return error_set(err, r, "out of memory");
                }
        }
        *dst_iova = cp.dst_iova;
        return 0;
}

static int kernel_ioas_iova_ranges(BackendContext *bc, uint32_t ioas_id, IovaRange *ranges,
                                   size_t *n_ranges, uint64_t *ret_alignment, Error *err) {
        KernelContext *c = (KernelContext *)bc;
        struct iommud_ioas_iova_ranges q = {
                .size = sizeof(q),
                .ioas_id = ioas_id,
                .num_iovas = (uint32_t)MIN(*n_ranges, (size_t)UINT32_MAX),
                .allowed_iovas = (uint64_t)(uintptr_t)ranges,
        };
        int r;

        r = sys_ioctl(c, c->iommufd, IOMMUD_IOMMU_IOAS_IOVA_RANGES, &q);
        switch (r) {
        case 0:
                break;
        case -EMSGSIZE:
                *n_ranges = q.num_iovas;
                return error_set(err, r,
                                 "IOAS %" PRIu32 " has %" PRIu32 " IOVA ranges, room was given "
                                 "for fewer",
                                 ioas_id, q.num_iovas);
        case -ENOENT:
                return error_set(err, r, "IOAS %" PRIu32 " does not exist", ioas_id);
        default:
                return kernel_error(err, r, "IOMMU_IOAS_IOVA_RANGES");
        }
        *n_ranges = q.num_iovas;
        if (ret_alignment)
                *ret_alignment = q.out_iova_alignment;
        return 0;
}

static int kernel_ioas_allow_iovas(BackendContext *bc, uint32_t ioas_id, const IovaRange *ranges,
                                   size_t n, Error *err) {
        KernelContext *c = (KernelContext *)bc;
        struct iommud_ioas_allow_iovas a = {
                .size = sizeof(a),
                .ioas_id = ioas_id,
                .num_iovas = (uint32_t)n,
                .allowed_iovas = (uint64_t)(uintptr_t)ranges,
        };
        int r;

        if (n > UINT32_MAX)
                return error_set(err, -EINVAL, "%zu IOVA ranges are too many", n);
        r = sys_ioctl(c, c->iommufd, IOMMUD_IOMMU_IOAS_ALLOW_IOVAS, &a);
        switch (r) {
        case 0:
                return 0;
        case -ENOENT:
                return error_set(err, r, "IOAS %" PRIu32 " does not exist", ioas_id);
        case -EINVAL:
                return error_set(err, r,
                                 "the allowed IOVA ranges for IOAS %" PRIu32
                                 " are invalid: a range ends before it starts or two overlap",
                                 ioas_id);
        case -EADDRINUSE:
                return error_set(err, r,
                                 "an allowed IOVA range of IOAS %" PRIu32
                                 " intersects a reserved region",
                                 ioas_id);
        default:
                return kernel_error(err, r, "IOMMU_IOAS_ALLOW_IOVAS");
        }
}

static int kernel_device_bind(BackendContext *bc, int device_fd, uint32_t *ret_dev_id,
                              Error *err) {
        KernelContext *c = (KernelContext *)bc;
        BackendKernel *k = kernel_of(bc);
        struct iommud_vfio_device_bind_iommufd b = {
                .argsz = sizeof(b),
                .iommufd = c->iommufd,
        };
        int fd, r;

        /* Bound state belongs to the open file description; our dup keeps it alive. */
        fd = fcntl(device_fd, F_DUPFD_CLOEXEC, 3);
        if (fd < 0)
                return error_set(err, negative_errno(), "cannot duplicate device fd %d: %m",
                                 device_fd);
        r = sys_ioctl(c, fd, IOMMUD_VFIO_DEVICE_BIND_IOMMUFD, &b);
        if (r < 0) {
                sys_close(k, fd);
                switch (r) {
                case -EBUSY:
                        return error_set(err, r,
                                         "the device is in use through its legacy VFIO group");
                case -EINVAL:
                        return error_set(err, r,
                                         "the device fd is already bound to an iommufd, or "
                                         "the device needs a firmware 1:1 (direct) mapping");
                case -EBADFD:
                        return error_set(err, r, "the context fd is not an iommufd");
                case -ENODEV:
                        return error_set(err, r, "the device has no IOMMU group");
                case -EPERM:
                        return error_set(err, r,
                                         "the device's group is owned elsewhere (another "
                                         "iommufd, a VFIO container or a host driver on a "
                                         "sibling) or its MSIs are not isolated");
                case -ENOTTY:
                        return error_set(err, r,
                                         "the fd does not answer VFIO_DEVICE_BIND_IOMMUFD: not "
                                         "a VFIO device cdev");
                default:
                        return kernel_error(err, r, "VFIO_DEVICE_BIND_IOMMUFD");
                }
        }
        r = kernel_fd_add(&c->devices, &c->n_devices, b.out_devid, fd);
        if (r < 0) {
                sys_close(k, fd);
                return error_set(err, r, "out of memory");
        }
        *ret_dev_id = b.out_devid;
        return 0;
}

static int kernel_device_unbind(BackendContext *bc, uint32_t dev_id, Error *err) {
        KernelContext *c = (KernelContext *)bc;
        KernelFd *d = kernel_fd_find(c->devices, c->n_devices, dev_id);

        if (!d)
                return error_set(err, -ENOENT, "device %" PRIu32 " is not bound to this context",
                                 dev_id);
        /* Closing our copy of the cdev detaches and unbinds it. */
        sys_close(kernel_of(bc), d->fd);
        kernel_fd_remove(c->devices, &c->n_devices, d);
        return 0;
}

static int kernel_device_attach(BackendContext *bc, uint32_t dev_id, uint32_t pasid,
                                uint32_t *pt_id, Error *err) {
        KernelContext *c = (KernelContext *)bc;
        KernelFd *d = kernel_fd_find(c->devices, c->n_devices, dev_id);
        struct iommud_vfio_device_attach_iommufd_pt a = {
                .argsz = sizeof(a),
                .flags = pasid != BACKEND_NO_PASID ? IOMMUD_VFIO_DEVICE_ATTACH_PASID : 0,
                .pt_id = *pt_id,
                .pasid = pasid != BACKEND_NO_PASID ? pasid : 0,
        };
        int r;

        if (!d)
                return error_set(err, -ENOENT, "device %" PRIu32 " is not bound to this context",
                                 dev_id);
        r = sys_ioctl(c, d->fd, IOMMUD_VFIO_DEVICE_ATTACH_IOMMUFD_PT, &a);
        switch (r) {
        case 0:
                *pt_id = a.pt_id;
                return 0;
        case -EADDRINUSE:
                return error_set(err, r,
                                 "a reserved region of the device collides with an existing "
                                 "mapping in %" PRIu32,
                                 *pt_id);
        case -ENOENT:
                return error_set(err, r, "IOAS or HWPT %" PRIu32 " does not exist", *pt_id);
        case -EBUSY:
                return error_set(err, r, "device %" PRIu32 " is being reset", dev_id);
        case -EOPNOTSUPP:
                if (pasid != BACKEND_NO_PASID)
                        return error_set(err, r,
                                         "device %" PRIu32 " cannot attach at PASID %" PRIu32,
                                         dev_id, pasid);
                return error_set(err, r, "device %" PRIu32 " cannot use %" PRIu32, dev_id,
                                 *pt_id);
        case -EINVAL:
                if (pasid != BACKEND_NO_PASID)
                        return error_set(err, r,
                                         "PASID %" PRIu32 " or page table %" PRIu32
                                         " is not valid for device %" PRIu32,
                                         pasid, *pt_id, dev_id);
                return error_set(err, r,
                                 "page table %" PRIu32 " is not compatible with device %" PRIu32,
                                 *pt_id, dev_id);
        default:
                return kernel_error(err, r, "VFIO_DEVICE_ATTACH_IOMMUFD_PT");
        }
}

static int kernel_device_detach(BackendContext *bc, uint32_t dev_id, uint32_t pasid,
                                Error *err) {
        KernelContext *c = (KernelContext *)bc;
        KernelFd *d = kernel_fd_find(c->devices, c->n_devices, dev_id);
        struct iommud_vfio_device_detach_iommufd_pt a = {
                .argsz = sizeof(a),
                .flags = pasid != BACKEND_NO_PASID ? IOMMUD_VFIO_DEVICE_DETACH_PASID : 0,
                .pasid = pasid != BACKEND_NO_PASID ? pasid : 0,
        };
        int r;

        if (!d)
                return error_set(err, -ENOENT, "device %" PRIu32 " is not bound to this context",
                                 dev_id);
        r = sys_ioctl(c, d->fd, IOMMUD_VFIO_DEVICE_DETACH_IOMMUFD_PT, &a);
        switch (r) {
        case 0:
                return 0;
        case -EINVAL:
                if (pasid != BACKEND_NO_PASID)
                        return error_set(err, r,
                                         "PASID %" PRIu32 " of device %" PRIu32
                                         " is not valid or not attached",
                                         pasid, dev_id);
                return error_set(err, r, "device %" PRIu32 " is not attached", dev_id);
        case -EOPNOTSUPP:
                return error_set(err, r, "device %" PRIu32 " does not support PASID %" PRIu32,
                                 dev_id, pasid);
        default:
                return kernel_error(err, r, "VFIO_DEVICE_DETACH_IOMMUFD_PT");
        }
}

static int kernel_hw_info(BackendContext *bc, uint32_t dev_id, HwInfo *ret, Error *err) {
        KernelContext *c = (KernelContext *)bc;
        struct iommud_hw_info h = { .size = sizeof(h), .dev_id = dev_id };
        int r;

        r = sys_ioctl(c, c->iommufd, IOMMUD_IOMMU_GET_HW_INFO, &h);
        switch (r) {
        case 0:
                *ret = (HwInfo){
                        .type = h.out_data_type,
                        .max_pasid_log2 = h.out_max_pasid_log2,
                        .capabilities = h.out_capabilities,
                };
                return 0;
        case -ENOENT:
                return error_set(err, r, "device %" PRIu32 " is not bound to this context",
                                 dev_id);
        default:
                return kernel_error(err, r, "IOMMU_GET_HW_INFO");
        }
}

static int kernel_hwpt_alloc(BackendContext *bc, const HwptAllocArgs *args, uint32_t *ret_id,
                             Error *err) {
        KernelContext *c = (KernelContext *)bc;
        struct iommud_hwpt_alloc h = {
                .size = sizeof(h),
                .flags = args->flags,
                .dev_id = args->dev_id,
                .pt_id = args->pt_id,
                .data_type = args->data_type,
                .data_len = args->data_len,
                .data_uptr = (uint64_t)(uintptr_t)args->data,
                .fault_id = (args->flags & IOMMUD_IOMMU_HWPT_FAULT_ID_VALID) ? args->fault_id : 0,
        };
        int r;

        r = sys_ioctl(c, c->iommufd, IOMMUD_IOMMU_HWPT_ALLOC, &h);
        switch (r) {
        case 0:
                *ret_id = h.out_hwpt_id;
                return 0;
        case -ENOENT:
                return error_set(err, r,
                                 "device %" PRIu32 ", page table %" PRIu32
                                 " or fault queue %" PRIu32 " does not exist",
                                 args->dev_id, args->pt_id, args->fault_id);
        case -EOPNOTSUPP:
                return error_set(err, r,
                                 "HWPT flags 0x%" PRIx32 " or data type %" PRIu32
                                 " are not supported for device %" PRIu32,
                                 args->flags, args->data_type, args->dev_id);
        case -EINVAL:
                return error_set(err, r,
                                 "page table %" PRIu32 " cannot be the parent of this HWPT "
                                 "(nested over nested, parent without NEST_PARENT, or bad data)",
                                 args->pt_id);
        default:
                return kernel_error(err, r, "IOMMU_HWPT_ALLOC");
        }
}

static int kernel_fault_queue_alloc(BackendContext *bc, uint32_t *ret_id, int *ret_fd,
                                    Error *err) {
        KernelContext *c = (KernelContext *)bc;
        struct iommud_fault_alloc f = { .size = sizeof(f) };
        int r;

        r = sys_ioctl(c, c->iommufd, IOMMUD_IOMMU_FAULT_QUEUE_ALLOC, &f);
        if (r < 0)
                return kernel_error(err, r, "IOMMU_FAULT_QUEUE_ALLOC");
        r = kernel_fd_add(&c->faults, &c->n_faults, f.out_fault_id, (int)f.out_fault_fd);
        if (r < 0) {
                struct iommud_destroy d = { .size = sizeof(d), .id = f.out_fault_id };
                sys_close(kernel_of(bc), (int)f.out_fault_fd);
                (void)sys_ioctl(c, c->iommufd, IOMMUD_IOMMU_DESTROY, &d);
                return error_set(err, r, "out of memory");
        }
        *ret_id = f.out_fault_id;
        *ret_fd = (int)f.out_fault_fd;
        return 0;
}

static int kernel_fault_read(BackendContext *bc, uint32_t fault_id, FaultRecord *buf,
                             size_t n_max, size_t *ret_n, Error *err) {
        KernelContext *c = (KernelContext *)bc;
        BackendKernel *k = kernel_of(bc);
        KernelFd *f = kernel_fd_find(c->faults, c->n_faults, fault_id);
        ssize_t n;

        if (!f)
                return error_set(err, -ENOENT, "fault queue %" PRIu32 " does not exist",
                                 fault_id);
        if (n_max == 0) {
                *ret_n = 0;
                return 0;
        }
        n = k->sys->read(k->userdata, f->fd, buf, n_max * sizeof(FaultRecord));
        if (n == -EAGAIN)
                n = 0;
        if (n < 0)
                return error_set(err, (int)n, "reading fault queue %" PRIu32 ": %s", fault_id,
                                 strerror((int)-n));
        if (n % sizeof(FaultRecord) != 0)
                return error_set(err, -EIO,
                                 "fault queue %" PRIu32 " returned %zd bytes, not whole "
                                 "%zu-byte records",
                                 fault_id, n, sizeof(FaultRecord));
        *ret_n = (size_t)n / sizeof(FaultRecord);
        return 0;
}

static int kernel_fault_respond(BackendContext *bc, uint32_t fault_id, uint32_t cookie,
                                uint32_t code, Error *err) {
        KernelContext *c = (KernelContext *)bc;
        BackendKernel *k = kernel_of(bc);
        KernelFd *f = kernel_fd_find(c->faults, c->n_faults, fault_id);
        struct iommud_hwpt_page_response resp = { .cookie = cookie, .code = code };
        ssize_t n;

        if (!f)
                return error_set(err, -ENOENT, "fault queue %" PRIu32 " does not exist",
                                 fault_id);
        n = k->sys->write(k->userdata, f->fd, &resp, sizeof(resp));
        if (n == -EINVAL)
                return error_set(err, (int)n,
                                 "cookie %" PRIu32 " is not pending on fault queue %" PRIu32
                                 " or code %" PRIu32 " is not valid",
                                 cookie, fault_id, code);
        if (n < 0)
                return error_set(err, (int)n, "answering fault queue %" PRIu32 ": %s", fault_id,
                                 strerror((int)-n));
        if ((size_t)n != sizeof(resp))
                return error_set(err, -EIO, "fault queue %" PRIu32 " took %zd of %zu bytes",
                                 fault_id, n, sizeof(resp));
        return 0;
}

static const BackendOps kernel_ops = {
        .name = "kernel",
        .free = kernel_free,
        .device_fd_identify = kernel_device_fd_identify,
        .device_open = kernel_device_open,
        .context_new = kernel_context_new,
        .context_free = kernel_context_free,
        .context_fd = kernel_context_fd,
        .option = kernel_option,
        .ioas_alloc = kernel_ioas_alloc,
        .destroy = kernel_destroy,
        .ioas_map_file = kernel_ioas_map_file,
        .ioas_map_va = kernel_ioas_map_va,
        .ioas_unmap = kernel_ioas_unmap,
        .ioas_copy = kernel_ioas_copy,
        .ioas_iova_ranges = kernel_ioas_iova_ranges,
        .ioas_allow_iovas = kernel_ioas_allow_iovas,
        .device_bind = kernel_device_bind,
        .device_unbind = kernel_device_unbind,
        .device_attach = kernel_device_attach,
        .device_detach = kernel_device_detach,
        .hw_info = kernel_hw_info,
        .hwpt_alloc = kernel_hwpt_alloc,
        .fault_queue_alloc = kernel_fault_queue_alloc,
        .fault_read = kernel_fault_read,
        .fault_respond = kernel_fault_respond,
};

/*
 * Feature probing.  Every iommufd ioctl is issued once with an argument whose
 * size field says 4 bytes, shorter than any ioctl's mandatory fields: a kernel
 * that knows the ioctl rejects it with EINVAL before doing anything, one that
 * does not answers ENOTTY.  Nothing is created.  Features the size probe
 * cannot see are inferred from an ioctl of the same kernel release, or from
 * sysfs (VFIO cdev support registers the "vfio-dev" class).
 */
static const struct {
        uint32_t cmd;
        const char *name;
        uint64_t features; /* what an answer other than ENOTTY turns on */
} probe_table[] = {
        { IOMMUD_IOMMUFD_CMD_IOAS_ALLOC, "IOMMU_IOAS_ALLOC", BACKEND_FEATURE_IOAS },
        { IOMMUD_IOMMUFD_CMD_OPTION, "IOMMU_OPTION", BACKEND_FEATURE_OPTION },
        { IOMMUD_IOMMUFD_CMD_HWPT_ALLOC, "IOMMU_HWPT_ALLOC", BACKEND_FEATURE_HWPT_ALLOC },
        { IOMMUD_IOMMUFD_CMD_GET_HW_INFO, "IOMMU_GET_HW_INFO", BACKEND_FEATURE_HW_INFO },
        { IOMMUD_IOMMUFD_CMD_HWPT_SET_DIRTY_TRACKING, "IOMMU_HWPT_SET_DIRTY_TRACKING",
          BACKEND_FEATURE_DIRTY_TRACKING },
        /* Nested HWPTs came with user cache invalidation (6.8). */
        { IOMMUD_IOMMUFD_CMD_HWPT_INVALIDATE, "IOMMU_HWPT_INVALIDATE",
          BACKEND_FEATURE_HWPT_INVALIDATE | BACKEND_FEATURE_NESTING },
        { IOMMUD_IOMMUFD_CMD_FAULT_QUEUE_ALLOC, "IOMMU_FAULT_QUEUE_ALLOC",
          BACKEND_FEATURE_FAULT_QUEUE },
        { IOMMUD_IOMMUFD_CMD_IOAS_MAP_FILE, "IOMMU_IOAS_MAP_FILE", BACKEND_FEATURE_MAP_FILE },
        { IOMMUD_IOMMUFD_CMD_VIOMMU_ALLOC, "IOMMU_VIOMMU_ALLOC", BACKEND_FEATURE_VIOMMU },
        /* PASID attach (HWPT_ALLOC_PASID, VFIO ATTACH_PASID) came in the same release (6.14). */
        { IOMMUD_IOMMUFD_CMD_IOAS_CHANGE_PROCESS, "IOMMU_IOAS_CHANGE_PROCESS",
          BACKEND_FEATURE_CHANGE_PROCESS | BACKEND_FEATURE_PASID },
};

static int kernel_probe(BackendKernel *k, Error *err) {
        _cleanup_free_ char *path = NULL;
        uint64_t features = 0;
        int fd;

        if (asprintf(&path, "%s/iommu", k->dev_root) < 0)
                return error_set(err, -ENOMEM, "out of memory");
        fd = k->sys->open(k->userdata, path, O_RDWR | O_CLOEXEC);
        if (fd == -ENOENT)
                return error_set(err, fd,
                                 "%s does not exist: this kernel has no iommufd "
                                 "(CONFIG_IOMMUFD) or the iommufd module is not loaded",
                                 path);
        if (fd == -EACCES || fd == -EPERM)
                return error_set(err, fd, "permission denied opening %s", path);
        if (fd < 0)
                return error_set(err, fd, "cannot open %s: %s", path, strerror(-fd));

        for (size_t i = 0; i < ELEMENTSOF(probe_table); i++) {
                /* Room for any argument, but the size field claims only itself. */
                uint64_t arg[8] = {};
                int r;

                *(uint32_t *)arg = sizeof(uint32_t);
                r = k->sys->ioctl(k->userdata, fd, IOMMUD_IOMMUFD_IO(probe_table[i].cmd), arg);
                log_debug("probe %s: %s", probe_table[i].name, r < 0 ? strerror(-r) : "ok");
                if (r != -ENOTTY)
                        features |= probe_table[i].features;
        }
        sys_close(k, fd);

        if (!(features & BACKEND_FEATURE_IOAS))
                return error_set(err, -EOPNOTSUPP,
                                 "%s does not answer IOMMU_IOAS_ALLOC: not an iommufd device",
                                 path);
        if (faccessat(k->sysfs_fd, "class/vfio-dev", F_OK, 0) == 0)
                features |= BACKEND_FEATURE_VFIO_CDEV;
        k->base.features = features;
        return 0;
}

int backend_kernel_new(Backend **ret, const BackendKernelConfig *cfg, Error *err) {
        BackendKernel *k;
        int r;

        k = calloc(1, sizeof(*k));
        if (!k)
                return error_set(err, -ENOMEM, "out of memory");
        k->base.ops = &kernel_ops;
        k->sys = cfg->syscalls ?: &backend_kernel_syscalls_real;
        k->userdata = cfg->userdata;
        k->sysfs_fd = -EBADF;

        if (cfg->sysfs_fd >= 0) {
                k->sysfs_fd = fcntl(cfg->sysfs_fd, F_DUPFD_CLOEXEC, 3);
                if (k->sysfs_fd < 0) {
                        r = error_set(err, negative_errno(), "cannot duplicate sysfs fd %d: %m",
                                      cfg->sysfs_fd);
                        goto fail;
                }
        } else {
                const char *root = cfg->sysfs_root ?: "/sys";
                k->sysfs_fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                if (k->sysfs_fd < 0) {
                        r = error_set(err, negative_errno(), "cannot open sysfs root %s: %m",
                                      root);
                        goto fail;
                }
        }
        k->dev_root = strdup(cfg->dev_root ?: "/dev");
        if (!k->dev_root) {
                r = error_set(err, -ENOMEM, "out of memory");
                goto fail;
        }
        r = kernel_probe(k, err);
        if (r < 0)
                goto fail;

        *ret = &k->base;
        return 0;
fail:
        kernel_free(&k->base);
        return r;
}

size_t backend_kernel_fallback_mappings(Backend *b) {
        return ((BackendKernel *)b)->n_fallback_maps;
}

/* ---- restart survival ---- */

int backend_kernel_context_adopt(Backend *b, int iommufd, const uint32_t *dev_ids, int *dev_fds,
                                 size_t n, BackendContext **ret, Error *err) {
        BackendKernel *k = (BackendKernel *)b;
        KernelContext *c;

        c = calloc(1, sizeof(*c));
        if (c && n > 0)
                c->devices = calloc(n, sizeof(KernelFd));
        if (!c || (n > 0 && !c->devices)) {
                if (c)
                        free(c->devices);
                free(c);
                sys_close(k, iommufd);
                for (size_t i = 0; i < n; i++)
                        sys_close(k, dev_fds[i]);
                return error_set(err, -ENOMEM, "out of memory");
        }
        c->base.backend = b;
        c->iommufd = iommufd;
        /* The bindings live in the open file descriptions, which the fd store kept. */
        for (size_t i = 0; i < n; i++)
                c->devices[i] = (KernelFd){ .id = dev_ids[i], .fd = dev_fds[i] };
        c->n_devices = n;
        *ret = &c->base;
        return 0;
}

int backend_kernel_context_device_fd(BackendContext *bc, uint32_t dev_id) {
        KernelContext *c = (KernelContext *)bc;

        for (size_t i = 0; i < c->n_devices; i++)
                if (c->devices[i].id == dev_id)
                        return c->devices[i].fd;
        return -ENOENT;
}

int backend_kernel_context_adopt_fault(BackendContext *bc, uint32_t fault_id, int fd) {
        KernelContext *c = (KernelContext *)bc;
        int r;

        r = kernel_fd_add(&c->faults, &c->n_faults, fault_id, fd);
        if (r < 0)
                sys_close(kernel_of(bc), fd);
        return r;
}

int backend_kernel_context_fault_fd(BackendContext *bc, uint32_t fault_id) {
        KernelContext *c = (KernelContext *)bc;
        KernelFd *f = kernel_fd_find(c->faults, c->n_faults, fault_id);

        return f ? f->fd : -ENOENT;
}
