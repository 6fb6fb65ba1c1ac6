/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Devices handed over as fds (OpenDevices): what a VMM or a userspace driver that drives
 * the IOMMU API itself needs, after the same decision as any attach.  iommud opens each
 * device's VFIO cdev and leaves it unbound (the client binds it, as QEMU does with
 * "-device vfio-pci,fd=N"), and opens a fresh iommufd in per-process accounting, so what the
 * client pins counts against its own RLIMIT_MEMLOCK.  The devices stay claimed by the
 * session, busy for every other, until the client releases them or the session ends; iommud
 * then drops the claim, but cannot take back the files the client keeps, so a device whose
 * file is still open somewhere stays held by that process (see docs/SECURITY.md).
 *
 * The decision is the whole of session_attach_device_name()'s (match, driver, group,
 * regions, principal, exclusivity, quota) plus the delegation step: a grant that gives the
 * principal the device must allow "delegation".
 */

#include <stddef.h>

#include "broker-errors.h"
#include "session.h"

/* At most this many devices in one OpenDevices call. */
#define SESSION_OPEN_DEVICES_MAX 32

typedef struct SessionHandoffDevice {
        char *name;               /* as the caller named it */
        int fd;                   /* its VFIO cdev, unbound, O_CLOEXEC; -EBADF once taken */
        unsigned group;           /* UINT32_MAX: none */
        const char *cdev;         /* "vfio3"; points into the topology, NULL when none */
} SessionHandoffDevice;

/* What OpenDevices hands over.  Clear with session_handoff_done(). */
typedef struct SessionHandoff {
        int iommufd;              /* fresh, RLIMIT_MODE per-process; -EBADF once taken */
        SessionHandoffDevice *devices;
        size_t n_devices;
} SessionHandoff;

#define SESSION_HANDOFF_INIT ((SessionHandoff){ .iommufd = -EBADF })

/* Closes the fds nobody took and frees the rest.  Accepts NULL. */
void session_handoff_done(SessionHandoff *h);

/*
 * Decides, claims and opens names[0..n) for the session, all or none: an unknown device
 * (NoSuchObject), a name given twice (InvalidParameter "devices"), any refusal of the
 * decision (PolicyDenied, with step "delegation" when only the handoff is refused;
 * DeviceBusy; QuotaExceeded "devices" counting all n), no iommufd to give in per-process
 * accounting (NotSupported "open-devices": a backend without one, or a daemon without
 * CAP_SYS_RESOURCE) or a failed open fails the whole call and costs nothing.
 */
int session_open_devices(Session *s, const char *const *names, size_t n, SessionHandoff *ret,
                         BrokerError *err);

/*
 * The same decision and claim without opening anything: the devices are held for whoever
 * opens their nodes later (a runtime claim), released like those of session_open_devices().
 */
int session_hold_devices(Session *s, const char *const *names, size_t n, BrokerError *err);

/*
 * Releases devices the session took with session_open_devices(): names[0..n), or every one
 * when n is 0.  NoSuchObject {kind: "device"} for a name the session does not hold that way,
 * and then none is released.  The client's files may stay open; the devices are then held by
 * whoever keeps them, not by this session.
 */
int session_release_devices(Session *s, const char *const *names, size_t n, BrokerError *err);

/* The devices the session holds as fds it took, in the order it took them. */
size_t session_n_handed_over(const Session *s);
const char *session_handed_over(const Session *s, size_t i);
