#define ESC_LOG_MODULE "sink.webhook"
/* Webhook sink: POSTs an alert's JSON payload to one receiver URL with libcurl. Each request
 * carries X-Escucha-Timestamp (Unix seconds) and, when the hook has a secret,
 * X-Escucha-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>"> (libsodium), so a
 * receiver can check origin and freshness. The status decides what the host does next: 2xx
 * delivered; 408, 429, 5xx and transport errors ESC_RETRY; anything else (other 4xx, 3xx: we
 * never follow redirects) ESC_INVALID. A request never outlives webhook_timeout_ms nor the
 * host's deadline, so a slow receiver cannot hold up shutdown. Only the receiver's host:port
 * is ever logged: paths and queries of webhook URLs often carry tokens. One easy handle per
 * instance keeps its connection alive between deliveries. Loop thread only. */
#include <string.h>

#include <curl/curl.h>
#include <sodium.h>

#include "escucha/esc_log.h"
#include "escucha/esc_mem.h"
#include "escucha/esc_util.h"
#include "sinks/sink.h"

struct s_ctx {
    CURL *easy;   /* reused between deliveries (keep-alive) */
    char *secret; /* HMAC key, NULL = unsigned; wiped on exit */
};

static size_t
s_discard(char *p, size_t size, size_t nmemb, void *ud)
{
    return size * nmemb;
}

/* host[:port] of url into out. Returns 0, or -1 when curl cannot parse it. */
static int
s_target(const char *url, char *out, size_t outsz)
{
    CURLU *u = curl_url();
    char *host = NULL;
    char *port = NULL;
    int rc = -1;

    if (u == NULL) {
        return -1;
    }
    if (curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK
        && curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK) {
        if (curl_url_get(u, CURLUPART_PORT, &port, 0) != CURLUE_OK) {
            port = NULL;
        }
        snprintf(out, outsz, "%s%s%s", host, port != NULL ? ":" : "", port != NULL ? port : "");
        rc = 0;
    }
    curl_free(host);
    curl_free(port);
    curl_url_cleanup(u);
    return rc;
}

static int
s_init(struct ntf_sink *ins)
{
    const struct esc_cfg_hook *h = ins->hook;
    struct s_ctx *c;

    if (s_target(h->url, ins->target, sizeof(ins->target)) != 0) {
        esc_log_error("webhook url not understood sink=%s", ins->name);
        return -1;
    }
    c = esc_calloc(1, sizeof(*c));
    if (h->secret_env[0] != '\0' || h->secret_file[0] != '\0') {
        c->secret = esc_secret_load(h->secret_env, h->secret_file, "webhook secret");
        if (c->secret == NULL) {
            esc_log_error("webhook secret not available sink=%s host=%s", ins->name, ins->target);
            esc_free(c);
            return -1;
        }
    }
    c->easy = curl_easy_init();
    if (c->easy == NULL) {
        esc_log_error("curl_easy_init failed sink=%s", ins->name);
        esc_free(c->secret);
        esc_free(c);
        return -1;
    }
    ins->ctx = c;
    return 0;
}

static void
s_exit(struct ntf_sink *ins)
{
    struct s_ctx *c = ins->ctx;

    if (c == NULL) {
        return;
    }
    curl_easy_cleanup(c->easy);
    if (c->secret != NULL) {
        sodium_memzero(c->secret, strlen(c->secret));
        esc_free(c->secret);
    }
    esc_free(c);
    ins->ctx = NULL;
}

/* hex = HMAC-SHA256(secret, ts "." body) in lower-case hex. */
static void
s_sign(const char *secret, const char *ts, const char *body, size_t len,
       char hex[crypto_auth_hmacsha256_BYTES * 2 + 1])
{
    crypto_auth_hmacsha256_state st;
    unsigned char mac[crypto_auth_hmacsha256_BYTES];

    crypto_auth_hmacsha256_init(&st, (const unsigned char *)secret, strlen(secret));
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)ts, strlen(ts));
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)".", 1);
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)body, len);
    crypto_auth_hmacsha256_final(&st, mac);
    sodium_bin2hex(hex, crypto_auth_hmacsha256_BYTES * 2 + 1, mac, sizeof(mac));
}

