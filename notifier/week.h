#ifndef NTF_WEEK_H
#define NTF_WEEK_H

/* Digest periods (local days, ISO 8601 weeks, calendar months) and the UTC instants of local
 * days and wall-clock times in an IANA time zone. Calendar arithmetic is done on day numbers
 * (days since 1970-01-01, proleptic Gregorian); time zone conversions temporarily set TZ in the
 * environment, so these functions are not thread-safe. */

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define NTF_WEEK_LABEL_MAX 24 /* "2026-W47", "2026-11-19" plus NUL, with room */

/* Day number of a Gregorian date (month 1..12), and back. */
int64_t ntf_days_from_civil(int y, int m, int d);
void ntf_civil_from_days(int64_t days, int *y, int *m, int *d);
/* Day of the week of a day number, 0 = Monday .. 6 = Sunday. */
int ntf_weekday(int64_t days);

/* ISO week (year, week) of a day number. */
void ntf_iso_week_of(int64_t days, int *iso_year, int *iso_week);
/* Number of ISO weeks in an ISO year: 52 or 53. */
int ntf_iso_weeks_in_year(int iso_year);
/* Day number of the Monday of ISO week (iso_year, iso_week). */
int64_t ntf_iso_week_monday(int iso_year, int iso_week);

/* Parses "YYYY-Www" (week 01..52/53 as that year has). Returns 0, or -1 when malformed or the
 * week does not exist. */
int ntf_week_parse(const char *s, int *iso_year, int *iso_week);

/* True when tz names a time zone this host knows: "UTC", or a relative name (no "..") with a
 * file under $TZDIR or /usr/share/zoneinfo. */
int ntf_tz_valid(const char *tz);

/* UTC second at which local day `days` starts in tz (normally local midnight; the first
 * instant of the day when midnight is skipped by a DST change). */
int64_t ntf_tz_day_start(const char *tz, int64_t days);
/* Local broken-down time of UTC second t in tz. */
void ntf_tz_local(const char *tz, int64_t t, struct tm *out);

/* UTC second at which the local wall clock in tz shows `sec_of_day` seconds after midnight of
 * local day `days`. A time that occurs twice (DST ends) gives the first occurrence; a time that
 * does not exist (DST starts) gives the instant the clock shows that time plus the gap (02:30
 * -> 03:30 when 02:00 jumps to 03:00). */
int64_t ntf_tz_local_to_utc(const char *tz, int64_t days, int sec_of_day);

/* ---- digest periods --------------------------------------------------------------------- */

enum ntf_period_kind {
    NTF_PERIOD_DAY = 0, /* one local day, label "2026-11-19" */
    NTF_PERIOD_WEEK,    /* one ISO week, Monday to Sunday, label "2026-W47" */
    NTF_PERIOD_MONTH,   /* one calendar month, label "2026-11" */
};

#define NTF_PERIOD_DAYS_MAX 31

/* One period resolved in a time zone, with the period before it (for comparisons). */
struct ntf_period {
    enum ntf_period_kind kind;
    char label[NTF_WEEK_LABEL_MAX];      /* "2026-11-19", "2026-W47" or "2026-11" */
    char prev_label[NTF_WEEK_LABEL_MAX]; /* label of the period before */
    int64_t first_day;                   /* day number of the first local day */
    int n_days;                          /* 1, 7 or 28..31 */
    int64_t day_start[NTF_PERIOD_DAYS_MAX + 1]; /* UTC second each local day starts;
                                                 * [n_days] = end of the period (exclusive) */
    int64_t prev_first_day;              /* the period before: first day, length, day starts */
    int prev_n_days;
    int64_t prev_day_start[NTF_PERIOD_DAYS_MAX + 1]; /* [prev_n_days] == day_start[0] */
};

/* "daily", "weekly", "monthly". */
const char *ntf_period_kind_name(enum ntf_period_kind kind);
/* Parses "daily" / "weekly" / "monthly". Returns 0 or -1. */
int ntf_period_kind_parse(const char *s, enum ntf_period_kind *kind);

/* First day of the period of `kind` that contains day number `days`. */
int64_t ntf_period_first_day(enum ntf_period_kind kind, int64_t days);
/* First day of the period after / before the one starting at first_day. */
int64_t ntf_period_next(enum ntf_period_kind kind, int64_t first_day);
int64_t ntf_period_prev(enum ntf_period_kind kind, int64_t first_day);
/* Number of days of the period starting at first_day. */
int ntf_period_days(enum ntf_period_kind kind, int64_t first_day);
/* Writes the label of the period starting at first_day into out. */
void ntf_period_label(enum ntf_period_kind kind, int64_t first_day, char *out, size_t outsz);

/* Parses a period label: "2026-11-19" (a day), "2026-W47" (an ISO week) or "2026-11" (a
 * month). Returns 0 with *kind and *first_day set, or -1 when malformed or non-existent. */
int ntf_period_parse(const char *s, enum ntf_period_kind *kind, int64_t *first_day);

/* Fills p for the period of `kind` starting at local day first_day (which must be the first day
 * of such a period: a Monday for weeks, the 1st for months) in tz. Returns 0 or -1. */
int ntf_period_resolve(const char *tz, enum ntf_period_kind kind, int64_t first_day,
                       struct ntf_period *p);
/* First day of the last period of `kind` that ended before UTC second now in tz's calendar. */
int64_t ntf_period_last_complete(const char *tz, enum ntf_period_kind kind, int64_t now);

#endif
