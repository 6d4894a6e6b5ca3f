#define ESC_LOG_MODULE "live_test"
/* Tests of the live publisher against a real redis-server: what a subscriber of each team's
 * channel receives, the topic latest lists, the per-team cap, a flush of several MB (sent in
 * several round trips), UTF-8 safe text cuts and Redis being away. The subscriber side uses
 * hiredis directly (the test plays escucha-api). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <hiredis/hiredis.h>
#include <jansson.h>

#include "escucha/esc_kv.h"
#include "escucha/esc_mem.h"
#include "escucha/esc_msg.h"

#include "esc_testenv.h"
#include "live.h"

struct s_env {
    struct esc_testenv_redis r;
    esc_kv_t *kv;
    redisContext *sub;
};

static int
s_setup(void **state)
{
    struct s_env *e = esc_calloc(1, sizeof(*e));
    struct esc_kv_opts o;
    struct timeval tv = { 2, 0 };
    redisReply *rep;

    if (esc_testenv_redis_start(&e->r, 0) != 0) {
        esc_free(e);
        return -1;
    }
    esc_testenv_kv_opts(&e->r, &o);
    e->kv = esc_kv_new(&o);
    e->sub = redisConnectUnixWithTimeout(e->r.sock, tv);
    if (e->sub == NULL || e->sub->err != 0) {
        return -1;
    }
    redisSetTimeout(e->sub, tv);
    rep = redisCommand(e->sub, "SUBSCRIBE esc:live:{gob} esc:live:{dev}");
    freeReplyObject(rep);
    /* the second confirmation */
    if (redisGetReply(e->sub, (void **)&rep) != REDIS_OK) {
        return -1;
    }
    freeReplyObject(rep);
    *state = e;
    return 0;
}

static int
s_teardown(void **state)
{
    struct s_env *e = *state;

    redisFree(e->sub);
    esc_kv_destroy(&e->kv);
    esc_testenv_redis_stop(&e->r);
    esc_free(e);
    return 0;
}

static void
s_post(struct esc_post *p, const char *id, const char *text)
{
    esc_post_init(p);
    p->id = esc_strdup(id);
    p->platform = esc_strdup("mastodon");
    p->author = esc_strdup("@ana@example.org");
    p->author_name = esc_strdup("Ana");
    p->text = esc_strdup(text);
    p->url = esc_strdup("https://example.org/@ana/1");
    p->language = esc_strdup("es");
    p->created_at = 1794877150250;
    p->followers = 120;
    p->likes = 3;
    p->reposts = 1;
    p->replies = 2;
    p->sentiment = 0.5;
}

/* The next message on the subscription: channel into ch, payload parsed. */
static json_t *
s_next(struct s_env *e, char *ch, size_t chsz)
{
    redisReply *rep = NULL;
    json_t *doc;

    assert_int_equal(redisGetReply(e->sub, (void **)&rep), REDIS_OK);
    assert_int_equal(rep->type, REDIS_REPLY_ARRAY);
    assert_int_equal(rep->elements, 3);
    assert_string_equal(rep->element[0]->str, "message");
    snprintf(ch, chsz, "%s", rep->element[1]->str);
    doc = json_loadb(rep->element[2]->str, rep->element[2]->len, 0, NULL);
    freeReplyObject(rep);
    assert_non_null(doc);
    return doc;
}

