#define ESC_LOG_MODULE "test"
/* Unit tests of the aggregator's config mapping (config.c): defaults, the aggregator.spike
 * sub-section, per-topic overrides that inherit every key they leave out from aggregator.spike,
 * environment overrides, and errors that name the key path. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "escucha/esc_cfg.h"
#include "escucha/esc_log.h"

#include "config.h"

/* A deployment with one team and topics a, b, c; `agg` is the aggregator section and `spike_b`
 * topic b's "spike" member (both JSON text, may be empty). */
static struct esc_cfg *
s_load(const char *agg, const char *spike_b, struct esc_error *err)
{
    char json[2048];

    snprintf(json, sizeof(json),
             "{\"teams\": [{\"id\": \"gob\", \"name\": \"G\", \"topics\": ["
             "{\"id\": \"a\", \"name\": \"A\", \"keywords\": [\"x\"]},"
             "{\"id\": \"b\", \"name\": \"B\", \"keywords\": [\"y\"] %s%s},"
             "{\"id\": \"c\", \"name\": \"C\", \"keywords\": [\"z\"]}]}]"
             "%s%s}",
             spike_b[0] != '\0' ? ", \"spike\": " : "", spike_b,
             agg[0] != '\0' ? ", \"aggregator\": " : "", agg);
    return esc_cfg_load_string(json, "test.json", err);
}

static void
test_config_topic_override_inherits_global(void **state)
{
    struct esc_error err;
    struct esc_cfg *cfg = s_load("{\"flush_ms\": 200, \"comment\": \"demo\","
                                 " \"spike\": {\"window_min\": 10, \"factor\": 3.5}}",
                                 "{\"min_count\": 5, \"cooldown_min\": 0}", &err);
    struct agg_cfg ac;

    assert_non_null(cfg);
    assert_int_equal(agg_cfg_load(cfg, &ac, &err), ESC_OK);
    assert_int_equal(ac.flush_ms, 200);
    assert_int_equal(ac.grace_ms, 5000);
    assert_int_equal(ac.drain_quiet_ms, 300);
    assert_int_equal(ac.retention_minute_s, 172800);
    assert_int_equal(ac.retention_hour_s, 7776000);
    assert_int_equal(ac.retention_day_s, 94608000);
    assert_int_equal(ac.max_pending_posts, 1000000);
    assert_int_equal(ac.max_open_posts, 200000);
    assert_int_equal(ac.dedupe_window_s, 86400);
    assert_int_equal(ac.top_n, 200);
    assert_false(ac.connect_in);
    assert_int_equal(ac.lease_ms, 10000);
    assert_int_equal(ac.spike.window_min, 10);
    assert_int_equal(ac.spike.baseline_min, 1440);
    assert_true(ac.spike.factor == 3.5);
    assert_int_equal(ac.spike.min_count, 20);
    assert_int_equal(ac.spike.lateness_s, 120);
    assert_int_equal(ac.n_topics, 3);
    /* topic b: its own min_count and cooldown, everything else from aggregator.spike */
    assert_int_equal(ac.topic_spike[1].min_count, 5);
    assert_int_equal(ac.topic_spike[1].cooldown_min, 0);
    assert_int_equal(ac.topic_spike[1].window_min, 10);
    assert_true(ac.topic_spike[1].factor == 3.5);
    assert_int_equal(ac.topic_spike[1].baseline_min, 1440);
    /* topics a and c: exactly the global rule */
    assert_memory_equal(&ac.topic_spike[0], &ac.spike, sizeof(ac.spike));
    assert_memory_equal(&ac.topic_spike[2], &ac.spike, sizeof(ac.spike));
    assert_int_equal(agg_cfg_topic_index(cfg, esc_cfg_topic_find(cfg, "gob/c")), 2);
    agg_cfg_fini(&ac);
    esc_cfg_free(&cfg);
}

