#define ESC_LOG_MODULE "live"
/* Live publisher: between two flushes, the newest AGG_LIVE_PER_TEAM matched posts of each team
 * and of each topic are held in small rings (older ones are dropped and counted: a live view
 * shows the newest). A ring holds items: a compact copy of what the JSON shows, for one post and
 * one team, with only that team's topic ids (a team's channel never names another team's
 * topics); the team's ring and its topics' rings share the item (reference counted). Items are
 * encoded to JSON only at the flush, once each, so the posts a ring drops before it (most of
 * them at a high rate) cost a copy, not an encoding. The flush writes every kept item's JSON
 * back to back into one buffer the live feed keeps from flush to flush (at 1,000 topics about
 * 20,000 items and 10 MB a flush; a worst-case-sized allocation per item, freed again, touched
 * fresh pages every flush), then turns the rings into one PUBLISH per team and LPUSH + LTRIM
 * per topic, pipelined in round trips of about 1 MB. Nothing is retried: the counters are the
 * record; this is the window onto them. Single-threaded. */
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

/* Bytes kept of each string field, in s_field order. */
static const size_t s_field_max[S_NFIELDS] = { 256, 64, 256, 256, 2048, AGG_LIVE_TEXT_MAX, 16 };

/* One post for one team. Strings are cut as the JSON shows them, back to back in data. */
struct s_item {
    int refs;                        /* rings holding it */
    unsigned cls;                    /* its size class (S_POOL_UNIT bytes each), 0: not pooled */
    struct s_item *next;             /* in its class's free list */
    size_t json_off;                 /* its JSON in the flush buffer, once json_len > 0 */
    size_t json_len;
    int64_t created_at;
    double sentiment;
    int64_t followers;
    int64_t likes;
    int64_t reposts;
    int64_t replies;
    uint32_t off[S_NFIELDS];         /* offset of each string in data, UINT32_MAX = NULL */
    uint32_t len[S_NFIELDS];         /* its length */
    uint32_t ids_off;                /* the topic ids, NUL-terminated each, from here in data */
    size_t n_ids;
    char data[];
};

/* What one live post's JSON shows (agg_live_post_json, or an item): strings already cut. */
struct s_view {
    const char *v[S_NFIELDS];        /* NULL: the field is left out */
    size_t len[S_NFIELDS];
    const char *ids[ESC_POST_LIST_MAX];
    size_t id_len[ESC_POST_LIST_MAX];
    size_t n_ids;
    int64_t created_at;
    double sentiment;
    int64_t followers;
    int64_t likes;
    int64_t reposts;
    int64_t replies;
};

/* A flush sends its commands in round trips of about this many bytes: one pipeline of a whole
 * flush (10 MB and more at 1,000 topics) made the Redis client's output buffer grow, and the
 * kernel hand it fresh zeroed pages, on every flush. */
#define S_ROUND_BYTES ((size_t)1 << 20)

/* head and n first: with the start of the key they share the cache line a lookup reads */
struct s_ring {
    size_t head;
    size_t n;
    char key[140];                   /* team id, or topic key "team/topic" */
    struct s_item *item[AGG_LIVE_PER_TEAM]; /* a reference each; oldest at head */
};

/* A real as the JSON shows it, by its bits: sentiments repeat a lot (sums of lexicon scores;
 * a few thousand values in 100,000 posts), and snprintf("%.4g") was a fifth of the encoding. */
#define S_REALS 1024                 /* slots, a power of two */
struct s_real {
    uint64_t bits;
    uint8_t len;                     /* of s; 0 = empty slot */
    char s[23];
};

/* Items are recycled through free lists by size class (multiples of S_POOL_UNIT bytes, up to
 * S_POOL_CLASSES of them; bigger ones are freed): at a high rate every post makes an item and
 * drops an older one, and malloc's search for each differently sized block was a third of
 * agg_live_add. The items a whole flush interval did not need are freed at its flush. */
#define S_POOL_UNIT 128
#define S_POOL_CLASSES 64

/* A growable byte buffer. */
struct s_buf {
    char *buf;
    size_t len;
    size_t cap;
};

