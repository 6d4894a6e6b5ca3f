#define ESC_LOG_MODULE "test"
/* Component tests of the "youtube" connector against the platform fixture
 * (tests/data/platforms/youtube.json) and a private redis-server: search.list paged with
 * pageToken from publishedAfter = the backfill date, a video repeated across pages sent once,
 * HTML-escaped titles as plain text, the next poll asking publishedAfter = the newest video and
 * getting 403 quotaExceeded, which parks the source until the daily reset; comment threads of
 * a video as HTML-to-text; the API key (in the URL) never logged. */
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
test_youtube_videos_paging_and_quota(void **state)
{
    struct col_rig *r = *state;
    const struct esc_post *p;
    size_t before;
    char *log;
    char id[16];
    int i;

    setenv("COL_TEST_YT_KEY", "ytkey", 1);
    assert_int_equal(col_rig_start(r, "tests/data/platforms/youtube.json"), 0);
    assert_int_equal(col_rig_sources(r, "[{\"name\":\"yt\",\"type\":\"youtube\","
                                        "\"base_url\":\"{base}\",\"key_env\":\"COL_TEST_YT_KEY\","
                                        "\"query\":\"rust\",\"since\":\"2026-09-21\","
                                        "\"interval_s\":1,\"page_delay_ms\":0}]"),
                     1);
    assert_int_equal(col_rig_run(r, 6, 10000), 6);
    col_rig_run(r, 7, 1500); /* the second poll meets the quota */
    assert_int_equal(r->n_posts, 6);
    for (i = 1; i <= 6; i++) {
        snprintf(id, sizeof(id), "vid%08d", i);
        assert_int_equal(col_rig_count_id(r, id), 1);
    }
    p = &r->posts[col_rig_find(r, "vid00000001")];
    assert_string_equal(p->platform, "youtube");
    assert_string_equal(p->text, "Post 1: a\xc3\xb1o \"\xc3\xb1" "and\xc3\xba\" caf\xc3\xa9 "
                                 "\xf0\x9f\x8e\x89 #rustlang\n\ndesc & more");
    assert_string_equal(p->author, "Canal 1");
    assert_string_equal(p->url, "https://www.youtube.com/watch?v=vid00000001");
    assert_int_equal(p->created_at, (T0 + 60) * 1000);
    /* parked until the daily reset: no further request */
    before = col_fixture_count(&r->fx, "/youtube/v3/search");
    assert_int_equal(before, 3);
    col_rig_run(r, 7, 1500);
    assert_int_equal(col_fixture_count(&r->fx, "/youtube/v3/search"), before);
    log = col_rig_log(r);
    assert_non_null(strstr(log, "quota exceeded, waiting for the daily reset source=yt"));
    assert_non_null(strstr(log, "key=***"));
    assert_null(strstr(log, "ytkey"));
    esc_free(log);
    assert_int_equal(r->ins[0].stats.errors, 1);
}

static void
test_youtube_comment_threads(void **state)
{
    struct col_rig *r = *state;
    const struct esc_post *p;

    setenv("COL_TEST_YT_KEY", "ytkey", 1);
    assert_int_equal(col_rig_start(r, "tests/data/platforms/youtube.json"), 0);
    assert_int_equal(col_rig_sources(r, "[{\"name\":\"ytc\",\"type\":\"youtube\","
                                        "\"base_url\":\"{base}\",\"key_env\":\"COL_TEST_YT_KEY\","
                                        "\"kind\":\"comments\",\"video_id\":\"vidX\","
                                        "\"max_results\":100}]"),
                     1);
    assert_int_equal(col_rig_run(r, 2, 10000), 2);
    p = &r->posts[0];
    assert_string_equal(p->id, "Ugz00000001");
    assert_string_equal(p->text, "Post 1: a\xc3\xb1o \xc3\xb1" "and\xc3\xba caf\xc3\xa9 "
                                 "\xf0\x9f\x8e\x89 #rustlang 0:01");
    assert_string_equal(p->author, "@viewer1");
    assert_string_equal(p->url, "https://www.youtube.com/watch?v=vidX&lc=Ugz00000001");
    assert_int_equal(p->likes, 1);
    assert_int_equal(p->created_at, (T0 + 60) * 1000);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_youtube_videos_paging_and_quota, col_rig_setup,
                                        col_rig_teardown),
        cmocka_unit_test_setup_teardown(test_youtube_comment_threads, col_rig_setup,
                                        col_rig_teardown),
    };

    col_net_global_init();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
