/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * The Varlink server: its interfaces and limits.  Accepting clients lives in
 * varlink-server-accept.c, calls in varlink-server-call.c, connections in
 * varlink-server-connection.c, org.varlink.service in varlink-server-service.c.
 */

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <event2/event_struct.h>
#include <json-c/json.h>

#include "assert-util.h"
#include "fdlist.h"
#include "json-util.h"
#include "log.h"
#include "varlink-server-internal.h"
#include "varlink-wire.h"

/* Events */

void server_arm_event(struct event *ev, bool *armed, bool want) {
        if (want == *armed)
                return;
        if (want)
                (void)event_add(ev, NULL);
        else
                (void)event_del(ev);
        *armed = want;
}

/* The server */

int varlink_server_new(VarlinkServer **ret, struct event_base *base, const VarlinkLimits *limits) {
        _cleanup_(varlink_server_freep) VarlinkServer *s = NULL;
        int r;

        assert_return(ret && base, -EINVAL);
        if (limits && (limits->max_fds_per_message > VARLINK_FDS_MAX || limits->max_message_bytes == 0))
                return -EINVAL;

        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        s->base = base;
        s->limits = limits ? *limits : VARLINK_LIMITS_DEFAULT;
        /* Asked several times per call: the limits never change, neither does this. */
        s->pipeline_bytes = MAX(MIN((size_t)VARLINK_PIPELINE_OUTPUT_BYTES,
                                    s->limits.max_queued_output_bytes / 2), (size_t)1);
        s->vendor = "iommud";
        s->product = "iommud";
        s->version = PACKAGE_VERSION;
        s->url = "https://github.com/iommud/iommud";
        s->stream = (JsonStream){ .tape = s->tape, .n_tape = STREAM_TAPE };
        s->empty = json_object_new_object();
        if (!s->empty)
                return -ENOMEM;
        r = varlink_server_add_interface(s, &varlink_service_interface);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(s);
        return 0;
}

VarlinkServer *varlink_server_free(VarlinkServer *s) {
        if (!s)
                return NULL;
        while (s->connections)
                connection_disconnect(s->connections);
        server_listeners_free(s);
        free(s->interfaces);
        server_methods_free(s);
        json_object_put(s->empty);
        free(s->scratch);
        free(s);
        return NULL;
}

void varlink_server_set_userdata(VarlinkServer *s, void *userdata) {
        assert(s);
        s->userdata = userdata;
}

void *varlink_server_get_userdata(VarlinkServer *s) {
        assert_return(s, NULL);
        return s->userdata;
}

void varlink_server_set_hooks(VarlinkServer *s, VarlinkConnectFn on_connect,
                              VarlinkDisconnectFn on_disconnect) {
        assert(s);
        s->on_connect = on_connect;
        s->on_disconnect = on_disconnect;
}

void varlink_server_set_idle_hook(VarlinkServer *s, VarlinkIdleFn on_idle) {
        assert(s);
        s->on_idle = on_idle;
}

void varlink_server_set_info(VarlinkServer *s, const char *vendor, const char *product,
                             const char *version, const char *url) {
        assert(s);
        if (vendor)
                s->vendor = vendor;
        if (product)
                s->product = product;
        if (version)
                s->version = version;
        if (url)
                s->url = url;
}

int varlink_server_add_interface(VarlinkServer *s, const VarlinkInterface *iface) {
        const VarlinkInterface **a;

        assert_return(s && iface && iface->name && iface->description, -EINVAL);
        assert_return(error_name_valid(iface->name), -EINVAL);
        if (server_find_interface(s, iface->name, strlen(iface->name)))
                return -EEXIST;
        a = realloc(s->interfaces, (s->n_interfaces + 1) * sizeof(*a));
        if (!a)
                return -ENOMEM;
        s->interfaces = a;
        s->interfaces[s->n_interfaces++] = iface;
        return server_index_methods(s);
}

unsigned varlink_server_n_connections(const VarlinkServer *s) {
        assert_return(s, 0);
        return s->n_connections;
}
