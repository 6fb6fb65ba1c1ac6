/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * org.iommud.Broker: the session itself (Delegate, GetSession, JoinSession,
 * WatchEvents).
 */

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <json-c/json.h>

#include "log.h"
#include "json-util.h"
#include "varlink-broker-internal.h"

int broker_method_delegate(VarlinkCall *call, json_object *params, VarlinkCallFlags flags,
                           void *userdata) {
        BrokerError e = BROKER_ERROR_INIT;
        int fd, r;

        REQUIRE_SESSION(call);
        r = varlink_call_dispatch(call, params, NULL, NULL);
        if (r < 0)
                return r;
        if (session_delegate(broker_call_session(call), &fd, &e) < 0)
                return broker_reply_error(call, &e);
        return broker_reply_fd(call, "iommufd", fd);
}

json_object *broker_usage_json(const SessionUsage *u) {
        json_object *o = json_object_new_object();

        if (!o)
                return NULL;
        (void)json_util_add(o, "resource", json_object_new_string(u->resource));
        (void)json_util_add(o, "used", broker_u64_node(u->used));
        if (u->per_principal)
                (void)json_util_add(o, "principalUsed", broker_u64_node(u->principal_used));
        if (u->limit != UINT64_MAX)
                (void)json_util_add(o, "limit", broker_u64_node(u->limit));
        return o;
}

int broker_method_get_session(VarlinkCall *call, json_object *params, VarlinkCallFlags flags,
                              void *userdata) {
        SessionUsage rows[SESSION_USAGE_MAX];
        BrokerSession *bs;
        SessionInfo info;
        json_object *out, *pr, *groups, *usage;
        size_t n_rows;
        int r;

        REQUIRE_SESSION(call);
        r = varlink_call_dispatch(call, params, NULL, NULL);
        if (r < 0)
                return r;
        bs = broker_call_broker_session(call);
        session_get_info(bs->session, &info);

        out = json_object_new_object();
        pr = json_object_new_object();
        groups = json_object_new_array();
        usage = json_object_new_array();
        if (!out || !pr || !groups || !usage) {
                json_object_put(out);
                json_object_put(pr);
                json_object_put(groups);
                json_object_put(usage);
                return -ENOMEM;
        }
        (void)json_util_add(pr, "uid", json_object_new_int64(info.creds->uid));
        (void)json_util_add(pr, "gid", json_object_new_int64(info.creds->gid));
        (void)json_util_add(pr, "pid", json_object_new_int64(info.creds->pid));
        for (size_t i = 0; i < info.creds->n_groups; i++)
                json_object_array_add(groups, json_object_new_int64(info.creds->groups[i]));
        (void)json_util_add(pr, "groups", groups);
        if (info.creds->unit)
                (void)json_util_add(pr, "unit", json_object_new_string(info.creds->unit));

        n_rows = session_usage_rows(&info, rows);
        for (size_t i = 0; i < n_rows; i++)
                json_object_array_add(usage, broker_usage_json(&rows[i]));

        (void)json_util_add(out, "principal", pr);
        (void)json_util_add(out, "usage", usage);
        {
                json_object *fc = json_object_new_object();

                if (fc) {
                        (void)json_util_add(fc, "delivered",
                                            broker_u64_node(info.faults.delivered));
                        (void)json_util_add(fc, "answered", broker_u64_node(info.faults.answered));
                        (void)json_util_add(fc, "timedOut", broker_u64_node(info.faults.timed_out));
                        (void)json_util_add(fc, "dropped", broker_u64_node(info.faults.dropped));
                        (void)json_util_add(fc, "pending", broker_u64_node(info.faults.pending));
                        (void)json_util_add(out, "faults", fc);
                }
        }
        (void)json_util_add(out, "token", json_object_new_string(bs->token));
        return broker_reply(call, out);
}

static BrokerSession *broker_find_token(Broker *b, const char *token) {
        for (Session *s = b->host->sessions; s; s = session_next(s)) {
                BrokerSession *bs = session_get_userdata(s);

                if (bs && streq(bs->token, token))
                        return bs;
        }
        return NULL;
}

const JsonDispatchField broker_join_session_parameters[] = {
        { "token", JSON_DISPATCH_STRING, JSON_DISPATCH_REQUIRED, 0 },
        {},
};

int broker_method_join_session(VarlinkCall *call, json_object *params, VarlinkCallFlags flags,
                               void *userdata) {
        Broker *b = userdata;
        VarlinkConnection *c = varlink_call_get_connection(call);
        BrokerSession *cur, *target;
        BrokerError e = BROKER_ERROR_INIT;
        const char *token = NULL;
        int r;

        REQUIRE_SESSION(call);
        r = varlink_call_dispatch(call, params, broker_join_session_parameters, &token);
        if (r < 0)
                return r;

        cur = broker_call_broker_session(call);
        target = broker_find_token(b, token);
        /* Another principal's token is as unknown as a made-up one. */
        if (!target || session_creds(target->session)->uid != session_creds(cur->session)->uid) {
                broker_error_set(&e, -ENOENT, BROKER_ERROR_NO_SUCH_OBJECT,
                                 "No session of this principal has that token.");
                broker_error_add_string(&e, "kind", BROKER_KIND_SESSION);
                broker_error_add_string(&e, "id", token);
                return broker_reply_error(call, &e);
        }
        if (target == cur)
                return broker_reply(call, NULL);
        if (cur->n_conns > 1 || session_n_devices(cur->session) > 0 ||
            session_n_address_spaces(cur->session) > 0) {
                broker_error_set(&e, -EBUSY, BROKER_ERROR_OBJECT_IN_USE,
                                 "This connection's session already holds devices, address "
                                 "spaces or other connections; join from a fresh connection.");
                broker_error_add_string(&e, "kind", BROKER_KIND_SESSION);
                broker_error_add_u64(&e, "id", 0);
                broker_error_add_string(&e, "reason", e.error.message);
                return broker_reply_error(call, &e);
        }
        r = broker_session_add_conn(target, c);
        if (r < 0)
                return r;
        /* The connection is counted to its principal once: it moves with it. */
        (void)session_move_connection(cur->session, target->session);
        if (target->grace) {
                /* A session that survived a restart is reclaimed: it stays. */
                event_free(target->grace);
                target->grace = NULL;
                log_info("Session of %s reclaimed after the restart.",
                         session_describe(target->session));
        }
        /* The fresh session of this connection goes; c now belongs to target. */
        for (size_t i = 0; i < cur->n_conns; i++)
                if (cur->conns[i] == c)
                        cur->conns[i] = cur->conns[--cur->n_conns];
        if (cur->n_conns == 0)
                broker_session_free(cur);
        return broker_reply(call, NULL);
}

int broker_method_watch_events(VarlinkCall *call, json_object *params, VarlinkCallFlags flags,
                               void *userdata) {
        BrokerSession *bs;
        VarlinkCall **w;
        int r;

        REQUIRE_SESSION(call);
        r = varlink_call_dispatch(call, params, NULL, NULL);
        if (r < 0)
                return r;
        if (!(flags & VARLINK_CALL_MORE))
                return varlink_call_error(call, VARLINK_ERROR_EXPECTED_MORE, NULL);
        bs = broker_call_broker_session(call);
        w = realloc(bs->event_streams, (bs->n_event_streams + 1) * sizeof(*w));
        if (!w)
                return -ENOMEM;
        bs->event_streams = w;
        bs->event_streams[bs->n_event_streams++] = varlink_call_ref(call);
        return 0;
}
