/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * A reader of Varlink interface definitions that goes as far as the daemon
 * needs: the interface name and the names of its types, methods and errors,
 * with the text checked for balanced parentheses and valid names.  It lets
 * tests assert that an interface table implements every method its IDL
 * declares, and nothing else.
 */

#include <stdbool.h>
#include <stddef.h>

#include "error.h"
#include "macros.h"
#include "varlink-server.h"

typedef struct VarlinkIdl {
        char *name;
        char **types;
        size_t n_types;
        char **methods;
        size_t n_methods;
        char **errors;
        size_t n_errors;
} VarlinkIdl;

/* Errors: -EBADMSG with "line N: ..." in err. */
int varlink_idl_parse(const char *text, VarlinkIdl **ret, Error *err);
VarlinkIdl *varlink_idl_free(VarlinkIdl *idl);
DEFINE_TRIVIAL_CLEANUP_FUNC(VarlinkIdl *, varlink_idl_free);

bool varlink_idl_has_method(const VarlinkIdl *idl, const char *name);
bool varlink_idl_has_error(const VarlinkIdl *idl, const char *name);

/*
 * Checks that iface's method table and its IDL text agree: same interface
 * name, a handler for every declared method and no handler for an undeclared
 * one.  -EBADMSG naming the first difference.
 */
int varlink_idl_check_interface(const VarlinkInterface *iface, Error *err);
