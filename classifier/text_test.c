#define ESC_LOG_MODULE "test"
/* Unit tests of classifier/text.c: exact normalisation outputs (accents, ñ, case, width,
 * ligatures, apostrophes, Hangul composition, ignorables, invalid UTF-8) and the token stream
 * (words, hashtags and their parts, mentions, URLs skipped, positions for phrases, meta
 * tokens, very long input, link tokens switched off). Token lists are compared as one
 * "kind:text ..." string. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <utf8proc.h>

#include "escucha/esc_mem.h"

#include "text.h"

static const struct cls_text_opts s_keep = { .fold_enye = false };
static const struct cls_text_opts s_fold = { .fold_enye = true };

/* "kind:text kind:text ..." for the current tokens (parts are written "part:...") into out. */
static const char *
s_dump(const cls_text_t *t, char *out, size_t outsz)
{
    const struct cls_token *toks;
    size_t n;
    size_t i;
    size_t o = 0;

    toks = cls_text_tokens(t, &n);
    out[0] = '\0';
    for (i = 0; i < n && o < outsz; i++) {
        o += (size_t)snprintf(out + o, outsz - o, "%s%s:%.*s", i > 0 ? " " : "",
                              cls_text_kind_name((enum cls_tok_kind)toks[i].kind),
                              (int)toks[i].len, cls_text_tok_str(t, &toks[i]));
    }
    return out;
}

static const char *
s_tok(cls_text_t *t, const char *s, char *out, size_t outsz)
{
    cls_text_tokenize(t, &s_keep, s, strlen(s));
    return s_dump(t, out, outsz);
}

static void
test_text_links_off_keeps_the_gap(void **state)
{
    static const char text[] = "ver https://www.Congreso.gob.pe/noticias/ hoy #Perú";
    cls_text_t *t = cls_text_new();
    char with[512];
    char without[512];
    const struct cls_token *a;

    cls_text_tokenize(t, &s_keep, text, strlen(text));
    cls_text_add_field(t, &s_keep, CLS_TOK_LINK, "https://gob.pe/x");
    s_dump(t, with, sizeof(with));
    assert_string_equal(with, "word:ver link:www.congreso.gob.pe/noticias word:hoy hashtag:peru "
                              "link:gob.pe/x");
    /* off: the same tokens and positions, only the links left out */
    cls_text_set_links(t, false);
    cls_text_tokenize(t, &s_keep, text, strlen(text));
    cls_text_add_field(t, &s_keep, CLS_TOK_LINK, "https://gob.pe/x");
    assert_string_equal(s_dump(t, without, sizeof(without)), "word:ver word:hoy hashtag:peru");
    assert_null(cls_text_at(t, 1)); /* the URL's gap: "ver" and "hoy" are not adjacent */
    a = cls_text_at(t, 2);
    assert_non_null(a);
    assert_int_equal(a->pos, 2);
    /* and on again */
    cls_text_set_links(t, true);
    cls_text_tokenize(t, &s_keep, text, strlen(text));
    cls_text_add_field(t, &s_keep, CLS_TOK_LINK, "https://gob.pe/x");
    assert_string_equal(s_dump(t, without, sizeof(without)), with);
    cls_text_destroy(&t);
}

static void
test_text_normalize_happy_path(void **state)
{
    cls_text_t *t = cls_text_new();
    size_t len = 0;

    assert_string_equal(cls_text_normalize(t, &s_keep, "¡ELECCIÓN en el Perú!",
                                           strlen("¡ELECCIÓN en el Perú!"), &len),
                        "¡eleccion en el peru!");
    assert_int_equal(len, strlen("¡eleccion en el peru!"));
    assert_int_equal(cls_text_invalid(t), 0);
    cls_text_destroy(&t);
    assert_null(t);
    cls_text_destroy(&t); /* NULL-safe */
}

struct norm_case {
    const char *in;
    bool fold_enye;
    const char *out;
};

