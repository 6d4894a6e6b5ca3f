#ifndef COL_RATE_H
#define COL_RATE_H

/* Rate-limit signals and retry delays for the connectors (collector-internal): what a
 * platform's response headers say about when the next request may go, and exponential backoff
 * with jitter for failures. Pure functions of their arguments (the clock is passed in), so they
 * are unit tested without a network. */

#include <stdint.h>

/* What one response said about the rate limit. */
struct col_rate {
    int has_remaining;      /* a *RateLimit-Remaining header was present */
    double remaining;       /* requests left in the window (Reddit sends "97.0") */
    int64_t reset_ms;       /* wall-clock Unix ms at which the window resets, 0 = unknown */
    int64_t retry_after_ms; /* delay asked for by Retry-After, -1 = no such header */
};

/* Fills out from the raw header values (each may be NULL):
 *   remaining    X-RateLimit-Remaining / RateLimit-Remaining / x-rate-limit-remaining
 *   reset        the matching *-Reset: ISO 8601 (Mastodon), Unix seconds (Bluesky, X) or
 *                seconds from now (Reddit; any value below 10^9 is taken as a delay)
 *   retry_after  Retry-After: delay seconds or an HTTP date
 * now_ms is the wall clock. Unparseable values count as absent. */
void col_rate_parse(struct col_rate *out, const char *remaining, const char *reset,
                    const char *retry_after, int64_t now_ms);

/* Parses a Retry-After value into a delay in ms (0 when the date is past). Returns 0, or -1
 * when it is neither a number of seconds nor an HTTP date. */
int col_rate_retry_after(const char *v, int64_t now_ms, int64_t *delay_ms);
/* Parses a *-Reset value (see col_rate_parse) into a wall-clock time. Returns 0 or -1. */
int col_rate_reset(const char *v, int64_t now_ms, int64_t *reset_ms);

/* How long to wait before the next request when the window is used up: ms until reset_ms when
 * remaining < 1 and the reset is known, else 0. Capped at max_ms. */
int64_t col_rate_pause_ms(const struct col_rate *r, int64_t now_ms, int64_t max_ms);

/* Backoff before retry number `attempt` (1 = first retry): base * 2^(attempt-1), capped at
 * max, plus up to 25 % random jitter (never below the capped value). *rng is the caller's
 * xorshift state (any non-zero seed). */
int64_t col_backoff_ms(int64_t base, int64_t max, int attempt, uint64_t *rng);
/* Adds up to `frac` (0..1) of d as jitter, at most cap_ms. */
int64_t col_jitter_ms(int64_t d, double frac, int64_t cap_ms, uint64_t *rng);
/* Next value of a xorshift64 generator (state must be non-zero). */
uint64_t col_rand(uint64_t *rng);

#endif
