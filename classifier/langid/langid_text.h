#ifndef CLS_LANGID_TEXT_H
#define CLS_LANGID_TEXT_H

/* Tokenisation and feature hashing for language identification (docs/language-id.md). The
 * trainer and the detector both go through these functions, so a feature hashed at build time
 * is the same feature at run time. Internal to classifier/langid. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CLS_LANGID_MAX_CP 4096   /* code points of a post looked at; the rest is ignored */
#define CLS_LANGID_MAX_TOKS 1024 /* tokens of a post looked at */
#define CLS_LANGID_WORD_CP 32    /* code points of a token used for features */
#define CLS_LANGID_ORDER_MAX 5   /* longest character n-gram */
/* Features one token yields at most: n-grams of orders 1..5 over the padded token, + 1 word. */
#define CLS_LANGID_TOK_FEATS (CLS_LANGID_ORDER_MAX * (CLS_LANGID_WORD_CP + 2) + 1)

/* Feature kinds: character n-grams by order, then the whole word. */
enum cls_langid_kind {
    CLS_LANGID_K1 = 0,
    CLS_LANGID_K2,
    CLS_LANGID_K3,
    CLS_LANGID_K4,
    CLS_LANGID_K5,
    CLS_LANGID_KWORD,
    CLS_LANGID_KINDS
};

struct cls_langid_tok {
    uint64_t key;     /* 64-bit hash of the token's bytes (not a feature hash: the detector
                         remembers tokens under it) */
    uint32_t off;     /* offset of the lower-cased token in the text buffer */
    uint16_t len;     /* its length in bytes (not NUL-terminated) */
    uint8_t hashtag;  /* 1 when it comes from a #hashtag */
};

/* Tokeniser state with fixed-size buffers: tokenising never allocates. One per thread. */
struct cls_langid_text {
    int32_t cp[CLS_LANGID_MAX_CP];                         /* decoded input */
    uint8_t cl[CLS_LANGID_MAX_CP];                         /* class of each code point */
    char buf[CLS_LANGID_MAX_CP * 4 + 8];                   /* lower-cased tokens, back to back */
    struct cls_langid_tok toks[CLS_LANGID_MAX_TOKS];       /* tokens of the last call */
    size_t n_toks;                                         /* how many */
    size_t n_plain;                                        /* of which not from hashtags */
};

/* Splits s[0..len) into lower-cased word tokens: URLs, e-mail addresses, @mentions, digits,
 * punctuation, symbols and emoji are dropped; #hashtags are split at CamelCase and
 * letter/digit boundaries and their parts flagged; apostrophe variants inside a word become
 * "'"; runs of three or more equal letters shrink to two; decomposed accents are composed
 * (NFC). Invalid UTF-8 bytes act as separators. Returns the number of tokens. */
size_t cls_langid_tokenize(struct cls_langid_text *t, const char *s, size_t len);

/* Hashes the features of one lower-cased token w[0..len) (as produced by
 * cls_langid_tokenize) into hashes/kinds, at most CLS_LANGID_TOK_FEATS. Returns the count. */
size_t cls_langid_features(const char *w, size_t len, uint64_t *hashes, uint8_t *kinds);

/* Hash of the whole-word feature of token w[0..len): the last one cls_langid_features gives. */
uint64_t cls_langid_word_hash(const char *w, size_t len);

/* Hash of a character n-gram given as bytes, ' ' standing for a word boundary: the same value
 * cls_langid_features gives that n-gram. */
uint64_t cls_langid_ngram_hash(const char *s, size_t len);

/* Lower-cases UTF-8 s[0..len) the way tokens are lower-cased, into out (outsz bytes, result
 * NUL-terminated and truncated to fit). Returns the length written. */
size_t cls_langid_lower(const char *s, size_t len, char *out, size_t outsz);

#endif
