#define ESC_LOG_MODULE "test"
/* Unit tests of the config loader: the demo config loads; every kind of mistake is reported
 * with its key path (and line for syntax errors); service sections map through tables with
 * defaults, bounds and environment overrides. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "escucha/esc_cfg.h"
#include "escucha/esc_log.h"
#include "escucha/esc_mem.h"

#define TEAM_OK                                                                                    \
    "\"teams\":[{\"id\":\"gob\",\"topics\":[{\"id\":\"congreso\",\"keywords\":[\"congreso\"]}]}]"

struct test_svc {
    char name[16];
    int64_t n;
    double f;
    bool on;
};

static const struct esc_cfg_entry test_map[] = {
    ESC_CFG_STR("name", "x", struct test_svc, name, "a name"),
    ESC_CFG_INT("n", "5", 1, 10, struct test_svc, n, "a count"),
    ESC_CFG_DBL("f", "2.5", 0, 100, struct test_svc, f, "a factor"),
    ESC_CFG_BOOL("on", "false", struct test_svc, on, "a switch"),
    ESC_CFG_END,
};

/* Loads text and expects failure with exactly `want` as the error text. */
static void
s_expect_error(const char *text, const char *want, int line)
{
    struct esc_error err;
    struct esc_cfg *cfg = esc_cfg_load_string(text, "t.json", &err);

    assert_null(cfg);
    assert_string_equal(err.text, want);
    assert_string_equal(err.source, "t.json");
    assert_int_equal(err.line, line);
}

static void
test_cfg_demo_loads(void **state)
{
    struct esc_error err;
    struct esc_cfg *cfg = esc_cfg_load("examples/escucha.json", &err);
    const struct esc_cfg_topic *t;

    if (cfg == NULL) {
        fail_msg("%s: %s", err.source, err.text);
    }
    assert_int_equal(cfg->n_teams, 2);
    assert_string_equal(cfg->teams[0].id, "gobernanza");
    assert_string_equal(cfg->teams[0].timezone, "America/Lima");
    assert_int_equal(cfg->teams[0].n_topics, 3);
    assert_int_equal(cfg->teams[1].n_recipients, 2);
    assert_int_equal(cfg->teams[0].n_hooks, 1);
    assert_string_equal(cfg->redis.prefix, "esc");
    assert_int_equal(cfg->bus.hwm, 100000);
    assert_int_equal(cfg->n_sources, 1);
    assert_string_equal(cfg->sources[0].type, "jsonl");
    t = esc_cfg_topic_find(cfg, "desarrollo/digitalizacion");
    assert_non_null(t);
    assert_string_equal(t->name, "Digitalización");
    assert_int_equal(t->team_index, 1);
    assert_string_equal(t->keywords[0], "digitalización");
    assert_null(esc_cfg_topic_find(cfg, "desarrollo/nada"));
    assert_non_null(esc_cfg_team_find(cfg, "desarrollo"));
    esc_cfg_free(&cfg);
    assert_null(cfg);
    esc_cfg_free(&cfg); /* NULL-safe */
}

static void
test_cfg_syntax_error_has_line(void **state)
{
    struct esc_error err;
    struct esc_cfg *cfg = esc_cfg_load_string("{\n  \"teams\": [\n  }\n", "t.json", &err);

    assert_null(cfg);
    assert_int_equal(err.line, 3);
    assert_non_null(strstr(err.text, "syntax error"));
    assert_non_null(strstr(err.text, "line 3"));
}

