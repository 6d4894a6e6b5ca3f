#define ESC_LOG_MODULE "spikes"
/* Spike detection (docs/aggregator.md, "Spike detection"). The series rule sees one regular
 * count series: each closed step goes into a ring of the last W + B steps (window and trailing
 * baseline) and into an hourly ring of 5 weeks; the window ending at the step is compared with
 * a baseline taken from the same time on past weeks (>= 14 days of history) or past days
 * (>= 2 days), each scaled by how the 3 hours before the window compare with the same 3 hours
 * then (the median over the past weeks / days outvotes one odd day), else the trailing mean.
 * The test is a Poisson tail (variance inflated by a dispersion learnt from the residuals of
 * past non-overlapping windows) or a robust z-score, with min-count and factor guards, a
 * cooldown, and an "ended" state after end_minutes calm minutes.
 * The event-time layer counts posts per topic and minute, closes a minute once the watermark
 * (newest event time - lateness) has passed it, and keeps per minute the 3 most engaged posts
 * and a uniform sample of 16 texts while a future window can still cover the minute; released
 * minutes feed a decayed background of term frequencies, so an alert's terms are those the
 * window has more of than usual. Pure logic, single-threaded. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "escucha/esc_log.h"
#include "escucha/esc_mem.h"
#include "escucha/esc_util.h"

#include "spikes.h"

#define S_MINUTE_MS 60000
#define S_HOUR_MS 3600000
#define S_NONE INT64_MIN
#define S_LN10 2.302585092994046
#define S_WEEK_H 168
#define S_DAY_H 24
#define S_WEEKS_MAX 4          /* past weeks compared in the weekly stage */
#define S_DAYS_MAX 7           /* past days compared in the daily stage */
#define S_REF_H 3              /* hours before the window that set the level ratio */
#define S_REF_PRIOR 10.0       /* posts added to both sides of the level ratio */
#define S_RATIO_MIN 0.5        /* bounds of the level ratio: with few past days a ratio taken */
#define S_RATIO_MAX 2.0        /* across e.g. a busy Monday's evening must not run away */
#define S_RESID_MIN 16         /* residuals needed before the dispersion is learnt */
#define S_MAD_SIGMA 1.4826     /* MAD -> standard deviation for normal residuals */
#define S_CATCHUP_MAX ((int64_t)AGG_SPIKE_HIST_HOURS * 60) /* longest event-time jump replayed */
#define S_BG_TERMS 256         /* background terms kept per topic */
#define S_BG_SLOTS 512         /* hash index of the background terms: power of two, 2 x terms */
#define S_BG_DECAY 0.999       /* per released minute: half-life about 11.5 hours */
#define S_WINDOW_TEXTS 512     /* most texts read for an alert's terms */
#define S_TEXT_TERMS 64        /* distinct terms counted per text */
#define S_AUTHOR_MAX 200       /* bytes of an author handle kept */
#define S_URL_MAX 1024         /* longer links are not kept */

/* ---- Poisson tail ------------------------------------------------------------------------ */

/* ln P(a, x), the regularized lower incomplete gamma function, a > 0 and x > 0. Below x = a + 1
 * the power series of gamma(a, x) is summed (terms shrink at least geometrically there); above,
 * Q(a, x) comes from Legendre's continued fraction (modified Lentz) and P = 1 - Q, which is
 * then not small, so the subtraction loses nothing that matters. */
static double
s_log_gamma_p(double a, double x)
{
    double lpre = a * log(x) - x - lgamma(a);
    long max_iter = 1000 + (long)(20.0 * sqrt(a));
    long i;

    if (x < a + 1.0) {
        double term = 1.0 / a;
        double sum = term;

        for (i = 1; i < max_iter; i++) {
            term *= x / (a + (double)i);
            sum += term;
            if (term < sum * 1e-17) {
                break;
            }
        }
        return lpre + log(sum);
    }
    else {
        const double tiny = 1e-300;
        double b = x + 1.0 - a;
        double c = 1.0 / tiny;
        double d = 1.0 / b;
        double h = d;
        double q;

        for (i = 1; i < max_iter; i++) {
            double an = -(double)i * ((double)i - a);
            double del;

            b += 2.0;
            d = an * d + b;
            if (fabs(d) < tiny) {
                d = tiny;
            }
            c = b + an / c;
            if (fabs(c) < tiny) {
                c = tiny;
            }
            d = 1.0 / d;
            del = d * c;
            h *= del;
            if (fabs(del - 1.0) < 1e-16) {
                break;
            }
        }
        q = exp(lpre) * h;
        if (q >= 1.0) {
            return log(1e-300);
        }
        return log1p(-q);
    }
}

double
agg_spike_poisson_log_sf(int64_t k, double lambda, double dispersion)
{
    double phi = dispersion > 1.0 ? dispersion : 1.0;

    if (k <= 0) {
        return 0.0;
    }
    if (!(lambda > 0.0)) {
        return -INFINITY;
    }
    /* P(X >= k) = P(k, lambda); with the variance inflated by phi, X / phi is treated as
     * Poisson with mean lambda / phi (quasi-Poisson), a continuous-shape gamma tail */
    return s_log_gamma_p((double)k / phi, lambda / phi);
}

/* ---- The series rule ----------------------------------------------------------------------- */

