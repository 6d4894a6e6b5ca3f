#define ESC_LOG_MODULE "x"
/* Source plugin "x": posts matching a query from the X API v2 recent search
 * (/2/tweets/search/recent, the last 7 days) with an app-only bearer token. Polling follows X's
 * recipe: send since_id = the newest id of the previous poll, page with next_token keeping the
 * same since_id, and take the next since_id from the first page's meta.newest_id once the poll
 * has paged to its end; since_id is the cursor kept in Redis. A first run without a cursor
 * takes the newest page, or with "since" starts at start_time (no earlier than 7 days ago).
 * Authors come from includes.users (expansions=author_id); long posts' full text from
 * note_tweet. X sends no Retry-After: api.c waits for x-rate-limit-reset (Unix seconds) on a
 * 429. Every post read is billed by X, so keep queries narrow. Loop thread only. */
#include <string.h>

#include "api.h"
#include "cjson.h"
#include "col_source.h"
#include "text.h"

#include "escucha/esc_log.h"
#include "escucha/esc_mem.h"
#include "escucha/esc_msg.h"
#include "escucha/esc_util.h"

#define S_URL_MAX 4096
#define S_ID_MAX 32
#define S_WINDOW_MS (7LL * 24 * 3600 * 1000 - 60000) /* recent search reaches 7 days back */

struct src_x_cfg {
    char base_url[256];    /* https://api.x.com */
    char query[512];       /* X search syntax, at most 512 characters */
    char bearer_env[128];
    char bearer_file[256];
    int64_t max_results;   /* 10..100 */
    struct col_api_cfg api;
};

struct s_x {
    const struct src_x_cfg *cfg;
    struct col_api api;
    char *bearer;               /* owned */
    char since_id[S_ID_MAX];    /* cursor, "" = none */
    char newest[S_ID_MAX];      /* newest id of this poll (first page), "" = not yet */
    char next_token[256];       /* "" = first page */
};

static const struct esc_cfg_entry s_cfg_map[] = {
    ESC_CFG_STR("base_url", "https://api.x.com", struct src_x_cfg, base_url, "X API host"),
    ESC_CFG_STR("query", NULL, struct src_x_cfg, query,
                "search query, e.g. (rust OR #rustlang) lang:es -is:retweet (max 512 chars)"),
    ESC_CFG_STR("bearer_env", "", struct src_x_cfg, bearer_env,
                "environment variable holding the app's bearer token"),
    ESC_CFG_STR("bearer_file", "", struct src_x_cfg, bearer_file,
                "file holding the bearer token (mode 600), instead of bearer_env"),
    ESC_CFG_INT("max_results", "100", 10, 100, struct src_x_cfg, max_results,
                "posts per request (each one is billed)"),
    COL_API_CFG_MAP(struct src_x_cfg, api, "300"),
    ESC_CFG_END,
};

