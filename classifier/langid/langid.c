#define ESC_LOG_MODULE "langid"
/* Language identification of short posts: naive Bayes over hashed character 1..5-grams and
 * words (docs/language-id.md). At construction the model's counts are turned, for the
 * configured languages only, into one weight per (feature, language):
 *     w = weight[kind] * log(1 + r / eps[kind]),   r = count / total count of that kind,
 * i.e. log P(feature | language) with an additive floor eps, minus the floor itself, so a
 * feature no configured language has seen weighs 0 everywhere and is simply absent. Features
 * whose weights are equal for all configured languages cannot change the answer and are
 * dropped. The weights are quantised to 16 bits in an open-addressing table keyed by 32 bits
 * of the feature hash; detection is then one probe per feature and integer adds. Scores get
 * the log prior, and a softmax with a temperature gives the confidence. Not thread-safe: one
 * detector per thread; detection does not allocate. */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "escucha/esc_log.h"
#include "escucha/esc_mem.h"
#include "escucha/esc_util.h"

#include "langid.h"
#include "langid_model.h"
#include "langid_text.h"

#ifndef CLS_LANGID_MODEL_DEFAULT
#define CLS_LANGID_MODEL_DEFAULT "langid.model"
#endif

#define S_SCALE 512.0 /* quantisation steps per nat */
#define S_KEY_SLOTS 2 /* uint16 slots holding the 32-bit key */
#define S_SPARSE 1e6  /* a language with fewer n-grams of a kind is sparse (see s_defaults) */

_Static_assert(CLS_LANGID_KINDS == 6, "cls_langid_params arrays have one entry per kind");

struct cls_langid {
    size_t n;                                  /* configured languages */
    char codes[CLS_LANGID_LANGS_MAX][8];       /* their codes */
    double log_prior[CLS_LANGID_LANGS_MAX];    /* log of the normalised priors */
    struct cls_langid_params params;           /* as given */
    size_t stride;                             /* uint16 per slot: key + n weights */
    uint32_t mask;                             /* slot count - 1 (power of two) */
    unsigned shift;                            /* 64 - log2(slot count) */
    uint16_t *slots;                           /* the weight table */
    size_t n_entries;                          /* features kept */
    struct cls_langid_text text;               /* tokeniser buffers */
    uint64_t fh[CLS_LANGID_TOK_FEATS];         /* features of one token */
    uint8_t fk[CLS_LANGID_TOK_FEATS];
    double dflt[CLS_LANGID_KINDS][CLS_LANGID_LANGS_MAX]; /* weight of an unseen feature */
    double last_p[CLS_LANGID_LANGS_MAX];       /* posteriors of the last text */
    bool last_valid;                           /* last text had features */
};

void
cls_langid_params_default(struct cls_langid_params *p)
{
    /* Tuned with escucha-langid-eval --tune on the dev split of the training text (held-out
     * lines of the same Debian packages, cut into 1-word, 2-word, 3-5-word and sentence
     * samples); see docs/language-id.md. */
    static const double eps[CLS_LANGID_KINDS] = { 3e-8, 3e-8, 3e-8, 3e-8, 3e-8, 1e-7 };
    static const double weight[CLS_LANGID_KINDS] = { 1.0, 1.0, 1.0, 1.0, 1.0, 4.0 };

    memcpy(p->eps, eps, sizeof(eps));
    memcpy(p->weight, weight, sizeof(weight));
    p->hashtag_weight = 0.3;
    p->temperature = 0.07;
    p->min_confidence = 0.5;
}

const char *
cls_langid_default_model(void)
{
    static char installed[4096 + 64];
    char exe[4096];
    ssize_t n;
    char *slash;

    if (access(CLS_LANGID_MODEL_DEFAULT, R_OK) == 0) {
        return CLS_LANGID_MODEL_DEFAULT; /* running from the build tree */
    }
    /* Installed: <prefix>/bin/escucha-classifier and <prefix>/share/escucha/langid.model. */
    n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n <= 0) {
        return CLS_LANGID_MODEL_DEFAULT;
    }
    exe[n] = '\0';
    slash = strrchr(exe, '/');
    if (slash == NULL) {
        return CLS_LANGID_MODEL_DEFAULT;
    }
    *slash = '\0';
    snprintf(installed, sizeof(installed), "%s/../share/escucha/langid.model", exe);
    return installed;
}

static inline size_t
s_index(const cls_langid_t *self, uint64_t h)
{
    return (size_t)((h * 0x9E3779B97F4A7C15ULL) >> self->shift);
}

