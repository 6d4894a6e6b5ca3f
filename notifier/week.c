#define ESC_LOG_MODULE "week"
/* Digest periods (days, ISO 8601 weeks, months) and local days in IANA time zones. Dates are
 * handled as day numbers (days since 1970-01-01) converted with timegm/gmtime_r, which do no
 * time zone work. Local instants come from the C library's tz database: TZ is set in the
 * environment around each computation and restored afterwards. The start of a local day is
 * found by bisection over UTC seconds (the local date never goes backwards in the zones we
 * serve), so days that are 23 or 25 hours long, or whose midnight is skipped by a DST change
 * (America/Santiago), come out right without special cases. A local wall-clock time (the hour a
 * scheduled digest goes out) is found by trying each UTC offset in force around it.
 * Not thread-safe (TZ is global). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "escucha/esc_log.h"
#include "escucha/esc_mem.h"
#include "escucha/esc_util.h"
#include "week.h"

#define S_DAY 86400

int64_t
ntf_days_from_civil(int y, int m, int d)
{
    struct tm tm;

    memset(&tm, 0, sizeof(tm));
    tm.tm_year = y - 1900;
    tm.tm_mon = m - 1;
    tm.tm_mday = d;
    tm.tm_hour = 12; /* noon: no rounding trouble at the division below */
    return ((int64_t)timegm(&tm) - 12 * 3600) / S_DAY;
}

void
ntf_civil_from_days(int64_t days, int *y, int *m, int *d)
{
    time_t t = (time_t)(days * S_DAY);
    struct tm tm;

    gmtime_r(&t, &tm);
    *y = tm.tm_year + 1900;
    *m = tm.tm_mon + 1;
    *d = tm.tm_mday;
}

int
ntf_weekday(int64_t days)
{
    /* 1970-01-01 was a Thursday (3 when Monday is 0) */
    return (int)(((days % 7) + 7 + 3) % 7);
}

void
ntf_iso_week_of(int64_t days, int *iso_year, int *iso_week)
{
    int64_t thursday = days - ntf_weekday(days) + 3;
    int y;
    int m;
    int d;

    /* the ISO year of a week is the calendar year of its Thursday */
    ntf_civil_from_days(thursday, &y, &m, &d);
    *iso_year = y;
    *iso_week = (int)((thursday - ntf_days_from_civil(y, 1, 1)) / 7) + 1;
}

int
ntf_iso_weeks_in_year(int iso_year)
{
    int y;
    int w;

    /* 28 December always lies in the last ISO week of its year */
    ntf_iso_week_of(ntf_days_from_civil(iso_year, 12, 28), &y, &w);
    return w;
}

int64_t
ntf_iso_week_monday(int iso_year, int iso_week)
{
    /* 4 January always lies in ISO week 1 */
    int64_t jan4 = ntf_days_from_civil(iso_year, 1, 4);

    return jan4 - ntf_weekday(jan4) + 7 * (int64_t)(iso_week - 1);
}

static int
s_digits(const char *s, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return 0;
        }
    }
    return 1;
}

int
ntf_week_parse(const char *s, int *iso_year, int *iso_week)
{
    int y;
    int w;

    if (s == NULL || strlen(s) != 8 || !s_digits(s, 4) || s[4] != '-' || s[5] != 'W'
        || !s_digits(s + 6, 2)) {
        return -1;
    }
    y = (s[0] - '0') * 1000 + (s[1] - '0') * 100 + (s[2] - '0') * 10 + (s[3] - '0');
    w = (s[6] - '0') * 10 + (s[7] - '0');
    if (y < 1971 || w < 1 || w > ntf_iso_weeks_in_year(y)) {
        return -1;
    }
    *iso_year = y;
    *iso_week = w;
    return 0;
}

int
ntf_tz_valid(const char *tz)
{
    char path[512];
    const char *dir = getenv("TZDIR");
    struct stat st;
    size_t i;

    if (tz == NULL || tz[0] == '\0' || tz[0] == '/' || strstr(tz, "..") != NULL) {
        return 0;
    }
    if (strcmp(tz, "UTC") == 0) {
        return 1;
    }
    for (i = 0; tz[i] != '\0'; i++) {
        char c = tz[i];

        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')
              || c == '/' || c == '_' || c == '-' || c == '+')) {
            return 0;
        }
    }
    if (dir == NULL || dir[0] == '\0') {
        dir = "/usr/share/zoneinfo";
    }
    if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, tz) >= sizeof(path)) {
        return 0;
    }
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* Sets TZ to tz; returns the previous value (caller owns, NULL when unset) for s_tz_pop. */
static char *
s_tz_push(const char *tz)
{
    const char *old = getenv("TZ");
    char *saved = old != NULL ? esc_strdup(old) : NULL;

    setenv("TZ", tz, 1);
    tzset();
    return saved;
}

