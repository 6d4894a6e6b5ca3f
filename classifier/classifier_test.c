#define ESC_LOG_MODULE "test"
/* Unit tests of classifier/classifier.c without sockets: a "post" message in, a "classified"
 * message out (topics in config order; language from language ID, else the hint, and
 * sentiment for matched posts; unmatched posts forwarded with no topics, language "und" and
 * sentiment 0), lang: queries matching the same whether language ID runs first or only for
 * the candidates that test it, invalid messages counted and skipped, post hashtags/mentions
 * used by #tag/@handle keywords, the classifier config section, and SIGHUP reloads that swap
 * in a new matcher or keep the old one when the file is bad. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "escucha/esc_log.h"
#include "escucha/esc_mem.h"
#include "escucha/esc_msg.h"

#include "classifier.h"

static const char s_json[] =
    "{ \"teams\": ["
    "  { \"id\": \"gob\", \"topics\": ["
    "    { \"id\": \"congreso\", \"keywords\": [\"congreso\", \"#CongresoPerú\"] },"
    "    { \"id\": \"elecciones\", \"keywords\": [\"elecciones\", \"@jne_peru\"] } ] },"
    "  { \"id\": \"dev\", \"topics\": ["
    "    { \"id\": \"anemia\", \"keywords\": [\"anemia\", \"desnutrición\"] } ] } ],"
    "  \"classifier\": { \"grace_ms\": 1000 } }";

static cls_t *
s_cls(const char *json)
{
    struct esc_error err;
    struct esc_cfg *cfg = esc_cfg_load_string(json, "test.json", &err);
    struct cls_conf conf;

    if (cfg == NULL) {
        fail_msg("config: %s", err.text);
    }
    if (cls_conf_from_cfg(&conf, &cfg, &err) != ESC_OK) {
        fail_msg("conf: %s", err.text);
    }
    assert_null(cfg);
    return cls_new(&conf);
}

/* Encodes a post message with text, lang and optional hashtag/mention. */
static char *
s_post(const char *id, const char *text, const char *lang, const char *tag, size_t *len)
{
    struct esc_post p;
    char *buf;

    esc_post_init(&p);
    p.id = esc_strdup(id);
    p.platform = esc_strdup("jsonl");
    p.text = esc_strdup(text);
    p.lang = lang != NULL ? esc_strdup(lang) : NULL;
    p.created_at = 1763300000000;
    p.ingested_at = 1763300000500;
    if (tag != NULL && tag[0] == '#') {
        esc_strlist_push(&p.hashtags, &p.n_hashtags, tag + 1);
    }
    else if (tag != NULL) {
        esc_strlist_push(&p.mentions, &p.n_mentions, tag);
    }
    buf = esc_post_encode(&p, 0, len);
    esc_post_fini(&p);
    return buf;
}

/* Runs one post through cls_process and decodes the result into out. */
static void
s_classify(cls_t *c, const char *text, const char *lang, const char *tag, struct esc_post *out)
{
    size_t len;
    size_t olen = 0;
    char *in = s_post("p1", text, lang, tag, &len);
    const char *enc = cls_process(c, in, len, &olen);
    enum esc_msg_type type;
    struct esc_error err;

    esc_free(in);
    assert_non_null(enc);
    assert_int_equal(esc_post_decode(enc, olen, out, &type, &err), ESC_OK);
    assert_int_equal(type, ESC_MSG_CLASSIFIED);
}

static void
test_cls_process_happy_path(void **state)
{
    cls_t *c = s_cls(s_json);
    struct esc_post p;

    s_classify(c, "Anemia y elecciones en el CONGRESO", "es-PE", NULL, &p);
    assert_string_equal(p.id, "p1");
    assert_string_equal(p.text, "Anemia y elecciones en el CONGRESO");
    assert_int_equal(p.created_at, 1763300000000);
    assert_int_equal(p.n_topics, 3);
    assert_string_equal(p.topics[0], "gob/congreso");
    assert_string_equal(p.topics[1], "gob/elecciones");
    assert_string_equal(p.topics[2], "dev/anemia");
    assert_string_equal(p.language, "es");
    assert_true(p.sentiment >= -1.0 && p.sentiment <= 1.0);
    esc_post_fini(&p);
    assert_int_equal(cls_get_stats(c)->in, 1);
    assert_int_equal(cls_get_stats(c)->matched, 1);
    assert_int_equal(cls_get_stats(c)->invalid, 0);
    cls_destroy(&c);
    assert_null(c);
    cls_destroy(&c);
}

