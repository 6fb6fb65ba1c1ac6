/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Table-driven decoding of a JSON object into a C struct, after systemd's JsonDispatch: one
 * table per object lists its members (name, type, flags, limits, where the value goes) and
 * one generic loop decodes, checks and stores them.  An unknown member, a missing required
 * one, a value of the wrong type or out of range is refused with a sentence that names the
 * member by its path ("ranges[3].start: -1 is negative") and, for transports, the top-level
 * member at fault (org.varlink.service.InvalidParameter {parameter}).  One table per method
 * or file format also documents it.
 *
 *     typedef struct UnmapParams { uint32_t ioas_id; uint64_t iova, length; } UnmapParams;
 *
 *     static const JsonDispatchField unmap_fields[] = {
 *             { "ioasId", JSON_DISPATCH_UINT32, JSON_DISPATCH_REQUIRED,
 *               offsetof(UnmapParams, ioas_id) },
 *             { "iova", JSON_DISPATCH_UINT64, JSON_DISPATCH_REQUIRED,
 *               offsetof(UnmapParams, iova) },
 *             { "length", JSON_DISPATCH_UINT64, JSON_DISPATCH_REQUIRED,
 *               offsetof(UnmapParams, length) },
 *             {},
 *     };
 *
 * The tables know nothing of json-c.  json_dispatch() drives them from a json-c tree.  A
 * streaming tokenizer drives the same tables without a tree: for each member it calls
 * json_dispatch_find() and, for scalar values, json_dispatch_value() with a
 * JsonDispatchValue it filled from the bytes; it nests by itself for OBJECT and ARRAY
 * members (the same steps with .fields or .element); at the end of each object it calls
 * json_dispatch_finish().  Paths are chains on the driver's stack, formatted only for a
 * message, so a document without mistakes costs no string work.  Both drivers keep these
 * rules:
 *   - members are decoded in document order, and the first failure ends the decoding;
 *   - a member given twice counts once, with its last value (what json-c keeps);
 *   - null is accepted, as if the member were absent, only by NULLABLE fields;
 *   - integers are exact: a literal outside [-(2^64-1), 2^64-1] is a NUMBER, never clamped
 *     (json-c trees need json_util_fix_big_integers() for that).
 *
 * The caller zero-fills the target and presets defaults: an absent member leaves its field
 * alone (FD_INDEX fields excepted, see JsonDispatchFd).  Nothing here logs.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <json-c/json.h>

#include "error.h"

/* Paths in messages are cut to this length. */
#define JSON_DISPATCH_PATH_MAX 256

typedef enum JsonDispatchType {
        JSON_DISPATCH_BOOL,     /* bool */
        /* Unsigned integers into uint8_t ... uint64_t: at least .min, at most .max (0: the
         * type's largest). */
        JSON_DISPATCH_UINT8,
        JSON_DISPATCH_UINT16,
        JSON_DISPATCH_UINT32,
        JSON_DISPATCH_UINT64,
        JSON_DISPATCH_INT,      /* int, within [.min, .max]; both 0: INT_MIN..INT_MAX */
        /* const char *, borrowed from the document (with JSON_DISPATCH_COPY a char * the
         * struct owns); at most .max bytes (0: no limit); a NUL inside is refused. */
        JSON_DISPATCH_STRING,
        JSON_DISPATCH_ENUM,     /* uint32_t: the value of the .enums entry the string names */
        JSON_DISPATCH_FD_INDEX, /* JsonDispatchFd */
        JSON_DISPATCH_OBJECT,   /* a struct embedded at .offset, decoded with the table .fields */
        JSON_DISPATCH_ARRAY,    /* see .element */
        JSON_DISPATCH_CUSTOM,   /* .callback decides; scalar values only */
} JsonDispatchType;