static void
test_text_normalize_exact(void **state)
{
    static const struct norm_case cases[] = {
        { "Elección ELECCION eleccion", false, "eleccion eleccion eleccion" },
        { "Año NUEVO, año viejo", false, "año nuevo, año viejo" },
        { "AÑO nuevo, Ñandú", true, "ano nuevo, nandu" },
        { "an\xcc\x83o", false, "año" },                                /* n + U+0303 */
        { "an\xcc\x83o", true, "ano" },
        { "e\xcc\x81lection", false, "election" },                      /* e + U+0301 */
        { "\xef\xbc\xa3\xef\xbd\x8f\xef\xbd\x8e\xef\xbd\x87\xef\xbd\x92\xef\xbd\x85\xef\xbd\x93"
          "\xef\xbd\x8f", false, "congreso" },                         /* fullwidth */
        { "\xef\xac\x81" "esta", false, "fiesta" },                     /* U+FB01 ligature */
        { "Straße ÜBER über", false, "strasse uber uber" },
        { "São Tomé Ça va", false, "sao tome ca va" },
        { "wawa\xe2\x80\x99kuna wawa\xca\xbckuna wawa\xe2\x80\x98kuna", false,
          "wawa'kuna wawa'kuna wawa'kuna" },                           /* U+2019 U+02BC U+2018 */
        { "\xed\x95\x9c\xea\xb5\xad", false, "\xed\x95\x9c\xea\xb5\xad" }, /* 한국 recomposed */
        { "elec\xc2\xad" "ción", false, "eleccion" },                   /* soft hyphen */
        { "ΕΛΛΆΔΑ Привет", false, "ελλαδα привет" },
        { "\xf0\x9f\x97\xb3\xef\xb8\x8f Perú", false, "\xf0\x9f\x97\xb3 peru" }, /* emoji + FE0F */
        { "\xc5\x89" "apa", false, "'napa" },                         /* U+0149 -> U+02BC n */
        { "", false, "" },
        { "plain ascii 123_x", false, "plain ascii 123_x" },
    };
    cls_text_t *t = cls_text_new();
    size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *got = cls_text_normalize(t, cases[i].fold_enye ? &s_fold : &s_keep,
                                             cases[i].in, strlen(cases[i].in), NULL);

        if (strcmp(got, cases[i].out) != 0) {
            fail_msg("case %zu: normalize(\"%s\") = \"%s\", want \"%s\"", i, cases[i].in, got,
                     cases[i].out);
        }
    }
    cls_text_destroy(&t);
}

/* Normalising a normalised string changes nothing, for random mixes of ASCII, Latin, marks
 * (including the diacritic blocks) and any other code points. */
static void
test_text_normalize_idempotent(void **state)
{
    cls_text_t *t = cls_text_new();
    cls_text_t *t2 = cls_text_new();
    uint32_t seed = 12345;
    char buf[512];
    int it;

    for (it = 0; it < 20000; it++) {
        struct cls_text_opts o = { .fold_enye = (it & 1) != 0 };
        size_t i = 0;
        size_t n;
        size_t l1;
        size_t l2;
        const char *a;
        const char *b;

        seed = seed * 1103515245u + 12345u;
        n = (seed >> 16) % 40;
        while (n-- > 0) {
            int32_t cp;

            seed = seed * 1103515245u + 12345u;
            switch ((seed >> 16) % 5) {
            case 0:
                cp = "aAnNeE' "[(seed >> 8) % 8];
                break;
            case 1:
                cp = 0x80 + (int32_t)((seed >> 4) % 0x2000);
                break;
            case 2:
                cp = 0x300 + (int32_t)((seed >> 4) % 0x70);
                break;
            case 3:
                cp = 0x1AB0 + (int32_t)((seed >> 4) % 0x50);
                break;
            default:
                cp = (int32_t)((seed >> 2) % 0x30000);
                break;
            }
            if (cp >= 0xD800 && cp < 0xE000) {
                cp = 'x';
            }
            i += (size_t)utf8proc_encode_char(cp, (utf8proc_uint8_t *)buf + i);
        }
        a = cls_text_normalize(t, &o, buf, i, &l1);
        b = cls_text_normalize(t2, &o, a, l1, &l2);
        if (l1 != l2 || memcmp(a, b, l1) != 0) {
            fail_msg("iteration %d: normalisation is not idempotent", it);
        }
    }
    cls_text_destroy(&t);
    cls_text_destroy(&t2);
}

