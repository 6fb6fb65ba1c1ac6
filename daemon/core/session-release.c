/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Giving a device back to the host.  vfio-pci asks whoever holds a device through its
 * request channel before an unbind, a removal or a disabled SR-IOV VF can go on, and waits
 * until every file of the device is released.  The session arms that channel for every
 * device it binds and tells the host's on_device hook; the manager decides when to give the
 * device up, and then the session loses it the way a hotplug removal takes it: detached,
 * its PASIDs unbound, its pending faults answered, its address spaces that only it used
 * destroyed, its file released, and DeviceGone for whatever names it afterwards.
 */

#include <errno.h>
#include <inttypes.h>

#include "assert-util.h"
#include "log.h"
#include "session-internal.h"

void session_device_notify(Session *s, SessionDeviceEvent event, const SessionDevice *d) {
        SessionHost *h = s->host;

        if (h->on_device)
                h->on_device(s, event, d->id, d->name, h->on_device_userdata);
}

int session_device_request_fd(Session *s, uint32_t device_id, int *ret_fd) {
        Error be = ERROR_INIT;
        int r;

        assert_return(s, -EINVAL);
        assert_return(ret_fd, -EINVAL);

        if (!session_find_device(s, device_id))
                return -ENOENT;
        if (!OPS(s)->device_request_fd)
                return -EOPNOTSUPP;
        r = OPS(s)->device_request_fd(s->ctx, device_id, ret_fd, &be);
        if (r < 0)
                log_debug("Arming the request channel of device %" PRIu32 " failed: %s",
                          device_id, error_message(&be));
        return r;
}

void session_drop_device(Session *s, SessionDevice *d, const char *reason) {
        uint32_t ioas_id = d->ioas_id;
        SessionIoas *ioas;

        session_remember_gone(s, d->id, d->name, reason);
        /* The device is not coming back: the router answers what it left pending. */
        if (s->faults)
                fault_stream_answer_device(s->faults, d->id);
        session_remove_device(s, d);

        /* An address space only that device used goes with it. */
        ioas = ioas_id ? session_find_ioas(s, ioas_id) : NULL;
        if (ioas && ioas->n_attached == 0) {
                (void)session_ioas_teardown(s, ioas);
                session_remove_ioas(s, ioas);
        }
}

int session_release_device(Session *s, uint32_t device_id, const char *reason) {
        SessionDevice *d;

        assert_return(s, -EINVAL);
        assert_return(reason, -EINVAL);

        d = session_find_device(s, device_id);
        if (!d)
                return -ENOENT;
        session_drop_device(s, d, reason);
        return 0;
}
