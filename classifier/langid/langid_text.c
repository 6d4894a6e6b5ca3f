#define ESC_LOG_MODULE "langid"
/* Tokeniser and feature hashing for language identification. The input is decoded once into
 * code points in a fixed buffer (the first CLS_LANGID_MAX_CP; invalid bytes become
 * separators), composed to NFC only when it holds combining marks, then cut at white space
 * into chunks. A chunk that is a link or an e-mail address is dropped whole; inside the others
 * @mentions are skipped, #hashtags are split into their parts and words are runs of letters
 * (with inner apostrophes, which Quechua and Aymara spell with). Features of a word are its
 * character 1..5-grams with ' ' marking both ends, plus the word itself, hashed with 64-bit
 * FNV-1a so that no feature string is ever built. Pure functions over caller-owned state: no
 * allocation, no globals; safe to use from any number of threads with one state each. */
#include <string.h>

#include <utf8proc.h>

#include "langid_text.h"

#define S_FNV_OFFSET 0xcbf29ce484222325ULL
#define S_FNV_PRIME 0x100000001b3ULL
#define S_WORD_SALT 0x9e3779b97f4a7c15ULL /* word features hash apart from equal n-grams */

enum s_class {
    S_OTHER = 0, /* punctuation, symbols, emoji, digits of other scripts: separators */
    S_SPACE,     /* white space: ends a chunk */
    S_LETTER,    /* letters of any script */
    S_MARK,      /* combining marks: part of the word before them */
    S_APOS,      /* apostrophe and its look-alikes */
    S_DIGIT,     /* 0-9 (hashtags split at them) */
    S_UNDERSCORE /* '_' (hashtags split at it) */
};

/* Top-level domains that mark a bare "name.tld" chunk as a link. */
static const char *const s_tlds[] = {
    "com", "net", "org", "edu", "gov", "gob", "io", "co", "me", "tv", "ly", "info", "biz",
    "pe", "bo", "br", "ar", "cl", "mx", "ec", "py", "uy", "ve", "uk", "us", "app", "dev", NULL
};

/* s_class of the ASCII code points, as digits: '0' + enum s_class. */
static const char s_ascii_class[128 + 1] = "0000000001111100" /* 0x00: \t..\r are spaces */
                                           "0000000000000000"
                                           "1000000400000000" /* ' ' and '\'' */
                                           "5555555555000000" /* digits */
                                           "0222222222222222" /* A-Z */
                                           "2222222222200006" /* '_' */
                                           "4222222222222222" /* '`', a-z */
                                           "2222222222200000";

static inline enum s_class
s_class(int32_t c)
{
    if (c >= 0 && c < 0x80) {
        return (enum s_class)(s_ascii_class[c] - '0');
    }
    if (c < 0) {
        return S_OTHER; /* an invalid byte */
    }
    if (c == 0x2019 || c == 0x2018 || c == 0x02BC || c == 0x00B4 || c == 0xFF07) {
        return S_APOS;
    }
    if (c == 0x00A0 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 ||
        c == 0x202F || c == 0x205F || c == 0x3000 || c == 0x85) {
        return S_SPACE;
    }
    switch (utf8proc_category(c)) {
    case UTF8PROC_CATEGORY_LU:
    case UTF8PROC_CATEGORY_LL:
    case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO:
        return S_LETTER;
    case UTF8PROC_CATEGORY_MN:
    case UTF8PROC_CATEGORY_MC:
    case UTF8PROC_CATEGORY_ME:
        return S_MARK;
    default:
        return S_OTHER;
    }
}

static inline int32_t
s_lower(int32_t c)
{
    if (c < 0x80) {
        return (c >= 'A' && c <= 'Z') ? c + 32 : c;
    }
    return utf8proc_tolower(c);
}

static bool
s_is_upper(int32_t c)
{
    if (c < 0x80) {
        return c >= 'A' && c <= 'Z';
    }
    return utf8proc_category(c) == UTF8PROC_CATEGORY_LU;
}

