#define ESC_LOG_MODULE "hn"
/* Source plugin "hn": Hacker News stories and comments matching a query, from the Algolia HN
 * Search API (search_by_date, newest first, no credentials). Collection moves forward on
 * created_at_i: each poll is a sweep over numericFilters=created_at_i>=<cursor>, paging until
 * the last page; then the cursor (Unix seconds, kept in Redis) becomes the newest created_at_i
 * seen. Using >= and deduplicating by objectID means posts from the same second are never lost
 * and never sent twice; a sweep cut short by a restart is simply run again. The index only lets
 * a query reach its first 1000 hits, so when a sweep ends with hits unreachable the window is
 * narrowed (created_at_i<=oldest seen) and swept again until it fits. Without a cursor the
 * first poll takes the newest page only; "since" starts the first sweep at that date. HTML in
 * story_text / comment_text becomes plain text. Loop thread only. */
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
#define S_TS_MAX INT64_C(253402300799) /* 9999-12-31T23:59:59Z: later created_at_i is bad */
#define S_PER_PAGE_MAX 1000            /* Algolia's largest hitsPerPage */

struct src_hn_cfg {
    char base_url[256];    /* https://hn.algolia.com */
    char query[256];       /* search words */
    char tags[128];        /* Algolia tags filter, e.g. (story,comment) */
    int64_t hits_per_page; /* 1..1000 */
    struct col_api_cfg api;
};

struct s_hn {
    const struct src_hn_cfg *cfg;
    struct col_api api;
    int64_t lo;        /* cursor: sweeps start at created_at_i >= lo; -1 = none yet */
    int64_t hi;        /* upper bound of a narrowed sweep (inclusive), 0 = none */
    int64_t page;      /* next page of the sweep */
    int64_t sweep_max; /* newest created_at_i seen in this sweep */
    int64_t sweep_min; /* oldest created_at_i seen in this window */
};

static const struct esc_cfg_entry s_cfg_map[] = {
    ESC_CFG_STR("base_url", "https://hn.algolia.com", struct src_hn_cfg, base_url,
                "Algolia HN Search API host"),
    ESC_CFG_STR("query", "", struct src_hn_cfg, query,
                "words to search for in titles, texts, URLs and authors"),
    ESC_CFG_STR("tags", "(story,comment)", struct src_hn_cfg, tags,
                "Algolia tags filter: story, comment, show_hn, ask_hn, author_NAME, ...; "
                "(a,b) means a or b"),
    ESC_CFG_INT("hits_per_page", "100", 1, 1000, struct src_hn_cfg, hits_per_page,
                "hits per request"),
    COL_API_CFG_MAP(struct src_hn_cfg, api, "120"),
    ESC_CFG_END,
};

static esc_rc
s_validate(const void *cfg, const char *path, struct esc_error *err)
{
    const struct src_hn_cfg *c = cfg;

    if (col_api_cfg_check(&c->api, path, err) != ESC_OK) {
        return ESC_INVALID;
    }
    if (c->query[0] == '\0' && c->tags[0] == '\0') {
        esc_error_set(err, 0, "%s.query: set query or tags (otherwise every post of HN matches)",
                      path);
        return ESC_INVALID;
    }
    if (strncmp(c->base_url, "http://", 7) != 0 && strncmp(c->base_url, "https://", 8) != 0) {
        esc_error_set(err, 0, "%s.base_url: must be an http:// or https:// URL", path);
        return ESC_INVALID;
    }
    return ESC_OK;
}

static void
s_sweep_reset(struct s_hn *h)
{
    h->hi = 0;
    h->page = 0;
    h->sweep_max = 0;
    h->sweep_min = INT64_MAX;
}

static int
s_load(void *ctx, struct col_api *api, const char *cursor)
{
    struct s_hn *h = ctx;
    int64_t v;
    int rc = 0;

    s_sweep_reset(h);
    h->lo = -1;
    if (cursor != NULL) {
        if (esc_parse_i64(cursor, 0, INT64_MAX, &v) == 0) {
            h->lo = v;
            return 0;
        }
        rc = -1;
    }
    if (api->since_ms > 0) {
        h->lo = api->since_ms / 1000;
    }
    return rc;
}

