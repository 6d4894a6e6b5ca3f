#define ESC_LOG_MODULE "catchup_test"
/* Tests of the alert catch-up (issue #9): the parser of a team's alert list entry and the
 * in-memory set (unit), and the real escucha-notifier with a private redis-server and
 * tests/support/webhook_sink.py (component): an alert that only reached the team's list
 * <prefix>:alerts:{<team>} (the bus copy was lost) is delivered exactly once, also across a
 * restart; malformed entries, an alert of another team in the list, a list of a team the
 * notifier does not serve and an alert older than the window are never delivered, and the
 * malformed entries are logged once each. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "alerttest.h"
#include "catchup.h"
#include "escucha/esc_mem.h"
#include "escucha/esc_msg.h"
#include "escucha/esc_util.h"

#define S_DAY_MS 86400000LL

/* The JSON the aggregator writes to the team's list for alert gob/<topic>/<n> (or of another
 * team) raised at ts. Caller owns. */
static char *
s_alert_json(const char *team, const char *topic, int n, const char *kind, int64_t ts)
{
    struct esc_alert a;
    char id[128];
    char *js;

    esc_alert_init(&a);
    snprintf(id, sizeof(id), "%s/%s/%d", team, topic, n);
    a.id = esc_strdup(id);
    a.team = esc_strdup(team);
    a.topic = esc_strdup(topic);
    a.topic_name = esc_strdup("Congreso");
    a.kind = esc_strdup(kind);
    a.window_start = 1700000000000LL + n * 60000LL;
    a.window_end = a.window_start + 300000;
    a.observed = 42;
    a.expected = 3.5;
    a.score = 6.25;
    a.ts = ts;
    esc_strlist_push(&a.samples, &a.n_samples, "el congreso vota hoy");
    esc_strlist_push(&a.sample_authors, &a.n_sample_authors, "ana");
    esc_strlist_push(&a.sample_urls, &a.n_sample_urls, "https://example.org/1");
    esc_strlist_push(&a.terms, &a.n_terms, "vota");
    a.query = esc_strdup("congreso");
    js = esc_alert_to_json(&a);
    esc_alert_fini(&a);
    return js;
}

/* ---- unit ------------------------------------------------------------------------------- */

static void
test_catchup_parse_roundtrip(void **state)
{
    char *js = s_alert_json("gob", "congreso", 3, "spike", 1700000500000LL);
    struct esc_alert a;
    struct esc_error err;
    char *again;

    (void)state;
    memset(&err, 0, sizeof(err));
    assert_int_equal(ntf_catchup_parse(js, strlen(js), "gob", 1700000000000LL, &a, &err),
                     NTF_CATCHUP_ALERT);
    assert_string_equal(a.id, "gob/congreso/3");
    assert_string_equal(a.kind, "spike");
    assert_int_equal(a.observed, 42);
    assert_true(a.score == 6.25);
    assert_int_equal(a.n_samples, 1);
    /* what the notifier delivers is what the aggregator wrote */
    again = esc_alert_to_json(&a);
    assert_string_equal(again, js);
    esc_free(again);
    esc_alert_fini(&a);
    /* raised before the window: not taken, not an error */
    assert_int_equal(ntf_catchup_parse(js, strlen(js), "gob", 1700000600000LL, &a, &err),
                     NTF_CATCHUP_OLD);
    esc_alert_fini(&a);
    esc_free(js);
}