static void
test_cls_process_forwards_unmatched(void **state)
{
    cls_t *c = s_cls(s_json);
    struct esc_post p;
    struct esc_post in;
    struct esc_error err;
    const char *enc;
    char *buf;
    size_t len = 0;
    size_t olen = 0;

    /* nothing downstream reads the language or sentiment of a post without topics: neither
     * is decided, the message says "und" and 0; and of the post itself the aggregator reads
     * only its identity, times, source and ack, so the rest stays behind */
    esc_post_init(&in);
    in.id = esc_strdup("p1");
    in.platform = esc_strdup("mastodon");
    in.source = esc_strdup("m1");
    in.author = esc_strdup("@ana@mastodon.social");
    in.author_name = esc_strdup("Ana");
    in.url = esc_strdup("https://mastodon.social/@ana/1");
    in.lang = esc_strdup("en");
    in.text = esc_strdup("What a wonderful day, nothing to see here, I love it");
    in.ack_ref = esc_strdup("col-1:7");
    in.followers = 1200;
    in.likes = 3;
    in.created_at = 1763300000000;
    in.ingested_at = 1763300000500;
    esc_strlist_push(&in.hashtags, &in.n_hashtags, "wow");
    esc_strlist_push(&in.mentions, &in.n_mentions, "bob");
    buf = esc_post_encode(&in, 0, &len);
    esc_post_fini(&in);
    enc = cls_process(c, buf, len, &olen);
    esc_free(buf);
    assert_non_null(enc);
    print_message("unmatched post: %zu bytes in, %zu out\n", len, olen);
    assert_int_equal(esc_post_decode(enc, olen, &p, NULL, &err), ESC_OK);
    assert_int_equal(p.n_topics, 0);
    assert_null(p.topics);
    assert_string_equal(p.language, "und");
    assert_true(p.sentiment == 0.0);
    assert_string_equal(p.id, "p1");
    assert_string_equal(p.platform, "mastodon");
    assert_string_equal(p.source, "m1");
    assert_int_equal(p.created_at, 1763300000000);
    assert_int_equal(p.ingested_at, 1763300000500);
    assert_string_equal(p.ack_ref, "col-1:7");
    assert_string_equal(p.text, "");
    assert_null(p.author);
    assert_null(p.url);
    assert_null(p.lang);
    assert_null(p.author_name);
    assert_int_equal(p.n_hashtags, 0);
    assert_int_equal(p.n_mentions, 0);
    assert_int_equal(p.followers, 0);
    assert_int_equal(p.likes, 0);
    assert_true(olen < len * 2 / 3);
    esc_post_fini(&p);
    s_classify(c, "", "en", NULL, &p);
    assert_int_equal(p.n_topics, 0);
    assert_string_equal(p.language, "und");
    assert_true(p.sentiment == 0.0);
    esc_post_fini(&p);
    /* a post with topics keeps every field */
    s_classify(c, "El congreso aprobó la ley", "es", "#wow", &p);
    assert_true(p.n_topics > 0);
    assert_string_equal(p.text, "El congreso aprobó la ley");
    assert_string_equal(p.lang, "es");
    assert_int_equal(p.n_hashtags, 1);
    esc_post_fini(&p);
    assert_int_equal(cls_get_stats(c)->in, 3);
    assert_int_equal(cls_get_stats(c)->matched, 1);
    cls_destroy(&c);
}

static void
test_cls_process_language_and_sentiment(void **state)
{
    cls_t *c = s_cls(s_json);
    struct esc_post p;

    /* the text decides the language even when the platform's hint says otherwise (the
     * posts match through their hashtag field, which language ID does not read) */
    s_classify(c, "No es bueno lo que hizo el Congreso, qué vergüenza 😡", "en", NULL, &p);
    assert_string_equal(p.language, "es");
    assert_true(p.sentiment < -0.3);
    esc_post_fini(&p);
    s_classify(c, "Great news: the congress finally approved the health budget!", "es",
               "#congresoperu", &p);
    assert_int_equal(p.n_topics, 1);
    assert_string_equal(p.language, "en");
    assert_true(p.sentiment > 0.3);
    esc_post_fini(&p);
    s_classify(c, "El congreso sesiona el martes a las 10", NULL, NULL, &p);
    assert_string_equal(p.language, "es");
    assert_true(p.sentiment > -0.05 && p.sentiment < 0.05);
    esc_post_fini(&p);
    /* with no hint and no usable words language ID says "und" */
    s_classify(c, "12345 :-)", NULL, "#congresoperu", &p);
    assert_int_equal(p.n_topics, 1);
    assert_string_equal(p.language, "und");
    esc_post_fini(&p);
    /* the platform's hint is used only when the text says nothing */
    s_classify(c, "", "en", "#congresoperu", &p);
    assert_int_equal(p.n_topics, 1);
    assert_string_equal(p.language, "en");
    esc_post_fini(&p);
    cls_destroy(&c);
}

