#define ESC_LOG_MODULE "bench"
/* Micro-benchmark of the classifier's per-post work on the benchmark corpus, with the topics of
 * one deployment file (bench/corpus/gen_topics.py: 10, 1,000 or 10,000 topics):
 *   tokenize   normalisation + tokenisation of the text only (cls_text_tokenize)
 *   match      tokens of text and fields + topic matching (cls_match_run), nothing else
 *   analyze    cls_analyze: tokens + matching, and language ID and sentiment of the posts
 *              that match (cls_core leaves them out for the others)
 *   process    what the service does per bus message: decode the "post", analyse, encode the
 *              "classified" message (cls_process)
 *   langid     language identification of the text alone (cls_langid_detect)
 *   sentiment  sentiment of the text alone, in the language found by language ID
 *   all        process + langid + sentiment (= process once cls_core calls them itself)
 * Each stage runs over the same posts until --min-cpu seconds of CPU time; throughput is posts
 * per CPU second, i.e. per core. It also reports the share of posts that matched a topic, the
 * topics per post, the time to compile the topics and the memory the matcher takes. Table to
 * stderr, one JSON object to stdout. Single-threaded.
 *
 *     bench_classifier --corpus corpus-00.jsonl --config topics-1000.json [--posts 100000]
 *                      [--min-cpu 2] [--repeat R]
 *                      [--stages tokenize,match,analyze,process,langid,sentiment,all]
 *                      [--dump FILE] [--select all|matched|unmatched]
 * --select matched (unmatched) runs the stages over the posts that match some topic (none)
 * only: the classifier decides language and sentiment for matched posts only, so that gives
 * the cost of a post that matches, as in a corpus where every post does.
 * --dump writes, before the stages run, what the classifier gives for every post: the
 * "classified" message of cls_process (a 4-byte little-endian length, then the bytes) and one
 * line with language ID's answer and confidence and the sentiment score of the text alone,
 * so that two builds can be compared byte for byte. */
#include <stdlib.h>
#include <string.h>

#include "escucha/esc_log.h"
#include "escucha/esc_mem.h"
#include "escucha/esc_msg.h"

#include "bench_util.h"
#include "classifier.h"
#include "match.h"
#include "text.h"
#ifdef BENCH_HAVE_LANGID
#include "langid.h"
#endif
#ifdef BENCH_HAVE_SENTIMENT
#include "sentiment.h"
#endif

#define B_STAGES_MAX 8

struct b_ctx {
    cls_t *cls;
    const cls_match_t *match; /* the classifier's matcher (borrowed) */
    struct cls_match_result res;
    cls_text_t *txt;
    struct cls_text_opts opts;
    struct esc_post *posts;
    char **frames;
    size_t *frame_len;
#ifdef BENCH_HAVE_LANGID
    cls_langid_t *lid;
#endif
#ifdef BENCH_HAVE_SENTIMENT
    cls_sentiment_t *sent;
#endif
    const char **lang; /* each post's language for the sentiment stage: detected once by
                          language ID when it is built in, else the platform's hint (or NULL) */
};

static long
s_vm_rss_kb(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long size = 0;
    unsigned long rss = 0;

    if (f == NULL) {
        return 0;
    }
    if (fscanf(f, "%lu %lu", &size, &rss) != 2) {
        rss = 0;
    }
    fclose(f);
    return (long)(rss * 4);
}

static size_t
s_tokenize(void *ctx, size_t i)
{
    struct b_ctx *c = ctx;
    const char *t = c->posts[i].text;

    return cls_text_tokenize(c->txt, &c->opts, t, strlen(t));
}

/* Topic matching alone: the tokens cls_analyze builds (text, hashtags and mentions fields,
 * author, link, platform, language hint) and cls_match_run, without language ID or sentiment,
 * so that the cost of the topics is seen apart from the rest. */
