#define ESC_LOG_MODULE "bluesky"
/* Source plugin "bluesky": posts matching a query from app.bsky.feed.searchPosts, asked of the
 * account's PDS with an app-password session, because Bluesky refuses unauthenticated search.
 * The session is created once (com.atproto.server.createSession, identifier + app password)
 * and renewed with refreshSession when the access token expires (ExpiredToken); a refused
 * refresh starts a new session. createSession is limited per account (30 per 5 min), so tokens
 * are kept for the life of the process. Results are newest first with an opaque cursor; each
 * poll sweeps back to the newest post of the previous poll (col_sweep), also passing it as
 * `since` so the server stops there too. The post's at:// URI is the dedupe key; hashtags and
 * mentions come from the record's facets (UTF-8 byte offsets into the text). Rate limits come
 * in RateLimit-* headers (Reset in Unix seconds), handled by api.c. Loop thread only. */
#include <string.h>

#include "api.h"
#include "cjson.h"
#include "col_source.h"
#include "text.h"

#include "escucha/esc_log.h"
#include "escucha/esc_mem.h"
#include "escucha/esc_msg.h"
#include "escucha/esc_util.h"

#define S_URL_MAX 2048
#define S_JWT_MAX 4096
#define S_TAG_CREATE 1
#define S_TAG_REFRESH 2
#define S_TAG_SEARCH 3
#define S_AUTH_RETRIES 3

struct src_bluesky_cfg {
    char service[256];      /* the account's PDS, https://bsky.social */
    char identifier[256];   /* handle or DID of the account */
    char password_env[128]; /* app password */
    char password_file[256];
    char query[256];
    char lang[16];
    int64_t limit;          /* 1..100 */
    struct col_api_cfg api;
};

struct s_bsky {
    const struct src_bluesky_cfg *cfg;
    struct col_api api;
    struct col_sweep sweep;
    char *password;          /* owned */
    char access[S_JWT_MAX];  /* "" = no session */
    char refresh[S_JWT_MAX]; /* "" = none */
    int need_refresh;        /* the access token expired */
    int auth_tries;          /* session attempts in a row without a good search */
    char cursor[256];        /* next page of the sweep, "" = from the newest */
};

static const struct esc_cfg_entry s_cfg_map[] = {
    ESC_CFG_STR("service", "https://bsky.social", struct src_bluesky_cfg, service,
                "the account's PDS; searches are proxied by it to the AppView"),
    ESC_CFG_STR("identifier", NULL, struct src_bluesky_cfg, identifier,
                "handle (or DID) of the account the app password belongs to"),
    ESC_CFG_STR("password_env", "", struct src_bluesky_cfg, password_env,
                "environment variable holding an app password (Settings > App passwords)"),
    ESC_CFG_STR("password_file", "", struct src_bluesky_cfg, password_file,
                "file holding the app password (mode 600), instead of password_env"),
    ESC_CFG_STR("query", NULL, struct src_bluesky_cfg, query,
                "search query (Lucene-like: words, \"phrases\", #tag, from:handle)"),
    ESC_CFG_STR("lang", "", struct src_bluesky_cfg, lang,
                "only posts in this language (e.g. es), empty = any"),
    ESC_CFG_INT("limit", "100", 1, 100, struct src_bluesky_cfg, limit, "posts per request"),
    COL_API_CFG_MAP(struct src_bluesky_cfg, api, "60"),
    ESC_CFG_END,
};

static esc_rc
s_validate(const void *cfg, const char *path, struct esc_error *err)
{
    const struct src_bluesky_cfg *c = cfg;

    if (col_api_cfg_check(&c->api, path, err) != ESC_OK) {
        return ESC_INVALID;
    }
    if (c->password_env[0] == '\0' && c->password_file[0] == '\0') {
        esc_error_set(err, 0, "%s.password_env: set password_env or password_file (an app "
                      "password; Bluesky refuses anonymous search)", path);
        return ESC_INVALID;
    }
    if (c->query[0] == '\0') {
        esc_error_set(err, 0, "%s.query: must not be empty", path);
        return ESC_INVALID;
    }
    return ESC_OK;
}

static int
s_load(void *ctx, struct col_api *api, const char *cursor)
{
    struct s_bsky *b = ctx;

    b->cursor[0] = '\0';
    return col_sweep_load(&b->sweep, cursor);
}