/* Appends "&key=escaped(value)". */
static esc_rc
s_next(void *ctx, struct col_api *api, col_req_t **out)
{
    struct s_hn *h = ctx;
    char url[S_URL_MAX];
    char num[128];

    snprintf(url, sizeof(url), "%s/api/v1/search_by_date", h->cfg->base_url);
    if (h->cfg->query[0] != '\0') {
        col_url_add_param(url, sizeof(url), "query", h->cfg->query);
    }
    if (h->cfg->tags[0] != '\0') {
        col_url_add_param(url, sizeof(url), "tags", h->cfg->tags);
    }
    snprintf(num, sizeof(num), "%lld", (long long)h->cfg->hits_per_page);
    col_url_add_param(url, sizeof(url), "hitsPerPage", num);
    snprintf(num, sizeof(num), "%lld", (long long)h->page);
    col_url_add_param(url, sizeof(url), "page", num);
    if (h->lo >= 0) {
        if (h->hi > 0) {
            snprintf(num, sizeof(num), "created_at_i>=%lld,created_at_i<=%lld",
                     (long long)h->lo, (long long)h->hi);
        }
        else {
            snprintf(num, sizeof(num), "created_at_i>=%lld", (long long)h->lo);
        }
        col_url_add_param(url, sizeof(url), "numericFilters", num);
    }
    *out = col_api_req(api, url);
    return ESC_OK;
}

/* Maps one hit onto post; returns 0, or -1 with *why. */
static int
s_hit(const json_t *hit, struct esc_post *post, int64_t *ts, const char **why)
{
    const char *id = col_json_str(hit, "objectID");
    const char *title = col_json_str(hit, "title");
    const char *html = col_json_str(hit, "comment_text");
    char url[128];
    char *text;
    size_t n;

    if (id == NULL) {
        *why = "hit without objectID";
        return -1;
    }
    *ts = col_json_int(hit, "created_at_i", -1);
    if (*ts < 0) {
        if (col_json_str(hit, "created_at") == NULL
            || col_time_parse_any(col_json_str(hit, "created_at"), &post->created_at) != 0) {
            *why = "hit without created_at_i";
            return -1;
        }
        *ts = post->created_at / 1000;
    }
    if (*ts > S_TS_MAX) {
        *why = "hit with created_at_i out of range";
        return -1;
    }
    post->created_at = *ts * 1000;
    post->id = esc_strdup(id);
    if (html == NULL) {
        html = col_json_str(hit, "story_text");
    }
    text = col_html_to_text(html, html != NULL ? strlen(html) : 0);
    if (title != NULL && title[0] != '\0') {
        n = strlen(title) + strlen(text) + 3;
        post->text = esc_malloc(n);
        snprintf(post->text, n, "%s%s%s", title, text[0] != '\0' ? "\n\n" : "", text);
        esc_free(text);
    }
    else {
        post->text = text;
    }
    col_set_str(&post->author, col_json_str(hit, "author"));
    snprintf(url, sizeof(url), "https://news.ycombinator.com/item?id=%s", id);
    post->url = esc_strdup(url);
    post->likes = col_json_int(hit, "points", 0);
    post->replies = col_json_int(hit, "num_comments", 0);
    return 0;
}

