#define ESC_LOG_MODULE "ingest"
/* Source plugin "ingest": push ingest over HTTP so other tools can feed escucha. A libmicrohttpd
 * server accepts POST /ingest with a bearer token (compared in constant time, never logged) and a
 * body of one post in the project's JSON shape, a JSON array of posts, or JSON Lines. Each post
 * is checked with esc_post_from_json; the answer is 202 {"accepted": n, "rejected": [{"index",
 * "error"}]}, or 400/401/404/405/413 with {"error": "..."}.
 * Threading: libmicrohttpd runs one thread per connection; a request only parses and appends
 * accepted posts to a mutex-protected bounded queue; the collector loop drains that queue in
 * poll and emits the posts like any other source. A request whose posts do not all fit in the
 * queue is refused as a whole with 503 and Retry-After, so nothing is dropped silently and the
 * client can send the same request again. With a delivery journal (ins->journaled) the request
 * then waits until the loop has journaled every one of its posts, and answers 202 only then, or
 * 503 after accept_timeout_ms or when the collector stops (docs/delivery.md). */
#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "col_source.h"

#include "escucha/esc_log.h"
#include "escucha/esc_mem.h"
#include "escucha/esc_msg.h"
#include "escucha/esc_util.h"

#define S_IDLE_MS 50      /* how often poll looks at an empty queue */
#define S_RETRY_AFTER "1" /* seconds a client waits after 503 */
#define S_REJECT_LOG_MAX 20 /* rejected posts of one request logged one by one */

/* The TCP port the instance's server is bound to (for tests; 0 when not running). */
int src_ingest_port(const struct col_source *ins);
/* What POST /ingest does with a request body, without HTTP and the queue (for the fuzz target
 * tests/fuzz/fuzz_ingest.c): splits and checks the posts and encodes the 202 answer. Returns the
 * number of posts accepted, or -1 when the whole body is refused (400). */
int src_ingest_parse(const char *body, size_t len);

struct src_ingest_cfg {
    char listen[64];      /* "127.0.0.1:8090"; port 0 = any free port */
    char token_env[128];  /* environment variable holding the bearer token */
    char token_file[256]; /* or a file holding it */
    int64_t max_body;     /* request body limit, bytes */
    int64_t queue_max;    /* posts waiting for the collector loop */
    int64_t max_conns;    /* concurrent connections */
    int64_t accept_timeout_ms; /* with a journal: longest wait for a request's posts */
};

/* Why a request's posts were not all journaled (s_wait). */
enum s_wait_rc {
    S_WAIT_OK,      /* every post was taken off the queue */
    S_WAIT_TIMEOUT, /* accept_timeout_ms passed first */
    S_WAIT_CLOSED,  /* the collector is stopping */
};

struct s_ingest {
    const struct src_ingest_cfg *cfg; /* borrowed from the instance */
    char *token;                      /* bearer token; owned, never logged */
    size_t token_len;
    struct MHD_Daemon *daemon;
    int port;
    pthread_mutex_t lock; /* guards everything below */
    struct esc_post *q;   /* ring of queue_max posts, q[head .. head+n) */
    size_t head;
    size_t n;
    uint64_t rejected[COL_REJECT_N]; /* items refused since the last poll, per reason (moved
                                      * into ins->stats and the metric by poll) */
    uint64_t requests; /* requests numbered for the log: request=N */
    uint64_t queued;   /* posts ever queued: a request's ticket is this after its last one */
    uint64_t settled;  /* posts ever taken off the queue by poll (emitted, or refused by the
                        * host as too large); the queue is FIFO, so settled >= ticket means
                        * every post of that request is done */
    int closed;        /* emit said the host is stopping, or exit began: waits end with 503 */
    pthread_cond_t settled_cv; /* broadcast when settled or closed change (CLOCK_MONOTONIC) */
    int wait;          /* ins->journaled: answer 202 only once the posts are journaled */
};

/* Per-request state, kept in MHD's con_cls. */
struct s_req {
    char *body;
    size_t len;
    int too_big;
    uint64_t seq;       /* request number, for the log */
    char client[64];    /* "address:port" of the client, for the log */
};

