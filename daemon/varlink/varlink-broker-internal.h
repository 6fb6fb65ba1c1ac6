/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * What the files of the org.iommud.Broker front end share: the broker's state, the
 * transport's side of a session, how a method replies, and the methods by area.  Only
 * varlink-broker*.c include it.
 */

#include <stdbool.h>
#include <stdint.h>

#include <event2/event.h>
#include <json-c/json.h>

#include "broker-errors.h"
#include "json-dispatch.h"
#include "session.h"
#include "varlink-broker.h"
#include "varlink-server.h"

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

/*
 * The parameters of the streamed methods: the method table gives their sizes, so that the
 * server can decode a call into a zero-filled one before the handler runs.
 */
typedef struct AllowIovasParams {
        uint32_t ioas_id;
        IovaRange *ranges;
        size_t n_ranges;
} AllowIovasParams;

typedef struct MapParams {
        SessionMapArgs args;
        JsonDispatchFd memory;
} MapParams;

typedef struct UnmapParams {
        SessionDirtyArgs args;
        JsonDispatchFd bitmap;
        bool has_page_size;
} UnmapParams;

typedef struct MapBatchParams {
        uint32_t ioas_id;
        MapParams *areas;
        size_t n_areas;
} MapBatchParams;

typedef struct RespondFaultParams {
        uint64_t cookie;
        uint32_t code;
} RespondFaultParams;

/* ---- sessions (varlink-broker.c) ------------------------------------------------------- */

/* Tells the restart machinery that the state it keeps has changed. */
void broker_changed(Broker *b);
void broker_session_free(BrokerSession *bs);
int broker_session_add_conn(BrokerSession *bs, VarlinkConnection *c);

/* ---- replies (varlink-broker.c) -------------------------------------------------------- */

json_object *broker_u64_node(uint64_t v);
/* {start, last} */
json_object *broker_range_json(uint64_t start, uint64_t last);
BrokerSession *broker_call_broker_session(VarlinkCall *call);
/* The session of the call's connection; NULL once it was reaped. */
Session *broker_call_session(VarlinkCall *call);
/* The VarlinkMethod tag of the methods that change what the broker keeps across a restart. */
#define BROKER_MUTATES (1u << 0)

/* The final reply; records the state change first for methods that make one (BROKER_MUTATES). */
int broker_reply(VarlinkCall *call, json_object *p);
/*
 * broker_reply() for {"<key>": <value>}, written directly: Map and Unmap answer with this.
 * key is a string literal (see varlink_call_reply_u64()).
 */
#define broker_reply_u64(call, key, value)                                                     \
        broker_reply_u64_head((call), VARLINK_REPLY_U64_HEAD(key),                             \
                              STRLEN(VARLINK_REPLY_U64_HEAD(key)), (value))
int broker_reply_u64_head(VarlinkCall *call, const char *head, size_t head_len, uint64_t value);
/* broker_reply() for parameters already formatted as a JSON object. */
int broker_reply_text(VarlinkCall *call, const char *text, size_t len);
/* The most bytes broker_format_u64() writes. */
#define BROKER_U64_DIGITS 20
/* Writes value in decimal at buf (no NUL); returns the bytes written. */
size_t broker_format_u64(char *buf, uint64_t value);
/* {"<key>": 0} with fd as the one fd of the reply (index 0); takes fd in every case. */
int broker_reply_fd(VarlinkCall *call, const char *key, int fd);
/* The protocol error e, with its IDL parameters (varlink-broker-errors.c checks them). */
int broker_reply_error(VarlinkCall *call, const BrokerError *e);
/* The same, with the index of the fd the client sent for an InvalidFd. */
int broker_reply_error_fd(VarlinkCall *call, BrokerError *e, uint32_t index);
/* For a connection refused as it connects: e is the one message the client reads. */
int broker_refuse_connection(VarlinkConnection *c, const BrokerError *e);

/* A connection whose session was reaped (its client died) serves nothing more. */
#define REQUIRE_SESSION(call)                                                                      \
        do {                                                                                       \
                if (!broker_call_session(call)) {                                                  \
                        varlink_connection_close(varlink_call_get_connection(call));               \
                        return -ENOTCONN;                                                          \
                }                                                                                  \
        } while (0)

/* ---- methods, each with its parameter table (broker_methods in varlink-broker.c) -------- */

#define BROKER_METHOD(name)                                                                        \
        int broker_method_##name(VarlinkCall *call, json_object *params,                           \
                                 VarlinkCallFlags flags, void *userdata)

/* varlink-broker-topology.c */
BROKER_METHOD(get_topology);
BROKER_METHOD(explain_device);
extern const JsonDispatchField broker_explain_device_parameters[];

/* varlink-broker-devices.c */
BROKER_METHOD(attach_device);
BROKER_METHOD(detach_device);
BROKER_METHOD(get_device_fd);
BROKER_METHOD(attach_to_address_space);
extern const JsonDispatchField broker_attach_device_parameters[];
extern const JsonDispatchField broker_device_id_parameters[];
extern const JsonDispatchField broker_attach_to_address_space_parameters[];

/* varlink-broker-handoff.c */
BROKER_METHOD(open_devices);
BROKER_METHOD(release_devices);
extern const JsonDispatchField broker_open_devices_parameters[];
extern const JsonDispatchField broker_release_devices_parameters[];

/* varlink-broker-ioas.c */
BROKER_METHOD(create_address_space);
BROKER_METHOD(set_dirty_tracking);
BROKER_METHOD(read_dirty_bitmap);
BROKER_METHOD(get_features);
BROKER_METHOD(destroy_address_space);
BROKER_METHOD(get_iova_ranges);
BROKER_METHOD(allow_iovas);
BROKER_METHOD(map);
BROKER_METHOD(unmap);
BROKER_METHOD(copy);
BROKER_METHOD(map_batch);
BROKER_METHOD(unmap_batch);
extern const JsonDispatchField broker_ioas_id_parameters[];
extern const JsonDispatchField broker_allow_iovas_parameters[];
extern const JsonDispatchField broker_map_parameters[];
extern const JsonDispatchField broker_unmap_parameters[];
extern const JsonDispatchField broker_create_address_space_parameters[];
extern const JsonDispatchField broker_set_dirty_tracking_parameters[];
extern const JsonDispatchField broker_read_dirty_bitmap_parameters[];
extern const JsonDispatchField broker_get_features_parameters[];
extern const JsonDispatchField broker_copy_parameters[];
extern const JsonDispatchField broker_map_batch_parameters[];

/* varlink-broker-pasid.c */
BROKER_METHOD(bind_pasid);
BROKER_METHOD(unbind_pasid);
BROKER_METHOD(watch_faults);
BROKER_METHOD(respond_fault);
extern const JsonDispatchField broker_bind_pasid_parameters[];
extern const JsonDispatchField broker_unbind_pasid_parameters[];
extern const JsonDispatchField broker_watch_faults_parameters[];
extern const JsonDispatchField broker_respond_fault_parameters[];

/* varlink-broker-session.c */
BROKER_METHOD(delegate);
BROKER_METHOD(get_session);
BROKER_METHOD(join_session);
BROKER_METHOD(watch_events);
extern const JsonDispatchField broker_join_session_parameters[];