struct agg_spike_series {
    struct agg_spike_cfg cfg;
    int zscore;                /* method "zscore" */
    int lazy;
    int64_t step_min;          /* minutes per step, divides 60 */
    int64_t step_ms;
    int64_t w;                 /* window, steps */
    int64_t b;                 /* trailing baseline, steps */
    int64_t end_steps;         /* calm steps that end a spike */
    uint32_t *vals;            /* closed step values, ring of n_vals (saturated); owned;
                                  NULL while every value is 0 (a quiet topic costs no ring) */
    int64_t n_vals;            /* w + b + 1 */
    int64_t first;             /* first step pushed, S_NONE before */
    int64_t last;              /* last step pushed, S_NONE before */
    uint32_t *hours;           /* hour h in slot h % AGG_SPIKE_HIST_HOURS (counts saturate at
                                  UINT32_MAX); owned; NULL while every count is 0 */
    int64_t h_first;           /* oldest hour held, S_NONE when empty */
    int64_t h_last;            /* newest hour held */
    int64_t h_seed_end;        /* first hour after the seeded ones, S_NONE when not seeded */
    double resid[AGG_SPIKE_RESID]; /* Pearson residuals of past non-overlapping windows */
    size_t n_resid;
    size_t resid_pos;
    int resid_dirty;
    double r_med;              /* median residual */
    double r_scale;            /* robust standard deviation of the residuals (>= 1) */
    double r_disp;             /* dispersion in use */
    int active;                /* a spike is running */
    int64_t last_fire_end;     /* end (minutes) of the last window that fired, or S_NONE */
    int64_t calm;              /* calm steps in a row while active */
    int64_t ep_start;          /* running spike: first window start, minutes */
    int64_t ep_hot_end;        /* end of its last elevated window, minutes */
    int64_t ep_sum;            /* count from ep_start to now */
    int64_t ep_hot_sum;        /* count from ep_start to ep_hot_end */
    double ep_exp;
    double ep_hot_exp;
    double ep_peak;            /* highest score */
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
s_mod(int64_t a, int64_t n)
{
    int64_t r = a % n;

    return r < 0 ? r + n : r;
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

static int64_t
s_ceil_steps(int64_t minutes, int64_t step_min)
{
    return (minutes + step_min - 1) / step_min;
}

agg_spike_series_t *
agg_spike_series_new(const struct agg_spike_cfg *cfg, int64_t step_min, int lazy)
{
    agg_spike_series_t *self;

    if (step_min < 1 || step_min > 60 || 60 % step_min != 0) {
        return NULL;
    }
    ESC_ASSERT(cfg->window_min >= 1 && cfg->baseline_min >= 1);
    self = esc_calloc(1, sizeof(*self));
    self->cfg = *cfg;
    self->zscore = strcmp(cfg->method, "zscore") == 0;
    self->lazy = lazy;
    self->step_min = step_min;
    self->step_ms = step_min * S_MINUTE_MS;
    self->w = s_max(1, (cfg->window_min + step_min / 2) / step_min);
    self->b = s_max(1, (cfg->baseline_min + step_min / 2) / step_min);
    self->end_steps = s_max(1, s_ceil_steps(cfg->end_minutes, step_min));
    self->n_vals = self->w + self->b + 1;
    agg_spike_series_reset(self);
    return self;
}

void
agg_spike_series_destroy(agg_spike_series_t **self_p)
{
    if (self_p == NULL || *self_p == NULL) {
        return;
    }
    esc_free((*self_p)->vals);
    esc_free((*self_p)->hours);
    esc_free(*self_p);
    *self_p = NULL;
}

void
agg_spike_series_reset(agg_spike_series_t *self)
{
    ESC_FREE(self->vals);
    ESC_FREE(self->hours);
    self->first = S_NONE;
    self->last = S_NONE;
    self->h_first = S_NONE;
    self->h_last = S_NONE;
    self->h_seed_end = S_NONE;
    self->n_resid = 0;
    self->resid_pos = 0;
    self->resid_dirty = 1;
    self->active = 0;
    self->last_fire_end = S_NONE;
    self->calm = 0;
}

int64_t
agg_spike_series_last(const agg_spike_series_t *self)
{
    return self->last == S_NONE ? INT64_MIN : self->last * self->step_ms;
}

int64_t
agg_spike_series_window_steps(const agg_spike_series_t *self)
{
    return self->w;
}

/* True when step s is in the value ring. */
static int
s_held(const agg_spike_series_t *self, int64_t s)
{
    return self->last != S_NONE && s >= self->first && s <= self->last
           && s > self->last - self->n_vals;
}

int64_t
agg_spike_series_value(const agg_spike_series_t *self, int64_t start_ms)
{
    int64_t s = s_floor_div(start_ms, self->step_ms);

    if (!s_held(self, s)) {
        return -1;
    }
    return self->vals != NULL ? (int64_t)self->vals[s_mod(s, self->n_vals)] : 0;
}

/* A count as the rings hold it: clamped to 0..UINT32_MAX. */
static uint32_t
s_u32(int64_t v)
{
    return v <= 0 ? 0 : (v >= (int64_t)UINT32_MAX ? UINT32_MAX : (uint32_t)v);
}

/* Allocates the rings at the first non-zero count: until then every value and hour held is 0,
 * which a missing ring reads as. */
static void
s_rings(agg_spike_series_t *self)
{
    if (self->vals == NULL) {
        self->vals = esc_calloc((size_t)self->n_vals, sizeof(*self->vals));
    }
    if (self->hours == NULL) {
        self->hours = esc_calloc(AGG_SPIKE_HIST_HOURS, sizeof(*self->hours));
    }
}

/* Sum of the held steps in [a, b). Runs for every closed minute of every topic: the held part
 * of the range is computed once and walked without a division per step. */
static int64_t
s_steps_sum(const agg_spike_series_t *self, int64_t a, int64_t b)
{
    int64_t sum = 0;
    int64_t lo;
    int64_t hi;
    int64_t i;
    int64_t s;

    if (self->last == S_NONE || self->vals == NULL) {
        return 0;
    }
    lo = s_max(s_max(a, self->first), self->last - self->n_vals + 1);
    hi = s_min(b - 1, self->last);
    if (lo > hi) {
        return 0;
    }
    i = s_mod(lo, self->n_vals);
    for (s = lo; s <= hi; s++) {
        sum += self->vals[i];
        i = i + 1 == self->n_vals ? 0 : i + 1;
    }
    return sum;
}

static int
s_hour_held(const agg_spike_series_t *self, int64_t h)
{
    return self->h_first != S_NONE && h >= self->h_first && h <= self->h_last
           && h > self->h_last - AGG_SPIKE_HIST_HOURS;
}

static int64_t
s_hour(const agg_spike_series_t *self, int64_t h)
{
    return s_hour_held(self, h) && self->hours != NULL
               ? self->hours[s_mod(h, AGG_SPIKE_HIST_HOURS)]
               : 0;
}

/* Makes hour h the newest (hours in between are zero), or checks it is held. Returns 0 when h
 * can be written, -1 when it is older than the ring. */
static int
s_hour_reach(agg_spike_series_t *self, int64_t h)
{
    int64_t x;

    if (self->h_last == S_NONE) {
        self->h_first = h;
        self->h_last = h;
        if (self->hours != NULL) {
            self->hours[s_mod(h, AGG_SPIKE_HIST_HOURS)] = 0;
        }
        return 0;
    }
    if (h > self->h_last) {
        for (x = s_max(self->h_last + 1, h - AGG_SPIKE_HIST_HOURS + 1);
             x <= h && self->hours != NULL; x++) {
            self->hours[s_mod(x, AGG_SPIKE_HIST_HOURS)] = 0;
        }
        self->h_last = h;
        self->h_first = s_max(self->h_first, h - AGG_SPIKE_HIST_HOURS + 1);
        return 0;
    }
    return s_hour_held(self, h) ? 0 : -1;
}

/* Posts in the minute range [a, b) according to the hourly history, assuming posts are spread
 * evenly inside an hour. */
static double
s_hour_range(const agg_spike_series_t *self, int64_t a, int64_t b)
{
    double sum = 0.0;
    int64_t h;

    for (h = s_floor_div(a, 60); h * 60 < b; h++) {
        int64_t lo = s_max(a, h * 60);
        int64_t hi = s_min(b, h * 60 + 60);

        sum += (double)s_hour(self, h) * (double)(hi - lo) / 60.0;
    }
    return sum;
}

static int
s_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a;
    double y = *(const double *)b;

    return x < y ? -1 : (x > y ? 1 : 0);
}

/* Median of v[0..n), n >= 1; reorders v. */
static double
s_median(double *v, size_t n)
{
    qsort(v, n, sizeof(*v), s_cmp_double);
    return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2.0;
}

/* Whether the window shifted back by shift hours, and the S_REF_H hours before it, are in the
 * history (h0 = hour of the window start). */
static int
s_shift_ok(const agg_spike_series_t *self, int64_t h0, int64_t shift)
{
    int64_t oldest = h0 - S_REF_H - shift;

    return oldest >= self->h_first && oldest > self->h_last - AGG_SPIKE_HIST_HOURS;
}

/* The window's count shift hours ago, times the level ratio of the S_REF_H hours before the
 * window now to the same hours then. A level that changed since then is followed after S_REF_H
 * hours (a short reference adapts fast; the median over shifts keeps one odd day out). */
static double
s_shift_estimate(const agg_spike_series_t *self, int64_t h0, int64_t ws, int64_t we,
                 int64_t shift)
{
    double then = s_hour_range(self, ws - shift * 60, we - shift * 60);
    double ref_now = s_hour_range(self, (h0 - S_REF_H) * 60, h0 * 60);
    double ref_then = s_hour_range(self, (h0 - S_REF_H - shift) * 60, (h0 - shift) * 60);
    double ratio = (ref_now + S_REF_PRIOR) / (ref_then + S_REF_PRIOR);

    if (ratio < S_RATIO_MIN) {
        ratio = S_RATIO_MIN;
    }
    if (ratio > S_RATIO_MAX) {
        ratio = S_RATIO_MAX;
    }
    return then * ratio;
}

/* Expected count of the window [ws, we) (minutes) that ends with step s. Returns the stage
 * name, or NULL when the history is too short to tell. */
static const char *
s_expected(const agg_spike_series_t *self, int64_t s, int64_t ws, int64_t we, double *out)
{
    int64_t h0 = s_floor_div(ws, 60);
    double est[S_DAYS_MAX];
    size_t n = 0;
    int64_t k;
    int64_t hist_start = self->first * self->step_min;
    int64_t from;
    int64_t from_step;
    double count;

    /* the stage follows the history available when the window closes */
    if (self->h_first != S_NONE && we - self->h_first * 60 >= 14 * S_DAY_H * 60) {
        for (k = 1; k <= S_WEEKS_MAX; k++) {
            if (s_shift_ok(self, h0, k * S_WEEK_H)) {
                est[n++] = s_shift_estimate(self, h0, ws, we, k * S_WEEK_H);
            }
        }
        if (n > 0) {
            *out = s_median(est, n);
            return "weekly";
        }
    }
    if (self->h_first != S_NONE && we - self->h_first * 60 >= 2 * S_DAY_H * 60) {
        for (k = 1; k <= S_DAYS_MAX; k++) {
            if (s_shift_ok(self, h0, k * S_DAY_H)) {
                est[n++] = s_shift_estimate(self, h0, ws, we, k * S_DAY_H);
            }
        }
        if (n > 0) {
            *out = s_median(est, n);
            return "daily";
        }
    }
    /* trailing mean over the baseline before the window; minutes before the first step come
     * from seeded hours when there are any (a gap between them and the first step reads as 0) */
    if (self->h_seed_end != S_NONE && self->h_first * 60 < hist_start) {
        hist_start = self->h_first * 60;
    }
    from = s_max(ws - self->b * self->step_min, hist_start);
    if (ws - from < we - ws) {
        return NULL;
    }
    from_step = s_max(s_floor_div(from, self->step_min), self->first);
    count = (double)s_steps_sum(self, from_step, s - self->w + 1);
    if (from < self->first * self->step_min) {
        count += s_hour_range(self, from, self->first * self->step_min);
    }
    *out = count / (double)(ws - from) * (double)(we - ws);
    return "trailing";
}

/* Refreshes median, robust scale and dispersion from the residual ring. */
static void
s_resid_stats(agg_spike_series_t *self)
{
    double v[AGG_SPIKE_RESID];
    double med;
    double scale;
    size_t i;

    if (!self->resid_dirty) {
        return;
    }
    self->resid_dirty = 0;
    self->r_med = 0.0;
    self->r_scale = 1.0;
    self->r_disp = 1.0;
    if (self->n_resid < S_RESID_MIN) {
        return;
    }
    memcpy(v, self->resid, self->n_resid * sizeof(v[0]));
    med = s_median(v, self->n_resid);
    for (i = 0; i < self->n_resid; i++) {
        v[i] = fabs(self->resid[i] - med);
    }
    scale = S_MAD_SIGMA * s_median(v, self->n_resid);
    self->r_med = med;
    self->r_scale = scale > 1.0 ? scale : 1.0;
    self->r_disp = scale * scale;
    if (self->r_disp < 1.0) {
        self->r_disp = 1.0;
    }
    if (self->r_disp > self->cfg.max_dispersion) {
        self->r_disp = self->cfg.max_dispersion;
    }
}

static void
s_resid_push(agg_spike_series_t *self, double u)
{
    self->resid[self->resid_pos] = u;
    self->resid_pos = (self->resid_pos + 1) % AGG_SPIKE_RESID;
    if (self->n_resid < AGG_SPIKE_RESID) {
        self->n_resid++;
    }
    self->resid_dirty = 1;
}

/* Evaluates the window that ends with step s, whose own value is value. */
static void
s_evaluate(agg_spike_series_t *self, int64_t s, int64_t value, struct agg_spike_eval *out)
{
    int64_t ws_step = s - self->w + 1;
    int64_t ws = ws_step * self->step_min;
    int64_t we = (s + 1) * self->step_min;
    int sample;
    const char *stage;
    double expected = 0.0;
    double lam;
    double logp;
    double score;
    int sig;
    int calm;
    int cool;

    if (ws_step < self->first) {
        return;
    }
    out->observed = s_steps_sum(self, ws_step, s + 1);
    out->window_start_ms = ws * S_MINUTE_MS;
    out->window_end_ms = we * S_MINUTE_MS;
    /* one residual per non-overlapping window teaches the dispersion */
    sample = (s - self->first + 1) % self->w == 0;
    if (self->lazy && !self->active && !sample && out->observed < self->cfg.min_count) {
        return; /* cannot fire, and nothing to learn or track */
    }
    stage = s_expected(self, s, ws, we, &expected);
    if (stage == NULL) {
        return;
    }
    s_resid_stats(self);
    lam = expected > 1.0 ? expected : 1.0;
    logp = agg_spike_poisson_log_sf(out->observed, lam, self->r_disp);
    if (self->zscore) {
        double u = ((double)out->observed - lam) / sqrt(lam);

        score = (u - self->r_med) / self->r_scale;
        sig = score >= self->cfg.z_threshold;
    }
    else {
        score = -logp / S_LN10;
        sig = logp < log(self->cfg.p_threshold);
    }
    calm = (double)out->observed <= lam + self->cfg.end_z * sqrt(self->r_disp * lam);
    cool = self->last_fire_end == S_NONE || we - self->last_fire_end >= self->cfg.cooldown_min;
    out->evaluated = 1;
    out->stage = stage;
    out->expected = expected;
    out->score = score;
    out->p = exp(logp);
    out->dispersion = self->r_disp;
    if (sig && !self->active && cool && out->observed >= self->cfg.min_count
        && (double)out->observed >= self->cfg.factor * lam) {
        out->fired = 1;
        self->active = 1;
        self->last_fire_end = we;
        self->calm = 0;
        self->ep_start = ws;
        self->ep_hot_end = we;
        self->ep_sum = out->observed;
        self->ep_hot_sum = out->observed;
        self->ep_exp = expected;
        self->ep_hot_exp = expected;
        self->ep_peak = score;
        return;
    }
    if (!self->active) {
        if (sample) {
            s_resid_push(self, ((double)out->observed - lam) / sqrt(lam));
        }
        return;
    }
    self->ep_sum += value;
    self->ep_exp += expected / (double)self->w;
    if (!calm) {
        self->calm = 0;
        self->ep_hot_end = we;
        self->ep_hot_sum = self->ep_sum;
        self->ep_hot_exp = self->ep_exp;
        if (score > self->ep_peak) {
            self->ep_peak = score;
        }
        return;
    }
    self->calm++;
    if (self->calm >= self->end_steps) {
        out->ended = 1;
        out->ep_start_ms = self->ep_start * S_MINUTE_MS;
        out->ep_end_ms = self->ep_hot_end * S_MINUTE_MS;
        out->ep_observed = self->ep_hot_sum;
        out->ep_expected = self->ep_hot_exp;
        out->ep_peak = self->ep_peak;
        self->active = 0;
        self->calm = 0;
    }
}

void
agg_spike_series_push(agg_spike_series_t *self, int64_t start_ms, int64_t value,
                      struct agg_spike_eval *out)
{
    int64_t s = s_floor_div(start_ms, self->step_ms);
    int64_t h = s_floor_div(s * self->step_min, 60);

