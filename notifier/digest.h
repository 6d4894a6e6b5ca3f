#ifndef NTF_DIGEST_H
#define NTF_DIGEST_H

/* The digest of one team for one period (a local day, an ISO week or a month in the team's time
 * zone): numbers read from what the aggregator keeps in Redis, rendered as a plain-text and an
 * HTML part (with one volume chart per topic) in the team's language, and delivered exactly once
 * per team and period (schedule.h) by the --digest command or by the daemon's scheduler. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chart.h"
#include "escucha/esc_cfg.h"
#include "escucha/esc_kv.h"
#include "escucha/esc_rc.h"
#include "ntf.h"
#include "schedule.h"
#include "week.h"

#define NTF_DIGEST_TOP_POSTS 5    /* top posts per topic */
#define NTF_DIGEST_TOP_AUTHORS 5  /* top authors per topic */
#define NTF_DIGEST_TOP_TAGS 8     /* top hashtags per topic */
#define NTF_DIGEST_TOP_TERMS 8    /* top terms per topic */
#define NTF_DIGEST_SPLIT_MAX 8    /* languages / platforms listed per topic (the rest: "other") */

/* A name with a number: a language, a platform, an author, a hashtag, a term. */
struct ntf_digest_count {
    char *name;    /* owned; untrusted (from posts) unless said otherwise */
    double n;      /* posts, or a score (authors: influence) */
};

/* One of a topic's most engaging posts. Every string is untrusted and owned. */
struct ntf_digest_post {
    char *text;
    char *author;
    char *url;
    char *platform;
    int64_t created_ms;   /* 0 when unknown */
    int64_t likes;
    int64_t reposts;
    int64_t replies;
    int64_t followers;    /* the author's, -1 when unknown */
};

struct ntf_digest_topic {
    const struct esc_cfg_topic *topic; /* borrowed from the config */
    int64_t posts;                     /* posts in the period */
    int64_t posts_prev;                /* posts in the period before */
    int64_t reach;                     /* sum of author followers over the period's posts */
    int64_t reach_prev;
    int64_t engagement;                /* likes + reposts + replies over the period */
    int64_t engagement_prev;
    int64_t likes;
    int64_t reposts;
    int64_t replies;
    int64_t per_day[NTF_PERIOD_DAYS_MAX]; /* posts per local day of the period */
    int n_slots;                       /* chart slots: local hours (daily) or days */
    int64_t slots[NTF_CHART_SLOTS_MAX];
    int n_slots_prev;
    int64_t slots_prev[NTF_CHART_SLOTS_MAX];
    unsigned char slot_spike[NTF_CHART_SLOTS_MAX]; /* a spike of this topic started there */
    struct ntf_digest_count *langs;    /* posts per language, most first; owned */
    size_t n_langs;
    struct ntf_digest_count *platforms; /* posts per platform, most first; owned */
    size_t n_platforms;
    int64_t sent_pos;                  /* posts by sentiment class */
    int64_t sent_neu;
    int64_t sent_neg;
    struct ntf_digest_post *top_posts; /* most engagement first; owned */
    size_t n_top_posts;
    struct ntf_digest_count *authors;  /* most influence first; owned */
    size_t n_authors;
    struct ntf_digest_count *hashtags; /* most posts first, without '#'; owned */
    size_t n_hashtags;
    struct ntf_digest_count *terms;    /* most posts first; owned */
    size_t n_terms;
};

/* A spike whose window starts inside the period. */
struct ntf_digest_alert {
    char *topic_id;       /* owned */
    char *topic_name;     /* owned, control characters removed */
    int64_t window_start; /* Unix ms */
    int64_t window_end;   /* Unix ms */
    int64_t observed;
    double expected;      /* NAN when unknown */
    double score;         /* NAN when unknown */
    char **terms;         /* top terms of the window, most frequent first; owned, untrusted */
    size_t n_terms;
    char *sample;         /* first sample post text, author, link (owned, untrusted, or NULL) */
    char *sample_author;
    char *sample_url;
};

/* Which data sources the period had (a section without its source is left out). */
struct ntf_digest_have {
    bool splits;    /* language / platform / sentiment counts */
    bool tops;      /* top lists: posts, authors, hashtags, terms */
};

struct ntf_digest {
    const struct esc_cfg_team *team;   /* borrowed */
    struct ntf_period period;
    struct ntf_digest_topic *topics;   /* owned, one per team topic, config order */
    size_t n_topics;
    struct ntf_digest_alert *alerts;   /* owned, oldest first */
    size_t n_alerts;
    size_t n_skipped;                  /* unreadable alert history entries */
    struct ntf_digest_have have;
};

/* Reads the numbers of every topic of team for period p (and the period before it) and the
 * spikes whose window starts inside p. out is initialised here; the caller must
 * ntf_digest_fini it whatever the result. Returns ESC_OK, ESC_RETRY (Redis unreachable) or
 * ESC_ERR (error reply; logged). */
