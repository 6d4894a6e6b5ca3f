#define ESC_LOG_MODULE "test"
/* Unit tests of classifier/match.c. The core is one data-driven table: a text (plus optional
 * post hashtags/mentions), the keywords of one topic, fold_enye, and whether it must match.
 * It pins down the keyword rules of docs/classifier.md: accents both ways, ñ kept or folded,
 * case and width, hashtags whole and split, #tag and @handle keywords, phrases, word
 * boundaries, apostrophes, emoji, URLs, invalid UTF-8, empty text (the query language has its
 * own table, tests/data/classifier/queries.jsonl). Further tests cover several topics and
 * teams (config order, no duplicates, only candidate topics evaluated), compile errors with
 * their key path and column, team exclusion lists from a config, --explain output, very long
 * texts, reuse of one result across matchers, and 10,000 generated topics. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "escucha/esc_cfg.h"
#include "escucha/esc_mem.h"
#include "escucha/esc_util.h"

#include "match.h"
#include "text.h"

struct mcase {
    const char *text;
    const char *kw[5];    /* keywords of the one topic, NULL-terminated */
    bool fold_enye;
    bool expect;          /* true: the topic must match */
    const char *hashtag;  /* optional entry of the post's hashtags */
    const char *mention;  /* optional entry of the post's mentions */
};

#define K(...) { __VA_ARGS__, NULL }
#define YES true
#define NO false

static const struct mcase s_cases[] = {
    /* accents, both ways */
    { "La elección fue ayer", K("elección"), false, YES, NULL, NULL },
    { "LA ELECCION FUE AYER", K("elección"), false, YES, NULL, NULL },
    { "la eleccion", K("ELECCIÓN"), false, YES, NULL, NULL },
    { "Elecciónes generales", K("elecciones"), false, YES, NULL, NULL },
    { "ELECCIONES", K("elecciones"), false, YES, NULL, NULL },
    { "digitalizacion del estado", K("digitalización"), false, YES, NULL, NULL },
    { "Ünïcödé", K("unicode"), false, YES, NULL, NULL },
    { "eleccio\xcc\x81n", K("elección"), false, YES, NULL, NULL },
    /* ñ is a letter of its own unless fold_enye */
    { "Feliz año", K("año"), false, YES, NULL, NULL },
    { "Feliz ano", K("año"), false, NO, NULL, NULL },
    { "Feliz año", K("ano"), false, NO, NULL, NULL },
    { "Feliz AÑO", K("año"), false, YES, NULL, NULL },
    { "Feliz ano", K("año"), true, YES, NULL, NULL },
    { "Feliz año", K("ano"), true, YES, NULL, NULL },
    { "el niño", K("nino"), false, NO, NULL, NULL },
    { "el niño", K("nino"), true, YES, NULL, NULL },
    { "el an\xcc\x83o", K("año"), false, YES, NULL, NULL },
    /* case and width */
    { "CoNgReSo", K("congreso"), false, YES, NULL, NULL },
    { "Die Straße", K("strasse"), false, YES, NULL, NULL },
    { "\xef\xbc\xa3\xef\xbd\x8f\xef\xbd\x8e\xef\xbd\x87\xef\xbd\x92\xef\xbd\x85\xef\xbd\x93"
      "\xef\xbd\x8f", K("congreso"), false, YES, NULL, NULL },
    /* hashtags: a term matches the whole tag and its parts; #tag only whole tags */
    { "#Elecciones ya", K("elecciones"), false, YES, NULL, NULL },
    { "#EleccionesPerú2026", K("elecciones"), false, YES, NULL, NULL },
    { "#EleccionesPerú2026", K("peru"), false, YES, NULL, NULL },
    { "#EleccionesPerú2026", K("2026"), false, YES, NULL, NULL },
    { "#EleccionesPerú2026", K("#eleccionesperu2026"), false, YES, NULL, NULL },
    { "#EleccionesPerú2026", K("#Elecciones"), false, NO, NULL, NULL },
    { "#elecciones_2026", K("elecciones"), false, YES, NULL, NULL },
    { "#elecciones_2026", K("#elecciones_2026"), false, YES, NULL, NULL },
    { "#elecciones_2026", K("#elecciones2026"), false, NO, NULL, NULL },
    { "elecciones 2026", K("#elecciones"), false, NO, NULL, NULL },
    { "#CongresoPerú hoy", K("#CongresoPerú"), false, YES, NULL, NULL },
    { "#congresoperu", K("#CongresoPerú"), false, YES, NULL, NULL },
    { "sin etiquetas", K("#congresoperu"), false, YES, "CongresoPerú", NULL },
    { "hola", K("congreso"), false, NO, "congreso", NULL },
    { "C#congreso", K("#congreso"), false, NO, NULL, NULL },
    /* mentions */
    { "gracias @jne_peru", K("@jne_peru"), false, YES, NULL, NULL },
    { "gracias @JNE_PERU.", K("@jne_peru"), false, YES, NULL, NULL },
    { "gracias jne_peru", K("@jne_peru"), false, NO, NULL, NULL },
    { "gracias @jne_peru", K("jne_peru"), false, NO, NULL, NULL },
    { "@ana@mastodon.social dijo", K("@ana"), false, YES, NULL, NULL },
    { "@ana@mastodon.social dijo", K("@ana@mastodon.social"), false, YES, NULL, NULL },
    { "hola", K("@jne_peru"), false, YES, NULL, "jne_peru" },
    { "escribe a ana@jne.gob.pe", K("@jne"), false, NO, NULL, NULL },
    /* phrases: consecutive tokens, in order; punctuation and spacing do not matter */
    { "el poder legislativo aprobó", K("poder legislativo"), false, YES, NULL, NULL },
    { "el PODER Legislativo", K("\"poder legislativo\""), false, YES, NULL, NULL },
    { "legislativo poder", K("poder legislativo"), false, NO, NULL, NULL },
    { "poder ejecutivo y legislativo", K("poder legislativo"), false, NO, NULL, NULL },
    { "el poder, legislativo", K("poder legislativo"), false, YES, NULL, NULL },
    { "poder\nlegislativo", K("poder legislativo"), false, YES, NULL, NULL },
    { "informal work", K("informal work"), false, YES, NULL, NULL },
    { "informal-work", K("informal work"), false, YES, NULL, NULL },
    { "informal https://x.example/y work", K("informal work"), false, NO, NULL, NULL },
    { "el #PoderLegislativo", K("poder legislativo"), false, NO, NULL, NULL },
    { "#Elecciones 2026 ya", K("elecciones 2026"), false, YES, NULL, NULL },
    { "poder legislativo", K("poder"), false, YES, NULL, NULL },
    { "el poder", K("poder legislativo"), false, NO, NULL, NULL },
    { "transformación   digital", K("transformacion digital"), false, YES, NULL, NULL },
    { "poder poder legislativo", K("poder legislativo"), false, YES, NULL, NULL },
    /* word boundaries: whole tokens only, no stemming */
    { "la congresista habló", K("congreso"), false, NO, NULL, NULL },
    { "el congreso", K("congresista"), false, NO, NULL, NULL },
    { "los votos", K("voto"), false, NO, NULL, NULL },
    { "mi voto", K("votos"), false, NO, NULL, NULL },
    { "anemia infantil", K("anemia"), false, YES, NULL, NULL },
    { "niño anémico", K("anemia"), false, NO, NULL, NULL },
    { "precongreso", K("congreso"), false, NO, NULL, NULL },
    { "elecciones2026", K("elecciones"), false, NO, NULL, NULL },
    /* apostrophes (Quechua) */
    { "wawa'kuna pukllanku", K("wawa'kuna"), false, YES, NULL, NULL },
    { "wawa\xe2\x80\x99kuna", K("wawa'kuna"), false, YES, NULL, NULL },
    { "wawa\xca\xbckuna", K("wawa\xe2\x80\x99kuna"), false, YES, NULL, NULL },
    { "wawa'kuna", K("wawa"), false, NO, NULL, NULL },
    { "dijo 'congreso'", K("congreso"), false, YES, NULL, NULL },
    { "Peru's congress", K("peru"), false, NO, NULL, NULL },
    /* emoji next to words */
    { "\xf0\x9f\x97\xb3\xef\xb8\x8f" "elecciones\xf0\x9f\x87\xb5\xf0\x9f\x87\xaa",
      K("elecciones"), false, YES, NULL, NULL },
    { "\xf0\x9f\x94\xa5" "congreso\xf0\x9f\x94\xa5", K("congreso"), false, YES, NULL, NULL },
    /* URLs are skipped entirely; a bare domain is ordinary text */
    { "ver https://congreso.gob.pe/pleno", K("congreso"), false, NO, NULL, NULL },
    { "ver www.congreso.gob.pe", K("congreso"), false, NO, NULL, NULL },
    { "ver congreso.gob.pe", K("congreso"), false, YES, NULL, NULL },
    { "https://x.example/congreso y congreso", K("congreso"), false, YES, NULL, NULL },
    /* invalid UTF-8 is repaired; a bad byte separates words */
    { "congreso\xff\xfe", K("congreso"), false, YES, NULL, NULL },
    { "\xc3" "congreso", K("congreso"), false, YES, NULL, NULL },
    { "congr\xff" "eso", K("congreso"), false, NO, NULL, NULL },
    /* empty text */
    { "", K("congreso"), false, NO, NULL, NULL },
    { "   \t ", K("congreso"), false, NO, NULL, NULL },
    /* any keyword of the topic */
    { "soborno en el congreso", K("corrupción", "soborno"), false, YES, NULL, NULL },
    { "nada que ver", K("corrupción", "soborno", "#corrupcion", "@onpe"), false, NO, NULL,
      NULL },
    /* English */
    { "Bribery allegations", K("bribery"), false, YES, NULL, NULL },
    { "DIGITAL GOVERNMENT push", K("digital government"), false, YES, NULL, NULL },
    { "malnutrition rates", K("malnutrition"), false, YES, NULL, NULL },
    { "the elections", K("election"), false, NO, NULL, NULL },
    /* hyphenated keywords are phrases */
    { "covid-19 hoy", K("covid-19"), false, YES, NULL, NULL },
    { "COVID 19", K("covid-19"), false, YES, NULL, NULL },
    { "covid19", K("covid-19"), false, NO, NULL, NULL },
};

