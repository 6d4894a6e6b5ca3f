#define ESC_LOG_MODULE "mastodon"
/* Source plugin "mastodon": polls one instance's hashtag timeline (/api/v1/timelines/tag/:tag)
 * or public timeline (/api/v1/timelines/public, optionally local only). Paging is forward with
 * min_id: each request asks for the posts right after the newest one already taken, following
 * the Link header's rel="prev" URL when the instance gives one, and a full page means "ask
 * again now". The newest id is the cursor kept in Redis. Without a cursor the first poll takes
 * the newest page only, or with "since" starts at a min_id made from that date (Mastodon ids are
 * Snowflake-like: milliseconds << 16). HTML content becomes plain text; hashtags and mentions
 * come from the structured arrays; a boost is taken as the boosted post. Posts are deduplicated
 * by their `uri`, so several instances (one source entry each) never send the same post twice.
 * With "streaming": true the source, once caught up, opens the streaming API (server-sent
 * events: /api/v1/streaming/hashtag, /public, /public/local; a user token is required since
 * Mastodon 4.2) and takes posts as they are published; when the stream ends or goes quiet
 * (stream_idle_s without even a heartbeat) it catches up over REST from the cursor, so nothing
 * published during the gap is lost, and reconnects. Events are parsed as they arrive and queued
 * (bounded: a full queue pauses the transfer) until the loop polls the source.
 * Scheduling, rate limits (X-RateLimit-*, Reset in ISO 8601), retries and dedupe are api.c's.
 * Loop thread only. */
#include <stdbool.h>
#include <string.h>

#include "api.h"
#include "cjson.h"
#include "col_source.h"
#include "text.h"

#include "escucha/esc_log.h"
#include "escucha/esc_mem.h"
#include "escucha/esc_msg.h"
#include "escucha/esc_util.h"

#define S_ID_MAX 32
#define S_URL_MAX 2048
#define S_TAG_REST 1
#define S_TAG_STREAM 2
#define S_QUEUE_MAX 256             /* stream events waiting for the loop */
#define S_LINE_MAX (1024 * 1024)    /* longest SSE line kept */

struct src_mastodon_cfg {
    char instance[256];   /* https://mastodon.social */
    char timeline[16];    /* tag | public | local */
    char tag[256];        /* hashtag(s) without '#', comma separated */
    int64_t limit;        /* posts per request, max 40 */
    char token_env[128];  /* optional access token */
    char token_file[256];
    bool streaming;       /* follow the streaming API once caught up */
    int64_t stream_idle_s; /* reconnect after this long without a byte */
    struct col_api_cfg api;
};

struct s_masto {
    const struct src_mastodon_cfg *cfg;
    struct col_api api;
    char *token;              /* optional bearer token; owned */
    char host[256];           /* the instance's host, for local handles */
    char min_id[S_ID_MAX];    /* cursor: newest id taken, "" = none */
    char next_url[S_URL_MAX]; /* rel="prev" of the last page, "" = build from min_id */
    struct col_source *ins;   /* borrowed: its wake_ms is cleared when events arrive */
    int caught_up;            /* the REST catch-up reached the newest post */
    int streaming;            /* the stream request is the one in flight */
    /* server-sent events parser */
    char *line;               /* the line being received; S_LINE_MAX bytes */
    size_t line_len;
    int line_over;            /* the line was too long: dropped */
    char event[32];           /* "event:" of the event being received */
    char *data;               /* its "data:" lines; owned */
    size_t data_len;
    char **queue;             /* data of received update events, [q_head, q_len); owned */
    size_t q_head;
    size_t q_len;
    size_t q_cap;
    uint64_t events;          /* update events received on the current stream */
};

static const struct esc_cfg_entry s_cfg_map[] = {
    ESC_CFG_STR("instance", NULL, struct src_mastodon_cfg, instance,
                "base URL of the instance, e.g. https://mastodon.social"),
    ESC_CFG_STR("timeline", "tag", struct src_mastodon_cfg, timeline,
                "tag (hashtag timeline), public (federated) or local (this instance only)"),
    ESC_CFG_STR("tag", "", struct src_mastodon_cfg, tag,
                "hashtag without '#' for timeline tag; several comma-separated tags match any "
                "of them (at most 4)"),
    ESC_CFG_INT("limit", "40", 1, 40, struct src_mastodon_cfg, limit, "posts per request"),
    ESC_CFG_STR("token_env", "", struct src_mastodon_cfg, token_env,
                "environment variable holding an access token (only needed when the instance "
                "restricts its timelines)"),
    ESC_CFG_STR("token_file", "", struct src_mastodon_cfg, token_file,
                "file holding the access token (mode 600), instead of token_env"),
    ESC_CFG_BOOL("streaming", "false", struct src_mastodon_cfg, streaming,
                 "once caught up, follow the streaming API (needs a user token with "
                 "read:statuses and a single tag)"),
    ESC_CFG_INT("stream_idle_s", "120", 1, 3600, struct src_mastodon_cfg, stream_idle_s,
                "reconnect a stream that sent nothing, not even a heartbeat, for this long"),
    COL_API_CFG_MAP(struct src_mastodon_cfg, api, "60"),
    ESC_CFG_END,
};