typedef enum JsonDispatchFlags {
        JSON_DISPATCH_REQUIRED = 1 << 0, /* absent is an error */
        JSON_DISPATCH_NULLABLE = 1 << 1, /* null is taken as absent (IDL "?type") */
        JSON_DISPATCH_HEX = 1 << 2,      /* unsigned: "0x1f" strings too; messages in hex */
        JSON_DISPATCH_COPY = 1 << 3,     /* STRING: store a copy the struct owns */
} JsonDispatchFlags;

/* What a driver tells the table about one value. */
typedef enum JsonDispatchKind {
        JSON_DISPATCH_KIND_NULL,
        JSON_DISPATCH_KIND_BOOLEAN,
        JSON_DISPATCH_KIND_INTEGER, /* an integer within [-(2^64-1), 2^64-1] */
        JSON_DISPATCH_KIND_NUMBER,  /* any other number: a fraction, an exponent, too large */
        JSON_DISPATCH_KIND_STRING,
        JSON_DISPATCH_KIND_ARRAY,
        JSON_DISPATCH_KIND_OBJECT,
} JsonDispatchKind;

typedef struct JsonDispatchValue {
        JsonDispatchKind kind;
        bool boolean;        /* BOOLEAN */
        bool negative;       /* INTEGER: the value is -magnitude */
        uint64_t magnitude;  /* INTEGER */
        const char *text;    /* STRING: the decoded bytes, NUL-terminated; NUMBER: the literal */
        size_t length;       /* bytes in text (a STRING may hold a NUL before its end) */
} JsonDispatchValue;

/*
 * The target of an FD_INDEX member: the index of an fd sent beside the document.  The
 * decoder sets index and fd = -EBADF, or index = JSON_DISPATCH_FD_NONE when the member is
 * absent; the transport that carried the fds then puts the fd itself in fd
 * (varlink_call_dispatch() takes it from the call).
 */
typedef struct JsonDispatchFd {
        uint32_t index;
        int fd;
} JsonDispatchFd;

#define JSON_DISPATCH_FD_NONE UINT32_MAX

typedef struct JsonDispatchEnum {
        const char *name;
        uint32_t value;
} JsonDispatchEnum;

/*
 * Where a value sits, for messages: a chain from the member or element to the top, kept on
 * the driver's stack and formatted only when a message needs it ("groups[3].devices[1]").
 */
typedef struct JsonDispatchPath JsonDispatchPath;
struct JsonDispatchPath {
        const JsonDispatchPath *parent; /* NULL at the top */
        const char *name;               /* a member's name; NULL for an array element */
        size_t index;                   /* an element's index */
};

/* CUSTOM: stores v at target (the struct + .offset); -EINVAL with "PATH: ..." in err. */
typedef int (*JsonDispatchCallback)(const JsonDispatchValue *v, void *target,
                                    const JsonDispatchPath *path, Error *err);

typedef struct JsonDispatchField JsonDispatchField;

/*
 * One member.  Several entries in a row may share a name: the value goes to the first whose
 * type takes its kind (an array to ARRAY, an object to OBJECT), else to the last of them
 * (whose message says what was expected) — "page_sizes": [...] or a bitmap.  Such entries
 * must not both own storage at one offset.  Tables end with an entry whose name is NULL and
 * hold at most 64 entries.
 */
struct JsonDispatchField {
        const char *name;
        JsonDispatchType type;
        JsonDispatchFlags flags;
        size_t offset;                  /* of the target in the struct */
        size_t presence;                /* JSON_DISPATCH_PRESENCE(), or 0 */
        int64_t min;                    /* INT; unsigned (≥ 0) */
        uint64_t max;                   /* unsigned, INT, FD_INDEX; STRING bytes; ARRAY elements */
        const JsonDispatchField *fields;        /* OBJECT: the table of the embedded struct */
        /*
         * ARRAY: how each element is decoded (one entry, name unused, offset 0 in the
         * element).  With element_size, the target at .offset is a pointer to a calloc()ed
         * array of that many bytes per element and count_offset locates its size_t count;
         * without, every element is decoded into the target itself (bits OR-ed by a
         * callback, for instance).
         */
        const JsonDispatchField *element;
        size_t element_size;
        size_t count_offset;
        const JsonDispatchEnum *enums;  /* ENUM: ends with { NULL } */
        JsonDispatchCallback callback;  /* CUSTOM */
};

