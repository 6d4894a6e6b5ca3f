#define ESC_LOG_MODULE "test"
/* Unit tests of classifier/query.c: the tree a query parses to (precedence, implicit AND,
 * NEAR chains, fields with groups), the normalised elements (wildcards, {Exact}, sites with
 * paths, authors, languages, ñ folding), the validator output format with its caret line,
 * every error being collected, keyword mode, the limits, and arbitrary bytes never crashing
 * the parser (nor the caret printer). The exact error texts are pinned by the conformance
 * table (queries.jsonl). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "escucha/esc_mem.h"

#include "query.h"

static const struct cls_query_opts s_incl = { .mode = CLS_QUERY_INCLUDE };

/* The tree (or the messages when invalid) as text, caller-owned. */
static char *
s_tree(const char *query, const struct cls_query_opts *o)
{
    struct cls_query q;
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    char *out;

    assert_non_null(f);
    if (cls_query_parse(&q, query, o, NULL) == 0) {
        cls_query_print_tree(&q, f);
    }
    else {
        cls_query_print_msgs(&q, f, NULL, NULL);
    }
    cls_query_fini(&q);
    fclose(f);
    out = esc_strdup(buf);
    esc_free(buf); /* open_memstream allocates with malloc; esc_free is free */
    return out;
}

static void
s_expect_tree(const char *query, const char *want)
{
    char *got = s_tree(query, &s_incl);

    if (strcmp(got, want) != 0) {
        fail_msg("query '%s':\n--- got\n%s--- want\n%s", query, got, want);
    }
    esc_free(got);
}

static void
test_query_parse_happy_path(void **state)
{
    struct cls_query q;
    const struct cls_q_node *root;
    const struct cls_q_node *n;

    assert_int_equal(cls_query_parse(&q, "(elecciones OR voto) AND perú -fraude", &s_incl, NULL),
                     0);
    assert_int_equal(q.n_msgs, 0);
    root = &q.nodes[q.root];
    assert_int_equal(root->type, CLS_Q_AND);
    assert_int_equal(root->count, 3);
    n = &q.nodes[q.kids[root->first]];
    assert_int_equal(n->type, CLS_Q_OR);
    assert_true(n->paren);
    assert_int_equal(n->from, 0);
    assert_int_equal(n->to, strlen("(elecciones OR voto)"));
    n = &q.nodes[q.kids[root->first + 1]];
    assert_int_equal(n->type, CLS_Q_ATOM);
    assert_string_equal(q.elems[n->first].text, "peru");
    assert_int_equal(q.elems[n->first].kind, CLS_QK_WORD);
    assert_int_equal(q.elems[n->first].match, CLS_QM_EXACT);
    n = &q.nodes[q.kids[root->first + 2]];
    assert_int_equal(n->type, CLS_Q_NOT);
    assert_int_equal(q.nodes[q.kids[n->first]].type, CLS_Q_ATOM);
    assert_int_equal(q.n_terms, 4);
    assert_false(cls_query_nullable(&q, q.root));
    cls_query_fini(&q);
    cls_query_fini(&q); /* idempotent */
}

