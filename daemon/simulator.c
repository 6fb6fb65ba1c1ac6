/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <string.h>

#include "json-util.h"
#include "log.h"
#include "simulator.h"

extern const char simulator_idl[];

/* The server's userdata is the broker's, so the hooks live here (one simulator per process). */
static const SimulatorHooks *hooks;

static int check_caller(VarlinkCall *call) {
        const struct ucred *u = varlink_connection_get_ucred(varlink_call_get_connection(call));

        if (!hooks || !u || (u->uid != 0 && u->uid != hooks->owner_uid))
                return varlink_call_error(call, VARLINK_ERROR_PERMISSION_DENIED, NULL) < 0 ? -1
                                                                                          : 1;
        return 0;
}

static int reply_result(VarlinkCall *call, const char *device, int r, const Error *e) {
        json_object *p;

        if (r >= 0)
                return varlink_call_reply(call, NULL);
        if (r != -ENODEV)
                return varlink_call_error_errno(call, r, error_message(e));
        p = json_object_new_object();
        if (!p)
                return -ENOMEM;
        (void)json_util_add(p, "device", json_object_new_string(device));
        return varlink_call_error(call, SIMULATOR_INTERFACE ".NoSuchDevice", p);
}

static int method_set_driver(VarlinkCall *call, json_object *params, VarlinkCallFlags flags,
                             void *userdata) {
        const char *device = NULL, *driver = NULL;
        Error e = ERROR_INIT;
        int r;

        r = check_caller(call);
        if (r != 0)
                return r < 0 ? -ENOMEM : 0;
        if (json_util_get_string(params, "device", 0, &device, &e) < 0)
                return varlink_call_error_invalid_parameter(call, "device");
        if (json_util_get_string(params, "driver", JSON_UTIL_OPTIONAL, &driver, &e) < 0)
                return varlink_call_error_invalid_parameter(call, "driver");
        r = hooks->set_driver(hooks->userdata, device, driver, &e);
        return reply_result(call, device, r, &e);
}

static int method_remove_device(VarlinkCall *call, json_object *params, VarlinkCallFlags flags,
                                void *userdata) {
        const char *device = NULL;
        Error e = ERROR_INIT;
        int r;

        r = check_caller(call);
        if (r != 0)
                return r < 0 ? -ENOMEM : 0;
        if (json_util_get_string(params, "device", 0, &device, &e) < 0)
                return varlink_call_error_invalid_parameter(call, "device");
        r = hooks->remove_device(hooks->userdata, device, &e);
        return reply_result(call, device, r, &e);
}

static const VarlinkMethod simulator_methods[] = {
        { "SetDriver", method_set_driver },
        { "RemoveDevice", method_remove_device },
        {},
};

static const VarlinkInterface simulator_interface = {
        .name = SIMULATOR_INTERFACE,
        .description = simulator_idl,
        .methods = simulator_methods,
        .errno_error = NULL,
};

const VarlinkInterface *simulator_interface_get(void) {
        return &simulator_interface;
}

int simulator_attach(VarlinkServer *s, const SimulatorHooks *h) {
        hooks = h;
        return varlink_server_add_interface(s, &simulator_interface);
}
