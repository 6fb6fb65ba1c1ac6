/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Loading the policy: reading the drop-in files, parsing them with json-c,
 * validating every value against the schema documented in iommud.policy(5),
 * and merging them into one Policy.  Every problem becomes a diagnostic with
 * file, line, column and JSON path; loading goes on after a problem so that
 * one run reports them all.
 */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>

#include "assert-util.h"
#include "file-util.h"
#include "json-pos.h"
#include "macros.h"
#include "policy-parser.h"
#include "policy.h"

#define POLICY_FILE_MAX (16u * 1024u * 1024u)
#define POLICY_MAX_DEPTH 64

static uint64_t policy_generation_counter;

static void closedirp(DIR **d) {
        if (*d)
                closedir(*d);
}

static bool all_space(const char *s, size_t len) {
        for (size_t i = 0; i < len; i++)
                if (!strchr(" \t\r\n", s[i]) || !s[i])
                        return false;
        return true;
}

/* Parses one text on top of p.  -EINVAL: problems recorded in diags; -ENOMEM: fatal. */
static int policy_apply_text(Policy *p, const char *filename, const char *text, size_t len,
                             PolicyDiagnostics *diags) {
        _cleanup_free_ char *copy = NULL;
        struct json_tokener *tok = NULL;
        json_object *root = NULL;
        Parser P = { .file = filename, .diags = diags };
        enum json_tokener_error jerr;
        size_t bad;
        unsigned line, column;
        int r;

        copy = malloc(len + 1);
        if (!copy)
                return -ENOMEM;
        memcpy(copy, text, len);
        copy[len] = 0;
        P.text = copy;
        P.len = len;

        if (memchr(copy, 0, len))
                return policy_diagnostics_addf(diags, filename, 0, 0, "",
                                               "file contains a NUL byte") ?: -EINVAL;

        if (json_pos_strip_comments(copy, len, &bad) < 0) {
                json_pos_offset_to_line_column(copy, len, bad, &line, &column);
                return policy_diagnostics_addf(diags, filename, line, column, "",
                                               "unterminated comment") ?: -EINVAL;
        }
        /* An empty file (or a symlink to /dev/null) masks a vendor file of the same name. */
        if (all_space(copy, len))
                return 0;

        tok = json_tokener_new_ex(POLICY_MAX_DEPTH);
        if (!tok)
                return -ENOMEM;
        json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
        root = json_tokener_parse_ex(tok, copy, (int)len);
        jerr = json_tokener_get_error(tok);
        if (jerr != json_tokener_success || !root) {
                size_t off = json_tokener_get_parse_end(tok);
                const char *desc = jerr == json_tokener_continue ? "unexpected end of file"
                                                                : json_tokener_error_desc(jerr);

                /* parse_end is the offset of the character the tokener rejected. */
                json_pos_offset_to_line_column(copy, len, off, &line, &column);
                json_tokener_free(tok);
                json_object_put(root);
                return policy_diagnostics_addf(diags, filename, line, column, "",
                                               "invalid JSON: %s", desc) ?: -EINVAL;
        }
        json_tokener_free(tok);

        r = json_pos_index_build(&P.idx, copy, len);
        if (r < 0) {
                json_object_put(root);
                if (r == -ENOMEM)
                        return r;
                return policy_diagnostics_addf(diags, filename, 0, 0, "",
                                               "cannot index the JSON text") ?: -EINVAL;
        }
        for (size_t i = 0; i < P.idx.n_duplicates; i++) {
                const JsonPosDuplicate *d = &P.idx.duplicates[i];

                if (policy_diagnostics_addf(diags, filename, d->line, d->column, d->path,
                                            "duplicate key (first defined at line %u, column %u); "
                                            "names must be unique within one file",
                                            d->first_line, d->first_column) < 0)
                        P.fatal = true;
        }
        r = policy_parse_root(&P, root, p);
        if (P.idx.n_duplicates > 0 && r >= 0)
                r = -EINVAL;
        json_pos_index_clear(&P.idx);
        json_object_put(root);
        if (P.fatal)
                return -ENOMEM;
        return r;
}

