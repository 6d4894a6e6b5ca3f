#define ESC_LOG_MODULE "net"
/* HTTP transfers for the connectors over one libcurl multi handle. Sources create a col_req_t,
 * start it and return to the loop; col_net_wait (called by the collector's loop instead of a
 * plain sleep) waits on curl's sockets plus the signalfd with curl_multi_poll, runs every
 * transfer forward and marks the finished ones done, waking their sources. Bodies and headers
 * are collected into capped buffers; a body over its cap aborts the transfer. Headers are reset
 * at each status line so only the final response's headers remain after redirects. libcurl is
 * used with CURLOPT_NOSIGNAL and only for http/https. Loop thread only. */
#include <ctype.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>
#include <libxml/parser.h>

#include "net.h"

#include "escucha/esc_log.h"
#include "escucha/esc_mem.h"
#include "escucha/esc_util.h"

#define S_CONNECT_MAX_MS 10000
#define S_MAX_REDIRS 5L

struct col_net {
    CURLM *multi;
    size_t active;      /* requests added and not yet completed */
    int offline;        /* test hook: no transfers, answers come from col_req_fake_answer */
    col_req_t *pending; /* offline: the request started and not answered yet; borrowed */
};

struct col_req {
    char *url;
    char *log_url;              /* redacted copy for logs */
    struct curl_slist *headers; /* request headers */
    char *post_body;            /* NULL for GET */
    char *user;                 /* basic auth */
    char *password;
    char *ua;
    int64_t timeout_ms;
    size_t body_max;
    int tag;
    col_req_stream_fn stream_fn; /* NULL: keep the body */
    void *stream_arg;
    long low_bytes;              /* low-speed limit, 0 = none */
    long low_secs;
    int paused;

    CURL *easy;       /* while running (and after, until destroy) */
    col_net_t *net;   /* borrowed; set while running */
    int64_t *wake;    /* borrowed; set to 0 on completion */
    int running;
    int done;
    int too_big;
    int64_t t0;
    int64_t elapsed;

    enum col_req_fail fail;
    char error[CURL_ERROR_SIZE];
    long status;
    char *body; /* NUL-terminated */
    size_t len;
    size_t cap;
    char *hdrs; /* raw header lines of the final response */
    size_t hlen;
    char hval[1024]; /* value returned by col_req_resp_header */

    char *fake;        /* offline: streamed body being handed to stream_fn; owned */
    size_t fake_len;
    size_t fake_off;   /* bytes taken by stream_fn so far */
    size_t fake_chunk; /* bytes per stream_fn call */
};

void
col_net_global_init(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    xmlInitParser();
}

void
col_net_global_cleanup(void)
{
    xmlCleanupParser();
    curl_global_cleanup();
}

col_net_t *
col_net_new(void)
{
    col_net_t *self = esc_calloc(1, sizeof(*self));

    self->multi = curl_multi_init();
    ESC_ASSERT(self->multi != NULL);
    return self;
}

void
col_net_destroy(col_net_t **self_p)
{
    col_net_t *self;

    if (self_p == NULL || *self_p == NULL) {
        return;
    }
    self = *self_p;
    curl_multi_cleanup(self->multi);
    esc_free(self);
    *self_p = NULL;
}

size_t
col_net_active(const col_net_t *self)
{
    return self->active;
}

col_req_t *
col_req_new(const char *url)
{
    col_req_t *req = esc_calloc(1, sizeof(*req));
    size_t n = strlen(url) + 1;

    req->url = esc_strdup(url);
    req->log_url = esc_malloc(n + 64);
    col_url_redact(url, req->log_url, n + 64);
    req->timeout_ms = 30000;
    req->body_max = COL_NET_BODY_MAX_DEFAULT;
    return req;
}

