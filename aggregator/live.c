#define ESC_LOG_MODULE "live"
/* Live publisher: between two flushes, the newest AGG_LIVE_PER_TEAM matched posts of each team
 * and of each topic are held in small rings (older ones are dropped and counted: a live view
 * shows the newest). A ring holds items: a compact copy of what the JSON shows, for one post and
 * one team, with only that team's topic ids (a team's channel never names another team's
 * topics); the team's ring and its topics' rings share the item (reference counted). Items are
 * encoded to JSON only at the flush, once each, so the posts a ring drops before it (most of
 * them at a high rate) cost a copy, not an encoding. The flush turns the rings into one PUBLISH
 * per team and LPUSH + LTRIM per topic in one pipeline. Nothing is retried: the counters are
 * the record; this is the window onto them. Single-threaded. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "escucha/esc_log.h"
#include "escucha/esc_mem.h"
#include "escucha/esc_util.h"

#include "live.h"

/* Strings of an item, in this order in its data. */
enum s_field {
    S_ID = 0,
    S_PLATFORM,
    S_AUTHOR,
    S_AUTHOR_NAME,
    S_URL,
    S_TEXT,
    S_LANG,
    S_NFIELDS
};

/* One post for one team. Strings are cut as the JSON shows them, back to back in data. */
struct s_item {
    int refs;                        /* rings holding it */
    char *json;                      /* built at the flush; owned */
    size_t json_len;
    int64_t created_at;
    double sentiment;
    int64_t followers;
    int64_t likes;
    int64_t reposts;
    int64_t replies;
    uint32_t off[S_NFIELDS];         /* offset of each string in data, UINT32_MAX = NULL */
    size_t n_ids;                    /* topic ids after the fields, NUL-terminated each */
    char data[];
};

/* Hash index slots of the rings (powers of two, at least twice the rings). */
#define S_IX_TEAMS 512
#define S_IX_TOPICS 8192
_Static_assert(S_IX_TEAMS >= 2 * AGG_LIVE_TEAMS_MAX && S_IX_TOPICS >= 2 * AGG_LIVE_TOPICS_MAX,
               "live ring index too small");

struct s_ring {
    char key[140];                   /* team id, or topic key "team/topic" */
    struct s_item *item[AGG_LIVE_PER_TEAM]; /* a reference each; oldest at head */
    size_t head;
    size_t n;
};

struct agg_live {
    char prefix[64];
    struct s_ring *teams;
    size_t n_teams;
    uint32_t *team_ix;               /* S_IX_TEAMS slots: ring index + 1 by key hash, 0 empty */
    struct s_ring *topics;
    size_t n_topics;
    uint32_t *topic_ix;              /* S_IX_TOPICS slots, likewise */
    struct agg_live_stats st;
    struct esc_log_every warn_every;
};

agg_live_t *
agg_live_new(const char *prefix)
{
    agg_live_t *self = esc_calloc(1, sizeof(*self));

    esc_strlcpy(self->prefix, prefix, sizeof(self->prefix));
    self->teams = esc_calloc(AGG_LIVE_TEAMS_MAX, sizeof(*self->teams));
    self->topics = esc_calloc(AGG_LIVE_TOPICS_MAX, sizeof(*self->topics));
    self->team_ix = esc_calloc(S_IX_TEAMS, sizeof(*self->team_ix));
    self->topic_ix = esc_calloc(S_IX_TOPICS, sizeof(*self->topic_ix));
    return self;
}

static void
s_item_unref(struct s_item **it_p)
{
    struct s_item *it = *it_p;

    *it_p = NULL;
    if (it != NULL && --it->refs == 0) {
        esc_free(it->json);
        esc_free(it);
    }
}

static void
s_ring_clear(struct s_ring *r)
{
    size_t i;

    for (i = 0; i < r->n; i++) {
        s_item_unref(&r->item[(r->head + i) % AGG_LIVE_PER_TEAM]);
    }
    r->head = 0;
    r->n = 0;
}

