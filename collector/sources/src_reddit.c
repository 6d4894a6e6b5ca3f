#define ESC_LOG_MODULE "reddit"
/* Source plugin "reddit": new posts of subreddits (/r/{sub}/new), a search (/search or
 * /r/{sub}/search with restrict_sr, sort=new) or both, through Reddit's OAuth API with an
 * app-only token (client credentials grant, HTTP Basic client_id:secret against
 * /api/v1/access_token; renewed a minute before it expires and at once after a 401). Reddit
 * insists on a unique, descriptive User-Agent, so the default one is refused at start-up.
 * Listings are newest first and paged with `after` (fullnames); each poll sweeps back to the
 * newest post of the previous poll (col_sweep), the post's fullname is the dedupe key and
 * created_utc the event time. raw_json=1 keeps <, > and & unescaped. Rate limits come in
 * X-Ratelimit-* headers (Reset = seconds left), handled by api.c. Loop thread only. */
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
#define S_TAG_TOKEN 1
#define S_TAG_LIST 2
#define S_RENEW_EARLY_MS 60000
#define S_TS_MAX 253402300799.0          /* 9999-12-31T23:59:59Z: a later created_utc is bad */
#define S_TOKEN_TTL_MAX (366LL * 86400)  /* expires_in (s) above this, or <= 0: taken as 3600 */
#define S_AUTH_RETRIES 2

struct src_reddit_cfg {
    char auth_url[256];           /* https://www.reddit.com */
    char api_url[256];            /* https://oauth.reddit.com */
    char client_id[128];
    char client_secret_env[128];
    char client_secret_file[256];
    char subreddit[256];          /* "rust" or "rust+golang", "" = all of Reddit */
    char query[256];              /* "" = newest posts of the subreddit */
    int64_t limit;                /* 1..100 */
    struct col_api_cfg api;
};

struct s_reddit {
    const struct src_reddit_cfg *cfg;
    struct col_api api;
    struct col_sweep sweep;
    char *secret;            /* client secret; owned */
    char token[2048];        /* bearer token, "" = none */
    int64_t token_until;     /* monotonic ms after which it is renewed */
    int auth_drops;          /* tokens refused in a row */
    char after[64];          /* next page of the sweep, "" = from the newest */
};

static const struct esc_cfg_entry s_cfg_map[] = {
    ESC_CFG_STR("auth_url", "https://www.reddit.com", struct src_reddit_cfg, auth_url,
                "where app-only tokens are issued (/api/v1/access_token)"),
    ESC_CFG_STR("api_url", "https://oauth.reddit.com", struct src_reddit_cfg, api_url,
                "the OAuth API host"),
    ESC_CFG_STR("client_id", NULL, struct src_reddit_cfg, client_id,
                "client id of the Reddit app (reddit.com/prefs/apps)"),
    ESC_CFG_STR("client_secret_env", "", struct src_reddit_cfg, client_secret_env,
                "environment variable holding the app's secret"),
    ESC_CFG_STR("client_secret_file", "", struct src_reddit_cfg, client_secret_file,
                "file holding the app's secret (mode 600), instead of client_secret_env"),
    ESC_CFG_STR("subreddit", "", struct src_reddit_cfg, subreddit,
                "subreddit without r/ (several joined with +); with query: search inside it"),
    ESC_CFG_STR("query", "", struct src_reddit_cfg, query,
                "search words (Reddit search syntax); empty: the subreddit's new posts"),
    ESC_CFG_INT("limit", "100", 1, 100, struct src_reddit_cfg, limit, "posts per request"),
    COL_API_CFG_MAP(struct src_reddit_cfg, api, "60"),
    ESC_CFG_END,
};

static esc_rc
s_validate(const void *cfg, const char *path, struct esc_error *err)
{
    const struct src_reddit_cfg *c = cfg;

    if (col_api_cfg_check(&c->api, path, err) != ESC_OK) {
        return ESC_INVALID;
    }
    if (c->subreddit[0] == '\0' && c->query[0] == '\0') {
        esc_error_set(err, 0, "%s.subreddit: set subreddit, query or both", path);
        return ESC_INVALID;
    }
    if (strcmp(c->api.user_agent, COL_API_UA_DEFAULT) == 0) {
        esc_error_set(err, 0, "%s.user_agent: Reddit requires your own, e.g. "
                      "\"linux:org.example.listener:v1.0 (by /u/yourname)\"", path);
        return ESC_INVALID;
    }
    if (c->client_secret_env[0] == '\0' && c->client_secret_file[0] == '\0') {
        esc_error_set(err, 0, "%s.client_secret_env: set client_secret_env or "
                      "client_secret_file", path);
        return ESC_INVALID;
    }
    return ESC_OK;
}

static int
s_load(void *ctx, struct col_api *api, const char *cursor)
{
    struct s_reddit *rd = ctx;

    rd->after[0] = '\0';
    return col_sweep_load(&rd->sweep, cursor);
}

