#define ESC_LOG_MODULE "api"
/* The shared driver of the HTTP connectors. Each col_api_poll call is one step of a small state
 * machine: read the stored cursor once (waiting while Redis is down), then either look at the
 * answer of the request in flight or, when it is time, ask the connector for the next request
 * and start it on the collector's multi handle (net.c) and return at once; the loop wakes the
 * source again when the answer is in. Answers are judged here, not in the connectors:
 *   - transport failures, 5xx and bodies the connector calls bad: warn once with the source,
 *     the reason and the (redacted) URL, count, retry the same request after a backoff that
 *     doubles per failure with jitter; a Retry-After replaces the backoff (the platform said
 *     when);
 *   - 429: wait for Retry-After, else the window reset from *RateLimit-Reset, else a doubling
 *     rate backoff;
 *   - a 2xx with *RateLimit-Remaining at 0: the next request waits for the reset;
 *   - 401/403 (after the connector's own hook, e.g. token refresh): error, long backoff;
 *   - other 4xx: error, the poll ends and the next one comes at the normal interval.
 * Nothing here ever stops a source for good. Loop thread only. */
#include <string.h>
#include <unistd.h>

#include "api.h"
#include "rate.h"
#include "state.h"
#include "text.h"

#include "escucha/esc_log.h"
#include "escucha/esc_mem.h"
#include "escucha/esc_metrics.h"
#include "escucha/esc_util.h"

#define S_INFLIGHT_WAKE_MS 60000  /* safety wake while a request is in flight */
#define S_REDIS_RETRY_MS 2000     /* cursor read retry while Redis is down */
#define S_WAIT_LOG_MS 60000
#define S_PAUSE_MAX_MS (26 * 3600 * 1000LL) /* longest wait a platform header may ask for */
#define S_INTERVAL_JITTER 0.1
#define S_INTERVAL_JITTER_CAP_MS 5000

/* Bounds of escucha_collector_fetch_duration_seconds. */
static const double s_fetch_bounds[] = { 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                         1,    2.5,   5,    10,  30,   60 };

esc_rc
col_api_cfg_check(const struct col_api_cfg *cfg, const char *path, struct esc_error *err)
{
    int64_t ms;

    if (col_since_parse(cfg->since, &ms) != 0) {
        esc_error_set(err, 0, "%s.since: '%s' is not a date (YYYY-MM-DD or RFC 3339)", path,
                      cfg->since);
        return ESC_INVALID;
    }
    if (cfg->user_agent[0] == '\0') {
        esc_error_set(err, 0, "%s.user_agent: must not be empty", path);
        return ESC_INVALID;
    }
    return ESC_OK;
}

int
col_api_init(struct col_api *api, struct col_source *ins, const struct col_api_cfg *cfg,
             const struct col_api_ops *ops, void *ctx)
{
    memset(api, 0, sizeof(*api));
    api->ins = ins;
    api->cfg = cfg;
    api->ops = ops;
    api->ctx = ctx;
    api->rng = (uint64_t)esc_now_ms() ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)api;
    if (api->rng == 0) {
        api->rng = 1;
    }
    if (col_since_parse(cfg->since, &api->since_ms) != 0) {
        esc_log_error("bad since source=%s since=%s (want YYYY-MM-DD or RFC 3339)", ins->name,
                      cfg->since);
        return -1;
    }
    ESC_ASSERT(ins->net != NULL && ins->state != NULL);
    api->m_requests = col_source_metric(ins, "escucha_collector_requests_total",
                                        "HTTP requests answered or failed, per source.");
    api->m_errors = col_source_metric(ins, "escucha_collector_errors_total",
                                      "Failed requests and bad responses, per source.");
    api->m_rate_limited = col_source_metric(ins, "escucha_collector_rate_limited_total",
                                            "HTTP 429 answers, per source.");
    api->m_duplicates = col_source_metric(ins, "escucha_collector_duplicates_total",
                                          "Posts dropped as already sent, per source.");
    api->m_fetch_s = col_source_histogram(
        ins, "escucha_collector_fetch_duration_seconds",
        "Duration of one HTTP request (answered or failed; not streams), per source.",
        s_fetch_bounds, ESC_ARRAY_LEN(s_fetch_bounds));
    return 0;
}

