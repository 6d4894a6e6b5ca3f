#define ESC_LOG_MODULE "http"
/* The HTTP side of escucha-api. libmicrohttpd runs one thread per connection, which keeps a
 * live stream simple (its reader blocks on the hub's condition variable between posts) and
 * bounds the threads by max_connections. Request threads share one Redis connection under a
 * mutex: every read is a single pipelined round trip, so the lock is held for about a
 * millisecond. A request goes: body collected up to max_body (413 beyond) -> route ->
 * token (Authorization: Bearer, or ?token= for feeds only) -> rate limit -> team check (a
 * token of another team gets the same 404 as a team that does not exist, so nothing about
 * other teams leaks) -> role check -> handler. Errors are JSON {"error": {"status", "code",
 * "message", "details"?}}. Responses carry an ETag (304 on If-None-Match) and no-cache, so a
 * dashboard polling the same range costs one Redis round trip and no body. Tokens, bodies and
 * post texts are never logged. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <microhttpd.h>
#include <sodium.h>

#include "escucha/esc_log.h"
#include "escucha/esc_mem.h"
#include "escucha/esc_metrics.h"
#include "escucha/esc_util.h"

#include "auth.h"
#include "server.h"
#include "store.h"
#include "topics.h"

#define S_SEG_MAX 10
#define S_HTTP_TOO_LARGE 413      /* spelled differently across libmicrohttpd versions */
#define S_HTTP_UNPROCESSABLE 422
#define S_COMPARE_MAX 10
#define S_LIST_MAX 1000
#define S_CSP                                                                                      \
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "              \
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "                    \
    "frame-ancestors 'none'; form-action 'self'"

struct api_srv {
    const struct esc_cfg *cfg;   /* borrowed */
    const struct api_cfg *ac;    /* borrowed */
    api_hub_t *hub;              /* borrowed */
    api_auth_t *auth;
    esc_kv_t *kv;                /* shared by the request threads under kv_mu */
    pthread_mutex_t kv_mu;
    struct MHD_Daemon *d;
    int port;
    atomic_int streams;
    esc_metric_t *m_requests;
    esc_metric_t *m_denied;
    esc_metric_t *m_redis_down;
    esc_metric_t *m_streams;
};

/* Per request: the body as it arrives. */
struct s_req {
    char *body;
    size_t len;
    int too_big;
};

/* What a handler works with. */
struct s_ctx {
    api_srv_t *srv;
    struct MHD_Connection *c;
    const char *method;
    int is_get;                      /* GET or HEAD */
    struct s_req *req;
    const struct api_token *tok;
    char path[1024];                 /* copy of the URL path, cut into seg */
    const char *seg[S_SEG_MAX];
    size_t n_seg;
    const struct esc_cfg_team *team; /* resolved {team}, when the route has one */
};

/* ---- responses --------------------------------------------------------------------------- */

static void
s_headers(struct s_ctx *x, struct MHD_Response *r)
{
    const char *origin;

    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
    MHD_add_response_header(r, "X-Frame-Options", "DENY");
    if (x->srv->ac->cors_origin[0] == '\0') {
        return;
    }
    origin = MHD_lookup_connection_value(x->c, MHD_HEADER_KIND, "Origin");
    if (origin != NULL && strcmp(origin, x->srv->ac->cors_origin) == 0) {
        MHD_add_response_header(r, "Access-Control-Allow-Origin", origin);
        MHD_add_response_header(r, "Vary", "Origin");
        MHD_add_response_header(r, "Access-Control-Expose-Headers", "ETag, Retry-After");
    }
}

/* Sends body (copied) with status; etag != 0 adds an ETag and answers 304 when it matches. */
static enum MHD_Result
s_send(struct s_ctx *x, unsigned int status, const char *type, const char *body, size_t len,
       const char *cache, int etag)
{
    struct MHD_Response *r;
    enum MHD_Result rc;
    char tag[40];

    tag[0] = '\0';
    if (etag && status == MHD_HTTP_OK) {
        unsigned char h[16];
        char hex[33];
        const char *inm = MHD_lookup_connection_value(x->c, MHD_HEADER_KIND, "If-None-Match");

        crypto_generichash(h, sizeof(h), (const unsigned char *)body, len, NULL, 0);
        sodium_bin2hex(hex, sizeof(hex), h, sizeof(h));
        snprintf(tag, sizeof(tag), "\"%s\"", hex);
        if (inm != NULL && strstr(inm, tag) != NULL) {
            status = MHD_HTTP_NOT_MODIFIED;
            len = 0;
        }
    }
    r = MHD_create_response_from_buffer(len, (void *)(uintptr_t)body, MHD_RESPMEM_MUST_COPY);
    if (r == NULL) {
        return MHD_NO;
    }
    if (status != MHD_HTTP_NOT_MODIFIED) {
        MHD_add_response_header(r, "Content-Type", type);
    }
    if (tag[0] != '\0') {
        MHD_add_response_header(r, "ETag", tag);
    }
    MHD_add_response_header(r, "Cache-Control", cache);
    s_headers(x, r);
    rc = MHD_queue_response(x->c, status, r);
    MHD_destroy_response(r);
    return rc;
}

/* Sends doc (reference stolen) as JSON. */
static enum MHD_Result
s_json(struct s_ctx *x, unsigned int status, json_t *doc)
{
    char *text = json_dumps(doc, JSON_COMPACT | JSON_REAL_PRECISION(6));
    enum MHD_Result rc;

    json_decref(doc);
    if (text == NULL) {
        return MHD_NO;
    }
    rc = s_send(x, status, "application/json; charset=utf-8", text, strlen(text),
                "private, no-cache", x->is_get);
    esc_free(text); /* json_dumps allocates with malloc; esc_free is free */
    return rc;
}

/* Sends the JSON error document; details (stolen, may be NULL) lists field problems. */
static enum MHD_Result
s_error_d(struct s_ctx *x, unsigned int status, const char *code, const char *msg,
          json_t *details)
{
    json_t *e = json_object();
    json_t *doc = json_object();
    char *text;
    enum MHD_Result rc;

    json_object_set_new(e, "status", json_integer(status));
    json_object_set_new(e, "code", json_string(code));
    json_object_set_new(e, "message", json_string(msg));
    if (details != NULL) {
        json_object_set_new(e, "details", details);
    }
    json_object_set_new(doc, "error", e);
    text = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    if (text == NULL) {
        return MHD_NO;
    }
    rc = s_send(x, status, "application/json; charset=utf-8", text, strlen(text), "no-store", 0);
    esc_free(text); /* json_dumps allocates with malloc; esc_free is free */
    return rc;
}

static enum MHD_Result
s_error(struct s_ctx *x, unsigned int status, const char *code, const char *msg)
{
    return s_error_d(x, status, code, msg, NULL);
}

/* An error with a Retry-After header (429, 503). */
static enum MHD_Result
s_error_retry(struct s_ctx *x, unsigned int status, const char *code, const char *msg,
              int seconds)
{
    json_t *doc = json_pack("{s:{s:i,s:s,s:s}}", "error", "status", (int)status, "code", code,
                            "message", msg);
    char *text = json_dumps(doc, JSON_COMPACT);
    struct MHD_Response *r;
    enum MHD_Result rc;
    char ra[16];

    json_decref(doc);
    if (text == NULL) {
        return MHD_NO;
    }
    r = MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_COPY);
    esc_free(text); /* json_dumps allocates with malloc; esc_free is free */
    if (r == NULL) {
        return MHD_NO;
    }
    snprintf(ra, sizeof(ra), "%d", seconds);
    MHD_add_response_header(r, "Content-Type", "application/json; charset=utf-8");
    MHD_add_response_header(r, "Cache-Control", "no-store");
    MHD_add_response_header(r, "Retry-After", ra);
    s_headers(x, r);
    rc = MHD_queue_response(x->c, status, r);
    MHD_destroy_response(r);
    return rc;
}

