#define ESC_LOG_MODULE "week"
/* ISO 8601 week numbering and local days in IANA time zones, for the weekly digest. Dates are
 * handled as day numbers (days since 1970-01-01) converted with timegm/gmtime_r, which do no
 * time zone work. Local instants come from the C library's tz database: TZ is set in the
 * environment around each computation and restored afterwards. The start of a local day is
 * found by bisection over UTC seconds (the local date never goes backwards in the zones we
 * serve), so days that are 23 or 25 hours long, or whose midnight is skipped by a DST change
 * (America/Santiago), come out right without special cases. Not thread-safe (TZ is global). */
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

int
ntf_week_resolve(const char *tz, int iso_year, int iso_week, struct ntf_week *w)
{
    char *saved;
    int i;

    if (iso_week < 1 || iso_week > ntf_iso_weeks_in_year(iso_year)) {
        return -1;
    }
    memset(w, 0, sizeof(*w));
    w->year = iso_year;
    w->week = iso_week;
    snprintf(w->label, sizeof(w->label), "%04d-W%02d", iso_year, iso_week);
    w->monday = ntf_iso_week_monday(iso_year, iso_week);
    saved = s_tz_push(tz);
    for (i = 0; i < 8; i++) {
        w->day_start[i] = s_day_start(w->monday + i);
    }
    w->prev_start = s_day_start(w->monday - 7);
    s_tz_pop(&saved);
    return 0;
}

void
ntf_week_last_complete(const char *tz, int64_t now, int *iso_year, int *iso_week)
{
    struct tm lt;
    int64_t today;
    int y;
    int w;

    ntf_tz_local(tz, now, &lt);
    today = ntf_days_from_civil(lt.tm_year + 1900, lt.tm_mon + 1, lt.tm_mday);
    ntf_iso_week_of(today, &y, &w);
    ntf_iso_week_of(ntf_iso_week_monday(y, w) - 7, iso_year, iso_week);
}
