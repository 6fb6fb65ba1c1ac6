/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The org.iommud.Manager interface definition, compiled in from
 * daemon/varlink/org.iommud.Manager.varlink and served by GetInterfaceDescription.
 */

#define MANAGER_INTERFACE "org.iommud.Manager"

extern const char manager_idl[];
