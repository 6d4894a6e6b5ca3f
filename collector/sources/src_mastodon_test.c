#define ESC_LOG_MODULE "test"
/* Component tests of the "mastodon" connector against the platform fixture (real HTTP over
 * loopback, tests/data/platforms/mastodon_*.json) and a private redis-server: min_id paging
 * from a backfill date, following the Link header, a post repeated across pages sent once, HTML
 * to plain text with non-ASCII text and emoji intact, the token sent but never logged, the
 * cursor in Redis and a restart that resumes without loss or duplicates; 429 with Retry-After,
 * 503 then recovery, malformed / truncated / HTML / wrong-shape bodies reported and survived;
 * two instances: a slow one does not stall the other, and posts are deduplicated by uri.
 * Streaming is tested in src_mastodon_stream_test.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "api.h"
#include "testing.h"

#include "escucha/esc_mem.h"
#include "escucha/esc_metrics.h"
#include "escucha/esc_util.h"

#define T0 INT64_C(1790000000) /* the fixture's time of item 0, Unix s */
#define ID(i) "11390000000000000" #i

static struct col_rig *
s_rig(void **state, const char *scenario)
{
    struct col_rig *r = *state;

    assert_int_equal(col_rig_start(r, scenario), 0);
    return r;
}

static const char *const s_paging_src =
    "[{\"name\":\"masto\",\"type\":\"mastodon\",\"instance\":\"{base}\",\"tag\":\"rustlang,rust\","
    "\"limit\":3,\"since\":\"2026-09-21\",\"token_env\":\"COL_TEST_MASTO_TOKEN\","
    "\"interval_s\":1,\"page_delay_ms\":0}]";

static void
test_mastodon_paging_text_and_cursor(void **state)
{
    struct col_rig *r = s_rig(state, "tests/data/platforms/mastodon_paging.json");
    const struct esc_post *p;
    json_t *reqs;
    char *log;
    char *cursor;
    size_t i;
    char id[32];

    setenv("COL_TEST_MASTO_TOKEN", "s3cr3t-t0ken", 1);
    assert_int_equal(col_rig_sources(r, s_paging_src), 1);
    assert_int_equal(col_rig_run(r, 7, 10000), 7);
    /* A little longer: the fourth page is empty and nothing else may come. */
    col_rig_run(r, 8, 1500);
    assert_int_equal(r->n_posts, 7);
    for (i = 1; i <= 7; i++) {
        snprintf(id, sizeof(id), "%lld", 113900000000000000LL + (long long)i);
        assert_int_equal(col_rig_count_id(r, id), 1);
        /* oldest first: each page is sent in time order */
        assert_int_equal(col_rig_find(r, id), (int)i - 1);
    }
    p = &r->posts[0];
    assert_string_equal(p->platform, "mastodon");
    assert_string_equal(p->source, "masto");
    assert_string_equal(p->text, "Post 1: a\xc3\xb1o & \xc3\xb1" "and\xc3\xba caf\xc3\xa9 "
                                 "\xf0\x9f\x8e\x89 #rustlang\n\nsecond paragraph\nline two <b>");
    assert_string_equal(p->author, "@u1@remote.example");
    assert_string_equal(p->author_name, "Usuaria 1");
    assert_int_equal(p->followers, 101);
    assert_string_equal(p->lang, "es");
    assert_string_equal(p->url, "https://remote.example/@u1/" ID(1));
    assert_int_equal(p->created_at, (T0 + 60) * 1000);
    assert_int_equal(p->likes, 1);
    assert_int_equal(p->reposts, 1);
    assert_int_equal(p->replies, 1);
    assert_int_equal(p->n_hashtags, 1);
    assert_string_equal(p->hashtags[0], "rustlang");
    assert_int_equal(p->n_mentions, 1);
    assert_string_equal(p->mentions[0], "bob@mastodon.example");
    /* a local account gets the instance's host */
    assert_string_equal(r->posts[1].author, "@u2@127.0.0.1");

    reqs = col_fixture_requests(&r->fx);
    assert_true(json_array_size(reqs) >= 4);
    assert_string_equal(col_fixture_query(reqs, 0, "min_id"), "117306084556800000");
    assert_string_equal(col_fixture_query(reqs, 1, "min_id"), ID(3));
    assert_string_equal(col_fixture_query(reqs, 2, "min_id"), ID(6));
    assert_string_equal(col_fixture_query(reqs, 3, "min_id"), ID(7));
    assert_string_equal(json_string_value(json_object_get(
                            json_object_get(json_array_get(reqs, 0), "headers"), "User-Agent")),
                        COL_API_UA_DEFAULT);
    json_decref(reqs);

    cursor = col_rig_redis(r, "GET %s", "t:col:cursor:masto");
    assert_non_null(cursor);
    assert_string_equal(cursor, ID(7));
    esc_free(cursor);
    log = col_rig_log(r);
    assert_null(strstr(log, "s3cr3t"));
    assert_non_null(strstr(log, "poll done source=masto"));
    assert_non_null(strstr(log, "duplicates=1"));
    esc_free(log);
}

