#define ESC_LOG_MODULE "rss"
/* Source plugin "rss": polls one RSS 2.0, RSS 1.0 (RDF) or Atom feed, which also covers RSS
 * bridges and the feeds platforms publish themselves (Mastodon /tags/x.rss, Reddit .rss,
 * YouTube channel feeds, Lemmy). Every poll is a conditional GET: the ETag and Last-Modified of
 * the last 200 are sent back as If-None-Match / If-Modified-Since, so an unchanged feed costs a
 * 304 with no body; the validators are the cursor kept in Redis. Feeds re-send their recent
 * items on every change, so items are deduplicated by guid / Atom id (falling back to the link,
 * then to a hash of title and body). The document is parsed with libxml2 (no network access, no
 * external entities); HTML in descriptions and content becomes plain text. The event time is
 * pubDate (RFC 822), dc:date, published or updated; an item without one gets the time it was
 * read. "since" drops items older than that date. Loop thread only. */
#include <ctype.h>
#include <string.h>

#include <jansson.h>
#include <libxml/parser.h>
#include <libxml/tree.h>

#include "api.h"
#include "col_source.h"
#include "text.h"

#include "escucha/esc_log.h"
#include "escucha/esc_mem.h"
#include "escucha/esc_msg.h"
#include "escucha/esc_util.h"

#define S_NS_DC "http://purl.org/dc/elements/1.1/"
#define S_NS_CONTENT "http://purl.org/rss/1.0/modules/content/"
#define S_VALIDATOR_MAX 512

struct src_rss_cfg {
    char url[1024]; /* the feed */
    struct col_api_cfg api;
};

struct s_rss {
    const struct src_rss_cfg *cfg;
    struct col_api api;
    char etag[S_VALIDATOR_MAX];
    char last_modified[S_VALIDATOR_MAX];
};

/* One item, copied out of the document (every string owned; NULL when absent). */
struct s_item {
    char *id;      /* owned */
    char *title;   /* owned, plain text */
    char *body;    /* owned, plain text */
    char *link;    /* owned */
    char *author;  /* owned */
    char *date;    /* owned, as written */
    char *lang;    /* owned */
    char **tags;
    size_t n_tags;
};

static const struct esc_cfg_entry s_cfg_map[] = {
    ESC_CFG_STR("url", NULL, struct src_rss_cfg, url, "URL of the RSS or Atom feed"),
    COL_API_CFG_MAP(struct src_rss_cfg, api, "300"),
    ESC_CFG_END,
};

static esc_rc
s_validate(const void *cfg, const char *path, struct esc_error *err)
{
    const struct src_rss_cfg *c = cfg;

    if (col_api_cfg_check(&c->api, path, err) != ESC_OK) {
        return ESC_INVALID;
    }
    if (strncmp(c->url, "http://", 7) != 0 && strncmp(c->url, "https://", 8) != 0) {
        esc_error_set(err, 0, "%s.url: must be an http:// or https:// URL", path);
        return ESC_INVALID;
    }
    return ESC_OK;
}

static int
s_load(void *ctx, struct col_api *api, const char *cursor)
{
    struct s_rss *f = ctx;
    json_error_t je;
    json_t *j;
    const char *v;

    f->etag[0] = '\0';
    f->last_modified[0] = '\0';
    if (cursor == NULL) {
        return 0;
    }
    j = json_loads(cursor, 0, &je);
    if (!json_is_object(j)) {
        json_decref(j);
        return -1;
    }
    v = json_string_value(json_object_get(j, "etag"));
    esc_strlcpy(f->etag, v != NULL ? v : "", sizeof(f->etag));
    v = json_string_value(json_object_get(j, "last_modified"));
    esc_strlcpy(f->last_modified, v != NULL ? v : "", sizeof(f->last_modified));
    json_decref(j);
    return 0;
}