void
col_api_fini(struct col_api *api)
{
    col_req_destroy(&api->req);
    esc_free(api->unsaved);
    api->unsaved = NULL;
}

col_req_t *
col_api_req(struct col_api *api, const char *url)
{
    col_req_t *req = col_req_new(url);

    col_req_user_agent(req, api->cfg->user_agent);
    col_req_timeout(req, api->cfg->timeout_ms);
    col_req_body_max(req, (size_t)api->cfg->max_body_kb * 1024);
    return req;
}

char *
col_api_secret(struct col_api *api, const char *env, const char *file, const char *what)
{
    char label[128];

    snprintf(label, sizeof(label), "%s of source %s", what, api->ins->name);
    if ((env == NULL || env[0] == '\0') && (file == NULL || file[0] == '\0')) {
        esc_log_error("no %s configured source=%s (set its _env or _file key)", what,
                      api->ins->name);
        return NULL;
    }
    return esc_secret_load(env, file, label);
}

static void
s_count(struct col_api *api, const char *field)
{
    col_state_count(api->ins->state, api->ins->name, field, 1);
}

esc_rc
col_api_emit(struct col_api *api, struct esc_post *post, const char *key)
{
    const char *platform = api->ops->platform;
    int64_t ttl = api->cfg->dedupe_ttl_h * 3600;
    esc_rc rc;

    if (post->platform == NULL) {
        post->platform = esc_strdup(platform);
    }
    if (post->text == NULL) {
        post->text = esc_strdup("");
    }
    col_utf8_truncate(post->text, ESC_POST_TEXT_MAX);
    if (!col_state_claim(api->ins->state, platform, key, ttl)) {
        api->stats.duplicates++;
        api->cycle_dups++;
        esc_metric_add(api->m_duplicates, 1);
        return ESC_OK;
    }
    rc = api->emit->fn(api->emit->arg, api->ins, post);
    if (rc == ESC_CLOSED) {
        col_state_unclaim(api->ins->state, platform, key);
        return ESC_CLOSED;
    }
    if (rc == ESC_INVALID) {
        api->ins->stats.skipped++;
        esc_log_warn("post rejected by the bus (too large) source=%s id=%s", api->ins->name,
                     post->id);
        return ESC_OK;
    }
    api->stats.posts++;
    api->cycle_posts++;
    return ESC_OK;
}

/* Writes the unsaved cursor, if any. */
static void
s_flush_cursor(struct col_api *api)
{
    if (api->unsaved == NULL) {
        return;
    }
    if (col_state_cursor_set(api->ins->state, api->ins->name, api->unsaved) == ESC_OK) {
        esc_free(api->unsaved);
        api->unsaved = NULL;
    }
}

void
col_api_cursor_save(struct col_api *api, const char *text)
{
    esc_free(api->unsaved);
    api->unsaved = esc_strdup(text);
    s_flush_cursor(api);
}

void
col_api_error(struct col_api *api)
{
    api->stats.errors++;
    api->ins->stats.errors++;
    esc_metric_add(api->m_errors, 1);
    s_count(api, "errors");
}

void
col_api_cycle_done(struct col_api *api)
{
    api->cycle_done = 1;
}

/* Ends the current poll: the next starts interval_s (with a little jitter) after it began. */
static void
s_end_cycle(struct col_api *api, int64_t now)
{
    int64_t next = api->cycle_start
                   + col_jitter_ms(api->cfg->interval_s * 1000, S_INTERVAL_JITTER,
                                   S_INTERVAL_JITTER_CAP_MS, &api->rng);

    if (api->cycle_posts > 0 || api->cycle_dups > 0) {
        esc_log_info("poll done source=%s requests=%lld posts=%llu duplicates=%llu",
                     api->ins->name, (long long)api->cycle_pages,
                     (unsigned long long)api->cycle_posts, (unsigned long long)api->cycle_dups);
    }
    else {
        esc_log_debug("poll done source=%s requests=%lld posts=0", api->ins->name,
                      (long long)api->cycle_pages);
    }
    api->in_cycle = 0;
    api->cycle_done = 0;
    if (next < now) {
        next = now;
    }
    if (next > api->not_before) {
        api->not_before = next;
    }
}

