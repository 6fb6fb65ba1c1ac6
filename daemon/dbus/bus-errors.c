/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <inttypes.h>

#include <systemd/sd-bus.h>

#include "bus-errors.h"
#include "error-names.h"

/*
 * One errno per name, from the table libiommud returns them from (common/error-names.h).
 * InvalidParameter is the bus's own InvalidArgs (EINVAL).
 */
#define BUS_MAP(n, e) SD_BUS_ERROR_MAP(BROKER_INTERFACE "." n, e),
const sd_bus_error_map bus_error_map[] = {
        ERROR_NAMES_BROKER(BUS_MAP)
        SD_BUS_ERROR_MAP(BUS_ERROR_POLICY_INVALID, EINVAL),
        SD_BUS_ERROR_MAP_END,
};
#undef BUS_MAP

int bus_error_from_broker(sd_bus_error *ret, const BrokerError *e) {
        const char *name = e->error.name;
        int r = e->error.error < 0 ? e->error.error : -EIO;
        const BrokerErrorParam *area;

        if (!name)
                name = BROKER_ERROR_BACKEND_ERROR;
        else if (streq(name, BROKER_ERROR_INVALID_PARAMETER))
                name = SD_BUS_ERROR_INVALID_ARGS;
        area = broker_error_get(e, "area");
        if (area) {
                /* A D-Bus error has no parameters: the message names the area of a batch. */
                (void)sd_bus_error_setf(ret, name, "Area %" PRIu64 ": %s", area->u64,
                                        error_message(&e->error));
                return r;
        }
        (void)sd_bus_error_set(ret, name, error_message(&e->error));
        return r;
}