/* Takes req off its multi handle (if it is on one). */
static void
s_detach(col_req_t *req)
{
    if (req->net != NULL && req->net->offline) {
        if (req->net->pending == req) {
            req->net->pending = NULL;
        }
        req->net->active--;
    }
    else if (req->running && req->net != NULL) {
        curl_multi_remove_handle(req->net->multi, req->easy);
        req->net->active--;
    }
    req->running = 0;
    req->net = NULL;
}

void
col_req_destroy(col_req_t **req_p)
{
    col_req_t *req;

    if (req_p == NULL || *req_p == NULL) {
        return;
    }
    req = *req_p;
    s_detach(req);
    if (req->easy != NULL) {
        curl_easy_cleanup(req->easy);
    }
    curl_slist_free_all(req->headers);
    esc_free(req->url);
    esc_free(req->log_url);
    esc_free(req->post_body);
    esc_free(req->user);
    if (req->password != NULL) {
        memset(req->password, 0, strlen(req->password));
        esc_free(req->password);
    }
    esc_free(req->ua);
    esc_free(req->body);
    esc_free(req->hdrs);
    esc_free(req->fake);
    esc_free(req);
    *req_p = NULL;
}

void
col_req_header(col_req_t *req, const char *name, const char *value)
{
    size_t n = strlen(name) + strlen(value) + 3;
    char *line = esc_malloc(n);
    struct curl_slist *l;

    snprintf(line, n, "%s: %s", name, value);
    l = curl_slist_append(req->headers, line);
    ESC_ASSERT(l != NULL);
    req->headers = l;
    memset(line, 0, n);
    esc_free(line);
}

void
col_req_post(col_req_t *req, const char *body, const char *content_type)
{
    esc_free(req->post_body);
    req->post_body = esc_strdup(body);
    col_req_header(req, "Content-Type", content_type);
}

void
col_req_basic_auth(col_req_t *req, const char *user, const char *password)
{
    esc_free(req->user);
    esc_free(req->password);
    req->user = esc_strdup(user);
    req->password = esc_strdup(password);
}

void
col_req_user_agent(col_req_t *req, const char *ua)
{
    esc_free(req->ua);
    req->ua = esc_strdup(ua);
}

void
col_req_timeout(col_req_t *req, int64_t ms)
{
    req->timeout_ms = ms;
}

void
col_req_body_max(col_req_t *req, size_t max)
{
    req->body_max = max;
}

void
col_req_stream(col_req_t *req, col_req_stream_fn fn, void *arg)
{
    req->stream_fn = fn;
    req->stream_arg = arg;
}

void
col_req_low_speed(col_req_t *req, long bytes, long secs)
{
    req->low_bytes = bytes;
    req->low_secs = secs;
}

int
col_req_is_stream(const col_req_t *req)
{
    return req->stream_fn != NULL;
}

static void s_fake_feed(col_req_t *req);

void
col_req_resume(col_req_t *req)
{
    if (req->paused && req->running) {
        req->paused = 0;
        curl_easy_pause(req->easy, CURLPAUSE_CONT);
    }
    else if (req->paused && req->fake != NULL) {
        req->paused = 0;
        s_fake_feed(req);
    }
}

void
col_req_set_tag(col_req_t *req, int tag)
{
    req->tag = tag;
}

int
col_req_tag(const col_req_t *req)
{
    return req->tag;
}

static size_t
s_on_body(char *data, size_t size, size_t nmemb, void *arg)
{
    col_req_t *req = arg;
    size_t n = size * nmemb;
    size_t want;
    long status = 0;
    int rc;

    if (req->stream_fn != NULL) {
        curl_easy_getinfo(req->easy, CURLINFO_RESPONSE_CODE, &status);
        if (status >= 200 && status < 300) {
            rc = req->stream_fn(req->stream_arg, data, n);
            if (rc > 0) {
                req->paused = 1;
                return CURL_WRITEFUNC_PAUSE;
            }
            return rc == 0 ? n : 0;
        }
    }
    if (req->len + n > req->body_max) {
        req->too_big = 1;
        return 0; /* aborts the transfer with CURLE_WRITE_ERROR */
    }
    if (req->len + n + 1 > req->cap) {
        want = req->cap == 0 ? 16384 : req->cap;
        while (want < req->len + n + 1) {
            want *= 2;
        }
        req->body = esc_realloc(req->body, want);
        req->cap = want;
    }
    memcpy(req->body + req->len, data, n);
    req->len += n;
    req->body[req->len] = '\0';
    return n;
}