static const struct esc_cfg_entry s_cfg_map[] = {
    ESC_CFG_STR("listen", "127.0.0.1:8090", struct src_ingest_cfg, listen,
                "address of the HTTP endpoint, host:port or [ipv6]:port (port 0 = any free "
                "port)"),
    ESC_CFG_STR("token_env", "", struct src_ingest_cfg, token_env,
                "environment variable holding the bearer token clients must send"),
    ESC_CFG_STR("token_file", "", struct src_ingest_cfg, token_file,
                "file holding the bearer token (first line; mode 0600), used when token_env is "
                "unset"),
    ESC_CFG_INT("max_body", "1048576", 1024, 67108864, struct src_ingest_cfg, max_body,
                "largest accepted request body in bytes (larger: 413)"),
    ESC_CFG_INT("queue_max", "10000", 1, 1000000, struct src_ingest_cfg, queue_max,
                "posts waiting to be sent on the bus; when full, requests get 503 + Retry-After"),
    ESC_CFG_INT("max_conns", "64", 1, 10000, struct src_ingest_cfg, max_conns,
                "concurrent HTTP connections (one thread each)"),
    ESC_CFG_INT("accept_timeout_ms", "10000", 100, 600000, struct src_ingest_cfg,
                accept_timeout_ms,
                "with collector.journal_dir: how long a request waits for all its posts to be "
                "journaled before it gets 503 + Retry-After (202 means journaled); unused "
                "without a journal (202 means queued)"),
    ESC_CFG_END,
};

static esc_rc
s_validate(const void *cfg, const char *path, struct esc_error *err)
{
    const struct src_ingest_cfg *c = cfg;
    struct sockaddr_storage sa;
    socklen_t sa_len;

    if (esc_parse_listen(c->listen, &sa, &sa_len) != 0) {
        esc_error_set(err, 0, "%s.listen: want host:port, [ipv6]:port or :port, e.g. "
                      "\"127.0.0.1:8090\"", path);
        return ESC_INVALID;
    }
    if (c->token_env[0] == '\0' && c->token_file[0] == '\0') {
        esc_error_set(err, 0, "%s.token_env: token_env or token_file is required (the endpoint "
                      "is never open without a token)", path);
        return ESC_INVALID;
    }
    return ESC_OK;
}

/* Compares in time that depends only on the length of the expected token. */
static bool
s_token_ok(const struct s_ingest *g, const char *got)
{
    size_t got_len = strlen(got);
    unsigned char diff = got_len != g->token_len;
    size_t i;

    for (i = 0; i < g->token_len; i++) {
        diff |= (unsigned char)(g->token[i] ^ got[i < got_len ? i : 0]);
    }
    return diff == 0;
}

/* json_dumps into an esc_malloc'd string (caller esc_frees), NULL when obj cannot be encoded. */
static char *
s_dumps(const json_t *obj, size_t flags)
{
    size_t n = json_dumpb(obj, NULL, 0, flags);
    char *out;

    if (n == 0) {
        return NULL;
    }
    out = esc_malloc(n + 1);
    if (json_dumpb(obj, out, n, flags) != n) {
        esc_free(out);
        return NULL;
    }
    out[n] = '\0';
    return out;
}

/* Queues a JSON response (stealing obj). */
static enum MHD_Result
s_reply_json(struct MHD_Connection *c, unsigned int status, json_t *obj)
{
    struct MHD_Response *r;
    enum MHD_Result rc;
    char *text = s_dumps(obj, JSON_COMPACT);
    size_t len;

    json_decref(obj);
    if (text == NULL) {
        return MHD_NO;
    }
    len = strlen(text);
    r = MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_COPY);
    esc_free(text);
    if (r == NULL) {
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", "application/json");
    if (status == MHD_HTTP_SERVICE_UNAVAILABLE) {
        MHD_add_response_header(r, "Retry-After", S_RETRY_AFTER);
    }
    if (status == MHD_HTTP_UNAUTHORIZED) {
        MHD_add_response_header(r, "WWW-Authenticate", "Bearer");
    }
    rc = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return rc;
}

