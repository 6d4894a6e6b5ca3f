#ifndef CLS_LANGID_MODEL_H
#define CLS_LANGID_MODEL_H

/* The language-identification model file: feature counts per language, as written by
 * cls-langid-train at build time and read by cls_langid_new. Internal to classifier/langid
 * (the trainer, the detector and the evaluation tool).
 *
 * File layout, little-endian:
 *   "ESCLID1\n"                       magic, 8 bytes
 *   u32 n_langs, u32 n_feats
 *   n_langs x char[8]                  language codes, NUL-padded
 *   n_langs x CLS_LANGID_KINDS x f64   total count per kind (orders 1..5, words)
 *   n_feats x { u64 hash, u8 kind, u8 n, n x { u8 lang, f32 count } }   sorted by hash */

#include <stddef.h>
#include <stdint.h>

#include "escucha/esc_rc.h"

#include "langid.h"
#include "langid_text.h"

#define CLS_LANGID_MAGIC "ESCLID1\n"

struct cls_langid_model {
    size_t n_langs;                                   /* languages in the file */
    char codes[CLS_LANGID_LANGS_MAX][8];              /* their codes */
    double totals[CLS_LANGID_LANGS_MAX][CLS_LANGID_KINDS]; /* counts per kind and language */
    size_t n_feats;                                   /* distinct features */
    uint64_t *hash;                                   /* [n_feats] feature hashes */
    uint8_t *kind;                                    /* [n_feats] enum cls_langid_kind */
    uint32_t *start;                                  /* [n_feats + 1] into lang/count */
    uint8_t *lang;                                    /* language index of each count */
    float *count;                                     /* the counts */
};

/* Reads a model file. Returns a caller-owned model, or NULL with err saying what is wrong
 * (missing file, not a model, truncated, bad values). */
struct cls_langid_model *cls_langid_model_load(const char *path, struct esc_error *err);
/* Frees the model; NULL-safe, sets *model_p = NULL. */
void cls_langid_model_free(struct cls_langid_model **model_p);
/* Index of code in the model, or -1. */
int cls_langid_model_lang(const struct cls_langid_model *m, const char *code);

/* Builds a detector from an already loaded model (the evaluation tool tunes parameters this
 * way without re-reading the file); same contract as cls_langid_new_ex otherwise. The model
 * is only read during the call. Returns a caller-owned detector or NULL with err filled. */
cls_langid_t *cls_langid_new_from_model(const struct cls_langid_model *m,
                                        const char *const *langs, size_t n_langs,
                                        const double *priors,
                                        const struct cls_langid_params *params,
                                        struct esc_error *err);

#endif