static size_t
s_match(void *ctx, size_t i)
{
    struct b_ctx *c = ctx;
    const struct esc_post *p = &c->posts[i];
    struct cls_match_post mp;
    size_t k;

    cls_text_tokenize(c->txt, &c->opts, p->text, strlen(p->text));
    for (k = 0; k < p->n_hashtags; k++) {
        cls_text_add_field(c->txt, &c->opts, CLS_TOK_META_HASHTAG, p->hashtags[k]);
    }
    for (k = 0; k < p->n_mentions; k++) {
        cls_text_add_field(c->txt, &c->opts, CLS_TOK_META_MENTION, p->mentions[k]);
    }
    cls_text_add_field(c->txt, &c->opts, CLS_TOK_AUTHOR, p->author);
    cls_text_add_field(c->txt, &c->opts, CLS_TOK_LINK, p->url);
    cls_text_add_field(c->txt, &c->opts, CLS_TOK_PLATFORM, p->platform);
    cls_text_add_field(c->txt, &c->opts, CLS_TOK_LANG, p->lang);
    mp.followers = p->followers;
    return cls_match_run(c->match, c->txt, &mp, &c->res);
}

static size_t
s_analyze(void *ctx, size_t i)
{
    struct b_ctx *c = ctx;

    return cls_analyze(c->cls, &c->posts[i])->n_hits;
}

static size_t
s_process(void *ctx, size_t i)
{
    struct b_ctx *c = ctx;
    size_t len = 0;
    (void)cls_process(c->cls, c->frames[i], c->frame_len[i], &len);
    return len;
}

#ifdef BENCH_HAVE_LANGID
static size_t
s_langid(void *ctx, size_t i)
{
    struct b_ctx *c = ctx;
    const char *t = c->posts[i].text;
    double conf = 0;
    const char *lang = cls_langid_detect(c->lid, t, strlen(t), &conf);

    return (size_t)lang[0] + (size_t)(conf * 10);
}
#endif

#ifdef BENCH_HAVE_SENTIMENT
static size_t
s_sentiment(void *ctx, size_t i)
{
    struct b_ctx *c = ctx;
    const char *t = c->posts[i].text;
    int label = 0;
    double s = cls_sentiment_score(c->sent, c->lang[i], t, strlen(t), &label);

    return (size_t)(label + 1) + (s > 0 ? 1 : 0);
}
#endif

/* The service's path with everything on: until cls_core calls them itself, language ID and
 * then sentiment in the detected language, as the classifier will. */
static size_t
s_all(void *ctx, size_t i)
{
    size_t r = s_process(ctx, i);
#ifndef BENCH_CLS_CORE_HAS_LANGID
    struct b_ctx *c = ctx;
    const char *t = c->posts[i].text;
    const char *lang = c->posts[i].lang;

#ifdef BENCH_HAVE_LANGID
    lang = cls_langid_detect(c->lid, t, strlen(t), NULL);
    r += (size_t)lang[0];
#endif
#ifdef BENCH_HAVE_SENTIMENT
    r += (size_t)(cls_sentiment_score(c->sent, lang, t, strlen(t), NULL) > 0);
#endif
    (void)c;
    (void)t;
    (void)lang;
#endif
    return r;
}

