#define ESC_LOG_MODULE "sentiment_test"

/* Unit tests of the sentiment scorer: the rules (negation, boosters, contrast, caps,
 * elongation, exclamation), emoji and emoticons, accent folding, hashtags, unknown language,
 * bad input (empty, invalid UTF-8, very long), bad lexicon files, and accuracy floors on the
 * labelled sets in tests/data/sentiment (just below what docs/sentiment.md reports). */

#include <math.h>
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
#include "escucha/esc_rc.h"
#include "sentiment.h"
#include "sentiment_eval.h"

/* Floors just below the figures in docs/sentiment.md (measured on the test sets, which are
 * never used for tuning). */
#define CLS_SENT_FLOOR_ES_ACC 0.83 /* measured 0.848 */
#define CLS_SENT_FLOOR_ES_F1 0.83  /* measured 0.846 */
#define CLS_SENT_FLOOR_EN_ACC 0.84 /* measured 0.857 */
#define CLS_SENT_FLOOR_EN_F1 0.84  /* measured 0.858 */
#define CLS_SENT_FLOOR_PT_ACC 0.87 /* measured 0.890 */
#define CLS_SENT_FLOOR_PT_F1 0.87  /* measured 0.890 */
/* the same without the hand-rated additions of lexicon-extra.tsv (sentiment-base.lex) */
#define CLS_SENT_FLOOR_BASE_ES 0.69 /* measured accuracy 0.710 */
#define CLS_SENT_FLOOR_BASE_EN 0.81 /* measured accuracy 0.829 */
#define CLS_SENT_FLOOR_BASE_PT 0.73 /* measured accuracy 0.752 */

static cls_sentiment_t *g_s;

static int
s_setup(void **state)
{
    struct esc_error err = { 0 };

    esc_log_init("sentiment_test", ESC_LOG_ERROR);
    g_s = cls_sentiment_new(CLS_SENTIMENT_TEST_LEXICON, &err);
    if (g_s == NULL) {
        esc_error_print(stderr, "sentiment_test", &err);
        return -1;
    }
    return 0;
}

static int
s_teardown(void **state)
{
    cls_sentiment_destroy(&g_s);
    return 0;
}

static double
s_score(const char *lang, const char *text)
{
    return cls_sentiment_score(g_s, lang, text, strlen(text), NULL);
}

static int
s_label(const char *lang, const char *text)
{
    int label = 99;

    cls_sentiment_score(g_s, lang, text, strlen(text), &label);
    return label;
}

static void
test_sentiment_happy_path(void **state)
{
    const char *post = "Excelente trabajo de la Contraloría 👍";
    struct cls_sentiment_result r;
    int label = 99;
    double score = cls_sentiment_score(g_s, "es", post, strlen(post), &label);

    assert_true(score > 0.5 && score <= 1.0);
    assert_int_equal(label, CLS_SENTIMENT_POSITIVE);
    cls_sentiment_analyze(g_s, "es", post, strlen(post), &r);
    assert_string_equal(r.lang, "es");
    assert_int_equal(r.hits, 2); /* "excelente" and the thumbs up */
    assert_int_equal(s_label("es", "Pésimo servicio en el hospital 😡"), CLS_SENTIMENT_NEGATIVE);
    assert_int_equal(s_label("es", "El pleno sesiona el jueves a las 10"), CLS_SENTIMENT_NEUTRAL);
    assert_string_equal(cls_sentiment_label_str(CLS_SENTIMENT_POSITIVE), "positive");
    assert_string_equal(cls_sentiment_label_str(CLS_SENTIMENT_NEUTRAL), "neutral");
    assert_string_equal(cls_sentiment_label_str(CLS_SENTIMENT_NEGATIVE), "negative");
    assert_true(cls_sentiment_neutral_band(g_s, "es") >= 0.0);
    assert_true(cls_sentiment_neutral_band(g_s, "xx") < 0.0);
}

