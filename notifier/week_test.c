#define ESC_LOG_MODULE "week_test"
/* Unit tests of week.c: ISO week numbering (53-week years, the year boundary) and local day
 * boundaries in time zones with and without DST, including a skipped midnight. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "week.h"

/* UTC seconds of a UTC wall time. */
static int64_t
s_utc(int y, int mo, int d, int h, int mi)
{
    return ntf_days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60;
}

/* ISO week (y, wk) in tz as a period; -1 when that week does not exist. */
static int
s_week(const char *tz, int y, int wk, struct ntf_period *p)
{
    if (wk < 1 || wk > ntf_iso_weeks_in_year(y)) {
        return -1;
    }
    return ntf_period_resolve(tz, NTF_PERIOD_WEEK, ntf_iso_week_monday(y, wk), p);
}

/* The last complete ISO week before now in tz. */
static void
s_last_week(const char *tz, int64_t now, int *y, int *wk)
{
    ntf_iso_week_of(ntf_period_last_complete(tz, NTF_PERIOD_WEEK, now), y, wk);
}

static void
test_week_resolve_lima(void **state)
{
    struct ntf_period w;
    int y;
    int wk;
    int i;

    assert_int_equal(ntf_week_parse("2026-W47", &y, &wk), 0);
    assert_int_equal(y, 2026);
    assert_int_equal(wk, 47);
    assert_int_equal(s_week("America/Lima", y, wk, &w), 0);
    assert_string_equal(w.label, "2026-W47");
    assert_int_equal(w.first_day, ntf_days_from_civil(2026, 11, 16));
    /* Lima is UTC-5 all year: local midnight is 05:00 UTC, every day is 24 h */
    assert_int_equal(w.day_start[0], s_utc(2026, 11, 16, 5, 0));
    for (i = 0; i < 7; i++) {
        assert_int_equal(w.day_start[i + 1] - w.day_start[i], 86400);
    }
    assert_int_equal(w.day_start[7], s_utc(2026, 11, 23, 5, 0));
    assert_int_equal(w.prev_day_start[0], s_utc(2026, 11, 9, 5, 0));
}

static void
test_week_53_week_years(void **state)
{
    int y;
    int wk;

    /* 2026 starts on a Thursday, so it has 53 ISO weeks; 2020 is a leap year starting on a
     * Wednesday (53); 2025 and 2027 have 52 */
    assert_int_equal(ntf_iso_weeks_in_year(2026), 53);
    assert_int_equal(ntf_iso_weeks_in_year(2020), 53);
    assert_int_equal(ntf_iso_weeks_in_year(2015), 53);
    assert_int_equal(ntf_iso_weeks_in_year(2025), 52);
    assert_int_equal(ntf_iso_weeks_in_year(2027), 52);
    assert_int_equal(ntf_week_parse("2026-W53", &y, &wk), 0);
    assert_int_equal(wk, 53);
    assert_int_equal(ntf_week_parse("2027-W53", &y, &wk), -1);
    assert_int_equal(ntf_week_parse("2025-W53", &y, &wk), -1);
}

static void
test_week_year_boundary(void **state)
{
    struct ntf_period w53;
    struct ntf_period w01;
    int y;
    int wk;

    /* 2026-W53 runs Mon 28 Dec 2026 .. Sun 3 Jan 2027; 2027-W01 starts Mon 4 Jan 2027 */
    ntf_iso_week_of(ntf_days_from_civil(2027, 1, 3), &y, &wk);
    assert_int_equal(y, 2026);
    assert_int_equal(wk, 53);
    ntf_iso_week_of(ntf_days_from_civil(2027, 1, 4), &y, &wk);
    assert_int_equal(y, 2027);
    assert_int_equal(wk, 1);
    /* and the other way round: 29 Dec 2025 already belongs to 2026-W01 */
    ntf_iso_week_of(ntf_days_from_civil(2025, 12, 29), &y, &wk);
    assert_int_equal(y, 2026);
    assert_int_equal(wk, 1);
    ntf_iso_week_of(ntf_days_from_civil(2026, 1, 1), &y, &wk);
    assert_int_equal(y, 2026);
    assert_int_equal(wk, 1);

    assert_int_equal(s_week("America/Lima", 2026, 53, &w53), 0);
    assert_int_equal(s_week("America/Lima", 2027, 1, &w01), 0);
    assert_int_equal(w53.first_day, ntf_days_from_civil(2026, 12, 28));
    assert_int_equal(w01.first_day, ntf_days_from_civil(2027, 1, 4));
    assert_int_equal(w53.day_start[7], w01.day_start[0]);
    assert_int_equal(w01.prev_day_start[0], w53.day_start[0]);
    assert_int_equal(w53.day_start[4], s_utc(2027, 1, 1, 5, 0));
    assert_int_equal(s_week("America/Lima", 2027, 53, &w53), -1);
}

