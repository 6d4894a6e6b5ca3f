#define ESC_LOG_MODULE "langid-train"
/* cls-langid-train: builds the language-identification model at build time.
 *
 *   cls-langid-train -o OUT [-m FP_MASS] LANG:FILE...
 *
 * FILE is either running text, one text per line (train/extract_corpus.py writes these from
 * Debian packages), or, when its name ends in ".fp.tsv", an n-gram fingerprint ("ngram<TAB>
 * relative frequency", ' ' for a word boundary) that counts as FP_MASS n-grams of each order
 * (default 50000). Text goes through the same tokeniser and feature hashing as detection.
 * Features seen twice in some language, or once in a language with little text, are written
 * with their counts in the layout of langid_model.h, sorted by hash: the output depends only
 * on the input files. Single-threaded batch tool; memory grows with the vocabulary. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "escucha/esc_log.h"
#include "escucha/esc_mem.h"
#include "escucha/esc_util.h"

#include "langid_model.h"
#include "langid_text.h"

#define S_SMALL_TOTAL 1e6 /* a language with fewer n-grams of a kind keeps its singletons */

struct s_counts {
    size_t n_langs;
    char codes[CLS_LANGID_LANGS_MAX][8];
    double totals[CLS_LANGID_LANGS_MAX][CLS_LANGID_KINDS];
    size_t cap;      /* slots, power of two */
    size_t used;     /* features */
    uint64_t *keys;  /* [cap] feature hash, 0 = empty */
    uint8_t *kinds;  /* [cap] */
    float *counts;   /* [cap * CLS_LANGID_LANGS_MAX] */
};

static size_t
s_slot(const struct s_counts *c, uint64_t h)
{
    size_t i = (size_t)((h * 0x9E3779B97F4A7C15ULL) >> 20) & (c->cap - 1);

    while (c->keys[i] != 0 && c->keys[i] != h) {
        i = (i + 1) & (c->cap - 1);
    }
    return i;
}

static void
s_grow(struct s_counts *c)
{
    struct s_counts old = *c;
    size_t i;

    c->cap = old.cap ? old.cap * 2 : (size_t)1 << 20;
    c->keys = esc_calloc(c->cap, sizeof(*c->keys));
    c->kinds = esc_calloc(c->cap, 1);
    c->counts = esc_calloc(c->cap * CLS_LANGID_LANGS_MAX, sizeof(float));
    for (i = 0; i < old.cap; i++) {
        size_t s;

        if (old.keys[i] == 0) {
            continue;
        }
        s = s_slot(c, old.keys[i]);
        c->keys[s] = old.keys[i];
        c->kinds[s] = old.kinds[i];
        memcpy(c->counts + s * CLS_LANGID_LANGS_MAX, old.counts + i * CLS_LANGID_LANGS_MAX,
               CLS_LANGID_LANGS_MAX * sizeof(float));
    }
    esc_free(old.keys);
    esc_free(old.kinds);
    esc_free(old.counts);
}

static void
s_add(struct s_counts *c, uint64_t h, uint8_t kind, size_t lang, double n)
{
    size_t s;

    if (h == 0) {
        h = 1; /* 0 marks an empty slot */
    }
    if ((c->used + 1) * 2 > c->cap) {
        s_grow(c);
    }
    s = s_slot(c, h);
    if (c->keys[s] == 0) {
        c->keys[s] = h;
        c->kinds[s] = kind;
        c->used++;
    }
    c->counts[s * CLS_LANGID_LANGS_MAX + lang] += (float)n;
    c->totals[lang][kind] += n;
}

static int
s_read_text(struct s_counts *c, size_t lang, const char *path, struct cls_langid_text *t)
{
    static char line[1 << 16]; /* a longer line is read in pieces: fine for counting */
    FILE *f = fopen(path, "r");
    uint64_t fh[CLS_LANGID_TOK_FEATS];
    uint8_t fk[CLS_LANGID_TOK_FEATS];
    size_t lines = 0;

    if (f == NULL) {
        fprintf(stderr, "cls-langid-train: cannot open %s: %s\n", path, strerror(errno));
        return -1;
    }
    while (fgets(line, sizeof(line), f) != NULL) {
        size_t k;

        cls_langid_tokenize(t, line, strlen(line));
        for (k = 0; k < t->n_toks; k++) {
            size_t nf = cls_langid_features(t->buf + t->toks[k].off, t->toks[k].len, fh, fk);
            size_t i;

            for (i = 0; i < nf; i++) {
                s_add(c, fh[i], fk[i], lang, 1.0);
            }
        }
        lines++;
    }
    fclose(f);
    esc_log_info("read text lang=%s file=%s lines=%zu", c->codes[lang], path, lines);
    return 0;
}