static void
test_sentiment_negation_flips(void **state)
{
    assert_true(s_score("es", "el plan es bueno") > 0.0);
    assert_true(s_score("es", "el plan no es bueno") < 0.0);
    assert_true(s_score("es", "el plan nunca fue bueno") < 0.0);
    assert_true(s_score("es", "jamás fue bueno") < 0.0);
    assert_true(s_score("es", "con problemas") < 0.0);
    assert_true(s_score("es", "sin problemas") > 0.0);
    assert_true(s_score("es", "no está nada mal") > 0.0);
    assert_true(s_score("en", "the plan is good") > 0.0);
    assert_true(s_score("en", "the plan is not good") < 0.0);
    assert_true(s_score("en", "it isn't good") < 0.0);
    assert_true(s_score("en", "it isn\xe2\x80\x99t good") < 0.0); /* typographic apostrophe */
    assert_true(s_score("pt", "o plano é bom") > 0.0);
    assert_true(s_score("pt", "o plano não é bom") < 0.0);
    /* the scope ends at the clause: "no tengo quejas, es excelente" stays positive */
    assert_true(s_score("es", "no tengo quejas, es excelente") > 0.0);
    /* "no a la ..." opposes something: no flip */
    assert_true(s_score("es", "no a la corrupción") < 0.0);
}

static void
test_sentiment_intensifiers_scale(void **state)
{
    double base = s_score("es", "el servicio es bueno");

    assert_true(s_score("es", "el servicio es muy bueno") > base);
    assert_true(s_score("es", "el servicio es súper bueno") > base);
    assert_true(s_score("es", "el servicio es bastante bueno") > base);
    assert_true(s_score("es", "el servicio es poco bueno") < base);
    assert_true(s_score("es", "es muy malo") < s_score("es", "es malo"));
    assert_true(s_score("en", "extremely good") > s_score("en", "good"));
    assert_true(s_score("en", "very bad") < s_score("en", "bad"));
    assert_true(s_score("en", "slightly good") < s_score("en", "good"));
    assert_true(s_score("en", "slightly good") > 0.0);
    assert_true(s_score("pt", "muito bom") > s_score("pt", "bom"));
}

static void
test_sentiment_contrast_weights_second_clause(void **state)
{
    assert_true(s_score("es", "la idea era buena pero la gestión fue pésima") < 0.0);
    assert_true(s_score("es", "fue difícil pero el resultado es excelente") > 0.0);
    assert_true(s_score("en", "the idea was good but the service was terrible") < 0.0);
    assert_true(s_score("pt", "a ideia era boa mas o resultado foi péssimo") < 0.0);
}

static void
test_sentiment_emoji_count(void **state)
{
    double one = s_score("es", "😍");

    assert_true(one > 0.0);
    assert_true(s_score("es", "😍😍😍") > one);
    assert_true(s_score("es", "😡") < 0.0);
    assert_true(s_score("es", "👍") > 0.0);
    assert_true(s_score("es", "🙏") > 0.0);
    assert_true(s_score("es", "💔") < 0.0);
    /* skin tone and variation selector do not change the emoji */
    assert_true(fabs(s_score("es", "👍🏽") - s_score("es", "👍")) < 1e-12);
    assert_true(fabs(s_score("es", "❤️") - s_score("es", "❤")) < 1e-12);
    assert_true(s_score("en", "see you :)") > 0.0);
    assert_true(s_score("en", "see you :(") < 0.0);
    assert_true(s_score("es", "gracias <3") > s_score("es", "gracias"));
    assert_true(s_score("es", "nos vemos :D") > 0.0);
    /* a time or a URL is not an emoticon */
    assert_true(s_score("es", "a las 10:30 hrs") == 0.0);
    assert_true(s_score("es", "ver https://gob.pe/x:/(") == 0.0);
}

static void
test_sentiment_accents_folded(void **state)
{
    double a = s_score("es", "pésimo servicio");

    assert_true(a < 0.0);
    assert_true(fabs(a - s_score("es", "pesimo servicio")) < 1e-12);
    assert_true(fabs(a - s_score("es", "Pésimo servicio")) < 1e-12);
    assert_true(fabs(a - s_score("es", "pe\xcc\x81simo servicio")) < 1e-12); /* NFD */
    assert_true(fabs(s_score("es", "PÉSIMO") - s_score("es", "PESIMO")) < 1e-12);
    assert_true(fabs(s_score("es", "corrupción") - s_score("es", "corrupcion")) < 1e-12);
    assert_true(fabs(s_score("pt", "péssimo") - s_score("pt", "pessimo")) < 1e-12);
    assert_true(s_score("es", "excelente trabajo") > 0.0);
}