static esc_rc
s_next(void *ctx, struct col_api *api, col_req_t **out)
{
    struct s_rss *f = ctx;

    *out = col_api_req(api, f->cfg->url);
    col_req_header(*out, "Accept", "application/rss+xml, application/atom+xml, "
                                   "application/rdf+xml;q=0.9, application/xml;q=0.8, "
                                   "text/xml;q=0.8, */*;q=0.1");
    if (f->etag[0] != '\0') {
        col_req_header(*out, "If-None-Match", f->etag);
    }
    if (f->last_modified[0] != '\0') {
        col_req_header(*out, "If-Modified-Since", f->last_modified);
    }
    return ESC_OK;
}

static int
s_named(const xmlNode *n, const char *name, const char *ns)
{
    if (n->type != XML_ELEMENT_NODE || strcmp((const char *)n->name, name) != 0) {
        return 0;
    }
    if (ns == NULL) {
        return 1;
    }
    return n->ns != NULL && n->ns->href != NULL && strcmp((const char *)n->ns->href, ns) == 0;
}

/* The first child element called name (in ns, or any namespace when ns is NULL). */
static xmlNode *
s_child(const xmlNode *parent, const char *name, const char *ns)
{
    xmlNode *c;

    for (c = parent->children; c != NULL; c = c->next) {
        if (s_named(c, name, ns)) {
            return c;
        }
    }
    return NULL;
}

/* The text content of n, trimmed. Caller owns; NULL when n is NULL or it is empty. */
static char *
s_text(const xmlNode *n)
{
    xmlChar *x;
    char *out;
    size_t a;
    size_t b;

    if (n == NULL) {
        return NULL;
    }
    x = xmlNodeGetContent(n);
    if (x == NULL) {
        return NULL;
    }
    b = strlen((const char *)x);
    a = 0;
    while (a < b && isspace((unsigned char)x[a])) {
        a++;
    }
    while (b > a && isspace((unsigned char)x[b - 1])) {
        b--;
    }
    if (b == a) {
        xmlFree(x);
        return NULL;
    }
    out = esc_malloc(b - a + 1);
    memcpy(out, x + a, b - a);
    out[b - a] = '\0';
    xmlFree(x);
    return out;
}

/* Attribute value, caller-owned, or NULL. */
static char *
s_attr(const xmlNode *n, const char *name)
{
    xmlChar *x;
    char *out;

    if (n == NULL) {
        return NULL;
    }
    x = xmlGetProp(n, (const xmlChar *)name);
    if (x == NULL) {
        return NULL;
    }
    out = esc_strdup((const char *)x);
    xmlFree(x);
    return out;
}

/* Text of an element that may hold HTML (RSS description, Atom type="html"): plain text. */
static char *
s_html_text(const xmlNode *n)
{
    char *raw = s_text(n);
    char *out;

    if (raw == NULL) {
        return NULL;
    }
    out = col_html_to_text(raw, strlen(raw));
    esc_free(raw);
    if (out[0] == '\0') {
        esc_free(out);
        return NULL;
    }
    return out;
}

/* Atom text construct: type text (default), html or xhtml. */
static char *
s_atom_text(const xmlNode *n)
{
    char *type = s_attr(n, "type");
    char *out;

    if (type != NULL && (strcmp(type, "html") == 0 || strcmp(type, "text/html") == 0)) {
        out = s_html_text(n);
    }
    else {
        /* text, and xhtml (whose markup is real elements: their text content is the text) */
        out = s_text(n);
    }
    esc_free(type);
    return out;
}

static void
s_item_fini(struct s_item *it)
{
    esc_free(it->id);
    esc_free(it->title);
    esc_free(it->body);
    esc_free(it->link);
    esc_free(it->author);
    esc_free(it->date);
    esc_free(it->lang);
    esc_strlist_free(&it->tags, &it->n_tags);
    memset(it, 0, sizeof(*it));
}

static void
s_add_tag(struct s_item *it, char *tag)
{
    if (tag != NULL) {
        esc_strlist_push(&it->tags, &it->n_tags, tag);
        esc_free(tag);
    }
}

