#define ESC_LOG_MODULE "api_test"
/* Unit tests of escucha-api's pure parts: token lookup and rate buckets, the live hub, range
 * parsing, the validator output parser, topic and exclusion checks, live message ingestion
 * and config/token loading. No network, no Redis. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>
#include <sodium.h>

#include "escucha/esc_cfg.h"
#include "escucha/esc_mem.h"

#include "auth.h"
#include "config.h"
#include "hub.h"
#include "live_sub.h"
#include "store.h"
#include "topics.h"

static void
s_token(struct api_token *t, const char *name, const char *team, enum api_role role,
        const char *text)
{
    memset(t, 0, sizeof(*t));
    snprintf(t->name, sizeof(t->name), "%s", name);
    snprintf(t->team, sizeof(t->team), "%s", team);
    t->role = role;
    crypto_hash_sha256(t->hash, (const unsigned char *)text, strlen(text));
}

static void
test_auth_find_and_roles(void **state)
{
    struct api_token toks[3];
    api_auth_t *a;
    const struct api_token *t;

    (void)state;
    s_token(&toks[0], "ana", "gob", API_ROLE_VIEWER, "secret-a");
    s_token(&toks[1], "eva", "gob", API_ROLE_EDITOR, "secret-e");
    s_token(&toks[2], "root", "*", API_ROLE_ADMIN, "secret-r");
    a = api_auth_new(toks, 3, 1.0, 2);
    t = api_auth_find(a, "secret-e", 8);
    assert_ptr_equal(t, &toks[1]);
    assert_ptr_equal(api_auth_find(a, "secret-a", 8), &toks[0]);
    assert_null(api_auth_find(a, "secret-x", 8));
    assert_null(api_auth_find(a, "secret-e", 7));
    assert_null(api_auth_find(a, "", 0));
    assert_true(api_auth_allows(&toks[0], "gob", API_ROLE_VIEWER));
    assert_false(api_auth_allows(&toks[0], "gob", API_ROLE_EDITOR));
    assert_true(api_auth_allows(&toks[1], "gob", API_ROLE_EDITOR));
    assert_false(api_auth_allows(&toks[1], "dev", API_ROLE_VIEWER));
    assert_false(api_auth_allows(&toks[1], "gobx", API_ROLE_VIEWER));
    assert_true(api_auth_allows(&toks[2], "dev", API_ROLE_EDITOR));
    assert_false(api_auth_allows(NULL, "gob", API_ROLE_FEED));
    api_auth_destroy(&a);
    assert_null(a);
    api_auth_destroy(&a);
}

static void
test_auth_token_bucket(void **state)
{
    struct api_token tok;
    api_auth_t *a;
    int i;

    (void)state;
    s_token(&tok, "ana", "gob", API_ROLE_VIEWER, "s");
    a = api_auth_new(&tok, 1, 2.0, 3);
    assert_int_equal(api_auth_take(a, &tok, 1000), 0);
    assert_int_equal(api_auth_take(a, &tok, 1000), 0);
    assert_int_equal(api_auth_take(a, &tok, 1000), 0);
    assert_int_equal(api_auth_take(a, &tok, 1000), 1); /* empty: 0.5 s to the next */
    assert_int_equal(api_auth_take(a, &tok, 1500), 0); /* refilled one at 2/s */
    assert_true(api_auth_take(a, &tok, 1500) >= 1);
    assert_int_equal(api_auth_take(a, &tok, 100000), 0); /* capped at the burst */
    assert_int_equal(api_auth_take(a, &tok, 100000), 0);
    assert_int_equal(api_auth_take(a, &tok, 100000), 0);
    assert_true(api_auth_take(a, &tok, 100000) > 0);
    /* wrong tokens: 10 per address, then a wait */
    for (i = 0; i < 10; i++) {
        assert_int_equal(api_auth_take_bad(a, "1.2.3.4", 7, 5000), 0);
    }
    assert_true(api_auth_take_bad(a, "1.2.3.4", 7, 5000) > 0);
    api_auth_destroy(&a);
}

