#ifndef NTF_WEEK_H
#define NTF_WEEK_H

/* ISO 8601 weeks and the UTC instants of local days in an IANA time zone. Calendar arithmetic
 * is done on day numbers (days since 1970-01-01, proleptic Gregorian); time zone conversions
 * temporarily set TZ in the environment, so these functions are not thread-safe. */

#include <stdint.h>
#include <time.h>

#define NTF_WEEK_LABEL_MAX 24 /* "2026-W47" plus NUL, with room */

/* One ISO week resolved in a time zone. */
struct ntf_week {
    int year;                      /* ISO week-numbering year */
    int week;                      /* 1..53 */
    char label[NTF_WEEK_LABEL_MAX]; /* "2026-W47" */
    int64_t monday;                /* day number of the Monday */
    int64_t day_start[8];          /* UTC seconds at which each local day Mon..Sun starts, and
                                    * [7] = the next Monday (end of the week, exclusive) */
    int64_t prev_start;            /* UTC seconds at which the previous week starts */
};

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

/* Fills w for ISO week (iso_year, iso_week) in tz. Returns 0, or -1 when the week does not
 * exist. */
int ntf_week_resolve(const char *tz, int iso_year, int iso_week, struct ntf_week *w);
/* The last ISO week that has ended before UTC second now, in tz's local calendar. */
void ntf_week_last_complete(const char *tz, int64_t now, int *iso_year, int *iso_week);

#endif
