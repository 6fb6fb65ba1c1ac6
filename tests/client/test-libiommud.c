/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * libiommud against a scripted org.iommud.Broker: the project's Varlink
 * server runs in a thread with handlers that check what the library sent
 * (parameters, fds) and answer with canned replies and errors.  What the
 * real daemon does with the calls is the integration suite's business; this
 * checks the library's encoding, decoding, fd passing and error objects.
 */

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>
#include <json-c/json.h>

#include "varlink-broker-idl.h"
#include "iommud/iommud.h"
#include "json-util.h"
#include "macros.h"
#include "varlink-server.h"

typedef struct Fixture {
        struct event_base *base;
        VarlinkServer *server;
        struct event *stop_ev;
        int stop_pipe[2];
        pthread_t thread;
        char dir[64];
        char path[128];

        /* What the handlers saw. */
        char last_params[1024];
        ino_t last_fd_ino;
        int n_fds_seen;
        char joined_token[64];
        unsigned n_connections;
        unsigned n_get_session;

        /* Restart emulation: the next call of this method loses its connection, unanswered. */
        const char *drop_method;
        bool session_gone;       /* JoinSession answers NoSuchObject */
        VarlinkCall *held[8];    /* calls dropped unanswered, released at teardown */
        size_t n_held;
} Fixture;

static Fixture *F;

