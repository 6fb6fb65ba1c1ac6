/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <json-c/json.h>

#include "varlink-broker-idl.h"
#include "varlink-broker.h"
#include "backend-names.h"
#include "json-util.h"
#include "log.h"
#include "peer-creds.h"
#include "session-state.h"

struct Broker {
        SessionHost *host;
        const char *dev_root;
        const char *proc_root;
        PeerCreds *pending_creds; /* for the connection broker_open_connection() adds */
        struct event_base *base;
        uint64_t reclaim_grace_ms;
        void (*changed)(void *userdata);
        void *changed_userdata;
        uint64_t next_serial;
};

/* A WatchFaults stream: the call it replies to and the router's watch. */
typedef struct BrokerWatch BrokerWatch;
struct BrokerWatch {
        BrokerWatch *next;
        VarlinkConnection *conn;
        VarlinkCall *call;
        FaultWatch *watch;
};

/*
 * What the transport adds to a session: the connections that share it
 * (JoinSession) and the token that lets another connection join.  The
 * session lives until its last connection closes.
 */
typedef struct BrokerSession {
        Broker *broker;
        Session *session;
        VarlinkConnection **conns;
        size_t n_conns;
        char token[33];
        uint64_t serial;          /* names its fds in the fd store */
        VarlinkCall **event_streams; /* WatchEvents() streams */
        size_t n_event_streams;
        BrokerWatch *watches;     /* WatchFaults() streams */
        struct event *grace;      /* a restored session nobody reclaimed yet */
} BrokerSession;

static void broker_changed(Broker *b) {
        if (b && b->changed)
                b->changed(b->changed_userdata);
}

/* Ends the fault streams of c (every stream when c is NULL); what they left unanswered is INVALID. */
static void broker_session_end_watches(BrokerSession *bs, VarlinkConnection *c) {
        for (BrokerWatch **p = &bs->watches; *p;) {
                BrokerWatch *w = *p;

                if (c && w->conn != c) {
                        p = &w->next;
                        continue;
                }
                *p = w->next;
                fault_watch_free(w->watch);
                varlink_call_unref(w->call);
                free(w);
        }
}

static void broker_session_free(BrokerSession *bs) {
        Broker *b;

        if (!bs)
                return;
        b = bs->broker;
        broker_session_end_watches(bs, NULL);
        for (size_t i = 0; i < bs->n_event_streams; i++) {
                (void)varlink_call_reply(bs->event_streams[i], NULL);
                varlink_call_unref(bs->event_streams[i]);
        }
        free(bs->event_streams);
        if (bs->grace)
                event_free(bs->grace);
        session_free(bs->session);
        free(bs->conns);
        free(bs);
        /* The fd store forgets the session's fds, the state forgets the session. */
        broker_changed(b);
}

static int broker_session_add_conn(BrokerSession *bs, VarlinkConnection *c) {
        VarlinkConnection **a = realloc(bs->conns, (bs->n_conns + 1) * sizeof(*a));

        if (!a)
                return -ENOMEM;
        bs->conns = a;
        bs->conns[bs->n_conns++] = c;
        varlink_connection_set_userdata(c, bs);
        return 0;
}

/* Ends the event streams a connection had open (it is going away). */
static void broker_session_drop_event_streams(BrokerSession *bs, VarlinkConnection *c) {
        for (size_t i = 0; i < bs->n_event_streams;) {
                if (varlink_call_get_connection(bs->event_streams[i]) != c) {
                        i++;
                        continue;
                }
                varlink_call_unref(bs->event_streams[i]);
                bs->event_streams[i] = bs->event_streams[--bs->n_event_streams];
        }
}

/* Detaches c; frees the session when it was the last connection. */
static void broker_session_remove_conn(BrokerSession *bs, VarlinkConnection *c) {
        broker_session_end_watches(bs, c);
        broker_session_drop_event_streams(bs, c);
        for (size_t i = 0; i < bs->n_conns; i++)
                if (bs->conns[i] == c) {
                        bs->conns[i] = bs->conns[--bs->n_conns];
                        break;
                }
        varlink_connection_set_userdata(c, NULL);
        if (bs->n_conns == 0)
                broker_session_free(bs);
}

/* ---- replies --------------------------------------------------------------------------- */

static json_object *u64_node(uint64_t v) {
        return v > INT64_MAX ? json_object_new_uint64(v) : json_object_new_int64((int64_t)v);
}

static int reply_error(VarlinkCall *call, const BrokerError *e) {
        json_object *p = json_object_new_object();

        if (!p)
                return -ENOMEM;
        for (size_t i = 0; i < e->n_params; i++) {
                const BrokerErrorParam *bp = &e->params[i];
                json_object *v = NULL;

                switch (bp->type) {
                case BROKER_PARAM_STRING:
                        v = json_object_new_string(bp->str);
                        break;
                case BROKER_PARAM_U64:
                        v = u64_node(bp->u64);
                        break;
                case BROKER_PARAM_I64:
                        v = json_object_new_int64(bp->i64);
                        break;
                case BROKER_PARAM_BOOL:
                        v = json_object_new_boolean(bp->b);
                        break;
                }
                (void)json_util_add(p, bp->key, v);
        }
        log_debug("%s: %s: %s", varlink_call_get_method(call),
                  e->error.name ?: BROKER_ERROR_BACKEND_ERROR, error_message(&e->error));
        return varlink_call_error(call, e->error.name ?: BROKER_ERROR_BACKEND_ERROR, p);
}

/* InvalidFd names the index of the fd the client sent. */
static int reply_error_fd(VarlinkCall *call, BrokerError *e, uint32_t index) {
        if (e->error.name && streq(e->error.name, BROKER_ERROR_INVALID_FD))
                broker_error_add_u64(e, "index", index);
        return reply_error(call, e);
}

static int reply_invalid_parameter(VarlinkCall *call, const char *parameter, const char *fmt, ...)
        _printf_(3, 4);
static int reply_invalid_parameter(VarlinkCall *call, const char *parameter, const char *fmt, ...) {
        char reason[ERROR_MESSAGE_MAX];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(reason, sizeof(reason), fmt, ap);
        va_end(ap);

        /* The standard error carries only the parameter's name; the sentence goes to the log. */
        log_debug("%s: invalid parameter '%s': %s", varlink_call_get_method(call), parameter,
                  reason);
        return varlink_call_error_invalid_parameter(call, parameter);
}

static BrokerSession *call_broker_session(VarlinkCall *call) {
        return varlink_connection_get_userdata(varlink_call_get_connection(call));
}

static Session *call_session(VarlinkCall *call) {
        BrokerSession *bs = call_broker_session(call);

        return bs ? bs->session : NULL;
}