static esc_rc
s_validate(const void *cfg, const char *path, struct esc_error *err)
{
    const struct src_mastodon_cfg *c = cfg;

    if (col_api_cfg_check(&c->api, path, err) != ESC_OK) {
        return ESC_INVALID;
    }
    if (strncmp(c->instance, "http://", 7) != 0 && strncmp(c->instance, "https://", 8) != 0) {
        esc_error_set(err, 0, "%s.instance: must start with https:// (or http://)", path);
        return ESC_INVALID;
    }
    if (strcmp(c->timeline, "tag") != 0 && strcmp(c->timeline, "public") != 0
        && strcmp(c->timeline, "local") != 0) {
        esc_error_set(err, 0, "%s.timeline: must be tag, public or local", path);
        return ESC_INVALID;
    }
    if (strcmp(c->timeline, "tag") == 0 && c->tag[0] == '\0') {
        esc_error_set(err, 0, "%s.tag: required for timeline tag", path);
        return ESC_INVALID;
    }
    if (c->tag[0] == '#') {
        esc_error_set(err, 0, "%s.tag: without the '#'", path);
        return ESC_INVALID;
    }
    if (c->streaming && c->token_env[0] == '\0' && c->token_file[0] == '\0') {
        esc_error_set(err, 0, "%s.streaming: needs token_env or token_file (Mastodon streams "
                      "only to a user token since 4.2)", path);
        return ESC_INVALID;
    }
    if (c->streaming && strcmp(c->timeline, "tag") == 0 && strpbrk(c->tag, ", ") != NULL) {
        esc_error_set(err, 0, "%s.streaming: the hashtag stream follows one tag; use one "
                      "source per tag", path);
        return ESC_INVALID;
    }
    return ESC_OK;
}

static int
s_load(void *ctx, struct col_api *api, const char *cursor)
{
    struct s_masto *m = ctx;
    int64_t v;

    m->min_id[0] = '\0';
    m->next_url[0] = '\0';
    if (cursor == NULL) {
        return 0;
    }
    if (esc_parse_i64(cursor, 0, INT64_MAX, &v) != 0) {
        return -1;
    }
    esc_strlcpy(m->min_id, cursor, sizeof(m->min_id));
    return 0;
}

/* Appends "&key=escaped(value)" to url. */
static void
s_build_url(struct s_masto *m, struct col_api *api, char *url, size_t sz)
{
    const struct src_mastodon_cfg *c = m->cfg;
    char tag[256];
    char limit[16];
    char min_id[S_ID_MAX];
    const char *p = c->tag;
    int first = 1;

    esc_strlcpy(url, c->instance, sz);
    while (strlen(url) > 0 && url[strlen(url) - 1] == '/') {
        url[strlen(url) - 1] = '\0';
    }
    snprintf(limit, sizeof(limit), "%lld", (long long)c->limit);
    if (strcmp(c->timeline, "tag") == 0) {
        while (col_split_next(&p, ", ", tag, sizeof(tag))) {
            if (first) {
                char *e = col_url_escape(tag);
                size_t used = strlen(url);

                snprintf(url + used, sz - used, "/api/v1/timelines/tag/%s", e);
                esc_free(e);
                first = 0;
                continue;
            }
            col_url_add_param(url, sz, "any[]", tag);
        }
    }
    else {
        size_t used = strlen(url);

        snprintf(url + used, sz - used, "/api/v1/timelines/public");
        if (strcmp(c->timeline, "local") == 0) {
            col_url_add_param(url, sz, "local", "true");
        }
    }
    col_url_add_param(url, sz, "limit", limit);
    if (m->min_id[0] != '\0') {
        col_url_add_param(url, sz, "min_id", m->min_id);
    }
    else if (api->since_ms > 0) {
        snprintf(min_id, sizeof(min_id), "%llu", (unsigned long long)api->since_ms << 16);
        col_url_add_param(url, sz, "min_id", min_id);
    }
}

