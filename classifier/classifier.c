#define ESC_LOG_MODULE "classifier"
/* The classifier service: posts come in from the broker (PULL connected to bus.classify, so
 * several classifiers share the load), each is decoded once, tokenised once (text plus the
 * fields the topics can test: hashtags, mentions, author, url, language, platform) and matched
 * against every topic of every team by the compiled matcher, and goes out to the aggregator
 * as a "classified" message (PUSH connected to bus.aggregate), also when it matched nothing,
 * so the aggregator counts everything processed. Language ID and sentiment run for matched
 * posts only (and language ID first when a candidate topic tests lang:): nothing downstream
 * reads them for the others, which go out with "und" and 0, and without the fields the
 * aggregator does not read of them (s_slim). Invalid messages are logged,
 * counted and skipped. Sends wait while the aggregator is behind (backpressure instead of
 * loss) but keep watching the signalfd, so a stop signal is never ignored. SIGHUP swaps in a
 * freshly compiled configuration, or keeps the old one when the new file is bad; the new one
 * is read and compiled on a short-lived helper thread while the loop keeps classifying with
 * the running one, and the loop thread swaps it in between two posts. Everything else runs on the
 * loop thread: signals arrive through a signalfd polled next to the input socket. Topic edits
 * made through escucha-api take the same path: every classifier.topics_poll_ms the loop reads
 * one Redis key (<prefix>:topics:version) and, when it changed, every team's stored overrides
 * (one pipelined round trip), and the helper thread compiles the file with them applied
 * (esc_cfg_load_overlay). Redis is never asked anything per post. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <zmq.h>

#include "escucha/esc_bus.h"
#include "escucha/esc_kv.h"
#include "escucha/esc_log.h"
#include "escucha/esc_mem.h"
#include "escucha/esc_metrics.h"
#include "escucha/esc_sig.h"
#include "escucha/esc_util.h"

#include "classifier.h"
#include "langid/langid.h"
#include "sentiment/sentiment.h"

const struct esc_cfg_entry cls_cfg_map[] = {
    ESC_CFG_INT("grace_ms", "5000", 0, 600000, struct cls_cfg, grace_ms,
                "on SIGTERM, the longest time spent finishing what is in flight"),
    ESC_CFG_INT("drain_quiet_ms", "300", 10, 60000, struct cls_cfg, drain_quiet_ms,
                "on SIGTERM, keep reading input until it has been quiet this long"),
    ESC_CFG_BOOL("fold_enye", "false", struct cls_cfg, fold_enye,
                 "also fold ñ to n (by default \"año\" and \"ano\" are different words)"),
    ESC_CFG_STR("languages", "es,en,pt,qu,ay", struct cls_cfg, languages,
                "languages language ID chooses from (docs/language-id.md)"),
    ESC_CFG_STR("language_model", "", struct cls_cfg, language_model,
                "language ID model file (\"\" = the one built with escucha)"),
    ESC_CFG_DBL("language_min_confidence", "0.5", 0, 1, struct cls_cfg,
                language_min_confidence, "below this confidence the language is \"und\""),
    ESC_CFG_STR("sentiment_lexicon", "", struct cls_cfg, sentiment_lexicon,
                "sentiment lexicon file (\"\" = the one built with escucha)"),
    ESC_CFG_METRICS(struct cls_cfg, metrics_listen),
    ESC_CFG_INT("topics_poll_ms", "2000", 0, 3600000, struct cls_cfg, topics_poll_ms,
                "how often to look for topic edits made through escucha-api (0 = never)"),
    ESC_CFG_END,
};

/* One team's topic overrides as read from Redis. */
struct cls_ovl_team {
    char *team;                   /* team id; owned */
    char **ids;                   /* hash fields (topic ids); owned, n entries */
    char **topics;                /* hash values (topic JSON); owned, n entries */
    size_t n;
    char *exclude;                /* stored exclusion lists, NULL when the key is missing */
};

/* Every team's overrides, and the esc_cfg_overlay view of them that esc_cfg borrows. */
struct cls_ovl {
    struct cls_ovl_team *t;       /* owned, n entries */
    struct esc_cfg_overlay *view; /* owned, n entries; borrows from t */
    size_t n;
};

static void s_ovl_fini(struct cls_ovl *o);
static void s_ovl_copy(struct cls_ovl *dst, const struct cls_ovl *src);
static esc_rc s_load_ovl(cls_t *self, struct cls_conf *c, const char *path,
                         struct esc_error *err);

/* Prometheus counters mirroring struct cls_stats (docs/classifier.md, "Metrics"). */
static const struct {
    const char *name;
    const char *help;
    size_t off;
} s_metric_defs[] = {
    { "escucha_classifier_in_total", "Messages received from the broker.",
      offsetof(struct cls_stats, in) },
    { "escucha_classifier_out_total", "Classified posts sent to the aggregator.",
      offsetof(struct cls_stats, out) },
    { "escucha_classifier_invalid_total", "Messages dropped as invalid.",
      offsetof(struct cls_stats, invalid) },
    { "escucha_classifier_dropped_total", "Posts that could not be sent before the drain "
      "deadline (should stay 0).", offsetof(struct cls_stats, dropped) },
    { "escucha_classifier_matched_total", "Posts that matched at least one topic.",
      offsetof(struct cls_stats, matched) },
    { "escucha_classifier_bad_utf8_total", "Invalid UTF-8 bytes repaired in post texts.",
      offsetof(struct cls_stats, bad_utf8) },
    { "escucha_classifier_reloads_total", "Successful reloads (SIGHUP or topic edits).",
      offsetof(struct cls_stats, reloads) },
};

/* Histogram bounds, seconds: one post takes some 10-20 us; intake latency is queueing. */
static const double s_process_bounds[] = { 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4,
                                           5e-4, 1e-3, 5e-3, 0.025, 0.1 };
static const double s_latency_bounds[] = { 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                           0.5,   1,     2.5,  5,     10,   30,  60 };

struct cls {
    struct cls_conf conf;
    cls_text_t *txt;              /* tokens of the post being classified */
    cls_text_t *norm;             /* --explain: the normalised text */
    struct cls_match_result res;  /* hits of the post being classified */
    struct esc_post_buf pbuf;     /* strings of the post being classified (decode_into) */
    char *enc;                    /* the classified message cls_process returns; reused */
    size_t enc_cap;
    char **keys;                  /* copies of the topic keys, by topic index */
    size_t n_keys;
    char **topics;                /* scratch list handed to the encoder (borrows keys) */
    char lang[8];                 /* scratch language handed to the encoder */
    double lang_conf;             /* confidence of lang (0 when it came from the hint) */
    cls_langid_t *lid;            /* language identification */
    cls_sentiment_t *sent;        /* sentiment lexicon and rules */
    double sentiment;             /* polarity of the post being classified */
    int label;                    /* its label: -1, 0, 1 */
    struct cls_stats stats;
    struct cls_stats stats_synced; /* values last added to the metrics */
    esc_metric_t *metrics[ESC_ARRAY_LEN(s_metric_defs)];
    esc_metric_t *m_process;      /* escucha_classifier_process_seconds; borrowed */
    esc_metric_t *m_latency;      /* escucha_classifier_intake_latency_seconds; borrowed */
    int64_t post_ingested_at;     /* ingested_at of the post cls_process last decoded */
    esc_bus_t *in;                /* PULL, connected to bus.classify */
    esc_bus_t *out;               /* PUSH, connected to bus.aggregate */
    int sig_fd;
    struct esc_drain drain;
    int64_t last_in_ms;           /* monotonic time input was last seen */
    bool fatal;                   /* a socket failed: stop */
    struct esc_log_every inv_every;
    struct esc_log_every utf8_every;
    struct esc_log_every full_every;
    struct esc_log_every cap_every;
    /* SIGHUP: the helper thread fills reload_conf/rc/err, then writes a byte to reload_fd[1] */
    pthread_t reload_thread;
    bool reload_running;
    bool reload_again;            /* another SIGHUP arrived while compiling */
    int reload_fd[2];             /* -1 when the loop does not run (reloads are synchronous) */
    char reload_path[512];
    struct cls_conf reload_conf;
    struct esc_error reload_err;
    esc_rc reload_rc;
    char reload_trigger[16];      /* "sighup" or "api": what started the running reload */
    struct cls_ovl reload_ovl;    /* the overrides this reload applies (the thread's) */
    char reload_kept[512];        /* "team/topic ..." whose previous version was kept */
    /* topic overrides (docs/api.md): only changed on the loop thread while no reload runs */
    esc_kv_t *kv;                 /* NULL when topics_poll_ms is 0 or the loop does not run */
    struct cls_ovl ovl;           /* overrides the running matcher was built with */
    int64_t poll_next_ms;         /* monotonic time of the next version read */
    char version[32];             /* last <prefix>:topics:version seen ("" = key missing) */
    bool have_version;            /* version was read at least once */
    bool kv_down;                 /* Redis unreachable (logged once) */
    struct esc_log_every ovl_every;
};