static esc_rc
s_validate(const void *cfg, const char *path, struct esc_error *err)
{
    const struct src_x_cfg *c = cfg;

    if (col_api_cfg_check(&c->api, path, err) != ESC_OK) {
        return ESC_INVALID;
    }
    if (c->bearer_env[0] == '\0' && c->bearer_file[0] == '\0') {
        esc_error_set(err, 0, "%s.bearer_env: set bearer_env or bearer_file", path);
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
    struct s_x *x = ctx;
    int64_t v;

    x->since_id[0] = '\0';
    x->newest[0] = '\0';
    x->next_token[0] = '\0';
    if (cursor == NULL) {
        return 0;
    }
    if (esc_parse_i64(cursor, 1, INT64_MAX, &v) != 0 || strlen(cursor) >= sizeof(x->since_id)) {
        return -1;
    }
    esc_strlcpy(x->since_id, cursor, sizeof(x->since_id));
    return 0;
}

static esc_rc
s_next(void *ctx, struct col_api *api, col_req_t **out)
{
    struct s_x *x = ctx;
    char url[S_URL_MAX];
    char auth[1100];
    char num[16];

    snprintf(url, sizeof(url), "%s/2/tweets/search/recent", x->cfg->base_url);
    col_url_add_param(url, sizeof(url), "query", x->cfg->query);
    snprintf(num, sizeof(num), "%lld", (long long)x->cfg->max_results);
    col_url_add_param(url, sizeof(url), "max_results", num);
    col_url_add_param(url, sizeof(url), "tweet.fields",
            "created_at,lang,public_metrics,entities,author_id,conversation_id,note_tweet");
    col_url_add_param(url, sizeof(url), "expansions", "author_id");
    col_url_add_param(url, sizeof(url), "user.fields", "username,name,public_metrics");
    if (x->since_id[0] != '\0') {
        col_url_add_param(url, sizeof(url), "since_id", x->since_id);
    }
    else if (api->since_ms > 0) {
        int64_t from = api->since_ms;
        char iso[40];

        if (from < esc_now_ms() - S_WINDOW_MS) {
            from = esc_now_ms() - S_WINDOW_MS;
        }
        esc_time_fmt_iso8601(from, iso, sizeof(iso));
        col_url_add_param(url, sizeof(url), "start_time", iso);
    }
    if (x->next_token[0] != '\0') {
        col_url_add_param(url, sizeof(url), "next_token", x->next_token);
    }
    *out = col_api_req(api, url);
    snprintf(auth, sizeof(auth), "Bearer %s", x->bearer);
    col_req_header(*out, "Authorization", auth);
    memset(auth, 0, sizeof(auth));
    return ESC_OK;
}

/* The user object of author_id in includes.users, or NULL. Borrowed. */
static const json_t *
s_user(const json_t *root, const char *author_id)
{
    const json_t *users = col_json_get(root, "includes.users");
    const json_t *u;
    size_t i;

    if (author_id == NULL) {
        return NULL;
    }
    json_array_foreach(users, i, u) {
        const char *id = col_json_str(u, "id");

        if (id != NULL && strcmp(id, author_id) == 0) {
            return u;
        }
    }
    return NULL;
}

static int
s_tweet(const json_t *root, const json_t *t, struct esc_post *post, const char **why)
{
    const char *id = col_json_str(t, "id");
    const char *text = col_json_str(t, "note_tweet.text");
    const char *lang = col_json_str(t, "lang");
    const json_t *user = s_user(root, col_json_str(t, "author_id"));
    const char *username = col_json_str(user, "username");
    const json_t *v;
    char buf[256];
    size_t i;

    if (id == NULL || col_json_str(t, "created_at") == NULL
        || col_time_parse_any(col_json_str(t, "created_at"), &post->created_at) != 0) {
        *why = "post without id or created_at";
        return -1;
    }
    post->id = esc_strdup(id);
    if (text == NULL) {
        text = col_json_str(t, "text");
    }
    post->text = esc_strdup(text != NULL ? text : "");
    if (lang != NULL && strcmp(lang, "und") != 0) {
        post->lang = esc_strdup(lang);
    }
    if (username != NULL) {
        snprintf(buf, sizeof(buf), "@%s", username);
        post->author = esc_strdup(buf);
        snprintf(buf, sizeof(buf), "https://x.com/%s/status/%s", username, id);
        post->url = esc_strdup(buf);
    }
    else {
        snprintf(buf, sizeof(buf), "https://x.com/i/web/status/%s", id);
        post->url = esc_strdup(buf);
    }
    col_set_str(&post->author_name, col_json_str(user, "name"));
    post->followers = col_json_int(user, "public_metrics.followers_count", 0);
    post->likes = col_json_int(t, "public_metrics.like_count", 0);
    if (__builtin_add_overflow(col_json_int(t, "public_metrics.retweet_count", 0),
                               col_json_int(t, "public_metrics.quote_count", 0),
                               &post->reposts)) {
        post->reposts = INT64_MAX; /* absurd counts: saturate rather than overflow */
    }
    post->replies = col_json_int(t, "public_metrics.reply_count", 0);
    json_array_foreach(col_json_get(t, "entities.hashtags"), i, v) {
        if (col_json_str(v, "tag") != NULL) {
            esc_strlist_push(&post->hashtags, &post->n_hashtags, col_json_str(v, "tag"));
        }
    }
    json_array_foreach(col_json_get(t, "entities.mentions"), i, v) {
        if (col_json_str(v, "username") != NULL) {
            esc_strlist_push(&post->mentions, &post->n_mentions, col_json_str(v, "username"));
        }
    }
    return 0;
}

static esc_rc
s_page(void *ctx, struct col_api *api, col_req_t *req, struct esc_error *err)
{
    struct s_x *x = ctx;
    size_t len;
    const char *body = col_req_body(req, &len);
    json_t *root;
    json_t *data;
    const char *newest;
    const char *next;
    const char *why = NULL;
    struct esc_post post;
    size_t i;
    int positioned = x->since_id[0] != '\0' || api->since_ms > 0;
    esc_rc rc = ESC_OK;

    root = col_json_parse(body, len, err);
    if (root == NULL) {
        return ESC_INVALID;
    }
    if (!json_is_object(json_object_get(root, "meta"))) {
        json_decref(root);
        esc_error_set(err, 0, "expected an object with meta");
        return ESC_INVALID;
    }
    data = json_object_get(root, "data"); /* absent when nothing matched */
    for (i = json_array_size(data); i > 0 && rc == ESC_OK; i--) {
        esc_post_init(&post);
        if (s_tweet(root, json_array_get(data, i - 1), &post, &why) != 0) {
            api->ins->stats.skipped++;
            esc_log_warn("skipped bad post source=%s index=%zu reason=\"%s\"", api->ins->name,
                         i - 1, why);
        }
        else {
            rc = col_api_emit(api, &post, post.id);
        }
        esc_post_fini(&post);
    }
    if (rc == ESC_CLOSED) {
        json_decref(root);
        return ESC_CLOSED;
    }
    newest = col_json_str(root, "meta.newest_id");
    if (x->newest[0] == '\0' && newest != NULL && strlen(newest) < sizeof(x->newest)) {
        esc_strlcpy(x->newest, newest, sizeof(x->newest)); /* from the first page */
    }
    next = col_json_str(root, "meta.next_token");
    if (positioned && next != NULL && strlen(next) < sizeof(x->next_token)) {
        esc_strlcpy(x->next_token, next, sizeof(x->next_token));
    }
    else {
        if (x->newest[0] != '\0'
            && (x->since_id[0] == '\0' || col_id_cmp(x->newest, x->since_id) > 0)) {
            esc_strlcpy(x->since_id, x->newest, sizeof(x->since_id));
            col_api_cursor_save(api, x->since_id);
        }
        x->newest[0] = '\0';
        x->next_token[0] = '\0';
        col_api_cycle_done(api);
    }
    json_decref(root);
    return ESC_OK;
}

static const struct col_api_ops s_ops = {
    .platform = "x",
    .json = 1,
    .load = s_load,
    .next = s_next,
    .page = s_page,
    .failed = NULL,
};

static int
s_init(struct col_source *ins)
{
    const struct src_x_cfg *cfg = ins->cfg;
    struct s_x *x = esc_calloc(1, sizeof(*x));

    x->cfg = cfg;
    if (col_api_init(&x->api, ins, &cfg->api, &s_ops, x) != 0) {
        esc_free(x);
        return -1;
    }
    x->bearer = col_api_secret(&x->api, cfg->bearer_env, cfg->bearer_file, "x bearer token");
    if (x->bearer == NULL) {
        esc_free(x);
        return -1;
    }
    ins->ctx = x;
    esc_log_info("polling x recent search source=%s query=\"%s\"", ins->name, cfg->query);
    return 0;
}

static esc_rc
s_poll(struct col_source *ins, const struct col_emit *emit, size_t budget)
{
    struct s_x *x = ins->ctx;

    return col_api_poll(&x->api, emit);
}

static void
s_exit(struct col_source *ins)
{
    struct s_x *x = ins->ctx;

    if (x == NULL) {
        return;
    }
    col_api_fini(&x->api);
    memset(x->bearer, 0, strlen(x->bearer));
    esc_free(x->bearer);
    esc_free(x);
    ins->ctx = NULL;
}

const struct col_source_plugin src_x_plugin = {
    .name = "x",
    .description = "X (Twitter) API v2 recent search with an app-only bearer token",
    .cfg_map = s_cfg_map,
    .cfg_size = sizeof(struct src_x_cfg),
    .validate = s_validate,
    .init = s_init,
    .poll = s_poll,
    .exit = s_exit,
};
