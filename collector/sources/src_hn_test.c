#define ESC_LOG_MODULE "test"
/* Component tests of the "hn" connector (Algolia HN Search) against the platform fixture
 * (tests/data/platforms/hn.json) and a private redis-server: a backfill sweep over two pages
 * with numericFilters=created_at_i>=<since>, a hit repeated across pages sent once, stories and
 * comments (HTML with entities) as plain text, the cursor moving forward on created_at_i and
 * stored in Redis; and the 1000-hit cap: a sweep that cannot reach all its hits narrows its
 * window (created_at_i<=oldest seen) and collects the rest. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "testing.h"

#include "escucha/esc_mem.h"
#include "escucha/esc_util.h"

#define T0 INT64_C(1790000000) /* the fixture's time of item 0, Unix s */

static void
test_hn_sweeps_forward_on_created_at(void **state)
{
    struct col_rig *r = *state;
    const struct esc_post *p;
    char *cursor;
    char id[16];
    int i;

    assert_int_equal(col_rig_start(r, "tests/data/platforms/hn.json"), 0);
    assert_int_equal(col_rig_sources(r, "[{\"name\":\"hn\",\"type\":\"hn\",\"base_url\":\"{base}\","
                                        "\"query\":\"rust\",\"hits_per_page\":3,"
                                        "\"since\":\"2026-09-21\",\"interval_s\":1,"
                                        "\"page_delay_ms\":0}]"),
                     1);
    assert_int_equal(col_rig_run(r, 7, 10000), 7);
    col_rig_run(r, 8, 2500); /* two more polls: only repeats */
    assert_int_equal(r->n_posts, 7);
    for (i = 1; i <= 7; i++) {
        snprintf(id, sizeof(id), "%d", 42900000 + i);
        assert_int_equal(col_rig_count_id(r, id), 1);
    }
    p = &r->posts[col_rig_find(r, "42900001")];
    assert_string_equal(p->platform, "hn");
    assert_string_equal(p->text, "Post 1: a'o <3 \xc3\xb1" "and\xc3\xba caf\xc3\xa9 "
                                 "\xf0\x9f\x8e\x89 #rustlang\n\nsecond");
    assert_string_equal(p->author, "user1");
    assert_string_equal(p->url, "https://news.ycombinator.com/item?id=42900001");
    assert_int_equal(p->created_at, (T0 + 60) * 1000);
    assert_int_equal(p->likes, 0); /* points null on comments */
    p = &r->posts[col_rig_find(r, "42900002")];
    assert_string_equal(p->text, "Post 2: a\xc3\xb1o \xc3\xb1" "and\xc3\xba caf\xc3\xa9 "
                                 "\xf0\x9f\x8e\x89 #rustlang");
    assert_int_equal(p->likes, 2);
    assert_int_equal(p->replies, 2);
    cursor = col_rig_redis(r, "GET %s", "t:col:cursor:hn");
    assert_non_null(cursor);
    assert_string_equal(cursor, "1790000420");
    esc_free(cursor);
    assert_int_equal(r->ins[0].stats.errors, 0);
}

static void
test_hn_narrows_window_past_the_hit_cap(void **state)
{
    struct col_rig *r = *state;
    char *log;
    char *cursor;

    assert_int_equal(col_rig_start(r, "tests/data/platforms/hn.json"), 0);
    assert_int_equal(col_rig_sources(r, "[{\"name\":\"cap\",\"type\":\"hn\","
                                        "\"base_url\":\"{base}\",\"query\":\"cap\","
                                        "\"hits_per_page\":2,\"since\":\"2026-09-21\","
                                        "\"interval_s\":1,"
                                        "\"page_delay_ms\":0}]"),
                     1);
    assert_int_equal(col_rig_run(r, 4, 10000), 4);
    col_rig_run(r, 5, 1500);
    assert_int_equal(r->n_posts, 4);
    assert_int_equal(col_rig_count_id(r, "42900003"), 1);
    assert_int_equal(col_rig_count_id(r, "42900001"), 1);
    log = col_rig_log(r);
    assert_non_null(strstr(log, "narrowing sweep source=cap hits=4 until=1790000180"));
    esc_free(log);
    cursor = col_rig_redis(r, "GET %s", "t:col:cursor:cap");
    assert_non_null(cursor);
    assert_string_equal(cursor, "1790000240");
    esc_free(cursor);
    assert_int_equal(r->ins[0].stats.errors, 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_hn_sweeps_forward_on_created_at, col_rig_setup,
                                        col_rig_teardown),
        cmocka_unit_test_setup_teardown(test_hn_narrows_window_past_the_hit_cap, col_rig_setup,
                                        col_rig_teardown),
    };

    col_net_global_init();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
