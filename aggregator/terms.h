#ifndef AGG_TERMS_H
#define AGG_TERMS_H

/* Content terms of a post text, for the top-terms lists and the terms of a spike alert
 * (docs/aggregator.md, "Top lists"). Pure and reentrant: no state besides a read-only
 * stopword table built once (thread-safe). */

#include <stddef.h>

#define AGG_TERM_MAX 64 /* bytes of a term, "#" included; longer tokens are skipped */

/* Called once per term; term is NOT NUL-terminated. It is at the start of a buffer of at least
 * AGG_TERM_MAX + 8 bytes (a reader may load whole 8-byte words past its end). */
typedef void (*agg_term_fn)(void *arg, const char *term, size_t len);

/* Extracts the content terms of a post text: lower-cased, accent-folded (ñ kept) words of >= 3
 * characters, hashtags as "#tag", no URLs, no @mentions, no numbers-only tokens, no
 * Spanish/English/Portuguese stopwords. Calls fn for each (duplicates included). Returns the
 * number of terms. Does not allocate; safe on invalid UTF-8 (bad bytes separate words) and
 * very long texts. lang may be NULL: the three stopword lists apply to every post, because
 * language identification of short posts is often wrong and a wrong guess would let the
 * commonest words of the real language through. term points into a buffer on the stack of
 * agg_terms_extract: borrowed, valid during the callback only. */
size_t agg_terms_extract(const char *text, size_t len, const char *lang, agg_term_fn fn,
                         void *arg);

/* True when the folded word w (len bytes) is one of the stopwords. */
int agg_terms_is_stopword(const char *w, size_t len);

#endif
