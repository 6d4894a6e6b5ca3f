#define ESC_LOG_MODULE "gencorpus"
/* The engine of bench/corpus/gen_corpus.py: writes one shard of the benchmark corpus, posts in
 * the project's JSON shape, one per line (Python made about 17,000 posts/s; this makes about
 * 300,000 per core, drawing Zipf ranks by the alias method). Everything it draws from - the
 * ranked vocabulary of each language, hashtags, authors, emoji, link sites and the canary
 * tokens - comes from the file vocab.py writes, so the topics generator and this program share
 * one vocabulary. The random choices follow the description in gen_corpus.py: Zipf words,
 * 40-280 characters, hashtags, mentions, links, emoji, shouting, missing accents, event times in
 * near order, and canary blocks planted contiguously whose lines are written to a JSON meta file
 * for exact count checks. Deterministic for (vocabulary, seed, lines, shards, shard, days,
 * start). Single-threaded; gen_corpus.py runs one process per shard. */
#define _GNU_SOURCE /* memmem */
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "escucha/esc_log.h"
#include "escucha/esc_mem.h"
#include "escucha/esc_util.h"

#define G_LANGS 3
#define G_TOKS_MAX 96
#define G_TEXT_MAX 280     /* characters (code points) */
#define G_TEXT_MIN 40
#define G_LINE_MAX 4096
#define G_OUT_FLUSH (4 << 20)
#define G_JITTER_S 90.0
#define G_LIMA_OFFSET_H (-5)
#define G_P_CANARY (1.0 / 400)
#define G_P_VETO_WITH_BETA 0.3
#define G_P_VETO_ALONE (1.0 / 2000)
#define G_NEAR_N 3

static const char *const s_lang_names[G_LANGS] = { "es", "en", "pt" };
static const double s_lang_cum[G_LANGS] = { 0.55, 0.85, 1.0 };
static const double s_hour_w[24] = { 0.9, 0.5, 0.3, 0.2, 0.2, 0.4, 0.9, 1.8, 2.8, 3.4, 3.6, 3.7,
                                     4.0, 3.8, 3.5, 3.4, 3.4, 3.5, 3.9, 4.3, 4.4, 3.9, 2.9, 1.7 };

enum g_canary { C_PLAIN = 0, C_NOT, C_VETO, C_NEAR_A, C_NEAR_B, C_PHRASE_A, C_PHRASE_B, C_N };
static const char *const s_canary_names[C_N] = { "plain",  "not",      "veto",    "near_a",
                                                 "near_b", "phrase_a", "phrase_b" };
/* Canary topics (gen_topics.py) whose lines are recorded. */
enum g_topic { T_PLAIN = 0, T_NOT, T_NEAR, T_PHRASE, T_N };
static const char *const s_topic_names[T_N] = { "plain", "not", "near", "phrase" };

/* Zipf sampler (s_alias_init). */
struct g_alias {
    double *prob;
    uint32_t *alias;
    size_t n;
};

struct g_list {
    const char **v;
    size_t n;
    size_t cap;
};

struct g_lang {
    struct g_list words; /* ranked */
    struct g_alias word_z;
    size_t n_func;
    struct g_list tags; /* ranked */
    struct g_alias tag_z;
};

struct g_author {
    const char *platform;
    const char *handle;
    const char *user;
    const char *name;
    int64_t followers;
};

struct g_vocab {
    char *data; /* the whole file; every string points into it */
    struct g_lang lang[G_LANGS];
    struct g_author *authors;
    size_t n_authors;
    size_t cap_authors;
    struct g_alias author_z;
    struct g_list emoji;
    struct g_list sites;
    const char *canary[C_N];
};

struct g_tok {
    const char *s;
    uint8_t comma; /* followed by ',' */
    uint8_t cap;   /* first letter upper case */
};

struct g_lines {
    uint32_t *v;
    size_t n;
    size_t cap;
};

struct g_opts {
    const char *vocab;
    const char *out;
    const char *meta;
    int64_t lines; /* in the whole corpus */
    int64_t shards;
    int64_t shard;
    int64_t seed;
    double days;
    int64_t start_s;
};

static uint64_t s_rs[4];

static uint64_t
s_splitmix(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ULL);

    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static uint64_t
s_rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

/* xoshiro256**: fast, and the same sequence on every platform. */
static uint64_t
s_next(void)
{
    uint64_t r = s_rotl(s_rs[1] * 5, 7) * 9;
    uint64_t t = s_rs[1] << 17;

    s_rs[2] ^= s_rs[0];
    s_rs[3] ^= s_rs[1];
    s_rs[1] ^= s_rs[2];
    s_rs[0] ^= s_rs[3];
    s_rs[2] ^= t;
    s_rs[3] = s_rotl(s_rs[3], 45);
    return r;
}

static double
s_unif(void)
{
    return (double)(s_next() >> 11) * (1.0 / 9007199254740992.0);
}

/* Uniform integer in [lo, hi]. */
static int64_t
s_range(int64_t lo, int64_t hi)
{
    return lo + (int64_t)(s_unif() * (double)(hi - lo + 1));
}

