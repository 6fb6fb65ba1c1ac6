/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <string.h>

#include "assert-util.h"
#include "explain.h"
#include "principal.h"

static const char *holder_of(void *userdata, const TopoDevice *d) {
        const ExplainScope *scope = userdata;

        /* A session's claim, or a client that keeps a device file iommud let go of. */
        return session_host_holder_description(scope->host, d, scope->self);
}

int explain_runtime(const ExplainScope *scope, PolicyRuntime *ret) {
        assert_return(scope, -EINVAL);
        assert_return(ret, -EINVAL);

        *ret = (PolicyRuntime){
                .device_holder = scope->host ? holder_of : NULL,
                .userdata = (void *)scope,
                .usage = scope->usage,
                .handoff = scope->handoff,
        };
        return 0;
}

int explain_device(const ExplainScope *scope, const char *device, const Principal *principal,
                   PolicyDecision *ret, BrokerError *err) {
        const TopoDevice *d;
        PolicyRuntime rt;
        int r;

        assert_return(scope && scope->policy && scope->topology, -EINVAL);
        assert_return(!scope->self || scope->host, -EINVAL);
        assert_return(device, -EINVAL);
        assert_return(ret, -EINVAL);

        d = topology_find_device(scope->topology, device);
        if (!d)
                return broker_error_no_such_device(err, device);
        (void)explain_runtime(scope, &rt);
        r = policy_decide(scope->policy, scope->topology, d, principal, &rt, ret);
        if (r < 0)
                return broker_error_set(err, r, BROKER_ERROR_BACKEND_ERROR,
                                        "Evaluating the policy for %s failed: %s", device,
                                        strerror(-r));
        return 0;
}

int explain_device_for(const ExplainScope *scope, const char *device, const ExplainSubject *who,
                       PolicyDecision *ret, BrokerError *err) {
        _cleanup_(principal_account_done) PrincipalAccount account = PRINCIPAL_ACCOUNT_INIT;
        static const PolicyQuotas nothing_used = {};
        ExplainScope own;
        Principal p;
        int r;

        assert_return(scope && scope->topology, -EINVAL);
        assert_return(device, -EINVAL);
        assert_return(who, -EINVAL);
        assert_return(ret, -EINVAL);

        /* Which device comes first: "no such device" whoever it is asked for. */
        if (!topology_find_device(scope->topology, device))
                return broker_error_no_such_device(err, device);
        if (who->uid == UID_INVALID)
                return explain_device(scope, device, NULL, ret, err);
        if (who->caller && who->caller->uid == who->uid && who->gid == GID_INVALID && !who->unit) {
                own = *scope;
                if (!own.usage)
                        own.usage = &nothing_used;
                (void)principal_from_creds(who->caller, &p);
                return explain_device(&own, device, &p, ret, err);
        }
        r = principal_account_resolve(who->uid, who->gid, &account, err);
        if (r < 0)
                return r;
        account.principal.unit = who->unit;
        return explain_device(scope, device, &account.principal, ret, err);
}
