/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <ctype.h>
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <linux/openat2.h>

#include "topology.h"

/*
 * Everything is read relative to the sysfs root fd.  Symlinks are never
 * followed by the kernel on our behalf: their targets are read with
 * readlinkat(), joined to the directory that holds the link, normalized, and
 * refused when absolute or when ".." would climb above the root.  The
 * resulting root-relative path is then opened with openat2(RESOLVE_BENEATH)
 * where the kernel has it, so that even an intermediate component cannot
 * lead out of the tree.
 */

#define PROBLEM_MESSAGE_MAX 256
#define ATTR_MAX 4096

typedef struct TopologyPrivate {
        Topology pub;
        TopoDevice **by_cdev; /* devices with a cdev, sorted by (major, minor) */
        size_t n_by_cdev;
} TopologyPrivate;

/*
 * A device's directory, kept until the IOMMU instances are read: the
 * instances' device lists name the IOMMU of almost every device, and only
 * a device none of them lists has its own "iommu" link read.
 */
typedef struct PendingIommuLink {
        TopoDevice *device;
        char *dev_path;
} PendingIommuLink;

typedef struct Loader {
        int root_fd;
        TopologyPrivate *tp;
        size_t allocated_groups, allocated_devices, allocated_problems, allocated_iommus;
        PendingIommuLink *links;
        size_t n_links, allocated_links;
        /* Driver directories already found to exist: hosts have few drivers and many devices. */
        char *seen_targets[32];
        size_t n_seen_targets;
} Loader;

static const struct {
        const char *name; /* the kernel's */
        const char *idl;  /* org.iommud.Broker's */
} region_type_names[_REGION_TYPE_MAX] = {
        [REGION_DIRECT] = { "direct", "direct" },
        [REGION_DIRECT_RELAXABLE] = { "direct-relaxable", "direct_relaxable" },
        [REGION_RESERVED] = { "reserved", "reserved" },
        [REGION_MSI] = { "msi", "msi" },
        [REGION_UNKNOWN] = { "unknown", "unknown" },
};

const char *region_type_to_string(RegionType t) {
        if ((unsigned)t >= _REGION_TYPE_MAX)
                return NULL;
        return region_type_names[t].name;
}

const char *region_type_to_idl(RegionType t) {
        if ((unsigned)t >= _REGION_TYPE_MAX)
                return NULL;
        return region_type_names[t].idl;
}

RegionType region_type_from_string(const char *s) {
        if (!s)
                return REGION_UNKNOWN;
        /* "unknown" itself is not a kernel type, so it is not matched. */
        for (RegionType t = 0; t < REGION_UNKNOWN; t++)
                if (streq(region_type_names[t].name, s))
                        return t;
        return REGION_UNKNOWN;
}

void reserved_regions_free(ReservedRegion *r, size_t n) {
        if (!r)
                return;
        for (size_t i = 0; i < n; i++)
                free(r[i].type_name);
        free(r);
}

/* Parses "0x" followed by 1 to 16 hex digits, the whole word. */
static bool parse_hex_u64(const char *s, size_t n, uint64_t *ret) {
        uint64_t v = 0;

        if (n < 3 || n > 18 || s[0] != '0' || (s[1] != 'x' && s[1] != 'X'))
                return false;
        for (size_t i = 2; i < n; i++) {
                int c = (unsigned char)s[i], d;

                if (c >= '0' && c <= '9')
                        d = c - '0';
                else if (c >= 'a' && c <= 'f')
                        d = c - 'a' + 10;
                else if (c >= 'A' && c <= 'F')
                        d = c - 'A' + 10;
                else
                        return false;
                v = (v << 4) | (uint64_t)d;
        }
        *ret = v;
        return true;
}

/*
 * Parses one reserved_regions line (without its newline).  On failure writes
 * a sentence to msg and returns false.
 */
static bool region_parse_line(const char *line, size_t n, ReservedRegion *ret, char *msg,
                              size_t msg_size) {
        const char *field[4];
        size_t field_len[4], n_fields = 0;
        uint64_t start, last;

        if (memchr(line, '\0', n)) {
                snprintf(msg, msg_size, "line contains a NUL byte");
                return false;
        }
        for (size_t i = 0; i < n;) {
                while (i < n && (line[i] == ' ' || line[i] == '\t'))
                        i++;
                if (i >= n)
                        break;
                size_t b = i;
                while (i < n && line[i] != ' ' && line[i] != '\t')
                        i++;
                if (n_fields < ELEMENTSOF(field)) {
                        field[n_fields] = line + b;
                        field_len[n_fields] = i - b;
                }
                n_fields++;
        }
        if (n_fields != 3) {
                snprintf(msg, msg_size, "expected 3 fields (start, end, type), got %zu", n_fields);
                return false;
        }
        if (!parse_hex_u64(field[0], field_len[0], &start)) {
                snprintf(msg, msg_size, "start '%.*s' is not a hex address", (int)MIN(field_len[0], 40),
                         field[0]);
                return false;
        }
        if (!parse_hex_u64(field[1], field_len[1], &last)) {
                snprintf(msg, msg_size, "end '%.*s' is not a hex address", (int)MIN(field_len[1], 40),
                         field[1]);
                return false;
        }
        if (start > last) {
                snprintf(msg, msg_size, "start 0x%016" PRIx64 " is above end 0x%016" PRIx64, start,
                         last);
                return false;
        }

        char *name = strndup(field[2], field_len[2]);
        if (!name) {
                snprintf(msg, msg_size, "out of memory");
                return false;
        }
        *ret = (ReservedRegion){
                .start = start,
                .last = last,
                .type = region_type_from_string(name),
                .type_name = name,
        };
        return true;
}

static int region_cmp(const void *a, const void *b) {
        const ReservedRegion *x = a, *y = b;

        if (x->start != y->start)
                return x->start < y->start ? -1 : 1;
        if (x->last != y->last)
                return x->last < y->last ? -1 : 1;
        return 0;
}

typedef void (*RegionProblemFn)(void *userdata, unsigned line, const char *msg);

/*
 * Parses every line; bad lines go to problem() (or stop the parse when
 * problem is NULL, with the line in *ret_bad_line and the sentence in msg).
 */
static int regions_parse_full(const char *text, size_t len, RegionProblemFn problem,
                              void *userdata, ReservedRegion **ret, size_t *ret_n,
                              unsigned *ret_bad_line, char *msg, size_t msg_size) {
        ReservedRegion *regions = NULL;
        size_t n = 0, allocated = 0;
        unsigned line_no = 0;

        for (size_t pos = 0; pos < len;) {
                const char *nl = memchr(text + pos, '\n', len - pos);
                size_t line_len = nl ? (size_t)(nl - (text + pos)) : len - pos;
                ReservedRegion r;

                line_no++;
                if (n >= allocated) {
                        size_t na = allocated ? allocated * 2 : 4;
                        ReservedRegion *nr = reallocarray(regions, na, sizeof(*regions));
                        if (!nr) {
                                reserved_regions_free(regions, n);
                                return -ENOMEM;
                        }
                        regions = nr;
                        allocated = na;
                }
                if (region_parse_line(text + pos, line_len, &r, msg, msg_size))
                        regions[n++] = r;
                else if (problem)
                        problem(userdata, line_no, msg);
                else {
                        reserved_regions_free(regions, n);
                        *ret_bad_line = line_no;
                        return -EINVAL;
                }
                pos += line_len + (nl ? 1 : 0);
        }

        if (n > 1)
                qsort(regions, n, sizeof(*regions), region_cmp);
        if (n == 0) {
                free(regions);
                regions = NULL;
        }
        *ret = regions;
        *ret_n = n;
        return 0;
}