/* Zipf sampler over ranks 0..n-1 with exponent s: Walker's alias method, O(1) per draw (a
 * binary search over cumulative weights cost most of the generator's time in branch misses). */
static void
s_alias_init(struct g_alias *z, size_t n, double s)
{
    double *w = esc_malloc(n * sizeof(*w));
    uint32_t *small = esc_malloc(n * sizeof(*small));
    uint32_t *large = esc_malloc(n * sizeof(*large));
    size_t ns = 0;
    size_t nl = 0;
    double total = 0;
    size_t i;

    z->n = n;
    z->prob = esc_malloc(n * sizeof(*z->prob));
    z->alias = esc_malloc(n * sizeof(*z->alias));
    for (i = 0; i < n; i++) {
        w[i] = 1.0 / pow((double)(i + 1), s);
        total += w[i];
    }
    for (i = 0; i < n; i++) {
        w[i] = w[i] * (double)n / total;
        z->alias[i] = (uint32_t)i;
        if (w[i] < 1.0) {
            small[ns++] = (uint32_t)i;
        }
        else {
            large[nl++] = (uint32_t)i;
        }
    }
    while (ns > 0 && nl > 0) {
        uint32_t l = small[--ns];
        uint32_t g = large[nl - 1];

        z->prob[l] = w[l];
        z->alias[l] = g;
        w[g] = (w[g] + w[l]) - 1.0;
        if (w[g] < 1.0) {
            nl--;
            small[ns++] = g;
        }
    }
    while (nl > 0) {
        z->prob[large[--nl]] = 1.0;
    }
    while (ns > 0) {
        z->prob[small[--ns]] = 1.0; /* rounding leftovers */
    }
    esc_free(w);
    esc_free(small);
    esc_free(large);
}

static void
s_alias_fini(struct g_alias *z)
{
    esc_free(z->prob);
    esc_free(z->alias);
}

static size_t
s_pick(const struct g_alias *z)
{
    size_t i = (size_t)(s_unif() * (double)z->n);

    return s_unif() < z->prob[i] ? i : z->alias[i];
}

static void
s_list_push(struct g_list *l, const char *s)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 1024;
        l->v = esc_realloc(l->v, l->cap * sizeof(*l->v));
    }
    l->v[l->n++] = s;
}

static void
s_lines_push(struct g_lines *l, uint32_t v)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 256;
        l->v = esc_realloc(l->v, l->cap * sizeof(*l->v));
    }
    l->v[l->n++] = v;
}

static int
s_lang_index(const char *s)
{
    int i;

    for (i = 0; i < G_LANGS; i++) {
        if (strcmp(s, s_lang_names[i]) == 0) {
            return i;
        }
    }
    return -1;
}

/* Splits line at tabs into f[0..max); returns the number of fields. */
static int
s_fields(char *line, char **f, int max)
{
    int n = 0;
    char *p = line;

    while (n < max) {
        char *tab = strchr(p, '\t');

        f[n++] = p;
        if (tab == NULL) {
            break;
        }
        *tab = '\0';
        p = tab + 1;
    }
    return n;
}

