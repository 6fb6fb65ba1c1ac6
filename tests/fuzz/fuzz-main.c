/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Replays corpus inputs through a fuzz target without libFuzzer: every
 * argument is a file or a directory of files (read in name order).  Used by
 * the fuzz-corpus test suite, so the corpus and the regression inputs run in
 * every build, under ASan and valgrind too.
 */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "file-util.h"
#include "fuzz.h"
#include "macros.h"

static int replay_file(int dir_fd, const char *path) {
        _cleanup_free_ char *text = NULL;
        _cleanup_free_ uint8_t *data = NULL;
        size_t size = 0;
        int r;

        r = file_util_read_at(dir_fd, path, 64u << 20, &text, &size);
        if (r < 0) {
                fprintf(stderr, "%s: %s\n", path, strerror(-r));
                return r;
        }
        /* As libFuzzer does: the exact bytes, in a buffer of exactly that size. */
        data = malloc(size ?: 1);
        if (!data)
                return -ENOMEM;
        memcpy(data, text, size);
        LLVMFuzzerTestOneInput(data, size);
        return 0;
}

static int name_cmp(const struct dirent **a, const struct dirent **b) {
        return strcmp((*a)->d_name, (*b)->d_name);
}

static int replay_dir(const char *path, unsigned *n) {
        _cleanup_close_ int dir_fd = -EBADF;
        struct dirent **entries = NULL;
        int k, r = 0;

        dir_fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dir_fd < 0)
                return -errno;
        k = scandir(path, &entries, NULL, name_cmp);
        if (k < 0)
                return -errno;
        for (int i = 0; i < k; i++) {
                struct stat st;

                if (r >= 0 && fstatat(dir_fd, entries[i]->d_name, &st, 0) == 0 &&
                    S_ISREG(st.st_mode)) {
                        r = replay_file(dir_fd, entries[i]->d_name);
                        if (r >= 0)
                                (*n)++;
                }
                free(entries[i]);
        }
        free(entries);
        return r;
}

int main(int argc, char *argv[]) {
        unsigned n = 0;

        if (argc < 2) {
                fprintf(stderr, "Usage: %s FILE|DIR...\n", argv[0]);
                return EXIT_FAILURE;
        }
        for (int i = 1; i < argc; i++) {
                struct stat st;
                int r;

                if (stat(argv[i], &st) < 0) {
                        fprintf(stderr, "%s: %s\n", argv[i], strerror(errno));
                        return EXIT_FAILURE;
                }
                if (S_ISDIR(st.st_mode))
                        r = replay_dir(argv[i], &n);
                else {
                        r = replay_file(AT_FDCWD, argv[i]);
                        if (r >= 0)
                                n++;
                }
                if (r < 0)
                        return EXIT_FAILURE;
        }
        /* An empty corpus is a mistake in the build, not a pass. */
        if (n == 0) {
                fprintf(stderr, "no inputs found\n");
                return EXIT_FAILURE;
        }
        printf("%u inputs replayed\n", n);
        return EXIT_SUCCESS;
}