int reserved_regions_parse(const char *text, size_t len, ReservedRegion **ret, size_t *ret_n,
                           Error *err) {
        char msg[PROBLEM_MESSAGE_MAX];
        ReservedRegion *regions;
        unsigned bad_line = 0;
        size_t n;
        int r;

        r = regions_parse_full(text, len, NULL, NULL, &regions, &n, &bad_line, msg, sizeof(msg));
        if (r == -ENOMEM)
                return error_set(err, r, "out of memory parsing reserved regions");
        if (r < 0)
                return error_set(err, r, "line %u: %s", bad_line, msg);
        *ret = regions;
        *ret_n = n;
        return 0;
}

/* ---- paths and files below the root ---- */

/*
 * Root-relative paths for problem reports.  A path that does not fit could not
 * have been opened either, so truncating it only shortens a message.
 */
static void path_join(char *buf, size_t size, const char *dir, const char *name) {
        if (snprintf(buf, size, "%s/%s", dir, name) >= (int)size)
                buf[size - 1] = '\0';
}

static int openat_beneath(int dir_fd, const char *path, int flags, bool allow_symlinks) {
        static bool have_openat2 = true;
        int fd;

        /* One component that is not a symlink cannot leave dir_fd: plain openat() with
         * O_NOFOLLOW says the same as RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS. */
        if (!allow_symlinks && !strchr(path, '/') && !streq(path, "..")) {
                fd = openat(dir_fd, path, flags | O_CLOEXEC | O_NOFOLLOW);
                return fd >= 0 ? fd : -errno;
        }

        if (have_openat2) {
                struct open_how how = {
                        .flags = (uint64_t)(flags | O_CLOEXEC),
                        .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS |
                                   (allow_symlinks ? 0 : RESOLVE_NO_SYMLINKS),
                };

                fd = (int)syscall(SYS_openat2, dir_fd, path, &how, sizeof(how));
                if (fd >= 0)
                        return fd;
                if (errno != ENOSYS && errno != EPERM)
                        return -errno;
                /* No openat2 (old kernel, or a seccomp filter): fall back below. */
                have_openat2 = false;
        }
        if (path[0] == '/')
                return -EXDEV;
        fd = openat(dir_fd, path, flags | O_CLOEXEC | (allow_symlinks ? 0 : O_NOFOLLOW));
        return fd >= 0 ? fd : -errno;
}

/*
 * Joins the symlink target to the root-relative directory holding the link
 * and normalizes "." and "..".  Returns -EXDEV for an absolute target or one
 * that climbs above the root.
 */
static int path_resolve_link(const char *link_dir, const char *target, char **ret) {
        size_t ld = strlen(link_dir), lt = strlen(target);
        _cleanup_free_ char *buf = NULL;
        char *out, *p;
        size_t out_len = 0;

        if (target[0] == '/')
                return -EXDEV;

        buf = malloc(ld + lt + 2);
        out = malloc(ld + lt + 2);
        if (!buf || !out) {
                free(out);
                return -ENOMEM;
        }
        memcpy(buf, link_dir, ld);
        buf[ld] = '/';
        memcpy(buf + ld + 1, target, lt + 1);

        p = buf;
        while (*p) {
                char *slash = strchr(p, '/');
                size_t n = slash ? (size_t)(slash - p) : strlen(p);

                if (n == 0 || (n == 1 && p[0] == '.')) {
                        /* skip */
                } else if (n == 2 && p[0] == '.' && p[1] == '.') {
                        if (out_len == 0) {
                                free(out);
                                return -EXDEV;
                        }
                        char *prev = memrchr(out, '/', out_len);
                        out_len = prev ? (size_t)(prev - out) : 0;
                } else {
                        if (out_len > 0)
                                out[out_len++] = '/';
                        memcpy(out + out_len, p, n);
                        out_len += n;
                }
                p += n;
                if (*p == '/')
                        p++;
        }
        out[out_len] = '\0';
        *ret = out;
        return 0;
}

static int readlink_malloc(int dir_fd, const char *name, char **ret) {
        char buf[PATH_MAX];
        ssize_t n;

        n = readlinkat(dir_fd, name, buf, sizeof(buf));
        if (n < 0)
                return -errno;
        if ((size_t)n >= sizeof(buf))
                return -ENAMETOOLONG;
        char *s = strndup(buf, (size_t)n);
        if (!s)
                return -ENOMEM;
        *ret = s;
        return 0;
}

/* Reads a small attribute file into buf (NUL-terminated); returns its length. */
static int read_attr(int dir_fd, const char *name, char *buf, size_t size) {
        _cleanup_close_ int fd = -EBADF;
        size_t len = 0;

        fd = openat_beneath(dir_fd, name, O_RDONLY, false);
        if (fd < 0)
                return fd;
        for (;;) {
                size_t want = size - 1 - len;
                ssize_t n = read(fd, buf + len, want);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (n == 0)
                        break;
                len += (size_t)n;
                if (len >= size - 1)
                        return -EFBIG;
                /* sysfs hands out a whole attribute at once and a regular file only reads
                 * short at its end: a short read is the end, which saves a read() per file. */
                if ((size_t)n < want)
                        break;
        }
        buf[len] = '\0';
        return (int)len;
}

/* ---- collecting results ---- */

static bool grow(void **array, size_t *allocated, size_t need, size_t elem) {
        if (need <= *allocated)
                return true;
        size_t na = MAX(*allocated * 2, MAX(need, (size_t)16));
        void *p = reallocarray(*array, na, elem);
        if (!p)
                return false;
        *array = p;
        *allocated = na;
        return true;
}

static int problem_add(Loader *l, const char *path, unsigned line, const char *fmt, ...)
        _printf_(4, 5);
static int problem_add(Loader *l, const char *path, unsigned line, const char *fmt, ...) {
        Topology *t = &l->tp->pub;
        char msg[PROBLEM_MESSAGE_MAX];
        va_list ap;

        if (!grow((void **)&t->problems, &l->allocated_problems, t->n_problems + 1,
                  sizeof(*t->problems)))
                return -ENOMEM;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);

        TopologyProblem *p = &t->problems[t->n_problems];
        p->path = strdup(path);
        p->message = strdup(msg);
        p->line = line;
        if (!p->path || !p->message) {
                free(p->path);
                free(p->message);
                return -ENOMEM;
        }
        t->n_problems++;
        return 0;
}

static void problem_errno(Loader *l, const char *path, int error, int *oom) {
        int r;

        if (error == -ENOENT)
                r = problem_add(l, path, 0, "missing");
        else if (error == -EXDEV || error == -ELOOP)
                r = problem_add(l, path, 0, "leads outside the sysfs root, not followed");
        else if (error == -EFBIG)
                r = problem_add(l, path, 0, "larger than %d bytes", ATTR_MAX - 1);
        else
                r = problem_add(l, path, 0, "cannot be read: %s", strerror(-error));
        if (r < 0)
                *oom = r;
}

/* ---- devices ---- */

static bool name_is_pci_bdf(const char *s) {
        /* DDDD:BB:DD.F, lower or upper hex */
        static const char pattern[] = "xxxx:xx:xx.x";

        if (strlen(s) != sizeof(pattern) - 1)
                return false;
        for (size_t i = 0; pattern[i]; i++) {
                if (pattern[i] == 'x') {
                        if (!isxdigit((unsigned char)s[i]))
                                return false;
                } else if (s[i] != pattern[i])
                        return false;
        }
        return s[11] >= '0' && s[11] <= '7';
}