/* Maps a store result that is not ESC_OK. */
static enum MHD_Result
s_store_error(struct s_ctx *x, esc_rc rc)
{
    if (rc == ESC_RETRY) {
        esc_metric_add(x->srv->m_redis_down, 1);
        return s_error_retry(x, MHD_HTTP_SERVICE_UNAVAILABLE, "redis_unavailable",
                             "the data store is not reachable, try again shortly", 2);
    }
    return s_error(x, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal", "the data store refused");
}

/* ---- helpers ----------------------------------------------------------------------------- */

static const char *
s_arg(struct s_ctx *x, const char *name)
{
    return MHD_lookup_connection_value(x->c, MHD_GET_ARGUMENT_KIND, name);
}

/* Integer query argument in [lo, hi] with default def; -1 (and a 400 sent) when bad. */
static int
s_arg_int(struct s_ctx *x, const char *name, int64_t lo, int64_t hi, int64_t def, int64_t *out,
          enum MHD_Result *mr)
{
    const char *s = s_arg(x, name);
    char msg[128];

    *out = def;
    if (s == NULL || s[0] == '\0') {
        return 0;
    }
    if (esc_parse_i64(s, lo, hi, out) != 0) {
        snprintf(msg, sizeof(msg), "%s: expected an integer in [%lld, %lld]", name,
                 (long long)lo, (long long)hi);
        *mr = s_error(x, MHD_HTTP_BAD_REQUEST, "bad_request", msg);
        return -1;
    }
    return 0;
}

static void
s_lock(api_srv_t *srv)
{
    pthread_mutex_lock(&srv->kv_mu);
}

static void
s_unlock(api_srv_t *srv)
{
    pthread_mutex_unlock(&srv->kv_mu);
}

static void
s_topic_key(const struct esc_cfg_team *team, const char *id, char *out, size_t outsz)
{
    snprintf(out, outsz, "%s/%s", team->id, id);
}

/* The effective topic id of x->team (a new reference), or NULL after sending 404/503. */
static json_t *
s_topic(struct s_ctx *x, const char *id, enum MHD_Result *mr)
{
    json_t *t = NULL;
    esc_rc rc;

    if (!esc_ident_valid(id)) {
        *mr = s_error(x, MHD_HTTP_NOT_FOUND, "not_found", "no such topic");
        return NULL;
    }
    s_lock(x->srv);
    rc = api_topics_get(x->srv->kv, x->srv->cfg->redis.prefix, x->team, id, &t);
    s_unlock(x->srv);
    if (rc != ESC_OK) {
        *mr = s_store_error(x, rc);
        return NULL;
    }
    if (t == NULL) {
        *mr = s_error(x, MHD_HTTP_NOT_FOUND, "not_found", "no such topic");
    }
    return t;
}

/* Parses the request body as JSON, or sends 400 and returns NULL. */
static json_t *
s_body_json(struct s_ctx *x, enum MHD_Result *mr)
{
    json_error_t jerr;
    json_t *doc;
    char msg[300];

    if (x->req->len == 0) {
        *mr = s_error(x, MHD_HTTP_BAD_REQUEST, "bad_request", "a JSON body is required");
        return NULL;
    }
    doc = json_loadb(x->req->body, x->req->len, JSON_REJECT_DUPLICATES, &jerr);
    if (doc == NULL) {
        snprintf(msg, sizeof(msg), "body is not valid JSON: %s (line %d, column %d)", jerr.text,
                 jerr.line, jerr.column);
        *mr = s_error(x, MHD_HTTP_BAD_REQUEST, "bad_json", msg);
    }
    return doc;
}

/* ---- read handlers ----------------------------------------------------------------------- */

static json_t *
s_team_doc(const struct esc_cfg_team *t)
{
    json_t *o = json_object();

    json_object_set_new(o, "id", json_string(t->id));
    json_object_set_new(o, "name", json_string(t->name[0] != '\0' ? t->name : t->id));
    json_object_set_new(o, "language", json_string(t->language[0] != '\0' ? t->language : "es"));
    json_object_set_new(o, "timezone", json_string(t->timezone[0] != '\0' ? t->timezone : "UTC"));
    return o;
}

static enum MHD_Result
s_h_me(struct s_ctx *x)
{
    json_t *o = json_object();
    json_t *teams = json_array();
    size_t i;

    json_object_set_new(o, "name", json_string(x->tok->name));
    json_object_set_new(o, "team", json_string(x->tok->team));
    json_object_set_new(o, "role", json_string(api_role_name(x->tok->role)));
    for (i = 0; i < x->srv->cfg->n_teams; i++) {
        if (api_auth_allows(x->tok, x->srv->cfg->teams[i].id, API_ROLE_VIEWER)) {
            json_array_append_new(teams, s_team_doc(&x->srv->cfg->teams[i]));
        }
    }
    json_object_set_new(o, "teams", teams);
    return s_json(x, MHD_HTTP_OK, o);
}

static enum MHD_Result
s_h_teams(struct s_ctx *x)
{
    json_t *teams = json_array();
    size_t i;

    for (i = 0; i < x->srv->cfg->n_teams; i++) {
        if (api_auth_allows(x->tok, x->srv->cfg->teams[i].id, API_ROLE_VIEWER)) {
            json_array_append_new(teams, s_team_doc(&x->srv->cfg->teams[i]));
        }
    }
    return s_json(x, MHD_HTTP_OK, json_pack("{s:o}", "teams", teams));
}

/* The topic keys of the effective topic list. */
static const char **
s_keys(const struct esc_cfg_team *team, json_t *list, char (**buf)[200])
{
    size_t n = json_array_size(list);
    const char **keys = esc_calloc(n + 1, sizeof(*keys));
    size_t i;

    *buf = esc_calloc(n + 1, sizeof(**buf));
    for (i = 0; i < n; i++) {
        s_topic_key(team, json_string_value(json_object_get(json_array_get(list, i), "id")),
                    (*buf)[i], sizeof((*buf)[i]));
        keys[i] = (*buf)[i];
    }
    return keys;
}

static enum MHD_Result
s_h_team(struct s_ctx *x)
{
    json_t *o = s_team_doc(x->team);
    json_t *list = NULL;
    const char **keys;
    char (*buf)[200];
    int64_t latest = 0;
    esc_rc rc;

    s_lock(x->srv);
    rc = api_topics_list(x->srv->kv, x->srv->cfg->redis.prefix, x->team, &list);
    if (rc == ESC_OK) {
        keys = s_keys(x->team, list, &buf);
        rc = api_store_latest_day(x->srv->kv, x->srv->cfg->redis.prefix, keys,
                                  json_array_size(list), esc_now_ms() / 1000, 400, &latest);
        esc_free(keys);
        esc_free(buf);
    }
    s_unlock(x->srv);
    if (rc != ESC_OK) {
        json_decref(o);
        json_decref(list);
        return s_store_error(x, rc);
    }
    json_object_set_new(o, "topics", list);
    json_object_set_new(o, "latest_day", latest > 0 ? json_integer(latest) : json_null());
    json_object_set_new(o, "role", json_string(api_role_name(x->tok->role)));
    return s_json(x, MHD_HTTP_OK, o);
}

static enum MHD_Result
s_h_topics(struct s_ctx *x)
{
    json_t *list = NULL;
    esc_rc rc;

    s_lock(x->srv);
    rc = api_topics_list(x->srv->kv, x->srv->cfg->redis.prefix, x->team, &list);
    s_unlock(x->srv);
    if (rc != ESC_OK) {
        return s_store_error(x, rc);
    }
    return s_json(x, MHD_HTTP_OK, json_pack("{s:o}", "topics", list));
}

static enum MHD_Result
s_h_overview(struct s_ctx *x)
{
    enum MHD_Result mr = MHD_NO;
    json_t *list = NULL;
    json_t *doc = NULL;
    const char **keys;
    char (*buf)[200];
    int64_t end = esc_now_ms() / 1000;
    const char *e = s_arg(x, "end");
    json_t *t;
    size_t i;
    esc_rc rc;

    if (e != NULL && e[0] != '\0' && api_time_parse(e, &end) != 0) {
        return s_error(x, MHD_HTTP_BAD_REQUEST, "bad_request",
                       "end: expected Unix seconds or an RFC 3339 time");
    }
    s_lock(x->srv);
    rc = api_topics_list(x->srv->kv, x->srv->cfg->redis.prefix, x->team, &list);
    if (rc == ESC_OK) {
        keys = s_keys(x->team, list, &buf);
        rc = api_store_overview(x->srv->kv, x->srv->cfg->redis.prefix, keys,
                                json_array_size(list), end, &doc);
        esc_free(keys);
        esc_free(buf);
    }
    s_unlock(x->srv);
    if (rc != ESC_OK) {
        json_decref(list);
        return s_store_error(x, rc);
    }
    json_array_foreach(json_object_get(doc, "topics"), i, t) {
        json_t *topic = json_array_get(list, i);

        json_object_set(t, "id", json_object_get(topic, "id"));
        json_object_set(t, "name", json_object_get(topic, "name"));
    }
    json_decref(list);
    json_object_set_new(doc, "team", json_string(x->team->id));
    mr = s_json(x, MHD_HTTP_OK, doc);
    return mr;
}

/* Reads the range arguments; -1 after sending 400. */
static int
s_range(struct s_ctx *x, struct api_range *r, enum MHD_Result *mr)
{
    char why[160];

    if (api_range_parse(s_arg(x, "from"), s_arg(x, "to"), s_arg(x, "res"), esc_now_ms() / 1000,
                        x->srv->ac->max_points, r, why, sizeof(why))
        != 0) {
        *mr = s_error(x, MHD_HTTP_BAD_REQUEST, "bad_range", why);
        return -1;
    }
    return 0;
}

static void
s_csv_num(char **buf, size_t *len, size_t *cap, const char *s)
{
    size_t n = strlen(s);

    if (*len + n + 2 > *cap) {
        *cap = (*len + n + 2) * 2;
        *buf = esc_realloc(*buf, *cap);
    }
    memcpy(*buf + *len, s, n);
    *len += n;
    (*buf)[*len] = '\0';
}

/* The series document as CSV: one line per bucket. */
static enum MHD_Result
s_series_csv(struct s_ctx *x, const char *topic_id, json_t *doc)
{
    static const char *const cols[] = { "posts", "reach", "likes", "reposts", "replies",
                                        "engagement", "sentiment_pos", "sentiment_neu",
                                        "sentiment_neg", "sentiment_avg", NULL };
    json_t *t = json_object_get(doc, "t");
    json_t *series = json_object_get(doc, "series");
    char *buf = NULL;
    size_t len = 0;
    size_t cap = 0;
    size_t i;
    size_t k;
    char cell[64];
    char disp[300];
    struct MHD_Response *r;
    enum MHD_Result rc;

    s_csv_num(&buf, &len, &cap, "time,unix");
    for (k = 0; cols[k] != NULL; k++) {
        s_csv_num(&buf, &len, &cap, ",");
        s_csv_num(&buf, &len, &cap, cols[k]);
    }
    s_csv_num(&buf, &len, &cap, "\r\n");
    for (i = 0; i < json_array_size(t); i++) {
        int64_t ts = json_integer_value(json_array_get(t, i));

        s_csv_num(&buf, &len, &cap, esc_time_fmt_iso8601(ts * 1000, cell, sizeof(cell)));
        snprintf(cell, sizeof(cell), ",%lld", (long long)ts);
        s_csv_num(&buf, &len, &cap, cell);
        for (k = 0; cols[k] != NULL; k++) {
            json_t *v = json_array_get(json_object_get(series, cols[k]), i);

            if (json_is_integer(v)) {
                snprintf(cell, sizeof(cell), ",%lld", (long long)json_integer_value(v));
            }
            else if (json_is_real(v)) {
                snprintf(cell, sizeof(cell), ",%.3f", json_real_value(v));
            }
            else {
                snprintf(cell, sizeof(cell), ",");
            }
            s_csv_num(&buf, &len, &cap, cell);
        }
        s_csv_num(&buf, &len, &cap, "\r\n");
    }
    r = MHD_create_response_from_buffer(len, buf, MHD_RESPMEM_MUST_COPY);
    esc_free(buf);
    if (r == NULL) {
        return MHD_NO;
    }
    snprintf(disp, sizeof(disp), "attachment; filename=\"%s-%s-%s.csv\"", x->team->id, topic_id,
             json_string_value(json_object_get(doc, "res")));
    MHD_add_response_header(r, "Content-Type", "text/csv; charset=utf-8");
    MHD_add_response_header(r, "Content-Disposition", disp);
    MHD_add_response_header(r, "Cache-Control", "private, no-cache");
    s_headers(x, r);
    rc = MHD_queue_response(x->c, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return rc;
}

/* series, series.csv, summary */
static enum MHD_Result
s_h_buckets(struct s_ctx *x, const char *id, int want_series, int csv)
{
    enum MHD_Result mr = MHD_NO;
    struct api_range r;
    json_t *topic;
    json_t *doc = NULL;
    char key[200];
    esc_rc rc;

    topic = s_topic(x, id, &mr);
    if (topic == NULL) {
        return mr;
    }
    json_decref(topic);
    if (s_range(x, &r, &mr) != 0) {
        return mr;
    }
    s_topic_key(x->team, id, key, sizeof(key));
    s_lock(x->srv);
    rc = api_store_buckets(x->srv->kv, x->srv->cfg->redis.prefix, key, &r,
                           want_series ? &doc : NULL, want_series ? NULL : &doc);
    s_unlock(x->srv);
    if (rc != ESC_OK) {
        return s_store_error(x, rc);
    }
    if (csv) {
        mr = s_series_csv(x, id, doc);
        json_decref(doc);
        return mr;
    }
    return s_json(x, MHD_HTTP_OK, doc);
}

static enum MHD_Result
s_h_totals(struct s_ctx *x, const char *id)
{
    enum MHD_Result mr = MHD_NO;
    json_t *topic = s_topic(x, id, &mr);
    json_t *doc = NULL;
    char key[200];
    esc_rc rc;

    if (topic == NULL) {
        return mr;
    }
    json_decref(topic);
    s_topic_key(x->team, id, key, sizeof(key));
    s_lock(x->srv);
    rc = api_store_totals(x->srv->kv, x->srv->cfg->redis.prefix, key, &doc);
    s_unlock(x->srv);
    if (rc != ESC_OK) {
        return s_store_error(x, rc);
    }
    return s_json(x, MHD_HTTP_OK, doc);
}

static enum MHD_Result
s_h_top(struct s_ctx *x, const char *id, const char *kind_s)
{
    enum MHD_Result mr = MHD_NO;
    enum api_top_kind kind;
    struct api_range r;
    json_t *topic;
    json_t *doc = NULL;
    int64_t limit;
    char key[200];
    char why[160];
    esc_rc rc;

    if (api_top_parse(kind_s, &kind) != 0) {
        return s_error(x, MHD_HTTP_NOT_FOUND, "not_found",
                       "top lists are authors, hashtags, terms and posts");
    }
    topic = s_topic(x, id, &mr);
    if (topic == NULL) {
        return mr;
    }
    json_decref(topic);
    if (s_arg_int(x, "limit", 1, 100, 10, &limit, &mr) != 0) {
        return mr;
    }
    /* day lists: the range is in days whatever res says */
    if (api_range_parse(s_arg(x, "from"), s_arg(x, "to"), "day", esc_now_ms() / 1000, 400, &r,
                        why, sizeof(why))
        != 0) {
        return s_error(x, MHD_HTTP_BAD_REQUEST, "bad_range", why);
    }
    s_topic_key(x->team, id, key, sizeof(key));
    s_lock(x->srv);
    rc = api_store_top(x->srv->kv, x->srv->cfg->redis.prefix, key, kind, r.from, r.to,
                       (size_t)limit, &doc);
    s_unlock(x->srv);
    if (rc != ESC_OK) {
        return s_store_error(x, rc);
    }
    return s_json(x, MHD_HTTP_OK, doc);
}

static enum MHD_Result
s_h_latest(struct s_ctx *x, const char *id)
{
    enum MHD_Result mr = MHD_NO;
    json_t *topic = s_topic(x, id, &mr);
    json_t *posts = NULL;
    int64_t limit;
    char key[200];
    esc_rc rc;

    if (topic == NULL) {
        return mr;
    }
    json_decref(topic);
    if (s_arg_int(x, "limit", 1, 200, 20, &limit, &mr) != 0) {
        return mr;
    }
    s_topic_key(x->team, id, key, sizeof(key));
    s_lock(x->srv);
    rc = api_store_latest(x->srv->kv, x->srv->cfg->redis.prefix, key, (size_t)limit, &posts);
    s_unlock(x->srv);
    if (rc != ESC_OK) {
        return s_store_error(x, rc);
    }
    return s_json(x, MHD_HTTP_OK, json_pack("{s:o}", "posts", posts));
}

static enum MHD_Result
s_h_alerts(struct s_ctx *x)
{
    enum MHD_Result mr = MHD_NO;
    const char *topic = s_arg(x, "topic");
    int64_t limit;
    int64_t from = 0;
    int64_t to = 0;
    json_t *doc = NULL;
    esc_rc rc;

    if (s_arg_int(x, "limit", 1, S_LIST_MAX, 50, &limit, &mr) != 0) {
        return mr;
    }
    if ((s_arg(x, "from") != NULL && api_time_parse(s_arg(x, "from"), &from) != 0)
        || (s_arg(x, "to") != NULL && api_time_parse(s_arg(x, "to"), &to) != 0)) {
        return s_error(x, MHD_HTTP_BAD_REQUEST, "bad_range",
                       "from/to: expected Unix seconds or an RFC 3339 time");
    }
    if (s_arg(x, "from") != NULL && to == 0) {
        to = INT64_C(253402300799);
    }
    if (topic != NULL && topic[0] == '\0') {
        topic = NULL;
    }
    s_lock(x->srv);
    rc = api_store_alerts(x->srv->kv, x->srv->cfg->redis.prefix, x->team->id, topic, from, to,
                          (size_t)limit, &doc);
    s_unlock(x->srv);
    if (rc != ESC_OK) {
        return s_store_error(x, rc);
    }
    return s_json(x, MHD_HTTP_OK, doc);
}

/* Share of voice: posts of several topics over one range. */
static enum MHD_Result
s_h_compare(struct s_ctx *x)
{
    enum MHD_Result mr = MHD_NO;
    const char *arg = s_arg(x, "topics");
    char ids[S_COMPARE_MAX][64];
    size_t n = 0;
    struct api_range r;
    json_t *list = NULL;
    json_t *out;
    json_t *items;
    json_t *t = NULL;
    int64_t total = 0;
    size_t i;
    size_t k;
    esc_rc rc = ESC_OK;

    if (s_range(x, &r, &mr) != 0) {
        return mr;
    }
    s_lock(x->srv);
    rc = api_topics_list(x->srv->kv, x->srv->cfg->redis.prefix, x->team, &list);
    s_unlock(x->srv);
    if (rc != ESC_OK) {
        return s_store_error(x, rc);
    }
    if (arg == NULL || arg[0] == '\0') {
        for (i = 0; i < json_array_size(list) && n < S_COMPARE_MAX; i++) {
            esc_strlcpy(ids[n++], json_string_value(json_object_get(json_array_get(list, i),
                                                                    "id")),
                        sizeof(ids[0]));
        }
    }
    else {
        const char *p = arg;

        while (*p != '\0') {
            const char *c = strchr(p, ',');
            size_t len = c != NULL ? (size_t)(c - p) : strlen(p);
            int found = 0;

            if (n == S_COMPARE_MAX || len == 0 || len >= sizeof(ids[0])) {
                json_decref(list);
                return s_error(x, MHD_HTTP_BAD_REQUEST, "bad_request",
                               "topics: up to 10 topic ids separated by commas");
            }
            memcpy(ids[n], p, len);
            ids[n][len] = '\0';
            for (i = 0; i < json_array_size(list); i++) {
                found |= strcmp(json_string_value(json_object_get(json_array_get(list, i), "id")),
                                ids[n])
                         == 0;
            }
            if (!found) {
                json_decref(list);
                return s_error(x, MHD_HTTP_NOT_FOUND, "not_found", "no such topic");
            }
            n++;
            p += len;
            if (*p == ',') {
                p++;
            }
        }
    }
    out = json_object();
    items = json_array();
    for (i = 0; i < n; i++) {
        json_t *doc = NULL;
        json_t *it = json_object();
        char key[200];

        s_topic_key(x->team, ids[i], key, sizeof(key));
        s_lock(x->srv);
        rc = api_store_buckets(x->srv->kv, x->srv->cfg->redis.prefix, key, &r, &doc, NULL);
        s_unlock(x->srv);
        if (rc != ESC_OK) {
            json_decref(it);
            break;
        }
        if (i == 0) {
            json_object_set(out, "t", json_object_get(doc, "t"));
        }
        {
            json_t *posts = json_object_get(json_object_get(doc, "series"), "posts");
            json_t *v;
            int64_t sum = 0;

            json_array_foreach(posts, k, v) {
                sum += json_integer_value(v);
            }
            total += sum;
            json_object_set_new(it, "id", json_string(ids[i]));
            for (k = 0; k < json_array_size(list); k++) {
                t = json_array_get(list, k);
                if (strcmp(json_string_value(json_object_get(t, "id")), ids[i]) == 0) {
                    json_object_set(it, "name", json_object_get(t, "name"));
                }
            }
            json_object_set_new(it, "posts", json_integer(sum));
            json_object_set(it, "series", posts);
        }
        json_decref(doc);
        json_array_append_new(items, it);
    }
    json_decref(list);
    if (rc != ESC_OK) {
        json_decref(items);
        json_decref(out);
        return s_store_error(x, rc);
    }
    json_array_foreach(items, i, t) {
        int64_t p = json_integer_value(json_object_get(t, "posts"));

        json_object_set_new(t, "share",
                            total > 0 ? json_real((double)llround((double)p * 1000.0
                                                                  / (double)total) / 10.0)
                                      : json_null());
    }
    json_object_set_new(out, "res", json_string(api_res_name(r.res)));
    json_object_set_new(out, "step", json_integer(api_res_step(r.res)));
    json_object_set_new(out, "from", json_integer(r.from));
    json_object_set_new(out, "to", json_integer(r.to));
    json_object_set_new(out, "total", json_integer(total));
    json_object_set_new(out, "topics", items);
    return s_json(x, MHD_HTTP_OK, out);
}

/* ---- editing ----------------------------------------------------------------------------- */

/* Validates the topic's query and exclude with the classifier's validator. Returns ESC_OK
 * (warnings appended to warnings), or a response was sent (*mr) and another code returned. */
static esc_rc
s_validate_topic(struct s_ctx *x, json_t *topic, json_t *warnings, enum MHD_Result *mr)
{
    static const char *const fields[] = { "query", "exclude", NULL };
    json_t *details = json_array();
    size_t i;
    esc_rc worst = ESC_OK;

    for (i = 0; fields[i] != NULL; i++) {
        const char *q = json_string_value(json_object_get(topic, fields[i]));
        esc_rc rc;

        if (q == NULL) {
            continue;
        }
        rc = api_query_validate(x->srv->ac->validator, x->srv->ac->validator_timeout_ms,
                                fields[i], q, details);
        if (rc == ESC_ERR) {
            json_decref(details);
            *mr = s_error_retry(x, MHD_HTTP_SERVICE_UNAVAILABLE, "validator_unavailable",
                                "the query validator could not run", 5);
            return ESC_ERR;
        }
        if (rc == ESC_INVALID) {
            worst = ESC_INVALID;
        }
    }
    if (worst == ESC_INVALID) {
        *mr = s_error_d(x, S_HTTP_UNPROCESSABLE, "invalid_query",
                        "the query has errors", details);
        return ESC_INVALID;
    }
    json_array_extend(warnings, details);
    json_decref(details);
    return ESC_OK;
}

/* POST topics (create = 1, id from the body) and PUT topics/{id}. */
static enum MHD_Result
s_h_topic_put(struct s_ctx *x, const char *path_id, int create)
{
    enum MHD_Result mr = MHD_NO;
    json_t *body = s_body_json(x, &mr);
    json_t *details;
    json_t *topic;
    json_t *before = NULL;
    json_t *warnings;
    const char *id = path_id;
    struct api_actor who;
    esc_rc rc;

    if (body == NULL) {
        return mr;
    }
    if (create) {
        id = json_string_value(json_object_get(body, "id"));
        if (id == NULL) {
            json_decref(body);
            return s_error_d(x, S_HTTP_UNPROCESSABLE, "invalid_topic",
                             "the topic is not valid",
                             json_pack("[{s:s,s:s}]", "field", "id", "message",
                                       "a new topic needs an id"));
        }
    }
    details = json_array();
    topic = api_topic_check(body, id, details);
    json_decref(body);
    if (topic == NULL) {
        return s_error_d(x, S_HTTP_UNPROCESSABLE, "invalid_topic",
                         "the topic is not valid", details);
    }
    json_decref(details);
    warnings = json_array();
    if (s_validate_topic(x, topic, warnings, &mr) != ESC_OK) {
        json_decref(topic);
        json_decref(warnings);
        return mr;
    }
    id = json_string_value(json_object_get(topic, "id"));
    who.name = x->tok->name;
    who.role = api_role_name(x->tok->role);
    s_lock(x->srv);
    rc = api_topics_get(x->srv->kv, x->srv->cfg->redis.prefix, x->team, id, &before);
    if (rc == ESC_OK && !(create && before != NULL)) {
        rc = api_topics_put(x->srv->kv, x->srv->cfg->redis.prefix, x->team, topic, before, &who,
                            x->srv->ac->audit_keep);
    }
    s_unlock(x->srv);
    if (rc != ESC_OK) {
        json_decref(topic);
        json_decref(before);
        json_decref(warnings);
        return s_store_error(x, rc);
    }
    if (create && before != NULL) {
        json_decref(topic);
        json_decref(before);
        json_decref(warnings);
        return s_error(x, MHD_HTTP_CONFLICT, "exists", "a topic with this id exists");
    }
    esc_log_info("topic %s team=%s topic=%s who=%s", before != NULL ? "updated" : "created",
                 x->team->id, id, x->tok->name);
    json_object_set_new(topic, "source", json_string("api"));
    x->is_get = 0;
    mr = s_json(x, before != NULL ? MHD_HTTP_OK : MHD_HTTP_CREATED,
                json_pack("{s:o,s:o}", "topic", topic, "warnings", warnings));
    json_decref(before);
    return mr;
}

static enum MHD_Result
s_h_topic_delete(struct s_ctx *x, const char *id)
{
    enum MHD_Result mr = MHD_NO;
    json_t *before = s_topic(x, id, &mr);
    struct api_actor who;
    esc_rc rc;

    if (before == NULL) {
        return mr;
    }
    who.name = x->tok->name;
    who.role = api_role_name(x->tok->role);
    s_lock(x->srv);
    rc = api_topics_delete(x->srv->kv, x->srv->cfg->redis.prefix, x->team, id, before, &who,
                           x->srv->ac->audit_keep);
    s_unlock(x->srv);
    json_decref(before);
    if (rc != ESC_OK) {
        return s_store_error(x, rc);
    }
    esc_log_info("topic deleted team=%s topic=%s who=%s", x->team->id, id, x->tok->name);
    return s_json(x, MHD_HTTP_OK, json_pack("{s:s,s:b}", "id", id, "deleted", 1));
}

static enum MHD_Result
s_h_exclude(struct s_ctx *x)
{
    enum MHD_Result mr = MHD_NO;
    json_t *before = NULL;
    json_t *body;
    json_t *excl;
    json_t *details;
    struct api_actor who;
    esc_rc rc;

    s_lock(x->srv);
    rc = api_exclude_get(x->srv->kv, x->srv->cfg->redis.prefix, x->team, &before);
    s_unlock(x->srv);
    if (rc != ESC_OK) {
        return s_store_error(x, rc);
    }
    if (x->is_get) {
        return s_json(x, MHD_HTTP_OK, before);
    }
    body = s_body_json(x, &mr);
    if (body == NULL) {
        json_decref(before);
        return mr;
    }
    details = json_array();
    excl = api_exclude_check(body, details);
    json_decref(body);
    if (excl == NULL) {
        json_decref(before);
        return s_error_d(x, S_HTTP_UNPROCESSABLE, "invalid_exclude",
                         "the exclusion lists are not valid", details);
    }
    json_decref(details);
    who.name = x->tok->name;
    who.role = api_role_name(x->tok->role);
    s_lock(x->srv);
    rc = api_exclude_put(x->srv->kv, x->srv->cfg->redis.prefix, x->team, excl, before, &who,
                         x->srv->ac->audit_keep);
    s_unlock(x->srv);
    json_decref(before);
    if (rc != ESC_OK) {
        json_decref(excl);
        return s_store_error(x, rc);
    }
    esc_log_info("exclusion lists updated team=%s who=%s", x->team->id, x->tok->name);
    json_object_set_new(excl, "source", json_string("api"));
    return s_json(x, MHD_HTTP_OK, excl);
}

static enum MHD_Result
s_h_audit(struct s_ctx *x)
{
    enum MHD_Result mr = MHD_NO;
    json_t *doc = NULL;
    int64_t limit;
    esc_rc rc;

    if (s_arg_int(x, "limit", 1, S_LIST_MAX, 100, &limit, &mr) != 0) {
        return mr;
    }
    s_lock(x->srv);
    rc = api_audit_list(x->srv->kv, x->srv->cfg->redis.prefix, x->team->id, (size_t)limit, &doc);
    s_unlock(x->srv);
    if (rc != ESC_OK) {
        return s_store_error(x, rc);
    }
    return s_json(x, MHD_HTTP_OK, doc);
}

/* POST validate {"query": "...", "field": "query"|"exclude"}: the validator's verdict. */
static enum MHD_Result
s_h_validate(struct s_ctx *x)
{
    enum MHD_Result mr = MHD_NO;
    json_t *body = s_body_json(x, &mr);
    const char *q;
    const char *field;
    json_t *details;
    esc_rc rc;

    if (body == NULL) {
        return mr;
    }
    q = json_string_value(json_object_get(body, "query"));
    field = json_string_value(json_object_get(body, "field"));
    if (field == NULL) {
        field = "query";
    }
    if (q == NULL || strlen(q) > API_TOPIC_QUERY_LEN
        || (strcmp(field, "query") != 0 && strcmp(field, "exclude") != 0)) {
        json_decref(body);
        return s_error(x, S_HTTP_UNPROCESSABLE, "invalid_request",
                       "expected {\"query\": string (at most 4096 bytes), \"field\": \"query\" "
                       "or \"exclude\"}");
    }
    details = json_array();
    rc = api_query_validate(x->srv->ac->validator, x->srv->ac->validator_timeout_ms, field, q,
                            details);
    json_decref(body);
    if (rc == ESC_ERR) {
        json_decref(details);
        return s_error_retry(x, MHD_HTTP_SERVICE_UNAVAILABLE, "validator_unavailable",
                             "the query validator could not run", 5);
    }
    x->is_get = 0;
    return s_json(x, MHD_HTTP_OK,
                  json_pack("{s:b,s:o,s:b}", "ok", rc == ESC_OK, "messages", details, "checked",
                            x->srv->ac->validator[0] != '\0'));
}

/* ---- live stream ------------------------------------------------------------------------- */

struct s_stream {
    api_srv_t *srv;
    size_t team;
    char topic[64];   /* "" = every topic */
    uint64_t after;
    char *pending;    /* bytes not yet handed to MHD; owned */
    size_t len;
    size_t off;
};

static void
s_stream_set(struct s_stream *s, char *text, size_t len)
{
    esc_free(s->pending);
    s->pending = text;
    s->len = len;
    s->off = 0;
}

static ssize_t
s_stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct s_stream *s = cls;
    size_t n;

    while (s->off >= s->len) {
        char *json = NULL;
        uint64_t seq = 0;
        int rc = api_hub_next(s->srv->hub, s->team, s->after, s->topic[0] ? s->topic : NULL,
                              (int)s->srv->ac->sse_keepalive_ms, &json, &seq);

        if (rc < 0) {
            return MHD_CONTENT_READER_END_OF_STREAM;
        }
        s->after = seq;
        if (rc == 0) {
            s_stream_set(s, esc_strdup(": keepalive\n\n"), 13);
        }
        else {
            size_t cap = strlen(json) + 64;
            char *ev = esc_malloc(cap);
            int w = snprintf(ev, cap, "id: %llu\nevent: post\ndata: %s\n\n",
                             (unsigned long long)seq, json);

            esc_free(json);
            s_stream_set(s, ev, (size_t)w);
        }
    }
    n = s->len - s->off < max ? s->len - s->off : max;
    memcpy(buf, s->pending + s->off, n);
    s->off += n;
    return (ssize_t)n;
}

static void
s_stream_free(void *cls)
{
    struct s_stream *s = cls;

    atomic_fetch_sub(&s->srv->streams, 1);
    esc_metric_set(s->srv->m_streams, (double)atomic_load(&s->srv->streams));
    esc_free(s->pending);
    esc_free(s);
}

static enum MHD_Result
s_h_live(struct s_ctx *x)
{
    api_srv_t *srv = x->srv;
    struct s_stream *s;
    struct MHD_Response *r;
    const char *topic = s_arg(x, "topic");
    const char *last_id = MHD_lookup_connection_value(x->c, MHD_HEADER_KIND, "Last-Event-ID");
    enum MHD_Result mr = MHD_NO;
    uint64_t last;
    int64_t replay;
    int64_t n;

    if (topic != NULL && topic[0] != '\0' && !esc_ident_valid(topic)) {
        return s_error(x, MHD_HTTP_BAD_REQUEST, "bad_request", "topic: not a topic id");
    }
    if (s_arg_int(x, "replay", 0, srv->ac->live_keep, 20, &replay, &mr) != 0) {
        return mr;
    }
    if (atomic_fetch_add(&srv->streams, 1) >= srv->ac->sse_max) {
        atomic_fetch_sub(&srv->streams, 1);
        return s_error_retry(x, MHD_HTTP_SERVICE_UNAVAILABLE, "too_many_streams",
                             "too many live streams are open", 10);
    }
    esc_metric_set(srv->m_streams, (double)atomic_load(&srv->streams));
    s = esc_calloc(1, sizeof(*s));
    s->srv = srv;
    s->team = (size_t)(x->team - srv->cfg->teams);
    esc_strlcpy(s->topic, topic != NULL ? topic : "", sizeof(s->topic));
    last = api_hub_last(srv->hub, s->team);
    if (last_id != NULL && esc_parse_i64(last_id, 0, INT64_MAX, &n) == 0) {
        s->after = (uint64_t)n;
    }
    else {
        s->after = last > (uint64_t)replay ? last - (uint64_t)replay : 0;
    }
    s_stream_set(s, esc_strdup("retry: 3000\n: connected\n\n"), 25);
    r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, s_stream_read, s,
                                          s_stream_free);
    if (r == NULL) {
        s_stream_free(s);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", "text/event-stream; charset=utf-8");
    MHD_add_response_header(r, "Cache-Control", "no-store");
    MHD_add_response_header(r, "X-Accel-Buffering", "no");
    s_headers(x, r);
    mr = MHD_queue_response(x->c, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return mr;
}

/* ---- feeds ------------------------------------------------------------------------------- */

static void
s_xml_put(char **buf, size_t *len, size_t *cap, const char *s)
{
    char one[2] = { 0, 0 };

    for (; *s != '\0'; s++) {
        const char *rep = NULL;
        unsigned char ch = (unsigned char)*s;

        switch (ch) {
        case '<':
            rep = "&lt;";
            break;
        case '>':
            rep = "&gt;";
            break;
        case '&':
            rep = "&amp;";
            break;
        case '"':
            rep = "&quot;";
            break;
        case '\'':
            rep = "&apos;";
            break;
        default:
            if (ch < 0x20 && ch != '\n' && ch != '\t' && ch != '\r') {
                continue; /* not allowed in XML 1.0 */
            }
            one[0] = (char)ch;
            rep = one;
        }
        s_csv_num(buf, len, cap, rep);
    }
}

/* First words of text, at most ~80 bytes on a UTF-8 boundary, for an item title. */
static void
s_title(const char *text, char *out, size_t outsz)
{
    size_t n = strlen(text);
    size_t max = outsz - 4 < 80 ? outsz - 4 : 80;

    if (n <= max) {
        esc_strlcpy(out, text, outsz);
        return;
    }
    n = max;
    while (n > 0 && ((unsigned char)text[n] & 0xC0) == 0x80) {
        n--;
    }
    memcpy(out, text, n);
    memcpy(out + n, "...", 4);
}

static enum MHD_Result
s_feed_send(struct s_ctx *x, const char *type, char *body, size_t len)
{
    enum MHD_Result rc = s_send(x, MHD_HTTP_OK, type, body, len, "private, max-age=60", 1);

    esc_free(body);
    return rc;
}

static enum MHD_Result
s_h_feed(struct s_ctx *x, const char *id, int rss)
{
    enum MHD_Result mr = MHD_NO;
    json_t *topic = s_topic(x, id, &mr);
    json_t *posts = NULL;
    json_t *p;
    char key[200];
    char *buf = NULL;
    size_t len = 0;
    size_t cap = 0;
    size_t i;
    char line[600];
    const char *name;
    esc_rc rc;

    if (topic == NULL) {
        return mr;
    }
    s_topic_key(x->team, id, key, sizeof(key));
    s_lock(x->srv);
    rc = api_store_latest(x->srv->kv, x->srv->cfg->redis.prefix, key,
                          (size_t)x->srv->ac->feed_items, &posts);
    s_unlock(x->srv);
    if (rc != ESC_OK) {
        json_decref(topic);
        return s_store_error(x, rc);
    }
    name = json_string_value(json_object_get(topic, "name"));
    if (!rss) {
        json_t *feed = json_object();
        json_t *items = json_array();

        json_object_set_new(feed, "version", json_string("https://jsonfeed.org/version/1.1"));
        snprintf(line, sizeof(line), "%s (%s) - escucha", name, x->team->id);
        json_object_set_new(feed, "title", json_string(line));
        json_object_set_new(feed, "description",
                            json_string("Latest posts that matched this topic"));
        json_array_foreach(posts, i, p) {
            json_t *it = json_object();
            const char *text = json_string_value(json_object_get(p, "text"));
            const char *url = json_string_value(json_object_get(p, "url"));
            const char *author = json_string_value(json_object_get(p, "author"));
            int64_t at = json_integer_value(json_object_get(p, "created_at"));
            char iso[32];

            snprintf(line, sizeof(line), "%s:%s",
                     json_string_value(json_object_get(p, "platform")) != NULL
                         ? json_string_value(json_object_get(p, "platform"))
                         : "post",
                     json_string_value(json_object_get(p, "id")) != NULL
                         ? json_string_value(json_object_get(p, "id"))
                         : "?");
            json_object_set_new(it, "id", json_string(line));
            if (url != NULL && url[0] != '\0') {
                json_object_set_new(it, "url", json_string(url));
            }
            json_object_set_new(it, "content_text", json_string(text));
            s_title(text, line, sizeof(line));
            json_object_set_new(it, "title", json_string(line));
            if (at > 0) {
                json_object_set_new(it, "date_published",
                                    json_string(esc_time_fmt_iso8601(at, iso, sizeof(iso))));
            }
            if (author != NULL) {
                json_object_set_new(it, "authors", json_pack("[{s:s}]", "name", author));
            }
            json_array_append_new(items, it);
        }
        json_object_set_new(feed, "items", items);
        buf = json_dumps(feed, JSON_COMPACT);
        json_decref(feed);
        json_decref(posts);
        json_decref(topic);
        return s_feed_send(x, "application/feed+json; charset=utf-8", buf, strlen(buf));
    }
    s_csv_num(&buf, &len, &cap, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                                "<rss version=\"2.0\"><channel><title>");
    s_xml_put(&buf, &len, &cap, name);
    s_csv_num(&buf, &len, &cap, " - escucha</title><link>");
    snprintf(line, sizeof(line), "/#/t/%s/%s", x->team->id, id);
    s_xml_put(&buf, &len, &cap, line);
    s_csv_num(&buf, &len, &cap, "</link><description>Latest posts that matched ");
    s_xml_put(&buf, &len, &cap, name);
    s_csv_num(&buf, &len, &cap, "</description>\n");
    json_array_foreach(posts, i, p) {
        const char *text = json_string_value(json_object_get(p, "text"));
        const char *url = json_string_value(json_object_get(p, "url"));
        const char *author = json_string_value(json_object_get(p, "author"));
        const char *pid = json_string_value(json_object_get(p, "id"));
        const char *plat = json_string_value(json_object_get(p, "platform"));
        int64_t at = json_integer_value(json_object_get(p, "created_at"));

        s_csv_num(&buf, &len, &cap, "<item><title>");
        s_title(text, line, sizeof(line));
        s_xml_put(&buf, &len, &cap, line);
        s_csv_num(&buf, &len, &cap, "</title><description>");
        s_xml_put(&buf, &len, &cap, text);
        if (author != NULL) {
            s_xml_put(&buf, &len, &cap, " \xE2\x80\x94 ");
            s_xml_put(&buf, &len, &cap, author);
        }
        s_csv_num(&buf, &len, &cap, "</description>");
        if (url != NULL && url[0] != '\0') {
            s_csv_num(&buf, &len, &cap, "<link>");
            s_xml_put(&buf, &len, &cap, url);
            s_csv_num(&buf, &len, &cap, "</link>");
        }
        s_csv_num(&buf, &len, &cap, "<guid isPermaLink=\"false\">");
        snprintf(line, sizeof(line), "%s:%s", plat != NULL ? plat : "post",
                 pid != NULL ? pid : "?");
        s_xml_put(&buf, &len, &cap, line);
        s_csv_num(&buf, &len, &cap, "</guid>");
        if (at > 0) {
            time_t tt = (time_t)(at / 1000);
            struct tm tm;

            gmtime_r(&tt, &tm);
            strftime(line, sizeof(line), "<pubDate>%a, %d %b %Y %H:%M:%S +0000</pubDate>", &tm);
            s_csv_num(&buf, &len, &cap, line);
        }
        s_csv_num(&buf, &len, &cap, "</item>\n");
    }
    s_csv_num(&buf, &len, &cap, "</channel></rss>\n");
    json_decref(posts);
    json_decref(topic);
    return s_feed_send(x, "application/rss+xml; charset=utf-8", buf, len);
}

/* ---- static files ------------------------------------------------------------------------ */

static const char *
s_mime(const char *path)
{
    static const char *const map[][2] = {
        { ".html", "text/html; charset=utf-8" },
        { ".js", "text/javascript; charset=utf-8" },
        { ".css", "text/css; charset=utf-8" },
        { ".json", "application/json" },
        { ".svg", "image/svg+xml" },
        { ".png", "image/png" },
        { ".ico", "image/x-icon" },
        { ".woff2", "font/woff2" },
        { ".map", "application/json" },
        { ".txt", "text/plain; charset=utf-8" },
    };
    size_t n = strlen(path);
    size_t i;

    for (i = 0; i < ESC_ARRAY_LEN(map); i++) {
        size_t k = strlen(map[i][0]);

        if (n > k && strcmp(path + n - k, map[i][0]) == 0) {
            return map[i][1];
        }
    }
    return "application/octet-stream";
}

/* True for a path of [A-Za-z0-9._/-] without "..", "//" or a leading dot in any part. */
static int
s_safe_path(const char *p)
{
    const char *c;

    if (p[0] != '/' || strstr(p, "..") != NULL || strstr(p, "//") != NULL
        || strstr(p, "/.") != NULL) {
        return 0;
    }
    for (c = p; *c != '\0'; c++) {
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9')
              || *c == '.' || *c == '_' || *c == '-' || *c == '/')) {
            return 0;
        }
    }
    return 1;
}

