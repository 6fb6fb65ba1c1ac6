/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "varlink-idl.h"

typedef enum Expect {
        EXPECT_INTERFACE_KEYWORD,
        EXPECT_INTERFACE_NAME,
        EXPECT_KEYWORD,
        EXPECT_MEMBER_NAME,
} Expect;

static int strv_push(char ***v, size_t *n, const char *s, size_t len) {
        char **a, *copy;

        copy = strndup(s, len);
        if (!copy)
                return -ENOMEM;
        a = realloc(*v, (*n + 1) * sizeof(char *));
        if (!a) {
                free(copy);
                return -ENOMEM;
        }
        a[(*n)++] = copy;
        *v = a;
        return 0;
}

static void strv_free(char **v, size_t n) {
        for (size_t i = 0; i < n; i++)
                free(v[i]);
        free(v);
}

static bool strv_contains(char **v, size_t n, const char *s) {
        for (size_t i = 0; i < n; i++)
                if (streq(v[i], s))
                        return true;
        return false;
}

VarlinkIdl *varlink_idl_free(VarlinkIdl *idl) {
        if (!idl)
                return NULL;
        free(idl->name);
        strv_free(idl->types, idl->n_types);
        strv_free(idl->methods, idl->n_methods);
        strv_free(idl->errors, idl->n_errors);
        free(idl);
        return NULL;
}

static bool is_word_char(char c) {
        return isalnum((unsigned char)c) || c == '_' || c == '.';
}

/* Member names are CamelCase: an upper-case letter, then letters and digits. */
static bool member_name_valid(const char *s, size_t len) {
        if (len == 0 || !isupper((unsigned char)s[0]))
                return false;
        for (size_t i = 1; i < len; i++)
                if (!isalnum((unsigned char)s[i]))
                        return false;
        return true;
}

static bool interface_name_valid(const char *s, size_t len) {
        bool dot = false;

        if (len == 0 || !isalpha((unsigned char)s[0]) || s[len - 1] == '.')
                return false;
        for (size_t i = 0; i < len; i++) {
                if (s[i] == '.') {
                        if (s[i - 1] == '.')
                                return false;
                        dot = true;
                } else if (!isalnum((unsigned char)s[i]) && s[i] != '-')
                        return false;
        }
        return dot;
}

