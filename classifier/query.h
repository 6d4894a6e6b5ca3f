#ifndef CLS_QUERY_H
#define CLS_QUERY_H

/* The topic query language (docs/query-language.md): lexer, parser and validator. A query
 * string becomes a tree of nodes whose leaves carry normalised elements (the same
 * normalisation as post text, cls_text), ready for the matcher to index. Parsing never stops at
 * the first problem: every error and warning is collected with its column, so a validator can
 * show them all under the query with a caret. Off the hot path: it allocates freely. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "text.h"

#define CLS_QUERY_MAX_BYTES 8192 /* longest query */
#define CLS_QUERY_MAX_TERMS 500  /* most terms (atoms, phrase words, comparisons) in one query */
#define CLS_QUERY_MAX_NEAR 50    /* largest NEAR/n distance and "..."~n slop */
#define CLS_QUERY_WARN_NEAR 20   /* larger distances draw a warning */
#define CLS_QUERY_MAX_DEPTH 64   /* deepest nesting of brackets */
#define CLS_QUERY_WILDCARD_MIN 3 /* characters needed before '*' (exactly this many: warning) */
#define CLS_PHRASE_MAX 32        /* most words in one phrase or keyword */
#define CLS_Q_NONE UINT32_MAX    /* no node */

enum cls_q_type {
    CLS_Q_AND = 0,
    CLS_Q_OR,
    CLS_Q_NOT,       /* one child */
    CLS_Q_NEAR,      /* two children */
    CLS_Q_ATOM,      /* one element */
    CLS_Q_PHRASE,    /* two or more elements at consecutive positions, or within n (slop) */
    CLS_Q_FOLLOWERS, /* followers:>N */
};

/* What an element is matched against. */
enum cls_q_kind {
    CLS_QK_WORD = 0, /* words, whole hashtags and hashtag parts */
    CLS_QK_HASHTAG,  /* #tag: whole hashtags in the text and the post's hashtags field */
    CLS_QK_MENTION,  /* @handle: mentions in the text and the post's mentions field */
    CLS_QK_AUTHOR,   /* author: */
    CLS_QK_SITE,     /* site: / url: / links: */
    CLS_QK_LANG,     /* lang: */
    CLS_QK_PLATFORM, /* platform: */
    CLS_QK_KINDS
};

enum cls_q_match {
    CLS_QM_EXACT = 0, /* equal normalised text */
    CLS_QM_PREFIX,    /* term*: text is the prefix */
    CLS_QM_GLOB,      /* '?' = one character, a final '*' = any rest; text is the pattern */
    CLS_QM_CASE,      /* {Exact}: text is the folded form (index key), raw the exact form */
};

enum cls_q_cmp { CLS_QC_GT = 0, CLS_QC_GE, CLS_QC_LT, CLS_QC_LE, CLS_QC_EQ };

struct cls_q_elem {
    char *text;    /* normalised text, prefix or pattern (see enum cls_q_match); SITE: host */
    char *raw;     /* CASE: exact form (NFC); SITE: path prefix ("/news") or NULL */
    uint8_t kind;  /* enum cls_q_kind */
    uint8_t match; /* enum cls_q_match */
};

struct cls_q_node {
    uint8_t type;   /* enum cls_q_type */
    uint8_t cmp;    /* FOLLOWERS: enum cls_q_cmp */
    bool ordered;   /* NEAR: the left operand must come first (NEAR/nf, ONEAR/n) */
    bool paren;     /* written inside brackets */
    int32_t n;      /* NEAR: most tokens between; PHRASE: slop, -1 for an exact phrase */
    int64_t value;  /* FOLLOWERS */
    uint32_t first; /* AND/OR/NOT/NEAR: children kids[first..+count); ATOM/PHRASE: elems[] */
    uint32_t count;
    uint32_t from;  /* source text of the node: bytes [from, to) of src */
    uint32_t to;
};

struct cls_q_msg {
    bool error;     /* false: a warning */
    uint32_t col;   /* 1-based column, in characters; 0 = the whole string (keywords) */
    uint32_t byte;  /* byte offset of the column */
    char text[200];
};

enum cls_q_mode {
    CLS_QUERY_INCLUDE = 0, /* a topic's query: needs a positive term */
    CLS_QUERY_EXCLUDE,     /* a topic's exclude query: NOT-only is only a warning */
    CLS_QUERY_KEYWORD,     /* one keyword or exclusion phrase: a term, a phrase ("..." optional),
                              #tag or @handle; no operators */
};

struct cls_query_opts {
    enum cls_q_mode mode;
    bool fold_enye;      /* fold ñ to n in this query's terms (the deployment's or the topic's) */
    bool text_fold_enye; /* how post tokens are normalised (classifier.fold_enye): used for the
                            index key of {Exact} terms, which never fold ñ themselves */
};

/* A parsed query. Everything is owned by the struct (cls_query_fini). */
struct cls_query {
    char *src;                /* the query as written */
    struct cls_q_node *nodes;
    size_t n_nodes;
    size_t cap_nodes;
    uint32_t *kids;           /* children lists of the nodes */
    size_t n_kids;
    size_t cap_kids;
    struct cls_q_elem *elems;
    size_t n_elems;
    size_t cap_elems;
    struct cls_q_msg *msgs;   /* errors and warnings in source order */
    size_t n_msgs;
    size_t cap_msgs;
    size_t n_errors;
    size_t n_terms;           /* what CLS_QUERY_MAX_TERMS counts */
    uint32_t root;            /* CLS_Q_NONE when there are errors */
};

/* Parses src into q (initialised here; call cls_query_fini whatever the result). txt is a
 * scratch tokeniser (NULL: one is made for the call). Returns the number of errors; 0 means
 * q->root is a valid tree (warnings may still be in q->msgs). */
size_t cls_query_parse(struct cls_query *q, const char *src, const struct cls_query_opts *opts,
                       cls_text_t *txt);
/* Frees what q owns and zeroes it. NULL-safe, idempotent. */
void cls_query_fini(struct cls_query *q);

/* True when the subtree at node can be true for a post that contains none of its positive
 * terms (pure NOT, followers only, or an OR with such a branch). */
bool cls_query_nullable(const struct cls_query *q, uint32_t node);

/* Prints every message as "<lead><error|warning>: [<path>: ]column N: <text>", each followed
 * by the query (two spaces in) and a caret line under the column (keywords have no column and
 * no caret). lead and path may be NULL. */
void cls_query_print_msgs(const struct cls_query *q, FILE *f, const char *lead,
                          const char *path);
/* Prints the tree, one node per line, children indented by two spaces. */
void cls_query_print_tree(const struct cls_query *q, FILE *f);
/* Writes a short description of an element ("term \"voto\"", "wildcard \"vot*\"",
 * "site:gob.pe", ...) into out. Returns out. */
const char *cls_query_elem_str(const struct cls_q_elem *e, char *out, size_t outsz);

#endif
