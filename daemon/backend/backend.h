/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The IOMMU backend: one ops table, three implementations.
 *
 *   backend-kernel  real ioctls on /dev/iommu and vfio cdevs (production)
 *   backend-vfio    the legacy VFIO type1 API, for kernels without iommufd
 *   backend-sim     a faithful model of iommufd semantics (tests, demos, benchmarks)
 *
 * A Backend is the daemon-wide instance; a BackendContext is one iommufd: the
 * broker opens one per client session.  Object ids (IOAS, HWPT, device, fault
 * queue) are the kernel's ids and are scoped to their context.
 *
 * A device is bound through its open file (the open file description, shared by
 * every dup of the fd): the backend binds its own copy of the client's fd, so
 * the binding, and through it the context, lives as long as the client keeps
 * its copy.  Closing the backend's copy ends nothing by itself; device_unbind
 * detaches through the kernel first, and device_holders names who keeps it.
 *
 * Every operation returns a negative errno exactly as the kernel would for the
 * same request (ENOENT, EEXIST, EINVAL, EADDRINUSE, ENOSPC, EBUSY, ...), and
 * fills err with a sentence naming the value that was wrong.  The backend knows
 * nothing of clients or policy; it never logs above debug.
 */

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "error.h"

struct stat;

/* Same values as the kernel's IOMMU_IOAS_MAP_* flags, on purpose. */
enum {
        BACKEND_MAP_FIXED_IOVA = 1 << 0,
        BACKEND_MAP_WRITEABLE = 1 << 1,
        BACKEND_MAP_READABLE = 1 << 2,
};

/* Same values as the kernel's IOMMU_HWPT_ALLOC_* flags. */
enum {
        BACKEND_HWPT_NEST_PARENT = 1 << 0,
        BACKEND_HWPT_DIRTY_TRACKING = 1 << 1,
        BACKEND_HWPT_FAULT_ID_VALID = 1 << 2,
        BACKEND_HWPT_PASID = 1 << 3,
};

/* Same values as the kernel's IOMMU_HWPT_DATA_*. */
enum {
        BACKEND_HWPT_DATA_NONE = 0,
        BACKEND_HWPT_DATA_VTD_S1 = 1,
        BACKEND_HWPT_DATA_ARM_SMMUV3 = 2,
};

/* The largest vendor stage-1 table of any BACKEND_HWPT_DATA_* type (struct iommu_hwpt_vtd_s1). */
#define BACKEND_STAGE1_DATA_MAX 24

/* Same values as the kernel's IOMMU_HW_INFO_TYPE_*. */
enum {
        BACKEND_HW_INFO_TYPE_NONE = 0,
        BACKEND_HW_INFO_TYPE_INTEL_VTD = 1,
        BACKEND_HW_INFO_TYPE_ARM_SMMUV3 = 2,
};

/* Same values as the kernel's IOMMU_HW_CAP_*. */
enum {
        BACKEND_HW_CAP_DIRTY_TRACKING = 1 << 0,
        BACKEND_HW_CAP_PCI_PASID_EXEC = 1 << 1,
        BACKEND_HW_CAP_PCI_PASID_PRIV = 1 << 2,
};

/* Same values as the kernel's IOMMU_HWPT_GET_DIRTY_BITMAP_* flags. */
enum {
        BACKEND_DIRTY_NO_CLEAR = 1 << 0,
};

/* IOMMU_OPTION ids and ops. */
enum {
        BACKEND_OPTION_RLIMIT_MODE = 0,
        BACKEND_OPTION_HUGE_PAGES = 1,
        BACKEND_OPTION_OP_SET = 0,
        BACKEND_OPTION_OP_GET = 1,
};

/* No PASID: attach/detach the device's RID (the whole device). */
#define BACKEND_NO_PASID UINT32_MAX