static json_t *s_jtext(const char *text);

static enum MHD_Result
s_reply_error(struct MHD_Connection *c, unsigned int status, const char *msg)
{
    return s_reply_json(c, status, json_pack("{s:o}", "error", s_jtext(msg)));
}

/* Posts parsed from one body, and what was wrong with the others. */
struct s_batch {
    struct esc_post *posts;
    size_t n;
    size_t cap;
    json_t *rejected; /* array of {"index", "error"} */
    uint64_t cls[COL_REJECT_N]; /* the rejected ones per reason */
};

/* A JSON string of text; a parser message cut inside a UTF-8 sequence (or quoting invalid
 * input) has its non-ASCII bytes replaced by '?' so the answer can always be encoded. */
static json_t *
s_jtext(const char *text)
{
    char safe[300];
    json_t *j = json_string(text);
    size_t i;

    if (j != NULL) {
        return j;
    }
    esc_strlcpy(safe, text, sizeof(safe));
    for (i = 0; safe[i] != '\0'; i++) {
        if ((unsigned char)safe[i] >= 0x80) {
            safe[i] = '?';
        }
    }
    return json_string(safe);
}

static void
s_batch_reject(struct s_batch *b, size_t index, const char *text)
{
    json_array_append_new(b->rejected, json_pack("{s:I,s:o}", "index", (json_int_t)index,
                                                 "error", s_jtext(text)));
    b->cls[col_reject_class(text)]++;
}

static void
s_batch_add(struct s_batch *b, size_t index, const char *json, size_t len)
{
    struct esc_error err;

    if (b->n == b->cap) {
        b->cap = b->cap == 0 ? 8 : b->cap * 2;
        b->posts = esc_realloc(b->posts, b->cap * sizeof(*b->posts));
    }
    if (esc_post_from_json(json, len, &b->posts[b->n], &err) != ESC_OK
        || col_post_check(&b->posts[b->n], &err) != ESC_OK) {
        esc_post_fini(&b->posts[b->n]);
        s_batch_reject(b, index, err.text);
        return;
    }
    b->n++;
}

static void
s_batch_fini(struct s_batch *b)
{
    size_t i;

    for (i = 0; i < b->n; i++) {
        esc_post_fini(&b->posts[i]);
    }
    esc_free(b->posts);
    json_decref(b->rejected);
}

static bool
s_blank(const char *s, size_t len)
{
    size_t i;

    for (i = 0; i < len; i++) {
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n') {
            return false;
        }
    }
    return true;
}

/* Splits a body into posts. Returns 0, or -1 with msg set when the body as a whole is bad. */
static int
s_parse_body(const char *body, size_t len, struct s_batch *b, char *msg, size_t msgsz)
{
    json_error_t jerr;
    json_t *root;
    json_t *el;
    char *one;
    size_t i;
    size_t lines = 0;
    const char *p;
    const char *end = body + len;
    const char *nl;

    if (s_blank(body, len)) {
        snprintf(msg, msgsz, "empty body: send a post, an array of posts or JSON Lines");
        return -1;
    }
    /* NUL allowed here so that one element holding one is refused alone (by
     * esc_post_from_json, naming the field), not the whole body. */
    root = json_loadb(body, len, JSON_ALLOW_NUL, &jerr);
    if (root != NULL && json_is_array(root)) {
        json_array_foreach(root, i, el) {
            one = s_dumps(el, JSON_COMPACT | JSON_ENCODE_ANY);
            if (one == NULL) {
                s_batch_reject(b, i, "cannot re-encode element");
                continue;
            }
            s_batch_add(b, i, one, strlen(one));
            esc_free(one);
        }
        json_decref(root);
        return 0;
    }
    if (root != NULL) {
        json_decref(root);
        s_batch_add(b, 0, body, len);
        if (b->n == 0) {
            el = json_array_get(b->rejected, 0);
            snprintf(msg, msgsz, "invalid post: %s",
                     json_string_value(json_object_get(el, "error")));
            return -1;
        }
        return 0;
    }
    /* Not one JSON value: JSON Lines when there is more than one non-blank line. */
    for (p = body; p < end; p = nl + 1) {
        nl = memchr(p, '\n', (size_t)(end - p));
        if (nl == NULL) {
            nl = end;
        }
        if (!s_blank(p, (size_t)(nl - p))) {
            lines++;
        }
    }
    if (lines < 2) {
        snprintf(msg, msgsz, "malformed JSON at line %d column %d: %s", jerr.line, jerr.column,
                 jerr.text);
        return -1;
    }
    i = 0;
    for (p = body; p < end; p = nl + 1) {
        nl = memchr(p, '\n', (size_t)(end - p));
        if (nl == NULL) {
            nl = end;
        }
        if (!s_blank(p, (size_t)(nl - p))) {
            s_batch_add(b, i, p, (size_t)(nl - p));
            i++;
        }
    }
    return 0;
}

