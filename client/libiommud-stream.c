/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* Fault and event streams: each on a connection of its own, joined to the caller's session. */

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "iommud/iommud.h"
#include "json-util.h"
#include "libiommud-internal.h"
#include "macros.h"
#include "varlink-client.h"

/* ----------------------------------------------------------------- faults */

_public_ int iommud_respond_fault(IommudClient *c, uint64_t cookie, IommudFaultCode code,
                                  IommudError *err) {
        _cleanup_json_ json_object *p = iommud_params_new();

        if (code != IOMMUD_FAULT_SUCCESS && code != IOMMUD_FAULT_INVALID)
                return iommud_error_setf(err, -EINVAL, "unknown fault response code %d", (int)code);
        if (!p || iommud_add_u64(p, "cookie", cookie) < 0 ||
            iommud_add_str(p, "code", code == IOMMUD_FAULT_SUCCESS ? "success" : "invalid") < 0)
                return iommud_nomem(err);
        return iommud_call_void(c, "RespondFault", p, err);
}

struct IommudFaultStream {
        IommudClient *conn;      /* its own connection, joined to the session */
        bool ended;
};

_public_ IommudFaultStream *iommud_fault_stream_free(IommudFaultStream *s) {
        if (!s)
                return NULL;
        iommud_client_unref(s->conn);
        free(s);
        return NULL;
}
DEFINE_TRIVIAL_CLEANUP_FUNC(IommudFaultStream *, iommud_fault_stream_free);

static int open_stream(IommudClient *c, const char *method, json_object *p, IommudClient **ret,
                       IommudError *err);

_public_ int iommud_fault_stream_new(IommudFaultStream **ret, IommudClient *c,
                                     const uint32_t *device_id, IommudError *err) {
        _cleanup_(iommud_fault_stream_freep) IommudFaultStream *s = NULL;
        _cleanup_json_ json_object *p = iommud_params_new();
        int r;

        if (!ret || !c)
                return iommud_error_setf(err, -EINVAL, "no client given for the fault stream");
        if (!iommud_client_get_path(c))
                return iommud_error_setf(err, -EINVAL,
                                         "the client was made from an fd, so the socket to open "
                                         "the fault stream on is unknown");
        if (!p || (device_id && iommud_add_u64(p, "deviceId", *device_id) < 0))
                return iommud_nomem(err);
        s = calloc(1, sizeof(*s));
        if (!s)
                return iommud_nomem(err);
        r = open_stream(c, IOMMUD_BROKER_INTERFACE ".WatchFaults", p, &s->conn, err);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(s);
        return 0;
}

_public_ int iommud_fault_stream_get_fd(const IommudFaultStream *s) {
        return s ? iommud_client_get_fd(s->conn) : -EBADF;
}

static int parse_fault(json_object *o, IommudFault *f, Error *e) {
        int r;

        if ((r = json_util_get_u64(o, "cookie", 0, &f->cookie, e)) < 0 ||
            (r = json_util_get_u32(o, "deviceId", 0, &f->device_id, e)) < 0 ||
            (r = json_util_get_u64(o, "address", 0, &f->address, e)) < 0 ||
            (r = json_util_get_u64(o, "length", JSON_UTIL_OPTIONAL, &f->length, e)) < 0 ||
            (r = json_util_get_bool(o, "read", JSON_UTIL_OPTIONAL, &f->read, e)) < 0 ||
            (r = json_util_get_bool(o, "write", JSON_UTIL_OPTIONAL, &f->write, e)) < 0 ||
            (r = json_util_get_bool(o, "exec", JSON_UTIL_OPTIONAL, &f->exec, e)) < 0 ||
            (r = json_util_get_bool(o, "privileged", JSON_UTIL_OPTIONAL, &f->privileged, e)) < 0 ||
            (r = json_util_get_bool(o, "lastPage", JSON_UTIL_OPTIONAL, &f->last_page, e)) < 0 ||
            (r = json_util_get_u32(o, "groupId", JSON_UTIL_OPTIONAL, &f->group_id, e)) < 0)
                return r;
        f->has_pasid = iommud_present(o, "pasid");
        if (f->has_pasid && (r = json_util_get_u32(o, "pasid", 0, &f->pasid, e)) < 0)
                return r;
        return 0;
}