static cls_match_t *
s_one_topic(const char *const *kw, bool fold_enye)
{
    struct cls_text_opts o = { .fold_enye = fold_enye };
    cls_match_t *m = cls_match_new(&o);
    struct esc_error err;
    size_t n = 0;

    while (kw[n] != NULL) {
        n++;
    }
    memset(&err, 0, sizeof(err));
    if (cls_match_add_topic(m, "t/x", kw, n, "teams[0].topics[0]", &err) != 0) {
        fail_msg("compile failed: %s", err.text);
    }
    cls_match_build(m);
    return m;
}

static size_t
s_run(const cls_match_t *m, cls_text_t *t, struct cls_match_result *r, const char *text)
{
    cls_text_tokenize(t, cls_match_opts(m), text, strlen(text));
    return cls_match_run(m, t, NULL, r);
}

static void
test_match_happy_path(void **state)
{
    static const char *const kw[] = { "congreso", "poder legislativo", "#CongresoPerú", NULL };
    cls_match_t *m = s_one_topic(kw, false);
    cls_text_t *t = cls_text_new();
    struct cls_match_result r;

    cls_match_result_init(&r);
    assert_int_equal(cls_match_n_topics(m), 1);
    assert_int_equal(cls_match_n_keywords(m), 3);
    assert_string_equal(cls_match_topic_key(m, 0), "t/x");
    assert_int_equal(s_run(m, t, &r, "Hoy el PODER Legislativo votó"), 1);
    assert_int_equal(r.hits[0].topic, 0);
    assert_int_equal(r.n_candidates, 1);
    assert_int_equal(s_run(m, t, &r, "nada que ver"), 0);
    assert_int_equal(r.n_candidates, 0);
    cls_match_result_fini(&r);
    cls_text_destroy(&t);
    cls_match_destroy(&m);
    assert_null(m);
    cls_match_destroy(&m);
}

static void
test_match_table(void **state)
{
    cls_text_t *t = cls_text_new();
    struct cls_match_result r;
    size_t i;
    size_t yes = 0;

    cls_match_result_init(&r);
    assert_true(sizeof(s_cases) / sizeof(s_cases[0]) >= 60);
    for (i = 0; i < sizeof(s_cases) / sizeof(s_cases[0]); i++) {
        const struct mcase *c = &s_cases[i];
        cls_match_t *m = s_one_topic(c->kw, c->fold_enye);
        size_t n;

        cls_text_tokenize(t, cls_match_opts(m), c->text, strlen(c->text));
        if (c->hashtag != NULL) {
            cls_text_add_hashtag(t, cls_match_opts(m), c->hashtag);
        }
        if (c->mention != NULL) {
            cls_text_add_mention(t, cls_match_opts(m), c->mention);
        }
        n = cls_match_run(m, t, NULL, &r);
        if ((n == 1) != c->expect) {
            fail_msg("case %zu: text \"%s\" keyword \"%s\"%s: got %s, want %s", i, c->text,
                     c->kw[0], c->fold_enye ? " (fold_enye)" : "", n ? "match" : "no match",
                     c->expect ? "match" : "no match");
        }
        yes += c->expect ? 1 : 0;
        cls_match_destroy(&m);
    }
    /* the table exercises both outcomes in quantity */
    assert_true(yes >= 30);
    assert_true(sizeof(s_cases) / sizeof(s_cases[0]) - yes >= 25);
    cls_match_result_fini(&r);
    cls_text_destroy(&t);
}

static const char s_cfg_json[] =
    "{ \"teams\": ["
    "  { \"id\": \"gob\", \"topics\": ["
    "    { \"id\": \"congreso\", \"keywords\": [\"congreso\", \"poder legislativo\", "
    "      \"#CongresoPerú\"] },"
    "    { \"id\": \"elecciones\", \"keywords\": [\"elecciones\", \"elección\", \"voto\", "
    "      \"@jne_peru\"] },"
    "    { \"id\": \"corrupcion\", \"keywords\": [\"corrupción\", \"soborno\"] } ] },"
    "  { \"id\": \"dev\", \"topics\": ["
    "    { \"id\": \"digital\", \"keywords\": [\"transformación digital\", \"congreso digital\"] },"
    "    { \"id\": \"anemia\", \"keywords\": [\"anemia\"] },"
    "    { \"id\": \"poder\", \"keywords\": [\"poder\", \"poder judicial\"] } ] } ] }";