static void
s_rss_item(const xmlNode *n, struct s_item *it)
{
    xmlNode *c;

    it->title = s_text(s_child(n, "title", NULL));
    it->link = s_text(s_child(n, "link", NULL));
    it->id = s_text(s_child(n, "guid", NULL));
    it->body = s_html_text(s_child(n, "encoded", S_NS_CONTENT));
    if (it->body == NULL) {
        it->body = s_html_text(s_child(n, "description", NULL));
    }
    it->author = s_text(s_child(n, "creator", S_NS_DC));
    if (it->author == NULL) {
        it->author = s_text(s_child(n, "author", NULL));
    }
    it->date = s_text(s_child(n, "pubDate", NULL));
    if (it->date == NULL) {
        it->date = s_text(s_child(n, "date", S_NS_DC));
    }
    for (c = n->children; c != NULL; c = c->next) {
        if (s_named(c, "category", NULL) || s_named(c, "subject", S_NS_DC)) {
            s_add_tag(it, s_text(c));
        }
    }
}

static void
s_atom_entry(const xmlNode *n, struct s_item *it)
{
    xmlNode *c;
    xmlNode *author;

    it->title = s_atom_text(s_child(n, "title", NULL));
    it->id = s_text(s_child(n, "id", NULL));
    it->body = s_atom_text(s_child(n, "content", NULL));
    if (it->body == NULL) {
        it->body = s_atom_text(s_child(n, "summary", NULL));
    }
    for (c = n->children; c != NULL && it->link == NULL; c = c->next) {
        if (s_named(c, "link", NULL)) {
            char *rel = s_attr(c, "rel");

            if (rel == NULL || strcmp(rel, "alternate") == 0) {
                it->link = s_attr(c, "href");
            }
            esc_free(rel);
        }
    }
    author = s_child(n, "author", NULL);
    if (author == NULL && n->parent != NULL) {
        author = s_child(n->parent, "author", NULL);
    }
    if (author != NULL) {
        it->author = s_text(s_child(author, "name", NULL));
    }
    it->date = s_text(s_child(n, "published", NULL));
    if (it->date == NULL) {
        it->date = s_text(s_child(n, "updated", NULL));
    }
    for (c = n->children; c != NULL; c = c->next) {
        if (s_named(c, "category", NULL)) {
            s_add_tag(it, s_attr(c, "term"));
        }
    }
    {
        xmlChar *lang = xmlNodeGetLang(n);

        if (lang != NULL) {
            it->lang = esc_strdup((const char *)lang);
            xmlFree(lang);
        }
    }
}

/* "es-PE" -> "es". */
static void
s_lang2(char *lang)
{
    size_t i;

    lang[strcspn(lang, "-_ ")] = '\0';
    for (i = 0; lang[i] != '\0'; i++) {
        lang[i] = (char)tolower((unsigned char)lang[i]);
    }
}

/* Builds the post for it and sends it. Returns ESC_OK (also when skipped) or ESC_CLOSED. */
static esc_rc
s_emit_item(struct s_rss *f, struct col_api *api, struct s_item *it, const char *feed_lang)
{
    struct esc_post post;
    char hash[32];
    char *key;
    size_t n;
    size_t i;
    int64_t now = esc_now_ms();
    esc_rc rc;

    esc_post_init(&post);
    if (it->date == NULL || col_time_parse_any(it->date, &post.created_at) != 0) {
        post.created_at = now;
    }
    if (api->since_ms > 0 && post.created_at < api->since_ms) {
        esc_post_fini(&post);
        return ESC_OK;
    }
    if (it->id != NULL) {
        post.id = esc_strdup(it->id);
    }
    else if (it->link != NULL) {
        post.id = esc_strdup(it->link);
    }
    else {
        uint64_t h = col_fnv1a(COL_FNV_SEED, it->title != NULL ? it->title : "",
                               it->title != NULL ? strlen(it->title) : 0);

        h = col_fnv1a(h, it->body != NULL ? it->body : "", it->body != NULL ? strlen(it->body) : 0);
        snprintf(hash, sizeof(hash), "h%016llx", (unsigned long long)h);
        post.id = esc_strdup(hash);
    }
    n = (it->title != NULL ? strlen(it->title) : 0) + (it->body != NULL ? strlen(it->body) : 0)
        + 3;
    post.text = esc_malloc(n);
    snprintf(post.text, n, "%s%s%s", it->title != NULL ? it->title : "",
             it->title != NULL && it->body != NULL ? "\n\n" : "",
             it->body != NULL ? it->body : "");
    if (it->link != NULL) {
        post.url = esc_strdup(it->link);
    }
    if (it->author != NULL) {
        post.author = esc_strdup(it->author);
    }
    if (it->lang != NULL || feed_lang != NULL) {
        post.lang = esc_strdup(it->lang != NULL ? it->lang : feed_lang);
        s_lang2(post.lang);
        if (post.lang[0] == '\0') {
            esc_free(post.lang);
            post.lang = NULL;
        }
    }
    for (i = 0; i < it->n_tags; i++) {
        esc_strlist_push(&post.hashtags, &post.n_hashtags, it->tags[i]);
    }
    /* A guid like "123" is only unique within its feed; a URL, URN or tag: id is global. */
    if (strchr(post.id, ':') != NULL) {
        key = esc_strdup(post.id);
    }
    else {
        n = strlen(f->cfg->url) + strlen(post.id) + 2;
        key = esc_malloc(n);
        snprintf(key, n, "%s#%s", f->cfg->url, post.id);
    }
    rc = col_api_emit(api, &post, key);
    esc_free(key);
    esc_post_fini(&post);
    return rc;
}