static enum MHD_Result
s_static(struct s_ctx *x, const char *url)
{
    const char *root = x->srv->ac->web_root;
    const char *rel = strcmp(url, "/") == 0 ? "/index.html" : url;
    char file[1200];
    struct stat st;
    struct MHD_Response *r;
    enum MHD_Result rc;
    char tag[64];
    const char *inm;
    int fd;
    int is_html;

    if (!x->is_get) {
        return s_error(x, MHD_HTTP_METHOD_NOT_ALLOWED, "method_not_allowed",
                       "only GET and HEAD are served here");
    }
    if (root[0] == '\0' || !s_safe_path(rel)) {
        return s_error(x, MHD_HTTP_NOT_FOUND, "not_found", "no such page");
    }
    snprintf(file, sizeof(file), "%s%s", root, rel);
    fd = open(file, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        if (fd >= 0) {
            close(fd);
        }
        return s_error(x, MHD_HTTP_NOT_FOUND, "not_found", "no such page");
    }
    snprintf(tag, sizeof(tag), "\"%llx-%llx\"", (unsigned long long)st.st_size,
             (unsigned long long)st.st_mtim.tv_sec);
    inm = MHD_lookup_connection_value(x->c, MHD_HEADER_KIND, "If-None-Match");
    is_html = strcmp(s_mime(rel), "text/html; charset=utf-8") == 0;
    if (inm != NULL && strcmp(inm, tag) == 0) {
        close(fd);
        r = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
        if (r == NULL) {
            return MHD_NO;
        }
        MHD_add_response_header(r, "ETag", tag);
        MHD_add_response_header(r, "Cache-Control", "no-cache");
        s_headers(x, r);
        rc = MHD_queue_response(x->c, MHD_HTTP_NOT_MODIFIED, r);
        MHD_destroy_response(r);
        return rc;
    }
    r = MHD_create_response_from_fd((size_t)st.st_size, fd);
    if (r == NULL) {
        close(fd);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", s_mime(rel));
    MHD_add_response_header(r, "ETag", tag);
    MHD_add_response_header(r, "Cache-Control", "no-cache");
    if (is_html) {
        MHD_add_response_header(r, "Content-Security-Policy", S_CSP);
    }
    s_headers(x, r);
    rc = MHD_queue_response(x->c, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return rc;
}

/* ---- routing ----------------------------------------------------------------------------- */

/* Client address bytes for the bad-token limiter. */
static size_t
s_client_addr(struct MHD_Connection *c, unsigned char *out, size_t outsz)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    const struct sockaddr *sa = ci != NULL ? ci->client_addr : NULL;

    if (sa != NULL && sa->sa_family == AF_INET && outsz >= 4) {
        memcpy(out, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, 4);
        return 4;
    }
    if (sa != NULL && sa->sa_family == AF_INET6 && outsz >= 16) {
        memcpy(out, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, 16);
        return 16;
    }
    out[0] = 0;
    return 1;
}

/* Authenticates with the bearer header (or, when url_token, ?token=). 0 when x->tok is set;
 * -1 after sending 401/429. */
static int
s_authenticate(struct s_ctx *x, int url_token, enum MHD_Result *mr)
{
    const char *h = MHD_lookup_connection_value(x->c, MHD_HEADER_KIND, "Authorization");
    const char *tok = NULL;
    unsigned char addr[16];
    size_t alen;
    int wait;

    if (h != NULL && strncasecmp(h, "Bearer ", 7) == 0) {
        tok = h + 7;
        while (*tok == ' ') {
            tok++;
        }
    }
    else if (url_token) {
        tok = s_arg(x, "token");
    }
    x->tok = tok != NULL ? api_auth_find(x->srv->auth, tok, strlen(tok)) : NULL;
    if (x->tok == NULL) {
        struct MHD_Response *r;
        json_t *doc;
        char *text;

        esc_metric_add(x->srv->m_denied, 1);
        alen = s_client_addr(x->c, addr, sizeof(addr));
        wait = api_auth_take_bad(x->srv->auth, addr, alen, esc_mono_ms());
        if (wait > 0) {
            *mr = s_error_retry(x, MHD_HTTP_TOO_MANY_REQUESTS, "rate_limited",
                                "too many requests with a wrong token", wait);
            return -1;
        }
        doc = json_pack("{s:{s:i,s:s,s:s}}", "error", "status", 401, "code", "unauthorized",
                        "message", tok == NULL ? "a bearer token is required"
                                               : "the token is not valid");
        text = json_dumps(doc, JSON_COMPACT);
        json_decref(doc);
        r = MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_COPY);
        esc_free(text); /* json_dumps allocates with malloc; esc_free is free */
        if (r == NULL) {
            *mr = MHD_NO;
            return -1;
        }
        MHD_add_response_header(r, "Content-Type", "application/json; charset=utf-8");
        MHD_add_response_header(r, "Cache-Control", "no-store");
        MHD_add_response_header(r, "WWW-Authenticate", "Bearer realm=\"escucha\"");
        s_headers(x, r);
        *mr = MHD_queue_response(x->c, MHD_HTTP_UNAUTHORIZED, r);
        MHD_destroy_response(r);
        return -1;
    }
    wait = api_auth_take(x->srv->auth, x->tok, esc_mono_ms());
    if (wait > 0) {
        *mr = s_error_retry(x, MHD_HTTP_TOO_MANY_REQUESTS, "rate_limited",
                            "too many requests for this token", wait);
        return -1;
    }
    return 0;
}