static TopoDevice *topo_device_free(TopoDevice *d) {
        if (!d)
                return NULL;
        free(d->name);
        free(d->driver);
        free(d->cdev_name);
        free(d);
        return NULL;
}

/* Reads a "0x8086\n"-style attribute; what cannot be read becomes a problem. */
static void device_read_hex(Loader *l, int dev_fd, const char *dev_path, const char *attr,
                            uint32_t max, uint32_t *ret, bool *broken, int *oom) {
        char buf[64], path[PATH_MAX];
        uint64_t v;
        int r;

        path_join(path, sizeof(path), dev_path, attr);
        r = read_attr(dev_fd, attr, buf, sizeof(buf));
        if (r < 0) {
                problem_errno(l, path, r, oom);
                *broken = true;
                return;
        }
        size_t n = (size_t)r;
        bool truncated = n == 0 || buf[n - 1] != '\n';
        if (!truncated)
                n--;
        if (truncated || !parse_hex_u64(buf, n, &v) || v > max) {
                r = problem_add(l, path, 1, "expected a hex value up to 0x%x, got '%.*s'%s", max,
                                (int)MIN(n, 32), buf, truncated ? " (truncated line)" : "");
                if (r < 0)
                        *oom = r;
                *broken = true;
                return;
        }
        *ret = (uint32_t)v;
}

static void device_read_numa(Loader *l, int dev_fd, const char *dev_path, TopoDevice *d,
                             bool *broken, int *oom) {
        char buf[64], path[PATH_MAX], *end;
        long v;
        int r;

        r = read_attr(dev_fd, "numa_node", buf, sizeof(buf));
        if (r == -ENOENT)
                return; /* kernels without NUMA have no such file */
        path_join(path, sizeof(path), dev_path, "numa_node");
        if (r < 0) {
                problem_errno(l, path, r, oom);
                *broken = true;
                return;
        }
        errno = 0;
        v = strtol(buf, &end, 10);
        if (errno != 0 || end == buf || *end != '\n' || end[1] != '\0' || v < -1 || v > 65535) {
                r = problem_add(l, path, 1, "expected a NUMA node number or -1, got '%.*s'",
                                (int)strcspn(buf, "\n"), buf);
                if (r < 0)
                        *oom = r;
                *broken = true;
                return;
        }
        d->numa_node = (int)v;
}

/*
 * Reads the basename of a symlink in the device directory ("driver",
 * "iommu").  Absolute links and, when check_target is set, links whose target
 * does not exist become problems.  *ret stays NULL when there is no link.
 */
static void device_read_link_name(Loader *l, int dev_fd, const char *dev_path, const char *attr,
                                  bool check_target, char **ret, bool *broken, int *oom) {
        _cleanup_free_ char *target = NULL, *resolved = NULL;
        char path[PATH_MAX];
        int r;

        r = readlink_malloc(dev_fd, attr, &target);
        if (r == -ENOENT)
                return;
        path_join(path, sizeof(path), dev_path, attr);
        if (r == -EINVAL) {
                r = problem_add(l, path, 0, "not a symlink");
                goto fail;
        }
        if (r < 0) {
                problem_errno(l, path, r, oom);
                *broken = true;
                return;
        }
        r = path_resolve_link(dev_path, target, &resolved);
        if (r == -EXDEV) {
                r = problem_add(l, path, 0, "symlink target '%s' leads outside the sysfs root, "
                                "not followed", target);
                goto fail;
        }
        if (r < 0)
                goto fail;
        if (check_target) {
                bool seen = false;

                for (size_t i = 0; i < l->n_seen_targets && !seen; i++)
                        seen = streq(l->seen_targets[i], resolved);
                if (!seen) {
                        _cleanup_close_ int fd = openat_beneath(l->root_fd, resolved, O_PATH, true);
                        if (fd < 0) {
                                r = problem_add(l, path, 0, "symlink target '%s' does not exist",
                                                target);
                                goto fail;
                        }
                        if (l->n_seen_targets < ELEMENTSOF(l->seen_targets)) {
                                l->seen_targets[l->n_seen_targets] = strdup(resolved);
                                if (l->seen_targets[l->n_seen_targets])
                                        l->n_seen_targets++;
                        }
                }
        }

        const char *base = strrchr(resolved, '/');
        base = base ? base + 1 : resolved;
        if (!*base) {
                r = problem_add(l, path, 0, "symlink target '%s' names no entry", target);
                goto fail;
        }
        *ret = strdup(base);
        if (!*ret)
                *oom = -ENOMEM;
        return;
fail:
        if (r < 0)
                *oom = r;
        *broken = true;
}

/* Parses exactly n hex digits (either case) at s. */
static bool parse_hex_digits(const char *s, size_t n, uint32_t *ret) {
        uint32_t v = 0;

        for (size_t i = 0; i < n; i++) {
                int c = (unsigned char)s[i];

                if (!isxdigit(c))
                        return false;
                v = (v << 4) | (uint32_t)(isdigit(c) ? c - '0' : (c | 0x20) - 'a' + 10);
        }
        *ret = v;
        return true;
}

/* "VVVV:DDDD", as the kernel prints PCI_ID and PCI_SUBSYS_ID. */
static bool parse_id_pair(const char *s, size_t n, uint16_t *ret_a, uint16_t *ret_b) {
        uint32_t a, b;

        if (n != 9 || s[4] != ':' || !parse_hex_digits(s, 4, &a) || !parse_hex_digits(s + 5, 4, &b))
                return false;
        *ret_a = (uint16_t)a;
        *ret_b = (uint16_t)b;
        return true;
}

/* What a PCI device's uevent said; each field is used only when it was read cleanly. */
typedef struct Uevent {
        bool have_class, have_id, have_subsys;
        bool complete; /* read whole with no bad line: the absence of DRIVER= means unbound */
        uint32_t class;
        uint16_t vendor, device, subsystem_vendor, subsystem_device;
        char *driver;
} Uevent;

/*
 * Reads the uevent file the kernel's PCI core writes for every device
 * ("DRIVER=", "PCI_CLASS=%04X", "PCI_ID=%04X:%04X", "PCI_SUBSYS_ID=%04X:%04X",
 * "PCI_SLOT_NAME=", "MODALIAS=", one per line): one open and read instead of
 * five attribute files and the driver link.  A missing file is not a
 * problem; a garbled or truncated line is, naming the line, and whatever it
 * should have said is read from the attribute files instead.
 */
