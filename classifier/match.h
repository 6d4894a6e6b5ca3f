#ifndef CLS_MATCH_H
#define CLS_MATCH_H

/* Compiled keyword matcher (docs/classifier.md, "Matching"). Every keyword of every topic is
 * normalised and tokenised once, when the matcher is built, and indexed in one hash table by
 * the text of its first token. Matching a post is one pass over its tokens with one lookup
 * each; a phrase is then checked against the following positions. The cost does not grow with
 * the number of topics that do not match. A keyword is one of:
 *   term      "congreso"          a word, a whole hashtag or a hashtag part
 *   phrase    "poder legislativo" consecutive main tokens, in order ("quotes" are optional)
 *   hashtag   "#CongresoPerú"     a whole hashtag in the text, or an entry of post hashtags
 *   mention   "@jne_peru"         a mention in the text, or an entry of post mentions
 * The boolean query language of issue #4 will compile into the same index. A built matcher is
 * immutable and can be shared; each user brings its own cls_match_result. */

#include <stddef.h>
#include <stdint.h>

#include "escucha/esc_cfg.h"
#include "escucha/esc_rc.h"

#include "text.h"

#define CLS_PHRASE_MAX 32 /* most tokens in one keyword */

typedef struct cls_match cls_match_t;

struct cls_hit {
    uint32_t topic;   /* topic index (config order over all teams) */
    uint32_t keyword; /* keyword that matched first (cls_match_keyword) */
};

/* Per-caller scratch and result of cls_match_run; init/fini, reused across posts. */
struct cls_match_result {
    struct cls_hit *hits; /* matched topics, ascending topic index, no duplicates */
    size_t n_hits;
    uint32_t *mark;       /* internal: generation at which each topic last matched */
    size_t cap;           /* internal: entries in mark and hits */
    uint32_t gen;         /* internal: current generation */
};

/* Returns a caller-owned, empty matcher that normalises with opts (copied). */
cls_match_t *cls_match_new(const struct cls_text_opts *opts);
void cls_match_destroy(cls_match_t **self_p);

/* Adds a topic with key "team/topic" and its keywords (copied). `path` names the topic in
 * errors ("teams[0].topics[2]"); a keyword that normalises to nothing or is longer than
 * CLS_PHRASE_MAX tokens fails with err = "<path>.keywords[<i>]: ...". Returns the new topic's
 * index, or -1 (err filled, matcher unchanged). Not after cls_match_build. */
int cls_match_add_topic(cls_match_t *self, const char *key, const char *const *keywords,
                        size_t n_keywords, const char *path, struct esc_error *err);
/* Builds the index; call once, after the last add. */
void cls_match_build(cls_match_t *self);

/* A built matcher for every topic of every team of cfg, in config order. Returns a
 * caller-owned matcher, or NULL with err naming the keyword's key path (source = cfg->path). */
cls_match_t *cls_match_from_cfg(const struct esc_cfg *cfg, const struct cls_text_opts *opts,
                                struct esc_error *err);

const struct cls_text_opts *cls_match_opts(const cls_match_t *self);
size_t cls_match_n_topics(const cls_match_t *self);
size_t cls_match_n_keywords(const cls_match_t *self);
/* Key "team/topic" of a topic; borrowed, valid while the matcher lives. */
const char *cls_match_topic_key(const cls_match_t *self, size_t topic);
/* The keyword as written in the config; borrowed, valid while the matcher lives. */
const char *cls_match_keyword(const cls_match_t *self, size_t keyword);

void cls_match_result_init(struct cls_match_result *res);
void cls_match_result_fini(struct cls_match_result *res);

/* Matches the tokens currently in txt (cls_text_tokenize, cls_text_add_*; tokenised with the
 * matcher's opts) and fills res. Returns res->n_hits. Does not allocate once res has grown
 * to the number of topics. */
size_t cls_match_run(const cls_match_t *self, const cls_text_t *txt,
                     struct cls_match_result *res);

#endif
