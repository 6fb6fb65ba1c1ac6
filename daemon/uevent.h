/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Kernel uevents, read from a NETLINK_KOBJECT_UEVENT socket (multicast group
 * 1: the kernel's own messages) on the libevent loop.  libsystemd's
 * sd_device_monitor would need an sd-event loop (252 offers no fd to drive it
 * from another loop), and the raw kernel messages carry all iommud needs.
 */

#include <stdbool.h>
#include <stddef.h>

#include <event2/event.h>

#include "macros.h"

typedef struct Uevent {
        const char *action;    /* "add", "remove", "bind", "unbind", "change", ... */
        const char *devpath;   /* "/devices/pci0000:00/0000:00:1f.0" */
        const char *subsystem; /* "pci", "vfio-dev", "iommu", ... */
        const char *driver;    /* NULL when the message names none */
} Uevent;

/*
 * Parses one kernel message: "ACTION@DEVPATH\0KEY=VALUE\0...".  The fields
 * point into buf.  -EBADMSG when it is not a kernel uevent (e.g. udev's
 * "libudev" messages, or no ACTION/DEVPATH).
 */
int uevent_parse(const char *buf, size_t len, Uevent *ret);
/* Whether the event can change the IOMMU topology or a device's binding. */
bool uevent_is_relevant(const Uevent *u);

typedef struct UeventMonitor UeventMonitor;
/*
 * Called for each relevant message the kernel itself sent (messages from any other
 * sender are dropped), and with u NULL when messages were lost (the socket's buffer
 * overflowed, ENOBUFS): whatever changed meanwhile is unknown.
 */
typedef void (*UeventFn)(const Uevent *u, void *userdata);

int uevent_monitor_new(UeventMonitor **ret, struct event_base *base, UeventFn fn, void *userdata);
UeventMonitor *uevent_monitor_free(UeventMonitor *m);
DEFINE_TRIVIAL_CLEANUP_FUNC(UeventMonitor *, uevent_monitor_free);
