/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Error: a negative errno plus the sentence that says which value was wrong
 * and why.  Lower layers fill one at the point of detection; the broker turns
 * it into a typed Varlink error, the CLI prints it.  Every function that takes
 * an "Error *" accepts NULL there, in which case only the errno is returned.
 *
 *     return error_set(err, -EINVAL, "IOVA 0x%" PRIx64 " is not aligned to %" PRIu64, iova, a);
 */

#include "macros.h"

#define ERROR_MESSAGE_MAX 1024

typedef struct Error {
        int error;                       /* negative errno, 0 when unset */
        const char *name;                /* optional protocol error name, static string */
        char message[ERROR_MESSAGE_MAX]; /* human sentence, "" when unset */
} Error;

#define ERROR_INIT ((Error){ .error = 0 })

/*
 * Sets err to "no error".  "Error err = ERROR_INIT" zero-fills the whole message buffer;
 * a hot path writes "Error err; error_init(&err);", which sets only what says so.
 */
static inline void error_init(Error *err) {
        err->error = 0;
        err->name = NULL;
        err->message[0] = '\0';
}

/* Records r (negative errno) and a formatted message in err (if non-NULL); returns r. */
int error_set(Error *err, int r, const char *fmt, ...) _printf_(3, 4);
/* Same, with a protocol error name (a string literal that outlives err). */
int error_set_named(Error *err, int r, const char *name, const char *fmt, ...) _printf_(4, 5);
/* Prefixes the existing message with "prefix: "; keeps errno and name.  Returns err->error. */
int error_prefix(Error *err, const char *fmt, ...) _printf_(2, 3);
void error_clear(Error *err);
/* The message, or strerror of the errno when no message was set. */
const char *error_message(const Error *err);
