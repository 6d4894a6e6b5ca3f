#define ESC_LOG_MODULE "chart_test"
/* Unit tests of chart.c: the PNG is a real PNG of the requested size for weeks, months and
 * days, with or without a previous period, all zeros or huge numbers; bad input is refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "chart.h"
#include "escucha/esc_mem.h"

/* Width and height from the IHDR chunk of a PNG, after checking the signature. */
static void
s_png_size(const unsigned char *png, size_t len, uint32_t *w, uint32_t *h)
{
    assert_true(len > 33);
    assert_memory_equal(png, "\x89PNG\r\n\x1a\n", 8);
    assert_memory_equal(png + 12, "IHDR", 4);
    *w = ((uint32_t)png[16] << 24) | ((uint32_t)png[17] << 16) | ((uint32_t)png[18] << 8)
         | png[19];
    *h = ((uint32_t)png[20] << 24) | ((uint32_t)png[21] << 16) | ((uint32_t)png[22] << 8)
         | png[23];
    /* ends with the IEND chunk */
    assert_memory_equal(png + len - 8, "IEND", 4);
}

static void
test_chart_week_png(void **state)
{
    static const int64_t v[7] = { 5, 3, 0, 120, 0, 0, 2 };
    static const int64_t prev[7] = { 4, 8, 1, 0, 0, 0, 4 };
    static const unsigned char spike[7] = { 0, 0, 0, 1, 0, 0, 0 };
    static const char *const labels[7] = { "lun 16", "mar 17", "mi\xc3\xa9 18", "jue 19",
                                           "vie 20", "s\xc3\xa1" "b 21", "dom 22" };
    struct ntf_chart c = {
        .values = v, .n = 7, .prev = prev, .n_prev = 7, .labels = labels, .spike = spike,
        .legend_cur = "Esta semana", .legend_prev = "Semana anterior", .legend_spike = "Pico",
        .width = 592, .height = 200, .scale = 2,
    };
    unsigned char *png;
    size_t len = 0;
    uint32_t w;
    uint32_t h;

    (void)state;
    png = ntf_chart_png(&c, &len);
    assert_non_null(png);
    s_png_size(png, len, &w, &h);
    assert_int_equal(w, 1184);
    assert_int_equal(h, 400);
    esc_free(png);
}

static void
test_chart_month_day_zero_and_huge(void **state)
{
    int64_t v[32];
    int64_t prev[31];
    unsigned char *png;
    size_t len = 0;
    uint32_t w;
    uint32_t h;
    size_t i;
    struct ntf_chart c = {
        .values = v, .n = 31, .prev = prev, .n_prev = 30, .width = 300, .height = 120,
        .scale = 1,
    };

    (void)state;
    for (i = 0; i < 31; i++) {
        v[i] = (int64_t)i * 1000000000LL;
        prev[i] = 7;
    }
    png = ntf_chart_png(&c, &len);
    assert_non_null(png);
    s_png_size(png, len, &w, &h);
    assert_int_equal(w, 300);
    assert_int_equal(h, 120);
    esc_free(png);

    /* a day in hours, all zero, no labels, no previous period */
    memset(v, 0, sizeof(v));
    c.n = 25;
    c.prev = NULL;
    c.n_prev = 0;
    png = ntf_chart_png(&c, &len);
    assert_non_null(png);
    esc_free(png);
}

static void
test_chart_rejects_bad_input(void **state)
{
    static const int64_t neg[2] = { 1, -1 };
    int64_t v[40];
    struct ntf_chart c = { .values = v, .n = 7, .width = 592, .height = 200, .scale = 2 };
    size_t len = 0;

    (void)state;
    memset(v, 0, sizeof(v));
    c.n = 0;
    assert_null(ntf_chart_png(&c, &len));
    c.n = 33;
    assert_null(ntf_chart_png(&c, &len));
    c.n = 7;
    c.scale = 9;
    assert_null(ntf_chart_png(&c, &len));
    c.scale = 2;
    c.width = 10;
    assert_null(ntf_chart_png(&c, &len));
    c.width = 592;
    c.values = neg;
    c.n = 2;
    assert_null(ntf_chart_png(&c, &len));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_chart_week_png),
        cmocka_unit_test(test_chart_month_day_zero_and_huge),
        cmocka_unit_test(test_chart_rejects_bad_input),
    };
    int rc;

    rc = cmocka_run_group_tests(tests, NULL, NULL);

    ntf_chart_cleanup();
    return rc;
}
