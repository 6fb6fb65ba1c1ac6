/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * org.iommud.Manager: runtime claims (PrepareClaim, UnprepareClaim, ListClaims), the
 * node-local half of a Kubernetes DRA driver.  runtime-claim.h decides and holds.
 */

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "cdi.h"
#include "json-util.h"
#include "session-handoff.h"
#include "varlink-broker.h"
#include "varlink-manager-idl.h"
#include "varlink-manager-internal.h"

typedef struct PrepareClaimParams {
        const char *claim_id;
        const char **devices;
        size_t n_devices;
        uint32_t uid;
        uint32_t gid;
        const char *unit;
} PrepareClaimParams;

static const JsonDispatchField device_name_element = {
        .type = JSON_DISPATCH_STRING,
};

const JsonDispatchField manager_prepare_claim_parameters[] = {
        { "claimId", JSON_DISPATCH_STRING, JSON_DISPATCH_REQUIRED,
          offsetof(PrepareClaimParams, claim_id) },
        { "devices", JSON_DISPATCH_ARRAY, JSON_DISPATCH_REQUIRED,
          offsetof(PrepareClaimParams, devices), .max = SESSION_OPEN_DEVICES_MAX,
          .element = &device_name_element, .element_size = sizeof(const char *),
          .count_offset = offsetof(PrepareClaimParams, n_devices) },
        { "uid", JSON_DISPATCH_UINT32, JSON_DISPATCH_REQUIRED, offsetof(PrepareClaimParams, uid) },
        { "gid", JSON_DISPATCH_UINT32, JSON_DISPATCH_NULLABLE, offsetof(PrepareClaimParams, gid) },
        { "unit", JSON_DISPATCH_STRING, JSON_DISPATCH_NULLABLE,
          offsetof(PrepareClaimParams, unit) },
        {},
};

const JsonDispatchField manager_unprepare_claim_parameters[] = {
        { "claimId", JSON_DISPATCH_STRING, JSON_DISPATCH_REQUIRED, 0 },
        {},
};

static void prepare_claim_params_clear(PrepareClaimParams *p) {
        json_dispatch_clear(manager_prepare_claim_parameters, p);
}

/* The Manager's names for the session core's refusals; their parameters are the same. */
static int reply_claim_error(VarlinkCall *call, const char *claim_id, const BrokerError *e,
                             int r) {
        static const char *const same[] = { "PolicyDenied", "DeviceBusy", "QuotaExceeded" };
        const char *name = e->error.name;
        char full[128];
        json_object *p;

        if (name && streq(name, BROKER_ERROR_NO_SUCH_OBJECT))
                return manager_reply_explain_error(call, e, r);
        if (name && (streq(name, BROKER_ERROR_INVALID_PARAMETER) ||
                     streq(name, RUNTIME_CLAIM_ERROR_CONFLICT) ||
                     streq(name, RUNTIME_CLAIM_ERROR_INVALID_ID) ||
                     streq(name, RUNTIME_CLAIM_ERROR_FAILED)))
                return varlink_call_error(call, name, broker_error_params_json(e));
        for (size_t i = 0; name && i < ELEMENTSOF(same); i++) {
                snprintf(full, sizeof(full), "%s.%s", BROKER_INTERFACE, same[i]);
                if (!streq(name, full))
                        continue;
                snprintf(full, sizeof(full), "%s.%s", MANAGER_INTERFACE, same[i]);
                return varlink_call_error(call, full, broker_error_params_json(e));
        }
        /* Out of memory or a system error: the sentence says which. */
        p = json_object_new_object();
        if (!p)
                return -ENOMEM;
        (void)json_util_add(p, "claimId", json_object_new_string(claim_id));
        (void)json_util_add(p, "reason", json_object_new_string(error_message(&e->error)));
        return varlink_call_error(call, RUNTIME_CLAIM_ERROR_FAILED, p);
}

static json_object *claim_json(const RuntimeClaimInfo *c) {
        json_object *o = json_object_new_object(), *devs = json_object_new_array();
        char cdi_device[256];

        if (!o || !devs) {
                json_object_put(o);
                json_object_put(devs);
                return NULL;
        }
        for (size_t i = 0; i < c->n_devices; i++)
                (void)json_object_array_add(devs, json_object_new_string(c->devices[i]));
        snprintf(cdi_device, sizeof(cdi_device), "%s=%s", CDI_CLAIM_KIND, c->id);
        (void)json_util_add(o, "claimId", json_object_new_string(c->id));
        (void)json_util_add(o, "uid", manager_u64_node(c->uid));
        (void)json_util_add(o, "gid", manager_u64_node(c->gid));
        if (c->unit)
                (void)json_util_add(o, "unit", json_object_new_string(c->unit));
        (void)json_util_add(o, "devices", devs);
        (void)json_util_add(o, "spec", json_object_new_string(c->spec_path));
        (void)json_util_add(o, "cdiDevice", json_object_new_string(cdi_device));
        (void)json_util_add(o, "mode", json_object_new_string(c->mode));
        return o;
}

