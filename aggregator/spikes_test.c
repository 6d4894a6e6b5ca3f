#define ESC_LOG_MODULE "test"
/* Unit tests of the spike rule (spikes.c): pure logic, so days of synthetic posts replay in
 * milliseconds. Times are minutes after T0 (2026-11-16T00:00:00Z); every alert the detector
 * raises is recorded and checked for its exact window, observed and expected values. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "escucha/esc_log.h"

#include "spikes.h"

#define T0 1794787200000LL /* 2026-11-16T00:00:00Z */
#define MIN(m) (T0 + (int64_t)(m) * 60000)
#define MAX_HITS 64

struct hits {
    struct agg_spike a[MAX_HITS]; /* samples pointers are cleared: they are borrowed */
    char sample0[MAX_HITS][AGG_SPIKE_SAMPLE_MAX + 1]; /* copy of the first sample */
    size_t n;
};

static void
s_collect(void *arg, const struct agg_spike *s)
{
    struct hits *h = arg;
    size_t i;

    assert_true(h->n < MAX_HITS);
    h->a[h->n] = *s;
    for (i = 0; i < AGG_SPIKE_SAMPLES; i++) {
        h->a[h->n].samples[i] = NULL;
    }
    h->sample0[h->n][0] = '\0';
    if (s->n_samples > 0) {
        snprintf(h->sample0[h->n], sizeof(h->sample0[0]), "%s", s->samples[0]);
    }
    h->n++;
}

static struct agg_spike_cfg
s_cfg(int64_t w, int64_t b, int64_t cooldown, int64_t lateness_s)
{
    struct agg_spike_cfg c;

    c.window_min = w;
    c.baseline_min = b;
    c.factor = 4.0;
    c.min_count = 20;
    c.cooldown_min = cooldown;
    c.lateness_s = lateness_s;
    return c;
}

/* One post at minute m, second sec, for a single topic. */
static size_t
s_post(agg_spikes_t *sp, int64_t m, int sec, size_t topic, const char *text)
{
    return agg_spikes_post(sp, MIN(m) + sec * 1000, &topic, 1, text);
}

/* Steady history: one post per minute at second 30, minutes [from, to). */
static void
s_steady(agg_spikes_t *sp, int64_t from, int64_t to, size_t topic)
{
    int64_t m;

    for (m = from; m < to; m++) {
        s_post(sp, m, 30, topic, "steady");
    }
}

/* Steady 1/min plus `extra` burst posts per minute over minutes [from, to), in time order. */
static void
s_burst(agg_spikes_t *sp, int64_t from, int64_t to, int extra, size_t topic)
{
    char text[64];
    int64_t m;
    int k;

    for (m = from; m < to; m++) {
        for (k = 0; k < extra; k++) {
            snprintf(text, sizeof(text), "burst m=%lld k=%d", (long long)m, k);
            s_post(sp, m, k * 5, topic, text);
        }
        s_post(sp, m, 30, topic, "steady");
    }
}

/* Happy path and usage example: a burst of 50 posts in 10 minutes over a steady 1/min history
 * raises exactly one alert, on the first window that crosses 4x the baseline. */
static void
test_spikes_burst_alerts_once(void **state)
{
    struct agg_spike_cfg cfgs[2] = { s_cfg(10, 60, 60, 0), s_cfg(10, 60, 60, 0) };
    struct hits h;
    agg_spikes_t *sp;

    memset(&h, 0, sizeof(h));
    sp = agg_spikes_new(cfgs, 2, s_collect, &h);
    s_steady(sp, 0, 120, 1); /* topic 1 stays steady throughout */
    s_steady(sp, 0, 120, 0);
    s_burst(sp, 120, 130, 5, 0);
    s_steady(sp, 130, 141, 0); /* moves the watermark well past the burst */
    assert_int_equal(h.n, 1);
    /* window ending at minute 125: 10 steady + 6 * 5 burst = 40 = 4 x expected 10 */
    assert_int_equal(h.a[0].topic, 0);
    assert_int_equal(h.a[0].window_start_ms, MIN(116));
    assert_int_equal(h.a[0].window_end_ms, MIN(126));
    assert_int_equal(h.a[0].observed, 40);
    assert_true(h.a[0].expected > 9.999 && h.a[0].expected < 10.001);
    assert_true(h.a[0].score > 3.999 && h.a[0].score < 4.001);
    assert_int_equal(h.a[0].n_samples, AGG_SPIKE_SAMPLES);
    assert_string_equal(h.sample0[0], "burst m=125 k=0"); /* most recent minute first */
    assert_int_equal(agg_spikes_count(sp, 0, MIN(125)), 6);
    assert_int_equal(agg_spikes_count(sp, 1, MIN(125)), 0);
    agg_spikes_destroy(&sp);
    assert_null(sp);
}

/* Two posts a minute for two days with the default rule: nothing fires. */
static void
test_spikes_steady_series_no_alert(void **state)
{
    struct agg_spike_cfg cfg = s_cfg(30, 1440, 180, 120);
    struct hits h;
    agg_spikes_t *sp;
    int64_t m;

    memset(&h, 0, sizeof(h));
    sp = agg_spikes_new(&cfg, 1, s_collect, &h);
    for (m = 0; m < 2 * 1440; m++) {
        s_post(sp, m, 10, 0, "a");
        s_post(sp, m, 40, 0, "b");
    }
    assert_int_equal(h.n, 0);
    assert_int_equal(agg_spikes_watermark(sp, 0), MIN(2 * 1440 - 1) + 40000 - 120000);
    assert_int_equal(agg_spikes_count(sp, 0, MIN(2 * 1440 - 1)), 2);
    agg_spikes_destroy(&sp);
}

