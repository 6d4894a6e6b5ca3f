#define ESC_LOG_MODULE "test"
/* Component tests of the "mastodon" connector's streaming mode against the platform fixture
 * (tests/data/platforms/mastodon_stream.json, server-sent events over chunked HTTP) and a
 * private redis-server: REST until caught up, then the hashtag stream; events split across
 * chunks, heartbeats, delete events and a repeated post; a clean end of stream and a stream
 * gone quiet (libcurl's low-speed limit) are both followed by a REST catch-up from the cursor
 * and a reconnect, so nothing is lost and nothing sent twice; streaming without a token is
 * refused at start-up. */
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

#define ID(i) "11390000000000000" #i

static struct col_rig *
s_rig(void **state, const char *scenario)
{
    struct col_rig *r = *state;

    assert_int_equal(col_rig_start(r, scenario), 0);
    return r;
}

/* Streaming: REST first, then the hashtag stream; events split across chunks, heartbeats,
 * delete events and a repeated post; a clean end of stream and a quiet stream (low-speed
 * timeout) are both followed by a REST catch-up from the cursor and a reconnect. */
static void
test_mastodon_streaming_with_catch_up(void **state)
{
    struct col_rig *r = s_rig(state, "tests/data/platforms/mastodon_stream.json");
    char *log;
    char *cursor;
    char id[32];
    size_t i;

    setenv("COL_TEST_MASTO_STREAM", "st-token", 1);
    assert_int_equal(col_rig_sources(r, "[{\"name\":\"live\",\"type\":\"mastodon\","
                                        "\"instance\":\"{base}\",\"tag\":\"rustlang\","
                                        "\"streaming\":true,\"stream_idle_s\":1,"
                                        "\"token_env\":\"COL_TEST_MASTO_STREAM\","
                                        "\"backoff_ms\":100,\"page_delay_ms\":0}]"),
                     1);
    assert_int_equal(col_rig_run(r, 7, 15000), 7);
    col_rig_run(r, 8, 800);
    assert_int_equal(r->n_posts, 7);
    for (i = 1; i <= 7; i++) {
        snprintf(id, sizeof(id), "%lld", 113900000000000000LL + (long long)i);
        assert_int_equal(col_rig_count_id(r, id), 1);
        assert_int_equal(col_rig_find(r, id), (int)i - 1); /* in order */
    }
    /* a streamed post is mapped like a polled one */
    assert_string_equal(r->posts[3].text, "Post 4: a\xc3\xb1o & \xc3\xb1" "and\xc3\xba "
                                          "caf\xc3\xa9 \xf0\x9f\x8e\x89 #rustlang\n\nsecond "
                                          "paragraph\nline two <b>");
    assert_string_equal(r->posts[3].author, "@u4@127.0.0.1");
    assert_true(col_fixture_count(&r->fx, "/api/v1/streaming/hashtag") >= 3);
    cursor = col_rig_redis(r, "GET %s", "t:col:cursor:live");
    assert_non_null(cursor);
    assert_string_equal(cursor, ID(7));
    esc_free(cursor);
    log = col_rig_log(r);
    assert_non_null(strstr(log, "stream opening source=live"));
    assert_non_null(strstr(log, "stream ended source=live events=3"));
    assert_non_null(strstr(log, "request failed source=live reason=\"timeout: "));
    assert_null(strstr(log, "st-token"));
    esc_free(log);
}

static void
test_mastodon_streaming_needs_a_token(void **state)
{
    struct col_rig *r = s_rig(state, NULL);

    assert_int_equal(col_rig_sources(r, "[{\"name\":\"live\",\"type\":\"mastodon\","
                                        "\"instance\":\"https://m.example\","
                                        "\"tag\":\"rustlang\",\"streaming\":true}]"),
                     -1);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_mastodon_streaming_with_catch_up, col_rig_setup,
                                        col_rig_teardown),
        cmocka_unit_test_setup_teardown(test_mastodon_streaming_needs_a_token, col_rig_setup,
                                        col_rig_teardown),
    };

    col_net_global_init();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
