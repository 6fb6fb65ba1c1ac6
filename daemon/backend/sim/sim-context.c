/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Contexts (one simulated iommufd each) and the table of their objects: ids shared by every
 * object type, lowest free id first, as the kernel's xarray hands them out.  IOMMU_DESTROY
 * and IOMMU_OPTION act on that table, so they live here too.
 */

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "assert-util.h"
#include "sim-private.h"

/* ---- object table: ids shared by all types, lowest free id >= 1, like the kernel's xarray ---- */

const char *sim_obj_type_name(SimObjType t) {
        switch (t) {
        case SIM_OBJ_IOAS: return "IOAS";
        case SIM_OBJ_HWPT_PAGING: return "paging HWPT";
        case SIM_OBJ_HWPT_NESTED: return "nested HWPT";
        case SIM_OBJ_DEVICE: return "device";
        case SIM_OBJ_FAULT: return "fault queue";
        }
        return "object";
}

int sim_obj_add(SimContext *c, SimObject *o, SimObjType type, Error *err) {
        uint32_t id = c->free_hint ?: 1;

        while (id < c->n_objs && c->objs[id])
                id++;
        if (id >= c->n_objs) {
                size_t n = MAX((size_t)16, c->n_objs * 2);
                SimObject **v = realloc(c->objs, n * sizeof(SimObject *));

                if (!v)
                        return error_set(err, -ENOMEM, "Out of memory for the object table");
                memset(v + c->n_objs, 0, (n - c->n_objs) * sizeof(SimObject *));
                c->objs = v;
                c->n_objs = n;
        }
        o->id = id;
        o->type = type;
        c->objs[id] = o;
        c->n_live++;
        c->sim->stats.objects++;
        c->free_hint = id + 1;
        return 0;
}

void sim_obj_remove(SimContext *c, SimObject *o) {
        c->objs[o->id] = NULL;
        c->n_live--;
        c->sim->stats.objects--;
        if (o->id < c->free_hint)
                c->free_hint = o->id;
}

int sim_obj_lookup(SimContext *c, uint32_t id, SimObjType type, void **ret, Error *err) {
        SimObject *o = sim_obj_get(c, id);

        if (!o)
                return error_set(err, -ENOENT, "No object with id %" PRIu32, id);
        if (o->type != type)
                return error_set(err, -ENOENT, "Object %" PRIu32 " is a %s, not a %s", id,
                                 sim_obj_type_name(o->type), sim_obj_type_name(type));
        *ret = o;
        return 0;
}

/* ---- contexts ---- */

int sim_context_new(Backend *b, BackendContext **ret, Error *err) {
        SimContext *c;

        assert_return(b, -EINVAL);
        assert_return(ret, -EINVAL);

        c = calloc(1, sizeof(SimContext));
        if (!c)
                return error_set(err, -ENOMEM, "Out of memory for a context");
        c->base.backend = b;
        c->sim = to_sim(b);
        c->free_hint = 1;
        c->file = -EBADF;
        /* The mapper is the process that opened the context, as with /dev/iommu. */
        if (sim_accounts_attach(c, getuid(), getpid()) < 0) {
                free(c);
                return error_set(err, -ENOMEM, "Out of memory for a context");
        }
        c->sim->stats.contexts++;
        *ret = &c->base;
        return 0;
}

void sim_context_free(BackendContext *bc) {
        SimContext *c = to_ctx(bc);

        if (!c)
                return;
        /* As the kernel: the context goes when no file bound to it is left, not before. */
        if (sim_file_close_context(c) != 0)
                return;
        sim_context_destroy(c);
}

void sim_context_destroy(SimContext *c) {
        /* Devices first (detaches, auto domains, faults), then nested, paging, IOAS, queues. */
        for (SimObjType t = SIM_OBJ_DEVICE;; t = t == SIM_OBJ_DEVICE ? SIM_OBJ_HWPT_NESTED :
                                                t == SIM_OBJ_HWPT_NESTED ? SIM_OBJ_HWPT_PAGING :
                                                t == SIM_OBJ_HWPT_PAGING ? SIM_OBJ_IOAS :
                                                                           SIM_OBJ_FAULT) {
                for (size_t id = 1; id < c->n_objs; id++) {
                        SimObject *o = c->objs[id];

                        if (!o || o->type != t)
                                continue;
                        switch (t) {
                        case SIM_OBJ_DEVICE: sim_device_free(c, (SimDev *)o); break;
                        case SIM_OBJ_HWPT_NESTED:
                        case SIM_OBJ_HWPT_PAGING: sim_hwpt_free(c, (SimHwpt *)o); break;
                        case SIM_OBJ_IOAS: sim_ioas_free(c, (SimIoas *)o); break;
                        case SIM_OBJ_FAULT: sim_fault_queue_free(c, (SimFaultQueue *)o); break;
                        }
                }
                if (t == SIM_OBJ_FAULT)
                        break;
        }
        free(c->objs);
        safe_close(c->file);
        c->sim->stats.contexts--;
        free(c);
}

/*
 * A simulated context lives in this process and has no file, but a client that gets an iommufd
 * of its own (Delegate, OpenDevices) holds one: a memfd named SIM_IOMMUFD_NAME stands for it,
 * made on first use, so that the same paths hand it over and tests see which fd went out.
 */
