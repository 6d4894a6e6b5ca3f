#ifndef CLS_LANGID_H
#define CLS_LANGID_H

/* Language identification for short social-media posts (docs/language-id.md).
 *
 * A multinomial naive Bayes over character 1..5-grams and whole words, restricted to the
 * languages a deployment expects, with smoothing and weights tuned on held-out text. URLs,
 * e-mail addresses, @mentions, digits, punctuation and emoji are ignored; #hashtags are split
 * at CamelCase and count less than the running text. The model is trained at build time from
 * Debian packages (classifier/langid/train/) and loaded from a file.
 *
 *     cls_langid_t *lid = cls_langid_new(NULL, NULL, 0, &err);   // default model, es en pt qu ay
 *     double conf;
 *     const char *lang = cls_langid_detect(lid, text, len, &conf); // "es", 0.97 (or "und")
 *     cls_langid_destroy(&lid);
 *
 * Threading: a detector is used by one thread at a time (one per classifier loop). Detection
 * does not allocate. */

#include <stddef.h>

#include "escucha/esc_rc.h"

#define CLS_LANGID_LANGS_MAX 16 /* languages a detector can be configured with */
#define CLS_LANGID_UND "und"    /* the answer when unsure (ISO 639-2 "undetermined") */

/* Languages used when none are configured. */
#define CLS_LANGID_DEFAULT_LANGS { "es", "en", "pt", "qu", "ay" }
#define CLS_LANGID_DEFAULT_N 5

/* Tunables (cls_langid_params_default fills the values tuned on held-out data). */
struct cls_langid_params {
    double eps[6];          /* smoothing floor per feature kind: n-gram orders 1..5, words */
    double weight[6];       /* weight of each feature kind in the score */
    double hashtag_weight;  /* weight of hashtag words when the post has other words too */
    double temperature;     /* scales scores before the softmax that gives the confidence */
    double min_confidence;  /* below this the answer is "und" */
};

typedef struct cls_langid cls_langid_t;

/* Fills p with the defaults. */
void cls_langid_params_default(struct cls_langid_params *p);

/* The model used when none is configured: cls_datafile_find("langid.model", <the model trained
 * in the build tree>), i.e. the build tree's for a binary run from the build tree, else the
 * installed <prefix>/share/escucha/langid.model. Never NULL; borrowed (static, computed once,
 * thread-safe). */
const char *cls_langid_default_model(void);

/* Loads the model at model_path (NULL: cls_langid_default_model()) restricted to langs[0..n)
 * (NULL or n == 0: CLS_LANGID_DEFAULT_LANGS), ISO 639-1 codes as in the model ("es", "qu").
 * Languages are equally likely a priori. Returns a caller-owned detector, or NULL with err
 * naming the problem: missing or corrupt model file, a language the model does not know (the
 * message lists those it knows), a duplicate, or more than CLS_LANGID_LANGS_MAX languages. */
cls_langid_t *cls_langid_new(const char *model_path, const char *const *langs, size_t n_langs,
                             struct esc_error *err);

/* Same, with priors[0..n) (relative weights > 0, e.g. the expected share of each language;
 * NULL: equal) and params (NULL: defaults). */
cls_langid_t *cls_langid_new_ex(const char *model_path, const char *const *langs,
                                size_t n_langs, const double *priors,
                                const struct cls_langid_params *params, struct esc_error *err);

/* Frees the detector; NULL-safe, sets *self_p = NULL. */
void cls_langid_destroy(cls_langid_t **self_p);

/* Identifies the language of text[0..len) (UTF-8; invalid bytes are skipped; only the first
 * 4096 code points are read). Returns one of the configured codes or CLS_LANGID_UND when the
 * text has no usable words or the confidence is below params.min_confidence; *confidence
 * (may be NULL) gets the posterior probability of the best language in [0, 1] (0 when there
 * is nothing to go on). Borrowed: a static string or one owned by self, valid until
 * cls_langid_destroy. */
const char *cls_langid_detect(cls_langid_t *self, const char *text, size_t len,
                              double *confidence);

/* cls_langid_detect in steps, so that the caller can do other work while the memory the
 * detection reads arrives: _begin tokenises text[0..len) (it is not read after _begin
 * returns) and requests the totals remembered for its words; _lookup (optional) reads them
 * and requests the table entries of the words not remembered; _end, which must follow _begin,
 * finishes and returns what cls_langid_detect would. */
void cls_langid_detect_begin(cls_langid_t *self, const char *text, size_t len);
void cls_langid_detect_lookup(cls_langid_t *self);
const char *cls_langid_detect_end(cls_langid_t *self, double *confidence);

/* After cls_langid_detect: writes up to cap (code, probability) pairs of the last text, best
 * first, and returns how many were written (0 when the last text had nothing to go on). The
 * codes are borrowed from self. */
size_t cls_langid_ranking(const cls_langid_t *self, const char **codes, double *probs,
                          size_t cap);

/* Number of configured languages and the i-th code (borrowed from self). */
size_t cls_langid_n_langs(const cls_langid_t *self);
const char *cls_langid_lang(const cls_langid_t *self, size_t i);

#endif