static void
test_query_precedence(void **state)
{
    /* implicit AND binds tighter than OR */
    s_expect_tree("a OR b c", "OR\n  term \"a\"\n  AND\n    term \"b\"\n    term \"c\"\n");
    /* NOT binds tighter than AND: "a NOT b" is a AND (NOT b) */
    s_expect_tree("a NOT b", "AND\n  term \"a\"\n  NOT\n    term \"b\"\n");
    /* NEAR binds tighter than NOT and OR */
    s_expect_tree("c OR x -a NEAR/1 b",
                  "OR\n  term \"c\"\n  AND\n    term \"x\"\n    NOT\n      NEAR/1\n"
                  "        term \"a\"\n        term \"b\"\n");
    /* NEAR chains to the left, over groups, each with its own distance */
    s_expect_tree("(a OR b) NEAR/3 c NEAR/2f \"d e\"",
                  "NEAR/2 (ordered)\n  NEAR/3\n    OR\n      term \"a\"\n      term \"b\"\n"
                  "    term \"c\"\n  phrase \"d e\"\n");
    s_expect_tree("a ONEAR/4 b", "NEAR/4 (ordered)\n  term \"a\"\n  term \"b\"\n");
    /* brackets override everything */
    s_expect_tree("(a OR b) c", "AND\n  OR\n    term \"a\"\n    term \"b\"\n  term \"c\"\n");
    /* explicit and implicit AND are the same node; lower-case and is a word */
    s_expect_tree("a AND b c and", "AND\n  term \"a\"\n  term \"b\"\n  term \"c\"\n"
                                   "  term \"and\"\n");
    /* fields with groups; -field */
    s_expect_tree("site:(gob.pe OR www.cnet.com/news) -author:bot* followers:>=10",
                  "AND\n  OR\n    site:gob.pe\n    site:www.cnet.com/news\n  NOT\n"
                  "    author:bot*\n  followers >= 10\n");
    s_expect_tree("\"a b\"~3 {Perú} #Tag @User", "AND\n  phrase~3 \"a b\"\n  exact \"{Perú}\"\n"
                                                 "  hashtag \"#tag\"\n  mention \"@user\"\n");
    /* a term with several words is a phrase */
    s_expect_tree("covid-19", "phrase \"covid 19\"\n");
    s_expect_tree("\"poder legisla*\"", "phrase \"poder legisla*\"\n");
}

static void
test_query_elements(void **state)
{
    static const struct {
        const char *query;
        uint8_t kind;
        uint8_t match;
        const char *text;
        const char *raw;
    } cases[] = {
        { "Elecc*", CLS_QK_WORD, CLS_QM_PREFIX, "elecc", NULL },
        { "Customi?e", CLS_QK_WORD, CLS_QM_GLOB, "customi?e", NULL },
        { "reali?ation*", CLS_QK_WORD, CLS_QM_GLOB, "reali?ation*", NULL },
        { "{BT}", CLS_QK_WORD, CLS_QM_CASE, "bt", "BT" },
        { "{Perú}", CLS_QK_WORD, CLS_QM_CASE, "peru", "Perú" },
        { "#EleccionesPerú2026", CLS_QK_HASHTAG, CLS_QM_EXACT, "eleccionesperu2026", NULL },
        { "#elec*", CLS_QK_HASHTAG, CLS_QM_PREFIX, "elec", NULL },
        { "@JNE_Peru", CLS_QK_MENTION, CLS_QM_EXACT, "jne_peru", NULL },
        { "mention:@ONPE", CLS_QK_MENTION, CLS_QM_EXACT, "onpe", NULL },
        { "hashtag:Anemia", CLS_QK_HASHTAG, CLS_QM_EXACT, "anemia", NULL },
        { "author:@Ana@Mastodon.Social", CLS_QK_AUTHOR, CLS_QM_EXACT, "ana@mastodon.social",
          NULL },
        { "site:https://WWW.Congreso.gob.pe/", CLS_QK_SITE, CLS_QM_EXACT, "www.congreso.gob.pe",
          NULL },
        { "url:congreso.gob.pe/Pleno/", CLS_QK_SITE, CLS_QM_EXACT, "congreso.gob.pe", "/pleno" },
        { "links:\"bbc.co.uk\"", CLS_QK_SITE, CLS_QM_EXACT, "bbc.co.uk", NULL },
        { "lang:ES-pe", CLS_QK_LANG, CLS_QM_EXACT, "es", NULL },
        { "platform:Mastodon", CLS_QK_PLATFORM, CLS_QM_EXACT, "mastodon", NULL },
        { "wawa’kuna", CLS_QK_WORD, CLS_QM_EXACT, "wawa'kuna", NULL },
    };
    size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct cls_query q;
        const struct cls_q_elem *e;

        if (cls_query_parse(&q, cases[i].query, &s_incl, NULL) != 0) {
            fail_msg("'%s': %s", cases[i].query, q.msgs[0].text);
        }
        assert_int_equal(q.nodes[q.root].type, CLS_Q_ATOM);
        e = &q.elems[q.nodes[q.root].first];
        if (e->kind != cases[i].kind || e->match != cases[i].match
            || strcmp(e->text, cases[i].text) != 0
            || (cases[i].raw == NULL) != (e->raw == NULL)
            || (e->raw != NULL && strcmp(e->raw, cases[i].raw) != 0)) {
            fail_msg("'%s': kind %d match %d text '%s' raw '%s'", cases[i].query, e->kind,
                     e->match, e->text, e->raw != NULL ? e->raw : "(null)");
        }
        cls_query_fini(&q);
    }
}

