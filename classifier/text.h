#ifndef CLS_TEXT_H
#define CLS_TEXT_H

/* Text normalisation and tokenisation for the classifier (docs/classifier.md, "Normalisation").
 * Every string that is matched - post text, hashtags, mentions and the keywords themselves -
 * goes through the same functions, so both sides of a comparison are folded the same way:
 * invalid UTF-8 repaired with U+FFFD, apostrophes unified to U+0027, NFKC, Unicode case
 * folding, accent folding (combining diacritics removed) except the tilde of ñ unless
 * fold_enye is set. A cls_text_t owns reusable buffers, so the hot path does not allocate once
 * they have grown; it is used by one thread at a time. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CLS_TEXT_MAX (1024 * 1024) /* longest input processed, bytes; the rest is ignored */
#define CLS_POS_NONE UINT32_MAX    /* position of tokens outside the main sequence */
#define CLS_LINKS_MAX 32           /* links (URLs in the text + post url) kept per post */
#define CLS_TOKF_ENYE 0x01         /* cls_token.flags: the normalised text contains ñ */

struct cls_text_opts {
    bool fold_enye; /* also fold ñ to n (default false: "año" and "ano" differ) */
};

enum cls_tok_kind {
    CLS_TOK_WORD = 0,     /* maximal run of letters, digits, '_' and word-internal "'" */
    CLS_TOK_HASHTAG,      /* "#tag": the whole tag, without '#' */
    CLS_TOK_HASHPART,     /* one part of a split hashtag (same position as its tag) */
    CLS_TOK_MENTION,      /* "@handle": the whole handle without '@' ("ana@mastodon.social") */
    CLS_TOK_MENTIONPART,  /* the user part of "@user@domain" (same position as its handle) */
    CLS_TOK_META_HASHTAG, /* an entry of the post's hashtags field */
    CLS_TOK_META_MENTION, /* an entry of the post's mentions field (or its user part) */
    CLS_TOK_AUTHOR,       /* the post's author handle without '@' (and its user part) */
    CLS_TOK_LINK,         /* a link: "host/path" of a URL in the text or of the post url */
    CLS_TOK_LANG,         /* the post's language code */
    CLS_TOK_PLATFORM,     /* the post's platform */
    CLS_TOK_KINDS
};

struct cls_token {
    uint32_t off;    /* offset of the normalised text in the token buffer (cls_text_tok_str) */
    uint32_t len;    /* its length in bytes; the text is not NUL-terminated */
    uint32_t pos;    /* position in the main sequence (words, hashtags, mentions), for phrases;
                        CLS_POS_NONE for meta tokens */
    uint32_t cp_off; /* the original span, in decoded code points (for cls_text_tok_raw) */
    uint32_t cp_len;
    uint8_t kind;    /* enum cls_tok_kind */
    uint8_t flags;   /* CLS_TOKF_* */
};

typedef struct cls_text cls_text_t;

/* Returns a caller-owned tokeniser with empty buffers. */
cls_text_t *cls_text_new(void);
/* Frees the tokeniser and its buffers. NULL-safe, sets *self_p = NULL. */
void cls_text_destroy(cls_text_t **self_p);

/* Normalises s[0..len) as a whole (punctuation and spaces kept, URLs kept) and returns the
 * result, NUL-terminated, with its length in *out_len (may be NULL). Input beyond CLS_TEXT_MAX
 * bytes is ignored. Borrowed: valid until the next cls_text_normalize on self. */
const char *cls_text_normalize(cls_text_t *self, const struct cls_text_opts *opts, const char *s,
                               size_t len, size_t *out_len);

/* Replaces the token list with the tokens of s[0..len): words, hashtags (+ their parts when a
 * tag splits into two or more), mentions (+ the user part of user@domain); URLs (http://,
 * https://, www.) leave a gap in the positions and add a link token (host and path, up to
 * CLS_LINKS_MAX). Returns the number of tokens. */
size_t cls_text_tokenize(cls_text_t *self, const struct cls_text_opts *opts, const char *s,
                         size_t len);
/* Appends a meta hashtag token for `tag` (a leading '#' is ignored); nothing when it
 * normalises to "". Call after cls_text_tokenize. */
void cls_text_add_hashtag(cls_text_t *self, const struct cls_text_opts *opts, const char *tag);
/* Appends meta mention tokens for `handle` (a leading '@' is ignored): the whole handle and,
 * for "user@domain", also "user". */
void cls_text_add_mention(cls_text_t *self, const struct cls_text_opts *opts,
                          const char *handle);

/* Appends meta tokens for a post field: kind CLS_TOK_META_HASHTAG (as add_hashtag),
 * CLS_TOK_META_MENTION (as add_mention), CLS_TOK_AUTHOR ("@ana@mastodon.social" gives
 * "ana@mastodon.social" and "ana"), CLS_TOK_LINK (a URL or bare "host/path": gives
 * "host/path" with the scheme, user info, port, query and fragment removed), CLS_TOK_LANG or
 * CLS_TOK_PLATFORM (the value normalised). NULL or a value that normalises to "" adds nothing. */
void cls_text_add_field(cls_text_t *self, const struct cls_text_opts *opts, enum cls_tok_kind kind,
                        const char *value);
/* Empties the token list (as tokenising ""). */
void cls_text_reset(cls_text_t *self);
/* With on false (the default is true), link tokens are left out: a URL in the text still
 * leaves its gap in the positions, but no CLS_TOK_LINK token is made for it or for
 * cls_text_add_field(CLS_TOK_LINK). For a caller whose topics test no site: (see
 * cls_match_token_kinds). Stays until changed. */
void cls_text_set_links(cls_text_t *self, bool on);

/* The tokens, in text order (parts right after their tag); borrowed, valid until the next
 * tokenize/add call. */
const struct cls_token *cls_text_tokens(const cls_text_t *self, size_t *n);
/* Start of the normalised text of tok (tok->len bytes); borrowed, same validity. */
const char *cls_text_tok_str(const cls_text_t *self, const struct cls_token *tok);
/* The token's original text without case or accent folding (NFC, apostrophes unified,
 * default-ignorables removed), for {Exact} matching. Borrowed: valid until the next call on
 * self. */
const char *cls_text_tok_raw(cls_text_t *self, const struct cls_token *tok, size_t *len);
/* The main token (word, hashtag or mention) at position pos, or NULL for a gap or past the
 * end. Borrowed. */
const struct cls_token *cls_text_at(const cls_text_t *self, uint32_t pos);
/* Invalid UTF-8 bytes replaced by the last cls_text_tokenize or cls_text_normalize call, plus
 * any cls_text_add_* calls after it. */
size_t cls_text_invalid(const cls_text_t *self);
/* True when the last input was longer than CLS_TEXT_MAX and was cut. */
bool cls_text_truncated(const cls_text_t *self);

/* "word", "hashtag", "part", "mention", "mention-part", "meta-hashtag", "meta-mention",
 * "author", "link", "lang", "platform". */
const char *cls_text_kind_name(enum cls_tok_kind kind);

#endif
