/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * What the guest programs that drive iommud share: the daemon on the kernel backend (started,
 * stopped, and restarted with its fd store as systemd keeps it), calls over its socket, and
 * the sysfs and /proc look-ups around them.  Results are unnumbered TAP lines (guest-util.h).
 */

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <json-c/json.h>

#include "macros.h"
#include "varlink-client.h"

#define BROKER_RUNTIME_DIR "/run/iommud"
#define BROKER_SOCKET BROKER_RUNTIME_DIR "/org.iommud.Broker"
#define BROKER_PAGE 4096
/* edu masks DMA addresses to 28 bits. */
#define BROKER_TEST_IOVA UINT64_C(0x300000)

#define EDU_ROOT "0000:00:03.0"
#define BRIDGE_EDU "0000:01:02.0"
#define BRIDGE_SIBLING "0000:01:01.0"

/* The iommud binary (argv[1] of a guest program, default /usr/sbin/iommud). */
extern const char *broker_iommud_path;
/* The running daemon's pid, -1 when none. */
extern pid_t broker_pid;

/* An "ok - WHAT # SKIP REASON" line: fmt gives both, the directive included. */
_printf_(1, 2) void broker_skip(const char *fmt, ...);
uint64_t broker_now_ns(void);
void broker_sleep_ms(unsigned ms);
int broker_write_file(const char *path, const char *text);
int broker_read_file(const char *path, char *buf, size_t size);

/*
 * Starts iommud with a policy letting root use every device and waits for its socket.  With
 * fd_store, it gets a NOTIFY_SOCKET and an fd store as systemd gives it (FDSTORE=256), and
 * broker_restart() starts it again with what it stored.
 */
int broker_start(bool fd_store);
/* SIGTERM and wait; the exit status, or -1 on a signal.  The fd store is kept. */
int broker_stop(void);
/* broker_stop(), then a new iommud with the stored fds (LISTEN_FDS, LISTEN_FDNAMES). */
int broker_restart(void);
/* How many fds the fd store holds, and how many of them have names starting with prefix. */
size_t broker_stored(const char *prefix);
/* Drops the fd store (after the last restart). */
void broker_store_clear(void);

/*
 * One call of org.iommud.Broker.METHOD; takes params.  Returns the reply's parameters (owned
 * by rep) and sets *ret_error to the Varlink error name, NULL on success ("transport" when
 * the call did not get through).
 */
json_object *broker_call(VarlinkClient *c, const char *method, json_object *params,
                         const int *fds, size_t n_fds, VarlinkReply *rep, const char **ret_error);
/* Parameters: broker_params("ioasId", broker_u64(1), ..., NULL). */
json_object *broker_params(const char *key, ...);
json_object *broker_u64(uint64_t v);
/* A member of a reply: UINT64_MAX or "" when absent. */
uint64_t broker_get_u64(json_object *o, const char *key);
const char *broker_get_str(json_object *o, const char *key);

/* Opens the VFIO cdev of a device; -errno. */
int broker_open_cdev(const char *bdf);
/* AttachDevice with a cdev fd: the deviceId, or -1 with *error set. */
int64_t broker_attach(VarlinkClient *c, int cdev, VarlinkReply *rep, const char **error);
/* The same, retried while a session that just let go of the device is torn down. */
int64_t broker_attach_released(VarlinkClient *c, int cdev, VarlinkReply *rep, const char **error);
/* Maps length bytes of fd from offset at iova (UINT64_MAX: iommud picks); the IOVA or
 * UINT64_MAX with *error set. */
uint64_t broker_map(VarlinkClient *c, uint64_t ioas, int fd, uint64_t offset, uint64_t length,
                    uint64_t iova, VarlinkReply *rep, const char **error);

/* Mappings of a memfd of that name in the daemon (its MAP_FILE fallback's footprint). */
unsigned broker_daemon_memfd_maps(const char *memfd_name);
/* Open fds of the daemon (/proc/PID/fd). */
int broker_daemon_fds(void);
/* Moves a PCI device to another driver by driver_override; -errno. */
int broker_set_driver(const char *bdf, const char *driver);