static void
test_sentiment_caps_exclamation_elongation(void **state)
{
    double base = s_score("es", "el servicio es bueno");

    assert_true(s_score("es", "el servicio es BUENO") > base);
    assert_true(s_score("es", "el servicio es bueno!!!") > base);
    assert_true(s_score("es", "el servicio es buenooo") > base);
    assert_true(s_score("es", "buenísimooo") > 0.0);
    assert_true(s_score("es", "buenísimo") > s_score("es", "bueno"));
    assert_true(s_score("en", "goooood") > 0.0);
    /* all-caps text has no emphasis of its own */
    assert_true(fabs(s_score("es", "EL SERVICIO ES BUENO") - base) < 1e-12);
}

static void
test_sentiment_hashtags_split(void **state)
{
    assert_true(s_score("es", "#MalaGestión") < 0.0);
    assert_true(s_score("es", "#malagestion") == 0.0); /* no case to split on */
    assert_true(s_score("es", "#NoALaCorrupción") < 0.0);
    assert_true(s_score("es", "#Elecciones2026") == 0.0);
    assert_true(s_score("en", "#BadManagement") < 0.0);
    /* mentions are names, not words */
    assert_true(s_score("es", "@malagente_pe") == 0.0);
}

static void
test_sentiment_peruvian_slang(void **state)
{
    assert_int_equal(s_label("es", "está paja la nueva app"), CLS_SENTIMENT_POSITIVE);
    assert_int_equal(s_label("es", "qué chévere la feria"), CLS_SENTIMENT_POSITIVE);
    assert_int_equal(s_label("es", "bacán el nuevo parque"), CLS_SENTIMENT_POSITIVE);
    assert_int_equal(s_label("es", "qué roche el alcalde"), CLS_SENTIMENT_NEGATIVE);
    assert_int_equal(s_label("es", "puro floro de campaña"), CLS_SENTIMENT_NEGATIVE);
}

static void
test_sentiment_empty_is_neutral(void **state)
{
    struct cls_sentiment_result r;
    int label = 99;

    assert_true(cls_sentiment_score(g_s, "es", "", 0, &label) == 0.0);
    assert_int_equal(label, CLS_SENTIMENT_NEUTRAL);
    label = 99;
    assert_true(cls_sentiment_score(g_s, "es", NULL, 0, &label) == 0.0);
    assert_int_equal(label, CLS_SENTIMENT_NEUTRAL);
    assert_true(cls_sentiment_score(g_s, NULL, "   \n\t ", 6, NULL) == 0.0);
    assert_true(s_score("es", "https://www.gob.pe/minsa") == 0.0);
    cls_sentiment_analyze(g_s, NULL, "", 0, &r);
    assert_int_equal(r.hits, 0);
    assert_int_equal(r.label, CLS_SENTIMENT_NEUTRAL);
}

static void
test_sentiment_invalid_utf8_safe(void **state)
{
    static const char bad[] = "\xff\xfe bueno \xc3 excelente \xe2\x82 \xf0\x9f\x98";
    uint8_t buf[512];
    unsigned seed = 12345;
    int i;

    assert_int_equal(cls_sentiment_score(g_s, "es", bad, sizeof(bad) - 1, NULL) > 0.0, 1);
    for (i = 0; i < 4000; i++) {
        size_t n = (size_t)(rand_r(&seed) % sizeof(buf));
        size_t k;
        double sc;
        int label = 99;

        for (k = 0; k < n; k++) {
            buf[k] = (uint8_t)rand_r(&seed);
        }
        sc = cls_sentiment_score(g_s, i % 2 ? NULL : "es", (const char *)buf, n, &label);
        assert_true(isfinite(sc) && sc >= -1.0 && sc <= 1.0);
        assert_true(label >= -1 && label <= 1);
    }
}

static void
test_sentiment_long_text_safe(void **state)
{
    static const char unit[] = "muy bueno 😍 #BuenaGestión :) ";
    size_t ulen = sizeof(unit) - 1;
    size_t n = 4 * 1024 * 1024;
    char *big = esc_malloc(n);
    size_t k;
    double sc;
    int label = 99;

    for (k = 0; k < n; k++) {
        big[k] = unit[k % ulen];
    }
    sc = cls_sentiment_score(g_s, "es", big, n, &label);
    assert_true(isfinite(sc) && sc > 0.9 && sc <= 1.0);
    assert_int_equal(label, CLS_SENTIMENT_POSITIVE);
    /* one enormous word, one enormous hashtag */
    memset(big, 'a', n);
    assert_true(cls_sentiment_score(g_s, "es", big, n, NULL) == 0.0);
    big[0] = '#';
    assert_true(cls_sentiment_score(g_s, "es", big, n, NULL) == 0.0);
    esc_free(big);
}

