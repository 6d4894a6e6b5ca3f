#ifndef AGG_SPIKES_H
#define AGG_SPIKES_H

/* Spike detection on per-topic count series (docs/aggregator.md, "Spike detection"). Two
 * layers, both pure logic (no Redis, no ZeroMQ, no clock), so tests replay weeks in
 * milliseconds. Single-threaded.
 *
 * - agg_spike_series_t: the numeric rule on one regular series (a step of 1 to 60 minutes):
 *   a seasonal baseline from compact hourly history, a count test (Poisson tail with learnt
 *   overdispersion, or a robust z-score), the min-count / factor guards, cooldown and the
 *   "ended" state. The live detector uses one per topic with 1-minute steps; --backtest uses
 *   one on a CSV series.
 * - agg_spikes_t: per-topic event-time layer for the aggregator. Posts are counted per minute;
 *   a minute is closed (fed to the topic's series) once the watermark has passed it, or, for a
 *   topic switched to external counts, when the caller feeds the minute's merged count. It keeps
 *   what an alert needs to explain itself: the most engaged posts and a text sample of every
 *   minute a future window can still cover, and background term frequencies. */

#include <stddef.h>
#include <stdint.h>

#include "terms.h"

#define AGG_SPIKE_SAMPLES 3        /* sample posts per alert (the most engaged of the window) */
#define AGG_SPIKE_SAMPLE_MAX 280   /* bytes of a sample text kept (cut at a UTF-8 boundary) */
#define AGG_SPIKE_TERMS 10         /* top terms per alert */
#define AGG_SPIKE_TEXTS 16         /* texts sampled per topic and minute for the terms */
#define AGG_SPIKE_HIST_HOURS 840   /* hourly history per topic: 5 weeks */
#define AGG_SPIKE_RESID 64         /* residuals kept to learn the dispersion */
#define AGG_SPIKE_METHOD_MAX 16    /* size of agg_spike_cfg.method */

/* The rule's parameters ("aggregator.spike", or a topic's "spike" override). Defaults and
 * bounds live in config.c. */
struct agg_spike_cfg {
    int64_t window_min;    /* length W of the window that is tested, minutes */
    int64_t baseline_min;  /* trailing baseline length before the window (short history) */
    double factor;         /* guard: observed >= factor * max(expected, 1) ... */
    int64_t min_count;     /* ... and observed >= min_count */
    int64_t cooldown_min;  /* a new alert's window must end this long after the previous one's */
    int64_t lateness_s;    /* watermark = newest event time seen - lateness */
    char method[AGG_SPIKE_METHOD_MAX]; /* "poisson" or "zscore" */
    double p_threshold;    /* poisson: significant when p < p_threshold */
    double z_threshold;    /* zscore: significant when z >= z_threshold */
    double max_dispersion; /* cap of the learnt variance/mean ratio (1 = plain Poisson) */
    int64_t end_minutes;   /* an alert ends after this many calm minutes in a row */
    double end_z;          /* calm: observed <= expected + end_z * sqrt(dispersion * expected) */
};

/* ---- The numeric rule on one series ------------------------------------------------------ */

typedef struct agg_spike_series agg_spike_series_t;

/* What one step's evaluation found. */
struct agg_spike_eval {
    int evaluated;           /* 0: not enough history yet (or, lazy series, nothing to test) */
    const char *stage;       /* baseline used: "weekly", "daily" or "trailing"; static */
    int64_t window_start_ms; /* the tested window [start, end), Unix ms */
    int64_t window_end_ms;
    int64_t observed;        /* count in the window */
    double expected;         /* baseline expectation of the window's count */
    double score;            /* poisson: -log10(p); zscore: z */
    double p;                /* Poisson tail P(X >= observed), dispersion applied */
    double dispersion;       /* variance/mean ratio in use (>= 1) */
    int fired;               /* a spike alert starts with this window */
    int ended;               /* the running spike ended; the ep_ fields describe it */
    int64_t ep_start_ms;     /* ended: [first window start, end of its last elevated window) */
    int64_t ep_end_ms;
    int64_t ep_observed;     /* ended: count over that range */
    double ep_expected;      /* ended: baseline expectation over that range */
    double ep_peak;          /* ended: the highest score of the spike */
};

/* Creates the rule for a series with steps of step_min minutes (a divisor of 60). The window,
 * baseline, cooldown and end lengths are rounded to whole steps (at least one). lazy: skip the
 * baseline and test for windows that cannot fire and are not inside a spike (the live path;
 * --backtest wants every row evaluated). cfg is copied. Returns NULL when step_min does not
 * divide 60. Caller owns the result. */
agg_spike_series_t *agg_spike_series_new(const struct agg_spike_cfg *cfg, int64_t step_min,
                                         int lazy);
/* NULL-safe; sets *self_p = NULL. */
void agg_spike_series_destroy(agg_spike_series_t **self_p);

/* Closes the step that starts at start_ms (step-aligned) with count value and evaluates the
 * window that ends with it, into out. Steps come in order without gaps: the first call starts
 * the history, each later one must be the next step (a missing step is a step of 0). */
void agg_spike_series_push(agg_spike_series_t *self, int64_t start_ms, int64_t value,
                           struct agg_spike_eval *out);

/* Adds delta to an already closed step (a late post). Returns 0, or -1 when the step is older
 * than the steps kept (then only the hourly history, if it still holds that hour, changes). */
int agg_spike_series_add_late(agg_spike_series_t *self, int64_t start_ms, int64_t delta);

/* Seeds the hourly history with n complete hours starting at first_hour_ms (hour-aligned),
 * e.g. read back from Redis hour buckets after a restart. Call before the first push; hours
 * older than AGG_SPIKE_HIST_HOURS before the last one are dropped. */
