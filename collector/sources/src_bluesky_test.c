#define ESC_LOG_MODULE "test"
/* Component tests of the "bluesky" connector against the platform fixture
 * (tests/data/platforms/bluesky.json) and a private redis-server: an app-password session,
 * searchPosts paged with the cursor back to the backfill date (also sent as `since`), a post
 * repeated across pages sent once, an expired access token (400 ExpiredToken) answered by
 * refreshSession and the same page again, the next poll starting at the newest post taken,
 * facets as hashtags and mentions, plain text with emoji intact, no secret in the log. */
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
test_bluesky_session_paging_and_refresh(void **state)
{
    struct col_rig *r = *state;
    const struct esc_post *p;
    json_t *reqs;
    json_t *login;
    char *log;
    char id[96];
    int i;

    setenv("COL_TEST_BSKY_PASSWORD", "abcd-efgh-ijkl-mnop", 1);
    assert_int_equal(col_rig_start(r, "tests/data/platforms/bluesky.json"), 0);
    assert_int_equal(col_rig_sources(r, "[{\"name\":\"bsky\",\"type\":\"bluesky\","
                                        "\"service\":\"{base}\",\"identifier\":\"me.bsky.social\","
                                        "\"password_env\":\"COL_TEST_BSKY_PASSWORD\","
                                        "\"query\":\"rustlang\",\"since\":\"2026-09-21\","
                                        "\"interval_s\":1,\"page_delay_ms\":0}]"),
                     1);
    assert_int_equal(col_rig_run(r, 7, 10000), 7);
    col_rig_run(r, 8, 1500);
    assert_int_equal(r->n_posts, 7);
    for (i = 1; i <= 7; i++) {
        snprintf(id, sizeof(id), "at://did:plc:user%d/app.bsky.feed.post/3lgh%07d", i % 3, i);
        assert_int_equal(col_rig_count_id(r, id), 1);
    }
    p = &r->posts[col_rig_find(r, "at://did:plc:user1/app.bsky.feed.post/3lgh0000001")];
    assert_string_equal(p->platform, "bluesky");
    assert_string_equal(p->text, "Post 1: a\xc3\xb1o \xc3\xb1" "and\xc3\xba caf\xc3\xa9 "
                                 "\xf0\x9f\x8e\x89 #rustlang");
    assert_string_equal(p->author, "user1.bsky.social");
    assert_string_equal(p->author_name, "User 1");
    assert_string_equal(p->lang, "es");
    assert_string_equal(p->url, "https://bsky.app/profile/user1.bsky.social/post/3lgh0000001");
    assert_int_equal(p->created_at, (T0 + 60) * 1000);
    assert_int_equal(p->likes, 1);
    assert_int_equal(p->replies, 1);
    assert_int_equal(p->n_hashtags, 1);
    assert_string_equal(p->hashtags[0], "rustlang");
    assert_int_equal(p->n_mentions, 1);
    assert_string_equal(p->mentions[0], "did:plc:bob");

    reqs = col_fixture_requests(&r->fx);
    login = json_loads(json_string_value(json_object_get(json_array_get(reqs, 0), "body")), 0,
                       NULL);
    assert_non_null(login);
    assert_string_equal(json_string_value(json_object_get(login, "identifier")),
                        "me.bsky.social");
    assert_string_equal(json_string_value(json_object_get(login, "password")),
                        "abcd-efgh-ijkl-mnop");
    json_decref(login);
    json_decref(reqs);
    assert_int_equal(col_fixture_count(&r->fx, "/xrpc/com.atproto.server.createSession"), 1);
    assert_int_equal(col_fixture_count(&r->fx, "/xrpc/com.atproto.server.refreshSession"), 1);
    log = col_rig_log(r);
    assert_non_null(strstr(log, "bluesky access token expired, refreshing source=bsky"));
    assert_null(strstr(log, "abcd-efgh"));
    assert_null(strstr(log, "accA"));
    assert_null(strstr(log, "refA"));
    esc_free(log);
    assert_int_equal(r->ins[0].stats.errors, 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_bluesky_session_paging_and_refresh, col_rig_setup,
                                        col_rig_teardown),
    };

    col_net_global_init();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