    memset(out, 0, sizeof(*out));
    out->stage = "";
    out->p = 1.0;
    out->dispersion = 1.0;
    if (self->last == S_NONE) {
        self->first = s;
    }
    else {
        ESC_ASSERT(s == self->last + 1);
    }
    self->last = s;
    if (value > 0) {
        s_rings(self);
    }
    if (self->vals != NULL) {
        self->vals[s_mod(s, self->n_vals)] = s_u32(value);
    }
    if (s_hour_reach(self, h) == 0 && self->hours != NULL) {
        uint32_t *c = &self->hours[s_mod(h, AGG_SPIKE_HIST_HOURS)];

        *c = s_u32((int64_t)*c + value);
    }
    s_evaluate(self, s, value, out);
}

int
agg_spike_series_add_late(agg_spike_series_t *self, int64_t start_ms, int64_t delta)
{
    int64_t s = s_floor_div(start_ms, self->step_ms);
    int64_t h = s_floor_div(s * self->step_min, 60);

    if (self->last == S_NONE || s > self->last) {
        return -1;
    }
    if (delta > 0) {
        s_rings(self);
    }
    if (s_hour_held(self, h) && self->hours != NULL) {
        uint32_t *c = &self->hours[s_mod(h, AGG_SPIKE_HIST_HOURS)];

        *c = s_u32((int64_t)*c + delta);
    }
    if (!s_held(self, s)) {
        return -1;
    }
    if (self->vals != NULL) {
        self->vals[s_mod(s, self->n_vals)] = s_u32((int64_t)self->vals[s_mod(s, self->n_vals)]
                                                   + delta);
    }
    return 0;
}

void
agg_spike_series_seed_hours(agg_spike_series_t *self, int64_t first_hour_ms,
                            const int64_t *counts, size_t n)
{
    int64_t h0 = s_floor_div(first_hour_ms, S_HOUR_MS);
    size_t i;

    for (i = 0; i < n; i++) {
        int64_t h = h0 + (int64_t)i;

        if (counts[i] > 0) {
            s_rings(self);
        }
        if (s_hour_reach(self, h) == 0 && self->hours != NULL) {
            self->hours[s_mod(h, AGG_SPIKE_HIST_HOURS)] = s_u32(counts[i]);
        }
    }
    if (n > 0) {
        self->h_seed_end = h0 + (int64_t)n;
    }
}

/* ---- Event-time layer ------------------------------------------------------------------- */

/* A post kept for alerts (a sample text, one of a minute's most engaged posts), shared by
 * every slot that keeps it: a post of four topics is stored once. One allocation. */
struct s_kept {
    uint32_t refs;         /* slots holding it */
    int64_t engagement;
    int64_t created_at;
    const char *author;    /* into data; "" when unknown */
    const char *url;       /* into data; "" when unknown */
    char text[];           /* cut at AGG_SPIKE_SAMPLE_MAX, then author and url */
};

/* One minute of one topic: the posts counted while it is open, and what alerts need. */
struct s_slot {
    int64_t minute;                        /* absolute minute, S_NONE when empty */
    int64_t count;                         /* posts counted in this minute */
    struct s_kept *top[AGG_SPIKE_SAMPLES]; /* most engaged posts; a reference each */
    size_t n_top;
    struct s_kept *texts[AGG_SPIKE_TEXTS]; /* uniform sample of the posts; a reference each */
    size_t n_texts;
    int64_t offered;                       /* texts offered to the sample */
};

struct s_topic {
    struct agg_spike_cfg cfg;
    agg_spike_series_t *series;            /* owned */
    int external;                          /* minutes are fed by agg_spikes_minute */
    struct s_slot *slots;                  /* n_slots; owned */
    int64_t n_slots;
    int64_t last_closed;                   /* last minute closed, S_NONE before */
    int64_t released;                      /* slots of minutes <= this were released */
    /* background terms, S_BG_TERMS each, owned, allocated with the first term; in parallel
     * arrays so that a look-up scans the hashes only and the decay the weights only */
    uint16_t *bg_off;                      /* where each term starts in bg_buf */
    char *bg_buf;                          /* the terms, NUL-terminated, back to back */
    size_t bg_used;                        /* bytes of bg_buf written */
    size_t bg_cap;
    size_t bg_live;                        /* bytes of bg_buf that are current terms */
    uint32_t *bg_hash;                     /* s_term_hash(term): compared before the text */
    double *bg_weight;                     /* decayed posts that contained it */
    size_t n_bg;
    uint16_t *bg_ix;                       /* S_BG_SLOTS: term index + 1 by hash, 0 empty */
    uint16_t *bg_heap;                     /* n_bg term indexes, a min-heap on (weight, index) */
    uint16_t *bg_pos;                      /* position of each term in bg_heap */
    double bg_total;                       /* decayed posts behind bg */
};

/* A term of the alert window. */
struct s_wterm {
    char term[AGG_TERM_MAX + 1];
    double weight;                         /* estimated posts of the window that contain it */
    int64_t docs;                          /* sampled texts that contain it */
    double key;                            /* ranking key */
};

struct agg_spikes {
    struct s_topic *topics;                /* n; owned */
    size_t n;
    int64_t max_seen_ms;                   /* newest event time seen, S_NONE before any post */
    int64_t history_start;                 /* first minute closed for every topic */
    int closing;                           /* a minute was closed: history_start is fixed */
    int64_t next_advance_ms;               /* below this max_seen_ms no local topic has a
                                              minute due (s_advance), INT64_MIN: unknown */
    uint64_t rng;                          /* xorshift state for the text sample */
    agg_spike_fn fn;
    void *arg;
    char terms[AGG_SPIKE_TERMS][AGG_TERM_MAX + 1]; /* the alert's terms, during the callback */
};

int64_t
agg_spikes_ring_minutes(const struct agg_spike_cfg *cfg)
{
    return cfg->window_min + cfg->baseline_min + 1;
}

agg_spikes_t *
agg_spikes_new(const struct agg_spike_cfg *cfgs, size_t n_topics, agg_spike_fn fn, void *arg)
{
    agg_spikes_t *self = esc_calloc(1, sizeof(*self));
    size_t i;

    self->topics = esc_calloc(n_topics > 0 ? n_topics : 1, sizeof(*self->topics));
    self->n = n_topics;
    self->max_seen_ms = S_NONE;
    self->history_start = S_NONE;
    self->next_advance_ms = INT64_MIN;
    self->rng = 0x9E3779B97F4A7C15ULL;
    self->fn = fn;
    self->arg = arg;
    for (i = 0; i < n_topics; i++) {
        struct s_topic *t = &self->topics[i];

        t->cfg = cfgs[i];
        t->series = agg_spike_series_new(&cfgs[i], 1, 1);
        ESC_ASSERT(t->series != NULL);
        /* open minutes trail the watermark by up to the lateness plus 2; a window's minutes
         * stay until no future window covers them */
        t->n_slots = cfgs[i].window_min + (cfgs[i].lateness_s + 59) / 60 + 3;
        t->slots = NULL; /* with the topic's first post (s_record) */
        t->last_closed = S_NONE;
        t->released = S_NONE;
    }
    return self;
}

/* Drops one reference to k (NULL-safe). */
static void
s_kept_unref(struct s_kept *k)
{
    if (k != NULL && --k->refs == 0) {
        esc_free(k);
    }
}

static void
s_slot_clear(struct s_slot *s)
{
    size_t i;

    for (i = 0; i < s->n_top; i++) {
        s_kept_unref(s->top[i]);
    }
    for (i = 0; i < s->n_texts; i++) {
        s_kept_unref(s->texts[i]);
    }
    memset(s, 0, sizeof(*s));
    s->minute = S_NONE;
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
        for (k = 0; k < self->topics[i].n_slots && self->topics[i].slots != NULL; k++) {
            s_slot_clear(&self->topics[i].slots[k]);
        }
        esc_free(self->topics[i].slots);
        esc_free(self->topics[i].bg_off);
        esc_free(self->topics[i].bg_buf);
        esc_free(self->topics[i].bg_hash);
        esc_free(self->topics[i].bg_weight);
        esc_free(self->topics[i].bg_ix);
        esc_free(self->topics[i].bg_heap);
        esc_free(self->topics[i].bg_pos);
        agg_spike_series_destroy(&self->topics[i].series);
    }
    esc_free(self->topics);
    esc_free(self);
    *self_p = NULL;
}