/* --dump: see the top of the file. Returns 0, or -1 when the file cannot be written. */
static int
s_dump(struct b_ctx *c, size_t n, const char *path)
{
    FILE *f = fopen(path, "wb");
    size_t i;
    int rc = 0;

    if (f == NULL) {
        fprintf(stderr, "bench_classifier: cannot write %s\n", path);
        return -1;
    }
    for (i = 0; i < n; i++) {
        size_t len = 0;
        const char *out = cls_process(c->cls, c->frames[i], c->frame_len[i], &len);
        unsigned char hdr[4];

        hdr[0] = (unsigned char)(len & 0xff);
        hdr[1] = (unsigned char)((len >> 8) & 0xff);
        hdr[2] = (unsigned char)((len >> 16) & 0xff);
        hdr[3] = (unsigned char)((len >> 24) & 0xff);
        fwrite(hdr, 1, sizeof(hdr), f);
        if (out != NULL) {
            fwrite(out, 1, len, f);
        }
#ifdef BENCH_HAVE_LANGID
        {
            const char *t = c->posts[i].text;
            double conf = 0;
            const char *lang = cls_langid_detect(c->lid, t, strlen(t), &conf);

            fprintf(f, "\n%s %.17g", lang, conf);
        }
#endif
#ifdef BENCH_HAVE_SENTIMENT
        {
            const char *t = c->posts[i].text;
            int label = 0;
            double s = cls_sentiment_score(c->sent, c->lang[i], t, strlen(t), &label);

            fprintf(f, " %d %.17g", label, s);
        }
#endif
        fputc('\n', f);
    }
    if (fclose(f) != 0) {
        rc = -1;
    }
    return rc;
}

static int
s_want(const char *stages, const char *name)
{
    size_t n = strlen(name);
    const char *p = stages;

    for (p = strstr(p, name); p != NULL; p = strstr(p + n, name)) {
        if ((p == stages || p[-1] == ',') && (p[n] == '\0' || p[n] == ',')) {
            return 1;
        }
    }
    return 0;
}

