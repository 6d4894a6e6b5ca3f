#define ESC_LOG_MODULE "config"
/* Maps the aggregator's config sections with esc_cfg_entry tables (the single source of
 * defaults, bounds and the --help-config text). A topic's "spike" object overrides only the
 * keys it names: its map is a copy of the aggregator.spike map whose defaults are the
 * effective aggregator.spike values, so esc_cfg_section_apply's "defaults first" step starts
 * from the global rule instead of the built-in one. */
#include <stdio.h>
#include <string.h>

#include "escucha/esc_mem.h"
#include "escucha/esc_metrics.h"
#include "escucha/esc_util.h"

#include "config.h"

static const struct esc_cfg_entry agg_cfg_map[] = {
    ESC_CFG_INT("flush_ms", "1000", 10, 60000, struct agg_cfg, flush_ms,
                "how often the posts received are counted into Redis (pipelined script calls)"),
    ESC_CFG_INT("grace_ms", "5000", 0, 600000, struct agg_cfg, grace_ms,
                "on SIGTERM, how long to keep reading and flushing before giving up"),
    ESC_CFG_INT("drain_quiet_ms", "300", 10, 60000, struct agg_cfg, drain_quiet_ms,
                "on SIGTERM, input ends once it has been quiet this long"),
    ESC_CFG_INT("retention_minute_s", "172800", 60, 315360000, struct agg_cfg,
                retention_minute_s, "TTL of minute buckets, seconds (2 days)"),
    ESC_CFG_INT("retention_hour_s", "7776000", 3600, 315360000, struct agg_cfg, retention_hour_s,
                "TTL of hour buckets, seconds (90 days)"),
    ESC_CFG_INT("retention_day_s", "94608000", 86400, 315360000, struct agg_cfg, retention_day_s,
                "TTL of day buckets, seconds (3 years)"),
    ESC_CFG_INT("max_pending_posts", "1000000", 100, 100000000, struct agg_cfg,
                max_pending_posts,
                "posts held in memory until Redis has counted them (e.g. while Redis is down) "
                "before input pauses; about 200 bytes each"),
    ESC_CFG_INT("max_open_posts", "200000", 100, 100000000, struct agg_cfg, max_open_posts,
                "while a flush is running, intake waits once this many new posts are recorded "
                "for the next one (overload: the backlog stays on the bus, bounded by bus.hwm)"),
    ESC_CFG_INT("dedupe_window_s", "86400", 60, 31536000, struct agg_cfg, dedupe_window_s,
                "a re-delivered post is recognised this long after the last write to the "
                "seen-mark set of its event-time hour"),
    ESC_CFG_INT("recent_ids", "262144", 2, 100000000, struct agg_cfg, recent_ids,
                "post ids remembered in memory to drop re-deliveries before Redis sees them"),
    ESC_CFG_INT("top_n", "200", 1, 100000, struct agg_cfg, top_n,
                "entries kept per day in the top authors, hashtags and terms lists"),
    ESC_CFG_INT("top_posts_n", "30", 0, 10000, struct agg_cfg, top_posts_n,
                "posts kept per day in the top posts list (0 = no top posts)"),
    ESC_CFG_BOOL("top_lists", "true", struct agg_cfg, top_lists,
                 "keep the daily top authors, hashtags, terms and posts (false: counters only)"),
    ESC_CFG_INT("top_flush_ms", "10000", 0, 3600000, struct agg_cfg, top_flush_ms,
                "how often the top lists accumulated in memory are written (0 = every flush)"),
    ESC_CFG_INT("top_flush_max", "200", 1, 100000, struct agg_cfg, top_flush_max,
                "members of one top list written per topic, day and top_flush_ms (the best)"),
    ESC_CFG_INT("top_max_entries", "250000", 1000, 100000000, struct agg_cfg, top_max_entries,
                "top-list members held in memory between writes; past it every list keeps only "
                "its best members (about 100 bytes each)"),
    ESC_CFG_BOOL("connect_in", "false", struct agg_cfg, connect_in,
                 "connect the PULL socket to bus.aggregate instead of binding it (several "
                 "aggregators behind a forwarder that binds)"),
    ESC_CFG_BOOL("spike_leases", "false", struct agg_cfg, spike_leases,
                 "several aggregators: only the holder of a topic's lease evaluates its spikes, "
                 "on the minute counts merged in Redis"),
    ESC_CFG_INT("lease_ms", "10000", 1000, 600000, struct agg_cfg, lease_ms,
                "lifetime of a topic's spike lease in Redis; renewed every lease_ms / 3"),
    ESC_CFG_METRICS(struct agg_cfg, metrics_listen),
    ESC_CFG_INT("max_future_s", "600", 0, 31536000, struct agg_cfg, max_future_s,
                "posts dated further ahead of this host's clock are counted but kept out of "
                "spike detection (0 = no limit)"),
    ESC_CFG_END,
};