static cls_match_t *
s_from_json(const char *json, bool fold_enye, struct esc_error *err)
{
    struct cls_text_opts o = { .fold_enye = fold_enye };
    struct esc_cfg *cfg = esc_cfg_load_string(json, "test.json", err);
    cls_match_t *m;

    if (cfg == NULL) {
        fail_msg("config: %s", err->text);
    }
    m = cls_match_from_cfg(cfg, &o, err);
    esc_cfg_free(&cfg);
    return m;
}

static void
test_match_topics_in_config_order_without_duplicates(void **state)
{
    struct esc_error err;
    cls_match_t *m = s_from_json(s_cfg_json, false, &err);
    cls_text_t *t = cls_text_new();
    struct cls_match_result r;

    assert_non_null(m);
    cls_match_result_init(&r);
    assert_int_equal(cls_match_n_topics(m), 6);
    assert_string_equal(cls_match_topic_key(m, 5), "dev/poder");
    /* the last topic is mentioned first; every topic several times */
    assert_int_equal(s_run(m, t, &r,
                           "Poder judicial y #CongresoPerú: el congreso digital, anemia, "
                           "ANEMIA, soborno; @jne_peru pide tu voto en la elección. "
                           "Congreso, congreso, soborno, poder."),
                     6);
    assert_int_equal(r.hits[0].topic, 0);
    assert_int_equal(r.hits[1].topic, 1);
    assert_int_equal(r.hits[2].topic, 2);
    assert_int_equal(r.hits[3].topic, 3);
    assert_int_equal(r.hits[4].topic, 4);
    assert_int_equal(r.hits[5].topic, 5);
    /* two topics share the first token "poder"; one text can match a phrase of each */
    assert_int_equal(s_run(m, t, &r, "el poder judicial"), 1);
    assert_int_equal(r.hits[0].topic, 5);
    assert_int_equal(s_run(m, t, &r, "el poder legislativo"), 2);
    assert_int_equal(r.hits[0].topic, 0);
    assert_int_equal(r.hits[1].topic, 5);
    /* the same result is reused: nothing leaks from one post to the next */
    assert_int_equal(s_run(m, t, &r, "nada"), 0);
    assert_int_equal(s_run(m, t, &r, "anemia"), 1);
    assert_int_equal(r.hits[0].topic, 4);
    cls_match_result_fini(&r);
    cls_text_destroy(&t);
    cls_match_destroy(&m);
}

static void
test_match_compile_errors_name_the_keyword(void **state)
{
    static const struct cls_text_opts o = { .fold_enye = false };
    static const char *const ok[] = { "congreso", NULL };
    static const char *const bad[] = { "fine", "  \"!!!\"  ", NULL };
    static const char *const url[] = { "https://congreso.gob.pe", NULL };
    static const char *const empty_tag[] = { "# @ ...", NULL };
    cls_match_t *m = cls_match_new(&o);
    struct esc_error err;
    char longp[400];
    const char *lp[2] = { longp, NULL };
    size_t i;

    memset(&err, 0, sizeof(err));
    assert_int_equal(cls_match_add_topic(m, "a/b", ok, 1, "teams[0].topics[0]", &err), 0);
    assert_int_equal(cls_match_add_topic(m, "a/c", bad, 2, "teams[0].topics[1]", &err), -1);
    assert_non_null(strstr(err.text, "teams[0].topics[1].keywords[1]: keyword"));
    assert_non_null(strstr(err.text, "nothing to match"));
    assert_int_equal(cls_match_add_topic(m, "a/d", url, 1, "teams[0].topics[1]", &err), -1);
    assert_non_null(strstr(err.text, "teams[0].topics[1].keywords[0]:"));
    assert_int_equal(cls_match_add_topic(m, "a/d", empty_tag, 1, "teams[0].topics[1]", &err),
                     -1);
    for (i = 0; i < CLS_PHRASE_MAX + 1; i++) {
        memcpy(longp + 2 * i, "w ", 2);
    }
    longp[2 * i] = '\0';
    assert_int_equal(cls_match_add_topic(m, "a/e", lp, 1, "teams[0].topics[1]", &err), -1);
    assert_non_null(strstr(err.text, "phrase has 33 words"));
    /* failed topics left nothing behind */
    assert_int_equal(cls_match_n_topics(m), 1);
    assert_int_equal(cls_match_n_keywords(m), 1);
    cls_match_build(m);
    cls_match_destroy(&m);
}

static void
test_match_from_cfg_reports_key_path(void **state)
{
    static const char json[] =
        "{ \"teams\": ["
        "  { \"id\": \"a\", \"topics\": [ { \"id\": \"x\", \"keywords\": [\"ok\"] } ] },"
        "  { \"id\": \"b\", \"topics\": [ { \"id\": \"y\", \"keywords\": [\"uno\", \"dos\", "
        "    \"\xf0\x9f\x94\xa5\xf0\x9f\x94\xa5\"] } ] } ] }";
    struct esc_error err;
    cls_match_t *m = s_from_json(json, false, &err);

    assert_null(m);
    assert_string_equal(err.source, "test.json");
    assert_memory_equal(err.text, "teams[1].topics[0].keywords[2]: keyword",
                        strlen("teams[1].topics[0].keywords[2]: keyword"));
}

static void
test_match_fold_enye_option(void **state)
{
    static const char *const kw[] = { "año", NULL };
    cls_match_t *keep = s_one_topic(kw, false);
    cls_match_t *fold = s_one_topic(kw, true);
    cls_text_t *t = cls_text_new();
    struct cls_match_result r;

    cls_match_result_init(&r);
    assert_false(cls_match_opts(keep)->fold_enye);
    assert_true(cls_match_opts(fold)->fold_enye);
    assert_int_equal(s_run(keep, t, &r, "ANO"), 0);
    assert_int_equal(s_run(fold, t, &r, "ANO"), 1);
    assert_int_equal(s_run(keep, t, &r, "AÑO"), 1);
    assert_int_equal(s_run(fold, t, &r, "AÑO"), 1);
    cls_match_result_fini(&r);
    cls_text_destroy(&t);
    cls_match_destroy(&keep);
    cls_match_destroy(&fold);
}

static void
test_match_long_text_and_many_topics(void **state)
{
    static const struct cls_text_opts o = { .fold_enye = false };
    cls_match_t *m = cls_match_new(&o);
    cls_text_t *t = cls_text_new();
    struct cls_match_result r;
    struct esc_error err;
    size_t len = 60000;
    char *text = esc_malloc(len + 64);
    size_t i;

    cls_match_result_init(&r);
    for (i = 0; i < 2000; i++) {
        char kwbuf[2][32];
        const char *kw[2] = { kwbuf[0], kwbuf[1] };
        char key[32];

        snprintf(kwbuf[0], sizeof(kwbuf[0]), "tema%zu", i);
        snprintf(kwbuf[1], sizeof(kwbuf[1]), "frase %zu", i);
        snprintf(key, sizeof(key), "t/%zu", i);
        assert_int_equal(cls_match_add_topic(m, key, kw, 2, "teams[0].topics[0]", &err), (int)i);
    }
    cls_match_build(m);
    for (i = 0; i + 6 <= len; i += 6) {
        memcpy(text + i, "palab ", 6);
    }
    snprintf(text + i, 64, " tema1999 frase 7 TEMA0");
    assert_int_equal(s_run(m, t, &r, text), 3);
    assert_int_equal(r.hits[0].topic, 0);
    assert_int_equal(r.hits[1].topic, 7);
    assert_int_equal(r.hits[2].topic, 1999);
    /* a result sized for a smaller matcher grows for this one */
    cls_match_result_fini(&r);
    cls_match_result_init(&r);
    r.gen = UINT32_MAX; /* wrap-around of the generation counter is handled */
    assert_int_equal(s_run(m, t, &r, "tema5 tema5 frase 5"), 1);
    assert_int_equal(s_run(m, t, &r, "tema6"), 1);
    assert_int_equal(r.hits[0].topic, 6);
    esc_free(text);
    cls_match_result_fini(&r);
    cls_text_destroy(&t);
    cls_match_destroy(&m);
}

