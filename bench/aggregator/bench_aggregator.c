#define ESC_LOG_MODULE "bench"
/* Benchmark of the aggregator's counting path: posts generated in memory with realistic
 * cardinality (Zipf-distributed topics, authors and words, several languages and platforms,
 * hashtags, URLs, mentions, late posts and a few re-deliveries) go through the real
 * agg_counters_add and agg_counters_flush against a real redis-server started here (a flush
 * every --flush-every posts stands for the flush interval: 100k posts = 1 s at 100k posts/s).
 * Reports posts/s on the aggregator's own CPU time (one core) and on the wall clock (which
 * also waits for Redis), Redis commands per post, round trips, the aggregator's peak RSS and
 * Redis's memory and CPU, and checks the totals in Redis against what was sent. The human table
 * goes to stderr, one JSON object to stdout. Single-threaded. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench_util.h"
#include "esc_testenv.h"
#include "escucha/esc_kv.h"
#include "escucha/esc_log.h"
#include "escucha/esc_mem.h"
#include "escucha/esc_msg.h"
#include "escucha/esc_util.h"

#include "counters.h"

#define B_POOL_MAX 100000 /* distinct post bodies; ids and times change on every use */
#define B_VOCAB 6000

struct b_opts {
    int64_t posts;       /* posts to count */
    int64_t topics;      /* distinct topics */
    int64_t authors;     /* distinct authors */
    int64_t flush_every; /* posts per flush */
    int64_t rate;        /* event-time rate, posts per second */
    int64_t dup_permille; /* re-deliveries per 1000 posts */
    int64_t top_every;   /* flushes per top-list write */
};

static uint64_t s_rng = 0x9E3779B97F4A7C15ULL;

static uint64_t
s_rand(void)
{
    /* xorshift64*: fast and reproducible */
    s_rng ^= s_rng >> 12;
    s_rng ^= s_rng << 25;
    s_rng ^= s_rng >> 27;
    return s_rng * 2685821657736338717ULL;
}

static double
s_unif(void)
{
    return (double)(s_rand() >> 11) / 9007199254740992.0;
}

/* Zipf sampler over ranks 0..n-1 with exponent s (cumulative table + binary search). */
struct b_zipf {
    double *cum;
    size_t n;
};

static void
s_zipf_init(struct b_zipf *z, size_t n, double s)
{
    double sum = 0;
    size_t i;

    z->n = n;
    z->cum = esc_malloc(n * sizeof(*z->cum));
    for (i = 0; i < n; i++) {
        sum += 1.0 / pow((double)(i + 1), s);
        z->cum[i] = sum;
    }
    for (i = 0; i < n; i++) {
        z->cum[i] /= sum;
    }
}

static size_t
s_zipf(const struct b_zipf *z)
{
    double u = s_unif();
    size_t lo = 0;
    size_t hi = z->n - 1;

    while (lo < hi) {
        size_t mid = (lo + hi) / 2;

        if (z->cum[mid] < u) {
            lo = mid + 1;
        }
        else {
            hi = mid;
        }
    }
    return lo;
}

static const char *const s_syll[] = { "ma", "ra", "to", "ca", "li", "pe", "so", "ne", "du", "vi",
                                      "ño", "ción", "gre", "bla", "fu", "tér", "po", "sa", "mi",
                                      "lo", "ta", "ri", "co", "ve", "án", "es", "bu", "gu" };
static const char *const s_common[] = { "el", "la", "de", "que", "y", "en", "los", "por", "con",
                                        "para", "the", "and", "of", "não", "uma", "muy", "más" };

static char **
s_vocab(void)
{
    char **v = esc_malloc(B_VOCAB * sizeof(*v));
    char buf[64];
    size_t i;

    for (i = 0; i < B_VOCAB; i++) {
        size_t k;
        size_t n = 2 + s_rand() % 3;

        buf[0] = '\0';
        for (k = 0; k < n; k++) {
            size_t len = strlen(buf);

            snprintf(buf + len, sizeof(buf) - len, "%s",
                     s_syll[s_rand() % ESC_ARRAY_LEN(s_syll)]);
        }
        v[i] = esc_strdup(buf);
    }
    return v;
}