static void
test_cls_process_uses_post_hashtags_and_mentions(void **state)
{
    cls_t *c = s_cls(s_json);
    struct esc_post p;

    s_classify(c, "sin etiquetas", "es", "#congresoperu", &p);
    assert_int_equal(p.n_topics, 1);
    assert_string_equal(p.topics[0], "gob/congreso");
    esc_post_fini(&p);
    s_classify(c, "gracias", "es", "@JNE_Peru", &p);
    assert_int_equal(p.n_topics, 1);
    assert_string_equal(p.topics[0], "gob/elecciones");
    esc_post_fini(&p);
    cls_destroy(&c);
}

/* Topics that test the language in every way a query can: lang: with a term, NOT lang:, a
 * topic's exclude query, a team with an exclusion list; plus plain keyword topics. No lang:
 * atom can make a topic a candidate here, so language ID runs only for candidates that test
 * it and for matched posts. */
#define S_LANG_TEAMS                                                                          \
    "  { \"id\": \"g\", \"topics\": ["                                                        \
    "    { \"id\": \"es_x\", \"query\": \"lang:es AND congreso\" },"                          \
    "    { \"id\": \"not_en\", \"query\": \"congreso NOT lang:en\" },"                        \
    "    { \"id\": \"no_pt\", \"keywords\": [\"congreso\"], \"exclude\": \"lang:pt\" },"      \
    "    { \"id\": \"anemia\", \"keywords\": [\"anemia\"] } ] },"                             \
    "  { \"id\": \"h\", \"exclude\": { \"phrases\": [\"fraude\"] }, \"topics\": ["            \
    "    { \"id\": \"es_x\", \"query\": \"(congreso OR anemia) AND lang:es\" } ] }"

static const char s_lang_json[] = "{ \"teams\": [" S_LANG_TEAMS "] }";
/* The same plus a topic that is only lang:qu: the language must be known before the
 * candidates, so language ID runs first for every post, as it always did. */
static const char s_lang_qu_json[] =
    "{ \"teams\": [" S_LANG_TEAMS ","
    "  { \"id\": \"z\", \"topics\": [ { \"id\": \"qu\", \"query\": \"lang:qu\" } ] } ] }";

/* Classifies text (hint lang) and checks the topics against want (space-separated keys, ""
 * for none). */
static void
s_expect_topics(cls_t *c, const char *text, const char *lang, const char *want)
{
    struct esc_post p;
    char got[256];
    size_t off = 0;
    size_t i;

    s_classify(c, text, lang, NULL, &p);
    got[0] = '\0';
    for (i = 0; i < p.n_topics; i++) {
        off += (size_t)snprintf(got + off, sizeof(got) - off, "%s%s", i > 0 ? " " : "",
                                p.topics[i]);
    }
    if (strcmp(got, want) != 0) {
        fail_msg("\"%s\": topics \"%s\", want \"%s\"", text, got, want);
    }
    if (p.n_topics == 0) {
        assert_string_equal(p.language, "und");
        assert_true(p.sentiment == 0.0);
    }
    esc_post_fini(&p);
}