static size_t
s_on_header(char *data, size_t size, size_t nmemb, void *arg)
{
    col_req_t *req = arg;
    size_t n = size * nmemb;

    if (n >= 5 && strncmp(data, "HTTP/", 5) == 0) {
        req->hlen = 0; /* a new response (redirect, 100-continue): forget the previous one */
    }
    if (req->hdrs == NULL) {
        req->hdrs = esc_malloc(COL_NET_HEADERS_MAX + 1);
    }
    if (req->hlen + n <= COL_NET_HEADERS_MAX) {
        memcpy(req->hdrs + req->hlen, data, n);
        req->hlen += n;
        req->hdrs[req->hlen] = '\0';
    }
    return n;
}

/* Marks req done (with its outcome) and wakes its source. */
static void
s_complete(col_req_t *req, CURLcode code)
{
    long status = 0;

    req->elapsed = esc_mono_ms() - req->t0;
    curl_easy_getinfo(req->easy, CURLINFO_RESPONSE_CODE, &status);
    req->status = status;
    switch (code) {
    case CURLE_OK:
        req->fail = COL_REQ_OK;
        break;
    case CURLE_OPERATION_TIMEDOUT:
        req->fail = COL_REQ_TIMEOUT;
        break;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
        req->fail = COL_REQ_CONNECT;
        break;
    case CURLE_PARTIAL_FILE:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
        req->fail = COL_REQ_TRUNCATED;
        break;
    case CURLE_WRITE_ERROR:
        req->fail = req->too_big ? COL_REQ_TOO_BIG : COL_REQ_OTHER;
        break;
    default:
        req->fail = COL_REQ_OTHER;
        break;
    }
    if (req->fail == COL_REQ_TOO_BIG) {
        snprintf(req->error, sizeof(req->error), "body larger than %zu bytes", req->body_max);
    }
    else if (code != CURLE_OK && req->error[0] == '\0') {
        esc_strlcpy(req->error, curl_easy_strerror(code), sizeof(req->error));
    }
    if (req->fail != COL_REQ_OK) {
        req->status = 0;
    }
    if (req->body == NULL) {
        req->body = esc_calloc(1, 1);
    }
    s_detach(req);
    req->done = 1;
    if (req->wake != NULL) {
        *req->wake = 0;
    }
}

int
col_net_start(col_net_t *net, col_req_t *req, int64_t *wake)
{
    CURL *e;
    CURLMcode mc;

    ESC_ASSERT(!req->running && req->easy == NULL);
    req->wake = wake;
    req->t0 = esc_mono_ms();
    if (net->offline) {
        req->net = net;
        net->pending = req;
        net->active++;
        return 0;
    }
    e = curl_easy_init();
    ESC_ASSERT(e != NULL);
    req->easy = e;
    curl_easy_setopt(e, CURLOPT_URL, req->url);
    curl_easy_setopt(e, CURLOPT_PRIVATE, req);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, req->error);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(e, CURLOPT_MAXREDIRS, S_MAX_REDIRS);
    curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)req->timeout_ms);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
                     (long)(req->timeout_ms > 0 && req->timeout_ms < S_CONNECT_MAX_MS
                                ? req->timeout_ms
                                : S_CONNECT_MAX_MS));
    if (req->low_bytes > 0) {
        curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, req->low_bytes);
        curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, req->low_secs);
    }
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, s_on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, req);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, s_on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, req);
    if (req->headers != NULL) {
        curl_easy_setopt(e, CURLOPT_HTTPHEADER, req->headers);
    }
    if (req->ua != NULL) {
        curl_easy_setopt(e, CURLOPT_USERAGENT, req->ua);
    }
    if (req->post_body != NULL) {
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, req->post_body);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)strlen(req->post_body));
    }
    if (req->user != NULL) {
        curl_easy_setopt(e, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
        curl_easy_setopt(e, CURLOPT_USERNAME, req->user);
        curl_easy_setopt(e, CURLOPT_PASSWORD, req->password);
    }
    mc = curl_multi_add_handle(net->multi, e);
    if (mc != CURLM_OK) {
        esc_log_error("cannot start request url=%s err=\"%s\"", req->log_url,
                      curl_multi_strerror(mc));
        esc_strlcpy(req->error, curl_multi_strerror(mc), sizeof(req->error));
        req->fail = COL_REQ_OTHER;
        req->body = esc_calloc(1, 1);
        req->done = 1;
        return -1;
    }
    req->net = net;
    req->running = 1;
    net->active++;
    return 0;
}

