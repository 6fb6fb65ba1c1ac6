/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json-pos.h"
#include "macros.h"

#define JSON_POS_MAX_DEPTH 64
#define JSON_POS_PATH_MAX 1024

typedef struct Scanner {
        const char *text;
        size_t len;
        size_t pos;
        unsigned line, column;
        JsonPosIndex *idx;
        unsigned depth;
} Scanner;

typedef struct SeenKey {
        char *key;
        unsigned line, column;
} SeenKey;

int json_pos_strip_comments(char *text, size_t len, size_t *ret_error_offset) {
        bool in_string = false;

        for (size_t i = 0; i < len; i++) {
                char c = text[i];

                if (in_string) {
                        if (c == '\\' && i + 1 < len)
                                i++;
                        else if (c == '"')
                                in_string = false;
                        continue;
                }
                if (c == '"') {
                        in_string = true;
                        continue;
                }
                if (c != '/' || i + 1 >= len)
                        continue;
                if (text[i + 1] == '/') {
                        for (; i < len && text[i] != '\n'; i++)
                                text[i] = ' ';
                } else if (text[i + 1] == '*') {
                        size_t start = i;

                        text[i++] = ' ';
                        text[i++] = ' ';
                        for (;;) {
                                if (i + 1 >= len) {
                                        if (ret_error_offset)
                                                *ret_error_offset = start;
                                        return -EINVAL;
                                }
                                if (text[i] == '*' && text[i + 1] == '/') {
                                        text[i] = text[i + 1] = ' ';
                                        i++;
                                        break;
                                }
                                /* Keep newlines so that line numbers stay right. */
                                if (text[i] != '\n')
                                        text[i] = ' ';
                                i++;
                        }
                }
        }
        return 0;
}

void json_pos_offset_to_line_column(const char *text, size_t len, size_t offset,
                                    unsigned *ret_line, unsigned *ret_column) {
        unsigned line = 1, column = 1;

        for (size_t i = 0; i < offset && i < len; i++) {
                if (text[i] == '\n') {
                        line++;
                        column = 1;
                } else if (((unsigned char)text[i] & 0xC0) != 0x80)
                        column++;
        }
        *ret_line = line;
        *ret_column = column;
}

static bool key_is_plain(const char *key) {
        if (!*key)
                return false;
        for (const char *p = key; *p; p++)
                if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                      (*p >= '0' && *p <= '9') || *p == '_' || *p == '-'))
                        return false;
        return true;
}

void json_pos_path_key(char *buf, size_t size, const char *parent, const char *key) {
        size_t n;

        if (size == 0)
                return;
        n = (size_t)snprintf(buf, size, "%s", parent ? parent : "");
        if (n >= size)
                return;
        if (key_is_plain(key)) {
                snprintf(buf + n, size - n, "%s%s", n > 0 ? "." : "", key);
                return;
        }
        /* Quote the key, escaping what would make the path ambiguous. */
        if (n + 2 >= size)
                return;
        buf[n++] = '[';
        buf[n++] = '"';
        for (const char *p = key; *p && n + 3 < size; p++) {
                if (*p == '"' || *p == '\\')
                        buf[n++] = '\\';
                buf[n++] = *p;
        }
        if (n + 2 < size) {
                buf[n++] = '"';
                buf[n++] = ']';
        }
        buf[n] = 0;
}

void json_pos_path_index(char *buf, size_t size, const char *parent, size_t index) {
        snprintf(buf, size, "%s[%zu]", parent ? parent : "", index);
}

static void scanner_advance(Scanner *s) {
        if (s->pos >= s->len)
                return;
        if (s->text[s->pos] == '\n') {
                s->line++;
                s->column = 1;
        } else if (((unsigned char)s->text[s->pos] & 0xC0) != 0x80)
                s->column++;
        s->pos++;
}

static void scanner_skip_space(Scanner *s) {
        while (s->pos < s->len && strchr(" \t\r\n", s->text[s->pos]) && s->text[s->pos])
                scanner_advance(s);
}

static char scanner_peek(const Scanner *s) {
        return s->pos < s->len ? s->text[s->pos] : 0;
}

static int hex_value(char c) {
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -1;
}

static int scanner_read_hex4(Scanner *s, unsigned *ret) {
        unsigned v = 0;

        for (int i = 0; i < 4; i++) {
                int h = hex_value(scanner_peek(s));
                if (h < 0)
                        return -EINVAL;
                v = v << 4 | (unsigned)h;
                scanner_advance(s);
        }
        *ret = v;
        return 0;
}

