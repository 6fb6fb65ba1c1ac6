/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "assert-util.h"
#include "json-util.h"
#include "session-internal.h"
#include "session-state-internal.h"
#include "session-state.h"

/* ---- the record ------------------------------------------------------------------------ */

static json_object *u64_json(uint64_t v) {
        return v > INT64_MAX ? json_object_new_uint64(v) : json_object_new_int64((int64_t)v);
}

/* Appends node (taken; NULL for lack of memory) to array and returns it, owned by array. */
static json_object *array_append(json_object *array, json_object *node) {
        if (!node || json_object_array_add(array, node) < 0) {
                json_object_put(node);
                return NULL;
        }
        return node;
}

/* Appends [v[0], ..., v[n-1]] to array. */
static int array_add_tuple(json_object *array, const uint64_t *v, size_t n) {
        json_object *e = array_append(array, json_object_new_array());

        if (!e)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++)
                json_object_array_add(e, u64_json(v[i]));
        return 0;
}

static int pasid_to_json(const SessionPasid *p, json_object *pasids) {
        json_object *j = array_append(pasids, json_object_new_object());
        char hex[2 * BACKEND_STAGE1_DATA_MAX + 1];

        if (!j)
                return -ENOMEM;
        (void)json_util_add(j, "deviceId", u64_json(p->device_id));
        (void)json_util_add(j, "pasid", u64_json(p->pasid));
        (void)json_util_add(j, "ioasId", u64_json(p->ioas_id));
        (void)json_util_add(j, "hwptId", u64_json(p->hwpt_id));
        if (p->parent_id != 0)
                (void)json_util_add(j, "parentId", u64_json(p->parent_id));
        (void)json_util_add(j, "faults", json_object_new_boolean(p->faults));
        if (p->stage1_len > 0) {
                for (size_t k = 0; k < p->stage1_len; k++)
                        snprintf(hex + 2 * k, 3, "%02x", p->stage1[k]);
                (void)json_util_add(j, "stage1Type", u64_json(p->stage1_type));
                (void)json_util_add(j, "stage1", json_object_new_string(hex));
        }
        return 0;
}

static int device_to_json(const SessionDevice *d, json_object *devs) {
        json_object *j = array_append(devs, json_object_new_object());

        if (!j)
                return -ENOMEM;
        (void)json_util_add(j, "id", u64_json(d->id));
        (void)json_util_add(j, "name", json_object_new_string(d->name));
        (void)json_util_add(j, "ioasId", u64_json(d->ioas_id));
        (void)json_util_add(j, "hwptId", u64_json(d->hwpt_id));
        return 0;
}

static int ioas_to_json(const SessionIoas *a, json_object *ioas) {
        json_object *j = json_object_new_object(), *areas = json_object_new_array(),
                    *allowed = json_object_new_array();

        if (!j || !areas || !allowed || json_object_array_add(ioas, j) < 0) {
                json_object_put(j);
                json_object_put(areas);
                json_object_put(allowed);
                return -ENOMEM;
        }
        (void)json_util_add(j, "id", u64_json(a->id));
        (void)json_util_add(j, "areas", areas);
        (void)json_util_add(j, "allowed", allowed);
        for (size_t k = 0; k < a->n_areas; k++) {
                const SessionArea *e = &a->areas[k];

                if (array_add_tuple(areas, (const uint64_t[]){ e->iova, e->length, e->flags },
                                    3) < 0)
                        return -ENOMEM;
        }
        for (size_t k = 0; k < a->n_allowed; k++) {
                const IovaRange *e = &a->allowed[k];

                if (array_add_tuple(allowed, (const uint64_t[]){ e->start, e->last }, 2) < 0)
                        return -ENOMEM;
        }
        return a->dirty_tracking ? session_state_dirty_to_json(a, j) : 0;
}

