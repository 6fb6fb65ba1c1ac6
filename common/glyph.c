/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "glyph.h"
#include "macros.h"

bool locale_is_utf8(void) {
        static const char *const vars[] = { "LC_ALL", "LC_CTYPE", "LANG" };

        /* The variables as setlocale() would read them, without changing the process's locale. */
        for (size_t i = 0; i < ELEMENTSOF(vars); i++) {
                const char *v = getenv(vars[i]), *dot;

                if (!v || !*v)
                        continue;
                dot = strchr(v, '.');
                return dot && (strncasecmp(dot + 1, "utf-8", 5) == 0 ||
                               strncasecmp(dot + 1, "utf8", 4) == 0);
        }
        return false;
}

const char *glyph(Glyph g) {
        static const char *const utf8[_GLYPH_MAX] = {
                [GLYPH_CHECK] = "✓",
                [GLYPH_CROSS] = "✗",
                [GLYPH_ELLIPSIS] = "…",
        };
        static const char *const ascii[_GLYPH_MAX] = {
                [GLYPH_CHECK] = "+",
                [GLYPH_CROSS] = "x",
                [GLYPH_ELLIPSIS] = "...",
        };
        static int utf8_locale = -1;

        if ((unsigned)g >= _GLYPH_MAX)
                return "";
        if (utf8_locale < 0)
                utf8_locale = locale_is_utf8();
        return utf8_locale ? utf8[g] : ascii[g];
}
