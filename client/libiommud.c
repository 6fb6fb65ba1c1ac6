/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * libiommud: typed calls of org.iommud.Broker over the blocking Varlink
 * client of common/.  Each call builds its parameters, waits for the reply
 * and decodes it; a Varlink error becomes an IommudError and a negative errno.
 * A transport failure leaves the connection unusable: later calls return
 * -ENOTCONN rather than reading a reply that belongs to an earlier call.
 *
 * Unless the caller opted out, a client connected by path reclaims its
 * session when the connection drops (iommud restarted): it keeps the token
 * GetSession() gives, reconnects with a bounded backoff, sends
 * JoinSession(token) as the first call on the new connection, and then
 * repeats the failed call once when that is safe (see call_full()).
 */

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>

#include "iommud/iommud.h"
#include "json-util.h"
#include "libiommud-internal.h"
#include "macros.h"
#include "varlink-client.h"

/* The first pause between reconnection attempts, and the longest. */
#define RECLAIM_DELAY_FIRST_MS 10u
#define RECLAIM_DELAY_MAX_MS 1000u

struct IommudClient {
        unsigned n_ref;
        VarlinkClient *vc;
        char *path;
        bool broken;
        /* Reclaim after a restart: off without a path or with IOMMUD_CONNECT_NO_RECLAIM. */
        bool reclaim;
        uint64_t reclaim_timeout_ms;
        char *token;             /* the session's, once known */
        unsigned n_reclaims;
};

static inline void json_object_putp(json_object **o) {
        json_object_put(*o);
}
#define _cleanup_json_ _cleanup_(json_object_putp)

static json_object *params_new(void);
static int add_str(json_object *p, const char *key, const char *v);

static int nomem(IommudError *err) {
        return iommud_error_setf(err, -ENOMEM, "out of memory");
}

/* ------------------------------------------------------------- connection */

static const char *socket_path(const char *path) {
        const char *e;

        if (path)
                return path;
        e = secure_getenv("IOMMUD_SOCKET");
        return e && *e ? e : IOMMUD_DEFAULT_SOCKET;
}

static int client_new(IommudClient **ret, VarlinkClient *vc, const char *path) {
        IommudClient *c;

        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        if (path) {
                c->path = strdup(path);
                if (!c->path) {
                        free(c);
                        return -ENOMEM;
                }
        }
        c->n_ref = 1;
        c->vc = vc;
        c->reclaim = path != NULL;
        c->reclaim_timeout_ms = IOMMUD_RECLAIM_TIMEOUT_MS_DEFAULT;
        *ret = c;
        return 0;
}

_public_ int iommud_client_new(IommudClient **ret, const char *path, IommudError *err) {
        return iommud_client_new_flags(ret, path, 0, err);
}

_public_ int iommud_client_new_flags(IommudClient **ret, const char *path, unsigned flags,
                                     IommudError *err) {
        _cleanup_(varlink_client_freep) VarlinkClient *vc = NULL;
        const char *p = socket_path(path);
        int r;

        if (!ret)
                return iommud_error_setf(err, -EINVAL, "no place to return the client");
        if (flags & ~(unsigned)IOMMUD_CONNECT_NO_RECLAIM)
                return iommud_error_setf(err, -EINVAL, "unknown connect flags 0x%x",
                                         flags & ~(unsigned)IOMMUD_CONNECT_NO_RECLAIM);
        r = varlink_client_connect(&vc, p);
        if (r == -ENOENT || r == -ECONNREFUSED)
                return iommud_error_setf(err, r, "iommud is not listening on %s: %s", p,
                                         strerror(-r));
        if (r < 0)
                return iommud_error_setf(err, r, "cannot connect to %s: %s", p, strerror(-r));
        r = client_new(ret, vc, p);
        if (r < 0)
                return nomem(err);
        vc = NULL;
        if (flags & IOMMUD_CONNECT_NO_RECLAIM)
                (*ret)->reclaim = false;
        iommud_error_clear(err);
        return 0;
}

_public_ int iommud_client_new_from_fd(IommudClient **ret, int fd) {
        VarlinkClient *vc = NULL;
        int r;

        if (!ret) {
                safe_close(fd);
                return -EINVAL;
        }
        r = varlink_client_new_from_fd(&vc, fd);
        if (r < 0)
                return r;
        r = client_new(ret, vc, NULL);
        if (r < 0)
                varlink_client_free(vc);
        return r;
}

_public_ IommudClient *iommud_client_ref(IommudClient *c) {
        if (c)
                c->n_ref++;
        return c;
}

_public_ IommudClient *iommud_client_unref(IommudClient *c) {
        if (!c || --c->n_ref > 0)
                return NULL;
        varlink_client_free(c->vc);
        free(c->path);
        free(c->token);
        free(c);
        return NULL;
}

_public_ int iommud_client_set_reclaim_timeout(IommudClient *c, uint64_t timeout_ms) {
        if (!c)
                return -EINVAL;
        c->reclaim_timeout_ms = timeout_ms;
        return 0;
}

_public_ unsigned iommud_client_get_n_reclaims(const IommudClient *c) {
        return c ? c->n_reclaims : 0;
}

_public_ int iommud_client_get_fd(const IommudClient *c) {
        return c ? varlink_client_get_fd(c->vc) : -EBADF;
}

_public_ const char *iommud_client_get_path(const IommudClient *c) {
        return c ? c->path : NULL;
}

static bool connection_dropped(int r) {
        return r == -EPIPE || r == -ECONNRESET || r == -ENOTCONN;
}

/*
 * Calls whose repetition cannot change anything: after a reclaim they are
 * simply made again.  Everything else changes the session.
 */
