#ifndef COL_SOURCE_H
#define COL_SOURCE_H

/* Source plugins of escucha-collector (collector-internal; STYLE section 9). A plugin is an
 * immutable type, one per sources/src_<name>.c, listed in sources/registry.c. An instance is one
 * entry of the config's "sources" array: the host (collector.c) owns it, maps its config object
 * with the plugin's cfg_map into `cfg`, and polls it from the loop thread. The plugin owns only
 * `ctx`. Plugins hand posts to the host through a struct col_emit, so tests can capture them
 * without a bus. */

#include <stddef.h>
#include <stdint.h>

#include "net.h"
#include "state.h"

#include "escucha/esc_cfg.h"
#include "escucha/esc_log.h"
#include "escucha/esc_msg.h"
#include "escucha/esc_rc.h"

struct col_source;

/* How a plugin hands a post to its host. fn stamps and sends the post, which stays borrowed
 * (the plugin fini's it afterwards). fn returns:
 *   ESC_OK      taken (sent on the bus; with a journal, appended to it first, see
 *               col_source.journaled); keep going (the next call may say ESC_CLOSED)
 *   ESC_INVALID rejected (e.g. too large once encoded); the plugin counts it as skipped
 *   ESC_CLOSED  not taken: the host is stopping (or could not send it); the plugin must stop
 *               reading and return from poll, and must not consider this post sent */
struct col_emit {
    esc_rc (*fn)(void *arg, struct col_source *ins, struct esc_post *post);
    void *arg; /* host state, passed back to fn; borrowed */
};

struct col_source_plugin {
    const char *name;                    /* the "type" of a source in the config */
    const char *description;             /* one line for --help-config */
    const struct esc_cfg_entry *cfg_map; /* keys of the source object besides name and type */
    size_t cfg_size;                     /* size of the struct cfg_map fills (ins->cfg) */
    /* Optional: checks what the map cannot (e.g. a non-empty path). `path` is "sources.N" for
     * messages. Returns ESC_OK or ESC_INVALID with err naming the key path. */
    esc_rc (*validate)(const void *cfg, const char *path, struct esc_error *err);
    /* Allocates ins->ctx from ins->cfg. Returns 0, or -1 (logged) when the instance cannot run
     * at all; the host then marks it failed and carries on with the others. */
    int (*init)(struct col_source *ins);
    /* Does at most `budget` units of work (lines, records) and returns:
     *   ESC_OK     did something; poll again at once, or at ins->wake_ms when that is later
     *   ESC_RETRY  nothing to do now; poll again at ins->wake_ms (the host waits 1 s when the
     *              plugin did not set it into the future)
     *   ESC_CLOSED emit said the host is stopping
     *   ESC_ERR    failed for good (logged); the host marks the instance failed
     * Sets ins->done when the instance will never produce again. */
    esc_rc (*poll)(struct col_source *ins, const struct col_emit *emit, size_t budget);
    /* Frees ins->ctx. Called once for every instance whose init succeeded. */
    void (*exit)(struct col_source *ins);
};

struct col_source_stats {
    uint64_t posts;   /* posts taken by the host (counted by the host) */
    uint64_t skipped; /* bad input skipped (counted by the plugin) */
    uint64_t errors;  /* I/O and open failures (counted by the plugin) */
    uint64_t clamped; /* posts whose future event time the host clamped (edge.c) */
};

struct col_source {
    char name[64];                          /* instance name from the config: `source` of posts */
    size_t index;                           /* position in the config's "sources" array */
    const struct col_source_plugin *plugin; /* its type; borrowed from the registry */
    void *cfg;      /* plugin config filled by cfg_map (plugin->cfg_size bytes); host-owned */
    void *ctx;      /* plugin state; plugin-owned (init allocates, exit frees) */
    struct col_source_stats stats;
    int64_t wake_ms; /* monotonic ms before which the host need not poll again, 0 = at once */
    col_net_t *net;     /* HTTP multi handle of the host, for connectors; borrowed */
    col_state_t *state; /* cursors, dedupe and counters in Redis; borrowed */
    int done;        /* set by the plugin: nothing more will come */
    int failed;      /* set by the host: init or poll failed for good */
    int started;     /* set by the host: init succeeded, so exit is due */
    int journaled;   /* set by the host before init: emit's ESC_OK means the post is in the
                      * delivery journal (collector.journal_dir), not only handed to the bus */
    struct esc_log_every clamp_log; /* rate limit of the host's clamp warning (edge.c) */
};