/* A failed request: counted, logged with why, retried after max(backoff, hint). */
static void
s_failure(struct col_api *api, col_req_t *req, const char *kind, const char *reason,
          int64_t base, int64_t hint_ms, int64_t now)
{
    int64_t wait;
    char q[300];

    api->failures++;
    col_api_error(api);
    wait = col_backoff_ms(base, api->cfg->backoff_max_ms > base ? api->cfg->backoff_max_ms : base,
                          api->failures, &api->rng);
    if (hint_ms >= 0) {
        /* The platform said when: never earlier than that, never much later. */
        wait = col_jitter_ms(hint_ms < S_PAUSE_MAX_MS ? hint_ms : S_PAUSE_MAX_MS, 0.1, 1000,
                             &api->rng);
    }
    api->not_before = now + wait;
    esc_log_warn("%s source=%s reason=%s status=%ld attempt=%d wait_ms=%lld url=%s", kind,
                 api->ins->name, esc_log_quote(q, sizeof(q), reason, 200), col_req_status(req),
                 api->failures, (long long)wait, col_req_log_url(req));
}

/* Header lookup over the platforms' spellings (X-RateLimit-*, RateLimit-*, x-rate-limit-*). */
static const char *
s_rate_header(col_req_t *req, const char *what, char *buf, size_t bufsz)
{
    static const char *const forms[] = { "X-RateLimit-", "RateLimit-", "X-Rate-Limit-", NULL };
    char name[64];
    const char *v;
    size_t i;

    for (i = 0; forms[i] != NULL; i++) {
        snprintf(name, sizeof(name), "%s%s", forms[i], what);
        v = col_req_resp_header(req, name);
        if (v != NULL) {
            esc_strlcpy(buf, v, bufsz);
            return buf;
        }
    }
    return NULL;
}

static void
s_rate(col_req_t *req, struct col_rate *rate, int64_t now_wall)
{
    char rem[64];
    char reset[96];
    char ra[96];
    const char *pr;
    const char *pz;
    const char *pa;

    pr = s_rate_header(req, "Remaining", rem, sizeof(rem));
    pz = s_rate_header(req, "Reset", reset, sizeof(reset));
    pa = col_req_resp_header(req, "Retry-After");
    if (pa != NULL) {
        esc_strlcpy(ra, pa, sizeof(ra));
        pa = ra;
    }
    col_rate_parse(rate, pr, pz, pa, now_wall);
}

static int
s_is_json(const char *ct)
{
    return ct == NULL || strstr(ct, "json") != NULL || strstr(ct, "JSON") != NULL;
}

