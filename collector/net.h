#ifndef COL_NET_H
#define COL_NET_H

/* HTTP for the collector's platform connectors (collector-internal). One col_net_t holds a
 * libcurl multi handle; every source starts its requests on it and the collector's loop drives
 * all of them at once through col_net_wait, so one slow platform never stalls another. A
 * col_req_t is one request and, once done, its response (status, headers, body). No CURL*
 * leaves net.c. Single-threaded: everything runs on the collector's loop thread. */

#include <stddef.h>
#include <stdint.h>

#define COL_NET_BODY_MAX_DEFAULT (8 * 1024 * 1024) /* bytes of response body kept by default */
#define COL_NET_HEADERS_MAX (64 * 1024)            /* bytes of response headers kept */

typedef struct col_net col_net_t;
typedef struct col_req col_req_t;

/* Why a request failed below HTTP (col_req_fail). */
enum col_req_fail {
    COL_REQ_OK = 0,      /* the server answered (any status) */
    COL_REQ_TIMEOUT,     /* connect or transfer timeout */
    COL_REQ_CONNECT,     /* DNS, refused, TLS handshake */
    COL_REQ_TRUNCATED,   /* the connection closed before the whole body arrived */
    COL_REQ_TOO_BIG,     /* the body was larger than the request's limit */
    COL_REQ_OTHER,       /* anything else libcurl reports */
};

/* Process-wide set-up and tear-down of libcurl and libxml2; call once from main (before any
 * thread exists) and at exit. */
void col_net_global_init(void);
void col_net_global_cleanup(void);

/* A multi handle. Caller owns the result. */
col_net_t *col_net_new(void);
/* Aborts what is still in flight (those requests stay owned by their sources and report
 * COL_REQ_OTHER). NULL-safe; sets *self_p = NULL. */
void col_net_destroy(col_net_t **self_p);

/* Waits at most timeout_ms (-1 = no limit besides libcurl's own timers) for network activity or
 * for `fd` (-1 = none) to become readable, then moves every transfer forward and completes the
 * finished ones (each sets the int64_t its starter named to 0, which wakes that source).
 * Returns 1 when fd is readable, 0 otherwise, -1 on a libcurl error (logged). */
int col_net_wait(col_net_t *self, int fd, long timeout_ms);
/* Transfers in flight. */
size_t col_net_active(const col_net_t *self);

/* A GET of url (copied). Caller owns the result (col_req_destroy). */
col_req_t *col_req_new(const char *url);
/* Removes req from its net when still running. NULL-safe; sets *req_p = NULL. */
void col_req_destroy(col_req_t **req_p);

/* Adds a request header "Name: value". Header values are never logged. */
void col_req_header(col_req_t *req, const char *name, const char *value);
/* Makes it a POST of body (copied) with the given Content-Type. */
void col_req_post(col_req_t *req, const char *body, const char *content_type);
/* HTTP Basic credentials (copied; never logged). */
void col_req_basic_auth(col_req_t *req, const char *user, const char *password);
void col_req_user_agent(col_req_t *req, const char *ua);
/* Whole-request timeout in ms, 0 = none (connect timeout is the smaller of this and 10 s). */
void col_req_timeout(col_req_t *req, int64_t ms);
/* Largest body kept, bytes; a larger one fails with COL_REQ_TOO_BIG. */
void col_req_body_max(col_req_t *req, size_t max);
/* Streams the body (server-sent events, NDJSON): fn gets each chunk of a 2xx answer as it
 * arrives instead of it being kept (an error answer's body is still kept). fn returns 0 when it
 * took the chunk, 1 when it cannot take it now (the transfer pauses and the same chunk comes
 * again after col_req_resume), -1 to abort. fn runs inside col_net_wait. */
typedef int (*col_req_stream_fn)(void *arg, const char *data, size_t len);
void col_req_stream(col_req_t *req, col_req_stream_fn fn, void *arg);
/* Drops the transfer (COL_REQ_TIMEOUT) when less than `bytes` arrive in `secs` seconds: how a
 * dead stream is noticed. Use with col_req_timeout(req, 0) (no overall limit). */
void col_req_low_speed(col_req_t *req, long bytes, long secs);
/* 1 when the body of req is streamed (col_req_stream). */
int col_req_is_stream(const col_req_t *req);
/* Resumes a transfer its stream callback paused. */
void col_req_resume(col_req_t *req);
/* A free tag the starter may set to remember what it asked for. */
void col_req_set_tag(col_req_t *req, int tag);
int col_req_tag(const col_req_t *req);

/* Starts req on net. When it completes, *wake (may be NULL; must outlive the transfer) is set
 * to 0. Returns 0, or -1 (logged) when libcurl refused it; req then counts as done with
 * COL_REQ_OTHER. */
int col_net_start(col_net_t *net, col_req_t *req, int64_t *wake);

/* Results; valid once col_req_done is true. */
int col_req_done(const col_req_t *req);
enum col_req_fail col_req_fail(const col_req_t *req);
/* libcurl's description of the failure, "" when none. Borrowed. */
const char *col_req_error(const col_req_t *req);
long col_req_status(const col_req_t *req);     /* HTTP status, 0 when no answer */
/* The body, NUL-terminated (may contain NULs before len). Borrowed; valid until destroy. */
const char *col_req_body(const col_req_t *req, size_t *len);
/* The last value of response header `name` (case-insensitive), trimmed, or NULL. Borrowed;
 * valid until the next call on req. */
const char *col_req_resp_header(col_req_t *req, const char *name);
/* The URL with secret query parameters (key, token, access_token, ...) replaced by "***", fit
 * for logs. Borrowed. */
const char *col_req_log_url(const col_req_t *req);
const char *col_req_url(const col_req_t *req);
int64_t col_req_elapsed_ms(const col_req_t *req);

/* Test hooks (the fuzz targets in tests/fuzz/): a net without a network. col_net_start on an
 * offline net only records the request, which stays in flight (col_net_active counts it) until
 * col_req_fake_answer answers it. Never call col_net_wait on it. Caller owns the result. */
col_net_t *col_net_new_offline(void);
/* The request started on an offline net and not answered yet, or NULL. Borrowed. */
col_req_t *col_net_offline_pending(const col_net_t *self);
/* Answers the pending request of an offline net as a server would: HTTP status, raw response
 * header lines ("Name: value\r\n"..., NULL for none) and body (copied). A streamed request
 * (col_req_stream) with a 2xx status gets the body through its callback, `chunk` bytes at a
 * time (0: all at once), pausing and resuming like a transfer, and is done after the last byte;
 * any other request is done at once (a body over its limit fails with COL_REQ_TOO_BIG). */
void col_req_fake_answer(col_req_t *req, long status, const char *headers, size_t hlen,
                         const char *body, size_t len, size_t chunk);

/* Percent-encodes s for a URL query value. Caller owns the result. */
char *col_url_escape(const char *s);
/* Appends "?key=value" (or "&key=value" once url has a query) to the NUL-terminated url of
 * capacity sz, value percent-encoded; cut short (still terminated) when it does not fit. */
void col_url_add_param(char *url, size_t sz, const char *key, const char *value);
/* Finds the target of the link with relation `rel` in a Link header value
 * (`<https://a/b?x=1>; rel="next", <...>; rel="prev"`). Returns 0 with the URL in out, or -1
 * when there is none (or it does not fit). */
int col_link_rel(const char *link, const char *rel, char *out, size_t outsz);
/* Writes url into out with the values of secret query parameters replaced by "***". */
void col_url_redact(const char *url, char *out, size_t outsz);

#endif