static size_t
s_encode(int32_t c, char *out)
{
    unsigned char *o = (unsigned char *)out;

    if (c < 0x80) {
        o[0] = (unsigned char)c;
        return 1;
    }
    if (c < 0x800) {
        o[0] = (unsigned char)(0xC0 | (c >> 6));
        o[1] = (unsigned char)(0x80 | (c & 0x3F));
        return 2;
    }
    if (c < 0x10000) {
        o[0] = (unsigned char)(0xE0 | (c >> 12));
        o[1] = (unsigned char)(0x80 | ((c >> 6) & 0x3F));
        o[2] = (unsigned char)(0x80 | (c & 0x3F));
        return 3;
    }
    o[0] = (unsigned char)(0xF0 | (c >> 18));
    o[1] = (unsigned char)(0x80 | ((c >> 12) & 0x3F));
    o[2] = (unsigned char)(0x80 | ((c >> 6) & 0x3F));
    o[3] = (unsigned char)(0x80 | (c & 0x3F));
    return 4;
}

/* Decodes s into t->cp and the class of each code point into t->cl; returns the number of
 * code points. Invalid bytes decode to -1. */
static size_t
s_decode(struct cls_langid_text *t, const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    size_t n = 0;
    bool marks = false;

    while (i < len && n < CLS_LANGID_MAX_CP) {
        int32_t c;
        utf8proc_ssize_t k;
        uint64_t w;

        /* ASCII eight bytes at a time (the common case) */
        if (len - i >= 8 && CLS_LANGID_MAX_CP - n >= 8) {
            memcpy(&w, p + i, 8);
            if ((w & 0x8080808080808080ULL) == 0) {
                for (k = 0; k < 8; k++) {
                    t->cl[n + (size_t)k] = (uint8_t)(s_ascii_class[p[i + (size_t)k]] - '0');
                    t->cp[n + (size_t)k] = p[i + (size_t)k];
                }
                n += 8;
                i += 8;
                continue;
            }
        }
        if (p[i] < 0x80) {
            t->cl[n] = (uint8_t)s_class(p[i]);
            t->cp[n++] = p[i++];
            continue;
        }
        k = utf8proc_iterate(p + i, (utf8proc_ssize_t)(len - i), &c);
        if (k <= 0) {
            t->cl[n] = S_OTHER;
            t->cp[n++] = -1;
            i++;
            continue;
        }
        if (c >= 0x300 && c <= 0x36F) {
            marks = true;
        }
        t->cl[n] = (uint8_t)s_class(c);
        t->cp[n++] = c;
        i += (size_t)k;
    }
    if (marks) {
        /* Rare: decomposed accents (e + U+0301). Compose in place so "é" is one letter as in
         * the training text; -1 (invalid) entries would upset utf8proc, so they go first. */
        size_t j;

        for (j = 0; j < n; j++) {
            if (t->cp[j] < 0) {
                t->cp[j] = ' ';
            }
        }
        n = (size_t)utf8proc_normalize_utf32(t->cp, (utf8proc_ssize_t)n,
                                             UTF8PROC_STABLE | UTF8PROC_COMPOSE);
        for (j = 0; j < n; j++) {
            t->cl[j] = (uint8_t)s_class(t->cp[j]);
        }
    }
    return n;
}

static bool
s_has_tld(const int32_t *cp, const uint8_t *cl, size_t a, size_t b)
{
    size_t i;
    size_t j;
    char label[8];

    if (b - a == 0 || b - a >= sizeof(label)) {
        return false;
    }
    for (i = a, j = 0; i < b; i++, j++) {
        if (cp[i] >= 0x80 || cl[i] != S_LETTER) {
            return false;
        }
        label[j] = (char)s_lower(cp[i]);
    }
    label[j] = '\0';
    for (i = 0; s_tlds[i] != NULL; i++) {
        if (strcmp(label, s_tlds[i]) == 0) {
            return true;
        }
    }
    return false;
}