/* A connection whose session was reaped (its client died) serves nothing more. */
#define REQUIRE_SESSION(call)                                                                              do {                                                                                                       if (!call_session(call)) {                                                                                 varlink_connection_close(varlink_call_get_connection(call));                                       return -ENOTCONN;                                                                          }                                                                                          } while (0)

/*
 * Rejects members a method does not know: a typo ("iova " for "iova") must not
 * silently turn a fixed mapping into an automatic one.
 */
static int check_known(VarlinkCall *call, json_object *params, const char *const *known) {
        json_object_object_foreach(params, key, val) {
                bool ok = false;

                (void)val;
                for (const char *const *k = known; *k; k++)
                        if (streq(*k, key)) {
                                ok = true;
                                break;
                        }
                if (!ok)
                        return reply_invalid_parameter(call, key,
                                                       "parameter '%s' is not known to %s", key,
                                                       varlink_call_get_method(call)) < 0
                                       ? -ENOMEM
                                       : 1;
        }
        return 0;
}

#define CHECK_KNOWN(call, params, ...)                                                             \
        do {                                                                                       \
                static const char *const _known[] = { __VA_ARGS__, NULL };                         \
                int _r = check_known((call), (params), _known);                                    \
                if (_r != 0)                                                                       \
                        return _r < 0 ? _r : 0;                                                    \
        } while (0)

#define CHECK_NO_PARAMS(call, params)                                                              \
        do {                                                                                       \
                static const char *const _known[] = { NULL };                                      \
                int _r = check_known((call), (params), _known);                                    \
                if (_r != 0)                                                                       \
                        return _r < 0 ? _r : 0;                                                    \
        } while (0)

/* Runs a json_util getter; on failure replies InvalidParameter naming the member. */
#define GET(call, getter, params, name, flags, ret)                                                \
        do {                                                                                       \
                Error _e = ERROR_INIT;                                                             \
                if (getter((params), (name), (flags), (ret), &_e) < 0)                             \
                        return reply_invalid_parameter((call), (name), "%s",                       \
                                                       error_message(&_e));                        \
        } while (0)

static int take_fd_param(VarlinkCall *call, json_object *params, const char *name, int *ret_fd,
                         bool *ret_present) {
        uint32_t index = UINT32_MAX;
        Error e = ERROR_INIT;
        int r, fd;

        r = json_util_get_u32(params, name, JSON_UTIL_OPTIONAL, &index, &e);
        if (r < 0)
                return reply_invalid_parameter(call, name, "%s", error_message(&e)) < 0 ? -ENOMEM
                                                                                      : 1;
        if (index == UINT32_MAX) {
                *ret_present = false;
                return 0;
        }
        r = varlink_call_take_fd(call, index, &fd);
        if (r == -ENXIO)
                return reply_invalid_parameter(call, name,
                                               "parameter '%s': fd index %" PRIu32
                                               " does not exist, the call carried %zu fd(s)",
                                               name, index, varlink_call_get_n_fds(call)) < 0
                               ? -ENOMEM
                               : 1;
        if (r < 0)
                return reply_invalid_parameter(call, name,
                                               "parameter '%s': fd index %" PRIu32
                                               " was already used by another parameter",
                                               name, index) < 0
                               ? -ENOMEM
                               : 1;
        *ret_fd = fd;
        *ret_present = true;
        return 0;
}

#define TAKE_FD_PARAM(call, params, name, ret_fd, ret_present)                                     \
        do {                                                                                       \
                int _r = take_fd_param((call), (params), (name), (ret_fd), (ret_present));         \
                if (_r != 0)                                                                       \
                        return _r < 0 ? _r : 0;                                                    \
        } while (0)

/* Methods after which the state a restarted daemon needs has changed. */
static bool method_mutates(const char *method) {
        static const char *const m[] = {
                "AttachDevice", "DetachDevice", "CreateAddressSpace", "DestroyAddressSpace",
                "AttachToAddressSpace", "AllowIOVAs", "Map", "Unmap", "Copy", "BindPASID",
                "UnbindPASID", "JoinSession", NULL,
        };
        const char *dot = strrchr(method, '.');

        for (size_t i = 0; m[i]; i++)
                if (streq(dot ? dot + 1 : method, m[i]))
                        return true;
        return false;
}

static int reply(VarlinkCall *call, json_object *p) {
        BrokerSession *bs = varlink_connection_get_userdata(varlink_call_get_connection(call));

        /* Recorded before the client hears of it: a crash right after the reply loses nothing. */
        if (bs && method_mutates(varlink_call_get_method(call)))
                broker_changed(bs->broker);
        return varlink_call_reply(call, p);
}

/* reply() for {"<key>": <value>}, formatted directly: Map and Unmap answer with this. */
static int reply_u64(VarlinkCall *call, const char *key, uint64_t value) {
        BrokerSession *bs = varlink_connection_get_userdata(varlink_call_get_connection(call));
        char text[96];
        int n;

        n = snprintf(text, sizeof(text), "{\"%s\":%" PRIu64 "}", key, value);
        assert(n > 0 && (size_t)n < sizeof(text));
        if (bs && method_mutates(varlink_call_get_method(call)))
                broker_changed(bs->broker);
        return varlink_call_reply_text(call, text, (size_t)n);
}

/* ---- methods --------------------------------------------------------------------------- */

static json_object *range_json(uint64_t start, uint64_t last) {
        json_object *o = json_object_new_object();

        if (!o)
                return NULL;
        (void)json_util_add(o, "start", u64_node(start));
        (void)json_util_add(o, "last", u64_node(last));
        return o;
}


static json_object *decision_steps_json(const PolicyDecision *d) {
        json_object *steps = json_object_new_array();

        if (!steps)
                return NULL;
        for (size_t i = 0; i < d->n_steps; i++) {
                json_object *s = json_object_new_object();

                if (!s)
                        break;
                (void)json_util_add(s, "step",
                                    json_object_new_string(policy_step_to_string(d->steps[i].step)));
                (void)json_util_add(
                        s, "verdict",
                        json_object_new_string(policy_verdict_to_string(d->steps[i].verdict)));
                (void)json_util_add(s, "reason",
                                    json_object_new_string(d->steps[i].reason ?: ""));
                json_object_array_add(steps, s);
        }
        return steps;
}