static bool method_is_read(const char *method) {
        static const char *const reads[] = {
                IOMMUD_BROKER_INTERFACE ".GetTopology",
                IOMMUD_BROKER_INTERFACE ".ExplainDevice",
                IOMMUD_BROKER_INTERFACE ".GetIOVARanges",
                IOMMUD_BROKER_INTERFACE ".GetSession",
                IOMMUD_MANAGER_INTERFACE ".GetStatus",
                IOMMUD_MANAGER_INTERFACE ".ListSessions",
                IOMMUD_MANAGER_INTERFACE ".ExplainDevice",
                "org.varlink.service.GetInfo",
                "org.varlink.service.GetInterfaceDescription",
        };

        for (size_t i = 0; i < ELEMENTSOF(reads); i++)
                if (streq(method, reads[i]))
                        return true;
        return false;
}

static uint64_t now_ms(void) {
        struct timespec ts;

        (void)clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void sleep_ms(uint64_t ms) {
        struct timespec ts = {
                .tv_sec = (time_t)(ms / 1000),
                .tv_nsec = (long)(ms % 1000) * 1000000,
        };

        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
}

/*
 * Sends one call and waits for its reply.  On a transport failure,
 * *ret_delivered says whether the whole call had left this process: if not,
 * iommud never saw it complete and cannot have acted on it.
 */
static int call_once(VarlinkClient *vc, const char *method, json_object *params, const int *fds,
                     size_t n_fds, VarlinkReply *ret, bool *ret_delivered) {
        int r;

        *ret_delivered = false;
        r = varlink_client_send(vc, method, params, fds, n_fds, 0);
        if (r < 0)
                return r;
        r = varlink_client_wait(vc, -1, ret);
        if (r < 0)
                *ret_delivered = !(varlink_client_get_events(vc) & POLLOUT);
        return r;
}

/*
 * The connection dropped: connects again, and makes JoinSession(token) the
 * first call, retrying with a doubling pause until the reclaim timeout.
 */
static int client_reclaim(IommudClient *c, const char *method, IommudError *err) {
        _cleanup_json_ json_object *p = params_new();
        uint64_t deadline = now_ms() + c->reclaim_timeout_ms;
        uint64_t delay = RECLAIM_DELAY_FIRST_MS;
        int r;

        if (!p || add_str(p, "token", c->token) < 0)
                return nomem(err);
        for (;;) {
                VarlinkClient *vc = NULL;
                VarlinkReply reply = VARLINK_REPLY_INIT;
                uint64_t now;

                r = varlink_client_connect(&vc, c->path);
                if (r >= 0) {
                        uint64_t left = deadline > now_ms() ? deadline - now_ms() : 0;

                        r = varlink_client_send(vc, IOMMUD_BROKER_INTERFACE ".JoinSession", p,
                                                NULL, 0, 0);
                        /* A daemon that accepts but never answers must not hold us forever. */
                        if (r >= 0)
                                r = varlink_client_wait(vc, (int)MIN(left + 1, (uint64_t)INT32_MAX),
                                                        &reply);
                }
                if (r >= 0 && !reply.error) {
                        varlink_reply_clear(&reply);
                        varlink_client_free(c->vc);
                        c->vc = vc;
                        c->broken = false;
                        c->n_reclaims++;
                        return 0;
                }
                if (r >= 0) {
                        /* iommud answered: the session is gone for good (NoSuchObject). */
                        _cleanup_free_ char *name = strdup(reply.error);

                        r = iommud_error_set_varlink(err, reply.error, reply.parameters);
                        varlink_reply_clear(&reply);
                        varlink_client_free(vc);
                        return iommud_error_setf(err, r,
                                                 "the connection to iommud dropped during %s and "
                                                 "the session could not be reclaimed (%s); start "
                                                 "a new one", method, name ?: "error");
                }
                varlink_client_free(vc);
                now = now_ms();
                if (now >= deadline)
                        return iommud_error_setf(err, r,
                                                 "the connection to iommud dropped during %s and "
                                                 "iommud did not take the session back within "
                                                 "%" PRIu64 " ms: %s",
                                                 method, c->reclaim_timeout_ms, strerror(-r));
                sleep_ms(MIN(delay, deadline - now));
                delay = MIN(delay * 2, (uint64_t)RECLAIM_DELAY_MAX_MS);
        }
}

static int client_fetch_token(IommudClient *c, IommudError *err);

/*
 * One call; on success *ret holds a normal reply that the caller clears.
 *
 * When the connection dropped and the session could be reclaimed, the call
 * is made again if iommud cannot have acted on it (it never left this
 * process whole) or if it only reads; any other call may or may not have
 * taken effect before the restart, and returns -ESTALE.
 */
static int call_full(IommudClient *c, const char *method, json_object *params, const int *fds,
                     size_t n_fds, VarlinkReply *ret, IommudError *err) {
        VarlinkReply reply = VARLINK_REPLY_INIT;
        bool delivered = false;
        int r;

        if (!c)
                return iommud_error_setf(err, -EINVAL, "no client given for %s", method);
        if (c->broken)
                return iommud_error_setf(err, -ENOTCONN,
                                         "the connection to iommud failed earlier and is closed");
        /* JoinSession gives the token itself; GetSession's reply carries it. */
        if (c->reclaim && !c->token && !streq(method, IOMMUD_BROKER_INTERFACE ".JoinSession") &&
            !streq(method, IOMMUD_BROKER_INTERFACE ".GetSession")) {
                r = client_fetch_token(c, err);
                if (r < 0 && c->broken)
                        return r;
                if (r < 0)
                        c->reclaim = false; /* iommud refused GetSession: no token, no reclaim */
        }
        r = call_once(c->vc, method, params, fds, n_fds, &reply, &delivered);
        if (r < 0 && connection_dropped(r) && c->reclaim && c->token &&
            !streq(method, IOMMUD_BROKER_INTERFACE ".JoinSession")) {
                int k = client_reclaim(c, method, err);

                if (k < 0) {
                        c->broken = true;
                        return k;
                }
                if (delivered && !method_is_read(method))
                        return iommud_error_setf(err, -ESTALE,
                                                 "iommud restarted during %s; the session was "
                                                 "reclaimed, but whether %s took effect is "
                                                 "unknown", method, method);
                r = call_once(c->vc, method, params, fds, n_fds, &reply, &delivered);
        }
        if (r < 0) {
                c->broken = true;
                if (r == -ECONNRESET || r == -EPIPE)
                        return iommud_error_setf(err, -ECONNRESET,
                                                 "iommud closed the connection during %s", method);
                return iommud_error_setf(err, r, "calling %s failed: %s", method, strerror(-r));
        }
        if (reply.error) {
                r = iommud_error_set_varlink(err, reply.error, reply.parameters);
                varlink_reply_clear(&reply);
                return r;
        }
        if (c->reclaim && !c->token) {
                const char *token = NULL;

                /* Keep the session's token: JoinSession's argument, or GetSession's. */
                if (streq(method, IOMMUD_BROKER_INTERFACE ".JoinSession"))
                        (void)json_util_get_string(params, "token", 0, &token, NULL);
                else if (streq(method, IOMMUD_BROKER_INTERFACE ".GetSession"))
                        (void)json_util_get_string(reply.parameters, "token", 0, &token, NULL);
                if (token)
                        c->token = strdup(token); /* without memory, no reclaim; not fatal */
        }
        iommud_error_clear(err);
        *ret = reply;
        return 0;
}

static int client_fetch_token(IommudClient *c, IommudError *err) {
        VarlinkReply reply = VARLINK_REPLY_INIT;
        int r;

        r = call_full(c, IOMMUD_BROKER_INTERFACE ".GetSession", NULL, NULL, 0, &reply, err);
        varlink_reply_clear(&reply);
        return r;
}

static int call(IommudClient *c, const char *method, json_object *params, VarlinkReply *ret,
                IommudError *err) {
        char full[128];

        (void)snprintf(full, sizeof(full), IOMMUD_BROKER_INTERFACE ".%s", method);
        return call_full(c, full, params, NULL, 0, ret, err);
}

static int call_fds(IommudClient *c, const char *method, json_object *params, const int *fds,
                    size_t n_fds, VarlinkReply *ret, IommudError *err) {
        char full[128];

        (void)snprintf(full, sizeof(full), IOMMUD_BROKER_INTERFACE ".%s", method);
        return call_full(c, full, params, fds, n_fds, ret, err);
}

/* A call whose reply carries nothing the caller needs. */
static int call_void(IommudClient *c, const char *method, json_object *params, IommudError *err) {
        VarlinkReply reply = VARLINK_REPLY_INIT;
        int r;

        r = call(c, method, params, &reply, err);
        varlink_reply_clear(&reply);
        return r;
}

static int bad_reply(IommudError *err, const char *method, const Error *e) {
        return iommud_error_setf(err, -EBADMSG, "iommud's reply to %s is malformed: %s", method,
                                 error_message(e));
}

_public_ int iommud_client_call(IommudClient *c, const char *method, const char *parameters,
                                const int *fds, size_t n_fds, char **ret_reply,
                                IommudError *err) {
        _cleanup_json_ json_object *p = NULL;
        VarlinkReply reply = VARLINK_REPLY_INIT;
        char *text = NULL;
        int r;

        if (!method)
                return iommud_error_setf(err, -EINVAL, "no method given");
        if (parameters) {
                p = json_tokener_parse(parameters);
                if (!p || !json_object_is_type(p, json_type_object))
                        return iommud_error_setf(err, -EINVAL,
                                                 "the parameters of %s are not a JSON object",
                                                 method);
        }
        r = call_full(c, method, p, fds, n_fds, &reply, err);
        if (r < 0)
                return r;
        if (ret_reply) {
                text = strdup(json_object_to_json_string_ext(reply.parameters,
                                                             JSON_C_TO_STRING_PLAIN));
                if (!text) {
                        varlink_reply_clear(&reply);
                        return nomem(err);
                }
                *ret_reply = text;
        }
        varlink_reply_clear(&reply);
        return 0;
}

/* ------------------------------------------------------------- parameters */

static json_object *params_new(void) {
        return json_object_new_object();
}

static int add_u64(json_object *p, const char *key, uint64_t v) {
        return json_util_add(p, key, json_object_new_uint64(v));
}

static int add_str(json_object *p, const char *key, const char *v) {
        return json_util_add(p, key, json_object_new_string(v));
}

/* ---------------------------------------------------------------- helpers */

/* The strings of a JSON array of strings, borrowed from it; NULL for an empty one. */
static int string_array(json_object *a, const char ***ret, size_t *ret_n, const char *what,
                        Error *e) {
        size_t n = a ? json_object_array_length(a) : 0;
        const char **v = NULL;

        if (n > 0) {
                v = calloc(n + 1, sizeof(char *));
                if (!v)
                        return -ENOMEM;
        }
        for (size_t i = 0; i < n; i++) {
                json_object *s = json_object_array_get_idx(a, i);

                if (!json_object_is_type(s, json_type_string)) {
                        free(v);
                        return error_set(e, -EINVAL, "%s[%zu] is %s, not a string", what, i,
                                         json_util_type_phrase(s));
                }
                v[i] = json_object_get_string(s);
        }
        *ret = v;
        *ret_n = n;
        return 0;
}

/* Whether obj has key with a value other than null. */
static bool present(json_object *obj, const char *key) {
        json_object *v;

        return json_object_object_get_ex(obj, key, &v) && !json_object_is_type(v, json_type_null);
}

static int object_at(json_object *a, size_t i, const char *what, json_object **ret, Error *e) {
        json_object *o = json_object_array_get_idx(a, i);

        if (!json_object_is_type(o, json_type_object))
                return error_set(e, -EINVAL, "%s[%zu] is %s, not an object", what, i,
                                 json_util_type_phrase(o));
        *ret = o;
        return 0;
}

/* --------------------------------------------------------------- topology */

struct IommudTopology {
        json_object *reply;      /* owns every string */
        IommudGroup *groups;
        size_t n_groups;
        IommudDevice *devices;
        size_t n_devices;
};

_public_ IommudTopology *iommud_topology_free(IommudTopology *t) {
        if (!t)
                return NULL;
        for (size_t i = 0; i < t->n_groups; i++) {
                free((void *)t->groups[i].devices);
                free((void *)t->groups[i].reserved_regions);
        }
        free(t->groups);
        free(t->devices);
        json_object_put(t->reply);
        free(t);
        return NULL;
}
DEFINE_TRIVIAL_CLEANUP_FUNC(IommudTopology *, iommud_topology_free);

static int parse_group(json_object *o, IommudGroup *g, Error *e) {
        json_object *devices = NULL, *regions = NULL;
        IommudReservedRegion *rr = NULL;
        size_t n_rr;
        int r;

        if ((r = json_util_get_u32(o, "id", 0, &g->id, e)) < 0 ||
            (r = json_util_get_string(o, "type", JSON_UTIL_OPTIONAL, &g->type, e)) < 0 ||
            (r = json_util_get_bool(o, "viable", 0, &g->viable, e)) < 0 ||
            (r = json_util_get_string(o, "iommu", JSON_UTIL_OPTIONAL, &g->iommu, e)) < 0 ||
            (r = json_util_get_array(o, "devices", 0, &devices, e)) < 0 ||
            (r = json_util_get_array(o, "reservedRegions", JSON_UTIL_OPTIONAL, &regions, e)) < 0)
                return r;
        r = string_array(devices, (const char ***)&g->devices, &g->n_devices, "devices", e);
        if (r < 0)
                return r;
        n_rr = regions ? json_object_array_length(regions) : 0;
        if (n_rr > 0) {
                rr = calloc(n_rr, sizeof(*rr));
                if (!rr)
                        return -ENOMEM;
        }
        g->reserved_regions = rr;
        g->n_reserved_regions = n_rr;
        for (size_t i = 0; i < n_rr; i++) {
                json_object *ro;

                if ((r = object_at(regions, i, "reservedRegions", &ro, e)) < 0 ||
                    (r = json_util_get_u64(ro, "start", 0, &rr[i].start, e)) < 0 ||
                    (r = json_util_get_u64(ro, "last", 0, &rr[i].last, e)) < 0 ||
                    (r = json_util_get_string(ro, "type", 0, &rr[i].type, e)) < 0)
                        return r;
        }
        return 0;
}

static int parse_device(json_object *o, IommudDevice *d, Error *e) {
        uint32_t u;
        int r;

        if ((r = json_util_get_string(o, "name", 0, &d->name, e)) < 0 ||
            (r = json_util_get_u32(o, "vendor", 0, &d->vendor, e)) < 0 ||
            (r = json_util_get_u32(o, "device", 0, &d->device, e)) < 0 ||
            (r = json_util_get_u32(o, "class", 0, &d->class_code, e)) < 0 ||
            (r = json_util_get_string(o, "driver", JSON_UTIL_OPTIONAL, &d->driver, e)) < 0 ||
            (r = json_util_get_string(o, "cdev", JSON_UTIL_OPTIONAL, &d->cdev, e)) < 0 ||
            (r = json_util_get_bool(o, "eligible", 0, &d->eligible, e)) < 0 ||
            (r = json_util_get_string(o, "heldBy", JSON_UTIL_OPTIONAL, &d->held_by, e)) < 0)
                return r;
        d->has_group = present(o, "group");
        if (d->has_group && (r = json_util_get_u32(o, "group", 0, &d->group, e)) < 0)
                return r;
        d->has_numa_node = present(o, "numaNode");
        if (d->has_numa_node && (r = json_util_get_u32(o, "numaNode", 0, &u, e)) < 0)
                return r;
        d->numa_node = d->has_numa_node ? u : 0;
        return 0;
}

static int parse_topology(json_object *params, IommudTopology *t, Error *e) {
        json_object *groups, *devices;
        size_t n;
        int r;

        if ((r = json_util_get_array(params, "groups", 0, &groups, e)) < 0 ||
            (r = json_util_get_array(params, "devices", 0, &devices, e)) < 0)
                return r;

        n = json_object_array_length(groups);
        if (n > 0 && !(t->groups = calloc(n, sizeof(IommudGroup))))
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                json_object *o;

                if ((r = object_at(groups, i, "groups", &o, e)) < 0)
                        return r;
                t->n_groups++; /* counted before parsing so that free releases partial arrays */
                r = parse_group(o, &t->groups[i], e);
                if (r < 0)
                        return error_prefix(e, "groups[%zu]", i) ?: r;
        }

        n = json_object_array_length(devices);
        if (n > 0 && !(t->devices = calloc(n, sizeof(IommudDevice))))
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                json_object *o;

                if ((r = object_at(devices, i, "devices", &o, e)) < 0)
                        return r;
                t->n_devices++;
                r = parse_device(o, &t->devices[i], e);
                if (r < 0)
                        return error_prefix(e, "devices[%zu]", i) ?: r;
        }
        return 0;
}

