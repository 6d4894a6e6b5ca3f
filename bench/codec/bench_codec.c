#define ESC_LOG_MODULE "bench"
/* Micro-benchmark of the message codecs on the benchmark corpus: what the collector does per
 * line (esc_post_from_json, then esc_post_encode), what every stage does per message
 * (esc_post_decode of a "post"), and the classified message the classifier writes and the
 * aggregator reads (encode and decode with two topics, language and sentiment). Each stage runs
 * over the same posts until --min-cpu seconds of CPU time; throughput is posts per CPU second
 * (one core). Table to stderr, one JSON object to stdout. Single-threaded.
 *
 *     bench_codec --corpus out/bench/corpus/corpus-00.jsonl [--posts 100000] [--min-cpu 2]
 *                 [--repeat R]   (R runs of each stage, the fastest kept) */
#include <stdlib.h>
#include <string.h>

#include "escucha/esc_log.h"
#include "escucha/esc_mem.h"
#include "escucha/esc_msg.h"
#include "escucha/esc_util.h"

#include "bench_util.h"

struct c_ctx {
    const struct bench_lines *lines;
    struct esc_post *posts; /* parsed once */
    char **frames;          /* "post" messages */
    size_t *frame_len;
    char **cframes;         /* "classified" messages */
    size_t *cframe_len;
    struct esc_post_buf pbuf; /* reused by esc_post_decode_into, as the classifier does */
    char *ebuf;             /* reused by esc_post_encode_reuse */
    size_t ebuf_cap;
};

static char *s_topics[2] = { "team0001/topic00042", "canary/plain" };
static char s_lang[] = "es";

static size_t
s_json(void *ctx, size_t i)
{
    struct c_ctx *c = ctx;
    struct esc_post p;
    struct esc_error err;
    size_t r;

    if (esc_post_from_json(c->lines->line[i], c->lines->len[i], &p, &err) != ESC_OK) {
        esc_post_fini(&p);
        return 0;
    }
    r = (size_t)p.created_at & 0xff;
    esc_post_fini(&p);
    return r;
}

static size_t
s_json_encode(void *ctx, size_t i)
{
    struct c_ctx *c = ctx;
    struct esc_post p;
    struct esc_error err;
    size_t len = 0;
    char *buf;

    if (esc_post_from_json(c->lines->line[i], c->lines->len[i], &p, &err) != ESC_OK) {
        esc_post_fini(&p);
        return 0;
    }
    p.ingested_at = 1794837790123LL + (int64_t)i;
    buf = esc_post_encode(&p, 0, &len);
    esc_free(buf);
    esc_post_fini(&p);
    return len;
}

static size_t
s_encode(void *ctx, size_t i)
{
    struct c_ctx *c = ctx;
    size_t len = 0;
    char *buf = esc_post_encode(&c->posts[i], 0, &len);

    esc_free(buf);
    return len;
}

static size_t
s_decode(void *ctx, size_t i)
{
    struct c_ctx *c = ctx;
    struct esc_post p;
    struct esc_error err;
    size_t r = 0;

    if (esc_post_decode(c->frames[i], c->frame_len[i], &p, NULL, &err) == ESC_OK) {
        r = (size_t)p.followers & 0xff;
    }
    esc_post_fini(&p);
    return r;
}

/* The classifier's decode: into a buffer reused from post to post. */
static size_t
s_decode_into(void *ctx, size_t i)
{
    struct c_ctx *c = ctx;
    struct esc_post p;
    struct esc_error err;
    size_t r = 0;

    if (esc_post_decode_into(c->frames[i], c->frame_len[i], &p, NULL, &c->pbuf, &err) ==
        ESC_OK) {
        r = (size_t)p.followers & 0xff;
    }
    return r;
}

static void
s_classify(struct esc_post *p)
{
    p->topics = s_topics;
    p->n_topics = 2;
    p->language = s_lang;
    p->sentiment = 0.25;
}

static void
s_unclassify(struct esc_post *p)
{
    p->topics = NULL;
    p->n_topics = 0;
    p->language = NULL;
}

static size_t
s_encode_classified(void *ctx, size_t i)
{
    struct c_ctx *c = ctx;
    size_t len = 0;
    char *buf;

    s_classify(&c->posts[i]);
    buf = esc_post_encode(&c->posts[i], 1, &len);
    s_unclassify(&c->posts[i]);
    esc_free(buf);
    return len;
}

/* The classifier's encode: into a buffer reused from post to post. */
static size_t
s_encode_classified_reuse(void *ctx, size_t i)
{
    struct c_ctx *c = ctx;
    size_t len;

    s_classify(&c->posts[i]);
    len = esc_post_encode_reuse(&c->posts[i], 1, &c->ebuf, &c->ebuf_cap);
    s_unclassify(&c->posts[i]);
    return len;
}