static void
test_hub_push_next_filter(void **state)
{
    api_hub_t *h = api_hub_new(2, 3);
    char *json = NULL;
    uint64_t seq = 0;

    (void)state;
    assert_int_equal(api_hub_next(h, 0, 0, NULL, 10, &json, &seq), 0);
    assert_null(json);
    api_hub_push(h, 0, "{\"a\":1}", 7, ",congreso,");
    api_hub_push(h, 0, "{\"a\":2}", 7, ",elecciones,congreso2,");
    api_hub_push(h, 1, "{\"b\":1}", 7, ",anemia,");
    assert_int_equal(api_hub_last(h, 0), 2);
    assert_int_equal(api_hub_last(h, 1), 1);
    assert_int_equal(api_hub_next(h, 0, 0, NULL, 10, &json, &seq), 1);
    assert_string_equal(json, "{\"a\":1}");
    assert_int_equal(seq, 1);
    esc_free(json);
    /* a topic matches whole ids only */
    assert_int_equal(api_hub_next(h, 0, 0, "congreso2", 10, &json, &seq), 1);
    assert_string_equal(json, "{\"a\":2}");
    esc_free(json);
    assert_int_equal(api_hub_next(h, 0, 1, "congreso", 10, &json, &seq), 0);
    assert_int_equal(seq, 2); /* resume after what was looked at */
    assert_int_equal(api_hub_next(h, 0, 0, "greso", 10, &json, &seq), 0);
    /* the other team's ring is separate */
    assert_int_equal(api_hub_next(h, 1, 0, NULL, 10, &json, &seq), 1);
    assert_string_equal(json, "{\"b\":1}");
    esc_free(json);
    /* falling behind the ring skips to the oldest kept */
    api_hub_push(h, 0, "3", 1, ",");
    api_hub_push(h, 0, "4", 1, ",");
    api_hub_push(h, 0, "5", 1, ",");
    assert_int_equal(api_hub_next(h, 0, 0, NULL, 10, &json, &seq), 1);
    assert_string_equal(json, "3");
    assert_int_equal(seq, 3);
    esc_free(json);
    /* a number from before a restart is clamped */
    assert_int_equal(api_hub_next(h, 0, 999, NULL, 10, &json, &seq), 0);
    assert_int_equal(seq, 5);
    api_hub_close(h);
    assert_int_equal(api_hub_next(h, 0, 0, NULL, 1000, &json, &seq), -1);
    api_hub_destroy(&h);
    assert_null(h);
}

struct s_waiter {
    api_hub_t *h;
    int rc;
    char *json;
};

static void *
s_wait(void *arg)
{
    struct s_waiter *w = arg;
    uint64_t seq;

    w->rc = api_hub_next(w->h, 0, 0, NULL, 5000, &w->json, &seq);
    return NULL;
}

static void
test_hub_wakes_waiters(void **state)
{
    struct s_waiter w = { api_hub_new(1, 4), 0, NULL };
    struct s_waiter w2 = { w.h, 0, NULL };
    pthread_t t;
    pthread_t t2;

    (void)state;
    pthread_create(&t, NULL, s_wait, &w);
    usleep(50000);
    api_hub_push(w.h, 0, "{}", 2, ",x,");
    pthread_join(t, NULL);
    assert_int_equal(w.rc, 1);
    assert_string_equal(w.json, "{}");
    esc_free(w.json);
    /* closing wakes a waiter that has nothing new */
    api_hub_push(w.h, 0, "{}", 2, ",x,");
    pthread_create(&t2, NULL, s_wait, &w2);
    usleep(20000);
    api_hub_close(w.h);
    pthread_join(t2, NULL);
    assert_true(w2.rc == -1 || w2.rc == 1);
    esc_free(w2.json);
    api_hub_destroy(&w.h);
}

