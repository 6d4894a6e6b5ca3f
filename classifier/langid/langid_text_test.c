#define ESC_LOG_MODULE "test"
/* Unit tests of classifier/langid/langid_text.c: the exact token stream for posts with URLs,
 * mentions, hashtags (CamelCase, digits, all caps), e-mail addresses, emoji, apostrophes,
 * elongated words, decomposed accents and invalid UTF-8; and the feature hashes (n-gram hashes
 * equal the ones of the same n-gram given as bytes, words hash apart from n-grams). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "langid_text.h"

static struct cls_langid_text s_text;

/* "tok tok #part ..." for the tokens of s (hashtag parts are prefixed with '#'). */
static const char *
s_toks(const char *s)
{
    static char out[4096];
    size_t o = 0;
    size_t i;

    cls_langid_tokenize(&s_text, s, strlen(s));
    out[0] = '\0';
    for (i = 0; i < s_text.n_toks && o < sizeof(out); i++) {
        const struct cls_langid_tok *t = &s_text.toks[i];

        o += (size_t)snprintf(out + o, sizeof(out) - o, "%s%s%.*s", i ? " " : "",
                              t->hashtag ? "#" : "", (int)t->len, s_text.buf + t->off);
    }
    return out;
}

static void
test_langid_text_tokenize_happy_path(void **state)
{
    assert_string_equal(s_toks("¡Qué BUEN partido, @juan_perez! 😀 https://t.co/x #FelizDomingo"),
                        "qué buen partido #feliz #domingo");
    assert_int_equal(s_text.n_toks, 5);
    assert_int_equal(s_text.n_plain, 3);
}

struct tok_case {
    const char *in;
    const char *out;
};

static void
test_langid_text_tokenize_cases(void **state)
{
    static const struct tok_case cases[] = {
        { "", "" },
        { "😀🎉🔥 !!! 123 4.5", "" },
        { "https://example.com/a?b=c http://x.org www.google.com", "" },
        { "mira ejemplo.com/nota y t.co, luego elcomercio.pe.", "mira y luego" },
        { "escribe a ana@example.com ya", "escribe a ya" },
        { "@ana @bob.smith @user@mastodon.social hola", "hola" },
        { "#EleccionesPerú2026", "#elecciones #perú" },
        { "#NASAMission #covid19 #yo_me_quedo", "#nasa #mission #covid #yo #me #quedo" },
        { "#jajaja#", "#jajaja" },
        { "ch'aki q’ara t‘ika p`acha", "ch'aki q'ara t'ika p'acha" },
        { "'hola' don't rock'n'roll", "hola don't rock'n'roll" },
        { "holaaaaa siiii jajajaja", "holaa sii jajajaja" },
        { "e\xcc\x81xito an\xcc\x83o", "éxito año" },
        { "bad\xff\xfe utf8 \xc3", "bad utf" },
        { "ÑANDÚ ÇÃO ÅNGSTRÖM", "ñandú ção ångström" },
        { "l'été c'est 3x mieux", "l'été c'est x mieux" },
        { "foo_bar baz-qux", "foo bar baz qux" },
        { "Привет мир", "привет мир" },
        { "jaqix aru. Jallalla!", "jaqix aru jallalla" },
    };
    size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *got = s_toks(cases[i].in);

        if (strcmp(got, cases[i].out) != 0) {
            fail_msg("case %zu: \"%s\" -> \"%s\", want \"%s\"", i, cases[i].in, got,
                     cases[i].out);
        }
    }
}

static void
test_langid_text_tokenize_long_input(void **state)
{
    static char big[CLS_LANGID_MAX_CP * 3];
    size_t i;

    for (i = 0; i + 5 < sizeof(big); i += 5) {
        memcpy(big + i, "casa ", 5);
    }
    big[i] = '\0';
    /* Only the first CLS_LANGID_MAX_CP code points are read: 4096 / 5 words. */
    cls_langid_tokenize(&s_text, big, strlen(big));
    assert_int_equal(s_text.n_toks, CLS_LANGID_MAX_CP / 5 + 1);
}

static void
test_langid_text_features_match_ngram_hash(void **state)
{
    uint64_t h[CLS_LANGID_TOK_FEATS];
    uint8_t k[CLS_LANGID_TOK_FEATS];
    size_t n = cls_langid_features("año", strlen("año"), h, k);
    size_t i;
    size_t per_kind[CLS_LANGID_KINDS] = { 0 };
    bool found_de = false;

    /* " año ": 3 letters -> 1-grams 3, 2-grams 4, 3-grams 3, 4-grams 2, 5-grams 1, word 1 */
    assert_int_equal(n, 14);
    for (i = 0; i < n; i++) {
        per_kind[k[i]]++;
    }
    assert_int_equal(per_kind[CLS_LANGID_K1], 3);
    assert_int_equal(per_kind[CLS_LANGID_K2], 4);
    assert_int_equal(per_kind[CLS_LANGID_K5], 1);
    assert_int_equal(per_kind[CLS_LANGID_KWORD], 1);
    assert_true(h[0] != cls_langid_ngram_hash(" ", 1));
    for (i = 0; i < n; i++) {
        if (h[i] == cls_langid_ngram_hash(" añ", strlen(" añ"))) {
            assert_int_equal(k[i], CLS_LANGID_K3);
            found_de = true;
        }
    }
    assert_true(found_de);
    assert_int_equal(k[3], CLS_LANGID_K5); /* first window: " a", " añ", " año", " año " */
    assert_true(h[3] == cls_langid_ngram_hash(" año ", strlen(" año ")));
    /* The word "de" and the inner 2-gram "de" of "pode" are different features. */
    n = cls_langid_features("de", 2, h, k);
    assert_true(h[n - 1] != cls_langid_ngram_hash("de", 2));
    assert_int_equal(cls_langid_features("", 0, h, k), 0);
}

static void
test_langid_text_features_truncate_long_words(void **state)
{
    uint64_t h[CLS_LANGID_TOK_FEATS];
    uint8_t k[CLS_LANGID_TOK_FEATS];
    const char *w = "pneumonoultramicroscopicsilicovolcanoconiosis"; /* 45 letters */

    /* Only the first CLS_LANGID_WORD_CP letters give n-grams. */
    assert_int_equal(cls_langid_features(w, strlen(w), h, k),
                     CLS_LANGID_WORD_CP + (CLS_LANGID_WORD_CP + 1) + CLS_LANGID_WORD_CP +
                         (CLS_LANGID_WORD_CP - 1) + (CLS_LANGID_WORD_CP - 2) + 1);
}

static void
test_langid_text_lower(void **state)
{
    char out[32];

    assert_int_equal(cls_langid_lower(" ÑAn’Q", strlen(" ÑAn’Q"), out, sizeof(out)), 7);
    assert_string_equal(out, " ñan'q");
    assert_int_equal(cls_langid_lower("ABCDEFGH", 8, out, 4), 3);
    assert_string_equal(out, "abc");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_langid_text_tokenize_happy_path),
        cmocka_unit_test(test_langid_text_tokenize_cases),
        cmocka_unit_test(test_langid_text_tokenize_long_input),
        cmocka_unit_test(test_langid_text_features_match_ngram_hash),
        cmocka_unit_test(test_langid_text_features_truncate_long_words),
        cmocka_unit_test(test_langid_text_lower),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
