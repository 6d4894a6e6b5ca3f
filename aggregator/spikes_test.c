#define ESC_LOG_MODULE "test"
/* Unit tests of spike detection (spikes.c): pure logic, so weeks of synthetic series replay in
 * milliseconds. Times are minutes after T0 (Monday 2026-11-16T00:00:00Z). Noisy series come
 * from a seeded generator, so every run sees the same numbers. The event-time tests check every
 * alert's exact window, counts, samples and terms; the series tests check where alerts fire on
 * level shifts, bursts, ramps and daily / weekly cycles. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "escucha/esc_log.h"

#include "spikes.h"

#define T0 1794787200000LL /* Monday 2026-11-16T00:00:00Z */
#define MIN(m) (T0 + (int64_t)(m) * 60000)
#define DAY 1440
#define WEEK (7 * DAY)
#define MAX_HITS 64

/* ---- helpers ---- */

struct hit {
    struct agg_spike a;                 /* borrowed pointers cleared */
    char sample[AGG_SPIKE_SAMPLES][AGG_SPIKE_SAMPLE_MAX + 1];
    char author[AGG_SPIKE_SAMPLES][64];
    char term[AGG_SPIKE_TERMS][AGG_TERM_MAX + 1];
};

struct hits {
    struct hit h[MAX_HITS];
    size_t n;
};

static void
s_collect(void *arg, const struct agg_spike *s)
{
    struct hits *hs = arg;
    struct hit *h;
    size_t i;

    assert_true(hs->n < MAX_HITS);
    h = &hs->h[hs->n++];
    h->a = *s;
    for (i = 0; i < s->n_samples; i++) {
        snprintf(h->sample[i], sizeof(h->sample[i]), "%s", s->samples[i].text);
        snprintf(h->author[i], sizeof(h->author[i]), "%s", s->samples[i].author);
        h->a.samples[i].text = NULL;
        h->a.samples[i].author = NULL;
        h->a.samples[i].url = NULL;
    }
    for (i = 0; i < s->n_terms; i++) {
        snprintf(h->term[i], sizeof(h->term[i]), "%s", s->terms[i]);
        h->a.terms[i] = NULL;
    }
    h->a.stage = NULL;
}

static size_t
s_count_kind(const struct hits *hs, enum agg_spike_kind kind)
{
    size_t n = 0;
    size_t i;

    for (i = 0; i < hs->n; i++) {
        n += hs->h[i].a.kind == kind;
    }
    return n;
}

static struct agg_spike_cfg
s_cfg(int64_t w, int64_t b, int64_t cooldown, int64_t lateness_s)
{
    struct agg_spike_cfg c;

    memset(&c, 0, sizeof(c));
    c.window_min = w;
    c.baseline_min = b;
    c.factor = 4.0;
    c.min_count = 20;
    c.cooldown_min = cooldown;
    c.lateness_s = lateness_s;
    snprintf(c.method, sizeof(c.method), "poisson");
    c.p_threshold = 1e-4;
    c.z_threshold = 5.0;
    c.max_dispersion = 5.0;
    c.end_minutes = 30;
    c.end_z = 2.0;
    return c;
}

/* The configuration defaults (config.c) */
static struct agg_spike_cfg
s_default_cfg(void)
{
    return s_cfg(30, 1440, 180, 120);
}

/* One post at minute m, second sec, for a single topic. */
static size_t
s_post(agg_spikes_t *sp, int64_t m, int sec, size_t topic, const char *text, int64_t eng)
{
    struct agg_spike_post p;
    char author[32];

    snprintf(author, sizeof(author), "@a%lld", (long long)eng);
    memset(&p, 0, sizeof(p));
    p.created_at_ms = MIN(m) + sec * 1000;
    p.text = text;
    p.author = author;
    p.url = "https://example.org/p";
    p.engagement = eng;
    return agg_spikes_add(sp, &p, &topic, 1);
}

/* Steady history: one post per minute at second 30, minutes [from, to). */
static void
s_steady(agg_spikes_t *sp, int64_t from, int64_t to, size_t topic)
{
    int64_t m;

    for (m = from; m < to; m++) {
        s_post(sp, m, 30, topic, "sesión del congreso hoy", 0);
    }
}

/* Steady 1/min plus `extra` burst posts per minute over minutes [from, to), in time order. */
static void
s_burst(agg_spikes_t *sp, int64_t from, int64_t to, int extra, size_t topic)
{
    char text[96];
    int64_t m;
    int k;

    for (m = from; m < to; m++) {
        for (k = 0; k < extra; k++) {
            snprintf(text, sizeof(text), "vacancia presidencial congreso votación m%lld",
                     (long long)m);
            s_post(sp, m, k * 5, topic, text, k);
        }
        s_post(sp, m, 30, topic, "sesión del congreso hoy", 0);
    }
}

/* Deterministic noise: splitmix64, uniform (0, 1), Poisson and Gamma draws. */
static uint64_t s_rng = 42;

static double
s_uniform(void)
{
    uint64_t z;

    s_rng += 0x9E3779B97F4A7C15ULL;
    z = s_rng;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    z ^= z >> 31;
    return ((double)(z >> 11) + 0.5) / 9007199254740992.0;
}

static int64_t
s_poisson(double lambda)
{
    double l;
    double p = 1.0;
    int64_t k = 0;

    if (lambda > 30.0) {
        /* normal approximation, Box-Muller */
        double z = sqrt(-2.0 * log(s_uniform())) * cos(6.283185307179586 * s_uniform());
        double v = floor(lambda + sqrt(lambda) * z + 0.5);

        return v < 0.0 ? 0 : (int64_t)v;
    }
    l = exp(-lambda);
    do {
        k++;
        p *= s_uniform();
    } while (p > l);
    return k - 1;
}

/* Gamma(shape k integer, mean) as a sum of exponentials. */
static double
s_gamma(int k, double mean)
{
    double s = 0.0;
    int i;

    for (i = 0; i < k; i++) {
        s += -log(s_uniform());
    }
    return s * mean / (double)k;
}