struct agg_live {
    char prefix[64];
    struct s_buf json;               /* the items' JSON during a flush; kept for the next one */
    struct s_buf msg;                /* one team's message being built */
    struct s_real *reals;            /* S_REALS slots */
    struct s_item *pool[S_POOL_CLASSES + 1]; /* free items by class (index 0 unused) */
    size_t pool_n[S_POOL_CLASSES + 1];       /* in each list */
    size_t pool_low[S_POOL_CLASSES + 1];     /* the fewest since the last flush */
    struct s_ring *teams;            /* max_teams */
    size_t n_teams;
    size_t max_teams;
    uint32_t *team_ix;               /* ix_teams slots (a power of two, at least twice
                                        max_teams): ring index + 1 by key hash, 0 empty */
    size_t ix_teams;
    struct s_ring *topics;           /* max_topics */
    size_t n_topics;
    size_t max_topics;
    uint32_t *topic_ix;              /* ix_topics slots, likewise */
    size_t ix_topics;
    struct agg_live_stats st;
    struct esc_log_every warn_every;
};

/* The smallest power of two at least twice n. */
static size_t
s_ix_size(size_t n)
{
    size_t c = 16;

    while (c < 2 * n) {
        c *= 2;
    }
    return c;
}

agg_live_t *
agg_live_new(const char *prefix, size_t teams, size_t topics)
{
    agg_live_t *self = esc_calloc(1, sizeof(*self));

    esc_strlcpy(self->prefix, prefix, sizeof(self->prefix));
    self->max_teams = teams > AGG_LIVE_TEAMS_MIN ? teams : AGG_LIVE_TEAMS_MIN;
    self->max_topics = topics > AGG_LIVE_TOPICS_MIN ? topics : AGG_LIVE_TOPICS_MIN;
    self->ix_teams = s_ix_size(self->max_teams);
    self->ix_topics = s_ix_size(self->max_topics);
    self->teams = esc_calloc(self->max_teams, sizeof(*self->teams));
    self->topics = esc_calloc(self->max_topics, sizeof(*self->topics));
    self->team_ix = esc_calloc(self->ix_teams, sizeof(*self->team_ix));
    self->topic_ix = esc_calloc(self->ix_topics, sizeof(*self->topic_ix));
    self->reals = esc_calloc(S_REALS, sizeof(*self->reals));
    return self;
}

/* An item of at least size bytes: a recycled one of its class, or a new one. */
static struct s_item *
s_item_alloc(agg_live_t *self, size_t size)
{
    size_t cls = (size + S_POOL_UNIT - 1) / S_POOL_UNIT;
    struct s_item *it;

    if (cls > S_POOL_CLASSES) {
        it = esc_malloc(size);
        it->cls = 0;
        return it;
    }
    it = self->pool[cls];
    if (it == NULL) {
        it = esc_malloc(cls * S_POOL_UNIT);
        it->cls = (unsigned)cls;
        return it;
    }
    self->pool[cls] = it->next;
    self->pool_n[cls]--;
    if (self->pool_n[cls] < self->pool_low[cls]) {
        self->pool_low[cls] = self->pool_n[cls];
    }
    return it;
}

/* Frees the recycled items the interval since the last call did not need (all with all). */
static void
s_pool_trim(agg_live_t *self, int all)
{
    size_t c;

    for (c = 1; c <= S_POOL_CLASSES; c++) {
        size_t n = all ? self->pool_n[c] : self->pool_low[c];

        while (n > 0) {
            struct s_item *it = self->pool[c];

            self->pool[c] = it->next;
            self->pool_n[c]--;
            esc_free(it);
            n--;
        }
        self->pool_low[c] = self->pool_n[c];
    }
}

static void
s_item_unref(agg_live_t *self, struct s_item **it_p)
{
    struct s_item *it = *it_p;

    *it_p = NULL;
    if (it == NULL || --it->refs > 0) {
        return;
    }
    if (it->cls == 0) {
        esc_free(it);
        return;
    }
    it->next = self->pool[it->cls];
    self->pool[it->cls] = it;
    self->pool_n[it->cls]++;
}

static void
s_ring_clear(agg_live_t *self, struct s_ring *r)
{
    size_t i;

    for (i = 0; i < r->n; i++) {
        s_item_unref(self, &r->item[(r->head + i) % AGG_LIVE_PER_TEAM]);
    }
    r->head = 0;
    r->n = 0;
}