static void
s_tz_pop(char **saved_p)
{
    if (*saved_p != NULL) {
        setenv("TZ", *saved_p, 1);
    }
    else {
        unsetenv("TZ");
    }
    tzset();
    ESC_FREE(*saved_p);
}

/* Local day number of UTC second t under the current TZ. */
static int64_t
s_local_days(int64_t t)
{
    time_t tt = (time_t)t;
    struct tm lt;

    localtime_r(&tt, &lt);
    return ntf_days_from_civil(lt.tm_year + 1900, lt.tm_mon + 1, lt.tm_mday);
}

/* First UTC second whose local date (current TZ) is `days` or later. */
static int64_t
s_day_start(int64_t days)
{
    /* UTC offsets lie within [-12h, +14h]; DST moves them by at most 2h more */
    int64_t lo = days * S_DAY - 17 * 3600;
    int64_t hi = days * S_DAY + 15 * 3600;

    ESC_ASSERT(s_local_days(lo) < days && s_local_days(hi) >= days);
    while (hi - lo > 1) {
        int64_t mid = lo + (hi - lo) / 2;

        if (s_local_days(mid) >= days) {
            hi = mid;
        }
        else {
            lo = mid;
        }
    }
    return hi;
}

int64_t
ntf_tz_day_start(const char *tz, int64_t days)
{
    char *saved = s_tz_push(tz);
    int64_t t = s_day_start(days);

    s_tz_pop(&saved);
    return t;
}

void
ntf_tz_local(const char *tz, int64_t t, struct tm *out)
{
    char *saved = s_tz_push(tz);
    time_t tt = (time_t)t;

    localtime_r(&tt, out);
    s_tz_pop(&saved);
}

/* UTC offset in seconds (local - UTC) at UTC second t under the current TZ. */
static int64_t
s_offset(int64_t t)
{
    time_t tt = (time_t)t;
    struct tm lt;

    localtime_r(&tt, &lt);
    return (int64_t)lt.tm_gmtoff;
}

int64_t
ntf_tz_local_to_utc(const char *tz, int64_t days, int sec_of_day)
{
    int64_t wall = days * S_DAY + sec_of_day;
    int64_t offs[40];
    int64_t best = INT64_MAX;
    size_t n = 0;
    size_t i;
    int h;
    char *saved = s_tz_push(tz);

    /* every instant whose local time is `wall` lies within 16 h of it (offsets -12h..+14h):
     * collect the offsets in force there, and keep the earliest t with t + offset(t) == wall */
    for (h = -16; h <= 16; h++) {
        int64_t o = s_offset(wall + (int64_t)h * 3600);

        for (i = 0; i < n && offs[i] != o; i++) {
        }
        if (i == n) {
            offs[n++] = o;
        }
    }
    for (i = 0; i < n; i++) {
        int64_t t = wall - offs[i];

        if (s_offset(t) == offs[i] && t < best) {
            best = t;
        }
    }
    if (best == INT64_MAX) {
        /* skipped by a DST change: read the wall time with the offset before the gap */
        best = wall - s_offset(wall - 16 * 3600);
    }
    s_tz_pop(&saved);
    return best;
}

/* ---- digest periods --------------------------------------------------------------------- */

static const char *const s_kind_names[] = { "daily", "weekly", "monthly" };

const char *
ntf_period_kind_name(enum ntf_period_kind kind)
{
    return s_kind_names[kind];
}

int
ntf_period_kind_parse(const char *s, enum ntf_period_kind *kind)
{
    size_t i;

    for (i = 0; i < ESC_ARRAY_LEN(s_kind_names); i++) {
        if (s != NULL && strcmp(s, s_kind_names[i]) == 0) {
            *kind = (enum ntf_period_kind)i;
            return 0;
        }
    }
    return -1;
}

int64_t
ntf_period_first_day(enum ntf_period_kind kind, int64_t days)
{
    int y;
    int m;
    int d;

    switch (kind) {
    case NTF_PERIOD_DAY:
        return days;
    case NTF_PERIOD_WEEK:
        return days - ntf_weekday(days);
    case NTF_PERIOD_MONTH:
        ntf_civil_from_days(days, &y, &m, &d);
        return ntf_days_from_civil(y, m, 1);
    }
    ESC_ASSERT(0);
    return days;
}