static size_t utf8_encode(char *out, unsigned cp) {
        if (cp < 0x80) {
                out[0] = (char)cp;
                return 1;
        }
        if (cp < 0x800) {
                out[0] = (char)(0xC0 | cp >> 6);
                out[1] = (char)(0x80 | (cp & 0x3F));
                return 2;
        }
        if (cp < 0x10000) {
                out[0] = (char)(0xE0 | cp >> 12);
                out[1] = (char)(0x80 | (cp >> 6 & 0x3F));
                out[2] = (char)(0x80 | (cp & 0x3F));
                return 3;
        }
        out[0] = (char)(0xF0 | cp >> 18);
        out[1] = (char)(0x80 | (cp >> 12 & 0x3F));
        out[2] = (char)(0x80 | (cp >> 6 & 0x3F));
        out[3] = (char)(0x80 | (cp & 0x3F));
        return 4;
}

/* Scans a string at the cursor; decodes it into *ret when ret is non-NULL. */
static int scanner_string(Scanner *s, char **ret) {
        _cleanup_free_ char *out = NULL;
        size_t n = 0;

        if (scanner_peek(s) != '"')
                return -EINVAL;
        scanner_advance(s);
        if (ret) {
                /* Decoding never grows the text. */
                out = malloc(s->len - s->pos + 1);
                if (!out)
                        return -ENOMEM;
        }
        for (;;) {
                char c = scanner_peek(s);

                if (s->pos >= s->len)
                        return -EINVAL;
                if (c == '"') {
                        scanner_advance(s);
                        break;
                }
                if (c != '\\') {
                        if (out)
                                out[n++] = c;
                        scanner_advance(s);
                        continue;
                }
                scanner_advance(s);
                c = scanner_peek(s);
                scanner_advance(s);
                if (c == 'u') {
                        unsigned cp, lo;
                        char buf[4];
                        size_t k;

                        if (scanner_read_hex4(s, &cp) < 0)
                                return -EINVAL;
                        if (cp >= 0xD800 && cp < 0xDC00 && scanner_peek(s) == '\\' &&
                            s->pos + 1 < s->len && s->text[s->pos + 1] == 'u') {
                                scanner_advance(s);
                                scanner_advance(s);
                                if (scanner_read_hex4(s, &lo) < 0)
                                        return -EINVAL;
                                if (lo >= 0xDC00 && lo < 0xE000)
                                        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                        }
                        k = utf8_encode(buf, cp);
                        if (out) {
                                memcpy(out + n, buf, k);
                                n += k;
                        }
                        continue;
                }
                if (out) {
                        switch (c) {
                        case 'b': c = '\b'; break;
                        case 'f': c = '\f'; break;
                        case 'n': c = '\n'; break;
                        case 'r': c = '\r'; break;
                        case 't': c = '\t'; break;
                        default: break; /* '"', '\\', '/' stand for themselves */
                        }
                        out[n++] = c;
                }
        }
        if (ret) {
                out[n] = 0;
                *ret = TAKE_PTR(out);
        }
        return 0;
}

static int index_add(JsonPosIndex *idx, const char *path, size_t offset, unsigned line,
                     unsigned column, unsigned key_line, unsigned key_column) {
        JsonPos *items;
        char *p;

        p = strdup(path);
        if (!p)
                return -ENOMEM;
        items = realloc(idx->items, (idx->n + 1) * sizeof(JsonPos));
        if (!items) {
                free(p);
                return -ENOMEM;
        }
        idx->items = items;
        idx->items[idx->n++] = (JsonPos){
                .path = p,
                .offset = offset,
                .line = line,
                .column = column,
                .key_line = key_line,
                .key_column = key_column,
        };
        return 0;
}

static int index_add_duplicate(JsonPosIndex *idx, const char *path, unsigned line,
                               unsigned column, const SeenKey *first) {
        JsonPosDuplicate *d;
        char *p;

        p = strdup(path);
        if (!p)
                return -ENOMEM;
        d = realloc(idx->duplicates, (idx->n_duplicates + 1) * sizeof(JsonPosDuplicate));
        if (!d) {
                free(p);
                return -ENOMEM;
        }
        idx->duplicates = d;
        idx->duplicates[idx->n_duplicates++] = (JsonPosDuplicate){
                .path = p,
                .line = line,
                .column = column,
                .first_line = first->line,
                .first_column = first->column,
        };
        return 0;
}

static void seen_keys_free(SeenKey *keys, size_t n) {
        for (size_t i = 0; i < n; i++)
                free(keys[i].key);
        free(keys);
}

static int scanner_value(Scanner *s, const char *path, unsigned key_line, unsigned key_column);

