/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <stdlib.h>

#include "assert-util.h"
#include "macros.h"
#include "user-util.h"

/* The largest buffer tried: an entry larger than this is a broken database. */
#define ENTRY_BUFFER_MAX (1024u * 1024u)

typedef struct Lookup {
        uid_t uid;
        const char *name;
} Lookup;

typedef int (*LookupFn)(const Lookup *key, void *entry, char *buf, size_t size, void **result);

static int lookup(LookupFn fn, const Lookup *key, void *entry, char **ret_buf) {
        _cleanup_free_ char *buf = NULL;
        size_t size = 1024;

        for (;;) {
                void *result = NULL;
                char *b;
                int r;

                b = realloc(buf, size);
                if (!b)
                        return -ENOMEM;
                buf = b;
                r = fn(key, entry, buf, size, &result);
                if (r == ERANGE && size < ENTRY_BUFFER_MAX) {
                        size *= 2;
                        continue;
                }
                /* Not found is 0 without a result, or one of these, depending on the module. */
                if (r == ENOENT || r == ESRCH || r == EBADF || r == EPERM)
                        return 0;
                if (r > 0)
                        return -r;
                if (!result)
                        return 0;
                *ret_buf = TAKE_PTR(buf);
                return 1;
        }
}

static int by_uid(const Lookup *key, void *entry, char *buf, size_t size, void **result) {
        return getpwuid_r(key->uid, entry, buf, size, (struct passwd **)result);
}

static int by_name(const Lookup *key, void *entry, char *buf, size_t size, void **result) {
        return getpwnam_r(key->name, entry, buf, size, (struct passwd **)result);
}

static int group_by_name(const Lookup *key, void *entry, char *buf, size_t size,
                         void **result) {
        return getgrnam_r(key->name, entry, buf, size, (struct group **)result);
}

int user_util_get_by_uid(uid_t uid, struct passwd *ret, char **ret_buf) {
        assert_return(ret && ret_buf, -EINVAL);
        return lookup(by_uid, &(Lookup){ .uid = uid }, ret, ret_buf);
}

int user_util_get_by_name(const char *name, struct passwd *ret, char **ret_buf) {
        assert_return(name && ret && ret_buf, -EINVAL);
        return lookup(by_name, &(Lookup){ .name = name }, ret, ret_buf);
}

int user_util_group_by_name(const char *name, struct group *ret, char **ret_buf) {
        assert_return(name && ret && ret_buf, -EINVAL);
        return lookup(group_by_name, &(Lookup){ .name = name }, ret, ret_buf);
}