static void
test_live_publish_happy_path(void **state)
{
    struct s_env *e = *state;
    agg_live_t *live = agg_live_new("esc", 0, 0);
    const char *keys[] = { "gob/congreso", "dev/anemia", "gob/elecciones" };
    struct esc_post p;
    struct agg_live_stats st;
    struct esc_kv_val v;
    json_t *doc;
    json_t *post;
    char ch[64];
    int i;
    int seen_gob = 0;
    int seen_dev = 0;

    s_post(&p, "1", "El congreso vota hoy <b>ñandú</b>");
    agg_live_add(live, &p, keys, 3);
    esc_post_fini(&p);
    assert_int_equal(agg_live_flush(live, e->kv), ESC_OK);

    for (i = 0; i < 2; i++) {
        doc = s_next(e, ch, sizeof(ch));
        assert_int_equal(json_array_size(doc), 1);
        post = json_array_get(doc, 0);
        assert_string_equal(json_string_value(json_object_get(post, "text")),
                            "El congreso vota hoy <b>ñandú</b>");
        assert_string_equal(json_string_value(json_object_get(post, "author")),
                            "@ana@example.org");
        assert_int_equal(json_integer_value(json_object_get(post, "created_at")),
                         1794877150250);
        assert_string_equal(json_string_value(json_object_get(post, "lang")), "es");
        assert_string_equal(json_string_value(json_object_get(post, "platform")), "mastodon");
        if (strcmp(ch, "esc:live:{gob}") == 0) {
            /* only gob's topic ids, never the other team's */
            assert_int_equal(json_array_size(json_object_get(post, "topics")), 2);
            assert_string_equal(json_string_value(json_array_get(json_object_get(post, "topics"),
                                                                 0)),
                                "congreso");
            assert_string_equal(json_string_value(json_array_get(json_object_get(post, "topics"),
                                                                 1)),
                                "elecciones");
            seen_gob++;
        }
        else {
            assert_string_equal(ch, "esc:live:{dev}");
            assert_int_equal(json_array_size(json_object_get(post, "topics")), 1);
            assert_string_equal(json_string_value(json_array_get(json_object_get(post, "topics"),
                                                                 0)),
                                "anemia");
            seen_dev++;
        }
        json_decref(doc);
    }
    assert_int_equal(seen_gob, 1);
    assert_int_equal(seen_dev, 1);

    /* each topic's latest list got the post */
    memset(&v, 0, sizeof(v));
    assert_int_equal(esc_kv_cmd(e->kv, &v, "LLEN esc:latest:{gob/elecciones}"), ESC_OK);
    assert_int_equal(v.integer, 1);
    esc_kv_val_fini(&v);
    assert_int_equal(esc_kv_cmd(e->kv, &v, "LINDEX esc:latest:{dev/anemia} 0"), ESC_OK);
    doc = json_loads(v.str, 0, NULL);
    assert_non_null(doc);
    assert_string_equal(json_string_value(json_object_get(doc, "id")), "1");
    json_decref(doc);
    esc_kv_val_fini(&v);

    agg_live_get_stats(live, &st);
    assert_int_equal(st.published, 2);
    assert_int_equal(st.posts, 2);
    assert_int_equal(st.dropped, 0);
    /* nothing new: nothing sent */
    assert_int_equal(agg_live_flush(live, e->kv), ESC_OK);
    agg_live_get_stats(live, &st);
    assert_int_equal(st.published, 2);
    agg_live_destroy(&live);
    assert_null(live);
}

static void
test_live_cap_keeps_newest(void **state)
{
    struct s_env *e = *state;
    agg_live_t *live = agg_live_new("esc", 0, 0);
    const char *keys[] = { "gob/congreso" };
    struct esc_post p;
    struct agg_live_stats st;
    struct esc_kv_val v;
    json_t *doc;
    char ch[64];
    char id[16];
    int i;
    int round;

    for (round = 0; round < 5; round++) {
        for (i = 0; i < 60; i++) {
            snprintf(id, sizeof(id), "%d", round * 100 + i);
            s_post(&p, id, "congreso");
            agg_live_add(live, &p, keys, 1);
            esc_post_fini(&p);
        }
        assert_int_equal(agg_live_flush(live, e->kv), ESC_OK);
        doc = s_next(e, ch, sizeof(ch));
        assert_int_equal(json_array_size(doc), AGG_LIVE_PER_TEAM);
        /* oldest first, the newest is last */
        snprintf(id, sizeof(id), "%d", round * 100 + 59);
        assert_string_equal(json_string_value(json_object_get(json_array_get(doc, 49), "id")),
                            id);
        snprintf(id, sizeof(id), "%d", round * 100 + 10);
        assert_string_equal(json_string_value(json_object_get(json_array_get(doc, 0), "id")),
                            id);
        json_decref(doc);
    }
    agg_live_get_stats(live, &st);
    assert_int_equal(st.dropped, 50);
    memset(&v, 0, sizeof(v));
    assert_int_equal(esc_kv_cmd(e->kv, &v, "LLEN esc:latest:{gob/congreso}"), ESC_OK);
    assert_int_equal(v.integer, AGG_LIVE_LATEST_KEEP);
    esc_kv_val_fini(&v);
    assert_int_equal(esc_kv_cmd(e->kv, &v, "LINDEX esc:latest:{gob/congreso} 0"), ESC_OK);
    doc = json_loads(v.str, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(doc, "id")), "459");
    json_decref(doc);
    esc_kv_val_fini(&v);
    agg_live_destroy(&live);
}

