#define ESC_LOG_MODULE "langid-eval"
/* escucha-langid-eval: accuracy and speed of the language identifier.
 *
 *   escucha-langid-eval [-m MODEL] [-l es,en,pt,qu,ay] [-p 1,1,1,0.1,0.1] [-c MIN_CONF] [-e]
 *                       FILE...
 *       accuracy per language and per length on labelled files ("lang<TAB>length<TAB>text",
 *       length one of 1w 2w 3-5w sent; '#' starts a comment line), as a Markdown table
 *   escucha-langid-eval --dev [DIR] ...      the same on samples cut from DIR/<lang>.dev.txt
 *   escucha-langid-eval --tune [DIR] ...     coordinate search of the parameters on the dev
 *                                            samples; prints the best as C initialisers
 *   escucha-langid-eval --bench FILE...      posts per second over the texts of FILE...
 *
 * "und" counts as wrong in the accuracy and is also reported on its own. Single-threaded. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "escucha/esc_log.h"
#include "escucha/esc_mem.h"
#include "escucha/esc_util.h"

#include "langid.h"
#include "langid_model.h"

#ifndef CLS_LANGID_CORPUS_DIR
#define CLS_LANGID_CORPUS_DIR "corpus"
#endif

#define S_BUCKETS 4
#define S_DEV_PER_CELL 600 /* dev samples per language and length */
#define S_TUNE_MIN_CELL 50 /* smaller dev cells are too noisy to tune on */

static const char *const s_bucket_names[S_BUCKETS] = { "1w", "2w", "3-5w", "sent" };

struct s_sample {
    int lang;   /* index in the configured languages */
    int bucket; /* 0..S_BUCKETS-1 */
    char *text;
    size_t len;
};

struct s_set {
    struct s_sample *v;
    size_t n;
    size_t cap;
};

struct s_result {
    size_t total[CLS_LANGID_LANGS_MAX][S_BUCKETS];
    size_t right[CLS_LANGID_LANGS_MAX][S_BUCKETS];
    size_t und[CLS_LANGID_LANGS_MAX][S_BUCKETS];
    size_t confused[CLS_LANGID_LANGS_MAX][CLS_LANGID_LANGS_MAX]; /* [truth][answer] */
    double logloss;                                              /* sum of -log p(truth) */
};

static void
s_set_add(struct s_set *s, int lang, int bucket, const char *text, size_t len)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 1024;
        s->v = esc_realloc(s->v, s->cap * sizeof(*s->v));
    }
    s->v[s->n].lang = lang;
    s->v[s->n].bucket = bucket;
    s->v[s->n].text = esc_strndup(text, len);
    s->v[s->n].len = len;
    s->n++;
}

static void
s_set_free(struct s_set *s)
{
    size_t i;

    for (i = 0; i < s->n; i++) {
        esc_free(s->v[i].text);
    }
    esc_free(s->v);
    memset(s, 0, sizeof(*s));
}

static int
s_bucket(const char *name)
{
    int b;

    for (b = 0; b < S_BUCKETS; b++) {
        if (strcmp(name, s_bucket_names[b]) == 0) {
            return b;
        }
    }
    return -1;
}

static int
s_lang_index(const char *const *langs, size_t n, const char *code)
{
    size_t i;

    for (i = 0; i < n; i++) {
        if (strcmp(langs[i], code) == 0) {
            return (int)i;
        }
    }
    return -1;
}

