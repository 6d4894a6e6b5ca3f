#ifndef AGG_COUNTERS_H
#define AGG_COUNTERS_H

/* Per-topic counters in Redis, pre-aggregated in memory and flushed as deltas in one pipelined
 * round trip (docs/redis-schema.md lists every key). While Redis is down the deltas stay in
 * memory and new ones merge into them. Single-threaded. */

#include <stddef.h>
#include <stdint.h>

#include "escucha/esc_kv.h"
#include "escucha/esc_msg.h"
#include "escucha/esc_rc.h"

typedef struct agg_counters agg_counters_t;

enum agg_res {
    AGG_RES_MINUTE = 0, /* key ...:m:<bucket start, Unix s> */
    AGG_RES_HOUR,       /* key ...:h:<bucket start> */
    AGG_RES_DAY,        /* key ...:d:<bucket start> (UTC day) */
    AGG_RES_TOTAL,      /* all-time hash <prefix>:t:{<topic>}, no TTL */
};

struct agg_counters_opts {
    const char *prefix;           /* key prefix, e.g. "esc" (copied) */
    int64_t retention_s[3];       /* TTL of minute, hour and day buckets, seconds */
    size_t max_pending_keys;      /* agg_counters_full is true once this many keys are held */
};

struct agg_counters_stats {
    uint64_t flushed_posts;  /* posts whose deltas reached Redis */
    uint64_t flushes;        /* successful flushes that wrote something */
    uint64_t failed_flushes; /* flushes that returned ESC_RETRY (deltas kept) */
    uint64_t lost;           /* commands Redis rejected, lists dropped at the cap (logged) */
};

/* Creates the counters; kv is borrowed and must outlive them. Caller owns the result. */
agg_counters_t *agg_counters_new(esc_kv_t *kv, const struct agg_counters_opts *opts);
/* Frees the counters and whatever deltas are still pending. NULL-safe, sets *self_p = NULL. */
void agg_counters_destroy(agg_counters_t **self_p);

/* Counts one consumed post: +1 processed, and for each of the n topic keys ("team/topic",
 * already validated and distinct) adds posts=1, reach=followers, likes, reposts, replies to the
 * minute, hour and day buckets of p->created_at (UTC) and to the all-time totals. */
void agg_counters_add(agg_counters_t *self, const struct esc_post *p, const char *const *topics,
                      size_t n);

/* Queues LPUSH key value then LTRIM key 0 max_len-1 for the next flush (both copied). At most
 * 1000 lists wait; beyond that the oldest is dropped (logged, counted in stats.lost). */
void agg_counters_push_list(agg_counters_t *self, const char *key, const char *value,
                            long max_len);

/* Writes every pending delta: for each key HINCRBY of the six fields plus EXPIRE (buckets),
 * then the queued lists, then INCRBY <prefix>:agg:processed. One round trip for up to
 * AGG_FLUSH_CHUNK_KEYS keys (larger backlogs take one per chunk, processed goes last).
 * Returns ESC_OK (nothing left pending; also when there was nothing to do) or ESC_RETRY
 * (Redis unreachable: the unwritten deltas are kept and merge with new ones). */
esc_rc agg_counters_flush(agg_counters_t *self);

#define AGG_FLUSH_CHUNK_KEYS 4096

/* Distinct keys holding unwritten deltas. */
size_t agg_counters_pending_keys(const agg_counters_t *self);
/* True when anything (deltas, lists, the processed count) still has to reach Redis. */
int agg_counters_pending(const agg_counters_t *self);
/* True when pending keys have reached max_pending_keys: the caller stops taking input. */
int agg_counters_full(const agg_counters_t *self);

void agg_counters_get_stats(const agg_counters_t *self, struct agg_counters_stats *out);

/* Writes the Redis key of topic at resolution res for event time ms into out (size outsz);
 * for AGG_RES_TOTAL ms is ignored. Returns out. */
char *agg_counters_key(const char *prefix, const char *topic, enum agg_res res, int64_t ms,
                       char *out, size_t outsz);

#endif