static inline uint32_t
s_key(uint64_t h)
{
    uint32_t k = (uint32_t)(h >> 32);

    return k != 0 ? k : 1;
}

static int
s_check_params(const struct cls_langid_params *p, struct esc_error *err)
{
    size_t k;

    for (k = 0; k < CLS_LANGID_KINDS; k++) {
        if (!(p->eps[k] > 0) || !(p->weight[k] >= 0) || !isfinite(p->weight[k])) {
            esc_error_set(err, 0, "langid: eps must be > 0 and weights >= 0 (kind %zu)", k);
            return -1;
        }
    }
    if (!(p->hashtag_weight >= 0) || !(p->temperature > 0) || !(p->min_confidence >= 0) ||
        !(p->min_confidence <= 1)) {
        esc_error_set(err, 0, "langid: bad hashtag_weight, temperature or min_confidence");
        return -1;
    }
    return 0;
}

/* Weights of model feature i for the configured languages into q; false when the feature
 * cannot tell them apart. */
static bool
s_weights(const cls_langid_t *self, const struct cls_langid_model *m, const int *col,
          size_t i, uint16_t *q)
{
    double w[CLS_LANGID_LANGS_MAX];
    size_t k = m->kind[i];
    size_t j;
    uint32_t a;
    uint16_t lo = UINT16_MAX;
    uint16_t hi = 0;

    for (j = 0; j < self->n; j++) {
        w[j] = self->dflt[k][j];
    }
    for (a = m->start[i]; a < m->start[i + 1]; a++) {
        int c = col[m->lang[a]];
        double total;

        if (c < 0) {
            continue;
        }
        total = m->totals[m->lang[a]][k];
        if (total > 0) {
            w[c] = self->params.weight[k] * log1p((double)m->count[a] / total /
                                                  self->params.eps[k]);
        }
    }
    for (j = 0; j < self->n; j++) {
        double v = w[j] * S_SCALE + 0.5;

        q[j] = v >= UINT16_MAX ? UINT16_MAX : (uint16_t)v;
        lo = q[j] < lo ? q[j] : lo;
        hi = q[j] > hi ? q[j] : hi;
    }
    return hi > lo;
}

/* The weight of a feature a language has not seen. For a language trained on plenty of text
 * it is 0 (the floor eps). A sparse one - Quechua and Aymara, known mostly from the top few
 * hundred n-grams of a libexttextcat fingerprint - has not listed most of what it would say,
 * so the mass its totals do not account for is spread over the vocabulary of that kind; an
 * n-gram missing from Aymara's short list is then not taken as proof the text is Quechua. */
static void
s_defaults(cls_langid_t *self, const struct cls_langid_model *m, const int *col)
{
    double listed[CLS_LANGID_LANGS_MAX][CLS_LANGID_KINDS] = { { 0 } };
    double vocab[CLS_LANGID_KINDS] = { 0 };
    size_t i;
    size_t l;
    size_t k;
    uint32_t a;

    for (i = 0; i < m->n_feats; i++) {
        vocab[m->kind[i]] += 1;
        for (a = m->start[i]; a < m->start[i + 1]; a++) {
            listed[m->lang[a]][m->kind[i]] += m->count[a];
        }
    }
    for (l = 0; l < m->n_langs; l++) {
        if (col[l] < 0) {
            continue;
        }
        for (k = 0; k < CLS_LANGID_KINDS; k++) {
            double total = m->totals[l][k];
            double u = 0;

            if (total > 0 && total < S_SPARSE && listed[l][k] < total && vocab[k] > 0) {
                u = (total - listed[l][k]) / total / vocab[k];
            }
            self->dflt[k][col[l]] = self->params.weight[k] * log1p(u / self->params.eps[k]);
        }
    }
}

