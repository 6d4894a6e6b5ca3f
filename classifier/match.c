#define ESC_LOG_MODULE "match"
/* The compiled keyword matcher. Keywords are tokenised with the same cls_text code as posts and
 * stored as element sequences (kind + normalised text) in one string pool. cls_match_build
 * groups keywords by the text of their first element and puts each group in an open-addressing
 * hash table (FNV-1a, linear probing, at most half full). cls_match_run looks every post token
 * up once; a hit walks only the keywords that start with that text, checks the token kind
 * (term / #tag / @handle) and, for phrases, the main tokens at the following positions. Topics
 * already matched are skipped through a generation-stamped mark array in the caller's result,
 * so nothing is cleared between posts. A built matcher is read-only. */
#include <stdlib.h>
#include <string.h>

#include "escucha/esc_log.h"
#include "escucha/esc_mem.h"
#include "escucha/esc_util.h"

#include "match.h"

struct s_elem {
    uint32_t off;  /* text in the pool */
    uint32_t len;
    uint8_t kind;  /* CLS_TOK_WORD, CLS_TOK_HASHTAG or CLS_TOK_MENTION */
};

struct s_kw {
    char *text;      /* as written in the config */
    uint32_t topic;  /* topic index */
    uint32_t elem;   /* first element in elems */
    uint32_t n_elem; /* 1 = term/#tag/@handle, more = phrase */
};

struct s_slot {
    uint64_t hash;
    uint32_t key_off; /* text of the group's first element, in the pool */
    uint32_t key_len;
    uint32_t first;   /* first entry of the group in order[] */
    uint32_t count;   /* keywords in the group; 0 = empty slot */
};

struct cls_match {
    struct cls_text_opts opts;
    cls_text_t *txt;        /* tokeniser for keywords, freed by build */
    char **keys;            /* topic keys "team/topic" */
    size_t n_topics;
    size_t cap_topics;
    struct s_kw *kws;
    size_t n_kws;
    size_t cap_kws;
    struct s_elem *elems;
    size_t n_elems;
    size_t cap_elems;
    char *pool;
    size_t pool_len;
    size_t pool_cap;
    uint32_t *order;        /* keyword indexes grouped by first element text */
    struct s_slot *slots;
    size_t n_slots;         /* power of two */
    bool built;
};

/* Sort entry used while building. */
struct s_sortkey {
    const char *s;
    uint32_t len;
    uint32_t kw;
};

cls_match_t *
cls_match_new(const struct cls_text_opts *opts)
{
    cls_match_t *self = esc_calloc(1, sizeof(*self));

    self->opts = *opts;
    self->txt = cls_text_new();
    return self;
}

void
cls_match_destroy(cls_match_t **self_p)
{
    cls_match_t *self;
    size_t i;

    if (self_p == NULL || *self_p == NULL) {
        return;
    }
    self = *self_p;
    for (i = 0; i < self->n_topics; i++) {
        esc_free(self->keys[i]);
    }
    for (i = 0; i < self->n_kws; i++) {
        esc_free(self->kws[i].text);
    }
    cls_text_destroy(&self->txt);
    esc_free(self->keys);
    esc_free(self->kws);
    esc_free(self->elems);
    esc_free(self->pool);
    esc_free(self->order);
    esc_free(self->slots);
    esc_free(self);
    *self_p = NULL;
}

static void *
s_grow(void *p, size_t *cap, size_t need, size_t elem)
{
    size_t ncap = *cap == 0 ? 16 : *cap;

    if (need <= *cap) {
        return p;
    }
    while (ncap < need) {
        ncap *= 2;
    }
    *cap = ncap;
    return esc_realloc(p, ncap * elem);
}