/* Resolves seg[i] as a team the token may act on with role need: 0, or -1 after 404/403. */
static int
s_team(struct s_ctx *x, const char *id, enum api_role need, enum MHD_Result *mr)
{
    const struct esc_cfg_team *t = esc_cfg_team_find(x->srv->cfg, id);

    if (t == NULL || !api_auth_allows(x->tok, t->id, API_ROLE_FEED)
        || (x->tok->role == API_ROLE_FEED && need != API_ROLE_FEED)) {
        /* another team's token: the same answer as for a team that does not exist */
        *mr = s_error(x, MHD_HTTP_NOT_FOUND, "not_found", "no such team");
        return -1;
    }
    if (!api_auth_allows(x->tok, t->id, need)) {
        *mr = s_error(x, MHD_HTTP_FORBIDDEN, "forbidden",
                      need == API_ROLE_EDITOR ? "this needs an editor token of the team"
                                              : "this token may not do that");
        return -1;
    }
    x->team = t;
    return 0;
}

static int
s_is(const struct s_ctx *x, size_t i, const char *s)
{
    return i < x->n_seg && strcmp(x->seg[i], s) == 0;
}

static enum MHD_Result
s_method_not_allowed(struct s_ctx *x, const char *allow)
{
    json_t *doc = json_pack("{s:{s:i,s:s,s:s}}", "error", "status", 405, "code",
                            "method_not_allowed", "message", "method not allowed here");
    char *text = json_dumps(doc, JSON_COMPACT);
    struct MHD_Response *r;
    enum MHD_Result rc;

    json_decref(doc);
    r = MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_COPY);
    esc_free(text); /* json_dumps allocates with malloc; esc_free is free */
    if (r == NULL) {
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", "application/json; charset=utf-8");
    MHD_add_response_header(r, "Allow", allow);
    s_headers(x, r);
    rc = MHD_queue_response(x->c, MHD_HTTP_METHOD_NOT_ALLOWED, r);
    MHD_destroy_response(r);
    return rc;
}

