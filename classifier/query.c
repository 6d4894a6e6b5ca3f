#define ESC_LOG_MODULE "query"
/* Parser and validator of the topic query language. The lexer turns the string into tokens
 * (operators AND/OR/NOT/-/NEAR/n/NEAR/nf/ONEAR/n, brackets, "phrases"~n, {exact}, field:
 * prefixes and terms); the recursive-descent parser builds the tree with the documented
 * precedence, tightest first: () > field/term > NEAR > NOT > AND (explicit or implied by a
 * space) > OR. Every term is normalised through cls_text exactly like post text, so a term
 * becomes one element or, when it holds several words ("covid-19"), a phrase. Nothing stops
 * at the first problem: errors are recorded with their column and parsing resumes at the next
 * token, so a validator can list them all. Off the hot path; single-threaded per call. */
#include <stdarg.h>
#include <string.h>
#include <strings.h>

#include "escucha/esc_log.h"
#include "escucha/esc_mem.h"
#include "escucha/esc_util.h"

#include "query.h"

/* Lexer token types. */
enum s_lt {
    L_EOF = 0,
    L_LPAREN,
    L_RPAREN,
    L_AND,
    L_OR,
    L_NOT,
    L_MINUS,
    L_NEAR,
    L_TERM,
    L_PHRASE,
    L_EXACT,
    L_FIELD,
};

enum s_field {
    F_NONE = 0,
    F_AUTHOR,
    F_LANG,
    F_PLATFORM,
    F_SITE,
    F_HASHTAG,
    F_MENTION,
    F_FOLLOWERS,
};

struct s_fieldname {
    const char *name;
    enum s_field field;
};

static const struct s_fieldname s_fields[] = {
    { "author", F_AUTHOR },   { "lang", F_LANG },       { "platform", F_PLATFORM },
    { "site", F_SITE },       { "url", F_SITE },        { "links", F_SITE },
    { "hashtag", F_HASHTAG }, { "mention", F_MENTION }, { "followers", F_FOLLOWERS },
};

struct s_tok {
    uint8_t type;    /* enum s_lt */
    uint8_t field;   /* L_FIELD: enum s_field */
    bool ordered;    /* L_NEAR */
    bool glued;      /* L_FIELD: the value follows the colon directly */
    bool bad;        /* L_TERM/L_PHRASE/L_EXACT already reported as an error: an operand
                        that yields nothing, so that no second error follows from it */
    int32_t n;       /* L_NEAR: distance; L_PHRASE: slop or -1 */
    uint32_t from;   /* the whole token, bytes [from, to) */
    uint32_t to;
    uint32_t vfrom;  /* L_PHRASE/L_EXACT: the text inside; L_FIELD: the name */
    uint32_t vto;
};

struct s_parser {
    struct cls_query *q;
    const char *src;
    size_t len;
    const struct cls_query_opts *opts;
    struct cls_text_opts topts;  /* normalisation of terms */
    struct cls_text_opts kopts;  /* normalisation of {Exact} index keys */
    cls_text_t *txt;
    struct s_tok *toks;
    size_t n_toks;
    size_t cap_toks;
    size_t i;                    /* next token */
    enum s_field field;          /* field whose value is being parsed, F_NONE outside */
    bool value_next;             /* lexer: the next word is a field's value, not a field */
    int depth;
};

/* ---------------------------------------------------------------------------------------------
 * Storage
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

static uint32_t
s_col(const char *src, size_t byte)
{
    uint32_t col = 1;
    size_t i;

    for (i = 0; i < byte && src[i] != '\0'; i++) {
        if (((unsigned char)src[i] & 0xC0) != 0x80) {
            col++;
        }
    }
    return col;
}

static void s_msg(struct s_parser *p, bool error, size_t byte, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Records an error or a warning at byte offset `byte` (SIZE_MAX: the whole string). */
static void
s_msg(struct s_parser *p, bool error, size_t byte, const char *fmt, ...)
{
    struct cls_query *q = p->q;
    struct cls_q_msg *m;
    char text[sizeof(m->text)];
    va_list ap;
    size_t k;

    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    for (k = 0; k < q->n_msgs; k++) {
        if (q->msgs[k].error == error && q->msgs[k].byte == (byte == SIZE_MAX ? 0 : byte)
            && strcmp(q->msgs[k].text, text) == 0) {
            return; /* the same problem seen from two places */
        }
    }
    q->msgs = s_grow(q->msgs, &q->cap_msgs, q->n_msgs + 1, sizeof(*q->msgs));
    /* keep source order: insert after the last message at or before byte */
    for (k = q->n_msgs; k > 0 && byte != SIZE_MAX && q->msgs[k - 1].byte > byte; k--) {
    }
    memmove(&q->msgs[k + 1], &q->msgs[k], (q->n_msgs - k) * sizeof(*q->msgs));
    m = &q->msgs[k];
    memset(m, 0, sizeof(*m));
    m->error = error;
    if (byte == SIZE_MAX || p->opts->mode == CLS_QUERY_KEYWORD) {
        m->byte = 0;
        m->col = p->opts->mode == CLS_QUERY_KEYWORD ? 0 : 1;
    }
    else {
        m->byte = (uint32_t)byte;
        m->col = s_col(p->src, byte);
    }
    memcpy(m->text, text, sizeof(m->text));
    q->n_msgs++;
    q->n_errors += error ? 1 : 0;
}

static uint32_t
s_node(struct s_parser *p, enum cls_q_type type, size_t from, size_t to)
{
    struct cls_query *q = p->q;
    struct cls_q_node *n;

    q->nodes = s_grow(q->nodes, &q->cap_nodes, q->n_nodes + 1, sizeof(*q->nodes));
    n = &q->nodes[q->n_nodes];
    memset(n, 0, sizeof(*n));
    n->type = (uint8_t)type;
    n->n = -1;
    n->from = (uint32_t)from;
    n->to = (uint32_t)to;
    return (uint32_t)q->n_nodes++;
}

/* A node over the children list[0..n) (copied into q->kids). */
static uint32_t
s_parent(struct s_parser *p, enum cls_q_type type, const uint32_t *list, size_t n)
{
    struct cls_query *q = p->q;
    uint32_t id = s_node(p, type, q->nodes[list[0]].from, q->nodes[list[n - 1]].to);

    q->kids = s_grow(q->kids, &q->cap_kids, q->n_kids + n, sizeof(*q->kids));
    memcpy(q->kids + q->n_kids, list, n * sizeof(*list));
    q->nodes[id].first = (uint32_t)q->n_kids;
    q->nodes[id].count = (uint32_t)n;
    q->n_kids += n;
    return id;
}

static uint32_t
s_elem(struct s_parser *p, enum cls_q_kind kind, enum cls_q_match match, const char *text,
       size_t len, const char *raw, size_t raw_len)
{
    struct cls_query *q = p->q;
    struct cls_q_elem *e;

    q->elems = s_grow(q->elems, &q->cap_elems, q->n_elems + 1, sizeof(*q->elems));
    e = &q->elems[q->n_elems];
    e->text = esc_malloc(len + 1);
    memcpy(e->text, text, len);
    e->text[len] = '\0';
    e->raw = NULL;
    if (raw != NULL) {
        e->raw = esc_malloc(raw_len + 1);
        memcpy(e->raw, raw, raw_len);
        e->raw[raw_len] = '\0';
    }
    e->kind = (uint8_t)kind;
    e->match = (uint8_t)match;
    return (uint32_t)q->n_elems++;
}

