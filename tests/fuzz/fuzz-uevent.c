/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * One datagram of the kernel's uevent socket, as recvmsg() returns it (not NUL-terminated
 * beyond its length, so that ASan catches a read past it): the parser and the relevance
 * filter the hotplug path applies to every message.
 */

#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "uevent.h"

/* A field the parser returns points into the input, at a string that ends inside it. */
static void check_field(const char *f, const uint8_t *data, size_t size) {
        if (!f)
                return;
        if ((const uint8_t *)f < data || (const uint8_t *)f >= data + size)
                abort();
        if (!memchr(f, '\0', size - (size_t)((const uint8_t *)f - data)))
                abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        uint8_t *copy = malloc(size ? size : 1);
        Uevent u;

        if (!copy)
                return 0;
        memcpy(copy, data, size);
        if (uevent_parse((const char *)copy, size, &u) == 0) {
                if (!u.action || !u.devpath)
                        abort();
                check_field(u.action, copy, size);
                check_field(u.devpath, copy, size);
                check_field(u.subsystem, copy, size);
                check_field(u.driver, copy, size);
                (void)uevent_is_relevant(&u);
        }
        free(copy);
        return 0;
}