/* /api/v1/teams/{team}/... once the token is known. seg[0..2] = api v1 teams. */
static enum MHD_Result
s_route_team(struct s_ctx *x)
{
    enum MHD_Result mr = MHD_NO;
    const char *m = x->method;
    int get = x->is_get;
    int put = strcmp(m, "PUT") == 0;
    int post = strcmp(m, "POST") == 0;
    int del = strcmp(m, "DELETE") == 0;
    size_t n = x->n_seg;
    enum api_role need = API_ROLE_VIEWER;
    const char *sub = n > 4 ? x->seg[4] : "";

    if (!get || s_is(x, 4, "audit") || s_is(x, 4, "validate")) {
        need = API_ROLE_EDITOR;
    }
    if (s_team(x, x->seg[3], need, &mr) != 0) {
        return mr;
    }
    if (n == 4) {
        return get ? s_h_team(x) : s_method_not_allowed(x, "GET, HEAD");
    }
    if (n == 5 && strcmp(sub, "topics") == 0) {
        if (get) {
            return s_h_topics(x);
        }
        return post ? s_h_topic_put(x, NULL, 1) : s_method_not_allowed(x, "GET, HEAD, POST");
    }
    if (n == 5 && strcmp(sub, "overview") == 0) {
        return get ? s_h_overview(x) : s_method_not_allowed(x, "GET, HEAD");
    }
    if (n == 5 && strcmp(sub, "compare") == 0) {
        return get ? s_h_compare(x) : s_method_not_allowed(x, "GET, HEAD");
    }
    if (n == 5 && strcmp(sub, "alerts") == 0) {
        return get ? s_h_alerts(x) : s_method_not_allowed(x, "GET, HEAD");
    }
    if (n == 5 && strcmp(sub, "live") == 0) {
        return get ? s_h_live(x) : s_method_not_allowed(x, "GET");
    }
    if (n == 5 && strcmp(sub, "exclude") == 0) {
        return get || put ? s_h_exclude(x) : s_method_not_allowed(x, "GET, HEAD, PUT");
    }
    if (n == 5 && strcmp(sub, "audit") == 0) {
        return get ? s_h_audit(x) : s_method_not_allowed(x, "GET, HEAD");
    }
    if (n == 5 && strcmp(sub, "validate") == 0) {
        return post ? s_h_validate(x) : s_method_not_allowed(x, "POST");
    }
    if (n == 6 && strcmp(sub, "topics") == 0) {
        if (get) {
            json_t *t = s_topic(x, x->seg[5], &mr);

            return t != NULL ? s_json(x, MHD_HTTP_OK, t) : mr;
        }
        if (put) {
            return s_h_topic_put(x, x->seg[5], 0);
        }
        return del ? s_h_topic_delete(x, x->seg[5])
                   : s_method_not_allowed(x, "GET, HEAD, PUT, DELETE");
    }
    if (n >= 7 && strcmp(sub, "topics") == 0) {
        const char *what = x->seg[6];

        if (!get) {
            return s_method_not_allowed(x, "GET, HEAD");
        }
        if (n == 7 && strcmp(what, "series") == 0) {
            return s_h_buckets(x, x->seg[5], 1, 0);
        }
        if (n == 7 && strcmp(what, "series.csv") == 0) {
            return s_h_buckets(x, x->seg[5], 1, 1);
        }
        if (n == 7 && strcmp(what, "summary") == 0) {
            return s_h_buckets(x, x->seg[5], 0, 0);
        }
        if (n == 7 && strcmp(what, "totals") == 0) {
            return s_h_totals(x, x->seg[5]);
        }
        if (n == 7 && strcmp(what, "latest") == 0) {
            return s_h_latest(x, x->seg[5]);
        }
        if (n == 8 && strcmp(what, "top") == 0) {
            return s_h_top(x, x->seg[5], x->seg[7]);
        }
    }
    return s_error(x, MHD_HTTP_NOT_FOUND, "not_found", "no such endpoint");
}