/* Reads a labelled file; lines of languages that are not configured are skipped (counted). */
static int
s_load_tsv(struct s_set *set, const char *path, const char *const *langs, size_t n_langs)
{
    static char line[1 << 16];
    FILE *f = fopen(path, "r");
    size_t lineno = 0;
    size_t skipped = 0;

    if (f == NULL) {
        fprintf(stderr, "escucha-langid-eval: cannot open %s: %s\n", path, strerror(errno));
        return -1;
    }
    while (fgets(line, sizeof(line), f) != NULL) {
        char *t1;
        char *t2;
        size_t len = strlen(line);
        int lang;
        int bucket;

        lineno++;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) {
            line[--len] = '\0';
        }
        if (len == 0 || line[0] == '#') {
            continue;
        }
        t1 = strchr(line, '\t');
        t2 = t1 != NULL ? strchr(t1 + 1, '\t') : NULL;
        if (t2 == NULL) {
            fprintf(stderr, "escucha-langid-eval: %s:%zu: expected lang<TAB>length<TAB>text\n",
                    path, lineno);
            fclose(f);
            return -1;
        }
        *t1 = '\0';
        *t2 = '\0';
        bucket = s_bucket(t1 + 1);
        if (bucket < 0) {
            fprintf(stderr, "escucha-langid-eval: %s:%zu: unknown length '%s'\n", path, lineno,
                    t1 + 1);
            fclose(f);
            return -1;
        }
        lang = s_lang_index(langs, n_langs, line);
        if (lang < 0) {
            skipped++;
            continue;
        }
        s_set_add(set, lang, bucket, t2 + 1, strlen(t2 + 1));
    }
    fclose(f);
    if (skipped > 0) {
        fprintf(stderr, "escucha-langid-eval: %s: %zu lines in other languages skipped\n", path,
                skipped);
    }
    return 0;
}

static uint64_t
s_rand(uint64_t *st)
{
    uint64_t x = *st;

    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *st = x;
    return x;
}

/* Cuts each dev line of each language into samples of the four lengths (a window of 1, 2 and
 * 3-5 words at a random place; the whole line when it has 6-40 words), deterministically,
 * until S_DEV_PER_CELL samples per cell. */
static int
s_load_dev(struct s_set *set, const char *dir, const char *const *langs, size_t n_langs)
{
    static char line[1 << 16];
    size_t l;

    for (l = 0; l < n_langs; l++) {
        char path[4096];
        size_t have[S_BUCKETS] = { 0 };
        uint64_t st = 0x9E3779B97F4A7C15ULL ^ (uint64_t)(l + 1);
        FILE *f;

        snprintf(path, sizeof(path), "%s/%s.dev.txt", dir, langs[l]);
        f = fopen(path, "r");
        if (f == NULL) {
            fprintf(stderr, "escucha-langid-eval: cannot open %s: %s\n", path, strerror(errno));
            return -1;
        }
        while (fgets(line, sizeof(line), f) != NULL) {
            const char *w[64];
            size_t wl[64];
            size_t nw = 0;
            char *p = line;
            int b;

            while (*p != '\0' && nw < 64) {
                while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') {
                    p++;
                }
                if (*p == '\0') {
                    break;
                }
                w[nw] = p;
                while (*p != '\0' && *p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
                    p++;
                }
                wl[nw] = (size_t)(p - w[nw]);
                nw++;
            }
            for (b = 0; b < S_BUCKETS; b++) {
                size_t want;
                size_t start;

                if (have[b] >= S_DEV_PER_CELL) {
                    continue;
                }
                if (b == 3) {
                    if (nw < 6 || nw > 40) {
                        continue;
                    }
                    want = nw;
                }
                else {
                    want = b == 2 ? 3 + s_rand(&st) % 3 : (size_t)b + 1;
                }
                if (nw < want || (b < 3 && nw > 0 && s_rand(&st) % 2 == 0)) {
                    continue; /* spread the fragments over more lines */
                }
                start = nw > want ? s_rand(&st) % (nw - want + 1) : 0;
                s_set_add(set, (int)l, b, w[start],
                          (size_t)(w[start + want - 1] + wl[start + want - 1] - w[start]));
                have[b]++;
            }
        }
        fclose(f);
    }
    return 0;
}