/* Writes v >= 0 in decimal (the post ids; snprintf would be a visible part of the loop). */
static void
s_itoa(char *out, int64_t v)
{
    char buf[24];
    char *e = buf + sizeof(buf);
    uint64_t u = (uint64_t)v;

    do {
        *--e = (char)('0' + u % 10);
        u /= 10;
    } while (u > 0);
    memcpy(out, e, (size_t)(buf + sizeof(buf) - e));
    out[buf + sizeof(buf) - e] = '\0';
}

/* True when the flag name is on the command line. */
static int
s_flag(int argc, char **argv, const char *name)
{
    int i;

    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], name) == 0) {
            return 1;
        }
    }
    return 0;
}

/* Value of "name:" in INFO output, as a double (0 when absent). */
static double
s_info(esc_kv_t *kv, const char *section, const char *name)
{
    struct esc_kv_val v;
    double out = 0;
    char pat[64];
    const char *p;

    if (esc_kv_cmd(kv, &v, "INFO %s", section) != ESC_OK) {
        return 0;
    }
    snprintf(pat, sizeof(pat), "\n%s:", name);
    if (v.type == ESC_KV_STR) {
        p = strstr(v.str, pat);
        if (p != NULL) {
            out = strtod(p + strlen(pat), NULL);
        }
    }
    esc_kv_val_fini(&v);
    return out;
}

/* The "model name" of /proc/cpuinfo, for the table (the JSON has bench_json_machine). */
static void
s_cpu_model(char *out, size_t outsz)
{
    FILE *fp = fopen("/proc/cpuinfo", "r");
    char line[256];

    esc_strlcpy(out, "unknown CPU", outsz);
    while (fp != NULL && fgets(line, sizeof(line), fp) != NULL) {
        char *colon = strchr(line, ':');

        if (strncmp(line, "model name", 10) == 0 && colon != NULL) {
            colon += strspn(colon + 1, " \t") + 1;
            colon[strcspn(colon, "\n")] = '\0';
            esc_strlcpy(out, colon, outsz);
            break;
        }
    }
    if (fp != NULL) {
        fclose(fp);
    }
}

/* Current resident set size of this process (VmRSS), kB. */
static long
s_rss_kb(void)
{
    FILE *fp = fopen("/proc/self/status", "r");
    char line[256];
    long kb = 0;

    while (fp != NULL && fgets(line, sizeof(line), fp) != NULL) {
        if (strncmp(line, "VmRSS:", 6) == 0) {
            kb = strtol(line + 6, NULL, 10);
        }
    }
    if (fp != NULL) {
        fclose(fp);
    }
    return kb;
}

static const char *
s_pick(const char *const *v, const double *w, size_t n)
{
    double u = s_unif();
    size_t i;

    for (i = 0; i + 1 < n; i++) {
        if (u < w[i]) {
            return v[i];
        }
        u -= w[i];
    }
    return v[n - 1];
}

