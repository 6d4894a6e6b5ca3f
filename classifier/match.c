#define ESC_LOG_MODULE "match"
/* The compiled topic matcher. Compiling: every keyword, query and exclude query is parsed by
 * query.c and turned into a flat node array; each leaf element becomes an atom, deduplicated
 * over all topics (kind, match type, ñ folding, text). Atoms with an exact text ({Exact} ones
 * under their folded text) go into one open-addressing hash table (linear probing, at most
 * half full) keyed by text; term* and ?-patterns go into a second table keyed by the first
 * bytes of their literal prefix (at most S_PREFIX_KEY), with a bitmask of the key lengths in
 * use, so that a token costs one or two probes there and only the few atoms sharing its first
 * bytes are verified. Each table sits behind a bloom filter: most tokens of a post are no key
 * at all, and the filter (a few kB) answers them without touching the table. Each topic gets
 * trigger clauses: necessary conditions of one or two groups of atoms (both sides of an AND
 * or a NEAR, two words of a phrase, every branch of an OR its own clause), chosen to avoid
 * frequent words; each atom lists the clause groups it fills.
 *
 * Matching: one pass over the post's tokens looks each token up once in the exact table, once
 * or twice in the prefix table and, for tokens with ñ when some topic folds it, again with
 * ñ -> n for the folding atoms only. Every hit is recorded (atom, position, token kind); the
 * records are then grouped per atom, sorted by position. The topics of the clauses whose
 * groups are all filled are the candidates, and only those are evaluated, in config order.
 * Phrases check the following positions by binary search; sloppy phrases use a sliding window
 * over the merged positions; NEAR combines position spans of its operands. All scratch lives
 * in the caller's cls_match_result and only grows, so a warmed-up matcher does not allocate.
 * A built matcher is read-only and may be shared between threads. */
#include <stdlib.h>
#include <string.h>

#include "escucha/esc_log.h"
#include "escucha/esc_mem.h"
#include "escucha/esc_util.h"

#include "match.h"

#define S_NONE UINT32_MAX
#define S_ITAG_SHIFT 24   /* ilist entries: atom in the low bits, s_itag above */
#define S_PREFIX_KEY 4    /* wildcard atoms are indexed by at most this many leading bytes */
#define S_BLOOM_MIN 65536 /* bits of a bloom filter, at least (and 16 per key) */
#define S_COST_NULL 0x7fffffff
#define S_COST_COMMON 40  /* atoms this common (stopwords, lang:, platform:) are not worth a
                             second trigger group: nearly every post would fill it */

enum s_ntype {
    N_AND = 0,
    N_OR,
    N_NOT,
    N_NEAR,
    N_ATOM,
    N_PHRASE,
    N_SLOPPY,
    N_FOLLOWERS,
};

struct s_node {
    uint8_t type;     /* enum s_ntype */
    uint8_t ordered;  /* N_NEAR */
    uint8_t cmp;      /* N_FOLLOWERS: enum cls_q_cmp */
    int32_t n;        /* N_NEAR: distance; N_SLOPPY: slop */
    uint32_t first;   /* children / phrase atoms in refs[first..+count); N_ATOM: the atom */
    uint32_t count;
    int64_t value;    /* N_FOLLOWERS */
    uint32_t src;     /* where it was written (srcs[]), S_NONE for a synthetic node */
    uint32_t from;    /* bytes [from, to) of that source */
    uint32_t to;
};

/* A source string, for --explain. */
struct s_src {
    char *label;      /* "keyword", "query", "exclude", "exclude.authors[2]" */
    char *text;
};

struct s_atom {
    uint32_t text;    /* pool offset of the text / prefix / pattern */
    uint32_t len;
    uint32_t raw;     /* pool offset of the exact form (CASE) or path prefix (SITE) */
    uint32_t raw_len; /* 0: none */
    uint32_t key_len; /* PREFIX/GLOB: bytes of the index key */
    uint8_t kind;     /* enum cls_q_kind */
    uint8_t match;    /* enum cls_q_match */
    uint8_t fold;     /* matches tokens with ñ folded to n */
    uint8_t pad;
    uint32_t trig;    /* clause groups it satisfies: trig_list[trig..+n_trig), each an entry
                         clause * 2 + group */
    uint32_t n_trig;
};

struct s_topic {
    char *key;
    int32_t team;     /* -1: none */
    uint32_t incl;    /* include root */
    uint32_t excl;    /* exclude root or S_NONE */
    bool lang;        /* its include, exclude or team exclusion tests a lang: atom */
};

/* A necessary condition for a topic's include side: one or two groups of atoms, each of
 * which must have an atom present. */
struct s_clause {
    uint32_t topic;
    uint32_t need;    /* 1: one group, 3: two groups */
};

struct s_team {
    char *id;
    uint32_t excl;    /* root of the exclusion lists, S_NONE when empty */
};

struct s_slot {
    uint32_t tag;     /* high half of the key's hash */
    uint32_t key_off; /* pool offset of the key */
    uint32_t first;   /* atoms in ilist[first..+count) */
    uint32_t count;   /* 0 = empty slot */
    uint32_t key_len;
};

/* An open-addressing table of keys, behind a bloom filter (two bits per key) that answers
 * most lookups of tokens that are no key without touching the table. */
struct s_index {
    struct s_slot *slots;
    size_t n_slots;   /* power of two */
    uint64_t *bloom;
    size_t bloom_mask; /* bits - 1, bits a power of two */
};

struct cls_match {
    struct cls_text_opts opts;
    cls_text_t *txt;          /* build scratch, freed by build */
    struct s_topic *topics;
    size_t n_topics;
    size_t cap_topics;
    struct s_team *teams;
    size_t n_teams;
    size_t cap_teams;
    struct s_node *nodes;
    size_t n_nodes;
    size_t cap_nodes;
    uint32_t *refs;
    size_t n_refs;
    size_t cap_refs;
    struct s_atom *atoms;
    size_t n_atoms;
    size_t cap_atoms;
    char *pool;
    size_t pool_len;
    size_t pool_cap;
    struct s_src *srcs;
    size_t n_srcs;
    size_t cap_srcs;
    char **warnings;
    size_t n_warnings;
    size_t cap_warnings;
    uint32_t *dedup;          /* build: hash set of atom ids (S_NONE = empty) */
    size_t n_dedup;
    uint32_t *pairs;          /* build: (atom, topic) trigger pairs */
    size_t n_pairs;
    size_t cap_pairs;
    struct s_clause *clauses; /* trigger clauses of all topics */
    size_t n_clauses;
    size_t cap_clauses;
    uint32_t *trig_list;      /* clause entries by trigger atom */
    uint32_t *atom_trig;      /* by atom: its trig and n_trig, packed (the candidate pass reads
                                 them for every atom present, the atoms array would cost a
                                 cache line each) */
    uint32_t *ilist;          /* atoms of the index slots; with tagged, each entry is the atom
                                 (low S_ITAG_SHIFT bits) and s_itag of it above, so that the
                                 common checks need not read the atom */
    bool tagged;              /* fewer than 2^S_ITAG_SHIFT atoms: ilist entries are tagged */
    struct s_index exact;
    struct s_index prefix;
    uint64_t prefix_lens;     /* bit L: a prefix key of L bytes exists */
    size_t n_keywords;
    size_t n_queries;
    bool has_fold;            /* some atom folds ñ */
    bool lang_trig;           /* some lang: atom is a trigger (cls_match_lang_triggers) */
    uint32_t tok_kinds;       /* token kinds some atom matches (cls_match_token_kinds) */
    bool built;
};

/* Occurrence of an atom in a post. */
struct s_occ {
    uint32_t pos;  /* position, CLS_POS_NONE for meta tokens */
    uint8_t kind;  /* token kind */
};

struct s_rec {
    uint32_t atom;
    uint32_t pos;
    uint8_t kind;
};

struct s_ast {
    uint32_t gen;  /* generation the atom was last seen in */
    uint32_t off;  /* its occurrences: occ[off..+cnt) */
    uint32_t cnt;
};

struct s_span {
    uint32_t s;
    uint32_t e;
};

/* Which groups of a clause have an atom present in the current post. */
struct s_cstate {
    uint32_t gen;
    uint32_t mask;
};

struct cls_match_scratch {
    struct s_ast *ast;        /* by atom */
    size_t cap_atoms;
    uint64_t *cbits;          /* candidate topics, one bit each; all zero between posts */
    struct s_cstate *cstate;  /* by clause */
    size_t cap_clauses;
    size_t cap_topics;
    uint32_t *team_mark;      /* by team: generation its exclusion was evaluated */
    uint8_t *team_excl;
    size_t cap_teams;
    uint32_t gen;             /* copy of the result's generation */
    uint32_t *present;
    size_t n_present;
    size_t cap_present;
    struct s_rec *recs;
    size_t n_recs;
    size_t cap_recs;
    struct s_occ *occ;
    size_t cap_occ;
    uint32_t *cand;
    size_t n_cand;
    size_t cap_cand;
    struct s_span *spans;
    size_t top;
    size_t cap_spans;
    struct s_span *merge;     /* sloppy phrases: (pos, slot) */
    size_t cap_merge;
    char *fold;
    size_t cap_fold;
    uint64_t *th;             /* by token: the hash of its text (s_collect) */
    size_t cap_th;
    size_t n_toks;            /* tokens of the post looked up so far */
    size_t cap_hits;
    int64_t followers;
};

/* Token kinds an atom kind is recorded for (its use as a plain term). */
static const uint32_t s_term_kinds[CLS_QK_KINDS] = {
    [CLS_QK_WORD] = 1u << CLS_TOK_WORD | 1u << CLS_TOK_HASHTAG | 1u << CLS_TOK_HASHPART,
    [CLS_QK_HASHTAG] = 1u << CLS_TOK_HASHTAG | 1u << CLS_TOK_META_HASHTAG,
    [CLS_QK_MENTION] = 1u << CLS_TOK_MENTION | 1u << CLS_TOK_MENTIONPART
                       | 1u << CLS_TOK_META_MENTION,
    [CLS_QK_AUTHOR] = 1u << CLS_TOK_AUTHOR,
    [CLS_QK_SITE] = 1u << CLS_TOK_LINK,
    [CLS_QK_LANG] = 1u << CLS_TOK_LANG,
    [CLS_QK_PLATFORM] = 1u << CLS_TOK_PLATFORM,
};

/* Token kinds an atom matches inside a phrase (whole main tokens only). */
static const uint32_t s_phrase_kinds[CLS_QK_KINDS] = {
    [CLS_QK_WORD] = 1u << CLS_TOK_WORD | 1u << CLS_TOK_HASHTAG,
    [CLS_QK_HASHTAG] = 1u << CLS_TOK_HASHTAG,
    [CLS_QK_MENTION] = 1u << CLS_TOK_MENTION,
};

/* Token kinds an atom matches as a NEAR operand (positioned tokens). */
static const uint32_t s_near_kinds[CLS_QK_KINDS] = {
    [CLS_QK_WORD] = 1u << CLS_TOK_WORD | 1u << CLS_TOK_HASHTAG | 1u << CLS_TOK_HASHPART,
    [CLS_QK_HASHTAG] = 1u << CLS_TOK_HASHTAG,
    [CLS_QK_MENTION] = 1u << CLS_TOK_MENTION | 1u << CLS_TOK_MENTIONPART,
};

