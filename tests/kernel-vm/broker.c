/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "broker.h"
#include "guest-util.h"
#include "json-util.h"
#include "macros.h"

#define POLICY_PATH "/tmp/iommud-policy.json"
#define EMPTY_DIR "/tmp/iommud-empty.d"
#define NOTIFY_PATH "/run/iommud-notify"
#define STORE_MAX 128

const char *broker_iommud_path = "/usr/sbin/iommud";
pid_t broker_pid = -1;

/* systemd's part of the fd store protocol: what iommud sent with FDSTORE=1. */
static struct {
        bool on;
        int notify_fd;
        bool ready;
        char names[STORE_MAX][64];
        int fds[STORE_MAX];
        size_t n;
} store = { .notify_fd = -EBADF };

void broker_skip(const char *fmt, ...) {
        va_list ap;

        printf("ok - ");
        va_start(ap, fmt);
        vprintf(fmt, ap);
        va_end(ap);
        putchar('\n');
        fflush(stdout);
}

uint64_t broker_now_ns(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void broker_sleep_ms(unsigned ms) {
        struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000 };

        nanosleep(&ts, NULL);
}

int broker_write_file(const char *path, const char *text) {
        _cleanup_close_ int fd = open(path, O_WRONLY | O_CLOEXEC | O_CREAT | O_TRUNC, 0644);
        size_t n = strlen(text);

        if (fd < 0)
                return -errno;
        if (write(fd, text, n) != (ssize_t)n)
                return -EIO;
        return 0;
}

int broker_read_file(const char *path, char *buf, size_t size) {
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

/* ---- the fd store ---- */

static bool same_file(int a, int b) {
        struct stat sa, sb;

        return fstat(a, &sa) == 0 && fstat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
               sa.st_ino == sb.st_ino;
}

/* One notify datagram, handled as systemd does (an fd already stored is dropped). */
static void store_handle(const char *msg, int *fds, size_t n_fds) {
        const char *p = strstr(msg, "FDNAME=");
        bool keep = strstr(msg, "FDSTORE=1") != NULL;
        char name[64] = "stored";

        if (strstr(msg, "READY=1"))
                store.ready = true;
        if (p)
                snprintf(name, sizeof(name), "%.*s", (int)strcspn(p + 7, "\n"), p + 7);
        for (size_t i = 0; strstr(msg, "FDSTOREREMOVE=1") && i < store.n;) {
                if (!streq(store.names[i], name)) {
                        i++;
                        continue;
                }
                close(store.fds[i]);
                store.n--;
                store.fds[i] = store.fds[store.n];
                memcpy(store.names[i], store.names[store.n], sizeof(name));
        }
        for (size_t k = 0; k < n_fds; k++) {
                bool dup = false;

                for (size_t i = 0; keep && i < store.n && !dup; i++)
                        dup = same_file(store.fds[i], fds[k]);
                if (!keep || dup || store.n == STORE_MAX) {
                        close(fds[k]);
                        continue;
                }
                memcpy(store.names[store.n], name, sizeof(name));
                store.fds[store.n++] = fds[k];
        }
}

/* Reads the queued notify messages; with wait_ready, until READY=1 or the daemon died. */
static int store_pump(bool wait_ready) {
        for (;;) {
                char control[CMSG_SPACE(sizeof(int) * 32)], buf[4096];
                struct iovec iov = { buf, sizeof(buf) - 1 };
                struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control,
                                     .msg_controllen = sizeof(control) };
                struct pollfd pfd = { .fd = store.notify_fd, .events = POLLIN };
                int fds[32], status;
                size_t n_fds = 0;
                ssize_t n;

                if (poll(&pfd, 1, wait_ready && !store.ready ? 100 : 0) <= 0) {
                        if (!wait_ready || store.ready)
                                return 0;
                        if (waitpid(broker_pid, &status, WNOHANG) == broker_pid) {
                                broker_pid = -1;
                                return -ECHILD;
                        }
                        continue;
                }
                n = recvmsg(store.notify_fd, &mh, MSG_CMSG_CLOEXEC);
                if (n < 0)
                        return -errno;
                buf[n] = '\0';
                for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm))
                        if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS) {
                                size_t k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);

                                memcpy(fds + n_fds, CMSG_DATA(cm), k * sizeof(int));
                                n_fds += k;
                        }
                store_handle(buf, fds, n_fds);
        }
}

size_t broker_stored(const char *prefix) {
        size_t n = 0;

        (void)store_pump(false);
        for (size_t i = 0; i < store.n; i++)
                n += strneq(store.names[i], prefix, strlen(prefix));
        return n;
}

