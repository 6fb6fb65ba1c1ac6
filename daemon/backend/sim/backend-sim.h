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
 * test hook: it hands out a memfd whose inode the backend remembers (and keeps
 * alive) as that device's node.
 */

#include <stdbool.h>
#include <stdint.h>

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

typedef struct BackendSimStats {
        uint64_t faults_injected;    /* records accepted by backend_sim_inject_fault() */
        uint64_t groups_delivered;   /* groups handed out by fault_read */
        uint64_t responses_success;  /* fault_respond with SUCCESS */
        uint64_t responses_invalid;  /* fault_respond with INVALID */
        uint64_t auto_invalid;       /* groups answered INVALID by detach, destroy or context free */
        uint64_t contexts;           /* contexts alive now (one per session) */
        uint64_t objects;            /* objects alive now in every context (IOAS, HWPT, device, fault) */
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
 * The next object allocated in the context gets id when that id is free (the
 * first free id after it otherwise): restoring a context after a restart
 * recreates objects under the ids clients already hold.
 */
void backend_sim_context_set_next_id(BackendContext *c, uint32_t id);

/* Whether the simulated caller holds CAP_SYS_RESOURCE (RLIMIT_MODE SET); default true. */
void backend_sim_set_privileged(Backend *b, bool privileged);

/* The name of the memfd that stands for the iommufd OpenDevices hands over (memfd:NAME). */
#define SIM_HANDOFF_IOMMUFD_NAME "iommufd-sim"
