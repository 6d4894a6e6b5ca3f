#define ESC_LOG_MODULE "rate"
/* Rate-limit headers and retry delays. Platforms disagree on the meaning of "reset": Mastodon
 * sends an ISO 8601 time, Bluesky and X Unix seconds, Reddit the seconds left in the window;
 * the value itself tells them apart (a time is a date string or >= 10^9). Retry-After is seconds
 * or an HTTP date. Backoff doubles per attempt and adds jitter so many collectors that failed
 * together do not retry together. Pure functions; any thread. */
#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "rate.h"
#include "text.h"

#include "escucha/esc_util.h"

#define S_EPOCH_MIN 1000000000.0 /* below this a reset value is a delay in seconds */
#define S_NUMBER_MAX 1e12          /* larger numbers are taken as this (year 33658 as a time,
                                      and still a valid int64_t once in ms) */

/* Parses a plain non-negative decimal number (digits, optional fraction), at most
 * S_NUMBER_MAX. Returns 0 or -1. */
static int
s_number(const char *v, double *out)
{
    char *end = NULL;
    double d;

    while (*v == ' ') {
        v++;
    }
    if (!isdigit((unsigned char)*v)) {
        return -1;
    }
    d = strtod(v, &end);
    while (end != NULL && *end == ' ') {
        end++;
    }
    if (end == NULL || *end != '\0' || !isfinite(d) || d < 0) {
        return -1;
    }
    *out = d < S_NUMBER_MAX ? d : S_NUMBER_MAX;
    return 0;
}

int
col_rate_retry_after(const char *v, int64_t now_ms, int64_t *delay_ms)
{
    double d;
    int64_t at;

    if (v == NULL) {
        return -1;
    }
    if (s_number(v, &d) == 0) {
        *delay_ms = (int64_t)(d * 1000.0);
        return 0;
    }
    if (col_time_parse_rfc822(v, &at) == 0) {
        *delay_ms = at > now_ms ? at - now_ms : 0;
        return 0;
    }
    return -1;
}

int
col_rate_reset(const char *v, int64_t now_ms, int64_t *reset_ms)
{
    double d;

    if (v == NULL) {
        return -1;
    }
    if (s_number(v, &d) == 0) {
        if (d >= S_EPOCH_MIN) {
            *reset_ms = (int64_t)(d * 1000.0);
        }
        else {
            *reset_ms = now_ms + (int64_t)(d * 1000.0);
        }
        return 0;
    }
    return esc_time_parse_iso8601(v, reset_ms);
}

void
col_rate_parse(struct col_rate *out, const char *remaining, const char *reset,
               const char *retry_after, int64_t now_ms)
{
    double d;
    int64_t v;

    memset(out, 0, sizeof(*out));
    out->retry_after_ms = -1;
    if (remaining != NULL && s_number(remaining, &d) == 0) {
        out->has_remaining = 1;
        out->remaining = d;
    }
    if (col_rate_reset(reset, now_ms, &v) == 0) {
        out->reset_ms = v;
    }
    if (col_rate_retry_after(retry_after, now_ms, &v) == 0) {
        out->retry_after_ms = v;
    }
}

int64_t
col_rate_pause_ms(const struct col_rate *r, int64_t now_ms, int64_t max_ms)
{
    int64_t d;

    if (!r->has_remaining || r->remaining >= 1.0 || r->reset_ms <= now_ms) {
        return 0;
    }
    d = r->reset_ms - now_ms;
    return d < max_ms ? d : max_ms;
}

uint64_t
col_rand(uint64_t *rng)
{
    uint64_t x = *rng;

    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *rng = x;
    return x;
}

int64_t
col_jitter_ms(int64_t d, double frac, int64_t cap_ms, uint64_t *rng)
{
    int64_t span = (int64_t)((double)d * frac);

    if (span > cap_ms) {
        span = cap_ms;
    }
    if (span <= 0) {
        return d;
    }
    return d + (int64_t)(col_rand(rng) % (uint64_t)(span + 1));
}

int64_t
col_backoff_ms(int64_t base, int64_t max, int attempt, uint64_t *rng)
{
    int64_t d = base > 0 ? base : 1;
    int i;

    for (i = 1; i < attempt && d < max; i++) {
        d *= 2;
    }
    if (d > max) {
        d = max;
    }
    return col_jitter_ms(d, 0.25, INT64_MAX, rng);
}
