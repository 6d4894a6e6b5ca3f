#ifndef NTF_DIGEST_H
#define NTF_DIGEST_H

/* The weekly digest of one team: numbers read from the aggregator's hour buckets and alert
 * history in Redis, rendered as plain text in the team's language. */

#include <stddef.h>
#include <stdint.h>

#include "escucha/esc_cfg.h"
#include "escucha/esc_kv.h"
#include "escucha/esc_rc.h"
#include "week.h"

struct ntf_digest_topic {
    const struct esc_cfg_topic *topic; /* borrowed from the config */
    int64_t posts;                     /* posts in the week */
    int64_t posts_prev;                /* posts in the week before */
    int64_t reach;                     /* sum of author followers over the week's posts */
    int64_t engagement;                /* likes + reposts + replies over the week */
    int64_t per_day[7];                /* posts per local day, Monday first */
};

struct ntf_digest_alert {
    char *topic_name;     /* owned */
    int64_t window_start; /* Unix ms */
    int64_t window_end;   /* Unix ms */
    int64_t observed;
    double expected;
    double score;
};

struct ntf_digest {
    const struct esc_cfg_team *team;   /* borrowed */
    struct ntf_week week;
    struct ntf_digest_topic *topics;   /* owned, one per team topic, config order */
    size_t n_topics;
    struct ntf_digest_alert *alerts;   /* owned, oldest first */
    size_t n_alerts;
    size_t n_skipped;                  /* unreadable alert history entries */
};

/* Reads the week's numbers for every topic of team (one EVAL round trip per topic over the hour
 * buckets of this week and the previous one) and the alerts whose window starts inside the
 * week. out is initialised here; the caller must ntf_digest_fini it whatever the result.
 * Returns ESC_OK, ESC_RETRY (Redis unreachable) or ESC_ERR (error reply; logged). */
esc_rc ntf_digest_collect(esc_kv_t *kv, const char *prefix, const struct esc_cfg_team *team,
                          const struct ntf_week *week, struct ntf_digest *out);
void ntf_digest_fini(struct ntf_digest *d);

/* Subject line, e.g. "escucha · Gobernanza Democrática · semana 2026-W47" (not yet encoded).
 * Caller owns. */
char *ntf_digest_subject(const struct ntf_digest *d);
/* Plain-text body (\n line ends) in the team's language. Caller owns. */
char *ntf_digest_body(const struct ntf_digest *d, const char *deployment);

#endif
