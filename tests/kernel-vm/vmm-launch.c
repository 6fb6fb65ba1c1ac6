/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Starts a VMM the way a management stack hands it pre-opened devices (libvirt's
 * "-object iommufd,fd=N -device vfio-pci,fd=M"): as root, opens /dev/iommu, switches it to
 * per-process pinned-memory accounting (IOMMU_OPTION_RLIMIT_MODE 1, which needs
 * CAP_SYS_RESOURCE and a context with no objects yet), opens each device's VFIO cdev without
 * binding it (the VMM binds it itself), raises RLIMIT_MEMLOCK, drops to an unprivileged
 * uid, places the fds at fixed numbers without O_CLOEXEC and execs the command.
 *
 *   vmm-launch [--uid UID] [--gid GID] [--memlock SIZE] --device BDF [--device BDF]... -- CMD ARGS...
 *
 * In ARGS, "{iommufd}" becomes the iommufd's number (3) and "{device:BDF}" that device's
 * (4, 5, ... in --device order): the command line shape of "iommuctl exec", so the kernel-vm
 * scenario can run either.  SIZE takes a K, M or G suffix.
 */

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include "guest-util.h"
#include "iommufd-abi.h"
#include "macros.h"

#define FIRST_FD 3
#define MAX_DEVICES 8
/* Where opened fds wait while the fixed numbers are cleared: above anything inherited. */
#define PARKING_FD 64

typedef struct Launch {
        uid_t uid;
        gid_t gid;
        bool drop;
        uint64_t memlock;
        const char *bdf[MAX_DEVICES];
        char cdev[MAX_DEVICES][PATH_MAX];
        size_t n_devices;
        char **argv;
} Launch;

static int parse_size(const char *s, uint64_t *ret) {
        char *end;
        unsigned long long v;

        errno = 0;
        v = strtoull(s, &end, 0);
        if (errno != 0 || end == s)
                return -EINVAL;
        switch (toupper((unsigned char)*end)) {
        case 'G': v <<= 10; _fallthrough_;
        case 'M': v <<= 10; _fallthrough_;
        case 'K': v <<= 10; end++; break;
        case 0: break;
        default: return -EINVAL;
        }
        if (*end != 0 && !(toupper((unsigned char)*end) == 'I' && end[1] == 'B' && end[2] == 0))
                return -EINVAL;
        *ret = v;
        return 0;
}

static int parse_id(const char *s, unsigned *ret) {
        char *end;
        unsigned long v;

        errno = 0;
        v = strtoul(s, &end, 10);
        if (errno != 0 || end == s || *end != 0 || v > INT_MAX)
                return -EINVAL;
        *ret = (unsigned)v;
        return 0;
}

static int parse_args(int argc, char **argv, Launch *l) {
        unsigned id = 0;
        int i, r;

        for (i = 1; i < argc && !streq(argv[i], "--"); i += 2) {
                const char *opt = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;

                if (!val)
                        return -EINVAL;
                r = -EINVAL;
                if (streq(opt, "--uid")) {
                        r = parse_id(val, &id);
                        l->uid = id;
                        l->drop = true;
                } else if (streq(opt, "--gid")) {
                        r = parse_id(val, &id);
                        l->gid = id;
                } else if (streq(opt, "--memlock"))
                        r = parse_size(val, &l->memlock);
                else if (streq(opt, "--device") && l->n_devices < MAX_DEVICES) {
                        l->bdf[l->n_devices++] = val;
                        r = 0;
                }
                if (r < 0)
                        return r;
        }
        if (i + 1 >= argc || l->n_devices == 0)
                return -EINVAL;
        if (l->drop && l->gid == (gid_t)-1)
                l->gid = l->uid;
        l->argv = argv + i + 1;
        return 0;
}

/* A fresh iommufd in per-process accounting mode: the VMM's pinned guest RAM is charged to
 * the VMM's own RLIMIT_MEMLOCK, not to everything its uid has pinned. */
