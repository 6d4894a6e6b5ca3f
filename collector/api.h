#ifndef COL_API_H
#define COL_API_H

/* The behaviour every platform connector shares (collector-internal), written once: the poll
 * schedule, paging within a poll, timeouts, rate limits from the platform's headers, backoff
 * with jitter after failures, one clear log line and a counted error for every bad response,
 * cursors kept in Redis so a restart resumes, and dedupe so a re-sent post goes out once.
 *
 * A connector (sources/src_<name>.c) embeds a struct col_api in its ctx and a struct
 * col_api_cfg in its config (keys from COL_API_CFG_MAP), fills a struct col_api_ops and
 * forwards its plugin init/poll/exit to col_api_init/col_api_poll/col_api_fini. The driver
 * keeps at most one request of the source in flight. A "poll" (cycle) is a run of requests:
 * ops->next builds the next one until it says the cycle is over (or the connector calls
 * col_api_cycle_done from ops->page); the next cycle starts interval_s after this one began.
 * ops->next must build the same request again when the previous one failed (the connector's
 * state only moves in ops->page), which is how a failed page is retried. */

#include <stdint.h>

#include "col_source.h"
#include "net.h"

#include "escucha/esc_cfg.h"
#include "escucha/esc_log.h"
#include "escucha/esc_msg.h"
#include "escucha/esc_rc.h"

#define COL_API_UA_DEFAULT "escucha/" ESC_VERSION " (social listening collector)"

/* Settings shared by every HTTP connector (mapped from the source object). */
struct col_api_cfg {
    int64_t interval_s;      /* seconds between the starts of two polls */
    int64_t timeout_ms;      /* whole-request timeout */
    int64_t page_delay_ms;   /* pause between two requests of one poll */
    int64_t backoff_ms;      /* first retry delay after a failure, doubling */
    int64_t backoff_max_ms;  /* longest retry delay */
    int64_t rate_backoff_ms; /* first delay after a 429 that says nothing about when */
    int64_t max_pages;       /* most requests in one poll */
    int64_t dedupe_ttl_h;    /* how long a sent post is remembered */
    int64_t max_body_kb;     /* largest response body accepted */
    char since[40];          /* backfill start: "" (from now), YYYY-MM-DD or RFC 3339 */
    char user_agent[160];    /* User-Agent header */
};

/* Expands to the cfg-map entries of struct col_api_cfg member m of config struct T, with
 * interval_s defaulting to the string idef. */
#define COL_API_CFG_MAP(T, m, idef)                                                                \
    ESC_CFG_INT("interval_s", idef, 1, 86400, T, m.interval_s,                                     \
                "seconds between two polls (a poll pages until it has caught up)"),                \
        ESC_CFG_INT("timeout_ms", "30000", 100, 600000, T, m.timeout_ms,                           \
                    "timeout of one HTTP request, connect included"),                              \
        ESC_CFG_INT("page_delay_ms", "1000", 0, 600000, T, m.page_delay_ms,                        \
                    "pause between two requests of one poll"),                                     \
        ESC_CFG_INT("backoff_ms", "5000", 10, 3600000, T, m.backoff_ms,                            \
                    "first retry delay after a failed request (5xx, timeout, bad body), "          \
                    "doubling per failure, plus jitter"),                                          \
        ESC_CFG_INT("backoff_max_ms", "900000", 10, 86400000, T, m.backoff_max_ms,                 \
                    "longest retry delay"),                                                        \
        ESC_CFG_INT("rate_backoff_ms", "60000", 10, 86400000, T, m.rate_backoff_ms,                \
                    "first delay after HTTP 429 when the platform gives no Retry-After or reset "  \
                    "time, doubling"),                                                             \
        ESC_CFG_INT("max_pages", "100", 1, 100000, T, m.max_pages,                                 \
                    "most requests in one poll; the rest waits for the next poll"),                \
        ESC_CFG_INT("dedupe_ttl_h", "720", 1, 87600, T, m.dedupe_ttl_h,                            \
                    "hours a sent post id is remembered (in Redis) so a re-sent post is dropped"), \
        ESC_CFG_INT("max_body_kb", "8192", 16, 262144, T, m.max_body_kb,                           \
                    "largest response body accepted, KiB"),                                        \
        ESC_CFG_STR("since", "", T, m.since,                                                       \
                    "backfill: on the first run go back to this date (YYYY-MM-DD or RFC 3339) "    \
                    "as far as the platform allows; empty: start with the newest posts"),          \
        ESC_CFG_STR("user_agent", COL_API_UA_DEFAULT, T, m.user_agent,                             \
                    "User-Agent sent with every request")