static void device_read_uevent(Loader *l, int dev_fd, const char *dev_path, const TopoDevice *d,
                               Uevent *u, int *oom) {
        char buf[ATTR_MAX], path[PATH_MAX];
        const char *p, *end;
        unsigned line = 0;
        bool bad = false, slot_ok = false;
        int r;

        r = read_attr(dev_fd, "uevent", buf, sizeof(buf));
        if (r == -ENOENT)
                return;
        path_join(path, sizeof(path), dev_path, "uevent");
        if (r < 0) {
                problem_errno(l, path, r, oom);
                return;
        }

        for (p = buf, end = buf + r; p < end && !bad; p++) {
                const char *nl = memchr(p, '\n', (size_t)(end - p)), *eq, *v;
                size_t n, kn, vn;

                line++;
                if (!nl) {
                        r = problem_add(l, path, line, "truncated line: no newline at its end, "
                                        "reading the attribute files instead");
                        bad = true;
                        break;
                }
                n = (size_t)(nl - p);
                eq = memchr(p, '=', n);
                if (!eq) {
                        r = problem_add(l, path, line, "expected KEY=VALUE, got '%.*s', reading "
                                        "the attribute files instead", (int)MIN(n, 64), p);
                        bad = true;
                        break;
                }
                kn = (size_t)(eq - p);
                v = eq + 1;
                vn = n - kn - 1;
                if (kn == 6 && strneq(p, "DRIVER", kn)) {
                        if (vn == 0 || vn > NAME_MAX || memchr(v, '/', vn)) {
                                r = problem_add(l, path, line, "expected a driver name, got "
                                                "'%.*s', reading the driver link instead",
                                                (int)MIN(vn, 64), v);
                                bad = true;
                        } else if (!u->driver && !(u->driver = strndup(v, vn)))
                                *oom = -ENOMEM;
                } else if (kn == 9 && strneq(p, "PCI_CLASS", kn)) {
                        u->have_class = vn >= 4 && vn <= 6 && parse_hex_digits(v, vn, &u->class);
                        if (!u->have_class) {
                                r = problem_add(l, path, line, "expected PCI_CLASS=CCCCCC, got "
                                                "'%.*s', reading the attribute files instead",
                                                (int)MIN(vn, 64), v);
                                bad = true;
                        }
                } else if (kn == 6 && strneq(p, "PCI_ID", kn)) {
                        u->have_id = parse_id_pair(v, vn, &u->vendor, &u->device);
                        if (!u->have_id) {
                                r = problem_add(l, path, line, "expected PCI_ID=VVVV:DDDD, got "
                                                "'%.*s', reading the attribute files instead",
                                                (int)MIN(vn, 64), v);
                                bad = true;
                        }
                } else if (kn == 13 && strneq(p, "PCI_SUBSYS_ID", kn)) {
                        u->have_subsys = parse_id_pair(v, vn, &u->subsystem_vendor,
                                                       &u->subsystem_device);
                        if (!u->have_subsys) {
                                r = problem_add(l, path, line, "expected PCI_SUBSYS_ID=SSSS:ssss, "
                                                "got '%.*s', reading the attribute files instead",
                                                (int)MIN(vn, 64), v);
                                bad = true;
                        }
                } else if (kn == 13 && strneq(p, "PCI_SLOT_NAME", kn)) {
                        slot_ok = vn == strlen(d->name) && strneq(v, d->name, vn);
                        if (!slot_ok) {
                                r = problem_add(l, path, line, "PCI_SLOT_NAME '%.*s' is not this "
                                                "device, reading the attribute files instead",
                                                (int)MIN(vn, 64), v);
                                bad = true;
                        }
                }
                p = nl;
        }
        if (bad && r < 0)
                *oom = r;
        /* A damaged file is trusted for nothing, and one without this device's slot name
         * may be another device's. */
        if (bad || !slot_ok)
                u->have_class = u->have_id = u->have_subsys = false;
        u->complete = u->have_class && u->have_id && u->have_subsys;
        if (!u->complete) {
                free(u->driver);
                u->driver = NULL;
        }
}

static void device_read_cdev(Loader *l, int dev_fd, const char *dev_path, TopoDevice *d,
                             bool *broken, int *oom) {
        _cleanup_close_ int vfd = -EBADF;
        DIR *dir;
        struct dirent *de;
        char path[PATH_MAX], buf[64];
        int r;

        vfd = openat_beneath(dev_fd, "vfio-dev", O_RDONLY | O_DIRECTORY, false);
        if (vfd == -ENOENT)
                return;
        if (vfd < 0) {
                path_join(path, sizeof(path), dev_path, "vfio-dev");
                problem_errno(l, path, vfd, oom);
                *broken = true;
                return;
        }
        int dfd = fcntl(vfd, F_DUPFD_CLOEXEC, 3);
        if (dfd < 0) {
                *oom = -errno;
                return;
        }
        dir = fdopendir(dfd);
        if (!dir) {
                *oom = -errno;
                safe_close(dfd);
                return;
        }
        while ((de = readdir(dir))) {
                unsigned maj, min;
                char tail;

                if (!strneq(de->d_name, "vfio", 4) || !isdigit((unsigned char)de->d_name[4]))
                        continue;
                snprintf(path, sizeof(path), "%s/vfio-dev/%s/dev", dev_path, de->d_name);
                char rel[NAME_MAX + 8];
                snprintf(rel, sizeof(rel), "%s/dev", de->d_name);
                r = read_attr(vfd, rel, buf, sizeof(buf));
                if (r < 0) {
                        problem_errno(l, path, r, oom);
                        *broken = true;
                        continue;
                }
                if (d->has_cdev) {
                        r = problem_add(l, path, 0, "second vfio cdev, ignoring");
                        if (r < 0)
                                *oom = r;
                        continue;
                }
                if (sscanf(buf, "%u:%u%c", &maj, &min, &tail) != 3 || tail != '\n' ||
                    (size_t)r != strlen(buf) || strchr(buf, '\n') != buf + r - 1) {
                        r = problem_add(l, path, 1, "expected MAJOR:MINOR, got '%.*s'",
                                        (int)strcspn(buf, "\n"), buf);
                        if (r < 0)
                                *oom = r;
                        *broken = true;
                        continue;
                }
                d->cdev_name = strdup(de->d_name);
                if (!d->cdev_name) {
                        *oom = -ENOMEM;
                        break;
                }
                d->has_cdev = true;
                d->cdev_major = maj;
                d->cdev_minor = min;
        }
        closedir(dir);
}

/*
 * Reads one member of a group.  The device is returned even when some of it
 * could not be read (with *broken set); only out-of-memory fails.
 */