/* The claim called id, as ListClaims shows it; NULL when there is none. */
static json_object *find_claim_json(const RuntimeClaims *t, const char *id) {
        RuntimeClaimInfo c;

        for (size_t i = 0; runtime_claims_get(t, i, &c) >= 0; i++)
                if (streq(c.id, id))
                        return claim_json(&c);
        return NULL;
}

static void claims_changed(ManagerVarlink *mv) {
        if (mv->cfg.claims_changed)
                mv->cfg.claims_changed(mv->cfg.userdata);
}

int manager_method_prepare_claim(VarlinkCall *call, json_object *params, VarlinkCallFlags flags,
                                 void *userdata) {
        _cleanup_(prepare_claim_params_clear) PrepareClaimParams p = { .gid = GID_INVALID };
        ManagerVarlink *mv = userdata;
        BrokerError e = BROKER_ERROR_INIT;
        RuntimeClaimPrincipal who;
        json_object *out, *claim;
        int r;

        REQUIRE_ADMIN(call);
        r = varlink_call_dispatch(call, params, manager_prepare_claim_parameters, &p);
        if (r < 0)
                return r;
        if (!mv->cfg.claims)
                return varlink_call_error(call, VARLINK_ERROR_METHOD_NOT_IMPLEMENTED, NULL);
        who = (RuntimeClaimPrincipal){ .uid = p.uid, .gid = p.gid, .unit = p.unit };
        r = runtime_claims_prepare(mv->cfg.claims, p.claim_id, p.devices, p.n_devices, &who, &e);
        if (r < 0)
                return reply_claim_error(call, p.claim_id, &e, r);
        if (r > 0)
                claims_changed(mv);
        out = json_object_new_object();
        claim = find_claim_json(mv->cfg.claims, p.claim_id);
        if (!out || !claim) {
                json_object_put(out);
                json_object_put(claim);
                return -ENOMEM;
        }
        (void)json_util_add(out, "claim", claim);
        (void)json_util_add(out, "prepared", json_object_new_boolean(r > 0));
        return varlink_call_reply(call, out);
}

int manager_method_unprepare_claim(VarlinkCall *call, json_object *params,
                                   VarlinkCallFlags flags, void *userdata) {
        ManagerVarlink *mv = userdata;
        BrokerError e = BROKER_ERROR_INIT;
        const char *id = NULL;
        json_object *out;
        int r;

        REQUIRE_ADMIN(call);
        r = varlink_call_dispatch(call, params, manager_unprepare_claim_parameters, &id);
        if (r < 0)
                return r;
        if (!mv->cfg.claims)
                return varlink_call_error(call, VARLINK_ERROR_METHOD_NOT_IMPLEMENTED, NULL);
        r = runtime_claims_unprepare(mv->cfg.claims, id, &e);
        if (r < 0)
                return reply_claim_error(call, id, &e, r);
        if (r > 0)
                claims_changed(mv);
        out = json_object_new_object();
        if (!out)
                return -ENOMEM;
        (void)json_util_add(out, "released", json_object_new_boolean(r > 0));
        return varlink_call_reply(call, out);
}

int manager_method_list_claims(VarlinkCall *call, json_object *params, VarlinkCallFlags flags,
                               void *userdata) {
        ManagerVarlink *mv = userdata;
        json_object *out, *a;
        RuntimeClaimInfo c;
        int r;

        REQUIRE_ADMIN(call);
        r = varlink_call_dispatch(call, params, NULL, NULL);
        if (r < 0)
                return r;
        out = json_object_new_object();
        a = json_object_new_array();
        if (!out || !a) {
                json_object_put(out);
                json_object_put(a);
                return -ENOMEM;
        }
        for (size_t i = 0; mv->cfg.claims && runtime_claims_get(mv->cfg.claims, i, &c) >= 0; i++)
                (void)json_object_array_add(a, claim_json(&c));
        (void)json_util_add(out, "claims", a);
        return varlink_call_reply(call, out);
}
