/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The D-Bus face of the broker's protocol errors: the same names as on the
 * socket (org.iommud.Broker.NoSuchObject, ...) plus the few that only the bus
 * front end raises, registered as an sd_bus_error_map so that both ends turn
 * a name into its errno (sd_bus_error_get_errno()) and back.  Clients that
 * use sd-bus register bus_error_map with sd_bus_error_add_map().
 */

#include <systemd/sd-bus.h>

#include "broker-errors.h"

#define BUS_ERROR_POLICY_INVALID "org.iommud1.PolicyInvalid"

extern const sd_bus_error_map bus_error_map[];

/* Fills ret from e: name (BackendError when e has none) and sentence.  Returns the errno. */
int bus_error_from_broker(sd_bus_error *ret, const BrokerError *e);