static int
s_read_fingerprint(struct s_counts *c, size_t lang, const char *path, double mass)
{
    static char line[4096];
    double before[CLS_LANGID_KINDS];
    FILE *f = fopen(path, "r");
    size_t grams = 0;
    size_t k;

    if (f == NULL) {
        fprintf(stderr, "cls-langid-train: cannot open %s: %s\n", path, strerror(errno));
        return -1;
    }
    memcpy(before, c->totals[lang], sizeof(before));
    while (fgets(line, sizeof(line), f) != NULL) {
        char *tab = strchr(line, '\t');
        char low[64];
        size_t n;
        size_t cps = 0;
        double r;
        char *end;

        if (tab == NULL) {
            continue;
        }
        r = strtod(tab + 1, &end);
        if (end == tab + 1 || !(r > 0) || r > 1) {
            fprintf(stderr, "cls-langid-train: %s: bad line ignored\n", path);
            continue;
        }
        n = cls_langid_lower(line, (size_t)(tab - line), low, sizeof(low));
        for (k = 0; k < n; k++) {
            cps += ((unsigned char)low[k] & 0xC0) != 0x80;
        }
        if (cps == 0 || cps > CLS_LANGID_ORDER_MAX) {
            continue;
        }
        s_add(c, cls_langid_ngram_hash(low, n), (uint8_t)(CLS_LANGID_K1 + cps - 1), lang,
              r * mass);
        grams++;
    }
    fclose(f);
    /* The fingerprint stands for `mass` n-grams of each order, of which the listed ones are
     * only the most frequent part: the totals grow by `mass`, not by what was listed. */
    for (k = CLS_LANGID_K1; k <= CLS_LANGID_K5; k++) {
        c->totals[lang][k] = before[k] + mass;
    }
    esc_log_info("read fingerprint lang=%s file=%s grams=%zu", c->codes[lang], path, grams);
    return 0;
}

static int
s_cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a;
    uint64_t y = *(const uint64_t *)b;

    return x < y ? -1 : x > y;
}

static void
s_put_u32(FILE *f, uint32_t v)
{
    unsigned char b[4] = { (unsigned char)v, (unsigned char)(v >> 8), (unsigned char)(v >> 16),
                           (unsigned char)(v >> 24) };

    fwrite(b, 1, 4, f);
}

static void
s_put_u64(FILE *f, uint64_t v)
{
    s_put_u32(f, (uint32_t)v);
    s_put_u32(f, (uint32_t)(v >> 32));
}

static bool
s_keep(const struct s_counts *c, size_t s)
{
    size_t l;
    uint8_t kind = c->kinds[s];

    for (l = 0; l < c->n_langs; l++) {
        float v = c->counts[s * CLS_LANGID_LANGS_MAX + l];

        if (v >= 2 || (v > 0 && c->totals[l][kind] < S_SMALL_TOTAL)) {
            return true;
        }
    }
    return false;
}