/* A matcher of query topics (NULL-terminated {key, query, exclude} triples), no team. */
static cls_match_t *
s_queries(const char *const (*topics)[3], bool fold_enye)
{
    struct cls_text_opts o = { .fold_enye = fold_enye };
    cls_match_t *m = cls_match_new(&o);
    struct esc_error err;
    size_t i;

    for (i = 0; topics[i][0] != NULL; i++) {
        struct cls_topic_src src;

        memset(&src, 0, sizeof(src));
        src.key = topics[i][0];
        src.query = topics[i][1];
        src.exclude = topics[i][2];
        src.team = -1;
        if (cls_match_add_topic_src(m, &src, "teams[0].topics[0]", &err) != (int)i) {
            fail_msg("topic %zu: %s", i, err.text);
        }
    }
    cls_match_build(m);
    return m;
}

static void
test_match_queries_evaluate_only_candidates(void **state)
{
    static const char *const topics[][3] = {
        { "g/elecciones", "(elecciones OR voto) AND peru", NULL },
        { "g/fraude", "fraude NEAR/3 elecciones", NULL },
        { "g/anemia", "anemia", NULL },
        { "g/congreso", "congreso", "fujimori" },
        { "g/es", "lang:es AND congreso", NULL },
        { "g/vot", "vot* -nulo", NULL },
        { NULL, NULL, NULL },
    };
    cls_match_t *m = s_queries(topics, false);
    cls_text_t *t = cls_text_new();
    struct cls_match_result r;

    cls_match_result_init(&r);
    assert_int_equal(cls_match_n_topics(m), 6);
    assert_int_equal(cls_match_n_queries(m), 6);
    /* elecciones, voto, peru, fraude, anemia, congreso, fujimori, lang:es, vot*, nulo */
    assert_int_equal(cls_match_n_atoms(m), 10);
    assert_int_equal(s_run(m, t, &r, "fraude en las elecciones del Perú"), 2);
    assert_int_equal(r.hits[0].topic, 0);
    assert_int_equal(r.hits[1].topic, 1);
    assert_int_equal(r.n_candidates, 2);
    /* g/es is a candidate (congreso; lang:es is too common to be required) but has no
     * language; g/congreso matches */
    assert_int_equal(s_run(m, t, &r, "el congreso"), 1);
    assert_int_equal(r.hits[0].topic, 3);
    assert_int_equal(r.n_candidates, 2);
    cls_text_add_field(t, cls_match_opts(m), CLS_TOK_LANG, "es");
    assert_int_equal(cls_match_run(m, t, NULL, &r), 2);
    /* the exclude query removes it; nothing unrelated is evaluated */
    assert_int_equal(s_run(m, t, &r, "el congreso de fujimori"), 0);
    assert_int_equal(r.n_candidates, 2);
    /* peru alone does not make g/elecciones a candidate, nor elecciones alone g/fraude */
    assert_int_equal(s_run(m, t, &r, "elecciones en el peru"), 1);
    assert_int_equal(r.n_candidates, 1);
    assert_int_equal(s_run(m, t, &r, "votamos todos, nadie votó nulo"), 0);
    assert_int_equal(s_run(m, t, &r, "votamos todos"), 1);
    assert_int_equal(r.hits[0].topic, 5);
    assert_int_equal(s_run(m, t, &r, "nada que ver aquí"), 0);
    assert_int_equal(r.n_candidates, 0);
    cls_match_result_fini(&r);
    cls_text_destroy(&t);
    cls_match_destroy(&m);
}

static void
test_match_query_errors_name_key_path_and_column(void **state)
{
    static const struct cls_text_opts o = { .fold_enye = false };
    static const char *const authors[] = { "@bot", "@" };
    cls_match_t *m = cls_match_new(&o);
    struct cls_topic_src src;
    struct cls_team_src team;
    struct esc_error err;

    memset(&err, 0, sizeof(err));
    memset(&src, 0, sizeof(src));
    src.key = "a/b";
    src.query = "congreso";
    src.team = -1;
    assert_int_equal(cls_match_add_topic_src(m, &src, "teams[0].topics[0]", &err), 0);
    src.query = "congreso AND (voto";
    assert_int_equal(cls_match_add_topic_src(m, &src, "teams[0].topics[2]", &err), -1);
    assert_string_equal(err.text, "teams[0].topics[2].query: column 14: unbalanced parenthesis");
    assert_int_equal(err.column, 14);
    src.query = "voto";
    src.exclude = "fraude OR";
    assert_int_equal(cls_match_add_topic_src(m, &src, "teams[0].topics[2]", &err), -1);
    assert_string_equal(err.text,
                        "teams[0].topics[2].exclude: column 8: OR needs a term on each side");
    src.query = NULL;
    src.exclude = NULL;
    assert_int_equal(cls_match_add_topic_src(m, &src, "teams[0].topics[3]", &err), -1);
    assert_string_equal(err.text, "teams[0].topics[3]: a topic needs a query or at least one "
                                  "keyword");
    memset(&team, 0, sizeof(team));
    team.id = "a";
    team.authors = authors;
    team.n_authors = 2;
    assert_int_equal(cls_match_add_team(m, &team, "teams[0]", &err), -1);
    assert_string_equal(err.text, "teams[0].exclude.authors[1]: '@' is not a handle");
    /* nothing of the failed topics and team is left */
    assert_int_equal(cls_match_n_topics(m), 1);
    assert_int_equal(cls_match_n_atoms(m), 1);
    cls_match_build(m);
    cls_match_destroy(&m);
}

static const char s_cfg_teams[] =
    "{ \"teams\": ["
    "  { \"id\": \"gob\", \"exclude\": { \"authors\": [\"@bot_spam\"], "
    "      \"sites\": [\"spam.example\"], \"phrases\": [\"sorteo gratis\", \"#publicidad\"] },"
    "    \"topics\": ["
    "    { \"id\": \"congreso\", \"keywords\": [\"congreso\"], \"query\": \"senado AND pleno\" },"
    "    { \"id\": \"anio\", \"query\": \"año nuevo\", \"fold_enye\": true },"
    "    { \"id\": \"site\", \"query\": \"site:gob.pe\", \"exclude\": \"fake\" } ] },"
    "  { \"id\": \"dev\", \"topics\": ["
    "    { \"id\": \"congreso\", \"keywords\": [\"congreso\"] },"
    "    { \"id\": \"anio\", \"query\": \"año\" } ] } ] }";

/* Tokenises text plus an author and a post url, as the classifier does. */
static size_t
s_run_post(const cls_match_t *m, cls_text_t *t, struct cls_match_result *r, const char *text,
           const char *author, const char *url)
{
    cls_text_tokenize(t, cls_match_opts(m), text, strlen(text));
    cls_text_add_field(t, cls_match_opts(m), CLS_TOK_AUTHOR, author);
    cls_text_add_field(t, cls_match_opts(m), CLS_TOK_LINK, url);
    return cls_match_run(m, t, NULL, r);
}