static void record(json_object *params) {
        snprintf(F->last_params, sizeof(F->last_params), "%s",
                 json_object_to_json_string_ext(params, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
}

static json_object *parse(const char *text) {
        json_object *o = json_tokener_parse(text);

        assert_non_null(o);
        return o;
}

/* Like a daemon killed after it read the call: the connection closes, no reply. */
static bool dropped(VarlinkCall *call, const char *method) {
        if (!F->drop_method || !streq(F->drop_method, method))
                return false;
        F->drop_method = NULL;
        /* Kept, so the server neither answers it nor complains that nobody did. */
        assert_true(F->n_held < ELEMENTSOF(F->held));
        F->held[F->n_held++] = varlink_call_ref(call);
        varlink_connection_close(varlink_call_get_connection(call));
        return true;
}

static void take_fd_ino(VarlinkCall *call, size_t index) {
        struct stat st;
        int fd;

        F->n_fds_seen = (int)varlink_call_get_n_fds(call);
        F->last_fd_ino = 0;
        if (varlink_call_take_fd(call, index, &fd) == 0) {
                if (fstat(fd, &st) == 0)
                        F->last_fd_ino = st.st_ino;
                close(fd);
        }
}

static const char topology_json[] =
        "{\"groups\":["
        "{\"id\":14,\"type\":\"DMA\",\"viable\":false,\"devices\":[\"0000:03:00.0\",\"0000:03:00.1\"],"
        " \"reservedRegions\":[{\"start\":4276092928,\"last\":4277141503,\"type\":\"msi\"}],\"iommu\":\"dmar0\"},"
        "{\"id\":15,\"viable\":true,\"devices\":[\"0000:04:00.0\"],\"reservedRegions\":[]}],"
        "\"devices\":["
        "{\"name\":\"0000:03:00.0\",\"vendor\":32902,\"device\":5515,\"class\":131072,\"driver\":\"vfio-pci\","
        " \"group\":14,\"cdev\":\"vfio0\",\"numaNode\":0,\"eligible\":false},"
        "{\"name\":\"0000:03:00.1\",\"vendor\":32902,\"device\":5515,\"class\":131072,\"driver\":\"ixgbe\","
        " \"group\":14,\"eligible\":false},"
        "{\"name\":\"0000:04:00.0\",\"vendor\":4318,\"device\":7864,\"class\":196608,\"driver\":\"vfio-pci\","
        " \"group\":15,\"cdev\":\"vfio1\",\"eligible\":true,\"heldBy\":\"uid 1000 (vm1.scope)\"}]}";

static int m_get_topology(VarlinkCall *call, json_object *p, VarlinkCallFlags f, void *u) {
        return varlink_call_reply(call, parse(topology_json));
}

static int m_explain(VarlinkCall *call, json_object *p, VarlinkCallFlags f, void *u) {
        const char *dev = json_object_get_string(json_object_object_get(p, "device"));

        record(p);
        if (streq(dev, "0000:99:00.0"))
                return varlink_call_error(call, "org.iommud.Broker.NoSuchObject",
                                          parse("{\"kind\":\"device\",\"id\":\"0000:99:00.0\"}"));
        return varlink_call_reply(call, parse(
                "{\"allowed\":false,\"steps\":["
                "{\"step\":\"match\",\"verdict\":\"pass\",\"reason\":\"matched by rule 'nics'\"},"
                "{\"step\":\"group\",\"verdict\":\"fail\",\"reason\":\"group 14 is not viable\"}]}"));
}

static int m_attach(VarlinkCall *call, json_object *p, VarlinkCallFlags f, void *u) {
        json_object *dev;

        record(p);
        if (json_object_object_get_ex(p, "device", &dev)) {
                F->n_fds_seen = (int)varlink_call_get_n_fds(call);
                if (streq(json_object_get_string(dev), "0000:03:00.0"))
                        return varlink_call_error(
                                call, "org.iommud.Broker.PolicyDenied",
                                parse("{\"device\":\"0000:03:00.0\",\"step\":\"group\","
                                      "\"reason\":\"group 14 is not viable: 0000:03:00.1 is bound "
                                      "to host driver ixgbe\"}"));
        } else
                take_fd_ino(call, 0);
        return varlink_call_reply(call, parse("{\"deviceId\":7,\"bdf\":\"0000:04:00.0\",\"group\":15,"
                                              "\"pasidBits\":20,\"capabilities\":[\"pasid\",\"pri\"]}"));
}

static int m_void(VarlinkCall *call, json_object *p, VarlinkCallFlags f, void *u) {
        record(p);
        return varlink_call_reply(call, NULL);
}

static int m_create_ioas(VarlinkCall *call, json_object *p, VarlinkCallFlags f, void *u) {
        return varlink_call_reply(call, parse("{\"ioasId\":3}"));
}

static int m_destroy_ioas(VarlinkCall *call, json_object *p, VarlinkCallFlags f, void *u) {
        record(p);
        return varlink_call_error(call, "org.iommud.Broker.ObjectInUse",
                                  parse("{\"kind\":\"ioas\",\"id\":3,\"reason\":\"device 7 is attached\"}"));
}

static int m_attach_ioas(VarlinkCall *call, json_object *p, VarlinkCallFlags f, void *u) {
        record(p);
        return varlink_call_reply(call, parse("{\"hwptId\":9}"));
}

static int m_ranges(VarlinkCall *call, json_object *p, VarlinkCallFlags f, void *u) {
        if (dropped(call, "GetIOVARanges"))
                return 0;
        record(p);
        return varlink_call_reply(call, parse("{\"ranges\":[{\"start\":0,\"last\":4276092927},"
                                              "{\"start\":4277141504,\"last\":18446744073709551615}],"
                                              "\"alignment\":4096}"));
}

static int m_map_reply(VarlinkCall *call, json_object *p, VarlinkCallFlags f, void *u) {
        json_object *o = json_object_new_object();
        uint64_t iova = 0x100000;

        if (dropped(call, "Map")) {
                json_object_put(o);
                return 0;
        }
        record(p);
        take_fd_ino(call, 0);
        (void)json_util_get_u64(p, "iova", JSON_UTIL_OPTIONAL, &iova, NULL);
        if (iova == 0xfee00000) {
                json_object_put(o);
                return varlink_call_error(call, "org.iommud.Broker.InvalidRange",
                                          parse("{\"start\":4276092928,\"length\":4096,"
                                                "\"reason\":\"it overlaps the MSI window\"}"));
        }
        json_object_object_add(o, "iova", json_object_new_uint64(iova));
        return varlink_call_reply(call, o);
}

/* IOVAs 0x100000 up, one page apart, or the area's own; an area at the MSI window fails. */
static int m_map_batch(VarlinkCall *call, json_object *p, VarlinkCallFlags f, void *u) {
        json_object *areas = json_object_object_get(p, "areas"), *iovas = json_object_new_array();
        json_object *o = json_object_new_object();

        record(p);
        F->n_fds_seen = (int)varlink_call_get_n_fds(call);
        for (size_t i = 0; i < json_object_array_length(areas); i++) {
                uint64_t iova = 0x100000 + i * 4096;

                (void)json_util_get_u64(json_object_array_get_idx(areas, i), "iova",
                                        JSON_UTIL_OPTIONAL, &iova, NULL);
                if (iova == 0xfee00000) {
                        json_object_put(o);
                        json_object_put(iovas);
                        return varlink_call_error(call, "org.iommud.Broker.InvalidRange",
                                                  parse("{\"start\":4276092928,\"length\":4096,"
                                                        "\"reason\":\"it overlaps the MSI window\","
                                                        "\"area\":1}"));
                }
                json_object_array_add(iovas, json_object_new_uint64(iova));
        }
        json_object_object_add(o, "iovas", iovas);
        return varlink_call_reply(call, o);
}

static int m_unmap_batch(VarlinkCall *call, json_object *p, VarlinkCallFlags f, void *u) {
        record(p);
        return varlink_call_reply(call, parse("{\"unmapped\":12288}"));
}

static int m_unmap(VarlinkCall *call, json_object *p, VarlinkCallFlags f, void *u) {
        json_object *o = json_object_new_object();

        record(p);
        json_object_object_add(o, "unmapped", json_object_get(json_object_object_get(p, "length")));
        return varlink_call_reply(call, o);
}

static int m_copy(VarlinkCall *call, json_object *p, VarlinkCallFlags f, void *u) {
        record(p);
        return varlink_call_reply(call, parse("{\"iova\":8192}"));
}

static int m_bind(VarlinkCall *call, json_object *p, VarlinkCallFlags f, void *u) {
        record(p);
        if (!json_object_object_get_ex(p, "pasid", NULL))
                return varlink_call_error(call, "org.iommud.Broker.NotSupported",
                                          parse("{\"feature\":\"PASID allocation\"}"));
        return varlink_call_reply(call, parse("{\"pasid\":5,\"hwptId\":11}"));
}

static int m_delegate(VarlinkCall *call, json_object *p, VarlinkCallFlags f, void *u) {
        int fd = memfd_create("delegated", MFD_CLOEXEC);

        assert_true(fd >= 0);
        return varlink_call_reply_with_fds(call, parse("{\"iommufd\":0}"), &fd, 1);
}

static int m_get_session(VarlinkCall *call, json_object *p, VarlinkCallFlags f, void *u) {
        F->n_get_session++;
        return varlink_call_reply(call, parse(
                "{\"principal\":{\"uid\":1000,\"gid\":100,\"pid\":42,\"groups\":[],\"unit\":\"vm1.scope\"},"
                "\"usage\":[{\"resource\":\"mappings\",\"used\":2,\"principalUsed\":5,\"limit\":100},"
                "{\"resource\":\"pinnedBytes\",\"used\":8192}],\"token\":\"tok-1\","
                "\"faults\":{\"delivered\":3,\"answered\":2,\"timedOut\":1,\"dropped\":0,\"pending\":0}}"));
}

static int m_join(VarlinkCall *call, json_object *p, VarlinkCallFlags f, void *u) {
        const char *token = json_object_get_string(json_object_object_get(p, "token"));

        snprintf(F->joined_token, sizeof(F->joined_token), "%s", token ?: "");
        if (!streq(F->joined_token, "tok-1") || F->session_gone)
                return varlink_call_error(call, "org.iommud.Broker.NoSuchObject",
                                          parse("{\"kind\":\"session\",\"id\":\"?\"}"));
        return varlink_call_reply(call, NULL);
}

static int m_watch(VarlinkCall *call, json_object *p, VarlinkCallFlags f, void *u) {
        if (!(f & VARLINK_CALL_MORE))
                return varlink_call_error(call, VARLINK_ERROR_EXPECTED_MORE, NULL);
        assert_int_equal(varlink_call_reply_more(call, parse(
                "{\"fault\":{\"cookie\":1,\"deviceId\":7,\"pasid\":5,\"address\":4096,\"length\":4096,"
                "\"read\":true,\"write\":false,\"exec\":false,\"privileged\":false,\"lastPage\":false}}")), 0);
        assert_int_equal(varlink_call_reply_more(call, parse(
                "{\"fault\":{\"cookie\":2,\"deviceId\":7,\"groupId\":9,\"address\":8192,\"length\":4096,"
                "\"read\":false,\"write\":true,\"exec\":false,\"privileged\":true,\"lastPage\":true}}")), 0);
        return varlink_call_reply(call, NULL);
}

static int m_respond(VarlinkCall *call, json_object *p, VarlinkCallFlags f, void *u) {
        uint64_t cookie = 0;

        record(p);
        (void)json_util_get_u64(p, "cookie", 0, &cookie, NULL);
        if (cookie == 77)
                return varlink_call_error(call, "org.iommud.Broker.FaultNotPending",
                                          parse("{\"cookie\":77,\"reason\":\"timed_out\"}"));
        if (cookie == 78)
                return varlink_call_error(call, "org.iommud.Broker.FaultNotOwned",
                                          parse("{\"cookie\":78}"));
        return varlink_call_reply(call, NULL);
}

static int m_bad_topology(VarlinkCall *call, json_object *p, VarlinkCallFlags f, void *u) {
        return varlink_call_reply(call, parse("{\"groups\":[{\"id\":\"x\"}],\"devices\":[]}"));
}

static const VarlinkMethod broker_methods[] = {
        { "GetTopology", m_get_topology },
        { "ExplainDevice", m_explain },
        { "AttachDevice", m_attach },
        { "DetachDevice", m_void },
        { "CreateAddressSpace", m_create_ioas },
        { "DestroyAddressSpace", m_destroy_ioas },
        { "AttachToAddressSpace", m_attach_ioas },
        { "GetIOVARanges", m_ranges },
        { "AllowIOVAs", m_void },
        { "Map", m_map_reply },
        { "Unmap", m_unmap },
        { "Copy", m_copy },
        { "MapBatch", m_map_batch },
        { "UnmapBatch", m_unmap_batch },
        { "BindPASID", m_bind },
        { "UnbindPASID", m_void },
        { "WatchFaults", m_watch },
        { "RespondFault", m_respond },
        { "Delegate", m_delegate },
        { "GetSession", m_get_session },
        { "JoinSession", m_join },
        {},
};

static const VarlinkInterface broker_iface = {
        .name = "org.iommud.Broker",
        .description = broker_idl,
        .methods = broker_methods,
        .errno_error = "org.iommud.Broker.SystemError",
};

static const VarlinkMethod test_methods[] = {
        { "BadTopology", m_bad_topology },
        {},
};

static const VarlinkInterface test_iface = {
        .name = "org.iommud.Test",
        .description = "interface org.iommud.Test\nmethod BadTopology() -> ()\n",
        .methods = test_methods,
};

static int on_connect(VarlinkServer *s, VarlinkConnection *c, const struct ucred *cred, int pidfd,
                      void *u) {
        F->n_connections++;
        return 0;
}

static void on_stop(evutil_socket_t fd, short what, void *u) {
        event_base_loopbreak(F->base);
}

static void *server_thread(void *u) {
        event_base_dispatch(F->base);
        return NULL;
}

static int setup(void **state) {
        Fixture *f = calloc(1, sizeof(*f));
        int fd;

        assert_non_null(f);
        F = f;
        snprintf(f->dir, sizeof(f->dir), "/tmp/test-libiommud-XXXXXX");
        assert_non_null(mkdtemp(f->dir));
        snprintf(f->path, sizeof(f->path), "%s/sock", f->dir);
        f->base = event_base_new();
        assert_non_null(f->base);
        assert_int_equal(varlink_server_new(&f->server, f->base, NULL), 0);
        varlink_server_set_hooks(f->server, on_connect, NULL);
        assert_int_equal(varlink_server_add_interface(f->server, &broker_iface), 0);
        assert_int_equal(varlink_server_add_interface(f->server, &test_iface), 0);
        fd = varlink_server_listen_unix(f->path, 0600);
        assert_true(fd >= 0);
        assert_int_equal(varlink_server_listen_fd(f->server, fd), 0);
        assert_int_equal(pipe2(f->stop_pipe, O_CLOEXEC), 0);
        f->stop_ev = event_new(f->base, f->stop_pipe[0], EV_READ, on_stop, NULL);
        assert_int_equal(event_add(f->stop_ev, NULL), 0);
        assert_int_equal(pthread_create(&f->thread, NULL, server_thread, NULL), 0);
        *state = f;
        return 0;
}

static int teardown(void **state) {
        Fixture *f = *state;

        assert_int_equal(write(f->stop_pipe[1], "x", 1), 1);
        pthread_join(f->thread, NULL);
        for (size_t i = 0; i < f->n_held; i++)
                varlink_call_unref(f->held[i]);
        event_free(f->stop_ev);
        varlink_server_free(f->server);
        event_base_free(f->base);
        close(f->stop_pipe[0]);
        close(f->stop_pipe[1]);
        unlink(f->path);
        rmdir(f->dir);
        free(f);
        F = NULL;
        return 0;
}

/* A connected client and an error object, released by the cleanup at scope end. */
typedef struct Ctx {
        IommudClient *c;
        IommudError *e;
} Ctx;

static void ctx_done(Ctx *x) {
        iommud_client_unref(x->c);
        iommud_error_free(x->e);
}

static Ctx ctx_new(void) {
        Ctx x = {};

        assert_int_equal(iommud_error_new(&x.e), 0);
        assert_int_equal(iommud_client_new(&x.c, F->path, x.e), 0);
        return x;
}

static int memfd(size_t size) {
        int fd = memfd_create("test", MFD_CLOEXEC);

        assert_true(fd >= 0);
        assert_int_equal(ftruncate(fd, (off_t)size), 0);
        return fd;
}

static ino_t ino_of(int fd) {
        struct stat st;

        assert_int_equal(fstat(fd, &st), 0);
        return st.st_ino;
}

static void test_connect_errors(void **state) {
        IommudClient *c = NULL;
        IommudError *e;

        assert_int_equal(iommud_error_new(&e), 0);
        assert_int_equal(iommud_client_new(&c, "/nonexistent/iommud.sock", e), -ENOENT);
        assert_null(c);
        assert_int_equal(iommud_error_get_errno(e), -ENOENT);
        assert_non_null(strstr(iommud_error_get_message(e), "/nonexistent/iommud.sock"));
        assert_null(iommud_error_get_name(e));

        /* $IOMMUD_SOCKET when no path is given. */
        setenv("IOMMUD_SOCKET", F->path, 1);
        assert_int_equal(iommud_client_new(&c, NULL, e), 0);
        assert_string_equal(iommud_client_get_path(c), F->path);
        assert_true(iommud_client_get_fd(c) >= 0);
        unsetenv("IOMMUD_SOCKET");
        assert_ptr_equal(iommud_client_ref(c), c);
        assert_null(iommud_client_unref(c));
        assert_null(iommud_client_unref(c));
        assert_null(iommud_client_unref(NULL));
        iommud_error_free(e);
}

static void test_topology(void **state) {
        _cleanup_(ctx_done) Ctx x = ctx_new();
        IommudTopology *t = NULL;
        const IommudGroup *g;
        const IommudDevice *d;

        assert_int_equal(iommud_get_topology(x.c, &t, x.e), 0);
        assert_int_equal(iommud_topology_get_n_groups(t), 2);
        assert_int_equal(iommud_topology_get_n_devices(t), 3);
        g = iommud_topology_get_group(t, 0);
        assert_int_equal(g->id, 14);
        assert_string_equal(g->type, "DMA");
        assert_false(g->viable);
        assert_int_equal(g->n_devices, 2);
        assert_string_equal(g->devices[1], "0000:03:00.1");
        assert_int_equal(g->n_reserved_regions, 1);
        assert_int_equal(g->reserved_regions[0].start, 0xfee00000);
        assert_string_equal(g->reserved_regions[0].type, "msi");
        assert_string_equal(g->iommu, "dmar0");
        g = iommud_topology_find_group(t, 15);
        assert_non_null(g);
        assert_null(g->type);
        assert_null(g->iommu);
        assert_int_equal(g->n_reserved_regions, 0);
        assert_null(iommud_topology_find_group(t, 99));
        assert_null(iommud_topology_get_group(t, 2));

        d = iommud_topology_find_device(t, "0000:03:00.0");
        assert_non_null(d);
        assert_int_equal(d->vendor, 0x8086);
        assert_int_equal(d->class_code, 0x020000);
        assert_true(d->has_group);
        assert_int_equal(d->group, 14);
        assert_string_equal(d->cdev, "vfio0");
        assert_true(d->has_numa_node);
        assert_false(d->eligible);
        assert_null(d->held_by);
        d = iommud_topology_get_device(t, 1);
        assert_null(d->cdev);
        assert_false(d->has_numa_node);
        d = iommud_topology_get_device(t, 2);
        assert_true(d->eligible);
        assert_string_equal(d->held_by, "uid 1000 (vm1.scope)");
        assert_null(iommud_topology_get_device(t, 3));
        assert_null(iommud_topology_find_device(t, "nope"));
        assert_null(iommud_topology_free(t));
}

static void test_malformed_reply(void **state) {
        _cleanup_(ctx_done) Ctx x = ctx_new();
        char *reply = NULL;

        /* The generic call passes anything through ... */
        assert_int_equal(iommud_client_call(x.c, "org.iommud.Test.BadTopology", "{}", NULL, 0, &reply,
                                            x.e), 0);
        assert_non_null(strstr(reply, "\"id\":\"x\""));
        free(reply);
        assert_int_equal(iommud_client_call(x.c, "org.iommud.Test.BadTopology", "[1]", NULL, 0,
                                            NULL, x.e), -EINVAL);
        assert_int_equal(iommud_client_call(x.c, "org.iommud.Test.Nope", NULL, NULL, 0, NULL, x.e),
                         -EOPNOTSUPP);
        assert_string_equal(iommud_error_get_name(x.e), "org.varlink.service.MethodNotFound");
}

static void test_explain(void **state) {
        _cleanup_(ctx_done) Ctx x = ctx_new();
        IommudExplanation *ex = NULL;
        const IommudDecisionStep *s;

        assert_int_equal(iommud_explain_device(x.c, "0000:03:00.0", &ex, x.e), 0);
        assert_string_equal(F->last_params, "{\"device\":\"0000:03:00.0\"}");
        assert_false(iommud_explanation_is_allowed(ex));
        assert_int_equal(iommud_explanation_get_n_steps(ex), 2);
        s = iommud_explanation_get_step(ex, 1);
        assert_string_equal(s->step, "group");
        assert_string_equal(s->verdict, "fail");
        assert_string_equal(s->reason, "group 14 is not viable");
        assert_null(iommud_explanation_get_step(ex, 2));
        iommud_explanation_free(ex);

        ex = NULL;
        assert_int_equal(iommud_explain_device(x.c, "0000:99:00.0", &ex, x.e), -ENOENT);
        assert_null(ex);
        assert_true(iommud_error_has_name(x.e, "NoSuchObject"));
        assert_true(iommud_error_has_name(x.e, "org.iommud.Broker.NoSuchObject"));
        assert_false(iommud_error_has_name(x.e, "Object"));
        assert_string_equal(iommud_error_get_message(x.e),
                            "there is no device 0000:99:00.0 on this host");
        assert_string_equal(iommud_error_get_string(x.e, "kind"), "device");
}

static void test_attach_policy_denied(void **state) {
        _cleanup_(ctx_done) Ctx x = ctx_new();
        IommudAttachment *a = NULL;
        uint64_t u;

        assert_int_equal(iommud_attach_device_name(x.c, "0000:03:00.0", &a, x.e), -EPERM);
        assert_null(a);
        assert_int_equal(F->n_fds_seen, 0);
        assert_int_equal(iommud_error_get_errno(x.e), -EPERM);
        assert_string_equal(iommud_error_get_name(x.e), "org.iommud.Broker.PolicyDenied");
        assert_string_equal(iommud_error_get_device(x.e), "0000:03:00.0");
        assert_string_equal(iommud_error_get_step(x.e), "group");
        assert_string_equal(iommud_error_get_reason(x.e),
                            "group 14 is not viable: 0000:03:00.1 is bound to host driver ixgbe");
        assert_string_equal(iommud_error_get_message(x.e),
                            "0000:03:00.0 cannot be used: group 14 is not viable: 0000:03:00.1 is "
                            "bound to host driver ixgbe");
        assert_non_null(strstr(iommud_error_get_parameters(x.e), "\"step\":\"group\""));
        assert_int_equal(iommud_error_get_uint(x.e, "device", &u), -EINVAL);
        assert_int_equal(iommud_error_get_uint(x.e, "nope", &u), -ENOENT);
        assert_null(iommud_error_get_string(x.e, "nope"));

        /* The next successful call clears the error. */
        assert_int_equal(iommud_attach_device_name(x.c, "0000:04:00.0", &a, x.e), 0);
        assert_int_equal(iommud_error_get_errno(x.e), 0);
        assert_null(iommud_error_get_name(x.e));
        assert_string_equal(iommud_error_get_message(x.e), "");
        assert_string_equal(iommud_error_get_parameters(x.e), "{}");
        assert_int_equal(a->device_id, 7);
        assert_string_equal(a->bdf, "0000:04:00.0");
        assert_int_equal(a->group, 15);
        assert_int_equal(a->pasid_bits, 20);
        assert_int_equal(a->n_capabilities, 2);
        assert_string_equal(a->capabilities[1], "pri");
        iommud_attachment_free(a);
}

static void test_attach_fd_and_lifecycle(void **state) {
        _cleanup_(ctx_done) Ctx x = ctx_new();
        IommudAttachment *a = NULL;
        _cleanup_close_ int fd = memfd(4096);
        uint32_t ioas = 0, hwpt = 0;
        uint64_t u;

        assert_int_equal(iommud_attach_device_fd(x.c, fd, &a, x.e), 0);
        assert_string_equal(F->last_params, "{\"fd\":0}");
        assert_int_equal(F->n_fds_seen, 1);
        assert_int_equal(F->last_fd_ino, ino_of(fd));
        /* The caller keeps its fd. */
        assert_true(fcntl(fd, F_GETFD) >= 0);
        iommud_attachment_free(a);

        assert_int_equal(iommud_attach_device_fd(x.c, -1, &a, x.e), -EBADF);

        assert_int_equal(iommud_create_address_space(x.c, &ioas, x.e), 0);
        assert_int_equal(ioas, 3);
        assert_int_equal(iommud_attach_to_address_space(x.c, 7, ioas, &hwpt, x.e), 0);
        assert_string_equal(F->last_params, "{\"deviceId\":7,\"ioasId\":3}");
        assert_int_equal(hwpt, 9);

        assert_int_equal(iommud_destroy_address_space(x.c, ioas, x.e), -EBUSY);
        assert_true(iommud_error_has_name(x.e, "ObjectInUse"));
        assert_string_equal(iommud_error_get_message(x.e), "ioas 3 is still in use: device 7 is attached");
        assert_int_equal(iommud_error_get_uint(x.e, "id", &u), 0);
        assert_int_equal(u, 3);

        assert_int_equal(iommud_detach_device(x.c, 7, x.e), 0);
        assert_string_equal(F->last_params, "{\"deviceId\":7}");
}

static void test_ranges_and_map(void **state) {
        _cleanup_(ctx_done) Ctx x = ctx_new();
        _cleanup_close_ int fd = memfd(2 * 4096);
        IommudIOVARange *ranges = NULL, allow[2] = { { 0x1000, 0x1fffff }, { 1ULL << 40, UINT64_MAX } };
        uint64_t alignment = 0, iova = 0, want, unmapped = 0;
        size_t n = 0;

        assert_int_equal(iommud_get_iova_ranges(x.c, 3, &ranges, &n, &alignment, x.e), 0);
        assert_int_equal(n, 2);
        assert_int_equal(alignment, 4096);
        assert_int_equal(ranges[1].last, UINT64_MAX);
        free(ranges);

        assert_int_equal(iommud_allow_iovas(x.c, 3, allow, 2, x.e), 0);
        assert_string_equal(F->last_params,
                            "{\"ioasId\":3,\"ranges\":[{\"start\":4096,\"last\":2097151},"
                            "{\"start\":1099511627776,\"last\":18446744073709551615}]}");

        assert_int_equal(iommud_map(x.c, 3, fd, 0, 8192, NULL, IOMMUD_MAP_READABLE | IOMMUD_MAP_WRITEABLE,
                                    &iova, x.e), 0);
        assert_int_equal(iova, 0x100000);
        assert_int_equal(F->last_fd_ino, ino_of(fd));
        assert_string_equal(F->last_params, "{\"ioasId\":3,\"memoryFd\":0,\"offset\":0,\"length\":8192,"
                                            "\"readable\":true,\"writeable\":true}");

        want = 0x200000;
        assert_int_equal(iommud_map(x.c, 3, fd, 4096, 4096, &want, IOMMUD_MAP_READABLE, &iova, x.e), 0);
        assert_int_equal(iova, 0x200000);
        assert_non_null(strstr(F->last_params, "\"iova\":2097152,\"readable\":true,\"writeable\":false"));

        want = 0xfee00000;
        assert_int_equal(iommud_map(x.c, 3, fd, 0, 4096, &want, IOMMUD_MAP_READABLE, &iova, x.e),
                         -ERANGE);
        assert_string_equal(iommud_error_get_message(x.e),
                            "the range at 0xfee00000 of 4096 bytes is not usable: it overlaps the MSI window");
        assert_int_equal(iommud_map(x.c, 3, fd, 0, 4096, NULL, 0x10, &iova, x.e), -EINVAL);

        assert_int_equal(iommud_unmap(x.c, 3, 0x100000, 8192, &unmapped, x.e), 0);
        assert_int_equal(unmapped, 8192);

        want = 0x300000;
        assert_int_equal(iommud_copy(x.c, 3, 0x100000, 4, &want, 4096, &iova, x.e), 0);
        assert_int_equal(iova, 8192);
        assert_string_equal(F->last_params, "{\"srcIoasId\":3,\"srcIova\":1048576,\"dstIoasId\":4,"
                                            "\"dstIova\":3145728,\"length\":4096}");
}

static void test_map_batch(void **state) {
        _cleanup_(ctx_done) Ctx x = ctx_new();
        _cleanup_close_ int a = memfd(2 * 4096), b = memfd(4096);
        IommudMapArea areas[3] = {
                { a, 0, 4096, 0, IOMMUD_MAP_READABLE },
                { b, 0, 4096, 0x200000, IOMMUD_MAP_READABLE | IOMMUD_MAP_WRITEABLE |
                                                IOMMUD_MAP_FIXED_IOVA },
                { a, 4096, 4096, 0, IOMMUD_MAP_READABLE },
        };
        IommudIOVARange ranges[2] = { { 0x100000, 0x100fff }, { 0x200000, 0x202fff } };
        uint64_t iovas[3] = {}, area = 0, unmapped = 0;

        assert_int_equal(iommud_map_batch(x.c, 3, areas, 3, iovas, x.e), 0);
        /* One fd sent per distinct memory fd; the areas name them by index. */
        assert_int_equal(F->n_fds_seen, 2);
        assert_string_equal(F->last_params,
                            "{\"ioasId\":3,\"areas\":["
                            "{\"memoryFd\":0,\"offset\":0,\"length\":4096,\"readable\":true,"
                            "\"writeable\":false},"
                            "{\"memoryFd\":1,\"offset\":0,\"length\":4096,\"iova\":2097152,"
                            "\"readable\":true,\"writeable\":true},"
                            "{\"memoryFd\":0,\"offset\":4096,\"length\":4096,\"readable\":true,"
                            "\"writeable\":false}]}");
        assert_int_equal(iovas[0], 0x100000);
        assert_int_equal(iovas[1], 0x200000);
        assert_int_equal(iovas[2], 0x102000);

        /* The error names the area at fault. */
        areas[1].iova = 0xfee00000;
        assert_int_equal(iommud_map_batch(x.c, 3, areas, 3, iovas, x.e), -ERANGE);
        assert_int_equal(iommud_error_get_uint(x.e, "area", &area), 0);
        assert_int_equal(area, 1);

        /* Refused before sending: a bad fd, unknown flags, too many areas. */
        areas[2].memory_fd = -1;
        assert_int_equal(iommud_map_batch(x.c, 3, areas, 3, iovas, x.e), -EBADF);
        areas[2].memory_fd = a;
        areas[2].flags = 0x10;
        assert_int_equal(iommud_map_batch(x.c, 3, areas, 3, iovas, x.e), -EINVAL);
        assert_int_equal(iommud_map_batch(x.c, 3, areas, IOMMUD_BATCH_MAX + 1, iovas, x.e),
                         -E2BIG);

        assert_int_equal(iommud_unmap_batch(x.c, 3, ranges, 2, &unmapped, x.e), 0);
        assert_int_equal(unmapped, 12288);
        assert_string_equal(F->last_params,
                            "{\"ioasId\":3,\"ranges\":[{\"start\":1048576,\"last\":1052671},"
                            "{\"start\":2097152,\"last\":2109439}]}");
}

static void test_pasid(void **state) {
        _cleanup_(ctx_done) Ctx x = ctx_new();
        uint32_t pasid = 5, got = 0, hwpt = 0;

        static const uint8_t table[4] = { 0xde, 0xad, 0x0b, 0x01 };
        IommudStage1 s1 = { .type = "vtd", .data = table, .size = sizeof(table) };

        assert_int_equal(iommud_bind_pasid(x.c, 7, 3, &pasid, 0, NULL, &got, &hwpt, x.e), 0);
        assert_string_equal(F->last_params, "{\"deviceId\":7,\"ioasId\":3,\"pasid\":5}");
        assert_int_equal(got, 5);
        assert_int_equal(hwpt, 11);
        assert_int_equal(iommud_bind_pasid(x.c, 7, 3, &pasid, IOMMUD_BIND_FAULTS, &s1, &got, &hwpt,
                                           x.e), 0);
        assert_string_equal(F->last_params, "{\"deviceId\":7,\"ioasId\":3,\"pasid\":5,\"faults\":true,"
                                            "\"stage1\":{\"type\":\"vtd\",\"data\":\"dead0b01\"}}");
        assert_int_equal(iommud_bind_pasid(x.c, 7, 3, &pasid, 0x8, NULL, &got, &hwpt, x.e), -EINVAL);
        assert_int_equal(iommud_bind_pasid(x.c, 7, 3, NULL, 0, NULL, &got, &hwpt, x.e), -EOPNOTSUPP);
        assert_string_equal(iommud_error_get_message(x.e), "PASID allocation is not supported here");
        assert_int_equal(iommud_unbind_pasid(x.c, 7, 5, x.e), 0);
        assert_string_equal(F->last_params, "{\"deviceId\":7,\"pasid\":5}");
}

static void test_session_and_delegate(void **state) {
        _cleanup_(ctx_done) Ctx x = ctx_new();
        IommudSession *s = NULL;
        const IommudUsage *u;
        uint32_t uid = 0, gid = 0, pid = 0;
        int fd = -1;

        assert_int_equal(iommud_get_session(x.c, &s, x.e), 0);
        assert_string_equal(iommud_session_get_principal(s, &uid, &gid, &pid), "vm1.scope");
        assert_int_equal(uid, 1000);
        assert_int_equal(gid, 100);
        assert_int_equal(pid, 42);
        assert_string_equal(iommud_session_get_token(s), "tok-1");
        assert_int_equal(iommud_session_get_n_usage(s), 2);
        u = iommud_session_get_usage(s, 0);
        assert_string_equal(u->resource, "mappings");
        assert_true(u->has_limit);
        assert_int_equal(u->limit, 100);
        assert_true(u->has_principal_used);
        assert_int_equal(u->principal_used, 5);
        u = iommud_session_get_usage(s, 1);
        assert_false(u->has_limit);
        assert_false(u->has_principal_used);
        assert_int_equal(u->used, 8192);
        assert_null(iommud_session_get_usage(s, 2));
        assert_int_equal(iommud_session_get_fault_counters(s)->delivered, 3);
        assert_int_equal(iommud_session_get_fault_counters(s)->timed_out, 1);
        iommud_session_free(s);

        assert_int_equal(iommud_join_session(x.c, "wrong", x.e), -ENOENT);
        assert_int_equal(iommud_join_session(x.c, "tok-1", x.e), 0);

        assert_int_equal(iommud_delegate(x.c, &fd, x.e), 0);
        assert_true(fd >= 0);
        assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
        close(fd);
}

static void test_fault_stream(void **state) {
        _cleanup_(ctx_done) Ctx x = ctx_new();
        IommudFaultStream *s = NULL;
        IommudFault *f = NULL;
        uint32_t dev = 7;
        int r, n = 0;

        F->joined_token[0] = 0;
        assert_int_equal(iommud_fault_stream_new(&s, x.c, &dev, x.e), 0);
        assert_string_equal(F->joined_token, "tok-1");
        assert_true(iommud_fault_stream_get_fd(s) >= 0);
        assert_int_not_equal(iommud_fault_stream_get_fd(s), iommud_client_get_fd(x.c));

        for (;;) {
                struct pollfd p = { .fd = iommud_fault_stream_get_fd(s), .events = POLLIN };

                r = iommud_fault_stream_next(s, &f, x.e);
                if (r == 0) {
                        assert_int_equal(poll(&p, 1, -1), 1);
                        continue;
                }
                if (r < 0)
                        break;
                n++;
                if (n == 1) {
                        assert_int_equal(f->cookie, 1);
                        assert_true(f->has_pasid);
                        assert_int_equal(f->pasid, 5);
                        assert_true(f->read);
                        assert_false(f->last_page);
                } else {
                        assert_int_equal(f->cookie, 2);
                        assert_false(f->has_pasid);
                        assert_true(f->write);
                        assert_true(f->privileged);
                        assert_true(f->last_page);
                        assert_int_equal(f->group_id, 9);
                }
                assert_int_equal(iommud_respond_fault(x.c, f->cookie, IOMMUD_FAULT_SUCCESS, x.e), 0);
                iommud_fault_free(f);
        }
        assert_int_equal(n, 2);
        assert_int_equal(r, -ENODATA);
        assert_int_equal(iommud_fault_stream_next(s, &f, x.e), -ENODATA);
        assert_string_equal(F->last_params, "{\"cookie\":2,\"code\":\"success\"}");
        assert_int_equal(iommud_respond_fault(x.c, 1, 7, x.e), -EINVAL);
        assert_int_equal(iommud_respond_fault(x.c, 77, IOMMUD_FAULT_SUCCESS, x.e), -EALREADY);
        assert_string_equal(iommud_error_get_message(x.e), "fault 77 is not pending any more: timed_out");
        assert_int_equal(iommud_respond_fault(x.c, 78, IOMMUD_FAULT_INVALID, x.e), -EACCES);
        assert_string_equal(iommud_error_get_message(x.e), "fault 78 belongs to another session");
        iommud_fault_stream_free(s);

        /* A client made from an fd does not know where to open the stream. */
        {
                IommudClient *c2 = NULL;
                int sv[2];

                assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
                assert_int_equal(iommud_client_new_from_fd(&c2, sv[0]), 0);
                assert_null(iommud_client_get_path(c2));
                assert_int_equal(iommud_fault_stream_new(&s, c2, NULL, x.e), -EINVAL);
                iommud_client_unref(c2);
                close(sv[1]);
        }
}

static void test_hangup(void **state) {
        IommudClient *c = NULL;
        IommudError *e = NULL;
        uint32_t ioas;
        int sv[2];

        assert_int_equal(iommud_error_new(&e), 0);
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        assert_int_equal(iommud_client_new_from_fd(&c, sv[0]), 0);
        close(sv[1]);
        assert_int_equal(iommud_create_address_space(c, &ioas, e), -ECONNRESET);
        assert_null(iommud_error_get_name(e));
        assert_non_null(strstr(iommud_error_get_message(e), "closed the connection"));
        /* The connection stays unusable. */
        assert_int_equal(iommud_create_address_space(c, &ioas, e), -ENOTCONN);
        /* NULL error objects are fine everywhere. */
        assert_int_equal(iommud_create_address_space(c, &ioas, NULL), -ENOTCONN);
        iommud_client_unref(c);
        iommud_error_clear(e);
        iommud_error_free(e);
        assert_null(iommud_error_free(NULL));
}

static uint64_t ranges_count(IommudClient *c, IommudError *e) {
        IommudIOVARange *ranges = NULL;
        uint64_t alignment = 0;
        size_t n = 0;
        int r;

        r = iommud_get_iova_ranges(c, 3, &ranges, &n, &alignment, e);
        if (r < 0)
                return (uint64_t)r;
        free(ranges);
        return n;
}

/* A dropped connection is reclaimed with the session's token; what is safe is made again. */
static void test_reclaim(void **state) {
        IommudClient *c = NULL;
        IommudError *e = NULL;
        uint64_t iova;
        uint32_t ioas;
        int fd = memfd(8192);
        unsigned conns = F->n_connections, sessions = F->n_get_session;

        assert_int_equal(iommud_error_new(&e), 0);
        assert_int_equal(iommud_client_new(&c, F->path, e), 0);
        /* The first call fetches the token, once. */
        assert_int_equal(iommud_create_address_space(c, &ioas, e), 0);
        assert_int_equal(iommud_create_address_space(c, &ioas, e), 0);
        assert_int_equal(F->n_get_session - sessions, 1);
        assert_int_equal(F->n_connections - conns, 1);

        /* A read whose connection drops after iommud got it: reclaimed and made again. */
        F->drop_method = "GetIOVARanges";
        assert_int_equal(ranges_count(c, e), 2);
        assert_int_equal(iommud_client_get_n_reclaims(c), 1);
        assert_int_equal(F->n_connections - conns, 2);
        assert_string_equal(F->joined_token, "tok-1");

        /* A mutation in the same place: the session is back, the outcome unknown. */
        F->drop_method = "Map";
        assert_int_equal(iommud_map(c, 3, fd, 0, 4096, NULL, IOMMUD_MAP_READABLE, &iova, e),
                         -ESTALE);
        assert_null(iommud_error_get_name(e));
        assert_non_null(strstr(iommud_error_get_message(e), "whether"));
        assert_int_equal(iommud_client_get_n_reclaims(c), 2);
        /* The client works on. */
        assert_int_equal(iommud_map(c, 3, fd, 0, 4096, NULL, IOMMUD_MAP_READABLE, &iova, e), 0);

        /* A session that did not survive: NoSuchObject, and the client is closed. */
        F->session_gone = true;
        F->drop_method = "GetIOVARanges";
        assert_int_equal(ranges_count(c, e), (uint64_t)-ENOENT);
        assert_non_null(strstr(iommud_error_get_message(e), "could not be reclaimed"));
        assert_int_equal(ranges_count(c, e), (uint64_t)-ENOTCONN);
        F->session_gone = false;
        iommud_client_unref(c);

        /* Opted out: a drop is the end, as before. */
        assert_int_equal(iommud_client_new_flags(&c, F->path, IOMMUD_CONNECT_NO_RECLAIM, e), 0);
        F->drop_method = "GetIOVARanges";
        assert_int_equal(ranges_count(c, e), (uint64_t)-ECONNRESET);
        assert_int_equal(iommud_client_get_n_reclaims(c), 0);
        iommud_client_unref(c);
        assert_int_equal(iommud_client_new_flags(&c, F->path, 1u << 7, e), -EINVAL);

        /* Nobody comes back: bounded by the reclaim timeout. */
        assert_int_equal(iommud_client_new(&c, F->path, e), 0);
        assert_int_equal(iommud_client_set_reclaim_timeout(c, 50), 0);
        assert_int_equal(ranges_count(c, e), 2);
        assert_int_equal(unlink(F->path), 0);
        F->drop_method = "GetIOVARanges";
        assert_int_equal(ranges_count(c, e), (uint64_t)-ENOENT);
        assert_non_null(strstr(iommud_error_get_message(e), "within 50 ms"));
        iommud_client_unref(c);
        iommud_error_free(e);
        close(fd);
}

int main(void) {
        static const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_connect_errors),
                cmocka_unit_test(test_topology),
                cmocka_unit_test(test_malformed_reply),
                cmocka_unit_test(test_explain),
                cmocka_unit_test(test_attach_policy_denied),
                cmocka_unit_test(test_attach_fd_and_lifecycle),
                cmocka_unit_test(test_ranges_and_map),
                cmocka_unit_test(test_map_batch),
                cmocka_unit_test(test_pasid),
                cmocka_unit_test(test_session_and_delegate),
                cmocka_unit_test(test_fault_stream),
                cmocka_unit_test(test_hangup),
                cmocka_unit_test(test_reclaim),
        };

        return cmocka_run_group_tests_name("libiommud", tests, setup, teardown);
}
