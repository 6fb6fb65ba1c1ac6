/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>

#include <systemd/sd-bus.h>

#include "bus-errors.h"

/*
 * One errno per name, the one the session core raises for it (InvalidRange
 * also stands for ENOSPC and EOVERFLOW from the backend; the sentence says
 * which).  InvalidParameter is the bus's own InvalidArgs (EINVAL).
 */
const sd_bus_error_map bus_error_map[] = {
        SD_BUS_ERROR_MAP(BROKER_ERROR_POLICY_DENIED, EPERM),
        SD_BUS_ERROR_MAP(BROKER_ERROR_QUOTA_EXCEEDED, EDQUOT),
        SD_BUS_ERROR_MAP(BROKER_ERROR_NO_SUCH_OBJECT, ENOENT),
        SD_BUS_ERROR_MAP(BROKER_ERROR_INVALID_RANGE, ERANGE),
        SD_BUS_ERROR_MAP(BROKER_ERROR_IOVA_IN_USE, EADDRINUSE),
        SD_BUS_ERROR_MAP(BROKER_ERROR_DEVICE_BUSY, EBUSY),
        SD_BUS_ERROR_MAP(BROKER_ERROR_OBJECT_IN_USE, EBUSY),
        SD_BUS_ERROR_MAP(BROKER_ERROR_INVALID_FD, EBADF),
        SD_BUS_ERROR_MAP(BROKER_ERROR_NOT_SUPPORTED, EOPNOTSUPP),
        SD_BUS_ERROR_MAP(BROKER_ERROR_BACKEND_ERROR, EIO),
        SD_BUS_ERROR_MAP(BROKER_ERROR_SYSTEM_ERROR, ENOMEM),
        SD_BUS_ERROR_MAP(BROKER_ERROR_FAULT_NOT_PENDING, ESTALE),
        SD_BUS_ERROR_MAP(BROKER_ERROR_FAULT_NOT_OWNED, EPERM),
        SD_BUS_ERROR_MAP(BUS_ERROR_POLICY_INVALID, EINVAL),
        SD_BUS_ERROR_MAP_END,
};

int bus_error_from_broker(sd_bus_error *ret, const BrokerError *e) {
        const char *name = e->error.name;
        int r = e->error.error < 0 ? e->error.error : -EIO;

        if (!name)
                name = BROKER_ERROR_BACKEND_ERROR;
        else if (streq(name, BROKER_ERROR_INVALID_PARAMETER))
                name = SD_BUS_ERROR_INVALID_ARGS;
        (void)sd_bus_error_set(ret, name, error_message(&e->error));
        return r;
}
