#ifndef CLS_SENTIMENT_EVAL_H
#define CLS_SENTIMENT_EVAL_H

/* Accuracy of cls_sentiment on a labelled JSONL file (one {"text": ..., "label":
 * "positive"|"neutral"|"negative"} per line), shared by the unit test and the
 * cls_sentiment_eval tool that prints the table in docs/sentiment.md. */

#include "sentiment.h"

struct esc_error;

struct cls_sentiment_eval {
    unsigned n;                /* posts scored */
    unsigned confusion[3][3];  /* [gold][predicted], index label + 1 */
    double accuracy;           /* correct / n */
    double precision[3];       /* per class, index label + 1 */
    double recall[3];
    double f1[3];
    double macro_f1;           /* mean of the three F1 */
};

/* Scores every post of the file at path in language lang (NULL: unknown language) and fills
 * out. band >= 0 replaces the lexicon's neutral band (for tuning on a dev split). Returns
 * ESC_OK, or ESC_ERR with err naming the line when the file cannot be read or a line is not a
 * labelled post. */
int cls_sentiment_eval_file(const cls_sentiment_t *s, const char *path, const char *lang,
                            double band, struct cls_sentiment_eval *out, struct esc_error *err);

/* Loads the texts and gold labels of path into caller-owned arrays (free each text and the
 * arrays with esc_free). Returns the number of posts, or -1 with err set. */
long cls_sentiment_eval_load(const char *path, char ***texts, int **labels,
                             struct esc_error *err);

#endif
