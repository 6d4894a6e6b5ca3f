#define ESC_LOG_MODULE "test"
/* Tests of the Prometheus text reading of `escucha up`: sums over label sets, names that only
 * share a prefix, comments and malformed lines, counters that survive restarts of their
 * exporter, and windowed rates. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "prom.h"

static const char s_text[] =
    "# HELP escucha_collector_posts_total Posts sent.\n"
    "# TYPE escucha_collector_posts_total counter\n"
    "escucha_collector_posts_total{source=\"muestra\",type=\"jsonl\"} 120\n"
    "escucha_collector_posts_total{source=\"a }b\\\"c\",type=\"rss\"} 30 1700000000000\n"
    "escucha_collector_posts_total_extra 999\n"
    "escucha_aggregator_pending_posts 12.5\n"
    "escucha_up_seconds 3.25\n"
    "escucha_broken{unterminated=\"x\" 5\n"
    "escucha_nan NaN\n"
    "escucha_inf +Inf\n"
    "escucha_lat_seconds_bucket{le=\"0.1\"} 4\n"
    "escucha_lat_seconds_count 4";

static void
test_prom_sum_over_labels(void **state)
{
    double v;

    (void)state;
    assert_true(cli_prom_sum(s_text, strlen(s_text), "escucha_collector_posts_total", &v));
    assert_true(v == 150.0);
    assert_true(cli_prom_sum(s_text, strlen(s_text), "escucha_aggregator_pending_posts", &v));
    assert_true(v == 12.5);
    /* last line without a newline */
    assert_true(cli_prom_sum(s_text, strlen(s_text), "escucha_lat_seconds_count", &v));
    assert_true(v == 4.0);
}

static void
test_prom_sum_exact_names_only(void **state)
{
    double v = -1;

    (void)state;
    assert_false(cli_prom_sum(s_text, strlen(s_text), "escucha_collector_posts", &v));
    assert_true(v == 0.0);
    assert_false(cli_prom_sum(s_text, strlen(s_text), "escucha_lat_seconds", &v));
    assert_false(cli_prom_sum(s_text, strlen(s_text), "escucha_broken", &v));
    assert_false(cli_prom_sum(s_text, strlen(s_text), "escucha_nan", &v));
    assert_true(cli_prom_sum(s_text, strlen(s_text), "escucha_inf", &v));
    assert_true(isinf(v));
    assert_false(cli_prom_sum("", 0, "x", &v));
    assert_false(cli_prom_sum("x\n", 2, "x", &v));
    assert_false(cli_prom_sum("x 1junk\n", 8, "x", &v));
}

static void
test_prom_sum_respects_length(void **state)
{
    const char text[] = "a 1\na 2\n";
    double v;

    (void)state;
    assert_true(cli_prom_sum(text, 4, "a", &v));
    assert_true(v == 1.0);
}

static void
test_prom_counter_survives_restarts(void **state)
{
    struct cli_counter c;

    (void)state;
    memset(&c, 0, sizeof(c));
    cli_counter_update(&c, 10);
    cli_counter_update(&c, 25);
    assert_true(cli_counter_total(&c) == 25.0);
    /* the supervisor saw the process die and restart */
    cli_counter_reset(&c);
    assert_true(cli_counter_total(&c) == 25.0);
    cli_counter_update(&c, 40); /* a fast new life: higher than before, still no double count */
    assert_true(cli_counter_total(&c) == 65.0);
    /* a restart nobody told us about: the value went down */
    cli_counter_update(&c, 5);
    assert_true(cli_counter_total(&c) == 70.0);
    cli_counter_update(&c, 5);
    assert_true(cli_counter_total(&c) == 70.0);
}

static void
test_prom_rate_window(void **state)
{
    struct cli_rate r;
    int i;

    (void)state;
    cli_rate_init(&r, 5000);
    assert_true(cli_rate_get(&r) == 0.0);
    cli_rate_add(&r, 1000, 0);
    assert_true(cli_rate_get(&r) == 0.0); /* one sample */
    cli_rate_add(&r, 2000, 100);
    assert_true(cli_rate_get(&r) == 100.0);
    /* 10 s at 50/s after that: the rate only looks at the last 5 s */
    for (i = 1; i <= 10; i++) {
        cli_rate_add(&r, 2000 + i * 1000, 100 + i * 50);
    }
    assert_true(cli_rate_get(&r) == 50.0);
    /* more samples than the ring holds */
    for (i = 11; i <= 40; i++) {
        cli_rate_add(&r, 2000 + i * 1000, 100 + 500 + (i - 10) * 20);
    }
    assert_true(cli_rate_get(&r) == 20.0);
    /* a total that went down (never for cli_counter totals) gives 0, not a negative rate */
    cli_rate_add(&r, 43000, 0);
    assert_true(cli_rate_get(&r) == 0.0);
}

static void
test_prom_rate_quiet(void **state)
{
    struct cli_rate r;
    int i;

    (void)state;
    cli_rate_init(&r, 5000);
    assert_false(cli_rate_quiet(&r));
    cli_rate_add(&r, 0, 7);
    assert_false(cli_rate_quiet(&r));
    for (i = 1; i < 5; i++) {
        cli_rate_add(&r, i * 1000, 7);
        assert_false(cli_rate_quiet(&r)); /* not a whole window yet */
    }
    cli_rate_add(&r, 5000, 7);
    assert_true(cli_rate_quiet(&r));
    cli_rate_add(&r, 6000, 8);
    assert_false(cli_rate_quiet(&r));
    for (i = 7; i < 11; i++) {
        cli_rate_add(&r, i * 1000, 8);
        assert_false(cli_rate_quiet(&r)); /* the change at 6 s is still in the window */
    }
    cli_rate_add(&r, 11000, 8);
    assert_true(cli_rate_quiet(&r));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_prom_sum_over_labels),
        cmocka_unit_test(test_prom_sum_exact_names_only),
        cmocka_unit_test(test_prom_sum_respects_length),
        cmocka_unit_test(test_prom_counter_survives_restarts),
        cmocka_unit_test(test_prom_rate_window),
        cmocka_unit_test(test_prom_rate_quiet),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
