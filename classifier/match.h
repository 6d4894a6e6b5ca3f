#ifndef CLS_MATCH_H
#define CLS_MATCH_H

/* The compiled topic matcher (docs/classifier.md, "Matching"). Every topic of every team -
 * its keywords, its boolean query and its exclude query (docs/query-language.md) - and every
 * team's exclusion lists are compiled together. Each distinct single-token pattern ("atom":
 * a word, #tag, @handle, {Exact} word, term* prefix, ?-pattern, author, link domain,
 * language, platform) is stored once and indexed: exact texts in one hash table, wildcard
 * prefixes in a second one probed at the prefix lengths that exist. Matching a post is one
 * pass over its tokens that records which atoms occur and where; only the topics that one of
 * those atoms can trigger are then evaluated (boolean, phrase and proximity logic on the
 * recorded positions). The cost does not grow with topics that have none of the post's words.
 * A built matcher is immutable and can be shared; each user brings its own cls_match_result. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "escucha/esc_cfg.h"
#include "escucha/esc_rc.h"

#include "query.h"
#include "text.h"

#define CLS_SPANS_MAX 65536 /* matches of one NEAR operand kept per post (a 64 KiB post has
                               fewer tokens) */

typedef struct cls_match cls_match_t;

struct cls_hit {
    uint32_t topic; /* topic index (order of addition: config order over all teams) */
};

/* Post fields that are compared at evaluation time rather than indexed. */
struct cls_match_post {
    int64_t followers; /* the author's follower count (0 when unknown) */
};

struct cls_match_scratch;

/* Per-caller scratch and result of cls_match_run; init/fini, reused across posts. */
struct cls_match_result {
    struct cls_hit *hits;         /* matched topics, ascending topic index, no duplicates */
    size_t n_hits;
    size_t n_candidates;          /* topics evaluated for the last post */
    uint32_t gen;                 /* internal: generation of the last post (marks in s) */
    struct cls_match_scratch *s;  /* internal; grows to the largest matcher and post seen */
};

/* One topic to compile. Strings are copied. */
struct cls_topic_src {
    const char *key;                /* "team/topic" */
    const char *const *keywords;    /* any one matches; may be empty when query is set */
    size_t n_keywords;
    const char *query;              /* include query or NULL */
    const char *exclude;            /* exclude query or NULL */
    bool fold_enye;                 /* this topic matches with ñ folded to n */
    int team;                       /* from cls_match_add_team, or -1 */
};

/* A team's exclusion lists: a post that matches any entry is removed from all its topics. */
struct cls_team_src {
    const char *id;
    const char *const *authors;     /* handles, matched like author: */
    size_t n_authors;
    const char *const *sites;       /* domains (subdomains included), matched like site: */
    size_t n_sites;
    const char *const *phrases;     /* terms, phrases, #tags, @handles, matched like keywords */
    size_t n_phrases;
};

/* Returns a caller-owned, empty matcher for tokens normalised with opts (copied). */
cls_match_t *cls_match_new(const struct cls_text_opts *opts);
void cls_match_destroy(cls_match_t **self_p);

/* Adds a team's exclusion lists. `path` names the team in errors ("teams[1]"); a bad entry
 * fails with err = "<path>.exclude.<list>[<i>]: ...". Returns the team index, or -1 (err
 * filled, matcher unchanged). Not after cls_match_build. */
int cls_match_add_team(cls_match_t *self, const struct cls_team_src *src, const char *path,
                       struct esc_error *err);
/* Adds a topic. `path` names it in errors ("teams[0].topics[2]"): a bad keyword fails with
 * "<path>.keywords[<i>]: ...", a bad query with "<path>.query: column N: ..." (err->column =
 * N), likewise "<path>.exclude: ...". Warnings are kept (cls_match_warnings). Returns the new
 * topic's index, or -1 (err filled, matcher unchanged). Not after cls_match_build. */
int cls_match_add_topic_src(cls_match_t *self, const struct cls_topic_src *src, const char *path,
                            struct esc_error *err);
/* Shorthand: a topic with key and keywords only, no team. */
int cls_match_add_topic(cls_match_t *self, const char *key, const char *const *keywords,
                        size_t n_keywords, const char *path, struct esc_error *err);
/* Builds the indexes; call once, after the last add. */
void cls_match_build(cls_match_t *self);