static int
s_vocab_load(struct g_vocab *v, const char *path)
{
    FILE *f = fopen(path, "rb");
    long size;
    char *line;
    size_t lineno = 0;
    int i;

    memset(v, 0, sizeof(*v));
    if (f == NULL) {
        esc_log_errno("open vocabulary");
        return -1;
    }
    size = fseek(f, 0, SEEK_END) == 0 ? ftell(f) : -1;
    if (size < 0 || fseek(f, 0, SEEK_SET) != 0) {
        esc_log_errno("seek vocabulary");
        fclose(f);
        return -1;
    }
    v->data = esc_malloc((size_t)size + 1);
    if (fread(v->data, 1, (size_t)size, f) != (size_t)size) {
        esc_log_errno("read vocabulary");
        fclose(f);
        return -1;
    }
    fclose(f);
    v->data[size] = '\0';
    line = v->data;
    while (*line != '\0') {
        char *nl = strchr(line, '\n');
        char *fld[8];
        int nf;
        int li;

        lineno++;
        if (nl != NULL) {
            *nl = '\0';
        }
        nf = s_fields(line, fld, 8);
        li = nf >= 2 ? s_lang_index(fld[1]) : -1;
        if (nf == 3 && fld[0][0] == 'w' && li >= 0) {
            s_list_push(&v->lang[li].words, fld[2]);
        }
        else if (nf == 3 && fld[0][0] == 't' && li >= 0) {
            s_list_push(&v->lang[li].tags, fld[2]);
        }
        else if (nf == 3 && fld[0][0] == 'f' && li >= 0) {
            int64_t n;

            if (esc_parse_i64(fld[2], 0, 100000, &n) != 0) {
                esc_log_error("bad vocabulary line line=%zu", lineno);
                return -1;
            }
            v->lang[li].n_func = (size_t)n;
        }
        else if (nf == 7 && fld[0][0] == 'a') {
            struct g_author *a;
            int64_t n;

            if (esc_parse_i64(fld[6], 0, INT64_MAX, &n) != 0) {
                esc_log_error("bad vocabulary line line=%zu", lineno);
                return -1;
            }
            if (v->n_authors == v->cap_authors) {
                v->cap_authors = v->cap_authors ? v->cap_authors * 2 : 1024;
                v->authors = esc_realloc(v->authors, v->cap_authors * sizeof(*v->authors));
            }
            a = &v->authors[v->n_authors++];
            a->platform = fld[2];
            a->handle = fld[3];
            a->user = fld[4];
            a->name = fld[5];
            a->followers = n;
        }
        else if (nf == 3 && fld[0][0] == 'e') {
            s_list_push(&v->emoji, fld[2]);
        }
        else if (nf == 3 && fld[0][0] == 's') {
            s_list_push(&v->sites, fld[2]);
        }
        else if (nf == 4 && fld[0][0] == 'c') {
            for (i = 0; i < C_N; i++) {
                if (strcmp(fld[2], s_canary_names[i]) == 0) {
                    v->canary[i] = fld[3];
                }
            }
        }
        else if (line[0] != '\0') {
            esc_log_error("bad vocabulary line line=%zu", lineno);
            return -1;
        }
        if (nl == NULL) {
            break;
        }
        line = nl + 1;
    }
    for (i = 0; i < G_LANGS; i++) {
        if (v->lang[i].words.n < 2100 || v->lang[i].tags.n == 0) {
            esc_log_error("vocabulary too small lang=%s", s_lang_names[i]);
            return -1;
        }
        s_alias_init(&v->lang[i].word_z, v->lang[i].words.n, 1.0);
        s_alias_init(&v->lang[i].tag_z, v->lang[i].tags.n, 0.9);
    }
    for (i = 0; i < C_N; i++) {
        if (v->canary[i] == NULL) {
            esc_log_error("vocabulary lacks canary name=%s", s_canary_names[i]);
            return -1;
        }
    }
    if (v->n_authors == 0 || v->emoji.n == 0 || v->sites.n == 0) {
        esc_log_error("vocabulary lacks authors, emoji or sites");
        return -1;
    }
    s_alias_init(&v->author_z, v->n_authors, 0.8);
    return 0;
}

static void
s_vocab_fini(struct g_vocab *v)
{
    int i;

    for (i = 0; i < G_LANGS; i++) {
        esc_free(v->lang[i].words.v);
        s_alias_fini(&v->lang[i].word_z);
        esc_free(v->lang[i].tags.v);
        s_alias_fini(&v->lang[i].tag_z);
    }
    esc_free(v->authors);
    s_alias_fini(&v->author_z);
    esc_free(v->emoji.v);
    esc_free(v->sites.v);
    esc_free(v->data);
}

/* Event time: quantile u of the span, following the hourly weights (Lima time). */
struct g_tmap {
    double *cum; /* cum[h] = weight of hours [0, h) */
    size_t hours;
    int64_t start_s;
};

static void
s_tmap_init(struct g_tmap *t, int64_t start_s, double days)
{
    size_t h;

    t->hours = (size_t)ceil(days * 24.0);
    t->start_s = start_s;
    t->cum = esc_malloc((t->hours + 1) * sizeof(*t->cum));
    t->cum[0] = 0;
    for (h = 0; h < t->hours; h++) {
        int64_t local = ((int64_t)h + 24 + G_LIMA_OFFSET_H + start_s / 3600) % 24;

        t->cum[h + 1] = t->cum[h] + s_hour_w[local];
    }
}

static double
s_tmap_at(const struct g_tmap *t, double u)
{
    double x = u * t->cum[t->hours];
    size_t lo = 0;
    size_t hi = t->hours - 1;

    while (lo < hi) {
        size_t mid = lo + (hi - lo + 1) / 2;

        if (t->cum[mid] <= x) {
            lo = mid;
        }
        else {
            hi = mid - 1;
        }
    }
    return (double)t->start_s +
           ((double)lo + (x - t->cum[lo]) / (t->cum[lo + 1] - t->cum[lo])) * 3600.0;
}

/* Output buffer with printf-style appends. */
struct g_buf {
    char *p;
    size_t len;
    size_t cap;
};

static void
s_buf_reserve(struct g_buf *b, size_t more)
{
    if (b->len + more + 1 > b->cap) {
        while (b->len + more + 1 > b->cap) {
            b->cap = b->cap ? b->cap * 2 : 8192;
        }
        b->p = esc_realloc(b->p, b->cap);
    }
}

