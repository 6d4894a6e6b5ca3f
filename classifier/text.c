#define ESC_LOG_MODULE "text"
/* Normalisation and tokenisation of post text for the keyword matcher. The input is decoded
 * once into code points (invalid bytes become U+FFFD and are counted; the apostrophe variants
 * U+2018, U+2019, U+02BC, U+FF07 become U+0027). Tokens are found on those code points, with
 * the original case still visible so hashtags can be split at camel-case and letter/digit
 * boundaries; then each token span is normalised on its own: NFKC + Unicode case folding via
 * utf8proc_decompose_char, removal of the combining diacritical marks (accent folding,
 * keeping U+0303 after 'n' so ñ survives unless fold_enye), canonical ordering and
 * composition. Pure-ASCII spans, the common case, take a lower-casing fast path. Each token
 * remembers its code-point span, so the un-folded form needed by {Exact} queries is computed
 * only when asked for (cls_text_tok_raw). URLs become link tokens ("host/path") for site:
 * queries; post fields (hashtags, mentions, author, url, language, platform) are appended as
 * meta tokens after the text's, their code points after the text's. Two fast paths keep the
 * common case cheap: class tables for ASCII and for Latin-1 and Latin Extended-A/B, and a
 * table of the folded form of every letter and digit of those, computed once by the general
 * path itself (one such character never composes with its neighbours, so folding it alone
 * gives the same bytes). All buffers live in the cls_text_t and only grow, so a warmed-up
 * tokeniser does not allocate. Not thread-safe: one cls_text_t per thread (the shared tables
 * are built once, under pthread_once). */
#include <pthread.h>
#include <string.h>

#include <utf8proc.h>

#include "escucha/esc_log.h"
#include "escucha/esc_mem.h"
#include "escucha/esc_util.h"

#include "text.h"

#define S_REPLACEMENT 0xFFFD
#define S_DECOMP_RESERVE 32 /* free slots kept before decomposing one code point */
#define S_PARTS_MAX 64      /* parts a hashtag is split into, at most */
#define S_NFKC_CF (UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT | UTF8PROC_CASEFOLD | UTF8PROC_IGNORE)
#define S_LATIN_END 0x250   /* the fold table covers U+0080..U+024F */

/* Tokeniser classes of a code point. */
enum s_class {
    S_OTHER = 0, /* punctuation, symbols, emoji, U+FFFD: separates tokens */
    S_SPACE,     /* white space and control characters: also ends a URL */
    S_WORD,      /* letters, digits, connector punctuation ('_'): starts or continues a word */
    S_MARK,      /* combining marks and default-ignorables: continue a word, never start one */
    S_APOS,      /* U+0027 after unification: inside a word only */
    S_HASH,      /* '#' or U+FF03 */
    S_AT,        /* '@' or U+FF20 */
};

/* Case/kind of a base character, for hashtag splitting. */
enum s_case {
    S_C_NONE = 0,
    S_C_LOWER,
    S_C_UPPER,
    S_C_LETTER, /* letters without case (CJK, Arabic, ...) and modifier letters */
    S_C_DIGIT,
};

struct s_bytes {
    char *data;
    size_t len;
    size_t cap;
};

struct cls_text {
    int32_t *cps;            /* decoded input */
    size_t n_cps;
    size_t cap_cps;
    int32_t *w32;            /* scratch for the decomposition of one span */
    size_t cap_w32;
    struct s_bytes tok;      /* normalised token texts, back to back */
    struct s_bytes norm;     /* output of cls_text_normalize */
    struct s_bytes raw;      /* output of cls_text_tok_raw */
    int32_t *lk;             /* scratch: the code points of one link (host + path) */
    size_t cap_lk;
    size_t n_links;          /* link tokens in the current list */
    struct cls_token *toks;
    size_t n_toks;
    size_t cap_toks;
    uint32_t *by_pos;        /* main position -> token index, UINT32_MAX for a gap */
    size_t n_pos;
    size_t cap_pos;
    size_t invalid;          /* invalid UTF-8 bytes replaced */
    bool truncated;          /* input was cut at CLS_TEXT_MAX */
    bool no_links;           /* cls_text_set_links(false): no link tokens */
};

/* Folded form of one Latin letter or digit, as the general path gives it. */
struct s_latin {
    uint8_t len;  /* bytes in s; 0: not covered, use the general path */
    uint8_t enye; /* the result contains ñ */
    char s[6];
};

static struct s_latin s_latin_fold[2][S_LATIN_END - 0x80]; /* [fold_enye][cp - 0x80] */
static uint8_t s_latin_class[S_LATIN_END - 0x80]; /* s_class_slow of cp, [cp - 0x80] */
static pthread_once_t s_latin_once = PTHREAD_ONCE_INIT;

static void s_latin_init(void);

