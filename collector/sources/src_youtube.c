#define ESC_LOG_MODULE "youtube"
/* Source plugin "youtube": the YouTube Data API v3 with an API key, in one of two kinds:
 * "videos" (search.list, type=video, order=date, publishedAfter = the newest video of the
 * previous poll) or "comments" (commentThreads.list of one video or of a whole channel,
 * order=time, optionally filtered by searchTerms; the API has no "since", so the sweep stops at
 * the first comment older than the newest one already taken). Both page with pageToken and
 * sweep back to the previous poll's newest item (col_sweep). The API key travels in the URL as
 * key=..., which every logged URL shows as key=***. Quota is daily: a 403 quotaExceeded makes
 * the source wait for the reset (midnight Pacific; it waits until 08:00 UTC, which is never
 * earlier), a rateLimitExceeded backs off. Titles and comments arrive HTML-escaped or as HTML
 * and become plain text. search.list carries no statistics (videos.list would cost another
 * call per page), so videos have no engagement counts. Loop thread only. */
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
#define S_DAY_MS (24LL * 3600 * 1000)
#define S_RESET_UTC_MS (8LL * 3600 * 1000) /* 00:00 PST = 08:00 UTC */

struct src_youtube_cfg {
    char base_url[256];   /* https://www.googleapis.com */
    char key_env[128];
    char key_file[256];
    char kind[16];        /* videos | comments */
    char query[256];      /* videos: search words; comments: searchTerms filter */
    char video_id[64];    /* comments of this video */
    char channel_id[64];  /* or of every video of this channel */
    int64_t max_results;
    struct col_api_cfg api;
};

struct s_yt {
    const struct src_youtube_cfg *cfg;
    struct col_api api;
    struct col_sweep sweep;
    char *key;              /* owned */
    int comments;           /* kind == comments */
    char page_token[256];   /* "" = first page */
};

static const struct esc_cfg_entry s_cfg_map[] = {
    ESC_CFG_STR("base_url", "https://www.googleapis.com", struct src_youtube_cfg, base_url,
                "Google APIs host"),
    ESC_CFG_STR("key_env", "", struct src_youtube_cfg, key_env,
                "environment variable holding the API key"),
    ESC_CFG_STR("key_file", "", struct src_youtube_cfg, key_file,
                "file holding the API key (mode 600), instead of key_env"),
    ESC_CFG_STR("kind", "videos", struct src_youtube_cfg, kind,
                "videos (search.list by query) or comments (commentThreads of video_id or "
                "channel_id)"),
    ESC_CFG_STR("query", "", struct src_youtube_cfg, query,
                "videos: search words (| for OR, - for NOT); comments: keep only threads with "
                "these words"),
    ESC_CFG_STR("video_id", "", struct src_youtube_cfg, video_id,
                "comments: the video whose comment threads are collected"),
    ESC_CFG_STR("channel_id", "", struct src_youtube_cfg, channel_id,
                "comments: collect the threads of every video of this channel instead"),
    ESC_CFG_INT("max_results", "50", 1, 100, struct src_youtube_cfg, max_results,
                "items per request (search.list allows at most 50)"),
    COL_API_CFG_MAP(struct src_youtube_cfg, api, "900"),
    ESC_CFG_END,
};

static esc_rc
s_validate(const void *cfg, const char *path, struct esc_error *err)
{
    const struct src_youtube_cfg *c = cfg;

    if (col_api_cfg_check(&c->api, path, err) != ESC_OK) {
        return ESC_INVALID;
    }
    if (c->key_env[0] == '\0' && c->key_file[0] == '\0') {
        esc_error_set(err, 0, "%s.key_env: set key_env or key_file", path);
        return ESC_INVALID;
    }
    if (strcmp(c->kind, "videos") == 0) {
        if (c->query[0] == '\0') {
            esc_error_set(err, 0, "%s.query: required for kind videos", path);
            return ESC_INVALID;
        }
        if (c->max_results > 50) {
            esc_error_set(err, 0, "%s.max_results: search.list allows at most 50", path);
            return ESC_INVALID;
        }
        return ESC_OK;
    }
    if (strcmp(c->kind, "comments") == 0) {
        if ((c->video_id[0] == '\0') == (c->channel_id[0] == '\0')) {
            esc_error_set(err, 0, "%s.video_id: kind comments needs exactly one of video_id "
                          "and channel_id", path);
            return ESC_INVALID;
        }
        return ESC_OK;
    }
    esc_error_set(err, 0, "%s.kind: must be videos or comments", path);
    return ESC_INVALID;
}

static int
s_load(void *ctx, struct col_api *api, const char *cursor)
{
    struct s_yt *y = ctx;

    y->page_token[0] = '\0';
    return col_sweep_load(&y->sweep, cursor);
}

