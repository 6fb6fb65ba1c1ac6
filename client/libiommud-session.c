/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* The session: its principal, usage and token, joining it, and delegation. */

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "iommud/iommud.h"
#include "fdlist.h"
#include "json-util.h"
#include "libiommud-internal.h"
#include "macros.h"

/* ---------------------------------------------------------------- session */

_public_ int iommud_delegate(IommudClient *c, int *ret_fd, IommudError *err) {
        VarlinkReply reply = VARLINK_REPLY_INIT;
        Error e = ERROR_INIT;
        uint32_t index;
        int r, fd;

        if (!ret_fd)
                return iommud_error_setf(err, -EINVAL, "no place to return the iommufd");
        r = iommud_call(c, "Delegate", NULL, &reply, err);
        if (r < 0)
                return r;
        r = json_util_get_u32(reply.parameters, "iommufd", 0, &index, &e);
        if (r < 0) {
                varlink_reply_clear(&reply);
                return iommud_bad_reply(err, "Delegate", &e);
        }
        fd = reply.fds ? fdlist_take(reply.fds, index) : -ENXIO;
        varlink_reply_clear(&reply);
        if (fd < 0)
                return iommud_error_setf(err, -EBADMSG,
                                         "iommud's reply to Delegate names fd %" PRIu32
                                         " but did not send it", index);
        *ret_fd = fd;
        return 0;
}

struct IommudSession {
        json_object *reply;
        uint32_t uid, gid, pid;
        const char *unit;
        const char *token;
        IommudUsage *usage;
        size_t n_usage;
        IommudFaultCounters faults;
};

_public_ IommudSession *iommud_session_free(IommudSession *s) {
        if (!s)
                return NULL;
        free(s->usage);
        json_object_put(s->reply);
        free(s);
        return NULL;
}

static int parse_session(IommudSession *s, Error *e) {
        json_object *principal, *usage, *faults = NULL;
        size_t n;
        int r;

        if ((r = json_util_get_object(s->reply, "principal", 0, &principal, e)) < 0 ||
            (r = json_util_get_u32(principal, "uid", 0, &s->uid, e)) < 0 ||
            (r = json_util_get_u32(principal, "gid", 0, &s->gid, e)) < 0 ||
            (r = json_util_get_u32(principal, "pid", JSON_UTIL_OPTIONAL, &s->pid, e)) < 0 ||
            (r = json_util_get_string(principal, "unit", JSON_UTIL_OPTIONAL, &s->unit, e)) < 0 ||
            (r = json_util_get_string(s->reply, "token", 0, &s->token, e)) < 0 ||
            (r = json_util_get_array(s->reply, "usage", JSON_UTIL_OPTIONAL, &usage, e)) < 0 ||
            (r = json_util_get_object(s->reply, "faults", JSON_UTIL_OPTIONAL, &faults, e)) < 0)
                return r;
        if (faults &&
            ((r = json_util_get_u64(faults, "delivered", 0, &s->faults.delivered, e)) < 0 ||
             (r = json_util_get_u64(faults, "answered", 0, &s->faults.answered, e)) < 0 ||
             (r = json_util_get_u64(faults, "timedOut", 0, &s->faults.timed_out, e)) < 0 ||
             (r = json_util_get_u64(faults, "dropped", 0, &s->faults.dropped, e)) < 0 ||
             (r = json_util_get_u64(faults, "pending", 0, &s->faults.pending, e)) < 0))
                return error_prefix(e, "faults") ?: r;
        n = usage ? json_object_array_length(usage) : 0;
        if (n > 0 && !(s->usage = calloc(n, sizeof(IommudUsage))))
                return -ENOMEM;
        s->n_usage = n;
        for (size_t i = 0; i < n; i++) {
                IommudUsage *u = &s->usage[i];
                json_object *o;

                u->limit = UINT64_MAX;
                if ((r = iommud_object_at(usage, i, "usage", &o, e)) < 0 ||
                    (r = json_util_get_string(o, "resource", 0, &u->resource, e)) < 0 ||
                    (r = json_util_get_u64(o, "used", 0, &u->used, e)) < 0 ||
                    (r = json_util_get_u64(o, "limit", JSON_UTIL_OPTIONAL, &u->limit, e)) < 0 ||
                    (r = json_util_get_u64(o, "principalUsed", JSON_UTIL_OPTIONAL,
                                           &u->principal_used, e)) < 0)
                        return r;
                u->has_principal_used = iommud_present(o, "principalUsed");
                u->has_limit = iommud_present(o, "limit");
                if (!u->has_limit)
                        u->limit = 0;
        }
        return 0;
}

_public_ int iommud_get_session(IommudClient *c, IommudSession **ret, IommudError *err) {
        _cleanup_(iommud_session_freep) IommudSession *s = NULL;
        VarlinkReply reply = VARLINK_REPLY_INIT;
        Error e = ERROR_INIT;
        int r;

        if (!ret)
                return iommud_error_setf(err, -EINVAL, "no place to return the session");
        r = iommud_call(c, "GetSession", NULL, &reply, err);
        if (r < 0)
                return r;
        s = calloc(1, sizeof(*s));
        if (!s) {
                varlink_reply_clear(&reply);
                return iommud_nomem(err);
        }
        s->reply = json_object_get(reply.parameters);
        varlink_reply_clear(&reply);
        r = parse_session(s, &e);
        if (r == -ENOMEM)
                return iommud_nomem(err);
        if (r < 0)
                return iommud_bad_reply(err, "GetSession", &e);
        *ret = TAKE_PTR(s);
        return 0;
}

_public_ const char *iommud_session_get_principal(const IommudSession *s, uint32_t *ret_uid,
                                                  uint32_t *ret_gid, uint32_t *ret_pid) {
        if (!s)
                return NULL;
        if (ret_uid)
                *ret_uid = s->uid;
        if (ret_gid)
                *ret_gid = s->gid;
        if (ret_pid)
                *ret_pid = s->pid;
        return s->unit;
}

_public_ const IommudFaultCounters *iommud_session_get_fault_counters(const IommudSession *s) {
        return s ? &s->faults : NULL;
}

_public_ const char *iommud_session_get_token(const IommudSession *s) {
        return s ? s->token : NULL;
}

_public_ size_t iommud_session_get_n_usage(const IommudSession *s) {
        return s ? s->n_usage : 0;
}

_public_ const IommudUsage *iommud_session_get_usage(const IommudSession *s, size_t i) {
        return s && i < s->n_usage ? &s->usage[i] : NULL;
}

_public_ int iommud_join_session(IommudClient *c, const char *token, IommudError *err) {
        _cleanup_json_ json_object *p = iommud_params_new();

        if (!token)
                return iommud_error_setf(err, -EINVAL, "no session token given");
        if (!p || iommud_add_str(p, "token", token) < 0)
                return iommud_nomem(err);
        return iommud_call_void(c, "JoinSession", p, err);
}