static uint64_t
s_rand(agg_spikes_t *self)
{
    uint64_t x = self->rng;

    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    self->rng = x;
    return x * 0x2545F4914F6CDD1DULL;
}

/* Length of s cut to at most max bytes where no UTF-8 sequence is split (NULL reads as ""). */
static size_t
s_cut_len(const char *s, size_t max)
{
    size_t n;

    if (s == NULL) {
        return 0;
    }
    n = strlen(s);
    if (n > max) {
        n = max;
        while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80) {
            n--;
        }
    }
    return n;
}

/* The kept copy of p, made by the first slot that keeps it (*kp caches it for the post's
 * other topics); the caller takes a reference. */
static struct s_kept *
s_kept_of(struct s_kept **kp, const struct agg_spike_post *p)
{
    const char *url = p->url != NULL && strlen(p->url) <= S_URL_MAX ? p->url : NULL;
    size_t nt;
    size_t na;
    size_t nu;
    struct s_kept *k;
    char *d;

    if (*kp != NULL) {
        return *kp;
    }
    nt = s_cut_len(p->text, AGG_SPIKE_SAMPLE_MAX);
    na = s_cut_len(p->author, S_AUTHOR_MAX);
    nu = s_cut_len(url, S_URL_MAX);
    k = esc_malloc(sizeof(*k) + nt + na + nu + 3);
    k->refs = 0;
    k->engagement = p->engagement;
    k->created_at = p->created_at_ms;
    d = k->text;
    memcpy(d, p->text, nt);
    d[nt] = '\0';
    d += nt + 1;
    if (na > 0) {
        memcpy(d, p->author, na);
    }
    d[na] = '\0';
    k->author = d;
    d += na + 1;
    if (nu > 0) {
        memcpy(d, url, nu);
    }
    d[nu] = '\0';
    k->url = d;
    *kp = k;
    return k;
}

