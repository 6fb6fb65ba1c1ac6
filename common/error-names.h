/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The errno of each protocol error name: one table for every client of iommud.
 * libiommud(3) returns it from a call that failed with the name, org.iommud1(5)
 * registers it as the bus error map, and the man pages of both list it (a test
 * compares them with this table).  A name not listed here is -EPROTO for libiommud.
 *
 * ERROR_NAMES_BROKER(X) calls X(short name, errno) for each error of
 * org.iommud.Broker; ERROR_NAMES_VARLINK(X) for the org.varlink.service errors a
 * client can meet.
 */

#include <errno.h>
#include <stddef.h>

#define ERROR_NAMES_BROKER(X)                                                                      \
        X("PolicyDenied", EPERM)                                                                   \
        X("QuotaExceeded", EDQUOT)                                                                 \
        X("NoSuchObject", ENOENT)                                                                  \
        X("InvalidRange", ERANGE)                                                                  \
        X("IOVAInUse", EEXIST)                                                                     \
        X("DeviceBusy", EBUSY)                                                                     \
        X("ObjectInUse", EBUSY)                                                                    \
        X("InvalidFd", EBADF)                                                                      \
        X("NotSupported", EOPNOTSUPP)                                                              \
        X("BackendError", EIO)                                                                     \
        X("SystemError", ENOMEM)                                                                   \
        X("DeviceGone", ENODEV)                                                                    \
        X("FaultNotPending", EALREADY)                                                             \
        X("FaultNotOwned", EACCES)

#define ERROR_NAMES_VARLINK(X)                                                                     \
        X("InvalidParameter", EINVAL)                                                              \
        X("MethodNotFound", EOPNOTSUPP)                                                            \
        X("InterfaceNotFound", EOPNOTSUPP)                                                         \
        X("MethodNotImplemented", EOPNOTSUPP)                                                      \
        X("PermissionDenied", EACCES)

/*
 * The errno (positive) of a full error name of org.iommud.Broker or
 * org.varlink.service, 0 for any other name.
 */
int error_names_errno(const char *name);