/* Series run: pushes values, records the steps where a spike fired / ended. */
struct run {
    int64_t fired[MAX_HITS];  /* minute index (relative to T0) of the window end */
    size_t n_fired;
    int64_t ended[MAX_HITS];
    size_t n_ended;
    struct agg_spike_eval last; /* last evaluation that was evaluated */
    struct agg_spike_eval first_fire;
};

static void
s_push(agg_spike_series_t *s, int64_t step, int64_t step_min, int64_t v, struct run *r)
{
    struct agg_spike_eval ev;

    agg_spike_series_push(s, T0 + step * step_min * 60000, v, &ev);
    if (ev.evaluated) {
        r->last = ev;
    }
    if (ev.fired) {
        assert_true(r->n_fired < MAX_HITS);
        if (r->n_fired == 0) {
            r->first_fire = ev;
        }
        r->fired[r->n_fired++] = (ev.window_end_ms - T0) / 60000;
    }
    if (ev.ended) {
        assert_true(r->n_ended < MAX_HITS);
        r->ended[r->n_ended++] = (ev.window_end_ms - T0) / 60000;
    }
}

static size_t
s_fired_between(const struct run *r, int64_t from, int64_t to)
{
    size_t n = 0;
    size_t i;

    for (i = 0; i < r->n_fired; i++) {
        n += r->fired[i] >= from && r->fired[i] < to;
    }
    return n;
}

/* ---- event-time layer ---- */

/* Happy path and usage example: a burst of 50 posts in 10 minutes over a steady 1/min history
 * raises one alert, on the first window that passes the test and both guards, with the most
 * engaged posts and the burst's own words; 30 calm minutes later an "ended" event covers the
 * whole spike. */
static void
test_spikes_burst_alerts_once(void **state)
{
    struct agg_spike_cfg cfgs[2] = { s_cfg(10, 60, 60, 0), s_cfg(10, 60, 60, 0) };
    struct hits h;
    agg_spikes_t *sp;
    int64_t m;

    memset(&h, 0, sizeof(h));
    sp = agg_spikes_new(cfgs, 2, s_collect, &h);
    for (m = 0; m < 120; m++) {
        s_steady(sp, m, m + 1, 1); /* topic 1 stays steady throughout */
        s_steady(sp, m, m + 1, 0);
    }
    s_burst(sp, 120, 124, 5, 0);
    s_post(sp, 123, 40, 0, "la vacancia se vota en el congreso", 500); /* the most engaged */
    s_burst(sp, 124, 130, 5, 0);
    s_steady(sp, 130, 141, 0); /* moves the watermark well past the burst */
    assert_int_equal(h.n, 1);
    /* window ending at minute 125: 10 steady + 6 x 5 burst + 1 = 41 >= 4 x expected 10 */
    assert_int_equal(h.h[0].a.kind, AGG_SPIKE_START);
    assert_int_equal(h.h[0].a.topic, 0);
    assert_int_equal(h.h[0].a.window_start_ms, MIN(116));
    assert_int_equal(h.h[0].a.window_end_ms, MIN(126));
    assert_int_equal(h.h[0].a.observed, 41);
    assert_true(fabs(h.h[0].a.expected - 10.0) < 1e-9);
    /* score = -log10 P(X >= 41 | 10) */
    assert_true(fabs(h.h[0].a.score + agg_spike_poisson_log_sf(41, 10.0, 1.0) / log(10.0))
                < 1e-9);
    assert_true(h.h[0].a.score > 12.0 && h.h[0].a.p < 1e-12);
    /* samples: most engaged first (500, then engagement 4 of the newest minute) */
    assert_int_equal(h.h[0].a.n_samples, AGG_SPIKE_SAMPLES);
    assert_string_equal(h.h[0].sample[0], "la vacancia se vota en el congreso");
    assert_string_equal(h.h[0].author[0], "@a500");
    assert_string_equal(h.h[0].sample[1], "vacancia presidencial congreso votación m125");
    assert_string_equal(h.h[0].author[1], "@a4");
    /* terms: the burst's words before "congreso", which every post of the topic has */
    assert_true(h.h[0].a.n_terms >= 4);
    assert_string_equal(h.h[0].term[0], "vacancia");
    assert_int_equal(agg_spikes_count(sp, 0, MIN(123)), 7);
    assert_int_equal(agg_spikes_count(sp, 0, MIN(125)), 6);
    assert_int_equal(agg_spikes_count(sp, 1, MIN(125)), 0);

    /* calm from the window ending at 137 on; 30 calm minutes end the spike, which covers
     * [116, 137): 21 steady posts, 50 burst posts and the engaged one */
    s_steady(sp, 141, 200, 0);
    assert_int_equal(h.n, 2);
    assert_int_equal(h.h[1].a.kind, AGG_SPIKE_END);
    assert_int_equal(h.h[1].a.window_start_ms, MIN(116));
    assert_int_equal(h.h[1].a.window_end_ms, MIN(137));
    assert_int_equal(h.h[1].a.observed, 72);
    assert_true(h.h[1].a.expected > 23.0 && h.h[1].a.expected < 24.0);
    assert_true(h.h[1].a.score >= h.h[0].a.score);
    assert_int_equal(h.h[1].a.n_samples, 0);
    agg_spikes_destroy(&sp);
    assert_null(sp);
}

/* A post of several topics is kept once for all of them (shared, reference-counted): the
 * same burst fed to two topics in single calls gives both alerts the same samples, terms and
 * counts as a topic fed alone, and the copies go when the last topic lets them go (leaks
 * and double frees fail under ASan). */