/* True when cp[a..b) (classes cl) is a link ("https://x", "www.x", "x.com/y", "x.pe") or an
 * e-mail. */
static bool
s_is_link(const int32_t *cp, const uint8_t *cl, size_t a, size_t b)
{
    size_t i;
    size_t last_dot = 0;
    bool dot = false;

    if (b - a >= 4 && s_lower(cp[a]) == 'w' && s_lower(cp[a + 1]) == 'w' &&
        s_lower(cp[a + 2]) == 'w' && cp[a + 3] == '.') {
        return true;
    }
    for (i = a; i < b; i++) {
        if (cp[i] == ':' && i + 2 < b && cp[i + 1] == '/' && cp[i + 2] == '/') {
            return true;
        }
        if (cp[i] == '@' && i > a && cl[i - 1] != S_OTHER) {
            size_t k;

            for (k = i + 1; k + 1 < b; k++) {
                if (cp[k] == '.' && cl[k + 1] == S_LETTER) {
                    return true; /* user@host.tld */
                }
            }
        }
        if (cp[i] == '.' && i > a && i + 1 < b && cl[i - 1] == S_LETTER &&
            cl[i + 1] == S_LETTER) {
            dot = true;
            last_dot = i;
        }
        if (cp[i] == '/' && dot) {
            return true;
        }
    }
    if (dot) {
        size_t end = last_dot + 1;

        while (end < b && cl[end] == S_LETTER) {
            end++;
        }
        /* "x.pe" or "x.com" possibly followed by punctuation ("x.com," "x.com)") */
        if (s_has_tld(cp, cl, last_dot + 1, end)) {
            for (i = end; i < b; i++) {
                if (cl[i] != S_OTHER) {
                    return false;
                }
            }
            return true;
        }
    }
    return false;
}

/* Hash of the token w[0..len) for cls_langid_tok.key: eight bytes per step. The eight bytes
 * from w + len (rounded down to eight) must be readable: the tokens are in t->buf, which has
 * eight bytes to spare after the longest text. */
static uint64_t
s_tok_key(const char *w, size_t len)
{
    uint64_t h = 0x9e3779b97f4a7c15ULL ^ len;
    uint64_t x;

    while (len >= 8) {
        memcpy(&x, w, 8);
        h = (h ^ x) * 0xff51afd7ed558ccdULL;
        h ^= h >> 32;
        w += 8;
        len -= 8;
    }
    if (len > 0) {
        /* the len bytes as memcpy into a zeroed x gives them (little-endian), in one load */
        memcpy(&x, w, 8);
        x &= ~0ULL >> (64 - 8 * len);
        h = (h ^ x) * 0xc4ceb9fe1a85ec53ULL;
    }
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    return h;
}

/* Appends the lower-cased t->cp[a..b) (letters, marks, apostrophes) as one token. */
static inline void
s_emit(struct cls_langid_text *t, size_t *used, size_t a, size_t b, bool hashtag)
{
    const int32_t *cp = t->cp;
    const uint8_t *cl = t->cl;
    char *buf = t->buf;
    size_t start = *used;
    size_t o = start;
    size_t i;
    int32_t prev1 = 0;
    int32_t prev2 = 0;

    if (t->n_toks >= CLS_LANGID_MAX_TOKS) {
        return;
    }
    for (i = a; i < b; i++) {
        int32_t c = cp[i];

        if (cl[i] == S_APOS) {
            c = '\'';
        }
        else if (c < 0x80) {
            c = (c >= 'A' && c <= 'Z') ? c + 32 : c;
        }
        else {
            c = utf8proc_tolower(c);
        }
        if (c == prev1 && c == prev2) {
            continue; /* "holaaaa" -> "holaa" */
        }
        prev2 = prev1;
        prev1 = c;
        if (c < 0x80) {
            buf[o++] = (char)c;
        }
        else {
            o += s_encode(c, buf + o);
        }
    }
    if (o - start > UINT16_MAX) {
        o = start + UINT16_MAX;
    }
    *used = o;
    t->toks[t->n_toks].off = (uint32_t)start;
    t->toks[t->n_toks].len = (uint16_t)(o - start);
    t->toks[t->n_toks].hashtag = hashtag ? 1 : 0;
    t->n_toks++;
    if (!hashtag) {
        t->n_plain++;
    }
}