/* Drops elements from `first` on (after a failed term). */
static void
s_elems_truncate(struct cls_query *q, size_t first)
{
    while (q->n_elems > first) {
        q->n_elems--;
        esc_free(q->elems[q->n_elems].text);
        esc_free(q->elems[q->n_elems].raw);
    }
}

void
cls_query_fini(struct cls_query *q)
{
    if (q == NULL) {
        return;
    }
    s_elems_truncate(q, 0);
    esc_free(q->src);
    esc_free(q->nodes);
    esc_free(q->kids);
    esc_free(q->elems);
    esc_free(q->msgs);
    memset(q, 0, sizeof(*q));
    q->root = CLS_Q_NONE;
}

/* ---------------------------------------------------------------------------------------------
 * Lexer
 */

static bool
s_is_space(const char *s, size_t i, size_t len, size_t *w)
{
    unsigned char c = (unsigned char)s[i];

    if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v') {
        *w = 1;
        return true;
    }
    if (c == 0xC2 && i + 1 < len && (unsigned char)s[i + 1] == 0xA0) {
        *w = 2; /* no-break space */
        return true;
    }
    return false;
}

/* Curly double quotes U+201C / U+201D: 3 bytes. */
static bool
s_is_curly(const char *s, size_t i, size_t len, bool open)
{
    return i + 2 < len && (unsigned char)s[i] == 0xE2 && (unsigned char)s[i + 1] == 0x80
        && (unsigned char)s[i + 2] == (open ? 0x9C : 0x9D);
}

/* True when a term ends at i. */
static bool
s_term_end(const char *s, size_t i, size_t len)
{
    size_t w;
    char c = s[i];

    return s_is_space(s, i, len, &w) || c == '(' || c == ')' || c == '"' || c == '{' || c == '}'
        || c == '~' || s_is_curly(s, i, len, true) || s_is_curly(s, i, len, false);
}

static void
s_push(struct s_parser *p, const struct s_tok *t)
{
    p->toks = s_grow(p->toks, &p->cap_toks, p->n_toks + 1, sizeof(*p->toks));
    p->toks[p->n_toks++] = *t;
}

/* Reads digits at *i into *out (capped); returns false when there are none. */
static bool
s_digits(const char *s, size_t *i, size_t len, int64_t *out)
{
    size_t k = *i;
    int64_t v = 0;

    while (k < len && s[k] >= '0' && s[k] <= '9') {
        if (v < 1000000) {
            v = v * 10 + (s[k] - '0');
        }
        k++;
    }
    if (k == *i) {
        return false;
    }
    *i = k;
    *out = v;
    return true;
}

/* Lexes a quoted phrase at i (after '"' or U+201C of width w) and an optional ~n. */
static size_t
s_lex_phrase(struct s_parser *p, size_t i, size_t w)
{
    const char *s = p->src;
    struct s_tok t;
    size_t k = i + w;
    int64_t slop;

    memset(&t, 0, sizeof(t));
    t.type = L_PHRASE;
    t.from = (uint32_t)i;
    t.vfrom = (uint32_t)k;
    t.n = -1;
    while (k < p->len && s[k] != '"' && !s_is_curly(s, k, p->len, false)) {
        k++;
    }
    if (k >= p->len) {
        s_msg(p, true, i, "unterminated phrase: missing closing quote");
        t.bad = true;
        t.to = (uint32_t)p->len;
        s_push(p, &t);
        return p->len;
    }
    t.vto = (uint32_t)k;
    k += s[k] == '"' ? 1 : 3;
    if (k < p->len && s[k] == '~') {
        size_t at = k;

        k++;
        if (!s_digits(s, &k, p->len, &slop)) {
            s_msg(p, true, at, "'~' must be followed by a number, as in \"a b\"~3");
        }
        else if (slop > CLS_QUERY_MAX_NEAR) {
            s_msg(p, true, at, "phrase distance ~%lld is too large (max %d)", (long long)slop,
                  CLS_QUERY_MAX_NEAR);
        }
        else {
            if (slop > CLS_QUERY_WARN_NEAR) {
                s_msg(p, false, at,
                      "~%lld is a wide window: on short posts it acts almost like AND",
                      (long long)slop);
            }
            t.n = (int32_t)slop;
        }
    }
    t.to = (uint32_t)k;
    s_push(p, &t);
    return k;
}

static size_t
s_lex_exact(struct s_parser *p, size_t i)
{
    struct s_tok t;
    size_t k = i + 1;

    memset(&t, 0, sizeof(t));
    while (k < p->len && p->src[k] != '}') {
        k++;
    }
    if (k >= p->len) {
        s_msg(p, true, i, "unterminated {exact} term: missing '}'");
        t.type = L_EXACT;
        t.bad = true;
        t.from = (uint32_t)i;
        t.to = (uint32_t)p->len;
        s_push(p, &t);
        return p->len;
    }
    t.type = L_EXACT;
    t.from = (uint32_t)i;
    t.vfrom = (uint32_t)(i + 1);
    t.vto = (uint32_t)k;
    t.to = (uint32_t)(k + 1);
    s_push(p, &t);
    return k + 1;
}

/* NEAR/n, NEAR/nf, ONEAR/n in s[i..j). */
static void
s_lex_near(struct s_parser *p, size_t i, size_t j)
{
    const char *s = p->src;
    struct s_tok t;
    bool onear = s[i] == 'O';
    size_t k = i + (onear ? 6 : 5);
    int64_t n = 0;

    memset(&t, 0, sizeof(t));
    t.type = L_NEAR;
    t.from = (uint32_t)i;
    t.to = (uint32_t)j;
    t.ordered = onear;
    if (!s_digits(s, &k, j, &n) || (k < j && (onear || s[k] != 'f' || k + 1 != j))) {
        s_msg(p, true, i, "malformed NEAR operator: write NEAR/n, NEAR/nf or ONEAR/n");
        t.n = -1;
    }
    else if (n > CLS_QUERY_MAX_NEAR) {
        s_msg(p, true, i, "NEAR distance %lld is too large (max %d)", (long long)n,
              CLS_QUERY_MAX_NEAR);
        t.n = -1;
    }
    else {
        t.ordered = onear || k < j;
        t.n = (int32_t)n;
        if (n > CLS_QUERY_WARN_NEAR) {
            s_msg(p, false, i, "%.*s is a wide window: on short posts it acts almost like AND",
                  (int)(j - i), s + i);
        }
    }
    s_push(p, &t);
}