static void
test_spikes_post_shared_by_topics(void **state)
{
    struct agg_spike_cfg cfgs[3] = { s_cfg(10, 60, 60, 0), s_cfg(10, 60, 60, 0),
                                     s_cfg(10, 60, 60, 0) };
    const size_t both[2] = { 0, 1 };
    const size_t alone = 2;
    struct agg_spike_post p;
    struct hits h;
    agg_spikes_t *sp;
    char text[96];
    int64_t m;
    int k;

    (void)state;
    memset(&h, 0, sizeof(h));
    sp = agg_spikes_new(cfgs, 3, s_collect, &h);
    for (m = 0; m < 141; m++) {
        if (m >= 120 && m < 130) {
            for (k = 0; k < 5; k++) {
                snprintf(text, sizeof(text), "vacancia presidencial congreso votación m%lld",
                         (long long)m);
                memset(&p, 0, sizeof(p));
                p.created_at_ms = MIN(m) + k * 5000;
                p.text = text;
                p.author = k == 4 ? "@mucho" : "@poco";
                p.url = "https://example.org/p";
                p.engagement = k == 4 && m == 123 ? 500 : k;
                assert_int_equal(agg_spikes_add(sp, &p, both, 2), 0);
                assert_int_equal(agg_spikes_add(sp, &p, &alone, 1), 0);
            }
        }
        memset(&p, 0, sizeof(p));
        p.created_at_ms = MIN(m) + 30000;
        p.text = "sesión del congreso hoy";
        assert_int_equal(agg_spikes_add(sp, &p, both, 2), 0);
        assert_int_equal(agg_spikes_add(sp, &p, &alone, 1), 0);
    }
    assert_int_equal(h.n, 3);
    for (k = 1; k < 3; k++) {
        size_t i;

        assert_int_equal(h.h[k].a.kind, AGG_SPIKE_START);
        assert_int_equal(h.h[k].a.window_end_ms, h.h[0].a.window_end_ms);
        assert_int_equal(h.h[k].a.observed, h.h[0].a.observed);
        assert_int_equal(h.h[k].a.n_samples, AGG_SPIKE_SAMPLES);
        assert_int_equal(h.h[k].a.n_samples, h.h[0].a.n_samples);
        for (i = 0; i < h.h[0].a.n_samples; i++) {
            assert_string_equal(h.h[k].sample[i], h.h[0].sample[i]);
            assert_string_equal(h.h[k].author[i], h.h[0].author[i]);
        }
        assert_int_equal(h.h[k].a.n_terms, h.h[0].a.n_terms);
        for (i = 0; i < h.h[0].a.n_terms; i++) {
            assert_string_equal(h.h[k].term[i], h.h[0].term[i]);
        }
    }
    assert_string_equal(h.h[0].sample[0], "vacancia presidencial congreso votación m123");
    assert_string_equal(h.h[0].author[0], "@mucho");
    assert_true(h.h[0].a.n_terms >= 2); /* the burst's words, e.g. "vacancia" */
    assert_true(strcmp(h.h[0].term[0], "vacancia") == 0
                || strcmp(h.h[0].term[0], "presidencial") == 0);
    agg_spikes_destroy(&sp);
}

/* Two posts a minute for two days with the default rule: nothing fires. */
static void
test_spikes_steady_series_no_alert(void **state)
{
    struct agg_spike_cfg cfg = s_default_cfg();
    struct hits h;
    agg_spikes_t *sp;
    int64_t m;

    memset(&h, 0, sizeof(h));
    sp = agg_spikes_new(&cfg, 1, s_collect, &h);
    for (m = 0; m < 2 * DAY; m++) {
        s_post(sp, m, 10, 0, "a", 0);
        s_post(sp, m, 40, 0, "b", 0);
    }
    assert_int_equal(h.n, 0);
    assert_int_equal(agg_spikes_watermark(sp, 0), MIN(2 * DAY - 1) + 40000 - 120000);
    assert_int_equal(agg_spikes_count(sp, 0, MIN(2 * DAY - 1)), 2);
    agg_spikes_destroy(&sp);
}

/* Bursts A (minutes 120-129, +5/min), B (170-179, +10/min) and C (300-309, +5/min). */
static void
s_three_bursts(agg_spikes_t *sp)
{
    s_steady(sp, 0, 120, 0);
    s_burst(sp, 120, 130, 5, 0);
    s_steady(sp, 130, 170, 0);
    s_burst(sp, 170, 180, 10, 0);
    s_steady(sp, 180, 300, 0);
    s_burst(sp, 300, 310, 5, 0);
    s_steady(sp, 310, 400, 0);
}

/* A fires and ends (10 calm minutes); B comes within the cooldown of A and is suppressed even
 * though A ended; C comes after it and fires. Without a cooldown B fires too. */
static void
test_spikes_cooldown_suppresses_repeats(void **state)
{
    struct agg_spike_cfg cfg = s_cfg(10, 60, 120, 0);
    struct hits h;
    agg_spikes_t *sp;

    cfg.end_minutes = 10;
    memset(&h, 0, sizeof(h));
    sp = agg_spikes_new(&cfg, 1, s_collect, &h);
    s_three_bursts(sp);
    assert_int_equal(s_count_kind(&h, AGG_SPIKE_START), 2);
    assert_int_equal(s_count_kind(&h, AGG_SPIKE_END), 2);
    assert_int_equal(h.h[0].a.kind, AGG_SPIKE_START);
    assert_int_equal(h.h[0].a.window_end_ms, MIN(126));
    assert_int_equal(h.h[1].a.kind, AGG_SPIKE_END);
    assert_int_equal(h.h[1].a.window_end_ms, MIN(137));
    assert_int_equal(h.h[2].a.kind, AGG_SPIKE_START);
    assert_int_equal(h.h[2].a.window_end_ms, MIN(306));
    assert_int_equal(h.h[2].a.observed, 40);
    agg_spikes_destroy(&sp);

    cfg.cooldown_min = 0;
    memset(&h, 0, sizeof(h));
    sp = agg_spikes_new(&cfg, 1, s_collect, &h);
    s_three_bursts(sp);
    assert_int_equal(s_count_kind(&h, AGG_SPIKE_START), 3);
    assert_int_equal(h.h[2].a.kind, AGG_SPIKE_START);
    assert_true(h.h[2].a.window_end_ms > MIN(170) && h.h[2].a.window_end_ms <= MIN(180));
    agg_spikes_destroy(&sp);
}