/* Moves every post of b into the queue, or none when they do not all fit. Returns 0 with
 * *ticket set to the sequence number of the last post queued, or -1. */
static int
s_enqueue(struct s_ingest *g, struct s_batch *b, uint64_t *ticket)
{
    size_t cap = (size_t)g->cfg->queue_max;
    size_t i;
    int rc = 0;

    pthread_mutex_lock(&g->lock);
    if (g->n + b->n > cap) {
        rc = -1;
    }
    else {
        for (i = 0; i < b->n; i++) {
            g->q[(g->head + g->n) % cap] = b->posts[i];
            g->n++;
        }
        g->queued += b->n;
        *ticket = g->queued;
        b->n = 0; /* moved */
        for (i = 0; i < COL_REJECT_N; i++) {
            g->rejected[i] += b->cls[i];
        }
    }
    pthread_mutex_unlock(&g->lock);
    return rc;
}

/* Waits until poll has taken every post up to ticket off the queue, the wait ran out
 * (accept_timeout_ms) or the collector is stopping. Connection thread. */
static enum s_wait_rc
s_wait(struct s_ingest *g, uint64_t ticket)
{
    struct timespec deadline;
    enum s_wait_rc rc = S_WAIT_OK;
    int64_t ms = g->cfg->accept_timeout_ms;
    int err = 0;

    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += (time_t)(ms / 1000);
    deadline.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&g->lock);
    while (g->settled < ticket && !g->closed && err != ETIMEDOUT) {
        err = pthread_cond_timedwait(&g->settled_cv, &g->lock, &deadline);
    }
    if (g->settled < ticket) {
        rc = g->closed ? S_WAIT_CLOSED : S_WAIT_TIMEOUT;
    }
    pthread_mutex_unlock(&g->lock);
    return rc;
}

/* "address:port" of the client of c into out ("?" when unknown). */
static void
s_client(struct MHD_Connection *c, char *out, size_t outsz)
{
    const union MHD_ConnectionInfo *info
        = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    char addr[INET6_ADDRSTRLEN];

    esc_strlcpy(out, "?", outsz);
    if (info == NULL || info->client_addr == NULL) {
        return;
    }
    if (info->client_addr->sa_family == AF_INET) {
        const struct sockaddr_in *sa = (const struct sockaddr_in *)(const void *)info->client_addr;

        if (inet_ntop(AF_INET, &sa->sin_addr, addr, sizeof(addr)) != NULL) {
            snprintf(out, outsz, "%s:%u", addr, (unsigned)ntohs(sa->sin_port));
        }
    }
    else if (info->client_addr->sa_family == AF_INET6) {
        const struct sockaddr_in6 *sa
            = (const struct sockaddr_in6 *)(const void *)info->client_addr;

        if (inet_ntop(AF_INET6, &sa->sin6_addr, addr, sizeof(addr)) != NULL) {
            snprintf(out, outsz, "[%s]:%u", addr, (unsigned)ntohs(sa->sin6_port));
        }
    }
}

/* Counts one refused request (its items as one) under the lock, for poll to move. */
static void
s_count_refused(struct s_ingest *g, enum col_reject cls)
{
    pthread_mutex_lock(&g->lock);
    g->rejected[cls]++;
    pthread_mutex_unlock(&g->lock);
}