static void
test_query_enye_options(void **state)
{
    struct cls_query_opts o = { .mode = CLS_QUERY_INCLUDE, .fold_enye = true };
    struct cls_query q;

    assert_int_equal(cls_query_parse(&q, "Año {Año} ñandú*", &o, NULL), 0);
    assert_string_equal(q.elems[0].text, "ano");
    /* {Exact} keys follow the deployment's token normalisation, not the topic's folding */
    assert_string_equal(q.elems[1].text, "año");
    assert_string_equal(q.elems[1].raw, "Año");
    assert_string_equal(q.elems[2].text, "nandu");
    cls_query_fini(&q);
    o.text_fold_enye = true;
    assert_int_equal(cls_query_parse(&q, "{Año}", &o, NULL), 0);
    assert_string_equal(q.elems[0].text, "ano");
    assert_string_equal(q.elems[0].raw, "Año");
    cls_query_fini(&q);
}

static void
test_query_validator_output(void **state)
{
    char *out = s_tree("congreso AND (voto", &s_incl);
    struct cls_query q;
    char *buf = NULL;
    size_t len = 0;
    FILE *f;
    char longq[400];
    size_t i;

    assert_string_equal(out, "error: column 14: unbalanced parenthesis\n"
                             "  congreso AND (voto\n"
                             "               ^\n");
    esc_free(out);
    /* columns count characters, not bytes; tabs and newlines print as spaces */
    out = s_tree("elección\tAND\n(voto", &s_incl);
    assert_string_equal(out, "error: column 14: unbalanced parenthesis\n"
                             "  elección AND (voto\n"
                             "               ^\n");
    esc_free(out);
    /* lead and path for config validation; warnings too */
    f = open_memstream(&buf, &len);
    assert_int_equal(cls_query_parse(&q, "vot* OR a b", &s_incl, NULL), 0);
    cls_query_print_msgs(&q, f, "prog: file: ", "teams[0].topics[2].query");
    cls_query_fini(&q);
    fclose(f);
    assert_string_equal(buf, "prog: file: warning: teams[0].topics[2].query: column 1: short "
                             "wildcard 'vot*' may match many unrelated words\n"
                             "  vot* OR a b\n"
                             "  ^\n"
                             "prog: file: warning: teams[0].topics[2].query: column 6: AND and "
                             "OR mixed without brackets: read as (... AND ...) OR ...; add "
                             "brackets to say which you mean\n"
                             "  vot* OR a b\n"
                             "       ^\n");
    esc_free(buf); /* open_memstream allocates with malloc; esc_free is free */
    /* a long query shows a window around the column */
    for (i = 0; i < 60; i++) {
        memcpy(longq + 5 * i, "abcd ", 5);
    }
    memcpy(longq + 300, "AND", 4);
    out = s_tree(longq, &s_incl);
    assert_non_null(strstr(out, "error: column 301: AND needs a term on each side\n  ..."));
    assert_non_null(strstr(out, "AND\n     "));
    assert_non_null(strstr(out, "^\n"));
    assert_true(strlen(strchr(out, '\n') + 1) < 2 * 120);
    esc_free(out);
    /* found by tests/fuzz/fuzz_query.c: a long query that starts with a stray UTF-8
     * continuation byte and has a message at byte 0 once read far past the query */
    longq[0] = '\x80';
    memcpy(longq + 1, "* ", 2);
    for (i = 0; i < 60; i++) {
        memcpy(longq + 3 + 5 * i, "abcd ", 5);
    }
    longq[3 + 5 * 60] = '\0';
    out = s_tree(longq, &s_incl);
    assert_non_null(strstr(out, "error: column 1: "));
    assert_non_null(strstr(out, "\n  \x80* abcd"));
    assert_non_null(strstr(out, "...\n  ^\n"));
    esc_free(out);
}