static void
test_match_from_cfg_team_exclusions_and_fold(void **state)
{
    struct esc_error err;
    cls_match_t *m = s_from_json(s_cfg_teams, false, &err);
    cls_text_t *t = cls_text_new();
    struct cls_match_result r;

    assert_non_null(m);
    cls_match_result_init(&r);
    assert_int_equal(cls_match_n_topics(m), 5);
    assert_string_equal(cls_match_topic_key(m, 3), "dev/congreso");
    /* both teams' congreso topics */
    assert_int_equal(s_run_post(m, t, &r, "el congreso", "@ana", NULL), 2);
    assert_int_equal(r.hits[0].topic, 0);
    assert_int_equal(r.hits[1].topic, 3);
    /* gob's lists remove the post from gob's topics only */
    assert_int_equal(s_run_post(m, t, &r, "el congreso", "@bot_spam", NULL), 1);
    assert_int_equal(r.hits[0].topic, 3);
    assert_int_equal(s_run_post(m, t, &r, "congreso sorteo GRATIS", NULL, NULL), 1);
    assert_int_equal(s_run_post(m, t, &r, "congreso #Publicidad", NULL, NULL), 1);
    assert_int_equal(s_run_post(m, t, &r, "congreso", NULL, "https://www.spam.example/a"), 1);
    assert_int_equal(r.hits[0].topic, 3);
    /* keywords and query are alternatives */
    assert_int_equal(s_run_post(m, t, &r, "senado en pleno", NULL, NULL), 1);
    assert_int_equal(r.hits[0].topic, 0);
    /* fold_enye per topic: gob/anio folds ñ, dev/anio does not */
    assert_int_equal(s_run_post(m, t, &r, "feliz ano nuevo", NULL, NULL), 1);
    assert_int_equal(r.hits[0].topic, 1);
    assert_int_equal(s_run_post(m, t, &r, "feliz año nuevo", NULL, NULL), 2);
    assert_int_equal(r.hits[0].topic, 1);
    assert_int_equal(r.hits[1].topic, 4);
    /* site: from the post url, with the topic's exclude query */
    assert_int_equal(s_run_post(m, t, &r, "nota", NULL, "https://www.onpe.gob.pe/x"), 1);
    assert_int_equal(r.hits[0].topic, 2);
    assert_int_equal(s_run_post(m, t, &r, "fake", NULL, "https://www.onpe.gob.pe/x"), 0);
    cls_match_result_fini(&r);
    cls_text_destroy(&t);
    cls_match_destroy(&m);
}

static void
test_match_explain_shows_clauses_and_near_misses(void **state)
{
    static const char *const topics[][3] = {
        { "g/elecciones", "(elecciones OR voto) AND peru", NULL },
        { "g/fraude", "fraude NEAR/1 elecciones", NULL },
        { "g/poder", "\"poder judicial\" OR tribunal", NULL },
        { "g/congreso", "congreso", "fujimori OR keiko" },
        { "g/otro", "ministerio", NULL },
        { NULL, NULL, NULL },
    };
    cls_match_t *m = s_queries(topics, false);
    cls_text_t *t = cls_text_new();
    struct cls_match_result r;
    const char *text = "fraude y más fraude en las elecciones, el poder del congreso y keiko; "
                       "peru";
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);

    cls_match_result_init(&r);
    cls_text_tokenize(t, cls_match_opts(m), text, strlen(text));
    cls_match_explain(m, t, NULL, &r, f);
    fclose(f);
    assert_string_equal(buf, "topics:\n"
                             "  g/elecciones query=\"(elecciones OR voto) AND peru\"\n"
                             "near misses:\n"
                             "  g/fraude failed query=\"fraude NEAR/1 elecciones\" (terms not "
                             "within the distance)\n"
                             "  g/poder failed query=\"\\\"poder judicial\\\"\" (words found, but "
                             "not together in this order)\n"
                             "  g/congreso excluded by exclude=\"keiko\"\n");
    esc_free(buf); /* open_memstream allocates with malloc; esc_free is free */
    cls_match_result_fini(&r);
    cls_text_destroy(&t);
    cls_match_destroy(&m);
}

static void
test_match_long_posts_and_proximity(void **state)
{
    static const char *const topics[][3] = {
        { "t/near", "(uno OR dos) NEAR/0 tres", NULL },
        { "t/chain", "uno NEAR/1 dos NEAR/1 cuatro", NULL },
        { "t/sloppy", "\"uno dos cinco\"~2", NULL },
        { "t/phrase", "\"dos uno dos uno cinco\"", NULL },
        { NULL, NULL, NULL },
    };
    cls_match_t *m = s_queries(topics, false);
    cls_text_t *t = cls_text_new();
    struct cls_match_result r;
    size_t len = 40000;
    char *text = esc_malloc(len + 64);
    size_t i;
    int64_t t0 = esc_mono_ms();

    cls_match_result_init(&r);
    /* thousands of occurrences of each operand, the match only at the very end */
    for (i = 0; i + 8 <= len; i += 8) {
        memcpy(text + i, "uno dos ", 8);
    }
    snprintf(text + i, 64, "uno cinco dos tres");
    assert_int_equal(s_run(m, t, &r, text), 3);
    assert_int_equal(r.hits[0].topic, 0);
    assert_int_equal(r.hits[1].topic, 2);
    assert_int_equal(r.hits[2].topic, 3);
    snprintf(text + i, 64, "uno dos cuatro");
    assert_int_equal(s_run(m, t, &r, text), 1);
    assert_int_equal(r.hits[0].topic, 1);
    assert_true(esc_mono_ms() - t0 < 5000);
    esc_free(text);
    cls_match_result_fini(&r);
    cls_text_destroy(&t);
    cls_match_destroy(&m);
}

/* One of the 10,000 generated topics: a mix of every form, over words w<k>. */
static void
s_gen_topic(size_t i, char *kw, size_t kwsz, char *query, size_t qsz)
{
    size_t a = i;
    size_t b = (i * 7 + 3) % 10000;
    size_t c = 10 + (i * 13 + 5) % 9990; /* a wildcard needs 3 characters: w10* at least */

    kw[0] = '\0';
    query[0] = '\0';
    switch (i % 6) {
    case 0:
        snprintf(kw, kwsz, "w%zu", a);
        break;
    case 1:
        snprintf(query, qsz, "w%zu AND (w%zu OR w%zu*)", a, b, c);
        break;
    case 2:
        snprintf(query, qsz, "\"w%zu w%zu\"~2 -w%zu", a, b, c);
        break;
    case 3:
        snprintf(query, qsz, "w%zu NEAR/3 (w%zu OR comun)", a, b);
        break;
    case 4:
        snprintf(query, qsz, "#w%zu OR @w%zu OR site:w%zu.pe OR {W%zu}", a, a, a, a);
        break;
    default:
        snprintf(query, qsz, "(w%zu OR w%zu) lang:es -author:bot%zu", a, b, c);
        break;
    }
}