static void s_sse_reset(struct s_masto *m);
static void s_sse_line(struct s_masto *m, const char *line, size_t len);
static int s_on_stream(void *arg, const char *data, size_t len);
static esc_rc s_drain(struct s_masto *m, struct col_api *api);

/* The streaming endpoint of the configured timeline. */
static void
s_stream_url(struct s_masto *m, char *url, size_t sz)
{
    const struct src_mastodon_cfg *c = m->cfg;
    size_t used;

    esc_strlcpy(url, c->instance, sz);
    while (strlen(url) > 0 && url[strlen(url) - 1] == '/') {
        url[strlen(url) - 1] = '\0';
    }
    used = strlen(url);
    if (strcmp(c->timeline, "tag") == 0) {
        snprintf(url + used, sz - used, "/api/v1/streaming/hashtag");
        col_url_add_param(url, sz, "tag", c->tag);
    }
    else if (strcmp(c->timeline, "local") == 0) {
        snprintf(url + used, sz - used, "/api/v1/streaming/public/local");
    }
    else {
        snprintf(url + used, sz - used, "/api/v1/streaming/public");
    }
}

static esc_rc
s_next(void *ctx, struct col_api *api, col_req_t **out)
{
    struct s_masto *m = ctx;
    char url[S_URL_MAX];
    char auth[1100];

    if (m->streaming) {
        /* The stream ended or failed: catch up over REST from the cursor, then reconnect. */
        m->streaming = 0;
        m->caught_up = 0;
        s_sse_reset(m);
    }
    if (m->cfg->streaming && m->caught_up) {
        s_stream_url(m, url, sizeof(url));
        *out = col_api_req(api, url);
        col_req_timeout(*out, 0);
        col_req_low_speed(*out, 1, (long)m->cfg->stream_idle_s);
        col_req_stream(*out, s_on_stream, m);
        col_req_header(*out, "Accept", "text/event-stream");
        col_req_set_tag(*out, S_TAG_STREAM);
        m->streaming = 1;
        m->events = 0;
        esc_log_info("stream opening source=%s url=%s", api->ins->name, col_req_log_url(*out));
    }
    else if (m->next_url[0] != '\0') {
        esc_strlcpy(url, m->next_url, sizeof(url));
    }
    else {
        s_build_url(m, api, url, sizeof(url));
    }
    if (!m->streaming) {
        *out = col_api_req(api, url);
        col_req_set_tag(*out, S_TAG_REST);
    }
    if (m->token != NULL) {
        snprintf(auth, sizeof(auth), "Bearer %s", m->token);
        col_req_header(*out, "Authorization", auth);
        memset(auth, 0, sizeof(auth));
    }
    return ESC_OK;
}

/* Maps one status (a boost: its original) onto post. Returns the dedupe key (borrowed from st)
 * or NULL when a required field is missing (reason in *why). */
static const char *
s_status(struct s_masto *m, const json_t *st, struct esc_post *post, const char **why)
{
    const json_t *orig = st;
    const json_t *arr;
    const json_t *v;
    const char *uri;
    const char *acct;
    const char *s;
    char handle[384];
    size_t i;
    char *body;
    char *spoiler;

    if (json_is_object(json_object_get(st, "reblog"))) {
        orig = json_object_get(st, "reblog");
    }
    uri = col_json_str(orig, "uri");
    s = col_json_str(orig, "id");
    if (uri == NULL || s == NULL) {
        *why = "status without id or uri";
        return NULL;
    }
    if (col_json_str(orig, "created_at") == NULL
        || col_time_parse_any(col_json_str(orig, "created_at"), &post->created_at) != 0) {
        *why = "status without a valid created_at";
        return NULL;
    }
    post->id = esc_strdup(s);
    s = col_json_str(orig, "content");
    body = col_html_to_text(s, s != NULL ? strlen(s) : 0);
    s = col_json_str(orig, "spoiler_text");
    if (s != NULL && s[0] != '\0') {
        /* The content warning is part of what the author wrote. */
        size_t n = strlen(s) + strlen(body) + 3;

        spoiler = esc_malloc(n);
        snprintf(spoiler, n, "%s\n\n%s", s, body);
        esc_free(body);
        body = spoiler;
    }
    post->text = body;
    acct = col_json_str(orig, "account.acct");
    if (acct != NULL) {
        if (strchr(acct, '@') != NULL) {
            snprintf(handle, sizeof(handle), "@%s", acct);
        }
        else {
            snprintf(handle, sizeof(handle), "@%s@%s", acct, m->host);
        }
        post->author = esc_strdup(handle);
    }
    col_set_str(&post->author_name, col_json_str(orig, "account.display_name"));
    post->followers = col_json_int(orig, "account.followers_count", 0);
    col_set_str(&post->lang, col_json_str(orig, "language"));
    col_set_str(&post->url, col_json_str(orig, "url"));
    if (post->url == NULL) {
        post->url = esc_strdup(uri);
    }
    post->likes = col_json_int(orig, "favourites_count", 0);
    post->reposts = col_json_int(orig, "reblogs_count", 0);
    post->replies = col_json_int(orig, "replies_count", 0);
    arr = json_object_get(orig, "tags");
    json_array_foreach(arr, i, v) {
        s = col_json_str(v, "name");
        if (s != NULL && s[0] != '\0') {
            esc_strlist_push(&post->hashtags, &post->n_hashtags, s);
        }
    }
    arr = json_object_get(orig, "mentions");
    json_array_foreach(arr, i, v) {
        s = col_json_str(v, "acct");
        if (s != NULL && s[0] != '\0') {
            esc_strlist_push(&post->mentions, &post->n_mentions, s);
        }
    }
    return uri;
}

