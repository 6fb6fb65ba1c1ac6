/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * What the guest programs that drive iommud over its socket share: the guest machine's
 * devices, starting and stopping the daemon on the kernel backend, Varlink calls, the cdev of
 * a device, and what the kernel and the daemon show from outside (IOMMU faults in the kernel
 * log, the daemon's mappings of client memory).  Header-only, like guest-util.h.
 */

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/klog.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "guest-util.h"
#include "json-util.h"
#include "macros.h"
#include "varlink-client.h"

#define EDU_ROOT "0000:00:03.0"
#define BRIDGE_EDU "0000:01:02.0"
#define BRIDGE_SIBLING "0000:01:01.0"

#define RUNTIME_DIR "/run/iommud"
#define SOCKET_PATH RUNTIME_DIR "/org.iommud.Broker"
#define POLICY_PATH "/tmp/iommud-policy.json"
#define EMPTY_DIR "/tmp/iommud-empty.d"

static const char *iommud_path = "/usr/sbin/iommud";

static inline _printf_(1, 2) void skip(const char *fmt, ...) {
        va_list ap;

        printf("ok - ");
        va_start(ap, fmt);
        vprintf(fmt, ap);
        va_end(ap);
        putchar('\n');
        fflush(stdout);
}

static inline uint64_t now_ns(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline void sleep_ms(unsigned ms) {
        struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000 };

        nanosleep(&ts, NULL);
}

static inline int write_file(const char *path, const char *text) {
        _cleanup_close_ int fd = open(path, O_WRONLY | O_CLOEXEC | O_CREAT | O_TRUNC, 0644);
        size_t n = strlen(text);

        if (fd < 0)
                return -errno;
        if (write(fd, text, n) != (ssize_t)n)
                return -EIO;
        return 0;
}

static inline int read_file(const char *path, char *buf, size_t size) {
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
        ssize_t n;

        if (fd < 0)
                return -errno;
        n = read(fd, buf, size - 1);
        if (n < 0)
                return -errno;
        buf[n] = '\0';
        while (n > 0 && buf[n - 1] == '\n')
                buf[--n] = '\0';
        return 0;
}

/* ---- the daemon ---- */

static pid_t daemon_pid = -1;

/* Every device for root: the policy the guest programs start iommud with. */
#define POLICY_ROOT_ALL                                                                            \
        "{\n"                                                                                      \
        "  \"rules\": { \"all\": { \"action\": \"allow\", \"match\": \"*\" } },\n"                \
        "  \"grants\": { \"root\": { \"principals\": [ { \"user\": 0 } ],\n"                    \
        "                           \"devices\": \"*\" } }\n"                                      \
        "}\n"

/* Starts iommud with POLICY_ROOT_ALL and waits until its socket answers. */
static inline int daemon_start(void) {
        const char *policy = POLICY_ROOT_ALL;
        uint64_t deadline;
        int r;

        (void)mkdir(EMPTY_DIR, 0755);
        (void)mkdir(RUNTIME_DIR, 0755);
        r = write_file(POLICY_PATH, policy);
        if (r < 0)
                return r;
        daemon_pid = fork();
        if (daemon_pid < 0)
                return -errno;
        if (daemon_pid == 0) {
                execl(iommud_path, iommud_path, "--runtime-dir", RUNTIME_DIR, "--policy",
                      POLICY_PATH, "--policy-dir", EMPTY_DIR, "--vendor-policy-dir", EMPTY_DIR,
                      "--log-level", getenv("IOMMUD_GUEST_LOG_LEVEL") ?: "notice", NULL);
                _exit(127);
        }
        /* TCG is slow: allow the daemon a while to read sysfs and probe /dev/iommu. */
        deadline = now_ns() + 60ull * 1000000000u;
        while (now_ns() < deadline) {
                _cleanup_(varlink_client_freep) VarlinkClient *c = NULL;
                int status;

                if (varlink_client_connect(&c, SOCKET_PATH) >= 0)
                        return 0;
                if (waitpid(daemon_pid, &status, WNOHANG) == daemon_pid) {
                        daemon_pid = -1;
                        return -ECHILD;
                }
                sleep_ms(50);
        }
        return -ETIMEDOUT;
}

static inline int daemon_stop(void) {
        int status = 0;

        if (daemon_pid < 0)
                return 0;
        (void)kill(daemon_pid, SIGTERM);
        (void)waitpid(daemon_pid, &status, 0);
        daemon_pid = -1;
        (void)unlink(SOCKET_PATH);
        return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* ---- calls ---- */

/*
 * One call; returns the reply's parameters (owned by *rep) and sets *ret_error to the Varlink
 * error name (NULL on success).  Transport failures count as an error "transport".
 */
static inline json_object *call(VarlinkClient *c, const char *method, json_object *params,
                         const int *fds, size_t n_fds, VarlinkReply *rep, const char **ret_error) {
        _cleanup_free_ char *full = NULL;
        int r;

        varlink_reply_clear(rep);
        if (asprintf(&full, "org.iommud.Broker.%s", method) < 0)
                abort();
        r = varlink_client_call(c, full, params, fds, n_fds, rep);
        json_object_put(params);
        if (r < 0) {
                *ret_error = "transport";
                return NULL;
        }
        *ret_error = rep->error;
        return rep->parameters;
}

static inline json_object *params(const char *key, ...) {
        json_object *o = json_object_new_object();
        va_list ap;

        va_start(ap, key);
        for (const char *k = key; k; k = va_arg(ap, const char *))
                json_object_object_add(o, k, va_arg(ap, json_object *));
        va_end(ap);
        return o;
}

static inline json_object *u64(uint64_t v) {
        return json_object_new_uint64(v);
}

static inline uint64_t get_u64(json_object *o, const char *key) {
        json_object *v;
        uint64_t x = UINT64_MAX;

        if (o && json_object_object_get_ex(o, key, &v))
                (void)json_util_to_u64(v, &x);
        return x;
}

static inline const char *get_str(json_object *o, const char *key) {
        json_object *v;

        if (o && json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_string))
                return json_object_get_string(v);
        return "";
}

static inline int open_cdev(const char *bdf) {
        char path[PATH_MAX];
        int r, fd;

        r = vfio_cdev_path(bdf, path, sizeof(path));
        if (r < 0)
                return r;
        fd = open(path, O_RDWR | O_CLOEXEC);
        return fd < 0 ? -errno : fd;
}

/* AttachDevice with the device's cdev fd; returns the deviceId or a negative value. */
static inline int64_t attach_device(VarlinkClient *c, int cdev, VarlinkReply *rep,
                                     const char **error) {
        json_object *p = call(c, "AttachDevice", params("fd", json_object_new_int(0), NULL), &cdev,
                              1, rep, error);

        return *error ? -1 : (int64_t)get_u64(p, "deviceId");
}

/*
 * The same, for a device another session just let go of: the daemon tears a closed session
 * down from its event loop, so DeviceBusy may still answer for a moment.
 */
static inline int64_t attach_device_released(VarlinkClient *c, int cdev, VarlinkReply *rep,
                                      const char **error) {
        int64_t id = -1;

        for (unsigned i = 0; i < 100; i++) {
                id = attach_device(c, cdev, rep, error);
                if (!*error || !streq(*error, "org.iommud.Broker.DeviceBusy"))
                        break;
                sleep_ms(30);
        }
        return id;
}

/* IOMMU fault lines in the kernel log so far. */
static inline unsigned count_faults(void) {
        const char *mode = getenv("IOMMUD_KVM_MODE") ?: "";
        const char *pattern = streq(mode, "amd") ? "IO_PAGE_FAULT" : "DMAR: [DMA Write";
        int size = klogctl(10 /* SYSLOG_ACTION_SIZE_BUFFER */, NULL, 0), n;
        _cleanup_free_ char *buf = NULL;
        unsigned count = 0;

        if (size <= 0 || !(buf = malloc((size_t)size + 1)))
                return 0;
        n = klogctl(3 /* SYSLOG_ACTION_READ_ALL */, buf, size);
        if (n <= 0)
                return 0;
        buf[n] = '\0';
        for (char *p = buf; (p = strstr(p, pattern)); p++)
                count++;
        return count;
}

/* Mappings of a memfd in the daemon's address space: the MAP_FILE fallback's footprint. */
static inline unsigned daemon_memfd_maps(void) {
        char path[64], line[512];
        unsigned n = 0;
        FILE *f;

        snprintf(path, sizeof(path), "/proc/%d/maps", (int)daemon_pid);
        f = fopen(path, "re");
        if (!f)
                return 0;
        while (fgets(line, sizeof(line), f))
                if (strstr(line, "/memfd:iommud-guest-broker"))
                        n++;
        fclose(f);
        return n;
}