static void
test_match_ten_thousand_topics(void **state)
{
    static const struct cls_text_opts o = { .fold_enye = false };
    enum { N_TOPICS = 10000, N_POSTS = 20000 };
    cls_match_t *m = cls_match_new(&o);
    cls_text_t *t = cls_text_new();
    struct cls_match_result r;
    struct esc_error err;
    char text[512];
    size_t i;
    int64_t t0 = esc_mono_ms();
    int64_t t_compile;
    int64_t t_run;
    uint32_t seed = 7;
    size_t hits = 0;
    size_t cands = 0;

    cls_match_result_init(&r);
    for (i = 0; i < N_TOPICS; i++) {
        struct cls_topic_src src;
        char kw[64];
        char query[256];
        char key[32];
        const char *kws[1] = { kw };

        s_gen_topic(i, kw, sizeof(kw), query, sizeof(query));
        snprintf(key, sizeof(key), "t/%zu", i);
        memset(&src, 0, sizeof(src));
        src.key = key;
        src.keywords = kws;
        src.n_keywords = kw[0] != '\0' ? 1 : 0;
        src.query = query[0] != '\0' ? query : NULL;
        src.team = -1;
        if (cls_match_add_topic_src(m, &src, "teams[0].topics[0]", &err) != (int)i) {
            fail_msg("topic %zu: %s", i, err.text);
        }
    }
    cls_match_build(m);
    t_compile = esc_mono_ms() - t0;
    /* planted posts: each form matches its topic */
    assert_int_equal(s_run(m, t, &r, "hoy w6000 y nada mas"), 1);
    assert_int_equal(r.hits[0].topic, 6000);
    assert_int_equal(s_run(m, t, &r, "w6001 con w6007555"), 0); /* b = 2010, c = 8098 */
    assert_int_equal(s_run(m, t, &r, "w6001 con w8098xyz"), 1);
    assert_int_equal(r.hits[0].topic, 6001);
    assert_int_equal(s_run(m, t, &r, "w2017 y w6002"), 1); /* "w6002 w2017"~2, any order */
    assert_int_equal(s_run(m, t, &r, "w2017 y w6002 w8111"), 0); /* -w8111 */
    assert_int_equal(s_run(m, t, &r, "w6003 uno dos comun"), 1);
    assert_int_equal(s_run(m, t, &r, "vean https://www.w6004.pe/x"), 1);
    assert_int_equal(r.hits[0].topic, 6004);
    assert_int_equal(s_run(m, t, &r, "dijo W6004"), 1);
    assert_int_equal(s_run(m, t, &r, "dijo w6004"), 0);
    /* random posts over the vocabulary, a few words per topic-sized space */
    t0 = esc_mono_ms();
    for (i = 0; i < N_POSTS; i++) {
        size_t o2 = 0;
        int k;

        for (k = 0; k < 18; k++) {
            seed = seed * 1103515245u + 12345u;
            if ((seed >> 16) % 4 == 0) {
                o2 += (size_t)snprintf(text + o2, sizeof(text) - o2, "comun ");
            }
            else {
                o2 += (size_t)snprintf(text + o2, sizeof(text) - o2, "w%u ",
                                       (seed >> 8) % 30000);
            }
        }
        cls_text_tokenize(t, &o, text, o2);
        cls_text_add_field(t, &o, CLS_TOK_LANG, "es");
        hits += cls_match_run(m, t, NULL, &r);
        cands += r.n_candidates;
    }
    t_run = esc_mono_ms() - t0;
    print_message("10000 topics (%zu atoms): compiled in %lld ms; %d posts in %lld ms "
                  "(%.0f posts/s, %.1f candidates and %.2f hits per post)\n",
                  cls_match_n_atoms(m), (long long)t_compile, N_POSTS, (long long)t_run,
                  N_POSTS * 1000.0 / (double)(t_run > 0 ? t_run : 1), (double)cands / N_POSTS,
                  (double)hits / N_POSTS);
    assert_true(hits > 0);
    /* candidates stay a tiny fraction of the topics */
    assert_true(cands / N_POSTS < 50);
    /* generous bounds: sanitizer builds are several times slower */
    assert_true(t_compile < 15000);
    assert_true(t_run < 15000);
    cls_match_result_fini(&r);
    cls_text_destroy(&t);
    cls_match_destroy(&m);
}

/* A random query over a small vocabulary, so that posts often contain its words. */
static void
s_rand_query(uint32_t *seed, char *out, size_t outsz, int depth)
{
    static const char *const words[] = { "uno", "dos", "tres", "cuatro", "cinco", "año", "#seis",
                                         "@siete", "ocho", "nueve" };
    static const char *const ops[] = { " OR ", " AND ", " ", " NEAR/1 ", " NEAR/2f ", " -" };
    char a[512];
    char b[512];
    uint32_t r;

    *seed = *seed * 1103515245u + 12345u;
    r = (*seed >> 16) % 16;
    if (depth >= 3 || r < 6) {
        const char *w = words[(*seed >> 8) % 10];

        if (r == 1) {
            snprintf(out, outsz, "\"%s %s\"", w, words[(*seed >> 4) % 10]);
        }
        else if (r == 2) {
            snprintf(out, outsz, "\"%s %s\"~2", w, words[(*seed >> 4) % 10]);
        }
        else if (r == 3) {
            snprintf(out, outsz, "cuat*");
        }
        else if (r == 4 && depth > 0) {
            snprintf(out, outsz, "%s", (*seed >> 4) % 2 ? "lang:es" : "followers:>10");
        }
        else {
            snprintf(out, outsz, "%s", w);
        }
        return;
    }
    s_rand_query(seed, a, sizeof(a), depth + 1);
    s_rand_query(seed, b, sizeof(b), depth + 1);
    assert_true((size_t)snprintf(out, outsz, "(%s%s%s)", a, ops[r % 6], b) < outsz);
}

static void
test_match_triggers_never_drop_a_match(void **state)
{
    static const char *const words[] = { "uno", "dos", "tres", "cuatro", "cuatros", "cinco", "año",
                                         "ano", "#seis", "@siete", "ocho", "nueve", "x", "y" };
    static const struct cls_text_opts o = { .fold_enye = false };
    cls_match_t *m = cls_match_new(&o);
    cls_text_t *t = cls_text_new();
    struct cls_match_result r1;
    struct cls_match_result r2;
    uint32_t seed = 99;
    size_t n_topics = 0;
    size_t hits = 0;
    int i;

    /* 400 random valid queries, some folding ñ, some with an exclude query */
    while (n_topics < 400) {
        struct cls_topic_src src;
        struct esc_error err;
        char query[1024];
        char excl[1024];
        char key[32];

        s_rand_query(&seed, query, sizeof(query), 0);
        s_rand_query(&seed, excl, sizeof(excl), 1);
        snprintf(key, sizeof(key), "t/%zu", n_topics);
        memset(&src, 0, sizeof(src));
        src.key = key;
        src.query = query;
        src.exclude = n_topics % 4 == 0 ? excl : NULL;
        src.fold_enye = n_topics % 3 == 0;
        src.team = -1;
        if (cls_match_add_topic_src(m, &src, "teams[0].topics[0]", &err) >= 0) {
            n_topics++;
        }
    }
    cls_match_build(m);
    cls_match_result_init(&r1);
    cls_match_result_init(&r2);
    for (i = 0; i < 3000; i++) {
        char text[256];
        size_t off = 0;
        struct cls_match_post post = { .followers = i % 20 };
        int k;
        size_t n1;
        size_t n2;

        for (k = 0; k < 2 + i % 9; k++) {
            seed = seed * 1103515245u + 12345u;
            off += (size_t)snprintf(text + off, sizeof(text) - off, "%s ",
                                    words[(seed >> 16) % 14]);
        }
        cls_text_tokenize(t, &o, text, off);
        if (i % 2 == 0) {
            cls_text_add_field(t, &o, CLS_TOK_LANG, "es");
        }
        n1 = cls_match_run(m, t, &post, &r1);
        n2 = cls_match_run_all(m, t, &post, &r2);
        if (n1 != n2 || memcmp(r1.hits, r2.hits, n1 * sizeof(*r1.hits)) != 0) {
            fail_msg("post \"%s\": %zu hits with triggers, %zu evaluating every topic", text, n1,
                     n2);
        }
        assert_true(r1.n_candidates <= n_topics);
        hits += n1;
    }
    assert_true(hits > 1000); /* the comparison is not vacuous */
    /* arbitrary bytes: never a crash, and the same answer */
    for (i = 0; i < 2000; i++) {
        static const char alphabet[] = "uno dos tres cuatro año #@ http://x.pe/ \xc3\xb1\xff\x80'-";
        char text[96];
        size_t n = (size_t)(i % 95);
        size_t k;

        for (k = 0; k < n; k++) {
            seed = seed * 1103515245u + 12345u;
            text[k] = alphabet[(seed >> 16) % (sizeof(alphabet) - 1)];
        }
        cls_text_tokenize(t, &o, text, n);
        assert_int_equal(cls_match_run(m, t, NULL, &r1), cls_match_run_all(m, t, NULL, &r2));
        assert_memory_equal(r1.hits, r2.hits, r1.n_hits * sizeof(*r1.hits));
    }
    cls_match_result_fini(&r1);
    cls_match_result_fini(&r2);
    cls_text_destroy(&t);
    cls_match_destroy(&m);
}