/* Appends a reference to it; the oldest is dropped when full. Returns 1 when one was dropped. */
static int
s_ring_push(struct s_ring *r, struct s_item *it)
{
    int dropped = 0;

    if (r->n == AGG_LIVE_PER_TEAM) {
        s_item_unref(&r->item[r->head]);
        r->head = (r->head + 1) % AGG_LIVE_PER_TEAM;
        r->n--;
        dropped = 1;
    }
    it->refs++;
    r->item[(r->head + r->n) % AGG_LIVE_PER_TEAM] = it;
    r->n++;
    return dropped;
}

void
agg_live_destroy(agg_live_t **self_p)
{
    agg_live_t *self = self_p != NULL ? *self_p : NULL;
    size_t i;

    if (self == NULL) {
        return;
    }
    for (i = 0; i < self->n_teams; i++) {
        s_ring_clear(&self->teams[i]);
    }
    for (i = 0; i < self->n_topics; i++) {
        s_ring_clear(&self->topics[i]);
    }
    esc_free(self->teams);
    esc_free(self->topics);
    esc_free(self->team_ix);
    esc_free(self->topic_ix);
    esc_free(self);
    *self_p = NULL;
}

/* The ring for key in rings (n used of max; ix: n_ix index slots), created when missing; NULL
 * when full. */
static struct s_ring *
s_ring_get(struct s_ring *rings, size_t *n, size_t max, uint32_t *ix, size_t n_ix,
           const char *key, size_t keylen)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    size_t i;

    if (keylen >= sizeof(rings[0].key)) {
        return NULL;
    }
    for (i = 0; i < keylen; i++) {
        h = (h ^ (unsigned char)key[i]) * 16777619u;
    }
    i = h & (n_ix - 1);
    while (ix[i] != 0) {
        struct s_ring *r = &rings[ix[i] - 1];

        if (memcmp(r->key, key, keylen) == 0 && r->key[keylen] == '\0') {
            return r;
        }
        i = (i + 1) & (n_ix - 1);
    }
    if (*n == max) {
        return NULL;
    }
    memcpy(rings[*n].key, key, keylen);
    rings[*n].key[keylen] = '\0';
    ix[i] = (uint32_t)(*n + 1);
    return &rings[(*n)++];
}

/* strlen(s), at most max; 0 for NULL. */
static size_t
s_len_max(const char *s, size_t max)
{
    size_t n = s != NULL ? strlen(s) : 0;

    return n < max ? n : max;
}

/* Length of the longest prefix of s of at most max bytes ending on a UTF-8 boundary. */
static size_t
s_utf8_cut(const char *s, size_t max)
{
    size_t len = strlen(s);

    if (len <= max) {
        return len;
    }
    while (max > 0 && ((unsigned char)s[max] & 0xC0) == 0x80) {
        max--;
    }
    return max;
}

/* True when s[0, n) is valid UTF-8 (RFC 3629: no overlong forms, surrogates or code points
 * above U+10FFFF), the rule jansson applies to the strings of the API's JSON. */
static int
s_utf8_valid(const char *s, size_t n)
{
    size_t i = 0;

    while (i < n) {
        unsigned char c = (unsigned char)s[i];
        uint32_t cp;
        size_t k;
        size_t len;
        uint64_t w;

        if (c < 0x80) {
            i++;
            /* ASCII runs eight bytes at a time */
            while (i + 8 <= n) {
                memcpy(&w, s + i, 8);
                if ((w & 0x8080808080808080ULL) != 0) {
                    break;
                }
                i += 8;
            }
            continue;
        }
        if (c >= 0xC2 && c <= 0xDF) {
            len = 2;
            cp = c & 0x1Fu;
        }
        else if (c >= 0xE0 && c <= 0xEF) {
            len = 3;
            cp = c & 0x0Fu;
        }
        else if (c >= 0xF0 && c <= 0xF4) {
            len = 4;
            cp = c & 0x07u;
        }
        else {
            return 0;
        }
        if (len > n - i) {
            return 0;
        }
        for (k = 1; k < len; k++) {
            unsigned char d = (unsigned char)s[i + k];

            if (d < 0x80 || d > 0xBF) {
                return 0;
            }
            cp = (cp << 6) | (d & 0x3Fu);
        }
        if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF) || (len == 3 && cp < 0x800)
            || (len == 4 && cp < 0x10000)) {
            return 0;
        }
        i += len;
    }
    return 1;
}