/* Judges the answer of the request in flight. Returns ESC_OK or ESC_CLOSED. */
static esc_rc
s_answer(struct col_api *api, int64_t now)
{
    col_req_t *req = api->req;
    long status = col_req_status(req);
    int64_t wall = esc_now_ms();
    int64_t hint = -1;
    int64_t pause;
    struct col_rate rate;
    struct esc_error err;
    const char *ct;
    char why[256];
    esc_rc rc;

    api->stats.requests++;
    api->cycle_pages++;
    esc_metric_add(api->m_requests, 1);
    if (!col_req_is_stream(req)) {
        /* a stream's "duration" is how long it stayed open, not a fetch time */
        esc_metric_observe(api->m_fetch_s, (double)col_req_elapsed_ms(req) / 1000.0);
    }
    if (col_req_fail(req) != COL_REQ_OK) {
        static const char *const kinds[] = { "ok", "timeout", "connect failed",
                                             "truncated body", "body too large",
                                             "transfer failed" };

        snprintf(why, sizeof(why), "%s: %s", kinds[col_req_fail(req)], col_req_error(req));
        s_failure(api, req, "request failed", why, api->cfg->backoff_ms, -1, now);
        return ESC_OK;
    }
    s_rate(req, &rate, wall);
    if (status == 429) {
        api->stats.rate_limited++;
        esc_metric_add(api->m_rate_limited, 1);
        s_count(api, "rate_limited");
        if (rate.retry_after_ms >= 0) {
            hint = rate.retry_after_ms;
        }
        else if (rate.reset_ms > wall) {
            hint = rate.reset_ms - wall;
        }
        s_failure(api, req, "rate limited", "HTTP 429 Too Many Requests",
                  api->cfg->rate_backoff_ms, hint, now);
        return ESC_OK;
    }
    if (status >= 400 && api->ops->failed != NULL) {
        int64_t wait = 0;

        rc = api->ops->failed(api->ctx, api, req, &wait);
        if (rc == ESC_OK) {
            api->not_before = now + wait;
            return ESC_OK;
        }
        if (rc == ESC_RETRY) {
            snprintf(why, sizeof(why), "HTTP %ld", status);
            s_failure(api, req, "request failed", why, api->cfg->backoff_ms,
                      rate.retry_after_ms, now);
            return ESC_OK;
        }
    }
    if (status >= 500 || status < 200 || (status >= 300 && status != 304 && status < 400)) {
        snprintf(why, sizeof(why), "HTTP %ld from the server", status);
        s_failure(api, req, "request failed", why, api->cfg->backoff_ms, rate.retry_after_ms,
                  now);
        return ESC_OK;
    }
    if (status == 401 || status == 403) {
        snprintf(why, sizeof(why), "HTTP %ld: credentials missing, wrong or expired", status);
        s_failure(api, req, "auth failed", why,
                  api->cfg->rate_backoff_ms > api->cfg->backoff_ms ? api->cfg->rate_backoff_ms
                                                                   : api->cfg->backoff_ms,
                  rate.retry_after_ms, now);
        return ESC_OK;
    }
    if (status >= 400) {
        col_api_error(api);
        esc_log_error("request rejected source=%s status=%ld url=%s (poll ends, next at the "
                      "normal interval)", api->ins->name, status, col_req_log_url(req));
        api->failures = 0;
        s_end_cycle(api, now);
        return ESC_OK;
    }
    /* 2xx or 304 */
    ct = col_req_resp_header(req, "Content-Type");
    if (api->ops->json && status != 304 && status != 204 && !col_req_is_stream(req)
        && !s_is_json(ct)) {
        snprintf(why, sizeof(why), "wrong content type '%.80s', expected JSON", ct);
        s_failure(api, req, "bad response", why, api->cfg->backoff_ms, -1, now);
        return ESC_OK;
    }
    if (status == 304) {
        api->stats.not_modified++;
    }
    memset(&err, 0, sizeof(err));
    rc = api->ops->page(api->ctx, api, req, &err);
    if (rc == ESC_CLOSED) {
        return ESC_CLOSED;
    }
    if (rc != ESC_OK) {
        s_failure(api, req, "bad response", err.text[0] != '\0' ? err.text : "unusable body",
                  api->cfg->backoff_ms, -1, now);
        return ESC_OK;
    }
    api->stats.pages++;
    if (api->failures > 0) {
        esc_log_info("source recovered source=%s after_failures=%d", api->ins->name,
                     api->failures);
        api->failures = 0;
    }
    api->not_before = now + api->cfg->page_delay_ms;
    pause = col_rate_pause_ms(&rate, wall, S_PAUSE_MAX_MS);
    if (pause > 0) {
        esc_log_info("rate limit window used up, pausing source=%s wait_ms=%lld",
                     api->ins->name, (long long)pause);
        api->not_before = now + pause;
    }
    if (api->cycle_done || api->cycle_pages >= api->cfg->max_pages) {
        s_end_cycle(api, now);
    }
    return ESC_OK;
}