/* A matcher of one query, or NULL when it does not compile. */
static cls_match_t *
s_one_query(const char *query)
{
    static const struct cls_text_opts o = { .fold_enye = false };
    cls_match_t *m = cls_match_new(&o);
    struct cls_topic_src src;
    struct esc_error err;

    memset(&src, 0, sizeof(src));
    src.key = "t/q";
    src.query = query;
    src.team = -1;
    if (cls_match_add_topic_src(m, &src, "teams[0].topics[0]", &err) < 0) {
        cls_match_destroy(&m);
        return NULL;
    }
    cls_match_build(m);
    return m;
}

static void
test_match_lang_triggers_only_when_lang_alone_decides(void **state)
{
    static const struct {
        const char *query;
        bool triggers;
    } cases[] = {
        { "lang:qu", true },
        { "lang:es OR congreso", true },
        { "lang:es AND congreso", false },
        { "congreso NOT lang:en", false },
        { "(congreso OR voto) AND lang:pt", false },
        { "\"poder legislativo\" AND (lang:es OR lang:pt)", false },
        { "congreso", false },
    };
    size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        cls_match_t *m = s_one_query(cases[i].query);

        assert_non_null(m);
        if (cls_match_lang_triggers(m) != cases[i].triggers) {
            fail_msg("%s: lang triggers %d, expected %d", cases[i].query,
                     cls_match_lang_triggers(m), cases[i].triggers);
        }
        cls_match_destroy(&m);
    }
}

/* The posts of the step tests: the text, then the language token (NULL: none). */
static void
s_steps_post(uint32_t *seed, char *text, size_t cap, size_t *len, const char **lang)
{
    static const char *const words[] = { "uno", "dos", "tres", "cuatro", "cuatros", "cinco", "año",
                                         "ano", "#seis", "@siete", "ocho", "nueve", "x", "y" };
    static const char *const langs[] = { "es", "en", "pt", "und" };
    size_t off = 0;
    int k;
    int n;

    *seed = *seed * 1103515245u + 12345u;
    n = 1 + (int)((*seed >> 16) % 8);
    *lang = langs[(*seed >> 8) % 4];
    for (k = 0; k < n; k++) {
        *seed = *seed * 1103515245u + 12345u;
        off += (size_t)snprintf(text + off, cap - off, "%s ", words[(*seed >> 16) % 14]);
    }
    *len = off;
}

static void
test_match_steps_leave_out_the_language(void **state)
{
    static const struct cls_text_opts o = { .fold_enye = false };
    cls_match_t *m = cls_match_new(&o);
    cls_text_t *t = cls_text_new();
    struct cls_match_result r1;
    struct cls_match_result r2;
    uint32_t seed = 7;
    size_t n_topics = 0;
    size_t n_lang = 0;
    size_t hits = 0;
    size_t lang_hits = 0;
    size_t skipped = 0;
    int i;

    /* random queries (some test lang:es) and exclude queries, kept when lang: alone cannot
     * make them a candidate; plus fixed ones that test the language in each way */
    static const char *const fixed[][2] = {
        { "lang:es AND uno", NULL },
        { "dos NOT lang:en", NULL },
        { "(tres OR cuatro) AND (lang:pt OR lang:en)", "lang:es" },
        { "cinco", "lang:es OR ocho" },
    };
    for (i = 0; i < 4; i++) {
        struct cls_topic_src src;
        struct esc_error err;
        char key[32];

        snprintf(key, sizeof(key), "f/%d", i);
        memset(&src, 0, sizeof(src));
        src.key = key;
        src.query = fixed[i][0];
        src.exclude = fixed[i][1];
        src.team = -1;
        assert_int_equal(cls_match_add_topic_src(m, &src, "teams[0].topics[0]", &err), i);
        n_topics++;
    }
    while (n_topics < 300) {
        struct cls_topic_src src;
        struct esc_error err;
        cls_match_t *probe;
        char query[1024];
        char excl[1024];
        char key[32];
        bool ok;

        s_rand_query(&seed, query, sizeof(query), 0);
        s_rand_query(&seed, excl, sizeof(excl), 1);
        probe = s_one_query(query);
        ok = probe != NULL && !cls_match_lang_triggers(probe);
        cls_match_destroy(&probe);
        if (!ok) {
            continue;
        }
        snprintf(key, sizeof(key), "t/%zu", n_topics);
        memset(&src, 0, sizeof(src));
        src.key = key;
        src.query = query;
        src.exclude = n_topics % 3 == 0 ? excl : NULL;
        src.team = -1;
        if (cls_match_add_topic_src(m, &src, "teams[0].topics[0]", &err) >= 0) {
            n_topics++;
            n_lang += strstr(query, "lang:") != NULL || (src.exclude != NULL
                                                         && strstr(excl, "lang:") != NULL);
        }
    }
    cls_match_build(m);
    assert_false(cls_match_lang_triggers(m));
    assert_true(n_lang > 20);
    cls_match_result_init(&r1);
    cls_match_result_init(&r2);
    for (i = 0; i < 4000; i++) {
        struct cls_match_post post = { .followers = i % 20 };
        char text[256];
        size_t len;
        const char *lang;
        size_t n1;
        size_t n2;
        bool need;

        s_steps_post(&seed, text, sizeof(text), &len, &lang);
        /* the whole post at once, the language token included */
        cls_text_tokenize(t, &o, text, len);
        cls_text_add_field(t, &o, CLS_TOK_LANG, lang);
        n1 = cls_match_run(m, t, &post, &r1);
        /* in steps: the language token only when a candidate tests it */
        cls_text_tokenize(t, &o, text, len);
        cls_match_collect(m, t, &post, &r2);
        assert_int_equal(r2.n_hits, 0);
        need = cls_match_need_lang(m, &r2);
        if (need) {
            cls_text_add_field(t, &o, CLS_TOK_LANG, lang);
            assert_int_equal(cls_match_collect_more(m, t, &r2), r2.n_candidates);
            lang_hits += n1;
        }
        else {
            skipped++;
        }
        n2 = cls_match_eval(m, &r2);
        if (n1 != n2 || memcmp(r1.hits, r2.hits, n1 * sizeof(*r1.hits)) != 0) {
            fail_msg("post \"%s\" lang %s: %zu hits at once, %zu in steps (language %s)", text,
                     lang, n1, n2, need ? "added" : "left out");
        }
        assert_int_equal(r1.n_candidates, r2.n_candidates);
        hits += n1;
    }
    /* not vacuous: matches with and without the language, and posts that needed none */
    assert_true(hits > 1000);
    assert_true(lang_hits > 100);
    assert_true(skipped > 100);
    cls_match_result_fini(&r1);
    cls_match_result_fini(&r2);
    cls_text_destroy(&t);
    cls_match_destroy(&m);
}