/* Output of agg_live_post_json: written once into a buffer sized for the worst case. */
struct s_out {
    char *buf;
    size_t len;
};

static void
s_out_raw(struct s_out *o, const char *s, size_t n)
{
    memcpy(o->buf + o->len, s, n);
    o->len += n;
}

/* A JSON string of s[0, n) escaped like jansson's compact dump: quote, backslash and control
 * characters (\b \f \n \r \t, else \u00XX), everything else as it is. At most 6 n + 2 bytes. */
static void
s_out_str(struct s_out *o, const char *s, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t i;

    o->buf[o->len++] = '"';
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char *at = o->buf + o->len;
        size_t run = i;

        if (c >= 0x20 && c != '"' && c != '\\') {
            /* copy the whole run of bytes that need no escape */
            while (run + 1 < n && (unsigned char)s[run + 1] >= 0x20 && s[run + 1] != '"'
                   && s[run + 1] != '\\') {
                run++;
            }
            memcpy(at, s + i, run - i + 1);
            o->len += run - i + 1;
            i = run;
            continue;
        }
        at[0] = '\\';
        switch (c) {
        case '"':
        case '\\':
            at[1] = (char)c;
            break;
        case '\b':
            at[1] = 'b';
            break;
        case '\f':
            at[1] = 'f';
            break;
        case '\n':
            at[1] = 'n';
            break;
        case '\r':
            at[1] = 'r';
            break;
        case '\t':
            at[1] = 't';
            break;
        default:
            memcpy(at + 1, "u00", 3);
            at[4] = hex[c >> 4];
            at[5] = hex[c & 0xF];
            o->len += 6;
            continue;
        }
        o->len += 2;
    }
    o->buf[o->len++] = '"';
}

/* ,"key":"value" with value cut to max bytes on a UTF-8 boundary; nothing when v is NULL;
 * "" when the value is not valid UTF-8 (the decoders upstream should not let it through). */
static void
s_out_field_str(struct s_out *o, const char *key, const char *v, size_t max)
{
    size_t n;

    if (v == NULL) {
        return;
    }
    n = s_utf8_cut(v, max);
    if (o->len > 1) {
        o->buf[o->len++] = ',';
    }
    s_out_str(o, key, strlen(key));
    o->buf[o->len++] = ':';
    s_out_str(o, v, s_utf8_valid(v, n) ? n : 0);
}

/* v in decimal, as "%lld" writes it (at most 20 bytes). */
static void
s_out_i64(struct s_out *o, int64_t v)
{
    char tmp[24];
    uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
    size_t n = 0;

    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u > 0);
    if (v < 0) {
        o->buf[o->len++] = '-';
    }
    while (n > 0) {
        o->buf[o->len++] = tmp[--n];
    }
}

static void
s_out_field_i64(struct s_out *o, const char *key, int64_t v)
{
    o->buf[o->len++] = ',';
    s_out_str(o, key, strlen(key));
    o->buf[o->len++] = ':';
    s_out_i64(o, v);
}

/* A real as jansson writes it with JSON_REAL_PRECISION(4): "%.4g", ".0" added when that
 * reads as an integer, the exponent without '+' or leading zeros. Non-finite values are left
 * out (jansson has no such reals). */
static void
s_out_field_real(struct s_out *o, const char *key, double v)
{
    char num[48];
    char *e;
    size_t n;

    if (!isfinite(v)) {
        return;
    }
    n = (size_t)snprintf(num, sizeof(num) - 3, "%.4g", v);
    if (strchr(num, '.') == NULL && strchr(num, 'e') == NULL) {
        memcpy(num + n, ".0", 3);
        n += 2;
    }
    e = strchr(num, 'e');
    if (e != NULL) {
        char *from = e + 2;
        char *to = e + 1;

        if (*to == '-') {
            to++;
        }
        while (*from == '0') {
            from++;
        }
        if (from != to) {
            memmove(to, from, n + 1 - (size_t)(from - num));
            n -= (size_t)(from - to);
        }
    }
    o->buf[o->len++] = ',';
    s_out_str(o, key, strlen(key));
    o->buf[o->len++] = ':';
    s_out_raw(o, num, n);
}