static int open_iommufd(void) {
        struct iommud_option opt = {
                .size = sizeof(opt),
                .option_id = IOMMUD_IOMMU_OPTION_RLIMIT_MODE,
                .op = IOMMUD_IOMMU_OPTION_OP_SET,
                .val64 = 1,
        };
        _cleanup_close_ int fd = -EBADF;

        fd = open("/dev/iommu", O_RDWR | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        if (ioctl(fd, IOMMUD_IOMMU_OPTION, &opt) < 0)
                return -errno;
        return TAKE_FD(fd);
}

/* Moves the fds to FIRST_FD, FIRST_FD + 1, ... without O_CLOEXEC (dup2 clears it), whatever
 * numbers they had, even where a target number is one of the fds themselves. */
static int place_fds(int *fds, size_t n) {
        for (size_t i = 0; i < n; i++) {
                int parked = fcntl(fds[i], F_DUPFD_CLOEXEC, PARKING_FD);

                if (parked < 0)
                        return -errno;
                safe_close(fds[i]);
                fds[i] = parked;
        }
        for (size_t i = 0; i < n; i++) {
                if (dup2(fds[i], FIRST_FD + (int)i) < 0)
                        return -errno;
                safe_close(fds[i]);
                fds[i] = FIRST_FD + (int)i;
        }
        return 0;
}

static int drop_privileges(const Launch *l) {
        if (l->memlock > 0) {
                struct rlimit rl = { .rlim_cur = l->memlock, .rlim_max = l->memlock };

                if (setrlimit(RLIMIT_MEMLOCK, &rl) < 0)
                        return -errno;
        }
        if (!l->drop)
                return 0;
        if (setgroups(0, NULL) < 0 || setresgid(l->gid, l->gid, l->gid) < 0 ||
            setresuid(l->uid, l->uid, l->uid) < 0)
                return -errno;
        /* Must not be able to come back. */
        if (l->uid != 0 && setresuid(0, 0, 0) == 0)
                return -EPERM;
        return 0;
}

/* Replaces every placeholder in one argument; returns a new string. */
static char *substitute(const char *arg, const Launch *l) {
        char *out = NULL;
        size_t size = 0;
        FILE *f = open_memstream(&out, &size);

        if (!f)
                return NULL;
        while (*arg) {
                size_t i, skip = 0;
                int fd = -1;

                if (strneq(arg, "{iommufd}", 9)) {
                        fd = FIRST_FD;
                        skip = 9;
                }
                for (i = 0; fd < 0 && i < l->n_devices; i++) {
                        size_t n = strlen(l->bdf[i]);

                        if (strneq(arg, "{device:", 8) && strneq(arg + 8, l->bdf[i], n) &&
                            arg[8 + n] == '}') {
                                fd = FIRST_FD + 1 + (int)i;
                                skip = 9 + n;
                        }
                }
                if (fd >= 0) {
                        fprintf(f, "%d", fd);
                        arg += skip;
                } else
                        fputc(*arg++, f);
        }
        if (fclose(f) != 0) {
                free(out);
                return NULL;
        }
        return out;
}

static int fail(const char *what, int r) {
        fprintf(stderr, "vmm-launch: %s: %s\n", what, strerror(-r));
        return 1;
}

int main(int argc, char **argv) {
        Launch l = { .gid = (gid_t)-1 };
        int fds[1 + MAX_DEVICES];
        size_t n = 0;
        int r;

        if (parse_args(argc, argv, &l) < 0) {
                fprintf(stderr, "usage: %s [--uid UID] [--gid GID] [--memlock SIZE] "
                                "--device BDF [--device BDF]... -- CMD ARGS...\n", argv[0]);
                return 2;
        }
        r = open_iommufd();
        if (r < 0)
                return fail("open /dev/iommu and set IOMMU_OPTION_RLIMIT_MODE 1", r);
        fds[n++] = r;
        for (size_t i = 0; i < l.n_devices; i++) {
                r = vfio_cdev_path(l.bdf[i], l.cdev[i], sizeof(l.cdev[i]));
                if (r < 0)
                        return fail(l.bdf[i], r);
                r = open(l.cdev[i], O_RDWR | O_CLOEXEC);
                if (r < 0)
                        return fail(l.cdev[i], -errno);
                fds[n++] = r;
        }
        r = drop_privileges(&l);
        if (r < 0)
                return fail("memlock limit and uid", r);
        r = place_fds(fds, n);
        if (r < 0)
                return fail("place the fds", r);
        for (char **a = l.argv; *a; a++) {
                *a = substitute(*a, &l);
                if (!*a)
                        return fail("placeholders", -ENOMEM);
        }

        fprintf(stderr, "# vmm-launch: iommufd (RLIMIT_MODE per-process) at fd %d", FIRST_FD);
        for (size_t i = 0; i < l.n_devices; i++)
                fprintf(stderr, ", %s (%s) at fd %zu", l.bdf[i], l.cdev[i], FIRST_FD + 1 + i);
        fprintf(stderr, "; uid %u gid %u, memlock %" PRIu64 " bytes\n", (unsigned)getuid(),
                (unsigned)getgid(), l.memlock);
        execvp(l.argv[0], l.argv);
        fail(l.argv[0], -errno);
        return 127;
}
