#define ESC_LOG_MODULE "langid"
/* Language identification of short posts: naive Bayes over hashed character 1..5-grams and
 * words (docs/language-id.md). At construction the model's counts are turned, for the
 * configured languages only, into one weight per (feature, language):
 *     w = weight[kind] * log(1 + r / eps[kind]),   r = count / total count of that kind,
 * i.e. log P(feature | language) with an additive floor eps, minus the floor itself, so a
 * feature no configured language has seen weighs 0 everywhere and is simply absent. Only
 * differences between languages matter, so each feature keeps its weights above the lowest of
 * them, quantised to 8 bits (a quarter nat); features whose weights are then equal for all
 * configured languages cannot change the answer and are dropped. The rest are in an
 * open-addressing table keyed by 24 bits of the feature hash, 8 bytes a slot for up to five
 * languages; detection is one probe per feature and integer adds, and the sums of recently
 * seen tokens are remembered (s_memo). Scores get the log prior, and a softmax with a
 * temperature gives the confidence. Not thread-safe: one detector per thread; detection does
 * not allocate. */
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "escucha/esc_log.h"
#include "escucha/esc_mem.h"
#include "escucha/esc_util.h"

#include "datafile.h"
#include "langid.h"
#include "langid_model.h"
#include "langid_text.h"

#ifndef CLS_LANGID_MODEL_DEFAULT
#define CLS_LANGID_MODEL_DEFAULT "langid.model"
#endif

#define S_SCALE 4.0   /* quantisation steps per nat: a weight is 0..255 steps (63.75 nats) */
#define S_KEY_BYTES 3 /* bytes of a slot holding the key (24 bits of the feature hash) */
#define S_LINE 64     /* cache line: slots are aligned so that one never straddles two */
#define S_HUGE (2u << 20) /* huge page: the big tables are aligned to it (s_table_alloc) */
#define S_MEMO_BITS 17 /* log2 of the tokens whose totals are remembered (see s_memo) */
#define S_MEMO_SET_BITS 2 /* log2 of the entries per set of the memo (see s_memo) */
#define S_MEMO_WAYS (1 << S_MEMO_SET_BITS)
#define S_BATCH 512    /* features of unremembered tokens looked up together (s_flush) */

/* What one token adds to the scores: the sum of its features' weights for each language and
 * how many of its features the table lacks, by kind. It depends on the token's bytes only, so
 * the detector remembers it for recently seen tokens: words repeat from post to post, and a
 * known token then costs one probe instead of one per feature. The memo holds 2^S_MEMO_BITS
 * entries in sets of S_MEMO_WAYS (with up to eight languages, two cache lines of 32-byte
 * entries, requested together), the most recently used first, so a token no longer evicts a
 * frequent word just because their hashes meet, as in the direct-mapped cache before: in a
 * simulation over 600,000 posts of the benchmark corpus 3.5 % of the tokens miss instead of
 * 9.0 % (two ways: 5.3 %); on the benchmark's replay of 200,000 posts 2.7 % instead of 8.4 %.
 * Entries are told apart by the 64-bit hash of the token alone (two tokens of a stream share
 * one about once in 2^64 lookups). The head is followed by the uint16_t sums of the n
 * languages (at most CLS_LANGID_TOK_FEATS weights of 255: they fit); an entry is a power of
 * two of bytes, aligned like the table. */
struct s_memo {
    uint64_t key;                   /* cls_langid_tok.key of the token | 1, 0 = empty */
    uint8_t hits;                   /* features found in the table */
    uint8_t miss[CLS_LANGID_KINDS]; /* features not found, per kind */
    uint8_t pad;
};

_Static_assert(sizeof(struct s_memo) == 16, "memo head is 16 bytes");
_Static_assert(CLS_LANGID_TOK_FEATS <= UINT8_MAX, "per-token feature counts fit a uint8_t");
_Static_assert(CLS_LANGID_TOK_FEATS * 255 <= UINT16_MAX, "per-token sums fit a uint16_t");
_Static_assert(S_BATCH >= CLS_LANGID_TOK_FEATS && S_BATCH <= UINT16_MAX, "a batch holds a token");