char *
agg_live_post_json(const struct esc_post *p, const char *const *topic_ids, size_t n)
{
    const char *lang = p->language != NULL && strcmp(p->language, "und") != 0 ? p->language
                                                                               : p->lang;
    const char *text = p->text != NULL ? p->text : "";
    size_t cap = 512;
    struct s_out o;
    size_t first;
    size_t i;

    /* worst case: every byte escaped as \u00XX */
    cap += 6 * (s_len_max(p->id, 256) + s_len_max(p->platform, 64) + s_len_max(p->author, 256)
                + s_len_max(p->author_name, 256) + s_len_max(p->url, 2048)
                + s_len_max(text, AGG_LIVE_TEXT_MAX) + s_len_max(lang, 16));
    for (i = 0; i < n; i++) {
        cap += 6 * strlen(topic_ids[i]) + 3;
    }
    o.buf = esc_malloc(cap);
    o.len = 0;
    o.buf[o.len++] = '{';
    s_out_field_str(&o, "id", p->id, 256);
    s_out_field_str(&o, "platform", p->platform, 64);
    s_out_field_str(&o, "author", p->author, 256);
    s_out_field_str(&o, "author_name", p->author_name, 256);
    s_out_field_str(&o, "url", p->url, 2048);
    if (o.len == 1) {
        /* no string field so far: created_at opens the object */
        s_out_raw(&o, "\"created_at\":", 13);
        s_out_i64(&o, p->created_at);
    }
    else {
        s_out_field_i64(&o, "created_at", p->created_at);
    }
    s_out_field_str(&o, "text", text, AGG_LIVE_TEXT_MAX);
    s_out_raw(&o, ",\"topics\":[", 11);
    first = 1;
    for (i = 0; i < n; i++) {
        size_t len = strlen(topic_ids[i]);

        if (!s_utf8_valid(topic_ids[i], len)) {
            continue; /* jansson refuses such a string: the array leaves it out */
        }
        if (!first) {
            o.buf[o.len++] = ',';
        }
        first = 0;
        s_out_str(&o, topic_ids[i], len);
    }
    o.buf[o.len++] = ']';
    s_out_field_str(&o, "lang", lang, 16);
    s_out_field_real(&o, "sentiment", p->sentiment);
    s_out_field_i64(&o, "followers", p->followers > 0 ? p->followers : 0);
    s_out_field_i64(&o, "likes", p->likes > 0 ? p->likes : 0);
    s_out_field_i64(&o, "reposts", p->reposts > 0 ? p->reposts : 0);
    s_out_field_i64(&o, "replies", p->replies > 0 ? p->replies : 0);
    o.buf[o.len++] = '}';
    ESC_ASSERT(o.len < cap);
    o.buf[o.len] = '\0';
    return o.buf;
}