static void
test_query_collects_every_error(void **state)
{
    struct cls_query q;

    assert_int_equal(cls_query_parse(&q, ") vo* autor:x a NEAR/99 b \"open", &s_incl, NULL), 5);
    assert_int_equal(q.n_msgs, 5);
    assert_string_equal(q.msgs[0].text, "unbalanced parenthesis");
    assert_int_equal(q.msgs[0].col, 1);
    assert_int_equal(q.msgs[1].col, 3);
    assert_int_equal(q.msgs[2].col, 7);
    assert_int_equal(q.msgs[3].col, 17);
    assert_string_equal(q.msgs[4].text, "unterminated phrase: missing closing quote");
    assert_int_equal(q.msgs[4].col, 27);
    assert_int_equal(q.root, CLS_Q_NONE);
    cls_query_fini(&q);
}

static void
test_query_keyword_mode(void **state)
{
    static const struct cls_query_opts kw = { .mode = CLS_QUERY_KEYWORD };
    struct cls_query q;

    /* operators and wildcards are plain text in a keyword; quotes are optional */
    assert_int_equal(cls_query_parse(&q, "  \"Poder AND Legislativo\" ", &kw, NULL), 0);
    assert_int_equal(q.nodes[q.root].type, CLS_Q_PHRASE);
    assert_int_equal(q.nodes[q.root].count, 3);
    assert_string_equal(q.elems[1].text, "and");
    cls_query_fini(&q);
    assert_int_equal(cls_query_parse(&q, "#CongresoPerú", &kw, NULL), 0);
    assert_int_equal(q.elems[0].kind, CLS_QK_HASHTAG);
    cls_query_fini(&q);
    assert_int_equal(cls_query_parse(&q, "?!", &kw, NULL), 1);
    assert_int_equal(q.msgs[0].col, 0);
    assert_string_equal(q.msgs[0].text, "keyword \"?!\" has nothing to match after "
                                        "normalisation (it needs letters or digits outside a "
                                        "URL)");
    cls_query_fini(&q);
}