/* The devices the client took as fds: their claims are all there is to keep. */
static int handed_over_to_json(const Session *s, json_object *o) {
        json_object *a = json_object_new_array();

        if (!a || json_util_add(o, "handedOver", a) < 0)
                return -ENOMEM;
        for (size_t i = 0; i < s->n_handed_over; i++)
                if (!array_append(a, json_object_new_string(s->handed_over[i])))
                        return -ENOMEM;
        return 0;
}

int session_to_json(const Session *s, json_object **ret) {
        json_object *o, *devs, *ioas, *pasids = NULL;
        int r = 0;

        assert_return(s, -EINVAL);
        assert_return(ret, -EINVAL);

        o = json_object_new_object();
        devs = json_object_new_array();
        ioas = json_object_new_array();
        if (!o || !devs || !ioas) {
                json_object_put(o);
                json_object_put(devs);
                json_object_put(ioas);
                return -ENOMEM;
        }
        (void)json_util_add(o, "devices", devs);
        (void)json_util_add(o, "addressSpaces", ioas);
        if (s->faults)
                (void)json_util_add(o, "faultQueue", u64_json(fault_stream_fault_id(s->faults)));
        /* A restarted daemon must not mediate for a client that has its own iommufd. */
        if (s->delegated)
                (void)json_util_add(o, "delegated", json_object_new_boolean(true));
        if (s->n_pasids > 0) {
                pasids = json_object_new_array();
                if (!pasids || json_util_add(o, "pasids", pasids) < 0)
                        r = -ENOMEM;
        }
        for (size_t i = 0; r >= 0 && i < s->n_pasids; i++)
                r = pasid_to_json(&s->pasids[i], pasids);
        for (size_t i = 0; r >= 0 && i < s->n_devices; i++)
                r = device_to_json(&s->devices[i], devs);
        for (size_t i = 0; r >= 0 && i < s->n_ioas; i++)
                r = ioas_to_json(&s->ioas[i], ioas);
        if (r >= 0 && s->n_handed_over > 0)
                r = handed_over_to_json(s, o);
        if (r < 0) {
                json_object_put(o);
                return r;
        }
        *ret = o;
        return 0;
}

BackendContext *session_get_context(const Session *s) {
        assert_return(s, NULL);
        return s->ctx;
}

/* ---- the rebuild ----------------------------------------------------------------------- */

static int tuple_get(json_object *a, size_t n, uint64_t *v) {
        if (!json_object_is_type(a, json_type_array) || json_object_array_length(a) != n)
                return -EINVAL;
        for (size_t i = 0; i < n; i++)
                if (json_util_to_u64(json_object_array_get_idx(a, i), &v[i]) < 0)
                        return -EINVAL;
        return 0;
}

/* Is [iova, iova+length) one area of the IOAS in the backend?  Copies it into a scratch IOAS. */
static bool area_present(Session *s, uint32_t scratch, uint32_t ioas_id, const SessionArea *a) {
        uint64_t at = 0;

        if (OPS(s)->ioas_copy(s->ctx, scratch, ioas_id,
                              a->flags & (BACKEND_MAP_READABLE | BACKEND_MAP_WRITEABLE), a->iova,
                              a->length, &at, NULL) < 0)
                return false;
        (void)OPS(s)->ioas_unmap(s->ctx, scratch, 0, UINT64_MAX, NULL, NULL);
        return true;
}

/* The address space of a record: recreated under its id, or found in the adopted iommufd. */
static bool restore_ioas_object(Session *s, uint32_t id, const SessionRestoreConfig *rc) {
        Error be = ERROR_INIT;
        uint32_t got;
        size_t n = 0;
        uint64_t align;
        int r;

        if (rc->prepare_id) {
                rc->prepare_id(s->ctx, id);
                r = OPS(s)->ioas_alloc(s->ctx, &got, &be);
                if (r < 0) {
                        DROP(s, rc, "address space %" PRIu32 " could not be recreated: %s", id,
                             error_message(&be));
                        return false;
                }
                if (got != id) {
                        (void)OPS(s)->destroy(s->ctx, got, NULL);
                        DROP(s, rc, "address space %" PRIu32 " came back as %" PRIu32, id, got);
                        return false;
                }
                return true;
        }
        r = OPS(s)->ioas_iova_ranges(s->ctx, id, NULL, &n, &align, &be);
        if (r < 0 && r != -EMSGSIZE) {
                DROP(s, rc, "address space %" PRIu32 " is not in the iommufd: %s", id,
                     error_message(&be));
                return false;
        }
        return true;
}