static void
test_text_invalid_utf8_repaired(void **state)
{
    cls_text_t *t = cls_text_new();
    char buf[256];
    /* a stray continuation byte, a truncated sequence, an overlong '/', a surrogate */
    const char in[] = "a\x80" "b\xc3" "c\xc0\xaf" "d\xed\xa0\x80" "e congreso\xff";

    assert_string_equal(cls_text_normalize(t, &s_keep, in, sizeof(in) - 1, NULL),
                        "a\xef\xbf\xbd" "b\xef\xbf\xbd" "c\xef\xbf\xbd\xef\xbf\xbd"
                        "d\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd" "e congreso\xef\xbf\xbd");
    assert_int_equal(cls_text_invalid(t), 8);
    /* U+FFFD separates words: each letter and "congreso" survive as tokens */
    assert_string_equal(s_tok(t, in, buf, sizeof(buf)),
                        "word:a word:b word:c word:d word:e word:congreso");
    assert_int_equal(cls_text_invalid(t), 8);
    cls_text_destroy(&t);
}

static void
test_text_words_and_apostrophes(void **state)
{
    cls_text_t *t = cls_text_new();
    char buf[512];

    assert_string_equal(s_tok(t, "Hola, ¿qué tal? El CONGRESO-votó 3.5 veces", buf, sizeof(buf)),
                        "word:hola word:que word:tal word:el word:congreso word:voto word:3 "
                        "word:5 word:veces");
    assert_string_equal(s_tok(t, "'wawa\xe2\x80\x99kuna' rock'n'roll peru' ''x a''b", buf,
                              sizeof(buf)),
                        "word:wawa'kuna word:rock'n'roll word:peru word:x word:a word:b");
    assert_string_equal(s_tok(t, "jne_peru __init__ año", buf, sizeof(buf)),
                        "word:jne_peru word:__init__ word:año");
    /* emoji and symbols separate words; marks and soft hyphens stay inside them */
    assert_string_equal(s_tok(t, "\xf0\x9f\x87\xb5\xf0\x9f\x87\xaa" "elecciones\xf0\x9f\x97\xb3"
                                 "\xef\xb8\x8f" "ya elec\xc2\xad" "cio\xcc\x81n",
                              buf, sizeof(buf)),
                        "word:elecciones word:ya word:eleccion");
    assert_string_equal(s_tok(t, "", buf, sizeof(buf)), "");
    assert_string_equal(s_tok(t, "  ,.;!? \xe2\x80\x94 ", buf, sizeof(buf)), "");
    cls_text_destroy(&t);
}

static void
test_text_hashtags_split(void **state)
{
    cls_text_t *t = cls_text_new();
    char buf[512];

    assert_string_equal(s_tok(t, "#EleccionesPerú2026", buf, sizeof(buf)),
                        "hashtag:eleccionesperu2026 part:elecciones part:peru part:2026");
    assert_string_equal(s_tok(t, "#elecciones_2026", buf, sizeof(buf)),
                        "hashtag:elecciones_2026 part:elecciones part:2026");
    assert_string_equal(s_tok(t, "#JNEPerú #CongresoPERU", buf, sizeof(buf)),
                        "hashtag:jneperu part:jne part:peru hashtag:congresoperu part:congreso "
                        "part:peru");
    /* one part only: no parts; "C#" and "a#b" are not hashtags; '#' alone is punctuation */
    assert_string_equal(s_tok(t, "#elecciones #ELECCIONES C# a#b # x", buf, sizeof(buf)),
                        "hashtag:elecciones hashtag:elecciones word:c word:a word:b word:x");
    /* decomposed accent inside a split hashtag; fullwidth '#' */
    assert_string_equal(s_tok(t, "#AñoNuevo #Peru\xcc\x81Libre \xef\xbc\x83Voto2026", buf,
                              sizeof(buf)),
                        "hashtag:añonuevo part:año part:nuevo hashtag:perulibre part:peru "
                        "part:libre hashtag:voto2026 part:voto part:2026");
    cls_text_destroy(&t);
}