/* Feeds bursts A (minutes 120-129, +5/min), B (150-159, +10/min) and C (300-309, +5/min). */
static void
s_three_bursts(agg_spikes_t *sp)
{
    s_steady(sp, 0, 120, 0);
    s_burst(sp, 120, 130, 5, 0);
    s_steady(sp, 130, 150, 0);
    s_burst(sp, 150, 160, 10, 0);
    s_steady(sp, 160, 300, 0);
    s_burst(sp, 300, 310, 5, 0);
    s_steady(sp, 310, 330, 0);
}

static void
test_spikes_cooldown_suppresses_repeats(void **state)
{
    struct agg_spike_cfg cfg = s_cfg(10, 60, 60, 0);
    struct hits h;
    agg_spikes_t *sp;
    size_t i;
    int b_fired = 0;

    memset(&h, 0, sizeof(h));
    sp = agg_spikes_new(&cfg, 1, s_collect, &h);
    s_three_bursts(sp);
    /* A fires; every later window of A and all of B fall within 60 minutes of A's window end;
     * C comes after the cooldown and fires again */
    assert_int_equal(h.n, 2);
    assert_int_equal(h.a[0].window_end_ms, MIN(126));
    assert_int_equal(h.a[1].window_end_ms, MIN(306));
    assert_int_equal(h.a[1].observed, 40);
    agg_spikes_destroy(&sp);

    /* the same series without a cooldown: A repeats and B alerts too */
    cfg.cooldown_min = 0;
    memset(&h, 0, sizeof(h));
    sp = agg_spikes_new(&cfg, 1, s_collect, &h);
    s_three_bursts(sp);
    assert_true(h.n > 2);
    for (i = 0; i < h.n; i++) {
        if (h.a[i].window_end_ms > MIN(150) && h.a[i].window_end_ms <= MIN(170)) {
            b_fired = 1;
        }
    }
    assert_true(b_fired);
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
    assert_int_equal(h.a[0].window_end_ms, MIN(26));
    assert_int_equal(h.a[0].observed, 40);
    assert_true(h.a[0].expected > 9.999 && h.a[0].expected < 10.001);
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
    assert_int_equal(h.a[0].window_end_ms, MIN(126));
    assert_int_equal(h.a[0].observed, 40); /* the late posts of minutes 121 and 125 are in it */

    /* a post later than the lateness is still counted for future baselines, without
     * re-evaluating the window that is already closed */
    s_post(sp, 125, 50, 0, "very late");
    assert_int_equal(agg_spikes_count(sp, 0, MIN(125)), 7);
    assert_int_equal(h.n, 1);
    agg_spikes_destroy(&sp);
}

static void
test_spikes_older_than_ring_ignored(void **state)
{
    struct agg_spike_cfg cfg = s_cfg(10, 60, 60, 0);
    struct hits h;
    agg_spikes_t *sp;
    size_t topic = 0;
    int64_t ring = agg_spikes_ring_minutes(&cfg);

    assert_int_equal(ring, 72);
    memset(&h, 0, sizeof(h));
    sp = agg_spikes_new(&cfg, 1, s_collect, &h);
    s_steady(sp, 150, 201, 0);
    /* minute 100 maps to the same slot as minute 172 (ring of 72): it must not touch it */
    assert_int_equal(agg_spikes_post(sp, MIN(100), &topic, 1, "ancient"), 1);
    assert_int_equal(agg_spikes_count(sp, 0, MIN(100)), -1);
    assert_int_equal(agg_spikes_count(sp, 0, MIN(172)), 1);
    /* the oldest minute still in the ring is counted */
    assert_int_equal(agg_spikes_post(sp, MIN(200 - ring + 1), &topic, 1, "old"), 0);
    /* a post without topics only moves event time */
    assert_int_equal(agg_spikes_post(sp, MIN(202), NULL, 0, NULL), 0);
    assert_int_equal(agg_spikes_watermark(sp, 0), MIN(202));
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
            s_post(sp, m, (int)i, 0, text);
        }
    }
    s_steady(sp, 70, 75, 0);
    assert_true(h.n >= 1);
    /* 'a' + 139 two-byte letters = 279 bytes; the 140th would end at byte 281 */
    assert_int_equal(strlen(h.sample0[0]), AGG_SPIKE_SAMPLE_MAX - 1);
    assert_int_equal((unsigned char)h.sample0[0][AGG_SPIKE_SAMPLE_MAX - 2], 0xB1);
    agg_spikes_destroy(&sp);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spikes_burst_alerts_once),
        cmocka_unit_test(test_spikes_steady_series_no_alert),
        cmocka_unit_test(test_spikes_cooldown_suppresses_repeats),
        cmocka_unit_test(test_spikes_too_little_history_no_alert),
        cmocka_unit_test(test_spikes_short_history_scaled),
        cmocka_unit_test(test_spikes_out_of_order_within_lateness),
        cmocka_unit_test(test_spikes_older_than_ring_ignored),
        cmocka_unit_test(test_spikes_sample_cut_utf8),
    };

    esc_log_init("test", ESC_LOG_WARN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
