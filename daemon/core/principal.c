/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "assert-util.h"
#include "macros.h"
#include "principal.h"
#include "user-util.h"

int principal_from_creds(const PeerCreds *c, Principal *ret) {
        assert_return(c, -EINVAL);
        assert_return(ret, -EINVAL);

        *ret = (Principal){
                .uid = c->uid,
                .gid = c->gid,
                .groups = c->groups,
                .n_groups = c->n_groups,
                .unit = c->unit,
                .unit_refused = c->unit_refused,
        };
        return 0;
}

/* Every group of user name with primary group gid (which getgrouplist() puts first). */
static int account_groups(const char *name, gid_t gid, gid_t **ret, size_t *ret_n) {
        int n = 32;

        for (;;) {
                _cleanup_free_ gid_t *groups = calloc((size_t)n, sizeof(gid_t));
                int k = n;

                if (!groups)
                        return -ENOMEM;
                if (getgrouplist(name, gid, groups, &k) >= 0) {
                        *ret = TAKE_PTR(groups);
                        *ret_n = (size_t)k;
                        return 0;
                }
                /* Too small: k now says how many there are. */
                if (k <= n || k > NGROUPS_MAX)
                        return -E2BIG;
                n = k;
        }
}

int principal_account_resolve(uid_t uid, gid_t gid, PrincipalAccount *ret, BrokerError *err) {
        _cleanup_free_ char *buf = NULL;
        _cleanup_free_ gid_t *groups = NULL;
        size_t n_groups = 0;
        struct passwd pw;
        int r;

        assert_return(uid != UID_INVALID, -EINVAL);
        assert_return(ret, -EINVAL);

        r = user_util_get_by_uid(uid, &pw, &buf);
        if (r < 0)
                return broker_error_set(err, r, BROKER_ERROR_SYSTEM_ERROR,
                                        "Looking up the account of uid %u failed: %s",
                                        (unsigned)uid, strerror(-r));
        if (r == 0) {
                char id[16];

                if (gid != GID_INVALID) {
                        *ret = (PrincipalAccount){
                                .principal = { .uid = uid, .gid = gid },
                        };
                        return 0;
                }
                broker_error_set(err, -ESRCH, BROKER_ERROR_NO_SUCH_OBJECT,
                                 "uid %u has no user account, so its groups are unknown.",
                                 (unsigned)uid);
                snprintf(id, sizeof(id), "%u", (unsigned)uid);
                broker_error_add_string(err, "kind", BROKER_KIND_USER);
                broker_error_add_string(err, "id", id);
                return -ESRCH;
        }
        if (gid == GID_INVALID)
                gid = pw.pw_gid;
        r = account_groups(pw.pw_name, gid, &groups, &n_groups);
        if (r < 0)
                return broker_error_set(err, r, BROKER_ERROR_SYSTEM_ERROR,
                                        "Listing the groups of user %s (uid %u) failed: %s",
                                        pw.pw_name, (unsigned)uid, strerror(-r));
        *ret = (PrincipalAccount){
                .principal = { .uid = uid, .gid = gid, .groups = groups, .n_groups = n_groups },
                .groups = TAKE_PTR(groups),
        };
        return 0;
}

void principal_account_done(PrincipalAccount *a) {
        if (!a)
                return;
        free(a->groups);
        *a = PRINCIPAL_ACCOUNT_INIT;
}
