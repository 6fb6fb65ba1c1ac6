/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * org.iommud1.Session: devices handed over as fds (OpenDevices, ReleaseDevices), with the
 * semantics and errors of org.iommud.Broker's methods of the same names.
 */

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <systemd/sd-bus.h>

#include "bus-errors.h"
#include "bus-internal.h"
#include "session-handoff.h"

static void strv_freep(char ***p) {
        if (!*p)
                return;
        for (char **s = *p; *s; s++)
                free(*s);
        free(*p);
}

/* The names of an "as" argument; InvalidArgs beyond SESSION_OPEN_DEVICES_MAX. */
static int read_names(sd_bus_message *m, char ***ret, size_t *ret_n, sd_bus_error *error) {
        char **v = NULL;
        size_t n;
        int r;

        r = sd_bus_message_read_strv(m, &v);
        if (r < 0)
                return r;
        for (n = 0; v && v[n]; n++)
                ;
        if (n > SESSION_OPEN_DEVICES_MAX) {
                strv_freep(&v);
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                         "At most %d devices per call, not %zu.",
                                         SESSION_OPEN_DEVICES_MAX, n);
        }
        *ret = v;
        *ret_n = n;
        return 0;
}

/* (h iommufd, a(shsu) devices): each device as (name, fd, cdev or "", group or 2^32-1). */
static int reply_handoff(sd_bus_message *m, const SessionHandoff *h) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        int r;

        r = sd_bus_message_new_method_return(m, &reply);
        if (r >= 0)
                r = sd_bus_message_append(reply, "h", h->iommufd);
        if (r >= 0)
                r = sd_bus_message_open_container(reply, 'a', "(shsu)");
        for (size_t i = 0; r >= 0 && i < h->n_devices; i++)
                r = sd_bus_message_append(reply, "(shsu)", h->devices[i].name,
                                          h->devices[i].fd, h->devices[i].cdev ?: "",
                                          (uint32_t)h->devices[i].group);
        if (r >= 0)
                r = sd_bus_message_close_container(reply);
        if (r < 0)
                return r;
        /* sd-bus sent duplicates of the fds; ours close with h. */
        return sd_bus_send(NULL, reply, NULL);
}

int bus_session_method_open_devices(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        _cleanup_(session_handoff_done) SessionHandoff h = SESSION_HANDOFF_INIT;
        _cleanup_(strv_freep) char **names = NULL;
        BrokerError e = BROKER_ERROR_INIT;
        BusSession *bs = userdata;
        size_t n = 0;
        int r;

        r = bus_session_check_owner(m, bs, error);
        if (r < 0)
                return r;
        r = read_names(m, &names, &n, error);
        if (r < 0)
                return r;
        if (session_open_devices(bs->session, (const char *const *)names, n, &h, &e) < 0)
                return bus_error_from_broker(error, &e);
        return reply_handoff(m, &h);
}

int bus_session_method_release_devices(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        _cleanup_(strv_freep) char **names = NULL;
        BrokerError e = BROKER_ERROR_INIT;
        BusSession *bs = userdata;
        size_t n = 0;
        int r;

        r = bus_session_check_owner(m, bs, error);
        if (r < 0)
                return r;
        r = read_names(m, &names, &n, error);
        if (r < 0)
                return r;
        if (session_release_devices(bs->session, (const char *const *)names, n, &e) < 0)
                return bus_error_from_broker(error, &e);
        return sd_bus_reply_method_return(m, NULL);
}
