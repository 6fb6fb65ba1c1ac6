/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "assert-util.h"
#include "macros.h"
#include "policy-parser.h"

void policy_diagnostics_clear(PolicyDiagnostics *d) {
        if (!d)
                return;
        for (size_t i = 0; i < d->n; i++) {
                free(d->items[i].file);
                free(d->items[i].json_path);
                free(d->items[i].message);
        }
        free(d->items);
        *d = (PolicyDiagnostics){};
}

int policy_diagnostics_addv(PolicyDiagnostics *d, const char *file, unsigned line, unsigned column,
                            const char *path, const char *fmt, va_list ap) {
        PolicyDiagnostic *items, *di;
        _cleanup_free_ char *f = NULL, *jp = NULL, *m = NULL;

        f = strdup(file ?: "");
        jp = strdup(path ?: "");
        if (!f || !jp || vasprintf(&m, fmt, ap) < 0)
                return -ENOMEM;
        items = realloc(d->items, (d->n + 1) * sizeof(PolicyDiagnostic));
        if (!items)
                return -ENOMEM;
        d->items = items;
        di = &d->items[d->n++];
        *di = (PolicyDiagnostic){
                .file = TAKE_PTR(f),
                .line = line,
                .column = column,
                .json_path = TAKE_PTR(jp),
                .message = TAKE_PTR(m),
        };
        return 0;
}

int policy_diagnostics_addf(PolicyDiagnostics *d, const char *file, unsigned line, unsigned column,
                            const char *path, const char *fmt, ...) {
        va_list ap;
        int r;

        va_start(ap, fmt);
        r = policy_diagnostics_addv(d, file, line, column, path, fmt, ap);
        va_end(ap);
        return r;
}

int policy_diagnostics_print(const PolicyDiagnostics *d, FILE *f) {
        assert_return(f, -EINVAL);

        if (!d)
                return 0;
        for (size_t i = 0; i < d->n; i++) {
                const PolicyDiagnostic *di = &d->items[i];

                fputs(di->file, f);
                if (di->line > 0)
                        fprintf(f, ":%u:%u", di->line, di->column);
                fputs(": ", f);
                if (di->json_path && di->json_path[0])
                        fprintf(f, "%s: ", di->json_path);
                fprintf(f, "%s\n", di->message);
        }
        fflush(f);
        return ferror(f) ? -EIO : 0;
}