/* A bare term s[i..j): an operator, a field prefix or a term. Returns where lexing resumes. */
static size_t
s_lex_word(struct s_parser *p, size_t i, size_t j)
{
    const char *s = p->src;
    struct s_tok t;
    size_t n = j - i;
    size_t k;
    size_t f;

    memset(&t, 0, sizeof(t));
    t.from = (uint32_t)i;
    t.to = (uint32_t)j;
    if (p->value_next) {
        /* "site:https://x.pe", "followers:>10": the value is taken as it is */
        p->value_next = false;
        t.type = L_TERM;
    }
    else if (n == 3 && memcmp(s + i, "AND", 3) == 0) {
        t.type = L_AND;
    }
    else if (n == 2 && memcmp(s + i, "OR", 2) == 0) {
        t.type = L_OR;
    }
    else if (n == 3 && memcmp(s + i, "NOT", 3) == 0) {
        t.type = L_NOT;
    }
    else if ((n >= 5 && memcmp(s + i, "NEAR/", 5) == 0)
             || (n >= 6 && memcmp(s + i, "ONEAR/", 6) == 0)) {
        s_lex_near(p, i, j);
        return j;
    }
    else if ((n == 4 && memcmp(s + i, "NEAR", 4) == 0)
             || (n == 5 && memcmp(s + i, "ONEAR", 5) == 0)) {
        s_msg(p, true, i, "NEAR needs a distance: NEAR/n or NEAR/nf");
        return j;
    }
    else {
        for (k = i; k < j && ((s[k] >= 'a' && s[k] <= 'z') || (s[k] >= 'A' && s[k] <= 'Z')
                              || s[k] == '_');
             k++) {
        }
        if (k > i && k < j && s[k] == ':') {
            for (f = 0; f < ESC_ARRAY_LEN(s_fields); f++) {
                if (strlen(s_fields[f].name) == k - i
                    && strncasecmp(s_fields[f].name, s + i, k - i) == 0) {
                    break;
                }
            }
            if (f == ESC_ARRAY_LEN(s_fields)) {
                if ((k - i == 4 && strncasecmp(s + i, "http", 4) == 0)
                    || (k - i == 5 && strncasecmp(s + i, "https", 5) == 0)) {
                    s_msg(p, true, i, "a URL cannot be a search term; use site:<domain>");
                }
                else {
                    s_msg(p, true, i,
                          "unknown field '%.*s:' (fields: author, lang, platform, site, url, "
                          "hashtag, mention, followers)",
                          (int)(k - i), s + i);
                }
                t.type = L_TERM;
                t.bad = true;
                s_push(p, &t);
                return j;
            }
            t.type = L_FIELD;
            t.field = (uint8_t)s_fields[f].field;
            t.vfrom = (uint32_t)i;
            t.vto = (uint32_t)k;
            t.to = (uint32_t)(k + 1);
            t.glued = k + 1 < p->len && !s_term_end(s, k + 1, p->len);
            /* the value (or its bracket) is lexed as the next token; a quoted value or a
             * group is glued too */
            if (k + 1 < p->len
                && (s[k + 1] == '"' || s[k + 1] == '(' || s_is_curly(s, k + 1, p->len, true))) {
                t.glued = true;
            }
            s_push(p, &t);
            p->value_next = k + 1 < p->len && !s_term_end(s, k + 1, p->len);
            return k + 1;
        }
        t.type = L_TERM;
    }
    s_push(p, &t);
    return j;
}

static void
s_lex(struct s_parser *p)
{
    const char *s = p->src;
    size_t i = 0;
    size_t w;

    while (i < p->len) {
        struct s_tok t;
        char c = s[i];
        size_t j;

        memset(&t, 0, sizeof(t));
        if (s_is_space(s, i, p->len, &w)) {
            i += w;
            continue;
        }
        t.from = (uint32_t)i;
        t.to = (uint32_t)(i + 1);
        if (c == '(' || c == ')') {
            t.type = c == '(' ? L_LPAREN : L_RPAREN;
            s_push(p, &t);
            i++;
            continue;
        }
        if (c == '"' || s_is_curly(s, i, p->len, true) || s_is_curly(s, i, p->len, false)) {
            i = s_lex_phrase(p, i, c == '"' ? 1 : 3);
            continue;
        }
        if (c == '{') {
            i = s_lex_exact(p, i);
            continue;
        }
        if (c == '}') {
            s_msg(p, true, i, "unexpected '}'");
            i++;
            continue;
        }
        if (c == '~') {
            int64_t ignored;

            s_msg(p, true, i, "'~n' must follow a quoted phrase");
            i++;
            s_digits(s, &i, p->len, &ignored);
            continue;
        }
        if (c == '-') {
            if (i + 1 >= p->len || s_is_space(s, i + 1, p->len, &w) || s[i + 1] == ')'
                || s[i + 1] == '-') {
                s_msg(p, true, i,
                      "'-' must be written right before the term it excludes, as in -fraude");
                i++;
                continue;
            }
            t.type = L_MINUS;
            s_push(p, &t);
            i++;
            continue;
        }
        for (j = i; j < p->len && !s_term_end(s, j, p->len); j++) {
        }
        i = s_lex_word(p, i, j);
    }
}

/* ---------------------------------------------------------------------------------------------
 * Terms
 */

static bool
s_main_kind(uint8_t kind)
{
    return kind == CLS_TOK_WORD || kind == CLS_TOK_HASHTAG || kind == CLS_TOK_MENTION;
}

static enum cls_q_kind
s_qkind(uint8_t tok_kind)
{
    if (tok_kind == CLS_TOK_HASHTAG) {
        return CLS_QK_HASHTAG;
    }
    if (tok_kind == CLS_TOK_MENTION) {
        return CLS_QK_MENTION;
    }
    return CLS_QK_WORD;
}

static size_t
s_count_cps(const char *s, size_t len)
{
    size_t n = 0;
    size_t i;

    for (i = 0; i < len; i++) {
        n += ((unsigned char)s[i] & 0xC0) != 0x80 ? 1 : 0;
    }
    return n;
}

/* A term with '*' or '?': s[0..len) at byte `at`, without its sigil; kind says what it
 * matches. Appends one element; returns false after recording an error. */
static bool
s_wild_elem(struct s_parser *p, const char *s, size_t len, size_t at, enum cls_q_kind kind)
{
    char pat[CLS_QUERY_MAX_BYTES * 2];
    size_t plen = 0;
    size_t prefix_len = 0;
    size_t chars = 0;
    bool star = false;
    bool glob = false;
    size_t k = 0;

    if (len == 0 || s[0] == '*' || s[0] == '?') {
        s_msg(p, true, at, "a wildcard cannot start a term");
        return false;
    }
    if (memchr(s, '*', len) != NULL && (const char *)memchr(s, '*', len) != s + len - 1) {
        s_msg(p, true, at, "'*' is only allowed at the end of a term");
        return false;
    }
    while (k < len) {
        size_t e = k;
        size_t nlen = 0;
        const char *norm;

        while (e < len && s[e] != '?' && s[e] != '*') {
            e++;
        }
        if (e > k) {
            norm = cls_text_normalize(p->txt, &p->topts, s + k, e - k, &nlen);
            if (kind == CLS_QK_WORD) {
                const struct cls_token *toks;
                size_t n_toks;

                cls_text_tokenize(p->txt, &p->topts, s + k, e - k);
                toks = cls_text_tokens(p->txt, &n_toks);
                if (n_toks != 1 || toks[0].kind != CLS_TOK_WORD || toks[0].len != nlen) {
                    s_msg(p, true, at, "wildcards work within one word: '%.*s'", (int)len, s);
                    return false;
                }
                norm = cls_text_tok_str(p->txt, &toks[0]);
            }
            else if (nlen == 0 || memchr(norm, ' ', nlen) != NULL) {
                s_msg(p, true, at, "wildcards work within one word: '%.*s'", (int)len, s);
                return false;
            }
            if (plen + nlen + 2 > sizeof(pat)) {
                s_msg(p, true, at, "term is too long");
                return false;
            }
            memcpy(pat + plen, norm, nlen);
            plen += nlen;
            chars += s_count_cps(norm, nlen);
        }
        if (!glob && !star) {
            prefix_len = plen;
        }
        if (e < len && s[e] == '?') {
            pat[plen++] = '?';
            chars++;
            glob = true;
        }
        else if (e < len) {
            star = true;
        }
        k = e + 1;
    }
    if (prefix_len == 0) {
        s_msg(p, true, at, "a wildcard cannot start a term");
        return false;
    }
    if (star && chars < CLS_QUERY_WILDCARD_MIN) {
        s_msg(p, true, at, "a wildcard needs at least %d characters before '*'",
              CLS_QUERY_WILDCARD_MIN);
        return false;
    }
    if (star && chars == CLS_QUERY_WILDCARD_MIN) {
        s_msg(p, false, at, "short wildcard '%.*s' may match many unrelated words", (int)len, s);
    }
    if (!glob) {
        s_elem(p, kind, CLS_QM_PREFIX, pat, plen, NULL, 0);
        return true;
    }
    if (star) {
        pat[plen++] = '*';
    }
    s_elem(p, kind, CLS_QM_GLOB, pat, plen, NULL, 0);
    return true;
}