static void
test_range_parse(void **state)
{
    struct api_range r;
    char why[160];
    const int64_t now = 1794877150; /* 2026-11-17T00:59:10Z */

    (void)state;
    assert_int_equal(api_range_parse(NULL, NULL, "hour", now, 5000, &r, why, sizeof(why)), 0);
    assert_int_equal(r.res, API_RES_HOUR);
    assert_int_equal(r.to, 1794877200);
    assert_int_equal(r.to - r.from, 7 * 86400);
    assert_int_equal(api_range_parse("2026-11-17T00:10:30Z", "1794877150", NULL, now, 5000, &r,
                                     why, sizeof(why)),
                     0);
    assert_int_equal(r.res, API_RES_MINUTE);
    assert_int_equal(r.from, 1794874200);
    assert_int_equal(r.to, 1794877200);
    assert_int_equal(api_range_parse("1790000000", NULL, NULL, now, 5000, &r, why, sizeof(why)),
                     0);
    assert_int_equal(r.res, API_RES_DAY);
    assert_int_equal(api_range_parse(NULL, NULL, "fortnight", now, 5000, &r, why, sizeof(why)),
                     -1);
    assert_non_null(strstr(why, "res"));
    assert_int_equal(api_range_parse("10", "5", "m", now, 5000, &r, why, sizeof(why)), -1);
    assert_int_equal(api_range_parse("0", NULL, "m", now, 5000, &r, why, sizeof(why)), -1);
    assert_non_null(strstr(why, "too long"));
    assert_int_equal(api_range_parse("soon", NULL, NULL, now, 5000, &r, why, sizeof(why)), -1);
}

static void
test_query_output_parse(void **state)
{
    json_t *d = json_array();
    const char *out = "error: column 14: '(' is never closed\n"
                      "  congreso AND (voto\n"
                      "               ^\n"
                      "warning: repeated term\n"
                      "error: column x: odd\n";

    (void)state;
    assert_int_equal(api_query_parse_output(out, "query", d), 2);
    assert_int_equal(json_array_size(d), 3);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(d, 0), "column")), 14);
    assert_string_equal(json_string_value(json_object_get(json_array_get(d, 0), "message")),
                        "'(' is never closed");
    assert_true(json_is_null(json_object_get(json_array_get(d, 1), "column")));
    assert_string_equal(json_string_value(json_object_get(json_array_get(d, 1), "severity")),
                        "warning");
    assert_string_equal(json_string_value(json_object_get(json_array_get(d, 2), "message")),
                        "column x: odd");
    json_decref(d);
}

static void
test_topic_check(void **state)
{
    json_t *d = json_array();
    json_t *body = json_loads("{\"name\":\"Salud\",\"keywords\":[\" a \",\"b\"],\"query\":\"\","
                              "\"source\":\"config\"}",
                              0, NULL);
    json_t *t = api_topic_check(body, "salud", d);

    (void)state;
    assert_non_null(t);
    assert_string_equal(json_string_value(json_object_get(t, "id")), "salud");
    assert_string_equal(json_string_value(json_array_get(json_object_get(t, "keywords"), 0)),
                        "a");
    assert_true(json_is_null(json_object_get(t, "query")));
    json_decref(t);
    json_decref(body);
    body = json_loads("{\"keywords\":[]}", 0, NULL);
    assert_null(api_topic_check(body, "salud", d));
    assert_null(api_topic_check(body, "Bad Id", d));
    json_decref(body);
    assert_true(json_array_size(d) >= 2);
    json_decref(d);
    d = json_array();
    body = json_loads("{\"authors\":[\"@x\"],\"nope\":1}", 0, NULL);
    assert_null(api_exclude_check(body, d));
    assert_string_equal(json_string_value(json_object_get(json_array_get(d, 0), "field")),
                        "nope");
    json_decref(body);
    json_decref(d);
}

static const char s_cfg_json[] =
    "{\"teams\":[{\"id\":\"gob\",\"topics\":[{\"id\":\"c\",\"keywords\":[\"c\"]}]},"
    "{\"id\":\"dev\",\"topics\":[{\"id\":\"a\",\"keywords\":[\"a\"]}]}]}";

