/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Small helpers every module uses: cleanup attributes, ownership hand-off,
 * array sizes.  Nothing here allocates or logs.
 */

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#define _cleanup_(f) __attribute__((cleanup(f)))
#define _unused_ __attribute__((unused))
#define _printf_(a, b) __attribute__((format(printf, a, b)))
#define _pure_ __attribute__((pure))
#define _always_inline_ inline __attribute__((always_inline))
#define _likely_(x) __builtin_expect(!!(x), 1)
#define _unlikely_(x) __builtin_expect(!!(x), 0)
#define _public_ __attribute__((visibility("default")))
#define _hidden_ __attribute__((visibility("hidden")))
#define _fallthrough_ __attribute__((fallthrough))
#define _warn_unused_result_ __attribute__((warn_unused_result))

#define ELEMENTSOF(x) (sizeof(x) / sizeof((x)[0]))
/* The length of a string literal or char array holding one, without its NUL. */
#define STRLEN(x) (sizeof(x) - 1)

#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))

#define STRINGIFY_(x) #x
#define STRINGIFY(x) STRINGIFY_(x)

#define streq(a, b) (strcmp((a), (b)) == 0)
#define strneq(a, b, n) (strncmp((a), (b), (n)) == 0)

/* Take ownership of a pointer or fd: returns the value and resets the source. */
#define TAKE_PTR(p)                                                                                \
        ({                                                                                         \
                __typeof__(p) *_pp = &(p);                                                         \
                __typeof__(p) _v = *_pp;                                                           \
                *_pp = NULL;                                                                       \
                _v;                                                                                \
        })

#define TAKE_FD(fd)                                                                                \
        ({                                                                                         \
                int *_fdp = &(fd);                                                                 \
                int _v = *_fdp;                                                                    \
                *_fdp = -EBADF;                                                                    \
                _v;                                                                                \
        })

/* Defines func##p(type *p) that calls func(*p) when it is non-NULL, for _cleanup_. */
#define DEFINE_TRIVIAL_CLEANUP_FUNC(type, func)                                                    \
        static inline void func##p(type *p) {                                                      \
                if (*p)                                                                            \
                        func(*p);                                                                  \
        }

/* The value of a hex digit, or -1. */
static inline int unhexchar(char c) {
        if (c >= '0' && c <= '9')
                return c - '0';
        c |= 0x20;
        return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

static inline void freep(void *p) {
        free(*(void **)p);
}
#define _cleanup_free_ _cleanup_(freep)

/* Closes fd if valid and returns -EBADF, so that "fd = safe_close(fd);" resets it. */
static inline int safe_close(int fd) {
        if (fd >= 0) {
                int saved = errno;
                (void)close(fd);
                errno = saved;
        }
        return -EBADF;
}

static inline void closep(int *fd) {
        safe_close(*fd);
}
#define _cleanup_close_ _cleanup_(closep)

/* errno as a negative value, never 0 (for calls that failed but left errno unset). */
static inline int negative_errno(void) {
        return errno > 0 ? -errno : -EIO;
}

/* No user, no group: what the kernel and NSS use for "none". */
#define UID_INVALID ((uid_t)-1)
#define GID_INVALID ((gid_t)-1)

/* Safe on an empty array whose pointer is NULL (NULL + 0 is undefined in C). */
#define FOREACH_ARRAY(i, array, num)                                                               \
        for (__typeof__(array[0]) *i = (array), *_end_##i = i ? i + (num) : i; i < _end_##i; i++)

/* Overflow-checked arithmetic: true when the result did not fit. */
#define ADD_OVERFLOW(a, b, res) __builtin_add_overflow(a, b, res)
#define MUL_OVERFLOW(a, b, res) __builtin_mul_overflow(a, b, res)
