/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

#include "base64.h"

static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int base64_encode(const void *data, size_t n, char **ret) {
        const uint8_t *p = data;
        char *out, *o;

        if (n > (SIZE_MAX - 1) / 4 * 3 - 3)
                return -ENOMEM;
        out = malloc((n + 2) / 3 * 4 + 1);
        if (!out)
                return -ENOMEM;
        o = out;
        for (size_t i = 0; i < n; i += 3) {
                uint32_t v = (uint32_t)p[i] << 16;

                if (i + 1 < n)
                        v |= (uint32_t)p[i + 1] << 8;
                if (i + 2 < n)
                        v |= p[i + 2];
                *o++ = alphabet[(v >> 18) & 63];
                *o++ = alphabet[(v >> 12) & 63];
                *o++ = i + 1 < n ? alphabet[(v >> 6) & 63] : '=';
                *o++ = i + 2 < n ? alphabet[v & 63] : '=';
        }
        *o = '\0';
        *ret = out;
        return 0;
}

static int sextet(char c) {
        if (c >= 'A' && c <= 'Z')
                return c - 'A';
        if (c >= 'a' && c <= 'z')
                return c - 'a' + 26;
        if (c >= '0' && c <= '9')
                return c - '0' + 52;
        if (c == '+')
                return 62;
        if (c == '/')
                return 63;
        return -1;
}

int base64_decode(const char *text, size_t len, void **ret, size_t *ret_n) {
        size_t pad = 0, n;
        uint8_t *out;

        if (len % 4 != 0)
                return -EINVAL;
        while (pad < 2 && pad < len && text[len - 1 - pad] == '=')
                pad++;
        n = len / 4 * 3 - pad;
        out = malloc(n + 1);
        if (!out)
                return -ENOMEM;
        for (size_t i = 0, k = 0; i < len; i += 4) {
                uint32_t v = 0;

                for (size_t j = 0; j < 4; j++) {
                        int s = i + j >= len - pad ? 0 : sextet(text[i + j]);

                        if (s < 0) {
                                free(out);
                                return -EINVAL;
                        }
                        v = v << 6 | (uint32_t)s;
                }
                for (size_t j = 0; j < 3 && k < n; j++)
                        out[k++] = (uint8_t)(v >> (16 - 8 * j));
        }
        *ret = out;
        *ret_n = n;
        return 0;
}
