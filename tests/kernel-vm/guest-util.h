/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Shared by the guest programs that drive iommud over its socket (guest-broker on iommufd,
 * guest-broker-vfio on a stock kernel's VFIO type1): unnumbered TAP lines (the kernel-vm
 * init numbers them), the daemon under test, org.iommud.Broker calls, the topology check
 * against sysfs, the kernel's IOMMU fault log and moving a device to another driver.
 */

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <json-c/json.h>

#include "macros.h"
#include "varlink-client.h"

#define RUNTIME_DIR "/run/iommud"
#define SOCKET_PATH RUNTIME_DIR "/org.iommud.Broker"
#define POLICY_PATH "/tmp/iommud-policy.json"
#define EMPTY_DIR "/tmp/iommud-empty.d"

extern const char *iommud_path;    /* default /usr/sbin/iommud */
extern const char *iommud_backend; /* --backend; NULL: auto */
extern unsigned n_failed;          /* "not ok" lines so far */
extern pid_t daemon_pid;

_printf_(2, 3) void tap(bool ok, const char *fmt, ...);
/* An "ok" line for what cannot be tested here; fmt carries its "# SKIP reason". */
_printf_(1, 2) void skip(const char *fmt, ...);
uint64_t now_ns(void);
void sleep_ms(unsigned ms);
int write_file(const char *path, const char *text);
int read_file(const char *path, char *buf, size_t size);

/*
 * Starts iommud with a policy that allows every device to root (opening them on its behalf
 * too) and waits for its socket; TCG is slow, so for up to a minute.
 */
int daemon_start(void);
/* SIGTERM, and the exit status. */
int daemon_stop(void);

/*
 * One call; method without an interface is org.iommud.Broker's.  Returns the reply's
 * parameters (owned by *rep) and sets *ret_error to the Varlink error name (NULL on
 * success); transport failures count as an error "transport".  params is taken.
 */
json_object *call(VarlinkClient *c, const char *method, json_object *params, const int *fds,
                  size_t n_fds, VarlinkReply *rep, const char **ret_error);
/* A parameter object from key, value pairs ending with NULL; values are taken. */
json_object *params(const char *key, ...);
json_object *u64(uint64_t v);
uint64_t get_u64(json_object *o, const char *key);
const char *get_str(json_object *o, const char *key);

/* GetTopology against /sys/kernel/iommu_groups: members, type and reserved regions. */
void test_topology(VarlinkClient *c);
/* IOMMU fault lines in the kernel log so far. */
unsigned count_faults(void);
/* Mappings of a memfd named iommud-guest-broker in the daemon's address space. */
unsigned daemon_memfd_maps(void);
/* Moves bdf to driver (driver_override, drivers_probe); 0 when it is bound there. */
int set_driver(const char *bdf, const char *driver);