/* Collects the items of the document in document order. Returns the count, or -1 (err set)
 * when the root is not a feed. */
static int
s_collect(xmlDoc *doc, struct s_item **items_out, char **lang_out, struct esc_error *err)
{
    xmlNode *root = xmlDocGetRootElement(doc);
    xmlNode *list;
    xmlNode *c;
    struct s_item *items = NULL;
    size_t n = 0;
    size_t cap = 0;
    int atom;

    *lang_out = NULL;
    if (root == NULL) {
        esc_error_set(err, 0, "empty XML document");
        return -1;
    }
    if (s_named(root, "rss", NULL)) {
        list = s_child(root, "channel", NULL);
        atom = 0;
        if (list == NULL) {
            esc_error_set(err, 0, "RSS document without <channel>");
            return -1;
        }
        *lang_out = s_text(s_child(list, "language", NULL));
    }
    else if (s_named(root, "RDF", NULL)) {
        list = root; /* RSS 1.0: items are children of the root */
        atom = 0;
        c = s_child(root, "channel", NULL);
        if (c != NULL) {
            *lang_out = s_text(s_child(c, "language", S_NS_DC));
        }
    }
    else if (s_named(root, "feed", NULL)) {
        list = root;
        atom = 1;
    }
    else {
        esc_error_set(err, 0, "not an RSS or Atom feed (root element <%.40s>)",
                      (const char *)root->name);
        return -1;
    }
    for (c = list->children; c != NULL; c = c->next) {
        if (!(atom ? s_named(c, "entry", NULL) : s_named(c, "item", NULL))) {
            continue;
        }
        if (n == cap) {
            cap = cap == 0 ? 32 : cap * 2;
            items = esc_realloc(items, cap * sizeof(*items));
        }
        memset(&items[n], 0, sizeof(items[n]));
        if (atom) {
            s_atom_entry(c, &items[n]);
        }
        else {
            s_rss_item(c, &items[n]);
        }
        n++;
    }
    *items_out = items;
    return (int)n;
}

static void
s_save_validators(struct s_rss *f, struct col_api *api, col_req_t *req)
{
    const char *v;
    json_t *j;
    char text[2 * S_VALIDATOR_MAX * 6 + 64];
    size_t n;

    v = col_req_resp_header(req, "ETag");
    esc_strlcpy(f->etag, v != NULL ? v : "", sizeof(f->etag));
    v = col_req_resp_header(req, "Last-Modified");
    esc_strlcpy(f->last_modified, v != NULL ? v : "", sizeof(f->last_modified));
    j = json_pack("{s:s, s:s}", "etag", f->etag, "last_modified", f->last_modified);
    n = json_dumpb(j, text, sizeof(text) - 1, JSON_COMPACT);
    json_decref(j);
    if (n == 0 || n >= sizeof(text)) {
        return; /* cannot happen with validators of at most S_VALIDATOR_MAX bytes */
    }
    text[n] = '\0';
    col_api_cursor_save(api, text);
}

