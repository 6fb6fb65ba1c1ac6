/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#include "assert-util.h"
#include "fdstore.h"

#define STATE_MAGIC "IOMMUDST"
#define STATE_HEADER 32
static const char *const slot_names[2] = { "iommud-state-a", "iommud-state-b" };

typedef struct Stored {
        char *name;
        dev_t dev;
        ino_t ino;
} Stored;

struct FdStore {
        bool enabled;
        FdStoreEntry *passed;
        size_t n_passed;
        Stored *stored; /* what the service manager holds for us now */
        size_t n_stored;
        int slots[2];
        uint64_t generation;
        unsigned next_slot;
};

uint32_t fdstore_crc32(const void *data, size_t len) {
        const uint8_t *p = data;
        uint32_t crc = 0xffffffffu;

        for (size_t i = 0; i < len; i++) {
                crc ^= p[i];
                for (int k = 0; k < 8; k++)
                        crc = (crc >> 1) ^ (0xedb88320u & -(crc & 1u));
        }
        return ~crc;
}

static int stored_add(FdStore *s, const char *name, const struct stat *st) {
        Stored *a = realloc(s->stored, (s->n_stored + 1) * sizeof(*a));
        char *n;

        if (!a)
                return -ENOMEM;
        s->stored = a;
        n = strdup(name);
        if (!n)
                return -ENOMEM;
        a[s->n_stored++] = (Stored){ .name = n, .dev = st->st_dev, .ino = st->st_ino };
        return 0;
}

int fdstore_new(FdStore **ret, bool enabled) {
        _cleanup_(fdstore_freep) FdStore *s = NULL;
        char **names = NULL;
        int n;

        assert_return(ret, -EINVAL);

        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        s->enabled = enabled;
        s->slots[0] = s->slots[1] = -EBADF;

        n = sd_listen_fds_with_names(true, &names);
        if (n < 0)
                return n;
        if (n > 0) {
                s->passed = calloc((size_t)n, sizeof(FdStoreEntry));
                if (!s->passed) {
                        for (int i = 0; names && names[i]; i++)
                                free(names[i]);
                        free(names);
                        for (int i = 0; i < n; i++)
                                safe_close(SD_LISTEN_FDS_START + i);
                        return -ENOMEM;
                }
        }
        for (int i = 0; i < n; i++) {
                s->passed[i] = (FdStoreEntry){
                        .name = names ? names[i] : NULL,
                        .fd = SD_LISTEN_FDS_START + i,
                };
                if (!s->passed[i].name)
                        s->passed[i].name = strdup("unknown");
                (void)fcntl(s->passed[i].fd, F_SETFD, FD_CLOEXEC);
        }
        free(names);
        s->n_passed = (size_t)n;

        /* The service manager holds what it passed us until we remove it. */
        for (size_t i = 0; i < s->n_passed; i++) {
                struct stat st;

                if (!s->passed[i].name || fstat(s->passed[i].fd, &st) < 0 ||
                    S_ISSOCK(st.st_mode))
                        continue;
                if (stored_add(s, s->passed[i].name, &st) < 0)
                        return -ENOMEM;
        }
        *ret = TAKE_PTR(s);
        return 0;
}

FdStore *fdstore_free(FdStore *s) {
        if (!s)
                return NULL;
        for (size_t i = 0; i < s->n_passed; i++) {
                free(s->passed[i].name);
                safe_close(s->passed[i].fd);
        }
        free(s->passed);
        for (size_t i = 0; i < s->n_stored; i++)
                free(s->stored[i].name);
        free(s->stored);
        safe_close(s->slots[0]);
        safe_close(s->slots[1]);
        free(s);
        return NULL;
}

bool fdstore_enabled(const FdStore *s) {
        return s && s->enabled;
}

FdStoreEntry *fdstore_passed(FdStore *s, size_t *ret_n) {
        assert_return(s, NULL);
        assert_return(ret_n, NULL);

        *ret_n = s->n_passed;
        return s->passed;
}