static const struct esc_cfg_entry agg_spike_map[] = {
    ESC_CFG_INT("window_min", "30", 1, 1440, struct agg_spike_cfg, window_min,
                "length of the window that is tested, minutes"),
    ESC_CFG_INT("baseline_min", "1440", 1, 10080, struct agg_spike_cfg, baseline_min,
                "trailing baseline before the window, minutes (used until 2 days of history)"),
    ESC_CFG_DBL("factor", "4.0", 1.0, 1000.0, struct agg_spike_cfg, factor,
                "guard: fire only when observed >= factor * max(expected, 1)"),
    ESC_CFG_INT("min_count", "20", 1, 1000000000, struct agg_spike_cfg, min_count,
                "guard: fire only when observed >= min_count"),
    ESC_CFG_INT("cooldown_min", "180", 0, 10080, struct agg_spike_cfg, cooldown_min,
                "after an alert, the next one's window must end this many minutes later"),
    ESC_CFG_INT("lateness_s", "120", 0, 3600, struct agg_spike_cfg, lateness_s,
                "a minute is evaluated once the newest event time is this far past its end"),
    ESC_CFG_STR("method", "poisson", struct agg_spike_cfg, method,
                "significance test: poisson (tail probability) or zscore (robust z-score)"),
    ESC_CFG_DBL("p_threshold", "0.0001", 1e-300, 0.5, struct agg_spike_cfg, p_threshold,
                "poisson: fire only when P(X >= observed) is below this"),
    ESC_CFG_DBL("z_threshold", "5.0", 1.0, 1000.0, struct agg_spike_cfg, z_threshold,
                "zscore: fire only when the robust z-score reaches this"),
    ESC_CFG_DBL("max_dispersion", "5.0", 1.0, 1000.0, struct agg_spike_cfg, max_dispersion,
                "cap of the variance/mean ratio learnt from history (1 = plain Poisson)"),
    ESC_CFG_INT("end_minutes", "30", 1, 10080, struct agg_spike_cfg, end_minutes,
                "a spike ends (\"ended\" event) after this many calm minutes in a row"),
    ESC_CFG_DBL("end_z", "2.0", 0.0, 100.0, struct agg_spike_cfg, end_z,
                "calm: observed <= expected + end_z * sqrt(dispersion * expected)"),
    ESC_CFG_END,
};

static const char *const s_agg_ignore[] = { "spike", "comment", NULL };
static const char *const s_spike_ignore[] = { "comment", NULL };

size_t
agg_cfg_topic_index(const struct esc_cfg *cfg, const struct esc_cfg_topic *t)
{
    size_t idx = 0;
    size_t i;

    for (i = 0; i < t->team_index; i++) {
        idx += cfg->teams[i].n_topics;
    }
    return idx + t->index;
}

/* Checks what the map's bounds cannot: the method name. */
static esc_rc
s_spike_check(const char *path, const struct agg_spike_cfg *sc, struct esc_error *err)
{
    if (strcmp(sc->method, "poisson") != 0 && strcmp(sc->method, "zscore") != 0) {
        esc_error_set(err, 0, "%s.method: \"%s\" is not poisson or zscore", path, sc->method);
        return ESC_INVALID;
    }
    return ESC_OK;
}

void
agg_cfg_spike_defaults(struct agg_spike_cfg *out)
{
    memset(out, 0, sizeof(*out));
    esc_cfg_defaults(agg_spike_map, out);
}

/* Applies the topic's "spike" object at path onto out, starting from global. */
static esc_rc
s_apply_topic(const struct esc_cfg *cfg, const char *path, const struct agg_spike_cfg *global,
              struct agg_spike_cfg *out, struct esc_error *err)
{
    struct esc_cfg_entry map[ESC_ARRAY_LEN(agg_spike_map)];
    char defs[ESC_ARRAY_LEN(agg_spike_map)][40];
    size_t i;

    for (i = 0; i < ESC_ARRAY_LEN(agg_spike_map); i++) {
        const char *field = (const char *)global + agg_spike_map[i].offset;

        map[i] = agg_spike_map[i];
        if (map[i].key == NULL) {
            continue;
        }
        if (map[i].type == ESC_CFG_T_DBL) {
            snprintf(defs[i], sizeof(defs[i]), "%.17g", *(const double *)(const void *)field);
        }
        else if (map[i].type == ESC_CFG_T_STR) {
            snprintf(defs[i], sizeof(defs[i]), "%s", field);
        }
        else {
            ESC_ASSERT(map[i].type == ESC_CFG_T_INT);
            snprintf(defs[i], sizeof(defs[i]), "%lld",
                     (long long)*(const int64_t *)(const void *)field);
        }
        map[i].def = defs[i];
    }
    if (esc_cfg_section_apply(cfg, path, map, s_spike_ignore, out, err) != ESC_OK) {
        return ESC_INVALID;
    }
    return s_spike_check(path, out, err);
}

static void
s_topic_path(char *out, size_t outsz, const struct esc_cfg_topic *t)
{
    snprintf(out, outsz, "teams.%zu.topics.%zu.spike", t->team_index, t->index);
}

static uint64_t
s_key_hash(const char *key)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */

    for (; *key != '\0'; key++) {
        h ^= (unsigned char)*key;
        h *= 1099511628211ULL;
    }
    return h;
}

