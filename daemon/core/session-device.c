/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "assert-util.h"
#include "explain.h"
#include "log.h"
#include "session-internal.h"

/* ---- devices --------------------------------------------------------------------------- */

int session_decide(Session *s, const char *name, bool handoff, PolicyDecision *ret,
                   BrokerError *err) {
        ExplainScope scope;
        Principal p;

        scope = EXPLAIN_SCOPE_HOST(s->host);
        scope.self = s;
        /* The devices quota is the principal's, across all its sessions. */
        scope.usage = &s->principal->used;
        scope.handoff = handoff;
        session_principal(s, &p);
        return explain_device(&scope, name, &p, ret, err);
}

int session_explain_device(Session *s, const char *name, PolicyDecision *ret, BrokerError *err) {
        assert_return(s, -EINVAL);
        assert_return(name, -EINVAL);
        assert_return(ret, -EINVAL);

        return session_decide(s, name, false, ret, err);
}

void session_device_release(Session *s, SessionDevice *d) {
        Error be = ERROR_INIT;
        Lingering *l;
        int r;

        session_device_notify(s, SESSION_DEVICE_UNBINDING, d);
        r = OPS(s)->device_unbind(s->ctx, d->id, &be);
        if (r < 0)
                log_debug("Unbinding device %s (id %" PRIu32 ") failed, ignoring: %s", d->name,
                          d->id, error_message(&be));
        session_host_release_claim(s->host, d->name, s);
        /* Detached, but bound while the client keeps the file: not free for anyone else. */
        l = r > 0 ? session_host_lingering(s->host) : NULL;
        if (l && lingering_add(l, d->name) > 0)
                log_debug("Device %s stays bound while a client holds its VFIO file.", d->name);
        free(d->name);
        d->name = NULL;
}

/* DeviceBusy {device, heldBy, pid}; pid 0: not known, left out. */
static int device_busy(BrokerError *err, const char *device, const char *holder, pid_t pid,
                       bool lingering) {
        broker_error_set(err, -EBUSY, BROKER_ERROR_DEVICE_BUSY,
                         lingering ? "Device %s or a device of its IOMMU group is held by %s, "
                                     "which keeps its VFIO file open after iommud let go of it."
                                   : "Device %s or a device of its IOMMU group is held by %s.",
                         device, holder);
        broker_error_add_string(err, "device", device);
        broker_error_add_string(err, "heldBy", holder);
        if (pid > 0)
                broker_error_add_i64(err, "pid", pid);
        return -EBUSY;
}

static int policy_denied(BrokerError *err, const char *device, const char *step,
                         const char *reason) {
        broker_error_set(err, -EPERM, BROKER_ERROR_POLICY_DENIED,
                         "Device %s refused at step %s: %s", device, step, reason);
        broker_error_add_string(err, "device", device);
        broker_error_add_string(err, "step", step);
        broker_error_add_string(err, "reason", reason);
        return -EPERM;
}

int session_admit_device(Session *s, const char *name, bool handoff, const TopoDevice **ret,
                         BrokerError *err) {
        _cleanup_(policy_decision_clear) PolicyDecision dec = {};
        const TopoDevice *d;
        SessionDevice *mine;
        Session *holder;
        int r;

        d = topology_find_device(s->host->topology, name);
        if (!d)
                return broker_error_no_such_device(err, name);
        name = d->name; /* "01:00.0" is 0000:01:00.0 from here on */

        holder = session_host_device_holder(s->host, d, s);
        while (holder && s->host->reap_if_gone &&
               s->host->reap_if_gone(holder, s->host->reap_userdata))
                holder = session_host_device_holder(s->host, d, s);

        mine = session_find_device_by_name(s, name);
        if (mine) {
                char self[64];

                snprintf(self, sizeof(self), "this session (deviceId %" PRIu32 ")", mine->id);
                return device_busy(err, name, self, s->creds->pid, false);
        }
        if (session_handoff_find(s, name))
                return device_busy(err, name, "this session, which took its fds (OpenDevices)",
                                   s->creds->pid, false);

        r = session_decide(s, name, handoff, &dec, err);
        if (r < 0)
                return r;
        if (!dec.allowed) {
                const char *reason = "denied";

                for (size_t i = 0; i < dec.n_steps; i++)
                        if (dec.steps[i].step == dec.failed_step && dec.steps[i].reason)
                                reason = dec.steps[i].reason;
                if (dec.failed_step == POLICY_STEP_QUOTA)
                        return session_quota_exceeded(s, SESSION_RESOURCE_DEVICES, 1, err);
                if (dec.failed_step != POLICY_STEP_EXCLUSIVE)
                        return policy_denied(err, name, policy_step_to_string(dec.failed_step),
                                             reason);
                /*
                 * A session's claim is refused here; a file a client kept after iommud let go
                 * may be gone or not bound any more, which only the kernel's bind can tell.
                 */
                holder = session_host_device_holder(s->host, d, s);
                if (holder)
                        return device_busy(err, name, holder->description, holder->creds->pid,
                                           false);
        }

        /* The claim table is authoritative even if the policy skipped the step. */
        holder = session_host_device_holder(s->host, d, s);
        if (holder)
                return device_busy(err, name, holder->description, holder->creds->pid, false);

        *ret = d;
        return 0;
}

