#define ESC_LOG_MODULE "spikes"
/* Spike rule on per-topic minute counts, in event time. Each topic has a ring of per-minute
 * counts long enough for window + baseline + lateness; slot m % R holds minute m, and a slot
 * that holds another minute reads as zero. Event time moves with the newest created_at seen
 * over all posts; the watermark of a topic is that minus its lateness. Each time a topic's
 * watermark passes the end of a minute m, the window of W minutes ending at m is tested
 * against the B minutes before it (only those inside the observed history, which starts at the
 * first post's minute). Windows are evaluated before the post that moved the watermark is
 * counted, so a post never overwrites a ring slot that a pending window still needs. Up to
 * AGG_SPIKE_SAMPLES texts are kept per minute, and only for minutes a future window can still
 * cover, so sample memory stays around W minutes' worth per topic. Pure logic, single-threaded. */
#include <string.h>

#include "escucha/esc_log.h"
#include "escucha/esc_mem.h"
#include "escucha/esc_util.h"

#include "spikes.h"

#define S_MINUTE_MS 60000
#define S_NONE INT64_MIN

struct s_slot {
    int64_t minute;                       /* absolute minute index held, S_NONE when empty */
    int64_t count;                        /* posts in that minute */
    char *samples[AGG_SPIKE_SAMPLES];     /* first texts of that minute; owned */
    size_t n_samples;
};

struct s_topic {
    struct agg_spike_cfg cfg;
    struct s_slot *ring;                  /* size slots; owned */
    int64_t size;                         /* R, minutes */
    int64_t newest;                       /* newest minute counted, S_NONE before any */
    int64_t last_eval;                    /* last minute whose window was evaluated, or S_NONE */
    int64_t released;                     /* samples of minutes <= this were freed, or S_NONE */
    int64_t last_alert_end;               /* end minute (exclusive) of the last alert, or S_NONE */
};

struct agg_spikes {
    struct s_topic *topics;               /* n; owned */
    size_t n;
    int64_t max_seen_ms;                  /* newest event time seen, S_NONE before any post */
    int64_t history_start;                /* oldest minute counted, S_NONE before any post */
    agg_spike_fn fn;
    void *arg;
};

static int64_t
s_floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;

    if ((a % b != 0) && ((a < 0) != (b < 0))) {
        q--;
    }
    return q;
}

static int64_t
s_max(int64_t a, int64_t b)
{
    return a > b ? a : b;
}

static int64_t
s_min(int64_t a, int64_t b)
{
    return a < b ? a : b;
}

int64_t
agg_spikes_ring_minutes(const struct agg_spike_cfg *cfg)
{
    /* Window and baseline, plus the minutes the watermark trails the newest post, plus slack
     * for the partial minutes at both ends. */
    return cfg->window_min + cfg->baseline_min + (cfg->lateness_s + 59) / 60 + 2;
}

agg_spikes_t *
agg_spikes_new(const struct agg_spike_cfg *cfgs, size_t n_topics, agg_spike_fn fn, void *arg)
{
    agg_spikes_t *self = esc_calloc(1, sizeof(*self));
    size_t i;
    int64_t k;

    self->topics = esc_calloc(n_topics > 0 ? n_topics : 1, sizeof(*self->topics));
    self->n = n_topics;
    self->max_seen_ms = S_NONE;
    self->history_start = S_NONE;
    self->fn = fn;
    self->arg = arg;
    for (i = 0; i < n_topics; i++) {
        struct s_topic *t = &self->topics[i];

        ESC_ASSERT(cfgs[i].window_min >= 1 && cfgs[i].baseline_min >= 1);
        t->cfg = cfgs[i];
        t->size = agg_spikes_ring_minutes(&cfgs[i]);
        t->ring = esc_calloc((size_t)t->size, sizeof(*t->ring));
        for (k = 0; k < t->size; k++) {
            t->ring[k].minute = S_NONE;
        }
        t->newest = S_NONE;
        t->last_eval = S_NONE;
        t->released = S_NONE;
        t->last_alert_end = S_NONE;
    }
    return self;
}

static void
s_slot_free_samples(struct s_slot *s)
{
    size_t i;

    for (i = 0; i < s->n_samples; i++) {
        ESC_FREE(s->samples[i]);
    }
    s->n_samples = 0;
}