static void
s_eval(cls_langid_t *lid, const struct s_set *set, size_t n_langs, struct s_result *r,
       bool errors)
{
    size_t i;

    memset(r, 0, sizeof(*r));
    for (i = 0; i < set->n; i++) {
        const struct s_sample *s = &set->v[i];
        const char *codes[CLS_LANGID_LANGS_MAX];
        double probs[CLS_LANGID_LANGS_MAX];
        double conf;
        const char *ans = cls_langid_detect(lid, s->text, s->len, &conf);
        size_t n = cls_langid_ranking(lid, codes, probs, CLS_LANGID_LANGS_MAX);
        double pt = 1e-6;
        size_t k;
        int a = -1;

        for (k = 0; k < n; k++) {
            if (strcmp(codes[k], cls_langid_lang(lid, (size_t)s->lang)) == 0) {
                pt = probs[k] > pt ? probs[k] : pt;
            }
        }
        r->logloss -= log(n > 0 ? pt : 1.0 / (double)n_langs);
        r->total[s->lang][s->bucket]++;
        for (k = 0; k < n_langs; k++) {
            if (strcmp(ans, cls_langid_lang(lid, k)) == 0) {
                a = (int)k;
            }
        }
        if (a == s->lang) {
            r->right[s->lang][s->bucket]++;
            continue;
        }
        if (a < 0) {
            r->und[s->lang][s->bucket]++;
        }
        else {
            r->confused[s->lang][a]++;
        }
        if (errors) {
            printf("error\t%s\t%s\t%s\t%.2f\t%s\n", cls_langid_lang(lid, (size_t)s->lang),
                   s_bucket_names[s->bucket], ans, conf, s->text);
        }
    }
}

/* Mean accuracy over the (language, length) cells with at least min_n samples: every cell
 * counts the same, so short texts weigh as much as sentences. */
static double
s_score(const struct s_result *r, size_t n_langs, size_t min_n)
{
    double sum = 0;
    size_t cells = 0;
    size_t l;
    int b;

    for (l = 0; l < n_langs; l++) {
        for (b = 0; b < S_BUCKETS; b++) {
            if (r->total[l][b] > 0 && r->total[l][b] >= min_n) {
                sum += (double)r->right[l][b] / (double)r->total[l][b];
                cells++;
            }
        }
    }
    return cells ? sum / (double)cells : 0;
}

static void
s_print(const struct s_result *r, const char *const *langs, size_t n_langs)
{
    size_t l;
    size_t k;
    int b;
    size_t col_t[S_BUCKETS] = { 0 };
    size_t col_r[S_BUCKETS] = { 0 };
    size_t all_t = 0;
    size_t all_r = 0;
    size_t all_u = 0;

    printf("| lang |");
    for (b = 0; b < S_BUCKETS; b++) {
        printf(" %s |", s_bucket_names[b]);
    }
    printf(" all | und | n |\n|---|");
    for (b = 0; b < S_BUCKETS; b++) {
        printf("---|");
    }
    printf("---|---|---|\n");
    for (l = 0; l < n_langs; l++) {
        size_t t = 0;
        size_t ok = 0;
        size_t u = 0;

        printf("| %s |", langs[l]);
        for (b = 0; b < S_BUCKETS; b++) {
            if (r->total[l][b] > 0) {
                printf(" %.1f |", 100.0 * (double)r->right[l][b] / (double)r->total[l][b]);
            }
            else {
                printf(" - |");
            }
            t += r->total[l][b];
            ok += r->right[l][b];
            u += r->und[l][b];
            col_t[b] += r->total[l][b];
            col_r[b] += r->right[l][b];
        }
        all_t += t;
        all_r += ok;
        all_u += u;
        if (t > 0) {
            printf(" %.1f | %.1f | %zu |\n", 100.0 * (double)ok / (double)t,
                   100.0 * (double)u / (double)t, t);
        }
        else {
            printf(" - | - | 0 |\n");
        }
    }
    printf("| all |");
    for (b = 0; b < S_BUCKETS; b++) {
        if (col_t[b] > 0) {
            printf(" %.1f |", 100.0 * (double)col_r[b] / (double)col_t[b]);
        }
        else {
            printf(" - |");
        }
    }
    if (all_t > 0) {
        printf(" %.1f | %.1f | %zu |\n", 100.0 * (double)all_r / (double)all_t,
               100.0 * (double)all_u / (double)all_t, all_t);
    }
    else {
        printf(" - | - | 0 |\n");
    }
    printf("\nconfusions (truth->answer):");
    for (l = 0; l < n_langs; l++) {
        for (k = 0; k < n_langs; k++) {
            if (r->confused[l][k] > 0) {
                printf(" %s->%s:%zu", langs[l], langs[k], r->confused[l][k]);
            }
        }
    }
    printf("\n");
}

