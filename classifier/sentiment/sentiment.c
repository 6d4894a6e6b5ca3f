#define ESC_LOG_MODULE "sentiment"

/* Lexicon-based sentiment for short posts (docs/sentiment.md). The lexicon file written by
 * convert.mjs at build time is loaded once into one open-addressing hash table keyed by
 * (language, folded word): each entry says whether the word carries a valence as a whole
 * word, as a stem (followed by one of the language's endings), or acts as a negator, a
 * booster/dampener or a contrast word. Scoring is a single pass over the text in the manner of
 * VADER: words are folded as they are read (NFKC, case folding, accents removed), each valence
 * is scaled by the boosters, negators and contrast words before it in its clause, by ALL CAPS
 * and elongation, emoji and emoticons add their own valence, exclamation marks amplify, and
 * the sum is squashed into [-1, 1]. The object is read-only after cls_sentiment_new, so it may
 * be shared by threads; scoring keeps all state on the stack and allocates nothing. */

#include "sentiment.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <utf8proc.h>

#include "escucha/esc_log.h"
#include "escucha/esc_mem.h"
#include "escucha/esc_rc.h"
#include "escucha/esc_util.h"

#include "datafile.h"

#ifndef CLS_SENTIMENT_LEXICON
#error "CLS_SENTIMENT_LEXICON (the lexicon built in the build tree) is set by \
classifier/sentiment/CMakeLists.txt"
#endif

#define S_TOK_MAX 64       /* longest folded token that is looked up, bytes */
#define S_TAG_MAX 128      /* code points of a hashtag that are split into words */
#define S_WINDOW_MAX 8     /* upper bound of param window */
#define S_EMOTICON_MAX 8   /* longest emoticon matched, bytes */
#define S_LINE_MAX 1024    /* longest lexicon line */
#define S_SLOTS_MIN 1024

enum { S_ES = 0, S_EN, S_PT, S_NLANG, S_ANY = S_NLANG };

static const char *const s_lang_names[S_NLANG] = { "es", "en", "pt" };

enum {
    S_F_WORD = 1u << 0,
    S_F_STEM = 1u << 1,
    S_F_END = 1u << 2,
    S_F_NEG = 1u << 3,
    S_F_NEGSTOP = 1u << 4,
    S_F_BOOST = 1u << 5,
    S_F_CONTRAST = 1u << 6,
    S_F_EMOTICON = 1u << 7,
};

struct s_entry {
    uint32_t hash;  /* s_hash of (lang, key) */
    uint32_t off;   /* key in self->keys */
    uint16_t len;   /* key length, bytes */
    uint8_t lang;   /* S_ES.. or S_ANY (emoticons) */
    uint8_t flags;  /* S_F_* */
    float word;     /* valence as a whole word or emoticon */
    float stem;     /* valence as a stem */
    float end;      /* valence multiplier as an ending */
    float neg;      /* negator: multiplier of the valences after it */
    float boost;    /* booster (+) or dampener (-) scalar */
    float contrast; /* weight of the rest of the sentence */
};

struct s_emoji {
    uint32_t cp;    /* 0 = empty slot */
    float val;
};

/* Scoring constants, from the lexicon's `param` lines (defaults are VADER's). */
struct s_params {
    double alpha;           /* squashing: score = sum / sqrt(sum^2 + alpha) */
    double window;          /* how many words back negators and boosters reach */
    double caps;            /* added to |valence| of an ALL CAPS word in mixed-case text */
    double elongation;      /* added to |valence| of an elongated word ("buenooo") */
    double exclamation;     /* added to |sum| per '!' */
    double exclamation_max; /* '!' counted at most */
    double question;        /* added to |sum| per '?' when there are two or more */
    double contrast_before; /* weight of the sentence before a contrast word */
    double min_stem;        /* shortest stem matched with an ending, bytes */
    double neutral[S_NLANG]; /* neutral band per language */
};

static const struct s_param_def {
    const char *name;
    size_t off;
    double min, max;
} s_param_defs[] = {
    { "alpha", offsetof(struct s_params, alpha), 0.1, 1000.0 },
    { "window", offsetof(struct s_params, window), 1.0, S_WINDOW_MAX },
    { "caps", offsetof(struct s_params, caps), 0.0, 4.0 },
    { "elongation", offsetof(struct s_params, elongation), 0.0, 4.0 },
    { "exclamation", offsetof(struct s_params, exclamation), 0.0, 4.0 },
    { "exclamation_max", offsetof(struct s_params, exclamation_max), 0.0, 100.0 },
    { "question", offsetof(struct s_params, question), 0.0, 4.0 },
    { "contrast_before", offsetof(struct s_params, contrast_before), 0.0, 1.0 },
    { "min_stem", offsetof(struct s_params, min_stem), 1.0, 16.0 },
};

enum s_kind {
    S_K_WORD,
    S_K_STEM,
    S_K_END,
    S_K_NEG,
    S_K_NEGSTOP,
    S_K_BOOST,
    S_K_CONTRAST,
    S_K_EMOJI,
    S_K_EMOTICON,
    S_K_PARAM,
};

static const struct {
    const char *name;
    enum s_kind kind;
} s_kinds[] = {
    { "word", S_K_WORD },       { "stem", S_K_STEM },         { "end", S_K_END },
    { "neg", S_K_NEG },         { "negstop", S_K_NEGSTOP },   { "boost", S_K_BOOST },
    { "contrast", S_K_CONTRAST }, { "emoji", S_K_EMOJI },     { "emoticon", S_K_EMOTICON },
    { "param", S_K_PARAM },
};

#define S_FILTER_BITS 17 /* log2 of the bits of the lexicon's presence filter */
#define S_FOLD_END 0x250 /* code points 0x80.. below this are folded through a table */
#define S_FOLD_SLOW 0xFF /* s_fold.n: not in the table, fold with utf8proc */

/* How a code point is folded into a token (s_fold_cp), kept for the Latin letters so that
 * accented words do not go through utf8proc letter by letter. */
struct s_fold {
    uint8_t n;     /* folded bytes in b, 0 when it folds to nothing, or S_FOLD_SLOW */
    uint8_t ccase; /* S_CASE_* */
    uint8_t b[6];
};

enum { S_CASE_NONE = 0, S_CASE_UPPER, S_CASE_LOWER, S_CASE_OTHER };

/* Endings of a language as a trie walked from the last byte of a word backwards, so that the
 * endings a word has are found in one walk (s_stem_valence). Node 0 means "none". */
struct s_end_node {
    uint32_t end;   /* entry index + 1 of the ending that ends here, 0 = none */
    uint16_t child; /* first child */
    uint16_t next;  /* next sibling */
    uint8_t byte;   /* the byte that leads here from the parent */
};

struct cls_sentiment {
    struct s_entry *entries;
    size_t n_entries, cap_entries;
    uint64_t *slots;            /* entry hash << 32 | (entry index + 1); 0 = empty */
    size_t slot_mask;
    char *keys;                 /* all keys, back to back */
    size_t keys_len, keys_cap;
    struct s_emoji *emoji;      /* open addressing by code point */
    size_t emoji_mask, n_emoji;
    size_t end_max[S_NLANG];    /* longest ending of each language, bytes */
    size_t n_valence[S_NLANG];  /* words + stems of each language */
    size_t emoticon_max;        /* longest emoticon, bytes */
    struct s_params p;
    struct s_end_node *ends;    /* ending tries; ends[1 + lang] is the root of lang */
    size_t n_ends, cap_ends;
    uint16_t (*kids)[26];       /* child of each node for the bytes a..z (0 = none), so that
                                   the common bytes skip the walk of the sibling list */
    struct s_fold fold[S_FOLD_END - 0x80];
    uint8_t word_cp[S_FOLD_END]; /* s_is_word_cp of the code points below S_FOLD_END */
    /* Two bits per key in the table (s_filter_bit, s_filter_bit2): most words of a post are
     * in no lexicon, and this answers for nearly all of them from 16 KB. */
    uint64_t filter[((size_t)1 << S_FILTER_BITS) / 64];
};