/* Checks what the map cannot: "since" must parse. For each connector's validate. Returns ESC_OK
 * or ESC_INVALID with err naming the key ("<path>.since"). */
esc_rc col_api_cfg_check(const struct col_api_cfg *cfg, const char *path, struct esc_error *err);

struct col_api;

struct col_api_ops {
    const char *platform; /* post platform and dedupe namespace, e.g. "mastodon" */
    int json;             /* 1: a 2xx body must be JSON (a text/html answer is a bad response) */
    /* Restores the connector's position from its stored cursor (NULL: none stored yet).
     * Returns 0, or -1 when the text is unusable (the driver logs it and the connector must
     * have reset itself to a fresh start). */
    int (*load)(void *ctx, struct col_api *api, const char *cursor);
    /* Builds the next request of the current poll with col_api_req into *out and returns
     * ESC_OK, or returns ESC_RETRY when the poll is complete. */
    esc_rc (*next)(void *ctx, struct col_api *api, col_req_t **out);
    /* Handles a 2xx or 304 answer to the request it built: parses it, hands posts to
     * col_api_emit and moves its position (saving it with col_api_cursor_save). Returns
     * ESC_OK, ESC_INVALID when the body is unusable (reason in err; the driver logs, counts
     * and retries after a backoff) or ESC_CLOSED when col_api_emit said the host is stopping. */
    esc_rc (*page)(void *ctx, struct col_api *api, col_req_t *req, struct esc_error *err);
    /* Optional: sees a 4xx/5xx answer first. Returns ESC_OK when it dealt with it (e.g. dropped
     * an expired token) and the next request may go after *wait_ms, ESC_RETRY to have it
     * treated as transient (backoff), ESC_ERR for the default handling. */
    esc_rc (*failed)(void *ctx, struct col_api *api, col_req_t *req, int64_t *wait_ms);
    /* Optional, for streaming requests: called whenever the source is polled while its request
     * is still running, to hand over what the stream delivered so far. Returns ESC_OK or
     * ESC_CLOSED (from col_api_emit). */
    esc_rc (*flowing)(void *ctx, struct col_api *api, col_req_t *req);
};

/* Counters of one source (also in Redis, hash <prefix>:col:stats:<source>). */
struct col_api_stats {
    uint64_t requests;   /* answered or failed requests */
    uint64_t pages;      /* answers handled by ops->page */
    uint64_t posts;      /* posts handed to the host */
    uint64_t duplicates; /* posts dropped as already sent */
    uint64_t errors;     /* failed requests and bad responses */
    uint64_t rate_limited; /* 429s */
    uint64_t not_modified; /* 304s */
};

struct col_api {
    struct col_source *ins;         /* borrowed */
    const struct col_api_cfg *cfg;  /* borrowed */
    const struct col_api_ops *ops;  /* borrowed, static */
    void *ctx;                      /* the connector, passed back to ops */
    const struct col_emit *emit;    /* valid during col_api_poll */
    col_req_t *req;                 /* the request in flight or just answered; owned */
    struct col_api_stats stats;
    int64_t since_ms;               /* cfg->since parsed, 0 = none */
    int64_t not_before;             /* monotonic ms before which no request goes */
    int64_t cycle_start;            /* monotonic ms the current poll began */
    int64_t cycle_pages;            /* requests in the current poll */
    uint64_t cycle_posts;           /* posts sent in the current poll */
    uint64_t cycle_dups;
    int in_cycle;
    int cycle_done;                 /* the connector ended the poll */
    int loaded;                     /* the cursor was read */
    int failures;                   /* consecutive failures */
    char *unsaved;                  /* cursor text not yet written to Redis */
    uint64_t rng;                   /* jitter */
    struct esc_log_every wait_log;
    struct esc_metric *m_requests;  /* Prometheus counters of this source; borrowed */
    struct esc_metric *m_errors;
    struct esc_metric *m_rate_limited;
    struct esc_metric *m_duplicates;
    struct esc_metric *m_fetch_s;   /* request duration histogram (not streams); borrowed */
};