/* What s_slot_of gives for a topic that has had no post yet (no slots allocated): an empty
 * minute. Never written: s_record allocates the topic's slots before it writes one, and the
 * other writers (releases) skip empty minutes. */
static struct s_slot s_no_slot = { .minute = S_NONE };

static struct s_slot *
s_slot_of(const struct s_topic *t, int64_t minute)
{
    if (t->slots == NULL) {
        return &s_no_slot;
    }
    return &t->slots[s_mod(minute, t->n_slots)];
}

/* ---- terms ---- */

struct s_text_terms {
    char term[S_TEXT_TERMS][AGG_TERM_MAX + 1];
    uint32_t hash[S_TEXT_TERMS];           /* s_term_hash of each */
    size_t n;
};

static uint32_t
s_term_hash_n(const char *term, size_t len)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    size_t i;

    for (i = 0; i < len; i++) {
        h ^= (unsigned char)term[i];
        h *= 16777619u;
    }
    return h;
}

/* agg_term_fn: collects the distinct terms of one text. */
static void
s_collect_term(void *arg, const char *term, size_t len)
{
    struct s_text_terms *tt = arg;
    uint32_t h;
    size_t i;

    if (len == 0 || len > AGG_TERM_MAX || tt->n == S_TEXT_TERMS) {
        return;
    }
    h = s_term_hash_n(term, len);
    for (i = 0; i < tt->n; i++) {
        if (tt->hash[i] == h && memcmp(tt->term[i], term, len) == 0
            && tt->term[i][len] == '\0') {
            return;
        }
    }
    memcpy(tt->term[tt->n], term, len);
    tt->term[tt->n][len] = '\0';
    tt->hash[tt->n] = h;
    tt->n++;
}

static void
s_text_terms(const char *text, struct s_text_terms *tt)
{
    tt->n = 0;
    agg_terms_extract(text, strlen(text), NULL, s_collect_term, tt);
}

static uint32_t
s_term_hash(const char *term)
{
    return s_term_hash_n(term, strlen(term));
}

/* Index of term (hash h) in the topic's background, or -1. *slot: where the look-up ended
 * (the term's index slot, or the empty one where it would go). */
static long
s_bg_find(const struct s_topic *t, const char *term, uint32_t h, size_t *slot)
{
    size_t i = h & (S_BG_SLOTS - 1);

    if (t->bg_ix == NULL) {
        *slot = i;
        return -1;
    }
    while (t->bg_ix[i] != 0) {
        size_t e = (size_t)t->bg_ix[i] - 1;

        if (t->bg_hash[e] == h && strcmp(t->bg_buf + t->bg_off[e], term) == 0) {
            *slot = i;
            return (long)e;
        }
        i = (i + 1) & (S_BG_SLOTS - 1);
    }
    *slot = i;
    return -1;
}

/* Takes the term at index slot i out of the hash index (linear probing: the entries after it
 * in its run move back so that every look-up still finds them). */
static void
s_bg_unindex(struct s_topic *t, size_t i)
{
    size_t j = i;

    t->bg_ix[i] = 0;
    for (;;) {
        size_t home;

        j = (j + 1) & (S_BG_SLOTS - 1);
        if (t->bg_ix[j] == 0) {
            return;
        }
        home = t->bg_hash[t->bg_ix[j] - 1] & (S_BG_SLOTS - 1);
        /* the entry at j may fill the hole at i unless its home lies cyclically in (i, j] */
        if (((j - home) & (S_BG_SLOTS - 1)) >= ((j - i) & (S_BG_SLOTS - 1))) {
            t->bg_ix[i] = t->bg_ix[j];
            t->bg_ix[j] = 0;
            i = j;
        }
    }
}

/* Heap order of the background: lighter first, the lower index first among equal weights
 * (the term a linear scan for the first lightest one would pick). */
static int
s_bg_less(const struct s_topic *t, size_t a, size_t b)
{
    return t->bg_weight[a] < t->bg_weight[b] || (t->bg_weight[a] == t->bg_weight[b] && a < b);
}

static void
s_bg_heap_set(struct s_topic *t, size_t pos, uint16_t e)
{
    t->bg_heap[pos] = e;
    t->bg_pos[e] = (uint16_t)pos;
}

static void
s_bg_heap_up(struct s_topic *t, size_t pos)
{
    uint16_t e = t->bg_heap[pos];

    while (pos > 0 && s_bg_less(t, e, t->bg_heap[(pos - 1) / 2])) {
        s_bg_heap_set(t, pos, t->bg_heap[(pos - 1) / 2]);
        pos = (pos - 1) / 2;
    }
    s_bg_heap_set(t, pos, e);
}