static void
test_live_text_cut_on_utf8_boundary(void **state)
{
    char *text = esc_malloc(3 * 2000 + 1);
    const char *ids[] = { "a" };
    struct esc_post p;
    char *json;
    json_t *doc;
    size_t len;
    int i;

    (void)state;
    for (i = 0; i < 2000; i++) {
        memcpy(text + 3 * i, "\xE2\x82\xAC", 3); /* euro sign, 3 bytes */
    }
    text[3 * 2000] = '\0';
    s_post(&p, "9", text);
    json = agg_live_post_json(&p, ids, 1);
    doc = json_loads(json, 0, NULL);
    assert_non_null(doc);
    len = json_string_length(json_object_get(doc, "text"));
    assert_true(len <= AGG_LIVE_TEXT_MAX);
    assert_int_equal(len % 3, 0);
    assert_true(len > AGG_LIVE_TEXT_MAX - 3);
    json_decref(doc);
    esc_free(json);
    esc_post_fini(&p);
    esc_free(text);
}

/* The JSON of a live post as jansson writes it (what agg_live_post_json produced before it
 * wrote the text itself): the reference its output must equal byte for byte. */
static void
s_ref_str(json_t *o, const char *key, const char *v, size_t max)
{
    size_t len;
    json_t *s;

    if (v == NULL) {
        return;
    }
    len = strlen(v);
    if (len > max) {
        len = max;
        while (len > 0 && ((unsigned char)v[len] & 0xC0) == 0x80) {
            len--;
        }
    }
    s = json_stringn(v, len);
    json_object_set_new(o, key, s != NULL ? s : json_string(""));
}

static char *
s_ref_json(const struct esc_post *p, const char *const *ids, size_t n)
{
    json_t *o = json_object();
    json_t *t = json_array();
    const char *lang = p->language != NULL && strcmp(p->language, "und") != 0 ? p->language
                                                                               : p->lang;
    char *text;
    size_t i;

    s_ref_str(o, "id", p->id, 256);
    s_ref_str(o, "platform", p->platform, 64);
    s_ref_str(o, "author", p->author, 256);
    s_ref_str(o, "author_name", p->author_name, 256);
    s_ref_str(o, "url", p->url, 2048);
    json_object_set_new(o, "created_at", json_integer(p->created_at));
    s_ref_str(o, "text", p->text != NULL ? p->text : "", AGG_LIVE_TEXT_MAX);
    for (i = 0; i < n; i++) {
        json_array_append_new(t, json_string(ids[i]));
    }
    json_object_set_new(o, "topics", t);
    s_ref_str(o, "lang", lang, 16);
    json_object_set_new(o, "sentiment", json_real(p->sentiment));
    json_object_set_new(o, "followers", json_integer(p->followers > 0 ? p->followers : 0));
    json_object_set_new(o, "likes", json_integer(p->likes > 0 ? p->likes : 0));
    json_object_set_new(o, "reposts", json_integer(p->reposts > 0 ? p->reposts : 0));
    json_object_set_new(o, "replies", json_integer(p->replies > 0 ? p->replies : 0));
    text = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(4));
    json_decref(o);
    return text;
}

static void
s_replace(char **field, const char *v)
{
    esc_free(*field);
    *field = v != NULL ? esc_strdup(v) : NULL;
}

/* Escapes, control characters, UTF-8 (valid, invalid, cut), missing fields, reals in every
 * notation, negative counts: the hand-written JSON is byte for byte jansson's. */
