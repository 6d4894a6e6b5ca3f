#define ESC_LOG_MODULE "sentiment_eval"

/* cls_sentiment_eval: prints the accuracy table of docs/sentiment.md for labelled JSONL files,
 * sweeps the neutral band on a dev split (--tune), and measures throughput (--bench). The
 * language of each file comes from its name (es.jsonl, es.dev.jsonl) unless --unknown asks the
 * scorer to pick the lexicon itself.
 *
 *   cls_sentiment_eval [--lexicon PATH] [--unknown] [--tune | --errors | --bench SECONDS] FILE...
 *   cls_sentiment_eval [--lexicon PATH] --text TEXT [LANG]
 */

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "escucha/esc_log.h"
#include "escucha/esc_mem.h"
#include "escucha/esc_rc.h"
#include "escucha/esc_util.h"
#include "sentiment.h"
#include "sentiment_eval.h"

static void
s_usage(void)
{
    fprintf(stderr, "usage: cls_sentiment_eval [--lexicon PATH] [--unknown] [--tune | --errors "
                    "| --bench SECONDS] FILE.jsonl...\n"
                    "       cls_sentiment_eval [--lexicon PATH] --text TEXT [LANG]\n");
}

/* "tests/data/sentiment/es.dev.jsonl" -> "es". */
static void
s_lang_of_path(const char *path, char *lang, size_t sz)
{
    const char *base = strrchr(path, '/');
    size_t n = 0;

    base = base != NULL ? base + 1 : path;
    while (base[n] != '\0' && base[n] != '.' && n + 1 < sz) {
        lang[n] = base[n];
        n++;
    }
    lang[n] = '\0';
}

static double
s_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int
s_table(const cls_sentiment_t *s, int nfiles, char **files, int unknown)
{
    int i;

    printf("| set | lang | posts | accuracy | macro-F1 | F1 neg | F1 neu | F1 pos | band |\n");
    printf("|---|---|---|---|---|---|---|---|---|\n");
    for (i = 0; i < nfiles; i++) {
        struct cls_sentiment_eval ev;
        struct esc_error err = { 0 };
        char lang[8];

        s_lang_of_path(files[i], lang, sizeof(lang));
        if (cls_sentiment_eval_file(s, files[i], unknown ? NULL : lang, -1.0, &ev, &err) !=
            ESC_OK) {
            esc_error_print(stderr, "cls_sentiment_eval", &err);
            return 1;
        }
        printf("| %s | %s | %u | %.3f | %.3f | %.3f | %.3f | %.3f | %.2f |\n", files[i],
               unknown ? "auto" : lang, ev.n, ev.accuracy, ev.macro_f1, ev.f1[0], ev.f1[1],
               ev.f1[2], cls_sentiment_neutral_band(s, lang));
    }
    return 0;
}

/* Prints the posts whose predicted label differs from the gold one. */
static int
s_errors(const cls_sentiment_t *s, int nfiles, char **files, int unknown)
{
    int i;

    for (i = 0; i < nfiles; i++) {
        struct esc_error err = { 0 };
        char **texts = NULL;
        int *labels = NULL;
        char lang[8];
        long n;
        long k;

        s_lang_of_path(files[i], lang, sizeof(lang));
        n = cls_sentiment_eval_load(files[i], &texts, &labels, &err);
        if (n < 0) {
            esc_error_print(stderr, "cls_sentiment_eval", &err);
            return 1;
        }
        for (k = 0; k < n; k++) {
            struct cls_sentiment_result r;

            cls_sentiment_analyze(s, unknown ? NULL : lang, texts[k], strlen(texts[k]), &r);
            if (r.label != labels[k]) {
                printf("%s:%ld gold=%s got=%s score=%.3f: %s\n", files[i], k + 1,
                       cls_sentiment_label_str(labels[k]), cls_sentiment_label_str(r.label),
                       r.score, texts[k]);
            }
            esc_free(texts[k]);
        }
        esc_free(texts);
        esc_free(labels);
    }
    return 0;
}

/* Sweeps the neutral band 0.00..0.60 on each (dev) file and prints the band chosen by the
 * documented rule: the midpoint of the widest run of bands whose macro-F1 is within 0.02 of
 * the best, so that a lone spike on a small dev split is not picked. */
static int
s_tune(const cls_sentiment_t *s, int nfiles, char **files)
{
    int i;

    for (i = 0; i < nfiles; i++) {
        double f1[61];
        double best = -1.0;
        int run_start = -1;
        int best_start = 0;
        int best_len = 0;
        char lang[8];
        int b;

        s_lang_of_path(files[i], lang, sizeof(lang));
        for (b = 0; b <= 60; b++) {
            struct cls_sentiment_eval ev;
            struct esc_error err = { 0 };

            if (cls_sentiment_eval_file(s, files[i], lang, b / 100.0, &ev, &err) != ESC_OK) {
                esc_error_print(stderr, "cls_sentiment_eval", &err);
                return 1;
            }
            printf("%s band=%.2f accuracy=%.3f macro_f1=%.3f\n", files[i], b / 100.0,
                   ev.accuracy, ev.macro_f1);
            f1[b] = ev.macro_f1;
            if (ev.macro_f1 > best) {
                best = ev.macro_f1;
            }
        }
        for (b = 0; b <= 61; b++) {
            bool near = b <= 60 && f1[b] >= best - 0.02;

            if (near && run_start < 0) {
                run_start = b;
            }
            else if (!near && run_start >= 0) {
                if (b - run_start > best_len) {
                    best_len = b - run_start;
                    best_start = run_start;
                }
                run_start = -1;
            }
        }
        b = best_start + (best_len - 1) / 2;
        printf("%s best macro_f1=%.3f chosen band=%.2f (macro_f1=%.3f, plateau %.2f-%.2f)\n",
               files[i], best, b / 100.0, f1[b], best_start / 100.0,
               (best_start + best_len - 1) / 100.0);
    }
    return 0;
}