_public_ int iommud_get_topology(IommudClient *c, IommudTopology **ret, IommudError *err) {
        _cleanup_(iommud_topology_freep) IommudTopology *t = NULL;
        VarlinkReply reply = VARLINK_REPLY_INIT;
        Error e = ERROR_INIT;
        int r;

        if (!ret)
                return iommud_error_setf(err, -EINVAL, "no place to return the topology");
        r = call(c, "GetTopology", NULL, &reply, err);
        if (r < 0)
                return r;
        t = calloc(1, sizeof(*t));
        if (!t) {
                varlink_reply_clear(&reply);
                return nomem(err);
        }
        t->reply = json_object_get(reply.parameters);
        varlink_reply_clear(&reply);
        r = parse_topology(t->reply, t, &e);
        if (r == -ENOMEM)
                return nomem(err);
        if (r < 0)
                return bad_reply(err, "GetTopology", &e);
        *ret = TAKE_PTR(t);
        return 0;
}

_public_ size_t iommud_topology_get_n_groups(const IommudTopology *t) {
        return t ? t->n_groups : 0;
}

_public_ const IommudGroup *iommud_topology_get_group(const IommudTopology *t, size_t i) {
        return t && i < t->n_groups ? &t->groups[i] : NULL;
}

_public_ size_t iommud_topology_get_n_devices(const IommudTopology *t) {
        return t ? t->n_devices : 0;
}