static void
s_bg_heap_down(struct s_topic *t, size_t pos)
{
    uint16_t e = t->bg_heap[pos];

    for (;;) {
        size_t c = 2 * pos + 1;

        if (c >= t->n_bg) {
            break;
        }
        if (c + 1 < t->n_bg && s_bg_less(t, t->bg_heap[c + 1], t->bg_heap[c])) {
            c++;
        }
        if (!s_bg_less(t, t->bg_heap[c], e)) {
            break;
        }
        s_bg_heap_set(t, pos, t->bg_heap[c]);
        pos = c;
    }
    s_bg_heap_set(t, pos, e);
}

/* Stores term (cut at AGG_TERM_MAX bytes) as background term i; replacing: i held a term
 * before. The terms take what they need (about 10 bytes each rather than AGG_TERM_MAX + 1):
 * when bg_buf is full it is rebuilt with the current terms only, at twice their size. */
static void
s_bg_store(struct s_topic *t, size_t i, const char *term, int replacing)
{
    size_t n = strnlen(term, AGG_TERM_MAX);
    size_t j;

    if (replacing) {
        t->bg_live -= strlen(t->bg_buf + t->bg_off[i]) + 1;
    }
    if (t->bg_used + n + 1 > t->bg_cap) {
        size_t cap = 2 * (t->bg_live + n + 1);
        char *buf;
        size_t used = 0;

        cap = cap < 256 ? 256 : cap;
        buf = esc_malloc(cap);
        for (j = 0; j < t->n_bg; j++) {
            size_t len;

            if (j == i) {
                continue;
            }
            len = strlen(t->bg_buf + t->bg_off[j]) + 1;
            memcpy(buf + used, t->bg_buf + t->bg_off[j], len);
            t->bg_off[j] = (uint16_t)used;
            used += len;
        }
        esc_free(t->bg_buf);
        t->bg_buf = buf;
        t->bg_cap = cap;
        t->bg_used = used;
    }
    ESC_ASSERT(t->bg_used + n + 1 <= UINT16_MAX);
    memcpy(t->bg_buf + t->bg_used, term, n);
    t->bg_buf[t->bg_used + n] = '\0';
    t->bg_off[i] = (uint16_t)t->bg_used;
    t->bg_used += n + 1;
    t->bg_live += n + 1;
}

/* Adds weight to term (hash h) in the topic's background (space-saving: a new term replaces
 * the lightest one, the first of them, and starts from its weight). The hash index finds the
 * term and the heap the lightest one, so a full background costs O(log n) per term. */
static void
s_bg_add(struct s_topic *t, const char *term, uint32_t h, double weight)
{
    size_t slot;
    long at = s_bg_find(t, term, h, &slot);
    size_t min_i;
    size_t old;

    if (at >= 0) {
        t->bg_weight[at] += weight;
        s_bg_heap_down(t, t->bg_pos[at]);
        return;
    }
    if (t->bg_ix == NULL) {
        t->bg_off = esc_calloc(S_BG_TERMS, sizeof(*t->bg_off));
        t->bg_hash = esc_calloc(S_BG_TERMS, sizeof(*t->bg_hash));
        t->bg_weight = esc_calloc(S_BG_TERMS, sizeof(*t->bg_weight));
        t->bg_ix = esc_calloc(S_BG_SLOTS, sizeof(*t->bg_ix));
        t->bg_heap = esc_calloc(S_BG_TERMS, sizeof(*t->bg_heap));
        t->bg_pos = esc_calloc(S_BG_TERMS, sizeof(*t->bg_pos));
    }
    if (t->n_bg < S_BG_TERMS) {
        min_i = t->n_bg++;
        t->bg_weight[min_i] = 0.0;
        t->bg_heap[min_i] = (uint16_t)min_i;
        t->bg_pos[min_i] = (uint16_t)min_i;
        s_bg_store(t, min_i, term, 0);
    }
    else {
        min_i = t->bg_heap[0];
        s_bg_find(t, t->bg_buf + t->bg_off[min_i], t->bg_hash[min_i], &old);
        s_bg_unindex(t, old);
        s_bg_store(t, min_i, term, 1);
    }
    /* the hash of the (possibly cut) copy */
    t->bg_hash[min_i] = s_term_hash(t->bg_buf + t->bg_off[min_i]);
    t->bg_weight[min_i] += weight;
    s_bg_find(t, t->bg_buf + t->bg_off[min_i], t->bg_hash[min_i], &slot);
    t->bg_ix[slot] = (uint16_t)(min_i + 1);
    s_bg_heap_up(t, t->bg_pos[min_i]);
    s_bg_heap_down(t, t->bg_pos[min_i]);
}

static double
s_bg_weight(const struct s_topic *t, const char *term)
{
    size_t slot;
    long at = s_bg_find(t, term, s_term_hash(term), &slot);

    return at >= 0 ? t->bg_weight[at] : 0.0;
}

/* A minute no future window covers: its texts go into the background, then it is cleared. */
static void
s_slot_release(struct s_topic *t, struct s_slot *s)
{
    struct s_text_terms tt;
    double w;
    size_t i;
    size_t k;

    if (s->minute == S_NONE) {
        return;
    }
    for (i = 0; i < t->n_bg; i++) {
        t->bg_weight[i] *= S_BG_DECAY;
    }
    /* the decay keeps the order of the weights but may make two equal: rebuild the heap */
    for (i = t->n_bg / 2; i-- > 0;) {
        s_bg_heap_down(t, i);
    }
    t->bg_total *= S_BG_DECAY;
    if (s->n_texts > 0) {
        w = (double)s->offered / (double)s->n_texts;
        for (i = 0; i < s->n_texts; i++) {
            s_text_terms(s->texts[i]->text, &tt);
            for (k = 0; k < tt.n; k++) {
                s_bg_add(t, tt.term[k], tt.hash[k], w);
            }
        }
        t->bg_total += (double)s->offered;
    }
    s_slot_clear(s);
}

/* Releases every slot of a minute <= upto. */
static void
s_release_upto(struct s_topic *t, int64_t upto)
{
    int64_t x = t->released == S_NONE ? upto - t->n_slots + 1
                                      : s_max(t->released + 1, upto - t->n_slots + 1);

    for (; x <= upto; x++) {
        struct s_slot *s = s_slot_of(t, x);

        if (s->minute != S_NONE && s->minute <= upto) {
            s_slot_release(t, s);
        }
    }
    if (t->released == S_NONE || upto > t->released) {
        t->released = upto;
    }
}

/* Keeps what an alert may need from post p in slot s. */
static void
s_keep(agg_spikes_t *self, struct s_slot *s, const struct agg_spike_post *p, struct s_kept **kp)
{
    struct s_kept *k;
    size_t i;
    uint64_t j;

    if (p->text == NULL || p->text[0] == '\0') {
        return;
    }
    if (s->n_top < AGG_SPIKE_SAMPLES) {
        k = s_kept_of(kp, p);
        k->refs++;
        s->top[s->n_top++] = k;
    }
    else {
        size_t min_i = 0;

        for (i = 1; i < s->n_top; i++) {
            if (s->top[i]->engagement < s->top[min_i]->engagement) {
                min_i = i;
            }
        }
        if (p->engagement > s->top[min_i]->engagement) {
            k = s_kept_of(kp, p);
            k->refs++;
            s_kept_unref(s->top[min_i]);
            s->top[min_i] = k;
        }
    }
    /* reservoir sample: after n offers each text is kept with probability TEXTS / n */
    s->offered++;
    if (s->n_texts < AGG_SPIKE_TEXTS) {
        k = s_kept_of(kp, p);
        k->refs++;
        s->texts[s->n_texts++] = k;
        return;
    }
    j = s_rand(self) % (uint64_t)s->offered;
    if (j < AGG_SPIKE_TEXTS) {
        k = s_kept_of(kp, p);
        k->refs++;
        s_kept_unref(s->texts[j]);
        s->texts[j] = k;
    }
}

