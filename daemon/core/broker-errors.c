/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "broker-errors.h"

_printf_(4, 0) static int broker_error_vset(BrokerError *e, int r, const char *name, const char *fmt,
                             va_list ap) {
        if (!e)
                return r;
        e->n_params = 0;
        e->error.error = r;
        e->error.name = name;
        vsnprintf(e->error.message, sizeof(e->error.message), fmt, ap);
        return r;
}

int broker_error_set(BrokerError *e, int r, const char *name, const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        r = broker_error_vset(e, r, name, fmt, ap);
        va_end(ap);
        return r;
}

static BrokerErrorParam *broker_error_add(BrokerError *e, const char *key, BrokerParamType type) {
        BrokerErrorParam *p;

        if (!e || e->n_params >= BROKER_ERROR_PARAMS_MAX)
                return NULL;
        p = &e->params[e->n_params++];
        *p = (BrokerErrorParam){ .key = key, .type = type };
        return p;
}

void broker_error_add_string(BrokerError *e, const char *key, const char *value) {
        BrokerErrorParam *p = broker_error_add(e, key, BROKER_PARAM_STRING);

        if (p)
                snprintf(p->str, sizeof(p->str), "%s", value ?: "");
}

void broker_error_add_u64(BrokerError *e, const char *key, uint64_t value) {
        BrokerErrorParam *p = broker_error_add(e, key, BROKER_PARAM_U64);

        if (p)
                p->u64 = value;
}

void broker_error_add_i64(BrokerError *e, const char *key, int64_t value) {
        BrokerErrorParam *p = broker_error_add(e, key, BROKER_PARAM_I64);

        if (p)
                p->i64 = value;
}

void broker_error_add_bool(BrokerError *e, const char *key, bool value) {
        BrokerErrorParam *p = broker_error_add(e, key, BROKER_PARAM_BOOL);

        if (p)
                p->b = value;
}

const BrokerErrorParam *broker_error_get(const BrokerError *e, const char *key) {
        if (!e)
                return NULL;
        for (size_t i = 0; i < e->n_params; i++)
                if (strcmp(e->params[i].key, key) == 0)
                        return &e->params[i];
        return NULL;
}

void broker_error_clear(BrokerError *e) {
        if (e)
                broker_error_init(e);
}

int broker_error_no_such_object(BrokerError *e, const char *kind, uint32_t id) {
        char buf[16];

        broker_error_set(e, -ENOENT, BROKER_ERROR_NO_SUCH_OBJECT,
                         "This session has no %s with id %" PRIu32 ".", kind, id);
        snprintf(buf, sizeof(buf), "%" PRIu32, id);
        broker_error_add_string(e, "kind", kind);
        broker_error_add_string(e, "id", buf);
        return -ENOENT;
}

int broker_error_no_such_device(BrokerError *e, const char *name) {
        broker_error_set(e, -ENODEV, BROKER_ERROR_NO_SUCH_OBJECT,
                         "No device %s in this host's IOMMU topology.", name);
        broker_error_add_string(e, "kind", BROKER_KIND_DEVICE);
        broker_error_add_string(e, "id", name);
        return -ENODEV;
}

int broker_error_system(BrokerError *e, int r, const char *what) {
        broker_error_set(e, r, BROKER_ERROR_SYSTEM_ERROR, "%s failed: %s", what, strerror(-r));
        broker_error_add_i64(e, "errno", -r);
        if (e)
                broker_error_add_string(e, "message", e->error.message);
        return r;
}

int broker_error_quota(BrokerError *e, const char *resource, const char *whose, uint64_t limit,
                       uint64_t used, uint64_t requested) {
        broker_error_set(e, -EDQUOT, BROKER_ERROR_QUOTA_EXCEEDED,
                         "Quota %s of %s exceeded: %" PRIu64 " in use across its sessions, %" PRIu64
                         " more requested, limit %" PRIu64 ".",
                         resource, whose, used, requested, limit);
        broker_error_add_string(e, "resource", resource);
        broker_error_add_u64(e, "limit", limit);
        broker_error_add_u64(e, "used", used);
        return -EDQUOT;
}

int broker_error_not_supported(BrokerError *e, const char *feature, const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        broker_error_vset(e, -EOPNOTSUPP, BROKER_ERROR_NOT_SUPPORTED, fmt, ap);
        va_end(ap);
        broker_error_add_string(e, "feature", feature);
        return -EOPNOTSUPP;
}

int broker_error_invalid_fd(BrokerError *e, int r, const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        broker_error_vset(e, r, BROKER_ERROR_INVALID_FD, fmt, ap);
        va_end(ap);
        if (e)
                broker_error_add_string(e, "reason", e->error.message);
        return r;
}

int broker_error_invalid_range(BrokerError *e, uint64_t start, uint64_t length, const char *fmt,
                               ...) {
        va_list ap;

        va_start(ap, fmt);
        broker_error_vset(e, -ERANGE, BROKER_ERROR_INVALID_RANGE, fmt, ap);
        va_end(ap);
        broker_error_add_u64(e, "start", start);
        broker_error_add_u64(e, "length", length);
        if (e)
                broker_error_add_string(e, "reason", e->error.message);
        return -ERANGE;
}

int broker_error_from_backend_range(BrokerError *e, const char *op, const Error *be,
                                    uint64_t start, uint64_t length) {
        int r = be->error < 0 ? be->error : -EIO;
        const char *msg = error_message(be);

        switch (r) {
        case -EEXIST:
        case -EADDRINUSE:
                broker_error_set(e, r, BROKER_ERROR_IOVA_IN_USE,
                                 "%s 0x%" PRIx64 "+0x%" PRIx64 ": %s", op, start, length, msg);
                broker_error_add_u64(e, "start", start);
                broker_error_add_u64(e, "length", length);
                return r;
        case -ENOENT:
        case -ENOSPC:
        case -EINVAL:
        case -ERANGE:
        case -EOVERFLOW:
                broker_error_set(e, r, BROKER_ERROR_INVALID_RANGE,
                                 "%s 0x%" PRIx64 "+0x%" PRIx64 ": %s", op, start, length, msg);
                broker_error_add_u64(e, "start", start);
                broker_error_add_u64(e, "length", length);
                broker_error_add_string(e, "reason", msg);
                return r;
        default:
                return broker_error_from_backend(e, op, be);
        }
}

int broker_error_from_backend(BrokerError *e, const char *op, const Error *be) {
        int r = be->error < 0 ? be->error : -EIO;
        const char *msg = error_message(be);

        switch (r) {
        case -EOPNOTSUPP:
        case -ENOTTY:
                broker_error_set(e, -EOPNOTSUPP, BROKER_ERROR_NOT_SUPPORTED, "%s: %s", op, msg);
                broker_error_add_string(e, "feature", op);
                break;
        case -ENOMEM:
                broker_error_set(e, r, BROKER_ERROR_SYSTEM_ERROR, "%s: %s", op, msg);
                broker_error_add_i64(e, "errno", -r);
                broker_error_add_string(e, "message", e ? e->error.message : msg);
                break;
        default:
                broker_error_set(e, r, BROKER_ERROR_BACKEND_ERROR, "%s failed: %s", op, msg);
                broker_error_add_i64(e, "errno", -r);
                broker_error_add_string(e, "message", e ? e->error.message : msg);
                break;
        }
        return r;
}
