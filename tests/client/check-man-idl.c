/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Every method and error an interface definition declares is documented in
 * the socket API man page: methods as "*Name*(", errors by their full name.
 * usage: check-man-idl PAGE.scd IDL...   (prints TAP)
 */

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "file-util.h"
#include "macros.h"
#include "varlink-idl.h"

static char *read_file(const char *path) {
        char *text = NULL;

        return file_util_read_at(AT_FDCWD, path, 16u << 20, &text, NULL) < 0 ? NULL : text;
}

int main(int argc, char *argv[]) {
        _cleanup_free_ char *page = NULL;
        unsigned n = 0, failed = 0;

        if (argc < 3) {
                fprintf(stderr, "usage: %s PAGE IDL...\n", argv[0]);
                return 2;
        }
        page = read_file(argv[1]);
        if (!page) {
                printf("Bail out! cannot read %s\n", argv[1]);
                return 1;
        }
        for (int i = 2; i < argc; i++) {
                _cleanup_(varlink_idl_freep) VarlinkIdl *idl = NULL;
                _cleanup_free_ char *text = read_file(argv[i]);
                Error err = ERROR_INIT;

                if (!text || varlink_idl_parse(text, &idl, &err) < 0) {
                        printf("Bail out! cannot parse %s: %s\n", argv[i], error_message(&err));
                        return 1;
                }
                for (size_t j = 0; j < idl->n_methods; j++) {
                        char needle[256];
                        bool ok;

                        snprintf(needle, sizeof(needle), "*%s*(", idl->methods[j]);
                        ok = strstr(page, needle);
                        printf("%s %u - method %s.%s is documented\n", ok ? "ok" : "not ok", ++n,
                               idl->name, idl->methods[j]);
                        failed += !ok;
                }
                for (size_t j = 0; j < idl->n_errors; j++) {
                        char needle[256];
                        bool ok;

                        snprintf(needle, sizeof(needle), "*%s.%s*", idl->name, idl->errors[j]);
                        ok = strstr(page, needle);
                        printf("%s %u - error %s.%s is documented\n", ok ? "ok" : "not ok", ++n,
                               idl->name, idl->errors[j]);
                        failed += !ok;
                }
        }
        printf("1..%u\n", n);
        return failed > 0;
}