static esc_rc
s_page(void *ctx, struct col_api *api, col_req_t *req, struct esc_error *err)
{
    struct s_rss *f = ctx;
    struct s_item *items = NULL;
    char *lang = NULL;
    const char *body;
    const xmlError *xe;
    xmlParserCtxtPtr pc;
    xmlDoc *doc;
    size_t len;
    int n;
    int i;
    esc_rc rc = ESC_OK;

    col_api_cycle_done(api); /* a feed is one document */
    if (col_req_status(req) == 304) {
        esc_log_debug("feed not modified source=%s", api->ins->name);
        return ESC_OK;
    }
    body = col_req_body(req, &len);
    if (len == 0) {
        esc_error_set(err, 0, "empty body, expected an RSS or Atom document");
        return ESC_INVALID;
    }
    pc = xmlNewParserCtxt();
    ESC_ASSERT(pc != NULL);
    doc = xmlCtxtReadMemory(pc, body, (int)len, f->cfg->url, NULL,
                            XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING
                                | XML_PARSE_NOCDATA);
    if (doc == NULL) {
        char msg[160];

        xe = xmlCtxtGetLastError(pc);
        esc_strlcpy(msg, xe != NULL && xe->message != NULL ? xe->message : "unknown error",
                    sizeof(msg));
        msg[strcspn(msg, "\r\n")] = '\0';
        esc_error_set(err, xe != NULL ? xe->line : 0, "malformed XML: %s at line %d", msg,
                      xe != NULL ? xe->line : 0);
        xmlFreeParserCtxt(pc);
        return ESC_INVALID;
    }
    n = s_collect(doc, &items, &lang, err);
    xmlFreeDoc(doc);
    xmlFreeParserCtxt(pc);
    if (n < 0) {
        return ESC_INVALID;
    }
    /* Feeds list the newest first: send the oldest first. */
    for (i = n - 1; i >= 0 && rc == ESC_OK; i--) {
        rc = s_emit_item(f, api, &items[i], lang);
    }
    for (i = 0; i < n; i++) {
        s_item_fini(&items[i]);
    }
    esc_free(items);
    esc_free(lang);
    if (rc == ESC_CLOSED) {
        return ESC_CLOSED; /* validators not moved: the feed is read again after a restart */
    }
    s_save_validators(f, api, req);
    return ESC_OK;
}

static const struct col_api_ops s_ops = {
    .platform = "rss",
    .json = 0,
    .load = s_load,
    .next = s_next,
    .page = s_page,
    .failed = NULL,
};

static int
s_init(struct col_source *ins)
{
    const struct src_rss_cfg *cfg = ins->cfg;
    struct s_rss *f = esc_calloc(1, sizeof(*f));

    f->cfg = cfg;
    if (col_api_init(&f->api, ins, &cfg->api, &s_ops, f) != 0) {
        esc_free(f);
        return -1;
    }
    ins->ctx = f;
    {
        char shown[1100];

        col_url_redact(cfg->url, shown, sizeof(shown));
        esc_log_info("polling feed source=%s url=%s", ins->name, shown);
    }
    return 0;
}

static esc_rc
s_poll(struct col_source *ins, const struct col_emit *emit, size_t budget)
{
    struct s_rss *f = ins->ctx;

    return col_api_poll(&f->api, emit);
}

static void
s_exit(struct col_source *ins)
{
    struct s_rss *f = ins->ctx;

    if (f == NULL) {
        return;
    }
    col_api_fini(&f->api);
    esc_free(f);
    ins->ctx = NULL;
}

const struct col_source_plugin src_rss_plugin = {
    .name = "rss",
    .description = "an RSS 2.0 / RSS 1.0 / Atom feed, polled with conditional GET",
    .cfg_map = s_cfg_map,
    .cfg_size = sizeof(struct src_rss_cfg),
    .validate = s_validate,
    .init = s_init,
    .poll = s_poll,
    .exit = s_exit,
};