static json_object *group_json(const TopoGroup *g) {
        json_object *o = json_object_new_object(), *devs = json_object_new_array(),
                    *regions = json_object_new_array();
        const char *iommu = NULL;

        if (!o || !devs || !regions) {
                json_object_put(o);
                json_object_put(devs);
                json_object_put(regions);
                return NULL;
        }
        for (size_t i = 0; i < g->n_devices; i++) {
                json_object_array_add(devs, json_object_new_string(g->devices[i]->name));
                if (!iommu && g->devices[i]->iommu)
                        iommu = g->devices[i]->iommu->name;
        }
        for (size_t i = 0; i < g->n_regions; i++) {
                json_object *r = range_json(g->regions[i].start, g->regions[i].last);

                (void)json_util_add(r, "type",
                                    json_object_new_string(region_type_to_idl(g->regions[i].type)));
                json_object_array_add(regions, r);
        }
        (void)json_util_add(o, "id", json_object_new_int64(g->id));
        if (g->type)
                (void)json_util_add(o, "type", json_object_new_string(g->type));
        (void)json_util_add(o, "viable", json_object_new_boolean(session_group_viable(g)));
        (void)json_util_add(o, "devices", devs);
        (void)json_util_add(o, "reservedRegions", regions);
        if (iommu)
                (void)json_util_add(o, "iommu", json_object_new_string(iommu));
        return o;
}

static json_object *device_json(Broker *b, Session *s, const TopoDevice *d) {
        _cleanup_(policy_decision_clear) PolicyDecision dec = {};
        json_object *o = json_object_new_object();
        const char *held_by;

        if (!o)
                return NULL;
        (void)json_util_add(o, "name", json_object_new_string(d->name));
        (void)json_util_add(o, "vendor", json_object_new_int64(d->vendor));
        (void)json_util_add(o, "device", json_object_new_int64(d->device));
        (void)json_util_add(o, "class", json_object_new_int64(d->class));
        if (d->driver)
                (void)json_util_add(o, "driver", json_object_new_string(d->driver));
        if (d->group)
                (void)json_util_add(o, "group", json_object_new_int64(d->group->id));
        if (d->cdev_name)
                (void)json_util_add(o, "cdev", json_object_new_string(d->cdev_name));
        if (d->numa_node >= 0)
                (void)json_util_add(o, "numaNode", json_object_new_int64(d->numa_node));
        (void)json_util_add(o, "eligible",
                            json_object_new_boolean(session_explain_device(s, d->name, &dec,
                                                                           NULL) >= 0 &&
                                                    dec.allowed));
        held_by = session_host_device_held_by(b->host, d->name, s);
        if (held_by)
                (void)json_util_add(o, "heldBy", json_object_new_string(held_by));
        return o;
}

static int method_get_topology(VarlinkCall *call, json_object *params, VarlinkCallFlags flags,
                               void *userdata) {
        Broker *b = userdata;
        const Topology *t = b->host->topology;
        json_object *out, *groups, *devices;

        REQUIRE_SESSION(call);
        CHECK_NO_PARAMS(call, params);

        out = json_object_new_object();
        groups = json_object_new_array();
        devices = json_object_new_array();
        if (!out || !groups || !devices) {
                json_object_put(out);
                json_object_put(groups);
                json_object_put(devices);
                return -ENOMEM;
        }
        for (size_t i = 0; i < t->n_groups; i++)
                json_object_array_add(groups, group_json(t->groups[i]));
        for (size_t i = 0; i < t->n_devices; i++)
                json_object_array_add(devices, device_json(b, call_session(call), t->devices[i]));
        (void)json_util_add(out, "groups", groups);
        (void)json_util_add(out, "devices", devices);
        return reply(call, out);
}

static int method_explain_device(VarlinkCall *call, json_object *params, VarlinkCallFlags flags,
                                 void *userdata) {
        _cleanup_(policy_decision_clear) PolicyDecision dec = {};
        BrokerError e = BROKER_ERROR_INIT;
        const char *device;
        json_object *out;

        REQUIRE_SESSION(call);
        CHECK_KNOWN(call, params, "device");
        GET(call, json_util_get_string, params, "device", 0, &device);

        if (session_explain_device(call_session(call), device, &dec, &e) < 0)
                return reply_error(call, &e);
        out = json_object_new_object();
        if (!out)
                return -ENOMEM;
        (void)json_util_add(out, "allowed", json_object_new_boolean(dec.allowed));
        (void)json_util_add(out, "steps", decision_steps_json(&dec));
        return reply(call, out);
}

static json_object *capabilities_json(uint64_t caps) {
        json_object *a = json_object_new_array();
        const char *names[16];
        int n;

        if (!a)
                return NULL;
        n = backend_hw_caps_to_strv(caps, names, ELEMENTSOF(names));
        for (int i = 0; i < n; i++)
                json_object_array_add(a, json_object_new_string(names[i]));
        return a;
}

static int method_attach_device(VarlinkCall *call, json_object *params, VarlinkCallFlags flags,
                                void *userdata) {
        BrokerError e = BROKER_ERROR_INIT;
        SessionDeviceInfo info;
        _cleanup_close_ int fd = -EBADF;
        const char *device = NULL;
        uint32_t fd_index = 0;
        bool have_fd = false;
        json_object *out;
        int r;

        REQUIRE_SESSION(call);
        CHECK_KNOWN(call, params, "fd", "device");
        GET(call, json_util_get_string, params, "device", JSON_UTIL_OPTIONAL, &device);
        TAKE_FD_PARAM(call, params, "fd", &fd, &have_fd);
        if (have_fd)
                (void)json_util_get_u32(params, "fd", 0, &fd_index, NULL);
        if (have_fd == !!device)
                return reply_invalid_parameter(call, have_fd ? "device" : "fd",
                                               "exactly one of 'fd' (a VFIO device fd) and "
                                               "'device' (a device name) must be given");

        if (have_fd)
                r = session_attach_device_fd(call_session(call), fd, &info, &e);
        else
                r = session_attach_device_name(call_session(call), device, &info, &e);
        if (r < 0)
                return reply_error_fd(call, &e, fd_index);

        out = json_object_new_object();
        if (!out)
                return -ENOMEM;
        (void)json_util_add(out, "deviceId", json_object_new_int64(info.device_id));
        (void)json_util_add(out, "bdf", json_object_new_string(info.bdf));
        if (info.group != UINT32_MAX)
                (void)json_util_add(out, "group", json_object_new_int64(info.group));
        (void)json_util_add(out, "pasidBits", json_object_new_int64(info.pasid_bits));
        (void)json_util_add(out, "capabilities", capabilities_json(info.capabilities));
        return reply(call, out);
}

static int method_detach_device(VarlinkCall *call, json_object *params, VarlinkCallFlags flags,
                                void *userdata) {
        BrokerError e = BROKER_ERROR_INIT;
        uint32_t id;

        REQUIRE_SESSION(call);
        CHECK_KNOWN(call, params, "deviceId");
        GET(call, json_util_get_u32, params, "deviceId", 0, &id);
        if (session_detach_device(call_session(call), id, &e) < 0)
                return reply_error(call, &e);
        return reply(call, NULL);
}