static double
s_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts); /* CPU time: other load does not count */
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
s_bench(cls_langid_t *lid, const struct s_set *set)
{
    double t0;
    double dt;
    size_t posts = 0;
    size_t bytes = 0;
    size_t i;
    size_t sink = 0;

    if (set->n == 0) {
        return;
    }
    for (i = 0; i < set->n; i++) { /* warm up */
        sink += strlen(cls_langid_detect(lid, set->v[i].text, set->v[i].len, NULL));
    }
    t0 = s_now();
    do {
        for (i = 0; i < set->n; i++) {
            sink += strlen(cls_langid_detect(lid, set->v[i].text, set->v[i].len, NULL));
            bytes += set->v[i].len;
        }
        posts += set->n;
        dt = s_now() - t0;
    } while (dt < 2.0);
    printf("bench: %zu posts in %.2f s of CPU = %.0f posts/s, %.1f MB/s, mean %.0f bytes/post "
           "(check %zu)\n",
           posts, dt, (double)posts / dt, (double)bytes / dt / 1e6,
           (double)bytes / (double)posts, sink % 7);
}

static double
s_try(const struct cls_langid_model *m, const char *const *langs, size_t n_langs,
      const struct s_set *dev, const struct cls_langid_params *p, double *logloss)
{
    struct s_result r;
    cls_langid_t *lid = cls_langid_new_from_model(m, langs, n_langs, NULL, p, NULL);

    if (lid == NULL) {
        return -1;
    }
    s_eval(lid, dev, n_langs, &r, false);
    cls_langid_destroy(&lid);
    *logloss = r.logloss;
    return s_score(&r, n_langs, S_TUNE_MIN_CELL);
}

/* Grid search over three numbers only - one floor shared by the n-gram orders, the floor of
 * words and the weight of words (n-gram weights stay 1) - so the dev text, which is UI strings,
 * proverbs and CLDR names rather than posts, cannot be over-fitted; then the temperature that
 * minimises the log loss, which makes the confidence a calibrated probability. */