static int policy_apply_file(Policy *p, int dirfd, const char *dir, const char *name,
                             bool missing_ok, PolicyDiagnostics *diags) {
        _cleanup_free_ char *text = NULL, *display = NULL;
        size_t len;
        int r;

        if (asprintf(&display, "%s%s%s", dir ?: "", dir ? "/" : "", name) < 0)
                return -ENOMEM;
        r = file_util_read_at(dirfd, name, POLICY_FILE_MAX, &text, &len);
        if (r == -ENOENT && missing_ok)
                return 0;
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return policy_diagnostics_addf(diags, display, 0, 0, "", "cannot read: %s",
                                               strerror(-r)) ?: -EINVAL;
        return policy_apply_text(p, display, text, len, diags);
}

typedef struct DropIn {
        char *name;
        const char *dir;
        int dirfd;
} DropIn;

static int dropin_compare(const void *a, const void *b) {
        return strcmp(((const DropIn *)a)->name, ((const DropIn *)b)->name);
}

static bool has_json_suffix(const char *s) {
        size_t n = strlen(s);

        return n > 5 && streq(s + n - 5, ".json");
}

/* Appends dir's *.json to list, sorted; an entry whose name is already listed masks it. */
static int dropins_collect(DropIn **list, size_t *n, const char *dir, int dirfd,
                           PolicyDiagnostics *diags) {
        _cleanup_(closedirp) DIR *d = NULL;
        size_t first = *n;
        struct dirent *de;
        int fd;

        fd = fcntl(dirfd, F_DUPFD_CLOEXEC, 3);
        if (fd < 0)
                return negative_errno();
        d = fdopendir(fd);
        if (!d) {
                safe_close(fd);
                return negative_errno();
        }
        errno = 0;
        while ((de = readdir(d))) {
                DropIn *l;
                char *name;

                if (de->d_name[0] == '.' || !has_json_suffix(de->d_name))
                        continue;
                name = strdup(de->d_name);
                if (!name)
                        return -ENOMEM;
                /* An admin file named like a vendor file replaces it, as systemd does. */
                for (size_t i = 0; i < first; i++)
                        if (streq((*list)[i].name, name)) {
                                free((*list)[i].name);
                                memmove(*list + i, *list + i + 1, (*n - i - 1) * sizeof(DropIn));
                                (*n)--;
                                first--;
                                break;
                        }
                l = realloc(*list, (*n + 1) * sizeof(DropIn));
                if (!l) {
                        free(name);
                        return -ENOMEM;
                }
                *list = l;
                (*list)[(*n)++] = (DropIn){ .name = name, .dir = dir, .dirfd = dirfd };
        }
        if (errno != 0)
                return policy_diagnostics_addf(diags, dir, 0, 0, "",
                                               "cannot list directory: %m") ?: -EINVAL;
        if (*n > first)
                qsort(*list + first, *n - first, sizeof(DropIn), dropin_compare);
        return 0;
}

static int resolve_references(Policy *p, PolicyDiagnostics *diags) {
        int r = 0;

        for (size_t i = 0; i < p->n_grants; i++) {
                PolicyGrant *g = p->grants[i];

                for (size_t j = 0; j < g->n_pools; j++) {
                        PoolRef *ref = &g->pools[j];

                        ref->pool = NULL;
                        for (size_t k = 0; k < p->n_pools; k++)
                                if (streq(p->pools[k]->name, ref->name))
                                        ref->pool = p->pools[k];
                        if (ref->pool)
                                continue;
                        if (policy_diagnostics_addf(
                                    diags, ref->source.file, ref->source.line, ref->source.column,
                                    ref->source.path,
                                    "grant '%s' names pool '%s', which no policy file defines",
                                    g->name, ref->name) < 0)
                                return -ENOMEM;
                        r = -EINVAL;
                }
        }
        return r;
}