static void
test_text_mentions(void **state)
{
    cls_text_t *t = cls_text_new();
    char buf[512];

    assert_string_equal(s_tok(t, "hola @JNE_Peru, @ana@mastodon.social y @onpe.bsky.social.",
                              buf, sizeof(buf)),
                        "word:hola mention:jne_peru mention:ana@mastodon.social mention-part:ana "
                        "word:y mention:onpe.bsky.social");
    /* an e-mail address is words, not a mention */
    assert_string_equal(s_tok(t, "ana@example.org @ @-x", buf, sizeof(buf)),
                        "word:ana word:example word:org word:x");
    cls_text_destroy(&t);
}

static void
test_text_urls_skipped(void **state)
{
    cls_text_t *t = cls_text_new();
    char buf[512];

    assert_string_equal(s_tok(t, "ver https://congreso.gob.pe/#/pleno?x=1 y (www.onpe.gob.pe) "
                                 "HTTP://X.COM/congreso fin congreso.gob.pe",
                              buf, sizeof(buf)),
                        "word:ver link:congreso.gob.pe word:y link:www.onpe.gob.pe "
                        "link:x.com/congreso word:fin word:congreso word:gob word:pe");
    /* the URL leaves a gap: "ver" is at 0, "y" at 2 */
    assert_non_null(cls_text_at(t, 0));
    assert_null(cls_text_at(t, 1));
    assert_non_null(cls_text_at(t, 2));
    assert_int_equal(cls_text_at(t, 2)->len, 1);
    assert_null(cls_text_at(t, 100));
    cls_text_destroy(&t);
}

static void
test_text_links(void **state)
{
    cls_text_t *t = cls_text_new();
    char buf[512];

    /* user info, port, query, fragment, trailing slashes and sentence punctuation go */
    assert_string_equal(s_tok(t, "a https://ana:pw@Congreso.GOB.pe:8443/Pleno/Actas/?q=1#x, "
                                 "b http://www.onpe.gob.pe/. c https://x.pe... d https://",
                              buf, sizeof(buf)),
                        "word:a link:congreso.gob.pe/pleno/actas word:b link:www.onpe.gob.pe "
                        "word:c link:x.pe word:d");
    /* the post url and bare domains given as a field */
    cls_text_reset(t);
    cls_text_add_field(t, &s_keep, CLS_TOK_LINK, "https://www.Congreso.gob.pe/noticias/");
    cls_text_add_field(t, &s_keep, CLS_TOK_LINK, "gob.pe");
    cls_text_add_field(t, &s_keep, CLS_TOK_LINK, "  ");
    cls_text_add_field(t, &s_keep, CLS_TOK_LINK, NULL);
    assert_string_equal(s_dump(t, buf, sizeof(buf)),
                        "link:www.congreso.gob.pe/noticias link:gob.pe");
    cls_text_destroy(&t);
}