/* Logs the compile warnings of a freshly loaded matcher. */
static void
s_log_warnings(const cls_match_t *m)
{
    size_t n;
    size_t i;
    const char *const *w = cls_match_warnings(m, &n);
    char q[300];

    for (i = 0; i < n; i++) {
        esc_log_warn("query warning: %s", esc_log_quote(q, sizeof(q), w[i], 280));
    }
}

/* ---------------------------------------------------------------------------------------------
 * Configuration
 */

esc_rc
cls_conf_from_cfg(struct cls_conf *c, struct esc_cfg **cfg_p, struct esc_error *err)
{
    struct cls_cfg cc;
    struct cls_text_opts opts;
    cls_match_t *match;

    if (esc_cfg_section_apply(*cfg_p, "classifier", cls_cfg_map, NULL, &cc, err) != ESC_OK) {
        return ESC_INVALID;
    }
    memset(&opts, 0, sizeof(opts));
    opts.fold_enye = cc.fold_enye;
    match = cls_match_from_cfg(*cfg_p, &opts, err);
    if (match == NULL) {
        return ESC_INVALID;
    }
    memset(c, 0, sizeof(*c));
    c->cfg = *cfg_p;
    c->cc = cc;
    c->match = match;
    *cfg_p = NULL;
    return ESC_OK;
}

esc_rc
cls_conf_load(struct cls_conf *c, const char *path, struct esc_error *err)
{
    return cls_conf_load_overlay(c, path, NULL, 0, err);
}

esc_rc
cls_conf_load_overlay(struct cls_conf *c, const char *path, const struct esc_cfg_overlay *ov,
                      size_t n, struct esc_error *err)
{
    struct esc_cfg *cfg = esc_cfg_load_overlay(path, ov, n, err);

    if (cfg == NULL) {
        return ESC_INVALID;
    }
    if (cls_conf_from_cfg(c, &cfg, err) != ESC_OK) {
        esc_cfg_free(&cfg);
        return ESC_INVALID;
    }
    return ESC_OK;
}

void
cls_conf_fini(struct cls_conf *c)
{
    if (c == NULL) {
        return;
    }
    cls_match_destroy(&c->match);
    esc_cfg_free(&c->cfg);
    memset(c, 0, sizeof(*c));
}

/* Parses one string of the config and prints its messages; returns its error count. */
static size_t
s_check_one(const char *text, enum cls_q_mode mode, bool fold, bool text_fold, const char *lead,
            const char *path, cls_text_t *txt, size_t *warnings, FILE *out)
{
    struct cls_query q;
    struct cls_query_opts qo;
    size_t errors;

    memset(&qo, 0, sizeof(qo));
    qo.mode = mode;
    qo.fold_enye = fold || text_fold;
    qo.text_fold_enye = text_fold;
    errors = cls_query_parse(&q, text, &qo, txt);
    cls_query_print_msgs(&q, out, lead, path);
    *warnings += q.n_msgs - q.n_errors;
    cls_query_fini(&q);
    return errors;
}