static struct curl_slist *
s_header(struct curl_slist *list, const char *line)
{
    struct curl_slist *next = curl_slist_append(list, line);

    ESC_ASSERT(next != NULL); /* curl only fails here when out of memory */
    return next;
}

static esc_rc
s_deliver(struct ntf_sink *ins, const struct ntf_notice *n)
{
    struct s_ctx *c = ins->ctx;
    char hex[crypto_auth_hmacsha256_BYTES * 2 + 1];
    struct curl_slist *hdrs = NULL;
    char qid[160];
    char line[160];
    char ts[24];
    int64_t timeout = ins->cfg->webhook_timeout_ms;
    int64_t left = n->deadline_ms - esc_mono_ms();
    long status = 0;
    CURLcode crc;

    if (left < timeout) {
        timeout = left > 1 ? left : 1;
    }
    esc_log_quote(qid, sizeof(qid), n->alert->id, 120);
    snprintf(ts, sizeof(ts), "%lld", (long long)(esc_now_ms() / 1000));
    hdrs = s_header(hdrs, "Content-Type: application/json");
    hdrs = s_header(hdrs, "Expect:"); /* no 100-continue round trip for larger bodies */
    snprintf(line, sizeof(line), "X-Escucha-Timestamp: %s", ts);
    hdrs = s_header(hdrs, line);
    if (c->secret != NULL) {
        s_sign(c->secret, ts, n->payload, n->payload_len, hex);
        snprintf(line, sizeof(line), "X-Escucha-Signature: sha256=%s", hex);
        hdrs = s_header(hdrs, line);
    }
    curl_easy_reset(c->easy);
    curl_easy_setopt(c->easy, CURLOPT_URL, ins->hook->url);
    curl_easy_setopt(c->easy, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c->easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c->easy, CURLOPT_USERAGENT, "escucha/" ESC_VERSION);
    curl_easy_setopt(c->easy, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(c->easy, CURLOPT_POSTFIELDS, n->payload);
    curl_easy_setopt(c->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)n->payload_len);
    curl_easy_setopt(c->easy, CURLOPT_TIMEOUT_MS, (long)timeout);
    curl_easy_setopt(c->easy, CURLOPT_CONNECTTIMEOUT_MS, (long)timeout);
    curl_easy_setopt(c->easy, CURLOPT_WRITEFUNCTION, s_discard);
    crc = curl_easy_perform(c->easy);
    curl_slist_free_all(hdrs);
    if (crc != CURLE_OK) {
        esc_log_warn("webhook request failed sink=%s host=%s alert=%s attempt=%d err=\"%s\"",
                     ins->name, ins->target, qid, n->attempt, curl_easy_strerror(crc));
        return ESC_RETRY;
    }
    curl_easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, &status);
    if (status >= 200 && status < 300) {
        esc_log_debug("webhook delivered sink=%s host=%s alert=%s status=%ld attempt=%d",
                      ins->name, ins->target, qid, status, n->attempt);
        return ESC_OK;
    }
    if (status == 408 || status == 429 || status >= 500) {
        esc_log_warn("webhook busy sink=%s host=%s alert=%s status=%ld attempt=%d", ins->name,
                     ins->target, qid, status, n->attempt);
        return ESC_RETRY;
    }
    esc_log_warn("webhook rejected alert sink=%s host=%s alert=%s status=%ld", ins->name,
                 ins->target, qid, status);
    return ESC_INVALID;
}

const struct ntf_sink_plugin sink_webhook_plugin = {
    .name = "webhook",
    .description = "POST each alert as signed JSON to the team's webhook URLs",
    .init = s_init,
    .deliver = s_deliver,
    .exit = s_exit,
};
