#ifndef NTF_MAIL_H
#define NTF_MAIL_H

/* Plain-text e-mail for digests: an RFC 5322 message (UTF-8 body, 8bit) built so that no value
 * from the config or from Redis can add or split a header, then written to a file or sent over
 * SMTP with libcurl. */

#include <stddef.h>
#include <stdint.h>

#include "escucha/esc_rc.h"
#include "ntf.h"

#define NTF_MAIL_MAX (4 * 1024 * 1024) /* largest message built, bytes */

struct ntf_mail {
    const char *from;        /* "Name <addr>" or "addr" (config) */
    const char *const *to;   /* recipient addresses */
    size_t n_to;
    const char *subject;     /* UTF-8, any bytes: cleaned and encoded here */
    const char *body;        /* UTF-8 text with \n line ends */
    int64_t date;            /* Unix seconds for the Date header */
    const char *id_hint;     /* readable part of the Message-ID, e.g. "gobernanza-2026-W47" */
};

/* Copy of s fit for a header: every control byte (CR, LF, TAB, DEL, ...) becomes a space.
 * Caller owns. */
char *ntf_mail_header_clean(const char *s);
/* s cleaned as above and, when it holds non-ASCII bytes, encoded as RFC 2047 encoded-words
 * (UTF-8, B encoding, at most 75 characters each, never splitting a UTF-8 sequence) separated by
 * CRLF + space (folding). Caller owns. */
char *ntf_mail_encode_words(const char *s);
/* Writes the address of a mailbox ("Name <a@b>" or "a@b") into out. Returns 0, or -1 when
 * there is no plausible address or it does not fit. */
int ntf_mail_addr_spec(const char *mailbox, char *out, size_t outsz);

/* Builds the message with CRLF line ends. Returns a caller-owned buffer and sets *len, or NULL
 * (logged) when the From address is invalid or the message is too large. */
char *ntf_mail_build(const struct ntf_mail *m, size_t *len);

/* Creates dir and its missing parents (mode 0755). Returns 0 or -1 (logged). */
int ntf_mkdirs(const char *dir);
/* Writes buf to path through a temporary file in the same directory and rename, so readers
 * never see half a file. Returns 0 or -1 (logged). */
int ntf_write_file(const char *path, const char *buf, size_t len);

/* Sends msg over SMTP to cfg->smtp_url: MAIL FROM from_addr, one RCPT TO per recipient
 * (all must be accepted), STARTTLS when offered on smtp:// (required when a password is set),
 * AUTH with smtp_username and the password from smtp_password_env/_file (never logged).
 * Returns ESC_OK, ESC_RETRY (could not connect, timeout) or ESC_ERR (refused; logged). */
esc_rc ntf_mail_send_smtp(const struct ntf_cfg *cfg, const char *from_addr,
                          const char *const *rcpt, size_t n_rcpt, const char *msg, size_t len);

#endif
