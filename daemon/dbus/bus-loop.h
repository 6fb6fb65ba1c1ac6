/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Drives an sd_bus connection from a libevent loop: one event on the bus fd
 * with the events sd_bus_get_events() asks for, one timer for the absolute
 * CLOCK_MONOTONIC deadline of sd_bus_get_timeout().  After every dispatch both
 * are re-armed; code that queues messages outside a dispatch (signals, late
 * replies) calls bus_loop_kick() so a partly written queue gets POLLOUT.
 * Nothing here ever waits.
 */

#include <systemd/sd-bus.h>
#include <event2/event.h>

#include "macros.h"

typedef struct BusLoop BusLoop;

/* Called once when the connection is lost (the loop stops watching it). */
typedef void (*BusLoopDisconnectFn)(BusLoop *l, void *userdata);

/* Takes a reference on bus. */
int bus_loop_new(BusLoop **ret, struct event_base *base, sd_bus *bus,
                 BusLoopDisconnectFn on_disconnect, void *userdata);
BusLoop *bus_loop_free(BusLoop *l);
DEFINE_TRIVIAL_CLEANUP_FUNC(BusLoop *, bus_loop_free);

/* Re-arms the fd and timer on the next loop iteration. */
void bus_loop_kick(BusLoop *l);