/* The allowed list of a record; a malformed range is skipped. */
static int restore_allowed(SessionIoas *ioas, json_object *allowed) {
        for (size_t k = 0; k < json_object_array_length(allowed); k++) {
                uint64_t v[2];
                IovaRange *a;

                if (tuple_get(json_object_array_get_idx(allowed, k), 2, v) < 0)
                        continue;
                a = realloc(ioas->allowed, (ioas->n_allowed + 1) * sizeof(*a));
                if (!a)
                        return -ENOMEM;
                ioas->allowed = a;
                a[ioas->n_allowed++] = (IovaRange){ .start = v[0], .last = v[1] };
        }
        return 0;
}

/* The mappings of a record that could be made again, or that the adopted iommufd still has. */
static int restore_areas(Session *s, SessionIoas *ioas, json_object *areas,
                         const SessionRestoreConfig *rc, uint32_t scratch) {
        Error be = ERROR_INIT;
        uint32_t id = ioas->id;
        int r;

        for (size_t k = 0; k < json_object_array_length(areas); k++) {
                SessionArea a;
                uint64_t v[3], iova;

                if (tuple_get(json_object_array_get_idx(areas, k), 3, v) < 0 || v[1] == 0 ||
                    v[2] > UINT32_MAX) {
                        DROP(s, rc, "a mapping record of address space %" PRIu32
                             " is malformed", id);
                        continue;
                }
                a = (SessionArea){ .iova = v[0], .length = v[1], .flags = (uint32_t)v[2] };
                iova = a.iova;
                if (rc->prepare_id)
                        r = OPS(s)->ioas_map_va(s->ctx, id, a.flags | BACKEND_MAP_FIXED_IOVA,
                                                a.iova, a.length, &iova, &be);
                else
                        r = area_present(s, scratch, id, &a) ? 0 : -ENOENT;
                if (r < 0) {
                        DROP(s, rc, "mapping 0x%" PRIx64 "+0x%" PRIx64 " of address space %" PRIu32
                             " is not in the iommufd",
                             a.iova, a.length, id);
                        continue;
                }
                if (session_ioas_reserve_area(ioas) < 0)
                        return -ENOMEM;
                session_ioas_insert_area(ioas, a.iova, a.length, a.flags);
        }
        return 0;
}

static int restore_ioas(Session *s, json_object *j, const SessionRestoreConfig *rc,
                        uint32_t scratch) {
        json_object *areas = NULL, *allowed = NULL;
        SessionIoas ioas = {}, *arr;
        uint32_t id;

        if (json_util_get_u32(j, "id", 0, &id, NULL) < 0 || id == 0 ||
            json_util_get_array(j, "areas", 0, &areas, NULL) < 0 ||
            json_util_get_array(j, "allowed", 0, &allowed, NULL) < 0) {
                DROP(s, rc, "an address space record is malformed");
                return 0;
        }
        if (!restore_ioas_object(s, id, rc))
                return 0;

        ioas.id = id;
        if (restore_allowed(&ioas, allowed) < 0)
                goto oom;
        if (rc->prepare_id && session_apply_allowed(s, &ioas, NULL) < 0)
                DROP(s, rc, "the allowed IOVA list of address space %" PRIu32
                     " could not be set again", id);
        if (restore_areas(s, &ioas, areas, rc, scratch) < 0 ||
            session_state_restore_dirty(s, &ioas, j, rc) < 0)
                goto oom;

        arr = realloc(s->ioas, (s->n_ioas + 1) * sizeof(*arr));
        if (!arr)
                goto oom;
        s->ioas = arr;
        /* Granted before the restart: charged to the principal again without a check. */
        session_charge_held(s, SESSION_RESOURCE_ADDRESS_SPACES, 1);
        session_charge_held(s, SESSION_RESOURCE_MAPPINGS, ioas.n_areas);
        session_charge_held(s, SESSION_RESOURCE_PINNED_BYTES, session_ioas_mapped_bytes(&ioas));
        s->ioas[s->n_ioas++] = ioas;
        return 0;
oom:
        session_ioas_free_areas(&ioas);
        free(ioas.allowed);
        free(ioas.dirty_hwpts);
        return -ENOMEM;
}

