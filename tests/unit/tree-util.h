/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Helpers for tests that build or damage sysfs-shaped trees.  Trees go to
 * $TMPDIR, else /dev/shm (tmpfs keeps the many small files cheap), else /tmp.
 * Paths are relative to a root given as an absolute path.
 */

#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "macros.h"

static inline char *tree_tmpdir(const char *tag) {
        const char *base = getenv("TMPDIR");
        char *p;

        if (!base || !base[0])
                base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
        assert_true(asprintf(&p, "%s/iommud-test-%s-XXXXXX", base, tag) > 0);
        assert_non_null(mkdtemp(p));
        return p;
}

static inline void tree_path(char *buf, size_t size, const char *root, const char *rel) {
        assert_true((size_t)snprintf(buf, size, "%s/%s", root, rel) < size);
}

static inline void tree_mkdir_parents(const char *root, const char *rel) {
        char path[PATH_MAX];

        tree_path(path, sizeof(path), root, rel);
        for (char *p = path + strlen(root) + 1; *p; p++)
                if (*p == '/') {
                        *p = '\0';
                        (void)mkdir(path, 0755);
                        *p = '/';
                }
}

static inline void tree_put_file(const char *root, const char *rel, const char *content) {
        char path[PATH_MAX];
        FILE *f;

        tree_mkdir_parents(root, rel);
        tree_path(path, sizeof(path), root, rel);
        (void)unlink(path);
        f = fopen(path, "we");
        assert_non_null(f);
        fputs(content, f);
        assert_int_equal(fclose(f), 0);
}

static inline void tree_put_dir(const char *root, const char *rel) {
        char path[PATH_MAX];

        tree_mkdir_parents(root, rel);
        tree_path(path, sizeof(path), root, rel);
        assert_true(mkdir(path, 0755) == 0 || errno == EEXIST);
}

static inline void tree_put_link(const char *root, const char *rel, const char *target) {
        char path[PATH_MAX];

        tree_mkdir_parents(root, rel);
        tree_path(path, sizeof(path), root, rel);
        (void)unlink(path);
        assert_int_equal(symlink(target, path), 0);
}

static inline void tree_unlink(const char *root, const char *rel) {
        char path[PATH_MAX];

        tree_path(path, sizeof(path), root, rel);
        assert_int_equal(unlink(path), 0);
}

/* Copies the tree at src into the existing directory root: symlinks as symlinks, modes kept. */
static const char *tree_copy_dst;
static size_t tree_copy_src_len;

static inline int tree_copy_one(const char *path, const struct stat *st, int type,
                                struct FTW *ftw) {
        char dst[PATH_MAX], buf[PATH_MAX];
        ssize_t n;
        FILE *in, *out;

        (void)ftw;
        tree_path(dst, sizeof(dst), tree_copy_dst, path + tree_copy_src_len);
        switch (type) {
        case FTW_D:
                assert_true(mkdir(dst, st->st_mode & 07777) == 0 || errno == EEXIST);
                break;
        case FTW_SL:
                n = readlink(path, buf, sizeof(buf) - 1);
                assert_true(n > 0);
                buf[n] = '\0';
                assert_int_equal(symlink(buf, dst), 0);
                break;
        case FTW_F:
                assert_non_null(in = fopen(path, "re"));
                assert_non_null(out = fopen(dst, "we"));
                while ((n = (ssize_t)fread(buf, 1, sizeof(buf), in)) > 0)
                        assert_int_equal(fwrite(buf, 1, (size_t)n, out), (size_t)n);
                assert_int_equal(fclose(in), 0);
                assert_int_equal(fclose(out), 0);
                assert_int_equal(chmod(dst, st->st_mode & 07777), 0);
                break;
        default:
                fail_msg("cannot copy %s", path);
        }
        return 0;
}

static inline void tree_copy(const char *src, const char *root) {
        tree_copy_dst = root;
        tree_copy_src_len = strlen(src);
        assert_int_equal(nftw(src, tree_copy_one, 16, FTW_PHYS), 0);
}

static inline int tree_rm_one(const char *path, const struct stat *st, int type,
                              struct FTW *ftw) {
        (void)st, (void)type, (void)ftw;
        assert_int_equal(remove(path), 0);
        return 0;
}

static inline void tree_rm_rf(const char *path) {
        /* Only trees made by tree_tmpdir(). */
        assert_true(strstr(path, "/iommud-test-") != NULL);
        assert_int_equal(nftw(path, tree_rm_one, 16, FTW_DEPTH | FTW_PHYS), 0);
}