static void
test_live_post_json_matches_jansson(void **state)
{
    static const char *const texts[] = {
        "plain", "", "quote \" back \\ slash / and \b\f\n\r\t tabs",
        "ctl \x01\x02\x1f\x7f end", "euro \xE2\x82\xAC e\xC3\xB1" "e \xF0\x9F\x94\xA5 fire",
        "bad \xC3 cut", "overlong \xC0\xAF", "surrogate \xED\xA0\x80", "big \xF4\x90\x80\x80",
        "lone \x80 cont", "truncated \xE2\x82",
    };
    static const double reals[] = { 0.5, 0.0, -0.0, 1.0, -1.0, 0.1, 0.33333333, -0.04999,
                                    1e-5, 1.5e-7, 123456.0, 1e20, 2.5e-300, NAN, INFINITY };
    const char *ids2[] = { "congreso", "elecciones" };
    const char *ids_bad[] = { "ok", "bad\xC3", "\"q\"" };
    char *long_text = esc_malloc(AGG_LIVE_TEXT_MAX + 100);
    size_t i;
    size_t k;

    (void)state;
    memset(long_text, 'a', AGG_LIVE_TEXT_MAX + 99);
    memcpy(long_text + AGG_LIVE_TEXT_MAX - 1, "\xE2\x82\xAC", 3);
    long_text[AGG_LIVE_TEXT_MAX + 99] = '\0';
    for (i = 0; i < sizeof(texts) / sizeof(texts[0]) + 1; i++) {
        for (k = 0; k < sizeof(reals) / sizeof(reals[0]); k++) {
            struct esc_post p;
            char *want;
            char *got;

            s_post(&p, "1", i < sizeof(texts) / sizeof(texts[0]) ? texts[i] : long_text);
            p.sentiment = reals[k];
            switch (k % 5) {
            case 1:
                s_replace(&p.url, NULL);
                s_replace(&p.author, NULL);
                p.likes = -4;
                break;
            case 2:
                s_replace(&p.language, "und");
                s_replace(&p.lang, "pt\n");
                p.created_at = i % 2 == 0 ? -1 : INT64_MIN;
                break;
            case 3:
                s_replace(&p.language, NULL);
                s_replace(&p.author_name, texts[i % 11]);
                p.followers = INT64_MAX;
                break;
            case 4:
                s_replace(&p.id, texts[(i + k) % 11]);
                s_replace(&p.platform, NULL);
                p.created_at = 0;
                break;
            default:
                break;
            }
            want = s_ref_json(&p, k % 2 == 0 ? ids2 : ids_bad, k % 2 == 0 ? 2 : 3);
            got = agg_live_post_json(&p, k % 2 == 0 ? ids2 : ids_bad, k % 2 == 0 ? 2 : 3);
            assert_non_null(want);
            assert_string_equal(got, want);
            esc_free(want); /* json_dumps allocates with malloc; esc_free is free */
            esc_free(got);
            esc_post_fini(&p);
        }
    }
    esc_free(long_text);
}

/* A flush of about 5 MB of commands goes out in several round trips and lands as one would:
 * the team message holds the newest 50 posts in order, every topic list its own newest 50,
 * each entry exactly what agg_live_post_json gives for the post. */
static void
test_live_large_flush_in_round_trips(void **state)
{
    struct s_env *e = *state;
    agg_live_t *live = agg_live_new("esc", 0, 0);
    struct agg_live_stats st;
    struct esc_kv_val v;
    struct esc_post p;
    char text[2001];
    char key[32];
    char tid[8];
    char id[32];
    char ch[64];
    const char *keys[1];
    const char *ids[1];
    json_t *doc;
    char *want;
    int t;
    int k;

    memset(text, 'x', sizeof(text) - 1);
    text[sizeof(text) - 1] = '\0';
    for (k = 0; k < 50; k++) {
        for (t = 0; t < 40; t++) {
            snprintf(key, sizeof(key), "gob/t%02d", t);
            snprintf(id, sizeof(id), "%02d-%02d", t, k);
            memcpy(text, id, 5); /* every text differs */
            s_post(&p, id, text);
            p.sentiment = (k % 7) / 10.0 - 0.3;
            keys[0] = key;
            agg_live_add(live, &p, keys, 1);
            esc_post_fini(&p);
        }
    }
    assert_int_equal(agg_live_flush(live, e->kv), ESC_OK);
    agg_live_get_stats(live, &st);
    assert_int_equal(st.published, 1);
    assert_int_equal(st.posts, AGG_LIVE_PER_TEAM);
    assert_int_equal(st.dropped, 40 * 50 - AGG_LIVE_PER_TEAM);

    doc = s_next(e, ch, sizeof(ch));
    assert_string_equal(ch, "esc:live:{gob}");
    assert_int_equal(json_array_size(doc), AGG_LIVE_PER_TEAM);
    assert_string_equal(json_string_value(json_object_get(json_array_get(doc, 0), "id")),
                        "30-48");
    assert_string_equal(json_string_value(json_object_get(json_array_get(doc, 49), "id")),
                        "39-49");
    json_decref(doc);

    memset(&v, 0, sizeof(v));
    for (t = 0; t < 40; t++) {
        snprintf(key, sizeof(key), "esc:latest:{gob/t%02d}", t);
        assert_int_equal(esc_kv_cmd(e->kv, &v, "LLEN %s", key), ESC_OK);
        assert_int_equal(v.integer, 50);
        esc_kv_val_fini(&v);
        for (k = 0; k < 50; k += 49) {
            /* LINDEX 0 is the newest post (k 49), LINDEX 49 the oldest (k 0) */
            snprintf(id, sizeof(id), "%02d-%02d", t, 49 - k);
            memcpy(text, id, 5);
            s_post(&p, id, text);
            p.sentiment = ((49 - k) % 7) / 10.0 - 0.3;
            snprintf(tid, sizeof(tid), "t%02d", t);
            ids[0] = tid;
            want = agg_live_post_json(&p, ids, 1);
            esc_post_fini(&p);
            assert_int_equal(esc_kv_cmd(e->kv, &v, "LINDEX %s %d", key, k), ESC_OK);
            assert_int_equal(v.type, ESC_KV_STR);
            assert_string_equal(v.str, want);
            esc_kv_val_fini(&v);
            esc_free(want);
        }
    }
    agg_live_destroy(&live);
}

