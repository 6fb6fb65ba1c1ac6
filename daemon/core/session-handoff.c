/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "assert-util.h"
#include "explain.h"
#include "log.h"
#include "session-handoff.h"
#include "session-internal.h"

void session_handoff_done(SessionHandoff *h) {
        if (!h)
                return;
        h->iommufd = safe_close(h->iommufd);
        for (size_t i = 0; i < h->n_devices; i++) {
                safe_close(h->devices[i].fd);
                free(h->devices[i].name);
        }
        free(h->devices);
        h->devices = NULL;
        h->n_devices = 0;
}

/* InvalidParameter {parameter: "devices"} with the sentence already in err. */
static int invalid_devices(BrokerError *err) {
        broker_error_add_string(err, "parameter", "devices");
        return -EINVAL;
}

/* At least one device, at most SESSION_OPEN_DEVICES_MAX, none twice. */
static int check_names(const char *const *names, size_t n, BrokerError *err) {
        if (n == 0) {
                broker_error_set(err, -EINVAL, BROKER_ERROR_INVALID_PARAMETER,
                                 "OpenDevices needs at least one device.");
                return invalid_devices(err);
        }
        if (n > SESSION_OPEN_DEVICES_MAX) {
                broker_error_set(err, -EINVAL, BROKER_ERROR_INVALID_PARAMETER,
                                 "OpenDevices takes at most %d devices, not %zu.",
                                 SESSION_OPEN_DEVICES_MAX, n);
                return invalid_devices(err);
        }
        for (size_t i = 0; i < n; i++)
                for (size_t k = 0; k < i; k++)
                        if (streq(names[i], names[k])) {
                                broker_error_set(err, -EINVAL, BROKER_ERROR_INVALID_PARAMETER,
                                                 "Device %s is named twice.", names[i]);
                                return invalid_devices(err);
                        }
        return 0;
}

/*
 * The decision for each device, as if the ones before were held already: the devices quota
 * (the principal's, across its sessions) counts them all.  Nothing stays counted on return.
 */
static int admit_all(Session *s, const char *const *names, size_t n, const TopoDevice **devs,
                     BrokerError *err) {
        size_t i;
        int r = 0;

        for (i = 0; i < n; i++) {
                r = session_admit_device(s, names[i], true, &devs[i], err);
                if (r < 0)
                        break;
                s->principal->used.devices++;
        }
        s->principal->used.devices -= i;
        return r;
}

/* The names checked and every device admitted, in *ret_devs (freed by the caller). */
static int decide_all(Session *s, const char *const *names, size_t n, const TopoDevice ***ret_devs,
                      BrokerError *err) {
        int r;

        r = check_names(names, n, err);
        if (r < 0)
                return r;
        *ret_devs = calloc(n, sizeof(**ret_devs));
        if (!*ret_devs)
                return broker_error_system(err, -ENOMEM, "Allocating memory");
        return admit_all(s, names, n, *ret_devs, err);
}

/* BackendError {errno, message}: what the kernel said when an open for the client failed. */
static int open_failed(BrokerError *err, const char *what, const Error *be) {
        int r = be->error < 0 ? be->error : -EIO;

        broker_error_set(err, r, BROKER_ERROR_BACKEND_ERROR, "Opening %s failed: %s", what,
                         error_message(be));
        broker_error_add_i64(err, "errno", -r);
        broker_error_add_string(err, "message", error_message(be));
        return r;
}