int varlink_idl_parse(const char *text, VarlinkIdl **ret, Error *err) {
        _cleanup_(varlink_idl_freep) VarlinkIdl *idl = NULL;
        Expect expect = EXPECT_INTERFACE_KEYWORD;
        const char *keyword = NULL;
        unsigned line = 1, open_line = 0;
        int depth = 0, r;

        idl = calloc(1, sizeof(*idl));
        if (!idl)
                return -ENOMEM;

        for (const char *p = text; *p;) {
                const char *w;
                size_t len;

                if (*p == '\n') {
                        line++;
                        p++;
                        continue;
                }
                if (isspace((unsigned char)*p)) {
                        p++;
                        continue;
                }
                if (*p == '#') {
                        p += strcspn(p, "\n");
                        continue;
                }
                if (*p == '(') {
                        if (depth++ == 0)
                                open_line = line;
                        p++;
                        continue;
                }
                if (*p == ')') {
                        if (--depth < 0)
                                return error_set(err, -EBADMSG, "line %u: ')' without '('", line);
                        p++;
                        continue;
                }
                if (!is_word_char(*p)) {
                        if (depth == 0 && !(p[0] == '-' && p[1] == '>'))
                                return error_set(err, -EBADMSG, "line %u: unexpected '%c'", line, *p);
                        p += (p[0] == '-' && p[1] == '>') ? 2 : 1;
                        continue;
                }

                w = p;
                while (is_word_char(*p))
                        p++;
                len = (size_t)(p - w);
                if (depth > 0)
                        continue;

                switch (expect) {
                case EXPECT_INTERFACE_KEYWORD:
                        if (len != 9 || memcmp(w, "interface", 9) != 0)
                                return error_set(err, -EBADMSG,
                                                 "line %u: expected 'interface' before anything else",
                                                 line);
                        expect = EXPECT_INTERFACE_NAME;
                        break;
                case EXPECT_INTERFACE_NAME:
                        if (!interface_name_valid(w, len))
                                return error_set(err, -EBADMSG, "line %u: invalid interface name '%.*s'",
                                                 line, (int)len, w);
                        idl->name = strndup(w, len);
                        if (!idl->name)
                                return -ENOMEM;
                        expect = EXPECT_KEYWORD;
                        break;
                case EXPECT_KEYWORD:
                        if (len == 4 && memcmp(w, "type", 4) == 0)
                                keyword = "type";
                        else if (len == 6 && memcmp(w, "method", 6) == 0)
                                keyword = "method";
                        else if (len == 5 && memcmp(w, "error", 5) == 0)
                                keyword = "error";
                        else
                                return error_set(err, -EBADMSG,
                                                 "line %u: expected 'type', 'method' or 'error', got '%.*s'",
                                                 line, (int)len, w);
                        expect = EXPECT_MEMBER_NAME;
                        break;
                case EXPECT_MEMBER_NAME: {
                        char ***v;
                        size_t *n;
                        char name[256];

                        if (!member_name_valid(w, len) || len >= sizeof(name))
                                return error_set(err, -EBADMSG, "line %u: invalid %s name '%.*s'", line,
                                                 keyword, (int)len, w);
                        memcpy(name, w, len);
                        name[len] = 0;
                        if (keyword[0] == 't') {
                                v = &idl->types;
                                n = &idl->n_types;
                        } else if (keyword[0] == 'm') {
                                v = &idl->methods;
                                n = &idl->n_methods;
                        } else {
                                v = &idl->errors;
                                n = &idl->n_errors;
                        }
                        if (strv_contains(idl->types, idl->n_types, name) ||
                            strv_contains(idl->methods, idl->n_methods, name) ||
                            strv_contains(idl->errors, idl->n_errors, name))
                                return error_set(err, -EBADMSG, "line %u: '%s' is defined twice", line,
                                                 name);
                        r = strv_push(v, n, w, len);
                        if (r < 0)
                                return r;
                        expect = EXPECT_KEYWORD;
                        break;
                }
                }
        }

        if (depth > 0)
                return error_set(err, -EBADMSG, "line %u: '(' is never closed", open_line);
        if (!idl->name)
                return error_set(err, -EBADMSG, "no interface declaration");
        if (expect == EXPECT_MEMBER_NAME)
                return error_set(err, -EBADMSG, "line %u: '%s' without a name", line, keyword);
        *ret = TAKE_PTR(idl);
        return 0;
}

bool varlink_idl_has_method(const VarlinkIdl *idl, const char *name) {
        return strv_contains(idl->methods, idl->n_methods, name);
}

bool varlink_idl_has_error(const VarlinkIdl *idl, const char *name) {
        return strv_contains(idl->errors, idl->n_errors, name);
}

int varlink_idl_check_interface(const VarlinkInterface *iface, Error *err) {
        _cleanup_(varlink_idl_freep) VarlinkIdl *idl = NULL;
        int r;

        r = varlink_idl_parse(iface->description, &idl, err);
        if (r < 0)
                return error_prefix(err, "interface %s", iface->name);
        if (!streq(idl->name, iface->name))
                return error_set(err, -EBADMSG, "interface %s: its IDL declares '%s'", iface->name,
                                 idl->name);
        for (size_t i = 0; i < idl->n_methods; i++) {
                bool found = false;

                for (const VarlinkMethod *m = iface->methods; m && m->name; m++)
                        if (streq(m->name, idl->methods[i]) && m->handler)
                                found = true;
                if (!found)
                        return error_set(err, -EBADMSG, "interface %s: method %s has no handler",
                                         iface->name, idl->methods[i]);
        }
        for (const VarlinkMethod *m = iface->methods; m && m->name; m++)
                if (!varlink_idl_has_method(idl, m->name))
                        return error_set(err, -EBADMSG, "interface %s: method %s is not in the IDL",
                                         iface->name, m->name);
        if (iface->errno_error) {
                const char *dot = strrchr(iface->errno_error, '.');

                if (!dot || (size_t)(dot - iface->errno_error) != strlen(iface->name) ||
                    !strneq(iface->errno_error, iface->name, strlen(iface->name)) ||
                    !varlink_idl_has_error(idl, dot + 1))
                        return error_set(err, -EBADMSG, "interface %s: errno error %s is not in the IDL",
                                         iface->name, iface->errno_error);
        }
        return 0;
}