static void
test_text_fields_raw_and_enye(void **state)
{
    cls_text_t *t = cls_text_new();
    char buf[512];
    const struct cls_token *toks;
    size_t n;
    size_t len;
    const char *raw;
    const char *s1 = "El AÑO de Perú #BancoDeCrédito";
    const char *s2 = "Pe\x72u\xcc\x81 an\xcc\x83o";

    cls_text_tokenize(t, &s_keep, s1, strlen(s1));
    cls_text_add_field(t, &s_keep, CLS_TOK_AUTHOR, "@Ana@Mastodon.Social");
    cls_text_add_field(t, &s_keep, CLS_TOK_LANG, "ES");
    cls_text_add_field(t, &s_keep, CLS_TOK_PLATFORM, " Mastodon ");
    assert_string_equal(s_dump(t, buf, sizeof(buf)),
                        "word:el word:año word:de word:peru hashtag:bancodecredito part:banco "
                        "part:de part:credito author:ana@mastodon.social author:ana lang:es "
                        "platform:mastodon");
    toks = cls_text_tokens(t, &n);
    assert_int_equal(toks[1].flags, CLS_TOKF_ENYE);
    assert_int_equal(toks[3].flags, 0);
    raw = cls_text_tok_raw(t, &toks[1], &len);
    assert_int_equal(len, strlen("AÑO"));
    assert_memory_equal(raw, "AÑO", len);
    raw = cls_text_tok_raw(t, &toks[3], &len);
    assert_memory_equal(raw, "Perú", len);
    raw = cls_text_tok_raw(t, &toks[4], &len);
    assert_memory_equal(raw, "BancoDeCrédito", len);
    raw = cls_text_tok_raw(t, &toks[7], &len);
    assert_memory_equal(raw, "Crédito", len);
    raw = cls_text_tok_raw(t, &toks[9], &len);
    assert_memory_equal(raw, "Ana", len);
    /* a decomposed é comes out composed; ñ folded away sets no flag */
    cls_text_tokenize(t, &s_fold, s2, strlen(s2));
    toks = cls_text_tokens(t, &n);
    assert_int_equal(n, 2);
    raw = cls_text_tok_raw(t, &toks[0], &len);
    assert_int_equal(len, strlen("Perú"));
    assert_memory_equal(raw, "Perú", len);
    assert_int_equal(toks[1].flags, 0);
    assert_memory_equal(cls_text_tok_str(t, &toks[1]), "ano", 3);
    cls_text_destroy(&t);
}

/* The Latin fold table must give exactly what the general utf8proc path gives: a CJK character
 * at the end forces the general path for the whole span. */
static void
test_text_latin_fast_path_matches_general(void **state)
{
    cls_text_t *t = cls_text_new();
    int32_t cp;
    int fe;

    for (fe = 0; fe < 2; fe++) {
        const struct cls_text_opts *o = fe ? &s_fold : &s_keep;

        for (cp = 0x80; cp < 0x250; cp++) {
            char in[32];
            char fast[64];
            char slow[64];
            utf8proc_uint8_t enc[4];
            utf8proc_ssize_t n = utf8proc_encode_char(cp, enc);

            snprintf(in, sizeof(in), "Xn%.*sY", (int)n, (const char *)enc);
            snprintf(fast, sizeof(fast), "%s\xe4\xb8\x80",
                     cls_text_normalize(t, o, in, strlen(in), NULL));
            snprintf(in, sizeof(in), "Xn%.*sY\xe4\xb8\x80", (int)n, (const char *)enc);
            snprintf(slow, sizeof(slow), "%s", cls_text_normalize(t, o, in, strlen(in), NULL));
            if (strcmp(fast, slow) != 0) {
                fail_msg("U+%04X fold_enye=%d: fast \"%s\" general \"%s\"", (unsigned)cp, fe,
                         fast, slow);
            }
        }
    }
    cls_text_destroy(&t);
}

static void
test_text_positions(void **state)
{
    cls_text_t *t = cls_text_new();
    const struct cls_token *toks;
    size_t n;

    cls_text_tokenize(t, &s_keep, "poder #LegislativoPerú @jne ya",
                      strlen("poder #LegislativoPerú @jne ya"));
    toks = cls_text_tokens(t, &n);
    assert_int_equal(n, 6);
    assert_int_equal(toks[0].pos, 0); /* poder */
    assert_int_equal(toks[1].pos, 1); /* legislativoperu */
    assert_int_equal(toks[2].pos, 1); /* part legislativo */
    assert_int_equal(toks[3].pos, 1); /* part peru */
    assert_int_equal(toks[4].pos, 2); /* jne */
    assert_int_equal(toks[5].pos, 3); /* ya */
    assert_ptr_equal(cls_text_at(t, 1), &toks[1]);
    assert_ptr_equal(cls_text_at(t, 2), &toks[4]);
    cls_text_destroy(&t);
}

