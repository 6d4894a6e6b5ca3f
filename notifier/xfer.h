#ifndef NTF_XFER_H
#define NTF_XFER_H

/* Non-blocking transfers for alert deliveries: a sink describes the request it wants made (an
 * HTTP POST or an SMTP upload) as plain data in struct ntf_req, and ntf_xfer runs several of
 * them at once with libcurl's multi interface, driven from the notifier's poll loop. The
 * outcome is mapped once, here: ESC_OK delivered; ESC_RETRY transient (connect/DNS/timeout,
 * HTTP 408/429/5xx, SMTP 4xx); ESC_INVALID refused (other HTTP status, SMTP 5xx, bad URL).
 * No libcurl type leaves xfer.c. Loop thread only. */

#include <stddef.h>
#include <stdint.h>

#include "escucha/esc_rc.h"

enum ntf_req_kind {
    NTF_REQ_NONE = 0, /* not filled */
    NTF_REQ_HTTP,     /* POST body to url */
    NTF_REQ_SMTP,     /* send body (a whole RFC 5322 message) through the SMTP server at url */
    NTF_REQ_DONE,     /* nothing to transfer: the sink finished the delivery itself (e.g. wrote
                       * an outbox file); the outcome is done_rc */
};

/* One request. Filled by a sink's prepare callback; the buffers are owned (ntf_req_fini). */
struct ntf_req {
    enum ntf_req_kind kind;
    char url[512];             /* http(s):// or smtp(s):// */
    char **headers;            /* "Name: value" lines (HTTP), owned */
    size_t n_headers;
    char *body;                /* owned */
    size_t body_len;
    char mail_from[258];       /* SMTP envelope sender, "<a@b>" */
    char **rcpt;               /* SMTP envelope recipients, "<a@b>", owned */
    size_t n_rcpt;
    const char *username;      /* SMTP AUTH user or NULL; borrowed from the sink */
    const char *password;      /* SMTP AUTH password or NULL; borrowed, never logged */
    const char *smtp_tls;      /* "starttls" (required), "implicit" (smtps://), "none", or NULL:
                                * STARTTLS when offered, required with a password; borrowed */
    const char *ca_file;       /* CA bundle verifying the server, NULL = system store; borrowed */
    int64_t timeout_ms;        /* whole transfer, connect included */
    esc_rc done_rc;            /* NTF_REQ_DONE: the outcome */
    char done_detail[128];     /* NTF_REQ_DONE: what happened, for the log */
};

void ntf_req_init(struct ntf_req *r);
/* Frees the owned buffers and re-initialises r. Safe twice. */
void ntf_req_fini(struct ntf_req *r);
/* Appends a header line. The value must not hold CR or LF (asserted: callers build it). */
void ntf_req_header(struct ntf_req *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends an SMTP recipient address (without angle brackets). */
void ntf_req_rcpt(struct ntf_req *r, const char *addr);

/* What became of a transfer. */
struct ntf_xfer_result {
    esc_rc rc;          /* ESC_OK, ESC_RETRY, ESC_INVALID, or ESC_CLOSED when aborted */
    long status;        /* HTTP status or last SMTP reply code, 0 when none */
    char detail[160];   /* "status=503", "err=..." (never holds a URL path or a secret) */
};

typedef struct ntf_xfer ntf_xfer_t;

/* Called once per finished transfer with the tag given to ntf_xfer_start. */
typedef void (*ntf_xfer_done_fn)(void *ud, void *tag, const struct ntf_xfer_result *res);

/* One multi handle; connections are kept alive between transfers. Caller owns (destroy). */
ntf_xfer_t *ntf_xfer_new(void);
/* Stops transfers still running without calling back. NULL-safe, sets *p = NULL. */
void ntf_xfer_destroy(ntf_xfer_t **p);

/* Starts *req (an HTTP or SMTP request), never later than deadline_mono_ms (esc_mono_ms) to
 * finish. Takes ownership of req's buffers on success (req is re-initialised); on failure (-1,
 * logged) req is left to the caller. */
int ntf_xfer_start(ntf_xfer_t *x, struct ntf_req *req, void *tag, int64_t deadline_mono_ms);
/* Transfers started and not yet reported. */
size_t ntf_xfer_active(const ntf_xfer_t *x);

/* A file descriptor to poll for the transfers. */
struct ntf_xfer_fd {
    int fd;
    int want_read;
    int want_write;
};

/* Fills up to max descriptors to wait on and returns how many; *timeout_ms is lowered to the
 * longest time the caller may wait before calling ntf_xfer_run (untouched when idle). */
size_t ntf_xfer_fds(ntf_xfer_t *x, struct ntf_xfer_fd *fds, size_t max, int64_t *timeout_ms);
/* Moves the transfers on without blocking and reports those that finished through done. */
void ntf_xfer_run(ntf_xfer_t *x, ntf_xfer_done_fn done, void *ud);
/* Stops every running transfer and reports each through done with rc ESC_CLOSED. */
void ntf_xfer_abort_all(ntf_xfer_t *x, ntf_xfer_done_fn done, void *ud);

#endif
