/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Lingering devices: devices iommud let go of (DetachDevice, a session's end, a reload or
 * hotplug that took them) whose bound file a client may still hold.  A VFIO cdev is bound
 * through its open file, which iommud shares with the client (it binds a dup of the client's
 * fd): after iommud detached the device and closed its copy, the device stays bound, its DMA
 * blocked, until the last process holding that file closes it, and until then the kernel
 * refuses every other bind.  Such a device is not free: this table says who holds it, so that
 * an attach is answered DeviceBusy naming the holder's pid and ExplainDevice and GetTopology
 * list it as held.
 *
 * An entry ends when no process but iommud holds the device's node any more: checked on
 * demand (every question below asks the backend again), and, with an event loop, as soon as
 * one of the holders exits (a pidfd of each, up to LINGERING_WATCH_MAX of them).
 */

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <event2/event.h>

#include "backend.h"
#include "macros.h"

#define LINGERING_WATCH_MAX 4

typedef struct Lingering Lingering;

typedef struct LingeringHolder {
        pid_t pid;
        char description[96];    /* "pid 4242 (qemu-system-x86)" */
} LingeringHolder;

/* Told when an entry ends (nobody holds the device any more): device is free again. */
typedef void (*LingeringEndFn)(const char *device, void *userdata);

/* backend is borrowed; base may be NULL (entries then end only when asked about). */
int lingering_new(Lingering **ret, Backend *backend, struct event_base *base);
Lingering *lingering_free(Lingering *l);
DEFINE_TRIVIAL_CLEANUP_FUNC(Lingering *, lingering_free);
void lingering_set_end_fn(Lingering *l, LingeringEndFn fn, void *userdata);

/*
 * iommud let go of device, whose file may live on in a client: records it while a process
 * other than iommud holds the device's node.  Returns 1 when recorded, 0 when nobody holds it.
 */
int lingering_add(Lingering *l, const char *device);
/*
 * Whether device is held by a process other than iommud and other than exclude (a client that
 * asks about a device while holding an fd of its own for it, which need not be the bound file;
 * 0: none), asked of the backend now: an entry that finds nobody at all ends.  With probe, a
 * device without an entry is asked about too (and recorded when held): the kernel refused to
 * bind it and iommud wants to know why.  Returns 1 with *ret filled (may be NULL) when held,
 * 0 when not.
 */
int lingering_check(Lingering *l, const char *device, bool probe, pid_t exclude,
                    LingeringHolder *ret);
size_t lingering_count(const Lingering *l);