int sim_context_fd(BackendContext *bc) {
        SimContext *c = to_ctx(bc);

        assert_return(bc, -EINVAL);

        if (c->file < 0) {
                c->file = memfd_create(SIM_IOMMUFD_NAME, MFD_CLOEXEC);
                if (c->file < 0)
                        return negative_errno();
        }
        return c->file;
}

void backend_sim_context_set_next_id(BackendContext *bc, uint32_t id) {
        /* sim_obj_add() takes the first free slot from the hint on: a free id is used exactly. */
        to_ctx(bc)->free_hint = id;
}

/* ---- destroy, option ---- */

int sim_destroy(BackendContext *bc, uint32_t id, Error *err) {
        SimContext *c = to_ctx(bc);
        SimObject *o;

        assert_return(bc, -EINVAL);

        o = sim_obj_get(c, id);
        if (!o)
                return error_set(err, -ENOENT, "No object with id %" PRIu32, id);
        switch (o->type) {
        case SIM_OBJ_DEVICE:
                return error_set(err, -EBUSY, "Device %" PRIu32 " is bound: unbind it instead", id);
        case SIM_OBJ_IOAS: {
                SimIoas *ioas = (SimIoas *)o;

                if (ioas->users > 0)
                        return error_set(err, -EBUSY, "IOAS %" PRIu32 " is used by %u HWPTs", id,
                                         ioas->users);
                sim_ioas_free(c, ioas);
                return 0;
        }
        case SIM_OBJ_HWPT_PAGING:
        case SIM_OBJ_HWPT_NESTED: {
                SimHwpt *h = (SimHwpt *)o;

                if (h->users > 0)
                        return error_set(err, -EBUSY, "HWPT %" PRIu32 " is in use", id);
                sim_hwpt_free(c, h);
                return 0;
        }
        case SIM_OBJ_FAULT: {
                SimFaultQueue *q = (SimFaultQueue *)o;

                if (q->users > 0)
                        return error_set(err, -EBUSY, "Fault queue %" PRIu32 " is used by %u HWPTs",
                                         id, q->users);
                sim_fault_queue_free(c, q);
                return 0;
        }
        }
        return error_set(err, -ENOENT, "No object with id %" PRIu32, id);
}

int sim_option(BackendContext *bc, uint32_t option_id, uint16_t op, uint32_t object_id,
               uint64_t *val64, Error *err) {
        SimContext *c = to_ctx(bc);
        int r;

        assert_return(bc, -EINVAL);
        assert_return(val64, -EINVAL);

        if (op != BACKEND_OPTION_OP_SET && op != BACKEND_OPTION_OP_GET)
                return error_set(err, -EOPNOTSUPP, "Unknown option op %u", op);
        switch (option_id) {
        case BACKEND_OPTION_RLIMIT_MODE:
                if (object_id != 0)
                        return error_set(err, -EOPNOTSUPP,
                                         "RLIMIT_MODE is global: object id must be 0, not %" PRIu32,
                                         object_id);
                if (op == BACKEND_OPTION_OP_GET) {
                        *val64 = c->rlimit_per_process;
                        return 0;
                }
                if (c->sim->unprivileged)
                        return error_set(err, -EPERM, "Setting RLIMIT_MODE needs CAP_SYS_RESOURCE");
                if (c->n_live > 0)
                        return error_set(err, -EBUSY,
                                         "RLIMIT_MODE can only change before any object exists");
                if (*val64 > 1)
                        return error_set(err, -EINVAL, "RLIMIT_MODE %" PRIu64 " is not 0 or 1",
                                         *val64);
                c->rlimit_per_process = *val64 == 1;
                return 0;
        case BACKEND_OPTION_HUGE_PAGES: {
                SimIoas *ioas;
                uint64_t a;

                r = sim_obj_lookup(c, object_id, SIM_OBJ_IOAS, (void **)&ioas, err);
                if (r < 0)
                        return r;
                if (op == BACKEND_OPTION_OP_GET) {
                        *val64 = !ioas->disable_large_pages;
                        return 0;
                }
                if (*val64 > 1)
                        return error_set(err, -EINVAL, "HUGE_PAGES %" PRIu64 " is not 0 or 1",
                                         *val64);
                if (*val64 == 1) {
                        ioas->disable_large_pages = false;
                        ioas->alignment = sim_ioas_compute_alignment(c, ioas, NULL, NULL, false);
                        return 0;
                }
                if (ioas->disable_large_pages)
                        return 0;
                if (ioas->n_domains > 0 && ioas->areas.n > 0)
                        return error_set(err, -EINVAL,
                                         "IOAS %" PRIu32 " already has mappings in a domain",
                                         object_id);
                a = sim_ioas_compute_alignment(c, ioas, NULL, NULL, true);
                r = sim_ioas_check_alignment(ioas, a, err);
                if (r < 0)
                        return r;
                ioas->disable_large_pages = true;
                ioas->alignment = a;
                return 0;
        }
        }
        return error_set(err, -EOPNOTSUPP, "Unknown option %" PRIu32, option_id);
}