/* Same origin as the configured instance (a Link header is never followed elsewhere). */
static int
s_same_origin(const struct s_masto *m, const char *url)
{
    size_t n = strlen(m->cfg->instance);

    while (n > 0 && m->cfg->instance[n - 1] == '/') {
        n--;
    }
    return strncmp(url, m->cfg->instance, n) == 0 && (url[n] == '/' || url[n] == '\0');
}

static esc_rc
s_page(void *ctx, struct col_api *api, col_req_t *req, struct esc_error *err)
{
    struct s_masto *m = ctx;
    size_t len;
    const char *body = col_req_body(req, &len);
    const char *link;
    char newest[S_ID_MAX];
    char prev[S_URL_MAX];
    json_t *root;
    json_t *st;
    struct esc_post post;
    const char *key;
    const char *why = NULL;
    const char *id;
    size_t n;
    size_t i;
    int had_position = m->min_id[0] != '\0' || api->since_ms > 0;
    esc_rc rc = ESC_OK;

    if (col_req_tag(req) == S_TAG_STREAM) {
        /* the server ended the stream: what it sent goes out, then catch up and reconnect */
        if (m->line_len > 0 || m->data_len > 0) {
            s_sse_line(m, "", 0);
        }
        rc = s_drain(m, api);
        esc_log_info("stream ended source=%s events=%llu", api->ins->name,
                     (unsigned long long)m->events);
        return rc;
    }
    root = col_json_parse(body, len, err);
    if (root == NULL) {
        return ESC_INVALID;
    }
    if (!json_is_array(root)) {
        json_decref(root);
        esc_error_set(err, 0, "expected a JSON array of statuses");
        return ESC_INVALID;
    }
    n = json_array_size(root);
    esc_strlcpy(newest, m->min_id, sizeof(newest));
    /* Newest first on the wire: send oldest first so event time mostly moves forward. */
    for (i = n; i > 0; i--) {
        st = json_array_get(root, i - 1);
        id = col_json_str(st, "id");
        if (id != NULL && (newest[0] == '\0' || col_id_cmp(id, newest) > 0)
            && strlen(id) < sizeof(newest)) {
            esc_strlcpy(newest, id, sizeof(newest));
        }
        esc_post_init(&post);
        key = s_status(m, st, &post, &why);
        if (key == NULL) {
            api->ins->stats.skipped++;
            esc_log_warn("skipped bad status source=%s index=%zu reason=\"%s\"",
                         api->ins->name, i - 1, why);
            esc_post_fini(&post);
            continue;
        }
        rc = col_api_emit(api, &post, key);
        esc_post_fini(&post);
        if (rc == ESC_CLOSED) {
            break;
        }
    }
    json_decref(root);
    if (rc == ESC_CLOSED) {
        return ESC_CLOSED; /* position not moved: the page is asked again after a restart */
    }
    if (newest[0] != '\0' && strcmp(newest, m->min_id) != 0) {
        esc_strlcpy(m->min_id, newest, sizeof(m->min_id));
        col_api_cursor_save(api, m->min_id);
    }
    m->next_url[0] = '\0';
    link = col_req_resp_header(req, "Link");
    if (n > 0 && col_link_rel(link, "prev", prev, sizeof(prev)) == 0 && s_same_origin(m, prev)) {
        esc_strlcpy(m->next_url, prev, sizeof(m->next_url));
    }
    if (!had_position || n < (size_t)m->cfg->limit) {
        m->next_url[0] = '\0';
        if (m->cfg->streaming) {
            m->caught_up = 1; /* next: the stream */
        }
        else {
            col_api_cycle_done(api); /* the newest page, or caught up */
        }
    }
    return ESC_OK;
}