static int policy_finish(Policy **ret, Policy *p, PolicyDiagnostics *diags, size_t first_diag,
                         int r, Error *err) {
        _cleanup_(policy_freep) Policy *owned = p;
        int q;

        if (r == -ENOMEM)
                return error_set(err, -ENOMEM, "out of memory while loading the policy");
        q = resolve_references(p, diags);
        if (q == -ENOMEM)
                return error_set(err, -ENOMEM, "out of memory while loading the policy");
        if (diags->n > first_diag) {
                const PolicyDiagnostic *d = &diags->items[first_diag];
                size_t more = diags->n - first_diag - 1;

                if (more == 0)
                        return error_set(err, -EINVAL, "%s:%u:%u: %s%s%s", d->file, d->line,
                                         d->column, d->json_path, d->json_path[0] ? ": " : "",
                                         d->message);
                return error_set(err, -EINVAL, "%s:%u:%u: %s%s%s (and %zu more problem%s)",
                                 d->file, d->line, d->column, d->json_path,
                                 d->json_path[0] ? ": " : "", d->message, more,
                                 more == 1 ? "" : "s");
        }
        owned->generation = __atomic_add_fetch(&policy_generation_counter, 1, __ATOMIC_RELAXED);
        *ret = TAKE_PTR(owned);
        return 0;
}

int policy_load_string(Policy **ret, const char *filename, const char *text, size_t len,
                       PolicyDiagnostics *diags, Error *err) {
        PolicyDiagnostics local = {};
        PolicyDiagnostics *d = diags ?: &local;
        size_t first = d->n;
        Policy *p;
        int r;

        assert_return(ret && (text || len == 0), -EINVAL);

        r = policy_new_defaults(&p);
        if (r < 0)
                return error_set(err, r, "out of memory while loading the policy");
        r = policy_apply_text(p, filename ?: "<string>", text, len, d);
        r = policy_finish(ret, p, d, first, r, err);
        policy_diagnostics_clear(&local);
        return r;
}

int policy_load(Policy **ret, const PolicyPaths *paths, PolicyDiagnostics *diags, Error *err) {
        const char *vendor = paths && paths->vendor_dir ? paths->vendor_dir : IOMMUD_VENDOR_POLICY_DIR;
        const char *admin = paths && paths->admin_dir ? paths->admin_dir : IOMMUD_POLICY_DIR;
        const char *file = paths && paths->file ? paths->file : IOMMUD_POLICY_FILE;
        PolicyDiagnostics local = {};
        PolicyDiagnostics *d = diags ?: &local;
        const char *dirs[2] = { vendor, admin };
        int dirfds[2] = { -EBADF, -EBADF };
        DropIn *list = NULL;
        size_t n = 0, first = d->n;
        Policy *p = NULL;
        int r = 0, q;

        assert_return(ret, -EINVAL);

        q = policy_new_defaults(&p);
        if (q < 0) {
                r = q;
                goto finish;
        }
        for (size_t i = 0; i < 2; i++) {
                /* An empty path turns the directory off. */
                if (!dirs[i][0])
                        continue;
                dirfds[i] = open(dirs[i], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                if (dirfds[i] < 0) {
                        if (errno == ENOENT)
                                continue;
                        q = policy_diagnostics_addf(d, dirs[i], 0, 0, "",
                                                    "cannot open directory: %m");
                        r = q < 0 ? q : -EINVAL;
                        continue;
                }
                q = dropins_collect(&list, &n, dirs[i], dirfds[i], d);
                if (q == -ENOMEM) {
                        r = q;
                        goto finish;
                }
                if (q < 0)
                        r = q;
        }
        for (size_t i = 0; i < n; i++) {
                q = policy_apply_file(p, list[i].dirfd, list[i].dir, list[i].name, false, d);
                if (q == -ENOMEM) {
                        r = q;
                        goto finish;
                }
                if (q < 0)
                        r = q;
        }
        if (file[0]) {
                q = policy_apply_file(p, AT_FDCWD, NULL, file, true, d);
                if (q == -ENOMEM)
                        r = q;
                else if (q < 0)
                        r = q;
        }
finish:
        for (size_t i = 0; i < n; i++)
                free(list[i].name);
        free(list);
        for (size_t i = 0; i < 2; i++)
                safe_close(dirfds[i]);
        if (!p)
                r = error_set(err, -ENOMEM, "out of memory while loading the policy");
        else
                r = policy_finish(ret, p, d, first, r, err);
        policy_diagnostics_clear(&local);
        return r;
}