/* What the running kernel (or the simulated one) can do; probed once at start. */
typedef enum BackendFeature {
        BACKEND_FEATURE_IOAS = 1 << 0,            /* IOAS alloc/map/unmap/copy/ranges (6.2) */
        BACKEND_FEATURE_OPTION = 1 << 1,          /* IOMMU_OPTION */
        BACKEND_FEATURE_VFIO_CDEV = 1 << 2,       /* VFIO_DEVICE_BIND_IOMMUFD on cdevs */
        BACKEND_FEATURE_HWPT_ALLOC = 1 << 3,      /* IOMMU_HWPT_ALLOC */
        BACKEND_FEATURE_HW_INFO = 1 << 4,         /* IOMMU_GET_HW_INFO */
        BACKEND_FEATURE_DIRTY_TRACKING = 1 << 5,  /* HWPT_SET_DIRTY_TRACKING / GET_DIRTY_BITMAP */
        BACKEND_FEATURE_HWPT_INVALIDATE = 1 << 6, /* nested cache invalidation */
        BACKEND_FEATURE_FAULT_QUEUE = 1 << 7,     /* IOMMU_FAULT_QUEUE_ALLOC */
        BACKEND_FEATURE_MAP_FILE = 1 << 8,        /* IOMMU_IOAS_MAP_FILE */
        BACKEND_FEATURE_PASID = 1 << 9,           /* attach at a PASID */
        BACKEND_FEATURE_VIOMMU = 1 << 10,         /* VIOMMU_ALLOC / VDEVICE_ALLOC */
        BACKEND_FEATURE_CHANGE_PROCESS = 1 << 11, /* IOMMU_IOAS_CHANGE_PROCESS */
        BACKEND_FEATURE_NESTING = 1 << 12,        /* nested HWPTs (stage-1 over NEST_PARENT) */
        /*
         * Dirty tracking that reports every page pinned for DMA dirty, written or not (VFIO
         * type1 without a device that pins pages itself): safe for migration, but every read
         * asks the VMM to copy all of the mapped memory again.
         */
        BACKEND_FEATURE_DIRTY_ALL_PINNED = 1 << 13,
        _BACKEND_FEATURE_MAX = 1 << 14,
} BackendFeature;

typedef struct IovaRange {
        uint64_t start;
        uint64_t last; /* inclusive */
} IovaRange;

typedef struct HwInfo {
        uint32_t type;           /* BACKEND_HW_INFO_TYPE_* */
        uint8_t max_pasid_log2;  /* 0: no PASID support */
        uint64_t capabilities;   /* BACKEND_HW_CAP_* */
} HwInfo;

typedef struct HwptAllocArgs {
        uint32_t flags;          /* BACKEND_HWPT_* */
        uint32_t dev_id;
        uint32_t pt_id;          /* IOAS, or a NEST_PARENT HWPT for a nested one */
        uint32_t data_type;      /* BACKEND_HWPT_DATA_* */
        const void *data;        /* vendor stage-1 data for nested HWPTs */
        uint32_t data_len;
        uint32_t fault_id;       /* with BACKEND_HWPT_FAULT_ID_VALID */
} HwptAllocArgs;

/*
 * IOMMU_HWPT_GET_DIRTY_BITMAP: bit i of data (64-bit words, bit i % 64 of word i / 64) stands
 * for the page_size bytes at iova + i * page_size.  Bits are only ever set: the caller zeroes
 * the bitmap, and reading several page tables into one ORs them.
 */
typedef struct DirtyBitmapArgs {
        uint32_t hwpt_id;
        uint32_t flags;          /* BACKEND_DIRTY_* */
        uint64_t iova;
        uint64_t length;
        uint64_t page_size;
        uint64_t *data;          /* DIV_ROUND_UP(length / page_size, 64) words */
} DirtyBitmapArgs;

/* Byte for byte the kernel's struct iommu_hwpt_pgfault (40 bytes). */
typedef struct FaultRecord {
        uint32_t flags;          /* PASID_VALID=1, LAST_PAGE=2 */
        uint32_t dev_id;
        uint32_t pasid;
        uint32_t grpid;
        uint32_t perm;           /* R=1, W=2, EXEC=4, PRIV=8 */
        uint32_t __reserved;
        uint64_t addr;
        uint32_t length;
        uint32_t cookie;
} FaultRecord;

enum {
        FAULT_FLAG_PASID_VALID = 1 << 0,
        FAULT_FLAG_LAST_PAGE = 1 << 1,
        FAULT_PERM_READ = 1 << 0,
        FAULT_PERM_WRITE = 1 << 1,
        FAULT_PERM_EXEC = 1 << 2,
        FAULT_PERM_PRIV = 1 << 3,
        FAULT_RESPONSE_SUCCESS = 0,
        FAULT_RESPONSE_INVALID = 1,
};

typedef struct Backend Backend;
typedef struct BackendContext BackendContext;
typedef struct BackendOps BackendOps;

struct BackendOps {
        const char *name; /* "kernel", "vfio", "sim" */
        /*
         * A device's node may be a regular file (the simulator's are): the name of the device
         * whose node is the regular file st (from fstat() of a memory fd) describes, NULL when
         * it is none, as device_fd_identify() would say of that fd.  NULL where nodes are
         * character devices (the kernel's), which no memory fd is.
         */
        const char *(*device_node_of_file)(Backend *b, const struct stat *st);