static const char *const s_kind_names[CLS_TOK_KINDS] = {
    [CLS_TOK_WORD] = "word",
    [CLS_TOK_HASHTAG] = "hashtag",
    [CLS_TOK_HASHPART] = "part",
    [CLS_TOK_MENTION] = "mention",
    [CLS_TOK_MENTIONPART] = "mention-part",
    [CLS_TOK_META_HASHTAG] = "meta-hashtag",
    [CLS_TOK_META_MENTION] = "meta-mention",
    [CLS_TOK_AUTHOR] = "author",
    [CLS_TOK_LINK] = "link",
    [CLS_TOK_LANG] = "lang",
    [CLS_TOK_PLATFORM] = "platform",
};

cls_text_t *
cls_text_new(void)
{
    ESC_ASSERT(pthread_once(&s_latin_once, s_latin_init) == 0);
    return esc_calloc(1, sizeof(cls_text_t));
}

void
cls_text_destroy(cls_text_t **self_p)
{
    cls_text_t *self;

    if (self_p == NULL || *self_p == NULL) {
        return;
    }
    self = *self_p;
    esc_free(self->cps);
    esc_free(self->w32);
    esc_free(self->tok.data);
    esc_free(self->norm.data);
    esc_free(self->raw.data);
    esc_free(self->lk);
    esc_free(self->toks);
    esc_free(self->by_pos);
    esc_free(self);
    *self_p = NULL;
}

const char *
cls_text_kind_name(enum cls_tok_kind kind)
{
    if ((unsigned)kind >= CLS_TOK_KINDS) {
        return "?";
    }
    return s_kind_names[kind];
}

/* ---------------------------------------------------------------------------------------------
 * Buffers
 */

static void *
s_grow(void *p, size_t *cap, size_t need, size_t elem)
{
    size_t ncap = *cap == 0 ? 64 : *cap;

    if (need <= *cap) {
        return p;
    }
    while (ncap < need) {
        ncap *= 2;
    }
    *cap = ncap;
    return esc_realloc(p, ncap * elem);
}

static void
s_bytes_reserve(struct s_bytes *b, size_t extra)
{
    b->data = s_grow(b->data, &b->cap, b->len + extra + 1, 1);
}

/* ---------------------------------------------------------------------------------------------
 * Decoding and classes
 */

static int32_t
s_unify(int32_t cp)
{
    if (cp == 0x2019 || cp == 0x2018 || cp == 0x02BC || cp == 0xFF07) {
        return '\'';
    }
    return cp;
}

/* Decodes s[0..len) and appends it to self->cps, repairing invalid sequences. Returns the
 * index of the first appended code point. Input past CLS_TEXT_MAX bytes is dropped (and
 * flagged in self->truncated). */
static size_t
s_decode(cls_text_t *self, const char *s, size_t len)
{
    const utf8proc_uint8_t *u = (const utf8proc_uint8_t *)s;
    size_t i = 0;
    size_t base = self->n_cps;
    size_t n = base;

    if (len > CLS_TEXT_MAX) {
        self->truncated = true;
        len = CLS_TEXT_MAX;
    }
    self->cps = s_grow(self->cps, &self->cap_cps, base + len + 1, sizeof(int32_t));
    while (i < len) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t r;
        uint64_t w;

        /* ASCII eight bytes at a time (a loop the compiler widens), then byte by byte */
        for (;;) {
            size_t k;

            if (len - i < 8) {
                break;
            }
            memcpy(&w, u + i, 8);
            if ((w & 0x8080808080808080ULL) != 0) {
                break;
            }
            for (k = 0; k < 8; k++) {
                self->cps[n + k] = u[i + k];
            }
            n += 8;
            i += 8;
        }
        while (i < len && u[i] < 0x80) {
            self->cps[n++] = u[i++];
        }
        if (i >= len) {
            break;
        }
        r = utf8proc_iterate(u + i, (utf8proc_ssize_t)(len - i), &cp);
        if (r <= 0) {
            self->cps[n++] = S_REPLACEMENT;
            self->invalid++;
            i++;
            continue;
        }
        self->cps[n++] = s_unify(cp);
        i += (size_t)r;
    }
    self->n_cps = n;
    return base;
}

/* Classes of the ASCII code points: letters, digits and '_' are words, '\'' an apostrophe,
 * '#' and '@' sigils, controls and ' ' space, the rest (punctuation, symbols) other. */
#define W S_WORD
#define P S_APOS
#define H S_HASH
#define A S_AT
#define S S_SPACE
#define O S_OTHER
static const uint8_t s_ascii_classes[128] = {
    S, S, S, S, S, S, S, S, S, S, S, S, S, S, S, S,
    S, S, S, S, S, S, S, S, S, S, S, S, S, S, S, S,
    S, O, O, H, O, O, O, P, O, O, O, O, O, O, O, O,
    W, W, W, W, W, W, W, W, W, W, O, O, O, O, O, O,
    A, W, W, W, W, W, W, W, W, W, W, W, W, W, W, W,
    W, W, W, W, W, W, W, W, W, W, W, O, O, O, O, W,
    O, W, W, W, W, W, W, W, W, W, W, W, W, W, W, W,
    W, W, W, W, W, W, W, W, W, W, W, O, O, O, O, S,
};
#undef W
#undef P
#undef H
#undef A
#undef S
#undef O