void broker_store_clear(void) {
        for (size_t i = 0; i < store.n; i++)
                close(store.fds[i]);
        store.n = 0;
        store.on = false;
        store.notify_fd = safe_close(store.notify_fd);
}

/* ---- the daemon ---- */

/* In the child: the stored fds at 3..N, the fd store's environment, then iommud. */
static _Noreturn void exec_daemon(void) {
        char names[STORE_MAX * 65] = "", num[32];
        int high[STORE_MAX];

        (void)prctl(PR_SET_PDEATHSIG, SIGKILL);
        for (size_t i = 0; i < store.n; i++)
                high[i] = fcntl(store.fds[i], F_DUPFD, 512);
        for (size_t i = 0; i < store.n; i++) {
                if (dup2(high[i], 3 + (int)i) < 0)
                        _exit(126);
                if (i > 0)
                        strcat(names, ":");
                strcat(names, store.names[i]);
        }
        unsetenv("LISTEN_FDS");
        unsetenv("LISTEN_FDNAMES");
        unsetenv("LISTEN_PID");
        if (store.on) {
                setenv("NOTIFY_SOCKET", NOTIFY_PATH, 1);
                setenv("FDSTORE", "256", 1);
        }
        if (store.n > 0) {
                snprintf(num, sizeof(num), "%zu", store.n);
                setenv("LISTEN_FDS", num, 1);
                setenv("LISTEN_FDNAMES", names, 1);
                snprintf(num, sizeof(num), "%d", (int)getpid());
                setenv("LISTEN_PID", num, 1);
        }
        execl(broker_iommud_path, broker_iommud_path, "--runtime-dir", BROKER_RUNTIME_DIR,
              "--policy", POLICY_PATH, "--policy-dir", EMPTY_DIR, "--vendor-policy-dir",
              EMPTY_DIR, "--log-level", "notice", NULL);
        _exit(127);
}

/* Forks iommud and waits for READY=1 (fd store) or its socket (TCG is slow: up to 60 s). */
static int launch(void) {
        uint64_t deadline = broker_now_ns() + UINT64_C(60) * 1000000000u;

        store.ready = false;
        broker_pid = fork();
        if (broker_pid < 0)
                return -errno;
        if (broker_pid == 0)
                exec_daemon();
        if (store.on)
                return store_pump(true);
        while (broker_now_ns() < deadline) {
                _cleanup_(varlink_client_freep) VarlinkClient *c = NULL;
                int status;

                if (varlink_client_connect(&c, BROKER_SOCKET) >= 0)
                        return 0;
                if (waitpid(broker_pid, &status, WNOHANG) == broker_pid) {
                        broker_pid = -1;
                        return -ECHILD;
                }
                broker_sleep_ms(50);
        }
        return -ETIMEDOUT;
}