/* Builds the pool of post bodies and the topic lists they match. */
static void
s_make_pool(const struct b_opts *o, struct esc_post *pool, const char **ptopics,
            size_t *n_ptopics, size_t n_pool, char **topic_keys, char **vocab)
{
    static const char *const langs[] = { "es", "en", "pt", "und" };
    static const double lang_w[] = { 0.6, 0.25, 0.1, 0.05 };
    static const char *const plats[] = { "mastodon", "bluesky", "jsonl", "rss" };
    static const double plat_w[] = { 0.5, 0.35, 0.1, 0.05 };
    struct b_zipf zt;
    struct b_zipf za;
    struct b_zipf zw;
    size_t i;
    char text[1024];
    char buf[96];

    s_zipf_init(&zt, (size_t)o->topics, 1.0);
    s_zipf_init(&za, (size_t)o->authors, 1.1);
    s_zipf_init(&zw, B_VOCAB, 1.05);
    for (i = 0; i < n_pool; i++) {
        struct esc_post *p = &pool[i];
        size_t a = s_zipf(&za);
        size_t words = 8 + s_rand() % 22;
        size_t k;
        size_t len = 0;

        esc_post_init(p);
        p->id = esc_calloc(1, 32);
        p->platform = esc_strdup(s_pick(plats, plat_w, 4));
        snprintf(buf, sizeof(buf), "@user%zu@inst%zu.social", a, a % 50);
        p->author = esc_strdup(buf);
        snprintf(buf, sizeof(buf), "User %zu", a);
        p->author_name = esc_strdup(buf);
        p->followers = (int64_t)(2000000.0 / pow((double)(a + 1), 0.7) * (0.5 + s_unif()));
        p->likes = s_rand() % 100 == 0 ? (int64_t)(s_rand() % 5000) : (int64_t)(s_rand() % 4);
        p->reposts = s_rand() % 200 == 0 ? (int64_t)(s_rand() % 2000) : (int64_t)(s_rand() % 2);
        p->replies = (int64_t)(s_rand() % 3);
        p->sentiment = s_unif() * 2.0 - 1.0;
        p->language = esc_strdup(s_pick(langs, lang_w, 4));
        for (k = 0; k < words && len < sizeof(text) - 80; k++) {
            uint64_t r = s_rand() % 100;
            const char *w = r < 25 ? s_common[s_rand() % ESC_ARRAY_LEN(s_common)]
                                   : vocab[s_zipf(&zw)];

            if (r == 99) {
                len += (size_t)snprintf(text + len, sizeof(text) - len, "https://t.co/%llx ",
                                        (unsigned long long)(s_rand() & 0xffffff));
            }
            else if (r == 98) {
                len += (size_t)snprintf(text + len, sizeof(text) - len, "@user%zu ",
                                        s_zipf(&za));
            }
            else if (r >= 95) {
                len += (size_t)snprintf(text + len, sizeof(text) - len, "#%s ", w);
            }
            else {
                len += (size_t)snprintf(text + len, sizeof(text) - len, "%s ", w);
            }
        }
        p->text = esc_strndup(text, len);
        snprintf(buf, sizeof(buf), "https://%s.example/post/%zu", p->platform, i);
        p->url = esc_strdup(buf);
        ptopics[i * 2] = topic_keys[s_zipf(&zt)];
        n_ptopics[i] = 1;
        if (s_rand() % 10 == 0) {
            ptopics[i * 2 + 1] = topic_keys[s_zipf(&zt)];
            n_ptopics[i] = ptopics[i * 2 + 1] == ptopics[i * 2] ? 1 : 2;
        }
    }
    esc_free(zt.cum);
    esc_free(za.cum);
    esc_free(zw.cum);
}

/* Sum of the "posts" field of every topic's totals hash. */
static long long
s_sum_totals(esc_kv_t *kv, char **topic_keys, size_t n)
{
    long long sum = 0;
    size_t i;

    for (i = 0; i < n; i++) {
        struct esc_kv_val v;
        char key[128];

        agg_counters_key("b", topic_keys[i], AGG_RES_TOTAL, 0, key, sizeof(key));
        if (esc_kv_cmd(kv, &v, "HGET %s posts", key) == ESC_OK) {
            if (v.type == ESC_KV_STR) {
                sum += strtoll(v.str, NULL, 10);
            }
            esc_kv_val_fini(&v);
        }
    }
    return sum;
}

/* qsort order of C strings. */
static int
s_cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Writes one line per element of reply v (an array) after key and tag; with pairs set, two
 * elements per line ("a b"), sorted when sort is set. */