/* Class of a non-ASCII code point. */
static enum s_class
s_class_slow(int32_t cp)
{
    const utf8proc_property_t *prop;

    if (cp == 0xFF03) {
        return S_HASH;
    }
    if (cp == 0xFF20) {
        return S_AT;
    }
    if (cp == S_REPLACEMENT) {
        return S_OTHER;
    }
    prop = utf8proc_get_property(cp);
    switch (prop->category) {
    case UTF8PROC_CATEGORY_LU:
    case UTF8PROC_CATEGORY_LL:
    case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO:
    case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL:
    case UTF8PROC_CATEGORY_NO:
    case UTF8PROC_CATEGORY_PC:
        return S_WORD;
    case UTF8PROC_CATEGORY_MN:
    case UTF8PROC_CATEGORY_MC:
    case UTF8PROC_CATEGORY_ME:
        return S_MARK;
    case UTF8PROC_CATEGORY_ZS:
    case UTF8PROC_CATEGORY_ZL:
    case UTF8PROC_CATEGORY_ZP:
    case UTF8PROC_CATEGORY_CC:
        return S_SPACE;
    default:
        break;
    }
    return prop->ignorable ? S_MARK : S_OTHER;
}

/* Class of a code point: through a table below S_LATIN_END (the accented letters of the
 * Latin languages, filled by s_latin_init, which every cls_text_new runs first). */
static inline enum s_class
s_class(int32_t cp)
{
    if (cp < 0x80) {
        return (enum s_class)s_ascii_classes[cp];
    }
    if (cp < S_LATIN_END) {
        return (enum s_class)s_latin_class[cp - 0x80];
    }
    return s_class_slow(cp);
}

static enum s_case
s_case(int32_t cp)
{
    if (cp < 0x80) {
        if (cp >= 'a' && cp <= 'z') {
            return S_C_LOWER;
        }
        if (cp >= 'A' && cp <= 'Z') {
            return S_C_UPPER;
        }
        if (cp >= '0' && cp <= '9') {
            return S_C_DIGIT;
        }
        return S_C_NONE;
    }
    switch (utf8proc_category(cp)) {
    case UTF8PROC_CATEGORY_LL:
        return S_C_LOWER;
    case UTF8PROC_CATEGORY_LU:
    case UTF8PROC_CATEGORY_LT:
        return S_C_UPPER;
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO:
        return S_C_LETTER;
    case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL:
    case UTF8PROC_CATEGORY_NO:
        return S_C_DIGIT;
    default:
        break;
    }
    return S_C_NONE;
}

/* Combining marks removed by accent folding: the combining diacritical mark blocks used by
 * Latin, Greek and Cyrillic. Marks of other scripts (Indic vowel signs, ...) are kept. */
static bool
s_is_diacritic(int32_t cp)
{
    return (cp >= 0x0300 && cp <= 0x036F) || (cp >= 0x1AB0 && cp <= 0x1AFF)
        || (cp >= 0x1DC0 && cp <= 0x1DFF) || (cp >= 0x20D0 && cp <= 0x20FF)
        || (cp >= 0xFE20 && cp <= 0xFE2F);
}

/* ---------------------------------------------------------------------------------------------
 * Normalisation of one span
 */

/* Sorts runs of combining marks by combining class (stable), as NFD requires. */
static void
s_canonical_order(int32_t *w, size_t n)
{
    size_t pos = 0;

    while (n > 1 && pos < n - 1) {
        int c1 = utf8proc_get_property(w[pos])->combining_class;
        int c2 = utf8proc_get_property(w[pos + 1])->combining_class;

        if (c1 > c2 && c2 > 0) {
            int32_t tmp = w[pos];

            w[pos] = w[pos + 1];
            w[pos + 1] = tmp;
            if (pos > 0) {
                pos--;
            }
        }
        else {
            pos++;
        }
    }
}

/* The general path of s_norm_span: utf8proc decomposition (NFKC + case folding), removal of
 * the diacritics, canonical ordering, composition. */
static bool
s_norm_general(cls_text_t *self, const struct cls_text_opts *opts, const int32_t *cps, size_t n,
               struct s_bytes *out)
{
    size_t i;
    size_t wl = 0;
    size_t kept = 0;
    utf8proc_ssize_t r;
    int bound = 0;
    bool enye = false;

