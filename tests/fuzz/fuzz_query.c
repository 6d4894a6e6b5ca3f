#define ESC_LOG_MODULE "fuzz"
/* libFuzzer target: the topic query language (classifier/query.c lexer, parser and validator,
 * with its messages and carets printed) and the compiled matcher (classifier/match.c) on the
 * result. The input is a query, optionally followed by "\n---\n" and a post text (else a fixed
 * post is used). The query is parsed as an include query, an exclude query and a keyword; when
 * it compiles, one matcher holds it as a topic's query, as an exclude query, as a keyword and
 * as a team exclusion phrase, and the post is matched twice: the indexed path (cls_match_run)
 * must find exactly the topics that evaluating every topic finds (cls_match_run_all).
 * FUZZ_DICT: query */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "match.h"
#include "query.h"
#include "text.h"

#include "escucha/esc_log.h"
#include "escucha/esc_mem.h"
#include "escucha/esc_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define S_SEP "\n---\n"
#define S_POST \
    "Feliz AÑO nuevo 🎉 #RustLang @ana@mastodon.social: la elección del voto digital, " \
    "\"niño\" costero https://gob.pe/news/1?x=2 y www.example.org/a"

static FILE *s_null;

/* Parses q in every mode and prints what a validator would show. */
static void
s_parse_all(const char *q, bool fold, cls_text_t *txt)
{
    static const enum cls_q_mode modes[] = { CLS_QUERY_INCLUDE, CLS_QUERY_EXCLUDE,
                                             CLS_QUERY_KEYWORD };
    struct cls_query_opts qo;
    struct cls_query pq;
    char elem[256];
    size_t i;
    size_t k;

    for (i = 0; i < ESC_ARRAY_LEN(modes); i++) {
        memset(&qo, 0, sizeof(qo));
        qo.mode = modes[i];
        qo.fold_enye = fold;
        qo.text_fold_enye = !fold;
        if (cls_query_parse(&pq, q, &qo, txt) == 0) {
            ESC_ASSERT(pq.root != CLS_Q_NONE && pq.root < pq.n_nodes);
            cls_query_print_tree(&pq, s_null);
            for (k = 0; k < pq.n_nodes; k++) {
                (void)cls_query_nullable(&pq, (uint32_t)k);
            }
            for (k = 0; k < pq.n_elems; k++) {
                (void)cls_query_elem_str(&pq.elems[k], elem, sizeof(elem));
            }
        }
        else {
            ESC_ASSERT(pq.root == CLS_Q_NONE && pq.n_errors > 0);
        }
        cls_query_print_msgs(&pq, s_null, "fuzz: ", "q");
        cls_query_fini(&pq);
    }
}

/* One matcher with q in every role; the post matched by both paths. */
static void
s_match(const char *q, bool fold, const char *text, size_t tlen)
{
    struct cls_text_opts opts = { fold };
    const char *list[1] = { q };
    const char *tags[2] = { "rustlang", "Votó" };
    struct cls_topic_src src;
    struct cls_team_src team;
    struct cls_match_result r1;
    struct cls_match_result r2;
    struct cls_match_post post = { 1500 };
    struct esc_error err;
    cls_match_t *m = cls_match_new(&opts);
    cls_text_t *t = cls_text_new();
    size_t n1;
    size_t n2;
    size_t i;

    memset(&src, 0, sizeof(src));
    src.key = "t/query";
    src.query = q;
    src.fold_enye = !fold;
    src.team = -1;
    (void)cls_match_add_topic_src(m, &src, "teams[0].topics[0]", &err);
    src.key = "t/exclude";
    src.query = "elección OR voto OR #rustlang";
    src.exclude = q;
    (void)cls_match_add_topic_src(m, &src, "teams[0].topics[1]", &err);
    (void)cls_match_add_topic(m, "t/keyword", list, 1, "teams[0].topics[2]", &err);
    memset(&team, 0, sizeof(team));
    team.id = "u";
    team.authors = list;
    team.n_authors = 1;
    team.sites = list;
    team.n_sites = 1;
    team.phrases = list;
    team.n_phrases = 1;
    memset(&src, 0, sizeof(src));
    src.key = "u/all";
    src.keywords = tags;
    src.n_keywords = 2;
    src.team = cls_match_add_team(m, &team, "teams[1]", &err);
    (void)cls_match_add_topic_src(m, &src, "teams[1].topics[0]", &err);
    cls_match_build(m);

    cls_text_tokenize(t, &opts, text, tlen);
    cls_text_add_field(t, &opts, CLS_TOK_META_HASHTAG, "rustlang");
    cls_text_add_field(t, &opts, CLS_TOK_META_MENTION, "bob@mastodon.example");
    cls_text_add_field(t, &opts, CLS_TOK_AUTHOR, "@ana@mastodon.social");
    cls_text_add_field(t, &opts, CLS_TOK_LINK, "https://www.gob.pe/news/2");
    cls_text_add_field(t, &opts, CLS_TOK_LANG, "es");
    cls_text_add_field(t, &opts, CLS_TOK_PLATFORM, "mastodon");
    cls_match_result_init(&r1);
    cls_match_result_init(&r2);
    n1 = cls_match_run(m, t, &post, &r1);
    n2 = cls_match_run_all(m, t, &post, &r2);
    if (n1 != n2) {
        fprintf(stderr, "fuzz_query: indexed match found %zu topics, full evaluation %zu\n", n1,
                n2);
        abort();
    }
    for (i = 0; i < n1; i++) {
        ESC_ASSERT(r1.hits[i].topic == r2.hits[i].topic);
    }
    cls_match_explain(m, t, &post, &r1, s_null);
    cls_match_result_fini(&r1);
    cls_match_result_fini(&r2);
    cls_text_destroy(&t);
    cls_match_destroy(&m);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static cls_text_t *txt;
    const char *in = (const char *)data;
    const char *text = S_POST;
    size_t tlen = strlen(S_POST);
    size_t qlen = size;
    size_t i;
    bool fold;
    char *q;

    esc_log_level_cur = -1;
    if (s_null == NULL) {
        s_null = fopen("/dev/null", "w");
        ESC_ASSERT(s_null != NULL);
        txt = cls_text_new();
    }
    for (i = 0; i + strlen(S_SEP) <= size; i++) {
        if (memcmp(in + i, S_SEP, strlen(S_SEP)) == 0) {
            qlen = i;
            text = in + i + strlen(S_SEP);
            tlen = size - i - strlen(S_SEP);
            break;
        }
    }
    q = esc_malloc(qlen + 1);
    memcpy(q, in, qlen);
    q[qlen] = '\0';
    fold = (size & 1) != 0;
    s_parse_all(q, fold, txt);
    s_match(q, fold, text, tlen);
    esc_free(q);
    return 0;
}