static void
s_dump_elems(FILE *fp, const char *key, const char *tag, const struct esc_kv_val *v, int pairs,
             int sort)
{
    size_t step = pairs ? 2 : 1;
    size_t n = v->type == ESC_KV_ARRAY ? v->n / step : 0;
    char **lines = esc_calloc(n > 0 ? n : 1, sizeof(*lines));
    size_t i;

    for (i = 0; i < n; i++) {
        const struct esc_kv_val *a = &v->elem[i * step];
        const struct esc_kv_val *b = pairs ? &v->elem[i * step + 1] : NULL;
        size_t len = a->len + (b != NULL ? b->len : 0) + 2;

        lines[i] = esc_malloc(len);
        snprintf(lines[i], len, "%s%s%s", a->str != NULL ? a->str : "", b != NULL ? " " : "",
                 b != NULL && b->str != NULL ? b->str : "");
    }
    if (sort) {
        qsort(lines, n, sizeof(*lines), s_cmp_str);
    }
    for (i = 0; i < n; i++) {
        fprintf(fp, "%s %s %s\n", key, tag, lines[i]);
        esc_free(lines[i]);
    }
    esc_free(lines);
}

/* Writes every key of the benchmark's prefix with its contents, keys sorted, hash fields
 * sorted, sorted sets in rank order, sets as their size (the seen-marks), to compare the
 * Redis output of two builds (cmp). Returns 0, or -1 when Redis did not answer. */
static int
s_dump(esc_kv_t *kv, const char *path)
{
    FILE *fp = fopen(path, "w");
    char **keys = NULL;
    size_t n = 0;
    size_t cap = 0;
    char cursor[32] = "0";
    size_t i;

    if (fp == NULL) {
        fprintf(stderr, "bench_aggregator: cannot write %s\n", path);
        return -1;
    }
    do {
        struct esc_kv_val v;
        const char *argv[6] = { "SCAN", cursor, "MATCH", "b:*", "COUNT", "10000" };

        if (esc_kv_cmdv(kv, &v, 6, argv, NULL) != ESC_OK || v.type != ESC_KV_ARRAY || v.n != 2) {
            fclose(fp);
            return -1;
        }
        esc_strlcpy(cursor, v.elem[0].str, sizeof(cursor));
        for (i = 0; i < v.elem[1].n; i++) {
            if (n == cap) {
                cap = cap > 0 ? 2 * cap : 1024;
                keys = esc_realloc(keys, cap * sizeof(*keys));
            }
            keys[n++] = esc_strdup(v.elem[1].elem[i].str);
        }
        esc_kv_val_fini(&v);
    } while (strcmp(cursor, "0") != 0);
    qsort(keys, n, sizeof(*keys), s_cmp_str);
    for (i = 0; i < n; i++) {
        struct esc_kv_val t;
        struct esc_kv_val v;
        const char *argv[5];

        argv[1] = keys[i];
        argv[0] = "TYPE";
        if (esc_kv_cmdv(kv, &t, 2, argv, NULL) != ESC_OK) {
            continue;
        }
        if (strcmp(t.str, "hash") == 0) {
            argv[0] = "HGETALL";
            if (esc_kv_cmdv(kv, &v, 2, argv, NULL) == ESC_OK) {
                s_dump_elems(fp, keys[i], "h", &v, 1, 1);
                esc_kv_val_fini(&v);
            }
        }
        else if (strcmp(t.str, "zset") == 0) {
            argv[0] = "ZRANGE";
            argv[2] = "0";
            argv[3] = "-1";
            argv[4] = "WITHSCORES";
            if (esc_kv_cmdv(kv, &v, 5, argv, NULL) == ESC_OK) {
                s_dump_elems(fp, keys[i], "z", &v, 1, 0);
                esc_kv_val_fini(&v);
            }
        }
        else if (strcmp(t.str, "list") == 0) {
            argv[0] = "LRANGE";
            argv[2] = "0";
            argv[3] = "-1";
            if (esc_kv_cmdv(kv, &v, 4, argv, NULL) == ESC_OK) {
                s_dump_elems(fp, keys[i], "l", &v, 0, 0);
                esc_kv_val_fini(&v);
            }
        }
        else if (strcmp(t.str, "set") == 0) {
            argv[0] = "SCARD";
            if (esc_kv_cmdv(kv, &v, 2, argv, NULL) == ESC_OK) {
                fprintf(fp, "%s s %lld\n", keys[i], v.integer);
                esc_kv_val_fini(&v);
            }
        }
        else {
            argv[0] = "GET";
            if (esc_kv_cmdv(kv, &v, 2, argv, NULL) == ESC_OK) {
                fprintf(fp, "%s v %s\n", keys[i], v.str != NULL ? v.str : "");
                esc_kv_val_fini(&v);
            }
        }
        esc_kv_val_fini(&t);
        esc_free(keys[i]);
    }
    esc_free(keys);
    fclose(fp);
    return 0;
}