_public_ const IommudDevice *iommud_topology_get_device(const IommudTopology *t, size_t i) {
        return t && i < t->n_devices ? &t->devices[i] : NULL;
}

_public_ const IommudDevice *iommud_topology_find_device(const IommudTopology *t,
                                                         const char *name) {
        if (!t || !name)
                return NULL;
        for (size_t i = 0; i < t->n_devices; i++)
                if (streq(t->devices[i].name, name))
                        return &t->devices[i];
        return NULL;
}

_public_ const IommudGroup *iommud_topology_find_group(const IommudTopology *t, uint32_t id) {
        if (!t)
                return NULL;
        for (size_t i = 0; i < t->n_groups; i++)
                if (t->groups[i].id == id)
                        return &t->groups[i];
        return NULL;
}

/* ---------------------------------------------------------------- explain */

struct IommudExplanation {
        json_object *reply;
        bool allowed;
        IommudDecisionStep *steps;
        size_t n_steps;
};

_public_ IommudExplanation *iommud_explanation_free(IommudExplanation *x) {
        if (!x)
                return NULL;
        free(x->steps);
        json_object_put(x->reply);
        free(x);
        return NULL;
}
DEFINE_TRIVIAL_CLEANUP_FUNC(IommudExplanation *, iommud_explanation_free);

