#define ESC_LOG_MODULE "test"
/* Unit tests of term extraction (terms.c): each test feeds one text and compares the terms
 * reported, in order, joined with '|', with the expected string. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "escucha/esc_mem.h"

#include "terms.h"

struct got {
    char s[4096]; /* terms joined with '|' */
    size_t len;
    size_t calls;
};

static void
s_collect(void *arg, const char *term, size_t len)
{
    struct got *g = arg;

    assert_true(len > 0 && len <= AGG_TERM_MAX);
    assert_null(memchr(term, '\0', len));
    if (g->len > 0 && g->len + 1 < sizeof(g->s)) {
        g->s[g->len++] = '|';
    }
    if (g->len + len < sizeof(g->s)) {
        memcpy(g->s + g->len, term, len);
        g->len += len;
    }
    g->s[g->len] = '\0';
    g->calls++;
}

/* Extracts the terms of text and checks them against want ("a|b|c", "" for none). */
static void
s_expect(const char *text, const char *want)
{
    struct got g;
    size_t n;

    memset(&g, 0, sizeof(g));
    n = agg_terms_extract(text, strlen(text), "es", s_collect, &g);
    assert_int_equal(n, g.calls);
    assert_string_equal(g.s, want);
}

static void
test_terms_extract_post(void **state)
{
    (void)state;
    /* the usage example: a typical post */
    s_expect("¡La nueva Línea 7 del Metro abre HOY! Más info: https://t.co/AbC123 @metro_cdmx "
             "#Movilidad #CDMX",
             "nueva|linea|metro|abre|info|#movilidad|#cdmx");
}

static void
test_terms_folding_keeps_enye(void **state)
{
    (void)state;
    s_expect("Año ESPAÑA niño Ñandú", "año|españa|niño|ñandu");
    /* n + combining tilde (NFD input) is the same ñ; other marks go */
    s_expect("an\xcc\x83o cafe\xcc\x81", "año|cafe");
    s_expect("AÇÃO Coração São Paulo", "acao|coracao|paulo");
    /* compatibility forms: ligature and full-width letters */
    s_expect("\xef\xac\x81nal \xef\xbd\x81\xef\xbd\x82\xef\xbd\x83", "final|abc");
    s_expect("Straße", "strasse");
}

static void
test_terms_drops_short_numbers_stopwords(void **state)
{
    (void)state;
    s_expect("el la de que los por para con una y o a", "");
    s_expect("the and with this that from have", "");
    s_expect("não você também mais muito", "");
    s_expect("2024 1,000 12:30 3x3 covid19 4k", "3x3|covid19");
    s_expect("ok no sí yo tú él", "");
    s_expect("can't don't won't it's", "");
}

static void
test_terms_hashtags(void **state)
{
    (void)state;
    s_expect("#Hola_Mundo #2024 #a #ÉXITO #año2025", "#hola_mundo|#exito|#año2025");
    s_expect("#uno#dos", "#uno|#dos");
    /* stopwords are kept as hashtags: a tag is chosen on purpose */
    s_expect("#que", "#que");
    s_expect("(#tag)", "#tag");
}

static void
test_terms_skips_urls_mentions_emails(void **state)
{
    (void)state;
    s_expect("mira http://example.com/ruta?x=1 y www.ejemplo.org/pagina ya",
             "mira");
    s_expect("(www.site.com) HTTPS://A.B/c", "");
    s_expect("@usuario hola @otro.cuenta gracias", "hola|cuenta|gracias");
    s_expect("escribe a ventas@empresa.com hoy", "escribe");
}

static void
test_terms_separators_and_emoji(void **state)
{
    (void)state;
    s_expect("hola,mundo;fin...nuevo!!", "hola|mundo|fin|nuevo");
    s_expect("fuego\xf0\x9f\x94\xa5" "fuego \xf0\x9f\x98\x80\xf0\x9f\x98\x80", "fuego|fuego");
    s_expect("pre-venta e-mail", "pre|venta|mail");
    /* non-Latin scripts are words too (case-folded) */
    s_expect("Москва ΑΘΗΝΑ 東京都", "москва|αθηνα|東京都");
}

static void
test_terms_invalid_utf8(void **state)
{
    static const char bad[] = "caf\xc3 bien\xff\xfe"
                              "roto \xe2\x82 mal\xc0\xaf"
                              "o \xed\xa0\x80"
                              "zzz";
    struct got g;

    (void)state;
    memset(&g, 0, sizeof(g));
    agg_terms_extract(bad, sizeof(bad) - 1, NULL, s_collect, &g);
    assert_string_equal(g.s, "caf|roto|mal|zzz");
    /* truncated sequence at the very end of the buffer */
    memset(&g, 0, sizeof(g));
    agg_terms_extract("hola mund\xc3", 10, NULL, s_collect, &g);
    assert_string_equal(g.s, "hola|mund");
}