static void
test_query_limits(void **state)
{
    size_t cap = CLS_QUERY_MAX_BYTES + 64;
    char *s = esc_malloc(cap);
    struct cls_query q;
    size_t o = 0;
    int i;

    /* 500 terms are fine, 501 are not */
    for (i = 0; i < CLS_QUERY_MAX_TERMS; i++) {
        o += (size_t)snprintf(s + o, cap - o, "w%d ", i);
    }
    assert_int_equal(cls_query_parse(&q, s, &s_incl, NULL), 0);
    cls_query_fini(&q);
    snprintf(s + o, cap - o, "w");
    assert_int_equal(cls_query_parse(&q, s, &s_incl, NULL), 1);
    cls_query_fini(&q);
    /* 64 levels of brackets are fine */
    memset(s, '(', 64);
    s[64] = 'a';
    memset(s + 65, ')', 64);
    s[129] = '\0';
    assert_int_equal(cls_query_parse(&q, s, &s_incl, NULL), 0);
    cls_query_fini(&q);
    /* NEAR/50 is the largest distance */
    assert_int_equal(cls_query_parse(&q, "a NEAR/50f b \"c d\"~50", &s_incl, NULL), 0);
    assert_int_equal(q.n_msgs, 2); /* both wide-window warnings */
    cls_query_fini(&q);
    assert_int_equal(cls_query_parse(&q, "a NEAR/51 b", &s_incl, NULL), 1);
    cls_query_fini(&q);
    /* a long query of exactly the maximum is parsed, one byte more is refused */
    memset(s, 'x', CLS_QUERY_MAX_BYTES);
    s[CLS_QUERY_MAX_BYTES] = '\0';
    assert_int_equal(cls_query_parse(&q, s, &s_incl, NULL), 0);
    cls_query_fini(&q);
    memcpy(s + CLS_QUERY_MAX_BYTES, "y", 2);
    assert_int_equal(cls_query_parse(&q, s, &s_incl, NULL), 1);
    assert_string_equal(q.msgs[0].text, "query is too long (8193 bytes, max 8192)");
    cls_query_fini(&q);
    /* a long run of NOTs is refused instead of recursing */
    for (o = 0, i = 0; i < 70; i++) {
        o += (size_t)snprintf(s + o, cap - o, "NOT ");
    }
    snprintf(s + o, cap - o, "a b");
    assert_int_equal(cls_query_parse(&q, s, &s_incl, NULL), 1);
    assert_string_equal(q.msgs[0].text, "too many NOTs in a row (max 64)");
    cls_query_fini(&q);
    esc_free(s);
}

static void
test_query_nullable_and_exclude_mode(void **state)
{
    static const struct cls_query_opts ex = { .mode = CLS_QUERY_EXCLUDE };
    struct cls_query q;

    /* an exclude query may be NOT-only (a warning), an include query may not */
    assert_int_equal(cls_query_parse(&q, "NOT peru OR followers:<10", &ex, NULL), 0);
    assert_true(cls_query_nullable(&q, q.root));
    assert_int_equal(q.n_msgs, 1);
    assert_false(q.msgs[0].error);
    cls_query_fini(&q);
    assert_int_equal(cls_query_parse(&q, "NOT peru OR followers:<10", &s_incl, NULL), 1);
    cls_query_fini(&q);
    /* a positive branch in an AND is enough */
    assert_int_equal(cls_query_parse(&q, "congreso (NOT peru OR followers:<10)", &s_incl, NULL),
                     0);
    assert_false(cls_query_nullable(&q, q.root));
    cls_query_fini(&q);
}

static void
test_query_arbitrary_bytes_never_crash(void **state)
{
    static const char alphabet[] = "ab ()\"{}~*?-:#@/\\\xc3\xb1\xff" "ANDORNOTNEAR/3f";
    uint32_t seed = 12345;
    char s[64];
    int round;

    for (round = 0; round < 20000; round++) {
        struct cls_query q;
        size_t n;
        size_t i;

        seed = seed * 1103515245u + 12345u;
        n = (seed >> 16) % (sizeof(s) - 1);
        for (i = 0; i < n; i++) {
            seed = seed * 1103515245u + 12345u;
            s[i] = alphabet[(seed >> 16) % (sizeof(alphabet) - 1)];
        }
        s[n] = '\0';
        if (cls_query_parse(&q, s, &s_incl, NULL) == 0) {
            assert_true(q.root != CLS_Q_NONE);
            assert_false(cls_query_nullable(&q, q.root));
        }
        else {
            assert_true(q.n_errors > 0 && q.root == CLS_Q_NONE);
        }
        cls_query_fini(&q);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_query_parse_happy_path),
        cmocka_unit_test(test_query_precedence),
        cmocka_unit_test(test_query_elements),
        cmocka_unit_test(test_query_enye_options),
        cmocka_unit_test(test_query_validator_output),
        cmocka_unit_test(test_query_collects_every_error),
        cmocka_unit_test(test_query_keyword_mode),
        cmocka_unit_test(test_query_limits),
        cmocka_unit_test(test_query_nullable_and_exclude_mode),
        cmocka_unit_test(test_query_arbitrary_bytes_never_crash),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
