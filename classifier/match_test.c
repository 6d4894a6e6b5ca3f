#define ESC_LOG_MODULE "test"
/* Unit tests of classifier/match.c. The core is one data-driven table: a text (plus optional
 * post hashtags/mentions), the keywords of one topic, fold_enye, and whether it must match.
 * It pins down the skeleton rules of docs/classifier.md: accents both ways, ñ kept or folded,
 * case and width, hashtags whole and split, #tag and @handle keywords, phrases, word
 * boundaries, apostrophes, emoji, URLs, invalid UTF-8, empty text. Further tests cover
 * several topics and teams (config order, no duplicates), keyword compile errors with their
 * key path, very long texts and reuse of one result across matchers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "escucha/esc_cfg.h"
#include "escucha/esc_mem.h"

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
    return cls_match_run(m, t, r);
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
    assert_string_equal(cls_match_keyword(m, r.hits[0].keyword), "poder legislativo");
    assert_int_equal(s_run(m, t, &r, "nada que ver"), 0);
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
        n = cls_match_run(m, t, &r);
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
    /* the keyword reported is the first one found in the text */
    assert_string_equal(cls_match_keyword(m, r.hits[0].keyword), "#CongresoPerú");
    assert_string_equal(cls_match_keyword(m, r.hits[1].keyword), "@jne_peru");
    assert_string_equal(cls_match_keyword(m, r.hits[3].keyword), "congreso digital");
    assert_string_equal(cls_match_keyword(m, r.hits[5].keyword), "poder");
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
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
