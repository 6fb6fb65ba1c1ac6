/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * org.iommud.Broker: PASIDs and the I/O page faults of what is bound to them
 * (BindPASID, UnbindPASID, WatchFaults, RespondFault).
 */

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "backend.h"
#include "json-util.h"
#include "varlink-broker-internal.h"

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

typedef struct BindPasidParams {
        SessionBindPasidArgs args;
        struct {
                uint32_t type;
                const char *data;
        } stage1;
        bool has_stage1;
} BindPasidParams;

/* Stage1.type: a name of the backend's stage-1 table, its BACKEND_HWPT_DATA_* type stored. */
static int stage1_type_parse(const JsonDispatchValue *v, void *target,
                             const JsonDispatchPath *path, Error *err) {
        char p[JSON_DISPATCH_PATH_MAX];

        json_dispatch_path_format(path, p, sizeof(p));
        if (v->kind != JSON_DISPATCH_KIND_STRING)
                return error_set(err, -EINVAL, "%s: expected a string", p);
        if (strlen(v->text) != v->length ||
            backend_stage1_type_from_string(v->text, (uint32_t *)target) < 0)
                return error_set(err, -EINVAL, "%s: '%s' is none of the stage-1 types of "
                                 "Stage1.type", p, v->text);
        return 0;
}

static const JsonDispatchField stage1_fields[] = {
        { "type", JSON_DISPATCH_CUSTOM, JSON_DISPATCH_REQUIRED, 0, .callback = stage1_type_parse },
        { "data", JSON_DISPATCH_STRING, JSON_DISPATCH_REQUIRED,
          offsetof(BindPasidParams, stage1.data) - offsetof(BindPasidParams, stage1) },
        {},
};

const JsonDispatchField broker_bind_pasid_parameters[] = {
        { "deviceId", JSON_DISPATCH_UINT32, JSON_DISPATCH_REQUIRED,
          offsetof(BindPasidParams, args.device_id) },
        { "ioasId", JSON_DISPATCH_UINT32, JSON_DISPATCH_REQUIRED,
          offsetof(BindPasidParams, args.ioas_id) },
        { "pasid", JSON_DISPATCH_UINT32, JSON_DISPATCH_NULLABLE,
          offsetof(BindPasidParams, args.pasid),
          .presence = JSON_DISPATCH_PRESENCE(BindPasidParams, args.has_pasid) },
        { "faults", JSON_DISPATCH_BOOL, JSON_DISPATCH_NULLABLE,
          offsetof(BindPasidParams, args.faults) },
        { "stage1", JSON_DISPATCH_OBJECT, JSON_DISPATCH_NULLABLE, offsetof(BindPasidParams, stage1),
          .presence = JSON_DISPATCH_PRESENCE(BindPasidParams, has_stage1),
          .fields = stage1_fields },
        {},
};

int broker_method_bind_pasid(VarlinkCall *call, json_object *params, VarlinkCallFlags flags,
                             void *userdata) {
        _cleanup_free_ uint8_t *data = NULL;
        BrokerError e;
        BindPasidParams p = {};
        json_object *out;
        uint32_t pasid, hwpt;
        int r;

        broker_error_init(&e);
        REQUIRE_SESSION(call);
        r = varlink_call_dispatch(call, params, broker_bind_pasid_parameters, &p);
        if (r < 0)
                return r;
        if (p.has_stage1) {
                p.args.stage1_type = p.stage1.type;
                if (hex_decode(p.stage1.data, &data, &p.args.stage1_len) < 0)
                        return varlink_call_invalid_parameter(call, "stage1",
                                                              "stage1.data is not a hex string "
                                                              "of whole bytes");
                p.args.stage1_data = data;
        }
        if (session_bind_pasid(broker_call_session(call), &p.args, &pasid, &hwpt, &e) < 0)
                return broker_reply_error(call, &e);
        out = json_object_new_object();
        if (!out)
                return -ENOMEM;
        (void)json_util_add(out, "pasid", json_object_new_int64(pasid));
        (void)json_util_add(out, "hwptId", json_object_new_int64(hwpt));
        return broker_reply(call, out);
}

typedef struct UnbindPasidParams {
        uint32_t device_id, pasid;
} UnbindPasidParams;

const JsonDispatchField broker_unbind_pasid_parameters[] = {
        { "deviceId", JSON_DISPATCH_UINT32, JSON_DISPATCH_REQUIRED,
          offsetof(UnbindPasidParams, device_id) },
        { "pasid", JSON_DISPATCH_UINT32, JSON_DISPATCH_REQUIRED,
          offsetof(UnbindPasidParams, pasid) },
        {},
};

int broker_method_unbind_pasid(VarlinkCall *call, json_object *params, VarlinkCallFlags flags,
                               void *userdata) {
        BrokerError e;
        UnbindPasidParams p = {};
        int r;

        broker_error_init(&e);
        REQUIRE_SESSION(call);
        r = varlink_call_dispatch(call, params, broker_unbind_pasid_parameters, &p);
        if (r < 0)
                return r;
        if (session_unbind_pasid(broker_call_session(call), p.device_id, p.pasid, &e) < 0)
                return broker_reply_error(call, &e);
        return broker_reply(call, NULL);
}

