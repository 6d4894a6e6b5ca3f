#define ESC_LOG_MODULE "backtest"
/* --backtest: reads a whole `timestamp,value` CSV series (timestamps RFC 3339 or Unix
 * seconds, optional header, '#' comments and blank lines ignored), detects the interval as the
 * most common gap between consecutive rows, and feeds every step to a non-lazy spike series
 * (spikes.c) with that step, so each output row carries the window's expected value and score.
 * Rows are kept in memory (at most AGG_BACKTEST_ROWS_MAX) because the interval must be known
 * before the first step is evaluated. Bad rows are reported as "prog: file:line: reason" and
 * skipped. Single-threaded, no logging: the output is the product. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "escucha/esc_mem.h"
#include "escucha/esc_util.h"

#include "backtest.h"

#define S_PROG "escucha-aggregator"
#define S_LINE_MAX 4096
#define S_TS_MAX 64
#define S_VALUE_MAX 4294967295.0 /* the spike series holds counts in 32 bits */
#define S_UNIX_MAX 253402300799LL /* 9999-12-31T23:59:59Z */

struct s_row {
    int64_t ts;               /* Unix ms */
    int64_t value;
    char ts_text[S_TS_MAX];   /* as written in the input, echoed in the output */
    long line;
};

struct s_rows {
    struct s_row *v;          /* owned */
    size_t n;
    size_t cap;
    long bad;                 /* rows reported and skipped */
};

static void
s_bad(FILE *err, const char *name, long line, const char *why, struct s_rows *rows)
{
    fprintf(err, S_PROG ": %s:%ld: %s, row skipped\n", name, line, why);
    rows->bad++;
}

/* Trims blanks and one pair of surrounding double quotes in place. */
static char *
s_trim(char *s)
{
    size_t n;

    while (*s != '\0' && isspace((unsigned char)*s)) {
        s++;
    }
    n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1])) {
        s[--n] = '\0';
    }
    if (n >= 2 && s[0] == '"' && s[n - 1] == '"') {
        s[n - 1] = '\0';
        s++;
    }
    return s;
}

/* Unix seconds (digits only) or RFC 3339. Returns 0 and *ms, or -1. */
static int
s_parse_ts(const char *s, int64_t *ms)
{
    int64_t sec;
    size_t i;
    int digits = s[0] != '\0';

    for (i = 0; s[i] != '\0'; i++) {
        if (!isdigit((unsigned char)s[i])) {
            digits = 0;
            break;
        }
    }
    if (digits) {
        if (esc_parse_i64(s, 0, S_UNIX_MAX, &sec) != 0) {
            return -1;
        }
        *ms = sec * 1000;
        return 0;
    }
    return esc_time_parse_iso8601(s, ms);
}

/* A count: a finite number >= 0 (decimals are rounded). Returns 0 and *v, or -1. */
static int
s_parse_value(const char *s, int64_t *v)
{
    char *end = NULL;
    double d;

    if (s[0] == '\0') {
        return -1;
    }
    errno = 0;
    d = strtod(s, &end);
    if (errno != 0 || end == s || *end != '\0' || !isfinite(d) || d < 0.0 || d > S_VALUE_MAX) {
        return -1;
    }
    *v = (int64_t)llround(d);
    return 0;
}

/* Parses one line into rows (or reports it). first_data: no row or header seen yet. */
static void
s_parse_line(char *buf, long line, const char *name, FILE *err, struct s_rows *rows,
             int *first_data)
{
    char *comma;
    char *ts_s;
    char *val_s;
    struct s_row r;
    int ts_ok;
    int val_ok;

    ts_s = s_trim(buf);
    if (ts_s[0] == '\0' || ts_s[0] == '#') {
        return;
    }
    comma = strchr(ts_s, ',');
    if (comma == NULL || strchr(comma + 1, ',') != NULL) {
        if (*first_data) {
            *first_data = 0; /* a header without a comma is still just a bad row */
        }
        s_bad(err, name, line, "expected 2 fields: timestamp,value", rows);
        return;
    }
    *comma = '\0';
    ts_s = s_trim(ts_s);
    val_s = s_trim(comma + 1);
    memset(&r, 0, sizeof(r));
    ts_ok = strlen(ts_s) < S_TS_MAX && s_parse_ts(ts_s, &r.ts) == 0;
    val_ok = s_parse_value(val_s, &r.value) == 0;
    if (*first_data) {
        *first_data = 0;
        if (!ts_ok && !val_ok) {
            return; /* the header, e.g. "timestamp,value" */
        }
    }
    if (!ts_ok) {
        s_bad(err, name, line, "timestamp is neither RFC 3339 nor Unix seconds", rows);
        return;
    }
    if (!val_ok) {
        s_bad(err, name, line, "value is not a number from 0 to 4294967295", rows);
        return;
    }
    if (rows->n > 0 && r.ts <= rows->v[rows->n - 1].ts) {
        s_bad(err, name, line, "timestamp is not after the previous row's", rows);
        return;
    }
    if (rows->n == rows->cap) {
        rows->cap = rows->cap > 0 ? rows->cap * 2 : 1024;
        rows->v = esc_realloc(rows->v, rows->cap * sizeof(*rows->v));
    }
    esc_strlcpy(r.ts_text, ts_s, sizeof(r.ts_text));
    r.line = line;
    rows->v[rows->n++] = r;
}