/* A new item (no reference yet) for post p with the n topic ids. */
static struct s_item *
s_item_new(const struct esc_post *p, const char *const *ids, size_t n)
{
    static const size_t max[S_NFIELDS] = { 256, 64, 256, 256, 2048, AGG_LIVE_TEXT_MAX, 16 };
    const char *v[S_NFIELDS];
    size_t len[S_NFIELDS];
    size_t id_len[ESC_POST_LIST_MAX];
    size_t total = 0;
    struct s_item *it;
    char *at;
    size_t i;

    v[S_ID] = p->id;
    v[S_PLATFORM] = p->platform;
    v[S_AUTHOR] = p->author;
    v[S_AUTHOR_NAME] = p->author_name;
    v[S_URL] = p->url;
    v[S_TEXT] = p->text != NULL ? p->text : "";
    v[S_LANG] = p->language != NULL && strcmp(p->language, "und") != 0 ? p->language : p->lang;
    for (i = 0; i < S_NFIELDS; i++) {
        len[i] = v[i] != NULL ? s_utf8_cut(v[i], max[i]) : 0;
        total += v[i] != NULL ? len[i] + 1 : 0;
    }
    for (i = 0; i < n; i++) {
        id_len[i] = strlen(ids[i]);
        total += id_len[i] + 1;
    }
    it = esc_malloc(sizeof(*it) + total);
    it->refs = 0;
    it->json = NULL;
    it->created_at = p->created_at;
    it->sentiment = p->sentiment;
    it->followers = p->followers;
    it->likes = p->likes;
    it->reposts = p->reposts;
    it->replies = p->replies;
    it->n_ids = n;
    at = it->data;
    for (i = 0; i < S_NFIELDS; i++) {
        if (v[i] == NULL) {
            it->off[i] = UINT32_MAX;
            continue;
        }
        it->off[i] = (uint32_t)(at - it->data);
        memcpy(at, v[i], len[i]);
        at[len[i]] = '\0';
        at += len[i] + 1;
    }
    for (i = 0; i < n; i++) {
        memcpy(at, ids[i], id_len[i] + 1);
        at += id_len[i] + 1;
    }
    return it;
}

static char *
s_item_str(struct s_item *it, enum s_field f)
{
    return it->off[f] == UINT32_MAX ? NULL : it->data + it->off[f];
}

/* The item's JSON (agg_live_post_json of what it copied), built on first use. Borrowed. */
static const char *
s_item_json(struct s_item *it)
{
    struct esc_post p;
    const char *ids[ESC_POST_LIST_MAX];
    const char *at;
    size_t i;

    if (it->json != NULL) {
        return it->json;
    }
    memset(&p, 0, sizeof(p));
    p.id = s_item_str(it, S_ID);
    p.platform = s_item_str(it, S_PLATFORM);
    p.author = s_item_str(it, S_AUTHOR);
    p.author_name = s_item_str(it, S_AUTHOR_NAME);
    p.url = s_item_str(it, S_URL);
    p.text = s_item_str(it, S_TEXT);
    p.lang = s_item_str(it, S_LANG);
    p.language = p.lang;
    p.created_at = it->created_at;
    p.sentiment = it->sentiment;
    p.followers = it->followers;
    p.likes = it->likes;
    p.reposts = it->reposts;
    p.replies = it->replies;
    at = it->data;
    for (i = 0; i < S_NFIELDS; i++) {
        if (it->off[i] != UINT32_MAX) {
            at = it->data + it->off[i] + strlen(it->data + it->off[i]) + 1;
        }
    }
    for (i = 0; i < it->n_ids; i++) {
        ids[i] = at;
        at += strlen(at) + 1;
    }
    it->json = agg_live_post_json(&p, ids, it->n_ids);
    it->json_len = strlen(it->json);
    return it->json;
}

void
agg_live_add(agg_live_t *self, const struct esc_post *p, const char *const *topics, size_t n)
{
    const char *ids[ESC_POST_LIST_MAX];
    size_t done[ESC_POST_LIST_MAX];
    size_t n_done = 0;
    size_t i;
    size_t j;

    for (i = 0; i < n && i < ESC_POST_LIST_MAX; i++) {
        const char *slash = strchr(topics[i], '/');
        size_t tlen;
        size_t n_ids = 0;
        int seen = 0;
        struct s_ring *team;
        struct s_item *it;

        if (slash == NULL) {
            continue;
        }
        tlen = (size_t)(slash - topics[i]);
        for (j = 0; j < n_done && !seen; j++) {
            seen = strncmp(topics[done[j]], topics[i], tlen + 1) == 0;
        }
        if (seen) {
            continue; /* this team was handled with an earlier topic key */
        }
        done[n_done++] = i;
        for (j = i; j < n; j++) {
            if (strncmp(topics[j], topics[i], tlen + 1) == 0) {
                ids[n_ids++] = topics[j] + tlen + 1;
            }
        }
        team = s_ring_get(self->teams, &self->n_teams, AGG_LIVE_TEAMS_MAX, self->team_ix,
                          S_IX_TEAMS, topics[i], tlen);
        if (team == NULL) {
            self->st.dropped++;
            esc_log_every(&self->warn_every, 10000, "live: too many teams, post not published");
            continue;
        }
        it = s_item_new(p, ids, n_ids);
        self->st.dropped += (uint64_t)s_ring_push(team, it);
        for (j = i; j < n; j++) {
            struct s_ring *tr;

            if (strncmp(topics[j], topics[i], tlen + 1) != 0) {
                continue;
            }
            tr = s_ring_get(self->topics, &self->n_topics, AGG_LIVE_TOPICS_MAX, self->topic_ix,
                            S_IX_TOPICS, topics[j], strlen(topics[j]));
            if (tr != NULL) {
                s_ring_push(tr, it);
            }
        }
    }
}