static enum MHD_Result
s_route_api(struct s_ctx *x)
{
    enum MHD_Result mr = MHD_NO;

    if (!s_is(x, 1, "v1") || x->n_seg < 3) {
        return s_error(x, MHD_HTTP_NOT_FOUND, "not_found", "no such endpoint");
    }
    if (x->req->too_big) {
        return s_error(x, S_HTTP_TOO_LARGE, "too_large", "the request body is too large");
    }
    if (s_authenticate(x, 0, &mr) != 0) {
        return mr;
    }
    if (x->tok->role == API_ROLE_FEED) {
        return s_error(x, MHD_HTTP_NOT_FOUND, "not_found", "feed tokens only read feeds");
    }
    if (x->n_seg == 3 && s_is(x, 2, "me")) {
        return x->is_get ? s_h_me(x) : s_method_not_allowed(x, "GET, HEAD");
    }
    if (x->n_seg == 3 && s_is(x, 2, "teams")) {
        return x->is_get ? s_h_teams(x) : s_method_not_allowed(x, "GET, HEAD");
    }
    if (x->n_seg >= 4 && s_is(x, 2, "teams")) {
        return s_route_team(x);
    }
    return s_error(x, MHD_HTTP_NOT_FOUND, "not_found", "no such endpoint");
}