static int parse_explanation(IommudExplanation *x, Error *e) {
        json_object *steps;
        size_t n;
        int r;

        if ((r = json_util_get_bool(x->reply, "allowed", 0, &x->allowed, e)) < 0 ||
            (r = json_util_get_array(x->reply, "steps", 0, &steps, e)) < 0)
                return r;
        n = json_object_array_length(steps);
        if (n > 0 && !(x->steps = calloc(n, sizeof(IommudDecisionStep))))
                return -ENOMEM;
        x->n_steps = n;
        for (size_t i = 0; i < n; i++) {
                json_object *o;

                if ((r = object_at(steps, i, "steps", &o, e)) < 0 ||
                    (r = json_util_get_string(o, "step", 0, &x->steps[i].step, e)) < 0 ||
                    (r = json_util_get_string(o, "verdict", 0, &x->steps[i].verdict, e)) < 0 ||
                    (r = json_util_get_string(o, "reason", 0, &x->steps[i].reason, e)) < 0)
                        return r;
        }
        return 0;
}

_public_ int iommud_explain_device(IommudClient *c, const char *device, IommudExplanation **ret,
                                   IommudError *err) {
        _cleanup_(iommud_explanation_freep) IommudExplanation *x = NULL;
        _cleanup_json_ json_object *p = params_new();
        VarlinkReply reply = VARLINK_REPLY_INIT;
        Error e = ERROR_INIT;
        int r;

        if (!device || !ret)
                return iommud_error_setf(err, -EINVAL, "no device given to explain");
        if (!p || add_str(p, "device", device) < 0)
                return nomem(err);
        r = call(c, "ExplainDevice", p, &reply, err);
        if (r < 0)
                return r;
        x = calloc(1, sizeof(*x));
        if (!x) {
                varlink_reply_clear(&reply);
                return nomem(err);
        }
        x->reply = json_object_get(reply.parameters);
        varlink_reply_clear(&reply);
        r = parse_explanation(x, &e);
        if (r == -ENOMEM)
                return nomem(err);
        if (r < 0)
                return bad_reply(err, "ExplainDevice", &e);
        *ret = TAKE_PTR(x);
        return 0;
}

_public_ bool iommud_explanation_is_allowed(const IommudExplanation *x) {
        return x && x->allowed;
}

_public_ size_t iommud_explanation_get_n_steps(const IommudExplanation *x) {
        return x ? x->n_steps : 0;
}

_public_ const IommudDecisionStep *iommud_explanation_get_step(const IommudExplanation *x,
                                                              size_t i) {
        return x && i < x->n_steps ? &x->steps[i] : NULL;
}

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

        r = call_fds(c, "AttachDevice", p, fds, n_fds, &reply, err);
        if (r < 0)
                return r;
        a = calloc(1, sizeof(*a));
        if (!a) {
                varlink_reply_clear(&reply);
                return nomem(err);
        }
        a->reply = json_object_get(reply.parameters);
        varlink_reply_clear(&reply);
        if ((r = json_util_get_u32(a->reply, "deviceId", 0, &a->pub.device_id, &e)) < 0 ||
            (r = json_util_get_string(a->reply, "bdf", 0, &a->pub.bdf, &e)) < 0 ||
            (r = json_util_get_u32(a->reply, "group", 0, &a->pub.group, &e)) < 0 ||
            (r = json_util_get_u32(a->reply, "pasidBits", JSON_UTIL_OPTIONAL, &a->pub.pasid_bits,
                                   &e)) < 0 ||
            (r = json_util_get_array(a->reply, "capabilities", JSON_UTIL_OPTIONAL, &caps, &e)) < 0 ||
            (r = string_array(caps, (const char ***)&a->pub.capabilities,
                              &a->pub.n_capabilities, "capabilities", &e)) < 0) {
                iommud_attachment_free(&a->pub);
                return r == -ENOMEM ? nomem(err) : bad_reply(err, "AttachDevice", &e);
        }
        *ret = &a->pub;
        return 0;
}