/* Drops the SSE parser state and anything queued but not yet sent (a REST catch-up from the
 * cursor follows, which brings it back). */
static void
s_sse_reset(struct s_masto *m)
{
    size_t i;

    for (i = m->q_head; i < m->q_len; i++) {
        esc_free(m->queue[i]);
    }
    m->q_head = 0;
    m->q_len = 0;
    m->line_len = 0;
    m->line_over = 0;
    m->event[0] = '\0';
    m->data_len = 0;
}

static void
s_queue_push(struct s_masto *m, const char *data)
{
    if (m->q_head > 0 && m->q_head == m->q_len) {
        m->q_head = 0;
        m->q_len = 0;
    }
    if (m->q_len == m->q_cap) {
        m->q_cap = m->q_cap == 0 ? 64 : m->q_cap * 2;
        m->queue = esc_realloc(m->queue, m->q_cap * sizeof(*m->queue));
    }
    m->queue[m->q_len++] = esc_strdup(data);
}

/* One complete SSE line (without its line end). */
static void
s_sse_line(struct s_masto *m, const char *line, size_t len)
{
    const char *v;
    size_t name_len;
    size_t vlen;

    if (len == 0) { /* end of an event */
        if (m->data_len > 0 && (strcmp(m->event, "update") == 0
                                || strcmp(m->event, "status.update") == 0)) {
            m->data[m->data_len] = '\0';
            s_queue_push(m, m->data);
            m->events++;
        }
        m->event[0] = '\0';
        m->data_len = 0;
        return;
    }
    if (line[0] == ':') {
        return; /* heartbeat comment */
    }
    v = memchr(line, ':', len);
    if (v == NULL) {
        return;
    }
    name_len = (size_t)(v - line);
    vlen = len - name_len - 1;
    v++;
    if (vlen > 0 && *v == ' ') {
        v++;
        vlen--;
    }
    if (name_len == 5 && strncmp(line, "event", 5) == 0) {
        size_t k = vlen < sizeof(m->event) - 1 ? vlen : sizeof(m->event) - 1;

        memcpy(m->event, v, k);
        m->event[k] = '\0';
    }
    else if (name_len == 4 && strncmp(line, "data", 4) == 0) {
        if (m->data_len + vlen + 2 > S_LINE_MAX) {
            return; /* absurdly large event: its JSON will not parse and is reported then */
        }
        if (m->data_len > 0) {
            m->data[m->data_len++] = '\n';
        }
        memcpy(m->data + m->data_len, v, vlen);
        m->data_len += vlen;
    }
}

/* libcurl's stream callback (inside col_net_wait): splits lines, queues update events and
 * wakes the source. Returns 1 (pause) while the queue is full. */
static int
s_on_stream(void *arg, const char *data, size_t len)
{
    struct s_masto *m = arg;
    size_t before = m->q_len - m->q_head;
    size_t i;

    if (before >= S_QUEUE_MAX) {
        return 1;
    }
    for (i = 0; i < len; i++) {
        if (data[i] == '\n') {
            size_t n = m->line_len;

            if (n > 0 && m->line[n - 1] == '\r') {
                n--;
            }
            if (!m->line_over) {
                s_sse_line(m, m->line, n);
            }
            m->line_len = 0;
            m->line_over = 0;
        }
        else if (m->line_len < S_LINE_MAX - 1) {
            m->line[m->line_len++] = data[i];
        }
        else {
            m->line_over = 1;
        }
    }
    if (m->q_len - m->q_head > before) {
        m->ins->wake_ms = 0;
    }
    return 0;
}

