/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "error.h"

_printf_(4, 0) static int error_vset(Error *err, int r, const char *name, const char *fmt, va_list ap) {
        if (!err)
                return r;
        err->error = r;
        err->name = name;
        vsnprintf(err->message, sizeof(err->message), fmt, ap);
        return r;
}

int error_set(Error *err, int r, const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        r = error_vset(err, r, NULL, fmt, ap);
        va_end(ap);
        return r;
}

int error_set_named(Error *err, int r, const char *name, const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        r = error_vset(err, r, name, fmt, ap);
        va_end(ap);
        return r;
}

int error_prefix(Error *err, const char *fmt, ...) {
        char prefix[ERROR_MESSAGE_MAX], joined[2 * ERROR_MESSAGE_MAX + 2];
        va_list ap;

        if (!err)
                return 0;
        va_start(ap, fmt);
        vsnprintf(prefix, sizeof(prefix), fmt, ap);
        va_end(ap);
        if (err->message[0])
                snprintf(joined, sizeof(joined), "%s: %s", prefix, err->message);
        else
                snprintf(joined, sizeof(joined), "%s", prefix);
        /* Truncate to the message buffer, always NUL-terminated. */
        size_t n = strnlen(joined, sizeof(err->message) - 1);
        memcpy(err->message, joined, n);
        err->message[n] = '\0';
        return err->error;
}

void error_clear(Error *err) {
        if (err)
                error_init(err);
}

const char *error_message(const Error *err) {
        if (!err)
                return "";
        if (err->message[0])
                return err->message;
        return err->error < 0 ? strerror(-err->error) : "";
}
