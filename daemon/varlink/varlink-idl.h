/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * A reader of Varlink interface definitions that goes as far as the daemon
 * needs: the interface name, the names of its types, methods and errors, and
 * the parameters of each method's input and of each error (name, optional or
 * not, the first token of the type), with the text checked for balanced
 * parentheses and valid names.  It lets tests assert that an interface table
 * implements every method its IDL declares, and nothing else, that each
 * method's parameter table decodes exactly the parameters the IDL gives it,
 * and that every error carries the parameters the IDL declares for it.
 */

#include <stdbool.h>
#include <stddef.h>

#include "error.h"
#include "macros.h"
#include "varlink-server.h"

typedef struct VarlinkIdlParameter {
        char *name;
        bool optional;           /* "?type" */
        char *type;              /* its first token: "int", "string", "[", "(", "Stage1" */
} VarlinkIdlParameter;

typedef struct VarlinkIdlParameters {
        VarlinkIdlParameter *items;
        size_t n;
} VarlinkIdlParameters;

typedef struct VarlinkIdl {
        char *name;
        char **types;
        size_t n_types;
        char **methods;
        VarlinkIdlParameters *parameters; /* of methods[i] */
        size_t n_methods;
        char **errors;
        VarlinkIdlParameters *error_parameters; /* of errors[i] */
        size_t n_errors;
} VarlinkIdl;

/* Errors: -EBADMSG with "line N: ..." in err. */
int varlink_idl_parse(const char *text, VarlinkIdl **ret, Error *err);
VarlinkIdl *varlink_idl_free(VarlinkIdl *idl);
DEFINE_TRIVIAL_CLEANUP_FUNC(VarlinkIdl *, varlink_idl_free);

bool varlink_idl_has_method(const VarlinkIdl *idl, const char *name);
bool varlink_idl_has_error(const VarlinkIdl *idl, const char *name);
/* The input parameters of a method, NULL when the IDL has no such method. */
const VarlinkIdlParameters *varlink_idl_method_parameters(const VarlinkIdl *idl, const char *name);
/* The parameters of an error, NULL when the IDL has no such error. */
const VarlinkIdlParameters *varlink_idl_error_parameters(const VarlinkIdl *idl, const char *name);

/*
 * Checks that iface's method table and its IDL text agree: same interface
 * name, a handler for every declared method and no handler for an undeclared
 * one, and for each method a parameter table with the IDL's parameters (a
 * required entry for each plain one, a nullable one for each "?", of a type
 * that takes the IDL's) and no other.  -EBADMSG naming the first difference.
 */
int varlink_idl_check_interface(const VarlinkInterface *iface, Error *err);
