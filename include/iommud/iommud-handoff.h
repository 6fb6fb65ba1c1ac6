/* SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef IOMMUD_IOMMUD_HANDOFF_H
#define IOMMUD_IOMMUD_HANDOFF_H

/*
 * libiommud: devices handed over as fds (OpenDevices), for a VMM or a driver that binds
 * them to an iommufd of its own, as QEMU does with
 * "-object iommufd,id=io0,fd=N -device vfio-pci,iommufd=io0,fd=M".  The conventions of
 * <iommud/iommud.h> apply.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <iommud/iommud.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct IommudHandoff IommudHandoff;

/* One device of a handoff. */
typedef struct IommudHandedDevice {
        const char *name;         /* as asked for */
        int fd;                   /* its VFIO cdev, unbound; owned by the handoff */
        const char *cdev;         /* "vfio3", or NULL */
        bool has_group;
        uint32_t group;
} IommudHandedDevice;

/**
 * iommud_open_devices() - take devices as fds (OpenDevices).
 * @c: the client; its session holds the devices from now on.
 * @devices: device names.
 * @n_devices: how many, 1 to 32.
 * @ret: the handoff; free with iommud_handoff_free().
 * @err: filled on failure; may be NULL.
 *
 * iommud makes the whole decision for each device, the delegation step included
 * (a grant that gives the caller the device must allow "delegation"), opens each
 * device's VFIO cdev and hands it over unbound, with a fresh iommufd that charges
 * what the process mapping through it pins against that process's
 * RLIMIT_MEMLOCK.  All devices or none.  The devices stay claimed by the
 * session, busy for everyone else, until iommud_release_devices() or the end of
 * the session (the last reference to the client's connection); the files the
 * caller keeps stay open after that, and the device stays with whoever holds
 * them.  Keep the client while the devices are in use.
 *
 * Return: 0, -EPERM (PolicyDenied; step "delegation" when only the handoff is
 * refused), -EBUSY (DeviceBusy), -EDQUOT (QuotaExceeded), -ENOENT (NoSuchObject:
 * no such device), -EOPNOTSUPP (a kernel without iommufd), -EINVAL, or another
 * negative errno.
 */
int iommud_open_devices(IommudClient *c, const char *const *devices, size_t n_devices,
                        IommudHandoff **ret, IommudError *err);

/**
 * iommud_handoff_free() - free a handoff, closing the fds not taken from it.
 * @h: the handoff, or NULL.
 *
 * The devices stay claimed by the session: that ends with
 * iommud_release_devices() or the session.
 *
 * Return: NULL.
 */
IommudHandoff *iommud_handoff_free(IommudHandoff *h);

/**
 * iommud_handoff_get_iommufd() - the fresh iommufd.
 * @h: the handoff.
 *
 * Return: the fd, owned by @h (-EBADF once taken), or -EINVAL without a handoff.
 */
int iommud_handoff_get_iommufd(const IommudHandoff *h);

/**
 * iommud_handoff_take_iommufd() - take the iommufd out of the handoff.
 * @h: the handoff.
 *
 * Return: the fd, now the caller's (O_CLOEXEC), -EBADF when taken already, or
 * -EINVAL without a handoff.
 */
int iommud_handoff_take_iommufd(IommudHandoff *h);

/**
 * iommud_handoff_get_n_devices() - how many devices the handoff holds.
 * @h: the handoff.
 *
 * Return: the count, in the order they were asked for; 0 without a handoff.
 */
size_t iommud_handoff_get_n_devices(const IommudHandoff *h);

/**
 * iommud_handoff_get_device() - one device of the handoff.
 * @h: the handoff.
 * @i: its index.
 *
 * Return: the device (valid as long as @h; its fd is -EBADF once taken), or NULL
 * out of range.
 */
const IommudHandedDevice *iommud_handoff_get_device(const IommudHandoff *h, size_t i);

/**
 * iommud_handoff_take_device_fd() - take a device's fd out of the handoff.
 * @h: the handoff.
 * @i: the device's index.
 *
 * Return: the fd, now the caller's (O_CLOEXEC), -EBADF when taken already, or
 * -EINVAL out of range.
 */
int iommud_handoff_take_device_fd(IommudHandoff *h, size_t i);

/**
 * iommud_release_devices() - end the session's claim on devices (ReleaseDevices).
 * @c: the client whose session took them.
 * @devices: device names, or NULL with @n_devices 0 for every one.
 * @n_devices: how many.
 * @err: filled on failure; may be NULL.
 *
 * The files handed over stay open wherever they are; a device bound through one
 * of them stays with that process.
 *
 * Return: 0, -ENOENT (NoSuchObject: a device the session did not take; then
 * none is released), or another negative errno.
 */
int iommud_release_devices(IommudClient *c, const char *const *devices, size_t n_devices,
                           IommudError *err);

#ifdef __cplusplus
}
#endif

#endif
