#ifndef NTF_RENDER_H
#define NTF_RENDER_H

/* What a person reads in an alert, shared by the Slack, Teams and e-mail sinks: the texts in
 * the team's language ("es" or "en"), local times in the team's time zone, and the escaping
 * helpers for each format. Every field of struct ntf_alert_text is plain UTF-8 text with
 * control characters removed and lengths bounded, but NOT escaped: topic names come from the
 * config and samples, authors, links and terms come from posts, so each sink escapes every
 * field for its own format (mrkdwn, Adaptive Card JSON, HTML). */

#include <stddef.h>
#include <stdint.h>

#include "escucha/esc_cfg.h"
#include "escucha/esc_msg.h"
#include "strbuf.h"

#define NTF_TEXT_SAMPLES_MAX 5      /* sample posts shown */
#define NTF_TEXT_SAMPLE_BYTES 400   /* of each sample's text, before "…" */
#define NTF_TEXT_TERMS_MAX 10       /* top terms shown */

struct ntf_text_sample {
    char text[NTF_TEXT_SAMPLE_BYTES + 8]; /* post text, newlines kept */
    char author[136];                     /* author handle, "" when unknown */
    char url[520];                        /* link as given, "" when none */
    int url_ok;                           /* url is an http(s) link safe to make clickable */
};

struct ntf_alert_text {
    int es;                /* Spanish texts (team language "es") */
    int ended;             /* kind "ended": the topic is back to normal */
    char title[400];       /* "Spike: Congreso (Gobernanza)" / "Pico: Congreso (Gobernanza)" */
    char summary[256];     /* "120 posts in 30 min, expected 12.5 (x9.6)" */
    char since[128];       /* window start in the team's zone: "2026-11-18 09:00 America/Lima" */
    char query[600];       /* the topic's query or keywords */
    char terms[600];       /* top terms, comma-separated */
    char team_name[136];
    char topic_name[136];
    char deployment[72];
    struct ntf_text_sample samples[NTF_TEXT_SAMPLES_MAX];
    size_t n_samples;
    /* labels in the team's language */
    const char *l_since;
    const char *l_observed;
    const char *l_query;
    const char *l_terms;
    const char *l_samples;
    const char *l_open;    /* link text of a sample's URL */
    const char *l_footer;  /* "escucha · deployment ..." prefix */
};

/* Fills out from alert a of team (time zone, language, name). */
void ntf_alert_text_build(const struct esc_alert *a, const struct esc_cfg_team *team,
                          const char *deployment, struct ntf_alert_text *out);

/* Copies s into out (outsz bytes) as valid UTF-8: invalid sequences become U+FFFD, control
 * characters become spaces (newlines too, unless keep_nl), and the text is cut at a character
 * boundary with "…" when it is longer than max bytes. NULL s gives "". Returns out. */
char *ntf_text_clip(char *out, size_t outsz, const char *s, size_t max, int keep_nl);
/* 1 when url is an http:// or https:// link that can be made clickable in every format:
 * printable ASCII without space, quotes, angle brackets, backslash, pipe, braces or backtick. */
int ntf_url_linkable(const char *url);

/* Appends s escaped for Slack mrkdwn (& < > as entities; Slack's own rule). */
void ntf_esc_mrkdwn(struct ntf_sb *sb, const char *s);
/* Same, appending at most max bytes: when s does not fit, it is cut at a character boundary
 * (never inside an entity) and ends with "…". */
void ntf_esc_mrkdwn_max(struct ntf_sb *sb, const char *s, size_t max);
/* Bytes ntf_esc_mrkdwn would append for s. */
size_t ntf_esc_mrkdwn_len(const char *s);
/* Appends s escaped for HTML text and attribute values (& < > " '). */
void ntf_esc_html(struct ntf_sb *sb, const char *s);

#endif
