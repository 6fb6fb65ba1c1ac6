/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Device DMA through the IOMMU: a device's request is translated by the page table its RID
 * (or the PASID it tags the request with) is attached to, in whichever context bound it, and
 * reaches the memory of the areas there.  What the IOMMU refuses is a fault: logged for the
 * device (the DMAR fault or IO_PAGE_FAULT the host's log shows), and delivered to the page
 * table's fault queue when it has one.  A request is checked whole before any byte moves.
 */

#include <inttypes.h>
#include <string.h>

#include "assert-util.h"
#include "sim-private.h"

const char *backend_sim_dma_fault_reason_to_string(BackendSimDmaFaultReason r) {
        switch (r) {
        case BACKEND_SIM_DMA_BLOCKED: return "blocked";
        case BACKEND_SIM_DMA_UNMAPPED: return "unmapped";
        case BACKEND_SIM_DMA_PERMISSION: return "permission";
        }
        return "unknown";
}

/* Where [iova, last] is not mapped with the access the DMA needs: 0, or -EFAULT and f. */
static int dma_check(SimIoas *ioas, uint64_t iova, uint64_t last, uint32_t need,
                     BackendSimDmaFault *f) {
        uint64_t cur = iova;

        for (IovaNode *n = iova_tree_find(&ioas->areas, iova);; n = iova_tree_next(&ioas->areas, n)) {
                if (!n || n->start > cur) {
                        f->reason = BACKEND_SIM_DMA_UNMAPPED;
                        break;
                }
                if (!(((SimArea *)n)->flags & need)) {
                        f->reason = BACKEND_SIM_DMA_PERMISSION;
                        break;
                }
                if (n->last >= last)
                        return 0;
                cur = n->last + 1;
        }
        f->addr = cur;
        return -EFAULT;
}

/* Moves the bytes, area by area, once dma_check() passed; h is the page table translating. */
static int dma_transfer(SimHwpt *h, SimIoas *ioas, uint64_t iova, char *buf,
                        size_t length, bool write) {
        size_t done = 0;
        int r;

        while (done < length) {
                uint64_t at = iova + done;
                SimArea *a = (SimArea *)iova_tree_find(&ioas->areas, at);
                size_t n = (size_t)MIN((uint64_t)(length - done), a->node.last - at + 1);

                r = sim_area_access(a, at - a->node.start, buf + done, n, write);
                if (r < 0)
                        return r;
                /* As the IOMMU sets the dirty bit of each IOPTE a write goes through. */
                if (write) {
                        r = sim_hwpt_mark_dirty(h, at, at + n - 1);
                        if (r < 0)
                                return r;
                }
                done += n;
        }
        return 0;
}

/* The device's fault log, and the page table's fault queue when it has one. */
static void dma_fault(SimBackend *s, SimDevModel *m, SimContext *c, SimHwpt *h,
                      const BackendSimDmaFault *f) {
        m->dma_faults++;
        m->last_dma_fault = *f;
        s->stats.dma_faults++;
        if (h && h->fault) {
                FaultRecord rec = {
                        .flags = FAULT_FLAG_LAST_PAGE |
                                 (f->pasid != BACKEND_NO_PASID ? FAULT_FLAG_PASID_VALID : 0),
                        .dev_id = m->dev_id,
                        .pasid = f->pasid != BACKEND_NO_PASID ? f->pasid : 0,
                        .perm = f->perm,
                        .addr = f->addr & ~(BACKEND_SIM_PAGE_SIZE - 1),
                };

                /* Out of memory loses the record, as an overflowing queue would. */
                (void)sim_fault_raise((SimDev *)sim_obj_get(c, m->dev_id), h->fault, &rec);
        }
}

int backend_sim_dma(Backend *b, const char *device_name, uint32_t pasid, uint64_t iova, void *buf,
                    size_t length, bool write, BackendSimDmaFault *ret_fault, Error *err) {
        SimBackend *s = to_sim(b);
        BackendSimDmaFault f = { .addr = iova, .pasid = pasid,
                                 .perm = write ? FAULT_PERM_WRITE : FAULT_PERM_READ,
                                 .reason = BACKEND_SIM_DMA_BLOCKED };
        SimContext *c;
        SimDevModel *m;
        SimHwpt *h = NULL;
        uint64_t last;
        size_t i;
        int r;

        assert_return(backend_is_sim(b), -EINVAL);
        assert_return(device_name, -EINVAL);
        assert_return(buf || length == 0, -EINVAL);

        if (sim_device_find(s, device_name, &i) < 0)
                return error_set(err, -ENODEV, "No device %s", device_name);
        if (length == 0 || ADD_OVERFLOW(iova, (uint64_t)length - 1, &last))
                return error_set(err, -EINVAL, "A DMA of 0x%zx bytes at 0x%" PRIx64 " is invalid",
                                 length, iova);
        m = &s->devices[i];
        c = m->ctx;
        if (c)
                h = sim_device_attached((SimDev *)sim_obj_get(c, m->dev_id), pasid);
        if (h && h->parent)
                return error_set(err, -EOPNOTSUPP,
                                 "%s is attached to nested HWPT %" PRIu32 ": stage-1 tables are "
                                 "not modelled", device_name, h->obj.id);
        r = h ? dma_check(h->ioas, iova, last,
                          write ? BACKEND_MAP_WRITEABLE : BACKEND_MAP_READABLE, &f) : -EFAULT;
        if (r < 0) {
                dma_fault(s, m, c, h, &f);
                if (ret_fault)
                        *ret_fault = f;
                return error_set(err, -EFAULT, "DMA %s 0x%" PRIx64 " by %s faulted: %s",
                                 write ? "write to" : "read from", f.addr, device_name,
                                 backend_sim_dma_fault_reason_to_string(f.reason));
        }
        r = dma_transfer(h, h->ioas, iova, buf, length, write);
        if (r < 0)
                return error_set(err, -EIO, "The memory behind 0x%" PRIx64 " refused the %s: %s",
                                 iova, write ? "write" : "read", strerror(-r));
        s->stats.dma_transfers++;
        return 0;
}

int backend_sim_device_dma_faults(const Backend *b, const char *device_name, uint64_t *ret_n,
                                  BackendSimDmaFault *ret_last) {
        SimBackend *s = (SimBackend *)b;
        size_t i;

        assert_return(backend_is_sim(b), -EINVAL);
        assert_return(device_name && ret_n, -EINVAL);

        if (sim_device_find(s, device_name, &i) < 0)
                return -ENODEV;
        *ret_n = s->devices[i].dma_faults;
        if (ret_last && s->devices[i].dma_faults > 0)
                *ret_last = s->devices[i].last_dma_fault;
        return 0;
}
