/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The tables the json-dispatch fuzz targets decode with: every scalar type in one flat
 * table, and a second with an embedded object and arrays.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "json-dispatch.h"

typedef struct Scalars {
        uint8_t u8;
        uint16_t u16;
        uint32_t u32;
        uint64_t u64;
        bool has_u64;
        int i;
        bool b;
        const char *s;
        char *copy;
        uint32_t e;
        JsonDispatchFd fd;
        uint64_t mask;
        uint64_t nine;   /* a name past the first word the cursor's plans compare */
        bool longer;     /* a name past both */
} Scalars;

static const JsonDispatchEnum words[] = { { "success", 0 }, { "invalid", 1 }, {} };

/* Any integer is taken; its low bits are OR-ed in. */
static int mask_add(const JsonDispatchValue *v, void *target, const JsonDispatchPath *path,
                    Error *err) {
        char p[JSON_DISPATCH_PATH_MAX];

        if (v->kind != JSON_DISPATCH_KIND_INTEGER)
                return error_set(err, -EINVAL, "%s: expected an integer",
                                 json_dispatch_path_format(path, p, sizeof(p)));
        *(uint64_t *)target |= v->magnitude & 0xff;
        return 0;
}

static const JsonDispatchField scalar_fields[] = {
        { "u8", JSON_DISPATCH_UINT8, JSON_DISPATCH_HEX, offsetof(Scalars, u8), .max = 20 },
        { "u16", JSON_DISPATCH_UINT16, 0, offsetof(Scalars, u16) },
        { "u32", JSON_DISPATCH_UINT32, JSON_DISPATCH_REQUIRED, offsetof(Scalars, u32), .min = 1 },
        { "u64", JSON_DISPATCH_UINT64, JSON_DISPATCH_NULLABLE, offsetof(Scalars, u64),
          .presence = JSON_DISPATCH_PRESENCE(Scalars, has_u64) },
        { "int", JSON_DISPATCH_INT, 0, offsetof(Scalars, i), .min = -1, .max = 1023 },
        { "bool", JSON_DISPATCH_BOOL, JSON_DISPATCH_NULLABLE, offsetof(Scalars, b) },
        { "string", JSON_DISPATCH_STRING, 0, offsetof(Scalars, s), .max = 16 },
        { "copy", JSON_DISPATCH_STRING, JSON_DISPATCH_COPY, offsetof(Scalars, copy) },
        { "enum", JSON_DISPATCH_ENUM, 0, offsetof(Scalars, e), .enums = words },
        { "fd", JSON_DISPATCH_FD_INDEX, JSON_DISPATCH_NULLABLE, offsetof(Scalars, fd) },
        { "mask", JSON_DISPATCH_CUSTOM, 0, offsetof(Scalars, mask), .callback = mask_add },
        { "mask", JSON_DISPATCH_UINT64, JSON_DISPATCH_HEX, offsetof(Scalars, mask) },
        { "nineBytes", JSON_DISPATCH_UINT64, 0, offsetof(Scalars, nine) },
        { "nameLongerThanSixteen", JSON_DISPATCH_BOOL, 0, offsetof(Scalars, longer) },
        {},
};

typedef struct Range {
        uint64_t start, last;
        char *name;
} Range;

typedef struct Nested {
        Scalars inner;
        Range *ranges;
        size_t n_ranges;
        uint64_t bits;
} Nested;

static const JsonDispatchField range_fields[] = {
        { "start", JSON_DISPATCH_UINT64, JSON_DISPATCH_REQUIRED, offsetof(Range, start) },
        { "last", JSON_DISPATCH_UINT64, JSON_DISPATCH_REQUIRED, offsetof(Range, last) },
        { "name", JSON_DISPATCH_STRING, JSON_DISPATCH_COPY | JSON_DISPATCH_NULLABLE,
          offsetof(Range, name) },
        {},
};
static const JsonDispatchField range_element = { .type = JSON_DISPATCH_OBJECT,
                                                 .fields = range_fields };
static const JsonDispatchField bit_element = { .type = JSON_DISPATCH_CUSTOM,
                                               .callback = mask_add };

static const JsonDispatchField nested_fields[] = {
        { "inner", JSON_DISPATCH_OBJECT, JSON_DISPATCH_NULLABLE, offsetof(Nested, inner),
          .fields = scalar_fields },
        { "ranges", JSON_DISPATCH_ARRAY, 0, offsetof(Nested, ranges), .max = 64,
          .element = &range_element, .element_size = sizeof(Range),
          .count_offset = offsetof(Nested, n_ranges) },
        { "bits", JSON_DISPATCH_ARRAY, 0, offsetof(Nested, bits), .element = &bit_element },
        {},
};