/* ---------------------------------------------------------------------------------------------
 * Building
 */

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

/* The len < 8 bytes at s as a little-endian number, as memcpy into a zeroed uint64_t gives
 * them, without a call for the variable length: overlapping loads. */
static inline uint64_t
s_tail(const char *s, size_t len)
{
    const unsigned char *u = (const unsigned char *)s;
    uint32_t a;
    uint32_t b;

    if (len >= 4) {
        memcpy(&a, u, 4);
        memcpy(&b, u + len - 4, 4);
        return (uint64_t)a | (uint64_t)b << ((len - 4) * 8);
    }
    if (len == 0) {
        return 0;
    }
    return (uint64_t)u[0] | (uint64_t)u[len / 2] << (len / 2 * 8)
         | (uint64_t)u[len - 1] << ((len - 1) * 8);
}

/* memcmp(a, b, len) == 0 for the short keys of the indexes, inline. */
static inline bool
s_same(const char *a, const char *b, size_t len)
{
    uint64_t x;
    uint64_t y;

    while (len >= 8) {
        memcpy(&x, a, 8);
        memcpy(&y, b, 8);
        if (x != y) {
            return false;
        }
        a += 8;
        b += 8;
        len -= 8;
    }
    return s_tail(a, len) == s_tail(b, len);
}

/* Hash of s[0..len), eight bytes at a time (multiply and xor-shift mixing). */
static inline uint64_t
s_hash(const char *s, size_t len)
{
    uint64_t h = 0x9e3779b97f4a7c15ULL ^ len;
    uint64_t w;

    while (len >= 8) {
        memcpy(&w, s, 8);
        h = (h ^ w) * 0xff51afd7ed558ccdULL;
        h ^= h >> 32;
        s += 8;
        len -= 8;
    }
    if (len > 0) {
        w = s_tail(s, len);
        h = (h ^ w) * 0xc4ceb9fe1a85ec53ULL;
    }
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    return h;
}

cls_match_t *
cls_match_new(const struct cls_text_opts *opts)
{
    cls_match_t *self = esc_calloc(1, sizeof(*self));

    self->opts = *opts;
    self->txt = cls_text_new();
    self->n_dedup = 1024;
    self->dedup = esc_malloc(self->n_dedup * sizeof(*self->dedup));
    memset(self->dedup, 0xff, self->n_dedup * sizeof(*self->dedup));
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
        esc_free(self->topics[i].key);
    }
    for (i = 0; i < self->n_teams; i++) {
        esc_free(self->teams[i].id);
    }
    for (i = 0; i < self->n_srcs; i++) {
        esc_free(self->srcs[i].label);
        esc_free(self->srcs[i].text);
    }
    for (i = 0; i < self->n_warnings; i++) {
        esc_free(self->warnings[i]);
    }
    cls_text_destroy(&self->txt);
    esc_free(self->topics);
    esc_free(self->teams);
    esc_free(self->nodes);
    esc_free(self->refs);
    esc_free(self->atoms);
    esc_free(self->pool);
    esc_free(self->srcs);
    esc_free(self->warnings);
    esc_free(self->dedup);
    esc_free(self->pairs);
    esc_free(self->trig_list);
    esc_free(self->atom_trig);
    esc_free(self->clauses);
    esc_free(self->ilist);
    esc_free(self->exact.slots);
    esc_free(self->prefix.slots);
    esc_free(self->exact.bloom);
    esc_free(self->prefix.bloom);
    esc_free(self);
    *self_p = NULL;
}

static uint32_t
s_pool_add(cls_match_t *self, const char *s, size_t len)
{
    uint32_t off = (uint32_t)self->pool_len;

    self->pool = s_grow(self->pool, &self->pool_cap, self->pool_len + len + 1, 1);
    memcpy(self->pool + self->pool_len, s, len);
    self->pool[self->pool_len + len] = '\0';
    self->pool_len += len + 1;
    return off;
}

static uint32_t
s_src_add(cls_match_t *self, const char *label, const char *text)
{
    self->srcs = s_grow(self->srcs, &self->cap_srcs, self->n_srcs + 1, sizeof(*self->srcs));
    self->srcs[self->n_srcs].label = esc_strdup(label);
    self->srcs[self->n_srcs].text = esc_strdup(text);
    return (uint32_t)self->n_srcs++;
}

static uint32_t
s_node_add(cls_match_t *self, enum s_ntype type, uint32_t src, uint32_t from, uint32_t to)
{
    struct s_node *n;

    self->nodes = s_grow(self->nodes, &self->cap_nodes, self->n_nodes + 1, sizeof(*self->nodes));
    n = &self->nodes[self->n_nodes];
    memset(n, 0, sizeof(*n));
    n->type = (uint8_t)type;
    n->src = src;
    n->from = from;
    n->to = to;
    return (uint32_t)self->n_nodes++;
}

static uint32_t
s_refs_add(cls_match_t *self, const uint32_t *ids, size_t n)
{
    uint32_t first = (uint32_t)self->n_refs;

    self->refs = s_grow(self->refs, &self->cap_refs, self->n_refs + n, sizeof(*self->refs));
    memcpy(self->refs + self->n_refs, ids, n * sizeof(*ids));
    self->n_refs += n;
    return first;
}

static bool
s_atom_same(const cls_match_t *self, const struct s_atom *a, const struct s_atom *b)
{
    return a->kind == b->kind && a->match == b->match && a->fold == b->fold && a->len == b->len
        && a->raw_len == b->raw_len
        && memcmp(self->pool + a->text, self->pool + b->text, a->len) == 0
        && memcmp(self->pool + a->raw, self->pool + b->raw, a->raw_len) == 0;
}

static uint64_t
s_atom_hash(const cls_match_t *self, const struct s_atom *a)
{
    return s_hash(self->pool + a->text, a->len) ^ ((uint64_t)a->kind << 56)
         ^ ((uint64_t)a->match << 48) ^ ((uint64_t)a->fold << 40)
         ^ (s_hash(self->pool + a->raw, a->raw_len) >> 1);
}

static void
s_dedup_insert(cls_match_t *self, uint32_t id)
{
    size_t mask = self->n_dedup - 1;
    size_t k = (size_t)s_atom_hash(self, &self->atoms[id]) & mask;

    while (self->dedup[k] != S_NONE) {
        k = (k + 1) & mask;
    }
    self->dedup[k] = id;
}

/* The atom for element e (folding ñ when fold), created once per distinct pattern. */
static uint32_t
s_atom_get(cls_match_t *self, const struct cls_q_elem *e, bool fold)
{
    struct s_atom a;
    size_t mask;
    size_t k;
    size_t len = strlen(e->text);
    size_t pool_len = self->pool_len;
    size_t i;

    memset(&a, 0, sizeof(a));
    a.kind = e->kind;
    a.match = e->match;
    a.fold = fold && e->match != CLS_QM_CASE && memchr(e->text, 'n', len) != NULL;
    a.text = s_pool_add(self, e->text, len);
    a.len = (uint32_t)len;
    if (e->raw != NULL) {
        a.raw_len = (uint32_t)strlen(e->raw);
        a.raw = s_pool_add(self, e->raw, a.raw_len);
    }
    if (a.match == CLS_QM_PREFIX || a.match == CLS_QM_GLOB) {
        for (i = 0; i < len && e->text[i] != '?' && e->text[i] != '*'; i++) {
        }
        a.key_len = (uint32_t)(i < S_PREFIX_KEY ? i : S_PREFIX_KEY);
    }
    mask = self->n_dedup - 1;
    for (k = (size_t)s_atom_hash(self, &a) & mask; self->dedup[k] != S_NONE; k = (k + 1) & mask) {
        if (s_atom_same(self, &self->atoms[self->dedup[k]], &a)) {
            self->pool_len = pool_len;
            return self->dedup[k];
        }
    }
    self->atoms = s_grow(self->atoms, &self->cap_atoms, self->n_atoms + 1, sizeof(*self->atoms));
    self->atoms[self->n_atoms] = a;
    self->has_fold = self->has_fold || a.fold;
    if ((self->n_atoms + 1) * 2 > self->n_dedup) {
        size_t j;

        self->n_dedup *= 2;
        self->dedup = esc_realloc(self->dedup, self->n_dedup * sizeof(*self->dedup));
        memset(self->dedup, 0xff, self->n_dedup * sizeof(*self->dedup));
        for (j = 0; j < self->n_atoms; j++) {
            s_dedup_insert(self, (uint32_t)j);
        }
    }
    s_dedup_insert(self, (uint32_t)self->n_atoms);
    return (uint32_t)self->n_atoms++;
}

static int s_cost(const cls_match_t *self, uint32_t id);

/* Orders the children of an AND so that the most selective (cheapest trigger, i.e. rarest)
 * come first and NOTs last: evaluation stops at the first false child. Stable. */
static void
s_order_and(const cls_match_t *self, uint32_t *ids, size_t n)
{
    size_t i;
    size_t j;

    for (i = 1; i < n; i++) {
        uint32_t id = ids[i];
        int c = s_cost(self, id);

        for (j = i; j > 0 && s_cost(self, ids[j - 1]) > c; j--) {
            ids[j] = ids[j - 1];
        }
        ids[j] = id;
    }
}

/* Compiles the subtree qid of q (from source src) into nodes; returns the node. */
static uint32_t
s_compile(cls_match_t *self, const struct cls_query *q, uint32_t qid, uint32_t src, bool fold)
{
    const struct cls_q_node *qn = &q->nodes[qid];
    uint32_t id;
    uint32_t *ids;
    uint32_t k;

    switch (qn->type) {
    case CLS_Q_ATOM:
        id = s_node_add(self, N_ATOM, src, qn->from, qn->to);
        self->nodes[id].first = s_atom_get(self, &q->elems[qn->first], fold);
        return id;
    case CLS_Q_FOLLOWERS:
        id = s_node_add(self, N_FOLLOWERS, src, qn->from, qn->to);
        self->nodes[id].cmp = qn->cmp;
        self->nodes[id].value = qn->value;
        return id;
    default:
        break;
    }
    ids = esc_calloc(qn->count + 1, sizeof(*ids));
    for (k = 0; k < qn->count; k++) {
        if (qn->type == CLS_Q_PHRASE) {
            ids[k] = s_atom_get(self, &q->elems[qn->first + k], fold);
        }
        else {
            ids[k] = s_compile(self, q, q->kids[qn->first + k], src, fold);
        }
    }
    switch (qn->type) {
    case CLS_Q_AND:
        s_order_and(self, ids, qn->count);
        id = s_node_add(self, N_AND, src, qn->from, qn->to);
        break;
    case CLS_Q_OR:
        id = s_node_add(self, N_OR, src, qn->from, qn->to);
        break;
    case CLS_Q_NOT:
        id = s_node_add(self, N_NOT, src, qn->from, qn->to);
        break;
    case CLS_Q_NEAR:
        id = s_node_add(self, N_NEAR, src, qn->from, qn->to);
        self->nodes[id].n = qn->n;
        self->nodes[id].ordered = qn->ordered;
        break;
    default:
        id = s_node_add(self, qn->n >= 0 ? N_SLOPPY : N_PHRASE, src, qn->from, qn->to);
        self->nodes[id].n = qn->n;
        break;
    }
    self->nodes[id].first = s_refs_add(self, ids, qn->count);
    self->nodes[id].count = qn->count;
    esc_free(ids);
    return id;
}