    for (i = 0; i < n; i++) {
        self->w32 = s_grow(self->w32, &self->cap_w32, wl + S_DECOMP_RESERVE, sizeof(int32_t));
        if (cps[i] < 0x80) {
            int32_t c = cps[i];

            self->w32[wl++] = c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c;
            continue;
        }
        r = utf8proc_decompose_char(cps[i], self->w32 + wl,
                                    (utf8proc_ssize_t)(self->cap_w32 - wl), S_NFKC_CF, &bound);
        if (r > (utf8proc_ssize_t)(self->cap_w32 - wl)) {
            self->w32 = s_grow(self->w32, &self->cap_w32, wl + (size_t)r, sizeof(int32_t));
            r = utf8proc_decompose_char(cps[i], self->w32 + wl,
                                        (utf8proc_ssize_t)(self->cap_w32 - wl), S_NFKC_CF,
                                        &bound);
        }
        if (r < 0) {
            self->w32[wl++] = S_REPLACEMENT;
            continue;
        }
        wl += (size_t)r;
    }
    for (i = 0; i < wl; i++) {
        int32_t c = s_unify(self->w32[i]); /* compatibility forms may decompose to U+02BC */

        if (s_is_diacritic(c)
            && (opts->fold_enye || c != 0x0303 || kept == 0 || self->w32[kept - 1] != 'n')) {
            continue;
        }
        self->w32[kept++] = c;
    }
    /* Ordered after the removal so that a removed mark of class 0 cannot leave the others
     * unsorted (normalising twice gives the same result). */
    s_canonical_order(self->w32, kept);
    r = utf8proc_normalize_utf32(self->w32, (utf8proc_ssize_t)kept, UTF8PROC_COMPOSE);
    ESC_ASSERT(r >= 0);
    s_bytes_reserve(out, (size_t)r * 4);
    for (i = 0; i < (size_t)r; i++) {
        enye = enye || self->w32[i] == 0xF1;
        out->len += (size_t)utf8proc_encode_char(self->w32[i],
                                                 (utf8proc_uint8_t *)out->data + out->len);
    }
    out->data[out->len] = '\0';
    return enye;
}

/* Fills the Latin class and fold tables (once per process). */
static void
s_latin_init(void)
{
    cls_text_t tmp;
    struct s_bytes out;
    int fe;
    int32_t cp;

    memset(&tmp, 0, sizeof(tmp));
    memset(&out, 0, sizeof(out));
    for (cp = 0x80; cp < S_LATIN_END; cp++) {
        s_latin_class[cp - 0x80] = (uint8_t)s_class_slow(cp);
    }
    for (fe = 0; fe < 2; fe++) {
        struct cls_text_opts o = { .fold_enye = fe != 0 };

        for (cp = 0x80; cp < S_LATIN_END; cp++) {
            struct s_latin *l = &s_latin_fold[fe][cp - 0x80];
            bool enye;

            if (s_class(cp) != S_WORD) {
                continue;
            }
            out.len = 0;
            enye = s_norm_general(&tmp, &o, &cp, 1, &out);
            if (out.len > 0 && out.len <= sizeof(l->s)) {
                memcpy(l->s, out.data, out.len);
                l->len = (uint8_t)out.len;
                l->enye = enye ? 1 : 0;
            }
        }
    }
    esc_free(out.data);
    esc_free(tmp.w32);
}

/* ASCII lower-cased (A-Z to a-z, the rest as is). */
static const char s_ascii_lower[128] = {
    0,   1,   2,   3,   4,   5,   6,   7,   8,   9,   10,  11,  12,  13,  14,  15,
    16,  17,  18,  19,  20,  21,  22,  23,  24,  25,  26,  27,  28,  29,  30,  31,
    ' ', '!', '"', '#', '$', '%', '&', '\'', '(', ')', '*', '+', ',', '-', '.', '/',
    '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', ':', ';', '<', '=', '>', '?',
    '@', 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k', 'l', 'm', 'n', 'o',
    'p', 'q', 'r', 's', 't', 'u', 'v', 'w', 'x', 'y', 'z', '[', '\\', ']', '^', '_',
    '`', 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k', 'l', 'm', 'n', 'o',
    'p', 'q', 'r', 's', 't', 'u', 'v', 'w', 'x', 'y', 'z', '{', '|', '}', '~', 127,
};

/* Appends the normalised form of cps[0..n) to out. Returns true when it contains ñ. */
static inline bool
s_norm_span(cls_text_t *self, const struct cls_text_opts *opts, const int32_t *cps, size_t n,
            struct s_bytes *out)
{
    const struct s_latin *tab = s_latin_fold[opts->fold_enye ? 1 : 0];
    size_t start = out->len;
    size_t i;
    bool enye = false;
    char *o;

