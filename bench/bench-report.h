/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The machine-readable line every benchmark prints for each figure, next to
 * its human output, so that tools/bench can gather one table:
 *
 *   BENCH name=broker.map-unmap-rtt value=12.3 unit=us baseline=6.1 ratio=2.02
 *         target=2 target_on=ratio better=lower
 *
 * (one line).  name is BENCHMARK.FIGURE without spaces; value and baseline
 * are in unit; ratio is value/baseline, measured in the same run; target is
 * compared with the ratio (target_on=ratio) or the value (target_on=value),
 * and better says which side meets it.  A field with nothing to say is "-".
 */

#include <math.h>
#include <stdio.h>

#define BENCH_NONE NAN

static inline void bench_field(const char *key, double v) {
        if (isnan(v))
                printf(" %s=-", key);
        else
                printf(" %s=%.6g", key, v);
}

/* better_lower: the target is an upper bound.  target_on_ratio: it bounds the ratio. */
static inline void bench_report(const char *name, double value, const char *unit,
                                double baseline, double target, int target_on_ratio,
                                int better_lower) {
        printf("BENCH name=%s", name);
        bench_field("value", value);
        printf(" unit=%s", unit);
        bench_field("baseline", baseline);
        bench_field("ratio", isnan(baseline) || baseline == 0 ? BENCH_NONE : value / baseline);
        bench_field("target", target);
        printf(" target_on=%s better=%s\n",
               isnan(target) ? "-" : target_on_ratio ? "ratio" : "value",
               better_lower ? "lower" : "higher");
        fflush(stdout);
}