/* The fresh iommufd (as Delegate's) and each device's cdev, unbound. */
static int open_all(Session *s, const TopoDevice **devs, size_t n, SessionHandoff *h,
                    BrokerError *err) {
        Error be = ERROR_INIT;
        int r;

        r = session_can_hand_iommufd(s, "open-devices", err);
        if (r < 0)
                return r;
        h->devices = calloc(n, sizeof(*h->devices));
        if (!h->devices)
                return broker_error_system(err, -ENOMEM, "Allocating memory");
        r = session_fresh_iommufd(s, "open-devices", &h->iommufd, err);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++) {
                SessionHandoffDevice *hd = &h->devices[h->n_devices];

                *hd = (SessionHandoffDevice){
                        .fd = -EBADF,
                        .group = devs[i]->group ? devs[i]->group->id : UINT32_MAX,
                        .cdev = devs[i]->cdev_name,
                };
                hd->name = strdup(devs[i]->name);
                if (!hd->name)
                        return broker_error_system(err, -ENOMEM, "Allocating memory");
                h->n_devices++;
                r = OPS(s)->device_open(s->host->backend, devs[i]->name, &hd->fd, &be);
                if (r < 0)
                        return open_failed(err, devs[i]->name, &be);
        }
        return 0;
}

/* Claims every device for the session; nothing is claimed when it fails. */
static int claim_all(Session *s, const TopoDevice **devs, size_t n, BrokerError *err) {
        char **a;
        size_t i;
        int r = 0;

        a = reallocarray(s->handed_over, s->n_handed_over + n, sizeof(*a));
        if (!a)
                return broker_error_system(err, -ENOMEM, "Allocating memory");
        s->handed_over = a;
        for (i = 0; i < n; i++) {
                a[s->n_handed_over + i] = strdup(devs[i]->name);
                if (!a[s->n_handed_over + i])
                        break;
                r = session_host_add_claim(s->host, devs[i]->name, s);
                if (r < 0) {
                        free(a[s->n_handed_over + i]);
                        break;
                }
        }
        if (i < n) {
                while (i-- > 0) {
                        session_host_release_claim(s->host, devs[i]->name, s);
                        free(a[s->n_handed_over + i]);
                }
                return broker_error_system(err, r < 0 ? r : -ENOMEM, "Allocating memory");
        }
        s->n_handed_over += n;
        /* admit_all() checked the quota for all n. */
        session_charge_held(s, SESSION_RESOURCE_DEVICES, n);
        return 0;
}

/* "uid 1000, pid 4242, unit qemu-vm1.scope": whom the log names as holding the files. */
static const char *holder(const Session *s, char *buf, size_t size) {
        const PeerCreds *c = s->creds;

        /* A runtime claim has no process: its description names it. */
        if (c->pid <= 0) {
                snprintf(buf, size, "%s", s->description);
                return buf;
        }
        snprintf(buf, size, "uid %u, pid %d%s%s", (unsigned)c->uid, (int)c->pid,
                 c->unit ? ", unit " : "", c->unit ?: "");
        return buf;
}

int session_open_devices(Session *s, const char *const *names, size_t n, SessionHandoff *ret,
                         BrokerError *err) {
        _cleanup_(session_handoff_done) SessionHandoff h = SESSION_HANDOFF_INIT;
        _cleanup_free_ const TopoDevice **devs = NULL;
        char who[160];
        int r;

        assert_return(s, -EINVAL);
        assert_return(names || n == 0, -EINVAL);
        assert_return(ret, -EINVAL);

        r = decide_all(s, names, n, &devs, err);
        if (r < 0)
                return r;
        r = open_all(s, devs, n, &h, err);
        if (r < 0)
                return r;
        r = claim_all(s, devs, n, err);
        if (r < 0)
                return r;

        for (size_t i = 0; i < n; i++)
                log_info("Handed the VFIO cdev of %s (unbound) to %s, with a fresh iommufd in "
                         "per-process accounting.",
                         names[i], holder(s, who, sizeof(who)));
        *ret = h;
        h = SESSION_HANDOFF_INIT;
        return 0;
}

int session_hold_devices(Session *s, const char *const *names, size_t n, BrokerError *err) {
        _cleanup_free_ const TopoDevice **devs = NULL;
        int r;

        assert_return(s, -EINVAL);
        assert_return(names || n == 0, -EINVAL);

        r = decide_all(s, names, n, &devs, err);
        if (r < 0)
                return r;
        return claim_all(s, devs, n, err);
}

static ssize_t handoff_index(const Session *s, const char *name) {
        for (size_t i = 0; i < s->n_handed_over; i++)
                if (streq(s->handed_over[i], name))
                        return (ssize_t)i;
        return -1;
}

