#ifndef COL_COLLECTOR_H
#define COL_COLLECTOR_H

/* escucha-collector's host (collector-internal): the "collector" config section, the source
 * instances built from the config's "sources" array, and the loop that polls them and pushes
 * their posts to the broker. See docs/collector.md. */

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "escucha/esc_bus.h"
#include "escucha/esc_cfg.h"
#include "escucha/esc_rc.h"

#define COL_BATCH_MAX 512 /* lines a source may handle per poll before signals are checked */

/* The "collector" section. */
struct col_cfg {
    int64_t grace_ms;        /* how long a stop may take to flush queued posts */
    bool exit_when_done;     /* stop (and exit 0) once every source is done */
    char metrics_listen[64]; /* /metrics and /healthz address, "" = off */
    int64_t max_future_s;    /* event times further ahead than this are clamped, 0 = off */
    /* delivery journal (docs/delivery.md) */
    char journal_dir[256];       /* directory of the journal, "" = no journal */
    int64_t journal_max_mb;      /* bound on the journal's files, MiB */
    int64_t journal_max_entries; /* bound on unacknowledged posts */
    int64_t journal_segment_mb;  /* size of one segment file, MiB */
    int64_t journal_fsync_ms;    /* -1 never, 0 after every post, N: at most N ms after one */
    int64_t redelivery_ms;       /* unacknowledged this long (and overtaken): sent again */
    int64_t redelivery_max_ms;   /* the timeout doubles per re-send up to this */
};

extern const struct esc_cfg_entry col_cfg_map[];

/* Totals for the summary line and the exit code. */
struct col_stats {
    uint64_t sent;    /* posts handed to the bus */
    uint64_t skipped; /* bad lines/records skipped by the sources */
    uint64_t errors;  /* source errors (open/read) plus posts that could not be sent */
    uint64_t unsent;  /* posts encoded but not handed to the bus before the grace ran out */
    size_t failed;    /* sources that failed for good */
};

typedef struct col col_t;

/* Maps the "collector" section into out. Returns ESC_OK or ESC_INVALID with err naming the key
 * path. */
esc_rc col_cfg_apply(const struct esc_cfg *cfg, struct col_cfg *out, struct esc_error *err);

/* Validates every entry of "sources" (known type, its keys, values and bounds) without opening
 * anything. Returns ESC_OK or ESC_INVALID with err naming the key path ("sources.0.path"). */
esc_rc col_sources_check(const struct esc_cfg *cfg, struct esc_error *err);

/* Prints the documentation of every map (--help-config) or the effective values of cfg
 * (--dump-config; cfg must have passed col_sources_check). */
void col_print_help_config(FILE *f);
void col_print_config(FILE *f, const struct esc_cfg *cfg, const struct col_cfg *ccfg);

/* Builds and initialises one instance per configured source (a source whose init fails is
 * marked failed; the others run), after opening the delivery journal when journal_dir is set.
 * cfg must have passed col_sources_check. cfg, ccfg and out are borrowed and must outlive the
 * collector; sig_fd is the signalfd from esc_sig_init. Returns a caller-owned collector, or NULL
 * (logged) when the journal cannot be used. */
col_t *col_new(const struct esc_cfg *cfg, const struct col_cfg *ccfg, esc_bus_t *out,
               int sig_fd);
/* Calls every plugin's exit and frees the instances. NULL-safe; sets *self_p = NULL. */
void col_destroy(col_t **self_p);

/* Polls the sources and sends their posts until a stop signal, or, with exit_when_done, until
 * every source is done (and, with a journal, every post acknowledged). Waits (backpressure)
 * while the bus or the journal is full. Returns ESC_OK, or ESC_ERR when the bus or the journal
 * failed. */
esc_rc col_run(col_t *self);
/* What is left of the grace period (ms, >= 0) once col_run has returned: the linger to close
 * the bus with. */
int64_t col_grace_left_ms(const col_t *self);
void col_get_stats(const col_t *self, struct col_stats *out);

#endif