static void
s_bearer(col_req_t *req, const char *jwt)
{
    char auth[S_JWT_MAX + 16];

    snprintf(auth, sizeof(auth), "Bearer %s", jwt);
    col_req_header(req, "Authorization", auth);
    memset(auth, 0, sizeof(auth));
}

static esc_rc
s_next(void *ctx, struct col_api *api, col_req_t **out)
{
    struct s_bsky *b = ctx;
    const struct src_bluesky_cfg *c = b->cfg;
    char url[S_URL_MAX];
    char num[32];
    int64_t bound;

    if (b->access[0] == '\0' || (b->need_refresh && b->refresh[0] == '\0')) {
        json_t *j = json_pack("{s:s, s:s}", "identifier", c->identifier, "password",
                              b->password);
        char body[1024];
        size_t n = json_dumpb(j, body, sizeof(body) - 1, JSON_COMPACT);

        json_decref(j);
        body[n < sizeof(body) ? n : 0] = '\0';
        snprintf(url, sizeof(url), "%s/xrpc/com.atproto.server.createSession", c->service);
        *out = col_api_req(api, url);
        col_req_post(*out, body, "application/json");
        memset(body, 0, sizeof(body));
        col_req_set_tag(*out, S_TAG_CREATE);
        return ESC_OK;
    }
    if (b->need_refresh) {
        snprintf(url, sizeof(url), "%s/xrpc/com.atproto.server.refreshSession", c->service);
        *out = col_api_req(api, url);
        col_req_post(*out, "", "application/json");
        s_bearer(*out, b->refresh);
        col_req_set_tag(*out, S_TAG_REFRESH);
        return ESC_OK;
    }
    snprintf(url, sizeof(url), "%s/xrpc/app.bsky.feed.searchPosts", c->service);
    col_url_add_param(url, sizeof(url), "q", c->query);
    col_url_add_param(url, sizeof(url), "sort", "latest");
    snprintf(num, sizeof(num), "%lld", (long long)c->limit);
    col_url_add_param(url, sizeof(url), "limit", num);
    if (c->lang[0] != '\0') {
        col_url_add_param(url, sizeof(url), "lang", c->lang);
    }
    bound = col_sweep_bound(&b->sweep, api);
    if (bound > 0) {
        char iso[40];

        esc_time_fmt_iso8601(bound, iso, sizeof(iso));
        col_url_add_param(url, sizeof(url), "since", iso);
    }
    if (b->cursor[0] != '\0') {
        col_url_add_param(url, sizeof(url), "cursor", b->cursor);
    }
    *out = col_api_req(api, url);
    s_bearer(*out, b->access);
    col_req_set_tag(*out, S_TAG_SEARCH);
    return ESC_OK;
}

static esc_rc
s_session(struct s_bsky *b, struct col_api *api, col_req_t *req, struct esc_error *err)
{
    size_t len;
    const char *body = col_req_body(req, &len);
    json_t *root = col_json_parse(body, len, err);
    const char *acc;
    const char *ref;

    if (root == NULL) {
        return ESC_INVALID;
    }
    acc = col_json_str(root, "accessJwt");
    ref = col_json_str(root, "refreshJwt");
    if (acc == NULL || ref == NULL || strlen(acc) >= S_JWT_MAX || strlen(ref) >= S_JWT_MAX) {
        json_decref(root);
        esc_error_set(err, 0, "session answer without accessJwt/refreshJwt");
        return ESC_INVALID;
    }
    esc_strlcpy(b->access, acc, sizeof(b->access));
    esc_strlcpy(b->refresh, ref, sizeof(b->refresh));
    b->need_refresh = 0;
    b->auth_tries++;
    esc_log_info("bluesky session %s source=%s handle=%s", col_req_tag(req) == S_TAG_CREATE
                 ? "created" : "refreshed", api->ins->name,
                 col_json_str(root, "handle") != NULL ? col_json_str(root, "handle") : "?");
    json_decref(root);
    return ESC_OK;
}