static void
test_catchup_parse_rejects_bad_entries(void **state)
{
    static const struct {
        const char *text;
        const char *why;
    } bad[] = {
        { "not json", "not JSON" },
        { "[1,2]", "not a JSON object" },
        { "{\"team\":\"gob\",\"topic\":\"c\",\"kind\":\"spike\",\"ts\":1,\"window_start\":1,"
          "\"window_end\":2}", "missing or empty id" },
        { "{\"id\":\"gob/c/1\",\"team\":\"gob\",\"topic\":\"c\",\"kind\":\"spike\",\"ts\":\"x\","
          "\"window_start\":1,\"window_end\":2}", "ts is not an integer" },
        { "{\"id\":\"otra/c/1\",\"team\":\"otra\",\"topic\":\"c\",\"kind\":\"spike\",\"ts\":1,"
          "\"window_start\":1,\"window_end\":2}", "alert of another team in this team's list" },
        { "{\"id\":\"gob/c/1\",\"team\":\"gob\",\"topic\":\"c\",\"kind\":\"boom\",\"ts\":1,"
          "\"window_start\":1,\"window_end\":2}", "alert of an unknown kind" },
        { "{\"id\":\"gob/c/1\",\"team\":\"gob\",\"topic\":\"c\",\"kind\":\"spike\",\"ts\":1,"
          "\"window_start\":1,\"window_end\":2,\"score\":null}", "score is not a number" },
    };
    struct esc_alert a;
    struct esc_error err;
    size_t i;

    (void)state;
    for (i = 0; i < ESC_ARRAY_LEN(bad); i++) {
        memset(&err, 0, sizeof(err));
        assert_int_equal(ntf_catchup_parse(bad[i].text, strlen(bad[i].text), "gob", 0, &a, &err),
                         NTF_CATCHUP_BAD);
        assert_non_null(strstr(err.text, bad[i].why));
        assert_null(a.id);
        esc_alert_fini(&a);
    }
}

static void
test_catchup_seen_forgets_oldest(void **state)
{
    ntf_seen_t *s = ntf_seen_new(2);
    char k1[32];
    char k2[32];

    (void)state;
    ntf_seen_add(s, "a");
    ntf_seen_add(s, "b");
    ntf_seen_add(s, "a"); /* already there: does not push "b" out */
    assert_true(ntf_seen_has(s, "a") && ntf_seen_has(s, "b"));
    ntf_seen_add(s, "c");
    assert_false(ntf_seen_has(s, "a"));
    assert_true(ntf_seen_has(s, "b") && ntf_seen_has(s, "c"));
    ntf_catchup_bad_key("x", 1, k1);
    ntf_catchup_bad_key("y", 1, k2);
    assert_string_not_equal(k1, k2);
    ntf_seen_destroy(&s);
    ntf_seen_destroy(&s);
    assert_null(s);
}

/* ---- component -------------------------------------------------------------------------- */

static int
s_setup(void **state)
{
    struct ntf_at_env *e = esc_calloc(1, sizeof(*e));

    if (ntf_at_setup(e) != 0) {
        esc_free(e);
        return -1;
    }
    *state = e;
    return 0;
}

static int
s_teardown(void **state)
{
    struct ntf_at_env *e = *state;

    ntf_at_teardown(e);
    esc_free(e);
    return 0;
}

static void
s_lpush(struct ntf_at_env *e, const char *key, const char *value)
{
    struct esc_kv_val r;

    assert_int_equal(esc_kv_cmd(e->kv, &r, "LPUSH %s %s", key, value), ESC_OK);
    assert_int_equal(r.type, ESC_KV_INT);
    esc_kv_val_fini(&r);
}

static void
s_lpush_alert(struct ntf_at_env *e, const char *key, const char *team, int n, int64_t ts)
{
    char *js = s_alert_json(team, "congreso", n, "spike", ts);

    s_lpush(e, key, js);
    esc_free(js);
}

static void
s_cfg(struct ntf_at_env *e, const char *extra)
{
    char hooks[256];

    snprintf(hooks, sizeof(hooks),
             "{ \"url\": \"http://127.0.0.1:%d/hooks/gob\", \"cooldown_min\": 0 }",
             e->hook_port);
    ntf_at_write_cfg(e, 0, hooks, extra);
}