/* Simulated backend: opens and binds the device again, under its recorded id. */
static bool restore_device_bind(Session *s, const char *n, uint32_t id,
                                const SessionRestoreConfig *rc) {
        _cleanup_close_ int fd = -EBADF;
        Error be = ERROR_INIT;
        uint32_t got;
        int r;

        r = OPS(s)->device_open(s->host->backend, n, &fd, &be);
        if (r >= 0) {
                rc->prepare_id(s->ctx, id);
                r = OPS(s)->device_bind(s->ctx, fd, &got, &be);
        }
        if (r < 0) {
                DROP(s, rc, "device %s could not be bound again: %s", n, error_message(&be));
                return false;
        }
        if (got != id) {
                (void)OPS(s)->device_unbind(s->ctx, got, NULL);
                DROP(s, rc, "device %s came back as id %" PRIu32 ", not %" PRIu32, n, got, id);
                return false;
        }
        return true;
}

/*
 * The address space the recorded device was attached to, attached again where the objects
 * are recreated; NULL, with *ioas_id and *hwpt_id cleared, when it stays detached.
 */
static SessionIoas *restore_attachment(Session *s, const char *n, uint32_t id, uint32_t *ioas_id,
                                       uint32_t *hwpt_id, const SessionRestoreConfig *rc) {
        Error be = ERROR_INIT;
        SessionIoas *ioas;
        uint32_t pt = *ioas_id;

        if (*ioas_id == 0)
                return NULL;
        ioas = session_find_ioas(s, *ioas_id);
        if (!ioas) {
                DROP(s, rc, "device %s was attached to address space %" PRIu32
                     ", which is gone; it stays detached", n, *ioas_id);
                *ioas_id = *hwpt_id = 0;
                return NULL;
        }
        if (!rc->prepare_id)
                return ioas;
        if (ioas->dirty_tracking && !session_state_restore_dirty_page_table(s, n, id, ioas, *hwpt_id, &pt, rc)) {
                *ioas_id = *hwpt_id = 0;
                return NULL;
        }
        if (!ioas->dirty_tracking)
                rc->prepare_id(s->ctx, *hwpt_id);
        if (OPS(s)->device_attach(s->ctx, id, BACKEND_NO_PASID, &pt, &be) < 0) {
                DROP(s, rc, "device %s could not be attached to address space "
                     "%" PRIu32 " again: %s; it stays detached",
                     n, *ioas_id, error_message(&be));
                *ioas_id = *hwpt_id = 0;
                return NULL;
        }
        *hwpt_id = pt;
        return ioas;
}