/* Appends a reference to it; the oldest is dropped when full. Returns 1 when one was dropped. */
static int
s_ring_push(agg_live_t *self, struct s_ring *r, struct s_item *it)
{
    int dropped = 0;

    if (r->n == AGG_LIVE_PER_TEAM) {
        s_item_unref(self, &r->item[r->head]);
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
        s_ring_clear(self, &self->teams[i]);
    }
    for (i = 0; i < self->n_topics; i++) {
        s_ring_clear(self, &self->topics[i]);
    }
    s_pool_trim(self, 1);
    esc_free(self->teams);
    esc_free(self->topics);
    esc_free(self->team_ix);
    esc_free(self->topic_ix);
    esc_free(self->json.buf);
    esc_free(self->msg.buf);
    esc_free(self->reals);
    esc_free(self);
    *self_p = NULL;
}

/* Room for n more bytes in b. */
static void
s_buf_reserve(struct s_buf *b, size_t n)
{
    if (b->cap - b->len >= n) {
        return;
    }
    b->cap = b->cap * 2 > b->len + n ? b->cap * 2 : b->len + n;
    b->buf = esc_realloc(b->buf, b->cap);
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

/* Length of the UTF-8 sequence that starts s[0, n) with a byte >= 0x80, or 0 when it is not
 * valid UTF-8 (RFC 3629: no overlong forms, surrogates or code points above U+10FFFF), the
 * rule jansson applies to the strings of the API's JSON. */
static size_t
s_utf8_seq(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    uint32_t cp;
    size_t len;
    size_t k;

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
    if (len > n) {
        return 0;
    }
    for (k = 1; k < len; k++) {
        unsigned char d = s[k];

        if (d < 0x80 || d > 0xBF) {
            return 0;
        }
        cp = (cp << 6) | (d & 0x3Fu);
    }
    if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF) || (len == 3 && cp < 0x800)
        || (len == 4 && cp < 0x10000)) {
        return 0;
    }
    return len;
}

/* Output of agg_live_post_json: written once into a buffer sized for the worst case. */
struct s_out {
    char *buf;
    size_t len;
    struct s_real *reals;            /* formatted reals to reuse (S_REALS), or NULL */
};

static void
s_out_raw(struct s_out *o, const char *s, size_t n)
{
    memcpy(o->buf + o->len, s, n);
    o->len += n;
}

/* Nonzero when one of the eight bytes of w is not plain printable ASCII for a JSON string:
 * below 0x20, a quote, a backslash, or >= 0x80 (the usual "has a byte less than / equal to"
 * word tricks; exact for the word as a whole, which is all that is asked). */
static inline uint64_t
s_word_stops(uint64_t w)
{
    const uint64_t ones = 0x0101010101010101ULL;
    const uint64_t high = 0x8080808080808080ULL;
    uint64_t q = w ^ (ones * '"');
    uint64_t b = w ^ (ones * '\\');

    return (((w - ones * 0x20) & ~w) | ((q - ones) & ~q) | ((b - ones) & ~b) | w) & high;
}

/* A JSON string of s[0, n) escaped like jansson's compact dump: quote, backslash and control
 * characters (\b \f \n \r \t, else \u00XX), everything else as it is; at most 6 n + 2 bytes.
 * Returns 0 and writes nothing when s[0, n) is not valid UTF-8. One pass: the text is checked
 * while it is copied (plain ASCII eight bytes at a time). */
static int
s_out_str(struct s_out *o, const char *str, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    const unsigned char *s = (const unsigned char *)str;
    size_t start = o->len;
    size_t i = 0;

    o->buf[o->len++] = '"';
    while (i < n) {
        size_t run = i;
        unsigned char c;
        char *at;
        uint64_t w;

        while (run + 8 <= n) {
            uint64_t stops;

            memcpy(&w, s + run, 8);
            stops = s_word_stops(w);
            if (stops != 0) {
#if defined(__GNUC__) && defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
                /* the lowest flagged byte is exact (the tricks only flag bytes above a real
                 * one wrongly): it is the first byte to stop at */
                run += (size_t)__builtin_ctzll(stops) / 8;
#endif
                break;
            }
            run += 8;
        }
        while (run < n && s[run] >= 0x20 && s[run] < 0x80 && s[run] != '"' && s[run] != '\\') {
            run++;
        }
        memcpy(o->buf + o->len, s + i, run - i);
        o->len += run - i;
        i = run;
        if (i == n) {
            break;
        }
        c = s[i];
        if (c >= 0x80) {
            size_t len = s_utf8_seq(s + i, n - i);

            if (len == 0) {
                o->len = start;
                return 0;
            }
            memcpy(o->buf + o->len, s + i, len);
            o->len += len;
            i += len;
            continue;
        }
        at = o->buf + o->len;
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
            i++;
            continue;
        }
        o->len += 2;
        i++;
    }
    o->buf[o->len++] = '"';
    return 1;
}

