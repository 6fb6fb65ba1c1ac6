/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Restart survival of dirty tracking: an address space's record says whether tracking is on
 * and names its dirty-tracking page tables with their IOMMU; a restarted daemon takes the
 * tables over from the adopted iommufd, or recreates them with the devices attached through
 * them (session-state-internal.h).
 */

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json-util.h"
#include "session-internal.h"
#include "session-state-internal.h"

int session_state_dirty_to_json(const SessionIoas *a, json_object *j) {
        json_object *d = json_object_new_object(), *hwpts = json_object_new_array();

        if (!d || !hwpts || json_util_add(j, "dirtyTracking", d) < 0) {
                json_object_put(d);
                json_object_put(hwpts);
                return -ENOMEM;
        }
        (void)json_util_add(d, "enabled", json_object_new_boolean(a->dirty_enabled));
        (void)json_util_add(d, "hwpts", hwpts);
        for (size_t k = 0; k < a->n_dirty_hwpts; k++) {
                json_object *h = json_object_new_object();

                if (!h || json_object_array_add(hwpts, h) < 0) {
                        json_object_put(h);
                        return -ENOMEM;
                }
                (void)json_util_add(h, "id", json_object_new_int64(a->dirty_hwpts[k].id));
                (void)json_util_add(h, "iommu", json_object_new_string(a->dirty_hwpts[k].iommu));
        }
        return 0;
}

/*
 * Whether an adopted dirty-tracking page table is still in the iommufd as recorded: one bit
 * of its first area read without clearing when tracking is on (turning it on again would clear
 * what devices wrote meanwhile; the bit's page is the area's largest power-of-two alignment,
 * which meets the IOAS's), turned on again over no mappings at all, and turned off again when
 * it is off.  Each fails for any other object.
 */
static int dirty_hwpt_check(Session *s, const SessionIoas *ioas, uint32_t id, Error *be) {
        uint64_t word = 0, align;
        DirtyBitmapArgs d = { .hwpt_id = id, .flags = BACKEND_DIRTY_NO_CLEAR, .data = &word };

        if (!OPS(s)->hwpt_set_dirty_tracking || !OPS(s)->hwpt_get_dirty_bitmap)
                return error_set(be, -EOPNOTSUPP, "the %s backend has no dirty tracking",
                                 OPS(s)->name);
        if (!ioas->dirty_enabled || ioas->n_areas == 0)
                return OPS(s)->hwpt_set_dirty_tracking(s->ctx, id, ioas->dirty_enabled, be);
        align = ioas->areas[0].iova | ioas->areas[0].length;
        d.iova = ioas->areas[0].iova;
        d.length = d.page_size = align & -align;
        return OPS(s)->hwpt_get_dirty_bitmap(s->ctx, &d, be);
}

/* The adopted dirty-tracking page tables of a record that the iommufd still has. */
static int restore_dirty_hwpts(Session *s, SessionIoas *ioas, json_object *hwpts,
                               const SessionRestoreConfig *rc) {
        for (size_t k = 0; k < json_object_array_length(hwpts); k++) {
                json_object *h = json_object_array_get_idx(hwpts, k);
                Error be = ERROR_INIT;
                SessionDirtyHwpt *arr;
                const char *iommu;
                uint32_t id;

                if (json_util_get_u32(h, "id", 0, &id, NULL) < 0 || id == 0 ||
                    json_util_get_string(h, "iommu", 0, &iommu, NULL) < 0) {
                        DROP(s, rc, "a dirty-tracking page table record of address space "
                             "%" PRIu32 " is malformed", ioas->id);
                        continue;
                }
                if (dirty_hwpt_check(s, ioas, id, &be) < 0) {
                        DROP(s, rc, "dirty-tracking page table %" PRIu32 " of address space "
                             "%" PRIu32 " is not in the iommufd: %s", id, ioas->id,
                             error_message(&be));
                        continue;
                }
                arr = reallocarray(ioas->dirty_hwpts, ioas->n_dirty_hwpts + 1, sizeof(*arr));
                if (!arr)
                        return -ENOMEM;
                ioas->dirty_hwpts = arr;
                arr[ioas->n_dirty_hwpts].id = id;
                snprintf(arr[ioas->n_dirty_hwpts].iommu, sizeof(arr->iommu), "%s", iommu);
                ioas->n_dirty_hwpts++;
        }
        return 0;
}

/*
 * Dirty tracking of a recorded address space.  Adopted, its page tables are taken over;
 * recreated, they come back with the devices attached through them (restore_attachment()).
 */
int session_state_restore_dirty(Session *s, SessionIoas *ioas, json_object *j,
                         const SessionRestoreConfig *rc) {
        json_object *d = NULL, *hwpts = NULL;

        if (json_util_get_object(j, "dirtyTracking", JSON_UTIL_OPTIONAL, &d, NULL) < 0 ||
            (d && (json_util_get_bool(d, "enabled", 0, &ioas->dirty_enabled, NULL) < 0 ||
                   json_util_get_array(d, "hwpts", 0, &hwpts, NULL) < 0))) {
                DROP(s, rc, "the dirty-tracking record of address space %" PRIu32
                     " is malformed; it tracks nothing", ioas->id);
                ioas->dirty_enabled = false;
                return 0;
        }
        if (!d)
                return 0;
        ioas->dirty_tracking = true;
        return rc->prepare_id ? 0 : restore_dirty_hwpts(s, ioas, hwpts, rc);
}

/*
 * Recreated: the dirty-tracking page table device n (id) was attached through, under its
 * recorded id hwpt_id unless an earlier device of the same IOMMU brought it back already.
 */
bool session_state_restore_dirty_page_table(Session *s, const char *n, uint32_t id, SessionIoas *ioas,
                                     uint32_t hwpt_id, uint32_t *ret_pt,
                                     const SessionRestoreConfig *rc) {
        const SessionDevice d = { .id = id, .name = (char *)n };
        BrokerError err = BROKER_ERROR_INIT;
        bool known = false, new_pt;

        for (size_t i = 0; i < ioas->n_dirty_hwpts; i++)
                known = known || ioas->dirty_hwpts[i].id == hwpt_id;
        if (!known)
                rc->prepare_id(s->ctx, hwpt_id);
        if (session_dirty_page_table(s, &d, topology_find_device(s->host->topology, n), ioas,
                                     ret_pt, &new_pt, &err) < 0) {
                DROP(s, rc, "the dirty-tracking page table of device %s in address space "
                     "%" PRIu32 " could not be recreated: %s; it stays detached", n, ioas->id,
                     error_message(&err.error));
                return false;
        }
        return true;
}