static int restore_device(Session *s, json_object *j, const SessionRestoreConfig *rc) {
        _cleanup_free_ char *name = NULL;
        const char *n;
        Error be = ERROR_INIT;
        uint32_t id, ioas_id = 0, hwpt_id = 0;
        HwInfo info = {};
        SessionDevice *devs;
        SessionIoas *ioas;
        int r;

        if (json_util_get_u32(j, "id", 0, &id, NULL) < 0 ||
            json_util_get_string(j, "name", 0, &n, NULL) < 0 ||
            json_util_get_u32(j, "ioasId", JSON_UTIL_OPTIONAL, &ioas_id, NULL) < 0 ||
            json_util_get_u32(j, "hwptId", JSON_UTIL_OPTIONAL, &hwpt_id, NULL) < 0) {
                DROP(s, rc, "a device record is malformed");
                return 0;
        }
        if (session_find_device_by_name(s, n) || session_host_find_claim(s->host, n)) {
                DROP(s, rc, "device %s is recorded twice", n);
                return 0;
        }
        name = strdup(n);
        devs = realloc(s->devices, (s->n_devices + 1) * sizeof(*devs));
        if (!name || !devs)
                return -ENOMEM;
        s->devices = devs;

        if (rc->prepare_id && !restore_device_bind(s, n, id, rc))
                return 0;
        if (backend_has_feature(s->host->backend, BACKEND_FEATURE_HW_INFO) &&
            OPS(s)->hw_info(s->ctx, id, &info, &be) < 0) {
                DROP(s, rc, "device %s (id %" PRIu32 ") is not bound to the iommufd: %s", n, id,
                     error_message(&be));
                return 0;
        }
        ioas = restore_attachment(s, n, id, &ioas_id, &hwpt_id, rc);
        r = session_host_add_claim(s->host, n, s);
        if (r < 0)
                return r;
        if (ioas)
                ioas->n_attached++;
        s->devices[s->n_devices++] = (SessionDevice){
                .id = id,
                .name = TAKE_PTR(name),
                .ioas_id = ioas_id,
                .hwpt_id = hwpt_id,
                .pasid_bits = info.max_pasid_log2,
                .capabilities = info.capabilities,
        };
        session_charge_held(s, SESSION_RESOURCE_DEVICES, 1);
        session_device_notify(s, SESSION_DEVICE_BOUND, &s->devices[s->n_devices - 1]);
        return 0;
}

static int hex_to_bytes(const char *hex, uint8_t *buf, size_t size, size_t *ret_len) {
        size_t n = strlen(hex);

        if (n == 0 || n % 2 != 0 || n / 2 > size)
                return -EINVAL;
        for (size_t i = 0; i < n / 2; i++) {
                char pair[3] = { hex[2 * i], hex[2 * i + 1], '\0' };
                char *end;

                if (!isxdigit((unsigned char)pair[0]) || !isxdigit((unsigned char)pair[1]))
                        return -EINVAL;
                buf[i] = (uint8_t)strtoul(pair, &end, 16);
        }
        *ret_len = n / 2;
        return 0;
}

/* The session's fault queue: recreated under its id (sim), or the adopted one (kernel). */
static int restore_faults(Session *s, json_object *state, const SessionRestoreConfig *rc) {
        Error be = ERROR_INIT;
        uint32_t id, got;
        int fd = -EBADF, r;

        if (!json_object_object_get_ex(state, "faultQueue", NULL))
                return 0;
        if (json_util_get_u32(state, "faultQueue", 0, &id, NULL) < 0 || id == 0) {
                DROP(s, rc, "the fault queue record is malformed");
                return 0;
        }
        if (!s->host->faults) {
                DROP(s, rc, "fault queue %" PRIu32 " has no fault router to read it", id);
                return 0;
        }
        if (rc->prepare_id) {
                rc->prepare_id(s->ctx, id);
                r = OPS(s)->fault_queue_alloc(s->ctx, &got, &fd, &be);
                if (r < 0) {
                        DROP(s, rc, "fault queue %" PRIu32 " could not be recreated: %s", id,
                             error_message(&be));
                        return 0;
                }
                if (got != id) {
                        (void)OPS(s)->destroy(s->ctx, got, NULL);
                        DROP(s, rc, "fault queue %" PRIu32 " came back as %" PRIu32, id, got);
                        return 0;
                }
        } else {
                fd = rc->fault_fd ? rc->fault_fd(s->ctx, id) : -ENOENT;
                if (fd < 0) {
                        DROP(s, rc, "fault queue %" PRIu32 " is not in the fd store", id);
                        return 0;
                }
        }
        r = fault_stream_new(&s->faults, s->host->faults, s->ctx, id, fd,
                             s->quotas.fault_queue_depth,
                             policy_limits(s->host->policy)->fault_response_timeout_ms);
        if (r < 0)
                return r;
        fault_stream_set_userdata(s->faults, s);
        return 0;
}