static int
s_write(const struct s_counts *c, const char *path)
{
    char tmp[4096];
    uint64_t *order;
    size_t n = 0;
    size_t i;
    size_t l;
    size_t k;
    FILE *f;

    order = esc_malloc(sizeof(*order) * (c->used + 1));
    for (i = 0; i < c->cap; i++) {
        if (c->keys[i] != 0 && s_keep(c, i)) {
            order[n++] = c->keys[i];
        }
    }
    qsort(order, n, sizeof(*order), s_cmp_u64);
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    f = fopen(tmp, "wb");
    if (f == NULL) {
        fprintf(stderr, "cls-langid-train: cannot create %s: %s\n", tmp, strerror(errno));
        esc_free(order);
        return -1;
    }
    fwrite(CLS_LANGID_MAGIC, 1, 8, f);
    s_put_u32(f, (uint32_t)c->n_langs);
    s_put_u32(f, (uint32_t)n);
    for (l = 0; l < c->n_langs; l++) {
        fwrite(c->codes[l], 1, 8, f);
    }
    for (l = 0; l < c->n_langs; l++) {
        for (k = 0; k < CLS_LANGID_KINDS; k++) {
            uint64_t u;

            memcpy(&u, &c->totals[l][k], sizeof(u));
            s_put_u64(f, u);
        }
    }
    for (i = 0; i < n; i++) {
        size_t s = s_slot(c, order[i]);
        const float *v = c->counts + s * CLS_LANGID_LANGS_MAX;
        unsigned char nz = 0;

        for (l = 0; l < c->n_langs; l++) {
            nz += v[l] > 0;
        }
        s_put_u64(f, order[i]);
        fputc(c->kinds[s], f);
        fputc(nz, f);
        for (l = 0; l < c->n_langs; l++) {
            uint32_t u;

            if (v[l] <= 0) {
                continue;
            }
            memcpy(&u, &v[l], sizeof(u));
            fputc((int)l, f);
            s_put_u32(f, u);
        }
    }
    esc_free(order);
    if (fclose(f) != 0 || rename(tmp, path) != 0) {
        fprintf(stderr, "cls-langid-train: cannot write %s: %s\n", path, strerror(errno));
        return -1;
    }
    esc_log_info("model written path=%s langs=%zu features=%zu of %zu", path, c->n_langs, n,
                 c->used);
    return 0;
}

static int
s_lang(struct s_counts *c, const char *code, size_t len)
{
    size_t i;

    if (len == 0 || len >= sizeof(c->codes[0])) {
        return -1;
    }
    for (i = 0; i < c->n_langs; i++) {
        if (strlen(c->codes[i]) == len && memcmp(c->codes[i], code, len) == 0) {
            return (int)i;
        }
    }
    if (c->n_langs == CLS_LANGID_LANGS_MAX) {
        return -1;
    }
    memcpy(c->codes[c->n_langs], code, len);
    c->codes[c->n_langs][len] = '\0';
    return (int)c->n_langs++;
}

static bool
s_ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s);
    size_t b = strlen(suffix);

    return a >= b && strcmp(s + a - b, suffix) == 0;
}

int
main(int argc, char **argv)
{
    static struct cls_langid_text text; /* large fixed buffers */
    struct s_counts c;
    const char *out = NULL;
    double mass = 50000;
    int rc = 1;
    int i;

    esc_log_init("cls-langid-train", ESC_LOG_WARN);
    memset(&c, 0, sizeof(c));
    s_grow(&c);
    for (i = 1; i < argc; i++) {
        const char *colon;
        int lang;

        if (strcmp(argv[i], "-o") == 0 && i + 1 < argc) {
            out = argv[++i];
            continue;
        }
        if (strcmp(argv[i], "-m") == 0 && i + 1 < argc) {
            char *end;

            mass = strtod(argv[++i], &end);
            if (*end != '\0' || !(mass > 0)) {
                fprintf(stderr, "cls-langid-train: bad -m value %s\n", argv[i]);
                goto out;
            }
            continue;
        }
        colon = strchr(argv[i], ':');
        lang = colon != NULL ? s_lang(&c, argv[i], (size_t)(colon - argv[i])) : -1;
        if (lang < 0) {
            fprintf(stderr, "usage: cls-langid-train -o OUT [-m FP_MASS] LANG:FILE...\n");
            goto out;
        }
        if (s_ends_with(colon + 1, ".fp.tsv")) {
            if (s_read_fingerprint(&c, (size_t)lang, colon + 1, mass) != 0) {
                goto out;
            }
        }
        else if (s_read_text(&c, (size_t)lang, colon + 1, &text) != 0) {
            goto out;
        }
    }
    if (out == NULL || c.n_langs == 0) {
        fprintf(stderr, "usage: cls-langid-train -o OUT [-m FP_MASS] LANG:FILE...\n");
        goto out;
    }
    rc = s_write(&c, out) == 0 ? 0 : 1;
out:
    esc_free(c.keys);
    esc_free(c.kinds);
    esc_free(c.counts);
    return rc;
}