/* The counter `name` of instance ins, labelled source="<name>",type="<plugin>" (registered on
 * first use; borrowed, lives until esc_metrics_shutdown). */
struct esc_metric;
struct esc_metric *col_source_metric(const struct col_source *ins, const char *name,
                                     const char *help);
/* The histogram `name` of instance ins with the same labels and the given bounds (ascending,
 * at most ESC_METRICS_BUCKETS_MAX); borrowed, like col_source_metric. */
struct esc_metric *col_source_histogram(const struct col_source *ins, const char *name,
                                        const char *help, const double *bounds,
                                        size_t n_bounds);

/* The same with extra preformatted labels appended (e.g. `reason="nul"`). Borrowed. */
struct esc_metric *col_source_metric_labelled(const struct col_source *ins, const char *name,
                                              const char *help, const char *extra_labels);

/* Edge checks (edge.c). Why an input item was rejected, as the `reason` label of
 * escucha_collector_rejected_total. */
enum col_reject {
    COL_REJECT_MALFORMED,     /* not JSON / not an object / unreadable row */
    COL_REJECT_BAD_UTF8,      /* invalid UTF-8 */
    COL_REJECT_NUL,           /* a NUL byte in a string */
    COL_REJECT_TOO_LARGE,     /* line, body, field or list over its limit */
    COL_REJECT_TOO_DEEP,      /* nesting over the limit */
    COL_REJECT_OUT_OF_RANGE,  /* a number too big, or a negative count */
    COL_REJECT_MISSING_FIELD, /* a required field absent or empty */
    COL_REJECT_WRONG_TYPE,    /* a field of the wrong JSON type */
    COL_REJECT_DUPLICATE_KEY, /* the same key twice in one object */
    COL_REJECT_BAD_TIME,      /* an unreadable or non-positive event time */
    COL_REJECT_INVALID,       /* anything else */
    COL_REJECT_N,
};
/* The class of a parser's message (NULL -> COL_REJECT_INVALID). Pure; any thread. */
enum col_reject col_reject_class(const char *text);
/* The label value of cls ("malformed", "nul", ...); static. */
const char *col_reject_name(enum col_reject cls);
/* Counts n rejected items of class cls for ins: stats.skipped and the labelled counter. The
 * caller logs what and where. Loop thread. */
void col_source_reject(struct col_source *ins, enum col_reject cls, uint64_t n);
/* Rules a parsed post must meet besides its shape: created_at > 0. Returns ESC_OK or
 * ESC_INVALID with err->text naming the field. */
esc_rc col_post_check(const struct esc_post *post, struct esc_error *err);
/* The host's clock-skew rule: when post->created_at is more than max_future_ms (> 0) after
 * now_ms, sets it to now_ms, counts (stats.clamped, escucha_collector_clamped_total) and logs
 * (rate-limited) with the source and post id. Returns 1 when clamped, else 0. */
int col_post_clamp(struct col_source *ins, struct esc_post *post, int64_t now_ms,
                   int64_t max_future_ms);

/* The built-in plugins (each defined at the end of its sources/src_<name>.c). */
extern const struct col_source_plugin src_jsonl_plugin;
extern const struct col_source_plugin src_mastodon_plugin;
extern const struct col_source_plugin src_rss_plugin;
extern const struct col_source_plugin src_hn_plugin;
extern const struct col_source_plugin src_reddit_plugin;
extern const struct col_source_plugin src_bluesky_plugin;
extern const struct col_source_plugin src_x_plugin;
extern const struct col_source_plugin src_lemmy_plugin;
extern const struct col_source_plugin src_youtube_plugin;

/* The NULL-terminated list of every compiled-in plugin. Borrowed, static. */
const struct col_source_plugin *const *col_source_plugins(void);
/* Finds a plugin by name; borrowed, NULL when unknown. */
const struct col_source_plugin *col_source_plugin_find(const char *name);
/* Checks a NULL-terminated plugin list: name, description, cfg_map, init, poll and exit
 * non-NULL, cfg_size non-zero and names unique. Returns 0, or -1 with err->text saying which
 * plugin breaks which rule. */
int col_source_registry_check_list(const struct col_source_plugin *const *list,
                                   struct esc_error *err);
/* Same for the compiled-in list; run at start-up and in the unit test. */
int col_source_registry_check(struct esc_error *err);

#endif