esc_rc
agg_live_flush(agg_live_t *self, esc_kv_t *kv)
{
    size_t i;
    size_t k;
    size_t posts = 0;
    char key[256];
    esc_rc rc;

    if (self->n_teams == 0) {
        return ESC_OK;
    }
    for (i = 0; i < self->n_teams; i++) {
        struct s_ring *r = &self->teams[i];
        size_t cap = 3;
        size_t len = 0;
        char *msg;

        for (k = 0; k < r->n; k++) {
            struct s_item *it = r->item[(r->head + k) % AGG_LIVE_PER_TEAM];

            s_item_json(it);
            cap += it->json_len + 1;
        }
        msg = esc_malloc(cap);
        msg[len++] = '[';
        for (k = 0; k < r->n; k++) {
            const struct s_item *it = r->item[(r->head + k) % AGG_LIVE_PER_TEAM];

            if (k > 0) {
                msg[len++] = ',';
            }
            memcpy(msg + len, it->json, it->json_len);
            len += it->json_len;
        }
        msg[len++] = ']';
        msg[len] = '\0';
        snprintf(key, sizeof(key), "%s:live:{%s}", self->prefix, r->key);
        esc_kv_append(kv, "PUBLISH %s %b", key, msg, len);
        posts += r->n;
        esc_free(msg);
    }
    for (i = 0; i < self->n_topics; i++) {
        struct s_ring *r = &self->topics[i];
        const char *argv[2 + AGG_LIVE_PER_TEAM];
        size_t lens[2 + AGG_LIVE_PER_TEAM];
        int kl = snprintf(key, sizeof(key), "%s:latest:{%s}", self->prefix, r->key);

        /* one LPUSH of all (oldest first) leaves the list as one LPUSH per post would */
        argv[0] = "LPUSH";
        lens[0] = 5;
        argv[1] = key;
        lens[1] = kl > 0 && (size_t)kl < sizeof(key) ? (size_t)kl : strlen(key);
        for (k = 0; k < r->n; k++) {
            struct s_item *it = r->item[(r->head + k) % AGG_LIVE_PER_TEAM];

            argv[2 + k] = s_item_json(it);
            lens[2 + k] = it->json_len;
        }
        if (r->n > 0) {
            esc_kv_appendv(kv, (int)(2 + r->n), argv, lens);
        }
        esc_kv_append(kv, "LTRIM %s 0 %d", key, AGG_LIVE_LATEST_KEEP - 1);
    }
    rc = esc_kv_exec(kv, NULL);
    if (rc == ESC_OK) {
        self->st.published += self->n_teams;
        self->st.posts += posts;
    }
    else {
        self->st.dropped += posts;
        esc_log_debug("live posts dropped, redis unreachable posts=%zu", posts);
    }
    for (i = 0; i < self->n_teams; i++) {
        s_ring_clear(&self->teams[i]);
    }
    for (i = 0; i < self->n_topics; i++) {
        s_ring_clear(&self->topics[i]);
    }
    self->n_teams = 0;
    self->n_topics = 0;
    memset(self->team_ix, 0, S_IX_TEAMS * sizeof(*self->team_ix));
    memset(self->topic_ix, 0, S_IX_TOPICS * sizeof(*self->topic_ix));
    return rc == ESC_OK ? ESC_OK : ESC_RETRY;
}

void
agg_live_get_stats(const agg_live_t *self, struct agg_live_stats *out)
{
    *out = self->st;
}