static void
test_text_meta_tokens(void **state)
{
    cls_text_t *t = cls_text_new();
    char buf[512];
    const struct cls_token *toks;
    size_t n;

    cls_text_tokenize(t, &s_keep, "hola", 4);
    cls_text_add_hashtag(t, &s_keep, "#EleccionesPerú");
    cls_text_add_hashtag(t, &s_keep, "Año");
    cls_text_add_hashtag(t, &s_keep, "#");
    cls_text_add_hashtag(t, &s_keep, NULL);
    cls_text_add_mention(t, &s_keep, "@ana@mastodon.social");
    cls_text_add_mention(t, &s_keep, "JNE_Peru");
    assert_string_equal(s_dump(t, buf, sizeof(buf)),
                        "word:hola meta-hashtag:eleccionesperu meta-hashtag:año "
                        "meta-mention:ana@mastodon.social meta-mention:ana meta-mention:jne_peru");
    toks = cls_text_tokens(t, &n);
    assert_int_equal(toks[1].pos, CLS_POS_NONE);
    cls_text_add_hashtag(t, &s_fold, "Año");
    toks = cls_text_tokens(t, &n);
    assert_int_equal(toks[n - 1].len, 3);
    assert_memory_equal(cls_text_tok_str(t, &toks[n - 1]), "ano", 3);
    cls_text_destroy(&t);
}

static void
test_text_long_input(void **state)
{
    cls_text_t *t = cls_text_new();
    size_t big = CLS_TEXT_MAX + 100;
    char *s = esc_malloc(big + 1);
    size_t i;
    size_t n;
    const struct cls_token *toks;

    for (i = 0; i + 6 <= big; i += 6) {
        memcpy(s + i, "voto, ", 6);
    }
    memset(s + i, 'x', big - i);
    s[big] = '\0';
    cls_text_tokenize(t, &s_keep, s, 300000);
    toks = cls_text_tokens(t, &n);
    assert_int_equal(n, 50000);
    assert_false(cls_text_truncated(t));
    assert_memory_equal(cls_text_tok_str(t, &toks[n - 1]), "voto", 4);
    cls_text_tokenize(t, &s_keep, s, big);
    assert_true(cls_text_truncated(t));
    cls_text_tokens(t, &n);
    assert_true(n >= CLS_TEXT_MAX / 6);
    /* one huge word */
    memset(s, 'a', big);
    cls_text_tokenize(t, &s_keep, s, 200000);
    toks = cls_text_tokens(t, &n);
    assert_int_equal(n, 1);
    assert_int_equal(toks[0].len, 200000);
    esc_free(s);
    cls_text_destroy(&t);
}

static void
test_text_kind_names(void **state)
{
    assert_string_equal(cls_text_kind_name(CLS_TOK_WORD), "word");
    assert_string_equal(cls_text_kind_name(CLS_TOK_HASHPART), "part");
    assert_string_equal(cls_text_kind_name(CLS_TOK_META_MENTION), "meta-mention");
    assert_string_equal(cls_text_kind_name((enum cls_tok_kind)99), "?");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_text_normalize_happy_path),
        cmocka_unit_test(test_text_normalize_exact),
        cmocka_unit_test(test_text_normalize_idempotent),
        cmocka_unit_test(test_text_invalid_utf8_repaired),
        cmocka_unit_test(test_text_words_and_apostrophes),
        cmocka_unit_test(test_text_hashtags_split),
        cmocka_unit_test(test_text_mentions),
        cmocka_unit_test(test_text_urls_skipped),
        cmocka_unit_test(test_text_links),
        cmocka_unit_test(test_text_fields_raw_and_enye),
        cmocka_unit_test(test_text_latin_fast_path_matches_general),
        cmocka_unit_test(test_text_positions),
        cmocka_unit_test(test_text_meta_tokens),
        cmocka_unit_test(test_text_long_input),
        cmocka_unit_test(test_text_kind_names),
        cmocka_unit_test(test_text_links_off_keeps_the_gap),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
