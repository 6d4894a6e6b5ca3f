#define ESC_LOG_MODULE "test"
/* Component tests of the "reddit" connector against the platform fixture
 * (tests/data/platforms/reddit.json) and a private redis-server: the app-only token (HTTP Basic
 * client id and secret), listings paged with `after` back to the backfill date, a post repeated
 * across pages sent once, a 401 in the middle (expired token) answered with a new token and the
 * same page again, the next poll stopping at the newest post already taken, the User-Agent
 * sent, and the secret and tokens never logged. */
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
#define UA "linux:org.escucha.test:v1 (by /u/escucha)"

static void
test_reddit_token_paging_and_refresh(void **state)
{
    struct col_rig *r = *state;
    const struct esc_post *p;
    json_t *reqs;
    char *log;
    char *cursor;
    char id[16];
    int i;

    setenv("COL_TEST_REDDIT_SECRET", "sec", 1);
    assert_int_equal(col_rig_start(r, "tests/data/platforms/reddit.json"), 0);
    assert_int_equal(col_rig_sources(r, "[{\"name\":\"rd\",\"type\":\"reddit\","
                                        "\"auth_url\":\"{base}\",\"api_url\":\"{base}\","
                                        "\"client_id\":\"cid\",\"client_secret_env\":"
                                        "\"COL_TEST_REDDIT_SECRET\",\"subreddit\":\"rust\","
                                        "\"since\":\"2026-09-21\",\"interval_s\":1,"
                                        "\"page_delay_ms\":0,\"user_agent\":\"" UA "\"}]"),
                     1);
    assert_int_equal(col_rig_run(r, 7, 10000), 7);
    col_rig_run(r, 8, 1500);
    assert_int_equal(r->n_posts, 7);
    for (i = 1; i <= 7; i++) {
        snprintf(id, sizeof(id), "t3_%x", 1000000 + i);
        assert_int_equal(col_rig_count_id(r, id), 1);
    }
    p = &r->posts[col_rig_find(r, "t3_f4241")];
    assert_string_equal(p->platform, "reddit");
    assert_string_equal(p->text, "Post 1: a\xc3\xb1o \xc3\xb1" "and\xc3\xba caf\xc3\xa9 "
                                 "\xf0\x9f\x8e\x89 #rustlang\n\nbody **1**");
    assert_string_equal(p->author, "u/redditor1");
    assert_string_equal(p->url, "https://www.reddit.com/r/rust/comments/f4241/post_1/");
    assert_int_equal(p->created_at, (T0 + 60) * 1000);
    assert_int_equal(p->likes, 1);
    assert_int_equal(p->replies, 1);

    reqs = col_fixture_requests(&r->fx);
    assert_string_equal(json_string_value(json_object_get(json_array_get(reqs, 0), "body")),
                        "grant_type=client_credentials");
    assert_string_equal(json_string_value(json_object_get(
                            json_object_get(json_array_get(reqs, 1), "headers"), "User-Agent")),
                        UA);
    json_decref(reqs);
    assert_int_equal(col_fixture_count(&r->fx, "/api/v1/access_token"), 2);
    cursor = col_rig_redis(r, "GET %s", "t:col:cursor:rd");
    assert_non_null(cursor);
    assert_string_equal(cursor, "1790000420000");
    esc_free(cursor);
    log = col_rig_log(r);
    assert_non_null(strstr(log, "reddit token refused, getting a new one source=rd"));
    assert_null(strstr(log, "tokA"));
    assert_null(strstr(log, "tokB"));
    assert_null(strstr(log, "Y2lkOnNlYw"));
    esc_free(log);
    assert_int_equal(r->ins[0].stats.errors, 0);
}

static void
test_reddit_refuses_the_default_user_agent(void **state)
{
    struct col_rig *r = *state;

    assert_int_equal(col_rig_start(r, NULL), 0);
    assert_int_equal(col_rig_sources(r, "[{\"name\":\"rd\",\"type\":\"reddit\","
                                        "\"client_id\":\"cid\",\"client_secret_env\":\"X\","
                                        "\"subreddit\":\"rust\"}]"),
                     -1);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_reddit_token_paging_and_refresh, col_rig_setup,
                                        col_rig_teardown),
        cmocka_unit_test_setup_teardown(test_reddit_refuses_the_default_user_agent,
                                        col_rig_setup, col_rig_teardown),
    };

    col_net_global_init();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