/* Builds the key -> flat index table of every configured topic (load factor <= 1/2). */
static void
s_index_build(const struct esc_cfg *cfg, struct agg_cfg *out)
{
    size_t i;
    size_t k;

    out->index_cap = 16;
    while (out->index_cap < out->n_topics * 2) {
        out->index_cap *= 2;
    }
    out->index_keys = esc_calloc(out->index_cap, sizeof(*out->index_keys));
    out->index_vals = esc_calloc(out->index_cap, sizeof(*out->index_vals));
    for (i = 0; i < cfg->n_teams; i++) {
        for (k = 0; k < cfg->teams[i].n_topics; k++) {
            const struct esc_cfg_topic *t = &cfg->teams[i].topics[k];
            size_t slot = (size_t)s_key_hash(t->key) & (out->index_cap - 1);

            while (out->index_keys[slot] != NULL && strcmp(out->index_keys[slot], t->key) != 0) {
                slot = (slot + 1) & (out->index_cap - 1);
            }
            out->index_keys[slot] = t->key;
            out->index_vals[slot] = (uint32_t)agg_cfg_topic_index(cfg, t);
        }
    }
}

long
agg_cfg_topic_lookup(const struct agg_cfg *ac, const char *key)
{
    size_t slot;

    if (ac->index_cap == 0) {
        return -1;
    }
    slot = (size_t)s_key_hash(key) & (ac->index_cap - 1);
    while (ac->index_keys[slot] != NULL) {
        if (strcmp(ac->index_keys[slot], key) == 0) {
            return (long)ac->index_vals[slot];
        }
        slot = (slot + 1) & (ac->index_cap - 1);
    }
    return -1;
}

esc_rc
agg_cfg_load(const struct esc_cfg *cfg, struct agg_cfg *out, struct esc_error *err)
{
    size_t i;
    size_t k;
    size_t n = 0;
    char path[96];

    memset(out, 0, sizeof(*out));
    if (esc_cfg_section_apply(cfg, "aggregator", agg_cfg_map, s_agg_ignore, out, err) != ESC_OK
        || esc_cfg_section_apply(cfg, "aggregator.spike", agg_spike_map, s_spike_ignore,
                                 &out->spike, err)
               != ESC_OK
        || s_spike_check("aggregator.spike", &out->spike, err) != ESC_OK) {
        return ESC_INVALID;
    }
    for (i = 0; i < cfg->n_teams; i++) {
        n += cfg->teams[i].n_topics;
    }
    out->topic_spike = esc_calloc(n > 0 ? n : 1, sizeof(*out->topic_spike));
    out->n_topics = n;
    for (i = 0; i < cfg->n_teams; i++) {
        for (k = 0; k < cfg->teams[i].n_topics; k++) {
            const struct esc_cfg_topic *t = &cfg->teams[i].topics[k];

            s_topic_path(path, sizeof(path), t);
            if (s_apply_topic(cfg, path, &out->spike,
                              &out->topic_spike[agg_cfg_topic_index(cfg, t)], err)
                != ESC_OK) {
                return ESC_INVALID;
            }
        }
    }
    s_index_build(cfg, out);
    return ESC_OK;
}

void
agg_cfg_fini(struct agg_cfg *ac)
{
    if (ac == NULL) {
        return;
    }
    ESC_FREE(ac->topic_spike);
    ac->n_topics = 0;
    ESC_FREE(ac->index_keys);
    ESC_FREE(ac->index_vals);
    ac->index_cap = 0;
}

void
agg_cfg_print_help(FILE *f)
{
    fprintf(f, "aggregator section (\"aggregator\": {...}):\n");
    esc_cfg_print_help(f, "aggregator", agg_cfg_map);
    fprintf(f, "\nspike rule (\"aggregator\": {\"spike\": {...}}):\n");
    esc_cfg_print_help(f, "aggregator.spike", agg_spike_map);
    fprintf(f, "\nper-topic override: a topic object may hold \"spike\": {...} with any of the\n"
               "keys above; keys it leaves out take the aggregator.spike values.\n"
               "Any key can also be set from the environment: ESC_AGGREGATOR_FLUSH_MS,\n"
               "ESC_AGGREGATOR_SPIKE_FACTOR, ESC_TEAMS_0_TOPICS_1_SPIKE_MIN_COUNT, ...\n");
}

void
agg_cfg_print_values(FILE *f, const struct esc_cfg *cfg, const struct agg_cfg *ac)
{
    size_t i;
    size_t k;
    char path[96];

    esc_cfg_print_values(f, "aggregator", agg_cfg_map, ac);
    esc_cfg_print_values(f, "aggregator.spike", agg_spike_map, &ac->spike);
    for (i = 0; i < cfg->n_teams; i++) {
        for (k = 0; k < cfg->teams[i].n_topics; k++) {
            const struct esc_cfg_topic *t = &cfg->teams[i].topics[k];

            s_topic_path(path, sizeof(path), t);
            fprintf(f, "# %s (%s)\n", path, t->key);
            esc_cfg_print_values(f, path, agg_spike_map,
                                 &ac->topic_spike[agg_cfg_topic_index(cfg, t)]);
        }
    }
}
