/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <event2/event.h>
#include <json-c/json.h>

#include "assert-util.h"
#include "json-util.h"
#include "log.h"
#include "peer-creds.h"
#include "session-state.h"
#include "varlink-broker-idl.h"
#include "varlink-broker-internal.h"

/*
 * The org.iommud.Broker front end: the broker and its sessions, how replies and
 * errors are written, the method table, connections, events and restart survival.
 * The methods live by area in varlink-broker-{topology,devices,handoff,ioas,pasid,session}.c.
 */

/* ---- sessions -------------------------------------------------------------------------- */

void broker_changed(Broker *b) {
        if (b && b->changed)
                b->changed(b->changed_userdata);
}

/* Ends the fault streams of c (all when c is NULL); what they left unanswered is INVALID. */
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

void broker_session_free(BrokerSession *bs) {
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

int broker_session_add_conn(BrokerSession *bs, VarlinkConnection *c) {
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
        /* The last connection's count goes with the session; a joined one's here. */
        if (bs->n_conns == 0)
                broker_session_free(bs);
        else
                session_remove_connection(bs->session);
}

/* ---- replies --------------------------------------------------------------------------- */

json_object *broker_u64_node(uint64_t v) {
        return v > INT64_MAX ? json_object_new_uint64(v) : json_object_new_int64((int64_t)v);
}

BrokerSession *broker_call_broker_session(VarlinkCall *call) {
        return varlink_connection_get_userdata(varlink_call_get_connection(call));
}

Session *broker_call_session(VarlinkCall *call) {
        BrokerSession *bs = broker_call_broker_session(call);

        return bs ? bs->session : NULL;
}

/* A method that changes what a restart keeps has it recorded before the client hears. */
static void broker_note_change(VarlinkCall *call) {
        BrokerSession *bs;

        if (!(varlink_call_get_tags(call) & BROKER_MUTATES))
                return;
        bs = varlink_connection_get_userdata(varlink_call_get_connection(call));
        if (bs)
                broker_changed(bs->broker);
}

/* Methods after which the state a restarted daemon needs has changed. */
int broker_reply(VarlinkCall *call, json_object *p) {
        broker_note_change(call);
        return varlink_call_reply(call, p);
}

size_t broker_format_u64(char *buf, uint64_t value) {
        char digits[20];
        size_t d = 0, n = 0;

        /* By hand: snprintf() costs more than the rest of an Unmap. */
        do {
                digits[d++] = (char)('0' + value % 10);
                value /= 10;
        } while (value > 0);
        while (d > 0)
                buf[n++] = digits[--d];
        return n;
}

int broker_reply_text(VarlinkCall *call, const char *text, size_t len) {
        broker_note_change(call);
        return varlink_call_reply_text(call, text, len);
}

int broker_reply_u64_head(VarlinkCall *call, const char *head, size_t head_len, uint64_t value) {
        broker_note_change(call);
        return varlink_call_reply_u64_head(call, head, head_len, value);
}

int broker_reply_fd(VarlinkCall *call, const char *key, int fd) {
        json_object *out = json_object_new_object();

        if (!out) {
                safe_close(fd);
                return -ENOMEM;
        }
        (void)json_util_add(out, key, json_object_new_int(0));
        return varlink_call_reply_with_fds(call, out, &fd, 1);
}

json_object *broker_range_json(uint64_t start, uint64_t last) {
        json_object *o = json_object_new_object();

        if (!o)
                return NULL;
        (void)json_util_add(o, "start", broker_u64_node(start));
        (void)json_util_add(o, "last", broker_u64_node(last));
        return o;
}


static const VarlinkMethod broker_methods[] = {
        { "GetTopology", broker_method_get_topology },
        { "ExplainDevice", broker_method_explain_device, broker_explain_device_parameters },
        { "AttachDevice", broker_method_attach_device, broker_attach_device_parameters,
          .tags = BROKER_MUTATES },
        { "DetachDevice", broker_method_detach_device, broker_device_id_parameters,
          .tags = BROKER_MUTATES },
        { "CreateAddressSpace", broker_method_create_address_space,
          broker_create_address_space_parameters, .tags = BROKER_MUTATES },
        { "SetDirtyTracking", broker_method_set_dirty_tracking,
          broker_set_dirty_tracking_parameters, .tags = BROKER_MUTATES },
        { "ReadDirtyBitmap", broker_method_read_dirty_bitmap,
          broker_read_dirty_bitmap_parameters },
        { "GetFeatures", broker_method_get_features, broker_get_features_parameters },
        { "DestroyAddressSpace", broker_method_destroy_address_space, broker_ioas_id_parameters,
          .tags = BROKER_MUTATES },
        { "AttachToAddressSpace", broker_method_attach_to_address_space,
          broker_attach_to_address_space_parameters, .tags = BROKER_MUTATES },
        { "GetIOVARanges", broker_method_get_iova_ranges, broker_ioas_id_parameters },
        { "AllowIOVAs", broker_method_allow_iovas, broker_allow_iovas_parameters,
          .tags = BROKER_MUTATES },
        { "Map", broker_method_map, broker_map_parameters, .streamed = true,
          .parameters_size = sizeof(MapParams), .tags = BROKER_MUTATES },
        { "Unmap", broker_method_unmap, broker_unmap_parameters, .streamed = true,
          .parameters_size = sizeof(UnmapParams), .tags = BROKER_MUTATES },
        { "Copy", broker_method_copy, broker_copy_parameters, .streamed = true,
          .parameters_size = sizeof(SessionCopyArgs), .tags = BROKER_MUTATES },
        { "MapBatch", broker_method_map_batch, broker_map_batch_parameters, .streamed = true,
          .parameters_size = sizeof(MapBatchParams), .tags = BROKER_MUTATES },
        { "UnmapBatch", broker_method_unmap_batch, broker_allow_iovas_parameters,
          .streamed = true, .parameters_size = sizeof(AllowIovasParams), .tags = BROKER_MUTATES },
        { "BindPASID", broker_method_bind_pasid, broker_bind_pasid_parameters,
          .tags = BROKER_MUTATES },
        { "UnbindPASID", broker_method_unbind_pasid, broker_unbind_pasid_parameters,
          .tags = BROKER_MUTATES },
        { "WatchFaults", broker_method_watch_faults, broker_watch_faults_parameters },
        { "RespondFault", broker_method_respond_fault, broker_respond_fault_parameters,
          .streamed = true,
          .parameters_size = sizeof(RespondFaultParams) },
        { "Delegate", broker_method_delegate },
        { "GetDeviceFd", broker_method_get_device_fd, broker_device_id_parameters },
        { "OpenDevices", broker_method_open_devices, broker_open_devices_parameters },
        { "ReleaseDevices", broker_method_release_devices, broker_release_devices_parameters,
          .tags = BROKER_MUTATES },
        { "GetSession", broker_method_get_session },
        { "JoinSession", broker_method_join_session, broker_join_session_parameters,
          .tags = BROKER_MUTATES },
        { "WatchEvents", broker_method_watch_events },
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
                /* Called as the connection is accepted: now is when it was. */
                r = peer_creds_from_socket(&creds, varlink_connection_get_fd(c),
                                           peer_process_now(), b->proc_root, &e.error);
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
                /* Its uid's connections quota: the client is told, not reset. */
                (void)broker_refuse_connection(c, &e);
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

/* An idle connection may go when its session holds nothing and streams nothing to it. */
static bool on_idle(VarlinkServer *server, VarlinkConnection *c, void *userdata) {
        BrokerSession *bs = varlink_connection_get_userdata(c);

        if (!bs)
                return true;
        return bs->n_conns == 1 && bs->n_event_streams == 0 && !bs->watches &&
               session_holds_nothing(bs->session);
}

static void on_disconnect(VarlinkServer *server, VarlinkConnection *c, void *userdata) {
        BrokerSession *bs = varlink_connection_get_userdata(c);

        if (!bs)
                return;
        log_debug("Connection of %s closed.", session_describe(bs->session));
        broker_session_remove_conn(bs, c);
}

int broker_new(Broker **ret, SessionHost *host, const char *dev_root, const char *proc_root) {
        Broker *b;

        assert_return(ret && host, -EINVAL);
        b = calloc(1, sizeof(*b));
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
        struct ucred as;
        int pair[2], r;

        assert_return(b && s && c && ret_fd, -EINVAL);
        as = (struct ucred){ .pid = c->pid, .uid = c->uid, .gid = c->gid };

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

        assert_return(b && s, -EINVAL);
        r = varlink_server_add_interface(s, &broker_interface);
        if (r < 0)
                return r;
        varlink_server_set_userdata(s, b);
        varlink_server_set_hooks(s, on_connect, on_disconnect);
        /* A client the server refuses for want of room hears it, as for any other quota. */
        varlink_server_set_quota_error(s, BROKER_ERROR_QUOTA_EXCEEDED);
        varlink_server_set_idle_hook(s, on_idle);
        b->host->reap_if_gone = reap_if_gone;
        b->host->reap_userdata = b;
        varlink_server_set_info(s, "iommud project", "iommud", PACKAGE_VERSION,
                                "https://github.com/iommud/iommud");
        return 0;
}

/* ---- events ---------------------------------------------------------------------------- */

void broker_session_event(Session *s, const char *kind, const char *device, uint32_t device_id,
                          const char *reason, uint64_t deadline_usec) {
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
                if (deadline_usec > 0)
                        (void)json_util_add(ev, "deadline",
                                            json_object_new_int64((int64_t)deadline_usec));
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
        json_object *o, *creds, *groups, *state = NULL;
        const PeerCreds *c;
        BrokerSession *bs;
        int r;

        assert_return(s && ret, -EINVAL);
        bs = session_get_userdata(s);
        c = session_creds(s);
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
        (void)json_util_add(o, "serial", broker_u64_node(bs->serial));
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
        struct timeval tv;

        assert_return(b && s && token, -EINVAL);
        tv = (struct timeval){
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
