/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "log.h"

static void help(void) {
        printf("iommud %s: broker for the Linux IOMMU user API (iommufd)\n\n"
               "Usage: iommud [OPTIONS]\n\n"
               "  -h --help      Show this help\n"
               "     --version   Show the version\n",
               PACKAGE_VERSION);
}

int main(int argc, char *argv[]) {
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, 'V' },
                {},
        };
        int c;

        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0)
                switch (c) {
                case 'h':
                        help();
                        return EXIT_SUCCESS;
                case 'V':
                        printf("iommud %s\n", PACKAGE_VERSION);
                        return EXIT_SUCCESS;
                default:
                        return EXIT_FAILURE;
                }

        log_error("Nothing to do yet.");
        return EXIT_FAILURE;
}
