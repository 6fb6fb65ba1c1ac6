/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Account lookups through NSS, whatever the size of the entry: getpwuid_r() and
 * friends fill a caller's buffer whose size sysconf() only hints at (a group entry
 * carries its whole member list), so it grows until the entry fits.  Each returns 1
 * with the entry filled and *ret_buf holding its strings (the caller frees it), 0
 * when there is no such user or group, or a negative errno from the database.
 */

#include <grp.h>
#include <pwd.h>
#include <sys/types.h>

int user_util_get_by_uid(uid_t uid, struct passwd *ret, char **ret_buf);
int user_util_get_by_name(const char *name, struct passwd *ret, char **ret_buf);
int user_util_group_by_name(const char *name, struct group *ret, char **ret_buf);