    s_bytes_reserve(out, n * sizeof(tab[0].s));
    o = out->data + out->len;
    for (i = 0; i < n; i++) {
        int32_t c = cps[i];
        const struct s_latin *l;

        if (c < 0x80) {
            *o++ = s_ascii_lower[c];
            continue;
        }
        if (c >= S_LATIN_END || tab[c - 0x80].len == 0) {
            out->len = start;
            return s_norm_general(self, opts, cps, n, out);
        }
        l = &tab[c - 0x80];
        memcpy(o, l->s, sizeof(l->s));
        o += l->len;
        enye = enye || l->enye;
    }
    out->len = (size_t)(o - out->data);
    out->data[out->len] = '\0';
    return enye;
}

/* Appends cps[0..n) to out in NFC, without case or accent folding (the {Exact} form). */
static void
s_raw_span(cls_text_t *self, const int32_t *cps, size_t n, struct s_bytes *out)
{
    size_t i;
    size_t wl = 0;
    utf8proc_ssize_t r;
    int bound = 0;

    for (i = 0; i < n && cps[i] < 0x80; i++) {
    }
    if (i == n) {
        s_bytes_reserve(out, n);
        for (i = 0; i < n; i++) {
            out->data[out->len++] = (char)cps[i];
        }
        out->data[out->len] = '\0';
        return;
    }
    for (i = 0; i < n; i++) {
        self->w32 = s_grow(self->w32, &self->cap_w32, wl + S_DECOMP_RESERVE, sizeof(int32_t));
        r = utf8proc_decompose_char(cps[i], self->w32 + wl,
                                    (utf8proc_ssize_t)(self->cap_w32 - wl),
                                    UTF8PROC_DECOMPOSE | UTF8PROC_IGNORE, &bound);
        if (r > (utf8proc_ssize_t)(self->cap_w32 - wl)) {
            self->w32 = s_grow(self->w32, &self->cap_w32, wl + (size_t)r, sizeof(int32_t));
            r = utf8proc_decompose_char(cps[i], self->w32 + wl,
                                        (utf8proc_ssize_t)(self->cap_w32 - wl),
                                        UTF8PROC_DECOMPOSE | UTF8PROC_IGNORE, &bound);
        }
        if (r < 0) {
            self->w32[wl++] = S_REPLACEMENT;
            continue;
        }
        wl += (size_t)r;
    }
    s_canonical_order(self->w32, wl);
    r = utf8proc_normalize_utf32(self->w32, (utf8proc_ssize_t)wl, UTF8PROC_COMPOSE);
    ESC_ASSERT(r >= 0);
    s_bytes_reserve(out, (size_t)r * 4);
    for (i = 0; i < (size_t)r; i++) {
        out->len += (size_t)utf8proc_encode_char(self->w32[i],
                                                 (utf8proc_uint8_t *)out->data + out->len);
    }
    out->data[out->len] = '\0';
}

const char *
cls_text_normalize(cls_text_t *self, const struct cls_text_opts *opts, const char *s, size_t len,
                   size_t *out_len)
{
    self->invalid = 0;
    self->truncated = false;
    self->norm.len = 0;
    self->n_cps = 0;
    s_bytes_reserve(&self->norm, 0);
    s_decode(self, s, len);
    s_norm_span(self, opts, self->cps, self->n_cps, &self->norm);
    self->norm.data[self->norm.len] = '\0';
    if (out_len != NULL) {
        *out_len = self->norm.len;
    }
    return self->norm.data;
}

/* ---------------------------------------------------------------------------------------------
 * Tokens
 */

/* Normalises cps[0..n) into a new token whose original span is self->cps[cp_off..+cp_len).
 * Returns false (nothing added) when it normalises to "". */
static inline bool
s_emit_cps(cls_text_t *self, const struct cls_text_opts *opts, enum cls_tok_kind kind,
           const int32_t *cps, size_t n, size_t cp_off, size_t cp_len, uint32_t pos)
{
    size_t off = self->tok.len;
    struct cls_token *t;
    bool enye = s_norm_span(self, opts, cps, n, &self->tok);

    if (self->tok.len == off) {
        return false;
    }
    self->toks = s_grow(self->toks, &self->cap_toks, self->n_toks + 1, sizeof(*self->toks));
    t = &self->toks[self->n_toks++];
    t->off = (uint32_t)off;
    t->len = (uint32_t)(self->tok.len - off);
    t->pos = pos;
    t->cp_off = (uint32_t)cp_off;
    t->cp_len = (uint32_t)cp_len;
    t->kind = (uint8_t)kind;
    t->flags = enye ? CLS_TOKF_ENYE : 0;
    return true;
}

/* Normalises self->cps[from..to) into a new token. */
static bool
s_emit(cls_text_t *self, const struct cls_text_opts *opts, enum cls_tok_kind kind, size_t from,
       size_t to, uint32_t pos)
{
    return s_emit_cps(self, opts, kind, self->cps + from, to - from, from, to - from, pos);
}