static int method_create_address_space(VarlinkCall *call, json_object *params,
                                       VarlinkCallFlags flags, void *userdata) {
        BrokerError e = BROKER_ERROR_INIT;
        json_object *out;
        uint32_t id;

        REQUIRE_SESSION(call);
        CHECK_NO_PARAMS(call, params);
        if (session_create_address_space(call_session(call), &id, &e) < 0)
                return reply_error(call, &e);
        out = json_object_new_object();
        if (!out)
                return -ENOMEM;
        (void)json_util_add(out, "ioasId", json_object_new_int64(id));
        return reply(call, out);
}

static int method_destroy_address_space(VarlinkCall *call, json_object *params,
                                        VarlinkCallFlags flags, void *userdata) {
        BrokerError e = BROKER_ERROR_INIT;
        uint32_t id;

        REQUIRE_SESSION(call);
        CHECK_KNOWN(call, params, "ioasId");
        GET(call, json_util_get_u32, params, "ioasId", 0, &id);
        if (session_destroy_address_space(call_session(call), id, &e) < 0)
                return reply_error(call, &e);
        return reply(call, NULL);
}

static int method_attach_to_address_space(VarlinkCall *call, json_object *params,
                                          VarlinkCallFlags flags, void *userdata) {
        BrokerError e = BROKER_ERROR_INIT;
        uint32_t dev, ioas, hwpt;
        json_object *out;

        REQUIRE_SESSION(call);
        CHECK_KNOWN(call, params, "deviceId", "ioasId");
        GET(call, json_util_get_u32, params, "deviceId", 0, &dev);
        GET(call, json_util_get_u32, params, "ioasId", 0, &ioas);
        if (session_attach_to_address_space(call_session(call), dev, ioas, &hwpt, &e) < 0)
                return reply_error(call, &e);
        out = json_object_new_object();
        if (!out)
                return -ENOMEM;
        (void)json_util_add(out, "hwptId", json_object_new_int64(hwpt));
        return reply(call, out);
}

static int method_get_iova_ranges(VarlinkCall *call, json_object *params, VarlinkCallFlags flags,
                                  void *userdata) {
        BrokerError e = BROKER_ERROR_INIT;
        _cleanup_free_ IovaRange *ranges = NULL;
        json_object *out, *arr;
        uint64_t alignment;
        size_t n;
        uint32_t id;

        REQUIRE_SESSION(call);
        CHECK_KNOWN(call, params, "ioasId");
        GET(call, json_util_get_u32, params, "ioasId", 0, &id);
        if (session_get_iova_ranges(call_session(call), id, &ranges, &n, &alignment, &e) < 0)
                return reply_error(call, &e);
        out = json_object_new_object();
        arr = json_object_new_array();
        if (!out || !arr) {
                json_object_put(out);
                json_object_put(arr);
                return -ENOMEM;
        }
        for (size_t i = 0; i < n; i++)
                json_object_array_add(arr, range_json(ranges[i].start, ranges[i].last));
        (void)json_util_add(out, "ranges", arr);
        (void)json_util_add(out, "alignment", u64_node(alignment));
        return reply(call, out);
}

static int method_allow_iovas(VarlinkCall *call, json_object *params, VarlinkCallFlags flags,
                              void *userdata) {
        BrokerError e = BROKER_ERROR_INIT;
        _cleanup_free_ IovaRange *ranges = NULL;
        json_object *arr;
        uint32_t id;
        size_t n;

        REQUIRE_SESSION(call);
        CHECK_KNOWN(call, params, "ioasId", "ranges");
        GET(call, json_util_get_u32, params, "ioasId", 0, &id);
        GET(call, json_util_get_array, params, "ranges", 0, &arr);

        n = json_object_array_length(arr);
        if (n > SESSION_ALLOW_IOVAS_MAX)
                return reply_invalid_parameter(call, "ranges",
                                               "parameter 'ranges': %zu ranges, at most %d are "
                                               "accepted",
                                               n, SESSION_ALLOW_IOVAS_MAX);
        ranges = calloc(n + 1, sizeof(*ranges));
        if (!ranges)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                json_object *r = json_object_array_get_idx(arr, i);
                Error ge = ERROR_INIT;

                if (!json_object_is_type(r, json_type_object))
                        return reply_invalid_parameter(call, "ranges",
                                                       "parameter 'ranges[%zu]': expected an "
                                                       "object {start, last}, got %s",
                                                       i, json_util_type_phrase(r));
                if (json_util_get_u64(r, "start", 0, &ranges[i].start, &ge) < 0 ||
                    json_util_get_u64(r, "last", 0, &ranges[i].last, &ge) < 0)
                        return reply_invalid_parameter(call, "ranges", "ranges[%zu]: %s", i,
                                                       error_message(&ge));
        }
        if (session_allow_iovas(call_session(call), id, ranges, n, &e) < 0)
                return reply_error(call, &e);
        return reply(call, NULL);
}

static int method_map(VarlinkCall *call, json_object *params, VarlinkCallFlags flags,
                      void *userdata) {
        BrokerError e = BROKER_ERROR_INIT;
        _cleanup_close_ int fd = -EBADF;
        SessionMapArgs a = {};
        uint32_t fd_index = 0;
        bool have_fd = false;
        json_object *iova_node = NULL;
        uint64_t iova;

        REQUIRE_SESSION(call);
        CHECK_KNOWN(call, params, "ioasId", "memoryFd", "offset", "length", "iova", "readable",
                    "writeable");
        GET(call, json_util_get_u32, params, "ioasId", 0, &a.ioas_id);
        GET(call, json_util_get_u64, params, "offset", 0, &a.offset);
        GET(call, json_util_get_u64, params, "length", 0, &a.length);
        GET(call, json_util_get_bool, params, "readable", 0, &a.readable);
        GET(call, json_util_get_bool, params, "writeable", 0, &a.writeable);
        GET(call, json_util_get_u32, params, "memoryFd", 0, &fd_index);
        GET(call, json_util_get_u64, params, "iova", JSON_UTIL_OPTIONAL, &a.iova);
        if (json_object_object_get_ex(params, "iova", &iova_node) && iova_node)
                a.fixed_iova = true;
        TAKE_FD_PARAM(call, params, "memoryFd", &fd, &have_fd);
        if (!have_fd)
                return reply_invalid_parameter(call, "memoryFd",
                                               "parameter 'memoryFd' is missing: the index of "
                                               "the memfd sent with the call");
        a.fd = fd;

        if (session_map(call_session(call), &a, &iova, &e) < 0)
                return reply_error_fd(call, &e, fd_index);
        return reply_u64(call, "iova", iova);
}

static int method_unmap(VarlinkCall *call, json_object *params, VarlinkCallFlags flags,
                        void *userdata) {
        BrokerError e = BROKER_ERROR_INIT;
        uint64_t iova, length, unmapped;
        uint32_t id;

        REQUIRE_SESSION(call);
        CHECK_KNOWN(call, params, "ioasId", "iova", "length");
        GET(call, json_util_get_u32, params, "ioasId", 0, &id);
        GET(call, json_util_get_u64, params, "iova", 0, &iova);
        GET(call, json_util_get_u64, params, "length", 0, &length);
        if (session_unmap(call_session(call), id, iova, length, &unmapped, &e) < 0)
                return reply_error(call, &e);
        return reply_u64(call, "unmapped", unmapped);
}