_public_ int iommud_attach_device_fd(IommudClient *c, int fd, IommudAttachment **ret,
                                     IommudError *err) {
        _cleanup_json_ json_object *p = params_new();

        if (fd < 0)
                return iommud_error_setf(err, -EBADF, "%d is not a file descriptor", fd);
        if (!ret)
                return iommud_error_setf(err, -EINVAL, "no place to return the attachment");
        if (!p || add_u64(p, "fd", 0) < 0)
                return nomem(err);
        return attach_device(c, p, &fd, 1, ret, err);
}

_public_ int iommud_attach_device_name(IommudClient *c, const char *device,
                                       IommudAttachment **ret, IommudError *err) {
        _cleanup_json_ json_object *p = params_new();

        if (!device || !*device)
                return iommud_error_setf(err, -EINVAL, "no device name given");
        if (!ret)
                return iommud_error_setf(err, -EINVAL, "no place to return the attachment");
        if (!p || add_str(p, "device", device) < 0)
                return nomem(err);
        return attach_device(c, p, NULL, 0, ret, err);
}

_public_ int iommud_detach_device(IommudClient *c, uint32_t device_id, IommudError *err) {
        _cleanup_json_ json_object *p = params_new();

        if (!p || add_u64(p, "deviceId", device_id) < 0)
                return nomem(err);
        return call_void(c, "DetachDevice", p, err);
}

/* --------------------------------------------------------- address spaces */

/* Calls method and reads one unsigned member of its reply into *ret (if ret). */
static int call_get_u64(IommudClient *c, const char *method, json_object *p, const int *fds,
                        size_t n_fds, const char *key, uint64_t *ret, IommudError *err) {
        VarlinkReply reply = VARLINK_REPLY_INIT;
        Error e = ERROR_INIT;
        uint64_t v;
        int r;

        r = call_fds(c, method, p, fds, n_fds, &reply, err);
        if (r < 0)
                return r;
        r = json_util_get_u64(reply.parameters, key, 0, &v, &e);
        varlink_reply_clear(&reply);
        if (r < 0)
                return bad_reply(err, method, &e);
        if (ret)
                *ret = v;
        return 0;
}

static int call_get_u32(IommudClient *c, const char *method, json_object *p, const char *key,
                        uint32_t *ret, IommudError *err) {
        uint64_t v;
        int r;

        r = call_get_u64(c, method, p, NULL, 0, key, &v, err);
        if (r < 0)
                return r;
        if (v > UINT32_MAX)
                return iommud_error_setf(err, -EBADMSG,
                                         "iommud's reply to %s is malformed: %s %" PRIu64
                                         " does not fit 32 bits", method, key, v);
        if (ret)
                *ret = (uint32_t)v;
        return 0;
}

_public_ int iommud_create_address_space(IommudClient *c, uint32_t *ret_ioas_id,
                                         IommudError *err) {
        return call_get_u32(c, "CreateAddressSpace", NULL, "ioasId", ret_ioas_id, err);
}

_public_ int iommud_destroy_address_space(IommudClient *c, uint32_t ioas_id, IommudError *err) {
        _cleanup_json_ json_object *p = params_new();

        if (!p || add_u64(p, "ioasId", ioas_id) < 0)
                return nomem(err);
        return call_void(c, "DestroyAddressSpace", p, err);
}

_public_ int iommud_attach_to_address_space(IommudClient *c, uint32_t device_id, uint32_t ioas_id,
                                            uint32_t *ret_hwpt_id, IommudError *err) {
        _cleanup_json_ json_object *p = params_new();

        if (!p || add_u64(p, "deviceId", device_id) < 0 || add_u64(p, "ioasId", ioas_id) < 0)
                return nomem(err);
        return call_get_u32(c, "AttachToAddressSpace", p, "hwptId", ret_hwpt_id, err);
}

_public_ int iommud_get_iova_ranges(IommudClient *c, uint32_t ioas_id,
                                    IommudIOVARange **ret_ranges, size_t *ret_n_ranges,
                                    uint64_t *ret_alignment, IommudError *err) {
        _cleanup_json_ json_object *p = params_new();
        _cleanup_free_ IommudIOVARange *v = NULL;
        VarlinkReply reply = VARLINK_REPLY_INIT;
        json_object *ranges;
        uint64_t alignment = 0;
        Error e = ERROR_INIT;
        size_t n = 0;
        int r;

        if (!ret_ranges || !ret_n_ranges)
                return iommud_error_setf(err, -EINVAL, "no place to return the ranges");
        if (!p || add_u64(p, "ioasId", ioas_id) < 0)
                return nomem(err);
        r = call(c, "GetIOVARanges", p, &reply, err);
        if (r < 0)
                return r;
        r = json_util_get_array(reply.parameters, "ranges", 0, &ranges, &e);
        if (r >= 0)
                r = json_util_get_u64(reply.parameters, "alignment", JSON_UTIL_OPTIONAL, &alignment,
                                      &e);
        if (r >= 0) {
                n = json_object_array_length(ranges);
                if (n > 0 && !(v = calloc(n, sizeof(*v))))
                        r = -ENOMEM;
        }
        for (size_t i = 0; r >= 0 && i < n; i++) {
                json_object *o;

                if ((r = object_at(ranges, i, "ranges", &o, &e)) >= 0 &&
                    (r = json_util_get_u64(o, "start", 0, &v[i].start, &e)) >= 0)
                        r = json_util_get_u64(o, "last", 0, &v[i].last, &e);
        }
        varlink_reply_clear(&reply);
        if (r == -ENOMEM)
                return nomem(err);
        if (r < 0)
                return bad_reply(err, "GetIOVARanges", &e);
        *ret_ranges = TAKE_PTR(v);
        *ret_n_ranges = n;
        if (ret_alignment)
                *ret_alignment = alignment;
        return 0;
}