static void
s_tune(const struct cls_langid_model *m, const char *const *langs, size_t n_langs,
       const struct s_set *dev, struct cls_langid_params *best)
{
    static const double eps_ng[] = { 1e-9, 1e-8, 3e-8, 1e-7, 3e-7, 1e-6, 3e-6, 1e-5, 1e-4 };
    static const double eps_w[] = { 1e-8, 1e-7, 3e-7, 1e-6, 3e-6, 1e-5, 1e-4 };
    static const double w_word[] = { 0.5, 1.0, 2.0, 3.0, 4.0 };
    static const double temps[] = { 0.02, 0.03, 0.05, 0.07, 0.1, 0.14, 0.2, 0.3, 0.5, 1.0 };
    double best_acc = -1;
    double best_ll = 0;
    size_t a;
    size_t b;
    size_t c;
    size_t k;

    for (a = 0; a < ESC_ARRAY_LEN(eps_ng); a++) {
        for (b = 0; b < ESC_ARRAY_LEN(eps_w); b++) {
            for (c = 0; c < ESC_ARRAY_LEN(w_word); c++) {
                struct cls_langid_params p = *best;
                double ll;
                double acc;

                for (k = CLS_LANGID_K1; k <= CLS_LANGID_K5; k++) {
                    p.eps[k] = eps_ng[a];
                    p.weight[k] = 1.0;
                }
                p.eps[CLS_LANGID_KWORD] = eps_w[b];
                p.weight[CLS_LANGID_KWORD] = w_word[c];
                acc = s_try(m, langs, n_langs, dev, &p, &ll);
                if (acc > best_acc + 1e-9) {
                    best_acc = acc;
                    *best = p;
                    fprintf(stderr, "tune: eps=%g eps_word=%g weight_word=%g acc=%.4f\n",
                            eps_ng[a], eps_w[b], w_word[c], acc);
                }
            }
        }
    }
    best_ll = -1;
    for (k = 0; k < ESC_ARRAY_LEN(temps); k++) {
        struct cls_langid_params p = *best;
        double ll;

        p.temperature = temps[k];
        s_try(m, langs, n_langs, dev, &p, &ll);
        if (best_ll < 0 || ll < best_ll) {
            best_ll = ll;
            best->temperature = temps[k];
        }
    }
    printf("tuned: mean cell accuracy %.4f, log loss %.1f\n", best_acc, best_ll);
    printf("eps = { %.3g, %.3g, %.3g, %.3g, %.3g, %.3g }\n", best->eps[0], best->eps[1],
           best->eps[2], best->eps[3], best->eps[4], best->eps[5]);
    printf("weight = { %.3g, %.3g, %.3g, %.3g, %.3g, %.3g }\n", best->weight[0],
           best->weight[1], best->weight[2], best->weight[3], best->weight[4],
           best->weight[5]);
    printf("temperature = %.3g\n", best->temperature);
}

/* Parses "a,b,c,d,e,f" into six doubles; -1 when malformed. */
static int
s_six(const char *spec, double *out)
{
    const char *p = spec;
    size_t i;

    for (i = 0; i < 6; i++) {
        char *end;

        out[i] = strtod(p, &end);
        if (end == p || (i < 5 && *end != ',') || (i == 5 && *end != '\0')) {
            return -1;
        }
        p = end + 1;
    }
    return 0;
}

/* Parses n comma-separated priors; -1 when there are not exactly n numbers > 0. */
static int
s_priors(const char *spec, double *out, size_t n)
{
    const char *p = spec;
    size_t i;

    for (i = 0; i < n; i++) {
        char *end;

        out[i] = strtod(p, &end);
        if (end == p || !(out[i] > 0) || (i + 1 < n && *end != ',') ||
            (i + 1 == n && *end != '\0')) {
            return -1;
        }
        p = end + 1;
    }
    return 0;
}

static size_t
s_split_langs(char *spec, const char **langs)
{
    size_t n = 0;
    char *p = spec;

    while (p != NULL && *p != '\0' && n < CLS_LANGID_LANGS_MAX) {
        char *comma = strchr(p, ',');

        if (comma != NULL) {
            *comma = '\0';
        }
        langs[n++] = p;
        p = comma != NULL ? comma + 1 : NULL;
    }
    return n;
}

