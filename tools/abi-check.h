/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The checks of the ABI tests (abi-check.c, abi-check-vfio.c): iommud's own definitions
 * against the kernel's, in one translation unit.  Each check is a compile-time assertion,
 * so a mismatch fails the build with the name of the field, and one count at run time in
 * the caller's n_checks.
 */

#include <stddef.h>

#define FIELD_SIZE(type, field) sizeof(((type *)0)->field)

/* Each check is a compile-time assertion and one count at run time. */
#define SAME_VALUE(ours, theirs)                                                                   \
        do {                                                                                       \
                _Static_assert((unsigned long)(ours) == (unsigned long)(theirs),                   \
                               #ours " != " #theirs);                                              \
                n_checks++;                                                                        \
        } while (0)

#define SAME_SIZE(ours, theirs)                                                                    \
        do {                                                                                       \
                _Static_assert(sizeof(struct ours) == sizeof(struct theirs),                       \
                               "sizeof " #ours " != sizeof " #theirs);                             \
                n_checks++;                                                                        \
        } while (0)

/* Ours may have grown at the end; the kernel's prefix must be identical. */
#define EXTENDS_SIZE(ours, theirs)                                                                 \
        do {                                                                                       \
                _Static_assert(sizeof(struct ours) >= sizeof(struct theirs),                       \
                               "sizeof " #ours " < sizeof " #theirs);                              \
                n_checks++;                                                                        \
        } while (0)

#define SAME_FIELD(ours, of, theirs, tf)                                                           \
        do {                                                                                       \
                _Static_assert(offsetof(struct ours, of) == offsetof(struct theirs, tf),           \
                               "offset of " #ours "." #of " != " #theirs "." #tf);                 \
                _Static_assert(FIELD_SIZE(struct ours, of) == FIELD_SIZE(struct theirs, tf),       \
                               "width of " #ours "." #of " != " #theirs "." #tf);                  \
                n_checks++;                                                                        \
        } while (0)

/* Same field name on both sides. */
#define SAME(ours, theirs, f) SAME_FIELD(ours, f, theirs, f)
