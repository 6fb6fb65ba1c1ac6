/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* OpenDevices and ReleaseDevices: devices handed over as fds. */

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "fdlist.h"
#include "iommud/iommud-handoff.h"
#include "json-util.h"
#include "libiommud-internal.h"
#include "macros.h"

struct IommudHandoff {
        json_object *reply; /* the names point into it */
        int iommufd;
        IommudHandedDevice *devices;
        size_t n_devices;
};

_public_ IommudHandoff *iommud_handoff_free(IommudHandoff *h) {
        if (!h)
                return NULL;
        safe_close(h->iommufd);
        for (size_t i = 0; i < h->n_devices; i++)
                safe_close(h->devices[i].fd);
        free(h->devices);
        json_object_put(h->reply);
        free(h);
        return NULL;
}

DEFINE_TRIVIAL_CLEANUP_FUNC(IommudHandoff *, iommud_handoff_free);

static json_object *names_json(const char *const *devices, size_t n) {
        json_object *a = json_object_new_array();

        for (size_t i = 0; a && i < n; i++)
                if (json_object_array_add(a, json_object_new_string(devices[i])) < 0) {
                        json_object_put(a);
                        return NULL;
                }
        return a;
}

/* The fd at index of the reply's fds, taken from them. */
static int take_reply_fd(FdList *fds, uint32_t index, Error *e) {
        int fd = fds ? fdlist_take(fds, index) : -ENXIO;

        if (fd < 0)
                return error_set(e, -EINVAL, "fd %" PRIu32 " was named but not sent", index);
        return fd;
}

/* One entry of "devices": its strings point into the reply. */
static int parse_device(json_object *o, FdList *fds, IommudHandedDevice *d, Error *e) {
        uint32_t index;
        int r;

        if ((r = json_util_get_string(o, "device", 0, &d->name, e)) < 0 ||
            (r = json_util_get_u32(o, "fd", 0, &index, e)) < 0 ||
            (r = json_util_get_string(o, "cdev", JSON_UTIL_OPTIONAL, &d->cdev, e)) < 0 ||
            (r = json_util_get_u32(o, "group", JSON_UTIL_OPTIONAL, &d->group, e)) < 0)
                return r;
        d->has_group = iommud_present(o, "group");
        d->fd = take_reply_fd(fds, index, e);
        return d->fd < 0 ? d->fd : 0;
}

static int parse_handoff(IommudHandoff *h, FdList *fds, Error *e) {
        json_object *devs = NULL, *o;
        uint32_t index;
        int r;

        if ((r = json_util_get_u32(h->reply, "iommufd", 0, &index, e)) < 0 ||
            (r = json_util_get_array(h->reply, "devices", 0, &devs, e)) < 0)
                return r;
        h->iommufd = take_reply_fd(fds, index, e);
        if (h->iommufd < 0)
                return h->iommufd;
        h->devices = calloc(json_object_array_length(devs) ?: 1, sizeof(*h->devices));
        if (!h->devices)
                return -ENOMEM;
        for (size_t i = 0; i < json_object_array_length(devs); i++) {
                h->devices[i].fd = -EBADF;
                h->n_devices++;
                r = iommud_object_at(devs, i, "devices", &o, e);
                if (r >= 0)
                        r = parse_device(o, fds, &h->devices[i], e);
                if (r < 0)
                        return r;
        }
        return 0;
}

_public_ int iommud_open_devices(IommudClient *c, const char *const *devices, size_t n_devices,
                                 IommudHandoff **ret, IommudError *err) {
        _cleanup_json_ json_object *p = iommud_params_new();
        _cleanup_(iommud_handoff_freep) IommudHandoff *h = NULL;
        VarlinkReply reply = VARLINK_REPLY_INIT;
        Error e = ERROR_INIT;
        int r;

        if (!devices || n_devices == 0)
                return iommud_error_setf(err, -EINVAL, "no device named");
        for (size_t i = 0; i < n_devices; i++)
                if (!devices[i] || !*devices[i])
                        return iommud_error_setf(err, -EINVAL, "device %zu has no name", i);
        if (!ret)
                return iommud_error_setf(err, -EINVAL, "no place to return the handoff");
        if (!p || json_util_add(p, "devices", names_json(devices, n_devices)) < 0)
                return iommud_nomem(err);
        r = iommud_call(c, "OpenDevices", p, &reply, err);
        if (r < 0)
                return r;
        h = calloc(1, sizeof(*h));
        if (!h) {
                varlink_reply_clear(&reply);
                return iommud_nomem(err);
        }
        h->iommufd = -EBADF;
        h->reply = json_object_get(reply.parameters);
        r = parse_handoff(h, reply.fds, &e);
        varlink_reply_clear(&reply);
        if (r == -ENOMEM)
                return iommud_nomem(err);
        if (r < 0)
                return iommud_bad_reply(err, "OpenDevices", &e);
        *ret = TAKE_PTR(h);
        return 0;
}

_public_ int iommud_handoff_get_iommufd(const IommudHandoff *h) {
        return h ? h->iommufd : -EINVAL;
}

_public_ int iommud_handoff_take_iommufd(IommudHandoff *h) {
        return h ? TAKE_FD(h->iommufd) : -EINVAL;
}

_public_ size_t iommud_handoff_get_n_devices(const IommudHandoff *h) {
        return h ? h->n_devices : 0;
}

_public_ const IommudHandedDevice *iommud_handoff_get_device(const IommudHandoff *h, size_t i) {
        return h && i < h->n_devices ? &h->devices[i] : NULL;
}

_public_ int iommud_handoff_take_device_fd(IommudHandoff *h, size_t i) {
        if (!h || i >= h->n_devices)
                return -EINVAL;
        return TAKE_FD(h->devices[i].fd);
}

_public_ int iommud_release_devices(IommudClient *c, const char *const *devices,
                                    size_t n_devices, IommudError *err) {
        _cleanup_json_ json_object *p = iommud_params_new();

        if (!devices && n_devices > 0)
                return iommud_error_setf(err, -EINVAL, "no device names given");
        if (!p || (n_devices > 0 &&
                   json_util_add(p, "devices", names_json(devices, n_devices)) < 0))
                return iommud_nomem(err);
        return iommud_call_void(c, "ReleaseDevices", p, err);
}