static esc_rc
s_next(void *ctx, struct col_api *api, col_req_t **out)
{
    struct s_yt *y = ctx;
    const struct src_youtube_cfg *c = y->cfg;
    char url[S_URL_MAX];
    char num[16];
    int64_t bound = col_sweep_bound(&y->sweep, api);

    snprintf(num, sizeof(num), "%lld", (long long)c->max_results);
    if (y->comments) {
        snprintf(url, sizeof(url), "%s/youtube/v3/commentThreads", c->base_url);
        col_url_add_param(url, sizeof(url), "part", "snippet");
        col_url_add_param(url, sizeof(url), "order", "time");
        col_url_add_param(url, sizeof(url), "textFormat", "html");
        col_url_add_param(url, sizeof(url), "maxResults", num);
        if (c->video_id[0] != '\0') {
            col_url_add_param(url, sizeof(url), "videoId", c->video_id);
        }
        else {
            col_url_add_param(url, sizeof(url), "allThreadsRelatedToChannelId", c->channel_id);
        }
        if (c->query[0] != '\0') {
            col_url_add_param(url, sizeof(url), "searchTerms", c->query);
        }
    }
    else {
        snprintf(url, sizeof(url), "%s/youtube/v3/search", c->base_url);
        col_url_add_param(url, sizeof(url), "part", "snippet");
        col_url_add_param(url, sizeof(url), "type", "video");
        col_url_add_param(url, sizeof(url), "order", "date");
        col_url_add_param(url, sizeof(url), "q", c->query);
        col_url_add_param(url, sizeof(url), "maxResults", num);
        if (bound > 0) {
            char iso[40];

            esc_time_fmt_iso8601(bound, iso, sizeof(iso));
            col_url_add_param(url, sizeof(url), "publishedAfter", iso);
        }
    }
    if (y->page_token[0] != '\0') {
        col_url_add_param(url, sizeof(url), "pageToken", y->page_token);
    }
    col_url_add_param(url, sizeof(url), "key", y->key);
    *out = col_api_req(api, url);
    return ESC_OK;
}

/* Plain text of an HTML-escaped or HTML field; "" when absent. Caller owns. */
static char *
s_plain(const char *s)
{
    return col_html_to_text(s, s != NULL ? strlen(s) : 0);
}

static int
s_video(const json_t *it, struct esc_post *post, const char **key, const char **why)
{
    const char *vid = col_json_str(it, "id.videoId");
    const char *published = col_json_str(it, "snippet.publishedAt");
    char *title;
    char *desc;
    char url[160];
    size_t n;

    if (vid == NULL || published == NULL || col_time_parse_any(published, &post->created_at) != 0) {
        *why = "search result without id.videoId or publishedAt";
        return -1;
    }
    *key = vid;
    post->id = esc_strdup(vid);
    title = s_plain(col_json_str(it, "snippet.title"));
    desc = s_plain(col_json_str(it, "snippet.description"));
    n = strlen(title) + strlen(desc) + 3;
    post->text = esc_malloc(n);
    snprintf(post->text, n, "%s%s%s", title, title[0] != '\0' && desc[0] != '\0' ? "\n\n" : "",
             desc);
    esc_free(title);
    esc_free(desc);
    col_set_str(&post->author, col_json_str(it, "snippet.channelTitle"));
    snprintf(url, sizeof(url), "https://www.youtube.com/watch?v=%s", vid);
    post->url = esc_strdup(url);
    return 0;
}

static int
s_comment(const json_t *it, struct esc_post *post, const char **key, const char **why)
{
    const json_t *c = col_json_get(it, "snippet.topLevelComment");
    const char *id = col_json_str(c, "id");
    const char *published = col_json_str(c, "snippet.publishedAt");
    const char *vid = col_json_str(c, "snippet.videoId");
    const char *html = col_json_str(c, "snippet.textDisplay");
    char url[256];

    if (id == NULL || published == NULL || col_time_parse_any(published, &post->created_at) != 0) {
        *why = "comment thread without topLevelComment id or publishedAt";
        return -1;
    }
    *key = id;
    post->id = esc_strdup(id);
    if (html == NULL) {
        html = col_json_str(c, "snippet.textOriginal");
    }
    post->text = s_plain(html);
    col_set_str(&post->author, col_json_str(c, "snippet.authorDisplayName"));
    post->likes = col_json_int(c, "snippet.likeCount", 0);
    post->replies = col_json_int(it, "snippet.totalReplyCount", 0);
    if (vid != NULL) {
        snprintf(url, sizeof(url), "https://www.youtube.com/watch?v=%s&lc=%s", vid, id);
        post->url = esc_strdup(url);
    }
    return 0;
}