/* Emits the letter parts of the hashtag body cp[a..b): split at digits, '_', and CamelCase
 * ("EleccionesPerú2026" -> "elecciones", "perú"; "NASAMission" -> "nasa", "mission"). */
static void
s_hashtag(struct cls_langid_text *t, size_t *used, size_t a, size_t b)
{
    const int32_t *cp = t->cp;
    const uint8_t *cl = t->cl;
    size_t i = a;

    while (i < b) {
        size_t start;

        while (i < b && cl[i] != S_LETTER) {
            i++;
        }
        start = i;
        while (i < b && (cl[i] == S_LETTER || cl[i] == S_MARK)) {
            if (i > start && s_is_upper(cp[i])) {
                bool prev_upper = s_is_upper(cp[i - 1]);
                bool next_lower = i + 1 < b && cl[i + 1] == S_LETTER &&
                                  !s_is_upper(cp[i + 1]);

                if (!prev_upper || next_lower) {
                    break;
                }
            }
            i++;
        }
        if (i > start) {
            s_emit(t, used, start, i, true);
        }
    }
}

size_t
cls_langid_tokenize(struct cls_langid_text *t, const char *s, size_t len)
{
    const int32_t *cp = t->cp;
    const uint8_t *cl = t->cl;
    size_t n = s_decode(t, s, len);
    size_t used = 0;
    size_t k = 0;
    size_t a = 0;      /* start of the chunk (the text between white space) k is in */
    size_t toks_a = 0; /* t->n_toks, t->n_plain and used when it started */
    size_t plain_a = 0;
    size_t used_a = 0;
    bool dot = false;  /* the chunk has a '.' or a ':' */

    t->n_toks = 0;
    t->n_plain = 0;
    /* One pass over the text. A chunk that is a link or an e-mail address yields no tokens:
     * its words are emitted as they come and taken back when the chunk ends and proves to be
     * one (every link s_is_link knows has a '.' or a ':', "www.", "://", "user@host.tld",
     * "x.pe", so most chunks need no test). */
    while (k <= n) {
        int32_t c;
        bool at_start;

        if (k == n || cl[k] == S_SPACE) {
            if (dot && s_is_link(cp, cl, a, k)) {
                t->n_toks = toks_a;
                t->n_plain = plain_a;
                used = used_a;
            }
            while (k < n && cl[k] == S_SPACE) {
                k++;
            }
            if (k == n) {
                break;
            }
            a = k;
            toks_a = t->n_toks;
            plain_a = t->n_plain;
            used_a = used;
            dot = false;
        }
        c = cp[k];
        at_start = k == a || cl[k - 1] == S_OTHER;
        if (c == '@' && at_start) {
            k++;
            while (k < n && cl[k] != S_SPACE
                   && (cl[k] != S_OTHER || cp[k] == '.' || cp[k] == '-' || cp[k] == '@')) {
                dot |= cp[k] == '.';
                k++;
            }
            continue;
        }
        if (c == '#' && at_start && k + 1 < n && cl[k + 1] >= S_LETTER) {
            size_t start = ++k;

            while (k < n && cl[k] >= S_LETTER && cl[k] != S_APOS) {
                k++;
            }
            s_hashtag(t, &used, start, k);
            continue;
        }
        if (cl[k] == S_LETTER) {
            size_t start = k;

            while (k < n) {
                uint8_t ck = cl[k];

                if (ck == S_LETTER || ck == S_MARK) {
                    k++;
                }
                else if (ck == S_APOS && k + 1 < n && cl[k + 1] == S_LETTER) {
                    k++;
                }
                else {
                    break;
                }
            }
            s_emit(t, &used, start, k, false);
            continue;
        }
        dot |= (c == '.') | (c == ':');
        k++;
    }
    /* The keys are hashed once every token is written: reading eight bytes that were just
     * stored one by one would wait for the stores (no store-to-load forwarding). */
    for (k = 0; k < t->n_toks; k++) {
        t->toks[k].key = s_tok_key(t->buf + t->toks[k].off, t->toks[k].len);
    }
    return t->n_toks;
}