int
main(int argc, char **argv)
{
    const char *corpus = bench_opt(argc, argv, "--corpus");
    const char *config = bench_opt(argc, argv, "--config");
    const char *stages = bench_opt(argc, argv, "--stages");
    const char *dump = bench_opt(argc, argv, "--dump");
    const char *select = bench_opt(argc, argv, "--select");
    size_t max = (size_t)bench_opt_i64(argc, argv, "--posts", 100000, 1, 10000000);
    double min_cpu = bench_opt_f(argc, argv, "--min-cpu", 2.0);
    int repeat = (int)bench_opt_i64(argc, argv, "--repeat", 1, 1, 100);
    struct bench_lines lines;
    struct b_ctx c;
    struct cls_conf conf;
    struct esc_error err;
    struct bench_result r[B_STAGES_MAX];
    size_t nr = 0;
    size_t i;
    size_t k;
    size_t matched = 0;
    size_t hits = 0;
    size_t candidates = 0;
    size_t n_topics;
    size_t n_atoms;
    size_t n_run;
    int keep = -1; /* --select: -1 every post, 1 the matched ones, 0 the unmatched ones */
    unsigned char *hit;
    long rss0;
    long rss1;
    double t0;
    double compile_s;
    int langid_on = 0;
    int sentiment_on = 0;

    esc_log_init("bench-classifier", ESC_LOG_WARN);
    if (corpus == NULL || config == NULL) {
        fprintf(stderr, "usage: bench_classifier --corpus FILE.jsonl --config FILE.json "
                        "[--posts N] [--min-cpu S] [--repeat R] [--stages a,b,...] "
                        "[--dump FILE]\n");
        return 2;
    }
    if (stages == NULL) {
        stages = "tokenize,match,analyze,process,langid,sentiment,all";
    }
    if (select != NULL && strcmp(select, "matched") == 0) {
        keep = 1;
    }
    else if (select != NULL && strcmp(select, "unmatched") == 0) {
        keep = 0;
    }
    else if (select != NULL && strcmp(select, "all") != 0) {
        fprintf(stderr, "bench_classifier: --select takes all, matched or unmatched\n");
        return 2;
    }
    if (bench_lines_load(&lines, corpus, max) != 0) {
        return 1;
    }
    memset(&c, 0, sizeof(c));
    c.posts = esc_calloc(lines.n, sizeof(*c.posts));
    c.frames = esc_calloc(lines.n, sizeof(*c.frames));
    c.frame_len = esc_calloc(lines.n, sizeof(*c.frame_len));
    for (i = 0; i < lines.n; i++) {
        if (esc_post_from_json(lines.line[i], lines.len[i], &c.posts[i], &err) != ESC_OK) {
            fprintf(stderr, "bench_classifier: line %zu: %s\n", i + 1, err.text);
            return 1;
        }
        c.posts[i].ingested_at = 1794837790123LL + (int64_t)i;
        c.frames[i] = esc_post_encode(&c.posts[i], 0, &c.frame_len[i]);
    }

    rss0 = s_vm_rss_kb();
    t0 = bench_cpu_s();
    memset(&conf, 0, sizeof(conf));
    if (cls_conf_load(&conf, config, &err) != ESC_OK) {
        fprintf(stderr, "bench_classifier: %s: %s\n", config, err.text);
        return 1;
    }
    compile_s = bench_cpu_s() - t0;
    rss1 = s_vm_rss_kb();
    n_topics = cls_match_n_topics(conf.match);
    n_atoms = cls_match_n_atoms(conf.match);
    c.opts = *cls_match_opts(conf.match);
    c.cls = cls_new(&conf);
    c.match = cls_get_conf(c.cls)->match;
    cls_match_result_init(&c.res);
    c.txt = cls_text_new();
#ifdef BENCH_HAVE_LANGID
    c.lid = cls_langid_new(NULL, NULL, 0, &err);
    if (c.lid == NULL) {
        fprintf(stderr, "bench_classifier: langid: %s\n", err.text);
        return 1;
    }
    langid_on = 1;
#endif
#ifdef BENCH_HAVE_SENTIMENT
    c.sent = cls_sentiment_new(NULL, &err);
    if (c.sent == NULL) {
        fprintf(stderr, "bench_classifier: sentiment: %s\n", err.text);
        return 1;
    }
    sentiment_on = 1;
#endif

    c.lang = esc_calloc(lines.n, sizeof(*c.lang));
    hit = esc_calloc(lines.n, 1);
    for (i = 0; i < lines.n; i++) {
        const struct cls_match_result *res = cls_analyze(c.cls, &c.posts[i]);

        c.lang[i] = c.posts[i].lang;
#ifdef BENCH_HAVE_LANGID
        c.lang[i] = cls_langid_detect(c.lid, c.posts[i].text, strlen(c.posts[i].text), NULL);
#endif

        hit[i] = res->n_hits > 0;
        matched += res->n_hits > 0;
        hits += res->n_hits;
        candidates += res->n_candidates;
    }
    fprintf(stderr,
            "bench_classifier: %zu posts, %zu topics (%zu atoms) compiled in %.2f s, matcher "
            "~%ld MB; %.1f %% of posts match, %.2f topics/post, %.1f candidates/post\n",
            lines.n, n_topics, n_atoms, compile_s, (rss1 - rss0) / 1024,
            100.0 * (double)matched / (double)lines.n, (double)hits / (double)lines.n,
            (double)candidates / (double)lines.n);

    if (dump != NULL && s_dump(&c, lines.n, dump) != 0) {
        return 1;
    }
    /* --select: the posts kept move to the front; the others stay (freed at the end) */
    n_run = lines.n;
    if (keep >= 0) {
        n_run = 0;
        for (i = 0; i < lines.n; i++) {
            struct esc_post tp;
            char *tf;
            size_t tl;
            const char *tg;

            if (hit[i] != keep) {
                continue;
            }
            tp = c.posts[n_run];
            c.posts[n_run] = c.posts[i];
            c.posts[i] = tp;
            tf = c.frames[n_run];
            c.frames[n_run] = c.frames[i];
            c.frames[i] = tf;
            tl = c.frame_len[n_run];
            c.frame_len[n_run] = c.frame_len[i];
            c.frame_len[i] = tl;
            tg = c.lang[n_run];
            c.lang[n_run] = c.lang[i];
            c.lang[i] = tg;
            n_run++;
        }
        fprintf(stderr, "bench_classifier: --select %s: the stages run over %zu posts\n", select,
                n_run);
        if (n_run == 0) {
            return 1;
        }
    }
    if (s_want(stages, "tokenize")) {
        bench_run_best(&r[nr], "tokenize", s_tokenize, &c, n_run, min_cpu, repeat);
        bench_print_result("tokenize (text only)", &r[nr++]);
    }
    if (s_want(stages, "match")) {
        bench_run_best(&r[nr], "match", s_match, &c, n_run, min_cpu, repeat);
        bench_print_result("match (tokens + topics only)", &r[nr++]);
    }
    if (s_want(stages, "analyze")) {
        bench_run_best(&r[nr], "analyze", s_analyze, &c, n_run, min_cpu, repeat);
        bench_print_result("analyze (tokenize + match)", &r[nr++]);
    }
    if (s_want(stages, "process")) {
        bench_run_best(&r[nr], "process", s_process, &c, n_run, min_cpu, repeat);
        bench_print_result("process (decode+analyze+encode)", &r[nr++]);
    }
#ifdef BENCH_HAVE_LANGID
    if (s_want(stages, "langid")) {
        bench_run_best(&r[nr], "langid", s_langid, &c, n_run, min_cpu, repeat);
        bench_print_result("langid", &r[nr++]);
    }
#endif
#ifdef BENCH_HAVE_SENTIMENT
    if (s_want(stages, "sentiment")) {
        bench_run_best(&r[nr], "sentiment", s_sentiment, &c, n_run, min_cpu, repeat);
        bench_print_result("sentiment", &r[nr++]);
    }
#endif
    if (s_want(stages, "all")) {
        bench_run_best(&r[nr], "all", s_all, &c, n_run, min_cpu, repeat);
        bench_print_result("all (process + langid + sentiment)", &r[nr++]);
    }

    printf("{\"benchmark\": \"classifier\", ");
    bench_json_machine(stdout);
    printf(", \"corpus\": ");
    bench_json_str(stdout, corpus);
    printf(", \"config\": ");
    bench_json_str(stdout, config);
    printf(", \"posts\": %zu, \"topics\": %zu, \"atoms\": %zu, \"compile_cpu_s\": %.3f, "
           "\"matcher_rss_kb\": %ld, \"peak_rss_kb\": %ld, \"matched_share\": %.4f, "
           "\"topics_per_post\": %.3f, \"candidates_per_post\": %.2f, \"langid\": %s, "
           "\"sentiment\": %s, \"langid_sentiment_in_process\": %s, \"select\": \"%s\", "
           "\"stages\": [",
           lines.n, n_topics, n_atoms, compile_s, rss1 - rss0, bench_vm_hwm_kb(),
           (double)matched / (double)lines.n, (double)hits / (double)lines.n,
           (double)candidates / (double)lines.n, langid_on ? "true" : "false",
           sentiment_on ? "true" : "false",
#ifdef BENCH_CLS_CORE_HAS_LANGID
           "true"
#else
           "false"
#endif
           ,
           keep < 0 ? "all" : (keep ? "matched" : "unmatched"));
    for (k = 0; k < nr; k++) {
        printf("%s", k ? ", " : "");
        bench_json_result(stdout, &r[k]);
    }
    printf("]}\n");

#ifdef BENCH_HAVE_LANGID
    cls_langid_destroy(&c.lid);
#endif
#ifdef BENCH_HAVE_SENTIMENT
    cls_sentiment_destroy(&c.sent);
#endif
    cls_match_result_fini(&c.res);
    cls_text_destroy(&c.txt);
    cls_destroy(&c.cls);
    for (i = 0; i < lines.n; i++) {
        esc_post_fini(&c.posts[i]);
        esc_free(c.frames[i]);
    }
    esc_free(c.lang);
    esc_free(hit);
    esc_free(c.posts);
    esc_free(c.frames);
    esc_free(c.frame_len);
    bench_lines_fini(&lines);
    return 0;
}
