#define ESC_LOG_MODULE "test"
/* Component tests of the "lemmy" connector against the platform fixture
 * (tests/data/platforms/lemmy.json) and a private redis-server: search results paged with
 * page=1,2,3 back to the backfill date, a 429 without any hint retried after the rate backoff,
 * a post repeated across pages sent once, the next poll stopping at the newest post taken,
 * ap_id as the dedupe key and URL, the author's instance in the handle. */
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
test_lemmy_search_paging_and_429(void **state)
{
    struct col_rig *r = *state;
    const struct esc_post *p;
    char *log;
    char id[16];
    int i;

    assert_int_equal(col_rig_start(r, "tests/data/platforms/lemmy.json"), 0);
    assert_int_equal(col_rig_sources(r, "[{\"name\":\"lem\",\"type\":\"lemmy\","
                                        "\"instance\":\"{base}\",\"query\":\"rust\",\"limit\":3,"
                                        "\"since\":\"2026-09-21\",\"interval_s\":1,"
                                        "\"page_delay_ms\":0,\"rate_backoff_ms\":200}]"),
                     1);
    assert_int_equal(col_rig_run(r, 7, 10000), 7);
    col_rig_run(r, 8, 1500);
    assert_int_equal(r->n_posts, 7);
    for (i = 1; i <= 7; i++) {
        snprintf(id, sizeof(id), "%d", 2456000 + i);
        assert_int_equal(col_rig_count_id(r, id), 1);
    }
    p = &r->posts[col_rig_find(r, "2456001")];
    assert_string_equal(p->platform, "lemmy");
    assert_string_equal(p->text, "Post 1: a\xc3\xb1o \xc3\xb1" "and\xc3\xba caf\xc3\xa9 "
                                 "\xf0\x9f\x8e\x89 #rustlang\n\nBody **1**");
    assert_string_equal(p->author, "lemming1@lemmy.example");
    assert_string_equal(p->author_name, "Lemming 1");
    assert_string_equal(p->url, "https://lemmy.example/post/2456001");
    assert_int_equal(p->created_at, (T0 + 60) * 1000 + 123);
    assert_int_equal(p->likes, 1);
    assert_int_equal(p->replies, 1);
    log = col_rig_log(r);
    assert_non_null(strstr(log, "rate limited source=lem reason=\"HTTP 429 Too Many Requests\" "
                                "status=429 attempt=1 wait_ms=2"));
    esc_free(log);
    assert_int_equal(r->ins[0].stats.errors, 1);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_lemmy_search_paging_and_429, col_rig_setup,
                                        col_rig_teardown),
    };

    col_net_global_init();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
