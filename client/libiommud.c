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

#include "assert-util.h"
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
        uint64_t call_timeout_ms;  /* 0: wait as long as it takes */
        char *token;             /* the session's, once known */
        unsigned n_reclaims;
};

int iommud_nomem(IommudError *err) {
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
        c->call_timeout_ms = IOMMUD_CALL_TIMEOUT_MS_DEFAULT;
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
                return iommud_nomem(err);
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
        assert_return(c, -EINVAL);
        c->reclaim_timeout_ms = timeout_ms;
        return 0;
}

_public_ int iommud_client_set_call_timeout(IommudClient *c, uint64_t timeout_ms) {
        assert_return(c, -EINVAL);
        c->call_timeout_ms = timeout_ms;
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

VarlinkClient *iommud_client_varlink(IommudClient *c) {
        return c->vc;
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
static int call_once(IommudClient *c, const char *method, json_object *params, const int *fds,
                     size_t n_fds, VarlinkReply *ret, bool *ret_delivered) {
        VarlinkClient *vc = c->vc;
        int timeout = c->call_timeout_ms == 0 ? -1 :
                      (int)MIN(c->call_timeout_ms, (uint64_t)INT32_MAX);
        int r;

        *ret_delivered = false;
        r = varlink_client_send(vc, method, params, fds, n_fds, 0);
        if (r < 0)
                return r;
        r = varlink_client_wait(vc, timeout, ret);
        if (r < 0)
                *ret_delivered = !(varlink_client_get_events(vc) & POLLOUT);
        return r;
}

/*
 * The connection dropped: connects again, and makes JoinSession(token) the
 * first call, retrying with a doubling pause until the reclaim timeout.
 */
static int client_reclaim(IommudClient *c, const char *method, IommudError *err) {
        _cleanup_json_ json_object *p = iommud_params_new();
        uint64_t deadline = now_ms() + c->reclaim_timeout_ms;
        uint64_t delay = RECLAIM_DELAY_FIRST_MS;
        int r;

        if (!p || iommud_add_str(p, "token", c->token) < 0)
                return iommud_nomem(err);
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
                /* GetSession allocates nothing: QuotaExceeded is iommud refusing the connection
                 * itself (too many connections), which it closed after saying so. */
                if (r == -EDQUOT) {
                        c->broken = true;
                        return r;
                }
                if (r < 0)
                        c->reclaim = false; /* iommud refused GetSession: no token, no reclaim */
        }
        r = call_once(c, method, params, fds, n_fds, &reply, &delivered);
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
                r = call_once(c, method, params, fds, n_fds, &reply, &delivered);
        }
        if (r < 0) {
                /* A late reply would be taken for the next call's: the connection is done. */
                c->broken = true;
                if (r == -ECONNRESET || r == -EPIPE)
                        return iommud_error_setf(err, -ECONNRESET,
                                                 "iommud closed the connection during %s", method);
                if (r == -ETIMEDOUT)
                        return iommud_error_setf(err, r,
                                                 "%s did not answer %s within %" PRIu64 " ms",
                                                 c->path ?: "iommud", method, c->call_timeout_ms);
                if (r == -EBADMSG || r == -EPROTO)
                        return iommud_error_setf(err, -EPROTO,
                                                 "%s is not iommud: its answer to %s is not "
                                                 "Varlink", c->path ?: "the socket", method);
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

int iommud_call(IommudClient *c, const char *method, json_object *params, VarlinkReply *ret,
                IommudError *err) {
        char full[128];

        (void)snprintf(full, sizeof(full), IOMMUD_BROKER_INTERFACE ".%s", method);
        return call_full(c, full, params, NULL, 0, ret, err);
}

int iommud_call_fds(IommudClient *c, const char *method, json_object *params, const int *fds,
                    size_t n_fds, VarlinkReply *ret, IommudError *err) {
        char full[128];

        (void)snprintf(full, sizeof(full), IOMMUD_BROKER_INTERFACE ".%s", method);
        return call_full(c, full, params, fds, n_fds, ret, err);
}

/* A call whose reply carries nothing the caller needs. */
int iommud_call_void(IommudClient *c, const char *method, json_object *params, IommudError *err) {
        VarlinkReply reply = VARLINK_REPLY_INIT;
        int r;

        r = iommud_call(c, method, params, &reply, err);
        varlink_reply_clear(&reply);
        return r;
}

int iommud_bad_reply(IommudError *err, const char *method, const Error *e) {
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
                        return iommud_nomem(err);
                }
                *ret_reply = text;
        }
        varlink_reply_clear(&reply);
        return 0;
}

/* ------------------------------------------------------------- parameters */

json_object *iommud_params_new(void) {
        return json_object_new_object();
}

int iommud_add_u64(json_object *p, const char *key, uint64_t v) {
        return json_util_add(p, key, json_object_new_uint64(v));
}

int iommud_add_str(json_object *p, const char *key, const char *v) {
        return json_util_add(p, key, json_object_new_string(v));
}

/* ---------------------------------------------------------------- helpers */

/* The strings of a JSON array of strings, borrowed from it; NULL for an empty one. */
int iommud_string_array(json_object *a, const char ***ret, size_t *ret_n, const char *what,
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
bool iommud_present(json_object *obj, const char *key) {
        json_object *v;

        return json_object_object_get_ex(obj, key, &v) && !json_object_is_type(v, json_type_null);
}

int iommud_object_at(json_object *a, size_t i, const char *what, json_object **ret, Error *e) {
        json_object *o = json_object_array_get_idx(a, i);

        if (!json_object_is_type(o, json_type_object))
                return error_set(e, -EINVAL, "%s[%zu] is %s, not an object", what, i,
                                 json_util_type_phrase(o));
        *ret = o;
        return 0;
}
