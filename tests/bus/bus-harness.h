/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * What the bus suites share: a private dbus-daemon with the system-style
 * configuration of tests/bus/system-bus.conf.in ($IOMMUD_BUS_CONFIG), and
 * waiting for a name to appear on it.
 */

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <systemd/sd-bus.h>

/*
 * Starts dbus-daemon listening on DIR/bus and stores its pid; once it listens,
 * points $DBUS_SYSTEM_BUS_ADDRESS at it, so that iommud and every client find it
 * as they find the system bus, and connects *ret_bus to it with iommud's error
 * names registered.  Returns 0, -ENOENT without $IOMMUD_BUS_CONFIG, -ECHILD when
 * it died first, or -errno.
 */
int bus_harness_start_dbus(const char *dir, pid_t *ret_pid, sd_bus **ret_bus);
/* Polls in 50 ms steps until name has an owner on bus: -ECHILD once owner (if > 0) dies,
 * -ETIMEDOUT after 30 s, so that a hang fails the test rather than the suite. */
int bus_harness_wait_for_name(sd_bus *bus, const char *name, pid_t owner);
/* Sends SIGTERM to *pid (if > 0), reaps it and sets it to 0. */
void bus_harness_reap(pid_t *pid);
/* True while pid runs. */
bool bus_harness_alive(pid_t pid);
/* Removes the test's scratch directory dir and everything below it; ignores "". */
void bus_harness_remove_dir(const char *dir);
