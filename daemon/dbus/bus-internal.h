/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * What bus.c (Manager, devices), bus-session.c (sessions) and bus-session-handoff.c (devices
 * handed over as fds) share.
 */

#include <systemd/sd-bus.h>

#include "bus-auth.h"
#include "bus-loop.h"
#include "bus.h"
#include "fault-router.h"

typedef struct BusSession BusSession;
typedef struct BusPending BusPending;

struct Bus {
        BusConfig cfg;
        sd_bus *bus;
        BusLoop *loop;
        bool has_name;
        bool freeing;
        BusSession *sessions;   /* D-Bus sessions, newest first */
        uint64_t next_session_id;
        BusPending *pending;    /* calls waiting for credentials or polkit */
        const char *hook_path;  /* object path of the session being opened or closed */
};

struct BusSession {
        Bus *bus;
        Session *session;
        uint64_t id;
        char path[64];
        char *owner;           /* unique name of the connection that created it */
        sd_bus_track *track;
        FaultWatch **watches;  /* WatchFaults(): Fault signals to the owner */
        size_t n_watches;
        BusSession *next, *prev;
};

/* Runs a method once the caller is known and, for action, authorized (bus.c). */
typedef int (*BusPendingFn)(Bus *b, BusPending *p, PeerCreds **creds, sd_bus_error *error);
/*
 * Replies later: run is called with the caller's credentials once polkit allowed action
 * (exempt_uid needs no authorization; UID_INVALID: nobody is exempt).  1, or a negative errno.
 */
int bus_defer(Bus *b, sd_bus_message *m, const char *action, uid_t exempt_uid, BusPendingFn run,
              BusPending **ret);
/* The call p answers. */
sd_bus_message *bus_pending_call(BusPending *p);

/* Runtime claims of org.iommud1.Manager (bus-claims.c). */
int bus_method_prepare_claim(sd_bus_message *m, void *userdata, sd_bus_error *error);
int bus_method_unprepare_claim(sd_bus_message *m, void *userdata, sd_bus_error *error);
int bus_method_list_claims(sd_bus_message *m, void *userdata, sd_bus_error *error);

/* Creates the session object for owner with creds (taken on success). */
int bus_session_new(BusSession **ret, Bus *b, const char *owner, PeerCreds *creds,
                    BrokerError *err);
/* Frees the core session (releasing everything) and the object. */
BusSession *bus_session_free(BusSession *bs);
BusSession *bus_session_find_path(Bus *b, const char *path);
BusSession *bus_session_from_core(Bus *b, const Session *s);
int bus_session_register(Bus *b);

/* Only the connection that created a session may use it: AccessDenied for any other. */
int bus_session_check_owner(sd_bus_message *m, BusSession *bs, sd_bus_error *error);

/* bus-session-handoff.c */
int bus_session_method_open_devices(sd_bus_message *m, void *userdata, sd_bus_error *error);
int bus_session_method_release_devices(sd_bus_message *m, void *userdata, sd_bus_error *error);

extern const sd_bus_vtable bus_session_vtable[];

/* The start of every method of a session object: bs, e, and the owner checked. */
#define SESSION_CALL(m, userdata, error)                                                           \
        BusSession *bs = (userdata);                                                               \
        BrokerError e = BROKER_ERROR_INIT;                                                         \
        do {                                                                                       \
                int _r = bus_session_check_owner((m), bs, (error));                                \
                if (_r < 0)                                                                        \
                        return _r;                                                                 \
        } while (0)

/* bus-session-map.c: IOVA windows and mappings. */
int bus_method_get_iova_ranges(sd_bus_message *m, void *userdata, sd_bus_error *error);
int bus_method_allow_iovas(sd_bus_message *m, void *userdata, sd_bus_error *error);
int bus_method_map(sd_bus_message *m, void *userdata, sd_bus_error *error);
int bus_method_unmap(sd_bus_message *m, void *userdata, sd_bus_error *error);
int bus_method_map_batch(sd_bus_message *m, void *userdata, sd_bus_error *error);
int bus_method_unmap_batch(sd_bus_message *m, void *userdata, sd_bus_error *error);