int
col_net_wait(col_net_t *self, int fd, long timeout_ms)
{
    struct curl_waitfd extra = { fd, CURL_WAIT_POLLIN, 0 };
    CURLMcode mc;
    CURLMsg *msg;
    int still = 0;
    int left = 0;
    int numfds = 0;

    if (timeout_ms < 0 || timeout_ms > 60000) {
        timeout_ms = 60000; /* the caller loops; this only bounds one wait */
    }
    mc = curl_multi_poll(self->multi, fd >= 0 ? &extra : NULL, fd >= 0 ? 1 : 0,
                         (int)timeout_ms, &numfds);
    if (mc != CURLM_OK) {
        esc_log_error("curl_multi_poll failed err=\"%s\"", curl_multi_strerror(mc));
        return -1;
    }
    mc = curl_multi_perform(self->multi, &still);
    if (mc != CURLM_OK) {
        esc_log_error("curl_multi_perform failed err=\"%s\"", curl_multi_strerror(mc));
        return -1;
    }
    for (;;) {
        msg = curl_multi_info_read(self->multi, &left);
        if (msg == NULL) {
            break;
        }
        if (msg->msg == CURLMSG_DONE) {
            col_req_t *req = NULL;

            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&req);
            ESC_ASSERT(req != NULL);
            s_complete(req, msg->data.result);
        }
    }
    return fd >= 0 && (extra.revents & CURL_WAIT_POLLIN) != 0 ? 1 : 0;
}

col_net_t *
col_net_new_offline(void)
{
    col_net_t *self = col_net_new();

    self->offline = 1;
    return self;
}

col_req_t *
col_net_offline_pending(const col_net_t *self)
{
    return self->pending;
}

/* Completes a request of an offline net like s_complete does a transfer. */
static void
s_fake_done(col_req_t *req, enum col_req_fail fail)
{
    req->elapsed = esc_mono_ms() - req->t0;
    req->fail = fail;
    if (fail == COL_REQ_TOO_BIG) {
        snprintf(req->error, sizeof(req->error), "body larger than %zu bytes", req->body_max);
    }
    else if (fail != COL_REQ_OK) {
        esc_strlcpy(req->error, curl_easy_strerror(CURLE_WRITE_ERROR), sizeof(req->error));
    }
    if (fail != COL_REQ_OK) {
        req->status = 0;
    }
    if (req->body == NULL) {
        req->body = esc_calloc(1, 1);
    }
    esc_free(req->fake);
    req->fake = NULL;
    s_detach(req);
    req->done = 1;
    if (req->wake != NULL) {
        *req->wake = 0;
    }
}

