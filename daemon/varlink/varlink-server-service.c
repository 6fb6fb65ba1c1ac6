/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * org.varlink.service, which every Varlink service implements: what the
 * service is (GetInfo) and the IDL of each interface it serves
 * (GetInterfaceDescription).
 */

#include <errno.h>
#include <string.h>

#include <json-c/json.h>

#include "assert-util.h"
#include "fdlist.h"
#include "json-util.h"
#include "log.h"
#include "varlink-server-internal.h"
#include "varlink-wire.h"

static const char varlink_service_idl[] =
        "# The interface every Varlink service implements: what the service is\n"
        "# and which interfaces it serves.\n"
        "interface org.varlink.service\n"
        "\n"
        "# Describes the service and lists its interfaces.\n"
        "method GetInfo() -> (\n"
        "  vendor: string,\n"
        "  product: string,\n"
        "  version: string,\n"
        "  url: string,\n"
        "  interfaces: []string\n"
        ")\n"
        "\n"
        "# Returns the IDL text of one of the interfaces.\n"
        "method GetInterfaceDescription(interface: string) -> (description: string)\n"
        "\n"
        "# The interface is not served here.\n"
        "error InterfaceNotFound (interface: string)\n"
        "\n"
        "# The interface has no method of that name.\n"
        "error MethodNotFound (method: string)\n"
        "\n"
        "# The interface defines the method but the service does not implement it.\n"
        "error MethodNotImplemented (method: string)\n"
        "\n"
        "# A parameter is missing or has the wrong type or value.\n"
        "error InvalidParameter (parameter: string)\n"
        "\n"
        "# The caller may not call this method.\n"
        "error PermissionDenied ()\n"
        "\n"
        "# The method must be called with \"more\".\n"
        "error ExpectedMore ()\n";

static int service_get_info(VarlinkCall *call, json_object *parameters, VarlinkCallFlags flags,
                            void *userdata);
static int service_get_interface_description(VarlinkCall *call, json_object *parameters,
                                             VarlinkCallFlags flags, void *userdata);

static const JsonDispatchField get_interface_description_parameters[] = {
        { "interface", JSON_DISPATCH_STRING, JSON_DISPATCH_REQUIRED, 0 },
        {},
};

static const VarlinkMethod varlink_service_methods[] = {
        { "GetInfo", service_get_info },
        { "GetInterfaceDescription", service_get_interface_description,
          get_interface_description_parameters },
        {},
};

const VarlinkInterface varlink_service_interface = {
        .name = "org.varlink.service",
        .description = varlink_service_idl,
        .methods = varlink_service_methods,
};

static int service_get_info(VarlinkCall *call, json_object *parameters, VarlinkCallFlags flags,
                            void *userdata) {
        VarlinkServer *s = call->conn->server;
        json_object *p, *list;
        int r;

        r = varlink_call_dispatch(call, parameters, NULL, NULL);
        if (r < 0)
                return r;
        p = json_object_new_object();
        list = json_object_new_array();
        if (!p || !list) {
                json_object_put(p);
                json_object_put(list);
                return -ENOMEM;
        }
        r = json_util_add(p, "interfaces", list);
        for (size_t i = 0; r >= 0 && i < s->n_interfaces; i++)
                if (json_object_array_add(list, json_object_new_string(s->interfaces[i]->name)) < 0)
                        r = -ENOMEM;
        if (r >= 0)
                r = json_util_add(p, "vendor", json_object_new_string(s->vendor));
        if (r >= 0)
                r = json_util_add(p, "product", json_object_new_string(s->product));
        if (r >= 0)
                r = json_util_add(p, "version", json_object_new_string(s->version));
        if (r >= 0)
                r = json_util_add(p, "url", json_object_new_string(s->url));
        if (r < 0) {
                json_object_put(p);
                return r;
        }
        return varlink_call_reply(call, p);
}

const VarlinkInterface *server_find_interface(VarlinkServer *s, const char *name,
                                                     size_t len) {
        for (size_t i = 0; i < s->n_interfaces; i++)
                if (strlen(s->interfaces[i]->name) == len &&
                    memcmp(s->interfaces[i]->name, name, len) == 0)
                        return s->interfaces[i];
        return NULL;
}

int error_with_string(VarlinkCall *call, const char *error, const char *key, const char *value) {
        json_object *p = json_object_new_object();

        if (!p || json_util_add(p, key, json_object_new_string(value)) < 0) {
                json_object_put(p);
                return -ENOMEM;
        }
        return varlink_call_error(call, error, p);
}

static int service_get_interface_description(VarlinkCall *call, json_object *parameters,
                                             VarlinkCallFlags flags, void *userdata) {
        const VarlinkInterface *iface;
        const char *name = NULL;
        json_object *p;
        int r;

        r = varlink_call_dispatch(call, parameters, get_interface_description_parameters,
                                  &name);
        if (r < 0)
                return r;
        iface = server_find_interface(call->conn->server, name, strlen(name));
        if (!iface)
                return error_with_string(call, VARLINK_ERROR_INTERFACE_NOT_FOUND, "interface", name);
        p = json_object_new_object();
        if (!p || json_util_add(p, "description", json_object_new_string(iface->description)) < 0) {
                json_object_put(p);
                return -ENOMEM;
        }
        return varlink_call_reply(call, p);
}