/* While a spike runs (not calm yet) nothing else fires and no "ended" comes. */
static void
test_spikes_no_end_while_elevated(void **state)
{
    struct agg_spike_cfg cfg = s_cfg(10, 60, 0, 0);
    struct hits h;
    agg_spikes_t *sp;

    cfg.end_minutes = 5;
    memset(&h, 0, sizeof(h));
    sp = agg_spikes_new(&cfg, 1, s_collect, &h);
    s_steady(sp, 0, 120, 0);
    s_burst(sp, 120, 160, 8, 0); /* 40 minutes at 9/min */
    assert_int_equal(h.n, 1);
    assert_int_equal(h.h[0].a.kind, AGG_SPIKE_START);
    s_steady(sp, 160, 240, 0);
    assert_int_equal(h.n, 2);
    assert_int_equal(h.h[1].a.kind, AGG_SPIKE_END);
    assert_true(h.h[1].a.window_end_ms >= MIN(160));
    agg_spikes_destroy(&sp);
}

static void
test_spikes_too_little_history_no_alert(void **state)
{
    struct agg_spike_cfg cfg = s_cfg(10, 60, 60, 0);
    struct hits h;
    agg_spikes_t *sp;

    /* a burst right at the start: there is no baseline to compare it with */
    memset(&h, 0, sizeof(h));
    sp = agg_spikes_new(&cfg, 1, s_collect, &h);
    s_burst(sp, 0, 10, 5, 0);
    s_steady(sp, 10, 60, 0);
    assert_int_equal(h.n, 0);
    agg_spikes_destroy(&sp);

    /* five quiet minutes (less than one window) and then a burst: still nothing */
    memset(&h, 0, sizeof(h));
    sp = agg_spikes_new(&cfg, 1, s_collect, &h);
    s_steady(sp, 0, 5, 0);
    s_burst(sp, 5, 15, 5, 0);
    s_steady(sp, 15, 60, 0);
    assert_int_equal(h.n, 0);
    agg_spikes_destroy(&sp);
}

/* With 20 minutes of history (B is 60) the baseline is the average over the minutes that
 * exist, not a sum divided by 60. */
static void
test_spikes_short_history_scaled(void **state)
{
    struct agg_spike_cfg cfg = s_cfg(10, 60, 60, 0);
    struct hits h;
    agg_spikes_t *sp;

    memset(&h, 0, sizeof(h));
    sp = agg_spikes_new(&cfg, 1, s_collect, &h);
    s_steady(sp, 0, 20, 0);
    s_burst(sp, 20, 30, 5, 0);
    s_steady(sp, 30, 40, 0);
    assert_int_equal(h.n, 1);
    assert_int_equal(h.h[0].a.window_end_ms, MIN(26));
    assert_int_equal(h.h[0].a.observed, 40);
    assert_true(fabs(h.h[0].a.expected - 10.0) < 1e-9);
    /* every burst post says "vacancia" and "presidencial"; "congreso" is in the background */
    assert_true(strcmp(h.h[0].term[0], "presidencial") == 0
                || strcmp(h.h[0].term[0], "vacancia") == 0);
    assert_true(h.h[0].a.n_terms >= 4);
    assert_string_equal(h.h[0].term[h.h[0].a.n_terms - 1], "congreso");
    agg_spikes_destroy(&sp);
}

/* Posts up to 100 s late (lateness 120 s) still land in their window before it is tested. */
static void
test_spikes_out_of_order_within_lateness(void **state)
{
    static const int64_t order[10] = { 120, 122, 121, 123, 124, 126, 125, 127, 128, 129 };
    struct agg_spike_cfg cfg = s_cfg(10, 60, 60, 120);
    struct hits h;
    agg_spikes_t *sp;
    int64_t m;
    int k;

    memset(&h, 0, sizeof(h));
    sp = agg_spikes_new(&cfg, 1, s_collect, &h);
    s_steady(sp, 0, 120, 0);
    /* burst minutes 120..129, but minute 121 arrives after 122 and 125 after 126 (up to 90 s
     * late); with no lateness, window 125 would be tested without its last minute and the
     * alert would come a minute later with observed 45 */
    for (k = 0; k < 10; k++) {
        m = order[k];
        s_burst(sp, m, m + 1, 5, 0);
    }
    assert_int_equal(agg_spikes_count(sp, 0, MIN(125)), 6);
    s_steady(sp, 130, 141, 0);
    assert_int_equal(h.n, 1);
    assert_int_equal(h.h[0].a.window_end_ms, MIN(126));
    assert_int_equal(h.h[0].a.observed, 40); /* the late posts of minutes 121 and 125 are in it */

    /* a post later than the lateness is still counted for future baselines, without
     * re-evaluating the window that is already closed */
    s_post(sp, 125, 50, 0, "very late", 0);
    assert_int_equal(agg_spikes_count(sp, 0, MIN(125)), 7);
    assert_int_equal(h.n, 1);
    agg_spikes_destroy(&sp);
}