/* Reads every line of in. Returns 0, or 2 (reported) on a read error or too many rows. */
static int
s_read(FILE *in, const char *name, FILE *err, struct s_rows *rows)
{
    char buf[S_LINE_MAX];
    long line = 0;
    int first_data = 1;

    while (fgets(buf, sizeof(buf), in) != NULL) {
        size_t n = strlen(buf);

        line++;
        if (n == sizeof(buf) - 1 && buf[n - 1] != '\n' && !feof(in)) {
            int c;

            do {
                c = fgetc(in);
            } while (c != '\n' && c != EOF);
            s_bad(err, name, line, "line too long", rows);
            continue;
        }
        s_parse_line(buf, line, name, err, rows, &first_data);
        if (rows->n > AGG_BACKTEST_ROWS_MAX) {
            fprintf(err, S_PROG ": %s:%ld: more than %d rows, split the series\n", name, line,
                    AGG_BACKTEST_ROWS_MAX);
            return 2;
        }
    }
    if (ferror(in)) {
        fprintf(err, S_PROG ": %s: read error\n", name);
        return 2;
    }
    return 0;
}

static int
s_cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a;
    int64_t y = *(const int64_t *)b;

    return x < y ? -1 : (x > y ? 1 : 0);
}

/* The most common gap between consecutive rows (the smallest on a tie), ms; 60000 with fewer
 * than 2 rows. */
static int64_t
s_interval(const struct s_rows *rows)
{
    int64_t *d;
    int64_t best = 60000;
    size_t best_n = 0;
    size_t i;
    size_t run = 0;

    if (rows->n < 2) {
        return best;
    }
    d = esc_calloc(rows->n - 1, sizeof(*d));
    for (i = 1; i < rows->n; i++) {
        d[i - 1] = rows->v[i].ts - rows->v[i - 1].ts;
    }
    qsort(d, rows->n - 1, sizeof(*d), s_cmp_i64);
    for (i = 0; i < rows->n - 1; i++) {
        run = i > 0 && d[i] == d[i - 1] ? run + 1 : 1;
        if (run > best_n) {
            best_n = run;
            best = d[i];
        }
    }
    esc_free(d);
    return best;
}

/* Feeds the rows to the rule and writes the output. */
static void
s_replay(const struct s_rows *rows, int64_t step_ms, const char *name, FILE *out, FILE *err,
         const struct agg_spike_cfg *cfg, long *bad)
{
    agg_spike_series_t *s = agg_spike_series_new(cfg, step_ms / 60000, 0);
    double w = (double)agg_spike_series_window_steps(s);
    int64_t anchor = rows->n > 0 ? rows->v[0].ts : 0;
    int64_t next = 0;        /* step index (from anchor) expected next */
    struct agg_spike_eval ev;
    size_t i;

    fprintf(out, "timestamp,value,expected,score,alert\n");
    for (i = 0; i < rows->n; i++) {
        const struct s_row *r = &rows->v[i];
        int64_t k;

        if ((r->ts - anchor) % step_ms != 0) {
            fprintf(err,
                    S_PROG ": %s:%ld: not on the %lld-minute grid of the series, row skipped\n",
                    name, r->line, (long long)(step_ms / 60000));
            (*bad)++;
            continue;
        }
        /* rows missing inside the series are steps of 0 (no output row) */
        for (k = next; k < (r->ts - anchor) / step_ms; k++) {
            agg_spike_series_push(s, anchor + k * step_ms, 0, &ev);
        }
        next = (r->ts - anchor) / step_ms + 1;
        agg_spike_series_push(s, r->ts, r->value, &ev);
        if (ev.evaluated) {
            fprintf(out, "%s,%lld,%.3f,%.3f,%d\n", r->ts_text, (long long)r->value,
                    ev.expected / w, ev.score, ev.fired ? 1 : 0);
        }
        else {
            fprintf(out, "%s,%lld,,,0\n", r->ts_text, (long long)r->value);
        }
    }
    agg_spike_series_destroy(&s);
}

int
agg_backtest_run(FILE *in, const char *name, FILE *out, FILE *err,
                 const struct agg_spike_cfg *cfg)
{
    struct s_rows rows;
    int64_t step;
    int status;

    memset(&rows, 0, sizeof(rows));
    status = s_read(in, name, err, &rows);
    if (status != 0) {
        goto out;
    }
    step = s_interval(&rows);
    if (step % 60000 != 0 || 3600000 % step != 0) {
        fprintf(err,
                S_PROG ": %s: rows are %.10g s apart; the interval must be 1, 2, 3, 4, 5, 6, 10, "
                       "12, 15, 20, 30 or 60 minutes\n",
                name, (double)step / 1000.0);
        status = 2;
        goto out;
    }
    s_replay(&rows, step, name, out, err, cfg, &rows.bad);
    if (rows.bad > 0) {
        fprintf(err, S_PROG ": %s: %ld bad rows skipped\n", name, rows.bad);
    }
    fflush(out);
out:
    esc_free(rows.v);
    return status;
}
