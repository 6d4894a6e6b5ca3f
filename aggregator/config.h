#ifndef AGG_CONFIG_H
#define AGG_CONFIG_H

/* The aggregator's configuration: section "aggregator", its sub-section "aggregator.spike",
 * and per-topic overrides "teams.N.topics.M.spike" whose defaults are the aggregator.spike
 * values. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "escucha/esc_cfg.h"
#include "escucha/esc_rc.h"

#include "spikes.h"

struct agg_cfg {
    int64_t flush_ms;           /* period of the counter flush */
    int64_t grace_ms;           /* on SIGTERM, how long to keep flushing */
    int64_t drain_quiet_ms;     /* on SIGTERM, input ends once quiet this long */
    int64_t retention_minute_s; /* TTL of minute buckets */
    int64_t retention_hour_s;   /* TTL of hour buckets */
    int64_t retention_day_s;    /* TTL of day buckets */
    int64_t max_pending_posts;  /* posts held in memory until counted, before input pauses */
    int64_t max_open_posts;     /* while a flush runs: new posts recorded before intake waits */
    int64_t dedupe_window_s;    /* TTL of the seen-mark sets */
    int64_t recent_ids;         /* post ids remembered in memory */
    int64_t top_n;              /* entries per day top list */
    int64_t top_posts_n;        /* posts per day top posts list */
    bool top_lists;             /* keep the top lists */
    int64_t top_flush_ms;       /* top lists written this often */
    int64_t top_flush_max;      /* members of a list written per topic, day and top flush */
    int64_t top_max_entries;    /* top-list members in memory before the lists are pruned */
    bool connect_in;            /* connect bus.aggregate instead of binding it */
    bool spike_leases;          /* scale-out: spikes evaluated by the topic's lease holder */
    int64_t lease_ms;           /* spike lease lifetime */
    char metrics_listen[64];    /* /metrics and /healthz address, "" = off */
    int64_t max_future_s;       /* posts further ahead of the clock are not fed to spikes */
    struct agg_spike_cfg spike; /* aggregator.spike */
    struct agg_spike_cfg *topic_spike; /* effective rule per topic, by agg_cfg_topic_index; owned */
    size_t n_topics;
    /* topic key -> flat index, open addressing (agg_cfg_topic_lookup); owned */
    const char **index_keys;           /* borrowed from the esc_cfg, NULL = empty slot */
    uint32_t *index_vals;
    size_t index_cap;                  /* power of two */
};

/* Reads and validates all of the above from cfg into out (which agg_cfg_fini must release
 * whatever the result). Returns ESC_OK or ESC_INVALID with err naming the key path. */
esc_rc agg_cfg_load(const struct esc_cfg *cfg, struct agg_cfg *out, struct esc_error *err);
void agg_cfg_fini(struct agg_cfg *ac);

/* The built-in aggregator.spike defaults (no config file), e.g. for --backtest. */
void agg_cfg_spike_defaults(struct agg_spike_cfg *out);

/* Flat index of topic t over all teams (team order, then topic order): 0 .. n_topics-1. */
size_t agg_cfg_topic_index(const struct esc_cfg *cfg, const struct esc_cfg_topic *t);

/* Flat index of the configured topic with key "team/topic", or -1 when the config has none:
 * a hash lookup, for the per-post path (esc_cfg_topic_find scans every topic). The keys are
 * borrowed from the esc_cfg given to agg_cfg_load, which must outlive ac. */
long agg_cfg_topic_lookup(const struct agg_cfg *ac, const char *key);

/* --help-config and --dump-config output. */
void agg_cfg_print_help(FILE *f);
void agg_cfg_print_values(FILE *f, const struct esc_cfg *cfg, const struct agg_cfg *ac);

#endif