/* A built matcher for every team and topic of cfg, in config order; a topic's fold_enye is
 * honoured. Returns a caller-owned matcher, or NULL with err naming the key path (source =
 * cfg->path). */
cls_match_t *cls_match_from_cfg(const struct esc_cfg *cfg, const struct cls_text_opts *opts,
                                struct esc_error *err);

const struct cls_text_opts *cls_match_opts(const cls_match_t *self);
size_t cls_match_n_topics(const cls_match_t *self);
size_t cls_match_n_keywords(const cls_match_t *self);
size_t cls_match_n_queries(const cls_match_t *self);
size_t cls_match_n_atoms(const cls_match_t *self);
/* Key "team/topic" of a topic; borrowed, valid while the matcher lives. */
const char *cls_match_topic_key(const cls_match_t *self, size_t topic);
/* Warnings found while compiling ("teams[0].topics[1].query: column 5: short wildcard ...");
 * borrowed, valid while the matcher lives. */
const char *const *cls_match_warnings(const cls_match_t *self, size_t *n);

void cls_match_result_init(struct cls_match_result *res);
void cls_match_result_fini(struct cls_match_result *res);

/* Matches the tokens currently in txt (cls_text_tokenize and cls_text_add_*, with the
 * matcher's opts) and the fields in post (NULL: followers 0) and fills res. Returns
 * res->n_hits. Does not allocate once res has grown to the matcher and to the post size. */
size_t cls_match_run(const cls_match_t *self, cls_text_t *txt, const struct cls_match_post *post,
                     struct cls_match_result *res);

/* Same result as cls_match_run, but evaluates every topic instead of only the candidates
 * that the post's atoms trigger. Slow; for checking the trigger logic and for tools. */
size_t cls_match_run_all(const cls_match_t *self, cls_text_t *txt,
                         const struct cls_match_post *post, struct cls_match_result *res);

/* cls_match_run in steps, so that the caller can leave out what no candidate needs (the
 * classifier runs language ID only when a topic that might match tests lang:):
 *   cls_match_collect      the token pass and the candidates of a new post, nothing
 *                          evaluated (res->n_hits 0); returns res->n_candidates
 *   cls_match_need_lang    true when a candidate's query, exclude query or team exclusion
 *                          tests lang:, so that its answer depends on the language token
 *   cls_match_collect_more looks up the tokens added to txt since the collect (the language)
 *                          and adds the candidates they complete; returns res->n_candidates
 *   cls_match_eval         evaluates the candidates; returns res->n_hits
 * collect, [collect_more,] eval gives what cls_match_run gives for the tokens then in txt.
 * Leaving the language token out of the collect cannot lose a candidate only when no lang:
 * atom is a trigger: see cls_match_lang_triggers. */
size_t cls_match_collect(const cls_match_t *self, cls_text_t *txt,
                         const struct cls_match_post *post, struct cls_match_result *res);
bool cls_match_need_lang(const cls_match_t *self, const struct cls_match_result *res);
size_t cls_match_collect_more(const cls_match_t *self, cls_text_t *txt,
                              struct cls_match_result *res);
size_t cls_match_eval(const cls_match_t *self, struct cls_match_result *res);
/* True when some topic can become a candidate through its lang: atom alone (a topic that is
 * just `lang:qu`, or whose cheapest trigger is a lang: atom), i.e. the candidates depend on
 * the language token: then it must be in txt before cls_match_collect. */
bool cls_match_lang_triggers(const cls_match_t *self);
/* The token kinds (bit 1 << enum cls_tok_kind) that some atom can match. A token of another
 * kind changes no result, so a caller may leave such fields out of txt (the classifier does
 * not tokenise the post's url when no topic or team tests site:). Phrases and NEAR only use
 * positioned tokens of these kinds too. */
uint32_t cls_match_token_kinds(const cls_match_t *self);

/* Runs the match and prints, for every topic that matched, the clause that made it match
 * ("  team/topic keyword=\"...\"" or "query=\"...\""), then under "near misses:" every topic
 * that did not match although one of its terms is in the post, with the clause that failed
 * or the exclusion that removed it. Slow path: looks at every topic. */
void cls_match_explain(const cls_match_t *self, cls_text_t *txt,
                       const struct cls_match_post *post, struct cls_match_result *res, FILE *f);

#endif