static void
test_live_ingest(void **state)
{
    struct esc_error err;
    struct esc_cfg *cfg = esc_cfg_load_string(s_cfg_json, "<test>", &err);
    api_hub_t *h = api_hub_new(2, 10);
    char *json = NULL;
    uint64_t seq;
    json_t *p;
    const char *msg = "[{\"id\":\"1\",\"text\":\"<i>hola</i>\",\"topics\":[\"c\",\"Bad\",7],"
                      "\"created_at\":5,\"evil\":\"x\"},{\"text\":3},42,"
                      "{\"text\":\"dos\",\"topics\":[\"c\"]}]";

    (void)state;
    assert_non_null(cfg);
    assert_int_equal(api_live_ingest(h, cfg, 0, msg, strlen(msg)), 2);
    assert_int_equal(api_live_ingest(h, cfg, 0, "{\"no\":1}", 8), 0);
    assert_int_equal(api_live_ingest(h, cfg, 0, "[broken", 7), 0);
    assert_int_equal(api_hub_last(h, 0), 2);
    assert_int_equal(api_hub_last(h, 1), 0);
    assert_int_equal(api_hub_next(h, 0, 0, "c", 10, &json, &seq), 1);
    p = json_loads(json, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(p, "text")), "<i>hola</i>");
    assert_string_equal(json_string_value(json_object_get(p, "team")), "gob");
    assert_int_equal(json_array_size(json_object_get(p, "topics")), 1);
    assert_null(json_object_get(p, "evil"));
    assert_int_equal(json_integer_value(json_object_get(p, "created_at")), 5);
    json_decref(p);
    esc_free(json);
    api_hub_destroy(&h);
    esc_cfg_free(&cfg);
}

static void
test_cfg_tokens(void **state)
{
    struct esc_error err;
    struct esc_cfg *cfg = esc_cfg_load_string(s_cfg_json, "<test>", &err);
    struct api_cfg ac;
    char hex[65];
    char json[512];

    (void)state;
    memset(&ac, 0, sizeof(ac));
    memset(&err, 0, sizeof(err));
    api_token_hash_hex("abc", 3, hex, sizeof(hex));
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    snprintf(json, sizeof(json),
             "[{\"name\":\"a\",\"team\":\"gob\",\"role\":\"editor\",\"sha256\":\"%s\"},"
             "{\"name\":\"r\",\"team\":\"*\",\"role\":\"admin\",\"sha256\":\"%.63s0\"}]",
             hex, hex);
    assert_int_equal(api_cfg_add_tokens(cfg, &ac, json, "t", &err), ESC_OK);
    assert_int_equal(ac.n_tokens, 2);
    assert_int_equal(ac.tokens[0].role, API_ROLE_EDITOR);
    assert_int_equal(ac.tokens[0].hash[0], 0xba);
    assert_int_equal(api_cfg_add_tokens(cfg, &ac, json, "t", &err), ESC_INVALID);
    assert_non_null(strstr(err.text, "used twice"));
    assert_int_equal(api_cfg_add_tokens(cfg, &ac, "{\"tokens\":[{\"name\":\"b\",\"team\":\"dev\","
                                                  "\"role\":\"viewer\",\"token\":\"x\"}]}",
                                        "t", &err),
                     ESC_INVALID);
    assert_non_null(strstr(err.text, "plain tokens"));
    assert_int_equal(api_role_parse("feed"), API_ROLE_FEED);
    assert_int_equal(api_role_parse("owner"), -1);
    assert_string_equal(api_role_name(API_ROLE_ADMIN), "admin");
    api_cfg_fini(&ac);
    assert_null(ac.tokens);
    esc_cfg_free(&cfg);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_auth_find_and_roles),
        cmocka_unit_test(test_auth_token_bucket),
        cmocka_unit_test(test_hub_push_next_filter),
        cmocka_unit_test(test_hub_wakes_waiters),
        cmocka_unit_test(test_range_parse),
        cmocka_unit_test(test_query_output_parse),
        cmocka_unit_test(test_topic_check),
        cmocka_unit_test(test_live_ingest),
        cmocka_unit_test(test_cfg_tokens),
    };

    if (sodium_init() < 0) {
        return 1;
    }
    return cmocka_run_group_tests(tests, NULL, NULL);
}