static int device_load(Loader *l, int group_devices_fd, const char *group_devices_path,
                       const char *name, TopoDevice **ret, bool *broken) {
        _cleanup_free_ char *target = NULL, *dev_path = NULL;
        _cleanup_close_ int dev_fd = -EBADF;
        char link_path[PATH_MAX];
        bool driver_known = false;
        int r, oom = 0;

        TopoDevice *d = calloc(1, sizeof(*d));
        if (!d)
                return -ENOMEM;
        d->numa_node = -1;
        d->name = strdup(name);
        if (!d->name) {
                topo_device_free(d);
                return -ENOMEM;
        }
        d->is_pci = name_is_pci_bdf(name);

        path_join(link_path, sizeof(link_path), group_devices_path, name);
        r = readlink_malloc(group_devices_fd, name, &target);
        if (r < 0) {
                if (r == -EINVAL)
                        r = problem_add(l, link_path, 0, "not a symlink");
                else if (r == -ENOMEM)
                        goto oom;
                else
                        problem_errno(l, link_path, r, &oom), r = 0;
                goto broken;
        }
        r = path_resolve_link(group_devices_path, target, &dev_path);
        if (r == -EXDEV) {
                r = problem_add(l, link_path, 0, "symlink target '%s' leads outside the sysfs "
                                "root, not followed", target);
                goto broken;
        }
        if (r < 0)
                goto oom;
        dev_fd = openat_beneath(l->root_fd, dev_path, O_PATH | O_DIRECTORY, true);
        if (dev_fd < 0) {
                if (dev_fd == -ENOENT || dev_fd == -ENOTDIR)
                        r = problem_add(l, link_path, 0, "symlink target '%s' does not exist",
                                        target);
                else
                        problem_errno(l, link_path, dev_fd, &oom), r = 0;
                goto broken;
        }

        if (d->is_pci) {
                Uevent u = {};
                uint32_t v;

                device_read_uevent(l, dev_fd, dev_path, d, &u, &oom);
                if (u.have_id) {
                        d->vendor = u.vendor;
                        d->device = u.device;
                } else {
                        v = 0, device_read_hex(l, dev_fd, dev_path, "vendor", 0xffff, &v, broken,
                                               &oom);
                        d->vendor = (uint16_t)v;
                        v = 0, device_read_hex(l, dev_fd, dev_path, "device", 0xffff, &v, broken,
                                               &oom);
                        d->device = (uint16_t)v;
                }
                if (u.have_subsys) {
                        d->subsystem_vendor = u.subsystem_vendor;
                        d->subsystem_device = u.subsystem_device;
                } else {
                        v = 0, device_read_hex(l, dev_fd, dev_path, "subsystem_vendor", 0xffff,
                                               &v, broken, &oom);
                        d->subsystem_vendor = (uint16_t)v;
                        v = 0, device_read_hex(l, dev_fd, dev_path, "subsystem_device", 0xffff,
                                               &v, broken, &oom);
                        d->subsystem_device = (uint16_t)v;
                }
                if (u.have_class)
                        d->class = u.class;
                else
                        device_read_hex(l, dev_fd, dev_path, "class", 0xffffff, &d->class, broken,
                                        &oom);
                /* A complete uevent names the driver, or by leaving DRIVER= out says there
                 * is none. */
                driver_known = u.complete;
                d->driver = TAKE_PTR(u.driver);
        }
        device_read_numa(l, dev_fd, dev_path, d, broken, &oom);
        if (!driver_known) {
                bool link_broken = false;

                device_read_link_name(l, dev_fd, dev_path, "driver", true, &d->driver,
                                      &link_broken, &oom);
                driver_known = !link_broken;
                *broken = *broken || link_broken;
        }
        /* Only VFIO drivers (vfio-pci, its variants, vfio-platform) create a vfio cdev. */
        if (!driver_known || (d->driver && strstr(d->driver, "vfio")))
                device_read_cdev(l, dev_fd, dev_path, d, broken, &oom);
        if (oom < 0) {
                r = oom;
                goto oom;
        }
        /* The IOMMU is named by the instances' device lists, read later: keep where the
         * device lives in case none lists it. */
        if (!grow((void **)&l->links, &l->allocated_links, l->n_links + 1, sizeof(*l->links))) {
                r = -ENOMEM;
                goto oom;
        }
        l->links[l->n_links++] = (PendingIommuLink){ d, TAKE_PTR(dev_path) };
        *ret = d;
        return 0;

broken:
        *broken = true;
        if (r < 0 || oom < 0)
                goto oom;
        *ret = d;
        return 0;
oom:
        topo_device_free(d);
        return r < 0 ? r : -ENOMEM;
}

/* ---- groups ---- */

static void topo_group_free(TopoGroup *g) {
        if (!g)
                return;
        free(g->type);
        reserved_regions_free(g->regions, g->n_regions);
        free(g->devices);
        free(g);
}

static int device_ptr_cmp(const void *a, const void *b) {
        const TopoDevice *const *x = a, *const *y = b;
        return strcmp((*x)->name, (*y)->name);
}

typedef struct RegionProblemCtx {
        Loader *loader;
        const char *path;
        int r;
} RegionProblemCtx;

static void region_problem(void *userdata, unsigned line, const char *msg) {
        RegionProblemCtx *c = userdata;
        int r = problem_add(c->loader, c->path, line, "%s", msg);
        if (r < 0)
                c->r = r;
}

static int group_read_regions(Loader *l, int group_fd, const char *group_path, TopoGroup *g) {
        _cleanup_free_ char *buf = NULL;
        char path[PATH_MAX], msg[PROBLEM_MESSAGE_MAX];
        unsigned bad_line = 0;
        int r, oom = 0;

        path_join(path, sizeof(path), group_path, "reserved_regions");
        buf = malloc(ATTR_MAX);
        if (!buf)
                return -ENOMEM;
        r = read_attr(group_fd, "reserved_regions", buf, ATTR_MAX);
        if (r < 0) {
                problem_errno(l, path, r, &oom);
                g->broken = true;
                return oom;
        }

        RegionProblemCtx ctx = { .loader = l, .path = path };
        size_t before = l->tp->pub.n_problems;
        r = regions_parse_full(buf, (size_t)r, region_problem, &ctx, &g->regions, &g->n_regions,
                               &bad_line, msg, sizeof(msg));
        if (r < 0)
                return r;
        if (ctx.r < 0)
                return ctx.r;
        if (l->tp->pub.n_problems > before)
                g->broken = true;

        size_t len = strlen(buf);
        if (len > 0 && buf[len - 1] != '\n') {
                unsigned lines = 1;
                for (size_t i = 0; i < len; i++)
                        lines += buf[i] == '\n';
                g->broken = true;
                r = problem_add(l, path, lines, "truncated line: no newline at its end");
                if (r < 0)
                        return r;
        }

        /* Unknown types are kept (treated as reserved) and reported, but do not break a group. */
        for (size_t i = 0; i < g->n_regions; i++)
                if (g->regions[i].type == REGION_UNKNOWN) {
                        r = problem_add(l, path, 0, "unknown region type '%s' at 0x%016" PRIx64
                                        ", treated as reserved", g->regions[i].type_name,
                                        g->regions[i].start);
                        if (r < 0)
                                return r;
                }
        return 0;
}

static int group_read_type(Loader *l, int group_fd, const char *group_path, TopoGroup *g) {
        char buf[128], path[PATH_MAX];
        int r, oom = 0;

        path_join(path, sizeof(path), group_path, "type");
        r = read_attr(group_fd, "type", buf, sizeof(buf));
        if (r < 0) {
                problem_errno(l, path, r, &oom);
                g->broken = true;
                return oom;
        }
        size_t n = (size_t)r;
        if (n == 0 || buf[n - 1] != '\n' || memchr(buf, '\n', n) != buf + n - 1 || n == 1 ||
            strcspn(buf, " \t") < n - 1) {
                g->broken = true;
                return problem_add(l, path, 1, "expected one word and a newline, got '%.*s'",
                                   (int)strcspn(buf, "\n"), buf);
        }
        g->type = strndup(buf, n - 1);
        return g->type ? 0 : -ENOMEM;
}

static int topology_add_device(Loader *l, TopoDevice *d) {
        Topology *t = &l->tp->pub;

        if (!grow((void **)&t->devices, &l->allocated_devices, t->n_devices + 1,
                  sizeof(*t->devices)))
                return -ENOMEM;
        t->devices[t->n_devices++] = d;
        return 0;
}

static int group_read_devices(Loader *l, int group_fd, const char *group_path, TopoGroup *g) {
        _cleanup_close_ int dfd = -EBADF;
        char path[PATH_MAX];
        size_t allocated = 0;
        struct dirent *de;
        DIR *dir;
        int r = 0, oom = 0;

        path_join(path, sizeof(path), group_path, "devices");
        dfd = openat_beneath(group_fd, "devices", O_RDONLY | O_DIRECTORY, false);
        if (dfd < 0) {
                problem_errno(l, path, dfd, &oom);
                g->broken = true;
                return oom;
        }
        dir = fdopendir(dfd);
        if (!dir)
                return -errno;
        int dir_fd = TAKE_FD(dfd);

        while ((de = readdir(dir))) {
                TopoDevice *d = NULL;

                if (de->d_name[0] == '.')
                        continue;
                r = device_load(l, dir_fd, path, de->d_name, &d, &g->broken);
                if (r < 0)
                        break;
                d->group = g;
                r = topology_add_device(l, d);
                if (r < 0) {
                        /* d may already be in l->links: drop that entry with it. */
                        if (l->n_links > 0 && l->links[l->n_links - 1].device == d)
                                free(l->links[--l->n_links].dev_path);
                        topo_device_free(d);
                        break;
                }
                if (!grow((void **)&g->devices, &allocated, g->n_devices + 1,
                          sizeof(*g->devices))) {
                        r = -ENOMEM;
                        break;
                }
                g->devices[g->n_devices++] = d;
        }
        closedir(dir);
        if (r < 0)
                return r;
        if (g->n_devices > 1)
                qsort(g->devices, g->n_devices, sizeof(*g->devices), device_ptr_cmp);
        return 0;
}