/* ---- alerts ---- */

struct s_wtable {
    struct s_wterm *e;                     /* open addressing, cap entries; owned */
    size_t cap;
    size_t n;
};

static uint64_t
s_hash(const char *s)
{
    uint64_t h = 1469598103934665603ULL;

    for (; *s != '\0'; s++) {
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    }
    return h;
}

static struct s_wterm *
s_wtable_get(struct s_wtable *tb, const char *term)
{
    size_t i;

    if ((tb->n + 1) * 2 > tb->cap) {
        struct s_wtable bigger;

        bigger.cap = tb->cap * 2;
        bigger.n = 0;
        bigger.e = esc_calloc(bigger.cap, sizeof(*bigger.e));
        for (i = 0; i < tb->cap; i++) {
            if (tb->e[i].term[0] != '\0') {
                *s_wtable_get(&bigger, tb->e[i].term) = tb->e[i];
            }
        }
        esc_free(tb->e);
        *tb = bigger;
    }
    i = (size_t)(s_hash(term) & (tb->cap - 1));
    while (tb->e[i].term[0] != '\0' && strcmp(tb->e[i].term, term) != 0) {
        i = (i + 1) & (tb->cap - 1);
    }
    if (tb->e[i].term[0] == '\0') {
        esc_strlcpy(tb->e[i].term, term, sizeof(tb->e[i].term));
        tb->n++;
    }
    return &tb->e[i];
}

static int
s_cmp_wterm(const void *a, const void *b)
{
    const struct s_wterm *x = a;
    const struct s_wterm *y = b;
    int cx = x->key > 0.0 ? 0 : 1;
    int cy = y->key > 0.0 ? 0 : 1;

    if (cx != cy) {
        return cx - cy;
    }
    if (cx == 0 && x->key != y->key) {
        return x->key > y->key ? -1 : 1;
    }
    if (x->weight != y->weight) {
        return x->weight > y->weight ? -1 : 1;
    }
    return strcmp(x->term, y->term);
}

/* Fills a->terms with the window's most distinctive terms: ranked by weight * ln(share in the
 * window / share in the background), terms the window has no more of than usual after them by
 * weight. */
static void
s_window_terms(agg_spikes_t *self, const struct s_topic *t, int64_t m0, int64_t m1,
               struct agg_spike *a)
{
    struct s_wtable tb;
    struct s_text_terms tt;
    struct s_wterm *list;
    int64_t n_texts = 0;
    int64_t stride = 1;
    int64_t seen = 0;
    double total = 0.0;
    size_t n = 0;
    size_t i;
    size_t k;
    int64_t x;

    for (x = m0; x < m1; x++) {
        const struct s_slot *s = s_slot_of(t, x);

        if (s->minute == x) {
            n_texts += (int64_t)s->n_texts;
        }
    }
    if (n_texts == 0) {
        return;
    }
    stride = (n_texts + S_WINDOW_TEXTS - 1) / S_WINDOW_TEXTS;
    tb.cap = 1024;
    tb.n = 0;
    tb.e = esc_calloc(tb.cap, sizeof(*tb.e));
    for (x = m0; x < m1; x++) {
        const struct s_slot *s = s_slot_of(t, x);
        double w;

        if (s->minute != x || s->n_texts == 0) {
            continue;
        }
        w = (double)s->offered / (double)s->n_texts * (double)stride;
        for (i = 0; i < s->n_texts; i++) {
            if (seen++ % stride != 0) {
                continue;
            }
            s_text_terms(s->texts[i]->text, &tt);
            for (k = 0; k < tt.n; k++) {
                struct s_wterm *e = s_wtable_get(&tb, tt.term[k]);

                e->weight += w;
                e->docs++;
            }
            total += w;
        }
    }
    list = esc_calloc(tb.n > 0 ? tb.n : 1, sizeof(*list));
    for (i = 0; i < tb.cap; i++) {
        struct s_wterm *e = &tb.e[i];
        double p_w;
        double p_b;

        if (e->term[0] == '\0' || (e->docs < 2 && n_texts >= 4)) {
            continue;
        }
        p_w = e->weight / total;
        p_b = (s_bg_weight(t, e->term) + 0.5) / (t->bg_total + 1.0);
        /* without a background (just started) the plain window frequency decides */
        e->key = t->bg_total >= 1.0 ? e->weight * log(p_w / p_b) : 0.0;
        list[n++] = *e;
    }
    qsort(list, n, sizeof(*list), s_cmp_wterm);
    for (i = 0; i < n && a->n_terms < AGG_SPIKE_TERMS; i++) {
        esc_strlcpy(self->terms[a->n_terms], list[i].term, sizeof(self->terms[0]));
        a->terms[a->n_terms] = self->terms[a->n_terms];
        a->n_terms++;
    }
    esc_free(list);
    esc_free(tb.e);
}

/* Fills a->samples with the most engaged kept posts of minutes [m0, m1), newest first on ties. */
static void
s_window_samples(const struct s_topic *t, int64_t m0, int64_t m1, struct agg_spike *a)
{
    const struct s_kept *best[AGG_SPIKE_SAMPLES];
    size_t n = 0;
    size_t i;
    size_t j;
    int64_t x;

    for (x = m0; x < m1; x++) {
        const struct s_slot *s = s_slot_of(t, x);

        if (s->minute != x) {
            continue;
        }
        for (i = 0; i < s->n_top; i++) {
            const struct s_kept *k = s->top[i];

            /* insertion into best[], ordered by engagement then recency */
            for (j = n; j > 0; j--) {
                const struct s_kept *o = best[j - 1];

                if (o->engagement > k->engagement
                    || (o->engagement == k->engagement && o->created_at >= k->created_at)) {
                    break;
                }
                if (j < AGG_SPIKE_SAMPLES) {
                    best[j] = o;
                }
            }
            if (j < AGG_SPIKE_SAMPLES) {
                best[j] = k;
                if (n < AGG_SPIKE_SAMPLES) {
                    n++;
                }
            }
        }
    }
    for (i = 0; i < n; i++) {
        a->samples[i].text = best[i]->text;
        a->samples[i].author = best[i]->author;
        a->samples[i].url = best[i]->url;
        a->samples[i].engagement = best[i]->engagement;
    }
    a->n_samples = n;
}

static void
s_emit(agg_spikes_t *self, size_t ti, const struct agg_spike_eval *ev)
{
    const struct s_topic *t = &self->topics[ti];
    struct agg_spike a;

    memset(&a, 0, sizeof(a));
    a.topic = ti;
    a.stage = ev->stage;
    if (ev->fired) {
        a.kind = AGG_SPIKE_START;
        a.window_start_ms = ev->window_start_ms;
        a.window_end_ms = ev->window_end_ms;
        a.observed = ev->observed;
        a.expected = ev->expected;
        a.score = ev->score;
        a.p = ev->p;
        s_window_samples(t, ev->window_start_ms / S_MINUTE_MS, ev->window_end_ms / S_MINUTE_MS,
                         &a);
        s_window_terms(self, t, ev->window_start_ms / S_MINUTE_MS,
                       ev->window_end_ms / S_MINUTE_MS, &a);
    }
    else {
        a.kind = AGG_SPIKE_END;
        a.window_start_ms = ev->ep_start_ms;
        a.window_end_ms = ev->ep_end_ms;
        a.observed = ev->ep_observed;
        a.expected = ev->ep_expected;
        a.score = ev->ep_peak;
        a.p = 1.0;
    }
    if (self->fn != NULL) {
        self->fn(self->arg, &a);
    }
}

