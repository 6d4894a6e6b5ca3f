#define ESC_LOG_MODULE "xfer"
/* Alert transfers over libcurl's multi interface. The notifier's loop polls the descriptors
 * curl asks for (curl_multi_fdset, fine for the handful of connections a notifier keeps) next
 * to its ZeroMQ socket, then calls ntf_xfer_run, which calls curl_multi_perform and reports
 * each finished transfer once. Every transfer has its own easy handle; the multi handle's
 * connection cache keeps connections to a receiver alive between deliveries. Timeouts are set
 * per transfer from the request and the caller's deadline, so nothing outlives a shutdown
 * deadline. Redirects are never followed (a 3xx is a refusal), only http/https/smtp/smtps
 * are allowed. Single-threaded (loop thread). */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/select.h>

#include <curl/curl.h>

#include "escucha/esc_log.h"
#include "escucha/esc_mem.h"
#include "escucha/esc_util.h"
#include "xfer.h"

#define S_IDLE_WAIT_MS 50 /* curl is resolving and has no socket yet: look again soon */

/* One running transfer. */
struct s_xf {
    CURL *easy;
    struct ntf_req req;         /* owned: body, headers and recipients live as long as curl needs */
    struct curl_slist *hdrs;
    struct curl_slist *rcpt;
    size_t read_off;            /* SMTP upload position in req.body */
    void *tag;
    char errbuf[CURL_ERROR_SIZE];
    struct s_xf *next;
};

struct ntf_xfer {
    CURLM *multi;
    struct s_xf *list;          /* running transfers */
    size_t n;
};

void
ntf_req_init(struct ntf_req *r)
{
    memset(r, 0, sizeof(*r));
}

void
ntf_req_fini(struct ntf_req *r)
{
    size_t i;

    for (i = 0; i < r->n_headers; i++) {
        esc_free(r->headers[i]);
    }
    esc_free(r->headers);
    for (i = 0; i < r->n_rcpt; i++) {
        esc_free(r->rcpt[i]);
    }
    esc_free(r->rcpt);
    esc_free(r->body);
    ntf_req_init(r);
}

void
ntf_req_header(struct ntf_req *r, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    ESC_ASSERT(n >= 0 && (size_t)n < sizeof(line));
    ESC_ASSERT(strpbrk(line, "\r\n") == NULL);
    r->headers = esc_realloc(r->headers, (r->n_headers + 1) * sizeof(*r->headers));
    r->headers[r->n_headers++] = esc_strdup(line);
}

void
ntf_req_rcpt(struct ntf_req *r, const char *addr)
{
    char line[260];

    snprintf(line, sizeof(line), "<%s>", addr);
    r->rcpt = esc_realloc(r->rcpt, (r->n_rcpt + 1) * sizeof(*r->rcpt));
    r->rcpt[r->n_rcpt++] = esc_strdup(line);
}

ntf_xfer_t *
ntf_xfer_new(void)
{
    ntf_xfer_t *x = esc_calloc(1, sizeof(*x));

    x->multi = curl_multi_init();
    if (x->multi == NULL) {
        esc_log_error("curl_multi_init failed");
        esc_free(x);
        return NULL;
    }
    return x;
}

static void
s_xf_free(ntf_xfer_t *x, struct s_xf *xf)
{
    curl_multi_remove_handle(x->multi, xf->easy);
    curl_easy_cleanup(xf->easy);
    curl_slist_free_all(xf->hdrs);
    curl_slist_free_all(xf->rcpt);
    ntf_req_fini(&xf->req);
    esc_free(xf);
}

void
ntf_xfer_destroy(ntf_xfer_t **p)
{
    ntf_xfer_t *x;

    if (p == NULL || *p == NULL) {
        return;
    }
    x = *p;
    while (x->list != NULL) {
        struct s_xf *xf = x->list;

        x->list = xf->next;
        s_xf_free(x, xf);
    }
    curl_multi_cleanup(x->multi);
    esc_free(x);
    *p = NULL;
}

static size_t
s_discard(char *p, size_t size, size_t nmemb, void *ud)
{
    return size * nmemb;
}

static size_t
s_read(char *dst, size_t size, size_t nmemb, void *ud)
{
    struct s_xf *xf = ud;
    size_t room = size * nmemb;
    size_t n = xf->req.body_len - xf->read_off;

    if (n > room) {
        n = room;
    }
    memcpy(dst, xf->req.body + xf->read_off, n);
    xf->read_off += n;
    return n;
}

static struct curl_slist *
s_slist_add(struct curl_slist *list, const char *s)
{
    struct curl_slist *next = curl_slist_append(list, s);

    ESC_ASSERT(next != NULL); /* curl only fails here when out of memory */
    return next;
}

