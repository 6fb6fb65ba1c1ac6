/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * IommudError: what the last call of the library failed on.  A Varlink error
 * keeps its name and parameters and gets a sentence built from them; any
 * other failure gets a sentence and an errno.
 */

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "assert-util.h"
#include "error-names.h"
#include "iommud/iommud.h"
#include "json-util.h"
#include "libiommud-internal.h"
#include "macros.h"

struct IommudError {
        int error;
        char *name;
        char *message;
        char *parameters;        /* JSON text */
        json_object *params;
};

_public_ int iommud_error_new(IommudError **ret) {
        IommudError *e;

        assert_return(ret, -EINVAL);
        e = calloc(1, sizeof(*e));
        if (!e)
                return -ENOMEM;
        *ret = e;
        return 0;
}

_public_ void iommud_error_clear(IommudError *e) {
        if (!e)
                return;
        free(e->name);
        free(e->message);
        free(e->parameters);
        json_object_put(e->params);
        *e = (IommudError){};
}

_public_ IommudError *iommud_error_free(IommudError *e) {
        iommud_error_clear(e);
        free(e);
        return NULL;
}

_public_ int iommud_error_get_errno(const IommudError *e) {
        return e ? e->error : 0;
}

_public_ const char *iommud_error_get_name(const IommudError *e) {
        return e ? e->name : NULL;
}

_public_ bool iommud_error_has_name(const IommudError *e, const char *name) {
        size_t n;

        if (!e || !e->name || !name)
                return false;
        if (streq(e->name, name))
                return true;
        /* A short name stands for an error of org.iommud.Broker. */
        n = strlen(IOMMUD_BROKER_INTERFACE);
        return !strchr(name, '.') && strneq(e->name, IOMMUD_BROKER_INTERFACE, n) &&
               e->name[n] == '.' && streq(e->name + n + 1, name);
}

_public_ const char *iommud_error_get_message(const IommudError *e) {
        return e && e->message ? e->message : "";
}

_public_ const char *iommud_error_get_parameters(const IommudError *e) {
        return e && e->parameters ? e->parameters : "{}";
}

_public_ const char *iommud_error_get_string(const IommudError *e, const char *key) {
        json_object *v;

        if (!e || !e->params || !key || !json_object_object_get_ex(e->params, key, &v) ||
            !json_object_is_type(v, json_type_string))
                return NULL;
        return json_object_get_string(v);
}

_public_ int iommud_error_get_uint(const IommudError *e, const char *key, uint64_t *ret) {
        json_object *v;
        uint64_t u;

        if (!e || !e->params || !key || !json_object_object_get_ex(e->params, key, &v) ||
            json_object_is_type(v, json_type_null))
                return -ENOENT;
        if (json_util_to_u64(v, &u) < 0)
                return -EINVAL;
        if (ret)
                *ret = u;
        return 0;
}

_public_ const char *iommud_error_get_device(const IommudError *e) {
        return iommud_error_get_string(e, "device");
}

_public_ const char *iommud_error_get_step(const IommudError *e) {
        return iommud_error_get_string(e, "step");
}

_public_ const char *iommud_error_get_reason(const IommudError *e) {
        return iommud_error_get_string(e, "reason");
}

int iommud_error_setf(IommudError *e, int r, const char *fmt, ...) {
        va_list ap;
        char *m = NULL;

        if (!e)
                return r;
        iommud_error_clear(e);
        e->error = r;
        va_start(ap, fmt);
        if (vasprintf(&m, fmt, ap) < 0)
                m = NULL;
        va_end(ap);
        e->message = m;
        return r;
}

static const char *short_name(const char *name) {
        const char *dot = strrchr(name, '.');

        return dot ? dot + 1 : name;
}

static const char *param_str(json_object *p, const char *key, const char *fallback) {
        const char *s = NULL;

        if (json_util_get_string(p, key, JSON_UTIL_OPTIONAL, &s, NULL) < 0 || !s)
                return fallback;
        return s;
}

static uint64_t param_u64(json_object *p, const char *key) {
        uint64_t u = 0;

        (void)json_util_get_u64(p, key, JSON_UTIL_OPTIONAL, &u, NULL);
        return u;
}