int64_t
ntf_period_next(enum ntf_period_kind kind, int64_t first_day)
{
    int y;
    int m;
    int d;

    switch (kind) {
    case NTF_PERIOD_DAY:
        return first_day + 1;
    case NTF_PERIOD_WEEK:
        return first_day + 7;
    case NTF_PERIOD_MONTH:
        ntf_civil_from_days(first_day, &y, &m, &d);
        return m == 12 ? ntf_days_from_civil(y + 1, 1, 1) : ntf_days_from_civil(y, m + 1, 1);
    }
    ESC_ASSERT(0);
    return first_day;
}

int64_t
ntf_period_prev(enum ntf_period_kind kind, int64_t first_day)
{
    /* the day before the first day lies in the previous period */
    return ntf_period_first_day(kind, first_day - 1);
}

int
ntf_period_days(enum ntf_period_kind kind, int64_t first_day)
{
    return (int)(ntf_period_next(kind, first_day) - first_day);
}

void
ntf_period_label(enum ntf_period_kind kind, int64_t first_day, char *out, size_t outsz)
{
    int y;
    int m;
    int d;

    switch (kind) {
    case NTF_PERIOD_DAY:
        ntf_civil_from_days(first_day, &y, &m, &d);
        snprintf(out, outsz, "%04d-%02d-%02d", y, m, d);
        return;
    case NTF_PERIOD_WEEK:
        ntf_iso_week_of(first_day, &y, &d);
        snprintf(out, outsz, "%04d-W%02d", y, d);
        return;
    case NTF_PERIOD_MONTH:
        ntf_civil_from_days(first_day, &y, &m, &d);
        snprintf(out, outsz, "%04d-%02d", y, m);
        return;
    }
    ESC_ASSERT(0);
}

static int
s_num(const char *s, size_t n)
{
    int v = 0;
    size_t i;

    for (i = 0; i < n; i++) {
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

int
ntf_period_parse(const char *s, enum ntf_period_kind *kind, int64_t *first_day)
{
    size_t n = s != NULL ? strlen(s) : 0;
    int64_t days;
    int y;
    int m;
    int d;
    int wk;

    if (n == 8 && ntf_week_parse(s, &y, &wk) == 0) {
        *kind = NTF_PERIOD_WEEK;
        *first_day = ntf_iso_week_monday(y, wk);
        return 0;
    }
    if ((n != 7 && n != 10) || !s_digits(s, 4) || s[4] != '-' || !s_digits(s + 5, 2)) {
        return -1;
    }
    y = s_num(s, 4);
    m = s_num(s + 5, 2);
    if (y < 1971 || m < 1 || m > 12) {
        return -1;
    }
    if (n == 7) {
        *kind = NTF_PERIOD_MONTH;
        *first_day = ntf_days_from_civil(y, m, 1);
        return 0;
    }
    if (s[7] != '-' || !s_digits(s + 8, 2)) {
        return -1;
    }
    d = s_num(s + 8, 2);
    days = ntf_days_from_civil(y, m, d);
    if (d < 1 || ntf_period_first_day(NTF_PERIOD_MONTH, days) != ntf_days_from_civil(y, m, 1)) {
        return -1; /* 2026-02-30 would normalise into March */
    }
    *kind = NTF_PERIOD_DAY;
    *first_day = days;
    return 0;
}

int
ntf_period_resolve(const char *tz, enum ntf_period_kind kind, int64_t first_day,
                   struct ntf_period *p)
{
    char *saved;
    int i;

    if (ntf_period_first_day(kind, first_day) != first_day) {
        return -1;
    }
    memset(p, 0, sizeof(*p));
    p->kind = kind;
    p->first_day = first_day;
    p->n_days = ntf_period_days(kind, first_day);
    p->prev_first_day = ntf_period_prev(kind, first_day);
    p->prev_n_days = ntf_period_days(kind, p->prev_first_day);
    ntf_period_label(kind, first_day, p->label, sizeof(p->label));
    ntf_period_label(kind, p->prev_first_day, p->prev_label, sizeof(p->prev_label));
    saved = s_tz_push(tz);
    for (i = 0; i <= p->n_days; i++) {
        p->day_start[i] = s_day_start(first_day + i);
    }
    for (i = 0; i < p->prev_n_days; i++) {
        p->prev_day_start[i] = s_day_start(p->prev_first_day + i);
    }
    p->prev_day_start[p->prev_n_days] = p->day_start[0];
    s_tz_pop(&saved);
    return 0;
}

int64_t
ntf_period_last_complete(const char *tz, enum ntf_period_kind kind, int64_t now)
{
    struct tm lt;
    int64_t today;

    ntf_tz_local(tz, now, &lt);
    today = ntf_days_from_civil(lt.tm_year + 1900, lt.tm_mon + 1, lt.tm_mday);
    return ntf_period_prev(kind, ntf_period_first_day(kind, today));
}