static void
test_cls_process_lang_queries_match_as_before(void **state)
{
    static const char es[] = "El congreso aprobó hoy la ley de presupuesto para la salud pública";
    static const char en[] = "The congreso approved the budget for public health today, finally";
    static const char pt[] = "O congreso aprovou hoje o orçamento da saúde pública do país";
    static const char fr[] = "El congreso y el fraude electoral: nadie explica nada de lo que pasó";
    static const char an[] = "La anemia infantil sigue alta en la sierra, dice el ministerio";
    cls_t *lazy = s_cls(s_lang_json);
    cls_t *eager = s_cls(s_lang_qu_json);
    cls_t *c;
    int round;

    assert_false(cls_match_lang_triggers(cls_get_conf(lazy)->match));
    assert_true(cls_match_lang_triggers(cls_get_conf(eager)->match));
    for (round = 0; round < 2; round++) {
        c = round == 0 ? lazy : eager;
        s_expect_topics(c, es, NULL, "g/es_x g/not_en g/no_pt h/es_x");
        s_expect_topics(c, en, NULL, "g/no_pt");
        s_expect_topics(c, pt, NULL, "g/not_en");
        /* the team's exclusion list removes its topic, not the other team's */
        s_expect_topics(c, fr, NULL, "g/es_x g/not_en g/no_pt");
        /* a topic that tests no language matches with language ID left for later */
        s_expect_topics(c, an, NULL, "g/anemia h/es_x");
        s_expect_topics(c, "nada que ver con nada de esto, de verdad", "es", "");
    }
    /* lang:qu alone: no usable words, so the platform's hint decides the language */
    s_expect_topics(eager, "12345", "qu", "z/qu");
    s_expect_topics(lazy, "12345", "qu", "");
    s_expect_topics(eager, "12345", "es", "");
    cls_destroy(&lazy);
    cls_destroy(&eager);
}

/* Encodes text through c; returns the message (caller frees) and its length in *olen. */
static char *
s_process(cls_t *c, const char *text, const char *lang, const char *tag, size_t *olen)
{
    size_t len;
    char *in = s_post("p1", text, lang, tag, &len);
    const char *enc = cls_process(c, in, len, olen);
    char *copy;

    esc_free(in);
    assert_non_null(enc);
    copy = esc_malloc(*olen);
    memcpy(copy, enc, *olen);
    return copy;
}

static void
test_cls_process_lazy_language_same_output(void **state)
{
    /* what a matched post carries does not depend on when language ID ran: the messages of
     * the lazy classifier are byte for byte those of the one that runs it first */
    static const char *const posts[][3] = {
        { "El congreso aprobó hoy la ley de presupuesto, qué vergüenza 😡", NULL, NULL },
        { "Great news: the congress finally approved the health budget!", "es", "#congresoperu" },
        { "La anemia infantil sigue alta en la sierra, es terrible y triste", "es-PE", NULL },
        { "Anemia: good progress in Puno, thanks to the nurses! 🎉", NULL, NULL },
        { "O congreso aprovou hoje o orçamento da saúde, ótimo trabalho", "pt", NULL },
        { "congreso", "en", NULL },
        { "anemia", NULL, NULL },
        { "", "es", "#congresoperu" },
        { "12345 anemia :-)", NULL, NULL },
        { "El congreso y el fraude electoral: nadie explica nada", NULL, "@jne_peru" },
        { "Nothing to see here, just a lovely day at the beach", "en", NULL },
        { "nada que ver", NULL, NULL },
        { "Allillanchu, congreso runakuna", "qu", NULL },
        { "anemia\xff\xfe congreso \xc3", NULL, NULL },
    };
    static const char json_a[] =
        "{ \"teams\": [" S_LANG_TEAMS ","
        "  { \"id\": \"k\", \"topics\": [ { \"id\": \"c\", \"keywords\": [\"#congresoperu\", "
        "\"@jne_peru\"] } ] } ] }";
    static const char json_b[] =
        "{ \"teams\": [" S_LANG_TEAMS ","
        "  { \"id\": \"k\", \"topics\": [ { \"id\": \"c\", \"keywords\": [\"#congresoperu\", "
        "\"@jne_peru\"] } ] },"
        "  { \"id\": \"z\", \"topics\": [ { \"id\": \"ay\", \"query\": \"lang:ay\" } ] } ] }";
    cls_t *lazy = s_cls(json_a);
    cls_t *eager = s_cls(json_b);
    size_t matched = 0;
    size_t i;

    assert_false(cls_match_lang_triggers(cls_get_conf(lazy)->match));
    assert_true(cls_match_lang_triggers(cls_get_conf(eager)->match));
    for (i = 0; i < sizeof(posts) / sizeof(posts[0]); i++) {
        size_t la = 0;
        size_t lb = 0;
        char *a = s_process(lazy, posts[i][0], posts[i][1], posts[i][2], &la);
        char *b = s_process(eager, posts[i][0], posts[i][1], posts[i][2], &lb);
        struct esc_post p;
        enum esc_msg_type type;
        struct esc_error err;

        assert_int_equal(esc_post_decode(b, lb, &p, &type, &err), ESC_OK);
        for (size_t k = 0; k < p.n_topics; k++) {
            assert_string_not_equal(p.topics[k], "z/ay"); /* the texts are not Aymara */
        }
        if (la != lb || memcmp(a, b, la) != 0) {
            fail_msg("post %zu \"%s\": the messages differ (language %s)", i, posts[i][0],
                     p.language);
        }
        matched += p.n_topics > 0;
        esc_post_fini(&p);
        esc_free(a);
        esc_free(b);
    }
    assert_true(matched >= 10);
    assert_int_equal(cls_get_stats(lazy)->matched, matched);
    cls_destroy(&lazy);
    cls_destroy(&eager);
}