/* Best effort: what an adopted PASID record left in the iommufd goes. */
static void discard_pasid(Session *s, const SessionPasid *p) {
        (void)OPS(s)->device_detach(s->ctx, p->device_id, p->pasid, NULL);
        if (p->hwpt_id != 0)
                (void)OPS(s)->destroy(s->ctx, p->hwpt_id, NULL);
        if (p->parent_id != 0)
                (void)OPS(s)->destroy(s->ctx, p->parent_id, NULL);
}

/* The record's stage1Type is kept as read: restore_pasid() clears it when there is no table. */
static bool pasid_record_parse(json_object *j, SessionPasid *p) {
        const char *hex = NULL;

        return json_util_get_u32(j, "deviceId", 0, &p->device_id, NULL) >= 0 &&
               json_util_get_u32(j, "pasid", 0, &p->pasid, NULL) >= 0 &&
               json_util_get_u32(j, "ioasId", 0, &p->ioas_id, NULL) >= 0 &&
               json_util_get_u32(j, "hwptId", 0, &p->hwpt_id, NULL) >= 0 && p->hwpt_id != 0 &&
               json_util_get_u32(j, "parentId", JSON_UTIL_OPTIONAL, &p->parent_id, NULL) >= 0 &&
               json_util_get_bool(j, "faults", JSON_UTIL_OPTIONAL, &p->faults, NULL) >= 0 &&
               json_util_get_u32(j, "stage1Type", JSON_UTIL_OPTIONAL, &p->stage1_type,
                                 NULL) >= 0 &&
               json_util_get_string(j, "stage1", JSON_UTIL_OPTIONAL, &hex, NULL) >= 0 &&
               !(hex && hex_to_bytes(hex, p->stage1, sizeof(p->stage1), &p->stage1_len) < 0) &&
               (p->parent_id != 0) == (hex != NULL);
}

/* Whether what the PASID was bound to came back; an adopted bind that cannot stay goes. */
static bool pasid_record_usable(Session *s, const SessionPasid *p, const SessionRestoreConfig *rc) {
        bool adopted = !rc->prepare_id;

        if (!session_find_device(s, p->device_id)) {
                DROP(s, rc, "PASID %" PRIu32 " of device %" PRIu32 " was bound to a device that "
                     "did not come back", p->pasid, p->device_id);
                return false;
        }
        if (!session_find_ioas(s, p->ioas_id)) {
                if (adopted)
                        discard_pasid(s, p);
                DROP(s, rc, "PASID %" PRIu32 " of device %" PRIu32 " was bound to address space "
                     "%" PRIu32 ", which did not come back", p->pasid, p->device_id, p->ioas_id);
                return false;
        }
        if (session_host_pasid_holder(s->host, p->pasid)) {
                if (adopted)
                        discard_pasid(s, p);
                DROP(s, rc, "PASID %" PRIu32 " is recorded twice", p->pasid);
                return false;
        }
        if (p->faults && !s->faults) {
                /* A page table whose faults nobody reads would leave the device waiting. */
                if (adopted)
                        discard_pasid(s, p);
                DROP(s, rc, "PASID %" PRIu32 " of device %" PRIu32 " delivers faults to a queue "
                     "that did not come back; unbound", p->pasid, p->device_id);
                return false;
        }
        return true;
}