/* Adds a main token at the next position. */
static void
s_emit_main(cls_text_t *self, const struct cls_text_opts *opts, enum cls_tok_kind kind,
            size_t from, size_t to)
{
    uint32_t pos = (uint32_t)self->n_pos;

    if (!s_emit(self, opts, kind, from, to, pos)) {
        return;
    }
    self->by_pos = s_grow(self->by_pos, &self->cap_pos, self->n_pos + 1, sizeof(uint32_t));
    self->by_pos[self->n_pos++] = (uint32_t)(self->n_toks - 1);
}

/* A position without a token (where a URL was), so phrases cannot span it. */
static void
s_gap(cls_text_t *self)
{
    self->by_pos = s_grow(self->by_pos, &self->cap_pos, self->n_pos + 1, sizeof(uint32_t));
    self->by_pos[self->n_pos++] = UINT32_MAX;
}

static enum s_class
s_class_at(const cls_text_t *self, size_t i)
{
    return i < self->n_cps ? s_class(self->cps[i]) : S_SPACE;
}

/* True when the code point before i belongs to a word, so '#', '@' or "http" at i is not the
 * start of a hashtag, mention or URL ("C#", "ana@example.org"). Marks are skipped back to their
 * base, so an emoji with a variation selector still separates. */
static bool
s_after_word(const cls_text_t *self, size_t i)
{
    while (i > 0 && s_class(self->cps[i - 1]) == S_MARK) {
        i--;
    }
    return i > 0 && s_class(self->cps[i - 1]) == S_WORD;
}

/* End of the word that starts at i (a S_WORD code point). */
static size_t
s_scan_word(const cls_text_t *self, size_t i)
{
    const int32_t *cps = self->cps;
    size_t n = self->n_cps;
    size_t j = i + 1;

    for (;;) {
        enum s_class c;

        while (j < n && cps[j] < 0x80 && s_ascii_classes[cps[j]] == S_WORD) {
            j++; /* the common case: ASCII letters and digits */
        }
        c = s_class_at(self, j);

        if (c == S_WORD || c == S_MARK) {
            j++;
        }
        else if (c == S_APOS && s_class_at(self, j + 1) == S_WORD) {
            j++;
        }
        else {
            return j;
        }
    }
}

/* End of a handle starting at i: words joined by '.' or '-', and at most one '@' for
 * user@domain (*user_end is set to the end of the user part then, else left alone). */
static size_t
s_scan_handle(const cls_text_t *self, size_t i, size_t *user_end)
{
    size_t j = s_scan_word(self, i);
    bool had_at = false;

    while (j + 1 < self->n_cps && s_class(self->cps[j + 1]) == S_WORD) {
        int32_t c = self->cps[j];

        if (c == '.' || c == '-') {
            j = s_scan_word(self, j + 1);
        }
        else if (s_class(c) == S_AT && !had_at) {
            had_at = true;
            *user_end = j;
            j = s_scan_word(self, j + 1);
        }
        else {
            break;
        }
    }
    return j;
}

static bool
s_ascii_prefix_ci(const cls_text_t *self, size_t i, const char *prefix)
{
    size_t k;

    for (k = 0; prefix[k] != '\0'; k++) {
        int32_t c;

        if (i + k >= self->n_cps) {
            return false;
        }
        c = self->cps[i + k];
        if (c >= 'A' && c <= 'Z') {
            c += 'a' - 'A';
        }
        if (c != prefix[k]) {
            return false;
        }
    }
    return true;
}

/* When a URL starts at i, returns its end (the next white space), else i. */
static size_t
s_scan_url(const cls_text_t *self, size_t i)
{
    size_t j;
    int32_t c = self->cps[i] | 0x20;

    if ((c != 'h' && c != 'w') || s_after_word(self, i)) {
        return i;
    }
    if (!s_ascii_prefix_ci(self, i, "http://") && !s_ascii_prefix_ci(self, i, "https://")
        && !s_ascii_prefix_ci(self, i, "www.")) {
        return i;
    }
    for (j = i; j < self->n_cps && s_class(self->cps[j]) != S_SPACE; j++) {
    }
    return j;
}

/* Characters that end a sentence rather than a URL ("see https://x.pe/a." or "(www.x.pe)"). */
static bool
s_url_trailer(int32_t cp)
{
    return cp == '.' || cp == ',' || cp == ';' || cp == ':' || cp == '!' || cp == '?'
        || cp == ')' || cp == ']' || cp == '}' || cp == '\'' || cp == '"' || cp == '>'
        || cp == 0xBB || cp == 0x2026 || cp == 0x201D;
}

/* Adds a link token for the URL self->cps[from..to): "host/path" where host has the scheme,
 * user info, port and trailing dots removed, and path stops at '?' or '#' and loses trailing
 * slashes. Nothing when the host is empty or CLS_LINKS_MAX links were added already. */