/* Appends the elements of one written word s[0..len) at byte `at`: a wildcard term, or the
 * main tokens it normalises to (a word, #tag, @handle, or several for "covid-19"). Returns the
 * number appended, 0 after recording an error. */
static size_t
s_word_elems(struct s_parser *p, const char *s, size_t len, size_t at)
{
    const struct cls_token *toks;
    size_t n_toks;
    size_t i;
    size_t n = 0;
    bool link = false;

    if (memchr(s, '*', len) != NULL || memchr(s, '?', len) != NULL) {
        if (s[0] == '#' && len > 1) {
            return s_wild_elem(p, s + 1, len - 1, at, CLS_QK_HASHTAG) ? 1 : 0;
        }
        if (s[0] == '@' && len > 1) {
            return s_wild_elem(p, s + 1, len - 1, at, CLS_QK_MENTION) ? 1 : 0;
        }
        return s_wild_elem(p, s, len, at, CLS_QK_WORD) ? 1 : 0;
    }
    cls_text_tokenize(p->txt, &p->topts, s, len);
    toks = cls_text_tokens(p->txt, &n_toks);
    for (i = 0; i < n_toks; i++) {
        if (toks[i].kind == CLS_TOK_LINK) {
            link = true;
        }
        if (!s_main_kind(toks[i].kind)) {
            continue;
        }
        s_elem(p, s_qkind(toks[i].kind), CLS_QM_EXACT, cls_text_tok_str(p->txt, &toks[i]),
               toks[i].len, NULL, 0);
        n++;
    }
    if (n == 0 && link) {
        s_msg(p, true, at, "'%.*s' is a web address; use site:%.*s", (int)len, s, (int)len, s);
    }
    else if (n == 0) {
        s_msg(p, true, at, "'%.*s' has nothing to match after normalisation", (int)len, s);
    }
    return n;
}

/* An ATOM for one element, a PHRASE for several. */
static uint32_t
s_elems_node(struct s_parser *p, size_t first, size_t n, int32_t slop, size_t from, size_t to)
{
    uint32_t id;

    if (n > CLS_PHRASE_MAX) {
        s_msg(p, true, from, "phrase has %zu words (max %d)", n, CLS_PHRASE_MAX);
        return CLS_Q_NONE;
    }
    id = s_node(p, n == 1 ? CLS_Q_ATOM : CLS_Q_PHRASE, from, to);
    p->q->nodes[id].first = (uint32_t)first;
    p->q->nodes[id].count = (uint32_t)n;
    p->q->nodes[id].n = n == 1 ? -1 : slop;
    p->q->n_terms += n;
    return id;
}

static uint32_t
s_term(struct s_parser *p, const struct s_tok *t)
{
    const char *s = p->src + t->from;
    size_t len = t->to - t->from;
    size_t first = p->q->n_elems;
    size_t n;
    static const char *const ops[] = { "and", "or", "not" };
    size_t k;

    for (k = 0; k < ESC_ARRAY_LEN(ops); k++) {
        if (len == strlen(ops[k]) && strncasecmp(s, ops[k], len) == 0) {
            s_msg(p, false, t->from, "'%.*s' is searched as a word; operators are upper case (%s)",
                  (int)len, s, k == 0 ? "AND" : (k == 1 ? "OR" : "NOT"));
        }
    }
    n = s_word_elems(p, s, len, t->from);
    if (n == 0) {
        s_elems_truncate(p->q, first);
        return CLS_Q_NONE;
    }
    return s_elems_node(p, first, n, -1, t->from, t->to);
}

static uint32_t
s_phrase(struct s_parser *p, const struct s_tok *t)
{
    const char *s = p->src;
    size_t first = p->q->n_elems;
    size_t n = 0;
    size_t k = t->vfrom;
    size_t w;
    bool failed = false;

    while (k < t->vto) {
        size_t e;

        if (s_is_space(s, k, t->vto, &w)) {
            k += w;
            continue;
        }
        for (e = k; e < t->vto && !s_is_space(s, e, t->vto, &w); e++) {
        }
        if (memchr(s + k, '*', e - k) != NULL || memchr(s + k, '?', e - k) != NULL) {
            size_t got = s_word_elems(p, s + k, e - k, k);

            failed = failed || got == 0;
            n += got;
        }
        else {
            /* words without wildcards: punctuation inside a phrase only separates */
            const struct cls_token *toks;
            size_t n_toks;
            size_t i;

            cls_text_tokenize(p->txt, &p->topts, s + k, e - k);
            toks = cls_text_tokens(p->txt, &n_toks);
            for (i = 0; i < n_toks; i++) {
                if (s_main_kind(toks[i].kind)) {
                    s_elem(p, s_qkind(toks[i].kind), CLS_QM_EXACT,
                           cls_text_tok_str(p->txt, &toks[i]), toks[i].len, NULL, 0);
                    n++;
                }
            }
        }
        k = e;
    }
    if (failed) {
        s_elems_truncate(p->q, first);
        return CLS_Q_NONE;
    }
    if (n == 0) {
        if (s_count_cps(s + t->vfrom, t->vto - t->vfrom) == 0) {
            s_msg(p, true, t->from, "empty phrase");
        }
        else {
            s_msg(p, true, t->from, "'%.*s' has nothing to match after normalisation",
                  (int)(t->to - t->from), s + t->from);
        }
        return CLS_Q_NONE;
    }
    return s_elems_node(p, first, n, t->n, t->from, t->to);
}

static uint32_t
s_exact(struct s_parser *p, const struct s_tok *t)
{
    const char *s = p->src + t->vfrom;
    size_t len = t->vto - t->vfrom;
    const struct cls_token *toks;
    size_t first = p->q->n_elems;
    size_t n_toks;
    size_t n = 0;
    size_t i;

    if (memchr(s, '*', len) != NULL || memchr(s, '?', len) != NULL) {
        s_msg(p, true, t->from, "wildcards cannot be used inside {...}");
        return CLS_Q_NONE;
    }
    cls_text_tokenize(p->txt, &p->kopts, s, len);
    toks = cls_text_tokens(p->txt, &n_toks);
    for (i = 0; i < n_toks; i++) {
        const char *raw;
        size_t raw_len;
        char key[CLS_QUERY_MAX_BYTES * 2];

        if (!s_main_kind(toks[i].kind) || toks[i].len >= sizeof(key)) {
            continue;
        }
        memcpy(key, cls_text_tok_str(p->txt, &toks[i]), toks[i].len);
        raw = cls_text_tok_raw(p->txt, &toks[i], &raw_len);
        s_elem(p, s_qkind(toks[i].kind), CLS_QM_CASE, key, toks[i].len, raw, raw_len);
        n++;
    }
    if (n == 0 && len == 0) {
        s_msg(p, true, t->from, "empty {}");
        return CLS_Q_NONE;
    }
    if (n == 0) {
        s_msg(p, true, t->from, "'%.*s' has nothing to match after normalisation",
              (int)(t->to - t->from), p->src + t->from);
        return CLS_Q_NONE;
    }
    return s_elems_node(p, first, n, -1, t->from, t->to);
}

/* ---------------------------------------------------------------------------------------------
 * Field values
 */