void agg_spike_series_seed_hours(agg_spike_series_t *self, int64_t first_hour_ms,
                                 const int64_t *counts, size_t n);

/* Forgets everything (history, spike state, dispersion) but keeps the configuration. */
void agg_spike_series_reset(agg_spike_series_t *self);

/* Start (Unix ms) of the last closed step, or INT64_MIN before the first push. */
int64_t agg_spike_series_last(const agg_spike_series_t *self);

/* Count of the closed step starting at start_ms, or -1 when it is not kept. */
int64_t agg_spike_series_value(const agg_spike_series_t *self, int64_t start_ms);

/* Window length in steps, after rounding. */
int64_t agg_spike_series_window_steps(const agg_spike_series_t *self);

/* ln P(X >= k) for X following a Poisson law of mean lambda whose variance is inflated by
 * dispersion (>= 1; 1 = plain Poisson), computed as the regularized lower incomplete gamma
 * function P(k / dispersion, lambda / dispersion) in log space, so values far below 1e-300
 * are still exact. k <= 0 gives 0. */
double agg_spike_poisson_log_sf(int64_t k, double lambda, double dispersion);

/* ---- Per-topic event-time layer ---------------------------------------------------------- */

/* The parts of a post the spike layer keeps (borrowed for the call). */
struct agg_spike_post {
    int64_t created_at_ms; /* event time */
    const char *text;      /* may be NULL */
    const char *author;    /* handle, may be NULL */
    const char *url;       /* may be NULL */
    int64_t engagement;    /* likes + reposts + replies: picks the sample posts */
};

enum agg_spike_kind {
    AGG_SPIKE_START = 0,   /* "spike" */
    AGG_SPIKE_END,         /* "ended" */
};

struct agg_spike_sample {
    const char *text;      /* borrowed (valid during the callback); never NULL */
    const char *author;    /* "" when unknown */
    const char *url;       /* "" when unknown */
    int64_t engagement;
};

/* One alert, handed to the callback. */
struct agg_spike {
    size_t topic;            /* topic index, as given to agg_spikes_new */
    enum agg_spike_kind kind;
    int64_t window_start_ms; /* spike: the window that fired; ended: the whole spike */
    int64_t window_end_ms;   /* [start, end), Unix ms, minute-aligned */
    int64_t observed;        /* posts in that range */
    double expected;         /* posts the baseline expected in that range */
    double score;            /* poisson: -log10(p); zscore: z (ended: the spike's peak score) */
    double p;                /* spike: Poisson tail probability of the window */
    const char *stage;       /* baseline stage, "weekly" | "daily" | "trailing" (static) */
    struct agg_spike_sample samples[AGG_SPIKE_SAMPLES]; /* spike only: most engaged first */
    size_t n_samples;
    const char *terms[AGG_SPIKE_TERMS]; /* spike only: most distinctive first; borrowed */
    size_t n_terms;
};

typedef void (*agg_spike_fn)(void *arg, const struct agg_spike *s);

typedef struct agg_spikes agg_spikes_t;

/* Creates the detector for n_topics topics, topic i using cfgs[i] (copied). fn is called for
 * every alert, from inside agg_spikes_add / agg_spikes_minute. Caller owns the result. */
agg_spikes_t *agg_spikes_new(const struct agg_spike_cfg *cfgs, size_t n_topics, agg_spike_fn fn,
                             void *arg);
/* Frees the detector and everything it kept. NULL-safe; sets *self_p = NULL. */
void agg_spikes_destroy(agg_spikes_t **self_p);

/* Feeds one post that matched topics[0..n) (n may be 0: the post still moves event time).
 * First, every minute the new watermark has passed is closed for each topic with local counts
 * (alerts go to the callback); then the post is counted in each topic and its content kept
 * where a future window can use it. Returns how many of the n topics ignored the post because
 * its minute is older than what they keep. */
size_t agg_spikes_add(agg_spikes_t *self, const struct agg_spike_post *p, const size_t *topics,
                      size_t n);

/* external != 0: the topic's minutes are no longer closed from local counts; the caller feeds
 * each closed minute's count (e.g. merged from Redis by the instance holding the topic's lease)
 * with agg_spikes_minute. Posts given to agg_spikes_add still provide samples and terms. */
void agg_spikes_set_external(agg_spikes_t *self, size_t topic, int external);

/* Closes minute minute_ms (minute-aligned) of an external topic with count posts and evaluates
 * it. Minutes must come in order: the first call starts the history; a minute after a gap
 * closes the missing minutes as 0 first. A minute at or before the last closed one is ignored
 * (returns -1); otherwise returns 0. */
int agg_spikes_minute(agg_spikes_t *self, size_t topic, int64_t minute_ms, int64_t count);

/* Start (Unix ms) of the last minute closed for topic, or INT64_MIN before any. */
int64_t agg_spikes_last_closed(const agg_spikes_t *self, size_t topic);

/* Seeds the hourly history of topic (see agg_spike_series_seed_hours); call before the topic's
 * first minute is closed, e.g. at start-up with the Redis hour buckets of the last 5 weeks. */
void agg_spikes_seed_hours(agg_spikes_t *self, size_t topic, int64_t first_hour_ms,
                           const int64_t *counts, size_t n);

/* Posts counted for topic in the minute that contains minute_ms, or -1 when that minute is
 * older than what the topic keeps. */
int64_t agg_spikes_count(const agg_spikes_t *self, size_t topic, int64_t minute_ms);

/* The watermark of topic (Unix ms), or INT64_MIN before the first post. */
int64_t agg_spikes_watermark(const agg_spikes_t *self, size_t topic);

/* How many minutes back a late post still counts for a topic with this configuration. */
int64_t agg_spikes_ring_minutes(const struct agg_spike_cfg *cfg);

#endif
