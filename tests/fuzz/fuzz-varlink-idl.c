/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* A Varlink interface definition, as GetInterfaceDescription serves it. */

#include <stdlib.h>

#include "error.h"
#include "fuzz.h"
#include "varlink-idl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_(varlink_idl_freep) VarlinkIdl *idl = NULL;
        _cleanup_free_ char *text = fuzz_strndup(data, size);
        Error err = ERROR_INIT;

        if (varlink_idl_parse(text, &idl, &err) < 0) {
                error_clear(&err);
                return 0;
        }
        if (!idl->name)
                abort();
        for (size_t i = 0; i < idl->n_methods; i++) {
                const VarlinkIdlParameters *p;

                if (!varlink_idl_has_method(idl, idl->methods[i]))
                        abort();
                /* Every parameter has a name; the method found first of its name has them. */
                p = varlink_idl_method_parameters(idl, idl->methods[i]);
                if (!p || p != &idl->parameters[i])
                        abort();
                for (size_t k = 0; k < p->n; k++)
                        if (!p->items[k].name || !p->items[k].name[0])
                                abort();
        }
        for (size_t i = 0; i < idl->n_errors; i++)
                if (!varlink_idl_has_error(idl, idl->errors[i]))
                        abort();
        return 0;
}
