/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <stdio.h>
#include <stdlib.h>

#include "assert-util.h"
#include "log.h"

static int critical = -1;

static bool assert_return_is_critical(void) {
        /* Read once: the environment does not change under a running daemon. */
        if (critical < 0)
                critical = secure_getenv("IOMMUD_ASSERT_RETURN_IS_CRITICAL") != NULL;
        return critical;
}

void assert_return_failed(const char *expr, const char *file, int line, const char *func) {
        if (assert_return_is_critical()) {
                fprintf(stderr, "Assertion '%s' failed at %s:%d, function %s(). Aborting.\n",
                        expr, file, line, func);
                abort();
        }
        log_debug("Assertion '%s' failed at %s:%d, function %s(), ignoring.", expr, file, line,
                  func);
}

void assert_not_reached_internal(const char *file, int line, const char *func) {
        fprintf(stderr, "Code should not be reached at %s:%d, function %s(). Aborting.\n", file,
                line, func);
        abort();
}
