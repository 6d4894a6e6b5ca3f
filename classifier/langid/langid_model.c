#define ESC_LOG_MODULE "langid"
/* Reader of the language-identification model file (layout in langid_model.h). The file is
 * read whole and parsed into flat arrays; every field is range-checked so a truncated or
 * foreign file gives a clear error instead of a crash. Loaded once at start-up or reload; the
 * detector then builds its own compact table from it. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "escucha/esc_log.h"
#include "escucha/esc_mem.h"

#include "langid_model.h"

struct s_reader {
    const unsigned char *p;
    size_t len;
    size_t off;
};

static int
s_need(struct s_reader *r, size_t n)
{
    return r->len - r->off >= n ? 0 : -1;
}

static uint32_t
s_u32(struct s_reader *r)
{
    const unsigned char *p = r->p + r->off;

    r->off += 4;
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t
s_u64(struct s_reader *r)
{
    uint64_t lo = s_u32(r);
    uint64_t hi = s_u32(r);

    return lo | hi << 32;
}

static double
s_f64(struct s_reader *r)
{
    uint64_t u = s_u64(r);
    double d;

    memcpy(&d, &u, sizeof(d));
    return d;
}

static float
s_f32(struct s_reader *r)
{
    uint32_t u = s_u32(r);
    float f;

    memcpy(&f, &u, sizeof(f));
    return f;
}

static unsigned char *
s_slurp(const char *path, size_t *len, struct esc_error *err)
{
    FILE *f = fopen(path, "rb");
    unsigned char *buf = NULL;
    size_t cap = 1 << 20;
    size_t n = 0;

    if (f == NULL) {
        esc_error_set(err, 0, "cannot open langid model %s: %s", path, strerror(errno));
        return NULL;
    }
    buf = esc_malloc(cap);
    for (;;) {
        size_t got;

        if (n == cap) {
            cap *= 2;
            buf = esc_realloc(buf, cap);
        }
        got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0) {
            break;
        }
    }
    if (ferror(f)) {
        esc_error_set(err, 0, "cannot read langid model %s: %s", path, strerror(errno));
        fclose(f);
        esc_free(buf);
        return NULL;
    }
    fclose(f);
    *len = n;
    return buf;
}

static int
s_parse(struct cls_langid_model *m, struct s_reader *r, const char *path, struct esc_error *err)
{
    uint32_t n_langs;
    uint32_t n_feats;
    size_t i;
    size_t k;
    size_t total = 0;
    size_t cap;

    if (s_need(r, 16) != 0 || memcmp(r->p, CLS_LANGID_MAGIC, 8) != 0) {
        esc_error_set(err, 0, "%s is not a langid model (bad magic)", path);
        return -1;
    }
    r->off = 8;
    n_langs = s_u32(r);
    n_feats = s_u32(r);
    if (n_langs == 0 || n_langs > CLS_LANGID_LANGS_MAX) {
        esc_error_set(err, 0, "langid model %s: bad language count %u", path, n_langs);
        return -1;
    }
    if (s_need(r, (size_t)n_langs * (8 + 8 * CLS_LANGID_KINDS)) != 0) {
        esc_error_set(err, 0, "langid model %s is truncated (header)", path);
        return -1;
    }
    m->n_langs = n_langs;
    for (i = 0; i < n_langs; i++) {
        memcpy(m->codes[i], r->p + r->off, 8);
        m->codes[i][7] = '\0';
        r->off += 8;
        if (m->codes[i][0] == '\0') {
            esc_error_set(err, 0, "langid model %s: empty language code", path);
            return -1;
        }
    }
    for (i = 0; i < n_langs; i++) {
        for (k = 0; k < CLS_LANGID_KINDS; k++) {
            m->totals[i][k] = s_f64(r);
            if (!isfinite(m->totals[i][k]) || m->totals[i][k] < 0) {
                esc_error_set(err, 0, "langid model %s: bad total for %s", path, m->codes[i]);
                return -1;
            }
        }
    }
    m->n_feats = n_feats;
    m->hash = esc_malloc(sizeof(*m->hash) * (n_feats + 1));
    m->kind = esc_malloc(n_feats + 1);
    m->start = esc_malloc(sizeof(*m->start) * (n_feats + 1));
    cap = (size_t)n_feats * 2 + 16;
    m->lang = esc_malloc(cap);
    m->count = esc_malloc(sizeof(*m->count) * cap);
    for (i = 0; i < n_feats; i++) {
        uint8_t n;

        if (s_need(r, 10) != 0) {
            esc_error_set(err, 0, "langid model %s is truncated (feature %zu of %u)", path, i,
                          n_feats);
            return -1;
        }
        m->hash[i] = s_u64(r);
        m->kind[i] = r->p[r->off++];
        n = r->p[r->off++];
        if (m->kind[i] >= CLS_LANGID_KINDS || n == 0 || n > n_langs) {
            esc_error_set(err, 0, "langid model %s: bad feature record %zu", path, i);
            return -1;
        }
        if (s_need(r, (size_t)n * 5) != 0) {
            esc_error_set(err, 0, "langid model %s is truncated (feature %zu of %u)", path, i,
                          n_feats);
            return -1;
        }
        m->start[i] = (uint32_t)total;
        for (k = 0; k < n; k++) {
            if (total == cap) {
                cap *= 2;
                m->lang = esc_realloc(m->lang, cap);
                m->count = esc_realloc(m->count, sizeof(*m->count) * cap);
            }
            m->lang[total] = r->p[r->off++];
            m->count[total] = s_f32(r);
            if (m->lang[total] >= n_langs || !isfinite(m->count[total]) ||
                m->count[total] <= 0) {
                esc_error_set(err, 0, "langid model %s: bad count in feature %zu", path, i);
                return -1;
            }
            total++;
        }
    }
    m->start[n_feats] = (uint32_t)total;
    if (r->off != r->len) {
        esc_error_set(err, 0, "langid model %s: %zu trailing bytes", path, r->len - r->off);
        return -1;
    }
    return 0;
}

struct cls_langid_model *
cls_langid_model_load(const char *path, struct esc_error *err)
{
    struct cls_langid_model *m;
    struct s_reader r;
    unsigned char *buf;
    size_t len = 0;

    buf = s_slurp(path, &len, err);
    if (buf == NULL) {
        return NULL;
    }
    m = esc_calloc(1, sizeof(*m));
    r.p = buf;
    r.len = len;
    r.off = 0;
    if (s_parse(m, &r, path, err) != 0) {
        cls_langid_model_free(&m);
        esc_free(buf);
        return NULL;
    }
    esc_free(buf);
    esc_log_debug("langid model loaded path=%s langs=%zu features=%zu", path, m->n_langs,
                  m->n_feats);
    return m;
}

void
cls_langid_model_free(struct cls_langid_model **model_p)
{
    struct cls_langid_model *m;

    if (model_p == NULL || *model_p == NULL) {
        return;
    }
    m = *model_p;
    esc_free(m->hash);
    esc_free(m->kind);
    esc_free(m->start);
    esc_free(m->lang);
    esc_free(m->count);
    esc_free(m);
    *model_p = NULL;
}

int
cls_langid_model_lang(const struct cls_langid_model *m, const char *code)
{
    size_t i;

    for (i = 0; i < m->n_langs; i++) {
        if (strcmp(m->codes[i], code) == 0) {
            return (int)i;
        }
    }
    return -1;
}