        void (*free)(Backend *b);

        /*
         * Identifies a device fd a client passed: returns the device's name as
         * the topology knows it (a BDF).  Anything that is not a VFIO device
         * cdev of this host (pipe, socket, regular file, /dev/null, directory,
         * O_PATH fd) gives -EBADF or -ENODEV with err saying what the fd is.
         */
        int (*device_fd_identify)(Backend *b, int fd, char **ret_name, Error *err);
        /* Opens the device's cdev on a client's behalf (O_RDWR|O_CLOEXEC). */
        int (*device_open)(Backend *b, const char *name, int *ret_fd, Error *err);
        /*
         * The processes other than iommud that hold an open file of the device's node (its
         * VFIO cdev), as node_holders() says: pids[0..n_max) and their number in *ret_n; *ret_n
         * in is 0 to look at every process, or the number of candidates in pids[] to look at
         * those only.  A device whose bound file lives on in one of them stays bound (to the
         * context that bound it) until the last of them closes it; a new bind gets -EINVAL.
         */
        int (*device_holders)(Backend *b, const char *name, pid_t *pids, size_t n_max,
                              size_t *ret_n, Error *err);

        int (*context_new)(Backend *b, BackendContext **ret, Error *err);
        /*
         * Closes the context: the backend's copies of the bound device files, the fault fds and
         * the context itself.  Closing detaches and destroys nothing by itself: as with the
         * kernel, the context and its objects (and the memory they pin) live on while a file
         * bound to it does, in a client or in the service manager's fd store.  Whoever wants
         * them gone unbinds the devices and destroys the objects first.
         */
        void (*context_free)(BackendContext *c);
        /* The context's iommufd, to hand over or to keep in the fd store; -EOPNOTSUPP where
         * there is none (the legacy VFIO API). */
        int (*context_fd)(BackendContext *c);

        int (*option)(BackendContext *c, uint32_t option_id, uint16_t op, uint32_t object_id,
                      uint64_t *val64, Error *err);

        int (*ioas_alloc)(BackendContext *c, uint32_t *ret_id, Error *err);
        /* IOMMU_DESTROY: any object (IOAS, HWPT, fault queue). */
        int (*destroy)(BackendContext *c, uint32_t id, Error *err);
        /* Maps [start, start+length) of a memory fd.  *iova: in with FIXED_IOVA, else out. */
        int (*ioas_map_file)(BackendContext *c, uint32_t ioas_id, uint32_t flags, int fd,
                             uint64_t start, uint64_t length, uint64_t *iova, Error *err);
        /* Maps the daemon's own virtual addresses (fallback path; IOMMU_IOAS_MAP). */
        int (*ioas_map_va)(BackendContext *c, uint32_t ioas_id, uint32_t flags, uint64_t user_va,
                           uint64_t length, uint64_t *iova, Error *err);
        int (*ioas_unmap)(BackendContext *c, uint32_t ioas_id, uint64_t iova, uint64_t length,
                          uint64_t *ret_unmapped, Error *err);
        /* *dst_iova: in with FIXED_IOVA, else out. */
        int (*ioas_copy)(BackendContext *c, uint32_t dst_ioas_id, uint32_t src_ioas_id,
                         uint32_t flags, uint64_t src_iova, uint64_t length, uint64_t *dst_iova,
                         Error *err);
        /*
         * Usable IOVA ranges.  *n_ranges: in, capacity of ranges; out, the number
         * the IOAS has (also when -EMSGSIZE says the array was too small).
         */
        int (*ioas_iova_ranges)(BackendContext *c, uint32_t ioas_id, IovaRange *ranges,
                                size_t *n_ranges, uint64_t *ret_alignment, Error *err);
        /* Replaces the allowed list; n == 0 clears it. */
        int (*ioas_allow_iovas)(BackendContext *c, uint32_t ioas_id, const IovaRange *ranges,
                                size_t n, Error *err);