/*
 * Who keeps the kernel from binding d: a process holding the file of d (EINVAL: a file of the
 * device is bound already) or of a member of its group (EPERM: the group is bound to another
 * context).  1 with *ret filled when one is found now.
 */
static int bind_refused_by(Session *s, const TopoDevice *d, bool group, LingeringHolder *ret) {
        Lingering *l = session_host_lingering(s->host);
        size_t n = group && d->group ? d->group->n_devices : 1;

        for (size_t i = 0; l && i < n; i++) {
                const char *name = group && d->group ? d->group->devices[i]->name : d->name;

                /* The caller holds a fresh fd of its own: another holder first. */
                if (lingering_probe(l, name, s->creds->pid, ret) > 0)
                        return 1;
        }
        return 0;
}

/*
 * The file the caller passed is bound already, or another one it holds is: a cdev it bound to
 * an iommufd of its own, or a file it kept after iommud let go of the device.
 */
static int device_bound_by_caller(BrokerError *err, const char *device,
                                  const LingeringHolder *h) {
        char held[sizeof(h->description) + 32];

        snprintf(held, sizeof(held), "%s, the caller itself", h->description);
        broker_error_set(err, -EBUSY, BROKER_ERROR_DEVICE_BUSY,
                         "Device %s is bound already through a VFIO file the caller (%s) holds: "
                         "the fd it passed, bound to an iommufd of its own, or a file it kept "
                         "after iommud let go of the device.  Close that file and pass a fresh "
                         "open of the cdev.",
                         device, h->description);
        broker_error_add_string(err, "device", device);
        broker_error_add_string(err, "heldBy", held);
        broker_error_add_i64(err, "pid", h->pid);
        return -EBUSY;
}

/* The kernel refused the bind: tell a file someone else holds from what the device is. */
static int session_bind_error(Session *s, const TopoDevice *d, int r, const Error *be,
                              BrokerError *err) {
        LingeringHolder h;

        switch (r) {
        case -EINVAL:
                /* Bound by nobody: the kernel refuses a device that needs a firmware 1:1 map. */
                if (!bind_refused_by(s, d, false, &h))
                        return policy_denied(err, d->name, "regions", error_message(be));
                if (h.pid == s->creds->pid)
                        return device_bound_by_caller(err, d->name, &h);
                return device_busy(err, d->name, h.description, h.pid, true);
        case -EPERM:
                if (bind_refused_by(s, d, true, &h))
                        return device_busy(err, d->name, h.description, h.pid, true);
                return policy_denied(err, d->name, "bind", error_message(be));
        case -EBUSY:
                /* The legacy VFIO group file is open: the backend names who holds it if it can. */
                if (bind_refused_by(s, d, false, &h))
                        return device_busy(err, d->name, h.description, h.pid, true);
                return device_busy(err, d->name, error_message(be), 0, false);
        case -EBADF:
        case -EBADFD:
        case -ENOTTY:
                return broker_error_invalid_fd(err, -EBADF, "%s", error_message(be));
        default:
                return broker_error_from_backend(err, "bind", be);
        }
}

static int session_bind_device(Session *s, const TopoDevice *d, int fd, SessionDeviceInfo *ret,
                               BrokerError *err) {
        _cleanup_free_ char *name = NULL;
        SessionDevice *devs;
        Error be = ERROR_INIT;
        HwInfo info = {};
        uint32_t dev_id;
        int r;

        /* Allocate everything first: after the bind nothing may fail. */
        name = strdup(d->name);
        if (!name)
                return broker_error_system(err, -ENOMEM, "Allocating memory");
        devs = realloc(s->devices, (s->n_devices + 1) * sizeof(*devs));
        if (!devs)
                return broker_error_system(err, -ENOMEM, "Allocating memory");
        s->devices = devs;
        /* After the policy, so that a principal without a grant hears why, not "quota 0". */
        r = session_charge(s, SESSION_RESOURCE_DEVICES, 1, err);
        if (r < 0)
                return r;
        r = session_host_add_claim(s->host, d->name, s);
        if (r < 0) {
                session_refund(s, SESSION_RESOURCE_DEVICES, 1);
                return broker_error_system(err, r, "Allocating memory");
        }

        r = OPS(s)->device_bind(s->ctx, fd, &dev_id, &be);
        if (r < 0) {
                session_host_release_claim(s->host, d->name, s);
                session_refund(s, SESSION_RESOURCE_DEVICES, 1);
                return session_bind_error(s, d, r, &be, err);
        }
        /* Bound: whatever file of it a client kept is gone, or was this one. */
        if (s->host->lingering)
                lingering_forget(s->host->lingering, d->name);

        if (backend_has_feature(s->host->backend, BACKEND_FEATURE_HW_INFO) &&
            OPS(s)->hw_info(s->ctx, dev_id, &info, &be) < 0) {
                log_debug("hw_info for %s failed, reporting no PASID or capabilities: %s",
                          d->name, error_message(&be));
                info = (HwInfo){};
        }

        s->devices[s->n_devices++] = (SessionDevice){
                .id = dev_id,
                .name = TAKE_PTR(name),
                .pasid_bits = info.max_pasid_log2,
                .capabilities = info.capabilities,
        };
        session_device_notify(s, SESSION_DEVICE_BOUND, &s->devices[s->n_devices - 1]);

        if (ret) {
                *ret = (SessionDeviceInfo){
                        .device_id = dev_id,
                        .group = d->group ? d->group->id : UINT32_MAX,
                        .pasid_bits = info.max_pasid_log2,
                        .capabilities = info.capabilities,
                };
                snprintf(ret->bdf, sizeof(ret->bdf), "%s", d->name);
        }
        return 0;
}