static void
s_buf_add(struct g_buf *b, const char *s, size_t n)
{
    s_buf_reserve(b, n);
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void
s_buf_str(struct g_buf *b, const char *s)
{
    s_buf_add(b, s, strlen(s));
}

static void s_buf_fmt(struct g_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
s_buf_fmt(struct g_buf *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    s_buf_reserve(b, 256);
    va_start(ap, fmt);
    n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    if ((size_t)n >= b->cap - b->len) {
        s_buf_reserve(b, (size_t)n);
        va_start(ap, fmt);
        vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
        va_end(ap);
    }
    b->len += (size_t)n;
}

static size_t
s_chars(const char *s, size_t n)
{
    size_t c = 0;
    size_t i;

    for (i = 0; i < n; i++) {
        if (((unsigned char)s[i] & 0xC0) != 0x80) {
            c++;
        }
    }
    return c;
}

/* Byte offset of the end of the first max code points of s[0..n). */
static size_t
s_cut(const char *s, size_t n, size_t max)
{
    size_t c = 0;
    size_t i;

    for (i = 0; i < n; i++) {
        if (((unsigned char)s[i] & 0xC0) != 0x80) {
            if (c == max) {
                return i;
            }
            c++;
        }
    }
    return n;
}

/* Appends s with its first letter in upper case (ASCII and the Latin-1 letters). */
static void
s_add_cap(struct g_buf *b, const char *s)
{
    unsigned char c0 = (unsigned char)s[0];

    if (c0 >= 'a' && c0 <= 'z') {
        char up = (char)(c0 - 32);

        s_buf_add(b, &up, 1);
        s_buf_str(b, s + 1);
        return;
    }
    if (c0 == 0xC3 && (unsigned char)s[1] >= 0xA0 && (unsigned char)s[1] <= 0xBE &&
        (unsigned char)s[1] != 0xB7) {
        char up[2] = { (char)0xC3, (char)((unsigned char)s[1] - 0x20) };

        s_buf_add(b, up, 2);
        s_buf_str(b, s + 2);
        return;
    }
    s_buf_str(b, s);
}

/* Upper-cases p[0..n) in place (ASCII and Latin-1 letters; other bytes unchanged). */
static void
s_upper(char *p, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];

        if (c >= 'a' && c <= 'z') {
            p[i] = (char)(c - 32);
        }
        else if (c == 0xC3 && i + 1 < n && (unsigned char)p[i + 1] >= 0xA0 &&
                 (unsigned char)p[i + 1] <= 0xBE && (unsigned char)p[i + 1] != 0xB7) {
            p[i + 1] = (char)((unsigned char)p[i + 1] - 0x20);
            i++;
        }
    }
}

/* Drops the accents of Latin-1 vowels and ç in p[0..n) (ñ kept); returns the new length. */
static size_t
s_strip(char *p, size_t n)
{
    /* Second byte after 0xC3, minus 0x80 -> ASCII replacement, or 0 to keep. */
    static const char map[64] = {
        [0x00] = 'A', [0x01] = 'A', [0x02] = 'A', [0x03] = 'A', [0x07] = 'C',
        [0x08] = 'E', [0x09] = 'E', [0x0A] = 'E', [0x0B] = 'E', [0x0C] = 'I', [0x0D] = 'I',
        [0x0E] = 'I', [0x0F] = 'I', [0x12] = 'O', [0x13] = 'O', [0x14] = 'O', [0x15] = 'O',
        [0x19] = 'U', [0x1A] = 'U', [0x1B] = 'U', [0x1C] = 'U', [0x20] = 'a', [0x21] = 'a',
        [0x22] = 'a', [0x23] = 'a', [0x27] = 'c', [0x28] = 'e', [0x29] = 'e', [0x2A] = 'e',
        [0x2B] = 'e', [0x2C] = 'i', [0x2D] = 'i', [0x2E] = 'i', [0x2F] = 'i', [0x32] = 'o',
        [0x33] = 'o', [0x34] = 'o', [0x35] = 'o', [0x39] = 'u', [0x3A] = 'u', [0x3B] = 'u',
        [0x3C] = 'u',
    };
    size_t i;
    size_t o = 0;

    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];

        if (c == 0xC3 && i + 1 < n) {
            unsigned char d = (unsigned char)p[i + 1];

            if (d >= 0x80 && d <= 0xBF && map[d - 0x80] != 0) {
                p[o++] = map[d - 0x80];
                i++;
                continue;
            }
        }
        p[o++] = (char)c;
    }
    return o;
}

static int
s_has(const char *hay, size_t n, const char *needle)
{
    return memmem(hay, n, needle, strlen(needle)) != NULL;
}

struct g_shard {
    const struct g_opts *o;
    const struct g_vocab *v;
    struct g_tmap tmap;
    struct g_lines hits[T_N][2]; /* [topic][0: keyword semantics, 1: query semantics] */
    int64_t lang_count[G_LANGS];
    size_t chars_min;
    size_t chars_max;
    double chars_sum;
    uint64_t bytes;
};

/* Renders head + tokens + end punctuation + tail into text; returns its length in chars. */
static size_t
s_render(struct g_buf *text, const char *head, const struct g_tok *t, size_t nt, int q_open,
         const char *punct, const char *const *tail, size_t ntail, int transform)
{
    size_t i;
    size_t from;

    text->len = 0;
    s_buf_reserve(text, 0);
    text->p[0] = '\0';
    if (head[0] != '\0') {
        s_buf_str(text, head);
        s_buf_add(text, " ", 1);
    }
    from = text->len;
    if (q_open) {
        s_buf_str(text, "¿");
    }
    for (i = 0; i < nt; i++) {
        if (i > 0) {
            s_buf_add(text, " ", 1);
        }
        if (t[i].cap) {
            s_add_cap(text, t[i].s);
        }
        else {
            s_buf_str(text, t[i].s);
        }
        if (t[i].comma) {
            s_buf_add(text, ",", 1);
        }
    }
    s_buf_str(text, punct);
    if (transform == 1) {
        s_upper(text->p + from, text->len - from);
    }
    else if (transform == 2) {
        text->len = from + s_strip(text->p + from, text->len - from);
        text->p[text->len] = '\0';
    }
    for (i = 0; i < ntail; i++) {
        s_buf_add(text, " ", 1);
        s_buf_str(text, tail[i]);
    }
    return s_chars(text->p, text->len);
}