static void
test_sentiment_unknown_language(void **state)
{
    struct cls_sentiment_result r;
    const char *en = "the service was terrible and nobody helped";
    const char *pt = "o atendimento foi péssimo e ninguém ajudou";

    cls_sentiment_analyze(g_s, NULL, en, strlen(en), &r);
    assert_string_equal(r.lang, "en");
    assert_int_equal(r.label, CLS_SENTIMENT_NEGATIVE);
    cls_sentiment_analyze(g_s, "und", pt, strlen(pt), &r);
    assert_string_equal(r.lang, "pt");
    assert_int_equal(r.label, CLS_SENTIMENT_NEGATIVE);
    cls_sentiment_analyze(g_s, "qu", "excelente trabajo", 17, &r);
    assert_int_equal(r.label, CLS_SENTIMENT_POSITIVE);
    cls_sentiment_analyze(g_s, "es-PE", "excelente trabajo", 17, &r);
    assert_string_equal(r.lang, "es");
    cls_sentiment_analyze(g_s, "ENG", "great job", 9, &r);
    assert_string_equal(r.lang, "en");
    cls_sentiment_analyze(g_s, NULL, "🙏", strlen("🙏"), &r);
    assert_int_equal(r.label, CLS_SENTIMENT_POSITIVE);
}

/* An unknown language scores every lexicon in one pass: the result is, field for field, that of
 * the language knowing most words (then most valences, then Spanish) scored alone. */
static void
test_sentiment_unknown_language_is_best_single(void **state)
{
    static const char *const texts[] = {
        "the service was terrible and nobody helped!!",
        "o atendimento foi péssimo e ninguém ajudou, mas o café é ótimo",
        "No es malo, pero MUY caro... #MalaGestión #GreatJob :) 😡",
        "excelente trabajo, muchas gracias ¿¿verdad??\nnot good at all",
        "buenooooo :( no me gustó nada, very nice though",
        "",
        "12 34 !!!",
    };
    static const char *const langs[] = { "es", "en", "pt" };
    size_t i;
    size_t k;

    (void)state;
    for (i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        struct cls_sentiment_result all;
        struct cls_sentiment_result best;

        cls_sentiment_analyze(g_s, "und", texts[i], strlen(texts[i]), &all);
        cls_sentiment_analyze(g_s, langs[0], texts[i], strlen(texts[i]), &best);
        for (k = 1; k < 3; k++) {
            struct cls_sentiment_result r;

            cls_sentiment_analyze(g_s, langs[k], texts[i], strlen(texts[i]), &r);
            if (r.known > best.known || (r.known == best.known && r.hits > best.hits)) {
                best = r;
            }
        }
        assert_string_equal(all.lang, best.lang);
        assert_true(all.score == best.score);
        assert_int_equal(all.label, best.label);
        assert_int_equal(all.hits, best.hits);
        assert_int_equal(all.known, best.known);
    }
}

static void
s_write(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");

    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
}

static void
test_sentiment_bad_lexicon(void **state)
{
    char path[] = "/tmp/cls_sentiment_test_XXXXXX";
    struct esc_error err = { 0 };
    cls_sentiment_t *s;
    int fd;

    s = cls_sentiment_new("/nonexistent/sentiment.lex", &err);
    assert_null(s);
    assert_non_null(strstr(err.text, "cannot open"));
    assert_string_equal(err.source, "/nonexistent/sentiment.lex");

    fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    s_write(path, "# ok\nes\tword\tbueno\t2\nes\tverb\tbueno\t2\n");
    s = cls_sentiment_new(path, &err);
    assert_null(s);
    assert_int_equal(err.line, 3);
    assert_non_null(strstr(err.text, "unknown kind"));
    s_write(path, "es\tword\tbueno\tmucho\n");
    assert_null(cls_sentiment_new(path, &err));
    assert_int_equal(err.line, 1);
    s_write(path, "es\tword\tbueno\n");
    assert_null(cls_sentiment_new(path, &err));
    assert_non_null(strstr(err.text, "4 tab-separated"));
    s_write(path, "*\tparam\twindow\t99\n");
    assert_null(cls_sentiment_new(path, &err));
    assert_non_null(strstr(err.text, "window"));
    s_write(path, "es\tword\tbueno\t2\nen\tword\tgood\t2\n");
    assert_null(cls_sentiment_new(path, &err)); /* no Portuguese words */
    assert_non_null(strstr(err.text, "pt"));
    s_write(path, "es\tword\tbueno\t2\nen\tword\tgood\t2\npt\tword\tbom\t2\n"
                  "*\temoji\t\xf0\x9f\x98\x8d\t3\nes\tparam\tneutral\t0.2\n");
    s = cls_sentiment_new(path, &err);
    assert_non_null(s);
    assert_true(cls_sentiment_score(s, "es", "bueno", 5, NULL) > 0.0);
    assert_true(cls_sentiment_neutral_band(s, "es") == 0.2);
    cls_sentiment_destroy(&s);
    assert_null(s);
    cls_sentiment_destroy(&s); /* NULL-safe */
    unlink(path);
}