/* Adds the hashtags and mentions of the record's facets. Byte offsets index the UTF-8 text. */
static void
s_facets(const json_t *record, struct esc_post *post)
{
    const char *text = col_json_str(record, "text");
    size_t tlen = text != NULL ? strlen(text) : 0;
    const json_t *facets = json_object_get(record, "facets");
    const json_t *f;
    const json_t *feat;
    size_t i;
    size_t k;

    json_array_foreach(facets, i, f) {
        json_array_foreach(json_object_get(f, "features"), k, feat) {
            const char *type = col_json_str(feat, "$type");

            if (type == NULL) {
                continue;
            }
            if (strcmp(type, "app.bsky.richtext.facet#tag") == 0 && col_json_str(feat, "tag")) {
                esc_strlist_push(&post->hashtags, &post->n_hashtags, col_json_str(feat, "tag"));
            }
            else if (strcmp(type, "app.bsky.richtext.facet#mention") == 0) {
                int64_t a = col_json_int(f, "index.byteStart", -1);
                int64_t z = col_json_int(f, "index.byteEnd", -1);
                char handle[256];

                if (a >= 0 && z > a && (size_t)z <= tlen && (size_t)(z - a) < sizeof(handle)
                    && text[a] == '@') {
                    memcpy(handle, text + a + 1, (size_t)(z - a - 1));
                    handle[z - a - 1] = '\0';
                    esc_strlist_push(&post->mentions, &post->n_mentions, handle);
                }
                else if (col_json_str(feat, "did") != NULL) {
                    esc_strlist_push(&post->mentions, &post->n_mentions, col_json_str(feat, "did"));
                }
            }
        }
    }
}

static int
s_post(const json_t *pv, struct esc_post *post, const char **key, const char **why)
{
    const char *uri = col_json_str(pv, "uri");
    const json_t *record = json_object_get(pv, "record");
    const char *handle = col_json_str(pv, "author.handle");
    const char *created = col_json_str(record, "createdAt");
    const char *indexed = col_json_str(pv, "indexedAt");
    const json_t *langs = json_object_get(record, "langs");
    const char *rkey;
    int64_t t_idx;
    char url[512];

    if (uri == NULL || !json_is_object(record)) {
        *why = "post without uri or record";
        return -1;
    }
    if (created == NULL || col_time_parse_any(created, &post->created_at) != 0) {
        if (indexed == NULL || col_time_parse_any(indexed, &post->created_at) != 0) {
            *why = "post without a valid createdAt";
            return -1;
        }
    }
    /* createdAt is the client's claim: a clock in the future does not move time forward */
    if (indexed != NULL && col_time_parse_any(indexed, &t_idx) == 0 && t_idx < post->created_at) {
        post->created_at = t_idx;
    }
    *key = uri;
    post->id = esc_strdup(uri);
    post->text = esc_strdup(col_json_str(record, "text") != NULL ? col_json_str(record, "text")
                                                                 : "");
    col_set_str(&post->author, handle);
    col_set_str(&post->author_name, col_json_str(pv, "author.displayName"));
    if (json_is_array(langs) && json_is_string(json_array_get(langs, 0))) {
        col_set_str(&post->lang, json_string_value(json_array_get(langs, 0)));
    }
    rkey = strrchr(uri, '/');
    if (rkey != NULL && handle != NULL) {
        snprintf(url, sizeof(url), "https://bsky.app/profile/%s/post/%s", handle, rkey + 1);
        post->url = esc_strdup(url);
    }
    post->likes = col_json_int(pv, "likeCount", 0);
    if (__builtin_add_overflow(col_json_int(pv, "repostCount", 0),
                               col_json_int(pv, "quoteCount", 0), &post->reposts)) {
        post->reposts = INT64_MAX; /* absurd counts: saturate rather than overflow */
    }
    post->replies = col_json_int(pv, "replyCount", 0);
    s_facets(record, post);
    return 0;
}