/* A word being read: its folded bytes in two forms, for elongated words ("buenooo"). */
struct s_tok {
    uint8_t b[S_TOK_MAX];   /* runs of 3+ equal letters cut to 2 ("goood" -> "good") */
    uint8_t a[S_TOK_MAX];   /* runs of 3+ equal letters cut to 1 ("buenooo" -> "bueno") */
    size_t nb, na;
    unsigned upper, lower;  /* cased letters seen */
    unsigned alpha;         /* letters seen */
    uint8_t last;           /* last folded byte, for runs */
    unsigned run;
    bool elongated;         /* some run was cut */
    bool too_long;          /* did not fit: not looked up */
};

struct s_prev {
    float boost;            /* booster scalar of that word, 0 if none */
    float neg;              /* negator multiplier, 0 if none */
    bool caps;              /* that word was ALL CAPS */
};

/* Scoring state of one pass; lives on the stack. */
struct s_state {
    const cls_sentiment_t *self;
    int lang;
    const uint8_t *text;
    size_t len;
    int mixed_case;         /* -1 unknown, else whether the text has lower-case letters */
    double total;           /* finished sentences */
    double sentence;        /* current sentence */
    double weight;          /* weight of the current words (contrast) */
    double last;            /* valence added by the previous word, 0 if none */
    unsigned excl, quest;
    unsigned hits, known;
    struct s_prev prev[S_WINDOW_MAX]; /* prev[0] is the last word */
    unsigned nprev;
};

/* ---- small helpers ---- */

static uint32_t
s_hash(int lang, const uint8_t *key, size_t len)
{
    uint32_t h = 2166136261u ^ ((uint32_t)lang * 0x9e3779b1u);
    size_t i;

    for (i = 0; i < len; i++) {
        h ^= key[i];
        h *= 16777619u;
    }
    return h;
}