static void
test_config_defaults_without_section(void **state)
{
    struct esc_error err;
    struct esc_cfg *cfg = s_load("", "", &err);
    struct agg_cfg ac;

    assert_non_null(cfg);
    assert_int_equal(agg_cfg_load(cfg, &ac, &err), ESC_OK);
    assert_int_equal(ac.flush_ms, 1000);
    assert_int_equal(ac.spike.window_min, 30);
    assert_true(ac.spike.factor == 4.0);
    assert_int_equal(ac.spike.cooldown_min, 180);
    assert_memory_equal(&ac.topic_spike[1], &ac.spike, sizeof(ac.spike));
    agg_cfg_fini(&ac);
    esc_cfg_free(&cfg);
}

/* Loads and expects agg_cfg_load to fail with text containing `want`. */
static void
s_expect_error(const char *agg, const char *spike_b, const char *want)
{
    struct esc_error err;
    struct esc_cfg *cfg = s_load(agg, spike_b, &err);
    struct agg_cfg ac;

    assert_non_null(cfg);
    assert_int_equal(agg_cfg_load(cfg, &ac, &err), ESC_INVALID);
    if (strstr(err.text, want) == NULL) {
        fail_msg("error '%s' does not contain '%s'", err.text, want);
    }
    assert_string_equal(err.source, "test.json");
    agg_cfg_fini(&ac);
    esc_cfg_free(&cfg);
}

static void
test_config_errors_name_the_key(void **state)
{
    s_expect_error("{\"flush_ms\": 5}", "", "aggregator.flush_ms: 5 is out of range");
    s_expect_error("{\"bogus\": 1}", "", "aggregator.bogus: unknown key");
    s_expect_error("{\"spike\": {\"factor\": \"big\"}}", "",
                   "aggregator.spike.factor: expected a number");
    s_expect_error("{\"spike\": {\"windw_min\": 3}}", "", "aggregator.spike.windw_min: unknown");
    s_expect_error("", "{\"window_min\": 0}", "teams.0.topics.1.spike.window_min: 0 is out of");
    s_expect_error("", "{\"min\": 3}", "teams.0.topics.1.spike.min: unknown key");
}

static void
test_config_env_override_reaches_topics(void **state)
{
    struct esc_error err;
    struct esc_cfg *cfg = s_load("{\"spike\": {\"factor\": 3}}", "{\"min_count\": 7}", &err);
    struct agg_cfg ac;

    assert_non_null(cfg);
    setenv("ESC_AGGREGATOR_SPIKE_FACTOR", "6.5", 1);
    setenv("ESC_TEAMS_0_TOPICS_2_SPIKE_WINDOW_MIN", "15", 1);
    assert_int_equal(agg_cfg_load(cfg, &ac, &err), ESC_OK);
    unsetenv("ESC_AGGREGATOR_SPIKE_FACTOR");
    unsetenv("ESC_TEAMS_0_TOPICS_2_SPIKE_WINDOW_MIN");
    assert_true(ac.spike.factor == 6.5);
    assert_true(ac.topic_spike[1].factor == 6.5);
    assert_int_equal(ac.topic_spike[1].min_count, 7);
    assert_int_equal(ac.topic_spike[2].window_min, 15);
    assert_int_equal(ac.topic_spike[0].window_min, 30);
    agg_cfg_fini(&ac);
    esc_cfg_free(&cfg);
}

/* The spike keys of issue #5: built-in defaults, a topic overriding the method (a string key
 * inherits like the numbers), and values that are not allowed. */
