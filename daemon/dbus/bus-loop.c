/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>
#include <systemd/sd-bus.h>

#include "bus-loop.h"
#include "log.h"

struct BusLoop {
        struct event_base *base;
        sd_bus *bus;
        struct event *io;
        struct event *timer;
        struct event *kick;
        short io_events;   /* what io is armed for, 0 when not added */
        bool dead;
        BusLoopDisconnectFn on_disconnect;
        void *userdata;
};

static uint64_t now_usec(void) {
        struct timespec ts;

        (void)clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void bus_loop_die(BusLoop *l) {
        if (l->dead)
                return;
        l->dead = true;
        (void)event_del(l->io);
        (void)event_del(l->timer);
        l->io_events = 0;
        if (l->on_disconnect)
                l->on_disconnect(l, l->userdata);
}

static void bus_loop_arm(BusLoop *l) {
        uint64_t until = UINT64_MAX;
        short want = 0;
        int events, r;

        if (l->dead)
                return;
        events = sd_bus_get_events(l->bus);
        if (events < 0) {
                log_debug("The bus connection is gone (%s).", strerror(-events));
                bus_loop_die(l);
                return;
        }
        if (events & POLLIN)
                want |= EV_READ;
        if (events & POLLOUT)
                want |= EV_WRITE;
        if (want != l->io_events) {
                (void)event_del(l->io);
                event_assign(l->io, l->base, sd_bus_get_fd(l->bus), want | EV_PERSIST,
                             event_get_callback(l->io), l);
                if (want)
                        (void)event_add(l->io, NULL);
                l->io_events = want;
        }

        r = sd_bus_get_timeout(l->bus, &until);
        (void)event_del(l->timer);
        if (r >= 0 && until != UINT64_MAX) {
                uint64_t now = now_usec(), rel = until > now ? until - now : 0;
                struct timeval tv = { .tv_sec = (time_t)(rel / 1000000u),
                                      .tv_usec = (suseconds_t)(rel % 1000000u) };

                (void)event_add(l->timer, &tv);
        }
}

static void bus_loop_dispatch(BusLoop *l) {
        int r;

        if (l->dead)
                return;
        /* Drain what is ready; each call handles at most one message. */
        for (unsigned i = 0; i < 256; i++) {
                r = sd_bus_process(l->bus, NULL);
                if (r < 0) {
                        log_debug("Processing the bus failed (%s).", strerror(-r));
                        bus_loop_die(l);
                        return;
                }
                if (r == 0)
                        break;
                if (l->dead)
                        return;
        }
        if (r > 0) {
                /* More is ready: come back after the loop had a chance to serve others. */
                event_active(l->kick, 0, 0);
                return;
        }
        bus_loop_arm(l);
}

static void on_io(evutil_socket_t fd, short what, void *userdata) {
        bus_loop_dispatch(userdata);
}

static void on_timer(evutil_socket_t fd, short what, void *userdata) {
        bus_loop_dispatch(userdata);
}

static void on_kick(evutil_socket_t fd, short what, void *userdata) {
        bus_loop_dispatch(userdata);
}

int bus_loop_new(BusLoop **ret, struct event_base *base, sd_bus *bus,
                 BusLoopDisconnectFn on_disconnect, void *userdata) {
        _cleanup_(bus_loop_freep) BusLoop *l = NULL;
        int fd;

        fd = sd_bus_get_fd(bus);
        if (fd < 0)
                return fd;
        l = calloc(1, sizeof(*l));
        if (!l)
                return -ENOMEM;
        l->base = base;
        l->bus = sd_bus_ref(bus);
        l->on_disconnect = on_disconnect;
        l->userdata = userdata;
        l->io = event_new(base, fd, EV_READ | EV_PERSIST, on_io, l);
        l->timer = evtimer_new(base, on_timer, l);
        l->kick = event_new(base, -1, 0, on_kick, l);
        if (!l->io || !l->timer || !l->kick)
                return -ENOMEM;
        /* The first dispatch runs the connection's setup (auth, Hello) as soon as possible. */
        event_active(l->kick, 0, 0);
        *ret = TAKE_PTR(l);
        return 0;
}

BusLoop *bus_loop_free(BusLoop *l) {
        if (!l)
                return NULL;
        if (l->io)
                event_free(l->io);
        if (l->timer)
                event_free(l->timer);
        if (l->kick)
                event_free(l->kick);
        sd_bus_unref(l->bus);
        free(l);
        return NULL;
}

void bus_loop_kick(BusLoop *l) {
        if (l && !l->dead)
                event_active(l->kick, 0, 0);
}