static bool parse_group_id(const char *s, unsigned *ret) {
        unsigned long v;
        char *end;

        if (!isdigit((unsigned char)s[0]) || (s[0] == '0' && s[1]))
                return false;
        errno = 0;
        v = strtoul(s, &end, 10);
        if (errno || *end || v > UINT32_MAX)
                return false;
        *ret = (unsigned)v;
        return true;
}

static int group_load(Loader *l, int groups_fd, const char *name) {
        Topology *t = &l->tp->pub;
        _cleanup_close_ int gfd = -EBADF;
        char group_path[PATH_MAX];
        unsigned id;
        int r;

        snprintf(group_path, sizeof(group_path), "kernel/iommu_groups/%s", name);
        if (!parse_group_id(name, &id))
                return problem_add(l, group_path, 0, "not a decimal group number, ignoring");

        gfd = openat_beneath(groups_fd, name, O_RDONLY | O_DIRECTORY, false);
        if (gfd < 0) {
                int oom = 0;
                problem_errno(l, group_path, gfd, &oom);
                return oom;
        }

        TopoGroup *g = calloc(1, sizeof(*g));
        if (!g)
                return -ENOMEM;
        g->id = id;
        if (!grow((void **)&t->groups, &l->allocated_groups, t->n_groups + 1, sizeof(*t->groups))) {
                topo_group_free(g);
                return -ENOMEM;
        }
        t->groups[t->n_groups++] = g;

        r = group_read_type(l, gfd, group_path, g);
        if (r < 0)
                return r;
        r = group_read_regions(l, gfd, group_path, g);
        if (r < 0)
                return r;
        return group_read_devices(l, gfd, group_path, g);
}

/* ---- IOMMU instances ---- */

static void iommu_instance_free(IommuInstance *i) {
        if (!i)
                return;
        free(i->name);
        free(i->kind);
        free(i->devices);
        free(i);
}

static int iommu_ptr_cmp(const void *a, const void *b) {
        const IommuInstance *const *x = a, *const *y = b;
        return strcmp((*x)->name, (*y)->name);
}

static int iommu_load(Loader *l, int class_fd, const char *name) {
        Topology *t = &l->tp->pub;
        _cleanup_free_ char *target = NULL, *resolved = NULL;
        _cleanup_close_ int ifd = -EBADF, dfd = -EBADF;
        char path[PATH_MAX];
        const char *kind = "unknown";
        struct stat st;
        int r, oom = 0;

        snprintf(path, sizeof(path), "class/iommu/%s", name);
        r = readlink_malloc(class_fd, name, &target);
        if (r == -EINVAL) {
                /* A plain directory: accept it as the instance itself. */
                resolved = strdup(path);
                if (!resolved)
                        return -ENOMEM;
        } else if (r < 0) {
                if (r == -ENOMEM)
                        return r;
                problem_errno(l, path, r, &oom);
                return oom;
        } else {
                r = path_resolve_link("class/iommu", target, &resolved);
                if (r == -EXDEV)
                        return problem_add(l, path, 0, "symlink target '%s' leads outside the "
                                           "sysfs root, not followed", target);
                if (r < 0)
                        return r;
        }
        ifd = openat_beneath(l->root_fd, resolved, O_RDONLY | O_DIRECTORY, true);
        if (ifd < 0) {
                problem_errno(l, path, ifd, &oom);
                return oom;
        }

        if (fstatat(ifd, "intel-iommu", &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode))
                kind = "intel";
        else if (fstatat(ifd, "amd-iommu", &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode))
                kind = "amd";
        else if (strneq(name, "smmu3", 5))
                kind = "arm-smmu-v3";

        IommuInstance *inst = calloc(1, sizeof(*inst));
        if (!inst)
                return -ENOMEM;
        inst->name = strdup(name);
        inst->kind = strdup(kind);
        if (!inst->name || !inst->kind ||
            !grow((void **)&t->iommus, &l->allocated_iommus, t->n_iommus + 1, sizeof(*t->iommus))) {
                iommu_instance_free(inst);
                return -ENOMEM;
        }
        t->iommus[t->n_iommus++] = inst;

        dfd = openat_beneath(ifd, "devices", O_RDONLY | O_DIRECTORY, false);
        if (dfd == -ENOENT)
                return 0; /* an instance with no devices behind it */
        if (dfd < 0) {
                path_join(path, sizeof(path), resolved, "devices");
                problem_errno(l, path, dfd, &oom);
                return oom;
        }
        DIR *dir = fdopendir(dfd);
        if (!dir)
                return -errno;
        TAKE_FD(dfd);

        size_t allocated = 0;
        struct dirent *de;
        r = 0;
        while ((de = readdir(dir))) {
                if (de->d_name[0] == '.')
                        continue;
                /* Only devices that are in a group matter; others are not brokered. */
                TopoDevice *d = topology_find_device(t, de->d_name);
                if (!d)
                        continue;
                if (!grow((void **)&inst->devices, &allocated, inst->n_devices + 1,
                          sizeof(*inst->devices))) {
                        r = -ENOMEM;
                        break;
                }
                inst->devices[inst->n_devices++] = d;
        }
        closedir(dir);
        if (inst->n_devices > 1)
                qsort(inst->devices, inst->n_devices, sizeof(*inst->devices), device_ptr_cmp);
        return r;
}

static int iommus_load(Loader *l) {
        _cleanup_close_ int cfd = -EBADF;
        struct dirent *de;
        int r = 0;

        cfd = openat_beneath(l->root_fd, "class/iommu", O_RDONLY | O_DIRECTORY, false);
        if (cfd == -ENOENT)
                return 0; /* no IOMMU registered with the class: nothing to list */
        if (cfd < 0) {
                int oom = 0;
                problem_errno(l, "class/iommu", cfd, &oom);
                return oom;
        }
        DIR *dir = fdopendir(cfd);
        if (!dir)
                return -errno;
        int dir_fd = TAKE_FD(cfd);
        while ((de = readdir(dir))) {
                if (de->d_name[0] == '.')
                        continue;
                r = iommu_load(l, dir_fd, de->d_name);
                if (r < 0)
                        break;
        }
        closedir(dir);
        return r;
}

static IommuInstance *topology_find_iommu(const Topology *t, const char *name) {
        IommuInstance key = { .name = (char *)name }, *kp = &key, **found;

        if (t->n_iommus == 0)
                return NULL;
        found = bsearch(&kp, t->iommus, t->n_iommus, sizeof(*t->iommus), iommu_ptr_cmp);
        return found ? *found : NULL;
}

static int group_ptr_cmp(const void *a, const void *b) {
        const TopoGroup *const *x = a, *const *y = b;
        return (*x)->id < (*y)->id ? -1 : (*x)->id > (*y)->id;
}

static int cdev_cmp(const void *a, const void *b) {
        const TopoDevice *const *x = a, *const *y = b;

        if ((*x)->cdev_major != (*y)->cdev_major)
                return (*x)->cdev_major < (*y)->cdev_major ? -1 : 1;
        if ((*x)->cdev_minor != (*y)->cdev_minor)
                return (*x)->cdev_minor < (*y)->cdev_minor ? -1 : 1;
        return 0;
}