/* Closes minute m of topic ti with count posts. */
static void
s_close(agg_spikes_t *self, size_t ti, int64_t m, int64_t count)
{
    struct s_topic *t = &self->topics[ti];
    struct agg_spike_eval ev;

    agg_spike_series_push(t->series, m * S_MINUTE_MS, count, &ev);
    t->last_closed = m;
    self->closing = 1;
    if (ev.fired || ev.ended) {
        s_emit(self, ti, &ev);
    }
    /* future windows start at m + 2 - W or later */
    s_release_upto(t, m + 1 - t->cfg.window_min);
}

/* Closes minutes from .. to of topic ti: local counts, or (external) 0 except `count` for to. */
static void
s_close_range(agg_spikes_t *self, size_t ti, int64_t from, int64_t to, int external,
              int64_t count)
{
    struct s_topic *t = &self->topics[ti];
    int64_t m;

    if (to - from + 1 > S_CATCHUP_MAX) {
        /* a jump longer than the hourly history: nothing before it can serve as baseline */
        esc_log_info("spike history restarted after a jump in event time topic=%zu gap_min=%lld",
                     ti, (long long)(to - from + 1));
        agg_spike_series_reset(t->series);
        from = to - S_CATCHUP_MAX + 1;
    }
    for (m = from; m <= to; m++) {
        int64_t c = 0;

        if (external) {
            c = m == to ? count : 0;
        }
        else {
            const struct s_slot *s = s_slot_of(t, m);

            c = s->minute == m ? s->count : 0;
        }
        s_close(self, ti, m, c);
    }
}

/* Closes, for every local topic, the minutes whose end the watermark has passed, and notes
 * the newest event time below which none will be due (so that the next posts, most of which
 * move max_seen_ms by a little, skip the walk over every topic). */
static void
s_advance(agg_spikes_t *self)
{
    int64_t next = INT64_MAX;
    size_t i;

    if (self->max_seen_ms < self->next_advance_ms) {
        return;
    }
    for (i = 0; i < self->n; i++) {
        struct s_topic *t = &self->topics[i];
        int64_t wm = self->max_seen_ms - t->cfg.lateness_s * 1000;
        int64_t due = s_floor_div(wm, S_MINUTE_MS) - 1; /* minute m is due once (m+1)*60s <= wm */
        int64_t from = t->last_closed == S_NONE ? self->history_start : t->last_closed + 1;

        if (t->external) {
            continue;
        }
        if (due >= from) {
            s_close_range(self, i, from, due, 0, 0);
            from = due + 1;
        }
        /* from is due once max_seen_ms >= (from + 1) minutes + lateness */
        if (from == S_NONE) {
            next = INT64_MIN;
        }
        else if ((from + 1) * S_MINUTE_MS + t->cfg.lateness_s * 1000 < next) {
            next = (from + 1) * S_MINUTE_MS + t->cfg.lateness_s * 1000;
        }
    }
    self->next_advance_ms = next;
}

/* Counts post p (minute `minute`) in topic t. Returns 0, or -1 when the minute is older than
 * what the topic keeps. */
static int
s_record(agg_spikes_t *self, struct s_topic *t, int64_t minute, const struct agg_spike_post *p,
         struct s_kept **kp)
{
    struct s_slot *s;
    int64_t k;

    if (t->slots == NULL) {
        t->slots = esc_calloc((size_t)t->n_slots, sizeof(*t->slots));
        for (k = 0; k < t->n_slots; k++) {
            t->slots[k].minute = S_NONE;
        }
    }
    s = s_slot_of(t, minute);

    if (t->last_closed != S_NONE && minute <= t->last_closed) {
        /* late: the window it belongs to was tested already; it still shapes baselines */
        if (!t->external && agg_spike_series_add_late(t->series, minute * S_MINUTE_MS, 1) != 0) {
            return -1;
        }
        if (s->minute == minute) {
            s->count++;
            if (minute > t->last_closed + 1 - t->cfg.window_min) {
                s_keep(self, s, p, kp);
            }
        }
        return 0;
    }
    if (s->minute != minute) {
        if (s->minute != S_NONE && s->minute > minute) {
            return t->external ? 0 : -1; /* an external topic fed too slowly: content lost */
        }
        s_slot_release(t, s);
        s->minute = minute;
    }
    s->count++;
    s_keep(self, s, p, kp);
    return 0;
}

size_t
agg_spikes_add(agg_spikes_t *self, const struct agg_spike_post *p, const size_t *topics,
               size_t n)
{
    int64_t minute = s_floor_div(p->created_at_ms, S_MINUTE_MS);
    struct s_kept *kp = NULL; /* the post's kept copy, once a topic keeps it */
    size_t ignored = 0;
    size_t i;

    if (self->history_start == S_NONE || (!self->closing && minute < self->history_start)) {
        self->history_start = minute;
        self->next_advance_ms = INT64_MIN;
    }
    if (self->max_seen_ms == S_NONE || p->created_at_ms > self->max_seen_ms) {
        self->max_seen_ms = p->created_at_ms;
        s_advance(self);
    }
    for (i = 0; i < n; i++) {
        ESC_ASSERT(topics[i] < self->n);
        if (s_record(self, &self->topics[topics[i]], minute, p, &kp) != 0) {
            ignored++;
        }
    }
    ESC_ASSERT(kp == NULL || kp->refs > 0);
    return ignored;
}

void
agg_spikes_set_external(agg_spikes_t *self, size_t topic, int external)
{
    ESC_ASSERT(topic < self->n);
    self->topics[topic].external = external != 0;
    self->next_advance_ms = INT64_MIN;
}

int
agg_spikes_minute(agg_spikes_t *self, size_t topic, int64_t minute_ms, int64_t count)
{
    struct s_topic *t;
    int64_t m = s_floor_div(minute_ms, S_MINUTE_MS);

    ESC_ASSERT(topic < self->n);
    t = &self->topics[topic];
    if (t->last_closed != S_NONE && m <= t->last_closed) {
        return -1;
    }
    s_close_range(self, topic, t->last_closed == S_NONE ? m : t->last_closed + 1, m, 1,
                  count > 0 ? count : 0);
    return 0;
}

int64_t
agg_spikes_last_closed(const agg_spikes_t *self, size_t topic)
{
    ESC_ASSERT(topic < self->n);
    return self->topics[topic].last_closed == S_NONE
               ? INT64_MIN
               : self->topics[topic].last_closed * S_MINUTE_MS;
}

void
agg_spikes_seed_hours(agg_spikes_t *self, size_t topic, int64_t first_hour_ms,
                      const int64_t *counts, size_t n)
{
    ESC_ASSERT(topic < self->n);
    agg_spike_series_seed_hours(self->topics[topic].series, first_hour_ms, counts, n);
}

int64_t
agg_spikes_count(const agg_spikes_t *self, size_t topic, int64_t minute_ms)
{
    const struct s_topic *t;
    int64_t minute = s_floor_div(minute_ms, S_MINUTE_MS);
    const struct s_slot *s;

    ESC_ASSERT(topic < self->n);
    t = &self->topics[topic];
    if (t->last_closed != S_NONE && minute <= t->last_closed) {
        return agg_spike_series_value(t->series, minute * S_MINUTE_MS);
    }
    s = s_slot_of(t, minute);
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