/* msg without the parser's quote of the input (" near '...'"), for the log. */
static const char *
s_brief(const char *msg, char *out, size_t outsz)
{
    const char *near = strstr(msg, " near '");

    esc_strlcpy(out, msg, outsz);
    if (near != NULL && (size_t)(near - msg) < outsz) {
        out[near - msg] = '\0';
    }
    return out;
}

/* One warning per rejected post of an accepted request, at most S_REJECT_LOG_MAX, then one
 * line with the number left out: where (request number, client, index) and why. The answer
 * carries the whole list for the client. */
static void
s_log_rejected(const struct s_req *req, const struct s_batch *b)
{
    char brief[300];
    char q[320];
    json_t *el;
    size_t i;

    json_array_foreach(b->rejected, i, el) {
        if (i == S_REJECT_LOG_MAX) {
            esc_log_warn("ingest posts rejected request=%llu client=%s not_listed=%zu (the "
                         "answer lists every one)", (unsigned long long)req->seq, req->client,
                         json_array_size(b->rejected) - i);
            break;
        }
        esc_log_warn("ingest post rejected request=%llu client=%s index=%lld reason=%s",
                     (unsigned long long)req->seq, req->client,
                     (long long)json_integer_value(json_object_get(el, "index")),
                     esc_log_quote(q, sizeof(q),
                                   s_brief(json_string_value(json_object_get(el, "error")),
                                           brief, sizeof(brief)),
                                   256));
    }
}

static enum MHD_Result
s_finish(struct s_ingest *g, struct MHD_Connection *c, struct s_req *req)
{
    struct s_batch b;
    char msg[300];
    char brief[300];
    char q[320];
    size_t accepted;
    size_t i;
    int counted = 0;
    uint64_t ticket = 0;
    enum s_wait_rc waited;
    enum MHD_Result rc;

    if (req->too_big) {
        esc_log_warn("ingest request refused status=413 request=%llu client=%s max_body=%lld",
                     (unsigned long long)req->seq, req->client, (long long)g->cfg->max_body);
        s_count_refused(g, COL_REJECT_TOO_LARGE);
        return s_reply_error(c, MHD_HTTP_CONTENT_TOO_LARGE, "request body too large");
    }
    memset(&b, 0, sizeof(b));
    b.rejected = json_array();
    if (s_parse_body(req->body != NULL ? req->body : "", req->len, &b, msg, sizeof(msg)) != 0) {
        esc_log_warn("ingest request refused status=400 request=%llu client=%s bytes=%zu "
                     "reason=%s", (unsigned long long)req->seq, req->client, req->len,
                     esc_log_quote(q, sizeof(q), s_brief(msg, brief, sizeof(brief)), 256));
        pthread_mutex_lock(&g->lock);
        for (i = 0; i < COL_REJECT_N; i++) {
            g->rejected[i] += b.cls[i];
            counted += b.cls[i] > 0;
        }
        pthread_mutex_unlock(&g->lock);
        if (!counted) {
            s_count_refused(g, col_reject_class(msg));
        }
        s_batch_fini(&b);
        return s_reply_error(c, MHD_HTTP_BAD_REQUEST, msg);
    }
    accepted = b.n;
    if (g->wait && accepted > 0) {
        pthread_mutex_lock(&g->lock);
        waited = g->closed ? S_WAIT_CLOSED : S_WAIT_OK;
        pthread_mutex_unlock(&g->lock);
        if (waited == S_WAIT_CLOSED) {
            s_batch_fini(&b);
            esc_log_warn("ingest request refused status=503 request=%llu client=%s posts=%zu "
                         "reason=stopping", (unsigned long long)req->seq, req->client, accepted);
            return s_reply_json(c, MHD_HTTP_SERVICE_UNAVAILABLE,
                                json_pack("{s:s,s:i}", "error",
                                          "collector stopping, retry later", "retry_after", 1));
        }
    }
    if (s_enqueue(g, &b, &ticket) != 0) {
        s_batch_fini(&b);
        esc_log_warn("ingest queue full, answering 503 posts=%zu queue_max=%lld", accepted,
                     (long long)g->cfg->queue_max);
        return s_reply_json(c, MHD_HTTP_SERVICE_UNAVAILABLE,
                            json_pack("{s:s,s:i}", "error", "queue full, retry later",
                                      "retry_after", 1));
    }
    s_log_rejected(req, &b);
    if (g->wait && accepted > 0) {
        /* 202 promises the posts are in the journal: wait until the loop put them there. A
         * 503 here leaves them queued (they may still be counted); a retry is counted once,
         * as the aggregator dedupes by platform, id and created_at. */
        waited = s_wait(g, ticket);
        if (waited != S_WAIT_OK) {
            s_batch_fini(&b);
            esc_log_warn("ingest request not journaled in time, answering 503 request=%llu "
                         "client=%s posts=%zu reason=%s accept_timeout_ms=%lld",
                         (unsigned long long)req->seq, req->client, accepted,
                         waited == S_WAIT_CLOSED ? "stopping" : "timeout",
                         (long long)g->cfg->accept_timeout_ms);
            return s_reply_json(c, MHD_HTTP_SERVICE_UNAVAILABLE,
                                json_pack("{s:s,s:i}", "error",
                                          waited == S_WAIT_CLOSED
                                              ? "collector stopping, retry later"
                                              : "posts not journaled in time, retry later",
                                          "retry_after", 1));
        }
    }
    esc_log_debug("ingest request accepted=%zu rejected=%zu", accepted,
                  json_array_size(b.rejected));
    rc = s_reply_json(c, MHD_HTTP_ACCEPTED, json_pack("{s:I,s:O}", "accepted",
                                                      (json_int_t)accepted, "rejected",
                                                      b.rejected));
    s_batch_fini(&b);
    return rc;
}