static void
s_check_accuracy_with(const cls_sentiment_t *s, const char *file, const char *lang,
                      double min_acc, double min_f1)
{
    char path[512];
    struct cls_sentiment_eval ev;
    struct esc_error err = { 0 };

    snprintf(path, sizeof(path), "%s/%s", CLS_SENTIMENT_DATA_DIR, file);
    assert_int_equal(cls_sentiment_eval_file(s, path, lang, -1.0, &ev, &err), ESC_OK);
    assert_true(ev.n >= 200);
    if (ev.accuracy < min_acc || ev.macro_f1 < min_f1) {
        fail_msg("%s: accuracy %.3f (floor %.3f) macro-F1 %.3f (floor %.3f)", file,
                 ev.accuracy, min_acc, ev.macro_f1, min_f1);
    }
}

static void
s_check_accuracy(const char *file, const char *lang, double min_acc, double min_f1)
{
    s_check_accuracy_with(g_s, file, lang, min_acc, min_f1);
}

static void
test_sentiment_accuracy_es(void **state)
{
    s_check_accuracy("es.jsonl", "es", CLS_SENT_FLOOR_ES_ACC, CLS_SENT_FLOOR_ES_F1);
}

static void
test_sentiment_accuracy_en(void **state)
{
    s_check_accuracy("en.jsonl", "en", CLS_SENT_FLOOR_EN_ACC, CLS_SENT_FLOOR_EN_F1);
}

static void
test_sentiment_accuracy_pt(void **state)
{
    s_check_accuracy("pt.jsonl", "pt", CLS_SENT_FLOOR_PT_ACC, CLS_SENT_FLOOR_PT_F1);
}

static void
test_sentiment_accuracy_base_lexicon(void **state)
{
    struct esc_error err = { 0 };
    cls_sentiment_t *base = cls_sentiment_new(CLS_SENTIMENT_TEST_LEXICON_BASE, &err);

    assert_non_null(base);
    s_check_accuracy_with(base, "es.jsonl", "es", CLS_SENT_FLOOR_BASE_ES, 0.0);
    s_check_accuracy_with(base, "en.jsonl", "en", CLS_SENT_FLOOR_BASE_EN, 0.0);
    s_check_accuracy_with(base, "pt.jsonl", "pt", CLS_SENT_FLOOR_BASE_PT, 0.0);
    cls_sentiment_destroy(&base);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sentiment_happy_path),
        cmocka_unit_test(test_sentiment_negation_flips),
        cmocka_unit_test(test_sentiment_intensifiers_scale),
        cmocka_unit_test(test_sentiment_contrast_weights_second_clause),
        cmocka_unit_test(test_sentiment_emoji_count),
        cmocka_unit_test(test_sentiment_accents_folded),
        cmocka_unit_test(test_sentiment_caps_exclamation_elongation),
        cmocka_unit_test(test_sentiment_hashtags_split),
        cmocka_unit_test(test_sentiment_peruvian_slang),
        cmocka_unit_test(test_sentiment_empty_is_neutral),
        cmocka_unit_test(test_sentiment_invalid_utf8_safe),
        cmocka_unit_test(test_sentiment_long_text_safe),
        cmocka_unit_test(test_sentiment_unknown_language),
        cmocka_unit_test(test_sentiment_unknown_language_is_best_single),
        cmocka_unit_test(test_sentiment_bad_lexicon),
        cmocka_unit_test(test_sentiment_accuracy_es),
        cmocka_unit_test(test_sentiment_accuracy_en),
        cmocka_unit_test(test_sentiment_accuracy_pt),
        cmocka_unit_test(test_sentiment_accuracy_base_lexicon),
    };

    return cmocka_run_group_tests(tests, s_setup, s_teardown);
}