static void
test_cfg_errors_name_key_path(void **state)
{
    s_expect_error("[]", "top level: expected an object, got array", 1);
    s_expect_error("{\"bogus\":1," TEAM_OK "}", "bogus: unknown key", 0);
    s_expect_error("{}", "teams: expected a non-empty array", 0);
    s_expect_error("{\"redis\":{\"port\":\"x\"}," TEAM_OK "}",
                   "redis.port: expected an integer, got string", 0);
    s_expect_error("{\"redis\":{\"port\":70000}," TEAM_OK "}",
                   "redis.port: 70000 is out of range [0, 65535]", 0);
    s_expect_error("{\"redis\":{\"hots\":\"a\"}," TEAM_OK "}", "redis.hots: unknown key", 0);
    s_expect_error("{\"teams\":[{\"topics\":[]}]}", "teams[0].id: missing required key", 0);
    s_expect_error("{\"teams\":[{\"id\":\"Gob\",\"topics\":[]}]}",
                   "teams[0].id: 'Gob' is not a valid id (use a-z, 0-9, '-', '_')", 0);
    s_expect_error("{\"teams\":[{\"id\":\"gob\",\"topics\":[]}]}",
                   "teams[0].topics: expected a non-empty array", 0);
    s_expect_error("{\"teams\":[{\"id\":\"gob\",\"topics\":[{\"id\":\"a\",\"keywords\":[\"x\", 3]}]}]}",
                   "teams[0].topics[0].keywords[1]: expected a non-empty string", 0);
    s_expect_error("{\"teams\":[{\"id\":\"gob\",\"topics\":[{\"id\":\"a\",\"keywords\":[]}]}]}",
                   "teams[0].topics[0]: a topic needs a query or at least one keyword", 0);
    s_expect_error("{\"teams\":[{\"id\":\"gob\",\"topics\":[{\"id\":\"a\",\"query\":\"\"}]}]}",
                   "teams[0].topics[0].query: expected a non-empty string", 0);
    s_expect_error("{\"teams\":[{\"id\":\"gob\",\"exclude\":{\"people\":[]},"
                   "\"topics\":[{\"id\":\"a\",\"query\":\"x\"}]}]}",
                   "teams[0].exclude.people: unknown key", 0);
    s_expect_error("{\"teams\":[{\"id\":\"gob\",\"topics\":[{\"id\":\"a\",\"keywords\":[\"x\"]},"
                   "{\"id\":\"a\",\"keywords\":[\"y\"]}]}]}",
                   "teams[0].topics[1].id: duplicate topic id 'a' in team 'gob'", 0);
    s_expect_error("{\"teams\":[{\"id\":\"gob\",\"language\":\"fr\",\"topics\":[{\"id\":\"a\","
                   "\"keywords\":[\"x\"]}]}]}",
                   "teams[0].language: 'fr' is not supported (es or en)", 0);
    s_expect_error("{\"teams\":[{\"id\":\"gob\",\"recipients\":[\"a@b\\r\\nBcc: x@y\"],"
                   "\"topics\":[{\"id\":\"a\",\"keywords\":[\"x\"]}]}]}",
                   "teams[0].recipients[0]: 'a@b\r\nBcc: x@y' is not an e-mail address", 0);
    s_expect_error("{\"teams\":[{\"id\":\"gob\",\"webhooks\":[{\"url\":\"ftp://x\"}],"
                   "\"topics\":[{\"id\":\"a\",\"keywords\":[\"x\"]}]}]}",
                   "teams[0].webhooks[0].url: must start with http:// or https://", 0);
    s_expect_error("{\"sources\":[{\"name\":\"a\"}]," TEAM_OK "}",
                   "sources[0].type: missing required key", 0);
    s_expect_error("{\"sources\":[{\"type\":\"jsonl\"},{\"type\":\"jsonl\"}]," TEAM_OK "}",
                   "sources[1].name: duplicate source name 'jsonl'", 0);
    s_expect_error("{\"aggregator\":3," TEAM_OK "}", "aggregator: expected an object, got integer",
                   0);
}

