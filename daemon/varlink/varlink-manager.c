/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "assert-util.h"
#include "explain.h"
#include "json-util.h"
#include "varlink-broker.h"
#include "varlink-manager-idl.h"
#include "varlink-manager-internal.h"
#include "policy.h"

static uint64_t now_sec(void) {
        struct timespec ts;

        (void)clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec;
}

json_object *manager_u64_node(uint64_t v) {
        return v > INT64_MAX ? json_object_new_uint64(v) : json_object_new_int64((int64_t)v);
}

uint64_t manager_varlink_session_id(const ManagerVarlink *mv, const Session *s) {
        if (!mv)
                return 0;
        for (size_t i = 0; i < mv->n_ids; i++)
                if (mv->ids[i].session == s)
                        return mv->ids[i].id;
        return 0;
}

static void drop_subscriber(ManagerVarlink *mv, size_t i) {
        varlink_call_unref(mv->subscribers[i]);
        mv->subscribers[i] = mv->subscribers[--mv->n_subscribers];
}

void manager_varlink_emit(ManagerVarlink *mv, const char *type, const char *message,
                          json_object *payload) {
        if (!mv) {
                json_object_put(payload);
                return;
        }
        for (size_t i = 0; i < mv->n_subscribers;) {
                json_object *ev = json_object_new_object(), *params = json_object_new_object();
                int r;

                if (!ev || !params || json_util_add(ev, "type", json_object_new_string(type)) < 0) {
                        json_object_put(ev);
                        json_object_put(params);
                        break;
                }
                if (payload) {
                        json_object_object_foreach(payload, key, value)
                                (void)json_util_add(ev, key, json_object_get(value));
                }
                (void)json_util_add(ev, "message", json_object_new_string(message));
                (void)json_util_add(params, "event", ev);
                r = varlink_call_reply_more(mv->subscribers[i], params);
                if (r == -ENOBUFS)
                        /* It does not read its events: drop it rather than queue without end. */
                        varlink_connection_close(varlink_call_get_connection(mv->subscribers[i]));
                if (r < 0)
                        drop_subscriber(mv, i);
                else
                        i++;
        }
        json_object_put(payload);
}

size_t manager_varlink_n_subscribers(const ManagerVarlink *mv) {
        return mv ? mv->n_subscribers : 0;
}

void manager_varlink_session_event(ManagerVarlink *mv, Session *s, SessionEvent event) {
        bool opened = event == SESSION_OPENED;
        const PeerCreds *c;
        json_object *payload;
        char message[256];
        uint64_t id;

        /* session-closed is sent once the session has released everything it held. */
        if (!mv || event == SESSION_CLOSING)
                return;
        c = session_creds(s);
        if (opened) {
                SessionId *a = realloc(mv->ids, (mv->n_ids + 1) * sizeof(*a));

                if (!a)
                        return; /* the session works without an id; it lists as 0 */
                mv->ids = a;
                id = ++mv->next_id;
                mv->ids[mv->n_ids++] = (SessionId){ .session = s, .id = id };
        } else {
                id = manager_varlink_session_id(mv, s);
                for (size_t i = 0; i < mv->n_ids; i++)
                        if (mv->ids[i].session == s) {
                                memmove(mv->ids + i, mv->ids + i + 1,
                                        (mv->n_ids - i - 1) * sizeof(*mv->ids));
                                mv->n_ids--;
                                break;
                        }
        }
        if (mv->n_subscribers == 0)
                return;
        snprintf(message, sizeof(message), "session %" PRIu64 " of %s %s", id, session_describe(s),
                 opened ? "opened" : "closed");
        payload = json_object_new_object();
        (void)json_util_add(payload, "session", manager_u64_node(id));
        (void)json_util_add(payload, "uid", manager_u64_node(c->uid));
        manager_varlink_emit(mv, opened ? "session-opened" : "session-closed", message, payload);
}

/* ---- methods ---------------------------------------------------------------------------- */