/* An OR over list[0..n) (the node itself when n == 1), or S_NONE for n == 0. */
static uint32_t
s_or_of(cls_match_t *self, const uint32_t *list, size_t n)
{
    uint32_t id;

    if (n == 0) {
        return S_NONE;
    }
    if (n == 1) {
        return list[0];
    }
    id = s_node_add(self, N_OR, S_NONE, 0, 0);
    self->nodes[id].first = s_refs_add(self, list, n);
    self->nodes[id].count = (uint32_t)n;
    return id;
}

/* The most frequent function words of Spanish, English and Portuguese, accent-folded and
 * sorted: a poor choice of trigger, since nearly every post has them. */
static const char *const s_stopwords[] = {
    "a", "al", "algo", "ante", "antes", "aqui", "as", "asi", "at", "aun", "be", "but", "by",
    "cada", "casi", "como", "con", "contra", "cual", "cuando", "da", "das", "de", "del", "desde",
    "do", "dos", "e", "el", "ela", "ele", "ella", "en", "entre", "era", "es", "esa", "ese", "eso",
    "esta", "este", "esto", "foi", "for", "from", "fue", "ha", "han", "has", "hasta", "hay", "he",
    "i", "if", "in", "is", "isso", "it", "la", "las", "le", "les", "lo", "los", "mais", "mas",
    "me", "mi", "muy", "na", "nao", "ni", "no", "nos", "o", "of", "on", "or", "os", "para",
    "pero", "por", "porque", "que", "se", "ser", "si", "sin", "so", "sobre", "su", "sus",
    "tambien", "te", "the", "this", "to", "tu", "um", "un", "una", "uno", "was", "we", "y", "ya",
    "yo", "you",
};

static int
s_stopword_cmp(const void *key, const void *elem)
{
    return strcmp(key, *(const char *const *)elem);
}

/* Cost of making a trigger of an atom: posts expected to contain it, roughly. */
static int
s_atom_cost(const cls_match_t *self, uint32_t a)
{
    const struct s_atom *at = &self->atoms[a];

    switch (at->kind) {
    case CLS_QK_LANG:
    case CLS_QK_PLATFORM:
        return 1000;
    case CLS_QK_WORD:
        break;
    default:
        return 3;
    }
    if (at->match == CLS_QM_PREFIX || at->match == CLS_QM_GLOB) {
        return 12;
    }
    if (at->len <= 6 && bsearch(self->pool + at->text, s_stopwords, ESC_ARRAY_LEN(s_stopwords),
                                sizeof(s_stopwords[0]), s_stopword_cmp) != NULL) {
        return 40;
    }
    return at->len >= 6 ? 4 : (at->len >= 4 ? 6 : 10);
}

/* Cost of the cheapest trigger set of a node; S_COST_NULL when it can be true without any
 * positive atom. */
static int
s_cost(const cls_match_t *self, uint32_t id)
{
    const struct s_node *n = &self->nodes[id];
    int best = S_COST_NULL;
    int sum = 0;
    uint32_t k;

    switch (n->type) {
    case N_ATOM:
        return s_atom_cost(self, n->first);
    case N_PHRASE:
    case N_SLOPPY:
        for (k = 0; k < n->count; k++) {
            int c = s_atom_cost(self, self->refs[n->first + k]);

            best = c < best ? c : best;
        }
        return best;
    case N_AND:
    case N_NEAR:
        for (k = 0; k < n->count; k++) {
            int c = s_cost(self, self->refs[n->first + k]);

            best = c < best ? c : best;
        }
        return best;
    case N_OR:
        for (k = 0; k < n->count; k++) {
            int c = s_cost(self, self->refs[n->first + k]);

            if (c == S_COST_NULL) {
                return S_COST_NULL;
            }
            sum = sum + c > 1000000 ? 1000000 : sum + c;
        }
        return sum;
    default:
        break;
    }
    return S_COST_NULL;
}

static void
s_pair_add(cls_match_t *self, uint32_t atom, uint32_t entry)
{
    self->pairs = s_grow(self->pairs, &self->cap_pairs, self->n_pairs * 2 + 2, sizeof(uint32_t));
    self->pairs[self->n_pairs * 2] = atom;
    self->pairs[self->n_pairs * 2 + 1] = entry;
    self->n_pairs++;
}

/* Adds the cheapest set of atoms of which one must be present when node id is true, as the
 * clause group `entry` (clause * 2 + group). */
static void
s_group(cls_match_t *self, uint32_t id, uint32_t entry)
{
    const struct s_node *n = &self->nodes[id];
    int best = S_COST_NULL;
    uint32_t pick = S_NONE;
    uint32_t k;

    switch (n->type) {
    case N_ATOM:
        s_pair_add(self, n->first, entry);
        return;
    case N_OR:
        for (k = 0; k < n->count; k++) {
            s_group(self, self->refs[n->first + k], entry);
        }
        return;
    case N_PHRASE:
    case N_SLOPPY:
        for (k = 0; k < n->count; k++) {
            int c = s_atom_cost(self, self->refs[n->first + k]);

            if (c < best) {
                best = c;
                pick = self->refs[n->first + k];
            }
        }
        s_pair_add(self, pick, entry);
        return;
    case N_AND:
    case N_NEAR:
        for (k = 0; k < n->count; k++) {
            int c = s_cost(self, self->refs[n->first + k]);

            if (c < best) {
                best = c;
                pick = self->refs[n->first + k];
            }
        }
        ESC_ASSERT(pick != S_NONE);
        s_group(self, pick, entry);
        return;
    default:
        break;
    }
    ESC_ASSERT(0);
}

static uint32_t
s_clause_new(cls_match_t *self, uint32_t topic, uint32_t need)
{
    self->clauses = s_grow(self->clauses, &self->cap_clauses, self->n_clauses + 1,
                           sizeof(*self->clauses));
    self->clauses[self->n_clauses].topic = topic;
    self->clauses[self->n_clauses].need = need;
    return (uint32_t)self->n_clauses++;
}

/* The two cheapest of n candidates (children by s_cost, or phrase atoms by s_atom_cost, atoms
 * repeated in a phrase counted once). Sets *b to S_NONE when there is only one. */
static void
s_two_cheapest(const cls_match_t *self, const uint32_t *ids, uint32_t n, bool atoms, uint32_t *a,
               uint32_t *b)
{
    int ca = S_COST_NULL;
    int cb = S_COST_NULL;
    uint32_t k;

    *a = S_NONE;
    *b = S_NONE;
    for (k = 0; k < n; k++) {
        int c = atoms ? s_atom_cost(self, ids[k]) : s_cost(self, ids[k]);

        if (c == S_COST_NULL || ids[k] == *a || ids[k] == *b) {
            continue;
        }
        if (c < ca) {
            *b = *a;
            cb = ca;
            *a = ids[k];
            ca = c;
        }
        else if (c < cb) {
            *b = ids[k];
            cb = c;
        }
    }
    if (cb >= S_COST_COMMON) {
        *b = S_NONE;
    }
}

/* Adds the trigger clauses of node id for topic: whenever the node is true, all groups of at
 * least one of its clauses have an atom present. An OR has the clauses of its branches; an
 * AND needs its two most selective children, a NEAR both operands, a phrase two of its
 * words. */
static void
s_clauses(cls_match_t *self, uint32_t id, uint32_t topic)
{
    const struct s_node *n = &self->nodes[id];
    uint32_t a;
    uint32_t b;
    uint32_t c;
    uint32_t k;

    switch (n->type) {
    case N_OR:
        for (k = 0; k < n->count; k++) {
            s_clauses(self, self->refs[n->first + k], topic);
        }
        return;
    case N_ATOM:
        c = s_clause_new(self, topic, 1);
        s_pair_add(self, n->first, c * 2);
        return;
    case N_PHRASE:
    case N_SLOPPY:
    case N_AND:
    case N_NEAR:
        s_two_cheapest(self, self->refs + n->first, n->count,
                       n->type == N_PHRASE || n->type == N_SLOPPY, &a, &b);
        ESC_ASSERT(a != S_NONE);
        if (b == S_NONE && n->type == N_AND) {
            s_clauses(self, a, topic); /* the one positive child decides */
            return;
        }
        c = s_clause_new(self, topic, b == S_NONE ? 1 : 3);
        if (n->type == N_PHRASE || n->type == N_SLOPPY) {
            s_pair_add(self, a, c * 2);
            if (b != S_NONE) {
                s_pair_add(self, b, c * 2 + 1);
            }
            return;
        }
        s_group(self, a, c * 2);
        if (b != S_NONE) {
            s_group(self, b, c * 2 + 1);
        }
        return;
    default:
        break;
    }
    ESC_ASSERT(0);
}

static void
s_warn(cls_match_t *self, const struct cls_query *q, const char *where)
{
    size_t i;
    char buf[512];

    for (i = 0; i < q->n_msgs; i++) {
        if (q->msgs[i].error) {
            continue;
        }
        if (q->msgs[i].col > 0) {
            snprintf(buf, sizeof(buf), "%s: column %u: %s", where, (unsigned)q->msgs[i].col,
                     q->msgs[i].text);
        }
        else {
            snprintf(buf, sizeof(buf), "%s: %s", where, q->msgs[i].text);
        }
        self->warnings = s_grow(self->warnings, &self->cap_warnings, self->n_warnings + 1,
                                sizeof(char *));
        self->warnings[self->n_warnings++] = esc_strdup(buf);
    }
}

/* Fills err from the first error of q, named by `where`. */
static void
s_fail(const struct cls_query *q, const char *where, struct esc_error *err)
{
    size_t i;

    for (i = 0; i < q->n_msgs && !q->msgs[i].error; i++) {
    }
    ESC_ASSERT(i < q->n_msgs);
    if (q->msgs[i].col > 0) {
        esc_error_set(err, 0, "%s: column %u: %s", where, (unsigned)q->msgs[i].col,
                      q->msgs[i].text);
        if (err != NULL) {
            err->column = (int)q->msgs[i].col;
        }
    }
    else {
        esc_error_set(err, 0, "%s: %s", where, q->msgs[i].text);
    }
}

/* Everything added since a snapshot, for rolling back a failed topic or team. */
struct s_snap {
    size_t n_nodes, n_refs, n_atoms, pool_len, n_srcs, n_warnings, n_pairs, n_clauses;
};

static void
s_snap_take(const cls_match_t *self, struct s_snap *sn)
{
    sn->n_nodes = self->n_nodes;
    sn->n_refs = self->n_refs;
    sn->n_atoms = self->n_atoms;
    sn->pool_len = self->pool_len;
    sn->n_srcs = self->n_srcs;
    sn->n_warnings = self->n_warnings;
    sn->n_pairs = self->n_pairs;
    sn->n_clauses = self->n_clauses;
}