static void
test_cfg_section_apply_table(void **state)
{
    struct esc_error err;
    struct esc_cfg *cfg = esc_cfg_load_string(
        "{\"aggregator\":{\"n\":7,\"on\":true,\"sub\":{\"f\":9.5}}," TEAM_OK "}", "t.json", &err);
    struct test_svc s;
    static const char *const ignore[] = { "sub", NULL };

    assert_non_null(cfg);
    assert_int_equal(esc_cfg_section_apply(cfg, "aggregator", test_map, ignore, &s, &err), ESC_OK);
    assert_string_equal(s.name, "x");
    assert_int_equal(s.n, 7);
    assert_true(s.on);
    assert_true(s.f == 2.5);
    assert_int_equal(esc_cfg_section_apply(cfg, "aggregator.sub", test_map, NULL, &s, &err),
                     ESC_OK);
    assert_true(s.f == 9.5);
    assert_int_equal(s.n, 5);
    /* a missing section means defaults */
    assert_int_equal(esc_cfg_section_apply(cfg, "notifier", test_map, NULL, &s, &err), ESC_OK);
    assert_int_equal(s.n, 5);
    /* without the ignore list, "sub" is unknown */
    assert_int_equal(esc_cfg_section_apply(cfg, "aggregator", test_map, NULL, &s, &err),
                     ESC_INVALID);
    assert_string_equal(err.text, "aggregator.sub: unknown key");
    /* array paths */
    assert_int_equal(esc_cfg_section_apply(cfg, "teams.0.topics.0", test_map, NULL, &s, &err),
                     ESC_INVALID);
    assert_string_equal(err.text, "teams.0.topics.0.id: unknown key");
    esc_cfg_free(&cfg);
}

static void
test_cfg_env_override(void **state)
{
    struct esc_error err;
    struct esc_cfg *cfg;
    struct test_svc s;

    setenv("ESC_REDIS_PORT", "6390", 1);
    setenv("ESC_AGGREGATOR_N", "9", 1);
    cfg = esc_cfg_load_string("{" TEAM_OK "}", "t.json", &err);
    assert_non_null(cfg);
    assert_int_equal(cfg->redis.port, 6390);
    assert_int_equal(esc_cfg_section_apply(cfg, "aggregator", test_map, NULL, &s, &err), ESC_OK);
    assert_int_equal(s.n, 9);
    setenv("ESC_AGGREGATOR_N", "11", 1);
    assert_int_equal(esc_cfg_section_apply(cfg, "aggregator", test_map, NULL, &s, &err),
                     ESC_INVALID);
    assert_string_equal(err.text, "ESC_AGGREGATOR_N: expected an integer in [1, 10]");
    unsetenv("ESC_AGGREGATOR_N");
    unsetenv("ESC_REDIS_PORT");
    esc_cfg_free(&cfg);
}

static void
test_cfg_query_and_exclusions(void **state)
{
    struct esc_error err;
    struct esc_cfg *cfg = esc_cfg_load_string(
        "{\"teams\":[{\"id\":\"gob\",\"exclude\":{\"authors\":[\"@spam\"],"
        "\"sites\":[\"spam.example\"],\"phrases\":[\"sorteo\"]},\"topics\":[{\"id\":\"a\","
        "\"query\":\"congreso AND NOT fútbol\",\"exclude\":\"#publicidad\",\"fold_enye\":true}]}]}",
        "t.json", &err);

    if (cfg == NULL) {
        fail_msg("%s", err.text);
    }
    assert_string_equal(cfg->teams[0].topics[0].query, "congreso AND NOT fútbol");
    assert_string_equal(cfg->teams[0].topics[0].exclude, "#publicidad");
    assert_true(cfg->teams[0].topics[0].fold_enye);
    assert_int_equal(cfg->teams[0].topics[0].n_keywords, 0);
    assert_int_equal(cfg->teams[0].n_exclude_authors, 1);
    assert_string_equal(cfg->teams[0].exclude_sites[0], "spam.example");
    assert_string_equal(cfg->teams[0].exclude_phrases[0], "sorteo");
    esc_cfg_free(&cfg);
}

static void
test_cfg_missing_file(void **state)
{
    struct esc_error err;

    assert_null(esc_cfg_load("/nonexistent/escucha.json", &err));
    assert_non_null(strstr(err.text, "cannot read"));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cfg_demo_loads),
        cmocka_unit_test(test_cfg_syntax_error_has_line),
        cmocka_unit_test(test_cfg_errors_name_key_path),
        cmocka_unit_test(test_cfg_section_apply_table),
        cmocka_unit_test(test_cfg_env_override),
        cmocka_unit_test(test_cfg_query_and_exclusions),
        cmocka_unit_test(test_cfg_missing_file),
    };

    esc_log_init("test", ESC_LOG_ERROR);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