int manager_require_admin(VarlinkCall *call) {
        const struct ucred *u = varlink_connection_get_ucred(varlink_call_get_connection(call));
        json_object *p;
        char reason[160];

        if (u && (u->uid == 0 || u->uid == geteuid()))
                return 0;
        snprintf(reason, sizeof(reason),
                 "uid %u may not administer iommud: only root and the daemon's own user may",
                 u ? (unsigned)u->uid : 0U);
        p = json_object_new_object();
        (void)json_util_add(p, "uid", manager_u64_node(u ? u->uid : 0));
        (void)json_util_add(p, "reason", json_object_new_string(reason));
        (void)varlink_call_error(call, MANAGER_ERROR_NOT_AUTHORIZED, p);
        return -EPERM;
}

static int method_get_status(VarlinkCall *call, json_object *params, VarlinkCallFlags flags,
                             void *userdata) {
        ManagerVarlink *mv = userdata;
        SessionHost *h = mv->cfg.host;
        const char *features[64];
        json_object *out, *fa;
        size_t eligible = 0;
        int n, r;

        REQUIRE_ADMIN(call);
        r = varlink_call_dispatch(call, params, NULL, NULL);
        if (r < 0)
                return r;
        for (size_t i = 0; i < h->topology->n_devices; i++) {
                _cleanup_(policy_decision_clear) PolicyDecision dec = {};

                if (policy_decide(h->policy, h->topology, h->topology->devices[i], NULL, NULL,
                                  &dec) >= 0 && dec.allowed)
                        eligible++;
        }
        out = json_object_new_object();
        fa = json_object_new_array();
        if (!out || !fa) {
                json_object_put(out);
                json_object_put(fa);
                return -ENOMEM;
        }
        n = backend_features_to_strv(h->backend->features, features, ELEMENTSOF(features));
        for (int i = 0; i < n; i++)
                json_object_array_add(fa, json_object_new_string(features[i]));
        (void)json_util_add(out, "version", json_object_new_string(PACKAGE_VERSION));
        (void)json_util_add(out, "backend", json_object_new_string(h->backend->ops->name));
        (void)json_util_add(out, "features", fa);
        if (mv->cfg.topology)
                (void)json_util_add(out, "topology", json_object_new_string(mv->cfg.topology));
        if (mv->cfg.backend_reason)
                (void)json_util_add(out, "backendReason",
                                    json_object_new_string(mv->cfg.backend_reason));
        (void)json_util_add(out, "sessions", manager_u64_node(h->n_sessions));
        (void)json_util_add(out, "groups", manager_u64_node(h->topology->n_groups));
        (void)json_util_add(out, "devices", manager_u64_node(h->topology->n_devices));
        (void)json_util_add(out, "eligibleDevices", manager_u64_node(eligible));
        (void)json_util_add(out, "policyGeneration", manager_u64_node(policy_generation(h->policy)));
        (void)json_util_add(out, "uptime", manager_u64_node(now_sec() - mv->start_sec));
        return varlink_call_reply(call, out);
}

static json_object *session_json(ManagerVarlink *mv, Session *s) {
        SessionHost *h = mv->cfg.host;
        json_object *o = json_object_new_object(), *devs = json_object_new_array(),
                    *usage = json_object_new_array();
        SessionUsage rows[SESSION_USAGE_MAX];
        SessionInfo info;
        size_t n_rows;

        if (!o || !devs || !usage) {
                json_object_put(o);
                json_object_put(devs);
                json_object_put(usage);
                return NULL;
        }
        session_get_info(s, &info);
        for (size_t i = 0; i < h->topology->n_devices; i++)
                if (session_host_claim_owner(h, h->topology->devices[i]->name) == s)
                        json_object_array_add(devs,
                                              json_object_new_string(h->topology->devices[i]->name));
        n_rows = session_usage_rows(&info, rows);
        for (size_t i = 0; i < n_rows; i++)
                json_object_array_add(usage, broker_usage_json(&rows[i]));
        (void)json_util_add(o, "id", manager_u64_node(manager_varlink_session_id(mv, s)));
        (void)json_util_add(o, "uid", manager_u64_node(info.creds->uid));
        (void)json_util_add(o, "gid", manager_u64_node(info.creds->gid));
        (void)json_util_add(o, "pid", manager_u64_node((uint64_t)info.creds->pid));
        if (info.creds->unit)
                (void)json_util_add(o, "unit", json_object_new_string(info.creds->unit));
        (void)json_util_add(o, "devices", devs);
        (void)json_util_add(o, "usage", usage);
        return o;
}