/*
 * Appends the decimal digits of v at p, two at a time; returns the end.  It always copies 20
 * bytes (a fixed-size copy is a few moves, a variable one a call): p needs 20 bytes of room.
 */
static char *put_u64(char *p, uint64_t v) {
        static const char pairs[] = "00010203040506070809101112131415161718192021222324"
                                    "25262728293031323334353637383940414243444546474849"
                                    "50515253545556575859606162636465666768697071727374"
                                    "75767778798081828384858687888990919293949596979899";
        char tmp[40] = {}, *e = tmp + 20, *b = e;

        while (v >= 100) {
                b -= 2;
                memcpy(b, pairs + 2 * (v % 100), 2);
                v /= 100;
        }
        if (v >= 10) {
                b -= 2;
                memcpy(b, pairs + 2 * v, 2);
        } else
                *--b = (char)('0' + v);
        memcpy(p, b, 20);
        return p + (e - b);
}

/* Appends a string literal at p; its length is known at compile time, so no strlen(). */
#define PUT_LITERAL(p, lit) (memcpy((p), (lit), sizeof(lit) - 1), (p) + sizeof(lit) - 1)

#define PUT_BOOL(p, key, b) ((b) ? PUT_LITERAL(p, key "true") : PUT_LITERAL(p, key "false"))

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
        char buf[320], *p = buf; /* 230 bytes at most, and put_u64()'s 20 of room */

        p = put_u64(PUT_LITERAL(p, "{\"fault\":{\"cookie\":"), ev->cookie);
        p = put_u64(PUT_LITERAL(p, ",\"deviceId\":"), ev->device_id);
        if (ev->pasid_valid)
                p = put_u64(PUT_LITERAL(p, ",\"pasid\":"), ev->pasid);
        p = put_u64(PUT_LITERAL(p, ",\"groupId\":"), ev->group_id);
        p = put_u64(PUT_LITERAL(p, ",\"address\":"), ev->address);
        p = put_u64(PUT_LITERAL(p, ",\"length\":"), ev->length);
        p = PUT_BOOL(p, ",\"read\":", ev->perm & FAULT_PERM_READ);
        p = PUT_BOOL(p, ",\"write\":", ev->perm & FAULT_PERM_WRITE);
        p = PUT_BOOL(p, ",\"exec\":", ev->perm & FAULT_PERM_EXEC);
        p = PUT_BOOL(p, ",\"privileged\":", ev->perm & FAULT_PERM_PRIV);
        p = PUT_BOOL(p, ",\"lastPage\":", ev->last_page);
        p = PUT_LITERAL(p, "}}");
        assert((size_t)(p - buf) < sizeof(buf));
        /* -ENOBUFS: the client does not read; the router answers INVALID for it. */
        return varlink_call_reply_more_text(w->call, buf, (size_t)(p - buf));
}

/* FAULT_WATCH_ALL stands for "every device": no device has that id. */
const JsonDispatchField broker_watch_faults_parameters[] = {
        { "deviceId", JSON_DISPATCH_UINT32, JSON_DISPATCH_NULLABLE, 0,
          .max = FAULT_WATCH_ALL - 1 },
        {},
};

int broker_method_watch_faults(VarlinkCall *call, json_object *params, VarlinkCallFlags flags,
                               void *userdata) {
        BrokerError e;
        BrokerSession *bs;
        BrokerWatch *w;
        uint32_t dev = FAULT_WATCH_ALL;
        int r;

        broker_error_init(&e);
        REQUIRE_SESSION(call);
        r = varlink_call_dispatch(call, params, broker_watch_faults_parameters, &dev);
        if (r < 0)
                return r;
        if (!(flags & VARLINK_CALL_MORE))
                return varlink_call_error(call, VARLINK_ERROR_EXPECTED_MORE, NULL);

        bs = broker_call_broker_session(call);
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
                return broker_reply_error(call, &e);
        }
        /* The stream has no final reply: it ends when the client closes the connection. */
        return 0;
}

static const JsonDispatchEnum fault_response_codes[] = {
        { "success", FAULT_RESPONSE_SUCCESS },
        { "invalid", FAULT_RESPONSE_INVALID },
        {},
};

const JsonDispatchField broker_respond_fault_parameters[] = {
        { "cookie", JSON_DISPATCH_UINT64, JSON_DISPATCH_REQUIRED,
          offsetof(RespondFaultParams, cookie) },
        { "code", JSON_DISPATCH_ENUM, JSON_DISPATCH_REQUIRED, offsetof(RespondFaultParams, code),
          .enums = fault_response_codes },
        {},
};

int broker_method_respond_fault(VarlinkCall *call, json_object *params, VarlinkCallFlags flags,
                                void *userdata) {
        BrokerError e;
        RespondFaultParams p = {};
        int r;

        broker_error_init(&e);
        REQUIRE_SESSION(call);
        r = varlink_call_dispatch(call, params, broker_respond_fault_parameters, &p);
        if (r < 0)
                return r;
        if (session_respond_fault(broker_call_session(call), p.cookie, p.code, &e) < 0)
                return broker_reply_error(call, &e);
        return broker_reply(call, NULL);
}