/* Sets api up for instance ins (whose ins->net and ins->state the host filled). Returns 0, or
 * -1 (logged) when cfg is unusable (a bad "since"). */
int col_api_init(struct col_api *api, struct col_source *ins, const struct col_api_cfg *cfg,
                 const struct col_api_ops *ops, void *ctx);
/* The plugin poll: see col_source_plugin.poll. */
esc_rc col_api_poll(struct col_api *api, const struct col_emit *emit);
/* Aborts a request in flight and frees what api holds. */
void col_api_fini(struct col_api *api);

/* A request for url with the source's User-Agent, timeout and body limit applied. Caller owns
 * the result (normally returned through ops->next, after which the driver owns it). */
col_req_t *col_api_req(struct col_api *api, const char *url);
/* Hands post to the host unless `key` (the dedupe key within ops->platform: the platform's
 * global id or canonical URL) was sent before. Fills post->platform when NULL and cuts text to
 * ESC_POST_TEXT_MAX. post stays the caller's. Returns ESC_OK (sent or dropped as a duplicate)
 * or ESC_CLOSED (the host is stopping; the post was not sent and is not marked as sent). */
esc_rc col_api_emit(struct col_api *api, struct esc_post *post, const char *key);
/* Stores the connector's cursor text (copied) in Redis now or, while Redis is down, later. */
void col_api_cursor_save(struct col_api *api, const char *text);
/* Counts one error of the source (for failures an ops->failed hook handles itself). */
void col_api_error(struct col_api *api);
/* Ends the current poll after this answer (from ops->page). */
void col_api_cycle_done(struct col_api *api);
/* Loads a secret from env var / file (either may be ""), logging what is missing without the
 * value. Returns caller-owned text or NULL. */
char *col_api_secret(struct col_api *api, const char *env, const char *file, const char *what);

/* The sweep of a newest-first listing (Reddit, Bluesky, Lemmy, YouTube): page from the newest
 * item back until one is older than the bound (the mark, i.e. the newest time taken by the last
 * complete sweep, or on a first run the "since" date) or the listing ends; then the mark moves
 * to the newest time seen and is stored as the cursor (decimal Unix ms). A sweep cut short
 * (restart, failure) starts again from the newest item and dedupe drops what was sent. With
 * neither a mark nor "since" the first sweep takes one page. */
struct col_sweep {
    int64_t mark_ms;   /* cursor: newest event time of the last complete sweep, 0 = none */
    int64_t newest_ms; /* newest event time seen in this sweep */
    int older_seen;    /* this page reached an item older than the bound */
};

/* Restores the mark from a stored cursor (NULL: none). Returns 0 or -1 (unusable). */
int col_sweep_load(struct col_sweep *s, const char *cursor);
/* The lower bound of the sweep (ms), 0 when none (first run without since). */
int64_t col_sweep_bound(const struct col_sweep *s, const struct col_api *api);
/* Judges one item of the page by its event time: 1 when it belongs to the sweep (send it),
 * 0 when it is older than the bound (skip it; the sweep ends after this page). */
int col_sweep_keep(struct col_sweep *s, const struct col_api *api, int64_t t_ms);
/* After a page: `more` says the listing has a next page. Returns 1 to fetch it, or 0 when the
 * sweep is over (mark moved and saved, poll ended). */
int col_sweep_page_done(struct col_sweep *s, struct col_api *api, int more);

#endif
