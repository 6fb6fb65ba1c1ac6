/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <string.h>

#include "error-names.h"
#include "macros.h"

typedef struct ErrorNameErrno {
        const char *name;
        int error;
} ErrorNameErrno;

#define ENTRY(n, e) { n, e },
static const ErrorNameErrno broker_names[] = { ERROR_NAMES_BROKER(ENTRY) };
static const ErrorNameErrno varlink_names[] = { ERROR_NAMES_VARLINK(ENTRY) };
#undef ENTRY

static int lookup(const ErrorNameErrno *t, size_t n, const char *short_name) {
        for (size_t i = 0; i < n; i++)
                if (streq(t[i].name, short_name))
                        return t[i].error;
        return 0;
}

int error_names_errno(const char *name) {
        static const char broker[] = "org.iommud.Broker.", varlink[] = "org.varlink.service.";

        if (!name)
                return 0;
        if (strneq(name, broker, sizeof(broker) - 1))
                return lookup(broker_names, ELEMENTSOF(broker_names), name + sizeof(broker) - 1);
        if (strneq(name, varlink, sizeof(varlink) - 1))
                return lookup(varlink_names, ELEMENTSOF(varlink_names),
                              name + sizeof(varlink) - 1);
        return 0;
}
