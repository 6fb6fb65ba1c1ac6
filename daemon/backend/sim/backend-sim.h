/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * backend-sim: a faithful model of iommufd semantics behind the BackendOps
 * table.  The kernel selftests are its spec (IOMMUFD.md, "What the selftests
 * pin down"): errnos, the no-splitting rule, non-atomic unmap, automatic IOVA
 * alignment, reserved and allowed ranges, HWPT and PASID rules, fault queues.
 *
 * Devices are identified by inode.  With a root (the directory
 * simtopo_materialize() wrote) the fds of ROOT/dev/vfio/devices/vfioN, which
 * are regular files, name their device.  Without a root, device_open() is the
 * test hook: the node is a memfd the backend keeps, and each device_open()
 * opens it anew (through /proc/self/fd), as open() of a node does.
 *
 * A device is bound through an open file of its node, as the kernel binds a
 * VFIO cdev (sim-file.c): the binding lives while any process keeps that file
 * (an OFD lock marks it), a second open file cannot bind (-EINVAL), and a
 * context closed while a file bound to it lives on stays, objects and all.
 */

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "backend.h"
#include "error.h"
#include "simtopo.h"

/* Page size of the simulated host: sub-page offsets of sources are kept in IOVAs. */
#define BACKEND_SIM_PAGE_SIZE UINT64_C(4096)

/*
 * The largest alignment an automatic IOVA gets.  The kernel (iopt_alloc_iova) caps it at
 * HPAGE_SIZE when built with transparent huge pages, as distribution kernels are, and at
 * PAGE_SIZE without them; the model is such a kernel on x86-64: 2 MiB.
 */
#define BACKEND_SIM_AUTO_ALIGN_MAX (UINT64_C(2) << 20)

/*
 * Builds the model from topo (copied: topo may be freed afterwards).  root may
 * be NULL (see above).
 */
int backend_sim_new(Backend **ret, const SimTopology *topo, const char *root, Error *err);

bool backend_is_sim(const Backend *b);

/*
 * Raises an I/O page fault from device_name at pasid (BACKEND_NO_PASID: the
 * RID) for addr.  The record goes to the fault queue of the HWPT attached
 * there; a group is delivered once its last_page record arrives.  -ENOENT when
 * the device is not bound or nothing with a fault queue is attached there.
 */
int backend_sim_inject_fault(Backend *b, const char *device_name, uint32_t pasid, uint64_t addr,
                             uint32_t perm, bool last_page, uint32_t grpid, Error *err);

/* Why the IOMMU refused a device's DMA. */
typedef enum BackendSimDmaFaultReason {
        BACKEND_SIM_DMA_BLOCKED,    /* the device (its RID or that PASID) is attached to nothing */
        BACKEND_SIM_DMA_UNMAPPED,   /* nothing is mapped at the address */
        BACKEND_SIM_DMA_PERMISSION, /* mapped without the access the DMA needs */
} BackendSimDmaFaultReason;

/* A DMA the IOMMU refused, as its fault log (a DMAR fault, an IO_PAGE_FAULT) reports it. */
typedef struct BackendSimDmaFault {
        uint64_t addr;   /* the first IOVA that could not be reached */
        uint32_t pasid;  /* BACKEND_NO_PASID: untagged DMA (the RID) */
        uint32_t perm;   /* FAULT_PERM_READ or FAULT_PERM_WRITE */
        BackendSimDmaFaultReason reason;
} BackendSimDmaFault;

const char *backend_sim_dma_fault_reason_to_string(BackendSimDmaFaultReason r);

/*
 * A DMA of length bytes at iova by device_name, tagged with pasid (BACKEND_NO_PASID: untagged,
 * through the RID): write copies buf into memory, else memory into buf.  It translates through
 * the page table the device is attached to now, in whichever context bound it (also one the
 * daemon closed while a client keeps the bound device file), and reaches the memory of the
 * areas there (their memory fd, or the mapper's VAs), honouring their permissions.
 *
 * -EFAULT when the IOMMU refuses any byte of it (the device attached to nothing, an address
 * not mapped, a permission missing): nothing is transferred, *ret_fault (may be NULL) says
 * where and why, the device's fault log records it and, when the page table has a fault
 * queue, it is delivered there as a group of one record.  -ENODEV: no such device;
 * -EOPNOTSUPP: through a nested page table (stage-1 tables are not modelled); -EIO: the
 * memory refused the access (a file sealed since it was mapped).
 */
int backend_sim_dma(Backend *b, const char *device_name, uint32_t pasid, uint64_t iova, void *buf,
                    size_t length, bool write, BackendSimDmaFault *ret_fault, Error *err);

/* The DMA faults of device_name so far and the last one (*ret_last untouched when none). */
int backend_sim_device_dma_faults(const Backend *b, const char *device_name, uint64_t *ret_n,
                                  BackendSimDmaFault *ret_last);

typedef struct BackendSimStats {
        uint64_t faults_injected;    /* records accepted by backend_sim_inject_fault() */
        uint64_t groups_delivered;   /* groups handed out by fault_read */
        uint64_t responses_success;  /* fault_respond with SUCCESS */
        uint64_t responses_invalid;  /* fault_respond with INVALID */
        uint64_t auto_invalid;       /* groups answered INVALID by detach, destroy or context free */
        uint64_t contexts;           /* contexts alive now (one per session) */
        uint64_t objects;            /* objects alive now in every context (IOAS, HWPT, device, fault) */
        uint64_t mappings;           /* areas alive now in every IOAS (copies count again) */
        uint64_t pinned_bytes;       /* bytes pinned now (whole pages; shared pages once) */
        uint64_t locked_bytes;       /* of those, charged to a user or a process now */
        uint64_t memory_files;       /* memory files the model keeps open for areas */
        uint64_t dma_transfers;      /* DMAs that reached memory (backend_sim_dma()) */
        uint64_t dma_faults;         /* DMAs the IOMMU refused */
        uint64_t device_requests;    /* times the host asked a holder for a device back */
} BackendSimStats;

void backend_sim_get_stats(const Backend *b, BackendSimStats *ret);

/* Bytes currently mapped by every IOAS of the context (copies count again). */
uint64_t backend_sim_context_mapped_bytes(const BackendContext *c);
/* Number of areas in an IOAS, -ENOENT if there is no such IOAS. */
int backend_sim_ioas_n_areas(const BackendContext *c, uint32_t ioas_id, size_t *ret);

/* The area of an IOAS containing iova: -ENOENT when nothing is mapped there. */
int backend_sim_ioas_lookup(const BackendContext *c, uint32_t ioas_id, uint64_t iova,
                            IovaRange *ret);

/*
 * Hotplug in the model: device name is now bound to driver (NULL: unbound, or
 * gone) and has a VFIO cdev or not.  New binds and fd identification follow at
 * once; contexts that hold the device keep it until they unbind it.
 */
int backend_sim_set_device(Backend *b, const char *name, const char *driver, bool cdev,
                           Error *err);

/*
 * The host wants device name back (a removal or an unbind), as vfio-pci asks a holder:
 * signals the request eventfd its context armed.  1 when a context holds the device (the
 * change has to wait for its release), 0 when none does, -ENODEV when there is no such
 * device.
 */
int backend_sim_request_device(Backend *b, const char *name);

/*
 * The next object allocated in the context gets id when that id is free (the
 * first free id after it otherwise): restoring a context after a restart
 * recreates objects under the ids clients already hold.
 */
void backend_sim_context_set_next_id(BackendContext *c, uint32_t id);

/*
 * For the kernel responder, which plays the kernel behind backend-kernel's fds: the context and
 * device id bound through fd's open file (-ENOENT: that file is not bound); dropping the
 * backend's own copy of a bound file, as if the process had closed one of its fds (0: the
 * binding ended with it, 1: the file lives on); and ending the bindings whose files are gone,
 * as the kernel does at a file's last close.
 */
int backend_sim_file_binding(Backend *b, int fd, BackendContext **ret_ctx, uint32_t *ret_dev_id);
int backend_sim_device_drop_copy(BackendContext *c, uint32_t dev_id);
/* The backend's copy of the file it bound for dev_id (borrowed), -ENOENT without one. */
int backend_sim_context_device_fd(BackendContext *c, uint32_t dev_id);
void backend_sim_reap(Backend *b);

/* Whether the simulated caller holds CAP_SYS_RESOURCE (RLIMIT_MODE SET); default true. */
void backend_sim_set_privileged(Backend *b, bool privileged);

/*
 * The mapper's memory limits, as the kernel reads them when it pins: with CAP_IPC_LOCK
 * (the default, as the daemon runs) pins are charged to nobody; without it they are charged
 * to the mapper's user (RLIMIT_MODE 0) or process (RLIMIT_MODE 1), and a pin that takes that
 * account past limit bytes (its RLIMIT_MEMLOCK; default unlimited) fails with ENOMEM.
 * Applies to maps made from now on, as the kernel decides at map time.
 */
void backend_sim_set_memlock(Backend *b, bool cap_ipc_lock, uint64_t limit);
/* Who maps through c (default: the process that made it, with its uid); -ENOMEM. */
int backend_sim_context_set_owner(BackendContext *c, uid_t uid, pid_t pid);
/* Bytes charged now to a user (process false: id is a uid) or a process (a pid). */
int backend_sim_locked_bytes(const Backend *b, bool process, uint32_t id, uint64_t *ret);
/*
 * c stands for a context an earlier daemon process made (a restart over the simulated
 * host): the user VAs it maps are that process's memory, which pinned pages keep alive.
 * They are taken as present; a DMA through them reaches nothing.
 */
void backend_sim_context_adopt_memory(BackendContext *c);

/* The name of the memfd that stands for a context's iommufd (context_fd: memfd:NAME). */
#define SIM_IOMMUFD_NAME "iommufd-sim"
