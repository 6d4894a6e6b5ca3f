#define ESC_LOG_MODULE "test"
/* The query-language conformance table: tests/data/classifier/queries.jsonl (CLS_QUERY_CASES),
 * one JSON object per line ("//" lines are section titles). A match case has query (or null),
 * text, optional keywords, exclude, fold_enye, global_fold_enye, team_exclude {authors, sites,
 * phrases} and post fields (author, lang, platform, url, followers, hashtags, mentions), and
 * expect true/false: one topic is compiled and the post is tokenised as the classifier does.
 * An error case has error (the exact text of the first error), column, and optionally errors
 * (every [text, column]); a warning case has warning and column (mode "exclude" parses an
 * exclude query). Every failing case is reported with its line; the test fails at the end. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "escucha/esc_log.h"
#include "escucha/esc_mem.h"

#include "match.h"
#include "query.h"
#include "text.h"

#ifndef CLS_QUERY_CASES
#error "CLS_QUERY_CASES must name tests/data/classifier/queries.jsonl"
#endif

#define S_LIST_MAX 16

struct counts {
    size_t match;
    size_t yes;
    size_t error;
    size_t warning;
    size_t failed;
};

static const char *
s_str(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);

    return json_is_string(v) ? json_string_value(v) : NULL;
}

/* Reads a JSON array of strings into list (borrowed from o); returns the count. */
static size_t
s_list(json_t *o, const char *key, const char **list)
{
    json_t *a = json_object_get(o, key);
    size_t n = 0;
    size_t i;

    for (i = 0; json_is_array(a) && i < json_array_size(a) && n < S_LIST_MAX; i++) {
        if (json_is_string(json_array_get(a, i))) {
            list[n++] = json_string_value(json_array_get(a, i));
        }
    }
    return n;
}

static void
s_fail(struct counts *c, size_t line, const char *query, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void
s_fail(struct counts *c, size_t line, const char *query, const char *fmt, ...)
{
    char buf[600];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    print_message("queries.jsonl:%zu: query '%.200s': %s\n", line, query != NULL ? query : "",
                  buf);
    c->failed++;
}

/* True when q has a message (error or not) with this text and column. */
static bool
s_has_msg(const struct cls_query *q, bool error, const char *text, uint32_t col)
{
    size_t i;

    for (i = 0; i < q->n_msgs; i++) {
        if (q->msgs[i].error == error && q->msgs[i].col == col
            && strcmp(q->msgs[i].text, text) == 0) {
            return true;
        }
    }
    return false;
}

static void
s_error_case(json_t *o, size_t line, struct counts *c)
{
    const char *query = s_str(o, "query");
    const char *want = s_str(o, "error");
    uint32_t col = (uint32_t)json_integer_value(json_object_get(o, "column"));
    json_t *all = json_object_get(o, "errors");
    struct cls_query q;
    struct cls_query_opts qo;
    size_t i;

    memset(&qo, 0, sizeof(qo));
    qo.mode = strcmp(s_str(o, "mode") != NULL ? s_str(o, "mode") : "", "exclude") == 0
                  ? CLS_QUERY_EXCLUDE
                  : CLS_QUERY_INCLUDE;
    c->error++;
    if (cls_query_parse(&q, query, &qo, NULL) == 0) {
        s_fail(c, line, query, "parsed, want error \"%s\"", want);
    }
    else if (strcmp(q.msgs[0].text, want) != 0 || q.msgs[0].col != col || !q.msgs[0].error) {
        s_fail(c, line, query, "first message %s \"%s\" at column %u, want error \"%s\" at %u",
               q.msgs[0].error ? "error" : "warning", q.msgs[0].text, (unsigned)q.msgs[0].col,
               want, (unsigned)col);
    }
    else if (q.root != CLS_Q_NONE) {
        s_fail(c, line, query, "has a tree despite errors");
    }
    for (i = 0; json_is_array(all) && i < json_array_size(all); i++) {
        json_t *pair = json_array_get(all, i);
        const char *text = json_string_value(json_array_get(pair, 0));
        uint32_t pcol = (uint32_t)json_integer_value(json_array_get(pair, 1));

        if (!s_has_msg(&q, true, text, pcol)) {
            s_fail(c, line, query, "missing error \"%s\" at column %u", text, (unsigned)pcol);
        }
    }
    if (json_is_array(all) && json_array_size(all) != q.n_errors) {
        s_fail(c, line, query, "%zu errors, want %zu", q.n_errors, json_array_size(all));
    }
    cls_query_fini(&q);
}

static void
s_warning_case(json_t *o, size_t line, struct counts *c)
{
    const char *query = s_str(o, "query");
    const char *want = s_str(o, "warning");
    uint32_t col = (uint32_t)json_integer_value(json_object_get(o, "column"));
    struct cls_query q;
    struct cls_query_opts qo;

    memset(&qo, 0, sizeof(qo));
    qo.mode = strcmp(s_str(o, "mode") != NULL ? s_str(o, "mode") : "", "exclude") == 0
                  ? CLS_QUERY_EXCLUDE
                  : CLS_QUERY_INCLUDE;
    c->warning++;
    if (cls_query_parse(&q, query, &qo, NULL) != 0) {
        s_fail(c, line, query, "error \"%s\", want only a warning", q.msgs[0].text);
    }
    else if (!s_has_msg(&q, false, want, col)) {
        s_fail(c, line, query, "no warning \"%s\" at column %u (%zu messages)", want,
               (unsigned)col, q.n_msgs);
    }
    cls_query_fini(&q);
}

static void
s_match_case(json_t *o, size_t line, struct counts *c)
{
    const char *query = s_str(o, "query");
    const char *text = s_str(o, "text");
    bool expect = json_is_true(json_object_get(o, "expect"));
    json_t *tx = json_object_get(o, "team_exclude");
    struct cls_text_opts opts;
    struct cls_topic_src src;
    struct cls_team_src team;
    struct esc_error err;
    struct cls_match_post post;
    struct cls_match_result res;
    const char *keywords[S_LIST_MAX];
    const char *authors[S_LIST_MAX];
    const char *sites[S_LIST_MAX];
    const char *phrases[S_LIST_MAX];
    const char *list[S_LIST_MAX];
    cls_match_t *m;
    cls_text_t *t;
    size_t n;
    size_t i;

    c->match++;
    c->yes += expect ? 1 : 0;
    memset(&opts, 0, sizeof(opts));
    opts.fold_enye = json_is_true(json_object_get(o, "global_fold_enye"));
    m = cls_match_new(&opts);
    memset(&team, 0, sizeof(team));
    team.id = "t";
    team.authors = authors;
    team.n_authors = s_list(tx, "authors", authors);
    team.sites = sites;
    team.n_sites = s_list(tx, "sites", sites);
    team.phrases = phrases;
    team.n_phrases = s_list(tx, "phrases", phrases);
    memset(&err, 0, sizeof(err));
    memset(&src, 0, sizeof(src));
    src.key = "t/x";
    src.keywords = keywords;
    src.n_keywords = s_list(o, "keywords", keywords);
    src.query = query;
    src.exclude = s_str(o, "exclude");
    src.fold_enye = json_is_true(json_object_get(o, "fold_enye"));
    src.team = cls_match_add_team(m, &team, "teams[0]", &err);
    if (src.team < 0 || cls_match_add_topic_src(m, &src, "teams[0].topics[0]", &err) < 0) {
        s_fail(c, line, query, "does not compile: %s", err.text);
        cls_match_destroy(&m);
        return;
    }
    cls_match_build(m);
    t = cls_text_new();
    cls_text_tokenize(t, &opts, text, strlen(text));
    n = s_list(o, "hashtags", list);
    for (i = 0; i < n; i++) {
        cls_text_add_field(t, &opts, CLS_TOK_META_HASHTAG, list[i]);
    }
    n = s_list(o, "mentions", list);
    for (i = 0; i < n; i++) {
        cls_text_add_field(t, &opts, CLS_TOK_META_MENTION, list[i]);
    }
    cls_text_add_field(t, &opts, CLS_TOK_AUTHOR, s_str(o, "author"));
    cls_text_add_field(t, &opts, CLS_TOK_LINK, s_str(o, "url"));
    cls_text_add_field(t, &opts, CLS_TOK_PLATFORM, s_str(o, "platform"));
    cls_text_add_field(t, &opts, CLS_TOK_LANG, s_str(o, "lang"));
    post.followers = json_integer_value(json_object_get(o, "followers"));
    cls_match_result_init(&res);
    if ((cls_match_run(m, t, &post, &res) == 1) != expect) {
        s_fail(c, line, query != NULL ? query : "(keywords only)", "text \"%s\": got %s, want %s",
               text, expect ? "no match" : "match", expect ? "match" : "no match");
    }
    cls_match_result_fini(&res);
    cls_text_destroy(&t);
    cls_match_destroy(&m);
}

/* The whole file, caller-owned and NUL-terminated. */
static char *
s_slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    size_t cap = 1 << 16;
    size_t len = 0;
    size_t r;
    char *buf = esc_malloc(cap);

    assert_non_null(f);
    while ((r = fread(buf + len, 1, cap - len - 1, f)) > 0) {
        len += r;
        if (cap - len - 1 == 0) {
            cap *= 2;
            buf = esc_realloc(buf, cap);
        }
    }
    buf[len] = '\0';
    fclose(f);
    return buf;
}