static void
test_live_redis_down_drops(void **state)
{
    struct s_env *e = *state;
    agg_live_t *live = agg_live_new("esc", 0, 0);
    const char *keys[] = { "gob/congreso" };
    struct esc_post p;
    struct agg_live_stats st;

    assert_int_equal(esc_testenv_redis_kill(&e->r), 0);
    s_post(&p, "1", "congreso");
    agg_live_add(live, &p, keys, 1);
    agg_live_add(live, &p, keys, 1);
    esc_post_fini(&p);
    assert_int_equal(agg_live_flush(live, e->kv), ESC_RETRY);
    agg_live_get_stats(live, &st);
    assert_int_equal(st.dropped, 2);
    assert_int_equal(st.posts, 0);
    /* dropped, not retried: the next flush has nothing to send */
    assert_int_equal(agg_live_flush(live, e->kv), ESC_OK);
    agg_live_destroy(&live);
}

/* The feed holds as many teams and topics between two flushes as the deployment has: with
 * 600 teams (more than AGG_LIVE_TEAMS_MIN) every team's post is published and every topic's
 * latest list gets it; sized for none, the teams past AGG_LIVE_TEAMS_MIN are counted as
 * dropped, never lost silently. */
static void
test_live_every_configured_team(void **state)
{
    struct s_env *e = *state;
    agg_live_t *sized = agg_live_new("esc", 600, 600);
    agg_live_t *small = agg_live_new("esc", 0, 0);
    struct agg_live_stats st;
    struct esc_kv_val v;
    struct esc_post p;
    char key[64];
    const char *keys[1];
    int i;

    for (i = 0; i < 600; i++) {
        snprintf(key, sizeof(key), "t%03d/x", i);
        keys[0] = key;
        s_post(&p, "1", "hola");
        agg_live_add(sized, &p, keys, 1);
        agg_live_add(small, &p, keys, 1);
        esc_post_fini(&p);
    }
    assert_int_equal(agg_live_flush(sized, e->kv), ESC_OK);
    agg_live_get_stats(sized, &st);
    assert_int_equal(st.published, 600);
    assert_int_equal(st.dropped, 0);
    for (i = 0; i < 600; i += 37) {
        memset(&v, 0, sizeof(v));
        assert_int_equal(esc_kv_cmd(e->kv, &v, "LLEN esc:latest:{t%03d/x}", i), ESC_OK);
        assert_int_equal(v.integer, 1);
        esc_kv_val_fini(&v);
    }
    assert_int_equal(agg_live_flush(small, e->kv), ESC_OK);
    agg_live_get_stats(small, &st);
    assert_int_equal(st.published, AGG_LIVE_TEAMS_MIN);
    assert_int_equal(st.dropped, 600 - AGG_LIVE_TEAMS_MIN);
    agg_live_destroy(&sized);
    agg_live_destroy(&small);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_live_publish_happy_path, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_live_cap_keeps_newest, s_setup, s_teardown),
        cmocka_unit_test(test_live_text_cut_on_utf8_boundary),
        cmocka_unit_test(test_live_post_json_matches_jansson),
        cmocka_unit_test_setup_teardown(test_live_large_flush_in_round_trips, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_live_redis_down_drops, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_live_every_configured_team, s_setup, s_teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