static const char *
s_field_name(enum s_field f)
{
    size_t i;

    for (i = 0; i < ESC_ARRAY_LEN(s_fields); i++) {
        if (s_fields[i].field == f) {
            return s_fields[i].name;
        }
    }
    return "?";
}

static bool
s_has_space(const char *s, size_t len)
{
    size_t i;
    size_t w;

    for (i = 0; i < len; i++) {
        if (s_is_space(s, i, len, &w)) {
            return true;
        }
    }
    return false;
}

static uint32_t
s_followers(struct s_parser *p, const char *s, size_t len, size_t from, size_t to)
{
    enum cls_q_cmp cmp = CLS_QC_EQ;
    size_t k = 0;
    char num[32];
    int64_t v;
    uint32_t id;

    if (len >= 2 && s[0] == '>' && s[1] == '=') {
        cmp = CLS_QC_GE;
        k = 2;
    }
    else if (len >= 2 && s[0] == '<' && s[1] == '=') {
        cmp = CLS_QC_LE;
        k = 2;
    }
    else if (len >= 1 && (s[0] == '>' || s[0] == '<' || s[0] == '=')) {
        cmp = s[0] == '>' ? CLS_QC_GT : (s[0] == '<' ? CLS_QC_LT : CLS_QC_EQ);
        k = 1;
    }
    if (len - k == 0 || len - k >= sizeof(num)) {
        goto bad;
    }
    memcpy(num, s + k, len - k);
    num[len - k] = '\0';
    if (num[0] < '0' || num[0] > '9' || esc_parse_i64(num, 0, INT64_MAX, &v) != 0) {
        goto bad;
    }
    id = s_node(p, CLS_Q_FOLLOWERS, from, to);
    p->q->nodes[id].cmp = (uint8_t)cmp;
    p->q->nodes[id].value = v;
    p->q->n_terms++;
    return id;
bad:
    s_msg(p, true, from,
          "followers: expects a comparison such as followers:>1000 (>, >=, <, <=, =)");
    return CLS_Q_NONE;
}

/* The value s[0..len) (a term, or the inside of quotes) of the current field, written at
 * source bytes [from, to). */
static uint32_t
s_field_value(struct s_parser *p, const char *s, size_t len, size_t from, size_t to)
{
    const struct cls_token *toks;
    size_t n_toks;
    size_t first = p->q->n_elems;
    const char *name = s_field_name(p->field);
    char buf[CLS_QUERY_MAX_BYTES + 2];
    size_t k;

    if (p->field == F_FOLLOWERS) {
        return s_followers(p, s, len, from, to);
    }
    if (len == 0 || s_has_space(s, len)) {
        s_msg(p, true, from, "%s: expects one value without spaces, got '%.*s'", name, (int)len,
              s);
        return CLS_Q_NONE;
    }
    switch (p->field) {
    case F_HASHTAG:
    case F_MENTION:
        buf[0] = p->field == F_HASHTAG ? '#' : '@';
        k = s[0] == buf[0] ? 1 : 0;
        memcpy(buf + 1, s + k, len - k);
        if (s_word_elems(p, buf, len - k + 1, from) != 1
            || p->q->elems[first].kind
                   != (p->field == F_HASHTAG ? CLS_QK_HASHTAG : CLS_QK_MENTION)) {
            if (p->q->n_elems > first) {
                s_msg(p, true, from, "%s: expects a single %s, got '%.*s'", name,
                      p->field == F_HASHTAG ? "hashtag" : "handle", (int)len, s);
            }
            s_elems_truncate(p->q, first);
            return CLS_Q_NONE;
        }
        break;
    case F_AUTHOR:
        k = s[0] == '@' ? 1 : 0;
        if (memchr(s, '*', len) != NULL || memchr(s, '?', len) != NULL) {
            if (!s_wild_elem(p, s + k, len - k, from, CLS_QK_AUTHOR)) {
                return CLS_Q_NONE;
            }
            break;
        }
        cls_text_reset(p->txt);
        memcpy(buf, s, len);
        buf[len] = '\0';
        cls_text_add_field(p->txt, &p->topts, CLS_TOK_AUTHOR, buf);
        toks = cls_text_tokens(p->txt, &n_toks);
        if (n_toks == 0) {
            s_msg(p, true, from, "author: expects a handle, got '%.*s'", (int)len, s);
            return CLS_Q_NONE;
        }
        s_elem(p, CLS_QK_AUTHOR, CLS_QM_EXACT, cls_text_tok_str(p->txt, &toks[0]), toks[0].len,
               NULL, 0);
        break;
    case F_SITE: {
        const char *t;
        const char *slash;

        if (memchr(s, '*', len) != NULL || memchr(s, '?', len) != NULL) {
            s_msg(p, true, from,
                  "wildcards are not supported in %s: (site:gob.pe already matches its "
                  "subdomains)",
                  name);
            return CLS_Q_NONE;
        }
        cls_text_reset(p->txt);
        memcpy(buf, s, len);
        buf[len] = '\0';
        cls_text_add_field(p->txt, &p->topts, CLS_TOK_LINK, buf);
        toks = cls_text_tokens(p->txt, &n_toks);
        if (n_toks == 0) {
            s_msg(p, true, from, "%s: expects a domain such as gob.pe, got '%.*s'", name,
                  (int)len, s);
            return CLS_Q_NONE;
        }
        t = cls_text_tok_str(p->txt, &toks[0]);
        slash = memchr(t, '/', toks[0].len);
        if (slash == NULL) {
            s_elem(p, CLS_QK_SITE, CLS_QM_EXACT, t, toks[0].len, NULL, 0);
        }
        else {
            s_elem(p, CLS_QK_SITE, CLS_QM_EXACT, t, (size_t)(slash - t), slash,
                   toks[0].len - (size_t)(slash - t));
        }
        break;
    }
    case F_LANG: {
        size_t n = 0;

        while (n < len && ((s[n] >= 'a' && s[n] <= 'z') || (s[n] >= 'A' && s[n] <= 'Z'))) {
            buf[n] = (char)(s[n] >= 'A' && s[n] <= 'Z' ? s[n] + ('a' - 'A') : s[n]);
            n++;
        }
        if (n < 2 || n > 3 || (n < len && s[n] != '-' && s[n] != '_')) {
            s_msg(p, true, from, "lang: expects a language code such as es, en, pt or qu, got "
                                 "'%.*s'",
                  (int)len, s);
            return CLS_Q_NONE;
        }
        s_elem(p, CLS_QK_LANG, CLS_QM_EXACT, buf, n, NULL, 0);
        break;
    }
    case F_PLATFORM:
        cls_text_reset(p->txt);
        memcpy(buf, s, len);
        buf[len] = '\0';
        cls_text_add_field(p->txt, &p->topts, CLS_TOK_PLATFORM, buf);
        toks = cls_text_tokens(p->txt, &n_toks);
        if (n_toks == 0) {
            s_msg(p, true, from, "platform: expects a platform name, got '%.*s'", (int)len, s);
            return CLS_Q_NONE;
        }
        s_elem(p, CLS_QK_PLATFORM, CLS_QM_EXACT, cls_text_tok_str(p->txt, &toks[0]),
               toks[0].len, NULL, 0);
        break;
    default:
        ESC_ASSERT(0);
    }
    return s_elems_node(p, first, p->q->n_elems - first, -1, from, to);
}

/* ---------------------------------------------------------------------------------------------
 * Parser
 */

static const struct s_tok s_eof = { .type = L_EOF };

static const struct s_tok *
s_peek(const struct s_parser *p)
{
    return p->i < p->n_toks ? &p->toks[p->i] : &s_eof;
}

static const struct s_tok *
s_next(struct s_parser *p)
{
    const struct s_tok *t = s_peek(p);

    if (p->i < p->n_toks) {
        p->i++;
    }
    return t;
}