int
src_ingest_parse(const char *body, size_t len)
{
    struct s_batch b;
    char msg[300];
    json_t *answer;
    char *text;
    int accepted;

    memset(&b, 0, sizeof(b));
    b.rejected = json_array();
    if (s_parse_body(body, len, &b, msg, sizeof(msg)) != 0) {
        s_batch_fini(&b);
        answer = json_pack("{s:o}", "error", s_jtext(msg)); /* as s_reply_error */
        text = s_dumps(answer, JSON_COMPACT);
        ESC_ASSERT(text != NULL);
        json_decref(answer);
        esc_free(text);
        return -1;
    }
    accepted = (int)b.n;
    answer = json_pack("{s:I,s:O}", "accepted", (json_int_t)accepted, "rejected", b.rejected);
    text = s_dumps(answer, JSON_COMPACT);
    ESC_ASSERT(text != NULL);
    json_decref(answer);
    esc_free(text);
    s_batch_fini(&b);
    return accepted;
}

static enum MHD_Result
s_handle(void *cls, struct MHD_Connection *c, const char *url, const char *method,
         const char *version, const char *upload_data, size_t *upload_size, void **con_cls)
{
    struct s_ingest *g = cls;
    struct s_req *req = *con_cls;
    const char *auth;
    const char *clen;
    char client[64];
    uint64_t seq;
    int64_t n;

    (void)version;
    if (req == NULL) {
        s_client(c, client, sizeof(client));
        if (strcmp(url, "/ingest") != 0) {
            return s_reply_error(c, MHD_HTTP_NOT_FOUND, "not found: POST /ingest");
        }
        if (strcmp(method, "POST") != 0) {
            return s_reply_error(c, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed: use POST");
        }
        auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
        if (auth == NULL || strncmp(auth, "Bearer ", 7) != 0 || !s_token_ok(g, auth + 7)) {
            esc_log_warn("ingest request refused status=401 reason=%s client=%s",
                         auth == NULL ? "no token" : "wrong token", client);
            return s_reply_error(c, MHD_HTTP_UNAUTHORIZED,
                                 "missing or wrong bearer token (Authorization: Bearer ...)");
        }
        clen = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        pthread_mutex_lock(&g->lock);
        seq = ++g->requests;
        pthread_mutex_unlock(&g->lock);
        if (clen != NULL && esc_parse_i64(clen, 0, INT64_MAX, &n) == 0
            && n > g->cfg->max_body) {
            esc_log_warn("ingest request refused status=413 request=%llu client=%s bytes=%lld "
                         "max_body=%lld", (unsigned long long)seq, client,
                         (long long)n, (long long)g->cfg->max_body);
            s_count_refused(g, COL_REJECT_TOO_LARGE);
            return s_reply_error(c, MHD_HTTP_CONTENT_TOO_LARGE, "request body too large");
        }
        req = esc_calloc(1, sizeof(*req));
        req->seq = seq;
        esc_strlcpy(req->client, client, sizeof(req->client));
        *con_cls = req;
        return MHD_YES;
    }
    if (*upload_size > 0) {
        if (!req->too_big && req->len + *upload_size > (size_t)g->cfg->max_body) {
            req->too_big = 1;
            esc_free(req->body);
            req->body = NULL;
            req->len = 0;
        }
        if (!req->too_big) {
            req->body = esc_realloc(req->body, req->len + *upload_size + 1);
            memcpy(req->body + req->len, upload_data, *upload_size);
            req->len += *upload_size;
            req->body[req->len] = '\0';
        }
        *upload_size = 0;
        return MHD_YES;
    }
    return s_finish(g, c, req);
}

static void
s_completed(void *cls, struct MHD_Connection *c, void **con_cls,
            enum MHD_RequestTerminationCode toe)
{
    struct s_req *req = *con_cls;

    (void)cls;
    (void)c;
    (void)toe;
    if (req != NULL) {
        esc_free(req->body);
        esc_free(req);
        *con_cls = NULL;
    }
}

static void
s_free(struct s_ingest *g)
{
    size_t i;
    size_t cap = (size_t)g->cfg->queue_max;

    if (g->daemon != NULL) {
        MHD_stop_daemon(g->daemon);
    }
    for (i = 0; i < g->n; i++) {
        esc_post_fini(&g->q[(g->head + i) % cap]);
    }
    if (g->token != NULL) {
        memset(g->token, 0, g->token_len);
    }
    esc_free(g->token);
    esc_free(g->q);
    pthread_cond_destroy(&g->settled_cv);
    pthread_mutex_destroy(&g->lock);
    esc_free(g);
}

static int
s_init(struct col_source *ins)
{
    struct s_ingest *g = esc_calloc(1, sizeof(*g));
    struct sockaddr_storage sa;
    socklen_t sa_len;
    const union MHD_DaemonInfo *info;
    pthread_condattr_t ca;

    g->cfg = ins->cfg;
    g->wait = ins->journaled;
    pthread_mutex_init(&g->lock, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&g->settled_cv, &ca);
    pthread_condattr_destroy(&ca);
    g->q = esc_calloc((size_t)g->cfg->queue_max, sizeof(*g->q));
    g->token = esc_secret_load(g->cfg->token_env, g->cfg->token_file, "ingest token");
    if (g->token == NULL || g->token[0] == '\0') {
        esc_log_error("ingest needs a token source=%s token_env=%s token_file=%s", ins->name,
                      g->cfg->token_env, g->cfg->token_file);
        s_free(g);
        return -1;
    }
    g->token_len = strlen(g->token);
    if (esc_parse_listen(g->cfg->listen, &sa, &sa_len) != 0) {
        esc_log_error("bad listen address source=%s listen=%s", ins->name, g->cfg->listen);
        s_free(g);
        return -1;
    }
    /* A thread per connection: a request waiting for the journal blocks no other one. */
    g->daemon = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION
                                     | MHD_USE_ERROR_LOG
                                     | (sa.ss_family == AF_INET6 ? MHD_USE_IPv6 : 0),
                                 0, NULL, NULL, s_handle, g,
                                 MHD_OPTION_SOCK_ADDR, &sa, MHD_OPTION_CONNECTION_LIMIT,
                                 (unsigned int)g->cfg->max_conns, MHD_OPTION_CONNECTION_TIMEOUT,
                                 (unsigned int)10, MHD_OPTION_NOTIFY_COMPLETED, s_completed, g,
                                 MHD_OPTION_END);
    if (g->daemon == NULL) {
        esc_log_error("ingest server failed to start source=%s listen=%s", ins->name,
                      g->cfg->listen);
        s_free(g);
        return -1;
    }
    info = MHD_get_daemon_info(g->daemon, MHD_DAEMON_INFO_BIND_PORT);
    g->port = info != NULL ? info->port : 0;
    esc_log_info("ingest listening source=%s listen=%s port=%d accepted_means=%s", ins->name,
                 g->cfg->listen, g->port, g->wait ? "journaled" : "queued");
    ins->ctx = g;
    return 0;
}