static void
s_snap_restore(cls_match_t *self, const struct s_snap *sn)
{
    size_t j;

    while (self->n_srcs > sn->n_srcs) {
        self->n_srcs--;
        esc_free(self->srcs[self->n_srcs].label);
        esc_free(self->srcs[self->n_srcs].text);
    }
    while (self->n_warnings > sn->n_warnings) {
        esc_free(self->warnings[--self->n_warnings]);
    }
    self->n_nodes = sn->n_nodes;
    self->n_refs = sn->n_refs;
    self->pool_len = sn->pool_len;
    self->n_pairs = sn->n_pairs;
    self->n_clauses = sn->n_clauses;
    if (self->n_atoms > sn->n_atoms) {
        self->n_atoms = sn->n_atoms;
        memset(self->dedup, 0xff, self->n_dedup * sizeof(*self->dedup));
        for (j = 0; j < self->n_atoms; j++) {
            s_dedup_insert(self, (uint32_t)j);
        }
        self->has_fold = false;
        for (j = 0; j < self->n_atoms; j++) {
            self->has_fold = self->has_fold || self->atoms[j].fold;
        }
    }
}

/* Parses and compiles one string; returns the node or S_NONE with err filled. */
static uint32_t
s_add_string(cls_match_t *self, const char *text, enum cls_q_mode mode, bool fold,
             const char *label, const char *where, struct esc_error *err)
{
    struct cls_query q;
    struct cls_query_opts qo;
    uint32_t id = S_NONE;

    memset(&qo, 0, sizeof(qo));
    qo.mode = mode;
    qo.fold_enye = fold || self->opts.fold_enye;
    qo.text_fold_enye = self->opts.fold_enye;
    if (cls_query_parse(&q, text, &qo, self->txt) > 0) {
        s_fail(&q, where, err);
    }
    else {
        s_warn(self, &q, where);
        id = s_compile(self, &q, q.root, s_src_add(self, label, text),
                       fold && !self->opts.fold_enye);
    }
    cls_query_fini(&q);
    return id;
}

int
cls_match_add_topic_src(cls_match_t *self, const struct cls_topic_src *src, const char *path,
                        struct esc_error *err)
{
    struct s_snap sn;
    uint32_t *list = esc_calloc(src->n_keywords + 2, sizeof(*list));
    size_t n = 0;
    size_t k;
    char where[160];
    struct s_topic *t;
    uint32_t incl;
    uint32_t excl = S_NONE;
    uint32_t topic = (uint32_t)self->n_topics;

    ESC_ASSERT(!self->built);
    ESC_ASSERT(src->team < (int)self->n_teams);
    s_snap_take(self, &sn);
    for (k = 0; k < src->n_keywords; k++) {
        snprintf(where, sizeof(where), "%s.keywords[%zu]", path, k);
        list[n] = s_add_string(self, src->keywords[k], CLS_QUERY_KEYWORD, src->fold_enye,
                               "keyword", where, err);
        if (list[n++] == S_NONE) {
            goto fail;
        }
    }
    if (src->query != NULL) {
        snprintf(where, sizeof(where), "%s.query", path);
        list[n] = s_add_string(self, src->query, CLS_QUERY_INCLUDE, src->fold_enye, "query",
                               where, err);
        if (list[n++] == S_NONE) {
            goto fail;
        }
    }
    if (n == 0) {
        esc_error_set(err, 0, "%s: a topic needs a query or at least one keyword", path);
        goto fail;
    }
    if (src->exclude != NULL) {
        snprintf(where, sizeof(where), "%s.exclude", path);
        excl = s_add_string(self, src->exclude, CLS_QUERY_EXCLUDE, src->fold_enye, "exclude",
                            where, err);
        if (excl == S_NONE) {
            goto fail;
        }
    }
    incl = s_or_of(self, list, n);
    s_clauses(self, incl, topic);
    esc_free(list);
    self->topics = s_grow(self->topics, &self->cap_topics, self->n_topics + 1,
                          sizeof(*self->topics));
    t = &self->topics[self->n_topics];
    t->key = esc_strdup(src->key);
    t->team = src->team;
    t->incl = incl;
    t->excl = excl;
    self->n_keywords += src->n_keywords;
    self->n_queries += src->query != NULL ? 1 : 0;
    return (int)self->n_topics++;
fail:
    esc_free(list);
    s_snap_restore(self, &sn);
    return -1;
}

int
cls_match_add_topic(cls_match_t *self, const char *key, const char *const *keywords,
                    size_t n_keywords, const char *path, struct esc_error *err)
{
    struct cls_topic_src src;

    memset(&src, 0, sizeof(src));
    src.key = key;
    src.keywords = keywords;
    src.n_keywords = n_keywords;
    src.team = -1;
    return cls_match_add_topic_src(self, &src, path, err);
}

/* An author or site exclusion entry as an atom node; S_NONE (err filled) when it has nothing
 * to match. */
static uint32_t
s_field_entry(cls_match_t *self, enum cls_q_kind kind, const char *value, const char *label,
              const char *where, struct esc_error *err)
{
    const struct cls_token *toks;
    size_t n_toks;
    struct cls_q_elem e;
    char *text;
    const char *slash;
    uint32_t id;

    cls_text_reset(self->txt);
    cls_text_add_field(self->txt, &self->opts, kind == CLS_QK_SITE ? CLS_TOK_LINK : CLS_TOK_AUTHOR,
                       value);
    toks = cls_text_tokens(self->txt, &n_toks);
    if (n_toks == 0) {
        esc_error_set(err, 0, "%s: '%s' is not a %s", where, value,
                      kind == CLS_QK_SITE ? "domain" : "handle");
        return S_NONE;
    }
    text = esc_malloc(toks[0].len + 1);
    memcpy(text, cls_text_tok_str(self->txt, &toks[0]), toks[0].len);
    text[toks[0].len] = '\0';
    memset(&e, 0, sizeof(e));
    e.kind = (uint8_t)kind;
    e.match = CLS_QM_EXACT;
    e.text = text;
    slash = kind == CLS_QK_SITE ? strchr(text, '/') : NULL;
    if (slash != NULL) {
        e.raw = esc_strdup(slash);
        text[slash - text] = '\0';
    }
    id = s_node_add(self, N_ATOM, s_src_add(self, label, value), 0, (uint32_t)strlen(value));
    self->nodes[id].first = s_atom_get(self, &e, false);
    esc_free(e.raw);
    esc_free(text);
    return id;
}

int
cls_match_add_team(cls_match_t *self, const struct cls_team_src *src, const char *path,
                   struct esc_error *err)
{
    struct s_snap sn;
    size_t total = src->n_authors + src->n_sites + src->n_phrases;
    uint32_t *list = esc_calloc(total + 1, sizeof(*list));
    size_t n = 0;
    size_t k;
    char where[160];
    char label[64];
    struct s_team *t;

    ESC_ASSERT(!self->built);
    s_snap_take(self, &sn);
    for (k = 0; k < src->n_authors; k++) {
        snprintf(where, sizeof(where), "%s.exclude.authors[%zu]", path, k);
        snprintf(label, sizeof(label), "exclude.authors[%zu]", k);
        list[n] = s_field_entry(self, CLS_QK_AUTHOR, src->authors[k], label, where, err);
        if (list[n++] == S_NONE) {
            goto fail;
        }
    }
    for (k = 0; k < src->n_sites; k++) {
        snprintf(where, sizeof(where), "%s.exclude.sites[%zu]", path, k);
        snprintf(label, sizeof(label), "exclude.sites[%zu]", k);
        list[n] = s_field_entry(self, CLS_QK_SITE, src->sites[k], label, where, err);
        if (list[n++] == S_NONE) {
            goto fail;
        }
    }
    for (k = 0; k < src->n_phrases; k++) {
        snprintf(where, sizeof(where), "%s.exclude.phrases[%zu]", path, k);
        snprintf(label, sizeof(label), "exclude.phrases[%zu]", k);
        list[n] = s_add_string(self, src->phrases[k], CLS_QUERY_KEYWORD, false, label, where,
                               err);
        if (list[n++] == S_NONE) {
            goto fail;
        }
    }
    self->teams = s_grow(self->teams, &self->cap_teams, self->n_teams + 1, sizeof(*self->teams));
    t = &self->teams[self->n_teams];
    t->id = esc_strdup(src->id);
    t->excl = s_or_of(self, list, n);
    esc_free(list);
    return (int)self->n_teams++;
fail:
    esc_free(list);
    s_snap_restore(self, &sn);
    return -1;
}

/* True when idx's bloom filter may hold hash h (false: certainly no key). */
static bool
s_bloom_has(const struct s_index *idx, uint64_t h)
{
    size_t b1 = (size_t)(h >> 7) & idx->bloom_mask;
    size_t b2 = (size_t)(h >> 29) & idx->bloom_mask;

    return ((idx->bloom[b1 >> 6] >> (b1 & 63)) & (idx->bloom[b2 >> 6] >> (b2 & 63)) & 1) != 0;
}

static void
s_bloom_add(struct s_index *idx, uint64_t h)
{
    size_t b1 = (size_t)(h >> 7) & idx->bloom_mask;
    size_t b2 = (size_t)(h >> 29) & idx->bloom_mask;

    idx->bloom[b1 >> 6] |= 1ULL << (b1 & 63);
    idx->bloom[b2 >> 6] |= 1ULL << (b2 & 63);
}

/* Index entry while building. */
struct s_ientry {
    const char *s;
    uint32_t len;
    uint32_t atom;
};

static int
s_ientry_cmp(const void *a, const void *b)
{
    const struct s_ientry *x = a;
    const struct s_ientry *y = b;
    uint32_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->s, y->s, n);

    if (c != 0) {
        return c;
    }
    if (x->len != y->len) {
        return x->len < y->len ? -1 : 1;
    }
    return x->atom < y->atom ? -1 : (x->atom > y->atom ? 1 : 0);
}

/* Builds idx over entries e[0..n) (sorted here); atom lists are appended to ilist at *ilen. */
static void
s_index_build(cls_match_t *self, struct s_index *idx, struct s_ientry *e, size_t n, size_t *ilen)
{
    size_t groups = 0;
    size_t i;
    size_t g;

    qsort(e, n, sizeof(*e), s_ientry_cmp);
    for (i = 0; i < n; i++) {
        if (i == 0 || e[i].len != e[i - 1].len || memcmp(e[i].s, e[i - 1].s, e[i].len) != 0) {
            groups++;
        }
    }
    idx->n_slots = 8;
    while (idx->n_slots < groups * 2) {
        idx->n_slots *= 2;
    }
    idx->slots = esc_calloc(idx->n_slots, sizeof(*idx->slots));
    idx->bloom_mask = S_BLOOM_MIN;
    while (idx->bloom_mask < groups * 16) {
        idx->bloom_mask *= 2;
    }
    idx->bloom = esc_calloc(idx->bloom_mask / 64, sizeof(*idx->bloom));
    idx->bloom_mask--;
    for (i = 0; i < n; i = g) {
        uint64_t h = s_hash(e[i].s, e[i].len);
        size_t slot = (size_t)h & (idx->n_slots - 1);
        struct s_slot *sl;
        size_t first = *ilen;

        for (g = i; g < n && e[g].len == e[i].len && memcmp(e[g].s, e[i].s, e[i].len) == 0; g++) {
            self->ilist[(*ilen)++] = e[g].atom;
        }
        while (idx->slots[slot].count != 0) {
            slot = (slot + 1) & (idx->n_slots - 1);
        }
        sl = &idx->slots[slot];
        sl->tag = (uint32_t)(h >> 32);
        sl->key_off = (uint32_t)(e[i].s - self->pool);
        sl->key_len = e[i].len;
        sl->first = (uint32_t)first;
        sl->count = (uint32_t)(g - i);
        s_bloom_add(idx, h);
        if (idx == &self->prefix) {
            self->prefix_lens |= 1ULL << e[i].len;
        }
    }
}