static bool
s_starts_operand(const struct s_tok *t)
{
    return t->type == L_TERM || t->type == L_PHRASE || t->type == L_EXACT || t->type == L_FIELD
        || t->type == L_LPAREN || t->type == L_NOT || t->type == L_MINUS;
}

static bool
s_starts_primary(const struct s_tok *t)
{
    return t->type == L_TERM || t->type == L_PHRASE || t->type == L_EXACT || t->type == L_FIELD
        || t->type == L_LPAREN;
}

/* The operator token as written ("AND", "NEAR/3f"). */
static int
s_oplen(const struct s_tok *t)
{
    return (int)(t->to - t->from);
}

static uint32_t s_or(struct s_parser *p);

/* True when the node has positions (for NEAR): terms, phrases, NEAR, OR of those. */
static bool
s_positional(const struct cls_query *q, uint32_t id)
{
    const struct cls_q_node *n = &q->nodes[id];
    uint32_t k;

    switch (n->type) {
    case CLS_Q_ATOM:
    case CLS_Q_PHRASE:
        return q->elems[n->first].kind <= CLS_QK_MENTION;
    case CLS_Q_NEAR:
        return true;
    case CLS_Q_OR:
        for (k = 0; k < n->count; k++) {
            if (!s_positional(q, q->kids[n->first + k])) {
                return false;
            }
        }
        return true;
    default:
        break;
    }
    return false;
}

/* Skips tokens up to and including the ')' that closes an already consumed '('. */
static void
s_skip_group(struct s_parser *p)
{
    int level = 1;

    while (level > 0 && s_peek(p)->type != L_EOF) {
        const struct s_tok *t = s_next(p);

        level += t->type == L_LPAREN ? 1 : (t->type == L_RPAREN ? -1 : 0);
    }
}

static uint32_t
s_group(struct s_parser *p)
{
    const struct s_tok *open = s_next(p);
    uint32_t id;

    if (s_peek(p)->type == L_RPAREN) {
        s_msg(p, true, open->from, "empty brackets ()");
        s_next(p);
        return CLS_Q_NONE;
    }
    if (p->depth >= CLS_QUERY_MAX_DEPTH) {
        s_msg(p, true, open->from, "brackets nested too deeply (max %d levels)",
              CLS_QUERY_MAX_DEPTH);
        s_skip_group(p);
        return CLS_Q_NONE;
    }
    p->depth++;
    id = s_or(p);
    p->depth--;
    if (s_peek(p)->type != L_RPAREN) {
        s_msg(p, true, open->from, "unbalanced parenthesis");
        return id;
    }
    if (id != CLS_Q_NONE) {
        p->q->nodes[id].paren = true;
        p->q->nodes[id].from = open->from;
        p->q->nodes[id].to = s_peek(p)->to;
    }
    s_next(p);
    return id;
}

static uint32_t s_primary(struct s_parser *p);

static uint32_t
s_field(struct s_parser *p)
{
    const struct s_tok *t = s_next(p);
    enum s_field saved = p->field;
    const struct s_tok *v;
    uint32_t id = CLS_Q_NONE;

    if (p->field != F_NONE) {
        s_msg(p, true, t->from, "fields cannot be nested");
    }
    if (!t->glued) {
        s_msg(p, true, t->from, "field '%.*s:' needs a value right after the colon",
              (int)(t->vto - t->vfrom), p->src + t->vfrom);
        return CLS_Q_NONE;
    }
    p->field = (enum s_field)t->field;
    v = s_peek(p);
    if (v->type == L_LPAREN) {
        id = s_group(p);
        if (id != CLS_Q_NONE) {
            p->q->nodes[id].from = t->from;
        }
    }
    else if (v->type == L_TERM || v->type == L_PHRASE) {
        id = s_primary(p);
        if (id != CLS_Q_NONE) {
            p->q->nodes[id].from = t->from;
        }
    }
    else {
        s_msg(p, true, t->from, "field '%.*s:' needs a value right after the colon",
              (int)(t->vto - t->vfrom), p->src + t->vfrom);
    }
    p->field = saved;
    return id;
}

static uint32_t
s_primary(struct s_parser *p)
{
    const struct s_tok *t = s_peek(p);

    if (t->bad) {
        s_next(p);
        return CLS_Q_NONE;
    }
    switch (t->type) {
    case L_LPAREN:
        return s_group(p);
    case L_FIELD:
        return s_field(p);
    case L_TERM:
        s_next(p);
        if (p->field != F_NONE) {
            return s_field_value(p, p->src + t->from, t->to - t->from, t->from, t->to);
        }
        return s_term(p, t);
    case L_PHRASE:
        s_next(p);
        if (p->field != F_NONE) {
            return s_field_value(p, p->src + t->vfrom, t->vto - t->vfrom, t->from, t->to);
        }
        return s_phrase(p, t);
    case L_EXACT:
        s_next(p);
        if (p->field != F_NONE) {
            s_msg(p, true, t->from, "{...} cannot be used inside a field");
            return CLS_Q_NONE;
        }
        return s_exact(p, t);
    case L_AND:
    case L_OR:
    case L_NEAR:
        /* left for the caller's operator loop, which reports a missing right side itself */
        s_msg(p, true, t->from, "%.*s needs a term on each side", s_oplen(t),
              p->src + t->from);
        return CLS_Q_NONE;
    default:
        break;
    }
    return CLS_Q_NONE;
}

static uint32_t
s_near(struct s_parser *p)
{
    uint32_t left = s_primary(p);

    while (s_peek(p)->type == L_NEAR) {
        const struct s_tok *op = s_next(p);
        uint32_t right;
        uint32_t pair[2];
        uint32_t id;

        if (p->field != F_NONE) {
            s_msg(p, true, op->from, "NEAR cannot be used inside a field");
        }
        if (!s_starts_primary(s_peek(p))) {
            s_msg(p, true, op->from, "%.*s needs a term on each side", s_oplen(op),
                  p->src + op->from);
            continue;
        }
        right = s_primary(p);
        if (left == CLS_Q_NONE || right == CLS_Q_NONE || op->n < 0) {
            left = left == CLS_Q_NONE ? right : left;
            continue;
        }
        if (!s_positional(p->q, left) || !s_positional(p->q, right)) {
            s_msg(p, true, op->from, "NEAR operands must be terms, phrases or OR groups of them");
            continue;
        }
        pair[0] = left;
        pair[1] = right;
        id = s_parent(p, CLS_Q_NEAR, pair, 2);
        p->q->nodes[id].n = op->n;
        p->q->nodes[id].ordered = op->ordered;
        left = id;
    }
    return left;
}

static uint32_t
s_not(struct s_parser *p)
{
    const struct s_tok *ops = &p->toks[p->i]; /* NOT/- tokens are consecutive */
    size_t n_ops = 0;
    uint32_t id;

    while (s_peek(p)->type == L_NOT || s_peek(p)->type == L_MINUS) {
        s_next(p);
        n_ops++;
    }
    if (n_ops > CLS_QUERY_MAX_DEPTH) {
        s_msg(p, true, ops[0].from, "too many NOTs in a row (max %d)", CLS_QUERY_MAX_DEPTH);
        return CLS_Q_NONE;
    }
    if (n_ops > 0 && !s_starts_primary(s_peek(p))) {
        const struct s_tok *op = &ops[n_ops - 1];

        if (op->type == L_NOT) {
            s_msg(p, true, op->from, "NOT needs a term after it");
        }
        else {
            s_msg(p, true, op->from,
                  "'-' must be written right before the term it excludes, as in -fraude");
        }
        return CLS_Q_NONE;
    }
    id = s_near(p);
    while (n_ops > 0 && id != CLS_Q_NONE) {
        uint32_t nid = s_parent(p, CLS_Q_NOT, &id, 1);

        p->q->nodes[nid].from = ops[--n_ops].from;
        id = nid;
    }
    return id;
}

