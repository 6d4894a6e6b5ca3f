#ifndef CLS_CLASSIFIER_H
#define CLS_CLASSIFIER_H

/* escucha-classifier as a library: the "classifier" config section, loading and compiling a
 * deployment, classifying one bus message, and the service loop (PULL bus.classify -> PUSH
 * bus.aggregate). main.c only parses flags and calls these; tests call them directly. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "escucha/esc_cfg.h"
#include "escucha/esc_msg.h"
#include "escucha/esc_rc.h"

#include "match.h"
#include "text.h"

#define CLS_BATCH_MAX 256 /* messages handled per wakeup before signals are looked at again */

/* The "classifier" section of the deployment file. */
struct cls_cfg {
    int64_t grace_ms;       /* longest a drain may take after the first SIGTERM */
    int64_t drain_quiet_ms; /* a drain ends once the input has been quiet this long */
    bool fold_enye;         /* also fold ñ to n when normalising */
    char languages[64];     /* languages language ID chooses from, "es,en,pt,qu,ay" */
    char language_model[256]; /* langid model file ("" = the one built/installed) */
    double language_min_confidence; /* below this the language is "und" */
    char sentiment_lexicon[256]; /* sentiment lexicon file ("" = the one built/installed) */
    char metrics_listen[64];     /* /metrics and /healthz address, "" = off */
    int64_t topics_poll_ms; /* how often <prefix>:topics:version is read (0 = never) */
};

/* Parses a comma-separated language list into codes (pointers into buf). Returns the count,
 * or -1 when there are more than max. */
int cls_languages_split(char *buf, const char **codes, size_t max);

extern const struct esc_cfg_entry cls_cfg_map[];

/* A loaded deployment: what a reload replaces as a whole. */
struct cls_conf {
    struct esc_cfg *cfg;  /* the deployment; owned */
    struct cls_cfg cc;    /* its classifier section */
    cls_match_t *match;   /* every keyword of every topic, compiled; owned */
};

/* Maps the classifier section of *cfg_p and compiles every keyword into c. On success takes
 * ownership of *cfg_p (sets it to NULL) and returns ESC_OK; on failure returns ESC_INVALID
 * with err naming the key path, and *cfg_p stays the caller's. */
esc_rc cls_conf_from_cfg(struct cls_conf *c, struct esc_cfg **cfg_p, struct esc_error *err);
/* Same from the file at path (esc_cfg_load first). */
esc_rc cls_conf_load(struct cls_conf *c, const char *path, struct esc_error *err);
/* Same from the file at path with the topic overrides of escucha-api applied
 * (esc_cfg_load_overlay; ov may be NULL when n is 0). */
esc_rc cls_conf_load_overlay(struct cls_conf *c, const char *path,
                             const struct esc_cfg_overlay *ov, size_t n, struct esc_error *err);
/* Frees what c owns and zeroes it. NULL-safe. */
void cls_conf_fini(struct cls_conf *c);
/* --check-config: loads the file at path, prints to diag every error and warning of every
 * keyword, query and exclude query (key path, column and a caret line under the query), then
 * checks the rest as cls_conf_load does. Prints "config ok" (and the number of warnings) to
 * out and returns 0, or returns ESC_CFG_EXIT_INVALID. */
int cls_conf_check(const char *path, FILE *out, FILE *diag);

struct cls_stats {
    uint64_t in;       /* messages received */
    uint64_t out;      /* classified posts sent */
    uint64_t invalid;  /* messages dropped as invalid (undecodable, or not a post) */
    uint64_t dropped;  /* classified posts that could not be sent before the drain deadline */
    uint64_t matched;  /* posts that matched at least one topic */
    uint64_t bad_utf8; /* invalid UTF-8 bytes repaired in post texts */
    uint64_t reloads;  /* successful reloads (SIGHUP or topic overrides) */
    uint64_t topic_polls; /* reads of <prefix>:topics:version that got an answer */
};

typedef struct cls cls_t;

/* A classifier for conf, whose contents it takes (conf is zeroed). Caller owns the result. */
cls_t *cls_new(struct cls_conf *conf);
/* NULL-safe; sets *self_p = NULL. */
void cls_destroy(cls_t **self_p);

/* Borrowed, valid until the next reload. */
const struct cls_conf *cls_get_conf(const cls_t *self);
const struct cls_stats *cls_get_stats(const cls_t *self);
/* Tokens of the post last analysed; borrowed until the next analyse/process. The fields of
 * the post (hashtags, mentions, author, url, platform, language) are among them when some
 * topic can test them (cls_match_token_kinds), the language when a candidate topic tests
 * lang:. */
const cls_text_t *cls_get_tokens(const cls_t *self);

/* Tokenises p (text, hashtags, mentions, author, url, platform, language) with the current
 * matcher's options and matches it; decides the post's language (language ID, else the
 * platform's hint) and sentiment when it matched a topic, and leaves them "und" and 0 when it
 * matched none (docs/classifier.md, "Language and sentiment"). Language ID runs before the
 * topics are evaluated when some topic may test lang:. Returns the hits, borrowed until the
 * next call. */
const struct cls_match_result *cls_analyze(cls_t *self, const struct esc_post *p);
/* --explain: prints the normalised text, the tokens, every matched topic with the clause that
 * made it match, the near misses with the clause that failed, the language and the
 * sentiment. */
void cls_explain(cls_t *self, const struct esc_post *p, FILE *f);

/* Classifies one bus message: decode a "post", analyse it, encode it as "classified" with
 * topics (config order, possibly none), language and sentiment (cls_analyze: "und" and 0
 * when there are no topics; such a post also leaves its text, author, links, tags and counts
 * behind, docs/classifier.md). Returns the message, borrowed: it is encoded into a buffer of
 * self's, valid until the next cls_process or cls_destroy (nothing is allocated per post);
 * its size is in *out_len. NULL when the message is invalid (logged at warn with the reason
 * and counted in stats.invalid). */
const char *cls_process(cls_t *self, const void *buf, size_t len, size_t *out_len);

/* Language from a platform hint: the leading 2-3 letters, lower-cased, when followed by the
 * end, '-' or '_' ("es-PE" -> "es", "QUZ" -> "quz"); "und" otherwise or for NULL. */
void cls_language(const char *hint, char *out, size_t outsz);

/* Re-reads the config file (with the topic overrides last read from Redis), recompiles and
 * swaps the matcher. On any error keeps the running configuration, logs the error and returns
 * ESC_INVALID. Bus endpoints are not reopened. */
esc_rc cls_reload(cls_t *self);

/* The service: connects PULL to bus.classify and PUSH to bus.aggregate, classifies until the
 * first SIGTERM/SIGINT on sig_fd, then keeps reading until the input has been quiet for
 * drain_quiet_ms or grace_ms has passed, and closes. SIGHUP reloads. Sends block (never
 * drop) while the aggregator is slow. With classifier.topics_poll_ms > 0 it reads
 * <prefix>:topics:version every topics_poll_ms; when it changed it reads every team's topic
 * overrides (docs/api.md) and reloads as SIGHUP does, with them applied. Returns 0 when
 * drained with nothing dropped, else 1. */
int cls_run(cls_t *self, int sig_fd);

#endif