/*
 * What every "more" stream shares: processes one reply if one is ready and
 * picks out its member "key" ("fault", "event").  Returns 0 when nothing is
 * ready, 1 with *ret_obj pointing into *reply (the caller clears it), or a
 * negative errno with err set.  *ended turns true once iommud is done with the
 * stream, whichever way.
 */
static int stream_next(IommudClient *conn, bool *ended, const char *key, const char *a_key,
                       VarlinkReply *reply, json_object **ret_obj, Error *e, IommudError *err) {
        json_object *obj = NULL;
        int r;

        if (*ended)
                return iommud_error_setf(err, -ENODATA, "the %s stream has ended", key);
        r = varlink_client_process(iommud_client_varlink(conn), reply);
        if (r < 0) {
                *ended = true;
                if (r == -ECONNRESET || r == -EPIPE)
                        return iommud_error_setf(err, -ECONNRESET,
                                                 "iommud closed the %s stream's connection", key);
                return iommud_error_setf(err, r, "reading the %s stream failed: %s", key,
                                         strerror(-r));
        }
        if (r == 0) {
                iommud_error_clear(err);
                return 0;
        }
        if (reply->error) {
                *ended = true;
                r = iommud_error_set_varlink(err, reply->error, reply->parameters);
                varlink_reply_clear(reply);
                return r;
        }
        if (!reply->continues)
                *ended = true;
        r = json_util_get_object(reply->parameters, key, JSON_UTIL_OPTIONAL, &obj, e);
        if (r >= 0 && !obj) {
                varlink_reply_clear(reply);
                if (*ended)
                        return iommud_error_setf(err, -ENODATA, "iommud ended the %s stream", key);
                return iommud_error_setf(err, -EBADMSG, "iommud sent %s stream reply without %s",
                                         a_key, a_key);
        }
        /*
         * A malformed member is reported by the caller, which knows the method:
         * *ret_obj stays NULL and e carries the error.
         */
        if (r < 0 && e->error == 0)
                e->error = r;
        *ret_obj = obj;
        return 1;
}

_public_ int iommud_fault_stream_next(IommudFaultStream *s, IommudFault **ret, IommudError *err) {
        VarlinkReply reply = VARLINK_REPLY_INIT;
        _cleanup_free_ IommudFault *f = NULL;
        json_object *fault = NULL;
        Error e = ERROR_INIT;
        int r;

        if (!s || !ret)
                return iommud_error_setf(err, -EINVAL, "no fault stream given");
        r = stream_next(s->conn, &s->ended, "fault", "a fault", &reply, &fault, &e, err);
        if (r <= 0)
                return r;
        f = calloc(1, sizeof(*f));
        if (!f) {
                varlink_reply_clear(&reply);
                return iommud_nomem(err);
        }
        r = fault ? parse_fault(fault, f, &e) : e.error;
        varlink_reply_clear(&reply);
        if (r < 0)
                return iommud_bad_reply(err, "WatchFaults", &e);
        iommud_error_clear(err);
        *ret = TAKE_PTR(f);
        return 1;
}

_public_ IommudFault *iommud_fault_free(IommudFault *f) {
        free(f);
        return NULL;
}

/* ----------------------------------------------------------------- events */

struct IommudEventStream {
        IommudClient *conn;      /* its own connection, joined to the session */
        bool ended;
};

/* What iommud_event_stream_next() hands out: the public part first, the reply it points into. */
typedef struct Event {
        IommudEvent pub;
        json_object *reply;
} Event;

_public_ IommudEventStream *iommud_event_stream_free(IommudEventStream *s) {
        if (!s)
                return NULL;
        iommud_client_unref(s->conn);
        free(s);
        return NULL;
}
DEFINE_TRIVIAL_CLEANUP_FUNC(IommudEventStream *, iommud_event_stream_free);