static esc_rc
s_page(void *ctx, struct col_api *api, col_req_t *req, struct esc_error *err)
{
    struct s_hn *h = ctx;
    size_t len;
    const char *body = col_req_body(req, &len);
    json_t *root;
    json_t *hits;
    struct esc_post post;
    const char *why = NULL;
    int64_t ts;
    int64_t nb_pages;
    int64_t nb_hits;
    int64_t per_page;
    int64_t max = h->sweep_max;
    int64_t min = h->sweep_min;
    size_t n;
    size_t i;
    esc_rc rc = ESC_OK;

    root = col_json_parse(body, len, err);
    if (root == NULL) {
        return ESC_INVALID;
    }
    hits = json_object_get(root, "hits");
    if (!json_is_array(hits)) {
        json_decref(root);
        esc_error_set(err, 0, "expected an object with a hits array");
        return ESC_INVALID;
    }
    n = json_array_size(hits);
    nb_pages = col_json_int(root, "nbPages", 1);
    nb_hits = col_json_int(root, "nbHits", (int64_t)n);
    per_page = col_json_int(root, "hitsPerPage", h->cfg->hits_per_page);
    if (per_page < 1 || per_page > S_PER_PAGE_MAX) {
        per_page = h->cfg->hits_per_page; /* nonsense: what was asked for */
    }
    for (i = n; i > 0 && rc == ESC_OK; i--) {
        esc_post_init(&post);
        if (s_hit(json_array_get(hits, i - 1), &post, &ts, &why) != 0) {
            api->ins->stats.skipped++;
            esc_log_warn("skipped bad hit source=%s index=%zu reason=\"%s\"", api->ins->name,
                         i - 1, why);
        }
        else {
            rc = col_api_emit(api, &post, post.id);
            if (ts > max) {
                max = ts;
            }
            if (ts < min) {
                min = ts;
            }
        }
        esc_post_fini(&post);
    }
    json_decref(root);
    if (rc == ESC_CLOSED) {
        return ESC_CLOSED; /* nothing moved: the sweep runs again after a restart */
    }
    h->sweep_max = max;
    h->sweep_min = min;
    if (h->lo < 0) {
        /* first run without since: the newest page only */
        h->lo = n > 0 ? max : esc_now_ms() / 1000;
    }
    else if (n > 0 && h->page + 1 < nb_pages) {
        h->page++;
        return ESC_OK;
    }
    else if (n > 0 && nb_hits > (h->page + 1) * per_page && min > h->lo
             && (h->hi == 0 || min < h->hi)) {
        /* hits beyond the reachable pages: sweep the older part of the window again */
        esc_log_info("narrowing sweep source=%s hits=%lld until=%lld", api->ins->name,
                     (long long)nb_hits, (long long)min);
        h->hi = min;
        h->page = 0;
        return ESC_OK;
    }
    else if (max > h->lo) {
        h->lo = max;
    }
    {
        char text[32];

        snprintf(text, sizeof(text), "%lld", (long long)h->lo);
        col_api_cursor_save(api, text);
    }
    s_sweep_reset(h);
    col_api_cycle_done(api);
    return ESC_OK;
}

static const struct col_api_ops s_ops = {
    .platform = "hn",
    .json = 1,
    .load = s_load,
    .next = s_next,
    .page = s_page,
    .failed = NULL,
};

static int
s_init(struct col_source *ins)
{
    const struct src_hn_cfg *cfg = ins->cfg;
    struct s_hn *h = esc_calloc(1, sizeof(*h));

    h->cfg = cfg;
    if (col_api_init(&h->api, ins, &cfg->api, &s_ops, h) != 0) {
        esc_free(h);
        return -1;
    }
    s_sweep_reset(h);
    h->lo = -1;
    ins->ctx = h;
    esc_log_info("polling hacker news source=%s query=\"%s\" tags=%s", ins->name, cfg->query,
                 cfg->tags);
    return 0;
}

static esc_rc
s_poll(struct col_source *ins, const struct col_emit *emit, size_t budget)
{
    struct s_hn *h = ins->ctx;

    return col_api_poll(&h->api, emit);
}

static void
s_exit(struct col_source *ins)
{
    struct s_hn *h = ins->ctx;

    if (h == NULL) {
        return;
    }
    col_api_fini(&h->api);
    esc_free(h);
    ins->ctx = NULL;
}

const struct col_source_plugin src_hn_plugin = {
    .name = "hn",
    .description = "Hacker News stories and comments from the Algolia search_by_date API",
    .cfg_map = s_cfg_map,
    .cfg_size = sizeof(struct src_hn_cfg),
    .validate = s_validate,
    .init = s_init,
    .poll = s_poll,
    .exit = s_exit,
};