int
main(int argc, char **argv)
{
    struct b_opts o = { 2000000, 200, 200000, 100000, 100000, 2, 10 };
    struct esc_testenv_redis redis;
    struct esc_kv_opts ko;
    struct agg_counters_opts co;
    struct agg_counters_stats st;
    esc_kv_t *kv;
    agg_counters_t *c;
    struct esc_post *pool;
    const char **ptopics;
    size_t *n_ptopics;
    char **topic_keys;
    char **vocab;
    size_t n_pool;
    size_t i;
    int64_t k;
    int64_t t0_ms = 1794787200000LL;
    long long pairs = 0;
    long long dup_pairs = 0;
    long long in_redis;
    uint64_t cmds0;
    uint64_t rt0;
    double cpu0;
    double wall0;
    double cpu_flush = 0;
    double wall_flush = 0;
    double cpu;
    double wall;
    double rcpu0;
    double rcpu;
    double exec0;
    double executed;
    long rss_base;
    uint64_t cmds;
    uint64_t rt;
    double rmem;
    char model[128];
    const char *dump;
    int failed = 0;
    int ok;

    o.posts = bench_opt_i64(argc, argv, "--posts", o.posts, 1, INT64_MAX / 1000);
    o.topics = bench_opt_i64(argc, argv, "--topics", o.topics, 1, 1000000);
    o.authors = bench_opt_i64(argc, argv, "--authors", o.authors, 1, 100000000);
    o.flush_every = bench_opt_i64(argc, argv, "--flush-every", o.flush_every, 1, INT64_MAX);
    o.rate = bench_opt_i64(argc, argv, "--rate", o.rate, 1, 100000000);
    o.dup_permille = bench_opt_i64(argc, argv, "--dup-permille", o.dup_permille, 0, 1000);
    o.top_every = bench_opt_i64(argc, argv, "--top-every", o.top_every, 1, 1000000);
    esc_log_init("bench", ESC_LOG_WARN);
    if (esc_testenv_redis_start(&redis, 0) != 0) {
        return 1;
    }
    esc_testenv_kv_opts(&redis, &ko);
    ko.timeout_ms = 30000;
    kv = esc_kv_new(&ko);

    topic_keys = esc_malloc((size_t)o.topics * sizeof(*topic_keys));
    for (i = 0; i < (size_t)o.topics; i++) {
        char buf[64];

        snprintf(buf, sizeof(buf), "team%zu/topic%zu", i % 20, i);
        topic_keys[i] = esc_strdup(buf);
    }
    vocab = s_vocab();
    n_pool = (size_t)(o.posts < B_POOL_MAX ? o.posts : B_POOL_MAX);
    pool = esc_calloc(n_pool, sizeof(*pool));
    ptopics = esc_calloc(n_pool * 2, sizeof(*ptopics));
    n_ptopics = esc_calloc(n_pool, sizeof(*n_ptopics));
    s_make_pool(&o, pool, ptopics, n_ptopics, n_pool, topic_keys, vocab);

    memset(&co, 0, sizeof(co));
    co.prefix = "b";
    co.retention_s[AGG_RES_MINUTE] = 172800;
    co.retention_s[AGG_RES_HOUR] = 7776000;
    co.retention_s[AGG_RES_DAY] = 94608000;
    co.dedupe_window_s = 86400;
    co.max_pending_posts = 10000000;
    co.recent_ids = 262144;
    co.top_n = 200;
    co.top_posts_n = 30;
    co.top_flush_max = 200;
    co.top_flush_ms = 3600000; /* written when the loop says so (final = 1) */
    co.counters_only = s_flag(argc, argv, "--counters-only");
    dump = bench_opt(argc, argv, "--dump");
    if (dump != NULL) {
        co.instance = "bench"; /* the marks hold the instance id: the same in every dump */
    }
    c = agg_counters_new(kv, &co);

    rss_base = s_rss_kb();
    rcpu0 = s_info(kv, "cpu", "used_cpu_user") + s_info(kv, "cpu", "used_cpu_sys");
    exec0 = s_info(kv, "stats", "total_commands_processed");
    cmds0 = esc_kv_commands(kv);
    rt0 = esc_kv_round_trips(kv);
    cpu0 = bench_cpu_s();
    wall0 = bench_wall_s();
    for (k = 0; k < o.posts; k++) {
        struct esc_post *p = &pool[(size_t)k % n_pool];
        size_t nt = n_ptopics[(size_t)k % n_pool];
        int64_t id = k;

        if (o.dup_permille > 0 && k > 5000 && (int64_t)(s_rand() % 1000) < o.dup_permille) {
            id = k - 1 - (int64_t)(s_rand() % 5000); /* a re-delivery of a recent post */
            p = &pool[(size_t)id % n_pool];
            nt = n_ptopics[(size_t)id % n_pool];
        }
        s_itoa(p->id, id);
        p->created_at = t0_ms + id * 1000 / o.rate;
        if (id % 100 == 7) {
            p->created_at -= (id * 7919) % 600000; /* 1% late, up to 10 minutes */
        }
        if (agg_counters_add(c, p, ptopics + ((size_t)id % n_pool) * 2, nt) == 1) {
            pairs += (long long)nt;
        }
        if ((k + 1) % o.flush_every == 0 || k + 1 == o.posts) {
            double fc = bench_cpu_s();
            double fw = bench_wall_s();

            /* top lists every top_every flushes (10 s at the default 1 s per flush) */
            int tops = ((k + 1) / o.flush_every) % o.top_every == 0 || k + 1 == o.posts;

            if (agg_counters_flush(c, tops) != ESC_OK) {
                fprintf(stderr, "bench_aggregator: flush failed at post %lld\n", (long long)k);
                failed = 1;
                break;
            }
            cpu_flush += bench_cpu_s() - fc;
            wall_flush += bench_wall_s() - fw;
        }
    }
    cpu = bench_cpu_s() - cpu0;
    wall = bench_wall_s() - wall0;
    rcpu = s_info(kv, "cpu", "used_cpu_user") + s_info(kv, "cpu", "used_cpu_sys") - rcpu0;
    /* what Redis ran, the commands inside the flush scripts included, less the 3 INFO above */
    executed = s_info(kv, "stats", "total_commands_processed") - exec0 - 3.0;
    agg_counters_get_stats(c, &st);
    /* pairs counted in memory minus the pairs Redis recognised (re-deliveries the recent-id
     * memory had forgotten, and none otherwise) must equal what Redis holds */
    dup_pairs = (long long)st.dup_redis;
    in_redis = s_sum_totals(kv, topic_keys, (size_t)o.topics);
    ok = !failed && in_redis == pairs - dup_pairs;
    s_cpu_model(model, sizeof(model));
    cmds = esc_kv_commands(kv) - cmds0;
    rt = esc_kv_round_trips(kv) - rt0;
    rmem = s_info(kv, "memory", "used_memory") / 1048576.0;
    if (getenv("BENCH_STATS") != NULL) {
        struct esc_kv_val v;

        if (esc_kv_cmd(kv, &v, "INFO commandstats") == ESC_OK) {
            fprintf(stderr, "%s\n", v.type == ESC_KV_STR ? v.str : "");
            esc_kv_val_fini(&v);
        }
    }
    fprintf(stderr,
            "aggregator counting benchmark, %s (%s, %ld cores)\n"
            "  posts                    %lld (%lld topics, %lld authors, flush every %lld posts)\n"
            "  posts/s, aggregator CPU  %.0f   (add %.0f ns/post, flush %.0f ns/post)\n"
            "  posts/s, wall clock      %.0f   (waiting for Redis included)\n"
            "  Redis commands/post      %.4f   (%llu commands, %llu round trips)\n"
            "  Redis executed/post      %.4f   (commands run by Redis, script internals included)\n"
            "  aggregator peak RSS      %.1f MiB (post pool %.1f MiB of it)\n"
            "  Redis used memory        %.1f MiB, Redis CPU %.2f s (%.2f us/post)\n"
            "  duplicates               memory %llu, redis %llu\n"
            "  top-list prunes          %llu\n"
            "  verified                 %s (%lld topic posts in Redis, %lld expected)\n",
            co.counters_only ? "counters only" : "counters and top lists", model,
            sysconf(_SC_NPROCESSORS_ONLN), (long long)o.posts, (long long)o.topics,
            (long long)o.authors, (long long)o.flush_every, (double)o.posts / cpu,
            (cpu - cpu_flush) / (double)o.posts * 1e9, cpu_flush / (double)o.posts * 1e9,
            (double)o.posts / wall, (double)cmds / (double)o.posts, (unsigned long long)cmds,
            (unsigned long long)rt, executed / (double)o.posts, bench_vm_hwm_kb() / 1024.0, rss_base / 1024.0, rmem, rcpu,
            rcpu / (double)o.posts * 1e6, (unsigned long long)st.dup_memory,
            (unsigned long long)st.dup_redis, (unsigned long long)st.top_prunes, ok ? "yes" : "NO",
            in_redis, pairs - dup_pairs);
    printf("{\"benchmark\": \"aggregator\", \"mode\": \"%s\", ",
           co.counters_only ? "counters_only" : "counters_and_top_lists");
    bench_json_machine(stdout);
    printf(", \"posts\": %lld, \"topics\": %lld, \"authors\": %lld, \"flush_every\": %lld, "
           "\"top_every\": %lld, \"posts_per_s_cpu\": %.0f, \"posts_per_s_wall\": %.0f, "
           "\"add_ns_per_post\": %.0f, \"flush_cpu_ns_per_post\": %.0f, "
           "\"redis_cmds_per_post\": %.5f, \"redis_executed_per_post\": %.5f, "
           "\"round_trips\": %llu, \"peak_rss_mib\": %.1f, "
           "\"pool_rss_mib\": %.1f, \"redis_used_memory_mib\": %.1f, \"redis_cpu_s\": %.2f, "
           "\"dup_memory\": %llu, \"dup_redis\": %llu, \"top_prunes\": %llu, \"verified\": %s}\n",
           (long long)o.posts, (long long)o.topics, (long long)o.authors,
           (long long)o.flush_every, (long long)o.top_every, (double)o.posts / cpu,
           (double)o.posts / wall, (cpu - cpu_flush) / (double)o.posts * 1e9,
           cpu_flush / (double)o.posts * 1e9, (double)cmds / (double)o.posts,
           executed / (double)o.posts, (unsigned long long)rt, bench_vm_hwm_kb() / 1024.0, rss_base / 1024.0, rmem, rcpu,
           (unsigned long long)st.dup_memory, (unsigned long long)st.dup_redis,
           (unsigned long long)st.top_prunes, ok ? "true" : "false");

    if (dump != NULL && s_dump(kv, dump) != 0) {
        fprintf(stderr, "bench_aggregator: dump failed\n");
        ok = 0;
    }
    agg_counters_destroy(&c);
    esc_kv_destroy(&kv);
    esc_testenv_redis_stop(&redis);
    for (i = 0; i < n_pool; i++) {
        esc_post_fini(&pool[i]);
    }
    for (i = 0; i < (size_t)o.topics; i++) {
        esc_free(topic_keys[i]);
    }
    for (i = 0; i < B_VOCAB; i++) {
        esc_free(vocab[i]);
    }
    esc_free(vocab);
    esc_free(topic_keys);
    esc_free(pool);
    esc_free(ptopics);
    esc_free(n_ptopics);
    return ok ? 0 : 1;
}
