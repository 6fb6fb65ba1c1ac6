/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * org.iommud.Broker's errors on the wire, and their contract: every error the session core
 * hands the front end carries exactly the parameters org.iommud.Broker.varlink declares for it
 * (every required one, no other, of the declared type).  The check runs on every error sent; a
 * broken contract is reported at this boundary (and stops the daemon where
 * $IOMMUD_ASSERT_RETURN_IS_CRITICAL is set, as in every test suite), and the error still goes
 * to the client.
 */

#include <errno.h>
#include <string.h>

#include <json-c/json.h>

#include "assert-util.h"
#include "json-util.h"
#include "log.h"
#include "varlink-broker-idl.h"
#include "varlink-broker-internal.h"
#include "varlink-idl.h"

#define VARLINK_SERVICE_INVALID_PARAMETER "org.varlink.service.InvalidParameter"

static bool param_type_matches(const BrokerErrorParam *p, const char *idl_type) {
        if (!idl_type)
                return false;
        switch (p->type) {
        case BROKER_PARAM_STRING:
                /* A string, or an enum in place: "(answered, timed_out, ...)". */
                return streq(idl_type, "string") || streq(idl_type, "(");
        case BROKER_PARAM_U64:
        case BROKER_PARAM_I64:
                return streq(idl_type, "int");
        case BROKER_PARAM_BOOL:
                return streq(idl_type, "bool");
        }
        return false;
}

static int check_params(const VarlinkIdlParameters *want, const BrokerError *e, Error *err) {
        for (size_t i = 0; i < e->n_params; i++) {
                const BrokerErrorParam *p = &e->params[i];
                const VarlinkIdlParameter *w = NULL;

                for (size_t k = 0; k < want->n; k++)
                        if (streq(want->items[k].name, p->key))
                                w = &want->items[k];
                if (!w)
                        return error_set(err, -EBADMSG, "%s has a parameter '%s' it does not "
                                         "declare", e->error.name, p->key);
                if (!param_type_matches(p, w->type))
                        return error_set(err, -EBADMSG, "%s's parameter '%s' is not of type %s",
                                         e->error.name, p->key, w->type ?: "?");
        }
        for (size_t k = 0; k < want->n; k++)
                if (!want->items[k].optional && !broker_error_get(e, want->items[k].name))
                        return error_set(err, -EBADMSG, "%s lacks its parameter '%s'",
                                         e->error.name, want->items[k].name);
        return 0;
}

int broker_error_check_idl(const VarlinkIdl *idl, const BrokerError *e, Error *err) {
        static const VarlinkIdlParameter invalid_parameter[] = {
                { .name = (char *)"parameter", .type = (char *)"string" },
        };
        const VarlinkIdlParameters *want;
        const char *name;

        assert_return(idl && e, -EINVAL);

        name = e->error.name;
        if (!name)
                return error_set(err, -EBADMSG, "an error without a name");
        if (streq(name, VARLINK_SERVICE_INVALID_PARAMETER))
                return check_params(&(const VarlinkIdlParameters){ (VarlinkIdlParameter *)
                                                                           invalid_parameter,
                                                                   1 },
                                    e, err);
        if (!strneq(name, BROKER_INTERFACE ".", strlen(BROKER_INTERFACE ".")))
                return error_set(err, -EBADMSG, "%s is not an error of %s", name,
                                 BROKER_INTERFACE);
        want = varlink_idl_error_parameters(idl, name + strlen(BROKER_INTERFACE "."));
        if (!want)
                return error_set(err, -EBADMSG, "%s is not declared by %s", name,
                                 BROKER_INTERFACE);
        return check_params(want, e, err);
}

/* The interface definition, read once: the contract every error is held to. */
static const VarlinkIdl *broker_idl_parsed(void) {
        static VarlinkIdl *idl;

        if (!idl && varlink_idl_parse(broker_idl, &idl, NULL) < 0)
                idl = NULL;
        return idl;
}

static json_object *param_json(const BrokerErrorParam *bp) {
        switch (bp->type) {
        case BROKER_PARAM_STRING:
                return json_object_new_string(bp->str);
        case BROKER_PARAM_U64:
                return broker_u64_node(bp->u64);
        case BROKER_PARAM_I64:
                return json_object_new_int64(bp->i64);
        case BROKER_PARAM_BOOL:
                return json_object_new_boolean(bp->b);
        }
        return NULL;
}

json_object *broker_error_params_json(const BrokerError *e) {
        json_object *p = json_object_new_object();

        for (size_t i = 0; p && e && i < e->n_params; i++)
                (void)json_util_add(p, e->params[i].key, param_json(&e->params[i]));
        return p;
}

/* e's parameters, held to the IDL; what names the error in the log ("what"). */
static json_object *error_params(const BrokerError *e, const char *what) {
        const VarlinkIdl *idl = broker_idl_parsed();
        Error err = ERROR_INIT;
        json_object *p;

        if (idl && broker_error_check_idl(idl, e, &err) < 0) {
                log_debug("%s: %s", what, error_message(&err));
                assert_return_failed("broker_error_check_idl(e) >= 0", __FILE__, __LINE__,
                                     __func__);
        }
        p = broker_error_params_json(e);
        if (!p)
                return NULL;
        log_debug("%s: %s: %s", what, e->error.name ?: BROKER_ERROR_BACKEND_ERROR,
                  error_message(&e->error));
        return p;
}

int broker_reply_error(VarlinkCall *call, const BrokerError *e) {
        json_object *p = error_params(e, varlink_call_get_method(call));

        if (!p)
                return -ENOMEM;
        return varlink_call_error(call, e->error.name ?: BROKER_ERROR_BACKEND_ERROR, p);
}

int broker_refuse_connection(VarlinkConnection *c, const BrokerError *e) {
        json_object *p = error_params(e, "connect");

        if (!p)
                return -ENOMEM;
        return varlink_connection_send_error(c, e->error.name ?: BROKER_ERROR_BACKEND_ERROR, p);
}

/* InvalidFd names the index of the fd the client sent. */
int broker_reply_error_fd(VarlinkCall *call, BrokerError *e, uint32_t index) {
        if (e->error.name && streq(e->error.name, BROKER_ERROR_INVALID_FD))
                broker_error_add_u64(e, "index", index);
        return broker_reply_error(call, e);
}
