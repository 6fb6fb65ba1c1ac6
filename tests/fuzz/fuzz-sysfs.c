/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * topology_load() over a small materialized sysfs tree in which one entry
 * holds the input.  Bits 0-6 of the first byte pick the entry (modulo their
 * number: the regular files in name order, then the symlinks in name order);
 * the rest replaces a file's content or a symlink's target (up to the first
 * NUL).  Bit 7 set and nothing after the first byte removes the entry instead,
 * and so does an empty symlink target.  The entry is restored after every
 * input, so each input sees the same tree but for one entry.
 */

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>

#include "fuzz.h"
#include "macros.h"
#include "topology-json.h"
#include "topology.h"

typedef struct SysfsFile {
        char *path; /* relative to sys/ */
        bool link;
        char *content; /* a symlink's target, NUL-terminated */
        size_t size;
        mode_t mode;
} SysfsFile;

static char sys_root[4096];
static size_t sys_root_len;
static int sys_fd = -EBADF;
static SysfsFile *files;
static size_t n_files;

static int file_cmp(const void *a, const void *b) {
        const SysfsFile *x = a, *y = b;

        if (x->link != y->link)
                return x->link ? 1 : -1;
        return strcmp(x->path, y->path);
}

static int write_file(const char *path, const void *data, size_t size, mode_t mode) {
        _cleanup_close_ int fd = openat(sys_fd, path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW,
                                        mode);
        const char *p = data;

        if (fd < 0)
                return -errno;
        while (size > 0) {
                ssize_t n = write(fd, p, size);

                if (n < 0)
                        return -errno;
                p += n;
                size -= (size_t)n;
        }
        return 0;
}

static int set_link(const char *path, const char *target) {
        if (unlinkat(sys_fd, path, 0) < 0 && errno != ENOENT)
                return -errno;
        if (target[0] && symlinkat(target, sys_fd, path) < 0)
                return -errno;
        return 0;
}

static int collect(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
        _cleanup_close_ int fd = -EBADF;
        SysfsFile *f;
        ssize_t n;

        if (!(flag == FTW_F && S_ISREG(st->st_mode)) && flag != FTW_SL)
                return 0;
        f = reallocarray(files, n_files + 1, sizeof(*files));
        if (!f)
                abort();
        files = f;
        f = &files[n_files];
        *f = (SysfsFile){
                .path = strdup(path + sys_root_len + 1),
                .link = flag == FTW_SL,
                .content = malloc((size_t)st->st_size + 1),
                .size = (size_t)st->st_size,
                .mode = st->st_mode & 07777,
        };
        if (!f->path || !f->content)
                abort();
        if (f->link) {
                n = readlink(path, f->content, f->size + 1);
                if (n <= 0 || (size_t)n != f->size)
                        abort();
                f->content[n] = '\0';
        } else {
                fd = open(path, O_RDONLY | O_CLOEXEC);
                if (fd < 0)
                        abort();
                n = read(fd, f->content, f->size + 1);
                if (n < 0 || (size_t)n != f->size)
                        abort();
        }
        n_files++;
        return 0;
}

static void sysfs_setup(void) {
        snprintf(sys_root, sizeof(sys_root), "%s/sys", fuzz_small_host());
        sys_root_len = strlen(sys_root);
        if (nftw(sys_root, collect, 16, FTW_PHYS) != 0 || n_files == 0)
                abort();
        qsort(files, n_files, sizeof(*files), file_cmp);
        sys_fd = open(sys_root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (sys_fd < 0)
                abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_(topology_freep) Topology *t = NULL;
        const SysfsFile *f;
        json_object *o = NULL;

        if (size < 1)
                return 0;
        if (sys_fd < 0)
                sysfs_setup();
        f = &files[(data[0] & 0x7f) % n_files];

        if ((data[0] & 0x80) && size == 1) {
                if (unlinkat(sys_fd, f->path, 0) < 0)
                        abort();
        } else if (f->link) {
                _cleanup_free_ char *target = fuzz_strndup(data + 1, MIN(size - 1, (size_t)4095));

                if (set_link(f->path, target) < 0)
                        abort();
        } else if (write_file(f->path, data + 1, size - 1, f->mode) < 0)
                abort();

        if (topology_load(&t, sys_fd, NULL) >= 0) {
                /* The JSON view walks every field, including what the damaged file left behind. */
                if (topology_to_json(t, &o) >= 0)
                        json_object_put(o);
                for (size_t i = 0; i < t->n_devices; i++)
                        if (topology_find_device(t, t->devices[i]->name) != t->devices[i])
                                abort();
        }

        if (f->link ? set_link(f->path, f->content) < 0
                    : write_file(f->path, f->content, f->size, f->mode) < 0)
                abort();
        return 0;
}