static esc_rc
s_poll(struct col_source *ins, const struct col_emit *em, size_t budget)
{
    struct s_ingest *g = ins->ctx;
    size_t cap = (size_t)g->cfg->queue_max;
    size_t done;
    struct esc_post *post;
    esc_rc rc;
    uint64_t rejected[COL_REJECT_N];
    size_t i;
    char q[100];

    pthread_mutex_lock(&g->lock);
    memcpy(rejected, g->rejected, sizeof(rejected));
    memset(g->rejected, 0, sizeof(g->rejected));
    pthread_mutex_unlock(&g->lock);
    for (i = 0; i < COL_REJECT_N; i++) {
        col_source_reject(ins, (enum col_reject)i, rejected[i]);
    }
    for (done = 0; done < budget; done++) {
        /* Only this thread removes from the head, so the head slot stays put unlocked. */
        pthread_mutex_lock(&g->lock);
        post = g->n > 0 ? &g->q[g->head] : NULL;
        pthread_mutex_unlock(&g->lock);
        if (post == NULL) {
            break;
        }
        rc = em->fn(em->arg, ins, post);
        if (rc == ESC_CLOSED) {
            /* still queued; exit logs it as dropped; waiting requests get 503 */
            pthread_mutex_lock(&g->lock);
            g->closed = 1;
            pthread_cond_broadcast(&g->settled_cv);
            pthread_mutex_unlock(&g->lock);
            return ESC_CLOSED;
        }
        if (rc == ESC_INVALID) {
            col_source_reject(ins, COL_REJECT_TOO_LARGE, 1);
            esc_log_warn("skipped post too large for the bus source=%s id=%s", ins->name,
                         esc_log_quote(q, sizeof(q), post->id != NULL ? post->id : "", 80));
        }
        pthread_mutex_lock(&g->lock);
        esc_post_fini(&g->q[g->head]);
        g->head = (g->head + 1) % cap;
        g->n--;
        g->settled++;
        pthread_cond_broadcast(&g->settled_cv);
        pthread_mutex_unlock(&g->lock);
    }
    if (done == 0) {
        ins->wake_ms = esc_mono_ms() + S_IDLE_MS;
        return ESC_RETRY;
    }
    return ESC_OK;
}

