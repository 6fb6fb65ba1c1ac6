/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "assert-util.h"
#include "varlink-idl.h"

/* "->" as one token; every other token is a word or its single character. */
#define TOKEN_ARROW '\1'
#define TOKEN_WORD 'w'

typedef enum Expect {
        EXPECT_INTERFACE_KEYWORD,
        EXPECT_INTERFACE_NAME,
        EXPECT_KEYWORD,
        EXPECT_MEMBER_NAME,
} Expect;

typedef struct Parser {
        VarlinkIdl *idl;
        const char *p;
        unsigned line, open_line;
        int depth;
        Expect expect;
        const char *keyword;
        bool method_input;         /* the '(' after a method's or error's name opens its parameters */
        bool error_input;          /* ... and they are an error's */
        bool in_input;             /* inside those parameters */
        const char *word;          /* the last word at depth 1 of the input, for "name:" */
        size_t word_len;
        bool in_type;              /* after "name:", before the type's first token */
} Parser;

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

static void parameters_free(VarlinkIdlParameters *p) {
        for (size_t i = 0; i < p->n; i++) {
                free(p->items[i].name);
                free(p->items[i].type);
        }
        free(p->items);
}

VarlinkIdl *varlink_idl_free(VarlinkIdl *idl) {
        if (!idl)
                return NULL;
        free(idl->name);
        strv_free(idl->types, idl->n_types);
        for (size_t i = 0; idl->parameters && i < idl->n_methods; i++)
                parameters_free(&idl->parameters[i]);
        free(idl->parameters);
        for (size_t i = 0; idl->error_parameters && i < idl->n_errors; i++)
                parameters_free(&idl->error_parameters[i]);
        free(idl->error_parameters);
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

/* The next token: TOKEN_WORD with the word in ret_word, another character, or 0 at the end. */
static char lex(Parser *ps, const char **ret_word, size_t *ret_len) {
        for (;;) {
                if (*ps->p == '\n')
                        ps->line++;
                if (*ps->p == '#')
                        ps->p += strcspn(ps->p, "\n");
                else if (isspace((unsigned char)*ps->p))
                        ps->p++;
                else
                        break;
        }
        if (!*ps->p)
                return 0;
        if (is_word_char(*ps->p)) {
                *ret_word = ps->p;
                while (is_word_char(*ps->p))
                        ps->p++;
                *ret_len = (size_t)(ps->p - *ret_word);
                return TOKEN_WORD;
        }
        if (strneq(ps->p, "->", 2)) {
                ps->p += 2;
                return TOKEN_ARROW;
        }
        return *ps->p++;
}

/* The parameters being read: of the method, or the error, declared last. */
static VarlinkIdlParameters *current_parameters(Parser *ps) {
        return ps->error_input ? &ps->idl->error_parameters[ps->idl->n_errors - 1]
                               : &ps->idl->parameters[ps->idl->n_methods - 1];
}

/* Records the parameter "word:" of the member declared last; its type comes next. */
static int add_parameter(Parser *ps) {
        VarlinkIdlParameters *params = current_parameters(ps);
        VarlinkIdlParameter *a;

        a = realloc(params->items, (params->n + 1) * sizeof(*a));
        if (!a)
                return -ENOMEM;
        params->items = a;
        a[params->n] = (VarlinkIdlParameter){ .name = strndup(ps->word, ps->word_len) };
        if (!a[params->n++].name)
                return -ENOMEM;
        ps->in_type = true;
        return 0;
}

/* The first token of the last parameter's type ("?" only marks it optional). */
static int set_parameter_type(Parser *ps, char token, const char *w, size_t len) {
        VarlinkIdlParameters *params = current_parameters(ps);
        VarlinkIdlParameter *last = &params->items[params->n - 1];

        if (token == '?') {
                last->optional = true;
                return 0;
        }
        ps->in_type = false;
        last->type = token == TOKEN_WORD ? strndup(w, len) : strndup(&token, 1);
        return last->type ? 0 : -ENOMEM;
}

/* A token inside parentheses: only a method's parameter names and types are kept. */
static int parse_nested(Parser *ps, char token, const char *w, size_t len) {
        if (!ps->in_input)
                return 0;
        if (ps->in_type && ps->depth == 1)
                return set_parameter_type(ps, token, w, len);
        if (ps->depth == 1 && token == ':' && ps->word)
                return add_parameter(ps);
        ps->word = ps->depth == 1 && token == TOKEN_WORD ? w : NULL;
        ps->word_len = len;
        return 0;
}

static int parse_paren(Parser *ps, char token, Error *err) {
        if (token == '(') {
                if (ps->depth++ == 0) {
                        ps->open_line = ps->line;
                        ps->in_input = ps->method_input;
                        ps->method_input = false;
                        ps->in_type = false;
                        ps->word = NULL;
                }
                return 0;
        }
        if (--ps->depth < 0)
                return error_set(err, -EBADMSG, "line %u: ')' without '('", ps->line);
        if (ps->depth == 0)
                ps->in_input = ps->in_type = false; /* "name:" may end without a type */
        return 0;
}

static int add_member(Parser *ps, const char *w, size_t len, Error *err) {
        VarlinkIdl *idl = ps->idl;
        char name[256];

        if (!member_name_valid(w, len) || len >= sizeof(name))
                return error_set(err, -EBADMSG, "line %u: invalid %s name '%.*s'", ps->line,
                                 ps->keyword, (int)len, w);
        memcpy(name, w, len);
        name[len] = 0;
        if (strv_contains(idl->types, idl->n_types, name) ||
            strv_contains(idl->methods, idl->n_methods, name) ||
            strv_contains(idl->errors, idl->n_errors, name))
                return error_set(err, -EBADMSG, "line %u: '%s' is defined twice", ps->line, name);
        ps->expect = EXPECT_KEYWORD;
        if (ps->keyword[0] == 't')
                return strv_push(&idl->types, &idl->n_types, w, len);

        /* A method's input or an error's parameters follow, in parentheses. */
        bool error = ps->keyword[0] == 'e';
        VarlinkIdlParameters **list = error ? &idl->error_parameters : &idl->parameters;
        size_t n = error ? idl->n_errors : idl->n_methods;
        VarlinkIdlParameters *a = realloc(*list, (n + 1) * sizeof(*a));

        if (!a)
                return -ENOMEM;
        *list = a;
        a[n] = (VarlinkIdlParameters){};
        ps->method_input = true;
        ps->error_input = error;
        if (error)
                return strv_push(&idl->errors, &idl->n_errors, w, len);
        return strv_push(&idl->methods, &idl->n_methods, w, len);
}

/* A word outside parentheses: a keyword or the name it announces. */
static int parse_word(Parser *ps, const char *w, size_t len, Error *err) {
        static const char *const keywords[] = { "type", "method", "error" };

        switch (ps->expect) {
        case EXPECT_INTERFACE_KEYWORD:
                if (len != 9 || memcmp(w, "interface", 9) != 0)
                        return error_set(err, -EBADMSG,
                                         "line %u: expected 'interface' before anything else",
                                         ps->line);
                ps->expect = EXPECT_INTERFACE_NAME;
                return 0;
        case EXPECT_INTERFACE_NAME:
                if (!interface_name_valid(w, len))
                        return error_set(err, -EBADMSG, "line %u: invalid interface name '%.*s'",
                                         ps->line, (int)len, w);
                ps->idl->name = strndup(w, len);
                ps->expect = EXPECT_KEYWORD;
                return ps->idl->name ? 0 : -ENOMEM;
        case EXPECT_KEYWORD:
                for (size_t i = 0; i < ELEMENTSOF(keywords); i++)
                        if (strlen(keywords[i]) == len && memcmp(w, keywords[i], len) == 0) {
                                ps->keyword = keywords[i];
                                ps->expect = EXPECT_MEMBER_NAME;
                                return 0;
                        }
                return error_set(err, -EBADMSG,
                                 "line %u: expected 'type', 'method' or 'error', got '%.*s'",
                                 ps->line, (int)len, w);
        case EXPECT_MEMBER_NAME:
                return add_member(ps, w, len, err);
        }
        return 0;
}

static int parse_token(Parser *ps, char token, const char *w, size_t len, Error *err) {
        /* An enum or a struct in place: "code: (success, invalid)". */
        if (token == '(' && ps->in_input && ps->in_type && ps->depth == 1) {
                int r = set_parameter_type(ps, token, w, len);

                if (r < 0)
                        return r;
        }
        if (token == '(' || token == ')')
                return parse_paren(ps, token, err);
        if (ps->depth > 0)
                return parse_nested(ps, token, w, len);
        if (token == TOKEN_WORD)
                return parse_word(ps, w, len, err);
        if (token == TOKEN_ARROW)
                return 0;
        return error_set(err, -EBADMSG, "line %u: unexpected '%c'", ps->line, token);
}

int varlink_idl_parse(const char *text, VarlinkIdl **ret, Error *err) {
        _cleanup_(varlink_idl_freep) VarlinkIdl *idl = NULL;
        Parser ps = { .p = text, .line = 1 };
        char token;
        int r;

        assert_return(text && ret, -EINVAL);

        idl = calloc(1, sizeof(*idl));
        if (!idl)
                return -ENOMEM;
        ps.idl = idl;
        for (;;) {
                const char *w = NULL;
                size_t len = 0;

                token = lex(&ps, &w, &len);
                if (token == 0)
                        break;
                r = parse_token(&ps, token, w, len, err);
                if (r < 0)
                        return r;
        }
        if (ps.depth > 0)
                return error_set(err, -EBADMSG, "line %u: '(' is never closed", ps.open_line);
        if (!idl->name)
                return error_set(err, -EBADMSG, "no interface declaration");
        if (ps.expect == EXPECT_MEMBER_NAME)
                return error_set(err, -EBADMSG, "line %u: '%s' without a name", ps.line,
                                 ps.keyword);
        *ret = TAKE_PTR(idl);
        return 0;
}

bool varlink_idl_has_method(const VarlinkIdl *idl, const char *name) {
        return strv_contains(idl->methods, idl->n_methods, name);
}

bool varlink_idl_has_error(const VarlinkIdl *idl, const char *name) {
        return strv_contains(idl->errors, idl->n_errors, name);
}

const VarlinkIdlParameters *varlink_idl_method_parameters(const VarlinkIdl *idl,
                                                          const char *name) {
        assert_return(idl && name, NULL);
        for (size_t i = 0; i < idl->n_methods; i++)
                if (streq(idl->methods[i], name))
                        return &idl->parameters[i];
        return NULL;
}

const VarlinkIdlParameters *varlink_idl_error_parameters(const VarlinkIdl *idl,
                                                         const char *name) {
        assert_return(idl && name, NULL);
        for (size_t i = 0; i < idl->n_errors; i++)
                if (streq(idl->errors[i], name))
                        return &idl->error_parameters[i];
        return NULL;
}

/* Whether a table entry of type t decodes what the IDL types with this first token. */
static bool type_matches(JsonDispatchType t, const char *idl_type) {
        if (t == JSON_DISPATCH_CUSTOM)
                return true;
        if (streq(idl_type, "int"))
                return t == JSON_DISPATCH_UINT8 || t == JSON_DISPATCH_UINT16 ||
                       t == JSON_DISPATCH_UINT32 || t == JSON_DISPATCH_UINT64 ||
                       t == JSON_DISPATCH_INT || t == JSON_DISPATCH_FD_INDEX;
        if (streq(idl_type, "string"))
                return t == JSON_DISPATCH_STRING || t == JSON_DISPATCH_ENUM;
        if (streq(idl_type, "bool"))
                return t == JSON_DISPATCH_BOOL;
        if (streq(idl_type, "["))
                return t == JSON_DISPATCH_ARRAY;
        if (streq(idl_type, "("))
                return t == JSON_DISPATCH_ENUM || t == JSON_DISPATCH_OBJECT;
        /* "object" or a type of the interface. */
        return t == JSON_DISPATCH_OBJECT;
}

static int check_parameter(const VarlinkIdlParameter *p, const JsonDispatchField *table,
                           Error *err) {
        const JsonDispatchField *f = table;
        bool required;

        while (f && f->name && !streq(f->name, p->name))
                f++;
        if (!f || !f->name)
                return error_set(err, -EBADMSG, "parameter '%s' is not in the table", p->name);
        /* Entries of one name in a row: the flags are the last one's, any type may match. */
        for (bool matched = false;; f++) {
                matched = matched || type_matches(f->type, p->type ?: "");
                if (f[1].name && streq(f[1].name, p->name))
                        continue;
                if (!matched)
                        return error_set(err, -EBADMSG, "parameter '%s': the IDL's type '%s' "
                                         "is not what the table decodes", p->name, p->type ?: "");
                break;
        }
        required = f->flags & JSON_DISPATCH_REQUIRED;
        if (required == p->optional || !(f->flags & JSON_DISPATCH_NULLABLE) != !p->optional)
                return error_set(err, -EBADMSG, "parameter '%s' is %s in the IDL but not in "
                                 "the table", p->name, p->optional ? "optional" : "required");
        return 0;
}

/* The table of m decodes exactly the parameters the IDL gives the method. */
static int check_method_parameters(const VarlinkMethod *m, const VarlinkIdlParameters *params,
                                   Error *err) {
        int r;

        for (size_t i = 0; i < params->n; i++) {
                r = check_parameter(&params->items[i], m->parameters, err);
                if (r < 0)
                        return r;
        }
        for (const JsonDispatchField *f = m->parameters; f && f->name; f++) {
                bool found = false;

                for (size_t i = 0; i < params->n && !found; i++)
                        found = streq(params->items[i].name, f->name);
                if (!found)
                        return error_set(err, -EBADMSG, "table entry '%s' is not a parameter in "
                                         "the IDL", f->name);
        }
        return 0;
}

static int check_methods(const VarlinkInterface *iface, const VarlinkIdl *idl, Error *err) {
        for (size_t i = 0; i < idl->n_methods; i++) {
                bool found = false;

                for (const VarlinkMethod *m = iface->methods; m && m->name; m++)
                        if (streq(m->name, idl->methods[i]) && m->handler)
                                found = true;
                if (!found)
                        return error_set(err, -EBADMSG, "interface %s: method %s has no handler",
                                         iface->name, idl->methods[i]);
        }
        for (const VarlinkMethod *m = iface->methods; m && m->name; m++) {
                const VarlinkIdlParameters *params = varlink_idl_method_parameters(idl, m->name);

                if (!params)
                        return error_set(err, -EBADMSG, "interface %s: method %s is not in the IDL",
                                         iface->name, m->name);
                if (check_method_parameters(m, params, err) < 0)
                        return error_prefix(err, "interface %s: method %s", iface->name, m->name);
        }
        return 0;
}

int varlink_idl_check_interface(const VarlinkInterface *iface, Error *err) {
        _cleanup_(varlink_idl_freep) VarlinkIdl *idl = NULL;
        int r;

        assert_return(iface && iface->name && iface->description, -EINVAL);

        r = varlink_idl_parse(iface->description, &idl, err);
        if (r < 0)
                return error_prefix(err, "interface %s", iface->name);
        if (!streq(idl->name, iface->name))
                return error_set(err, -EBADMSG, "interface %s: its IDL declares '%s'", iface->name,
                                 idl->name);
        r = check_methods(iface, idl, err);
        if (r < 0)
                return r;
        if (iface->errno_error) {
                const char *dot = strrchr(iface->errno_error, '.');

                if (!dot || (size_t)(dot - iface->errno_error) != strlen(iface->name) ||
                    !strneq(iface->errno_error, iface->name, strlen(iface->name)) ||
                    !varlink_idl_has_error(idl, dot + 1))
                        return error_set(err, -EBADMSG,
                                         "interface %s: errno error %s is not in the IDL",
                                         iface->name, iface->errno_error);
        }
        return 0;
}