/* /feed/{team}/{topic}.rss|.json?token=... */
static enum MHD_Result
s_route_feed(struct s_ctx *x)
{
    enum MHD_Result mr = MHD_NO;
    char id[80];
    const char *last;
    size_t n;
    int rss;

    if (x->n_seg != 3) {
        return s_error(x, MHD_HTTP_NOT_FOUND, "not_found", "no such feed");
    }
    if (!x->is_get) {
        return s_method_not_allowed(x, "GET, HEAD");
    }
    last = x->seg[2];
    n = strlen(last);
    if (n > 4 && n - 4 < sizeof(id) && strcmp(last + n - 4, ".rss") == 0) {
        rss = 1;
        n -= 4;
    }
    else if (n > 5 && n - 5 < sizeof(id) && strcmp(last + n - 5, ".json") == 0) {
        rss = 0;
        n -= 5;
    }
    else {
        return s_error(x, MHD_HTTP_NOT_FOUND, "not_found", "feeds end in .rss or .json");
    }
    memcpy(id, last, n);
    id[n] = '\0';
    if (s_authenticate(x, 1, &mr) != 0 || s_team(x, x->seg[1], API_ROLE_FEED, &mr) != 0) {
        return mr;
    }
    return s_h_feed(x, id, rss);
}

static enum MHD_Result
s_healthz(struct s_ctx *x)
{
    int ok = api_srv_ping(x->srv);

    x->is_get = 0;
    return s_send(x, ok ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE, "application/json",
                  ok ? "{\"ok\":true}" : "{\"ok\":false,\"reason\":\"redis unreachable\"}",
                  ok ? 11 : 43, "no-store", 0);
}