_public_ int iommud_allow_iovas(IommudClient *c, uint32_t ioas_id, const IommudIOVARange *ranges,
                                size_t n_ranges, IommudError *err) {
        _cleanup_json_ json_object *p = params_new();
        json_object *a;

        if (n_ranges > 0 && !ranges)
                return iommud_error_setf(err, -EINVAL, "no ranges given");
        if (!p || add_u64(p, "ioasId", ioas_id) < 0)
                return nomem(err);
        a = json_object_new_array();
        if (json_util_add(p, "ranges", a) < 0)
                return nomem(err);
        for (size_t i = 0; i < n_ranges; i++) {
                json_object *o = json_object_new_object();

                if (!o || add_u64(o, "start", ranges[i].start) < 0 ||
                    add_u64(o, "last", ranges[i].last) < 0 || json_object_array_add(a, o) < 0) {
                        json_object_put(o);
                        return nomem(err);
                }
        }
        return call_void(c, "AllowIOVAs", p, err);
}

_public_ int iommud_map(IommudClient *c, uint32_t ioas_id, int memory_fd, uint64_t offset,
                        uint64_t length, const uint64_t *iova, unsigned flags, uint64_t *ret_iova,
                        IommudError *err) {
        _cleanup_json_ json_object *p = params_new();

        if (memory_fd < 0)
                return iommud_error_setf(err, -EBADF, "%d is not a file descriptor", memory_fd);
        if (flags & ~(unsigned)(IOMMUD_MAP_READABLE | IOMMUD_MAP_WRITEABLE))
                return iommud_error_setf(err, -EINVAL, "unknown map flags 0x%x", flags);
        if (!p || add_u64(p, "ioasId", ioas_id) < 0 || add_u64(p, "memoryFd", 0) < 0 ||
            add_u64(p, "offset", offset) < 0 || add_u64(p, "length", length) < 0 ||
            (iova && add_u64(p, "iova", *iova) < 0) ||
            json_util_add(p, "readable", json_object_new_boolean(flags & IOMMUD_MAP_READABLE)) < 0 ||
            json_util_add(p, "writeable", json_object_new_boolean(flags & IOMMUD_MAP_WRITEABLE)) < 0)
                return nomem(err);
        return call_get_u64(c, "Map", p, &memory_fd, 1, "iova", ret_iova, err);
}

_public_ int iommud_unmap(IommudClient *c, uint32_t ioas_id, uint64_t iova, uint64_t length,
                          uint64_t *ret_unmapped, IommudError *err) {
        _cleanup_json_ json_object *p = params_new();

        if (!p || add_u64(p, "ioasId", ioas_id) < 0 || add_u64(p, "iova", iova) < 0 ||
            add_u64(p, "length", length) < 0)
                return nomem(err);
        return call_get_u64(c, "Unmap", p, NULL, 0, "unmapped", ret_unmapped, err);
}

_public_ int iommud_copy(IommudClient *c, uint32_t src_ioas_id, uint64_t src_iova,
                         uint32_t dst_ioas_id, const uint64_t *dst_iova, uint64_t length,
                         uint64_t *ret_iova, IommudError *err) {
        _cleanup_json_ json_object *p = params_new();

        if (!p || add_u64(p, "srcIoasId", src_ioas_id) < 0 || add_u64(p, "srcIova", src_iova) < 0 ||
            add_u64(p, "dstIoasId", dst_ioas_id) < 0 ||
            (dst_iova && add_u64(p, "dstIova", *dst_iova) < 0) ||
            add_u64(p, "length", length) < 0)
                return nomem(err);
        return call_get_u64(c, "Copy", p, NULL, 0, "iova", ret_iova, err);
}

/* ----------------------------------------------------------------- PASIDs */

/* The stage-1 table as the IDL's Stage1: {type, data as lowercase hex}. */
static json_object *stage1_json(const IommudStage1 *s1) {
        static const char hex[] = "0123456789abcdef";
        _cleanup_free_ char *text = malloc(s1->size * 2 + 1);
        json_object *o;

        if (!text)
                return NULL;
        for (size_t i = 0; i < s1->size; i++) {
                text[2 * i] = hex[((const uint8_t *)s1->data)[i] >> 4];
                text[2 * i + 1] = hex[((const uint8_t *)s1->data)[i] & 0xf];
        }
        text[s1->size * 2] = 0;
        o = json_object_new_object();
        if (!o || add_str(o, "type", s1->type) < 0 || add_str(o, "data", text) < 0) {
                json_object_put(o);
                return NULL;
        }
        return o;
}

_public_ int iommud_bind_pasid(IommudClient *c, uint32_t device_id, uint32_t ioas_id,
                               const uint32_t *pasid, unsigned flags, const IommudStage1 *stage1,
                               uint32_t *ret_pasid, uint32_t *ret_hwpt_id, IommudError *err) {
        _cleanup_json_ json_object *p = params_new();
        VarlinkReply reply = VARLINK_REPLY_INIT;
        Error e = ERROR_INIT;
        uint32_t got_pasid, hwpt;
        int r;

        if (flags & ~(unsigned)IOMMUD_BIND_FAULTS)
                return iommud_error_setf(err, -EINVAL, "unknown bind flags 0x%x", flags);
        if (stage1 && (!stage1->type || (!stage1->data && stage1->size > 0)))
                return iommud_error_setf(err, -EINVAL, "the stage-1 table has no type or data");
        if (!p || add_u64(p, "deviceId", device_id) < 0 || add_u64(p, "ioasId", ioas_id) < 0 ||
            (pasid && add_u64(p, "pasid", *pasid) < 0) ||
            ((flags & IOMMUD_BIND_FAULTS) &&
             json_util_add(p, "faults", json_object_new_boolean(true)) < 0) ||
            (stage1 && json_util_add(p, "stage1", stage1_json(stage1)) < 0))
                return nomem(err);
        r = call(c, "BindPASID", p, &reply, err);
        if (r < 0)
                return r;
        if ((r = json_util_get_u32(reply.parameters, "pasid", 0, &got_pasid, &e)) >= 0)
                r = json_util_get_u32(reply.parameters, "hwptId", 0, &hwpt, &e);
        varlink_reply_clear(&reply);
        if (r < 0)
                return bad_reply(err, "BindPASID", &e);
        if (ret_pasid)
                *ret_pasid = got_pasid;
        if (ret_hwpt_id)
                *ret_hwpt_id = hwpt;
        return 0;
}