/* Appends id to a growable list. */
static void
s_list_push(uint32_t **list, size_t *n, size_t *cap, uint32_t id)
{
    if (id == CLS_Q_NONE) {
        return;
    }
    *list = s_grow(*list, cap, *n + 1, sizeof(**list));
    (*list)[(*n)++] = id;
}

static uint32_t
s_and(struct s_parser *p)
{
    uint32_t *list = NULL;
    size_t n = 0;
    size_t cap = 0;
    uint32_t id;

    s_list_push(&list, &n, &cap, s_not(p));
    for (;;) {
        const struct s_tok *t = s_peek(p);

        if (t->type == L_AND) {
            s_next(p);
            if (!s_starts_operand(s_peek(p))) {
                s_msg(p, true, t->from, "AND needs a term on each side");
                continue;
            }
        }
        else if (!s_starts_operand(t)) {
            break;
        }
        s_list_push(&list, &n, &cap, s_not(p));
    }
    id = n == 0 ? CLS_Q_NONE : (n == 1 ? list[0] : s_parent(p, CLS_Q_AND, list, n));
    esc_free(list);
    return id;
}

/* The first unbracketed NOT among the children of an AND node, or CLS_Q_NONE. */
static uint32_t
s_bare_not(const struct cls_query *q, uint32_t and_id)
{
    const struct cls_q_node *n = &q->nodes[and_id];
    uint32_t k;

    for (k = 0; k < n->count; k++) {
        const struct cls_q_node *c = &q->nodes[q->kids[n->first + k]];

        if (c->type == CLS_Q_NOT && !c->paren) {
            return q->kids[n->first + k];
        }
    }
    return CLS_Q_NONE;
}

static uint32_t
s_or(struct s_parser *p)
{
    uint32_t *list = NULL;
    size_t n = 0;
    size_t cap = 0;
    size_t or_at = SIZE_MAX;
    uint32_t id;
    size_t k;

    s_list_push(&list, &n, &cap, s_and(p));
    while (s_peek(p)->type == L_OR) {
        const struct s_tok *t = s_next(p);

        if (or_at == SIZE_MAX) {
            or_at = t->from;
        }
        if (!s_starts_operand(s_peek(p))) {
            s_msg(p, true, t->from, "OR needs a term on each side");
            continue;
        }
        s_list_push(&list, &n, &cap, s_and(p));
    }
    if (n >= 2) {
        for (k = 0; k < n; k++) {
            const struct cls_q_node *c = &p->q->nodes[list[k]];
            uint32_t nt;

            if (c->type != CLS_Q_AND || c->paren) {
                continue;
            }
            nt = s_bare_not(p->q, list[k]);
            if (nt != CLS_Q_NONE) {
                s_msg(p, false, p->q->nodes[nt].from,
                      "NOT binds tighter than OR: 'a OR b NOT c' reads as a OR (b NOT c); write "
                      "(a OR b) NOT c to exclude c from both");
            }
            else {
                s_msg(p, false, or_at,
                      "AND and OR mixed without brackets: read as (... AND ...) OR ...; add "
                      "brackets to say which you mean");
            }
            break;
        }
    }
    id = n == 0 ? CLS_Q_NONE : (n == 1 ? list[0] : s_parent(p, CLS_Q_OR, list, n));
    esc_free(list);
    return id;
}

bool
cls_query_nullable(const struct cls_query *q, uint32_t node)
{
    const struct cls_q_node *n = &q->nodes[node];
    uint32_t k;

    switch (n->type) {
    case CLS_Q_NOT:
    case CLS_Q_FOLLOWERS:
        return true;
    case CLS_Q_AND:
        for (k = 0; k < n->count; k++) {
            if (!cls_query_nullable(q, q->kids[n->first + k])) {
                return false;
            }
        }
        return true;
    case CLS_Q_OR:
        for (k = 0; k < n->count; k++) {
            if (cls_query_nullable(q, q->kids[n->first + k])) {
                return true;
            }
        }
        return false;
    default:
        break;
    }
    return false;
}

/* A keyword: one term, phrase, #tag or @handle, with optional enclosing quotes. */
static void
s_keyword(struct s_parser *p)
{
    const char *s = p->src;
    size_t a = 0;
    size_t b = p->len;
    size_t w;
    const struct cls_token *toks;
    size_t n_toks;
    size_t i;
    size_t n = 0;

    while (a < b && s_is_space(s, a, b, &w)) {
        a += w;
    }
    while (b > a && (s[b - 1] == ' ' || s[b - 1] == '\t' || s[b - 1] == '\n' || s[b - 1] == '\r')) {
        b--;
    }
    if (b - a >= 2 && s[a] == '"' && s[b - 1] == '"') {
        a++;
        b--;
    }
    else if (b - a >= 6 && s_is_curly(s, a, b, true) && s_is_curly(s, b - 3, b, false)) {
        a += 3;
        b -= 3;
    }
    cls_text_tokenize(p->txt, &p->topts, s + a, b - a);
    toks = cls_text_tokens(p->txt, &n_toks);
    for (i = 0; i < n_toks; i++) {
        if (s_main_kind(toks[i].kind)) {
            s_elem(p, s_qkind(toks[i].kind), CLS_QM_EXACT, cls_text_tok_str(p->txt, &toks[i]),
                   toks[i].len, NULL, 0);
            n++;
        }
    }
    if (n == 0) {
        s_msg(p, true, SIZE_MAX,
              "keyword \"%s\" has nothing to match after normalisation (it needs letters or "
              "digits outside a URL)",
              s);
        return;
    }
    p->q->root = s_elems_node(p, 0, n, -1, 0, p->len);
}

size_t
cls_query_parse(struct cls_query *q, const char *src, const struct cls_query_opts *opts,
                cls_text_t *txt)
{
    struct s_parser p;
    cls_text_t *own = NULL;
    uint32_t id;

    memset(q, 0, sizeof(*q));
    q->root = CLS_Q_NONE;
    q->src = esc_strdup(src);
    memset(&p, 0, sizeof(p));
    p.q = q;
    p.src = q->src;
    p.len = strlen(src);
    p.opts = opts;
    p.topts.fold_enye = opts->fold_enye || opts->text_fold_enye;
    p.kopts.fold_enye = opts->text_fold_enye;
    if (txt == NULL) {
        own = cls_text_new();
        txt = own;
    }
    p.txt = txt;
    if (opts->mode == CLS_QUERY_KEYWORD) {
        s_keyword(&p);
        goto out;
    }
    if (p.len > CLS_QUERY_MAX_BYTES) {
        s_msg(&p, true, SIZE_MAX, "query is too long (%zu bytes, max %d)", p.len,
              CLS_QUERY_MAX_BYTES);
        goto out;
    }
    s_lex(&p);
    if (p.n_toks == 0) {
        if (q->n_errors == 0) {
            s_msg(&p, true, SIZE_MAX, "empty query");
        }
        goto out;
    }
    id = s_or(&p);
    while (s_peek(&p)->type != L_EOF) {
        /* only a stray ')' stops s_or before the end */
        const struct s_tok *t = s_next(&p);
        uint32_t more;
        uint32_t pair[2];

        if (t->type == L_RPAREN) {
            s_msg(&p, true, t->from, "unbalanced parenthesis");
        }
        more = s_or(&p);
        if (id == CLS_Q_NONE || more == CLS_Q_NONE) {
            id = id == CLS_Q_NONE ? more : id;
            continue;
        }
        pair[0] = id;
        pair[1] = more;
        id = s_parent(&p, CLS_Q_AND, pair, 2);
    }
    if (q->n_errors > 0 || id == CLS_Q_NONE) {
        if (q->n_errors == 0) {
            s_msg(&p, true, SIZE_MAX, "empty query");
        }
        goto out;
    }
    if (q->n_terms > CLS_QUERY_MAX_TERMS) {
        s_msg(&p, true, SIZE_MAX, "too many terms (%zu, max %d)", q->n_terms,
              CLS_QUERY_MAX_TERMS);
        goto out;
    }
    if (cls_query_nullable(q, id)) {
        if (opts->mode == CLS_QUERY_INCLUDE) {
            s_msg(&p, true, SIZE_MAX, "a query needs at least one positive term");
            goto out;
        }
        s_msg(&p, false, SIZE_MAX,
              "this exclude query is NOT-only: it removes every post that lacks its terms");
    }
    q->root = id;
out:
    if (q->n_errors > 0) {
        q->root = CLS_Q_NONE;
    }
    esc_free(p.toks);
    cls_text_destroy(&own);
    return q->n_errors;
}