static void
s_link(cls_text_t *self, const struct cls_text_opts *opts, size_t from, size_t to)
{
    size_t k = from;
    size_t host;
    size_t host_end;
    size_t rest;
    size_t path_end;
    size_t j;
    size_t n = 0;

    if (self->n_links >= CLS_LINKS_MAX) {
        return;
    }
    while (to > from && s_url_trailer(self->cps[to - 1])) {
        to--;
    }
    if (s_ascii_prefix_ci(self, k, "https://")) {
        k += 8;
    }
    else if (s_ascii_prefix_ci(self, k, "http://")) {
        k += 7;
    }
    else if (s_ascii_prefix_ci(self, k, "//")) {
        k += 2;
    }
    host = k;
    for (rest = k; rest < to && self->cps[rest] != '/' && self->cps[rest] != '?'
                   && self->cps[rest] != '#';
         rest++) {
    }
    for (j = host; j < rest; j++) {
        if (self->cps[j] == '@') {
            host = j + 1;
        }
    }
    for (host_end = host; host_end < rest && self->cps[host_end] != ':'; host_end++) {
    }
    while (host_end > host && self->cps[host_end - 1] == '.') {
        host_end--;
    }
    if (host_end == host || to <= k) {
        return;
    }
    path_end = rest;
    if (rest < to && self->cps[rest] == '/') {
        for (path_end = rest; path_end < to && self->cps[path_end] != '?'
                              && self->cps[path_end] != '#';
             path_end++) {
        }
        while (path_end > rest && self->cps[path_end - 1] == '/') {
            path_end--;
        }
    }
    self->lk = s_grow(self->lk, &self->cap_lk, (host_end - host) + (path_end - rest) + 1,
                      sizeof(int32_t));
    for (j = host; j < host_end; j++) {
        self->lk[n++] = self->cps[j];
    }
    for (j = rest; j < path_end; j++) {
        self->lk[n++] = self->cps[j];
    }
    if (s_emit_cps(self, opts, CLS_TOK_LINK, self->lk, n, from, to - from, CLS_POS_NONE)) {
        self->n_links++;
    }
}

/* True when the next base character after k (marks skipped) is lower case. */
static bool
s_next_base_is_lower(const cls_text_t *self, size_t k, size_t end)
{
    for (k = k + 1; k < end; k++) {
        enum s_class c = s_class(self->cps[k]);

        if (c == S_MARK) {
            continue;
        }
        return s_case(self->cps[k]) == S_C_LOWER;
    }
    return false;
}

static bool
s_is_separator(int32_t cp)
{
    return cp == '_' || (cp >= 0x80 && utf8proc_category(cp) == UTF8PROC_CATEGORY_PC);
}

/* Splits the hashtag body cps[from..to) at '_', lower->Upper, UPPER->Upper+lower (acronym
 * end: "JNEPerú" -> JNE|Perú) and letter<->digit boundaries, on the original case. Emits the
 * parts when there are two or more. */
static void
s_hashtag_parts(cls_text_t *self, const struct cls_text_opts *opts, size_t from, size_t to,
                uint32_t pos)
{
    size_t starts[S_PARTS_MAX];
    size_t ends[S_PARTS_MAX];
    size_t n = 0;
    size_t start = from;
    enum s_case prev = S_C_NONE;
    size_t k;

    for (k = from; k < to; k++) {
        int32_t cp = self->cps[k];
        enum s_case cur;
        bool cut = false;

        if (s_is_separator(cp)) {
            if (k > start && n < S_PARTS_MAX - 1) {
                starts[n] = start;
                ends[n++] = k;
            }
            start = k + 1;
            prev = S_C_NONE;
            continue;
        }
        cur = s_case(cp);
        if (cur == S_C_NONE) {
            continue; /* marks, joiners and apostrophes stay with the part they are in */
        }
        if (prev != S_C_NONE) {
            bool prev_letter = prev != S_C_DIGIT;
            bool cur_letter = cur != S_C_DIGIT;

            if (prev_letter != cur_letter) {
                cut = true;
            }
            else if (prev == S_C_LOWER && cur == S_C_UPPER) {
                cut = true;
            }
            else if (prev == S_C_UPPER && cur == S_C_UPPER && s_next_base_is_lower(self, k, to)) {
                cut = true;
            }
        }
        if (cut && k > start && n < S_PARTS_MAX - 1) {
            starts[n] = start;
            ends[n++] = k;
            start = k;
        }
        prev = cur;
    }
    if (to > start && n < S_PARTS_MAX) {
        starts[n] = start;
        ends[n++] = to;
    }
    if (n < 2) {
        return;
    }
    for (k = 0; k < n; k++) {
        s_emit(self, opts, CLS_TOK_HASHPART, starts[k], ends[k], pos);
    }
}