static void
test_query_cases_conformance(void **state)
{
    char *data = s_slurp(CLS_QUERY_CASES);
    char *p = data;
    size_t line = 0;
    struct counts c;

    memset(&c, 0, sizeof(c));
    while (*p != '\0') {
        char *nl = strchr(p, '\n');
        json_error_t jerr;
        json_t *o;

        line++;
        if (nl != NULL) {
            *nl = '\0';
        }
        if (*p == '\0' || strncmp(p, "//", 2) == 0) {
            p = nl != NULL ? nl + 1 : p + strlen(p);
            continue;
        }
        o = json_loads(p, 0, &jerr);
        p = nl != NULL ? nl + 1 : p + strlen(p);
        if (o == NULL || !json_is_object(o)) {
            s_fail(&c, line, NULL, "not a JSON object: %s", jerr.text);
            json_decref(o);
            continue;
        }
        if (json_object_get(o, "error") != NULL) {
            s_error_case(o, line, &c);
        }
        else if (json_object_get(o, "warning") != NULL) {
            s_warning_case(o, line, &c);
        }
        else if (json_is_boolean(json_object_get(o, "expect")) && s_str(o, "text") != NULL) {
            s_match_case(o, line, &c);
        }
        else {
            s_fail(&c, line, s_str(o, "query"), "neither a match, an error nor a warning case");
        }
        json_decref(o);
    }
    esc_free(data);
    print_message("queries.jsonl: %zu match cases (%zu expect a match), %zu error cases, "
                  "%zu warning cases, %zu failed\n",
                  c.match, c.yes, c.error, c.warning, c.failed);
    assert_int_equal(c.failed, 0);
    assert_true(c.match + c.error + c.warning >= 150);
    assert_true(c.yes >= 60 && c.match - c.yes >= 60);
    assert_true(c.error >= 40);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_query_cases_conformance),
    };

    esc_log_init("query-cases-test", ESC_LOG_ERROR);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