void
agg_spikes_destroy(agg_spikes_t **self_p)
{
    agg_spikes_t *self;
    size_t i;
    int64_t k;

    if (self_p == NULL || *self_p == NULL) {
        return;
    }
    self = *self_p;
    for (i = 0; i < self->n; i++) {
        for (k = 0; k < self->topics[i].size; k++) {
            s_slot_free_samples(&self->topics[i].ring[k]);
        }
        esc_free(self->topics[i].ring);
    }
    esc_free(self->topics);
    esc_free(self);
    *self_p = NULL;
}

static struct s_slot *
s_slot(const struct s_topic *t, int64_t minute)
{
    int64_t idx = minute % t->size;

    if (idx < 0) {
        idx += t->size;
    }
    return &t->ring[idx];
}

static int64_t
s_count(const struct s_topic *t, int64_t minute)
{
    const struct s_slot *s = s_slot(t, minute);

    return s->minute == minute ? s->count : 0;
}

/* Copies at most AGG_SPIKE_SAMPLE_MAX bytes of text, cut where no UTF-8 sequence is split. */
static char *
s_sample_dup(const char *text)
{
    size_t n = strlen(text);

    if (n > AGG_SPIKE_SAMPLE_MAX) {
        n = AGG_SPIKE_SAMPLE_MAX;
        while (n > 0 && ((unsigned char)text[n] & 0xC0) == 0x80) {
            n--;
        }
    }
    return esc_strndup(text, n);
}

static void
s_fire(agg_spikes_t *self, size_t ti, int64_t m, int64_t observed, double expected)
{
    struct s_topic *t = &self->topics[ti];
    struct agg_spike s;
    int64_t x;
    size_t i;

    memset(&s, 0, sizeof(s));
    s.topic = ti;
    s.window_start_ms = (m - t->cfg.window_min + 1) * S_MINUTE_MS;
    s.window_end_ms = (m + 1) * S_MINUTE_MS;
    s.observed = observed;
    s.expected = expected;
    s.score = (double)observed / (expected > 1.0 ? expected : 1.0);
    /* samples from the most recent minutes of the window first */
    for (x = m; x > m - t->cfg.window_min && s.n_samples < AGG_SPIKE_SAMPLES; x--) {
        const struct s_slot *slot = s_slot(t, x);

        if (slot->minute != x) {
            continue;
        }
        for (i = 0; i < slot->n_samples && s.n_samples < AGG_SPIKE_SAMPLES; i++) {
            s.samples[s.n_samples++] = slot->samples[i];
        }
    }
    t->last_alert_end = m + 1;
    if (self->fn != NULL) {
        self->fn(self->arg, &s);
    }
}

/* Tests the window of topic ti that ends with minute m (inclusive). */
static void
s_evaluate(agg_spikes_t *self, size_t ti, int64_t m)
{
    struct s_topic *t = &self->topics[ti];
    int64_t w = t->cfg.window_min;
    int64_t ws = m - w + 1;
    int64_t observed = 0;
    int64_t baseline = 0;
    int64_t from;
    int64_t avail;
    int64_t x;
    double expected;

    for (x = ws; x <= m; x++) {
        observed += s_count(t, x);
    }
    if (observed < t->cfg.min_count) {
        return;
    }
    /* baseline minutes [ws - B, ws - 1], but only those inside the observed history */
    from = s_max(ws - t->cfg.baseline_min, self->history_start);
    avail = ws - from;
    if (avail < w) {
        return; /* not enough history to know what is normal */
    }
    for (x = from; x < ws; x++) {
        baseline += s_count(t, x);
    }
    expected = (double)baseline / (double)avail * (double)w;
    if ((double)observed < t->cfg.factor * (expected > 1.0 ? expected : 1.0)) {
        return;
    }
    if (t->last_alert_end != S_NONE && (m + 1) - t->last_alert_end < t->cfg.cooldown_min) {
        return;
    }
    s_fire(self, ti, m, observed, expected);
}

