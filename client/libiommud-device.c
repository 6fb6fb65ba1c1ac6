/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* AttachDevice and DetachDevice. */

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "iommud/iommud.h"
#include "json-util.h"
#include "libiommud-internal.h"
#include "macros.h"

/* ---------------------------------------------------------------- devices */

/* The public struct comes first so that the library can hand out its address. */
typedef struct Attachment {
        IommudAttachment pub;
        json_object *reply;
} Attachment;

_public_ IommudAttachment *iommud_attachment_free(IommudAttachment *a) {
        Attachment *x = (Attachment *)a;

        if (!x)
                return NULL;
        free((void *)x->pub.capabilities);
        json_object_put(x->reply);
        free(x);
        return NULL;
}

static int attach_device(IommudClient *c, json_object *p, const int *fds, size_t n_fds,
                         IommudAttachment **ret, IommudError *err) {
        VarlinkReply reply = VARLINK_REPLY_INIT;
        json_object *caps = NULL;
        Error e = ERROR_INIT;
        Attachment *a;
        int r;

        r = iommud_call_fds(c, "AttachDevice", p, fds, n_fds, &reply, err);
        if (r < 0)
                return r;
        a = calloc(1, sizeof(*a));
        if (!a) {
                varlink_reply_clear(&reply);
                return iommud_nomem(err);
        }
        a->reply = json_object_get(reply.parameters);
        varlink_reply_clear(&reply);
        if ((r = json_util_get_u32(a->reply, "deviceId", 0, &a->pub.device_id, &e)) < 0 ||
            (r = json_util_get_string(a->reply, "bdf", 0, &a->pub.bdf, &e)) < 0 ||
            (r = json_util_get_u32(a->reply, "group", 0, &a->pub.group, &e)) < 0 ||
            (r = json_util_get_u32(a->reply, "pasidBits", JSON_UTIL_OPTIONAL, &a->pub.pasid_bits,
                                   &e)) < 0 ||
            (r = json_util_get_array(a->reply, "capabilities", JSON_UTIL_OPTIONAL, &caps, &e)) <
                    0 ||
            (r = iommud_string_array(caps, (const char ***)&a->pub.capabilities,
                                     &a->pub.n_capabilities, "capabilities", &e)) < 0) {
                iommud_attachment_free(&a->pub);
                return r == -ENOMEM ? iommud_nomem(err) : iommud_bad_reply(err, "AttachDevice", &e);
        }
        *ret = &a->pub;
        return 0;
}

_public_ int iommud_attach_device_fd(IommudClient *c, int fd, IommudAttachment **ret,
                                     IommudError *err) {
        _cleanup_json_ json_object *p = iommud_params_new();

        if (fd < 0)
                return iommud_error_setf(err, -EBADF, "%d is not a file descriptor", fd);
        if (!ret)
                return iommud_error_setf(err, -EINVAL, "no place to return the attachment");
        if (!p || iommud_add_u64(p, "fd", 0) < 0)
                return iommud_nomem(err);
        return attach_device(c, p, &fd, 1, ret, err);
}

_public_ int iommud_attach_device_name(IommudClient *c, const char *device,
                                       IommudAttachment **ret, IommudError *err) {
        _cleanup_json_ json_object *p = iommud_params_new();

        if (!device || !*device)
                return iommud_error_setf(err, -EINVAL, "no device name given");
        if (!ret)
                return iommud_error_setf(err, -EINVAL, "no place to return the attachment");
        if (!p || iommud_add_str(p, "device", device) < 0)
                return iommud_nomem(err);
        return attach_device(c, p, NULL, 0, ret, err);
}

_public_ int iommud_detach_device(IommudClient *c, uint32_t device_id, IommudError *err) {
        _cleanup_json_ json_object *p = iommud_params_new();

        if (!p || iommud_add_u64(p, "deviceId", device_id) < 0)
                return iommud_nomem(err);
        return iommud_call_void(c, "DetachDevice", p, err);
}