int
ntf_xfer_start(ntf_xfer_t *x, struct ntf_req *req, void *tag, int64_t deadline_mono_ms)
{
    struct s_xf *xf;
    int64_t timeout = req->timeout_ms > 0 ? req->timeout_ms : 10000;
    int64_t left = deadline_mono_ms - esc_mono_ms();
    CURL *h;
    size_t i;

    ESC_ASSERT(req->kind == NTF_REQ_HTTP || req->kind == NTF_REQ_SMTP);
    if (left < timeout) {
        timeout = left > 1 ? left : 1;
    }
    h = curl_easy_init();
    if (h == NULL) {
        esc_log_error("curl_easy_init failed");
        return -1;
    }
    xf = esc_calloc(1, sizeof(*xf));
    xf->easy = h;
    xf->tag = tag;
    xf->req = *req;
    curl_easy_setopt(h, CURLOPT_PRIVATE, xf);
    curl_easy_setopt(h, CURLOPT_URL, xf->req.url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, xf->errbuf);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)timeout);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)timeout);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, s_discard);
    if (xf->req.kind == NTF_REQ_HTTP) {
        for (i = 0; i < xf->req.n_headers; i++) {
            xf->hdrs = s_slist_add(xf->hdrs, xf->req.headers[i]);
        }
        xf->hdrs = s_slist_add(xf->hdrs, "Expect:"); /* no 100-continue round trip */
        curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
        curl_easy_setopt(h, CURLOPT_USERAGENT, "escucha/" ESC_VERSION);
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, xf->hdrs);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, xf->req.body != NULL ? xf->req.body : "");
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)xf->req.body_len);
    }
    else {
        curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
        if (strncmp(xf->req.url, "smtp://", 7) == 0) {
            long use_ssl = xf->req.password != NULL ? CURLUSESSL_ALL : CURLUSESSL_TRY;

            /* a password never travels in clear: STARTTLS becomes mandatory with one */
            if (xf->req.smtp_tls != NULL && strcmp(xf->req.smtp_tls, "starttls") == 0) {
                use_ssl = CURLUSESSL_ALL;
            }
            else if (xf->req.smtp_tls != NULL && strcmp(xf->req.smtp_tls, "none") == 0) {
                use_ssl = CURLUSESSL_NONE;
            }
            curl_easy_setopt(h, CURLOPT_USE_SSL, use_ssl);
        }
        if (xf->req.ca_file != NULL && xf->req.ca_file[0] != '\0') {
            curl_easy_setopt(h, CURLOPT_CAINFO, xf->req.ca_file);
        }
        if (xf->req.username != NULL) {
            curl_easy_setopt(h, CURLOPT_USERNAME, xf->req.username);
        }
        if (xf->req.password != NULL) {
            curl_easy_setopt(h, CURLOPT_PASSWORD, xf->req.password);
        }
        curl_easy_setopt(h, CURLOPT_MAIL_FROM, xf->req.mail_from);
        for (i = 0; i < xf->req.n_rcpt; i++) {
            xf->rcpt = s_slist_add(xf->rcpt, xf->req.rcpt[i]);
        }
        curl_easy_setopt(h, CURLOPT_MAIL_RCPT, xf->rcpt);
        curl_easy_setopt(h, CURLOPT_READFUNCTION, s_read);
        curl_easy_setopt(h, CURLOPT_READDATA, xf);
        curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)xf->req.body_len);
    }
    if (curl_multi_add_handle(x->multi, h) != CURLM_OK) {
        esc_log_error("curl_multi_add_handle failed");
        curl_slist_free_all(xf->hdrs);
        curl_slist_free_all(xf->rcpt);
        curl_easy_cleanup(h);
        esc_free(xf); /* the request's buffers stay with the caller */
        return -1;
    }
    ntf_req_init(req);
    xf->next = x->list;
    x->list = xf;
    x->n++;
    return 0;
}

size_t
ntf_xfer_active(const ntf_xfer_t *x)
{
    return x->n;
}