/* Hands the rest of a fake streamed body to stream_fn, pausing when it asks to. */
static void
s_fake_feed(col_req_t *req)
{
    size_t n;
    int rc;

    while (req->fake_off < req->fake_len) {
        n = req->fake_len - req->fake_off;
        if (n > req->fake_chunk) {
            n = req->fake_chunk;
        }
        rc = req->stream_fn(req->stream_arg, req->fake + req->fake_off, n);
        if (rc > 0) {
            req->paused = 1; /* the same chunk again after col_req_resume */
            return;
        }
        if (rc < 0) {
            s_fake_done(req, COL_REQ_OTHER);
            return;
        }
        req->fake_off += n;
    }
    s_fake_done(req, COL_REQ_OK);
}

void
col_req_fake_answer(col_req_t *req, long status, const char *headers, size_t hlen,
                    const char *body, size_t len, size_t chunk)
{
    ESC_ASSERT(req->net != NULL && req->net->offline && req->net->pending == req);
    req->net->pending = NULL; /* answered (a paused stream still belongs to its net) */
    req->status = status;
    if (headers != NULL && hlen > 0) {
        if (hlen > COL_NET_HEADERS_MAX) {
            hlen = COL_NET_HEADERS_MAX;
        }
        req->hdrs = esc_malloc(COL_NET_HEADERS_MAX + 1);
        memcpy(req->hdrs, headers, hlen);
        req->hdrs[hlen] = '\0';
        req->hlen = hlen;
    }
    if (req->stream_fn != NULL && status >= 200 && status < 300) {
        req->fake = esc_malloc(len + 1);
        memcpy(req->fake, body, len);
        req->fake_len = len;
        req->fake_off = 0;
        req->fake_chunk = chunk > 0 ? chunk : len + 1;
        s_fake_feed(req);
        return;
    }
    if (len > req->body_max) {
        req->too_big = 1;
        s_fake_done(req, COL_REQ_TOO_BIG);
        return;
    }
    req->body = esc_malloc(len + 1);
    memcpy(req->body, body, len);
    req->body[len] = '\0';
    req->len = len;
    s_fake_done(req, COL_REQ_OK);
}

int
col_req_done(const col_req_t *req)
{
    return req->done;
}

enum col_req_fail
col_req_fail(const col_req_t *req)
{
    return req->fail;
}

const char *
col_req_error(const col_req_t *req)
{
    return req->error;
}

long
col_req_status(const col_req_t *req)
{
    return req->status;
}

const char *
col_req_body(const col_req_t *req, size_t *len)
{
    if (len != NULL) {
        *len = req->len;
    }
    return req->body != NULL ? req->body : "";
}

const char *
col_req_resp_header(col_req_t *req, const char *name)
{
    size_t nlen = strlen(name);
    const char *p = req->hdrs;
    const char *end;
    const char *v;
    const char *found = NULL;
    size_t flen = 0;

    if (p == NULL) {
        return NULL;
    }
    while (*p != '\0') {
        end = strchr(p, '\n');
        if (end == NULL) {
            end = p + strlen(p);
        }
        if ((size_t)(end - p) > nlen && strncasecmp(p, name, nlen) == 0 && p[nlen] == ':') {
            v = p + nlen + 1;
            while (v < end && (*v == ' ' || *v == '\t')) {
                v++;
            }
            found = v;
            flen = (size_t)(end - v);
            while (flen > 0 && isspace((unsigned char)found[flen - 1])) {
                flen--;
            }
        }
        p = *end == '\n' ? end + 1 : end;
    }
    if (found == NULL) {
        return NULL;
    }
    if (flen >= sizeof(req->hval)) {
        flen = sizeof(req->hval) - 1;
    }
    memcpy(req->hval, found, flen);
    req->hval[flen] = '\0';
    return req->hval;
}

const char *
col_req_log_url(const col_req_t *req)
{
    return req->log_url;
}

const char *
col_req_url(const col_req_t *req)
{
    return req->url;
}

int64_t
col_req_elapsed_ms(const col_req_t *req)
{
    return req->elapsed;
}

char *
col_url_escape(const char *s)
{
    char *e = curl_easy_escape(NULL, s, 0);
    char *out;

    ESC_ASSERT(e != NULL);
    out = esc_strdup(e);
    curl_free(e);
    return out;
}