int
cls_conf_check(const char *path, FILE *out, FILE *diag)
{
    struct esc_error err;
    struct esc_cfg *cfg;
    struct cls_cfg cc;
    struct cls_conf conf;
    cls_text_t *txt;
    size_t errors = 0;
    size_t warnings = 0;
    size_t ti;
    size_t k;
    size_t j;
    char lead[700];
    char where[160];

    memset(&err, 0, sizeof(err));
    cfg = esc_cfg_load(path, &err);
    if (cfg == NULL) {
        esc_error_print(diag, "escucha-classifier", &err);
        return ESC_CFG_EXIT_INVALID;
    }
    if (esc_cfg_section_apply(cfg, "classifier", cls_cfg_map, NULL, &cc, &err) != ESC_OK) {
        esc_error_print(diag, "escucha-classifier", &err);
        esc_cfg_free(&cfg);
        return ESC_CFG_EXIT_INVALID;
    }
    snprintf(lead, sizeof(lead), "escucha-classifier: %s: ", cfg->path);
    txt = cls_text_new();
    for (ti = 0; ti < cfg->n_teams; ti++) {
        const struct esc_cfg_team *team = &cfg->teams[ti];

        for (j = 0; j < team->n_exclude_phrases; j++) {
            snprintf(where, sizeof(where), "teams[%zu].exclude.phrases[%zu]", ti, j);
            errors += s_check_one(team->exclude_phrases[j], CLS_QUERY_KEYWORD, false,
                                  cc.fold_enye, lead, where, txt, &warnings, diag);
        }
        for (k = 0; k < team->n_topics; k++) {
            const struct esc_cfg_topic *t = &team->topics[k];

            for (j = 0; j < t->n_keywords; j++) {
                snprintf(where, sizeof(where), "teams[%zu].topics[%zu].keywords[%zu]", ti, k, j);
                errors += s_check_one(t->keywords[j], CLS_QUERY_KEYWORD, t->fold_enye,
                                      cc.fold_enye, lead, where, txt, &warnings, diag);
            }
            if (t->query != NULL) {
                snprintf(where, sizeof(where), "teams[%zu].topics[%zu].query", ti, k);
                errors += s_check_one(t->query, CLS_QUERY_INCLUDE, t->fold_enye, cc.fold_enye,
                                      lead, where, txt, &warnings, diag);
            }
            if (t->exclude != NULL) {
                snprintf(where, sizeof(where), "teams[%zu].topics[%zu].exclude", ti, k);
                errors += s_check_one(t->exclude, CLS_QUERY_EXCLUDE, t->fold_enye, cc.fold_enye,
                                      lead, where, txt, &warnings, diag);
            }
        }
    }
    cls_text_destroy(&txt);
    if (errors > 0) {
        esc_cfg_free(&cfg);
        return ESC_CFG_EXIT_INVALID;
    }
    /* the rest (team exclusion lists, limits) as the service would load it */
    if (cls_conf_from_cfg(&conf, &cfg, &err) != ESC_OK) {
        esc_error_print(diag, "escucha-classifier", &err);
        esc_cfg_free(&cfg);
        return ESC_CFG_EXIT_INVALID;
    }
    cls_conf_fini(&conf);
    if (warnings > 0) {
        fprintf(out, "config ok, %zu warning%s\n", warnings, warnings == 1 ? "" : "s");
    }
    else {
        fprintf(out, "config ok\n");
    }
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Object
 */

static void
s_keys_free(cls_t *self)
{
    size_t i;

    for (i = 0; i < self->n_keys; i++) {
        esc_free(self->keys[i]);
    }
    ESC_FREE(self->keys);
    ESC_FREE(self->topics);
    self->n_keys = 0;
}

/* The encoder wants char **; keep our own copies of the keys so nothing is cast. */
static void
s_keys_build(cls_t *self)
{
    size_t i;
    size_t n = cls_match_n_topics(self->conf.match);

    s_keys_free(self);
    self->keys = esc_calloc(n + 1, sizeof(char *));
    self->topics = esc_calloc(n + 1, sizeof(char *));
    for (i = 0; i < n; i++) {
        self->keys[i] = esc_strdup(cls_match_topic_key(self->conf.match, i));
    }
    self->n_keys = n;
}

int
cls_languages_split(char *buf, const char **codes, size_t max)
{
    char *save = NULL;
    char *tok;
    size_t n = 0;

    for (tok = strtok_r(buf, ", ", &save); tok != NULL; tok = strtok_r(NULL, ", ", &save)) {
        if (n == max) {
            return -1;
        }
        codes[n++] = tok;
    }
    return (int)n;
}

/* Loads language ID and sentiment as the classifier section says. Returns 0, or -1 (logged,
 * naming the file and the problem). */
static int
s_models_load(cls_t *self)
{
    const struct cls_cfg *cc = &self->conf.cc;
    const char *codes[CLS_LANGID_LANGS_MAX];
    struct cls_langid_params params;
    struct esc_error err;
    char buf[sizeof(cc->languages)];
    char q[300];
    int n;

    esc_strlcpy(buf, cc->languages, sizeof(buf));
    n = cls_languages_split(buf, codes, CLS_LANGID_LANGS_MAX);
    if (n < 0) {
        esc_log_error("too many languages in classifier.languages max=%d", CLS_LANGID_LANGS_MAX);
        return -1;
    }
    cls_langid_params_default(&params);
    params.min_confidence = cc->language_min_confidence;
    memset(&err, 0, sizeof(err));
    self->lid = cls_langid_new_ex(cc->language_model[0] != '\0' ? cc->language_model : NULL,
                                  n > 0 ? codes : NULL, (size_t)n, NULL, &params, &err);
    if (self->lid == NULL) {
        esc_log_error("language model failed to load err=%s",
                      esc_log_quote(q, sizeof(q), err.text, 256));
        return -1;
    }
    memset(&err, 0, sizeof(err));
    self->sent = cls_sentiment_new(cc->sentiment_lexicon[0] != '\0' ? cc->sentiment_lexicon
                                                                      : NULL, &err);
    if (self->sent == NULL) {
        esc_log_error("sentiment lexicon failed to load source=%s line=%d err=%s", err.source,
                      err.line, esc_log_quote(q, sizeof(q), err.text, 256));
        return -1;
    }
    return 0;
}

cls_t *
cls_new(struct cls_conf *conf)
{
    cls_t *self = esc_calloc(1, sizeof(*self));

    self->conf = *conf;
    memset(conf, 0, sizeof(*conf));
    s_log_warnings(self->conf.match);
    self->txt = cls_text_new();
    self->norm = cls_text_new();
    cls_match_result_init(&self->res);
    esc_post_buf_init(&self->pbuf);
    s_keys_build(self);
    self->sig_fd = -1;
    self->reload_fd[0] = -1;
    self->reload_fd[1] = -1;
    if (s_models_load(self) < 0) {
        cls_destroy(&self);
    }
    return self;
}

void
cls_destroy(cls_t **self_p)
{
    cls_t *self;

    if (self_p == NULL || *self_p == NULL) {
        return;
    }
    self = *self_p;
    if (self->reload_running) {
        pthread_join(self->reload_thread, NULL);
        cls_conf_fini(&self->reload_conf);
    }
    if (self->reload_fd[0] >= 0) {
        close(self->reload_fd[0]);
        close(self->reload_fd[1]);
    }
    esc_bus_destroy(&self->in, 0);
    esc_bus_destroy(&self->out, 0);
    esc_kv_destroy(&self->kv);
    s_ovl_fini(&self->ovl);
    s_ovl_fini(&self->reload_ovl);
    s_keys_free(self);
    cls_match_result_fini(&self->res);
    esc_post_buf_fini(&self->pbuf);
    esc_free(self->enc);
    cls_text_destroy(&self->txt);
    cls_text_destroy(&self->norm);
    cls_langid_destroy(&self->lid);
    cls_sentiment_destroy(&self->sent);
    cls_conf_fini(&self->conf);
    esc_free(self);
    *self_p = NULL;
}

const struct cls_conf *
cls_get_conf(const cls_t *self)
{
    return &self->conf;
}

const struct cls_stats *
cls_get_stats(const cls_t *self)
{
    return &self->stats;
}

const cls_text_t *
cls_get_tokens(const cls_t *self)
{
    return self->txt;
}

/* ---------------------------------------------------------------------------------------------
 * Classifying
 */

void
cls_language(const char *hint, char *out, size_t outsz)
{
    size_t n = 0;
    size_t i;

    while (hint != NULL
           && ((hint[n] >= 'a' && hint[n] <= 'z') || (hint[n] >= 'A' && hint[n] <= 'Z'))) {
        n++;
    }
    if (n < 2 || n > 3 || (hint[n] != '\0' && hint[n] != '-' && hint[n] != '_') || outsz <= n) {
        esc_strlcpy(out, "und", outsz);
        return;
    }
    for (i = 0; i < n; i++) {
        out[i] = (char)(hint[i] >= 'A' && hint[i] <= 'Z' ? hint[i] + ('a' - 'A') : hint[i]);
    }
    out[n] = '\0';
}

/* Decides the post's language into self->lang: language identification on the text, and the
 * platform's hint only when the text says nothing usable ("und"), since platform hints are
 * often the author's interface language. lang: queries see this value. */
static void
s_language_end(cls_t *self, const struct esc_post *p)
{
    const char *code = cls_langid_detect_end(self->lid, &self->lang_conf);

    if (strcmp(code, CLS_LANGID_UND) == 0 && p->lang != NULL) {
        cls_language(p->lang, self->lang, sizeof(self->lang));
        self->lang_conf = 0.0;
        return;
    }
    esc_strlcpy(self->lang, code, sizeof(self->lang));
}

static void
s_language(cls_t *self, const struct esc_post *p, const char *text, size_t len)
{
    cls_langid_detect_begin(self->lid, text, len);
    s_language_end(self, p);
}

/* Scores the post's sentiment in its language into self->sentiment / self->label. */
static void
s_sentiment(cls_t *self, const char *text, size_t len)
{
    self->sentiment = cls_sentiment_score(self->sent, self->lang, text, len, &self->label);
}

/* Tokenises p (whose text is text[0..len)): the text, then the fields queries can test but
 * its language (s_tokenize_lang), those of the token kinds in `kinds` only (bit 1 << kind:
 * cls_match_token_kinds leaves out what no topic tests, such as the url without site:). With
 * lid_begun (cls_langid_detect_begin has run), language ID takes its next step between the
 * two. */
static void
s_tokenize(cls_t *self, const struct esc_post *p, const char *text, size_t len, uint32_t kinds,
           bool lid_begun)
{
    const struct cls_text_opts *opts = cls_match_opts(self->conf.match);
    size_t i;

    cls_text_set_links(self->txt, (kinds & (1u << CLS_TOK_LINK)) != 0);
    cls_text_tokenize(self->txt, opts, text, len);
    if (lid_begun) {
        cls_langid_detect_lookup(self->lid);
    }
    if (kinds & (1u << CLS_TOK_META_HASHTAG)) {
        for (i = 0; i < p->n_hashtags; i++) {
            cls_text_add_field(self->txt, opts, CLS_TOK_META_HASHTAG, p->hashtags[i]);
        }
    }
    if (kinds & (1u << CLS_TOK_META_MENTION)) {
        for (i = 0; i < p->n_mentions; i++) {
            cls_text_add_field(self->txt, opts, CLS_TOK_META_MENTION, p->mentions[i]);
        }
    }
    if (kinds & (1u << CLS_TOK_AUTHOR)) {
        cls_text_add_field(self->txt, opts, CLS_TOK_AUTHOR, p->author);
    }
    if (kinds & (1u << CLS_TOK_LINK)) {
        cls_text_add_field(self->txt, opts, CLS_TOK_LINK, p->url);
    }
    if (kinds & (1u << CLS_TOK_PLATFORM)) {
        cls_text_add_field(self->txt, opts, CLS_TOK_PLATFORM, p->platform);
    }
}

/* The last token of a post: its language, once s_language has decided it (when kinds has
 * CLS_TOK_LANG, as for s_tokenize). */
static void
s_tokenize_lang(cls_t *self, uint32_t kinds)
{
    if (kinds & (1u << CLS_TOK_LANG)) {
        cls_text_add_field(self->txt, cls_match_opts(self->conf.match), CLS_TOK_LANG,
                           self->lang);
    }
}

/* What a post that matched no topic carries: nothing downstream reads its language or
 * sentiment (the aggregator only counts it as processed), so neither is computed for it. */
static void
s_unmatched(cls_t *self)
{
    esc_strlcpy(self->lang, CLS_LANGID_UND, sizeof(self->lang));
    self->lang_conf = 0.0;
    self->sentiment = 0.0;
    self->label = 0;
}

const struct cls_match_result *
cls_analyze(cls_t *self, const struct esc_post *p)
{
    const cls_match_t *m = self->conf.match;
    const char *text = p->text != NULL ? p->text : "";
    size_t len = strlen(text);
    uint32_t kinds = cls_match_token_kinds(m);
    struct cls_match_post mp;
    bool have_lang = false;

    mp.followers = p->followers;
    if (cls_match_lang_triggers(m)) {
        /* A topic can become a candidate through its lang: atom alone, so the language comes
         * first. Language ID reads tables larger than the caches: what it needs is requested,
         * the post is tokenised for the matcher while that arrives, then the language is
         * decided. */
        cls_langid_detect_begin(self->lid, text, len);
        s_tokenize(self, p, text, len, kinds, true);
        s_language_end(self, p);
        s_tokenize_lang(self, kinds);
        cls_match_run(m, self->txt, &mp, &self->res);
    }
    else {
        /* The candidates do not depend on the language: it is decided only when one of them
         * tests lang: or the post matched. */
        s_tokenize(self, p, text, len, kinds, false);
        cls_match_collect(m, self->txt, &mp, &self->res);
        if (cls_match_need_lang(m, &self->res)) {
            s_language(self, p, text, len);
            s_tokenize_lang(self, kinds);
            cls_match_collect_more(m, self->txt, &self->res);
            have_lang = true;
        }
        cls_match_eval(m, &self->res);
        if (self->res.n_hits > 0 && !have_lang) {
            s_language(self, p, text, len);
        }
    }
    if (self->res.n_hits == 0) {
        s_unmatched(self);
        return &self->res;
    }
    s_sentiment(self, text, len);
    return &self->res;
}

void
cls_explain(cls_t *self, const struct esc_post *p, FILE *f)
{
    const struct cls_text_opts *opts = cls_match_opts(self->conf.match);
    const char *text = p->text != NULL ? p->text : "";
    const struct cls_token *toks;
    struct cls_match_post mp;
    size_t n;
    size_t i;

    fprintf(f, "normalized: %s\n", cls_text_normalize(self->norm, opts, text, strlen(text), NULL));
    if (cls_text_invalid(self->norm) > 0) {
        fprintf(f, "invalid_utf8_bytes: %zu\n", cls_text_invalid(self->norm));
    }
    s_language(self, p, text, strlen(text));
    s_tokenize(self, p, text, strlen(text), UINT32_MAX, false);
    s_tokenize_lang(self, UINT32_MAX);
    toks = cls_text_tokens(self->txt, &n);
    fprintf(f, "tokens:%s\n", n == 0 ? " none" : "");
    for (i = 0; i < n; i++) {
        fprintf(f, "  %-13s %.*s", cls_text_kind_name((enum cls_tok_kind)toks[i].kind),
                (int)toks[i].len, cls_text_tok_str(self->txt, &toks[i]));
        if (toks[i].pos != CLS_POS_NONE) {
            fprintf(f, " @%u", (unsigned)toks[i].pos);
        }
        fputc('\n', f);
    }
    mp.followers = p->followers;
    cls_match_explain(self->conf.match, self->txt, &mp, &self->res, f);
    fprintf(f, "language: %s confidence=%.3f%s\n", self->lang, self->lang_conf,
            self->lang_conf == 0.0 && p->lang != NULL ? " (platform hint)" : "");
    {
        const char *codes[CLS_LANGID_LANGS_MAX];
        double probs[CLS_LANGID_LANGS_MAX];
        size_t k = cls_langid_ranking(self->lid, codes, probs, CLS_LANGID_LANGS_MAX);

        fprintf(f, "language ranking:");
        for (i = 0; i < k; i++) {
            fprintf(f, " %s=%.3f", codes[i], probs[i]);
        }
        fprintf(f, "%s\n", k == 0 ? " none" : "");
    }
    s_sentiment(self, text, strlen(text));
    fprintf(f, "sentiment: %+.3f %s\n", self->sentiment, cls_sentiment_label_str(self->label));
}

static void
s_invalid(cls_t *self, const char *reason)
{
    char q[300];

    self->stats.invalid++;
    esc_log_every(&self->inv_every, 1000, "dropped invalid message reason=%s",
                  esc_log_quote(q, sizeof(q), reason, 256));
}

/* What a post that matched no topic carries on: the aggregator only counts it as processed,
 * acknowledges it (ack, source) and moves its event-time watermark (created_at), so its text,
 * author, links, tags and counts stay behind (docs/classifier.md, "Posts that match no
 * topic"): a message about a quarter of the size, cheaper to encode, send and decode. */
static void
s_slim(struct esc_post *p)
{
    p->text = (char *)(uintptr_t) "";
    p->author = NULL;
    p->author_name = NULL;
    p->url = NULL;
    p->lang = NULL;
    p->n_hashtags = 0;
    p->n_mentions = 0;
    p->followers = 0;
    p->likes = 0;
    p->reposts = 0;
    p->replies = 0;
}

const char *
cls_process(cls_t *self, const void *buf, size_t len, size_t *out_len)
{
    struct esc_post p;
    struct esc_error err;
    enum esc_msg_type type = ESC_MSG_UNKNOWN;
    const struct cls_match_result *res;
    size_t i;
    size_t n;

    self->stats.in++;
    /* Decoded into the reused self->pbuf: p borrows its strings from there, so it is never
     * esc_post_fini'd, and nothing is allocated per post. */
    if (esc_post_decode_into(buf, len, &p, &type, &self->pbuf, &err) != ESC_OK) {
        s_invalid(self, err.text);
        return NULL;
    }
    if (type != ESC_MSG_POST) {
        s_invalid(self, "expected a post message, got a classified one");
        return NULL;
    }
    self->post_ingested_at = p.ingested_at;
    res = cls_analyze(self, &p);
    if (cls_text_invalid(self->txt) > 0) {
        char q[80];

        self->stats.bad_utf8 += cls_text_invalid(self->txt);
        esc_log_every(&self->utf8_every, 10000, "repaired invalid utf-8 id=%s bytes=%zu",
                      esc_log_quote(q, sizeof(q), p.id, 64), cls_text_invalid(self->txt));
    }
    n = res->n_hits;
    if (n > ESC_POST_LIST_MAX) {
        char q[80];

        /* The aggregator's decoder rejects longer lists; keep the first topics in config
         * order rather than lose the post. */
        esc_log_every(&self->cap_every, 10000,
                      "post matched more topics than a message carries id=%s matched=%zu kept=%d",
                      esc_log_quote(q, sizeof(q), p.id, 64), n, ESC_POST_LIST_MAX);
        n = ESC_POST_LIST_MAX;
    }
    for (i = 0; i < n; i++) {
        self->topics[i] = self->keys[res->hits[i].topic];
    }
    self->stats.matched += n > 0 ? 1 : 0;
    /* A "post" carries no topics or language, so these slots are empty: lend them our scratch
     * for the encoder (p borrows from self->pbuf and is not esc_post_fini'd). */
    p.topics = self->topics;
    p.n_topics = n;
    p.language = self->lang;
    p.sentiment = self->sentiment;
    if (n == 0) {
        s_slim(&p);
    }
    *out_len = esc_post_encode_reuse(&p, 1, &self->enc, &self->enc_cap);
    return self->enc;
}

/* ---------------------------------------------------------------------------------------------
 * Reload
 */

static void
s_reload_failed(const cls_t *self, const struct esc_error *err)
{
    char q[300];

    esc_log_error("reload failed, keeping the running config file=%s line=%d err=%s trigger=%s "
                  "topics_version=%s",
                  err->source, err->line, esc_log_quote(q, sizeof(q), err->text, 256),
                  self->reload_trigger, self->have_version ? self->version : "none");
}

/* Swaps in nc (taken). */
static void
s_reload_apply(cls_t *self, struct cls_conf *nc_p)
{
    struct cls_conf nc = *nc_p;
    const struct esc_cfg_bus *ob = &self->conf.cfg->bus;

    memset(nc_p, 0, sizeof(*nc_p));
    if (strcmp(ob->classify, nc.cfg->bus.classify) != 0
        || strcmp(ob->aggregate, nc.cfg->bus.aggregate) != 0 || ob->hwm != nc.cfg->bus.hwm) {
        esc_log_warn("bus settings changed; they take effect at the next restart");
    }
    cls_conf_fini(&self->conf);
    self->conf = nc;
    s_log_warnings(self->conf.match);
    s_keys_build(self);
    self->stats.reloads++;
    esc_log_info("reloaded topics=%zu keywords=%zu queries=%zu atoms=%zu fold_enye=%s trigger=%s",
                 cls_match_n_topics(self->conf.match), cls_match_n_keywords(self->conf.match),
                 cls_match_n_queries(self->conf.match), cls_match_n_atoms(self->conf.match),
                 self->conf.cc.fold_enye ? "true" : "false", self->reload_trigger);
}

/* A reload finished with rc (c and err its result): swap in c and make reload_ovl the
 * running overrides, or log why not and drop reload_ovl. */
static void
s_reload_done(cls_t *self, esc_rc rc, struct cls_conf *c, const struct esc_error *err)
{
    if (rc != ESC_OK) {
        s_reload_failed(self, err);
        s_ovl_fini(&self->reload_ovl);
        return;
    }
    if (self->reload_kept[0] != '\0') {
        char q[600];

        esc_log_error("stored topics do not compile, their previous version kept trigger=%s "
                      "topics=%s",
                      self->reload_trigger,
                      esc_log_quote(q, sizeof(q), self->reload_kept, sizeof(q) - 8));
    }
    s_reload_apply(self, c);
    s_ovl_fini(&self->ovl);
    self->ovl = self->reload_ovl;
    memset(&self->reload_ovl, 0, sizeof(self->reload_ovl));
}

/* Reloads on the loop thread with the prepared reload_ovl. */
static esc_rc
s_reload_sync(cls_t *self)
{
    struct cls_conf nc;
    struct esc_error err;
    esc_rc rc;

    memset(&err, 0, sizeof(err));
    memset(&nc, 0, sizeof(nc));
    rc = s_load_ovl(self, &nc, self->conf.cfg->path, &err);
    s_reload_done(self, rc, &nc, &err);
    return rc == ESC_OK ? ESC_OK : ESC_INVALID;
}

esc_rc
cls_reload(cls_t *self)
{
    if (self->reload_trigger[0] == '\0') {
        esc_strlcpy(self->reload_trigger, "sighup", sizeof(self->reload_trigger));
    }
    s_ovl_fini(&self->reload_ovl);
    s_ovl_copy(&self->reload_ovl, &self->ovl);
    return s_reload_sync(self);
}

/* The helper thread: reads and compiles the file with reload_ovl; writes nothing but the
 * reload_* fields (the loop leaves ovl and reload_ovl alone while it runs). */
static void *
s_reload_main(void *arg)
{
    cls_t *self = arg;
    ssize_t w;

    memset(&self->reload_err, 0, sizeof(self->reload_err));
    self->reload_rc = s_load_ovl(self, &self->reload_conf, self->reload_path, &self->reload_err);
    do {
        w = write(self->reload_fd[1], "r", 1);
    } while (w < 0 && errno == EINTR);
    return NULL;
}

/* SIGHUP (fresh NULL: the running overrides again) or new topic overrides (fresh, taken):
 * starts compiling the file in the background, or reloads synchronously when there is no loop
 * or no thread. A SIGHUP during a compile runs once more after it; overrides are only read
 * while no compile runs (s_poll_topics). */
static void
s_reload_start(cls_t *self, const char *trigger, struct cls_ovl *fresh)
{
    if (self->reload_running) {
        ESC_ASSERT(fresh == NULL);
        self->reload_again = true;
        return;
    }
    esc_strlcpy(self->reload_trigger, trigger, sizeof(self->reload_trigger));
    s_ovl_fini(&self->reload_ovl);
    if (fresh != NULL) {
        self->reload_ovl = *fresh;
        memset(fresh, 0, sizeof(*fresh));
    }
    else {
        s_ovl_copy(&self->reload_ovl, &self->ovl);
    }
    if (self->reload_fd[0] < 0) {
        s_reload_sync(self);
        return;
    }
    esc_strlcpy(self->reload_path, self->conf.cfg->path, sizeof(self->reload_path));
    if (pthread_create(&self->reload_thread, NULL, s_reload_main, self) != 0) {
        esc_log_warn("could not start the reload thread, reloading in the loop");
        s_reload_sync(self);
        return;
    }
    self->reload_running = true;
}

/* The helper wrote its byte: join it and swap in its result, or log why not. */
static void
s_reload_finish(cls_t *self)
{
    char b;

    while (read(self->reload_fd[0], &b, 1) < 0 && errno == EINTR) {
    }
    if (!self->reload_running) {
        return;
    }
    pthread_join(self->reload_thread, NULL);
    self->reload_running = false;
    s_reload_done(self, self->reload_rc, &self->reload_conf, &self->reload_err);
    if (self->reload_again) {
        self->reload_again = false;
        s_reload_start(self, "sighup", NULL);
    }
}

/* ---------------------------------------------------------------------------------------------
 * Topic overrides from escucha-api (docs/api.md, "Contract for the classifier")
 */

static void
s_ovl_fini(struct cls_ovl *o)
{
    size_t i;
    size_t k;

    for (i = 0; i < o->n; i++) {
        for (k = 0; k < o->t[i].n; k++) {
            esc_free(o->t[i].ids[k]);
            esc_free(o->t[i].topics[k]);
        }
        esc_free(o->t[i].ids);
        esc_free(o->t[i].topics);
        esc_free(o->t[i].exclude);
        esc_free(o->t[i].team);
    }
    esc_free(o->t);
    esc_free(o->view);
    memset(o, 0, sizeof(*o));
}

/* (Re)builds the esc_cfg_overlay view of o's teams. */
static void
s_ovl_view(struct cls_ovl *o)
{
    size_t i;

    esc_free(o->view);
    o->view = esc_calloc(o->n + 1, sizeof(*o->view));
    for (i = 0; i < o->n; i++) {
        o->view[i].team = o->t[i].team;
        o->view[i].ids = (const char *const *)o->t[i].ids;
        o->view[i].topics = (const char *const *)o->t[i].topics;
        o->view[i].n_topics = o->t[i].n;
        o->view[i].exclude = o->t[i].exclude;
    }
}

static void
s_ovl_copy(struct cls_ovl *dst, const struct cls_ovl *src)
{
    size_t i;
    size_t k;

    memset(dst, 0, sizeof(*dst));
    dst->n = src->n;
    dst->t = esc_calloc(src->n + 1, sizeof(*dst->t));
    for (i = 0; i < src->n; i++) {
        const struct cls_ovl_team *st = &src->t[i];
        struct cls_ovl_team *dt = &dst->t[i];

        dt->team = esc_strdup(st->team);
        dt->ids = esc_calloc(st->n + 1, sizeof(*dt->ids));
        dt->topics = esc_calloc(st->n + 1, sizeof(*dt->topics));
        for (k = 0; k < st->n; k++) {
            dt->ids[k] = esc_strdup(st->ids[k]);
            dt->topics[k] = esc_strdup(st->topics[k]);
        }
        dt->n = st->n;
        dt->exclude = st->exclude != NULL ? esc_strdup(st->exclude) : NULL;
    }
    s_ovl_view(dst);
}

static struct cls_ovl_team *
s_ovl_team_find(const struct cls_ovl *o, const char *team)
{
    size_t i;

    for (i = 0; i < o->n; i++) {
        if (strcmp(o->t[i].team, team) == 0) {
            return &o->t[i];
        }
    }
    return NULL;
}

/* Puts the stored topic team/id of o back to its version in prev, or removes it when prev
 * has none. Returns false when that changes nothing (the topic is not stored, or prev holds
 * the same text). */
static bool
s_ovl_revert(struct cls_ovl *o, const struct cls_ovl *prev, const char *team, const char *id)
{
    struct cls_ovl_team *t = s_ovl_team_find(o, team);
    const struct cls_ovl_team *pt = s_ovl_team_find(prev, team);
    const char *before = NULL;
    size_t i;
    size_t k;

    for (i = 0; t != NULL && i < t->n && strcmp(t->ids[i], id) != 0; i++) {
    }
    if (t == NULL || i == t->n) {
        return false;
    }
    for (k = 0; pt != NULL && k < pt->n && before == NULL; k++) {
        if (strcmp(pt->ids[k], id) == 0) {
            before = pt->topics[k];
        }
    }
    if (before != NULL && strcmp(before, t->topics[i]) == 0) {
        return false;
    }
    esc_free(t->topics[i]);
    if (before != NULL) {
        t->topics[i] = esc_strdup(before);
    }
    else {
        esc_free(t->ids[i]);
        memmove(&t->ids[i], &t->ids[i + 1], (t->n - i - 1) * sizeof(*t->ids));
        memmove(&t->topics[i], &t->topics[i + 1], (t->n - i - 1) * sizeof(*t->topics));
        t->n--;
    }
    s_ovl_view(o);
    return true;
}

/* Loads path with reload_ovl applied. When a stored topic does not compile (the matcher's
 * error names teams[T].topics[K]), that topic goes back to the version the running matcher
 * was built with (ovl) or, when it had none, to the file's, and the load is tried again;
 * reload_kept lists them with the reason. Other errors refuse the whole reload. Runs on the
 * helper thread: reads ovl, writes only c, err and reload_*. */
static esc_rc
s_load_ovl(cls_t *self, struct cls_conf *c, const char *path, struct esc_error *err)
{
    size_t tries = 0;
    size_t max = 0;
    size_t i;

    self->reload_kept[0] = '\0';
    for (i = 0; i < self->reload_ovl.n; i++) {
        max += self->reload_ovl.t[i].n;
    }
    for (;;) {
        struct esc_cfg *cfg = esc_cfg_load_overlay(path, self->reload_ovl.view,
                                                   self->reload_ovl.n, err);
        size_t ti = 0;
        size_t k = 0;
        size_t used;

        if (cfg == NULL) {
            return ESC_INVALID;
        }
        if (cls_conf_from_cfg(c, &cfg, err) == ESC_OK) {
            return ESC_OK;
        }
        if (tries++ >= max || sscanf(err->text, "teams[%zu].topics[%zu]", &ti, &k) != 2
            || ti >= cfg->n_teams || k >= cfg->teams[ti].n_topics
            || !s_ovl_revert(&self->reload_ovl, &self->ovl, cfg->teams[ti].id,
                             cfg->teams[ti].topics[k].id)) {
            esc_cfg_free(&cfg);
            return ESC_INVALID;
        }
        used = strlen(self->reload_kept);
        snprintf(self->reload_kept + used, sizeof(self->reload_kept) - used, "%s%s (%s)",
                 used > 0 ? "; " : "", cfg->teams[ti].topics[k].key, err->text);
        esc_cfg_free(&cfg);
    }
}

/* Stored values of one team from its HGETALL and GET replies into t. Returns ESC_OK, or
 * ESC_ERR when a reply has an unexpected shape (logged). */
static esc_rc
s_ovl_team(struct cls_ovl_team *t, const char *team, const struct esc_kv_val *hash,
           const struct esc_kv_val *excl)
{
    size_t k;

    t->team = esc_strdup(team);
    if (hash->type != ESC_KV_ARRAY || hash->n % 2 != 0
        || (excl->type != ESC_KV_STR && excl->type != ESC_KV_NIL)) {
        return ESC_ERR;
    }
    t->ids = esc_calloc(hash->n / 2 + 1, sizeof(*t->ids));
    t->topics = esc_calloc(hash->n / 2 + 1, sizeof(*t->topics));
    for (k = 0; k + 1 < hash->n; k += 2) {
        if (hash->elem[k].str == NULL || hash->elem[k + 1].str == NULL) {
            return ESC_ERR;
        }
        t->ids[t->n] = esc_strdup(hash->elem[k].str);
        t->topics[t->n] = esc_strdup(hash->elem[k + 1].str);
        t->n++;
    }
    if (excl->type == ESC_KV_STR && excl->str != NULL) {
        t->exclude = esc_strdup(excl->str);
    }
    return ESC_OK;
}

/* Reads every team's overrides (HGETALL topics + GET exclude, one pipelined round trip) into
 * out. Returns ESC_OK, ESC_RETRY when Redis is unreachable, ESC_ERR on an unexpected reply
 * (logged); out is empty unless ESC_OK. */
static esc_rc
s_ovl_read(cls_t *self, struct cls_ovl *out)
{
    const struct esc_cfg *cfg = self->conf.cfg;
    const char *prefix = cfg->redis.prefix;
    struct esc_kv_val *rep;
    size_t n = cfg->n_teams;
    size_t i;
    esc_rc rc;

    memset(out, 0, sizeof(*out));
    for (i = 0; i < n; i++) {
        esc_kv_append(self->kv, "HGETALL %s:topics:{%s}", prefix, cfg->teams[i].id);
        esc_kv_append(self->kv, "GET %s:exclude:{%s}", prefix, cfg->teams[i].id);
    }
    rep = esc_calloc(2 * n + 1, sizeof(*rep));
    rc = esc_kv_exec_replies(self->kv, rep, 2 * n, NULL);
    if (rc != ESC_OK) {
        esc_free(rep);
        return rc == ESC_RETRY ? ESC_RETRY : ESC_ERR;
    }
    out->t = esc_calloc(n + 1, sizeof(*out->t));
    out->n = n;
    for (i = 0; i < n && rc == ESC_OK; i++) {
        struct cls_ovl_team *t = &out->t[i];

        if (s_ovl_team(t, cfg->teams[i].id, &rep[2 * i], &rep[2 * i + 1]) != ESC_OK) {
            esc_log_error("unexpected reply reading topic overrides team=%s", cfg->teams[i].id);
            rc = ESC_ERR;
        }
    }
    s_ovl_view(out);
    for (i = 0; i < 2 * n; i++) {
        esc_kv_val_fini(&rep[i]);
    }
    esc_free(rep);
    if (rc != ESC_OK) {
        s_ovl_fini(out);
    }
    return rc;
}

/* True when o holds no stored value at all. */
static bool
s_ovl_empty(const struct cls_ovl *o)
{
    size_t i;

    for (i = 0; i < o->n; i++) {
        if (o->t[i].n > 0 || o->t[i].exclude != NULL) {
            return false;
        }
    }
    return true;
}

static void
s_kv_down(cls_t *self)
{
    if (!self->kv_down) {
        esc_log_warn("cannot read topic overrides from redis, keeping the current topics");
        self->kv_down = true;
    }
}

/* Every topics_poll_ms: one GET of the version; when it changed, the overrides are read and a
 * reload starts with them. While a reload runs the read waits, so ovl never changes under the
 * helper thread. */
static void
s_poll_topics(cls_t *self)
{
    const char *prefix = self->conf.cfg->redis.prefix;
    struct esc_kv_val v;
    struct cls_ovl fresh;
    char version[32];
    int64_t now = esc_mono_ms();
    esc_rc rc;

    if (self->kv == NULL || self->drain.draining || now < self->poll_next_ms) {
        return;
    }
    if (self->reload_running) {
        self->poll_next_ms = now + 50;
        return;
    }
    self->poll_next_ms = now + self->conf.cc.topics_poll_ms;
    memset(&v, 0, sizeof(v));
    rc = esc_kv_cmd(self->kv, &v, "GET %s:topics:version", prefix);
    if (rc != ESC_OK) {
        s_kv_down(self);
        return;
    }
    if (v.type != ESC_KV_STR && v.type != ESC_KV_NIL) {
        esc_log_every(&self->ovl_every, 60000, "unexpected reply reading %s:topics:version",
                      prefix);
        esc_kv_val_fini(&v);
        return;
    }
    esc_strlcpy(version, v.type == ESC_KV_STR && v.str != NULL ? v.str : "", sizeof(version));
    esc_kv_val_fini(&v);
    if (self->kv_down) {
        esc_log_info("reading topic overrides from redis again");
        self->kv_down = false;
    }
    self->stats.topic_polls++;
    if (self->have_version && strcmp(version, self->version) == 0) {
        return;
    }
    rc = s_ovl_read(self, &fresh);
    if (rc == ESC_RETRY) {
        s_kv_down(self);
        return;
    }
    if (rc != ESC_OK) {
        return;
    }
    esc_strlcpy(self->version, version, sizeof(self->version));
    if (!self->have_version && s_ovl_empty(&fresh)) {
        /* start-up with nothing stored: the running topics are already right */
        self->have_version = true;
        s_ovl_fini(&fresh);
        return;
    }
    self->have_version = true;
    esc_log_info("topic overrides changed version=%s, reloading",
                 version[0] != '\0' ? version : "none");
    s_reload_start(self, "api", &fresh);
}

/* ---------------------------------------------------------------------------------------------
 * Service loop
 */

static void
s_on_signal(cls_t *self)
{
    esc_sig_handle(self->sig_fd, &self->drain, self->conf.cc.grace_ms);
    if (self->drain.reload) {
        self->drain.reload = 0;
        s_reload_start(self, "sighup", NULL);
    }
}

/* Sends one message, waiting while the aggregator's queue is full; signals are still handled
 * meanwhile (a second stop signal exits). Gives up only when draining and the deadline has
 * passed (ESC_CLOSED) or the socket fails. */
static esc_rc
s_send(cls_t *self, const char *buf, size_t len)
{
    for (;;) {
        zmq_pollitem_t it[2] = {
            { NULL, self->sig_fd, ZMQ_POLLIN, 0 },
            { esc_bus_zsock(self->out), 0, ZMQ_POLLOUT, 0 },
        };
        esc_rc rc = esc_bus_send(self->out, buf, len, ESC_BUS_DONTWAIT);

        if (rc != ESC_RETRY) {
            return rc;
        }
        if (self->drain.draining && esc_mono_ms() >= self->drain.deadline_ms) {
            return ESC_CLOSED;
        }
        esc_log_every(&self->full_every, 10000,
                      "aggregator is not taking messages, waiting endpoint=%s",
                      esc_bus_endpoint(self->out));
        if (zmq_poll(it, 2, 100) < 0 && errno != EINTR) {
            esc_log_error("poll failed err=\"%s\"", zmq_strerror(errno));
            return ESC_ERR;
        }
        if (it[0].revents & ZMQ_POLLIN) {
            s_on_signal(self);
        }
    }
}

/* Sends the classified posts of one input frame as one frame (a batch of one is the plain
 * message), so a batch from the collector stays a batch to the aggregator. */
static void
s_send_out(cls_t *self, struct esc_batch *out)
{
    const void *frame;
    size_t len;
    size_t n = out->n;
    esc_rc rc;

    frame = esc_batch_frame(out, &len);
    if (frame == NULL) {
        return;
    }
    rc = s_send(self, frame, len);
    esc_batch_reset(out);
    if (rc == ESC_OK) {
        self->stats.out += n;
        return;
    }
    self->stats.dropped += n;
    if (rc != ESC_CLOSED) {
        self->fatal = true;
    }
}

/* Classifies one message of a received frame and adds the result to out. */
static void
s_on_post(cls_t *self, const struct esc_batch_iter *it, const void *buf, size_t len,
          struct esc_batch *out, double t_batch, int64_t wall_batch)
{
    const char *enc;
    size_t enc_len = 0;
    double t0;
    double t1;
    double lat;

    t0 = esc_metrics_clock();
    self->last_in_ms = (int64_t)(t0 * 1000.0);
    self->post_ingested_at = 0;
    enc = cls_process(self, buf, len, &enc_len);
    if (enc == NULL) {
        if (it->batch) {
            /* cls_process logged what was wrong; this says where */
            esc_log_debug("invalid message in a batch index=%zu count=%zu", it->index,
                          it->count);
        }
        return;
    }
    t1 = esc_metrics_clock();
    esc_metric_observe(self->m_process, t1 - t0);
    if (self->post_ingested_at > 0) {
        /* clocks of two hosts: a post "from the future" counts as 0 s */
        lat = (double)(wall_batch - self->post_ingested_at) / 1000.0 + (t1 - t_batch);
        esc_metric_observe(self->m_latency, lat > 0 ? lat : 0);
    }
    if (esc_batch_full(out, enc_len)) {
        s_send_out(self, out);
    }
    esc_batch_add(out, enc, enc_len);
}

/* Handles at most about `budget` messages that are already queued (a frame, possibly a batch of
 * posts, is always handled whole). Timing costs one extra clock read per post: the monotonic
 * read before cls_process (which also gives last_in_ms) and one after; the wall clock is read
 * once per call and carried forward on the monotonic one. */
static void
s_on_input(cls_t *self, int budget)
{
    struct esc_batch out;
    struct esc_batch_iter it;
    struct esc_error err;
    const void *buf;
    const void *msg;
    size_t len;
    size_t mlen;
    int n = 0;
    double t_batch = esc_metrics_clock();
    int64_t wall_batch = esc_now_ms();
    esc_rc rc;

    esc_batch_init(&out);
    while (n < budget && !self->fatal) {
        rc = esc_bus_recv(self->in, &buf, &len, ESC_BUS_DONTWAIT);
        if (rc == ESC_RETRY) {
            break;
        }
        if (rc != ESC_OK) {
            self->fatal = true;
            break;
        }
        if (esc_batch_open(&it, buf, len, &err) != ESC_OK) {
            self->stats.in++;
            self->last_in_ms = esc_mono_ms();
            s_invalid(self, err.text);
            n++;
            continue;
        }
        for (;;) {
            rc = esc_batch_next(&it, &msg, &mlen, &err);
            if (rc == ESC_CLOSED) {
                break;
            }
            n++;
            if (rc != ESC_OK) {
                self->stats.in++;
                s_invalid(self, err.text); /* names the index */
                continue;
            }
            s_on_post(self, &it, msg, mlen, &out, t_batch, wall_batch);
        }
        s_send_out(self, &out);
    }
    esc_batch_fini(&out);
}

/* Milliseconds zmq_poll may sleep. */
static long
s_timeout(const cls_t *self)
{
    int64_t now = esc_mono_ms();
    int64_t until;

    if (!self->drain.draining) {
        if (self->kv != NULL) {
            until = self->poll_next_ms;
            if (until <= now) {
                return 0;
            }
            return until - now > 1000 ? 1000 : (long)(until - now);
        }
        return 1000;
    }
    until = self->last_in_ms + self->conf.cc.drain_quiet_ms;
    if (self->drain.deadline_ms < until) {
        until = self->drain.deadline_ms;
    }
    if (until <= now) {
        return 0;
    }
    return until - now > 1000 ? 1000 : (long)(until - now);
}

/* Adds what the stats gained since the last call to the Prometheus counters. */
static void
s_metrics_sync(cls_t *self)
{
    size_t i;

    for (i = 0; i < ESC_ARRAY_LEN(s_metric_defs); i++) {
        const uint64_t *now = (const uint64_t *)(const void *)((const char *)&self->stats
                                                               + s_metric_defs[i].off);
        uint64_t *was = (uint64_t *)(void *)((char *)&self->stats_synced + s_metric_defs[i].off);

        if (*now > *was && self->metrics[i] != NULL) {
            esc_metric_add(self->metrics[i], *now - *was);
            *was = *now;
        }
    }
}

/* The loop of STYLE §8. Returns true when the drain finished with the input quiet. */
static bool
s_loop(cls_t *self)
{
    for (;;) {
        zmq_pollitem_t it[3] = {
            { NULL, self->sig_fd, ZMQ_POLLIN, 0 },
            { esc_bus_zsock(self->in), 0, ZMQ_POLLIN, 0 },
            { NULL, self->reload_fd[0], ZMQ_POLLIN, 0 },
        };
        int64_t now;

        s_metrics_sync(self);
        if (zmq_poll(it, self->reload_fd[0] >= 0 ? 3 : 2, s_timeout(self)) < 0
            && errno != EINTR) {
            esc_log_error("poll failed err=\"%s\"", zmq_strerror(errno));
            return false;
        }
        if (it[0].revents & ZMQ_POLLIN) {
            s_on_signal(self);
        }
        if (it[2].revents & ZMQ_POLLIN) {
            s_reload_finish(self);
        }
        if (it[1].revents & ZMQ_POLLIN) {
            s_on_input(self, CLS_BATCH_MAX);
        }
        s_poll_topics(self);
        if (self->fatal) {
            return false;
        }
        if (!self->drain.draining) {
            continue;
        }
        now = esc_mono_ms();
        if (now - self->last_in_ms >= self->conf.cc.drain_quiet_ms) {
            return true;
        }
        if (now >= self->drain.deadline_ms) {
            zmq_pollitem_t in_it = { esc_bus_zsock(self->in), 0, ZMQ_POLLIN, 0 };

            if (zmq_poll(&in_it, 1, 0) > 0 && (in_it.revents & ZMQ_POLLIN)) {
                esc_log_warn("drain deadline passed with input still queued grace_ms=%lld",
                             (long long)self->conf.cc.grace_ms);
                return false;
            }
            return true;
        }
    }
}

int
cls_run(cls_t *self, int sig_fd)
{
    const struct esc_cfg *cfg = self->conf.cfg;
    bool drained = false;
    int64_t left;

    self->sig_fd = sig_fd;
    if (pipe(self->reload_fd) != 0) {
        esc_log_errno("pipe");
        self->reload_fd[0] = -1;
        self->reload_fd[1] = -1;
    }
    else {
        fcntl(self->reload_fd[0], F_SETFD, FD_CLOEXEC);
        fcntl(self->reload_fd[1], F_SETFD, FD_CLOEXEC);
    }
    if (self->conf.cc.topics_poll_ms > 0 && self->reload_fd[0] >= 0) {
        struct esc_kv_opts ko;
        char *password = NULL;

        esc_cfg_kv_opts(cfg, &ko, &password);
        self->kv = esc_kv_new(&ko);
        esc_free(password);
        self->poll_next_ms = esc_mono_ms();
    }
    for (size_t m = 0; m < ESC_ARRAY_LEN(s_metric_defs); m++) {
        self->metrics[m] = esc_metrics_counter(s_metric_defs[m].name, s_metric_defs[m].help,
                                               NULL);
    }
    self->m_process = esc_metrics_histogram(
        "escucha_classifier_process_seconds",
        "Time to classify one post, decode to encode (language ID and sentiment included).", NULL,
        s_process_bounds, ESC_ARRAY_LEN(s_process_bounds));
    self->m_latency = esc_metrics_histogram(
        "escucha_classifier_intake_latency_seconds",
        "Time from the collector's intake (ingested_at) to the post being classified.", NULL,
        s_latency_bounds, ESC_ARRAY_LEN(s_latency_bounds));
    if (esc_metrics_start("classifier", self->conf.cc.metrics_listen) < 0) {
        esc_kv_destroy(&self->kv);
        return 1;
    }
    self->in = esc_bus_new(ESC_BUS_PULL, cfg->bus.classify, false, (int)cfg->bus.hwm);
    self->out = esc_bus_new(ESC_BUS_PUSH, cfg->bus.aggregate, false, (int)cfg->bus.hwm);
    if (self->in != NULL && self->out != NULL) {
        esc_log_info("started classify=%s aggregate=%s topics=%zu keywords=%zu queries=%zu "
                     "atoms=%zu fold_enye=%s",
                     esc_bus_endpoint(self->in), esc_bus_endpoint(self->out),
                     cls_match_n_topics(self->conf.match),
                     cls_match_n_keywords(self->conf.match),
                     cls_match_n_queries(self->conf.match), cls_match_n_atoms(self->conf.match),
                     self->conf.cc.fold_enye ? "true" : "false");
        self->last_in_ms = esc_mono_ms();
        drained = s_loop(self);
    }
    /* What is still queued for the aggregator gets the rest of the grace period to leave. */
    left = self->drain.draining ? self->drain.deadline_ms - esc_mono_ms() : 0;
    esc_bus_destroy(&self->in, 0);
    esc_bus_destroy(&self->out, (int)(left > 0 ? left : 0));
    esc_kv_destroy(&self->kv);
    s_metrics_sync(self);
    esc_metrics_shutdown();
    if (self->stats.dropped > 0) {
        esc_log_warn("posts dropped at shutdown count=%llu",
                     (unsigned long long)self->stats.dropped);
    }
    esc_log_info("stopped in=%llu out=%llu invalid=%llu dropped=%llu matched=%llu bad_utf8=%llu",
                 (unsigned long long)self->stats.in, (unsigned long long)self->stats.out,
                 (unsigned long long)self->stats.invalid,
                 (unsigned long long)self->stats.dropped,
                 (unsigned long long)self->stats.matched,
                 (unsigned long long)self->stats.bad_utf8);
    return drained && self->stats.dropped == 0 ? 0 : 1;
}