static int
s_bench(const cls_sentiment_t *s, int nfiles, char **files, double seconds, int unknown)
{
    char **texts = NULL;
    int *labels = NULL;
    char **all = NULL;
    size_t *lens = NULL;
    char (*langs)[8] = NULL;
    size_t n = 0;
    size_t bytes = 0;
    double t0, t1;
    unsigned long posts = 0;
    double sink = 0.0;
    int i;

    for (i = 0; i < nfiles; i++) {
        struct esc_error err = { 0 };
        long m = cls_sentiment_eval_load(files[i], &texts, &labels, &err);
        long k;

        if (m < 0) {
            esc_error_print(stderr, "cls_sentiment_eval", &err);
            return 1;
        }
        all = esc_realloc(all, (n + (size_t)m + 1) * sizeof(*all));
        lens = esc_realloc(lens, (n + (size_t)m + 1) * sizeof(*lens));
        langs = esc_realloc(langs, (n + (size_t)m + 1) * sizeof(*langs));
        for (k = 0; k < m; k++) {
            all[n] = texts[k];
            lens[n] = strlen(texts[k]);
            s_lang_of_path(files[i], langs[n], sizeof(langs[n]));
            bytes += lens[n];
            n++;
        }
        esc_free(texts);
        esc_free(labels);
    }
    if (n == 0) {
        return 1;
    }
    t0 = s_now();
    do {
        size_t k;

        for (k = 0; k < n; k++) {
            int label;

            sink += cls_sentiment_score(s, unknown ? NULL : langs[k], all[k], lens[k], &label);
        }
        posts += n;
        t1 = s_now();
    } while (t1 - t0 < seconds);
    printf("bench: %zu distinct posts (mean %.0f bytes), language %s: %lu posts in %.2f s = "
           "%.0f posts/s (checksum %.3f)\n",
           n, (double)bytes / n, unknown ? "unknown (all lexicons tried)" : "given", posts,
           t1 - t0, posts / (t1 - t0), sink);
    while (n > 0) {
        esc_free(all[--n]);
    }
    esc_free(all);
    esc_free(lens);
    esc_free(langs);
    return 0;
}

int
main(int argc, char **argv)
{
    const char *lexicon = NULL;
    struct esc_error err = { 0 };
    cls_sentiment_t *s;
    const char *text = NULL;
    int unknown = 0;
    int tune = 0;
    int errors = 0;
    double bench = 0.0;
    int i = 1;
    int rc;

    esc_log_init("cls_sentiment_eval", ESC_LOG_WARN);
    while (i < argc && strncmp(argv[i], "--", 2) == 0) {
        if (strcmp(argv[i], "--lexicon") == 0 && i + 1 < argc) {
            lexicon = argv[i + 1];
            i += 2;
        }
        else if (strcmp(argv[i], "--unknown") == 0) {
            unknown = 1;
            i++;
        }
        else if (strcmp(argv[i], "--text") == 0 && i + 1 < argc) {
            text = argv[i + 1];
            i += 2;
        }
        else if (strcmp(argv[i], "--errors") == 0) {
            errors = 1;
            i++;
        }
        else if (strcmp(argv[i], "--tune") == 0) {
            tune = 1;
            i++;
        }
        else if (strcmp(argv[i], "--bench") == 0 && i + 1 < argc) {
            int64_t secs;

            if (esc_parse_i64(argv[i + 1], 1, 600, &secs) != 0) {
                s_usage();
                return 2;
            }
            bench = (double)secs;
            i += 2;
        }
        else {
            s_usage();
            return 2;
        }
    }
    if (i >= argc && text == NULL) {
        s_usage();
        return 2;
    }
    s = cls_sentiment_new(lexicon, &err);
    if (s == NULL) {
        esc_error_print(stderr, "cls_sentiment_eval", &err);
        return 1;
    }
    if (text != NULL) {
        /* --text TEXT [LANG]: one post, for checking a rule by hand */
        struct cls_sentiment_result r;

        esc_log_init("cls_sentiment_eval", ESC_LOG_DEBUG);
        cls_sentiment_analyze(s, i < argc ? argv[i] : NULL, text, strlen(text), &r);
        printf("score=%.4f label=%s lang=%s hits=%u known=%u\n", r.score,
               cls_sentiment_label_str(r.label), r.lang, r.hits, r.known);
        rc = 0;
    }
    else if (errors) {
        rc = s_errors(s, argc - i, argv + i, unknown);
    }
    else if (tune) {
        rc = s_tune(s, argc - i, argv + i);
    }
    else if (bench > 0.0) {
        rc = s_bench(s, argc - i, argv + i, bench, unknown);
    }
    else {
        rc = s_table(s, argc - i, argv + i, unknown);
    }
    cls_sentiment_destroy(&s);
    return rc;
}