bool session_handoff_find(const Session *s, const char *name) {
        return handoff_index(s, name) >= 0;
}

/* Drops the claim on handed_over[i].  The client's files of it may live on. */
static void release_one(Session *s, size_t i, const char *why) {
        char *name = s->handed_over[i], who[160];

        session_host_release_claim(s->host, name, s);
        session_refund(s, SESSION_RESOURCE_DEVICES, 1);
        log_info("%s no longer holds %s (%s); the VFIO files it took stay open until its "
                 "processes close them.",
                 holder(s, who, sizeof(who)), name, why);
        memmove(s->handed_over + i, s->handed_over + i + 1,
                (s->n_handed_over - i - 1) * sizeof(*s->handed_over));
        s->n_handed_over--;
        free(name);
}

int session_release_devices(Session *s, const char *const *names, size_t n, BrokerError *err) {
        ssize_t k;

        assert_return(s, -EINVAL);
        assert_return(names || n == 0, -EINVAL);

        /* Every name first: a call that names one device wrongly releases nothing. */
        for (size_t i = 0; i < n; i++)
                if (handoff_index(s, names[i]) < 0) {
                        broker_error_set(err, -ENOENT, BROKER_ERROR_NO_SUCH_OBJECT,
                                         "This session did not take device %s with "
                                         "OpenDevices.",
                                         names[i]);
                        broker_error_add_string(err, "kind", BROKER_KIND_DEVICE);
                        broker_error_add_string(err, "id", names[i]);
                        return -ENOENT;
                }
        if (n == 0) {
                while (s->n_handed_over > 0)
                        release_one(s, s->n_handed_over - 1, "released");
                return 0;
        }
        for (size_t i = 0; i < n; i++) {
                k = handoff_index(s, names[i]);
                if (k >= 0)
                        release_one(s, (size_t)k, "released");
        }
        return 0;
}

void session_handoff_release_all(Session *s) {
        while (s->n_handed_over > 0)
                release_one(s, s->n_handed_over - 1, "its session ended");
        free(s->handed_over);
        s->handed_over = NULL;
}

/* Why the policy no longer lets s take device name as fds; "" when it still does. */
static void handoff_refused(Session *s, const char *name, char *buf, size_t size) {
        _cleanup_(policy_decision_clear) PolicyDecision dec = {};
        ExplainScope scope = EXPLAIN_SCOPE_HOST(s->host);
        Principal p;

        buf[0] = 0;
        /* Without usage, as for the devices it bound: holding them is not over its quota. */
        scope.self = s;
        scope.handoff = true;
        session_principal(s, &p);
        if (!topology_find_device(s->host->topology, name))
                snprintf(buf, size, "the device left the topology");
        else if (explain_device(&scope, name, &p, &dec, NULL) < 0)
                snprintf(buf, size, "the policy could not be evaluated");
        else if (!dec.allowed)
                snprintf(buf, size, "%s: %s", policy_step_to_string(dec.failed_step),
                         dec.steps[dec.failed_step].reason ?: "denied");
}

int session_handoff_revalidate(Session *s,
                               void (*on_drop)(Session *s, const char *device,
                                               const char *reason, void *userdata),
                               void *userdata) {
        int dropped = 0;

        for (size_t i = 0; i < s->n_handed_over;) {
                char reason[256];

                handoff_refused(s, s->handed_over[i], reason, sizeof(reason));
                if (!reason[0]) {
                        i++;
                        continue;
                }
                if (on_drop)
                        on_drop(s, s->handed_over[i], reason, userdata);
                release_one(s, i, reason);
                dropped++;
        }
        return dropped;
}

size_t session_n_handed_over(const Session *s) {
        assert_return(s, 0);
        return s->n_handed_over;
}

const char *session_handed_over(const Session *s, size_t i) {
        assert_return(s, NULL);
        assert_return(i < s->n_handed_over, NULL);
        return s->handed_over[i];
}
