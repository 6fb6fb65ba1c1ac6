/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Contracts at module boundaries, after systemd's assert_return() and
 * dbus-broker's c_assert():
 *
 *   assert(expr)              an internal invariant; a failure is a bug here (<assert.h>)
 *   assert_return(expr, r)    a caller's precondition on a function another module calls:
 *                             a NULL object, an id of 0, a length that cannot be.  Returns r
 *                             (a negative errno) so the daemon keeps serving; when
 *                             $IOMMUD_ASSERT_RETURN_IS_CRITICAL is set (every test suite
 *                             sets it) it aborts instead, so a broken contract stops at the
 *                             boundary that was crossed rather than three calls later.
 *   assert_not_reached()      a branch that cannot be taken.
 *
 * Client mistakes are never asserted: they get a typed protocol error.  Nothing here logs
 * above debug.
 */

#include <assert.h>
#include <stdbool.h>

#include "macros.h"

void assert_return_failed(const char *expr, const char *file, int line, const char *func);
_Noreturn void assert_not_reached_internal(const char *file, int line, const char *func);

#define assert_return(expr, r)                                                                     \
        do {                                                                                       \
                if (_unlikely_(!(expr))) {                                                         \
                        assert_return_failed(#expr, __FILE__, __LINE__, __func__);                 \
                        return (r);                                                                \
                }                                                                                  \
        } while (false)

#define assert_not_reached() assert_not_reached_internal(__FILE__, __LINE__, __func__)