static inline size_t
s_cp_len(unsigned char b)
{
    if (b < 0x80) {
        return 1;
    }
    if (b >= 0xF0) {
        return 4;
    }
    if (b >= 0xE0) {
        return 3;
    }
    return 2;
}

size_t
cls_langid_features(const char *w, size_t len, uint64_t *hashes, uint8_t *kinds)
{
    /* Byte offsets of the padded token " w ": pos[0] is the leading ' ', pos[m-1] the
     * trailing one; the boundary is hashed as the byte ' '. */
    size_t off[CLS_LANGID_WORD_CP + 2];
    size_t clen[CLS_LANGID_WORD_CP + 2];
    const unsigned char *p = (const unsigned char *)w;
    size_t m = 1;
    size_t i = 0;
    size_t nf = 0;
    size_t s;
    uint64_t h;

    while (i < len && m <= CLS_LANGID_WORD_CP) {
        size_t k = s_cp_len(p[i]);

        if (i + k > len) {
            break;
        }
        off[m] = i;
        clen[m] = k;
        m++;
        i += k;
    }
    if (m == 1) {
        return 0;
    }
    m++; /* trailing boundary */
    for (s = 0; s < m; s++) {
        size_t n;

        h = S_FNV_OFFSET;
        for (n = 1; n <= CLS_LANGID_ORDER_MAX && s + n <= m; n++) {
            size_t q = s + n - 1;

            if (q == 0 || q == m - 1) {
                h = (h ^ (uint64_t)' ') * S_FNV_PRIME;
            }
            else {
                size_t b;

                for (b = 0; b < clen[q]; b++) {
                    h = (h ^ p[off[q] + b]) * S_FNV_PRIME;
                }
            }
            if (n == 1 && (q == 0 || q == m - 1)) {
                continue; /* a lone boundary says nothing */
            }
            hashes[nf] = h;
            kinds[nf] = (uint8_t)(CLS_LANGID_K1 + n - 1);
            nf++;
        }
    }
    hashes[nf] = cls_langid_word_hash(w, len);
    kinds[nf] = CLS_LANGID_KWORD;
    return nf + 1;
}

uint64_t
cls_langid_word_hash(const char *w, size_t len)
{
    const unsigned char *p = (const unsigned char *)w;
    uint64_t h = S_FNV_OFFSET ^ S_WORD_SALT;
    size_t i;

    for (i = 0; i < len; i++) {
        h = (h ^ p[i]) * S_FNV_PRIME;
    }
    return h;
}

uint64_t
cls_langid_ngram_hash(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    uint64_t h = S_FNV_OFFSET;
    size_t i;

    for (i = 0; i < len; i++) {
        h = (h ^ p[i]) * S_FNV_PRIME;
    }
    return h;
}

size_t
cls_langid_lower(const char *s, size_t len, char *out, size_t outsz)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    size_t o = 0;

    if (outsz == 0) {
        return 0;
    }
    while (i < len) {
        int32_t c;
        utf8proc_ssize_t k = utf8proc_iterate(p + i, (utf8proc_ssize_t)(len - i), &c);
        char enc[4];
        size_t n;

        if (k <= 0) {
            i++;
            continue;
        }
        i += (size_t)k;
        c = s_class(c) == S_APOS ? '\'' : s_lower(c);
        n = s_encode(c, enc);
        if (o + n + 1 > outsz) {
            break;
        }
        memcpy(out + o, enc, n);
        o += n;
    }
    out[o] = '\0';
    return o;
}