/* A token of the text being detected that the memo did not have: its features are
 * feats[first, first + nf) of the batch. */
struct s_pending {
    uint32_t tok;
    uint16_t first;
    uint16_t nf;
};

/* The totals of the text being detected. */
struct s_acc {
    uint64_t plain[CLS_LANGID_LANGS_MAX];   /* weights of the words of the running text */
    uint64_t hashtag[CLS_LANGID_LANGS_MAX]; /* of the hashtag words */
    size_t miss[CLS_LANGID_KINDS];          /* features not in the table */
    size_t hits;                            /* features in the table */
};
#define S_SPARSE 1e6  /* a language with fewer n-grams of a kind is sparse (see s_defaults) */

_Static_assert(CLS_LANGID_KINDS == 6, "cls_langid_params arrays have one entry per kind");

struct cls_langid {
    size_t n;                                  /* configured languages */
    char codes[CLS_LANGID_LANGS_MAX][8];       /* their codes */
    double log_prior[CLS_LANGID_LANGS_MAX];    /* log of the normalised priors */
    struct cls_langid_params params;           /* as given */
    size_t stride;                             /* bytes per slot: key + n weights, padded
                                                  to a power of two */
    uint32_t mask;                             /* slot count - 1 (power of two) */
    unsigned shift;                            /* 64 - log2(slot count) */
    uint8_t *slots;                            /* the weight table, S_LINE-aligned */
    void *slots_mem;                           /* its allocation */
    char *memo;                                /* token totals (struct s_memo + n sums) */
    void *memo_mem;                            /* its allocation */
    size_t memo_size;                          /* bytes per memo entry */
    size_t n_entries;                          /* features kept */
    struct cls_langid_text text;               /* tokeniser buffers */
    uint64_t fh[S_BATCH];                      /* features of the batch (s_flush) */
    uint8_t fk[S_BATCH];                       /* their kinds */
    uint32_t fs[S_BATCH];                      /* their first probe slots */
    size_t n_feats;                            /* features in the batch */
    struct s_pending pend[S_BATCH];            /* the tokens they belong to */
    size_t n_pend;
    uint64_t tkey[CLS_LANGID_MAX_TOKS];        /* memo key of each token of the text */
    double dflt[CLS_LANGID_KINDS][CLS_LANGID_LANGS_MAX]; /* weight of an unseen feature */
    double last_p[CLS_LANGID_LANGS_MAX];       /* posteriors of the last text */
    bool last_valid;                           /* last text had features */
    bool begun;                                /* cls_langid_detect_begin ran, _end did not */
    bool null_text;                            /* ... on a NULL text */
    bool looked_up;                            /* cls_langid_detect_lookup ran, _end did not */
    struct s_acc acc;                          /* totals of the text (from _lookup on) */
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

static char s_default_model[PATH_MAX + 64];
static pthread_once_t s_default_once = PTHREAD_ONCE_INIT;

static void
s_default_find(void)
{
    cls_datafile_find("langid.model", CLS_LANGID_MODEL_DEFAULT, s_default_model,
                      sizeof(s_default_model));
}

const char *
cls_langid_default_model(void)
{
    pthread_once(&s_default_once, s_default_find);
    return s_default_model;
}

static inline size_t
s_index(const cls_langid_t *self, uint64_t h)
{
    return (size_t)((h * 0x9E3779B97F4A7C15ULL) >> self->shift);
}

/* The key a slot holds for feature hash h: its top 24 bits, 0 meaning an empty slot. Another
 * feature has the same key and probe chain about once in 2^24 misses. */
static inline uint32_t
s_key(uint64_t h)
{
    uint32_t k = (uint32_t)(h >> 40);

    return k != 0 ? k : 1;
}

static inline uint32_t
s_slot_key(const uint8_t *s)
{
    return (uint32_t)s[0] | (uint32_t)s[1] << 8 | (uint32_t)s[2] << 16;
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

/* Weights of model feature i for the configured languages into q, in steps of 1/S_SCALE nat
 * above the lowest of them (only differences between languages matter: the same amount added
 * to every language changes no posterior); false when the feature cannot tell them apart. */
static bool
s_weights(const cls_langid_t *self, const struct cls_langid_model *m, const int *col,
          size_t i, uint8_t *q)
{
    double w[CLS_LANGID_LANGS_MAX];
    size_t k = m->kind[i];
    size_t j;
    uint32_t a;
    uint8_t lo = UINT8_MAX;
    uint8_t hi = 0;
    double min;

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
    min = w[0];
    for (j = 1; j < self->n; j++) {
        min = w[j] < min ? w[j] : min;
    }
    for (j = 0; j < self->n; j++) {
        double v = (w[j] - min) * S_SCALE + 0.5;

        q[j] = v >= UINT8_MAX ? UINT8_MAX : (uint8_t)v;
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

/* A zeroed array of size bytes for a table probed at random: aligned to S_LINE, and backed by
 * huge pages where the system allows it (a few TLB entries instead of thousands of 4 KiB
 * pages). *mem gets the allocation to free. */
static void *
s_table_alloc(size_t size, void **mem)
{
    char *p;

    *mem = esc_malloc(size + S_HUGE);
    p = (char *)*mem + (S_HUGE - (uintptr_t)*mem % S_HUGE) % S_HUGE;
#ifdef MADV_HUGEPAGE
    if (size >= S_HUGE) {
        (void)madvise(p, size / S_HUGE * S_HUGE, MADV_HUGEPAGE); /* advice only */
    }
#endif
    memset(p, 0, size);
    return p;
}

static void
s_build(cls_langid_t *self, const struct cls_langid_model *m, const int *col)
{
    uint8_t q[CLS_LANGID_LANGS_MAX];
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
    /* A slot is a power of two of bytes (8 for up to five languages) in an aligned array, so
     * a probe touches one cache line. */
    self->stride = 8;
    while (self->stride < S_KEY_BYTES + self->n) {
        self->stride *= 2;
    }
    self->mask = (uint32_t)(slots - 1);
    self->shift = 64 - bits;
    self->slots = s_table_alloc(slots * self->stride, &self->slots_mem);
    for (i = 0; i < m->n_feats; i++) {
        size_t idx;
        uint32_t key;

        if (!s_weights(self, m, col, i, q)) {
            continue;
        }
        key = s_key(m->hash[i]);
        idx = s_index(self, m->hash[i]);
        for (;;) {
            uint8_t *s = self->slots + idx * self->stride;

            if (s_slot_key(s) == 0) {
                s[0] = (uint8_t)key;
                s[1] = (uint8_t)(key >> 8);
                s[2] = (uint8_t)(key >> 16);
                memcpy(s + S_KEY_BYTES, q, self->n);
                break;
            }
            idx = (idx + 1) & self->mask;
        }
    }
    self->n_entries = kept;
    self->memo_size = 32;
    while (self->memo_size < sizeof(struct s_memo) + self->n * sizeof(uint16_t)) {
        self->memo_size *= 2;
    }
    self->memo = s_table_alloc(((size_t)1 << S_MEMO_BITS) * self->memo_size, &self->memo_mem);
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
    esc_free((*self_p)->slots_mem);
    esc_free((*self_p)->memo_mem);
    esc_free(*self_p);
    *self_p = NULL;
}

/* The weights of feature h, whose first probe slot is idx; NULL when it is not in the
 * table. */
static inline const uint8_t *
s_lookup(const cls_langid_t *self, uint64_t h, size_t idx)
{
    uint32_t key = s_key(h);

    for (;;) {
        const uint8_t *s = self->slots + idx * self->stride;
        uint32_t k = s_slot_key(s);

        if (k == key) {
            return s + S_KEY_BYTES;
        }
        if (k == 0) {
            return NULL;
        }
        idx = (idx + 1) & self->mask;
    }
}

/* The memo set of a token whose key is key: its first (most recently used) entry; the
 * others follow, memo_size bytes apart. */
static inline struct s_memo *
s_memo_at(const cls_langid_t *self, uint64_t key)
{
    size_t set = (size_t)((key * 0x9E3779B97F4A7C15ULL) >> (64 - S_MEMO_BITS + S_MEMO_SET_BITS));

    return (struct s_memo *)(void *)(self->memo + set * self->memo_size * S_MEMO_WAYS);
}

_Static_assert(sizeof(struct s_memo) + CLS_LANGID_LANGS_MAX * sizeof(uint16_t) <= 64,
               "a memo entry is at most 64 bytes (s_memo_find)");

/* The memo entry of key, now the first of its set, or NULL when the memo does not have it. */
static inline const struct s_memo *
s_memo_find(const cls_langid_t *self, uint64_t key)
{
    char *set = (char *)s_memo_at(self, key);
    char tmp[64];
    size_t w;

    for (w = 0; w < S_MEMO_WAYS; w++) {
        if (((const struct s_memo *)(void *)(set + w * self->memo_size))->key == key) {
            break;
        }
    }
    if (w == S_MEMO_WAYS) {
        return NULL;
    }
    if (w > 0) {
        /* most recently used first: the entries before it move back one */
        memcpy(tmp, set + w * self->memo_size, self->memo_size);
        memmove(set + self->memo_size, set, w * self->memo_size);
        memcpy(set, tmp, self->memo_size);
    }
    return (const struct s_memo *)(void *)set;
}

/* The entry for key, which the memo did not have when the text was looked up: the first of
 * its set, the least recently used one evicted (unless a token of the same text has just put
 * key there). Its contents are the caller's to fill. */
static inline struct s_memo *
s_memo_insert(const cls_langid_t *self, uint64_t key)
{
    struct s_memo *m0 = s_memo_at(self, key);

    if (m0->key == key) {
        return m0;
    }
    memmove((char *)m0 + self->memo_size, m0, (S_MEMO_WAYS - 1) * self->memo_size);
    return m0;
}

/* Adds the totals of one token (a memo entry) to a. */
static inline void
s_add(const cls_langid_t *self, const struct s_memo *m, bool hashtag, struct s_acc *a)
{
    const uint16_t *sum = (const uint16_t *)(const void *)(m + 1);
    uint64_t *dst = hashtag ? a->hashtag : a->plain;
    size_t k;
    size_t j;

    a->hits += m->hits;
    for (k = 0; k < CLS_LANGID_KINDS; k++) {
        a->miss[k] += m->miss[k];
    }
    for (j = 0; j < self->n; j++) {
        dst[j] += sum[j];
    }
}

/* Queues the features of token t, which the memo does not have, for s_flush; its table slots
 * are requested now, so that they arrive while the next tokens are hashed. */
static void
s_queue(cls_langid_t *self, size_t t)
{
    const struct cls_langid_tok *tok = &self->text.toks[t];
    size_t first = self->n_feats;
    size_t nf = cls_langid_features(self->text.buf + tok->off, tok->len, self->fh + first,
                                    self->fk + first);
    size_t f;

    for (f = first; f < first + nf; f++) {
        self->fs[f] = (uint32_t)s_index(self, self->fh[f]);
        __builtin_prefetch(self->slots + (size_t)self->fs[f] * self->stride);
    }
    self->pend[self->n_pend].tok = (uint32_t)t;
    self->pend[self->n_pend].first = (uint16_t)first;
    self->pend[self->n_pend].nf = (uint16_t)nf;
    self->n_pend++;
    self->n_feats += nf;
}

/* Looks up the queued features, adds each queued token's totals to a and remembers them. */
static void
s_flush(cls_langid_t *self, struct s_acc *a)
{
    size_t n = self->n;
    size_t p;
    size_t f;

    for (p = 0; p < self->n_pend; p++) {
        const struct s_pending *pd = &self->pend[p];
        struct s_memo *m = s_memo_insert(self, self->tkey[pd->tok]);
        uint16_t *sum = (uint16_t *)(void *)(m + 1);
        size_t j;

        m->key = self->tkey[pd->tok];
        m->hits = 0;
        memset(m->miss, 0, sizeof(m->miss));
        memset(sum, 0, n * sizeof(*sum));
        for (f = pd->first; f < (size_t)pd->first + pd->nf; f++) {
            const uint8_t *q = s_lookup(self, self->fh[f], self->fs[f]);

            if (q == NULL) {
                m->miss[self->fk[f]]++;
                continue;
            }
            m->hits++;
            for (j = 0; j < n; j++) {
                sum[j] = (uint16_t)(sum[j] + q[j]);
            }
        }
        s_add(self, m, self->text.toks[pd->tok].hashtag != 0, a);
    }
    self->n_pend = 0;
    self->n_feats = 0;
}

void
cls_langid_detect_begin(cls_langid_t *self, const char *text, size_t len)
{
    size_t t;

    self->last_valid = false;
    self->begun = true;
    self->looked_up = false;
    self->null_text = text == NULL;
    if (text == NULL) {
        return;
    }
    cls_langid_tokenize(&self->text, text, len);
    /* The tables are larger than the caches: every entry a text needs is requested before it
     * is read, so that the cache misses overlap instead of being waited for one by one (and,
     * when the caller works on something else before cls_langid_detect_end, with that). */
    for (t = 0; t < self->text.n_toks; t++) {
        const char *set;
        size_t o;

        self->tkey[t] = self->text.toks[t].key | 1;
        set = (const char *)s_memo_at(self, self->tkey[t]);
        for (o = 0; o < self->memo_size * S_MEMO_WAYS; o += S_LINE) {
            __builtin_prefetch(set + o);
        }
    }
}

void
cls_langid_detect_lookup(cls_langid_t *self)
{
    struct s_acc *a = &self->acc;
    size_t t;

    ESC_ASSERT(self->begun);
    if (self->looked_up) {
        return;
    }
    self->looked_up = true;
    memset(a, 0, sizeof(*a));
    self->n_pend = 0;
    self->n_feats = 0;
    if (self->null_text) {
        return;
    }
    for (t = 0; t < self->text.n_toks; t++) {
        const struct s_memo *m = s_memo_find(self, self->tkey[t]);

        if (m != NULL) {
            s_add(self, m, self->text.toks[t].hashtag != 0, a);
            continue;
        }
        if (self->n_feats + CLS_LANGID_TOK_FEATS > S_BATCH || self->n_pend == S_BATCH) {
            s_flush(self, a);
        }
        s_queue(self, t);
    }
}

const char *
cls_langid_detect(cls_langid_t *self, const char *text, size_t len, double *confidence)
{
    cls_langid_detect_begin(self, text, len);
    return cls_langid_detect_end(self, confidence);
}

const char *
cls_langid_detect_end(cls_langid_t *self, double *confidence)
{
    struct s_acc a;
    double score[CLS_LANGID_LANGS_MAX];
    size_t n = self->n;
    size_t j;
    size_t best = 0;
    double hw;
    double sum = 0;

    cls_langid_detect_lookup(self);
    self->begun = false;
    self->looked_up = false;
    if (confidence != NULL) {
        *confidence = 0;
    }
    if (self->null_text) {
        return CLS_LANGID_UND;
    }
    s_flush(self, &self->acc);
    a = self->acc;
    if (a.hits == 0) {
        return CLS_LANGID_UND;
    }
    /* Hashtags often name an event in another language ("#SuperBowl"): they count fully
     * only when the post has nothing else. */
    hw = self->text.n_plain > 0 ? self->params.hashtag_weight : 1.0;
    for (j = 0; j < n; j++) {
        double ll = ((double)a.plain[j] + hw * (double)a.hashtag[j]) / S_SCALE;
        size_t k;

        for (k = 0; k < CLS_LANGID_KINDS; k++) {
            ll += (double)a.miss[k] * self->dflt[k][j];
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
