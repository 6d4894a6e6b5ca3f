#define ESC_LOG_MODULE "lemmy"
/* Source plugin "lemmy": posts matching a query on one Lemmy instance (/api/v3/search,
 * type_=Posts, sort=New), or a community's new posts (/api/v3/post/list) when no query is set.
 * Public content needs no credentials. Results are newest first and paged with page=1,2,...;
 * each poll sweeps back to the newest post of the previous poll (col_sweep). A post federated
 * to several instances has one ap_id, the dedupe key, so several instance sources never send
 * it twice. Bodies are Markdown and kept as they are. Lemmy documents no rate-limit headers;
 * a 429 backs off (api.c). Loop thread only. */
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

struct src_lemmy_cfg {
    char instance[256];     /* https://lemmy.ml */
    char query[256];        /* search words, "" = community listing */
    char community[256];    /* name or name@instance, limits the search / listing */
    char listing_type[16];  /* All | Local | Subscribed */
    int64_t limit;          /* 1..50 */
    struct col_api_cfg api;
};

struct s_lemmy {
    const struct src_lemmy_cfg *cfg;
    struct col_api api;
    struct col_sweep sweep;
    int64_t page;           /* next page of the sweep, from 1 */
};

static const struct esc_cfg_entry s_cfg_map[] = {
    ESC_CFG_STR("instance", NULL, struct src_lemmy_cfg, instance,
                "base URL of the instance, e.g. https://lemmy.ml"),
    ESC_CFG_STR("query", "", struct src_lemmy_cfg, query,
                "search words; empty: the community's newest posts"),
    ESC_CFG_STR("community", "", struct src_lemmy_cfg, community,
                "community name (or name@instance) to search in or list"),
    ESC_CFG_STR("listing_type", "All", struct src_lemmy_cfg, listing_type,
                "All (federated), Local or Subscribed"),
    ESC_CFG_INT("limit", "50", 1, 50, struct src_lemmy_cfg, limit, "posts per request"),
    COL_API_CFG_MAP(struct src_lemmy_cfg, api, "120"),
    ESC_CFG_END,
};

static esc_rc
s_validate(const void *cfg, const char *path, struct esc_error *err)
{
    const struct src_lemmy_cfg *c = cfg;

    if (col_api_cfg_check(&c->api, path, err) != ESC_OK) {
        return ESC_INVALID;
    }
    if (strncmp(c->instance, "http://", 7) != 0 && strncmp(c->instance, "https://", 8) != 0) {
        esc_error_set(err, 0, "%s.instance: must start with https:// (or http://)", path);
        return ESC_INVALID;
    }
    if (c->query[0] == '\0' && c->community[0] == '\0') {
        esc_error_set(err, 0, "%s.query: set query, community or both", path);
        return ESC_INVALID;
    }
    return ESC_OK;
}

static int
s_load(void *ctx, struct col_api *api, const char *cursor)
{
    struct s_lemmy *l = ctx;

    l->page = 1;
    return col_sweep_load(&l->sweep, cursor);
}

static esc_rc
s_next(void *ctx, struct col_api *api, col_req_t **out)
{
    struct s_lemmy *l = ctx;
    const struct src_lemmy_cfg *c = l->cfg;
    char url[S_URL_MAX];
    char num[32];

    if (c->query[0] != '\0') {
        snprintf(url, sizeof(url), "%s/api/v3/search", c->instance);
        col_url_add_param(url, sizeof(url), "q", c->query);
        col_url_add_param(url, sizeof(url), "type_", "Posts");
        col_url_add_param(url, sizeof(url), "listing_type", c->listing_type);
    }
    else {
        snprintf(url, sizeof(url), "%s/api/v3/post/list", c->instance);
        col_url_add_param(url, sizeof(url), "type_", c->listing_type);
    }
    if (c->community[0] != '\0') {
        col_url_add_param(url, sizeof(url), "community_name", c->community);
    }
    col_url_add_param(url, sizeof(url), "sort", "New");
    snprintf(num, sizeof(num), "%lld", (long long)c->limit);
    col_url_add_param(url, sizeof(url), "limit", num);
    snprintf(num, sizeof(num), "%lld", (long long)l->page);
    col_url_add_param(url, sizeof(url), "page", num);
    *out = col_api_req(api, url);
    return ESC_OK;
}