static esc_rc
s_page(void *ctx, struct col_api *api, col_req_t *req, struct esc_error *err)
{
    struct s_yt *y = ctx;
    size_t len;
    const char *body = col_req_body(req, &len);
    json_t *root;
    json_t *items;
    const char *token;
    const char *key = NULL;
    const char *why = NULL;
    struct esc_post post;
    size_t i;
    int ok;
    esc_rc rc = ESC_OK;

    root = col_json_parse(body, len, err);
    if (root == NULL) {
        return ESC_INVALID;
    }
    items = json_object_get(root, "items");
    if (!json_is_array(items)) {
        json_decref(root);
        esc_error_set(err, 0, "expected an object with an items array");
        return ESC_INVALID;
    }
    for (i = json_array_size(items); i > 0 && rc == ESC_OK; i--) {
        esc_post_init(&post);
        if (y->comments) {
            ok = s_comment(json_array_get(items, i - 1), &post, &key, &why);
        }
        else {
            ok = s_video(json_array_get(items, i - 1), &post, &key, &why);
        }
        if (ok != 0) {
            api->ins->stats.skipped++;
            esc_log_warn("skipped bad item source=%s index=%zu reason=\"%s\"", api->ins->name,
                         i - 1, why);
        }
        else if (col_sweep_keep(&y->sweep, api, post.created_at)) {
            rc = col_api_emit(api, &post, key);
        }
        esc_post_fini(&post);
    }
    token = col_json_str(root, "nextPageToken");
    if (rc != ESC_CLOSED) {
        int more = token != NULL && strlen(token) < sizeof(y->page_token);

        if (col_sweep_page_done(&y->sweep, api, more)) {
            esc_strlcpy(y->page_token, token, sizeof(y->page_token));
        }
        else {
            y->page_token[0] = '\0';
        }
    }
    json_decref(root);
    return rc;
}

static esc_rc
s_failed(void *ctx, struct col_api *api, col_req_t *req, int64_t *wait_ms)
{
    size_t len;
    const char *body = col_req_body(req, &len);
    json_error_t je;
    json_t *root;
    const char *reason;
    int64_t now;
    int64_t reset;
    esc_rc rc = ESC_ERR;

    if (col_req_status(req) != 403) {
        return ESC_ERR;
    }
    root = json_loadb(body, len, 0, &je);
    reason = col_json_str(json_array_get(col_json_get(root, "error.errors"), 0), "reason");
    if (reason != NULL && strcmp(reason, "quotaExceeded") == 0) {
        now = esc_now_ms();
        reset = now - now % S_DAY_MS + S_RESET_UTC_MS;
        if (reset <= now) {
            reset += S_DAY_MS;
        }
        *wait_ms = reset - now;
        col_api_error(api);
        esc_log_warn("quota exceeded, waiting for the daily reset source=%s wait_ms=%lld "
                     "url=%s", api->ins->name, (long long)*wait_ms, col_req_log_url(req));
        rc = ESC_OK;
    }
    else if (reason != NULL && (strcmp(reason, "rateLimitExceeded") == 0
                                || strcmp(reason, "userRateLimitExceeded") == 0)) {
        rc = ESC_RETRY;
    }
    json_decref(root);
    return rc;
}

static const struct col_api_ops s_ops = {
    .platform = "youtube",
    .json = 1,
    .load = s_load,
    .next = s_next,
    .page = s_page,
    .failed = s_failed,
};

static int
s_init(struct col_source *ins)
{
    const struct src_youtube_cfg *cfg = ins->cfg;
    struct s_yt *y = esc_calloc(1, sizeof(*y));

    y->cfg = cfg;
    y->comments = strcmp(cfg->kind, "comments") == 0;
    if (col_api_init(&y->api, ins, &cfg->api, &s_ops, y) != 0) {
        esc_free(y);
        return -1;
    }
    y->key = col_api_secret(&y->api, cfg->key_env, cfg->key_file, "youtube api key");
    if (y->key == NULL) {
        esc_free(y);
        return -1;
    }
    ins->ctx = y;
    esc_log_info("polling youtube source=%s kind=%s query=\"%s\" video_id=%s channel_id=%s",
                 ins->name, cfg->kind, cfg->query, cfg->video_id, cfg->channel_id);
    return 0;
}

static esc_rc
s_poll(struct col_source *ins, const struct col_emit *emit, size_t budget)
{
    struct s_yt *y = ins->ctx;

    return col_api_poll(&y->api, emit);
}

static void
s_exit(struct col_source *ins)
{
    struct s_yt *y = ins->ctx;

    if (y == NULL) {
        return;
    }
    col_api_fini(&y->api);
    memset(y->key, 0, strlen(y->key));
    esc_free(y->key);
    esc_free(y);
    ins->ctx = NULL;
}

const struct col_source_plugin src_youtube_plugin = {
    .name = "youtube",
    .description = "YouTube videos matching a query, or the comment threads of a video or "
                   "channel (Data API v3, API key)",
    .cfg_map = s_cfg_map,
    .cfg_size = sizeof(struct src_youtube_cfg),
    .validate = s_validate,
    .init = s_init,
    .poll = s_poll,
    .exit = s_exit,
};