static void
s_post(struct g_shard *sh, int64_t j, struct g_buf *out, struct g_buf *text)
{
    const struct g_opts *o = sh->o;
    const struct g_vocab *v = sh->v;
    int64_t i = j * o->shards + o->shard;
    double u = s_unif();
    int li = u < s_lang_cum[0] ? 0 : (u < s_lang_cum[1] ? 1 : 2);
    const struct g_lang *L = &v->lang[li];
    struct g_tok tok[G_TOKS_MAX];
    const char *block[16];
    size_t nblock = 0;
    size_t nt;
    size_t k;
    int64_t target;
    int flag_kw[T_N] = { 0 };
    int flag_q[T_N] = { 0 };
    int topic = -1;
    const char *tags[3];
    size_t ntags = 0;
    const struct g_author *ments[2];
    size_t nments = 0;
    char head[256];
    size_t hl = 0;
    char tagbuf[512];
    char urlbuf[128];
    const char *tail[3];
    size_t ntail = 0;
    const char *punct = "";
    int q_open = 0;
    int transform = 0;
    size_t chars;
    const struct g_author *a;
    char pid[160];
    char url[256];
    char when[64];
    double ts;
    int64_t sec;
    struct tm tm;
    int64_t likes;
    int64_t reposts;
    int64_t replies;
    int lang_hint;

    sh->lang_count[li]++;
    u = s_unif();
    if (u < 0.35) {
        target = s_range(40, 90);
    }
    else if (u < 0.8) {
        target = s_range(90, 170);
    }
    else {
        target = s_range(170, 250);
    }
    nt = (size_t)(target / 7 > 4 ? target / 7 : 4);
    for (k = 0; k < nt; k++) {
        tok[k].s = L->words.v[s_pick(&L->word_z)];
        tok[k].comma = 0;
        tok[k].cap = 0;
    }
    tok[0].cap = 1;
    if (s_unif() < 0.3) {
        tok[s_range(2, (int64_t)nt - 1) - 1].comma = 1;
    }
    if (s_unif() < 0.25) {
        size_t at = (size_t)s_range(1, (int64_t)nt);

        memmove(&tok[at + 1], &tok[at], (nt - at) * sizeof(tok[0]));
        tok[at].s = v->emoji.v[s_range(0, (int64_t)v->emoji.n - 1)];
        tok[at].comma = 0;
        tok[at].cap = 0;
        nt++;
    }
    /* Canaries: contiguous blocks, so nothing lands between their words. */
    u = s_unif();
    if (u < G_P_CANARY) {
        block[nblock++] = v->canary[C_PLAIN];
        topic = T_PLAIN;
        flag_kw[T_PLAIN] = flag_q[T_PLAIN] = 1;
    }
    else if (u < 2 * G_P_CANARY) {
        block[nblock++] = v->canary[C_NOT];
        topic = T_NOT;
        if (s_unif() < G_P_VETO_WITH_BETA) {
            size_t at = (size_t)s_range(0, (int64_t)nt);

            memmove(&tok[at + 1], &tok[at], (nt - at) * sizeof(tok[0]));
            tok[at].s = v->canary[C_VETO];
            tok[at].comma = 0;
            tok[at].cap = 0;
            nt++;
        }
    }
    else if (u < 3 * G_P_CANARY) {
        int near = s_unif() < 0.5;
        int64_t gap = near ? s_range(0, G_NEAR_N - 1) : s_range(G_NEAR_N + 3, G_NEAR_N + 8);
        int rev = s_unif() < 0.5;

        block[nblock++] = v->canary[rev ? C_NEAR_B : C_NEAR_A];
        for (k = 0; k < (size_t)gap; k++) {
            block[nblock++] = L->words.v[s_range(60, 1999)];
        }
        block[nblock++] = v->canary[rev ? C_NEAR_A : C_NEAR_B];
        topic = T_NEAR;
        flag_kw[T_NEAR] = 1;
        flag_q[T_NEAR] = near;
    }
    else if (u < 4 * G_P_CANARY) {
        int64_t form = s_range(0, 2);

        if (form == 0) {
            block[nblock++] = v->canary[C_PHRASE_A];
            block[nblock++] = v->canary[C_PHRASE_B];
        }
        else if (form == 1) {
            block[nblock++] = v->canary[C_PHRASE_B];
            block[nblock++] = v->canary[C_PHRASE_A];
        }
        else {
            block[nblock++] = v->canary[C_PHRASE_A];
            block[nblock++] = L->words.v[s_range(60, 1999)];
            block[nblock++] = v->canary[C_PHRASE_B];
        }
        topic = T_PHRASE;
        flag_kw[T_PHRASE] = flag_q[T_PHRASE] = form == 0;
    }
    else if (u < 4 * G_P_CANARY + G_P_VETO_ALONE) {
        size_t at = (size_t)s_range(0, (int64_t)nt);

        memmove(&tok[at + 1], &tok[at], (nt - at) * sizeof(tok[0]));
        tok[at].s = v->canary[C_VETO];
        tok[at].comma = 0;
        tok[at].cap = 0;
        nt++;
    }
    if (nblock > 0) {
        size_t at = (size_t)s_range(0, (int64_t)nt);

        memmove(&tok[at + nblock], &tok[at], (nt - at) * sizeof(tok[0]));
        for (k = 0; k < nblock; k++) {
            tok[at + k].s = block[k];
            tok[at + k].comma = 0;
            tok[at + k].cap = 0;
        }
        nt += nblock;
    }

    /* Hashtags, mentions, links: before or after the words, never between them. */
    if (s_unif() < 0.3) {
        int64_t want = s_range(1, 3);
        int64_t w;

        for (w = 0; w < want; w++) {
            const char *t = L->tags.v[s_pick(&L->tag_z)];
            size_t d;

            for (d = 0; d < ntags && tags[d] != t; d++) {
            }
            if (d == ntags) {
                tags[ntags++] = t;
            }
        }
    }
    if (s_unif() < 0.15) {
        int64_t want = s_range(1, 2);
        int64_t w;

        for (w = 0; w < want; w++) {
            const struct g_author *m = &v->authors[s_pick(&v->author_z)];

            if (nments == 0 || ments[0] != m) {
                ments[nments++] = m;
            }
        }
    }
    head[0] = '\0';
    for (k = 0; k < nments; k++) {
        hl += (size_t)snprintf(head + hl, sizeof(head) - hl, "%s@%s", k ? " " : "", ments[k]->user);
    }
    u = s_unif();
    if (li == 0 && u < 0.1) {
        q_open = 1;
        punct = "?";
    }
    else if (u < 0.25) {
        punct = "!";
    }
    else if (u < 0.5) {
        punct = ".";
    }
    if (nblock == 0) {
        u = s_unif();
        if (u < 0.03) {
            transform = 1;
        }
        else if (u < 0.11) {
            transform = 2;
        }
    }
    if (ntags > 0) {
        size_t tl = 0;

        for (k = 0; k < ntags; k++) {
            tl += (size_t)snprintf(tagbuf + tl, sizeof(tagbuf) - tl, "%s#%s", k ? " " : "",
                                   tags[k]);
        }
        tail[ntail++] = tagbuf;
    }
    if (s_unif() < 0.25) {
        snprintf(urlbuf, sizeof(urlbuf), "https://%s/%s/%lld",
                 v->sites.v[s_range(0, (int64_t)v->sites.n - 1)], li == 1 ? "story" : "nota",
                 (long long)s_range(100000, 999999));
        tail[ntail++] = urlbuf;
    }
    if (s_unif() < 0.3) {
        tail[ntail++] = v->emoji.v[s_range(0, (int64_t)v->emoji.n - 1)];
    }

    /* Keep 40..280 characters without cutting a canary block: drop words from the end. */
    chars = s_render(text, head, tok, nt, q_open, punct, tail, ntail, transform);
    while (chars > G_TEXT_MAX) {
        size_t d = nt;

        while (d > 1) {
            size_t b;
            int in_block = 0;

            for (b = 0; b < nblock; b++) {
                in_block |= tok[d - 1].s == block[b];
            }
            if (!in_block) {
                break;
            }
            d--;
        }
        if (d <= 1 || nt <= 2) {
            size_t cut;

            ntail = ntail > 0 ? ntail - 1 : 0;
            s_render(text, head, tok, nt, q_open, punct, tail, ntail, transform);
            cut = s_cut(text->p, text->len, G_TEXT_MAX);
            text->len = cut;
            text->p[cut] = '\0';
            chars = s_chars(text->p, text->len);
            break;
        }
        memmove(&tok[d - 1], &tok[d], (nt - d) * sizeof(tok[0]));
        nt--;
        chars = s_render(text, head, tok, nt, q_open, punct, tail, ntail, transform);
    }
    while (chars < G_TEXT_MIN) {
        s_buf_add(text, " ", 1);
        s_buf_str(text, L->words.v[s_range(0, 300)]);
        chars = s_chars(text->p, text->len);
    }
    if (nblock > 0) {
        char bs[512];
        size_t bl = 0;

        for (k = 0; k < nblock; k++) {
            bl += (size_t)snprintf(bs + bl, sizeof(bs) - bl, "%s%s", k ? " " : "", block[k]);
        }
        if (!s_has(text->p, text->len, bs)) {
            topic = -1; /* cut by the length limit: not planted after all */
        }
    }
    if (topic == T_NOT) {
        flag_kw[T_NOT] = 1;
        flag_q[T_NOT] = !s_has(text->p, text->len, v->canary[C_VETO]);
    }
    if (topic >= 0) {
        if (flag_kw[topic]) {
            s_lines_push(&sh->hits[topic][0], (uint32_t)j);
        }
        if (flag_q[topic]) {
            s_lines_push(&sh->hits[topic][1], (uint32_t)j);
        }
    }
    sh->chars_min = chars < sh->chars_min ? chars : sh->chars_min;
    sh->chars_max = chars > sh->chars_max ? chars : sh->chars_max;
    sh->chars_sum += (double)chars;

    /* The post's other fields. */
    a = &v->authors[s_pick(&v->author_z)];
    if (strcmp(a->platform, "mastodon") == 0) {
        const char *host = strrchr(a->handle, '@');

        snprintf(pid, sizeof(pid), "%lld", 113500000000000000LL + (long long)i);
        snprintf(url, sizeof(url), "https://%s/@%s/%s", host ? host + 1 : "mastodon.social",
                 a->user, pid);
    }
    else if (strcmp(a->platform, "bluesky") == 0) {
        snprintf(pid, sizeof(pid), "at://did:plc:%s/app.bsky.feed.post/3l%011llx", a->user,
                 (unsigned long long)i);
        snprintf(url, sizeof(url), "https://bsky.app/profile/%s/post/3l%011llx", a->handle,
                 (unsigned long long)i);
    }
    else if (strcmp(a->platform, "reddit") == 0) {
        snprintf(pid, sizeof(pid), "t3_b%09llx", (unsigned long long)i);
        snprintf(url, sizeof(url), "https://www.reddit.com/r/all/comments/b%09llx/",
                 (unsigned long long)i);
    }
    else {
        snprintf(pid, sizeof(pid), "https://%s/n/%lld", a->handle, (long long)i);
        esc_strlcpy(url, pid, sizeof(url));
    }
    ts = s_tmap_at(&sh->tmap, ((double)i + 0.5) / (double)o->lines) +
         (s_unif() * 2 - 1) * G_JITTER_S;
    sec = (int64_t)ts;
    {
        time_t tt = (time_t)sec;

        gmtime_r(&tt, &tm);
    }
    snprintf(when, sizeof(when), "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
    likes = (int64_t)(pow(s_unif(), 4) * sqrt((double)a->followers));
    reposts = (int64_t)((double)likes * s_unif() * 0.3);
    replies = (int64_t)((double)likes * s_unif() * 0.2);
    lang_hint = s_unif() < 0.6;

    s_buf_reserve(out, G_LINE_MAX);
    s_buf_fmt(out,
              "{\"id\":\"%s\",\"platform\":\"%s\",\"author\":{\"handle\":\"%s\",\"name\":\"%s\","
              "\"followers\":%lld},\"text\":\"%s\"%s%s%s,\"url\":\"%s\",\"created_at\":\"%s\","
              "\"likes\":%lld,\"reposts\":%lld,\"replies\":%lld,\"hashtags\":[",
              pid, a->platform, a->handle, a->name, (long long)a->followers, text->p,
              lang_hint ? ",\"lang\":\"" : "", lang_hint ? s_lang_names[li] : "",
              lang_hint ? "\"" : "", url, when, (long long)likes, (long long)reposts,
              (long long)replies);
    for (k = 0; k < ntags; k++) {
        s_buf_fmt(out, "%s\"%s\"", k ? "," : "", tags[k]);
    }
    s_buf_str(out, "],\"mentions\":[");
    for (k = 0; k < nments; k++) {
        s_buf_fmt(out, "%s\"%s\"", k ? "," : "", ments[k]->user);
    }
    s_buf_str(out, "]}\n");
}

static void
s_write_lines(FILE *f, const struct g_lines *l)
{
    size_t i;

    fputc('[', f);
    for (i = 0; i < l->n; i++) {
        fprintf(f, "%s%u", i ? "," : "", l->v[i]);
    }
    fputc(']', f);
}

static int
s_write_meta(const struct g_shard *sh, const char *path, int64_t n_lines, double seconds)
{
    FILE *f = fopen(path, "w");
    const char *base = strrchr(sh->o->out, '/');
    int t;
    int li;

    if (f == NULL) {
        esc_log_errno("open meta");
        return -1;
    }
    fprintf(f, "{\"path\": \"%s\", \"lines\": %lld, \"bytes\": %llu, \"chars_min\": %zu, "
               "\"chars_max\": %zu, \"chars_mean\": %.1f, \"seconds\": %.2f, \"languages\": {",
            base ? base + 1 : sh->o->out, (long long)n_lines, (unsigned long long)sh->bytes,
            n_lines ? sh->chars_min : 0, sh->chars_max,
            n_lines ? sh->chars_sum / (double)n_lines : 0.0, seconds);
    for (li = 0; li < G_LANGS; li++) {
        fprintf(f, "%s\"%s\": %lld", li ? ", " : "", s_lang_names[li],
                (long long)sh->lang_count[li]);
    }
    fputs("}, \"canary_lines\": {", f);
    for (t = 0; t < T_N; t++) {
        fprintf(f, "%s\"%s\": {\"keywords\": ", t ? ", " : "", s_topic_names[t]);
        s_write_lines(f, &sh->hits[t][0]);
        fputs(", \"query\": ", f);
        s_write_lines(f, &sh->hits[t][1]);
        fputc('}', f);
    }
    fputs("}}\n", f);
    if (fclose(f) != 0) {
        esc_log_errno("write meta");
        return -1;
    }
    return 0;
}

static int
s_usage(void)
{
    fprintf(stderr, "usage: bench_gen_corpus --vocab FILE --out FILE --meta FILE --lines N "
                    "--shards S --shard K --seed SEED --days D --start-s UNIX_S\n"
                    "(run through bench/corpus/gen_corpus.py)\n");
    return 2;
}

static int
s_args(int argc, char **argv, struct g_opts *o)
{
    int i;

    memset(o, 0, sizeof(*o));
    o->shards = 1;
    o->days = 7.0;
    for (i = 1; i + 1 < argc; i += 2) {
        const char *k = argv[i];
        const char *val = argv[i + 1];
        int bad = 0;

        if (strcmp(k, "--vocab") == 0) {
            o->vocab = val;
        }
        else if (strcmp(k, "--out") == 0) {
            o->out = val;
        }
        else if (strcmp(k, "--meta") == 0) {
            o->meta = val;
        }
        else if (strcmp(k, "--lines") == 0) {
            bad = esc_parse_i64(val, 1, 2000000000, &o->lines);
        }
        else if (strcmp(k, "--shards") == 0) {
            bad = esc_parse_i64(val, 1, 64, &o->shards);
        }
        else if (strcmp(k, "--shard") == 0) {
            bad = esc_parse_i64(val, 0, 63, &o->shard);
        }
        else if (strcmp(k, "--seed") == 0) {
            bad = esc_parse_i64(val, 0, INT64_MAX, &o->seed);
        }
        else if (strcmp(k, "--start-s") == 0) {
            bad = esc_parse_i64(val, 0, INT64_MAX / 2, &o->start_s);
        }
        else if (strcmp(k, "--days") == 0) {
            char *end;

            o->days = strtod(val, &end);
            bad = *end != '\0' || !(o->days > 0 && o->days < 3650);
        }
        else {
            bad = 1;
        }
        if (bad) {
            fprintf(stderr, "bench_gen_corpus: bad option %s %s\n", k, val);
            return -1;
        }
    }
    if (i != argc || o->vocab == NULL || o->out == NULL || o->meta == NULL || o->lines == 0 ||
        o->shard >= o->shards) {
        return -1;
    }
    return 0;
}

int
main(int argc, char **argv)
{
    struct g_opts o;
    struct g_vocab v;
    struct g_shard sh;
    struct g_buf out = { 0 };
    struct g_buf text = { 0 };
    FILE *f;
    int64_t n_lines;
    int64_t j;
    uint64_t seed;
    int64_t t0 = esc_mono_ms();
    int rc = 1;
    int t;

    esc_log_init("bench-gen-corpus", ESC_LOG_INFO);
    if (s_args(argc, argv, &o) != 0) {
        return s_usage();
    }
    if (s_vocab_load(&v, o.vocab) != 0) {
        s_vocab_fini(&v);
        return 1;
    }
    memset(&sh, 0, sizeof(sh));
    sh.o = &o;
    sh.v = &v;
    sh.chars_min = SIZE_MAX;
    s_tmap_init(&sh.tmap, o.start_s, o.days);
    seed = (uint64_t)o.seed * 1000003ULL + (uint64_t)o.shard;
    for (t = 0; t < 4; t++) {
        s_rs[t] = s_splitmix(&seed);
    }
    n_lines = (o.lines - o.shard + o.shards - 1) / o.shards;
    f = fopen(o.out, "wb");
    if (f == NULL) {
        esc_log_errno("open output");
        goto out;
    }
    for (j = 0; j < n_lines; j++) {
        s_post(&sh, j, &out, &text);
        if (out.len >= G_OUT_FLUSH) {
            if (fwrite(out.p, 1, out.len, f) != out.len) {
                esc_log_errno("write output");
                fclose(f);
                goto out;
            }
            sh.bytes += out.len;
            out.len = 0;
        }
    }
    if (out.len > 0 && fwrite(out.p, 1, out.len, f) != out.len) {
        esc_log_errno("write output");
        fclose(f);
        goto out;
    }
    sh.bytes += out.len;
    if (fclose(f) != 0) {
        esc_log_errno("close output");
        goto out;
    }
    if (s_write_meta(&sh, o.meta, n_lines, (double)(esc_mono_ms() - t0) / 1000.0) != 0) {
        goto out;
    }
    rc = 0;
out:
    for (t = 0; t < T_N; t++) {
        esc_free(sh.hits[t][0].v);
        esc_free(sh.hits[t][1].v);
    }
    esc_free(sh.tmap.cum);
    esc_free(out.p);
    esc_free(text.p);
    s_vocab_fini(&v);
    return rc;
}