/* "key": for one of the fixed keys (plain ASCII, nothing to escape). */
static void
s_out_key(struct s_out *o, const char *key)
{
    size_t n = strlen(key);

    o->buf[o->len++] = '"';
    memcpy(o->buf + o->len, key, n);
    o->len += n;
    o->buf[o->len++] = '"';
    o->buf[o->len++] = ':';
}

/* ,"key":"value" with value v[0, n) (already cut); nothing when v is NULL; "" when the value
 * is not valid UTF-8 (the decoders upstream should not let it through). */
static void
s_out_field_str(struct s_out *o, const char *key, const char *v, size_t n)
{
    if (v == NULL) {
        return;
    }
    if (o->len > 1) {
        o->buf[o->len++] = ',';
    }
    s_out_key(o, key);
    if (!s_out_str(o, v, n)) {
        s_out_raw(o, "\"\"", 2);
    }
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
    s_out_key(o, key);
    s_out_i64(o, v);
}

/* A real as jansson writes it with JSON_REAL_PRECISION(4): "%.4g", ".0" added when that
 * reads as an integer, the exponent without '+' or leading zeros. Non-finite values are left
 * out (jansson has no such reals). */
static void
s_out_field_real(struct s_out *o, const char *key, double v)
{
    struct s_real *r = NULL;
    uint64_t bits = 0;
    char num[48];
    char *e;
    size_t n;

    if (!isfinite(v)) {
        return;
    }
    o->buf[o->len++] = ',';
    s_out_key(o, key);
    if (o->reals != NULL) {
        memcpy(&bits, &v, sizeof(bits));
        r = &o->reals[(((bits ^ (bits >> 29)) * 0x9E3779B97F4A7C15ULL) >> 54) & (S_REALS - 1)];
        if (r->len > 0 && r->bits == bits) {
            s_out_raw(o, r->s, r->len);
            return;
        }
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
    s_out_raw(o, num, n);
    if (r != NULL && n < sizeof(r->s)) {
        r->bits = bits;
        r->len = (uint8_t)n;
        memcpy(r->s, num, n);
    }
}

/* Bytes the JSON of view can take at most: every byte escaped as \u00XX. */
static size_t
s_view_cap(const struct s_view *w)
{
    size_t cap = 512; /* keys, numbers, punctuation */
    size_t i;

    for (i = 0; i < S_NFIELDS; i++) {
        cap += 6 * w->len[i];
    }
    for (i = 0; i < w->n_ids; i++) {
        cap += 6 * w->id_len[i] + 3;
    }
    return cap;
}

/* Writes the JSON object of view into o (room for s_view_cap bytes). */
static void
s_view_json(struct s_out *o, const struct s_view *w)
{
    size_t first;
    size_t i;

    o->buf[o->len++] = '{';
    s_out_field_str(o, "id", w->v[S_ID], w->len[S_ID]);
    s_out_field_str(o, "platform", w->v[S_PLATFORM], w->len[S_PLATFORM]);
    s_out_field_str(o, "author", w->v[S_AUTHOR], w->len[S_AUTHOR]);
    s_out_field_str(o, "author_name", w->v[S_AUTHOR_NAME], w->len[S_AUTHOR_NAME]);
    s_out_field_str(o, "url", w->v[S_URL], w->len[S_URL]);
    if (o->len == 1) {
        /* no string field so far: created_at opens the object */
        s_out_raw(o, "\"created_at\":", 13);
        s_out_i64(o, w->created_at);
    }
    else {
        s_out_field_i64(o, "created_at", w->created_at);
    }
    s_out_field_str(o, "text", w->v[S_TEXT], w->len[S_TEXT]);
    s_out_raw(o, ",\"topics\":[", 11);
    first = 1;
    for (i = 0; i < w->n_ids; i++) {
        size_t at = o->len;

        if (!first) {
            o->buf[o->len++] = ',';
        }
        if (!s_out_str(o, w->ids[i], w->id_len[i])) {
            o->len = at; /* jansson refuses such a string: the array leaves it out */
            continue;
        }
        first = 0;
    }
    o->buf[o->len++] = ']';
    s_out_field_str(o, "lang", w->v[S_LANG], w->len[S_LANG]);
    s_out_field_real(o, "sentiment", w->sentiment);
    s_out_field_i64(o, "followers", w->followers > 0 ? w->followers : 0);
    s_out_field_i64(o, "likes", w->likes > 0 ? w->likes : 0);
    s_out_field_i64(o, "reposts", w->reposts > 0 ? w->reposts : 0);
    s_out_field_i64(o, "replies", w->replies > 0 ? w->replies : 0);
    o->buf[o->len++] = '}';
}

/* The string fields of p as the JSON shows them: the language is the classifier's unless it
 * is "und", else the platform's; a missing text is "". */
static void
s_view_fields(struct s_view *w, const struct esc_post *p)
{
    size_t i;

    w->v[S_ID] = p->id;
    w->v[S_PLATFORM] = p->platform;
    w->v[S_AUTHOR] = p->author;
    w->v[S_AUTHOR_NAME] = p->author_name;
    w->v[S_URL] = p->url;
    w->v[S_TEXT] = p->text != NULL ? p->text : "";
    w->v[S_LANG] = p->language != NULL && strcmp(p->language, "und") != 0 ? p->language
                                                                           : p->lang;
    for (i = 0; i < S_NFIELDS; i++) {
        w->len[i] = w->v[i] != NULL ? s_utf8_cut(w->v[i], s_field_max[i]) : 0;
    }
    w->created_at = p->created_at;
    w->sentiment = p->sentiment;
    w->followers = p->followers;
    w->likes = p->likes;
    w->reposts = p->reposts;
    w->replies = p->replies;
}

char *
agg_live_post_json(const struct esc_post *p, const char *const *topic_ids, size_t n)
{
    struct s_view w;
    struct s_out o;
    size_t cap;
    size_t i;

    ESC_ASSERT(n <= ESC_POST_LIST_MAX);
    s_view_fields(&w, p);
    for (i = 0; i < n; i++) {
        w.ids[i] = topic_ids[i];
        w.id_len[i] = strlen(topic_ids[i]);
    }
    w.n_ids = n;
    cap = s_view_cap(&w);
    o.buf = esc_malloc(cap);
    o.len = 0;
    o.reals = NULL;
    s_view_json(&o, &w);
    ESC_ASSERT(o.len < cap);
    o.buf[o.len] = '\0';
    return o.buf;
}

/* A new item (no reference yet) for post p with the n topic ids. */
static struct s_item *
s_item_new(agg_live_t *self, const struct esc_post *p, const char *const *ids, size_t n)
{
    struct s_view w;
    size_t total = 0;
    struct s_item *it;
    char *at;
    size_t i;

    s_view_fields(&w, p);
    for (i = 0; i < S_NFIELDS; i++) {
        total += w.v[i] != NULL ? w.len[i] + 1 : 0;
    }
    for (i = 0; i < n; i++) {
        w.id_len[i] = strlen(ids[i]);
        total += w.id_len[i] + 1;
    }
    it = s_item_alloc(self, sizeof(*it) + total);
    it->refs = 0;
    it->json_off = 0;
    it->json_len = 0;
    it->created_at = w.created_at;
    it->sentiment = w.sentiment;
    it->followers = w.followers;
    it->likes = w.likes;
    it->reposts = w.reposts;
    it->replies = w.replies;
    it->n_ids = n;
    at = it->data;
    for (i = 0; i < S_NFIELDS; i++) {
        it->len[i] = (uint32_t)w.len[i];
        if (w.v[i] == NULL) {
            it->off[i] = UINT32_MAX;
            continue;
        }
        it->off[i] = (uint32_t)(at - it->data);
        memcpy(at, w.v[i], w.len[i]);
        at[w.len[i]] = '\0';
        at += w.len[i] + 1;
    }
    it->ids_off = (uint32_t)(at - it->data);
    for (i = 0; i < n; i++) {
        memcpy(at, ids[i], w.id_len[i] + 1);
        at += w.id_len[i] + 1;
    }
    return it;
}

/* Writes the item's JSON (what agg_live_post_json gives for what it copied) into the flush
 * buffer, once. */
static void
s_item_encode(agg_live_t *self, struct s_item *it)
{
    struct s_view w;
    struct s_out o;
    const char *at;
    size_t cap;
    size_t i;

    if (it->json_len > 0) {
        return;
    }
    for (i = 0; i < S_NFIELDS; i++) {
        w.v[i] = it->off[i] == UINT32_MAX ? NULL : it->data + it->off[i];
        w.len[i] = it->len[i];
    }
    at = it->data + it->ids_off;
    for (i = 0; i < it->n_ids; i++) {
        w.ids[i] = at;
        w.id_len[i] = strlen(at);
        at += w.id_len[i] + 1;
    }
    w.n_ids = it->n_ids;
    w.created_at = it->created_at;
    w.sentiment = it->sentiment;
    w.followers = it->followers;
    w.likes = it->likes;
    w.reposts = it->reposts;
    w.replies = it->replies;
    cap = s_view_cap(&w);
    s_buf_reserve(&self->json, cap);
    o.buf = self->json.buf + self->json.len;
    o.len = 0;
    o.reals = self->reals;
    s_view_json(&o, &w);
    ESC_ASSERT(o.len <= cap);
    it->json_off = self->json.len;
    it->json_len = o.len;
    self->json.len += o.len;
}

/* The JSON s_item_encode wrote; valid until the flush buffer grows. */
static const char *
s_item_json(const agg_live_t *self, const struct s_item *it)
{
    return self->json.buf + it->json_off;
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
        team = s_ring_get(self->teams, &self->n_teams, self->max_teams, self->team_ix,
                          self->ix_teams, topics[i], tlen);
        if (team == NULL) {
            self->st.dropped++;
            esc_log_every(&self->warn_every, 10000, "live: too many teams, post not published");
            continue;
        }
        it = s_item_new(self, p, ids, n_ids);
        self->st.dropped += (uint64_t)s_ring_push(self, team, it);
        for (j = i; j < n; j++) {
            struct s_ring *tr;

            if (strncmp(topics[j], topics[i], tlen + 1) != 0) {
                continue;
            }
            tr = s_ring_get(self->topics, &self->n_topics, self->max_topics, self->topic_ix,
                            self->ix_topics, topics[j], strlen(topics[j]));
            if (tr != NULL) {
                s_ring_push(self, tr, it);
            }
        }
    }
}