/* Simulated backend: the nesting parent and the PASID's page table, under their recorded ids. */
static bool pasid_record_recreate(Session *s, const SessionPasid *p,
                                  const SessionRestoreConfig *rc) {
        Error be = ERROR_INIT;
        uint32_t got;
        int r;

        if (p->parent_id != 0) {
                HwptAllocArgs pa = { .flags = BACKEND_HWPT_NEST_PARENT, .dev_id = p->device_id,
                                     .pt_id = p->ioas_id };

                rc->prepare_id(s->ctx, p->parent_id);
                r = OPS(s)->hwpt_alloc(s->ctx, &pa, &got, &be);
                if (r < 0 || got != p->parent_id) {
                        if (r >= 0)
                                (void)OPS(s)->destroy(s->ctx, got, NULL);
                        DROP(s, rc, "the nesting parent %" PRIu32 " of PASID %" PRIu32
                             " could not be recreated", p->parent_id, p->pasid);
                        return false;
                }
        }
        HwptAllocArgs ha = {
                .flags = BACKEND_HWPT_PASID | (p->faults ? BACKEND_HWPT_FAULT_ID_VALID : 0),
                .dev_id = p->device_id,
                .pt_id = p->parent_id != 0 ? p->parent_id : p->ioas_id,
                .data_type = p->stage1_type,
                .data = p->stage1_len > 0 ? p->stage1 : NULL,
                .data_len = (uint32_t)p->stage1_len,
                .fault_id = p->faults ? fault_stream_fault_id(s->faults) : 0,
        };
        rc->prepare_id(s->ctx, p->hwpt_id);
        r = OPS(s)->hwpt_alloc(s->ctx, &ha, &got, &be);
        if (r < 0 || got != p->hwpt_id) {
                if (r >= 0)
                        (void)OPS(s)->destroy(s->ctx, got, NULL);
                if (p->parent_id != 0)
                        (void)OPS(s)->destroy(s->ctx, p->parent_id, NULL);
                DROP(s, rc, "the page table %" PRIu32 " of PASID %" PRIu32 " could not "
                     "be recreated%s%s", p->hwpt_id, p->pasid, r < 0 ? ": " : "",
                     r < 0 ? error_message(&be) : "");
                return false;
        }
        return true;
}

/*
 * Attaches the recorded page table to the PASID again.  Adopted, that is a replace with
 * itself, which succeeds exactly when the PASID, the table and the device are still what
 * was recorded.
 */
static bool pasid_record_attach(Session *s, const SessionPasid *p,
                                const SessionRestoreConfig *rc) {
        Error be = ERROR_INIT;
        uint32_t pt = p->hwpt_id;
        int r;

        r = OPS(s)->device_attach(s->ctx, p->device_id, p->pasid, &pt, &be);
        if (r >= 0 && pt == p->hwpt_id)
                return true;
        if (r >= 0 || !rc->prepare_id)
                (void)OPS(s)->device_detach(s->ctx, p->device_id, p->pasid, NULL);
        (void)OPS(s)->destroy(s->ctx, p->hwpt_id, NULL);
        if (p->parent_id != 0)
                (void)OPS(s)->destroy(s->ctx, p->parent_id, NULL);
        DROP(s, rc, "PASID %" PRIu32 " of device %" PRIu32 " could not be attached to "
             "page table %" PRIu32 " again%s%s", p->pasid, p->device_id, p->hwpt_id,
             r < 0 ? ": " : "", r < 0 ? error_message(&be) : "");
        return false;
}

static int restore_pasid(Session *s, json_object *j, const SessionRestoreConfig *rc) {
        SessionPasid p = { .stage1_type = BACKEND_HWPT_DATA_NONE }, *arr;

        if (!pasid_record_parse(j, &p)) {
                DROP(s, rc, "a PASID record is malformed");
                return 0;
        }
        if (!pasid_record_usable(s, &p, rc))
                return 0;
        if (rc->prepare_id && !pasid_record_recreate(s, &p, rc))
                return 0;
        if (!pasid_record_attach(s, &p, rc))
                return 0;

        arr = realloc(s->pasids, (s->n_pasids + 1) * sizeof(*arr));
        if (!arr)
                return -ENOMEM;
        s->pasids = arr;
        if (p.stage1_len == 0)
                p.stage1_type = BACKEND_HWPT_DATA_NONE;
        s->pasids[s->n_pasids++] = p;
        session_charge_held(s, SESSION_RESOURCE_PASIDS, 1);
        return 0;
}

