#define ESC_LOG_MODULE "prom"
/* Reading the metrics the services export (common/esc_metrics.c writes them) for the status of
 * `escucha up`: a small line parser for the Prometheus text format that sums one metric over
 * its label sets, counters that carry on across restarts of their process (the way
 * Prometheus' rate() treats a counter reset), and windowed per-second rates.
 * Pure and single-threaded. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "prom.h"

static bool
s_name_char(char c, bool first)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':') {
        return true;
    }
    return !first && c >= '0' && c <= '9';
}

/* Parses one sample line [p, end). Returns true with the metric name span and value. */
static bool
s_sample(const char *p, const char *end, const char **name, size_t *name_len, double *value)
{
    char num[64];
    const char *v;
    char *stop;
    size_t n;

    while (p < end && (*p == ' ' || *p == '\t')) {
        p++;
    }
    if (p == end || *p == '#' || !s_name_char(*p, true)) {
        return false;
    }
    *name = p;
    while (p < end && s_name_char(*p, false)) {
        p++;
    }
    *name_len = (size_t)(p - *name);
    if (p < end && *p == '{') {
        bool quoted = false;

        for (p++; p < end; p++) {
            if (quoted && *p == '\\') {
                p++; /* the escaped character, whatever it is */
            }
            else if (*p == '"') {
                quoted = !quoted;
            }
            else if (!quoted && *p == '}') {
                break;
            }
        }
        if (p >= end) {
            return false;
        }
        p++;
    }
    if (p == end || (*p != ' ' && *p != '\t')) {
        return false;
    }
    while (p < end && (*p == ' ' || *p == '\t')) {
        p++;
    }
    v = p;
    while (p < end && *p != ' ' && *p != '\t' && *p != '\r') {
        p++;
    }
    n = (size_t)(p - v);
    if (n == 0 || n >= sizeof(num)) {
        return false;
    }
    memcpy(num, v, n);
    num[n] = '\0';
    *value = strtod(num, &stop);
    return *stop == '\0' && !isnan(*value);
}

bool
cli_prom_sum(const char *text, size_t len, const char *name, double *sum)
{
    const char *p = text;
    const char *end = text + len;
    size_t want = strlen(name);
    bool found = false;

    *sum = 0;
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        const char *line_end = eol != NULL ? eol : end;
        const char *n;
        size_t n_len;
        double v;

        if (s_sample(p, line_end, &n, &n_len, &v) && n_len == want
            && memcmp(n, name, want) == 0) {
            *sum += v;
            found = true;
        }
        p = eol != NULL ? eol + 1 : end;
    }
    return found;
}

void
cli_counter_update(struct cli_counter *c, double v)
{
    if (c->seen && v < c->last) {
        c->base += c->last;
    }
    c->last = v;
    c->seen = true;
}

void
cli_counter_reset(struct cli_counter *c)
{
    c->base += c->last;
    c->last = 0;
}

double
cli_counter_total(const struct cli_counter *c)
{
    return c->base + c->last;
}

void
cli_rate_init(struct cli_rate *r, int64_t window_ms)
{
    memset(r, 0, sizeof(*r));
    r->window_ms = window_ms;
}

void
cli_rate_add(struct cli_rate *r, int64_t t_ms, double total)
{
    r->t_ms[r->head] = t_ms;
    r->v[r->head] = total;
    r->head = (r->head + 1) % CLI_RATE_SAMPLES;
    if (r->n < CLI_RATE_SAMPLES) {
        r->n++;
    }
}

double
cli_rate_get(const struct cli_rate *r)
{
    size_t newest;
    size_t oldest;
    size_t k;

    if (r->n < 2) {
        return 0;
    }
    newest = (r->head + CLI_RATE_SAMPLES - 1) % CLI_RATE_SAMPLES;
    oldest = newest;
    /* Walk back from the newest while the samples stay inside the window. */
    for (k = 1; k < r->n; k++) {
        size_t i = (newest + CLI_RATE_SAMPLES - k) % CLI_RATE_SAMPLES;

        if (r->t_ms[newest] - r->t_ms[i] > r->window_ms) {
            break;
        }
        oldest = i;
    }
    if (oldest == newest || r->t_ms[newest] <= r->t_ms[oldest] || r->v[newest] < r->v[oldest]) {
        return 0;
    }
    return (r->v[newest] - r->v[oldest]) * 1000.0 / (double)(r->t_ms[newest] - r->t_ms[oldest]);
}

bool
cli_rate_quiet(const struct cli_rate *r)
{
    size_t newest;
    size_t k;

    if (r->n < 2) {
        return false;
    }
    newest = (r->head + CLI_RATE_SAMPLES - 1) % CLI_RATE_SAMPLES;
    for (k = 1; k < r->n; k++) {
        size_t i = (newest + CLI_RATE_SAMPLES - k) % CLI_RATE_SAMPLES;

        if (r->v[i] != r->v[newest]) {
            return false;
        }
        if (r->t_ms[newest] - r->t_ms[i] >= r->window_ms) {
            return true;
        }
    }
    return false;
}