static void
test_week_dst_madrid(void **state)
{
    struct ntf_period w;

    /* spring forward on Sun 29 Mar 2026 (02:00 CET -> 03:00 CEST): a 167-hour week */
    assert_int_equal(s_week("Europe/Madrid", 2026, 13, &w), 0);
    assert_int_equal(w.day_start[0], s_utc(2026, 3, 22, 23, 0));
    assert_int_equal(w.day_start[6], s_utc(2026, 3, 28, 23, 0));
    assert_int_equal(w.day_start[7], s_utc(2026, 3, 29, 22, 0));
    assert_int_equal(w.day_start[7] - w.day_start[6], 23 * 3600);
    assert_int_equal(w.day_start[7] - w.day_start[0], 167 * 3600);
    /* fall back on Sun 25 Oct 2026: a 169-hour week */
    assert_int_equal(s_week("Europe/Madrid", 2026, 43, &w), 0);
    assert_int_equal(w.day_start[0], s_utc(2026, 10, 18, 22, 0));
    assert_int_equal(w.day_start[7], s_utc(2026, 10, 25, 23, 0));
    assert_int_equal(w.day_start[7] - w.day_start[6], 25 * 3600);
    assert_int_equal(w.day_start[7] - w.day_start[0], 169 * 3600);
}

static void
test_week_dst_santiago_skipped_midnight(void **state)
{
    struct ntf_period w;

    /* Santiago springs forward at 24:00 on Sat 5 Sep 2026: Sunday 6 Sep has no 00:00 and
     * starts at 01:00 -03 (04:00 UTC); that Sunday is 23 hours long */
    assert_int_equal(s_week("America/Santiago", 2026, 36, &w), 0);
    assert_int_equal(w.day_start[0], s_utc(2026, 8, 31, 4, 0));
    assert_int_equal(w.day_start[5], s_utc(2026, 9, 5, 4, 0));
    assert_int_equal(w.day_start[6], s_utc(2026, 9, 6, 4, 0));
    assert_int_equal(w.day_start[7], s_utc(2026, 9, 7, 3, 0));
    assert_int_equal(w.day_start[6] - w.day_start[5], 24 * 3600);
    assert_int_equal(w.day_start[7] - w.day_start[6], 23 * 3600);
    /* falls back at 24:00 on Sat 4 Apr 2026 (-03 -> -04): that Saturday is 25 hours long */
    assert_int_equal(s_week("America/Santiago", 2026, 14, &w), 0);
    assert_int_equal(w.day_start[5], s_utc(2026, 4, 4, 3, 0));
    assert_int_equal(w.day_start[6], s_utc(2026, 4, 5, 4, 0));
    assert_int_equal(w.day_start[6] - w.day_start[5], 25 * 3600);
}

static void
test_week_parse_rejects_malformed(void **state)
{
    static const char *const bad[] = {
        "2026-W00", "2026-W54", "2026W47", "2026-w47", "26-W47", "2026-W4",
        "",         "2026-W47x", " 2026-W47", "2026-47", "1900-W01", "20a6-W47",
    };
    size_t i;
    int y;
    int wk;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(ntf_week_parse(bad[i], &y, &wk), -1);
    }
    assert_int_equal(ntf_week_parse(NULL, &y, &wk), -1);
}

static void
test_week_last_complete(void **state)
{
    int y;
    int wk;

    /* Sunday 23:59:59 in Lima: the week is not over yet */
    s_last_week("America/Lima", s_utc(2026, 11, 23, 4, 59) + 59, &y, &wk);
    assert_int_equal(y, 2026);
    assert_int_equal(wk, 46);
    /* Monday 00:00 in Lima: 2026-W47 just ended */
    s_last_week("America/Lima", s_utc(2026, 11, 23, 5, 0), &y, &wk);
    assert_int_equal(wk, 47);
    /* the same instant is still Sunday in UTC-10 */
    s_last_week("Pacific/Honolulu", s_utc(2026, 11, 23, 5, 0), &y, &wk);
    assert_int_equal(wk, 46);
    /* across the year boundary */
    s_last_week("America/Lima", s_utc(2027, 1, 5, 12, 0), &y, &wk);
    assert_int_equal(y, 2026);
    assert_int_equal(wk, 53);
}