static int
s_pair_cmp(const void *a, const void *b)
{
    const uint32_t *x = a;
    const uint32_t *y = b;

    if (x[0] != y[0]) {
        return x[0] < y[0] ? -1 : 1;
    }
    return x[1] < y[1] ? -1 : (x[1] > y[1] ? 1 : 0);
}

/* True when the subtree of node id (S_NONE: none) tests a lang: atom. */
static bool
s_uses_lang(const cls_match_t *self, uint32_t id)
{
    const struct s_node *n;
    uint32_t k;

    if (id == S_NONE) {
        return false;
    }
    n = &self->nodes[id];
    switch (n->type) {
    case N_ATOM:
        return self->atoms[n->first].kind == CLS_QK_LANG;
    case N_FOLLOWERS:
        return false;
    case N_PHRASE:
    case N_SLOPPY:
        for (k = 0; k < n->count; k++) {
            if (self->atoms[self->refs[n->first + k]].kind == CLS_QK_LANG) {
                return true;
            }
        }
        return false;
    default:
        break;
    }
    for (k = 0; k < n->count; k++) {
        if (s_uses_lang(self, self->refs[n->first + k])) {
            return true;
        }
    }
    return false;
}

void
cls_match_build(cls_match_t *self)
{
    struct s_ientry *ex = esc_calloc(self->n_atoms + 1, sizeof(*ex));
    struct s_ientry *px = esc_calloc(self->n_atoms + 1, sizeof(*px));
    size_t n_ex = 0;
    size_t n_px = 0;
    size_t ilen = 0;
    size_t i;
    size_t out = 0;

    ESC_ASSERT(!self->built);
    for (i = 0; i < self->n_atoms; i++) {
        const struct s_atom *a = &self->atoms[i];

        if (a->match == CLS_QM_PREFIX || a->match == CLS_QM_GLOB) {
            px[n_px].s = self->pool + a->text;
            px[n_px].len = a->key_len;
            px[n_px++].atom = (uint32_t)i;
        }
        else {
            ex[n_ex].s = self->pool + a->text;
            ex[n_ex].len = a->len;
            ex[n_ex++].atom = (uint32_t)i;
        }
    }
    self->ilist = esc_calloc(self->n_atoms + 1, sizeof(*self->ilist));
    s_index_build(self, &self->exact, ex, n_ex, &ilen);
    s_index_build(self, &self->prefix, px, n_px, &ilen);
    esc_free(ex);
    esc_free(px);
    /* tags: kind (3 bits), fold (1), match (2) */
    _Static_assert(CLS_QK_KINDS <= 8 && CLS_QM_CASE < 4, "atom tags fit 6 bits");
    self->tagged = self->n_atoms < ((size_t)1 << S_ITAG_SHIFT);
    for (i = 0; self->tagged && i < ilen; i++) {
        const struct s_atom *a = &self->atoms[self->ilist[i]];
        uint32_t tag = (uint32_t)a->kind | (a->fold ? 8u : 0u) | (uint32_t)a->match << 4;

        self->ilist[i] |= tag << S_ITAG_SHIFT;
    }

    /* triggers: (atom, clause entry) pairs sorted and deduplicated, then listed per atom */
    qsort(self->pairs, self->n_pairs, 2 * sizeof(uint32_t), s_pair_cmp);
    self->trig_list = esc_calloc(self->n_pairs + 1, sizeof(*self->trig_list));
    for (i = 0; i < self->n_pairs; i++) {
        uint32_t a = self->pairs[2 * i];
        uint32_t t = self->pairs[2 * i + 1];

        if (i > 0 && self->pairs[2 * i - 2] == a && self->pairs[2 * i - 1] == t) {
            continue;
        }
        if (self->atoms[a].n_trig == 0) {
            self->atoms[a].trig = (uint32_t)out;
        }
        self->atoms[a].n_trig++;
        self->trig_list[out++] = t;
    }
    /* what the post's language decides (cls_match_lang_triggers, cls_match_need_lang), and
     * which tokens can matter at all (cls_match_token_kinds) */
    self->atom_trig = esc_calloc(2 * self->n_atoms + 2, sizeof(*self->atom_trig));
    for (i = 0; i < self->n_atoms; i++) {
        if (self->atoms[i].kind == CLS_QK_LANG && self->atoms[i].n_trig > 0) {
            self->lang_trig = true;
        }
        self->tok_kinds |= s_term_kinds[self->atoms[i].kind];
        self->atom_trig[2 * i] = self->atoms[i].trig;
        self->atom_trig[2 * i + 1] = self->atoms[i].n_trig;
    }
    for (i = 0; i < self->n_topics; i++) {
        struct s_topic *t = &self->topics[i];

        t->lang = s_uses_lang(self, t->incl) || s_uses_lang(self, t->excl)
                  || (t->team >= 0 && s_uses_lang(self, self->teams[t->team].excl));
    }
    ESC_FREE(self->pairs);
    ESC_FREE(self->dedup);
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
    char path[96];

    if (err != NULL) {
        memset(err, 0, sizeof(*err));
        esc_strlcpy(err->source, cfg->path, sizeof(err->source));
    }
    for (ti = 0; ti < cfg->n_teams; ti++) {
        const struct esc_cfg_team *team = &cfg->teams[ti];
        struct cls_team_src ts;
        int tix;

        memset(&ts, 0, sizeof(ts));
        ts.id = team->id;
        ts.authors = (const char *const *)team->exclude_authors;
        ts.n_authors = team->n_exclude_authors;
        ts.sites = (const char *const *)team->exclude_sites;
        ts.n_sites = team->n_exclude_sites;
        ts.phrases = (const char *const *)team->exclude_phrases;
        ts.n_phrases = team->n_exclude_phrases;
        snprintf(path, sizeof(path), "teams[%zu]", ti);
        tix = cls_match_add_team(self, &ts, path, err);
        if (tix < 0) {
            cls_match_destroy(&self);
            return NULL;
        }
        for (k = 0; k < team->n_topics; k++) {
            const struct esc_cfg_topic *t = &team->topics[k];
            struct cls_topic_src src;

            memset(&src, 0, sizeof(src));
            src.key = t->key;
            src.keywords = (const char *const *)t->keywords;
            src.n_keywords = t->n_keywords;
            src.query = t->query;
            src.exclude = t->exclude;
            src.fold_enye = t->fold_enye;
            src.team = tix;
            snprintf(path, sizeof(path), "teams[%zu].topics[%zu]", ti, k);
            if (cls_match_add_topic_src(self, &src, path, err) < 0) {
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
    return self->n_keywords;
}

size_t
cls_match_n_queries(const cls_match_t *self)
{
    return self->n_queries;
}

size_t
cls_match_n_atoms(const cls_match_t *self)
{
    return self->n_atoms;
}

const char *
cls_match_topic_key(const cls_match_t *self, size_t topic)
{
    ESC_ASSERT(topic < self->n_topics);
    return self->topics[topic].key;
}

const char *const *
cls_match_warnings(const cls_match_t *self, size_t *n)
{
    *n = self->n_warnings;
    return (const char *const *)self->warnings;
}

/* ---------------------------------------------------------------------------------------------
 * Matching: the token pass
 */

void
cls_match_result_init(struct cls_match_result *res)
{
    memset(res, 0, sizeof(*res));
    res->s = esc_calloc(1, sizeof(*res->s));
}

void
cls_match_result_fini(struct cls_match_result *res)
{
    struct cls_match_scratch *s;

    if (res == NULL || res->s == NULL) {
        return;
    }
    s = res->s;
    esc_free(s->ast);
    esc_free(s->cbits);
    esc_free(s->cstate);
    esc_free(s->team_mark);
    esc_free(s->team_excl);
    esc_free(s->present);
    esc_free(s->recs);
    esc_free(s->occ);
    esc_free(s->cand);
    esc_free(s->spans);
    esc_free(s->merge);
    esc_free(s->fold);
    esc_free(s->th);
    esc_free(s);
    esc_free(res->hits);
    memset(res, 0, sizeof(*res));
}

/* Sizes the per-atom/topic/team arrays for self (new entries zeroed). */
static void
s_scratch_fit(const cls_match_t *self, struct cls_match_result *res)
{
    struct cls_match_scratch *s = res->s;

    if (s->cap_atoms < self->n_atoms) {
        s->ast = esc_realloc(s->ast, self->n_atoms * sizeof(*s->ast));
        memset(s->ast + s->cap_atoms, 0, (self->n_atoms - s->cap_atoms) * sizeof(*s->ast));
        s->cap_atoms = self->n_atoms;
    }
    if (s->cap_topics < self->n_topics) {
        size_t old_words = (s->cap_topics + 63) / 64;
        size_t words = (self->n_topics + 63) / 64;

        s->cbits = esc_realloc(s->cbits, words * sizeof(*s->cbits));
        memset(s->cbits + old_words, 0, (words - old_words) * sizeof(*s->cbits));
        s->cap_topics = self->n_topics;
    }
    if (s->cap_clauses < self->n_clauses) {
        s->cstate = esc_realloc(s->cstate, self->n_clauses * sizeof(*s->cstate));
        memset(s->cstate + s->cap_clauses, 0,
               (self->n_clauses - s->cap_clauses) * sizeof(*s->cstate));
        s->cap_clauses = self->n_clauses;
    }
    if (s->cap_teams < self->n_teams) {
        s->team_mark = esc_realloc(s->team_mark, self->n_teams * sizeof(*s->team_mark));
        s->team_excl = esc_realloc(s->team_excl, self->n_teams);
        memset(s->team_mark + s->cap_teams, 0,
               (self->n_teams - s->cap_teams) * sizeof(*s->team_mark));
        s->cap_teams = self->n_teams;
    }
    res->gen++;
    if (res->gen == 0) {
        /* the marks would look current again: clear them once every 2^32 posts */
        if (s->cap_atoms > 0) {
            memset(s->ast, 0, s->cap_atoms * sizeof(*s->ast));
        }
        if (s->cap_teams > 0) {
            memset(s->team_mark, 0, s->cap_teams * sizeof(*s->team_mark));
        }
        if (s->cap_clauses > 0) {
            memset(s->cstate, 0, s->cap_clauses * sizeof(*s->cstate));
        }
        res->gen = 1;
    }
    s->gen = res->gen;
}

static void
s_rec(struct cls_match_scratch *s, uint32_t a, uint32_t pos, uint8_t kind)
{
    struct s_ast *st = &s->ast[a];
    struct s_rec *r;

    if (st->gen != s->gen) {
        st->gen = s->gen;
        st->cnt = 0;
        s->present = s_grow(s->present, &s->cap_present, s->n_present + 1, sizeof(*s->present));
        s->present[s->n_present++] = a;
    }
    st->cnt++;
    s->recs = s_grow(s->recs, &s->cap_recs, s->n_recs + 1, sizeof(*s->recs));
    r = &s->recs[s->n_recs++];
    r->atom = a;
    r->pos = pos;
    r->kind = kind;
}

static inline const struct s_slot *
s_find(const cls_match_t *self, const struct s_index *idx, uint64_t h, const char *s, size_t len)
{
    size_t slot = (size_t)h & (idx->n_slots - 1);
    uint32_t tag = (uint32_t)(h >> 32);

    if (!s_bloom_has(idx, h)) {
        return NULL;
    }
    for (;;) {
        const struct s_slot *sl = &idx->slots[slot];

        if (sl->count == 0) {
            return NULL;
        }
        if (sl->tag == tag && sl->key_len == len && s_same(self->pool + sl->key_off, s, len)) {
            return sl;
        }
        slot = (slot + 1) & (idx->n_slots - 1);
    }
}

/* Does pattern p (a '?' is one character, a final '*' any rest) match s[0..len)? */
static bool
s_glob(const char *p, size_t plen, const char *s, size_t len)
{
    size_t i = 0;
    size_t j = 0;

    while (i < plen) {
        if (p[i] == '*') {
            return true;
        }
        if (j >= len) {
            return false;
        }
        if (p[i] == '?') {
            j++;
            while (j < len && ((unsigned char)s[j] & 0xC0) == 0x80) {
                j++;
            }
            i++;
            continue;
        }
        if (p[i] != s[j]) {
            return false;
        }
        i++;
        j++;
    }
    return j == len;
}

/* Per-token lookup state: the token, and its exact form once computed. */
struct s_tokctx {
    cls_text_t *txt;
    const struct cls_token *t;
    const char *raw;
    size_t raw_len;
    bool fold_pass;
};

/* The atom of ilist entry k. */
static inline uint32_t
s_iatom(const cls_match_t *self, uint32_t k)
{
    return self->tagged ? self->ilist[k] & ((1u << S_ITAG_SHIFT) - 1) : self->ilist[k];
}

static void
s_try_atoms(const cls_match_t *self, struct cls_match_scratch *s, const struct s_slot *sl,
            struct s_tokctx *tc, const char *text, size_t len)
{
    uint32_t kbit = 1u << tc->t->kind;
    uint32_t k;

    for (k = sl->first; k < sl->first + sl->count; k++) {
        uint32_t id = self->ilist[k];
        const struct s_atom *a;

        if (self->tagged) {
            uint32_t tag = id >> S_ITAG_SHIFT;

            id &= (1u << S_ITAG_SHIFT) - 1;
            if (!(s_term_kinds[tag & 7] & kbit) || (tc->fold_pass && !(tag & 8))) {
                continue;
            }
            if ((tag >> 4) == CLS_QM_EXACT) {
                s_rec(s, id, tc->t->pos, tc->t->kind);
                continue;
            }
        }
        a = &self->atoms[id];
        if (!(s_term_kinds[a->kind] & kbit) || (tc->fold_pass && !a->fold)) {
            continue;
        }
        switch (a->match) {
        case CLS_QM_CASE:
            if (tc->raw == NULL) {
                tc->raw = cls_text_tok_raw(tc->txt, tc->t, &tc->raw_len);
            }
            if (tc->raw_len != a->raw_len
                || memcmp(tc->raw, self->pool + a->raw, a->raw_len) != 0) {
                continue;
            }
            break;
        case CLS_QM_PREFIX:
            if (len < a->len || !s_same(text, self->pool + a->text, a->len)) {
                continue;
            }
            break;
        case CLS_QM_GLOB:
            if (!s_glob(self->pool + a->text, a->len, text, len)) {
                continue;
            }
            break;
        default:
            break;
        }
        s_rec(s, id, tc->t->pos, tc->t->kind);
    }
}

/* Looks text (the token's, or its ñ-folded form; hx is s_hash(text, len)) up in both
 * indexes. */
static void
s_lookup(const cls_match_t *self, struct cls_match_scratch *s, struct s_tokctx *tc,
         const char *text, size_t len, uint64_t hx)
{
    const struct s_slot *sl;
    uint64_t lens = self->prefix_lens;
    uint64_t h;
    size_t max;
    size_t l;

    sl = s_find(self, &self->exact, hx, text, len);
    if (sl != NULL) {
        s_try_atoms(self, s, sl, tc, text, len);
    }
    if (lens == 0) {
        return;
    }
    max = len < S_PREFIX_KEY ? len : S_PREFIX_KEY;
    lens &= (2ULL << max) - 1;
    for (; lens != 0; lens &= lens - 1) {
        l = (size_t)__builtin_ctzll(lens);
        h = s_hash(text, l);
        sl = s_find(self, &self->prefix, h, text, l);
        if (sl != NULL) {
            s_try_atoms(self, s, sl, tc, text, len);
        }
    }
}

/* A link token "host/path": site atoms of the host and each parent domain. */
static void
s_link(const cls_match_t *self, struct cls_match_scratch *s, const struct cls_token *t,
       const char *text)
{
    const char *slash = memchr(text, '/', t->len);
    size_t host_len = slash != NULL ? (size_t)(slash - text) : t->len;
    const char *path = text + host_len;
    size_t path_len = t->len - host_len;
    size_t off = 0;

    while (off < host_len) {
        const char *h = text + off;
        size_t hl = host_len - off;
        const struct s_slot *sl = s_find(self, &self->exact, s_hash(h, hl), h, hl);
        const char *dot;
        uint32_t k;

        for (k = sl != NULL ? sl->first : 0; sl != NULL && k < sl->first + sl->count; k++) {
            uint32_t id = s_iatom(self, k);
            const struct s_atom *a = &self->atoms[id];

            if (a->kind != CLS_QK_SITE
                || (a->raw_len > 0
                    && (path_len < a->raw_len
                        || memcmp(path, self->pool + a->raw, a->raw_len) != 0))) {
                continue;
            }
            s_rec(s, id, CLS_POS_NONE, t->kind);
        }
        dot = memchr(h, '.', hl);
        if (dot == NULL) {
            break;
        }
        off += (size_t)(dot - h) + 1;
    }
}

/* Replaces each ñ (C3 B1) of text with n into s->fold; returns its length. */
static size_t
s_fold(struct cls_match_scratch *s, const char *text, size_t len)
{
    size_t i;
    size_t o = 0;

    s->fold = s_grow(s->fold, &s->cap_fold, len + 1, 1);
    for (i = 0; i < len; i++) {
        if ((unsigned char)text[i] == 0xC3 && i + 1 < len && (unsigned char)text[i + 1] == 0xB1) {
            s->fold[o++] = 'n';
            i++;
            continue;
        }
        s->fold[o++] = text[i];
    }
    return o;
}

/* The token pass over the tokens of txt from index `from` on: every atom a token holds is
 * recorded (s_rec). */
static void
s_tokens(const cls_match_t *self, cls_text_t *txt, struct cls_match_scratch *s, size_t from)
{
    const struct cls_token *toks;
    size_t n_toks;
    size_t i;

    toks = cls_text_tokens(txt, &n_toks);
    /* The exact table is larger than the first-level cache: the slots of the tokens its bloom
     * filter lets through are requested for all tokens first, so that their cache misses
     * overlap, and looked at in the second pass. */
    s->th = s_grow(s->th, &s->cap_th, n_toks + 1, sizeof(*s->th));
    for (i = from; i < n_toks; i++) {
        const struct cls_token *t = &toks[i];
        uint64_t h;

        if (t->kind == CLS_TOK_LINK) {
            continue;
        }
        h = s_hash(cls_text_tok_str(txt, t), t->len);
        s->th[i] = h;
        if (s_bloom_has(&self->exact, h)) {
            __builtin_prefetch(&self->exact.slots[(size_t)h & (self->exact.n_slots - 1)]);
        }
    }
    for (i = from; i < n_toks; i++) {
        const struct cls_token *t = &toks[i];
        const char *text = cls_text_tok_str(txt, t);
        struct s_tokctx tc;

        if (t->kind == CLS_TOK_LINK) {
            s_link(self, s, t, text);
            continue;
        }
        memset(&tc, 0, sizeof(tc));
        tc.txt = txt;
        tc.t = t;
        s_lookup(self, s, &tc, text, t->len, s->th[i]);
        if (self->has_fold && (t->flags & CLS_TOKF_ENYE)) {
            size_t flen = s_fold(s, text, t->len);

            tc.fold_pass = true;
            s_lookup(self, s, &tc, s->fold, flen, s_hash(s->fold, flen));
        }
    }
    s->n_toks = n_toks;
}

/* Groups all records of the post per atom into occ, keeping token order (positions ascending,
 * meta last). Each present atom's cnt is its number of records on entry and on return. */
static void
s_occ_group(struct cls_match_scratch *s)
{
    size_t i;
    uint32_t off = 0;

    for (i = 0; i < s->n_present; i++) {
        struct s_ast *st = &s->ast[s->present[i]];

        st->off = off;
        off += st->cnt;
        st->cnt = 0;
    }
    s->occ = s_grow(s->occ, &s->cap_occ, off + 1, sizeof(*s->occ));
    for (i = 0; i < s->n_recs; i++) {
        struct s_ast *st = &s->ast[s->recs[i].atom];
        struct s_occ *o = &s->occ[st->off + st->cnt++];

        o->pos = s->recs[i].pos;
        o->kind = s->recs[i].kind;
    }
}

/* Sets the bit of topic t in the candidate bitmap; true when it was not set yet. */
static inline bool
s_cand_mark(struct cls_match_scratch *s, uint32_t t, size_t *lo, size_t *hi)
{
    uint64_t bit = 1ULL << (t & 63);

    if (s->cbits[t >> 6] & bit) {
        return false;
    }
    s->cbits[t >> 6] |= bit;
    *lo = (t >> 6) < *lo ? (t >> 6) : *lo;
    *hi = (t >> 6) > *hi ? (t >> 6) : *hi;
    return true;
}

/* Candidates: the topics of the clauses whose groups all have a present atom. The atoms
 * present[from..n_present) fill their clause groups (the states of the clauses filled by the
 * earlier ones carry over); the topics completed are set in a bitmap with those already in
 * s->cand and read back in topic order, so s->cand stays sorted (the words read are cleared
 * again). */
static void
s_cands(const cls_match_t *self, struct cls_match_scratch *s, size_t from)
{
    size_t i;
    size_t n_cand = 0;
    size_t lo = SIZE_MAX;
    size_t hi = 0;
    size_t w;

    for (i = from; i < s->n_present; i++) {
        const uint32_t *at = &self->atom_trig[2 * (size_t)s->present[i]];
        uint32_t k;

        for (k = at[0]; k < at[0] + at[1]; k++) {
            uint32_t e = self->trig_list[k];
            struct s_cstate *cs = &s->cstate[e >> 1];

            if (cs->gen != s->gen) {
                cs->gen = s->gen;
                cs->mask = 0;
            }
            cs->mask |= 1u << (e & 1);
            if (cs->mask != self->clauses[e >> 1].need) {
                continue;
            }
            n_cand += s_cand_mark(s, self->clauses[e >> 1].topic, &lo, &hi) ? 1 : 0;
        }
    }
    if (n_cand == 0) {
        return;
    }
    for (i = 0; i < s->n_cand; i++) {
        n_cand += s_cand_mark(s, s->cand[i], &lo, &hi) ? 1 : 0;
    }
    s->cand = s_grow(s->cand, &s->cap_cand, n_cand, sizeof(*s->cand));
    s->n_cand = 0;
    for (w = lo; w <= hi; w++) {
        uint64_t bits = s->cbits[w];

        while (bits != 0) {
            s->cand[s->n_cand++] = (uint32_t)(w * 64 + (size_t)__builtin_ctzll(bits));
            bits &= bits - 1;
        }
        s->cbits[w] = 0;
    }
}

/* The token pass, grouping and candidates of a new post; leaves s->cand sorted. */
static void
s_collect(const cls_match_t *self, cls_text_t *txt, struct cls_match_scratch *s)
{
    s->n_present = 0;
    s->n_recs = 0;
    s->n_cand = 0;
    s->top = 0;
    s_tokens(self, txt, s, 0);
    s_occ_group(s);
    s_cands(self, s, 0);
}

/* ---------------------------------------------------------------------------------------------
 * Matching: evaluation
 */

static bool
s_present(const struct cls_match_scratch *s, uint32_t a)
{
    return s->ast[a].gen == s->gen;
}

/* True when atom a occurs at pos as a token whose kind is in kinds. */
static bool
s_at(const struct cls_match_scratch *s, uint32_t a, uint32_t pos, uint32_t kinds)
{
    const struct s_ast *st = &s->ast[a];
    const struct s_occ *o = s->occ + st->off;
    size_t lo = 0;
    size_t hi = st->cnt;

    if (st->gen != s->gen) {
        return false;
    }
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;

        if (o[mid].pos < pos) {
            lo = mid + 1;
        }
        else {
            hi = mid;
        }
    }
    for (; lo < st->cnt && o[lo].pos == pos; lo++) {
        if (kinds & (1u << o[lo].kind)) {
            return true;
        }
    }
    return false;
}

static void
s_span_push(struct cls_match_scratch *s, uint32_t start, uint32_t end)
{
    s->spans = s_grow(s->spans, &s->cap_spans, s->top + 1, sizeof(*s->spans));
    s->spans[s->top].s = start;
    s->spans[s->top].e = end;
    s->top++;
}

/* Exact phrase: spans of its matches pushed on the span stack (at most limit). */
static size_t
s_phrase(const cls_match_t *self, struct cls_match_scratch *s, const struct s_node *n,
         size_t limit)
{
    const uint32_t *ref = self->refs + n->first;
    const struct s_ast *st = &s->ast[ref[0]];
    uint32_t kinds0 = s_phrase_kinds[self->atoms[ref[0]].kind];
    size_t found = 0;
    uint32_t k;
    uint32_t i;

    for (k = 0; k < n->count; k++) {
        if (!s_present(s, ref[k])) {
            return 0;
        }
    }
    for (i = 0; i < st->cnt && found < limit; i++) {
        const struct s_occ *o = &s->occ[st->off + i];

        if (o->pos == CLS_POS_NONE || !(kinds0 & (1u << o->kind))) {
            continue;
        }
        for (k = 1; k < n->count; k++) {
            if (!s_at(s, ref[k], o->pos + k, s_phrase_kinds[self->atoms[ref[k]].kind])) {
                break;
            }
        }
        if (k == n->count) {
            s_span_push(s, o->pos, o->pos + n->count - 1);
            found++;
        }
    }
    return found;
}

static int
s_span_cmp(const void *a, const void *b)
{
    const struct s_span *x = a;
    const struct s_span *y = b;

    if (x->s != y->s) {
        return x->s < y->s ? -1 : 1;
    }
    return x->e < y->e ? -1 : (x->e > y->e ? 1 : 0);
}

/* Sloppy phrase: every word (a repeated word as often as written) at distinct positions, in
 * any order, with at most n other tokens among them. Pushes the windows (at most limit). */
static size_t
s_sloppy(const cls_match_t *self, struct cls_match_scratch *s, const struct s_node *n,
         size_t limit)
{
    const uint32_t *ref = self->refs + n->first;
    uint32_t slot_atom[CLS_PHRASE_MAX];
    uint32_t need[CLS_PHRASE_MAX];
    uint32_t have[CLS_PHRASE_MAX];
    uint32_t n_slots = 0;
    size_t n_m = 0;
    size_t total = n->count;
    size_t l = 0;
    size_t r;
    uint32_t satisfied = 0;
    size_t distinct = 0;
    size_t found = 0;
    uint32_t k;
    uint32_t j;

    for (k = 0; k < n->count; k++) {
        if (!s_present(s, ref[k])) {
            return 0;
        }
        for (j = 0; j < n_slots && slot_atom[j] != ref[k]; j++) {
        }
        if (j == n_slots) {
            slot_atom[n_slots] = ref[k];
            need[n_slots++] = 0;
        }
        need[j]++;
    }
    for (j = 0; j < n_slots; j++) {
        const struct s_ast *st = &s->ast[slot_atom[j]];
        uint32_t kinds = s_phrase_kinds[self->atoms[slot_atom[j]].kind];
        uint32_t i;

        have[j] = 0;
        for (i = 0; i < st->cnt; i++) {
            const struct s_occ *o = &s->occ[st->off + i];

            if (o->pos == CLS_POS_NONE || !(kinds & (1u << o->kind))) {
                continue;
            }
            s->merge = s_grow(s->merge, &s->cap_merge, n_m + 1, sizeof(*s->merge));
            s->merge[n_m].s = o->pos;
            s->merge[n_m++].e = j;
        }
    }
    if (n_m > 1) {
        qsort(s->merge, n_m, sizeof(*s->merge), s_span_cmp);
    }
    for (r = 0; r < n_m && found < limit; r++) {
        const struct s_span *m = s->merge;

        if (r == l || m[r].s != m[r - 1].s) {
            distinct++;
        }
        if (++have[m[r].e] == need[m[r].e]) {
            satisfied++;
        }
        while (satisfied == n_slots && distinct >= total && found < limit) {
            if (m[r].s - m[l].s + 1 <= total + (size_t)n->n) {
                s_span_push(s, m[l].s, m[r].s);
                found++;
            }
            if (have[m[l].e]-- == need[m[l].e]) {
                satisfied--;
            }
            if (l + 1 > r || m[l + 1].s != m[l].s) {
                distinct--;
            }
            l++;
        }
    }
    return found;
}

static size_t s_spans(const cls_match_t *self, struct cls_match_scratch *s, uint32_t id,
                      size_t limit);

/* NEAR: pairs of a left and a right span at most n tokens apart (left first when ordered),
 * each pushed as the span covering both. */
static size_t
s_near(const cls_match_t *self, struct cls_match_scratch *s, const struct s_node *n,
       size_t limit)
{
    size_t base = s->top;
    size_t nl = s_spans(self, s, self->refs[n->first], CLS_SPANS_MAX);
    size_t nr;
    size_t rb;
    size_t found = 0;
    size_t i;
    size_t j;
    size_t j0 = 0;
    uint32_t d = (uint32_t)n->n;
    uint32_t rlen = 0;

    if (nl == 0) {
        s->top = base;
        return 0;
    }
    rb = s->top;
    nr = s_spans(self, s, self->refs[n->first + 1], CLS_SPANS_MAX);
    if (nr == 0) {
        s->top = base;
        return 0;
    }
    for (j = 0; j < nr; j++) {
        uint32_t l = s->spans[rb + j].e - s->spans[rb + j].s;

        rlen = l > rlen ? l : rlen;
    }
    /* both lists are sorted by start: a window over the right list follows the left span */
    for (i = 0; i < nl && found < limit; i++) {
        struct s_span lsp = s->spans[base + i];

        while (j0 < nr && (uint64_t)s->spans[rb + j0].s + rlen + d + 1 < lsp.s) {
            j0++; /* ends too far left of this and of every later left span */
        }
        for (j = j0; j < nr && found < limit; j++) {
            struct s_span rsp = s->spans[rb + j];
            uint32_t gap;

            if (rsp.s > lsp.e + d + 1) {
                break; /* the rest start further right */
            }
            if (lsp.e < rsp.s) {
                gap = rsp.s - lsp.e - 1;
            }
            else if (!n->ordered && rsp.e < lsp.s) {
                gap = lsp.s - rsp.e - 1;
            }
            else {
                continue; /* overlapping, or in the wrong order */
            }
            if (gap > d) {
                continue;
            }
            s_span_push(s, lsp.s < rsp.s ? lsp.s : rsp.s, lsp.e > rsp.e ? lsp.e : rsp.e);
            found++;
        }
    }
    memmove(s->spans + base, s->spans + rb + nr, found * sizeof(*s->spans));
    s->top = base + found;
    if (found > 1) {
        qsort(s->spans + base, found, sizeof(*s->spans), s_span_cmp);
    }
    return found;
}

/* Pushes the position spans of a positional node (term, phrase, NEAR, OR of those), sorted by
 * start, at most limit of them. */
static size_t
s_spans(const cls_match_t *self, struct cls_match_scratch *s, uint32_t id, size_t limit)
{
    const struct s_node *n = &self->nodes[id];
    size_t base = s->top;
    size_t found = 0;
    uint32_t k;

    switch (n->type) {
    case N_ATOM: {
        const struct s_ast *st = &s->ast[n->first];
        uint32_t kinds = s_near_kinds[self->atoms[n->first].kind];
        uint32_t last = CLS_POS_NONE;
        uint32_t i;

        if (st->gen != s->gen) {
            return 0;
        }
        for (i = 0; i < st->cnt && found < limit; i++) {
            const struct s_occ *o = &s->occ[st->off + i];

            if (o->pos == CLS_POS_NONE || o->pos == last || !(kinds & (1u << o->kind))) {
                continue;
            }
            last = o->pos;
            s_span_push(s, o->pos, o->pos);
            found++;
        }
        return found;
    }
    case N_PHRASE:
        return s_phrase(self, s, n, limit);
    case N_SLOPPY:
        return s_sloppy(self, s, n, limit);
    case N_NEAR:
        return s_near(self, s, n, limit);
    case N_OR: {
        size_t i;
        size_t u = 0;

        for (k = 0; k < n->count && found < limit; k++) {
            found += s_spans(self, s, self->refs[n->first + k], limit - found);
        }
        if (found < 2) {
            return found;
        }
        qsort(s->spans + base, found, sizeof(*s->spans), s_span_cmp);
        for (i = 0; i < found; i++) {
            if (u == 0 || s->spans[base + i].s != s->spans[base + u - 1].s
                || s->spans[base + i].e != s->spans[base + u - 1].e) {
                s->spans[base + u++] = s->spans[base + i];
            }
        }
        s->top = base + u;
        return u;
    }
    default:
        break;
    }
    return 0;
}

static bool
s_eval(const cls_match_t *self, struct cls_match_scratch *s, uint32_t id)
{
    const struct s_node *n = &self->nodes[id];
    size_t base;
    size_t found;
    uint32_t k;

    switch (n->type) {
    case N_ATOM:
        return s_present(s, n->first);
    case N_AND:
        for (k = 0; k < n->count; k++) {
            if (!s_eval(self, s, self->refs[n->first + k])) {
                return false;
            }
        }
        return true;
    case N_OR:
        for (k = 0; k < n->count; k++) {
            if (s_eval(self, s, self->refs[n->first + k])) {
                return true;
            }
        }
        return false;
    case N_NOT:
        return !s_eval(self, s, self->refs[n->first]);
    case N_FOLLOWERS:
        switch (n->cmp) {
        case CLS_QC_GT:
            return s->followers > n->value;
        case CLS_QC_GE:
            return s->followers >= n->value;
        case CLS_QC_LT:
            return s->followers < n->value;
        case CLS_QC_LE:
            return s->followers <= n->value;
        default:
            return s->followers == n->value;
        }
    default:
        break;
    }
    base = s->top;
    if (n->type == N_PHRASE) {
        found = s_phrase(self, s, n, 1);
    }
    else if (n->type == N_SLOPPY) {
        found = s_sloppy(self, s, n, 1);
    }
    else {
        found = s_near(self, s, n, 1);
    }
    s->top = base;
    return found > 0;
}

static bool
s_team_excluded(const cls_match_t *self, struct cls_match_scratch *s, int32_t team)
{
    if (team < 0 || self->teams[team].excl == S_NONE) {
        return false;
    }
    if (s->team_mark[team] != s->gen) {
        s->team_mark[team] = s->gen;
        s->team_excl[team] = s_eval(self, s, self->teams[team].excl) ? 1 : 0;
    }
    return s->team_excl[team] != 0;
}

static bool
s_topic_match(const cls_match_t *self, struct cls_match_scratch *s, uint32_t topic)
{
    const struct s_topic *t = &self->topics[topic];

    return s_eval(self, s, t->incl) && (t->excl == S_NONE || !s_eval(self, s, t->excl))
        && !s_team_excluded(self, s, t->team);
}

/* Evaluates the candidates in s->cand into res->hits. */
static size_t
s_eval_cands(const cls_match_t *self, struct cls_match_result *res)
{
    struct cls_match_scratch *s = res->s;
    size_t i;

    if (s->cap_hits < s->n_cand) {
        res->hits = esc_realloc(res->hits, s->n_cand * sizeof(*res->hits));
        s->cap_hits = s->n_cand;
    }
    res->n_hits = 0;
    res->n_candidates = s->n_cand;
    for (i = 0; i < s->n_cand; i++) {
        if (s_topic_match(self, s, s->cand[i])) {
            res->hits[res->n_hits++].topic = s->cand[i];
        }
    }
    return res->n_hits;
}

/* cls_match_collect: a new post's token pass and candidates. */
static void
s_begin(const cls_match_t *self, cls_text_t *txt, const struct cls_match_post *post,
        struct cls_match_result *res)
{
    struct cls_match_scratch *s = res->s;

    ESC_ASSERT(self->built);
    s_scratch_fit(self, res);
    s->followers = post != NULL ? post->followers : 0;
    s_collect(self, txt, s);
    res->n_hits = 0;
    res->n_candidates = s->n_cand;
}

size_t
cls_match_run(const cls_match_t *self, cls_text_t *txt, const struct cls_match_post *post,
              struct cls_match_result *res)
{
    s_begin(self, txt, post, res);
    return s_eval_cands(self, res);
}

size_t
cls_match_run_all(const cls_match_t *self, cls_text_t *txt, const struct cls_match_post *post,
                  struct cls_match_result *res)
{
    struct cls_match_scratch *s = res->s;
    size_t i;

    s_begin(self, txt, post, res);
    s->cand = s_grow(s->cand, &s->cap_cand, self->n_topics + 1, sizeof(*s->cand));
    for (i = 0; i < self->n_topics; i++) {
        s->cand[i] = (uint32_t)i;
    }
    s->n_cand = self->n_topics;
    return s_eval_cands(self, res);
}

bool
cls_match_lang_triggers(const cls_match_t *self)
{
    return self->lang_trig;
}

uint32_t
cls_match_token_kinds(const cls_match_t *self)
{
    ESC_ASSERT(self->built);
    return self->tok_kinds;
}

size_t
cls_match_collect(const cls_match_t *self, cls_text_t *txt, const struct cls_match_post *post,
                  struct cls_match_result *res)
{
    s_begin(self, txt, post, res);
    return res->n_candidates;
}

size_t
cls_match_collect_more(const cls_match_t *self, cls_text_t *txt, struct cls_match_result *res)
{
    struct cls_match_scratch *s = res->s;
    size_t from = s->n_present;

    ESC_ASSERT(s->gen == res->gen);
    s_tokens(self, txt, s, s->n_toks);
    s_occ_group(s);
    s_cands(self, s, from);
    res->n_candidates = s->n_cand;
    return s->n_cand;
}

bool
cls_match_need_lang(const cls_match_t *self, const struct cls_match_result *res)
{
    const struct cls_match_scratch *s = res->s;
    size_t i;

    for (i = 0; i < s->n_cand; i++) {
        if (self->topics[s->cand[i]].lang) {
            return true;
        }
    }
    return false;
}

size_t
cls_match_eval(const cls_match_t *self, struct cls_match_result *res)
{
    return s_eval_cands(self, res);
}

/* ---------------------------------------------------------------------------------------------
 * Explaining
 */

/* True when the subtree has a present atom (so it is worth pointing at). */
static bool
s_touched(const cls_match_t *self, const struct cls_match_scratch *s, uint32_t id)
{
    const struct s_node *n = &self->nodes[id];
    uint32_t k;

    switch (n->type) {
    case N_ATOM:
        return s_present(s, n->first);
    case N_PHRASE:
    case N_SLOPPY:
        for (k = 0; k < n->count; k++) {
            if (s_present(s, self->refs[n->first + k])) {
                return true;
            }
        }
        return false;
    case N_FOLLOWERS:
        return false;
    default:
        break;
    }
    for (k = 0; k < n->count; k++) {
        if (s_touched(self, s, self->refs[n->first + k])) {
            return true;
        }
    }
    return false;
}

/* The clause that makes a true node true: down through ORs to the first true branch. */
static uint32_t
s_why_true(const cls_match_t *self, struct cls_match_scratch *s, uint32_t id)
{
    const struct s_node *n = &self->nodes[id];
    uint32_t k;

    if (n->type != N_OR) {
        return id;
    }
    for (k = 0; k < n->count; k++) {
        if (s_eval(self, s, self->refs[n->first + k])) {
            return s_why_true(self, s, self->refs[n->first + k]);
        }
    }
    return id;
}

/* The clause that makes a false node false: the first false branch of an AND, the branch of an
 * OR that had something present, else the node itself. */
static uint32_t
s_why_false(const cls_match_t *self, struct cls_match_scratch *s, uint32_t id)
{
    const struct s_node *n = &self->nodes[id];
    uint32_t k;

    if (n->type == N_AND) {
        for (k = 0; k < n->count; k++) {
            if (!s_eval(self, s, self->refs[n->first + k])) {
                return s_why_false(self, s, self->refs[n->first + k]);
            }
        }
    }
    if (n->type == N_OR) {
        for (k = 0; k < n->count; k++) {
            if (s_touched(self, s, self->refs[n->first + k])) {
                return s_why_false(self, s, self->refs[n->first + k]);
            }
        }
    }
    return id;
}

/* Prints `label="clause"` for node id. */
static void
s_print_clause(const cls_match_t *self, uint32_t id, FILE *f)
{
    const struct s_node *n = &self->nodes[id];
    const struct s_src *src;
    uint32_t i;

    if (n->src == S_NONE) {
        fputs("keywords/query=(none of them)", f);
        return;
    }
    src = &self->srcs[n->src];
    fprintf(f, "%s=\"", src->label);
    for (i = n->from; i < n->to; i++) {
        if (src->text[i] == '"' || src->text[i] == '\\') {
            fputc('\\', f);
        }
        fputc(src->text[i], f);
    }
    fputc('"', f);
}

static const char *
s_false_reason(const cls_match_t *self, const struct cls_match_scratch *s, uint32_t id)
{
    const struct s_node *n = &self->nodes[id];

    switch (n->type) {
    case N_ATOM:
        return "not found";
    case N_PHRASE:
        return s_touched(self, s, id) ? "words found, but not together in this order"
                                      : "not found";
    case N_SLOPPY:
        return "words not all found within the distance";
    case N_NEAR:
        return s_touched(self, s, id) ? "terms not within the distance" : "not found";
    case N_NOT:
        return "the excluded term is present";
    case N_FOLLOWERS:
        return "follower count does not qualify";
    case N_OR:
        return "none of the alternatives found";
    default:
        break;
    }
    return "false";
}

void
cls_match_explain(const cls_match_t *self, cls_text_t *txt, const struct cls_match_post *post,
                  struct cls_match_result *res, FILE *f)
{
    struct cls_match_scratch *s;
    size_t i;
    size_t h = 0;
    bool any_miss = false;

    cls_match_run(self, txt, post, res);
    s = res->s;
    fprintf(f, "topics:%s\n", res->n_hits == 0 ? " none" : "");
    for (i = 0; i < res->n_hits; i++) {
        const struct s_topic *t = &self->topics[res->hits[i].topic];

        fprintf(f, "  %s ", t->key);
        s_print_clause(self, s_why_true(self, s, t->incl), f);
        fputc('\n', f);
    }
    /* near misses: every topic the post touched (one of its atoms is present), not only
     * the candidates that a trigger atom brought in */
    for (i = 0; i < self->n_topics; i++) {
        const struct s_topic *t = &self->topics[i];

        if (h < res->n_hits && res->hits[h].topic == i) {
            h++;
            continue;
        }
        if (!s_touched(self, s, t->incl)) {
            continue;
        }
        if (!any_miss) {
            fputs("near misses:\n", f);
            any_miss = true;
        }
        fprintf(f, "  %s ", t->key);
        if (!s_eval(self, s, t->incl)) {
            uint32_t w = s_why_false(self, s, t->incl);

            fputs("failed ", f);
            s_print_clause(self, w, f);
            fprintf(f, " (%s)\n", s_false_reason(self, s, w));
        }
        else if (t->excl != S_NONE && s_eval(self, s, t->excl)) {
            fputs("excluded by ", f);
            s_print_clause(self, s_why_true(self, s, t->excl), f);
            fputc('\n', f);
        }
        else {
            fprintf(f, "excluded by team %s ", self->teams[t->team].id);
            s_print_clause(self, s_why_true(self, s, self->teams[t->team].excl), f);
            fputc('\n', f);
        }
    }
}
