#ifndef CLS_SENTIMENT_H
#define CLS_SENTIMENT_H

/* Lexicon-based sentiment for short posts in Spanish, English and Portuguese
 * (docs/sentiment.md). A cls_sentiment_t holds the lexicon loaded from the file that
 * convert.mjs writes at build time; once loaded it is read-only, so one object may be shared by
 * any number of threads, and scoring a post allocates nothing. */

#include <stddef.h>

struct esc_error;

#define CLS_SENTIMENT_NEGATIVE (-1)
#define CLS_SENTIMENT_NEUTRAL 0
#define CLS_SENTIMENT_POSITIVE 1

/* What one post scored; filled by cls_sentiment_analyze. */
struct cls_sentiment_result {
    double score;    /* polarity in [-1, 1] */
    int label;       /* CLS_SENTIMENT_NEGATIVE, _NEUTRAL or _POSITIVE */
    char lang[3];    /* lexicon used: "es", "en", "pt" */
    unsigned hits;   /* words, emoji and emoticons that carried a valence */
    unsigned known;  /* tokens the lexicon knew (valence, negator, booster, contrast) */
};

typedef struct cls_sentiment cls_sentiment_t;

/* The lexicon used when none is configured: cls_datafile_find("sentiment.lex", <the lexicon
 * made in the build tree>), i.e. the build tree's for a binary run from the build tree, else
 * the installed <prefix>/share/escucha/sentiment.lex. Never NULL; borrowed (static, computed
 * once, thread-safe). */
const char *cls_sentiment_default_path(void);

/* Loads the lexicon file at lexicon_path, or cls_sentiment_default_path() when it is NULL.
 * Returns NULL when the file cannot be read or a line is malformed; err (may be NULL) then
 * names the file and line. Caller owns the result. */
cls_sentiment_t *cls_sentiment_new(const char *lexicon_path, struct esc_error *err);

/* Frees the object. NULL-safe, sets *self_p = NULL. */
void cls_sentiment_destroy(cls_sentiment_t **self_p);

/* Scores text[0..len) (UTF-8, any length; invalid bytes are skipped) in language lang (an ISO
 * 639-1/-3 code such as "es", "es-PE", "eng"; NULL, "und" or an unsupported code tries every
 * lexicon and keeps the one that knows most of the words, Spanish on a tie). Returns the
 * polarity in [-1, 1] and stores the label -1/0/1 in *label when label is non-NULL. Empty text
 * scores 0, neutral. */
double cls_sentiment_score(const cls_sentiment_t *self, const char *lang, const char *text,
                           size_t len, int *label);

/* Same as cls_sentiment_score with the details --explain prints. */
void cls_sentiment_analyze(const cls_sentiment_t *self, const char *lang, const char *text,
                           size_t len, struct cls_sentiment_result *out);

/* "negative", "neutral" or "positive"; never NULL. */
const char *cls_sentiment_label_str(int label);

/* Neutral band of language lang ("es", "en", "pt"): |score| below it is neutral. Taken from the
 * lexicon's `param neutral` lines (tuned on the dev split); -1 for an unknown language. */
double cls_sentiment_neutral_band(const cls_sentiment_t *self, const char *lang);

#endif