static size_t
s_decode_classified(void *ctx, size_t i)
{
    struct c_ctx *c = ctx;
    struct esc_post p;
    struct esc_error err;
    size_t r = 0;

    if (esc_post_decode(c->cframes[i], c->cframe_len[i], &p, NULL, &err) == ESC_OK) {
        r = p.n_topics;
    }
    esc_post_fini(&p);
    return r;
}

int
main(int argc, char **argv)
{
    const char *corpus = bench_opt(argc, argv, "--corpus");
    size_t max = (size_t)bench_opt_i64(argc, argv, "--posts", 100000, 1, 10000000);
    double min_cpu = bench_opt_f(argc, argv, "--min-cpu", 2.0);
    int repeat = (int)bench_opt_i64(argc, argv, "--repeat", 1, 1, 100);
    struct bench_lines lines;
    struct c_ctx c;
    struct bench_result r[8];
    const char *label[8] = {
        "json -> post (esc_post_from_json)", "json -> post -> msgpack (collector)",
        "msgpack encode post", "msgpack decode post", "msgpack encode classified",
        "msgpack decode classified", "msgpack decode post into a reused buffer",
        "msgpack encode classified into a reused buffer",
    };
    size_t (*fn[8])(void *, size_t) = { s_json, s_json_encode, s_encode, s_decode,
                                         s_encode_classified, s_decode_classified,
                                         s_decode_into, s_encode_classified_reuse };
    size_t bytes = 0;
    size_t fbytes = 0;
    size_t i;
    size_t k;

    esc_log_init("bench-codec", ESC_LOG_WARN);
    if (corpus == NULL) {
        fprintf(stderr, "usage: bench_codec --corpus FILE.jsonl [--posts N] [--min-cpu S] "
                        "[--repeat R]\n");
        return 2;
    }
    if (bench_lines_load(&lines, corpus, max) != 0) {
        return 1;
    }
    memset(&c, 0, sizeof(c));
    esc_post_buf_init(&c.pbuf);
    c.lines = &lines;
    c.posts = esc_calloc(lines.n, sizeof(*c.posts));
    c.frames = esc_calloc(lines.n, sizeof(*c.frames));
    c.frame_len = esc_calloc(lines.n, sizeof(*c.frame_len));
    c.cframes = esc_calloc(lines.n, sizeof(*c.cframes));
    c.cframe_len = esc_calloc(lines.n, sizeof(*c.cframe_len));
    for (i = 0; i < lines.n; i++) {
        struct esc_error err;

        if (esc_post_from_json(lines.line[i], lines.len[i], &c.posts[i], &err) != ESC_OK) {
            fprintf(stderr, "bench_codec: line %zu: %s\n", i + 1, err.text);
            return 1;
        }
        c.posts[i].ingested_at = 1794837790123LL + (int64_t)i;
        c.frames[i] = esc_post_encode(&c.posts[i], 0, &c.frame_len[i]);
        s_classify(&c.posts[i]);
        c.cframes[i] = esc_post_encode(&c.posts[i], 1, &c.cframe_len[i]);
        s_unclassify(&c.posts[i]);
        bytes += lines.len[i];
        fbytes += c.frame_len[i];
    }
    fprintf(stderr, "bench_codec: %zu posts, mean %.0f bytes of JSON, %.0f bytes of msgpack\n",
            lines.n, (double)bytes / (double)lines.n, (double)fbytes / (double)lines.n);
    for (k = 0; k < ESC_ARRAY_LEN(r); k++) {
        bench_run_best(&r[k], label[k], fn[k], &c, lines.n, min_cpu, repeat);
        bench_print_result(label[k], &r[k]);
    }
    printf("{\"benchmark\": \"codec\", ");
    bench_json_machine(stdout);
    printf(", \"corpus\": ");
    bench_json_str(stdout, corpus);
    printf(", \"posts\": %zu, \"json_bytes_mean\": %.1f, \"msgpack_bytes_mean\": %.1f, "
           "\"stages\": [",
           lines.n, (double)bytes / (double)lines.n, (double)fbytes / (double)lines.n);
    for (k = 0; k < ESC_ARRAY_LEN(r); k++) {
        printf("%s", k ? ", " : "");
        bench_json_result(stdout, &r[k]);
    }
    printf("]}\n");
    for (i = 0; i < lines.n; i++) {
        esc_post_fini(&c.posts[i]);
        esc_free(c.frames[i]);
        esc_free(c.cframes[i]);
    }
    esc_free(c.posts);
    esc_free(c.frames);
    esc_free(c.frame_len);
    esc_free(c.cframes);
    esc_free(c.ebuf);
    esc_free(c.cframe_len);
    esc_post_buf_fini(&c.pbuf);
    bench_lines_fini(&lines);
    return 0;
}