/* s_item_encode for every item of r. */
static void
s_ring_encode(agg_live_t *self, const struct s_ring *r)
{
    size_t k;

    for (k = 0; k < r->n; k++) {
        s_item_encode(self, r->item[(r->head + k) % AGG_LIVE_PER_TEAM]);
    }
}

/* Commands of a flush queued since its last round trip. */
struct s_round {
    esc_kv_t *kv;
    size_t bytes;                    /* argument bytes queued */
    size_t teams;                    /* team messages among them */
    size_t posts;                    /* their posts */
    int failed;                      /* a round trip failed: the rest of the flush is dropped */
};

/* Sends what is queued (unless an earlier round trip failed) and counts its team messages as
 * published or dropped. */
static void
s_round_end(agg_live_t *self, struct s_round *rd)
{
    if (!rd->failed && esc_kv_exec(rd->kv, NULL) != ESC_OK) {
        rd->failed = 1;
    }
    if (rd->failed) {
        self->st.dropped += rd->posts;
    }
    else {
        self->st.published += rd->teams;
        self->st.posts += rd->posts;
    }
    rd->bytes = 0;
    rd->teams = 0;
    rd->posts = 0;
}

/* Queues one command; a round trip goes once S_ROUND_BYTES are queued. */
static void
s_round_add(agg_live_t *self, struct s_round *rd, int argc, const char **argv,
            const size_t *lens)
{
    int i;

    if (rd->failed) {
        return;
    }
    esc_kv_appendv(rd->kv, argc, argv, lens);
    for (i = 0; i < argc; i++) {
        rd->bytes += lens[i];
    }
    if (rd->bytes >= S_ROUND_BYTES) {
        s_round_end(self, rd);
    }
}

