/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "assert-util.h"
#include "reserved-regions.h"
#include "sysfs.h"
#include "topology-internal.h"

/* The kernel's names, which every interface of iommud uses as they are. */
static const char *const region_type_names[_REGION_TYPE_MAX] = {
        [REGION_DIRECT] = "direct",
        [REGION_DIRECT_RELAXABLE] = "direct-relaxable",
        [REGION_RESERVED] = "reserved",
        [REGION_MSI] = "msi",
        [REGION_UNKNOWN] = "unknown",
};

const char *region_type_to_string(RegionType t) {
        if ((unsigned)t >= _REGION_TYPE_MAX)
                return NULL;
        return region_type_names[t];
}

RegionType region_type_from_string(const char *s) {
        if (!s)
                return REGION_UNKNOWN;
        /* "unknown" itself is not a kernel type, so it is not matched. */
        for (RegionType t = 0; t < REGION_UNKNOWN; t++)
                if (streq(region_type_names[t], s))
                        return t;
        return REGION_UNKNOWN;
}

void reserved_regions_free(ReservedRegion *r, size_t n) {
        if (!r)
                return;
        for (size_t i = 0; i < n; i++)
                free(r[i].type_name);
        free(r);
}

/*
 * Parses one reserved_regions line (without its newline).  On failure writes
 * a sentence to msg and returns false.
 */
static bool region_parse_line(const char *line, size_t n, ReservedRegion *ret, char *msg,
                              size_t msg_size) {
        const char *field[4];
        size_t field_len[4], n_fields = 0;
        uint64_t start, last;

        if (memchr(line, '\0', n)) {
                snprintf(msg, msg_size, "line contains a NUL byte");
                return false;
        }
        for (size_t i = 0; i < n;) {
                while (i < n && (line[i] == ' ' || line[i] == '\t'))
                        i++;
                if (i >= n)
                        break;
                size_t b = i;
                while (i < n && line[i] != ' ' && line[i] != '\t')
                        i++;
                if (n_fields < ELEMENTSOF(field)) {
                        field[n_fields] = line + b;
                        field_len[n_fields] = i - b;
                }
                n_fields++;
        }
        if (n_fields != 3) {
                snprintf(msg, msg_size, "expected 3 fields (start, end, type), got %zu", n_fields);
                return false;
        }
        if (!sysfs_parse_hex_u64(field[0], field_len[0], &start)) {
                snprintf(msg, msg_size, "start '%.*s' is not a hex address", (int)MIN(field_len[0], 40),
                         field[0]);
                return false;
        }
        if (!sysfs_parse_hex_u64(field[1], field_len[1], &last)) {
                snprintf(msg, msg_size, "end '%.*s' is not a hex address", (int)MIN(field_len[1], 40),
                         field[1]);
                return false;
        }
        if (start > last) {
                snprintf(msg, msg_size, "start 0x%016" PRIx64 " is above end 0x%016" PRIx64, start,
                         last);
                return false;
        }

        char *name = strndup(field[2], field_len[2]);
        if (!name) {
                snprintf(msg, msg_size, "out of memory");
                return false;
        }
        *ret = (ReservedRegion){
                .start = start,
                .last = last,
                .type = region_type_from_string(name),
                .type_name = name,
        };
        return true;
}

static int region_cmp(const void *a, const void *b) {
        const ReservedRegion *x = a, *y = b;

        if (x->start != y->start)
                return x->start < y->start ? -1 : 1;
        if (x->last != y->last)
                return x->last < y->last ? -1 : 1;
        return 0;
}

/*
 * Parses every line; bad lines go to problem() (or stop the parse when
 * problem is NULL, with the line in *ret_bad_line and the sentence in msg).
 */
int reserved_regions_parse_lines(const char *text, size_t len, RegionProblemFn problem,
                                 void *userdata, ReservedRegion **ret, size_t *ret_n,
                                 unsigned *ret_bad_line, char *msg, size_t msg_size) {
        ReservedRegion *regions = NULL;
        size_t n = 0, allocated = 0;
        unsigned line_no = 0;

        for (size_t pos = 0; pos < len;) {
                const char *nl = memchr(text + pos, '\n', len - pos);
                size_t line_len = nl ? (size_t)(nl - (text + pos)) : len - pos;
                ReservedRegion r;

                line_no++;
                if (n >= allocated) {
                        size_t na = allocated ? allocated * 2 : 4;
                        ReservedRegion *nr = reallocarray(regions, na, sizeof(*regions));
                        if (!nr) {
                                reserved_regions_free(regions, n);
                                return -ENOMEM;
                        }
                        regions = nr;
                        allocated = na;
                }
                if (region_parse_line(text + pos, line_len, &r, msg, msg_size))
                        regions[n++] = r;
                else if (problem)
                        problem(userdata, line_no, msg);
                else {
                        reserved_regions_free(regions, n);
                        *ret_bad_line = line_no;
                        return -EINVAL;
                }
                pos += line_len + (nl ? 1 : 0);
        }

        if (n > 1)
                qsort(regions, n, sizeof(*regions), region_cmp);
        if (n == 0) {
                free(regions);
                regions = NULL;
        }
        *ret = regions;
        *ret_n = n;
        return 0;
}

int reserved_regions_parse(const char *text, size_t len, ReservedRegion **ret, size_t *ret_n,
                           Error *err) {
        char msg[PROBLEM_MESSAGE_MAX];
        ReservedRegion *regions;
        unsigned bad_line = 0;
        size_t n;
        int r;

        assert_return(text || len == 0, -EINVAL);
        assert_return(ret && ret_n, -EINVAL);

        r = reserved_regions_parse_lines(text, len, NULL, NULL, &regions, &n, &bad_line, msg,
                                         sizeof(msg));
        if (r == -ENOMEM)
                return error_set(err, r, "out of memory parsing reserved regions");
        if (r < 0)
                return error_set(err, r, "line %u: %s", bad_line, msg);
        *ret = regions;
        *ret_n = n;
        return 0;
}
