/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Helpers for tests that build or damage sysfs-shaped trees.  Trees go to
 * $TMPDIR, else /dev/shm (tmpfs keeps the many small files cheap), else /tmp.
 * Paths are relative to a root given as an absolute path.
 */

#include <errno.h>
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

static inline void tree_rm_rf(const char *path) {
        char cmd[PATH_MAX + 16];

        /* Only trees made by tree_tmpdir(). */
        assert_true(strstr(path, "/iommud-test-") != NULL);
        assert_true(strchr(path, 0x27) == NULL);
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", path);
        assert_int_equal(system(cmd), 0);
}