static void
test_spikes_older_than_kept_ignored(void **state)
{
    struct agg_spike_cfg cfg = s_cfg(10, 60, 60, 0);
    struct hits h;
    agg_spikes_t *sp;
    size_t topic = 0;
    int64_t ring = agg_spikes_ring_minutes(&cfg);
    struct agg_spike_post p;

    assert_int_equal(ring, 71);
    memset(&h, 0, sizeof(h));
    memset(&p, 0, sizeof(p));
    sp = agg_spikes_new(&cfg, 1, s_collect, &h);
    s_steady(sp, 0, 201, 0);
    /* minute 200 is open, 199 the last closed; 199 - 71 = 128 is one too old */
    p.created_at_ms = MIN(199 - ring);
    assert_int_equal(agg_spikes_add(sp, &p, &topic, 1), 1);
    assert_int_equal(agg_spikes_count(sp, 0, MIN(199 - ring)), -1);
    /* the oldest minute still kept is counted */
    p.created_at_ms = MIN(199 - ring + 1);
    assert_int_equal(agg_spikes_add(sp, &p, &topic, 1), 0);
    assert_int_equal(agg_spikes_count(sp, 0, MIN(199 - ring + 1)), 2);
    /* a post without topics only moves event time */
    p.created_at_ms = MIN(202);
    assert_int_equal(agg_spikes_add(sp, &p, NULL, 0), 0);
    assert_int_equal(agg_spikes_watermark(sp, 0), MIN(202));
    assert_int_equal(agg_spikes_last_closed(sp, 0), MIN(201));
    assert_int_equal(h.n, 0);
    agg_spikes_destroy(&sp);
}

/* Sample texts are cut at AGG_SPIKE_SAMPLE_MAX bytes without splitting a UTF-8 sequence. */
static void
test_spikes_sample_cut_utf8(void **state)
{
    struct agg_spike_cfg cfg = s_cfg(10, 60, 60, 0);
    struct hits h;
    agg_spikes_t *sp;
    char text[AGG_SPIKE_SAMPLE_MAX + 16];
    size_t i;
    int64_t m;

    memset(&h, 0, sizeof(h));
    /* 'a' then "ñ" (2 bytes) repeated: byte AGG_SPIKE_SAMPLE_MAX is inside a sequence */
    text[0] = 'a';
    for (i = 1; i + 2 < sizeof(text); i += 2) {
        text[i] = (char)0xC3;
        text[i + 1] = (char)0xB1;
    }
    text[i] = '\0';
    sp = agg_spikes_new(&cfg, 1, s_collect, &h);
    s_steady(sp, 0, 60, 0);
    for (m = 60; m < 70; m++) {
        for (i = 0; i < 6; i++) {
            s_post(sp, m, (int)i, 0, text, 10);
        }
    }
    s_steady(sp, 70, 75, 0);
    assert_true(h.n >= 1);
    /* 'a' + 139 two-byte letters = 279 bytes; the 140th would end at byte 281 */
    assert_int_equal(strlen(h.h[0].sample[0]), AGG_SPIKE_SAMPLE_MAX - 1);
    assert_int_equal((unsigned char)h.h[0].sample[0][AGG_SPIKE_SAMPLE_MAX - 2], 0xB1);
    agg_spikes_destroy(&sp);
}

/* External counts (the lease holder's merged minutes): local posts only give the content. */
static void
test_spikes_external_minutes(void **state)
{
    struct agg_spike_cfg cfg = s_cfg(10, 60, 60, 0);
    struct hits h;
    agg_spikes_t *sp;
    int64_t m;

    memset(&h, 0, sizeof(h));
    sp = agg_spikes_new(&cfg, 1, s_collect, &h);
    agg_spikes_set_external(sp, 0, 1);
    assert_int_equal(agg_spikes_last_closed(sp, 0), INT64_MIN);
    /* this instance sees a third of the posts; the merged count is 3 a minute */
    for (m = 0; m < 120; m++) {
        s_post(sp, m, 30, 0, "sesión del congreso hoy", 0);
        assert_int_equal(agg_spikes_minute(sp, 0, MIN(m - 1), 3), 0);
    }
    assert_int_equal(h.n, 0);
    /* local posts alone never close a minute of an external topic */
    assert_int_equal(agg_spikes_last_closed(sp, 0), MIN(118));
    for (m = 120; m < 130; m++) {
        s_post(sp, m, 10, 0, "vacancia presidencial ya", 7);
        s_post(sp, m, 20, 0, "vacancia en el congreso", 3);
    }
    /* the merged burst: 3 + 15 a minute; an old minute is refused */
    assert_int_equal(agg_spikes_minute(sp, 0, MIN(119), 3), 0);
    assert_int_equal(agg_spikes_minute(sp, 0, MIN(100), 3), -1);
    for (m = 120; m < 124; m++) {
        assert_int_equal(agg_spikes_minute(sp, 0, MIN(m), 18), 0);
    }
    /* window 114..123: 6 x 3 + 4 x 18 = 90 < 4 x 30; a gap closes 124 as 0, then 125 has 200:
     * window 116..125 = 4 x 3 + 4 x 18 + 0 + 200 = 284 */
    assert_int_equal(h.n, 0);
    assert_int_equal(agg_spikes_minute(sp, 0, MIN(125), 200), 0);
    assert_int_equal(h.n, 1);
    assert_int_equal(h.h[0].a.window_end_ms, MIN(126));
    assert_int_equal(h.h[0].a.observed, 284);
    assert_true(fabs(h.h[0].a.expected - 30.0) < 1e-9);
    assert_int_equal(agg_spikes_count(sp, 0, MIN(124)), 0);
    assert_int_equal(h.h[0].a.n_samples, 3);
    assert_string_equal(h.h[0].sample[0], "vacancia presidencial ya");
    assert_string_equal(h.h[0].term[0], "vacancia");
    agg_spikes_destroy(&sp);
}

/* Seeded hourly history (as read back from Redis after a restart) gives the weekly baseline at
 * once: a busy Monday like the last three is no spike; without the seed it looks like one. */