int
main(int argc, char **argv)
{
    static const char *const defaults[] = CLS_LANGID_DEFAULT_LANGS;
    const char *langs[CLS_LANGID_LANGS_MAX];
    size_t n_langs = CLS_LANGID_DEFAULT_N;
    const char *model_path = cls_langid_default_model();
    const char *dev_dir = NULL;
    bool tune = false;
    bool bench = false;
    bool errors = false;
    double min_conf = -1;
    double priors[CLS_LANGID_LANGS_MAX];
    const char *prior_spec = NULL;
    struct cls_langid_params params;
    struct cls_langid_model *m = NULL;
    struct esc_error err;
    struct s_set set = { 0 };
    struct s_result res;
    cls_langid_t *lid = NULL;
    int rc = 1;
    int i;

    esc_log_init("escucha-langid-eval", ESC_LOG_WARN);
    memset(&err, 0, sizeof(err));
    memcpy(langs, defaults, sizeof(defaults));
    cls_langid_params_default(&params);
    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-m") == 0 && i + 1 < argc) {
            model_path = argv[++i];
        }
        else if (strcmp(argv[i], "-l") == 0 && i + 1 < argc) {
            n_langs = s_split_langs(argv[++i], langs);
        }
        else if (strcmp(argv[i], "-c") == 0 && i + 1 < argc) {
            min_conf = strtod(argv[++i], NULL);
        }
        else if (strcmp(argv[i], "--eps") == 0 && i + 1 < argc) {
            if (s_six(argv[++i], params.eps) != 0) {
                fprintf(stderr, "escucha-langid-eval: --eps wants six numbers\n");
                return 2;
            }
        }
        else if (strcmp(argv[i], "--weight") == 0 && i + 1 < argc) {
            if (s_six(argv[++i], params.weight) != 0) {
                fprintf(stderr, "escucha-langid-eval: --weight wants six numbers\n");
                return 2;
            }
        }
        else if (strcmp(argv[i], "--temperature") == 0 && i + 1 < argc) {
            params.temperature = strtod(argv[++i], NULL);
        }
        else if (strcmp(argv[i], "-p") == 0 && i + 1 < argc) {
            prior_spec = argv[++i];
        }
        else if (strcmp(argv[i], "-e") == 0) {
            errors = true;
        }
        else if (strcmp(argv[i], "--dev") == 0 || strcmp(argv[i], "--tune") == 0) {
            tune = tune || strcmp(argv[i], "--tune") == 0;
            dev_dir = CLS_LANGID_CORPUS_DIR;
            if (i + 1 < argc && argv[i + 1][0] != '-') {
                dev_dir = argv[++i];
            }
        }
        else if (strcmp(argv[i], "--bench") == 0) {
            bench = true;
        }
        else if (argv[i][0] == '-') {
            fprintf(stderr, "usage: escucha-langid-eval [-m MODEL] [-l LANGS] [-p PRIORS] "
                            "[-c MIN_CONF] [-e] [--eps E1,..,E6] [--weight W1,..,W6] "
                            "[--temperature T] "
                            "[--dev [DIR] | --tune [DIR] | --bench] [FILE...]\n");
            return 2;
        }
        else {
            break;
        }
    }
    if (min_conf >= 0) {
        params.min_confidence = min_conf;
    }
    if (prior_spec != NULL && s_priors(prior_spec, priors, n_langs) != 0) {
        fprintf(stderr, "escucha-langid-eval: -p wants %zu numbers > 0\n", n_langs);
        return 2;
    }
    m = cls_langid_model_load(model_path, &err);
    if (m == NULL) {
        fprintf(stderr, "escucha-langid-eval: %s\n", err.text);
        goto out;
    }
    if (dev_dir != NULL && s_load_dev(&set, dev_dir, langs, n_langs) != 0) {
        goto out;
    }
    for (; i < argc; i++) {
        if (s_load_tsv(&set, argv[i], langs, n_langs) != 0) {
            goto out;
        }
    }
    if (tune) {
        s_tune(m, langs, n_langs, &set, &params);
    }
    lid = cls_langid_new_from_model(m, langs, n_langs, prior_spec != NULL ? priors : NULL, &params,
                                    &err);
    if (lid == NULL) {
        fprintf(stderr, "escucha-langid-eval: %s\n", err.text);
        goto out;
    }
    if (bench) {
        s_bench(lid, &set);
    }
    else {
        s_eval(lid, &set, n_langs, &res, errors);
        s_print(&res, langs, n_langs);
        printf("mean cell accuracy %.4f, log loss %.3f per sample\n", s_score(&res, n_langs, 1),
               set.n ? res.logloss / (double)set.n : 0.0);
    }
    rc = 0;
out:
    cls_langid_destroy(&lid);
    cls_langid_model_free(&m);
    s_set_free(&set);
    return rc;
}