int broker_start(bool fd_store) {
        const char *policy =
                "{\n"
                "  \"rules\": { \"all\": { \"action\": \"allow\", \"match\": \"*\" } },\n"
                "  \"grants\": { \"root\": { \"principals\": [ { \"user\": 0 } ],\n"
                "                           \"devices\": \"*\" } }\n"
                "}\n";
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int r;

        (void)mkdir(EMPTY_DIR, 0755);
        (void)mkdir(BROKER_RUNTIME_DIR, 0755);
        r = broker_write_file(POLICY_PATH, policy);
        if (r < 0)
                return r;
        broker_store_clear();
        if (fd_store) {
                store.notify_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
                if (store.notify_fd < 0)
                        return -errno;
                (void)unlink(NOTIFY_PATH);
                memcpy(sa.sun_path, NOTIFY_PATH, sizeof(NOTIFY_PATH));
                if (bind(store.notify_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
                        return -errno;
                store.on = true;
        }
        return launch();
}

int broker_stop(void) {
        int status = 0;

        if (broker_pid < 0)
                return 0;
        (void)kill(broker_pid, SIGTERM);
        (void)waitpid(broker_pid, &status, 0);
        broker_pid = -1;
        if (store.on)
                (void)store_pump(false);
        return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

int broker_restart(void) {
        int r = broker_stop();

        if (r != 0)
                return r < 0 ? -ECHILD : -EIO;
        return launch();
}

/* ---- calls ---- */

json_object *broker_call(VarlinkClient *c, const char *method, json_object *params,
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

json_object *broker_params(const char *key, ...) {
        json_object *o = json_object_new_object();
        va_list ap;

        va_start(ap, key);
        for (const char *k = key; k; k = va_arg(ap, const char *))
                json_object_object_add(o, k, va_arg(ap, json_object *));
        va_end(ap);
        return o;
}

json_object *broker_u64(uint64_t v) {
        return json_object_new_uint64(v);
}

uint64_t broker_get_u64(json_object *o, const char *key) {
        json_object *v;
        uint64_t x = UINT64_MAX;

        if (o && json_object_object_get_ex(o, key, &v))
                (void)json_util_to_u64(v, &x);
        return x;
}

const char *broker_get_str(json_object *o, const char *key) {
        json_object *v;

        if (o && json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_string))
                return json_object_get_string(v);
        return "";
}

int broker_open_cdev(const char *bdf) {
        char path[PATH_MAX];
        int r, fd;

        r = vfio_cdev_path(bdf, path, sizeof(path));
        if (r < 0)
                return r;
        fd = open(path, O_RDWR | O_CLOEXEC);
        return fd < 0 ? -errno : fd;
}

int64_t broker_attach(VarlinkClient *c, int cdev, VarlinkReply *rep, const char **error) {
        json_object *p = broker_call(c, "AttachDevice",
                                     broker_params("fd", json_object_new_int(0), NULL), &cdev, 1,
                                     rep, error);

        return *error ? -1 : (int64_t)broker_get_u64(p, "deviceId");
}

/* The daemon tears a closed session down from its event loop: DeviceBusy may answer a while. */
int64_t broker_attach_released(VarlinkClient *c, int cdev, VarlinkReply *rep,
                               const char **error) {
        int64_t id = -1;

        for (unsigned i = 0; i < 100; i++) {
                id = broker_attach(c, cdev, rep, error);
                if (!*error || !streq(*error, "org.iommud.Broker.DeviceBusy"))
                        break;
                broker_sleep_ms(30);
        }
        return id;
}

uint64_t broker_map(VarlinkClient *c, uint64_t ioas, int fd, uint64_t offset, uint64_t length,
                    uint64_t iova, VarlinkReply *rep, const char **error) {
        json_object *p = broker_params("ioasId", broker_u64(ioas), "memoryFd",
                                       json_object_new_int(0), "offset", broker_u64(offset),
                                       "length", broker_u64(length), "readable",
                                       json_object_new_boolean(true), "writeable",
                                       json_object_new_boolean(true), NULL);

        if (iova != UINT64_MAX)
                json_object_object_add(p, "iova", broker_u64(iova));
        p = broker_call(c, "Map", p, &fd, 1, rep, error);
        return *error ? UINT64_MAX : broker_get_u64(p, "iova");
}

/* ---- the daemon from outside ---- */

unsigned broker_daemon_memfd_maps(const char *memfd_name) {
        char path[64], line[512], want[128];
        unsigned n = 0;
        FILE *f;

        snprintf(path, sizeof(path), "/proc/%d/maps", (int)broker_pid);
        snprintf(want, sizeof(want), "/memfd:%s", memfd_name);
        f = fopen(path, "re");
        if (!f)
                return 0;
        while (fgets(line, sizeof(line), f))
                if (strstr(line, want))
                        n++;
        fclose(f);
        return n;
}

int broker_daemon_fds(void) {
        char path[64];
        struct dirent *de;
        DIR *d;
        int n = 0;

        snprintf(path, sizeof(path), "/proc/%d/fd", (int)broker_pid);
        d = opendir(path);
        if (!d)
                return -errno;
        while ((de = readdir(d)))
                n += de->d_name[0] != '.';
        closedir(d);
        return n;
}

int broker_set_driver(const char *bdf, const char *driver) {
        char path[PATH_MAX], cur[PATH_MAX];
        ssize_t n;

        snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/driver", bdf);
        n = readlink(path, cur, sizeof(cur) - 1);
        if (n >= 0) {
                snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/driver/unbind", bdf);
                if (broker_write_file(path, bdf) < 0)
                        return -EIO;
        }
        snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/driver_override", bdf);
        if (broker_write_file(path, driver) < 0)
                return -EIO;
        if (broker_write_file("/sys/bus/pci/drivers_probe", bdf) < 0)
                return -EIO;
        snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/driver", bdf);
        n = readlink(path, cur, sizeof(cur) - 1);
        if (n < 0)
                return -ENODEV;
        cur[n] = '\0';
        return streq(strrchr(cur, '/') + 1, driver) ? 0 : -ENODEV;
}