static void
test_spikes_seeded_history(void **state)
{
    struct agg_spike_cfg cfg = s_default_cfg();
    struct hits h;
    agg_spikes_t *sp;
    int64_t hours[20 * 24];
    size_t i;
    int64_t m;
    int seeded;

    /* 20 days of hours from T0 (a Monday): 720/h on Mondays, 120/h otherwise */
    for (i = 0; i < 20 * 24; i++) {
        hours[i] = (i % 168) < 24 ? 720 : 120;
    }
    for (seeded = 0; seeded < 2; seeded++) {
        memset(&h, 0, sizeof(h));
        sp = agg_spikes_new(&cfg, 1, s_collect, &h);
        if (seeded) {
            agg_spikes_seed_hours(sp, 0, T0, hours, 20 * 24);
        }
        /* live from Sunday of week 3 (2/min), then Monday of week 4 (12/min) */
        for (m = 3 * WEEK - DAY; m < 3 * WEEK + 12 * 60; m++) {
            int k;
            int per_min = m < 3 * WEEK ? 2 : 12;

            for (k = 0; k < per_min; k++) {
                s_post(sp, m, k * 4, 0, "lunes de congreso", 0);
            }
        }
        if (seeded) {
            assert_int_equal(h.n, 0);
        }
        else {
            assert_int_equal(s_count_kind(&h, AGG_SPIKE_START), 1);
            assert_true(h.h[0].a.window_end_ms > MIN(3 * WEEK));
        }
        agg_spikes_destroy(&sp);
    }
}

/* ---- the series rule ---- */

static void
test_spikes_poisson_tail_known_values(void **state)
{
    /* references: exact sums (Python decimal, 60 digits) */
    assert_true(fabs(exp(agg_spike_poisson_log_sf(1, 2.0, 1.0)) - 0.8646647167633873) < 1e-13);
    assert_true(fabs(exp(agg_spike_poisson_log_sf(10, 2.0, 1.0)) / 4.6498075017263808e-5 - 1.0)
                < 1e-10);
    assert_true(fabs(exp(agg_spike_poisson_log_sf(20, 10.0, 1.0)) / 3.4543419758568077e-3 - 1.0)
                < 1e-10);
    assert_true(fabs(exp(agg_spike_poisson_log_sf(40, 10.0, 1.0)) / 7.3416363145604714e-13 - 1.0)
                < 1e-10);
    assert_true(fabs(exp(agg_spike_poisson_log_sf(24, 1.0, 1.0)) / 6.1758934868717722e-25 - 1.0)
                < 1e-10);
    assert_true(fabs(exp(agg_spike_poisson_log_sf(100, 100.0, 1.0)) - 0.51329879827914866)
                < 1e-12);
    assert_true(fabs(exp(agg_spike_poisson_log_sf(5, 50.0, 1.0)) - 1.0) < 1e-15);
    /* far tails, log10 from a log-space sum of the tail */
    assert_true(fabs(agg_spike_poisson_log_sf(1000, 1.0, 1.0) / log(10.0) + 2568.03850462699)
                < 1e-7);
    assert_true(fabs(agg_spike_poisson_log_sf(2000, 1000.0, 1.0) / log(10.0) + 169.51453524072)
                < 1e-7);
    assert_true(fabs(agg_spike_poisson_log_sf(1005000, 1e6, 1.0) / log(10.0) + 6.53253485085786)
                < 1e-6);
    /* edges */
    assert_true(agg_spike_poisson_log_sf(0, 3.0, 1.0) == 0.0);
    assert_true(agg_spike_poisson_log_sf(-4, 3.0, 1.0) == 0.0);
    assert_true(isinf(agg_spike_poisson_log_sf(1, 0.0, 1.0)));
    /* dispersion 2 halves shape and mean: P(40, 20 | phi 2) = Poisson P(X >= 20 | 10) */
    assert_true(fabs(agg_spike_poisson_log_sf(40, 20.0, 2.0)
                     - agg_spike_poisson_log_sf(20, 10.0, 1.0))
                < 1e-12);
    /* dispersion below 1 is read as 1; the tail shrinks as k grows */
    assert_true(agg_spike_poisson_log_sf(30, 10.0, 0.5) == agg_spike_poisson_log_sf(30, 10.0, 1.0));
    assert_true(agg_spike_poisson_log_sf(31, 10.0, 1.0) < agg_spike_poisson_log_sf(30, 10.0, 1.0));
    assert_true(agg_spike_poisson_log_sf(30, 10.0, 3.0) > agg_spike_poisson_log_sf(30, 10.0, 1.0));
}

/* A sustained jump from 5 to 25 a minute alerts once, soon after the jump; the spike ends
 * only when the trailing baseline has absorbed the new level. */
static void
test_spikes_level_shift_alerts_once(void **state)
{
    struct agg_spike_cfg cfg = s_default_cfg();
    agg_spike_series_t *s = agg_spike_series_new(&cfg, 1, 0);
    struct run r;
    int64_t m;

    memset(&r, 0, sizeof(r));
    s_rng = 1;
    for (m = 0; m < DAY; m++) {
        s_push(s, m, 1, s_poisson(5.0), &r);
    }
    assert_int_equal(r.n_fired, 0);
    assert_true(r.last.dispersion < 1.6);
    for (m = DAY; m < DAY + 12 * 60; m++) {
        s_push(s, m, 1, s_poisson(25.0), &r);
    }
    assert_int_equal(r.n_fired, 1);
    assert_true(r.fired[0] > DAY && r.fired[0] <= DAY + 30);
    assert_string_equal(r.first_fire.stage, "trailing");
    assert_int_equal(r.n_ended, 0);
    for (m = DAY + 12 * 60; m < 2 * DAY + 6 * 60; m++) {
        s_push(s, m, 1, s_poisson(25.0), &r);
    }
    assert_int_equal(r.n_fired, 1);
    assert_int_equal(r.n_ended, 1);
    agg_spike_series_destroy(&s);
}

/* One 20-minute burst on a noisy 3/min background: one alert, one end, nothing else in three
 * days. */
static void
test_spikes_single_burst_noisy(void **state)
{
    struct agg_spike_cfg cfg = s_default_cfg();
    agg_spike_series_t *s = agg_spike_series_new(&cfg, 1, 1);
    struct run r;
    int64_t m;
    int64_t burst = 2 * DAY + 10 * 60;

    memset(&r, 0, sizeof(r));
    s_rng = 2;
    for (m = 0; m < 3 * DAY; m++) {
        double lam = 3.0 + (m >= burst && m < burst + 20 ? 15.0 : 0.0);

        s_push(s, m, 1, s_poisson(lam), &r);
    }
    assert_int_equal(r.n_fired, 1);
    assert_true(r.fired[0] > burst && r.fired[0] <= burst + 20);
    assert_string_equal(r.first_fire.stage, "daily");
    assert_int_equal(r.n_ended, 1);
    assert_true(r.ended[0] > burst + 20);
    agg_spike_series_destroy(&s);
}