static int method_copy(VarlinkCall *call, json_object *params, VarlinkCallFlags flags,
                       void *userdata) {
        BrokerError e = BROKER_ERROR_INIT;
        SessionCopyArgs a = {};
        json_object *out, *node = NULL;
        uint64_t iova;

        REQUIRE_SESSION(call);
        CHECK_KNOWN(call, params, "srcIoasId", "srcIova", "dstIoasId", "dstIova", "length");
        GET(call, json_util_get_u32, params, "srcIoasId", 0, &a.src_ioas_id);
        GET(call, json_util_get_u64, params, "srcIova", 0, &a.src_iova);
        GET(call, json_util_get_u32, params, "dstIoasId", 0, &a.dst_ioas_id);
        GET(call, json_util_get_u64, params, "dstIova", JSON_UTIL_OPTIONAL, &a.dst_iova);
        GET(call, json_util_get_u64, params, "length", 0, &a.length);
        if (json_object_object_get_ex(params, "dstIova", &node) && node)
                a.fixed_iova = true;
        if (session_copy(call_session(call), &a, &iova, &e) < 0)
                return reply_error(call, &e);
        out = json_object_new_object();
        if (!out)
                return -ENOMEM;
        (void)json_util_add(out, "iova", u64_node(iova));
        return reply(call, out);
}

static int hex_decode(const char *hex, uint8_t **ret, size_t *ret_len) {
        size_t n = strlen(hex);
        uint8_t *buf;

        if (n == 0 || n % 2 != 0)
                return -EINVAL;
        buf = malloc(n / 2);
        if (!buf)
                return -ENOMEM;
        for (size_t i = 0; i < n / 2; i++) {
                unsigned v;

                if (sscanf(hex + 2 * i, "%2x", &v) != 1 || !isxdigit((unsigned char)hex[2 * i]) ||
                    !isxdigit((unsigned char)hex[2 * i + 1])) {
                        free(buf);
                        return -EINVAL;
                }
                buf[i] = (uint8_t)v;
        }
        *ret = buf;
        *ret_len = n / 2;
        return 0;
}

static int method_bind_pasid(VarlinkCall *call, json_object *params, VarlinkCallFlags flags,
                             void *userdata) {
        _cleanup_free_ uint8_t *data = NULL;
        BrokerError e = BROKER_ERROR_INIT;
        SessionBindPasidArgs a = {};
        json_object *out, *node = NULL, *stage1 = NULL;
        uint32_t pasid, hwpt;

        REQUIRE_SESSION(call);
        CHECK_KNOWN(call, params, "deviceId", "ioasId", "pasid", "faults", "stage1");
        GET(call, json_util_get_u32, params, "deviceId", 0, &a.device_id);
        GET(call, json_util_get_u32, params, "ioasId", 0, &a.ioas_id);
        GET(call, json_util_get_u32, params, "pasid", JSON_UTIL_OPTIONAL, &a.pasid);
        GET(call, json_util_get_bool, params, "faults", JSON_UTIL_OPTIONAL, &a.faults);
        if (json_object_object_get_ex(params, "pasid", &node) && node)
                a.has_pasid = true;
        if (json_object_object_get_ex(params, "stage1", &stage1) && stage1) {
                const char *type = NULL, *hex = NULL;

                if (!json_object_is_type(stage1, json_type_object))
                        return reply_invalid_parameter(call, "stage1", "stage1 is not an object");
                CHECK_KNOWN(call, stage1, "type", "data");
                GET(call, json_util_get_string, stage1, "type", 0, &type);
                GET(call, json_util_get_string, stage1, "data", 0, &hex);
                if (streq(type, "vtd"))
                        a.stage1_type = BACKEND_HWPT_DATA_VTD_S1;
                else if (streq(type, "arm_smmuv3"))
                        a.stage1_type = BACKEND_HWPT_DATA_ARM_SMMUV3;
                else
                        return reply_invalid_parameter(call, "stage1",
                                                       "stage1.type '%s' is not vtd or arm_smmuv3",
                                                       type);
                if (hex_decode(hex, &data, &a.stage1_len) < 0)
                        return reply_invalid_parameter(call, "stage1",
                                                       "stage1.data is not a hex string of whole "
                                                       "bytes");
                a.stage1_data = data;
        }
        if (session_bind_pasid(call_session(call), &a, &pasid, &hwpt, &e) < 0)
                return reply_error(call, &e);
        out = json_object_new_object();
        if (!out)
                return -ENOMEM;
        (void)json_util_add(out, "pasid", json_object_new_int64(pasid));
        (void)json_util_add(out, "hwptId", json_object_new_int64(hwpt));
        return reply(call, out);
}

static int method_unbind_pasid(VarlinkCall *call, json_object *params, VarlinkCallFlags flags,
                               void *userdata) {
        BrokerError e = BROKER_ERROR_INIT;
        uint32_t dev, pasid;

        REQUIRE_SESSION(call);
        CHECK_KNOWN(call, params, "deviceId", "pasid");
        GET(call, json_util_get_u32, params, "deviceId", 0, &dev);
        GET(call, json_util_get_u32, params, "pasid", 0, &pasid);
        if (session_unbind_pasid(call_session(call), dev, pasid, &e) < 0)
                return reply_error(call, &e);
        return reply(call, NULL);
}

/* Appends the decimal digits of v at p; returns the end. */
static char *put_u64(char *p, uint64_t v) {
        char tmp[20];
        size_t n = 0;

        do
                tmp[n++] = (char)('0' + v % 10);
        while ((v /= 10) > 0);
        while (n > 0)
                *p++ = tmp[--n];
        return p;
}

static char *put_text(char *p, const char *s) {
        size_t n = strlen(s);

        memcpy(p, s, n);
        return p + n;
}

static char *put_bool(char *p, const char *key, bool b) {
        return put_text(put_text(p, key), b ? "true" : "false");
}

/*
 * One record of a WatchFaults stream.  Formatted straight into text: faults
 * are the one stream whose rate the device sets, and building a dozen json-c
 * objects per record only to serialize and free them at once cost more than
 * the rest of the fault's way through the daemon (snprintf() alone costs
 * several times these few appends).  Same members, same order as the objects
 * had; every value is a number or a boolean, so nothing needs escaping.
 */