static void
s_exit(struct col_source *ins)
{
    struct s_ingest *g = ins->ctx;

    if (g == NULL) {
        return;
    }
    /* Waiting requests answer 503 at once, so stopping the daemon (which joins the connection
     * threads) does not wait for their timeout. */
    pthread_mutex_lock(&g->lock);
    g->closed = 1;
    pthread_cond_broadcast(&g->settled_cv);
    pthread_mutex_unlock(&g->lock);
    if (g->daemon != NULL) {
        MHD_stop_daemon(g->daemon);
        g->daemon = NULL;
    }
    if (g->n > 0) {
        esc_log_warn("ingest stopping with queued posts not sent source=%s dropped=%zu",
                     ins->name, g->n);
    }
    s_free(g);
    ins->ctx = NULL;
}

int
src_ingest_port(const struct col_source *ins)
{
    const struct s_ingest *g = ins->ctx;

    return g != NULL ? g->port : 0;
}

const struct col_source_plugin src_ingest_plugin = {
    .name = "ingest",
    .description = "HTTP push endpoint: POST /ingest with a bearer token and JSON posts",
    .cfg_map = s_cfg_map,
    .cfg_size = sizeof(struct src_ingest_cfg),
    .validate = s_validate,
    .init = s_init,
    .poll = s_poll,
    .exit = s_exit,
};