/* A second connection of c's session with a "more" call of method on it. */
static int open_stream(IommudClient *c, const char *method, json_object *p, IommudClient **ret,
                       IommudError *err) {
        _cleanup_(iommud_session_freep) IommudSession *session = NULL;
        IommudClient *conn = NULL;
        int r;

        r = iommud_get_session(c, &session, err);
        if (r < 0)
                return r;
        /* A stream ends with its connection; its owner opens it again after a restart. */
        r = iommud_client_new_flags(&conn, iommud_client_get_path(c), IOMMUD_CONNECT_NO_RECLAIM,
                                    err);
        if (r < 0)
                return r;
        r = iommud_join_session(conn, iommud_session_get_token(session), err);
        if (r >= 0) {
                r = varlink_client_send(iommud_client_varlink(conn), method, p, NULL, 0,
                                        VARLINK_CLIENT_MORE);
                if (r < 0)
                        r = iommud_error_setf(err, r, "cannot start %s: %s", method,
                                              strerror(-r));
        }
        if (r < 0) {
                iommud_client_unref(conn);
                return r;
        }
        *ret = conn;
        return 0;
}

_public_ int iommud_watch_events(IommudEventStream **ret, IommudClient *c, IommudError *err) {
        _cleanup_(iommud_event_stream_freep) IommudEventStream *s = NULL;
        int r;

        if (!ret || !c)
                return iommud_error_setf(err, -EINVAL, "no client given for the event stream");
        if (!iommud_client_get_path(c))
                return iommud_error_setf(err, -EINVAL,
                                         "the client was made from an fd, so the socket to open "
                                         "the event stream on is unknown");
        s = calloc(1, sizeof(*s));
        if (!s)
                return iommud_nomem(err);
        r = open_stream(c, IOMMUD_BROKER_INTERFACE ".WatchEvents", NULL, &s->conn, err);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(s);
        return 0;
}

_public_ int iommud_event_stream_get_fd(const IommudEventStream *s) {
        return s ? iommud_client_get_fd(s->conn) : -EBADF;
}

static int parse_event(json_object *o, IommudEvent *ev, Error *e) {
        int r;

        if ((r = json_util_get_string(o, "kind", 0, &ev->kind, e)) < 0 ||
            (r = json_util_get_string(o, "device", 0, &ev->device, e)) < 0 ||
            (r = json_util_get_string(o, "reason", JSON_UTIL_OPTIONAL, &ev->reason, e)) < 0)
                return r;
        ev->has_device_id = iommud_present(o, "deviceId");
        if (ev->has_device_id && (r = json_util_get_u32(o, "deviceId", 0, &ev->device_id, e)) < 0)
                return r;
        ev->deadline = 0;
        return json_util_get_u64(o, "deadline", JSON_UTIL_OPTIONAL, &ev->deadline, e);
}

_public_ int iommud_event_stream_next(IommudEventStream *s, IommudEvent **ret, IommudError *err) {
        VarlinkReply reply = VARLINK_REPLY_INIT;
        json_object *event = NULL;
        Error e = ERROR_INIT;
        Event *ev;
        int r;

        if (!s || !ret)
                return iommud_error_setf(err, -EINVAL, "no event stream given");
        r = stream_next(s->conn, &s->ended, "event", "an event", &reply, &event, &e, err);
        if (r <= 0)
                return r;
        ev = calloc(1, sizeof(*ev));
        if (!ev) {
                varlink_reply_clear(&reply);
                return iommud_nomem(err);
        }
        ev->reply = json_object_get(reply.parameters);
        varlink_reply_clear(&reply);
        r = event ? parse_event(event, &ev->pub, &e) : e.error;
        if (r < 0) {
                iommud_event_free(&ev->pub);
                return iommud_bad_reply(err, "WatchEvents", &e);
        }
        iommud_error_clear(err);
        *ret = &ev->pub;
        return 1;
}

_public_ IommudEvent *iommud_event_free(IommudEvent *ev) {
        Event *e = (Event *)ev;

        if (!e)
                return NULL;
        json_object_put(e->reply);
        free(e);
        return NULL;
}

