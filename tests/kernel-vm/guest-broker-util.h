/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * What the guest programs that drive iommud over its socket share (guest-broker on iommufd,
 * guest-broker-vfio on a stock kernel's VFIO type1): the daemon under test, calls (a method
 * without an interface is org.iommud.Broker's), the topology check against sysfs, the
 * kernel's IOMMU fault log, device cdevs and AttachDevice, what the daemon holds (fds, memfd
 * mappings) and moving a device to another driver.  Header-only, like
 * guest-util.h: each guest program is one translation unit.
 */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/klog.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "guest-util.h"
#include "json-util.h"
#include "macros.h"
#include "varlink-client.h"

#define RUNTIME_DIR "/run/iommud"
#define SOCKET_PATH RUNTIME_DIR "/org.iommud.Broker"
#define POLICY_PATH "/tmp/iommud-policy.json"
#define EMPTY_DIR "/tmp/iommud-empty.d"

static const char *iommud_path = "/usr/sbin/iommud";
/* --backend for the daemon under test; NULL: auto. */
static const char *iommud_backend;

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

static pid_t daemon_pid = -1;
/* Run in the daemon's process before exec (guest-fdstore.h hands it the fd store there). */
static void (*daemon_child_hook)(void);
/* The policy the daemon under test starts with; NULL: root may use every device. */
static const char *daemon_policy;

