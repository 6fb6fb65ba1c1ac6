/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The service manager's fd store, for restart survival.  Fds go to systemd
 * with sd_pid_notify_with_fds("FDSTORE=1\nFDNAME=NAME") and come back on the
 * next start as LISTEN_FDS/LISTEN_FDNAMES; "FDSTOREREMOVE=1\nFDNAME=NAME"
 * drops them.  The serialized daemon state lives in two memfds stored once
 * ("iommud-state-a", "iommud-state-b") and rewritten in place, alternately, so
 * a write torn by a crash leaves the other slot intact.  Each slot holds
 *
 *   "IOMMUDST" | u32 format version | u32 payload length | u64 generation |
 *   u32 CRC-32 of the payload | u32 zero | payload (JSON text)
 *
 * little-endian; the valid slot with the highest generation wins.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "macros.h"

#define FDSTORE_STATE_VERSION 1u

typedef struct FdStore FdStore;

/* One fd handed back by the service manager. */
typedef struct FdStoreEntry {
        char *name;
        int fd; /* -EBADF once taken */
} FdStoreEntry;

/*
 * Reads LISTEN_FDS/LISTEN_FDNAMES (and unsets them).  enabled: push to the
 * store at all (NOTIFY_SOCKET set and the store wanted).  Never fails for a
 * missing environment.
 */
int fdstore_new(FdStore **ret, bool enabled);
FdStore *fdstore_free(FdStore *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(FdStore *, fdstore_free);

bool fdstore_enabled(const FdStore *s);

/* The fds passed at start, in order. */
FdStoreEntry *fdstore_passed(FdStore *s, size_t *ret_n);
/* Moves the passed fd with that name to the caller; -ENOENT when there is none. */
int fdstore_take(FdStore *s, const char *name, int *ret_fd);
/* Closes every passed fd nobody took; returns how many. */
size_t fdstore_close_unused(FdStore *s);

/* The payload of the newest valid state slot passed at start (NUL-terminated), or -ENOENT. */
int fdstore_read_state(FdStore *s, char **ret, Error *err);

/*
 * Makes the store hold exactly the named fds given (fds borrowed): sends what
 * is new or changed (by inode), removes what is gone.  Names must be valid
 * FDNAMEs (printable, no ':').
 */
int fdstore_sync(FdStore *s, const char *const *names, const int *fds, size_t n, Error *err);
/* Writes the state into the older slot (creating and storing the slots first). */
int fdstore_write_state(FdStore *s, const char *payload, size_t len, Error *err);

uint32_t fdstore_crc32(const void *data, size_t len);
