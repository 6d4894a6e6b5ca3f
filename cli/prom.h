#ifndef CLI_PROM_H
#define CLI_PROM_H

/* What `escucha up` needs of the Prometheus text format: the sum of one metric over its
 * label sets, counters that keep counting across the restarts of the process exporting them,
 * and per-second rates over a short sliding window. Pure functions, no I/O. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Sums the values of every sample named exactly `name` in the exposition text (len bytes, need
 * not be NUL-terminated), whatever its labels. Comment lines (# HELP, # TYPE) and malformed
 * lines are skipped; name_bucket, name_sum and the like are other names. Returns true and
 * *sum when at least one sample was found, false (and *sum = 0) otherwise. */
bool cli_prom_sum(const char *text, size_t len, const char *name, double *sum);

/* A counter read from one process: when the process restarts, its counter starts again from
 * zero; `base` keeps what the earlier lives counted, so total() never goes backwards. */
struct cli_counter {
    double base; /* sum of the last values of earlier lives */
    double last; /* last value read from the current life */
    bool seen;   /* a value was read at least once */
};

/* Records a value read from the process. A value below the last one means the process
 * restarted without cli_counter_reset having been called: the last value moves to base. */
void cli_counter_update(struct cli_counter *c, double v);
/* The process restarted: what it counted so far moves to base, the next value starts at 0. */
void cli_counter_reset(struct cli_counter *c);
/* base + last: everything counted by every life of the process. */
double cli_counter_total(const struct cli_counter *c);

#define CLI_RATE_SAMPLES 16

/* Per-second rate of a growing total over the samples of the last window_ms. */
struct cli_rate {
    int64_t t_ms[CLI_RATE_SAMPLES]; /* sample times (any monotonic clock) */
    double v[CLI_RATE_SAMPLES];     /* totals at those times */
    size_t n;                       /* samples held, at most CLI_RATE_SAMPLES */
    size_t head;                    /* index of the next sample to write */
    int64_t window_ms;              /* how far back the rate looks */
};

void cli_rate_init(struct cli_rate *r, int64_t window_ms);
/* Adds the total observed at t_ms (t_ms must not go backwards). */
void cli_rate_add(struct cli_rate *r, int64_t t_ms, double total);
/* (newest - oldest sample within window_ms of the newest) / elapsed seconds; 0 with fewer than
 * two samples in the window or when the total went down. */
double cli_rate_get(const struct cli_rate *r);
/* True when the samples cover at least the whole window and the total did not change over
 * it: nothing moved for window_ms. */
bool cli_rate_quiet(const struct cli_rate *r);

#endif