static void
test_cls_process_fields_match_when_topics_test_them(void **state)
{
    /* the post's fields are tokenised only for the kinds some topic tests: each still
     * matches, alone or with the others in the config */
    static const char json_all[] =
        "{ \"teams\": [ { \"id\": \"f\", \"topics\": ["
        "  { \"id\": \"author\", \"query\": \"author:ana_q\" },"
        "  { \"id\": \"site\", \"query\": \"site:gob.pe\" },"
        "  { \"id\": \"platform\", \"query\": \"hola AND platform:bluesky\" },"
        "  { \"id\": \"tag\", \"keywords\": [\"#CongresoPerú\"] },"
        "  { \"id\": \"mention\", \"keywords\": [\"@jne_peru\"] } ] } ] }";
    static const char *const one[] = {
        "{ \"teams\": [ { \"id\": \"f\", \"topics\": [ { \"id\": \"author\", \"query\": "
        "\"author:ana_q\" } ] } ] }",
        "{ \"teams\": [ { \"id\": \"f\", \"topics\": [ { \"id\": \"site\", \"query\": "
        "\"site:gob.pe\" } ] } ] }",
        "{ \"teams\": [ { \"id\": \"f\", \"topics\": [ { \"id\": \"platform\", \"query\": "
        "\"hola AND platform:bluesky\" } ] } ] }",
        "{ \"teams\": [ { \"id\": \"f\", \"topics\": [ { \"id\": \"tag\", \"keywords\": "
        "[\"#CongresoPerú\"] } ] } ] }",
        "{ \"teams\": [ { \"id\": \"f\", \"topics\": [ { \"id\": \"mention\", \"keywords\": "
        "[\"@jne_peru\"] } ] } ] }",
    };
    struct esc_post in;
    struct esc_post p;
    enum esc_msg_type type;
    struct esc_error err;
    size_t len;
    size_t olen = 0;
    char *buf;
    const char *enc;
    cls_t *c;
    size_t i;

    esc_post_init(&in);
    in.id = esc_strdup("f1");
    in.platform = esc_strdup("bluesky");
    in.author = esc_strdup("@ana_q");
    in.url = esc_strdup("https://www.gob.pe/institucion/congreso/noticias/1");
    in.text = esc_strdup("hola a todos");
    in.created_at = 1763300000000;
    esc_strlist_push(&in.hashtags, &in.n_hashtags, "CongresoPerú");
    esc_strlist_push(&in.mentions, &in.n_mentions, "JNE_Peru");
    buf = esc_post_encode(&in, 0, &len);
    esc_post_fini(&in);
    for (i = 0; i <= sizeof(one) / sizeof(one[0]); i++) {
        c = s_cls(i == 0 ? json_all : one[i - 1]);
        enc = cls_process(c, buf, len, &olen);
        assert_non_null(enc);
        assert_int_equal(esc_post_decode(enc, olen, &p, &type, &err), ESC_OK);
        assert_int_equal(p.n_topics, i == 0 ? 5 : 1);
        if (i > 0) {
            assert_non_null(strstr(one[i - 1], strchr(p.topics[0], '/') + 1));
        }
        esc_post_fini(&p);
        cls_destroy(&c);
    }
    esc_free(buf);
}