static int deliver_fault(FaultWatch *fw, const FaultEvent *ev, void *userdata) {
        BrokerWatch *w = userdata;
        char buf[320], *p = buf; /* 230 bytes at most */

        p = put_u64(put_text(p, "{\"fault\":{\"cookie\":"), ev->cookie);
        p = put_u64(put_text(p, ",\"deviceId\":"), ev->device_id);
        if (ev->pasid_valid)
                p = put_u64(put_text(p, ",\"pasid\":"), ev->pasid);
        p = put_u64(put_text(p, ",\"groupId\":"), ev->group_id);
        p = put_u64(put_text(p, ",\"address\":"), ev->address);
        p = put_u64(put_text(p, ",\"length\":"), ev->length);
        p = put_bool(p, ",\"read\":", ev->perm & FAULT_PERM_READ);
        p = put_bool(p, ",\"write\":", ev->perm & FAULT_PERM_WRITE);
        p = put_bool(p, ",\"exec\":", ev->perm & FAULT_PERM_EXEC);
        p = put_bool(p, ",\"privileged\":", ev->perm & FAULT_PERM_PRIV);
        p = put_bool(p, ",\"lastPage\":", ev->last_page);
        p = put_text(p, "}}");
        assert((size_t)(p - buf) < sizeof(buf));
        /* -ENOBUFS: the client does not read; the router answers INVALID for it. */
        return varlink_call_reply_more_text(w->call, buf, (size_t)(p - buf));
}

static int method_watch_faults(VarlinkCall *call, json_object *params, VarlinkCallFlags flags,
                               void *userdata) {
        BrokerError e = BROKER_ERROR_INIT;
        BrokerSession *bs;
        BrokerWatch *w;
        uint32_t dev = FAULT_WATCH_ALL;
        int r;

        REQUIRE_SESSION(call);
        CHECK_KNOWN(call, params, "deviceId");
        GET(call, json_util_get_u32, params, "deviceId", JSON_UTIL_OPTIONAL, &dev);
        if (!(flags & VARLINK_CALL_MORE))
                return varlink_call_error(call, VARLINK_ERROR_EXPECTED_MORE, NULL);
        if (dev == FAULT_WATCH_ALL && json_object_object_get_ex(params, "deviceId", NULL) &&
            json_object_object_get(params, "deviceId"))
                return reply_invalid_parameter(call, "deviceId", "deviceId %" PRIu32
                                               " is not a device id", dev);

        bs = call_broker_session(call);
        w = calloc(1, sizeof(*w));
        if (!w)
                return -ENOMEM;
        w->conn = varlink_call_get_connection(call);
        w->call = varlink_call_ref(call);
        /* Linked first: faults already queued are delivered from inside the watch call. */
        w->next = bs->watches;
        bs->watches = w;
        r = session_watch_faults(bs->session, dev, deliver_fault, w, &w->watch, &e);
        if (r < 0) {
                bs->watches = w->next;
                varlink_call_unref(w->call);
                free(w);
                return reply_error(call, &e);
        }
        /* The stream has no final reply: it ends when the client closes the connection. */
        return 0;
}

static int method_respond_fault(VarlinkCall *call, json_object *params, VarlinkCallFlags flags,
                                void *userdata) {
        BrokerError e = BROKER_ERROR_INIT;
        const char *code;
        uint64_t cookie;
        uint32_t c;

        REQUIRE_SESSION(call);
        CHECK_KNOWN(call, params, "cookie", "code");
        GET(call, json_util_get_u64, params, "cookie", 0, &cookie);
        GET(call, json_util_get_string, params, "code", 0, &code);
        if (streq(code, "success"))
                c = FAULT_RESPONSE_SUCCESS;
        else if (streq(code, "invalid"))
                c = FAULT_RESPONSE_INVALID;
        else
                return reply_invalid_parameter(call, "code", "code '%s' is not success or invalid",
                                               code);
        if (session_respond_fault(call_session(call), cookie, c, &e) < 0)
                return reply_error(call, &e);
        return reply(call, NULL);
}

static int method_delegate(VarlinkCall *call, json_object *params, VarlinkCallFlags flags,
                           void *userdata) {
        BrokerError e = BROKER_ERROR_INIT;
        json_object *out;
        int fd;

        REQUIRE_SESSION(call);
        CHECK_NO_PARAMS(call, params);
        if (session_delegate(call_session(call), &fd, &e) < 0)
                return reply_error(call, &e);
        out = json_object_new_object();
        if (!out) {
                safe_close(fd);
                return -ENOMEM;
        }
        (void)json_util_add(out, "iommufd", json_object_new_int(0));
        return varlink_call_reply_with_fds(call, out, &fd, 1);
}

static json_object *usage_json(const char *resource, uint64_t used, uint64_t limit) {
        json_object *o = json_object_new_object();

        if (!o)
                return NULL;
        (void)json_util_add(o, "resource", json_object_new_string(resource));
        (void)json_util_add(o, "used", u64_node(used));
        if (limit != UINT64_MAX)
                (void)json_util_add(o, "limit", u64_node(limit));
        return o;
}

static int method_get_session(VarlinkCall *call, json_object *params, VarlinkCallFlags flags,
                              void *userdata) {
        Broker *b = userdata;
        SessionUsage rows[SESSION_USAGE_MAX];
        BrokerSession *bs;
        SessionInfo info;
        json_object *out, *pr, *groups, *usage;
        size_t n_rows;

        REQUIRE_SESSION(call);
        CHECK_NO_PARAMS(call, params);
        bs = call_broker_session(call);
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
                json_object_array_add(usage,
                                      usage_json(rows[i].resource, rows[i].used, rows[i].limit));
        json_object_array_add(usage,
                              usage_json(BROKER_RESOURCE_CONNECTIONS,
                                         session_host_count_uid(b->host, info.creds->uid),
                                         info.quotas.connections));

        (void)json_util_add(out, "principal", pr);
        (void)json_util_add(out, "usage", usage);
        {
                json_object *fc = json_object_new_object();

                if (fc) {
                        (void)json_util_add(fc, "delivered", u64_node(info.faults.delivered));
                        (void)json_util_add(fc, "answered", u64_node(info.faults.answered));
                        (void)json_util_add(fc, "timedOut", u64_node(info.faults.timed_out));
                        (void)json_util_add(fc, "dropped", u64_node(info.faults.dropped));
                        (void)json_util_add(fc, "pending", u64_node(info.faults.pending));
                        (void)json_util_add(out, "faults", fc);
                }
        }
        (void)json_util_add(out, "token", json_object_new_string(bs->token));
        return reply(call, out);
}

static BrokerSession *broker_find_token(Broker *b, const char *token) {
        for (Session *s = b->host->sessions; s; s = session_next(s)) {
                BrokerSession *bs = session_get_userdata(s);

                if (bs && streq(bs->token, token))
                        return bs;
        }
        return NULL;
}

