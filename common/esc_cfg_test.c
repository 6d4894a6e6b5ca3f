#define ESC_LOG_MODULE "test"
/* Unit tests of the config loader: the demo config loads; every kind of mistake is reported
 * with its key path (and line for syntax errors); service sections map through tables with
 * defaults, bounds and environment overrides; escucha-api's topic overrides merge into the
 * document and are validated like the file. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
    assert_int_equal(cfg->bus.hwm, 2000); /* the default: frames of up to 64 posts */
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

/* Writes text to a fresh temporary file; its path goes to path (caller unlinks). */
static void
s_tmpfile(char *path, size_t size, const char *text)
{
    FILE *f;
    int fd;

    snprintf(path, size, "/tmp/esc_cfg_test.XXXXXX");
    fd = mkstemp(path);
    assert_true(fd >= 0);
    f = fdopen(fd, "w");
    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
}

#define OVL_FILE                                                                                   \
    "{\"teams\":[{\"id\":\"gob\",\"exclude\":{\"phrases\":[\"sorteo\"]},\"topics\":["         \
    "{\"id\":\"congreso\",\"keywords\":[\"congreso\"],\"spike\":{}},"                            \
    "{\"id\":\"elecciones\",\"keywords\":[\"elecciones\"]},"                                     \
    "{\"id\":\"salud\",\"keywords\":[\"salud\"]}]},"                                             \
    "{\"id\":\"dev\",\"topics\":[{\"id\":\"anemia\",\"keywords\":[\"anemia\"]}]}]}"

static void
test_cfg_overlay_adds_replaces_deletes(void **state)
{
    static const char *const ids[] = { "zeta", "elecciones", "congreso", "agua" };
    static const char *const topics[] = {
        "{\"id\":\"zeta\",\"name\":\"Zeta\",\"keywords\":[\"zeta\"],\"query\":null,"
        "\"exclude\":null,\"fold_enye\":false}",
        "{\"id\":\"elecciones\",\"deleted\":true}",
        "{\"id\":\"congreso\",\"keywords\":[],\"query\":\"congreso AND voto\","
        "\"exclude\":\"#spam\",\"fold_enye\":true}",
        "{\"id\":\"agua\",\"keywords\":[\"agua\"]}",
    };
    struct esc_cfg_overlay ov[2];
    struct esc_error err;
    struct esc_cfg *cfg;
    const struct esc_cfg_team *gob;
    char path[64];

    memset(ov, 0, sizeof(ov));
    ov[0].team = "gob";
    ov[0].ids = ids;
    ov[0].topics = topics;
    ov[0].n_topics = 4;
    ov[0].exclude = "{\"authors\":[\"@bot\"],\"sites\":[],\"phrases\":[]}";
    ov[1].team = "nosuchteam"; /* skipped */
    s_tmpfile(path, sizeof(path), OVL_FILE);
    cfg = esc_cfg_load_overlay(path, ov, 2, &err);
    unlink(path);
    if (cfg == NULL) {
        fail_msg("%s", err.text);
    }
    gob = esc_cfg_team_find(cfg, "gob");
    assert_non_null(gob);
    /* file order, elecciones removed, then the new ones in id order */
    assert_int_equal(gob->n_topics, 4);
    assert_string_equal(gob->topics[0].id, "congreso");
    assert_string_equal(gob->topics[0].query, "congreso AND voto");
    assert_string_equal(gob->topics[0].exclude, "#spam");
    assert_true(gob->topics[0].fold_enye);
    assert_int_equal(gob->topics[0].n_keywords, 0);
    assert_string_equal(gob->topics[1].id, "salud");
    assert_string_equal(gob->topics[2].id, "agua");
    assert_string_equal(gob->topics[3].id, "zeta");
    assert_string_equal(gob->topics[3].key, "gob/zeta");
    assert_string_equal(gob->topics[3].name, "Zeta");
    assert_null(gob->topics[3].query);
    assert_null(esc_cfg_topic_find(cfg, "gob/elecciones"));
    /* the stored exclusion lists replace the file's */
    assert_int_equal(gob->n_exclude_phrases, 0);
    assert_int_equal(gob->n_exclude_authors, 1);
    assert_string_equal(gob->exclude_authors[0], "@bot");
    /* the other team is the file's */
    assert_non_null(esc_cfg_topic_find(cfg, "dev/anemia"));
    esc_cfg_free(&cfg);

    /* no overrides: the same as esc_cfg_load */
    s_tmpfile(path, sizeof(path), OVL_FILE);
    cfg = esc_cfg_load_overlay(path, NULL, 0, &err);
    unlink(path);
    assert_non_null(cfg);
    assert_int_equal(cfg->teams[0].n_topics, 3);
    assert_int_equal(cfg->teams[0].n_exclude_phrases, 1);
    esc_cfg_free(&cfg);
}

/* Loads OVL_FILE with one stored topic for team gob and expects err text to contain want. */
static void
s_expect_overlay_error(const char *id, const char *topic, const char *exclude, const char *want)
{
    struct esc_cfg_overlay ov;
    struct esc_error err;
    struct esc_cfg *cfg;
    char path[64];

    memset(&ov, 0, sizeof(ov));
    ov.team = "gob";
    ov.ids = &id;
    ov.topics = &topic;
    ov.n_topics = id != NULL ? 1 : 0;
    ov.exclude = exclude;
    s_tmpfile(path, sizeof(path), OVL_FILE);
    cfg = esc_cfg_load_overlay(path, &ov, 1, &err);
    unlink(path);
    if (cfg != NULL) {
        esc_cfg_free(&cfg);
        fail_msg("overlay loaded, expected: %s", want);
    }
    if (strstr(err.text, want) == NULL) {
        fail_msg("error '%s' does not contain '%s'", err.text, want);
    }
    assert_string_equal(err.source, path);
}

static void
test_cfg_overlay_validated_like_a_file(void **state)
{
    /* a replaced topic keeps its place: the error names it */
    s_expect_overlay_error("elecciones", "{\"id\":\"elecciones\",\"keywords\":[],\"query\":null}",
                           NULL, "teams[0].topics[1]: a topic needs a query or at least one "
                                 "keyword");
    s_expect_overlay_error("nuevo", "{\"keywords\":[\"x\"],\"colour\":\"red\"}", NULL,
                           "teams[0].topics[3].colour: unknown key");
    s_expect_overlay_error("nuevo", "{\"keywords\":[\"x\"],\"query\":\"\"}", NULL,
                           "teams[0].topics[3].query: expected a non-empty string");
    s_expect_overlay_error("nuevo", "{not json", NULL,
                           "teams[0] (team 'gob'): stored topic 'nuevo': not a JSON object");
    s_expect_overlay_error("Bad Id", "{\"keywords\":[\"x\"]}", NULL,
                           "stored topic id 'Bad Id' is not a valid id");
    s_expect_overlay_error(NULL, NULL, "[1]",
                           "teams[0] (team 'gob'): stored exclusion lists: not a JSON object");
    s_expect_overlay_error(NULL, NULL, "{\"people\":[]}", "teams[0].exclude.people: unknown key");
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
        cmocka_unit_test(test_cfg_overlay_adds_replaces_deletes),
        cmocka_unit_test(test_cfg_overlay_validated_like_a_file),
    };

    esc_log_init("test", ESC_LOG_ERROR);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