int fdstore_take(FdStore *s, const char *name, int *ret_fd) {
        assert_return(s, -EINVAL);
        assert_return(name, -EINVAL);
        assert_return(ret_fd, -EINVAL);

        for (size_t i = 0; i < s->n_passed; i++)
                if (s->passed[i].fd >= 0 && s->passed[i].name && streq(s->passed[i].name, name)) {
                        *ret_fd = TAKE_FD(s->passed[i].fd);
                        return 0;
                }
        return -ENOENT;
}

size_t fdstore_close_unused(FdStore *s) {
        size_t n = 0;

        assert_return(s, 0);

        for (size_t i = 0; i < s->n_passed; i++)
                if (s->passed[i].fd >= 0) {
                        s->passed[i].fd = safe_close(s->passed[i].fd);
                        n++;
                }
        return n;
}

static int read_slot(int fd, char **ret, uint64_t *ret_gen) {
        uint8_t h[STATE_HEADER];
        uint32_t version, len, crc;
        uint64_t gen;
        char *p;

        if (pread(fd, h, sizeof(h), 0) != (ssize_t)sizeof(h) || memcmp(h, STATE_MAGIC, 8) != 0)
                return -EBADMSG;
        memcpy(&version, h + 8, 4);
        memcpy(&len, h + 12, 4);
        memcpy(&gen, h + 16, 8);
        memcpy(&crc, h + 24, 4);
        if (version != FDSTORE_STATE_VERSION)
                return -EPROTONOSUPPORT;
        p = malloc((size_t)len + 1);
        if (!p)
                return -ENOMEM;
        if (pread(fd, p, len, STATE_HEADER) != (ssize_t)len || fdstore_crc32(p, len) != crc) {
                free(p);
                return -EBADMSG;
        }
        p[len] = '\0';
        *ret = p;
        *ret_gen = gen;
        return 0;
}

int fdstore_read_state(FdStore *s, char **ret, Error *err) {
        _cleanup_free_ char *best = NULL;
        uint64_t best_gen = 0;
        int last_r = -ENOENT;

        assert_return(s, -EINVAL);
        assert_return(ret, -EINVAL);

        for (unsigned k = 0; k < 2; k++) {
                char *p = NULL;
                uint64_t gen;
                int fd = -EBADF, r;

                for (size_t i = 0; i < s->n_passed; i++)
                        if (s->passed[i].name && streq(s->passed[i].name, slot_names[k]))
                                fd = s->passed[i].fd;
                if (fd < 0)
                        continue;
                r = read_slot(fd, &p, &gen);
                if (r < 0) {
                        last_r = r;
                        continue;
                }
                if (!best || gen > best_gen) {
                        free(best);
                        best = p;
                        best_gen = gen;
                } else
                        free(p);
        }
        /* Keep writing after the newest generation, into the other slot. */
        for (unsigned k = 0; k < 2; k++) {
                int fd;

                if (fdstore_take(s, slot_names[k], &fd) >= 0)
                        s->slots[k] = fd;
        }
        if (!best)
                return error_set(err, last_r,
                                 last_r == -ENOENT ? "no state was passed"
                                 : last_r == -EPROTONOSUPPORT
                                         ? "the state has a format version this iommud does not read"
                                         : "both state slots are damaged (bad magic, length or CRC)");
        s->generation = best_gen;
        *ret = TAKE_PTR(best);
        return 0;
}

static int notify(const char *msg, const int *fds, size_t n) {
        int r = sd_pid_notify_with_fds(0, false, msg, fds, (unsigned)n);

        if (r < 0)
                return r;
        return r == 0 ? -ENOTCONN : 0;
}

static int store_one(FdStore *s, const char *name, int fd, const struct stat *st) {
        char msg[300];
        int r;

        snprintf(msg, sizeof(msg), "FDSTORE=1\nFDNAME=%s", name);
        r = notify(msg, &fd, 1);
        if (r < 0)
                return r;
        return stored_add(s, name, st);
}