/* Sends the queued stream events. Returns ESC_OK or ESC_CLOSED. */
static esc_rc
s_drain(struct s_masto *m, struct col_api *api)
{
    struct esc_post post;
    struct esc_error err;
    char newest[S_ID_MAX];
    const char *key;
    const char *why = NULL;
    const char *id;
    json_t *st;
    char *data;
    esc_rc rc = ESC_OK;

    esc_strlcpy(newest, m->min_id, sizeof(newest));
    while (m->q_head < m->q_len && rc == ESC_OK) {
        data = m->queue[m->q_head++];
        st = col_json_parse(data, strlen(data), &err);
        esc_free(data);
        if (!json_is_object(st)) {
            api->ins->stats.skipped++;
            esc_log_warn("skipped bad stream event source=%s reason=\"%s\"", api->ins->name,
                         st == NULL ? err.text : "not a status object");
            json_decref(st);
            continue;
        }
        esc_post_init(&post);
        key = s_status(m, st, &post, &why);
        if (key == NULL) {
            api->ins->stats.skipped++;
            esc_log_warn("skipped bad stream event source=%s reason=\"%s\"", api->ins->name,
                         why);
        }
        else {
            rc = col_api_emit(api, &post, key);
            id = col_json_str(st, "id");
            if (rc == ESC_OK && id != NULL && strlen(id) < sizeof(newest)
                && (newest[0] == '\0' || col_id_cmp(id, newest) > 0)) {
                esc_strlcpy(newest, id, sizeof(newest));
            }
        }
        esc_post_fini(&post);
        json_decref(st);
    }
    if (strcmp(newest, m->min_id) != 0) {
        esc_strlcpy(m->min_id, newest, sizeof(m->min_id));
        col_api_cursor_save(api, m->min_id);
    }
    return rc;
}

static esc_rc
s_flowing(void *ctx, struct col_api *api, col_req_t *req)
{
    struct s_masto *m = ctx;
    esc_rc rc;

    if (col_req_tag(req) != S_TAG_STREAM) {
        return ESC_OK;
    }
    rc = s_drain(m, api);
    if (rc == ESC_OK) {
        col_req_resume(req); /* may call s_on_stream at once */
    }
    return rc;
}

static const struct col_api_ops s_ops = {
    .platform = "mastodon",
    .json = 1,
    .load = s_load,
    .next = s_next,
    .page = s_page,
    .failed = NULL,
    .flowing = s_flowing,
};

static int
s_init(struct col_source *ins)
{
    const struct src_mastodon_cfg *cfg = ins->cfg;
    struct s_masto *m = esc_calloc(1, sizeof(*m));
    const char *h;

    m->cfg = cfg;
    if (col_api_init(&m->api, ins, &cfg->api, &s_ops, m) != 0) {
        esc_free(m);
        return -1;
    }
    if (cfg->token_env[0] != '\0' || cfg->token_file[0] != '\0') {
        m->token = col_api_secret(&m->api, cfg->token_env, cfg->token_file, "mastodon token");
        if (m->token == NULL) {
            esc_free(m);
            return -1;
        }
    }
    h = strstr(cfg->instance, "://");
    esc_strlcpy(m->host, h != NULL ? h + 3 : cfg->instance, sizeof(m->host));
    m->host[strcspn(m->host, "/:")] = '\0';
    m->ins = ins;
    if (cfg->streaming) {
        m->line = esc_malloc(S_LINE_MAX);
        m->data = esc_malloc(S_LINE_MAX);
    }
    ins->ctx = m;
    esc_log_info("polling mastodon source=%s instance=%s timeline=%s tag=%s", ins->name,
                 cfg->instance, cfg->timeline, cfg->tag);
    return 0;
}

static esc_rc
s_poll(struct col_source *ins, const struct col_emit *emit, size_t budget)
{
    struct s_masto *m = ins->ctx;

    return col_api_poll(&m->api, emit);
}

static void
s_exit(struct col_source *ins)
{
    struct s_masto *m = ins->ctx;

    if (m == NULL) {
        return;
    }
    col_api_fini(&m->api);
    s_sse_reset(m);
    esc_free(m->queue);
    esc_free(m->line);
    esc_free(m->data);
    if (m->token != NULL) {
        memset(m->token, 0, strlen(m->token));
        esc_free(m->token);
    }
    esc_free(m);
    ins->ctx = NULL;
}

const struct col_source_plugin src_mastodon_plugin = {
    .name = "mastodon",
    .description = "a Mastodon instance's hashtag or public timeline, polled with min_id paging",
    .cfg_map = s_cfg_map,
    .cfg_size = sizeof(struct src_mastodon_cfg),
    .validate = s_validate,
    .init = s_init,
    .poll = s_poll,
    .exit = s_exit,
};