static uint64_t
s_hash(const char *s, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    size_t i;

    for (i = 0; i < len; i++) {
        h ^= (unsigned char)s[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

/* Trims ASCII white space and one pair of enclosing quotes ("..." or U+201C...U+201D). */
static void
s_strip(const char *s, size_t *from, size_t *to)
{
    size_t a = 0;
    size_t b = strlen(s);

    while (a < b && (s[a] == ' ' || s[a] == '\t' || s[a] == '\n' || s[a] == '\r')) {
        a++;
    }
    while (b > a && (s[b - 1] == ' ' || s[b - 1] == '\t' || s[b - 1] == '\n' || s[b - 1] == '\r')) {
        b--;
    }
    if (b - a >= 2 && s[a] == '"' && s[b - 1] == '"') {
        a++;
        b--;
    }
    else if (b - a >= 6 && memcmp(s + a, "\xe2\x80\x9c", 3) == 0
             && memcmp(s + b - 3, "\xe2\x80\x9d", 3) == 0) {
        a += 3;
        b -= 3;
    }
    *from = a;
    *to = b;
}

static bool
s_is_main(uint8_t kind)
{
    return kind == CLS_TOK_WORD || kind == CLS_TOK_HASHTAG || kind == CLS_TOK_MENTION;
}

/* Compiles one keyword; on failure fills err and returns -1 (caller rolls back). */
static int
s_compile(cls_match_t *self, uint32_t topic, const char *kw, const char *path, size_t k,
          struct esc_error *err)
{
    const struct cls_token *toks;
    size_t n_toks;
    size_t from;
    size_t to;
    size_t i;
    uint32_t n_main = 0;
    struct s_kw *c;

    s_strip(kw, &from, &to);
    cls_text_tokenize(self->txt, &self->opts, kw + from, to - from);
    toks = cls_text_tokens(self->txt, &n_toks);
    for (i = 0; i < n_toks; i++) {
        n_main += s_is_main(toks[i].kind) ? 1 : 0;
    }
    if (n_main == 0) {
        esc_error_set(err, 0,
                      "%s.keywords[%zu]: keyword \"%s\" has nothing to match after "
                      "normalisation (it needs letters or digits outside a URL)",
                      path, k, kw);
        return -1;
    }
    if (n_main > CLS_PHRASE_MAX) {
        esc_error_set(err, 0, "%s.keywords[%zu]: phrase has %u words (max %d)", path, k,
                      (unsigned)n_main, CLS_PHRASE_MAX);
        return -1;
    }
    self->kws = s_grow(self->kws, &self->cap_kws, self->n_kws + 1, sizeof(*self->kws));
    c = &self->kws[self->n_kws++];
    c->text = esc_strdup(kw);
    c->topic = topic;
    c->elem = (uint32_t)self->n_elems;
    c->n_elem = n_main;
    for (i = 0; i < n_toks; i++) {
        struct s_elem *e;

        if (!s_is_main(toks[i].kind)) {
            continue;
        }
        self->pool = s_grow(self->pool, &self->pool_cap, self->pool_len + toks[i].len, 1);
        self->elems = s_grow(self->elems, &self->cap_elems, self->n_elems + 1,
                             sizeof(*self->elems));
        e = &self->elems[self->n_elems++];
        e->off = (uint32_t)self->pool_len;
        e->len = toks[i].len;
        e->kind = toks[i].kind;
        memcpy(self->pool + self->pool_len, cls_text_tok_str(self->txt, &toks[i]), toks[i].len);
        self->pool_len += toks[i].len;
    }
    return 0;
}

int
cls_match_add_topic(cls_match_t *self, const char *key, const char *const *keywords,
                    size_t n_keywords, const char *path, struct esc_error *err)
{
    size_t n_kws = self->n_kws;
    size_t n_elems = self->n_elems;
    size_t pool_len = self->pool_len;
    size_t k;

    ESC_ASSERT(!self->built);
    for (k = 0; k < n_keywords; k++) {
        if (s_compile(self, (uint32_t)self->n_topics, keywords[k], path, k, err) != 0) {
            while (self->n_kws > n_kws) {
                esc_free(self->kws[--self->n_kws].text);
            }
            self->n_elems = n_elems;
            self->pool_len = pool_len;
            return -1;
        }
    }
    self->keys = s_grow(self->keys, &self->cap_topics, self->n_topics + 1, sizeof(char *));
    self->keys[self->n_topics] = esc_strdup(key);
    return (int)self->n_topics++;
}

static int
s_sortkey_cmp(const void *a, const void *b)
{
    const struct s_sortkey *x = a;
    const struct s_sortkey *y = b;
    uint32_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->s, y->s, n);

    if (c != 0) {
        return c;
    }
    if (x->len != y->len) {
        return x->len < y->len ? -1 : 1;
    }
    return x->kw < y->kw ? -1 : (x->kw > y->kw ? 1 : 0);
}

void
cls_match_build(cls_match_t *self)
{
    struct s_sortkey *sk;
    size_t groups = 0;
    size_t i;
    size_t g;

    ESC_ASSERT(!self->built);
    sk = esc_calloc(self->n_kws + 1, sizeof(*sk));
    for (i = 0; i < self->n_kws; i++) {
        const struct s_elem *e = &self->elems[self->kws[i].elem];

        sk[i].s = self->pool + e->off;
        sk[i].len = e->len;
        sk[i].kw = (uint32_t)i;
    }
    qsort(sk, self->n_kws, sizeof(*sk), s_sortkey_cmp);
    for (i = 0; i < self->n_kws; i++) {
        if (i == 0 || sk[i].len != sk[i - 1].len || memcmp(sk[i].s, sk[i - 1].s, sk[i].len) != 0) {
            groups++;
        }
    }
    self->n_slots = 8;
    while (self->n_slots < groups * 2) {
        self->n_slots *= 2;
    }
    self->slots = esc_calloc(self->n_slots, sizeof(*self->slots));
    self->order = esc_calloc(self->n_kws + 1, sizeof(*self->order));
    for (i = 0; i < self->n_kws; i = g) {
        uint64_t h = s_hash(sk[i].s, sk[i].len);
        size_t slot = (size_t)h & (self->n_slots - 1);
        struct s_slot *sl;

        for (g = i; g < self->n_kws && sk[g].len == sk[i].len
                    && memcmp(sk[g].s, sk[i].s, sk[i].len) == 0;
             g++) {
            self->order[g] = sk[g].kw;
        }
        while (self->slots[slot].count != 0) {
            slot = (slot + 1) & (self->n_slots - 1);
        }
        sl = &self->slots[slot];
        sl->hash = h;
        sl->key_off = (uint32_t)(sk[i].s - self->pool);
        sl->key_len = sk[i].len;
        sl->first = (uint32_t)i;
        sl->count = (uint32_t)(g - i);
    }
    esc_free(sk);
    cls_text_destroy(&self->txt);
    self->built = true;
}

cls_match_t *
cls_match_from_cfg(const struct esc_cfg *cfg, const struct cls_text_opts *opts,
                   struct esc_error *err)
{
    cls_match_t *self = cls_match_new(opts);
    size_t ti;
    size_t k;

    if (err != NULL) {
        memset(err, 0, sizeof(*err));
        esc_strlcpy(err->source, cfg->path, sizeof(err->source));
    }
    for (ti = 0; ti < cfg->n_teams; ti++) {
        const struct esc_cfg_team *team = &cfg->teams[ti];

        for (k = 0; k < team->n_topics; k++) {
            const struct esc_cfg_topic *t = &team->topics[k];
            char path[96];

            snprintf(path, sizeof(path), "teams[%zu].topics[%zu]", ti, k);
            if (cls_match_add_topic(self, t->key, (const char *const *)t->keywords, t->n_keywords,
                                    path, err)
                < 0) {
                cls_match_destroy(&self);
                return NULL;
            }
        }
    }
    cls_match_build(self);
    return self;
}

const struct cls_text_opts *
cls_match_opts(const cls_match_t *self)
{
    return &self->opts;
}

size_t
cls_match_n_topics(const cls_match_t *self)
{
    return self->n_topics;
}

size_t
cls_match_n_keywords(const cls_match_t *self)
{
    return self->n_kws;
}

const char *
cls_match_topic_key(const cls_match_t *self, size_t topic)
{
    ESC_ASSERT(topic < self->n_topics);
    return self->keys[topic];
}

const char *
cls_match_keyword(const cls_match_t *self, size_t keyword)
{
    ESC_ASSERT(keyword < self->n_kws);
    return self->kws[keyword].text;
}

void
cls_match_result_init(struct cls_match_result *res)
{
    memset(res, 0, sizeof(*res));
}

void
cls_match_result_fini(struct cls_match_result *res)
{
    if (res == NULL) {
        return;
    }
    esc_free(res->hits);
    esc_free(res->mark);
    memset(res, 0, sizeof(*res));
}

static const struct s_slot *
s_find(const cls_match_t *self, const char *s, uint32_t len)
{
    uint64_t h = s_hash(s, len);
    size_t slot = (size_t)h & (self->n_slots - 1);

    for (;;) {
        const struct s_slot *sl = &self->slots[slot];

        if (sl->count == 0) {
            return NULL;
        }
        if (sl->hash == h && sl->key_len == len && memcmp(self->pool + sl->key_off, s, len) == 0) {
            return sl;
        }
        slot = (slot + 1) & (self->n_slots - 1);
    }
}

/* A one-token keyword of element kind ek against a token of kind tk. */
static bool
s_single_ok(uint8_t ek, uint8_t tk)
{
    switch (ek) {
    case CLS_TOK_WORD:
        return tk == CLS_TOK_WORD || tk == CLS_TOK_HASHTAG || tk == CLS_TOK_HASHPART;
    case CLS_TOK_HASHTAG:
        return tk == CLS_TOK_HASHTAG || tk == CLS_TOK_META_HASHTAG;
    case CLS_TOK_MENTION:
        return tk == CLS_TOK_MENTION || tk == CLS_TOK_MENTIONPART || tk == CLS_TOK_META_MENTION;
    default:
        break;
    }
    return false;
}

/* A phrase element of kind ek against a main token of kind tk. */
static bool
s_phrase_ok(uint8_t ek, uint8_t tk)
{
    if (ek == CLS_TOK_WORD) {
        return tk == CLS_TOK_WORD || tk == CLS_TOK_HASHTAG;
    }
    return ek == tk;
}

static bool
s_kw_matches(const cls_match_t *self, const struct s_kw *kw, const cls_text_t *txt,
             const struct cls_token *t)
{
    const struct s_elem *e = &self->elems[kw->elem];
    uint32_t j;

    if (kw->n_elem == 1) {
        return s_single_ok(e->kind, t->kind);
    }
    if (t->pos == CLS_POS_NONE || !s_phrase_ok(e->kind, t->kind)) {
        return false;
    }
    for (j = 1; j < kw->n_elem; j++) {
        const struct cls_token *u = cls_text_at(txt, t->pos + j);

        e = &self->elems[kw->elem + j];
        if (u == NULL || !s_phrase_ok(e->kind, u->kind) || u->len != e->len
            || memcmp(cls_text_tok_str(txt, u), self->pool + e->off, e->len) != 0) {
            return false;
        }
    }
    return true;
}

static int
s_hit_cmp(const void *a, const void *b)
{
    const struct cls_hit *x = a;
    const struct cls_hit *y = b;

    return x->topic < y->topic ? -1 : (x->topic > y->topic ? 1 : 0);
}

size_t
cls_match_run(const cls_match_t *self, const cls_text_t *txt, struct cls_match_result *res)
{
    const struct cls_token *toks;
    size_t n_toks;
    size_t i;
    uint32_t k;

    ESC_ASSERT(self->built);
    if (res->cap < self->n_topics) {
        res->hits = esc_realloc(res->hits, self->n_topics * sizeof(*res->hits));
        res->mark = esc_realloc(res->mark, self->n_topics * sizeof(*res->mark));
        memset(res->mark + res->cap, 0, (self->n_topics - res->cap) * sizeof(*res->mark));
        res->cap = self->n_topics;
    }
    res->gen++;
    if (res->gen == 0) {
        memset(res->mark, 0, res->cap * sizeof(*res->mark));
        res->gen = 1;
    }
    res->n_hits = 0;
    toks = cls_text_tokens(txt, &n_toks);
    for (i = 0; i < n_toks; i++) {
        const struct cls_token *t = &toks[i];
        const struct s_slot *sl = s_find(self, cls_text_tok_str(txt, t), t->len);

        if (sl == NULL) {
            continue;
        }
        for (k = sl->first; k < sl->first + sl->count; k++) {
            const struct s_kw *kw = &self->kws[self->order[k]];

            if (res->mark[kw->topic] == res->gen || !s_kw_matches(self, kw, txt, t)) {
                continue;
            }
            res->mark[kw->topic] = res->gen;
            res->hits[res->n_hits].topic = kw->topic;
            res->hits[res->n_hits].keyword = self->order[k];
            res->n_hits++;
        }
    }
    if (res->n_hits > 1) {
        qsort(res->hits, res->n_hits, sizeof(*res->hits), s_hit_cmp);
    }
    return res->n_hits;
}