static int method_list_sessions(VarlinkCall *call, json_object *params, VarlinkCallFlags flags,
                                void *userdata) {
        ManagerVarlink *mv = userdata;
        json_object *out, *a;
        int r;

        REQUIRE_ADMIN(call);
        r = varlink_call_dispatch(call, params, NULL, NULL);
        if (r < 0)
                return r;
        out = json_object_new_object();
        a = json_object_new_array();
        if (!out || !a) {
                json_object_put(out);
                json_object_put(a);
                return -ENOMEM;
        }
        /* In the order they were opened: the id table keeps that order. */
        for (size_t i = 0; i < mv->n_ids; i++)
                json_object_array_add(a, session_json(mv, mv->ids[i].session));
        (void)json_util_add(out, "sessions", a);
        return varlink_call_reply(call, out);
}

/* The Manager's own names for what explain_device_for() reports as NoSuchObject. */
int manager_reply_explain_error(VarlinkCall *call, const BrokerError *e, int r) {
        const BrokerErrorParam *kind = broker_error_get(e, "kind"), *id = broker_error_get(e, "id");
        json_object *p;

        if (!e->error.name || !streq(e->error.name, BROKER_ERROR_NO_SUCH_OBJECT) || !kind || !id)
                return r;
        p = json_object_new_object();
        if (!p)
                return -ENOMEM;
        if (streq(kind->str, BROKER_KIND_USER)) {
                (void)json_util_add(p, "uid", manager_u64_node(strtoull(id->str, NULL, 10)));
                return varlink_call_error(call, MANAGER_ERROR_NO_SUCH_USER, p);
        }
        (void)json_util_add(p, "device", json_object_new_string(id->str));
        return varlink_call_error(call, MANAGER_ERROR_NO_SUCH_DEVICE, p);
}

typedef struct ExplainDeviceParams {
        const char *device;
        uint32_t uid;
        uint32_t gid;
        const char *unit;
} ExplainDeviceParams;

static const JsonDispatchField explain_device_parameters[] = {
        { "device", JSON_DISPATCH_STRING, JSON_DISPATCH_REQUIRED,
          offsetof(ExplainDeviceParams, device) },
        { "uid", JSON_DISPATCH_UINT32, JSON_DISPATCH_REQUIRED, offsetof(ExplainDeviceParams, uid) },
        { "gid", JSON_DISPATCH_UINT32, JSON_DISPATCH_NULLABLE, offsetof(ExplainDeviceParams, gid) },
        { "unit", JSON_DISPATCH_STRING, JSON_DISPATCH_NULLABLE,
          offsetof(ExplainDeviceParams, unit) },
        {},
};

static int method_explain_device(VarlinkCall *call, json_object *params, VarlinkCallFlags flags,
                                 void *userdata) {
        _cleanup_(policy_decision_clear) PolicyDecision dec = {};
        ManagerVarlink *mv = userdata;
        BrokerError e = BROKER_ERROR_INIT;
        /* Without a gid, the uid's account names the primary group (ExplainSubject). */
        ExplainDeviceParams ep = { .gid = GID_INVALID };
        ExplainSubject who;
        json_object *out = NULL;
        int r;

        REQUIRE_ADMIN(call);
        r = varlink_call_dispatch(call, params, explain_device_parameters, &ep);
        if (r < 0)
                return r;
        who = (ExplainSubject){ .uid = ep.uid, .gid = ep.gid, .unit = ep.unit };

        r = explain_device_for(&EXPLAIN_SCOPE_HOST(mv->cfg.host), ep.device, &who, &dec, &e);
        if (r < 0)
                return manager_reply_explain_error(call, &e, r);
        r = policy_decision_to_json(&dec, &out);
        if (r < 0)
                return r;
        /* The IDL's DecisionStep list and verdict only; the rest is internal. */
        json_object_object_del(out, "failedStep");
        json_object_object_del(out, "pool");
        return varlink_call_reply(call, out);
}