void
col_url_add_param(char *url, size_t sz, const char *key, const char *value)
{
    char *e = col_url_escape(value);
    size_t used = strlen(url);

    if (used < sz) {
        snprintf(url + used, sz - used, "%s%s=%s", strchr(url, '?') != NULL ? "&" : "?", key, e);
    }
    esc_free(e);
}

/* Query parameters whose values are credentials. */
static int
s_secret_param(const char *name, size_t n)
{
    static const char *const names[] = { "key", "api_key", "apikey", "token", "access_token",
                                         "client_secret", "password", "secret", "sig",
                                         "signature", NULL };
    size_t i;

    for (i = 0; names[i] != NULL; i++) {
        if (strlen(names[i]) == n && strncasecmp(name, names[i], n) == 0) {
            return 1;
        }
    }
    return 0;
}

void
col_url_redact(const char *url, char *out, size_t outsz)
{
    const char *q = strchr(url, '?');
    const char *p;
    size_t used;

    if (outsz == 0) {
        return;
    }
    if (q == NULL) {
        esc_strlcpy(out, url, outsz);
        return;
    }
    used = (size_t)(q - url) + 1;
    if (used >= outsz) {
        esc_strlcpy(out, url, outsz);
        return;
    }
    memcpy(out, url, used);
    out[used] = '\0';
    p = q + 1;
    while (*p != '\0' && *p != '#') {
        const char *amp = p + strcspn(p, "&#");
        const char *eq = memchr(p, '=', (size_t)(amp - p));
        size_t part;

        if (eq != NULL && s_secret_param(p, (size_t)(eq - p))) {
            part = (size_t)(eq - p) + 1;
            if (used + part + 4 >= outsz) {
                break;
            }
            memcpy(out + used, p, part);
            memcpy(out + used + part, "***", 3);
            used += part + 3;
        }
        else {
            part = (size_t)(amp - p);
            if (used + part + 1 >= outsz) {
                break;
            }
            memcpy(out + used, p, part);
            used += part;
        }
        if (*amp == '&') {
            out[used++] = '&';
            p = amp + 1;
        }
        else {
            p = amp;
        }
        out[used] = '\0';
    }
    out[used] = '\0';
}

int
col_link_rel(const char *link, const char *rel, char *out, size_t outsz)
{
    const char *p = link;
    const char *lt;
    const char *gt;
    const char *end;
    const char *r;
    size_t rlen = strlen(rel);

    if (link == NULL) {
        return -1;
    }
    for (;;) {
        lt = strchr(p, '<');
        if (lt == NULL) {
            return -1;
        }
        gt = strchr(lt, '>');
        if (gt == NULL) {
            return -1;
        }
        /* The parameters of this link run to the next '<' (URLs cannot contain one). */
        end = strchr(gt, '<');
        if (end == NULL) {
            end = gt + strlen(gt);
        }
        for (r = gt; r != NULL && r < end; r = strstr(r + 1, "rel=")) {
            const char *v;
            const char *ve;

            if (strncmp(r, "rel=", 4) != 0) {
                continue;
            }
            v = r + 4;
            if (*v == '"') {
                v++;
            }
            /* rel may hold several space-separated relations */
            while (v < end && *v != '"' && *v != ';' && *v != ',') {
                ve = v + strcspn(v, " \";,");
                if ((size_t)(ve - v) == rlen && strncmp(v, rel, rlen) == 0) {
                    if ((size_t)(gt - lt - 1) >= outsz) {
                        return -1;
                    }
                    memcpy(out, lt + 1, (size_t)(gt - lt - 1));
                    out[gt - lt - 1] = '\0';
                    return 0;
                }
                v = ve;
                while (*v == ' ') {
                    v++;
                }
            }
        }
        p = end;
        if (*p == '\0') {
            return -1;
        }
    }
}
