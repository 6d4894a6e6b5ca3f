#ifndef AGG_AGGREGATOR_H
#define AGG_AGGREGATOR_H

/* escucha-aggregator's loop: classified posts in (PULL, bus.aggregate), counters to Redis,
 * spike alerts out (PUSH, bus.notify, plus a Redis list per team). docs/aggregator.md. */

#include "escucha/esc_cfg.h"

#include "config.h"

typedef struct agg agg_t;

/* Connects everything: Redis (lazily), binds bus.aggregate, connects bus.notify. cfg and ac
 * are borrowed and must outlive the aggregator; sig_fd comes from esc_sig_init. Returns a
 * caller-owned aggregator, or NULL (logged). */
agg_t *agg_new(const struct esc_cfg *cfg, const struct agg_cfg *ac, int sig_fd);

/* Runs until the first SIGTERM/SIGINT has been drained (docs/aggregator.md, "Stopping").
 * Logs the summary line. Returns 0 when everything reached Redis and the notify socket, 1
 * otherwise (the reason is logged). */
int agg_run(agg_t *self);

/* Closes the sockets (the notify socket lingers for what is left of the grace period) and
 * frees everything. NULL-safe, sets *self_p = NULL. */
void agg_destroy(agg_t **self_p);

#endif