/* 1 for the bytes 0-9, A-Z, a-z. */
static const uint8_t s_alnum[256] = {
    ['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1, ['6'] = 1, ['7'] = 1,
    ['8'] = 1, ['9'] = 1,
    ['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1, ['F'] = 1, ['G'] = 1, ['H'] = 1,
    ['I'] = 1, ['J'] = 1, ['K'] = 1, ['L'] = 1, ['M'] = 1, ['N'] = 1, ['O'] = 1, ['P'] = 1,
    ['Q'] = 1, ['R'] = 1, ['S'] = 1, ['T'] = 1, ['U'] = 1, ['V'] = 1, ['W'] = 1, ['X'] = 1,
    ['Y'] = 1, ['Z'] = 1,
    ['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1, ['g'] = 1, ['h'] = 1,
    ['i'] = 1, ['j'] = 1, ['k'] = 1, ['l'] = 1, ['m'] = 1, ['n'] = 1, ['o'] = 1, ['p'] = 1,
    ['q'] = 1, ['r'] = 1, ['s'] = 1, ['t'] = 1, ['u'] = 1, ['v'] = 1, ['w'] = 1, ['x'] = 1,
    ['y'] = 1, ['z'] = 1,
};

static inline bool
s_ascii_alnum(uint8_t c)
{
    return s_alnum[c] != 0;
}

static bool
s_ascii_space(uint8_t c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

/* Decodes one UTF-8 code point at s[*i..len); advances *i. Returns -1 for an invalid or
 * truncated sequence (then *i moves one byte). */
static int32_t
s_decode(const uint8_t *s, size_t len, size_t *i)
{
    utf8proc_int32_t cp;
    utf8proc_ssize_t n;

    if (*i < len && s[*i] < 0x80) {
        return s[(*i)++];
    }
    /* Two-byte sequences (Latin accents, ñ), as utf8proc_iterate decodes them. */
    if (*i + 1 < len && s[*i] >= 0xC2 && s[*i] <= 0xDF && (s[*i + 1] & 0xC0) == 0x80) {
        cp = (utf8proc_int32_t)(s[*i] & 0x1F) << 6 | (s[*i + 1] & 0x3F);
        *i += 2;
        return cp;
    }
    n = utf8proc_iterate(s + *i, (utf8proc_ssize_t)(len - *i), &cp);
    if (n <= 0) {
        *i += 1;
        return -1;
    }
    *i += (size_t)n;
    return cp;
}

static bool
s_is_emoji(int32_t cp)
{
    return (cp >= 0x1F000 && cp <= 0x1FAFF) || (cp >= 0x2190 && cp <= 0x2BFF) || cp == 0x3030 ||
           cp == 0x303D || cp == 0x3297 || cp == 0x3299;
}

/* Code points that decorate an emoji (variation selectors, ZWJ, skin tones): skipped. */
static bool
s_is_emoji_mod(int32_t cp)
{
    return cp == 0xFE0E || cp == 0xFE0F || cp == 0x200D || (cp >= 0x1F3FB && cp <= 0x1F3FF) ||
           cp == 0x20E3;
}

static bool
s_is_apostrophe(int32_t cp)
{
    return cp == '\'' || cp == 0x2019 || cp == 0x2018 || cp == 0x02BC || cp == 0xFF07;
}

/* Letters, marks and digits form words. */
static bool
s_is_word_cp(int32_t cp)
{
    if (cp < 0x80) {
        return s_ascii_alnum((uint8_t)cp);
    }
    if (s_is_emoji(cp)) {
        return false;
    }
    switch (utf8proc_category(cp)) {
    case UTF8PROC_CATEGORY_LU:
    case UTF8PROC_CATEGORY_LL:
    case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO:
    case UTF8PROC_CATEGORY_MN:
    case UTF8PROC_CATEGORY_MC:
    case UTF8PROC_CATEGORY_ME:
    case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL:
    case UTF8PROC_CATEGORY_NO:
        return true;
    default:
        return false;
    }
}

/* s_is_word_cp through the table of self for the code points it covers. */
static inline bool
s_word_cp(const cls_sentiment_t *self, int32_t cp)
{
    if (cp >= 0 && cp < S_FOLD_END) {
        return self->word_cp[cp] != 0;
    }
    return s_is_word_cp(cp);
}

/* Code point at s[i] (or -1) without consuming it. */
static int32_t
s_peek(const uint8_t *s, size_t len, size_t i)
{
    if (i >= len) {
        return -1;
    }
    return s_decode(s, len, &i);
}

/* ---- token folding ---- */

static void
s_tok_reset(struct s_tok *t)
{
    t->nb = 0;
    t->na = 0;
    t->upper = 0;
    t->lower = 0;
    t->alpha = 0;
    t->last = 0;
    t->run = 0;
    t->elongated = false;
    t->too_long = false;
}

static void
s_tok_byte(struct s_tok *t, uint8_t c)
{
    bool letter = c >= 'a' && c <= 'z';

    if (letter && c == t->last) {
        t->run++;
    }
    else {
        t->last = letter ? c : 0;
        t->run = 1;
    }
    if (t->nb >= S_TOK_MAX || t->na >= S_TOK_MAX) {
        t->too_long = true;
        return;
    }
    if (t->run <= 2) {
        t->b[t->nb++] = c;
        t->a[t->na++] = c;
    }
    else if (t->run == 3) {
        t->na--; /* the run becomes one letter in form a */
        t->elongated = true;
    }
}

/* Adds the run of ASCII letters and digits at s[i..len) to t as s_tok_add would, one byte
 * after the other, with the state in registers; returns the index after the run. */
static size_t
s_tok_ascii(struct s_tok *t, const uint8_t *s, size_t i, size_t len)
{
    size_t nb = t->nb;
    size_t na = t->na;
    unsigned upper = t->upper;
    unsigned lower = t->lower;
    unsigned run = t->run;
    uint8_t last = t->last;
    bool elongated = t->elongated;
    bool too_long = t->too_long;

    while (i < len && s_ascii_alnum(s[i])) {
        uint8_t c = s[i++];
        bool letter = true;

        if (c >= 'A' && c <= 'Z') {
            upper++;
            c = (uint8_t)(c - 'A' + 'a');
        }
        else if (c >= 'a' && c <= 'z') {
            lower++;
        }
        else {
            letter = false;
        }
        if (letter && c == last) {
            run++;
        }
        else {
            last = letter ? c : 0;
            run = 1;
        }
        if (nb >= S_TOK_MAX || na >= S_TOK_MAX) {
            too_long = true;
            continue;
        }
        if (run <= 2) {
            t->b[nb++] = c;
            t->a[na++] = c;
        }
        else if (run == 3) {
            na--;
            elongated = true;
        }
    }
    t->alpha += (upper - t->upper) + (lower - t->lower);
    t->nb = nb;
    t->na = na;
    t->upper = upper;
    t->lower = lower;
    t->run = run;
    t->last = last;
    t->elongated = elongated;
    t->too_long = too_long;
    return i;
}

/* Folds the code point cp (>= 0x80, not an apostrophe) the way words are folded:
 * compatibility decomposition, case folding, marks removed (ñ becomes n as in the @nlpjs
 * lexicons). Writes its UTF-8 bytes to out (32 bytes) and returns their count, or -1 when it
 * folds to nothing usable; *ccase gets its S_CASE_*. */
static int
s_fold_cp(int32_t cp, uint8_t *out, int *ccase)
{
    utf8proc_int32_t dec[8];
    utf8proc_ssize_t n, k;
    int o = 0;

    switch (utf8proc_category(cp)) {
    case UTF8PROC_CATEGORY_LU:
    case UTF8PROC_CATEGORY_LT:
        *ccase = S_CASE_UPPER;
        break;
    case UTF8PROC_CATEGORY_LL:
        *ccase = S_CASE_LOWER;
        break;
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO:
        *ccase = S_CASE_OTHER;
        break;
    default:
        *ccase = S_CASE_NONE;
        break;
    }
    n = utf8proc_decompose_char(cp, dec, 8,
                                UTF8PROC_COMPAT | UTF8PROC_DECOMPOSE | UTF8PROC_CASEFOLD |
                                    UTF8PROC_STRIPMARK,
                                NULL);
    if (n < 0 || n > 8) {
        return -1;
    }
    for (k = 0; k < n; k++) {
        o += (int)utf8proc_encode_char(dec[k], out + o);
    }
    return o;
}

/* Fills the table of s_fold_cp for the code points 0x80..S_FOLD_END. */
static void
s_fold_init(struct s_fold *fold)
{
    uint8_t b[32];
    int32_t cp;

    for (cp = 0x80; cp < S_FOLD_END; cp++) {
        struct s_fold *f = &fold[cp - 0x80];
        int ccase;
        int n = s_fold_cp(cp, b, &ccase);

        f->ccase = (uint8_t)ccase;
        if (n < 0 || s_is_apostrophe(cp) || n > (int)sizeof(f->b)) {
            f->n = S_FOLD_SLOW;
            continue;
        }
        f->n = (uint8_t)n;
        memcpy(f->b, b, (size_t)n);
    }
}

/* Adds one code point of a word: folded (s_fold_cp; through the table fold when it has the
 * code point, fold may be NULL) and its case counted. */
static void
s_tok_add(const struct s_fold *fold, struct s_tok *t, int32_t cp)
{
    const struct s_fold *f = NULL;
    uint8_t buf[32];
    const uint8_t *b = buf;
    int ccase;
    int n;
    int k;

    if (cp < 0x80) {
        uint8_t c = (uint8_t)cp;

        if (c >= 'A' && c <= 'Z') {
            t->upper++;
            t->alpha++;
            c = (uint8_t)(c - 'A' + 'a');
        }
        else if (c >= 'a' && c <= 'z') {
            t->lower++;
            t->alpha++;
        }
        s_tok_byte(t, c);
        return;
    }
    if (fold != NULL && cp < S_FOLD_END && fold[cp - 0x80].n != S_FOLD_SLOW) {
        f = &fold[cp - 0x80];
    }
    if (f == NULL && s_is_apostrophe(cp)) {
        s_tok_byte(t, '\'');
        return;
    }
    if (f != NULL) {
        ccase = f->ccase;
        n = f->n;
        b = f->b;
    }
    else {
        n = s_fold_cp(cp, buf, &ccase);
    }
    if (ccase == S_CASE_UPPER) {
        t->upper++;
    }
    else if (ccase == S_CASE_LOWER) {
        t->lower++;
    }
    if (ccase != S_CASE_NONE) {
        t->alpha++;
    }
    for (k = 0; k < n; k++) {
        s_tok_byte(t, b[k]);
    }
}

/* ---- lexicon table ---- */

static inline size_t
s_filter_bit(uint32_t h)
{
    return (size_t)(h >> (32 - S_FILTER_BITS));
}

/* The second bit of a key in the filter, from the low bits of its hash (mixed, since the table
 * slot comes from them too). */
static inline size_t
s_filter_bit2(uint32_t h)
{
    return (size_t)((h * 0x9e3779b1u) >> (32 - S_FILTER_BITS));
}

/* The entry (lang, key[0..len)) whose s_hash is h, or NULL. */
static inline const struct s_entry *
s_find_h(const cls_sentiment_t *self, int lang, const uint8_t *key, size_t len, uint32_t h)
{
    size_t i = h & self->slot_mask;
    size_t bit = s_filter_bit(h);
    size_t bit2 = s_filter_bit2(h);

    if (!(self->filter[bit / 64] >> (bit % 64) & self->filter[bit2 / 64] >> (bit2 % 64) & 1)) {
        return NULL;
    }
    for (;;) {
        uint64_t s = self->slots[i];
        const struct s_entry *e;

        if (s == 0) {
            return NULL;
        }
        /* The slot holds the hash: most mismatches are seen without reading the entry. */
        if ((uint32_t)(s >> 32) == h) {
            e = &self->entries[(uint32_t)s - 1];
            if (e->lang == lang && e->len == len &&
                memcmp(self->keys + e->off, key, len) == 0) {
                return e;
            }
        }
        i = (i + 1) & self->slot_mask;
    }
}

static const struct s_entry *
s_find(const cls_sentiment_t *self, int lang, const uint8_t *key, size_t len)
{
    return s_find_h(self, lang, key, len, s_hash(lang, key, len));
}

/* s_hash(lang, w, i) for i = 0..n into hp[0..n]: FNV-1a is a running state, so every prefix
 * of a word (the stems s_stem_valence tries) gets its hash from one pass. */
static void
s_prefix_hashes(int lang, const uint8_t *w, size_t n, uint32_t *hp)
{
    uint32_t h = 2166136261u ^ ((uint32_t)lang * 0x9e3779b1u);
    size_t i;

    hp[0] = h;
    for (i = 0; i < n; i++) {
        h ^= w[i];
        h *= 16777619u;
        hp[i + 1] = h;
    }
}

static void
s_rehash(cls_sentiment_t *self, size_t nslots)
{
    size_t i;

    esc_free(self->slots);
    self->slots = esc_calloc(nslots, sizeof(*self->slots));
    self->slot_mask = nslots - 1;
    for (i = 0; i < self->n_entries; i++) {
        size_t j = self->entries[i].hash & self->slot_mask;

        while (self->slots[j] != 0) {
            j = (j + 1) & self->slot_mask;
        }
        self->slots[j] = (uint64_t)self->entries[i].hash << 32 | (uint32_t)(i + 1);
    }
}

/* Finds or creates the entry (lang, key). Borrowed; valid until the next insert. */
static struct s_entry *
s_insert(cls_sentiment_t *self, int lang, const uint8_t *key, size_t len)
{
    const struct s_entry *found = s_find(self, lang, key, len);
    struct s_entry *e;
    size_t j;

    if (found != NULL) {
        return &self->entries[found - self->entries];
    }
    if ((self->n_entries + 1) * 2 > self->slot_mask + 1) {
        s_rehash(self, (self->slot_mask + 1) * 2);
    }
    if (self->n_entries == self->cap_entries) {
        self->cap_entries = self->cap_entries ? self->cap_entries * 2 : 4096;
        self->entries = esc_realloc(self->entries, self->cap_entries * sizeof(*self->entries));
    }
    if (self->keys_len + len > self->keys_cap) {
        self->keys_cap = self->keys_cap ? self->keys_cap * 2 : 65536;
        while (self->keys_len + len > self->keys_cap) {
            self->keys_cap *= 2;
        }
        self->keys = esc_realloc(self->keys, self->keys_cap);
    }
    memcpy(self->keys + self->keys_len, key, len);
    e = &self->entries[self->n_entries];
    memset(e, 0, sizeof(*e));
    e->hash = s_hash(lang, key, len);
    self->filter[s_filter_bit(e->hash) / 64] |= (uint64_t)1 << (s_filter_bit(e->hash) % 64);
    self->filter[s_filter_bit2(e->hash) / 64] |= (uint64_t)1 << (s_filter_bit2(e->hash) % 64);
    e->off = (uint32_t)self->keys_len;
    e->len = (uint16_t)len;
    e->lang = (uint8_t)lang;
    self->keys_len += len;
    j = e->hash & self->slot_mask;
    while (self->slots[j] != 0) {
        j = (j + 1) & self->slot_mask;
    }
    self->slots[j] = (uint64_t)e->hash << 32 | (uint32_t)(self->n_entries + 1);
    self->n_entries++;
    return e;
}

static float
s_emoji_find(const cls_sentiment_t *self, int32_t cp)
{
    size_t i = ((uint32_t)cp * 2654435761u) & self->emoji_mask;

    for (;;) {
        if (self->emoji[i].cp == 0) {
            return 0.0f;
        }
        if (self->emoji[i].cp == (uint32_t)cp) {
            return self->emoji[i].val;
        }
        i = (i + 1) & self->emoji_mask;
    }
}

static void
s_emoji_put(cls_sentiment_t *self, int32_t cp, float val)
{
    size_t i;

    if ((self->n_emoji + 1) * 2 > self->emoji_mask + 1) {
        struct s_emoji *old = self->emoji;
        size_t oldn = self->emoji_mask + 1;
        size_t k;

        self->emoji_mask = oldn * 2 - 1;
        self->emoji = esc_calloc(oldn * 2, sizeof(*self->emoji));
        self->n_emoji = 0;
        for (k = 0; k < oldn; k++) {
            if (old[k].cp != 0) {
                s_emoji_put(self, (int32_t)old[k].cp, old[k].val);
            }
        }
        esc_free(old);
    }
    i = ((uint32_t)cp * 2654435761u) & self->emoji_mask;
    while (self->emoji[i].cp != 0 && self->emoji[i].cp != (uint32_t)cp) {
        i = (i + 1) & self->emoji_mask;
    }
    if (self->emoji[i].cp == 0) {
        self->n_emoji++;
    }
    self->emoji[i].cp = (uint32_t)cp;
    self->emoji[i].val = val;
}

/* ---- loading ---- */

static int
s_lang_of_field(const char *s)
{
    int i;

    if (strcmp(s, "*") == 0) {
        return S_ANY;
    }
    for (i = 0; i < S_NLANG; i++) {
        if (strcmp(s, s_lang_names[i]) == 0) {
            return i;
        }
    }
    return -1;
}

static int
s_load_param(cls_sentiment_t *self, int lang, const char *name, double v,
             struct esc_error *err, int lineno)
{
    size_t i;

    if (strcmp(name, "neutral") == 0) {
        if (lang == S_ANY || v < 0.0 || v >= 1.0) {
            esc_error_set(err, lineno, "param neutral needs a language and a value in [0, 1)");
            return ESC_ERR;
        }
        self->p.neutral[lang] = v;
        return ESC_OK;
    }
    for (i = 0; i < sizeof(s_param_defs) / sizeof(s_param_defs[0]); i++) {
        const struct s_param_def *d = &s_param_defs[i];

        if (strcmp(name, d->name) == 0) {
            if (lang != S_ANY || v < d->min || v > d->max) {
                esc_error_set(err, lineno, "param %s must be for * and in [%g, %g]", name,
                              d->min, d->max);
                return ESC_ERR;
            }
            *(double *)(void *)((char *)&self->p + d->off) = v;
            return ESC_OK;
        }
    }
    esc_error_set(err, lineno, "unknown param %s", name);
    return ESC_ERR;
}

/* Applies one parsed lexicon line. */
static int
s_load_entry(cls_sentiment_t *self, int lang, enum s_kind kind, const char *key, double v,
             struct esc_error *err, int lineno)
{
    size_t klen = strlen(key);
    struct s_tok t;
    struct s_entry *e;
    size_t i = 0;
    int32_t cp;

    switch (kind) {
    case S_K_PARAM:
        return s_load_param(self, lang, key, v, err, lineno);
    case S_K_EMOJI:
        cp = s_decode((const uint8_t *)key, klen, &i);
        while (i < klen && s_is_emoji_mod(s_peek((const uint8_t *)key, klen, i))) {
            s_decode((const uint8_t *)key, klen, &i);
        }
        if (cp <= 0 || i != klen || lang != S_ANY) {
            esc_error_set(err, lineno, "emoji must be one code point for *");
            return ESC_ERR;
        }
        s_emoji_put(self, cp, (float)v);
        return ESC_OK;
    case S_K_EMOTICON:
        if (lang != S_ANY) {
            esc_error_set(err, lineno, "emoticons are for *");
            return ESC_ERR;
        }
        if (klen < 2 || klen > S_EMOTICON_MAX) {
            return ESC_OK; /* ASCII art longer than any post writes: not matched */
        }
        e = s_insert(self, S_ANY, (const uint8_t *)key, klen);
        e->flags |= S_F_EMOTICON;
        e->word = (float)v;
        if (klen > self->emoticon_max) {
            self->emoticon_max = klen;
        }
        return ESC_OK;
    default:
        break;
    }
    if (lang == S_ANY) {
        esc_error_set(err, lineno, "words need a language");
        return ESC_ERR;
    }
    s_tok_reset(&t);
    while (i < klen) {
        cp = s_decode((const uint8_t *)key, klen, &i);
        if (cp < 0) {
            esc_error_set(err, lineno, "key is not valid UTF-8");
            return ESC_ERR;
        }
        s_tok_add(self->fold, &t, cp);
    }
    if (t.too_long || t.nb == 0) {
        esc_error_set(err, lineno, "key is empty or longer than %d bytes", S_TOK_MAX);
        return ESC_ERR;
    }
    e = s_insert(self, lang, t.b, t.nb);
    switch (kind) {
    case S_K_WORD:
        e->flags |= S_F_WORD;
        e->word = (float)v;
        self->n_valence[lang]++;
        break;
    case S_K_STEM:
        e->flags |= S_F_STEM;
        e->stem = (float)v;
        self->n_valence[lang]++;
        break;
    case S_K_END:
        e->flags |= S_F_END;
        e->end = (float)v;
        if (t.nb > self->end_max[lang]) {
            self->end_max[lang] = t.nb;
        }
        break;
    case S_K_NEG:
        e->flags |= S_F_NEG;
        e->neg = (float)v;
        break;
    case S_K_NEGSTOP:
        e->flags |= S_F_NEGSTOP;
        break;
    case S_K_BOOST:
        e->flags |= S_F_BOOST;
        e->boost = (float)v;
        break;
    case S_K_CONTRAST:
        e->flags |= S_F_CONTRAST;
        e->contrast = (float)v;
        break;
    default:
        ESC_ASSERT(0);
    }
    return ESC_OK;
}

/* Parses "lang TAB kind TAB key TAB value" in place. */
static int
s_load_line(cls_sentiment_t *self, char *line, struct esc_error *err, int lineno)
{
    char *f[4];
    char *p = line;
    char *end;
    int nf = 0;
    int lang;
    size_t k;
    double v;

    while (nf < 4) {
        f[nf++] = p;
        p = strchr(p, '\t');
        if (p == NULL) {
            break;
        }
        *p++ = '\0';
    }
    if (nf != 4 || p != NULL) {
        esc_error_set(err, lineno, "expected 4 tab-separated fields");
        return ESC_ERR;
    }
    lang = s_lang_of_field(f[0]);
    if (lang < 0) {
        esc_error_set(err, lineno, "unknown language '%.16s'", f[0]);
        return ESC_ERR;
    }
    errno = 0;
    v = strtod(f[3], &end);
    if (errno != 0 || end == f[3] || *end != '\0' || !isfinite(v) || fabs(v) > 100.0) {
        esc_error_set(err, lineno, "bad value '%.32s'", f[3]);
        return ESC_ERR;
    }
    if (f[2][0] == '\0') {
        esc_error_set(err, lineno, "empty key");
        return ESC_ERR;
    }
    for (k = 0; k < sizeof(s_kinds) / sizeof(s_kinds[0]); k++) {
        if (strcmp(f[1], s_kinds[k].name) == 0) {
            return s_load_entry(self, lang, s_kinds[k].kind, f[2], v, err, lineno);
        }
    }
    esc_error_set(err, lineno, "unknown kind '%.16s'", f[1]);
    return ESC_ERR;
}

/* A new node of the ending tries; returns its index, or 0 when there are too many. */
static uint16_t
s_end_node(cls_sentiment_t *self, uint8_t byte)
{
    struct s_end_node *e;

    if (self->n_ends >= UINT16_MAX) {
        return 0;
    }
    if (self->n_ends == self->cap_ends) {
        self->cap_ends = self->cap_ends ? self->cap_ends * 2 : 256;
        self->ends = esc_realloc(self->ends, self->cap_ends * sizeof(*self->ends));
    }
    e = &self->ends[self->n_ends];
    memset(e, 0, sizeof(*e));
    e->byte = byte;
    return (uint16_t)self->n_ends++;
}

/* Builds the ending tries from the loaded entries: node 0 (none), then one root per language,
 * and every ending's bytes from its last one. */
static int
s_ends_build(cls_sentiment_t *self)
{
    size_t i;
    int l;

    for (l = 0; l <= S_NLANG; l++) {
        s_end_node(self, 0); /* node 0, then the roots 1..S_NLANG */
    }
    for (i = 0; i < self->n_entries; i++) {
        const struct s_entry *e = &self->entries[i];
        const uint8_t *key = (const uint8_t *)self->keys + e->off;
        uint16_t node;
        size_t k;

        if (!(e->flags & S_F_END) || e->lang >= S_NLANG) {
            continue;
        }
        node = (uint16_t)(1 + e->lang);
        for (k = 1; k <= e->len; k++) {
            uint8_t b = key[e->len - k];
            uint16_t c = self->ends[node].child;

            while (c != 0 && self->ends[c].byte != b) {
                c = self->ends[c].next;
            }
            if (c == 0) {
                c = s_end_node(self, b);
                if (c == 0) {
                    return ESC_ERR;
                }
                self->ends[c].next = self->ends[node].child;
                self->ends[node].child = c;
            }
            node = c;
        }
        self->ends[node].end = (uint32_t)(i + 1);
    }
    self->kids = esc_calloc(self->n_ends, sizeof(*self->kids));
    for (i = 1; i < self->n_ends; i++) {
        uint16_t c;

        for (c = self->ends[i].child; c != 0; c = self->ends[c].next) {
            if (self->ends[c].byte >= 'a' && self->ends[c].byte <= 'z') {
                self->kids[i][self->ends[c].byte - 'a'] = c;
            }
        }
    }
    return ESC_OK;
}

static void
s_defaults(struct s_params *p)
{
    int i;

    p->alpha = 15.0;
    p->window = 3.0;
    p->caps = 0.733;
    p->elongation = 0.3;
    p->exclamation = 0.292;
    p->exclamation_max = 4.0;
    p->question = 0.18;
    p->contrast_before = 0.5;
    p->min_stem = 4.0;
    for (i = 0; i < S_NLANG; i++) {
        p->neutral[i] = 0.05;
    }
}

static char s_default_path[PATH_MAX + 64];
static pthread_once_t s_default_once = PTHREAD_ONCE_INIT;

static void
s_default_find(void)
{
    cls_datafile_find("sentiment.lex", CLS_SENTIMENT_LEXICON, s_default_path,
                      sizeof(s_default_path));
}

const char *
cls_sentiment_default_path(void)
{
    pthread_once(&s_default_once, s_default_find);
    return s_default_path;
}

cls_sentiment_t *
cls_sentiment_new(const char *lexicon_path, struct esc_error *err)
{
    const char *path = lexicon_path != NULL ? lexicon_path : cls_sentiment_default_path();
    cls_sentiment_t *self = NULL;
    char line[S_LINE_MAX];
    int lineno = 0;
    FILE *f;
    int i;

    if (err != NULL) {
        esc_strlcpy(err->source, path, sizeof(err->source));
    }
    f = fopen(path, "r");
    if (f == NULL) {
        esc_error_set(err, 0, "cannot open sentiment lexicon: %s", strerror(errno));
        esc_log_error("cannot open lexicon path=%s err=%s", path, strerror(errno));
        return NULL;
    }
    self = esc_calloc(1, sizeof(*self));
    s_defaults(&self->p);
    s_fold_init(self->fold);
    for (i = 0; i < S_FOLD_END; i++) {
        self->word_cp[i] = s_is_word_cp(i) ? 1 : 0;
    }
    self->slots = esc_calloc(S_SLOTS_MIN, sizeof(*self->slots));
    self->slot_mask = S_SLOTS_MIN - 1;
    self->emoji = esc_calloc(256, sizeof(*self->emoji));
    self->emoji_mask = 255;
    while (fgets(line, sizeof(line), f) != NULL) {
        size_t n = strlen(line);

        lineno++;
        if (n == sizeof(line) - 1 && line[n - 1] != '\n') {
            esc_error_set(err, lineno, "line longer than %d bytes", S_LINE_MAX - 2);
            goto fail;
        }
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) {
            line[--n] = '\0';
        }
        if (n == 0 || line[0] == '#') {
            continue;
        }
        if (s_load_line(self, line, err, lineno) != ESC_OK) {
            goto fail;
        }
    }
    if (ferror(f)) {
        esc_error_set(err, lineno, "read error: %s", strerror(errno));
        goto fail;
    }
    for (i = 0; i < S_NLANG; i++) {
        if (self->n_valence[i] == 0) {
            esc_error_set(err, 0, "lexicon has no words for language %s", s_lang_names[i]);
            goto fail;
        }
    }
    if (s_ends_build(self) != ESC_OK) {
        esc_error_set(err, 0, "too many endings");
        goto fail;
    }
    fclose(f);
    esc_log_debug("lexicon loaded path=%s entries=%zu emoji=%zu", path, self->n_entries,
                  self->n_emoji);
    return self;

fail:
    esc_log_error("bad lexicon path=%s line=%d reason=%s", path, err != NULL ? err->line : 0,
                  err != NULL ? err->text : "?");
    fclose(f);
    cls_sentiment_destroy(&self);
    return NULL;
}

void
cls_sentiment_destroy(cls_sentiment_t **self_p)
{
    cls_sentiment_t *self;

    if (self_p == NULL || *self_p == NULL) {
        return;
    }
    self = *self_p;
    esc_free(self->entries);
    esc_free(self->slots);
    esc_free(self->keys);
    esc_free(self->emoji);
    esc_free(self->ends);
    esc_free(self->kids);
    esc_free(self);
    *self_p = NULL;
}

/* ---- scoring ---- */

static bool
s_mixed_case(struct s_state *st)
{
    size_t i;

    if (st->mixed_case < 0) {
        st->mixed_case = 0;
        for (i = 0; i < st->len; i++) {
            if (st->text[i] >= 'a' && st->text[i] <= 'z') {
                st->mixed_case = 1;
                break;
            }
        }
    }
    return st->mixed_case == 1;
}

static void
s_push(struct s_state *st, float boost, float neg, bool caps)
{
    unsigned w = (unsigned)st->self->p.window;
    unsigned i;

    if (st->nprev < w) {
        st->nprev++;
    }
    for (i = st->nprev - 1; i > 0; i--) {
        st->prev[i] = st->prev[i - 1];
    }
    st->prev[0].boost = boost;
    st->prev[0].neg = neg;
    st->prev[0].caps = caps;
}

static void
s_clause_end(struct s_state *st)
{
    st->nprev = 0;
    st->last = 0.0;
}

static void
s_sentence_end(struct s_state *st)
{
    st->total += st->sentence;
    st->sentence = 0.0;
    st->weight = 1.0;
    st->nprev = 0;
    st->last = 0.0;
}

/* Adds a word valence after the rules of the words before it in the clause. */
static void
s_add_valence(struct s_state *st, double val, bool caps, bool elongated)
{
    const struct s_params *p = &st->self->p;
    double v = val;
    unsigned i;

    if (caps && s_mixed_case(st)) {
        v += copysign(p->caps, val);
    }
    if (elongated) {
        v += copysign(p->elongation, val);
    }
    for (i = 0; i < st->nprev; i++) {
        double s = st->prev[i].boost;

        if (s == 0.0) {
            continue;
        }
        if (val < 0) {
            s = -s;
        }
        if (st->prev[i].caps && s_mixed_case(st)) {
            s += copysign(p->caps, val);
        }
        v += s * (1.0 - 0.05 * i);
    }
    if (v * val < 0) {
        v = 0.0; /* a dampener does not flip a weak word */
    }
    for (i = 0; i < st->nprev; i++) {
        if (st->prev[i].neg != 0.0f) {
            v *= st->prev[i].neg;
            break;
        }
    }
    st->sentence += v * st->weight;
    st->last = v;
    st->hits++;
}

/* Valence of w as a stem (or a whole word) followed by one of the language's endings; the
 * longest stem wins. The endings w has are found by walking the language's ending trie from
 * the last byte of w. */
static bool
s_stem_valence(const cls_sentiment_t *self, int lang, const uint8_t *w, size_t n,
               const uint32_t *hp, double *val)
{
    size_t min_stem = (size_t)self->p.min_stem;
    uint16_t node = (uint16_t)(1 + lang);
    size_t k;

    for (k = 1; k <= self->end_max[lang] && k + min_stem <= n; k++) {
        uint8_t b = w[n - k];
        uint16_t c;
        const struct s_entry *end;
        const struct s_entry *stem;

        if (b >= 'a' && b <= 'z') {
            c = self->kids[node][b - 'a'];
        }
        else {
            c = self->ends[node].child;
            while (c != 0 && self->ends[c].byte != b) {
                c = self->ends[c].next;
            }
        }
        if (c == 0) {
            return false; /* no ending is this long a suffix of w */
        }
        node = c;
        if (self->ends[node].end == 0) {
            continue;
        }
        end = &self->entries[self->ends[node].end - 1];
        stem = s_find_h(self, lang, w, n - k, hp[n - k]);
        if (stem == NULL) {
            continue;
        }
        if (stem->flags & S_F_STEM) {
            *val = (double)stem->stem * end->end;
            return true;
        }
        if (stem->flags & S_F_WORD) {
            *val = (double)stem->word * end->end;
            return true;
        }
    }
    return false;
}

static void
s_on_word(struct s_state *st, const struct s_tok *t)
{
    const cls_sentiment_t *self = st->self;
    const struct s_entry *e = NULL;
    bool caps = t->upper >= 2 && t->lower == 0;
    double val = 0.0;
    bool have = false;
    uint32_t hb[S_TOK_MAX + 1];
    uint32_t ha[S_TOK_MAX + 1];

    if (t->too_long || t->alpha == 0) {
        st->last = 0.0;
        s_push(st, 0.0f, 0.0f, false);
        return;
    }
    s_prefix_hashes(st->lang, t->b, t->nb, hb);
    if (t->elongated) {
        s_prefix_hashes(st->lang, t->a, t->na, ha);
    }
    e = s_find_h(self, st->lang, t->b, t->nb, hb[t->nb]);
    if (e == NULL && t->elongated) {
        e = s_find_h(self, st->lang, t->a, t->na, ha[t->na]);
    }
    if (e != NULL) {
        if ((e->flags & S_F_NEGSTOP) && st->nprev > 0 && st->prev[0].neg != 0.0f) {
            st->prev[0].neg = 0.0f; /* "no a la reelección": opposition, not negation */
        }
        if (e->flags & S_F_NEG) {
            st->last = 0.0;
            st->known++;
            s_push(st, 0.0f, e->neg, caps);
            return;
        }
        if (e->flags & S_F_BOOST) {
            /* a booster right after a word scales it too: "mejoró muchísimo", "gostei muito" */
            if (st->last != 0.0) {
                st->sentence += copysign(e->boost, st->last) * st->weight;
                st->last = 0.0;
            }
            st->known++;
            s_push(st, e->boost, 0.0f, caps);
            return;
        }
        if (e->flags & S_F_CONTRAST) {
            st->known++;
            st->sentence *= self->p.contrast_before;
            st->weight = e->contrast;
            st->nprev = 0;
            st->last = 0.0;
            return;
        }
        if (e->flags & S_F_WORD) {
            val = e->word;
            have = true;
        }
        else if (e->flags & S_F_STEM) {
            val = e->stem;
            have = true;
        }
    }
    if (!have && self->end_max[st->lang] > 0) {
        have = s_stem_valence(self, st->lang, t->b, t->nb, hb, &val);
        if (!have && t->elongated) {
            have = s_stem_valence(self, st->lang, t->a, t->na, ha, &val);
        }
    }
    st->last = 0.0;
    if (have) {
        st->known++;
        esc_log_debug("word=%.*s lang=%s valence=%.3f", (int)t->nb, (const char *)t->b,
                      s_lang_names[st->lang], val);
        if (val != 0.0) {
            s_add_valence(st, val, caps, t->elongated);
        }
    }
    s_push(st, 0.0f, 0.0f, caps);
}

/* Emoji and emoticons: their own valence, weighted by contrast only. */
static void
s_add_symbol(struct s_state *st, double val)
{
    if (val != 0.0) {
        st->sentence += val * st->weight;
        st->hits++;
        st->known++;
    }
}

/* Skips a URL starting at i ("http://", "https://", "www."); returns the index after it, or
 * i when there is none. */
static size_t
s_skip_url(const uint8_t *s, size_t len, size_t i)
{
    static const char *const prefixes[] = { "http://", "https://", "www." };
    size_t k;

    for (k = 0; k < sizeof(prefixes) / sizeof(prefixes[0]); k++) {
        size_t n = strlen(prefixes[k]);
        size_t j;

        if (len - i < n) {
            continue;
        }
        for (j = 0; j < n; j++) {
            uint8_t c = s[i + j];

            if (c >= 'A' && c <= 'Z') {
                c = (uint8_t)(c - 'A' + 'a');
            }
            if (c != (uint8_t)prefixes[k][j]) {
                break;
            }
        }
        if (j == n) {
            i += n;
            while (i < len && !s_ascii_space(s[i])) {
                i++;
            }
            return i;
        }
    }
    return i;
}

/* The states of one pass over a text: one per language scored. A text whose language is
 * unknown is scored in every language in the same pass: reading and folding its words does
 * not depend on the language, only the lookups do. */
struct s_scan {
    struct s_state *st;
    unsigned n;
};

static void
s_all_word(struct s_scan *sc, const struct s_tok *t)
{
    unsigned k;

    for (k = 0; k < sc->n; k++) {
        s_on_word(&sc->st[k], t);
    }
}

static void
s_all_symbol(struct s_scan *sc, double val)
{
    unsigned k;

    for (k = 0; k < sc->n; k++) {
        s_add_symbol(&sc->st[k], val);
    }
}

static void
s_all_sentence_end(struct s_scan *sc)
{
    unsigned k;

    for (k = 0; k < sc->n; k++) {
        s_sentence_end(&sc->st[k]);
    }
}

static void
s_all_clause_end(struct s_scan *sc)
{
    unsigned k;

    for (k = 0; k < sc->n; k++) {
        s_clause_end(&sc->st[k]);
    }
}

/* Reads the word starting at i (letters, digits, marks, inner apostrophes). */
static size_t
s_word(struct s_scan *sc, size_t i)
{
    const struct s_state *st = &sc->st[0];
    const uint8_t *s = st->text;
    size_t len = st->len;
    struct s_tok t;

    s_tok_reset(&t);
    while (i < len) {
        size_t j = i;
        int32_t cp;

        if (s_ascii_alnum(s[i])) {
            i = s_tok_ascii(&t, s, i, len); /* the common case, without decoding */
            continue;
        }
        cp = s_decode(s, len, &j);
        if (cp >= 0 && s_word_cp(st->self, cp)) {
            s_tok_add(st->self->fold, &t, cp);
            i = j;
        }
        else if (cp >= 0 && s_is_apostrophe(cp) && t.nb > 0
                 && s_word_cp(st->self, s_peek(s, len, j))) {
            s_tok_add(st->self->fold, &t, cp);
            i = j;
        }
        else {
            break;
        }
    }
    s_all_word(sc, &t);
    return i;
}

static int
s_cp_case(int32_t cp)
{
    utf8proc_category_t c;

    if (cp < 0x80) {
        if (cp >= 'A' && cp <= 'Z') {
            return 1;
        }
        return (cp >= 'a' && cp <= 'z') ? -1 : 0;
    }
    c = utf8proc_category(cp);
    if (c == UTF8PROC_CATEGORY_LU || c == UTF8PROC_CATEGORY_LT) {
        return 1;
    }
    return c == UTF8PROC_CATEGORY_LL ? -1 : 0;
}

static bool
s_cp_digit(int32_t cp)
{
    if (cp < 0x80) {
        return cp >= '0' && cp <= '9';
    }
    return utf8proc_category(cp) == UTF8PROC_CATEGORY_ND;
}

/* Reads the hashtag whose text starts at i (after '#') and scores its parts as words:
 * "#MalaGestión" -> "mala", "gestión"; "#NoALaVacancia2026" -> "no", "a", "la", "vacancia",
 * "2026". */
static size_t
s_hashtag(struct s_scan *sc, size_t i)
{
    const struct s_state *st = &sc->st[0];
    const uint8_t *s = st->text;
    size_t len = st->len;
    int32_t cps[S_TAG_MAX];
    size_t n = 0;
    size_t k;
    struct s_tok t;

    while (i < len) {
        size_t j = i;
        int32_t cp = s_decode(s, len, &j);

        if (cp < 0 || !(s_word_cp(st->self, cp) || cp == '_')) {
            break;
        }
        if (n < S_TAG_MAX) {
            cps[n++] = cp;
        }
        i = j;
    }
    s_tok_reset(&t);
    for (k = 0; k < n; k++) {
        bool cut = false;

        if (cps[k] == '_') {
            if (t.nb > 0) {
                s_all_word(sc, &t);
                s_tok_reset(&t);
            }
            continue;
        }
        if (k > 0 && cps[k - 1] != '_') {
            int pc = s_cp_case(cps[k - 1]);
            int cc = s_cp_case(cps[k]);

            if (pc < 0 && cc > 0) {
                cut = true; /* malaGestion */
            }
            else if (pc > 0 && cc > 0 && k + 1 < n && s_cp_case(cps[k + 1]) < 0) {
                cut = true; /* ONPEInforma */
            }
            else if (s_cp_digit(cps[k - 1]) != s_cp_digit(cps[k])) {
                cut = true; /* Elecciones2026 */
            }
        }
        if (cut && t.nb > 0) {
            s_all_word(sc, &t);
            s_tok_reset(&t);
        }
        s_tok_add(st->self->fold, &t, cps[k]);
    }
    if (t.nb > 0) {
        s_all_word(sc, &t);
    }
    return i;
}

/* Tries an emoticon at i; returns its length or 0. Emoticons must start after a space (or
 * the start) and must not run into a letter or digit. */
static size_t
s_emoticon(struct s_scan *sc, size_t i)
{
    const struct s_state *st = &sc->st[0];
    const uint8_t *s = st->text;
    size_t run = 0;
    size_t n;

    if (i > 0 && !s_ascii_space(s[i - 1])) {
        return 0;
    }
    while (i + run < st->len && run < st->self->emoticon_max && s[i + run] > 0x20 &&
           s[i + run] < 0x7f) {
        run++;
    }
    for (n = run; n >= 2; n--) {
        const struct s_entry *e;

        if (i + n < st->len && s_ascii_alnum(s[i + n])) {
            continue;
        }
        e = s_find(st->self, S_ANY, s + i, n);
        if (e != NULL && (e->flags & S_F_EMOTICON)) {
            s_all_symbol(sc, e->word);
            return n;
        }
    }
    return 0;
}

static void
s_scan(struct s_scan *sc)
{
    const struct s_state *st = &sc->st[0];
    const uint8_t *s = st->text;
    size_t len = st->len;
    size_t i = 0;
    unsigned k;

    while (i < len) {
        uint8_t c = s[i];
        size_t j;
        int32_t cp;

        if (c < 0x80) {
            if (s_ascii_alnum(c)) {
                j = (c == 'h' || c == 'H' || c == 'w' || c == 'W') ? s_skip_url(s, len, i) : i;
                if (j != i) {
                    i = j;
                    continue;
                }
                i = s_word(sc, i);
                continue;
            }
            if (s_ascii_space(c)) {
                if (c == '\n') {
                    s_all_sentence_end(sc);
                }
                i++;
                continue;
            }
            if (c == '#' && i + 1 < len && s_word_cp(st->self, s_peek(s, len, i + 1))) {
                i = s_hashtag(sc, i + 1);
                continue;
            }
            if (c == '@' && i + 1 < len && s_word_cp(st->self, s_peek(s, len, i + 1))) {
                i++;
                while (i < len) {
                    j = i;
                    cp = s_decode(s, len, &j);
                    if (cp < 0
                        || !(s_word_cp(st->self, cp) || cp == '_' || cp == '.' || cp == '@')) {
                        break;
                    }
                    i = j;
                }
                continue;
            }
            j = s_emoticon(sc, i);
            if (j > 0) {
                i += j;
                continue;
            }
            switch (c) {
            case '!':
                for (k = 0; k < sc->n; k++) {
                    sc->st[k].excl++;
                }
                s_all_sentence_end(sc);
                break;
            case '?':
                for (k = 0; k < sc->n; k++) {
                    sc->st[k].quest++;
                }
                s_all_sentence_end(sc);
                break;
            case '.':
                s_all_sentence_end(sc);
                break;
            case ',':
            case ';':
            case ':':
                s_all_clause_end(sc);
                break;
            default:
                break;
            }
            i++;
            continue;
        }
        j = i;
        cp = s_decode(s, len, &j);
        if (cp < 0) {
            i = j; /* invalid byte: skipped */
            continue;
        }
        if (s_word_cp(st->self, cp)) {
            i = s_word(sc, i);
            continue;
        }
        if (s_is_emoji(cp)) {
            s_all_symbol(sc, s_emoji_find(st->self, cp));
        }
        i = j;
    }
    s_all_sentence_end(sc);
}

/* The result of one language's state after the pass. */
static void
s_result(const cls_sentiment_t *self, const struct s_state *stp, struct cls_sentiment_result *out)
{
    const struct s_params *p = &self->p;
    const struct s_state *st = stp;
    int lang = st->lang;
    double total;
    double score;

    total = st->total;
    if (total != 0.0) {
        double emph = fmin((double)st->excl, p->exclamation_max) * p->exclamation;

        if (st->quest > 1) {
            emph += fmin((double)st->quest * p->question, 0.96);
        }
        total += copysign(emph, total);
    }
    score = total / sqrt(total * total + p->alpha);
    if (score > 1.0) {
        score = 1.0;
    }
    else if (score < -1.0) {
        score = -1.0;
    }
    out->score = score;
    if (score >= p->neutral[lang] && score > 0.0) {
        out->label = CLS_SENTIMENT_POSITIVE;
    }
    else if (score <= -p->neutral[lang] && score < 0.0) {
        out->label = CLS_SENTIMENT_NEGATIVE;
    }
    else {
        out->label = CLS_SENTIMENT_NEUTRAL;
    }
    esc_strlcpy(out->lang, s_lang_names[lang], sizeof(out->lang));
    out->hits = st->hits;
    out->known = st->known;
}

/* Scores text in the languages langs[0..n) in one pass, into out[0..n). */
static void
s_run(const cls_sentiment_t *self, const int *langs, unsigned n, const char *text, size_t len,
      struct cls_sentiment_result *out)
{
    struct s_state st[S_NLANG];
    struct s_scan sc;
    unsigned k;

    ESC_ASSERT(n >= 1 && n <= S_NLANG);
    memset(st, 0, n * sizeof(st[0]));
    for (k = 0; k < n; k++) {
        st[k].self = self;
        st[k].lang = langs[k];
        st[k].text = (const uint8_t *)text;
        st[k].len = text != NULL ? len : 0;
        st[k].mixed_case = -1;
        st[k].weight = 1.0;
    }
    sc.st = st;
    sc.n = n;
    s_scan(&sc);
    for (k = 0; k < n; k++) {
        s_result(self, &st[k], &out[k]);
    }
}

/* "es", "es-PE", "spa" -> S_ES ...; -1 when unknown. */
static int
s_lang_of_code(const char *code)
{
    static const struct {
        const char *code;
        int lang;
    } codes[] = {
        { "es", S_ES }, { "spa", S_ES }, { "en", S_EN }, { "eng", S_EN },
        { "pt", S_PT }, { "por", S_PT },
    };
    char low[4];
    size_t n = 0;
    size_t k;

    if (code == NULL) {
        return -1;
    }
    while (n < 3 && code[n] != '\0' && code[n] != '-' && code[n] != '_') {
        char c = code[n];

        if (c >= 'A' && c <= 'Z') {
            c = (char)(c - 'A' + 'a');
        }
        low[n++] = c;
    }
    if (code[n] != '\0' && code[n] != '-' && code[n] != '_') {
        return -1;
    }
    low[n] = '\0';
    for (k = 0; k < sizeof(codes) / sizeof(codes[0]); k++) {
        if (strcmp(low, codes[k].code) == 0) {
            return codes[k].lang;
        }
    }
    return -1;
}

void
cls_sentiment_analyze(const cls_sentiment_t *self, const char *lang, const char *text,
                      size_t len, struct cls_sentiment_result *out)
{
    static const int s_all_langs[S_NLANG] = { S_ES, S_EN, S_PT };
    struct cls_sentiment_result r[S_NLANG];
    int l = s_lang_of_code(lang);
    int k;

    ESC_ASSERT(self != NULL && out != NULL);
    if (l >= 0) {
        s_run(self, &l, 1, text, len, out);
        return;
    }
    /* Unknown language: the lexicon that knows most words wins; Spanish on a tie. */
    s_run(self, s_all_langs, S_NLANG, text, len, r);
    *out = r[S_ES];
    for (k = S_ES + 1; k < S_NLANG; k++) {
        if (r[k].known > out->known || (r[k].known == out->known && r[k].hits > out->hits)) {
            *out = r[k];
        }
    }
}

double
cls_sentiment_score(const cls_sentiment_t *self, const char *lang, const char *text, size_t len,
                    int *label)
{
    struct cls_sentiment_result r;

    cls_sentiment_analyze(self, lang, text, len, &r);
    if (label != NULL) {
        *label = r.label;
    }
    return r.score;
}

const char *
cls_sentiment_label_str(int label)
{
    if (label > 0) {
        return "positive";
    }
    return label < 0 ? "negative" : "neutral";
}

double
cls_sentiment_neutral_band(const cls_sentiment_t *self, const char *lang)
{
    int l = s_lang_of_code(lang);

    return l < 0 ? -1.0 : self->p.neutral[l];
}
