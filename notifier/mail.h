#ifndef NTF_MAIL_H
#define NTF_MAIL_H

/* E-mail for digests: an RFC 5322 message built so that no value from the config or from Redis
 * can add or split a header. Either plain text (UTF-8, 8bit), or, with an HTML part, MIME
 * multipart/related { multipart/alternative { text/plain 8bit, text/html quoted-printable },
 * inline images base64 with a Content-ID }. Over SMTP the MIME structure is built with
 * libcurl's MIME API (curl_mime_*); for a file (.eml) the same structure is serialised here,
 * because libcurl cannot write a MIME structure anywhere but to a transfer. */

#include <stddef.h>
#include <stdint.h>

#include "escucha/esc_rc.h"
#include "ntf.h"

#define NTF_MAIL_MAX (4 * 1024 * 1024) /* largest message built, bytes */

/* An image shown inside the HTML part (<img src="cid:...">). */
struct ntf_mail_image {
    const char *cid;            /* Content-ID without the angle brackets, [A-Za-z0-9.@_-] */
    const char *filename;       /* shown by clients that list it, [A-Za-z0-9._-] */
    const unsigned char *data;  /* PNG bytes */
    size_t len;
};

struct ntf_mail {
    const char *from;        /* "Name <addr>" or "addr" (config) */
    const char *const *to;   /* recipient addresses */
    size_t n_to;
    const char *subject;     /* UTF-8, any bytes: cleaned and encoded here */
    const char *body;        /* UTF-8 text with \n line ends: the text/plain part */
    const char *html;        /* UTF-8 HTML document, or NULL for a plain-text message */
    const struct ntf_mail_image *images; /* inline images of the HTML part (may be NULL) */
    size_t n_images;
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

/* Builds the message with CRLF line ends: plain text when m->html is NULL, else the multipart
 * structure described above. Returns a caller-owned buffer and sets *len, or NULL (logged) when
 * the From address, a Content-ID or a filename is invalid or the message is too large. */
char *ntf_mail_build(const struct ntf_mail *m, size_t *len);

/* Creates dir and its missing parents (mode 0755). Returns 0 or -1 (logged). */
int ntf_mkdirs(const char *dir);
/* Writes buf to path through a temporary file in the same directory and rename, so readers
 * never see half a file. Returns 0 or -1 (logged). */
int ntf_write_file(const char *path, const char *buf, size_t len);

/* Sends msg (a complete message, as ntf_mail_build makes) over SMTP to cfg->smtp_url: MAIL
 * FROM from_addr, one RCPT TO per recipient (all must be accepted), TLS as cfg->smtp_tls says
 * ("starttls": required upgrade on smtp://, "implicit": smtps://, "none": clear text), server
 * certificate verified (cfg->smtp_ca_file or the system store), AUTH with smtp_username and
 * the password from smtp_password_env/_file (never logged).
 * Returns ESC_OK, ESC_RETRY (could not connect, timeout) or ESC_ERR (refused; logged). */
esc_rc ntf_mail_send_smtp(const struct ntf_cfg *cfg, const char *from_addr,
                          const char *const *rcpt, size_t n_rcpt, const char *msg, size_t len);
/* Sends m over SMTP like ntf_mail_send_smtp, to the addresses of m->to, with the MIME
 * structure built by libcurl (curl_mime_*) when m->html is set (else as ntf_mail_build).
 * Returns ESC_OK, ESC_RETRY, ESC_ERR (refused, or m invalid; logged). */
esc_rc ntf_mail_send(const struct ntf_cfg *cfg, const struct ntf_mail *m);

#endif