static void
test_match_collect_more_adds_candidates(void **state)
{
    /* collect_more is general: a token added later may complete clauses (here lang:qu alone
     * makes t/qu a candidate), and the candidates stay in topic order */
    static const char *const topics[][3] = {
        { "t/qu", "lang:qu", NULL },
        { "t/uno", "uno", NULL },
        { "t/both", "uno AND lang:qu", NULL },
        { NULL, NULL, NULL },
    };
    cls_match_t *m = s_queries(topics, false);
    const struct cls_text_opts *o = cls_match_opts(m);
    cls_text_t *t = cls_text_new();
    struct cls_match_result r;

    cls_match_result_init(&r);
    assert_true(cls_match_lang_triggers(m));
    cls_text_tokenize(t, o, "uno", 3);
    assert_int_equal(cls_match_collect(m, t, NULL, &r), 2);
    assert_true(cls_match_need_lang(m, &r));
    cls_text_add_field(t, o, CLS_TOK_LANG, "qu");
    assert_int_equal(cls_match_collect_more(m, t, &r), 3);
    assert_int_equal(cls_match_eval(m, &r), 3);
    assert_int_equal(r.hits[0].topic, 0);
    assert_int_equal(r.hits[1].topic, 1);
    assert_int_equal(r.hits[2].topic, 2);
    /* nothing added: the same candidates */
    assert_int_equal(cls_match_collect_more(m, t, &r), 3);
    assert_int_equal(cls_match_eval(m, &r), 3);
    cls_text_tokenize(t, o, "dos", 3);
    assert_int_equal(cls_match_collect(m, t, NULL, &r), 0);
    assert_false(cls_match_need_lang(m, &r));
    assert_int_equal(cls_match_eval(m, &r), 0);
    cls_match_result_fini(&r);
    cls_text_destroy(&t);
    cls_match_destroy(&m);
}

static void
test_match_token_kinds_follow_the_atoms(void **state)
{
    static const struct {
        const char *query;
        uint32_t has;  /* kinds that must be in the mask */
        uint32_t lacks; /* kinds that must not */
    } cases[] = {
        { "congreso", 1u << CLS_TOK_WORD | 1u << CLS_TOK_HASHTAG | 1u << CLS_TOK_HASHPART,
          1u << CLS_TOK_LINK | 1u << CLS_TOK_AUTHOR | 1u << CLS_TOK_PLATFORM | 1u << CLS_TOK_LANG
              | 1u << CLS_TOK_META_HASHTAG | 1u << CLS_TOK_META_MENTION },
        { "#congreso", 1u << CLS_TOK_HASHTAG | 1u << CLS_TOK_META_HASHTAG,
          1u << CLS_TOK_LINK | 1u << CLS_TOK_META_MENTION },
        { "@jne_peru", 1u << CLS_TOK_MENTION | 1u << CLS_TOK_META_MENTION,
          1u << CLS_TOK_LINK | 1u << CLS_TOK_META_HASHTAG },
        { "congreso AND site:gob.pe", 1u << CLS_TOK_LINK, 1u << CLS_TOK_AUTHOR },
        { "congreso AND author:ana", 1u << CLS_TOK_AUTHOR, 1u << CLS_TOK_LINK },
        { "congreso AND platform:bluesky", 1u << CLS_TOK_PLATFORM, 1u << CLS_TOK_LANG },
        { "congreso NOT lang:en", 1u << CLS_TOK_LANG, 1u << CLS_TOK_PLATFORM },
    };
    size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        cls_match_t *m = s_one_query(cases[i].query);
        uint32_t k;

        assert_non_null(m);
        k = cls_match_token_kinds(m);
        if ((k & cases[i].has) != cases[i].has || (k & cases[i].lacks) != 0) {
            fail_msg("%s: token kinds 0x%x", cases[i].query, (unsigned)k);
        }
        cls_match_destroy(&m);
    }
}

static void
test_match_result_reused_across_matchers(void **state)
{
    static const char *const small[][3] = { { "s/a", "uno", NULL }, { NULL, NULL, NULL } };
    static const char *const big[][3] = {
        { "b/a", "dos", NULL }, { "b/b", "tres OR uno", NULL }, { "b/c", "uno", "dos" },
        { NULL, NULL, NULL },
    };
    cls_match_t *ms = s_queries(small, false);
    cls_match_t *mb = s_queries(big, false);
    cls_text_t *t = cls_text_new();
    struct cls_match_result r;
    int round;

    cls_match_result_init(&r);
    for (round = 0; round < 3; round++) {
        assert_int_equal(s_run(ms, t, &r, "uno dos"), 1);
        assert_int_equal(s_run(mb, t, &r, "uno dos"), 2);
        assert_int_equal(r.hits[0].topic, 0);
        assert_int_equal(r.hits[1].topic, 1);
        assert_int_equal(s_run(mb, t, &r, "uno"), 2);
        assert_int_equal(r.hits[1].topic, 2);
    }
    cls_match_result_fini(&r);
    cls_match_result_fini(&r); /* idempotent */
    cls_text_destroy(&t);
    cls_match_destroy(&ms);
    cls_match_destroy(&mb);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_match_happy_path),
        cmocka_unit_test(test_match_table),
        cmocka_unit_test(test_match_topics_in_config_order_without_duplicates),
        cmocka_unit_test(test_match_compile_errors_name_the_keyword),
        cmocka_unit_test(test_match_from_cfg_reports_key_path),
        cmocka_unit_test(test_match_fold_enye_option),
        cmocka_unit_test(test_match_long_text_and_many_topics),
        cmocka_unit_test(test_match_queries_evaluate_only_candidates),
        cmocka_unit_test(test_match_query_errors_name_key_path_and_column),
        cmocka_unit_test(test_match_from_cfg_team_exclusions_and_fold),
        cmocka_unit_test(test_match_explain_shows_clauses_and_near_misses),
        cmocka_unit_test(test_match_long_posts_and_proximity),
        cmocka_unit_test(test_match_ten_thousand_topics),
        cmocka_unit_test(test_match_triggers_never_drop_a_match),
        cmocka_unit_test(test_match_result_reused_across_matchers),
        cmocka_unit_test(test_match_lang_triggers_only_when_lang_alone_decides),
        cmocka_unit_test(test_match_steps_leave_out_the_language),
        cmocka_unit_test(test_match_collect_more_adds_candidates),
        cmocka_unit_test(test_match_token_kinds_follow_the_atoms),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