/* Slow ramp: 2 -> 8 a minute over a day never gets 4x above its baseline (yesterday at the
 * same time, scaled by the last 24 hours): no alert. A steep ramp (2 -> 40 in two hours)
 * alerts once. */
static void
test_spikes_ramp(void **state)
{
    struct agg_spike_cfg cfg = s_default_cfg();
    agg_spike_series_t *s;
    struct run r;
    int64_t m;
    int steep;

    for (steep = 0; steep < 2; steep++) {
        int64_t len = steep ? 120 : DAY;
        double top = steep ? 40.0 : 8.0;

        s = agg_spike_series_new(&cfg, 1, 1);
        memset(&r, 0, sizeof(r));
        s_rng = 3;
        for (m = 0; m < 5 * DAY; m++) {
            double lam = 2.0;

            if (m >= 3 * DAY) {
                lam = m < 3 * DAY + len ? 2.0 + (top - 2.0) * (double)(m - 3 * DAY) / (double)len
                                        : top;
            }
            s_push(s, m, 1, s_poisson(lam), &r);
        }
        assert_int_equal(r.n_fired, steep ? 1 : 0);
        if (steep) {
            assert_true(r.fired[0] > 3 * DAY && r.fired[0] < 3 * DAY + 120);
        }
        agg_spike_series_destroy(&s);
    }
}

/* 1/min with a 30/min hour at 12:00 every day: the trailing mean sees spikes on days 1 and 2;
 * from day 3 the daily baseline knows the peak. A burst at 03:00 on day 4 still fires. */
static void
test_spikes_daily_cycle(void **state)
{
    struct agg_spike_cfg cfg = s_default_cfg();
    agg_spike_series_t *s;
    struct run r;
    int64_t m;
    int with_burst;

    for (with_burst = 0; with_burst < 2; with_burst++) {
        int64_t burst = 4 * DAY + 3 * 60;

        s = agg_spike_series_new(&cfg, 1, 1);
        memset(&r, 0, sizeof(r));
        s_rng = 4;
        for (m = 0; m < 7 * DAY; m++) {
            int64_t tod = m % DAY;
            double lam = tod >= 12 * 60 && tod < 13 * 60 ? 30.0 : 1.0;

            if (with_burst && m >= burst && m < burst + 20) {
                lam += 10.0;
            }
            s_push(s, m, 1, s_poisson(lam), &r);
        }
        assert_true(s_fired_between(&r, 0, 2 * DAY) >= 1); /* a naive baseline would fire */
        assert_int_equal(s_fired_between(&r, 2 * DAY + 60, 7 * DAY), with_burst ? 1 : 0);
        if (with_burst) {
            assert_int_equal(s_fired_between(&r, burst, burst + 21), 1);
        }
        agg_spike_series_destroy(&s);
    }
}

/* Mondays are 6x busier: in week 2 the daily baseline (Sunday, Saturday, ...) flags Monday; from
 * week 3 (>= 14 days of history) the weekly baseline knows it and stays quiet. */
static void
test_spikes_weekly_cycle(void **state)
{
    struct agg_spike_cfg cfg = s_default_cfg();
    agg_spike_series_t *s = agg_spike_series_new(&cfg, 1, 1);
    struct run r;
    int64_t m;

    memset(&r, 0, sizeof(r));
    s_rng = 5;
    for (m = 0; m < 4 * WEEK + DAY; m++) {
        s_push(s, m, 1, s_poisson(m % WEEK < DAY ? 12.0 : 2.0), &r);
    }
    assert_true(s_fired_between(&r, WEEK, WEEK + DAY) >= 1);
    assert_int_equal(s_fired_between(&r, 2 * WEEK, 4 * WEEK + DAY), 0);
    assert_string_equal(r.last.stage, "weekly");
    agg_spike_series_destroy(&s);
}

/* Counts whose variance is ~10x their mean: plain Poisson (max_dispersion 1) raises false
 * alerts; the learnt dispersion removes them and a real burst still fires. */
static void
test_spikes_overdispersion(void **state)
{
    struct agg_spike_cfg cfg = s_cfg(10, 600, 0, 0);
    agg_spike_series_t *s;
    struct run r;
    size_t plain_fired = 0;
    int64_t m;
    int learn;

    cfg.factor = 1.0;
    cfg.min_count = 1;
    for (learn = 0; learn < 2; learn++) {
        double rate = 5.0;

        cfg.max_dispersion = learn ? 50.0 : 1.0;
        s = agg_spike_series_new(&cfg, 1, 0);
        memset(&r, 0, sizeof(r));
        s_rng = 6;
        for (m = 0; m < DAY + 120; m++) {
            if (m % 10 == 0) {
                rate = s_gamma(4, 5.0); /* the rate wanders in 10-minute blocks */
            }
            if (m >= DAY + 60 && m < DAY + 70) {
                rate = 40.0;
            }
            s_push(s, m, 1, s_poisson(rate), &r);
        }
        /* from 8 hours on, once 16 residuals have taught the dispersion */
        if (!learn) {
            plain_fired = s_fired_between(&r, 8 * 60, DAY);
        }
        else {
            assert_true(r.last.dispersion > 8.0 && r.last.dispersion <= 50.0);
            assert_int_equal(s_fired_between(&r, 8 * 60, DAY), 0);
            assert_int_equal(s_fired_between(&r, DAY + 60, DAY + 71), 1);
        }
        agg_spike_series_destroy(&s);
    }
    assert_true(plain_fired >= 3);
}