static esc_rc
s_next(void *ctx, struct col_api *api, col_req_t **out)
{
    struct s_reddit *rd = ctx;
    const struct src_reddit_cfg *c = rd->cfg;
    char url[S_URL_MAX];
    char auth[2100];
    char limit[16];

    if (rd->token[0] == '\0' || esc_mono_ms() >= rd->token_until) {
        snprintf(url, sizeof(url), "%s/api/v1/access_token", c->auth_url);
        *out = col_api_req(api, url);
        col_req_basic_auth(*out, c->client_id, rd->secret);
        col_req_post(*out, "grant_type=client_credentials", "application/x-www-form-urlencoded");
        col_req_set_tag(*out, S_TAG_TOKEN);
        return ESC_OK;
    }
    if (c->query[0] != '\0' && c->subreddit[0] != '\0') {
        snprintf(url, sizeof(url), "%s/r/%s/search", c->api_url, c->subreddit);
        col_url_add_param(url, sizeof(url), "q", c->query);
        col_url_add_param(url, sizeof(url), "restrict_sr", "1");
        col_url_add_param(url, sizeof(url), "sort", "new");
    }
    else if (c->query[0] != '\0') {
        snprintf(url, sizeof(url), "%s/search", c->api_url);
        col_url_add_param(url, sizeof(url), "q", c->query);
        col_url_add_param(url, sizeof(url), "sort", "new");
        col_url_add_param(url, sizeof(url), "type", "link");
    }
    else {
        snprintf(url, sizeof(url), "%s/r/%s/new", c->api_url, c->subreddit);
    }
    snprintf(limit, sizeof(limit), "%lld", (long long)c->limit);
    col_url_add_param(url, sizeof(url), "limit", limit);
    col_url_add_param(url, sizeof(url), "raw_json", "1");
    if (rd->after[0] != '\0') {
        col_url_add_param(url, sizeof(url), "after", rd->after);
    }
    *out = col_api_req(api, url);
    snprintf(auth, sizeof(auth), "bearer %s", rd->token);
    col_req_header(*out, "Authorization", auth);
    memset(auth, 0, sizeof(auth));
    col_req_set_tag(*out, S_TAG_LIST);
    return ESC_OK;
}

static esc_rc
s_token(struct s_reddit *rd, struct col_api *api, col_req_t *req, struct esc_error *err)
{
    size_t len;
    const char *body = col_req_body(req, &len);
    json_t *root = col_json_parse(body, len, err);
    const char *tok;
    int64_t ttl;

    if (root == NULL) {
        return ESC_INVALID;
    }
    tok = col_json_str(root, "access_token");
    if (tok == NULL || strlen(tok) >= sizeof(rd->token)) {
        const char *e = col_json_str(root, "error");

        esc_error_set(err, 0, "token answer without access_token%s%.60s", e != NULL ? ": " : "",
                      e != NULL ? e : "");
        json_decref(root);
        return ESC_INVALID;
    }
    esc_strlcpy(rd->token, tok, sizeof(rd->token));
    ttl = col_json_int(root, "expires_in", 3600);
    ttl = (ttl > 0 && ttl <= S_TOKEN_TTL_MAX ? ttl : 3600) * 1000;
    rd->token_until = esc_mono_ms()
                      + (ttl > 2 * S_RENEW_EARLY_MS ? ttl - S_RENEW_EARLY_MS : ttl / 2);
    json_decref(root);
    esc_log_info("reddit token obtained source=%s expires_s=%lld", api->ins->name,
                 (long long)(ttl / 1000));
    return ESC_OK;
}

static int
s_child(const json_t *child, struct esc_post *post, const char **key, const char **why)
{
    const json_t *d = json_object_get(child, "data");
    const char *name = col_json_str(d, "name");
    const char *title = col_json_str(d, "title");
    const char *self = col_json_str(d, "selftext");
    const char *author = col_json_str(d, "author");
    const char *permalink = col_json_str(d, "permalink");
    double created = col_json_num(d, "created_utc", -1);
    char buf[512];
    size_t n;

    if (name == NULL || !(created >= 0 && created <= S_TS_MAX)) { /* NaN fails too */
        *why = "listing child without name or created_utc";
        return -1;
    }
    post->id = esc_strdup(name);
    *key = name;
    post->created_at = (int64_t)(created * 1000.0);
    if (title == NULL) {
        title = col_json_str(d, "link_title"); /* comments */
    }
    if (self == NULL) {
        self = col_json_str(d, "body");
    }
    n = (title != NULL ? strlen(title) : 0) + (self != NULL ? strlen(self) : 0) + 3;
    post->text = esc_malloc(n);
    snprintf(post->text, n, "%s%s%s", title != NULL ? title : "",
             title != NULL && self != NULL && self[0] != '\0' ? "\n\n" : "",
             self != NULL ? self : "");
    if (author != NULL) {
        snprintf(buf, sizeof(buf), "u/%s", author);
        post->author = esc_strdup(buf);
    }
    if (permalink != NULL) {
        snprintf(buf, sizeof(buf), "https://www.reddit.com%s", permalink);
        post->url = esc_strdup(buf);
    }
    post->likes = col_json_int(d, "score", 0);
    post->replies = col_json_int(d, "num_comments", 0);
    return 0;
}