static int
s_post(const json_t *pv, struct esc_post *post, const char **key, const char **why)
{
    const char *ap_id = col_json_str(pv, "post.ap_id");
    const char *name = col_json_str(pv, "post.name");
    const char *body = col_json_str(pv, "post.body");
    const char *creator = col_json_str(pv, "creator.name");
    const char *actor = col_json_str(pv, "creator.actor_id");
    int64_t id = col_json_int(pv, "post.id", -1);
    char buf[512];
    size_t n;

    if (ap_id == NULL || id < 0 || col_json_str(pv, "post.published") == NULL
        || col_time_parse_any(col_json_str(pv, "post.published"), &post->created_at) != 0) {
        *why = "post without id, ap_id or published";
        return -1;
    }
    *key = ap_id;
    snprintf(buf, sizeof(buf), "%lld", (long long)id);
    post->id = esc_strdup(buf);
    n = (name != NULL ? strlen(name) : 0) + (body != NULL ? strlen(body) : 0) + 3;
    post->text = esc_malloc(n);
    snprintf(post->text, n, "%s%s%s", name != NULL ? name : "",
             name != NULL && body != NULL && body[0] != '\0' ? "\n\n" : "",
             body != NULL ? body : "");
    if (creator != NULL) {
        const char *host = actor != NULL ? strstr(actor, "://") : NULL;

        if (host != NULL) {
            snprintf(buf, sizeof(buf), "%s@%.*s", creator, (int)strcspn(host + 3, "/:"),
                     host + 3);
        }
        else {
            snprintf(buf, sizeof(buf), "%s", creator);
        }
        post->author = esc_strdup(buf);
    }
    col_set_str(&post->author_name, col_json_str(pv, "creator.display_name"));
    post->url = esc_strdup(ap_id);
    post->likes = col_json_int(pv, "counts.score", 0);
    post->replies = col_json_int(pv, "counts.comments", 0);
    return 0;
}

static esc_rc
s_page(void *ctx, struct col_api *api, col_req_t *req, struct esc_error *err)
{
    struct s_lemmy *l = ctx;
    size_t len;
    const char *body = col_req_body(req, &len);
    json_t *root;
    json_t *posts;
    const char *key = NULL;
    const char *why = NULL;
    struct esc_post post;
    size_t n;
    size_t i;
    esc_rc rc = ESC_OK;

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
    n = json_array_size(posts);
    for (i = n; i > 0 && rc == ESC_OK; i--) {
        esc_post_init(&post);
        if (s_post(json_array_get(posts, i - 1), &post, &key, &why) != 0) {
            api->ins->stats.skipped++;
            esc_log_warn("skipped bad post source=%s index=%zu reason=\"%s\"", api->ins->name,
                         i - 1, why);
        }
        else if (col_sweep_keep(&l->sweep, api, post.created_at)) {
            rc = col_api_emit(api, &post, key);
        }
        esc_post_fini(&post);
    }
    json_decref(root);
    if (rc == ESC_CLOSED) {
        return ESC_CLOSED;
    }
    if (col_sweep_page_done(&l->sweep, api, n >= (size_t)l->cfg->limit)) {
        l->page++;
    }
    else {
        l->page = 1;
    }
    return ESC_OK;
}

static const struct col_api_ops s_ops = {
    .platform = "lemmy",
    .json = 1,
    .load = s_load,
    .next = s_next,
    .page = s_page,
    .failed = NULL,
};

static int
s_init(struct col_source *ins)
{
    const struct src_lemmy_cfg *cfg = ins->cfg;
    struct s_lemmy *l = esc_calloc(1, sizeof(*l));

    l->cfg = cfg;
    if (col_api_init(&l->api, ins, &cfg->api, &s_ops, l) != 0) {
        esc_free(l);
        return -1;
    }
    l->page = 1;
    ins->ctx = l;
    esc_log_info("polling lemmy source=%s instance=%s query=\"%s\" community=%s", ins->name,
                 cfg->instance, cfg->query, cfg->community);
    return 0;
}

static esc_rc
s_poll(struct col_source *ins, const struct col_emit *emit, size_t budget)
{
    struct s_lemmy *l = ins->ctx;

    return col_api_poll(&l->api, emit);
}

static void
s_exit(struct col_source *ins)
{
    struct s_lemmy *l = ins->ctx;

    if (l == NULL) {
        return;
    }
    col_api_fini(&l->api);
    esc_free(l);
    ins->ctx = NULL;
}

const struct col_source_plugin src_lemmy_plugin = {
    .name = "lemmy",
    .description = "Lemmy posts matching a query (or a community's new posts) on one instance",
    .cfg_map = s_cfg_map,
    .cfg_size = sizeof(struct src_lemmy_cfg),
    .validate = s_validate,
    .init = s_init,
    .poll = s_poll,
    .exit = s_exit,
};