static int attach_device_fd(Session *s, int fd, SessionDeviceInfo *ret, BrokerError *err) {
        _cleanup_free_ char *name = NULL;
        const TopoDevice *d;
        Error be = ERROR_INIT;
        int r, fl;

        REFUSE_IF_DELEGATED(s, err);

        r = OPS(s)->device_fd_identify(s->host->backend, fd, &name, &be);
        if (r < 0)
                return broker_error_invalid_fd(err, r, "%s", error_message(&be));
        /*
         * The kernel does not check the access mode of a file it binds: a read-only open shows
         * only that the node let its holder read, not that the holder may drive the device.
         */
        fl = fcntl(fd, F_GETFL);
        if (fl >= 0 && (fl & O_ACCMODE) != O_RDWR)
                return broker_error_invalid_fd(err, -EBADF,
                                               "The fd of device %s is open %s; a VFIO device "
                                               "fd must be opened read-write (O_RDWR).",
                                               name,
                                               (fl & O_ACCMODE) == O_RDONLY ? "read-only"
                                                                            : "write-only");

        r = session_admit_device(s, name, false, &d, err);
        if (r < 0)
                return r;
        return session_bind_device(s, d, fd, ret, err);
}

static int attach_device_name(Session *s, const char *name, SessionDeviceInfo *ret,
                              BrokerError *err) {
        _cleanup_close_ int fd = -EBADF;
        const TopoDevice *d;
        Error be = ERROR_INIT;
        Principal p;
        int r;

        REFUSE_IF_DELEGATED(s, err);

        r = session_admit_device(s, name, false, &d, err);
        if (r < 0)
                return r;

        name = d->name;
        session_principal(s, &p);
        if (!policy_allows_open_on_behalf(s->host->policy, &p, d))
                return policy_denied(err, name, "open-on-behalf",
                                     "the policy does not let iommud open this device for the "
                                     "caller; pass the device's VFIO cdev fd instead");

        r = OPS(s)->device_open(s->host->backend, name, &fd, &be);
        if (r < 0)
                return broker_error_from_backend(err, "open the device", &be);
        return session_bind_device(s, d, fd, ret, err);
}

/* Every grant of a device and every refusal of one by the policy is on the record. */
int session_attach_device_fd(Session *s, int fd, SessionDeviceInfo *ret, BrokerError *err) {
        BrokerError local = BROKER_ERROR_INIT;
        SessionDeviceInfo info = {};
        int r;

        assert_return(s, -EINVAL);

        err = err ?: &local;
        r = attach_device_fd(s, fd, &info, err);
        if (r >= 0 && ret)
                *ret = info;
        return session_audit_result(s, SESSION_AUDIT_ATTACH, r >= 0 ? info.bdf : NULL, r, err);
}

int session_attach_device_name(Session *s, const char *name, SessionDeviceInfo *ret,
                               BrokerError *err) {
        BrokerError local = BROKER_ERROR_INIT;
        SessionDeviceInfo info = {};
        int r;

        assert_return(s, -EINVAL);
        assert_return(name, -EINVAL);

        err = err ?: &local;
        r = attach_device_name(s, name, &info, err);
        if (r >= 0 && ret)
                *ret = info;
        return session_audit_result(s, SESSION_AUDIT_ATTACH, r >= 0 ? info.bdf : name, r, err);
}

void session_remove_device(Session *s, SessionDevice *d) {
        SessionIoas *ioas = d->ioas_id ? session_find_ioas(s, d->ioas_id) : NULL;

        if (ioas && ioas->n_attached > 0)
                ioas->n_attached--;
        session_drop_device_pasids(s, d->id);
        session_device_release(s, d);
        *d = s->devices[--s->n_devices];
        session_refund(s, SESSION_RESOURCE_DEVICES, 1);
}

int session_detach_device(Session *s, uint32_t device_id, BrokerError *err) {
        SessionDevice *d;

        assert_return(s, -EINVAL);

        REFUSE_IF_DELEGATED(s, err);

        d = LOOKUP_DEVICE(s, device_id, err);
        session_remove_device(s, d);
        return 0;
}