static int remove_one(FdStore *s, size_t i) {
        char msg[300];
        int r;

        snprintf(msg, sizeof(msg), "FDSTOREREMOVE=1\nFDNAME=%s", s->stored[i].name);
        r = notify(msg, NULL, 0);
        free(s->stored[i].name);
        s->stored[i] = s->stored[--s->n_stored];
        return r;
}

int fdstore_sync(FdStore *s, const char *const *names, const int *fds, size_t n, Error *err) {
        int r;

        assert_return(s, -EINVAL);
        assert_return(n == 0 || (names && fds), -EINVAL);

        if (!s->enabled)
                return 0;
        for (size_t i = 0; i < s->n_stored;) {
                bool keep = false;

                if (strneq(s->stored[i].name, "iommud-state-", 13)) {
                        i++;
                        continue;
                }
                for (size_t k = 0; k < n && !keep; k++) {
                        struct stat st;

                        keep = streq(names[k], s->stored[i].name) && fstat(fds[k], &st) >= 0 &&
                               st.st_dev == s->stored[i].dev && st.st_ino == s->stored[i].ino;
                }
                if (keep) {
                        i++;
                        continue;
                }
                r = remove_one(s, i);
                if (r < 0)
                        return error_set(err, r, "FDSTOREREMOVE failed: %s", strerror(-r));
        }
        for (size_t k = 0; k < n; k++) {
                struct stat st;
                bool have = false;

                if (fstat(fds[k], &st) < 0)
                        return error_set(err, -errno, "fd of %s cannot be inspected: %m",
                                         names[k]);
                for (size_t i = 0; i < s->n_stored && !have; i++)
                        have = streq(names[k], s->stored[i].name);
                if (have)
                        continue;
                r = store_one(s, names[k], fds[k], &st);
                if (r < 0)
                        return error_set(err, r, "FDSTORE of %s failed: %s", names[k],
                                         strerror(-r));
        }
        return 0;
}

int fdstore_write_state(FdStore *s, const char *payload, size_t len, Error *err) {
        uint8_t h[STATE_HEADER] = {};
        uint32_t version = FDSTORE_STATE_VERSION, l = (uint32_t)len, crc;
        unsigned k;
        int fd, r;

        assert_return(s, -EINVAL);
        assert_return(payload || len == 0, -EINVAL);

        if (!s->enabled)
                return 0;
        if (len > UINT32_MAX)
                return error_set(err, -EFBIG, "the state is %zu bytes, over 4 GiB", len);
        for (k = 0; k < 2; k++) {
                struct stat st;

                if (s->slots[k] >= 0)
                        continue;
                s->slots[k] = memfd_create(slot_names[k], MFD_CLOEXEC);
                if (s->slots[k] < 0) {
                        s->slots[k] = -EBADF;
                        return error_set(err, -errno, "memfd_create failed: %m");
                }
                if (fstat(s->slots[k], &st) < 0)
                        return error_set(err, -errno, "fstat of a state memfd failed: %m");
                r = store_one(s, slot_names[k], s->slots[k], &st);
                if (r < 0)
                        return error_set(err, r, "FDSTORE of %s failed: %s", slot_names[k],
                                         strerror(-r));
        }

        k = (unsigned)((s->generation + 1) & 1);
        fd = s->slots[k];
        s->generation++;
        crc = fdstore_crc32(payload, len);
        memcpy(h, STATE_MAGIC, 8);
        memcpy(h + 8, &version, 4);
        memcpy(h + 12, &l, 4);
        memcpy(h + 16, &s->generation, 8);
        memcpy(h + 24, &crc, 4);
        /* Payload first, header last: a torn write fails the CRC, never passes it. */
        if (ftruncate(fd, (off_t)(STATE_HEADER + len)) < 0 ||
            pwrite(fd, payload, len, STATE_HEADER) != (ssize_t)len ||
            pwrite(fd, h, sizeof(h), 0) != (ssize_t)sizeof(h))
                return error_set(err, -errno ?: -EIO, "writing the state memfd failed: %m");
        return 0;
}