static void
s_build(cls_langid_t *self, const struct cls_langid_model *m, const int *col)
{
    uint16_t q[CLS_LANGID_LANGS_MAX];
    size_t kept = 0;
    size_t slots = 16;
    unsigned bits = 4;
    size_t i;

    s_defaults(self, m, col);
    for (i = 0; i < m->n_feats; i++) {
        if (s_weights(self, m, col, i, q)) {
            kept++;
        }
    }
    while (slots < kept * 2) {
        slots *= 2;
        bits++;
    }
    self->stride = S_KEY_SLOTS + self->n;
    self->mask = (uint32_t)(slots - 1);
    self->shift = 64 - bits;
    self->slots = esc_calloc(slots * self->stride, sizeof(uint16_t));
    for (i = 0; i < m->n_feats; i++) {
        size_t idx;
        uint32_t key;

        if (!s_weights(self, m, col, i, q)) {
            continue;
        }
        key = s_key(m->hash[i]);
        idx = s_index(self, m->hash[i]);
        for (;;) {
            uint16_t *s = self->slots + idx * self->stride;

            if (s[0] == 0 && s[1] == 0) {
                s[0] = (uint16_t)(key & 0xFFFF);
                s[1] = (uint16_t)(key >> 16);
                memcpy(s + S_KEY_SLOTS, q, self->n * sizeof(uint16_t));
                break;
            }
            idx = (idx + 1) & self->mask;
        }
    }
    self->n_entries = kept;
}

cls_langid_t *
cls_langid_new_from_model(const struct cls_langid_model *m, const char *const *langs,
                          size_t n_langs, const double *priors,
                          const struct cls_langid_params *params, struct esc_error *err)
{
    static const char *const defaults[] = CLS_LANGID_DEFAULT_LANGS;
    int col[CLS_LANGID_LANGS_MAX];
    cls_langid_t *self;
    double psum = 0;
    size_t i;

    if (langs == NULL || n_langs == 0) {
        langs = defaults;
        n_langs = CLS_LANGID_DEFAULT_N;
    }
    if (n_langs > CLS_LANGID_LANGS_MAX) {
        esc_error_set(err, 0, "langid: %zu languages configured, at most %d", n_langs,
                      CLS_LANGID_LANGS_MAX);
        return NULL;
    }
    for (i = 0; i < CLS_LANGID_LANGS_MAX; i++) {
        col[i] = -1;
    }
    for (i = 0; i < n_langs; i++) {
        int li = langs[i] != NULL ? cls_langid_model_lang(m, langs[i]) : -1;

        if (li < 0) {
            char known[CLS_LANGID_LANGS_MAX * 8];
            size_t o = 0;
            size_t k;

            known[0] = '\0';
            for (k = 0; k < m->n_langs && o < sizeof(known); k++) {
                o += (size_t)snprintf(known + o, sizeof(known) - o, "%s%s", k ? " " : "",
                                      m->codes[k]);
            }
            esc_error_set(err, 0, "langid: language '%s' is not in the model (it has: %s)",
                          langs[i] != NULL ? langs[i] : "(null)", known);
            return NULL;
        }
        if (col[li] >= 0) {
            esc_error_set(err, 0, "langid: language '%s' is configured twice", langs[i]);
            return NULL;
        }
        col[li] = (int)i;
        if (priors != NULL && !(priors[i] > 0 && isfinite(priors[i]))) {
            esc_error_set(err, 0, "langid: prior of '%s' must be > 0", langs[i]);
            return NULL;
        }
        psum += priors != NULL ? priors[i] : 1.0;
    }
    self = esc_calloc(1, sizeof(*self));
    if (params != NULL) {
        self->params = *params;
    }
    else {
        cls_langid_params_default(&self->params);
    }
    if (s_check_params(&self->params, err) != 0) {
        esc_free(self);
        return NULL;
    }
    self->n = n_langs;
    for (i = 0; i < n_langs; i++) {
        esc_strlcpy(self->codes[i], langs[i], sizeof(self->codes[i]));
        self->log_prior[i] = log((priors != NULL ? priors[i] : 1.0) / psum);
    }
    s_build(self, m, col);
    esc_log_debug("langid ready langs=%zu features=%zu", self->n, self->n_entries);
    return self;
}

cls_langid_t *
cls_langid_new_ex(const char *model_path, const char *const *langs, size_t n_langs,
                  const double *priors, const struct cls_langid_params *params,
                  struct esc_error *err)
{
    struct cls_langid_model *m;
    cls_langid_t *self;

    if (model_path == NULL) {
        model_path = cls_langid_default_model();
    }
    m = cls_langid_model_load(model_path, err);
    if (m == NULL) {
        return NULL;
    }
    self = cls_langid_new_from_model(m, langs, n_langs, priors, params, err);
    cls_langid_model_free(&m);
    return self;
}

cls_langid_t *
cls_langid_new(const char *model_path, const char *const *langs, size_t n_langs,
               struct esc_error *err)
{
    return cls_langid_new_ex(model_path, langs, n_langs, NULL, NULL, err);
}

