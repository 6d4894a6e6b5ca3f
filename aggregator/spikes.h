#ifndef AGG_SPIKES_H
#define AGG_SPIKES_H

/* Spike detection on per-topic minute counts, in event time (docs/aggregator.md has the rule
 * and a worked example). Pure logic: no Redis, no ZeroMQ, no clock, so tests replay days of
 * posts in milliseconds. Single-threaded. */

#include <stddef.h>
#include <stdint.h>

#define AGG_SPIKE_SAMPLES 3      /* sample texts per alert, and kept per topic and minute */
#define AGG_SPIKE_SAMPLE_MAX 280 /* bytes of a sample text kept (cut at a UTF-8 boundary) */

/* The rule's parameters ("aggregator.spike", or a topic's "spike" override). */
struct agg_spike_cfg {
    int64_t window_min;   /* length W of the window that is tested, minutes */
    int64_t baseline_min; /* length B of the baseline just before the window, minutes */
    double factor;        /* fire when observed >= factor * max(expected, 1) ... */
    int64_t min_count;    /* ... and observed >= min_count */
    int64_t cooldown_min; /* after an alert, the next window must end this much later */
    int64_t lateness_s;   /* watermark = newest event time seen - lateness */
};

/* One alert, handed to the callback. */
struct agg_spike {
    size_t topic;            /* topic index, as given to agg_spikes_new */
    int64_t window_start_ms; /* [start, end), Unix ms, minute-aligned */
    int64_t window_end_ms;
    int64_t observed;        /* posts in the window */
    double expected;         /* baseline rate scaled to the window length */
    double score;            /* observed / max(expected, 1) */
    const char *samples[AGG_SPIKE_SAMPLES]; /* borrowed; valid during the callback only */
    size_t n_samples;
};

typedef void (*agg_spike_fn)(void *arg, const struct agg_spike *s);

typedef struct agg_spikes agg_spikes_t;

/* Creates the detector for n_topics topics, topic i using cfgs[i] (copied). fn is called for
 * every alert, from inside agg_spikes_post. Caller owns the result. */
agg_spikes_t *agg_spikes_new(const struct agg_spike_cfg *cfgs, size_t n_topics, agg_spike_fn fn,
                             void *arg);
/* Frees the detector and every kept sample. NULL-safe; sets *self_p = NULL. */
void agg_spikes_destroy(agg_spikes_t **self_p);

/* Feeds one post with event time created_at_ms that matched the topics in topics[0..n) (n may
 * be 0: the post still moves event time forward). First every window whose end the new
 * watermark has passed is evaluated (alerts go to the callback), then the post is counted in
 * each topic's minute ring and text (may be NULL) is kept as a sample. Returns how many of the
 * n topics ignored the post because its minute is older than their ring. */
size_t agg_spikes_post(agg_spikes_t *self, int64_t created_at_ms, const size_t *topics, size_t n,
                       const char *text);

/* Posts counted for topic in the minute that contains minute_ms, or -1 when that minute is
 * outside the topic's ring. */
int64_t agg_spikes_count(const agg_spikes_t *self, size_t topic, int64_t minute_ms);

/* The watermark of topic (Unix ms), or INT64_MIN before the first post. */
int64_t agg_spikes_watermark(const agg_spikes_t *self, size_t topic);

/* Minutes of history the ring of a topic with this configuration holds. */
int64_t agg_spikes_ring_minutes(const struct agg_spike_cfg *cfg);

#endif
