/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The systemd unit a process runs in, from its cgroup, and whether the
 * system service manager vouches for it.  A cgroup's name is chosen by
 * whoever may write to its parent directory: the system manager (root) for
 * the units it starts, but also any user for a subtree delegated to it (its
 * own service manager, user@UID.service, or a service with Delegate=yes),
 * where "machine-qemu-evil.scope" is a mkdir away.  So a unit is taken only
 * when every directory above its cgroup, from the cgroup2 root down, is the
 * system manager's: owned by root, writable by nobody else, not marked as
 * delegated (the trusted.delegate or user.delegate xattr systemd sets), and
 * not under user@UID.service.  The unit's own cgroup may be delegated: its
 * name was still chosen by its parent's owner (systemd-machined delegates
 * the machine-*.scope units of libvirt's VMs this way).
 */

#include "error.h"

/*
 * The cgroup2 path in the text of /proc/PID/cgroup ("0::PATH").  -ENXIO when
 * there is none; -EBADMSG when there is more than one, which only a cgroup
 * name with a newline in it can produce: the text is then not to be trusted.
 */
int cgroup_unit_parse_proc(const char *text, char **ret_path);

/*
 * The innermost systemd unit (.service or .scope) named on a cgroup path, by
 * name alone: "/system.slice/foo.service" → "foo.service",
 * "/machine.slice/vm.scope/libvirt/emulator" → "vm.scope".  -ENXIO when the
 * path names no unit.
 */
int cgroup_unit_name(const char *path, char **ret);

/*
 * The unit the cgroup at path (as /proc/PID/cgroup gives it) proves, checked
 * against the cgroup2 tree at root (NULL: where cgroup2 is mounted, see
 * cgroup_unit_find_root()).  Returns 1 and *ret_unit when the unit is the
 * system manager's; 0 when the path names no unit at all; -EPERM with err
 * saying why the unit named was not taken ("machine-qemu-evil.scope is under
 * user@1000.service, a user's own service manager") when it is not; -ENOMEM.
 */
int cgroup_unit_check(const char *root, const char *path, char **ret_unit, Error *err);

/*
 * Where the cgroup2 hierarchy is mounted: /sys/fs/cgroup (unified) or
 * /sys/fs/cgroup/unified (hybrid).  -ENOMEDIUM when neither is cgroup2.
 */
int cgroup_unit_find_root(const char **ret);
