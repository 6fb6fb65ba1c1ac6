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
 * Who holds a device's file can only be seen per device node (a scan of /proc/PID/fd): a
 * process holding a fresh, unbound fd of the node looks the same as one holding the bound
 * file.  So an entry records the processes that held the node when iommud let go, and lasts
 * while one of them still holds it; it ends (on demand, and with an event loop as soon as they
 * exit, through a pidfd of each) when none does.  Whether a device can be bound is the
 * kernel's to say: an attach tries the bind, and only a refusal asks who holds the node now.
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
 * iommud let go of device, whose file may live on in a client: records the processes other
 * than iommud that hold its node now.  Returns 1 when recorded, 0 when nobody holds it.
 */
int lingering_add(Lingering *l, const char *device);
/*
 * Whether device is held by one of the processes recorded for it, other than exclude (a
 * client asking about a device while it holds an fd of its own for it; 0: none), asked of the
 * backend now: an entry none of whose processes holds the node any more ends.  Returns 1 with
 * *ret filled (may be NULL) when held, 0 when not.
 */
int lingering_check(Lingering *l, const char *device, pid_t exclude, LingeringHolder *ret);
/*
 * The kernel refused to bind device: who holds its node now, another process than exclude
 * first, exclude itself when nobody else does.  Records nothing (a refused call costs the
 * daemon nothing).  Returns 1 with *ret filled when somebody holds it, 0 when nobody does.
 */
int lingering_probe(Lingering *l, const char *device, pid_t exclude, LingeringHolder *ret);
/* The kernel bound device after all: whatever was recorded for it is over. */
void lingering_forget(Lingering *l, const char *device);
size_t lingering_count(const Lingering *l);