static void
test_terms_long_text_and_long_tokens(void **state)
{
    size_t n = 1 << 20;
    char *text = esc_malloc(n);
    struct got g;
    size_t i;
    size_t terms;

    (void)state;
    /* one giant token: skipped, nothing read past the end */
    memset(text, 'a', n);
    memset(&g, 0, sizeof(g));
    assert_int_equal(agg_terms_extract(text, n, NULL, s_collect, &g), 0);
    /* a token of exactly AGG_TERM_MAX bytes is kept, one more byte is not */
    memset(&g, 0, sizeof(g));
    assert_int_equal(agg_terms_extract(text, AGG_TERM_MAX, NULL, s_collect, &g), 1);
    assert_int_equal(g.len, AGG_TERM_MAX);
    assert_int_equal(agg_terms_extract(text, AGG_TERM_MAX + 1, NULL, s_collect, &g), 0);
    /* many words: every one reported */
    for (i = 0; i + 8 <= n; i += 8) {
        memcpy(text + i, "palabra ", 8);
    }
    memset(&g, 0, sizeof(g));
    terms = agg_terms_extract(text, n, "pt", s_collect, &g);
    assert_int_equal(terms, n / 8);
    assert_int_equal(g.calls, n / 8);
    esc_free(text);
}

static void
test_terms_null_and_empty(void **state)
{
    struct got g;

    (void)state;
    memset(&g, 0, sizeof(g));
    assert_int_equal(agg_terms_extract(NULL, 0, NULL, s_collect, &g), 0);
    assert_int_equal(agg_terms_extract("", 0, NULL, s_collect, &g), 0);
    assert_int_equal(agg_terms_extract("   \t\n ", 6, NULL, s_collect, &g), 0);
    assert_int_equal(g.calls, 0);
    assert_true(agg_terms_is_stopword("que", 3));
    assert_false(agg_terms_is_stopword("queso", 5));
    assert_false(agg_terms_is_stopword("qu", 2));
}

/* Lower-case ASCII runs are read eight bytes at a time: words of every length at every
 * offset, mixed with capitals, digits, accents and a stopword that fills the eight bytes
 * ("aquellos") or ends inside them, give the same terms as byte by byte; a word of
 * AGG_TERM_MAX bytes is kept, one byte more is skipped. */
static void
test_terms_word_runs_at_every_offset(void **state)
{
    char text[256];
    char want[256];
    size_t len;
    size_t off;
    size_t k;

    (void)state;
    for (len = 1; len <= 20; len++) {
        for (off = 0; off < 10; off++) {
            memset(text, ' ', off);
            for (k = 0; k < len; k++) {
                text[off + k] = (char)('a' + (k * 7 + off) % 26);
            }
            memcpy(text + off + len, " zz", 4);
            memcpy(want, text + off, len);
            want[len] = '\0';
            if (len < 3 || agg_terms_is_stopword(want, len)) {
                want[0] = '\0';
            }
            s_expect(text, want);
        }
    }
    s_expect("aquellos", "");
    s_expect("aquellosx aquellos.", "aquellosx");
    s_expect("xy aquellos estos nosotros ellos", "nosotros");
    s_expect("abcdefgHIJKLmnop abcdefghi9klmn", "abcdefghijklmnop|abcdefghi9klmn");
    s_expect("abcdefgh_ijk #abcdefgh_ijk abcdefgñandu",
             "abcdefgh|ijk|#abcdefgh_ijk|abcdefgñandu");
    s_expect("que QUE Que queso", "queso");
    memset(text, 'x', AGG_TERM_MAX);
    memcpy(text + AGG_TERM_MAX, " y", 3);
    memcpy(want, text, AGG_TERM_MAX);
    want[AGG_TERM_MAX] = '\0';
    s_expect(text, want);
    memset(text, 'x', AGG_TERM_MAX + 1);
    memcpy(text + AGG_TERM_MAX + 1, " yyy", 5);
    s_expect(text, "yyy");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_terms_extract_post),
        cmocka_unit_test(test_terms_folding_keeps_enye),
        cmocka_unit_test(test_terms_drops_short_numbers_stopwords),
        cmocka_unit_test(test_terms_hashtags),
        cmocka_unit_test(test_terms_skips_urls_mentions_emails),
        cmocka_unit_test(test_terms_separators_and_emoji),
        cmocka_unit_test(test_terms_invalid_utf8),
        cmocka_unit_test(test_terms_long_text_and_long_tokens),
        cmocka_unit_test(test_terms_null_and_empty),
        cmocka_unit_test(test_terms_word_runs_at_every_offset),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
