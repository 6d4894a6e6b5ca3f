#ifndef NTF_STRBUF_H
#define NTF_STRBUF_H

/* A growable text buffer with a hard size cap, for building mails and payloads. Appends past
 * the cap are dropped and remembered (overflow), so a caller checks once at the end. */

#include <stddef.h>

struct ntf_sb {
    char *buf;    /* NUL-terminated text, owned */
    size_t len;   /* bytes used, NUL excluded */
    size_t cap;   /* bytes allocated */
    size_t max;   /* hard cap on len */
    int overflow; /* set when an append did not fit */
};

void ntf_sb_init(struct ntf_sb *sb, size_t max);
/* Frees the text; safe after ntf_sb_take and twice. */
void ntf_sb_fini(struct ntf_sb *sb);
void ntf_sb_add(struct ntf_sb *sb, const char *s, size_t n);
void ntf_sb_puts(struct ntf_sb *sb, const char *s);
void ntf_sb_printf(struct ntf_sb *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Takes the text out of sb, which is finished afterwards (only ntf_sb_fini, a no-op, may
 * follow). Returns a caller-owned string and sets *len (may be NULL), or NULL (logged) when an
 * append overflowed the cap. */
char *ntf_sb_take(struct ntf_sb *sb, size_t *len);

#endif