static void
test_week_tz_valid(void **state)
{
    assert_true(ntf_tz_valid("America/Lima"));
    assert_true(ntf_tz_valid("Europe/Madrid"));
    assert_true(ntf_tz_valid("UTC"));
    assert_false(ntf_tz_valid("Mars/Olympus_Mons"));
    assert_false(ntf_tz_valid("../../etc/passwd"));
    assert_false(ntf_tz_valid("/etc/localtime"));
    assert_false(ntf_tz_valid("America/Lima;rm"));
    assert_false(ntf_tz_valid(""));
    assert_false(ntf_tz_valid(NULL));
}

static void
test_week_tz_restored(void **state)
{
    struct ntf_period w;
    const char *tz;

    setenv("TZ", "Asia/Tokyo", 1);
    tzset();
    assert_int_equal(s_week("America/Lima", 2026, 47, &w), 0);
    tz = getenv("TZ");
    assert_non_null(tz);
    assert_string_equal(tz, "Asia/Tokyo");
    unsetenv("TZ");
    assert_int_equal(s_week("Europe/Madrid", 2026, 47, &w), 0);
    assert_null(getenv("TZ"));
}


static void
test_week_periods_parse_and_labels(void **state)
{
    static const char *const bad[] = { "2026-13",    "2026-00",    "2026-02-30", "2026-11-31",
                                       "2026-1-19",  "2026-11-1",  "2026/11/19", "1970-01",
                                       "2026-11-19x", "2026",      "",           "2026-W00" };
    enum ntf_period_kind k;
    int64_t f;
    size_t i;
    char label[NTF_WEEK_LABEL_MAX];

    (void)state;
    assert_int_equal(ntf_period_parse("2026-11-19", &k, &f), 0);
    assert_int_equal(k, NTF_PERIOD_DAY);
    assert_int_equal(f, ntf_days_from_civil(2026, 11, 19));
    assert_int_equal(ntf_period_parse("2026-W47", &k, &f), 0);
    assert_int_equal(k, NTF_PERIOD_WEEK);
    assert_int_equal(f, ntf_days_from_civil(2026, 11, 16));
    assert_int_equal(ntf_period_parse("2026-11", &k, &f), 0);
    assert_int_equal(k, NTF_PERIOD_MONTH);
    assert_int_equal(f, ntf_days_from_civil(2026, 11, 1));
    assert_int_equal(ntf_period_parse("2028-02-29", &k, &f), 0); /* leap day */
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(ntf_period_parse(bad[i], &k, &f), -1);
    }
    assert_int_equal(ntf_period_parse(NULL, &k, &f), -1);
    /* labels and neighbours */
    ntf_period_label(NTF_PERIOD_WEEK, ntf_days_from_civil(2026, 12, 28), label, sizeof(label));
    assert_string_equal(label, "2026-W53");
    ntf_period_label(NTF_PERIOD_MONTH, ntf_days_from_civil(2026, 12, 1), label, sizeof(label));
    assert_string_equal(label, "2026-12");
    assert_int_equal(ntf_period_next(NTF_PERIOD_MONTH, ntf_days_from_civil(2026, 12, 1)),
                     ntf_days_from_civil(2027, 1, 1));
    assert_int_equal(ntf_period_prev(NTF_PERIOD_MONTH, ntf_days_from_civil(2026, 3, 1)),
                     ntf_days_from_civil(2026, 2, 1));
    assert_int_equal(ntf_period_days(NTF_PERIOD_MONTH, ntf_days_from_civil(2028, 2, 1)), 29);
    assert_int_equal(ntf_period_first_day(NTF_PERIOD_WEEK, ntf_days_from_civil(2026, 11, 22)),
                     ntf_days_from_civil(2026, 11, 16));
    assert_int_equal(ntf_period_kind_parse("monthly", &k), 0);
    assert_int_equal(k, NTF_PERIOD_MONTH);
    assert_int_equal(ntf_period_kind_parse("yearly", &k), -1);
}