static int method_reload_policy(VarlinkCall *call, json_object *params, VarlinkCallFlags flags,
                                void *userdata) {
        ManagerVarlink *mv = userdata;
        char **diags = NULL;
        json_object *out;
        int r;

        REQUIRE_ADMIN(call);
        r = varlink_call_dispatch(call, params, NULL, NULL);
        if (r < 0)
                return r;
        if (!mv->cfg.reload_policy)
                return varlink_call_error(call, VARLINK_ERROR_METHOD_NOT_IMPLEMENTED, NULL);
        r = mv->cfg.reload_policy(mv->cfg.userdata, &diags);
        if (r < 0) {
                json_object *e = json_object_new_object(), *a = json_object_new_array();

                for (char **d = diags; d && *d; d++) {
                        json_object_array_add(a, json_object_new_string(*d));
                        free(*d);
                }
                free(diags);
                if (!e || !a) {
                        json_object_put(e);
                        json_object_put(a);
                        return -ENOMEM;
                }
                (void)json_util_add(e, "diagnostics", a);
                return varlink_call_error(call, MANAGER_ERROR_POLICY_INVALID, e);
        }
        out = json_object_new_object();
        if (!out)
                return -ENOMEM;
        (void)json_util_add(out, "generation", manager_u64_node(policy_generation(mv->cfg.host->policy)));
        return varlink_call_reply(call, out);
}

static int method_monitor(VarlinkCall *call, json_object *params, VarlinkCallFlags flags,
                          void *userdata) {
        ManagerVarlink *mv = userdata;
        VarlinkCall **a;
        int r;

        REQUIRE_ADMIN(call);
        r = varlink_call_dispatch(call, params, NULL, NULL);
        if (r < 0)
                return r;
        if (!(flags & VARLINK_CALL_MORE))
                return varlink_call_error(call, VARLINK_ERROR_EXPECTED_MORE, NULL);
        /* Drop subscribers whose connections went away without an event to notice it. */
        for (size_t i = 0; i < mv->n_subscribers;)
                if (!varlink_connection_is_connected(varlink_call_get_connection(mv->subscribers[i])))
                        drop_subscriber(mv, i);
                else
                        i++;
        a = realloc(mv->subscribers, (mv->n_subscribers + 1) * sizeof(*a));
        if (!a)
                return -ENOMEM;
        mv->subscribers = a;
        mv->subscribers[mv->n_subscribers++] = varlink_call_ref(call);
        return 0;
}

static const VarlinkMethod manager_methods[] = {
        { "GetStatus", method_get_status },
        { "ListSessions", method_list_sessions },
        { "ExplainDevice", method_explain_device, explain_device_parameters },
        { "ReloadPolicy", method_reload_policy },
        { "Monitor", method_monitor },
        { "PrepareClaim", manager_method_prepare_claim, manager_prepare_claim_parameters },
        { "UnprepareClaim", manager_method_unprepare_claim, manager_unprepare_claim_parameters },
        { "ListClaims", manager_method_list_claims },
        {},
};

int manager_varlink_new(ManagerVarlink **ret, const ManagerVarlinkConfig *cfg) {
        ManagerVarlink *mv;

        assert_return(ret && cfg && cfg->host, -EINVAL);
        mv = calloc(1, sizeof(*mv));
        if (!mv)
                return -ENOMEM;
        mv->cfg = *cfg;
        mv->start_sec = now_sec();
        mv->iface = (VarlinkInterface){
                .name = MANAGER_INTERFACE,
                .description = manager_idl,
                .methods = manager_methods,
                .errno_error = NULL,
                .userdata = mv,
        };
        /* Sessions opened before this object existed get ids now, in list order. */
        for (Session *s = cfg->host->sessions; s; s = session_next(s))
                manager_varlink_session_event(mv, s, SESSION_OPENED);
        *ret = mv;
        return 0;
}

ManagerVarlink *manager_varlink_free(ManagerVarlink *mv) {
        if (!mv)
                return NULL;
        while (mv->n_subscribers > 0) {
                (void)varlink_call_reply(mv->subscribers[mv->n_subscribers - 1], NULL);
                drop_subscriber(mv, mv->n_subscribers - 1);
        }
        free(mv->subscribers);
        free(mv->ids);
        free(mv);
        return NULL;
}

const VarlinkInterface *manager_varlink_interface(const ManagerVarlink *mv) {
        return &mv->iface;
}

int manager_varlink_attach(ManagerVarlink *mv, VarlinkServer *s) {
        return varlink_server_add_interface(s, &mv->iface);
}
