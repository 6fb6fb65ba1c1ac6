/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Human tables for iommuctl: columns as wide as their widest cell, two spaces
 * apart, the flexible column shortened with "…" when the whole row would not
 * fit the terminal.  Widths count characters, not bytes, so UTF-8 cells line up.
 */

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "glyph.h"
#include "iommuctl.h"

struct Table {
        size_t n_columns;
        int flex;
        char **cells;            /* n_rows + 1 rows (the header first) */
        const char **colors;
        size_t n_rows;
};

/* Characters up to the end of s or the first newline. */
static size_t line_width(const char *s) {
        size_t n = 0;

        for (; *s && *s != '\n'; s++)
                if (((unsigned char)*s & 0xc0) != 0x80)
                        n++;
        return n;
}

/* The widest line of a cell; cells may hold several lines. */
static size_t text_width(const char *s) {
        size_t w = 0;

        for (;;) {
                w = MAX(w, line_width(s));
                s = strchr(s, '\n');
                if (!s)
                        return w;
                s++;
        }
}

/* The line-th line of a cell, or "" past its end; *ret_len is its length in bytes. */
static const char *cell_line(const char *s, size_t line, size_t *ret_len) {
        for (; line > 0 && s; line--) {
                s = strchr(s, '\n');
                if (s)
                        s++;
        }
        if (!s) {
                *ret_len = 0;
                return "";
        }
        *ret_len = strcspn(s, "\n");
        return s;
}

static size_t n_lines(const char *s) {
        size_t n = 1;

        for (; *s; s++)
                n += *s == '\n';
        return n;
}

int table_new(Table **ret, const char *const *headers, int flex) {
        _cleanup_(table_freep) Table *t = NULL;
        size_t n = 0;

        while (headers[n])
                n++;
        t = calloc(1, sizeof(*t));
        if (!t)
                return -ENOMEM;
        t->n_columns = n;
        t->flex = flex;
        if (table_add_row(t, headers, NULL) < 0)
                return -ENOMEM;
        *ret = TAKE_PTR(t);
        return 0;
}

Table *table_free(Table *t) {
        if (!t)
                return NULL;
        for (size_t i = 0; i < (t->n_rows) * t->n_columns; i++)
                free(t->cells[i]);
        free(t->cells);
        free(t->colors);
        free(t);
        return NULL;
}

int table_add_row(Table *t, const char *const *cells, const char *const *colors) {
        size_t base = t->n_rows * t->n_columns;
        char **c;
        const char **k;

        c = realloc(t->cells, (base + t->n_columns) * sizeof(char *));
        if (!c)
                return -ENOMEM;
        t->cells = c;
        k = realloc(t->colors, (base + t->n_columns) * sizeof(char *));
        if (!k)
                return -ENOMEM;
        t->colors = k;
        for (size_t i = 0; i < t->n_columns; i++) {
                c[base + i] = strdup(cells[i] ?: "-");
                k[base + i] = colors ? colors[i] : NULL;
                if (!c[base + i]) {
                        for (size_t j = 0; j < i; j++)
                                free(c[base + j]);
                        return -ENOMEM;
                }
        }
        t->n_rows++;
        return 0;
}

/* Prints n bytes of s in at most width characters, padded to width when pad. */
static void print_cell(FILE *f, const char *s, size_t n, size_t width, bool pad) {
        size_t w = 0, chars = 0;

        for (size_t i = 0; i < n; i++)
                if (((unsigned char)s[i] & 0xc0) != 0x80)
                        chars++;
        if (chars > width) {
                const char *ellipsis = glyph(GLYPH_ELLIPSIS);
                size_t ellipsis_width = locale_is_utf8() ? 1 : strlen(ellipsis);
                size_t keep = width > ellipsis_width ? width - ellipsis_width : 1;

                /* Keep what fits before the ellipsis. */
                for (size_t i = 0; i < n; i++) {
                        if (((unsigned char)s[i] & 0xc0) != 0x80 && w++ == keep)
                                break;
                        fputc(s[i], f);
                }
                fputs(ellipsis, f);
                return;
        }
        fwrite(s, 1, n, f);
        if (pad)
                for (; chars < width; chars++)
                        fputc(' ', f);
}

int table_print(Table *t, const Ctl *ctl, FILE *f) {
        _cleanup_free_ size_t *widths = calloc(t->n_columns, sizeof(size_t));
        size_t total = 0;

        if (!widths)
                return -ENOMEM;
        for (size_t r = 0; r < t->n_rows; r++)
                for (size_t c = 0; c < t->n_columns; c++)
                        widths[c] = MAX(widths[c], text_width(t->cells[r * t->n_columns + c]));
        for (size_t c = 0; c < t->n_columns; c++)
                total += widths[c] + (c > 0 ? 2 : 0);
        if (total > ctl->width && t->flex >= 0 && (size_t)t->flex < t->n_columns) {
                size_t others = total - widths[t->flex];
                size_t min = MIN(widths[t->flex], (size_t)8);

                widths[t->flex] = others + min < ctl->width ? ctl->width - others : min;
        }

        for (size_t r = 0; r < t->n_rows; r++) {
                size_t lines = 1;

                for (size_t c = 0; c < t->n_columns; c++)
                        lines = MAX(lines, n_lines(t->cells[r * t->n_columns + c]));
                for (size_t l = 0; l < lines; l++) {
                        /* Trailing empty cells print nothing, so no line ends in blanks. */
                        size_t last = 0;

                        for (size_t c = 0; c < t->n_columns; c++) {
                                size_t len;

                                cell_line(t->cells[r * t->n_columns + c], l, &len);
                                if (len > 0)
                                        last = c;
                        }
                        for (size_t c = 0; c <= last; c++) {
                                const char *color = r == 0 ? "bold" : t->colors[r * t->n_columns + c];
                                size_t len;
                                const char *s = cell_line(t->cells[r * t->n_columns + c], l, &len);

                                if (c > 0)
                                        fputs("  ", f);
                                if (color && len > 0)
                                        fputs(ctl_color(ctl, color), f);
                                print_cell(f, s, len, widths[c], false);
                                if (color && len > 0)
                                        fputs(ctl_color(ctl, "reset"), f);
                                /* Pad after the reset so that escapes never count as width. */
                                if (c < last) {
                                        size_t w = line_width(s);

                                        for (w = MIN(w, widths[c]); w < widths[c]; w++)
                                                fputc(' ', f);
                                }
                        }
                        fputc('\n', f);
                }
        }
        return ferror(f) ? -EIO : 0;
}