static void
test_catchup_delivers_list_alert_once(void **state)
{
    struct ntf_at_env *e = *state;
    int64_t now = esc_now_ms();
    json_t *body;

    ntf_at_sink_start(e, 0, 503);
    /* the team's list: a lost alert, an old one, malformed entries and a foreign alert */
    s_lpush_alert(e, "t:alerts:{gob}", "gob", 0, now - 2 * S_DAY_MS);
    s_lpush(e, "t:alerts:{gob}", "not json");
    s_lpush(e, "t:alerts:{gob}", "{\"id\":\"gob/congreso/9\"}");
    s_lpush_alert(e, "t:alerts:{gob}", "otra", 7, now);
    s_lpush_alert(e, "t:alerts:{gob}", "gob", 1, now - 1000);
    s_lpush_alert(e, "t:alerts:{gob}", "gob", 1, now - 1000); /* pushed twice (a retry) */
    /* a team this notifier does not serve */
    s_lpush_alert(e, "t:alerts:{otra}", "otra", 2, now);
    s_cfg(e, ", \"catchup_ms\": 200");
    ntf_at_start(e, 0);
    ntf_at_wait_requests(e, 1);
    body = ntf_at_request_body(e, 0);
    assert_string_equal(json_string_value(json_object_get(body, "id")), "gob/congreso/1");
    assert_string_equal(json_string_value(json_object_get(body, "team")), "gob");
    assert_int_equal(json_integer_value(json_object_get(body, "observed")), 42);
    json_decref(body);
    ntf_at_wait_log(e, 0, "skipped malformed alert list entry", 3);
    usleep(1200000); /* several catch-ups */
    ntf_at_wait_requests(e, 1);
    assert_int_equal(ntf_at_log_count(e, 0, "skipped malformed alert list entry"), 3);
    assert_int_equal(ntf_at_log_count(e, 0, "reason=\"alert of another team"), 1);
    assert_int_equal(ntf_at_log_count(e, 0, "key=t:alerts:{gob} index=4 reason=\"not JSON"), 1);
    assert_int_equal(ntf_at_log_count(e, 0, "alert recovered from the team's list"), 1);
    assert_int_equal(ntf_at_stop(e, 0, SIGTERM), 0);
    assert_int_equal(ntf_at_log_count(e, 0, "recovered=1 queued=0 undelivered=0"), 1);
    assert_int_equal(ntf_at_redis_int(e, "HGET t:ntf:{q}:stats %s", "enqueued"), 1);

    /* a restart finds it in the list again: known, not delivered again */
    ntf_at_start(e, 0);
    usleep(800000);
    ntf_at_wait_requests(e, 1);
    assert_int_equal(ntf_at_stop(e, 0, SIGKILL), 128 + SIGKILL);
    ntf_at_start(e, 0);
    usleep(800000);
    ntf_at_wait_requests(e, 1);
    assert_int_equal(ntf_at_stop(e, 0, SIGTERM), 0);
    assert_int_equal(ntf_at_log_count(e, 0, "recovered=0 queued=0"), 1);
    assert_int_equal(ntf_at_log_count(e, 0, "alert recovered from the team's list"), 1);
    assert_int_equal(ntf_at_redis_int(e, "HGET t:ntf:{q}:stats %s", "enqueued"), 1);
    assert_int_equal(ntf_at_redis_int(e, "HGET t:ntf:{q}:stats %s", "delivered"), 1);
}

static void
test_catchup_off(void **state)
{
    struct ntf_at_env *e = *state;

    ntf_at_sink_start(e, 0, 503);
    s_lpush_alert(e, "t:alerts:{gob}", "gob", 1, esc_now_ms());
    s_cfg(e, ", \"catchup_ms\": 0");
    ntf_at_start(e, 0);
    usleep(600000);
    assert_int_equal(ntf_test_count_lines(e->req_path), 0);
    /* a bus alert still goes through */
    ntf_at_send(e, 0, "congreso", 5, "spike");
    ntf_at_wait_requests(e, 1);
    assert_int_equal(ntf_at_stop(e, 0, SIGTERM), 0);
    assert_int_equal(ntf_at_log_count(e, 0, "recovered=0 "), 1);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_catchup_parse_roundtrip),
        cmocka_unit_test(test_catchup_parse_rejects_bad_entries),
        cmocka_unit_test(test_catchup_seen_forgets_oldest),
        cmocka_unit_test_setup_teardown(test_catchup_delivers_list_alert_once, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_catchup_off, s_setup, s_teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