/* Locates a bool in the struct that is set when the member was given (not null). */
#define JSON_DISPATCH_PRESENCE(type, member) (offsetof(type, member) + 1)

/*
 * json_dispatch() - decodes the json-c object o into target with table (NULL: no members).
 *
 * path: where o sits, for messages ("" at the top).  Returns 0; or -EINVAL with "PATH: what
 * is wrong" in err and the top-level member at fault in *ret_field (a table's name or the
 * document's key, valid as long as o; NULL when o itself is no object); or -ENOMEM.  What
 * was decoded before a failure stays in target: json_dispatch_clear() frees it.
 */
int json_dispatch(json_object *o, const JsonDispatchField *table, void *target,
                  const char *path, const char **ret_field, Error *err);

/* Frees what the decoding allocated in target (arrays, copied strings) and resets it. */
void json_dispatch_clear(const JsonDispatchField *table, void *target);

/* The steps of a driver (see above). */

/* The entry for member name (len bytes) with a value of kind; NULL when the table has none. */
const JsonDispatchField *json_dispatch_find(const JsonDispatchField *table, const char *name,
                                            size_t len, JsonDispatchKind kind);
/* Whether a table entry's name is name (len bytes, no NUL): names are short, a loop beats a
 * call. */
static inline bool json_dispatch_name_is(const char *entry, const char *name, size_t len) {
        for (size_t i = 0; i < len; i++)
                if (entry[i] != name[i] || entry[i] == '\0')
                        return false;
        return entry[len] == '\0';
}

/* The same, trying first the entry after last (the entry found for the previous member). */
const JsonDispatchField *json_dispatch_find_next(const JsonDispatchField *table,
                                                 const JsonDispatchField *last, const char *name,
                                                 size_t len, JsonDispatchKind kind);
static inline bool json_dispatch_same_name(const char *a, const char *b) {
        return a[0] == b[0] && strcmp(a, b) == 0;
}

/* Whether f (an entry of table) shares its name with a neighbour: a member taken two ways.
 * Names of neighbours mostly differ in their first byte, so this costs a few instructions. */
static inline bool json_dispatch_in_run(const JsonDispatchField *table,
                                        const JsonDispatchField *f) {
        return (f[1].name && json_dispatch_same_name(f[1].name, f->name)) ||
               (f > table && json_dispatch_same_name(f[-1].name, f->name));
}
/* Decodes one non-container value for f into the struct at target (path names the member). */
int json_dispatch_value(const JsonDispatchField *f, const JsonDispatchValue *v, void *target,
                        const JsonDispatchPath *path, Error *err);
/* Stores the integer u for f (an unsigned or FD_INDEX entry) into the struct at target,
 * as json_dispatch_value() would; -ERANGE, and no message, when u is outside f's range. */
int json_dispatch_unsigned(const JsonDispatchField *f, uint64_t u, void *target);
/* Records f (an entry of table) as given in seen (one bit per entry). */
int json_dispatch_seen(const JsonDispatchField *table, const JsonDispatchField *f,
                       uint64_t *seen);
/* At the end of an object: refuses missing required members, marks absent fds. */
int json_dispatch_finish(const JsonDispatchField *table, uint64_t seen, void *target,
                         const JsonDispatchPath *path, const char **ret_field, Error *err);

/* The value a json-c node holds, as the tree driver hands it to the steps above. */
void json_dispatch_value_of(json_object *o, JsonDispatchValue *ret);

/* path as text in buf ("a.b[3].c", cut to size), "(top level)" for the top; returns buf. */
const char *json_dispatch_path_format(const JsonDispatchPath *path, char *buf, size_t size);