static void
test_config_spike_method_and_thresholds(void **state)
{
    struct esc_error err;
    struct esc_cfg *cfg = s_load("{\"spike\": {\"method\": \"zscore\", \"p_threshold\": 1e-6}}",
                                 "{\"method\": \"poisson\", \"end_minutes\": 10}", &err);
    struct agg_cfg ac;
    struct agg_spike_cfg d;

    agg_cfg_spike_defaults(&d);
    assert_string_equal(d.method, "poisson");
    assert_true(d.p_threshold == 1e-4);
    assert_true(d.z_threshold == 5.0);
    assert_true(d.max_dispersion == 5.0);
    assert_int_equal(d.end_minutes, 30);
    assert_true(d.end_z == 2.0);
    assert_int_equal(d.window_min, 30);
    assert_non_null(cfg);
    assert_int_equal(agg_cfg_load(cfg, &ac, &err), ESC_OK);
    assert_string_equal(ac.spike.method, "zscore");
    assert_true(ac.spike.p_threshold == 1e-6);
    assert_string_equal(ac.topic_spike[0].method, "zscore");
    assert_true(ac.topic_spike[0].p_threshold == 1e-6);
    assert_string_equal(ac.topic_spike[1].method, "poisson");
    assert_true(ac.topic_spike[1].p_threshold == 1e-6);
    assert_int_equal(ac.topic_spike[1].end_minutes, 10);
    assert_int_equal(ac.topic_spike[2].end_minutes, 30);
    agg_cfg_fini(&ac);
    esc_cfg_free(&cfg);

    s_expect_error("{\"spike\": {\"method\": \"magic\"}}", "",
                   "aggregator.spike.method: \"magic\" is not poisson or zscore");
    s_expect_error("", "{\"method\": \"Poisson\"}", "teams.0.topics.1.spike.method: ");
    s_expect_error("{\"spike\": {\"p_threshold\": 0.9}}", "", "aggregator.spike.p_threshold: ");
    s_expect_error("", "{\"end_minutes\": 0}", "teams.0.topics.1.spike.end_minutes: 0 is out");
}

/* The per-post topic lookup agrees with esc_cfg_topic_find + agg_cfg_topic_index for every
 * configured key, across teams, and says -1 for keys the config does not have. */
static void
test_config_topic_lookup(void **state)
{
    struct esc_error err;
    char json[8192];
    size_t len = 0;
    struct esc_cfg *cfg;
    struct agg_cfg ac;
    int team;
    int topic;

    (void)state;
    len += (size_t)snprintf(json + len, sizeof(json) - len, "{\"teams\": [");
    for (team = 0; team < 4; team++) {
        len += (size_t)snprintf(json + len, sizeof(json) - len,
                                "%s{\"id\": \"t%d\", \"name\": \"T\", \"topics\": [",
                                team > 0 ? "," : "", team);
        for (topic = 0; topic < 25; topic++) {
            len += (size_t)snprintf(json + len, sizeof(json) - len,
                                    "%s{\"id\": \"k%d\", \"name\": \"K\", "
                                    "\"keywords\": [\"w%d\"]}",
                                    topic > 0 ? "," : "", topic, topic);
        }
        len += (size_t)snprintf(json + len, sizeof(json) - len, "]}");
    }
    snprintf(json + len, sizeof(json) - len, "]}");
    cfg = esc_cfg_load_string(json, "test.json", &err);
    assert_non_null(cfg);
    assert_int_equal(agg_cfg_load(cfg, &ac, &err), ESC_OK);
    assert_int_equal(ac.n_topics, 100);
    for (team = 0; team < 4; team++) {
        for (topic = 0; topic < 25; topic++) {
            char key[32];
            const struct esc_cfg_topic *t;

            snprintf(key, sizeof(key), "t%d/k%d", team, topic);
            t = esc_cfg_topic_find(cfg, key);
            assert_non_null(t);
            assert_int_equal(agg_cfg_topic_lookup(&ac, key), (long)agg_cfg_topic_index(cfg, t));
        }
    }
    assert_int_equal(agg_cfg_topic_lookup(&ac, "t0/k25"), -1);
    assert_int_equal(agg_cfg_topic_lookup(&ac, "t4/k0"), -1);
    assert_int_equal(agg_cfg_topic_lookup(&ac, ""), -1);
    agg_cfg_fini(&ac);
    esc_cfg_free(&cfg);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_topic_override_inherits_global),
        cmocka_unit_test(test_config_defaults_without_section),
        cmocka_unit_test(test_config_errors_name_the_key),
        cmocka_unit_test(test_config_env_override_reaches_topics),
        cmocka_unit_test(test_config_spike_method_and_thresholds),
        cmocka_unit_test(test_config_topic_lookup),
    };

    esc_log_init("test", ESC_LOG_WARN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
