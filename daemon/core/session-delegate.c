/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Handing a client what it then uses by itself: a VFIO device fd where only iommud can open
 * one (the legacy group API), and an iommufd of its own (Delegate, and OpenDevices with the
 * devices' fds).
 *
 * Both hand over a fresh iommufd, never the session's: the session's context holds what
 * iommud made with its own credentials (CAP_IPC_LOCK: pins nobody is charged for), and a client
 * holding it would keep that alive past the session.  The fresh context is switched to
 * per-process accounting (IOMMU_OPTION_RLIMIT_MODE 1, which needs CAP_SYS_RESOURCE and a
 * context without objects: only a fresh one has none) before the client gets it, so what the
 * client pins through it is charged to the process that maps, against its own RLIMIT_MEMLOCK,
 * as libvirt and KubeVirt do.  iommud keeps no copy: the context lives as long as the client's
 * fds.  From then on iommud mediates nothing for the session, so no pin in any context of the
 * session was made with iommud's credentials after the client got its own.
 */

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <string.h>

#include "assert-util.h"
#include "session-internal.h"

int session_refuse_delegated(const Session *s, BrokerError *err) {
        return broker_error_not_supported(err, "mediation",
                                          "This session delegated its iommufd (Delegate): map "
                                          "through it; iommud no longer mediates for %s here.",
                                          s->description);
}

int session_device_fd(Session *s, uint32_t device_id, int *ret_fd, BrokerError *err) {
        SessionDevice *d;
        Error be = ERROR_INIT;
        int r;

        assert_return(s, -EINVAL);
        assert_return(ret_fd, -EINVAL);

        REFUSE_IF_DELEGATED(s, err);
        d = LOOKUP_DEVICE(s, device_id, err);
        if (!OPS(s)->device_fd)
                return broker_error_not_supported(err, "device-fd",
                                                  "With the %s backend a client opens its device "
                                                  "itself and passes the fd to AttachDevice.",
                                                  s->host->backend->ops->name);
        if (d->ioas_id == 0) {
                broker_error_set(err, -EINVAL, BROKER_ERROR_INVALID_PARAMETER,
                                 "Device %s (id %" PRIu32 ") is not attached to an address "
                                 "space: its VFIO fd exists only then.",
                                 d->name, device_id);
                broker_error_add_string(err, "parameter", "deviceId");
                return -EINVAL;
        }
        r = OPS(s)->device_fd(s->ctx, d->id, ret_fd, &be);
        if (r < 0)
                return broker_error_from_backend(err, "open the device", &be);
        return 0;
}

static int session_may_delegate(Session *s, BrokerError *err) {
        char reason[160];
        Principal p;
        int r;

        session_principal(s, &p);
        if (!policy_allows_delegation(s->host->policy, &p)) {
                broker_error_set(err, -EPERM, BROKER_ERROR_POLICY_DENIED,
                                 "The policy does not allow %s to receive an iommufd.",
                                 s->description);
                broker_error_add_string(err, "device", "");
                broker_error_add_string(err, "step", "delegation");
                broker_error_add_string(err, "reason",
                                        "delegation is not granted to this principal");
                return -EPERM;
        }
        r = session_can_hand_iommufd(s, "delegation", err);
        if (r < 0)
                return r;
        if (s->delegated)
                snprintf(reason, sizeof(reason), "the session delegated its iommufd already");
        else if (s->n_devices > 0 || s->n_ioas > 0 || s->n_pasids > 0)
                snprintf(reason, sizeof(reason),
                         "the session holds %zu device(s), %zu address space(s) and %zu "
                         "PASID(s); delegate from a session that holds nothing",
                         s->n_devices, s->n_ioas, s->n_pasids);
        else
                return 0;
        broker_error_set(err, -EBUSY, BROKER_ERROR_OBJECT_IN_USE, "Delegate refused: %s.",
                         reason);
        broker_error_add_string(err, "kind", BROKER_KIND_SESSION);
        broker_error_add_u64(err, "id", 0);
        broker_error_add_string(err, "reason", reason);
        return -EBUSY;
}

int session_can_hand_iommufd(Session *s, const char *feature, BrokerError *err) {
        if (OPS(s)->context_fd(s->ctx) == -EOPNOTSUPP ||
            !backend_has_feature(s->host->backend, BACKEND_FEATURE_OPTION))
                return broker_error_not_supported(err, feature,
                                                  "The %s backend has no iommufd to hand over "
                                                  "with per-process accounting.",
                                                  s->host->backend->ops->name);
        return 0;
}

int session_fresh_iommufd(Session *s, const char *feature, int *ret_fd, BrokerError *err) {
        _cleanup_(backend_context_freep) BackendContext *ctx = NULL;
        uint64_t per_process = 1;
        Error be = ERROR_INIT;
        int r, fd;

        r = OPS(s)->context_new(s->host->backend, &ctx, &be);
        if (r < 0)
                return broker_error_from_backend(err, "open an iommufd", &be);
        r = OPS(s)->option(ctx, BACKEND_OPTION_RLIMIT_MODE, BACKEND_OPTION_OP_SET, 0,
                           &per_process, &be);
        if (r == -EPERM)
                return broker_error_not_supported(err, feature,
                                                  "iommud cannot make an iommufd charge the "
                                                  "client's RLIMIT_MEMLOCK (it lacks "
                                                  "CAP_SYS_RESOURCE), and hands out none that "
                                                  "would charge nobody: %s",
                                                  error_message(&be));
        if (r < 0)
                return broker_error_from_backend(err, "set per-process accounting", &be);
        fd = fcntl(OPS(s)->context_fd(ctx), F_DUPFD_CLOEXEC, 3);
        if (fd < 0)
                return broker_error_system(err, -errno, "Duplicating the iommufd");
        /* iommud's copy closes here: the context is the client's alone. */
        *ret_fd = fd;
        return 0;
}

static int delegate(Session *s, int *ret_fd, BrokerError *err) {
        int r;

        r = session_may_delegate(s, err);
        if (r < 0)
                return r;
        r = session_fresh_iommufd(s, "delegation", ret_fd, err);
        if (r < 0)
                return r;
        s->delegated = true;
        return 0;
}

/* Every iommufd handed out and every refusal of one by the policy is on the record. */
int session_delegate(Session *s, int *ret_fd, BrokerError *err) {
        BrokerError local = BROKER_ERROR_INIT;

        assert_return(s, -EINVAL);
        assert_return(ret_fd, -EINVAL);

        err = err ?: &local;
        return session_audit_result(s, SESSION_AUDIT_DELEGATE, NULL, delegate(s, ret_fd, err),
                                    err);
}

bool session_is_delegated(const Session *s) {
        assert_return(s, false);
        return s->delegated;
}