/* Reads the stored cursor once. Returns 1 when done, 0 to wait for Redis. */
static int
s_load(struct col_api *api)
{
    char *text = NULL;
    char q[200];

    if (col_state_cursor_get(api->ins->state, api->ins->name, &text) != ESC_OK) {
        esc_log_every(&api->wait_log, S_WAIT_LOG_MS,
                      "waiting for redis to read the cursor source=%s", api->ins->name);
        return 0;
    }
    if (api->ops->load(api->ctx, api, text) != 0) {
        esc_log_error("stored cursor unusable, starting afresh source=%s cursor=%s",
                      api->ins->name, esc_log_quote(q, sizeof(q), text, 120));
    }
    else if (text != NULL) {
        esc_log_info("resuming from stored cursor source=%s", api->ins->name);
    }
    esc_free(text);
    api->loaded = 1;
    return 1;
}

esc_rc
col_api_poll(struct col_api *api, const struct col_emit *emit)
{
    struct col_source *ins = api->ins;
    col_req_t *req = NULL;
    int64_t now = esc_mono_ms();
    esc_rc rc;

    api->emit = emit;
    if (!api->loaded && !s_load(api)) {
        ins->wake_ms = now + S_REDIS_RETRY_MS;
        return ESC_RETRY;
    }
    if (api->req != NULL) {
        if (!col_req_done(api->req)) {
            /* set first: a stream callback may clear it again while flowing runs */
            ins->wake_ms = now + S_INFLIGHT_WAKE_MS;
            if (api->ops->flowing != NULL
                && api->ops->flowing(api->ctx, api, api->req) == ESC_CLOSED) {
                return ESC_CLOSED;
            }
            return ESC_RETRY;
        }
        rc = s_answer(api, now);
        col_req_destroy(&api->req);
        if (rc == ESC_CLOSED) {
            return ESC_CLOSED;
        }
        now = esc_mono_ms();
    }
    s_flush_cursor(api);
    if (now < api->not_before) {
        ins->wake_ms = api->not_before;
        return ESC_RETRY;
    }
    if (!api->in_cycle) {
        api->in_cycle = 1;
        api->cycle_start = now;
        api->cycle_pages = 0;
        api->cycle_posts = 0;
        api->cycle_dups = 0;
        api->cycle_done = 0;
    }
    if (api->ops->next(api->ctx, api, &req) != ESC_OK) {
        s_end_cycle(api, now);
        ins->wake_ms = api->not_before;
        return ESC_RETRY;
    }
    ESC_ASSERT(req != NULL);
    api->req = req;
    esc_log_debug("request source=%s url=%s", ins->name, col_req_log_url(req));
    col_net_start(ins->net, req, &ins->wake_ms);
    ins->wake_ms = col_req_done(req) ? 0 : now + S_INFLIGHT_WAKE_MS;
    return ESC_RETRY;
}

int
col_sweep_load(struct col_sweep *s, const char *cursor)
{
    int64_t v;

    memset(s, 0, sizeof(*s));
    if (cursor == NULL) {
        return 0;
    }
    if (esc_parse_i64(cursor, 0, INT64_MAX, &v) != 0) {
        return -1;
    }
    s->mark_ms = v;
    return 0;
}

int64_t
col_sweep_bound(const struct col_sweep *s, const struct col_api *api)
{
    return s->mark_ms > 0 ? s->mark_ms : api->since_ms;
}

int
col_sweep_keep(struct col_sweep *s, const struct col_api *api, int64_t t_ms)
{
    int64_t bound = col_sweep_bound(s, api);

    if (bound > 0 && t_ms < bound) {
        s->older_seen = 1;
        return 0;
    }
    if (t_ms > s->newest_ms) {
        s->newest_ms = t_ms;
    }
    return 1;
}

int
col_sweep_page_done(struct col_sweep *s, struct col_api *api, int more)
{
    char text[32];

    if (col_sweep_bound(s, api) > 0 && more && !s->older_seen) {
        return 1;
    }
    if (s->newest_ms > s->mark_ms) {
        s->mark_ms = s->newest_ms;
    }
    else if (s->mark_ms == 0) {
        /* nothing seen on a first run: start from now, not from the beginning of time */
        s->mark_ms = esc_now_ms();
    }
    snprintf(text, sizeof(text), "%lld", (long long)s->mark_ms);
    col_api_cursor_save(api, text);
    s->newest_ms = 0;
    s->older_seen = 0;
    col_api_cycle_done(api);
    return 0;
}