size_t
cls_text_tokenize(cls_text_t *self, const struct cls_text_opts *opts, const char *s, size_t len)
{
    size_t i = 0;

    self->invalid = 0;
    self->truncated = false;
    self->tok.len = 0;
    self->n_toks = 0;
    self->n_pos = 0;
    self->n_links = 0;
    self->n_cps = 0;
    s_decode(self, s, len);
    while (i < self->n_cps) {
        enum s_class c = s_class(self->cps[i]);
        size_t j;
        size_t user_end = 0;

        if (c == S_WORD) {
            j = s_scan_url(self, i);
            if (j > i) {
                s_gap(self);
                if (!self->no_links) {
                    s_link(self, opts, i, j);
                }
                i = j;
                continue;
            }
            j = s_scan_word(self, i);
            s_emit_main(self, opts, CLS_TOK_WORD, i, j);
            i = j;
            continue;
        }
        if ((c == S_HASH || c == S_AT) && !s_after_word(self, i)
            && s_class_at(self, i + 1) == S_WORD) {
            size_t before = self->n_toks;

            if (c == S_HASH) {
                j = s_scan_word(self, i + 1);
                s_emit_main(self, opts, CLS_TOK_HASHTAG, i + 1, j);
                if (self->n_toks > before) {
                    s_hashtag_parts(self, opts, i + 1, j, self->toks[before].pos);
                }
            }
            else {
                j = s_scan_handle(self, i + 1, &user_end);
                s_emit_main(self, opts, CLS_TOK_MENTION, i + 1, j);
                if (self->n_toks > before && user_end > i + 1) {
                    s_emit(self, opts, CLS_TOK_MENTIONPART, i + 1, user_end,
                           self->toks[before].pos);
                }
            }
            i = j;
            continue;
        }
        i++;
    }
    return self->n_toks;
}

void
cls_text_add_field(cls_text_t *self, const struct cls_text_opts *opts, enum cls_tok_kind kind,
                   const char *value)
{
    size_t k;
    size_t end;
    size_t j;

    if (value == NULL) {
        return;
    }
    k = s_decode(self, value, strlen(value));
    end = self->n_cps;
    while (k < end && s_class(self->cps[k]) == S_SPACE) {
        k++;
    }
    while (end > k && s_class(self->cps[end - 1]) == S_SPACE) {
        end--;
    }
    if (k < end && kind == CLS_TOK_META_HASHTAG && s_class(self->cps[k]) == S_HASH) {
        k++;
    }
    else if (k < end && (kind == CLS_TOK_META_MENTION || kind == CLS_TOK_AUTHOR)
             && s_class(self->cps[k]) == S_AT) {
        k++;
    }
    if (k >= end) {
        return;
    }
    if (kind == CLS_TOK_LINK) {
        if (!self->no_links) {
            s_link(self, opts, k, end);
        }
        return;
    }
    s_emit(self, opts, kind, k, end, CLS_POS_NONE);
    if (kind == CLS_TOK_META_MENTION || kind == CLS_TOK_AUTHOR) {
        for (j = k + 1; j < end; j++) {
            if (s_class(self->cps[j]) == S_AT) {
                s_emit(self, opts, kind, k, j, CLS_POS_NONE);
                break;
            }
        }
    }
}

void
cls_text_add_hashtag(cls_text_t *self, const struct cls_text_opts *opts, const char *tag)
{
    cls_text_add_field(self, opts, CLS_TOK_META_HASHTAG, tag);
}

void
cls_text_add_mention(cls_text_t *self, const struct cls_text_opts *opts, const char *handle)
{
    cls_text_add_field(self, opts, CLS_TOK_META_MENTION, handle);
}

void
cls_text_set_links(cls_text_t *self, bool on)
{
    self->no_links = !on;
}

void
cls_text_reset(cls_text_t *self)
{
    self->invalid = 0;
    self->truncated = false;
    self->tok.len = 0;
    self->n_toks = 0;
    self->n_pos = 0;
    self->n_links = 0;
    self->n_cps = 0;
}

const char *
cls_text_tok_raw(cls_text_t *self, const struct cls_token *tok, size_t *len)
{
    self->raw.len = 0;
    s_bytes_reserve(&self->raw, 0);
    s_raw_span(self, self->cps + tok->cp_off, tok->cp_len, &self->raw);
    *len = self->raw.len;
    return self->raw.data;
}

const struct cls_token *
cls_text_tokens(const cls_text_t *self, size_t *n)
{
    *n = self->n_toks;
    return self->toks;
}

const char *
cls_text_tok_str(const cls_text_t *self, const struct cls_token *tok)
{
    return self->tok.data + tok->off;
}

const struct cls_token *
cls_text_at(const cls_text_t *self, uint32_t pos)
{
    if (pos >= self->n_pos || self->by_pos[pos] == UINT32_MAX) {
        return NULL;
    }
    return &self->toks[self->by_pos[pos]];
}

size_t
cls_text_invalid(const cls_text_t *self)
{
    return self->invalid;
}

bool
cls_text_truncated(const cls_text_t *self)
{
    return self->truncated;
}