static void
test_week_period_resolve_month_and_day(void **state)
{
    struct ntf_period p;

    (void)state;
    /* March 2026 in Madrid: 31 days, 743 hours (spring forward on the 29th); February before */
    assert_int_equal(ntf_period_resolve("Europe/Madrid", NTF_PERIOD_MONTH,
                                        ntf_days_from_civil(2026, 3, 1), &p),
                     0);
    assert_string_equal(p.label, "2026-03");
    assert_string_equal(p.prev_label, "2026-02");
    assert_int_equal(p.n_days, 31);
    assert_int_equal(p.prev_n_days, 28);
    assert_int_equal(p.day_start[0], s_utc(2026, 2, 28, 23, 0));
    assert_int_equal(p.day_start[31], s_utc(2026, 3, 31, 22, 0));
    assert_int_equal(p.day_start[31] - p.day_start[0], 743 * 3600);
    assert_int_equal(p.prev_day_start[0], s_utc(2026, 1, 31, 23, 0));
    assert_int_equal(p.prev_day_start[28], p.day_start[0]);
    /* a day in Lima, and one that is not the first day of a month */
    assert_int_equal(ntf_period_resolve("America/Lima", NTF_PERIOD_DAY,
                                        ntf_days_from_civil(2026, 11, 19), &p),
                     0);
    assert_string_equal(p.label, "2026-11-19");
    assert_string_equal(p.prev_label, "2026-11-18");
    assert_int_equal(p.day_start[0], s_utc(2026, 11, 19, 5, 0));
    assert_int_equal(p.day_start[1], s_utc(2026, 11, 20, 5, 0));
    assert_int_equal(ntf_period_resolve("America/Lima", NTF_PERIOD_MONTH,
                                        ntf_days_from_civil(2026, 11, 19), &p),
                     -1);
    /* the last complete month / day before an instant, in local time */
    assert_int_equal(ntf_period_last_complete("America/Lima", NTF_PERIOD_MONTH,
                                              s_utc(2026, 12, 1, 4, 59)),
                     ntf_days_from_civil(2026, 10, 1));
    assert_int_equal(ntf_period_last_complete("America/Lima", NTF_PERIOD_MONTH,
                                              s_utc(2026, 12, 1, 5, 0)),
                     ntf_days_from_civil(2026, 11, 1));
    assert_int_equal(ntf_period_last_complete("Asia/Tokyo", NTF_PERIOD_DAY,
                                              s_utc(2026, 11, 19, 15, 0)),
                     ntf_days_from_civil(2026, 11, 19));
}

static void
test_week_local_to_utc(void **state)
{
    (void)state;
    /* ordinary times east and west of UTC */
    assert_int_equal(ntf_tz_local_to_utc("America/Lima", ntf_days_from_civil(2026, 11, 23),
                                         8 * 3600),
                     s_utc(2026, 11, 23, 13, 0));
    assert_int_equal(ntf_tz_local_to_utc("Asia/Kolkata", ntf_days_from_civil(2026, 11, 23),
                                         8 * 3600),
                     s_utc(2026, 11, 23, 2, 30));
    assert_int_equal(ntf_tz_local_to_utc("UTC", ntf_days_from_civil(2026, 11, 23), 0),
                     s_utc(2026, 11, 23, 0, 0));
    /* Madrid springs forward at 02:00 on 29 Mar 2026: 02:30 does not exist -> 03:30 CEST */
    assert_int_equal(ntf_tz_local_to_utc("Europe/Madrid", ntf_days_from_civil(2026, 3, 29),
                                         2 * 3600 + 1800),
                     s_utc(2026, 3, 29, 1, 30));
    /* and falls back at 03:00 on 25 Oct 2026: 02:30 happens twice, the first is CEST */
    assert_int_equal(ntf_tz_local_to_utc("Europe/Madrid", ntf_days_from_civil(2026, 10, 25),
                                         2 * 3600 + 1800),
                     s_utc(2026, 10, 25, 0, 30));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_week_resolve_lima),
        cmocka_unit_test(test_week_53_week_years),
        cmocka_unit_test(test_week_year_boundary),
        cmocka_unit_test(test_week_dst_madrid),
        cmocka_unit_test(test_week_dst_santiago_skipped_midnight),
        cmocka_unit_test(test_week_parse_rejects_malformed),
        cmocka_unit_test(test_week_last_complete),
        cmocka_unit_test(test_week_tz_valid),
        cmocka_unit_test(test_week_tz_restored),
        cmocka_unit_test(test_week_periods_parse_and_labels),
        cmocka_unit_test(test_week_period_resolve_month_and_day),
        cmocka_unit_test(test_week_local_to_utc),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