/* ---------------------------------------------------------------------------------------------
 * Printing
 */

const char *
cls_query_elem_str(const struct cls_q_elem *e, char *out, size_t outsz)
{
    static const char *const fields[CLS_QK_KINDS] = {
        [CLS_QK_AUTHOR] = "author:", [CLS_QK_SITE] = "site:", [CLS_QK_LANG] = "lang:",
        [CLS_QK_PLATFORM] = "platform:",
    };
    const char *sigil = e->kind == CLS_QK_HASHTAG ? "#" : (e->kind == CLS_QK_MENTION ? "@" : "");

    if (e->kind >= CLS_QK_AUTHOR) {
        snprintf(out, outsz, "%s%s%s%s", fields[e->kind], e->text,
                 e->kind == CLS_QK_SITE && e->raw != NULL ? e->raw : "",
                 e->match == CLS_QM_PREFIX ? "*" : "");
    }
    else if (e->match == CLS_QM_CASE) {
        snprintf(out, outsz, "{%s%s}", sigil, e->raw);
    }
    else {
        snprintf(out, outsz, "%s%s%s", sigil, e->text, e->match == CLS_QM_PREFIX ? "*" : "");
    }
    return out;
}

static void
s_print_node(const struct cls_query *q, FILE *f, uint32_t id, int indent, char *buf, size_t bufsz)
{
    static const char *const cmps[] = { ">", ">=", "<", "<=", "=" };
    const struct cls_q_node *n = &q->nodes[id];
    uint32_t k;

    fprintf(f, "%*s", indent * 2, "");
    switch (n->type) {
    case CLS_Q_AND:
    case CLS_Q_OR:
    case CLS_Q_NOT:
        fprintf(f, "%s\n", n->type == CLS_Q_AND ? "AND" : (n->type == CLS_Q_OR ? "OR" : "NOT"));
        break;
    case CLS_Q_NEAR:
        fprintf(f, "NEAR/%d%s\n", (int)n->n, n->ordered ? " (ordered)" : "");
        break;
    case CLS_Q_FOLLOWERS:
        fprintf(f, "followers %s %lld\n", cmps[n->cmp], (long long)n->value);
        return;
    case CLS_Q_ATOM: {
        const struct cls_q_elem *e = &q->elems[n->first];
        const char *what = "term";

        if (e->kind >= CLS_QK_AUTHOR) {
            fprintf(f, "%s\n", cls_query_elem_str(e, buf, bufsz));
            return;
        }
        if (e->match == CLS_QM_CASE) {
            what = "exact";
        }
        else if (e->match != CLS_QM_EXACT) {
            what = "wildcard";
        }
        else if (e->kind == CLS_QK_HASHTAG) {
            what = "hashtag";
        }
        else if (e->kind == CLS_QK_MENTION) {
            what = "mention";
        }
        fprintf(f, "%s \"%s\"\n", what, cls_query_elem_str(e, buf, bufsz));
        return;
    }
    case CLS_Q_PHRASE:
        if (n->n >= 0) {
            fprintf(f, "phrase~%d \"", (int)n->n);
        }
        else {
            fprintf(f, "phrase \"");
        }
        for (k = 0; k < n->count; k++) {
            fprintf(f, "%s%s", k > 0 ? " " : "",
                    cls_query_elem_str(&q->elems[n->first + k], buf, bufsz));
        }
        fprintf(f, "\"\n");
        return;
    default:
        break;
    }
    for (k = 0; k < n->count; k++) {
        s_print_node(q, f, q->kids[n->first + k], indent + 1, buf, bufsz);
    }
}

void
cls_query_print_tree(const struct cls_query *q, FILE *f)
{
    size_t bufsz = 2 * CLS_QUERY_MAX_BYTES + 16;
    char *buf;

    if (q->root == CLS_Q_NONE) {
        return;
    }
    buf = esc_malloc(bufsz);
    s_print_node(q, f, q->root, 0, buf, bufsz);
    esc_free(buf);
}

/* Byte offset of the character with index `chars` in s[0..len) (len when past the end). */
static size_t
s_byte_at(const char *s, size_t len, size_t chars)
{
    size_t c = 0;
    size_t i;

    for (i = 0; i < len; i++) {
        if (((unsigned char)s[i] & 0xC0) != 0x80) {
            if (c == chars) {
                return i;
            }
            c++;
        }
    }
    return len;
}

/* Prints the query (a window of 100 characters around byte `at` when longer), control
 * characters as spaces, and a caret under `at`. */
static void
s_print_caret(const struct cls_query *q, FILE *f, size_t at)
{
    const char *s = q->src;
    size_t len = strlen(s);
    size_t from = 0;
    size_t to = len;
    size_t before;
    size_t i;
    size_t col;

    if (at > len) {
        at = len;
    }
    before = s_count_cps(s, at);
    if (s_count_cps(s, len) > 100) {
        size_t skip = before > 50 ? before - 50 : 0;

        /* Not s_byte_at(.., 0): that skips stray continuation bytes at the start (invalid
         * UTF-8) and would put the window after `at`. */
        from = skip > 0 ? s_byte_at(s, len, skip) : 0;
        to = s_byte_at(s, len, skip + 100);
    }
    fputs(from > 0 ? "  ..." : "  ", f);
    for (i = from; i < to; i++) {
        fputc(s[i] == '\n' || s[i] == '\t' || s[i] == '\r' ? ' ' : s[i], f);
    }
    fputs(to < len ? "...\n  " : "\n  ", f);
    col = s_count_cps(s + from, at - from) + (from > 0 ? 3 : 0);
    for (i = 0; i < col; i++) {
        fputc(' ', f);
    }
    fputs("^\n", f);
}

void
cls_query_print_msgs(const struct cls_query *q, FILE *f, const char *lead, const char *path)
{
    size_t i;

    for (i = 0; i < q->n_msgs; i++) {
        const struct cls_q_msg *m = &q->msgs[i];

        fprintf(f, "%s%s: ", lead != NULL ? lead : "", m->error ? "error" : "warning");
        if (path != NULL) {
            fprintf(f, "%s: ", path);
        }
        if (m->col > 0) {
            fprintf(f, "column %u: ", (unsigned)m->col);
        }
        fprintf(f, "%s\n", m->text);
        if (m->col > 0) {
            s_print_caret(q, f, m->byte);
        }
    }
}
