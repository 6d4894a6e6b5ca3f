#define ESC_LOG_MODULE "sentiment_eval"

/* Evaluation of the sentiment scorer on the labelled sets in tests/data/sentiment: reads the
 * JSONL with jansson, scores each post and computes accuracy and per-class and macro F1. Used
 * by sentiment_test.c (accuracy thresholds) and by the cls_sentiment_eval tool; never by the
 * classifier itself. */

#include "sentiment_eval.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "escucha/esc_mem.h"
#include "escucha/esc_rc.h"
#include "escucha/esc_util.h"

#define S_LINE_MAX 16384

static int
s_label_of(const char *s)
{
    if (strcmp(s, "positive") == 0) {
        return CLS_SENTIMENT_POSITIVE;
    }
    if (strcmp(s, "neutral") == 0) {
        return CLS_SENTIMENT_NEUTRAL;
    }
    if (strcmp(s, "negative") == 0) {
        return CLS_SENTIMENT_NEGATIVE;
    }
    return 2;
}

long
cls_sentiment_eval_load(const char *path, char ***texts, int **labels, struct esc_error *err)
{
    static char line[S_LINE_MAX];
    size_t cap = 256;
    long n = 0;
    int lineno = 0;
    FILE *f;

    if (err != NULL) {
        esc_strlcpy(err->source, path, sizeof(err->source));
    }
    f = fopen(path, "r");
    if (f == NULL) {
        esc_error_set(err, 0, "cannot open: %s", strerror(errno));
        return -1;
    }
    *texts = esc_malloc(cap * sizeof(**texts));
    *labels = esc_malloc(cap * sizeof(**labels));
    while (fgets(line, sizeof(line), f) != NULL) {
        json_error_t jerr;
        json_t *o;
        const char *text = NULL;
        const char *label = NULL;
        int lab;

        lineno++;
        if (line[0] == '\n' || line[0] == '\0') {
            continue;
        }
        o = json_loads(line, 0, &jerr);
        if (o != NULL) {
            text = json_string_value(json_object_get(o, "text"));
            label = json_string_value(json_object_get(o, "label"));
        }
        lab = label != NULL ? s_label_of(label) : 2;
        if (o == NULL || text == NULL || lab == 2) {
            esc_error_set(err, lineno, "expected {\"text\": ..., \"label\": ...}");
            json_decref(o);
            fclose(f);
            while (n > 0) {
                esc_free((*texts)[--n]);
            }
            ESC_FREE(*texts);
            ESC_FREE(*labels);
            return -1;
        }
        if ((size_t)n == cap) {
            cap *= 2;
            *texts = esc_realloc(*texts, cap * sizeof(**texts));
            *labels = esc_realloc(*labels, cap * sizeof(**labels));
        }
        (*texts)[n] = esc_strdup(text);
        (*labels)[n] = lab;
        n++;
        json_decref(o);
    }
    fclose(f);
    return n;
}

int
cls_sentiment_eval_file(const cls_sentiment_t *s, const char *path, const char *lang,
                        double band, struct cls_sentiment_eval *out, struct esc_error *err)
{
    char **texts = NULL;
    int *labels = NULL;
    long n = cls_sentiment_eval_load(path, &texts, &labels, err);
    unsigned correct = 0;
    long i;
    int c;

    memset(out, 0, sizeof(*out));
    if (n < 0) {
        return ESC_ERR;
    }
    for (i = 0; i < n; i++) {
        struct cls_sentiment_result r;
        int pred;

        cls_sentiment_analyze(s, lang, texts[i], strlen(texts[i]), &r);
        pred = r.label;
        if (band >= 0.0) {
            pred = r.score >= band && r.score > 0.0    ? CLS_SENTIMENT_POSITIVE
                   : r.score <= -band && r.score < 0.0 ? CLS_SENTIMENT_NEGATIVE
                                                       : CLS_SENTIMENT_NEUTRAL;
        }
        out->confusion[labels[i] + 1][pred + 1]++;
        if (pred == labels[i]) {
            correct++;
        }
        esc_free(texts[i]);
    }
    esc_free(texts);
    esc_free(labels);
    out->n = (unsigned)n;
    out->accuracy = n > 0 ? (double)correct / (double)n : 0.0;
    for (c = 0; c < 3; c++) {
        unsigned tp = out->confusion[c][c];
        unsigned gold = out->confusion[c][0] + out->confusion[c][1] + out->confusion[c][2];
        unsigned pred = out->confusion[0][c] + out->confusion[1][c] + out->confusion[2][c];

        out->precision[c] = pred > 0 ? (double)tp / pred : 0.0;
        out->recall[c] = gold > 0 ? (double)tp / gold : 0.0;
        out->f1[c] = out->precision[c] + out->recall[c] > 0.0
                         ? 2.0 * out->precision[c] * out->recall[c] /
                               (out->precision[c] + out->recall[c])
                         : 0.0;
        out->macro_f1 += out->f1[c] / 3.0;
    }
    return ESC_OK;
}
