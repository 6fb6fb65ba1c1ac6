/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * The record of what sessions were granted and refused: one call of the host's on_audit
 * per grant of a device or an iommufd and per refusal of one by a policy decision, made
 * where the core answers the request, so that every transport is on the record alike.
 */

#include <string.h>

#include "session-internal.h"

static const char *const action_names[_SESSION_AUDIT_ACTION_MAX] = {
        [SESSION_AUDIT_ATTACH] = "attach",
        [SESSION_AUDIT_DELEGATE] = "delegate",
        [SESSION_AUDIT_MAP] = "map",
        [SESSION_AUDIT_BIND_PASID] = "bind-pasid",
};

const char *session_audit_action_to_string(SessionAuditAction a) {
        return (unsigned)a < _SESSION_AUDIT_ACTION_MAX ? action_names[a] : NULL;
}

static const char *param(const BrokerError *err, const char *key) {
        const BrokerErrorParam *p = broker_error_get(err, key);

        return p && p->type == BROKER_PARAM_STRING && p->str[0] ? p->str : NULL;
}

/* The step of the policy decision that refused, or NULL when err is no such refusal. */
static const char *refusing_step(const BrokerError *err) {
        const char *name = err->error.name;

        if (!name)
                return NULL;
        if (streq(name, BROKER_ERROR_POLICY_DENIED))
                return param(err, "step") ?: "policy";
        if (streq(name, BROKER_ERROR_DEVICE_BUSY))
                return "exclusive";
        if (streq(name, BROKER_ERROR_QUOTA_EXCEEDED))
                return "quota";
        return NULL;
}

int session_audit_result(Session *s, SessionAuditAction action, const char *device, int r,
                         const BrokerError *err) {
        SessionAudit a = { .action = action, .granted = r >= 0, .device = device };

        /* Memory mapped or a PASID bound is no new grant: only their refusals are on record. */
        if (!s->host->on_audit ||
            (r >= 0 && (action == SESSION_AUDIT_MAP || action == SESSION_AUDIT_BIND_PASID)))
                return r;
        if (r < 0) {
                a.step = refusing_step(err);
                if (!a.step)
                        return r; /* a failure, not a decision */
                a.device = device ?: param(err, "device");
                a.reason = param(err, "reason") ?: error_message(&err->error);
        }
        s->host->on_audit(s, &a, s->host->on_audit_userdata);
        return r;
}