static void
test_cls_process_invalid_messages_counted(void **state)
{
    cls_t *c = s_cls(s_json);
    struct esc_post p;
    size_t len;
    size_t olen = 0;
    char *enc;
    char *classified;
    const char *out;

    assert_null(cls_process(c, "\xc1garbage", 8, &olen));
    assert_null(cls_process(c, "", 0, &olen));
    /* a classified message is not a post */
    esc_post_init(&p);
    p.id = esc_strdup("x");
    p.platform = esc_strdup("jsonl");
    p.text = esc_strdup("congreso");
    classified = esc_post_encode(&p, 1, &len);
    esc_post_fini(&p);
    assert_null(cls_process(c, classified, len, &olen));
    esc_free(classified);
    assert_int_equal(cls_get_stats(c)->invalid, 3);
    assert_int_equal(cls_get_stats(c)->in, 3);
    /* and the classifier carries on */
    enc = s_post("ok", "congreso", NULL, NULL, &len);
    out = cls_process(c, enc, len, &olen);
    assert_non_null(out);
    esc_free(enc);
    cls_destroy(&c);
}

static void
test_cls_process_repairs_utf8(void **state)
{
    cls_t *c = s_cls(s_json);
    struct esc_post p;

    s_classify(c, "congreso\xff\xfe desnutrici\xc3\xb3n \xc3", NULL, NULL, &p);
    assert_int_equal(p.n_topics, 2);
    assert_string_equal(p.topics[0], "gob/congreso");
    assert_string_equal(p.topics[1], "dev/anemia");
    esc_post_fini(&p);
    assert_int_equal(cls_get_stats(c)->bad_utf8, 3);
    cls_destroy(&c);
}

static void
test_cls_process_caps_topics_per_message(void **state)
{
    size_t cap = 64 * 1024;
    char *json = esc_malloc(cap);
    size_t o = 0;
    cls_t *c;
    struct esc_post p;
    int i;

    o += (size_t)snprintf(json + o, cap - o, "{ \"teams\": [ { \"id\": \"t\", \"topics\": [");
    for (i = 0; i < ESC_POST_LIST_MAX + 44; i++) {
        o += (size_t)snprintf(json + o, cap - o,
                              "%s{ \"id\": \"k%03d\", \"keywords\": [\"x\"] }",
                              i > 0 ? ", " : "", i);
    }
    snprintf(json + o, cap - o, "] } ] }");
    c = s_cls(json);
    esc_free(json);
    s_classify(c, "x", NULL, NULL, &p);
    assert_int_equal(p.n_topics, ESC_POST_LIST_MAX);
    assert_string_equal(p.topics[0], "t/k000");
    assert_string_equal(p.topics[ESC_POST_LIST_MAX - 1], "t/k255");
    esc_post_fini(&p);
    cls_destroy(&c);
}

static void
test_cls_language_from_hint(void **state)
{
    static const char *const cases[][2] = {
        { "es-PE", "es" }, { "ES", "es" },   { "quz", "quz" }, { "en_US", "en" },
        { "zh-Hant", "zh" }, { "", "und" },  { "e", "und" },    { "english", "und" },
        { "es-", "es" },   { "e1", "und" },  { "es PE", "und" }, { "QUZ-PE", "quz" },
    };
    char out[8];
    size_t i;

    cls_language(NULL, out, sizeof(out));
    assert_string_equal(out, "und");
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        cls_language(cases[i][0], out, sizeof(out));
        if (strcmp(out, cases[i][1]) != 0) {
            fail_msg("hint \"%s\": got \"%s\", want \"%s\"", cases[i][0], out, cases[i][1]);
        }
    }
}

static void
test_cls_conf_section_and_errors(void **state)
{
    static const char unknown_key[] =
        "{ \"teams\": [ { \"id\": \"a\", \"topics\": [ { \"id\": \"x\", \"keywords\": [\"k\"] } ] }"
        " ], \"classifier\": { \"fold_enye\": true, \"bogus\": 1 } }";
    static const char bad_kw[] =
        "{ \"teams\": [ { \"id\": \"a\", \"topics\": [ { \"id\": \"x\", \"keywords\": [\"k\", "
        "\"...\"] } ] } ] }";
    static const char defaults[] =
        "{ \"teams\": [ { \"id\": \"a\", \"topics\": [ { \"id\": \"x\", \"keywords\": [\"k\"] } ] }"
        " ] }";
    struct esc_error err;
    struct esc_cfg *cfg;
    struct cls_conf conf;

    cfg = esc_cfg_load_string(unknown_key, "u.json", &err);
    assert_non_null(cfg);
    assert_int_equal(cls_conf_from_cfg(&conf, &cfg, &err), ESC_INVALID);
    assert_string_equal(err.text, "classifier.bogus: unknown key");
    assert_non_null(cfg); /* still ours */
    esc_cfg_free(&cfg);

    cfg = esc_cfg_load_string(bad_kw, "k.json", &err);
    assert_non_null(cfg);
    assert_int_equal(cls_conf_from_cfg(&conf, &cfg, &err), ESC_INVALID);
    assert_non_null(strstr(err.text, "teams[0].topics[0].keywords[1]:"));
    assert_string_equal(err.source, "k.json");
    esc_cfg_free(&cfg);

    cfg = esc_cfg_load_string(defaults, "d.json", &err);
    assert_int_equal(cls_conf_from_cfg(&conf, &cfg, &err), ESC_OK);
    assert_int_equal(conf.cc.grace_ms, 5000);
    assert_int_equal(conf.cc.drain_quiet_ms, 300);
    assert_false(conf.cc.fold_enye);
    assert_false(cls_match_opts(conf.match)->fold_enye);
    cls_conf_fini(&conf);
    cls_conf_fini(&conf); /* idempotent */
}