/* Frees the samples of minutes no future window of t can cover any more. */
static void
s_release_samples(struct s_topic *t)
{
    int64_t upto = t->last_eval - t->cfg.window_min + 1;
    int64_t x;

    x = t->released == S_NONE ? upto - t->size + 1 : s_max(t->released + 1, upto - t->size + 1);
    for (; x <= upto; x++) {
        struct s_slot *s = s_slot(t, x);

        if (s->minute == x) {
            s_slot_free_samples(s);
        }
    }
    t->released = upto;
}

/* Evaluates, for every topic, the windows whose end the watermark has passed. */
static void
s_advance(agg_spikes_t *self)
{
    size_t i;

    for (i = 0; i < self->n; i++) {
        struct s_topic *t = &self->topics[i];
        int64_t wm = self->max_seen_ms - t->cfg.lateness_s * 1000;
        int64_t due = s_floor_div(wm, S_MINUTE_MS) - 1; /* minute m is due once (m+1)*60s <= wm */
        int64_t from;
        int64_t to;
        int64_t m;

        if (t->last_eval != S_NONE && due <= t->last_eval) {
            continue;
        }
        if (t->newest == S_NONE) {
            t->last_eval = due; /* no data: nothing can fire */
            continue;
        }
        from = t->last_eval == S_NONE ? self->history_start : t->last_eval + 1;
        from = s_max(from, t->newest - t->size + 1);
        /* windows that end after newest + W - 1 hold no post (min_count >= 1: never fire) */
        to = s_min(due, t->newest + t->cfg.window_min - 1);
        for (m = from; m <= to; m++) {
            s_evaluate(self, i, m);
        }
        t->last_eval = due;
        s_release_samples(t);
    }
}

/* Counts one post in topic t. Returns 0, or -1 when the minute is older than the ring. */
static int
s_record(struct s_topic *t, int64_t minute, const char *text)
{
    struct s_slot *s;

    if (t->newest != S_NONE && minute <= t->newest - t->size) {
        return -1;
    }
    s = s_slot(t, minute);
    if (s->minute != minute) {
        if (s->minute != S_NONE && s->minute > minute) {
            return -1;
        }
        s_slot_free_samples(s);
        s->minute = minute;
        s->count = 0;
    }
    s->count++;
    /* keep samples only where a window still to be evaluated can use them */
    if (text != NULL && text[0] != '\0' && s->n_samples < AGG_SPIKE_SAMPLES
        && (t->last_eval == S_NONE || minute > t->last_eval - t->cfg.window_min + 1)) {
        s->samples[s->n_samples++] = s_sample_dup(text);
    }
    if (t->newest == S_NONE || minute > t->newest) {
        t->newest = minute;
    }
    return 0;
}

size_t
agg_spikes_post(agg_spikes_t *self, int64_t created_at_ms, const size_t *topics, size_t n,
                const char *text)
{
    int64_t minute = s_floor_div(created_at_ms, S_MINUTE_MS);
    size_t ignored = 0;
    size_t i;

    if (self->max_seen_ms == S_NONE || created_at_ms > self->max_seen_ms) {
        if (self->history_start == S_NONE) {
            self->history_start = minute;
        }
        self->max_seen_ms = created_at_ms;
        s_advance(self);
    }
    for (i = 0; i < n; i++) {
        ESC_ASSERT(topics[i] < self->n);
        if (s_record(&self->topics[topics[i]], minute, text) != 0) {
            ignored++;
        }
    }
    if (minute < self->history_start && ignored < n) {
        self->history_start = minute; /* a late post that was counted extends the history */
    }
    return ignored;
}

int64_t
agg_spikes_count(const agg_spikes_t *self, size_t topic, int64_t minute_ms)
{
    const struct s_topic *t;
    int64_t minute = s_floor_div(minute_ms, S_MINUTE_MS);
    const struct s_slot *s;

    ESC_ASSERT(topic < self->n);
    t = &self->topics[topic];
    if (t->newest == S_NONE) {
        return 0;
    }
    if (minute <= t->newest - t->size) {
        return -1;
    }
    s = s_slot(t, minute);
    return s->minute == minute ? s->count : 0;
}

int64_t
agg_spikes_watermark(const agg_spikes_t *self, size_t topic)
{
    ESC_ASSERT(topic < self->n);
    if (self->max_seen_ms == S_NONE) {
        return INT64_MIN;
    }
    return self->max_seen_ms - self->topics[topic].cfg.lateness_s * 1000;
}