void
cls_langid_destroy(cls_langid_t **self_p)
{
    if (self_p == NULL || *self_p == NULL) {
        return;
    }
    esc_free((*self_p)->slots);
    esc_free(*self_p);
    *self_p = NULL;
}

static inline const uint16_t *
s_lookup(const cls_langid_t *self, uint64_t h)
{
    uint32_t key = s_key(h);
    size_t idx = s_index(self, h);

    for (;;) {
        const uint16_t *s = self->slots + idx * self->stride;
        uint32_t k = (uint32_t)s[0] | (uint32_t)s[1] << 16;

        if (k == key) {
            return s + S_KEY_SLOTS;
        }
        if (k == 0) {
            return NULL;
        }
        idx = (idx + 1) & self->mask;
    }
}

const char *
cls_langid_detect(cls_langid_t *self, const char *text, size_t len, double *confidence)
{
    uint64_t acc[CLS_LANGID_LANGS_MAX] = { 0 };
    uint64_t acch[CLS_LANGID_LANGS_MAX] = { 0 };
    size_t miss[CLS_LANGID_KINDS] = { 0 };
    double score[CLS_LANGID_LANGS_MAX];
    size_t n = self->n;
    size_t hits = 0;
    size_t t;
    size_t j;
    size_t best = 0;
    double hw;
    double sum = 0;

    self->last_valid = false;
    if (confidence != NULL) {
        *confidence = 0;
    }
    if (text == NULL) {
        return CLS_LANGID_UND;
    }
    cls_langid_tokenize(&self->text, text, len);
    for (t = 0; t < self->text.n_toks; t++) {
        const struct cls_langid_tok *tok = &self->text.toks[t];
        uint64_t *dst = tok->hashtag ? acch : acc;
        size_t nf = cls_langid_features(self->text.buf + tok->off, tok->len, self->fh, self->fk);
        size_t f;

        for (f = 0; f < nf; f++) {
            const uint16_t *w = s_lookup(self, self->fh[f]);

            if (w == NULL) {
                miss[self->fk[f]]++;
                continue;
            }
            hits++;
            for (j = 0; j < n; j++) {
                dst[j] += w[j];
            }
        }
    }
    if (hits == 0) {
        return CLS_LANGID_UND;
    }
    /* Hashtags often name an event in another language ("#SuperBowl"): they count fully
     * only when the post has nothing else. */
    hw = self->text.n_plain > 0 ? self->params.hashtag_weight : 1.0;
    for (j = 0; j < n; j++) {
        double ll = ((double)acc[j] + hw * (double)acch[j]) / S_SCALE;
        size_t k;

        for (k = 0; k < CLS_LANGID_KINDS; k++) {
            ll += (double)miss[k] * self->dflt[k][j];
        }
        /* Naive Bayes counts overlapping n-grams as independent evidence, so its log
         * likelihood is scaled by the temperature (fitted for calibration) before the prior
         * is added; otherwise no prior could ever matter. */
        score[j] = self->params.temperature * ll + self->log_prior[j];
        if (score[j] > score[best]) {
            best = j;
        }
    }
    for (j = 0; j < n; j++) {
        self->last_p[j] = exp(score[j] - score[best]);
        sum += self->last_p[j];
    }
    for (j = 0; j < n; j++) {
        self->last_p[j] /= sum;
    }
    self->last_valid = true;
    if (confidence != NULL) {
        *confidence = self->last_p[best];
    }
    if (self->last_p[best] < self->params.min_confidence) {
        return CLS_LANGID_UND;
    }
    return self->codes[best];
}

size_t
cls_langid_ranking(const cls_langid_t *self, const char **codes, double *probs, size_t cap)
{
    bool used[CLS_LANGID_LANGS_MAX] = { false };
    size_t out = 0;

    if (!self->last_valid) {
        return 0;
    }
    while (out < cap && out < self->n) {
        size_t best = self->n;
        size_t j;

        for (j = 0; j < self->n; j++) {
            if (!used[j] && (best == self->n || self->last_p[j] > self->last_p[best])) {
                best = j;
            }
        }
        used[best] = true;
        codes[out] = self->codes[best];
        probs[out] = self->last_p[best];
        out++;
    }
    return out;
}

size_t
cls_langid_n_langs(const cls_langid_t *self)
{
    return self->n;
}

const char *
cls_langid_lang(const cls_langid_t *self, size_t i)
{
    return i < self->n ? self->codes[i] : NULL;
}