/* The host stops in the middle of a page; a restarted collector (fresh memory, same Redis)
 * asks the same page again and sends only what was not sent. */
static void
test_mastodon_restart_resumes_without_loss_or_duplicates(void **state)
{
    struct col_rig *r = s_rig(state, "tests/data/platforms/mastodon_paging.json");
    json_t *reqs;
    size_t n;
    size_t i;
    char id[32];

    setenv("COL_TEST_MASTO_TOKEN", "s3cr3t-t0ken", 1);
    r->close_after = 2;
    assert_int_equal(col_rig_sources(r, s_paging_src), 1);
    assert_int_equal(col_rig_run(r, 2, 10000), 2);
    col_rig_run(r, 3, 300);
    assert_int_equal(r->n_posts, 2);
    r->close_after = 0;
    col_rig_restart(r);
    assert_int_equal(col_rig_run(r, 7, 10000), 7);
    col_rig_run(r, 8, 1500);
    assert_int_equal(r->n_posts, 7);
    for (i = 1; i <= 7; i++) {
        snprintf(id, sizeof(id), "%lld", 113900000000000000LL + (long long)i);
        assert_int_equal(col_rig_count_id(r, id), 1);
    }
    /* After the restart the first page was asked again (no cursor had been stored). */
    reqs = col_fixture_requests(&r->fx);
    n = json_array_size(reqs);
    assert_true(n >= 5);
    assert_string_equal(col_fixture_query(reqs, 1, "min_id"), "117306084556800000");
    json_decref(reqs);

    /* Second restart: now the cursor is stored and the first request uses it. */
    col_rig_restart(r);
    col_rig_run(r, 8, 1200);
    assert_int_equal(r->n_posts, 7);
    reqs = col_fixture_requests(&r->fx);
    assert_string_equal(col_fixture_query(reqs, n, "min_id"), ID(7));
    json_decref(reqs);
}

static void
test_mastodon_429_waits_for_retry_after(void **state)
{
    struct col_rig *r = s_rig(state, "tests/data/platforms/mastodon_429.json");
    json_t *reqs;
    double t0;
    double t1;
    char *log;

    assert_int_equal(col_rig_sources(r, "[{\"name\":\"pub\",\"type\":\"mastodon\","
                                        "\"instance\":\"{base}/\",\"timeline\":\"local\","
                                        "\"backoff_ms\":50,\"rate_backoff_ms\":50}]"),
                     1);
    assert_int_equal(col_rig_run(r, 2, 10000), 2);
    reqs = col_fixture_requests(&r->fx);
    assert_true(json_array_size(reqs) >= 2);
    t0 = json_real_value(json_object_get(json_array_get(reqs, 0), "t"));
    t1 = json_real_value(json_object_get(json_array_get(reqs, 1), "t"));
    assert_true(t1 - t0 >= 2.0);
    assert_true(t1 - t0 < 4.0);
    json_decref(reqs);
    log = col_rig_log(r);
    assert_non_null(strstr(log, "rate limited source=pub reason=\"HTTP 429 Too Many Requests\""
                                " status=429 attempt=1 wait_ms=2"));
    esc_free(log);
    assert_int_equal(r->ins[0].stats.errors, 1);
}