static enum MHD_Result
s_preflight(struct s_ctx *x)
{
    const char *origin = MHD_lookup_connection_value(x->c, MHD_HEADER_KIND, "Origin");
    struct MHD_Response *r;
    enum MHD_Result rc;

    if (x->srv->ac->cors_origin[0] == '\0' || origin == NULL
        || strcmp(origin, x->srv->ac->cors_origin) != 0) {
        return s_method_not_allowed(x, "GET, HEAD, POST, PUT, DELETE");
    }
    r = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
    if (r == NULL) {
        return MHD_NO;
    }
    s_headers(x, r);
    MHD_add_response_header(r, "Access-Control-Allow-Methods", "GET, HEAD, POST, PUT, DELETE");
    MHD_add_response_header(r, "Access-Control-Allow-Headers",
                            "Authorization, Content-Type, If-None-Match, Last-Event-ID");
    MHD_add_response_header(r, "Access-Control-Max-Age", "600");
    rc = MHD_queue_response(x->c, MHD_HTTP_NO_CONTENT, r);
    MHD_destroy_response(r);
    return rc;
}

static enum MHD_Result
s_dispatch(api_srv_t *srv, struct MHD_Connection *c, const char *url, const char *method,
           struct s_req *req)
{
    struct s_ctx x;
    char *p;

    memset(&x, 0, sizeof(x));
    x.srv = srv;
    x.c = c;
    x.method = method;
    x.req = req;
    x.is_get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
    esc_metric_add(srv->m_requests, 1);
    if (strcmp(method, "OPTIONS") == 0) {
        return s_preflight(&x);
    }
    if (strlen(url) >= sizeof(x.path)) {
        return s_error(&x, MHD_HTTP_URI_TOO_LONG, "uri_too_long", "the path is too long");
    }
    esc_strlcpy(x.path, url, sizeof(x.path));
    for (p = x.path; *p != '\0';) {
        char *slash;

        if (*p == '/') {
            *p++ = '\0';
            continue;
        }
        if (x.n_seg == S_SEG_MAX) {
            return s_error(&x, MHD_HTTP_NOT_FOUND, "not_found", "no such endpoint");
        }
        x.seg[x.n_seg++] = p;
        slash = strchr(p, '/');
        if (slash == NULL) {
            break;
        }
        p = slash;
    }
    if (s_is(&x, 0, "api")) {
        return s_route_api(&x);
    }
    if (s_is(&x, 0, "feed")) {
        return s_route_feed(&x);
    }
    if (x.n_seg == 1 && s_is(&x, 0, "healthz")) {
        return s_healthz(&x);
    }
    if (req->too_big) {
        return s_error(&x, S_HTTP_TOO_LARGE, "too_large", "the request body is too large");
    }
    return s_static(&x, url);
}

static enum MHD_Result
s_access(void *cls, struct MHD_Connection *c, const char *url, const char *method,
         const char *version, const char *upload_data, size_t *upload_data_size, void **con_cls)
{
    api_srv_t *srv = cls;
    struct s_req *req = *con_cls;

    if (req == NULL) {
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
        int64_t n = 0;

        req = esc_calloc(1, sizeof(*req));
        *con_cls = req;
        if (cl != NULL && (esc_parse_i64(cl, 0, INT64_MAX, &n) != 0 || n > srv->ac->max_body)) {
            /* answer 413 before reading the body; libmicrohttpd closes the connection after */
            req->too_big = 1;
            return s_dispatch(srv, c, url, method, req);
        }
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        if (!req->too_big && req->len + *upload_data_size <= (size_t)srv->ac->max_body) {
            req->body = esc_realloc(req->body, req->len + *upload_data_size + 1);
            memcpy(req->body + req->len, upload_data, *upload_data_size);
            req->len += *upload_data_size;
            req->body[req->len] = '\0';
        }
        else {
            req->too_big = 1;
        }
        *upload_data_size = 0;
        return MHD_YES;
    }
    return s_dispatch(srv, c, url, method, req);
}

static void
s_completed(void *cls, struct MHD_Connection *c, void **con_cls,
            enum MHD_RequestTerminationCode toe)
{
    struct s_req *req = *con_cls;

    if (req != NULL) {
        esc_free(req->body);
        esc_free(req);
        *con_cls = NULL;
    }
}

api_srv_t *
api_srv_new(const struct esc_cfg *cfg, const struct api_cfg *ac,
            const struct esc_kv_opts *kv_opts, api_hub_t *hub)
{
    api_srv_t *self;
    struct sockaddr_storage sa;
    socklen_t sa_len;
    const union MHD_DaemonInfo *info;
    unsigned int timeout_s = (unsigned int)(ac->sse_keepalive_ms / 1000 * 2 + 30);

    if (esc_parse_listen(ac->listen, &sa, &sa_len) != 0) {
        esc_log_error("bad listen address listen=%s (expected host:port, [ipv6]:port or :port)",
                      ac->listen);
        return NULL;
    }
    self = esc_calloc(1, sizeof(*self));
    self->cfg = cfg;
    self->ac = ac;
    self->hub = hub;
    self->auth = api_auth_new(ac->tokens, ac->n_tokens, ac->rate_per_s, ac->rate_burst);
    self->kv = esc_kv_new(kv_opts);
    pthread_mutex_init(&self->kv_mu, NULL);
    atomic_init(&self->streams, 0);
    self->m_requests = esc_metrics_counter("escucha_api_requests_total", "HTTP requests", NULL);
    self->m_denied = esc_metrics_counter("escucha_api_denied_total",
                                         "requests with a missing or wrong token", NULL);
    self->m_redis_down = esc_metrics_counter("escucha_api_redis_unavailable_total",
                                             "requests answered 503 because Redis was away",
                                             NULL);
    self->m_streams = esc_metrics_gauge("escucha_api_live_streams", "open live streams", NULL);
    self->d = MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD
                                   | MHD_USE_ERROR_LOG
                                   | (sa.ss_family == AF_INET6 ? MHD_USE_IPv6 : 0),
                               0, NULL, NULL, s_access, self,
                               MHD_OPTION_SOCK_ADDR, &sa, MHD_OPTION_NOTIFY_COMPLETED,
                               s_completed, self, MHD_OPTION_CONNECTION_LIMIT,
                               (unsigned int)ac->max_connections, MHD_OPTION_CONNECTION_TIMEOUT,
                               timeout_s, MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)65536,
                               MHD_OPTION_END);
    if (self->d == NULL) {
        esc_log_error("cannot listen listen=%s", ac->listen);
        api_srv_destroy(&self);
        return NULL;
    }
    info = MHD_get_daemon_info(self->d, MHD_DAEMON_INFO_BIND_PORT);
    self->port = info != NULL ? (int)info->port : 0;
    return self;
}

int
api_srv_port(const api_srv_t *self)
{
    return self->port;
}

int
api_srv_ping(api_srv_t *self)
{
    struct esc_kv_val v;
    int ok;

    memset(&v, 0, sizeof(v));
    s_lock(self);
    ok = esc_kv_cmd(self->kv, &v, "PING") == ESC_OK;
    s_unlock(self);
    esc_kv_val_fini(&v);
    return ok;
}

int
api_srv_streams(const api_srv_t *self)
{
    return atomic_load(&((api_srv_t *)(uintptr_t)self)->streams);
}

void
api_srv_destroy(api_srv_t **self_p)
{
    api_srv_t *self = self_p != NULL ? *self_p : NULL;

    if (self == NULL) {
        return;
    }
    if (self->d != NULL) {
        MHD_stop_daemon(self->d);
    }
    esc_kv_destroy(&self->kv);
    pthread_mutex_destroy(&self->kv_mu);
    api_auth_destroy(&self->auth);
    esc_free(self);
    *self_p = NULL;
}