esc_rc ntf_digest_collect(esc_kv_t *kv, const char *prefix, const struct esc_cfg_team *team,
                          const struct ntf_period *p, struct ntf_digest *out);
void ntf_digest_fini(struct ntf_digest *d);
/* True when nothing happened: no post in any topic and no spike. */
bool ntf_digest_empty(const struct ntf_digest *d);

/* ---- rendering (digest_render.c) ---------------------------------------------------------- */

/* One PNG chart per topic, for the HTML part. */
struct ntf_digest_chart {
    char cid[96];          /* Content-ID, e.g. "chart-0.gobernanza-2026-W47@escucha" */
    char filename[64];     /* e.g. "congreso.png" */
    unsigned char *png;    /* owned; NULL when the chart could not be drawn */
    size_t len;
};

/* Subject line, e.g. "escucha · Gobernanza Democrática · semana 2026-W47" (not yet encoded).
 * Caller owns. */
char *ntf_digest_subject(const struct ntf_digest *d);
/* Plain-text part (\n line ends, lines under 100 columns except long words) in the team's
 * language. Caller owns. */
char *ntf_digest_body(const struct ntf_digest *d, const char *deployment);
/* Draws the charts: charts[i] for topic i (n_topics entries, caller-allocated); cid_hint makes
 * the Content-IDs unique per message. Caller frees each png with esc_free. */
void ntf_digest_charts(const struct ntf_digest *d, const char *cid_hint,
                       struct ntf_digest_chart *charts);
/* HTML part: a table-based page with inline styles, every value from posts escaped, links
 * only for http(s) URLs; charts[i] (may be NULL, or have png NULL) shown by cid. Caller owns. */
char *ntf_digest_html(const struct ntf_digest *d, const char *deployment,
                      const struct ntf_digest_chart *charts);

/* ---- sending (digest.c) ------------------------------------------------------------------ */

enum ntf_digest_outcome {
    NTF_DIGEST_SENT = 0,  /* delivered (SMTP, outbox or file) and recorded */
    NTF_DIGEST_SKIPPED,   /* nothing happened and send_empty is off: recorded as skipped */
    NTF_DIGEST_ALREADY,   /* sent, skipped or given up before: nothing done */
    NTF_DIGEST_BUSY,      /* another notifier is sending it, or waiting to retry */
    NTF_DIGEST_RETRY,     /* failed for now (Redis or SMTP down): tried again later */
    NTF_DIGEST_FAILED,    /* failed for good (refused, invalid): recorded as failed */
};

struct ntf_digest_req {
    const struct esc_cfg_team *team;
    const struct ntf_period *period;
    const char *to_file;  /* preview: write here, no Redis state read or written; else NULL */
    bool force;           /* send even when already sent (an operator's resend) */
    bool send_empty;      /* send when nothing happened */
    int64_t now_ms;       /* wall clock for the Date header and the state */
    struct ntf_claim *unrecorded; /* may be NULL; receives the claim (key non-empty) when the
                                   * digest went out but its "sent" state could not be written */
};

/* Builds and delivers one digest: claim (unless previewing), collect, render, deliver (to_file,
 * else SMTP when notifier.smtp_url is set, else <outbox>/<team>-<period>.eml), record. dest
 * receives where it went. */
enum ntf_digest_outcome ntf_digest_run(esc_kv_t *kv, const struct esc_cfg *cfg,
                                       const struct ntf_cfg *ncfg,
                                       const struct ntf_digest_req *req, char *dest,
                                       size_t destsz);
const char *ntf_digest_outcome_str(enum ntf_digest_outcome o);

/* ---- scheduler (digest.c): the daemon's side -------------------------------------------- */

typedef struct ntf_digester ntf_digester_t;

/* The scheduler of every team's digest; cfg and ncfg are borrowed and must outlive it. Opens its
 * own Redis connection (lazily). Returns NULL (logged) when a team's schedule is invalid (the
 * config check normally caught that already). Caller owns. */
ntf_digester_t *ntf_digester_new(const struct esc_cfg *cfg, const struct ntf_cfg *ncfg);
void ntf_digester_destroy(ntf_digester_t **self_p);
/* Call from the daemon loop about every 30 s: sends the digests that are due and not yet sent.
 * Blocks while it works (each SMTP transfer at most notifier.smtp_timeout_ms), and returns after
 * the first digest sent once 2 s have passed, leaving the rest to the next call. */
void ntf_digest_tick(ntf_digester_t *self);
/* Same, with the wall clock given (Unix seconds): for tests. */
void ntf_digest_tick_at(ntf_digester_t *self, int64_t now_s);
/* Digests sent whose "sent" state could not be written yet (retried by each tick). */
size_t ntf_digester_unrecorded(const ntf_digester_t *self);

#endif