static int method_join_session(VarlinkCall *call, json_object *params, VarlinkCallFlags flags,
                               void *userdata) {
        Broker *b = userdata;
        VarlinkConnection *c = varlink_call_get_connection(call);
        BrokerSession *cur, *target;
        BrokerError e = BROKER_ERROR_INIT;
        const char *token;
        int r;

        REQUIRE_SESSION(call);
        CHECK_KNOWN(call, params, "token");
        GET(call, json_util_get_string, params, "token", 0, &token);

        cur = call_broker_session(call);
        target = broker_find_token(b, token);
        /* Another principal's token is as unknown as a made-up one. */
        if (!target || session_creds(target->session)->uid != session_creds(cur->session)->uid) {
                broker_error_set(&e, -ENOENT, BROKER_ERROR_NO_SUCH_OBJECT,
                                 "No session of this principal has that token.");
                broker_error_add_string(&e, "kind", BROKER_KIND_SESSION);
                broker_error_add_string(&e, "id", token);
                return reply_error(call, &e);
        }
        if (target == cur)
                return reply(call, NULL);
        if (cur->n_conns > 1 || session_n_devices(cur->session) > 0 ||
            session_n_address_spaces(cur->session) > 0) {
                broker_error_set(&e, -EBUSY, BROKER_ERROR_OBJECT_IN_USE,
                                 "This connection's session already holds devices, address "
                                 "spaces or other connections; join from a fresh connection.");
                broker_error_add_string(&e, "kind", BROKER_KIND_SESSION);
                broker_error_add_u64(&e, "id", 0);
                broker_error_add_string(&e, "reason", e.error.message);
                return reply_error(call, &e);
        }
        r = broker_session_add_conn(target, c);
        if (r < 0)
                return r;
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
        return reply(call, NULL);
}

static int method_watch_events(VarlinkCall *call, json_object *params, VarlinkCallFlags flags,
                               void *userdata) {
        BrokerSession *bs;
        VarlinkCall **w;

        REQUIRE_SESSION(call);
        CHECK_NO_PARAMS(call, params);
        if (!(flags & VARLINK_CALL_MORE))
                return varlink_call_error(call, VARLINK_ERROR_EXPECTED_MORE, NULL);
        bs = call_broker_session(call);
        w = realloc(bs->event_streams, (bs->n_event_streams + 1) * sizeof(*w));
        if (!w)
                return -ENOMEM;
        bs->event_streams = w;
        bs->event_streams[bs->n_event_streams++] = varlink_call_ref(call);
        return 0;
}

static const VarlinkMethod broker_methods[] = {
        { "GetTopology", method_get_topology },
        { "ExplainDevice", method_explain_device },
        { "AttachDevice", method_attach_device },
        { "DetachDevice", method_detach_device },
        { "CreateAddressSpace", method_create_address_space },
        { "DestroyAddressSpace", method_destroy_address_space },
        { "AttachToAddressSpace", method_attach_to_address_space },
        { "GetIOVARanges", method_get_iova_ranges },
        { "AllowIOVAs", method_allow_iovas },
        { "Map", method_map },
        { "Unmap", method_unmap },
        { "Copy", method_copy },
        { "BindPASID", method_bind_pasid },
        { "UnbindPASID", method_unbind_pasid },
        { "WatchFaults", method_watch_faults },
        { "RespondFault", method_respond_fault },
        { "Delegate", method_delegate },
        { "GetSession", method_get_session },
        { "JoinSession", method_join_session },
        { "WatchEvents", method_watch_events },
        {},
};

static const VarlinkInterface broker_interface = {
        .name = BROKER_INTERFACE,
        .description = broker_idl,
        .methods = broker_methods,
        .errno_error = BROKER_ERROR_SYSTEM_ERROR,
};

const VarlinkInterface *broker_interface_get(void) {
        return &broker_interface;
}

/* ---- connections ----------------------------------------------------------------------- */

/*
 * A killed client's connection may still be queued for its disconnect when
 * another client asks for its device.  When every process that connected to
 * the holder is gone (its pidfd is readable), release the session now.
 */
static bool reap_if_gone(Session *holder, void *userdata) {
        BrokerSession *bs = session_get_userdata(holder);

        if (!bs || bs->n_conns == 0)
                return false;
        for (size_t i = 0; i < bs->n_conns; i++) {
                struct pollfd p = { .fd = varlink_connection_get_pidfd(bs->conns[i]),
                                    .events = POLLIN };

                if (p.fd < 0 || poll(&p, 1, 0) <= 0 || !(p.revents & POLLIN))
                        return false;
        }
        log_debug("Releasing the session of %s: its client is gone.", session_describe(holder));
        for (size_t i = 0; i < bs->n_conns; i++) {
                varlink_connection_set_userdata(bs->conns[i], NULL);
                varlink_connection_close(bs->conns[i]);
        }
        bs->n_conns = 0;
        broker_session_free(bs);
        return true;
}

static int on_connect(VarlinkServer *server, VarlinkConnection *c, const struct ucred *cred,
                      int pidfd, void *userdata) {
        Broker *b = userdata;
        _cleanup_(peer_creds_freep) PeerCreds *creds = NULL;
        BrokerError e = BROKER_ERROR_INIT;
        BrokerSession *bs;
        uint8_t rnd[16];
        int r;

        /* A connection broker_open_connection() adds carries its D-Bus caller's credentials. */
        if (b->pending_creds)
                creds = TAKE_PTR(b->pending_creds);
        else {
                r = peer_creds_new(&creds, b->proc_root, cred->pid, cred->uid, cred->gid, &e.error);
                if (r < 0)
                        return log_warning_errno(r, "Refusing client pid %d: %s", (int)cred->pid,
                                                 error_message(&e.error));
        }

        if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
                return log_warning_errno(errno, "Refusing client pid %d: no random token: %m",
                                         (int)cred->pid);
        bs = calloc(1, sizeof(*bs));
        if (!bs)
                return log_oom();
        bs->broker = b;
        bs->serial = ++b->next_serial;
        for (size_t i = 0; i < sizeof(rnd); i++)
                snprintf(bs->token + 2 * i, 3, "%02x", rnd[i]);

        r = session_new(&bs->session, b->host, creds, &e);
        if (r < 0) {
                free(bs);
                return log_warning_errno(r, "Refusing client pid %d: %s", (int)cred->pid,
                                         error_message(&e.error));
        }
        TAKE_PTR(creds);
        session_set_userdata(bs->session, bs);
        r = broker_session_add_conn(bs, c);
        if (r < 0) {
                broker_session_free(bs);
                return log_oom();
        }
        log_debug("Session for %s (pid %d) opened.", session_describe(bs->session),
                  (int)cred->pid);
        return 0;
}

