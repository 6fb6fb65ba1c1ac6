/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The marks printed for people: UTF-8 where the locale's character set is UTF-8, ASCII
 * otherwise (LANG=C, a serial console), so that no terminal shows mojibake.
 */

#include <stdbool.h>

typedef enum Glyph {
        GLYPH_CHECK,    /* ✓  or "+" */
        GLYPH_CROSS,    /* ✗  or "x" */
        GLYPH_ELLIPSIS, /* …  or "..." */
        _GLYPH_MAX,
} Glyph;

/* Whether LC_ALL, else LC_CTYPE, else LANG names a UTF-8 locale. */
bool locale_is_utf8(void);
const char *glyph(Glyph g);
