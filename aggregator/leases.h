#ifndef AGG_LEASES_H
#define AGG_LEASES_H

/* Spike leases, for running several aggregators at once (docs/aggregator.md, "Scale-out").
 * Each topic has a lease in Redis, <prefix>:lease:{<topic>} = the holder's instance id with a
 * TTL of lease_ms; every aggregator renews the leases it holds and takes the free ones. Only
 * the holder evaluates the topic's spikes, on the minute counts every aggregator merged into
 * Redis, which it reads back here. Single-threaded. */

#include <stddef.h>
#include <stdint.h>

#include "escucha/esc_kv.h"
#include "escucha/esc_rc.h"

typedef struct agg_leases agg_leases_t;

struct agg_leases_opts {
    const char *prefix;   /* key prefix (copied) */
    const char *instance; /* this process's id, the lease value (copied) */
    int64_t lease_ms;     /* lease TTL; renewed every lease_ms / 3 */
};

/* topics[0..n) are the topic keys "team/topic" by topic index (copied). kv is borrowed and must
 * outlive the leases. Caller owns the result. */
agg_leases_t *agg_leases_new(esc_kv_t *kv, const struct agg_leases_opts *opts,
                             const char *const *topics, size_t n);
/* NULL-safe; sets *self_p = NULL. Does not release the leases (see agg_leases_release). */
void agg_leases_destroy(agg_leases_t **self_p);

/* When due (every lease_ms / 3 of monotonic time now_ms), renews the leases held and tries to
 * take the free ones, all in one pipelined round trip. A lease not renewed in time is given up
 * (it may have expired and been taken by another aggregator). Returns the number of leases
 * gained in this call, or -1 when Redis could not be reached (then no lease is held any more
 * once lease_ms has passed since the last renewal). */
int agg_leases_tick(agg_leases_t *self, int64_t now_ms);

/* True when this process holds topic's lease. */
int agg_leases_held(const agg_leases_t *self, size_t topic);
/* Leases held. */
size_t agg_leases_count(const agg_leases_t *self);

/* Deletes the leases this process still holds (only where the value is still its id), so
 * another aggregator takes them over at once. At shutdown. */
void agg_leases_release(agg_leases_t *self);

/* Reads the merged "posts" of n consecutive minute buckets of topic starting at minute
 * first_ms (minute-aligned) into counts (-1 where a bucket does not exist), one round trip.
 * Returns ESC_OK or ESC_RETRY. */
esc_rc agg_leases_read_minutes(agg_leases_t *self, size_t topic, int64_t first_ms, size_t n,
                               int64_t *counts);

#endif
