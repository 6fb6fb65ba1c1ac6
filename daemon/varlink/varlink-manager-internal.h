/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * org.iommud.Manager's object and what its methods share: varlink-manager.c (status,
 * sessions, explain, reload, Monitor) and varlink-manager-claims.c (runtime claims).
 */

#include <json-c/json.h>

#include "json-dispatch.h"
#include "varlink-manager.h"

#define MANAGER_ERROR_NOT_AUTHORIZED MANAGER_INTERFACE ".NotAuthorized"
#define MANAGER_ERROR_POLICY_INVALID MANAGER_INTERFACE ".PolicyInvalid"
#define MANAGER_ERROR_NO_SUCH_DEVICE MANAGER_INTERFACE ".NoSuchDevice"
#define MANAGER_ERROR_NO_SUCH_USER MANAGER_INTERFACE ".NoSuchUser"

typedef struct SessionId {
        Session *session;
        uint64_t id;
} SessionId;

struct ManagerVarlink {
        ManagerVarlinkConfig cfg;
        VarlinkInterface iface;
        uint64_t start_sec;

        SessionId *ids;          /* live sessions in the order they opened */
        size_t n_ids;
        uint64_t next_id;

        VarlinkCall **subscribers;
        size_t n_subscribers;
};

/* An integer node, as an unsigned one above INT64_MAX. */
json_object *manager_u64_node(uint64_t v);
/* 0 for uid 0 and the daemon's own user; else replies NotAuthorized and returns -EPERM. */
int manager_require_admin(VarlinkCall *call);
#define REQUIRE_ADMIN(call)                                                                        \
        do {                                                                                       \
                if (manager_require_admin(call) < 0)                                                       \
                        return 0;                                                                  \
        } while (0)
/* NoSuchUser or NoSuchDevice for a NoSuchObject of the session core; r otherwise. */
int manager_reply_explain_error(VarlinkCall *call, const BrokerError *e, int r);

extern const JsonDispatchField manager_prepare_claim_parameters[];
extern const JsonDispatchField manager_unprepare_claim_parameters[];
int manager_method_prepare_claim(VarlinkCall *call, json_object *params, VarlinkCallFlags flags,
                                 void *userdata);
int manager_method_unprepare_claim(VarlinkCall *call, json_object *params,
                                   VarlinkCallFlags flags, void *userdata);
int manager_method_list_claims(VarlinkCall *call, json_object *params, VarlinkCallFlags flags,
                               void *userdata);