static void
test_mastodon_5xx_then_recovery(void **state)
{
    struct col_rig *r = s_rig(state, "tests/data/platforms/mastodon_5xx.json");
    char *metrics;
    char *log;
    char *errors;

    assert_int_equal(col_rig_sources(r, "[{\"name\":\"m5\",\"type\":\"mastodon\","
                                        "\"instance\":\"{base}\",\"tag\":\"rustlang\","
                                        "\"backoff_ms\":100}]"),
                     1);
    assert_int_equal(col_rig_run(r, 2, 10000), 2);
    log = col_rig_log(r);
    assert_non_null(strstr(log, "request failed source=m5 reason=\"HTTP 503 from the server\" "
                                "status=503 attempt=1"));
    assert_non_null(strstr(log, "attempt=2"));
    assert_non_null(strstr(log, "source recovered source=m5 after_failures=2"));
    esc_free(log);
    errors = col_rig_redis(r, "HGET %s errors", "t:col:stats:m5");
    assert_non_null(errors);
    assert_string_equal(errors, "2");
    esc_free(errors);
    assert_int_equal(col_fixture_count(&r->fx, "/api/v1/timelines/tag/rustlang"), 3);
    metrics = esc_metrics_render();
    assert_non_null(strstr(metrics, "escucha_collector_errors_total{source=\"m5\","
                                    "type=\"mastodon\"} 2"));
    assert_non_null(strstr(metrics, "escucha_collector_requests_total{source=\"m5\","
                                    "type=\"mastodon\"} 3"));
    esc_free(metrics);
}

static void
test_mastodon_bad_bodies_are_reported_and_survived(void **state)
{
    struct col_rig *r = s_rig(state, "tests/data/platforms/mastodon_bad.json");
    char *log;

    assert_int_equal(col_rig_sources(r, "[{\"name\":\"bad\",\"type\":\"mastodon\","
                                        "\"instance\":\"{base}\",\"tag\":\"rustlang\","
                                        "\"backoff_ms\":50,\"interval_s\":1}]"),
                     1);
    assert_int_equal(col_rig_run(r, 4, 15000), 4);
    assert_string_equal(r->posts[0].id, "113900000000000009");
    assert_string_equal(r->posts[0].text, "kept");
    assert_int_equal(col_rig_count_id(r, ID(1)), 1);
    assert_int_equal(col_rig_count_id(r, ID(3)), 1);
    log = col_rig_log(r);
    assert_non_null(strstr(log, "bad response source=bad reason=\"malformed JSON: "));
    assert_non_null(strstr(log, "request failed source=bad reason="));
    assert_non_null(strstr(log, "bad response source=bad reason=\"wrong content type "
                                "'text/html', expected JSON\""));
    assert_non_null(strstr(log, "bad response source=bad reason=\"expected a JSON array of "
                                "statuses\""));
    assert_non_null(strstr(log, "skipped bad status source=bad index=0 reason=\"status without "
                                "id or uri\""));
    esc_free(log);
    assert_int_equal(r->ins[0].stats.errors, 4);
    assert_int_equal(r->ins[0].stats.skipped, 1);
}

static void
test_mastodon_slow_instance_does_not_stall_and_uri_dedupes(void **state)
{
    struct col_rig *r = s_rig(state, "tests/data/platforms/mastodon_two.json");
    int64_t t0;

    assert_int_equal(col_rig_sources(r, "[{\"name\":\"fast\",\"type\":\"mastodon\","
                                        "\"instance\":\"{base}/one\",\"tag\":\"rustlang\"},"
                                        "{\"name\":\"slow\",\"type\":\"mastodon\","
                                        "\"instance\":\"{base}/two\",\"tag\":\"rustlang\"}]"),
                     2);
    t0 = esc_mono_ms();
    assert_int_equal(col_rig_run(r, 3, 10000), 3);
    assert_true(esc_mono_ms() - t0 < 2000); /* while "slow" still waits for its answer */
    assert_int_equal(col_rig_run(r, 4, 10000), 4);
    col_rig_run(r, 5, 500);
    assert_int_equal(r->n_posts, 4);
    assert_string_equal(r->posts[3].id, ID(4));
    assert_string_equal(r->posts[3].source, "slow");
    assert_int_equal(col_rig_count_id(r, ID(1)), 1);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_mastodon_paging_text_and_cursor,
                                        col_rig_setup, col_rig_teardown),
        cmocka_unit_test_setup_teardown(test_mastodon_restart_resumes_without_loss_or_duplicates,
                                        col_rig_setup, col_rig_teardown),
        cmocka_unit_test_setup_teardown(test_mastodon_429_waits_for_retry_after,
                                        col_rig_setup, col_rig_teardown),
        cmocka_unit_test_setup_teardown(test_mastodon_5xx_then_recovery,
                                        col_rig_setup, col_rig_teardown),
        cmocka_unit_test_setup_teardown(test_mastodon_bad_bodies_are_reported_and_survived,
                                        col_rig_setup, col_rig_teardown),
        cmocka_unit_test_setup_teardown(test_mastodon_slow_instance_does_not_stall_and_uri_dedupes,
                                        col_rig_setup, col_rig_teardown),
    };

    col_net_global_init();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