/* A sentence from the error's parameters; NULL on allocation failure. */
static char *compose_message(const char *name, json_object *p) {
        const char *s = short_name(name);
        char *m = NULL;
        int r;

        if (streq(s, "PolicyDenied"))
                r = asprintf(&m, "%s cannot be used: %s", param_str(p, "device", "the device"),
                             param_str(p, "reason", "the policy refused it"));
        else if (streq(s, "DeviceBusy"))
                r = asprintf(&m, "%s is held by %s", param_str(p, "device", "the device"),
                             param_str(p, "heldBy", "another session"));
        else if (streq(s, "QuotaExceeded"))
                r = asprintf(&m, "the %s quota is exhausted: %" PRIu64 " used of %" PRIu64,
                             param_str(p, "resource", "resource"), param_u64(p, "used"),
                             param_u64(p, "limit"));
        else if (streq(s, "NoSuchObject") && streq(param_str(p, "kind", ""), "device") &&
                 strspn(param_str(p, "id", ""), "0123456789") != strlen(param_str(p, "id", "")))
                /* A device name rather than a session's device id. */
                r = asprintf(&m, "there is no device %s on this host", param_str(p, "id", "?"));
        else if (streq(s, "NoSuchDevice")) /* org.iommud.Manager's */
                r = asprintf(&m, "there is no device %s on this host", param_str(p, "device", "?"));
        else if (streq(s, "NoSuchUser"))
                r = asprintf(&m, "uid %" PRIu64 " has no user account on this host",
                             param_u64(p, "uid"));
        else if (streq(s, "NoSuchObject"))
                r = asprintf(&m, "there is no %s %s in this session", param_str(p, "kind", "object"),
                             param_str(p, "id", "with that id"));
        else if (streq(s, "InvalidRange"))
                r = asprintf(&m, "the range at 0x%" PRIx64 " of %" PRIu64 " bytes is not usable: %s",
                             param_u64(p, "start"), param_u64(p, "length"),
                             param_str(p, "reason", "no reason given"));
        else if (streq(s, "IOVAInUse"))
                r = asprintf(&m, "the range at 0x%" PRIx64 " of %" PRIu64
                             " bytes overlaps an existing mapping",
                             param_u64(p, "start"), param_u64(p, "length"));
        else if (streq(s, "InvalidFd"))
                r = asprintf(&m, "the file descriptor is not usable: %s",
                             param_str(p, "reason", "no reason given"));
        else if (streq(s, "NotSupported"))
                r = asprintf(&m, "%s is not supported here", param_str(p, "feature", "the feature"));
        else if (streq(s, "FaultNotPending"))
                r = asprintf(&m, "fault %" PRIu64 " is not pending any more: %s",
                             param_u64(p, "cookie"), param_str(p, "reason", "answered"));
        else if (streq(s, "FaultNotOwned"))
                r = asprintf(&m, "fault %" PRIu64 " belongs to another session",
                             param_u64(p, "cookie"));
        else if (streq(s, "ObjectInUse"))
                r = asprintf(&m, "%s %" PRIu64 " is still in use: %s", param_str(p, "kind", "object"),
                             param_u64(p, "id"), param_str(p, "reason", "no reason given"));
        else if (streq(s, "BackendError") || streq(s, "SystemError"))
                r = asprintf(&m, "%s: %s", streq(s, "BackendError") ? "the kernel refused" :
                                                                      "iommud failed",
                             param_str(p, "message", "no message"));
        else if (streq(s, "ClaimConflict")) /* org.iommud.Manager's, as the next two */
                r = asprintf(&m, "claim %s is prepared already %s", param_str(p, "claimId", "?"),
                             param_str(p, "reason", "otherwise"));
        else if (streq(s, "ClaimFailed"))
                r = asprintf(&m, "claim %s could not be prepared: %s",
                             param_str(p, "claimId", "?"), param_str(p, "reason", "no reason"));
        else if (streq(s, "InvalidClaimId"))
                r = asprintf(&m, "'%s' is not a claim id: %s", param_str(p, "claimId", "?"),
                             param_str(p, "reason", "no reason given"));
        else if (streq(s, "InvalidParameter"))
                r = asprintf(&m, "iommud rejected the parameter '%s'",
                             param_str(p, "parameter", "?"));
        else if (streq(s, "MethodNotFound") || streq(s, "InterfaceNotFound"))
                r = asprintf(&m, "iommud does not offer %s",
                             param_str(p, "method", param_str(p, "interface", "that method")));
        else if (streq(s, "PermissionDenied"))
                r = asprintf(&m, "permission denied by iommud");
        else if (param_str(p, "reason", NULL) || param_str(p, "message", NULL))
                r = asprintf(&m, "%s: %s", s,
                             param_str(p, "reason", param_str(p, "message", "")));
        else
                r = asprintf(&m, "iommud replied with the error %s", name);
        return r < 0 ? NULL : m;
}

int iommud_error_set_varlink(IommudError *e, const char *name, json_object *parameters) {
        /* One errno per name, from the table org.iommud1 registers as its bus error map too. */
        int k = error_names_errno(name), r = k > 0 ? -k : -EPROTO;

        if (!e)
                return r;
        iommud_error_clear(e);
        e->error = r;
        e->name = strdup(name);
        e->params = json_object_get(parameters);
        e->parameters = strdup(parameters ? json_object_to_json_string_ext(
                                                    parameters, JSON_C_TO_STRING_PLAIN) :
                                            "{}");
        e->message = compose_message(name, parameters);
        return r;
}