static int scanner_object(Scanner *s, const char *path) {
        SeenKey *keys = NULL;
        size_t n_keys = 0;
        int r = 0;

        scanner_advance(s); /* '{' */
        scanner_skip_space(s);
        if (scanner_peek(s) == '}') {
                scanner_advance(s);
                return 0;
        }
        for (;;) {
                char child[JSON_POS_PATH_MAX];
                _cleanup_free_ char *key = NULL;
                unsigned kl, kc;
                SeenKey *nk;

                scanner_skip_space(s);
                kl = s->line;
                kc = s->column;
                r = scanner_string(s, &key);
                if (r < 0)
                        goto finish;
                json_pos_path_key(child, sizeof(child), path, key);

                for (size_t i = 0; i < n_keys; i++)
                        if (streq(keys[i].key, key)) {
                                r = index_add_duplicate(s->idx, child, kl, kc, &keys[i]);
                                if (r < 0)
                                        goto finish;
                                break;
                        }
                nk = realloc(keys, (n_keys + 1) * sizeof(SeenKey));
                if (!nk) {
                        r = -ENOMEM;
                        goto finish;
                }
                keys = nk;
                keys[n_keys++] = (SeenKey){ .key = TAKE_PTR(key), .line = kl, .column = kc };

                scanner_skip_space(s);
                if (scanner_peek(s) != ':') {
                        r = -EINVAL;
                        goto finish;
                }
                scanner_advance(s);
                scanner_skip_space(s);
                r = scanner_value(s, child, kl, kc);
                if (r < 0)
                        goto finish;
                scanner_skip_space(s);
                if (scanner_peek(s) == ',') {
                        scanner_advance(s);
                        continue;
                }
                if (scanner_peek(s) == '}') {
                        scanner_advance(s);
                        break;
                }
                r = -EINVAL;
                goto finish;
        }
finish:
        seen_keys_free(keys, n_keys);
        return r;
}

static int scanner_array(Scanner *s, const char *path) {
        scanner_advance(s); /* '[' */
        scanner_skip_space(s);
        if (scanner_peek(s) == ']') {
                scanner_advance(s);
                return 0;
        }
        for (size_t i = 0;; i++) {
                char child[JSON_POS_PATH_MAX];
                int r;

                scanner_skip_space(s);
                json_pos_path_index(child, sizeof(child), path, i);
                r = scanner_value(s, child, s->line, s->column);
                if (r < 0)
                        return r;
                scanner_skip_space(s);
                if (scanner_peek(s) == ',') {
                        scanner_advance(s);
                        continue;
                }
                if (scanner_peek(s) == ']') {
                        scanner_advance(s);
                        return 0;
                }
                return -EINVAL;
        }
}

static int scanner_value(Scanner *s, const char *path, unsigned key_line, unsigned key_column) {
        char c = scanner_peek(s);
        int r;

        r = index_add(s->idx, path, s->pos, s->line, s->column, key_line, key_column);
        if (r < 0)
                return r;

        if (s->depth >= JSON_POS_MAX_DEPTH)
                return -E2BIG;
        switch (c) {
        case '{':
                s->depth++;
                r = scanner_object(s, path);
                s->depth--;
                return r;
        case '[':
                s->depth++;
                r = scanner_array(s, path);
                s->depth--;
                return r;
        case '"':
                return scanner_string(s, NULL);
        case 0:
                return -EINVAL;
        default:
                /* Number or literal: up to the next delimiter. */
                while (s->pos < s->len && !strchr(",]} \t\r\n", s->text[s->pos]))
                        scanner_advance(s);
                return 0;
        }
}

static int json_pos_compare(const void *a, const void *b) {
        const JsonPos *x = a, *y = b;
        int c = strcmp(x->path, y->path);

        if (c != 0)
                return c;
        return x->offset < y->offset ? -1 : x->offset > y->offset;
}

int json_pos_index_build(JsonPosIndex *idx, const char *text, size_t len) {
        Scanner s = { .text = text, .len = len, .line = 1, .column = 1, .idx = idx };
        size_t w = 0;
        int r;

        scanner_skip_space(&s);
        r = scanner_value(&s, "", s.line, s.column);
        if (r < 0) {
                json_pos_index_clear(idx);
                return r;
        }

        /* Sorted for bsearch; of duplicates the first definition stays. */
        qsort(idx->items, idx->n, sizeof(JsonPos), json_pos_compare);
        for (size_t i = 0; i < idx->n; i++) {
                if (w > 0 && streq(idx->items[w - 1].path, idx->items[i].path)) {
                        free(idx->items[i].path);
                        continue;
                }
                idx->items[w++] = idx->items[i];
        }
        idx->n = w;
        return 0;
}

void json_pos_index_clear(JsonPosIndex *idx) {
        if (!idx)
                return;
        for (size_t i = 0; i < idx->n; i++)
                free(idx->items[i].path);
        free(idx->items);
        for (size_t i = 0; i < idx->n_duplicates; i++)
                free(idx->duplicates[i].path);
        free(idx->duplicates);
        *idx = (JsonPosIndex){};
}

static int json_pos_compare_key(const void *key, const void *item) {
        return strcmp(key, ((const JsonPos *)item)->path);
}

const JsonPos *json_pos_index_find(const JsonPosIndex *idx, const char *path) {
        if (!idx || idx->n == 0)
                return NULL;
        return bsearch(path, idx->items, idx->n, sizeof(JsonPos), json_pos_compare_key);
}
