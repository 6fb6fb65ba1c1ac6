/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Devices the host wants back.  Every device a session binds has its request channel
 * armed (session_device_request_fd()); when the host asks (vfio-pci before an unbind, a
 * removal or a disabled SR-IOV VF), the holder is told at once with its deadline, and
 * when the policy's device-release-timeout-ms has passed iommud releases the device
 * itself, so that the host never waits on a client that ignores events.  A client that
 * detaches or goes away earlier ends the wait sooner.
 */

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "manager-internal.h"

#define RELEASED_REASON "released to the host"

struct ReleaseWatch {
        Manager *m;
        Session *s;
        uint32_t device_id;
        char *device;
        struct event *request;  /* readable when the host asks */
        struct event *deadline; /* the grace period, once asked */
        ReleaseWatch *next;
};

static ReleaseWatch *release_watch_free(ReleaseWatch *w) {
        if (!w)
                return NULL;
        if (w->request)
                event_free(w->request);
        if (w->deadline)
                event_free(w->deadline);
        free(w->device);
        free(w);
        return NULL;
}

static void on_deadline(evutil_socket_t fd, short what, void *userdata) {
        ReleaseWatch *w = userdata;
        Manager *m = w->m;
        Session *s = w->s;
        uint32_t id = w->device_id;
        _cleanup_free_ char *device = strdup(w->device);

        /* Told first, while the session still knows the device's id; w goes with the device. */
        manager_tell_device_lost(m, s, w->device, "released", RELEASED_REASON);
        (void)session_release_device(s, id, RELEASED_REASON);
        log_info("Released device %s to the host.", device ?: "?");
        manager_persist(m);
        manager_notify_status(m);
}

static uint64_t realtime_usec(void) {
        struct timespec ts;

        (void)clock_gettime(CLOCK_REALTIME, &ts);
        return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void on_request(evutil_socket_t fd, short what, void *userdata) {
        ReleaseWatch *w = userdata;
        Manager *m = w->m;
        uint64_t timeout_ms = policy_limits(m->host.policy)->device_release_timeout_ms;
        struct timeval tv = { .tv_sec = (time_t)(timeout_ms / 1000),
                              .tv_usec = (suseconds_t)(timeout_ms % 1000 * 1000) };
        uint64_t count;

        /* vfio-pci asks again every 10 s while it waits: one deadline for all of them. */
        if (read(fd, &count, sizeof(count)) < 0 || w->deadline)
                return;
        w->deadline = evtimer_new(m->base, on_deadline, w);
        if (!w->deadline || evtimer_add(w->deadline, &tv) < 0) {
                log_error("Scheduling the release of device %s failed, releasing it now.",
                          w->device);
                on_deadline(-1, 0, w);
                return;
        }
        log_info("The host wants device %s back from %s: released in %llu ms at the latest.",
                 w->device, session_describe(w->s), (unsigned long long)timeout_ms);
        manager_tell_release_requested(m, w->s, w->device, w->device_id,
                                       realtime_usec() + timeout_ms * 1000u);
        /* No grace at all: released before anything else happens (w goes with it). */
        if (timeout_ms == 0) {
                event_del(w->deadline);
                on_deadline(-1, 0, w);
        }
}

void manager_release_check(Manager *m, const char *device) {
        for (ReleaseWatch *w = m->release_watches; w; w = w->next)
                if (streq(w->device, device)) {
                        on_request(event_get_fd(w->request), EV_READ, w);
                        return;
                }
}

static void release_watch_add(Manager *m, Session *s, uint32_t device_id, const char *device) {
        ReleaseWatch *w;
        int fd, r;

        r = session_device_request_fd(s, device_id, &fd);
        if (r < 0) {
                log_debug("Device %s has no request channel, the host cannot ask for it back "
                          "through iommud: %s", device, strerror(-r));
                return;
        }
        w = calloc(1, sizeof(*w));
        if (!w || !(w->device = strdup(device)))
                goto fail;
        *w = (ReleaseWatch){ .m = m, .s = s, .device_id = device_id, .device = w->device };
        w->request = event_new(m->base, fd, EV_READ | EV_PERSIST, on_request, w);
        if (!w->request || event_add(w->request, NULL) < 0)
                goto fail;
        w->next = m->release_watches;
        m->release_watches = w;
        return;
fail:
        release_watch_free(w);
        log_warning("Watching device %s for the host's requests failed (out of memory), "
                    "ignoring.", device);
}

void manager_on_device(Session *s, SessionDeviceEvent event, uint32_t device_id,
                       const char *name, void *userdata) {
        Manager *m = userdata;

        if (event == SESSION_DEVICE_BOUND) {
                release_watch_add(m, s, device_id, name);
                return;
        }
        for (ReleaseWatch **p = &m->release_watches; *p; p = &(*p)->next) {
                ReleaseWatch *w = *p;
                bool asked = w->deadline != NULL;

                if (w->s != s || w->device_id != device_id)
                        continue;
                *p = w->next;
                release_watch_free(w);
                /* The host may go on now: a simulated host does what it waited for. */
                if (asked && !m->exiting && m->sim_topo)
                        manager_sim_released(m, name);
                return;
        }
}