esc_rc
agg_live_flush(agg_live_t *self, esc_kv_t *kv)
{
    const char *argv[2 + AGG_LIVE_PER_TEAM];
    size_t lens[2 + AGG_LIVE_PER_TEAM];
    struct s_round rd;
    uint64_t dropped = self->st.dropped;
    size_t i;
    size_t k;
    char key[256];
    char keep[24];
    int kl;

    if (self->n_teams == 0) {
        return ESC_OK;
    }
    memset(&rd, 0, sizeof(rd));
    rd.kv = kv;
    /* every kept item's JSON first, so the buffer no longer moves while commands point in it */
    self->json.len = 0;
    for (i = 0; i < self->n_teams; i++) {
        s_ring_encode(self, &self->teams[i]);
    }
    for (i = 0; i < self->n_topics; i++) {
        s_ring_encode(self, &self->topics[i]);
    }
    for (i = 0; i < self->n_teams; i++) {
        struct s_ring *r = &self->teams[i];
        struct s_buf *m = &self->msg;

        m->len = 0;
        s_buf_reserve(m, 2);
        m->buf[m->len++] = '[';
        for (k = 0; k < r->n; k++) {
            const struct s_item *it = r->item[(r->head + k) % AGG_LIVE_PER_TEAM];

            s_buf_reserve(m, it->json_len + 2);
            if (k > 0) {
                m->buf[m->len++] = ',';
            }
            memcpy(m->buf + m->len, s_item_json(self, it), it->json_len);
            m->len += it->json_len;
        }
        m->buf[m->len++] = ']';
        kl = snprintf(key, sizeof(key), "%s:live:{%s}", self->prefix, r->key);
        argv[0] = "PUBLISH";
        lens[0] = 7;
        argv[1] = key;
        lens[1] = kl > 0 && (size_t)kl < sizeof(key) ? (size_t)kl : strlen(key);
        argv[2] = m->buf;
        lens[2] = m->len;
        rd.teams++;
        rd.posts += r->n;
        s_round_add(self, &rd, 3, argv, lens);
    }
    snprintf(keep, sizeof(keep), "%d", AGG_LIVE_LATEST_KEEP - 1);
    for (i = 0; i < self->n_topics; i++) {
        struct s_ring *r = &self->topics[i];

        kl = snprintf(key, sizeof(key), "%s:latest:{%s}", self->prefix, r->key);
        /* one LPUSH of all (oldest first) leaves the list as one LPUSH per post would */
        argv[0] = "LPUSH";
        lens[0] = 5;
        argv[1] = key;
        lens[1] = kl > 0 && (size_t)kl < sizeof(key) ? (size_t)kl : strlen(key);
        for (k = 0; k < r->n; k++) {
            const struct s_item *it = r->item[(r->head + k) % AGG_LIVE_PER_TEAM];

            argv[2 + k] = s_item_json(self, it);
            lens[2 + k] = it->json_len;
        }
        if (r->n > 0) {
            s_round_add(self, &rd, (int)(2 + r->n), argv, lens);
        }
        argv[0] = "LTRIM";
        lens[0] = 5;
        argv[2] = "0";
        lens[2] = 1;
        argv[3] = keep;
        lens[3] = strlen(keep);
        s_round_add(self, &rd, 4, argv, lens);
    }
    s_round_end(self, &rd);
    if (rd.failed) {
        esc_log_debug("live posts dropped, redis unreachable posts=%llu",
                      (unsigned long long)(self->st.dropped - dropped));
    }
    for (i = 0; i < self->n_teams; i++) {
        s_ring_clear(self, &self->teams[i]);
    }
    for (i = 0; i < self->n_topics; i++) {
        s_ring_clear(self, &self->topics[i]);
    }
    s_pool_trim(self, 0);
    self->n_teams = 0;
    self->n_topics = 0;
    memset(self->team_ix, 0, self->ix_teams * sizeof(*self->team_ix));
    memset(self->topic_ix, 0, self->ix_topics * sizeof(*self->topic_ix));
    /* the buffers stay for the next flush unless this one needed far less (a burst is over) */
    if (self->json.cap > ((size_t)1 << 20) && self->json.len < self->json.cap / 4) {
        ESC_FREE(self->json.buf);
        self->json.cap = 0;
    }
    self->json.len = 0;
    if (self->msg.cap > ((size_t)1 << 20)) {
        ESC_FREE(self->msg.buf);
        self->msg.cap = 0;
    }
    return rd.failed ? ESC_RETRY : ESC_OK;
}

void
agg_live_get_stats(const agg_live_t *self, struct agg_live_stats *out)
{
    *out = self->st;
}