_public_ int iommud_unbind_pasid(IommudClient *c, uint32_t device_id, uint32_t pasid,
                                 IommudError *err) {
        _cleanup_json_ json_object *p = params_new();

        if (!p || add_u64(p, "deviceId", device_id) < 0 || add_u64(p, "pasid", pasid) < 0)
                return nomem(err);
        return call_void(c, "UnbindPASID", p, err);
}

/* ----------------------------------------------------------------- faults */

_public_ int iommud_respond_fault(IommudClient *c, uint64_t cookie, IommudFaultCode code,
                                  IommudError *err) {
        _cleanup_json_ json_object *p = params_new();

        if (code != IOMMUD_FAULT_SUCCESS && code != IOMMUD_FAULT_INVALID)
                return iommud_error_setf(err, -EINVAL, "unknown fault response code %d", (int)code);
        if (!p || add_u64(p, "cookie", cookie) < 0 ||
            add_str(p, "code", code == IOMMUD_FAULT_SUCCESS ? "success" : "invalid") < 0)
                return nomem(err);
        return call_void(c, "RespondFault", p, err);
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
DEFINE_TRIVIAL_CLEANUP_FUNC(IommudSession *, iommud_session_free);

static int open_stream(IommudClient *c, const char *method, json_object *p, IommudClient **ret,
                       IommudError *err);

_public_ int iommud_fault_stream_new(IommudFaultStream **ret, IommudClient *c,
                                     const uint32_t *device_id, IommudError *err) {
        _cleanup_(iommud_fault_stream_freep) IommudFaultStream *s = NULL;
        _cleanup_json_ json_object *p = params_new();
        int r;

        if (!ret || !c)
                return iommud_error_setf(err, -EINVAL, "no client given for the fault stream");
        if (!c->path)
                return iommud_error_setf(err, -EINVAL,
                                         "the client was made from an fd, so the socket to open "
                                         "the fault stream on is unknown");
        if (!p || (device_id && add_u64(p, "deviceId", *device_id) < 0))
                return nomem(err);
        s = calloc(1, sizeof(*s));
        if (!s)
                return nomem(err);
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
        f->has_pasid = present(o, "pasid");
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
        r = varlink_client_process(conn->vc, reply);
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
                return nomem(err);
        }
        r = fault ? parse_fault(fault, f, &e) : e.error;
        varlink_reply_clear(&reply);
        if (r < 0)
                return bad_reply(err, "WatchFaults", &e);
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
        r = iommud_client_new_flags(&conn, c->path, IOMMUD_CONNECT_NO_RECLAIM, err);
        if (r < 0)
                return r;
        r = iommud_join_session(conn, iommud_session_get_token(session), err);
        if (r >= 0) {
                r = varlink_client_send(conn->vc, method, p, NULL, 0, VARLINK_CLIENT_MORE);
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
        if (!c->path)
                return iommud_error_setf(err, -EINVAL,
                                         "the client was made from an fd, so the socket to open "
                                         "the event stream on is unknown");
        s = calloc(1, sizeof(*s));
        if (!s)
                return nomem(err);
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
        ev->has_device_id = present(o, "deviceId");
        if (ev->has_device_id && (r = json_util_get_u32(o, "deviceId", 0, &ev->device_id, e)) < 0)
                return r;
        return 0;
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
                return nomem(err);
        }
        ev->reply = json_object_get(reply.parameters);
        varlink_reply_clear(&reply);
        r = event ? parse_event(event, &ev->pub, &e) : e.error;
        if (r < 0) {
                iommud_event_free(&ev->pub);
                return bad_reply(err, "WatchEvents", &e);
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

/* ---------------------------------------------------------------- session */

_public_ int iommud_delegate(IommudClient *c, int *ret_fd, IommudError *err) {
        VarlinkReply reply = VARLINK_REPLY_INIT;
        Error e = ERROR_INIT;
        uint32_t index;
        int r, fd;

        if (!ret_fd)
                return iommud_error_setf(err, -EINVAL, "no place to return the iommufd");
        r = call(c, "Delegate", NULL, &reply, err);
        if (r < 0)
                return r;
        r = json_util_get_u32(reply.parameters, "iommufd", 0, &index, &e);
        if (r < 0) {
                varlink_reply_clear(&reply);
                return bad_reply(err, "Delegate", &e);
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
                if ((r = object_at(usage, i, "usage", &o, e)) < 0 ||
                    (r = json_util_get_string(o, "resource", 0, &u->resource, e)) < 0 ||
                    (r = json_util_get_u64(o, "used", 0, &u->used, e)) < 0 ||
                    (r = json_util_get_u64(o, "limit", JSON_UTIL_OPTIONAL, &u->limit, e)) < 0)
                        return r;
                u->has_limit = present(o, "limit");
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
        r = call(c, "GetSession", NULL, &reply, err);
        if (r < 0)
                return r;
        s = calloc(1, sizeof(*s));
        if (!s) {
                varlink_reply_clear(&reply);
                return nomem(err);
        }
        s->reply = json_object_get(reply.parameters);
        varlink_reply_clear(&reply);
        r = parse_session(s, &e);
        if (r == -ENOMEM)
                return nomem(err);
        if (r < 0)
                return bad_reply(err, "GetSession", &e);
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
        _cleanup_json_ json_object *p = params_new();

        if (!token)
                return iommud_error_setf(err, -EINVAL, "no session token given");
        if (!p || add_str(p, "token", token) < 0)
                return nomem(err);
        return call_void(c, "JoinSession", p, err);
}