/* method "zscore": a burst on a noisy background fires once, the noise never does. */
static void
test_spikes_zscore_method(void **state)
{
    struct agg_spike_cfg cfg = s_default_cfg();
    agg_spike_series_t *s;
    struct run r;
    int64_t m;
    int64_t burst = DAY + 10 * 60;

    snprintf(cfg.method, sizeof(cfg.method), "zscore");
    s = agg_spike_series_new(&cfg, 1, 1);
    memset(&r, 0, sizeof(r));
    s_rng = 7;
    for (m = 0; m < 2 * DAY; m++) {
        s_push(s, m, 1, s_poisson(m >= burst && m < burst + 30 ? 25.0 : 4.0), &r);
    }
    assert_int_equal(r.n_fired, 1);
    assert_true(r.fired[0] > burst && r.fired[0] <= burst + 30);
    assert_true(r.first_fire.score >= 5.0);
    agg_spike_series_destroy(&s);
}

/* The lazy (live) series skips windows that cannot fire but decides exactly like the full one
 * (--backtest). Steps of 5 minutes: the window of 30 minutes is 6 steps. */
/* A quiet topic keeps no rings until its first post (a missing ring reads as zeros): its
 * held minutes read 0, the ring appears with the first count, and the jump after days of
 * silence fires as it would with the rings there all along. */
static void
test_spikes_quiet_series_then_burst(void **state)
{
    struct agg_spike_cfg cfg = s_cfg(10, 60, 60, 0);
    agg_spike_series_t *s = agg_spike_series_new(&cfg, 1, 0);
    struct run r;
    int64_t st;

    (void)state;
    memset(&r, 0, sizeof(r));
    for (st = 0; st < 3000; st++) {
        s_push(s, st, 1, 0, &r);
    }
    assert_int_equal(agg_spike_series_value(s, T0 + 2990 * 60000), 0);
    assert_int_equal(agg_spike_series_value(s, T0 + 3000 * 60000), -1); /* not pushed yet */
    for (st = 3000; st < 3200; st++) {
        s_push(s, st, 1, 2, &r);
    }
    assert_int_equal(r.n_fired, 1); /* from nothing to 2 a minute is a level shift */
    assert_true(r.fired[0] >= 3009 && r.fired[0] < 3030);
    assert_int_equal(agg_spike_series_value(s, T0 + 3190 * 60000), 2);
    assert_int_equal(agg_spike_series_value(s, T0 + 3000 * 60000), -1); /* out of the ring */
    agg_spike_series_destroy(&s);
}

static void
test_spikes_lazy_matches_full_and_steps(void **state)
{
    struct agg_spike_cfg cfg = s_default_cfg();
    agg_spike_series_t *lazy = agg_spike_series_new(&cfg, 5, 1);
    agg_spike_series_t *full = agg_spike_series_new(&cfg, 5, 0);
    struct run rl;
    struct run rf;
    int64_t st;
    size_t i;

    assert_null(agg_spike_series_new(&cfg, 7, 0));
    assert_null(agg_spike_series_new(&cfg, 120, 0));
    assert_int_equal(agg_spike_series_window_steps(full), 6);
    memset(&rl, 0, sizeof(rl));
    memset(&rf, 0, sizeof(rf));
    s_rng = 8;
    for (st = 0; st < 4 * 288; st++) {
        double lam = (st % 288) / 12 == 20 ? 40.0 : 2.0; /* a busy hour at 20:00 */
        int64_t v;

        if (st >= 3 * 288 + 50 && st < 3 * 288 + 56) {
            lam = 60.0;
        }
        v = s_poisson(lam);
        s_push(lazy, st, 5, v, &rl);
        s_push(full, st, 5, v, &rf);
    }
    assert_int_equal(rl.n_fired, rf.n_fired);
    assert_int_equal(rl.n_ended, rf.n_ended);
    for (i = 0; i < rf.n_fired; i++) {
        assert_int_equal(rl.fired[i], rf.fired[i]);
    }
    assert_int_equal(s_fired_between(&rf, 2 * DAY + 60, 4 * DAY), 1);
    assert_int_equal(s_fired_between(&rf, 3 * DAY + 250, 3 * DAY + 285), 1);
    assert_int_equal(agg_spike_series_value(full, T0 + 5 * 60000), -1); /* long gone */
    assert_true(agg_spike_series_value(full, agg_spike_series_last(full)) >= 0);
    agg_spike_series_destroy(&lazy);
    agg_spike_series_destroy(&full);
    assert_null(full);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spikes_burst_alerts_once),
        cmocka_unit_test(test_spikes_post_shared_by_topics),
        cmocka_unit_test(test_spikes_steady_series_no_alert),
        cmocka_unit_test(test_spikes_cooldown_suppresses_repeats),
        cmocka_unit_test(test_spikes_no_end_while_elevated),
        cmocka_unit_test(test_spikes_too_little_history_no_alert),
        cmocka_unit_test(test_spikes_short_history_scaled),
        cmocka_unit_test(test_spikes_out_of_order_within_lateness),
        cmocka_unit_test(test_spikes_older_than_kept_ignored),
        cmocka_unit_test(test_spikes_sample_cut_utf8),
        cmocka_unit_test(test_spikes_external_minutes),
        cmocka_unit_test(test_spikes_seeded_history),
        cmocka_unit_test(test_spikes_poisson_tail_known_values),
        cmocka_unit_test(test_spikes_level_shift_alerts_once),
        cmocka_unit_test(test_spikes_single_burst_noisy),
        cmocka_unit_test(test_spikes_ramp),
        cmocka_unit_test(test_spikes_daily_cycle),
        cmocka_unit_test(test_spikes_weekly_cycle),
        cmocka_unit_test(test_spikes_overdispersion),
        cmocka_unit_test(test_spikes_zscore_method),
        cmocka_unit_test(test_spikes_quiet_series_then_burst),
        cmocka_unit_test(test_spikes_lazy_matches_full_and_steps),
    };

    esc_log_init("test", ESC_LOG_WARN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