static void on_disconnect(VarlinkServer *server, VarlinkConnection *c, void *userdata) {
        BrokerSession *bs = varlink_connection_get_userdata(c);

        if (!bs)
                return;
        log_debug("Connection of %s closed.", session_describe(bs->session));
        broker_session_remove_conn(bs, c);
}

int broker_new(Broker **ret, SessionHost *host, const char *dev_root, const char *proc_root) {
        Broker *b = calloc(1, sizeof(*b));

        if (!b)
                return -ENOMEM;
        b->host = host;
        b->dev_root = dev_root;
        b->proc_root = proc_root;
        *ret = b;
        return 0;
}

Broker *broker_free(Broker *b) {
        if (!b)
                return NULL;
        peer_creds_free(b->pending_creds);
        free(b);
        return NULL;
}

int broker_open_connection(Broker *b, VarlinkServer *s, PeerCreds *creds, int *ret_fd) {
        _cleanup_(peer_creds_freep) PeerCreds *c = creds;
        /* The D-Bus caller's, so that limits and admin checks see the client, not iommud. */
        struct ucred as = { .pid = c->pid, .uid = c->uid, .gid = c->gid };
        int pair[2], r;

        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, pair) < 0)
                return negative_errno();
        b->pending_creds = TAKE_PTR(c);
        r = varlink_server_add_connection_as(s, pair[0], &as, NULL);
        /* on_connect() took the credentials unless it never ran. */
        b->pending_creds = peer_creds_free(b->pending_creds);
        if (r < 0) {
                safe_close(pair[1]);
                return r;
        }
        /* The client end blocks like any socket a client connects itself. */
        r = fcntl(pair[1], F_GETFL);
        if (r >= 0)
                (void)fcntl(pair[1], F_SETFL, r & ~O_NONBLOCK);
        *ret_fd = pair[1];
        return 0;
}

int broker_attach(Broker *b, VarlinkServer *s) {
        int r;

        r = varlink_server_add_interface(s, &broker_interface);
        if (r < 0)
                return r;
        varlink_server_set_userdata(s, b);
        varlink_server_set_hooks(s, on_connect, on_disconnect);
        b->host->reap_if_gone = reap_if_gone;
        b->host->reap_userdata = b;
        varlink_server_set_info(s, "iommud project", "iommud", PACKAGE_VERSION,
                                "https://github.com/iommud/iommud");
        return 0;
}

/* ---- events ---------------------------------------------------------------------------- */

void broker_session_event(Session *s, const char *kind, const char *device, uint32_t device_id,
                          const char *reason) {
        BrokerSession *bs = session_get_userdata(s);

        if (!bs)
                return;
        for (size_t i = 0; i < bs->n_event_streams; i++) {
                json_object *out = json_object_new_object(), *ev = json_object_new_object();

                if (!out || !ev) {
                        json_object_put(out);
                        json_object_put(ev);
                        return;
                }
                (void)json_util_add(ev, "kind", json_object_new_string(kind));
                (void)json_util_add(ev, "device", json_object_new_string(device));
                if (device_id != UINT32_MAX)
                        (void)json_util_add(ev, "deviceId", json_object_new_int64(device_id));
                (void)json_util_add(ev, "reason", json_object_new_string(reason));
                (void)json_util_add(out, "event", ev);
                /* A watcher that cannot keep up misses events; its session is unaffected. */
                (void)varlink_call_reply_more(bs->event_streams[i], out);
        }
}

/* ---- restart survival ------------------------------------------------------------------ */

void broker_set_lifecycle(Broker *b, struct event_base *base, uint64_t reclaim_grace_ms,
                          void (*changed)(void *userdata), void *userdata) {
        b->base = base;
        b->reclaim_grace_ms = reclaim_grace_ms;
        b->changed = changed;
        b->changed_userdata = userdata;
}

uint64_t broker_session_serial(const Session *s) {
        BrokerSession *bs = session_get_userdata(s);

        return bs ? bs->serial : 0;
}

int broker_session_to_json(const Session *s, json_object **ret) {
        BrokerSession *bs = session_get_userdata(s);
        const PeerCreds *c = session_creds(s);
        json_object *o, *creds, *groups, *state = NULL;
        int r;

        if (!bs)
                return -ENOENT;
        r = session_to_json(s, &state);
        if (r < 0)
                return r;
        o = json_object_new_object();
        creds = json_object_new_object();
        groups = json_object_new_array();
        if (!o || !creds || !groups) {
                json_object_put(o);
                json_object_put(creds);
                json_object_put(groups);
                json_object_put(state);
                return -ENOMEM;
        }
        (void)json_util_add(creds, "pid", json_object_new_int64(c->pid));
        (void)json_util_add(creds, "uid", json_object_new_int64(c->uid));
        (void)json_util_add(creds, "gid", json_object_new_int64(c->gid));
        for (size_t i = 0; i < c->n_groups; i++)
                json_object_array_add(groups, json_object_new_int64(c->groups[i]));
        (void)json_util_add(creds, "groups", groups);
        if (c->unit)
                (void)json_util_add(creds, "unit", json_object_new_string(c->unit));
        (void)json_util_add(o, "serial", u64_node(bs->serial));
        (void)json_util_add(o, "token", json_object_new_string(bs->token));
        (void)json_util_add(o, "principal", creds);
        (void)json_util_add(o, "session", state);
        *ret = o;
        return 0;
}

static void on_grace(evutil_socket_t fd, short what, void *userdata) {
        BrokerSession *bs = userdata;

        log_info("Session of %s was not reclaimed within the grace period; tearing it down.",
                 session_describe(bs->session));
        broker_session_free(bs);
}

void broker_release_sessions(Broker *b) {
        Session *next;

        if (!b)
                return;
        for (Session *s = b->host->sessions; s; s = next) {
                BrokerSession *bs = session_get_userdata(s);

                next = session_next(s);
                broker_session_free(bs);
        }
}

int broker_adopt_session(Broker *b, Session *s, uint64_t serial, const char *token) {
        BrokerSession *bs;
        struct timeval tv = {
                .tv_sec = (time_t)(b->reclaim_grace_ms / 1000),
                .tv_usec = (suseconds_t)(b->reclaim_grace_ms % 1000 * 1000),
        };

        if (strlen(token) >= sizeof(bs->token))
                return -EINVAL;
        bs = calloc(1, sizeof(*bs));
        if (!bs)
                return -ENOMEM;
        bs->broker = b;
        bs->session = s;
        bs->serial = serial;
        snprintf(bs->token, sizeof(bs->token), "%s", token);
        bs->grace = evtimer_new(b->base, on_grace, bs);
        if (!bs->grace || evtimer_add(bs->grace, &tv) < 0) {
                if (bs->grace)
                        event_free(bs->grace);
                free(bs);
                return -ENOMEM;
        }
        session_set_userdata(s, bs);
        b->next_serial = MAX(b->next_serial, serial);
        return 0;
}