static int device_read_iommu_link(Loader *l, TopoDevice *d, const char *dev_path) {
        _cleanup_free_ char *name = NULL;
        _cleanup_close_ int dev_fd = -EBADF;
        bool broken = false;
        int oom = 0;

        dev_fd = openat_beneath(l->root_fd, dev_path, O_PATH | O_DIRECTORY, true);
        if (dev_fd < 0)
                return dev_fd == -ENOMEM ? dev_fd : 0; /* reported when the device was read */
        device_read_link_name(l, dev_fd, dev_path, "iommu", false, &name, &broken, &oom);
        if (oom < 0)
                return oom;
        if (broken && d->group)
                d->group->broken = true;
        if (name)
                d->iommu = topology_find_iommu(&l->tp->pub, name);
        return 0;
}

static int topology_finish(Loader *l) {
        TopologyPrivate *tp = l->tp;
        Topology *t = &tp->pub;
        int r;

        if (t->n_groups > 1)
                qsort(t->groups, t->n_groups, sizeof(*t->groups), group_ptr_cmp);
        if (t->n_devices > 1)
                qsort(t->devices, t->n_devices, sizeof(*t->devices), device_ptr_cmp);

        /* A device listed in two groups cannot be trusted in either. */
        for (size_t i = 1; i < t->n_devices; i++)
                if (streq(t->devices[i - 1]->name, t->devices[i]->name)) {
                        t->devices[i - 1]->group->broken = true;
                        t->devices[i]->group->broken = true;
                        r = problem_add(l, "kernel/iommu_groups", 0,
                                        "device %s is a member of groups %u and %u",
                                        t->devices[i]->name, t->devices[i - 1]->group->id,
                                        t->devices[i]->group->id);
                        if (r < 0)
                                return r;
                }

        r = iommus_load(l);
        if (r < 0)
                return r;
        if (t->n_iommus > 1)
                qsort(t->iommus, t->n_iommus, sizeof(*t->iommus), iommu_ptr_cmp);

        /*
         * The kernel links a device to its IOMMU and lists it under the IOMMU's devices in
         * one step, so the lists answer for every device and no per-device link needs
         * reading.  A device no list names (a hand-made or damaged tree) falls back to its
         * own iommu link.
         */
        for (size_t i = 0; i < t->n_iommus; i++)
                for (size_t j = 0; j < t->iommus[i]->n_devices; j++)
                        if (!t->iommus[i]->devices[j]->iommu)
                                t->iommus[i]->devices[j]->iommu = t->iommus[i];
        for (size_t i = 0; i < l->n_links; i++) {
                TopoDevice *d = l->links[i].device;

                if (d->iommu || !l->links[i].dev_path)
                        continue;
                r = device_read_iommu_link(l, d, l->links[i].dev_path);
                if (r < 0)
                        return r;
        }

        for (size_t i = 0; i < t->n_devices; i++)
                if (t->devices[i]->has_cdev)
                        tp->n_by_cdev++;
        if (tp->n_by_cdev > 0) {
                size_t k = 0;
                tp->by_cdev = calloc(tp->n_by_cdev, sizeof(*tp->by_cdev));
                if (!tp->by_cdev)
                        return -ENOMEM;
                for (size_t i = 0; i < t->n_devices; i++)
                        if (t->devices[i]->has_cdev)
                                tp->by_cdev[k++] = t->devices[i];
                qsort(tp->by_cdev, tp->n_by_cdev, sizeof(*tp->by_cdev), cdev_cmp);
        }
        return 0;
}

Topology *topology_free(Topology *t) {
        TopologyPrivate *tp = (TopologyPrivate *)t;

        if (!t)
                return NULL;
        for (size_t i = 0; i < t->n_devices; i++)
                topo_device_free(t->devices[i]);
        free(t->devices);
        for (size_t i = 0; i < t->n_groups; i++)
                topo_group_free(t->groups[i]);
        free(t->groups);
        for (size_t i = 0; i < t->n_iommus; i++)
                iommu_instance_free(t->iommus[i]);
        free(t->iommus);
        for (size_t i = 0; i < t->n_problems; i++) {
                free(t->problems[i].path);
                free(t->problems[i].message);
        }
        free(t->problems);
        free(tp->by_cdev);
        free(tp);
        return NULL;
}

int topology_load(Topology **ret, int sysfs_root_fd, Error *err) {
        _cleanup_(topology_freep) Topology *t = NULL;
        _cleanup_close_ int gfd = -EBADF;
        struct dirent *de;
        int r = 0;

        TopologyPrivate *tp = calloc(1, sizeof(*tp));
        if (!tp)
                return error_set(err, -ENOMEM, "out of memory loading the topology");
        t = &tp->pub;
        Loader l = { .root_fd = sysfs_root_fd, .tp = tp };

        gfd = openat_beneath(sysfs_root_fd, "kernel/iommu_groups", O_RDONLY | O_DIRECTORY, false);
        if (gfd < 0)
                return error_set(err, gfd, "cannot open kernel/iommu_groups below the sysfs root: %s",
                                 strerror(-gfd));
        DIR *dir = fdopendir(gfd);
        if (!dir)
                return error_set(err, -errno, "cannot list kernel/iommu_groups: %m");
        int dir_fd = TAKE_FD(gfd);
        while ((de = readdir(dir))) {
                if (de->d_name[0] == '.')
                        continue;
                r = group_load(&l, dir_fd, de->d_name);
                if (r < 0)
                        break;
        }
        closedir(dir);
        if (r >= 0)
                r = topology_finish(&l);
        for (size_t i = 0; i < l.n_links; i++)
                free(l.links[i].dev_path);
        free(l.links);
        for (size_t i = 0; i < l.n_seen_targets; i++)
                free(l.seen_targets[i]);
        if (r < 0)
                return error_set(err, r, "cannot load the topology: %s", strerror(-r));

        *ret = TAKE_PTR(t);
        return 0;
}