static esc_rc
s_page(void *ctx, struct col_api *api, col_req_t *req, struct esc_error *err)
{
    struct s_bsky *b = ctx;
    size_t len;
    const char *body;
    json_t *root;
    json_t *posts;
    const char *cur;
    const char *key = NULL;
    const char *why = NULL;
    struct esc_post post;
    size_t i;
    esc_rc rc = ESC_OK;

    if (col_req_tag(req) != S_TAG_SEARCH) {
        return s_session(b, api, req, err);
    }
    b->auth_tries = 0;
    body = col_req_body(req, &len);
    root = col_json_parse(body, len, err);
    if (root == NULL) {
        return ESC_INVALID;
    }
    posts = json_object_get(root, "posts");
    if (!json_is_array(posts)) {
        json_decref(root);
        esc_error_set(err, 0, "expected an object with a posts array");
        return ESC_INVALID;
    }
    for (i = json_array_size(posts); i > 0 && rc == ESC_OK; i--) {
        esc_post_init(&post);
        if (s_post(json_array_get(posts, i - 1), &post, &key, &why) != 0) {
            api->ins->stats.skipped++;
            esc_log_warn("skipped bad post source=%s index=%zu reason=\"%s\"", api->ins->name,
                         i - 1, why);
        }
        else if (col_sweep_keep(&b->sweep, api, post.created_at)) {
            rc = col_api_emit(api, &post, key);
        }
        esc_post_fini(&post);
    }
    cur = col_json_str(root, "cursor");
    if (rc != ESC_CLOSED) {
        int more = cur != NULL && json_array_size(posts) > 0 && strlen(cur) < sizeof(b->cursor);

        if (col_sweep_page_done(&b->sweep, api, more)) {
            esc_strlcpy(b->cursor, cur, sizeof(b->cursor));
        }
        else {
            b->cursor[0] = '\0';
        }
    }
    json_decref(root);
    return rc;
}

static esc_rc
s_failed(void *ctx, struct col_api *api, col_req_t *req, int64_t *wait_ms)
{
    struct s_bsky *b = ctx;
    long status = col_req_status(req);
    size_t len;
    const char *body = col_req_body(req, &len);
    json_error_t je;
    json_t *root;
    const char *error;
    int expired;

    if (b->auth_tries >= S_AUTH_RETRIES || (status != 400 && status != 401)) {
        return ESC_ERR;
    }
    root = json_loadb(body, len, 0, &je);
    error = col_json_str(root, "error");
    expired = error != NULL && strcmp(error, "ExpiredToken") == 0;
    json_decref(root);
    *wait_ms = 0;
    if (col_req_tag(req) == S_TAG_SEARCH && expired) {
        b->need_refresh = 1;
        esc_log_info("bluesky access token expired, refreshing source=%s", api->ins->name);
        return ESC_OK;
    }
    if (col_req_tag(req) == S_TAG_REFRESH || (col_req_tag(req) == S_TAG_SEARCH && status == 401)) {
        /* refresh token expired too, or the session was revoked: start a new one */
        b->access[0] = '\0';
        b->refresh[0] = '\0';
        b->need_refresh = 0;
        b->auth_tries++;
        esc_log_info("bluesky session refused, creating a new one source=%s", api->ins->name);
        return ESC_OK;
    }
    return ESC_ERR; /* createSession refused: wrong identifier or app password */
}

static const struct col_api_ops s_ops = {
    .platform = "bluesky",
    .json = 1,
    .load = s_load,
    .next = s_next,
    .page = s_page,
    .failed = s_failed,
};

static int
s_init(struct col_source *ins)
{
    const struct src_bluesky_cfg *cfg = ins->cfg;
    struct s_bsky *b = esc_calloc(1, sizeof(*b));

    b->cfg = cfg;
    if (col_api_init(&b->api, ins, &cfg->api, &s_ops, b) != 0) {
        esc_free(b);
        return -1;
    }
    b->password = col_api_secret(&b->api, cfg->password_env, cfg->password_file,
                                 "bluesky app password");
    if (b->password == NULL) {
        esc_free(b);
        return -1;
    }
    ins->ctx = b;
    esc_log_info("polling bluesky source=%s service=%s identifier=%s query=\"%s\"", ins->name,
                 cfg->service, cfg->identifier, cfg->query);
    return 0;
}

static esc_rc
s_poll(struct col_source *ins, const struct col_emit *emit, size_t budget)
{
    struct s_bsky *b = ins->ctx;

    return col_api_poll(&b->api, emit);
}

static void
s_exit(struct col_source *ins)
{
    struct s_bsky *b = ins->ctx;

    if (b == NULL) {
        return;
    }
    col_api_fini(&b->api);
    memset(b->password, 0, strlen(b->password));
    esc_free(b->password);
    memset(b->access, 0, sizeof(b->access));
    memset(b->refresh, 0, sizeof(b->refresh));
    esc_free(b);
    ins->ctx = NULL;
}

const struct col_source_plugin src_bluesky_plugin = {
    .name = "bluesky",
    .description = "Bluesky posts matching a query (searchPosts with an app-password session)",
    .cfg_map = s_cfg_map,
    .cfg_size = sizeof(struct src_bluesky_cfg),
    .validate = s_validate,
    .init = s_init,
    .poll = s_poll,
    .exit = s_exit,
};
