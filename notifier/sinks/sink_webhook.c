#define ESC_LOG_MODULE "sink.webhook"
/* Generic webhook sink ("kind": "webhook", the default): POSTs the alert's JSON payload to one
 * receiver URL. Each attempt carries X-Escucha-Timestamp (Unix seconds) and, when the hook has
 * a secret, X-Escucha-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>"> (libsodium),
 * so a receiver can check origin and freshness; the signature is made at each attempt, right
 * before the request starts. The host (xfer.c) runs the request and maps the answer: 2xx
 * delivered; 408, 429, 5xx and transport errors retried; anything else (other 4xx, 3xx: we
 * never follow redirects) refused. Only the receiver's host:port is ever logged: paths and
 * queries of webhook URLs often carry tokens. Loop thread only. */
#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "escucha/esc_log.h"
#include "escucha/esc_mem.h"
#include "escucha/esc_util.h"
#include "sinks/sink.h"

struct s_ctx {
    char *secret; /* HMAC key, NULL = unsigned; wiped on exit */
};

static int
s_init(struct ntf_sink *ins)
{
    const struct esc_cfg_hook *h = ins->hook;
    struct s_ctx *c;

    if (ntf_sink_url_target(h->url, ins->target, sizeof(ins->target)) != 0) {
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

static esc_rc
s_prepare(struct ntf_sink *ins, const struct ntf_notice *n, struct ntf_req *req)
{
    struct s_ctx *c = ins->ctx;
    char hex[crypto_auth_hmacsha256_BYTES * 2 + 1];
    char ts[24];

    snprintf(ts, sizeof(ts), "%lld", (long long)(n->now_ms / 1000));
    req->kind = NTF_REQ_HTTP;
    esc_strlcpy(req->url, ins->hook->url, sizeof(req->url));
    req->timeout_ms = ins->cfg->webhook_timeout_ms;
    ntf_req_header(req, "Content-Type: application/json");
    ntf_req_header(req, "X-Escucha-Timestamp: %s", ts);
    if (c->secret != NULL) {
        s_sign(c->secret, ts, n->payload, n->payload_len, hex);
        ntf_req_header(req, "X-Escucha-Signature: sha256=%s", hex);
    }
    req->body = esc_malloc(n->payload_len + 1);
    memcpy(req->body, n->payload, n->payload_len);
    req->body[n->payload_len] = '\0';
    req->body_len = n->payload_len;
    return ESC_OK;
}

const struct ntf_sink_plugin sink_webhook_plugin = {
    .name = "webhook",
    .description = "POST each alert as signed JSON to the team's webhook URLs",
    .init = s_init,
    .prepare = s_prepare,
    .exit = s_exit,
};