static inline int daemon_start(void) {
        const char *policy =
                daemon_policy ?:
                "{\n"
                "  \"rules\": { \"all\": { \"action\": \"allow\", \"match\": \"*\" } },\n"
                "  \"grants\": { \"root\": { \"principals\": [ { \"user\": 0 } ],\n"
                "                           \"devices\": \"*\", \"open-on-behalf\": true } }\n"
                "}\n";
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
                /* It dies with the test: a failed test must not leave it holding the console. */
                (void)prctl(PR_SET_PDEATHSIG, SIGKILL);
                if (daemon_child_hook)
                        daemon_child_hook();
                execl(iommud_path, iommud_path, "--runtime-dir", RUNTIME_DIR, "--policy",
                      POLICY_PATH, "--policy-dir", EMPTY_DIR, "--vendor-policy-dir", EMPTY_DIR,
                      "--log-level", "notice", "--backend", iommud_backend ?: "auto", NULL);
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

/*
 * One call; returns the reply's parameters (owned by *rep) and sets *ret_error to the Varlink
 * error name (NULL on success).  Transport failures count as an error "transport".
 */
static inline json_object *call(VarlinkClient *c, const char *method, json_object *params,
                         const int *fds, size_t n_fds, VarlinkReply *rep, const char **ret_error) {
        _cleanup_free_ char *full = NULL;
        int r;

        varlink_reply_clear(rep);
        if (asprintf(&full, "%s%s", strchr(method, '.') ? "" : "org.iommud.Broker.", method) < 0)
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

static inline const char *region_type_name(const char *sysfs_type) {
        if (streq(sysfs_type, "direct") || streq(sysfs_type, "direct-relaxable") || streq(sysfs_type, "reserved") ||
            streq(sysfs_type, "msi"))
                return sysfs_type;
        return "unknown";
}

/* Compares one group of the reply with /sys/kernel/iommu_groups/ID. */
static inline bool group_matches(json_object *g, unsigned *n_relaxable, char *why,
                                 size_t why_size) {
        uint64_t id = get_u64(g, "id");
        char path[PATH_MAX], buf[1024], *save = NULL;
        json_object *devs = NULL, *regions = NULL;
        size_t n_sys = 0, n_regions = 0;
        struct dirent *de;
        DIR *d;

        snprintf(path, sizeof(path), "/sys/kernel/iommu_groups/%" PRIu64 "/type", id);
        if (read_file(path, buf, sizeof(buf)) >= 0 && !streq(buf, get_str(g, "type"))) {
                snprintf(why, why_size, "group %" PRIu64 ": type %s, sysfs %s", id,
                         get_str(g, "type"), buf);
                return false;
        }

        json_object_object_get_ex(g, "devices", &devs);
        snprintf(path, sizeof(path), "/sys/kernel/iommu_groups/%" PRIu64 "/devices", id);
        d = opendir(path);
        if (!d) {
                snprintf(why, why_size, "group %" PRIu64 " is not in sysfs", id);
                return false;
        }
        while ((de = readdir(d))) {
                bool found = false;

                if (de->d_name[0] == '.')
                        continue;
                n_sys++;
                for (size_t i = 0; devs && i < json_object_array_length(devs); i++)
                        found = found || streq(json_object_get_string(
                                                 json_object_array_get_idx(devs, i)), de->d_name);
                if (!found) {
                        snprintf(why, why_size, "group %" PRIu64 ": %s missing", id, de->d_name);
                        closedir(d);
                        return false;
                }
        }
        closedir(d);
        if (!devs || json_object_array_length(devs) != n_sys) {
                snprintf(why, why_size, "group %" PRIu64 ": %zu devices, sysfs %zu", id,
                         devs ? json_object_array_length(devs) : 0, n_sys);
                return false;
        }

        json_object_object_get_ex(g, "reservedRegions", &regions);
        snprintf(path, sizeof(path), "/sys/kernel/iommu_groups/%" PRIu64 "/reserved_regions", id);
        if (read_file(path, buf, sizeof(buf)) < 0)
                buf[0] = '\0';
        for (char *line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
                unsigned long long start, last;
                char type[32];
                bool found = false;

                if (sscanf(line, "%llx %llx %31s", &start, &last, type) != 3)
                        continue;
                n_regions++;
                if (streq(type, "direct-relaxable"))
                        (*n_relaxable)++;
                for (size_t i = 0; regions && i < json_object_array_length(regions); i++) {
                        json_object *r = json_object_array_get_idx(regions, i);

                        found = found || (get_u64(r, "start") == start &&
                                          get_u64(r, "last") == last &&
                                          streq(get_str(r, "type"), region_type_name(type)));
                }
                if (!found) {
                        snprintf(why, why_size, "group %" PRIu64 ": region %s not reported", id,
                                 line);
                        return false;
                }
        }
        if (!regions || json_object_array_length(regions) != n_regions) {
                snprintf(why, why_size, "group %" PRIu64 ": %zu regions, sysfs %zu", id,
                         regions ? json_object_array_length(regions) : 0, n_regions);
                return false;
        }
        return true;
}

static inline void test_topology(VarlinkClient *c) {
        _cleanup_(varlink_reply_clear) VarlinkReply rep = VARLINK_REPLY_INIT;
        json_object *p, *groups = NULL;
        const char *error;
        unsigned n_relaxable = 0, n_sys = 0;
        struct dirent *de;
        bool all = true;
        char why[2048] = "";
        DIR *d;

        p = call(c, "GetTopology", NULL, NULL, 0, &rep, &error);
        tap(!error, "GetTopology answers%s%s", error ? ": " : "", error ?: "");
        if (error)
                return;
        json_object_object_get_ex(p, "groups", &groups);
        d = opendir("/sys/kernel/iommu_groups");
        while (d && (de = readdir(d)))
                if (de->d_name[0] != '.')
                        n_sys++;
        if (d)
                closedir(d);
        tap(groups && json_object_array_length(groups) == n_sys,
            "GetTopology lists the kernel's %u IOMMU groups (got %zu)", n_sys,
            groups ? json_object_array_length(groups) : 0);
        for (size_t i = 0; groups && i < json_object_array_length(groups); i++)
                if (!group_matches(json_object_array_get_idx(groups, i), &n_relaxable, why,
                                   sizeof(why))) {
                        all = false;
                        break;
                }
        tap(all, "every group's members, type and reserved regions match sysfs%s%s",
            all ? "" : ": ", all ? "" : why);
        if (streq(getenv("IOMMUD_KVM_MODE") ?: "", "intel"))
                tap(n_relaxable >= 1, "the chipset group's direct-relaxable region is reported "
                    "(%u found)", n_relaxable);
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

/* Mappings of memfds named name* in the daemon (the MAP_FILE fallback's footprint). */
static inline unsigned daemon_memfd_maps_named(const char *name) {
        char path[64], line[512], want[128];
        unsigned n = 0;
        FILE *f;

        snprintf(path, sizeof(path), "/proc/%d/maps", (int)daemon_pid);
        snprintf(want, sizeof(want), "/memfd:%s", name);
        f = fopen(path, "re");
        if (!f)
                return 0;
        while (fgets(line, sizeof(line), f))
                if (strstr(line, want))
                        n++;
        fclose(f);
        return n;
}

static inline unsigned daemon_memfd_maps(void) {
        return daemon_memfd_maps_named("iommud-guest-broker");
}

/* Open fds of the daemon (/proc/PID/fd), -errno. */
static inline int daemon_fds(void) {
        char path[64];
        struct dirent *de;
        DIR *d;
        int n = 0;

        snprintf(path, sizeof(path), "/proc/%d/fd", (int)daemon_pid);
        d = opendir(path);
        if (!d)
                return -errno;
        while ((de = readdir(d)))
                n += de->d_name[0] != '.';
        closedir(d);
        return n;
}

/* Map of length bytes of fd from offset at iova (UINT64_MAX: iommud picks); the IOVA, or
 * UINT64_MAX with *error set. */
static inline uint64_t map_at(VarlinkClient *c, uint64_t ioas, int fd, uint64_t offset,
                              uint64_t length, uint64_t iova, VarlinkReply *rep,
                              const char **error) {
        json_object *p = params("ioasId", u64(ioas), "memoryFd", json_object_new_int(0), "offset",
                                u64(offset), "length", u64(length), "readable",
                                json_object_new_boolean(true), "writeable",
                                json_object_new_boolean(true), NULL);

        if (iova != UINT64_MAX)
                json_object_object_add(p, "iova", u64(iova));
        p = call(c, "Map", p, &fd, 1, rep, error);
        return *error ? UINT64_MAX : get_u64(p, "iova");
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

static inline int set_driver(const char *bdf, const char *driver) {
        char path[PATH_MAX], cur[PATH_MAX];
        ssize_t n;

        snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/driver", bdf);
        n = readlink(path, cur, sizeof(cur) - 1);
        if (n >= 0) {
                snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/driver/unbind", bdf);
                if (write_file(path, bdf) < 0)
                        return -EIO;
        }
        snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/driver_override", bdf);
        if (write_file(path, driver) < 0)
                return -EIO;
        if (write_file("/sys/bus/pci/drivers_probe", bdf) < 0)
                return -EIO;
        snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/driver", bdf);
        n = readlink(path, cur, sizeof(cur) - 1);
        if (n < 0)
                return -ENODEV;
        cur[n] = '\0';
        return streq(strrchr(cur, '/') + 1, driver) ? 0 : -ENODEV;
}
