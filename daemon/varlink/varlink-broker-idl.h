/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The org.iommud.Broker interface definition, compiled in from
 * daemon/varlink/org.iommud.Broker.varlink (the single source of truth) and served by
 * org.varlink.service.GetInterfaceDescription.
 */

#define BROKER_INTERFACE "org.iommud.Broker"

extern const char broker_idl[];
