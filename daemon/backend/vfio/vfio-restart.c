/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Restart survival of backend-vfio contexts.  The fds are the containers (one per IOAS
 * with a group in it) and the group files; the saved state is what only the backend
 * knows: object ids, each IOAS's areas and allowed ranges, which group is in which
 * container, the devices and where they are attached.
 *
 *   { "ioas":    [ { "id", "hwpt", "container": bool, "areas": [[iova, length, flags]],
 *                    "allowed": [[start, last]], "dirtyHeld": bool, "dirtyOn": bool } ],
 *     "groups":  [ { "id", "ioas", "stale": bool } ],
 *     "devices": [ { "id", "name", "group", "ioas" } ] }
 *
 * Adopted areas have no memory behind them in the new daemon (vaddr 0): the kernel keeps
 * them pinned and mapped, they can be unmapped, but not copied or replayed.
 */

#include <inttypes.h>
#include <stdio.h>

#include <json-c/json.h>

#include "assert-util.h"
#include "json-util.h"
#include "macros.h"
#include "vfio-internal.h"

int backend_vfio_context_foreach_fd(BackendContext *bc, BackendVfioFdFn fn, void *userdata) {
        VfioContext *c = (VfioContext *)bc;
        char name[32];
        int r;

        assert_return(bc && fn, -EINVAL);
        FOREACH_ARRAY(o, c->objs, c->n_objs) {
                VfioIoas *ioas = o->ptr;

                if (o->kind != VFIO_OBJ_IOAS || ioas->container < 0)
                        continue;
                snprintf(name, sizeof(name), "ioas%" PRIu32, ioas->id);
                r = fn(name, ioas->container, userdata);
                if (r < 0)
                        return r;
        }
        for (size_t i = 0; i < c->n_groups; i++) {
                snprintf(name, sizeof(name), "group%u", c->groups[i]->id);
                r = fn(name, c->groups[i]->fd, userdata);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* ---- save ---- */

static json_object *tuple(uint64_t a, uint64_t b, uint64_t c, bool three) {
        json_object *t = json_object_new_array();

        if (!t)
                return NULL;
        if (json_object_array_add(t, json_object_new_uint64(a)) < 0 ||
            json_object_array_add(t, json_object_new_uint64(b)) < 0 ||
            (three && json_object_array_add(t, json_object_new_uint64(c)) < 0)) {
                json_object_put(t);
                return NULL;
        }
        return t;
}

static json_object *save_ioas(const VfioIoas *ioas) {
        json_object *o = json_object_new_object(), *areas = json_object_new_array();
        json_object *allowed = json_object_new_array();
        bool ok = o && areas && allowed;

        for (IovaNode *n = iova_tree_first(&ioas->areas); ok && n;
             n = iova_tree_next(&ioas->areas, n))
                ok = json_object_array_add(areas, tuple(n->start, n->last - n->start + 1,
                                                        ((VfioArea *)n)->flags, true)) >= 0;
        for (size_t i = 0; ok && i < ioas->n_allowed; i++)
                ok = json_object_array_add(allowed, tuple(ioas->allowed[i].start,
                                                          ioas->allowed[i].last, 0, false)) >= 0;
        ok = ok && json_util_add(o, "id", json_object_new_uint64(ioas->id)) >= 0 &&
             json_util_add(o, "hwpt", json_object_new_uint64(ioas->hwpt_id)) >= 0 &&
             json_util_add(o, "container", json_object_new_boolean(ioas->container >= 0)) >= 0 &&
             /* The dirty-tracking domain and its logging (vfio-dirty.c). */
             json_util_add(o, "dirtyHeld", json_object_new_boolean(ioas->hwpt_held)) >= 0 &&
             json_util_add(o, "dirtyOn", json_object_new_boolean(ioas->dirty_on)) >= 0 &&
             json_util_add(o, "areas", json_object_get(areas)) >= 0 &&
             json_util_add(o, "allowed", json_object_get(allowed)) >= 0;
        json_object_put(areas);
        json_object_put(allowed);
        if (!ok) {
                json_object_put(o);
                return NULL;
        }
        return o;
}

static json_object *save_group(const VfioGroup *g) {
        json_object *o = json_object_new_object();

        if (!o || json_util_add(o, "id", json_object_new_uint64(g->id)) < 0 ||
            json_util_add(o, "ioas", json_object_new_uint64(g->ioas ? g->ioas->id : 0)) < 0 ||
            json_util_add(o, "stale", json_object_new_boolean(g->stale)) < 0) {
                json_object_put(o);
                return NULL;
        }
        return o;
}

static json_object *save_device(const VfioDevice *d) {
        json_object *o = json_object_new_object();

        if (!o || json_util_add(o, "id", json_object_new_uint64(d->id)) < 0 ||
            json_util_add(o, "name", json_object_new_string(d->name)) < 0 ||
            json_util_add(o, "group", json_object_new_uint64(d->group->id)) < 0 ||
            json_util_add(o, "ioas", json_object_new_uint64(d->ioas ? d->ioas->id : 0)) < 0) {
                json_object_put(o);
                return NULL;
        }
        return o;
}

int backend_vfio_context_save(BackendContext *bc, json_object **ret) {
        VfioContext *c = (VfioContext *)bc;
        json_object *root = json_object_new_object(), *ioas = json_object_new_array();
        json_object *groups = json_object_new_array(), *devices = json_object_new_array();
        bool ok = root && ioas && groups && devices;

        assert_return(bc && ret, -EINVAL);
        FOREACH_ARRAY(o, c->objs, c->n_objs)
                if (ok && o->kind == VFIO_OBJ_IOAS)
                        ok = json_object_array_add(ioas, save_ioas(o->ptr)) >= 0;
        for (size_t i = 0; ok && i < c->n_groups; i++)
                ok = json_object_array_add(groups, save_group(c->groups[i])) >= 0;
        for (size_t i = 0; ok && i < c->n_devices; i++)
                ok = json_object_array_add(devices, save_device(c->devices[i])) >= 0;
        ok = ok && json_util_add(root, "ioas", json_object_get(ioas)) >= 0 &&
             json_util_add(root, "groups", json_object_get(groups)) >= 0 &&
             json_util_add(root, "devices", json_object_get(devices)) >= 0;
        json_object_put(ioas);
        json_object_put(groups);
        json_object_put(devices);
        if (!ok) {
                json_object_put(root);
                return -ENOMEM;
        }
        *ret = root;
        return 0;
}

/* ---- adopt ---- */

typedef struct Adopt {
        VfioContext *c;
        BackendVfioTakeFn take;
        void *userdata;
        Error *err;
} Adopt;

static int take_fd(Adopt *a, const char *kind, unsigned id) {
        char name[32];
        int fd;

        snprintf(name, sizeof(name), "%s%u", kind, id);
        fd = a->take(name, a->userdata);
        if (fd < 0)
                return error_set(a->err, -ENOENT, "%s is not in the fd store", name);
        return fd;
}

static int u64_at(json_object *arr, size_t i, uint64_t *ret) {
        return json_util_to_u64(json_object_array_get_idx(arr, i), ret);
}

static int adopt_areas(Adopt *a, VfioIoas *ioas, json_object *areas, json_object *allowed) {
        for (size_t i = 0; i < json_object_array_length(areas); i++) {
                json_object *t = json_object_array_get_idx(areas, i);
                uint64_t iova, length, flags;

                if (u64_at(t, 0, &iova) < 0 || u64_at(t, 1, &length) < 0 ||
                    u64_at(t, 2, &flags) < 0 || length == 0)
                        return error_set(a->err, -EBADMSG, "an area of IOAS %" PRIu32
                                         " is malformed", ioas->id);
                /* No memory behind it in this daemon: vaddr 0 says so. */
                VfioPiece p = {
                        .length = length,
                        .source = iova,
                        .pages_writable = flags & BACKEND_MAP_WRITEABLE,
                };
                int r = vfio_ioas_insert(ioas, iova, (uint32_t)flags, &p, a->err);

                if (r < 0)
                        return r;
        }
        for (size_t i = 0; i < json_object_array_length(allowed); i++) {
                json_object *t = json_object_array_get_idx(allowed, i);
                IovaRange *v = reallocarray(ioas->allowed, ioas->n_allowed + 1, sizeof(*v));

                if (!v)
                        return error_set(a->err, -ENOMEM, "out of memory");
                ioas->allowed = v;
                if (u64_at(t, 0, &v[ioas->n_allowed].start) < 0 ||
                    u64_at(t, 1, &v[ioas->n_allowed].last) < 0)
                        return error_set(a->err, -EBADMSG, "an allowed range of IOAS %" PRIu32
                                         " is malformed", ioas->id);
                ioas->n_allowed++;
        }
        return 0;
}

static int adopt_ioas(Adopt *a, json_object *j) {
        json_object *areas = NULL, *allowed = NULL;
        uint32_t id, hwpt;
        bool container, held = false, on = false;
        VfioIoas *ioas;
        int r;

        if (json_util_get_u32(j, "id", 0, &id, NULL) < 0 ||
            json_util_get_u32(j, "hwpt", 0, &hwpt, NULL) < 0 ||
            json_util_get_bool(j, "container", 0, &container, NULL) < 0 ||
            json_util_get_array(j, "areas", 0, &areas, NULL) < 0 ||
            json_util_get_array(j, "allowed", 0, &allowed, NULL) < 0 ||
            json_util_get_bool(j, "dirtyHeld", JSON_UTIL_OPTIONAL, &held, NULL) < 0 ||
            json_util_get_bool(j, "dirtyOn", JSON_UTIL_OPTIONAL, &on, NULL) < 0 ||
            (held && hwpt == 0))
                return error_set(a->err, -EBADMSG, "an IOAS record is malformed");
        ioas = vfio_ioas_new();
        if (!ioas)
                return error_set(a->err, -ENOMEM, "out of memory");
        ioas->id = id;
        ioas->hwpt_held = held;
        ioas->dirty_on = held && on;
        if (vfio_obj_add_id(a->c, VFIO_OBJ_IOAS, ioas, id) < 0) {
                free(ioas);
                return error_set(a->err, -EBADMSG, "IOAS id %" PRIu32 " is recorded twice", id);
        }
        if (hwpt != 0 && vfio_obj_add_id(a->c, VFIO_OBJ_HWPT, ioas, hwpt) < 0)
                return error_set(a->err, -EBADMSG, "object id %" PRIu32 " is recorded twice", hwpt);
        ioas->hwpt_id = hwpt;
        if (container) {
                ioas->container = take_fd(a, "ioas", id);
                if (ioas->container < 0)
                        return ioas->container;
        }
        r = adopt_areas(a, ioas, areas, allowed);
        if (r >= 0 && container)
                r = vfio_container_refresh(vfio_of(a->c), ioas, a->err);
        return r;
}

static int adopt_group(Adopt *a, json_object *j) {
        uint32_t id, ioas_id;
        VfioIoas *ioas = NULL;
        bool stale;
        int fd;

        if (json_util_get_u32(j, "id", 0, &id, NULL) < 0 ||
            json_util_get_u32(j, "ioas", 0, &ioas_id, NULL) < 0 ||
            json_util_get_bool(j, "stale", 0, &stale, NULL) < 0)
                return error_set(a->err, -EBADMSG, "a group record is malformed");
        if (ioas_id != 0) {
                ioas = vfio_obj_find(a->c, ioas_id, VFIO_OBJ_IOAS);
                if (!ioas || ioas->container < 0)
                        return error_set(a->err, -EBADMSG,
                                         "group %" PRIu32 " is recorded in IOAS %" PRIu32
                                         ", which has no container", id, ioas_id);
        }
        fd = take_fd(a, "group", id);
        if (fd < 0)
                return fd;
        if (vfio_device_adopt_group(a->c, id, fd, ioas, stale) < 0)
                return error_set(a->err, -ENOMEM, "out of memory");
        return 0;
}

static int adopt_device(Adopt *a, json_object *j) {
        uint32_t id, group, ioas_id;
        VfioIoas *ioas = NULL;
        const char *name;

        if (json_util_get_u32(j, "id", 0, &id, NULL) < 0 ||
            json_util_get_string(j, "name", 0, &name, NULL) < 0 ||
            json_util_get_u32(j, "group", 0, &group, NULL) < 0 ||
            json_util_get_u32(j, "ioas", 0, &ioas_id, NULL) < 0)
                return error_set(a->err, -EBADMSG, "a device record is malformed");
        if (ioas_id != 0 && !(ioas = vfio_obj_find(a->c, ioas_id, VFIO_OBJ_IOAS)))
                return error_set(a->err, -EBADMSG, "device %s is recorded in IOAS %" PRIu32
                                 ", which is not recorded", name, ioas_id);
        if (vfio_device_adopt(a->c, id, name, group, ioas) < 0)
                return error_set(a->err, -EBADMSG,
                                 "device %s (id %" PRIu32 ") does not fit the recorded groups "
                                 "and ids", name, id);
        return 0;
}

static int adopt_each(Adopt *a, json_object *state, const char *key,
                      int (*fn)(Adopt *a, json_object *j)) {
        json_object *arr = NULL;
        int r;

        if (json_util_get_array(state, key, 0, &arr, NULL) < 0)
                return error_set(a->err, -EBADMSG, "the saved state has no \"%s\"", key);
        for (size_t i = 0; i < json_object_array_length(arr); i++) {
                r = fn(a, json_object_array_get_idx(arr, i));
                if (r < 0)
                        return r;
        }
        return 0;
}

int backend_vfio_context_adopt(Backend *b, json_object *state, BackendVfioTakeFn take,
                               void *userdata, BackendContext **ret, Error *err) {
        BackendContext *bc = NULL;
        Adopt a = { .take = take, .userdata = userdata, .err = err };
        int r;

        assert_return(backend_is_vfio(b) && state && take && ret, -EINVAL);
        r = b->ops->context_new(b, &bc, err);
        if (r < 0)
                return r;
        a.c = (VfioContext *)bc;
        r = adopt_each(&a, state, "ioas", adopt_ioas);
        if (r >= 0)
                r = adopt_each(&a, state, "groups", adopt_group);
        if (r >= 0)
                r = adopt_each(&a, state, "devices", adopt_device);
        if (r < 0) {
                /* The session goes: what it held is ended, as at any session's end. */
                backend_context_free(bc);
                return r;
        }
        *ret = bc;
        return 0;
}