size_t
ntf_xfer_fds(ntf_xfer_t *x, struct ntf_xfer_fd *fds, size_t max, int64_t *timeout_ms)
{
    fd_set rd;
    fd_set wr;
    fd_set ex;
    int maxfd = -1;
    long t = -1;
    size_t n = 0;
    int fd;

    if (x->n == 0) {
        return 0;
    }
    FD_ZERO(&rd);
    FD_ZERO(&wr);
    FD_ZERO(&ex);
    if (curl_multi_fdset(x->multi, &rd, &wr, &ex, &maxfd) != CURLM_OK) {
        maxfd = -1;
    }
    for (fd = 0; fd <= maxfd && n < max; fd++) {
        int r = FD_ISSET(fd, &rd) || FD_ISSET(fd, &ex);
        int w = FD_ISSET(fd, &wr);

        if (r || w) {
            fds[n].fd = fd;
            fds[n].want_read = r;
            fds[n].want_write = w;
            n++;
        }
    }
    if (curl_multi_timeout(x->multi, &t) != CURLM_OK) {
        t = S_IDLE_WAIT_MS;
    }
    if (maxfd < 0 && (t < 0 || t > S_IDLE_WAIT_MS)) {
        t = S_IDLE_WAIT_MS; /* e.g. the resolver thread is working: no socket to wait on */
    }
    if (t >= 0 && t < *timeout_ms) {
        *timeout_ms = t;
    }
    return n;
}

/* Maps a finished transfer to its outcome. */
static void
s_result(struct s_xf *xf, CURLcode crc, struct ntf_xfer_result *res)
{
    char q[140];
    long code = 0;

    memset(res, 0, sizeof(*res));
    curl_easy_getinfo(xf->easy, CURLINFO_RESPONSE_CODE, &code);
    res->status = code;
    if (xf->req.kind == NTF_REQ_HTTP) {
        if (crc != CURLE_OK) {
            esc_log_quote(q, sizeof(q), xf->errbuf[0] != '\0' ? xf->errbuf
                                                              : curl_easy_strerror(crc), 120);
            snprintf(res->detail, sizeof(res->detail), "err=%s", q);
            res->rc = (crc == CURLE_URL_MALFORMAT || crc == CURLE_UNSUPPORTED_PROTOCOL)
                          ? ESC_INVALID
                          : ESC_RETRY;
            return;
        }
        snprintf(res->detail, sizeof(res->detail), "status=%ld", code);
        if (code >= 200 && code < 300) {
            res->rc = ESC_OK;
        }
        else if (code == 408 || code == 429 || code >= 500) {
            res->rc = ESC_RETRY;
        }
        else {
            res->rc = ESC_INVALID;
        }
        return;
    }
    if (crc == CURLE_OK) {
        snprintf(res->detail, sizeof(res->detail), "code=%ld", code);
        res->rc = ESC_OK;
        return;
    }
    esc_log_quote(q, sizeof(q), xf->errbuf[0] != '\0' ? xf->errbuf : curl_easy_strerror(crc),
                  120);
    snprintf(res->detail, sizeof(res->detail), "code=%ld err=%s", code, q);
    /* a permanent SMTP refusal (550 no such user, 554 rejected) will not change on retry */
    res->rc = code >= 500 && code < 600 ? ESC_INVALID : ESC_RETRY;
}

static void
s_unlink(ntf_xfer_t *x, struct s_xf *xf)
{
    struct s_xf **pp = &x->list;

    while (*pp != NULL && *pp != xf) {
        pp = &(*pp)->next;
    }
    ESC_ASSERT(*pp == xf);
    *pp = xf->next;
    x->n--;
}

void
ntf_xfer_run(ntf_xfer_t *x, ntf_xfer_done_fn done, void *ud)
{
    struct ntf_xfer_result res;
    CURLMsg *msg;
    int running = 0;
    int left = 0;

    if (x->n == 0) {
        return;
    }
    curl_multi_perform(x->multi, &running);
    for (;;) {
        struct s_xf *xf;
        char *priv = NULL;
        void *tag;

        msg = curl_multi_info_read(x->multi, &left);
        if (msg == NULL) {
            break;
        }
        if (msg->msg != CURLMSG_DONE) {
            continue;
        }
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &priv);
        ESC_ASSERT(priv != NULL);
        xf = (struct s_xf *)(void *)priv;
        s_result(xf, msg->data.result, &res);
        tag = xf->tag;
        s_unlink(x, xf);
        s_xf_free(x, xf); /* msg points into the handle: not used after this */
        done(ud, tag, &res);
    }
}

void
ntf_xfer_abort_all(ntf_xfer_t *x, ntf_xfer_done_fn done, void *ud)
{
    struct ntf_xfer_result res;

    memset(&res, 0, sizeof(res));
    res.rc = ESC_CLOSED;
    esc_strlcpy(res.detail, "err=\"aborted at shutdown deadline\"", sizeof(res.detail));
    while (x->list != NULL) {
        struct s_xf *xf = x->list;
        void *tag = xf->tag;

        s_unlink(x, xf);
        s_xf_free(x, xf);
        done(ud, tag, &res);
    }
}