static void
s_write(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");

    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void
test_cls_reload_swaps_or_keeps(void **state)
{
    char dir[] = "/tmp/cls_reload_XXXXXX";
    char path[64];
    struct cls_conf conf;
    struct esc_error err;
    cls_t *c;
    struct esc_post p;

    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/escucha.json", dir);
    s_write(path, s_json);
    assert_int_equal(cls_conf_load(&conf, path, &err), ESC_OK);
    c = cls_new(&conf);
    assert_null(conf.match);

    /* a broken file: the running matcher stays */
    s_write(path, "{ \"teams\": [ ");
    assert_int_equal(cls_reload(c), ESC_INVALID);
    assert_int_equal(cls_match_n_topics(cls_get_conf(c)->match), 3);
    s_classify(c, "anemia", NULL, NULL, &p);
    assert_int_equal(p.n_topics, 1);
    esc_post_fini(&p);

    /* a keyword that normalises to nothing is also refused */
    s_write(path, "{ \"teams\": [ { \"id\": \"a\", \"topics\": [ { \"id\": \"x\", \"keywords\": "
                  "[\"!!\"] } ] } ] }");
    assert_int_equal(cls_reload(c), ESC_INVALID);
    assert_int_equal(cls_get_stats(c)->reloads, 0);

    /* a good file: new topics and options take effect */
    s_write(path, "{ \"teams\": [ { \"id\": \"nuevo\", \"topics\": [ { \"id\": \"anio\", "
                  "\"keywords\": [\"año\"] }, { \"id\": \"anemia\", \"keywords\": [\"anemia\"] } "
                  "] } ], \"classifier\": { \"fold_enye\": true } }");
    assert_int_equal(cls_reload(c), ESC_OK);
    assert_int_equal(cls_get_stats(c)->reloads, 1);
    assert_int_equal(cls_match_n_topics(cls_get_conf(c)->match), 2);
    assert_true(cls_get_conf(c)->cc.fold_enye);
    s_classify(c, "ano y anemia y congreso", NULL, NULL, &p);
    assert_int_equal(p.n_topics, 2);
    assert_string_equal(p.topics[0], "nuevo/anio");
    assert_string_equal(p.topics[1], "nuevo/anemia");
    esc_post_fini(&p);
    cls_destroy(&c);
    unlink(path);
    rmdir(dir);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cls_process_happy_path),
        cmocka_unit_test(test_cls_process_forwards_unmatched),
        cmocka_unit_test(test_cls_process_language_and_sentiment),
        cmocka_unit_test(test_cls_process_uses_post_hashtags_and_mentions),
        cmocka_unit_test(test_cls_process_lang_queries_match_as_before),
        cmocka_unit_test(test_cls_process_lazy_language_same_output),
        cmocka_unit_test(test_cls_process_fields_match_when_topics_test_them),
        cmocka_unit_test(test_cls_process_invalid_messages_counted),
        cmocka_unit_test(test_cls_process_repairs_utf8),
        cmocka_unit_test(test_cls_process_caps_topics_per_message),
        cmocka_unit_test(test_cls_language_from_hint),
        cmocka_unit_test(test_cls_conf_section_and_errors),
        cmocka_unit_test(test_cls_reload_swaps_or_keeps),
    };

    esc_log_init("classifier-test", ESC_LOG_ERROR);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