static esc_rc
s_page(void *ctx, struct col_api *api, col_req_t *req, struct esc_error *err)
{
    struct s_reddit *rd = ctx;
    size_t len;
    const char *body;
    json_t *root;
    json_t *children;
    const char *after;
    const char *key = NULL;
    const char *why = NULL;
    struct esc_post post;
    size_t i;
    esc_rc rc = ESC_OK;

    if (col_req_tag(req) == S_TAG_TOKEN) {
        return s_token(rd, api, req, err);
    }
    rd->auth_drops = 0;
    body = col_req_body(req, &len);
    root = col_json_parse(body, len, err);
    if (root == NULL) {
        return ESC_INVALID;
    }
    children = col_json_get(root, "data.children");
    if (!json_is_array(children)) {
        json_decref(root);
        esc_error_set(err, 0, "expected a Listing with data.children");
        return ESC_INVALID;
    }
    for (i = json_array_size(children); i > 0 && rc == ESC_OK; i--) {
        esc_post_init(&post);
        if (s_child(json_array_get(children, i - 1), &post, &key, &why) != 0) {
            api->ins->stats.skipped++;
            esc_log_warn("skipped bad post source=%s index=%zu reason=\"%s\"", api->ins->name,
                         i - 1, why);
        }
        else if (col_sweep_keep(&rd->sweep, api, post.created_at)) {
            rc = col_api_emit(api, &post, key);
        }
        esc_post_fini(&post);
    }
    after = col_json_str(root, "data.after");
    if (rc != ESC_CLOSED) {
        int more = after != NULL && strlen(after) < sizeof(rd->after);

        if (col_sweep_page_done(&rd->sweep, api, more)) {
            esc_strlcpy(rd->after, after, sizeof(rd->after));
        }
        else {
            rd->after[0] = '\0';
        }
    }
    json_decref(root);
    return rc;
}

static esc_rc
s_failed(void *ctx, struct col_api *api, col_req_t *req, int64_t *wait_ms)
{
    struct s_reddit *rd = ctx;

    if (col_req_tag(req) == S_TAG_LIST && col_req_status(req) == 401
        && rd->auth_drops < S_AUTH_RETRIES) {
        /* expired or revoked: a new token, then the same page again */
        rd->auth_drops++;
        rd->token[0] = '\0';
        esc_log_info("reddit token refused, getting a new one source=%s", api->ins->name);
        *wait_ms = 0;
        return ESC_OK;
    }
    return ESC_ERR;
}

static const struct col_api_ops s_ops = {
    .platform = "reddit",
    .json = 1,
    .load = s_load,
    .next = s_next,
    .page = s_page,
    .failed = s_failed,
};

static int
s_init(struct col_source *ins)
{
    const struct src_reddit_cfg *cfg = ins->cfg;
    struct s_reddit *rd = esc_calloc(1, sizeof(*rd));

    rd->cfg = cfg;
    if (col_api_init(&rd->api, ins, &cfg->api, &s_ops, rd) != 0) {
        esc_free(rd);
        return -1;
    }
    rd->secret = col_api_secret(&rd->api, cfg->client_secret_env, cfg->client_secret_file,
                                "reddit client secret");
    if (rd->secret == NULL) {
        esc_free(rd);
        return -1;
    }
    ins->ctx = rd;
    esc_log_info("polling reddit source=%s subreddit=%s query=\"%s\"", ins->name, cfg->subreddit,
                 cfg->query);
    return 0;
}

static esc_rc
s_poll(struct col_source *ins, const struct col_emit *emit, size_t budget)
{
    struct s_reddit *rd = ins->ctx;

    return col_api_poll(&rd->api, emit);
}

static void
s_exit(struct col_source *ins)
{
    struct s_reddit *rd = ins->ctx;

    if (rd == NULL) {
        return;
    }
    col_api_fini(&rd->api);
    memset(rd->secret, 0, strlen(rd->secret));
    esc_free(rd->secret);
    memset(rd->token, 0, sizeof(rd->token));
    esc_free(rd);
    ins->ctx = NULL;
}

const struct col_source_plugin src_reddit_plugin = {
    .name = "reddit",
    .description = "Reddit posts of subreddits or a search, via the OAuth API (app-only token)",
    .cfg_map = s_cfg_map,
    .cfg_size = sizeof(struct src_reddit_cfg),
    .validate = s_validate,
    .init = s_init,
    .poll = s_poll,
    .exit = s_exit,
};