int topology_load_path(Topology **ret, const char *sysfs_root, Error *err) {
        _cleanup_close_ int fd = -EBADF;

        fd = open(sysfs_root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return error_set(err, -errno, "cannot open sysfs root %s: %m", sysfs_root);
        return topology_load(ret, fd, err);
}

/* ---- lookups ---- */

TopoDevice *topology_find_device(const Topology *t, const char *name) {
        TopoDevice key = { .name = (char *)name }, *kp = &key, **found;

        if (!t || !name || t->n_devices == 0)
                return NULL;
        found = bsearch(&kp, t->devices, t->n_devices, sizeof(*t->devices), device_ptr_cmp);
        return found ? *found : NULL;
}

TopoDevice *topology_find_device_by_cdev(const Topology *t, unsigned major, unsigned minor) {
        const TopologyPrivate *tp = (const TopologyPrivate *)t;
        TopoDevice key = { .cdev_major = major, .cdev_minor = minor }, *kp = &key, **found;

        if (!t || tp->n_by_cdev == 0)
                return NULL;
        found = bsearch(&kp, tp->by_cdev, tp->n_by_cdev, sizeof(*tp->by_cdev), cdev_cmp);
        return found ? *found : NULL;
}

TopoGroup *topology_find_group(const Topology *t, unsigned id) {
        TopoGroup key = { .id = id }, *kp = &key, **found;

        if (!t || t->n_groups == 0)
                return NULL;
        found = bsearch(&kp, t->groups, t->n_groups, sizeof(*t->groups), group_ptr_cmp);
        return found ? *found : NULL;
}

bool topo_device_is_bridge(const TopoDevice *d) {
        /* Base class 0x06 (bridge), subclass 0x04 PCI-to-PCI or 0x09 semi-transparent P2P. */
        if (!d || !d->is_pci)
                return false;
        uint32_t sub = (d->class >> 8) & 0xffff;
        return sub == 0x0604 || sub == 0x0609;
}

/* ---- JSON ---- */

/*
 * JSON layout (keys always in this order; absent values are null, never
 * missing):
 *
 *   {"groups": [{"id": 7, "type": "DMA", "broken": false,
 *                "devices": ["0000:00:02.0", ...],
 *                "reserved_regions": [{"start": "0x00000000fee00000",
 *                                      "last": "0x00000000feefffff",
 *                                      "type": "msi"}, ...]}, ...],
 *    "devices": [<topo_device_to_json>, ...],
 *    "iommus": [{"name": "dmar0", "kind": "intel", "devices": ["0000:00:02.0", ...]}, ...],
 *    "problems": [{"path": "kernel/iommu_groups/7/type", "line": 1, "message": "..."}, ...]}
 *
 * Arrays are sorted as in Topology (groups by id, devices and IOMMUs by name,
 * problems in discovery order).  IDs and addresses are lower-case hex
 * strings with a fixed width: "0x8086" (16-bit IDs), "0x010802" (class),
 * "0x00000000fee00000" (addresses), so output diffs cleanly and u64 values
 * survive JSON readers that use doubles.  "type" of a region is the word as
 * read, so unknown types show up verbatim.
 */

static json_object *json_hex(uint64_t v, int width) {
        char buf[32];

        snprintf(buf, sizeof(buf), "0x%0*" PRIx64, width, v);
        return json_object_new_string(buf);
}

static json_object *json_string_or_null(const char *s) {
        return s ? json_object_new_string(s) : NULL;
}

/* json_object_object_add() takes the reference even on failure; track allocation failure. */
static bool json_add(json_object *o, const char *key, json_object *v, bool may_be_null) {
        if (!v && !may_be_null)
                return false;
        return json_object_object_add(o, key, v) == 0;
}

int topo_device_to_json(const TopoDevice *d, json_object **ret) {
        json_object *o = json_object_new_object(), *cdev = NULL;
        bool ok;

        if (!o)
                return -ENOMEM;
        if (d->has_cdev) {
                cdev = json_object_new_object();
                if (!cdev || !json_add(cdev, "name", json_string_or_null(d->cdev_name), false) ||
                    !json_add(cdev, "major", json_object_new_int64(d->cdev_major), false) ||
                    !json_add(cdev, "minor", json_object_new_int64(d->cdev_minor), false)) {
                        json_object_put(cdev);
                        json_object_put(o);
                        return -ENOMEM;
                }
        }
        ok = json_add(o, "name", json_object_new_string(d->name), false) &&
             json_add(o, "pci", json_object_new_boolean(d->is_pci), false) &&
             json_add(o, "vendor", json_hex(d->vendor, 4), false) &&
             json_add(o, "device", json_hex(d->device, 4), false) &&
             json_add(o, "subsystem_vendor", json_hex(d->subsystem_vendor, 4), false) &&
             json_add(o, "subsystem_device", json_hex(d->subsystem_device, 4), false) &&
             json_add(o, "class", json_hex(d->class, 6), false) &&
             json_add(o, "driver", json_string_or_null(d->driver), true) &&
             json_add(o, "numa_node", json_object_new_int(d->numa_node), false) &&
             json_add(o, "cdev", cdev, true) &&
             json_add(o, "group", d->group ? json_object_new_int64(d->group->id) : NULL, true) &&
             json_add(o, "iommu", d->iommu ? json_object_new_string(d->iommu->name) : NULL, true);
        if (!ok) {
                json_object_put(o);
                return -ENOMEM;
        }
        *ret = o;
        return 0;
}

static json_object *json_device_names(TopoDevice *const *devices, size_t n) {
        json_object *a = json_object_new_array_ext((int)n);

        if (!a)
                return NULL;
        for (size_t i = 0; i < n; i++) {
                json_object *s = json_object_new_string(devices[i]->name);
                if (!s || json_object_array_add(a, s) < 0) {
                        json_object_put(s);
                        json_object_put(a);
                        return NULL;
                }
        }
        return a;
}

static int group_to_json(const TopoGroup *g, json_object **ret) {
        json_object *o = json_object_new_object(), *regions = json_object_new_array();
        bool ok;

        if (!o || !regions)
                goto oom;
        for (size_t i = 0; i < g->n_regions; i++) {
                json_object *r = json_object_new_object();
                if (!r || json_object_array_add(regions, r) < 0) {
                        json_object_put(r);
                        goto oom;
                }
                if (!json_add(r, "start", json_hex(g->regions[i].start, 16), false) ||
                    !json_add(r, "last", json_hex(g->regions[i].last, 16), false) ||
                    !json_add(r, "type", json_object_new_string(g->regions[i].type_name), false))
                        goto oom;
        }
        ok = json_add(o, "id", json_object_new_int64(g->id), false) &&
             json_add(o, "type", json_string_or_null(g->type), true) &&
             json_add(o, "broken", json_object_new_boolean(g->broken), false) &&
             json_add(o, "devices", json_device_names(g->devices, g->n_devices), false) &&
             json_add(o, "reserved_regions", TAKE_PTR(regions), false);
        if (!ok)
                goto oom;
        *ret = o;
        return 0;
oom:
        json_object_put(regions);
        json_object_put(o);
        return -ENOMEM;
}

static int iommu_to_json(const IommuInstance *i, json_object **ret) {
        json_object *o = json_object_new_object();

        if (!o || !json_add(o, "name", json_object_new_string(i->name), false) ||
            !json_add(o, "kind", json_object_new_string(i->kind), false) ||
            !json_add(o, "devices", json_device_names(i->devices, i->n_devices), false)) {
                json_object_put(o);
                return -ENOMEM;
        }
        *ret = o;
        return 0;
}

static int problem_to_json(const TopologyProblem *p, json_object **ret) {
        json_object *o = json_object_new_object();

        if (!o || !json_add(o, "path", json_object_new_string(p->path), false) ||
            !json_add(o, "line", json_object_new_int64(p->line), false) ||
            !json_add(o, "message", json_object_new_string(p->message), false)) {
                json_object_put(o);
                return -ENOMEM;
        }
        *ret = o;
        return 0;
}

int topology_to_json(const Topology *t, json_object **ret) {
        json_object *o = json_object_new_object(), *a;
        int r;

        if (!o)
                return -ENOMEM;

#define ADD_ARRAY(key, n, conv, elem)                                                              \
        do {                                                                                       \
                a = json_object_new_array_ext((int)(n));                                           \
                if (!a || json_object_object_add(o, key, a) < 0) {                                 \
                        json_object_put(a);                                                        \
                        goto oom;                                                                  \
                }                                                                                  \
                for (size_t i = 0; i < (n); i++) {                                                 \
                        json_object *e;                                                            \
                        r = conv(elem, &e);                                                        \
                        if (r < 0)                                                                 \
                                goto oom;                                                          \
                        if (json_object_array_add(a, e) < 0) {                                     \
                                json_object_put(e);                                                \
                                goto oom;                                                          \
                        }                                                                          \
                }                                                                                  \
        } while (0)

        ADD_ARRAY("groups", t->n_groups, group_to_json, t->groups[i]);
        ADD_ARRAY("devices", t->n_devices, topo_device_to_json, t->devices[i]);
        ADD_ARRAY("iommus", t->n_iommus, iommu_to_json, t->iommus[i]);
        ADD_ARRAY("problems", t->n_problems, problem_to_json, &t->problems[i]);
#undef ADD_ARRAY

        *ret = o;
        return 0;
oom:
        json_object_put(o);
        return -ENOMEM;
}