        /* Binds a device fd (borrowed: the backend dups what it keeps) to this context. */
        int (*device_bind)(BackendContext *c, int device_fd, uint32_t *ret_dev_id, Error *err);
        /*
         * Detaches the device's RID and every PASID the backend attached, through the kernel on
         * the bound file, then closes the backend's copy of that file.  The device is unbound
         * once no process holds the file any more: returns 0 when it is unbound now, 1 when
         * the file may live on in a client (the device then stays bound to this context,
         * detached, and its DMA blocked).
         */
        int (*device_unbind)(BackendContext *c, uint32_t dev_id, Error *err);
        /* *pt_id: in, IOAS or HWPT; out, the HWPT now attached.  Again = replace. */
        int (*device_attach)(BackendContext *c, uint32_t dev_id, uint32_t pasid, uint32_t *pt_id,
                             Error *err);
        int (*device_detach)(BackendContext *c, uint32_t dev_id, uint32_t pasid, Error *err);
        int (*hw_info)(BackendContext *c, uint32_t dev_id, HwInfo *ret, Error *err);
        /*
         * A new VFIO device fd of a bound device for its client (owned by the caller),
         * where a client cannot open one itself: with the legacy group API the backend
         * holds the group file.  NULL where clients bring their own (iommufd cdevs).
         */
        int (*device_fd)(BackendContext *c, uint32_t dev_id, int *ret_fd, Error *err);
        /*
         * Arms the device's request channel (vfio-pci's VFIO_PCI_REQ_IRQ_INDEX) with an
         * eventfd: *ret_fd becomes readable when the host wants the device back (an unbind,
         * a removal, an SR-IOV VF disabled), and the host waits until the device is
         * released.  The fd is owned by the context and disarmed and closed at unbind.
         * -EOPNOTSUPP where the device has no such channel.  May be NULL: none at all.
         */
        int (*device_request_fd)(BackendContext *c, uint32_t dev_id, int *ret_fd, Error *err);

        int (*hwpt_alloc)(BackendContext *c, const HwptAllocArgs *args, uint32_t *ret_id,
                          Error *err);

        /*
         * Dirty tracking of a paging HWPT allocated with BACKEND_HWPT_DIRTY_TRACKING
         * (-EOPNOTSUPP for any other; -ENOENT for an id that is no paging HWPT).  Enabling
         * clears the dirty bits first, so the next read starts from a clean snapshot.
         */
        int (*hwpt_set_dirty_tracking)(BackendContext *c, uint32_t hwpt_id, bool enable,
                                       Error *err);
        /*
         * Reads the dirty bits of [iova, iova+length), and clears them unless
         * BACKEND_DIRTY_NO_CLEAR.  -EINVAL while tracking is off, for a range or page size not
         * aligned to the IOAS's alignment and to page_size, or a range not wholly mapped;
         * -EOVERFLOW when iova + length wraps; -EOPNOTSUPP for unknown flags.
         */
        int (*hwpt_get_dirty_bitmap)(BackendContext *c, const DirtyBitmapArgs *args, Error *err);

        /* *ret_fd is pollable (POLLIN when records are pending) and owned by the context. */
        int (*fault_queue_alloc)(BackendContext *c, uint32_t *ret_id, int *ret_fd, Error *err);
        /* Never blocks: *ret_n = 0 when nothing is pending.  Whole groups only. */
        int (*fault_read)(BackendContext *c, uint32_t fault_id, FaultRecord *buf, size_t n_max,
                          size_t *ret_n, Error *err);
        int (*fault_respond)(BackendContext *c, uint32_t fault_id, uint32_t cookie, uint32_t code,
                             Error *err);
};

/* Base of every backend; implementations embed it first. */
struct Backend {
        const BackendOps *ops;
        uint64_t features; /* BackendFeature bits */
};

struct BackendContext {
        Backend *backend;
        /*
         * Set by a caller that checks, just before every ioas_map_file(), that the fd's access
         * mode allows the map's flags and no write seal forbids it (the session core does): the
         * backend need not ask the kernel again.
         */
        bool fds_checked;
};

const char *backend_feature_to_string(BackendFeature f);
/* Names of the set bits, e.g. for GetTopology/NotSupported messages; NULL-terminated static array. */
int backend_features_to_strv(uint64_t features, const char **ret, size_t n_max);

/*
 * The vendor stage-1 tables a nested HWPT takes, from one table: the size of the kernel's
 * struct for a BACKEND_HWPT_DATA_* type (0: not a stage-1 type), the type an IOMMU of a
 * BACKEND_HW_INFO_TYPE_* takes (BACKEND_HWPT_DATA_NONE: none), and the type's name in the
 * protocol ("vtd", "arm_smmuv3"; -EINVAL for any other name).
 */
size_t backend_stage1_data_len(uint32_t data_type);
uint32_t backend_hw_info_stage1_type(uint32_t hw_info_type);
int backend_stage1_type_from_string(const char *name, uint32_t *ret);

static inline bool backend_has_feature(const Backend *b, BackendFeature f) {
        return (b->features & f) != 0;
}

void backend_free(Backend *b);
DEFINE_TRIVIAL_CLEANUP_FUNC(Backend *, backend_free);
void backend_context_free(BackendContext *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(BackendContext *, backend_context_free);
