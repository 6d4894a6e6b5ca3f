#define ESC_LOG_MODULE "test"
/* Component tests of the "rss" connector against the platform fixture
 * (tests/data/platforms/{rss,atom}_feed.json) and a private redis-server: RSS 2.0 items with
 * guid / link ids, HTML descriptions to plain text, RFC 822 dates, categories and the channel
 * language; conditional GET (If-None-Match / If-Modified-Since, 304 costs nothing), re-sent items
 * sent once, validators kept in Redis across a restart; Atom entries (alternate link, html
 * content, published, author), "since", and a malformed document and an HTML page reported
 * and survived. */
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

static struct col_rig *
s_rig(void **state, const char *scenario)
{
    struct col_rig *r = *state;

    assert_int_equal(col_rig_start(r, scenario), 0);
    return r;
}

static const char *
s_header(json_t *reqs, size_t i, const char *name)
{
    return json_string_value(json_object_get(
        json_object_get(json_array_get(reqs, i), "headers"), name));
}

static void
test_rss_items_conditional_get_and_restart(void **state)
{
    struct col_rig *r = s_rig(state, "tests/data/platforms/rss_feed.json");
    const struct esc_post *p;
    json_t *reqs;
    char *cursor;
    char *log;
    int k;

    assert_int_equal(col_rig_sources(r, "[{\"name\":\"blog\",\"type\":\"rss\","
                                        "\"url\":\"{base}/feed.xml\",\"interval_s\":1}]"),
                     1);
    assert_int_equal(col_rig_run(r, 3, 10000), 3);
    /* oldest first */
    assert_string_equal(r->posts[0].id, "item-1");
    assert_string_equal(r->posts[1].id, "https://blog.example/p/2");
    assert_string_equal(r->posts[2].id, "item-3");
    p = &r->posts[0];
    assert_string_equal(p->platform, "rss");
    assert_string_equal(p->text, "Post 1: a\xc3\xb1o \xc3\xb1" "and\xc3\xba caf\xc3\xa9 "
                                 "\xf0\x9f\x8e\x89 #rustlang\n\nResumen 1 & m\xc3\xa1s");
    assert_string_equal(p->url, "https://blog.example/p/1");
    assert_string_equal(p->author, "Autora 1");
    assert_string_equal(p->lang, "es");
    assert_int_equal(p->created_at, (T0 + 60) * 1000);
    assert_int_equal(p->n_hashtags, 2);
    assert_string_equal(p->hashtags[0], "rustlang");
    assert_string_equal(p->hashtags[1], "noticias");

    /* two 304s, then a changed feed that re-sends items 2 and 3 next to the new item 4 */
    assert_int_equal(col_rig_run(r, 4, 10000), 4);
    assert_string_equal(r->posts[3].id, "https://blog.example/p/4");
    col_rig_run(r, 5, 1500);
    assert_int_equal(r->n_posts, 4);
    reqs = col_fixture_requests(&r->fx);
    assert_true(json_array_size(reqs) >= 5);
    assert_null(s_header(reqs, 0, "If-None-Match"));
    assert_string_equal(s_header(reqs, 1, "If-None-Match"), "\"v1\"");
    assert_string_equal(s_header(reqs, 1, "If-Modified-Since"), "Mon, 21 Sep 2026 15:00:00 GMT");
    assert_string_equal(s_header(reqs, 4, "If-None-Match"), "\"v2\"");
    json_decref(reqs);
    assert_int_equal(r->ins[0].stats.errors, 0);
    cursor = col_rig_redis(r, "GET %s", "t:col:cursor:blog");
    assert_non_null(cursor);
    assert_non_null(strstr(cursor, "\"etag\":\"\\\"v2\\\"\""));
    assert_non_null(strstr(cursor, "16:00:00 GMT"));
    esc_free(cursor);

    /* A restart sends the stored validators at once: 304, nothing new, nothing twice. */
    col_rig_restart(r);
    k = (int)col_fixture_count(&r->fx, "/feed.xml");
    col_rig_run(r, 5, 800);
    assert_int_equal(r->n_posts, 4);
    reqs = col_fixture_requests(&r->fx);
    assert_true((int)json_array_size(reqs) > k);
    assert_string_equal(s_header(reqs, (size_t)k, "If-None-Match"), "\"v2\"");
    json_decref(reqs);
    log = col_rig_log(r);
    assert_non_null(strstr(log, "poll done source=blog requests=1 posts=1 duplicates=2"));
    assert_non_null(strstr(log, "resuming from stored cursor source=blog"));
    esc_free(log);
}

static void
test_rss_atom_entries_since_and_bad_documents(void **state)
{
    struct col_rig *r = s_rig(state, "tests/data/platforms/atom_feed.json");
    const struct esc_post *p;
    char *log;

    assert_int_equal(col_rig_sources(r, "[{\"name\":\"atom\",\"type\":\"rss\","
                                        "\"url\":\"{base}/atom\",\"backoff_ms\":50,"
                                        "\"since\":\"2026-09-21T14:14:50Z\"}]"),
                     1);
    assert_int_equal(col_rig_run(r, 2, 10000), 2);
    col_rig_run(r, 3, 500);
    assert_int_equal(r->n_posts, 2); /* item 1 is older than since */
    p = &r->posts[0];
    assert_string_equal(p->id, "tag:blog.example,2026:post-2");
    assert_string_equal(p->text, "Post 2: a\xc3\xb1o \xc3\xb1" "and\xc3\xba caf\xc3\xa9 "
                                 "\xf0\x9f\x8e\x89 #rustlang\n\nCuerpo 2\nl\xc3\xad" "nea");
    assert_string_equal(p->url, "https://blog.example/a/2");
    assert_string_equal(p->author, "Autor 2");
    assert_string_equal(p->lang, "es");
    assert_int_equal(p->created_at, (T0 + 120) * 1000);
    assert_int_equal(p->n_hashtags, 1);
    assert_string_equal(r->posts[1].id, "tag:blog.example,2026:post-3");
    log = col_rig_log(r);
    assert_non_null(strstr(log, "bad response source=atom reason=\"malformed XML: "));
    assert_non_null(strstr(log, "bad response source=atom reason=\"not an RSS or Atom feed "
                                "(root element <html>)\""));
    esc_free(log);
    assert_int_equal(r->ins[0].stats.errors, 2);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_rss_items_conditional_get_and_restart,
                                        col_rig_setup, col_rig_teardown),
        cmocka_unit_test_setup_teardown(test_rss_atom_entries_since_and_bad_documents,
                                        col_rig_setup, col_rig_teardown),
    };

    col_net_global_init();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