/* The devices the client took as fds, claimed again unless gone or held by another session. */
static int restore_handed_over(Session *s, json_object *state, const SessionRestoreConfig *rc) {
        json_object *a = NULL;
        const TopoDevice *d;
        char **v;

        if (json_util_get_array(state, "handedOver", JSON_UTIL_OPTIONAL, &a, NULL) < 0) {
                DROP(s, rc, "the records of devices handed over are malformed");
                return 0;
        }
        for (size_t i = 0; a && i < json_object_array_length(a); i++) {
                const char *n = json_object_get_string(json_object_array_get_idx(a, i));

                d = n ? topology_find_device(s->host->topology, n) : NULL;
                if (!d || session_host_device_holder(s->host, d, s) ||
                    session_find_device_by_name(s, n) || session_handoff_find(s, n)) {
                        DROP(s, rc, "device %s, handed over as fds, is gone, held or recorded "
                             "twice", n ?: "(malformed)");
                        continue;
                }
                v = reallocarray(s->handed_over, s->n_handed_over + 1, sizeof(*v));
                if (!v)
                        return -ENOMEM;
                s->handed_over = v;
                v[s->n_handed_over] = strdup(n);
                if (!v[s->n_handed_over] || session_host_add_claim(s->host, n, s) < 0) {
                        free(v[s->n_handed_over]);
                        return -ENOMEM;
                }
                s->n_handed_over++;
                session_charge_held(s, SESSION_RESOURCE_DEVICES, 1);
        }
        return 0;
}

int session_restore(Session **ret, SessionHost *host, PeerCreds *creds, BackendContext *ctx,
                    json_object *state, const SessionRestoreConfig *rc) {
        _cleanup_(session_freep) Session *s = NULL;
        json_object *devs = NULL, *ioas = NULL, *pasids = NULL;
        uint32_t scratch = 0;
        int r = 0;

        assert_return(ret, -EINVAL);
        assert_return(host && host->backend && host->policy, -EINVAL);
        assert_return(creds && ctx && state && rc, -EINVAL);

        s = session_alloc(host, creds);
        if (!s) {
                backend_context_free(ctx);
                peer_creds_free(creds);
                return -ENOMEM;
        }
        s->ctx = ctx;
        session_link(s);
        s->delegated = json_object_get_boolean(json_object_object_get(state, "delegated"));
        /* A restored session is a session like any other to whoever lists or watches them. */
        if (host->on_session)
                host->on_session(s, SESSION_OPENED, host->on_session_userdata);

        if (json_util_get_array(state, "addressSpaces", 0, &ioas, NULL) < 0 ||
            json_util_get_array(state, "devices", 0, &devs, NULL) < 0) {
                DROP(s, rc, "the session record is malformed");
                goto done;
        }
        /* Adopted kernel objects are checked by copying each area into a scratch IOAS:
         * IOMMU_IOAS_COPY fails with ENOENT unless the range is one mapped area. */
        if (!rc->prepare_id && json_object_array_length(ioas) > 0 &&
            OPS(s)->ioas_alloc(s->ctx, &scratch, NULL) < 0)
                scratch = 0;
        for (size_t i = 0; i < json_object_array_length(ioas) && r >= 0; i++)
                r = restore_ioas(s, json_object_array_get_idx(ioas, i), rc, scratch);
        if (scratch != 0)
                (void)OPS(s)->destroy(s->ctx, scratch, NULL);
        for (size_t i = 0; i < json_object_array_length(devs) && r >= 0; i++)
                r = restore_device(s, json_object_array_get_idx(devs, i), rc);
        if (r < 0)
                return r;
        /* State version 2: the fault queue and the PASID binds (absent in version 1). */
        r = restore_faults(s, state, rc);
        if (r < 0)
                return r;
        if (json_util_get_array(state, "pasids", JSON_UTIL_OPTIONAL, &pasids, NULL) < 0) {
                DROP(s, rc, "the PASID records are malformed");
                pasids = NULL;
        }
        for (size_t i = 0; pasids && i < json_object_array_length(pasids) && r >= 0; i++)
                r = restore_pasid(s, json_object_array_get_idx(pasids, i), rc);
        if (r >= 0)
                r = restore_handed_over(s, state, rc);
        if (r < 0)
                return r;
done:
        *ret = TAKE_PTR(s);
        return 0;
}
