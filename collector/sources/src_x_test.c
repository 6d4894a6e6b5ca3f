#define ESC_LOG_MODULE "test"
/* Component tests of the "x" connector (X API v2 recent search) against the platform fixture
 * (tests/data/platforms/x.json) and a private redis-server: a backfill from start_time paged
 * with next_token, a 429 without Retry-After that waits for x-rate-limit-reset, a post repeated
 * across pages sent once, since_id taken from the first page's newest_id and stored, the next
 * poll asking since_id, authors joined from includes.users, entities as hashtags and mentions,
 * and the bearer token never logged. */
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
test_x_recent_search_paging_rate_limit_and_since_id(void **state)
{
    struct col_rig *r = *state;
    const struct esc_post *p;
    json_t *reqs;
    char *log;
    char *cursor;
    char id[32];
    double t1;
    double t2;
    int i;

    setenv("COL_TEST_X_BEARER", "xbearer", 1);
    assert_int_equal(col_rig_start(r, "tests/data/platforms/x.json"), 0);
    assert_int_equal(col_rig_sources(r, "[{\"name\":\"tw\",\"type\":\"x\",\"base_url\":\"{base}\","
                                        "\"query\":\"(rust OR #rustlang) lang:es -is:retweet\","
                                        "\"bearer_env\":\"COL_TEST_X_BEARER\","
                                        "\"since\":\"2026-09-21\",\"interval_s\":1,"
                                        "\"page_delay_ms\":0,\"rate_backoff_ms\":30000}]"),
                     1);
    assert_int_equal(col_rig_run(r, 7, 15000), 7);
    col_rig_run(r, 8, 1500);
    assert_int_equal(r->n_posts, 7);
    for (i = 1; i <= 7; i++) {
        snprintf(id, sizeof(id), "%lld", 1886400000000000000LL + (long long)i);
        assert_int_equal(col_rig_count_id(r, id), 1);
    }
    p = &r->posts[col_rig_find(r, "1886400000000000001")];
    assert_string_equal(p->platform, "x");
    assert_string_equal(p->text, "Post 1: a\xc3\xb1o \xc3\xb1" "and\xc3\xba caf\xc3\xa9 "
                                 "\xf0\x9f\x8e\x89 #rustlang");
    assert_string_equal(p->author, "@tuitera1");
    assert_string_equal(p->author_name, "Tuitera 1");
    assert_int_equal(p->followers, 1501);
    assert_string_equal(p->url, "https://x.com/tuitera1/status/1886400000000000001");
    assert_string_equal(p->lang, "es");
    assert_int_equal(p->created_at, (T0 + 60) * 1000);
    assert_int_equal(p->likes, 1);
    assert_int_equal(p->reposts, 1);
    assert_int_equal(p->replies, 1);
    assert_string_equal(p->hashtags[0], "rustlang");
    assert_string_equal(p->mentions[0], "bob");

    /* The 429 said nothing but x-rate-limit-reset (1 to 2 s ahead): the retry waited for it,
     * not for rate_backoff_ms (30 s). */
    reqs = col_fixture_requests(&r->fx);
    assert_true(json_array_size(reqs) >= 5);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(reqs, 1), "route")), 1);
    t1 = json_real_value(json_object_get(json_array_get(reqs, 1), "t"));
    t2 = json_real_value(json_object_get(json_array_get(reqs, 2), "t"));
    assert_true(t2 - t1 >= 0.9);
    assert_true(t2 - t1 < 5.0);
    assert_string_equal(col_fixture_query(reqs, 3, "since_id"), "1886400000000000006");
    assert_null(col_fixture_query(reqs, 3, "start_time"));
    json_decref(reqs);
    cursor = col_rig_redis(r, "GET %s", "t:col:cursor:tw");
    assert_non_null(cursor);
    assert_string_equal(cursor, "1886400000000000007");
    esc_free(cursor);
    log = col_rig_log(r);
    assert_non_null(strstr(log, "rate limited source=tw"));
    assert_null(strstr(log, "xbearer"));
    esc_free(log);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_x_recent_search_paging_rate_limit_and_since_id,
                                        col_rig_setup, col_rig_teardown),
    };

    col_net_global_init();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
